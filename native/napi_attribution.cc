// Attribution methods on a run's encoders: Integrated Gradients, saliency,
// GradCAM, Guided Backprop, Guided GradCAM and NoiseTunnel on images, IG on
// tabular rows, and the quadrature IG uses; for comparing runs, the target's
// score on any batch of images and the paired image/tabular projections. TypeScript (lib/explain) has
// validated every option and filled every default; here we re-check only
// what could crash (array types and lengths, cardinalities).
// Work runs in a PromiseWorker, so every typed array is copied on the main
// thread first (TensorCopy): the caller may detach or shrink it afterwards.
#include <algorithm>
#include <cmath>
#include <memory>

#include "attribution/integrated_gradients.h"
#include "attribution/loaded_models.h"
#include "attribution/projection.h"
#include "attribution/runner.h"
#include "attribution/tabular_ig.h"
#include "attribution/targets.h"
#include "attribution/toy_nets.h"
#include "napi_register.h"
#include "napi_util.h"
#include "napi_worker.h"
#include "train/tabular.h"

namespace tabsight::napi {

namespace {

namespace attr = tabsight::attribution;

// A copy of the float32 typed array o[data_key], with its shape o[shape_key].
torch::Tensor ReadArray(const Napi::Object& o, const char* data_key, const char* shape_key, const std::string& what) {
  auto arr = ExpectTypedArray(o.Get(data_key), what.c_str(), {napi_float32_array});
  return TensorCopy(arr, ReadShape(o.Get(shape_key), (what + " shape").c_str()), what.c_str());
}

torch::Tensor ReadIndex(const Napi::Object& o) {
  if (!Has(o, "index")) return {};
  auto values = GetNumberArray(o, "index");
  std::vector<int64_t> idx(values.begin(), values.end());
  return torch::tensor(idx, torch::kInt64);
}

attr::ModelSpec ReadModel(const Napi::Object& o) {
  attr::ModelSpec m;
  m.path = GetString(o, "path");
  m.format = GetString(o, "format");
  m.device = GetString(o, "device");
  m.image.arch = GetString(o, "arch");
  m.image.in_channels = GetInt(o, "inChannels");
  m.image.small_stem = GetBool(o, "smallStem");
  if (Has(o, "foldBatchNorm")) m.fold_batch_norm = GetBool(o, "foldBatchNorm");
  if (Has(o, "projectionDim")) {
    m.tabular_hidden = GetInt(o, "tabularHidden");
    m.tabular_layers = GetInt(o, "tabularLayers");
    m.projection_hidden = GetInt(o, "projectionHidden");
    m.projection_dim = GetInt(o, "projectionDim");
    if (Has(o, "projectionBatchNorm")) m.projection_batch_norm = GetBool(o, "projectionBatchNorm");
  }
  if (Has(o, "cardinalities")) {
    const auto cards = GetNumberArray(o, "cardinalities");
    for (size_t i = 0; i < cards.size(); ++i) {
      const double k = cards[i];
      if (!(k >= 0 && k <= static_cast<double>(train::kMaxCardinality)) || k != std::floor(k)) {
        throw tabsight::Error(ErrorCode::kConfig, "Expected integer between 0 and " +
                                                      std::to_string(train::kMaxCardinality) +
                                                      " for model.cardinalities[" + std::to_string(i) + "]");
      }
      m.cardinalities.push_back(static_cast<int64_t>(k));
    }
  }
  return m;
}

// A target spec; paired inputs (computed into a reference vector on the
// worker) are returned separately.
struct TargetInput {
  attr::HeadSpec head;
  torch::Tensor paired_tabular, paired_images;
};

TargetInput ReadTarget(const Napi::Object& o) {
  TargetInput t;
  t.head.kind = GetString(o, "kind");
  t.head.index = ReadIndex(o);
  if (Has(o, "space")) t.head.space = GetString(o, "space");
  if (Has(o, "vector")) t.head.reference = ReadArray(o, "vector", "vectorShape", "target.vector");
  if (Has(o, "weight")) t.head.weight = ReadArray(o, "weight", "weightShape", "target.weight");
  if (Has(o, "bias")) t.head.bias = ReadArray(o, "bias", "biasShape", "target.bias");
  if (Has(o, "pairedTabular")) t.paired_tabular = ReadArray(GetObject(o, "pairedTabular"), "data", "shape", "target.pairedTabular");
  if (Has(o, "pairedImages")) t.paired_images = ReadArray(GetObject(o, "pairedImages"), "data", "shape", "target.pairedImages");
  return t;
}

attr::MethodSpec ReadMethod(const Napi::Object& o) {
  attr::MethodSpec s;
  s.name = GetString(o, "name");
  if (Has(o, "igMethod")) {
    s.ig.method = GetString(o, "igMethod");
    s.ig.steps = GetInt(o, "steps");
    s.ig.internal_batch_size = GetInt(o, "internalBatchSize");
  }
  if (Has(o, "baseline")) {
    auto b = GetObject(o, "baseline");
    s.baseline.kind = GetString(b, "kind");
    if (Has(b, "sigma")) s.baseline.sigma = GetNumber(b, "sigma");
    if (Has(b, "data")) s.baseline.tensor = ReadArray(b, "data", "shape", "baseline");
  }
  if (Has(o, "layer")) {
    s.cam.relu = GetBool(o, "relu");
    s.cam.normalize = GetBool(o, "normalize");
    s.cam.upsample = GetString(o, "upsample");
  }
  if (Has(o, "abs")) s.abs = GetBool(o, "abs");
  if (Has(o, "batchSize")) s.batch_size = GetInt(o, "batchSize");
  if (Has(o, "noise")) {
    auto n = GetObject(o, "noise");
    s.noise = true;
    s.noise_options.type = GetString(n, "type");
    s.noise_options.samples = GetInt(n, "samples");
    if (n.Get("stdev").IsArray()) {
      auto a = n.Get("stdev").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        if (!v.IsNumber()) throw tabsight::Error(ErrorCode::kConfig, "Expected a number for stdev[" + std::to_string(i) + "]");
        s.noise_options.stdevs.push_back(v.As<Napi::Number>().DoubleValue());
      }
    } else {
      s.noise_options.stdev = GetNumber(n, "stdev");
    }
    s.noise_options.seed = static_cast<uint64_t>(GetInt(n, "seed"));
  }
  return s;
}

std::string LayerOf(const Napi::Object& method) { return Has(method, "layer") ? GetString(method, "layer") : "layer4"; }

// Reference vectors for similarity targets given as paired inputs.
void ResolvePaired(TargetInput& t, attr::LoadedModels& m, const std::vector<int64_t>& cardinalities) {
  torch::NoGradGuard no_grad;
  if (t.paired_tabular.defined()) {
    train::TabularSpec spec{cardinalities};
    train::ValidateRows(t.paired_tabular, spec);
    auto rows = train::EncodeRows(t.paired_tabular, spec).to(m.device);
    t.head.reference = m.tabular_projection->forward(m.tabular->forward(rows)).cpu();
  }
  if (t.paired_images.defined()) {
    attr::CheckFinite(t.paired_images, "target.pairedImages");
    t.head.reference = m.image_projection->forward(m.image->forward(t.paired_images.to(m.device))).cpu();
  }
}

struct Output {
  torch::Tensor attributions, delta, scores, baseline_scores, encoded;
};

Napi::Value ToJs(Napi::Env env, const Output& r) {
  auto out = Napi::Object::New(env);
  out.Set("attributions", ToTypedArray(env, r.attributions.to(torch::kFloat32)));
  out.Set("shape", ShapeToJs(env, r.attributions));
  if (r.delta.defined()) {
    out.Set("delta", ToTypedArray(env, r.delta.to(torch::kFloat64)));
    out.Set("scores", ToTypedArray(env, r.scores.to(torch::kFloat64)));
    out.Set("baselineScores", ToTypedArray(env, r.baseline_scores.to(torch::kFloat64)));
  }
  if (r.encoded.defined()) {
    out.Set("encodedAttributions", ToTypedArray(env, r.encoded.to(torch::kFloat32)));
    out.Set("encodedShape", ShapeToJs(env, r.encoded));
  }
  return out;
}

// A copy of images (Float32Array) with its shape [N, C, H, W], at info[0]
// and info[1].
torch::Tensor ReadImages(const Napi::CallbackInfo& info) {
  auto arr = ExpectTypedArray(info[0], "images", {napi_float32_array});
  auto shape = ReadShape(info[1], "images shape");
  if (shape.size() != 4) throw tabsight::Error(ErrorCode::kShape, "Expected images shape [N, C, H, W]");
  return TensorCopy(arr, shape, "images");
}

// options.model and options.target of an image method; the target's head
// decides whether the image projection and the tabular encoder are loaded.
std::pair<attr::ModelSpec, TargetInput> ReadModelAndTarget(const Napi::Object& o) {
  auto model = ReadModel(GetObject(o, "model"));
  auto target = ReadTarget(GetObject(o, "target"));
  const auto& kind = target.head.kind;
  model.need_image_projection = kind == "projection" || (kind == "similarity" && target.head.space == "projection");
  model.need_tabular = target.paired_tabular.defined();
  return {std::move(model), std::move(target)};
}

// attributeImages(images: Float32Array, shape, { model, target, method }) → Promise
Napi::Value AttributeImages(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto images = ReadImages(info);
    if (!info[2].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
    auto o = info[2].As<Napi::Object>();
    auto [model_in, target_in] = ReadModelAndTarget(o);
    attr::ModelSpec model = std::move(model_in);
    TargetInput target = std::move(target_in);
    auto method_obj = GetObject(o, "method");
    auto method = ReadMethod(method_obj);
    const std::string layer = LayerOf(method_obj);
    auto result = std::make_shared<Output>();
    return PromiseWorker::Start(
        info.Env(),
        [images, model, target, method, layer, result]() mutable {
          const auto& names = models::ResNetImpl::layer_names();
          if (std::find(names.begin(), names.end(), layer) == names.end()) {
            Fail(ErrorCode::kConfig, "Expected one of conv1, layer1, layer2, layer3, layer4 for layer but received \"" +
                                         layer + "\"");
          }
          auto m = attr::LoadModels(model);
          ResolvePaired(target, m, model.cardinalities);
          auto head = attr::MakeHead(target.head, m.image->feature_dim(), m.image_projection, images.size(0));
          // Integrated Gradients (alone or in a NoiseTunnel) on the
          // BatchNorm-folded copy: the same function up to float rounding,
          // with fewer passes over the 50 × N path points. The one-pass
          // methods keep the module, bit for bit what PyTorch computes; so
          // do the CAM layers.
          // IG also integrates from the folded stem's output: the stem is
          // affine, so it runs twice per image instead of once per path
          // point, and its transpose once per image instead of a backward
          // pass per path point (AffineSplit in integrated_gradients.h).
          attr::Explainable explainable{attr::ImageTarget(m.image, head), attr::ImageActivationTarget(m.image, head, layer), nullptr};
          if (model.fold_batch_norm && method.name == "integrated_gradients") {
            auto folded = attr::FoldedImage(m);
            explainable.target = attr::ImageTarget(folded, head);
            explainable.ig_split = attr::ImageStemSplit(folded, head);
          }
          auto r = attr::RunMethod(explainable, images.to(m.device), method);
          *result = {r.attributions, r.delta, r.scores, r.baseline_scores, {}};
        },
        [result](Napi::Env env) { return ToJs(env, *result); });
  });
}

