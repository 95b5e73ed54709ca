#!/usr/bin/env node
/**
 * Manual profile: where the CPU train step's convolution time goes, kernel
 * by kernel. Runs train-step.js's step (ResNet-18, 128 px, batch 64,
 * 2 threads) on both sides: tabsight's trainer in its default layout
 * (channels_last) and PyTorch's step in channels_last
 * (support/train_step_torch.py). Each runs in a child process with oneDNN's
 * verbose mode (DNNL_VERBOSE=1), which times every primitive it executes.
 * Prints one JSON line per (side, primitive, direction, shape,
 * implementation) with its milliseconds per step and, for convolutions,
 * its GFLOP/s, then per side the totals against the step's wall time
 * measured in the same process:
 *   - conv_ms_per_step, reorder_ms_per_step (oneDNN's weight and activation
 *     layout changes), step_s_median, and the share of the step in each;
 *   - conv_gflops: the convolutions' analytic FLOPs (2 × MACs from each
 *     primitive's shape; forward, backward-data and backward-weights each
 *     count their own product) over their time.
 * The FMA peak (support/fma_peak.c, as roofline.js measures it) is measured
 * before and after the two profiles; percentages are of the higher one.
 *
 *   node benchmarks/support/conv_kernels.js [--steps 3] [--warmup 2] [--threads 2] [--side both|ours|pytorch]
 *
 * The verbose mode adds a print per primitive (about 60 a step); the step
 * times it reports are those of the profiled run. Not part of
 * `npm run bench`.
 */
'use strict';
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const steps = Number(args.steps ?? 3);
const warmup = Number(args.warmup ?? 2);
const threads = Number(args.threads ?? 2);
const side = args.side ?? 'both';
const B = 64, S = 128, F = 100;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const round = (x, d = 4) => +x.toFixed(d);

// The child that runs tabsight's step: train-step.js's configuration.
async function oursChild() {
  process.env.TABSIGHT_THREADS = String(threads);
  const ts = require('./common').library();
  const n = B * (warmup + steps);
  const images = new Uint8Array(n * 3 * S * S).map((_, i) => (i * 2654435761) >>> 24);
  const tabular = new Float32Array(n * F).map((_, i) => Math.sin(i));
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-conv-kernels-'));
  const secs = [];
  try {
    await ts.pretrain({
      out, images: { data: images, shape: [n, 3, S, S] }, tabular: { data: tabular, shape: [n, F] }, epochs: 1, batchSize: B,
      warmupEpochs: 0, augment: { rate: 0 }, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
      model: { arch: 'resnet18', smallStem: false, tabularHidden: 2048, tabularLayers: 2, projectionHidden: 2048, projectionDim: 128 },
    }, { onProgress: (p) => secs.push(B / p.imagesPerSec) });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ step_s: secs.slice(warmup), libtorch: ts._native().runtimeInfo().torchVersion }));
}

// MACs of a convolution from oneDNN's problem descriptor, e.g.
// mb64_ic3oc64_ih128oh64kh7sh2dh0ph3_iw128ow64kw7sw2dw0pw3.
function convMacs(desc) {
  // Each key appears once (g only with groups; the w keys only when they differ from h in some versions).
  const get = (k, dflt) => { const m = desc.match(new RegExp(`${k}(\\d+)`)); return m ? Number(m[1]) : dflt; };
  const g = get('g', 1), ic = get('ic'), oc = get('oc'), oh = get('oh'), kh = get('kh');
  return get('mb', 1) * oc * (ic / g) * kh * get('kw', kh) * oh * get('ow', oh);
}

