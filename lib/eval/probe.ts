/**
 * Linear probe on frozen embeddings (MMCL's downstream protocol): one linear
 * layer trained with Adam on mini-batches, L2 on the weights, early stopping
 * on a validation metric with the best weights kept. Pure TypeScript,
 * synchronous, float64 arithmetic on Float32Array/Float64Array inputs.
 *
 * The head is stored in standardized space:
 *   logits = ((x − mean) / std) · Wᵀ + b        (W is nOutputs × dim)
 * `foldStandardization` gives the same map in raw space, x · W'ᵀ + b'.
 */
import { ConfigError, DataError, ShapeError } from '../errors';
import { boolean, integer, knownKeys, nonNegativeNumber, oneOf, plainObject, positiveInteger, positiveNumber } from '../validate';
import { accuracy, balancedAccuracy, checkLabels, meanAbsoluteError, r2Score, rocAuc, rocAucOvr, uniformStream } from './metrics';

export type ProbeKind = 'binary' | 'multiclass' | 'regression';
export type ProbeMonitor = 'auc' | 'accuracy' | 'balancedAccuracy' | 'r2' | 'mae';
export type Matrix = Float32Array | Float64Array;

export interface ProbeSplit {
  /** N×D embeddings, row-major (D = x.length / y.length). */
  x: Matrix;
  /** Labels: 0/1 (binary), 0..K−1 (multiclass) or real targets (regression). */
  y: ArrayLike<number>;
}

export interface FitProbeOptions {
  train: ProbeSplit;
  /** Validation split for early stopping and the l2 grid. Without it, training runs maxEpochs and keeps the last weights. */
  val?: ProbeSplit;
  kind: ProbeKind;
  /** Number of classes (multiclass). @default max label in train/val + 1 (2 for binary) */
  nClasses?: number;
  /** L2 coefficient on W (not b), added to the gradient like torch Adam's weight_decay; an array is a grid chosen on val. @default 1e-4 */
  l2?: number | number[];
  /** Adam step size. @default 1e-3 */
  lr?: number;
  /** @default 200 */
  maxEpochs?: number;
  /** Epochs without an improvement > minDelta before stopping; Infinity disables stopping. @default 10 */
  patience?: number;
  /** Improvement that resets the patience counter (MMCL/Lightning: 2e-4). @default 2e-4 */
  minDelta?: number;
  /** Return the weights of the best validation epoch (else the last ones). @default true */
  restoreBest?: boolean;
  /**
   * Rows per Adam step. When not given: 256, lowered to ⌈n / minBatches⌉
   * for train splits under 256 · minBatches rows. @default 256
   */
  batchSize?: number;
  /**
   * With the default batchSize, the fewest batches an epoch is split into.
   * Patience and maxEpochs count epochs; at a 1% label fraction a train
   * split of a few hundred rows would otherwise be one or two Adam steps
   * per epoch, and the probe would stop (or hit maxEpochs) near its random
   * initialisation. @default 8
   */
  minBatches?: number;
  /** Seeds the initialisation and the per-epoch shuffles. @default 0 */
  seed?: number;
  /** Standardize features with the train mean/std (ddof 0; a zero std becomes 1). @default true */
  standardize?: boolean;
  /** Validation metric. @default 'auc' (classification), 'r2' (regression) */
  monitor?: ProbeMonitor;
}

export interface EpochRecord {
  epoch: number;
  /** Mean data loss over the epoch's batches (BCE, CE, or ½·squared error on the standardized target), without the L2 term. */
  trainLoss: number;
  /** The monitored validation metric, NaN without val. */
  valMetric: number;
}

export interface ProbeModel {
  kind: ProbeKind;
  dim: number;
  /** 2 for binary, K for multiclass, 0 for regression. */
  nClasses: number;
  /** nOutputs × dim row-major; nOutputs = K for multiclass, else 1. */
  weights: Float64Array;
  bias: Float64Array;
  mean: Float64Array;
  std: Float64Array;
  l2: number;
  monitor: ProbeMonitor;
  /** Epoch (1-based) whose weights were returned. */
  bestEpoch: number;
  /** Validation metric at bestEpoch (NaN without val). */
  valMetric: number;
  history: EpochRecord[];
  /** One entry per l2 tried, when l2 was a grid. */
  l2Search?: { l2: number; valMetric: number; bestEpoch: number }[];
}

