#include "models/fused_bn_relu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/env.h"
#include "common/error.h"
#include "common/layout.h"
#include "models/batch_norm.h"
#include "models/guided_relu.h"

// The element loops are compiled for AVX-512, AVX2 and the baseline, and the
// loader picks one for the CPU (GCC's function multiversioning). Built
// elsewhere, they are compiled once for the baseline.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define TABSIGHT_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TABSIGHT_SIMD_CLONES
#endif

namespace tabsight::models {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---- Element loops. channels_last: a block of `rows` rows of C values.
// NCHW: one channel's n planes of `hw` values, or a range of planes. ----

// s[c] += Σ (x − k[c]), q[c] += Σ (x − k[c])²: shifted sums, so that a large
// mean does not cancel the variance. Four rows at a time, so the per-channel
// sums are loaded and stored once per four rows (they are the loop's
// bottleneck, not the data).
TABSIGHT_SIMD_CLONES void StatsRows(const float* __restrict__ x, int64_t rows, int64_t C, const float* __restrict__ k,
                                    double* __restrict__ s, double* __restrict__ q) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* x0 = x + r * C;
    const float *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
    for (int64_t c = 0; c < C; ++c) {
      const double kc = k[c];
      const double d0 = x0[c] - kc, d1 = x1[c] - kc, d2 = x2[c] - kc, d3 = x3[c] - kc;
      s[c] += (d0 + d1) + (d2 + d3);
      q[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
    }
  }
  for (; r < rows; ++r) {
    const float* xr = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const double d = static_cast<double>(xr[c]) - static_cast<double>(k[c]);
      s[c] += d;
      q[c] += d * d;
    }
  }
}

// One channel of NCHW: n planes of hw values, `stride` apart.
TABSIGHT_SIMD_CLONES void StatsChannel(const float* __restrict__ x, int64_t n, int64_t stride, int64_t hw, float k,
                                       double* s, double* q) {
  double ss = 0, qq = 0;
  for (int64_t p = 0; p < n; ++p) {
    const float* xp = x + p * stride;
#pragma omp simd reduction(+ : ss, qq)
    for (int64_t i = 0; i < hw; ++i) {
      const double d = static_cast<double>(xp[i]) - static_cast<double>(k);
      ss += d;
      qq += d * d;
    }
  }
  *s = ss;
  *q = qq;
}

// y = max(a·x + b [+ r], 0), with a and b per channel.
TABSIGHT_SIMD_CLONES void ApplyRows(const float* __restrict__ x, const float* __restrict__ res, float* __restrict__ y,
                                    int64_t rows, int64_t C, const float* __restrict__ a,
                                    const float* __restrict__ b) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    if (res != nullptr) {
      const float* rr = res + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const float v = (a[c] * xr[c] + b[c]) + rr[c];
        yr[c] = v < 0.f ? 0.f : v;
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        const float v = a[c] * xr[c] + b[c];
        yr[c] = v < 0.f ? 0.f : v;
      }
    }
  }
}

// NCHW planes [p0, p1) of hw values; plane p has channel p % C.
TABSIGHT_SIMD_CLONES void ApplyPlanes(const float* __restrict__ x, const float* __restrict__ res,
                                      float* __restrict__ y, int64_t p0, int64_t p1, int64_t hw, int64_t C,
                                      const float* __restrict__ a, const float* __restrict__ b) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t o = p * hw;
    const float ac = a[p % C], bc = b[p % C];
    if (res != nullptr) {
      for (int64_t i = 0; i < hw; ++i) {
        const float v = (ac * x[o + i] + bc) + res[o + i];
        y[o + i] = v < 0.f ? 0.f : v;
      }
    } else {
      for (int64_t i = 0; i < hw; ++i) {
        const float v = ac * x[o + i] + bc;
        y[o + i] = v < 0.f ? 0.f : v;
      }
    }
  }
}

// With g = dy where y > 0 (else 0): s[c] += Σ g, q[c] += Σ g·(x − mean[c]).
// g goes through a small buffer: GCC vectorizes the select and the float64
// sums as two loops, but not as one.
constexpr int64_t kChunk = 256;

