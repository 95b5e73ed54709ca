/**
 * runStudy: for every (method, k, seed), select features on the train split,
 * pretrain a multimodal encoder on them, and probe every task; plus, per
 * seed, the all-features and image-only (SimCLR) baselines. Trials live in
 * STUDY/study.sqlite, so killing the process at any moment and running the
 * same command again resumes: done trials are skipped, a trial whose owner
 * died is claimed again and its pretraining resumes from its checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCohort, loadTruth } from '../data/cohort';
import { AbortError, ConfigError } from '../errors';
import { ATTRIBUTION_UNAVAILABLE, SELECTION_METHODS, selectFeatures, type SelectionMethod } from '../features/selectors';
import type { CrossModalOptions } from '../features/relevance';
import type { Linkage } from '../features/redundancy';
import type { SearchPretrainOptions } from '../features/search';
import { evaluateRun } from '../pipeline/evaluate';
import { pretrainCohort } from '../pipeline/cohort-pretrain';
import * as is from '../validate';
import { ALL_FEATURES, DEFAULT_SD_FLOOR, IMAGE_ONLY, trueImageRelevant } from './objective';
import { activeTokens, newOwner, orphanCheck, StudyStore, type Trial, type TrialKey } from './store';

export { ALL_FEATURES, IMAGE_ONLY };

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

export interface StudyControl {
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface StudySummary {
  out: string;
  store: string;
  total: number;
  done: number;
  failed: number;
  /** Trials left pending or running (by another live process). */
  unfinished: number;
  /** report.html, when written. */
  report?: string;
}

const KEYS = ['cohort', 'out', 'methods', 'ks', 'seeds', 'epochs', 'workers', 'tasks', 'probeSeeds', 'subsample', 'relevance', 'selection', 'search', 'sdFloor', 'pretrain', 'report', 'staleMs'];

export const trialName = (t: TrialKey) => `${t.method}-k${t.k}-s${t.seed}`;

