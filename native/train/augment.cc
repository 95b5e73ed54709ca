// Batched augmentation kernels. The reference path: one grid_sample for all
// the geometry of a batch, then colour jitter, grayscale and blur as batched
// tensor ops with per-sample factors; it runs on any device. On the CPU,
// ApplyAugment uses the fused kernel of augment_cpu.cc instead for everything
// but the blur. Parameters come from augment_params.cc.
#include "train/augment.h"

#include <cmath>
#include <limits>
#include <string>

#include "common/env.h"
#include "common/error.h"
#include "train/augment_cpu.h"

namespace tabsight::train {

namespace F = torch::nn::functional;

namespace detail {

GridCoefficients GridCoefficientsOf(const SampleParams& p, int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
  constexpr double kPi = 3.14159265358979323846;
  GridCoefficients g{};
  // float division, like interpolate's scale
  g.sx = static_cast<float>(p.crop_w) / static_cast<float>(out_w);
  g.sy = static_cast<float>(p.crop_h) / static_cast<float>(out_h);
  // Crop-box origin relative to the image centre ((w - 1) / 2 in pixel indices).
  g.left = static_cast<double>(p.crop_left) - 0.5 * static_cast<double>(w - 1);
  g.top = static_cast<double>(p.crop_top) - 0.5 * static_cast<double>(h - 1);
  g.max_x = static_cast<double>(p.crop_w - 1);
  g.max_y = static_cast<double>(p.crop_h - 1);
  const double theta = p.angle_deg * kPi / 180.0;
  const double c = p.angle_deg == 0.0 ? 1.0 : std::cos(theta);
  const double s = p.angle_deg == 0.0 ? 0.0 : std::sin(theta);
  const double flip = p.flip ? -1.0 : 1.0;
  // input = centre + R⁻¹·(crop point − centre), R⁻¹ = [[c, −s], [s, c]]
  // (counter-clockwise on screen, y down), x mirrored by the flip, then
  // normalised by 2 / size.
  g.axx = flip * 2.0 * c / static_cast<double>(w);
  g.axy = -flip * 2.0 * s / static_cast<double>(w);
  g.ayx = 2.0 * s / static_cast<double>(h);
  g.ayy = 2.0 * c / static_cast<double>(h);
  return g;
}

JitterStep JitterStepOf(const SampleParams& p, int k, bool rgb) {
  JitterStep s;
  switch (p.order[k]) {
    case 0: s.scale = p.brightness; break;
    case 1:
      s.scale = p.contrast;
      s.keep_mean = 1.0 - p.contrast;
      s.contrast = true;
      break;
    default:
      if (!rgb) break;
      s.scale = p.saturation;
      s.keep_gray = 1.0 - p.saturation;
      s.saturation = true;
  }
  return s;
}

}  // namespace detail

namespace {

using detail::kLumaB;
using detail::kLumaG;
using detail::kLumaR;

void CheckImages(const torch::Tensor& images) {
  if (images.dim() != 4) {
    throw Error(ErrorCode::kShape, "Expected a 4-d N×C×H×W tensor for images but received " +
                                       std::to_string(images.dim()) + " dimensions");
  }
  const auto t = images.scalar_type();
  if (t != torch::kUInt8 && t != torch::kHalf && t != torch::kFloat32) {
    throw Error(ErrorCode::kShape, "Expected uint8, float16 or float32 images");
  }
  if (images.size(1) < 1 || images.size(2) < 1 || images.size(3) < 1) {
    throw Error(ErrorCode::kShape, "Expected positive C, H and W for images");
  }
}

// uint8 → float32 / 255; float16 → float32 (exact); float32 stays (no copy).
torch::Tensor ToFloat(const torch::Tensor& images) {
  if (images.scalar_type() == torch::kUInt8) return images.to(torch::kFloat32).div_(255.0);
  if (images.scalar_type() == torch::kHalf) return images.to(torch::kFloat32);
  return images;
}

// A float32 N-vector on `device` from doubles.
torch::Tensor Column(const std::vector<double>& values, const torch::Device& device) {
  return torch::tensor(values, torch::kFloat64).to(device, torch::kFloat32);
}

// Sampling grid for grid_sample (align_corners=false), N×out_h×out_w×2.
// An output pixel o maps into its crop box the way bilinear interpolate does
// (source index s·(o + 0.5) − 0.5 with s = crop/out, clamped to the box, so a
// whole-image "crop" is exactly a resize), then through the inverse rotation
// about the image centre and the flip into the input. The centre maps to the
// centre, so the affine part has no constant term.
torch::Tensor BuildGrid(const std::vector<SampleParams>& params, int64_t h, int64_t w, int64_t out_h,
                        int64_t out_w, const torch::Device& device) {
  const auto n = static_cast<int64_t>(params.size());
  std::vector<double> sx(n), sy(n), left(n), top(n), max_x(n), max_y(n), axx(n), axy(n), ayx(n), ayy(n);
  for (int64_t i = 0; i < n; ++i) {
    const detail::GridCoefficients g = detail::GridCoefficientsOf(params[i], h, w, out_h, out_w);
    sx[i] = g.sx, sy[i] = g.sy, left[i] = g.left, top[i] = g.top, max_x[i] = g.max_x, max_y[i] = g.max_y;
    axx[i] = g.axx, axy[i] = g.axy, ayx[i] = g.ayx, ayy[i] = g.ayy;
  }
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto col = [&](const std::vector<double>& v) { return Column(v, device).unsqueeze(1); };
  // N×out_w and N×out_h source coordinates relative to the image centre.
  torch::Tensor ox = torch::arange(out_w, f32).add_(0.5).unsqueeze(0);
  torch::Tensor oy = torch::arange(out_h, f32).add_(0.5).unsqueeze(0);
  torch::Tensor dx = torch::minimum((ox * col(sx)).sub_(0.5).clamp_min_(0.0), col(max_x)).add_(col(left));
  torch::Tensor dy = torch::minimum((oy * col(sy)).sub_(0.5).clamp_min_(0.0), col(max_y)).add_(col(top));
  dx = dx.unsqueeze(1);  // N×1×out_w
  dy = dy.unsqueeze(2);  // N×out_h×1
  auto coef = [&](const std::vector<double>& v) { return Column(v, device).view({n, 1, 1}); };
  torch::Tensor gx = dx * coef(axx) + dy * coef(axy);
  torch::Tensor gy = dx * coef(ayx) + dy * coef(ayy);
  return torch::stack({gx, gy}, /*dim=*/3);
}

torch::Tensor Luma(const torch::Tensor& x) {  // N×3×H×W → N×1×H×W
  return x.narrow(1, 0, 1) * kLumaR + x.narrow(1, 1, 1) * kLumaG + x.narrow(1, 2, 1) * kLumaB;
}

// Indices of the samples where the flag `pick` is set.
std::vector<int64_t> Picked(const std::vector<SampleParams>& params, bool SampleParams::*pick) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].*pick) out.push_back(static_cast<int64_t>(i));
  }
  return out;
}

