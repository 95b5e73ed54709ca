// Guided Backprop (Springenberg et al. 2015) and Guided GradCAM, batched.
// Captum 0.8's conventions: the gradient through each ReLU module becomes
// relu(grad_out) · 1[x > 0]; functional relus are left alone. Our modules
// route their ReLUs through models::Relu, which switches to the guided
// function while a models::GuidedReluScope is alive on the thread.
#pragma once

#include <torch/torch.h>

#include <string>

#include "attribution/gradcam.h"
#include "attribution/target.h"

namespace tabsight::attribution {

// Plain input gradient ∂F/∂x (Captum's Saliency), |∂F/∂x| when `abs`.
torch::Tensor Saliency(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index, bool abs);

// The guided gradient of each example's score with respect to its input.
torch::Tensor GuidedBackprop(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index);

// Guided Backprop × GradCAM (with ReLU, nearest-upsampled to the inputs'
// H×W), broadcast over channels: N×C×H×W. `cam_target` must compute the
// same scores as `f` and expose the CAM layer.
torch::Tensor GuidedGradCam(const TargetFn& f, const ActivationTargetFn& cam_target, const torch::Tensor& x,
                            const torch::Tensor& index);

}  // namespace tabsight::attribution
