// The numbers of `tabsight compare` on hand-built inputs: ranks and Spearman
// with ties, summaries, the deletion/insertion path and AUC (a linear score
// in closed form), localisation, retrieval / alignment / uniformity, the
// symmetric eigen-decomposition, decodability against a brute-force
// scikit-learn oracle, lesion truth, and the weight randomisation.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  alignment, benjaminiHochberg, boxMask, energyInside, gaussianBlur, l2Normalise, meanDifference, normalCdf, normaliseCurve, pairedBootstrap, pairedDifference, perturbationPath,
  perturbationSchedule, pointingHit, rankData, retrieval, saliencyOrder, spearman, summarize, trapezoidAuc, uniformity,
} from '../lib/explain/compare-metrics';
import { GramRidge, RIDGE_EXPONENTS, decodeFeatures, foldAssignment, gramMatrix, macroAuc, symmetricEigen, type DecodeFeature } from '../lib/explain/decode';
import { lesionTruth } from '../lib/explain/lesions';
import { RANDOMIZATION_STAGES, randomizeWeights, stageOf } from '../lib/explain/randomize';
import { readSafetensors, writeSafetensors, type TensorInput } from '../lib/io/safetensors';
import { uniformStream } from '../lib/rng';
import type { Cohort } from '../lib/data/cohort';

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

t.test('rankData gives tied values the mean of their ranks', async (t) => {
  t.same([...rankData([10, 20, 20, 5])], [2, 3.5, 3.5, 1]);
  t.same([...rankData([3, 3, 3])], [2, 2, 2]);
  t.ok([...rankData([1, NaN, 3])].every(Number.isNaN), 'a NaN makes every rank NaN (scipy: nan_policy propagate)');
});

t.test('spearman matches the closed form with ties, ±1 for monotone maps, NaN for a constant map', async (t) => {
  // ranks [1..5] and [1, 2, 3.5, 5, 3.5]: deviations give Σab = 8, Σa² = 10, Σb² = 9.5.
  t.ok(close(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / Math.sqrt(95)), 'ρ = 8/√95');
  t.equal(spearman([1, 2, 3], [10, 100, 1000]), 1);
  t.equal(spearman([1, 2, 3], [3, 2, 1]), -1);
  t.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
  t.ok(Number.isNaN(spearman([1, NaN, 3, 4], [1, 2, 3, 4])), 'NaN in, NaN out (it used to give 1)');
  t.throws(() => spearman([1, 2], [1, 2, 3]), { code: 'ERR_SHAPE' });
});

t.test('summarize: numpy-style quartiles over the finite values', async (t) => {
  const s = summarize([4, 1, NaN, 3, 2]);
  t.same({ ...s }, { n: 4, mean: 2.5, median: 2.5, q1: 1.75, q3: 3.25, iqr: 1.5 });
  t.equal(summarize([NaN]).n, 0);
});

t.test('trapezoidAuc on a hand-computed curve', async (t) => {
  t.ok(close(trapezoidAuc([0, 0.25, 0.5, 1], [1, 0.5, 0.5, 0]), 0.4375));
});

