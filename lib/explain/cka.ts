/**
 * Centred kernel alignment (Kornblith et al. 2019, "Similarity of Neural
 * Network Representations Revisited"): how similar two representations of
 * the same N examples are, e.g. two runs' embeddings of a cohort.
 *
 * - linear CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F), columns centred;
 * - RBF CKA = HSIC(K, L) / √(HSIC(K, K) · HSIC(L, L)), K and L Gaussian
 *   Gram matrices, σ² = threshold² · median of the squared pairwise
 *   distances (over all N² entries, as Kornblith et al.'s reference code).
 *
 * Matrices are row-major N×D (float32 or float64); X and Y may differ in D.
 * Everything is computed in float64. A representation with no variance
 * (constant rows) gives NaN.
 */
import { ShapeError } from '../errors';
import * as is from '../validate';

/** A row-major N×D matrix. */
export interface CkaMatrix {
  data: Float32Array | Float64Array;
  shape: readonly [number, number] | readonly number[];
}

export interface RbfCkaOptions {
  /** σ as a fraction of the median pairwise distance (Kornblith et al.'s `threshold`). @default 0.5 */
  threshold?: number;
}

function check(m: unknown, name: string): { data: Float32Array | Float64Array; n: number; d: number } {
  if (m === null || typeof m !== 'object') throw new ShapeError(`Expected ${name} as { data, shape: [N, D] } but received ${m === null ? 'null' : typeof m}`);
  const { data, shape } = m as { data: unknown; shape: unknown };
  if (!(data instanceof Float32Array) && !(data instanceof Float64Array)) {
    throw new ShapeError(`Expected Float32Array or Float64Array for ${name}.data but received ${ArrayBuffer.isView(data) ? `a ${(data as object).constructor.name}` : typeof data}`);
  }
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new ShapeError(`Expected ${name}.shape [N, D] of positive integers but received ${JSON.stringify(shape)}`);
  }
  const [n, d] = shape as number[];
  if (data.length !== n * d) throw new ShapeError(`Expected ${n * d} values for ${name}.data (shape [${n}, ${d}]) but received ${data.length}`);
  return { data, n, d };
}

function pair(x: unknown, y: unknown) {
  const a = check(x, 'x');
  const b = check(y, 'y');
  if (a.n !== b.n) throw new ShapeError(`Expected x and y with the same number of rows (examples) but received ${a.n} and ${b.n}`);
  if (a.n < 2) throw new ShapeError(`Expected at least 2 rows in x and y but received ${a.n}`);
  return { a, b, n: a.n };
}

/** Column-centred float64 copy. */
function centreColumns(data: Float32Array | Float64Array, n: number, d: number): Float64Array {
  const out = Float64Array.from(data);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += out[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[i * d + j] -= mean[j];
  return out;
}

/** Gram matrix XXᵀ (N×N) of a row-major N×D matrix. */
function gram(x: Float64Array, n: number, d: number): Float64Array {
  const k = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += x[i * d + c] * x[j * d + c];
      k[i * n + j] = s;
      k[j * n + i] = s;
    }
  }
  return k;
}

/** ‖AᵀB‖²_F for row-major N×p and N×q matrices. */
function crossNorm2(a: Float64Array, p: number, b: Float64Array, q: number, n: number): number {
  const m = new Float64Array(p * q);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < p; r++) {
      const v = a[i * p + r];
      if (v === 0) continue;
      const row = r * q;
      for (let c = 0; c < q; c++) m[row + c] += v * b[i * q + c];
    }
  }
  let s = 0;
  for (let i = 0; i < m.length; i++) s += m[i] * m[i];
  return s;
}

/** Σ A ⊙ B over two same-size arrays. */
function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Double-centres a symmetric N×N matrix in place: HKH. */
function centreGram(k: Float64Array, n: number): Float64Array {
  const row = new Float64Array(n);
  let all = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += k[i * n + j];
    row[i] = s / n;
    all += s;
  }
  all /= n * n;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) k[i * n + j] += all - row[i] - row[j];
  return k;
}

