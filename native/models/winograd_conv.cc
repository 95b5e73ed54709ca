#include "models/winograd_conv.h"

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <variant>

#include "common/env.h"
#include "common/error.h"
#include "common/layout.h"
#include "models/winograd_f43.h"

#ifdef TABSIGHT_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#if DNNL_VERSION_MAJOR != 2
// oneDNN 3.x changed the primitive-descriptor API and dropped the CPU
// Winograd kernels; cmake/OneDnn.cmake defines TABSIGHT_WITH_DNNL only for 2.x.
#error "TABSIGHT_WITH_DNNL needs oneDNN 2.x"
#endif
#endif

namespace tabsight::models {

namespace {

EnvSwitch& Switch() {
  static EnvSwitch s("TABSIGHT_WINOGRAD", true);
  return s;
}

std::atomic<uint64_t> calls{0};

bool IsCpuFloat4d(const torch::Tensor& t) {
  return t.defined() && t.layout() == torch::kStrided && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 &&
         t.dim() == 4;
}

// Shapes the Winograd node takes: x [N, C, H, W], weight [O, C, 3, 3], with
// C and O multiples of oneDNN's 16-channel blocks.
bool Qualifies(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!IsCpuFloat4d(x) || !IsCpuFloat4d(weight) || x.numel() == 0) return false;
  const int64_t c = x.size(1), o = weight.size(0);
  return weight.size(1) == c && weight.size(2) == 3 && weight.size(3) == 3 && c % 16 == 0 && o % 16 == 0;
}

// Where Convolve and FoldedConv3x3 take the node: both spatial sides at
// least 4, the output tile of both kernels. On a smaller map the tile is
// mostly padding and saves no multiplications: at ResNet-18's 2×2 maps (64 px
// images, batch 64) oneDNN's forward and backward ran 0.62–0.71× LibTorch's
// speed, against 1.23–1.57× on 4×4 to 16×16 maps
// (benchmarks/support/winograd_ops.js --size 64). WinogradConv3x3 itself
// takes any size.
bool WorthTiling(const torch::Tensor& x) { return x.size(2) >= 4 && x.size(3) >= 4; }

// Both kernels' backward passes run outside autograd, so their results
// cannot be differentiated again (create_graph).
void RefuseDoubleBackward() {
  if (torch::GradMode::is_enabled()) {
    Fail(ErrorCode::kTorch,
         "The Winograd convolution has no double backward (create_graph); set TABSIGHT_WINOGRAD=0 to use "
         "LibTorch's convolution");
  }
}

#ifdef TABSIGHT_WITH_DNNL

using dnnl::memory;
using Dims = memory::dims;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The three primitives of one shape. Their scratchpads are the caller's
// (scratchpad_mode::user), so one set can run on several threads at once.
struct Primitives {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data::primitive_desc data_pd;
  dnnl::convolution_backward_data data;
  dnnl::convolution_backward_weights::primitive_desc weights_pd;
  dnnl::convolution_backward_weights weights;
};

using Key = std::array<int64_t, 5>;  // N, C, O, H, W

// nullptr when oneDNN has no Winograd kernel for this shape on this CPU.
std::shared_ptr<const Primitives> Create(const Key& k) {
  const Dims src{k[0], k[1], k[3], k[4]}, wei{k[2], k[1], 3, 3}, dst{k[0], k[2], k[3], k[4]};
  const Dims stride{1, 1}, pad{1, 1};
  const auto f32 = memory::data_type::f32;
  // Winograd reads and writes activations in 16-channel blocks; the weights
  // take whatever transformed layout it asks for.
  const memory::desc src_md(src, f32, memory::format_tag::nChw16c);
  const memory::desc dst_md(dst, f32, memory::format_tag::nChw16c);
  const memory::desc wei_md(wei, f32, memory::format_tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto alg = dnnl::algorithm::convolution_winograd;
  try {
    auto p = std::make_shared<Primitives>();
    p->fwd_pd = dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_md, wei_md, dst_md, stride, pad, pad),
        attr, Engine());
    p->fwd = dnnl::convolution_forward(p->fwd_pd);
    p->data_pd = dnnl::convolution_backward_data::primitive_desc(
        dnnl::convolution_backward_data::desc(alg, src_md, wei_md, dst_md, stride, pad, pad), attr, Engine(), p->fwd_pd);
    p->data = dnnl::convolution_backward_data(p->data_pd);
    p->weights_pd = dnnl::convolution_backward_weights::primitive_desc(
        dnnl::convolution_backward_weights::desc(alg, src_md, wei_md, dst_md, stride, pad, pad), attr, Engine(),
        p->fwd_pd);
    p->weights = dnnl::convolution_backward_weights(p->weights_pd);
    return p;
  } catch (const dnnl::error&) {
    return nullptr;
  }
}

