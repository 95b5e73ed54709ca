/**
 * Redundancy among features: correlation matrices, variance inflation
 * factors, the condition number of the standardized design, and
 * hierarchical clustering of features on 1 − |Spearman ρ| (scikit-learn's
 * "permutation importance with multicollinear features" recipe, with
 * scipy's linkage and `fcluster(criterion='distance')` semantics).
 *
 * X is always an array of columns (features) of equal length n.
 * Matrices come back as arrays of rows (Float64Array[]).
 */
import { DataError, ShapeError } from '../errors';
import { invalid, knownKeys, nonNegativeNumber, oneOf, plainObject } from '../validate';
import { checkColumns, checkVector } from './mi';

const EPS = Number.EPSILON;

/** Average ranks (1-based, ties share the mean of their positions), as scipy's `rankdata`. */
export function averageRanks(v: ArrayLike<number>): Float64Array {
  const n = v.length;
  const idx = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => v[a] - v[b]);
  const out = new Float64Array(n);
  for (let s = 0; s < n; ) {
    let e = s + 1;
    while (e < n && v[idx[e]] === v[idx[s]]) e++;
    const r = (s + 1 + e) / 2;
    for (let t = s; t < e; t++) out[idx[t]] = r;
    s = e;
  }
  return out;
}

/** Centred copies of the columns, and their Euclidean norms. */
function centred(X: ArrayLike<number>[]): { cols: Float64Array[]; norms: Float64Array } {
  const norms = new Float64Array(X.length);
  const cols = X.map((c, j) => {
    const n = c.length;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += c[i];
    mean /= n;
    const out = new Float64Array(n);
    let ss = 0;
    let constant = true;
    for (let i = 0; i < n; i++) {
      out[i] = c[i] - mean;
      ss += out[i] * out[i];
      if (c[i] !== c[0]) constant = false;
    }
    if (constant) out.fill(0);
    norms[j] = constant ? 0 : Math.sqrt(ss);
    return out;
  });
  return { cols, norms };
}

function correlation(cols: Float64Array[], norms: Float64Array): Float64Array[] {
  const p = cols.length;
  const R = Array.from({ length: p }, () => new Float64Array(p));
  for (let a = 0; a < p; a++) {
    for (let b = a; b < p; b++) {
      let r: number;
      if (norms[a] === 0 || norms[b] === 0) r = NaN;
      else if (a === b) r = 1;
      else {
        let s = 0;
        const ca = cols[a];
        const cb = cols[b];
        for (let i = 0; i < ca.length; i++) s += ca[i] * cb[i];
        r = Math.min(1, Math.max(-1, s / norms[a] / norms[b]));
      }
      R[a][b] = r;
      R[b][a] = r;
    }
  }
  return R;
}

/**
 * Pearson correlation matrix (p × p). A constant column gets NaN in its row
 * and column, diagonal included, as numpy's `corrcoef`.
 */
export function pearsonMatrix(X: ArrayLike<number>[]): Float64Array[] {
  checkColumns(X, 'X');
  const { cols, norms } = centred(X);
  return correlation(cols, norms);
}

/** Spearman rank correlation matrix: Pearson on average ranks (ties get the mean rank). */
export function spearmanMatrix(X: ArrayLike<number>[]): Float64Array[] {
  checkColumns(X, 'X');
  const { cols, norms } = centred(X.map(averageRanks));
  return correlation(cols, norms);
}

// ------------------------------------------------------- least squares core

/**
 * Householder QR of the centred, unit-norm columns: returns R's columns
 * (each of length m = min(n, p)). Regressions among the columns (with an
 * intercept, since they are centred) can then be done on R alone, because
 * Q preserves inner products. Constant columns become zero columns.
 */
