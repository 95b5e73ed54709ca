#include "train/fused_adam.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

#include "common/env.h"
#include "common/error.h"

namespace tabsight::train {

namespace {

template <typename K>
K StateKeyFor(const torch::Tensor& param) {
  void* ptr = param.unsafeGetTensorImpl();
  if constexpr (std::is_same_v<K, std::string>) {
    std::ostringstream ss;
    ss << ptr;
    return ss.str();
  } else {
    return K(ptr);
  }
}

struct Hyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad;
};

// `t` with `param`'s layout: itself when the strides already match, else a
// copy. One linear pass over memory then visits the same logical element of
// the parameter, its gradient and both moments.
torch::Tensor LikeParam(const torch::Tensor& t, const torch::Tensor& param) {
  return t.strides() == param.strides() ? t : torch::empty_like(param).copy_(t);
}

// LibTorch 1.13's Adam/AdamW arithmetic (torch/csrc/api/src/optim/adam.cpp,
// adamw.cpp), element by element in one pass. Each scalar is rounded to float
// as ATen rounds a Scalar for a float tensor.
void FusedStep(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& m, torch::Tensor& v, int64_t step,
               const Hyper& h, bool decoupled) {
  const double bc1 = 1 - std::pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(h.beta2, static_cast<double>(step));
  const float wd = static_cast<float>(decoupled ? 0.0 : h.weight_decay);
  const float shrink = static_cast<float>(1 - h.lr * h.weight_decay);
  const bool shrink_p = decoupled && h.weight_decay != 0;
  const float b1 = static_cast<float>(h.beta1), a1 = static_cast<float>(1 - h.beta1);
  const float b2 = static_cast<float>(h.beta2), a2 = static_cast<float>(1 - h.beta2);
  const float root_bc2 = static_cast<float>(std::sqrt(bc2));
  const float eps = static_cast<float>(h.eps);
  const float neg_step = static_cast<float>(-h.lr / bc1);
  float* pp = p.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  // A grain of 32k elements: a parameter below 128 KiB stays on one thread.
  at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float pi = pp[i];
      if (shrink_p) pi = pi * shrink;
      const float gi = wd != 0.0f ? gp[i] + wd * pi : gp[i];
      const float mi = mp[i] * b1 + a1 * gi;
      const float vi = vp[i] * b2 + a2 * gi * gi;
      mp[i] = mi;
      vp[i] = vi;
      const float denom = std::sqrt(vi) / root_bc2 + eps;
      pp[i] = pi + neg_step * (mi / denom);
    }
  });
}

// A group's hyperparameters; amsgrad fails (neither step implements it).
template <typename Options>
Hyper HyperOf(const torch::optim::OptimizerParamGroup& group, const char* which) {
  const auto& o = static_cast<const Options&>(group.options());
  const Hyper h{o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()), o.eps(), o.weight_decay(), o.amsgrad()};
  if (h.amsgrad) Fail(ErrorCode::kConfig, std::string("the ") + which + " Adam step does not implement amsgrad");
  return h;
}

// `p`'s state in the optimizer's map, created as torch::optim creates it
// (step 0, zero moments in the parameter's layout), with its step count
// advanced: the state this step updates.
template <typename State>
State& NextState(torch::optim::Optimizer& opt, const torch::Tensor& p) {
  if (p.grad().is_sparse()) Fail(ErrorCode::kTorch, "Adam does not support sparse gradients");
  auto& state = opt.state();
  const auto key = OptimizerStateKey(p);
  auto it = state.find(key);
  if (it == state.end()) {
    auto s = std::make_unique<State>();
    s->step(0);
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    it = state.emplace(key, std::move(s)).first;
  }
  auto& s = static_cast<State&>(*it->second);
  s.step(s.step() + 1);
  return s;
}

