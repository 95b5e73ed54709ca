#include "models/guided_relu.h"

namespace tabsight::models {

namespace {

thread_local bool guided_relu_active = false;

struct GuidedReluFunction : public torch::autograd::Function<GuidedReluFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto out = torch::relu(x);
    ctx->save_for_backward({out});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // relu(x) > 0 exactly where x > 0.
    const auto out = ctx->get_saved_variables()[0];
    return {torch::relu(grad_outputs[0]).masked_fill(out <= 0, 0)};
  }
};

}  // namespace

bool GuidedReluActive() { return guided_relu_active; }

GuidedReluScope::GuidedReluScope() : previous_(guided_relu_active) { guided_relu_active = true; }
GuidedReluScope::~GuidedReluScope() { guided_relu_active = previous_; }

torch::Tensor GuidedRelu(const torch::Tensor& x) { return GuidedReluFunction::apply(x); }

torch::Tensor Relu(torch::nn::ReLU& module, const torch::Tensor& x) {
  return guided_relu_active ? GuidedRelu(x) : module(x);
}

torch::Tensor Relu(const torch::Tensor& x) { return guided_relu_active ? GuidedRelu(x) : torch::relu(x); }

}  // namespace tabsight::models
