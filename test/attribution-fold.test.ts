// BatchNorm folding for Integrated Gradients (native/models/folded_resnet.h):
// integratedGradients runs on a copy of the encoder with each eval-mode
// BatchNorm folded into the convolution before it, and integrates from the
// folded stem's output (AffineSplit in native/attribution/integrated_gradients.h:
// the stem is affine, so its transpose maps the summed gradients back to
// pixels once per image); the other image methods keep the module. Oracle: the unfolded computation, which the raw
// binding still runs with model.foldBatchNorm = false. Nets: the random
// ResNets of test/fixtures/attribution_ref.py, whose BatchNorm statistics and
// affine parameters are random, so folding rescales every weight and adds a
// bias to every convolution.
import t from 'tap';
import * as path from 'node:path';
import { _native } from '../lib/index';
import { awaitNative } from '../lib/errors';
import type { Attribution } from '../lib/explain';
import { generateFixtures, maxAbs, maxDiff, same } from './helpers/attribution-fixtures';

const { dir, manifest, f32, cleanup } = generateFixtures('tabsight-fold-');
t.teardown(cleanup);
// Folding is measured with LibTorch's direct convolution on both sides. The
// folded 3×3 convolutions' Winograd path rounds about ten times more; it is
// tested against float64 in attribution.test.ts.
const winogradBefore = _native()._winograd();
_native()._winograd(false);
t.teardown(() => { _native()._winograd(winogradBefore); });

// Tolerances, relative to the largest |value| of the unfolded result.
// Folding changes only float32 rounding (W' = s·W and b' = β − s·μ are
// computed in float64 and rounded once): about 1e-7 relative per layer. So
// the forward scores F(x), F(b) agree to SCORE_REL. Beyond that, on these
// random-BatchNorm nets a ReLU or max-pool input within rounding of 0 (or of
// a tie) falls on the other side at some inputs, in the unfolded float32
// computation as much as in the folded one, and changes that input's
// gradient over the unit's receptive field. IG meets such inputs among its
// path points: measured against float64 on the 64 px ResNet-18 at 50 path
// points (PyTorch, the same kernels), the unfolded float32 gradients flip at
// 4 points (up to 2.3% of that point's max), the folded ones at 2; at the
// other points both are within 7e-7 of float64. Hence IG_REL at the 99th
// percentile of |folded − unfolded| and MAX_REL for the maximum
// (attribution.test.ts bounds IG against PyTorch by 2e-2 for the same
// reason). A real change is larger: scaling the images by 1 + 1e-2 moves
// the scores by more than 10 × SCORE_REL and IG's 99th percentile by more
// than 10 × IG_REL (checked, so the comparison can fail).
const SCORE_REL = 2e-6;
const IG_REL = 1e-3;
const MAX_REL = 2e-2;
const quantile = (a: ArrayLike<number>, b: ArrayLike<number>, q: number) => {
  const d = Float64Array.from({ length: a.length }, (_, i) => Math.abs(a[i] - b[i])).sort();
  return d[Math.min(d.length - 1, Math.floor(q * d.length))];
};

