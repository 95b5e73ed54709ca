// The tabular encoder and the projection heads (MMCL's shapes; the heads' BatchNorm is optional).
#pragma once

#include <torch/torch.h>

namespace tabsight::models {

// Linear(in, hidden), then (layers − 1) × [BatchNorm1d, ReLU, Linear(hidden, hidden)].
// Parameters are named encoder.0.weight, encoder.1.running_mean, encoder.3.weight, ...
struct TabularEncoderImpl : torch::nn::Module {
  TabularEncoderImpl(int64_t in_features, int64_t hidden, int64_t layers);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return hidden_; }

  torch::nn::Sequential encoder{nullptr};

 private:
  int64_t in_features_, hidden_;
};
TORCH_MODULE(TabularEncoder);

// Linear(in, hidden), BatchNorm1d, ReLU, Linear(hidden, out): layers.0 ... layers.3.
// Without batch_norm: Linear, ReLU, Linear (layers.0, layers.2), the head
// of lightly 1.2's SimCLRProjectionHead that MMCL's pinned environment runs.
struct ProjectionHeadImpl : torch::nn::Module {
  ProjectionHeadImpl(int64_t in_features, int64_t hidden, int64_t out_features, bool batch_norm = true);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(ProjectionHead);

}  // namespace tabsight::models