// attributeTabular(rows: Float32Array, shape, { model, target, ig, baseline? }) → Promise
Napi::Value AttributeTabular(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto arr = ExpectTypedArray(info[0], "rows", {napi_float32_array});
    auto shape = ReadShape(info[1], "rows shape");
    if (shape.size() != 2) throw tabsight::Error(ErrorCode::kShape, "Expected rows shape [N, F]");
    auto rows = TensorCopy(arr, shape, "rows");
    if (!info[2].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
    auto o = info[2].As<Napi::Object>();
    auto model = ReadModel(GetObject(o, "model"));
    auto target = ReadTarget(GetObject(o, "target"));
    auto method = ReadMethod(GetObject(o, "method"));
    torch::Tensor baseline = method.baseline.tensor;
    model.need_tabular = true;
    model.need_image_projection = target.paired_images.defined();
    model.need_image = model.need_image_projection;
    auto result = std::make_shared<Output>();
    return PromiseWorker::Start(
        info.Env(),
        [rows, model, target, method, baseline, result]() mutable {
          auto m = attr::LoadModels(model);
          ResolvePaired(target, m, model.cardinalities);
          auto head = attr::MakeHead(target.head, m.tabular->out_features(), m.tabular_projection, rows.size(0));
          train::TabularSpec spec{model.cardinalities};
          auto r = attr::TabularIntegratedGradients(attr::TabularTarget(m.tabular, head), rows.to(m.device), spec,
                                                    baseline, method.ig);
          *result = {r.attributions, r.encoded.delta, r.encoded.scores, r.encoded.baseline_scores,
                     r.encoded.attributions};
        },
        [result](Napi::Env env) { return ToJs(env, *result); });
  });
}