for (const name of ['small', 'std', 'r50']) {
  const c = manifest[name];
  const label = { small: 'ResNet-18 (small stem, 32 px)', std: 'ResNet-18 (standard stem, 64 px)', r50: 'ResNet-50 (small stem, 32 px)' }[name];
  const x = f32(c.input);
  const target = { kind: 'probe', weight: f32(c.probe_w), weightShape: [4, c.feature_dim], bias: f32(c.probe_b), biasShape: [4], index: c.classes };
  const model = (fold: boolean) => ({ path: path.join(dir, c.weights), format: 'encoder', device: 'cpu', arch: c.arch, inChannels: 3, smallStem: c.small_stem, foldBatchNorm: fold });
  const run = (images: Float32Array, fold: boolean, method: Record<string, unknown>) =>
    awaitNative(_native().attributeImages(images, c.input_shape, { model: model(fold), target, method })) as Promise<Attribution>;
  const ig = { name: 'integrated_gradients', igMethod: 'gausslegendre', steps: 16, internalBatchSize: 24, baseline: { kind: 'zeros' } };
  const methods: Record<string, Record<string, unknown>> = {
    integratedGradients: ig,
    'integratedGradients in a noiseTunnel': { ...ig, steps: 4, noise: { type: 'smoothgrad', samples: 2, stdev: 0.1, seed: 3 } },
  };
  t.test(`${label}: folded BatchNorm gives the unfolded attributions and scores to float32 rounding`, async (t) => {
    for (const [mname, method] of Object.entries(methods)) {
      const folded = await run(x, true, method);
      const plain = await run(x, false, method);
      const scale = maxAbs(plain.attributions);
      const d = maxDiff(folded.attributions, plain.attributions);
      const p99 = quantile(folded.attributions, plain.attributions, 0.99);
      t.ok(scale > 0, `${mname}: non-zero attributions (max ${scale.toExponential(2)})`);
      t.ok(p99 <= IG_REL * scale, `${mname}: 99th percentile of |folded − unfolded| ${(p99 / scale).toExponential(2)} of max ${scale.toExponential(2)} (≤ ${IG_REL})`);
      t.ok(d <= MAX_REL * scale, `${mname}: max |folded − unfolded| ${(d / scale).toExponential(2)} of max (≤ ${MAX_REL})`);
      // The flag takes effect: another computation, so not bit-identical.
      t.notOk(same(folded.attributions, plain.attributions), `${mname}: the folded path ran (results differ in rounding)`);
      if (mname === 'integratedGradients') {
        const s = Math.max(maxAbs(plain.scores!), maxAbs(plain.baselineScores!));
        for (const key of ['scores', 'baselineScores'] as const) {
          const e = maxDiff(folded[key]!, plain[key]!);
          t.ok(e <= SCORE_REL * s, `IG ${key} (forward passes): max diff ${(e / s).toExponential(2)} of max ${s.toExponential(2)} (≤ ${SCORE_REL})`);
        }
        // delta = Σ attribution − (F(x) − F(b)) carries the flips above, summed over an
        // image's pixels: so its change is bounded by the image's summed |folded − unfolded|
        // attributions plus the scores' changes (with float32 rounding of the sums). A fixed
        // 1e-3 of the scores held on an AVX-512 CPU (4.3e-5 here) but not on an AVX2 one
        // (1.32e-3 on the 64 px ResNet-18), whose kernels round differently and flip elsewhere.
        const n = plain.delta!.length;
        const per = plain.attributions.length / n;
        for (let i = 0; i < n; i++) {
          let l1 = 0;
          let mass = 0;
          for (let j = i * per; j < (i + 1) * per; j++) {
            l1 += Math.abs(folded.attributions[j] - plain.attributions[j]);
            mass += Math.abs(plain.attributions[j]);
          }
          const bound = l1 + Math.abs(folded.scores![i] - plain.scores![i]) + Math.abs(folded.baselineScores![i] - plain.baselineScores![i]) + 1e-5 * (mass + s);
          const e = Math.abs(folded.delta![i] - plain.delta![i]);
          if (!(e <= bound)) t.fail(`IG delta of image ${i}: |folded − unfolded| ${e.toExponential(3)} > ${bound.toExponential(3)} (Σ|Δattribution| + |Δscores|)`);
        }
        const e = maxDiff(folded.delta!, plain.delta!);
        t.ok(e <= MAX_REL * s, `IG delta: max diff ${(e / s).toExponential(2)} of the scores' max (≤ ${MAX_REL}), within each image's Σ|Δattribution| + |Δscores|`);
        // The comparison can fail: a 1% change of the images is seen.
        const moved = await run(x.map((v) => v * 1.01), false, method);
        const pm = quantile(moved.attributions, plain.attributions, 0.99);
        t.ok(pm > 10 * IG_REL * scale, `images × 1.01 move IG's 99th percentile by ${(pm / scale).toExponential(2)} of max (> ${10 * IG_REL})`);
        const sm = maxDiff(moved.scores!, plain.scores!);
        t.ok(sm > 10 * SCORE_REL * s, `and the scores by ${(sm / s).toExponential(2)} (> ${(10 * SCORE_REL).toExponential(0)})`);
      }
    }
    // The other methods use the module itself: the flag changes nothing.
    const others: Record<string, Record<string, unknown>> = {
      saliency: { name: 'saliency', abs: false, batchSize: 0 },
      guidedBackprop: { name: 'guided_backprop', batchSize: 0 },
      'gradCam conv1': { name: 'gradcam', layer: 'conv1', relu: false, normalize: false, upsample: 'none', batchSize: 0 },
      guidedGradCam: { name: 'guided_gradcam', layer: 'layer4', relu: true, normalize: false, upsample: 'nearest', batchSize: 0 },
    };
    for (const [mname, method] of Object.entries(others)) {
      t.ok(same((await run(x, true, method)).attributions, (await run(x, false, method)).attributions), `${mname} bit-identical with and without the flag`);
    }
  });
}