TABSIGHT_SIMD_CLONES void GradSumsRows(const float* __restrict__ x, const float* __restrict__ y,
                                       const float* __restrict__ dy, int64_t rows, int64_t C,
                                       const float* __restrict__ mean, double* __restrict__ s,
                                       double* __restrict__ q) {
  // Four rows at a time, as in StatsRows.
  constexpr int64_t kRows = 4;
  float g[kRows][kChunk];
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const int64_t nr = std::min(kRows, rows - r0);
    for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
      const int64_t len = std::min(kChunk, C - c0);
      for (int64_t i = 0; i < kRows; ++i) {
        const int64_t o = (r0 + i) * C + c0;
        if (i < nr) {
          for (int64_t j = 0; j < len; ++j) g[i][j] = y[o + j] > 0.f ? dy[o + j] : 0.f;
        } else {
          for (int64_t j = 0; j < len; ++j) g[i][j] = 0.f;
        }
      }
      // Rows past the end have g = 0; their x is read from row r0 instead.
      const float* x0 = x + r0 * C + c0;
      const float* x1 = x + (r0 + (nr > 1 ? 1 : 0)) * C + c0;
      const float* x2 = x + (r0 + (nr > 2 ? 2 : 0)) * C + c0;
      const float* x3 = x + (r0 + (nr > 3 ? 3 : 0)) * C + c0;
      for (int64_t j = 0; j < len; ++j) {
        const double m = mean[c0 + j];
        const double g0 = g[0][j], g1 = g[1][j], g2 = g[2][j], g3 = g[3][j];
        s[c0 + j] += (g0 + g1) + (g2 + g3);
        q[c0 + j] += (g0 * (x0[j] - m) + g1 * (x1[j] - m)) + (g2 * (x2[j] - m) + g3 * (x3[j] - m));
      }
    }
  }
}

TABSIGHT_SIMD_CLONES void GradSumsChannel(const float* __restrict__ x, const float* __restrict__ y,
                                          const float* __restrict__ dy, int64_t n, int64_t stride, int64_t hw,
                                          float mean, double* s, double* q) {
  float g[kChunk];
  double ss = 0, qq = 0;
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t i0 = 0; i0 < hw; i0 += kChunk) {
      const int64_t o = p * stride + i0, len = std::min(kChunk, hw - i0);
      for (int64_t j = 0; j < len; ++j) g[j] = y[o + j] > 0.f ? dy[o + j] : 0.f;
#pragma omp simd reduction(+ : ss, qq)
      for (int64_t j = 0; j < len; ++j) {
        const double gd = g[j];
        ss += gd;
        qq += gd * (static_cast<double>(x[o + j]) - static_cast<double>(mean));
      }
    }
  }
  *s = ss;
  *q = qq;
}

// dx = A·g − P·(x − mean) − C0 and dr = g (when dr is not null), per channel
// A = weight·invstd, P = A·invstd²·mean(g·(x − mean)), C0 = A·mean(g).
TABSIGHT_SIMD_CLONES void GradInputRows(const float* __restrict__ x, const float* __restrict__ y,
                                        const float* __restrict__ dy, float* __restrict__ dx,
                                        float* __restrict__ dr, int64_t rows, int64_t C,
                                        const float* __restrict__ mean, const float* __restrict__ A,
                                        const float* __restrict__ P, const float* __restrict__ C0) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float g = y[o + c] > 0.f ? dy[o + c] : 0.f;
      dx[o + c] = A[c] * g - P[c] * (x[o + c] - mean[c]) - C0[c];
    }
    if (dr != nullptr) {
      for (int64_t c = 0; c < C; ++c) dr[o + c] = y[o + c] > 0.f ? dy[o + c] : 0.f;
    }
  }
}

TABSIGHT_SIMD_CLONES void GradInputPlanes(const float* __restrict__ x, const float* __restrict__ y,
                                          const float* __restrict__ dy, float* __restrict__ dx,
                                          float* __restrict__ dr, int64_t p0, int64_t p1, int64_t hw, int64_t C,
                                          const float* __restrict__ mean, const float* __restrict__ A,
                                          const float* __restrict__ P, const float* __restrict__ C0) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t o = p * hw, c = p % C;
    const float m = mean[c], ac = A[c], pc = P[c], c0 = C0[c];
    for (int64_t i = 0; i < hw; ++i) {
      const float g = y[o + i] > 0.f ? dy[o + i] : 0.f;
      dx[o + i] = ac * g - pc * (x[o + i] - m) - c0;
    }
    if (dr != nullptr) {
      for (int64_t i = 0; i < hw; ++i) dr[o + i] = y[o + i] > 0.f ? dy[o + i] : 0.f;
    }
  }
}

