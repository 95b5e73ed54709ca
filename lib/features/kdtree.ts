/**
 * Nearest-neighbour structures for the Chebyshev (max-norm) metric, used by
 * the mutual-information estimators in ./mi.
 *
 * - `KDTree`: any dimension. O(n log n) build (median split on the widest
 *   dimension, quickselect), k-th-neighbour distances and radius counts.
 * - `SortedAxis`: the one-dimensional case, a sorted copy of the values.
 *   Radius counts are two binary searches and k-th-neighbour distances a
 *   two-pointer walk, which is faster than a tree in 1-D.
 *
 * Distances are computed as `max_j |q_j − p_j|` with the same floating-point
 * operations as scikit-learn's trees, so counts agree with them exactly.
 * Radius counts are strict (`d < r`) unless `inclusive` is set (`d ≤ r`).
 * Counts taken at a point of the set include that point itself.
 */

const kDefaultLeafSize = 12;

/** The largest double below `x` (towards zero), as `np.nextafter(x, 0)` for x > 0; 0 stays 0. */
export function nextDown(x: number): number {
  if (!(x > 0) || x === Infinity) return x;
  scratchF[0] = x;
  scratchI[0] -= 1n;
  return scratchF[0];
}
const scratchF = new Float64Array(1);
const scratchI = new BigInt64Array(scratchF.buffer);

export class KDTree {
  readonly n: number;
  readonly dim: number;
  /** Coordinates in tree order, point-major: data[pos * dim + j]. */
  #data: Float64Array;
  /** Tree position → original index. */
  #order: Int32Array;
  // Nodes: [start, end) in tree order, children (-1 for a leaf), bounding box.
  #start: Int32Array;
  #end: Int32Array;
  #left: Int32Array;
  #right: Int32Array;
  #lo: Float64Array;
  #hi: Float64Array;
  #nodes = 0;
  // Query scratch.
  #q: Float64Array;
  #best: Float64Array = new Float64Array(0);
  #k = 0;
  #skip = -1;

  /**
   * @param columns one array per dimension, all of the same length n ≥ 1.
   * @param leafSize points per leaf at most. @default 12
   */
  constructor(columns: ArrayLike<number>[], leafSize = kDefaultLeafSize) {
    const dim = columns.length;
    const n = dim > 0 ? columns[0].length : 0;
    this.n = n;
    this.dim = dim;
    const maxNodes = 2 * (2 * Math.ceil(n / leafSize) + 1);
    this.#start = new Int32Array(maxNodes);
    this.#end = new Int32Array(maxNodes);
    this.#left = new Int32Array(maxNodes);
    this.#right = new Int32Array(maxNodes);
    this.#lo = new Float64Array(maxNodes * dim);
    this.#hi = new Float64Array(maxNodes * dim);
    this.#q = new Float64Array(dim);
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    this.#order = order;
    if (n > 0) this.#build(columns, 0, n, leafSize);
    const data = new Float64Array(n * dim);
    for (let p = 0; p < n; p++) {
      const i = order[p];
      for (let j = 0; j < dim; j++) data[p * dim + j] = columns[j][i];
    }
    this.#data = data;
  }

  #build(cols: ArrayLike<number>[], start: number, end: number, leafSize: number): number {
    const node = this.#nodes++;
    const dim = this.dim;
    const order = this.#order;
    this.#start[node] = start;
    this.#end[node] = end;
    let widest = 0;
    let spread = -1;
    for (let j = 0; j < dim; j++) {
      const c = cols[j];
      let lo = Infinity;
      let hi = -Infinity;
      for (let p = start; p < end; p++) {
        const v = c[order[p]];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      this.#lo[node * dim + j] = lo;
      this.#hi[node * dim + j] = hi;
      if (hi - lo > spread) {
        spread = hi - lo;
        widest = j;
      }
    }
    if (end - start <= leafSize || spread === 0) {
      this.#left[node] = -1;
      this.#right[node] = -1;
      return node;
    }
    const mid = (start + end) >>> 1;
    select(order, cols[widest], start, end - 1, mid);
    this.#left[node] = this.#build(cols, start, mid, leafSize);
    this.#right[node] = this.#build(cols, mid, end, leafSize);
    return node;
  }

