// GradCAM (Selvaraju et al. 2017) with Captum 0.8's LayerGradCam
// conventions: channel weights = spatial mean of ∂F/∂A, cam = Σ_c w_c A_c
// (N×1×h×w), no ReLU and no resizing unless asked. pytorch-grad-cam's
// post-processing is available as options: ReLU, per-image min–max
// normalisation, then bilinear resizing. Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include <string>

#include "attribution/target.h"

namespace tabsight::attribution {

struct GradCamOptions {
  bool relu = false;               // Captum's relu_attributions
  bool normalize = false;          // per-image (cam − min) / (max − min + 1e-7), before resizing
  std::string upsample = "none";   // none | nearest (Captum's interpolate) | bilinear (pytorch-grad-cam)
};

void ValidateGradCamOptions(const GradCamOptions& options);

// N×1×h×w maps; upsampled to the inputs' H×W unless upsample is "none".
torch::Tensor GradCam(const ActivationTargetFn& f, const torch::Tensor& x, const torch::Tensor& index,
                      const GradCamOptions& options);

// Resizes N×1×h×w maps to h_out×w_out: "nearest" as torch's
// F.interpolate(mode='nearest'), "bilinear" with align_corners=False
// (OpenCV's INTER_LINEAR centres, as pytorch-grad-cam's cv2.resize).
torch::Tensor ResizeMap(const torch::Tensor& map, int64_t h_out, int64_t w_out, const std::string& mode);

}  // namespace tabsight::attribution
