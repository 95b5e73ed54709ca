// The deploy path: ONNX export of runs (with probe heads), onnxruntime vs
// OUR LibTorch on the same weights, the embed/predict/export CLI, evaluation
// through onnxruntime, and verifyExportedProbe.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import {
  _native, ConfigError, DataError, evaluateRun, exportImageEncoder, exportRun, fitProbe, foldStandardization, headProbeModel, imageEncoderMeta, loadRun, mainMetric,
  OrtImageEncoder, predictProbe, pretrain, pretrainCohort, readHead, readNpy, readSafetensors, ShapeError, synthCardiac, TabsightError,
  exportedProbeMetric, verifyExportedProbe, writeHead, writeNpy, type HeadOptions, type ProbeModel, type SavedHead,
} from '../lib/index';
import { awaitNative, callNative } from '../lib/errors';
import { addDeployCommands, predictionHeader, writeWithProgress } from '../lib/cli/deploy-commands';
import { openTextOutput } from '../lib/export/images';
import { toyCohort } from './helpers/toy';
import { runCommands } from './helpers/cli';

const PY = '/usr/bin/python3';
const ORACLE = path.join(__dirname, 'fixtures', 'torchvision_ref.py');
const TOL = 1e-4;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-deploy-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const gen = path.join(root, 'gen');
execFileSync(PY, [ORACLE, 'gen', gen], { stdio: ['ignore', 'pipe', 'pipe'] });
const manifest = JSON.parse(fs.readFileSync(path.join(gen, 'manifest.json'), 'utf8')) as Record<string, { weights: string; input: string; input_shape: number[] }>;
const exported: string[] = [];
const measured: string[] = [];

const f32 = (file: string) => { const b = fs.readFileSync(file); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
/** A head as a ProbeModel in raw space (mean 0, std 1), so predictProbe computes the same map in float64. */
function rawProbe(h: HeadOptions, dim: number): ProbeModel {
  return { kind: h.kind, dim, nClasses: h.kind === 'multiclass' ? h.classes.length : h.kind === 'binary' ? 2 : 0, weights: Float64Array.from(h.weight), bias: Float64Array.from(h.bias),
    mean: new Float64Array(dim), std: new Float64Array(dim).fill(1), l2: 0, monitor: 'auc', bestEpoch: 0, valMetric: NaN, history: [] };
}
function randomHead(kind: HeadOptions['kind'], classes: string[], k: number, dim: number, seed: number): HeadOptions {
  let s = seed;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (2 * s) / 2 ** 32 - 1; };
  return { kind, classes, task: `t-${kind}`, weight: Float32Array.from({ length: k * dim }, () => u() / Math.sqrt(dim)), bias: Float32Array.from({ length: k }, u) };
}
/** ORT outputs at batch 1 and 7 against OUR LibTorch embeddings (and the head against predictProbe on them). */
async function compare(t: Test, label: string, file: string, images: { data: Float32Array | Uint8Array; shape: [number, number, number, number] }, torchEmb: Float32Array, probe?: ProbeModel) {
  exported.push(file);
  const enc = await OrtImageEncoder.load(file, { threads: 2 });
  for (const batchSize of [1, 7]) {
    const out = await enc.embed(images, { batchSize });
    const d = maxAbsDiff(out.embedding, torchEmb);
    t.ok(d <= TOL, `${label} batch ${batchSize}: max |ORT − LibTorch| = ${d.toExponential(2)}`);
    measured.push(`${label}, batch ${batchSize}: embedding ${d.toExponential(2)}`);
    if (probe) {
      const p = predictProbe(probe, torchEmb);
      const got = probe.kind === 'regression' ? out.prediction! : out.probabilities!;
      const want = probe.kind === 'regression' ? p.predictions : p.probabilities!;
      const scale = Math.max(1, ...Array.from(want, Math.abs));
      const dp = maxAbsDiff(got, want);
      t.ok(dp <= TOL * scale, `${label} batch ${batchSize}: head ${probe.kind} |ORT − predictProbe(LibTorch)| = ${dp.toExponential(2)} (≤ ${TOL} × ${scale.toPrecision(3)})`);
      measured.push(`${label}, batch ${batchSize}: head ${probe.kind === 'regression' ? 'prediction' : 'probabilities'} ${dp.toExponential(2)}${scale > 1 ? ` (values up to ${scale.toPrecision(3)})` : ''}`);
    }
  }
  await enc.dispose();
}
type Test = tap.Test;
async function expectError(t: Test, fn: () => unknown, cls: new (m: string) => TabsightError, parts: (string | RegExp)[]) {
  let err: unknown;
  try { await fn(); } catch (e) { err = e; }
  t.ok(err instanceof cls, `${cls.name}: ${(err as Error)?.message}`);
  for (const p of parts) t.match((err as Error)?.message ?? '', p);
}
const cli = async (...args: string[]): Promise<string> => (await runCommands(addDeployCommands, ...args)).stdout;
const parseCsv = (file: string) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(','));