// ---- Drivers over the whole tensor ----

struct Shape {
  bool channels_last;
  int64_t n, c, hw;
  int64_t Rows() const { return n * hw; }  // values per channel
};

Shape ShapeOf(const torch::Tensor& x) {
  return {LayoutOf(x) == at::MemoryFormat::ChannelsLast, x.size(0), x.size(1), x.size(2) * x.size(3)};
}

// Per-channel sums over the batch. `rows_fn(r0, r1, s, q)` adds rows [r0, r1)
// (channels_last); `channel_fn(c, s, q)` sets one channel's sums (NCHW). The
// channels_last split is fixed by the thread count, and the blocks' sums are
// added in block order, so a result does not depend on scheduling.
template <typename RowsFn, typename ChannelFn>
void ChannelSums(const Shape& sh, std::vector<double>& s, std::vector<double>& q, RowsFn rows_fn, ChannelFn channel_fn) {
  const int64_t C = sh.c;
  s.assign(static_cast<size_t>(C), 0.0);
  q.assign(static_cast<size_t>(C), 0.0);
  if (sh.channels_last) {
    const int64_t rows = sh.Rows();
    const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / 64));
    std::vector<double> part(static_cast<size_t>(2 * blocks * C), 0.0);
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        double* ps = part.data() + 2 * t * C;
        rows_fn(rows * t / blocks, rows * (t + 1) / blocks, ps, ps + C);
      }
    });
    for (int64_t t = 0; t < blocks; ++t) {
      const double* ps = part.data() + 2 * t * C;
      for (int64_t c = 0; c < C; ++c) {
        s[c] += ps[c];
        q[c] += ps[C + c];
      }
    }
  } else {
    at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) channel_fn(c, &s[c], &q[c]);
    });
  }
}

// `rows_fn(r0, r1)` over blocks of rows (channels_last) or `planes_fn(p0, p1)`
// over blocks of the n·C planes (NCHW), about 16k values per task.
template <typename RowsFn, typename PlanesFn>
void ForEachBlock(const Shape& sh, RowsFn rows_fn, PlanesFn planes_fn) {
  constexpr int64_t kGrain = 1 << 14;
  if (sh.channels_last) {
    at::parallel_for(0, sh.Rows(), std::max<int64_t>(1, kGrain / sh.c), rows_fn);
  } else {
    at::parallel_for(0, sh.n * sh.c, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, sh.hw)), planes_fn);
  }
}

torch::Tensor FloatVector(const std::vector<float>& v) {
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kFloat32).clone();
}

