/**
 * Feature selection for pretraining: filters in Brown et al.'s (2012)
 * conditional-likelihood framework (MIM, mRMR as MID and MIQ, JMI, CMIM),
 * redundancy filters (VIF, correlation clusters), cross-modal relevance,
 * a seeded random baseline, and the downstream-driven search (./search).
 * Everything is computed on the cohort's train split only.
 */
import { loadCohort, requireTabular, type Cohort } from '../data/cohort';
import { ConfigError, DataError } from '../errors';
import * as is from '../validate';
import { uniformStream } from '../eval/metrics';
import { correlationClusters, varianceInflationFactors, type Linkage } from './redundancy';
import {
  checkCrossModalOptions, conditionalPairMI, crossModalRelevance, featureData, labelledRows, pairMI, taskRelevance, taskTargets, trainRows,
  type CrossModalOptions, type FeatureData, type TaskTarget,
} from './relevance';
import type { SearchOptions } from './search';

export const SELECTION_METHODS = ['mim', 'mrmr', 'mrmr-miq', 'jmi', 'cmim', 'vif', 'cluster', 'crossmodal', 'attribution', 'random', 'search'] as const;
export type SelectionMethod = (typeof SELECTION_METHODS)[number];

export interface SelectOptions {
  method: SelectionMethod;
  /** Number of features to select. @default min(10, number of features); vif and cluster: their threshold decides when absent */
  k?: number;
  /** Tasks whose relevance is averaged. @default every task of the cohort */
  tasks?: string[];
  /** Relevance term of mim / mrmr / mrmr-miq: mean task MI, or cross-modal relevance (nats). @default 'task' */
  relevance?: 'task' | 'crossmodal';
  /** Seeds the random method, the subsample, the MI noise and the search. @default 0 */
  seed?: number;
  /** Candidate features. @default every tabular feature */
  features?: string[];
  /** Fraction of the train rows to select on (a seeded subsample without replacement). @default 1 */
  subsample?: number;
  /** k of the kNN MI estimators. @default 3 */
  nNeighbors?: number;
  /** vif: drop until every VIF is below this (@default 10); cluster without k: the dendrogram cut height (@default 1). */
  threshold?: number;
  /** cluster: linkage of the hierarchical clustering. @default 'ward' */
  linkage?: Linkage;
  /** Equal-frequency bins of regression labels in conditional MI terms with categorical features. @default 5 */
  bins?: number;
  /** crossmodal (and relevance 'crossmodal'): the encoder and the cross-validation. */
  crossModal?: CrossModalOptions;
  /** attribution: a full-feature multimodal pretraining run directory (required for method 'attribution'). */
  run?: string;
  /** attribution: train rows attributed over, at most (a seeded subset when there are more). @default 256 */
  maxRows?: number;
  /** attribution: Integrated Gradients quadrature points. @default 50 */
  steps?: number;
  /** attribution: 'cpu', 'cuda' or 'cuda:N'. @default 'cpu' */
  device?: string;
  /** search: where its runs go and its budget (required for method 'search'). */
  search?: Omit<SearchOptions, 'k' | 'seed' | 'tasks' | 'features' | 'log' | 'signal'>;
  /** Progress lines (search only). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface Selection {
  method: SelectionMethod;
  /** Selected features, in selection order. */
  selected: string[];
  /** One score per candidate feature; what it means depends on the method (docs/feature-selection.md). Higher is better. */
  scores: Record<string, number>;
}

const KEYS = ['method', 'k', 'tasks', 'relevance', 'seed', 'features', 'subsample', 'nNeighbors', 'threshold', 'linkage', 'bins', 'crossModal', 'search', 'run', 'maxRows', 'steps', 'device', 'log', 'signal'];

/** Why a study rejects method 'attribution' (lib/study/runner.ts). */
export const ATTRIBUTION_UNAVAILABLE =
  "method 'attribution' is not available in a study: it ranks features with the explainability module's tabular integrated gradients (IG) on an already pretrained multimodal run (option run), which a study does not take; use selectFeatures or tabsight select --method attribution --run <dir>";

