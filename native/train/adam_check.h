// The trainer's Adam steps (train/fused_adam.h) against LibTorch's own
// torch::optim::Adam / AdamW, for tests (_adamProbe in the addon) and for
// GPU nodes without Node (benchmarks/native/train_bench --mode adam-check).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tabsight::train {

struct AdamCheck {
  double max_param_diff = 0;   // max |ours − LibTorch| / max |LibTorch| over parameters
  double max_moment_diff = 0;  // the same over both moments
  double max_update = 0;       // max |after − before| / max |before|: did the steps move anything
  std::vector<int64_t> steps;  // each parameter's step count in our optimizer's state
};

// Runs `steps` steps of LibTorch's optimizer ("adam" or "adamw") and of ours
// (`impl` "fused", CPU only, or "multiTensor") from the same parameters and
// gradients on `device`. The parameters: a channels_last 4-D weight, a
// matrix big enough to be split across threads, a bias, and an NCHW weight
// whose gradient arrives channels_last. The bias has no gradient in the
// second step, so its step count lags the others'. Everything is drawn on
// the CPU from `seed` and moved to `device`. Bad arguments fail with
// kConfig.
AdamCheck CompareAdamWithLibTorch(const std::string& optimizer, const std::string& impl, int64_t steps, double lr,
                                  double weight_decay, uint64_t seed, const torch::Device& device);

}  // namespace tabsight::train
