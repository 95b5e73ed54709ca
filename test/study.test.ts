import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { synthCardiac } from '../lib/synth';
import { holmAdjust, pairedTTest } from '../lib/eval';
import {
  objective, nogueiraStability, pairedCi, pairedDifferences, precisionRecallF1, runStudy, StudyStore, summarizeStudy, trialName,
  trueImageRelevant, type StudyOptions, type Trial,
} from '../lib/study';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-study-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const cohort = path.join(root, 'cohort');
t.before(() => synthCardiac({ out: cohort, n: 200, size: 32, seed: 0 }));

// CI-sized: 200 subjects at 32 px trained at 16 px, ResNet-18, 2 epochs (so a checkpoint exists mid-trial).
const options = (out: string): StudyOptions => ({
  cohort, out, methods: ['mrmr', 'random'], ks: [3], seeds: 2, epochs: 2, probeSeeds: 2, tasks: ['infarction', 'lvef'],
  pretrain: {
    batchSize: 64, lr: 1e-3, warmupEpochs: 0, imageSize: 16,
    model: { arch: 'resnet18', smallStem: false, tabularHidden: 64, projectionHidden: 64, projectionDim: 32 },
  },
});

const readTrials = (out: string): Trial[] => {
  const s = StudyStore.open(path.join(out, 'study.sqlite'), { readonly: true });
  try {
    return s.trials();
  } finally {
    s.close();
  }
};

t.test('objective: mean over tasks of the improvement in all-features sds, with the floor', async (t) => {
  const r = objective({ a: 0.8, b: 0.5 }, { a: 0.75, b: 0.52 }, { a: 0.02, b: 0.001 }, 0.01);
  t.ok(Math.abs(r.perTask.a - 2.5) < 1e-12, '0.05 / 0.02');
  t.ok(Math.abs(r.perTask.b - -2) < 1e-12, '-0.02 / max(0.001, 0.01)');
  t.ok(Math.abs(r.value - 0.25) < 1e-12);
  t.ok(Math.abs(objective({ a: 0.7 }, { a: 0.6 }, { a: NaN }, 0.05).value - 2) < 1e-12, 'a single seed (sd NaN) uses the floor');
  t.throws(() => objective({}, { a: 1 }, { a: 1 }), { code: 'ERR_CONFIG', message: /task "a"/ });
});

t.test('nogueiraStability matches hand-computed values', async (t) => {
  t.equal(nogueiraStability([['a', 'b'], ['a', 'b']], 4), 1, 'identical subsets');
  // p = (1, .5, .5, 0): Σ s² = 2·(2/1)·.25 = 1; (1/4)/(.5·.5) = 1 → Φ = 0.
  t.ok(Math.abs(nogueiraStability([['a', 'b'], ['a', 'c']], 4)) < 1e-12);
  // p = (1, 2/3, 1/3): s² = 1.5·2/9 = 1/3 each; (2/3)/5 = 2/15; k̄/d = .4 → .24; Φ = 1 − (2/15)/.24 = 4/9.
  t.ok(Math.abs(nogueiraStability([['a', 'b'], ['a', 'b'], ['a', 'c']], 5) - 4 / 9) < 1e-12);
  t.ok(Number.isNaN(nogueiraStability([['a']], 4)), 'one selection: undefined');
  const prf = precisionRecallF1(['a', 'b', 'x'], ['a', 'b', 'c', 'd']);
  t.ok(Math.abs(prf.precision - 2 / 3) < 1e-12 && prf.recall === 0.5 && Math.abs(prf.f1 - 4 / 7) < 1e-12, JSON.stringify(prf));
  t.same(trueImageRelevant({ imageDerivable: ['a', 'b', 'c'], tasks: { t1: { relevant: ['b', 'z'] }, t2: { relevant: ['c'] } } }, ['t1', 't2']), ['b', 'c']);
});

t.test('pairedCi pairs by seed and is the paired t-test of the differences', async (t) => {
  const { seeds, diffs } = pairedDifferences(new Map([[0, 0.8], [1, 0.7], [2, 0.9], [5, 1]]), new Map([[2, 0.85], [0, 0.75], [1, 0.72]]));
  t.same(seeds, [0, 1, 2]);
  t.ok(diffs.every((d, i) => Math.abs(d - [0.05, -0.02, 0.05][i]) < 1e-12));
  const a = pairedCi(diffs);
  // scipy.stats.ttest_rel([0.8, 0.7, 0.9], [0.75, 0.72, 0.85]): t 1.142857142857143, p 0.371460638945291,
  // confidence_interval(0.95) (-0.07372856369792981, 0.1270618970312632).
  t.ok(Math.abs(a.estimate - 0.08 / 3) < 1e-12);
  t.ok(Math.abs(a.t - 1.142857142857143) < 1e-12 && Math.abs(a.p - 0.371460638945291) < 1e-12, `t ${a.t}, p ${a.p}`);
  t.ok(Math.abs(a.lower + 0.07372856369792981) < 1e-10 && Math.abs(a.upper - 0.1270618970312632) < 1e-10, `[${a.lower}, ${a.upper}]`);
  t.ok(Number.isNaN(pairedCi([0.05]).lower), 'one paired seed: no interval');
});

