import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AugmentOptions,
  AugmentSampleParams,
  MMCL_CARDIAC_AUGMENT,
  MMCL_DVM_AUGMENT,
  augmentBatch,
  resizeToFloat,
  resolveAugmentOptions,
  sampleAugmentParams,
} from '../lib/augment';
import { _native } from '../lib/index';
import { ConfigError, ShapeError, TabsightError } from '../lib/errors';

// ---- helpers ---------------------------------------------------------------

type Shape = [number, number, number, number];
/** Every random transform off: augmented samples are the identity unless a test turns one on. */
const OFF: Partial<AugmentOptions> = { rate: 1, crop: false, flipP: 0, rotationDeg: 0, jitterP: 0, grayscaleP: 0, blurP: 0 };

function randomImage(shape: Shape, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  });
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
/** Sample i of an N×C×H×W batch. */
function sample(data: ArrayLike<number>, shape: number[], i: number): number[] {
  const size = shape[1] * shape[2] * shape[3];
  return Array.from(data).slice(i * size, (i + 1) * size);
}
async function rejection(p: Promise<unknown>): Promise<TabsightError> {
  try {
    await p;
  } catch (err) {
    return err as TabsightError;
  }
  throw new Error('expected a rejection');
}

// ---- the PyTorch / torchvision oracle, run once for all jobs ----------------

const fixtures = {
  resizeUp: { shape: [2, 3, 5, 7] as Shape, data: randomImage([2, 3, 5, 7], 1), size: [8, 6] },
  resizeU8: { shape: [1, 2, 6, 5] as Shape, data: Uint8Array.from(randomImage([1, 2, 6, 5], 2), (v) => Math.floor(v * 256)), size: [3, 4] },
  crop: { shape: [5, 3, 12, 10] as Shape, data: randomImage([5, 3, 12, 10], 3), options: { ...OFF, crop: true, outSize: [8, 8] } as Partial<AugmentOptions>, seed: 11 },
  rotate: { shape: [4, 2, 9, 11] as Shape, data: randomImage([4, 2, 9, 11], 4), options: { ...OFF, rotationDeg: 60 } as Partial<AugmentOptions>, seed: 12 },
  jitter: { shape: [8, 3, 4, 5] as Shape, data: randomImage([8, 3, 4, 5], 5), options: { ...OFF, jitterP: 1 } as Partial<AugmentOptions>, seed: 13 },
  blur: { shape: [3, 3, 9, 9] as Shape, data: randomImage([3, 3, 9, 9], 6), options: { ...OFF, blurP: 1, blurKernel: 5 } as Partial<AugmentOptions>, seed: 14 },
};
const paramsOf = (f: { shape: Shape; options: Partial<AugmentOptions>; seed: number }) =>
  sampleAugmentParams(f.shape[0], f.shape[2], f.shape[3], f.options, f.seed);

const hasPython = spawnSync('/usr/bin/python3', ['-c', 'import torchvision'], { stdio: 'ignore' }).status === 0;
const noOracle = hasPython ? false : '/usr/bin/python3 with torchvision is not available';

