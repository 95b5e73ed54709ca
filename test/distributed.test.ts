// Data-parallel pretraining (Gloo on CPU): two ranks reproduce one process
// on the same global batch. Each rank is a child node process on loopback
// with torchrun's environment and one LibTorch thread.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeNpy, _native } from '../lib/index';
import { runRanks, rankScript, type RankResult } from './helpers/dist';
import { toyCohort } from './helpers/toy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-dist-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

if (!_native().distributedBackends().gloo) {
  t.fail('this build has no Gloo backend: install libgloo-dev and rebuild (npm run build:native)');
  process.exit(1);
}

const n = 64;
// The toy cohort plus pixel noise: its squares are flat plateaus, and a max
// pool over exactly tied values routes gradients by tie-breaking, which a
// 1-ulp difference flips (docs/distributed.md). Real images have no such ties.
const toy = toyCohort(n, 32, 5);
let noise = 7;
const images8 = toy.images.map((v) => {
  noise = (Math.imul(noise, 1664525) + 1013904223) >>> 0;
  return Math.max(0, Math.min(255, v + (noise >>> 24) % 41 - 20));
});
const images = path.join(root, 'images.npy');
const tabular = path.join(root, 'tabular.npy');
// A small ResNet-18 at 32 px with the standard stem, small heads.
const model = { arch: 'resnet18', smallStem: false, tabularHidden: 64, tabularLayers: 2, projectionHidden: 64, projectionDim: 32 };
const base = { batchSize: 16, warmupEpochs: 0, threads: 1, seed: 3, model };

t.before(async () => {
  await writeNpy(images, images8, toy.shape);
  await writeNpy(tabular, toy.tabular, [n, toy.features]);
});

// The comparisons with the weights held check the distributed logic at the
// issue's bounds (losses to 1e-5), which were set for LibTorch's direct
// convolutions: a rank's smaller batch changes only their summation order.
// Training on the CPU runs its 3×3 convolutions as Winograd by default
// (docs/design.md), which rounds 2 to 4 times more per layer
// (winograd-conv.test.ts) and blocks by batch size too; with it, the same
// comparisons measured 7.6e-6 (CLIP) and 1.5e-5 (simclr) against 4.8e-6 and
// 8.6e-6 direct. So those runs pin the direct convolutions in every process
// (DIRECT), and one CLIP comparison runs with Winograd at a bound scaled to
// its rounding.
const DIRECT = { TABSIGHT_WINOGRAD: '0' };

