#include "attribution/integrated_gradients.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/error.h"

namespace tabsight::attribution {

namespace {

constexpr int64_t kMaxSteps = 100000;
constexpr long double kPi = 3.141592653589793238462643383279502884L;

// P_n(z) and P_n'(z) by the three-term recurrence.
void Legendre(int64_t n, long double z, long double* p, long double* dp) {
  long double p0 = 1.0L, p1 = z;
  if (n == 0) {
    *p = 1.0L;
    *dp = 0.0L;
    return;
  }
  for (int64_t k = 2; k <= n; ++k) {
    const long double p2 = ((2.0L * k - 1.0L) * z * p1 - (k - 1.0L) * p0) / k;
    p0 = p1;
    p1 = p2;
  }
  *p = p1;
  *dp = n * (z * p1 - p0) / (z * z - 1.0L);
}

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

const std::vector<std::string>& IgMethods() {
  static const std::vector<std::string> methods{"gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                                                "riemann_trapezoid"};
  return methods;
}

void GaussLegendre(int64_t n, std::vector<double>* nodes, std::vector<double>* weights) {
  if (n < 1 || n > kMaxSteps) Fail(ErrorCode::kConfig, "Expected positive integer for steps but received " + Str(n));
  nodes->assign(n, 0.0);
  weights->assign(n, 0.0);
  for (int64_t i = 0; i < (n + 1) / 2; ++i) {
    // Tricomi's initial guess for the i-th largest root, then Newton.
    long double z = std::cos(kPi * (i + 0.75L) / (n + 0.5L));
    long double p = 0, dp = 0;
    for (int iter = 0; iter < 100; ++iter) {
      Legendre(n, z, &p, &dp);
      const long double step = p / dp;
      z -= step;
      if (std::fabs(step) <= 1e-19L) break;
    }
    if (2 * i + 1 == n) z = 0.0L;  // the middle root of an odd rule
    Legendre(n, z, &p, &dp);
    const long double w = 2.0L / ((1.0L - z * z) * dp * dp);
    (*nodes)[n - 1 - i] = static_cast<double>(z);
    (*nodes)[i] = static_cast<double>(-z);
    (*weights)[n - 1 - i] = (*weights)[i] = static_cast<double>(w);
  }
}

Quadrature IntegrationPoints(const std::string& method, int64_t steps) {
  const auto& methods = IgMethods();
  if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
    Fail(ErrorCode::kConfig, "Expected one of gausslegendre, riemann_left, riemann_right, riemann_middle, "
                             "riemann_trapezoid for method but received \"" + method + "\"");
  }
  const int64_t min_steps = method == "riemann_trapezoid" ? 2 : 1;
  if (steps < min_steps || steps > kMaxSteps) {
    Fail(ErrorCode::kConfig, "Expected integer between " + Str(min_steps) + " and " + Str(kMaxSteps) +
                                 " for steps (method " + method + ") but received " + Str(steps));
  }
  Quadrature q;
  if (method == "gausslegendre") {
    GaussLegendre(steps, &q.alphas, &q.weights);
    for (auto& a : q.alphas) a = 0.5 * (1.0 + a);
    for (auto& w : q.weights) w = 0.5 * w;
    return q;
  }
  const double n = static_cast<double>(steps);
  q.alphas.resize(steps);
  q.weights.assign(steps, 1.0 / n);
  for (int64_t k = 0; k < steps; ++k) {
    if (method == "riemann_left") q.alphas[k] = k / n;
    if (method == "riemann_right") q.alphas[k] = (k + 1) / n;
    if (method == "riemann_middle") q.alphas[k] = (k + 0.5) / n;
    if (method == "riemann_trapezoid") q.alphas[k] = k / (n - 1);
  }
  if (method == "riemann_trapezoid") {
    q.weights.assign(steps, 1.0 / (n - 1));
    q.weights.front() *= 0.5;
    q.weights.back() *= 0.5;
  }
  return q;
}

torch::Tensor GaussianBlur(const torch::Tensor& images, double sigma) {
  if (images.dim() != 4) {
    Fail(ErrorCode::kShape, "Expected images of shape [N, C, H, W] for a blurred baseline but received " +
                                c10::str(images.sizes()));
  }
  if (!(sigma >= 0) || !std::isfinite(sigma)) Fail(ErrorCode::kConfig, "Expected non-negative number for baseline sigma");
  if (sigma == 0) return images.clone();
  const int64_t radius = static_cast<int64_t>(std::ceil(4.0 * sigma));
  std::vector<double> k(2 * radius + 1);
  double sum = 0;
  for (int64_t i = -radius; i <= radius; ++i) sum += k[i + radius] = std::exp(-0.5 * (i / sigma) * (i / sigma));
  for (auto& v : k) v /= sum;
  const int64_t c = images.size(1);
  auto kernel = torch::tensor(k, torch::kFloat64).to(images.options());
  auto kh = kernel.view({1, 1, -1, 1}).expand({c, 1, 2 * radius + 1, 1}).contiguous();
  auto kw = kernel.view({1, 1, 1, -1}).expand({c, 1, 1, 2 * radius + 1}).contiguous();
  namespace F = torch::nn::functional;
  torch::NoGradGuard no_grad;
  auto x = F::pad(images, F::PadFuncOptions({0, 0, radius, radius}).mode(torch::kReplicate));
  x = F::conv2d(x, kh, F::Conv2dFuncOptions().groups(c));
  x = F::pad(x, F::PadFuncOptions({radius, radius, 0, 0}).mode(torch::kReplicate));
  return F::conv2d(x, kw, F::Conv2dFuncOptions().groups(c));
}

torch::Tensor MakeBaseline(const torch::Tensor& inputs, const BaselineSpec& spec) {
  if (spec.kind == "zeros") return torch::zeros_like(inputs);
  if (spec.kind == "blur") return GaussianBlur(inputs, spec.sigma);
  if (spec.kind != "tensor") {
    Fail(ErrorCode::kConfig, "Expected one of zeros, blur, tensor for baseline but received \"" + spec.kind + "\"");
  }
  const auto& b = spec.tensor;
  const auto one = inputs.sizes().slice(1);
  const bool full = b.defined() && b.sizes() == inputs.sizes();
  const bool single = b.defined() && (b.sizes() == one || (b.dim() == inputs.dim() && b.size(0) == 1 && b.sizes().slice(1) == one));
  if (!full && !single) {
    Fail(ErrorCode::kShape, "Expected baseline of shape " + c10::str(inputs.sizes()) + " or " + c10::str(one) +
                                " but received " + (b.defined() ? c10::str(b.sizes()) : "none"));
  }
  auto out = b.to(inputs.options());
  return full ? out.clone() : out.reshape(one).unsqueeze(0).expand(inputs.sizes()).contiguous();
}

namespace {

// Σ_k w_k ∂g/∂z at z = start + α_k·delta for each example, in float64 with
// start's shape. Path points are stacked step-major (row = step · N +
// example) and evaluated `chunk` rows at a time.
torch::Tensor SumPathGradients(const TargetFn& g, const torch::Tensor& start, const torch::Tensor& delta,
                               const torch::Tensor& alphas, const torch::Tensor& weights, const torch::Tensor& index,
                               int64_t chunk) {
  const auto device = start.device();
  const int64_t n = start.size(0), steps = alphas.size(0), rows = n * steps;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  std::vector<int64_t> bshape(start.dim(), 1);
  auto total = torch::zeros(start.sizes(), f64);
  auto total_flat = total.view({1, -1});
  std::vector<int64_t> step_shape(start.dim() + 1, 1);  // k × 1 × ... for the broadcast below
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t m = std::min(chunk, rows - r0);
    if (r0 % n == 0 && m % n == 0) {
      // A chunk of whole steps s0..s0+k−1 (the usual case: internalBatchSize
      // a multiple of N): each example once per step, so the path points come
      // from a broadcast start + α_s·delta (the same values as the gathers
      // below) and the weighted sum over the chunk's k steps is one matrix
      // product in the gradients' dtype, added to the float64 total (summing
      // k terms in float32 first reads the gradients once instead of
      // converting all of them to float64).
      const int64_t s0 = r0 / n, k = m / n;
      step_shape[0] = k;
      auto a = alphas.narrow(0, s0, k).to(start.scalar_type()).view(step_shape);
      auto row_shape = start.sizes().vec();
      row_shape[0] = m;
      auto path = (start.unsqueeze(0) + a * delta.unsqueeze(0)).view(row_shape);
      auto grad = InputGradient(g, path, index.repeat({k}));
      total_flat.add_(torch::mm(weights.narrow(0, s0, k).to(grad.scalar_type()).view({1, k}), grad.view({k, -1})));
      continue;
    }
    auto r = Range(r0, r0 + m, device);
    auto step = r.div(n, "floor");
    auto example = r.remainder(n);
    bshape[0] = m;
    auto a = alphas.index_select(0, step).to(start.scalar_type()).view(bshape);
    auto path = start.index_select(0, example) + a * delta.index_select(0, example);
    auto grad = InputGradient(g, path, index.index_select(0, example));
    total.index_add_(0, example, grad.to(torch::kFloat64) * weights.index_select(0, step).view(bshape));
  }
  return total;
}

// The same sum for F = G ∘ A, through the split (see AffineSplit): the path
// is mapped by A, the gradients of G are summed in A's output space and
// mapped back by Lᵀ once per example. Examples go in groups whose float64
// sums in A's output space stay within 256 MiB (A's outputs of one group are
// what the memory holds besides the chunk's own pass).
torch::Tensor SumPathGradientsSplit(const AffineSplit& split, const torch::Tensor& x, const torch::Tensor& b,
                                    const torch::Tensor& alphas, const torch::Tensor& weights,
                                    const torch::Tensor& index, int64_t chunk) {
  constexpr int64_t kBudgetBytes = int64_t{256} << 20;
  const int64_t n = x.size(0);
  int64_t group = n;
  std::vector<torch::Tensor> parts;
  for (int64_t e0 = 0; e0 < n; e0 += group) {
    torch::Tensor ux, ub;
    {
      torch::NoGradGuard no_grad;
      if (e0 == 0) {
        // The size of A's output for one example sets the group size.
        const int64_t per_example = split.affine(x.narrow(0, 0, 1)).numel() * 8;
        group = std::max<int64_t>(1, std::min<int64_t>(n, kBudgetBytes / std::max<int64_t>(per_example, 1)));
        // Tests cap the group to run the grouped path on small inputs.
        if (const char* cap = std::getenv("TABSIGHT_IG_GROUP")) group = std::max<int64_t>(1, std::min<int64_t>(group, std::atoll(cap)));
      }
      const int64_t m = std::min(group, n - e0);
      ux = split.affine(x.narrow(0, e0, m));
      ub = split.affine(b.narrow(0, e0, m));
    }
    const int64_t m = ux.size(0);
    auto sum_u = SumPathGradients(split.rest, ub, ux - ub, alphas, weights, index.narrow(0, e0, m), chunk);
    auto x_sizes = x.sizes().vec();
    x_sizes[0] = m;
    torch::NoGradGuard no_grad;
    parts.push_back(split.adjoint(sum_u.to(x.scalar_type()), x_sizes).to(torch::kFloat64));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

}  // namespace

IgResult IntegratedGradients(const TargetFn& f, const torch::Tensor& inputs, const torch::Tensor& baselines,
                             const IgOptions& options, torch::Tensor index, const AffineSplit* split) {
  const auto q = IntegrationPoints(options.method, options.steps);
  if (inputs.dim() < 1 || !inputs.is_floating_point()) {
    Fail(ErrorCode::kShape, "Expected floating-point inputs with a batch dimension");
  }
  if (baselines.sizes() != inputs.sizes()) {
    Fail(ErrorCode::kShape, "Expected baselines of shape " + c10::str(inputs.sizes()) + " but received " +
                                c10::str(baselines.sizes()));
  }
  if (options.internal_batch_size < 0) Fail(ErrorCode::kConfig, "Expected non-negative integer for internalBatchSize");
  const auto device = inputs.device();
  const int64_t n = inputs.size(0), steps = static_cast<int64_t>(q.alphas.size()), rows = n * steps;
  if (!index.defined()) index = Range(0, n, device);
  const int64_t chunk = options.internal_batch_size > 0 ? options.internal_batch_size : std::max<int64_t>(rows, 1);
  auto x = inputs.detach();
  auto b = baselines.detach().to(x.options());
  auto diff = x - b;
  auto alphas = torch::tensor(q.alphas, torch::kFloat64).to(device);
  auto weights = torch::tensor(q.weights, torch::kFloat64).to(device);
  auto total = split != nullptr && n > 0 ? SumPathGradientsSplit(*split, x, b, alphas, weights, index, chunk)
                                         : SumPathGradients(f, b, diff, alphas, weights, index, chunk);
  IgResult result;
  result.attributions = (total * diff.to(torch::kFloat64)).to(x.scalar_type());
  result.scores = Evaluate(f, x, index, chunk).to(torch::kFloat64);
  result.baseline_scores = Evaluate(f, b, index, chunk).to(torch::kFloat64);
  result.delta = result.attributions.to(torch::kFloat64).reshape({n, -1}).sum(1) -
                 (result.scores - result.baseline_scores);
  return result;
}

}  // namespace tabsight::attribution
