import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { AbortError, ConfigError, DataError, DisposedError, ShapeError, TabsightError } from '../lib/errors';
import { readSafetensors } from '../lib/io/safetensors';
import {
  exportImageEncoder, exportTabularEncoder, foldBatchNorm, imageEncoderMeta, OrtImageEncoder, type HeadOptions, type WeightMap,
} from '../lib/export/index';
import { decodeModel, toNumber } from '../lib/export/onnx-builder';

const PY = '/usr/bin/python3';
const ORACLE = path.join(__dirname, 'fixtures', 'torchvision_ref.py');
const TOL = 1e-4;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-export-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

// The oracle writes weights, inputs and torchvision's outputs for every case.
let oracleError = '';
try {
  execFileSync(PY, [ORACLE, 'gen', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
} catch (err) {
  oracleError = String((err as { stderr?: Buffer }).stderr ?? err);
}
// Without the oracle (no Debian torch), the comparisons are skipped, not failed.
const skip = /No module named|ENOENT/.test(oracleError)
  ? `needs ${PY} with torch, torchvision and onnx: ${oracleError.trim().split('\n').pop()}`
  : false;
if (!skip) t.equal(oracleError, '', 'the oracle script ran');
const test = (name: string, fn: (t: tap.Test) => Promise<void>) => t.test(name, { skip }, fn);

type Case = {
  weights: string; input: string; input_shape: number[]; ref: string; ref64: string; ref_shape: number[];
  torch_f32_vs_f64: number; mean?: number[]; std?: number[]; input_scale?: number;
};
const manifest = (skip ? {} : JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'))) as Record<string, Case>;
const raw = (file: string): Buffer => fs.readFileSync(path.join(dir, file));
const f32 = (file: string): Float32Array => { const b = raw(file); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
const f64 = (file: string): Float64Array => { const b = raw(file); return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
const weightsCache = new Map<string, Promise<{ tensors: WeightMap; metadata: Record<string, string> }>>();
const weights = (c: Case) => {
  if (!weightsCache.has(c.weights)) weightsCache.set(c.weights, readSafetensors(path.join(dir, c.weights)));
  return weightsCache.get(c.weights)!;
};
const exported: string[] = [];
const measured: string[] = [];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Seeded uniform values in [-a, a] (mulberry32). */
function uniform(n: number, a: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed + 0x6d2b79f5) | 0;
    let r = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    out[i] = a * (2 * (((r ^ (r >>> 14)) >>> 0) / 4294967296) - 1);
  }
  return out;
}

function randomHead(kind: HeadOptions['kind'], k: number, dim: number, classes: string[], seed: number): HeadOptions {
  const bound = 1 / Math.sqrt(dim); // torch's Linear init range
  return { weight: uniform(k * dim, bound, seed), bias: uniform(k, bound, seed + 1), classes, kind, task: `test-${kind}` };
}

/** logits = feat · Wᵀ + b in float64, from torchvision's features. */
function headOracle(feat: ArrayLike<number>, n: number, h: HeadOptions): Float64Array {
  const k = h.bias.length;
  const dim = feat.length / n;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      let s = h.bias[j];
      for (let d = 0; d < dim; d++) s += feat[i * dim + d] * h.weight[j * dim + d];
      out[i * k + j] = s;
    }
  }
  return out;
}

function softmax(logits: Float64Array, k: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i += k) {
    const row = logits.subarray(i, i + k);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    e.forEach((v, j) => { out[i + j] = v / s; });
  }
  return out;
}

async function exportCase(name: string, file: string, opts: Parameters<typeof exportImageEncoder>[2] = {}): Promise<string> {
  const c = manifest[name];
  const { tensors, metadata } = await weights(c);
  const onnxFile = path.join(dir, file);
  fs.writeFileSync(onnxFile, exportImageEncoder(tensors, imageEncoderMeta(metadata), opts));
  exported.push(onnxFile);
  return onnxFile;
}

