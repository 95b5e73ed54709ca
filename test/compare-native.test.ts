// The native pieces of `tabsight compare` on a real (tiny) multimodal run:
// scoreImages against the scores IG reports and against Debian's PyTorch on
// the same weights; projectPairs against Run.embed, the projection target
// and the similarity target; the deletion/insertion path ends; and the
// randomised weight files, which load and change (only) what they should.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain, loadRun, _native } from '../lib/index';
import { integratedGradients, gradCam, guidedBackprop } from '../lib/explain';
import { gaussianBlur, perturbationPath, perturbationSchedule, saliencyOrder } from '../lib/explain/compare-metrics';
import { faithfulness } from '../lib/explain/faithfulness';
import { projectPairs, scoreImages } from '../lib/explain/forward';
import { randomizeWeights } from '../lib/explain/randomize';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-compare-native-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const run = path.join(dir, 'run');
const n = 6;
const S = 32;
const per = 3 * S * S;
const cards = [0, 3, 0, 2];
const raw = new Uint8Array(n * per).map((_, i) => (i * 29 + (i >> 10) * 53) % 256);
const rows = new Float32Array(n * 4);
for (let i = 0; i < n; i++) rows.set([Math.sin(i), i % 3, 0.5 * Math.cos(2 * i), i % 2], i * 4);
const mean = [0.5, 0.5, 0.5];
const std = [0.25, 0.25, 0.25];
const unit = Float32Array.from(raw, (v) => v / 255);
const images = { data: Float32Array.from(unit, (v, i) => (v - mean[Math.floor(i / (S * S)) % 3]) / std[Math.floor(i / (S * S)) % 3]), shape: [n, 3, S, S] };
const table = { data: rows, shape: [n, 4] };
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
};
const maxAbs = (a: ArrayLike<number>) => Array.prototype.reduce.call(a, (m: number, v: number) => Math.max(m, Math.abs(v)), 0) as number;

t.before(async () => {
  await pretrain({
    out: run, images: { data: raw, shape: [n, 3, S, S] }, tabular: { data: rows, shape: [n, 4], cardinalities: cards },
    epochs: 1, batchSize: 3, normalize: { mean, std },
    model: { arch: 'resnet18', smallStem: true, tabularHidden: 16, tabularLayers: 1, projectionHidden: 16, projectionDim: 8 },
  });
});

const targets = () => ({
  similarity: { kind: 'similarity' as const, pairedTabular: table },
  feature: { kind: 'feature' as const, index: 5 },
  probe: { kind: 'probe' as const, weight: { data: Float32Array.from({ length: 2 * 512 }, (_, k) => Math.sin(k)), shape: [2, 512] }, bias: [0.1, -0.2], index: [1, 0, 1, 0, 1, 0] },
});

t.test('scoreImages returns the F(x) and F(blurred x) that Integrated Gradients reports', async (t) => {
  // scoreImages runs the module with LibTorch's convolutions; IG's folded copy
  // runs its 3×3 ones by Winograd unless switched off, which rounds about ten
  // times more (test/attribution.test.ts). Off here, so 1e-6 measures the fold.
  const winograd = _native()._winograd();
  _native()._winograd(false);
  t.teardown(() => { _native()._winograd(winograd); });
  const blurred = new Float32Array(images.data.length);
  for (let i = 0; i < n; i++) blurred.set(gaussianBlur(images.data.subarray(i * per, (i + 1) * per), 3, S, S, 2), i * per);
  for (const [name, target] of Object.entries(targets())) {
    const ig = await integratedGradients(run, images, { target, steps: 2, baseline: { blur: 2 } });
    const f = await scoreImages(run, images, { target, batchSize: 4 });
    t.ok(f instanceof Float64Array && f.length === n, `${name}: one float64 per image`);
    t.ok(maxDiff(f, ig.scores!) <= 1e-6 * Math.max(1, maxAbs(ig.scores!)), `${name}: F(x) agrees with IG's scores to ${maxDiff(f, ig.scores!).toExponential(1)}`);
    const fb = await scoreImages(run, { data: blurred, shape: images.shape }, { target });
    t.ok(maxDiff(fb, ig.baselineScores!) <= 1e-5 * Math.max(1, maxAbs(ig.baselineScores!)), `${name}: F of the TypeScript blur agrees with IG's blurred baseline score to ${maxDiff(fb, ig.baselineScores!).toExponential(1)}`);
  }
});