/** Trains with `world` ranks (0: one process without the environment). */
async function train(name: string, world: number, options: Record<string, unknown>, extra: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<RankResult[]> {
  const out = path.join(root, name);
  const spec = JSON.stringify({ images, tabular, options: { ...base, ...options, out }, ...extra });
  const results = await runRanks(rankScript, () => [spec], world, env);
  for (const r of results) {
    if (r.code !== 0) throw new Error(`${name}: rank ${r.rank} exited with ${r.code ?? r.signal}: ${r.stderr}`);
  }
  return results;
}

const stepLosses = (r: RankResult) => r.lines.filter((l) => typeof l.step === 'number').map((l) => l.loss as number);
const maxLossDiff = (a: RankResult, b: RankResult) => {
  const x = stepLosses(a);
  const y = stepLosses(b);
  if (x.length !== y.length) throw new Error(`${x.length} and ${y.length} steps`);
  return Math.max(...x.map((v, i) => Math.abs(v - y[i])));
};

async function tensors(name: string) {
  return (await readSafetensors(path.join(root, name, 'checkpoint.safetensors'))).tensors;
}

/** Largest |difference| over the checkpoint tensors whose names start with `prefix`. */
async function maxDiff(a: string, b: string, prefix: string): Promise<{ max: number; where: string; compared: number }> {
  const ta = await tensors(a);
  const tb = await tensors(b);
  let max = 0;
  let where = '';
  let compared = 0;
  for (const [name, x] of ta) {
    if (!name.startsWith(prefix)) continue;
    const xs = x.data as ArrayLike<number | bigint>;
    const ys = tb.get(name)!.data as ArrayLike<number | bigint>;
    for (let i = 0; i < xs.length; i++) {
      const d = Math.abs(Number(xs[i]) - Number(ys[i]));
      if (d > max) {
        max = d;
        where = name;
      }
    }
    compared++;
  }
  return { max, where, compared };
}

/**
 * Adam's first moments (0.1·Σ 0.9^k·g over the steps: the gradients) as
 * ‖a − b‖ / ‖a‖ per parameter; the largest, and how many were skipped
 * because their gradient is zero in exact arithmetic (the bias of a Linear
 * right before a BatchNorm holds rounding noise of about 1e-8 only).
 */
async function gradientDiff(a: string, b: string): Promise<{ max: number; where: string; compared: number; noiseOnly: number }> {
  const ta = await tensors(a);
  const tb = await tensors(b);
  let max = 0;
  let where = '';
  let compared = 0;
  let noiseOnly = 0;
  for (const [name, x] of ta) {
    if (!name.startsWith('optim.') || !name.endsWith('.exp_avg')) continue;
    const xs = x.data as Float32Array;
    const ys = tb.get(name)!.data as Float32Array;
    let d2 = 0;
    let n2 = 0;
    for (let i = 0; i < xs.length; i++) {
      d2 += (xs[i] - ys[i]) ** 2;
      n2 += xs[i] ** 2;
    }
    if (Math.sqrt(n2) < 1e-5) {
      noiseOnly++;
      continue;
    }
    const rel = Math.sqrt(d2 / n2);
    if (rel > max) {
      max = rel;
      where = name;
    }
    compared++;
  }
  return { max, where, compared, noiseOnly };
}

t.test('pretrain#distributed: 2 ranks (multimodal CLIP, SyncBN, augmentation) compute what 1 process computes on the same global batch, step for step over 20 steps', async (t) => {
  // The weights are held (lr 1e-12) so that every step sees the same model
  // in both runs: what is compared is the data each rank gets, its
  // augmentation and corruption, the gathered loss, SyncBN and the
  // gradient all-reduce — not the chaos of training (next test).
  const options = { epochs: 5, lr: 1e-12, augment: { rate: 0.95 } };
  const [single] = await train('mm-1', 0, options, {}, DIRECT);
  const [r0, r1] = await train('mm-2', 2, options, {}, DIRECT);
  t.equal(stepLosses(single).length, 20, '4 steps per epoch (global batch 16 of 64), 5 epochs');
  t.same(stepLosses(r1), stepLosses(r0), 'both ranks report the same (global) loss');
  const d = maxLossDiff(single, r0);
  t.ok(d < 1e-5, `the 20 losses agree to ${d.toExponential(2)}`);
  const w = await maxDiff('mm-1', 'mm-2', 'model.');
  t.ok(w.compared > 100, `compared ${w.compared} tensors (weights and BN buffers of every module)`);
  t.ok(w.max < 1e-4, `weights and BN running statistics (moved by 20 global batches) agree to ${w.max.toExponential(2)} (largest in ${w.where})`);
  const g = await gradientDiff('mm-1', 'mm-2');
  t.ok(g.compared > 50 && g.noiseOnly <= 4, `compared the gradients of ${g.compared} parameters (${g.noiseOnly} are zero in exact arithmetic)`);
  t.ok(g.max < 2e-2, `gradients summed over 20 steps agree to ${g.max.toExponential(2)} relative (largest in ${g.where})`);
  const metrics = fs.readFileSync(path.join(root, 'mm-2', 'metrics.jsonl'), 'utf8').trim().split('\n');
  t.equal(metrics.length, 5, 'rank 0 alone wrote metrics.jsonl, one line per epoch');
  const config = JSON.parse(fs.readFileSync(path.join(root, 'mm-2', 'config.json'), 'utf8'));
  t.match(config.distributed, { worldSize: 2, rank: 0, backend: 'gloo' });
  t.equal(config.syncBatchNorm, true, 'syncBatchNorm is on by default for contrastive modes');
  t.ok(fs.existsSync(path.join(root, 'mm-2', 'image_encoder.safetensors')));
  t.notOk(fs.existsSync(path.join(root, 'mm-2', '.lock')), 'the lock is released');
});

t.test('pretrain#distributed with the Winograd convolutions: 2 ranks match 1 process with the weights held, within Winograd\'s rounding', async (t) => {
  const options = { epochs: 2, lr: 1e-12, augment: { rate: 0.95 } };
  const [single] = await train('wg-1', 0, options);
  const [r0] = await train('wg-2', 2, options);
  t.ok(JSON.parse(fs.readFileSync(path.join(root, 'wg-2', 'config.json'), 'utf8')).distributed, 'the 2-rank run was distributed');
  const d = maxLossDiff(single, r0);
  // 4× the direct bound: Winograd's per-layer rounding is 2 to 4 times the
  // direct convolution's. A rank missing another's data, a wrong gather or
  // an unsynchronised batch norm moves the loss by 1e-2 or more.
  t.ok(d < 4e-5, `the 8 losses agree to ${d.toExponential(2)}`);
  const g = await gradientDiff('wg-1', 'wg-2');
  t.ok(g.max < 2e-2, `gradients summed over 8 steps agree to ${g.max.toExponential(2)} relative (largest in ${g.where})`);
});

t.test('pretrain#distributed trains as 1 process does: at lr 1e-3 both lower the loss alike (trajectories drift apart as with any change of summation order)', async (t) => {
  const options = { epochs: 4, lr: 1e-3, augment: { rate: 0.95 } };
  const [one] = await train('lr-1', 0, options);
  const [two] = await train('lr-2', 2, options);
  const [threads2] = await train('lr-1t2', 0, { ...options, threads: 2 });
  const epochMeans = (r: RankResult) => [0, 1, 2, 3].map((e) => stepLosses(r).slice(4 * e, 4 * e + 4).reduce((x, y) => x + y, 0) / 4);
  const a = epochMeans(one);
  const b = epochMeans(two);
  t.comment(`epoch losses: 1 process ${a.map((x) => x.toFixed(3)).join(' ')}; 2 ranks ${b.map((x) => x.toFixed(3)).join(' ')}`);
  t.comment(`largest step-loss difference: 2 ranks vs 1 process ${maxLossDiff(one, two).toExponential(2)}; 1 process with 2 threads vs 1 thread ${maxLossDiff(one, threads2).toExponential(2)}`);
  const first = Math.abs(stepLosses(one)[0] - stepLosses(two)[0]);
  t.ok(first < 1e-5, `the first step agrees to ${first.toExponential(2)}`);
  t.ok(a[3] < 0.9 * a[0] && b[3] < 0.9 * b[0], 'both lower the loss by more than 10%');
  t.ok(Math.abs(a[3] - b[3]) < 0.1 * a[0], `last-epoch losses ${a[3].toFixed(3)} and ${b[3].toFixed(3)}`);
});

t.test('pretrain#distributed: simclr (NT-Xent over gathered views, encoder used twice) and supervised (averaged gradients) match 1 process', async (t) => {
  const simclr = { mode: 'simclr', epochs: 2, lr: 1e-12, augment: { rate: 1, rotationDeg: 10, cropScale: [0.6, 1] } };
  const [s1] = await train('simclr-1', 0, simclr, {}, DIRECT);
  const [s2] = await train('simclr-2', 2, simclr, {}, DIRECT);
  t.equal(stepLosses(s1).length, 8);
  const d = maxLossDiff(s1, s2);
  // Summation order only (the weights are held): 1.29e-5 on an AVX2 EPYC, under 1e-5 on an AVX-512 CPU; a wrong gather of the views moves the loss by O(1).
  t.ok(d < 4e-5, `simclr losses agree to ${d.toExponential(2)}`);
  const ws = await maxDiff('simclr-1', 'simclr-2', 'model.');
  t.ok(ws.max < 1e-4, `simclr BN running statistics agree to ${ws.max.toExponential(2)} (largest in ${ws.where})`);
  const gs = await gradientDiff('simclr-1', 'simclr-2');
  t.ok(gs.max < 2e-2, `simclr gradients agree to ${gs.max.toExponential(2)} relative (largest in ${gs.where})`);

  const labels = Array.from(toy.labels);
  const sup = { mode: 'supervised', epochs: 1, lr: 1e-12, syncBatchNorm: true };
  const [u1] = await train('sup-1', 0, sup, { labels }, DIRECT);
  const [u2] = await train('sup-2', 2, sup, { labels }, DIRECT);
  const du = maxLossDiff(u1, u2);
  t.ok(du < 1e-5, `supervised losses (the mean over the global batch) agree to ${du.toExponential(2)}`);
  const gu = await gradientDiff('sup-1', 'sup-2');
  t.ok(gu.max < 2e-2, `supervised gradients (averaged over ranks) agree to ${gu.max.toExponential(2)} relative (largest in ${gu.where})`);
});

t.test('pretrain#distributed without syncBatchNorm normalises per rank, so it departs from 1 process', async (t) => {
  const options = { epochs: 1, lr: 1e-3, syncBatchNorm: false, augment: { rate: 0 } };
  const [one] = await train('nosync-1', 0, options);
  const [r0, r1] = await train('nosync-2', 2, options);
  t.same(stepLosses(r0), stepLosses(r1), 'the contrastive loss is still global and equal on both ranks');
  const d = Math.abs(stepLosses(one)[0] - stepLosses(r0)[0]);
  t.ok(d > 1e-4, `per-rank batch statistics change the first loss by ${d.toExponential(2)}`);
  const config = JSON.parse(fs.readFileSync(path.join(root, 'nosync-2', 'config.json'), 'utf8'));
  t.equal(config.syncBatchNorm, false);
});
