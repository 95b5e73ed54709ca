#!/usr/bin/env node
/**
 * Question: how many training samples per second per core does the data
 * path alone deliver: tabsight's batched native augmentation and tabular
 * corruption against iterating an MMCL-style torchvision Dataset?
 *
 * A sample is what one CLIP step consumes: one augmented image view (MMCL's
 * cardiac view: flip, rotation 45°, colour jitter 0.5, random resized crop
 * scale 0.2–1, applied with rate 0.95, otherwise only resized; uint8 in,
 * float32 out) and one corrupted (rate 0.3), one-hot encoded tabular row, of
 * a subject of the synthetic cardiac cohort's train split (the cached cohort
 * epoch.js uses, n 1024 at 128 px by default). Per-channel normalisation is
 * left out on both sides (the public augmentBatch does not normalise; the
 * trainer does it natively after augmenting).
 *
 * Ours, per batch of `batch`: copy the batch's rows out of images.npy (read
 * once into memory, as the trainer reads them from the mapped store) into
 * one Uint8Array, augmentBatch (on the CPU the fused per-sample kernel,
 * parallel over samples on LibTorch's intra-op threads, writing into one of
 * two Float32Arrays used in turn, as the trainer reuses its batch memory;
 * TABSIGHT_AUGMENT_REFERENCE=1 runs the batched tensor ops instead),
 * corruptTabular and encodeTabular (native, batched).
 * Measured with `threads` intra-op threads and again with 1; samples/s per
 * core divides by the threads used. A third variant lets augmentBatch
 * allocate a fresh output per batch (`threads` threads), which adds the page
 * faults of 12.6 MB of new memory per batch of 64 at 128 px.
 * Theirs (support/mmcl_baseline.py, datapath mode): a DataLoader with
 * num_workers=0 (one process, torch at 1 thread) over the Dataset, which
 * transforms each sample on its own, with torchvision's tensor transforms
 * (MMCL's way) and, separately, the same transforms on PIL images.
 *
 * After one warm-up rep of every variant, `reps` rounds alternate the
 * variants (rotating their order); each rep processes `samples` samples.
 * A profile line splits ours (1 thread, one batch) into the augmentation
 * with and without colour jitter, the resize-only path, and the tabular
 * corruption + encoding.
 *
 *   node benchmarks/data-path.js [--reps 5] [--samples 512] [--batch 64] [--threads 2] [--n 1024] [--size 128]
 *   BENCH_QUICK=1: reps 2, samples 128, n 160, size 64.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./support/common');
c.device('data-path');
const { cohortInputs } = require('./support/cohort-inputs');

async function main() {
  const o = c.options({ reps: [5, 2], samples: [512, 128], batch: [64, 64], threads: [2, 2], n: [1024, 160], size: [128, 64] });
  process.env.TABSIGHT_THREADS = String(o.threads);
  const ts = c.library();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-data-path-'));
  let py;
  try {
    const made = await c.cardiacCohort(ts, o.n, o.size);
    const inputs = await cohortInputs(ts, made.dir, tmp);
    const [, ch, h, w] = inputs.shape;
    const per = ch * h * w;
    const store = fs.readFileSync(inputs.images);
    const F = inputs.features;
    const M = inputs.rows.length;
    const B = o.batch;
    const augment = { ...ts.MMCL_CARDIAC_AUGMENT, outSize: [o.size, o.size] };
    const batchImages = new Uint8Array(B * per);
    const batchRows = new Float32Array(B * F);
    let seed = 1;
    let lcg = 12345;
    const rand = (k) => { lcg = (Math.imul(lcg, 1664525) + 1013904223) >>> 0; return lcg % k; };

    // Two output arrays, alternated, as a loader (and the trainer, through its
    // caching allocator) reuses its batch memory; `fresh` lets augmentBatch
    // allocate a new output per batch instead.
    const outputs = [0, 1].map(() => new Float32Array(B * ch * o.size * o.size));
    const oursRep = async (threads, fresh = false) => {
      ts._native().setThreads(threads);
      const batches = Math.floor(o.samples / B);
      const t0 = c.now();
      for (let b = 0; b < batches; b++) {
        for (let j = 0; j < B; j++) {
          const i = rand(M); // position in the train split
          const r = inputs.rows[i];
          store.copy(batchImages, j * per, inputs.imageOffset + r * per, inputs.imageOffset + (r + 1) * per);
          batchRows.set(inputs.tabular.subarray(i * F, (i + 1) * F), j * F);
        }
        const s = seed++;
        const view = await ts.augmentBatch({ data: batchImages, shape: [B, ch, h, w] }, augment, s, fresh ? undefined : outputs[b % 2]);
        const corrupted = ts.corruptTabular(batchRows, [B, F], inputs.tabular, M, 0.3, s);
        const encoded = ts.encodeTabular(corrupted, [B, F], inputs.cardinalities);
        if (view.data.length !== B * ch * o.size * o.size || encoded.shape[0] !== B) throw new Error('unexpected output shape');
      }
      return { seconds: c.now() - t0, samples: batches * B };
    };

    py = c.pythonWorker([path.join(__dirname, 'support', 'mmcl_baseline.py'), 'datapath', JSON.stringify({
      images: inputs.images, rows: inputs.files.rows, tabular: inputs.files.tabular, cardinalities: inputs.cardinalities,
      size: o.size, rate: 0.95, corruption: 0.3, mean: inputs.normalize.mean, std: inputs.normalize.std, batch: B, seed: 0,
    })]);
    const hello = await py.hello;
    const info = ts._native().runtimeInfo();
    c.emit({ figure: 'machine', ...c.machine(), loadavg_start: c.loadavg(), libtorch: info.torchVersion, ...Object.fromEntries(Object.entries(hello).map(([k, v]) => [`py_${k}`, v])) });
    c.emit({ figure: 'setup', cohort: `synthetic cardiac n=${o.n} size=${o.size}`, cohort_seconds: made.seconds, train_rows: M, tabular_features: F, batch: B, samples_per_rep: o.samples, reps: o.reps, threads: o.threads });

    const variants = {
      [`tabsight ${o.threads} threads`]: { cores: o.threads, run: () => oursRep(o.threads) },
      'tabsight 1 thread': { cores: 1, run: () => oursRep(1) },
      [`tabsight ${o.threads} threads, a fresh output per batch`]: { cores: o.threads, run: () => oursRep(o.threads, true) },
      'torchvision tensor transforms (MMCL), 1 process': { cores: 1, run: () => py.ask({ backend: 'tensor', samples: o.samples }) },
      'torchvision PIL transforms, 1 process': { cores: 1, run: () => py.ask({ backend: 'pil', samples: o.samples }) },
    };
    if (o.threads === 1) delete variants['tabsight 1 thread'];
    const names = Object.keys(variants);
    for (const name of names) await variants[name].run(); // warm-up
    const rates = Object.fromEntries(names.map((n) => [n, []]));
    const secs = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < o.reps; r++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + r) % names.length];
        const res = await variants[name].run();
        secs[name].push(res.seconds);
        rates[name].push(res.samples / res.seconds);
      }
    }
    // Where ours spends its time: one batch, 1 thread, ms per sample (median of `reps`).
    ts._native().setThreads(1);
    const parts = {
      'augment (MMCL cardiac)': augment,
      'augment without colour jitter': { ...augment, brightness: 0, contrast: 0, saturation: 0, jitterP: 0 },
      'augment rate 0 (resize only)': { ...augment, rate: 0 },
    };
    const profile = {};
    for (const [name, opts] of Object.entries(parts)) {
      const xs = [];
      for (let r = 0; r <= o.reps; r++) {
        const t0 = c.now();
        await ts.augmentBatch({ data: batchImages, shape: [B, ch, h, w] }, opts, r + 1);
        if (r > 0) xs.push((c.now() - t0) * 1000 / B);
      }
      profile[name] = c.round(c.median(xs), 3);
    }
    {
      const xs = [];
      for (let r = 0; r <= o.reps; r++) {
        const t0 = c.now();
        ts.encodeTabular(ts.corruptTabular(batchRows, [B, F], inputs.tabular, M, 0.3, r), [B, F], inputs.cardinalities);
        if (r > 0) xs.push((c.now() - t0) * 1000 / B);
      }
      profile['corruptTabular + encodeTabular'] = c.round(c.median(xs), 3);
    }
    c.emit({ figure: 'tabsight data path profile (ms per sample, 1 thread, one batch)', ...profile });
    ts._native().setThreads(o.threads);
    const perCore = {};
    for (const name of names) {
      const m = c.median(rates[name]);
      perCore[name] = m / variants[name].cores;
      c.emit({
        figure: `data path: ${name}`, reps: o.reps, samples_per_rep: Math.floor(o.samples / B) * B, median_s: c.round(c.median(secs[name])),
        min_s: c.round(Math.min(...secs[name])), max_s: c.round(Math.max(...secs[name])), samples_per_s: c.round(m), cores: variants[name].cores,
        samples_per_s_per_core: c.round(perCore[name]),
      });
    }
    // The alternating reps above run ours in bursts of a few batches between
    // other work; on some VMs a burst after an idle gap runs much of its
    // first dozen or so calls at the 1-thread speed (RESULTS.md, "Data path
    // at 2 threads"). Back-to-back reps after 2 untimed ones show the steady
    // rate a loader feeding the trainer sees. Reported, not used for the ratio.
    if (o.threads !== 1) {
      for (let r = 0; r < 2; r++) await oursRep(o.threads);
      const steady = [];
      for (let r = 0; r < o.reps; r++) steady.push(await oursRep(o.threads));
      const rate = c.median(steady.map((x) => x.samples / x.seconds));
      c.emit({
        figure: `data path: tabsight ${o.threads} threads, back-to-back reps (steady state, not in the ratio)`, reps: o.reps,
        median_s: c.round(c.median(steady.map((x) => x.seconds))), samples_per_s: c.round(rate), cores: o.threads,
        samples_per_s_per_core: c.round(rate / o.threads), over_1_thread_alternating: c.round(rate / c.median(rates['tabsight 1 thread']), 3),
      });
    }
    const ours = perCore[names[0]];
    const tensor = perCore['torchvision tensor transforms (MMCL), 1 process'];
    const pil = perCore['torchvision PIL transforms, 1 process'];
    c.emit({
      figure: 'ratio (samples/s per core, tabsight over torchvision)', target: 5,
      ratio_vs_tensor: c.round(ours / tensor, 3), ratio_vs_pil: c.round(ours / pil, 3), ratio_vs_faster: c.round(ours / Math.max(tensor, pil), 3),
      ...(o.threads !== 1 ? { ratio_1_thread_vs_faster: c.round(perCore['tabsight 1 thread'] / Math.max(tensor, pil), 3) } : {}),
      loadavg_end: c.loadavg(),
    });
  } finally {
    if (py) await py.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