/** Embeds a case's input at batch sizes 7 and 1, and checks the features against torchvision. */
async function checkFeatures(t: tap.Test, name: string, enc: OrtImageEncoder, label = name) {
  const c = manifest[name];
  const n = c.input_shape[0];
  const shape = c.input_shape as [number, number, number, number];
  const results = [];
  for (const batchSize of [7, 1]) {
    const out = await enc.embed({ data: f32(c.input), shape }, { batchSize });
    t.equal(out.embedding.length, c.ref_shape[0] * c.ref_shape[1]);
    const d = maxAbsDiff(out.embedding, f32(c.ref));
    const d64 = maxAbsDiff(out.embedding, f64(c.ref64));
    t.ok(d <= TOL, `${label} batch ${batchSize}: max |ORT − torchvision| = ${d.toExponential(2)} ≤ ${TOL}`);
    measured.push(`${label} embedding, batch ${batchSize}: ${d.toExponential(2)} vs torch f32, ${d64.toExponential(2)} vs torch f64 (torch f32 vs f64: ${c.torch_f32_vs_f64.toExponential(2)})`);
    results.push(out);
  }
  t.equal(maxAbsDiff(results[0].embedding, results[1].embedding) <= 1e-5, true, 'batch 1 and batch 7 agree');
  return { out: results[0], n, c };
}

t.test('foldBatchNorm matches the closed form w·γ/√(var+ε), β + (b − mean)·γ/√(var+ε)', async (t) => {
  const w = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8); // [2, 1, 2, 2]
  const bn = { gamma: Float32Array.of(2, 0.5), beta: Float32Array.of(0.1, -0.2), mean: Float32Array.of(1, -1), variance: Float32Array.of(3, 0.25) };
  const s = [2 / Math.sqrt(3 + 1e-5), 0.5 / Math.sqrt(0.25 + 1e-5)];
  const f = foldBatchNorm(w, undefined, bn);
  t.ok(maxAbsDiff(f.weight, Array.from(w, (v, i) => v * s[i < 4 ? 0 : 1])) < 1e-6);
  t.ok(maxAbsDiff(f.bias, [0.1 - 1 * s[0], -0.2 + 1 * s[1]]) < 1e-6);
  const g = foldBatchNorm(w, Float32Array.of(0.5, -1), bn, 1e-3);
  const s3 = [2 / Math.sqrt(3 + 1e-3), 0.5 / Math.sqrt(0.25 + 1e-3)];
  t.ok(maxAbsDiff(g.bias, [0.1 + (0.5 - 1) * s3[0], -0.2 + (-1 + 1) * s3[1]]) < 1e-6, 'with a bias and another ε');
});

test('exportImageEncoder#resnet18 matches torchvision at batch 1 and 7 (64 px), streaming with progress', async (t) => {
  const file = await exportCase('r18', 'r18.onnx', { metadata: { dataset: 'synthetic' } });
  const enc = await OrtImageEncoder.load(file, { threads: 1 });
  t.same(enc.inputInfo, { channels: 3, height: null, width: null, dim: 512 });
  const md = enc.metadata;
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
  t.match(md, {
    'tabsight.version': pkg.version, 'tabsight.arch': 'resnet18', 'tabsight.in_channels': '3', 'tabsight.small_stem': 'false',
    'tabsight.image_size': 'dynamic', 'tabsight.normalization': 'none', 'tabsight.input_range': 'unspecified',
    'tabsight.outputs': 'embedding', dataset: 'synthetic',
  });
  const model = decodeModel(fs.readFileSync(file));
  t.equal(toNumber(model.irVersion), 7);
  t.same(model.opsetImport!.map((o) => [o.domain, toNumber(o.version)]), [['', 13]]);
  const ops = new Set(model.graph!.node!.map((n) => n.opType));
  t.same([...ops].sort(), ['Add', 'Conv', 'Flatten', 'GlobalAveragePool', 'MaxPool', 'Relu'], 'BatchNorm is folded away');
  await checkFeatures(t, 'r18', enc);
  const progress: number[] = [];
  const c = manifest.r18;
  const out = await enc.embed({ data: f32(c.input), shape: c.input_shape as [number, number, number, number] }, { batchSize: 3, onProgress: (p) => progress.push(p.done) });
  t.same(progress, [3, 6, 7], 'batches of 3, 3 and 1');
  t.ok(maxAbsDiff(out.embedding, f32(c.ref)) <= TOL);
  await enc.dispose();
});

