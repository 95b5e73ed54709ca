#include "distributed/sync_batch_norm.h"

#include <cstdint>
#include <vector>

#include "common/error.h"

namespace tabsight::dist {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> ReduceDims(const torch::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// Per-channel values shaped to broadcast against x (1×C×1×…).
std::vector<int64_t> ChannelShape(const torch::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[1] = x.size(1);
  return shape;
}

// y = x̂·weight + bias with x̂ = (x − mean)·invstd, where mean and invstd are
// the global batch statistics (constants to autograd: their contribution to
// the input gradient is in the closed form below).
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor weight, torch::Tensor bias,
                               torch::Tensor mean, torch::Tensor invstd, double count, int64_t comm_address) {
    const auto shape = ChannelShape(x);
    auto xhat = (x - mean.view(shape)) * invstd.view(shape);
    auto y = weight.defined() ? xhat * weight.view(shape) + bias.view(shape) : xhat;
    ctx->save_for_backward({xhat, weight, invstd});
    ctx->saved_data["comm"] = comm_address;
    ctx->saved_data["count"] = count;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    auto xhat = saved[0], weight = saved[1], invstd = saved[2];
    auto* comm = reinterpret_cast<Comm*>(ctx->saved_data["comm"].toInt());
    const double count = ctx->saved_data["count"].toDouble();
    auto dy = grad_outputs[0].contiguous();
    const int64_t c = xhat.size(1);
    const auto dims = ReduceDims(xhat);
    const auto shape = ChannelShape(xhat);
    auto sum_dy = dy.sum(dims, /*keepdim=*/false, torch::kDouble);
    auto sum_dy_xhat = (dy * xhat).sum(dims, /*keepdim=*/false, torch::kDouble);
    auto global = torch::cat({sum_dy, sum_dy_xhat});
    comm->AllReduceSum(global, "synchronised batch norm (backward)");
    auto mean_dy = (global.narrow(0, 0, c) / count).to(dy.scalar_type()).view(shape);
    auto mean_dy_xhat = (global.narrow(0, c, c) / count).to(dy.scalar_type()).view(shape);
    auto scale = weight.defined() ? invstd.view(shape) * weight.view(shape) : invstd.view(shape);
    auto dx = scale * (dy - mean_dy - xhat * mean_dy_xhat);
    torch::Tensor dweight, dbias;
    if (weight.defined()) {
      // This rank's share; the gradient all-reduce sums the shares.
      dweight = sum_dy_xhat.to(weight.scalar_type());
      dbias = sum_dy.to(weight.scalar_type());
    }
    return {dx, dweight, dbias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor SyncBatchNorm::Forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                     torch::Tensor running_mean, torch::Tensor running_var,
                                     torch::Tensor num_batches_tracked, c10::optional<double> momentum, double eps) {
  if (x.dim() < 2) Fail(ErrorCode::kShape, "Expected at least 2 dimensions [N, C, ...] for batch norm");
  torch::Tensor mean_x, invstd_x;
  double count = 0;
  {
    torch::NoGradGuard no_grad;
    const int64_t c = x.size(1);
    const auto dims = ReduceDims(x);
    // Sums in float64: var = E[x²] − mean² then loses nothing that matters.
    auto xd = x.detach().to(torch::kDouble);
    const double local_count = static_cast<double>(x.numel() / std::max<int64_t>(1, c));
    auto stats = torch::cat({xd.sum(dims), (xd * xd).sum(dims), torch::full({1}, local_count, xd.options())});
    comm_->AllReduceSum(stats, "synchronised batch norm (forward)");
    count = stats[2 * c].item<double>();
    if (count < 2) Fail(ErrorCode::kShape, "Expected more than 1 value per channel in the global batch for batch norm");
    auto mean = stats.narrow(0, 0, c) / count;
    auto var = (stats.narrow(0, c, c) / count - mean * mean).clamp_min(0.0);
    // Running statistics as torch's BatchNorm updates them: momentum, or a
    // cumulative average without one; the variance unbiased.
    if (num_batches_tracked.defined()) num_batches_tracked.add_(1);
    const double factor = momentum.has_value()
                              ? *momentum
                              : 1.0 / static_cast<double>(std::max<int64_t>(1, num_batches_tracked.item<int64_t>()));
    if (running_mean.defined()) {
      running_mean.copy_((running_mean.to(torch::kDouble) * (1 - factor) + mean * factor).to(running_mean.scalar_type()));
    }
    if (running_var.defined()) {
      auto unbiased = var * (count / (count - 1));
      running_var.copy_((running_var.to(torch::kDouble) * (1 - factor) + unbiased * factor).to(running_var.scalar_type()));
    }
    mean_x = mean.to(x.scalar_type());
    invstd_x = (var + eps).rsqrt().to(x.scalar_type());
  }
  return SyncBatchNormFunction::apply(x, weight, bias, mean_x, invstd_x, count, reinterpret_cast<int64_t>(comm_));
}

}  // namespace tabsight::dist
