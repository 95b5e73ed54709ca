// Each binding file adds its functions to the exports object.
#pragma once

#include <napi.h>

namespace tabsight::napi {

void RegisterRuntime(Napi::Env env, Napi::Object exports);
void RegisterLosses(Napi::Env env, Napi::Object exports);
void RegisterAugment(Napi::Env env, Napi::Object exports);
void RegisterModels(Napi::Env env, Napi::Object exports);
void RegisterTrainer(Napi::Env env, Napi::Object exports);

}  // namespace tabsight::napi