/** Selects features of a cohort (a loaded Cohort or its directory). */
export async function selectFeatures(cohort: Cohort | string, options: SelectOptions): Promise<Selection> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', KEYS);
  const method = is.oneOf(o.method, 'method', SELECTION_METHODS);
  if (method === 'attribution' && options.run === undefined) {
    throw new ConfigError("method 'attribution' needs option run: a full-feature multimodal pretraining run directory whose tabular encoder is attributed");
  }
  const seed = is.integer(options.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER);
  checkCrossModalOptions(options.crossModal);
  const relevance = is.oneOf(options.relevance ?? 'task', 'relevance', ['task', 'crossmodal'] as const);
  if (relevance === 'crossmodal' && (method === 'jmi' || method === 'cmim')) {
    throw new ConfigError(`method '${method}' conditions on a task label; relevance 'crossmodal' has none (use mim, mrmr or mrmr-miq)`);
  }
  if (options.k !== undefined) is.positiveInteger(options.k, 'k');
  if (options.threshold !== undefined) is.nonNegativeNumber(options.threshold, 'threshold');
  if (options.bins !== undefined) is.integer(options.bins, 'bins', 2);
  if (options.nNeighbors !== undefined) is.positiveInteger(options.nNeighbors, 'nNeighbors');
  const c = typeof cohort === 'string' ? await loadCohort(cohort) : cohort;
  requireTabular(c, 'feature selection');
  const rows = trainRows(c, options.subsample ?? 1, seed);
  if (method === 'attribution') {
    const { attributionRank } = await import('./attribution-rank');
    const candidates = options.features ?? c.tabular.columns.map((col) => col.name);
    if (options.k !== undefined && options.k > candidates.length) {
      throw new ConfigError(`Expected k at most ${candidates.length} (the number of candidate features) but received ${options.k}`);
    }
    const r = await attributionRank(c, candidates, rows, { run: options.run!, maxRows: options.maxRows, seed, steps: options.steps, device: options.device });
    return ranked('attribution', r.names, r.scores, options.k ?? Math.min(10, r.names.length));
  }
  const data = featureData(c, rows, options.features);
  const p = data.names.length;
  if (options.k !== undefined && options.k > p) throw new ConfigError(`Expected k at most ${p} (the number of candidate features) but received ${options.k}`);
  const k = options.k ?? Math.min(10, p);
  const mi = { nNeighbors: options.nNeighbors ?? 3, seed, bins: options.bins ?? 5 };
  const needsTargets = ['mim', 'mrmr', 'mrmr-miq', 'jmi', 'cmim'].includes(method) && relevance === 'task';
  const targets = needsTargets || method === 'cluster' || method === 'vif' ? (c.labels.tasks.length || options.tasks ? taskTargets(c, rows, options.tasks) : []) : [];

  switch (method) {
    case 'random':
      return randomSelection(data.names, k, seed);
    case 'vif':
      return vifSelection(data, options.k, options.threshold ?? 10, targets.length ? taskRelevance(data, targets, mi).mean : undefined);
    case 'cluster':
      return clusterSelection(data, options.k, options.threshold ?? 1, options.linkage ?? 'ward', targets.length ? taskRelevance(data, targets, mi).mean : undefined);
    case 'crossmodal': {
      const cm = await crossModalRelevance(c, data, { seed, nNeighbors: mi.nNeighbors, ...(options.crossModal ?? {}) });
      return ranked('crossmodal', data.names, cm.r2, k);
    }
    case 'search': {
      if (!options.search) throw new ConfigError("method 'search' needs search options (out, budget, epochs)");
      const { searchFeatures } = await import('./search');
      // k counts search units (features, or search.groups): its default is min(10, units), decided there.
      return searchFeatures(c, { ...options.search, k: options.k, seed, tasks: options.tasks, features: options.features, log: options.log, signal: options.signal });
    }
    default: {
      const rel = relevance === 'task'
        ? taskRelevance(data, targets, mi)
        : { mean: (await crossModalRelevance(c, data, { seed, nNeighbors: mi.nNeighbors, ...(options.crossModal ?? {}) })).nats, perTask: {} };
      if (method === 'mim') return ranked('mim', data.names, rel.mean, k);
      const r = greedySelect(data, targets, relevance === 'task' ? rel.perTask : { crossmodal: rel.mean }, method, k, mi);
      return { method, selected: r.selected.map((j) => data.names[j]), scores: Object.fromEntries(data.names.map((n, j) => [n, r.scores[j]])) };
    }
  }
}

