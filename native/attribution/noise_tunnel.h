// NoiseTunnel (Captum 0.8): averages an attribution method over noisy copies
// of the inputs, x + ε with ε ~ N(0, stdev²) (absolute stdev, not relative
// to the input range).
//   smoothgrad     mean_s a_s
//   smoothgrad_sq  mean_s a_s²
//   vargrad        mean_s a_s² − (mean_s a_s)², clamped at 0
// Sums run in float64. Noise is drawn from our own counter-seeded generator
// (sample s uses DeriveSeed(seed, {stream, s})), so results do not depend on
// LibTorch's global RNG, on threads or on the device. Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace tabsight::attribution {

// The most noisy samples one call may ask for (each is a full run of the
// wrapped method).
constexpr int64_t kMaxNoiseSamples = 10000;

struct NoiseTunnelOptions {
  std::string type = "smoothgrad";  // smoothgrad | smoothgrad_sq | vargrad
  int64_t samples = 5;
  double stdev = 1.0;
  // One standard deviation per input (the first dimension); when given, it
  // replaces `stdev` (SmoothGrad's noise level relative to each image's own
  // range, computed by the caller).
  std::vector<double> stdevs;
  uint64_t seed = 0;
};

void ValidateNoiseTunnelOptions(const NoiseTunnelOptions& options);

// Attributions of a whole batch of inputs (any shape, the same every call).
using AttributionFn = std::function<torch::Tensor(const torch::Tensor& inputs)>;

torch::Tensor NoiseTunnel(const AttributionFn& method, const torch::Tensor& x, const NoiseTunnelOptions& options);

// Standard normal noise of `sizes` (float32, CPU) for sample `sample`.
torch::Tensor GaussianNoise(at::IntArrayRef sizes, uint64_t seed, uint64_t sample);

}  // namespace tabsight::attribution
