/**
 * Downstream evaluation metrics with scikit-learn 1.2's conventions, plus the
 * summaries used to report them over seeds (mean ± sd, bootstrap CIs).
 *
 * Every function checks its inputs: a length mismatch is a ShapeError, a NaN,
 * an infinity or a bad label is a DataError naming the argument and the index,
 * and a bad option is a ConfigError.
 */
import { DataError, ShapeError } from '../errors';
import { integer, knownKeys, oneOf, plainObject, positiveInteger, numberInRange } from '../validate';

// ------------------------------------------------------------------ checks

/** Throws a DataError unless every entry of `v` is finite. */
export function checkFinite(v: ArrayLike<number>, name: string): void {
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new DataError(`${name}[${i}] is ${String(x)}; expected finite numbers`);
    }
  }
}

function checkArray(v: unknown, name: string): ArrayLike<number> {
  if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)))) {
    throw new ShapeError(`${name} must be an array or a typed array of numbers`);
  }
  return v as ArrayLike<number>;
}

function checkSameLength(a: ArrayLike<number>, aName: string, b: ArrayLike<number>, bName: string): number {
  if (a.length !== b.length) throw new ShapeError(`${bName} has length ${b.length} but ${aName} has length ${a.length}`);
  if (a.length === 0) throw new ShapeError(`${aName} is empty`);
  return a.length;
}

/** Throws a DataError unless every entry is an integer class label ≥ 0 (and < nClasses when given). */
export function checkLabels(y: ArrayLike<number>, name: string, nClasses?: number): void {
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || (nClasses !== undefined && v >= nClasses)) {
      const want = nClasses === 2 ? '0 or 1' : nClasses === undefined ? 'an integer class label ≥ 0' : `an integer class label in [0, ${nClasses})`;
      throw new DataError(`${name}[${i}] is ${String(v)}; expected ${want}`);
    }
  }
}

// ------------------------------------------------------------------ ROC AUC

/** Binary AUC from 0/1 labels (already checked) and finite scores. */
function aucUnchecked(pos: (i: number) => boolean, score: ArrayLike<number>, n: number, name: string): number {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => score[a] - score[b]);
  // Sum of the (tie-averaged, 1-based) ranks of the positives.
  let rankSum = 0;
  let nPos = 0;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && score[order[j]] === score[order[i]]) j++;
    const avgRank = (i + 1 + j) / 2; // mean of ranks i+1 .. j
    for (let k = i; k < j; k++) {
      if (pos(order[k])) {
        rankSum += avgRank;
        nPos++;
      }
    }
    i = j;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) {
    throw new DataError(`${name} contains only class ${nPos === 0 ? 0 : 1}; ROC AUC needs both classes`);
  }
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * Area under the ROC curve, `sklearn.metrics.roc_auc_score(yTrue, score)`.
 * Equals the Mann–Whitney U / (n₊·n₋) with tied scores given their average
 * rank, i.e. a tied positive/negative pair counts ½. Needs both classes.
 */
export function rocAuc(yTrue: ArrayLike<number>, score: ArrayLike<number>): number {
  const n = checkSameLength(checkArray(yTrue, 'yTrue'), 'yTrue', checkArray(score, 'score'), 'score');
  checkLabels(yTrue, 'yTrue', 2);
  checkFinite(score, 'score');
  return aucUnchecked((i) => yTrue[i] === 1, score, n, 'yTrue');
}

export interface RocAucOvrOptions {
  /** `'macro'`: plain mean over classes; `'weighted'`: weighted by class prevalence. @default 'macro' */
  average?: 'macro' | 'weighted';
}

/**
 * One-vs-rest multiclass AUC, `roc_auc_score(y, probs, multi_class='ovr',
 * average=...)`: the AUC of (y == k) against column k, averaged over k.
 * `probs` is N×K, either row-major in one flat array (K = length / N) or an
 * array of N rows. Rows need not sum to 1 (scikit-learn insists; the result
 * only depends on each column's ranking). Every class 0..K−1 must occur in
 * `yTrue`, and not be the only one.
 */