/** The k highest scores, ties to the lower index. */
function ranked(method: SelectionMethod, names: string[], score: ArrayLike<number>, k: number): Selection {
  const order = names.map((_, j) => j).sort((a, b) => score[b] - score[a] || a - b);
  return { method, selected: order.slice(0, k).map((j) => names[j]), scores: Object.fromEntries(names.map((n, j) => [n, score[j]])) };
}

/** k features by a seeded permutation: the k largest of one uniform key per feature. */
export function randomSelection(names: string[], k: number, seed: number): Selection {
  const u = uniformStream(seed);
  const key = names.map(() => u());
  return ranked('random', names, key, k);
}

/** Floor of the MIQ denominator, in nats. */
export const MIQ_FLOOR = 0.01;

export type GreedyCriterion = 'mrmr' | 'mrmr-miq' | 'jmi' | 'cmim';

/**
 * Greedy forward selection with Brown et al.'s criterion. The first pick
 * maximises the relevance; then, with S the features picked so far,
 *
 *   mrmr (MID): J = rel(f) − (1/|S|) Σ_{j∈S} I(X_j; X_f)
 *   mrmr-miq:   J = rel(f) / max((1/|S|) Σ_{j∈S} I(X_j; X_f), 0.01)
 *   jmi:        J = rel(f) − (1/|S|) Σ_{j∈S} [I(X_j; X_f) − ⟨I(X_j; X_f | Y_t)⟩_t]
 *   cmim:       J = ⟨I(X_f; Y_t) − max_{j∈S} [I(X_j; X_f) − I(X_j; X_f | Y_t)]⟩_t
 *
 * where rel(f) = ⟨I(X_f; Y_t)⟩_t, the mean over the tasks (for one task these
 * are exactly Brown's forms). The MIQ denominator is floored at 0.01 nats,
 * about the kNN estimators' noise at n ≈ 1000: the estimates are clipped at
 * 0, and without a floor any feature estimated as unrelated to S would win. `perTask` holds I(X_f; Y_t) per task name.
 * Pairwise and conditional MI are computed once per pair and cached. Ties go
 * to the lower index. scores[f] = J when f was picked, or J at the last step
 * for the others.
 */
