// Synchronised batch normalisation: training-mode batch statistics over the
// global batch of every rank, as one process would compute them on that
// batch (installed through models::ScopedBatchNormOverride).
//
// Forward: one all-reduce of [Σx, Σx², count] per channel (float64), then
// the same normalisation on every rank; running_mean and running_var move
// with the global mean and the unbiased global variance, so every rank's
// buffers equal single-process BatchNorm's on the global batch.
// Backward: one all-reduce of [Σdy, Σdy·x̂] per channel gives the exact
// input gradient; the weight and bias gradients are this rank's share
// (Σ over its samples), completed by the trainer's gradient all-reduce.
#pragma once

#include "distributed/comm.h"
#include "models/batch_norm.h"

namespace tabsight::dist {

class SyncBatchNorm : public models::BatchNormOverride {
 public:
  explicit SyncBatchNorm(Comm* comm) : comm_(comm) {}
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                        torch::Tensor running_mean, torch::Tensor running_var, torch::Tensor num_batches_tracked,
                        c10::optional<double> momentum, double eps) override;

 private:
  Comm* comm_;
};

}  // namespace tabsight::dist
