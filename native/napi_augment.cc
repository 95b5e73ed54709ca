// Binding for the batched augmentations:
//   augment(data, shape, options, seed, reference?, out?) → Promise<{ data, shape }>
//     (reference: an internal flag for tests; true runs the batched tensor
//     ops instead of the fused CPU kernel. out: a Float32Array of the output's
//     size to write into and resolve with; lib/augment.ts passes one it did
//     not zero-fill, since every element is written)
//   augmentParams(n, h, w, options, seed) → per-sample parameter objects
//   resizeToFloat(data, shape, outH, outW) → { data, shape }
// TypeScript (lib/augment.ts) has validated and completed the options; here
// we re-check what could corrupt memory (dtype, length, rank) and the ranges.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/rng.h"
#include "common/threads.h"
#include "napi_register.h"
#include "napi_util.h"
#include "train/augment.h"

namespace tabsight::napi {

namespace {

using train::AugmentOptions;
using train::SampleParams;

// [min, max] pairs from the options object.
std::pair<double, double> GetPair(const Napi::Object& obj, const char* key) {
  std::vector<double> v = GetNumberArray(obj, key);
  if (v.size() != 2) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected 2 numbers for augment.") + key);
  return {v[0], v[1]};
}

int64_t ToInt(double d, const char* key) {
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0) {
    throw tabsight::Error(ErrorCode::kConfig, std::string("Expected integer for augment.") + key);
  }
  return static_cast<int64_t>(d);
}

}  // namespace

