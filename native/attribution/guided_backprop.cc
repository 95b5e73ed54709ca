#include "attribution/guided_backprop.h"

#include "common/error.h"
#include "models/guided_relu.h"

namespace tabsight::attribution {

torch::Tensor Saliency(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index, bool abs) {
  auto grad = InputGradient(f, x, index);
  return abs ? grad.abs() : grad;
}

torch::Tensor GuidedBackprop(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index) {
  models::GuidedReluScope guided;
  return InputGradient(f, x, index);
}

torch::Tensor GuidedGradCam(const TargetFn& f, const ActivationTargetFn& cam_target, const torch::Tensor& x,
                            const torch::Tensor& index) {
  if (x.dim() != 4) Fail(ErrorCode::kShape, "Expected images of shape [N, C, H, W] for Guided GradCAM");
  GradCamOptions cam_options;
  cam_options.relu = true;
  cam_options.upsample = "nearest";
  auto cam = GradCam(cam_target, x, index, cam_options);
  return GuidedBackprop(f, x, index) * cam;
}

}  // namespace tabsight::attribution
