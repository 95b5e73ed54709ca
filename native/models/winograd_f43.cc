#include "models/winograd_f43.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>

#include "common/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TABSIGHT_F43 1
#define TABSIGHT_F43_TARGET __attribute__((target("avx2,fma")))
#define TABSIGHT_F43_INLINE [[gnu::always_inline]] inline
#endif

namespace tabsight::models::f43 {

#ifdef TABSIGHT_F43
namespace {

// Bᵀ of the points 0, 1, −1, 1/2, −2, ∞ applied to six vectors: the rows
// are the coefficients of M(x)/(x − pⱼ) for M(x) = Πⱼ (x − pⱼ), and M(x)
// itself for ∞.
TABSIGHT_F43_TARGET TABSIGHT_F43_INLINE void InputRows(const __m256 d[6], __m256 r[6]) {
  const __m256 half = _mm256_set1_ps(0.5f), one5 = _mm256_set1_ps(1.5f), two = _mm256_set1_ps(2.f),
               two5 = _mm256_set1_ps(2.5f);
  // r0 = d0 − 1.5 d1 − 2 d2 + 1.5 d3 + d4
  r[0] = _mm256_fmadd_ps(one5, _mm256_sub_ps(d[3], d[1]), _mm256_fnmadd_ps(two, d[2], _mm256_add_ps(d[0], d[4])));
  // r1 = −d1 + 0.5 d2 + 2.5 d3 + d4
  r[1] = _mm256_fmadd_ps(two5, d[3], _mm256_fmadd_ps(half, d[2], _mm256_sub_ps(d[4], d[1])));
  // r2 = d1 − 2.5 d2 + 0.5 d3 + d4
  r[2] = _mm256_fnmadd_ps(two5, d[2], _mm256_fmadd_ps(half, d[3], _mm256_add_ps(d[4], d[1])));
  // r3 = −2 d1 − d2 + 2 d3 + d4
  r[3] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[3], d[1]), _mm256_sub_ps(d[4], d[2]));
  // r4 = 0.5 d1 − d2 − 0.5 d3 + d4
  r[4] = _mm256_fmadd_ps(half, _mm256_sub_ps(d[1], d[3]), _mm256_sub_ps(d[4], d[2]));
  // r5 = d1 − 1.5 d2 − 2 d3 + 1.5 d4 + d5
  r[5] = _mm256_fmadd_ps(one5, _mm256_sub_ps(d[4], d[2]), _mm256_fnmadd_ps(two, d[3], _mm256_add_ps(d[1], d[5])));
}

// Aᵀ: six transformed values to four outputs (the powers of each point).
TABSIGHT_F43_TARGET TABSIGHT_F43_INLINE void OutputRows(const __m256 m[6], __m256 o[4]) {
  const __m256 half = _mm256_set1_ps(0.5f), quarter = _mm256_set1_ps(0.25f), eighth = _mm256_set1_ps(0.125f),
               two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), eight = _mm256_set1_ps(8.f);
  const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), _mm256_add_ps(m[3], m[4]));
  o[1] = _mm256_fnmadd_ps(two, m[4], _mm256_fmadd_ps(half, m[3], d12));
  o[2] = _mm256_fmadd_ps(four, m[4], _mm256_fmadd_ps(quarter, m[3], s12));
  o[3] = _mm256_add_ps(_mm256_fnmadd_ps(eight, m[4], _mm256_fmadd_ps(eighth, m[3], d12)), m[5]);
}