// scoreImages(images: Float32Array, shape, { model, target, batchSize }) → Promise<Float64Array>:
// F(x) per image, with the model loading and target heads of attributeImages.
Napi::Value ScoreImages(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto images = ReadImages(info);
    if (!info[2].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
    auto o = info[2].As<Napi::Object>();
    auto [model_in, target_in] = ReadModelAndTarget(o);
    attr::ModelSpec model = std::move(model_in);
    TargetInput target = std::move(target_in);
    const int64_t batch = GetInt(o, "batchSize");
    if (batch < 1) throw tabsight::Error(ErrorCode::kConfig, "Expected positive integer for batchSize");
    auto result = std::make_shared<torch::Tensor>();
    return PromiseWorker::Start(
        info.Env(),
        [images, model, target, batch, result]() mutable {
          attr::CheckFinite(images, "images");
          auto m = attr::LoadModels(model);
          ResolvePaired(target, m, model.cardinalities);
          const int64_t n = images.size(0);
          auto head = attr::MakeHead(target.head, m.image->feature_dim(), m.image_projection, n);
          auto f = attr::ImageTarget(m.image, head);
          *result = attr::Evaluate(f, images.to(m.device), attr::Range(0, n, m.device), batch).cpu();
        },
        [result](Napi::Env env) { return ToTypedArray(env, result->to(torch::kFloat64)); });
  });
}