std::shared_ptr<const Primitives> PrimitivesFor(const Key& k) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<const Primitives>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it == cache.end()) it = cache.emplace(k, Create(k)).first;
  return it->second;
}

Key KeyOf(const torch::Tensor& x, const torch::Tensor& weight) {
  return {x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3)};
}

// A oneDNN view of a dense ATen tensor, with its strides.
memory View(const torch::Tensor& t) {
  const Dims dims(t.sizes().begin(), t.sizes().end());
  const Dims strides(t.strides().begin(), t.strides().end());
  return memory(memory::desc(dims, memory::data_type::f32, strides), Engine(), t.data_ptr());
}

// Memory of layout `md` backed by an ATen buffer, so the CPU caching
// allocator serves it; *owner keeps the buffer alive.
memory Buffer(const memory::desc& md, torch::Tensor* owner) {
  *owner = torch::empty({static_cast<int64_t>(md.get_size())}, torch::dtype(torch::kUInt8));
  return memory(md, Engine(), owner->data_ptr());
}

void Reorder(dnnl::stream& stream, memory& from, memory& to) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::reorder::primitive_desc pd(Engine(), from.get_desc(), Engine(), to.get_desc(), attr);
  torch::Tensor scratch_owner;
  std::unordered_map<int, memory> args{{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  if (pd.scratchpad_desc().get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, Buffer(pd.scratchpad_desc(), &scratch_owner));
  dnnl::reorder(pd).execute(stream, args);
}

// `t` (dense) reordered into layout `md`.
memory Blocked(dnnl::stream& stream, const torch::Tensor& t, const memory::desc& md, torch::Tensor* owner) {
  memory view = View(t);
  if (view.get_desc() == md) return view;
  memory out = Buffer(md, owner);
  Reorder(stream, view, out);
  return out;
}

void Run(dnnl::stream& stream, const dnnl::primitive& prim, const memory::desc& scratchpad,
         std::unordered_map<int, memory> args) {
  torch::Tensor scratch_owner;
  if (scratchpad.get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, Buffer(scratchpad, &scratch_owner));
  prim.execute(stream, args);
  stream.wait();
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class WinogradFunction : public torch::autograd::Function<WinogradFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& weight_in) {
    const auto format = LayoutOf(x_in);
    const torch::Tensor x = x_in.contiguous(format);
    const torch::Tensor weight = weight_in.contiguous(LayoutOf(weight_in));
    auto prims = PrimitivesFor(KeyOf(x, weight));
    dnnl::stream stream(Engine());
    torch::Tensor x_owner, w_owner, y_owner;
    memory src = Blocked(stream, x, prims->fwd_pd.src_desc(), &x_owner);
    memory wei = Blocked(stream, weight, prims->fwd_pd.weights_desc(), &w_owner);
    memory dst = Buffer(prims->fwd_pd.dst_desc(), &y_owner);
    Run(stream, prims->fwd, prims->fwd_pd.scratchpad_desc(),
        {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    auto y = torch::empty({x.size(0), weight.size(0), x.size(2), x.size(3)}, x.options().memory_format(format));
    memory out = View(y);
    Reorder(stream, dst, out);
    stream.wait();
    ctx->save_for_backward({x, weight});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    RefuseDoubleBackward();
    auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    variable_list out(2);
    if (!grads[0].defined()) return out;
    const bool need_dx = ctx->needs_input_grad(0), need_dw = ctx->needs_input_grad(1);
    if (!need_dx && !need_dw) return out;
    auto prims = PrimitivesFor(KeyOf(x, weight));
    const auto format = LayoutOf(x);
    const torch::Tensor dy = grads[0].contiguous(LayoutOf(grads[0]));
    dnnl::stream stream(Engine());
    torch::Tensor dy_owner, dy2_owner, w_owner, dx_owner, x_owner, dw_owner;
    memory diff_dst = Blocked(stream, dy, prims->data_pd.diff_dst_desc(), &dy_owner);
    if (need_dx) {
      memory wei = Blocked(stream, weight, prims->data_pd.weights_desc(), &w_owner);
      memory diff_src = Buffer(prims->data_pd.diff_src_desc(), &dx_owner);
      Run(stream, prims->data, prims->data_pd.scratchpad_desc(),
          {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, diff_src}});
      auto dx = torch::empty(x.sizes(), x.options().memory_format(format));
      memory view = View(dx);
      Reorder(stream, diff_src, view);
      out[0] = dx;
    }
    if (need_dw) {
      memory src = Blocked(stream, x, prims->weights_pd.src_desc(), &x_owner);
      memory dd = prims->weights_pd.diff_dst_desc() == diff_dst.get_desc()
                      ? diff_dst
                      : Blocked(stream, dy, prims->weights_pd.diff_dst_desc(), &dy2_owner);
      memory diff_wei = Buffer(prims->weights_pd.diff_weights_desc(), &dw_owner);
      Run(stream, prims->weights, prims->weights_pd.scratchpad_desc(),
          {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_DIFF_WEIGHTS, diff_wei}});
      auto dw = torch::empty(weight.sizes(), weight.options().memory_format(LayoutOf(weight)));
      memory view = View(dw);
      Reorder(stream, diff_wei, view);
      out[1] = dw;
    }
    stream.wait();
    return out;
  }
};

