#include "models/mlp.h"

#include "common/error.h"
#include "models/batch_norm.h"
#include "models/guided_relu.h"

namespace tabsight::models {

namespace nn = torch::nn;

namespace {
void KaimingInit(nn::Sequential& seq) {
  for (auto& module : seq->modules(/*include_self=*/false)) {
    if (auto* linear = module->as<nn::Linear>()) {
      nn::init::kaiming_normal_(linear->weight, /*a=*/0.0, torch::kFanIn, torch::kReLU);
      if (linear->bias.defined()) nn::init::zeros_(linear->bias);
    }
  }
}
}  // namespace

TabularEncoderImpl::TabularEncoderImpl(int64_t in_features, int64_t hidden, int64_t layers)
    : in_features_(in_features), hidden_(hidden) {
  if (in_features < 1) Fail(ErrorCode::kConfig, "Expected positive integer for tabular input features");
  if (hidden < 1) Fail(ErrorCode::kConfig, "Expected positive integer for model.tabularHidden");
  if (layers < 1) Fail(ErrorCode::kConfig, "Expected positive integer for model.tabularLayers");
  encoder = nn::Sequential(nn::Linear(in_features, hidden));
  for (int64_t i = 1; i < layers; ++i) {
    encoder->push_back(nn::BatchNorm1d(hidden));
    encoder->push_back(nn::ReLU());
    encoder->push_back(nn::Linear(hidden, hidden));
  }
  register_module("encoder", encoder);
  KaimingInit(encoder);  // MMCL initialises the tabular encoder with Kaiming
}

torch::Tensor TabularEncoderImpl::forward(const torch::Tensor& x) {
  if (x.dim() != 2 || x.size(1) != in_features_) {
    Fail(ErrorCode::kShape, "Expected tabular rows of shape [N, " + std::to_string(in_features_) +
                                "] but received " + c10::str(x.sizes()));
  }
  return ForwardSequential(encoder, x);
}

ProjectionHeadImpl::ProjectionHeadImpl(int64_t in_features, int64_t hidden, int64_t out_features, bool batch_norm) {
  if (hidden < 1 || out_features < 1) Fail(ErrorCode::kConfig, "Expected positive sizes for the projection head");
  layers = batch_norm ? nn::Sequential(nn::Linear(in_features, hidden), nn::BatchNorm1d(hidden), nn::ReLU(),
                                       nn::Linear(hidden, out_features))
                      : nn::Sequential(nn::Linear(in_features, hidden), nn::ReLU(), nn::Linear(hidden, out_features));
  register_module("layers", layers);
}

torch::Tensor ProjectionHeadImpl::forward(const torch::Tensor& x) {
  if (!GuidedReluActive()) return ForwardSequential(layers, x);
  // Guided Backprop through a target that uses the head (projection,
  // similarity): its ReLU is guided too, as Captum hooks every nn.ReLU of
  // the model it is given. Attribution runs in eval mode, so the other
  // modules are their plain forward.
  torch::Tensor h = x;
  for (auto& module : *layers) h = module.ptr()->as<torch::nn::ReLU>() ? GuidedRelu(h) : module.forward<torch::Tensor>(h);
  return h;
}

}  // namespace tabsight::models