// projectPairs(images: Float32Array, shape, rows: Float32Array | null, rowsShape | null,
//              { model, imageProjection, batchSize }) → Promise<{ features, featureShape,
//              imageProjection?, tabularProjection?, projectionShape? }>
Napi::Value ProjectPairs(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto images = ReadImages(info);
    torch::Tensor rows;
    if (!info[2].IsNull() && !info[2].IsUndefined()) {
      auto rarr = ExpectTypedArray(info[2], "rows", {napi_float32_array});
      auto rshape = ReadShape(info[3], "rows shape");
      if (rshape.size() != 2) throw tabsight::Error(ErrorCode::kShape, "Expected rows shape [N, F]");
      rows = TensorCopy(rarr, rshape, "rows");
    }
    if (!info[4].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
    auto o = info[4].As<Napi::Object>();
    auto model = ReadModel(GetObject(o, "model"));
    const int64_t batch = GetInt(o, "batchSize");
    model.need_image_projection = GetBool(o, "imageProjection");
    model.need_tabular = rows.defined();
    if (rows.defined() && static_cast<int64_t>(model.cardinalities.size()) != rows.size(1)) {
      throw tabsight::Error(ErrorCode::kShape, "Expected " + std::to_string(model.cardinalities.size()) +
                                                   " columns in rows (the model's cardinalities)");
    }
    auto result = std::make_shared<attr::Projections>();
    return PromiseWorker::Start(
        info.Env(),
        [images, rows, model, batch, result]() mutable {
          auto m = attr::LoadModels(model);
          *result = attr::ProjectPairs(m, images, rows, train::TabularSpec{model.cardinalities}, batch);
        },
        [result](Napi::Env env) -> Napi::Value {
          auto out = Napi::Object::New(env);
          out.Set("features", ToTypedArray(env, result->features));
          out.Set("featureShape", ShapeToJs(env, result->features));
          const auto& ip = result->image_projection;
          const auto& tp = result->tabular_projection;
          if (ip.defined()) out.Set("imageProjection", ToTypedArray(env, ip));
          if (tp.defined()) out.Set("tabularProjection", ToTypedArray(env, tp));
          if (ip.defined() || tp.defined()) out.Set("projectionShape", ShapeToJs(env, ip.defined() ? ip : tp));
          return out;
        });
  });
}