// The stem split on odd image sizes, where the stride-2 stem leaves a last
// row or column out of every window (its transpose must give it zero), with
// a blurred baseline (A(b) is not the stem's bias) and chunks that are not
// whole steps (the gather path of the IG loop).
t.test('ResNet-18 (standard stem), 45 × 38 px, blurred baseline, ragged chunks: folded and split IG gives the unfolded attributions', async (t) => {
  const c = manifest.std;
  const shape = [3, 3, 45, 38];
  let seed = 7;
  const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  });
  const target = { kind: 'probe', weight: f32(c.probe_w), weightShape: [4, c.feature_dim], bias: f32(c.probe_b), biasShape: [4], index: [0, 1, 2] };
  const method = { name: 'integrated_gradients', igMethod: 'riemann_middle', steps: 12, internalBatchSize: 7, baseline: { kind: 'blur', sigma: 2 } };
  const run = (images: Float32Array, fold: boolean) => awaitNative(_native().attributeImages(images, shape, {
    model: { path: path.join(dir, c.weights), format: 'encoder', device: 'cpu', arch: c.arch, inChannels: 3, smallStem: false, foldBatchNorm: fold }, target, method,
  })) as Promise<Attribution>;
  const folded = await run(x, true);
  const plain = await run(x, false);
  const scale = maxAbs(plain.attributions);
  t.ok(scale > 0, `non-zero attributions (max ${scale.toExponential(2)})`);
  // Examples in groups of 1 (large inputs are split so the stem-space sums
  // stay within 256 MiB; TABSIGHT_IG_GROUP forces it here): the same result.
  process.env.TABSIGHT_IG_GROUP = '1';
  let grouped: Attribution;
  try {
    grouped = await run(x, true);
  } finally {
    delete process.env.TABSIGHT_IG_GROUP;
  }
  t.ok(maxDiff(grouped.attributions, folded.attributions) <= 1e-6 * scale, `examples one group at a time: max diff ${(maxDiff(grouped.attributions, folded.attributions) / scale).toExponential(2)} of max (≤ 1e-6)`);
  const p99 = quantile(folded.attributions, plain.attributions, 0.99);
  t.ok(p99 <= IG_REL * scale, `99th percentile of |folded − unfolded| ${(p99 / scale).toExponential(2)} of max (≤ ${IG_REL})`);
  t.ok(maxDiff(folded.attributions, plain.attributions) <= MAX_REL * scale, 'max |folded − unfolded| within MAX_REL');
  // The last row (index 44) and column (37) are covered by the stem's
  // windows here, so they carry attribution on both sides.
  const H = 45, W = 38;
  let edge = 0;
  for (let i = 0; i < shape[0] * 3; i++) for (let w = 0; w < W; w++) edge = Math.max(edge, Math.abs(plain.attributions[i * H * W + (H - 1) * W + w]));
  t.ok(edge > 0, 'the last row has non-zero attribution in the unfolded result');
  const s = Math.max(maxAbs(plain.scores!), maxAbs(plain.baselineScores!));
  t.ok(maxDiff(folded.delta!, plain.delta!) <= 1e-3 * s, 'convergence deltas agree to 1e-3 of the scores');
  const moved = await run(x.map((v) => v * 1.01), false);
  t.ok(quantile(moved.attributions, plain.attributions, 0.99) > 10 * IG_REL * scale, 'a 1% change of the images is seen (the comparison can fail)');
});

t.test('foldBatchNorm must be a boolean in the raw binding', async (t) => {
  const c = manifest.small;
  const model = { path: path.join(dir, c.weights), format: 'encoder', device: 'cpu', arch: c.arch, inChannels: 3, smallStem: true, foldBatchNorm: 'yes' };
  t.throws(() => _native().attributeImages(f32(c.input), c.input_shape, { model, target: { kind: 'feature', index: [0] }, method: { name: 'saliency', abs: true, batchSize: 0 } }), { code: 'ERR_CONFIG' });
});
