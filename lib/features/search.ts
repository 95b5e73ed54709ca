/**
 * Downstream-driven feature search: greedy forward (add one unit at a time)
 * or backward (remove one at a time) selection, where each step compares its
 * candidates by actually pretraining on them and probing every task, with
 * successive halving (Jamieson & Talwalkar 2016): many short pretrainings,
 * then fewer, longer ones for the survivors. Candidates are scored by the
 * study's multi-task objective, computed on the validation split's probe
 * metrics (never the test split's), against an all-features run with the
 * same epochs and seed. Units are single features or named groups of features.
 *
 * Budget: `budget` full pretrainings, i.e. budget · epochs epochs in all,
 * counting the reference runs. Every evaluation is cached in the store
 * (search.sqlite, or the study's store), keyed by (features, epochs, seed,
 * settings), so a killed search replays to where it stopped; a candidate run
 * killed mid-training resumes from its checkpoint. Deterministic by seed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { requireTabular, type Cohort } from '../data/cohort';
import { ConfigError } from '../errors';
import { uniformStream } from '../eval/metrics';
import type { CohortPretrainOptions } from '../pipeline/cohort-pretrain';
import * as is from '../validate';
import { featureData, taskRelevance, taskTargets } from './relevance';
import type { Selection } from './selectors';

/** Pretraining settings of the search runs (everything but what the search sets). */
export type SearchPretrainOptions = Omit<CohortPretrainOptions, 'cohort' | 'out' | 'features' | 'epochs' | 'seed' | 'resume' | 'mode' | 'labelTask'>;

/** Where evaluations are cached (a StudyStore has these). */
export interface EvalCache {
  getSearchEval(key: string): unknown;
  putSearchEval(key: string, value: unknown): void;
}