function reducedR(X: ArrayLike<number>[]): { R: Float64Array[]; constant: boolean[] } {
  const { cols, norms } = centred(X);
  const n = cols[0].length;
  const p = cols.length;
  const A = cols.map((c, j) => (norms[j] === 0 ? c : c.map((v) => v / norms[j])));
  const m = Math.min(n, p);
  const v = new Float64Array(n);
  for (let t = 0; t < m; t++) {
    const a = A[t];
    let s = 0;
    for (let i = t; i < n; i++) s += a[i] * a[i];
    const alpha = -Math.sign(a[t] || 1) * Math.sqrt(s);
    if (s === 0) continue;
    for (let i = t; i < n; i++) v[i] = a[i];
    v[t] -= alpha;
    let vv = 0;
    for (let i = t; i < n; i++) vv += v[i] * v[i];
    if (vv === 0) continue;
    for (let j = t; j < p; j++) {
      const c = A[j];
      let d = 0;
      for (let i = t; i < n; i++) d += v[i] * c[i];
      const f = (2 * d) / vv;
      for (let i = t; i < n; i++) c[i] -= f * v[i];
    }
  }
  return { R: A.map((c) => c.slice(0, m)), constant: Array.from(norms, (x) => x === 0) };
}

/**
 * Squared norm of the part of b outside span(B), by Householder QR of B
 * with column pivoting; columns whose remaining norm falls to ≤ tol are
 * treated as dependent and left out.
 */
function residualNorm2(B: Float64Array[], b: Float64Array, tol: number): number {
  const m = b.length;
  const A = B.map((c) => Float64Array.from(c));
  const r = Float64Array.from(b);
  const c = A.length;
  const v = new Float64Array(m);
  for (let t = 0; t < Math.min(m, c); t++) {
    let best = -1;
    let bestNorm = tol;
    for (let j = t; j < c; j++) {
      let s = 0;
      for (let i = t; i < m; i++) s += A[j][i] * A[j][i];
      if (Math.sqrt(s) > bestNorm) {
        bestNorm = Math.sqrt(s);
        best = j;
      }
    }
    if (best < 0) break;
    [A[t], A[best]] = [A[best], A[t]];
    const a = A[t];
    const alpha = -Math.sign(a[t] || 1) * bestNorm;
    for (let i = t; i < m; i++) v[i] = a[i];
    v[t] -= alpha;
    let vv = 0;
    for (let i = t; i < m; i++) vv += v[i] * v[i];
    const reflect = (x: Float64Array): void => {
      let d = 0;
      for (let i = t; i < m; i++) d += v[i] * x[i];
      const f = (2 * d) / vv;
      for (let i = t; i < m; i++) x[i] -= f * v[i];
    };
    for (let j = t; j < c; j++) reflect(A[j]);
    reflect(r);
    // Rows ≤ t of r are now inside the span.
    r[t] = 0;
  }
  let s = 0;
  for (let i = 0; i < m; i++) s += r[i] * r[i];
  return s;
}

/**
 * Variance inflation factors: VIF_j = 1/(1 − R²_j), where R²_j comes from
 * regressing column j on all the others WITH an intercept (unlike
 * statsmodels' `variance_inflation_factor`, which adds none).
 *
 * Computed by one Householder QR of the centred unit-norm design, then a
 * pivoted QR per column in the reduced p-dimensional space. A column whose
 * residual norm is ≤ 64·max(n, p)·ε of its own norm (VIF ≳ 1e20) lies in
 * the span of the others: Infinity. A constant column gets NaN (R² is 0/0);
 * it does not affect the other columns (it is collinear with the intercept).
 */
export function varianceInflationFactors(X: ArrayLike<number>[]): Float64Array {
  const n = checkColumns(X, 'X');
  const p = X.length;
  if (n < 2) throw new ShapeError(`X has ${n} rows; variance inflation factors need at least 2`);
  const { R, constant } = reducedR(X);
  const tolRank = 64 * Math.max(n, p) * EPS;
  return Float64Array.from(R, (rj, j) => {
    if (constant[j]) return NaN;
    const others = R.filter((_, t) => t !== j);
    const res2 = residualNorm2(others, rj, tolRank);
    let tot2 = 0;
    for (let i = 0; i < rj.length; i++) tot2 += rj[i] * rj[i];
    if (Math.sqrt(res2 / tot2) <= tolRank) return Infinity;
    return tot2 / res2;
  });
}

