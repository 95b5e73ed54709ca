#include "models/max_pool.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/env.h"
#include "common/error.h"

namespace tabsight::models {

// The plane loops are compiled for AVX-512, AVX2 and the baseline, and the
// loader picks one for the CPU (GCC's function multiversioning), as in
// models/fused_bn_relu.cc.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define TABSIGHT_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TABSIGHT_SIMD_CLONES
#endif

namespace {

// The stem's window: 3×3, stride 2, padding 1; the output size for an input
// size n (ceil_mode false).
constexpr int64_t kStride = 2;
inline int64_t OutSize(int64_t n) { return (n - 1) / kStride + 1; }

bool Qualifies(const torch::Tensor& x) {
  return x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous() &&
         x.size(2) > 0 && x.size(3) > 0;
}

// One output by ATen's scan: the window's in-bound positions in row-major
// order, starting from the first with −∞, taking a value that is larger or
// NaN. For the windows PoolPlane cannot decide: those holding a NaN, and
// those whose maximum is −∞.
void ScanWindow(const float* plane, int64_t h, int64_t w, int64_t oh, int64_t ow, float* value, uint8_t* offset) {
  const int64_t r0 = kStride * oh - 1, c0 = kStride * ow - 1;
  const int64_t dy0 = r0 < 0 ? 1 : 0, dx0 = c0 < 0 ? 1 : 0;
  float m = -std::numeric_limits<float>::infinity();
  uint8_t k = static_cast<uint8_t>(3 * dy0 + dx0);
  for (int64_t dy = dy0; dy < 3 && r0 + dy < h; ++dy) {
    for (int64_t dx = dx0; dx < 3 && c0 + dx < w; ++dx) {
      const float v = plane[(r0 + dy) * w + c0 + dx];
      if (v > m || std::isnan(v)) {
        m = v;
        k = static_cast<uint8_t>(3 * dy + dx);
      }
    }
  }
  *value = m;
  *offset = k;
}

// One plane (h × w in, oh_count × ow_count out). Each input row is split
// once into the window's left, centre and right columns of every output
// column, 2·ow − 1, 2·ow and 2·ow + 1 (in `cols`, three rows of ow_count per
// input row), with −∞ where a column falls in the padding; the padding rows
// are a row of −∞ (`ninf`). Every output is then the same nine contiguous
// loads, lane-parallel. Its positions are visited in reverse row-major
// order, taking a value that is at least as large: the result is the
// maximum at its first position in row-major order, which is what ATen's
// scan finds when no NaN is present. Where that maximum is −∞ (ATen then
// keeps the first in-bound position, which may not be position 0) or the
// window holds a NaN, the output is redone by ScanWindow.
TABSIGHT_SIMD_CLONES void PoolPlane(const float* __restrict__ plane, int64_t h, int64_t w, int64_t oh_count,
                                    int64_t ow_count, float* __restrict__ out, uint8_t* __restrict__ offsets,
                                    float* __restrict__ cols, const float* __restrict__ ninf,
                                    float* __restrict__ code, float* __restrict__ redo) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t right_end = w / 2;  // output columns whose 2·ow + 1 is in bounds
  for (int64_t r = 0; r < h; ++r) {
    const float* row = plane + r * w;
    float* left = cols + 3 * r * ow_count;
    float* centre = left + ow_count;
    float* right = centre + ow_count;
    left[0] = kNegInf;
    for (int64_t j = 1; j < ow_count; ++j) left[j] = row[2 * j - 1];
    for (int64_t j = 0; j < ow_count; ++j) centre[j] = row[2 * j];
    for (int64_t j = 0; j < right_end; ++j) right[j] = row[2 * j + 1];
    for (int64_t j = right_end; j < ow_count; ++j) right[j] = kNegInf;
  }
  for (int64_t oh = 0; oh < oh_count; ++oh) {
    const int64_t r0 = kStride * oh - 1;
    const float* top = r0 >= 0 ? cols + 3 * r0 * ow_count : ninf;
    const float* mid = cols + 3 * (r0 + 1) * ow_count;
    const float* bottom = r0 + 2 < h ? cols + 3 * (r0 + 2) * ow_count : ninf;
    // The −∞ row stands for all three columns of a padding row.
    const int64_t top_step = r0 >= 0 ? ow_count : 0, bottom_step = r0 + 2 < h ? ow_count : 0;
    float* orow = out + oh * ow_count;
    bool any_redo = false;
    for (int64_t ow = 0; ow < ow_count; ++ow) {
      const float v[9] = {top[ow],    top[top_step + ow],    top[2 * top_step + ow],
                          mid[ow],    mid[ow_count + ow],    mid[2 * ow_count + ow],
                          bottom[ow], bottom[bottom_step + ow], bottom[2 * bottom_step + ow]};
      float m = v[8], k = 8.0f;
      bool has_nan = v[8] != v[8];
      for (int d = 7; d >= 0; --d) {
        const bool t = v[d] >= m;
        m = t ? v[d] : m;
        k = t ? static_cast<float>(d) : k;
        has_nan |= v[d] != v[d];
      }
      orow[ow] = m;
      code[ow] = k;
      redo[ow] = (has_nan || m == kNegInf) ? 1.0f : 0.0f;
    }
    uint8_t* krow = offsets + oh * ow_count;
    for (int64_t ow = 0; ow < ow_count; ++ow) {
      krow[ow] = static_cast<uint8_t>(static_cast<int32_t>(code[ow]));
      any_redo |= redo[ow] != 0.0f;
    }
    if (any_redo) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        if (redo[ow] != 0.0f) ScanWindow(plane, h, w, oh, ow, orow + ow, krow + ow);
      }
    }
  }
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> MaxPoolStemForward(const torch::Tensor& x) {
  TORCH_CHECK(Qualifies(x), "MaxPoolStemForward: expected a contiguous 4-D float32 CPU tensor");
  const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh_count = OutSize(h), ow_count = OutSize(w);
  auto out = torch::empty({x.size(0), x.size(1), oh_count, ow_count}, x.options());
  auto offsets = torch::empty({x.size(0), x.size(1), oh_count, ow_count}, x.options().dtype(torch::kUInt8));
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  uint8_t* off = offsets.data_ptr<uint8_t>();
  const int64_t grain = std::max<int64_t>(1, 16384 / (h * w));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> cols(3 * h * ow_count), code(ow_count), redo(ow_count);
    const std::vector<float> ninf(ow_count, -std::numeric_limits<float>::infinity());
    for (int64_t p = begin; p < end; ++p) {
      PoolPlane(in + p * h * w, h, w, oh_count, ow_count, o + p * oh_count * ow_count, off + p * oh_count * ow_count,
                cols.data(), ninf.data(), code.data(), redo.data());
    }
  });
  return {out, offsets};
}

