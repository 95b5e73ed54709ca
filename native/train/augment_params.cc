// Option checks and per-sample parameter sampling for the batched
// augmentations (augment.cc applies them). No tensors; samples are drawn on
// ATen's intra-op threads.
#include <cmath>
#include <sstream>
#include <string>

#include <ATen/Parallel.h>

#include "common/error.h"
#include "common/rng.h"
#include "train/augment.h"

namespace tabsight::train {

namespace {

// One RNG stream per transform and sample: changing one option never shifts
// the draws of another transform.
enum Stream : uint64_t { kRate = 1, kCrop, kFlip, kRotation, kJitter, kGray, kBlur };

std::string Format(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

// "Expected number between 0 and 1 for augment.rate but received 1.5",
// the message shape lib/validate.ts uses.
[[noreturn]] void Bad(const std::string& expected, const std::string& name, double value) {
  throw Error(ErrorCode::kConfig,
              "Expected " + expected + " for augment." + name + " but received " + Format(value));
}

void CheckRange(double value, const char* name, double lo, double hi) {
  if (!(value >= lo && value <= hi)) Bad("number between " + Format(lo) + " and " + Format(hi), name, value);
}

void CheckNonNegative(double value, const char* name) {
  if (!(value >= 0 && std::isfinite(value))) Bad("non-negative number", name, value);
}

// A [min, max] pair: min in (lo, hi], max in [min, hi].
void CheckPair(double min, double max, const std::string& name, double hi) {
  if (!(min > 0 && min <= hi)) {
    Bad(std::isinf(hi) ? "positive number" : "number in (0, " + Format(hi) + "]", name + "[0]", min);
  }
  if (!(max >= min && max <= hi)) {
    Bad("number ≥ " + name + "[0] (" + Format(min) + ")" + (std::isinf(hi) ? "" : " and ≤ " + Format(hi)),
        name + "[1]", max);
  }
}

// torchvision's RandomResizedCrop.get_params: 10 tries of a random area
// fraction and log-uniform aspect ratio, then a centre crop fallback.
// std::nearbyint rounds half to even, as Python's round does.
void SampleCrop(StreamRng& rng, int64_t h, int64_t w, const AugmentOptions& o, SampleParams& p) {
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_lo = std::log(o.crop_ratio_min), log_hi = std::log(o.crop_ratio_max);
  for (int attempt = 0; attempt < /*tries=*/10; ++attempt) {
    const double target = area * Uniform(rng, o.crop_scale_min, o.crop_scale_max);
    const double ratio = std::exp(Uniform(rng, log_lo, log_hi));
    const auto cw = static_cast<int64_t>(std::nearbyint(std::sqrt(target * ratio)));
    const auto ch = static_cast<int64_t>(std::nearbyint(std::sqrt(target / ratio)));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      p.crop_top = static_cast<int64_t>(UniformInt(rng, static_cast<uint64_t>(h - ch + 1)));
      p.crop_left = static_cast<int64_t>(UniformInt(rng, static_cast<uint64_t>(w - cw + 1)));
      p.crop_h = ch;
      p.crop_w = cw;
      return;
    }
  }
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < o.crop_ratio_min) {
    ch = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / o.crop_ratio_min));
  } else if (in_ratio > o.crop_ratio_max) {
    cw = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * o.crop_ratio_max));
  }
  p.crop_h = ch;
  p.crop_w = cw;
  p.crop_top = (h - ch) / 2;
  p.crop_left = (w - cw) / 2;
}

double JitterFactor(StreamRng& rng, double x) { return Uniform(rng, std::max(0.0, 1.0 - x), 1.0 + x); }

}  // namespace

