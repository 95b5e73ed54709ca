#include "attribution/loaded_models.h"

#include "common/error.h"
#include "io/safetensors.h"
#include "train/tabular.h"
#include "train/trainer.h"

namespace tabsight::attribution {

namespace {

void LoadPrefixed(torch::nn::Module& module, const io::Safetensors& file, const std::string& prefix,
                  const std::string& path) {
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& name, torch::Tensor& dst) {
    const torch::Tensor* src = file.Find(prefix + name);
    if (!src) {
      Fail(ErrorCode::kData, "Checkpoint " + path + " lacks tensor " + prefix + name +
                                 " (was the run trained in multimodal mode with these model sizes?)");
    }
    if (src->sizes() != dst.sizes()) {
      Fail(ErrorCode::kData, "Checkpoint " + path + ": tensor " + prefix + name + " has shape " +
                                 c10::str(src->sizes()) + " but the model expects " + c10::str(dst.sizes()) +
                                 " (check the model options)");
    }
    dst.copy_(*src);
  };
  for (auto& item : module.named_parameters()) load(item.key(), item.value());
  for (auto& item : module.named_buffers()) load(item.key(), item.value());
}

void Freeze(torch::nn::Module& module, const torch::Device& device) {
  module.to(device);
  module.eval();
  for (auto& p : module.parameters()) p.set_requires_grad(false);
}

}  // namespace

LoadedModels LoadModels(const ModelSpec& spec) {
  if (spec.format != "checkpoint" && spec.format != "encoder") {
    Fail(ErrorCode::kConfig, "Expected checkpoint or encoder for model format but received \"" + spec.format + "\"");
  }
  if (spec.format == "encoder" && (spec.need_image_projection || spec.need_tabular)) {
    Fail(ErrorCode::kConfig, "This target needs the projection heads or the tabular encoder, which only a run's "
                             "checkpoint.safetensors holds; " + spec.path + " is an image encoder file");
  }
  LoadedModels m;
  m.device = train::ResolveDevice(spec.device);
  auto file = io::ReadSafetensors(spec.path);
  if (spec.need_image || spec.need_image_projection) {
    m.image = models::ResNet(spec.image);
    if (spec.format == "encoder") {
      train::LoadImageEncoderTensors(m.image, file, spec.path);
    } else {
      LoadPrefixed(*m.image, file, "model.image.", spec.path);
    }
    Freeze(*m.image, m.device);
  }
  if (spec.need_image_projection) {
    m.image_projection = models::ProjectionHead(m.image->feature_dim(), spec.projection_hidden, spec.projection_dim);
    LoadPrefixed(*m.image_projection, file, "model.image_projection.", spec.path);
    Freeze(*m.image_projection, m.device);
  }
  if (spec.need_tabular) {
    train::TabularSpec tab{spec.cardinalities};
    const int64_t width = tab.EncodedWidth();
    if (width < 1) Fail(ErrorCode::kConfig, "Expected tabular cardinalities for the tabular encoder (none given)");
    m.tabular = models::TabularEncoder(width, spec.tabular_hidden, spec.tabular_layers);
    LoadPrefixed(*m.tabular, file, "model.tabular.", spec.path);
    Freeze(*m.tabular, m.device);
    m.tabular_projection = models::ProjectionHead(spec.tabular_hidden, spec.projection_hidden, spec.projection_dim);
    LoadPrefixed(*m.tabular_projection, file, "model.tabular_projection.", spec.path);
    Freeze(*m.tabular_projection, m.device);
  }
  return m;
}

}  // namespace tabsight::attribution
