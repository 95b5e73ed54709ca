// The tabular encoder and the projection heads (MMCL's shapes).
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
struct ProjectionHeadImpl : torch::nn::Module {
  ProjectionHeadImpl(int64_t in_features, int64_t hidden, int64_t out_features);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(ProjectionHead);

}  // namespace tabsight::models