test('exportImageEncoder#resnet18 with baked normalisation and a multiclass head takes 0–255 floats or bytes', async (t) => {
  const c = manifest.r18_norm;
  const head = randomHead('multiclass', 3, 512, ['a', 'b', 'c'], 11);
  const file = await exportCase('r18_norm', 'r18_head.onnx', { normalize: { mean: c.mean!, std: c.std!, inputScale: c.input_scale }, head });
  const enc = await OrtImageEncoder.load(file);
  t.match(enc.metadata, { 'tabsight.input_range': '0,255', 'tabsight.head.kind': 'multiclass', 'tabsight.head.task': 'test-multiclass', 'tabsight.head.classes': '["a","b","c"]' });
  t.same(JSON.parse(enc.metadata['tabsight.normalization']).mean, c.mean);
  const { out, n } = await checkFeatures(t, 'r18_norm', enc);
  const logits = headOracle(f32(c.ref), n, head);
  for (const batchSize of [7, 1]) {
    const r = batchSize === 7 ? out : await enc.embed({ data: f32(c.input), shape: c.input_shape as [number, number, number, number] }, { batchSize });
    const dl = maxAbsDiff(r.logits!, logits);
    const dp = maxAbsDiff(r.probabilities!, softmax(logits, 3));
    t.ok(dl <= TOL && dp <= TOL, `logits ${dl.toExponential(2)}, probabilities ${dp.toExponential(2)} ≤ ${TOL}`);
    measured.push(`r18 multiclass head, batch ${batchSize}: logits ${dl.toExponential(2)}, probabilities ${dp.toExponential(2)} vs float64 oracle`);
  }
  const bytes = Uint8Array.from(f32(c.input));
  const fromBytes = await enc.embed({ data: bytes, shape: c.input_shape as [number, number, number, number] }, { batchSize: 4 });
  t.equal(maxAbsDiff(fromBytes.embedding, out.embedding), 0, 'Uint8Array input gives the same features');
  await enc.dispose();
});

test('exportImageEncoder#resnet50 matches torchvision at batch 1 and 7 (32 px), without and with a binary head', async (t) => {
  const plain = await OrtImageEncoder.load(await exportCase('r50', 'r50.onnx'));
  t.equal(plain.inputInfo.dim, 2048);
  await checkFeatures(t, 'r50', plain);
  await plain.dispose();
  const head = randomHead('binary', 1, 2048, ['healthy', 'infarction'], 5);
  const enc = await OrtImageEncoder.load(await exportCase('r50', 'r50_head.onnx', { head }));
  const { out, n, c } = await checkFeatures(t, 'r50', enc, 'r50 (with head)');
  const logits = headOracle(f32(c.ref), n, head);
  const dl = maxAbsDiff(out.logits!, logits);
  const dp = maxAbsDiff(out.probabilities!, logits.map((v) => 1 / (1 + Math.exp(-v))));
  t.ok(dl <= TOL && dp <= TOL, `logits ${dl.toExponential(2)}, probabilities ${dp.toExponential(2)}`);
  measured.push(`r50 binary head, batch 7: logits ${dl.toExponential(2)}, probabilities ${dp.toExponential(2)} vs float64 oracle`);
  await enc.dispose();
});

test('exportImageEncoder#small stem (1 channel, fixed 28 px) matches the torchvision reference, with a regression head', async (t) => {
  const head = randomHead('regression', 2, 512, ['lvef', 'age'], 3);
  // mean 0 / std 1 changes nothing but declares the input range [0, 1].
  const file = await exportCase('r18_small', 'r18_small.onnx', { head, normalize: { mean: [0], std: [1] } });
  const enc = await OrtImageEncoder.load(file);
  t.same(enc.inputInfo, { channels: 1, height: 28, width: 28, dim: 512 });
  t.match(enc.metadata, { 'tabsight.small_stem': 'true', 'tabsight.image_size': '28x28', 'tabsight.outputs': 'embedding,prediction' });
  const { out, n, c } = await checkFeatures(t, 'r18_small', enc);
  t.equal(out.logits, undefined);
  const d = maxAbsDiff(out.prediction!, headOracle(f32(c.ref), n, head));
  t.ok(d <= TOL, `prediction ${d.toExponential(2)}`);
  measured.push(`r18 small stem regression head, batch 7: prediction ${d.toExponential(2)} vs float64 oracle`);
  const ops = decodeModel(fs.readFileSync(file)).graph!.node!.map((x) => x.opType);
  t.notOk(ops.includes('MaxPool'), 'no max-pool in the small stem');
  await enc.dispose();
  // A fixed batch of 4: 7 images run as 4 + 3 (zero-padded to 4).
  const fixed = await OrtImageEncoder.load(await exportCase('r18_small', 'r18_small_b4.onnx', { batchStatic: 4 }));
  const r = await fixed.embed({ data: f32(c.input), shape: c.input_shape as [number, number, number, number] }, { batchSize: 2 });
  const df = maxAbsDiff(r.embedding, f32(c.ref));
  t.ok(df <= TOL, `fixed batch 4: ${df.toExponential(2)}`);
  measured.push(`r18 small stem, fixed batch 4 (7 images): ${df.toExponential(2)} vs torch f32`);
  await fixed.dispose();
});

