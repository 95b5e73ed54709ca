// An inference-only copy of an eval-mode ResNet with every BatchNorm folded
// into the convolution before it, for attribution (Integrated Gradients,
// saliency, Guided Backprop).
//
// What is folded and why it is exact: in eval mode BatchNorm uses its
// running statistics, so it is a fixed affine map per channel,
//   bn(z) = γ (z − μ) / √(σ² + ε) + β = s·z + (β − s·μ),  s = γ / √(σ² + ε),
// and a convolution is linear in its weights, so
//   bn(conv(x; W)) = conv(x; s·W) + (β − s·μ)
// holds exactly in real arithmetic: W' = s·W (per output channel), bias
// b' = β − s·μ. W' and b' are computed in float64 and rounded once to the
// weights' dtype, so the folded network differs from the unfolded one only
// by float rounding (about one ulp per layer). Everything after a BatchNorm
// (ReLUs, residual sums, pooling) sees the same values, so the ReLUs follow
// Guided Backprop mode (models/guided_relu.h) as the module does. Each
// forward/backward pass then skips 20 (ResNet-18) or 53 (ResNet-50)
// BatchNorm passes over the activations.
//
// The copy holds plain tensors that never require grad: no weight gradient
// is computed, and the source module (training, checkpoints) is untouched.
// Not for training, and not for GradCAM at "conv1" (whose activation is the
// convolution's output before bn1): CAM methods use the unfolded module.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "models/winograd_conv.h"

#include <vector>

#include "models/resnet.h"

namespace tabsight::models {

class FoldedResNet {
 public:
  // Throws kConfig when a BatchNorm is in training mode or has no running
  // statistics (folding needs eval-mode BatchNorm).
  explicit FoldedResNet(ResNetImpl& net);

  // Pooled features, N×feature_dim(), as ResNetImpl::forward.
  torch::Tensor forward(const torch::Tensor& x) const;

  // forward(x) == from_stem(stem(x)). The stem (the first convolution with
  // bn1 folded in) is affine in x, stem(x) = L·x + c; stem_adjoint(g, sizes)
  // is Lᵀ·g, shaped `sizes` (the input's), for Integrated Gradients'
  // AffineSplit (attribution/integrated_gradients.h).
  torch::Tensor stem(const torch::Tensor& x) const;
  torch::Tensor from_stem(const torch::Tensor& u) const;
  torch::Tensor stem_adjoint(const torch::Tensor& g, at::IntArrayRef sizes) const;
  int64_t feature_dim() const { return feature_dim_; }

  // A convolution with its BatchNorm folded in: conv2d(x, weight, bias).
  // The 3×3 stride-1 ones (winograd) run by Winograd where
  // models::FoldedConv3x3 takes them (models/winograd_conv.h).
  struct Conv {
    torch::Tensor weight, bias;
    std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
    int64_t groups = 1;
    bool winograd = false;
    // Its transformed weights for tabsight's own Winograd kernels (made at
    // first use; copies of this Conv share them, as they share `weight`).
    std::shared_ptr<WinogradWeights> prepared = std::make_shared<WinogradWeights>();
    torch::Tensor operator()(const torch::Tensor& x) const;
  };

 private:
  // A residual block: convs[0..k−1] with ReLUs between them, then the sum
  // with the (folded) downsample or the identity, then a ReLU.
  struct Block {
    std::vector<Conv> convs;
    bool has_downsample = false;
    Conv downsample;
  };

  ResNetOptions options_;
  int64_t feature_dim_ = 0;
  Conv stem_;
  std::vector<Block> blocks_;
};

// Folds eval-mode `bn` into `conv` (see above). Exposed for tests.
FoldedResNet::Conv FoldConvBatchNorm(torch::nn::Conv2dImpl& conv, torch::nn::BatchNorm2dImpl& bn);

}  // namespace tabsight::models
