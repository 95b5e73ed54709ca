// Integrated Gradients over the tabular encoder's input. Rows arrive raw
// (continuous values, categorical codes; see train/tabular.h), are one-hot
// encoded, attributed in the encoded space, and the one-hot columns of each
// categorical feature are summed back to that feature (completeness is kept:
// Σ features = Σ encoded columns). Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include "attribution/integrated_gradients.h"
#include "train/tabular.h"

namespace tabsight::attribution {

struct TabularIgResult {
  IgResult encoded;             // attributions N×W over the encoded columns, delta, scores
  torch::Tensor attributions;   // N×F: one value per original feature
};

// Sums the columns of each feature: width 1 for a continuous feature
// (cardinality 0), k for a categorical one with k levels.
torch::Tensor SumOneHotGroups(const torch::Tensor& encoded, const std::vector<int64_t>& cardinalities);

// `rows`: N×F raw rows; `baseline`: in the encoded space, N×W or W values
// (undefined: zeros). `f` maps encoded rows to scores.
TabularIgResult TabularIntegratedGradients(const TargetFn& f, const torch::Tensor& rows, const train::TabularSpec& spec,
                                           const torch::Tensor& baseline, const IgOptions& options);

}  // namespace tabsight::attribution
