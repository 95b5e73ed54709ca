#include "napi_register.h"

namespace tabsight::napi {
void RegisterLosses(Napi::Env env, Napi::Object exports) {}
}  // namespace tabsight::napi
