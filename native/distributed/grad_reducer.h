// Gradient all-reduce in buckets, overlapped with the backward pass.
//
// Parameters are grouped into buckets of about bucket_bytes in reverse
// registration order (roughly the order backward produces their gradients).
// A hook on each parameter copies its gradient into its bucket as soon as
// autograd computes it; when a bucket is complete, its asynchronous sum
// all-reduce starts while backward continues with earlier layers. Buckets
// start strictly in index order, so every rank issues the same collectives
// in the same order. Finish() waits for all of them and writes
// scale × (sum over ranks) into each parameter's .grad.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

#include "distributed/comm.h"

namespace tabsight::dist {

class GradReducer {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25ll << 20;

  GradReducer(Comm& comm, std::vector<torch::Tensor> params, int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Call before backward.
  void Begin();
  // Call after backward: launches what is left, waits, writes the grads.
  void Finish(double scale);

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Slot {
    torch::Tensor param;
    size_t bucket = 0;
    int64_t offset = 0;
    bool ready = false;
    unsigned hook = 0;
  };
  struct Bucket {
    torch::Tensor flat;
    size_t pending = 0;  // slots still to arrive this step
    size_t size = 0;
    std::shared_ptr<PendingWork> work;
  };
  void OnGrad(size_t slot, const torch::Tensor& grad);
  void LaunchReady();  // with mu_ held

  Comm& comm_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  std::mutex mu_;
};

}  // namespace tabsight::dist
