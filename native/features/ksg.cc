#include "features/ksg.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common/error.h"

namespace tabsight::features {

namespace {

constexpr int kLeafSize = 12;

// A sorted copy of one axis; counts by binary search on the computed
// differences, which are monotone on each side of the query value.
class SortedAxis {
 public:
  explicit SortedAxis(const double* v, int64_t n) : s_(v, v + n) { std::sort(s_.begin(), s_.end()); }

  // Points x with |x − v| ≤ r.
  int32_t CountWithin(double v, double r) const {
    const int64_t n = static_cast<int64_t>(s_.size());
    const int64_t mid = std::lower_bound(s_.begin(), s_.end(), v) - s_.begin();
    int64_t a = mid, b = n;
    while (a < b) {
      const int64_t m = (a + b) >> 1;
      if (s_[m] - v <= r) a = m + 1; else b = m;
    }
    const int64_t right = a;
    a = 0;
    b = mid;
    while (a < b) {
      const int64_t m = (a + b) >> 1;
      if (v - s_[m] <= r) b = m; else a = m + 1;
    }
    return static_cast<int32_t>(right - a);
  }

 private:
  std::vector<double> s_;
};

// A 2-D k-d tree (median split on the wider axis) for k-th-neighbour
// distances under the Chebyshev metric.
class Tree2 {
 public:
  Tree2(const double* x, const double* y, int64_t n) : n_(n), order_(n) {
    std::iota(order_.begin(), order_.end(), 0);
    nodes_.reserve(static_cast<size_t>(4 * (n / kLeafSize + 1)));
    Build(x, y, 0, n);
    px_.resize(n);
    py_.resize(n);
    for (int64_t p = 0; p < n; p++) {
      px_[p] = x[order_[p]];
      py_[p] = y[order_[p]];
    }
  }

  // out[i] = distance from point i to its k-th nearest other point.
  void KthNeighbourDistances(int k, double* out) const {
    std::vector<double> best(k);
    for (int64_t p = 0; p < n_; p++) {
      std::fill(best.begin(), best.end(), std::numeric_limits<double>::infinity());
      Query q{px_[p], py_[p], p, k, best.data()};
      Knn(0, q);
      out[order_[p]] = best[k - 1];
    }
  }

 private:
  struct Node {
    int64_t start, end;
    int32_t left, right;  // −1 for a leaf
    double lox, hix, loy, hiy;
  };
  struct Query {
    double x, y;
    int64_t skip;
    int k;
    double* best;
  };

  int32_t Build(const double* x, const double* y, int64_t start, int64_t end) {
    const int32_t id = static_cast<int32_t>(nodes_.size());
    nodes_.push_back(Node{start, end, -1, -1, 0, 0, 0, 0});
    double lox = std::numeric_limits<double>::infinity(), hix = -lox, loy = lox, hiy = -lox;
    for (int64_t p = start; p < end; p++) {
      const double vx = x[order_[p]], vy = y[order_[p]];
      lox = std::min(lox, vx); hix = std::max(hix, vx);
      loy = std::min(loy, vy); hiy = std::max(hiy, vy);
    }
    Node& node = nodes_[id];
    node.lox = lox; node.hix = hix; node.loy = loy; node.hiy = hiy;
    const double sx = hix - lox, sy = hiy - loy;
    if (end - start <= kLeafSize || std::max(sx, sy) == 0) return id;
    const double* key = sx >= sy ? x : y;
    const int64_t mid = (start + end) / 2;
    std::nth_element(order_.begin() + start, order_.begin() + mid, order_.begin() + end,
                     [key](int64_t a, int64_t b) { return key[a] < key[b]; });
    const int32_t l = Build(x, y, start, mid);
    const int32_t r = Build(x, y, mid, end);
    nodes_[id].left = l;
    nodes_[id].right = r;
    return id;
  }

  static double BoxMin(const Node& nd, const Query& q) {
    double d = 0;
    d = std::max(d, nd.lox - q.x);
    d = std::max(d, q.x - nd.hix);
    d = std::max(d, nd.loy - q.y);
    d = std::max(d, q.y - nd.hiy);
    return d;
  }

  void Knn(int32_t id, Query& q) const {
    const Node& nd = nodes_[id];
    double* best = q.best;
    const int k = q.k;
    if (nd.left < 0) {
      for (int64_t p = nd.start; p < nd.end; p++) {
        if (p == q.skip) continue;
        const double d = std::max(std::abs(q.x - px_[p]), std::abs(q.y - py_[p]));
        if (d < best[k - 1]) {
          int i = k - 1;
          while (i > 0 && best[i - 1] > d) {
            best[i] = best[i - 1];
            i--;
          }
          best[i] = d;
        }
      }
      return;
    }
    const double dl = BoxMin(nodes_[nd.left], q);
    const double dr = BoxMin(nodes_[nd.right], q);
    const int32_t first = dl <= dr ? nd.left : nd.right;
    const int32_t second = dl <= dr ? nd.right : nd.left;
    const double d1 = std::min(dl, dr), d2 = std::max(dl, dr);
    if (d1 < best[k - 1]) Knn(first, q);
    if (d2 < best[k - 1]) Knn(second, q);
  }

  int64_t n_;
  std::vector<int64_t> order_;
  std::vector<Node> nodes_;
  std::vector<double> px_, py_;
};

}  // namespace

KsgCounts KsgNeighbourCounts(const std::vector<const double*>& xs, const double* y, int64_t n, int k) {
  if (n < 2 || k < 1 || k >= n) {
    throw Error(ErrorCode::kConfig, "Expected 1 ≤ nNeighbors < n (n = " + std::to_string(n) + ") but received " + std::to_string(k));
  }
  const int64_t f = static_cast<int64_t>(xs.size());
  KsgCounts out;
  out.nx.resize(static_cast<size_t>(f * n));
  out.ny.resize(static_cast<size_t>(f * n));
  const SortedAxis ys(y, n);
  at::parallel_for(0, f, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> eps(n);
    for (int64_t j = begin; j < end; j++) {
      const double* x = xs[j];
      Tree2(x, y, n).KthNeighbourDistances(k, eps.data());
      for (auto& e : eps) e = e > 0 && std::isfinite(e) ? std::nextafter(e, 0.0) : e;
      const SortedAxis xa(x, n);
      int32_t* nx = out.nx.data() + j * n;
      int32_t* ny = out.ny.data() + j * n;
      for (int64_t i = 0; i < n; i++) {
        nx[i] = xa.CountWithin(x[i], eps[i]);
        ny[i] = ys.CountWithin(y[i], eps[i]);
      }
    }
  });
  return out;
}

}  // namespace tabsight::features
