import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain, ConfigError } from '../lib/index';
import { readSafetensors } from '../lib/io/safetensors';
import { toyCohort, tinyModel } from './helpers/toy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-precision-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const toy = toyCohort(32);
const base = {
  images: { data: toy.images, shape: toy.shape },
  tabular: { data: toy.tabular, shape: [32, toy.features] },
  batchSize: 16,
  lr: 1e-3,
  warmupEpochs: 0,
  epochs: 1,
  model: tinyModel,
  augment: { rate: 0 },
  seed: 3,
};

async function stepLosses(precision: 'fp32' | 'bf16', out: string): Promise<number[]> {
  const losses: number[] = [];
  await pretrain({ ...base, precision, out }, { onProgress: (p) => losses.push(p.loss) });
  return losses;
}

t.test('precision bf16 autocasts the step: the first loss is the fp32 loss to bf16 accuracy, and weights stay fp32', async (t) => {
  const fp32 = await stepLosses('fp32', path.join(root, 'fp32'));
  const bf16 = await stepLosses('bf16', path.join(root, 'bf16'));
  t.equal(bf16.length, fp32.length);
  // Step 1 sees the same initial weights and batch. Oracle: the fp32 loss.
  // bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per
  // value), with fp32 accumulation inside convolutions and matmuls; 2% of
  // the loss bounds that through a small network. A difference of exactly 0
  // would mean autocast never took effect.
  const d = Math.abs(bf16[0] - fp32[0]);
  t.ok(d <= 0.02 * Math.abs(fp32[0]), `|bf16 − fp32| = ${d.toExponential(2)} at loss ${fp32[0].toFixed(5)}`);
  t.ok(d > 1e-7, `bf16 changed the arithmetic (|Δ| = ${d.toExponential(2)})`);
  const enc = await readSafetensors(path.join(root, 'bf16', 'image_encoder.safetensors'));
  const dtypes = new Set([...enc.tensors.values()].map((x) => x.dtype).filter((d) => d !== 'I64'));
  t.same([...dtypes], ['F32'], 'the saved encoder\'s weights are float32');
  const cfg = JSON.parse(fs.readFileSync(path.join(root, 'bf16', 'config.json'), 'utf8'));
  t.equal(cfg.precision, 'bf16', 'config.json records the precision');
});

t.test('an unknown precision is a ConfigError naming the field', async (t) => {
  const err = await pretrain({ ...base, out: path.join(root, 'bad'), precision: 'fp16' as never }).catch((e) => e);
  t.type(err, ConfigError);
  t.match(err.message, /precision/);
  t.match(err.message, /fp16/);
});
