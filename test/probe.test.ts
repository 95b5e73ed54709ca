import t from 'tap';
import {
  balanceBySubsampling, evaluateProbe, fitProbe, foldStandardization, labelFractionSubset, meanSd, predictProbe, rocAuc,
} from '../lib/eval/index';
import { normalStream } from '../lib/features/mi';
import { ConfigError, DataError, ShapeError } from '../lib/errors';
import { errorOf, runMetricsOracle } from './helpers/metrics-oracle';

const runOracle = runMetricsOracle;

const g = normalStream(99);
/** n×d Gaussian features with per-column offsets and scales (so standardization matters). */
function features(n: number, d: number): Float64Array {
  return Float64Array.from({ length: n * d }, (_, i) => 3 * (i % d) - 2 + (1 + (i % d)) * g());
}
const rows = (x: Float64Array, d: number): number[][] => Array.from({ length: x.length / d }, (_, i) => Array.from(x.subarray(i * d, (i + 1) * d)));
const dot = (x: Float64Array, d: number, i: number, w: number[]): number => w.reduce((s, wj, j) => s + wj * (x[i * d + j] - (3 * j - 2)) / (1 + j), 0);
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const sig = (z: number): number => 1 / (1 + Math.exp(-z));

// ---------------------------------------------------------------- data

const D = 6;
const wTrue = [1.2, -0.8, 0.5, 0, 0.3, -1.5];
const binX = features(400, D);
/** Bernoulli(σ(x·w)) labels with golden-ratio quasi-random thresholds: not separable, well posed. */
const binY = Array.from({ length: 400 }, (_, i) => (sig(dot(binX, D, i, wTrue)) > (i * 0.618034) % 1 ? 1 : 0));
const binTest = features(100, D);

const K = 3;
const W3 = [[1, -1, 0.5, 0, 0, 0.2], [-0.5, 1, 0, 0.8, -0.3, 0], [0, 0, -0.7, -0.8, 0.6, 0.4]];
function multiLabels(x: Float64Array, n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    const z = W3.map((w) => Math.exp(dot(x, D, i, w) * 1.5));
    const s = z.reduce((a, b) => a + b, 0);
    let u = ((i * 0.754877) % 1) * s;
    for (let c = 0; c < K; c++) if ((u -= z[c]) < 0) return c;
    return K - 1;
  });
}
const mcX = features(450, D);
const mcY = multiLabels(mcX, 450);
const mcTest = features(100, D);

const regX = features(300, D);
const regY = Array.from({ length: 300 }, (_, i) => 20 + 5 * dot(regX, D, i, wTrue) + 2 * g());

const L2 = 0.01;
const oracle = runOracle([
  { id: 'bin', kind: 'logreg', X: rows(binX, D), y: binY, C: 1 / (L2 * 400), X_test: rows(binTest, D) },
  { id: 'mc', kind: 'logreg', X: rows(mcX, D), y: mcY, C: 1 / (L2 * 450), X_test: rows(mcTest, D) },
  { id: 'ridge', kind: 'ridge', X: rows(regX, D), y: regY, alpha: 0.05 * 300 },
]);

/** Full-batch Adam run to convergence with early stopping disabled. */
const converge = { batchSize: 1000, lr: 0.02, maxEpochs: 4000, patience: Infinity, restoreBest: false } as const;

t.test('fitProbe (binary) matches LogisticRegression(C = 1/(l2·n)) on standardized features', { skip: !oracle && 'no sklearn' }, async (t) => {
  const m = fitProbe({ train: { x: binX, y: binY }, val: { x: binX, y: binY }, kind: 'binary', l2: L2, ...converge });
  const p = predictProbe(m, binTest).probabilities!;
  const ref = oracle!.bin.proba.map((r: number[]) => r[1]);
  const dp = maxAbsDiff(p, ref);
  t.ok(dp < 0.02, `max |Δp| = ${dp}`);
  t.ok(maxAbsDiff(m.weights, oracle!.bin.coef[0]) < 0.01, `coef ${Array.from(m.weights)} vs ${oracle!.bin.coef[0]}`);
  t.ok(Math.abs(m.bias[0] - oracle!.bin.intercept[0]) < 0.01, 'intercept');
  t.equal(m.bestEpoch, 4000, 'patience Infinity runs every epoch');
});

