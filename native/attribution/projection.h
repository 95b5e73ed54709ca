// Forward passes without gradients for the comparison metrics: pooled image
// features, the image projection, and the tabular projection of paired rows,
// a batch at a time. Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include "attribution/loaded_models.h"
#include "train/tabular.h"

namespace tabsight::attribution {

struct Projections {
  torch::Tensor features;            // N×D pooled image features
  torch::Tensor image_projection;    // N×P, undefined unless the projection head is loaded
  torch::Tensor tabular_projection;  // N×P, undefined unless rows are given
};

// `images`: N×C×H×W normalised float32; `rows`: N×F raw rows (continuous
// values, categorical codes) or undefined. Modules come from LoadModels (eval
// mode), so batches do not interact. Outputs are float32 on the CPU.
Projections ProjectPairs(LoadedModels& models, const torch::Tensor& images, const torch::Tensor& rows,
                         const train::TabularSpec& spec, int64_t batch);

}  // namespace tabsight::attribution
