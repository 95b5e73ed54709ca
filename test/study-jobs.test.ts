// Studies as jobs (docs/study-jobs.md): `tabsight study --emit slurm` writes an
// sbatch array script; its tasks run here as sbatch would run them (bash, with
// SLURM_ARRAY_TASK_ID set), out of order, one repeated and one stopped by
// SIGTERM mid-training and rerun; `--merge` then gives the store of a
// `--workers 1` study with the same options. Plus the bad inputs.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { synthCardiac } from '../lib/synth';
import { ConfigError } from '../lib/errors';
import { emitStudyJobs, mergeStudy, runStudyTrial, StudyStore, summarizeStudy, trialName, type Trial } from '../lib/study';

const exec = promisify(execFile);
const repo = path.join(__dirname, '..');
const bin = path.join(repo, 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-study-jobs-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const cohort = path.join(root, 'cohort');
t.before(() => synthCardiac({ out: cohort, n: 120, size: 32, seed: 0 }));

const tabsight = (...args: string[]) => exec(process.execPath, [bin, ...args], { maxBuffer: 1 << 24 });
/** Runs the CLI expecting failure; returns its exit code and stderr. */
const fails = async (...args: string[]) => {
  try {
    await tabsight(...args);
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  throw new Error(`tabsight ${args.join(' ')} succeeded`);
};

// Tiny: 120 subjects (84 train rows) at 16 px, ResNet-18 with 16-wide heads, 2 epochs (so a trial can be
// stopped after its first checkpoint), 1 method × 1 k × 2 seeds + 2 baselines × 2 seeds = 6 trials.
// cad and lvef, because at n = 120 the test split has no infarction case.
const flags = [
  '--methods', 'mrmr', '--k', '3', '--seeds', '2', '--epochs', '2', '--probe-seeds', '1', '--batch-size', '32', '--image-size', '16',
  '--tabular-hidden', '16', '--projection-hidden', '16', '--task', 'cad', 'lvef',
];

const readTrials = (out: string): Trial[] => {
  const s = StudyStore.open(path.join(out, 'study.sqlite'), { readonly: true });
  try {
    return s.trials();
  } finally {
    s.close();
  }
};
/** The results table of a store: per trial its status, selection, scores and metrics. */
const table = (out: string) => Object.fromEntries(readTrials(out).map((x) => [trialName(x), { status: x.status, features: x.features, scores: x.scores, results: x.results }]));

/** Sends SIGTERM (what SLURM sends at the time limit) to `child` once `runDir` has its first epoch's checkpoint. */
async function stopAfterFirstEpoch(child: ReturnType<typeof spawn>, runDir: string) {
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let signalled = false;
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline && child.exitCode === null && !signalled) {
    await new Promise((r) => setTimeout(r, 20));
    const metrics = path.join(runDir, 'metrics.jsonl');
    if (fs.existsSync(path.join(runDir, 'checkpoint.safetensors')) && !fs.existsSync(path.join(runDir, 'image_encoder.safetensors'))
      && fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').trim().split('\n').length === 1) {
      child.kill('SIGTERM'); // the script exec's node, so this reaches tabsight
      signalled = true;
    }
  }
  const code = await exited;
  return { signalled, code, stderr };
}

t.test('an emitted SLURM array, run task by task out of order, merges into the store of a --workers 1 study', async (t) => {
  const ref = path.join(root, 'ref');
  await tabsight('study', '--cohort', cohort, '--out', ref, ...flags, '--workers', '1');

  const out = path.join(root, 'jobs');
  const emitted = await tabsight('study', '--cohort', cohort, '--out', out, ...flags, '--emit', 'slurm',
    '--slurm-time', '00:30:00', '--slurm-partition', 'debug', '--slurm-cpus', '2', '--slurm-gpus', '1');
  const script = path.join(out, 'slurm', 'study.sbatch');
  t.match(emitted.stdout, `submit:  sbatch ${script}`, 'prints the sbatch command');
  t.match(emitted.stdout, `tabsight study --out ${out} --merge`, 'prints the merge command');
  t.notOk(fs.existsSync(path.join(out, 'study.sqlite')), 'emitting runs nothing and writes no store');

  const text = fs.readFileSync(script, 'utf8');
  const sbatch = text.split('\n').filter((l) => l.startsWith('#SBATCH ')).map((l) => l.slice('#SBATCH '.length));
  t.same(sbatch, [
    '--job-name=tabsight-study-jobs', '--array=0-5', `--output=${out}/slurm/logs/%A_%a.out`, `--error=${out}/slurm/logs/%A_%a.err`,
    '--time=00:30:00', '--partition=debug', '--cpus-per-task=2', '--gres=gpu:1',
  ]);
  t.ok(fs.statSync(path.join(out, 'slurm', 'logs')).isDirectory(), 'the log folder exists before submission');
  t.match(text, `study --out ${out} --trial "$SLURM_ARRAY_TASK_ID"`, 'each task is a plain study --out --trial invocation');
  const manifest = fs.readFileSync(path.join(out, 'slurm', 'trials.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
  t.same(manifest.map((r) => Number(r[0])), [0, 1, 2, 3, 4, 5]);
  t.same(manifest.map((r) => r[1]).sort(), Object.keys(table(ref)).sort(), 'one array task per trial of the --workers 1 study');

  // As sbatch runs the array: bash on the script with SLURM_ARRAY_TASK_ID set.
  const task = (id: number) => exec('bash', [script], { env: { ...process.env, SLURM_ARRAY_TASK_ID: String(id) }, maxBuffer: 1 << 24 });
  const noId = { ...process.env };
  delete noId.SLURM_ARRAY_TASK_ID;
  await t.rejects(exec('bash', [script], { env: noId }), { stderr: /SLURM_ARRAY_TASK_ID/ }, 'the script refuses to run without a task ID');

  // Task 4 (mrmr, seed 0) is stopped by SIGTERM (what SLURM sends at the time limit) after its first epoch's checkpoint.
  const victim = manifest.find((r) => r[0] === '4')![1];
  const runDir = path.join(out, 'runs', victim);
  const { signalled, code, stderr } = await stopAfterFirstEpoch(spawn('bash', [script], { env: { ...process.env, SLURM_ARRAY_TASK_ID: '4' }, stdio: ['ignore', 'ignore', 'pipe'] }), runDir);
  t.ok(signalled, `stopped after the first epoch (stderr: ${stderr.slice(-400)})`);
  t.equal(code, 130, 'an aborted trial exits 130');
  t.match(stderr, /SIGTERM/);
  t.notOk(fs.existsSync(path.join(out, 'trials', victim, 'result.json')), 'no result for the stopped trial');

  // A merge while the array runs: the stopped trial has an error.json (as if an earlier attempt had failed),
  // the others no result yet. Only the failed one is offered for resubmission now; the others may be running.
  fs.writeFileSync(path.join(out, 'trials', victim, 'error.json'), JSON.stringify({ error: 'Error: an earlier attempt', attempts: 1 }) + '\n');
  const early = await tabsight('study', '--out', out, '--merge').catch((e: { stdout: string; code: number }) => e);
  t.equal((early as { code?: number }).code, 1, 'a merge with unfinished trials exits 1');
  t.match(early.stdout, '0/6 trials done (0 merged now), 1 failed');
  t.match(early.stdout, `trial 4 ${victim}: failed: Error: an earlier attempt`);
  t.match(early.stdout, `to rerun the failed trials: sbatch --array=4 ${script}`);
  t.match(early.stdout, `to run the trials with no result: sbatch --array=0,1,2,3,5 ${script}`);
  // A hard kill on another node leaves its lock; the trial's next task removes it (one task per index at a time).
  fs.writeFileSync(path.join(runDir, '.lock'), 'other-node 4242');

  const runs: { stdout: string; stderr: string }[] = [];
  for (const id of [1, 5, 4, 0, 1, 3, 2]) runs.push(await task(id));
  const said = runs.map((r) => r.stdout.trim());
  t.match(runs[2].stderr, `removing the lock that process 4242 on other-node left on ${runDir}`);
  t.notOk(fs.existsSync(path.join(out, 'trials', victim, 'error.json')), 'the earlier error is gone');
  t.same(said.map((l) => l.replace(/:.*/, '')), [1, 5, 4, 0, 1, 3, 2].map((id) => `trial ${id} ${manifest[id][1]}`), 'each task ran its trial');
  t.match(said[2], /: done \(resumed from its checkpoint\)$/, 'the stopped trial resumed from its checkpoint');
  t.match(said[1], /: done$/);
  t.match(said[4], /: already done$/, 'the repeated task skipped its finished trial');
  const state = JSON.parse(fs.readFileSync(path.join(out, 'trials', victim, 'state.json'), 'utf8'));
  t.same([state.attempts, state.resumed], [2, true]);
  const epochs = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch);
  t.same(epochs, [0, 1], 'no epoch recorded twice');

  const merged = await tabsight('study', '--out', out, '--merge');
  t.match(merged.stdout, '6/6 trials done (6 merged now)');
  t.ok(fs.existsSync(path.join(out, 'report.html')), 'merge writes report.html');
  t.match((await tabsight('study', '--out', out, '--merge')).stdout, '6/6 trials done (0 merged now)', 'merging again changes nothing');

  // Pretraining is deterministic on CPU by seed and a resume continues bit for bit, so the tables are equal.
  t.same(table(out), table(ref), 'the same trials, selections, scores and metrics as the --workers 1 study');
  const jobsTrials = readTrials(out);
  t.ok(jobsTrials.every((x) => x.completions === 1), 'every trial completed once');
  t.same(jobsTrials.filter((x) => x.attempts > 1 || x.resumed).map(trialName), [victim], 'only the stopped trial shows a second attempt');
  t.same(summarizeStudy(out).subsets, summarizeStudy(ref).subsets, 'the same report summaries');
});

t.test('a local study and an emitted array on one --out: each skips the trials the other finished and resumes the one it left', async (t) => {
  const ref = path.join(root, 'ref'); // the --workers 1 study of the first test
  const out = path.join(root, 'mixed');
  const oneSeed = flags.map((f, i) => (flags[i - 1] === '--seeds' ? '1' : f));
  await tabsight('study', '--cohort', cohort, '--out', out, ...oneSeed, '--workers', '1');
  const local = table(out);
  t.equal(Object.keys(local).length, 3, 'a local study of seed 0: three trials done');

  // Emitting both seeds into that folder: the trials done locally get result files, so their tasks skip them.
  await tabsight('study', '--cohort', cohort, '--out', out, ...flags, '--emit', 'slurm');
  const jobs = JSON.parse(fs.readFileSync(path.join(out, 'study.json'), 'utf8')).trials as { id: number; name: string }[];
  const script = path.join(out, 'slurm', 'study.sbatch');
  for (const name of Object.keys(local)) {
    const r = JSON.parse(fs.readFileSync(path.join(out, 'trials', name, 'result.json'), 'utf8'));
    t.same([r.features, r.results], [local[name].features, local[name].results], `${name}: result.json from the store`);
  }
  const victim = jobs.find((j) => j.name.startsWith('mrmr') && j.name.endsWith('-s1'))!;
  const fresh = jobs.filter((j) => !(j.name in local) && j !== victim);
  t.equal(fresh.length, 2);

  // The array: seed 1's mrmr task is stopped after its first checkpoint; seed 1's baselines finish; seed 0's are skipped.
  const stopped = await stopAfterFirstEpoch(spawn('bash', [script], { env: { ...process.env, SLURM_ARRAY_TASK_ID: String(victim.id) }, stdio: ['ignore', 'ignore', 'pipe'] }),
    path.join(out, 'runs', victim.name));
  t.ok(stopped.signalled && stopped.code === 130, `task ${victim.id} stopped after its first epoch (${stopped.stderr.slice(-300)})`);
  for (const j of fresh) t.equal((await runStudyTrial(out, j.id)).status, 'done', `task ${j.id} ${j.name} ran`);
  for (const j of jobs.filter((x) => x.name in local)) t.equal((await runStudyTrial(out, j.id)).status, 'skipped', `task ${j.id} ${j.name} skipped: done by the local study`);
  const merged = await mergeStudy(out, { report: false });
  t.same([merged.done, merged.unfinished.map((u) => u.name)], [5, [victim.name]]);

  // A local study after the merge resumes the stopped task's checkpoint with its selection, instead of removing the run as a leftover.
  const resumed = await tabsight('study', '--cohort', cohort, '--out', out, ...flags, '--workers', '1');
  t.match(resumed.stderr, `${victim.name}: pretraining (resuming from its checkpoint)`);
  const epochs = fs.readFileSync(path.join(out, 'runs', victim.name, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch);
  t.same(epochs, [0, 1], 'the stopped run went on from epoch 1');
  t.same(table(out), table(ref), 'the same trials, selections, scores and metrics as the --workers 1 study');
  const v = readTrials(out).find((x) => trialName(x) === victim.name)!;
  t.same([v.resumed, v.completions], [true, 1]);
  // What the local study finished has its result file too: the array would skip it.
  t.equal((await runStudyTrial(out, victim.id)).status, 'skipped', 'the array task of the trial the local study finished skips it');

  // A trial an array task finished after the merge is taken from its result file by a local study, not run again.
  const late = path.join(root, 'late');
  await tabsight('study', '--cohort', cohort, '--out', late, ...oneSeed, '--emit', 'slurm');
  const lateJobs = JSON.parse(fs.readFileSync(path.join(late, 'study.json'), 'utf8')).trials as { id: number; name: string }[];
  await runStudyTrial(late, lateJobs[0].id);
  const r = await tabsight('study', '--cohort', cohort, '--out', late, ...oneSeed, '--workers', '1');
  t.match(r.stderr, `${lateJobs[0].name}: done by an array task (trials/${lateJobs[0].name}/result.json)`);
  t.same(table(late)[lateJobs[0].name], table(ref)[lateJobs[0].name]);
});

t.test('the sbatch script runs node from a path with quotes, braces, dollars and spaces', async (t) => {
  const { sbatchScript } = await import('../lib/study/slurm');
  const dir = path.join(root, 'n}o"de $HOME `x`');
  fs.mkdirSync(dir, { recursive: true });
  const node = path.join(dir, 'node');
  // A stand-in for node that prints the words it was given.
  fs.writeFileSync(node, '#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\n', { mode: 0o755 });
  const out = path.join(root, 'quoting');
  const script = path.join(root, 'quoting.sbatch');
  fs.writeFileSync(script, sbatchScript({ out, trials: 1, jobName: 'q', node, cli: "/opt/my tabsight/bin/tabsight.js", slurm: {}, logs: path.join(out, 'logs') }));
  const env = { ...process.env, SLURM_ARRAY_TASK_ID: '0' };
  delete env.TABSIGHT_NODE;
  const r = await exec('bash', [script], { env });
  t.equal(r.stdout, `[/opt/my tabsight/bin/tabsight.js][study][--out][${out}][--trial][0]`);
});

t.test('bad input: --trial out of range, --trial without emitted options, an unknown --emit scheduler', async (t) => {
  const out = path.join(root, 'jobs');
  await t.rejects(runStudyTrial(out, 6), { name: 'ConfigError', code: 'ERR_CONFIG', message: /trial ID \(--trial\) between 0 and 5 .* but received 6/ });
  await t.rejects(runStudyTrial(out, -1), { code: 'ERR_CONFIG', message: /but received -1/ });
  const bare = path.join(root, 'bare');
  fs.mkdirSync(bare);
  await t.rejects(runStudyTrial(bare, 0), { name: 'ConfigError', code: 'ERR_CONFIG', message: /study\.json not found: --trial reads the study's options/ });
  await t.rejects(mergeStudy(bare), { name: 'ConfigError', code: 'ERR_CONFIG', message: /study\.json not found: --merge/ });
  const options = { cohort, out: path.join(root, 'never'), methods: ['mrmr' as const], ks: [3], seeds: 1 };
  await t.rejects(emitStudyJobs(options, { scheduler: 'pbs' as 'slurm' }), { name: 'ConfigError', code: 'ERR_CONFIG', message: /Unknown scheduler "pbs" .*--emit.*slurm/ });
  await t.rejects(emitStudyJobs(options, { scheduler: 'slurm', slurm: { time: '2h' } }), ConfigError, 'a bad time');
  await t.rejects(emitStudyJobs(options, { scheduler: 'slurm', slurm: { gpus: 0 } }), { code: 'ERR_CONFIG', message: /slurm\.gpus \(--slurm-gpus\)/ });
  await t.rejects(emitStudyJobs({ ...options, out, epochs: 3, tasks: ['cad', 'lvef'] }, { scheduler: 'slurm' }), { code: 'ERR_CONFIG', message: /holds a study .*with epochs 2, but this study asks for 3/ }, 'settings differ from the emitted ones');
  t.notOk(fs.existsSync(options.out), 'nothing written for bad input');
  // A cohort whose features changed since the emit: a second emit into the same --out is refused (it overwrote the feature list).
  const again = { ...options, out: path.join(root, 'reemit') };
  await emitStudyJobs(again, { scheduler: 'slurm' });
  const studyJson = path.join(again.out, 'study.json');
  const emitted = JSON.parse(fs.readFileSync(studyJson, 'utf8'));
  emitted.info.features = emitted.info.features.slice(1);
  fs.writeFileSync(studyJson, JSON.stringify(emitted));
  await t.rejects(emitStudyJobs(again, { scheduler: 'slurm' }), { code: 'ERR_CONFIG', message: /has other tabular features than when .*reemit was emitted/ });
  // A folder where a local study is running a trial (its process alive on this host): emitting into it is refused.
  const busy = { ...options, out: path.join(root, 'busy') };
  const store = StudyStore.open(path.join(busy.out, 'study.sqlite'));
  store.addTrials([{ method: 'mrmr', k: 3, seed: 0, ord: 0 }]);
  store.claim({ host: os.hostname(), pid: process.ppid, token: 'a-live-local-study' }, [{ method: 'mrmr', k: 3, seed: 0 }], () => false);
  store.close();
  await t.rejects(emitStudyJobs(busy, { scheduler: 'slurm' }), { code: 'ERR_BUSY', message: `trial mrmr-k3-s0 is running in process ${process.ppid} on ${os.hostname()}` });
  t.same(fs.readdirSync(busy.out).filter((f) => !f.startsWith('study.sqlite')), [], 'nothing emitted');

  const cli = [
    [['study', '--out', out, '--trial', '9'], /tabsight: ERR_CONFIG: Expected a trial ID \(--trial\) between 0 and 5 .* but received 9/],
    [['study', '--out', bare, '--trial', '0'], /ERR_CONFIG: .*study\.json not found: --trial/],
    [['study', '--cohort', cohort, '--out', bare, '--emit', 'pbs'], /ERR_CONFIG: Unknown scheduler "pbs" for --emit; expected one of: slurm/],
    [['study', '--out', out, '--trial', '0', '--epochs', '3'], /ERR_CONFIG: --trial takes the study's options from OUT\/study\.json .*drop --epochs/],
    [['study', '--cohort', cohort, '--out', bare, '--slurm-time', '01:00:00'], /ERR_CONFIG: --slurm-time needs --emit slurm/],
    [['study', '--cohort', cohort, '--out', bare, '--emit', 'slurm', '--workers', '2'], /ERR_CONFIG: --workers has no effect with --emit/],
    [['study', '--out', out, '--merge', '--trial', '1'], /ERR_CONFIG: Give one of --emit, --trial, --merge and --report-only, not --trial and --merge/],
    [['study', '--out', bare], /ERR_CONFIG: tabsight study needs --cohort/],
  ] as const;
  for (const [args, message] of cli) {
    const r = await fails(...args);
    t.equal(r.code, 1, `exit 1: ${args.join(' ')}`);
    t.match(r.stderr, message);
  }
  t.same(fs.readdirSync(bare), [], 'no bad command wrote into the study directory');
});