AugmentOptions ReadAugmentOptions(const Napi::Value& value) {
  if (!value.IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object for augment");
  Napi::Object obj = value.As<Napi::Object>();
  AugmentOptions o;
  o.rate = GetNumber(obj, "rate");
  o.crop = GetBool(obj, "crop");
  std::tie(o.crop_scale_min, o.crop_scale_max) = GetPair(obj, "cropScale");
  std::tie(o.crop_ratio_min, o.crop_ratio_max) = GetPair(obj, "cropRatio");
  o.flip_p = GetNumber(obj, "flipP");
  o.rotation_deg = GetNumber(obj, "rotationDeg");
  o.brightness = GetNumber(obj, "brightness");
  o.contrast = GetNumber(obj, "contrast");
  o.saturation = GetNumber(obj, "saturation");
  o.jitter_p = GetNumber(obj, "jitterP");
  o.grayscale_p = GetNumber(obj, "grayscaleP");
  o.blur_p = GetNumber(obj, "blurP");
  o.blur_kernel = ToInt(GetNumber(obj, "blurKernel"), "blurKernel");
  std::tie(o.blur_sigma_min, o.blur_sigma_max) = GetPair(obj, "blurSigma");
  auto [out_h, out_w] = GetPair(obj, "outSize");
  o.out_h = ToInt(out_h, "outSize");
  o.out_w = ToInt(out_w, "outSize");
  std::tie(o.value_min, o.value_max) = GetPair(obj, "valueRange");
  train::ValidateAugmentOptions(o);
  return o;
}

namespace {

// A JS number that is an integer in [0, 2^53] → uint64.
uint64_t ReadSeed(const Napi::Value& value) {
  const double d = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1.0;
  if (!(d >= 0 && d <= 9007199254740992.0 && d == std::floor(d))) {
    throw tabsight::Error(ErrorCode::kConfig, "Expected non-negative integer up to 2^53 for seed");
  }
  return static_cast<uint64_t>(d);
}

// Image data (Uint8Array or Float32Array) with a rank-4 shape, as a tensor:
// a view for synchronous calls, a native-owned copy for the worker.
torch::Tensor ReadImages(const Napi::Value& data, const Napi::Value& shape_value, bool copy) {
  Napi::TypedArray array = ExpectTypedArray(data, "images.data", {napi_uint8_array, napi_float32_array});
  std::vector<int64_t> shape = ReadShape(shape_value, "images.shape");
  if (shape.size() != 4) {
    throw tabsight::Error(ErrorCode::kShape, "Expected 4 dimensions [n, c, h, w] for images.shape but received " +
                                                 std::to_string(shape.size()));
  }
  return copy ? TensorCopy(array, shape, "images.data") : TensorView(array, shape, "images.data");
}

Napi::Object Result(Napi::Env env, const torch::Tensor& out) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", ToTypedArray(env, out));
  result.Set("shape", ShapeToJs(env, out));
  return result;
}

// Runs Augment on a libuv thread. The input is a native copy of the JS
// array (the caller may detach, transfer or shrink its buffer as soon as
// augment returns). Without `into` the output tensor views a Float32Array
// allocated here that no JS can reach until the promise resolves with it, so
// the result is written once, in place. With `into` (the caller's array) the
// worker writes native memory and OnOK copies it into `into` on the main
// thread, after checking that its buffer still has the expected length.
// Execute never touches JS.
class AugmentWorker : public Napi::AsyncWorker {
 public:
  AugmentWorker(Napi::Env env, const Napi::TypedArray& array, torch::Tensor images, AugmentOptions options,
                uint64_t seed, train::AugmentPath path, const Napi::Value& into)
      : Napi::AsyncWorker(env, "tabsight:augment"),
        deferred_(Napi::Promise::Deferred::New(env)),
        images_(std::move(images)),
        options_(options),
        seed_(seed),
        path_(path) {
    const int64_t n = images_.size(0), c = images_.size(1);
    out_shape_ = {n, c, options_.out_h > 0 ? options_.out_h : images_.size(2),
                  options_.out_w > 0 ? options_.out_w : images_.size(3)};
    double numel = 1;
    for (int64_t d : out_shape_) numel *= static_cast<double>(d);
    if (numel > kMaxOutputElements) {
      throw tabsight::Error(ErrorCode::kConfig, "Expected an output of at most 2^32 - 1 elements for augment");
    }
    Napi::Float32Array output;
    if (into.IsUndefined()) {
      output = Napi::Float32Array::New(env, static_cast<size_t>(numel));
    } else {
      if (!into.IsTypedArray() || into.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw tabsight::Error(ErrorCode::kShape, "Expected a Float32Array for the augment output");
      }
      output = into.As<Napi::Float32Array>();
      if (static_cast<double>(output.ElementLength()) != numel) {
        throw tabsight::Error(ErrorCode::kShape, "Expected " + std::to_string(static_cast<int64_t>(numel)) +
                                                     " elements for the augment output but received " +
                                                     std::to_string(output.ElementLength()));
      }
      const auto* in_lo = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
      const auto* out_lo = static_cast<const uint8_t*>(output.ArrayBuffer().Data()) + output.ByteOffset();
      if (in_lo < out_lo + output.ByteLength() && out_lo < in_lo + array.ByteLength()) {
        throw tabsight::Error(ErrorCode::kShape, "Expected an augment output that does not overlap the images' memory");
      }
    }
    output_ref_ = Napi::Persistent(static_cast<Napi::Object>(output));
    if (into.IsUndefined()) {
      output_ = TensorView(output, out_shape_, "augment output");
    } else {
      copy_out_ = true;
      output_ = torch::empty(out_shape_, torch::kFloat32);
    }
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      UseIntraOpThreadsOnThisThread();
      train::Augment(images_, options_, seed_, path_, output_);
    } catch (...) {
      failure_ = CurrentFailure();
      failed_ = true;
    }
    images_ = torch::Tensor();
    if (!copy_out_) output_ = torch::Tensor();  // drop the view before the array can go
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(MakeError(env, failure_).Value());
      return;
    }
    try {
      if (copy_out_) CopyOut();
      Napi::Object result = Napi::Object::New(env);
      result.Set("data", output_ref_.Value());
      Napi::Array shape = Napi::Array::New(env, out_shape_.size());
      for (uint32_t k = 0; k < out_shape_.size(); ++k) {
        shape.Set(k, Napi::Number::New(env, static_cast<double>(out_shape_[k])));
      }
      result.Set("shape", shape);
      deferred_.Resolve(result);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(MakeError(env, CurrentFailure()).Value());
    }
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  // Copies the result into the caller's `into` (main thread only).
  void CopyOut() {
    auto into = output_ref_.Value().As<Napi::TypedArray>();
    const size_t bytes = static_cast<size_t>(output_.numel()) * sizeof(float);
    void* base = into.ArrayBuffer().Data();
    if (into.ByteLength() != bytes || (bytes > 0 && base == nullptr)) {
      throw tabsight::Error(ErrorCode::kShape, "Expected the augment output to keep its " + std::to_string(output_.numel()) +
                                                   " elements but its buffer was detached or resized (" +
                                                   std::to_string(into.ElementLength()) + " elements) while augment ran");
    }
    if (bytes) std::memcpy(static_cast<uint8_t*>(base) + into.ByteOffset(), output_.data_ptr<float>(), bytes);
    output_ = torch::Tensor();
  }

  Napi::Promise::Deferred deferred_;
  static constexpr double kMaxOutputElements = 4294967295.0;
  Napi::ObjectReference output_ref_;
  torch::Tensor images_;
  std::vector<int64_t> out_shape_;
  AugmentOptions options_;
  uint64_t seed_;
  train::AugmentPath path_;
  torch::Tensor output_;
  bool copy_out_ = false;
  Failure failure_;
  bool failed_ = false;
};

