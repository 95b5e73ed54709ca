// Shared helpers for the N-API binding files: error mapping, typed-array ↔
// tensor bridging and readers for option objects that TypeScript already
// validated. Only binding files (addon.cc, napi_*.cc) include napi.h.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <exception>
#include <string>
#include <vector>

#include "common/error.h"

namespace tabsight::napi {

// A captured native failure: a stable code and a message. Produced on worker
// threads (no JS there), turned into a JS Error on the main thread.
struct Failure {
  std::string code;
  std::string message;
};

// Maps the exception currently being handled (call inside catch (...)) to a
// Failure. c10::Error → ERR_TORCH (or ERR_OOM for allocation failures),
// tabsight::Error → its code, std::bad_alloc → ERR_OOM, anything else →
// ERR_TORCH.
Failure CurrentFailure();

// A JS Error with `.code` set.
Napi::Error MakeError(Napi::Env env, const Failure& failure);

// `error` with a stable code: itself when it has one, else an ERR_CONFIG
// error with its message (and `cause` the original). N-API calls on a value
// of the wrong type (an options object that is undefined, a number that is a
// string) fail with uncoded errors; they are all misuse of the raw binding.
Napi::Error WithCode(Napi::Env env, const Napi::Error& error);

// Runs fn; any C++ exception becomes a thrown JS error with a stable code.
// Use it for every synchronous binding entry point.
template <typename Fn>
Napi::Value Guard(const Napi::CallbackInfo& info, Fn&& fn) {
  Napi::Env env = info.Env();
  try {
    return fn();
  } catch (const Napi::Error& e) {
    WithCode(env, e).ThrowAsJavaScriptException();
    return env.Undefined();
  } catch (...) {
    MakeError(env, CurrentFailure()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

[[noreturn]] void ThrowTypeError(const std::string& message);

// A view of a JS typed array as a tensor (no copy), for synchronous calls
// only: the tensor must not outlive the call. A reference does not keep the
// memory: once the call returns, JS may transfer the ArrayBuffer (and the new
// owner free it) or shrink a resizable one.
torch::Tensor TensorView(const Napi::TypedArray& array, const std::vector<int64_t>& shape,
                         const char* what);

// A native-owned copy of a JS typed array as a tensor (one memcpy, on the
// main thread), checked like TensorView. Every input that work off the main
// thread reads (PromiseWorker, AsyncWorker) is one of these.
torch::Tensor TensorCopy(const Napi::TypedArray& array, const std::vector<int64_t>& shape,
                         const char* what);

// Checks that a value is a typed array of one of the allowed types.
Napi::TypedArray ExpectTypedArray(const Napi::Value& value, const char* what,
                                  std::initializer_list<napi_typedarray_type> allowed);

// A fresh JS typed array holding a copy of `tensor` (moved to CPU,
// contiguous). float32 → Float32Array, float64 → Float64Array,
// int64 → BigInt64Array, uint8 → Uint8Array.
Napi::Value ToTypedArray(Napi::Env env, const torch::Tensor& tensor);

std::vector<int64_t> ShapeOf(const torch::Tensor& tensor);
Napi::Array ShapeToJs(Napi::Env env, const torch::Tensor& tensor);
std::vector<int64_t> ReadShape(const Napi::Value& value, const char* what);

// Readers for option objects: TypeScript has filled in every default, so a
// missing key is a programming error and throws a TypeError naming it.
double GetNumber(const Napi::Object& obj, const char* key);
int64_t GetInt(const Napi::Object& obj, const char* key);
bool GetBool(const Napi::Object& obj, const char* key);
std::string GetString(const Napi::Object& obj, const char* key);
Napi::Object GetObject(const Napi::Object& obj, const char* key);
std::vector<double> GetNumberArray(const Napi::Object& obj, const char* key);
bool Has(const Napi::Object& obj, const char* key);

// A binding for a process-wide native switch (the `_winograd` kind):
// name(enabled?: boolean) → boolean, the setting before the call, which is
// unchanged when `enabled` is omitted. For benchmarks' A/B runs and tests.
Napi::Function SwitchFunction(Napi::Env env, const char* name, bool (*enabled)(), bool (*set)(bool));

}  // namespace tabsight::napi