t.test('(a) random weights with non-trivial BatchNorm: ORT equals our native ImageEncoder, with and without a head', async (t) => {
  const cases: [string, 'resnet18' | 'resnet50', number, boolean, HeadOptions['kind'], string[]][] = [
    ['r18', 'resnet18', 3, false, 'multiclass', ['a', 'b', 'c']],
    ['r50', 'resnet50', 3, false, 'binary', ['healthy', 'scar']],
    ['r18_small', 'resnet18', 1, true, 'regression', []],
  ];
  for (const [name, arch, channels, smallStem, kind, classes] of cases) {
    const c = manifest[name];
    const enc = callNative(() => new (_native().ImageEncoder)({ arch, inChannels: channels, smallStem, seed: 0, device: 'cpu' }));
    await awaitNative(enc.loadWeights(path.join(gen, c.weights)));
    const x = f32(path.join(gen, c.input));
    const shape = c.input_shape as [number, number, number, number];
    const ours = (await awaitNative(enc.embed(x, shape, { mean: new Array(channels).fill(0), std: new Array(channels).fill(1), outSize: [shape[2], shape[3]], batchSize: 3 })) as { data: Float32Array }).data;
    enc.dispose();
    const { tensors, metadata } = await readSafetensors(path.join(gen, c.weights));
    const dim = arch === 'resnet50' ? 2048 : 512;
    const head = randomHead(kind, classes, kind === 'multiclass' ? 3 : 1, dim, 7);
    for (const withHead of [false, true]) {
      const file = path.join(root, `${name}${withHead ? '_head' : ''}.onnx`);
      fs.writeFileSync(file, exportImageEncoder(tensors, imageEncoderMeta(metadata), withHead ? { head } : {}));
      await compare(t, `random ${name}${withHead ? ` + ${kind} head` : ''}`, file, { data: x, shape }, ours, withHead ? rawProbe(head, dim) : undefined);
    }
  }
});

// A small synthetic cardiac cohort and a ResNet-18 pretrained on it (one epoch).
const cohortDir = path.join(root, 'cohort');
const runDir = path.join(root, 'run18');
const tasks = ['cad', 'lvef'];
let ready: Promise<void> | undefined;
const cohortRun = () => (ready ??= (async () => {
  await synthCardiac({ out: cohortDir, n: 120, size: 32, seed: 0 });
  await pretrainCohort({ cohort: cohortDir, out: runDir, epochs: 1, batchSize: 32, warmupEpochs: 0, augment: { rate: 0 },
    model: { arch: 'resnet18', smallStem: false, tabularHidden: 32, projectionHidden: 32, projectionDim: 16 } });
})());

t.test('evaluateRun: heads are saved, and backends ort and torch give the same metrics', async (t) => {
  await cohortRun();
  const heads = path.join(runDir, 'heads');
  const viaTorch = await evaluateRun({ run: runDir, cohort: cohortDir, tasks, seeds: 2, backend: 'torch', saveHeads: heads });
  const viaOrt = await evaluateRun({ run: runDir, cohort: cohortDir, tasks, seeds: 2, backend: 'ort' });
  const auto = await evaluateRun({ run: runDir, cohort: cohortDir, tasks: ['cad'], seeds: 1 });
  t.equal(viaTorch.embeddingBackend, 'torch');
  t.equal(viaOrt.embeddingBackend, 'ort');
  t.equal(auto.embeddingBackend, 'ort', 'auto picks onnxruntime when it matches LibTorch');
  let worst = 0;
  for (const task of tasks) {
    for (const [m, s] of Object.entries(viaTorch.tasks[task])) {
      s.values.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - viaOrt.tasks[task][m].values[i]) / Math.max(1, Math.abs(v))); });
    }
  }
  t.ok(worst <= 1e-3, `metrics via ort and torch agree: max relative difference ${worst.toExponential(2)}`);
  measured.push(`evaluateRun metrics, ort vs torch (2 tasks × 2 seeds): max relative difference ${worst.toExponential(2)}`);
  t.same(Object.keys(viaTorch.heads ?? {}).sort(), tasks);
  const cad = readHead(runDir, 'cad');
  t.match(cad, { task: 'cad', kind: 'binary', classes: ['0', '1'], dim: 512, metric: 'auc', embeddingBackend: 'torch', seed: 0, labelFraction: 1 });
  t.equal(cad.weight.length, 512);
  const lvef = readHead(runDir, 'lvef');
  t.match(lvef, { kind: 'regression', classes: [], metric: 'r2' });
  await expectError(t, () => evaluateRun({ run: runDir, cohort: cohortDir, tasks, protocol: 'finetune', saveHeads: heads }), ConfigError, ['linear protocol']);
  await expectError(t, () => evaluateRun({ run: 'random:resnet18', cohort: cohortDir, backend: 'ort' }), ConfigError, ['backend ort']);
});

