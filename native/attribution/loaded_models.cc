#include "attribution/loaded_models.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <list>
#include <mutex>
#include <sstream>
#include <utility>

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

// A hash of the file's first 4 KiB (the safetensors header: names, shapes,
// and for checkpoints the step) and last 64 KiB (weights), so that a file
// rewritten in place within one timestamp tick (coarse-grained file systems)
// is not taken for the old one. Empty when the file cannot be read.
std::string Fingerprint(const std::string& path, int64_t size) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string bytes(4096, '\0');
  size_t got = std::fread(&bytes[0], 1, bytes.size(), f);
  bytes.resize(got);
  const int64_t tail = std::min<int64_t>(size, 65536);
  std::string end(static_cast<size_t>(tail), '\0');
  if (tail > 0 && ::fseeko(f, static_cast<off_t>(size - tail), SEEK_SET) == 0) {
    end.resize(std::fread(&end[0], 1, end.size(), f));
  }
  std::fclose(f);
  return std::to_string(std::hash<std::string>{}(bytes)) + ':' + std::to_string(std::hash<std::string>{}(end));
}

// What a load depends on: every option that shapes the modules, and the
// file's identity (device, inode, size, modification time in ns, and the
// fingerprint above). A file replaced (checkpoints are written to a
// temporary file and renamed) or rewritten gets a new key.
std::string CacheKey(const ModelSpec& spec) {
  struct stat st {};
  if (::stat(spec.path.c_str(), &st) != 0) return "";  // let the load report the error
  const std::string print = Fingerprint(spec.path, static_cast<int64_t>(st.st_size));
  if (print.empty()) return "";
  std::ostringstream key;
  key << print << '|';
  key << spec.path << '|' << st.st_dev << '|' << st.st_ino << '|' << st.st_size << '|' << st.st_mtim.tv_sec << '.'
      << st.st_mtim.tv_nsec << '|' << spec.format << '|' << spec.device << '|' << spec.image.arch << '|'
      << spec.image.in_channels << '|' << spec.image.small_stem << '|' << spec.tabular_hidden << '|'
      << spec.tabular_layers << '|' << spec.projection_hidden << '|' << spec.projection_dim << '|'
      << spec.projection_batch_norm << '|'
      << spec.need_image << spec.need_image_projection << spec.need_tabular << '|';
  for (int64_t c : spec.cardinalities) key << c << ',';
  return key.str();
}

LoadedModels LoadUncached(const ModelSpec& spec);

}  // namespace

struct FoldSlot {
  std::mutex mu;
  std::shared_ptr<const models::FoldedResNet> folded;
};

std::shared_ptr<const models::FoldedResNet> FoldedImage(const LoadedModels& m) {
  if (!m.image || !m.fold) Fail(ErrorCode::kConfig, "This model has no image encoder to fold");
  std::lock_guard<std::mutex> lock(m.fold->mu);
  if (!m.fold->folded) m.fold->folded = std::make_shared<const models::FoldedResNet>(*m.image.ptr());
  return m.fold->folded;
}

// Recently loaded models, most recent first. `tabsight explain` and
// `compare` call several methods on the same run, each in its own native
// call; loading ResNet-18 (reading the file, constructing the modules, which
// LibTorch initialises randomly before the weights are copied in) took about
// 0.25 s of a 3 s Integrated Gradients call on the benchmark. The modules
// are frozen (eval mode, no grad) and only read by the attributions, so
// concurrent calls can share them.
LoadedModels LoadModels(const ModelSpec& spec) {
  constexpr size_t kEntries = 4;
  static std::mutex mu;
  static auto* cache = new std::list<std::pair<std::string, LoadedModels>>();
  const std::string key = CacheKey(spec);
  if (!key.empty()) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = cache->begin(); it != cache->end(); ++it) {
      if (it->first == key) {
        cache->splice(cache->begin(), *cache, it);
        return cache->front().second;
      }
    }
  }
  LoadedModels m = LoadUncached(spec);
  if (!key.empty()) {
    std::lock_guard<std::mutex> lock(mu);
    cache->emplace_front(key, m);
    if (cache->size() > kEntries) cache->pop_back();
  }
  return m;
}

namespace {

LoadedModels LoadUncached(const ModelSpec& spec) {
  if (spec.format != "checkpoint" && spec.format != "encoder") {
    Fail(ErrorCode::kConfig, "Expected checkpoint or encoder for model format but received \"" + spec.format + "\"");
  }
  if (spec.format == "encoder" && (spec.need_image_projection || spec.need_tabular)) {
    Fail(ErrorCode::kConfig, "This target needs the projection heads or the tabular encoder, which only a run's "
                             "checkpoint.safetensors holds; " + spec.path + " is an image encoder file");
  }
  LoadedModels m;
  m.fold = std::make_shared<FoldSlot>();
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
    m.image_projection = models::ProjectionHead(m.image->feature_dim(), spec.projection_hidden, spec.projection_dim,
                                                spec.projection_batch_norm);
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
    m.tabular_projection = models::ProjectionHead(spec.tabular_hidden, spec.projection_hidden, spec.projection_dim,
                                                  spec.projection_batch_norm);
    LoadPrefixed(*m.tabular_projection, file, "model.tabular_projection.", spec.path);
    Freeze(*m.tabular_projection, m.device);
  }
  return m;
}

}  // namespace

}  // namespace tabsight::attribution
