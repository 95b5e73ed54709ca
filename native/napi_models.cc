// ImageEncoder: a ResNet image encoder handle for loading weights, saving
// them under torchvision's names, and embedding images.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <mutex>

#include "common/caching_cpu_allocator.h"
#include "io/safetensors.h"
#include "models/fused_bn_relu.h"
#include "models/max_pool.h"
#include "models/resnet.h"
#include "models/winograd_conv.h"
#include "napi_register.h"
#include "napi_util.h"
#include "napi_worker.h"
#include "train/trainer.h"

namespace tabsight::napi {

namespace {

struct EncoderState {
  std::mutex mu;  // one native operation at a time per encoder
  models::ResNet model{nullptr};
  torch::Device device{torch::kCPU};
};

class ImageEncoder : public Napi::ObjectWrap<ImageEncoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ImageEncoder",
                       {InstanceMethod("loadWeights", &ImageEncoder::LoadWeights),
                        InstanceMethod("saveWeights", &ImageEncoder::SaveWeights),
                        InstanceMethod("embed", &ImageEncoder::Embed),
                        InstanceMethod("dispose", &ImageEncoder::Dispose),
                        InstanceAccessor("featureDim", &ImageEncoder::FeatureDim, nullptr),
                        InstanceAccessor("disposed", &ImageEncoder::Disposed, nullptr)});
  }

  // new ImageEncoder({ arch, inChannels, smallStem, seed, device })
  explicit ImageEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ImageEncoder>(info) {
    Napi::Env env = info.Env();
    try {
      if (info.Length() < 1 || !info[0].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
      auto o = info[0].As<Napi::Object>();
      models::ResNetOptions options;
      options.arch = GetString(o, "arch");
      options.in_channels = GetInt(o, "inChannels");
      options.small_stem = GetBool(o, "smallStem");
      state_ = std::make_shared<EncoderState>();
      state_->device = train::ResolveDevice(GetString(o, "device"));
      torch::manual_seed(static_cast<uint64_t>(GetNumber(o, "seed")));
      state_->model = models::ResNet(options);
      state_->model->to(state_->device);
      state_->model->eval();
    } catch (const Napi::Error& e) {
      throw WithCode(env, e);
    } catch (...) {
      throw MakeError(env, CurrentFailure());
    }
  }

 private:
  std::shared_ptr<EncoderState> Live() {
    if (!state_) throw tabsight::Error(ErrorCode::kDisposed, "ImageEncoder has been disposed");
    return state_;
  }

  Napi::Value FeatureDim(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), static_cast<double>(Live()->model->feature_dim()));
    });
  }

  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();  // workers in flight keep their own reference
    return info.Env().Undefined();
  }

  // loadWeights(path) → Promise<void>
  Napi::Value LoadWeights(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto state = Live();
      if (!info[0].IsString()) throw tabsight::Error(ErrorCode::kConfig, "Expected a string for path");
      std::string path = info[0].As<Napi::String>().Utf8Value();
      return PromiseWorker::Start(
          info.Env(),
          [state, path] {
            std::lock_guard<std::mutex> lock(state->mu);
            auto file = io::ReadSafetensors(path);
            train::LoadImageEncoderTensors(state->model, file, path);
          },
          [](Napi::Env env) { return env.Undefined(); });
    });
  }

  // saveWeights(path, metadata: Record<string, string>) → Promise<void>
  Napi::Value SaveWeights(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto state = Live();
      if (!info[0].IsString()) throw tabsight::Error(ErrorCode::kConfig, "Expected a string for path");
      std::string path = info[0].As<Napi::String>().Utf8Value();
      io::Metadata meta;
      if (info.Length() > 1 && info[1].IsObject()) {
        auto o = info[1].As<Napi::Object>();
        auto keys = o.GetPropertyNames();
        for (uint32_t i = 0; i < keys.Length(); ++i) {
          std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
          meta[k] = o.Get(k).ToString().Utf8Value();
        }
      }
      const auto& opt = state->model->options();
      meta["arch"] = opt.arch;
      meta["in_channels"] = std::to_string(opt.in_channels);
      meta["small_stem"] = opt.small_stem ? "true" : "false";
      meta["feature_dim"] = std::to_string(state->model->feature_dim());
      return PromiseWorker::Start(
          info.Env(),
          [state, path, meta] {
            std::lock_guard<std::mutex> lock(state->mu);
            io::WriteSafetensors(path, train::ImageEncoderTensors(state->model), meta);
          },
          [](Napi::Env env) { return env.Undefined(); });
    });
  }

  // embed(data, [N,C,H,W], { mean, std, outSize: [h, w], batchSize, memoryFormat? }) → Promise<{data, shape}>
  // The images are copied before the worker runs: the caller may detach or
  // shrink the array once embed returns.
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto state = Live();
      auto arr = ExpectTypedArray(info[0], "images", {napi_uint8_array, napi_float32_array});
      auto shape = ReadShape(info[1], "images shape");
      if (shape.size() != 4) throw tabsight::Error(ErrorCode::kShape, "Expected images shape [N, C, H, W]");
      if (!info[2].IsObject()) throw tabsight::Error(ErrorCode::kConfig, "Expected an options object");
      auto o = info[2].As<Napi::Object>();
      auto mean = GetNumberArray(o, "mean");
      auto std = GetNumberArray(o, "std");
      auto out_size = GetNumberArray(o, "outSize");
      const int64_t batch = GetInt(o, "batchSize");
      const std::string memory_format = Has(o, "memoryFormat") ? GetString(o, "memoryFormat") : "auto";
      if (out_size.size() != 2) throw tabsight::Error(ErrorCode::kConfig, "Expected outSize [h, w]");
      if (batch < 1) throw tabsight::Error(ErrorCode::kConfig, "Expected positive integer for batchSize");
      if (static_cast<int64_t>(mean.size()) != shape[1] || static_cast<int64_t>(std.size()) != shape[1]) {
        throw tabsight::Error(ErrorCode::kConfig, "Expected one normalisation mean and std per image channel");
      }
      auto images = TensorCopy(arr, shape, "images");
      auto result = std::make_shared<torch::Tensor>();
      return PromiseWorker::Start(
          info.Env(),
          [state, images, mean, std, out_size, batch, memory_format, result] {
            std::lock_guard<std::mutex> lock(state->mu);
            *result = train::EmbedImages(state->model, images, mean, std, static_cast<int64_t>(out_size[0]),
                                         static_cast<int64_t>(out_size[1]), batch, state->device, nullptr, memory_format);
          },
          [result](Napi::Env env) -> Napi::Value {
            auto out = Napi::Object::New(env);
            out.Set("data", ToTypedArray(env, *result));
            out.Set("shape", ShapeToJs(env, *result));
            return out;
          });
    });
  }

  std::shared_ptr<EncoderState> state_;
};

