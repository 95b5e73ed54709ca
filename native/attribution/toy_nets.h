// Hand-built networks whose attributions have closed forms, for tests of the
// methods themselves (the binding exposes them as _attributeToy).
//   linear  F(x) = Σ weight ⊙ x + offset (weight: one example's shape)
//   conv    A = conv2d(x, weight [O, C, k, k], bias [O], padding),
//           F(x) = Σ_o head_o · mean_hw relu(A_o); CAM layer: A.
// The conv net's ReLU is models::Relu, so Guided Backprop applies to it.
#pragma once

#include <torch/torch.h>

#include <string>

#include "attribution/runner.h"

namespace tabsight::attribution {

struct ToyNetSpec {
  std::string net;  // linear | conv
  torch::Tensor weight, bias, head;
  double offset = 0;
  int64_t padding = 0;
};

Explainable MakeToyNet(const ToyNetSpec& spec);

}  // namespace tabsight::attribution
