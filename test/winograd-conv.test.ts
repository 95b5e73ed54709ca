// Training's 3×3 stride-1 convolutions as Winograd F(4×4, 3×3)
// (native/models/winograd_conv.h): oneDNN's kernels on AVX-512, tabsight's
// own (native/models/winograd_f43.h) on AVX2 + FMA.
// - Against float64: the native probe _winogradProbe runs the Winograd node,
//   LibTorch's float32 conv2d and the same conv2d in float64 on the same
//   inputs, forward and backward. The float64 run is the oracle.
// - Against LibTorch in training: one step with Winograd on and one with it
//   off (_winograd), compared weight by weight.
// - Evaluation (embeddings) never takes the Winograd path.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { _native, pretrain, loadRun } from '../lib/index';
import { awaitNative, callNative } from '../lib/errors';
import { readSafetensors } from '../lib/io/safetensors';
import { oneStepOptions } from './helpers/toy';
import { checkSwitch } from './helpers/switch';
import { spawnSync } from 'node:child_process';
import { cpuFlags } from '../lib/cpu';

const info = _native().runtimeInfo().winograd;
// setup.sh installs libdnnl-dev; where its headers are, the build must have found them.
const expected = fs.existsSync('/usr/include/oneapi/dnnl/dnnl.hpp');

t.test('runtimeInfo().winograd says whether this build has the Winograd path', async (t) => {
  t.equal(typeof info.reason, 'string');
  // The build must have found the headers; oneDNN itself offers Winograd only on some CPUs (AVX-512), and then says so.
  if (expected) t.ok(info.available || /no Winograd convolution for this CPU/.test(info.reason), `available with oneDNN's headers installed, or oneDNN declines this CPU (${info.reason || 'available'})`);
  if (!info.available) t.match(info.reason, /oneDNN/, `reason: ${info.reason}`);
  else t.equal(info.reason, '');
  t.equal(info.kernel === '', !info.available, `kernel '${info.kernel}' is empty exactly when none is available`);
  const flags = cpuFlags();
  if (flags !== null && flags.has('avx2') && flags.has('fma')) {
    t.ok(info.available, "x86 with AVX2 and FMA: tabsight's own kernels at least");
    // oneDNN 2.x's Winograd kernels are AVX-512 only.
    if (!flags.has('avx512f')) t.equal(info.kernel, 'tabsight', 'without AVX-512 the kernels are tabsight\'s own');
  }
});

t.test('TABSIGHT_WINOGRAD_KERNEL asks for one kernel; one that is not there leaves none, and says why', async (t) => {
  const code = "console.log(JSON.stringify(require('.')._native().runtimeInfo().winograd))";
  const run = (value: string) => {
    const r = spawnSync(process.execPath, ['-e', code], { cwd: path.join(__dirname, '..'), env: { ...process.env, TABSIGHT_WINOGRAD_KERNEL: value }, encoding: 'utf8' });
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as typeof info;
  };
  const flags = cpuFlags();
  const own = flags !== null && flags.has('avx2') && flags.has('fma');
  const ours = run('tabsight');
  if (own) t.same([ours.available, ours.kernel, ours.reason], [true, 'tabsight', ''], 'tabsight: its own kernels');
  else t.same([ours.available, ours.kernel], [false, ''], `tabsight on a CPU without AVX2 and FMA: none (${ours.reason})`);
  const theirs = run('onednn');
  if (theirs.available) t.equal(theirs.kernel, 'onednn', 'onednn: oneDNN\'s kernels where it has them');
  else t.match(theirs.reason, /TABSIGHT_WINOGRAD_KERNEL=onednn/, `onednn where oneDNN has none: none, and the reason names the variable (${theirs.reason})`);
  if (info.kernel === 'tabsight') t.equal(theirs.available, false, 'this process chose tabsight\'s kernels, so oneDNN has none here');
  const auto = run('');
  t.same([auto.available, auto.kernel], [info.available, info.kernel], 'unset: the same choice as this process');
});

type Gap = { winograd: number; torch: number; scale: number };
type Probe = { y: Gap; dx: Gap; dweight: Gap; layoutKept: boolean };
const probe = async (o: object) => await awaitNative(callNative(() => _native()._winogradProbe(o))) as Promise<Probe>;

const cases = [
  // ResNet-18's stage shapes at 128 px (batch 8), and the last stage's 4×4 maps
  { shape: [8, 64, 32, 32], outChannels: 64 },
  { shape: [8, 128, 16, 16], outChannels: 128 },
  { shape: [16, 512, 4, 4], outChannels: 512 },
  // maps that are not multiples of Winograd's 4×4 tiles, more outputs than inputs
  { shape: [4, 16, 7, 5], outChannels: 48 },
  // 1×1 maps: only the kernel's centre sees data
  { shape: [2, 32, 1, 1], outChannels: 32 },
  // the toy model's layer4 below (batch 16, 2×2 maps)
  { shape: [16, 512, 2, 2], outChannels: 512 },
];

for (const c of cases) {
  t.test(`Winograd 3×3 conv ${JSON.stringify(c.shape)} → ${c.outChannels}: forward and backward within Winograd's rounding of float64`, { skip: info.available ? false : info.reason }, async (t) => {
    for (const channelsLast of [false, true]) {
      const r = await probe({ ...c, channelsLast, seed: 7 });
      const layout = channelsLast ? 'channels_last' : 'NCHW';
      t.ok(r.layoutKept, `${layout}: y and dx keep x's layout`);
      for (const name of ['y', 'dx', 'dweight'] as const) {
        // Winograd's transforms round more than the direct sum: measured
        // about 2e-6 of the scale here (LibTorch float32 2e-7 to 2e-6). The
        // bound, 2e-5 of the largest value, is ten times that; a wrong tap,
        // a shifted tile or a missing padding term is of the order of scale.
        const bound = 2e-5 * r[name].scale;
        t.ok(r[name].winograd <= bound, `${layout} ${name}: |Winograd − float64| ${r[name].winograd.toExponential(2)} ≤ ${bound.toExponential(2)} (LibTorch float32 ${r[name].torch.toExponential(2)})`);
      }
      t.ok(r.y.scale > 0.5 && r.dx.scale > 0.5 && r.dweight.scale > 0.5, `${layout}: outputs and gradients are not trivially zero`);
    }
  });
}

