// The fused CPU kernel behind ApplyAugment (see augment_cpu.h). The tensor
// path (augment.cc) makes ~10 full-batch passes with fresh tensors for each
// jitter position; here each sample, in parallel over samples, is done in
// cache with one or two passes over its output:
//   0. its source is converted once to float32 into a scratch with a zero
//      border (uint8 as x / 255.0f, like .to(float).div_(255)), so that
//      grid_sample's zero padding becomes a plain read of the border;
//   1. each output row is sampled bilinearly from it, with the coordinates of
//      BuildGrid + grid_sample(bilinear, zeros, align_corners=false) in the
//      same float32 operation order; the jitter positions before the contrast
//      follow on the row, and the sum of the contrast mean's source (luma, or
//      every channel when C ≠ 3) is accumulated;
//   2. when jittered, a second pass applies the contrast and the positions
//      after it, then grayscale (which otherwise ends pass 1).
//
// Rounding. Every operation is float32 and rounds where the tensor path
// rounds. LibTorch's AVX2 / AVX-512 kernels are compiled with FMA, and GCC
// fuses some of their multiply-adds: grid_sample's unnormalisation
// (x + 1)·W/2 − 0.5 and its four-corner sum, and addcmul (the jitter blends).
// Whether the loaded LibTorch does is probed once, on an addcmul. If it does
// (and the CPU has AVX2 + FMA), the kernel runs a build of itself for that
// target which rounds those same operations once (std::fma; the corner
// weights of a row use AVX2 intrinsics); otherwise a baseline build that
// rounds them twice. Implicit contraction is off in this file, so nothing
// else is fused. The one difference left is the contrast mean: summed in
// double here, in float partial sums there (a few ulp of the mean), so the
// paths agree to ~2e-7 on [0, 1] values (bit for bit without jitter, with
// Debian's LibTorch 1.13, both builds).
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "train/augment_cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Only the multiply-adds written as Madd<true> below may become FMAs.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TABSIGHT_HAVE_AVX2 1
#define TABSIGHT_FMA_TARGET __attribute__((target("avx2,fma")))
#else
#define TABSIGHT_FMA_TARGET
#endif
// The kernel's helpers are inlined into the two builds of AugmentSample, so
// that the FMA build compiles them for its target.
#define TABSIGHT_INLINE [[gnu::always_inline]] inline

namespace tabsight::train::detail {

namespace {

const float kR = static_cast<float>(kLumaR), kG = static_cast<float>(kLumaG), kB = static_cast<float>(kLumaB);

// a·b + c rounded once (kFma) or twice, as LibTorch's kernels round it.
template <bool kFma>
TABSIGHT_INLINE float Madd(float a, float b, float c) {
  if constexpr (kFma) {
    return std::fma(a, b, c);
  } else {
    const float p = a * b;
    return p + c;
  }
}

// One jitter position in float32, as the tensor path's N×1×1×1 columns hold it.
struct Step {
  float scale = 1.0f, keep_mean = 0.0f, keep_gray = 0.0f;
  bool contrast = false, saturation = false;
};

// Everything one sample needs, in float32.
struct Plan {
  // Output column o: ax[o] = dx·axx and ay[o] = dx·ayx; row o: dy[o].
  std::vector<float> ax, ay, dy;
  float axy = 0.0f, ayy = 0.0f;
  Step steps[3];
  int n_steps = 0;      // 3 when jittered, else 0
  int contrast_at = 0;  // index of the contrast position (n_steps when none)
  bool grayscale = false;
};

// min(max(s·(o + 0.5) − 0.5, 0), max) + origin, BuildGrid's dx and dy.
float BoxCoordinate(int64_t o, float s, float max, float origin) {
  float t = static_cast<float>(o) + 0.5f;
  t = t * s;
  t = t - 0.5f;
  t = std::max(t, 0.0f);
  t = std::min(t, max);
  return t + origin;
}

void MakePlan(const SampleParams& p, int64_t h, int64_t w, int64_t out_h, int64_t out_w, bool rgb, Plan& plan) {
  const GridCoefficients g = GridCoefficientsOf(p, h, w, out_h, out_w);
  const auto f = [](double v) { return static_cast<float>(v); };
  plan.ax.resize(out_w);
  plan.ay.resize(out_w);
  plan.dy.resize(out_h);
  const float axx = f(g.axx), ayx = f(g.ayx);
  for (int64_t o = 0; o < out_w; ++o) {
    const float dx = BoxCoordinate(o, f(g.sx), f(g.max_x), f(g.left));
    plan.ax[o] = dx * axx;
    plan.ay[o] = dx * ayx;
  }
  for (int64_t o = 0; o < out_h; ++o) plan.dy[o] = BoxCoordinate(o, f(g.sy), f(g.max_y), f(g.top));
  plan.axy = f(g.axy);
  plan.ayy = f(g.ayy);
  plan.n_steps = p.jitter ? 3 : 0;
  plan.contrast_at = plan.n_steps;
  for (int k = 0; k < plan.n_steps; ++k) {
    const JitterStep s = JitterStepOf(p, k, rgb);
    plan.steps[k] = Step{f(s.scale), f(s.keep_mean), f(s.keep_gray), s.contrast, s.saturation};
    if (s.contrast) plan.contrast_at = k;
  }
  plan.grayscale = p.grayscale && rgb;
}

// Per-thread buffers, reused across the samples of a chunk.
struct Scratch {
  std::vector<float> source;  // C × (H + 3) × (W + 3), zero border
  std::vector<int32_t> corner;
  std::vector<float> nw, ne, sw, se, luma;
  Plan plan;
};

// Source pixel (y, x) sits at padded (y + 1, x + 1). Rows and columns 0,
// H + 1, H + 2 (W + 1, W + 2) are zero: a corner outside the image reads 0,
// as grid_sample's masked gather gives.
template <typename T>
TABSIGHT_INLINE void LoadSource(const T* src, int64_t c, int64_t h, int64_t w, float* pad) {
  const int64_t wp = w + 3, plane = (h + 3) * wp;
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      const T* __restrict in = src + (ch * h + y) * w;
      float* __restrict row = pad + ch * plane + (y + 1) * wp + 1;
      if constexpr (std::is_same_v<T, uint8_t>) {
        for (int64_t x = 0; x < w; ++x) row[x] = static_cast<float>(in[x]) / 255.0f;
      } else if constexpr (std::is_same_v<T, c10::Half>) {
        for (int64_t x = 0; x < w; ++x) row[x] = static_cast<float>(in[x]);  // exact
      } else {
        std::copy(in, in + w, row);
      }
    }
  }
}

