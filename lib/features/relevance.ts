/**
 * Relevance of tabular features, computed on a cohort's train split only:
 *
 * - task relevance: I(X_f; Y_t) per task (sklearn-style kNN / contingency
 *   estimators from ./mi, categorical columns as discrete), and its mean over
 *   the tasks given;
 * - the mixed-type pairwise and conditional MI that the selectors need;
 * - cross-modal relevance (how much of a feature the image carries):
 *   cross-validated ridge R² from an encoder's embedding, and MI with its
 *   leading principal components (below).
 *
 * Rows are the preprocessed train rows (z-scores, categorical codes, median /
 * mode imputation; lib/data/preprocess.ts, fitted on train), optionally a
 * seeded subsample of them. Nothing here reads a val or test row.
 */
import type { Cohort } from '../data/cohort';
import { encodeLabels, fitPreprocessor } from '../data/preprocess';
import { ConfigError, DataError } from '../errors';
import { uniformStream } from '../eval/metrics';
import { conditionalMutualInfo, mutualInfoClassif, mutualInfoRegression } from './mi';
import * as is from '../validate';

export type TaskKind = 'binary' | 'multiclass' | 'regression';

/** Preprocessed feature columns on a set of train rows. */
export interface FeatureData {
  names: string[];
  /** One column per feature, one value per row of `rows`. */
  columns: Float64Array[];
  /** True for categorical columns (integer codes). */
  discrete: boolean[];
  /** The cohort rows used (train rows, ascending). */
  rows: number[];
}

/** One task's labels on the rows of a FeatureData (NaN = missing label). */
export interface TaskTarget {
  name: string;
  kind: TaskKind;
  y: Float64Array;
}

export interface MiOptions {
  /** k of the kNN estimators (capped at n − 1 for small groups). @default 3 */
  nNeighbors?: number;
  /** Seed of the estimators' tie-breaking noise. @default 0 */
  seed?: number;
}

/**
 * Train rows to select on: all of them, or a seeded subsample without
 * replacement of round(fraction · n) rows (at least 10), ascending.
 */
export function trainRows(cohort: Cohort, fraction = 1, seed = 0): number[] {
  const train = cohort.splits.train;
  if (train.length === 0) throw new DataError(`${cohort.dir}: the cohort has no training rows to select features on`);
  if (!(fraction > 0 && fraction <= 1)) throw new ConfigError(`Expected number in (0, 1] for subsample but received ${String(fraction)}`);
  if (fraction === 1) return [...train];
  const m = Math.min(train.length, Math.max(10, Math.round(fraction * train.length)));
  const rng = uniformStream(seed);
  const a = [...train];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, m).sort((x, y) => x - y);
}

/** The cohort's feature columns on `rows` (train rows), preprocessed with a preprocessor fitted on train. */
export function featureData(cohort: Cohort, rows: number[], features?: string[]): FeatureData {
  const train = new Set(cohort.splits.train);
  const bad = rows.find((r) => !train.has(r));
  if (bad !== undefined) throw new DataError(`row ${bad} (id "${cohort.ids[bad]}") is not a train row; feature selection reads the train split only`);
  const prep = fitPreprocessor(cohort, { features, missingIndicators: false });
  const t = prep.transform(cohort, rows);
  const [m, p] = t.shape;
  const columns = Array.from({ length: p }, (_, j) => {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = t.data[i * p + j];
    return c;
  });
  return { names: t.names, columns, discrete: t.cardinalities.map((c) => c > 0), rows: [...rows] };
}

/** Labels of each task on `rows`; classification labels as class indices. */
export function taskTargets(cohort: Cohort, rows: number[], tasks?: string[]): TaskTarget[] {
  const names = tasks ?? cohort.labels.tasks.map((t) => t.name);
  return names.map((name) => {
    const enc = encodeLabels(cohort, name); // throws ConfigError for an unknown task
    const spec = cohort.labels.tasks.find((t) => t.name === name)!;
    const y = Float64Array.from(rows, (r) => (enc instanceof Int32Array ? (enc[r] >= 0 ? enc[r] : NaN) : enc[r]));
    return { name, kind: spec.type, y };
  });
}

