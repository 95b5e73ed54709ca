// Feature-selection kernels: KSG neighbour counts for mutual information.
// Synchronous, like the TypeScript estimators that call them; the work is
// spread over LibTorch's intra-op threads, one column at a time.
#include <cstring>

#include "features/ksg.h"
#include "napi_register.h"
#include "napi_util.h"

namespace tabsight::napi {

namespace {

const double* ReadColumn(const Napi::Value& value, int64_t n, const std::string& what) {
  auto arr = ExpectTypedArray(value, what.c_str(), {napi_float64_array});
  if (static_cast<int64_t>(arr.ElementLength()) != n) {
    throw tabsight::Error(ErrorCode::kShape, "Expected " + what + " of length " + std::to_string(n) +
                                                 " but received " + std::to_string(arr.ElementLength()));
  }
  return reinterpret_cast<const double*>(static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t>& v) {
  auto out = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(out.Data(), v.data(), v.size() * sizeof(int32_t));
  return out;
}

// (xs: Float64Array[], y: Float64Array, k) → { nx, ny }: Int32Array of
// xs.length × n, column-major by feature.
Napi::Value KsgNeighbourCounts(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) ThrowTypeError("Expected xs to be an array of Float64Array");
    auto ys = ExpectTypedArray(info[1], "y", {napi_float64_array});
    const int64_t n = static_cast<int64_t>(ys.ElementLength());
    const double* y = ReadColumn(info[1], n, "y");
    auto arr = info[0].As<Napi::Array>();
    std::vector<const double*> xs;
    xs.reserve(arr.Length());
    for (uint32_t j = 0; j < arr.Length(); j++) xs.push_back(ReadColumn(arr.Get(j), n, "xs[" + std::to_string(j) + "]"));
    if (!info[2].IsNumber()) ThrowTypeError("Expected k to be a number");
    const int k = info[2].As<Napi::Number>().Int32Value();
    // JS cannot run while this synchronous call holds the thread, so the
    // arrays stay alive and unmoved.
    auto counts = features::KsgNeighbourCounts(xs, y, n, k);
    auto out = Napi::Object::New(env);
    out.Set("nx", ToInt32Array(env, counts.nx));
    out.Set("ny", ToInt32Array(env, counts.ny));
    return out;
  });
}

}  // namespace

void RegisterFeatures(Napi::Env env, Napi::Object exports) {
  exports.Set("ksgNeighbourCounts", Napi::Function::New(env, KsgNeighbourCounts, "ksgNeighbourCounts"));
}

}  // namespace tabsight::napi
