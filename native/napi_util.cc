#include "napi_util.h"

#include <c10/util/Exception.h>

#include <cstring>
#include <new>
#include <sstream>

namespace tabsight::napi {

Failure CurrentFailure() {
  try {
    throw;
  } catch (const tabsight::Error& e) {
    return {CodeName(e.code()), e.what()};
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    // LibTorch reports allocator failures as c10::Error (OutOfMemoryError
    // derives from it on recent versions); the message is the stable part.
    const bool oom = msg.find("out of memory") != std::string::npos ||
                     msg.find("DefaultCPUAllocator: can't allocate") != std::string::npos;
    return {oom ? "ERR_OOM" : "ERR_TORCH", msg};
  } catch (const std::bad_alloc&) {
    return {"ERR_OOM", "out of memory"};
  } catch (const std::exception& e) {
    return {"ERR_TORCH", e.what()};
  } catch (...) {
    return {"ERR_TORCH", "unknown native error"};
  }
}

Napi::Error MakeError(Napi::Env env, const Failure& failure) {
  Napi::Error error = Napi::Error::New(env, failure.message);
  error.Value().Set("code", Napi::String::New(env, failure.code));
  return error;
}

Napi::Error WithCode(Napi::Env env, const Napi::Error& error) {
  Napi::Value value = error.Value();
  if (value.IsObject()) {
    Napi::Value code = value.As<Napi::Object>().Get("code");
    if (code.IsString()) return error;
  }
  Napi::Error coded = MakeError(env, {"ERR_CONFIG", error.Message()});
  if (!value.IsEmpty()) coded.Value().Set("cause", value);
  return coded;
}

void ThrowTypeError(const std::string& message) {
  throw tabsight::Error(ErrorCode::kShape, message);
}

namespace {

c10::ScalarType ScalarTypeOf(napi_typedarray_type type) {
  switch (type) {
    case napi_uint8_array: return torch::kUInt8;
    case napi_int8_array: return torch::kInt8;
    case napi_int16_array: return torch::kInt16;
    case napi_int32_array: return torch::kInt32;
    case napi_float32_array: return torch::kFloat32;
    case napi_float64_array: return torch::kFloat64;
    case napi_bigint64_array: return torch::kInt64;
    default: throw tabsight::Error(ErrorCode::kShape, "unsupported typed array type");
  }
}

const char* TypeName(napi_typedarray_type type) {
  switch (type) {
    case napi_uint8_array: return "Uint8Array";
    case napi_int8_array: return "Int8Array";
    case napi_int16_array: return "Int16Array";
    case napi_int32_array: return "Int32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    default: return "an unsupported typed array";
  }
}

}  // namespace

Napi::TypedArray ExpectTypedArray(const Napi::Value& value, const char* what,
                                  std::initializer_list<napi_typedarray_type> allowed) {
  if (!value.IsTypedArray()) {
    throw tabsight::Error(ErrorCode::kShape, std::string("Expected a typed array for ") + what);
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  for (auto t : allowed) {
    if (array.TypedArrayType() == t) return array;
  }
  std::ostringstream os;
  os << "Expected ";
  bool first = true;
  for (auto t : allowed) {
    os << (first ? "" : " or ") << TypeName(t);
    first = false;
  }
  os << " for " << what << " but received " << TypeName(array.TypedArrayType());
  throw tabsight::Error(ErrorCode::kShape, os.str());
}

torch::Tensor TensorCopy(const Napi::TypedArray& array, const std::vector<int64_t>& shape,
                         const char* what) {
  torch::Tensor view = TensorView(array, shape, what);
  torch::Tensor copy = torch::empty(shape, view.options());
  const size_t bytes = array.ByteLength();
  if (bytes) std::memcpy(copy.data_ptr(), view.data_ptr(), bytes);
  return copy;
}

torch::Tensor TensorView(const Napi::TypedArray& array, const std::vector<int64_t>& shape,
                         const char* what) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) throw tabsight::Error(ErrorCode::kShape, std::string("negative dimension in ") + what);
    if (__builtin_mul_overflow(numel, d, &numel)) {
      throw tabsight::Error(ErrorCode::kShape, std::string("Expected a shape of at most 2^63 - 1 elements for ") + what);
    }
  }
  if (static_cast<int64_t>(array.ElementLength()) != numel) {
    std::ostringstream os;
    os << "Expected " << numel << " elements for " << what << " (shape [";
    for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << "]) but received " << array.ElementLength();
    throw tabsight::Error(ErrorCode::kShape, os.str());
  }
  auto dtype = ScalarTypeOf(array.TypedArrayType());
  auto* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  return torch::from_blob(data, shape, torch::TensorOptions().dtype(dtype));
}

