#include "attribution/targets.h"

#include "common/error.h"

namespace tabsight::attribution {

namespace {

std::string Str(int64_t v) { return std::to_string(v); }

// The values for each row: shared (one entry) or per example (looked up by
// the row's example index). On the rows' device.
torch::Tensor PerRow(const torch::Tensor& values, const torch::Tensor& rows) {
  auto v = values.to(rows.device());
  if (v.size(0) != 1) return v.index_select(0, rows);
  auto sizes = v.sizes().vec();
  sizes[0] = rows.size(0);
  return v.expand(sizes);
}

void CheckIndex(const torch::Tensor& index, int64_t limit, int64_t n, const std::string& what) {
  if (!index.defined() || index.dim() != 1 || (index.size(0) != 1 && index.size(0) != n)) {
    Fail(ErrorCode::kShape, "Expected 1 or " + Str(n) + " values for target.index");
  }
  if (index.numel() == 0) return;
  const int64_t lo = index.min().item<int64_t>(), hi = index.max().item<int64_t>();
  if (lo < 0 || hi >= limit) {
    Fail(ErrorCode::kConfig, "Expected integer between 0 and " + Str(limit - 1) + " for target.index (" + what +
                                 ") but received " + Str(lo < 0 ? lo : hi));
  }
}

}  // namespace

HeadFn MakeHead(const HeadSpec& spec, int64_t dim, models::ProjectionHead projection, int64_t n) {
  const bool needs_projection = spec.kind == "projection" || (spec.kind == "similarity" && spec.space == "projection");
  if (needs_projection && !projection) {
    Fail(ErrorCode::kConfig, "target " + spec.kind + " needs the projection head: pass a run's checkpoint.safetensors, "
                             "not image_encoder.safetensors");
  }
  // The head's last module is its output Linear (layers.3 with BatchNorm, layers.2 without).
  const int64_t proj_dim =
      needs_projection ? projection->layers->ptr(projection->layers->size() - 1)->as<torch::nn::Linear>()->weight.size(0)
                       : 0;
  if (spec.kind == "feature") {
    CheckIndex(spec.index, dim, n, "a feature dimension");
    auto index = spec.index;
    return [index](const torch::Tensor& h, const torch::Tensor& rows) {
      return h.gather(1, PerRow(index, rows).unsqueeze(1)).squeeze(1);
    };
  }
  if (spec.kind == "projection") {
    CheckIndex(spec.index, proj_dim, n, "a projection dimension");
    auto index = spec.index;
    return [index, projection](const torch::Tensor& h, const torch::Tensor& rows) mutable {
      return projection->forward(h).gather(1, PerRow(index, rows).unsqueeze(1)).squeeze(1);
    };
  }
  if (spec.kind == "similarity") {
    if (spec.space != "projection" && spec.space != "features") {
      Fail(ErrorCode::kConfig, "Expected projection or features for target.space but received \"" + spec.space + "\"");
    }
    const int64_t d = spec.space == "projection" ? proj_dim : dim;
    const auto& ref = spec.reference;
    if (!ref.defined() || ref.dim() != 2 || (ref.size(0) != 1 && ref.size(0) != n) || ref.size(1) != d) {
      Fail(ErrorCode::kShape, "Expected target vector of shape [1, " + Str(d) + "] or [" + Str(n) + ", " + Str(d) +
                                  "] (" + spec.space + " space) but received " +
                                  (ref.defined() ? c10::str(ref.sizes()) : "none"));
    }
    auto unit = torch::nn::functional::normalize(ref.to(torch::kFloat32),
                                                 torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-12));
    const bool project = spec.space == "projection";
    return [unit, project, projection](const torch::Tensor& h, const torch::Tensor& rows) mutable {
      auto z = project ? projection->forward(h) : h;
      z = torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-12));
      return (z * PerRow(unit, rows)).sum(1);
    };
  }
  if (spec.kind == "probe") {
    const auto& w = spec.weight;
    if (!w.defined() || w.dim() != 2 || w.size(1) != dim) {
      Fail(ErrorCode::kShape, "Expected target.weight of shape [K, " + Str(dim) + "] but received " +
                                  (w.defined() ? c10::str(w.sizes()) : "none"));
    }
    if (spec.bias.defined() && (spec.bias.dim() != 1 || spec.bias.size(0) != w.size(0))) {
      Fail(ErrorCode::kShape, "Expected target.bias of shape [" + Str(w.size(0)) + "] but received " + c10::str(spec.bias.sizes()));
    }
    CheckIndex(spec.index, w.size(0), n, "a probe output");
    auto weight = w.to(torch::kFloat32);
    auto bias = spec.bias.defined() ? spec.bias.to(torch::kFloat32) : torch::zeros({w.size(0)});
    auto index = spec.index;
    return [weight, bias, index](const torch::Tensor& h, const torch::Tensor& rows) {
      auto k = PerRow(index, rows);
      return (h * weight.to(h.device()).index_select(0, k)).sum(1) + bias.to(h.device()).index_select(0, k);
    };
  }
  Fail(ErrorCode::kConfig, "Expected one of feature, projection, similarity, probe for target.kind but received \"" +
                               spec.kind + "\"");
}

TargetFn ImageTarget(models::ResNet image, HeadFn head) {
  return [image, head](const torch::Tensor& x, const torch::Tensor& index) mutable {
    return head(image->forward(x), index);
  };
}

TargetFn ImageTarget(std::shared_ptr<const models::FoldedResNet> image, HeadFn head) {
  return [image, head](const torch::Tensor& x, const torch::Tensor& index) {
    return head(image->forward(x), index);
  };
}

std::shared_ptr<const AffineSplit> ImageStemSplit(std::shared_ptr<const models::FoldedResNet> image, HeadFn head) {
  auto split = std::make_shared<AffineSplit>();
  split->affine = [image](const torch::Tensor& x) { return image->stem(x); };
  split->adjoint = [image](const torch::Tensor& g, at::IntArrayRef sizes) { return image->stem_adjoint(g, sizes); };
  split->rest = [image, head](const torch::Tensor& u, const torch::Tensor& index) {
    return head(image->from_stem(u), index);
  };
  return split;
}

ActivationTargetFn ImageActivationTarget(models::ResNet image, HeadFn head, std::string layer) {
  return [image, head, layer](const torch::Tensor& x, const torch::Tensor& index, torch::Tensor* activation) mutable {
    return head(image->forward_with_activation(x, layer, activation), index);
  };
}

TargetFn TabularTarget(models::TabularEncoder tabular, HeadFn head) {
  return [tabular, head](const torch::Tensor& x, const torch::Tensor& index) mutable {
    return head(tabular->forward(x), index);
  };
}

}  // namespace tabsight::attribution
