#include "losses/contrastive.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace tabsight::losses {

namespace F = torch::nn::functional;

namespace {

void CheckTemperature(double t, const char* name) {
  if (!(t > 0) || !std::isfinite(t)) {
    Fail(ErrorCode::kConfig, std::string("Expected positive number for ") + name + " but received " + std::to_string(t));
  }
}

void CheckPair(const torch::Tensor& a, const torch::Tensor& b, const char* na, const char* nb) {
  if (a.dim() != 2 || b.dim() != 2 || a.sizes() != b.sizes()) {
    Fail(ErrorCode::kShape, std::string("Expected ") + na + " and " + nb + " of the same shape [N, D] but received " +
                                c10::str(a.sizes()) + " and " + c10::str(b.sizes()));
  }
  if (a.size(0) < 2) Fail(ErrorCode::kShape, "Expected a batch of at least 2 pairs for a contrastive loss");
}

void CheckLabels(const torch::Tensor& labels, int64_t n, bool needed) {
  if (!labels.defined()) {
    if (needed) Fail(ErrorCode::kConfig, "removeFalseNegatives needs labels");
    return;
  }
  if (labels.dim() != 1 || labels.size(0) != n) {
    Fail(ErrorCode::kShape, "Expected " + std::to_string(n) + " labels but received shape " + c10::str(labels.sizes()));
  }
}

// Same-label pairs off the diagonal get −inf so they leave the denominator.
torch::Tensor MaskFalseNegatives(const torch::Tensor& logits, const torch::Tensor& row_labels,
                                 const torch::Tensor& col_labels, const torch::Tensor& keep) {
  auto same = row_labels.unsqueeze(1).eq(col_labels.unsqueeze(0));
  auto drop = same.logical_and(keep.logical_not());
  return logits.masked_fill(drop, -std::numeric_limits<double>::infinity());
}

}  // namespace

void ValidateClipOptions(const ClipLossOptions& options) {
  CheckTemperature(options.temperature, "loss.temperature");
  if (!(options.lambda >= 0 && options.lambda <= 1)) {
    Fail(ErrorCode::kConfig, "Expected number between 0 and 1 for loss.lambda but received " + std::to_string(options.lambda));
  }
}

void ValidateNtXentOptions(const NtXentOptions& options) { CheckTemperature(options.temperature, "loss.temperature"); }

LossResult ClipLoss(const torch::Tensor& z_image, const torch::Tensor& z_tabular, const ClipLossOptions& options,
                    const torch::Tensor& labels) {
  ValidateClipOptions(options);
  CheckPair(z_image, z_tabular, "image projections", "tabular projections");
  const int64_t n = z_image.size(0);
  CheckLabels(labels, n, options.remove_false_negatives);

  auto zi = F::normalize(z_image, F::NormalizeFuncOptions().dim(1));
  auto zt = F::normalize(z_tabular, F::NormalizeFuncOptions().dim(1));
  auto logits = torch::matmul(zi, zt.t()) / options.temperature;
  auto targets = torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));

  auto row_logits = logits;
  auto col_logits = logits.t();
  if (options.remove_false_negatives) {
    auto lab = labels.to(logits.device());
    auto eye = torch::eye(n, torch::TensorOptions().dtype(torch::kBool).device(logits.device()));
    row_logits = MaskFalseNegatives(row_logits, lab, lab, eye);
    col_logits = MaskFalseNegatives(col_logits, lab, lab, eye);
  }
  auto loss = options.lambda * F::cross_entropy(row_logits, targets) +
              (1.0 - options.lambda) * F::cross_entropy(col_logits, targets);
  return {loss, logits, targets};
}

LossResult NtXentLoss(const torch::Tensor& z1, const torch::Tensor& z2, const NtXentOptions& options,
                      const torch::Tensor& labels) {
  ValidateNtXentOptions(options);
  CheckPair(z1, z2, "first-view projections", "second-view projections");
  const int64_t n = z1.size(0);
  CheckLabels(labels, n, options.remove_false_negatives);

  auto z = F::normalize(torch::cat({z1, z2}, 0), F::NormalizeFuncOptions().dim(1));
  auto logits = torch::matmul(z, z.t()) / options.temperature;
  auto device_long = torch::TensorOptions().dtype(torch::kLong).device(logits.device());
  auto idx = torch::arange(2 * n, device_long);
  auto targets = torch::remainder(idx + n, 2 * n);
  auto eye = torch::eye(2 * n, torch::TensorOptions().dtype(torch::kBool).device(logits.device()));
  // A sample is never its own negative.
  auto masked = logits.masked_fill(eye, -std::numeric_limits<double>::infinity());
  if (options.remove_false_negatives) {
    auto lab = labels.to(logits.device()).repeat({2});
    auto positive = torch::zeros({2 * n, 2 * n}, torch::TensorOptions().dtype(torch::kBool).device(logits.device()));
    positive.index_put_({idx, targets}, true);
    masked = MaskFalseNegatives(masked, lab, lab, eye.logical_or(positive));
  }
  auto loss = F::cross_entropy(masked, targets);
  return {loss, logits, targets};
}

}  // namespace tabsight::losses
