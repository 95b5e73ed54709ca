// Distributed training support: which backends this build has, and two
// entry points for tests only (distTest*), which run one collective
// computation in a process group so that tests can compare ranks with a
// single process: the gathered contrastive loss and synchronised batch norm.
#include <array>
#include <memory>

#include "distributed/comm.h"
#include "distributed/gather.h"
#include "distributed/sync_batch_norm.h"
#include "losses/contrastive.h"
#include "napi_register.h"
#include "napi_util.h"
#include "napi_worker.h"

namespace tabsight::napi {

dist::DistConfig ReadDistConfig(const Napi::Object& o) {
  dist::DistConfig c;
  c.rank = GetInt(o, "rank");
  c.world_size = GetInt(o, "worldSize");
  c.local_rank = GetInt(o, "localRank");
  c.master_addr = GetString(o, "masterAddr");
  c.master_port = GetInt(o, "masterPort");
  c.timeout_sec = GetNumber(o, "timeoutSec");
  c.backend = GetString(o, "backend");
  c.external_store = Has(o, "externalStore") && GetBool(o, "externalStore");
  if (c.world_size < 1 || c.rank < 0 || c.rank >= c.world_size) {
    throw tabsight::Error(ErrorCode::kConfig, "Expected 0 ≤ rank < worldSize");
  }
  if (c.master_port < 1 || c.master_port > 65535) throw tabsight::Error(ErrorCode::kConfig, "Expected a port in [1, 65535]");
  if (!(c.timeout_sec > 0)) throw tabsight::Error(ErrorCode::kConfig, "Expected positive timeoutSec");
  return c;
}

namespace {

Napi::Value Backends(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("gloo", dist::HaveBackend("gloo"));
  o.Set("nccl", dist::HaveBackend("nccl"));
  return o;
}

dist::DistConfig OptionalDist(const Napi::Value& v) {
  if (!v.IsObject()) return dist::DistConfig{};
  return ReadDistConfig(v.As<Napi::Object>());
}

// distTestGatherLoss(dist | null, a, b, [n, d], { kind, temperature, lambda, removeFalseNegatives }, labelsGlobal?)
// → Promise<{ loss, gradA, gradB }>. a, b: this rank's rows (float32 or
// float64). With dist, the loss is over the rows of every rank, gathered;
// the gradients are with respect to this rank's rows.
Napi::Value GatherLoss(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto cfg = OptionalDist(info[0]);
    auto shape = ReadShape(info[3], "shape");
    if (shape.size() != 2) throw tabsight::Error(ErrorCode::kShape, "Expected shape [N, D]");
    auto a_arr = ExpectTypedArray(info[1], "a", {napi_float32_array, napi_float64_array});
    auto b_arr = ExpectTypedArray(info[2], "b", {napi_float32_array, napi_float64_array});
    auto o = info[4].As<Napi::Object>();
    const std::string kind = GetString(o, "kind");
    losses::ClipLossOptions clip;
    clip.temperature = GetNumber(o, "temperature");
    clip.lambda = GetNumber(o, "lambda");
    clip.remove_false_negatives = GetBool(o, "removeFalseNegatives");
    losses::NtXentOptions ntxent;
    ntxent.temperature = clip.temperature;
    ntxent.remove_false_negatives = clip.remove_false_negatives;
    torch::Tensor labels;
    if (info.Length() > 5 && info[5].IsTypedArray()) {
      auto l = ExpectTypedArray(info[5], "labels", {napi_int32_array});
      labels = TensorView(l, {static_cast<int64_t>(l.ElementLength())}, "labels").to(torch::kLong);
    }
    auto a = TensorView(a_arr, shape, "a").clone();
    auto b = TensorView(b_arr, shape, "b").to(a.scalar_type()).clone();
    auto state = std::make_shared<std::array<torch::Tensor, 3>>();
    return PromiseWorker::Start(
        info.Env(),
        [=]() {
          std::shared_ptr<dist::Comm> comm;
          if (cfg.enabled()) comm = dist::Comm::Create(cfg);
          auto la = a.clone().requires_grad_(true), lb = b.clone().requires_grad_(true);
          auto ga = comm ? dist::GatherWithLocalGrad(*comm, la, "all-gather (a)") : la;
          auto gb = comm ? dist::GatherWithLocalGrad(*comm, lb, "all-gather (b)") : lb;
          auto r = kind == "ntxent" ? losses::NtXentLoss(ga, gb, ntxent, labels) : losses::ClipLoss(ga, gb, clip, labels);
          r.loss.backward();
          (*state)[0] = r.loss.detach();
          (*state)[1] = la.grad();
          (*state)[2] = lb.grad();
        },
        [state](Napi::Env env) -> Napi::Value {
          auto out = Napi::Object::New(env);
          out.Set("loss", (*state)[0].item<double>());
          out.Set("gradA", ToTypedArray(env, (*state)[1]));
          out.Set("gradB", ToTypedArray(env, (*state)[2]));
          return out;
        });
  });
}