torch::Tensor MaxPoolStemBackward(const torch::Tensor& grad_output, const torch::Tensor& offsets, at::IntArrayRef sizes) {
  auto go = grad_output.contiguous();
  TORCH_CHECK(go.scalar_type() == torch::kFloat32 && go.device().is_cpu() && go.sizes() == offsets.sizes(),
              "MaxPoolStemBackward: expected a float32 CPU gradient of the output's shape");
  const int64_t planes = sizes[0] * sizes[1], h = sizes[2], w = sizes[3];
  const int64_t oh_count = go.size(2), ow_count = go.size(3);
  auto grad = torch::zeros(sizes, go.options());
  const float* g = go.data_ptr<float>();
  const uint8_t* off = offsets.data_ptr<uint8_t>();
  float* gi = grad.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 16384 / (h * w));
  int64_t step[9];
  for (int k = 0; k < 9; ++k) step[k] = (k / 3) * w + k % 3;
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* plane = gi + p * h * w;
      const float* pg = g + p * oh_count * ow_count;
      const uint8_t* pk = off + p * oh_count * ow_count;
      // In the outputs' row-major order, as ATen adds them. A window's
      // offset k is input element (2·oh − 1 + k / 3, 2·ow − 1 + k % 3).
      for (int64_t oh = 0; oh < oh_count; ++oh) {
        float* corner = plane + (kStride * oh - 1) * w - 1;
        for (int64_t ow = 0; ow < ow_count; ++ow) {
          const int64_t i = oh * ow_count + ow;
          corner[kStride * ow + step[pk[i]]] += pg[i];
        }
      }
    }
  });
  return grad;
}

namespace {

struct MaxPoolStemFunction : public torch::autograd::Function<MaxPoolStemFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto [out, offsets] = MaxPoolStemForward(x);
    ctx->save_for_backward({offsets});
    ctx->saved_data["sizes"] = x.sizes().vec();
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (torch::GradMode::is_enabled()) {
      Fail(ErrorCode::kTorch,
           "The stem's max-pool kernel has no double backward (create_graph); set TABSIGHT_STEM_MAXPOOL=0 to use "
           "LibTorch's max_pool2d");
    }
    const auto offsets = ctx->get_saved_variables()[0];
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    return {MaxPoolStemBackward(grad_outputs[0], offsets, sizes)};
  }
};

EnvSwitch& Switch() {
  static EnvSwitch s("TABSIGHT_STEM_MAXPOOL", true);
  return s;
}

}  // namespace

bool MaxPoolStemKernelEnabled() { return Switch().Enabled(); }

bool SetMaxPoolStemKernelEnabled(bool enabled) { return Switch().Set(enabled); }

torch::Tensor MaxPoolStem(const torch::Tensor& x) {
  if (!MaxPoolStemKernelEnabled() || !Qualifies(x)) return torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  return MaxPoolStemFunction::apply(x);
}

}  // namespace tabsight::models
