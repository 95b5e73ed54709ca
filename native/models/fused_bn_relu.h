// relu(batch_norm(x) [+ residual]) for the ResNet's BatchNorm2d layers in
// training mode, as one autograd node on the CPU.
//
// LibTorch runs this as two or three ops, each with its own passes over the
// activation forward and backward. The fused node makes two passes forward
// (statistics; normalise, add and clamp) and two backward (per-channel sums;
// input and residual gradients), with float64 sums (benchmarks/RESULTS.md,
// sixth run; benchmarks/support/bn_relu_ops.js).
//
// It runs where all of these hold, and otherwise BatchNormRelu() is exactly
// Relu(relu, BatchNorm(bn, x) [+ residual]):
//   - x is a float32 CPU tensor of 4 dimensions, more than one value per channel;
//   - bn is training, affine and tracks running statistics;
//   - no BatchNorm override (synchronised batch norm) is installed and Guided
//     Backprop is off on this thread;
//   - the fused path is enabled (TABSIGHT_FUSED_BN_RELU=0 turns it off).
// Its backward cannot itself be differentiated (create_graph fails with ERR_TORCH).
#pragma once

#include <torch/torch.h>

namespace tabsight::models {

torch::Tensor BatchNormRelu(torch::nn::BatchNorm2d& bn, torch::nn::ReLU& relu, const torch::Tensor& x,
                            const torch::Tensor& residual = torch::Tensor());

// Whether BatchNormRelu may take the fused path: TABSIGHT_FUSED_BN_RELU, read
// at the first call, or the last SetFusedBatchNormReluEnabled (process-wide; it returns
// the previous value). Benchmarks use the setter to run both in one process.
bool FusedBatchNormReluEnabled();
bool SetFusedBatchNormReluEnabled(bool enabled);

// The fused node on its own, for tests: relu(bn(x) + residual) in training
// mode, updating running_mean and running_var with `factor` as torch does.
// residual may be undefined. Requires the conditions above on x.
torch::Tensor FusedBatchNormRelu(const torch::Tensor& x, const torch::Tensor& residual, const torch::Tensor& weight,
                                 const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                                 double factor, double eps);

}  // namespace tabsight::models
