import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { _native, augmentBatch, pretrain, loadRun, defaultEmbedBatch, TrainProgress, AbortError, BusyError, ConfigError, DataError, DisposedError, ShapeError } from '../lib/index';
import { toyCohort, tinyModel } from './helpers/toy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-pretrain-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const toy = toyCohort(64);
const base = {
  images: { data: toy.images, shape: toy.shape },
  tabular: { data: toy.tabular, shape: [64, toy.features] },
  batchSize: 16,
  lr: 1e-3,
  warmupEpochs: 0,
  model: tinyModel,
  augment: { rate: 0 },
};

async function epochLosses(options: Parameters<typeof pretrain>[0]): Promise<number[]> {
  const losses: number[] = [];
  await pretrain(options, { onProgress: (p) => { if (p.epochDone) losses.push(p.epochLoss!); } });
  return losses;
}

t.test('pretrain#multimodal lowers the CLIP loss over a few epochs', async (t) => {
  const losses = await epochLosses({ ...base, out: path.join(root, 'mm'), epochs: 6 });
  t.equal(losses.length, 6);
  t.ok((losses[4] + losses[5]) / 2 < losses[0] * 0.85, `epoch losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  const metrics = fs.readFileSync(path.join(root, 'mm', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(metrics.map((m) => m.epoch), [0, 1, 2, 3, 4, 5]);
  t.ok(Math.abs(metrics[5].loss - losses[5]) < 1e-12, 'metrics.jsonl holds the epoch loss');
});

t.test('pretrain#threads reaches the training thread even after libuv workers ran with another count; metrics.jsonl records it', async (t) => {
  const n = _native();
  const before = n.runtimeInfo().threads;
  t.teardown(() => { n.setThreads(before); });
  for (const [warm, threads] of [[2, 1], [1, 2]]) {
    // Keep every libuv worker busy once at `warm` threads, then train at `threads`.
    n.setThreads(warm);
    const shape = [64, 3, 64, 64];
    const data = new Uint8Array(64 * 3 * 64 * 64).map((_, i) => (i * 37) & 255);
    await Promise.all(Array.from({ length: 8 }, (_, k) => augmentBatch({ data, shape }, { rate: 1, rotationDeg: 30 }, k)));
    const out = path.join(root, `threads-${threads}`);
    await pretrain({ ...base, out, epochs: 2, threads });
    const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { threads: number });
    t.same(lines.map((l) => l.threads), [threads, threads], `every epoch ran with ${threads} intra-op thread(s) after workers ran with ${warm}`);
  }
});

t.test('pretrain#simclr and #supervised lower their losses', async (t) => {
  const simclr = await epochLosses({ ...base, out: path.join(root, 'simclr'), mode: 'simclr', epochs: 5, augment: { rate: 1, rotationDeg: 10, cropScale: [0.6, 1] } });
  t.ok(simclr[4] < simclr[0], `simclr ${simclr.map((l) => l.toFixed(3)).join(' ')}`);
  const sup = await epochLosses({ ...base, out: path.join(root, 'sup'), mode: 'supervised', labels: toy.labels, epochs: 5 });
  t.ok(sup[4] < sup[0], `supervised ${sup.map((l) => l.toFixed(3)).join(' ')}`);
});

t.test('pretrain reports progress with step, lr, throughput and a cosine schedule', async (t) => {
  const seen: TrainProgress[] = [];
  await pretrain({ ...base, out: path.join(root, 'progress'), epochs: 2, lr: 2e-3, warmupEpochs: 1 }, { onProgress: (p) => seen.push(p) });
  t.equal(seen.length, 8);
  t.same(seen.map((p) => p.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  // Warm-up: lr = base·(s+1)/warm; then cosine over the remaining steps.
  const expected = [0.5e-3, 1e-3, 1.5e-3, 2e-3, ...[0, 1, 2, 3].map((k) => 2e-3 * 0.5 * (1 + Math.cos((Math.PI * k) / 4)))];
  seen.forEach((p, i) => t.ok(Math.abs(p.lr - expected[i]) < 1e-12, `lr at step ${p.step}: ${p.lr}`));
  t.ok(seen.every((p) => p.imagesPerSec > 0 && Number.isFinite(p.loss)));
  t.ok(seen[3].epochDone && seen[3].checkpointed);
});

t.test('resume after an abort gives bitwise-identical weights to an uninterrupted run', async (t) => {
  const opts = { ...base, epochs: 3, augment: { rate: 0.95 }, seed: 7 };
  const full = path.join(root, 'full');
  await pretrain({ ...opts, out: full });

  const cut = path.join(root, 'cut');
  const controller = new AbortController();
  const err = await pretrain({ ...opts, out: cut }, { signal: controller.signal, onProgress: (p) => { if (p.step === 5) controller.abort(); } }).catch((e) => e);
  t.type(err, AbortError);
  t.equal(err.code, 'ERR_ABORTED');
  t.notOk(fs.existsSync(path.join(cut, 'image_encoder.safetensors')), 'no final encoder after an abort');
  t.ok(fs.existsSync(path.join(cut, 'checkpoint.safetensors')), 'the checkpoint stays');
  await t.rejects(pretrain({ ...opts, out: cut }), { code: 'ERR_CONFIG', message: /resume: true/ });
  await pretrain({ ...opts, out: cut, resume: true });
  const a = fs.readFileSync(path.join(full, 'image_encoder.safetensors'));
  const b = fs.readFileSync(path.join(cut, 'image_encoder.safetensors'));
  t.ok(a.equals(b), 'image_encoder.safetensors is byte-identical');
  // The checkpoints differ only in nothing: weights, optimiser and position.
  t.ok(fs.readFileSync(path.join(full, 'checkpoint.safetensors')).equals(fs.readFileSync(path.join(cut, 'checkpoint.safetensors'))), 'checkpoint is byte-identical');
  const strip = (file: string) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => { const { imagesPerSec, ...rest } = JSON.parse(l); return rest; });
  t.same(strip(path.join(cut, 'metrics.jsonl')), strip(path.join(full, 'metrics.jsonl')), 'metrics cover every epoch once, with the same losses');
});

/** The epoch a checkpoint file resumes at, from its safetensors header. */
function checkpointPosition(file: string): number {
  const bytes = fs.readFileSync(file);
  const len = Number(bytes.readBigUInt64LE(0));
  return Number(JSON.parse(bytes.subarray(8, 8 + len).toString('utf8')).__metadata__.epoch);
}

t.test('epoch checkpoints written while the next epoch trains: checkpointed events find the file on disk, events stay in order, and resuming from such a file is bitwise identical', async (t) => {
  // Of 6 epochs, the checkpoints at positions 2..5 are written in the background; 1 and 6 in place.
  const opts = { ...base, epochs: 6, augment: { rate: 0.95 }, seed: 11 };
  const full = path.join(root, 'bg-full');
  const copy = path.join(root, 'bg-copy');
  const steps: number[] = [];
  const seen: Array<{ epoch: number; onDisk: number }> = [];
  let copied = -1;
  await pretrain({ ...opts, out: full }, {
    onProgress: (p) => {
      steps.push(p.step);
      if (!(p.epochDone && p.checkpointed)) return;
      // The event is delivered once this epoch's checkpoint is complete; the trainer may have moved on since.
      seen.push({ epoch: p.epoch, onDisk: checkpointPosition(path.join(full, 'checkpoint.safetensors')) });
      if (p.epoch === 1) {
        // What a run killed here would leave: its config and checkpoint (the metrics are cut back on resume).
        fs.mkdirSync(copy);
        fs.copyFileSync(path.join(full, 'config.json'), path.join(copy, 'config.json'));
        fs.copyFileSync(path.join(full, 'checkpoint.safetensors'), path.join(copy, 'checkpoint.safetensors'));
        copied = checkpointPosition(path.join(copy, 'checkpoint.safetensors'));
      }
    },
  });
  t.same(steps, Array.from({ length: 24 }, (_, i) => i + 1), 'one event per step, in order');
  t.same(seen.map((s) => s.epoch), [0, 1, 2, 3, 4, 5], 'every epoch reports its checkpoint');
  for (const s of seen) t.ok(s.onDisk >= s.epoch + 1, `epoch ${s.epoch}'s event found checkpoint position ${s.onDisk} on disk`);
  t.ok(copied >= 2 && copied <= 5, `the copied checkpoint (position ${copied}) is one written in the background`);
  await pretrain({ ...opts, out: copy, resume: true });
  const a = fs.readFileSync(path.join(full, 'image_encoder.safetensors'));
  const b = fs.readFileSync(path.join(copy, 'image_encoder.safetensors'));
  t.ok(a.equals(b), 'image_encoder.safetensors is byte-identical after resuming from it');
  t.ok(fs.readFileSync(path.join(full, 'checkpoint.safetensors')).equals(fs.readFileSync(path.join(copy, 'checkpoint.safetensors'))), 'checkpoint is byte-identical');
});

t.test('resume refuses a changed configuration, naming the field', async (t) => {
  const dir = path.join(root, 'cfg');
  await pretrain({ ...base, out: dir, epochs: 1 });
  await t.rejects(pretrain({ ...base, out: dir, epochs: 2, lr: 5e-3, resume: true }), { code: 'ERR_CONFIG', message: /lr differs/ });
  await t.rejects(pretrain({ ...base, out: dir, epochs: 12, warmupEpochs: 1, resume: true }), { code: 'ERR_CONFIG', message: /warmupEpochs differs/ }, 'an explicit other warm-up is refused');
});

t.test('resume with more epochs keeps the saved default warm-up', async (t) => {
  // 1 epoch: default warm-up min(10, ⌊1/10⌋) = 0. At 12 epochs the default
  // would be 1, which used to make the resume fail on warmupEpochs.
  const dir = path.join(root, 'more-epochs');
  await pretrain({ ...base, out: dir, epochs: 1 });
  const seen: TrainProgress[] = [];
  await pretrain({ ...base, out: dir, epochs: 12, resume: true }, { onProgress: (p) => seen.push(p) });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  t.same([cfg.epochs, cfg.warmupEpochs], [12, 0]);
  t.equal(seen[0].step, 5, 'continues after epoch 1');
  // No warm-up: cosine over all 48 steps, so step 5 has lr·½(1 + cos(π·4/48)).
  const lr = base.lr * 0.5 * (1 + Math.cos((Math.PI * 4) / 48));
  t.ok(Math.abs(seen[0].lr - lr) < 1e-12, `lr at step 5: ${seen[0].lr}, want ${lr}`);
});

t.test('loadRun and embed give one feature vector per image; embed is deterministic', async (t) => {
  const run = await loadRun(path.join(root, 'mm'));
  t.equal(run.featureDim, 512);
  const e1 = await run.embed({ data: toy.images, shape: toy.shape });
  const e2 = await run.embed({ data: toy.images, shape: toy.shape }, { batchSize: 5 });
  t.equal(e1.length, 64 * 512);
  t.same(Array.from(e1.subarray(0, 50)), Array.from(e2.subarray(0, 50)));
  // The default batch (benchmarks/RESULTS.md, "Inference: the batch size"):
  // 16 on the CPU where the stem's output is at least 64 px on a side, else 64.
  t.same([defaultEmbedBatch('cpu', 128, false), defaultEmbedBatch('cpu', 127, false), defaultEmbedBatch('cpu', 126, false), defaultEmbedBatch('cpu', 64, true), defaultEmbedBatch('cpu', 63, true),
    defaultEmbedBatch('cpu', 28, true), defaultEmbedBatch('cuda', 128, false), defaultEmbedBatch('cuda:1', 256, true)], [16, 16, 64, 16, 64, 64, 64, 64]);
  const e64 = await run.embed({ data: toy.images, shape: toy.shape }, { batchSize: 64 });
  t.ok(e1.every((v, i) => Math.abs(v - e64[i]) <= 1e-5 * Math.max(1, Math.abs(v))), 'the default batch and one batch of 64 agree to float32 rounding');
  run.dispose();
  await t.rejects(run.embed({ data: toy.images, shape: toy.shape }), DisposedError);
  t.throws(() => run.featureDim, { code: 'ERR_DISPOSED' });
});

t.test('an image embeds to the same bits however the images around it are batched (no batch of one image)', async (t) => {
  // LibTorch convolves a lone image by another path than a batch: before
  // EmbedImages kept single images out of its batches, batch size 1, a
  // remainder of 1 (63 + 1) and an image embedded alone differed from the
  // batched bits by about 1e-6.
  const run = await loadRun(path.join(root, 'mm'));
  const per = toy.shape[1] * toy.shape[2] * toy.shape[3];
  const ref = await run.embed({ data: toy.images, shape: toy.shape }, { batchSize: 64 });
  const d = run.featureDim;
  for (const batchSize of [1, 2, 16, 21, 63]) {
    const e = await run.embed({ data: toy.images, shape: toy.shape }, { batchSize });
    t.ok(e.every((v, i) => v === ref[i]), `batchSize ${batchSize}: identical bits`);
  }
  for (const i of [0, 37]) {
    const one = await run.embed({ data: toy.images.subarray(i * per, (i + 1) * per), shape: [1, ...toy.shape.slice(1)] });
    t.ok(one.every((v, j) => v === ref[i * d + j]), `image ${i} alone: identical bits`);
  }
  const odd = [5, 9, 40];
  const three = new (toy.images.constructor as Float32ArrayConstructor)(odd.length * per);
  odd.forEach((r, k) => three.set(toy.images.subarray(r * per, (r + 1) * per), k * per));
  const e3 = await run.embed({ data: three, shape: [3, ...toy.shape.slice(1)] }, { batchSize: 2 });
  t.ok(odd.every((r, k) => e3.subarray(k * d, (k + 1) * d).every((v, j) => v === ref[r * d + j])), 'a subset of 3 in batches of 2 (2 + 1 → one batch of 3): identical bits');
  run.dispose();
});

t.test('misuse gives named errors and never crashes the process', async (t) => {
  const out = path.join(root, 'bad');
  await t.rejects(pretrain({ ...base, out, epochs: -3 }), { code: 'ERR_CONFIG', message: 'Expected positive integer for epochs but received -3 of type number' });
  await t.rejects(pretrain({ ...base, out, images: { data: new Int32Array(10) as unknown as Uint8Array, shape: [10, 1, 1, 1] } }), ShapeError);
  await t.rejects(pretrain({ ...base, out, images: { data: toy.images, shape: [64, 1, 16, 15] } }), { code: 'ERR_SHAPE', message: /Expected 15360 values/ });
  const nan = new Float32Array(toy.images.length).fill(0.5);
  nan[3 * 256 + 7] = NaN;
  await t.rejects(pretrain({ ...base, out, images: { data: nan, shape: toy.shape } }), { code: 'ERR_DATA', message: /image 3/ });
  const badTab = Float32Array.from(toy.tabular);
  badTab[10] = Infinity;
  await t.rejects(pretrain({ ...base, out, tabular: { data: badTab, shape: [64, 4], names: ['side', 'y', 'x', 'level'] } }), { code: 'ERR_DATA', message: /row 2, x/ });
  await t.rejects(pretrain({ ...base, out, tabular: { data: toy.tabular.subarray(0, 40), shape: [10, 4] } }), { code: 'ERR_SHAPE', message: /64 tabular rows/ });
  await t.rejects(pretrain({ ...base, out, device: 'cuda' }), { code: 'ERR_CONFIG', message: /no CUDA support/ });
  await t.rejects(pretrain({ ...base, out, model: { ...tinyModel, arch: 'resnet34' as 'resnet18' } }), { code: 'ERR_CONFIG', message: /model\.arch/ });
  await t.rejects(pretrain({ ...base, out, lossy: 1 } as unknown as Parameters<typeof pretrain>[0]), { code: 'ERR_CONFIG', message: /Unknown option lossy/ });
  await t.rejects(pretrain({ ...base, out, mode: 'supervised' }), { code: 'ERR_CONFIG', message: /needs labels/ });
  await t.rejects(loadRun(path.join(root, 'nowhere')), ConfigError);
  await t.rejects(pretrain({ ...base, out, images: { npy: path.join(root, 'missing.npy') } }), DataError);
});

t.test('two trainings into one run directory: the second gets ERR_BUSY', async (t) => {
  const dir = path.join(root, 'busy');
  const first = pretrain({ ...base, out: dir, epochs: 2 });
  await t.rejects(pretrain({ ...base, out: dir, epochs: 2 }), BusyError);
  await first;
  t.notOk(fs.existsSync(path.join(dir, '.lock')), 'the lock is released');
});

t.test('run locks: a dead process\'s lock or one naming this pid that this process does not hold is taken over; another host\'s is ERR_BUSY naming it', async (t) => {
  // A pid that is not running: a child that has exited.
  const { spawnSync } = await import('node:child_process');
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const cases = [['an old pid-only lock of a dead process', String(dead)], ['this host, a dead process', `${os.hostname()} ${dead}`], ['this very pid, not held (a PID namespace)', `${os.hostname()} ${process.pid}`]];
  for (const [k, [what, text]] of cases.entries()) {
    const fresh = path.join(root, `locks-${k}`);
    fs.mkdirSync(fresh);
    fs.writeFileSync(path.join(fresh, '.lock'), text);
    await pretrain({ ...base, out: fresh, epochs: 1 });
    t.ok(fs.existsSync(path.join(fresh, 'image_encoder.safetensors')) && !fs.existsSync(path.join(fresh, '.lock')), `${what}: taken over, trained, released`);
  }
  const dir = path.join(root, 'locks-0');
  const lock = path.join(dir, '.lock');
  fs.writeFileSync(lock, 'gpu-node-17 4242');
  const before = fs.readdirSync(dir).sort();
  await t.rejects(pretrain({ ...base, out: dir, epochs: 2, resume: true }), { code: 'ERR_BUSY', message: `Run directory ${dir} is locked by process 4242 on host gpu-node-17; if that process is gone (a job killed on another node), delete ${lock}` });
  t.same(fs.readdirSync(dir).sort(), before, 'nothing changed');
  t.equal(fs.readFileSync(lock, 'utf8'), 'gpu-node-17 4242', 'the lock stays');
});

t.test('an onProgress callback that throws stops training with ERR_ABORTED and keeps a valid checkpoint', async (t) => {
  const dir = path.join(root, 'throws');
  const err = await pretrain({ ...base, out: dir, epochs: 2 }, { onProgress: (p) => { if (p.step === 2) throw new Error('boom'); } }).catch((e) => e);
  t.type(err, AbortError);
  t.match(err.message, /onProgress threw: boom/);
  t.equal((err.cause as Error).message, 'boom');
  await pretrain({ ...base, out: dir, epochs: 2, resume: true });
  t.ok(fs.existsSync(path.join(dir, 'image_encoder.safetensors')));
});

t.test('images from an NPY file are read memory-mapped', async (t) => {
  const { writeNpy } = await import('../lib/data/npy');
  const file = path.join(root, 'images.npy');
  await writeNpy(file, toy.images, toy.shape);
  const a = path.join(root, 'npy');
  const b = path.join(root, 'mem');
  await pretrain({ ...base, out: a, epochs: 1, images: { npy: file } });
  await pretrain({ ...base, out: b, epochs: 1 });
  t.ok(fs.readFileSync(path.join(a, 'image_encoder.safetensors')).equals(fs.readFileSync(path.join(b, 'image_encoder.safetensors'))), 'same weights as from memory');
});

t.test('initWeights starts the image encoder from a torchvision-named file and names what does not fit', async (t) => {
  const { readSafetensors } = await import('../lib/io/safetensors');
  const init = path.join(root, 'mm', 'image_encoder.safetensors');
  const dir = path.join(root, 'init');
  // A vanishing learning rate: the weights that come out are the ones that went in.
  await pretrain({ ...base, out: dir, mode: 'supervised', labels: toy.labels, epochs: 1, lr: 1e-12, weightDecay: 0, initWeights: init });
  const a = (await readSafetensors(init)).tensors;
  const b = (await readSafetensors(path.join(dir, 'image_encoder.safetensors'))).tensors;
  let maxDiff = 0;
  let compared = 0;
  for (const [name, ta] of a) {
    if (!name.endsWith('.weight') || !name.includes('conv')) continue;
    const x = ta.data as Float32Array;
    const y = b.get(name)!.data as Float32Array;
    for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
    compared++;
  }
  t.ok(compared >= 10, `compared ${compared} conv weights`);
  t.ok(maxDiff < 1e-6, `conv weights equal the initial ones (max diff ${maxDiff})`);
  const fresh = path.join(root, 'fresh');
  await pretrain({ ...base, out: fresh, mode: 'supervised', labels: toy.labels, epochs: 1, lr: 1e-12, weightDecay: 0 });
  const c = (await readSafetensors(path.join(fresh, 'image_encoder.safetensors'))).tensors;
  t.notSame(Array.from((c.get('conv1.weight')!.data as Float32Array).slice(0, 8)), Array.from((a.get('conv1.weight')!.data as Float32Array).slice(0, 8)), 'without initWeights the start differs');
  await t.rejects(pretrain({ ...base, out: path.join(root, 'init50'), mode: 'supervised', labels: toy.labels, epochs: 1, initWeights: init, model: { ...tinyModel, arch: 'resnet50' } }), { code: 'ERR_DATA', message: /missing .*conv3/ });
  await t.rejects(pretrain({ ...base, out: path.join(root, 'init-missing'), epochs: 1, initWeights: path.join(root, 'nope.safetensors') }), { code: 'ERR_CONFIG', message: /initWeights/ });
});

t.test('dataThreads changes only who prepares batches: the same losses with 1 and 2 data threads', async (t) => {
  // Augmentation on: per-sample crops, rotations and jitter run on the
  // prefetch thread; their results must not depend on its thread count.
  const opts = { ...base, epochs: 2, augment: { rate: 1, rotationDeg: 30, cropScale: [0.5, 1] as [number, number] } };
  try {
    const one = await epochLosses({ ...opts, out: path.join(root, 'dt1'), dataThreads: 1 });
    const two = await epochLosses({ ...opts, out: path.join(root, 'dt2'), dataThreads: 2 });
    t.equal(one.length, 2);
    one.forEach((l, i) => t.ok(Math.abs(l - two[i]) <= 1e-6 * Math.abs(l), `epoch ${i}: ${l} vs ${two[i]}`));
    await t.rejects(pretrain({ ...opts, out: path.join(root, 'dt3'), dataThreads: -1 }), ConfigError);
    await t.rejects(pretrain({ ...opts, out: path.join(root, 'dt4'), dataThreads: 1.5 }), /dataThreads/);
  } finally {
    await pretrain({ ...opts, out: path.join(root, 'dt5'), epochs: 1, dataThreads: 0 }); // back to automatic
  }
});

t.test('a float32 store gets its own clamp range for the colour augmentations; uint8 keeps [0, 1]; an explicit or saved range wins', async (t) => {
  // Raw units, as converted NIfTI/DICOM/PNG stores hold them.
  const raw = Float32Array.from(toy.images, (v, i) => v * 4 - 100 + (i % 7) * 0.25);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of raw) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const f32 = { ...base, images: { data: raw, shape: toy.shape }, augment: { rate: 0.95 }, epochs: 1 };
  const readCfg = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const own = path.join(root, 'range-f32');
  await pretrain({ ...f32, out: own });
  t.same(readCfg(own).augment.valueRange, [lo, hi], `float32 store: [min, max] of the training images = [${lo}, ${hi}]`);
  // Only the training rows count.
  const rows = Int32Array.from({ length: 32 }, (_, i) => 2 * i + 1);
  let rlo = Infinity;
  let rhi = -Infinity;
  for (const r of rows) for (let j = r * 256; j < (r + 1) * 256; j++) { rlo = Math.min(rlo, raw[j]); rhi = Math.max(rhi, raw[j]); }
  const tab = new Float32Array(32 * toy.features);
  rows.forEach((r, i) => tab.set(toy.tabular.subarray(r * toy.features, (r + 1) * toy.features), i * toy.features));
  const sub = path.join(root, 'range-rows');
  await pretrain({ ...f32, out: sub, rows, tabular: { data: tab, shape: [32, toy.features] } });
  t.same(readCfg(sub).augment.valueRange, [rlo, rhi], 'with rows: the range of those rows');
  const u8 = path.join(root, 'range-u8');
  await pretrain({ ...base, augment: { rate: 0.95 }, epochs: 1, out: u8 });
  t.same(readCfg(u8).augment.valueRange, [0, 1], 'uint8 store: [0, 1] (after / 255)');
  const given = path.join(root, 'range-given');
  await pretrain({ ...f32, augment: { rate: 0.95, valueRange: [-5, 5] }, out: given });
  t.same(readCfg(given).augment.valueRange, [-5, 5], 'an explicit valueRange is kept');
  // A run saved with [0, 1] on a float32 store (before this default) resumes with its own range.
  const old = path.join(root, 'range-old');
  await pretrain({ ...f32, augment: { rate: 0.95, valueRange: [0, 1] }, out: old });
  await pretrain({ ...f32, out: old, epochs: 2, resume: true });
  t.same(readCfg(old).augment.valueRange, [0, 1], 'resume keeps the saved range');
  // The clamp the old default applied: a jittered view of this store stays within [0, 1]; with the own range it keeps its values.
  const views = (range: [number, number]) => augmentBatch({ data: raw.slice(0, 4 * 256), shape: [4, 1, 16, 16] }, { rate: 1, crop: false, flipP: 0, rotationDeg: 0, brightness: 0.5, contrast: 0.5, valueRange: range }, 3);
  const clipped = (await views([0, 1])).data as Float32Array;
  const kept = (await views([lo, hi])).data as Float32Array;
  t.ok(Math.max(...clipped) <= 1, 'with [0, 1]: every value clipped to at most 1');
  t.ok(Math.max(...kept) > 100, `with [min, max]: values in the store's units (max ${Math.max(...kept).toFixed(1)})`);
});
