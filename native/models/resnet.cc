#include "models/resnet.h"

#include <algorithm>

#include "common/error.h"
#include "models/batch_norm.h"
#include "models/fused_bn_relu.h"
#include "models/guided_relu.h"
#include "models/max_pool.h"
#include "models/winograd_conv.h"

namespace tabsight::models {

namespace nn = torch::nn;

namespace {

nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

nn::Sequential Downsample(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(Conv(in, out, /*kernel=*/1, stride, /*padding=*/0), nn::BatchNorm2d(out));
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", Conv(in_planes, planes, /*kernel=*/3, stride, /*padding=*/1));
  bn1 = register_module("bn1", nn::BatchNorm2d(planes));
  relu = register_module("relu", nn::ReLU(nn::ReLUOptions().inplace(true)));
  conv2 = register_module("conv2", Conv(planes, planes, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  bn2 = register_module("bn2", nn::BatchNorm2d(planes));
  if (stride != 1 || in_planes != planes * kExpansion) {
    downsample = register_module("downsample", Downsample(in_planes, planes * kExpansion, stride));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  auto out = BatchNormRelu(bn1, relu, Convolve(conv1, x));
  out = Convolve(conv2, out);
  return BatchNormRelu(bn2, relu, out, downsample ? ForwardSequential(downsample, x) : x);
}

BottleneckImpl::BottleneckImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  // torchvision's v1.5: the stride sits on the 3×3 conv.
  conv1 = register_module("conv1", Conv(in_planes, planes, /*kernel=*/1, /*stride=*/1, /*padding=*/0));
  bn1 = register_module("bn1", nn::BatchNorm2d(planes));
  conv2 = register_module("conv2", Conv(planes, planes, /*kernel=*/3, stride, /*padding=*/1));
  bn2 = register_module("bn2", nn::BatchNorm2d(planes));
  conv3 = register_module("conv3", Conv(planes, planes * kExpansion, /*kernel=*/1, /*stride=*/1, /*padding=*/0));
  bn3 = register_module("bn3", nn::BatchNorm2d(planes * kExpansion));
  relu = register_module("relu", nn::ReLU(nn::ReLUOptions().inplace(true)));
  if (stride != 1 || in_planes != planes * kExpansion) {
    downsample = register_module("downsample", Downsample(in_planes, planes * kExpansion, stride));
  }
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  auto out = BatchNormRelu(bn1, relu, conv1(x));
  out = BatchNormRelu(bn2, relu, Convolve(conv2, out));
  out = conv3(out);
  return BatchNormRelu(bn3, relu, out, downsample ? ForwardSequential(downsample, x) : x);
}

namespace {

template <typename Block>
nn::Sequential MakeLayer(int64_t& in_planes, int64_t planes, int64_t blocks, int64_t stride) {
  nn::Sequential layer;
  layer->push_back(Block(in_planes, planes, stride));
  in_planes = planes * Block::Impl::kExpansion;
  for (int64_t i = 1; i < blocks; ++i) layer->push_back(Block(in_planes, planes, /*stride=*/1));
  return layer;
}

}  // namespace

ResNetImpl::ResNetImpl(const ResNetOptions& options) : options_(options) {
  if (options.in_channels < 1) Fail(ErrorCode::kConfig, "Expected positive integer for model.inChannels");
  if (options.small_stem) {
    conv1 = register_module("conv1", Conv(options.in_channels, 64, /*kernel=*/3, /*stride=*/1, /*padding=*/1));
  } else {
    conv1 = register_module("conv1", Conv(options.in_channels, 64, /*kernel=*/7, /*stride=*/2, /*padding=*/3));
  }
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  relu = register_module("relu", nn::ReLU(nn::ReLUOptions().inplace(true)));

  int64_t in_planes = 64;
  if (options.arch == "resnet18") {
    layer1 = register_module("layer1", MakeLayer<BasicBlock>(in_planes, 64, 2, 1));
    layer2 = register_module("layer2", MakeLayer<BasicBlock>(in_planes, 128, 2, 2));
    layer3 = register_module("layer3", MakeLayer<BasicBlock>(in_planes, 256, 2, 2));
    layer4 = register_module("layer4", MakeLayer<BasicBlock>(in_planes, 512, 2, 2));
  } else if (options.arch == "resnet50") {
    layer1 = register_module("layer1", MakeLayer<Bottleneck>(in_planes, 64, 3, 1));
    layer2 = register_module("layer2", MakeLayer<Bottleneck>(in_planes, 128, 4, 2));
    layer3 = register_module("layer3", MakeLayer<Bottleneck>(in_planes, 256, 6, 2));
    layer4 = register_module("layer4", MakeLayer<Bottleneck>(in_planes, 512, 3, 2));
  } else {
    Fail(ErrorCode::kConfig, "Expected one of resnet18, resnet50 for model.arch but received \"" + options.arch + "\"");
  }
  feature_dim_ = in_planes;

  // torchvision's initialisation.
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, /*a=*/0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

const std::vector<std::string>& ResNetImpl::layer_names() {
  static const std::vector<std::string> names{"conv1", "layer1", "layer2", "layer3", "layer4"};
  return names;
}

torch::Tensor ResNetImpl::Trunk(const torch::Tensor& x, const std::string& layer, torch::Tensor* activation) {
  if (x.dim() != 4 || x.size(1) != options_.in_channels) {
    Fail(ErrorCode::kShape, "Expected images of shape [N, " + std::to_string(options_.in_channels) +
                                ", H, W] but received " + c10::str(x.sizes()));
  }
  auto tap = [&](const char* name, torch::Tensor t) {
    if (activation && layer == name) *activation = t;
    return t;
  };
  auto out = BatchNormRelu(bn1, relu, tap("conv1", conv1(x)));
  // torchvision's maxpool (3×3, stride 2, padding 1; no parameters, so
  // nothing to name), by the NCHW kernel where it applies (models/max_pool.h).
  if (!options_.small_stem) out = MaxPoolStem(out);
  out = tap("layer1", layer1->forward(out));
  out = tap("layer2", layer2->forward(out));
  out = tap("layer3", layer3->forward(out));
  return tap("layer4", layer4->forward(out));
}

torch::Tensor ResNetImpl::features(const torch::Tensor& x) { return Trunk(x, "", nullptr); }

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  return torch::flatten(torch::adaptive_avg_pool2d(features(x), {1, 1}), 1);
}

torch::Tensor ResNetImpl::forward_with_activation(const torch::Tensor& x, const std::string& layer,
                                                  torch::Tensor* activation) {
  const auto& names = layer_names();
  if (std::find(names.begin(), names.end(), layer) == names.end()) {
    Fail(ErrorCode::kConfig, "Expected one of conv1, layer1, layer2, layer3, layer4 for layer but received \"" + layer + "\"");
  }
  return torch::flatten(torch::adaptive_avg_pool2d(Trunk(x, layer, activation), {1, 1}), 1);
}

void SetConvMemoryFormat(torch::nn::Module& module, torch::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4 && !p.is_contiguous(format)) p.set_data(p.data().contiguous(format));
  }
}

}  // namespace tabsight::models