/** Singular values of the columns A (m × c) by one-sided Jacobi (Hestenes), descending. */
export function singularValues(A: Float64Array[]): Float64Array {
  const cols = A.map((c) => Float64Array.from(c));
  const c = cols.length;
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let a = 0; a < c - 1; a++) {
      for (let b = a + 1; b < c; b++) {
        const x = cols[a];
        const y = cols[b];
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < x.length; i++) {
          alpha += x[i] * x[i];
          beta += y[i] * y[i];
          gamma += x[i] * y[i];
        }
        if (gamma === 0 || Math.abs(gamma) <= EPS * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t);
        const sn = cs * t;
        for (let i = 0; i < x.length; i++) {
          const xi = x[i];
          x[i] = cs * xi - sn * y[i];
          y[i] = sn * xi + cs * y[i];
        }
      }
    }
    if (!rotated) break;
  }
  return Float64Array.from(cols, (x) => Math.hypot(...x)).sort().reverse();
}

/**
 * Condition number of the standardized design: κ = σ_max / σ_min of the
 * centred columns scaled to unit variance, which equals
 * √(λ_max / λ_min) of the correlation matrix. Singular values come from a
 * one-sided Jacobi SVD of the R factor (never forming XᵀX). Infinity when
 * σ_min ≤ 64·max(n, p)·ε·σ_max, or when n − 1 < p.
 * @throws DataError for a constant column (its standardization is undefined).
 */
export function conditionNumber(X: ArrayLike<number>[]): number {
  const n = checkColumns(X, 'X');
  const p = X.length;
  if (n < 2) throw new ShapeError(`X has ${n} rows; the condition number needs at least 2`);
  const { R, constant } = reducedR(X);
  const j = constant.indexOf(true);
  if (j >= 0) throw new DataError(`X[${j}] is constant; the standardized design is undefined`);
  if (n - 1 < p) return Infinity;
  const s = singularValues(R);
  const smax = s[0];
  const smin = s[s.length - 1];
  return smin <= 64 * Math.max(n, p) * EPS * smax ? Infinity : smax / smin;
}

// ------------------------------------------------------------- clustering

export type Linkage = 'ward' | 'average' | 'complete';

export interface CorrelationClusterOptions {
  /** Cut height: merges at distance ≤ threshold are kept (scipy `fcluster(criterion='distance')`). */
  threshold: number;
  /** Agglomeration rule (scipy's Lance–Williams updates). @default 'ward' */
  linkage?: Linkage;
  /** Per-feature relevance (e.g. MI with the task); picks representatives when given. */
  relevance?: ArrayLike<number>;
}

export interface CorrelationClusters {
  /** Cluster of each feature, 0-based, numbered by each cluster's lowest feature index. */
  labels: Int32Array;
  /** The features of each cluster, ascending. */
  clusters: number[][];
  /** One feature per cluster (see correlationClusters). */
  representatives: number[];
  /** (p − 1) rows [a, b, distance, size] in scipy's linkage-matrix layout. */
  linkage: Float64Array[];
  /** The distance matrix 1 − |ρ_Spearman|. */
  distance: Float64Array[];
}

/**
 * Hierarchical clustering of features on the distance 1 − |Spearman ρ|
 * (ρ symmetrized, diagonal 1), as in scikit-learn's multicollinearity
 * example: `hierarchy.ward(squareform(dist))`, then
 * `fcluster(Z, threshold, criterion='distance')`. Ward treats the given
 * distances as Euclidean, as scipy does. Merges are found greedily (the
 * closest pair first; on exact ties the lowest indices), which for these
 * reducible linkages gives scipy's dendrogram.
 *
 * Representative of a cluster: the member with the highest `relevance`
 * when given; otherwise the member with the highest mean |ρ| to the other
 * members (a singleton represents itself). Ties go to the lowest index.
 * @throws DataError for a constant column (its ρ is undefined).
 */
