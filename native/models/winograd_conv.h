// The ResNets' training-mode 3×3 stride-1 convolutions on the CPU as
// oneDNN's Winograd F(4×4, 3×3) kernels, forward and backward.
//
// LibTorch 1.13 runs every convolution with oneDNN's direct algorithm. For a
// 3×3 kernel, Winograd's transform does about a quarter of the
// multiplications; oneDNN 2.6's jit_wino_4x3 kernels ran these layers about
// twice as fast, with the layout reorders counted (benchmarks/RESULTS.md,
// "Winograd"). Its rounding error is larger: about 2e-6 of the output's
// scale against 2e-7 for the direct algorithm. Training uses it, and so do
// Integrated Gradients' passes through the BatchNorm-folded encoder
// (FoldedConv3x3 below), whose quadrature error is orders of magnitude larger
// than that rounding. Evaluation, embeddings, the other attribution methods
// and export keep LibTorch's convolution, so they stay comparable with
// PyTorch and onnxruntime.
//
// Convolve(conv, x) takes the Winograd path where all of these hold, and is
// otherwise exactly conv(x):
//   - the addon was built with oneDNN 2.x's headers (TABSIGHT_WITH_DNNL,
//     cmake/OneDnn.cmake) and this CPU has a Winograd kernel;
//   - conv is in training mode: 3×3, stride 1, padding 1, dilation 1, one
//     group, no bias, zero padding, input and output channels multiples of 16;
//   - x is a float32 CPU tensor of 4 dimensions, with both spatial sides at
//     least 4 (oneDNN's output tile; smaller maps ran slower by Winograd);
//   - the path is enabled (TABSIGHT_WINOGRAD=0 turns it off).
// The node's backward cannot itself be differentiated (create_graph fails
// with ERR_TORCH).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace tabsight::models {

torch::Tensor Convolve(torch::nn::Conv2d& conv, const torch::Tensor& x);

// Whether this build can run Winograd convolutions at all: built with
// oneDNN and a kernel exists for this CPU (probed once).
bool WinogradAvailable();
// Why not, when WinogradAvailable() is false; empty otherwise.
std::string WinogradUnavailableReason();

// Whether Convolve may take the Winograd path: TABSIGHT_WINOGRAD, read at the
// first call, or the last SetWinogradConvEnabled (process-wide; it returns the
// previous value). Benchmarks use the setter to run both in one process.
bool WinogradConvEnabled();
bool SetWinogradConvEnabled(bool enabled);
// How many convolutions Convolve and FoldedConv3x3 have run by Winograd in
// this process.
uint64_t WinogradConvCalls();

// A BatchNorm-folded 3×3 convolution of Integrated Gradients
// (models/folded_resnet.h): conv2d(x, weight, bias, stride 1, padding 1) by
// Winograd, differentiable in x (the folded weights never require grad).
// Undefined when the path is off or unavailable, or x or weight do
// not qualify (above, the spatial sides included); the caller then runs
// conv2d.
torch::Tensor FoldedConv3x3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// The node on its own, for tests: conv2d(x, weight, stride 1, padding 1) by
// Winograd, differentiable in x and weight, on maps of any size. Throws
// kShape when x or weight do not qualify (above, the spatial sides aside)
// and kConfig when WinogradAvailable() is false.
torch::Tensor WinogradConv3x3(const torch::Tensor& x, const torch::Tensor& weight);

}  // namespace tabsight::models
