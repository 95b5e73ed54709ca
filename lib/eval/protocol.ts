/**
 * MMCL's downstream protocol around the linear probe: seeded label-fraction
 * subsets (1 %, 10 %, 100 %), class balancing of the evaluation train/val
 * splits by subsampling, and per-seed test metrics with mean ± sd summaries.
 */
import { ConfigError, DataError, ShapeError } from '../errors';
import { boolean, integer, invalid, isNumber, knownKeys, nonNegativeInteger, oneOf, plainObject } from '../validate';
import { accuracy, balancedAccuracy, meanAbsoluteError, meanSd, r2Score, rocAuc, rocAucOvr, uniformStream } from './metrics';
import { checkMatrix, fitProbe, predictProbe, type FitProbeOptions, type Matrix, type ProbeKind } from './probe';

export interface LabelFractionOptions {
  /** Keep each class's share (classification labels). @default true when y is given */
  stratify?: boolean;
  /** Each class keeps at least min(minPerClass, its count) items. @default 1 */
  minPerClass?: number;
}

function checkItems<T>(items: ArrayLike<T>, y: ArrayLike<number> | null): number {
  if (items === null || typeof items !== 'object' || typeof items.length !== 'number') throw new ShapeError('items must be an array or a typed array');
  if (y !== null && y.length !== items.length) throw new ShapeError(`y has length ${y.length} but items has length ${items.length}`);
  if (items.length === 0) throw new ShapeError('items is empty');
  return items.length;
}

function checkFraction(v: unknown, name: string): number {
  if (!isNumber(v) || v <= 0 || v > 1) throw invalid('number in (0, 1]', name, v);
  return v;
}

/** Positions grouped by integer class label, classes ascending. */
function byClass(y: ArrayLike<number>): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new DataError(`y[${i}] is ${String(v)}; expected an integer class label`);
    const g = groups.get(v);
    if (g) g.push(i);
    else groups.set(v, [i]);
  }
  return new Map([...groups].sort((a, b) => a[0] - b[0]));
}

