// ResNet-18/50 image encoders with torchvision's architecture and parameter
// names (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ...), so weights
// travel to and from PyTorch. The forward pass returns the pooled features;
// there is no fc. The ReLUs honour Guided Backprop mode (models/guided_relu.h).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace tabsight::models {

struct ResNetOptions {
  std::string arch = "resnet18";  // "resnet18" | "resnet50"
  int64_t in_channels = 3;
  // 3×3 stride-1 conv1 and no max-pool, for images of 28 to 64 px.
  bool small_stem = false;
};

struct BasicBlockImpl : torch::nn::Module {
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
  torch::nn::ReLU relu{nullptr};
};
TORCH_MODULE(BasicBlock);

struct BottleneckImpl : torch::nn::Module {
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in_planes, int64_t planes, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
  torch::nn::ReLU relu{nullptr};
};
TORCH_MODULE(Bottleneck);

struct ResNetImpl : torch::nn::Module {
  explicit ResNetImpl(const ResNetOptions& options);

  // Pooled features, N×feature_dim().
  torch::Tensor forward(const torch::Tensor& x);
  // The last residual stage's map (N×C×h×w), before pooling.
  torch::Tensor features(const torch::Tensor& x);
  // Pooled features, like forward(), and in *activation the output of the
  // module named `layer` (one of layer_names: "conv1" is the stem's
  // convolution before bn1, "layerK" a residual stage). The activation is
  // the tensor the rest of the forward consumes, so gradients can be taken
  // with respect to it. Throws kConfig for an unknown name.
  torch::Tensor forward_with_activation(const torch::Tensor& x, const std::string& layer, torch::Tensor* activation);
  static const std::vector<std::string>& layer_names();
  int64_t feature_dim() const { return feature_dim_; }
  const ResNetOptions& options() const { return options_; }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::ReLU relu{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};

 private:
  torch::Tensor Trunk(const torch::Tensor& x, const std::string& layer, torch::Tensor* activation);

  ResNetOptions options_;
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(ResNet);

// Gives every 4-D parameter of `module` (the convolution weights) the memory
// format `format`, in place (set_data: the parameters stay the same tensors,
// so optimisers and module references hold on). With channels_last weights
// and inputs, LibTorch's oneDNN convolutions skip the NCHW <-> blocked
// reorders around every call (docs/design.md, "Memory format").
void SetConvMemoryFormat(torch::nn::Module& module, torch::MemoryFormat format);

}  // namespace tabsight::models