// floor(x) for |x| < 2^31 (floorf is a library call without SSE4.1).
TABSIGHT_INLINE float Floor(float x) {
  const auto t = static_cast<float>(static_cast<int32_t>(x));
  return t > x ? t - 1.0f : t;
}

// What the corner computation of one output row reads and writes.
struct RowCorners {
  const float* ax;
  const float* ay;
  float bx, by, sfw, sfh;
  int32_t iw, ih, wp;
  float *nw, *ne, *sw, *se;
  int32_t* corner;
};

// Bilinear weights and padded north-west corner of pixels [begin, end) of a
// row, as grid_sample computes them from BuildGrid's grid.
template <bool kFma>
TABSIGHT_INLINE void CornersScalar(const RowCorners& r, int64_t begin, int64_t end) {
  for (int64_t o = begin; o < end; ++o) {
    const float gx = r.ax[o] + r.bx;
    const float gy = r.ay[o] + r.by;
    const float x = Madd<kFma>(gx + 1.0f, r.sfw, -0.5f);  // (gx + 1)·W/2 − 0.5
    const float y = Madd<kFma>(gy + 1.0f, r.sfh, -0.5f);
    const float xw = Floor(x), yn = Floor(y);
    const float wd = x - xw, ed = 1.0f - wd;
    const float nd = y - yn, sd = 1.0f - nd;
    r.nw[o] = sd * ed;
    r.ne[o] = sd * wd;
    r.sw[o] = nd * ed;
    r.se[o] = nd * wd;
    const auto ix = static_cast<int32_t>(xw), iy = static_cast<int32_t>(yn);
    const int32_t px = ix >= -1 && ix < r.iw ? ix + 1 : r.iw + 1;  // both columns outside: the zero pair
    const int32_t py = iy >= -1 && iy < r.ih ? iy + 1 : r.ih + 1;
    r.corner[o] = py * r.wp + px;
  }
}

