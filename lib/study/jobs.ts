/**
 * Studies as scheduler jobs (docs/study-jobs.md).
 *
 * emitStudyJobs writes STUDY/study.json (the study's resolved options and
 * its numbered trials) and an array script (STUDY/slurm/study.sbatch) whose
 * task i runs runStudyTrial(STUDY, i). A trial keeps its state in its own
 * files, each written atomically (temporary file + rename):
 *
 *   STUDY/trials/<trial>/state.json   attempts, resumed, the selection
 *   STUDY/trials/<trial>/result.json  the finished trial (what --merge reads)
 *   STUDY/trials/<trial>/error.json   the last failure
 *   STUDY/runs/<trial>/               the pretraining run and its checkpoint
 *
 * Array tasks share no file that two of them write (the search cache in
 * STUDY/search/evals is keyed by content, so concurrent writers write the
 * same bytes), and nothing depends on file locks, which network file
 * systems do not reliably provide to SQLite. mergeStudy then folds the
 * result files into STUDY/study.sqlite from one process and writes the
 * report, so the store and report are those of a study run in one process.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../binding';
import { AbortError, BusyError, ConfigError, DataError } from '../errors';
import type { EvalCache } from '../features/search';
import { writeFileAtomic, writeFileAtomicSync, makeDirs } from '../io/atomic';
import * as is from '../validate';
import { resolveStudy, STUDY_KEYS, trialName, type StudyDefinition, type StudyInfo, type StudyOptions, type StudyPlan } from './plan';
import { checkSlurmOptions, sbatchScript, type SlurmOptions } from './slurm';
import { configDiff, featureListDiff, newOwner, orphanCheck, StudyStore, type Trial, type TrialKey, type TrialResults, type TrialStatus } from './store';
import { executeTrial, trialRunDir, type TrialControl } from './trial';
import { runLockOwner } from '../pretrain';

/** Schedulers `--emit` writes scripts for. */
export const SCHEDULERS = ['slurm'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];

export interface EmitOptions {
  /** The scheduler whose script is written. */
  scheduler: Scheduler;
  /** #SBATCH settings of every array task. @default {} */
  slurm?: SlurmOptions;
}

export interface EmittedStudy {
  out: string;
  /** STUDY/study.json: the study's options and its numbered trials. */
  studyFile: string;
  /** STUDY/slurm/study.sbatch. */
  script: string;
  /** STUDY/slurm/trials.tsv: array index → trial. */
  manifest: string;
  trials: number;
  /** The command that submits the array. */
  submit: string;
  /** The command that folds the finished trials into study.sqlite and writes report.html. */
  merge: string;
}

export interface JobTrial extends TrialKey {
  id: number;
  name: string;
}

/** The content of STUDY/study.json. */
export interface StudyJobsFile {
  version: 1;
  definition: StudyDefinition;
  config: Record<string, unknown>;
  info: StudyInfo;
  /** Trial i is array task i. */
  trials: JobTrial[];
  scheduler: Scheduler;
  slurm: SlurmOptions;
}

/** What a finished trial writes (trials/<trial>/result.json). */
export interface TrialResultFile extends JobTrial {
  features: string[];
  scores: Record<string, number>;
  results: TrialResults;
  attempts: number;
  resumed: boolean;
  host: string;
  finishedAt: number;
}

/** What an array task keeps between attempts (trials/<trial>/state.json). */
export interface TrialStateFile {
  attempts: number;
  resumed: boolean;
  selection: { features: string[]; scores: Record<string, number> } | null;
}

const STUDY_FILE = 'study.json';
const trialDir = (out: string, name: string) => path.join(out, 'trials', name);

/**
 * A trial's job files in an emitted study, read by a local `tabsight study`
 * on the same --out: the selection an array task made (so its checkpoint is
 * resumed, not removed) and its result (so it is not run again).
 */
export function readTrialFiles(out: string, name: string): { state?: TrialStateFile; result?: TrialResultFile } {
  const dir = trialDir(out, name);
  return { state: readJson<TrialStateFile>(path.join(dir, 'state.json')), result: readJson<TrialResultFile>(path.join(dir, 'result.json')) };
}

