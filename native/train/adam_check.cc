#include "train/adam_check.h"

#include <algorithm>
#include <memory>

#include "common/error.h"
#include "train/fused_adam.h"

namespace tabsight::train {

namespace {

// Relative to the reference's largest magnitude; float64 on the CPU.
double Rel(const torch::Tensor& x, const torch::Tensor& y) {
  auto xd = x.detach().to(torch::kCPU, torch::kFloat64), yd = y.detach().to(torch::kCPU, torch::kFloat64);
  return (xd - yd).abs().max().item<double>() / std::max(1e-30, yd.abs().max().item<double>());
}

template <typename State>
const State& StateOf(torch::optim::Optimizer& opt, const torch::Tensor& p) {
  return static_cast<const State&>(*opt.state().at(OptimizerStateKey(p)));
}

template <typename State>
void Compare(torch::optim::Optimizer& ref, torch::optim::Optimizer& ours, const std::vector<torch::Tensor>& a,
             const std::vector<torch::Tensor>& b, AdamCheck& r) {
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& sa = StateOf<State>(ref, a[i]);
    const auto& sb = StateOf<State>(ours, b[i]);
    r.max_moment_diff = std::max({r.max_moment_diff, Rel(sb.exp_avg(), sa.exp_avg()), Rel(sb.exp_avg_sq(), sa.exp_avg_sq())});
    r.steps.push_back(sb.step());
  }
}

}  // namespace

AdamCheck CompareAdamWithLibTorch(const std::string& optimizer, const std::string& impl, int64_t steps, double lr,
                                  double weight_decay, uint64_t seed, const torch::Device& device) {
  if (optimizer != "adam" && optimizer != "adamw") Fail(ErrorCode::kConfig, "Expected adam or adamw for optimizer");
  if (impl != "fused" && impl != "multiTensor") Fail(ErrorCode::kConfig, "Expected fused or multiTensor for impl");
  if (impl == "fused" && !device.is_cpu()) Fail(ErrorCode::kConfig, "The fused Adam step runs on the CPU only");
  if (steps < 2) Fail(ErrorCode::kConfig, "Expected at least 2 steps");
  const bool decoupled = optimizer == "adamw";
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  std::vector<torch::Tensor> init = {
      torch::randn({64, 3, 7, 7}, gen, opts).contiguous(torch::MemoryFormat::ChannelsLast),
      torch::randn({300, 1000}, gen, opts), torch::randn({257}, gen, opts), torch::randn({6, 5, 3, 3}, gen, opts)};
  std::vector<torch::Tensor> a, b;
  for (auto& t : init) {
    a.push_back(t.to(device).clone(torch::MemoryFormat::Preserve).requires_grad_(true));
    b.push_back(t.to(device).clone(torch::MemoryFormat::Preserve).requires_grad_(true));
  }
  std::unique_ptr<torch::optim::Optimizer> ref, ours;
  if (decoupled) {
    ref = std::make_unique<torch::optim::AdamW>(a, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
    ours = std::make_unique<torch::optim::AdamW>(b, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
  } else {
    ref = std::make_unique<torch::optim::Adam>(a, torch::optim::AdamOptions(lr).weight_decay(weight_decay));
    ours = std::make_unique<torch::optim::Adam>(b, torch::optim::AdamOptions(lr).weight_decay(weight_decay));
  }
  for (int64_t s = 0; s < steps; ++s) {
    for (size_t i = 0; i < init.size(); ++i) {
      // Gradients of mixed scale, some near 0, as real ones are.
      auto g = torch::randn(init[i].sizes(), gen, opts) * torch::rand(init[i].sizes(), gen, opts).pow(4);
      // Parameter 0 is channels_last like its gradient; parameter 3 is NCHW
      // with a channels_last gradient.
      if (i == 0 || i == 3) g = g.contiguous(torch::MemoryFormat::ChannelsLast);
      g = g.to(device);
      a[i].mutable_grad() = g.clone(torch::MemoryFormat::Preserve);
      b[i].mutable_grad() = g.clone(torch::MemoryFormat::Preserve);
      if (i == 2 && s == 1) {
        a[i].mutable_grad().reset();
        b[i].mutable_grad().reset();
      }
    }
    ref->step();
    if (impl == "fused") {
      FusedAdamStep(*ours, decoupled);
    } else {
      MultiTensorAdamStep(*ours, decoupled);
    }
  }
  AdamCheck r;
  for (size_t i = 0; i < init.size(); ++i) {
    r.max_param_diff = std::max(r.max_param_diff, Rel(b[i], a[i]));
    r.max_update = std::max(r.max_update, Rel(a[i], init[i]));
  }
  if (decoupled) {
    Compare<torch::optim::AdamWParamState>(*ref, *ours, a, b, r);
  } else {
    Compare<torch::optim::AdamParamState>(*ref, *ours, a, b, r);
  }
  return r;
}

}  // namespace tabsight::train
