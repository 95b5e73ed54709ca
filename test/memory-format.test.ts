// memoryFormat: the image encoder's convolution weights and batches in
// channels_last (NHWC) memory. The oracle is the same run in NCHW: the step
// is the same arithmetic in another layout, so only oneDNN's rounding may
// differ. Checkpoints must stay NCHW (test/resnet-parity.test.ts loads a
// default, channels_last, run's encoder into torchvision).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain, loadRun, randomRun, ConfigError, embeddingMemoryFormat, trainingMemoryFormat, _native } from '../lib/index';
import { readSafetensors } from '../lib/io/safetensors';
import { toyCohort, tinyModel } from './helpers/toy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-memfmt-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
// One batch: one step, so each layout's update can be compared weight by weight.
const toy = toyCohort(16);
const base = {
  images: { data: toy.images, shape: toy.shape },
  tabular: { data: toy.tabular, shape: [16, toy.features] },
  batchSize: 16,
  lr: 1e-3,
  warmupEpochs: 0,
  epochs: 1,
  model: tinyModel,
  augment: { rate: 1, rotationDeg: 20 },
  seed: 5,
};

async function run(memoryFormat: 'channels_last' | 'contiguous' | undefined, out: string): Promise<number[]> {
  const losses: number[] = [];
  await pretrain({ ...base, out, ...(memoryFormat ? { memoryFormat } : {}) }, { onProgress: (p) => losses.push(p.loss) });
  return losses;
}

const maxRel = (a: Float32Array, b: Float32Array) => {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return m / Math.max(s, 1e-30);
};

t.test("'auto' layout rule: channels_last on x86 with AVX-512 or tabsight's Winograd kernels, NCHW on x86 without both and on CUDA", async (t) => {
  t.equal(trainingMemoryFormat('cpu', new Set(['fma', 'avx2', 'avx512f', 'avx512bw'])), 'channels_last');
  t.equal(trainingMemoryFormat('cpu', new Set(['fma', 'avx', 'f16c', 'avx2']), 'fp32', false), 'contiguous', 'the AVX2 EPYC with direct convolutions');
  t.equal(trainingMemoryFormat('cpu', new Set(['fma', 'avx', 'f16c', 'avx2']), 'fp32', true), 'channels_last', "the AVX2 EPYC with tabsight's Winograd kernels");
  t.equal(trainingMemoryFormat('cpu', new Set(['avx2', 'avx_vnni']), 'fp32', false), 'contiguous', 'AVX-VNNI is not AVX-512');
  t.equal(trainingMemoryFormat('cpu', new Set(['avx512f']), 'fp32', false), 'channels_last', 'AVX-512 with Winograd off');
  const w = _native().runtimeInfo().winograd;
  t.equal(trainingMemoryFormat('cpu', new Set(['fma', 'avx2'])), w.available && w.enabled ? 'channels_last' : 'contiguous', 'the default reads this process\'s Winograd state');
  t.equal(trainingMemoryFormat('cpu', null), 'channels_last', 'no x86 flags: unmeasured, the earlier default');
  t.equal(trainingMemoryFormat('cuda', new Set(['avx512f'])), 'contiguous');
  t.equal(trainingMemoryFormat('cuda:1', null), 'contiguous');
  // bf16 keeps channels_last on the CPU: NCHW's bf16 convolutions were far less accurate (lib/cpu.ts).
  t.equal(trainingMemoryFormat('cpu', new Set(['fma', 'avx2']), 'bf16'), 'channels_last');
  t.equal(trainingMemoryFormat('cpu', new Set(['avx512f']), 'bf16'), 'channels_last');
  t.equal(trainingMemoryFormat('cuda', new Set(['fma', 'avx2']), 'bf16'), 'contiguous');
});

