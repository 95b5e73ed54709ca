// TrainingJob: runs the native training loop on a libuv worker thread,
// streams progress to JS in order, and stops between steps on abort().
#include <atomic>
#include <memory>

#include "io/mapped_file.h"
#include "common/threads.h"
#include "napi_register.h"
#include "napi_util.h"
#include "napi_worker.h"
#include "train/adam_check.h"
#include "train/trainer.h"

namespace tabsight::napi {

namespace {

train::TrainConfig ReadConfig(const Napi::Object& o) {
  train::TrainConfig c;
  c.mode = GetString(o, "mode");
  c.device = GetString(o, "device");
  c.seed = static_cast<uint64_t>(GetNumber(o, "seed"));
  c.epochs = GetInt(o, "epochs");
  c.batch_size = GetInt(o, "batchSize");
  c.optimizer = GetString(o, "optimizer");
  c.lr = GetNumber(o, "lr");
  c.weight_decay = GetNumber(o, "weightDecay");
  c.warmup_epochs = GetNumber(o, "warmupEpochs");
  c.precision = Has(o, "precision") ? GetString(o, "precision") : "fp32";
  c.memory_format = Has(o, "memoryFormat") ? GetString(o, "memoryFormat") : "auto";
  auto model = GetObject(o, "model");
  c.image.arch = GetString(model, "arch");
  c.image.in_channels = GetInt(model, "inChannels");
  c.image.small_stem = GetBool(model, "smallStem");
  c.tabular_hidden = GetInt(model, "tabularHidden");
  c.tabular_layers = GetInt(model, "tabularLayers");
  c.projection_hidden = GetInt(model, "projectionHidden");
  c.projection_dim = GetInt(model, "projectionDim");
  if (Has(model, "projectionBatchNorm")) c.projection_batch_norm = GetBool(model, "projectionBatchNorm");
  auto loss = GetObject(o, "loss");
  c.clip.temperature = c.ntxent.temperature = GetNumber(loss, "temperature");
  c.clip.lambda = GetNumber(loss, "lambda");
  c.clip.remove_false_negatives = c.ntxent.remove_false_negatives = GetBool(loss, "removeFalseNegatives");
  c.augment = ReadAugmentOptions(GetObject(o, "augment"));
  c.corruption_rate = GetNumber(o, "corruptionRate");
  auto norm = GetObject(o, "normalize");
  c.mean = GetNumberArray(norm, "mean");
  c.std = GetNumberArray(norm, "std");
  c.num_classes = GetInt(o, "numClasses");
  c.checkpoint_every = GetInt(o, "checkpointEvery");
  c.init_weights = Has(o, "initWeights") ? GetString(o, "initWeights") : "";
  c.out_dir = GetString(o, "outDir");
  c.config_json = GetString(o, "configJson");
  c.sync_batch_norm = Has(o, "syncBatchNorm") && GetBool(o, "syncBatchNorm");
  c.deterministic = Has(o, "deterministic") && GetBool(o, "deterministic");
  if (Has(o, "distributed") && o.Get("distributed").IsObject()) c.dist = ReadDistConfig(GetObject(o, "distributed"));
  return c;
}

// data: { images: {data, shape} | {path, offset, dtype, shape}, tabular?: {data, shape, cardinalities}, labels? }
// Typed arrays are copied (TrainData owns its memory): the job runs on a
// libuv thread, and the caller may detach or shrink them once this returns.
train::TrainData ReadData(const Napi::Object& o) {
  train::TrainData d;
  auto images = GetObject(o, "images");
  auto shape = ReadShape(images.Get("shape"), "images.shape");
  if (shape.size() != 4) throw tabsight::Error(ErrorCode::kShape, "Expected images.shape [N, C, H, W]");
  if (Has(images, "path")) {
    auto file = std::make_shared<io::MappedFile>(GetString(images, "path"));
    const int64_t raw_offset = GetInt(images, "offset");
    if (raw_offset < 0) {
      throw tabsight::Error(ErrorCode::kData, "Image store " + file->path() + " has a negative data offset " + std::to_string(raw_offset));
    }
    const auto offset = static_cast<uint64_t>(raw_offset);
    const std::string dtype = GetString(images, "dtype");
    c10::ScalarType type = dtype == "uint8"     ? torch::kUInt8
                           : dtype == "float16" ? torch::kHalf
                           : dtype == "float32" ? torch::kFloat32
                                                : c10::ScalarType::Undefined;
    if (type == c10::ScalarType::Undefined) {
      throw tabsight::Error(ErrorCode::kData, "Image store " + file->path() + " has dtype " + dtype + "; expected uint8, float16 or float32");
    }
    // The bytes the header promises, without wraparound: offset + numel · size ≤ file size.
    uint64_t bytes = c10::elementSize(type);
    bool overflow = false;
    for (int64_t d : shape) overflow |= __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes);
    const uint64_t size = file->size();
    if (overflow || offset > size || bytes > size - offset) {
      throw tabsight::Error(ErrorCode::kData, "Image store " + file->path() + " is truncated: " + std::to_string(size) +
                                                  " bytes but its header needs " +
                                                  (overflow ? std::string("more than 2^64") : std::to_string(offset) + " + " + std::to_string(bytes)));
    }
    d.images = torch::from_blob(const_cast<uint8_t*>(file->data()) + offset, shape, torch::TensorOptions().dtype(type));
    d.keepalive = file;
  } else {
    auto arr = ExpectTypedArray(images.Get("data"), "images.data", {napi_uint8_array, napi_float32_array});
    d.images = TensorCopy(arr, shape, "images.data");
  }
  if (Has(o, "tabular")) {
    auto t = GetObject(o, "tabular");
    auto arr = ExpectTypedArray(t.Get("data"), "tabular.data", {napi_float32_array});
    d.tabular = TensorCopy(arr, ReadShape(t.Get("shape"), "tabular.shape"), "tabular.data");
    d.spec.cardinalities = ReadShape(t.Get("cardinalities"), "tabular.cardinalities");
  }
  if (Has(o, "rows")) {
    auto arr = ExpectTypedArray(o.Get("rows"), "rows", {napi_int32_array});
    d.rows = TensorView(arr, {static_cast<int64_t>(arr.ElementLength())}, "rows")
                 .to(torch::kLong, /*non_blocking=*/false, /*copy=*/true);
  }
  if (Has(o, "scanImages")) d.scan_images = o.Get("scanImages").ToBoolean().Value();
  if (Has(o, "targets")) {
    auto arr = ExpectTypedArray(o.Get("targets"), "targets", {napi_float32_array});
    d.targets = TensorView(arr, {static_cast<int64_t>(arr.ElementLength())}, "targets").clone();
  }
  if (Has(o, "labels")) {
    auto arr = ExpectTypedArray(o.Get("labels"), "labels", {napi_int32_array, napi_bigint64_array});
    d.labels = TensorView(arr, {static_cast<int64_t>(arr.ElementLength())}, "labels")
                   .to(torch::kLong, /*non_blocking=*/false, /*copy=*/true);  // a copy for BigInt64Array too
  }
  return d;
}

class TrainWorker : public Napi::AsyncProgressQueueWorker<train::Progress> {
 public:
  TrainWorker(Napi::Env env, Napi::Function on_progress, train::TrainConfig config, train::TrainData data,
              std::string resume_from, std::shared_ptr<std::atomic<bool>> abort, std::shared_ptr<std::atomic<bool>> running)
      : Napi::AsyncProgressQueueWorker<train::Progress>(env, "tabsight:train"),
        deferred_(Napi::Promise::Deferred::New(env)), config_(std::move(config)), data_(std::move(data)),
        resume_from_(std::move(resume_from)), abort_(std::move(abort)), running_(std::move(running)) {
    on_progress_ = Napi::Persistent(on_progress);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    std::unique_ptr<train::Trainer> trainer;
    try {
      UseIntraOpThreadsOnThisThread();  // this libuv thread may have run with another count
      trainer = std::make_unique<train::Trainer>(config_, data_);
      if (!resume_from_.empty()) trainer->LoadCheckpoint(resume_from_);
      summary_ = trainer->Run([&](const train::Progress& p) { progress.Send(&p, 1); }, *abort_);
    } catch (...) {
      failure_ = CurrentFailure();
      // In a distributed run the other ranks then name this one and its reason.
      if (trainer) trainer->ReportFailure(failure_.code, failure_.message);
      SetError(failure_.message);
    }
  }