const pick = (v: ArrayLike<number>, idx: readonly number[]) => Float64Array.from(idx, (i) => v[i]);

/** The rows (indices into target.y) that have a label. */
export function labelledRows(target: TaskTarget): number[] {
  const out: number[] = [];
  for (let i = 0; i < target.y.length; i++) if (!Number.isNaN(target.y[i])) out.push(i);
  return out;
}

function kFor(n: number, k: number): number {
  return Math.max(1, Math.min(k, n - 1));
}

/**
 * I(X_f; Y_t) in nats for every feature and task (rows with a missing label
 * left out), and the mean over tasks. Classification: mutualInfoClassif
 * (Ross for continuous columns, contingency for categorical ones);
 * regression: mutualInfoRegression (KSG; Ross with the categorical column as
 * the label).
 */
export function taskRelevance(data: FeatureData, targets: TaskTarget[], opts: MiOptions = {}): { perTask: Record<string, Float64Array>; mean: Float64Array } {
  if (targets.length === 0) throw new ConfigError('Task relevance needs at least one task; the cohort has no labels (cohort.yaml labels:)');
  const perTask: Record<string, Float64Array> = {};
  const mean = new Float64Array(data.names.length);
  for (const t of targets) {
    const idx = labelledRows(t);
    if (idx.length < 3) throw new DataError(`task "${t.name}" has ${idx.length} labelled train rows; mutual information needs at least 3`);
    if (t.kind !== 'regression') {
      const classes = new Set(idx.map((i) => t.y[i]));
      // One class carries no information about any feature: every score would be 0 and the ranking arbitrary.
      if (classes.size < 2) throw new DataError(`task "${t.name}" has a single class in its ${idx.length} labelled train rows; its relevance to the features is undefined (drop the task with --task, or fix the labels)`);
    }
    const X = data.columns.map((c) => pick(c, idx));
    const y = pick(t.y, idx);
    const o = { nNeighbors: kFor(idx.length, opts.nNeighbors ?? 3), discreteFeatures: data.discrete, seed: opts.seed ?? 0 };
    const mi = t.kind === 'regression' ? mutualInfoRegression(X, y, o) : mutualInfoClassif(X, y, o);
    perTask[t.name] = mi;
    for (let j = 0; j < mi.length; j++) mean[j] += mi[j] / targets.length;
  }
  return { perTask, mean };
}

/**
 * I(A; B) in nats for two feature columns of any type: KSG for two
 * continuous columns, Ross when one is categorical (it plays the label),
 * the contingency table when both are.
 */
export function pairMI(a: ArrayLike<number>, aDiscrete: boolean, b: ArrayLike<number>, bDiscrete: boolean, opts: MiOptions = {}): number {
  const n = a.length;
  if (n < 3) return 0;
  const o = { nNeighbors: kFor(n, opts.nNeighbors ?? 3), seed: opts.seed ?? 0 };
  if (bDiscrete) return mutualInfoClassif([a], b, { ...o, discreteFeatures: aDiscrete })[0];
  return mutualInfoRegression([a], b, { ...o, discreteFeatures: aDiscrete })[0];
}

/** Equal-frequency bins of a continuous label (ties stay together), as integer codes. */
export function quantileBins(y: ArrayLike<number>, bins: number): Float64Array {
  const order = Array.from({ length: y.length }, (_, i) => i).sort((i, j) => y[i] - y[j]);
  const out = new Float64Array(y.length);
  let start = 0;
  while (start < order.length) {
    let end = start + 1;
    while (end < order.length && y[order[end]] === y[order[start]]) end++;
    const code = Math.min(bins - 1, Math.floor((start * bins) / order.length));
    for (let r = start; r < end; r++) out[order[r]] = code;
    start = end;
  }
  return out;
}