/** Runs (or resumes) a study; see the file comment and docs/feature-selection.md. */
export async function runStudy(options: StudyOptions, control: StudyControl = {}): Promise<StudySummary> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', KEYS);
  const out = path.resolve(is.string(options.out, 'out'));
  const methods = [...new Set(options.methods ?? ['mim', 'mrmr', 'jmi', 'random'])];
  methods.forEach((m, i) => is.oneOf(m, `methods[${i}]`, SELECTION_METHODS));
  if (methods.includes('attribution')) throw new ConfigError(ATTRIBUTION_UNAVAILABLE);
  const seedsOpt = options.seeds ?? 3;
  const seeds = typeof seedsOpt === 'number'
    ? Array.from({ length: is.positiveInteger(seedsOpt, 'seeds') }, (_, i) => i)
    : [...new Set(seedsOpt.map((s, i) => is.integer(s, `seeds[${i}]`, 0, 2 ** 31 - 1)))];
  if (seeds.length === 0) throw new ConfigError('Expected at least one seed');
  const epochs = is.positiveInteger(options.epochs ?? 10, 'epochs');
  const workers = is.positiveInteger(options.workers ?? 1, 'workers');
  const probeSeeds = is.positiveInteger(options.probeSeeds ?? 3, 'probeSeeds');
  const subsample = is.numberInRange(options.subsample ?? 0.8, 'subsample', 1e-9, 1);
  const sdFloor = is.positiveNumber(options.sdFloor ?? DEFAULT_SD_FLOOR, 'sdFloor');
  const staleMs = is.positiveNumber(options.staleMs ?? 600_000, 'staleMs');
  const log = control.log ?? (() => undefined);

  const cohort = await loadCohort(is.string(options.cohort, 'cohort'));
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

  const store = StudyStore.open(path.join(out, 'study.sqlite'));
  const owner = newOwner();
  activeTokens.add(owner.token);
  const beat = setInterval(() => store.heartbeat(owner), 15_000);
  beat.unref();
  try {
    store.checkConfig({
      version: 1, cohort: cohort.dir, epochs, tasks, probeSeeds, subsample, relevance: options.relevance ?? 'task',
      selection: options.selection ?? {}, search: options.search ?? {}, sdFloor, pretrain: options.pretrain ?? {},
    });
    store.setMeta('info', { cohortName: cohort.name, features: names, tasks: taskKinds, truth: trueImageRelevant(await loadTruth(cohort), tasks) ?? null });
    const keys: (TrialKey & { ord: number })[] = [];
    for (const seed of seeds) {
      keys.push({ method: ALL_FEATURES, k: names.length, seed, ord: keys.length });
      keys.push({ method: IMAGE_ONLY, k: 0, seed, ord: keys.length });
    }
    for (const seed of seeds) for (const method of methods) for (const k of ks) keys.push({ method, k, seed, ord: keys.length });
    store.addTrials(keys);
    const retried = store.retryFailed();
    if (retried) log(`retrying ${retried} failed trial(s)`);

    const isOrphan = orphanCheck(owner, staleMs);
    let aborted: unknown;
    let failed = 0;
    const work = async () => {
      while (!control.signal?.aborted && aborted === undefined) {
        const trial = store.claim(owner, keys, isOrphan);
        if (!trial) return;
        try {
          await runTrial(trial);
        } catch (err) {
          if (err instanceof AbortError || control.signal?.aborted) {
            store.release(trial.id, owner);
            aborted = err;
            return;
          }
          failed++;
          const msg = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`;
          store.fail(trial.id, owner, msg);
          log(`${trialName(trial)}: failed: ${msg}`);
        }
      }
    };

    const runTrial = async (trial: Trial) => {
      const name = trialName(trial);
      const runDir = path.join(out, 'runs', name);
      if (trial.attempts === 1 && fs.existsSync(runDir)) fs.rmSync(runDir, { recursive: true, force: true }); // leftovers of another store
      let features = trial.features;
      if (features === null) {
        if (trial.method === ALL_FEATURES || trial.method === IMAGE_ONLY) {
          features = trial.method === ALL_FEATURES ? [...names] : [];
          store.setSelection(trial.id, owner, features, {}, runDir);
        } else {
          log(`${name}: selecting`);
          const sel = await selectFeatures(cohort, {
            method: trial.method as SelectionMethod, k: trial.k, tasks, seed: trial.seed, relevance: options.relevance,
            subsample: trial.method === 'search' ? undefined : subsample, ...(options.selection ?? {}),
            search: trial.method === 'search' ? { ...(options.search ?? {}), out: path.join(out, 'search', name), epochs, pretrain: options.pretrain, store, probeSeeds } : undefined,
            log: (l) => log(`${name}: ${l}`), signal: control.signal,
          });
          features = sel.selected;
          store.setSelection(trial.id, owner, features, sel.scores, runDir);
        }
      }
      if (!fs.existsSync(path.join(runDir, 'image_encoder.safetensors'))) {
        const resume = fs.existsSync(path.join(runDir, 'checkpoint.safetensors'));
        if (resume) store.markResumed(trial.id, owner);
        log(`${name}: pretraining${resume ? ' (resuming from its checkpoint)' : ''}, ${features.length} features, ${epochs} epochs`);
        await pretrainCohort({
          ...(options.pretrain ?? {}), cohort: cohort.dir, out: runDir, epochs, seed: trial.seed, resume,
          mode: trial.method === IMAGE_ONLY ? 'simclr' : 'multimodal', features: trial.method === IMAGE_ONLY ? undefined : features,
        }, { signal: control.signal });
      }
      if (control.signal?.aborted) throw new AbortError('The study was stopped');
      log(`${name}: evaluating ${tasks.length} task(s), ${probeSeeds} probe seeds`);
      const ev = await evaluateRun({ run: runDir, cohort: cohort.dir, tasks, seeds: probeSeeds });
      store.complete(trial.id, owner, { tasks: ev.tasks });
      log(`${name}: done`);
    };

    await Promise.all(Array.from({ length: workers }, work));
    if (aborted !== undefined || control.signal?.aborted) {
      throw aborted instanceof AbortError ? aborted : new AbortError('The study was stopped; run the same command again to resume it');
    }
    const wanted = new Set(keys.map(trialName));
    const mine = store.trials().filter((t) => wanted.has(trialName(t)));
    const summary: StudySummary = {
      out, store: store.file, total: mine.length, done: mine.filter((t) => t.status === 'done').length,
      failed: mine.filter((t) => t.status === 'failed').length, unfinished: mine.filter((t) => t.status === 'pending' || t.status === 'running').length,
    };
    if (failed) log(`${failed} trial(s) failed in this run; run the same command again to retry them`);
    if (options.report !== false && summary.unfinished === 0) {
      const { writeStudyReport } = await import('./report');
      summary.report = await writeStudyReport(out);
    }
    return summary;
  } finally {
    clearInterval(beat);
    activeTokens.delete(owner.token);
    store.close();
  }
}