/**
 * Writes result.json for a trial that a local study finished, when --out is
 * an emitted study whose trials include it, so that its array task skips it.
 */
export async function writeLocalResult(out: string, trial: Trial): Promise<void> {
  const studyFile = path.join(out, STUDY_FILE);
  if (!fs.existsSync(studyFile) || trial.status !== 'done') return;
  const jobs = readStudyJobs(out, 'a study');
  const name = trialName(trial);
  const job = jobs.trials.find((x) => x.name === name);
  if (!job) return;
  await writeFileAtomic(path.join(trialDir(out, name), 'result.json'), JSON.stringify(resultFromStore(job, trial)) + '\n');
}

function resultFromStore(job: JobTrial, t: Trial): TrialResultFile {
  return {
    ...job, features: t.features ?? [], scores: t.scores ?? {}, results: t.results!, attempts: t.attempts, resumed: t.resumed,
    host: t.host ?? os.hostname(), finishedAt: Date.now(),
  };
}

/**
 * Before an emit into a folder where `tabsight study` ran: every trial the
 * store has done gets its result.json (the array skips it), and every trial
 * with a selection but no result gets its state.json (the array resumes its
 * checkpoint rather than removing it as a leftover). Refuses while a local
 * study is still running a trial.
 */
function seedFromStore(out: string, sqlite: string, trials: JobTrial[]): void {
  const store = StudyStore.open(sqlite, { readonly: true });
  let rows: Trial[];
  try {
    rows = store.trials();
  } finally {
    store.close();
  }
  const isOrphan = orphanCheck(newOwner(), 600_000);
  const live = rows.filter((r) => r.status === 'running' && !isOrphan(r));
  if (live.length) {
    const r = live[0];
    throw new BusyError(`${sqlite}: trial ${trialName(r)} is running in process ${r.pid} on ${r.host}; emit once that study has stopped, or into another --out`);
  }
  const byName = new Map(rows.map((r) => [trialName(r), r]));
  for (const job of trials) {
    const r = byName.get(job.name);
    if (!r) continue;
    const dir = trialDir(out, job.name);
    const resultFile = path.join(dir, 'result.json');
    const stateFile = path.join(dir, 'state.json');
    if (r.status === 'done' && r.results && !fs.existsSync(resultFile)) {
      makeDirs(dir);
      writeFileAtomicSync(resultFile, JSON.stringify(resultFromStore(job, r)) + '\n');
    } else if (r.status !== 'done' && r.features !== null && !fs.existsSync(stateFile)) {
      makeDirs(dir);
      const state: TrialStateFile = { attempts: r.attempts, resumed: r.resumed, selection: { features: r.features, scores: r.scores ?? {} } };
      writeFileAtomicSync(stateFile, JSON.stringify(state) + '\n');
    }
  }
}

function readJson<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new DataError(`${file} is not valid JSON (${(err as Error).message}); delete it to redo what it recorded`);
  }
}

/**
 * Refuses a cohort whose tabular features are not those `jobs` (an emitted
 * study.json in `out`) was planned on: its trials, and any result files,
 * index those features.
 */
export function checkEmittedFeatures(jobs: StudyJobsFile, out: string, features: readonly string[], cohort: string, remedy: string): void {
  const diff = featureListDiff(jobs.info.features, features);
  if (diff) throw new ConfigError(`The cohort ${cohort} has other tabular features than when ${out} was emitted (${diff}); ${remedy}`);
}

/** Reads STUDY/study.json; `use` names what needs it in the error. */
export function readStudyJobs(out: string, use = '--trial'): StudyJobsFile {
  const file = path.join(path.resolve(out), STUDY_FILE);
  const jobs = readJson<StudyJobsFile>(file);
  if (jobs === undefined) {
    throw new ConfigError(`${file} not found: ${use} reads the study's options from it, so it works on a study emitted with \`tabsight study --cohort DIR --out ${out} --emit slurm ...\``);
  }
  if (jobs.version !== 1 || !Array.isArray(jobs.trials)) throw new DataError(`${file} is not a study file of this tabsight version`);
  return jobs;
}

