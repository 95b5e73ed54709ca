#include "models/folded_resnet.h"

#include <string>
#include <variant>

#include "common/error.h"
#include "models/guided_relu.h"
#include "models/max_pool.h"
#include "models/winograd_conv.h"

namespace tabsight::models {

namespace nn = torch::nn;

namespace {

std::vector<int64_t> Vec(const torch::ExpandingArray<2>& a) { return {(*a)[0], (*a)[1]}; }

// The explicit padding of a Conv2d's options, or null for kValid / kSame.
// LibTorch 1.13 holds it in a c10::variant with its own c10::get_if; LibTorch
// 2.x in a std::variant (c10/util/variant.h is gone). The unqualified call
// finds std::get_if, and argument-dependent lookup adds c10::get_if.
template <typename Padding>
const torch::ExpandingArray<2>* ExplicitPadding(const Padding& padding) {
  using std::get_if;
  return get_if<torch::ExpandingArray<2>>(&padding);
}

// ReLU in place (the conv or sum output it overwrites is saved by no
// backward: convolution saves its input and weight, addition nothing), or
// GuidedRelu while Guided Backprop mode is on, as models::Relu does.
torch::Tensor ReluInPlace(torch::Tensor x) { return GuidedReluActive() ? GuidedRelu(x) : torch::relu_(x); }

}  // namespace

FoldedResNet::Conv FoldConvBatchNorm(nn::Conv2dImpl& conv, nn::BatchNorm2dImpl& bn) {
  if (bn.is_training() || !bn.options.track_running_stats() || !bn.running_mean.defined()) {
    Fail(ErrorCode::kConfig, "Expected eval-mode BatchNorm with running statistics to fold into the convolution");
  }
  const auto* padding = ExplicitPadding(conv.options.padding());
  if (padding == nullptr) Fail(ErrorCode::kConfig, "Expected explicit convolution padding to fold BatchNorm");
  torch::NoGradGuard no_grad;
  const auto f64 = torch::kFloat64;
  const int64_t out = conv.weight.size(0);
  auto gamma = bn.weight.defined() ? bn.weight.to(f64) : torch::ones({out}, conv.weight.options().dtype(f64));
  auto beta = bn.bias.defined() ? bn.bias.to(f64) : torch::zeros({out}, conv.weight.options().dtype(f64));
  // s = γ / √(σ² + ε); W' = s·W; b' = β + s·(b − μ) (b = 0 for our bias-free convs).
  auto scale = gamma / (bn.running_var.to(f64) + bn.options.eps()).sqrt();
  auto shift = conv.bias.defined() ? conv.bias.to(f64) - bn.running_mean.to(f64) : -bn.running_mean.to(f64);
  FoldedResNet::Conv c;
  c.weight = (conv.weight.to(f64) * scale.view({-1, 1, 1, 1})).to(conv.weight.scalar_type()).contiguous();
  c.bias = (beta + scale * shift).to(conv.weight.scalar_type()).contiguous();
  c.stride = Vec(conv.options.stride());
  c.padding = Vec(*padding);
  c.dilation = Vec(conv.options.dilation());
  c.groups = conv.options.groups();
  const std::vector<int64_t> one{1, 1};
  c.winograd = c.groups == 1 && c.weight.size(2) == 3 && c.weight.size(3) == 3 && c.stride == one && c.padding == one &&
               c.dilation == one;
  return c;
}

torch::Tensor FoldedResNet::Conv::operator()(const torch::Tensor& x) const {
  if (winograd) {
    auto y = FoldedConv3x3(x, weight, bias, prepared.get());
    if (y.defined()) return y;
  }
  return torch::conv2d(x, weight, bias, stride, padding, dilation, groups);
}

FoldedResNet::FoldedResNet(ResNetImpl& net) : options_(net.options()), feature_dim_(net.feature_dim()) {
  stem_ = FoldConvBatchNorm(*net.conv1, *net.bn1);
  for (auto* layer : {&net.layer1, &net.layer2, &net.layer3, &net.layer4}) {
    for (auto& module : **layer) {
      Block block;
      torch::nn::Sequential downsample{nullptr};
      if (auto* basic = module.ptr()->as<BasicBlockImpl>()) {
        block.convs = {FoldConvBatchNorm(*basic->conv1, *basic->bn1), FoldConvBatchNorm(*basic->conv2, *basic->bn2)};
        downsample = basic->downsample;
      } else if (auto* bottleneck = module.ptr()->as<BottleneckImpl>()) {
        block.convs = {FoldConvBatchNorm(*bottleneck->conv1, *bottleneck->bn1),
                       FoldConvBatchNorm(*bottleneck->conv2, *bottleneck->bn2),
                       FoldConvBatchNorm(*bottleneck->conv3, *bottleneck->bn3)};
        downsample = bottleneck->downsample;
      } else {
        Fail(ErrorCode::kConfig, "Expected ResNet blocks (BasicBlock or Bottleneck) to fold BatchNorm");
      }
      if (downsample) {
        block.has_downsample = true;
        block.downsample = FoldConvBatchNorm(*downsample->ptr(0)->as<nn::Conv2d>(), *downsample->ptr(1)->as<nn::BatchNorm2d>());
      }
      blocks_.push_back(std::move(block));
    }
  }
}

torch::Tensor FoldedResNet::stem(const torch::Tensor& x) const {
  if (x.dim() != 4 || x.size(1) != options_.in_channels) {
    Fail(ErrorCode::kShape, "Expected images of shape [N, " + std::to_string(options_.in_channels) +
                                ", H, W] but received " + c10::str(x.sizes()));
  }
  return stem_(x);
}

torch::Tensor FoldedResNet::stem_adjoint(const torch::Tensor& g, at::IntArrayRef sizes) const {
  // The adjoint of conv2d(·, W) is conv_transpose2d(·, W) with the output
  // padding that restores the input size where the stride leaves a
  // remainder; those last rows or columns get what the windows reaching
  // them contribute (zero where none does).
  std::vector<int64_t> output_padding(2);
  for (int d = 0; d < 2; ++d) {
    const int64_t k = stem_.weight.size(2 + d);
    const int64_t natural = (g.size(2 + d) - 1) * stem_.stride[d] - 2 * stem_.padding[d] + stem_.dilation[d] * (k - 1) + 1;
    output_padding[d] = sizes[2 + d] - natural;
  }
  return torch::conv_transpose2d(g, stem_.weight, /*bias=*/{}, stem_.stride, stem_.padding, output_padding,
                                 stem_.groups, stem_.dilation);
}

torch::Tensor FoldedResNet::forward(const torch::Tensor& x) const { return from_stem(stem(x)); }

torch::Tensor FoldedResNet::from_stem(const torch::Tensor& u) const {
  // A leaf that requires grad (IG's path points in the stem's output space)
  // cannot be overwritten; a convolution's output can.
  auto out = u.is_leaf() && u.requires_grad() ? Relu(u) : ReluInPlace(u);
  if (!options_.small_stem) out = MaxPoolStem(out);
  for (const auto& block : blocks_) {
    auto h = out;
    const size_t last = block.convs.size() - 1;
    for (size_t i = 0; i < last; ++i) h = ReluInPlace(block.convs[i](h));
    h = block.convs[last](h);
    // In place: the convolution's output is saved by no backward.
    h.add_(block.has_downsample ? block.downsample(out) : out);
    out = ReluInPlace(h);
  }
  return torch::flatten(torch::adaptive_avg_pool2d(out, {1, 1}), 1);
}

}  // namespace tabsight::models
