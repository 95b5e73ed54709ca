#!/usr/bin/env node
/**
 * Question: what does data-parallel pretraining with 2 ranks (Gloo over
 * loopback) give against 1 process on this machine, on the same global
 * batch, and what would communication cost against compute on N GPUs?
 *
 * Measured: multimodal CLIP pretraining, ResNet-18 at 64 px (standard
 * stem), MMCL's head sizes (tabular MLP 2048 wide, projection heads 2048 →
 * 128), global batch 32, no augmentation. Three set-ups: 1 process with
 * every core as LibTorch threads, 1 process with 1 thread, and 2 ranks that
 * split the cores (TABSIGHT_THREADS = cores / 2 each). Each round trains
 * `steps` steps (the first one is a warm-up and not counted) in fresh child
 * processes, alternating the set-ups. Throughput is the global batch
 * over the step time the trainer reports (rank 0's, which includes waiting
 * for the gradient all-reduce).
 *
 * Modelled (no GPU here): the step of a ResNet-50 MMCL pretraining on N GPUs
 * — ring all-reduce of the gradients, all-gather of the projections, and
 * compute — from the parameters below (see docs/distributed.md).
 *
 *   node benchmarks/distributed.js [--rounds 3] [--steps 5] [--model-only]
 *        [--gpu-tflops 60] [--link-gbs 25] [--latency-us 30] [--global-batch 512]
 */
'use strict';
const os = require('node:os');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');

const childMode = process.argv[2] === '--child';
if (!childMode) require('./support/common').device('distributed');
const args = childMode ? {} : Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const rounds = Number(args.rounds ?? 3);
const steps = Number(args.steps ?? 5);
const gpuTflops = Number(args['gpu-tflops'] ?? 60);
const linkGBs = Number(args['link-gbs'] ?? 25);
const modelBatch = Number(args['global-batch'] ?? 512);
const latencyUs = Number(args['latency-us'] ?? 30);
const modelOnly = 'model-only' in args;
const root = path.join(__dirname, '..');
const B = 32, S = 64, F = 100;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

// ---- child: one rank (or the single process) ------------------------------
async function child(spec) {
  const ts = require(path.join(root, 'dist', 'lib', 'index.js'));
  const t = await ts.readNpy(spec.tabular);
  await ts.pretrain({
    out: spec.out, images: { npy: spec.images }, tabular: { data: Float32Array.from(t.data), shape: t.shape },
    epochs: 1, batchSize: B, warmupEpochs: 0, augment: { rate: 0 }, seed: 1,
    normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, distributed: 'env',
    model: { arch: 'resnet18', smallStem: false, tabularHidden: 2048, tabularLayers: 2, projectionHidden: 2048, projectionDim: 128 },
  }, { onProgress: (p) => process.stdout.write(JSON.stringify({ step: p.step, secs: B / p.imagesPerSec }) + '\n') });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function runChild(spec, env) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [__filename, '--child', JSON.stringify(spec)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))) : reject(new Error(`child failed (${code}): ${err}`))));
  });
}

async function round(world, data, tmp, threadsPerRank) {
  const threads = String(threadsPerRank);
  const out = fs.mkdtempSync(path.join(tmp, `w${world}-`));
  const spec = { ...data, out };
  if (world === 1) {
    const env = { TABSIGHT_THREADS: threads };
    for (const k of ['WORLD_SIZE', 'RANK', 'MASTER_ADDR', 'MASTER_PORT', 'LOCAL_RANK']) env[k] = '';
    return runChild(spec, env);
  }
  const port = await freePort();
  const results = await Promise.all(Array.from({ length: world }, (_, r) => runChild(spec, {
    TABSIGHT_THREADS: threads, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RANK: String(r), WORLD_SIZE: String(world), LOCAL_RANK: String(r),
  })));
  return results[0];
}