template <typename State, typename Options>
void StepAll(torch::optim::Optimizer& opt, bool decoupled) {
  torch::NoGradGuard no_grad;
  for (auto& group : opt.param_groups()) {
    const Hyper h = HyperOf<Options>(group, "fused");
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!p.device().is_cpu() || p.scalar_type() != torch::kFloat32 || !p.is_non_overlapping_and_dense()) {
        Fail(ErrorCode::kTorch, "the fused Adam step takes dense float32 CPU parameters; use optimizer.step() for others");
      }
      auto& s = NextState<State>(opt, p);
      auto data = p.data();
      // Moments restored from elsewhere keep the parameter's layout from here on.
      if (s.exp_avg().strides() != data.strides()) s.exp_avg(LikeParam(s.exp_avg(), data));
      if (s.exp_avg_sq().strides() != data.strides()) s.exp_avg_sq(LikeParam(s.exp_avg_sq(), data));
      FusedStep(data, LikeParam(p.grad(), data), s.exp_avg(), s.exp_avg_sq(), s.step(), h, decoupled);
    }
  }
}

// The lists one multi-tensor update takes: the parameters of a group that
// have a gradient and the same step count, their gradients and moments.
struct Lists {
  std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq;
};

template <typename State, typename Options>
void MultiTensorStepAll(torch::optim::Optimizer& opt, bool decoupled) {
  torch::NoGradGuard no_grad;
  for (auto& group : opt.param_groups()) {
    const Hyper h = HyperOf<Options>(group, "multi-tensor");
    // A parameter that went without a gradient for a step lags in its step
    // count, and so in its bias corrections: one update per step count.
    std::map<int64_t, Lists> by_step;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& s = NextState<State>(opt, p);
      Lists& l = by_step[s.step()];
      l.params.push_back(p);
      l.grads.push_back(p.grad());
      l.exp_avg.push_back(s.exp_avg());
      l.exp_avg_sq.push_back(s.exp_avg_sq());
    }
    for (auto& [step, l] : by_step) {
      // torch::optim::Adam / AdamW's operations, in its order, each applied
      // to every tensor of the list at once.
      const double bc1 = 1 - std::pow(h.beta1, static_cast<double>(step));
      const double bc2 = 1 - std::pow(h.beta2, static_cast<double>(step));
      std::vector<torch::Tensor> grads = l.grads;
      if (h.weight_decay != 0) {
        if (decoupled) {
          at::_foreach_mul_(l.params, at::Scalar(1 - h.lr * h.weight_decay));
        } else {
          grads = at::_foreach_add(l.grads, l.params, at::Scalar(h.weight_decay));
        }
      }
      at::_foreach_mul_(l.exp_avg, at::Scalar(h.beta1));
      at::_foreach_add_(l.exp_avg, grads, at::Scalar(1 - h.beta1));
      at::_foreach_mul_(l.exp_avg_sq, at::Scalar(h.beta2));
      at::_foreach_addcmul_(l.exp_avg_sq, grads, grads, at::Scalar(1 - h.beta2));
      auto denom = at::_foreach_sqrt(l.exp_avg_sq);
      at::_foreach_div_(denom, at::Scalar(std::sqrt(bc2)));
      at::_foreach_add_(denom, at::Scalar(h.eps));
      at::_foreach_addcdiv_(l.params, l.exp_avg, denom, at::Scalar(-(h.lr / bc1)));
    }
  }
}

}  // namespace

void MultiTensorAdamStep(torch::optim::Optimizer& optimizer, bool decoupled) {
  if (decoupled) {
    MultiTensorStepAll<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(optimizer, true);
  } else {
    MultiTensorStepAll<torch::optim::AdamParamState, torch::optim::AdamOptions>(optimizer, false);
  }
}

bool MultiTensorAdamEnabled() {
  static const bool enabled = EnvFlag("TABSIGHT_MULTI_TENSOR_ADAM", true);
  return enabled;
}

OptimizerStateKeyType OptimizerStateKey(const torch::Tensor& param) { return StateKeyFor<OptimizerStateKeyType>(param); }

void FusedAdamStep(torch::optim::Optimizer& optimizer, bool decoupled) {
  if (decoupled) {
    StepAll<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(optimizer, true);
  } else {
    StepAll<torch::optim::AdamParamState, torch::optim::AdamOptions>(optimizer, false);
  }
}

}  // namespace tabsight::train
