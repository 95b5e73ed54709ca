/**
 * Linear decodability of tabular features from a frozen image embedding
 * (docs/explain.md, "Comparing runs"): out-of-fold predictions of ridge
 * regressions with an unpenalised intercept, the penalty chosen inside each
 * training fold by exact leave-one-out error, scored by R² (continuous
 * features) or ROC AUC (categorical: the class indicator's predictions;
 * one-vs-rest macro average for more than two classes).
 *
 * Ridge is solved in its dual form from the Gram matrix of the embedding, so
 * the cost depends on the number of rows, not on the embedding width.
 */
import type { Cohort } from '../data/cohort';
import { ShapeError } from '../errors';
import { rocAuc } from '../eval/metrics';
import { uniformStream } from '../rng';
import { benjaminiHochberg, pairedBootstrap, type PairedDifference } from './compare-metrics';

/**
 * Eigen-decomposition of a symmetric matrix (row-major n×n): Householder
 * tridiagonalisation then the implicit QL algorithm (JAMA's tred2 / tql2).
 * Eigenvalues ascending; eigenvectors as the columns of `vectors` (row-major).
 */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== n * n) throw new ShapeError(`Expected ${n * n} values for an ${n}×${n} matrix but received ${a.length}`);
  const V = Array.from({ length: n }, (_, i) => Float64Array.from(a.subarray(i * n, (i + 1) * n)));
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  if (n === 0) return { values: d, vectors: new Float64Array(0) };
  // tred2
  for (let j = 0; j < n; j++) d[j] = V[n - 1][j];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[i - 1][j];
        V[i][j] = 0;
        V[j][i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[j][i] = f;
        g = e[j] + V[j][j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k][j] * d[k];
          e[k] += V[k][j] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[k][j] -= f * e[k] + g * d[k];
        d[j] = V[i - 1][j];
        V[i][j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[n - 1][i] = V[i][i];
    V[i][i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k][i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k][i + 1] * V[k][j];
        for (let k = 0; k <= i; k++) V[k][j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k][i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[n - 1][j];
    V[n - 1][j] = 0;
  }
  V[n - 1][n - 1] = 1;
  e[0] = 0;
  // tql2, on W = Vᵀ so that the rotations touch two contiguous rows.
  const W = Array.from({ length: n }, (_, i) => Float64Array.from({ length: n }, (_, k) => V[k][i]));
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 200) throw new Error('symmetricEigen: no convergence');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const wi = W[i];
          const wj = W[i + 1];
          for (let k = 0; k < n; k++) {
            const hk = wj[k];
            wj[k] = s * wi[k] + c * hk;
            wi[k] = c * wi[k] - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const values = Float64Array.from(order, (i) => d[i]);
  const vectors = new Float64Array(n * n);
  order.forEach((i, c) => {
    const wi = W[i];
    for (let r = 0; r < n; r++) vectors[r * n + c] = wi[r];
  });
  return { values, vectors };
}

/** The Gram matrix X Xᵀ of n rows of width d (float64). */
export function gramMatrix(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k] * x[j * d + k];
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  return g;
}

/** Exponents e of the penalty grid α = s · 10^e, s = trace(K_c)/m (the mean squared norm of the centred training rows). */
export const RIDGE_EXPONENTS = [-3, -2, -1, 0, 1, 2, 3] as const;