export interface ConditionalOptions extends MiOptions {
  /** Equal-frequency bins of a regression label, used when a categorical column is involved. @default 5 */
  bins?: number;
}

/**
 * I(A; B | Y) in nats for two feature columns given one task's labels (rows
 * with a missing label left out).
 *
 * - Two continuous columns: conditionalMutualInfo (Frenzel–Pompe KSG), with
 *   discrete z for classification and continuous z for regression.
 * - A categorical column involved: Σ_g p(g) · I(A; B | Y = g) over the label
 *   groups g (regression labels cut into `bins` equal-frequency bins), each
 *   term by pairMI; groups of fewer than 3 rows are skipped and the weights
 *   renormalised.
 */
export function conditionalPairMI(a: ArrayLike<number>, aDiscrete: boolean, b: ArrayLike<number>, bDiscrete: boolean, target: TaskTarget, opts: ConditionalOptions = {}): number {
  const idx = labelledRows(target);
  if (idx.length < 3) return 0;
  const A = pick(a, idx);
  const B = pick(b, idx);
  const y = pick(target.y, idx);
  const k = opts.nNeighbors ?? 3;
  const seed = opts.seed ?? 0;
  if (!aDiscrete && !bDiscrete) {
    return conditionalMutualInfo(A, B, y, { nNeighbors: kFor(idx.length, k), discreteZ: target.kind !== 'regression', seed });
  }
  const g = target.kind === 'regression' ? quantileBins(y, opts.bins ?? 5) : y;
  const groups = new Map<number, number[]>();
  for (let i = 0; i < g.length; i++) {
    const list = groups.get(g[i]);
    if (list) list.push(i);
    else groups.set(g[i], [i]);
  }
  let sum = 0;
  let used = 0;
  for (const members of groups.values()) {
    if (members.length < 3) continue;
    sum += members.length * pairMI(pick(A, members), aDiscrete, pick(B, members), bDiscrete, { nNeighbors: k, seed });
    used += members.length;
  }
  return used === 0 ? 0 : sum / used;
}

// ------------------------------------------------------------ cross-modal

export interface CrossModalOptions extends MiOptions {
  /** Image encoder: a run directory (e.g. an image-only SimCLR run) or 'random:resnet18' / 'random:resnet50'. @default 'random:resnet18' */
  encoder?: string;
  /** Folds of the ridge cross-validation on the train rows. @default 5 */
  folds?: number;
  /** Principal components of the embedding that the ridge regression uses. @default 32 */
  components?: number;
  /** Leading principal components whose MI with each feature is estimated. @default 3 */
  miComponents?: number;
}

/**
 * Checks CrossModalOptions (ConfigError naming `name.key`): a string
 * `folds` or a `components` of 0 ran silently as NaN folds (every R² 0)
 * or as 1 component.
 */
export function checkCrossModalOptions(opts: unknown, name = 'crossModal'): CrossModalOptions {
  if (opts === undefined) return {};
  const o = is.plainObject(opts, name);
  is.knownKeys(o, name, ['encoder', 'folds', 'components', 'miComponents', 'nNeighbors', 'seed']);
  if (o.encoder !== undefined) is.string(o.encoder, `${name}.encoder`);
  if (o.folds !== undefined) is.integer(o.folds, `${name}.folds`, 2);
  if (o.components !== undefined) is.positiveInteger(o.components, `${name}.components`);
  if (o.miComponents !== undefined) is.positiveInteger(o.miComponents, `${name}.miComponents`);
  if (o.nNeighbors !== undefined) is.positiveInteger(o.nNeighbors, `${name}.nNeighbors`);
  if (o.seed !== undefined) is.integer(o.seed, `${name}.seed`, 0, Number.MAX_SAFE_INTEGER);
  return o as CrossModalOptions;
}

