// The ResNets' training-mode 3×3 stride-1 convolutions on the CPU as
// Winograd F(4×4, 3×3) kernels, forward and backward: oneDNN's where it has
// them for this CPU (AVX-512), else tabsight's own (models/winograd_f43.h;
// AVX2 and FMA), chosen once per process (WinogradKernel();
// TABSIGHT_WINOGRAD_KERNEL=tabsight or =onednn asks for one). The text below
// is about oneDNN's; tabsight's rounds about as much (3e-6 to 8e-6 of the
// largest output in test/winograd-conv.test.ts) and computes the weight
// gradient with LibTorch's direct convolution.
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
//   - a kernel is there: the addon was built with oneDNN 2.x's headers
//     (TABSIGHT_WITH_DNNL, cmake/OneDnn.cmake) and oneDNN has a Winograd
//     kernel for this CPU, or the CPU has AVX2 and FMA (tabsight's own);
//   - conv is in training mode: 3×3, stride 1, padding 1, dilation 1, one
//     group, no bias, zero padding, input and output channels multiples of 16;
//   - x is a float32 CPU tensor of 4 dimensions, with both spatial sides at
//     least 4 (the output tile; smaller maps ran slower by Winograd);
//   - the path is enabled (TABSIGHT_WINOGRAD=0 turns it off).
// The node's backward cannot itself be differentiated (create_graph fails
// with ERR_TORCH).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace tabsight::models {

torch::Tensor Convolve(torch::nn::Conv2d& conv, const torch::Tensor& x);

// Whether this build can run Winograd convolutions at all: oneDNN has a
// kernel for this CPU (probed once), or tabsight's own kernels run on it.
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

// Which kernel WinogradAvailable() found: "onednn", "tabsight" (tabsight's
// own AVX2 kernels, models/winograd_f43.h) or "" (none).
std::string WinogradKernel();

// A folded convolution's weights as tabsight's own kernels take them, made
// at the first FoldedConv3x3 that needs them and kept: Integrated Gradients
// runs the same folded weights through many chunks.
struct WinogradWeights {
  std::once_flag once;
  torch::Tensor u, adjoint;
};

// A BatchNorm-folded 3×3 convolution of Integrated Gradients
// (models/folded_resnet.h): conv2d(x, weight, bias, stride 1, padding 1) by
// Winograd, differentiable in x (the folded weights never require grad).
// `prepared`, when given, keeps the transformed weights between calls; it
// belongs to this `weight`, which must not change while it is in use.
// Undefined when the path is off or unavailable, or x or weight do
// not qualify (above, the spatial sides included); the caller then runs
// conv2d.
torch::Tensor FoldedConv3x3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            WinogradWeights* prepared = nullptr);

// The node on its own, for tests: conv2d(x, weight, stride 1, padding 1) by
// Winograd, differentiable in x and weight, on maps of any size. Throws
// kShape when x or weight do not qualify (above, the spatial sides aside)
// and kConfig when WinogradAvailable() is false.
torch::Tensor WinogradConv3x3(const torch::Tensor& x, const torch::Tensor& weight);

}  // namespace tabsight::models