t.test("embedding's 'auto' layout rule: by map size with AVX-512 or no x86 flags, NCHW on x86 without AVX-512 and on CUDA", async (t) => {
  const avx512 = new Set(['fma', 'avx2', 'avx512f']);
  const avx2 = new Set(['fma', 'avx', 'f16c', 'avx2']);
  // The first residual stage's maps: imageSize / 4 with the standard stem, imageSize with the small one; channels_last from 32.
  t.equal(embeddingMemoryFormat('cpu', 128, false, avx512), 'channels_last');
  t.equal(embeddingMemoryFormat('cpu', 127, false, avx512), 'contiguous', '31-px maps');
  t.equal(embeddingMemoryFormat('cpu', 64, false, avx512), 'contiguous');
  t.equal(embeddingMemoryFormat('cpu', 32, true, avx512), 'channels_last');
  t.equal(embeddingMemoryFormat('cpu', 28, true, avx512), 'contiguous');
  t.equal(embeddingMemoryFormat('cpu', 128, false, null), 'channels_last', 'no x86 flags: the AVX-512 rule, as before');
  t.equal(embeddingMemoryFormat('cpu', 28, true, null), 'contiguous');
  for (const [size, small] of [[128, false], [256, false], [32, true], [64, true]] as const) {
    t.equal(embeddingMemoryFormat('cpu', size, small, avx2), 'contiguous', `the AVX2 EPYC, ${size} px${small ? ', small stem' : ''}`);
  }
  t.equal(embeddingMemoryFormat('cuda', 128, false, avx512), 'contiguous');
  t.equal(embeddingMemoryFormat('cuda:0', 32, true, null), 'contiguous');
});

t.test('channels_last takes the same step as NCHW to float32 rounding; config.json records the resolved layout', async (t) => {
  const nchw = await run('contiguous', path.join(root, 'nchw'));
  const nhwc = await run('channels_last', path.join(root, 'nhwc'));
  const auto = await run(undefined, path.join(root, 'auto'));
  t.equal(nhwc.length, 1);
  // The same initial weights and batch, so the loss differs only by the
  // convolutions' rounding (relative 1e-7 per value; 1e-5 bounds it through
  // the network).
  t.ok(Math.abs(nhwc[0] - nchw[0]) <= 1e-5 * Math.abs(nchw[0]), `loss ${nhwc[0]} vs ${nchw[0]}`);
  // 'auto' on the CPU: channels_last with AVX-512 or tabsight's own Winograd
  // kernels (AVX2 and FMA, unless the environment turns them off), NCHW
  // without both (lib/cpu.ts). The oracle reads /proc/cpuinfo and the
  // environment itself.
  const flags = process.platform === 'linux' && process.arch === 'x64' ? /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] : undefined;
  const has = (f: string) => flags !== undefined && new RegExp(`(^|\\s)${f}(\\s|$)`).test(flags);
  const ownWinograd = has('avx2') && has('fma') && process.env.TABSIGHT_WINOGRAD !== '0' && process.env.TABSIGHT_WINOGRAD_KERNEL !== 'onednn';
  const expected = flags !== undefined && !has('avx512f') && !ownWinograd ? 'contiguous' : 'channels_last';
  t.equal(trainingMemoryFormat('cpu'), expected, `this CPU ${flags === undefined ? 'has no x86 flags' : has('avx512f') ? 'has AVX-512' : ownWinograd ? "runs tabsight's Winograd kernels" : 'has neither AVX-512 nor Winograd'}`);
  t.same(auto, expected === 'channels_last' ? nhwc : nchw, `'auto' trains exactly as ${expected} on this CPU`);
  const cfg = (d: string) => JSON.parse(fs.readFileSync(path.join(root, d, 'config.json'), 'utf8'));
  t.equal(cfg('nchw').memoryFormat, 'contiguous');
  t.equal(cfg('nhwc').memoryFormat, 'channels_last');
  t.equal(cfg('auto').memoryFormat, expected, "config.json records what 'auto' resolved to");

  // Adam's first step moves every weight by lr · sign(gradient) (bias
  // correction makes m/√v = ±1), so comparing the saved encoders compares
  // the signs of about 11M convolution gradients. Rounding can flip only
  // gradients within rounding of 0 (31 of 11M when this test was written);
  // a wrong gradient, or an encoder saved in NHWC order, would flip or move
  // about half of them. Each weight may differ by at most 2·lr.
  const a = await readSafetensors(path.join(root, 'nchw', 'image_encoder.safetensors'));
  const b = await readSafetensors(path.join(root, 'nhwc', 'image_encoder.safetensors'));
  let n = 0, moved = 0, worst = 0;
  for (const [name, x] of a.tensors) {
    const y = b.tensors.get(name)!;
    t.same(y.shape, x.shape, `${name} shape`);
    if (x.dtype !== 'F32' || x.shape.length !== 4) continue;
    const xd = x.data as Float32Array, yd = y.data as Float32Array;
    for (let i = 0; i < xd.length; i++) {
      const d = Math.abs(xd[i] - yd[i]);
      n++;
      if (d > base.lr / 2) moved++;
      worst = Math.max(worst, d);
    }
  }
  t.ok(n > 1e6, `${n} convolution weights compared`);
  t.ok(moved <= 1e-4 * n, `${moved} of ${n} weights took the other sign's step`);
  t.ok(worst <= 2.01 * base.lr, `largest difference ${worst.toExponential(3)} (lr ${base.lr})`);

  // A channels_last run's encoder embeds the same whichever layout embed uses, to rounding.
  const r = await loadRun(path.join(root, 'nhwc'));
  const imgs = { data: toy.images.subarray(0, 8 * toy.shape[1] * toy.shape[2] * toy.shape[3]), shape: [8, ...toy.shape.slice(1)] };
  const e1 = await r.embed(imgs, { memoryFormat: 'contiguous' });
  const e2 = await r.embed(imgs, { memoryFormat: 'channels_last' });
  t.ok(maxRel(e2, e1) <= 1e-5, `embed NHWC vs NCHW: ${maxRel(e2, e1).toExponential(2)}`);
  r.dispose();
});