bool ProbeAvailable(std::string* reason) {
  try {
    if (PrimitivesFor({16, 16, 16, 8, 8})) return true;
    *reason = "oneDNN has no Winograd convolution for this CPU";
  } catch (const std::exception& e) {
    *reason = std::string("oneDNN failed: ") + e.what();
  }
  return false;
}

#endif  // TABSIGHT_WITH_DNNL

// A module whose forward Convolve may replace: training mode, 3×3, stride 1,
// padding 1, no dilation, groups, bias or padding mode other than zeros.
bool TrainingConv3x3(const torch::nn::Conv2dImpl& conv) {
  // c10::get_if and c10::holds_alternative in LibTorch 1.13 (found by
  // argument-dependent lookup there), std:: from 2.0 on.
  using std::get_if;
  using std::holds_alternative;
  const auto& o = conv.options;
  if (!conv.is_training() || o.groups() != 1 || o.bias()) return false;
  if (!holds_alternative<torch::enumtype::kZeros>(o.padding_mode())) return false;
  if ((*o.kernel_size())[0] != 3 || (*o.kernel_size())[1] != 3) return false;
  if ((*o.stride())[0] != 1 || (*o.stride())[1] != 1 || (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1) return false;
  const auto* pad = get_if<torch::ExpandingArray<2>>(&o.padding());
  return pad != nullptr && (**pad)[0] == 1 && (**pad)[1] == 1;
}

// tabsight's own F(4×4, 3×3) kernels (models/winograd_f43.h) as an autograd
// node: forward and input gradient by Winograd, the weight gradient by
// LibTorch's convolution_backward. `prepared` holds the transformed weights
// when the caller keeps them (the folded convolutions of Integrated
// Gradients); null, they are made from `weight` at each call, as in
// training, where the weights change every step.
class OwnFunction : public torch::autograd::Function<OwnFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const WinogradWeights* prepared) {
    auto y = f43::Convolve(x, prepared != nullptr ? prepared->u : f43::TransformWeights(weight), LayoutOf(x));
    ctx->save_for_backward({x, weight});
    ctx->saved_data["prepared"] = prepared != nullptr;
    if (prepared != nullptr) ctx->saved_data["adjoint"] = prepared->adjoint;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RefuseDoubleBackward();
    auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    torch::autograd::variable_list out(3);
    if (!grads[0].defined()) return out;
    const torch::Tensor& dy = grads[0];
    if (ctx->needs_input_grad(0)) {
      const torch::Tensor adjoint = ctx->saved_data["prepared"].toBool() ? ctx->saved_data["adjoint"].toTensor()
                                                                         : f43::TransformWeightsAdjoint(weight);
      out[0] = f43::Convolve(dy, adjoint, LayoutOf(x));
    }
    if (ctx->needs_input_grad(1)) {
      auto grads_in = at::convolution_backward(dy, x, weight, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1,
                                               {false, true, false});
      out[1] = std::get<1>(grads_in).contiguous(LayoutOf(weight));
    }
    return out;
  }
};

enum class Kernel { kNone, kOneDnn, kOwn };

struct Choice {
  Kernel kernel = Kernel::kNone;
  std::string reason;  // why none, when kNone
};

