// Distributed pretraining when things go wrong: bad settings, a rank that
// never joins, a rank killed mid-run (the others stop within the timeout
// naming it, and --resume finishes the run, with the same or another world
// size), and the --nproc launcher (prefixed output, a failing rank, Ctrl-C).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain, readSafetensors, writeNpy, ConfigError, _native } from '../lib/index';
import { freePort } from '../lib/cli/launch';
import { cliScript, rankScript, startRank, startRanks, type RankHandle } from './helpers/dist';
import { toyCohort } from './helpers/toy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-dist-fail-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

if (!_native().distributedBackends().gloo) {
  t.fail('this build has no Gloo backend: install libgloo-dev and rebuild (npm run build:native)');
  process.exit(1);
}

const n = 64;
const toy = toyCohort(n, 32, 9);
const images = path.join(root, 'images.npy');
const tabular = path.join(root, 'tabular.npy');
const model = { arch: 'resnet18' as const, smallStem: false, tabularHidden: 64, tabularLayers: 2, projectionHidden: 64, projectionDim: 32 };
// Weights held (lr 1e-12) so that runs interrupted at different points and
// resumed with different world sizes can be compared (test/distributed.test.ts
// explains why trained trajectories cannot be).
const base = { batchSize: 16, lr: 1e-12, warmupEpochs: 0, threads: 1, seed: 4, model, augment: { rate: 0.95 } };
const timeoutSec = 10;

t.before(async () => {
  await writeNpy(images, toy.images, toy.shape);
  await writeNpy(tabular, toy.tabular, [n, toy.features]);
});

function spec(out: string, options: Record<string, unknown> = {}) {
  return JSON.stringify({ images, tabular, timeoutSec, options: { ...base, epochs: 4, ...options, out: path.join(root, out) } });
}

const metricsLines = (out: string) => fs.readFileSync(path.join(root, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; loss: number });