export interface ProbePrediction {
  /** Logits (N, or N×K for multiclass); for regression the predictions. */
  logits: Float64Array;
  /** P(y = 1) (binary, N) or softmax rows (multiclass, N×K); null for regression. */
  probabilities: Float64Array | null;
  /** Class ids (binary: logit > 0) or regression values. */
  predictions: Int32Array | Float64Array;
}

// ------------------------------------------------------------------ checks

/** Checks an N×D matrix; returns D. Names the row and column of a non-finite value. */
export function checkMatrix(x: unknown, name: string, rows: number, rowsName: string): number {
  if (!(x instanceof Float32Array || x instanceof Float64Array)) throw new ShapeError(`${name} must be a Float32Array or Float64Array (N×D row-major)`);
  if (rows === 0) throw new ShapeError(`${rowsName} is empty`);
  if (x.length === 0 || x.length % rows !== 0) {
    throw new ShapeError(`${name} has length ${x.length}, not a positive multiple of ${rowsName}'s length ${rows}`);
  }
  const d = x.length / rows;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new DataError(`${name} has ${x[i]} at row ${Math.floor(i / d)}, column ${i % d}; expected finite numbers`);
  }
  return d;
}

function checkTargets(y: unknown, name: string, kind: ProbeKind, k: number): ArrayLike<number> {
  if (!(Array.isArray(y) || ArrayBuffer.isView(y))) throw new ShapeError(`${name} must be an array or a typed array`);
  const v = y as ArrayLike<number>;
  if (kind === 'regression') {
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new DataError(`${name}[${i}] is ${String(v[i])}; expected finite numbers`);
  } else checkLabels(v, name, k);
  return v;
}

function inferClasses(kind: ProbeKind, given: unknown, ys: ArrayLike<number>[]): number {
  if (kind === 'regression') return 0;
  if (kind === 'binary') {
    if (given !== undefined && given !== 2) throw new ConfigError(`nClasses is ${String(given)} but a binary probe has 2 classes`);
    return 2;
  }
  if (given !== undefined) return integer(given, 'nClasses', 2);
  let max = 1;
  for (const y of ys) for (let i = 0; i < y.length; i++) if (typeof y[i] === 'number' && Number.isInteger(y[i]) && y[i] > max) max = y[i];
  return max + 1;
}

function requireClasses(y: ArrayLike<number>, name: string, k: number, all: boolean): void {
  const seen = new Uint8Array(k);
  for (let i = 0; i < y.length; i++) seen[y[i]] = 1;
  const present = seen.reduce((a, b) => a + b, 0);
  if (present < 2) throw new DataError(`${name} contains only class ${y[0]}; a ${k === 2 ? 'binary' : 'multiclass'} probe needs at least two classes`);
  if (all && present < k) throw new DataError(`${name} has no example of class ${seen.indexOf(0)} (nClasses ${k}); its validation AUC is undefined`);
}

// ------------------------------------------------------------------ model maths

/** logits (N×C) of x under (W, b, mean, std). */
function logitsOf(x: Matrix, n: number, d: number, c: number, w: Float64Array, b: Float64Array, mean: Float64Array, inv: Float64Array): Float64Array {
  const out = new Float64Array(n * c);
  const xc = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) xc[j] = (x[i * d + j] - mean[j]) * inv[j];
    for (let o = 0; o < c; o++) {
      let z = b[o];
      const wo = o * d;
      for (let j = 0; j < d; j++) z += w[wo + j] * xc[j];
      out[i * c + o] = z;
    }
  }
  return out;
}

const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

function softmaxRows(z: Float64Array, n: number, k: number): Float64Array {
  const p = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let c = 0; c < k; c++) m = Math.max(m, z[i * k + c]);
    let s = 0;
    for (let c = 0; c < k; c++) s += p[i * k + c] = Math.exp(z[i * k + c] - m);
    for (let c = 0; c < k; c++) p[i * k + c] /= s;
  }
  return p;
}

function argmaxRows(z: Float64Array, n: number, k: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (z[i * k + c] > z[i * k + best]) best = c;
    out[i] = best;
  }
  return out;
}

function predictRaw(kind: ProbeKind, z: Float64Array, n: number, k: number): ProbePrediction {
  if (kind === 'regression') return { logits: z, probabilities: null, predictions: Float64Array.from(z) };
  if (kind === 'binary') return { logits: z, probabilities: z.map(sigmoid), predictions: Int32Array.from(z, (v) => (v > 0 ? 1 : 0)) };
  return { logits: z, probabilities: softmaxRows(z, n, k), predictions: argmaxRows(z, n, k) };
}

