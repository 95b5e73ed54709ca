// Runtime facts and settings: LibTorch version, CUDA, thread count.
#include <torch/torch.h>

#include <dlfcn.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "napi_register.h"
#include "common/caching_cpu_allocator.h"
#include "common/threads.h"
#include "models/winograd_conv.h"
#include "napi_util.h"
#include "napi_worker.h"
#include "train/trainer.h"

namespace tabsight::napi {

namespace {

// The kernel family OpenBLAS chose when it loaded (LibTorch's BLAS on Debian),
// or "" where the process has no OpenBLAS (official builds use MKL). The addon
// is loaded without RTLD_GLOBAL, so look in the loaded libraries by name.
std::string OpenBlasCore() {
  for (const char* name : {"libopenblas.so.0", "libblas.so.3"}) {
    void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    auto* corename = reinterpret_cast<char* (*)()>(dlsym(handle, "openblas_get_corename"));
    std::string core = corename != nullptr ? corename() : "";
    dlclose(handle);
    if (!core.empty()) return core;
  }
  return "";
}

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto out = Napi::Object::New(env);
    out.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
    out.Set("cudaAvailable", Napi::Boolean::New(env, torch::cuda::is_available()));
    out.Set("cudaDeviceCount", Napi::Number::New(env, static_cast<double>(torch::cuda::device_count())));
    out.Set("threads", Napi::Number::New(env, at::get_num_threads()));
    out.Set("interopThreads", Napi::Number::New(env, at::get_num_interop_threads()));
    out.Set("hardwareConcurrency", Napi::Number::New(env, std::thread::hardware_concurrency()));
    out.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
    out.Set("blasCore", Napi::String::New(env, OpenBlasCore()));
    // Training's 3×3 convolutions by Winograd (models/winograd_conv.h): oneDNN's
    // kernels or tabsight's own.
    Napi::Object w = Napi::Object::New(env);
    w.Set("available", Napi::Boolean::New(env, models::WinogradAvailable()));
    w.Set("kernel", Napi::String::New(env, models::WinogradKernel()));
    w.Set("enabled", Napi::Boolean::New(env, models::WinogradConvEnabled()));
    w.Set("reason", Napi::String::New(env, models::WinogradUnavailableReason()));
    w.Set("calls", Napi::Number::New(env, static_cast<double>(models::WinogradConvCalls())));
    out.Set("winograd", w);
    const CpuCacheStats cache = GetCpuCacheStats();
    Napi::Object c = Napi::Object::New(env);
    c.Set("enabled", Napi::Boolean::New(env, cache.enabled));
    c.Set("activeScopes", Napi::Number::New(env, static_cast<double>(cache.active_scopes)));
    c.Set("hits", Napi::Number::New(env, static_cast<double>(cache.hits)));
    c.Set("misses", Napi::Number::New(env, static_cast<double>(cache.misses)));
    c.Set("liveBytes", Napi::Number::New(env, static_cast<double>(cache.live_bytes)));
    c.Set("cachedBytes", Napi::Number::New(env, static_cast<double>(cache.cached_bytes)));
    c.Set("capBytes", Napi::Number::New(env, static_cast<double>(cache.cap_bytes)));
    out.Set("cpuCache", c);
    // LibTorch's process-wide determinism settings (a deterministic run sets them while it trains).
    auto& ctx = at::globalContext();
    Napi::Object d = Napi::Object::New(env);
    d.Set("algorithms", Napi::Boolean::New(env, ctx.deterministicAlgorithms()));
    d.Set("cudnn", Napi::Boolean::New(env, ctx.deterministicCuDNN()));
    d.Set("cudnnBenchmark", Napi::Boolean::New(env, ctx.benchmarkCuDNN()));
    out.Set("deterministic", d);
    return out;
  });
}

// A thread count: an integer in [min, kMaxThreads] (checked as a double, so
// 2^32 + 1 does not wrap to 1).
int ReadThreadCount(const Napi::Value& value, int min, const char* what) {
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= kMaxThreads) || d != std::floor(d)) {
    throw tabsight::Error(ErrorCode::kConfig, "Expected integer between " + std::to_string(min) + " and " +
                                                  std::to_string(kMaxThreads) + " for " + what + " but received " +
                                                  Napi::Value(value).ToString().Utf8Value());
  }
  return static_cast<int>(d);
}

// Sets the count on the calling (main) thread and records it; each worker
// applies it to its own thread before running (common/threads.h).
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw tabsight::Error(ErrorCode::kConfig, "Expected a thread count");
    SetIntraOpThreads(ReadThreadCount(info[0], 1, "threads"));
    return Napi::Number::New(info.Env(), at::get_num_threads());
  });
}

// The prefetch thread's intra-op threads (0: automatic); see train/trainer.h.
Napi::Value SetDataThreads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw tabsight::Error(ErrorCode::kConfig, "Expected a data thread count");
    train::SetDataThreads(ReadThreadCount(info[0], 0, "dataThreads"));
    return info.Env().Undefined();
  });
}

// For tests: on a libuv worker, the intra-op thread count that worker has and
// how many distinct threads an at::parallel_for compiled into the addon ran
// on (1 would mean the addon was built without OpenMP: ATen's parallel_for is
// a header template that falls back to a serial loop).
Napi::Value ThreadProbe(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto threads = std::make_shared<int>(0);
    auto distinct = std::make_shared<size_t>(0);
    return PromiseWorker::Start(
        info.Env(),
        [threads, distinct] {
          *threads = at::get_num_threads();
          std::mutex mu;
          std::set<std::thread::id> ids;
          at::parallel_for(0, 1024, 1, [&](int64_t, int64_t) {
            std::lock_guard<std::mutex> lock(mu);
            ids.insert(std::this_thread::get_id());
          });
          *distinct = ids.size();
        },
        [threads, distinct](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("threads", Napi::Number::New(env, *threads));
          out.Set("distinctThreads", Napi::Number::New(env, static_cast<double>(*distinct)));
          return out;
        });
  });
}

}  // namespace

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New(env, RuntimeInfo, "runtimeInfo"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("_threadProbe", Napi::Function::New(env, ThreadProbe, "_threadProbe"));
  exports.Set("setDataThreads", Napi::Function::New(env, SetDataThreads, "setDataThreads"));
}

}  // namespace tabsight::napi