t.test('fitProbe (multiclass) matches multinomial LogisticRegression', { skip: !oracle && 'no sklearn' }, async (t) => {
  const m = fitProbe({ train: { x: mcX, y: mcY }, kind: 'multiclass', l2: L2, ...converge });
  t.equal(m.nClasses, 3);
  const p = predictProbe(m, mcTest).probabilities!;
  const dp = maxAbsDiff(p, oracle!.mc.proba.flat());
  t.ok(dp < 0.02, `max |Δp| = ${dp}`);
  const dw = maxAbsDiff(m.weights, oracle!.mc.coef.flat());
  t.ok(dw < 0.01, `max |ΔW| = ${dw} (the L2 optimum has zero-sum columns, so W is identifiable)`);
});

t.test('fitProbe (regression) matches the closed-form ridge solution with alpha = l2·n', { skip: !oracle && 'no sklearn' }, async (t) => {
  const m = fitProbe({ train: { x: regX, y: regY }, kind: 'regression', l2: 0.05, ...converge });
  const closed: number[] = oracle!.ridge.coef_closed;
  t.ok(maxAbsDiff(closed, oracle!.ridge.coef) < 1e-9, 'oracle: sklearn Ridge equals the closed form');
  const dw = maxAbsDiff(m.weights, closed);
  t.ok(dw < 1e-3 * Math.max(...closed.map(Math.abs)), `max |Δw| = ${dw}`);
  t.ok(Math.abs(m.bias[0] - oracle!.ridge.intercept) < 1e-3, `intercept ${m.bias[0]} vs ${oracle!.ridge.intercept}`);
});

t.test('fitProbe reaches AUC ≥ 0.99 on separable data with the default protocol', async (t) => {
  const make = (n: number) => {
    const x = features(n * 2, D);
    const keep: number[] = [];
    for (let i = 0; i < n * 2 && keep.length < n; i++) if (Math.abs(dot(x, D, i, wTrue)) > 0.3) keep.push(i);
    return {
      x: Float32Array.from(keep.flatMap((i) => Array.from(x.subarray(i * D, (i + 1) * D)))),
      y: keep.map((i) => (dot(x, D, i, wTrue) > 0 ? 1 : 0)),
    };
  };
  const [train, val, test] = [make(2000), make(300), make(400)];
  const m = fitProbe({ train, val, kind: 'binary', seed: 1 });
  const auc = rocAuc(test.y, predictProbe(m, test.x).probabilities!);
  t.ok(auc >= 0.99, `test AUC ${auc} (best epoch ${m.bestEpoch} of ${m.history.length})`);
});

t.test('foldStandardization gives the same logits in raw feature space', async (t) => {
  const m = fitProbe({ train: { x: mcX, y: mcY }, kind: 'multiclass', maxEpochs: 5 });
  const { weights, bias } = foldStandardization(m);
  const z = predictProbe(m, mcTest).logits;
  const raw = Float64Array.from({ length: 100 * K }, (_, q) => {
    const [i, c] = [Math.floor(q / K), q % K];
    let s = bias[c];
    for (let j = 0; j < D; j++) s += weights[c * D + j] * mcTest[i * D + j];
    return s;
  });
  t.ok(maxAbsDiff(z, raw) < 1e-10, `max |Δz| = ${maxAbsDiff(z, raw)}`);
});

// Train: x2 = 0.9·x1 + noise, label from x1 − 0.3·x2; its optimum puts a negative weight on x2, but the
// marginal correlation of x2 with y is positive, so the Adam path first heads along (1, 1). Val labels come
// from x1 + x2 on independent features: the val AUC peaks on the way, then falls as training converges.
const es = normalStream(5);
const oTrain = { x: new Float32Array(800), y: [] as number[] };
const oVal = { x: new Float32Array(800), y: [] as number[] };
for (let i = 0; i < 400; i++) {
  const a = es();
  const b = 0.9 * a + Math.sqrt(1 - 0.81) * es();
  oTrain.x.set([a, b], 2 * i);
  oTrain.y.push(a - 0.3 * b + 0.2 * es() > 0 ? 1 : 0);
}
for (let i = 0; i < 400; i++) {
  const [a, b] = [es(), es()];
  oVal.x.set([a, b], 2 * i);
  oVal.y.push(a + b + 0.2 * es() > 0 ? 1 : 0);
}