// Colour jitter on the jittered samples, with a per-sample order. At each of
// the three positions every sample gets one operation, written as
// y = f·x + b + g·luma(x): brightness (f, 0, 0), contrast (f, (1 − f)·mean,
// 0), saturation (f, 0, 1 − f); the unused terms are exact zeros. Clamped to
// the value range after each position, as torchvision clamps after each op.
torch::Tensor Jitter(torch::Tensor x, const std::vector<SampleParams>& params, const AugmentOptions& o) {
  const std::vector<int64_t> pick = Picked(params, &SampleParams::jitter);
  if (pick.empty()) return x;
  const auto nj = static_cast<int64_t>(pick.size());
  const bool all = nj == x.size(0);
  const bool rgb = x.size(1) == 3;
  torch::Tensor idx = torch::tensor(pick, torch::kInt64).to(x.device());
  torch::Tensor sub = all ? x : x.index_select(0, idx);
  for (int k = 0; k < 3; ++k) {
    std::vector<double> scale(nj, 1.0), keep_mean(nj, 0.0), keep_gray(nj, 0.0);
    bool any_contrast = false, any_saturation = false;
    for (int64_t j = 0; j < nj; ++j) {
      const detail::JitterStep s = detail::JitterStepOf(params[pick[j]], k, rgb);
      scale[j] = s.scale;
      keep_mean[j] = s.keep_mean;
      keep_gray[j] = s.keep_gray;
      any_contrast = any_contrast || s.contrast;
      any_saturation = any_saturation || s.saturation;
    }
    auto per_sample = [&](const std::vector<double>& v) { return Column(v, x.device()).view({nj, 1, 1, 1}); };
    torch::Tensor luma = rgb && (any_contrast || any_saturation) ? Luma(sub) : torch::Tensor();
    torch::Tensor bias = torch::zeros({nj, 1, 1, 1}, sub.options());
    if (any_contrast) {
      // torchvision: the mean of the grayscale image; for C ≠ 3 the mean of all channels.
      bias = (rgb ? luma : sub).mean({1, 2, 3}, /*keepdim=*/true).mul_(per_sample(keep_mean));
    }
    torch::Tensor y = torch::addcmul(bias, sub, per_sample(scale));
    if (any_saturation) y.addcmul_(luma, per_sample(keep_gray));
    sub = y.clamp_(o.value_min, o.value_max);
  }
  if (all) return sub;
  x.index_copy_(0, idx, sub);
  return x;
}