t.test('perturbation schedule, order and path: a fixed number of pixels per step, all channels at once', async (t) => {
  const s = perturbationSchedule(10, 4);
  t.same([...s.counts], [0, 4, 8, 10]);
  t.same([...s.x], [0, 0.4, 0.8, 1]);
  t.same([...saliencyOrder([0.5, 2, 0.5, 3])], [3, 1, 0, 2], 'descending, ties by index');
  // 2 channels × 3 pixels; replace pixels in order [2, 0, 1], 2 per step.
  const start = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const end = new Float32Array(6);
  const { counts } = perturbationSchedule(3, 2);
  const p = perturbationPath(start, end, Int32Array.from([2, 0, 1]), counts, 2);
  t.same([...p], [1, 2, 3, 4, 5, 6, 0, 2, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
});

t.test('deletion and insertion of a linear score have the closed form 1 − cumulative share', async (t) => {
  // F(x) = Σ w_p x_p; map = w ⊙ x > 0, so deleting the first k pixels in order removes their terms.
  const rng = uniformStream(3);
  const P = 50;
  const x = Float32Array.from({ length: P }, () => 0.2 + rng());
  const w = Float64Array.from({ length: P }, () => 0.1 + rng());
  const F = (img: Float32Array) => img.reduce((s, v, p) => s + w[p] * v, 0);
  const map = Float32Array.from(x, (v, p) => v * w[p]);
  const order = saliencyOrder(map);
  const { counts, x: frac } = perturbationSchedule(P, 7);
  const path = perturbationPath(x, new Float32Array(P), order, counts, 1);
  const scores = Array.from(counts, (_, k) => F(path.subarray(k * P, (k + 1) * P)));
  const curve = normaliseCurve(scores, scores[0], scores[scores.length - 1]);
  const total = F(x);
  const sorted = [...map].sort((a, b) => b - a);
  const expected = Array.from(counts, (c) => 1 - sorted.slice(0, c).reduce((s, v) => s + v, 0) / total);
  t.ok(expected.every((e, k) => close(curve[k], e, 1e-6)), 'deletion curve = 1 − share of the top pixels');
  t.ok(close(trapezoidAuc(frac, curve), trapezoidAuc(frac, expected), 1e-6), 'and its AUC');
  // Insertion from a start image b: F_k = F(b) + Σ_first w(x − b); normalised to the same share of w(x − b).
  const b = Float32Array.from(x, (v) => v / 2);
  const ins = perturbationPath(b, x, order, counts, 1);
  const si = Array.from(counts, (_, k) => F(ins.subarray(k * P, (k + 1) * P)));
  const ci = normaliseCurve(si, si[si.length - 1], si[0]);
  const gain = Array.from(order, (p) => w[p] * (x[p] - b[p]));
  const ei = Array.from(counts, (c) => gain.slice(0, c).reduce((s, v) => s + v, 0) / gain.reduce((s, v) => s + v, 0));
  t.ok(ei.every((e, k) => close(ci[k], e, 1e-6)), 'insertion curve = cumulative share of the gain');
  t.ok(normaliseCurve([1, 1, 1], 1, 1 + 1e-9).every(Number.isNaN), 'F(x) ≈ F(reference): undefined');
});

t.test('gaussianBlur keeps constants, sums to the same mass inside, replicates edges', async (t) => {
  const c = gaussianBlur(new Float32Array(64).fill(2), 1, 8, 8, 1.5);
  t.ok(c.every((v) => close(v, 2, 1e-6)), 'a constant image stays constant');
  const imp = new Float32Array(21 * 21);
  imp[10 * 21 + 10] = 1;
  const b = gaussianBlur(imp, 1, 21, 21, 1);
  t.ok(close(b.reduce((s, v) => s + v, 0), 1, 1e-6), 'an impulse away from the edges keeps its mass');
  const g1 = Math.exp(-0.5);
  const z = [-4, -3, -2, -1, 0, 1, 2, 3, 4].reduce((s, i) => s + Math.exp(-0.5 * i * i), 0);
  t.ok(close(b[10 * 21 + 11], g1 / z / z, 1e-6), 'the kernel is exp(−i²/2σ²)/Σ, radius ceil(4σ)');
});

t.test('boxMask, pointing game and energy on constructed maps', async (t) => {
  // A box [1, 1, 3, 3) on a 4×4 grid, at 8×8: rows/cols 2..5.
  const mask = boxMask([[1, 1, 3, 3]], 4, 4, 8);
  t.equal(mask.reduce((s, v) => s + v, 0), 16);
  t.equal(mask[2 * 8 + 2], 1);
  t.equal(mask[1 * 8 + 2], 0);
  const map = new Float32Array(64);
  map[3 * 8 + 3] = 5; // inside
  map[0] = 1;
  t.equal(pointingHit(map, mask), 1);
  t.ok(close(energyInside(map, mask), 5 / 6));
  map[7 * 8 + 7] = 5; // a tie outside, later in row-major order: the first maximum counts
  t.equal(pointingHit(map, mask), 1);
  map[0] = 9;
  t.equal(pointingHit(map, mask), 0);
  t.ok(Number.isNaN(pointingHit(new Float32Array(64), mask)), 'an all-zero map points nowhere');
  t.ok(Number.isNaN(energyInside(new Float32Array(64), mask)));
  const union = boxMask([[0, 0, 1, 1], [3, 3, 4, 4]], 4, 4, 4);
  t.same([...union].map((v, k) => (v ? k : -1)).filter((k) => k >= 0), [0, 15], 'union of boxes');
});

t.test('retrieval, alignment and uniformity on constructed unit projections', async (t) => {
  const u = Float64Array.from([1, 0, 0, 1, -1, 0]);
  const v = Float64Array.from([0, 1, 1, 0, -1, 0]);
  const r = retrieval(u, v, 3, 2);
  t.same(r, { imageToTabular: { top1: 1 / 3, top5: 1 }, tabularToImage: { top1: 1 / 3, top5: 1 } });
  t.ok(close(alignment(u, v, 3, 2), 4 / 3));
  t.ok(close(uniformity(u, 3, 2), Math.log((2 * Math.exp(-4) + Math.exp(-8)) / 3)));
  const n = l2Normalise([3, 4, 0, 0], 2, 2);
  t.same([...n], [0.6, 0.8, 0, 0], 'zero rows stay zero (eps)');
});

t.test('pairedBootstrap and meanDifference: the estimate on the full sample and a seeded interval', async (t) => {
  const a = [1, 2, 3, 4, NaN];
  const b = [0, 1, 2, 3, 9];
  const d = meanDifference(a, b, 200, 0);
  t.equal(d.estimate, 1);
  t.equal(d.n, 4, 'the NaN pair is left out');
  t.equal(d.lower, 1);
  t.equal(d.upper, 1);
  t.equal(d.p, 0, 'constant non-zero differences: p 0');
  const c = meanDifference([0.3, 0.7, 0.9], [0.2, 0.6, 0.8], 200, 0); // differences 0.1 up to rounding
  t.equal(c.p, 0, `rounding noise in the replicates is not spread (se ${c.se})`);
  const one = meanDifference([0.5], [0.4], 200, 0);
  t.ok(Number.isNaN(one.p) && Number.isNaN(one.lower), 'one item: no interval, no p');
  const md = pairedDifference([1, 2, 3, 100], [0, 0, 0, 0], 200, 0, 'median');
  t.equal(md.estimate, 2.5, 'the median of the differences is not pulled by the outlier');
  t.ok(md.p >= 0 && md.p <= 1);
  t.ok(close(normalCdf(1.959963984540054), 0.975, 1e-6) && close(normalCdf(0), 0.5, 1e-7), 'Φ');
  t.same(benjaminiHochberg([0.01, 0.04, 0.03, 0.5, NaN]), [true, false, false, false, false], 'BH at 5%: 0.01 ≤ 0.0125, 0.03 > 0.025');
  t.same(benjaminiHochberg([0.01, 0.02, 0.03, 0.04]), [true, true, true, true], 'BH: the largest k with p_(k) ≤ qk/m');
  const e = pairedBootstrap(5, (idx) => idx.reduce((s, i) => s + i, 0) / idx.length, 500, 1);
  t.equal(e.estimate, 2);
  t.ok(e.lower < 2 && e.upper > 2);
  t.same(pairedBootstrap(5, (idx) => idx.reduce((s, i) => s + i, 0) / idx.length, 500, 1), e, 'same seed, same interval');
});

t.test('symmetricEigen reconstructs a symmetric matrix with orthonormal vectors', async (t) => {
  const rng = uniformStream(9);
  for (const n of [1, 2, 7, 40]) {
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng() - 0.5;
    const { values, vectors } = symmetricEigen(a, n);
    let worst = 0;
    let ortho = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let o = 0;
        for (let k = 0; k < n; k++) {
          s += vectors[i * n + k] * values[k] * vectors[j * n + k];
          o += vectors[k * n + i] * vectors[k * n + j];
        }
        worst = Math.max(worst, Math.abs(s - a[i * n + j]));
        ortho = Math.max(ortho, Math.abs(o - (i === j ? 1 : 0)));
      }
    }
    t.ok(worst < 1e-12 && ortho < 1e-12, `n = ${n}: |V Λ Vᵀ − A| ${worst.toExponential(1)}, |VᵀV − I| ${ortho.toExponential(1)}`);
    t.ok(values.every((v, k) => k === 0 || v >= values[k - 1]), 'ascending');
  }
});