  void OnProgress(const train::Progress* data, size_t count) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count; ++i) {
      const auto& p = data[i];
      auto o = Napi::Object::New(env);
      o.Set("epoch", static_cast<double>(p.epoch));
      o.Set("step", static_cast<double>(p.step));
      o.Set("stepInEpoch", static_cast<double>(p.step_in_epoch));
      o.Set("stepsPerEpoch", static_cast<double>(p.steps_per_epoch));
      o.Set("totalSteps", static_cast<double>(p.total_steps));
      o.Set("loss", p.loss);
      o.Set("lr", p.lr);
      o.Set("imagesPerSec", p.images_per_sec);
      o.Set("epochDone", p.epoch_done);
      if (p.epoch_done) {
        o.Set("epochLoss", p.epoch_loss);
        o.Set("retrievalTop1", p.retrieval_top1);
        o.Set("checkpointed", p.checkpointed);
      }
      // The JS side catches what the user's callback throws; anything that
      // still escapes is reported here instead of crashing the process.
      try {
        on_progress_.Call({o});
      } catch (const Napi::Error& e) {
        abort_->store(true);
      }
    }
  }

  void OnOK() override {
    running_->store(false);
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    auto o = Napi::Object::New(env);
    o.Set("epochsDone", static_cast<double>(summary_.epochs_done));
    o.Set("stepsDone", static_cast<double>(summary_.steps_done));
    o.Set("finalLoss", summary_.final_loss);
    o.Set("aborted", summary_.aborted);
    o.Set("resumed", summary_.resumed);
    deferred_.Resolve(o);
  }

  void OnError(const Napi::Error&) override {
    running_->store(false);
    Napi::HandleScope scope(Env());
    deferred_.Reject(MakeError(Env(), failure_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  train::TrainConfig config_;
  train::TrainData data_;
  std::string resume_from_;
  std::shared_ptr<std::atomic<bool>> abort_, running_;
  train::TrainSummary summary_;
  Failure failure_;
};

class TrainingJob : public Napi::ObjectWrap<TrainingJob> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TrainingJob",
                       {InstanceMethod("run", &TrainingJob::Run), InstanceMethod("abort", &TrainingJob::Abort),
                        InstanceAccessor("running", &TrainingJob::Running, nullptr)});
  }

  // new TrainingJob(config, data)
  explicit TrainingJob(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainingJob>(info) {
    try {
      if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) {
        throw tabsight::Error(ErrorCode::kConfig, "Expected (config, data) objects");
      }
      config_ = ReadConfig(info[0].As<Napi::Object>());
      data_ = ReadData(info[1].As<Napi::Object>());
    } catch (const Napi::Error& e) {
      throw WithCode(info.Env(), e);
    } catch (...) {
      throw MakeError(info.Env(), CurrentFailure());
    }
  }

 private:
  // run(onProgress, resumeFrom: string) → Promise<summary>
  Napi::Value Run(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (running_->load()) throw tabsight::Error(ErrorCode::kBusy, "This training job is already running");
      if (!info[0].IsFunction()) throw tabsight::Error(ErrorCode::kConfig, "Expected a progress callback");
      std::string resume = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
      abort_->store(false);
      running_->store(true);
      auto* worker = new TrainWorker(info.Env(), info[0].As<Napi::Function>(), config_, data_, resume, abort_, running_);
      auto promise = worker->Promise();
      worker->Queue();
      return promise;
    });
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    abort_->store(true);
    return info.Env().Undefined();
  }

  Napi::Value Running(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), running_->load()); }

  train::TrainConfig config_;
  train::TrainData data_;
  std::shared_ptr<std::atomic<bool>> abort_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> running_ = std::make_shared<std::atomic<bool>>(false);
};