t.test('(b) trained ResNet-18 run: export (with heads) via the CLI, ORT vs loadRun().embed, predict CSV, embed CLI, verifyExportedProbe', async (t) => {
  await cohortRun();
  const all = await readNpy(path.join(cohortDir, 'images.npy'));
  const n = 7;
  const data = (all.data as Uint8Array).slice(0, n * 3 * 32 * 32);
  const images = { data, shape: [n, 3, 32, 32] as [number, number, number, number] };
  const run = await loadRun(runDir);
  const torchEmb = await run.embed(images);
  run.dispose();
  const plain = path.join(root, 'r18_run.onnx');
  t.equal((await cli('export', '--run', runDir, '--out', plain)).trim(), plain);
  await compare(t, 'trained r18 run', plain, images, torchEmb);
  const meta = async (f: string) => { const e = await OrtImageEncoder.load(f, { threads: 1 }); const m = e.metadata; await e.dispose(); return m; };
  const md = await meta(plain);
  t.match(md, { 'tabsight.input_range': '0,255', 'tabsight.image_size': '32x32', 'tabsight.in_channels': '3', image_dtype: 'uint8' });
  t.equal(JSON.parse(md.run_config).imageSize, 32);
  for (const task of tasks) {
    const head = readHead(runDir, task);
    const file = path.join(root, `r18_${task}.onnx`);
    await cli('export', '--run', runDir, '--out', file, '--with-head', task);
    await compare(t, `trained r18 run + ${task} head`, file, images, torchEmb, headProbeModel(head));
    t.match(await meta(file), { 'tabsight.head.task': task, 'tabsight.head.kind': head.kind, head_metric: head.metric, head_test_metric: String(head.testMetric) });
  }
  // predict: CSV columns and values
  const npy = path.join(root, 'seven.npy');
  await writeNpy(npy, data, images.shape);
  const csv = path.join(root, 'cad.csv');
  await cli('predict', '--model', path.join(root, 'r18_cad.onnx'), '--images', npy, '--out', csv, '--batch', '3');
  const rows = parseCsv(csv);
  t.same(rows[0], ['index', 'p_0', 'p_1', 'predicted']);
  t.equal(rows.length, n + 1);
  const want = predictProbe(headProbeModel(readHead(runDir, 'cad')), torchEmb);
  const got = rows.slice(1).map((r) => Number(r[2]));
  t.ok(maxAbsDiff(got, want.probabilities!) <= TOL, 'P(1) in the CSV equals predictProbe on LibTorch embeddings');
  rows.slice(1).forEach((r, i) => {
    t.equal(Number(r[0]), i);
    t.ok(Math.abs(Number(r[1]) + Number(r[2]) - 1) < 1e-6);
    if (Math.abs(want.logits[i]) > 1e-4) t.equal(r[3], String(want.predictions[i]), `row ${i} class`);
  });
  const reg = path.join(root, 'lvef.csv');
  await cli('predict', '--model', path.join(root, 'r18_lvef.onnx'), '--cohort', cohortDir, '--out', reg);
  const regRows = parseCsv(reg);
  t.same(regRows[0], ['index', 'id', 'prediction']);
  t.equal(regRows.length, 121);
  const lvefPred = predictProbe(headProbeModel(readHead(runDir, 'lvef')), torchEmb).predictions;
  t.ok(maxAbsDiff(regRows.slice(1, n + 1).map((r) => Number(r[2])), lvefPred) <= TOL * Math.max(1, ...Array.from(lvefPred, Math.abs)), 'regression CSV');
  // embed: ORT model, run via ORT, run via LibTorch, cohort input
  // (and each backend's default batch: 64 in ORT, defaultEmbedBatch in LibTorch)
  for (const [args, batch] of [[['--model', plain], ['--batch', '4']], [['--run', runDir, '--backend', 'ort'], ['--batch', '4']], [['--run', runDir, '--backend', 'torch'], ['--batch', '4']], [['--model', plain], []], [['--run', runDir, '--backend', 'torch'], []]]) {
    const out = path.join(root, 'emb.npy');
    await cli('embed', ...args, '--images', npy, '--out', out, ...batch);
    const e = await readNpy(out);
    t.same(e.shape, [n, 512]);
    t.ok(maxAbsDiff(e.data as Float32Array, torchEmb) <= TOL, `embed ${[...args, ...batch].join(' ')}`);
  }
  await cli('embed', '--model', plain, '--cohort', cohortDir, '--out', path.join(root, 'coh.npy'), '--batch', '50');
  t.same((await readNpy(path.join(root, 'coh.npy'))).shape, [120, 512]);
  // verifyExportedProbe
  for (const task of tasks) {
    const v = await verifyExportedProbe(runDir, cohortDir, task);
    exported.push(v.onnxFile);
    t.ok(v.maxEmbeddingDiff <= TOL, `${task}: embeddings ${v.maxEmbeddingDiff.toExponential(2)}`);
    t.ok(Math.abs(v.torchMetric - readHead(runDir, task).testMetric) < 1e-9, `${task}: the saved test ${v.metric} is reproduced by LibTorch`);
    t.ok(Math.abs(v.ortMetric - v.torchMetric) <= 1e-3 * Math.max(1, Math.abs(v.torchMetric)), `${task}: ${v.metric} ORT ${v.ortMetric} vs LibTorch ${v.torchMetric}`);
    measured.push(`verifyExportedProbe ${task}: ${v.metric} ${v.torchMetric.toFixed(6)} (LibTorch) vs ${v.ortMetric.toFixed(6)} (ORT), embeddings ${v.maxEmbeddingDiff.toExponential(2)}, outputs ${v.maxOutputDiff.toExponential(2)}`);
    const m = await exportedProbeMetric(runDir, v.onnxFile, cohortDir, task, { threads: 1 });
    t.same([m.metric, m.value, m.nTest], [v.metric, v.ortMetric, v.nTest], `${task}: exportedProbeMetric gives verifyExportedProbe's ORT metric`);
  }
  // The int8 export with the cad head: exportedProbeMetric against a Mann–Whitney AUC of `predict`'s probabilities.
  const i8 = path.join(root, 'cad-int8.onnx');
  await exportRun(runDir, i8, { withHead: 'cad', quantize: { calibrationImages: 32, agreementImages: 16, threads: 1 } });
  const m8 = await exportedProbeMetric(runDir, i8, cohortDir, 'cad', { threads: 1 });
  const predCsv = path.join(root, 'cad-int8.csv');
  await cli('predict', '--model', i8, '--cohort', cohortDir, '--out', predCsv);
  const split = new Map(parseCsv(path.join(cohortDir, 'splits.csv')).slice(1).map(([id, sp]) => [id, sp]));
  const labelRows = parseCsv(path.join(cohortDir, 'labels.csv'));
  const cadCol = labelRows[0].indexOf('cad');
  const label = new Map(labelRows.slice(1).map((r) => [r[0], r[cadCol]]));
  const pos: number[] = [];
  const neg: number[] = [];
  for (const [, id, , p1] of parseCsv(predCsv).slice(1)) {
    if (split.get(id) !== 'test' || label.get(id) === '') continue;
    (label.get(id) === '1' ? pos : neg).push(Number(p1));
  }
  let wins = 0;
  for (const a of pos) for (const b of neg) wins += a > b ? 1 : a === b ? 0.5 : 0;
  const auc = wins / (pos.length * neg.length);
  t.equal(m8.nTest, pos.length + neg.length);
  t.ok(Math.abs(m8.value - auc) < 1e-6, `int8 cad: exportedProbeMetric ${m8.value} vs Mann–Whitney ${auc} from predict`);
});