t.test('macroAuc: class 1 for two classes, the mean over classes otherwise', async (t) => {
  const y = [0, 0, 1, 1];
  t.equal(macroAuc(y, [new Float64Array(4), Float64Array.from([0.1, 0.4, 0.35, 0.8])]), 0.75);
  const y3 = [0, 1, 2, 2];
  const s = [Float64Array.from([1, 0, 0, 0]), Float64Array.from([0, 1, 0, 0]), Float64Array.from([0, 0, 1, 0])];
  // class 0: perfect (1); class 1: perfect (1); class 2: scores [0,0,1,0] for y = [0,0,1,1]: ties give 0.75.
  t.ok(close(macroAuc(y3, s), (1 + 1 + 0.75) / 3));
});

const PY = '/usr/bin/python3';
const sklearnMissing = !fs.existsSync(PY) || spawnSync(PY, ['-c', 'import sklearn, numpy'], { encoding: 'utf8' }).status !== 0;

t.test('decodability matches brute-force leave-one-out ridge in scikit-learn', { skip: sklearnMissing && 'python3-sklearn missing' }, async (t) => {
  const rng = uniformStream(17);
  const normal = () => Math.sqrt(-2 * Math.log(rng())) * Math.cos(2 * Math.PI * rng());
  const n = 36;
  const d = 12;
  const X = Float32Array.from({ length: n * d }, normal);
  const row = (i: number) => [...X.subarray(i * d, (i + 1) * d)];
  const lin = (i: number, w: number[]) => row(i).reduce((s, v, k) => s + v * w[k], 0);
  const w1 = Array.from({ length: d }, normal);
  const features: DecodeFeature[] = [
    { name: 'linear', type: 'continuous', values: Float64Array.from({ length: n }, (_, i) => lin(i, w1) + 0.5 * normal()) },
    { name: 'noise', type: 'continuous', values: Float64Array.from({ length: n }, () => normal()) },
    { name: 'gappy', type: 'continuous', values: Float64Array.from({ length: n }, (_, i) => (i % 7 === 3 ? NaN : row(i)[0] + normal())) },
    { name: 'binary', type: 'categorical', levels: 2, values: Float64Array.from({ length: n }, (_, i) => (lin(i, w1) + normal() > 0 ? 1 : 0)) },
    { name: 'three', type: 'categorical', levels: 3, values: Float64Array.from({ length: n }, (_, i) => (i % 11 === 0 ? -1 : Math.min(2, Math.max(0, Math.round(row(i)[1] + 1))))) },
  ];
  const folds = 3;
  const fold = foldAssignment(n, folds, 5);
  const ridge = new GramRidge(gramMatrix(X, n, d), n, fold, folds);
  const ours = decodeFeatures(ridge, features, 6);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-decode-'));
  try {
    fs.writeFileSync(path.join(dir, 'input.json'), JSON.stringify({
      X: Array.from({ length: n }, (_, i) => row(i)), fold: [...fold], folds, exponents: RIDGE_EXPONENTS,
      features: features.map((f) => ({ name: f.name, type: f.type, levels: f.levels, values: [...f.values].map((v) => (Number.isNaN(v) ? null : v)) })),
    }));
    const r = spawnSync(PY, [path.join(__dirname, 'fixtures', 'compare_oracle.py'), dir], { encoding: 'utf8', maxBuffer: 1 << 26 });
    t.equal(r.status, 0, r.stderr);
    const ref = JSON.parse(r.stdout).results;
    for (const o of ours) {
      const e = ref[o.name];
      let worst = 0;
      o.predictions.forEach((p, c) => p.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - e.predictions[c][i])))));
      t.ok(worst < 1e-8, `${o.name}: out-of-fold predictions agree to ${worst.toExponential(1)}`);
      t.ok(close(o.value, e.value, 1e-9), `${o.name}: ${o.metric} ${o.value.toFixed(4)} vs sklearn ${e.value.toFixed(4)}`);
    }
    t.ok(ours[0].value > 0.5 && ours[1].value < 0.2, 'a linear feature decodes, noise does not');
    t.equal(ours[2].n, n - 5, 'rows without a value are left out (i mod 7 = 3: 5 of 36)');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t.test('lesionTruth reads cardiac scar boxes and the union of MNIST fracture cuts; none for other cohorts', async (t) => {
  const base = { ids: ['a', 'b', 'c'], images: { shape: [3, 1, 28, 28] } } as unknown as Cohort;
  const cardiac = lesionTruth(base, { generator: { name: 'tabsight synthCardiac' }, lesions: [{ id: 'b', index: 1, box: [1, 2, 5, 6] }] })!;
  t.equal(cardiac.source, 'cardiac-scar');
  t.same([...cardiac.boxes.entries()], [[1, [[1, 2, 5, 6]]]]);
  const mnist = lesionTruth(base, {
    generator: { name: 'tabsight synthMnist' }, subjects: [
      { id: 'a', row: 0, perturbation: 'fracture', params: { fractures: [{ boxPx: [1, 1, 3, 3] }, { boxPx: [10, 10, 12, 14] }] } },
      { id: 'b', row: 1, perturbation: 'swell', params: {} },
      { id: 'c', row: 2, perturbation: 'none' },
    ],
  })!;
  t.equal(mnist.source, 'mnist-fracture');
  t.same([...mnist.boxes.entries()], [[0, [[1, 1, 3, 3], [10, 10, 12, 14]]]]);
  t.equal(lesionTruth(base, undefined), null);
  t.equal(lesionTruth(base, { subjects: [{ id: 'a', perturbation: 'thin' }] }), null);
});