function metricOf(monitor: ProbeMonitor, kind: ProbeKind, y: ArrayLike<number>, p: ProbePrediction): number {
  switch (monitor) {
    case 'auc':
      return kind === 'binary' ? rocAuc(y, p.probabilities!) : rocAucOvr(y, p.probabilities!);
    case 'accuracy':
      return accuracy(y, p.predictions);
    case 'balancedAccuracy':
      return balancedAccuracy(y, p.predictions);
    case 'r2':
      return r2Score(y, p.predictions);
    case 'mae':
      return meanAbsoluteError(y, p.predictions);
  }
}

// ------------------------------------------------------------------ training

interface Resolved {
  kind: ProbeKind; k: number; c: number; d: number; lr: number; maxEpochs: number; patience: number;
  minDelta: number; restoreBest: boolean; batchSize: number; seed: number; monitor: ProbeMonitor;
  mean: Float64Array; std: Float64Array; inv: Float64Array; yMean: number; yStd: number;
}

/** Trains one probe for one l2 (regression targets standardized inside, the head folded back to y units). */
function trainOne(r: Resolved, l2: number, train: ProbeSplit, val: ProbeSplit | undefined): ProbeModel {
  const { kind, c, d, lr, batchSize } = r;
  const n = train.y.length;
  const rng = uniformStream(r.seed);
  const bound = 1 / Math.sqrt(d); // torch.nn.Linear's default initialisation
  const w = Float64Array.from({ length: c * d }, () => (2 * rng() - 1) * bound);
  const b = Float64Array.from({ length: c }, () => (2 * rng() - 1) * bound);
  const [mW, vW, mB, vB] = [new Float64Array(c * d), new Float64Array(c * d), new Float64Array(c), new Float64Array(c)];
  const [gW, gB, xc, z] = [new Float64Array(c * d), new Float64Array(c), new Float64Array(d), new Float64Array(c)];
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const y = kind === 'regression' ? Float64Array.from(train.y, (v) => (v - r.yMean) / r.yStd) : train.y;
  const sign = r.monitor === 'mae' ? -1 : 1;
  const history: EpochRecord[] = [];
  let best = { score: -Infinity, epoch: 0, metric: NaN, w: w.slice(), b: b.slice() };
  let stopBest = -Infinity;
  let wait = 0;
  let step = 0;
  for (let epoch = 1; epoch <= r.maxEpochs; epoch++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    let lossSum = 0;
    let batches = 0;
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      gW.fill(0);
      gB.fill(0);
      let loss = 0;
      for (let q = start; q < end; q++) {
        const row = order[q];
        for (let j = 0; j < d; j++) xc[j] = (train.x[row * d + j] - r.mean[j]) * r.inv[j];
        for (let o = 0; o < c; o++) {
          let s = b[o];
          for (let j = 0, wo = o * d; j < d; j++) s += w[wo + j] * xc[j];
          z[o] = s;
        }
        const t = y[row];
        if (kind === 'binary') {
          loss += Math.max(z[0], 0) - z[0] * t + Math.log1p(Math.exp(-Math.abs(z[0])));
          z[0] = sigmoid(z[0]) - t;
        } else if (kind === 'regression') {
          z[0] -= t;
          loss += 0.5 * z[0] * z[0];
        } else {
          let m = -Infinity;
          for (let o = 0; o < c; o++) m = Math.max(m, z[o]);
          let s = 0;
          for (let o = 0; o < c; o++) s += Math.exp(z[o] - m);
          loss += m + Math.log(s) - z[t];
          for (let o = 0; o < c; o++) z[o] = Math.exp(z[o] - m) / s - (o === t ? 1 : 0);
        }
        for (let o = 0; o < c; o++) {
          gB[o] += z[o];
          for (let j = 0, wo = o * d; j < d; j++) gW[wo + j] += z[o] * xc[j];
        }
      }
      const inB = 1 / (end - start);
      step++;
      const c1 = 1 - 0.9 ** step;
      const c2 = 1 - 0.999 ** step;
      for (let i = 0; i < w.length; i++) {
        const g = gW[i] * inB + l2 * w[i];
        mW[i] = 0.9 * mW[i] + 0.1 * g;
        vW[i] = 0.999 * vW[i] + 0.001 * g * g;
        w[i] -= (lr * mW[i]) / c1 / (Math.sqrt(vW[i] / c2) + 1e-8);
      }
      for (let o = 0; o < c; o++) {
        const g = gB[o] * inB;
        mB[o] = 0.9 * mB[o] + 0.1 * g;
        vB[o] = 0.999 * vB[o] + 0.001 * g * g;
        b[o] -= (lr * mB[o]) / c1 / (Math.sqrt(vB[o] / c2) + 1e-8);
      }
      lossSum += loss * inB;
      batches++;
    }
    let metric = NaN;
    if (val) {
      const nv = val.y.length;
      const zv = logitsOf(val.x, nv, d, c, w, b, r.mean, r.inv);
      if (kind === 'regression') for (let i = 0; i < nv; i++) zv[i] = zv[i] * r.yStd + r.yMean;
      metric = metricOf(r.monitor, kind, val.y, predictRaw(kind, zv, nv, c));
    }
    history.push({ epoch, trainLoss: lossSum / batches, valMetric: metric });
    if (!val) continue;
    const score = sign * metric;
    if (score > best.score) best = { score, epoch, metric, w: w.slice(), b: b.slice() };
    if (score - r.minDelta > stopBest) {
      stopBest = score;
      wait = 0;
    } else if (++wait >= r.patience) break;
  }
  const last = history[history.length - 1];
  const useBest = val !== undefined && r.restoreBest;
  const W = useBest ? best.w : w;
  const B = useBest ? best.b : b;
  if (kind === 'regression') {
    for (let i = 0; i < W.length; i++) W[i] *= r.yStd;
    B[0] = B[0] * r.yStd + r.yMean;
  }
  return {
    kind, dim: d, nClasses: r.k, weights: W, bias: B, mean: r.mean, std: r.std, l2, monitor: r.monitor,
    bestEpoch: useBest ? best.epoch : last.epoch, valMetric: useBest ? best.metric : last.valMetric, history,
  };
}

