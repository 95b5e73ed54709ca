#include "train/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "common/error.h"

// LibTorch 2.4 replaced the per-backend autocast functions (set_enabled for
// CUDA, set_cpu_enabled, set_autocast_gpu_dtype, ...) with ones that take
// the device type; the old ones are deprecated there. Debian's 1.13 has only
// the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define TABSIGHT_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define TABSIGHT_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace tabsight::train {

namespace {

#if TABSIGHT_AUTOCAST_BY_DEVICE_TYPE
bool Enabled(torch::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void SetEnabled(torch::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType Dtype(torch::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void SetDtype(torch::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }
#else
bool Enabled(torch::DeviceType t) { return t == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void SetEnabled(torch::DeviceType t, bool on) {
  if (t == torch::kCUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
at::ScalarType Dtype(torch::DeviceType t) {
  return t == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void SetDtype(torch::DeviceType t, at::ScalarType d) {
  if (t == torch::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(d);
  } else {
    at::autocast::set_autocast_cpu_dtype(d);
  }
}
#endif

}  // namespace

Precision ParsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  Fail(ErrorCode::kConfig, "Expected fp32 or bf16 for precision but received \"" + name + "\"");
}

AutocastScope::AutocastScope(const torch::Device& device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  if (!device.is_cpu() && !device.is_cuda()) {
    Fail(ErrorCode::kConfig, "bf16 autocast needs a cpu or cuda device but received " + device.str());
  }
  type_ = device.type();
  prev_enabled_ = Enabled(type_);
  prev_dtype_ = Dtype(type_);
  SetEnabled(type_, true);
  SetDtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // As torch.autocast's __exit__: the cache of bf16 weight copies lives for
  // the outermost region only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(type_, prev_enabled_);
  SetDtype(type_, prev_dtype_);
}

}  // namespace tabsight::train
