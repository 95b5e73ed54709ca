#!/usr/bin/env node
/**
 * Question: how long does tabsight's integratedGradients take for the
 * explain command's default job (50-step Gauss–Legendre IG, zero baseline,
 * 16 images) on the demo's encoder (ResNet-18, standard stem, 64 px),
 * against a Captum-style loop in Debian's PyTorch with the same weights,
 * internal batch size and threads; and how far apart are the attributions?
 *
 * Weights: a run pretrained here for 2 steps (so BatchNorm statistics are
 * real) with the demo's model options; PyTorch loads its
 * image_encoder.safetensors into torchvision's resnet18 (as
 * test/fixtures/torchvision_ref.py does). Images: the first 16 test-split
 * subjects of the synthetic cardiac cohort (n 1024, 64 px, cached), scaled
 * to [0, 1] and normalised with the run's statistics. Target: a fixed random
 * linear probe on the pooled features, class 1 (what `--target task:T`
 * explains). Both sides compute the convergence delta (two extra forward
 * passes). Captum-style loop: support/ig_captum.py.
 *
 * internalBatchSize: path points per forward/backward pass. With
 * --tune (the default), each side runs twice at every candidate after the
 * warm-up (the faster of the two counts), and each side's timed reps use its
 * own fastest size: the ratio is each side at its best. When the two sizes
 * differ, PyTorch's reps also run at tabsight's size, for the ratio at an
 * equal internal batch. --ibs K fixes the size for both instead.
 *
 *   node benchmarks/ig.js [--reps 5] [--images 16] [--steps 50] [--size 64] [--threads 2]
 *     [--tune true] [--candidates 32,64,128,160] [--ibs 64]
 *   BENCH_QUICK=1: reps 2, images 4, steps 8, no tuning (ibs 16).
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./support/common');
c.device('ig');

async function main() {
  const o = c.options({ reps: [5, 2], images: [16, 4], steps: [50, 8], size: [64, 64], threads: [2, 2], tune: [true, false], candidates: ['32,64,128,160', '16'], ibs: [64, 16] });
  process.env.TABSIGHT_THREADS = String(o.threads);
  const ts = c.library();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-ig-'));
  let py;
  try {
    const made = await c.cardiacCohort(ts, 1024, o.size);
    const cohort = await ts.loadCohort(made.dir);
    const [, ch, h, w] = cohort.images.shape;
    const per = ch * h * w;
    const store = fs.readFileSync(cohort.images.path);
    const pick = (rows) => {
      const out = new Uint8Array(rows.length * per);
      rows.forEach((r, j) => store.copy(out, j * per, cohort.images.offset + r * per, cohort.images.offset + (r + 1) * per));
      return out;
    };

    // The demo's encoder, 2 steps of pretraining on 32 train subjects.
    const run = path.join(tmp, 'run');
    const trainRows = cohort.splits.train.slice(0, 32);
    let s = 7;
    const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
    await ts.pretrain({
      out: run, images: { data: pick(trainRows), shape: [32, ch, h, w] }, tabular: { data: Float32Array.from({ length: 32 * 8 }, rnd), shape: [32, 8] },
      epochs: 1, batchSize: 16, lr: 1e-3, warmupEpochs: 0,
      model: { arch: 'resnet18', smallStem: false, tabularHidden: 512, projectionHidden: 512, projectionDim: 128 },
    });
    const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));

    // The images the encoder sees.
    const n = o.images;
    const raw = ts.resizeToFloat({ data: pick(cohort.splits.test.slice(0, n)), shape: [n, ch, h, w] });
    const x = raw.data;
    const hw = h * w;
    for (let i = 0; i < x.length; i++) {
      const k = Math.floor(i / hw) % ch;
      x[i] = (x[i] - config.normalize.mean[k]) / config.normalize.std[k];
    }
    const xFile = path.join(tmp, 'x.f32');
    fs.writeFileSync(xFile, Buffer.from(x.buffer, x.byteOffset, x.byteLength));
    const probe = { weight: Float32Array.from({ length: 2 * 512 }, () => 0.1 * rnd()), bias: [0.05, -0.05], index: 1 };
    const target = { kind: 'probe', weight: { data: probe.weight, shape: [2, 512] }, bias: probe.bias, index: probe.index };
    const model = path.join(run, 'image_encoder.safetensors');

    const ours = async (ibs) => {
      const t0 = c.now();
      const r = await ts.integratedGradients(model, { data: x, shape: [n, ch, h, w] }, { target, steps: o.steps, method: 'gausslegendre', internalBatchSize: ibs });
      return { seconds: c.now() - t0, r };
    };
    py = c.pythonWorker([path.join(__dirname, 'support', 'ig_captum.py'), JSON.stringify({
      weights: model, images: xFile, shape: [n, ch, h, w], threads: o.threads, steps: o.steps,
      probe_weight: Array.from(probe.weight), probe_shape: [2, 512], probe_bias: probe.bias, probe_index: probe.index,
    }), path.join(__dirname, '..', 'test', 'fixtures')]);
    const hello = await py.hello;
    const info = ts._native().runtimeInfo();
    // winograd_convolutions: whether tabsight's IG ran its folded 3×3 convolutions by Winograd (TABSIGHT_WINOGRAD).
    c.emit({ figure: 'machine', ...c.machine(), loadavg_start: c.loadavg(), libtorch: info.torchVersion, libtorch_threads: info.threads, pytorch: hello.torch, torchvision: hello.torchvision, pytorch_threads: hello.threads, winograd_convolutions: info.winograd.available && info.winograd.enabled });

    // Warm-up, and the attributions of both sides for the cross-check.
    const candidates = o.tune ? String(o.candidates).split(',').map(Number) : [o.ibs];
    const first = await ours(candidates[0]);
    const pyOut = path.join(tmp, 'py-attr.f32');
    const pyFirst = await py.ask({ ibs: candidates[0], out: pyOut });
    const b = fs.readFileSync(pyOut);
    const pyAttr = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < pyAttr.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(first.r.attributions[i] - pyAttr[i]));
      maxAbs = Math.max(maxAbs, Math.abs(first.r.attributions[i]));
    }

    // internalBatchSize: two runs per candidate per side, the faster counts.
    let ibs = o.ibs;
    let ibsPy = o.ibs;
    if (o.tune) {
      const tuneOurs = {};
      const tunePy = {};
      for (let round = 0; round < 2; round++) {
        for (const k of candidates) {
          tuneOurs[k] = Math.min(tuneOurs[k] ?? Infinity, c.round((await ours(k)).seconds));
          tunePy[k] = Math.min(tunePy[k] ?? Infinity, c.round((await py.ask({ ibs: k })).seconds));
        }
      }
      const fastest = (t) => Number(Object.keys(t).reduce((a, k) => (t[k] < t[a] ? k : a)));
      ibs = fastest(tuneOurs);
      ibsPy = fastest(tunePy);
      c.emit({ figure: 'internalBatchSize probe (seconds per call, faster of two calls each)', tabsight: tuneOurs, pytorch: tunePy, chosen_tabsight: ibs, chosen_pytorch: ibsPy });
    }
    c.emit({ figure: 'setup', model: 'resnet18 (standard stem), demo options', size: o.size, images: n, steps: o.steps, method: 'gausslegendre', baseline: 'zeros', target: 'linear probe 2x512, class 1', internal_batch_size: ibs, internal_batch_size_pytorch: ibsPy, path_points: n * o.steps, reps: o.reps, threads: o.threads });

    const a = [];
    const p = [];
    const pAtOurs = [];
    for (let r = 0; r < o.reps; r++) {
      const side = { ours: async () => a.push((await ours(ibs)).seconds), py: async () => p.push((await py.ask({ ibs: ibsPy })).seconds) };
      if (r % 2 === 0) { await side.ours(); await side.py(); } else { await side.py(); await side.ours(); }
      if (ibsPy !== ibs) pAtOurs.push((await py.ask({ ibs })).seconds);
    }
    c.emit({ ...c.timeFigure('tabsight integratedGradients', a, n), internal_batch_size: ibs });
    c.emit({ ...c.timeFigure('pytorch Captum-style IG loop', p, n), internal_batch_size: ibsPy });
    if (pAtOurs.length) c.emit({ ...c.timeFigure("pytorch Captum-style IG loop at tabsight's internal batch", pAtOurs, n), internal_batch_size: ibs });
    const equal = pAtOurs.length ? c.median(pAtOurs) : c.median(p);
    c.emit({ figure: o.tune ? 'ratio (pytorch median / tabsight median, each at its fastest internal batch)' : `ratio (pytorch median / tabsight median, internal batch ${ibs} for both)`, ratio: c.round(c.median(p) / c.median(a)), ratio_equal_internal_batch: c.round(equal / c.median(a)), target: 1.2, loadavg_end: c.loadavg() });
    const oursDelta = Array.from(first.r.delta ?? []);
    c.emit({
      figure: 'attribution difference (tabsight vs pytorch)', max_abs_diff: c.round(maxDiff, 3), max_abs_attribution: c.round(maxAbs, 3), relative: c.round(maxDiff / maxAbs, 3),
      max_abs_delta_tabsight: c.round(Math.max(...oursDelta.map(Math.abs)), 3), max_abs_delta_pytorch: c.round(Math.max(...pyFirst.delta.map(Math.abs)), 3),
    });
  } finally {
    if (py) await py.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
