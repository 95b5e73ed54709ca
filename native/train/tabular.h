// Tabular views: MMCL's random feature corruption and one-hot encoding.
//
// Rows arrive preprocessed but not one-hot encoded: a continuous column holds
// its (already standardised) value, a categorical column holds the category
// code 0..k−1 as a float (−1 for a category unseen in training, which encodes
// as all zeros). Corruption acts on these raw values, before encoding.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace tabsight::train {

// The largest cardinality: category codes travel as float32, which holds
// every integer up to 2^24 exactly.
constexpr int64_t kMaxCardinality = int64_t{1} << 24;

// cardinalities[f] == 0 marks a continuous column, 1 ≤ k ≤ kMaxCardinality a
// categorical one.
struct TabularSpec {
  std::vector<int64_t> cardinalities;
  // The one-hot width: 1 per continuous column, k per categorical one.
  // Throws kConfig for a cardinality outside [0, kMaxCardinality], naming its
  // index, and for a width that overflows.
  int64_t EncodedWidth() const;
};

// Replaces floor(rate · F) randomly chosen features of each row by the value
// of the same feature in a random row of `marginals` (the training rows).
// rows: B×F float32 (CPU); marginals: M×F float32 (CPU). Deterministic in seed.
torch::Tensor CorruptRows(const torch::Tensor& rows, const torch::Tensor& marginals, double rate, uint64_t seed);

// One-hot encodes categorical columns; continuous ones pass through. The
// output is B×EncodedWidth(), columns in the input order. A code that is not
// an integer in [−1, k) throws kData naming the row and column.
torch::Tensor EncodeRows(const torch::Tensor& rows, const TabularSpec& spec);

// Checks codes are integers in [−1, k) and continuous values are finite;
// throws kData naming the row and column.
void ValidateRows(const torch::Tensor& rows, const TabularSpec& spec);

}  // namespace tabsight::train
