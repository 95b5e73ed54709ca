#!/usr/bin/env node
/**
 * Manual benchmark: the fused batch norm + (residual add +) ReLU node
 * (native/models/fused_bn_relu.h) against LibTorch's batch_norm, add and
 * relu, forward + backward in training mode, at each shape where ResNet-18's
 * training forward uses it (batch 64, 128 px, standard stem), in both memory
 * formats. Inputs are the same for both; they alternate; the caching CPU
 * allocator is on, as in training. Prints one JSON line per shape and a
 * per-step total (each shape times the number of layers that use it).
 *
 *   node benchmarks/support/bn_relu_ops.js [--reps 15] [--threads 2] [--batch 64]
 */
'use strict';
const os = require('node:os');
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const reps = Number(args.reps ?? 15);
const threads = Number(args.threads ?? 2);
const B = Number(args.batch ?? 64);
process.env.TABSIGHT_THREADS = String(threads);
const ts = require('./common').library();

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
// ResNet-18 at 128 px: [channels, side, layers without a residual, layers with one].
// The stem's BN + ReLU; each basic block's bn1 + ReLU and bn2 + residual + ReLU.
// (The downsample's BN has no ReLU: LibTorch runs it either way.)
const SHAPES = [[64, 64, 1, 0], [64, 32, 2, 2], [128, 16, 2, 2], [256, 8, 2, 2], [512, 4, 2, 2]];

(async () => {
  console.log(JSON.stringify({ figure: 'machine', cpu: os.cpus()[0].model, cores: os.cpus().length, node: process.version, libtorch: ts._native().runtimeInfo().torchVersion, threads, batch: B, reps, loadavg_start: os.loadavg() }));
  for (const channelsLast of [true, false]) {
    let fused = 0, libtorch = 0;
    for (const [c, side, plain, withRes] of SHAPES) {
      for (const residual of [false, true]) {
        const layers = residual ? withRes : plain;
        if (layers === 0) continue;
        const r = await ts._native()._bnReluTiming({ shape: [B, c, side, side], channelsLast, residual, reps });
        const f = median(r.fused), l = median(r.libtorch);
        fused += layers * f;
        libtorch += layers * l;
        console.log(JSON.stringify({ figure: 'batch norm + ReLU forward + backward', memory_format: channelsLast ? 'channels_last' : 'contiguous', shape: [B, c, side, side], residual, layers_per_step: layers, fused_median_s: +f.toFixed(5), libtorch_median_s: +l.toFixed(5), fused_min_s: +Math.min(...r.fused).toFixed(5), libtorch_min_s: +Math.min(...r.libtorch).toFixed(5), speedup: +(l / f).toFixed(3) }));
      }
    }
    console.log(JSON.stringify({ figure: 'per ResNet-18 step (sum over layers)', memory_format: channelsLast ? 'channels_last' : 'contiguous', fused_s: +fused.toFixed(4), libtorch_s: +libtorch.toFixed(4), saved_s: +(libtorch - fused).toFixed(4), speedup: +(libtorch / fused).toFixed(3) }));
  }
  console.log(JSON.stringify({ figure: 'end', loadavg_end: os.loadavg() }));
})().catch((e) => { console.error(e); process.exit(1); });
