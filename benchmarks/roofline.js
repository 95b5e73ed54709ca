#!/usr/bin/env node
/**
 * Question: what fraction of this machine's fp32 compute peak do the
 * training step and inference reach, in tabsight and in the baselines?
 *
 * Peaks, measured here:
 *   - FMA: support/fma_peak.c (built with the system C compiler), 12
 *     register-resident FMA chains per thread, AVX2 and, when the CPU has
 *     it, AVX-512; 1 thread and `threads` threads. The best of these is
 *     "the FMA peak" (on a quiet machine: `threads` threads, widest ISA).
 *   - sgemm 2048² through Debian's PyTorch (support/sgemm_peak.py): the addon
 *     exposes no GEMM, so this uses the same libtorch_cpu.so.1.13 and the same
 *     BLAS library the addon links; the 'libraries' line shows both ldd
 *     resolutions so this can be checked.
 * Work, analytic (support/flops.js, conv and linear multiply-adds × 2):
 *   ResNet-18 at `size` px, standard stem: inference = the trunk to the
 *   pooled features; the multimodal CLIP training step of train-step.js
 *   (tabular MLP 100 → 2048 → 2048, heads → 2048 → 128) ≈ 3 × forward.
 * Achieved: images/s × FLOPs per image, for
 *   - train step: tabsight's native trainer and PyTorch (train-step.js),
 *   - inference: onnxruntime, LibTorch (Run.embed) and PyTorch (inference.js).
 * Where the addon has the Winograd convolutions (runtimeInfo().winograd),
 * tabsight's training runs its 3×3 stride-1 layers with about a quarter of
 * the multiplications the direct count assumes. Its train-step percentages
 * are then effective rates (direct-convolution FLOPs per second), marked
 * `effective_winograd`; the line "Winograd off" is the same step with
 * LibTorch's direct convolutions, an arithmetic rate like the others.
 * The images/s come from the train-step and inference results of the same
 * `npm run bench` run when run.js passes them (TABSIGHT_BENCH_RESULTS);
 * otherwise (or with --fresh) this script runs train-step.js
 * (--rounds 2 --steps 3) and inference.js (--reps 3 --images 128) itself and
 * reads their JSON lines. Each 'achieved' line says where its numbers came
 * from and the load average they were measured under.
 *
 *   node benchmarks/roofline.js [--threads 2] [--size 128] [--fresh false]
 *   BENCH_QUICK=1: sgemm 1024², and the child runs are minimal.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const c = require('./support/common');
c.device('roofline');
const { resnet18Flops } = require('./support/flops');

function runJsonLines(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  if (r.status !== 0) throw new Error(`${path.basename(args[0] ?? cmd)} failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

function lddResolve(file) {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const out = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(libtorch_cpu\S*|libblas\S*|libopenblas\S*|libdnnl\S*|libgomp\S*) => (\S+)/.exec(line);
    if (m) out[m[1]] = fs.existsSync(m[2]) ? fs.realpathSync(m[2]) : m[2];
  }
  return out;
}

function fmaPeaks(tmp, threads, flags) {
  const bin = path.join(tmp, 'fma_peak');
  const cc = spawnSync('cc', ['-O2', '-pthread', '-o', bin, path.join(__dirname, 'support', 'fma_peak.c')], { encoding: 'utf8' });
  if (cc.status !== 0) return { error: `cc failed: ${cc.stderr || cc.error}` };
  const isas = ['avx2', ...(flags.includes('avx512f') ? ['avx512'] : [])].filter((isa) => isa !== 'avx2' || (flags.includes('avx2') && flags.includes('fma')));
  const out = [];
  for (const isa of isas) {
    for (const t of [...new Set([1, threads])]) out.push(runJsonLines(bin, [isa, String(t)])[0]);
  }
  return { results: out };
}

/** images/s figures of train-step.js and inference.js: from this suite run, or measured now. */
function achievedInputs(o) {
  const dir = process.env.TABSIGHT_BENCH_RESULTS;
  const read = (name) => {
    const f = dir && path.join(dir, `${name}.jsonl`);
    if (o.fresh || !f || !fs.existsSync(f)) return null;
    const lines = fs.readFileSync(f, 'utf8').trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    return lines.length ? { source: `reused from ${f}`, lines } : null;
  };
  const env = { ...process.env };
  const train = read('train-step') ?? {
    source: 'measured now by train-step.js',
    lines: runJsonLines(process.execPath, [path.join(__dirname, 'train-step.js'), ...(o.quick ? ['--rounds', '1', '--steps', '1'] : ['--rounds', '2', '--steps', '3']), '--threads', String(o.threads)], { env }),
  };
  const infer = read('inference') ?? {
    source: 'measured now by inference.js',
    lines: runJsonLines(process.execPath, [path.join(__dirname, 'inference.js'), ...(o.quick ? ['--reps', '1', '--images', '64'] : ['--reps', '3', '--images', '128']), '--threads', String(o.threads), '--size', String(o.size)], { env }),
  };
  return { train, infer };
}

