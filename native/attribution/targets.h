// Target factories: what an attribution explains, as a head on an encoder's
// output (the image encoder's pooled features, or the tabular encoder's
// embedding). Plain LibTorch.
//
//   feature     one dimension of the encoder output
//   projection  one dimension of the projection head's output
//   similarity  cosine similarity between the projection (space
//               "projection") or the encoder output (space "features") and a
//               reference vector — one for all examples or one per example
//               (e.g. the paired subject's tabular projection, or a concept
//               embedding). Computed as MMCL's loss does: both sides
//               L2-normalised (eps 1e-12), then the dot product.
//   probe       a linear probe's output W·h + b (class logit, or the
//               regression output with K = 1)
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "attribution/integrated_gradients.h"
#include "attribution/target.h"
#include "models/folded_resnet.h"
#include "models/mlp.h"
#include "models/resnet.h"

namespace tabsight::attribution {

struct HeadSpec {
  std::string kind;          // feature | projection | similarity | probe
  torch::Tensor index;       // int64, 1 or N values: feature / projection dimension or probe output
  torch::Tensor reference;   // similarity: [1, D] or [N, D]
  std::string space = "projection";  // similarity: projection | features
  torch::Tensor weight;      // probe: [K, D]
  torch::Tensor bias;        // probe: [K] or undefined
};

// Maps encoder outputs (rows × D) to one score per row. `projection` may be
// null unless the head needs it. Checks index ranges and sizes against the
// encoder width `dim` and the number of examples `n` (kConfig / kShape).
using HeadFn = std::function<torch::Tensor(const torch::Tensor& encoded, const torch::Tensor& index)>;
HeadFn MakeHead(const HeadSpec& spec, int64_t dim, models::ProjectionHead projection, int64_t n);

// F(x) = head(image(x)).
TargetFn ImageTarget(models::ResNet image, HeadFn head);
// The same scores through the BatchNorm-folded copy (models/folded_resnet.h):
// equal up to float rounding, with fewer passes over the activations.
TargetFn ImageTarget(std::shared_ptr<const models::FoldedResNet> image, HeadFn head);
// That target split at the folded stem, F = head ∘ from_stem ∘ stem, for
// Integrated Gradients (attribution/integrated_gradients.h).
std::shared_ptr<const AffineSplit> ImageStemSplit(std::shared_ptr<const models::FoldedResNet> image, HeadFn head);
// The same scores, exposing `layer`'s activation for CAM methods.
ActivationTargetFn ImageActivationTarget(models::ResNet image, HeadFn head, std::string layer);
// F(t) = head(tabular(t)) on one-hot encoded rows.
TargetFn TabularTarget(models::TabularEncoder tabular, HeadFn head);

}  // namespace tabsight::attribution