t.test('randomizeWeights re-initialises exactly the stages asked for and copies the rest bit for bit', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-rand-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rng = uniformStream(2);
  const tensors: Record<string, TensorInput> = {};
  const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() + 3) });
  const bn = (prefix: string, c: number) => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) tensors[`${prefix}.${k}`] = f32([c]);
    tensors[`${prefix}.num_batches_tracked`] = { dtype: 'I64', shape: [], data: BigInt64Array.from([7n]) };
  };
  tensors['model.image.conv1.weight'] = f32([8, 3, 3, 3]);
  bn('model.image.bn1', 8);
  for (const l of [1, 2, 3, 4]) {
    tensors[`model.image.layer${l}.0.conv1.weight`] = f32([64, 8, 3, 3]);
    bn(`model.image.layer${l}.0.bn1`, 64);
  }
  tensors['model.image_projection.layers.0.weight'] = f32([16, 64]);
  tensors['model.image_projection.layers.0.bias'] = f32([16]);
  bn('model.image_projection.layers.1', 16);
  tensors['model.tabular.encoder.0.weight'] = f32([4, 5]);
  tensors['optimizer.state.0.exp_avg'] = f32([4]);
  const src = path.join(dir, 'checkpoint.safetensors');
  await writeSafetensors(src, tensors, { format: 'tabsight-checkpoint-1', config: '{}' });
  const dst = path.join(dir, 'random.safetensors');
  const { changed } = await randomizeWeights(src, dst, { stages: ['head', 'layer4'], encoderPrefix: 'model.image.', keepPrefix: 'model.', seed: 1 });
  const a = await readSafetensors(src);
  const b = await readSafetensors(dst);
  const { data_crc32: crcA, ...metaA } = a.metadata;
  const { data_crc32: crcB, ...metaB } = b.metadata;
  t.same(metaB, metaA, 'metadata copied');
  t.ok(crcA && crcB && crcA !== crcB, 'but data_crc32 is the new file\'s own (checked when it was read back)');
  t.notOk(b.tensors.has('optimizer.state.0.exp_avg'), 'tensors outside keepPrefix dropped');
  const expected = [...a.tensors.keys()].filter((k) => k.startsWith('model.image_projection.') || k.startsWith('model.image.layer4.'));
  t.same([...changed].sort(), expected.sort(), 'changed: the head and layer4');
  for (const [name, tt] of a.tensors) {
    if (!name.startsWith('model.')) continue;
    const same = Buffer.from(tt.data.buffer, tt.data.byteOffset, tt.data.byteLength).equals(Buffer.from(b.tensors.get(name)!.data.buffer, b.tensors.get(name)!.data.byteOffset, b.tensors.get(name)!.data.byteLength));
    t.equal(same, !expected.includes(name), `${name} ${expected.includes(name) ? 're-initialised' : 'unchanged'}`);
  }
  const conv = b.tensors.get('model.image.layer4.0.conv1.weight')!.data as Float32Array;
  const sd = Math.sqrt(conv.reduce((s, v) => s + v * v, 0) / conv.length);
  t.ok(Math.abs(sd / Math.sqrt(2 / (64 * 9)) - 1) < 0.03, `conv std ${sd.toFixed(4)} ≈ √(2/fan_out) ${Math.sqrt(2 / 576).toFixed(4)}`);
  t.ok([...(b.tensors.get('model.image.layer4.0.bn1.weight')!.data as Float32Array)].every((v) => v === 1), 'BN weight 1');
  t.ok([...(b.tensors.get('model.image.layer4.0.bn1.running_var')!.data as Float32Array)].every((v) => v === 1), 'BN running_var 1');
  t.ok([...(b.tensors.get('model.image.layer4.0.bn1.bias')!.data as Float32Array)].every((v) => v === 0), 'BN bias 0');
  t.same([...(b.tensors.get('model.image.layer4.0.bn1.num_batches_tracked')!.data as BigInt64Array)], [0n], 'num_batches_tracked 0');
  const lin = b.tensors.get('model.image_projection.layers.0.weight')!.data as Float32Array;
  t.ok(lin.every((v) => Math.abs(v) <= 1 / 8) && Math.max(...lin.map(Math.abs)) > 0.1, 'linear U(−1/√64, 1/√64)');
  const again = path.join(dir, 'again.safetensors');
  await randomizeWeights(src, again, { stages: ['head', 'layer4', 'layer3'], encoderPrefix: 'model.image.', keepPrefix: 'model.', seed: 1 });
  const c = await readSafetensors(again);
  t.same([...(c.tensors.get('model.image.layer4.0.conv1.weight')!.data as Float32Array)], [...conv], 'cascading: layer4 gets the same values when layer3 is added');
  t.equal(stageOf('model.image.bn1.weight', 'model.image.'), 'stem');
  t.equal(stageOf('layer2.1.downsample.0.weight', ''), 'layer2');
  t.equal(stageOf('model.tabular.encoder.0.weight', 'model.image.'), null);
  t.same(RANDOMIZATION_STAGES, ['head', 'layer4', 'layer3', 'layer2', 'layer1', 'stem']);
  await t.rejects(randomizeWeights(src, path.join(dir, 'x.safetensors'), { stages: ['layer9' as never], encoderPrefix: 'model.image.' }), { code: 'ERR_CONFIG' });
});