// The kernel this process uses, chosen once: oneDNN's where it has one for
// this CPU (AVX-512), else tabsight's own (AVX2 and FMA).
// TABSIGHT_WINOGRAD_KERNEL=tabsight or =onednn asks for one of them (to
// compare them on a CPU that has both); the one asked for must be there.
const Choice& Chosen() {
  static const Choice choice = [] {
    const char* env = std::getenv("TABSIGHT_WINOGRAD_KERNEL");
    const std::string want = env == nullptr ? "" : env;
    Choice c;
    std::string onednn;
#ifdef TABSIGHT_WITH_DNNL
    if (want != "tabsight" && ProbeAvailable(&onednn)) {
      c.kernel = Kernel::kOneDnn;
      return c;
    }
    if (want == "tabsight") onednn = "TABSIGHT_WINOGRAD_KERNEL=tabsight";
#else
    onednn = "the addon was built without oneDNN 2.x's headers (libdnnl-dev; cmake/OneDnn.cmake)";
#endif
    if (want != "onednn" && f43::Supported()) {
      c.kernel = Kernel::kOwn;
      return c;
    }
    c.reason = onednn + (want == "onednn" ? " (TABSIGHT_WINOGRAD_KERNEL=onednn)"
                                          : "; tabsight's own Winograd kernels need an x86-64 CPU with AVX2 and FMA");
    return c;
  }();
  return choice;
}

}  // namespace

bool WinogradAvailable() { return Chosen().kernel != Kernel::kNone; }

std::string WinogradUnavailableReason() { return Chosen().reason; }

std::string WinogradKernel() {
  switch (Chosen().kernel) {
    case Kernel::kOneDnn:
      return "onednn";
    case Kernel::kOwn:
      return "tabsight";
    default:
      return "";
  }
}

bool WinogradConvEnabled() { return Switch().Enabled(); }

bool SetWinogradConvEnabled(bool enabled) { return Switch().Set(enabled); }

uint64_t WinogradConvCalls() { return calls.load(std::memory_order_relaxed); }

torch::Tensor WinogradConv3x3(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!Qualifies(x, weight)) {
    Fail(ErrorCode::kShape, "Expected float32 CPU tensors for the Winograd convolution: x [N, C, H, W] and weight [O, C, "
                            "3, 3] with C and O multiples of 16, but received x " +
                                c10::str(x.sizes()) + " and weight " + c10::str(weight.sizes()));
  }
  if (!WinogradAvailable()) Fail(ErrorCode::kConfig, "Winograd convolutions are unavailable: " + Chosen().reason);
  if (Chosen().kernel == Kernel::kOwn) return OwnFunction::apply(x, weight, nullptr);
#ifdef TABSIGHT_WITH_DNNL
  if (!PrimitivesFor(KeyOf(x, weight))) {
    Fail(ErrorCode::kConfig, "oneDNN has no Winograd convolution for x " + c10::str(x.sizes()));
  }
  return WinogradFunction::apply(x, weight);
#else
  return torch::Tensor();
#endif
}

namespace {

// Which kernel Convolve and FoldedConv3x3 run conv2d(x, weight, stride 1,
// padding 1) by: none unless the path is on and the shapes qualify and are
// worth tiling, and (for oneDNN) it has a kernel for them.
Kernel KernelFor(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!WinogradConvEnabled() || !Qualifies(x, weight) || !WorthTiling(x)) return Kernel::kNone;
  const Kernel k = Chosen().kernel;
#ifdef TABSIGHT_WITH_DNNL
  if (k == Kernel::kOneDnn && !PrimitivesFor(KeyOf(x, weight))) return Kernel::kNone;
#endif
  return k;
}

}  // namespace

torch::Tensor FoldedConv3x3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            WinogradWeights* prepared) {
  const Kernel k = KernelFor(x, weight);
  if (k == Kernel::kNone) return torch::Tensor();
  calls.fetch_add(1, std::memory_order_relaxed);
  torch::Tensor y;
  if (k == Kernel::kOwn) {
    if (prepared != nullptr) {
      std::call_once(prepared->once, [&] {
        prepared->u = f43::TransformWeights(weight);
        prepared->adjoint = f43::TransformWeightsAdjoint(weight);
      });
    }
    y = OwnFunction::apply(x, weight, prepared);
  }
#ifdef TABSIGHT_WITH_DNNL
  if (k == Kernel::kOneDnn) y = WinogradFunction::apply(x, weight);
#endif
  // In place: the node saves its input and weight, not its output.
  return bias.defined() ? y.add_(bias.view({1, -1, 1, 1})) : y;
}

torch::Tensor Convolve(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  if (!TrainingConv3x3(*conv)) return conv(x);
  switch (KernelFor(x, conv->weight)) {
    case Kernel::kOwn:
      calls.fetch_add(1, std::memory_order_relaxed);
      return OwnFunction::apply(x, conv->weight, nullptr);
#ifdef TABSIGHT_WITH_DNNL
    case Kernel::kOneDnn:
      calls.fetch_add(1, std::memory_order_relaxed);
      return WinogradFunction::apply(x, conv->weight);
#endif
    default:
      return conv(x);
  }
}

}  // namespace tabsight::models
