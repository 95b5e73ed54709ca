// Module init and the exports table, nothing else.
#include <napi.h>

#include "napi_register.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tabsight::napi::RegisterRuntime(env, exports);
  tabsight::napi::RegisterLosses(env, exports);
  tabsight::napi::RegisterAugment(env, exports);
  tabsight::napi::RegisterModels(env, exports);
  tabsight::napi::RegisterTrainer(env, exports);
  tabsight::napi::RegisterAttribution(env, exports);
  tabsight::napi::RegisterFeatures(env, exports);
  tabsight::napi::RegisterDistributed(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tabsight, Init)
