// Batched image augmentations (plain LibTorch, no napi.h).
//
// One call augments a whole N×C×H×W batch. Per-sample parameters come from a
// generator seeded by `seed`, so the same (batch, options, seed) always gives
// the same output. The heavy work (resampling, blur, colour) runs in parallel
// over LibTorch's intra-op thread pool: as batched LibTorch ops, or on the
// CPU as one fused kernel per sample (see AugmentPath).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace tabsight::train {

struct AugmentOptions {
  // Probability that a sample gets the random pipeline at all; the others are
  // only resized to the output size (MMCL's augmentation rate: 0.95).
  double rate = 0.95;
  // Random resized crop: area fraction and aspect ratio ranges, sampled like
  // torchvision's RandomResizedCrop.get_params. crop = false keeps the whole
  // image (scale [1, 1] with ratio [1, 1] also does, for square images).
  bool crop = true;
  double crop_scale_min = 0.2, crop_scale_max = 1.0;
  double crop_ratio_min = 3.0 / 4.0, crop_ratio_max = 4.0 / 3.0;
  // Horizontal flip probability.
  double flip_p = 0.5;
  // Rotation by an angle uniform in [-rotation_deg, rotation_deg].
  double rotation_deg = 45.0;
  // Colour jitter factors, torchvision's convention: a factor uniform in
  // [max(0, 1 - x), 1 + x]. Saturation needs 3 channels; with other channel
  // counts it is skipped. Applied with probability jitter_p.
  double brightness = 0.5, contrast = 0.5, saturation = 0.5;
  double jitter_p = 1.0;
  // Random grayscale (3 channels only) with probability grayscale_p.
  double grayscale_p = 0.0;
  // Gaussian blur with probability blur_p, sigma uniform in
  // [blur_sigma_min, blur_sigma_max], odd kernel size blur_kernel.
  double blur_p = 0.0;
  int64_t blur_kernel = 9;
  double blur_sigma_min = 0.1, blur_sigma_max = 2.0;
  // Output size; 0 keeps the input size.
  int64_t out_h = 0, out_w = 0;
  // Value range used for clamping after colour operations. uint8 input is
  // first scaled to [0, 1], so the default fits it.
  double value_min = 0.0, value_max = 1.0;
};

// The parameters drawn for one sample. Samples that the rate leaves out get
// the identity: the whole image, no flip, angle 0 and no colour operation.
// Geometry is applied as flip → rotation → crop (MMCL's cardiac order), then
// colour: jitter (in `order`) → grayscale → blur, at the output size.
struct SampleParams {
  bool augmented = false;
  // Crop box in the (flipped, rotated) image, in pixels: torchvision's i, j, h, w.
  int64_t crop_top = 0, crop_left = 0, crop_h = 0, crop_w = 0;
  bool flip = false;
  // Counter-clockwise degrees, as torchvision's rotate.
  double angle_deg = 0.0;
  bool jitter = false;
  // Jitter factors (all 1 when jitter is false); order lists the operations
  // as applied: 0 = brightness, 1 = contrast, 2 = saturation (skipped unless
  // C == 3).
  double brightness = 1.0, contrast = 1.0, saturation = 1.0;
  int order[3] = {0, 1, 2};
  // Grayscale takes effect only when C == 3.
  bool grayscale = false;
  bool blur = false;
  double blur_sigma = 0.0;
};

// Validates the options (throws tabsight::Error with kConfig naming the field).
void ValidateAugmentOptions(const AugmentOptions& options);

// Which implementation ApplyAugment runs. kAuto: on the CPU, the fused
// per-sample kernel (augment_cpu.cc) for the geometry, jitter and grayscale
// (the blur stays a tensor op); on other devices, the batched tensor ops.
// kReference: the batched tensor ops on every device, which the fused kernel
// equals up to float rounding (tests compare the two). Setting the
// environment variable TABSIGHT_AUGMENT_REFERENCE=1 before the first
// augmentation of the process makes kAuto behave as kReference.
enum class AugmentPath { kAuto, kReference };

// images: uint8 or float32, N×C×H×W, on any device. Returns float32
// N×C×out_h×out_w on the same device; uint8 input is scaled by 1/255.
// `out`, when defined, receives the result and is returned: a contiguous
// float32 CPU tensor of the output shape (the N-API layer passes a view of
// the JS array it resolves with, so the result is not copied again).
torch::Tensor Augment(const torch::Tensor& images, const AugmentOptions& options, uint64_t seed,
                      AugmentPath path = AugmentPath::kAuto, const torch::Tensor& out = {});

// Draws the parameters of n samples of h×w images. Sample i uses its own
// streams DeriveSeed(seed, {i, stream}), one stream per transform, so a
// sample's crop does not change when flip or jitter settings change.
std::vector<SampleParams> SampleAugmentParams(int64_t n, int64_t h, int64_t w,
                                              const AugmentOptions& options, uint64_t seed);

// Applies given parameters (one per sample) to a batch; Augment is
// ApplyAugment(images, options, SampleAugmentParams(...)).
torch::Tensor ApplyAugment(const torch::Tensor& images, const AugmentOptions& options,
                           const std::vector<SampleParams>& params, AugmentPath path = AugmentPath::kAuto,
                           const torch::Tensor& out = {});

// Resize only (the path a sample takes when it is not augmented, and the
// evaluation transform): uint8 → float /255, bilinear resize to out size.
torch::Tensor ToFloatResized(const torch::Tensor& images, int64_t out_h, int64_t out_w);

}  // namespace tabsight::train