Napi::Value AugmentJs(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (info.Length() < 4) throw tabsight::Error(ErrorCode::kConfig, "augment expects (data, shape, options, seed)");
    torch::Tensor images = ReadImages(info[0], info[1], /*copy=*/true);
    AugmentOptions options = ReadAugmentOptions(info[2]);
    const uint64_t seed = ReadSeed(info[3]);
    train::AugmentPath path = train::AugmentPath::kAuto;
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      if (!info[4].IsBoolean()) throw tabsight::Error(ErrorCode::kConfig, "Expected boolean for reference");
      if (info[4].As<Napi::Boolean>().Value()) path = train::AugmentPath::kReference;
    }
    Napi::Value into = info.Length() > 5 ? info[5] : info.Env().Undefined();
    auto* worker = new AugmentWorker(info.Env(), info[0].As<Napi::TypedArray>(), images, options, seed, path, into);
    Napi::Promise promise = worker->Promise();
    worker->Queue();  // the worker deletes itself after OnOK / OnError
    return promise;
  });
}

Napi::Value ParamsToJs(Napi::Env env, const std::vector<SampleParams>& params) {
  Napi::Array out = Napi::Array::New(env, params.size());
  auto num = [&](double v) { return Napi::Number::New(env, v); };
  for (size_t i = 0; i < params.size(); ++i) {
    const SampleParams& p = params[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("augmented", Napi::Boolean::New(env, p.augmented));
    Napi::Array crop = Napi::Array::New(env, 4);
    const int64_t box[4] = {p.crop_top, p.crop_left, p.crop_h, p.crop_w};
    for (uint32_t k = 0; k < 4; ++k) crop.Set(k, num(static_cast<double>(box[k])));
    o.Set("crop", crop);
    o.Set("flip", Napi::Boolean::New(env, p.flip));
    o.Set("angle", num(p.angle_deg));
    o.Set("jitter", Napi::Boolean::New(env, p.jitter));
    o.Set("brightness", num(p.brightness));
    o.Set("contrast", num(p.contrast));
    o.Set("saturation", num(p.saturation));
    static const char* const kNames[3] = {"brightness", "contrast", "saturation"};
    Napi::Array order = Napi::Array::New(env, 3);
    for (uint32_t k = 0; k < 3; ++k) order.Set(k, Napi::String::New(env, kNames[p.order[k]]));
    o.Set("order", order);
    o.Set("grayscale", Napi::Boolean::New(env, p.grayscale));
    o.Set("blur", Napi::Boolean::New(env, p.blur));
    o.Set("blurSigma", num(p.blur_sigma));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// augmentParams(n, h, w, options, seed): the parameters augment() would draw.
Napi::Value AugmentParamsJs(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (info.Length() < 5) throw tabsight::Error(ErrorCode::kConfig, "augmentParams expects (n, h, w, options, seed)");
    int64_t dims[3];
    for (int k = 0; k < 3; ++k) {
      const double d = info[k].IsNumber() ? info[k].As<Napi::Number>().DoubleValue() : -1.0;
      if (!(d >= (k == 0 ? 0 : 1) && d <= 1e9 && d == std::floor(d))) {
        throw tabsight::Error(ErrorCode::kShape, "Expected non-negative n and positive h, w for augmentParams");
      }
      dims[k] = static_cast<int64_t>(d);
    }
    AugmentOptions options = ReadAugmentOptions(info[3]);
    return ParamsToJs(info.Env(), train::SampleAugmentParams(dims[0], dims[1], dims[2], options, ReadSeed(info[4])));
  });
}

// resizeToFloat(data, shape, outH, outW): synchronous, for small batches.
Napi::Value ResizeToFloatJs(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (info.Length() < 4) throw tabsight::Error(ErrorCode::kConfig, "resizeToFloat expects (data, shape, outH, outW)");
    torch::Tensor images = ReadImages(info[0], info[1], /*copy=*/false);
    const int64_t out_h = ToInt(info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : NAN, "outSize");
    const int64_t out_w = ToInt(info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : NAN, "outSize");
    return Result(info.Env(), train::ToFloatResized(images, out_h, out_w));
  });
}

}  // namespace