let reference: Trial[] = [];

t.test('runStudy runs a CI-sized study end to end and writes the store and report.html', async (t) => {
  const out = path.join(root, 'full');
  const summary = await runStudy(options(out));
  t.same({ total: summary.total, done: summary.done, failed: summary.failed, unfinished: summary.unfinished }, { total: 8, done: 8, failed: 0, unfinished: 0 });
  t.ok(fs.existsSync(path.join(out, 'study.sqlite')));
  t.equal(summary.report, path.join(out, 'report.html'));
  const html = fs.readFileSync(summary.report!, 'utf8');
  for (const s of ['Results by subset', 'Paired differences vs all features', 'Objective against k', 'Selected features', 'Against the ground truth', 'mrmr k=3', 'image-only']) {
    t.ok(html.includes(s), `report has ${s}`);
  }
  reference = readTrials(out);
  t.same(reference.map(trialName).sort(), ['all-features-k90-s0', 'all-features-k90-s1', 'image-only-k0-s0', 'image-only-k0-s1', 'mrmr-k3-s0', 'mrmr-k3-s1', 'random-k3-s0', 'random-k3-s1']);
  t.ok(reference.every((x) => x.status === 'done' && x.completions === 1 && x.attempts === 1));
  t.ok(reference.filter((x) => x.method === 'mrmr' || x.method === 'random').every((x) => x.features!.length === 3));
  t.same(reference.find((x) => x.method === 'image-only')!.features, []);

  // The summary's objective is the documented formula on the stored metrics.
  const s = summarizeStudy(out);
  const metric = (x: Trial) => ({ infarction: x.results!.tasks.infarction.auc.mean, lvef: x.results!.tasks.lvef.r2.mean });
  const all = reference.filter((x) => x.method === 'all-features').sort((a, b) => a.seed - b.seed).map(metric);
  const sd = (v: number[]) => Math.sqrt(((v[0] - v[1]) ** 2) / 2);
  const m0 = metric(reference.find((x) => x.method === 'mrmr' && x.seed === 0)!);
  const m1 = metric(reference.find((x) => x.method === 'mrmr' && x.seed === 1)!);
  const term = (m: typeof m0, r: typeof m0) => ((m.infarction - r.infarction) / Math.max(sd(all.map((a) => a.infarction)), 0.01) + (m.lvef - r.lvef) / Math.max(sd(all.map((a) => a.lvef)), 0.01)) / 2;
  const mrmr = s.subsets.find((x) => x.label === 'mrmr k=3')!;
  t.ok(Math.abs(mrmr.objective!.values[0] - term(m0, all[0])) < 1e-12 && Math.abs(mrmr.objective!.values[1] - term(m1, all[1])) < 1e-12, 'objective per seed');
  t.same(s.subsets.find((x) => x.method === 'all-features')!.objective!.values, [0, 0]);
  t.ok(Number.isFinite(mrmr.stability) && mrmr.truth !== null && mrmr.paired.objective.n === 2);
  // The objective is descriptive: its mean over seeds, no interval, no p.
  const objs = s.subsets.filter((x) => x.paired.objective).map((x) => x.paired.objective);
  t.equal(objs.length, 3);
  t.ok(Math.abs(mrmr.paired.objective.estimate - (mrmr.objective!.values[0] + mrmr.objective!.values[1]) / 2) < 1e-12, 'the objective estimate is its mean over the paired seeds');
  t.ok(objs.every((x) => [x.lower, x.upper, x.p, x.pHolm].every(Number.isNaN)), 'the objective is not tested');
  // Holm over every per-task comparison of every subset (one family), from the t-test.
  const tested = s.subsets.filter((x) => x.method !== 'all-features');
  const cells = tested.flatMap((x) => ['infarction', 'lvef'].map((task) => x.paired[task]));
  t.equal(cells.length, 6);
  t.same(cells.map((x) => x.pHolm), holmAdjust(cells.map((x) => x.p)), 'task p-values Holm-adjusted as one family of subsets × tasks');
  const dInf = [0, 1].map((i) => [m0, m1][i].infarction - all[i].infarction);
  const tt = pairedTTest(dInf);
  t.ok(Math.abs(mrmr.paired.infarction.p - tt.p) < 1e-12, 'task p is the paired t-test of the per-seed differences');
  t.ok(Math.abs(mrmr.paired.infarction.pGreater - (tt.t > 0 ? tt.p / 2 : 1 - tt.p / 2)) < 1e-12, 'its one-sided p for "subset > all features"');
  // "Better on every task": the intersection–union p (the largest one-sided p), Holm over the subsets.
  for (const x of tested) t.equal(x.everyTask!.p, Math.max(x.paired.infarction.pGreater, x.paired.lvef.pGreater), `${x.label}: every-task p is the largest one-sided p`);
  t.same(tested.map((x) => x.everyTask!.pHolm), holmAdjust(tested.map((x) => x.everyTask!.p)), 'every-task p Holm-adjusted over the subsets');
  t.equal(s.subsets.find((x) => x.method === 'all-features')!.everyTask, null);
  for (const part of ['better on every task', 'intersection–union', 'descriptive', 'Scope: the tests vary only the pretraining seed']) t.ok(html.includes(part), `report says ${part}`);

  const again = await runStudy(options(out));
  t.equal(again.done, 8, 'a rerun of a finished study skips every trial');
  t.ok(readTrials(out).every((x) => x.attempts === 1 && x.completions === 1));
  await t.rejects(runStudy({ ...options(out), epochs: 3 }), { code: 'ERR_CONFIG', message: /epochs 2, but this run asks for 3/ });
  await t.rejects(runStudy({ ...options(out), methods: ['attribution'] }), { code: 'ERR_CONFIG', message: /explainability module/ });
});