/** Fold of each of n rows: a seeded permutation, then position mod `folds`. */
export function foldAssignment(n: number, folds: number, seed: number): Int32Array {
  const rng = uniformStream(seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const fold = new Int32Array(n);
  perm.forEach((r, pos) => (fold[r] = pos % folds));
  return fold;
}

interface FoldFit {
  train: number[];
  test: number[];
  values: Float64Array;
  vectors: Float64Array;
  /** Per penalty: the leverages h_ii of the training rows (1/m for the intercept included). */
  leverage: Float64Array[];
  /** Centred kernel between test rows and training rows (|test| × |train|). */
  cross: Float64Array;
  alphas: number[];
}

/**
 * Ridge regression from a Gram matrix G (n×n over all rows) with folds:
 * build once per (row subset, fold) and regress any number of targets on
 * those rows. The intercept is not penalised (rows are centred with the
 * training mean), so the hat matrix is 11ᵀ/m + K_c (K_c + αI)⁻¹ and the
 * leave-one-out residual (y_i − ŷ_i)/(1 − h_ii) is exact.
 */
export class GramRidge {
  readonly #gram: Float64Array;
  readonly #n: number;
  readonly #fold: Int32Array;
  readonly #folds: number;
  readonly #cache = new Map<string, FoldFit[]>();

  constructor(gram: Float64Array, n: number, fold: Int32Array, folds: number) {
    if (gram.length !== n * n) throw new ShapeError(`Expected an ${n}×${n} Gram matrix`);
    this.#gram = gram;
    this.#n = n;
    this.#fold = fold;
    this.#folds = folds;
  }

  #fits(rows: number[]): FoldFit[] {
    const key = rows.join(',');
    const hit = this.#cache.get(key);
    if (hit) return hit;
    const G = this.#gram;
    const n = this.#n;
    const fits: FoldFit[] = [];
    for (let f = 0; f < this.#folds; f++) {
      const train = rows.filter((r) => this.#fold[r] !== f);
      const test = rows.filter((r) => this.#fold[r] === f);
      if (test.length === 0 || train.length < 2) continue;
      const m = train.length;
      const colMean = Float64Array.from(train, (i) => train.reduce((s, j) => s + G[i * n + j], 0) / m);
      const all = colMean.reduce((s, v) => s + v, 0) / m;
      const K = new Float64Array(m * m);
      for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) K[a * m + b] = G[train[a] * n + train[b]] - colMean[a] - colMean[b] + all;
      const { values, vectors } = symmetricEigen(K, m);
      for (let k = 0; k < m; k++) values[k] = Math.max(values[k], 0);
      const cross = new Float64Array(test.length * m);
      test.forEach((t, a) => {
        const rowMean = train.reduce((s, j) => s + G[t * n + j], 0) / m;
        for (let b = 0; b < m; b++) cross[a * m + b] = G[t * n + train[b]] - rowMean - colMean[b] + all;
      });
      let trace = 0;
      for (let a = 0; a < m; a++) trace += K[a * m + a];
      const s = Math.max(trace / m, 1e-12);
      const alphas = RIDGE_EXPONENTS.map((e) => s * 10 ** e);
      const leverage = alphas.map((alpha) => {
        const h = new Float64Array(m).fill(1 / m);
        const shrink = Float64Array.from(values, (v) => v / (v + alpha));
        for (let a = 0; a < m; a++) {
          let sum = 0;
          for (let k = 0; k < m; k++) sum += vectors[a * m + k] ** 2 * shrink[k];
          h[a] += sum;
        }
        return h;
      });
      fits.push({ train, test, values, vectors, leverage, cross, alphas });
    }
    this.#cache.set(key, fits);
    return fits;
  }

  /**
   * Out-of-fold predictions of y (one value per entry of `rows`, in order)
   * and the penalty chosen in each fold (the smallest on ties).
   */
  predict(rows: number[], y: Float64Array): { predictions: Float64Array; alphas: number[] } {
    if (y.length !== rows.length) throw new ShapeError(`Expected ${rows.length} targets (one per row) but received ${y.length}`);
    const pos = new Map(rows.map((r, i) => [r, i]));
    const out = new Float64Array(rows.length).fill(NaN);
    const chosen: number[] = [];
    for (const fit of this.#fits(rows)) {
      const { train, test, values, vectors, leverage, cross } = fit;
      const m = train.length;
      const yt = Float64Array.from(train, (r) => y[pos.get(r)!]);
      const mean = yt.reduce((s, v) => s + v, 0) / m;
      const yc = yt.map((v) => v - mean);
      const uty = new Float64Array(m); // Uᵀ y_c
      for (let a = 0; a < m; a++) {
        const yv = yc[a];
        if (yv !== 0) for (let k = 0; k < m; k++) uty[k] += vectors[a * m + k] * yv;
      }
      let best = Infinity;
      let bestAlpha = fit.alphas[0];
      fit.alphas.forEach((alpha, j) => {
        const w = Float64Array.from(uty, (v, k) => (values[k] / (values[k] + alpha)) * v);
        const h = leverage[j];
        let sse = 0;
        for (let a = 0; a < m; a++) {
          let fitted = 0;
          for (let k = 0; k < m; k++) fitted += vectors[a * m + k] * w[k];
          sse += ((yc[a] - fitted) / Math.max(1 - h[a], 1e-12)) ** 2;
        }
        if (sse < best) [best, bestAlpha] = [sse, alpha];
      });
      chosen.push(bestAlpha);
      // Dual coefficients c = U diag(1/(λ + α)) Uᵀ y_c; prediction mean + k_c(x) · c.
      const w = Float64Array.from(uty, (v, k) => v / (values[k] + bestAlpha));
      const c = new Float64Array(m);
      for (let a = 0; a < m; a++) {
        let s = 0;
        for (let k = 0; k < m; k++) s += vectors[a * m + k] * w[k];
        c[a] = s;
      }
      test.forEach((t, a) => {
        let s = mean;
        for (let b = 0; b < m; b++) s += cross[a * m + b] * c[b];
        out[pos.get(t)!] = s;
      });
    }
    return { predictions: out, alphas: chosen };
  }
}

/** R² of predictions against y: 1 − Σ(y − ŷ)² / Σ(y − ȳ)²; NaN without variance or with a missing prediction. */
export function r2(y: ArrayLike<number>, pred: ArrayLike<number>, idx?: ArrayLike<number>): number {
  const m = idx ? idx.length : y.length;
  const at = (i: number) => (idx ? idx[i] : i);
  let mean = 0;
  for (let i = 0; i < m; i++) mean += y[at(i)];
  mean /= m;
  let res = 0;
  let tot = 0;
  for (let i = 0; i < m; i++) {
    const k = at(i);
    res += (y[k] - pred[k]) ** 2;
    tot += (y[k] - mean) ** 2;
  }
  return tot > 0 && Number.isFinite(res) ? 1 - res / tot : NaN;
}

/**
 * Macro one-vs-rest AUC of class scores (scores[c] per row) for integer
 * labels 0..k−1: the mean over the classes present with at least one row
 * outside them of AUC(1[y = c], scores[c]). Two classes: the AUC of class 1.
 */
export function macroAuc(y: ArrayLike<number>, scores: Float64Array[], idx?: ArrayLike<number>): number {
  const m = idx ? idx.length : y.length;
  const at = (i: number) => (idx ? idx[i] : i);
  const yy = Float64Array.from({ length: m }, (_, i) => y[at(i)]);
  const classes = scores.length === 2 ? [1] : scores.map((_, c) => c);
  const aucs: number[] = [];
  for (const c of classes) {
    const t = Float64Array.from(yy, (v) => (v === c ? 1 : 0));
    const pos = t.reduce((s, v) => s + v, 0);
    if (pos === 0 || pos === m) continue;
    aucs.push(rocAuc(t, Float64Array.from({ length: m }, (_, i) => scores[c][at(i)])));
  }
  return aucs.length ? aucs.reduce((s, v) => s + v, 0) / aucs.length : NaN;
}

/** One feature's values on the analysis rows: continuous (NaN = missing) or categorical codes 0..k−1 (−1 = missing). */
export interface DecodeFeature {
  name: string;
  type: 'continuous' | 'categorical';
  values: Float64Array;
  /** Categorical: the number of levels. */
  levels?: number;
}

export interface Decoded {
  name: string;
  metric: 'r2' | 'auc';
  value: number;
  /** Rows with a value. */
  n: number;
  /** Positions (into the analysis rows) of those rows. */
  rows: number[];
  /** Out-of-fold predictions per row of `rows`: one array (continuous) or one per level (categorical). */
  predictions: Float64Array[];
  /** Why value is NaN, if it is. */
  note?: string;
}

/** Decodes every feature with one GramRidge (the same folds for every feature and every embedding). */
export function decodeFeatures(ridge: GramRidge, features: readonly DecodeFeature[], minRows: number): Decoded[] {
  return features.map((f) => {
    const rows: number[] = [];
    f.values.forEach((v, i) => {
      if (f.type === 'continuous' ? Number.isFinite(v) : v >= 0) rows.push(i);
    });
    const y = Float64Array.from(rows, (i) => f.values[i]);
    const base = { name: f.name, metric: f.type === 'continuous' ? 'r2' as const : 'auc' as const, n: rows.length, rows };
    if (rows.length < minRows) return { ...base, value: NaN, predictions: [], note: `${rows.length} rows with a value (fewer than ${minRows})` };
    if (f.type === 'continuous') {
      const { predictions } = ridge.predict(rows, y);
      return { ...base, value: r2(y, predictions), predictions: [predictions] };
    }
    const k = f.levels ?? Math.max(...y) + 1;
    const predictions = Array.from({ length: k }, (_, c) => ridge.predict(rows, y.map((v) => (v === c ? 1 : 0))).predictions);
    const value = macroAuc(y, predictions);
    return { ...base, value, predictions, ...(Number.isNaN(value) ? { note: 'one class only' } : {}) };
  });
}

/** The decoded metric of a feature on a subset of its rows (positions into `d.rows`), for the bootstrap. */
export function decodedMetric(f: DecodeFeature, d: Decoded, idx: ArrayLike<number>): number {
  const y = Float64Array.from(d.rows, (i) => f.values[i]);
  return d.metric === 'r2' ? r2(y, d.predictions[0], idx) : macroAuc(y, d.predictions, idx);
}

/** Every cohort column on the analysis rows: continuous values (NaN = missing) or category codes (−1 = missing). */
export function cohortFeatures(cohort: Cohort, rows: readonly number[]): DecodeFeature[] {
  return cohort.tabular.columns.map((col, j) => {
    const data = cohort.tabular.data[j];
    const values = Float64Array.from(rows, (r) => data[r]);
    if (col.type === 'continuous') return { name: col.name, type: 'continuous' as const, values };
    return { name: col.name, type: 'categorical' as const, levels: (col.categories ?? []).length, values };
  });
}

export interface DecodabilityResult {
  rows: number;
  folds: number;
  features: { name: string; type: 'continuous' | 'categorical'; metric: 'r2' | 'auc'; n: number; note?: string }[];
  /** By run label: one value per feature (NaN where undefined). */
  values: Record<string, number[]>;
  /**
   * By "A|B": for features where both are finite, the paired bootstrap of
   * value(A) − value(B) (rows resampled), and whether it is a discovery of
   * Benjamini–Hochberg at 5% over the pair's features.
   */
  differences: Record<string, ((PairedDifference & { discovery: boolean }) | null)[]>;
}

/**
 * Decodability of every feature from each run's embedding of the same n
 * rows (same folds for all), and for every pair of runs the paired
 * bootstrap (rows resampled, 200 times) of the difference.
 */
export function decodability(embeddings: { label: string; features: Float32Array; featureDim: number }[], features: DecodeFeature[], n: number, folds: number, seed: number): DecodabilityResult {
  const fold = foldAssignment(n, folds, seed);
  const minRows = Math.max(2 * folds, 10);
  const decoded: Record<string, Decoded[]> = {};
  for (const run of embeddings) {
    const ridge = new GramRidge(gramMatrix(run.features, n, run.featureDim), n, fold, folds);
    decoded[run.label] = decodeFeatures(ridge, features, minRows);
  }
  const runs = embeddings;
  const first = decoded[runs[0].label];
  const values = Object.fromEntries(runs.map((r) => [r.label, decoded[r.label].map((d) => d.value)]));
  const differences: DecodabilityResult['differences'] = {};
  for (let a = 0; a < runs.length; a++) {
    for (let b = a + 1; b < runs.length; b++) {
      const A = decoded[runs[a].label];
      const B = decoded[runs[b].label];
      const diffs = features.map((f, j) => {
        if (!Number.isFinite(A[j].value) || !Number.isFinite(B[j].value)) return null;
        return pairedBootstrap(A[j].rows.length, (idx) => decodedMetric(f, A[j], idx) - decodedMetric(f, B[j], idx), 200, seed + j);
      });
      const discovery = benjaminiHochberg(diffs.map((d) => d?.p ?? NaN));
      differences[`${runs[a].label}|${runs[b].label}`] = diffs.map((d, j) => (d ? { ...d, discovery: discovery[j] } : null));
    }
  }
  return {
    rows: n, folds,
    features: first.map((d, j) => ({ name: d.name, type: features[j].type, metric: d.metric, n: d.n, ...(d.note ? { note: d.note } : {}) })),
    values, differences,
  };
}