// distTestSyncBatchNorm(dist | null, x, shape, weight, bias, dy, momentum, eps)
// → Promise<{ y, dx, dweight, dbias, runningMean, runningVar }>. Without
// dist: LibTorch's batch_norm in training mode (the reference); with dist:
// SyncBatchNorm over every rank's x.
Napi::Value SyncBatchNormTest(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto cfg = OptionalDist(info[0]);
    auto shape = ReadShape(info[2], "shape");
    if (shape.size() < 2) throw tabsight::Error(ErrorCode::kShape, "Expected shape [N, C, ...]");
    const int64_t c = shape[1];
    auto x = TensorView(ExpectTypedArray(info[1], "x", {napi_float32_array, napi_float64_array}), shape, "x").clone();
    auto w = TensorView(ExpectTypedArray(info[3], "weight", {napi_float32_array, napi_float64_array}), {c}, "weight")
                 .to(x.scalar_type()).clone();
    auto b = TensorView(ExpectTypedArray(info[4], "bias", {napi_float32_array, napi_float64_array}), {c}, "bias")
                 .to(x.scalar_type()).clone();
    auto dy = TensorView(ExpectTypedArray(info[5], "dy", {napi_float32_array, napi_float64_array}), shape, "dy")
                  .to(x.scalar_type()).clone();
    const double momentum = info[6].As<Napi::Number>().DoubleValue();
    const double eps = info[7].As<Napi::Number>().DoubleValue();
    auto state = std::make_shared<std::array<torch::Tensor, 6>>();
    return PromiseWorker::Start(
        info.Env(),
        [=]() {
          auto xv = x.clone().requires_grad_(true);
          auto wv = w.clone().requires_grad_(true);
          auto bv = b.clone().requires_grad_(true);
          auto rm = torch::zeros({c}, x.options());
          auto rv = torch::ones({c}, x.options());
          torch::Tensor y;
          std::shared_ptr<dist::Comm> comm;
          if (cfg.enabled()) {
            comm = dist::Comm::Create(cfg);
            dist::SyncBatchNorm sbn(comm.get());
            auto tracked = torch::zeros({}, torch::kLong);
            y = sbn.Forward(xv, wv, bv, rm, rv, tracked, momentum, eps);
          } else {
            y = torch::batch_norm(xv, wv, bv, rm, rv, /*training=*/true, momentum, eps, /*cudnn_enabled=*/false);
          }
          y.backward(dy);
          *state = {y.detach(), xv.grad(), wv.grad(), bv.grad(), rm, rv};
        },
        [state](Napi::Env env) -> Napi::Value {
          auto out = Napi::Object::New(env);
          const char* names[] = {"y", "dx", "dweight", "dbias", "runningMean", "runningVar"};
          for (size_t i = 0; i < 6; ++i) out.Set(names[i], ToTypedArray(env, (*state)[i]));
          return out;
        });
  });
}

}  // namespace

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  exports.Set("distributedBackends", Napi::Function::New(env, Backends, "distributedBackends"));
  exports.Set("distTestGatherLoss", Napi::Function::New(env, GatherLoss, "distTestGatherLoss"));
  exports.Set("distTestSyncBatchNorm", Napi::Function::New(env, SyncBatchNormTest, "distTestSyncBatchNorm"));
}

}  // namespace tabsight::napi
