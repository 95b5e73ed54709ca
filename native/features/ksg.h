// Neighbour counts for the KSG mutual-information estimator (Kraskov et al.
// 2004, algorithm 1) between many continuous columns and one continuous
// target, under the Chebyshev metric. lib/features/mi.ts turns the counts
// into MI; this file only does the O(n log n) geometry, in parallel over the
// columns. Results are exact (no approximation), so they equal the
// TypeScript KDTree/SortedAxis path and scikit-learn's trees count for count.
#pragma once

#include <cstdint>
#include <vector>

namespace tabsight::features {

struct KsgCounts {
  // Per column, row-major [column][i]: the number of points within ε_i of
  // point i in x and in y, the point itself included (n_x + 1, n_y + 1).
  std::vector<int32_t> nx;
  std::vector<int32_t> ny;
};

// ε_i is the distance from (x_i, y_i) to its k-th nearest other point in the
// joint space, nudged one ulp towards zero; counts are then inclusive
// (d ≤ ε_i), which is "strictly within the true radius" as in scikit-learn.
// xs: columns of length n; y: length n. Requires 1 ≤ k < n.
KsgCounts KsgNeighbourCounts(const std::vector<const double*>& xs, const double* y, int64_t n, int k);

}  // namespace tabsight::features