function runOracle(): Record<string, { shape: number[]; data: number[] }> {
  if (!hasPython) return {};
  const f = fixtures;
  const jobs: Record<string, object> = {
    resizeUp: { op: 'resize', shape: f.resizeUp.shape, data: [...f.resizeUp.data], size: f.resizeUp.size },
    resizeU8: { op: 'resize', shape: f.resizeU8.shape, data: [...f.resizeU8.data], uint8: true, size: f.resizeU8.size },
    crop: { op: 'resized_crop', shape: f.crop.shape, data: [...f.crop.data], boxes: paramsOf(f.crop).map((p) => p.crop), size: [8, 8] },
    rotate: { op: 'rotate', shape: f.rotate.shape, data: [...f.rotate.data], angles: paramsOf(f.rotate).map((p) => p.angle) },
    jitter: { op: 'jitter', shape: f.jitter.shape, data: [...f.jitter.data], params: paramsOf(f.jitter) },
    blur: { op: 'blur', shape: f.blur.shape, data: [...f.blur.data], kernel: 5, sigmas: paramsOf(f.blur).map((p) => p.blurSigma) },
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-augment-'));
  try {
    fs.writeFileSync(path.join(dir, 'jobs.json'), JSON.stringify({ jobs: Object.values(jobs) }));
    const script = path.join(__dirname, 'fixtures', 'augment_ref.py');
    const run = spawnSync('/usr/bin/python3', [script, path.join(dir, 'jobs.json'), path.join(dir, 'out.json')], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`augment_ref.py failed: ${run.stderr}`);
    const results = JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')).results as Array<{ shape: number[]; data: number[] }>;
    return Object.fromEntries(Object.keys(jobs).map((k, i) => [k, results[i]]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const ref = runOracle();

// ---- tests -----------------------------------------------------------------

t.test('augmentBatch#output has the out shape, float32, values in [0, 1] for uint8 input', async (t) => {
  const data = Uint8Array.from(randomImage([4, 3, 12, 12], 7), (v) => Math.floor(v * 256));
  const out = await augmentBatch({ data, shape: [4, 3, 12, 12] }, { outSize: [8, 10] }, 3);
  t.same(out.shape, [4, 3, 8, 10]);
  t.ok(out.data instanceof Float32Array);
  t.equal(out.data.length, 4 * 3 * 8 * 10);
  t.ok(out.data.every((v) => v >= 0 && v <= 1 + 1e-6), 'values within [0, 1]');
  t.ok(Math.max(...out.data) > 0.5, 'not all black');
});

t.test('augmentBatch#same seed gives identical bytes, another seed differs, input untouched', async (t) => {
  const shape: Shape = [4, 3, 12, 12];
  const data = randomImage(shape, 8);
  const copy = data.slice();
  const a = await augmentBatch({ data, shape }, {}, 42);
  const b = await augmentBatch({ data, shape }, {}, 42);
  const c = await augmentBatch({ data, shape }, {}, 43);
  t.ok(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer)), 'seed 42 twice');
  t.notOk(Buffer.from(a.data.buffer).equals(Buffer.from(c.data.buffer)), 'seed 43');
  t.ok(Buffer.from(data.buffer).equals(Buffer.from(copy.buffer)), 'input unchanged');
});

t.test('resizeToFloat#matches torch interpolate (bilinear, align_corners=False)', { skip: noOracle }, async (t) => {
  const up = resizeToFloat({ data: fixtures.resizeUp.data, shape: fixtures.resizeUp.shape }, 8, 6);
  t.same(up.shape, ref.resizeUp.shape);
  t.ok(maxDiff(up.data, ref.resizeUp.data) < 1e-6, `float input: max diff ${maxDiff(up.data, ref.resizeUp.data)}`);
  const u8 = resizeToFloat({ data: fixtures.resizeU8.data, shape: fixtures.resizeU8.shape }, 3, 4);
  t.same(u8.shape, ref.resizeU8.shape);
  t.ok(maxDiff(u8.data, ref.resizeU8.data) < 1e-6, `uint8 input: max diff ${maxDiff(u8.data, ref.resizeU8.data)}`);
});

t.test('augmentBatch#rate 0 equals resizeToFloat; unselected samples of a mixed batch too', async (t) => {
  const shape: Shape = [16, 3, 8, 7];
  const data = randomImage(shape, 9);
  const resized = resizeToFloat({ data, shape }, 6, 9);
  const none = await augmentBatch({ data, shape }, { rate: 0, outSize: [6, 9] }, 1);
  t.ok(maxDiff(none.data, resized.data) < 1e-6, `rate 0: max diff ${maxDiff(none.data, resized.data)}`);
  const mixed = await augmentBatch({ data, shape }, { rate: 0.5, outSize: [6, 9] }, 5);
  const params = sampleAugmentParams(16, 8, 7, { rate: 0.5, outSize: [6, 9] }, 5);
  const picked = params.filter((p) => p.augmented).length;
  t.ok(picked > 0 && picked < 16, `${picked} of 16 augmented`);
  params.forEach((p, i) => {
    const d = maxDiff(sample(mixed.data, mixed.shape, i), sample(resized.data, resized.shape, i));
    if (p.augmented) t.ok(d > 1e-3, `sample ${i} augmented (diff ${d})`);
    else t.ok(d < 1e-6, `sample ${i} only resized (diff ${d})`);
  });
});

t.test('augmentBatch#flip only mirrors each row exactly', async (t) => {
  const shape: Shape = [1, 2, 4, 8];
  const data = Float32Array.from({ length: 64 }, (_, i) => i / 64);
  const out = await augmentBatch({ data, shape }, { ...OFF, flipP: 1 }, 0);
  const mirrored = Array.from(data, (_, i) => data[i - (i % 8) + 7 - (i % 8)]);
  t.same(Array.from(out.data), mirrored);
});

t.test('augmentBatch#quarter-area crop is the bilinear upsample of the chosen box', async (t) => {
  // value = (16y + x) / 256 is linear, so bilinear upsampling is exact at
  // clamped source coordinates.
  const shape: Shape = [4, 1, 16, 16];
  const data = Float32Array.from({ length: 4 * 256 }, (_, i) => (16 * Math.floor((i % 256) / 16) + (i % 16)) / 256);
  const options = { ...OFF, crop: true, cropScale: [0.25, 0.25], cropRatio: [1, 1], outSize: [16, 16] } as Partial<AugmentOptions>;
  const params = sampleAugmentParams(4, 16, 16, options, 21);
  const out = await augmentBatch({ data, shape }, options, 21);
  t.ok(new Set(params.map((p) => p.crop.join())).size > 1, 'boxes differ between samples');
  const src = (o: number) => Math.min(Math.max((o + 0.5) * 0.5 - 0.5, 0), 7);
  params.forEach(({ crop: [top, left, h, w] }, i) => {
    t.same([h, w], [8, 8], `sample ${i} box is 8×8`);
    t.ok(top >= 0 && top <= 8 && left >= 0 && left <= 8, `sample ${i} box inside`);
    const expected = Array.from({ length: 256 }, (_, k) => (16 * (top + src(Math.floor(k / 16))) + left + src(k % 16)) / 256);
    t.ok(maxDiff(sample(out.data, out.shape, i), expected) < 1e-6, `sample ${i} content`);
  });
});

t.test('augmentBatch#random crops match torchvision resized_crop with the sampled boxes', { skip: noOracle }, async (t) => {
  const f = fixtures.crop;
  const out = await augmentBatch({ data: f.data, shape: f.shape }, f.options, f.seed);
  t.ok(new Set(paramsOf(f).map((p) => p.crop.join())).size > 1, 'boxes differ');
  t.ok(paramsOf(f).every((p) => p.crop[2] * p.crop[3] >= 0.2 * 120 * 0.9), 'areas within scale');
  t.same(out.shape, ref.crop.shape);
  t.ok(maxDiff(out.data, ref.crop.data) < 1e-5, `max diff ${maxDiff(out.data, ref.crop.data)}`);
});

t.test('augmentBatch#rotation matches torchvision rotate (bilinear, zero fill)', { skip: noOracle }, async (t) => {
  const f = fixtures.rotate;
  const out = await augmentBatch({ data: f.data, shape: f.shape }, f.options, f.seed);
  t.ok(paramsOf(f).some((p) => Math.abs(p.angle) > 20), 'some large angle');
  t.ok(maxDiff(out.data, ref.rotate.data) < 1e-5, `max diff ${maxDiff(out.data, ref.rotate.data)}`);
});

t.test('augmentBatch#rotation moves an off-centre blob to the predicted place', async (t) => {
  const options = { ...OFF, rotationDeg: 90 } as Partial<AugmentOptions>;
  let seed = 0;
  while (Math.abs(sampleAugmentParams(1, 21, 21, options, seed)[0].angle) < 30) seed++;
  const angle = sampleAugmentParams(1, 21, 21, options, seed)[0].angle;
  const data = new Float32Array(21 * 21);
  for (let y = 6; y <= 8; y++) for (let x = 14; x <= 16; x++) data[y * 21 + x] = 1;  // centre (15, 7)
  const out = await augmentBatch({ data, shape: [1, 1, 21, 21] }, options, seed);
  let m = 0, mx = 0, my = 0;
  out.data.forEach((v, k) => { m += v; mx += v * (k % 21); my += v * Math.floor(k / 21); });
  // Counter-clockwise on screen (y down): (dx, dy) → (c·dx + s·dy, −s·dx + c·dy).
  const c = Math.cos((angle * Math.PI) / 180), s = Math.sin((angle * Math.PI) / 180);
  const px = 10 + c * 5 + s * -3, py = 10 - s * 5 + c * -3;
  t.ok(Math.hypot(px - 15, py - 7) > 2, 'the blob must move');
  t.ok(Math.hypot(mx / m - px, my / m - py) < 0.35, `centroid (${mx / m}, ${my / m}) vs predicted (${px}, ${py}) at ${angle}°`);
  t.ok(Math.abs(m - 9) < 0.5, `mass kept (${m})`);
});

/** The documented jitter: blends in the sampled order, clamped after each. */
function jitterRef(x: number[], c: number, p: AugmentSampleParams): number[] {
  const hw = x.length / c;
  const clamp = (v: number) => Math.min(Math.max(v, 0), 1);
  const luma = (y: number[]) => Array.from({ length: hw }, (_, k) => 0.299 * y[k] + 0.587 * y[hw + k] + 0.114 * y[2 * hw + k]);
  let y = x;
  for (const op of p.order) {
    const f = p[op];
    if (op === 'brightness') y = y.map((v) => clamp(f * v));
    if (op === 'contrast') {
      const g = c === 3 ? luma(y) : y;
      const mean = g.reduce((a, b) => a + b, 0) / g.length;
      y = y.map((v) => clamp(f * v + (1 - f) * mean));
    }
    if (op === 'saturation' && c === 3) {
      const g = luma(y);
      y = y.map((v, k) => clamp(f * v + (1 - f) * g[k % hw]));
    }
  }
  return y;
}

t.test('augmentBatch#each jitter operation matches its closed form on simple images', async (t) => {
  const one = async (op: 'brightness' | 'contrast' | 'saturation', shape: Shape, data: Float32Array, expected: (x: number, k: number, f: number) => number) => {
    const options = { ...OFF, jitterP: 1, brightness: 0, contrast: 0, saturation: 0, [op]: 0.9 } as Partial<AugmentOptions>;
    const params = sampleAugmentParams(shape[0], shape[2], shape[3], options, 3);
    const out = await augmentBatch({ data, shape }, options, 3);
    params.forEach((p, i) => {
      t.not(p[op], 1, `${op} factor drawn`);
      const got = sample(out.data, out.shape, i);
      const want = sample(data, shape, i).map((x, k) => Math.min(Math.max(expected(x, k, p[op]), 0), 1));
      t.ok(maxDiff(got, want) < 1e-6, `${op}, sample ${i}, factor ${p[op]}: diff ${maxDiff(got, want)}`);
    });
  };
  // Constant 0.7 image: x·f, clamped at 1 when f > 1/0.7.
  await one('brightness', [4, 3, 2, 4], new Float32Array(96).fill(0.7), (x, _k, f) => x * f);
  // One channel, half 0.2 and half 0.6: mean 0.4.
  await one('contrast', [4, 1, 2, 4], Float32Array.from({ length: 32 }, (_, k) => (k % 8 < 4 ? 0.2 : 0.6)), (x, _k, f) => f * x + (1 - f) * 0.4);
  // Constant colour (0.8, 0.4, 0.1): gray 0.299·0.8 + 0.587·0.4 + 0.114·0.1.
  const colour = Float32Array.from({ length: 4 * 3 * 8 }, (_, k) => [0.8, 0.4, 0.1][Math.floor(k / 8) % 3]);
  const gray = 0.299 * 0.8 + 0.587 * 0.4 + 0.114 * 0.1;
  await one('saturation', [4, 3, 2, 4], colour, (x, _k, f) => f * x + (1 - f) * gray);
});

t.test('augmentBatch#jitter in the sampled per-sample order matches the closed form and torchvision', async (t) => {
  const f = fixtures.jitter;
  const params = paramsOf(f);
  t.ok(new Set(params.map((p) => p.order.join())).size >= 3, 'several orders in the batch');
  const out = await augmentBatch({ data: f.data, shape: f.shape }, f.options, f.seed);
  params.forEach((p, i) => {
    const want = jitterRef(sample(f.data, f.shape, i), 3, p);
    const d = maxDiff(sample(out.data, out.shape, i), want);
    t.ok(d < 1e-5, `sample ${i} (${p.order.join(' → ')}): diff ${d}`);
  });
  // torchvision weighs red 0.2989 instead of 0.299, hence the looser bound.
  if (noOracle) t.comment(`torchvision comparison skipped: ${noOracle}`);
  else t.ok(maxDiff(out.data, ref.jitter.data) < 1e-3, `vs torchvision: ${maxDiff(out.data, ref.jitter.data)}`);
});

t.test('augmentBatch#grayscale replaces every channel by the luma', async (t) => {
  const shape: Shape = [2, 3, 3, 4];
  const data = randomImage(shape, 10);
  const out = await augmentBatch({ data, shape }, { ...OFF, grayscaleP: 1 }, 0);
  for (let i = 0; i < 2; i++) {
    const x = sample(data, shape, i);
    const luma = Array.from({ length: 12 }, (_, k) => 0.299 * x[k] + 0.587 * x[12 + k] + 0.114 * x[24 + k]);
    t.ok(maxDiff(sample(out.data, out.shape, i), [...luma, ...luma, ...luma]) < 1e-6, `sample ${i}`);
  }
});

t.test('augmentBatch#saturation and grayscale leave a one-channel image unchanged', async (t) => {
  const shape: Shape = [3, 1, 4, 4];
  const data = randomImage(shape, 15);
  const options = { ...OFF, jitterP: 1, brightness: 0, contrast: 0, saturation: 0.9, grayscaleP: 1 } as Partial<AugmentOptions>;
  t.ok(sampleAugmentParams(3, 4, 4, options, 1).every((p) => p.grayscale && p.saturation !== 1), 'both drawn');
  const out = await augmentBatch({ data, shape }, options, 1);
  t.ok(maxDiff(out.data, data) < 1e-6, `max diff ${maxDiff(out.data, data)}`);
});

t.test('augmentBatch#blur matches torchvision gaussian_blur with the sampled sigmas', { skip: noOracle }, async (t) => {
  const f = fixtures.blur;
  const sigmas = paramsOf(f).map((p) => p.blurSigma);
  t.ok(sigmas.every((s) => s >= 0.1 && s <= 2) && new Set(sigmas).size === 3, `sigmas ${sigmas}`);
  const out = await augmentBatch({ data: f.data, shape: f.shape }, f.options, f.seed);
  t.ok(maxDiff(out.data, ref.blur.data) < 1e-5, `max diff ${maxDiff(out.data, ref.blur.data)}`);
});

t.test('augmentBatch#presets follow MMCL and run', async (t) => {
  t.same(resolveAugmentOptions(MMCL_CARDIAC_AUGMENT), { ...MMCL_CARDIAC_AUGMENT });
  t.match(MMCL_CARDIAC_AUGMENT, { flipP: 0.5, rotationDeg: 45, brightness: 0.5, contrast: 0.5, saturation: 0.5, cropScale: [0.2, 1], rate: 0.95, blurP: 0, grayscaleP: 0 });
  t.match(MMCL_DVM_AUGMENT, { brightness: 0.8, jitterP: 0.8, grayscaleP: 0.2, blurP: 0.5, blurKernel: 29, blurSigma: [0.1, 2], cropScale: [0.08, 1], flipP: 0.5 });
  const data = Uint8Array.from(randomImage([2, 3, 20, 20], 11), (v) => Math.floor(v * 256));
  const out = await augmentBatch({ data, shape: [2, 3, 20, 20] }, { ...MMCL_DVM_AUGMENT, outSize: [16, 16] }, 2);
  t.same(out.shape, [2, 3, 16, 16]);
  t.ok(out.data.every((v) => Number.isFinite(v)));
});

/** The native augment on the fused CPU kernel (the default) and on the reference tensor path. */
async function fusedAndReference(data: Uint8Array | Float32Array, shape: Shape, options: Partial<AugmentOptions>, seed: number) {
  const n = _native();
  const resolved = resolveAugmentOptions(options);
  const fused = (await n.augment(data, [...shape], resolved, seed)) as { data: Float32Array; shape: number[] };
  const reference = (await n.augment(data, [...shape], resolved, seed, true)) as { data: Float32Array; shape: number[] };
  return { fused, reference };
}

t.test('augmentBatch#the fused CPU kernel equals the reference tensor path within 1e-5', async (t) => {
  const u8 = (shape: Shape, seed: number) => Uint8Array.from(randomImage(shape, seed), (v) => Math.floor(v * 256));
  const strong = { brightness: 0.9, contrast: 0.9, saturation: 0.9 };
  const cases: Array<[string, Shape, 'u8' | 'f32', Partial<AugmentOptions>]> = [
    ['cardiac defaults, uint8, 3 channels', [6, 3, 13, 11], 'u8', {}],
    ['cardiac defaults, float, 3 channels, out 9×14', [6, 3, 13, 11], 'f32', { outSize: [9, 14] }],
    ['1 channel, uint8, out 7×5, strong jitter', [6, 1, 12, 10], 'u8', { ...strong, outSize: [7, 5] }],
    ['4 channels, float (contrast mean over channels)', [5, 4, 9, 9], 'f32', { ...strong, jitterP: 1 }],
    ['rate 0.5: some samples only resized', [8, 3, 10, 12], 'f32', { rate: 0.5, outSize: [11, 8] }],
    ['jitter off, flip and rotation 180', [6, 3, 11, 11], 'u8', { jitterP: 0, rotationDeg: 180, flipP: 0.5 }],
    ['jitter p 0.5, grayscale p 0.5, strong factors', [8, 3, 10, 9], 'f32', { ...strong, jitterP: 0.5, grayscaleP: 0.5 }],
    ['grayscale and blur on 1 channel', [4, 1, 12, 12], 'u8', { grayscaleP: 1, blurP: 1, blurKernel: 5 }],
    ['DVM preset (blur 29), uint8, out 16×15', [4, 3, 20, 18], 'u8', { ...MMCL_DVM_AUGMENT, outSize: [16, 15] }],
    ['blur p 0.5 with jitter, float', [6, 3, 11, 13], 'f32', { blurP: 0.5, blurKernel: 5, blurSigma: [0.5, 2] }],
    ['value range [0.2, 0.8] clamps, float', [6, 3, 9, 10], 'f32', { ...strong, valueRange: [0.2, 0.8] }],
    ['value range [-1, 2] on inputs in [-1, 2]', [6, 3, 9, 10], 'f32', { ...strong, valueRange: [-1, 2] }],
    ['upsampling 5×6 → 17×13, no crop', [4, 3, 5, 6], 'u8', { crop: false, outSize: [17, 13] }],
    ['128 px, cardiac, uint8', [3, 3, 128, 128], 'u8', {}],
    ['100×90 → 64×48, cardiac, float', [3, 3, 100, 90], 'f32', { outSize: [64, 48] }],
  ];
  let worst = 0;
  for (const [name, shape, dtype, options] of cases) {
    let caseWorst = 0;
    const seeds = shape[2] >= 64 ? [1, 2] : [1, 2, 3, 4, 5, 6];
    for (const seed of seeds) {
      let data: Uint8Array | Float32Array = dtype === 'u8' ? u8(shape, 100 + seed) : randomImage(shape, 100 + seed);
      if (options.valueRange?.[0] === -1) data = (data as Float32Array).map((v) => 3 * v - 1);
      const { fused, reference } = await fusedAndReference(data, shape, options, seed);
      t.same(fused.shape, reference.shape, `${name}: shape`);
      caseWorst = Math.max(caseWorst, maxDiff(fused.data, reference.data));
    }
    const params = sampleAugmentParams(shape[0], shape[2], shape[3], options, seeds[0]);
    const drawn = ['augmented', 'jitter', 'grayscale', 'blur'].map((k) => `${k} ${params.filter((p) => p[k as keyof AugmentSampleParams]).length}`);
    t.ok(caseWorst <= 1e-5, `${name}: max diff ${caseWorst} over seeds ${seeds.join(', ')} (seed ${seeds[0]}: ${drawn.join(', ')} of ${shape[0]})`);
    worst = Math.max(worst, caseWorst);
  }
  t.comment(`fused vs reference: max |diff| ${worst}`);
});

t.test('augmentBatch#TABSIGHT_AUGMENT_REFERENCE=1 runs the reference tensor path in a fresh process', async (t) => {
  const shape: Shape = [4, 3, 24, 24];
  const data = randomImage(shape, 16);
  const options: Partial<AugmentOptions> = { brightness: 0.9, contrast: 0.9, saturation: 0.9, outSize: [20, 22] };
  const { fused, reference } = await fusedAndReference(data, shape, options, 5);
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  t.notOk(bytes(fused.data).equals(bytes(reference.data)), 'the two paths differ in some bit here (the contrast mean)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-augment-env-'));
  try {
    fs.writeFileSync(path.join(dir, 'in.f32'), bytes(data));
    const script = `
      const fs = require('node:fs');
      const { augmentBatch } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'lib', 'augment.js'))});
      const buf = fs.readFileSync(process.argv[1] + '/in.f32');
      const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      augmentBatch({ data, shape: ${JSON.stringify(shape)} }, ${JSON.stringify(options)}, 5).then((out) => {
        fs.writeFileSync(process.argv[1] + '/out.f32', Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
      });`;
    const run = spawnSync(process.execPath, ['-e', script, dir], { env: { ...process.env, TABSIGHT_AUGMENT_REFERENCE: '1' }, encoding: 'utf8' });
    t.equal(run.status, 0, run.stderr);
    t.ok(fs.readFileSync(path.join(dir, 'out.f32')).equals(bytes(reference.data)), 'bitwise the reference path');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t.test('native augment rejects a non-boolean reference flag', async (t) => {
  const n = _native();
  const opts = resolveAugmentOptions({});
  try {
    n.augment(new Float32Array(12), [1, 3, 2, 2], opts, 0, 1);
    t.fail('expected an error');
  } catch (e) {
    t.equal((e as TabsightError).code, 'ERR_CONFIG');
    t.match((e as Error).message, /Expected boolean for reference/);
  }
});

t.test('augmentBatch#rejects bad data and shapes with ShapeError naming the field', async (t) => {
  const opts = {};
  const cases: Array<[string, unknown, RegExp]> = [
    ['Int32Array', { data: new Int32Array(12), shape: [1, 3, 2, 2] }, /images\.data.*Int32Array/],
    ['wrong length', { data: new Float32Array(11), shape: [1, 3, 2, 2] }, /images\.shape/],
    ['rank 3', { data: new Float32Array(12), shape: [3, 2, 2] }, /rank 4.*images\.shape/],
  ];
  for (const [name, images, message] of cases) {
    const err = await rejection(augmentBatch(images as never, opts));
    t.type(err, ShapeError, name);
    t.equal(err.code, 'ERR_SHAPE', name);
    t.match(err.message, message, name);
  }
});

t.test('augmentBatch#rejects invalid options with ConfigError naming the option', async (t) => {
  const images = { data: new Float32Array(12), shape: [1, 3, 2, 2] };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ flipP: 2 }, /^Expected number between 0 and 1 for augment\.flipP but received 2 of type number$/],
    [{ flip: 0.5 }, /Unknown option augment\.flip;/],
    [{ cropScale: [0.5, 0.2] }, /augment\.cropScale\[1\]/],
    [{ cropScale: [0, 1] }, /augment\.cropScale\[0\]/],
    [{ blurKernel: 4 }, /odd positive integer for augment\.blurKernel/],
    [{ outSize: [0, 5] }, /augment\.outSize/],
    [{ rotationDeg: -1 }, /augment\.rotationDeg/],
    [{ valueRange: [1, 0] }, /augment\.valueRange\[1\]/],
  ];
  for (const [options, message] of cases) {
    const err = await rejection(augmentBatch(images, options as Partial<AugmentOptions>));
    t.type(err, ConfigError, JSON.stringify(options));
    t.equal(err.code, 'ERR_CONFIG');
    t.match(err.message, message);
  }
  t.match((await rejection(augmentBatch(images, {}, -1))).message, /for seed/);
  // Checked at run time, inside the worker: the promise rejects.
  const small = await rejection(augmentBatch({ data: new Float32Array(3 * 64), shape: [1, 3, 8, 8] }, { blurP: 0.5, blurKernel: 29 }));
  t.type(small, ConfigError);
  t.match(small.message, /augment\.blurKernel 29 needs an output of at least 15/);
});

t.test('native augment re-checks dtype, length, rank and options without crashing', async (t) => {
  const n = _native();
  const opts = resolveAugmentOptions({});
  const code = (fn: () => unknown) => { try { fn(); return 'no error'; } catch (e) { return `${(e as TabsightError).code}: ${(e as Error).message}`; } };
  t.match(code(() => n.augment(new Int32Array(12), [1, 3, 2, 2], opts, 0)), /^ERR_SHAPE: .*images\.data/);
  t.match(code(() => n.augment(new Float32Array(11), [1, 3, 2, 2], opts, 0)), /^ERR_SHAPE: Expected 12 elements for images\.data/);
  t.match(code(() => n.augment(new Float32Array(12), [3, 2, 2], opts, 0)), /^ERR_SHAPE: .*images\.shape/);
  t.match(code(() => n.augment(new Float32Array(12), [1, 3, 2, 2], { ...opts, rate: 1.5 }, 0)), /^ERR_CONFIG: Expected number between 0 and 1 for augment\.rate but received 1\.5$/);
  t.match(code(() => n.augment(new Float32Array(12), [1, 3, 2, 2], { ...opts, blurKernel: undefined }, 0)), /^ERR_CONFIG: .*blurKernel/);
  t.match(code(() => n.resizeToFloat(new Float32Array(12), [1, 3, 2], 4, 4)), /^ERR_SHAPE/);
  t.match(code(() => n.augment(new Float32Array(12), [1, 3, 2, 2], opts, 0, false, new Float32Array(11))), /^ERR_SHAPE: Expected 12 elements for the augment output but received 11$/);
  t.match(code(() => n.augment(new Float32Array(12), [1, 3, 2, 2], opts, 0, false, new Uint8Array(12))), /^ERR_SHAPE: Expected a Float32Array for the augment output$/);
  const shared = new Float32Array(24);
  t.match(code(() => n.augment(shared.subarray(0, 12), [1, 3, 2, 2], opts, 0, false, shared.subarray(6, 18))), /^ERR_SHAPE: .*does not overlap/);
  const out = await n.augment(new Float32Array(12), [1, 3, 2, 2], opts, 0);
  t.same(out.shape, [1, 3, 2, 2], 'still alive and working');
  // Disjoint halves of one buffer are fine, and the output array is the one passed.
  const into = shared.subarray(12, 24);
  const res = await n.augment(shared.subarray(0, 12), [1, 3, 2, 2], opts, 0, false, into);
  t.equal(res.data, into);
});

t.test('augmentBatch#into: the view is written into the given array, with the same bytes; bad arrays are ShapeErrors', async (t) => {
  const shape: Shape = [5, 3, 24, 20];
  const data = Uint8Array.from(randomImage(shape, 13), (v) => Math.floor(v * 256));
  const opts: Partial<AugmentOptions> = { ...MMCL_CARDIAC_AUGMENT, outSize: [16, 12] };
  const fresh = await augmentBatch({ data, shape }, opts, 9);
  const into = new Float32Array(5 * 3 * 16 * 12).fill(Number.NaN);
  const view = await augmentBatch({ data, shape }, opts, 9, into);
  t.equal(view.data, into, 'resolves with the array passed');
  t.same(view.shape, [5, 3, 16, 12]);
  t.ok(Buffer.from(into.buffer).equals(Buffer.from(fresh.data.buffer, fresh.data.byteOffset, fresh.data.byteLength)), 'every element written, as without into');
  await t.rejects(augmentBatch({ data, shape }, opts, 9, new Float32Array(10)), new ShapeError('Expected 2880 elements for into (5×3×16×12) but received 10'));
  await t.rejects(augmentBatch({ data, shape }, opts, 9, new Float64Array(2880) as unknown as Float32Array), new ShapeError('Expected a Float32Array for into but received a Float64Array'));
  const both = new Float32Array(5 * 3 * 24 * 20 + 2880);
  const input = both.subarray(0, 5 * 3 * 24 * 20);
  await t.rejects(augmentBatch({ data: input, shape }, opts, 9, both.subarray(100, 100 + 2880)), ShapeError);
});

t.test('augmentBatch#the same bytes with 1, 2 and 3 intra-op threads (and stale worker counts are replaced)', async (t) => {
  const n = _native();
  const before = n.runtimeInfo().threads;
  t.teardown(() => { n.setThreads(before); });
  const shape: Shape = [37, 3, 20, 18];
  const data = Uint8Array.from(randomImage(shape, 11), (v) => Math.floor(v * 256));
  const opts: Partial<AugmentOptions> = { ...MMCL_CARDIAC_AUGMENT, outSize: [16, 16] };
  const results: Buffer[] = [];
  const params: string[] = [];
  for (const threads of [1, 2, 3, 1]) {
    n.setThreads(threads);
    // More calls than libuv has workers, so every worker runs with this count.
    const probes = await Promise.all(Array.from({ length: 8 }, () => n._threadProbe() as Promise<{ threads: number; distinctThreads: number }>));
    t.same(probes.map((p) => p.threads), Array(8).fill(threads), `every worker has ${threads} threads`);
    t.same(probes.map((p) => p.distinctThreads), Array(8).fill(threads), `the addon's parallel_for runs on ${threads} threads`);
    const out = await augmentBatch({ data, shape }, opts, 5);
    results.push(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    params.push(JSON.stringify(sampleAugmentParams(shape[0], shape[2], shape[3], opts, 5)));
  }
  for (let k = 1; k < results.length; k++) {
    t.ok(results[k].equals(results[0]), `output ${k} equals output 0`);
    t.equal(params[k], params[0], `parameters ${k} equal parameters 0`);
  }
});
