#!/usr/bin/env node
/**
 * Manual benchmark: the Winograd convolution node
 * (native/models/winograd_conv.h) against LibTorch's conv2d, forward +
 * backward (input and weight gradients), at each 3×3 stride-1 shape of
 * ResNet-18's training step (batch 64, 128 px, standard stem; --size 64 gives
 * the maps of ig.js's 64 px images, 16×16 down to 2×2), in both memory
 * formats. The node's time includes its layout reorders. Inputs are the same
 * for both; they alternate; the caching CPU allocator is on, as in training.
 * Prints one JSON line per shape with the GFLOP/s of the direct count, and a
 * per-step total (each shape times the number of layers that use it).
 *
 *   node benchmarks/support/winograd_ops.js [--reps 9] [--threads 2] [--batch 64] [--size 128]
 */
'use strict';
const os = require('node:os');
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const reps = Number(args.reps ?? 9);
const threads = Number(args.threads ?? 2);
const B = Number(args.batch ?? 64);
const size = Number(args.size ?? 128);
process.env.TABSIGHT_THREADS = String(threads);
const ts = require('./common').library();

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
// ResNet-18 (standard stem) at `size` px: [channels, side, stride-1 3×3
// layers]. layer1 has 4; each later stage 3 (its first block's conv1 has
// stride 2). The stem and its max-pool divide the side by 4.
const SHAPES = [[64, size / 4, 4], [128, size / 8, 3], [256, size / 16, 3], [512, size / 32, 3]];
if (!SHAPES.every(([, side]) => Number.isInteger(side) && side >= 1)) throw new Error(`--size must be a multiple of 32, got ${size}`);

(async () => {
  const info = ts._native().runtimeInfo();
  if (!info.winograd.available) throw new Error(`Winograd convolutions are unavailable in this build: ${info.winograd.reason}`);
  console.log(JSON.stringify({ figure: 'machine', cpu: os.cpus()[0].model, cores: os.cpus().length, node: process.version, libtorch: info.torchVersion, threads, batch: B, size, reps, loadavg_start: os.loadavg() }));
  for (const channelsLast of [true, false]) {
    let wino = 0, libtorch = 0;
    for (const [c, side, layers] of SHAPES) {
      const r = await ts._native()._winogradTiming({ shape: [B, c, side, side], outChannels: c, channelsLast, reps });
      const w = median(r.winograd), l = median(r.libtorch);
      // forward, input gradient, weight gradient: 3 × 2 × MACs of the direct convolution
      const gflop = 3 * 2 * B * c * c * 9 * side * side / 1e9;
      wino += layers * w;
      libtorch += layers * l;
      console.log(JSON.stringify({ figure: '3x3 convolution forward + backward', memory_format: channelsLast ? 'channels_last' : 'contiguous', shape: [B, c, side, side], layers_per_step: layers, winograd_median_s: +w.toFixed(5), libtorch_median_s: +l.toFixed(5), winograd_min_s: +Math.min(...r.winograd).toFixed(5), libtorch_min_s: +Math.min(...r.libtorch).toFixed(5), direct_gflop: +gflop.toFixed(3), winograd_effective_gflops: +(gflop / w).toFixed(1), libtorch_gflops: +(gflop / l).toFixed(1), speedup: +(l / w).toFixed(3) }));
    }
    console.log(JSON.stringify({ figure: 'per ResNet-18 step (sum over layers)', memory_format: channelsLast ? 'channels_last' : 'contiguous', winograd_s: +wino.toFixed(4), libtorch_s: +libtorch.toFixed(4), saved_s: +(libtorch - wino).toFixed(4), speedup: +(libtorch / wino).toFixed(3) }));
  }
  console.log(JSON.stringify({ figure: 'end', loadavg_end: os.loadavg() }));
})().catch((e) => { console.error(e); process.exit(1); });
