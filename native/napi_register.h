// Each binding file adds its functions to the exports object.
#pragma once

#include <napi.h>

#include "distributed/dist_config.h"
#include "train/augment.h"

namespace tabsight::napi {

void RegisterRuntime(Napi::Env env, Napi::Object exports);
void RegisterLosses(Napi::Env env, Napi::Object exports);
void RegisterAugment(Napi::Env env, Napi::Object exports);
void RegisterModels(Napi::Env env, Napi::Object exports);
void RegisterTrainer(Napi::Env env, Napi::Object exports);
void RegisterAttribution(Napi::Env env, Napi::Object exports);
void RegisterFeatures(Napi::Env env, Napi::Object exports);
void RegisterDistributed(Napi::Env env, Napi::Object exports);

// The augmentation options object that lib/augment.ts resolves (napi_augment.cc).
train::AugmentOptions ReadAugmentOptions(const Napi::Value& value);

// The process group options that lib/pretrain-options.ts resolves (napi_distributed.cc).
dist::DistConfig ReadDistConfig(const Napi::Object& o);

}  // namespace tabsight::napi
