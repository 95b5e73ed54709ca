#!/usr/bin/env node
'use strict';
/**
 * Which memory format is faster at which image size, for training and for
 * embedding: the measurements behind memoryFormat 'auto' (docs/api.md).
 * Not part of `npm run bench` (about 2.5 minutes); run it by hand:
 *
 *   GOMP_SPINCOUNT=1000 node benchmarks/support/memory_format_sizes.js
 *
 * Training: pretrain() steps of a ResNet-18 multimodal model (tabular MLP
 * 20 → 2048 → 2048, heads 2048 → 128), augmentation off, at 28 px with the
 * small stem (batch 128), 64 px (batch 128) and 128 px (batch 64), standard
 * stem; 2 alternating rounds of NCHW and channels_last, 4 timed steps each
 * after one warm-up step. Embedding: Run.embed's native call on a random
 * ResNet-18 at 28 px (small stem), 64 px (both stems) and 128 px, batch 64,
 * 7 alternating repetitions after one warm-up each. 2 intra-op threads.
 * Prints JSON lines; the gain is the NCHW median over the channels_last one.
 *
 * Options: --train false skips the training part; --embed-batches 16,64
 * embeds at each listed batch (default 64); --embed-sizes 128 keeps the
 * listed image sizes (default all); --reps and --rounds as above.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./common');

async function main() {
  const o = c.options({ threads: [2, 2], rounds: [2, 1], reps: [7, 3], train: [true, true], embedBatches: ['64', '64'], embedSizes: ['all', 'all'] });
  const embedBatches = String(o.embedBatches).split(',').map(Number);
  if (!embedBatches.every((b) => Number.isInteger(b) && b > 0)) throw new Error(`Expected positive integers for --embed-batches but received ${o.embedBatches}`);
  process.env.TABSIGHT_THREADS = String(o.threads);
  const ts = c.library();
  const { awaitNative, callNative } = require(path.join(c.ROOT, 'dist', 'lib', 'errors.js'));
  c.emit({ figure: 'machine', ...c.machine(), loadavg_start: c.loadavg(), threads: o.threads });
  const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-memfmt-'));
  try {
    for (const [size, smallStem, B] of o.train ? [[28, true, 128], [64, false, 128], [128, false, 64]] : []) {
      const steps = 4, n = B * (steps + 1);
      const images = new Uint8Array(n * 3 * size * size).map((_, i) => (i * 2654435761) >>> 24);
      const tabular = new Float32Array(n * 20).map((_, i) => Math.sin(i));
      const one = async (memoryFormat) => {
        const times = [];
        await ts.pretrain({
          out: fs.mkdtempSync(path.join(tmp, 'run-')), images: { data: images, shape: [n, 3, size, size] }, tabular: { data: tabular, shape: [n, 20] },
          epochs: 1, batchSize: B, warmupEpochs: 0, augment: { rate: 0 }, memoryFormat, threads: o.threads,
          model: { arch: 'resnet18', smallStem, tabularHidden: 2048, projectionHidden: 2048 },
        }, { onProgress: (p) => { if (p.step > 1) times.push(B / p.imagesPerSec); } });
        return times;
      };
      const a = [], b = [];
      for (let r = 0; r < o.rounds; r++) { a.push(...await one('contiguous')); b.push(...await one('channels_last')); }
      c.emit({ figure: `train step ${size} px${smallStem ? ' small stem' : ''}, batch ${B}`, nchw_median_s: c.round(med(a)), channels_last_median_s: c.round(med(b)), steps: a.length, gain: c.round(med(a) / med(b), 3) });
    }
    const embedCases = [[28, true, 256], [64, false, 256], [64, true, 64], [128, false, 128]]
      .filter(([size]) => o.embedSizes === 'all' || String(o.embedSizes).split(',').map(Number).includes(size));
    for (const [size, smallStem, n] of embedCases) for (const batchSize of embedBatches) {
      const enc = callNative(() => new (ts._native().ImageEncoder)({ arch: 'resnet18', inChannels: 3, smallStem, seed: 0, device: 'cpu' }));
      const x = new Uint8Array(n * 3 * size * size).map((_, i) => (i * 2654435761) >>> 24);
      const run = async (memoryFormat) => {
        const t0 = process.hrtime.bigint();
        await awaitNative(enc.embed(x, [n, 3, size, size], { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], outSize: [size, size], batchSize, memoryFormat }));
        return Number(process.hrtime.bigint() - t0) / 1e9;
      };
      await run('contiguous');
      await run('channels_last');
      const a = [], b = [];
      for (let r = 0; r < o.reps; r++) { a.push(await run('contiguous')); b.push(await run('channels_last')); }
      c.emit({ figure: `embed ${size} px${smallStem ? ' small stem' : ''}, ${n} images, batch ${batchSize}`, nchw_images_per_s: c.round(n / med(a)), channels_last_images_per_s: c.round(n / med(b)), reps: a.length, gain: c.round(med(a) / med(b), 3) });
      enc.dispose();
    }
    c.emit({ figure: 'end', loadavg_end: c.loadavg() });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
