#include "attribution/runner.h"

#include <algorithm>

#include "attribution/guided_backprop.h"
#include "common/caching_cpu_allocator.h"
#include "common/error.h"

namespace tabsight::attribution {

const std::vector<std::string>& MethodNames() {
  static const std::vector<std::string> names{"integrated_gradients", "saliency", "gradcam", "guided_backprop",
                                              "guided_gradcam"};
  return names;
}

void CheckFinite(const torch::Tensor& x, const std::string& what) {
  auto bad = torch::isfinite(x).logical_not();
  if (x.numel() && bad.any().item<bool>()) {
    auto where = torch::nonzero(bad.reshape({x.size(0), -1}).any(1));
    Fail(ErrorCode::kData, what + " contains NaN or Inf values (example " + std::to_string(where[0].item<int64_t>()) + ")");
  }
}

namespace {

// Runs a per-example gradient method `batch` examples at a time.
torch::Tensor Batched(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& method,
                      const torch::Tensor& x, int64_t batch) {
  const int64_t n = x.size(0);
  if (batch <= 0 || batch >= n) return method(x, Range(0, n, x.device()));
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t m = std::min(batch, n - s);
    parts.push_back(method(x.narrow(0, s, m), Range(s, s + m, x.device())));
  }
  return torch::cat(parts, 0);
}

}  // namespace

MethodResult RunMethod(const Explainable& model, const torch::Tensor& x, const MethodSpec& spec) {
  const auto& names = MethodNames();
  if (std::find(names.begin(), names.end(), spec.name) == names.end()) {
    Fail(ErrorCode::kConfig, "Expected one of integrated_gradients, saliency, gradcam, guided_backprop, guided_gradcam "
                             "for method but received \"" + spec.name + "\"");
  }
  const bool cam = spec.name == "gradcam" || spec.name == "guided_gradcam";
  if (cam && !model.activation_target) Fail(ErrorCode::kConfig, "This model has no layer for " + spec.name);
  if (cam) ValidateGradCamOptions(spec.cam);
  if (spec.name == "integrated_gradients") IntegrationPoints(spec.ig.method, spec.ig.steps);  // validates early
  // IG and the noise tunnel run the network on many same-shaped chunks.
  CpuCacheScope cpu_cache;
  if (spec.noise) ValidateNoiseTunnelOptions(spec.noise_options);
  if (spec.batch_size < 0) Fail(ErrorCode::kConfig, "Expected non-negative integer for batchSize");
  if (x.dim() < 2 || !x.is_floating_point()) Fail(ErrorCode::kShape, "Expected floating-point inputs [N, ...]");
  CheckFinite(x, "images");

  MethodResult result;
  // The baseline comes from the clean inputs, also under noise (as Captum's
  // NoiseTunnel, which perturbs only the inputs).
  torch::Tensor baseline;
  if (spec.name == "integrated_gradients") baseline = MakeBaseline(x, spec.baseline);

  AttributionFn method = [&](const torch::Tensor& inputs) -> torch::Tensor {
    if (spec.name == "integrated_gradients") {
      auto ig = IntegratedGradients(model.target, inputs, baseline, spec.ig, /*index=*/{}, model.ig_split.get());
      if (!spec.noise) {
        result.delta = ig.delta;
        result.scores = ig.scores;
        result.baseline_scores = ig.baseline_scores;
      }
      return ig.attributions;
    }
    return Batched(
        [&](const torch::Tensor& part, const torch::Tensor& index) -> torch::Tensor {
          if (spec.name == "saliency") return Saliency(model.target, part, index, spec.abs);
          if (spec.name == "guided_backprop") return GuidedBackprop(model.target, part, index);
          if (spec.name == "gradcam") return GradCam(model.activation_target, part, index, spec.cam);
          return GuidedGradCam(model.target, model.activation_target, part, index);
        },
        inputs, spec.batch_size);
  };
  result.attributions = spec.noise ? NoiseTunnel(method, x, spec.noise_options) : method(x);
  return result;
}

}  // namespace tabsight::attribution
