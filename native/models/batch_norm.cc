#include "models/batch_norm.h"

namespace tabsight::models {

namespace {
thread_local BatchNormOverride* current_override = nullptr;
}  // namespace

BatchNormOverride* CurrentBatchNormOverride() { return current_override; }

ScopedBatchNormOverride::ScopedBatchNormOverride(BatchNormOverride* override_) : previous_(current_override) {
  current_override = override_;
}

ScopedBatchNormOverride::~ScopedBatchNormOverride() { current_override = previous_; }

torch::Tensor ForwardSequential(torch::nn::Sequential& seq, torch::Tensor x) {
  if (current_override == nullptr) return seq->forward(x);
  for (auto& module : *seq) {
    if (auto* bn1 = module.ptr()->as<torch::nn::BatchNorm1d>()) {
      x = BatchNormForward(*bn1, x);
    } else if (auto* bn2 = module.ptr()->as<torch::nn::BatchNorm2d>()) {
      x = BatchNormForward(*bn2, x);
    } else {
      x = module.forward<torch::Tensor>(x);
    }
  }
  return x;
}

}  // namespace tabsight::models
