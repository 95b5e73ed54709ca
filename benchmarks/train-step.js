#!/usr/bin/env node
/**
 * Question: how fast is one multimodal CLIP training step in tabsight's
 * native trainer, against Debian's PyTorch running the same model, loss,
 * optimiser and batch?
 *
 * Model: ResNet-18 image encoder at 128 px (standard stem), tabular MLP
 * Linear(100, 2048) + [BN, ReLU, Linear(2048, 2048)], projection heads
 * 2048/512 → 2048 → 128, CLIP loss (τ 0.1, λ 0.5), Adam, batch 64.
 * Augmentation is off on both sides (this measures the step, not the data
 * path). Ours: the step time the trainer reports (forward, loss, backward,
 * Adam). PyTorch: the same four, timed with perf_counter in
 * support/train_step_torch.py (/usr/bin/python3, or $TABSIGHT_PYTHON).
 * Rounds alternate ours / PyTorch; each round times `steps` steps after one
 * warm-up step. --precision bf16 autocasts both sides; --device cuda runs
 * both on the GPU (PyTorch with cudnn.benchmark, as tabsight sets it on
 * CUDA). Prints JSON lines.
 *
 * Memory format: ours runs with the trainer's default memoryFormat ('auto':
 * channels_last on CPUs with AVX-512 or in bf16, else NCHW on the CPU; NCHW on CUDA;
 * trainingMemoryFormat in lib/cpu.ts); PyTorch runs NCHW, as MMCL does.
 * That pair gives the headline ratio. With --layouts true (the default on
 * the CPU) each round also runs ours in the other layout and PyTorch with
 * channels_last, so the gain from the layout and the ratio at equal
 * layouts are measured in the same run.
 *
 * Fused batch norm + ReLU: ours runs the ResNet's training batch norm, residual
 * add and ReLU as one native node on the CPU (native/models/fused_bn_relu.h).
 * With --fused-ab true (the default on the CPU) each round also runs ours
 * with it switched off (LibTorch's ops, as before), so its gain is measured
 * in the same run.
 *
 * Winograd: ours runs the ResNet's training 3×3 stride-1 convolutions as
 * oneDNN's Winograd kernels where the addon was built with oneDNN
 * (native/models/winograd_conv.h; runtimeInfo().winograd). With
 * --winograd-ab true (the default where it is available) each round also
 * runs ours with it switched off (LibTorch's direct convolutions), so its
 * gain is measured in the same run.
 *
 *   node benchmarks/train-step.js [--rounds 3] [--steps 4] [--threads N]
 *     [--device cpu|cuda] [--precision fp32|bf16] [--layouts true|false]
 *     [--fused-ab true|false]
 *     [--winograd-ab true|false]
 */
'use strict';
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const rounds = Number(args.rounds ?? 3);
const steps = Number(args.steps ?? 4);
const threads = Number(args.threads ?? os.availableParallelism());
const device = String(args.device ?? 'cpu');
const precision = String(args.precision ?? 'fp32');
const layouts = String(args.layouts ?? (device === 'cpu')) === 'true';
const fusedAb = String(args['fused-ab'] ?? (device === 'cpu')) === 'true';
process.env.TABSIGHT_THREADS = String(threads);
// library() loads the addon, which sets OPENBLAS_CORETYPE for the PyTorch side started afterwards.
const common = require('./support/common');
const ts = common.library();

const B = 64, S = 128, F = 100;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

// What memoryFormat 'auto' trains in here (channels_last on CPUs with AVX-512, NCHW
// without it and on CUDA), and the other layout for the A/B.
const oursLayout = ts.trainingMemoryFormat(device, undefined, precision);
const otherLayout = oursLayout === 'channels_last' ? 'contiguous' : 'channels_last';
const winogradAvailable = ts._native().runtimeInfo().winograd.available && device === 'cpu';
const winogradAb = String(args['winograd-ab'] ?? winogradAvailable) === 'true';

async function ours(tmp, memoryFormat = 'auto', fused = true, winograd = true) {
  const before = ts._native()._fusedBnRelu(fused);
  const beforeWinograd = ts._native()._winograd(winograd);
  try {
    return await oursStep(tmp, memoryFormat);
  } finally {
    ts._native()._fusedBnRelu(before);
    ts._native()._winograd(beforeWinograd);
  }
}

