// Batch normalisation with an optional per-thread override. Distributed
// training installs one (distributed/sync_batch_norm.h) so that the batch
// statistics of every BatchNorm layer in training mode come from the global
// batch across ranks. Without an override, BatchNorm(bn, x) is bn(x).
#pragma once

#include <torch/torch.h>

namespace tabsight::models {

class BatchNormOverride {
 public:
  virtual ~BatchNormOverride() = default;
  // Training-mode batch norm over dims {0, 2, 3, ...} of x (N×C×...).
  // weight and bias may be undefined (affine = false). Updates running_mean,
  // running_var and num_batches_tracked in place, as torch's BatchNorm does.
  virtual torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                torch::Tensor running_mean, torch::Tensor running_var,
                                torch::Tensor num_batches_tracked, c10::optional<double> momentum, double eps) = 0;
};

// The override of the calling thread, or nullptr.
BatchNormOverride* CurrentBatchNormOverride();

// Installs an override on this thread for the scope's lifetime.
class ScopedBatchNormOverride {
 public:
  explicit ScopedBatchNormOverride(BatchNormOverride* override_);
  ~ScopedBatchNormOverride();
  ScopedBatchNormOverride(const ScopedBatchNormOverride&) = delete;
  ScopedBatchNormOverride& operator=(const ScopedBatchNormOverride&) = delete;

 private:
  BatchNormOverride* previous_;
};

// bn.forward(x), or the thread's override when one is installed and bn is
// training with running statistics. Impl: BatchNorm1dImpl, BatchNorm2dImpl.
template <typename Impl>
torch::Tensor BatchNormForward(Impl& bn, const torch::Tensor& x) {
  BatchNormOverride* o = CurrentBatchNormOverride();
  if (o == nullptr || !bn.is_training() || !bn.options.track_running_stats()) return bn.forward(x);
  return o->Forward(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked,
                    bn.options.momentum(), bn.options.eps());
}

// The same for a module holder (torch::nn::BatchNorm2d, ...).
template <typename Holder>
torch::Tensor BatchNorm(Holder& bn, const torch::Tensor& x) {
  return BatchNormForward(*bn, x);
}

// seq->forward(x), with its BatchNorm1d/2d layers run through BatchNorm().
torch::Tensor ForwardSequential(torch::nn::Sequential& seq, torch::Tensor x);

}  // namespace tabsight::models