t.test('fitProbe early stopping keeps the weights of the best validation epoch', async (t) => {
  const opts = { train: oTrain, val: oVal, kind: 'binary' as const, lr: 0.03, l2: 0, minDelta: 0, batchSize: 400, seed: 4, maxEpochs: 500 };
  const m = fitProbe({ ...opts, patience: 10 });
  const metrics = m.history.map((h) => h.valMetric);
  const best = Math.max(...metrics);
  t.equal(m.valMetric, best);
  t.equal(m.bestEpoch, metrics.indexOf(best) + 1, 'first epoch reaching the best');
  t.equal(m.history.length, m.bestEpoch + 10, 'stopped after 10 epochs without improvement');
  t.equal(rocAuc(oVal.y, predictProbe(m, oVal.x).probabilities!), best, 'returned weights reproduce the best val AUC');
  const last = fitProbe({ ...opts, patience: 10, restoreBest: false });
  t.equal(last.bestEpoch, m.history.length);
  t.equal(rocAuc(oVal.y, predictProbe(last, oVal.x).probabilities!), metrics[metrics.length - 1], 'restoreBest false keeps the last weights');
  const long = fitProbe({ ...opts, patience: Infinity, restoreBest: false });
  t.equal(long.history.length, 500, 'patience Infinity never stops early');
  t.same(long.history.slice(0, m.history.length), m.history, 'same seed, same path');
  t.ok(long.valMetric < best - 0.1, `val AUC peaked early (${best} at epoch ${m.bestEpoch}) and fell to ${long.valMetric}`);
  t.ok(long.weights[1] < 0 && m.weights[1] > 0, 'the x2 weight changed sign after the peak');
});

t.test('fitProbe splits a small train set into at least minBatches batches per epoch by default', async (t) => {
  // 300 train rows, 8 features, the label from feature 0 alone. At batch
  // 256 an epoch was 2 Adam steps, and 200 epochs at lr 1e-3 left the probe
  // near its random start.
  const z = normalStream(21);
  const make = (n: number) => {
    const x = Float64Array.from({ length: n * 8 }, () => z());
    return { x, y: Array.from({ length: n }, (_, i) => (x[i * 8] + 0.8 * z() > 0 ? 1 : 0)) };
  };
  const [tr, va] = [make(300), make(300)];
  const oracle = rocAuc(va.y, Array.from({ length: 300 }, (_, i) => va.x[i * 8])); // the true direction's val AUC
  const m = fitProbe({ train: tr, val: va, kind: 'binary', seed: 1 });
  t.ok(m.valMetric > oracle - 0.04, `default: val AUC ${m.valMetric.toFixed(3)} against feature 0's own ${oracle.toFixed(3)}`);
  const one = fitProbe({ train: tr, val: va, kind: 'binary', seed: 1, minBatches: 1 });
  t.ok(one.valMetric < oracle - 0.15, `minBatches 1 (one batch of 256 and one of 44 per epoch): val AUC ${one.valMetric.toFixed(3)}`);
  t.same(fitProbe({ train: tr, val: va, kind: 'binary', seed: 1, batchSize: 38 }).weights, m.weights, 'the default is batch ⌈300 / 8⌉ = 38');
  t.same(fitProbe({ train: tr, val: va, kind: 'binary', seed: 1, minBatches: 1 }).weights, fitProbe({ train: tr, val: va, kind: 'binary', seed: 1, batchSize: 256 }).weights, 'minBatches 1 is the plain batch of 256');
  t.throws(() => fitProbe({ train: tr, kind: 'binary', minBatches: 0 }), ConfigError);
});

t.test('fitProbe is deterministic by seed and chooses l2 from a grid on val', async (t) => {
  const opts = { train: oTrain, val: oVal, kind: 'binary' as const, maxEpochs: 20 };
  const a = fitProbe({ ...opts, seed: 3 });
  t.same(fitProbe({ ...opts, seed: 3 }).weights, a.weights, 'same seed, same weights');
  t.not(maxAbsDiff(fitProbe({ ...opts, seed: 4 }).weights, a.weights), 0, 'another seed, other weights');
  const grid = fitProbe({ ...opts, l2: [0, 1e-2, 1], seed: 3 });
  t.equal(grid.l2Search!.length, 3);
  const bestVal = Math.max(...grid.l2Search!.map((s) => s.valMetric));
  t.equal(grid.valMetric, bestVal);
  t.equal(grid.l2, grid.l2Search!.find((s) => s.valMetric === bestVal)!.l2);
});

// ---------------------------------------------------------------- subsets

const skewY = Array.from({ length: 1000 }, (_, i) => (i % 20 === 0 ? 2 : i % 4 === 1 ? 1 : 0)); // 50 / 250 / 700
const ids = skewY.map((_, i) => `id${i}`);
const count = (y: number[], c: number): number => y.filter((v) => v === c).length;