struct FusedBnReluFunction : public torch::autograd::Function<FusedBnReluFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& residual_in,
                               const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor running_mean,
                               torch::Tensor running_var, double factor, double eps) {
    const auto format = LayoutOf(x_in);
    const torch::Tensor x = x_in.contiguous(format);
    // No residual arrives as an empty tensor (LibTorch 1.13's Function::apply
    // cannot take an undefined one).
    const torch::Tensor res = residual_in.numel() > 0 ? residual_in.contiguous(format) : torch::Tensor();
    const Shape sh = ShapeOf(x);
    const int64_t C = sh.c;
    const double count = static_cast<double>(sh.Rows());
    const float* xp = x.data_ptr<float>();

    // Shift each channel by its first value.
    std::vector<float> shift(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) shift[c] = sh.channels_last ? xp[c] : xp[c * sh.hw];
    std::vector<double> s, q;
    ChannelSums(
        sh, s, q, [&](int64_t r0, int64_t r1, double* ps, double* pq) { StatsRows(xp + r0 * C, r1 - r0, C, shift.data(), ps, pq); },
        [&](int64_t c, double* ps, double* pq) { StatsChannel(xp + c * sh.hw, sh.n, C * sh.hw, sh.hw, shift[c], ps, pq); });

    std::vector<float> mean(static_cast<size_t>(C)), invstd(static_cast<size_t>(C)), a(static_cast<size_t>(C)),
        b(static_cast<size_t>(C));
    const auto w = weight.contiguous();
    const auto bi = bias.contiguous();
    const float* wp = w.data_ptr<float>();
    const float* bp = bi.data_ptr<float>();
    float* rm = running_mean.data_ptr<float>();
    float* rv = running_var.data_ptr<float>();
    for (int64_t c = 0; c < C; ++c) {
      const double d_mean = s[c] / count;
      const double m = shift[c] + d_mean;
      const double var = std::max(0.0, q[c] / count - d_mean * d_mean);
      const double is = 1.0 / std::sqrt(var + eps);
      mean[c] = static_cast<float>(m);
      invstd[c] = static_cast<float>(is);
      const double ac = wp[c] * is;
      a[c] = static_cast<float>(ac);
      b[c] = static_cast<float>(bp[c] - m * ac);
      // Running statistics as torch updates them, the variance unbiased.
      rm[c] = static_cast<float>((1 - factor) * rm[c] + factor * m);
      rv[c] = static_cast<float>((1 - factor) * rv[c] + factor * var * count / (count - 1));
    }

    auto y = torch::empty(x.sizes(), x.options().memory_format(format));
    float* yp = y.data_ptr<float>();
    const float* rp = res.defined() ? res.data_ptr<float>() : nullptr;
    ForEachBlock(
        sh,
        [&](int64_t r0, int64_t r1) {
          ApplyRows(xp + r0 * C, rp ? rp + r0 * C : nullptr, yp + r0 * C, r1 - r0, C, a.data(), b.data());
        },
        [&](int64_t p0, int64_t p1) { ApplyPlanes(xp, rp, yp, p0, p1, sh.hw, C, a.data(), b.data()); });

    ctx->save_for_backward({x, y, w, FloatVector(mean), FloatVector(invstd)});
    ctx->saved_data["residual"] = res.defined();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (torch::GradMode::is_enabled()) {
      Fail(ErrorCode::kTorch,
           "The fused batch norm + ReLU has no double backward (create_graph); set TABSIGHT_FUSED_BN_RELU=0 to use "
           "LibTorch's ops");
    }
    const bool has_res = ctx->saved_data["residual"].toBool();
    auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& y = saved[1];
    const torch::Tensor& w = saved[2];
    const torch::Tensor& mean_t = saved[3];
    const torch::Tensor& invstd_t = saved[4];
    variable_list out(8);
    if (!grads[0].defined()) return out;
    const auto format = LayoutOf(x);
    const torch::Tensor dy = grads[0].contiguous(format);
    const Shape sh = ShapeOf(x);
    const int64_t C = sh.c;
    const double count = static_cast<double>(sh.Rows());
    const float* xp = x.data_ptr<float>();
    const float* yp = y.data_ptr<float>();
    const float* gp = dy.data_ptr<float>();
    const float* mp = mean_t.data_ptr<float>();
    const float* ip = invstd_t.data_ptr<float>();
    const float* wp = w.data_ptr<float>();

    std::vector<double> s, q;
    ChannelSums(
        sh, s, q,
        [&](int64_t r0, int64_t r1, double* ps, double* pq) {
          GradSumsRows(xp + r0 * C, yp + r0 * C, gp + r0 * C, r1 - r0, C, mp, ps, pq);
        },
        [&](int64_t c, double* ps, double* pq) {
          const int64_t o = c * sh.hw;
          GradSumsChannel(xp + o, yp + o, gp + o, sh.n, C * sh.hw, sh.hw, mp[c], ps, pq);
        });

    std::vector<float> dweight(static_cast<size_t>(C)), dbias(static_cast<size_t>(C)), A(static_cast<size_t>(C)),
        P(static_cast<size_t>(C)), C0(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) {
      const double is = ip[c];
      const double ac = wp[c] * is;
      dweight[c] = static_cast<float>(q[c] * is);
      dbias[c] = static_cast<float>(s[c]);
      A[c] = static_cast<float>(ac);
      P[c] = static_cast<float>(ac * is * is * q[c] / count);
      C0[c] = static_cast<float>(ac * s[c] / count);
    }

    const bool need_dx = ctx->needs_input_grad(0);
    const bool need_dr = has_res && ctx->needs_input_grad(1);
    if (need_dx || need_dr) {
      auto dx = torch::empty(x.sizes(), x.options().memory_format(format));
      torch::Tensor dr = need_dr ? torch::empty(x.sizes(), x.options().memory_format(format)) : torch::Tensor();
      float* dxp = dx.data_ptr<float>();
      float* drp = need_dr ? dr.data_ptr<float>() : nullptr;
      ForEachBlock(
          sh,
          [&](int64_t r0, int64_t r1) {
            const int64_t o = r0 * C;
            GradInputRows(xp + o, yp + o, gp + o, dxp + o, drp ? drp + o : nullptr, r1 - r0, C, mp, A.data(), P.data(),
                          C0.data());
          },
          [&](int64_t p0, int64_t p1) {
            GradInputPlanes(xp, yp, gp, dxp, drp, p0, p1, sh.hw, C, mp, A.data(), P.data(), C0.data());
          });
      if (need_dx) out[0] = dx;
      out[1] = dr;
    }
    if (ctx->needs_input_grad(2)) out[2] = FloatVector(dweight);
    if (ctx->needs_input_grad(3)) out[3] = FloatVector(dbias);
    return out;
  }
};