// c[6 × 16] = a[6 × kc] · b[kc × 16]: a's rows `lda` apart, b's rows `ldb`
// apart, c's rows `ldc` apart. Twelve accumulators, two b vectors and one
// broadcast fill fifteen of the sixteen registers.
TABSIGHT_F43_TARGET TABSIGHT_F43_INLINE void Kernel6x16(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                       float* c, int64_t ldc, int64_t kc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* a3 = a + 3 * lda;
  const float* a4 = a + 4 * lda;
  const float* a5 = a + 5 * lda;
  for (int64_t q = 0; q < kc; ++q, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 s = _mm256_broadcast_ss(a0 + q);
    c00 = _mm256_fmadd_ps(s, b0, c00);
    c01 = _mm256_fmadd_ps(s, b1, c01);
    s = _mm256_broadcast_ss(a1 + q);
    c10 = _mm256_fmadd_ps(s, b0, c10);
    c11 = _mm256_fmadd_ps(s, b1, c11);
    s = _mm256_broadcast_ss(a2 + q);
    c20 = _mm256_fmadd_ps(s, b0, c20);
    c21 = _mm256_fmadd_ps(s, b1, c21);
    s = _mm256_broadcast_ss(a3 + q);
    c30 = _mm256_fmadd_ps(s, b0, c30);
    c31 = _mm256_fmadd_ps(s, b1, c31);
    s = _mm256_broadcast_ss(a4 + q);
    c40 = _mm256_fmadd_ps(s, b0, c40);
    c41 = _mm256_fmadd_ps(s, b1, c41);
    s = _mm256_broadcast_ss(a5 + q);
    c50 = _mm256_fmadd_ps(s, b0, c50);
    c51 = _mm256_fmadd_ps(s, b1, c51);
  }
  _mm256_storeu_ps(c, c00);
  _mm256_storeu_ps(c + 8, c01);
  c += ldc;
  _mm256_storeu_ps(c, c10);
  _mm256_storeu_ps(c + 8, c11);
  c += ldc;
  _mm256_storeu_ps(c, c20);
  _mm256_storeu_ps(c + 8, c21);
  c += ldc;
  _mm256_storeu_ps(c, c30);
  _mm256_storeu_ps(c + 8, c31);
  c += ldc;
  _mm256_storeu_ps(c, c40);
  _mm256_storeu_ps(c + 8, c41);
  c += ldc;
  _mm256_storeu_ps(c, c50);
  _mm256_storeu_ps(c + 8, c51);
}

// A convolution's geometry: x [N, H, W, C] and y [N, H, W, K] (channels
// innermost), th × tw tiles of 4×4 outputs per image, T tiles in all.
struct Geometry {
  int64_t n, h, w, c, k, th, tw, tiles;
};

// Tiles [first, first + count) of y from x: V [36][rows][C] and M
// [36][rows][K] are this thread's scratch, rows ≥ count and a multiple of 6
// (the rows past count are zero and their products unused).
TABSIGHT_F43_TARGET void Block(const Geometry& g, const float* x, const float* u, float* y, float* v, float* m,
                               int64_t rows, int64_t first, int64_t count) {
  const int64_t C = g.c, K = g.k;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    if (r >= count) {
      for (int p = 0; p < 36; ++p) std::fill_n(v + (p * rows + r) * C, C, 0.f);
      continue;
    }
    const int64_t t = first + r, image = t / (g.th * g.tw), within = t % (g.th * g.tw);
    const int64_t y0 = 4 * (within / g.tw) - 1, x0 = 4 * (within % g.tw) - 1;
    for (int64_t c = 0; c < C; c += 8) {
      __m256 cols[6][6];  // Bᵀ d: [row of the transform][column of the patch]
      for (int j = 0; j < 6; ++j) {
        const int64_t xx = x0 + j;
        __m256 d[6], out[6];
        for (int i = 0; i < 6; ++i) {
          const int64_t yy = y0 + i;
          d[i] = yy >= 0 && yy < g.h && xx >= 0 && xx < g.w ? _mm256_loadu_ps(x + ((image * g.h + yy) * g.w + xx) * C + c)
                                                             : zero;
        }
        InputRows(d, out);
        for (int i = 0; i < 6; ++i) cols[i][j] = out[i];
      }
      for (int i = 0; i < 6; ++i) {
        __m256 out[6];
        InputRows(cols[i], out);
        for (int j = 0; j < 6; ++j) _mm256_storeu_ps(v + ((i * 6 + j) * rows + r) * C + c, out[j]);
      }
    }
  }
  for (int p = 0; p < 36; ++p) {
    const float* vp = v + p * rows * C;
    const float* up = u + p * C * K;
    float* mp = m + p * rows * K;
    for (int64_t k = 0; k < K; k += 16) {
      for (int64_t r = 0; r < rows; r += 6) Kernel6x16(vp + r * C, C, up + k, K, mp + r * K + k, K, C);
    }
  }
  for (int64_t r = 0; r < count; ++r) {
    const int64_t t = first + r, image = t / (g.th * g.tw), within = t % (g.th * g.tw);
    const int64_t y0 = 4 * (within / g.tw), x0 = 4 * (within % g.tw);
    for (int64_t k = 0; k < K; k += 8) {
      __m256 rows4[4][6];  // Aᵀ M: [output row][column of the tile]
      for (int j = 0; j < 6; ++j) {
        __m256 in[6], out[4];
        for (int i = 0; i < 6; ++i) in[i] = _mm256_loadu_ps(m + ((i * 6 + j) * rows + r) * K + k);
        OutputRows(in, out);
        for (int i = 0; i < 4; ++i) rows4[i][j] = out[i];
      }
      for (int i = 0; i < 4 && y0 + i < g.h; ++i) {
        __m256 out[4];
        OutputRows(rows4[i], out);
        for (int j = 0; j < 4 && x0 + j < g.w; ++j) {
          _mm256_storeu_ps(y + ((image * g.h + y0 + i) * g.w + x0 + j) * K + k, out[j]);
        }
      }
    }
  }
}

