/**
 * Mutual information between features and a target, with scikit-learn 1.2's
 * conventions (`mutual_info_regression`, `mutual_info_classif`), and a
 * k-nearest-neighbour conditional mutual information.
 *
 * - Results are in nats and clipped at 0.
 * - Continuous columns are divided by their standard deviation (ddof 0, not
 *   centred; a std below 10·ε is replaced by 1, as `sklearn.preprocessing.scale`
 *   with `with_mean=False` does). For the regression target y a std of exactly
 *   0 is replaced by 1.
 * - With `noise` (default), 1e-10·max(1, mean|x|)·N(0, 1) is then added to
 *   each continuous column (and to y for regression), from a seeded stream.
 *   It only breaks ties; sklearn always adds it, from numpy's stream.
 * - Continuous–continuous: KSG algorithm 1 (Kraskov et al. 2004), Chebyshev
 *   metric, ε nudged one ulp towards 0, marginal counts d ≤ ε' without the
 *   point itself: MI = ψ(N) + ψ(k) − ⟨ψ(n_x+1)⟩ − ⟨ψ(n_y+1)⟩.
 * - Continuous–discrete: Ross 2014, per label k = min(k, count−1), points with
 *   a unique label dropped, m = all points within the nudged radius (itself
 *   included): MI = ψ(N) + ⟨ψ(k)⟩ − ⟨ψ(N_label)⟩ − ⟨ψ(m)⟩.
 * - Discrete–discrete: plug-in contingency MI (sklearn's `mutual_info_score`).
 */
import { native } from '../binding';
import { uniformStream } from '../rng';
import { callNative, ConfigError, DataError, ShapeError } from '../errors';
import { boolean, integer, invalid, knownKeys, plainObject } from '../validate';
import { KDTree, SortedAxis, nextDown } from './kdtree';

// ---------------------------------------------------------------- digamma

const kEulerGamma = 0.5772156649015329;

/**
 * The digamma function ψ(x) = Γ'(x)/Γ(x), to a few ulps of max(1, |ψ|)
 * for x > 0 (tested against scipy to 1e-12): recurrence ψ(x) = ψ(x+1) − 1/x
 * up to x ≥ 10, then the asymptotic series ln x − 1/(2x) − Σ B₂ₙ/(2n x²ⁿ)
 * (7 terms; the first omitted term is below 5e-17 there). Negative x uses the reflection formula. Poles: ψ(0) is
 * −Infinity, negative integers give NaN.
 */
export function digamma(x: number): number {
  if (Number.isNaN(x) || x === -Infinity) return NaN;
  if (x === Infinity) return Infinity;
  if (x === 0) return -Infinity;
  if (x < 0) {
    if (Number.isInteger(x)) return NaN;
    // ψ(1 − x) − ψ(x) = π cot(πx)
    return digamma(1 - x) - Math.PI / Math.tan(Math.PI * x);
  }
  if (x === 1) return -kEulerGamma;
  let acc = 0;
  while (x < 10) {
    acc -= 1 / x;
    x += 1;
  }
  const inv2 = 1 / (x * x);
  const series =
    inv2 *
    (1 / 12 -
      inv2 *
        (1 / 120 -
          inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132 - inv2 * (691 / 32760 - inv2 / 12))))));
  return acc + Math.log(x) - 0.5 / x - series;
}

let psiCache = new Float64Array([NaN]);
/** ψ(i) for the integers 0..n (index 0 unused). Shared and grown on demand. */
function psiTable(n: number): Float64Array {
  if (psiCache.length <= n) {
    const t = new Float64Array(Math.max(n + 1, 2 * psiCache.length));
    t[0] = -Infinity;
    for (let i = 1; i < t.length; i++) t[i] = digamma(i);
    psiCache = t;
  }
  return psiCache;
}

function meanPsi(counts: ArrayLike<number>, psi: Float64Array): number {
  let s = 0;
  for (let i = 0; i < counts.length; i++) s += psi[counts[i]];
  return s / counts.length;
}

// ------------------------------------------------------------------ noise