// Test-only: the lazily seeded StreamRng (common/rng.h) against
// std::mt19937_64 on one seed. _streamRngProbe(seed: string, draws: number)
// → { stream: string[], std: string[] }: the first `draws` outputs of each,
// as decimal strings (64-bit values do not fit a JS number). `seed` is a
// decimal integer in [0, 2^64); draws at most 20000.
Napi::Value StreamRngProbe(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
      throw tabsight::Error(ErrorCode::kConfig, "_streamRngProbe expects (seed: string, draws: number)");
    }
    const std::string text = info[0].As<Napi::String>().Utf8Value();
    const bool digits = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
    errno = 0;
    const unsigned long long seed = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
    if (!digits || errno == ERANGE) {
      throw tabsight::Error(ErrorCode::kConfig, "Expected a decimal integer in [0, 2^64) for seed but received \"" + text + "\"");
    }
    const double draws = info[1].As<Napi::Number>().DoubleValue();
    if (!(draws >= 0 && draws <= 20000 && std::floor(draws) == draws)) {
      throw tabsight::Error(ErrorCode::kConfig, "Expected integer between 0 and 20000 for draws");
    }
    StreamRng lazy(seed);
    std::mt19937_64 reference(seed);
    const auto n = static_cast<uint32_t>(draws);
    Napi::Array a = Napi::Array::New(env, n), b = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; ++i) {
      a.Set(i, Napi::String::New(env, std::to_string(lazy())));
      b.Set(i, Napi::String::New(env, std::to_string(reference())));
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("stream", a);
    out.Set("std", b);
    return out;
  });
}

void RegisterAugment(Napi::Env env, Napi::Object exports) {
  exports.Set("augment", Napi::Function::New(env, AugmentJs, "augment"));
  exports.Set("augmentParams", Napi::Function::New(env, AugmentParamsJs, "augmentParams"));
  exports.Set("resizeToFloat", Napi::Function::New(env, ResizeToFloatJs, "resizeToFloat"));
  exports.Set("_streamRngProbe", Napi::Function::New(env, StreamRngProbe, "_streamRngProbe"));
}

}  // namespace tabsight::napi
