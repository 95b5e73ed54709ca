#include "train/tabular.h"

#include <cmath>
#include <numeric>

#include "common/error.h"
#include "common/rng.h"

namespace tabsight::train {

int64_t TabularSpec::EncodedWidth() const {
  int64_t w = 0;
  for (size_t j = 0; j < cardinalities.size(); ++j) {
    const int64_t k = cardinalities[j];
    if (k < 0 || k > kMaxCardinality) {
      Fail(ErrorCode::kConfig, "Expected integer between 0 and " + std::to_string(kMaxCardinality) +
                                   " for cardinalities[" + std::to_string(j) + "] but received " + std::to_string(k));
    }
    if (__builtin_add_overflow(w, k == 0 ? 1 : k, &w)) {
      Fail(ErrorCode::kConfig, "The one-hot width of " + std::to_string(cardinalities.size()) + " columns overflows");
    }
  }
  return w;
}

torch::Tensor CorruptRows(const torch::Tensor& rows, const torch::Tensor& marginals, double rate, uint64_t seed) {
  if (rows.dim() != 2 || marginals.dim() != 2 || rows.size(1) != marginals.size(1)) {
    Fail(ErrorCode::kShape, "Expected rows [B, F] and marginals [M, F] with the same F but received " +
                                c10::str(rows.sizes()) + " and " + c10::str(marginals.sizes()));
  }
  if (!(rate >= 0 && rate <= 1)) Fail(ErrorCode::kConfig, "Expected number between 0 and 1 for corruptionRate");
  if (marginals.size(0) < 1) Fail(ErrorCode::kShape, "Expected at least one marginal row");
  auto out = rows.to(torch::kFloat32).contiguous().clone();
  auto m = marginals.to(torch::kFloat32).contiguous();
  const int64_t b = out.size(0), f = out.size(1), nm = m.size(0);
  const int64_t count = static_cast<int64_t>(std::floor(rate * static_cast<double>(f)));
  if (count == 0) return out;
  float* o = out.data_ptr<float>();
  const float* mp = m.data_ptr<float>();
  Rng rng(DeriveSeed(seed, {0x7AB1Eull}));
  std::vector<int64_t> idx(f);
  for (int64_t r = 0; r < b; ++r) {
    std::iota(idx.begin(), idx.end(), 0);
    // Partial Fisher–Yates: the first `count` entries are a uniform sample.
    for (int64_t i = 0; i < count; ++i) {
      int64_t j = i + static_cast<int64_t>(UniformInt(rng, static_cast<uint64_t>(f - i)));
      std::swap(idx[i], idx[j]);
      const int64_t col = idx[i];
      const int64_t src = static_cast<int64_t>(UniformInt(rng, static_cast<uint64_t>(nm)));
      o[r * f + col] = mp[src * f + col];
    }
  }
  return out;
}

void ValidateRows(const torch::Tensor& rows, const TabularSpec& spec) {
  if (rows.dim() != 2 || rows.size(1) != static_cast<int64_t>(spec.cardinalities.size())) {
    Fail(ErrorCode::kShape, "Expected tabular rows [N, " + std::to_string(spec.cardinalities.size()) +
                                "] but received " + c10::str(rows.sizes()));
  }
  spec.EncodedWidth();  // checks the cardinalities
  auto r = rows.to(torch::kFloat32).contiguous();
  const float* p = r.data_ptr<float>();
  const int64_t n = r.size(0), f = r.size(1);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < f; ++j) {
      const float v = p[i * f + j];
      const int64_t k = spec.cardinalities[j];
      if (!std::isfinite(v)) {
        Fail(ErrorCode::kData, "Tabular value at row " + std::to_string(i) + ", column " + std::to_string(j) +
                                   " is not finite");
      }
      if (k > 0 && (v != std::floor(v) || v < -1 || v >= static_cast<float>(k))) {
        Fail(ErrorCode::kData, "Category code " + std::to_string(v) + " at row " + std::to_string(i) + ", column " +
                                   std::to_string(j) + " is not an integer in [-1, " + std::to_string(k) + ")");
      }
    }
  }
}

torch::Tensor EncodeRows(const torch::Tensor& rows, const TabularSpec& spec) {
  const int64_t f = static_cast<int64_t>(spec.cardinalities.size());
  if (rows.dim() != 2 || rows.size(1) != f) {
    Fail(ErrorCode::kShape, "Expected tabular rows [N, " + std::to_string(f) + "] but received " + c10::str(rows.sizes()));
  }
  const int64_t width = spec.EncodedWidth();  // checks the cardinalities
  bool any_categorical = false;
  for (int64_t k : spec.cardinalities) any_categorical |= k > 0;
  if (!any_categorical) return rows.to(torch::kFloat32);
  auto r = rows.to(torch::kFloat32).contiguous().cpu();
  const int64_t n = r.size(0);
  auto out = torch::zeros({n, width}, torch::kFloat32);
  const float* p = r.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t col = 0;
    for (int64_t j = 0; j < f; ++j) {
      const int64_t k = spec.cardinalities[j];
      const float v = p[i * f + j];
      if (k == 0) {
        o[i * width + col] = v;
        col += 1;
      } else {
        // −1 (a category unseen in training) encodes as all zeros; col + k ≤ width.
        if (!(v >= -1 && v < static_cast<float>(k)) || v != std::floor(v)) {
          Fail(ErrorCode::kData, "Category code " + std::to_string(v) + " at row " + std::to_string(i) + ", column " +
                                     std::to_string(j) + " is not an integer in [-1, " + std::to_string(k) + ")");
        }
        const int64_t code = static_cast<int64_t>(v);
        if (code >= 0) o[i * width + col + code] = 1.0f;
        col += k;
      }
    }
  }
  return out.to(rows.device());
}

}  // namespace tabsight::train