// Largest differences from float64 per output, as the two probes return
// them: { [name]: { <first>, torch, scale } } and layoutKept.
using Gaps = std::vector<std::pair<std::string, std::array<double, 3>>>;

Napi::Object GapsObject(Napi::Env env, const Gaps& gaps, const char* first, bool kept) {
  Napi::Object r = Napi::Object::New(env);
  for (const auto& [name, v] : gaps) {
    Napi::Object e = Napi::Object::New(env);
    e.Set(first, Napi::Number::New(env, v[0]));
    e.Set("torch", Napi::Number::New(env, v[1]));
    e.Set("scale", Napi::Number::New(env, v[2]));
    r.Set(name, e);
  }
  r.Set("layoutKept", Napi::Boolean::New(env, kept));
  return r;
}

// { |ours − float64|, |LibTorch float32 − float64|, |float64| }, each the largest.
std::array<double, 3> Gap(const torch::Tensor& ours, const torch::Tensor& torch32, const torch::Tensor& f64) {
  const auto d = f64.detach();
  auto diff = [&](const torch::Tensor& t) { return (t.detach().to(torch::kFloat64) - d).abs().max().item<double>(); };
  return {diff(ours), diff(torch32), d.abs().max().item<double>()};
}

// The two timing benchmarks: run(0) and run(1) once each to warm up, then
// `reps` rounds alternating which goes first; seconds per call.
using Times = std::array<std::vector<double>, 2>;