t.test('(b) trained ResNet-50 run (32 px): ORT vs loadRun().embed, with a multiclass head; tabular encoder export', async (t) => {
  const toy = toyCohort(16, 32, 3);
  const dir = path.join(root, 'run50');
  await pretrain({ out: dir, images: { data: toy.images, shape: toy.shape }, tabular: { data: toy.tabular, shape: [16, toy.features] }, epochs: 1, batchSize: 8, warmupEpochs: 0,
    augment: { rate: 0 }, model: { arch: 'resnet50', smallStem: false, tabularHidden: 32, tabularLayers: 3, projectionHidden: 32, projectionDim: 16 } });
  const run = await loadRun(dir);
  const images = { data: toy.images.slice(0, 7 * 32 * 32), shape: [7, 1, 32, 32] as [number, number, number, number] };
  const torchEmb = await run.embed(images);
  const all = await run.embed({ data: toy.images, shape: toy.shape });
  run.dispose();
  const file = path.join(root, 'r50_run.onnx');
  await exportRun(dir, file);
  await compare(t, 'trained r50 run', file, images, torchEmb);
  // A 3-class probe on the run's LibTorch embeddings, saved and exported as a head.
  const y = Array.from({ length: 16 }, (_, i) => i % 3);
  const probe = fitProbe({ kind: 'multiclass', nClasses: 3, train: { x: all, y }, maxEpochs: 20 });
  const folded = foldStandardization(probe);
  const head: SavedHead = {
    format: 'tabsight-probe-head', version: 1, task: 'third', kind: 'multiclass', classes: ['x', 'y', 'z'], dim: 2048, weight: Array.from(folded.weights), bias: Array.from(folded.bias),
    metric: 'auc', testMetric: mainMetric('multiclass', y, predictProbe(probe, all)), embeddingBackend: 'torch', labelFraction: 1, seed: 0, nTrain: 16, nVal: 0, nTest: 0, run: dir, cohort: '',
    probe: { weights: Array.from(probe.weights), bias: Array.from(probe.bias), mean: Array.from(probe.mean), std: Array.from(probe.std), nClasses: 3, l2: probe.l2, bestEpoch: probe.bestEpoch, monitor: 'auc' },
  };
  await writeHead(path.join(dir, 'heads'), head);
  await exportRun(dir, path.join(root, 'r50_third.onnx'), { withHead: 'third' });
  await compare(t, 'trained r50 run + multiclass head', path.join(root, 'r50_third.onnx'), images, torchEmb, probe);
  // The tabular encoder, against a float64 forward pass of the checkpoint's weights (BatchNorm unfolded).
  const tab = path.join(root, 'r50_tabular.onnx');
  const { metadata } = await exportRun(dir, tab, { part: 'tabular' });
  exported.push(tab);
  t.match(metadata, { 'tabsight.model': 'tabular_encoder', 'tabsight.in_features': '4', 'tabsight.layers': '3', cardinalities: '[0,0,0,0]' });
  const w = (await readSafetensors(path.join(dir, 'checkpoint.safetensors'))).tensors;
  const get = (k: string) => w.get(`model.tabular.encoder.${k}`)!.data as Float32Array;
  let x: number[][] = Array.from({ length: 7 }, (_, i) => Array.from(toy.tabular.subarray(i * 4, i * 4 + 4)));
  for (let l = 0; l < 3; l++) {
    const W = get(`${3 * l}.weight`);
    const b = get(`${3 * l}.bias`);
    if (l > 0) {
      const [g, be, m, v] = ['weight', 'bias', 'running_mean', 'running_var'].map((k) => get(`${3 * l - 2}.${k}`));
      x = x.map((r) => r.map((val, j) => Math.max(0, ((val - m[j]) / Math.sqrt(v[j] + 1e-5)) * g[j] + be[j])));
    }
    x = x.map((r) => Array.from(b, (bo, o) => r.reduce((s, xv, j) => s + xv * W[o * r.length + j], bo)));
  }
  const s = await ort.InferenceSession.create(tab);
  const out = await s.run({ features: new ort.Tensor('float32', toy.tabular.slice(0, 28), [7, 4]) });
  const d = maxAbsDiff(out.embedding.data as Float32Array, x.flat());
  t.ok(d <= TOL, `tabular encoder vs float64 reference: ${d.toExponential(2)}`);
  measured.push(`tabular encoder (trained run, 3 layers) vs float64 reference: ${d.toExponential(2)}`);
  await s.release();
  await expectError(t, () => exportRun(dir, path.join(root, 'x.onnx'), { part: 'tabular', withHead: 'third' }), ConfigError, ['image encoder only']);
});

