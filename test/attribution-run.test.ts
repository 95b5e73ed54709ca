// Attribution on a real (tiny) multimodal run: tabular IG against the closed
// form of a linear tabular encoder, one-hot columns summed back to features,
// image–tabular similarity targets seen from both sides, targets that read
// the run's config from the checkpoint, and misuse on runs.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain, loadRun, readSafetensors, ConfigError, ShapeError } from '../lib/index';
import { integratedGradients, gradCam, tabularIntegratedGradients } from '../lib/explain';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-attr-run-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const run = path.join(dir, 'run');
const n = 8;
const cards = [0, 3, 0, 2];
const width = 1 + 3 + 1 + 2;
const raw = new Uint8Array(n * 3 * 32 * 32).map((_, i) => (i * 29 + (i >> 10) * 53) % 256);
const rows = new Float32Array(n * 4);
for (let i = 0; i < n; i++) rows.set([Math.sin(i), i % 3, 0.5 * Math.cos(2 * i), i % 2], i * 4);
const mean = [0.5, 0.5, 0.5];
const std = [0.25, 0.25, 0.25];
const images = { data: Float32Array.from(raw, (v, i) => (v / 255 - mean[Math.floor(i / 1024) % 3]) / std[Math.floor(i / 1024) % 3]), shape: [n, 3, 32, 32] };
const table = { data: rows, shape: [n, 4] };
const encode = (r: number): number[] => {
  const v = rows.subarray(r * 4, r * 4 + 4);
  return [v[0], ...[0, 1, 2].map((k) => (v[1] === k ? 1 : 0)), v[2], ...[0, 1].map((k) => (v[3] === k ? 1 : 0))];
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
};

t.before(async () => {
  await pretrain({
    out: run, images: { data: raw, shape: [n, 3, 32, 32] }, tabular: { data: rows, shape: [n, 4], cardinalities: cards },
    epochs: 1, batchSize: 4, normalize: { mean, std },
    model: { arch: 'resnet18', tabularHidden: 16, tabularLayers: 1, projectionHidden: 16, projectionDim: 8 },
  });
});

t.test('tabularIntegratedGradients on a linear tabular encoder: x ⊙ W[j], one-hot columns summed to their feature', async (t) => {
  const ckpt = await readSafetensors(path.join(run, 'checkpoint.safetensors'));
  const W = ckpt.tensors.get('model.tabular.encoder.0.weight')!;
  t.same(W.shape, [16, width]);
  const w = W.data as Float32Array;
  const j = 5;
  const b = Float32Array.from({ length: width }, (_, c) => 0.1 * c - 0.2);
  for (const [name, baseline] of [['zeros', 'zeros'], ['a baseline row', b]] as const) {
    const r = await tabularIntegratedGradients(run, table, { target: { kind: 'feature', index: j }, baseline, steps: 5 });
    t.same(r.shape, [n, 4]);
    t.same(r.encodedShape, [n, width]);
    const base = (c: number) => (baseline === 'zeros' ? 0 : b[c]);
    const encoded = [...Array(n).keys()].flatMap((i) => encode(i).map((v, c) => (v - base(c)) * w[j * width + c]));
    const groups = [[0], [1, 2, 3], [4], [5, 6]];
    const features = [...Array(n).keys()].flatMap((i) => groups.map((g) => g.reduce((s, c) => s + encoded[i * width + c], 0)));
    t.ok(maxDiff(r.encodedAttributions, encoded) < 1e-5, `${name}: encoded columns, max diff ${maxDiff(r.encodedAttributions, encoded).toExponential(1)}`);
    t.ok(maxDiff(r.attributions, features) < 1e-5, `${name}: features, max diff ${maxDiff(r.attributions, features).toExponential(1)}`);
    t.ok(maxDiff(r.delta!, new Float64Array(n)) < 1e-5, `${name}: completeness`);
  }
  // For a categorical feature with code c and a zero baseline, only column c counts: W[j, col + c].
  const r = await tabularIntegratedGradients(run, table, { target: { kind: 'feature', index: [...Array(n).keys()] } });
  for (let i = 0; i < n; i++) t.ok(Math.abs(r.attributions[i * 4 + 1] - w[i * width + 1 + (i % 3)]) < 1e-5, `row ${i}: per-example index, categorical feature`);
});