void ValidateAugmentOptions(const AugmentOptions& o) {
  CheckRange(o.rate, "rate", 0, 1);
  CheckPair(o.crop_scale_min, o.crop_scale_max, "cropScale", 1.0);
  CheckPair(o.crop_ratio_min, o.crop_ratio_max, "cropRatio", INFINITY);
  CheckRange(o.flip_p, "flipP", 0, 1);
  CheckRange(o.rotation_deg, "rotationDeg", 0, 180);
  CheckNonNegative(o.brightness, "brightness");
  CheckNonNegative(o.contrast, "contrast");
  CheckNonNegative(o.saturation, "saturation");
  CheckRange(o.jitter_p, "jitterP", 0, 1);
  CheckRange(o.grayscale_p, "grayscaleP", 0, 1);
  CheckRange(o.blur_p, "blurP", 0, 1);
  if (o.blur_kernel < 1 || o.blur_kernel % 2 == 0) {
    Bad("odd positive integer", "blurKernel", static_cast<double>(o.blur_kernel));
  }
  CheckPair(o.blur_sigma_min, o.blur_sigma_max, "blurSigma", INFINITY);
  if (o.out_h < 0) Bad("non-negative integer", "outSize[0]", static_cast<double>(o.out_h));
  if (o.out_w < 0) Bad("non-negative integer", "outSize[1]", static_cast<double>(o.out_w));
  if ((o.out_h == 0) != (o.out_w == 0)) {
    throw Error(ErrorCode::kConfig, "Expected [0, 0] or two positive integers for augment.outSize but received [" +
                                        std::to_string(o.out_h) + ", " + std::to_string(o.out_w) + "]");
  }
  if (!std::isfinite(o.value_min)) Bad("finite number", "valueRange[0]", o.value_min);
  if (!(std::isfinite(o.value_max) && o.value_max > o.value_min)) {
    Bad("number > augment.valueRange[0] (" + Format(o.value_min) + ")", "valueRange[1]", o.value_max);
  }
}

namespace {

// One sample's parameters, from streams derived from (seed, index).
void SampleOne(const AugmentOptions& o, int64_t h, int64_t w, uint64_t seed, uint64_t index, SampleParams& p) {
  p.crop_h = h;
  p.crop_w = w;
  auto stream = [&](Stream s) { return StreamRng(DeriveSeed(seed, {index, static_cast<uint64_t>(s)})); };
  StreamRng rate_rng = stream(kRate);
  p.augmented = Uniform(rate_rng) < o.rate;
  if (!p.augmented) return;
  if (o.crop) {
    StreamRng rng = stream(kCrop);
    SampleCrop(rng, h, w, o, p);
  }
  StreamRng flip_rng = stream(kFlip);
  p.flip = Uniform(flip_rng) < o.flip_p;
  if (o.rotation_deg > 0) {
    StreamRng rng = stream(kRotation);
    p.angle_deg = Uniform(rng, -o.rotation_deg, o.rotation_deg);
  }
  StreamRng jitter_rng = stream(kJitter);
  p.jitter = Uniform(jitter_rng) < o.jitter_p;
  if (p.jitter) {
    // A random order of the three operations (Fisher–Yates), as
    // torchvision's randperm over its four (we have no hue).
    for (int k = 2; k > 0; --k) {
      const auto j = static_cast<int>(UniformInt(jitter_rng, static_cast<uint64_t>(k + 1)));
      std::swap(p.order[k], p.order[j]);
    }
    p.brightness = JitterFactor(jitter_rng, o.brightness);
    p.contrast = JitterFactor(jitter_rng, o.contrast);
    p.saturation = JitterFactor(jitter_rng, o.saturation);
  }
  StreamRng gray_rng = stream(kGray);
  p.grayscale = Uniform(gray_rng) < o.grayscale_p;
  StreamRng blur_rng = stream(kBlur);
  p.blur = Uniform(blur_rng) < o.blur_p;
  if (p.blur) p.blur_sigma = Uniform(blur_rng, o.blur_sigma_min, o.blur_sigma_max);
}

}  // namespace

std::vector<SampleParams> SampleAugmentParams(int64_t n, int64_t h, int64_t w,
                                              const AugmentOptions& o, uint64_t seed) {
  ValidateAugmentOptions(o);
  if (n < 0 || h < 1 || w < 1) {
    throw Error(ErrorCode::kShape, "Expected n ≥ 0 and positive image sizes for augmentation parameters");
  }
  std::vector<SampleParams> out(static_cast<size_t>(n));
  // Each sample's draws come from its own streams, so samples are independent
  // and the result does not depend on the thread count. This runs on the
  // intra-op threads too: even lazily seeded (StreamRng), the seven streams
  // of a sample cost a few hundred multiplications.
  at::parallel_for(0, n, /*grain_size=*/8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) SampleOne(o, h, w, seed, static_cast<uint64_t>(i), out[static_cast<size_t>(i)]);
  });
  return out;
}

}  // namespace tabsight::train