t.test('distributed options are checked before anything starts, naming the culprit', async (t) => {
  const opts = { ...base, out: path.join(root, 'bad'), images: { data: toy.images, shape: toy.shape }, tabular: { data: toy.tabular, shape: [n, toy.features] } };
  await t.rejects(pretrain({ ...opts, batchSize: 10, distributed: { rank: 0, worldSize: 4 } }), { code: 'ERR_CONFIG', message: 'Expected batchSize (10) to be a multiple of the world size (4): batchSize is the global batch, split evenly over the ranks' });
  await t.rejects(pretrain({ ...opts, distributed: { rank: 2, worldSize: 2 } }), { code: 'ERR_CONFIG', message: /distributed\.rank/ });
  await t.rejects(pretrain({ ...opts, distributed: { rank: 0, worldSize: 2, backend: 'nccl' } }), { code: 'ERR_CONFIG', message: /nccl needs device 'cuda'/ });
  await t.rejects(pretrain({ ...opts, distributed: { rank: 0, worldSize: 2, port: 1 } as never }), { code: 'ERR_CONFIG', message: /Unknown option distributed\.port/ });
  await t.rejects(pretrain({ ...opts, batchSize: 2, syncBatchNorm: false, distributed: { rank: 0, worldSize: 2 } }), { code: 'ERR_CONFIG', message: /at least 2 images per rank without syncBatchNorm/ });
  const saved = { ...process.env };
  try {
    Object.assign(process.env, { WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29999' });
    delete process.env.RANK;
    await t.rejects(pretrain({ ...opts, distributed: 'env' }), { code: 'ERR_CONFIG', message: /WORLD_SIZE is set \(2\) but RANK is not/ });
    process.env.RANK = 'one';
    await t.rejects(pretrain({ ...opts, distributed: 'env' }), ConfigError);
    await t.rejects(pretrain({ ...opts, distributed: 'env' }), { message: /RANK \(torchrun environment\) but received "one"/ });
  } finally {
    for (const k of ['WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'RANK']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

t.test('a rank that never joins: rank 0 fails with ERR_DIST naming it after the timeout', async (t) => {
  // Rank 0 of a world of 2, and no rank 1.
  const started = Date.now();
  const r0 = startRank(rankScript, [JSON.stringify({ images, tabular, timeoutSec: 3, options: { ...base, epochs: 1, out: path.join(root, 'lonely') } })], 0, 2, await freePort());
  const res = await r0.done;
  t.equal(res.code, 1);
  t.match(res.stderr, /ERR_DIST: rank 1 did not join the rendezvous at 127\.0\.0\.1:\d+ within 3 s/);
  t.ok(Date.now() - started < 30_000, `gave up after ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

t.test('ranks started with different settings fail at the start-up check, naming the odd rank', async (t) => {
  const ranks = await startRanks(rankScript, (r) => [JSON.stringify({ images, tabular, timeoutSec, options: { ...base, epochs: 1, seed: r === 1 ? 99 : 4, out: path.join(root, 'odd') } })], 2);
  const [a, b] = await Promise.all(ranks.map((r) => r.done));
  t.equal(a.code, 1);
  t.equal(b.code, 1);
  t.match(a.stderr, /ERR_DIST: rank 1 was started with other training settings than rank 0/);
  t.match(b.stderr, /ERR_DIST: rank 0 was started with other training settings than rank 1/);
});

t.test('a rank whose training fails reports why: the others fail naming it and its error', async (t) => {
  // Rank 1 reads a store of NaN images (same shape): its supervised loss is
  // NaN at step 1 while rank 0's is fine.
  const nan = path.join(root, 'nan.npy');
  await writeNpy(nan, new Float32Array(n * 32 * 32).fill(NaN), toy.shape);
  const labels = Array.from(toy.labels);
  const ranks = await startRanks(rankScript, (r) => [JSON.stringify({
    images: r === 1 ? nan : images, labels, timeoutSec,
    options: { ...base, mode: 'supervised', epochs: 1, scanImages: false, normalize: { mean: [0.5], std: [0.25] }, out: path.join(root, 'nan') },
  })], 2);
  const [a, b] = await Promise.all(ranks.map((r) => r.done));
  t.equal(b.code, 1);
  t.match(b.stderr, /ERR_TORCH: loss became nan at step 1/);
  t.equal(a.code, 1);
  t.match(a.stderr, /^ERR_DIST: rank 1 failed: ERR_TORCH: loss became nan at step 1; lower the learning rate or check the inputs; rank 0 stopped in the /m, a.stderr.trim());
});

async function killMidRun(out: string, victim: number): Promise<{ survivor: RankHandle; secs: number; stderr: string; code: number | null }> {
  const ranks = await startRanks(rankScript, () => [spec(out)], 2);
  // Rank 0 reports epoch 1 after writing its checkpoint.
  await ranks[0].waitFor(/"epoch":1,.*"epochDone":false/);
  ranks[victim].child.kill('SIGKILL');
  const killedAt = Date.now();
  const survivor = ranks[1 - victim];
  const res = await survivor.done;
  await ranks[victim].done;
  return { survivor, secs: (res.exitedAt - killedAt) / 1000, stderr: res.stderr, code: res.code };
}

t.test('killing rank 1 mid-run stops rank 0 within the timeout naming rank 1; --resume with 2 ranks completes the run', async (t) => {
  const { secs, stderr, code } = await killMidRun('kill1', 1);
  t.equal(code, 1, 'rank 0 exits non-zero');
  t.match(stderr, /^ERR_DIST: rank 1 has died or hung \(no heartbeat for 3 s\); rank 0 stopped in the /m, stderr.trim());
  t.ok(secs < timeoutSec + 10, `rank 0 stopped ${secs.toFixed(1)} s after the kill (timeout ${timeoutSec} s)`);
  t.ok(fs.existsSync(path.join(root, 'kill1', 'checkpoint.safetensors')), 'the last epoch checkpoint is there');
  t.notOk(fs.existsSync(path.join(root, 'kill1', 'image_encoder.safetensors')));
  const ranks = await startRanks(rankScript, () => [spec('kill1', { resume: true })], 2);
  const results = await Promise.all(ranks.map((r) => r.done));
  for (const r of results) t.equal(r.code, 0, `rank ${r.rank} of the resumed run: ${r.stderr}`);
  t.same(metricsLines('kill1').map((m) => m.epoch), [0, 1, 2, 3], 'every epoch once');
  t.ok(fs.existsSync(path.join(root, 'kill1', 'image_encoder.safetensors')));
});

t.test('killing rank 0 (the store host) stops rank 1 naming rank 0; --resume in one process (another world size) completes the same run', async (t) => {
  const { secs, stderr, code } = await killMidRun('kill0', 0);
  t.equal(code, 1, 'rank 1 exits non-zero');
  t.match(stderr, /ERR_DIST: rank 0 \(which hosts the rendezvous store at 127\.0\.0\.1:\d+\) is unreachable/, stderr.trim());
  t.ok(secs < timeoutSec + 10, `rank 1 stopped ${secs.toFixed(1)} s after the kill`);
  const [one] = await startRanks(rankScript, () => [spec('kill0', { resume: true })], 0);
  const res = await one.done;
  t.equal(res.code, 0, res.stderr);
  t.same(metricsLines('kill0').map((m) => m.epoch), [0, 1, 2, 3]);
  // kill1 is the same run (same options) interrupted elsewhere and resumed
  // with 2 ranks: the same batches, augmentations, losses and BN statistics.
  const la = metricsLines('kill0').map((m) => m.loss);
  const lb = metricsLines('kill1').map((m) => m.loss);
  const dl = Math.max(...la.map((x, i) => Math.abs(x - lb[i])));
  t.ok(dl < 1e-5, `epoch losses after resuming with 1 process match the run resumed with 2 ranks to ${dl.toExponential(2)}`);
  const a = (await readSafetensors(path.join(root, 'kill0', 'checkpoint.safetensors'))).tensors;
  const b = (await readSafetensors(path.join(root, 'kill1', 'checkpoint.safetensors'))).tensors;
  let max = 0;
  for (const [name, x] of a) {
    if (!name.startsWith('model.')) continue;
    const xs = x.data as ArrayLike<number | bigint>;
    const ys = b.get(name)!.data as ArrayLike<number | bigint>;
    for (let i = 0; i < xs.length; i++) max = Math.max(max, Math.abs(Number(xs[i]) - Number(ys[i])));
  }
  t.ok(max < 1e-4, `weights and BN running statistics match to ${max.toExponential(2)}`);
});

// --nproc through the CLI.
const config = path.join(root, 'cli.yaml');
fs.writeFileSync(config, `pretrain:\n  epochs: 3\n  batchSize: 16\n  lr: 0.001\n  warmupEpochs: 0\n  seed: 2\n  distributed: { timeoutSec: ${timeoutSec} }\n  model: { arch: resnet18, smallStem: false, tabularHidden: 64, projectionHidden: 64, projectionDim: 32 }\n`);
const cliArgs = (out: string, ...extra: string[]) => ['pretrain', '--images', images, '--tabular', tabular, '--out', path.join(root, out), '--config', config, ...extra];

/** The child process of `parent` whose environment holds RANK=rank. */
function childWithRank(parent: number, rank: number): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const env = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.includes(`RANK=${rank}`)) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

t.test('tabsight pretrain --nproc 2 trains with 2 local ranks and prefixes their output', async (t) => {
  const [launcher] = await startRanks(cliScript, () => cliArgs('nproc', '--nproc', '2'), 0);
  const res = await launcher.done;
  t.equal(res.code, 0, res.stderr);
  t.ok(res.stdout.split('\n').includes(`[rank 0] ${path.join(root, 'nproc')}`), 'rank 0 prints the run directory');
  t.match(res.stderr, /^\[rank 0\] pretrain epoch 3: loss/m, 'rank 0 reports the epochs');
  t.notMatch(res.stderr, /\[rank 1\] pretrain epoch/, 'rank 1 stays quiet');
  const cfg = JSON.parse(fs.readFileSync(path.join(root, 'nproc', 'config.json'), 'utf8'));
  t.match(cfg.distributed, { worldSize: 2, timeoutSec });
  t.ok(fs.existsSync(path.join(root, 'nproc', 'image_encoder.safetensors')));
});

t.test('tabsight pretrain --nproc: a rank that dies stops the others, and the launcher fails naming it', async (t) => {
  const [launcher] = await startRanks(cliScript, () => cliArgs('nproc-kill', '--nproc', '2'), 0);
  await launcher.waitFor(/\[rank 0\] pretrain epoch 1:/);
  const pid = childWithRank(launcher.child.pid!, 1);
  const pid0 = childWithRank(launcher.child.pid!, 0);
  t.ok(pid && pid0, 'found both ranks');
  process.kill(pid!, 'SIGKILL');
  const res = await launcher.done;
  t.equal(res.code, 1);
  t.match(res.stderr, /tabsight: ERR_DIST: rank 1 of 2 was killed by SIGKILL; the other ranks were stopped/);
  t.throws(() => process.kill(pid0!, 0), { code: 'ESRCH' }, 'rank 0 is gone too');
});

t.test('tabsight pretrain --nproc: Ctrl-C stops every rank after the same step with a checkpoint; --resume finishes', async (t) => {
  const [launcher] = await startRanks(cliScript, () => cliArgs('nproc-int', '--nproc', '2'), 0);
  await launcher.waitFor(/\[rank 0\] pretrain epoch 1:/);
  launcher.child.kill('SIGINT');
  const res = await launcher.done;
  t.equal(res.code, 130, res.stderr);
  t.match(res.stderr, /ERR_ABORTED: Training was stopped on all 2 ranks/);
  const [again] = await startRanks(cliScript, () => cliArgs('nproc-int', '--nproc', '2', '--resume'), 0);
  const res2 = await again.done;
  t.equal(res2.code, 0, res2.stderr);
  t.same(metricsLines('nproc-int').map((m) => m.epoch), [0, 1, 2]);
});

t.test('tabsight pretrain --nproc: when the launcher itself is killed, its ranks stop after the same step with a checkpoint', async (t) => {
  const [launcher] = await startRanks(cliScript, () => cliArgs('nproc-orphan', '--nproc', '2'), 0);
  await launcher.waitFor(/\[rank 0\] pretrain epoch 1:/);
  const pids = [childWithRank(launcher.child.pid!, 0)!, childWithRank(launcher.child.pid!, 1)!];
  t.ok(pids.every(Boolean), 'found both ranks');
  launcher.child.kill('SIGKILL');
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const started = Date.now();
  while (pids.some(alive) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 250));
  t.notOk(pids.some(alive), `both ranks exited ${((Date.now() - started) / 1000).toFixed(1)} s after the launcher died`);
  t.ok(fs.existsSync(path.join(root, 'nproc-orphan', 'checkpoint.safetensors')), 'rank 0 wrote the checkpoint');
  t.notOk(fs.existsSync(path.join(root, 'nproc-orphan', '.lock')), 'and released the run directory');
  const [again] = await startRanks(cliScript, () => cliArgs('nproc-orphan', '--nproc', '2', '--resume'), 0);
  const res = await again.done;
  t.equal(res.code, 0, res.stderr);
  t.same(metricsLines('nproc-orphan').map((m) => m.epoch), [0, 1, 2]);
});