// U [36][P] from w [3][3][P] (P = input × output channels, outputs
// innermost) for q in [begin, end): U = G w Gᵀ per (input, output) pair,
// in two passes of G over a chunk of pairs, so every loop runs over
// contiguous pairs and vectorises.
constexpr float kG[6][3] = {{1.f, 0.f, 0.f},
                            {1.f / 3, 1.f / 3, 1.f / 3},
                            {-1.f / 3, 1.f / 3, -1.f / 3},
                            {-16.f / 15, -8.f / 15, -4.f / 15},
                            {1.f / 15, -2.f / 15, 4.f / 15},
                            {0.f, 0.f, 1.f}};

TABSIGHT_F43_TARGET void WeightPairs(const float* w, float* u, int64_t pairs, int64_t begin, int64_t end) {
  constexpr int64_t kChunk = 256;
  float rows[3][kChunk];
  for (int64_t q0 = begin; q0 < end; q0 += kChunk) {
    const int64_t n = std::min(kChunk, end - q0);
    for (int pi = 0; pi < 6; ++pi) {
      for (int j = 0; j < 3; ++j) {
        const float* w0 = w + (0 * 3 + j) * pairs + q0;
        const float* w1 = w + (1 * 3 + j) * pairs + q0;
        const float* w2 = w + (2 * 3 + j) * pairs + q0;
        const float a = kG[pi][0], b = kG[pi][1], c = kG[pi][2];
        for (int64_t q = 0; q < n; ++q) rows[j][q] = a * w0[q] + b * w1[q] + c * w2[q];
      }
      for (int pj = 0; pj < 6; ++pj) {
        float* out = u + (pi * 6 + pj) * pairs + q0;
        const float a = kG[pj][0], b = kG[pj][1], c = kG[pj][2];
        for (int64_t q = 0; q < n; ++q) out[q] = a * rows[0][q] + b * rows[1][q] + c * rows[2][q];
      }
    }
  }
}

// U [36, I, O] from taps [3, 3, I, O].
torch::Tensor TransformTaps(const torch::Tensor& taps) {
  const int64_t in = taps.size(2), out = taps.size(3), pairs = in * out;
  auto u = torch::empty({36, in, out}, taps.options());
  const float* w = taps.data_ptr<float>();
  float* up = u.data_ptr<float>();
  at::parallel_for(0, pairs, 4096, [&](int64_t begin, int64_t end) { WeightPairs(w, up, pairs, begin, end); });
  return u;
}

