#include "attribution/toy_nets.h"

#include "common/error.h"
#include "models/guided_relu.h"

namespace tabsight::attribution {

Explainable MakeToyNet(const ToyNetSpec& spec) {
  Explainable model;
  if (spec.net == "linear") {
    auto w = spec.weight.to(torch::kFloat32);
    const double c = spec.offset;
    model.target = [w, c](const torch::Tensor& x, const torch::Tensor&) {
      if (x.sizes().slice(1) != w.sizes()) {
        Fail(ErrorCode::kShape, "Expected inputs of shape [N, " + c10::str(w.sizes()) + "] for the linear toy net");
      }
      return (x * w.unsqueeze(0)).reshape({x.size(0), -1}).sum(1) + c;
    };
    return model;
  }
  if (spec.net != "conv") Fail(ErrorCode::kConfig, "Expected linear or conv for net but received \"" + spec.net + "\"");
  if (spec.weight.dim() != 4 || spec.bias.dim() != 1 || spec.head.dim() != 1 ||
      spec.bias.size(0) != spec.weight.size(0) || spec.head.size(0) != spec.weight.size(0)) {
    Fail(ErrorCode::kShape, "Expected conv weight [O, C, k, k], bias [O] and head [O]");
  }
  auto w = spec.weight.to(torch::kFloat32), b = spec.bias.to(torch::kFloat32), v = spec.head.to(torch::kFloat32);
  const int64_t pad = spec.padding;
  model.activation_target = [w, b, v, pad](const torch::Tensor& x, const torch::Tensor&, torch::Tensor* activation) {
    auto a = torch::conv2d(x, w, b, /*stride=*/1, /*padding=*/pad);
    if (activation) *activation = a;
    return (models::Relu(a).mean({2, 3}) * v.unsqueeze(0)).sum(1);
  };
  auto act = model.activation_target;
  model.target = [act](const torch::Tensor& x, const torch::Tensor& index) { return act(x, index, nullptr); };
  return model;
}

}  // namespace tabsight::attribution
