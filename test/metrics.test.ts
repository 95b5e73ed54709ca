import t from 'tap';
import {
  accuracy, balancedAccuracy, bootstrapCi, bootstrapStatistic, meanAbsoluteError, meanSd, quantileSorted,
  r2Score, rocAuc, rocAucOvr,
} from '../lib/eval/index';
import { uniformStream } from '../lib/eval/metrics';
import { ConfigError, DataError, ShapeError } from '../lib/errors';
import { errorOf, runMetricsOracle } from './helpers/metrics-oracle';

const runOracle = runMetricsOracle;

const rng = uniformStream(7);
const randInt = (k: number): number => Math.floor(rng() * k);
const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------- oracle cases

/** Binary cases: continuous scores, scores with many ties, integer scores, imbalanced labels. */
const binCases = [
  { digits: 6, n: 300, p: 0.5 },
  { digits: 1, n: 300, p: 0.3 },
  { digits: 0, n: 200, p: 0.5, scale: 4 },
  { digits: 2, n: 1000, p: 0.05 },
  { digits: 12, n: 57, p: 0.6 },
].map((c, i) => {
  const y = Array.from({ length: c.n }, () => (rng() < c.p ? 1 : 0));
  y[0] = 0;
  y[1] = 1;
  const s = y.map((v) => round((c.scale ?? 1) * (rng() + 0.4 * v), c.digits));
  return { id: `auc${i}`, kind: 'roc_auc', y, s };
});

/** Softmax rows; `pool` > 0 draws each row from that many fixed rows, so columns tie heavily. */
function ovrCase(id: string, n: number, k: number, pool: number, average: string) {
  const y = Array.from({ length: n }, (_, i) => (i < k ? i : randInt(k)));
  const softmax = (z: number[]): number[] => {
    const e = z.map(Math.exp);
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  const rows = Array.from({ length: pool }, () => softmax(Array.from({ length: k }, () => 2 * rng())));
  const P = y.map((c) => (pool > 0 ? rows[randInt(pool)] : softmax(Array.from({ length: k }, (_, j) => 2 * rng() + (j === c ? 1 : 0)))));
  return { id, kind: 'roc_auc_ovr', y, P, average };
}
const ovrCases = [ovrCase('ovr0', 400, 3, 0, 'macro'), ovrCase('ovr1', 300, 4, 6, 'macro'), ovrCase('ovr2', 500, 5, 0, 'weighted'), ovrCase('ovr3', 200, 3, 4, 'weighted')];

const clsCases = [
  { id: 'cls0', kind: 'classification', y: Array.from({ length: 300 }, () => randInt(3)), p: Array.from({ length: 300 }, () => randInt(3)) },
  // class 3 only predicted, never true: it does not count in the balanced accuracy
  { id: 'cls1', kind: 'classification', y: Array.from({ length: 100 }, (_, i) => (i < 80 ? 0 : 1)), p: Array.from({ length: 100 }, (_, i) => (i % 7 === 0 ? 3 : i % 3 === 0 ? 1 : 0)) },
];
const regCases = [0, 1].map((i) => {
  const y = Array.from({ length: 250 }, () => 10 * rng() - 3);
  return { id: `reg${i}`, kind: 'regression', y, p: y.map((v) => (i === 0 ? v + rng() - 0.5 : 5 * rng())) };
});
const sumValues = Array.from({ length: 37 }, () => round(rng() * 3, 2));
const Q = [0, 0.025, 0.1, 0.5, 0.975, 1];
const boot = bootstrapCi(sumValues, { reps: 500, seed: 3 });

const oracle = runOracle([
  ...binCases, ...ovrCases, ...clsCases, ...regCases,
  { id: 'sum', kind: 'summary', v: sumValues, q: Q },
  { id: 'boot', kind: 'summary', v: Array.from(boot.replicates), q: [0.025, 0.975] },
]);

t.test('rocAuc matches roc_auc_score on random scores with and without ties to 1e-12', { skip: !oracle && 'no sklearn' }, async (t) => {
  for (const c of binCases) {
    const ours = rocAuc(Int8Array.from(c.y), Float64Array.from(c.s));
    t.ok(Math.abs(ours - oracle![c.id].auc) < 1e-12, `${c.id}: ${ours} vs ${oracle![c.id].auc}`);
    t.equal(rocAuc(c.y, c.s), ours, `${c.id}: plain arrays give the same`);
  }
});

t.test('rocAuc closed forms: separation, reversal, ties', async (t) => {
  t.equal(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), 1);
  t.equal(rocAuc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]), 0);
  t.equal(rocAuc([0, 1, 0, 1, 1], [3, 3, 3, 3, 3]), 0.5);
  t.equal(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.75);
  // one tied positive/negative pair out of four counts 1/2
  t.equal(rocAuc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]), 0.875);
});