void CheckWeight(const torch::Tensor& weight) {
  if (!weight.defined() || weight.dim() != 4 || weight.size(2) != 3 || weight.size(3) != 3 ||
      weight.scalar_type() != torch::kFloat32 || !weight.device().is_cpu() || weight.size(0) % 16 != 0 ||
      weight.size(1) % 16 != 0) {
    Fail(ErrorCode::kShape, "Expected a float32 CPU weight [K, C, 3, 3] with K and C multiples of 16 for the Winograd "
                            "convolution, but received " +
                                (weight.defined() ? c10::str(weight.sizes()) : std::string("an undefined tensor")));
  }
}

}  // namespace
#endif  // TABSIGHT_F43

bool Supported() {
#ifdef TABSIGHT_F43
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
#else
  return false;
#endif
}

torch::Tensor TransformWeights(const torch::Tensor& weight) {
#ifdef TABSIGHT_F43
  CheckWeight(weight);
  torch::NoGradGuard no_grad;
  return TransformTaps(weight.permute({2, 3, 1, 0}).contiguous());
#else
  Fail(ErrorCode::kConfig, "tabsight's Winograd kernels need an x86-64 build");
#endif
}

torch::Tensor TransformWeightsAdjoint(const torch::Tensor& weight) {
#ifdef TABSIGHT_F43
  CheckWeight(weight);
  torch::NoGradGuard no_grad;
  // w'[c][k][i][j] = w[k][c][2 − i][2 − j]; its taps [3, 3, K, C].
  return TransformTaps(weight.flip({2, 3}).permute({2, 3, 0, 1}).contiguous());
#else
  Fail(ErrorCode::kConfig, "tabsight's Winograd kernels need an x86-64 build");
#endif
}

torch::Tensor Convolve(const torch::Tensor& x_in, const torch::Tensor& u, at::MemoryFormat format) {
#ifdef TABSIGHT_F43
  if (!Supported()) Fail(ErrorCode::kConfig, "tabsight's Winograd kernels need a CPU with AVX2 and FMA");
  if (x_in.dim() != 4 || u.dim() != 3 || u.size(0) != 36 || x_in.size(1) != u.size(1) || u.size(1) % 16 != 0 ||
      u.size(2) % 16 != 0 || x_in.scalar_type() != torch::kFloat32 || u.scalar_type() != torch::kFloat32 ||
      !x_in.device().is_cpu() || !u.device().is_cpu() || !u.is_contiguous()) {
    Fail(ErrorCode::kShape, "Expected x [N, C, H, W] and transformed weights [36, C, K] (float32, CPU, C and K multiples "
                            "of 16) for the Winograd convolution, but received x " +
                                c10::str(x_in.sizes()) + " and weights " + c10::str(u.sizes()));
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), u.size(2), (x.size(2) + 3) / 4, (x.size(3) + 3) / 4, 0};
  g.tiles = g.n * g.th * g.tw;
  auto y = torch::empty({g.n, g.k, g.h, g.w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (g.tiles == 0) return y.contiguous(format);
  // Tiles per block: each block's transformed input, products and the 16
  // columns of U it reads at a time stay in the core's cache (measured at
  // ResNet-18's shapes: 12 tiles for up to 128 channels, 48 above), and
  // every thread gets a block.
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t share = ((g.tiles + threads - 1) / threads + 5) / 6 * 6;
  const int64_t rows = std::max<int64_t>(6, std::min<int64_t>(std::max(g.c, g.k) <= 128 ? 12 : 48, share));
  const int64_t blocks = (g.tiles + rows - 1) / rows;
  const float* xp = x.data_ptr<float>();
  const float* up = u.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::unique_ptr<float[]> v(new float[36 * rows * g.c]), m(new float[36 * rows * g.k]);
    for (int64_t b = b0; b < b1; ++b) {
      Block(g, xp, up, yp, v.get(), m.get(), rows, b * rows, std::min(rows, g.tiles - b * rows));
    }
  });
  return format == at::MemoryFormat::ChannelsLast ? y : y.contiguous(format);
#else
  Fail(ErrorCode::kConfig, "tabsight's Winograd kernels need an x86-64 build");
#endif
}

}  // namespace tabsight::models::f43