torch::Tensor Grayscale(torch::Tensor x, const std::vector<SampleParams>& params) {
  if (x.size(1) != 3) return x;
  const std::vector<int64_t> pick = Picked(params, &SampleParams::grayscale);
  if (pick.empty()) return x;
  torch::Tensor idx = torch::tensor(pick, torch::kInt64).to(x.device());
  x.index_copy_(0, idx, Luma(x.index_select(0, idx)).expand({-1, 3, -1, -1}));
  return x;
}

// Gaussian blur with a per-sample sigma, torchvision's kernel
// (exp(−½(t/σ)²) at the integers t = −⌊k/2⌋ … ⌊k/2⌋, normalised) and reflect padding, as two
// depthwise 1-d convolutions with the samples folded into the channels.
torch::Tensor Blur(torch::Tensor x, const std::vector<SampleParams>& params, int64_t kernel) {
  const auto n = static_cast<int64_t>(params.size());
  std::vector<int64_t> pick;
  std::vector<double> sigma;
  for (int64_t i = 0; i < n; ++i) {
    if (!params[i].blur) continue;
    pick.push_back(i);
    sigma.push_back(params[i].blur_sigma);
  }
  if (pick.empty()) return x;
  const auto nb = static_cast<int64_t>(pick.size());
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3), half = kernel / 2;
  torch::Tensor idx = torch::tensor(pick, torch::kInt64).to(x.device());
  torch::Tensor t = torch::arange(kernel, x.options()).sub_(static_cast<double>(half)).unsqueeze(0);
  torch::Tensor pdf = (t / Column(sigma, x.device()).unsqueeze(1)).pow_(2).mul_(-0.5).exp_();
  torch::Tensor k1 = (pdf / pdf.sum(1, /*keepdim=*/true)).repeat_interleave(c, /*dim=*/0);  // (nb·C)×k
  torch::Tensor sub = x.index_select(0, idx);
  sub = F::pad(sub, F::PadFuncOptions({half, half, half, half}).mode(torch::kReflect)).reshape({1, nb * c, h + 2 * half, w + 2 * half});
  sub = F::conv2d(sub, k1.view({nb * c, 1, 1, kernel}), F::Conv2dFuncOptions().groups(nb * c));
  sub = F::conv2d(sub, k1.view({nb * c, 1, kernel, 1}), F::Conv2dFuncOptions().groups(nb * c));
  x.index_copy_(0, idx, sub.view({nb, c, h, w}));
  return x;
}

// TABSIGHT_AUGMENT_REFERENCE=1 forces the tensor path (read once).
bool ReferenceFromEnvironment() {
  static const bool reference = EnvFlag("TABSIGHT_AUGMENT_REFERENCE", false);
  return reference;
}

// The fused kernel takes CPU tensors whose padded source (C×(H+3)×(W+3))
// it can index with int32.
bool UseFusedCpu(const torch::Tensor& images, AugmentPath path) {
  if (path == AugmentPath::kReference || ReferenceFromEnvironment() || !images.device().is_cpu()) return false;
  return (images.size(2) + 3) * (images.size(3) + 3) <= std::numeric_limits<int32_t>::max();
}

}  // namespace