void TimeAlternating(const std::function<void(int)>& run, int64_t reps, Times* times) {
  run(0);
  run(1);
  for (int64_t i = 0; i < reps; ++i) {
    for (int k = 0; k < 2; ++k) {
      const int which = static_cast<int>((i + k) % 2);
      const auto t0 = std::chrono::steady_clock::now();
      run(which);
      (*times)[which].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
}

Napi::Object TimesObject(Napi::Env env, const Times& times, const char* first, const char* second) {
  Napi::Object out = Napi::Object::New(env);
  const char* names[2] = {first, second};
  for (int k = 0; k < 2; ++k) {
    Napi::Array a = Napi::Array::New(env, times[k].size());
    for (size_t i = 0; i < times[k].size(); ++i) a.Set(static_cast<uint32_t>(i), times[k][i]);
    out.Set(names[k], a);
  }
  return out;
}

// The probes' `shape`: [n, c, h, w].
std::vector<int64_t> ProbeShape(const Napi::Object& o) {
  const auto dims = GetNumberArray(o, "shape");
  if (dims.size() != 4) throw tabsight::Error(ErrorCode::kShape, "Expected 4 dimensions for shape");
  return std::vector<int64_t>(dims.begin(), dims.end());
}

// { shape: [n, c, h, w], channelsLast, residual } of the two batch-norm probes.
std::tuple<std::vector<int64_t>, bool, bool> BnReluArgs(const Napi::Object& o) {
  return {ProbeShape(o), GetBool(o, "channelsLast"), GetBool(o, "residual")};
}

// Test-only: the fused batch norm + ReLU node (models/fused_bn_relu.h)
// against LibTorch's batch_norm, add and relu, in float32 and in float64.
// _bnReluProbe({ shape: [n, c, h, w], channelsLast, residual, factor, offset, seed })
// → Promise<{ [name]: { fused, torch, scale } }> for name in y, dx, dresidual,
// dweight, dbias, runningMean, runningVar: the largest |fused − float64| and
// |LibTorch float32 − float64|, and the largest |float64| value. Also
// `layoutKept`: whether y and dx came back in x's layout. x is randn + offset;
// the weight has both signs; the upstream gradient is randn.
Napi::Value BnReluProbe(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    std::vector<int64_t> shape;
    bool cl = false, with_res = false;
    std::tie(shape, cl, with_res) = BnReluArgs(o);  // (lambdas cannot capture structured bindings in C++17)
    const double factor = GetNumber(o, "factor"), offset = GetNumber(o, "offset");
    const auto seed = static_cast<uint64_t>(GetNumber(o, "seed"));
    auto out = std::make_shared<Gaps>();
    auto kept = std::make_shared<bool>(false);
    return PromiseWorker::Start(
        info.Env(),
        [=] {
          auto gen = at::detail::createCPUGenerator(seed);
          auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
          const auto fmt = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
          const int64_t c = shape[1];
          auto x0 = (torch::randn(shape, gen, f32) + offset).contiguous(fmt);
          auto r0 = torch::randn(shape, gen, f32).contiguous(fmt);
          auto w0 = torch::randn({c}, gen, f32);
          auto b0 = torch::randn({c}, gen, f32);
          auto rm0 = torch::randn({c}, gen, f32), rv0 = torch::rand({c}, gen, f32) + 0.5;
          auto g0 = torch::randn(shape, gen, f32).contiguous(fmt);
          struct Run {
            torch::Tensor y, x, r, w, b, rm, rv;
          };
          auto make = [&](torch::ScalarType t) {
            Run run;
            run.x = x0.to(t).clone().contiguous(fmt).requires_grad_(true);
            run.r = r0.to(t).clone().contiguous(fmt).requires_grad_(true);
            run.w = w0.to(t).clone().requires_grad_(true);
            run.b = b0.to(t).clone().requires_grad_(true);
            run.rm = rm0.to(t).clone();
            run.rv = rv0.to(t).clone();
            return run;
          };
          constexpr double kEps = 1e-5;
          auto reference = [&](Run& run) {
            auto y = torch::batch_norm(run.x, run.w, run.b, run.rm, run.rv, /*training=*/true, factor, kEps, false);
            if (with_res) y = y + run.r;
            run.y = torch::relu(y);
            run.y.backward(g0.to(run.y.scalar_type()).contiguous(fmt));
          };
          Run fused = make(torch::kFloat32), ref = make(torch::kFloat32), dbl = make(torch::kFloat64);
          fused.y = models::FusedBatchNormRelu(fused.x, with_res ? fused.r : torch::Tensor(), fused.w, fused.b, fused.rm,
                                               fused.rv, factor, kEps);
          fused.y.backward(g0);
          reference(ref);
          reference(dbl);
          *kept = fused.y.is_contiguous(fmt) && fused.x.grad().is_contiguous(fmt);
          auto get = [&](Run& run, const std::string& name) -> torch::Tensor {
            if (name == "y") return run.y;
            if (name == "dx") return run.x.grad();
            if (name == "dresidual") return with_res ? run.r.grad() : torch::zeros({1}, f32);
            if (name == "dweight") return run.w.grad();
            if (name == "dbias") return run.b.grad();
            if (name == "runningMean") return run.rm;
            return run.rv;
          };
          for (const std::string name : {"y", "dx", "dresidual", "dweight", "dbias", "runningMean", "runningVar"}) {
            out->push_back({name, Gap(get(fused, name), get(ref, name), get(dbl, name))});
          }
        },
        [out, kept](Napi::Env env) -> Napi::Value { return GapsObject(env, *out, "fused", *kept); });
  });
}