export function rocAucOvr(yTrue: ArrayLike<number>, probs: ArrayLike<number> | ArrayLike<number>[], opts: RocAucOvrOptions = {}): number {
  const o = plainObject(opts, 'options');
  knownKeys(o, '', ['average']);
  const average = o.average === undefined ? 'macro' : oneOf(o.average, 'average', ['macro', 'weighted'] as const);
  checkArray(yTrue, 'yTrue');
  const n = yTrue.length;
  if (n === 0) throw new ShapeError('yTrue is empty');
  const { flat, k } = flattenRows(probs, n, 'probs');
  checkLabels(yTrue, 'yTrue', k);
  const counts = new Float64Array(k);
  for (let i = 0; i < n; i++) counts[yTrue[i]]++;
  for (let c = 0; c < k; c++) {
    if (counts[c] === 0) throw new DataError(`yTrue has no example of class ${c} (probs has ${k} columns); its AUC is undefined`);
  }
  const col = new Float64Array(n);
  let total = 0;
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < n; i++) col[i] = flat[i * k + c];
    const auc = aucUnchecked((i) => yTrue[i] === c, col, n, `yTrue (class ${c} vs rest)`);
    total += average === 'macro' ? auc / k : (auc * counts[c]) / n;
  }
  return total;
}

/** N×K scores as one flat row-major array, checked finite. */
export function flattenRows(m: ArrayLike<number> | ArrayLike<number>[], n: number, name: string): { flat: ArrayLike<number>; k: number } {
  if (Array.isArray(m) && m.length > 0 && typeof m[0] === 'object' && m[0] !== null) {
    const rows = m as ArrayLike<number>[];
    if (rows.length !== n) throw new ShapeError(`${name} has ${rows.length} rows but yTrue has length ${n}`);
    const k = rows[0].length;
    const flat = new Float64Array(n * k);
    for (let i = 0; i < n; i++) {
      const r = checkArray(rows[i], `${name}[${i}]`);
      if (r.length !== k) throw new ShapeError(`${name}[${i}] has length ${r.length} but ${name}[0] has length ${k}`);
      for (let c = 0; c < k; c++) {
        const v = r[c];
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new DataError(`${name}[${i}][${c}] is ${String(v)}; expected finite numbers`);
        flat[i * k + c] = v;
      }
    }
    return { flat, k };
  }
  const flat = checkArray(m, name) as ArrayLike<number>;
  if (flat.length % n !== 0 || flat.length === 0) {
    throw new ShapeError(`${name} has length ${flat.length}, not a multiple of yTrue's length ${n} (expected N×K row-major)`);
  }
  checkFinite(flat, name);
  return { flat, k: flat.length / n };
}

// ------------------------------------------------------------------ classification

/** Fraction of exact matches, `accuracy_score`. */
export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  const n = checkSameLength(checkArray(yTrue, 'yTrue'), 'yTrue', checkArray(yPred, 'yPred'), 'yPred');
  checkLabels(yTrue, 'yTrue');
  checkLabels(yPred, 'yPred');
  let hit = 0;
  for (let i = 0; i < n; i++) if (yTrue[i] === yPred[i]) hit++;
  return hit / n;
}

/**
 * Mean per-class recall over the classes present in `yTrue`,
 * `balanced_accuracy_score` (adjusted=False). Classes that occur only in
 * `yPred` do not count, as in scikit-learn.
 */
export function balancedAccuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  const n = checkSameLength(checkArray(yTrue, 'yTrue'), 'yTrue', checkArray(yPred, 'yPred'), 'yPred');
  checkLabels(yTrue, 'yTrue');
  checkLabels(yPred, 'yPred');
  const support = new Map<number, number>();
  const hits = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const c = yTrue[i];
    support.set(c, (support.get(c) ?? 0) + 1);
    if (yPred[i] === c) hits.set(c, (hits.get(c) ?? 0) + 1);
  }
  let sum = 0;
  for (const [c, s] of support) sum += (hits.get(c) ?? 0) / s;
  return sum / support.size;
}

// ------------------------------------------------------------------ regression

/**
 * Coefficient of determination, `r2_score` (force_finite=True): 1 − SS_res/SS_tot;
 * a constant `yTrue` gives 1 for a perfect prediction and 0 otherwise.
 */
export function r2Score(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  const n = checkSameLength(checkArray(yTrue, 'yTrue'), 'yTrue', checkArray(yPred, 'yPred'), 'yPred');
  checkFinite(yTrue, 'yTrue');
  checkFinite(yPred, 'yPred');
  if (n < 2) return NaN; // sklearn: not well-defined with fewer than two samples (a warning and nan)
  let mean = 0;
  for (let i = 0; i < n; i++) mean += yTrue[i];
  mean /= n;
  let ssRes = 0;
  let ssTot = 0;
  for (let i = 0; i < n; i++) {
    ssRes += (yTrue[i] - yPred[i]) ** 2;
    ssTot += (yTrue[i] - mean) ** 2;
  }
  if (ssTot === 0) return ssRes === 0 ? 1 : 0;
  return 1 - ssRes / ssTot;
}