#if defined(TABSIGHT_HAVE_AVX2)
// The same, 8 pixels at a time, for the FMA build (GCC does not vectorise the
// scalar loop: its float compares might trap). Returns the pixels done.
TABSIGHT_FMA_TARGET int64_t CornersAvx2(const RowCorners& r, int64_t end) {
  const __m256 bx = _mm256_set1_ps(r.bx), by = _mm256_set1_ps(r.by);
  const __m256 sfw = _mm256_set1_ps(r.sfw), sfh = _mm256_set1_ps(r.sfh);
  const __m256 one = _mm256_set1_ps(1.0f), minus_half = _mm256_set1_ps(-0.5f);
  const __m256i iw = _mm256_set1_epi32(r.iw), ih = _mm256_set1_epi32(r.ih), wp = _mm256_set1_epi32(r.wp);
  const __m256i iw1 = _mm256_set1_epi32(r.iw + 1), ih1 = _mm256_set1_epi32(r.ih + 1);
  const __m256i one_i = _mm256_set1_epi32(1), minus_two = _mm256_set1_epi32(-2);
  int64_t o = 0;
  for (; o + 8 <= end; o += 8) {
    const __m256 gx = _mm256_add_ps(_mm256_loadu_ps(r.ax + o), bx);
    const __m256 gy = _mm256_add_ps(_mm256_loadu_ps(r.ay + o), by);
    const __m256 x = _mm256_fmadd_ps(_mm256_add_ps(gx, one), sfw, minus_half);
    const __m256 y = _mm256_fmadd_ps(_mm256_add_ps(gy, one), sfh, minus_half);
    const __m256 xw = _mm256_floor_ps(x), yn = _mm256_floor_ps(y);
    const __m256 wd = _mm256_sub_ps(x, xw), ed = _mm256_sub_ps(one, wd);
    const __m256 nd = _mm256_sub_ps(y, yn), sd = _mm256_sub_ps(one, nd);
    _mm256_storeu_ps(r.nw + o, _mm256_mul_ps(sd, ed));
    _mm256_storeu_ps(r.ne + o, _mm256_mul_ps(sd, wd));
    _mm256_storeu_ps(r.sw + o, _mm256_mul_ps(nd, ed));
    _mm256_storeu_ps(r.se + o, _mm256_mul_ps(nd, wd));
    const __m256i ix = _mm256_cvttps_epi32(xw), iy = _mm256_cvttps_epi32(yn);
    const __m256i in_x = _mm256_and_si256(_mm256_cmpgt_epi32(ix, minus_two), _mm256_cmpgt_epi32(iw, ix));
    const __m256i in_y = _mm256_and_si256(_mm256_cmpgt_epi32(iy, minus_two), _mm256_cmpgt_epi32(ih, iy));
    const __m256i px = _mm256_blendv_epi8(iw1, _mm256_add_epi32(ix, one_i), in_x);
    const __m256i py = _mm256_blendv_epi8(ih1, _mm256_add_epi32(iy, one_i), in_y);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r.corner + o), _mm256_add_epi32(_mm256_mullo_epi32(py, wp), px));
  }
  return o;
}
#endif

template <bool kFma>
TABSIGHT_INLINE void RowCornersOf(const Plan& plan, int64_t oy, int64_t h, int64_t w, int64_t out_w, Scratch& s) {
  const RowCorners r{plan.ax.data(), plan.ay.data(), plan.dy[oy] * plan.axy, plan.dy[oy] * plan.ayy,
                     static_cast<float>(w) / 2, static_cast<float>(h) / 2, static_cast<int32_t>(w),
                     static_cast<int32_t>(h), static_cast<int32_t>(w + 3), s.nw.data(), s.ne.data(), s.sw.data(),
                     s.se.data(), s.corner.data()};
  int64_t done = 0;
#if defined(TABSIGHT_HAVE_AVX2)
  if constexpr (kFma) done = CornersAvx2(r, out_w);
#endif
  CornersScalar<kFma>(r, done, out_w);
}

TABSIGHT_INLINE float Luma(float r, float g, float b) {
  const float lr = r * kR, lg = g * kG, lb = b * kB;
  const float rg = lr + lg;
  return rg + lb;
}

// One jitter position on one output row (channel c at row + c·plane):
// addcmul(bias, x, scale), then addcmul_(luma, keep_gray), then clamp.
template <bool kFma>
TABSIGHT_INLINE void ApplyStep(const Step& step, float mean, float lo, float hi, float* row, int64_t c,
                               int64_t plane, int64_t len, float* luma) {
  const float bias = step.contrast ? mean * step.keep_mean : 0.0f;
  if (step.saturation) {
    for (int64_t o = 0; o < len; ++o) luma[o] = Luma(row[o], row[plane + o], row[2 * plane + o]);
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    float* v = row + ch * plane;
    if (step.saturation) {
      for (int64_t o = 0; o < len; ++o) {
        const float y = Madd<kFma>(luma[o], step.keep_gray, Madd<kFma>(v[o], step.scale, bias));
        v[o] = std::min(std::max(y, lo), hi);
      }
    } else {
      for (int64_t o = 0; o < len; ++o) {
        const float y = Madd<kFma>(v[o], step.scale, bias);
        v[o] = std::min(std::max(y, lo), hi);
      }
    }
  }
}

