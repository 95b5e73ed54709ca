// What every attribution method explains: a target function mapping a batch
// of inputs to one score per row. Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace tabsight::attribution {

// Maps rows (R×...) to R scores. `index` (int64, R values) names the
// original example of each row: methods expand a batch (IG's path points,
// noise samples), and targets that differ per example (a paired vector, a
// class) look theirs up by it. Rows must not interact (modules in eval mode).
using TargetFn = std::function<torch::Tensor(const torch::Tensor& inputs, const torch::Tensor& index)>;

// Like TargetFn, and also stores in *activation an intermediate map (N×C×h×w)
// that the scores depend on, for CAM methods.
using ActivationTargetFn =
    std::function<torch::Tensor(const torch::Tensor& inputs, const torch::Tensor& index, torch::Tensor* activation)>;

// Scores as a 1-D tensor of `rows` values; throws kShape otherwise.
torch::Tensor CheckScores(const torch::Tensor& scores, int64_t rows);

// d(Σ scores)/d(wrt), zeros where the scores do not depend on `wrt`.
torch::Tensor GradientOf(const torch::Tensor& scores, const torch::Tensor& wrt);

// ∂F/∂x for each row (rows are independent, so the gradient of the summed
// scores is the per-row gradient). Optionally returns the scores.
torch::Tensor InputGradient(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index,
                            torch::Tensor* scores = nullptr);

// F on `x` without gradients, `chunk` rows at a time (0: all at once).
torch::Tensor Evaluate(const TargetFn& f, const torch::Tensor& x, const torch::Tensor& index, int64_t chunk);

// 0, 1, ..., n − 1 as int64 on `device`.
torch::Tensor Range(int64_t begin, int64_t end, const torch::Device& device);

}  // namespace tabsight::attribution