const FIT_KEYS = ['train', 'val', 'kind', 'nClasses', 'l2', 'lr', 'maxEpochs', 'patience', 'minDelta', 'restoreBest', 'batchSize', 'minBatches', 'seed', 'standardize', 'monitor'] as const;

function split(v: unknown, name: string, kind: ProbeKind, k: number): { s: ProbeSplit; d: number } {
  const o = plainObject(v, name);
  knownKeys(o, name, ['x', 'y']);
  const y = checkTargets(o.y, `${name}.y`, kind, k);
  const d = checkMatrix(o.x, `${name}.x`, y.length, `${name}.y`);
  return { s: { x: o.x as Matrix, y }, d };
}

/**
 * Fits a linear probe; see the file header for the head's formula and
 * docs/evaluation.md for the objective and its scikit-learn correspondence.
 */
export function fitProbe(options: FitProbeOptions): ProbeModel {
  const o = plainObject(options, 'options');
  knownKeys(o, '', FIT_KEYS);
  const kind = oneOf(o.kind, 'kind', ['binary', 'multiclass', 'regression'] as const);
  const rawTrain = plainObject(o.train, 'train');
  const rawVal = o.val === undefined ? undefined : plainObject(o.val, 'val');
  const k = inferClasses(kind, o.nClasses, [rawTrain.y, rawVal?.y].filter((v): v is ArrayLike<number> => v != null && typeof v === 'object'));
  const { s: train, d } = split(rawTrain, 'train', kind, k);
  const val = rawVal === undefined ? undefined : split(rawVal, 'val', kind, k);
  if (val && val.d !== d) throw new ShapeError(`val.x has ${val.d} columns but train.x has ${d}`);
  const monitor = o.monitor === undefined ? (kind === 'regression' ? 'r2' : 'auc') : oneOf(o.monitor, 'monitor', ['auc', 'accuracy', 'balancedAccuracy', 'r2', 'mae'] as const);
  if ((kind === 'regression') !== (monitor === 'r2' || monitor === 'mae')) throw new ConfigError(`monitor ${monitor} does not apply to a ${kind} probe`);
  if (kind !== 'regression') {
    requireClasses(train.y, 'train.y', k, false);
    if (val) requireClasses(val.s.y, 'val.y', k, monitor === 'auc');
  }
  const l2s = Array.isArray(o.l2) ? o.l2.map((v, i) => nonNegativeNumber(v, `l2[${i}]`)) : [o.l2 === undefined ? 1e-4 : nonNegativeNumber(o.l2, 'l2')];
  if (l2s.length === 0) throw new ConfigError('Expected a non-empty array for l2 but received an array of length 0');
  if (l2s.length > 1 && !val) throw new ConfigError('An l2 grid needs a val split to choose from');
  const patience = o.patience === undefined ? 10 : o.patience === Infinity ? Infinity : positiveInteger(o.patience, 'patience');
  const standardize = o.standardize === undefined ? true : boolean(o.standardize, 'standardize');
  const n = train.y.length;
  const mean = new Float64Array(d);
  const std = new Float64Array(d).fill(1);
  if (standardize) {
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += train.x[i * d + j] / n;
    const ss = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) ss[j] += (train.x[i * d + j] - mean[j]) ** 2;
    for (let j = 0; j < d; j++) {
      const s = Math.sqrt(ss[j] / n);
      std[j] = s > 10 * Number.EPSILON * Math.max(1, Math.abs(mean[j])) ? s : 1;
    }
  }
  let yMean = 0;
  let yStd = 1;
  if (kind === 'regression') {
    for (let i = 0; i < n; i++) yMean += train.y[i] / n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (train.y[i] - yMean) ** 2;
    yStd = Math.sqrt(ss / n) || 1;
  }
  const r: Resolved = {
    kind, k, c: kind === 'multiclass' ? k : 1, d, monitor, patience, mean, std, inv: std.map((s) => 1 / s), yMean, yStd,
    lr: o.lr === undefined ? 1e-3 : positiveNumber(o.lr, 'lr'),
    maxEpochs: o.maxEpochs === undefined ? 200 : positiveInteger(o.maxEpochs, 'maxEpochs'),
    minDelta: o.minDelta === undefined ? 2e-4 : nonNegativeNumber(o.minDelta, 'minDelta'),
    restoreBest: o.restoreBest === undefined ? true : boolean(o.restoreBest, 'restoreBest'),
    batchSize: o.batchSize === undefined ? Math.min(256, Math.ceil(n / (o.minBatches === undefined ? 8 : positiveInteger(o.minBatches, 'minBatches')))) : positiveInteger(o.batchSize, 'batchSize'),
    seed: o.seed === undefined ? 0 : integer(o.seed, 'seed', 0, Number.MAX_SAFE_INTEGER),
  };
  const sign = monitor === 'mae' ? -1 : 1;
  let chosen: ProbeModel | undefined;
  const search: { l2: number; valMetric: number; bestEpoch: number }[] = [];
  for (const l2 of l2s) {
    const m = trainOne(r, l2, train, val?.s);
    search.push({ l2, valMetric: m.valMetric, bestEpoch: m.bestEpoch });
    if (!chosen || sign * m.valMetric > sign * chosen.valMetric) chosen = m;
  }
  if (l2s.length > 1) chosen!.l2Search = search;
  return chosen!;
}