/** Search evaluations cached as one file per key (content-addressed, written atomically). */
export class FileEvalCache implements EvalCache {
  constructor(readonly dir: string) {}

  getSearchEval(key: string): unknown {
    return readJson(path.join(this.dir, `${key}.json`));
  }

  putSearchEval(key: string, value: unknown): void {
    const file = path.join(this.dir, `${key}.json`);
    if (fs.existsSync(file)) return;
    makeDirs(this.dir);
    writeFileAtomicSync(file, JSON.stringify(value));
  }

  keys(): string[] {
    return fs.existsSync(this.dir) ? fs.readdirSync(this.dir).filter((f) => /^[0-9a-f]+\.json$/.test(f)).map((f) => f.slice(0, -5)) : [];
  }
}

const searchCache = (out: string) => new FileEvalCache(path.join(out, 'search', 'evals'));

/**
 * Writes a study as an array of jobs: STUDY/study.json, the scheduler's
 * script and a manifest. Runs no trial. Emitting again with the same settings
 * rewrites the script (new #SBATCH flags) and adds the trials of new methods,
 * ks or seeds after the existing ones, whose IDs stay the same.
 */
export async function emitStudyJobs(options: StudyOptions, jobs: EmitOptions): Promise<EmittedStudy> {
  const j = is.plainObject(jobs, 'jobs');
  is.knownKeys(j, 'jobs', ['scheduler', 'slurm']);
  if (!(SCHEDULERS as readonly string[]).includes(j.scheduler as string)) {
    throw new ConfigError(`Unknown scheduler ${JSON.stringify(j.scheduler)} for jobs.scheduler (--emit); expected one of: ${SCHEDULERS.join(', ')}`);
  }
  const slurm = checkSlurmOptions(j.slurm);
  const plan = await resolveStudy(options, STUDY_KEYS.filter((k) => k !== 'workers' && k !== 'staleMs' && k !== 'report'));
  const { out } = plan;
  const sqlite = path.join(out, 'study.sqlite');
  if (fs.existsSync(sqlite)) {
    const store = StudyStore.open(sqlite, { readonly: true });
    try {
      const saved = store.getMeta('config') as Record<string, unknown> | undefined;
      const diff = saved && configDiff(saved, plan.config);
      if (diff) throw new ConfigError(`${sqlite} holds a study with ${diff.key} ${diff.saved}, but this study asks for ${diff.asked}; use the same settings, or another --out`);
      // Its done trials become result files below: they must be of the features the emitted trials will use.
      store.checkFeatures(plan.info.features, `the cohort ${plan.definition.cohort} has now`);
    } finally {
      store.close();
    }
  }
  const studyFile = path.join(out, STUDY_FILE);
  const previous = fs.existsSync(studyFile) ? readStudyJobs(out) : undefined;
  if (previous) {
    const diff = configDiff(previous.config, plan.config);
    if (diff) throw new ConfigError(`${studyFile} holds a study emitted with ${diff.key} ${diff.saved}, but this study asks for ${diff.asked}; use the same settings, or another --out`);
    // Its trials (and any results) are of the cohort's features then; --trial refuses a cohort that changed, and so does a new emit.
    checkEmittedFeatures(previous, out, plan.info.features, plan.definition.cohort, 'emit the study into another --out');
  }
  const trials: JobTrial[] = previous ? [...previous.trials] : [];
  const have = new Set(trials.map((t) => t.name));
  for (const key of plan.keys) {
    const name = trialName(key);
    if (!have.has(name)) trials.push({ id: trials.length, name, method: key.method, k: key.k, seed: key.seed });
  }
  if (fs.existsSync(sqlite)) seedFromStore(out, sqlite, trials);
  const file: StudyJobsFile = {
    version: 1, definition: plan.definition, config: plan.config, info: plan.info, trials, scheduler: j.scheduler as Scheduler, slurm,
  };
  const slurmDir = path.join(out, 'slurm');
  const logs = path.join(slurmDir, 'logs');
  const script = path.join(slurmDir, 'study.sbatch');
  const jobName = `tabsight-study-${path.basename(out).replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const text = sbatchScript({ out, trials: trials.length, jobName, node: process.execPath, cli: path.join(packageRoot(), 'bin', 'tabsight.js'), slurm, logs });
  makeDirs(logs); // SLURM does not create the log folder
  const manifest = path.join(slurmDir, 'trials.tsv');
  await writeFileAtomic(studyFile, JSON.stringify(file, null, 2) + '\n');
  await writeFileAtomic(manifest, ['id\ttrial\tmethod\tk\tseed', ...trials.map((t) => `${t.id}\t${t.name}\t${t.method}\t${t.k}\t${t.seed}`)].join('\n') + '\n');
  await writeFileAtomic(script, text);
  fs.chmodSync(script, 0o755);
  return { out, studyFile, script, manifest, trials: trials.length, submit: `sbatch ${script}`, merge: `tabsight study --out ${out} --merge` };
}

export interface TrialRunSummary {
  id: number;
  name: string;
  /** 'skipped': its result file was already there. */
  status: 'done' | 'skipped';
  resumed: boolean;
  attempts: number;
}

/**
 * Runs trial `id` of an emitted study (what array task `id` runs). A
 * finished trial is skipped; a half-done one reuses its selection and
 * resumes its pretraining from the checkpoint. A failure is written to the
 * trial's error.json and thrown; an abort (signal) leaves the checkpoint.
 */
export async function runStudyTrial(out: string, id: number, control: TrialControl = {}): Promise<TrialRunSummary> {
  const root = path.resolve(is.string(out, 'out'));
  const jobs = readStudyJobs(root, '--trial');
  const n = jobs.trials.length;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= n) {
    throw new ConfigError(`Expected a trial ID (--trial) between 0 and ${n - 1} (the ${n} trials of ${root}, listed in slurm/trials.tsv) but received ${JSON.stringify(id)}`);
  }
  const trial = jobs.trials[id];
  const dir = trialDir(root, trial.name);
  const log = control.log ?? (() => undefined);
  const done = readJson<TrialResultFile>(path.join(dir, 'result.json'));
  if (done) {
    log(`${trial.name}: already done`);
    return { id, name: trial.name, status: 'skipped', resumed: done.resumed, attempts: done.attempts };
  }
  const plan: StudyPlan = await resolveStudy({ ...jobs.definition, out: root });
  checkEmittedFeatures(jobs, root, plan.names, jobs.definition.cohort, 'emit the study again into another --out');
  makeDirs(dir);
  const stateFile = path.join(dir, 'state.json');
  const state: TrialStateFile = readJson<TrialStateFile>(stateFile) ?? { attempts: 0, resumed: false, selection: null };
  state.attempts += 1;
  const save = () => writeFileAtomicSync(stateFile, JSON.stringify(state) + '\n');
  save();
  // This attempt supersedes the last one's error: a merge while it runs shows it as having no result yet, not failed.
  fs.rmSync(path.join(dir, 'error.json'), { force: true });
  // SLURM runs an array index at most once at a time, so a lock that another node left on this
  // trial's run (a task killed hard) is stale; pretrain cannot tell that from a live one.
  const runDir = trialRunDir(root, trial);
  const owner = runLockOwner(runDir);
  if (owner && owner.host !== os.hostname()) {
    log(`${trial.name}: removing the lock that process ${owner.pid} on ${owner.host} left on ${runDir}`);
    fs.rmSync(path.join(runDir, '.lock'), { force: true });
  }
  let results: TrialResults;
  try {
    results = await executeTrial(plan, trial, {
      features: state.selection?.features ?? null,
      firstAttempt: state.attempts === 1,
      setSelection: (features, scores) => {
        state.selection = { features, scores };
        save();
      },
      markResumed: () => {
        state.resumed = true;
        save();
      },
      searchCache: searchCache(root),
    }, { ...control, log });
  } catch (err) {
    if (!(err instanceof AbortError) && !control.signal?.aborted) {
      const error = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`;
      writeFileAtomicSync(path.join(dir, 'error.json'), JSON.stringify({ error, attempts: state.attempts, host: os.hostname(), at: Date.now() }) + '\n');
    }
    throw err;
  }
  const result: TrialResultFile = {
    ...trial, features: state.selection!.features, scores: state.selection!.scores, results, attempts: state.attempts, resumed: state.resumed,
    host: os.hostname(), finishedAt: Date.now(),
  };
  await writeFileAtomic(path.join(dir, 'result.json'), JSON.stringify(result) + '\n');
  fs.rmSync(path.join(dir, 'error.json'), { force: true });
  log(`${trial.name}: done`);
  return { id, name: trial.name, status: 'done', resumed: state.resumed, attempts: state.attempts };
}