t.test('labelFractionSubset keeps the fraction, the class shares and every class', async (t) => {
  const yOf = new Map(ids.map((id, i) => [id, skewY[i]]));
  const s10 = labelFractionSubset(ids, skewY, 0.1, 0);
  t.equal(s10.length, 100);
  t.same([0, 1, 2].map((c) => count(s10.map((id) => yOf.get(id)!), c)), [70, 25, 5]);
  const s1 = labelFractionSubset(ids, skewY, 0.01, 0);
  t.same([0, 1, 2].map((c) => count(s1.map((id) => yOf.get(id)!), c)), [7, 3, 1], 'largest remainder 7/2.5/0.5, then min one per class');
  t.same(labelFractionSubset(ids, skewY, 0.01, 0), s1, 'seeded');
  t.not(labelFractionSubset(ids, skewY, 0.01, 1).join(), s1.join(), 'another seed, another subset');
  t.same(s1, [...s1].sort((a, b) => ids.indexOf(a) - ids.indexOf(b)), 'original order');
  t.equal(new Set(s1).size, s1.length, 'no repeats');
  t.same(labelFractionSubset(ids, skewY, 1, 5), ids, 'fraction 1 keeps all');
  const plain = labelFractionSubset(Int32Array.from({ length: 1000 }, (_, i) => i), null, 0.013, 2);
  t.equal(plain.length, 13, 'unstratified: round(fraction·n)');
});

t.test('balanceBySubsampling cuts every class to the smallest', async (t) => {
  const idx = Array.from({ length: 1000 }, (_, i) => i);
  const b = balanceBySubsampling(idx, skewY, 0);
  t.same([0, 1, 2].map((c) => count(b.map((i) => skewY[i]), c)), [50, 50, 50]);
  t.same(b, [...b].sort((p, q) => p - q));
  t.same(balanceBySubsampling(idx, skewY, 0), b);
});

t.test('evaluateProbe reports per-seed test metrics and mean ± sd, balancing train/val only', async (t) => {
  const make = (n: number, pos: number, seed: number) => {
    const h = normalStream(seed);
    const y = Array.from({ length: n }, (_, i) => (i < pos ? 1 : 0));
    return { x: Float32Array.from({ length: n * 8 }, (_, q) => h() + (q % 8 < 2 ? 2 * y[Math.floor(q / 8)] : 0)), y };
  };
  const [tr, va, te] = [make(600, 150, 1), make(200, 50, 2), make(300, 60, 3)];
  const opts = { embeddings: { train: tr.x, val: va.x, test: te.x }, labels: { train: tr.y, val: va.y, test: te.y }, kind: 'binary' as const, labelFraction: 0.1, seeds: [0, 1, 2], probe: { lr: 0.01, maxEpochs: 100 } };
  const r = evaluateProbe(opts);
  t.same(r.perSeed.map((s) => [s.nTrain, s.nVal, s.nTest]), [[30, 100, 300], [30, 100, 300], [30, 100, 300]]);
  t.same(Object.keys(r.summary), ['auc', 'balancedAccuracy', 'accuracy']);
  const ms = meanSd(r.summary.auc.values);
  t.same([r.summary.auc.mean, r.summary.auc.sd], [ms.mean, ms.sd]);
  t.ok(r.summary.auc.mean > 0.8, `mean test AUC ${r.summary.auc.mean}`);
  t.same(evaluateProbe(opts), r, 'deterministic');
  const reg = evaluateProbe({ ...opts, kind: 'regression', labels: { train: tr.y.map((v) => 3 * v), val: va.y, test: te.y }, labelFraction: 1, seeds: [0] });
  t.same(Object.keys(reg.summary), ['r2', 'mae']);
  t.equal(reg.perSeed[0].nTrain, 600, 'regression is not balanced');
  const mc = evaluateProbe({ ...opts, kind: 'multiclass', labels: { train: tr.y.map((v, i) => v + (i % 3 === 0 ? 1 : 0)), val: va.y.map((v, i) => v + (i % 3 === 0 ? 1 : 0)), test: te.y.map((v, i) => v + (i % 3 === 0 ? 1 : 0)) }, seeds: [0] });
  t.ok(mc.summary.auc.mean > 0.5);
});

// ---------------------------------------------------------------- errors

