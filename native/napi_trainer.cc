#include "napi_register.h"

namespace tabsight::napi {
void RegisterTrainer(Napi::Env env, Napi::Object exports) {}
}  // namespace tabsight::napi