t.test('rocAucOvr matches multi_class=ovr (macro and weighted), flat or rows, to 1e-12', { skip: !oracle && 'no sklearn' }, async (t) => {
  for (const c of ovrCases) {
    const flat = Float64Array.from(c.P.flat());
    const ours = rocAucOvr(c.y, flat, { average: c.average as 'macro' | 'weighted' });
    t.ok(Math.abs(ours - oracle![c.id].auc) < 1e-12, `${c.id}: ${ours} vs ${oracle![c.id].auc}`);
    t.equal(rocAucOvr(c.y, c.P, { average: c.average as 'macro' | 'weighted' }), ours, `${c.id}: rows give the same`);
  }
});

t.test('accuracy and balancedAccuracy match scikit-learn', { skip: !oracle && 'no sklearn' }, async (t) => {
  for (const c of clsCases) {
    t.ok(Math.abs(accuracy(c.y, c.p) - oracle![c.id].accuracy) < 1e-12, `${c.id} accuracy`);
    t.ok(Math.abs(balancedAccuracy(c.y, c.p) - oracle![c.id].balanced_accuracy) < 1e-12, `${c.id} balanced accuracy`);
  }
  t.equal(balancedAccuracy([0, 0, 0, 1], [0, 0, 0, 0]), 0.5);
});

t.test('r2Score and meanAbsoluteError match scikit-learn, constant targets follow force_finite', { skip: !oracle && 'no sklearn' }, async (t) => {
  for (const c of regCases) {
    t.ok(Math.abs(r2Score(c.y, c.p) - oracle![c.id].r2) < 1e-12, `${c.id} r2`);
    t.ok(Math.abs(meanAbsoluteError(c.y, c.p) - oracle![c.id].mae) < 1e-12, `${c.id} mae`);
  }
  t.equal(r2Score([2, 2, 2], [2, 2, 2]), 1);
  t.equal(r2Score([2, 2, 2], [2, 2, 3]), 0);
  t.equal(r2Score([1, 2, 3], [1, 2, 3]), 1);
  t.ok(Number.isNaN(r2Score([2], [2])) && Number.isNaN(r2Score([2], [3])), 'one sample: NaN, as sklearn');
});

t.test('meanSd and quantileSorted match numpy (ddof 1, linear quantiles)', { skip: !oracle && 'no sklearn' }, async (t) => {
  const ms = meanSd(sumValues);
  t.ok(Math.abs(ms.mean - oracle!.sum.mean) < 1e-12 && Math.abs(ms.sd - oracle!.sum.sd) < 1e-12, `${ms.mean} ± ${ms.sd}`);
  const sorted = Float64Array.from(sumValues).sort();
  Q.forEach((q, i) => t.ok(Math.abs(quantileSorted(sorted, q) - oracle!.sum.quantiles[i]) < 1e-12, `q=${q}`));
  t.ok(Number.isNaN(meanSd([3]).sd), 'one value has no sample sd');
});

t.test('bootstrapCi is seeded, brackets the mean and takes numpy quantiles of its replicates', async (t) => {
  t.same(bootstrapCi(sumValues, { reps: 500, seed: 3 }), boot, 'same seed, same result');
  t.not(bootstrapCi(sumValues, { reps: 500, seed: 4 }).lower, boot.lower, 'another seed, another result');
  t.equal(boot.estimate, meanSd(sumValues).mean);
  t.ok(boot.lower < boot.estimate && boot.estimate < boot.upper);
  if (oracle) {
    t.ok(Math.abs(boot.lower - oracle.boot.quantiles[0]) < 1e-12 && Math.abs(boot.upper - oracle.boot.quantiles[1]) < 1e-12, 'percentiles');
  }
  const c = bootstrapCi([2, 2, 2, 2]);
  t.same([c.lower, c.estimate, c.upper], [2, 2, 2], 'constant values give a point interval');
  // 400 N(0,1)-ish values (Irwin–Hall of 12 uniforms): half-width ≈ 1.96/√400
  const g = uniformStream(11);
  const v = Array.from({ length: 400 }, () => Array.from({ length: 12 }, g).reduce((a, b) => a + b, 0) - 6);
  const ci = bootstrapCi(v, { reps: 2000, seed: 1 });
  const half = (ci.upper - ci.lower) / 2;
  const se = meanSd(v).sd / 20;
  t.ok(Math.abs(half / (1.96 * se) - 1) < 0.12, `half-width ${half} vs ${1.96 * se}`);
});

