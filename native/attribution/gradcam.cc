#include "attribution/gradcam.h"

#include "common/error.h"

namespace tabsight::attribution {

void ValidateGradCamOptions(const GradCamOptions& options) {
  if (options.upsample != "none" && options.upsample != "nearest" && options.upsample != "bilinear") {
    Fail(ErrorCode::kConfig, "Expected one of none, nearest, bilinear for upsample but received \"" + options.upsample + "\"");
  }
}

torch::Tensor ResizeMap(const torch::Tensor& map, int64_t h_out, int64_t w_out, const std::string& mode) {
  namespace F = torch::nn::functional;
  auto opts = F::InterpolateFuncOptions().size(std::vector<int64_t>{h_out, w_out});
  if (mode == "nearest") return F::interpolate(map, opts.mode(torch::kNearest));
  if (mode == "bilinear") return F::interpolate(map, opts.mode(torch::kBilinear).align_corners(false));
  Fail(ErrorCode::kConfig, "Expected nearest or bilinear for upsample but received \"" + mode + "\"");
}

torch::Tensor GradCam(const ActivationTargetFn& f, const torch::Tensor& x, const torch::Tensor& index,
                      const GradCamOptions& options) {
  ValidateGradCamOptions(options);
  torch::Tensor cam;
  {
    torch::AutoGradMode enable(true);
    // The activation needs a graph back to something that requires grad.
    auto input = x.detach().requires_grad_(true);
    torch::Tensor activation;
    auto scores = CheckScores(f(input, index, &activation), x.size(0));
    if (!activation.defined() || activation.dim() != 4) {
      Fail(ErrorCode::kShape, "Expected a layer activation of rank 4 [N, C, h, w] for GradCAM");
    }
    auto grads = GradientOf(scores, activation);
    auto weights = grads.mean({2, 3}, /*keepdim=*/true);
    cam = (weights * activation.detach()).sum(1, /*keepdim=*/true);
  }
  if (options.relu) cam = torch::relu(cam);
  if (options.normalize) {
    auto flat = cam.flatten(1);
    auto lo = std::get<0>(flat.min(1, /*keepdim=*/true));
    flat = flat - lo;
    auto hi = std::get<0>(flat.max(1, /*keepdim=*/true));
    cam = (flat / (hi + 1e-7)).view_as(cam);
  }
  if (options.upsample != "none" && x.dim() == 4) cam = ResizeMap(cam, x.size(2), x.size(3), options.upsample);
  return cam;
}

}  // namespace tabsight::attribution
