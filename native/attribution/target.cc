#include "attribution/target.h"

#include "common/error.h"

namespace tabsight::attribution {

torch::Tensor CheckScores(const torch::Tensor& scores, int64_t rows) {
  if (!scores.defined() || scores.numel() != rows || (scores.dim() > 1 && scores.size(0) != rows)) {
    Fail(ErrorCode::kShape, "Expected the target to return one score per example (" + std::to_string(rows) +
                                ") but it returned shape " + (scores.defined() ? c10::str(scores.sizes()) : "undefined"));
  }
  return scores.reshape({rows});
}

torch::Tensor GradientOf(const torch::Tensor& scores, const torch::Tensor& wrt) {
  if (!scores.requires_grad()) return torch::zeros_like(wrt);
  auto grads = torch::autograd::grad({scores.sum()}, {wrt}, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  return grads[0].defined() ? grads[0] : torch::zeros_like(wrt);
}

torch::Tensor InputGradient(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index,
                            torch::Tensor* scores) {
  torch::AutoGradMode enable(true);
  auto input = x.detach().requires_grad_(true);
  auto out = CheckScores(f(input, index), x.size(0));
  auto grad = GradientOf(out, input);
  if (scores) *scores = out.detach();
  return grad;
}

torch::Tensor Evaluate(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0);
  if (chunk <= 0 || chunk >= n) return CheckScores(f(x, index), n);
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t m = std::min(chunk, n - s);
    parts.push_back(CheckScores(f(x.narrow(0, s, m), index.narrow(0, s, m)), m));
  }
  return torch::cat(parts, 0);
}

torch::Tensor Range(int64_t begin, int64_t end, const torch::Device& device) {
  return torch::arange(begin, end, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

}  // namespace tabsight::attribution
