// ResNet parity with torchvision (Debian's python3-torch as the oracle), in
// both directions: torchvision's weights into our encoder, and our run's
// image_encoder.safetensors into torchvision.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { _native, loadRun, pretrain, DataError } from '../lib/index';
import { awaitNative, callNative } from '../lib/errors';

const PY = '/usr/bin/python3';
const ORACLE = path.join(__dirname, 'fixtures', 'torchvision_ref.py');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-parity-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
execFileSync(PY, [ORACLE, 'gen', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, { weights: string; input: string; input_shape: number[]; ref: string; ref_shape: number[]; ref_channels_last: string; ref64: string; torch_f32_vs_f64: number }>;
const f32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
};
const f64 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const cases: [string, string, number, boolean][] = [
  ['r18', 'resnet18', 3, false],
  ['r50', 'resnet50', 3, false],
  ['r18_small', 'resnet18', 1, true],
];
// Each memory format against torchvision run in the same format, and both
// against torchvision in float64. NCHW and channels_last take different
// oneDNN kernels, which round differently: on the ResNet-50 case torch's own
// NCHW and channels_last features differ by about 1e-5 (values up to 5.4),
// and torch float32 differs from float64 by 7e-6. The tolerance is 1e-5 or
// three times that float32 gap, whichever is larger.
for (const [name, arch, channels, smallStem] of cases) {
  t.test(`ImageEncoder#loadWeights reproduces torchvision ${arch}${smallStem ? ' (small stem)' : ''} pooled features in both memory formats`, async (t) => {
    const c = manifest[name];
    const enc = callNative(() => new (_native().ImageEncoder)({ arch, inChannels: channels, smallStem, seed: 0, device: 'cpu' }));
    await awaitNative(enc.loadWeights(path.join(dir, c.weights)));
    const x = f32(path.join(dir, c.input));
    const [, , h, w] = c.input_shape;
    const embed = async (memoryFormat: string) => await awaitNative(enc.embed(x, c.input_shape, { mean: new Array(channels).fill(0), std: new Array(channels).fill(1), outSize: [h, w], batchSize: 4, memoryFormat })) as { data: Float32Array; shape: number[] };
    const nchw = await embed('contiguous');
    const nhwc = await embed('channels_last');
    const auto = await embed('auto');
    t.same(nchw.shape, c.ref_shape);
    t.same(nhwc.shape, c.ref_shape);
    const tol = Math.max(1e-5, 3 * c.torch_f32_vs_f64);
    const dN = maxDiff(nchw.data, f32(path.join(dir, c.ref)));
    const dC = maxDiff(nhwc.data, f32(path.join(dir, c.ref_channels_last)));
    t.ok(dN <= tol, `contiguous: max abs diff ${dN} from torchvision NCHW (tolerance ${tol})`);
    t.ok(dC <= tol, `channels_last: max abs diff ${dC} from torchvision channels_last (tolerance ${tol})`);
    const ref64 = f64(path.join(dir, c.ref64));
    for (const [what, out] of [['contiguous', nchw], ['channels_last', nhwc]] as const) {
      const d = maxDiff(out.data, ref64);
      t.ok(d <= tol, `${what}: max abs diff ${d} from torchvision float64 (tolerance ${tol})`);
    }
    // 'auto' is channels_last on the CPU when the first stage's maps are ≥ 32 px.
    const autoNhwc = (smallStem ? h : h / 4) >= 32;
    t.same(Buffer.from(auto.data.buffer), Buffer.from((autoNhwc ? nhwc : nchw).data.buffer), `'auto' is ${autoNhwc ? 'channels_last' : 'NCHW'} at ${h} px${smallStem ? ' (small stem)' : ''}`);
    if (smallStem) {
      // The same weights at 32 px (embed resizes): stage 1 at 32 px, so 'auto' is channels_last.
      const at32 = async (memoryFormat: string) => (await awaitNative(enc.embed(x, c.input_shape, { mean: new Array(channels).fill(0), std: new Array(channels).fill(1), outSize: [32, 32], batchSize: 4, memoryFormat })) as { data: Float32Array }).data;
      const [a32, c32, n32] = [await at32('auto'), await at32('channels_last'), await at32('contiguous')];
      t.same(Buffer.from(a32.buffer), Buffer.from(c32.buffer), "'auto' is channels_last at 32 px with the small stem");
      t.ok(maxDiff(c32, n32) <= tol, 'and agrees with NCHW there');
    }
    // Where torch's two layouts round differently, ours must too: the layout reached oneDNN.
    if (maxDiff(f32(path.join(dir, c.ref)), f32(path.join(dir, c.ref_channels_last))) > 0) {
      t.ok(maxDiff(nchw.data, nhwc.data) > 0, 'channels_last took the NHWC kernels');
    }
    await t.rejects(embed('nhwc'), { code: 'ERR_CONFIG', message: /memoryFormat/ });
    enc.dispose();
  });
}

t.test('ImageEncoder#loadWeights names missing, mismatched and unexpected tensors', async (t) => {
  const enc = callNative(() => new (_native().ImageEncoder)({ arch: 'resnet50', inChannels: 3, smallStem: false, seed: 0, device: 'cpu' }));
  await t.rejects(awaitNative(enc.loadWeights(path.join(dir, manifest.r18.weights))), { code: 'ERR_DATA', message: /missing .*layer1\.0\.conv3\.weight/ });
  const small = callNative(() => new (_native().ImageEncoder)({ arch: 'resnet18', inChannels: 3, smallStem: true, seed: 0, device: 'cpu' }));
  await t.rejects(awaitNative(small.loadWeights(path.join(dir, manifest.r18.weights))), { code: 'ERR_DATA', message: /shape mismatch conv1\.weight/ });
  await t.rejects(awaitNative(small.loadWeights(path.join(dir, 'nope.safetensors'))), DataError);
});

t.test('a run\'s image_encoder.safetensors loads into torchvision (strict=False, only fc missing) with the same features', async (t) => {
  const n = 16;
  const images = new Uint8Array(n * 3 * 32 * 32).map((_, i) => (i * 37 + (i >> 9) * 11) % 256);
  const tabular = new Float32Array(n * 4).map((_, i) => Math.sin(i));
  const out = path.join(dir, 'run-a');
  await pretrain({ out, images: { data: images, shape: [n, 3, 32, 32] }, tabular: { data: tabular, shape: [n, 4] }, epochs: 2, batchSize: 8, model: { arch: 'resnet18', smallStem: false, tabularHidden: 32, projectionHidden: 32, projectionDim: 16 } });
  const run = await loadRun(out);
  const ours = await run.embed({ data: images, shape: [n, 3, 32, 32] });
  // torchvision sees the same normalised floats.
  const { mean, std } = run.config.normalize;
  const per = 32 * 32;
  const x = new Float32Array(images.length);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / per) % 3;
    x[i] = (images[i] / 255 - mean[ch]) / std[ch];
  }
  fs.writeFileSync(path.join(dir, 'a_x.f32'), Buffer.from(x.buffer));
  const log = execFileSync(PY, [ORACLE, 'features', path.join(out, 'image_encoder.safetensors'), path.join(dir, 'a_x.f32'), `${n},3,32,32`, path.join(dir, 'a_ref.f32')], { encoding: 'utf8' });
  t.match(log, /^OK \['fc\.bias', 'fc\.weight'\]/, 'only fc is missing');
  const ref = f32(path.join(dir, 'a_ref.f32'));
  t.equal(ref.length, n * 512);
  const d = maxDiff(ours, ref);
  t.ok(d <= 1e-5, `max abs diff ${d}`);
  t.ok(maxDiff(ours, new Float32Array(ours.length)) > 1e-3, 'features are not all zero');
  run.dispose();
});