t.test('misuse gives named errors before anything runs', async (t) => {
  await cohortRun();
  const model = path.join(root, 'r18_cad.onnx');
  const out = path.join(root, 'never.npy');
  const npy = async (name: string, data: Uint8Array | Float32Array | Float64Array, shape: number[]) => { const f = path.join(root, name); await writeNpy(f, data, shape); return f; };
  const oneCh = await npy('one.npy', new Uint8Array(2 * 32 * 32), [2, 1, 32, 32]);
  const big = await npy('big.npy', new Uint8Array(2 * 3 * 40 * 40), [2, 3, 40, 40]);
  const f64 = await npy('f64.npy', new Float64Array(2 * 3 * 32 * 32), [2, 3, 32, 32]);
  const fl = await npy('f32.npy', new Float32Array(2 * 3 * 32 * 32), [2, 3, 32, 32]);
  await expectError(t, () => cli('embed', '--model', model, '--images', oneCh, '--out', out), ShapeError, ['Expected 3 channels for images but received 1', oneCh, model]);
  await expectError(t, () => cli('predict', '--model', model, '--images', big, '--out', out), ShapeError, ['Expected 32×32 images (height×width) but received 40×40']);
  await expectError(t, () => cli('embed', '--model', model, '--images', f64, '--out', out), ShapeError, ['Expected uint8, float16 or float32 images', 'float64']);
  await expectError(t, () => cli('embed', '--run', runDir, '--images', fl, '--out', out), ShapeError, ['Expected uint8 images (the run was trained on a uint8 store) but received float32']);
  await expectError(t, () => cli('embed', '--run', runDir, '--images', big, '--out', out), ShapeError, ['32×32', '40×40']);
  t.notOk(fs.existsSync(out), 'no output was written');
  await expectError(t, () => cli('export', '--run', path.join(root, 'run50'), '--out', out, '--with-head', 'cad'), ConfigError, ['Unknown task "cad"', 'third']);
  const bare = path.join(root, 'bare');
  fs.mkdirSync(bare);
  fs.copyFileSync(path.join(runDir, 'config.json'), path.join(bare, 'config.json'));
  fs.copyFileSync(path.join(runDir, 'image_encoder.safetensors'), path.join(bare, 'image_encoder.safetensors'));
  await expectError(t, () => exportRun(bare, out, { withHead: 'cad' }), ConfigError, ['No probe heads', '--save-heads']);
  await expectError(t, () => verifyExportedProbe(bare, cohortDir, 'nyha'), ConfigError, ['No probe heads']);
  await expectError(t, () => cli('predict', '--model', path.join(root, 'r18_run.onnx'), '--images', oneCh, '--out', out), ConfigError, ['has no probe head', '--with-head']);
  await expectError(t, () => cli('embed', '--model', model, '--backend', 'torch', '--images', oneCh, '--out', out), ConfigError, ['Backend torch needs a run']);
  await expectError(t, () => cli('export', '--run', bare, '--out', out, '--part', 'tabular'), DataError, ['checkpoint.safetensors is missing']);
  fs.writeFileSync(path.join(runDir, 'heads', 'broken.json'), '{"format":"tabsight-probe-head","task":"broken","kind":"binary","dim":512,"bias":[0],"weight":[1]}');
  await expectError(t, () => readHead(runDir, 'broken'), DataError, ['Invalid head file', '"weight" must hold 512']);
  const good = JSON.parse(fs.readFileSync(path.join(runDir, 'heads', 'cad.json'), 'utf8'));
  fs.writeFileSync(path.join(runDir, 'heads', 'broken.json'), JSON.stringify({ ...good, task: 'broken', classes: [...good.classes, 'maybe'] }));
  await expectError(t, () => readHead(runDir, 'broken'), DataError, [`Invalid head file ${path.join(runDir, 'heads', 'broken.json')}`, 'a binary head has 1 output and 2 classes', '3 class(es)']);
  fs.rmSync(path.join(runDir, 'heads', 'broken.json'));
});

t.test('every exported file passes onnx.checker.check_model(full_check=True)', async (t) => {
  const files = [...new Set(exported)];
  t.equal(files.length, 14, 'fourteen models were exported');
  let out = '';
  try {
    out = execFileSync(PY, [ORACLE, 'check', ...files], { encoding: 'utf8' });
  } catch (err) {
    out = String((err as { stdout?: string }).stdout ?? err);
  }
  for (const f of files) t.match(out, `OK ${f}`, `${path.basename(f)} passes the checker`);
  t.notMatch(out, 'FAIL');
  t.comment(`max abs differences measured (ORT vs our LibTorch):\n${measured.join('\n')}`);
});

t.test('embed and predict write their output completely or not at all (writeWithProgress)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-deploy-atomic-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'predictions.csv');
  let stops = 0;
  const bar = { stop: () => { stops++; } };
  // A failure after some rows were written: the bar stops, the error comes
  // through, and neither the output nor its temporary file is left.
  const failing = await openTextOutput(out);
  const err = await writeWithProgress(failing, bar, async () => {
    await failing.write('id,p\n1,0.5\n');
    throw new DataError('onnxruntime failed on batch 2');
  }).then(() => null, (e: Error) => e);
  t.match(err?.message, 'onnxruntime failed on batch 2', 'the error is rethrown');
  t.equal(stops, 1, 'the progress bar was stopped');
  t.same(fs.readdirSync(dir), [], 'no output and no temporary file');
  // Success: the file appears whole.
  const ok = await openTextOutput(out);
  await writeWithProgress(ok, bar, async () => { await ok.write('id,p\n'); await ok.write('1,0.5\n'); });
  t.equal(stops, 2);
  t.same(fs.readdirSync(dir), ['predictions.csv']);
  t.equal(fs.readFileSync(out, 'utf8'), 'id,p\n1,0.5\n');
});