test('exportTabularEncoder matches torch nn.Sequential (Linear, 2 × [BatchNorm1d, ReLU, Linear])', async (t) => {
  const c = manifest.tab;
  const { tensors } = await weights(c);
  const bytes = exportTabularEncoder(tensors, { inFeatures: 20 });
  const file = path.join(dir, 'tab.onnx');
  fs.writeFileSync(file, bytes);
  exported.push(file);
  const session = await ort.InferenceSession.create(bytes);
  const x = f32(c.input);
  const ref = f32(c.ref);
  for (const n of [7, 1]) {
    const out = await session.run({ features: new ort.Tensor('float32', x.subarray(0, n * 20), [n, 20]) });
    const d = maxAbsDiff(out.embedding.data as Float32Array, ref.subarray(0, n * 64));
    t.ok(d <= TOL, `batch ${n}: ${d.toExponential(2)}`);
    measured.push(`tabular encoder, batch ${n}: ${d.toExponential(2)} vs torch f32`);
  }
  const meta = Object.fromEntries(decodeModel(bytes).metadataProps!.map((p) => [p.key, p.value]));
  t.match(meta, { 'tabsight.model': 'tabular_encoder', 'tabsight.in_features': '20', 'tabsight.layers': '3', 'tabsight.embedding_dim': '64' });
  await session.release();
});

async function expectError(t: tap.Test, fn: () => unknown, cls: new (message: string) => TabsightError, parts: string[]) {
  let err: unknown;
  try { await fn(); } catch (e) { err = e; }
  t.ok(err instanceof cls, `${cls.name}: ${(err as Error)?.message}`);
  t.equal((err as TabsightError)?.code, new cls('').code);
  for (const p of parts) t.match((err as Error)?.message ?? '', p);
}

test('OrtImageEncoder#embed rejects wrong channels, size, dtype and length with ERR_SHAPE before running', async (t) => {
  const r18 = path.join(dir, 'r18.onnx');
  const small = path.join(dir, 'r18_small.onnx');
  const enc = await OrtImageEncoder.load(r18);
  const encSmall = await OrtImageEncoder.load(small);
  let runs = 0;
  const onProgress = () => { runs++; };
  await expectError(t, () => enc.embed({ data: new Float32Array(2 * 1 * 32 * 32), shape: [2, 1, 32, 32] }, { onProgress }), ShapeError,
    [`Expected 3 channels for images but received 1 (model ${r18})`]);
  await expectError(t, () => encSmall.embed({ data: new Float32Array(2 * 32 * 32), shape: [2, 1, 32, 32] }, { onProgress }), ShapeError,
    ['Expected 28×28 images (height×width) but received 32×32', small]);
  await expectError(t, () => enc.embed({ data: new Int32Array(3 * 8 * 8) as unknown as Float32Array, shape: [1, 3, 8, 8] }, { onProgress }), ShapeError,
    ['Expected Float32Array or Uint8Array for images.data but received a Int32Array', r18]);
  await expectError(t, () => enc.embed({ data: new Float32Array(10), shape: [1, 3, 8, 8] }, { onProgress }), ShapeError, ['192 values', 'received 10']);
  await expectError(t, () => enc.embed({ data: new Float32Array(3), shape: [1, 3, 1] as never }, { onProgress }), ShapeError, ['images.shape']);
  await expectError(t, () => encSmall.embed({ data: new Uint8Array(28 * 28), shape: [1, 1, 28, 28] }, { onProgress }), ShapeError,
    ['Expected float32 images in [0, 1] but received a Uint8Array', small]);
  t.equal(runs, 0, 'nothing ran');
  await expectError(t, () => enc.embed({ data: new Float32Array(3 * 64), shape: [1, 3, 8, 8] }, { batchSize: 0 }), ConfigError, ['batchSize']);
  const ac = new AbortController();
  ac.abort();
  await expectError(t, () => enc.embed({ data: new Float32Array(3 * 64), shape: [1, 3, 8, 8] }, { signal: ac.signal }), AbortError, ['aborted']);
  await expectError(t, () => OrtImageEncoder.load(r18, { threads: 0 }), ConfigError, ['threads']);
  const cpus = os.availableParallelism();
  await expectError(t, () => OrtImageEncoder.load(r18, { threads: 4 * cpus + 1 }), ConfigError, [`Expected threads at most ${4 * cpus} (4× the ${cpus} CPU(s) this process may use) but received ${4 * cpus + 1}`]);
  await (await OrtImageEncoder.load(r18, { threads: 4 * cpus })).dispose();
  await expectError(t, () => OrtImageEncoder.load(path.join(dir, 'nope.onnx')), DataError, ['nope.onnx']);
  await enc.dispose();
  await encSmall.dispose();
  await expectError(t, () => enc.embed({ data: new Float32Array(3 * 64), shape: [1, 3, 8, 8] }), DisposedError, ['disposed', r18]);
});

