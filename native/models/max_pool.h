// ResNet's stem max-pool (3×3 window, stride 2, padding 1) on NCHW float32
// CPU tensors, bit-identical to torch::max_pool2d forward and backward, in
// less time.
//
// Why: LibTorch 1.13's NCHW max_pool2d_with_indices kernel is a scalar loop
// that recomputes each window's bounds and stores an int64 index per output.
// In Integrated Gradients' folded ResNet-18 at 64 px (batch 64 path points)
// it took about 11 ms of a 120 ms forward/backward pass, 10% of the time,
// for 1.4 × 10⁶ comparisons (benchmarks/RESULTS.md, "IG: the stem's
// max-pool"). Attribution runs its networks in NCHW, so it takes that kernel;
// training and embedding on the CPU run channels_last and take ATen's
// vectorised NHWC kernel instead.
//
// Exactness: max is exact, so the forward values are ATen's. The backward
// routes each output's gradient to the same input as ATen's: the first
// maximum in the window's row-major order, or the last NaN when the window
// holds one (ATen updates on `v > max || isnan(v)`), and the first in-bound
// position when every value is −∞. The window is scanned row by row (the
// maximum of each row, then of the three rows), which picks that same
// position. Gradients are added into a zeroed input gradient in the outputs'
// row-major order, as ATen adds them, so every sum has the same rounding.
// The index is stored as one byte per output (its offset in the window).
//
// MaxPoolStem(x) takes this path when x is a 4-D float32 CPU tensor in NCHW
// (contiguous) layout and the switch is on (TABSIGHT_STEM_MAXPOOL=0 turns it
// off), and is torch::max_pool2d(x, 3, 2, 1) otherwise. The node's backward
// cannot itself be differentiated (create_graph fails with ERR_TORCH;
// nothing in tabsight asks for it).
#pragma once

#include <torch/torch.h>

namespace tabsight::models {

torch::Tensor MaxPoolStem(const torch::Tensor& x);

// TABSIGHT_STEM_MAXPOOL, read at the first call, or the last setter call
// (process-wide; it returns the previous value), for tests and benchmarks.
bool MaxPoolStemKernelEnabled();
bool SetMaxPoolStemKernelEnabled(bool enabled);

// The kernel alone, for tests and benchmarks: output and the window offset
// (0..8, row-major) of each output's maximum. x must qualify (see above).
std::tuple<torch::Tensor, torch::Tensor> MaxPoolStemForward(const torch::Tensor& x);
// ∂L/∂x from ∂L/∂output and the offsets; `sizes` is x's shape.
torch::Tensor MaxPoolStemBackward(const torch::Tensor& grad_output, const torch::Tensor& offsets, at::IntArrayRef sizes);

}  // namespace tabsight::models
