#include "napi_register.h"

namespace tabsight::napi {
void RegisterModels(Napi::Env env, Napi::Object exports) {}
}  // namespace tabsight::napi