// Sum of the contrast mean's source over one row, in double: the luma for
// RGB, every channel otherwise (four partial sums, for a shorter chain).
TABSIGHT_INLINE double RowMeanSum(const float* row, int64_t c, int64_t plane, int64_t len, float* luma) {
  const float* values = row;
  int64_t planes = c;
  if (c == 3) {
    for (int64_t o = 0; o < len; ++o) luma[o] = Luma(row[o], row[plane + o], row[2 * plane + o]);
    values = luma;
    planes = 1;
  }
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  for (int64_t ch = 0; ch < planes; ++ch) {
    const float* v = values + ch * plane;
    int64_t o = 0;
    for (; o + 4 <= len; o += 4) {
      for (int k = 0; k < 4; ++k) part[k] += v[o + k];
    }
    for (; o < len; ++o) part[0] += v[o];
  }
  return (part[0] + part[1]) + (part[2] + part[3]);
}

TABSIGHT_INLINE void GrayscaleRow(float* row, int64_t plane, int64_t len) {
  for (int64_t o = 0; o < len; ++o) {
    const float l = Luma(row[o], row[plane + o], row[2 * plane + o]);
    row[o] = row[plane + o] = row[2 * plane + o] = l;
  }
}

// Bilinear sampling of one output row from the padded source, every channel:
// ((nw·v + ne·v) + sw·v) + se·v. kC: the channel count when fixed (1 or 3),
// else 0 and c gives it.
template <bool kFma, int kC>
TABSIGHT_INLINE void SampleRow(const Scratch& s, float* row, int64_t c, int64_t plane, int64_t pad_plane, int64_t wp,
                               int64_t out_w) {
  const int64_t channels = kC > 0 ? kC : c;
  const float* __restrict source = s.source.data();
  const int32_t* __restrict corner = s.corner.data();
  const float* __restrict nw = s.nw.data();
  const float* __restrict ne = s.ne.data();
  const float* __restrict sw = s.sw.data();
  const float* __restrict se = s.se.data();
  for (int64_t o = 0; o < out_w; ++o) {
    const float* q = source + corner[o];
    const float a = nw[o], b = ne[o], d = sw[o], e = se[o];
    for (int64_t ch = 0; ch < channels; ++ch, q += pad_plane) {
      float y = q[0] * a;
      y = Madd<kFma>(q[1], b, y);
      y = Madd<kFma>(q[wp], d, y);
      row[ch * plane + o] = Madd<kFma>(q[wp + 1], e, y);
    }
  }
}

template <typename T, bool kFma>
TABSIGHT_INLINE void AugmentSample(const T* src, float* out, const SampleParams& p, const AugmentOptions& options,
                                   int64_t c, int64_t h, int64_t w, int64_t out_h, int64_t out_w, Scratch& s) {
  Plan& plan = s.plan;
  MakePlan(p, h, w, out_h, out_w, c == 3, plan);
  LoadSource(src, c, h, w, s.source.data());
  const float lo = static_cast<float>(options.value_min), hi = static_cast<float>(options.value_max);
  const int64_t plane = out_h * out_w, wp = w + 3, pad_plane = (h + 3) * wp;
  const bool split = plan.contrast_at < plan.n_steps;
  double sum = 0.0;
  // Pass 1: sample, the positions before the contrast, the mean's sum.
  for (int64_t oy = 0; oy < out_h; ++oy) {
    RowCornersOf<kFma>(plan, oy, h, w, out_w, s);
    float* row = out + oy * out_w;
    if (c == 3) {
      SampleRow<kFma, 3>(s, row, 3, plane, pad_plane, wp, out_w);
    } else if (c == 1) {
      SampleRow<kFma, 1>(s, row, 1, plane, pad_plane, wp, out_w);
    } else {
      SampleRow<kFma, 0>(s, row, c, plane, pad_plane, wp, out_w);
    }
    for (int k = 0; k < plan.contrast_at; ++k) {
      ApplyStep<kFma>(plan.steps[k], 0.0f, lo, hi, row, c, plane, out_w, s.luma.data());
    }
    if (split) sum += RowMeanSum(row, c, plane, out_w, s.luma.data());
    if (!split && plan.grayscale) GrayscaleRow(row, plane, out_w);
  }
  if (!split) return;
  // Pass 2: the contrast (the mean as sum / count, LibTorch's mean on CPU),
  // the positions after it, grayscale.
  const int64_t count = c == 3 ? plane : c * plane;
  const float mean = static_cast<float>(sum) / static_cast<float>(count);
  for (int64_t oy = 0; oy < out_h; ++oy) {
    float* row = out + oy * out_w;
    for (int k = plan.contrast_at; k < plan.n_steps; ++k) {
      ApplyStep<kFma>(plan.steps[k], mean, lo, hi, row, c, plane, out_w, s.luma.data());
    }
    if (plan.grayscale) GrayscaleRow(row, plane, out_w);
  }
}