// Runs one side under oneDNN's verbose mode; returns its kernel rows and totals.
function profile(name, cmd, cmdArgs, env) {
  const r = spawnSync(cmd, cmdArgs, { env: { ...process.env, ...env, DNNL_VERBOSE: '1' }, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const lines = r.stdout.split('\n');
  const result = JSON.parse(lines.filter((l) => l.startsWith('{')).pop());
  // Step boundaries: the stem's forward convolution (3 input channels) starts each step.
  const exec = lines.filter((l) => /^(onednn|dnnl)_verbose,exec,/.test(l)).map((l) => l.split(','));
  let stepIndex = -1;
  const groups = new Map();
  let conv = 0, reorder = 0, other = 0, flops = 0;
  for (const f of exec) {
    const [prim, impl, prop] = [f[3], f[4], f[5]];
    const desc = f[f.length - 2], ms = Number(f[f.length - 1]);
    if (prim === 'convolution' && prop === 'forward_training' && /(^|_)ic3oc/.test(desc)) stepIndex++;
    if (stepIndex < warmup) continue;
    const key = `${prim}|${prop}|${desc}|${impl}`;
    const e = groups.get(key) ?? { prim, prop, desc, impl, ms: 0, count: 0, flops: 0 };
    e.ms += ms;
    e.count++;
    if (prim === 'convolution') {
      const fl = 2 * convMacs(desc);
      e.flops += fl;
      flops += fl;
      conv += ms;
    } else if (prim === 'reorder') {
      reorder += ms;
    } else {
      other += ms;
    }
    groups.set(key, e);
  }
  const measured = stepIndex + 1 - warmup;
  if (measured < 1) throw new Error(`${name}: no measured steps in the verbose output`);
  const rows = [...groups.values()].sort((a, b) => b.ms - a.ms).map((e) => ({
    figure: 'kernel', side: name, primitive: e.prim, direction: e.prop, shape: e.desc, implementation: e.impl,
    ms_per_step: round(e.ms / measured, 3), calls_per_step: round(e.count / measured, 2),
    ...(e.flops ? { gflops: round(e.flops / e.ms / 1e6, 1) } : {}),
  }));
  const stepS = median(result.step_s);
  const totals = {
    figure: 'totals', side: name, measured_steps: measured, step_s_median: round(stepS), step_s: result.step_s.map((x) => round(x)),
    conv_ms_per_step: round(conv / measured, 1), reorder_ms_per_step: round(reorder / measured, 1), other_onednn_ms_per_step: round(other / measured, 1),
    conv_share_of_step: round(conv / measured / 1000 / stepS, 3), reorder_share_of_step: round(reorder / measured / 1000 / stepS, 3),
    conv_gflop_per_step: round(flops / measured / 1e9, 1), conv_gflops: round(flops / conv / 1e6, 1),
  };
  return { rows, totals };
}

// The FMA peak as roofline.js measures it (support/fma_peak.c, `threads`
// threads, the widest ISA the CPU has), in this run: the best of the calls.
function fmaPeak() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-fma-'));
  try {
    const bin = path.join(tmp, 'fma_peak');
    const cc = spawnSync('cc', ['-O2', '-pthread', '-o', bin, path.join(__dirname, 'fma_peak.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr || cc.error}`);
    const isa = fs.readFileSync('/proc/cpuinfo', 'utf8').includes('avx512f') ? 'avx512' : 'avx2';
    const r = spawnSync(bin, [isa, String(threads)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`fma_peak failed: ${r.stderr}`);
    return { isa, gflops: JSON.parse(r.stdout.trim().split('\n').pop()).gflops };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main() {
  if (args.child === 'ours') return oursChild();
  console.log(JSON.stringify({ figure: 'machine', cpu: os.cpus()[0].model, cores: os.cpus().length, node: process.version, threads, batch: B, size: S, steps, warmup, loadavg_start: os.loadavg() }));
  // The addon sets OPENBLAS_CORETYPE when it loads; the PyTorch child gets the same kernels.
  require('./common').library();
  const peaks = [fmaPeak()];
  const sides = [];
  if (side === 'both' || side === 'ours') {
    sides.push(profile('tabsight', process.execPath, [__filename, '--child', 'ours', '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads)], {}));
  }
  if (side === 'both' || side === 'pytorch') {
    const cfg = { device: 'cpu', threads, arch: 'resnet18', batch: B, size: S, features: F, steps, warmup, precision: 'fp32', memory_format: 'channels_last' };
    sides.push(profile('pytorch', require('./common').PYTHON, [path.join(__dirname, 'train_step_torch.py'), JSON.stringify(cfg)], {}));
  }
  peaks.push(fmaPeak());
  console.log(JSON.stringify({ figure: 'fma peak before and after', isa: peaks[0].isa, threads, gflops: peaks.map((p) => round(p.gflops, 1)) }));
  const peak = Math.max(...peaks.map((p) => p.gflops));
  const pct = (g) => round(100 * g / peak, 1);
  for (const { rows, totals } of sides) {
    for (const r of rows) console.log(JSON.stringify(r.gflops ? { ...r, pct_of_peak: pct(r.gflops) } : r));
    console.log(JSON.stringify({ ...totals, peak_gflops: round(peak, 1), conv_pct_of_peak: pct(totals.conv_gflops) }));
  }
  console.log(JSON.stringify({ figure: 'done', loadavg_end: os.loadavg() }));
}

main().catch((e) => { console.error(e); process.exit(1); });