t.test('fitProbe, predictProbe and evaluateProbe reject bad inputs naming the argument and row', async (t) => {
  const x = Float32Array.from({ length: 40 }, (_, i) => i % 7);
  const y = Array.from({ length: 10 }, (_, i) => i % 2);
  const check = (fn: () => unknown, cls: any, code: string, re: RegExp) => {
    const e = errorOf(fn);
    t.ok(e instanceof cls && e.code === code && re.test(e.message), e.message);
  };
  const bad = x.slice();
  bad[13] = NaN;
  check(() => fitProbe({ train: { x: bad, y }, kind: 'binary' }), DataError, 'ERR_DATA', /train\.x has NaN at row 3, column 1/);
  check(() => fitProbe({ train: { x, y: y.slice(0, 7) }, kind: 'binary' }), ShapeError, 'ERR_SHAPE', /train\.x has length 40, not a positive multiple of train\.y's length 7/);
  check(() => fitProbe({ train: { x, y }, val: { x: x.subarray(0, 15), y: y.slice(0, 5) }, kind: 'binary' }), ShapeError, 'ERR_SHAPE', /val\.x has 3 columns but train\.x has 4/);
  check(() => fitProbe({ train: { x, y: y.map(() => 0) }, kind: 'binary' }), DataError, 'ERR_DATA', /train\.y contains only class 0/);
  check(() => fitProbe({ train: { x, y: y.map((v, i) => (i === 4 ? 2 : v)) }, kind: 'binary' }), DataError, 'ERR_DATA', /train\.y\[4\] is 2; expected 0 or 1/);
  check(() => fitProbe({ train: { x, y }, val: { x, y: y.map((v, i) => (i < 9 ? 0 : 2)) }, kind: 'multiclass' }), DataError, 'ERR_DATA', /val\.y has no example of class 1/);
  check(() => fitProbe({ train: { x, y: y.map((v, i) => (i === 2 ? NaN : v)) }, kind: 'regression' }), DataError, 'ERR_DATA', /train\.y\[2\] is NaN/);
  check(() => fitProbe({ train: { x: Array.from(x) as any, y }, kind: 'binary' }), ShapeError, 'ERR_SHAPE', /train\.x must be a Float32Array/);
  check(() => fitProbe({ train: { x, y }, kind: 'binary', lr: -1 }), ConfigError, 'ERR_CONFIG', /positive number for lr but received -1/);
  check(() => fitProbe({ train: { x, y }, kind: 'binary', epochs: 3 } as any), ConfigError, 'ERR_CONFIG', /Unknown option epochs/);
  check(() => fitProbe({ train: { x, y }, kind: 'binary', monitor: 'r2' }), ConfigError, 'ERR_CONFIG', /monitor r2 does not apply to a binary probe/);
  check(() => fitProbe({ train: { x, y }, kind: 'binary', l2: [0, 1] }), ConfigError, 'ERR_CONFIG', /l2 grid needs a val split/);
  check(() => fitProbe({ train: { x, y }, kind: 'logistic' as any }), ConfigError, 'ERR_CONFIG', /for kind/);
  const m = fitProbe({ train: { x, y }, kind: 'binary', maxEpochs: 2 });
  check(() => predictProbe(m, new Float32Array(10)), ShapeError, 'ERR_SHAPE', /x has length 10, not a multiple of the probe's dim 4/);
  check(() => predictProbe(m, Float32Array.of(1, 2, 3, 4, 5, Infinity, 7, 8)), DataError, 'ERR_DATA', /x has Infinity at row 1, column 1/);
  check(() => labelFractionSubset(ids, skewY, 0, 0), ConfigError, 'ERR_CONFIG', /number in \(0, 1\] for fraction but received 0/);
  check(() => labelFractionSubset(ids, skewY.slice(1), 0.1, 0), ShapeError, 'ERR_SHAPE', /y has length 999 but items has length 1000/);
  check(() => balanceBySubsampling([1, 2, 3], [0, 0.5, 1], 0), DataError, 'ERR_DATA', /y\[1\] is 0\.5; expected an integer class label/);
  const emb = { train: x, val: x, test: bad };
  check(() => evaluateProbe({ embeddings: emb, labels: { train: y, val: y, test: y }, kind: 'binary' }), DataError, 'ERR_DATA', /embeddings\.test has NaN at row 3, column 1/);
  check(() => evaluateProbe({ embeddings: { ...emb, test: x }, labels: { train: y, val: y, test: y.map(() => 1) }, kind: 'binary' }), DataError, 'ERR_DATA', /labels\.test contains only class 1/);
  check(() => evaluateProbe({ embeddings: { ...emb, test: x }, labels: { train: y.map((_, i) => i % 3), val: y.map((_, i) => i % 3), test: y.map((v) => v + 1) }, kind: 'multiclass' }), DataError, 'ERR_DATA', /labels\.test has no example of class 0/);
  check(() => evaluateProbe({ embeddings: { ...emb, test: x }, labels: { train: y, val: y, test: y }, kind: 'binary', labelFraction: 2 }), ConfigError, 'ERR_CONFIG', /labelFraction/);
});
