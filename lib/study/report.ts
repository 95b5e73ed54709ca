/**
 * Summaries of a study store and its HTML report (STUDY/report.html):
 * subsets × tasks, paired differences vs all features (t-intervals over
 * seeds, Holm-adjusted p-values),
 * the objective against k, selected features with their stability, and,
 * on synthetic cohorts, precision / recall / F1 against the ground truth.
 */
import * as path from 'node:path';
import { meanSd } from '../eval/metrics';
import { holmAdjust } from '../eval/paired';
import { formatMeanSd, writeReport, type Section } from '../report/html';
import { heatmap, scatterLine } from '../report/charts';
import {
  acrossSeedSd, ALL_FEATURES, DEFAULT_SD_FLOOR, everyTaskP, IMAGE_ONLY, nogueiraStability, objective, pairedCi, pairedDifferences, pGreater, precisionRecallF1, primaryMetric, type TaskKind,
} from './objective';
import type { StudyInfo } from './plan';
import { StudyStore, type Trial } from './store';

export type { StudyInfo };

export interface Stat {
  mean: number;
  sd: number;
  values: number[];
}

export interface Interval {
  /** Mean over paired seeds of (subset − all features). */
  estimate: number;
  /** 95% paired t-interval; NaN with fewer than 2 paired seeds. */
  lower: number;
  upper: number;
  n: number;
  /** Two-sided paired t-test p-value (NaN with fewer than 2 paired seeds, or differences all equal). */
  p: number;
  /** One-sided p for "subset > all features" (from the same t statistic). */
  pGreater: number;
  /**
   * p after Holm's correction over the per-task comparisons of all subsets
   * (one family). NaN for the objective, which is not tested (see objective).
   */
  pHolm: number;
}

/**
 * The test of "this subset beats all features on every task": one-sided
 * paired t-tests per task, combined by the intersection–union principle
 * (the claim holds only if every task's does, so p = the largest of the
 * one-sided p-values, with no correction across tasks), then Holm's
 * correction over the subsets.
 */
export interface EveryTask {
  p: number;
  pHolm: number;
}

export interface SubsetSummary {
  label: string;
  method: string;
  k: number;
  seeds: number[];
  /** The primary metric per task, across seeds (each value: the mean over probe seeds). */
  tasks: Record<string, Stat>;
  /** The objective across seeds (seeds with an all-features run only). */
  objective: Stat | null;
  /** Each task's normalised improvement, mean over seeds. */
  objectivePerTask: Record<string, number>;
  /**
   * Paired differences vs all-features (per task in metric units, and
   * 'objective'): paired t-test over seeds. The objective's entry is
   * descriptive: its interval and p are NaN. Its scale, sd_t, is estimated
   * from the all-features runs that are also in its differences, and a
   * t-test on it rejected in about 7% of null studies at a nominal 5%
   * (3 to 5 seeds, 5 tasks: the statistics review of 2026-11-27).
   */
  paired: Record<string, Interval>;
  /** "Beats all features on every task" (null for all-features itself, or without paired seeds). */
  everyTask: EveryTask | null;
  selections: string[][];
  stability: number;
  truth: { precision: Stat; recall: Stat; f1: Stat } | null;
}

export interface StudySummaryData {
  config: Record<string, unknown>;
  info: StudyInfo;
  trials: Trial[];
  subsets: SubsetSummary[];
}

const stat = (values: number[]): Stat => (values.length ? { mean: meanSd(values).mean, sd: acrossSeedSd(values), values } : { mean: NaN, sd: NaN, values });