/** Mean absolute error, `mean_absolute_error`. */
export function meanAbsoluteError(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  const n = checkSameLength(checkArray(yTrue, 'yTrue'), 'yTrue', checkArray(yPred, 'yPred'), 'yPred');
  checkFinite(yTrue, 'yTrue');
  checkFinite(yPred, 'yPred');
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.abs(yTrue[i] - yPred[i]);
  return s / n;
}

// ------------------------------------------------------------------ summaries

export interface MeanSd {
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator); NaN for a single value. */
  sd: number;
  n: number;
}

/** Mean and sample standard deviation (ddof 1, like `np.std(v, ddof=1)`). */
export function meanSd(values: ArrayLike<number>): MeanSd {
  checkArray(values, 'values');
  const n = values.length;
  if (n === 0) throw new ShapeError('values is empty');
  checkFinite(values, 'values');
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) ** 2;
  return { mean, sd: n > 1 ? Math.sqrt(ss / (n - 1)) : NaN, n };
}

/** The q-quantile of `sorted` (ascending) with linear interpolation, numpy's default method. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

import { uniformStream } from '../rng';
export { uniformStream };

export interface BootstrapOptions {
  /** Number of bootstrap resamples. @default 2000 */
  reps?: number;
  /** Seed of the resampling stream. @default 0 */
  seed?: number;
  /** 1 − confidence level: the interval spans the alpha/2 and 1 − alpha/2 quantiles. @default 0.05 */
  alpha?: number;
}

export interface BootstrapCi {
  /** The statistic on the original sample. */
  estimate: number;
  lower: number;
  upper: number;
  alpha: number;
  reps: number;
  /** The statistic on each resample, in draw order. */
  replicates: Float64Array;
}

function bootstrapOpts(opts: BootstrapOptions): Required<BootstrapOptions> {
  const o = plainObject(opts, 'options');
  knownKeys(o, '', ['reps', 'seed', 'alpha']);
  return {
    reps: o.reps === undefined ? 2000 : positiveInteger(o.reps, 'reps'),
    seed: o.seed === undefined ? 0 : integer(o.seed, 'seed', 0, Number.MAX_SAFE_INTEGER),
    alpha: o.alpha === undefined ? 0.05 : numberInRange(o.alpha, 'alpha', 1e-9, 1 - 1e-9),
  };
}

/**
 * Percentile bootstrap for any statistic of n examples: each replicate calls
 * `statistic(indices)` with n indices drawn uniformly with replacement (for
 * a paired comparison, index both arms with the same indices). The interval
 * is the alpha/2 and 1 − alpha/2 quantiles of the replicates (numpy's linear
 * interpolation). Replicates that return NaN (e.g. an AUC resample with one
 * class) are an error rather than silently dropped.
 */
export function bootstrapStatistic(n: number, statistic: (indices: Uint32Array) => number, opts: BootstrapOptions = {}): BootstrapCi {
  positiveInteger(n, 'n');
  const { reps, seed, alpha } = bootstrapOpts(opts);
  const all = new Uint32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  const estimate = statistic(all);
  const rng = uniformStream(seed);
  const replicates = new Float64Array(reps);
  const idx = new Uint32Array(n);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rng() * n);
    const v = statistic(idx);
    if (!Number.isFinite(v)) throw new DataError(`bootstrap replicate ${r} gave ${String(v)}; the statistic must be finite on every resample`);
    replicates[r] = v;
  }
  const sorted = Float64Array.from(replicates).sort();
  return { estimate, lower: quantileSorted(sorted, alpha / 2), upper: quantileSorted(sorted, 1 - alpha / 2), alpha, reps, replicates };
}

/**
 * Percentile bootstrap CI of the mean of `values`: per-seed metrics, or the
 * paired differences between two methods (a CI excluding 0 then says the
 * difference is not resampling noise at level alpha).
 */
export function bootstrapCi(values: ArrayLike<number>, opts: BootstrapOptions = {}): BootstrapCi {
  checkArray(values, 'values');
  if (values.length === 0) throw new ShapeError('values is empty');
  checkFinite(values, 'values');
  return bootstrapStatistic(
    values.length,
    (idx) => {
      let s = 0;
      for (let i = 0; i < idx.length; i++) s += values[idx[i]];
      return s / idx.length;
    },
    opts,
  );
}