export interface CrossModalRelevance {
  encoder: string;
  names: string[];
  /** Out-of-fold ridge R² of each feature from the embedding (categorical: pooled over its one-hot columns); can be negative. */
  r2: Float64Array;
  /** −½ ln(1 − max(0, R²)): the R² as the MI of a Gaussian channel, in nats, so it can stand in for a relevance. */
  nats: Float64Array;
  /** max over the leading `miComponents` PCs of I(feature; PC_j), in nats: a lower bound on I(feature; those PCs). */
  pcMI: Float64Array;
  /** Number of PCs used by the ridge regression, and the fraction of the embedding's variance each carries. */
  components: number;
  explained: number[];
}

/** Embeddings (row-major, rows × d) of the given cohort rows by a run or a random encoder. */
export async function embedRows(cohort: Cohort, encoder: string, rows: number[], seed = 0): Promise<{ emb: Float64Array; d: number }> {
  const { embedCohort } = await import('../pipeline/evaluate');
  const { cohortImageStore } = await import('../pipeline/cohort-pretrain');
  const { loadRun, randomRun } = await import('../run');
  const m = /^random:(resnet18|resnet50)$/.exec(encoder);
  let run;
  if (m) {
    const { resolvePretrainOptions } = await import('../pretrain-options');
    const { channelStats } = await import('../image-stats');
    const [n, channels, height, width] = cohort.images.shape;
    const facts = { n, channels, height, width, dtype: cohort.images.dtype } as const;
    const images = cohortImageStore(cohort);
    const normalize = await channelStats(images, facts, cohort.splits.train);
    run = randomRun(resolvePretrainOptions({ out: '-', images, model: { arch: m[1] as 'resnet18' | 'resnet50' } }, facts, normalize), seed);
  } else {
    run = await loadRun(encoder);
  }
  try {
    const all = await embedCohort(run, cohort);
    const d = run.featureDim;
    const emb = new Float64Array(rows.length * d);
    rows.forEach((r, i) => {
      for (let j = 0; j < d; j++) emb[i * d + j] = all[r * d + j];
    });
    return { emb, d };
  } finally {
    run.dispose();
  }
}