/** A seeded stream of N(0, 1) draws: sfc32 uniforms, Box–Muller. */
export function normalStream(seed: number): () => number {
  const uniform = uniformStream(seed);
  let spare = NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const s = spare;
      spare = NaN;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const th = 2 * Math.PI * uniform();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

/** Divides by the std (ddof 0) as sklearn's `scale(with_mean=False)`, then adds the tiny noise. */
function prepareContinuous(v: ArrayLike<number>, zeroStd: 'tiny' | 'exact', normal: (() => number) | null): Float64Array {
  const n = v.length;
  const out = Float64Array.from(v);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += out[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (out[i] - mean) * (out[i] - mean);
  let std = Math.sqrt(ss / n);
  if (zeroStd === 'tiny' ? std < 10 * Number.EPSILON : std === 0) std = 1;
  let absMean = 0;
  for (let i = 0; i < n; i++) {
    out[i] /= std;
    absMean += Math.abs(out[i]);
  }
  if (normal) {
    const amp = 1e-10 * Math.max(1, absMean / n);
    for (let i = 0; i < n; i++) out[i] += amp * normal();
  }
  return out;
}

// ------------------------------------------------------------- estimators

/** KSG algorithm 1 from the marginal counts n_x + 1 and n_y + 1 (itself included). */
function ksgFromCounts(nx: ArrayLike<number>, ny: ArrayLike<number>, n: number, k: number): number {
  const psi = psiTable(n);
  const mi = psi[n] + psi[k] - meanPsi(nx, psi) - meanPsi(ny, psi);
  return Math.max(0, mi);
}

/** KSG algorithm 1 between two prepared continuous variables (the TypeScript path). */
function miContinuousContinuous(x: Float64Array, y: Float64Array, k: number, ySorted?: SortedAxis): number {
  const n = x.length;
  const radius = new KDTree([x, y]).kthNeighborDistances(k);
  for (let i = 0; i < n; i++) radius[i] = nextDown(radius[i]);
  const nx = new SortedAxis(x).countsAround(radius, true); // n_x + 1 (itself included)
  const ny = (ySorted ?? new SortedAxis(y)).countsAround(radius, true);
  return ksgFromCounts(nx, ny, n, k);
}

/**
 * KSG between each of many prepared continuous columns and y. The neighbour
 * search runs natively (native/features/ksg.cc), in parallel over the
 * columns on LibTorch's intra-op threads; the counts are exact, so the
 * result equals the TypeScript path's bit for bit.
 */
function miManyContinuous(xs: Float64Array[], y: Float64Array, k: number, engine: MiEngine): Float64Array {
  const n = y.length;
  if (engine === 'js') {
    const ySorted = new SortedAxis(y);
    return Float64Array.from(xs, (x) => miContinuousContinuous(x, y, k, ySorted));
  }
  const { nx, ny } = callNative(() => native().ksgNeighbourCounts(xs, y, k)) as { nx: Int32Array; ny: Int32Array };
  return Float64Array.from(xs, (_, j) => ksgFromCounts(nx.subarray(j * n, (j + 1) * n), ny.subarray(j * n, (j + 1) * n), n, k));
}

/** Groups indices by exact value (−0 and 0 together, as numpy.unique). */
function groupBy(labels: ArrayLike<number>): Int32Array[] {
  const map = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const g = map.get(labels[i]);
    if (g) g.push(i);
    else map.set(labels[i], [i]);
  }
  return [...map.values()].map((g) => Int32Array.from(g));
}

/** Ross 2014 between a prepared continuous c and discrete labels d. */
function miContinuousDiscrete(c: Float64Array, d: ArrayLike<number>, k: number): number {
  const n = c.length;
  const radius = new Float64Array(n);
  const kAll = new Int32Array(n);
  const counts = new Int32Array(n);
  for (const g of groupBy(d)) {
    const count = g.length;
    for (const i of g) counts[i] = count;
    if (count < 2) continue;
    const kk = Math.min(k, count - 1);
    const sub = new Float64Array(count);
    for (let t = 0; t < count; t++) sub[t] = c[g[t]];
    const r = new SortedAxis(sub).kthNeighborDistances(kk);
    for (let t = 0; t < count; t++) {
      radius[g[t]] = nextDown(r[t]);
      kAll[g[t]] = kk;
    }
  }
  const keep: number[] = [];
  for (let i = 0; i < n; i++) if (counts[i] > 1) keep.push(i);
  const m = keep.length;
  if (m === 0) return 0;
  const ck = new Float64Array(m);
  const rk = new Float64Array(m);
  for (let t = 0; t < m; t++) {
    ck[t] = c[keep[t]];
    rk[t] = radius[keep[t]];
  }
  const mAll = new SortedAxis(ck).countsAround(rk, true);
  const psi = psiTable(n);
  let sk = 0;
  let sl = 0;
  for (const i of keep) {
    sk += psi[kAll[i]];
    sl += psi[counts[i]];
  }
  const mi = psi[m] + sk / m - sl / m - meanPsi(mAll, psi);
  return Math.max(0, mi);
}

/** Plug-in MI of two label vectors, with sklearn `mutual_info_score`'s arithmetic. */
function miDiscreteDiscrete(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  const gx = groupBy(x);
  const gy = groupBy(y);
  if (gx.length === 1 || gy.length === 1) return 0;
  const cy = new Int32Array(n);
  gy.forEach((g, j) => g.forEach((i) => (cy[i] = j)));
  const logN = Math.log(n);
  let mi = 0;
  for (const g of gx) {
    const cells = new Map<number, number>();
    for (const i of g) cells.set(cy[i], (cells.get(cy[i]) ?? 0) + 1);
    for (const [j, v] of cells) {
      const pij = v / n;
      const outer = g.length * gy[j].length;
      const term = pij * (Math.log(v) - logN) + pij * (-Math.log(outer) + logN + logN);
      if (Math.abs(term) >= Number.EPSILON) mi += term;
    }
  }
  return Math.max(0, mi);
}

// -------------------------------------------------------------- validation

/** @internal Checks an array of equal-length finite columns; returns the row count. */
export function checkColumns(X: unknown, name: string): number {
  if (!Array.isArray(X) || X.length === 0) throw new ShapeError(`Expected a non-empty array of columns for ${name} but received ${describeShape(X)}`);
  let n = -1;
  X.forEach((col: unknown, j: number) => {
    if (!isArrayLike(col)) throw new ShapeError(`Expected an array or typed array for ${name}[${j}] but received ${describeShape(col)}`);
    if (n < 0) n = col.length;
    else if (col.length !== n) throw new ShapeError(`${name}[${j}] has length ${col.length} but ${name}[0] has length ${n}; columns must have equal lengths`);
    checkFinite(col, `${name}[${j}]`);
  });
  return n;
}

/** @internal Checks one finite vector of length n (when given). */
export function checkVector(v: unknown, name: string, n?: number, against = 'X'): ArrayLike<number> {
  if (!isArrayLike(v)) throw new ShapeError(`Expected an array or typed array for ${name} but received ${describeShape(v)}`);
  if (n !== undefined && v.length !== n) throw new ShapeError(`${name} has length ${v.length} but ${against} has ${n} rows`);
  checkFinite(v, name);
  return v;
}

function isArrayLike(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function describeShape(v: unknown): string {
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  return typeof v === 'object' ? 'an object' : `${String(v)} of type ${typeof v}`;
}

function checkFinite(v: ArrayLike<number>, name: string): void {
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new DataError(`${name}[${i}] is ${typeof x === 'number' ? String(x) : `of type ${typeof x}`}; expected finite numbers`);
    }
  }
}

