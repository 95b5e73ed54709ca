// The fused batch norm + (residual add +) ReLU of the ResNet's training
// forward (native/models/fused_bn_relu.h).
// - Against float64: the native probe _bnReluProbe runs the fused node,
//   LibTorch's batch_norm + add + relu in float32, and the same ops in float64
//   on the same inputs. The float64 run is the oracle; LibTorch's float32 NCHW
//   error (its CPU batch norm sums in float64 there) sets the bound.
// - Against LibTorch's ops in training: one step with the fused node on and
//   one with it off (_fusedBnRelu), compared weight by weight.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { _native, pretrain } from '../lib/index';
import { awaitNative, callNative } from '../lib/errors';
import { readSafetensors } from '../lib/io/safetensors';
import { oneStepOptions } from './helpers/toy';
import { checkSwitch } from './helpers/switch';

const NAMES = ['y', 'dx', 'dresidual', 'dweight', 'dbias', 'runningMean', 'runningVar'] as const;
interface Gap { fused: number; torch: number; scale: number }
type Probe = Record<(typeof NAMES)[number], Gap> & { layoutKept: boolean };
const probe = async (o: object) => await awaitNative(callNative(() => _native()._bnReluProbe(o))) as Promise<Probe>;

const cases = [
  // rows split across threads, C not a multiple of the vector width
  { shape: [8, 20, 7, 5], residual: true, factor: 0.1, offset: 0 },
  { shape: [8, 20, 7, 5], residual: false, factor: 0.1, offset: 0 },
  // a large mean: the shifted sums keep the variance
  { shape: [4, 64, 16, 16], residual: false, factor: 0.1, offset: 100 },
  // 1×1 maps (both layouts are the same memory), the cumulative-average factor
  { shape: [32, 96, 1, 1], residual: true, factor: 0.25, offset: 1 },
  // ResNet-18 stage-1 size at 128 px, batch 8
  { shape: [8, 64, 32, 32], residual: true, factor: 0.1, offset: 0 },
];

for (const c of cases) {
  t.test(`fused batch norm + ReLU ${c.residual ? '+ residual ' : ''}${JSON.stringify(c.shape)} offset ${c.offset}: within float32 rounding of float64`, async (t) => {
    const nchw = await probe({ ...c, channelsLast: false, seed: 3 });
    const nhwc = await probe({ ...c, channelsLast: true, seed: 3 });
    for (const [layout, r] of [['NCHW', nchw], ['channels_last', nhwc]] as const) {
      t.ok(r.layoutKept, `${layout}: y and dx keep x's layout`);
      for (const name of NAMES) {
        // Bound: twice LibTorch's float32 NCHW error on the same inputs, or
        // 1e-6 of the largest value where that error is 0. A wrong term
        // (the biased variance in the running statistics, a gradient term
        // left out, a mask off by one element) is of the order of `scale`.
        const bound = Math.max(2 * nchw[name].torch, 1e-6 * nchw[name].scale);
        t.ok(r[name].fused <= bound, `${layout} ${name}: |fused − float64| ${r[name].fused.toExponential(2)} ≤ ${bound.toExponential(2)} (LibTorch float32 ${r[name].torch.toExponential(2)}, scale ${r[name].scale.toExponential(2)})`);
      }
    }
    t.ok(nchw.dx.scale > 0.1 && nchw.dweight.scale > 0.1, 'the gradients are not trivially zero');
    if (c.residual) t.ok(nchw.dresidual.scale > 0.1, 'the residual gets a gradient');
  });
}

t.test('TABSIGHT_FUSED_BN_RELU=0 turns the fused path off; _fusedBnRelu switches it', async (t) => checkSwitch(t, '_fusedBnRelu', 'TABSIGHT_FUSED_BN_RELU'));

t.test('a training step with the fused node matches one with LibTorch batch norm, add and ReLU', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bnrelu-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const { toy, lr, base } = oneStepOptions();
  const losses: Record<string, number> = {};
  const before = _native()._fusedBnRelu();
  // Both runs take LibTorch's direct convolutions. Winograd's rounding (2–4×
  // the direct sum's, test/winograd-conv.test.ts) starts afresh from inputs
  // that differ by one rounding, and would flip about as many steps as
  // Winograd against direct does (1.7e-4 of them), hiding what this compares.
  const winograd = _native()._winograd(false);
  try {
    for (const mode of ['fused', 'libtorch'] as const) {
      _native()._fusedBnRelu(mode === 'fused');
      await pretrain({ ...base, out: path.join(root, mode) }, { onProgress: (p) => { losses[mode] = p.loss; } });
    }
  } finally {
    _native()._fusedBnRelu(before);
    _native()._winograd(winograd);
  }
  t.ok(Math.abs(losses.fused - losses.libtorch) <= 1e-5 * Math.abs(losses.libtorch), `loss ${losses.fused} vs ${losses.libtorch}`);
  const a = await readSafetensors(path.join(root, 'libtorch', 'image_encoder.safetensors'));
  const b = await readSafetensors(path.join(root, 'fused', 'image_encoder.safetensors'));
  // Adam's first step moves each weight by ±lr, the sign of its gradient, so
  // this compares the signs of the convolution gradients: rounding flips only
  // those within rounding of 0; a wrong batch-norm or ReLU gradient flips
  // about half. Running statistics, as max |Δ| / max |value| per tensor:
  // rounding carried through the layers (1.2e-6 at most when this was
  // written); the biased variance instead of the unbiased would differ by
  // 0.1·var/(n − 1), about 1e-3 in layer4 (n = 64 values per channel).
  let n = 0, moved = 0, stats = 0, worstStat = 0;
  for (const [name, x] of a.tensors) {
    const y = b.tensors.get(name)!;
    const xd = x.data as Float32Array, yd = y.data as Float32Array;
    if (/running_(mean|var)$/.test(name)) {
      let d = 0, m = 0;
      for (let i = 0; i < xd.length; i++) { d = Math.max(d, Math.abs(xd[i] - yd[i])); m = Math.max(m, Math.abs(xd[i])); }
      worstStat = Math.max(worstStat, d / m);
      stats++;
    } else if (/num_batches_tracked$/.test(name)) {
      t.same(Array.from(y.data as ArrayLike<number | bigint>, Number), Array.from(x.data as ArrayLike<number | bigint>, Number), `${name}`);
    } else if (x.dtype === 'F32' && x.shape.length === 4) {
      for (let i = 0; i < xd.length; i++) { n++; if (Math.abs(xd[i] - yd[i]) > lr / 2) moved++; }
    }
  }
  t.ok(stats >= 40, `${stats} running statistics compared`);
  t.ok(worstStat <= 1e-5, `running statistics: max |Δ| / max |value| ${worstStat.toExponential(2)}`);
  t.ok(n > 1e6, `${n} convolution weights compared`);
  // Rounding flipped under 1e-4 of them on an AVX-512 CPU and 1.66e-4 on an AVX2 EPYC; a wrong gradient flips about half.
  t.ok(moved <= 1e-3 * n, `${moved} of ${n} weights took the other sign's step`);
});