// attributeToy(x: Float32Array, shape, { net, weight, weightShape, bias?, head?, offset, padding, method }) → Promise
Napi::Value AttributeToy(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto arr = ExpectTypedArray(info[0], "inputs", {napi_float32_array});
    auto x = TensorCopy(arr, ReadShape(info[1], "inputs shape"), "inputs");
    if (!info[2].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
    auto o = info[2].As<Napi::Object>();
    attr::ToyNetSpec net;
    net.net = GetString(o, "net");
    net.weight = ReadArray(o, "weight", "weightShape", "weight");
    if (Has(o, "bias")) net.bias = ReadArray(o, "bias", "biasShape", "bias");
    if (Has(o, "head")) net.head = ReadArray(o, "head", "headShape", "head");
    if (Has(o, "offset")) net.offset = GetNumber(o, "offset");
    if (Has(o, "padding")) net.padding = GetInt(o, "padding");
    auto method = ReadMethod(GetObject(o, "method"));
    auto result = std::make_shared<Output>();
    return PromiseWorker::Start(
        info.Env(),
        [x, net, method, result] {
          auto r = attr::RunMethod(attr::MakeToyNet(net), x, method);
          *result = {r.attributions, r.delta, r.scores, r.baseline_scores, {}};
        },
        [result](Napi::Env env) { return ToJs(env, *result); });
  });
}

// integrationPoints(method, steps) → { alphas: Float64Array, weights: Float64Array }
Napi::Value IntegrationPoints(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsString() || !info[1].IsNumber()) {
      throw tabsight::Error(ErrorCode::kConfig, "Expected integrationPoints(method: string, steps: number)");
    }
    auto method = info[0].As<Napi::String>().Utf8Value();
    const double raw = info[1].As<Napi::Number>().DoubleValue();
    if (!(raw >= 1 && raw <= 1e6) || raw != static_cast<double>(static_cast<int64_t>(raw))) {
      throw tabsight::Error(ErrorCode::kConfig, "Expected integer between 1 and 100000 for steps");
    }
    auto steps = static_cast<int64_t>(raw);
    auto q = attr::IntegrationPoints(method, steps);
    auto out = Napi::Object::New(info.Env());
    out.Set("alphas", ToTypedArray(info.Env(), torch::tensor(q.alphas, torch::kFloat64)));
    out.Set("weights", ToTypedArray(info.Env(), torch::tensor(q.weights, torch::kFloat64)));
    return out;
  });
}

}  // namespace

void RegisterAttribution(Napi::Env env, Napi::Object exports) {
  exports.Set("attributeImages", Napi::Function::New(env, AttributeImages, "attributeImages"));
  exports.Set("attributeTabular", Napi::Function::New(env, AttributeTabular, "attributeTabular"));
  exports.Set("scoreImages", Napi::Function::New(env, ScoreImages, "scoreImages"));
  exports.Set("projectPairs", Napi::Function::New(env, ProjectPairs, "projectPairs"));
  exports.Set("attributeToy", Napi::Function::New(env, AttributeToy, "attributeToy"));
  exports.Set("integrationPoints", Napi::Function::New(env, IntegrationPoints, "integrationPoints"));
}

}  // namespace tabsight::napi