async function oursStep(tmp, memoryFormat) {
  const n = B * (steps + 1);
  const images = new Uint8Array(n * 3 * S * S).map((_, i) => (i * 2654435761) >>> 24);
  const tabular = new Float32Array(n * F).map((_, i) => Math.sin(i));
  const times = [];
  const out = fs.mkdtempSync(path.join(tmp, 'ours-'));
  await ts.pretrain({
    out, images: { data: images, shape: [n, 3, S, S] }, tabular: { data: tabular, shape: [n, F] }, epochs: 1, batchSize: B,
    warmupEpochs: 0, augment: { rate: 0 }, device, precision, memoryFormat, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    model: { arch: 'resnet18', smallStem: false, tabularHidden: 2048, tabularLayers: 2, projectionHidden: 2048, projectionDim: 128 },
  }, { onProgress: (p) => { if (p.step > 1) times.push(B / p.imagesPerSec); } });
  return times;
}

function pytorch(memoryFormat = 'contiguous') {
  const cfg = { device, threads, arch: 'resnet18', batch: B, size: S, features: F, steps, warmup: 1, precision, cudnn_benchmark: device !== 'cpu', memory_format: memoryFormat };
  const r = spawnSync(common.PYTHON, [path.join(__dirname, 'support', 'train_step_torch.py'), JSON.stringify(cfg)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch baseline failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).step_s;
}

(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-'));
  const info = ts._native().runtimeInfo();
  console.log(JSON.stringify({ figure: 'machine', ...common.machine(), libtorch: info.torchVersion, blas_core: info.blasCore, threads, device, precision, batch: B, size: S, winograd: winogradAvailable, loadavg: os.loadavg() }));
  const a = [], b = [], a2 = [], b2 = [], a3 = [], a4 = [];
  try {
    for (let r = 0; r < rounds; r++) {
      a.push(...await ours(tmp));
      b.push(...pytorch());
      if (layouts) {
        a2.push(...await ours(tmp, otherLayout));
        b2.push(...pytorch('channels_last'));
      }
      if (fusedAb) a3.push(...await ours(tmp, 'auto', false));
      if (winogradAb) a4.push(...await ours(tmp, 'auto', true, false));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const fig = (name, xs) => ({ figure: name, steps: xs.length, median_s: +median(xs).toFixed(4), min_s: +Math.min(...xs).toFixed(4), max_s: +Math.max(...xs).toFixed(4), images_per_s: +(B / median(xs)).toFixed(2) });
  console.log(JSON.stringify({ ...fig('tabsight train step', a), memory_format: oursLayout }));
  console.log(JSON.stringify({ ...fig('pytorch train step', b), memory_format: 'contiguous' }));
  if (layouts) {
    console.log(JSON.stringify({ ...fig(`tabsight train step, memoryFormat ${otherLayout}`, a2), memory_format: otherLayout }));
    console.log(JSON.stringify({ ...fig('pytorch train step, channels_last', b2), memory_format: 'channels_last' }));
    const [oursNchw, oursNhwc] = oursLayout === 'contiguous' ? [a, a2] : [a2, a];
    console.log(JSON.stringify({ figure: 'ratio at equal layouts (pytorch median / tabsight median, both NCHW)', ratio: +(median(b) / median(oursNchw)).toFixed(3) }));
    console.log(JSON.stringify({ figure: 'ratio at equal layouts (pytorch median / tabsight median, both channels_last)', ratio: +(median(b2) / median(oursNhwc)).toFixed(3) }));
    console.log(JSON.stringify({ figure: `memory format gain (tabsight ${otherLayout} median / tabsight default median)`, ratio: +(median(a2) / median(a)).toFixed(3) }));
  }
  if (fusedAb) {
    console.log(JSON.stringify({ ...fig('tabsight train step, LibTorch batch norm + ReLU (fused node off)', a3), memory_format: oursLayout }));
    console.log(JSON.stringify({ figure: 'fused batch norm + ReLU gain (tabsight fused-off median / tabsight default median)', ratio: +(median(a3) / median(a)).toFixed(3) }));
  }
  if (winogradAb) {
    console.log(JSON.stringify({ ...fig('tabsight train step, LibTorch direct convolutions (Winograd off)', a4), memory_format: oursLayout }));
    console.log(JSON.stringify({ figure: 'Winograd gain (tabsight Winograd-off median / tabsight default median)', ratio: +(median(a4) / median(a)).toFixed(3) }));
  }
  console.log(JSON.stringify({ figure: 'ratio (pytorch median / tabsight median)', ratio: +(median(b) / median(a)).toFixed(3), loadavg_end: os.loadavg() }));
})().catch((e) => { console.error(e); process.exit(1); });
