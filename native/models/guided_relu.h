// ReLU with an optional Guided Backprop gradient (Springenberg et al. 2015,
// Captum's GuidedBackprop). While a GuidedReluScope is alive on a thread, the
// ReLUs of our modules built on that thread use a custom autograd function
// whose backward is relu(grad_out) · 1[x > 0]. With no scope alive, Relu()
// calls the module itself, so the forward and backward stay bit-identical to
// a plain nn::ReLU (in place where the module is).
//
// The mode is read at forward time: the graph records which function each
// ReLU used, so a backward pass later follows the mode of its forward.
#pragma once

#include <torch/torch.h>

namespace tabsight::models {

// True while a GuidedReluScope is alive on this thread.
bool GuidedReluActive();

// Turns guided mode on for this thread; restores the previous state on exit.
class GuidedReluScope {
 public:
  GuidedReluScope();
  ~GuidedReluScope();
  GuidedReluScope(const GuidedReluScope&) = delete;
  GuidedReluScope& operator=(const GuidedReluScope&) = delete;

 private:
  bool previous_;
};

// relu(x) whose backward is relu(grad_out) · 1[x > 0]. Never in place.
torch::Tensor GuidedRelu(const torch::Tensor& x);

// The module's ReLU, or GuidedRelu while guided mode is on.
torch::Tensor Relu(torch::nn::ReLU& module, const torch::Tensor& x);

// Functional form for hand-built networks: torch::relu, or GuidedRelu while
// guided mode is on.
torch::Tensor Relu(const torch::Tensor& x);

}  // namespace tabsight::models