t.test('audit fixes: regression CSV columns, dtype and NaN checks on the ORT path, head fingerprints, float32 input range', async (t) => {
  await cohortRun();
  const plain = path.join(root, 'r18_run.onnx');
  if (!fs.existsSync(plain)) await exportRun(runDir, plain);
  const n = 5;
  const all = await readNpy(path.join(cohortDir, 'images.npy'));
  const data = (all.data as Uint8Array).slice(0, n * 3 * 32 * 32);
  const npy = path.join(root, 'five.npy');
  await writeNpy(npy, data, [n, 3, 32, 32]);
  const out = path.join(root, 'never.npy');

  // CSV columns for regression heads: one column per output, named when the head names its targets.
  t.equal(predictionHeader({ task: 'a', kind: 'regression', classes: [], outputs: 1 }, false), 'index,prediction');
  t.equal(predictionHeader({ task: 'a', kind: 'regression', classes: ['lvef'], outputs: 1 }, true), 'index,id,prediction_lvef');
  t.equal(predictionHeader({ task: 'a', kind: 'regression', classes: [], outputs: 2 }, false), 'index,prediction_0,prediction_1');
  const two = path.join(root, 'reg2.onnx');
  const dim = 512;
  await exportRun(runDir, two, { head: { task: 'two', kind: 'regression', classes: [], weight: new Float32Array(2 * dim).fill(0.01), bias: Float32Array.from([3, -4]) } });
  const csv = path.join(root, 'reg2.csv');
  await cli('predict', '--model', two, '--images', npy, '--out', csv);
  const rows = parseCsv(csv);
  t.same(rows[0], ['index', 'prediction_0', 'prediction_1']);
  t.ok(rows.every((r) => r.length === 3), 'every row has as many cells as the header');
  const run = await loadRun(runDir);
  const emb = await run.embed({ data, shape: [n, 3, 32, 32] });
  run.dispose();
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += 0.01 * emb[i * dim + j];
    t.ok(Math.abs(Number(rows[i + 1][1]) - (s + 3)) <= 1e-3 * Math.max(1, Math.abs(s)) && Math.abs(Number(rows[i + 1][2]) - (s - 4)) <= 1e-3 * Math.max(1, Math.abs(s)), `row ${i}: both targets`);
  }

  // The ORT path refuses the other dtype than the run's store, as the LibTorch path does.
  const fl = path.join(root, 'five-f32.npy');
  await writeNpy(fl, Float32Array.from(data, (v) => v / 255), [n, 3, 32, 32]);
  for (const args of [['--model', plain], ['--run', runDir, '--backend', 'ort']]) {
    await expectError(t, () => cli('embed', ...args, '--images', fl, '--out', out), ShapeError, ['Expected uint8 images', 'trained on a uint8 store', 'received float32', fl]);
  }
  t.notOk(fs.existsSync(out));

  // OrtImageEncoder.embed refuses NaN and Inf like Run.embed, naming the image and the pixel.
  const enc = await OrtImageEncoder.load(plain, { threads: 1 });
  const bad = Float32Array.from(data);
  bad[3 * 32 * 32 + 5] = NaN;
  await expectError(t, () => enc.embed({ data: bad, shape: [n, 3, 32, 32] }), DataError, ['image 1 has NaN', 'y 0, x 5', plain]);
  bad[3 * 32 * 32 + 5] = 1;
  bad[4 * 3 * 32 * 32] = Infinity;
  await expectError(t, () => enc.embed({ data: bad, shape: [n, 3, 32, 32] }), DataError, ['image 4 has Inf', 'channel 0, y 0, x 0']);
  await enc.dispose();

  // Heads record the encoder file they were fitted on.
  const weights = path.join(runDir, 'image_encoder.safetensors');
  const sha = createHash('sha256').update(fs.readFileSync(weights)).digest('hex');
  t.equal(readHead(runDir, 'cad').encoderSha256, sha, 'the head carries the sha256 of the encoder evaluation embedded with');
  const moved = path.join(root, 'run18-moved');
  fs.cpSync(runDir, moved, { recursive: true });
  await exportRun(moved, path.join(root, 'moved-cad.onnx'), { withHead: 'cad' });
  t.pass('a copied run exports its heads (same encoder file, another folder)');
  const headPath = path.join(moved, 'heads', 'cad.json');
  const head = JSON.parse(fs.readFileSync(headPath, 'utf8'));
  fs.writeFileSync(headPath, JSON.stringify({ ...head, encoderSha256: '0'.repeat(64) }));
  await expectError(t, () => exportRun(moved, path.join(root, 'x.onnx'), { withHead: 'cad' }), DataError, [`Head file ${headPath} was fitted on another image encoder`, weights.replace(runDir, moved), '--save-heads']);
  fs.writeFileSync(headPath, JSON.stringify({ ...head, encoderSha256: 'not hex' }));
  await expectError(t, () => readHead(moved, 'cad'), DataError, ['"encoderSha256" must be 64 lowercase hex digits']);
  const { encoderSha256: _dropped, ...legacy } = head;
  fs.writeFileSync(headPath, JSON.stringify(legacy));
  await exportRun(moved, path.join(root, 'legacy-cad.onnx'), { withHead: 'cad' });
  t.pass('a head without encoderSha256 (saved before the field) still exports');
  // A head of another dim names its file.
  const r50Heads = path.join(root, 'run50', 'heads');
  fs.copyFileSync(path.join(runDir, 'heads', 'cad.json'), path.join(r50Heads, 'cad.json'));
  await expectError(t, () => exportRun(path.join(root, 'run50'), path.join(root, 'x.onnx'), { withHead: 'cad' }), DataError, [`Head file ${path.join(r50Heads, 'cad.json')} has dim 512`, 'resnet50 embeddings have 2048']);
  fs.rmSync(path.join(r50Heads, 'cad.json'));

  // A float32 store's values can have any range: the export leaves input_range unspecified, and bytes are refused.
  const toy = toyCohort(16, 16, 9);
  const fdir = path.join(root, 'run-f32');
  await pretrain({ out: fdir, images: { data: Float32Array.from(toy.images, (v) => v * 4 - 100), shape: toy.shape }, tabular: { data: toy.tabular, shape: [16, toy.features] },
    epochs: 1, batchSize: 8, warmupEpochs: 0, augment: { rate: 0 }, model: { arch: 'resnet18', smallStem: true, tabularHidden: 16, projectionHidden: 16, projectionDim: 8 } });
  const fonnx = path.join(root, 'f32.onnx');
  const { metadata } = await exportRun(fdir, fonnx);
  t.match(metadata, { 'tabsight.input_range': 'unspecified', image_dtype: 'float32' });
  const fenc = await OrtImageEncoder.load(fonnx, { threads: 1 });
  await expectError(t, () => fenc.embed({ data: toy.images.slice(0, 256), shape: [1, 1, 16, 16] }), ShapeError, ['Expected float32 images', 'float32 store', 'Uint8Array']);
  await fenc.dispose();

  // Finite images that overflow the encoder gave NaN embeddings and exit 0; now the image is named.
  // A store of values in [0, 1] has std < 1, so 3e38 becomes infinite when normalised.
  const unit = path.join(root, 'run-unit');
  await pretrain({ out: unit, images: { data: Float32Array.from(toy.images, (v) => v / 255), shape: toy.shape }, tabular: { data: toy.tabular, shape: [16, toy.features] },
    epochs: 1, batchSize: 8, warmupEpochs: 0, augment: { rate: 0 }, model: { arch: 'resnet18', smallStem: true, tabularHidden: 16, projectionHidden: 16, projectionDim: 8 } });
  const huge = path.join(root, 'huge.npy');
  const hugeData = new Float32Array(3 * 256).fill(0.5);
  hugeData.fill(3e38, 256, 512); // image 1
  await writeNpy(huge, hugeData, [3, 1, 16, 16]);
  const hugeOut = path.join(root, 'huge-emb.npy');
  for (const backend of ['torch', 'ort']) {
    await expectError(t, () => cli('embed', '--run', unit, '--backend', backend, '--images', huge, '--out', hugeOut), DataError, [`The embedding of image 1 of ${huge} is not finite`]);
    t.notOk(fs.existsSync(hugeOut), `${backend}: no output file`);
  }
});

