#!/usr/bin/env node
/**
 * Does `pretrain({ resume: true })` pick up where an aborted run stopped, on
 * DEVICE? The same question test/pretrain.test.ts answers on the CPU, for a
 * GPU node (benchmarks/cuda.sh runs it as `node-resume`, through the addon
 * built there: TABSIGHT_ADDON).
 *
 * Three runs of the same configuration (a tiny ResNet-18 on a 64-subject
 * synthetic cardiac cohort at 16 px, MMCL's augmentation rate, EPOCHS
 * epochs):
 *   full-a, full-b: uninterrupted, twice (their difference is the device's
 *     run-to-run nondeterminism: cuDNN picks algorithms, and its backward
 *     convolutions and atomics reorder sums);
 *   cut: aborted at step ABORT (default 7: inside epoch 1, after epoch 0's checkpoint),
 *     then resumed with `resume: true`.
 * The oracle is full-a. On the CPU, cut must equal it byte for byte (as the
 * unit test asks). On CUDA the resumed run must finish, list every epoch
 * once in metrics.jsonl, and differ from full-a by no more than full-b does
 * (times FACTOR, default 10, with a floor of 1e-6 relative): a resume that
 * lost the optimizer state, the schedule's position or the RNG stream
 * differs by far more than rounding.
 *
 * It also asks for device cuda:99, which no machine has: ERR_CONFIG naming it.
 *
 * With --deterministic the three runs train with `deterministic: true`, and
 * the check is the CPU's on any device: full-a and full-b identical byte for
 * byte, and the resumed run identical to them. It also records LibTorch's
 * determinism switches during a run (`runtimeInfo().deterministic`).
 *
 * One JSON line per figure; exit 1 when a check fails.
 *
 *   node benchmarks/support/resume_check.js [--device cuda] [--epochs 3] [--abort 7] [--factor 10] [--deterministic] [--keep DIR]
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

/** Every float32 tensor of a safetensors file, by name. */
function readSafetensors(file) {
  const bytes = fs.readFileSync(file);
  const len = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8'));
  const body = 8 + len;
  const out = new Map();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const [a, b] = t.data_offsets;
    const copy = Buffer.from(bytes.subarray(body + a, body + b));
    out.set(name, new Float32Array(copy.buffer, copy.byteOffset, (b - a) / 4));
  }
  return { bytes, meta: header.__metadata__ ?? {}, tensors: out };
}

/** Largest |a − b| over every tensor, relative to the largest |a|; and whether the names agree. */
function weightDiff(fileA, fileB) {
  const a = readSafetensors(fileA), b = readSafetensors(fileB);
  let maxDiff = 0, maxAbs = 0;
  const sameNames = a.tensors.size === b.tensors.size && [...a.tensors.keys()].every((k) => b.tensors.has(k));
  for (const [name, x] of a.tensors) {
    const y = b.tensors.get(name);
    if (!y || y.length !== x.length) continue;
    for (let i = 0; i < x.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
      maxAbs = Math.max(maxAbs, Math.abs(x[i]));
    }
  }
  return { identical: a.bytes.equals(b.bytes), sameNames, maxDiff, rel: maxDiff / Math.max(maxAbs, 1e-30) };
}

function epochLosses(dir) {
  return fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map((m) => ({ epoch: m.epoch, loss: m.loss }));
}