const PY = '/usr/bin/python3';
const torchMissing = !fs.existsSync(PY) || spawnSync(PY, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status !== 0;

t.test('scoreImages on a deletion path matches PyTorch (torchvision ResNet-18 with the same weights)', { skip: torchMissing && 'python3-torch missing' }, async (t) => {
  // The path of image 0 in the order of its |IG| map, 9 points.
  const ig = await integratedGradients(run, images, { target: { kind: 'feature', index: 5 }, steps: 4 });
  const map = new Float32Array(S * S);
  for (let c = 0; c < 3; c++) for (let k = 0; k < S * S; k++) map[k] += Math.abs(ig.attributions[c * S * S + k]);
  const { counts } = perturbationSchedule(S * S, 128);
  const pathImages = perturbationPath(images.data.subarray(0, per), new Float32Array(per), saliencyOrder(map), counts, 3);
  const m = counts.length;
  const inp = path.join(dir, 'path.f32');
  const out = path.join(dir, 'features.f32');
  fs.writeFileSync(inp, Buffer.from(pathImages.buffer, pathImages.byteOffset, pathImages.byteLength));
  const r = spawnSync(PY, [path.join(__dirname, 'fixtures', 'torchvision_ref.py'), 'features', path.join(run, 'image_encoder.safetensors'), inp, `${m},3,${S},${S}`, out], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stdout + r.stderr);
  const feats = new Float32Array(fs.readFileSync(out).buffer.slice(0));
  const ref = Array.from({ length: m }, (_, k) => feats[k * 512 + 5]);
  const f = await scoreImages(run, { data: pathImages, shape: [m, 3, S, S] }, { target: { kind: 'feature', index: 5 } });
  const d = maxDiff(f, ref);
  t.ok(d <= 1e-5 * Math.max(1, maxAbs(ref)), `feature 5 along the path, ${m} images: max diff ${d.toExponential(2)} (scale ${maxAbs(ref).toExponential(2)})`);
  t.ok(ref[0] !== ref[m - 1], 'deleting pixels changes the score');
});

t.test('projectPairs: features as Run.embed, projections as the projection and similarity targets', async (t) => {
  const p = await projectPairs(run, images, table, { batchSize: 4 });
  t.equal(p.featureDim, 512);
  t.equal(p.projectionDim, 8);
  const r = await loadRun(run);
  const emb = await r.embed({ data: unit, shape: [n, 3, S, S] });
  r.dispose();
  t.ok(maxDiff(p.features, emb) <= 1e-5 * Math.max(1, maxAbs(emb)), `features vs Run.embed: ${maxDiff(p.features, emb).toExponential(1)}`);
  for (const j of [0, 7]) {
    const f = await scoreImages(run, images, { target: { kind: 'projection', index: j } });
    const col = Array.from({ length: n }, (_, i) => p.imageProjection![i * 8 + j]);
    t.ok(maxDiff(f, col) <= 1e-5, `image projection dim ${j} = the projection target`);
  }
  const sim = await scoreImages(run, images, { target: { kind: 'similarity', pairedTabular: table } });
  const cos = Array.from({ length: n }, (_, i) => {
    const u = p.imageProjection!.subarray(i * 8, i * 8 + 8);
    const v = p.tabularProjection!.subarray(i * 8, i * 8 + 8);
    const dot = u.reduce((s, x, k) => s + x * v[k], 0);
    return dot / Math.hypot(...u) / Math.hypot(...v);
  });
  t.ok(maxDiff(sim, cos) <= 1e-5, `cos(image projection, tabular projection) = the similarity target: ${maxDiff(sim, cos).toExponential(1)}`);
  const enc = await projectPairs(path.join(run, 'image_encoder.safetensors'), images);
  t.same([enc.imageProjection, enc.tabularProjection], [undefined, undefined], 'an encoder file gives features only');
  t.ok(maxDiff(enc.features, p.features) <= 1e-6, 'the same features');
  await t.rejects(projectPairs(run, images, { data: rows.slice(0, 20), shape: [5, 4] }), { code: 'ERR_SHAPE', message: /6 rows/ });
  await t.rejects(projectPairs(run, images, { data: new Float32Array(18), shape: [6, 3] }), { code: 'ERR_SHAPE', message: /4 columns/ });
  await t.rejects(projectPairs(path.join(run, 'image_encoder.safetensors'), images, table), { code: 'ERR_CONFIG', message: /checkpoint/ });
  await t.rejects(scoreImages(run, { data: new Float32Array(per), shape: [1, 3, S, S] }, { target: { kind: 'feature', index: 512 } }), { code: 'ERR_CONFIG', message: /target\.index/ });
});

t.test('faithfulness: the deletion path ends at F(x) and F(0), the insertion path starts at F(blurred x)', async (t) => {
  const target = { kind: 'similarity' as const, pairedTabular: table };
  const cam = await gradCam(run, images, { target, relu: true, upsample: 'bilinear' });
  const maps = Array.from({ length: n }, (_, i) => cam.attributions.slice(i * S * S, (i + 1) * S * S));
  const res = await faithfulness(run, images, target, { gradcam: (i) => saliencyOrder(maps[i]) }, { steps: 8, blur: 2, chunkFloats: 3 * 9 * per });
  const r = res.gradcam;
  t.equal(r.x.length, 9);
  const fx = await scoreImages(run, images, { target });
  const f0 = await scoreImages(run, { data: new Float32Array(n * per), shape: images.shape }, { target });
  const ig = await integratedGradients(run, images, { target, steps: 1, baseline: { blur: 2 } });
  for (let i = 0; i < n; i++) {
    const d = r.deletionScores[i];
    const s = r.insertionScores[i];
    t.ok(Math.abs(d[0] - fx[i]) < 1e-6 && Math.abs(d[8] - f0[i]) < 1e-6, `image ${i}: deletion from F(x) to F(0)`);
    t.ok(Math.abs(s[0] - ig.baselineScores![i]) < 1e-5 && Math.abs(s[8] - fx[i]) < 1e-6, `image ${i}: insertion from F(blur) to F(x)`);
  }
  t.ok([...r.deletion, ...r.insertion].every((v) => Number.isFinite(v)), 'finite AUCs');
});

t.test('randomised weight files load, change the maps, and leave them bit-identical when nothing is randomised', async (t) => {
  const target = { kind: 'similarity' as const, pairedTabular: table };
  const before = await integratedGradients(run, images, { target, steps: 4 });
  const same = path.join(dir, 'same.safetensors');
  const { changed } = await randomizeWeights(path.join(run, 'checkpoint.safetensors'), same, { stages: [], encoderPrefix: 'model.image.', keepPrefix: 'model.' });
  t.same(changed, []);
  const copy = await integratedGradients({ path: same }, images, { target, steps: 4 });
  t.ok(maxDiff(copy.attributions, before.attributions) === 0 && maxDiff(copy.scores!, before.scores!) === 0, 'no stage: the same attributions bit for bit');
  const head = path.join(dir, 'head.safetensors');
  await randomizeWeights(path.join(run, 'checkpoint.safetensors'), head, { stages: ['head'], encoderPrefix: 'model.image.', keepPrefix: 'model.' });
  const h = await integratedGradients({ path: head }, images, { target, steps: 4 });
  t.ok(maxDiff(h.scores!, before.scores!) > 1e-3, 'the head randomised: other scores');
  const fGood = await scoreImages(run, images, { target: { kind: 'feature', index: 5 } });
  const fHead = await scoreImages({ path: head }, images, { target: { kind: 'feature', index: 5 } });
  t.equal(maxDiff(fGood, fHead), 0, 'but the encoder features are untouched');
  const all = path.join(dir, 'all.safetensors');
  await randomizeWeights(path.join(run, 'image_encoder.safetensors'), all, { stages: ['layer4', 'layer3', 'layer2', 'layer1', 'stem'], encoderPrefix: '' });
  const fAll = await scoreImages(all, images, { target: { kind: 'feature', index: 5 } });
  t.ok(maxDiff(fAll, fGood) > 1e-4, 'every encoder stage randomised: other features');
});

t.test('projection heads without BatchNorm (model.projectionBatchNorm false): Linear, ReLU, Linear, loaded and applied as trained', async (t) => {
  const { readSafetensorsSync } = await import('../lib/io/safetensors');
  const plain = path.join(dir, 'run-plain-heads');
  await pretrain({
    out: plain, images: { data: raw, shape: [n, 3, S, S] }, tabular: { data: rows, shape: [n, 4], cardinalities: cards },
    epochs: 1, batchSize: 3, normalize: { mean, std },
    model: { arch: 'resnet18', smallStem: true, tabularHidden: 16, tabularLayers: 1, projectionHidden: 16, projectionDim: 8, projectionBatchNorm: false },
  });
  const config = JSON.parse(fs.readFileSync(path.join(plain, 'config.json'), 'utf8'));
  t.equal(config.model.projectionBatchNorm, false, 'config.json records the layout');
  t.notOk('projectionBatchNorm' in JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).model, 'the default is not written, so earlier runs stay resumable');
  const st = readSafetensorsSync(path.join(plain, 'checkpoint.safetensors'));
  const names = [...st.tensors.keys()].filter((k) => k.startsWith('model.image_projection.'));
  t.same(names.sort(), ['model.image_projection.layers.0.bias', 'model.image_projection.layers.0.weight', 'model.image_projection.layers.2.bias', 'model.image_projection.layers.2.weight']);
  // Closed form on the run's own features: relu(f W0ᵀ + b0) W2ᵀ + b2.
  const p = await projectPairs(plain, images, table);
  const w = (k: string) => st.tensors.get(`model.image_projection.layers.${k}`)!.data as Float32Array;
  const [W0, b0, W2, b2] = [w('0.weight'), w('0.bias'), w('2.weight'), w('2.bias')];
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const f = p.features.subarray(i * 512, (i + 1) * 512);
    const h = Array.from({ length: 16 }, (_, r) => Math.max(0, b0[r] + f.reduce((s, x, c) => s + x * W0[r * 512 + c], 0)));
    for (let o = 0; o < 8; o++) worst = Math.max(worst, Math.abs(b2[o] + h.reduce((s, x, r) => s + x * W2[o * 16 + r], 0) - p.imageProjection![i * 8 + o]));
  }
  t.ok(worst < 1e-4, `image projections equal the closed form to ${worst.toExponential(1)}`);
  const sim = await scoreImages(plain, images, { target: { kind: 'similarity', pairedTabular: table } });
  t.ok(sim.every(Number.isFinite), 'the similarity target loads both plain heads');
  await t.rejects(pretrain({ out: path.join(dir, 'bad-head'), images: { data: raw, shape: [n, 3, S, S] }, tabular: { data: rows, shape: [n, 4], cardinalities: cards }, model: { projectionBatchNorm: 'no' as unknown as boolean } }), { code: 'ERR_CONFIG', message: /model\.projectionBatchNorm/ });
});