async function main() {
  const ts = require(path.join(root, 'dist', 'lib', 'index.js'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-dist-'));
  const n = B * (steps + 1);
  const images = new Uint8Array(n * 3 * S * S).map((_, i) => (i * 2654435761) >>> 24);
  const tabular = new Float32Array(n * F).map((_, i) => Math.sin(i));
  const data = { images: path.join(tmp, 'images.npy'), tabular: path.join(tmp, 'tabular.npy') };
  await ts.writeNpy(data.images, images, [n, 3, S, S]);
  await ts.writeNpy(data.tabular, tabular, [n, F]);
  if (!modelOnly) await measure(ts, data, tmp);
  model();
  fs.rmSync(tmp, { recursive: true, force: true });
}

async function measure(ts, data, tmp) {
  const info = ts._native().runtimeInfo();
  console.log(JSON.stringify({ figure: 'machine', ...require('./support/common').machine(), cores: os.availableParallelism(), libtorch: info.torchVersion, backend: 'gloo (loopback)', arch: 'resnet18', size: S, globalBatch: B, loadavg: os.loadavg().map((x) => +x.toFixed(2)) }));

  const cores = os.availableParallelism();
  const setups = [
    { name: '1 process, all cores', world: 1, threads: cores },
    { name: '1 process, 1 thread', world: 1, threads: 1 },
    { name: '2 ranks', world: 2, threads: Math.max(1, Math.floor(cores / 2)) },
  ];
  const per = setups.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < setups.length; i++) {
      const lines = await round(setups[i].world, data, tmp, setups[i].threads);
      per[i].push(...lines.filter((l) => l.step > 1).map((l) => l.secs));
    }
  }
  const ips = setups.map((s, i) => {
    const med = median(per[i]);
    console.log(JSON.stringify({ figure: 'throughput', setup: s.name, ranks: s.world, threadsPerRank: s.threads, medianStepSec: +med.toFixed(3), imagesPerSec: +(B / med).toFixed(2), minStepSec: +Math.min(...per[i]).toFixed(3), maxStepSec: +Math.max(...per[i]).toFixed(3), steps: per[i].length }));
    return B / med;
  });
  console.log(JSON.stringify({ figure: 'ratio', twoRanksOverOneProcessAllCores: +(ips[2] / ips[0]).toFixed(3), twoRanksOverOneProcessOneThread: +(ips[2] / ips[1]).toFixed(3), loadavg: os.loadavg().map((x) => +x.toFixed(2)) }));

}

// ---- the analytic model for N GPUs (docs/distributed.md) ------------------
function model() {
  const params = 25.6e6; // ResNet-50 (the image encoder dominates; heads add ~10M more in MMCL)
  const gradBytes = params * 4;
  const flopsPerImage = 3 * 4.1e9 * (128 / 224) ** 2; // forward + backward ≈ 3 × forward, 128 px
  // Small collectives on the critical path: SyncBN (forward and backward of
  // ResNet-50's 53 BatchNorms and 3 in MMCL's heads), 2 all-gathers and the
  // step summary; each costs about one latency.
  const smallCollectives = 2 * (53 + 3) + 2 + 1;
  for (const N of [1, 2, 4, 8, 16, 32]) {
    const local = modelBatch / N;
    const allreduceBytes = N > 1 ? (2 * (N - 1) / N) * gradBytes : 0;
    const allgatherBytes = N > 1 ? 2 * N * local * 128 * 4 : 0; // image and tabular projections, every rank receives all
    const compute = (local * flopsPerImage) / (gpuTflops * 1e12);
    const allreduce = allreduceBytes / (linkGBs * 1e9);
    const serial = N > 1 ? allgatherBytes / (linkGBs * 1e9) + smallCollectives * latencyUs * 1e-6 : 0;
    const single = (modelBatch * flopsPerImage) / (gpuTflops * 1e12);
    const noOverlap = compute + serial + allreduce;
    // At best the gradient all-reduce hides behind the backward pass (about
    // two thirds of the compute).
    const overlap = compute + serial + Math.max(0, allreduce - (2 / 3) * compute);
    console.log(JSON.stringify({
      figure: 'model', gpus: N, globalBatch: modelBatch, perGpuBatch: local, gpuTflops, linkGBs, latencyUs,
      allreduceMB: +(allreduceBytes / 1e6).toFixed(1), allgatherMB: +(allgatherBytes / 1e6).toFixed(3),
      computeMs: +(compute * 1e3).toFixed(2), allreduceMs: +(allreduce * 1e3).toFixed(2), serialCommMs: +(serial * 1e3).toFixed(2),
      stepMsNoOverlap: +(noOverlap * 1e3).toFixed(2), stepMsOverlap: +(overlap * 1e3).toFixed(2),
      speedupNoOverlap: +(single / noOverlap).toFixed(2), speedupOverlap: +(single / overlap).toFixed(2),
    }));
  }
}

if (childMode) {
  child(JSON.parse(process.argv[3])).catch((err) => { process.stderr.write(`${err.code ?? ''} ${err.message}\n`); process.exit(1); });
} else {
  main().catch((err) => { console.error(err); process.exit(1); });
}
