#include "attribution/noise_tunnel.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/rng.h"

namespace tabsight::attribution {

namespace {
constexpr uint64_t kStreamNoise = 0x4E54;  // "NT"
}

void ValidateNoiseTunnelOptions(const NoiseTunnelOptions& options) {
  if (options.type != "smoothgrad" && options.type != "smoothgrad_sq" && options.type != "vargrad") {
    Fail(ErrorCode::kConfig, "Expected one of smoothgrad, smoothgrad_sq, vargrad for type but received \"" +
                                 options.type + "\"");
  }
  if (options.samples < 1 || options.samples > kMaxNoiseSamples) {
    Fail(ErrorCode::kConfig, "Expected integer between 1 and " + std::to_string(kMaxNoiseSamples) + " for samples");
  }
  if (!(options.stdev >= 0) || !std::isfinite(options.stdev)) Fail(ErrorCode::kConfig, "Expected non-negative number for stdev");
  for (size_t i = 0; i < options.stdevs.size(); ++i) {
    if (!(options.stdevs[i] >= 0) || !std::isfinite(options.stdevs[i])) {
      Fail(ErrorCode::kConfig, "Expected non-negative number for stdev[" + std::to_string(i) + "]");
    }
  }
}

torch::Tensor GaussianNoise(at::IntArrayRef sizes, uint64_t seed, uint64_t sample) {
  auto out = torch::empty(sizes, torch::kFloat32);
  float* p = out.data_ptr<float>();
  const int64_t n = out.numel();
  Rng rng(DeriveSeed(seed, {kStreamNoise, sample}));
  // Box–Muller on our bit-exact uniforms: two normals per pair.
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = 1.0 - Uniform(rng);  // (0, 1]
    const double u2 = Uniform(rng);
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = 2.0 * M_PI * u2;
    p[i] = static_cast<float>(r * std::cos(t));
    if (i + 1 < n) p[i + 1] = static_cast<float>(r * std::sin(t));
  }
  return out;
}

torch::Tensor NoiseTunnel(const AttributionFn& method, const torch::Tensor& x, const NoiseTunnelOptions& options) {
  ValidateNoiseTunnelOptions(options);
  // Per-input standard deviations, shaped to broadcast over each input.
  torch::Tensor scale;
  bool any_noise = options.stdev > 0;
  if (!options.stdevs.empty()) {
    if (x.dim() < 1 || static_cast<int64_t>(options.stdevs.size()) != x.size(0)) {
      Fail(ErrorCode::kShape, "Expected " + std::to_string(x.dim() < 1 ? 0 : x.size(0)) +
                                  " values in stdev (one per input) but received " + std::to_string(options.stdevs.size()));
    }
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[0] = x.size(0);
    scale = torch::tensor(options.stdevs, torch::kFloat64).to(x.scalar_type()).reshape(shape).to(x.device());
    any_noise = std::any_of(options.stdevs.begin(), options.stdevs.end(), [](double v) { return v > 0; });
  }
  torch::Tensor sum, sum_sq;
  for (int64_t s = 0; s < options.samples; ++s) {
    torch::Tensor noisy = x;
    if (any_noise) {
      auto noise = GaussianNoise(x.sizes(), options.seed, static_cast<uint64_t>(s)).to(x.options());
      noisy = scale.defined() ? x + noise * scale : x + noise * options.stdev;
    }
    auto a = method(noisy).detach().to(torch::kFloat64);
    if (!sum.defined()) {
      sum = torch::zeros_like(a);
      sum_sq = torch::zeros_like(a);
    } else if (a.sizes() != sum.sizes()) {
      Fail(ErrorCode::kShape, "NoiseTunnel: the wrapped method changed its output shape between samples");
    }
    sum.add_(a);
    if (options.type != "smoothgrad") sum_sq.add_(a * a);
  }
  const double n = static_cast<double>(options.samples);
  torch::Tensor out;
  if (options.type == "smoothgrad") {
    out = sum / n;
  } else if (options.type == "smoothgrad_sq") {
    out = sum_sq / n;
  } else {
    auto mean = sum / n;
    out = (sum_sq / n - mean * mean).clamp_min(0.0);
  }
  return out.to(x.scalar_type());
}

}  // namespace tabsight::attribution