test('exportImageEncoder and exportTabularEncoder reject missing or mismatched weights with ERR_DATA naming the tensor', async (t) => {
  const r18 = await weights(manifest.r18);
  const meta = imageEncoderMeta(r18.metadata);
  const without = new Map(r18.tensors);
  without.delete('layer3.1.bn2.running_var');
  await expectError(t, () => exportImageEncoder(without, meta), DataError, ['Missing weight "layer3.1.bn2.running_var"', 'resnet18']);
  await expectError(t, () => exportImageEncoder(r18.tensors, { ...meta, arch: 'resnet50' }), DataError, ['"layer1.0.conv1.weight" has shape [64, 64, 3, 3]', '[64, 64, 1, 1]']);
  await expectError(t, () => exportImageEncoder(r18.tensors, { ...meta, inChannels: 1 }), DataError, ['"conv1.weight" has shape [64, 3, 7, 7]']);
  const extra = new Map(r18.tensors).set('layer5.0.conv1.weight', r18.tensors.get('conv1.weight')!);
  await expectError(t, () => exportImageEncoder(extra, meta), DataError, ['Unexpected weight "layer5.0.conv1.weight"']);
  await expectError(t, () => imageEncoderMeta({ in_channels: '3', small_stem: 'false' }, 'enc.safetensors'), DataError, ['"arch"', 'enc.safetensors']);
  await expectError(t, () => exportImageEncoder(r18.tensors, meta, { head: { ...randomHead('multiclass', 3, 512, ['a', 'b', 'c'], 1), weight: new Float32Array(10) } }), ShapeError, ['head.weight', '1536']);
  await expectError(t, () => exportImageEncoder(r18.tensors, meta, { normalize: { mean: [0, 0], std: [1, 1, 1] } }), ConfigError, ['normalize.mean']);
  await expectError(t, () => exportImageEncoder(r18.tensors, meta, { metadata: { 'tabsight.arch': 'x' } }), ConfigError, ['tabsight.arch']);
  const tab = new Map((await weights(manifest.tab)).tensors);
  tab.delete('encoder.4.running_var');
  await expectError(t, () => exportTabularEncoder(tab), DataError, ['Missing weight "encoder.4.running_var"', 'tabular encoder']);
});

test('every exported file passes onnx.checker.check_model(full_check=True)', async (t) => {
  t.equal(exported.length, 7, 'seven models were exported');
  let out = '';
  try {
    out = execFileSync(PY, [ORACLE, 'check', ...exported], { encoding: 'utf8' });
  } catch (err) {
    out = String((err as { stdout?: string }).stdout ?? err);
  }
  for (const f of exported) t.match(out, `OK ${f}`, `${path.basename(f)} passes the checker`);
  t.notMatch(out, 'FAIL');
  t.comment(`max abs differences measured:\n${measured.join('\n')}`);
});