/** In-place seeded Fisher–Yates. */
function shuffle(a: number[], rng: () => number): number[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const pick = <T>(items: ArrayLike<T>, pos: number[]): T[] => pos.sort((a, b) => a - b).map((i) => items[i]);

/**
 * A seeded subset of `items` (ids or indices; `y[i]` is the label of
 * `items[i]`) holding round(fraction·n) of them (at least 1), returned in
 * their original order. Stratified: class quotas are proportional, rounded
 * by largest remainder so they sum to the target, then raised to
 * min(minPerClass, class count), so the result can exceed the target by at
 * most (classes × minPerClass). `y` may be null (regression): plain random subset.
 */
export function labelFractionSubset<T>(items: ArrayLike<T>, y: ArrayLike<number> | null, fraction: number, seed: number, opts: LabelFractionOptions = {}): T[] {
  const n = checkItems(items, y);
  const o = plainObject(opts, 'options');
  knownKeys(o, '', ['stratify', 'minPerClass']);
  checkFraction(fraction, 'fraction');
  integer(seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const stratify = o.stratify === undefined ? y !== null : boolean(o.stratify, 'stratify');
  if (stratify && y === null) throw new ConfigError('stratify needs class labels y');
  const minPerClass = o.minPerClass === undefined ? 1 : nonNegativeInteger(o.minPerClass, 'minPerClass');
  const rng = uniformStream(seed);
  const target = Math.max(1, Math.round(fraction * n));
  if (!stratify) return pick(items, shuffle(Array.from({ length: n }, (_, i) => i), rng).slice(0, target));
  const groups = [...byClass(y!).values()];
  const exact = groups.map((g) => (target * g.length) / n);
  const quota = exact.map(Math.floor);
  let left = target - quota.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((_, c) => c).sort((a, b) => exact[b] - quota[b] - (exact[a] - quota[a]) || a - b);
  for (const c of byRemainder) {
    if (left-- <= 0) break;
    quota[c]++;
  }
  const out: number[] = [];
  groups.forEach((g, c) => out.push(...shuffle(g.slice(), rng).slice(0, Math.max(quota[c], Math.min(minPerClass, g.length)))));
  return pick(items, out);
}

/** Seeded subsample of `items` with every class cut to the smallest class's count (original order kept). */
export function balanceBySubsampling<T>(items: ArrayLike<T>, y: ArrayLike<number>, seed: number): T[] {
  checkItems(items, y);
  integer(seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const groups = [...byClass(y).values()];
  const m = Math.min(...groups.map((g) => g.length));
  const rng = uniformStream(seed);
  const out: number[] = [];
  for (const g of groups) out.push(...shuffle(g.slice(), rng).slice(0, m));
  return pick(items, out);
}

// ------------------------------------------------------------------ protocol

export type ProbeOptions = Omit<FitProbeOptions, 'train' | 'val' | 'kind' | 'nClasses' | 'seed'>;

export interface EvaluateProbeOptions {
  /** Frozen embeddings per split, N×D row-major. */
  embeddings: { train: Matrix; val: Matrix; test: Matrix };
  labels: { train: ArrayLike<number>; val: ArrayLike<number>; test: ArrayLike<number> };
  kind: ProbeKind;
  nClasses?: number;
  /** Fraction of the (balanced) train split used, stratified; val and test stay whole. @default 1 */
  labelFraction?: number;
  /** One probe per seed: it seeds balancing, the label-fraction subset, the init and the shuffles. @default [0, 1, 2, 3, 4] */
  seeds?: number[];
  /** Balance train and val by subsampling to the smallest class (never test). @default true for classification */
  balance?: boolean;
  /** Options passed to fitProbe (l2, lr, maxEpochs, patience, ...). */
  probe?: ProbeOptions;
}

export interface SeedResult {
  seed: number;
  nTrain: number;
  nVal: number;
  nTest: number;
  l2: number;
  bestEpoch: number;
  valMetric: number;
  /** Test metrics: auc, balancedAccuracy, accuracy (classification) or r2, mae (regression). */
  metrics: Record<string, number>;
}

export interface EvaluateProbeResult {
  kind: ProbeKind;
  labelFraction: number;
  perSeed: SeedResult[];
  summary: Record<string, { mean: number; sd: number; values: number[] }>;
}

/** A derived uint32 seed, so each random step of one seed draws its own stream. */
function mixSeed(seed: number, salt: number): number {
  let h = Math.imul((seed >>> 0) ^ Math.imul(salt, 0x9e3779b9), 0x85ebca6b) ^ (Math.floor(seed / 2 ** 32) >>> 0);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function takeRows(x: Matrix, d: number, rows: number[]): Matrix {
  const out = x instanceof Float32Array ? new Float32Array(rows.length * d) : new Float64Array(rows.length * d);
  rows.forEach((r, i) => out.set(x.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

/**
 * Runs the linear-probe protocol once per seed and reports test metrics per
 * seed and as mean ± sd (ddof 1) over seeds.
 */
export function evaluateProbe(options: EvaluateProbeOptions): EvaluateProbeResult {
  const o = plainObject(options, 'options');
  knownKeys(o, '', ['embeddings', 'labels', 'kind', 'nClasses', 'labelFraction', 'seeds', 'balance', 'probe']);
  const kind = oneOf(o.kind, 'kind', ['binary', 'multiclass', 'regression'] as const);
  const emb = plainObject(o.embeddings, 'embeddings');
  const lab = plainObject(o.labels, 'labels');
  knownKeys(emb, 'embeddings', ['train', 'val', 'test']);
  knownKeys(lab, 'labels', ['train', 'val', 'test']);
  const splits = ['train', 'val', 'test'] as const;
  const dims = splits.map((s) => {
    const y = lab[s] as ArrayLike<number>;
    if (y === null || typeof y !== 'object' || typeof y.length !== 'number') throw new ShapeError(`labels.${s} must be an array or a typed array`);
    return checkMatrix(emb[s], `embeddings.${s}`, y.length, `labels.${s}`);
  });
  dims.forEach((d, i) => {
    if (d !== dims[0]) throw new ShapeError(`embeddings.${splits[i]} has ${d} columns but embeddings.train has ${dims[0]}`);
  });
  const d = dims[0];
  const X = emb as unknown as Record<'train' | 'val' | 'test', Matrix>;
  const Y = lab as unknown as Record<'train' | 'val' | 'test', ArrayLike<number>>;
  const labelFraction = o.labelFraction === undefined ? 1 : checkFraction(o.labelFraction, 'labelFraction');
  const seeds = o.seeds === undefined ? [0, 1, 2, 3, 4] : o.seeds;
  if (!Array.isArray(seeds) || seeds.length === 0) throw new ConfigError('Expected a non-empty array of seeds');
  seeds.forEach((s, i) => integer(s, `seeds[${i}]`, 0, Number.MAX_SAFE_INTEGER));
  const balance = o.balance === undefined ? kind !== 'regression' : boolean(o.balance, 'balance');
  if (balance && kind === 'regression') throw new ConfigError('balance applies to classification only');
  const probe = o.probe === undefined ? {} : plainObject(o.probe, 'probe');
  for (const k of ['train', 'val', 'kind', 'nClasses', 'seed']) if (k in probe) throw new ConfigError(`probe.${k} is set by evaluateProbe; pass it at the top level`);
  let nClasses: number | undefined;
  if (kind !== 'regression') {
    const given = o.nClasses === undefined ? undefined : integer(o.nClasses, 'nClasses', 2);
    const k = kind === 'binary' ? 2 : given;
    for (const s of splits) {
      const y = Y[s];
      for (let i = 0; i < y.length; i++) {
        if (!Number.isInteger(y[i]) || y[i] < 0 || (k !== undefined && y[i] >= k)) {
          throw new DataError(`labels.${s}[${i}] is ${String(y[i])}; expected ${k === 2 ? '0 or 1' : k ? `an integer class label in [0, ${k})` : 'an integer class label ≥ 0'}`);
        }
      }
    }
    nClasses = k ?? 1 + Math.max(...splits.map((s) => Math.max(...Array.from(Y[s]))));
    const present = new Set(Array.from(Y.test));
    if (present.size < 2) throw new DataError(`labels.test contains only class ${Y.test[0]}; AUC needs at least two classes`);
    for (let c = 0; c < nClasses; c++) if (!present.has(c)) throw new DataError(`labels.test has no example of class ${c} (nClasses ${nClasses}); its one-vs-rest AUC is undefined`);
  }
  const perSeed: SeedResult[] = [];
  for (const seed of seeds) {
    let tr = Array.from({ length: Y.train.length }, (_, i) => i);
    let va = Array.from({ length: Y.val.length }, (_, i) => i);
    if (balance) {
      tr = balanceBySubsampling(tr, Y.train, mixSeed(seed, 1));
      va = balanceBySubsampling(va, Y.val, mixSeed(seed, 2));
    }
    if (labelFraction < 1) {
      tr = labelFractionSubset(tr, kind === 'regression' ? null : tr.map((i) => Y.train[i]), labelFraction, mixSeed(seed, 3));
    }
    const model = fitProbe({
      ...(probe as ProbeOptions),
      kind,
      nClasses: kind === 'multiclass' ? nClasses : undefined,
      seed,
      train: { x: takeRows(X.train, d, tr), y: tr.map((i) => Y.train[i]) },
      val: { x: takeRows(X.val, d, va), y: va.map((i) => Y.val[i]) },
    });
    const pred = predictProbe(model, X.test);
    const y = Y.test;
    const metrics: Record<string, number> =
      kind === 'regression'
        ? { r2: r2Score(y, pred.predictions), mae: meanAbsoluteError(y, pred.predictions) }
        : {
            auc: kind === 'binary' ? rocAuc(y, pred.probabilities!) : rocAucOvr(y, pred.probabilities!),
            balancedAccuracy: balancedAccuracy(y, pred.predictions),
            accuracy: accuracy(y, pred.predictions),
          };
    perSeed.push({ seed, nTrain: tr.length, nVal: va.length, nTest: y.length, l2: model.l2, bestEpoch: model.bestEpoch, valMetric: model.valMetric, metrics });
  }
  const summary: EvaluateProbeResult['summary'] = {};
  for (const name of Object.keys(perSeed[0].metrics)) {
    const values = perSeed.map((r) => r.metrics[name]);
    const { mean, sd } = meanSd(values);
    summary[name] = { mean, sd, values };
  }
  return { kind, labelFraction, perSeed, summary };
}