// Benchmark-only: forward + backward of relu(bn(x) [+ residual]) in training
// mode, the fused node against LibTorch's batch_norm, add and relu, on the
// same inputs, alternating, with the caching CPU allocator on as in training.
// _bnReluTiming({ shape, channelsLast, residual, reps }) → Promise<{ fused:
// number[], libtorch: number[] }> (seconds per repetition, after one warm-up each).
Napi::Value BnReluTiming(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    std::vector<int64_t> shape;
    bool cl = false, with_res = false;
    std::tie(shape, cl, with_res) = BnReluArgs(o);  // (lambdas cannot capture structured bindings in C++17)
    const int64_t reps = GetInt(o, "reps");
    auto times = std::make_shared<Times>();
    return PromiseWorker::Start(
        info.Env(),
        [=] {
          CpuCacheScope cache;
          const auto fmt = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
          const int64_t c = shape[1];
          auto x = torch::randn(shape).contiguous(fmt).requires_grad_(true);
          auto r = torch::randn(shape).contiguous(fmt).requires_grad_(true);
          auto g = torch::randn(shape).contiguous(fmt);
          auto w = torch::rand({c}).requires_grad_(true), b = torch::zeros({c}).requires_grad_(true);
          auto rm = torch::zeros({c}), rv = torch::ones({c});
          auto run = [&](int which) {
            torch::Tensor y;
            if (which == 0) {
              y = models::FusedBatchNormRelu(x, with_res ? r : torch::Tensor(), w, b, rm, rv, 0.1, 1e-5);
            } else {
              y = torch::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, false);
              y = torch::relu(with_res ? y + r : y);
            }
            y.backward(g);
            for (auto* t : {&x, &r, &w, &b}) t->mutable_grad().reset();
          };
          TimeAlternating(run, reps, times.get());
        },
        [times](Napi::Env env) -> Napi::Value { return TimesObject(env, *times, "fused", "libtorch"); });
  });
}

// { shape: [n, c, h, w], outChannels, channelsLast } of the two Winograd probes.
std::tuple<std::vector<int64_t>, int64_t, bool> WinogradArgs(const Napi::Object& o) {
  return {ProbeShape(o), GetInt(o, "outChannels"), GetBool(o, "channelsLast")};
}