// What every sample of a batch shares.
struct Batch {
  const void* src;
  c10::ScalarType type;  // kUInt8, kHalf or kFloat32
  float* out;
  int64_t c, h, w, out_h, out_w;
  const std::vector<SampleParams>* params;
  const AugmentOptions* options;
};

template <bool kFma>
TABSIGHT_INLINE void SampleOf(const Batch& b, int64_t i, Scratch& s) {
  const int64_t in_size = b.c * b.h * b.w;
  float* out = b.out + i * b.c * b.out_h * b.out_w;
  const SampleParams& p = (*b.params)[i];
  if (b.type == c10::kByte) {
    AugmentSample<uint8_t, kFma>(static_cast<const uint8_t*>(b.src) + i * in_size, out, p, *b.options, b.c, b.h, b.w,
                                 b.out_h, b.out_w, s);
  } else if (b.type == c10::kHalf) {
    AugmentSample<c10::Half, kFma>(static_cast<const c10::Half*>(b.src) + i * in_size, out, p, *b.options, b.c, b.h,
                                   b.w, b.out_h, b.out_w, s);
  } else {
    AugmentSample<float, kFma>(static_cast<const float*>(b.src) + i * in_size, out, p, *b.options, b.c, b.h, b.w,
                               b.out_h, b.out_w, s);
  }
}

// The two builds of the kernel.
TABSIGHT_FMA_TARGET void SampleRoundOnce(const Batch& b, int64_t i, Scratch& s) { SampleOf<true>(b, i, s); }
void SampleRoundTwice(const Batch& b, int64_t i, Scratch& s) { SampleOf<false>(b, i, s); }

bool CpuHasFma() {
#if defined(TABSIGHT_HAVE_AVX2)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return true;
#endif
}

// Whether LibTorch's CPU kernels round a·b + c once: an addcmul shaped like
// the jitter's (per-sample scalars broadcast over an image) must equal fma on
// every element, and differ from two roundings on some. Probed once.
bool LibTorchFusesMultiplyAdd() {
  static const bool fused = [] {
    c10::InferenceMode guard;
    constexpr int64_t kSide = 8;
    torch::Tensor x = torch::arange(kSide * kSide, torch::kFloat32).mul_(0.0137).add_(0.1).view({1, 1, kSide, kSide});
    const float scale = 1.1f, bias = 0.3f;
    torch::Tensor y = torch::addcmul(torch::full({1, 1, 1, 1}, bias), x, torch::full({1, 1, 1, 1}, scale)).contiguous();
    const float* xs = x.data_ptr<float>();
    const float* ys = y.data_ptr<float>();
    bool all_once = true, any_differ = false;
    for (int64_t k = 0; k < kSide * kSide; ++k) {
      const float once = std::fma(xs[k], scale, bias);
      const float product = xs[k] * scale;
      all_once = all_once && ys[k] == once;
      any_differ = any_differ || once != product + bias;
    }
    return all_once && any_differ;
  }();
  return fused;
}

}  // namespace

torch::Tensor FusedGeometryColourCpu(const torch::Tensor& images, const AugmentOptions& options,
                                     const std::vector<SampleParams>& params, int64_t out_h, int64_t out_w,
                                     const torch::Tensor& into) {
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  torch::Tensor out =
      into.defined() ? into : torch::empty({n, c, out_h, out_w}, torch::TensorOptions().dtype(torch::kFloat32));
  const Batch batch{images.data_ptr(), images.scalar_type(), out.data_ptr<float>(), c, h, w,
                    out_h, out_w, &params, &options};
  const bool once = LibTorchFusesMultiplyAdd() && CpuHasFma();
  at::parallel_for(0, n, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
    Scratch s;
    s.source.assign(static_cast<size_t>(c * (h + 3) * (w + 3)), 0.0f);
    s.corner.resize(out_w);
    for (auto* v : {&s.nw, &s.ne, &s.sw, &s.se, &s.luma}) v->resize(out_w);
    for (int64_t i = begin; i < end; ++i) {
      if (once) {
        SampleRoundOnce(batch, i, s);
      } else {
        SampleRoundTwice(batch, i, s);
      }
    }
  });
  return out;
}

}  // namespace tabsight::train::detail