// Test-only: the fused or the multi-tensor Adam step against LibTorch's own
// torch::optim::Adam / AdamW on the CPU (train/adam_check.h).
// _adamProbe({ optimizer: 'adam' | 'adamw', steps, lr, weightDecay, seed,
//              impl?: 'fused' | 'multiTensor' (default 'fused') })
// → Promise<{ maxParamDiff, maxMomentDiff, maxUpdate, steps }>, the fields
// of train::AdamCheck.
Napi::Value AdamProbe(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    const std::string which = GetString(o, "optimizer");
    const int64_t steps = GetInt(o, "steps");
    const double lr = GetNumber(o, "lr"), wd = GetNumber(o, "weightDecay");
    const auto seed = static_cast<uint64_t>(GetNumber(o, "seed"));
    const std::string impl = o.Has("impl") ? GetString(o, "impl") : "fused";
    auto out = std::make_shared<train::AdamCheck>();
    return PromiseWorker::Start(
        info.Env(),
        [=] { *out = train::CompareAdamWithLibTorch(which, impl, steps, lr, wd, seed, torch::Device(torch::kCPU)); },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("maxParamDiff", Napi::Number::New(env, out->max_param_diff));
          r.Set("maxMomentDiff", Napi::Number::New(env, out->max_moment_diff));
          r.Set("maxUpdate", Napi::Number::New(env, out->max_update));
          Napi::Array steps = Napi::Array::New(env, out->steps.size());
          for (size_t i = 0; i < out->steps.size(); ++i) steps.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(out->steps[i])));
          r.Set("steps", steps);
          return r;
        });
  });
}

}  // namespace

void RegisterTrainer(Napi::Env env, Napi::Object exports) {
  exports.Set("TrainingJob", TrainingJob::Define(env));
  exports.Set("_adamProbe", Napi::Function::New(env, AdamProbe, "_adamProbe"));
}

}  // namespace tabsight::napi
