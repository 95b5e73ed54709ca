#!/usr/bin/env node
// tabsight's CPU train step (ResNet-18, 128 px, batch 64, the CLIP step of
// train-step.js) in memoryFormat channels_last against contiguous (NCHW),
// alternating which goes first, one pretrain() call of STEPS + 1 steps each;
// the first step of each call is not timed. One JSON line per call, then the
// median of the per-call medians. What lib/cpu.ts's 'auto' rule rests on.
//
//   node benchmarks/support/layout_ab.js [ROUNDS=4] [STEPS=5] [SIZE=128]
const fs = require('node:fs'), os = require('node:os'), path = require('node:path');
process.env.TABSIGHT_THREADS = '2';
const ts = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'index.js'));
const rounds = Number(process.argv[2] ?? 4), steps = Number(process.argv[3] ?? 5), size = Number(process.argv[4] ?? 128);
const B = 64, S = size, F = 100;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
async function run(tmp, memoryFormat) {
  const n = B * (steps + 1);
  const images = new Uint8Array(n * 3 * S * S).map((_, i) => (i * 2654435761) >>> 24);
  const tabular = new Float32Array(n * F).map((_, i) => Math.sin(i));
  const times = [];
  const out = fs.mkdtempSync(path.join(tmp, 'r-'));
  await ts.pretrain({ out, images: { data: images, shape: [n, 3, S, S] }, tabular: { data: tabular, shape: [n, F] }, epochs: 1, batchSize: B,
    warmupEpochs: 0, augment: { rate: 0 }, memoryFormat, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    model: { arch: 'resnet18', smallStem: false, tabularHidden: 2048, tabularLayers: 2, projectionHidden: 2048, projectionDim: 128 } },
    { onProgress: (p) => { if (p.step > 1) times.push(B / p.imagesPerSec); } });
  fs.rmSync(out, { recursive: true, force: true });
  return times;
}
(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layout-ab-'));
  const r = { channels_last: [], contiguous: [] };
  for (let i = 0; i < rounds; i++) {
    for (const f of i % 2 ? ['contiguous', 'channels_last'] : ['channels_last', 'contiguous']) {
      const t = await run(tmp, f); r[f].push(median(t));
      console.log(JSON.stringify({ round: i, memoryFormat: f, median_s: +median(t).toFixed(4), steps_s: t.map((x) => +x.toFixed(3)) }));
    }
  }
  const cl = median(r.channels_last), nc = median(r.contiguous);
  console.log(JSON.stringify({ figure: 'median of round medians', size: S, channels_last: +cl.toFixed(4), contiguous: +nc.toFixed(4), contiguous_speedup: +(cl / nc).toFixed(3), cpu: os.cpus()[0].model, loadavg: os.loadavg() }));
  fs.rmSync(tmp, { recursive: true, force: true });
})();
