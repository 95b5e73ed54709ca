import t from 'tap';
import * as path from 'node:path';
import { holmAdjust, pairedTTest, regularizedBeta, studentTCdf, studentTQuantile, studentTTwoSided } from '../lib/eval';
import { pairedCi } from '../lib/study';
import { uniformStream } from '../lib/eval/metrics';
import { runPythonOracle } from './helpers/python-oracle';

const ORACLE = path.join(__dirname, 'fixtures', 'paired_oracle.py');

// A seeded normal stream (Box–Muller over the metrics' uniform stream).
function normals(seed: number): () => number {
  const u = uniformStream(seed);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

const rnd = normals(11);
const cases: Record<string, unknown>[] = [];
const tGrid: Array<[number, number]> = [];
for (const df of [1, 2, 3, 4, 9, 29, 200]) for (const x of [-40, -4.3, -1.5, -0.2, 0, 0.7, 2.1, 12.7, 300]) tGrid.push([x, df]);
tGrid.forEach(([x, df], i) => cases.push({ id: `cdf${i}`, kind: 't_cdf', t: x, df }));
const pGrid: Array<[number, number]> = [];
for (const df of [1, 2, 4, 9, 30]) for (const p of [1e-6, 0.025, 0.3, 0.5, 0.9, 0.975, 0.995]) pGrid.push([p, df]);
pGrid.forEach(([p, df], i) => cases.push({ id: `ppf${i}`, kind: 't_ppf', p, df }));
const bGrid: Array<[number, number, number]> = [[0.3, 0.5, 0.5], [0.99, 10, 0.5], [0.01, 0.5, 3], [0.5, 2.5, 7], [0.7, 100, 0.5], [0.2, 1, 1]];
bGrid.forEach(([x, a, b], i) => cases.push({ id: `beta${i}`, kind: 'beta', x, a, b }));
const pairs: Array<{ a: number[]; b: number[]; alpha: number }> = [];
for (const n of [2, 3, 5, 10, 30]) {
  for (let r = 0; r < 3; r++) {
    const a = Array.from({ length: n }, () => 0.7 + 0.05 * rnd());
    const b = a.map((x) => x - 0.01 * r + 0.03 * rnd());
    pairs.push({ a, b, alpha: r === 2 ? 0.1 : 0.05 });
  }
}
pairs.forEach((c, i) => cases.push({ id: `tt${i}`, kind: 'ttest_rel', ...c }));

const oracle = runPythonOracle(ORACLE, cases) as { results: Record<string, any> } | null; // eslint-disable-line @typescript-eslint/no-explicit-any
const skip = oracle ? false : 'python3 with scipy not available';
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

t.test('Student t cdf, two-sided tail and quantile agree with scipy.stats.t', { skip }, async (t) => {
  let worst = 0;
  tGrid.forEach(([x, df], i) => {
    const o = oracle!.results[`cdf${i}`];
    worst = Math.max(worst, Math.abs(studentTCdf(x, df) - o.cdf), o.two_sided > 0 ? rel(studentTTwoSided(x, df), o.two_sided) : 0);
  });
  t.ok(worst < 1e-11, `cdf: worst difference ${worst}`);
  let worstQ = 0;
  // scipy 1.10's ppf is itself off by up to 3.6e-10 in probability (t(30) at 0.3: its cdf gives back
  // 0.30000000036), so the quantile is held to scipy loosely and to the cdf (checked above) tightly.
  let worstP = 0;
  pGrid.forEach(([p, df], i) => {
    const o = oracle!.results[`ppf${i}`].ppf;
    const q = studentTQuantile(p, df);
    worstQ = Math.max(worstQ, Math.abs(q - o) / Math.max(Math.abs(o), 1e-6));
    worstP = Math.max(worstP, Math.abs(studentTCdf(q, df) - p) / Math.min(p, 1 - p));
  });
  t.ok(worstQ < 1e-8, `ppf: worst relative difference from scipy ${worstQ}`);
  t.ok(worstP < 1e-12, `cdf(ppf(p)) = p: worst relative difference ${worstP}`);
  let worstB = 0;
  bGrid.forEach(([x, a, b], i) => { worstB = Math.max(worstB, rel(regularizedBeta(x, a, b), oracle!.results[`beta${i}`].I)); });
  t.ok(worstB < 1e-12, `incomplete beta: worst relative difference ${worstB}`);
});

t.test('pairedTTest agrees with scipy.stats.ttest_rel and its confidence interval', { skip }, async (t) => {
  pairs.forEach((c, i) => {
    const o = oracle!.results[`tt${i}`];
    const r = pairedTTest(c.a.map((x, j) => x - c.b[j]), c.alpha);
    const worst = Math.max(rel(r.t, o.t), rel(r.p, o.p), Math.abs(r.lower - o.lower), Math.abs(r.upper - o.upper));
    t.ok(worst < 1e-9 && r.df === o.df, `n ${c.a.length}, alpha ${c.alpha}: t ${r.t} vs ${o.t}, p ${r.p} vs ${o.p}, [${r.lower}, ${r.upper}] vs [${o.lower}, ${o.upper}]`);
  });
});

t.test('closed forms: t with 1 df is Cauchy; 2 and 4 df have closed-form quantiles', async (t) => {
  for (const x of [-3, -0.5, 0.25, 7]) t.ok(Math.abs(studentTCdf(x, 1) - (0.5 + Math.atan(x) / Math.PI)) < 1e-13, `Cauchy cdf at ${x}`);
  for (const p of [0.01, 0.2, 0.3, 0.975]) {
    const q2 = (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
    t.ok(Math.abs(studentTQuantile(p, 2) - q2) < 1e-13 * Math.max(1, Math.abs(q2)), `t(2) quantile at ${p}`);
    const a = 4 * p * (1 - p);
    const q4 = Math.sign(p - 0.5) * 2 * Math.sqrt(Math.cos(Math.acos(Math.sqrt(a)) / 3) / Math.sqrt(a) - 1);
    t.ok(Math.abs(studentTQuantile(p, 4) - q4) < 1e-12 * Math.max(1, Math.abs(q4)), `t(4) quantile at ${p}: ${studentTQuantile(p, 4)} vs ${q4}`);
  }
  // Diffs (0.05, −0.02, 0.05) by hand: the interval is mean ± t(2, 0.975) · sd / √3.
  const d = [0.05, -0.02, 0.05];
  const mean = 0.08 / 3;
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / 2);
  const r = pairedTTest(d);
  t.ok(Math.abs(r.estimate - mean) < 1e-15 && Math.abs(r.sd - sd) < 1e-15 && Math.abs(r.t - mean / (sd / Math.sqrt(3))) < 1e-12);
  const t975 = 0.95 / Math.sqrt(2 * 0.975 * 0.025);
  t.ok(Math.abs(r.upper - r.lower - (2 * t975 * sd) / Math.sqrt(3)) < 1e-12, 'half-width is t(2, 0.975) · se');
});

t.test('the paired t-interval over seeds covers a zero difference at its nominal rate; a seed bootstrap would not', async (t) => {
  // The bug this replaced: a percentile bootstrap over 3 seeds excluded a
  // true difference of 0 in about 25% of studies instead of 5%.
  const z = normals(5);
  for (const n of [3, 5]) {
    let excluded = 0;
    const studies = 4000;
    for (let s = 0; s < studies; s++) {
      const r = pairedCi(Array.from({ length: n }, () => z()));
      if (r.lower > 0 || r.upper < 0) excluded++;
      if ((r.p < 0.05) !== (r.lower > 0 || r.upper < 0)) t.fail(`p ${r.p} and the interval disagree`);
    }
    const rate = excluded / studies;
    // Binomial sd at 5% over 4000 studies: 0.0034; allow ±4 sd.
    t.ok(Math.abs(rate - 0.05) < 0.014, `n ${n}: the 95% interval excludes 0 in ${(100 * rate).toFixed(1)}% of null studies`);
  }
});

t.test('pairedTTest edge cases: one pair, equal differences, bad input', async (t) => {
  const one = pairedTTest([0.2]);
  t.equal(one.estimate, 0.2);
  t.ok([one.lower, one.upper, one.p, one.t, one.sd].every(Number.isNaN), 'one pair: no interval, no p');
  const same = pairedTTest([0.1, 0.1, 0.1].map((x, i) => x + [0.7, 0.2, 0.5][i] - [0.7, 0.2, 0.5][i]));
  t.ok([same.p, same.t, same.lower, same.upper].every(Number.isNaN), 'equal non-zero differences (up to rounding): no variance estimate, no test (scipy: t = inf, p = 0)');
  t.equal(same.sd, 0);
  t.ok(Math.abs(same.estimate - 0.1) < 1e-15, 'the estimate stays');
  // The review's case: values rounded to 3 decimals, 3 seeds, the same difference at each.
  const rounded = pairedTTest([0.812 - 0.802, 0.7 - 0.69, 0.65 - 0.64]);
  t.ok(Number.isNaN(rounded.p), `a = [0.812, 0.700, 0.650] vs b = [0.802, 0.690, 0.640]: p ${rounded.p}, not 0`);
  const zero = pairedTTest([0, 0, 0]);
  t.ok([zero.p, zero.t, zero.lower, zero.upper].every(Number.isNaN), 'all-zero differences: no test either');
  t.throws(() => pairedTTest([]), { code: 'ERR_DATA' });
  t.throws(() => pairedTTest([0.1, NaN]), { code: 'ERR_DATA', message: /diffs\[1\]/ });
  t.throws(() => pairedTTest([0.1, 0.2], 1.5), { code: 'ERR_CONFIG' });
  t.throws(() => studentTQuantile(0.5, 0), { code: 'ERR_CONFIG' });
});

t.test('holmAdjust matches the step-down formula by hand', async (t) => {
  // Sorted p: 0.01, 0.02, 0.03, 0.04 (m = 4): 0.04, 0.06, 0.06 (monotone), 0.06.
  const q = holmAdjust([0.03, 0.01, NaN, 0.04, 0.02]);
  const want = [0.06, 0.04, NaN, 0.06, 0.06];
  q.forEach((x, i) => (Number.isNaN(want[i]) ? t.ok(Number.isNaN(x)) : t.ok(Math.abs(x - want[i]) < 1e-15, `p̃[${i}] = ${x}, want ${want[i]}`)));
  t.same(holmAdjust([0.5, 0.4]), [0.8, 0.8], 'capped at 1 and monotone');
  t.same(holmAdjust([]), []);
  t.throws(() => holmAdjust([0.1, 1.2]), { code: 'ERR_DATA', message: /p\[1\]/ });
});

t.test('"better on every task" (intersection–union of one-sided t-tests): its size under the null, its power, and why it is not the mean', async (t) => {
  const { everyTaskP, pGreater } = await import('../lib/study');
  const g = normals(23);
  const studies = 4000;
  const rate = (seeds: number, shift: number[]) => {
    let hits = 0;
    for (let s = 0; s < studies; s++) {
      const diffs = shift.map((m) => Array.from({ length: seeds }, () => m + 0.05 * g()));
      if (everyTaskP(diffs) <= 0.05) hits++;
    }
    return hits / studies;
  };
  // At the boundary of the null (one task no better, the others far better) the size is the one-sided test's 5%.
  const boundary = rate(5, [0, 1, 1, 1, 1]);
  t.ok(Math.abs(boundary - 0.05) < 0.014, `one task equal, four far better, 5 seeds: rejects in ${(100 * boundary).toFixed(1)}% (5% nominal; binomial sd 0.34%)`);
  const null5 = rate(5, [0, 0, 0, 0, 0]);
  t.ok(null5 < 0.01, `no task better: rejects in ${(100 * null5).toFixed(2)}% (conservative)`);
  // Independent tasks: the power is each one-sided test's power to the 5th.
  const one = rate(10, [0.06]);
  const power = rate(10, [0.06, 0.06, 0.06, 0.06, 0.06]);
  t.ok(Math.abs(power - one ** 5) < 0.03, `every task better by 1.2 sd, 10 seeds: rejects in ${(100 * power).toFixed(1)}%, one task's power^5 = ${(100 * one ** 5).toFixed(1)}%`);
  // The rule it replaces: mean over tasks significant while one task is worse.
  const diffs = [[0.1, 0.12, 0.11], [0.1, 0.09, 0.11], [0.08, 0.1, 0.09], [-0.02, -0.03, -0.025]];
  t.ok(pairedTTest(diffs[0].map((_, i) => diffs.reduce((a, d) => a + d[i], 0) / diffs.length)).p < 0.05, 'the mean over tasks is significant');
  t.ok(everyTaskP(diffs) > 0.5, `but "every task" is not: p ${everyTaskP(diffs).toFixed(3)} (the last task is worse)`);
  t.equal(everyTaskP(diffs), Math.max(...diffs.map((d) => pGreater(pairedTTest(d)))), 'p = the largest one-sided p');
  t.ok(Number.isNaN(everyTaskP([[0.1, 0.2], [0.05]])), 'a task with one seed: no p');
  // One-sided p from the two-sided one: scipy.stats.ttest_rel([0.8, 0.7, 0.9], [0.75, 0.72, 0.85], alternative='greater').pvalue = 0.1857303194726455.
  t.ok(Math.abs(pGreater(pairedTTest([0.05, -0.02, 0.05])) - 0.1857303194726455) < 1e-12);
});
