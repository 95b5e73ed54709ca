// One entry point for every image-space method, so the binding and the tests
// share the dispatch: integrated_gradients, saliency, gradcam,
// guided_backprop, guided_gradcam, each optionally inside a NoiseTunnel.
// Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "attribution/gradcam.h"
#include "attribution/integrated_gradients.h"
#include "attribution/noise_tunnel.h"
#include "attribution/target.h"

namespace tabsight::attribution {

// A model seen through its target: scores, and optionally a CAM layer.
struct Explainable {
  TargetFn target;
  ActivationTargetFn activation_target;  // empty when the model has no CAM layer
  // Integrated Gradients through target = rest ∘ affine (null: directly).
  std::shared_ptr<const AffineSplit> ig_split;
};

struct MethodSpec {
  std::string name;        // integrated_gradients | saliency | gradcam | guided_backprop | guided_gradcam
  IgOptions ig;
  BaselineSpec baseline;   // integrated_gradients
  GradCamOptions cam;      // gradcam
  bool abs = true;         // saliency: |∂F/∂x| (Captum's default)
  int64_t batch_size = 0;  // examples per pass for the gradient methods (0: all at once)
  bool noise = false;      // wrap in a NoiseTunnel
  NoiseTunnelOptions noise_options;
};

struct MethodResult {
  torch::Tensor attributions;
  torch::Tensor delta, scores, baseline_scores;  // integrated_gradients without noise only
};

const std::vector<std::string>& MethodNames();

MethodResult RunMethod(const Explainable& model, const torch::Tensor& x, const MethodSpec& spec);

// Throws kData naming the first example that holds NaN or Inf.
void CheckFinite(const torch::Tensor& x, const std::string& what);

}  // namespace tabsight::attribution
