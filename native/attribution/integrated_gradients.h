// Integrated Gradients (Sundararajan et al. 2017) with Captum 0.8's
// conventions: attribution = (x − b) · Σ_k w_k ∂F/∂x at b + α_k (x − b),
// path points stacked step-major, per-example convergence delta
// Σ attribution − (F(x) − F(b)). Plain LibTorch.
//
// Quadratures on [0, 1] (n = steps):
//   gausslegendre      α = (1 + x_k)/2, w = w_k/2 from the n-point
//                      Gauss–Legendre rule (Newton on P_n); exact for
//                      polynomials of degree ≤ 2n − 1
//   riemann_left       α = k/n,         w = 1/n
//   riemann_right      α = (k + 1)/n,   w = 1/n
//   riemann_middle     α = (k + ½)/n,   w = 1/n
//   riemann_trapezoid  α = k/(n − 1),   w = 1/(n − 1), halved at both ends:
//                      the TRUE trapezoid rule, weights summing to 1, exact
//                      for linear F. Captum uses the same α but w = 1/n
//                      (halved ends), which sums to (n − 1)/n: Captum's
//                      attributions are ours × (n − 1)/n exactly.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "attribution/target.h"

namespace tabsight::attribution {

const std::vector<std::string>& IgMethods();

// The n-point Gauss–Legendre rule on [−1, 1], nodes ascending (numpy's
// leggauss order). Newton iteration on P_n in long double.
void GaussLegendre(int64_t n, std::vector<double>* nodes, std::vector<double>* weights);

struct Quadrature {
  std::vector<double> alphas, weights;
};

// Throws kConfig for an unknown method or too few steps (≥ 1; ≥ 2 for
// riemann_trapezoid).
Quadrature IntegrationPoints(const std::string& method, int64_t steps);

struct BaselineSpec {
  std::string kind = "zeros";  // zeros | blur | tensor
  double sigma = 1.0;          // blur: Gaussian σ in pixels
  torch::Tensor tensor;        // tensor: the input's shape, or one example's (broadcast)
};

// A baseline of the inputs' shape on their device.
torch::Tensor MakeBaseline(const torch::Tensor& inputs, const BaselineSpec& spec);

// Separable Gaussian blur of N×C×H×W images: kernel radius ceil(4σ), edges
// replicated (scipy.ndimage.gaussian_filter with mode='nearest',
// truncate=4). σ = 0 returns a copy.
torch::Tensor GaussianBlur(const torch::Tensor& images, double sigma);

struct IgOptions {
  std::string method = "gausslegendre";
  int64_t steps = 50;
  // Path points per forward/backward pass (0: all steps × examples at once).
  int64_t internal_batch_size = 0;
};

struct IgResult {
  torch::Tensor attributions;  // the inputs' shape and dtype
  torch::Tensor delta;         // N, float64: Σ attribution − (F(x) − F(b))
  torch::Tensor scores;        // N, float64: F(x)
  torch::Tensor baseline_scores;  // N, float64: F(b)
};

// An exact factorisation F = G ∘ A of the target with A affine,
// A(x) = L·x + c (an image encoder's first convolution with its BatchNorm
// folded in). A maps IG's straight path from b to x onto the straight path
// from A(b) to A(x), and ∂F/∂x = Lᵀ·∂G/∂u, so
//   Σ_k w_k ∂F/∂x(b + α_k (x − b)) = Lᵀ · Σ_k w_k ∂G/∂u(A(b) + α_k (A(x) − A(b))).
// IG then runs A twice per example instead of once per path point, and
// applies Lᵀ once per example instead of back-propagating through L at
// every path point. Equal to the direct computation up to float rounding.
struct AffineSplit {
  std::function<torch::Tensor(const torch::Tensor& x)> affine;  // A
  // Lᵀ·g for g of A's output shape, shaped as `x_sizes`.
  std::function<torch::Tensor(const torch::Tensor& g, at::IntArrayRef x_sizes)> adjoint;
  TargetFn rest;  // G, on A's outputs
};

// `baselines` must have the inputs' shape. `index` names each input's
// example for the target (undefined: 0..N−1). With `split`, the path is
// integrated through it (see AffineSplit); F itself still gives the scores.
IgResult IntegratedGradients(const TargetFn& f, const torch::Tensor& inputs, const torch::Tensor& baselines,
                             const IgOptions& options, torch::Tensor index = {}, const AffineSplit* split = nullptr);

}  // namespace tabsight::attribution