t.test('image–tabular similarity is the same score seen from the image side and from the tabular side', async (t) => {
  const img = await integratedGradients(run, images, { target: { kind: 'similarity', pairedTabular: table }, steps: 16 });
  const tab = await tabularIntegratedGradients(run, table, { target: { kind: 'similarity', pairedImages: images }, steps: 16 });
  t.ok(maxDiff(img.scores!, tab.scores!) < 1e-5, `cos(z_img, z_tab) per pair: ${[...img.scores!].map((v) => v.toFixed(4))}`);
  t.ok([...img.scores!].every((v) => Math.abs(v) <= 1 + 1e-6), 'cosines lie in [−1, 1]');
  const rel = (d: Float64Array, a: Float64Array, b: Float64Array) => [...d].map((v, i) => Math.abs(v) / Math.abs(a[i] - b[i])).sort((x, y) => x - y)[n / 2];
  t.comment(`median relative |delta|: image side ${rel(img.delta!, img.scores!, img.baselineScores!).toExponential(2)}, tabular side ${rel(tab.delta!, tab.scores!, tab.baselineScores!).toExponential(2)} (16 steps)`);
});

t.test('feature and similarity(features) targets score what the run embeds', async (t) => {
  const r = await loadRun(run);
  const feats = await r.embed({ data: raw, shape: [n, 3, 32, 32] });
  r.dispose();
  const d = 512;
  const v = Float32Array.from({ length: d }, (_, k) => Math.cos(k));
  const sim = await integratedGradients(run, images, { target: { kind: 'similarity', vector: v, space: 'features' }, steps: 2 });
  const feat = await integratedGradients(run, images, { target: { kind: 'feature', index: 7 }, steps: 2 });
  const cos = [...Array(n).keys()].map((i) => {
    const f = feats.subarray(i * d, (i + 1) * d);
    const dot = f.reduce((s, x, k) => s + x * v[k], 0);
    return dot / Math.sqrt(f.reduce((s, x) => s + x * x, 0) * v.reduce((s, x) => s + x * x, 0));
  });
  t.ok(maxDiff(sim.scores!, cos) < 1e-4, 'cosine to a concept vector');
  t.ok(maxDiff(feat.scores!, [...Array(n).keys()].map((i) => feats[i * d + 7])) < 1e-4, 'feature 7');
});

t.test('projection targets read the model sizes from the checkpoint config', async (t) => {
  const cam = await gradCam(run, images, { target: { kind: 'projection', index: 3 }, upsample: 'bilinear' });
  t.same(cam.shape, [n, 1, 32, 32]);
  t.ok(cam.attributions.some((v) => v !== 0));
  const explicit = await gradCam({ path: path.join(run, 'checkpoint.safetensors'), projectionDim: 8 }, images, { target: { kind: 'projection', index: 3 }, upsample: 'bilinear' });
  t.same([...explicit.attributions], [...cam.attributions]);
});

t.test('misuse on a run rejects with codes naming the argument', async (t) => {
  const enc = path.join(run, 'image_encoder.safetensors');
  await t.rejects(gradCam(enc, images, { target: { kind: 'projection', index: 0 } }), { code: 'ERR_CONFIG', message: /checkpoint/ });
  await t.rejects(gradCam(run, images, { target: { kind: 'projection', index: 8 } }), { code: 'ERR_CONFIG', message: /target\.index/ });
  await t.rejects(tabularIntegratedGradients(run, { data: rows, shape: [4, 8] }, { target: { kind: 'feature', index: 0 } }), { code: 'ERR_SHAPE', message: /4 columns in rows\.shape/ });
  const bad = rows.slice();
  bad[1] = 3;
  await t.rejects(tabularIntegratedGradients(run, { data: bad, shape: [n, 4] }, { target: { kind: 'feature', index: 0 } }), { code: 'ERR_DATA', message: /row 0/ });
  await t.rejects(tabularIntegratedGradients(run, table, { target: { kind: 'feature', index: 0 }, baseline: new Float32Array(4) }), { code: 'ERR_SHAPE', message: /baseline/ });
  await t.rejects(tabularIntegratedGradients(run, table, { target: { kind: 'feature', index: 16 } }), { code: 'ERR_CONFIG', message: /target\.index/ });
  await t.rejects(integratedGradients(run, images, { target: { kind: 'similarity', pairedTabular: { data: rows.slice(0, 8), shape: [2, 4] } } }), { code: 'ERR_SHAPE', message: /pairedTabular/ });
  await t.rejects(integratedGradients(run, images, { target: { kind: 'similarity', vector: new Float32Array(3) } }), { code: 'ERR_SHAPE', message: /target vector/ });
  await t.rejects(integratedGradients(run, images, { target: { kind: 'similarity' } as never }), ConfigError);
  await t.rejects(integratedGradients({ path: run, arch: 'resnet50' }, images, { target: { kind: 'feature', index: 0 } }), { code: 'ERR_DATA', message: /resnet50 image encoder/ });
  await t.rejects(integratedGradients({ path: run, bogus: 1 } as never, images, { target: { kind: 'feature', index: 0 } }), { code: 'ERR_CONFIG', message: /model\.bogus/ });
  await t.rejects(integratedGradients(run, { data: images.data, shape: [n, 3, 32, 16] }, { target: { kind: 'feature', index: 0 } }), ShapeError);
});
