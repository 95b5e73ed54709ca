/**
 * Small-sample inference over seeds: Student's t distribution, the paired
 * t-test with its confidence interval, and Holm's step-down correction.
 *
 * A study compares two pretrainings at a handful of seeds (3 to 10). A
 * percentile bootstrap that resamples so few seeds covers far less than its
 * nominal level (with 3 seeds a 95% interval excludes a true difference of
 * 0 about a quarter of the time), so paired comparisons over seeds use the
 * t-interval, which is exact for normal differences and close for others at
 * these n. Matches scipy.stats (t.cdf, t.ppf, ttest_rel) to ~1e-12.
 */
import { ConfigError, DataError } from '../errors';
import { checkFinite } from './metrics';

// ------------------------------------------------------------------ special functions

/** log Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error below 1e-14). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of the incomplete beta function (modified Lentz), valid for x < (a + 1) / (a + b + 2). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]. */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new ConfigError(`regularizedBeta needs a, b > 0 but received a = ${String(a)}, b = ${String(b)}`);
  if (!(x >= 0 && x <= 1)) throw new ConfigError(`regularizedBeta needs x in [0, 1] but received ${String(x)}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(x, a, b)) / a : 1 - (front * betaFraction(1 - x, b, a)) / b;
}

function checkDf(df: number): void {
  if (!(df > 0) || !Number.isFinite(df)) throw new ConfigError(`Expected positive finite number for df but received ${String(df)}`);
}

/** P(|T| ≥ |t|) for T ~ Student's t with `df` degrees of freedom (scipy: 2·t.sf(|t|, df)). */
export function studentTTwoSided(t: number, df: number): number {
  checkDf(df);
  if (Number.isNaN(t)) return NaN;
  if (!Number.isFinite(t)) return 0;
  return regularizedBeta(df / (df + t * t), df / 2, 0.5);
}

/** P(T ≤ t) for T ~ Student's t with `df` degrees of freedom (scipy: t.cdf). */
export function studentTCdf(t: number, df: number): number {
  const tail = studentTTwoSided(t, df) / 2;
  return t > 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with `df` degrees of freedom (scipy: t.ppf), by bisection on the cdf. */
export function studentTQuantile(p: number, df: number): number {
  checkDf(df);
  if (!(p > 0 && p < 1)) throw new ConfigError(`Expected number in (0, 1) for p but received ${String(p)}`);
  if (p === 0.5) return 0;
  // Solve in the upper tail, where the two-sided p is computed without cancellation.
  const upper = p > 0.5;
  const target = 2 * (upper ? 1 - p : p); // the two-sided tail probability of |t|
  let lo = 0;
  let hi = 1;
  while (studentTTwoSided(hi, df) > target) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) break;
  }
  for (let i = 0; i < 300 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTTwoSided(mid, df) > target) lo = mid;
    else hi = mid;
  }
  const q = 0.5 * (lo + hi);
  return upper ? q : -q;
}

// ------------------------------------------------------------------ the paired t-test

export interface PairedTTest {
  /** The mean of the paired differences. */
  estimate: number;
  /** The (1 − alpha) t-interval of the mean difference; NaN with fewer than 2 pairs. */
  lower: number;
  upper: number;
  /** Sample sd (n − 1) of the differences; NaN with fewer than 2 pairs. */
  sd: number;
  /** t = estimate / (sd / √n) with n − 1 degrees of freedom. */
  t: number;
  df: number;
  /** Two-sided p-value of "the mean difference is 0"; NaN with fewer than 2 pairs. */
  p: number;
  n: number;
  alpha: number;
}

/**
 * The paired t-test of `diffs` (a − b per pair, e.g. per seed), as
 * scipy.stats.ttest_rel(a, b) with its confidence_interval(1 − alpha).
 *
 * With fewer than 2 pairs nothing can be inferred: the interval, t and p are
 * NaN. The same when the differences are all equal (sd 0 up to rounding):
 * there is no variance estimate, so no test. scipy gives t = ±inf and p = 0
 * there, which a report would print as the strongest evidence, from as few
 * as 2 seeds whose values were rounded alike.
 */
export function pairedTTest(diffs: ArrayLike<number>, alpha = 0.05): PairedTTest {
  if (!(alpha > 0 && alpha < 1)) throw new ConfigError(`Expected number in (0, 1) for alpha but received ${String(alpha)}`);
  checkFinite(diffs, 'diffs');
  const n = diffs.length;
  if (n === 0) throw new DataError('diffs is empty; a paired test needs at least one pair');
  let mean = 0;
  for (let i = 0; i < n; i++) mean += diffs[i];
  mean /= n;
  const df = n - 1;
  if (n < 2) return { estimate: mean, lower: NaN, upper: NaN, sd: NaN, t: NaN, df, p: NaN, n, alpha };
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (diffs[i] - mean) ** 2;
  const sd = Math.sqrt(ss / df);
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(diffs[i]));
  if (sd <= 1e-12 * scale || sd === 0) {
    // Equal differences: sd is rounding noise, and the test degenerates.
    return { estimate: mean, lower: NaN, upper: NaN, sd: 0, t: NaN, df, p: NaN, n, alpha };
  }
  const se = sd / Math.sqrt(n);
  const half = studentTQuantile(1 - alpha / 2, df) * se;
  const t = mean / se;
  return { estimate: mean, lower: mean - half, upper: mean + half, sd, t, df, p: studentTTwoSided(t, df), n, alpha };
}

// ------------------------------------------------------------------ multiple comparisons

/**
 * Holm's (1979) step-down adjusted p-values: with the m finite p-values
 * sorted, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)). Rejecting where
 * p̃ ≤ alpha controls the family-wise error rate at alpha under any
 * dependence. NaN entries stay NaN and do not count in m.
 */
export function holmAdjust(p: readonly number[]): number[] {
  p.forEach((x, i) => {
    if (!Number.isNaN(x) && !(x >= 0 && x <= 1)) throw new DataError(`p[${i}] is ${String(x)}; expected a p-value in [0, 1] or NaN`);
  });
  const order = p.map((x, i) => ({ x, i })).filter((e) => !Number.isNaN(e.x)).sort((a, b) => a.x - b.x);
  const m = order.length;
  const out = p.map(() => NaN);
  let running = 0;
  order.forEach((e, j) => {
    running = Math.max(running, Math.min(1, (m - j) * e.x));
    out[e.i] = running;
  });
  return out;
}