/** Cyclic Jacobi eigen-decomposition of a symmetric matrix (rows); eigenvalues descending, vectors as columns of V. */
function symmetricEigen(S: Float64Array[]): { values: Float64Array; vectors: Float64Array[] } {
  const m = S.length;
  const A = S.map((r) => Float64Array.from(r));
  const V = Array.from({ length: m }, (_, i) => Float64Array.from({ length: m }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let norm = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) (i === j ? (norm += A[i][j] ** 2) : (off += A[i][j] ** 2));
    if (off <= 1e-30 * Math.max(norm, 1e-300)) break;
    for (let p = 0; p < m; p++) {
      for (let q = p + 1; q < m; q++) {
        if (Math.abs(A[p][q]) < 1e-300) continue;
        const theta = (A[q][q] - A[p][p]) / (2 * A[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < m; k++) {
          const akp = A[k][p];
          const akq = A[k][q];
          A[k][p] = c * akp - s * akq;
          A[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < m; k++) {
          const apk = A[p][k];
          const aqk = A[q][k];
          A[p][k] = c * apk - s * aqk;
          A[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < m; k++) {
          const vkp = V[k][p];
          const vkq = V[k][q];
          V[k][p] = c * vkp - s * vkq;
          V[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => A[b][b] - A[a][a]);
  return { values: Float64Array.from(order, (i) => A[i][i]), vectors: V.map((row) => Float64Array.from(order, (i) => row[i])) };
}

/** Orthonormalises the columns of an n×l row-major matrix in place (modified Gram–Schmidt, twice). */
function orthonormalize(Y: Float64Array, n: number, l: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < l; j++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let r = 0; r < n; r++) dot += Y[r * l + i] * Y[r * l + j];
        for (let r = 0; r < n; r++) Y[r * l + j] -= dot * Y[r * l + i];
      }
      let nrm = 0;
      for (let r = 0; r < n; r++) nrm += Y[r * l + j] ** 2;
      nrm = Math.sqrt(nrm);
      for (let r = 0; r < n; r++) Y[r * l + j] = nrm > 1e-12 ? Y[r * l + j] / nrm : 0;
    }
  }
}

/**
 * Leading principal component scores (n × q, by columns) of the standardised
 * embedding, by a seeded randomized SVD (Halko et al. 2011: range finder with
 * 10 extra columns and two power iterations, then an exact eigen-decomposition
 * of the small projected matrix).
 */
export function principalComponents(emb: Float64Array, n: number, d: number, q: number, seed = 0): { scores: Float64Array[]; explained: number[] } {
  const Z = Float64Array.from(emb);
  let total = 0;
  for (let j = 0; j < d; j++) {
    let mu = 0;
    for (let i = 0; i < n; i++) mu += Z[i * d + j];
    mu /= n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (Z[i * d + j] - mu) ** 2;
    const sd = Math.sqrt(ss / n);
    for (let i = 0; i < n; i++) Z[i * d + j] = sd > 1e-12 ? (Z[i * d + j] - mu) / sd : 0;
    if (sd > 1e-12) total += n;
  }
  const l = Math.min(q + 10, n, d);
  const normal = uniformNormal(seed);
  const Y = new Float64Array(n * l);
  const mulZ = (W: Float64Array) => {
    Y.fill(0);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) { const z = Z[i * d + k]; if (z !== 0) for (let j = 0; j < l; j++) Y[i * l + j] += z * W[k * l + j]; }
  };
  const W = Float64Array.from({ length: d * l }, normal);
  mulZ(W);
  orthonormalize(Y, n, l);
  for (let it = 0; it < 2; it++) {
    W.fill(0);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) { const z = Z[i * d + k]; if (z !== 0) for (let j = 0; j < l; j++) W[k * l + j] += z * Y[i * l + j]; }
    orthonormalize(W, d, l);
    mulZ(W);
    orthonormalize(Y, n, l);
  }
  // B = Yᵀ Z (l × d); C = B Bᵀ.
  const B = Array.from({ length: l }, () => new Float64Array(d));
  for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) { const y = Y[i * l + j]; if (y !== 0) for (let k = 0; k < d; k++) B[j][k] += y * Z[i * d + k]; }
  const C = B.map((bi) => Float64Array.from(B, (bj) => { let s = 0; for (let k = 0; k < d; k++) s += bi[k] * bj[k]; return s; }));
  const { values, vectors } = symmetricEigen(C);
  const qq = Math.max(1, Math.min(q, values.filter((v) => v > 1e-9 * Math.max(values[0], 1e-300)).length));
  const scores = Array.from({ length: qq }, (_, c) => {
    const s = Math.sqrt(Math.max(values[c], 0));
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) { let v = 0; for (let j = 0; j < l; j++) v += Y[i * l + j] * vectors[j][c]; col[i] = v * s; }
    return col;
  });
  return { scores, explained: Array.from({ length: qq }, (_, c) => (total > 0 ? Math.max(values[c], 0) / total : 0)) };
}

function uniformNormal(seed: number): () => number {
  const u = uniformStream(seed);
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Inverse of a symmetric positive-definite matrix by Cholesky. */
function spdInverse(A: Float64Array[]): Float64Array[] {
  const m = A.length;
  const L = A.map(() => new Float64Array(m));
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i][j];
      for (let k = 0; k < j; k++) s -= L[i][k] * L[j][k];
      L[i][j] = i === j ? Math.sqrt(Math.max(s, 1e-300)) : s / L[j][j];
    }
  }
  const inv = A.map(() => new Float64Array(m));
  for (let c = 0; c < m; c++) {
    const y = new Float64Array(m);
    for (let i = 0; i < m; i++) { let s = i === c ? 1 : 0; for (let k = 0; k < i; k++) s -= L[i][k] * y[k]; y[i] = s / L[i][i]; }
    for (let i = m - 1; i >= 0; i--) { let s = y[i]; for (let k = i + 1; k < m; k++) s -= L[k][i] * inv[k][c]; inv[i][c] = s / L[i][i]; }
  }
  return inv;
}

