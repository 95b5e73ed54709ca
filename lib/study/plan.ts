/**
 * A study's resolved plan: its options checked and defaulted, the cohort
 * loaded, the trial keys in claim order, and the two records a store keeps
 * (meta.config, which a resumed study must match, and meta.info, which the
 * report reads). runStudy, emitStudyJobs and each job's trial share it, so a
 * study run in one process and one run as jobs have the same trials.
 */
import * as path from 'node:path';
import { loadCohort, loadTruth, requireTabular, type Cohort } from '../data/cohort';
import { ConfigError } from '../errors';
import { ATTRIBUTION_UNAVAILABLE, SELECTION_METHODS, type SelectionMethod } from '../features/selectors';
import type { CrossModalOptions } from '../features/relevance';
import type { Linkage } from '../features/redundancy';
import type { SearchPretrainOptions } from '../features/search';
import * as is from '../validate';
import { ALL_FEATURES, DEFAULT_SD_FLOOR, IMAGE_ONLY, trueImageRelevant, type TaskKind } from './objective';
import type { TrialKey } from './store';

export interface StudyOptions {
  /** The cohort directory. */
  cohort: string;
  /** The study directory: study.sqlite, runs/, search/, report.html. */
  out: string;
  /** Selection methods to compare. @default ['mim', 'mrmr', 'jmi', 'random'] */
  methods?: SelectionMethod[];
  /** Subset sizes. @default [5, 10, 20] (each at most the number of features) */
  ks?: number[];
  /** Seeds: a count n (seeds 0…n−1) or the list. Each seed sets the selection subsample, the pretraining seed and the random method. @default 3 */
  seeds?: number | number[];
  /** Epochs of every pretraining. @default 10 */
  epochs?: number;
  /** Trials run at once in this process (more processes may share the store too). @default 1 */
  workers?: number;
  /** Tasks to evaluate and to select for. @default every task of the cohort */
  tasks?: string[];
  /** Linear-probe seeds per evaluation. @default 3 */
  probeSeeds?: number;
  /** Fraction of the train rows each seed selects on (seeded subsample), so stability reflects the sample. @default 0.8 */
  subsample?: number;
  /** Relevance term of mim / mrmr / mrmr-miq. @default 'task' */
  relevance?: 'task' | 'crossmodal';
  selection?: { nNeighbors?: number; threshold?: number; linkage?: Linkage; bins?: number; crossModal?: CrossModalOptions };
  /** Method 'search': budget in full pretrainings (@default 3), halving rate, direction. */
  search?: { budget?: number; eta?: number; direction?: 'forward' | 'backward' };
  /** Floor of the across-seed sd in the objective. @default 0.01 */
  sdFloor?: number;
  /** Pretraining settings shared by every run (batchSize, lr, model, augment, device, ...). */
  pretrain?: SearchPretrainOptions;
  /** Write report.html when every trial is finished. @default true */
  report?: boolean;
  /** A running trial of another host is taken over when its heartbeat is older than this. @default 600000 */
  staleMs?: number;
}

/** The options that define a study's trials and results (what `--emit` stores; no out, workers, report or staleMs). */
export type StudyDefinition = Required<Pick<StudyOptions, 'cohort' | 'methods' | 'ks' | 'epochs' | 'tasks' | 'probeSeeds' | 'subsample' | 'relevance' | 'selection' | 'search' | 'sdFloor' | 'pretrain'>> & { seeds: number[] };

/** What the report needs from the cohort (the store's meta.info). */
export interface StudyInfo {
  cohortName: string;
  features: string[];
  tasks: { name: string; kind: TaskKind }[];
  truth: string[] | null;
}

export interface StudyPlan {
  out: string;
  cohort: Cohort;
  /** The cohort's tabular features, in order. */
  names: string[];
  definition: StudyDefinition;
  /** The store's meta.config: every setting but methods, ks and seeds; a resumed study must match it. */
  config: Record<string, unknown>;
  info: StudyInfo;
  /** Every trial in claim order: per seed the two baselines, then per seed each method × k. */
  keys: (TrialKey & { ord: number })[];
}