  /** Chebyshev distance from the query scratch to the node's box (0 inside). */
  #boxMin(node: number): number {
    const dim = this.dim;
    const q = this.#q;
    let d = 0;
    for (let j = 0; j < dim; j++) {
      const lo = this.#lo[node * dim + j] - q[j];
      const hi = q[j] - this.#hi[node * dim + j];
      if (lo > d) d = lo;
      if (hi > d) d = hi;
    }
    return d;
  }

  /** The largest Chebyshev distance from the query scratch to any point of the box. */
  #boxMax(node: number): number {
    const dim = this.dim;
    const q = this.#q;
    let d = 0;
    for (let j = 0; j < dim; j++) {
      const a = q[j] - this.#lo[node * dim + j];
      const b = this.#hi[node * dim + j] - q[j];
      const m = a > b ? a : b;
      if (m > d) d = m;
    }
    return d;
  }

  #dist(p: number): number {
    const dim = this.dim;
    const data = this.#data;
    const q = this.#q;
    let d = 0;
    for (let j = 0; j < dim; j++) {
      const t = Math.abs(q[j] - data[p * dim + j]);
      if (t > d) d = t;
    }
    return d;
  }

  #knn(node: number): void {
    const best = this.#best;
    const k = this.#k;
    if (this.#left[node] < 0) {
      const skip = this.#skip;
      const dim = this.dim;
      const data = this.#data;
      const q = this.#q;
      for (let p = this.#start[node], e = this.#end[node]; p < e; p++) {
        if (p === skip) continue;
        let d = 0;
        for (let j = 0; j < dim; j++) {
          const t = Math.abs(q[j] - data[p * dim + j]);
          if (t > d) d = t;
        }
        if (d < best[k - 1]) {
          let i = k - 1;
          while (i > 0 && best[i - 1] > d) {
            best[i] = best[i - 1];
            i--;
          }
          best[i] = d;
        }
      }
      return;
    }
    const l = this.#left[node];
    const r = this.#right[node];
    const dl = this.#boxMin(l);
    const dr = this.#boxMin(r);
    if (dl <= dr) {
      if (dl < best[k - 1]) this.#knn(l);
      if (dr < best[k - 1]) this.#knn(r);
    } else {
      if (dr < best[k - 1]) this.#knn(r);
      if (dl < best[k - 1]) this.#knn(l);
    }
  }

  /**
   * For every point i, the distance to its k-th nearest other point (the
   * point itself excluded; duplicates count). Requires 1 ≤ k < n.
   */
  kthNeighborDistances(k: number): Float64Array {
    const n = this.n;
    const dim = this.dim;
    if (!(Number.isInteger(k) && k >= 1 && k < n)) throw new RangeError(`k must be an integer in [1, ${n - 1}]`);
    const out = new Float64Array(n);
    this.#best = new Float64Array(k);
    this.#k = k;
    // Tree order keeps consecutive queries close together.
    for (let p = 0; p < n; p++) {
      for (let j = 0; j < dim; j++) this.#q[j] = this.#data[p * dim + j];
      this.#best.fill(Infinity);
      this.#skip = p;
      this.#knn(0);
      out[this.#order[p]] = this.#best[k - 1];
    }
    this.#skip = -1;
    return out;
  }

  #count(node: number, r: number, inclusive: boolean): number {
    const dmin = this.#boxMin(node);
    if (inclusive ? dmin > r : dmin >= r) return 0;
    const dmax = this.#boxMax(node);
    if (inclusive ? dmax <= r : dmax < r) return this.#end[node] - this.#start[node];
    if (this.#left[node] < 0) {
      let c = 0;
      for (let p = this.#start[node], e = this.#end[node]; p < e; p++) {
        const d = this.#dist(p);
        if (inclusive ? d <= r : d < r) c++;
      }
      return c;
    }
    return this.#count(this.#left[node], r, inclusive) + this.#count(this.#right[node], r, inclusive);
  }

  /** Number of points within Chebyshev distance r of q: d < r, or d ≤ r when inclusive. */
  countWithin(q: ArrayLike<number>, r: number, inclusive = false): number {
    if (this.n === 0) return 0;
    for (let j = 0; j < this.dim; j++) this.#q[j] = q[j];
    return this.#count(0, r, inclusive);
  }

  /**
   * For every point i, the number of points within radius[i] of it, the
   * point itself included.
   */
  countsAround(radius: ArrayLike<number>, inclusive = false): Int32Array {
    const n = this.n;
    const dim = this.dim;
    const out = new Int32Array(n);
    for (let p = 0; p < n; p++) {
      for (let j = 0; j < dim; j++) this.#q[j] = this.#data[p * dim + j];
      const i = this.#order[p];
      out[i] = this.#count(0, radius[i], inclusive);
    }
    return out;
  }
}