/** The ridge penalties ridgeR2 chooses from: s·10^e, s = trace(XᵀX)/q. */
const RIDGE_PENALTY_EXPONENTS = [-3, -2, -1, 0, 1, 2];

/** A ridge fit's reusable parts: W rows A⁻¹xᵢ (A = XᵀX + λI on centred X) and the hat values hᵢ. */
export interface RidgeLooFit {
  lambda: number;
  Wm: Float64Array[];
  h: Float64Array;
}

/**
 * Ridge regressions with an unpenalised intercept on the rows `Xt` (centred
 * on their means, rows × q), one per penalty λ = s·10^e with s =
 * trace(XᵀX)/q. The hat value of row i is 1/n + xᵢᵀA⁻¹xᵢ: the intercept
 * (the mean) is a fitted parameter too.
 */
export function ridgeLooFits(Xt: Float64Array[], exponents: readonly number[]): RidgeLooFit[] {
  const q = Xt[0].length;
  const n = Xt.length;
  const G = Array.from({ length: q }, (_, a) => Float64Array.from({ length: q }, (_, b) => Xt.reduce((s, x) => s + x[a] * x[b], 0)));
  const scale = Math.max(G.reduce((s, r, a) => s + r[a], 0) / q, 1e-12);
  return exponents.map((e) => {
    const lambda = scale * 10 ** e;
    const Ainv = spdInverse(G.map((r, a) => r.map((v, b) => v + (a === b ? lambda : 0))));
    const Wm = Xt.map((x) => Float64Array.from(Ainv, (row) => row.reduce((s, v, b) => s + v * x[b], 0))); // rows: Ainv x_i
    const h = Float64Array.from(Xt, (x, i) => 1 / n + x.reduce((s, v, a) => s + v * Wm[i][a], 0));
    return { lambda, Wm, h };
  });
}

/**
 * One target's ridge fit on the rows of `Xt` (ridgeLooFits) and its
 * leave-one-out error in closed form: PRESS = Σ (rᵢ / (1 − hᵢ))², equal to
 * refitting (intercept and slopes) without each row in turn.
 */
export function ridgeLooPress(Xt: Float64Array[], fit: RidgeLooFit, y: ArrayLike<number>): { press: number; beta: Float64Array; mean: number } {
  const q = Xt[0].length;
  const n = Xt.length;
  let mean = 0;
  for (let t = 0; t < n; t++) mean += y[t];
  mean /= n;
  const beta = new Float64Array(q);
  for (let t = 0; t < n; t++) {
    const v = y[t] - mean;
    for (let a = 0; a < q; a++) beta[a] += fit.Wm[t][a] * v;
  }
  let press = 0;
  for (let t = 0; t < n; t++) {
    let r = y[t] - mean;
    for (let a = 0; a < q; a++) r -= Xt[t][a] * beta[a];
    press += (r / Math.max(1 - fit.h[t], 1e-12)) ** 2;
  }
  return { press, beta, mean };
}

/**
 * Out-of-fold R² of ridge regressions of each target group (a feature: one
 * column, or its one-hot columns) on the PC scores. Folds are a seeded
 * partition of the rows; inside each training fold the ridge penalty is
 * chosen per group from s·10^{−3…2} (s = trace(XᵀX)/q) by the closed-form
 * leave-one-out error, so the held-out fold never informs it.
 */