t.test("Guided Backprop through the projection head guides the head's ReLU too (Captum hooks every nn.ReLU of the model)", async (t) => {
  // Oracle: for target z_j = W2·relu(BN(W0 h + b0)) + b2, the guided gradient
  // at the pooled features is g_i = W0ᵀ[(γ/σ) ⊙ 1[a_i > 0] ⊙ relu(W2[j])],
  // a = the BN output. A probe target whose class row i is g_i has exactly
  // that gradient at h, and the probe path is already checked against
  // PyTorch, so the two attributions must agree.
  const { readSafetensorsSync } = await import('../lib/io/safetensors');
  const st = readSafetensorsSync(path.join(run, 'checkpoint.safetensors'));
  const w = (k: string) => st.tensors.get(`model.image_projection.layers.${k}`)!.data as Float32Array;
  const [W0, b0, gamma, beta, mu, v, W2] = [w('0.weight'), w('0.bias'), w('1.weight'), w('1.bias'), w('1.running_mean'), w('1.running_var'), w('3.weight')];
  const H = 16;
  const D = 512;
  const p = await projectPairs(run, images, table);
  for (const j of [0, 5]) {
    const rowsG = new Float32Array(n * D);
    for (let i = 0; i < n; i++) {
      const f = p.features.subarray(i * D, (i + 1) * D);
      for (let r = 0; r < H; r++) {
        let pre = b0[r];
        for (let c = 0; c < D; c++) pre += W0[r * D + c] * f[c];
        const scale = gamma[r] / Math.sqrt(v[r] + 1e-5);
        const a = (pre - mu[r]) * scale + beta[r];
        const up = a > 0 ? Math.max(0, W2[j * H + r]) * scale : 0;
        if (up !== 0) for (let c = 0; c < D; c++) rowsG[i * D + c] += up * W0[r * D + c];
      }
    }
    const guided = await guidedBackprop(run, images, { target: { kind: 'projection', index: j } });
    const viaProbe = await guidedBackprop(run, images, { target: { kind: 'probe', weight: { data: rowsG, shape: [n, D] }, bias: new Array(n).fill(0), index: Array.from({ length: n }, (_, i) => i) } });
    const d = maxDiff(guided.attributions, viaProbe.attributions);
    t.ok(d <= 1e-4 * Math.max(1e-12, maxAbs(viaProbe.attributions)), `projection ${j}: guided through the head = the closed form (${d.toExponential(1)} of ${maxAbs(viaProbe.attributions).toExponential(1)})`);
  }
});