t.test('the Winograd probe rejects shapes it does not take, with ERR_SHAPE', { skip: info.available ? false : info.reason }, async (t) => {
  await t.rejects(probe({ shape: [2, 3, 8, 8], outChannels: 16, channelsLast: false, seed: 1 }), { code: 'ERR_SHAPE', message: /multiples of 16/ });
});

t.test('TABSIGHT_WINOGRAD=0 turns the Winograd path off; _winograd switches it', async (t) => checkSwitch(t, '_winograd', 'TABSIGHT_WINOGRAD'));

t.test('a training step with Winograd matches one with LibTorch convolutions; embeddings never use it', { skip: info.available ? false : info.reason }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-winograd-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const { toy, lr, base } = oneStepOptions();
  const losses: Record<string, number> = {};
  const calls: Record<string, number> = {};
  const before = _native()._winograd();
  try {
    // 'init': an lr so small that float32 weights do not move, so its saved
    // weights are the initial ones (same seed).
    for (const mode of ['winograd', 'libtorch', 'init'] as const) {
      _native()._winograd(mode === 'winograd');
      const c0 = _native().runtimeInfo().winograd.calls;
      await pretrain({ ...base, lr: mode === 'init' ? 1e-30 : lr, out: path.join(root, mode) }, { onProgress: (p) => { losses[mode] = p.loss; } });
      calls[mode] = _native().runtimeInfo().winograd.calls - c0;
    }
  } finally {
    _native()._winograd(before);
  }
  // tinyModel's ResNet-18 (small stem, 16 px): 13 of its 3×3 convolutions
  // have stride 1 (4 in layer1, 3 in each later stage). The small stem's has
  // 1 input channel, and layer4's 3 run on 2×2 maps, below Winograd's 4×4
  // output tile: those stay with LibTorch.
  t.equal(calls.winograd, 10, 'one step ran its 10 stride-1 3×3 convolutions on maps of 4×4 and more by Winograd');
  t.equal(calls.libtorch, 0, 'none with Winograd switched off');
  t.ok(Math.abs(losses.winograd - losses.libtorch) <= 1e-5 * Math.abs(losses.libtorch), `loss ${losses.winograd} vs ${losses.libtorch}`);
  const ref = await readSafetensors(path.join(root, 'libtorch', 'image_encoder.safetensors'));
  const wino = await readSafetensors(path.join(root, 'winograd', 'image_encoder.safetensors'));
  const init = await readSafetensors(path.join(root, 'init', 'image_encoder.safetensors'));
  // Adam's first step moves a weight by lr·g/(|g| + 1e-8): ±lr, the sign of
  // its gradient, unless |g| is within a few 1e-8 of 0. Where LibTorch's
  // step is saturated (|Δw| ≥ 0.9 lr), the Winograd run takes the same step
  // unless rounding flips the gradient's sign. The probes above bound that
  // rounding per layer (2e-6 to 5e-6 of the largest gradient, 2 to 4 times
  // the direct algorithm's); carried back through 16 layers, it flipped 1.7e-4
  // of the saturated steps when this was written (LibTorch NCHW against
  // LibTorch channels_last: 3e-6). A wrong weight gradient flips about half
  // of a layer's steps and a wrong input gradient most of the layers below
  // it, so the bound is 1e-3. Unsaturated weights (|g| near Adam's eps)
  // amplify any rounding and are only counted.
  let saturated = 0, flipped = 0, loose = 0, looseMoved = 0;
  for (const [name, x] of ref.tensors) {
    if (x.dtype !== 'F32' || x.shape.length !== 4) continue;
    const xd = x.data as Float32Array, yd = wino.tensors.get(name)!.data as Float32Array, w0 = init.tensors.get(name)!.data as Float32Array;
    for (let i = 0; i < xd.length; i++) {
      const differs = Math.abs(xd[i] - yd[i]) > lr / 2;
      if (Math.abs(xd[i] - w0[i]) >= 0.9 * lr) { saturated++; if (differs) flipped++; } else { loose++; if (differs) looseMoved++; }
    }
  }
  t.ok(saturated > 0.9 * (saturated + loose), `${saturated} of ${saturated + loose} convolution weights took a saturated step`);
  t.ok(flipped <= 1e-3 * saturated, `${flipped} of ${saturated} saturated steps went the other way`);
  t.comment(`unsaturated steps (|g| near Adam's eps): ${looseMoved} of ${loose} differ by more than lr/2`);

  // Evaluation keeps LibTorch's convolution: the embedding pass adds no Winograd call.
  const run = await loadRun(path.join(root, 'winograd'));
  const c0 = _native().runtimeInfo().winograd.calls;
  const emb = await run.embed({ data: toy.images.subarray(0, 4 * 16 * 16), shape: [4, 1, 16, 16] });
  run.dispose();
  t.equal(_native().runtimeInfo().winograd.calls - c0, 0, 'Run.embed ran no Winograd convolution');
  t.equal(emb.length, 4 * 512, 'four 512-d embeddings');
});