// Test-only: the Winograd convolution (models/winograd_conv.h) against
// LibTorch's conv2d, in float32 and in float64, 3×3, stride 1, padding 1.
// _winogradProbe({ shape: [n, c, h, w], outChannels, channelsLast, seed })
// → Promise<{ [name]: { winograd, torch, scale } }> for name in y, dx,
// dweight: the largest |Winograd − float64| and |LibTorch float32 − float64|,
// and the largest |float64| value; `layoutKept`: whether y and dx came back
// in x's layout. x is relu(randn) as after a ReLU, the weight He-scaled
// randn, the upstream gradient randn.
Napi::Value WinogradProbe(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    std::vector<int64_t> shape;
    int64_t out_channels = 0;
    bool cl = false;
    std::tie(shape, out_channels, cl) = WinogradArgs(o);
    const auto seed = static_cast<uint64_t>(GetNumber(o, "seed"));
    auto out = std::make_shared<Gaps>();
    auto kept = std::make_shared<bool>(false);
    return PromiseWorker::Start(
        info.Env(),
        [=] {
          auto gen = at::detail::createCPUGenerator(seed);
          auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
          const auto fmt = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
          const int64_t c = shape[1];
          auto x0 = torch::relu(torch::randn(shape, gen, f32)).contiguous(fmt);
          auto w0 = (torch::randn({out_channels, c, 3, 3}, gen, f32) * std::sqrt(2.0 / (9.0 * c))).contiguous(fmt);
          auto g0 = torch::randn({shape[0], out_channels, shape[2], shape[3]}, gen, f32).contiguous(fmt);
          struct Run {
            torch::Tensor x, w, y;
          };
          auto make = [&](torch::ScalarType t) {
            Run run;
            run.x = x0.to(t).clone().contiguous(fmt).requires_grad_(true);
            run.w = w0.to(t).clone().contiguous(fmt).requires_grad_(true);
            return run;
          };
          Run wino = make(torch::kFloat32), ref = make(torch::kFloat32), dbl = make(torch::kFloat64);
          wino.y = models::WinogradConv3x3(wino.x, wino.w);
          wino.y.backward(g0);
          for (Run* run : {&ref, &dbl}) {
            run->y = torch::conv2d(run->x, run->w, {}, 1, 1);
            run->y.backward(g0.to(run->y.scalar_type()).contiguous(fmt));
          }
          *kept = wino.y.is_contiguous(fmt) && wino.x.grad().is_contiguous(fmt);
          auto get = [&](Run& run, const std::string& name) -> torch::Tensor {
            if (name == "y") return run.y;
            if (name == "dx") return run.x.grad();
            return run.w.grad();
          };
          for (const std::string name : {"y", "dx", "dweight"}) {
            out->push_back({name, Gap(get(wino, name), get(ref, name), get(dbl, name))});
          }
        },
        [out, kept](Napi::Env env) -> Napi::Value { return GapsObject(env, *out, "winograd", *kept); });
  });
}

// Benchmark-only: forward + backward of one 3×3 stride-1 convolution, the
// Winograd node against LibTorch's conv2d, on the same inputs, alternating,
// with the caching CPU allocator on as in training.
// _winogradTiming({ shape, outChannels, channelsLast, reps }) → Promise<{
// winograd: number[], libtorch: number[] }> (seconds per repetition, after one
// warm-up each).
Napi::Value WinogradTiming(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    std::vector<int64_t> shape;
    int64_t out_channels = 0;
    bool cl = false;
    std::tie(shape, out_channels, cl) = WinogradArgs(o);
    const int64_t reps = GetInt(o, "reps");
    auto times = std::make_shared<Times>();
    return PromiseWorker::Start(
        info.Env(),
        [=] {
          CpuCacheScope cache;
          const auto fmt = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
          auto x = torch::relu(torch::randn(shape)).contiguous(fmt).requires_grad_(true);
          auto w = (torch::randn({out_channels, shape[1], 3, 3}) * 0.05).contiguous(fmt).requires_grad_(true);
          auto g = torch::randn({shape[0], out_channels, shape[2], shape[3]}).contiguous(fmt);
          auto run = [&](int which) {
            auto y = which == 0 ? models::WinogradConv3x3(x, w) : torch::conv2d(x, w, {}, 1, 1);
            y.backward(g);
            x.mutable_grad().reset();
            w.mutable_grad().reset();
          };
          TimeAlternating(run, reps, times.get());
        },
        [times](Napi::Env env) -> Napi::Value { return TimesObject(env, *times, "winograd", "libtorch"); });
  });
}