export interface MergeSummary {
  out: string;
  store: string;
  total: number;
  done: number;
  failed: number;
  /** Trials merged by this call. */
  merged: number;
  /** Trials without a result file: failed (with error.json) or not finished (pending). */
  unfinished: { id: number; name: string; status: TrialStatus; error: string | null }[];
  /** The command that reruns the failed array tasks, when there are any. */
  rerun?: string;
  /**
   * The command that runs the trials with no result yet (running, queued, or
   * killed before they wrote one): only once the array has ended, or a
   * running trial would run twice at once.
   */
  rerunAfterArray?: string;
  /** report.html, when written (no trial pending). */
  report?: string;
}

/**
 * Folds the result files of an emitted study into STUDY/study.sqlite (from
 * this one process) and, when no trial is pending, writes report.html.
 * Idempotent: run it after the array, or several times while it runs.
 */
export async function mergeStudy(out: string, opts: { report?: boolean } = {}): Promise<MergeSummary> {
  const root = path.resolve(is.string(out, 'out'));
  const jobs = readStudyJobs(root, '--merge');
  const store = StudyStore.open(path.join(root, 'study.sqlite'));
  let merged = 0;
  let summary: MergeSummary;
  try {
    store.checkConfig(jobs.config);
    store.checkFeatures(jobs.info.features, `${path.join(root, STUDY_FILE)} records`);
    const results = jobs.trials.map((t) => ({ t, result: readJson<TrialResultFile>(path.join(trialDir(root, t.name), 'result.json')), error: readJson<{ error: string; attempts: number }>(path.join(trialDir(root, t.name), 'error.json')) }));
    const cache = searchCache(root);
    const evals = cache.keys().map((k) => [k, cache.getSearchEval(k)] as const);
    store.transaction(() => {
      store.setMeta('info', jobs.info);
      store.addTrials(jobs.trials.map((t) => ({ ...t, ord: t.id })));
      for (const [k, v] of evals) store.putSearchEval(k, v);
      for (const { t, result, error } of results) {
        if (result) {
          if (store.importDone(t, { ...result, runDir: trialRunDir(root, t) })) merged++;
        } else if (error) {
          store.importFailed(t, error.error, error.attempts);
        }
      }
    });
    const byName = new Map(store.trials().map((x) => [trialName(x), x]));
    const rows = jobs.trials.map((t) => ({ t, row: byName.get(t.name)! }));
    const unfinished = rows.filter((r) => r.row.status !== 'done').map((r) => ({ id: r.t.id, name: r.t.name, status: r.row.status, error: r.row.error }));
    const sbatch = (ids: number[]) => (ids.length ? `sbatch --array=${ids.join(',')} ${path.join(root, 'slurm', 'study.sbatch')}` : undefined);
    // A trial without a result may still be running or queued: resubmitting it now would run it twice at once.
    const failed = unfinished.filter((u) => u.status === 'failed');
    summary = {
      out: root, store: store.file, total: rows.length, done: rows.length - unfinished.length, failed: failed.length,
      merged, unfinished,
      rerun: sbatch(failed.map((u) => u.id)),
      rerunAfterArray: sbatch(unfinished.filter((u) => u.status !== 'failed').map((u) => u.id)),
    };
  } finally {
    store.close();
  }
  if (opts.report !== false && summary.unfinished.every((u) => u.status === 'failed')) {
    const { writeStudyReport } = await import('./report');
    summary.report = await writeStudyReport(root);
  }
  return summary;
}
