// The trainer's one-pass Adam / AdamW step (the CPU) and its multi-tensor
// step (CUDA), both in native/train/fused_adam.h, against LibTorch's own
// torch::optim::Adam and AdamW: the same parameters and gradients, several
// steps, compared in the native probe _adamProbe.
import t from 'tap';
import { _native } from '../lib/index';
import { awaitNative, callNative } from '../lib/errors';

interface Probe { maxParamDiff: number; maxMomentDiff: number; maxUpdate: number; steps: number[] }
const probe = async (o: object) => await awaitNative(callNative(() => _native()._adamProbe(o))) as Promise<Probe>;

for (const optimizer of ['adam', 'adamw'] as const) {
  for (const weightDecay of [0, 0.1]) {
    t.test(`${optimizer}, weight decay ${weightDecay}: 6 fused steps equal LibTorch's to float32 rounding`, async (t) => {
      const r = await probe({ optimizer, steps: 6, lr: 3e-3, weightDecay, seed: 11 });
      // The parameters: a channels_last weight, a matrix split across
      // threads, a bias, and an NCHW weight whose gradient arrives
      // channels_last (copied to the parameter's layout first).
      // Oracle: LibTorch's optimizer. Its vectorised kernels fuse some
      // multiply-adds that this loop rounds twice, so elements may differ
      // by a few float32 ulps (1.2e-7 relative each), compounded over 6
      // steps; 1e-6 of the largest magnitude bounds that, while one wrong
      // term (a missing bias correction, a decay applied twice) changes
      // values by about lr (3e-3 of weights of size ~3).
      t.ok(r.maxParamDiff <= 1e-6, `parameters: max |Δ| / max |p| = ${r.maxParamDiff.toExponential(2)}`);
      t.ok(r.maxMomentDiff <= 1e-6, `moments: max |Δ| / max |m| = ${r.maxMomentDiff.toExponential(2)}`);
      t.ok(r.maxUpdate > 1e-3, `the steps moved the parameters (max relative change ${r.maxUpdate.toExponential(2)})`);
      // The bias had no gradient in step 2: skipped, as LibTorch skips it.
      t.same(r.steps, [6, 6, 5, 6], 'step counts: the bias skipped the step without a gradient');
    });

    t.test(`${optimizer}, weight decay ${weightDecay}: 6 multi-tensor steps equal LibTorch's exactly on the CPU`, async (t) => {
      const r = await probe({ optimizer, steps: 6, lr: 3e-3, weightDecay, seed: 11, impl: 'multiTensor' });
      // Oracle: LibTorch's optimizer. On the CPU ATen's _foreach_* ops run
      // the ordinary kernel on each tensor, so the same operations in the
      // same order give the same bits. The bias, one step behind after
      // going without a gradient, is updated with its own bias corrections.
      t.equal(r.maxParamDiff, 0, 'parameters equal');
      t.equal(r.maxMomentDiff, 0, 'moments equal');
      t.ok(r.maxUpdate > 1e-3, `the steps moved the parameters (max relative change ${r.maxUpdate.toExponential(2)})`);
      t.same(r.steps, [6, 6, 5, 6], 'step counts: the bias skipped the step without a gradient');
    });
  }
}

t.test('the probe rejects an unknown implementation by name', async (t) => {
  await t.rejects(probe({ optimizer: 'adam', steps: 1, lr: 1e-3, weightDecay: 0, seed: 1, impl: 'sgd' }), { code: 'ERR_CONFIG', message: /fused or multiTensor/ });
});

t.test('the probe rejects an unknown optimizer by name', async (t) => {
  await t.rejects(probe({ optimizer: 'sgd', steps: 1, lr: 1e-3, weightDecay: 0, seed: 1 }), { code: 'ERR_CONFIG', message: /adam or adamw/ });
});
