/**
 * runStudy: for every (method, k, seed), select features on the train split,
 * pretrain a multimodal encoder on them, and probe every task; plus, per
 * seed, the all-features and image-only (SimCLR) baselines. Trials live in
 * STUDY/study.sqlite, so killing the process at any moment and running the
 * same command again resumes: done trials are skipped, a trial whose owner
 * died is claimed again and its pretraining resumes from its checkpoint.
 * (To run the trials as scheduler jobs instead, see lib/study/jobs.ts.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AbortError } from '../errors';
import * as is from '../validate';
import { ALL_FEATURES, IMAGE_ONLY } from './objective';
import { resolveStudy, trialName, type StudyOptions } from './plan';
import { activeTokens, newOwner, orphanCheck, StudyStore, type Trial } from './store';
import { executeTrial, trialRunDir } from './trial';
import { checkEmittedFeatures, readStudyJobs, readTrialFiles, writeLocalResult } from './jobs';

export { ALL_FEATURES, IMAGE_ONLY, trialName, type StudyOptions };

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

/** Runs (or resumes) a study; see the file comment and docs/feature-selection.md. */
export async function runStudy(options: StudyOptions, control: StudyControl = {}): Promise<StudySummary> {
  is.plainObject(options, 'options');
  const workers = is.positiveInteger(options.workers ?? 1, 'workers');
  const staleMs = is.positiveNumber(options.staleMs ?? 600_000, 'staleMs');
  const plan = await resolveStudy(options);
  const { out, keys } = plan;
  const log = control.log ?? (() => undefined);

  // An emitted array's result files, which this study takes in, index the features it was planned on.
  if (fs.existsSync(path.join(out, 'study.json'))) {
    checkEmittedFeatures(readStudyJobs(out, 'a study'), out, plan.info.features, plan.definition.cohort, 'run this study into another --out');
  }
  const store = StudyStore.open(path.join(out, 'study.sqlite'));
  const owner = newOwner();
  activeTokens.add(owner.token);
  const beat = setInterval(() => store.heartbeat(owner), 15_000);
  beat.unref();
  try {
    store.checkConfig(plan.config);
    // Its done trials index the features they were planned on.
    store.checkFeatures(plan.info.features, `the cohort ${plan.definition.cohort} has now`);
    store.setMeta('info', plan.info);
    store.addTrials(keys);
    const retried = store.retryFailed();
    if (retried) log(`retrying ${retried} failed trial(s)`);

    const isOrphan = orphanCheck(owner, staleMs);
    let aborted: unknown;
    let failed = 0;
    const runTrial = async (trial: Trial) => {
      const name = trialName(trial);
      // An emitted study's array tasks keep their trials in files: one that a task finished is taken
      // from its result, and one a task started keeps its selection and checkpoint.
      const job = readTrialFiles(out, name);
      if (job.result) {
        store.setSelection(trial.id, owner, job.result.features, job.result.scores, trialRunDir(out, trial));
        store.complete(trial.id, owner, job.result.results);
        log(`${name}: done by an array task (trials/${name}/result.json)`);
        return;
      }
      let features = trial.features;
      if (features === null && job.state?.selection) {
        features = job.state.selection.features;
        store.setSelection(trial.id, owner, features, job.state.selection.scores, trialRunDir(out, trial));
      }
      const results = await executeTrial(plan, trial, {
        features,
        firstAttempt: trial.attempts === 1 && job.state === undefined,
        setSelection: (features, scores, runDir) => store.setSelection(trial.id, owner, features, scores, runDir),
        markResumed: () => store.markResumed(trial.id, owner),
        searchCache: store,
      }, { signal: control.signal, log });
      store.complete(trial.id, owner, results);
      await writeLocalResult(out, store.trials().find((x) => x.id === trial.id)!);
      log(`${name}: done`);
    };
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