t.test('the summary names the methods whose deletion AUC is above random\'s, and those it cannot tell from random', async (t) => {
  const { deletionVsRandom } = await import('../lib/explain/compare-report');
  const n = 40;
  const random = Float64Array.from({ length: n }, (_, i) => 0.3 + (0.4 * ((i * 7) % n)) / n);
  const curves = {
    random: { deletion: random },
    // Faithful: every image's deletion AUC 0.2 below random's (what a good map does; not named).
    ig: { deletion: random.map((r) => r - 0.2) },
    // 0.2 above random's on every image: the median difference is 0.2, its interval [0.2, 0.2].
    gradcam: { deletion: random.map((r) => r + 0.2) },
    // ±0.01 in turn: every resample's median is within ±0.01, so the interval holds 0.
    'guided-backprop': { deletion: random.map((r, i) => r + (i % 2 ? 0.01 : -0.01)) },
    // Only 5 finite pairs, fewer than MIN_PAIRED: not judged.
    'guided-gradcam': { deletion: random.map((r, i) => (i < 5 ? r + 0.3 : NaN)) },
  };
  const lines = deletionVsRandom('run A', curves, ['ig', 'gradcam', 'guided-backprop', 'guided-gradcam'], 1000, 3);
  t.same(lines, [
    'run A: GradCAM deleted pixels in an order that lowered the score more slowly than a random order (deletion AUC above random\'s).',
    'run A: Guided Backprop could not be told apart from a random order in deletion (the interval of the difference in deletion AUC includes 0).',
  ]);
  t.same(deletionVsRandom('run B', curves, ['ig'], 1000, 3), [], 'a method below random is not named');
});