t.test('a model\'s head metadata is checked against its head output (broken JSON crashed embed; edited classes gave mislabelled CSVs)', async (t) => {
  const { headInfo } = await import('../lib/export/backend');
  const model = (md: Record<string, string>, heads: { name: 'logits' | 'prediction'; width: number }[]) => ({ metadata: md, headOutputs: heads });
  const head = (kind: string, classes: string) => ({ 'tabsight.head.task': 't', 'tabsight.head.kind': kind, 'tabsight.head.classes': classes });
  t.equal(headInfo('m.onnx', model({}, [])), null, 'no head');
  t.same(headInfo('m.onnx', model(head('binary', '["0","1"]'), [{ name: 'logits', width: 1 }])), { task: 't', kind: 'binary', classes: ['0', '1'], outputs: 1 });
  t.same(headInfo('m.onnx', model(head('multiclass', '["a","b","c"]'), [{ name: 'logits', width: 3 }]))?.outputs, 3);
  t.same(headInfo('m.onnx', model(head('regression', '[]'), [{ name: 'prediction', width: 1 }]))?.outputs, 1);
  const refused: [Record<string, string>, { name: 'logits' | 'prediction'; width: number }[], string][] = [
    [head('multiclass', '["a","b"'), [{ name: 'logits', width: 3 }], 'metadata tabsight.head.classes is not valid JSON'],
    [head('multiclass', '{"a":1}'), [{ name: 'logits', width: 3 }], 'is not a JSON array of strings'],
    [head('multiclass', '["a","b"]'), [{ name: 'logits', width: 3 }], 'holds 2 class(es) for a multiclass head with 3 output(s)'],
    [head('binary', '["a","b","c"]'), [{ name: 'logits', width: 3 }], 'holds 3 class(es) for a binary head with 3 output(s)'],
    [head('ordinal', '["a","b"]'), [{ name: 'logits', width: 2 }], 'tabsight.head.kind is "ordinal"'],
    [head('regression', '[]'), [{ name: 'logits', width: 1 }], 'no "prediction" output'],
  ];
  for (const [md, heads, message] of refused) {
    await expectError(t, () => headInfo('m.onnx', model(md, heads)), DataError, ['m.onnx: ', message]);
  }
});

