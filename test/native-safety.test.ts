// Inputs that used to crash the process (SIGSEGV, SIGABRT, SIGFPE, libgomp
// exiting, a promise that never settles) now fail with coded errors. Each
// probe runs in a child process, so a regression shows as a failed assertion
// (a signal or a non-zero exit) instead of killing tap.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../lib/errors';
import { encodeTabular } from '../lib/losses';
import { noiseTunnel } from '../lib/explain';

const index = path.join(__dirname, '..', 'dist', 'lib', 'index.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-native-safety-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

/**
 * Runs `body` in a fresh node with `ts` (the package), `b` (the raw binding),
 * `busy()` (holds the only libuv thread for a moment, so work queued after
 * it has not started when the caller changes its arrays) and `report(name,
 * promise | fn)` (prints `name: resolved` or `name: CODE message`). Returns
 * the printed lines by name, after checking that the process exited 0.
 */
function probe(t: Test, body: string, opts: { env?: Record<string, string>; args?: string[]; timeout?: number } = {}): Record<string, string> {
  const script = `
    const ts = require(${JSON.stringify(index)});
    const b = ts._native();
    const busy = () => new Promise((r) => require('node:crypto').pbkdf2('x', 'y', 200000, 32, 'sha256', r));
    const report = async (name, what) => {
      try {
        const r = await (typeof what === 'function' ? what() : what);
        console.log(name + ': resolved' + (r && r.shape ? ' ' + JSON.stringify(r.shape) : ''));
      } catch (e) {
        console.log(name + ': ' + e.code + ' ' + e.message);
      }
    };
    (async () => { ${body} })().catch((e) => { console.log('uncaught: ' + e.stack); process.exit(2); });`;
  const r = spawnSync(process.execPath, [...(opts.args ?? []), '-e', script], {
    env: { ...process.env, TABSIGHT_THREADS: '1', UV_THREADPOOL_SIZE: '1', ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeout ?? 120_000,
    cwd: root,
  });
  t.equal(r.signal, null, `no signal (stderr: ${r.stderr.slice(-400)})`);
  t.equal(r.status, 0, `exit 0 (stdout: ${r.stdout.slice(-400)} stderr: ${r.stderr.slice(-400)})`);
  const lines: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const at = line.indexOf(': ');
    if (at > 0) lines[line.slice(0, at)] = line.slice(at + 2);
  }
  return lines;
}

// A raw TrainingJob config for 4 single-channel 8×8 images (resnet18, small stem).
const JOB = `
  const fs = require('node:fs');
  const config = (over = {}) => ({
    ...ts.resolvePretrainOptions({ out: 'x', mode: 'simclr', epochs: 1, batchSize: 2,
      model: { arch: 'resnet18', smallStem: true, tabularHidden: 8, tabularLayers: 1, projectionHidden: 8, projectionDim: 4 }, ...over },
      { n: 4, channels: 1, height: 8, width: 8, dtype: 'uint8' }, { mean: [0.5], std: [0.25] }),
    outDir: fs.mkdtempSync('run-'), configJson: '{}', initWeights: undefined });
  const images = () => ({ data: new Uint8Array(4 * 64).map((_, i) => (i * 37) & 255), shape: [4, 1, 8, 8] });
`;

t.test('async work reads a copy of its inputs: transferred or shrunk buffers do not crash a queued worker', async (t) => {
  const shape = [16, 3, 32, 32];
  const n = shape.reduce((a, b) => a * b);
  const lines = probe(t, `
    const shape = ${JSON.stringify(shape)}, n = ${n};
    const pending = [];
    // augmentBatch: the input's buffer transferred away and collected, or shrunk.
    for (let k = 0; k < 3; k++) {
      busy();
      const data = new Uint8Array(n).fill(k);
      pending.push(report('transferred ' + k, ts.augmentBatch({ data, shape }, { outSize: [32, 32] }, k)));
      structuredClone(data.buffer, { transfer: [data.buffer] });
      global.gc();
    }
    for (let k = 0; k < 3; k++) {
      busy();
      const ab = new ArrayBuffer(n, { maxByteLength: n });
      pending.push(report('shrunk ' + k, ts.augmentBatch({ data: new Uint8Array(ab), shape }, { outSize: [32, 32] }, k)));
      ab.resize(0);
    }
    await Promise.all(pending);
    // augment's output array (into): shrunk or transferred while the worker runs.
    busy();
    const outAb = new ArrayBuffer(n * 4, { maxByteLength: n * 4 });
    const shrunkInto = ts.augmentBatch({ data: new Uint8Array(n), shape }, {}, 1, new Float32Array(outAb));
    outAb.resize(0);
    await report('into shrunk', shrunkInto);
    busy();
    const into = new Float32Array(n);
    const movedInto = ts.augmentBatch({ data: new Uint8Array(n), shape }, {}, 1, into);
    structuredClone(into.buffer, { transfer: [into.buffer] });
    global.gc();
    await report('into transferred', movedInto);
    const kept = new Float32Array(n).fill(NaN);
    const res = await ts.augmentBatch({ data: new Uint8Array(n).fill(255), shape }, { rate: 0 }, 1, kept);
    console.log('into kept: ' + (res.data === kept) + ' ' + kept.every((v) => v === 1));
    // ImageEncoder.embed and an attribution method.
    const enc = new b.ImageEncoder({ arch: 'resnet18', inChannels: 1, smallStem: true, seed: 1, device: 'cpu' });
    busy();
    const eab = new ArrayBuffer(4 * 64, { maxByteLength: 4 * 64 });
    const embedded = enc.embed(new Uint8Array(eab), [4, 1, 8, 8], { mean: [0], std: [1], outSize: [8, 8], batchSize: 2 });
    eab.resize(0);
    await report('embed shrunk', embedded);
    busy();
    const xab = new ArrayBuffer(2 * 3 * 3 * 4, { maxByteLength: 2 * 3 * 3 * 4 });
    const x = new Float32Array(xab).fill(1);
    const toy = b.attributeToy(x, [2, 1, 3, 3], { net: 'linear', weight: new Float32Array(9).fill(1), weightShape: [1, 3, 3],
      method: { name: 'saliency', abs: true, batchSize: 0 } });
    xab.resize(0);
    await report('attribution shrunk', toy);
  `, { args: ['--expose-gc'] });
  for (let k = 0; k < 3; k++) {
    t.equal(lines[`transferred ${k}`], `resolved ${JSON.stringify(shape)}`);
    t.equal(lines[`shrunk ${k}`], `resolved ${JSON.stringify(shape)}`);
  }
  t.match(lines['into shrunk'], /^ERR_SHAPE Expected the augment output to keep its \d+ elements but its buffer was detached or resized \(0 elements\)/);
  t.match(lines['into transferred'], /^ERR_SHAPE .*detached or resized/);
  t.equal(lines['into kept'], 'true true', 'an untouched into is still written and resolved with');
  t.equal(lines['embed shrunk'], 'resolved [4,512]');
  t.equal(lines['attribution shrunk'], 'resolved [2,1,3,3]');
});

t.test('a TrainingJob copies its arrays: shrinking them after construction does not crash run()', async (t) => {
  const lines = probe(t, `${JOB}
    const ab = new ArrayBuffer(4 * 64, { maxByteLength: 4 * 64 });
    new Uint8Array(ab).set(images().data);
    const labels = new BigInt64Array([0n, 1n, 0n, 1n]);
    const job = new b.TrainingJob(config(), { images: { data: new Uint8Array(ab), shape: [4, 1, 8, 8] }, labels });
    ab.resize(0);
    structuredClone(labels.buffer, { transfer: [labels.buffer] });
    await report('run', job.run(() => {}, '').then((s) => ({ shape: [s.stepsDone] })));
  `);
  t.equal(lines.run, 'resolved [2]');
});

t.test('cardinalities are bounded and the one-hot width cannot wrap', async (t) => {
  const K = 2 ** 62;
  const lines = probe(t, `
    report('raw encodeTabular', () => b.encodeTabular(new Float32Array([1e9, 0, 0, 0, 0]), [1, 5], [${K}, ${K}, ${K}, ${K}, 1]));
    report('public encodeTabular', () => ts.encodeTabular(new Float32Array([1e9, 0, 0, 0, 0]), [1, 5], [${K}, ${K}, ${K}, ${K}, 1]));
    const model = { path: 'nowhere', format: 'checkpoint', device: 'cpu', arch: 'resnet18', inChannels: 1, smallStem: true,
                    tabularHidden: 4, tabularLayers: 1, projectionHidden: 4, projectionDim: 3, cardinalities: [-3, 5] };
    const method = { name: 'integrated_gradients', igMethod: 'gausslegendre', steps: 4, internalBatchSize: 8 };
    await report('negative', () => b.attributeTabular(new Float32Array([0, 2, 0, 2]), [2, 2], { model, target: { kind: 'feature', index: [0] }, method }));
    report('huge shape', () => b.encodeTabular(new Float32Array(0), [2 ** 32, 2 ** 32], [0, 0]));
  `);
  t.equal(lines['raw encodeTabular'], `ERR_CONFIG Expected integer between 0 and 16777216 for cardinalities[0] but received ${BigInt(K)}`);
  t.match(lines['public encodeTabular'], /^ERR_CONFIG Expected integer between 0 and 16777216 for cardinalities\[0\]/);
  t.equal(lines.negative, 'ERR_CONFIG Expected integer between 0 and 16777216 for model.cardinalities[0]');
  t.match(lines['huge shape'], /^ERR_SHAPE /);
  // In this process: the friendly TypeScript checks, and codes that are out of range.
  t.throws(() => encodeTabular(new Float32Array(2), [1, 2], [2 ** 24 + 1, 0]), new ConfigError('Expected integer between 0 and 16777216 for cardinalities[0] but received 16777217 of type number'));
  t.throws(() => encodeTabular(new Float32Array([0, 3]), [1, 2], [0, 3]), { code: 'ERR_DATA', message: /row 0, column 1/ });
  t.same(encodeTabular(new Float32Array([-1, 2]), [1, 2], [2, 3]).data, [0, 0, 0, 0, 1], 'code −1 is all zeros');
});

t.test('thread counts are bounded (libgomp exits the process on huge ones)', async (t) => {
  const lines = probe(t, `
    report('setThreads', () => b.setThreads(2e9));
    report('setThreads wrap', () => b.setThreads(2 ** 32 + 1));
    report('setDataThreads', () => b.setDataThreads(2e9));
    console.log('threads: ' + b.runtimeInfo().threads);
    await report('pretrain', ts.pretrain({ out: 'p', images: { data: new Uint8Array(4 * 64), shape: [4, 1, 8, 8] }, threads: 2e9 }));
  `);
  t.equal(lines.setThreads, 'ERR_CONFIG Expected integer between 1 and 1024 for threads but received 2000000000');
  t.equal(lines['setThreads wrap'], 'ERR_CONFIG Expected integer between 1 and 1024 for threads but received 4294967297');
  t.equal(lines.setDataThreads, 'ERR_CONFIG Expected integer between 0 and 1024 for dataThreads but received 2000000000');
  t.equal(lines.threads, '1', 'the count is unchanged');
  t.match(lines.pretrain, /^ERR_CONFIG .*threads/);
  for (const name of ['TABSIGHT_THREADS', 'TABSIGHT_DATA_THREADS']) {
    const r = spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(index)})._native(); } catch (e) { console.log(e.code + ' ' + e.message); }`], { env: { ...process.env, [name]: '2000000000' }, encoding: 'utf8' });
    t.equal(r.stdout.trim(), `ERR_CONFIG Expected integer between ${name === 'TABSIGHT_THREADS' ? 1 : 0} and 1024 for ${name} but received 2000000000`);
  }
});

t.test('raw TrainingJob: checkpointEvery 0, a negative image-store offset and corrupt checkpoint positions are refused', async (t) => {
  const store = path.join(root, 'store.bin');
  fs.writeFileSync(store, Buffer.alloc(64));
  const lines = probe(t, `${JOB}
    const st = ${JSON.stringify(store)};
    await report('checkpointEvery', () => new b.TrainingJob({ ...config(), checkpointEvery: 0 }, { images: images() }).run(() => {}, ''));
    await report('offset', () => new b.TrainingJob(config(), { images: { path: st, offset: -64, dtype: 'uint8', shape: [2, 1, 8, 4] } }));
    await report('offset huge', () => new b.TrainingJob(config(), { images: { path: st, offset: 2 ** 63 - 1024, dtype: 'uint8', shape: [2, 1, 8, 4] } }));
    // A finished 3-epoch run (2 steps per epoch); its checkpoint with other positions.
    const cfg = config({ epochs: 3 });
    await new b.TrainingJob(cfg, { images: images() }).run(() => {}, '');
    const saved = ts.readSafetensorsSync(cfg.outDir + '/checkpoint.safetensors');
    const tensors = {};
    for (const [name, x] of saved.tensors) tensors[name] = { dtype: x.dtype, shape: x.shape, data: x.data };
    const positions = { negative: ['-1', '0', '-2'], step: ['0', '5', '5'], beyond: ['5', '0', '10'], text: ['one', '0', '2'], ok: ['1', '1', '3'] };
    for (const [name, [epoch, step_in_epoch, global_step]] of Object.entries(positions)) {
      const file = cfg.outDir + '/' + name + '.safetensors';
      await ts.writeSafetensors(file, tensors, { ...saved.metadata, epoch, step_in_epoch, global_step, epoch_steps: '0' });
      await report('resume ' + name, new b.TrainingJob(cfg, { images: images() }).run(() => {}, file).then((s) => ({ shape: [s.stepsDone] })));
    }
  `);
  t.equal(lines.checkpointEvery, 'ERR_CONFIG Expected positive integer for checkpointEvery but received 0');
  t.match(lines.offset, /^ERR_DATA Image store .*store\.bin has a negative data offset -64$/);
  t.match(lines['offset huge'], /^ERR_DATA Image store .*store\.bin is truncated: 64 bytes/);
  t.match(lines['resume negative'], /^ERR_DATA Checkpoint .*negative\.safetensors has metadata field epoch = -1; expected an integer in \[0, 3\]/);
  t.match(lines['resume step'], /^ERR_DATA Checkpoint .*step\.safetensors has metadata field step_in_epoch = 5; expected an integer in \[0, 2\)/);
  t.match(lines['resume beyond'], /^ERR_DATA Checkpoint .*beyond\.safetensors has metadata field epoch = 5; expected an integer in \[0, 3\]/);
  t.match(lines['resume text'], /^ERR_DATA Checkpoint .*text\.safetensors has metadata field epoch = "one", not an integer/);
  t.equal(lines['resume ok'], 'resolved [6]', 'a consistent position resumes');
});

t.test('embed with batchSize 0 is refused (it looped forever); noiseTunnel samples are bounded', async (t) => {
  const lines = probe(t, `
    const enc = new b.ImageEncoder({ arch: 'resnet18', inChannels: 1, smallStem: true, seed: 1, device: 'cpu' });
    await report('embed', () => enc.embed(new Uint8Array(2 * 64), [2, 1, 8, 8], { mean: [0], std: [1], outSize: [8, 8], batchSize: 0 }));
    await report('noise', () => b.attributeToy(new Float32Array(9), [1, 1, 3, 3], { net: 'linear', weight: new Float32Array(9), weightShape: [1, 3, 3],
      method: { name: 'saliency', abs: true, batchSize: 0, noise: { type: 'smoothgrad', samples: 10001, stdev: 1, seed: 0 } } }));
  `, { timeout: 60_000 });
  t.equal(lines.embed, 'ERR_CONFIG Expected positive integer for batchSize');
  t.equal(lines.noise, 'ERR_CONFIG Expected integer between 1 and 10000 for samples');
  await t.rejects(noiseTunnel({ path: 'nowhere' }, { data: new Float32Array(3 * 64), shape: [1, 3, 8, 8] }, { target: { kind: 'feature', index: 0 }, method: 'saliency', samples: 10001 } as never),
    new ConfigError('Expected integer between 1 and 10000 for samples but received 10001 of type number'));
});

t.test('loadWeights of a directory is ERR_DATA naming it; missing raw arguments give coded errors', async (t) => {
  const lines = probe(t, `
    const enc = new b.ImageEncoder({ arch: 'resnet18', inChannels: 1, smallStem: true, seed: 1, device: 'cpu' });
    await report('directory', () => enc.loadWeights(${JSON.stringify(root)}));
    await report('no path', () => enc.loadWeights());
    await report('embed', () => enc.embed(new Uint8Array(64), [1, 1, 8, 8]));
    await report('clipLoss', () => b.clipLoss(new Float32Array(4), new Float32Array(4), [2, 2]));
    await report('ntXentLoss', () => b.ntXentLoss(new Float32Array(4), new Float32Array(4), [2, 2]));
    await report('corruptTabular', () => b.corruptTabular(new Float32Array(4), [2, 2], new Float32Array(4), [2, 2]));
    await report('TrainingJob', () => new b.TrainingJob({ get mode() { throw new Error('boom'); } }, {}));
  `);
  t.equal(lines.directory, `ERR_DATA Invalid safetensors file ${root}: it is a directory`);
  t.equal(lines['no path'], 'ERR_CONFIG Expected a string for path');
  t.equal(lines.embed, 'ERR_CONFIG Expected an options object');
  for (const name of ['clipLoss', 'ntXentLoss', 'corruptTabular']) t.match(lines[name], /^ERR_CONFIG /, name);
  t.equal(lines.TrainingJob, 'ERR_CONFIG boom', 'an error thrown by a getter keeps its message');
});