// Test-only: the stem's max-pool kernel (models/max_pool.h) against
// LibTorch's max_pool2d(x, 3, 2, 1), forward and backward, on one input.
// _maxPoolStemProbe({ shape: [n, c, h, w], kind, seed }) → Promise<{ out,
// grad, kernel, outputs, routed }>: whether the outputs and the input
// gradients are the same bytes, whether the kernel ran (false when the switch
// is off), the number of outputs, and how many input positions received a
// nonzero gradient. x is float32 randn, then by kind: "randn" as is, "relu"
// (ties at 0), "ties" (rounded to integers), "nan" (20% NaN), "neginf" (70%
// −∞), "zeros" (+0 and −0 only). The upstream gradient is randn.
Napi::Value MaxPoolStemProbe(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    const auto shape = ProbeShape(o);
    const std::string kind = GetString(o, "kind");
    const auto seed = static_cast<uint64_t>(GetNumber(o, "seed"));
    static const std::vector<std::string> kinds{"randn", "relu", "ties", "nan", "neginf", "zeros"};
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
      Fail(ErrorCode::kConfig, "Expected one of randn, relu, ties, nan, neginf, zeros for kind but received \"" + kind + "\"");
    }
    struct Result {
      bool out = false, grad = false, kernel = false;
      int64_t outputs = 0, routed = 0;
    };
    auto r = std::make_shared<Result>();
    return PromiseWorker::Start(
        info.Env(),
        [=] {
          auto gen = at::detail::createCPUGenerator(seed);
          auto x = torch::randn(shape, gen, torch::kFloat32);
          auto coin = torch::rand(shape, gen, torch::kFloat32);
          if (kind == "relu") x = torch::relu(x);
          if (kind == "ties") x = torch::round(x);
          if (kind == "nan") x = torch::where(coin < 0.2, torch::full_like(x, NAN), x);
          if (kind == "neginf") x = torch::where(coin < 0.7, torch::full_like(x, -INFINITY), x);
          if (kind == "zeros") x = torch::where(coin < 0.5, torch::full_like(x, -0.0), torch::zeros_like(x));
          auto xk = x.clone().requires_grad_(true), xt = x.clone().requires_grad_(true);
          auto yk = models::MaxPoolStem(xk);
          auto yt = torch::max_pool2d(xt, {3, 3}, {2, 2}, {1, 1});
          r->kernel = yk.grad_fn() && yk.grad_fn()->name().find("MaxPoolStem") != std::string::npos;
          auto g = torch::randn(yt.sizes(), gen, torch::kFloat32);
          yk.backward(g);
          yt.backward(g);
          auto same = [](const torch::Tensor& a, const torch::Tensor& b) {
            auto ac = a.contiguous(), bc = b.contiguous();
            return ac.sizes() == bc.sizes() &&
                   std::memcmp(ac.data_ptr<float>(), bc.data_ptr<float>(), ac.numel() * sizeof(float)) == 0;
          };
          r->out = same(yk.detach(), yt.detach());
          r->grad = same(xk.grad(), xt.grad());
          r->outputs = yt.numel();
          r->routed = xt.grad().ne(0).sum().item<int64_t>();
        },
        [r](Napi::Env env) -> Napi::Value {
          auto obj = Napi::Object::New(env);
          obj.Set("out", Napi::Boolean::New(env, r->out));
          obj.Set("grad", Napi::Boolean::New(env, r->grad));
          obj.Set("kernel", Napi::Boolean::New(env, r->kernel));
          obj.Set("outputs", Napi::Number::New(env, static_cast<double>(r->outputs)));
          obj.Set("routed", Napi::Number::New(env, static_cast<double>(r->routed)));
          return obj;
        });
  });
}

}  // namespace

void RegisterModels(Napi::Env env, Napi::Object exports) {
  exports.Set("ImageEncoder", ImageEncoder::Define(env));
  exports.Set("_bnReluProbe", Napi::Function::New(env, BnReluProbe, "_bnReluProbe"));
  exports.Set("_bnReluTiming", Napi::Function::New(env, BnReluTiming, "_bnReluTiming"));
  exports.Set("_winogradProbe", Napi::Function::New(env, WinogradProbe, "_winogradProbe"));
  exports.Set("_winogradTiming", Napi::Function::New(env, WinogradTiming, "_winogradTiming"));
  exports.Set("_maxPoolStemProbe", Napi::Function::New(env, MaxPoolStemProbe, "_maxPoolStemProbe"));
  // The process-wide switches (napi_util.h, SwitchFunction).
  exports.Set("_winograd", SwitchFunction(env, "_winograd", models::WinogradConvEnabled, models::SetWinogradConvEnabled));
  exports.Set("_fusedBnRelu", SwitchFunction(env, "_fusedBnRelu", models::FusedBatchNormReluEnabled,
                                             models::SetFusedBatchNormReluEnabled));
  exports.Set("_stemMaxPool", SwitchFunction(env, "_stemMaxPool", models::MaxPoolStemKernelEnabled,
                                             models::SetMaxPoolStemKernelEnabled));
}

}  // namespace tabsight::napi