t.test('a study killed with SIGKILL mid-trial resumes: every trial done once, the killed one from its checkpoint', async (t) => {
  const out = path.join(root, 'killed');
  const script = path.join(root, 'child.js');
  fs.writeFileSync(script, [
    'const { runStudy } = require(process.argv[2]);',
    'runStudy(JSON.parse(process.argv[3])).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });',
  ].join('\n'));
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const child = spawn(process.execPath, [...loader, script, path.join(__dirname, '..', 'lib', 'study'), JSON.stringify(options(out))], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let killedTrial: string | undefined;
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline && child.exitCode === null && !killedTrial) {
    await new Promise((r) => setTimeout(r, 20));
    let running: Trial[] = [];
    try {
      running = readTrials(out).filter((x) => x.status === 'running' && x.runDir);
    } catch {
      continue; // the store is not there yet
    }
    // Mid-trial: epoch 0 is checkpointed and recorded in metrics.jsonl, epoch 1 is not finished. (The native
    // trainer writes the checkpoint before JS records the epoch's metrics line, so we wait for both.)
    const mid = running.find((x) => {
      const metrics = path.join(x.runDir!, 'metrics.jsonl');
      return fs.existsSync(path.join(x.runDir!, 'checkpoint.safetensors')) && !fs.existsSync(path.join(x.runDir!, 'image_encoder.safetensors'))
        && fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').trim().split('\n').length === 1;
    });
    if (mid) {
      child.kill('SIGKILL');
      killedTrial = trialName(mid);
    }
  }
  await exited;
  t.ok(killedTrial, `killed during a trial (child stderr: ${stderr.slice(-500)})`);
  const before = readTrials(out);
  const victim = before.find((x) => trialName(x) === killedTrial)!;
  t.equal(victim.status, 'running', 'the store shows the killed trial as running');
  const doneBefore = before.filter((x) => x.status === 'done').map(trialName);

  const summary = await runStudy(options(out));
  t.equal(summary.done, 8);
  const after = readTrials(out);
  t.same(after.map(trialName).sort(), reference.map(trialName).sort(), 'the same trial keys as an uninterrupted study');
  t.ok(after.every((x) => x.status === 'done' && x.completions === 1), 'every trial done exactly once');
  const redone = after.find((x) => trialName(x) === killedTrial)!;
  t.equal(redone.attempts, 2, 'the killed trial was claimed again');
  t.ok(redone.resumed, 'its pretraining resumed from the checkpoint');
  const epochs = fs.readFileSync(path.join(redone.runDir!, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch);
  t.same(epochs, [0, 1], 'no epoch trained twice in its metrics');
  t.ok(after.filter((x) => doneBefore.includes(trialName(x))).every((x) => x.attempts === 1), 'trials finished before the kill were not rerun');
  t.ok(after.filter((x) => trialName(x) !== killedTrial).every((x) => x.attempts === 1));
  t.same(after.map((x) => [trialName(x), x.features]).sort(), reference.map((x) => [trialName(x), x.features]).sort(), 'the same selections');
  t.ok(fs.existsSync(summary.report!));
  const metric = (x: Trial) => [x.results!.tasks.infarction.auc.mean, x.results!.tasks.lvef.r2.mean];
  const ref = new Map(reference.map((x) => [trialName(x), metric(x)]));
  const diff = Math.max(...after.flatMap((x) => metric(x).map((v, i) => Math.abs(v - ref.get(trialName(x))![i]))));
  // Pretraining is deterministic by seed and a resume continues bit for bit (test/pretrain.test.ts), so the
  // interrupted study reproduces the uninterrupted one's metrics, not only its keys.
  t.ok(diff < 1e-12, `largest |metric difference| vs the uninterrupted study: ${diff}`);
});