export function greedySelect(
  data: FeatureData, targets: TaskTarget[], perTask: Record<string, ArrayLike<number>>, criterion: GreedyCriterion, k: number,
  opts: { nNeighbors?: number; seed?: number; bins?: number } = {},
): { selected: number[]; scores: Float64Array } {
  const p = data.names.length;
  const taskNames = Object.keys(perTask);
  const T = taskNames.length;
  const rel = Float64Array.from({ length: p }, (_, f) => taskNames.reduce((s, t) => s + perTask[t][f], 0) / T);
  // I(X_a; X_b) on the rows labelled for task t, the rows its relevance and
  // conditional terms use: Brown's identity I(X_f;Y|X_j) = I(X_f;Y) −
  // I(X_f;X_j) + I(X_f;X_j|Y) holds only with all three on the same rows.
  // Tasks labelled on every row share one all-rows estimate.
  // (Cross-modal relevance has no task rows: all rows.)
  const rowsOf = taskNames.map((name) => {
    const target = targets.find((x) => x.name === name);
    const idx = target ? labelledRows(target) : undefined;
    return idx === undefined || idx.length === data.columns[0]?.length ? undefined : idx;
  });
  const pairCache = new Map<string, number>();
  const pairT = (a: number, b: number, t: number) => {
    const rows = rowsOf[t];
    const key = `${Math.min(a, b)},${Math.max(a, b)},${rows ? t : 'all'}`;
    let v = pairCache.get(key);
    if (v === undefined) {
      const [A, B] = rows ? [Float64Array.from(rows, (i) => data.columns[a][i]), Float64Array.from(rows, (i) => data.columns[b][i])] : [data.columns[a], data.columns[b]];
      v = pairMI(A, data.discrete[a], B, data.discrete[b], opts);
      pairCache.set(key, v);
    }
    return v;
  };
  const pair = (a: number, b: number) => taskNames.reduce((s, _, t) => s + pairT(a, b, t), 0) / T;
  const condCache = new Map<string, number>();
  const cond = (a: number, b: number, t: number) => {
    const key = `${Math.min(a, b)},${Math.max(a, b)},${t}`;
    let v = condCache.get(key);
    if (v === undefined) {
      const target = targets.find((x) => x.name === taskNames[t])!;
      v = conditionalPairMI(data.columns[a], data.discrete[a], data.columns[b], data.discrete[b], target, opts);
      condCache.set(key, v);
    }
    return v;
  };
  const J = (f: number, S: number[]): number => {
    if (S.length === 0) return rel[f];
    switch (criterion) {
      case 'mrmr':
        return rel[f] - S.reduce((s, j) => s + pair(j, f), 0) / S.length;
      case 'mrmr-miq':
        return rel[f] / Math.max(S.reduce((s, j) => s + pair(j, f), 0) / S.length, MIQ_FLOOR);
      case 'jmi':
        return rel[f] - S.reduce((s, j) => s + taskNames.reduce((c, _, t) => c + pairT(j, f, t) - cond(j, f, t), 0) / T, 0) / S.length;
      case 'cmim':
        return taskNames.reduce((s, name, t) => s + perTask[name][f] - Math.max(...S.map((j) => pairT(j, f, t) - cond(j, f, t))), 0) / T;
    }
  };
  const selected: number[] = [];
  const scores = new Float64Array(p).fill(-Infinity);
  const chosen = new Uint8Array(p);
  // A constant column carries no information, but its J is 0 − 0 = 0, which
  // beats any feature more redundant than relevant: it is picked only once
  // every other column has been.
  const constant = data.columns.map(isConstant);
  let informative = constant.filter((c) => !c).length;
  while (selected.length < Math.min(k, p)) {
    let best = -1;
    let bestJ = -Infinity;
    for (let f = 0; f < p; f++) {
      if (chosen[f]) continue;
      const j = J(f, selected);
      scores[f] = j;
      if (constant[f] && informative > 0) continue;
      if (best < 0 || j > bestJ) [best, bestJ] = [f, j];
    }
    selected.push(best);
    chosen[best] = 1;
    if (!constant[best]) informative--;
  }
  return { selected, scores };
}

const isConstant = (c: ArrayLike<number>) => Array.prototype.every.call(c, (v: number) => v === c[0]);

/**
 * k columns that vary on the rows (`usable` of them), or a DataError naming
 * the constant ones: vif and cluster leave constant columns out, and a
 * selection of k must hold k features (a study reports it as k).
 */
function needUsable(data: FeatureData, k: number | undefined, usable: number, method: string): void {
  if (k === undefined || k <= usable) return;
  const constant = data.names.filter((_, j) => isConstant(data.columns[j]));
  throw new DataError(`${method}: k is ${k} but only ${usable} of the ${data.names.length} candidate features vary on the ${data.rows.length} selection rows (constant: ${constant.map((n) => `"${n}"`).join(', ')}); ${method} leaves constant columns out, so ask for at most ${usable}`);
}