export function correlationClusters(X: ArrayLike<number>[], opts: CorrelationClusterOptions): CorrelationClusters {
  checkColumns(X, 'X');
  const p = X.length;
  const o = plainObject(opts, 'options');
  knownKeys(o, '', ['threshold', 'linkage', 'relevance']);
  if (o.threshold === undefined) throw invalid('non-negative number', 'threshold', undefined);
  const threshold = nonNegativeNumber(o.threshold, 'threshold');
  const method = o.linkage === undefined ? 'ward' : oneOf(o.linkage, 'linkage', ['ward', 'average', 'complete'] as const);
  const relevance = o.relevance === undefined ? undefined : checkVector(o.relevance, 'relevance');
  if (relevance && relevance.length !== p) throw new ShapeError(`relevance has length ${relevance.length} but X has ${p} columns`);
  const rho = spearmanMatrix(X);
  for (let j = 0; j < p; j++) if (Number.isNaN(rho[j][j])) throw new DataError(`X[${j}] is constant; its Spearman correlation is undefined`);
  const distance = rho.map((row, a) => row.map((r, b) => (a === b ? 0 : 1 - Math.abs(r))));

  // Greedy agglomeration with Lance–Williams updates.
  const D = distance.map((row) => Float64Array.from(row));
  const id = Int32Array.from({ length: p }, (_, i) => i);
  const size = new Float64Array(p).fill(1);
  const active = new Array<boolean>(p).fill(true);
  const linkage: Float64Array[] = [];
  for (let step = 0; step < p - 1; step++) {
    let bx = -1;
    let by = -1;
    let best = Infinity;
    for (let a = 0; a < p; a++) {
      if (!active[a]) continue;
      for (let b = a + 1; b < p; b++) if (active[b] && D[a][b] < best) [best, bx, by] = [D[a][b], a, b];
    }
    const sx = size[bx];
    const sy = size[by];
    for (let i = 0; i < p; i++) {
      if (!active[i] || i === bx || i === by) continue;
      const dx = D[bx][i];
      const dy = D[by][i];
      let d: number;
      if (method === 'complete') d = Math.max(dx, dy);
      else if (method === 'average') d = (sx * dx + sy * dy) / (sx + sy);
      else {
        const si = size[i];
        const t = 1 / (sx + sy + si);
        d = Math.sqrt(Math.max(0, (si + sx) * t * dx * dx + (si + sy) * t * dy * dy - si * t * best * best));
      }
      D[bx][i] = d;
      D[i][bx] = d;
    }
    linkage.push(Float64Array.of(Math.min(id[bx], id[by]), Math.max(id[bx], id[by]), best, sx + sy));
    active[by] = false;
    size[bx] = sx + sy;
    id[bx] = p + step;
  }

  // fcluster(criterion='distance'): keep the merges at height ≤ threshold.
  const parent = Int32Array.from({ length: 2 * p - 1 }, (_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  linkage.forEach((row, s) => {
    if (row[2] <= threshold) {
      parent[find(row[0])] = p + s;
      parent[find(row[1])] = p + s;
    }
  });
  const labels = new Int32Array(p);
  const byRoot = new Map<number, number>();
  const clusters: number[][] = [];
  for (let j = 0; j < p; j++) {
    const r = find(j);
    let c = byRoot.get(r);
    if (c === undefined) {
      c = clusters.length;
      byRoot.set(r, c);
      clusters.push([]);
    }
    labels[j] = c;
    clusters[c].push(j);
  }
  const representatives = clusters.map((members) => {
    const score = (j: number): number => {
      if (relevance) return relevance[j];
      if (members.length === 1) return 0;
      let s = 0;
      for (const k of members) if (k !== j) s += Math.abs(rho[j][k]);
      return s / (members.length - 1);
    };
    let best = members[0];
    for (const j of members) if (score(j) > score(best)) best = j;
    return best;
  });
  return { labels, clusters, representatives, linkage, distance };
}