t.test("Run.embed's 'auto' embeds exactly as the layout embeddingMemoryFormat names on this CPU", async (t) => {
  // 32 px with the small stem: 32-px maps, where the AVX-512 rule and the
  // AVX2 rule disagree, so a rule that ignored the flags would be seen here.
  // A config from the run the test above wrote.
  const done = await loadRun(path.join(root, 'nhwc'));
  const config = done.config;
  done.dispose();
  // Three channels: with one, an NHWC batch is also an NCHW one and LibTorch takes the same path.
  const enc = randomRun({ ...config, imageSize: 32, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, model: { ...config.model, inChannels: 3, smallStem: true } }, 3);
  t.teardown(() => enc.dispose());
  const imgs = { data: new Uint8Array(8 * 3 * 32 * 32).map((_, i) => (Math.imul(i, 2654435761) >>> 24) & 255), shape: [8, 3, 32, 32] };
  const flags = process.platform === 'linux' && process.arch === 'x64' ? /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] : undefined;
  // The oracle reads /proc/cpuinfo itself.
  const expected = flags !== undefined && !/(^|\s)avx512f(\s|$)/.test(flags) ? 'contiguous' : 'channels_last';
  t.equal(embeddingMemoryFormat('cpu', 32, true), expected);
  const auto = await enc.embed(imgs);
  const nchw = await enc.embed(imgs, { memoryFormat: 'contiguous' });
  const nhwc = await enc.embed(imgs, { memoryFormat: 'channels_last' });
  t.ok(maxRel(nhwc, nchw) <= 1e-5, `the two layouts agree to rounding: ${maxRel(nhwc, nchw).toExponential(2)}`);
  t.same(auto, expected === 'channels_last' ? nhwc : nchw, `'auto' embeds bit for bit as ${expected}`);
  const differ = nchw.some((v, i) => v !== nhwc[i]);
  t.comment(differ ? 'the layouts round differently here, so the check above tells them apart' : 'the layouts gave the same bits here: the check above cannot tell them apart on this CPU');
});

t.test('an unknown memoryFormat is a ConfigError naming the field and the value', async (t) => {
  const err = await pretrain({ ...base, out: path.join(root, 'bad'), memoryFormat: 'nhwc' as never }).catch((e) => e);
  t.type(err, ConfigError);
  t.match(err.message, /memoryFormat/);
  t.match(err.message, /nhwc/);
  const r = await loadRun(path.join(root, 'nhwc'));
  await t.rejects(r.embed({ data: new Uint8Array(toy.shape[1] * toy.shape[2] * toy.shape[3]), shape: [1, ...toy.shape.slice(1)] }, { memoryFormat: 'NHWC' as never }), { code: 'ERR_CONFIG', message: /memoryFormat/ });
  r.dispose();
});
