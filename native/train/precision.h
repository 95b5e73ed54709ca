// Mixed precision for the training step: autocast (LibTorch's C++ form of
// torch.autocast) around the forward pass and the loss.
#pragma once

#include <torch/torch.h>

#include <string>

namespace tabsight::train {

// "fp32" (no autocast) or "bf16". bf16 needs no loss scaling (it has fp32's
// exponent range), which is why fp16 is not offered: it would need a
// gradient scaler.
enum class Precision { kFloat32, kBFloat16 };

// Parses "fp32" / "bf16"; anything else fails with ERR_CONFIG.
Precision ParsePrecision(const std::string& name);

// Autocast on `device`'s type for this thread while the scope lives, with
// bf16 as the lower-precision type: convolutions and matmuls run in bf16,
// reductions, softmax and losses stay in fp32 (ATen's autocast policy).
// Restores the previous state and clears the cast-weight cache on exit.
// A no-op for kFloat32.
class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  torch::DeviceType type_ = torch::kCPU;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

}  // namespace tabsight::train