t.test('head files: a run folder named heads is still a run, and a head fitted for another task is refused', async (t) => {
  const named = path.join(root, 'x', 'heads');
  fs.mkdirSync(path.dirname(named), { recursive: true });
  fs.cpSync(runDir, named, { recursive: true });
  t.equal(readHead(named, 'cad').task, 'cad', 'RUN/heads/cad.json of a run whose folder is called heads');
  const file = path.join(named, 'heads', 'cad.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), task: 'lvef' }));
  await expectError(t, () => readHead(named, 'cad'), DataError, [`Invalid head file ${file}: "task" is "lvef" but the file is the head of task "cad"`]);
});

t.test('resuming a finished run removes its image encoder until the run ends again', async (t) => {
  const toy = toyCohort(16, 16, 11);
  const dir = path.join(root, 'run-resume');
  const opts = { out: dir, images: { data: toy.images, shape: toy.shape }, tabular: { data: toy.tabular, shape: [16, toy.features] },
    batchSize: 8, warmupEpochs: 0, augment: { rate: 0 }, model: { arch: 'resnet18' as const, smallStem: true, tabularHidden: 16, projectionHidden: 16, projectionDim: 8 } };
  await pretrain({ ...opts, epochs: 1 });
  const weights = path.join(dir, 'image_encoder.safetensors');
  t.ok(fs.existsSync(weights));
  const ac = new AbortController();
  const err = await pretrain({ ...opts, epochs: 4, resume: true }, { signal: ac.signal, onProgress: () => ac.abort() }).then(() => null, (e: Error) => e);
  t.match(err, { code: 'ERR_ABORTED' }, 'the resume was stopped after its first step');
  t.notOk(fs.existsSync(weights), 'no image encoder of the previous end is left as this run\'s');
  await expectError(t, () => exportRun(dir, path.join(root, 'x.onnx')), DataError, ['image_encoder.safetensors is missing', 'tabsight pretrain --resume']);
  await pretrain({ ...opts, epochs: 4, resume: true });
  t.ok(fs.existsSync(weights), 'the finished resume writes it again');
});

t.test('Ctrl-C and SIGTERM stop embed and predict after a batch, leaving no output and no temporary file', async (t) => {
  await cohortRun();
  const plain = path.join(root, 'r18_run.onnx');
  const cad = path.join(root, 'r18_cad.onnx');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-deploy-signal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const many = 4000;
  const npy = path.join(dir, 'many.npy');
  await writeNpy(npy, new Uint8Array(many * 3 * 32 * 32).fill(90), [many, 3, 32, 32]);
  const bin = path.join(__dirname, '..', 'bin', 'tabsight.js');
  for (const [cmd, model, sig] of [['embed', plain, 'SIGINT'], ['predict', cad, 'SIGTERM']] as const) {
    const outFile = path.join(dir, cmd === 'embed' ? 'emb.npy' : 'pred.csv');
    const child = spawn(process.execPath, [bin, cmd, '--model', model, '--images', npy, '--out', outFile, '--batch', '1', '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => { stderr += b; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Signal once the temporary output exists, i.e. while batches are being written.
    const start = Date.now();
    const isTemp = (f: string) => f.startsWith(`.${path.basename(outFile)}.tmp-`); // AtomicFile's temporary file
    while (!fs.readdirSync(dir).some(isTemp) && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 20));
    t.ok(fs.readdirSync(dir).some(isTemp), `${cmd}: the temporary output appeared`);
    child.kill(sig);
    const code = await exited;
    t.equal(code, 130, `${cmd} exits 130 after ${sig}`);
    t.match(stderr, /tabsight: ERR_ABORTED: Embedding .* was stopped after \d+ of 4000 images/, `${cmd}: ${stderr.trim().split('\n').pop()}`);
    t.same(fs.readdirSync(dir), ['many.npy'], `${cmd}: no output and no temporary file`);
  }
});

t.test('an images-only cohort (no tabular section): embed and predict run on it, image-only pretraining too; what needs features is a ConfigError', async (t) => {
  await cohortRun();
  const io = path.join(root, 'images-only');
  fs.mkdirSync(io);
  for (const f of ['images.npy', 'image_ids.csv', 'labels.csv', 'splits.csv']) fs.copyFileSync(path.join(cohortDir, f), path.join(io, f));
  const yaml = fs.readFileSync(path.join(cohortDir, 'cohort.yaml'), 'utf8');
  const withoutTabular = yaml.replace(/^tabular:\n(?: {2}.*\n|\s{4}.*\n)+/m, '').replace(/^truth:.*\n/m, '');
  t.notMatch(withoutTabular, /tabular/, 'cohort.yaml without a tabular section');
  fs.writeFileSync(path.join(io, 'cohort.yaml'), withoutTabular);
  const { loadCohort, fitPreprocessor, selectFeatures } = await import('../lib/index');
  const c = await loadCohort(io);
  t.same([c.tabular.file, c.tabular.columns, c.ids.length], ['', [], 120]);
  // Embeddings of the images-only cohort equal those of the full cohort (the same images).
  const plain = path.join(root, 'r18_run.onnx');
  if (!fs.existsSync(plain)) await exportRun(runDir, plain);
  await cli('embed', '--model', plain, '--cohort', cohortDir, '--out', path.join(root, 'full.npy'));
  await cli('embed', '--model', plain, '--cohort', io, '--out', path.join(root, 'io.npy'));
  t.same((await readNpy(path.join(root, 'io.npy'))).data, (await readNpy(path.join(root, 'full.npy'))).data, 'embed --cohort: identical embeddings');
  await cli('predict', '--model', path.join(root, 'r18_cad.onnx'), '--cohort', io, '--out', path.join(root, 'io.csv'));
  t.equal(parseCsv(path.join(root, 'io.csv')).length, 121, 'predict --cohort: one row per subject');
  // SimCLR does not use tabular data: the same weights as on the full cohort.
  const simclr = { epochs: 1, batchSize: 32, warmupEpochs: 0, mode: 'simclr' as const, model: { arch: 'resnet18' as const, smallStem: true, projectionHidden: 16, projectionDim: 8 } };
  await pretrainCohort({ ...simclr, cohort: cohortDir, out: path.join(root, 'simclr-full') });
  await pretrainCohort({ ...simclr, cohort: io, out: path.join(root, 'simclr-io') });
  const w = async (d: string) => (await readSafetensors(path.join(d, 'image_encoder.safetensors'))).tensors;
  const [a, b] = [await w(path.join(root, 'simclr-full')), await w(path.join(root, 'simclr-io'))];
  const bytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  t.same([...b.keys()], [...a.keys()]);
  t.ok([...a.keys()].every((k) => bytes(a.get(k)!.data).equals(bytes(b.get(k)!.data))), 'simclr on the images-only cohort: identical weights, byte for byte');
  // What needs features names the cohort.yaml.
  const yamlFile = path.join(io, 'cohort.yaml');
  await expectError(t, () => pretrainCohort({ ...simclr, mode: 'multimodal', cohort: io, out: path.join(root, 'never') }), ConfigError, [`${yamlFile} has no tabular section`, 'multimodal pretraining']);
  await expectError(t, () => fitPreprocessor(c), ConfigError, ['has no tabular section']);
  await expectError(t, () => selectFeatures(c, { method: 'mrmr', k: 2 }), ConfigError, ['has no tabular section', 'feature selection']);
  await expectError(t, () => loadCohort(io, { features: ['age'] }), ConfigError, ['has no tabular section', 'age']);
  t.notOk(fs.existsSync(path.join(root, 'never', 'config.json')));
});
