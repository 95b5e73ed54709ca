/**
 * One trial of a study: select features (or take a baseline's), pretrain on
 * them (resuming from the run's checkpoint when there is one), and probe
 * every task. Where the trial's state lives is the caller's: the SQLite
 * store (runStudy) or the trial's files (a job, lib/study/jobs.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AbortError } from '../errors';
import { selectFeatures, type SelectionMethod } from '../features/selectors';
import type { EvalCache } from '../features/search';
import { evaluateRun } from '../pipeline/evaluate';
import { pretrainCohort } from '../pipeline/cohort-pretrain';
import { ALL_FEATURES, IMAGE_ONLY } from './objective';
import { trialName, type StudyPlan } from './plan';
import type { TrialKey, TrialResults } from './store';

/** Where a trial's progress is kept between attempts. */
export interface TrialState {
  /** The selection an earlier attempt stored (null before selection; [] for image-only). */
  features: string[] | null;
  /** The first attempt: a run directory already there is a leftover of another study and is removed. */
  firstAttempt: boolean;
  setSelection(features: string[], scores: Record<string, number>, runDir: string): void;
  /** Called when the pretraining resumes from a checkpoint. */
  markResumed(): void;
  /** Method search's evaluation cache. */
  searchCache: EvalCache;
}

export interface TrialControl {
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** The run directory of a trial: STUDY/runs/<method>-k<k>-s<seed>. */
export const trialRunDir = (out: string, t: TrialKey) => path.join(out, 'runs', trialName(t));

/** Runs one trial to its results; throws AbortError when `signal` fires (the run's checkpoint stays valid). */
export async function executeTrial(plan: StudyPlan, trial: TrialKey, state: TrialState, control: TrialControl = {}): Promise<TrialResults> {
  const { out, cohort, names, definition: d } = plan;
  const log = control.log ?? (() => undefined);
  const name = trialName(trial);
  const runDir = trialRunDir(out, trial);
  if (state.firstAttempt && fs.existsSync(runDir)) fs.rmSync(runDir, { recursive: true, force: true }); // leftovers of another study
  let features = state.features;
  if (features === null) {
    if (trial.method === ALL_FEATURES || trial.method === IMAGE_ONLY) {
      features = trial.method === ALL_FEATURES ? [...names] : [];
      state.setSelection(features, {}, runDir);
    } else {
      log(`${name}: selecting`);
      const sel = await selectFeatures(cohort, {
        method: trial.method as SelectionMethod, k: trial.k, tasks: d.tasks, seed: trial.seed, relevance: d.relevance,
        subsample: trial.method === 'search' ? undefined : d.subsample, ...d.selection,
        search: trial.method === 'search'
          ? { ...d.search, out: path.join(out, 'search', name), epochs: d.epochs, pretrain: d.pretrain, store: state.searchCache, probeSeeds: d.probeSeeds }
          : undefined,
        log: (l) => log(`${name}: ${l}`), signal: control.signal,
      });
      features = sel.selected;
      state.setSelection(features, sel.scores, runDir);
    }
  }
  if (!fs.existsSync(path.join(runDir, 'image_encoder.safetensors'))) {
    const resume = fs.existsSync(path.join(runDir, 'checkpoint.safetensors'));
    if (resume) state.markResumed();
    log(`${name}: pretraining${resume ? ' (resuming from its checkpoint)' : ''}, ${features.length} features, ${d.epochs} epochs`);
    await pretrainCohort({
      ...d.pretrain, cohort: cohort.dir, out: runDir, epochs: d.epochs, seed: trial.seed, resume,
      mode: trial.method === IMAGE_ONLY ? 'simclr' : 'multimodal', features: trial.method === IMAGE_ONLY ? undefined : features,
    }, { signal: control.signal });
  }
  if (control.signal?.aborted) throw new AbortError('The study was stopped');
  log(`${name}: evaluating ${d.tasks.length} task(s), ${d.probeSeeds} probe seeds`);
  const ev = await evaluateRun({ run: runDir, cohort: cohort.dir, tasks: d.tasks, seeds: d.probeSeeds });
  return { tasks: ev.tasks };
}
