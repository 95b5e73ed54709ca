#!/usr/bin/env node
/**
 * Smoke check of a freshly built addon, with no npm packages (for GPU nodes
 * where only the addon and a Node binary were brought; benchmarks/cuda.sh):
 * loads the .node file, prints runtimeInfo(), and embeds the same 16 images
 * with two ResNet-18 image encoders of the same seed, one on the CPU and one
 * on DEVICE. Prints one JSON line per figure; exits 1 when DEVICE is cuda
 * and LibTorch sees no GPU, or the two embeddings differ by more than
 * --tol relative to their largest magnitude (default 1e-2: cuDNN runs fp32
 * convolutions in TF32 by default, about 3 significant digits).
 *
 *   node benchmarks/native/addon_smoke.js path/to/tabsight.node [cuda|cpu] [--tol 1e-2]
 */
'use strict';
const path = require('node:path');

async function main() {
  const [file, device = 'cuda'] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--tol');
  const tolAt = process.argv.indexOf('--tol');
  const tol = tolAt > 0 ? Number(process.argv[tolAt + 1]) : 1e-2;
  if (!file) throw new Error('usage: addon_smoke.js path/to/tabsight.node [cuda|cpu] [--tol 1e-2]');
  const addon = require(path.resolve(file));
  const info = addon.runtimeInfo();
  console.log(JSON.stringify({ figure: 'runtimeInfo', addon: path.resolve(file), ...info }));
  if (device === 'cuda' && !info.cudaAvailable) {
    console.log(JSON.stringify({ figure: 'smoke', ok: false, error: 'LibTorch in this addon sees no CUDA device' }));
    process.exitCode = 1;
    return;
  }
  const n = 16, c = 3, s = 128;
  const images = new Uint8Array(n * c * s * s);
  for (let i = 0; i < images.length; i++) images[i] = (Math.imul(i, 2654435761) >>> 24) & 255;
  const opts = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], outSize: [s, s], batchSize: 8 };
  const make = (dev) => new addon.ImageEncoder({ arch: 'resnet18', inChannels: c, smallStem: false, seed: 3, device: dev });
  const t0 = process.hrtime.bigint();
  const ref = await make('cpu').embed(images, [n, c, s, s], opts);
  const t1 = process.hrtime.bigint();
  const got = await make(device).embed(images, [n, c, s, s], opts);
  const t2 = process.hrtime.bigint();
  let maxDiff = 0, maxRef = 0;
  for (let i = 0; i < ref.data.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - ref.data[i]));
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
  }
  const rel = maxDiff / Math.max(maxRef, 1e-30);
  const ok = got.shape.join() === ref.shape.join() && Number.isFinite(rel) && rel <= tol;
  console.log(JSON.stringify({
    figure: 'embed on the CPU vs on the device', device, shape: got.shape, max_abs_diff: maxDiff, max_abs: maxRef, rel_diff: rel, tol,
    cpu_s: Number(t1 - t0) / 1e9, device_s_first_call: Number(t2 - t1) / 1e9, ok,
  }));
  if (!ok) process.exitCode = 1;
}

main().catch((e) => {
  console.log(JSON.stringify({ figure: 'smoke', ok: false, error: `${e.code ?? ''} ${e.message}`.trim() }));
  process.exitCode = 1;
});