export interface SearchOptions {
  /** Directory of the search's runs (and of search.sqlite when no store is given). */
  out: string;
  /** Epochs of one full pretraining: the most a candidate trains. */
  epochs: number;
  /** In units of one full pretraining: budget · epochs epochs in all. @default 3 */
  budget?: number;
  /** Units to select. @default min(10, the number of units) */
  k?: number;
  /** @default 'forward' */
  direction?: 'forward' | 'backward';
  /** Named feature groups as the units. @default each feature alone */
  groups?: Record<string, string[]>;
  /** Halving rate: each rung keeps ⌈n/eta⌉ candidates and trains eta times longer. @default 3 */
  eta?: number;
  /** @default 0 */
  seed?: number;
  /** @default every task */
  tasks?: string[];
  /** Candidate features. @default every feature */
  features?: string[];
  /** Probe seeds per evaluation. @default 2 */
  probeSeeds?: number;
  /** Per-task scale of improvements (e.g. the all-features runs' across-seed sd). @default the reference run's probe sd */
  scale?: Record<string, number>;
  /** Floor of that scale. @default 0.01 */
  sdFloor?: number;
  pretrain?: SearchPretrainOptions;
  store?: EvalCache;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** A successive-halving plan: candidates evaluated at each rung and their epochs. */
export interface HalvingPlan {
  candidates: number;
  rungs: { n: number; epochs: number }[];
  cost: number;
}

/**
 * The plan for n candidates within `budget` epochs: the most candidates
 * (preferring all n) at 1 epoch on the first rung, then the longest first
 * rung e0 that still fits. Rung r trains ⌈n/eta^r⌉ candidates for
 * min(epochs, e0·eta^r) epochs, until one is left. `extra(epochs)` adds the
 * cost of reference runs not yet paid for. null when even two candidates at
 * one epoch do not fit (n = 1 needs no evaluation: cost 0).
 */
export function planHalving(n: number, budget: number, epochs: number, eta: number, extra: (rungEpochs: number[]) => number = () => 0): HalvingPlan | null {
  const make = (m: number, e0: number): HalvingPlan => {
    const rungs: { n: number; epochs: number }[] = [];
    for (let c = m, e = e0; c > 1; c = Math.ceil(c / eta), e = Math.min(epochs, e * eta)) rungs.push({ n: c, epochs: Math.min(epochs, e) });
    const cost = rungs.reduce((s, r) => s + r.n * r.epochs, 0) + extra(rungs.map((r) => r.epochs));
    return { candidates: m, rungs, cost };
  };
  if (n <= 1) return { candidates: n, rungs: [], cost: 0 };
  let m = n;
  while (m >= 2 && make(m, 1).cost > budget) m--;
  if (m < 2) return null;
  let plan = make(m, 1);
  for (let e0 = 2; e0 <= epochs; e0++) {
    const next = make(m, e0);
    if (next.cost > budget) break;
    plan = next;
  }
  return plan;
}

interface Unit {
  name: string;
  features: string[];
}

interface Evaluation {
  metric: Record<string, number>;
  sd: Record<string, number>;
}

export async function searchFeatures(cohort: Cohort, options: SearchOptions): Promise<Selection & { notes: string[] }> {
  const o = is.plainObject(options, 'search options');
  is.knownKeys(o, 'search', ['out', 'epochs', 'budget', 'k', 'direction', 'groups', 'eta', 'seed', 'tasks', 'features', 'probeSeeds', 'scale', 'sdFloor', 'pretrain', 'store', 'log', 'signal']);
  const out = path.resolve(is.string(options.out, 'search.out'));
  const epochs = is.positiveInteger(options.epochs, 'search.epochs');
  const budget = is.positiveNumber(options.budget ?? 3, 'search.budget');
  const direction = is.oneOf(options.direction ?? 'forward', 'search.direction', ['forward', 'backward'] as const);
  const eta = is.integer(options.eta ?? 3, 'search.eta', 2);
  const seed = is.integer(options.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const probeSeeds = is.positiveInteger(options.probeSeeds ?? 2, 'search.probeSeeds');
  const floor = is.positiveNumber(options.sdFloor ?? 0.01, 'search.sdFloor');
  const log = options.log ?? (() => undefined);
  requireTabular(cohort, 'the feature search');
  const names = options.features ?? cohort.tabular.columns.map((c) => c.name);
  const order = new Map(cohort.tabular.columns.map((c, j) => [c.name, j]));
  const units: Unit[] = options.groups
    ? Object.entries(options.groups).map(([name, members]) => {
      members.forEach((f) => { if (!order.has(f)) throw new ConfigError(`search.groups.${name}: unknown feature "${f}"`); });
      return { name, features: [...members] };
    })
    : names.map((f) => ({ name: f, features: [f] }));
  const k = options.k === undefined ? Math.min(10, units.length) : is.positiveInteger(options.k, 'k');
  if (k > units.length) throw new ConfigError(`Expected k at most ${units.length} (the number of search units) but received ${k}`);
  const tasks = options.tasks ?? cohort.labels.tasks.map((t) => t.name);
  if (tasks.length === 0) throw new ConfigError(`${cohort.dir} has no label tasks; the search needs downstream tasks`);
  for (const t of tasks) {
    if (!cohort.labels.tasks.some((x) => x.name === t)) throw new ConfigError(`Unknown task "${t}"; the cohort's tasks are ${cohort.labels.tasks.map((x) => x.name).join(', ')}`);
  }
  const { objective } = await import('../study/objective');
  let store = options.store;
  let own: { close(): void } | undefined;
  if (!store) {
    const { StudyStore } = await import('../study/store');
    const s = StudyStore.open(path.join(out, 'search.sqlite'));
    [store, own] = [s, s];
  }
  const settings = JSON.stringify({ cohort: cohort.dir, tasks, probeSeeds, pretrain: options.pretrain ?? {} });
  const { pretrainCohort } = await import('../pipeline/cohort-pretrain');
  const { evaluateRun } = await import('../pipeline/evaluate');

  const evaluate = async (features: string[], e: number): Promise<Evaluation> => {
    const sorted = [...new Set(features)].sort((a, b) => order.get(a)! - order.get(b)!);
    const key = createHash('sha256').update(JSON.stringify({ sorted, e, seed, settings })).digest('hex');
    const cached = store!.getSearchEval(key) as Evaluation | undefined;
    if (cached) return cached;
    const dir = path.join(out, 'runs', key.slice(0, 20));
    if (!fs.existsSync(path.join(dir, 'image_encoder.safetensors'))) {
      const resume = fs.existsSync(path.join(dir, 'checkpoint.safetensors'));
      log(`pretraining on ${sorted.length} feature(s) for ${e} epoch(s)${resume ? ', resuming' : ''}`);
      await pretrainCohort({ ...(options.pretrain ?? {}), cohort: cohort.dir, out: dir, features: sorted, mode: 'multimodal', epochs: e, seed, resume }, { signal: options.signal });
    }
    const r = await evaluateRun({ run: dir, cohort: cohort.dir, tasks, seeds: probeSeeds });
    // Scored on the validation split: the test split must not steer the
    // selection that a study then scores on it.
    const value: Evaluation = {
      metric: Object.fromEntries(tasks.map((t) => [t, r.validation[t].mean])),
      sd: Object.fromEntries(tasks.map((t) => [t, r.validation[t].sd])),
    };
    store!.putSearchEval(key, value);
    fs.rmSync(dir, { recursive: true, force: true });
    return value;
  };

  const allFeatures = units.flatMap((u) => u.features);
  const refPaid = new Set<number>();
  const score = async (features: string[], e: number) => {
    const ref = await evaluate(allFeatures, e);
    const cand = await evaluate(features, e);
    const scale = options.scale ?? ref.sd;
    return objective(cand.metric, ref.metric, scale, floor).value;
  };

  const total = budget * epochs;
  let spent = 0;
  let S = direction === 'forward' ? [] as number[] : units.map((_, i) => i);
  const steps = direction === 'forward' ? k : units.length - k;
  const scores: Record<string, number> = {};
  const notes: string[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      const candidates = direction === 'forward' ? units.map((_, i) => i).filter((i) => !S.includes(i)) : [...S];
      const extra = (es: number[]) => [...new Set(es)].filter((e) => !refPaid.has(e)).reduce((s, e) => s + e, 0);
      const plan = planHalving(candidates.length, (total - spent) / (steps - step), epochs, eta, extra);
      if (!plan) {
        notes.push(`budget spent after ${step} of ${steps} steps (${spent} of ${total} epochs)`);
        break;
      }
      const rng = uniformStream(seed * 1000003 + step);
      let pool = candidates.map((u) => ({ u, key: rng() })).sort((a, b) => a.key - b.key).slice(0, plan.candidates).map((x) => x.u).sort((a, b) => a - b);
      if (plan.candidates < candidates.length) notes.push(`step ${step + 1}: ${plan.candidates} of ${candidates.length} candidates (seeded draw) fit the budget`);
      const last = new Map<number, number>();
      for (const rung of plan.rungs) {
        log(`search step ${step + 1}/${steps}: ${pool.length} candidates × ${rung.epochs} epochs`);
        for (const u of pool) {
          const subset = direction === 'forward' ? [...S, u] : S.filter((x) => x !== u);
          last.set(u, await score(subset.flatMap((i) => units[i].features), rung.epochs));
        }
        refPaid.add(rung.epochs);
        pool = [...pool].sort((a, b) => last.get(b)! - last.get(a)! || a - b).slice(0, Math.ceil(pool.length / eta));
      }
      spent += plan.cost;
      const winner = pool[0];
      // Higher is better for the feature, as Selection.scores promises: forward, the objective with its unit
      // added; backward, minus the objective with its unit removed (removing it hurt more).
      for (const [u, v] of last) for (const f of units[u].features) if (u === winner || !(f in scores)) scores[f] = direction === 'forward' ? v : -v;
      S = direction === 'forward' ? [...S, winner] : S.filter((x) => x !== winner);
    }
  } finally {
    own?.close();
  }
  const selectedUnits = S.length === k ? S : fillByRelevance(cohort, units, S, k, direction, tasks, seed);
  if (S.length !== k) notes.push(`the remaining ${Math.abs(k - S.length)} unit(s) were ${direction === 'forward' ? 'added' : 'removed'} by task relevance (MIM)`);
  notes.forEach((n) => log(`search: ${n}`));
  return { method: 'search', selected: selectedUnits.flatMap((i) => units[i].features), scores, notes };
}

/** Completes a search the budget cut short: adds (or removes) units by their best feature's mean task MI. */
function fillByRelevance(cohort: Cohort, units: Unit[], S: number[], k: number, direction: 'forward' | 'backward', tasks: string[], seed: number): number[] {
  const data = featureData(cohort, cohort.splits.train, units.flatMap((u) => u.features));
  const rel = taskRelevance(data, taskTargets(cohort, data.rows, tasks), { seed }).mean;
  const unitRel = units.map((u) => Math.max(...u.features.map((f) => rel[data.names.indexOf(f)])));
  const byRel = units.map((_, i) => i).sort((a, b) => unitRel[b] - unitRel[a] || a - b);
  if (direction === 'forward') return [...S, ...byRel.filter((i) => !S.includes(i)).slice(0, k - S.length)];
  const drop = new Set(byRel.filter((i) => S.includes(i)).reverse().slice(0, S.length - k));
  return S.filter((i) => !drop.has(i));
}
