// Placeholder registration until the augmentation kernels land.
#include "napi_register.h"

namespace tabsight::napi {
void RegisterAugment(Napi::Env env, Napi::Object exports) {}
}  // namespace tabsight::napi