/** Predicts N×D embeddings with a fitted probe. */
export function predictProbe(model: ProbeModel, x: Matrix): ProbePrediction {
  const m = plainObject(model, 'model') as unknown as ProbeModel;
  if (!(x instanceof Float32Array || x instanceof Float64Array)) throw new ShapeError('x must be a Float32Array or Float64Array (N×D row-major)');
  if (x.length % m.dim !== 0) throw new ShapeError(`x has length ${x.length}, not a multiple of the probe's dim ${m.dim}`);
  const n = x.length / m.dim;
  checkMatrix(x, 'x', n, 'x rows');
  const c = m.bias.length;
  const z = logitsOf(x, n, m.dim, c, m.weights, m.bias, m.mean, m.std.map((s) => 1 / s));
  return predictRaw(m.kind, z, n, c);
}

/** The same head in raw feature space: logits = x · W'ᵀ + b', with W' = W / std and b' = b − W'·mean. */
export function foldStandardization(model: ProbeModel): { weights: Float64Array; bias: Float64Array } {
  const { dim: d, weights: w, bias, mean, std } = model;
  const c = bias.length;
  const W = new Float64Array(c * d);
  const B = Float64Array.from(bias);
  for (let o = 0; o < c; o++) {
    for (let j = 0; j < d; j++) {
      W[o * d + j] = w[o * d + j] / std[j];
      B[o] -= W[o * d + j] * mean[j];
    }
  }
  return { weights: W, bias: B };
}