export const STUDY_KEYS = ['cohort', 'out', 'methods', 'ks', 'seeds', 'epochs', 'workers', 'tasks', 'probeSeeds', 'subsample', 'relevance', 'selection', 'search', 'sdFloor', 'pretrain', 'report', 'staleMs'] as const;

export const trialName = (t: TrialKey) => `${t.method}-k${t.k}-s${t.seed}`;

/** Checks and defaults a study's options, loads its cohort and lists its trials. */
export async function resolveStudy(options: StudyOptions, keys: readonly string[] = STUDY_KEYS): Promise<StudyPlan> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', keys);
  const out = path.resolve(is.string(options.out, 'out'));
  const methods: SelectionMethod[] = [...new Set(options.methods ?? (['mim', 'mrmr', 'jmi', 'random'] as SelectionMethod[]))];
  methods.forEach((m, i) => is.oneOf(m, `methods[${i}]`, SELECTION_METHODS));
  if (methods.includes('attribution')) throw new ConfigError(ATTRIBUTION_UNAVAILABLE);
  const seedsOpt = options.seeds ?? 3;
  const seeds = typeof seedsOpt === 'number'
    ? Array.from({ length: is.positiveInteger(seedsOpt, 'seeds') }, (_, i) => i)
    : [...new Set(seedsOpt.map((s, i) => is.integer(s, `seeds[${i}]`, 0, 2 ** 31 - 1)))];
  if (seeds.length === 0) throw new ConfigError('Expected at least one seed');
  const epochs = is.positiveInteger(options.epochs ?? 10, 'epochs');
  const probeSeeds = is.positiveInteger(options.probeSeeds ?? 3, 'probeSeeds');
  const subsample = is.numberInRange(options.subsample ?? 0.8, 'subsample', 1e-9, 1);
  const sdFloor = is.positiveNumber(options.sdFloor ?? DEFAULT_SD_FLOOR, 'sdFloor');

  const cohort = await loadCohort(is.string(options.cohort, 'cohort'));
  requireTabular(cohort, 'a feature-selection study');
  const names = cohort.tabular.columns.map((c) => c.name);
  const tasks = options.tasks ?? cohort.labels.tasks.map((t) => t.name);
  if (tasks.length === 0) throw new ConfigError(`${cohort.dir} has no label tasks to evaluate`);
  const taskKinds = tasks.map((t) => {
    const spec = cohort.labels.tasks.find((x) => x.name === t);
    if (!spec) throw new ConfigError(`Unknown task "${t}"; the cohort's tasks are ${cohort.labels.tasks.map((x) => x.name).join(', ')}`);
    return { name: t, kind: spec.type };
  });
  const ks = [...new Set(options.ks ?? [5, 10, 20].filter((k) => k <= names.length))].sort((a, b) => a - b);
  ks.forEach((k, i) => {
    is.positiveInteger(k, `ks[${i}]`);
    if (k > names.length) throw new ConfigError(`Expected every k at most ${names.length} (the cohort's features) but ks has ${k}`);
  });
  if (methods.length > 0 && ks.length === 0) throw new ConfigError('Expected at least one k');

  const definition: StudyDefinition = {
    cohort: cohort.dir, methods, ks, seeds, epochs, tasks, probeSeeds, subsample, relevance: options.relevance ?? 'task',
    selection: options.selection ?? {}, search: options.search ?? {}, sdFloor, pretrain: options.pretrain ?? {},
  };
  const config = {
    version: 1, cohort: cohort.dir, epochs, tasks, probeSeeds, subsample, relevance: definition.relevance,
    selection: definition.selection, search: definition.search, sdFloor, pretrain: definition.pretrain,
  };
  const info: StudyInfo = { cohortName: cohort.name, features: names, tasks: taskKinds, truth: trueImageRelevant(await loadTruth(cohort), tasks) ?? null };
  const trials: (TrialKey & { ord: number })[] = [];
  for (const seed of seeds) {
    trials.push({ method: ALL_FEATURES, k: names.length, seed, ord: trials.length });
    trials.push({ method: IMAGE_ONLY, k: 0, seed, ord: trials.length });
  }
  for (const seed of seeds) for (const method of methods) for (const k of ks) trials.push({ method, k, seed, ord: trials.length });
  return { out, cohort, names, definition, config, info, keys: trials };
}