Napi::Value ToTypedArray(Napi::Env env, const torch::Tensor& tensor) {
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  const size_t n = static_cast<size_t>(t.numel());
  switch (t.scalar_type()) {
    case torch::kFloat32: {
      auto out = Napi::Float32Array::New(env, n);
      if (n) std::memcpy(out.Data(), t.data_ptr<float>(), n * sizeof(float));
      return out;
    }
    case torch::kFloat64: {
      auto out = Napi::Float64Array::New(env, n);
      if (n) std::memcpy(out.Data(), t.data_ptr<double>(), n * sizeof(double));
      return out;
    }
    case torch::kUInt8: {
      auto out = Napi::Uint8Array::New(env, n);
      if (n) std::memcpy(out.Data(), t.data_ptr<uint8_t>(), n);
      return out;
    }
    case torch::kInt64: {
      auto out = Napi::BigInt64Array::New(env, n);
      if (n) std::memcpy(out.Data(), t.data_ptr<int64_t>(), n * sizeof(int64_t));
      return out;
    }
    default: {
      return ToTypedArray(env, t.to(torch::kFloat32));
    }
  }
}

std::vector<int64_t> ShapeOf(const torch::Tensor& tensor) {
  return std::vector<int64_t>(tensor.sizes().begin(), tensor.sizes().end());
}

Napi::Array ShapeToJs(Napi::Env env, const torch::Tensor& tensor) {
  auto shape = Napi::Array::New(env, tensor.dim());
  for (int64_t i = 0; i < tensor.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(tensor.size(i))));
  return shape;
}

std::vector<int64_t> ReadShape(const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw tabsight::Error(ErrorCode::kShape, std::string("Expected an array for ") + what);
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) throw tabsight::Error(ErrorCode::kShape, std::string("Expected numbers in ") + what);
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw tabsight::Error(ErrorCode::kShape, std::string("Expected non-negative integers in ") + what);
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

namespace {
Napi::Value Require(const Napi::Object& obj, const char* key) {
  if (!obj.Has(key)) throw tabsight::Error(ErrorCode::kConfig, std::string("missing option ") + key);
  return obj.Get(key);
}
}  // namespace

bool Has(const Napi::Object& obj, const char* key) {
  return obj.Has(key) && !obj.Get(key).IsUndefined() && !obj.Get(key).IsNull();
}

double GetNumber(const Napi::Object& obj, const char* key) {
  Napi::Value v = Require(obj, key);
  if (!v.IsNumber()) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected number for ") + key);
  return v.As<Napi::Number>().DoubleValue();
}

int64_t GetInt(const Napi::Object& obj, const char* key) {
  double d = GetNumber(obj, key);
  if (d != static_cast<double>(static_cast<int64_t>(d))) {
    throw tabsight::Error(ErrorCode::kConfig, std::string("Expected integer for ") + key);
  }
  return static_cast<int64_t>(d);
}

bool GetBool(const Napi::Object& obj, const char* key) {
  Napi::Value v = Require(obj, key);
  if (!v.IsBoolean()) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected boolean for ") + key);
  return v.As<Napi::Boolean>().Value();
}

std::string GetString(const Napi::Object& obj, const char* key) {
  Napi::Value v = Require(obj, key);
  if (!v.IsString()) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected string for ") + key);
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object GetObject(const Napi::Object& obj, const char* key) {
  Napi::Value v = Require(obj, key);
  if (!v.IsObject()) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected object for ") + key);
  return v.As<Napi::Object>();
}

std::vector<double> GetNumberArray(const Napi::Object& obj, const char* key) {
  Napi::Value v = Require(obj, key);
  if (!v.IsArray()) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected array for ") + key);
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsNumber()) throw tabsight::Error(ErrorCode::kConfig, std::string("Expected numbers in ") + key);
    out.push_back(e.As<Napi::Number>().DoubleValue());
  }
  return out;
}

Napi::Function SwitchFunction(Napi::Env env, const char* name, bool (*enabled)(), bool (*set)(bool)) {
  return Napi::Function::New(
      env,
      [enabled, set](const Napi::CallbackInfo& info) -> Napi::Value {
        return Guard(info, [&]() -> Napi::Value {
          const bool before = info.Length() > 0 && info[0].IsBoolean() ? set(info[0].As<Napi::Boolean>()) : enabled();
          return Napi::Boolean::New(info.Env(), before);
        });
      },
      name);
}

}  // namespace tabsight::napi