/** Reads a study directory and computes every summary of the report. */
export function summarizeStudy(dir: string): StudySummaryData {
  const store = StudyStore.open(path.join(path.resolve(dir), 'study.sqlite'), { readonly: true });
  let config: Record<string, unknown>;
  let info: StudyInfo;
  let trials: Trial[];
  try {
    config = store.getMeta('config') as Record<string, unknown>;
    info = store.getMeta('info') as StudyInfo;
    trials = store.trials();
  } finally {
    store.close();
  }
  const floor = (config.sdFloor as number | undefined) ?? DEFAULT_SD_FLOOR;
  const metricOf = (t: Trial): Record<string, number> =>
    Object.fromEntries(info.tasks.map((x) => [x.name, t.results!.tasks[x.name][primaryMetric(x.kind)].mean]));
  const done = trials.filter((t) => t.status === 'done' && t.results);
  const ref = new Map(done.filter((t) => t.method === ALL_FEATURES).map((t) => [t.seed, metricOf(t)]));
  const refSd = Object.fromEntries(info.tasks.map((x) => [x.name, acrossSeedSd([...ref.values()].map((m) => m[x.name]))]));
  const groups = new Map<string, Trial[]>();
  for (const t of done) {
    const key = `${t.method}\u0000${t.k}`;
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const rank = (m: string) => (m === ALL_FEATURES ? 0 : m === IMAGE_ONLY ? 1 : 2);
  const subsets = [...groups.values()].map((ts): SubsetSummary => {
    ts.sort((a, b) => a.seed - b.seed);
    const { method, k } = ts[0];
    const metrics = new Map(ts.map((t) => [t.seed, metricOf(t)]));
    const tasks = Object.fromEntries(info.tasks.map((x) => [x.name, stat([...metrics.values()].map((m) => m[x.name]))]));
    const objs = new Map<number, ReturnType<typeof objective>>();
    for (const [seed, m] of metrics) if (ref.has(seed)) objs.set(seed, objective(m, ref.get(seed)!, refSd, floor));
    const paired: Record<string, Interval> = {};
    const ci = (values: Map<number, number>, against: Map<number, number>): Interval | undefined => {
      const { diffs } = pairedDifferences(values, against);
      if (diffs.length === 0) return undefined;
      const b = pairedCi(diffs);
      return { estimate: b.estimate, lower: b.lower, upper: b.upper, n: diffs.length, p: b.p, pGreater: pGreater(b), pHolm: NaN };
    };
    let everyTask: EveryTask | null = null;
    if (method !== ALL_FEATURES) {
      for (const x of info.tasks) {
        const iv = ci(new Map([...metrics].map(([s, m]) => [s, m[x.name]])), new Map([...ref].map(([s, m]) => [s, m[x.name]])));
        if (iv) paired[x.name] = iv;
      }
      if (objs.size) {
        const values = [...objs.values()].map((o) => o.value);
        paired.objective = { estimate: meanSd(values).mean, lower: NaN, upper: NaN, n: values.length, p: NaN, pGreater: NaN, pHolm: NaN };
      }
      const diffs = info.tasks.map((x) => pairedDifferences(new Map([...metrics].map(([s, m]) => [s, m[x.name]])), new Map([...ref].map(([s, m]) => [s, m[x.name]]))).diffs);
      if (diffs.every((d) => d.length > 0)) {
        const p = everyTaskP(diffs);
        if (!Number.isNaN(p)) everyTask = { p, pHolm: NaN };
      }
    }
    const selections = method === IMAGE_ONLY ? [] : ts.map((t) => t.features ?? []);
    const truthSet = info.truth;
    const prf = truthSet && method !== IMAGE_ONLY ? selections.map((s) => precisionRecallF1(s, truthSet)) : null;
    return {
      label: method === ALL_FEATURES || method === IMAGE_ONLY ? method : `${method} k=${k}`,
      method, k, seeds: ts.map((t) => t.seed), tasks,
      objective: objs.size ? stat([...objs.values()].map((o) => o.value)) : null,
      objectivePerTask: Object.fromEntries(info.tasks.map((x) => [x.name, objs.size ? [...objs.values()].reduce((s, o) => s + o.perTask[x.name], 0) / objs.size : NaN])),
      paired, everyTask, selections,
      stability: method === ALL_FEATURES || method === IMAGE_ONLY ? NaN : nogueiraStability(selections, info.features.length),
      truth: prf ? { precision: stat(prf.map((r) => r.precision)), recall: stat(prf.map((r) => r.recall)), f1: stat(prf.map((r) => r.f1)) } : null,
    };
  }).sort((a, b) => rank(a.method) - rank(b.method) || a.method.localeCompare(b.method) || a.k - b.k);
  // Holm over every per-task comparison of every subset (one family), and
  // over the subsets' every-task tests.
  const members = subsets.flatMap((x) => info.tasks.filter((t) => x.paired[t.name]).map((t) => x.paired[t.name]));
  holmAdjust(members.map((m) => m.p)).forEach((q, i) => { members[i].pHolm = q; });
  const every = subsets.flatMap((x) => (x.everyTask ? [x.everyTask] : []));
  holmAdjust(every.map((e) => e.p)).forEach((q, i) => { every[i].pHolm = q; });
  return { config, info, trials, subsets };
}

const ms = (s: Stat | null | undefined, digits = 3) => (s && Number.isFinite(s.mean) ? formatMeanSd(s.mean, s.sd, digits) : '—');
const pv = (p: number) => (Number.isNaN(p) ? '—' : p < 0.001 ? '<0.001' : p.toFixed(3));
const iv = (i: Interval | undefined) => {
  if (!i) return '—';
  const est = `${i.estimate >= 0 ? '+' : ''}${i.estimate.toFixed(3)}`;
  if (i.n < 2) return `${est} (1 seed)`;
  if (Number.isNaN(i.lower)) return `${est} (no interval: the same difference at every seed)`;
  return `${est} [${i.lower.toFixed(3)}, ${i.upper.toFixed(3)}] p ${pv(i.p)}, Holm ${pv(i.pHolm)}`;
};
const objectiveCell = (i: Interval | undefined) => (i ? `${i.estimate >= 0 ? '+' : ''}${i.estimate.toFixed(2)} (descriptive)` : '—');
const everyCell = (e: EveryTask | null) => (e ? `p ${pv(e.p)}, Holm ${pv(e.pHolm)}` : '—');

/** Writes STUDY/report.html from the store and returns its path. */
export async function writeStudyReport(dir: string): Promise<string> {
  const root = path.resolve(dir);
  const s = summarizeStudy(root);
  const { config, info, subsets, trials } = s;
  const metricName = (x: { kind: TaskKind }) => primaryMetric(x.kind);
  const taskCols = info.tasks.map((x) => `${x.name} (${metricName(x)})`);
  const counts = ['done', 'running', 'pending', 'failed'].map((st) => `${trials.filter((t) => t.status === st).length} ${st}`).join(', ');
  const seeds = [...new Set(trials.map((t) => t.seed))].sort((a, b) => a - b);
  const sections: Section[] = [{
    heading: 'Setup',
    text: [
      `Cohort ${info.cohortName} (${config.cohort as string}), ${info.features.length} tabular features, tasks ${info.tasks.map((x) => `${x.name} (${x.kind}, ${metricName(x)})`).join(', ')}.`,
      `Every trial selects features on the train split (each seed on its own ${(config.subsample as number) * 100}% subsample of the train rows; method search on all of them, scoring its candidates on the validation split), pretrains a multimodal encoder on them for ${config.epochs as number} epochs with that seed, and is scored by linear probes on the test split (${config.probeSeeds as number} probe seeds; a trial's metric is their mean). Baselines at every seed: all features (multimodal) and image-only (SimCLR). Seeds: ${seeds.join(', ')}. Trials: ${counts}.`,
      `Objective of a subset at seed s: the mean over tasks of (m_t(subset, s) − m_t(all features, s)) / max(sd_t, ${(config.sdFloor as number | undefined) ?? DEFAULT_SD_FLOOR}), where sd_t is the across-seed sd of the all-features runs' metric on task t. 0 = as good as all features; +1 = one baseline sd better on average.`,
      'Numbers are only what this study measured. Paired comparisons use the t-test over seeds (one difference per seed), whose interval is wide with few seeds, as it should be. The per-task columns are two-sided tests, with p after Holm’s correction over all subsets × tasks. The “every task” column tests the claim “this subset beats all features on every task”: one-sided t-tests per task, combined by the intersection–union principle (its p is the largest task p), then Holm over the subsets. Evidence for that claim needs several seeds (≥ 5 recommended) and a Holm-adjusted p below 0.05 in that column. The objective is descriptive only: its scale comes from the all-features runs it is compared with, which makes a t-test on it reject too often (about 7% at a nominal 5%).',
      'Scope: the tests vary only the pretraining seed (and with it the selection; the probe seeds are the same in every trial). The test split is the same in every trial, so they say how reliably a subset beats all features on these test subjects; the uncertainty of sampling other subjects is not in the intervals.',
    ],
  }, {
    heading: 'Results by subset',
    table: {
      columns: ['subset', 'seeds', ...taskCols, 'objective'],
      rows: subsets.map((x) => [x.label, x.seeds.length, ...info.tasks.map((t) => ms(x.tasks[t.name])), ms(x.objective, 2)]),
      caption: 'Test split; mean ± sd over seeds of each trial’s mean over probe seeds.',
    },
  }, {
    heading: 'Paired differences vs all features',
    table: {
      columns: ['subset', 'paired seeds', ...taskCols.map((c) => `Δ ${c}`), 'better on every task', 'objective'],
      rows: subsets.filter((x) => x.method !== ALL_FEATURES).map((x) => [x.label, Math.max(0, ...Object.values(x.paired).map((i) => i.n)), ...info.tasks.map((t) => iv(x.paired[t.name])), everyCell(x.everyTask), objectiveCell(x.paired.objective)]),
      caption: 'Mean over seeds of (subset − all features) at the same seed, with the 95% paired t-interval over seeds, the paired t-test’s two-sided p, and p after Holm’s correction over all task columns of all subsets. “Better on every task”: the intersection–union test of one-sided t-tests, Holm over the subsets. Objective: its mean over seeds, not tested.',
    },
  }];
  const methods = subsets.filter((x) => x.method !== ALL_FEATURES && x.method !== IMAGE_ONLY && x.objective);
  if (methods.length) {
    const charts = [scatterLine({ title: 'Objective vs k', xTitle: 'k (features selected)', yTitle: 'objective (mean ± sd over seeds)', data: methods.map((x) => ({ x: x.k, series: x.method, mean: x.objective!.mean, sd: x.objective!.sd })) })];
    const rows = subsets.filter((x) => x.objective && x.method !== ALL_FEATURES);
    const values = rows.map((x) => info.tasks.map((t) => (Number.isFinite(x.objectivePerTask[t.name]) ? x.objectivePerTask[t.name] : null)));
    if (values.some((r) => r.some((v) => v !== null))) charts.push(heatmap({ title: 'Improvement over all features, in baseline sds', rows: rows.map((x) => x.label), cols: info.tasks.map((t) => t.name), values, colorTitle: 'Δ / sd' }));
    sections.push({ heading: 'Objective against k', charts });
  }
  const selected = subsets.filter((x) => x.selections.length && x.method !== ALL_FEATURES);
  if (selected.length) {
    sections.push({
      heading: 'Selected features',
      text: 'Stability is Nogueira et al.’s (2018) index over the seeds’ selections: 1 = identical subsets, about 0 = no more similar than random subsets of the same size (NaN with one seed).',
      table: {
        columns: ['subset', 'stability', 'chosen by every seed', 'per seed'],
        rows: selected.map((x) => {
          const common = x.selections[0].filter((f) => x.selections.every((sel) => sel.includes(f)));
          return [x.label, Number.isFinite(x.stability) ? x.stability.toFixed(3) : '—', common.join(', ') || '—', x.selections.map((sel, i) => `s${x.seeds[i]}: ${sel.join(', ')}`).join('\n')];
        }),
      },
    });
  }
  if (info.truth) {
    sections.push({
      heading: 'Against the ground truth',
      text: `truth.json marks ${info.truth.length} features as image-derivable and relevant to at least one of the tasks: ${info.truth.join(', ') || '(none)'}. Precision, recall and F1 of each selection against that set, mean ± sd over seeds.`,
      table: {
        columns: ['subset', 'precision', 'recall', 'F1'],
        rows: subsets.filter((x) => x.truth && x.method !== ALL_FEATURES).map((x) => [x.label, ms(x.truth!.precision), ms(x.truth!.recall), ms(x.truth!.f1)]),
      },
    });
  }
  const notable = trials.filter((t) => t.status !== 'done' || t.resumed || t.attempts > 1);
  if (notable.length) {
    sections.push({
      heading: 'Trials not done, or resumed',
      table: { columns: ['trial', 'status', 'attempts', 'resumed from checkpoint', 'error'], rows: notable.map((t) => [`${t.method} k=${t.k} seed ${t.seed}`, t.status, t.attempts, t.resumed ? 'yes' : 'no', t.error ?? '']) },
    });
  }
  const file = path.join(root, 'report.html');
  await writeReport(file, { title: 'tabsight feature-selection study', subtitle: `${info.cohortName}: which tabular features to pretrain with`, sections });
  return file;
}
