// A Promise-returning AsyncWorker: Execute() runs `exec` on a libuv thread
// (no JS there), then `done` builds the result on the main thread. Every C++
// exception becomes a rejection with a stable code. `exec` must read only
// native memory: copy JS typed arrays first (TensorCopy), since holding a
// reference does not stop the caller from detaching or shrinking them.
// The libuv thread takes the process's intra-op thread count first.
#pragma once

#include <napi.h>

#include <functional>

#include "common/threads.h"
#include "napi_util.h"

namespace tabsight::napi {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Exec = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Start(Napi::Env env, Exec exec, Done done) {
    auto* worker = new PromiseWorker(env, std::move(exec), std::move(done));
    auto promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      UseIntraOpThreadsOnThisThread();
      exec_();
    } catch (...) {
      failure_ = CurrentFailure();
      SetError(failure_.message);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(MakeError(env, CurrentFailure()).Value());
    }
  }

  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(MakeError(Env(), failure_).Value());
  }

 private:
  PromiseWorker(Napi::Env env, Exec exec, Done done)
      : Napi::AsyncWorker(env, "tabsight"), deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)), done_(std::move(done)) {}

  Napi::Promise::Deferred deferred_;
  Exec exec_;
  Done done_;
  Failure failure_;
};

}  // namespace tabsight::napi
