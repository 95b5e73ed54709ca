// A process group for data-parallel training: LibTorch's c10d (Gloo on CPU,
// NCCL with a CUDA LibTorch that has it) behind a TCPStore rendezvous on
// rank 0, following torchrun's environment contract (MASTER_ADDR,
// MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK; read in TypeScript).
//
// Failure handling: every collective waits at most timeout_sec. Each rank
// runs a heartbeat thread that writes to the store once a second; a rank
// whose training fails for a reason of its own writes the reason to the
// store. When a collective fails, the error (kDist) names the rank that
// caused it when that can be found: a rank that reported a failure, a rank
// whose heartbeat stopped, rank 0 when its store is gone, or a rank that is
// behind. Plain C++ over c10d; c10d's headers stay in comm.cc.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/dist_config.h"

namespace tabsight::dist {

// A collective started asynchronously; Comm::Wait completes it.
struct PendingWork;

class Comm {
 public:
  // Rendezvous, then the process group. Throws kDist naming the ranks that
  // did not join within the timeout, kConfig for a backend this build lacks.
  static std::shared_ptr<Comm> Create(const DistConfig& config);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int64_t rank() const { return config_.rank; }
  int64_t world_size() const { return config_.world_size; }
  const DistConfig& config() const { return config_; }

  // Blocking collectives. `what` names the operation in error messages.
  void AllReduceSum(torch::Tensor& tensor, const char* what);
  // Equal shapes on every rank; returns one tensor per rank.
  std::vector<torch::Tensor> AllGather(const torch::Tensor& tensor, const char* what);
  // Root's values into `tensors` on every rank (any dtypes; flattened per dtype).
  void Broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const char* what);

  // Asynchronous sum all-reduce of a contiguous tensor, in place.
  std::shared_ptr<PendingWork> AllReduceSumAsync(torch::Tensor& tensor);
  void Wait(const std::shared_ptr<PendingWork>& work, const char* what);

  // The training step this rank is at, published with the heartbeat so a
  // failure can name a rank that fell behind.
  void SetStep(int64_t step) { step_.store(step); }

  // Records this rank's own failure in the store, so the others name it and
  // its reason. Never throws.
  void ReportFailure(const std::string& message) noexcept;

  // Throws kDist for a failed collective, with the culprit when it can be found.
  [[noreturn]] void FailCollective(const char* what, const std::string& detail);

 private:
  explicit Comm(const DistConfig& config);
  void Rendezvous();
  void StartHeartbeat();
  std::string Diagnose();

  struct Impl;
  DistConfig config_;
  std::unique_ptr<Impl> impl_;
  std::atomic<int64_t> step_{0};
};

}  // namespace tabsight::dist