async function main() {
  const o = c.options({ threads: [2, 2], size: [128, 128], fresh: [false, false], sgemmN: [2048, 1024], sgemmReps: [5, 2] });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-roofline-'));
  try {
    // Loading the addon sets OPENBLAS_CORETYPE (docs/api.md, "BLAS"); the
    // sgemm probe below inherits it, as the train-step and inference
    // baselines do.
    const blasCore = c.library()._native().runtimeInfo().blasCore;
    const m = c.machine();
    c.emit({ figure: 'machine', ...m, loadavg_start: c.loadavg(), blas_core: blasCore });
    const addon = process.env.TABSIGHT_ADDON ? path.resolve(process.env.TABSIGHT_ADDON) : path.join(c.ROOT, 'build', 'Release', 'tabsight.node');
    const torchC = spawnSync(c.PYTHON, ['-c', 'import torch._C as m; print(m.__file__)'], { encoding: 'utf8' }).stdout.trim();
    const libs = { addon: lddResolve(addon), pytorch: torchC ? lddResolve(torchC) : null };
    const same = libs.addon && libs.pytorch && ['libtorch_cpu.so.1.13', 'libblas.so.3'].every((k) => libs.addon[k] && libs.addon[k] === libs.pytorch[k]);
    c.emit({ figure: 'libraries (ldd, resolved)', addon: addon, ...libs, same_libtorch_and_blas: !!same });

    const fma = fmaPeaks(tmp, o.threads, m.cpu_flags.split(' '));
    if (fma.error) c.emit({ figure: 'fma peak', error: fma.error });
    for (const r of fma.results ?? []) c.emit({ figure: `fma peak ${r.isa} ${r.threads} thread${r.threads > 1 ? 's' : ''}`, gflops: c.round(r.gflops), seconds: c.round(r.seconds) });
    const sg = runJsonLines(c.PYTHON, [path.join(__dirname, 'support', 'sgemm_peak.py'), String(o.sgemmN), [...new Set([1, o.threads])].join(','), String(o.sgemmReps)]);
    for (const r of sg) c.emit({ figure: `sgemm ${r.n}x${r.n} ${r.threads} thread${r.threads > 1 ? 's' : ''} (torch.mm, Debian PyTorch)`, best_gflops: c.round(r.best_gflops), median_gflops: c.round(r.median_gflops), blas: r.blas.join('; ') });

    // The peak is the best configuration measured (on a quiet machine, `threads` threads of the widest ISA).
    const peakFma = Math.max(0, ...(fma.results ?? []).map((r) => r.gflops));
    const peakSgemm = Math.max(...sg.map((r) => r.best_gflops));

    const { train, infer } = achievedInputs(o);
    const tm = train.lines.find((l) => l.figure === 'machine') ?? {};
    const im = infer.lines.find((l) => l.figure === 'machine') ?? {};
    const trainFlops = resnet18Flops({ size: tm.size ?? 128, tabularIn: 100, batch: tm.batch ?? 64 });
    const inferFlops = resnet18Flops({ size: im.size ?? o.size, batch: im.batch ?? 64 });
    c.emit({
      figure: 'analytic FLOPs per image (conv + linear, 2 x MACs)', train_size: tm.size ?? 128, inference_size: im.size ?? o.size,
      inference_gflop: c.round(inferFlops.inference / 1e9), train_forward_gflop: c.round(trainFlops.trainForward / 1e9),
      train_step_gflop_3x: c.round(trainFlops.train / 1e9), train_step_gflop_exact: c.round(trainFlops.trainExact / 1e9),
      trunk_gmac: c.round(trainFlops.trunkMacs / 1e9), heads_gmac: c.round(trainFlops.headMacs / 1e9),
    });
    // gflops and the percentages use the usual count (a step = 3 × forward);
    // the _exact figures leave out the image stem's input gradient, which
    // the step does not compute (support/flops.js).
    const achieved = (label, ips, flopsPerImage, source, load, exactPerImage = flopsPerImage, extra = {}) => {
      const g = ips * flopsPerImage / 1e9;
      const exact = exactPerImage !== flopsPerImage ? { pct_of_fma_peak_exact: c.round(100 * ips * exactPerImage / 1e9 / peakFma, 3) } : {};
      c.emit({
        figure: `achieved: ${label}`, images_per_s: c.round(ips), gflops: c.round(g), pct_of_fma_peak: c.round(100 * g / peakFma, 3), ...exact,
        pct_of_sgemm: c.round(100 * g / peakSgemm, 3), ...extra, source, measured_under_loadavg: load,
      });
    };
    const pick = (lines, name) => lines.find((l) => l.figure === name)?.images_per_s;
    const trainLoad = train.lines.find((l) => 'loadavg_end' in l)?.loadavg_end ?? tm.loadavg;
    const inferLoad = infer.lines.find((l) => 'loadavg_end' in l)?.loadavg_end ?? im.loadavg_start;
    for (const [label, name] of [['train step, tabsight', 'tabsight train step'], ['train step, PyTorch', 'pytorch train step'],
      ['train step, tabsight NCHW', 'tabsight train step, memoryFormat contiguous'], ['train step, PyTorch channels_last', 'pytorch train step, channels_last'],
      ['train step, tabsight fused batch norm + ReLU off', 'tabsight train step, LibTorch batch norm + ReLU (fused node off)'],
      ['train step, tabsight Winograd off (direct convolutions)', 'tabsight train step, LibTorch direct convolutions (Winograd off)']]) {
      const v = pick(train.lines, name);
      const effective = tm.winograd === true && name.startsWith('tabsight') && !name.includes('Winograd off');
      const extra = effective ? { effective_winograd: 'the 3x3 stride-1 convolutions ran as Winograd, with fewer multiplications than counted' } : {};
      if (v !== undefined) achieved(label, v, trainFlops.train, train.source, trainLoad, trainFlops.trainExact, extra);
    }
    for (const [label, name] of [['inference, onnxruntime', 'onnxruntime'], ['inference, LibTorch (tabsight)', 'libtorch'], ['inference, PyTorch', 'pytorch'],
      ['inference, LibTorch NCHW', 'libtorch, NCHW'], ['inference, PyTorch channels_last', 'pytorch, channels_last']]) {
      const v = pick(infer.lines, name);
      if (v !== undefined) achieved(label, v, inferFlops.inference, infer.source, inferLoad);
    }
    const overloaded = os.loadavg()[0] > os.cpus().length;
    c.emit({
      figure: 'peaks used', fma_gflops: c.round(peakFma), sgemm_gflops: c.round(peakSgemm), threads: o.threads, loadavg_end: c.loadavg(),
      ...(overloaded ? { warning: 'load average above the core count: the peaks (and so the percentages) are not meaningful' } : {}),
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