async function main() {
  const device = arg('device', 'cuda');
  const epochs = Number(arg('epochs', '3'));
  const abortAt = Number(arg('abort', '7'));
  const factor = Number(arg('factor', '10'));
  const keep = arg('keep', '');
  const deterministic = process.argv.includes('--deterministic');
  const { pretrainCohort, runtimeInfo, synthCardiac } = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'index.js'));
  const info = runtimeInfo();
  console.log(JSON.stringify({ figure: 'runtime', device, torch: info.torchVersion ?? info.torch, cuda: info.cudaAvailable, node: process.version }));
  if (device.startsWith('cuda') && !info.cudaAvailable) throw new Error('LibTorch in this addon sees no CUDA device');

  const root = keep || fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-resume-'));
  fs.mkdirSync(root, { recursive: true });
  // The built-in synthetic cardiac cohort, small: 64 subjects at 16 px (its train split has 4 batches of 8).
  const cohort = path.join(root, 'cohort');
  if (!fs.existsSync(path.join(cohort, 'cohort.yaml'))) await synthCardiac({ out: cohort, n: 64, size: 16, seed: 3 });
  const opts = {
    cohort, batchSize: 8, lr: 1e-3, warmupEpochs: 1, epochs, seed: 7, device,
    model: { arch: 'resnet18', smallStem: true, tabularHidden: 32, tabularLayers: 2, projectionHidden: 32, projectionDim: 16 },
    augment: { rate: 0.95 },
    ...(deterministic ? { deterministic: true } : {}),
  };
  // A device no machine has is refused by name (test/pipeline.test.ts asks
  // this of `select --device cuda:99` on the CPU build; this is the same
  // question for a CUDA build), before anything is written.
  const missing = path.join(root, 'no-device');
  fs.rmSync(missing, { recursive: true, force: true });
  const refusal = await pretrainCohort({ ...opts, out: missing, device: 'cuda:99' }).then(() => null, (e) => e);
  const leftBehind = fs.existsSync(missing) ? fs.readdirSync(missing) : [];
  const refusedOk = refusal != null && refusal.code === 'ERR_CONFIG' && /cuda:99/.test(refusal.message) && leftBehind.length === 0;
  console.log(JSON.stringify({ figure: 'device cuda:99 refused', ok: refusedOk, left_behind: leftBehind, error: refusal ? `${refusal.code} ${refusal.message}` : null }));
  const dirs = { a: path.join(root, 'full-a'), b: path.join(root, 'full-b'), cut: path.join(root, 'cut') };
  for (const d of Object.values(dirs)) fs.rmSync(d, { recursive: true, force: true });
  const t0 = Date.now();
  let switches = null;
  await pretrainCohort({ ...opts, out: dirs.a }, { onProgress: () => { switches ??= runtimeInfo().deterministic ?? null; } });
  await pretrainCohort({ ...opts, out: dirs.b });
  const controller = new AbortController();
  let abortedAt = -1;
  const err = await pretrainCohort({ ...opts, out: dirs.cut }, {
    signal: controller.signal,
    onProgress: (p) => { if (p.step === abortAt) { abortedAt = p.step; controller.abort(); } },
  }).then(() => null, (e) => e);
  const aborted = err != null && err.code === 'ERR_ABORTED';
  const checkpointLeft = fs.existsSync(path.join(dirs.cut, 'checkpoint.safetensors'));
  const resumeFrom = checkpointLeft ? Number(readSafetensors(path.join(dirs.cut, 'checkpoint.safetensors')).meta.epoch) : null;
  console.log(JSON.stringify({ figure: 'abort', aborted_at_step: abortedAt, error: err ? `${err.code} ${err.message}` : null, aborted, checkpoint_left: checkpointLeft, resumes_at_epoch: resumeFrom }));
  let resumeError = null;
  if (aborted && checkpointLeft) await pretrainCohort({ ...opts, out: dirs.cut, resume: true }).catch((e) => { resumeError = `${e.code ?? ''} ${e.message}`.trim(); });

  const enc = 'image_encoder.safetensors';
  const resumed = resumeError == null && fs.existsSync(path.join(dirs.cut, enc));
  const noise = weightDiff(path.join(dirs.a, enc), path.join(dirs.b, enc));
  const ckptNoise = weightDiff(path.join(dirs.a, 'checkpoint.safetensors'), path.join(dirs.b, 'checkpoint.safetensors'));
  const drift = resumed ? weightDiff(path.join(dirs.a, enc), path.join(dirs.cut, enc)) : null;
  const ckptDrift = resumed ? weightDiff(path.join(dirs.a, 'checkpoint.safetensors'), path.join(dirs.cut, 'checkpoint.safetensors')) : null;
  const lossA = epochLosses(dirs.a);
  const lossCut = resumed ? epochLosses(dirs.cut) : [];
  const everyEpochOnce = lossCut.map((m) => m.epoch).join() === Array.from({ length: epochs }, (_, i) => i).join();
  const maxLossDiff = lossCut.reduce((m, x, i) => Math.max(m, Math.abs(x.loss - (lossA[i]?.loss ?? NaN))), 0);
  const bound = Math.max(noise.rel * factor, 1e-6);
  const ckptBound = Math.max(ckptNoise.rel * factor, 1e-6);
  const exact = device === 'cpu' || deterministic;
  const ok = aborted && checkpointLeft && resumed && everyEpochOnce && drift.sameNames && ckptDrift.sameNames
    && (exact ? drift.identical && ckptDrift.identical && (!deterministic || (noise.identical && ckptNoise.identical))
      : drift.rel <= bound && ckptDrift.rel <= ckptBound);
  console.log(JSON.stringify({
    figure: 'resume vs uninterrupted', device, epochs, deterministic, switches_during_run: switches, ok,
    resume_error: resumeError, every_epoch_once: everyEpochOnce,
    encoder: drift && { identical: drift.identical, max_abs_diff: drift.maxDiff, rel: drift.rel },
    checkpoint: ckptDrift && { identical: ckptDrift.identical, max_abs_diff: ckptDrift.maxDiff, rel: ckptDrift.rel },
    run_to_run: { encoder_identical: noise.identical, encoder_rel: noise.rel, checkpoint_identical: ckptNoise.identical, checkpoint_rel: ckptNoise.rel },
    bound_rel: exact ? 0 : { encoder: bound, checkpoint: ckptBound }, epoch_loss_max_abs_diff: maxLossDiff,
    losses_full: lossA.map((m) => m.loss), losses_resumed: lossCut.map((m) => m.loss), seconds: (Date.now() - t0) / 1000,
  }));
  if (!keep) fs.rmSync(root, { recursive: true, force: true });
  if (!ok || !refusedOk) process.exitCode = 1;
}

main().catch((e) => {
  console.log(JSON.stringify({ figure: 'resume vs uninterrupted', ok: false, error: `${e.code ?? ''} ${e.message}`.trim() }));
  process.exitCode = 1;
});