export function ridgeR2(X: Float64Array[], groups: Float64Array[][], folds: number, seed: number): Float64Array {
  const n = X[0].length;
  const q = X.length;
  const rng = uniformStream(seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rng() * (i + 1)); [perm[i], perm[j]] = [perm[j], perm[i]]; }
  const fold = new Int32Array(n);
  perm.forEach((r, pos) => (fold[r] = pos % folds));
  const pred = groups.map((g) => g.map(() => new Float64Array(n)));
  for (let f = 0; f < folds; f++) {
    const tr: number[] = [];
    const te: number[] = [];
    for (let i = 0; i < n; i++) (fold[i] === f ? te : tr).push(i);
    if (te.length === 0 || tr.length < 2) continue;
    const mu = X.map((c) => tr.reduce((s, i) => s + c[i], 0) / tr.length);
    const Xt = tr.map((i) => Float64Array.from(X, (c, j) => c[i] - mu[j]));
    const fits = ridgeLooFits(Xt, RIDGE_PENALTY_EXPONENTS);
    groups.forEach((cols, g) => {
      let best = Infinity;
      let bestBetas: { beta: Float64Array; mean: number }[] = [];
      for (const fit of fits) {
        let loo = 0;
        const betas = cols.map((y) => {
          const r = ridgeLooPress(Xt, fit, Float64Array.from(tr, (i) => y[i]));
          loo += r.press;
          return r;
        });
        if (loo < best) [best, bestBetas] = [loo, betas];
      }
      bestBetas.forEach(({ beta, mean }, c) => {
        for (const i of te) { let v = mean; for (let a = 0; a < q; a++) v += (X[a][i] - mu[a]) * beta[a]; pred[g][c][i] = v; }
      });
    });
  }
  return Float64Array.from(groups, (cols, g) => {
    let res = 0;
    let tot = 0;
    cols.forEach((y, c) => {
      const ym = y.reduce((s, v) => s + v, 0) / n;
      for (let i = 0; i < n; i++) { res += (y[i] - pred[g][c][i]) ** 2; tot += (y[i] - ym) ** 2; }
    });
    return tot > 0 ? 1 - res / tot : 0;
  });
}

/** Cross-modal relevance from embeddings of `data.rows` (row-major, rows × d). See CrossModalRelevance. */
export function crossModalFromEmbeddings(data: FeatureData, emb: Float64Array, d: number, opts: CrossModalOptions = {}): CrossModalRelevance {
  checkCrossModalOptions(opts, 'options');
  const n = data.rows.length;
  if (emb.length !== n * d) throw new DataError(`Expected ${n}×${d} embedding values but received ${emb.length}`);
  const seed = opts.seed ?? 0;
  const { scores, explained } = principalComponents(emb, n, d, Math.min(opts.components ?? 32, n - 1), seed);
  const groups = data.columns.map((c, j) => {
    if (!data.discrete[j]) return [c];
    const levels = [...new Set(c)].sort((a, b) => a - b);
    return levels.map((v) => Float64Array.from(c, (x) => (x === v ? 1 : 0)));
  });
  const r2 = ridgeR2(scores, groups, Math.max(2, Math.min(opts.folds ?? 5, n)), seed);
  const pcs = scores.slice(0, Math.max(1, Math.min(opts.miComponents ?? 3, scores.length)));
  const k = kFor(n, opts.nNeighbors ?? 3);
  const pcMI = Float64Array.from(data.columns, (c, j) => {
    const mi = data.discrete[j] ? mutualInfoClassif(pcs, c, { nNeighbors: k, seed }) : mutualInfoRegression(pcs, c, { nNeighbors: k, seed });
    return Math.max(...mi);
  });
  const nats = Float64Array.from(r2, (r) => -0.5 * Math.log(1 - Math.min(Math.max(r, 0), 1 - 1e-12)));
  return { encoder: '(embeddings)', names: [...data.names], r2, nats, pcMI, components: scores.length, explained };
}

/** Embeds the rows of `data` with `opts.encoder` and computes their cross-modal relevance. */
export async function crossModalRelevance(cohort: Cohort, data: FeatureData, opts: CrossModalOptions = {}): Promise<CrossModalRelevance> {
  checkCrossModalOptions(opts, 'options');
  const encoder = opts.encoder ?? 'random:resnet18';
  const { emb, d } = await embedRows(cohort, encoder, data.rows, opts.seed ?? 0);
  return { ...crossModalFromEmbeddings(data, emb, d, opts), encoder };
}
