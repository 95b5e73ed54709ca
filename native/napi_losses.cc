// Loss functions exposed for checking against closed forms: each returns the
// loss and its gradients with respect to both inputs. Float64 inputs compute
// in float64, so finite differences are meaningful. Meant for small inputs.
#include "losses/contrastive.h"
#include "napi_register.h"
#include "napi_util.h"
#include "train/tabular.h"

namespace tabsight::napi {

namespace {

torch::Tensor ReadLabels(const Napi::Value& value, int64_t n) {
  if (value.IsUndefined() || value.IsNull()) return torch::Tensor();
  auto arr = ExpectTypedArray(value, "labels", {napi_int32_array, napi_bigint64_array});
  return TensorView(arr, {n}, "labels").to(torch::kLong);
}

Napi::Object LossToJs(Napi::Env env, const losses::LossResult& r, const torch::Tensor& a, const torch::Tensor& b) {
  r.loss.backward();
  auto out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, r.loss.item<double>()));
  out.Set("logits", ToTypedArray(env, r.logits));
  out.Set("gradA", ToTypedArray(env, a.grad()));
  out.Set("gradB", ToTypedArray(env, b.grad()));
  return out;
}

// (a, b, [n, d], options, labels?) — the arrays must be of the same type.
std::pair<torch::Tensor, torch::Tensor> ReadPair(const Napi::CallbackInfo& info) {
  auto shape = ReadShape(info[2], "shape");
  if (shape.size() != 2) throw tabsight::Error(ErrorCode::kShape, "Expected shape [N, D]");
  auto a_arr = ExpectTypedArray(info[0], "a", {napi_float32_array, napi_float64_array});
  auto b_arr = ExpectTypedArray(info[1], "b", {napi_float32_array, napi_float64_array});
  auto a = TensorView(a_arr, shape, "a").clone().requires_grad_(true);
  auto b = TensorView(b_arr, shape, "b").to(a.scalar_type()).clone().requires_grad_(true);
  return {a, b};
}

Napi::Value ClipLoss(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto [a, b] = ReadPair(info);
    auto o = info[3].As<Napi::Object>();
    losses::ClipLossOptions options;
    options.temperature = GetNumber(o, "temperature");
    options.lambda = GetNumber(o, "lambda");
    options.remove_false_negatives = GetBool(o, "removeFalseNegatives");
    auto labels = ReadLabels(info[4], a.size(0));
    return LossToJs(info.Env(), losses::ClipLoss(a, b, options, labels), a, b);
  });
}

Napi::Value NtXentLoss(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto [a, b] = ReadPair(info);
    auto o = info[3].As<Napi::Object>();
    losses::NtXentOptions options;
    options.temperature = GetNumber(o, "temperature");
    options.remove_false_negatives = GetBool(o, "removeFalseNegatives");
    auto labels = ReadLabels(info[4], a.size(0));
    return LossToJs(info.Env(), losses::NtXentLoss(a, b, options, labels), a, b);
  });
}

// (rows Float32Array, [B, F], marginals Float32Array, [M, F], rate, seed)
Napi::Value CorruptTabular(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto rows = TensorView(ExpectTypedArray(info[0], "rows", {napi_float32_array}), ReadShape(info[1], "rows shape"), "rows");
    auto marg = TensorView(ExpectTypedArray(info[2], "marginals", {napi_float32_array}), ReadShape(info[3], "marginals shape"), "marginals");
    const double rate = info[4].As<Napi::Number>().DoubleValue();
    const uint64_t seed = static_cast<uint64_t>(info[5].As<Napi::Number>().DoubleValue());
    return ToTypedArray(info.Env(), train::CorruptRows(rows, marg, rate, seed));
  });
}

// (rows Float32Array, [B, F], cardinalities number[])
Napi::Value EncodeTabular(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto rows = TensorView(ExpectTypedArray(info[0], "rows", {napi_float32_array}), ReadShape(info[1], "rows shape"), "rows");
    train::TabularSpec spec{ReadShape(info[2], "cardinalities")};
    train::ValidateRows(rows, spec);
    auto out = train::EncodeRows(rows, spec);
    auto obj = Napi::Object::New(info.Env());
    obj.Set("data", ToTypedArray(info.Env(), out));
    obj.Set("shape", ShapeToJs(info.Env(), out));
    return obj;
  });
}

}  // namespace

void RegisterLosses(Napi::Env env, Napi::Object exports) {
  exports.Set("clipLoss", Napi::Function::New(env, ClipLoss, "clipLoss"));
  exports.Set("ntXentLoss", Napi::Function::New(env, NtXentLoss, "ntXentLoss"));
  exports.Set("corruptTabular", Napi::Function::New(env, CorruptTabular, "corruptTabular"));
  exports.Set("encodeTabular", Napi::Function::New(env, EncodeTabular, "encodeTabular"));
}

}  // namespace tabsight::napi