/** Reorders idx[lo..hi] so that idx[m] holds the m-th smallest key (Hoare quickselect). */
function select(idx: Int32Array, key: ArrayLike<number>, lo: number, hi: number, m: number): void {
  while (hi > lo) {
    const a = key[idx[lo]];
    const b = key[idx[(lo + hi) >>> 1]];
    const c = key[idx[hi]];
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (key[idx[i]] < pivot) i++;
      while (key[idx[j]] > pivot) j--;
      if (i <= j) {
        const t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        i++;
        j--;
      }
    }
    if (m <= j) hi = j;
    else if (m >= i) lo = i;
    else return;
  }
}

/**
 * The 1-D case: a sorted copy of the values, queries by binary search.
 * Queries are by value, so no index map is needed: a point's own copy is
 * found (or an equal value is, which gives the same answers).
 */
export class SortedAxis {
  readonly n: number;
  /** The values in ascending order. */
  readonly values: Float64Array;
  #source: ArrayLike<number>;

  constructor(values: ArrayLike<number>) {
    this.n = values.length;
    this.#source = values;
    this.values = Float64Array.from(values).sort();
  }

  /** The first position p with values[p] ≥ v. */
  lowerBound(v: number): number {
    const s = this.values;
    let a = 0;
    let b = this.n;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (s[m] < v) a = m + 1;
      else b = m;
    }
    return a;
  }

  /**
   * Number of values x with |x − v| < r (≤ r when inclusive). The computed
   * difference is monotone in x on each side of v in floating point, so a
   * binary search on it is exact.
   */
  countWithin(v: number, r: number, inclusive = false): number {
    const s = this.values;
    const mid = this.lowerBound(v);
    // Right side: one past the last p ≥ mid with (s[p] − v) within r.
    let a = mid;
    let b = this.n;
    while (a < b) {
      const m = (a + b) >>> 1;
      const d = s[m] - v;
      if (inclusive ? d <= r : d < r) a = m + 1;
      else b = m;
    }
    const right = a;
    // Left side: the first p < mid with (v − s[p]) within r.
    a = 0;
    b = mid;
    while (a < b) {
      const m = (a + b) >>> 1;
      const d = v - s[m];
      if (inclusive ? d <= r : d < r) b = m;
      else a = m + 1;
    }
    return right - a;
  }

  /** For every point i of the source values, the count within radius[i] of it (itself included). */
  countsAround(radius: ArrayLike<number>, inclusive = false): Int32Array {
    const out = new Int32Array(this.n);
    const src = this.#source;
    for (let i = 0; i < this.n; i++) out[i] = this.countWithin(src[i], radius[i], inclusive);
    return out;
  }

  /** For every point i of the source values, the distance to its k-th nearest other value (1 ≤ k < n). */
  kthNeighborDistances(k: number): Float64Array {
    const n = this.n;
    if (!(Number.isInteger(k) && k >= 1 && k < n)) throw new RangeError(`k must be an integer in [1, ${n - 1}]`);
    const s = this.values;
    const src = this.#source;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = src[i];
      const p = this.lowerBound(v); // s[p] === v
      let l = p - 1;
      let r = p + 1;
      let d = 0;
      for (let t = 0; t < k; t++) {
        const dl = l >= 0 ? v - s[l] : Infinity;
        const dr = r < n ? s[r] - v : Infinity;
        if (dl <= dr) {
          d = dl;
          l--;
        } else {
          d = dr;
          r++;
        }
      }
      out[i] = d;
    }
    return out;
  }
}