/**
 * Without k, drops the column with the highest VIF (ties: the later column)
 * until every VIF is below `threshold`. With k, drops the highest until k
 * remain, whatever their VIFs (`threshold` is not used): a selection of k
 * holds k features. Constant columns go first. The survivors are ordered by
 * task relevance when there are tasks, else by ascending VIF.
 * scores[f] = 1/VIF (the tolerance, 1 − R²) when f was dropped, or in the final set.
 */
export function vifSelection(data: FeatureData, k: number | undefined, threshold: number, relevance?: ArrayLike<number>): Selection {
  const names = data.names;
  const scores: Record<string, number> = {};
  let keep = names.map((_, j) => j).filter((j) => {
    if (!isConstant(data.columns[j])) return true;
    scores[names[j]] = 0;
    return false;
  });
  needUsable(data, k, keep.length, 'vif');
  let vif = keep.length > 1 ? varianceInflationFactors(keep.map((j) => data.columns[j])) : Float64Array.of(1);
  while (keep.length > 1) {
    let worst = 0;
    for (let i = 1; i < keep.length; i++) if (!(vif[i] < vif[worst])) worst = i;
    if (k === undefined ? vif[worst] < threshold : keep.length <= k) break;
    scores[names[keep[worst]]] = 1 / vif[worst];
    keep = keep.filter((_, i) => i !== worst);
    vif = keep.length > 1 ? varianceInflationFactors(keep.map((j) => data.columns[j])) : Float64Array.of(1);
  }
  keep.forEach((j, i) => (scores[names[j]] = 1 / vif[i]));
  const order = keep.map((j, i) => ({ j, v: vif[i] })).sort((a, b) => (relevance ? relevance[b.j] - relevance[a.j] : a.v - b.v) || a.j - b.j);
  return { method: 'vif', selected: order.map((x) => names[x.j]), scores };
}

/**
 * One representative per cluster of the dendrogram on 1 − |Spearman ρ|
 * (correlationClusters). With k, the dendrogram is cut into k clusters (the
 * cut between the (p−k)-th and (p−k+1)-th merge heights; fewer on tied
 * heights); without, at `threshold`. Representatives are the most
 * task-relevant members (else the member with the highest mean |ρ| to the
 * rest), listed by relevance. scores = task relevance (nats), or 1 for a
 * representative and 0 otherwise when the cohort has no tasks.
 */
export function clusterSelection(data: FeatureData, k: number | undefined, threshold: number, linkage: Linkage, relevance?: ArrayLike<number>): Selection {
  const names = data.names;
  const usable = names.map((_, j) => j).filter((j) => !isConstant(data.columns[j]));
  needUsable(data, k, usable.length, 'cluster');
  const X = usable.map((j) => data.columns[j]);
  const rel = relevance ? usable.map((j) => relevance[j]) : undefined;
  // k at least the usable columns: every column is its own cluster (a cut at height 0 would still merge exact copies).
  const everyOne = k !== undefined && k >= usable.length;
  let cut = threshold;
  if (k !== undefined && usable.length > 1 && !everyOne) {
    const heights = Array.from(correlationClusters(X, { threshold: 0, linkage }).linkage, (row) => row[2]);
    const m = usable.length;
    cut = k <= 1 ? heights[m - 2] + 1 : (heights[m - k - 1] + heights[m - k]) / 2;
  }
  const reps = usable.length > 1 && !everyOne ? correlationClusters(X, { threshold: cut, linkage, relevance: rel }).representatives.map((i) => usable[i]) : [...usable];
  if (relevance) reps.sort((a, b) => relevance[b] - relevance[a] || a - b);
  const scores = Object.fromEntries(names.map((n, j) => [n, relevance ? relevance[j] : reps.includes(j) ? 1 : 0]));
  return { method: 'cluster', selected: reps.slice(0, k ?? reps.length).map((j) => names[j]), scores };
}
