// The modules an attribution needs, loaded from a run's checkpoint
// (tensors named model.image.*, model.image_projection.*, model.tabular.*,
// model.tabular_projection.*) or from an image_encoder.safetensors
// (torchvision names, image encoder only). Modules come back in eval mode
// with parameters that do not require grad. Plain LibTorch.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/folded_resnet.h"
#include "models/mlp.h"
#include "models/resnet.h"

namespace tabsight::attribution {

struct ModelSpec {
  std::string path;
  std::string format = "checkpoint";  // checkpoint | encoder
  std::string device = "cpu";
  models::ResNetOptions image;
  int64_t tabular_hidden = 2048, tabular_layers = 2;
  int64_t projection_hidden = 2048, projection_dim = 128;
  bool projection_batch_norm = true;   // the heads' layout (model.projectionBatchNorm)
  std::vector<int64_t> cardinalities;  // the tabular encoder's input columns
  bool need_image = true, need_image_projection = false, need_tabular = false;
  // Image attributions: run Integrated Gradients on a BatchNorm-folded copy
  // of the image encoder (models/folded_resnet.h); the other methods always
  // use the module. Raw binding key model.foldBatchNorm (default true);
  // false gives the unfolded computation, which the tests use as the oracle.
  bool fold_batch_norm = true;
};

struct FoldSlot;

struct LoadedModels {
  models::ResNet image{nullptr};
  models::ProjectionHead image_projection{nullptr};
  models::TabularEncoder tabular{nullptr};
  models::ProjectionHead tabular_projection{nullptr};
  torch::Device device{torch::kCPU};
  std::shared_ptr<FoldSlot> fold;  // the folded image encoder, made on first use
};

// Throws kData naming the file and the first missing or mismatched tensor,
// kConfig when the file's format cannot provide a requested module.
// Recently loaded models are kept (up to 4, keyed by the options and the
// file's identity), so repeated calls on one run load it once.
LoadedModels LoadModels(const ModelSpec& spec);

// The BatchNorm-folded copy of m.image (models/folded_resnet.h), made once
// per loaded model.
std::shared_ptr<const models::FoldedResNet> FoldedImage(const LoadedModels& m);

}  // namespace tabsight::attribution
