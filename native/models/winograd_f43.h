// tabsight's own Winograd F(4×4, 3×3) convolution kernels for x86 CPUs with
// AVX2 and FMA: the backend of models/winograd_conv.h where oneDNN has no
// Winograd kernel (oneDNN 2.x has them for AVX-512 only) or the addon was
// built without oneDNN.
//
// y = conv2d(x, w, stride 1, padding 1) in three stages per block of 4×4
// output tiles, each block on one thread and in its cache:
//   1. input transform: each 6×6 input patch d (zero outside the map)
//      becomes V = Bᵀ d B, 36 values per tile and channel;
//   2. 36 small matrix products M[p] = V[p] · U[p] ([tiles × C] · [C × K])
//      by a 6×16 register-blocked FMA kernel, where U = G w Gᵀ is the
//      transformed weight (Transform*Weights below);
//   3. output transform: Y = Aᵀ M A, 4×4 outputs per tile.
// That is 36 multiplications per tile, channel pair and output where the
// direct sum does 144 (16 outputs × 9 taps).
//
// The interpolation points are 0, 1, −1, 1/2, −2 and ∞. Barabasz et al.
// ("Error analysis and improving the accuracy of Winograd convolution for
// deep neural networks", ACM TOMS 2020) found this set more accurate than the
// common 0, ±1, ±2; measured here in float32 with 256 input channels, the
// largest error of a tile was 3.3e-6 of its largest output against 7.7e-6.
//
// Activations are read and written with channels innermost (channels_last);
// Convolve converts other layouts on the way in and out.
#pragma once

#include <torch/torch.h>

namespace tabsight::models::f43 {

// Whether this CPU runs the kernels (x86-64 with AVX2 and FMA).
bool Supported();

// U [36, C, K] for conv2d(x, weight): weight [K, C, 3, 3] float32 CPU, any
// layout.
torch::Tensor TransformWeights(const torch::Tensor& weight);
// U [36, K, C] for the input gradient of that convolution: conv2d(dy, w')
// with w' = weight transposed in its channels and flipped in space.
torch::Tensor TransformWeightsAdjoint(const torch::Tensor& weight);

// conv2d(x, weight, stride 1, padding 1) for x [N, C, H, W] float32 CPU and
// U = TransformWeights(weight) of shape [36, C, K]; the result [N, K, H, W]
// is laid out in `format`. C and K must be multiples of 16 (checked by the
// caller, models/winograd_conv.cc).
torch::Tensor Convolve(const torch::Tensor& x, const torch::Tensor& u, at::MemoryFormat format);

}  // namespace tabsight::models::f43
