#include "attribution/projection.h"

#include <algorithm>
#include <vector>

#include "attribution/runner.h"
#include "common/error.h"

namespace tabsight::attribution {

Projections ProjectPairs(LoadedModels& models, const torch::Tensor& images, const torch::Tensor& rows,
                         const train::TabularSpec& spec, int64_t batch) {
  if (images.dim() != 4 || images.scalar_type() != torch::kFloat32) {
    Fail(ErrorCode::kShape, "Expected float32 images [N, C, H, W]");
  }
  if (batch < 1) Fail(ErrorCode::kConfig, "Expected positive integer for batchSize");
  const int64_t n = images.size(0);
  if (rows.defined() && (rows.dim() != 2 || rows.size(0) != n)) {
    Fail(ErrorCode::kShape, "Expected " + std::to_string(n) + " rows (one per image)");
  }
  CheckFinite(images, "images");
  torch::NoGradGuard no_grad;
  torch::Tensor encoded;
  if (rows.defined()) {
    if (!models.tabular) Fail(ErrorCode::kConfig, "Paired rows need the tabular encoder (a run's checkpoint)");
    train::ValidateRows(rows.cpu(), spec);
    encoded = train::EncodeRows(rows, spec).to(torch::kFloat32);
  }
  std::vector<torch::Tensor> features, image_projection, tabular_projection;
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t m = std::min(batch, n - s);
    auto h = models.image->forward(images.narrow(0, s, m).to(models.device));
    features.push_back(h.cpu());
    if (models.image_projection) image_projection.push_back(models.image_projection->forward(h).cpu());
    if (encoded.defined()) {
      auto t = models.tabular->forward(encoded.narrow(0, s, m).to(models.device));
      tabular_projection.push_back(models.tabular_projection->forward(t).cpu());
    }
  }
  Projections out;
  const int64_t d = models.image->feature_dim();
  out.features = n ? torch::cat(features, 0) : torch::zeros({0, d});
  if (models.image_projection && n) out.image_projection = torch::cat(image_projection, 0);
  if (encoded.defined() && n) out.tabular_projection = torch::cat(tabular_projection, 0);
  return out;
}

}  // namespace tabsight::attribution
