// The stem's max-pool (3×3, stride 2, padding 1) by tabsight's NCHW kernel
// (native/models/max_pool.h), which claims LibTorch's bits.
// - Against LibTorch: the native probe _maxPoolStemProbe runs the kernel and
//   torch::max_pool2d on the same input and upstream gradient and compares
//   the outputs and the input gradients byte for byte, on map sizes odd and
//   even, down to 1×1, and on inputs full of the cases where the choice of
//   maximum matters: ties (at 0 after a ReLU, and at integers), NaN (LibTorch
//   routes to the window's last NaN), −∞ (its first in-bound position), and
//   +0 against −0.
// - In the attribution paths: Integrated Gradients (folded ResNet), Guided
//   Backprop and GradCAM (the module) on the standard-stem ResNet-18 give the
//   same bits with the kernel switched on and off (_stemMaxPool).
import t from 'tap';
import * as path from 'node:path';
import { _native } from '../lib/index';
import { awaitNative, callNative } from '../lib/errors';
import type { Attribution } from '../lib/explain';
import { generateFixtures, maxAbs, same } from './helpers/attribution-fixtures';
import { checkSwitch } from './helpers/switch';

type Probe = { out: boolean; grad: boolean; kernel: boolean; outputs: number; routed: number };
const probe = async (o: object) => await awaitNative(callNative(() => _native()._maxPoolStemProbe(o))) as Probe;
const outSize = (n: number) => Math.floor((n - 1) / 2) + 1;

const shapes = [
  [4, 64, 32, 32], // ResNet-18's stem output at 64 px
  [2, 8, 64, 64], // at 128 px
  [2, 5, 33, 31], // odd: the last window is cut by the edge
  [3, 4, 2, 3],
  [2, 3, 1, 1], // one window of one value
  [1, 2, 5, 1],
];
const kinds = ['randn', 'relu', 'ties', 'nan', 'neginf', 'zeros'];

t.test('the kernel gives LibTorch\'s max_pool2d outputs and gradients, byte for byte', async (t) => {
  for (const shape of shapes) {
    for (const kind of kinds) {
      const r = await probe({ shape, kind, seed: 11 });
      const label = `${JSON.stringify(shape)} ${kind}`;
      t.ok(r.kernel, `${label}: the kernel ran`);
      t.equal(r.outputs, shape[0] * shape[1] * outSize(shape[2]) * outSize(shape[3]), `${label}: output size`);
      t.ok(r.out, `${label}: outputs identical`);
      t.ok(r.grad, `${label}: input gradients identical`);
      // So the gradients compared are not two tensors of zeros.
      t.ok(r.routed > 0, `${label}: ${r.routed} inputs receive a gradient`);
    }
  }
});

t.test('the probe rejects an unknown kind with ERR_CONFIG', async (t) => {
  await t.rejects(probe({ shape: [1, 1, 4, 4], kind: 'uniform', seed: 1 }), { code: 'ERR_CONFIG', message: /randn, relu, ties, nan, neginf, zeros for kind/ });
});

t.test('TABSIGHT_STEM_MAXPOOL=0 turns the kernel off; _stemMaxPool switches it', async (t) => {
  checkSwitch(t, '_stemMaxPool', 'TABSIGHT_STEM_MAXPOOL');
  const before = _native()._stemMaxPool(false);
  try {
    const r = await probe({ shape: [2, 3, 9, 9], kind: 'relu', seed: 2 });
    t.notOk(r.kernel, 'switched off, LibTorch\'s max_pool2d runs');
    t.ok(r.out && r.grad, 'and the comparison is trivially equal');
  } finally {
    _native()._stemMaxPool(before);
  }
});

t.test('attributions on the standard-stem ResNet-18 are the same bits with the kernel on and off', async (t) => {
  const { dir, manifest, f32, cleanup } = generateFixtures('tabsight-maxpool-');
  t.teardown(cleanup);
  const c = manifest.std;
  t.equal(c.small_stem, false, 'the fixture has the max-pool');
  const target = { kind: 'probe', weight: f32(c.probe_w), weightShape: [4, c.feature_dim], bias: f32(c.probe_b), biasShape: [4], index: c.classes };
  const model = { path: path.join(dir, c.weights), format: 'encoder', device: 'cpu', arch: c.arch, inChannels: 3, smallStem: c.small_stem };
  const x = f32(c.input);
  const methods: Record<string, Record<string, unknown>> = {
    integratedGradients: { name: 'integrated_gradients', igMethod: 'gausslegendre', steps: 16, internalBatchSize: 24, baseline: { kind: 'zeros' } },
    guidedBackprop: { name: 'guided_backprop', batchSize: 0 },
    gradcam: { name: 'gradcam', layer: 'layer1', relu: false, normalize: false, upsample: 'none', batchSize: 0 },
  };
  const before = _native()._stemMaxPool();
  try {
    for (const [name, method] of Object.entries(methods)) {
      const out: Record<string, Attribution> = {};
      for (const on of [true, false]) {
        _native()._stemMaxPool(on);
        out[on ? 'kernel' : 'libtorch'] = await awaitNative(_native().attributeImages(x, c.input_shape, { model, target, method })) as Attribution;
      }
      t.ok(maxAbs(out.libtorch.attributions) > 0, `${name}: attributions are not all zero`);
      t.ok(same(out.kernel.attributions, out.libtorch.attributions), `${name}: identical attributions`);
    }
  } finally {
    _native()._stemMaxPool(before);
  }
});