function checkLabels(v: ArrayLike<number>, name: string): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isInteger(v[i])) throw new DataError(`${name}[${i}] is ${v[i]}; expected an integer class label`);
  }
}

// -------------------------------------------------------------- public API

export interface MutualInfoOptions {
  /** Neighbours k of the KSG / Ross estimators; 1 ≤ k < n. @default 3 */
  nNeighbors?: number;
  /**
   * Which columns of X are discrete: one boolean per column, or one for all.
   * 'auto' means all continuous (sklearn's rule for dense X). @default 'auto'
   */
  discreteFeatures?: boolean[] | 'auto' | boolean;
  /** Seed of the tie-breaking noise. @default 0 */
  seed?: number;
  /** Add 1e-10·max(1, mean|x|)·N(0,1) to continuous variables after scaling. @default true */
  noise?: boolean;
  /**
   * Where the continuous–continuous neighbour search runs: 'native' (C++,
   * parallel over columns) or 'js' (TypeScript, one thread). Both give the
   * same values. @default 'native'
   */
  engine?: MiEngine;
}

export type MiEngine = 'native' | 'js';

interface Resolved {
  n: number;
  k: number;
  discrete: boolean[];
  normal: (() => number) | null;
  engine: MiEngine;
}

function resolve(X: unknown, y: unknown, opts: unknown): Resolved & { y: ArrayLike<number> } {
  const n = checkColumns(X, 'X');
  const p = (X as unknown[]).length;
  const yv = checkVector(y, 'y', n);
  const o = opts === undefined ? {} : plainObject(opts, 'options');
  knownKeys(o, '', ['nNeighbors', 'discreteFeatures', 'seed', 'noise', 'engine']);
  if (n < 2) throw new ShapeError(`X has ${n} rows; mutual information needs at least 2`);
  const k = o.nNeighbors === undefined ? 3 : integer(o.nNeighbors, 'nNeighbors', 1, n - 1);
  const df = o.discreteFeatures ?? 'auto';
  let discrete: boolean[];
  if (df === 'auto' || typeof df === 'boolean') discrete = new Array<boolean>(p).fill(df === true);
  else if (Array.isArray(df)) {
    if (df.length !== p) throw new ShapeError(`discreteFeatures has length ${df.length} but X has ${p} columns`);
    discrete = df.map((b, j) => boolean(b, `discreteFeatures[${j}]`));
  } else throw invalid("boolean, boolean array or 'auto'", 'discreteFeatures', df);
  const seed = o.seed === undefined ? 0 : integer(o.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const noise = o.noise === undefined ? true : boolean(o.noise, 'noise');
  const engine = o.engine === undefined ? 'native' : o.engine;
  if (engine !== 'native' && engine !== 'js') throw invalid("'native' or 'js'", 'engine', engine);
  return { n, k, discrete, normal: noise ? normalStream(seed) : null, y: yv, engine };
}

/**
 * MI between each column of X and a continuous target y (sklearn's
 * `mutual_info_regression`). X is an array of columns.
 * @throws ShapeError for ragged columns or a y of another length; DataError
 *   for NaN/±Infinity; ConfigError for bad options (nNeighbors ≥ n, …).
 */
export function mutualInfoRegression(X: ArrayLike<number>[], y: ArrayLike<number>, opts?: MutualInfoOptions): Float64Array {
  const r = resolve(X, y, opts);
  const cols = X.map((c, j) => (r.discrete[j] ? c : prepareContinuous(c, 'tiny', r.normal)));
  const yc = prepareContinuous(r.y, 'exact', r.normal);
  const continuous: number[] = [];
  cols.forEach((_, j) => !r.discrete[j] && continuous.push(j));
  const ksg = miManyContinuous(continuous.map((j) => cols[j] as Float64Array), yc, r.k, r.engine);
  const out = new Float64Array(cols.length);
  continuous.forEach((j, t) => (out[j] = ksg[t]));
  cols.forEach((c, j) => r.discrete[j] && (out[j] = miContinuousDiscrete(yc, c, r.k)));
  return out;
}

/**
 * MI between each column of X and integer class labels y (sklearn's
 * `mutual_info_classif`). Continuous columns use Ross's estimator, discrete
 * columns the contingency table.
 * @throws as mutualInfoRegression, and DataError for a non-integer label.
 */
export function mutualInfoClassif(X: ArrayLike<number>[], y: ArrayLike<number>, opts?: MutualInfoOptions): Float64Array {
  const r = resolve(X, y, opts);
  checkLabels(r.y, 'y');
  const cols = X.map((c, j) => (r.discrete[j] ? c : prepareContinuous(c, 'tiny', r.normal)));
  return Float64Array.from(cols, (c, j) =>
    r.discrete[j] ? miDiscreteDiscrete(c, r.y) : miContinuousDiscrete(c as Float64Array, r.y, r.k),
  );
}

export interface ConditionalMutualInfoOptions {
  /** Neighbours k in the joint space; 1 ≤ k < n. @default 3 */
  nNeighbors?: number;
  /** Treat z as discrete labels (one column). @default false */
  discreteZ?: boolean;
  /** Seed of the tie-breaking noise. @default 0 */
  seed?: number;
  /** Add the tiny tie-breaking noise to continuous variables. @default true */
  noise?: boolean;
}

/**
 * Conditional mutual information I(X; Y | Z) in nats, clipped at 0, for
 * continuous x and y (scaled and noised as in mutualInfoRegression).
 *
 * Continuous z (one column, or an array of columns for a multivariate Z):
 * Frenzel–Pompe 2007, the KSG idea in the joint (x, y, z) space under the
 * Chebyshev metric: ε_i = the k-th neighbour distance (nudged one ulp down),
 * n_xz, n_yz, n_z = points within ε_i in those subspaces, the point excluded:
 *   I = ψ(k) − ⟨ψ(n_xz + 1) + ψ(n_yz + 1) − ψ(n_z + 1)⟩.
 * Discrete z (`discreteZ`): points of different z are infinitely far apart,
 * so the same formula becomes, per group g of size N_g with k_g = min(k, N_g−1),
 *   I = ⟨ψ(k_g) − ψ(n_x + 1) − ψ(n_y + 1) + ψ(N_g)⟩
 * over all points not alone in their group, i.e. the N_g-weighted mean of
 * the per-group KSG estimates of I(X; Y | Z = g).
 */
export function conditionalMutualInfo(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  z: ArrayLike<number> | ArrayLike<number>[],
  opts?: ConditionalMutualInfoOptions,
): number {
  const xv = checkVector(x, 'x');
  const n = xv.length;
  const yv = checkVector(y, 'y', n, 'x');
  const zCols = Array.isArray(z) && z.length > 0 && isArrayLike(z[0]) ? (z as ArrayLike<number>[]) : [z as ArrayLike<number>];
  if (zCols.length === 1) checkVector(zCols[0], 'z', n, 'x');
  else zCols.forEach((c, j) => checkVector(c, `z[${j}]`, n, 'x'));
  const o = opts === undefined ? {} : plainObject(opts, 'options');
  knownKeys(o, '', ['nNeighbors', 'discreteZ', 'seed', 'noise']);
  if (n < 2) throw new ShapeError(`x has ${n} rows; conditional mutual information needs at least 2`);
  const k = o.nNeighbors === undefined ? 3 : integer(o.nNeighbors, 'nNeighbors', 1, n - 1);
  const discreteZ = o.discreteZ === undefined ? false : boolean(o.discreteZ, 'discreteZ');
  if (discreteZ && zCols.length !== 1) throw new ConfigError(`discreteZ needs a single z column but received ${zCols.length}`);
  const seed = o.seed === undefined ? 0 : integer(o.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const normal = (o.noise === undefined ? true : boolean(o.noise, 'noise')) ? normalStream(seed) : null;
  const xs = prepareContinuous(xv, 'tiny', normal);
  const ys = prepareContinuous(yv, 'tiny', normal);
  const psi = psiTable(n);
  if (discreteZ) {
    let sum = 0;
    let kept = 0;
    for (const g of groupBy(zCols[0])) {
      const ng = g.length;
      if (ng < 2) continue;
      const kg = Math.min(k, ng - 1);
      const gx = Float64Array.from(g, (i) => xs[i]);
      const gy = Float64Array.from(g, (i) => ys[i]);
      const eps = new KDTree([gx, gy]).kthNeighborDistances(kg);
      for (let t = 0; t < ng; t++) eps[t] = nextDown(eps[t]);
      const nx = new SortedAxis(gx).countsAround(eps, true);
      const ny = new SortedAxis(gy).countsAround(eps, true);
      for (let t = 0; t < ng; t++) sum += psi[kg] - psi[nx[t]] - psi[ny[t]] + psi[ng];
      kept += ng;
    }
    return kept === 0 ? 0 : Math.max(0, sum / kept);
  }
  const zs = zCols.map((c) => prepareContinuous(c, 'tiny', normal));
  const eps = new KDTree([xs, ys, ...zs]).kthNeighborDistances(k);
  for (let i = 0; i < n; i++) eps[i] = nextDown(eps[i]);
  const nxz = new KDTree([xs, ...zs]).countsAround(eps, true);
  const nyz = new KDTree([ys, ...zs]).countsAround(eps, true);
  const nz = zs.length === 1 ? new SortedAxis(zs[0]).countsAround(eps, true) : new KDTree(zs).countsAround(eps, true);
  const cmi = psi[k] - meanPsi(nxz, psi) - meanPsi(nyz, psi) + meanPsi(nz, psi);
  return Math.max(0, cmi);
}
