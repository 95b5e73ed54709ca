// Internal to the augmentation kernels (augment.cc, augment_cpu.cc): the
// per-sample coefficients both implementations share, and the fused CPU
// kernel. Not part of the addon's surface.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "train/augment.h"

namespace tabsight::train::detail {

// ITU-R 601 luma weights (PIL's convert('L'); torchvision's tensor path uses 0.2989).
constexpr double kLumaR = 0.299, kLumaG = 0.587, kLumaB = 0.114;

// The affine map of one sample's sampling grid (see BuildGrid in augment.cc).
// Output column o maps to dx = min(max(sx·(o + 0.5) − 0.5, 0), max_x) + left,
// row o to dy likewise, and the grid point is
// (axx·dx + axy·dy, ayx·dx + ayy·dy) in grid_sample's normalised coordinates.
// Both paths round these doubles to float32 once.
struct GridCoefficients {
  double sx, sy, left, top, max_x, max_y, axx, axy, ayx, ayy;
};
GridCoefficients GridCoefficientsOf(const SampleParams& p, int64_t h, int64_t w, int64_t out_h, int64_t out_w);

// Jitter position k of a jittered sample as y = clamp(scale·x + keep_mean·mean
// + keep_gray·luma): brightness (f, 0, 0), contrast (f, 1 − f, 0), saturation
// (f, 0, 1 − f), and (1, 0, 0) for saturation when C ≠ 3.
struct JitterStep {
  double scale = 1.0, keep_mean = 0.0, keep_gray = 0.0;
  bool contrast = false, saturation = false;
};
JitterStep JitterStepOf(const SampleParams& p, int k, bool rgb);

// The fused CPU kernel: resampling, colour jitter and grayscale of each sample
// in one pass over its output, or two when it is jittered (the contrast mean
// needs the whole image before the contrast position); equal to the tensor
// path up to float rounding. images: contiguous CPU uint8 or float32
// N×C×H×W, checked by the caller. Returns float32 N×C×out_h×out_w (no blur):
// `out` when defined (contiguous float32 CPU of that shape, checked by the
// caller), else a new tensor.
torch::Tensor FusedGeometryColourCpu(const torch::Tensor& images, const AugmentOptions& options,
                                     const std::vector<SampleParams>& params, int64_t out_h, int64_t out_w,
                                     const torch::Tensor& out = {});

}  // namespace tabsight::train::detail
