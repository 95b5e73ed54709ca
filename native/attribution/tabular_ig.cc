#include "attribution/tabular_ig.h"

#include "common/error.h"

namespace tabsight::attribution {

torch::Tensor SumOneHotGroups(const torch::Tensor& encoded, const std::vector<int64_t>& cardinalities) {
  int64_t width = 0;
  for (int64_t k : cardinalities) width += k == 0 ? 1 : k;
  if (encoded.dim() != 2 || encoded.size(1) != width) {
    Fail(ErrorCode::kShape, "Expected encoded attributions of shape [N, " + std::to_string(width) + "] but received " +
                                c10::str(encoded.sizes()));
  }
  std::vector<torch::Tensor> columns;
  int64_t col = 0;
  for (int64_t k : cardinalities) {
    const int64_t w = k == 0 ? 1 : k;
    columns.push_back(encoded.narrow(1, col, w).sum(1));
    col += w;
  }
  if (columns.empty()) return torch::zeros({encoded.size(0), 0}, encoded.options());
  return torch::stack(columns, 1);
}

TabularIgResult TabularIntegratedGradients(const TargetFn& f, const torch::Tensor& rows, const train::TabularSpec& spec,
                                           const torch::Tensor& baseline, const IgOptions& options) {
  const int64_t features = static_cast<int64_t>(spec.cardinalities.size());
  if (rows.dim() != 2 || rows.size(1) != features) {
    Fail(ErrorCode::kShape, "Expected tabular rows of shape [N, " + std::to_string(features) + "] but received " +
                                c10::str(rows.sizes()));
  }
  train::ValidateRows(rows.cpu(), spec);
  auto encoded = train::EncodeRows(rows, spec).to(torch::kFloat32);
  BaselineSpec b;
  if (baseline.defined()) {
    b.kind = "tensor";
    b.tensor = baseline;
  }
  TabularIgResult result;
  result.encoded = IntegratedGradients(f, encoded, MakeBaseline(encoded, b), options);
  result.attributions = SumOneHotGroups(result.encoded.attributions, spec.cardinalities);
  return result;
}

}  // namespace tabsight::attribution