/**
 * Linear CKA between two representations of the same N examples (rows).
 * Uses the feature-space form ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) or the equal
 * Gram-matrix form ⟨K̃, L̃⟩ / (‖K̃‖_F ‖L̃‖_F), whichever is cheaper.
 */
export function linearCka(x: CkaMatrix, y: CkaMatrix): number {
  const { a, b, n } = pair(x, y);
  const xc = centreColumns(a.data, n, a.d);
  const yc = centreColumns(b.data, n, b.d);
  const featureCost = a.d * b.d + a.d * a.d + b.d * b.d;
  const gramCost = n * (a.d + b.d) + 3 * n;
  if (featureCost <= gramCost) {
    const xy = crossNorm2(yc, b.d, xc, a.d, n);
    const xx = Math.sqrt(crossNorm2(xc, a.d, xc, a.d, n));
    const yy = Math.sqrt(crossNorm2(yc, b.d, yc, b.d, n));
    return xx > 0 && yy > 0 ? xy / (xx * yy) : NaN;
  }
  // Column-centred X gives a double-centred Gram matrix already.
  const k = gram(xc, n, a.d);
  const l = gram(yc, n, b.d);
  const kk = Math.sqrt(dot(k, k));
  const ll = Math.sqrt(dot(l, l));
  return kk > 0 && ll > 0 ? dot(k, l) / (kk * ll) : NaN;
}

/** The Gaussian Gram matrix exp(−d²/(2σ²)), σ² = threshold² · median(d²) over all N² pairs. */
function rbfGram(data: Float32Array | Float64Array, n: number, d: number, threshold: number): Float64Array | null {
  const x = Float64Array.from(data);
  const g = gram(x, n, d);
  const sq = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sq[i * n + j] = Math.max(0, g[i * n + i] + g[j * n + j] - 2 * g[i * n + j]);
  const sorted = Float64Array.from(sq).sort();
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  if (!(median > 0)) return null;
  const denom = 2 * threshold * threshold * median;
  for (let i = 0; i < sq.length; i++) sq[i] = Math.exp(-sq[i] / denom);
  return sq;
}

/**
 * RBF CKA: HSIC(K, L) / √(HSIC(K, K) · HSIC(L, L)) with Gaussian kernels,
 * σ = threshold × the median pairwise distance of each representation.
 */
export function rbfCka(x: CkaMatrix, y: CkaMatrix, options: RbfCkaOptions = {}): number {
  const { a, b, n } = pair(x, y);
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, 'options', ['threshold']);
  const threshold = is.positiveNumber(o.threshold ?? 0.5, 'options.threshold');
  const k = rbfGram(a.data, n, a.d, threshold);
  const l = rbfGram(b.data, n, b.d, threshold);
  if (!k || !l) return NaN;
  centreGram(k, n);
  centreGram(l, n);
  const kk = dot(k, k);
  const ll = dot(l, l);
  return kk > 0 && ll > 0 ? dot(k, l) / Math.sqrt(kk * ll) : NaN;
}

/** CKA with the kernel named: 'linear' (default) or 'rbf'. */
export function cka(x: CkaMatrix, y: CkaMatrix, options: { kernel?: 'linear' | 'rbf'; threshold?: number } = {}): number {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, 'options', ['kernel', 'threshold']);
  const kernel = is.oneOf(o.kernel ?? 'linear', 'options.kernel', ['linear', 'rbf'] as const);
  if (kernel === 'linear') {
    if (o.threshold !== undefined) throw is.invalid('no threshold for the linear kernel', 'options.threshold', o.threshold);
    return linearCka(x, y);
  }
  return rbfCka(x, y, o.threshold === undefined ? {} : { threshold: o.threshold as number });
}
