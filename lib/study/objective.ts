/**
 * The study's statistics: the multi-task objective, paired differences with
 * t-intervals and Holm-adjusted p-values, Nogueira's stability index, and precision / recall / F1
 * against a synthetic cohort's ground truth.
 */
import { ConfigError } from '../errors';
import { meanSd } from '../eval/metrics';
import { pairedTTest, type PairedTTest } from '../eval/paired';

/** The baselines every study runs at every seed. */
export const ALL_FEATURES = 'all-features';
export const IMAGE_ONLY = 'image-only';

export type TaskKind = 'binary' | 'multiclass' | 'regression';

/** The metric a task is scored by: ROC AUC (macro one-vs-rest for multiclass), or R² for regression. */
export function primaryMetric(kind: TaskKind): 'auc' | 'r2' {
  return kind === 'regression' ? 'r2' : 'auc';
}

/** Default floor of the across-seed sd that normalises improvements (metric units: AUC or R²). */
export const DEFAULT_SD_FLOOR = 0.01;

/** Sample sd (n − 1) of per-seed values; NaN for fewer than 2. */
export function acrossSeedSd(values: number[]): number {
  return values.length < 2 ? NaN : meanSd(values).sd;
}

/**
 * The multi-task objective of a subset at one seed:
 *
 *   objective = (1/T) Σ_t (m_t(subset, s) − m_t(all, s)) / max(sd_t(all), floor)
 *
 * m_t = the task's primary test metric (mean over probe seeds) of the run at
 * seed s; sd_t(all) = the across-seed sd of the all-features runs' m_t. The
 * floor keeps a very stable baseline (or a single seed, sd NaN) from turning
 * a tiny difference into a huge score. Returns the mean and each task's term.
 */
export function objective(
  subset: Record<string, number>, reference: Record<string, number>, referenceSd: Record<string, number>, floor = DEFAULT_SD_FLOOR,
): { value: number; perTask: Record<string, number> } {
  if (!(floor > 0)) throw new ConfigError(`Expected positive number for sdFloor but received ${String(floor)}`);
  const tasks = Object.keys(reference);
  if (tasks.length === 0) throw new ConfigError('The objective needs at least one task');
  const perTask: Record<string, number> = {};
  for (const t of tasks) {
    if (!(t in subset)) throw new ConfigError(`No metric for task "${t}" in the subset's results`);
    const sd = referenceSd[t];
    perTask[t] = (subset[t] - reference[t]) / (Number.isFinite(sd) ? Math.max(sd, floor) : floor);
  }
  return { value: tasks.reduce((s, t) => s + perTask[t], 0) / tasks.length, perTask };
}

/** Differences a − b over the seeds both have, in ascending seed order. */
export function pairedDifferences(a: Map<number, number>, b: Map<number, number>): { seeds: number[]; diffs: number[] } {
  const seeds = [...a.keys()].filter((s) => b.has(s)).sort((x, y) => x - y);
  return { seeds, diffs: seeds.map((s) => a.get(s)! - b.get(s)!) };
}

/**
 * The paired t-test of per-seed differences with its (1 − alpha) interval
 * (scipy's ttest_rel). Not a bootstrap: resampling 3 to 10 seeds gives
 * intervals far narrower than their nominal level (see eval/paired.ts).
 * NaN interval and p with fewer than 2 paired seeds.
 */
export function pairedCi(diffs: number[], opts: { alpha?: number } = {}): PairedTTest {
  return pairedTTest(diffs, opts.alpha ?? 0.05);
}

/** One-sided p of a paired t-test for "the mean difference is above 0" (NaN where the test has no p). */
export function pGreater(test: PairedTTest): number {
  return Number.isNaN(test.p) ? NaN : test.t > 0 ? test.p / 2 : 1 - test.p / 2;
}

/**
 * The p-value of "better on every task" from each task's per-seed
 * differences (subset − reference): the intersection–union test of the
 * one-sided paired t-tests, i.e. the largest of their p-values. Rejecting
 * when it is ≤ alpha has size ≤ alpha with no correction across tasks
 * (Berger 1982), because the claim needs every task's. NaN when a task has
 * no p (one seed, equal differences).
 */
export function everyTaskP(diffsPerTask: number[][]): number {
  const ps = diffsPerTask.map((d) => pGreater(pairedTTest(d)));
  return ps.length === 0 || ps.some(Number.isNaN) ? NaN : Math.max(...ps);
}

/**
 * Nogueira, Sechidis & Brown (2018, JMLR) stability of M selections from d
 * features:
 *
 *   Φ = 1 − [(1/d) Σ_f s_f²] / [(k̄/d)(1 − k̄/d)],  s_f² = M/(M−1) · p_f (1 − p_f)
 *
 * p_f = the fraction of selections containing f, k̄ = the mean subset size.
 * 1 = identical subsets; about 0 = as similar as random subsets of that size.
 * NaN for fewer than 2 selections or when k̄ is 0 or d.
 */
export function nogueiraStability(selections: string[][], d: number): number {
  const M = selections.length;
  if (M < 2 || !(d > 0)) return NaN;
  const counts = new Map<string, number>();
  for (const s of selections) for (const f of new Set(s)) counts.set(f, (counts.get(f) ?? 0) + 1);
  if (counts.size > d) throw new ConfigError(`The selections name ${counts.size} distinct features but d is ${d}`);
  const kbar = selections.reduce((s, x) => s + new Set(x).size, 0) / M;
  const denom = (kbar / d) * (1 - kbar / d);
  if (!(denom > 0)) return NaN;
  let sum = 0;
  for (const c of counts.values()) {
    const p = c / M;
    sum += (M / (M - 1)) * p * (1 - p);
  }
  return 1 - sum / d / denom;
}

/**
 * The features a synthetic cohort's truth.json marks image-derivable and
 * relevant to at least one of `tasks` (`imageDerivable` ∩ ∪ tasks[t].relevant;
 * the cardiac and MNIST generators both write these keys). undefined when
 * the truth lacks them.
 */
export function trueImageRelevant(truth: unknown, tasks: string[]): string[] | undefined {
  const t = truth as { imageDerivable?: unknown; tasks?: Record<string, { relevant?: unknown }> } | undefined;
  if (!t || !Array.isArray(t.imageDerivable) || typeof t.tasks !== 'object' || t.tasks === null) return undefined;
  const relevant = new Set<string>();
  for (const name of tasks) {
    const r = t.tasks[name]?.relevant;
    if (Array.isArray(r)) r.forEach((f) => typeof f === 'string' && relevant.add(f));
  }
  return (t.imageDerivable as unknown[]).filter((f): f is string => typeof f === 'string' && relevant.has(f));
}

/** Precision, recall and F1 of a selected set against a true set (0 when undefined). */
export function precisionRecallF1(selected: string[], truth: string[]): { precision: number; recall: number; f1: number } {
  const T = new Set(truth);
  const S = new Set(selected);
  const tp = [...S].filter((f) => T.has(f)).length;
  const precision = S.size ? tp / S.size : 0;
  const recall = T.size ? tp / T.size : 0;
  return { precision, recall, f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0 };
}