t.test('bootstrapStatistic resamples paired examples for an AUC difference', async (t) => {
  const n = 300;
  const y = Array.from({ length: n }, (_, i) => i % 2);
  const a = y.map((v) => v + 1.5 * rng());
  const b = y.map((v) => v + 3 * rng());
  const diff = (idx: Uint32Array): number => {
    const yy = Array.from(idx, (i) => y[i]);
    return rocAuc(yy, Array.from(idx, (i) => a[i])) - rocAuc(yy, Array.from(idx, (i) => b[i]));
  };
  const ci = bootstrapStatistic(n, diff, { reps: 300, seed: 5 });
  t.ok(Math.abs(ci.estimate - (rocAuc(y, a) - rocAuc(y, b))) < 1e-15);
  t.ok(ci.lower > 0, `the better scorer wins: [${ci.lower}, ${ci.upper}]`);
  t.same(bootstrapStatistic(n, diff, { reps: 300, seed: 5 }).replicates, ci.replicates);
});

t.test('metrics reject bad inputs naming the argument and index', async (t) => {
  let e = errorOf(() => rocAuc([0, 1, 1], [0.2, 0.5]));
  t.ok(e instanceof ShapeError && e.code === 'ERR_SHAPE' && /score has length 2 but yTrue has length 3/.test(e.message), e.message);
  e = errorOf(() => rocAuc([0, 1, 1], [0.2, 0.5, NaN]));
  t.ok(e instanceof DataError && e.code === 'ERR_DATA' && /score\[2\] is NaN/.test(e.message), e.message);
  e = errorOf(() => rocAuc([0, 2, 1], [0.2, 0.5, 0.1]));
  t.ok(e instanceof DataError && /yTrue\[1\] is 2; expected 0 or 1/.test(e.message), e.message);
  e = errorOf(() => rocAuc([1, 1, 1], [0.2, 0.5, 0.1]));
  t.ok(e instanceof DataError && /only class 1/.test(e.message), e.message);
  e = errorOf(() => rocAucOvr([0, 1, 0, 1], [0.5, 0.3, 0.2, 0.4, 0.4, 0.2, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4]));
  t.ok(e instanceof DataError && /no example of class 2/.test(e.message), e.message);
  e = errorOf(() => rocAucOvr([0, 1, 2], [0.1, 0.9, 0.3, 0.7]));
  t.ok(e instanceof ShapeError && /probs has length 4, not a multiple/.test(e.message), e.message);
  e = errorOf(() => rocAucOvr([0, 1], [[0.1, 0.9], [0.3]]));
  t.ok(e instanceof ShapeError && /probs\[1\] has length 1/.test(e.message), e.message);
  e = errorOf(() => rocAucOvr([0, 1], [[0.1, 0.9], [0.3, 0.7]], { average: 'micro' as any }));
  t.ok(e instanceof ConfigError && e.code === 'ERR_CONFIG' && /average/.test(e.message), e.message);
  e = errorOf(() => balancedAccuracy([0, 1.5], [0, 1]));
  t.ok(e instanceof DataError && /yTrue\[1\] is 1.5/.test(e.message), e.message);
  e = errorOf(() => r2Score([], []));
  t.ok(e instanceof ShapeError && /empty/.test(e.message), e.message);
  e = errorOf(() => meanAbsoluteError([1, Infinity], [1, 2]));
  t.ok(e instanceof DataError && /yTrue\[1\] is Infinity/.test(e.message), e.message);
  e = errorOf(() => bootstrapCi([1, 2], { reps: 0 }));
  t.ok(e instanceof ConfigError && /reps/.test(e.message), e.message);
  e = errorOf(() => bootstrapCi([1, 2], { alpha: 1.5 }));
  t.ok(e instanceof ConfigError && /alpha/.test(e.message), e.message);
  e = errorOf(() => bootstrapCi([1, 2], { sed: 1 } as any));
  t.ok(e instanceof ConfigError && /Unknown option sed/.test(e.message), e.message);
  e = errorOf(() => bootstrapStatistic(10, () => NaN, { reps: 5 }));
  t.ok(e instanceof DataError && /replicate 0/.test(e.message), e.message);
});