torch::Tensor ToFloatResized(const torch::Tensor& images, int64_t out_h, int64_t out_w) {
  CheckImages(images);
  if (out_h < 0 || out_w < 0) throw Error(ErrorCode::kConfig, "Expected non-negative output size for resize");
  c10::InferenceMode guard;
  const int64_t oh = out_h > 0 ? out_h : images.size(2), ow = out_w > 0 ? out_w : images.size(3);
  torch::Tensor x = ToFloat(images);
  if (oh == x.size(2) && ow == x.size(3)) {
    // ToFloat copied uint8 and float16; a float32 input is the caller's.
    return images.scalar_type() == torch::kFloat32 ? x.clone(at::MemoryFormat::Contiguous) : x.contiguous();
  }
  if (x.size(0) == 0) return torch::empty({0, x.size(1), oh, ow}, x.options());
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{oh, ow})
                               .mode(torch::kBilinear)
                               .align_corners(false))
      .contiguous();
}

torch::Tensor ApplyAugment(const torch::Tensor& images, const AugmentOptions& options,
                           const std::vector<SampleParams>& params, AugmentPath path, const torch::Tensor& out) {
  CheckImages(images);
  ValidateAugmentOptions(options);
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  if (static_cast<int64_t>(params.size()) != n) {
    throw Error(ErrorCode::kShape, "Expected one parameter set per image");
  }
  const int64_t out_h = options.out_h > 0 ? options.out_h : h;
  const int64_t out_w = options.out_w > 0 ? options.out_w : w;
  const int64_t half = options.blur_kernel / 2;
  if (options.blur_p > 0 && (half >= out_h || half >= out_w)) {
    throw Error(ErrorCode::kConfig, "augment.blurKernel " + std::to_string(options.blur_kernel) +
                                        " needs an output of at least " + std::to_string(half + 1) + "×" +
                                        std::to_string(half + 1) + " pixels (reflect padding) but it is " +
                                        std::to_string(out_h) + "×" + std::to_string(out_w));
  }
  for (const SampleParams& p : params) {
    if (p.crop_h < 1 || p.crop_w < 1 || p.crop_top < 0 || p.crop_left < 0 || p.crop_top + p.crop_h > h ||
        p.crop_left + p.crop_w > w) {
      throw Error(ErrorCode::kShape, "Expected crop boxes inside the image");
    }
  }
  if (out.defined() && (!out.device().is_cpu() || out.scalar_type() != torch::kFloat32 || !out.is_contiguous() ||
                        out.sizes() != torch::IntArrayRef({n, c, out_h, out_w}))) {
    throw Error(ErrorCode::kShape, "Expected a contiguous float32 CPU tensor of the output shape for out");
  }
  c10::InferenceMode guard;
  if (n > 0 && UseFusedCpu(images, path)) {
    torch::Tensor y = detail::FusedGeometryColourCpu(images.contiguous(), options, params, out_h, out_w, out);
    return Blur(y, params, options.blur_kernel);
  }
  torch::Tensor x = ToFloat(images);
  if (n == 0) return out.defined() ? out : torch::empty({0, c, out_h, out_w}, x.options());
  torch::Tensor grid = BuildGrid(params, h, w, out_h, out_w, x.device());
  torch::Tensor y = F::grid_sample(x, grid, F::GridSampleFuncOptions()
                                                .mode(torch::kBilinear)
                                                .padding_mode(torch::kZeros)
                                                .align_corners(false));
  y = Jitter(y, params, options);
  y = Grayscale(y, params);
  y = Blur(y, params, options.blur_kernel);
  if (out.defined()) return out.copy_(y);
  return y.contiguous();
}

torch::Tensor Augment(const torch::Tensor& images, const AugmentOptions& options, uint64_t seed,
                      AugmentPath path, const torch::Tensor& out) {
  CheckImages(images);
  return ApplyAugment(images, options,
                      SampleAugmentParams(images.size(0), images.size(2), images.size(3), options, seed), path, out);
}

}  // namespace tabsight::train