bool IsCpuFloat(const torch::Tensor& t) {
  return t.defined() && t.layout() == torch::kStrided && t.device().is_cpu() && t.scalar_type() == torch::kFloat32;
}

bool IsChannelVector(const torch::Tensor& t, int64_t c) { return IsCpuFloat(t) && t.dim() == 1 && t.size(0) == c; }

// Whether x (and the residual) can take the fused node with these parameters.
bool Fusable(const torch::Tensor& x, const torch::Tensor& residual, const torch::Tensor& weight,
             const torch::Tensor& bias, const torch::Tensor& running_mean, const torch::Tensor& running_var) {
  if (!IsCpuFloat(x) || x.dim() != 4 || x.numel() == 0 || x.numel() / x.size(1) < 2) return false;
  const int64_t c = x.size(1);
  if (!IsChannelVector(weight, c) || !IsChannelVector(bias, c)) return false;
  if (!IsChannelVector(running_mean, c) || !IsChannelVector(running_var, c)) return false;
  if (!running_mean.is_contiguous() || !running_var.is_contiguous()) return false;
  return !residual.defined() || (IsCpuFloat(residual) && residual.sizes() == x.sizes());
}

torch::Tensor ResidualArg(const torch::Tensor& x, const torch::Tensor& residual) {
  return residual.defined() ? residual : torch::empty({0}, x.options());
}

EnvSwitch& Switch() {
  static EnvSwitch s("TABSIGHT_FUSED_BN_RELU", true);
  return s;
}

}  // namespace

bool FusedBatchNormReluEnabled() { return Switch().Enabled(); }

bool SetFusedBatchNormReluEnabled(bool enabled) { return Switch().Set(enabled); }

torch::Tensor FusedBatchNormRelu(const torch::Tensor& x, const torch::Tensor& residual, const torch::Tensor& weight,
                                 const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                                 double factor, double eps) {
  if (!Fusable(x, residual, weight, bias, running_mean, running_var)) {
    Fail(ErrorCode::kShape,
         "Expected float32 CPU tensors for the fused batch norm + ReLU: x [N, C, H, W] with more than 1 value per "
         "channel, weight, bias and running statistics [C], residual like x");
  }
  return FusedBnReluFunction::apply(x, ResidualArg(x, residual), weight, bias, running_mean, running_var, factor, eps);
}

torch::Tensor BatchNormRelu(torch::nn::BatchNorm2d& bn, torch::nn::ReLU& relu, const torch::Tensor& x,
                            const torch::Tensor& residual) {
  auto& m = *bn;
  const bool fused = FusedBatchNormReluEnabled() && CurrentBatchNormOverride() == nullptr && !GuidedReluActive() &&
                     m.is_training() && m.options.affine() && m.options.track_running_stats() &&
                     m.num_batches_tracked.defined() &&
                     Fusable(x, residual, m.weight, m.bias, m.running_mean, m.running_var);
  if (!fused) {
    auto out = BatchNorm(bn, x);
    if (residual.defined()) out = out + residual;
    return Relu(relu, out);
  }
  // torch's BatchNorm: count the batch, then momentum or, without one, the
  // cumulative average's factor.
  double factor = 0;
  {
    torch::NoGradGuard no_grad;
    m.num_batches_tracked += 1;
    factor = m.options.momentum().has_value() ? *m.options.momentum()
                                              : 1.0 / m.num_batches_tracked.item<double>();
  }
  return FusedBnReluFunction::apply(x, ResidualArg(x, residual), m.weight, m.bias, m.running_mean, m.running_var,
                                    factor, m.options.eps());
}

}  // namespace tabsight::models
