// deterministic: true sets LibTorch's process-wide determinism switches
// (deterministic algorithms, deterministic cuDNN, no cuDNN autotuning) for
// the life of the trainer and puts the previous values back afterwards.
// Oracles: the switches as runtimeInfo() reads them from LibTorch during and
// after the run, and a run without the option, which on the CPU must give
// the same bits (the CPU path is deterministic either way, so the option
// must not change its arithmetic). What it does on CUDA needs a GPU and is
// checked by benchmarks/support/resume_check.js --deterministic there.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain, runtimeInfo, ConfigError, loadExperimentConfig } from '../lib/index';
import { readSafetensors } from '../lib/io/safetensors';
import { toyCohort, tinyModel } from './helpers/toy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-determ-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const toy = toyCohort(32);
const base = {
  images: { data: toy.images, shape: toy.shape },
  tabular: { data: toy.tabular, shape: [32, toy.features] },
  batchSize: 8, // 4 steps per epoch
  epochs: 2,
  warmupEpochs: 0,
  lr: 1e-3,
  model: tinyModel,
  seed: 11,
};

const switches = () => {
  const d = runtimeInfo().deterministic;
  return { algorithms: d.algorithms, cudnn: d.cudnn, cudnnBenchmark: d.cudnnBenchmark };
};

t.test('the switches are on while a deterministic run trains and back to their previous values after it', async (t) => {
  const before = switches();
  t.same(before, { algorithms: false, cudnn: false, cudnnBenchmark: false }, "LibTorch's defaults in a fresh process");
  const seen: ReturnType<typeof switches>[] = [];
  const dir = path.join(root, 'det');
  await pretrain({ ...base, out: dir, deterministic: true }, { onProgress: () => seen.push(switches()) });
  t.ok(seen.length >= 4, `${seen.length} progress events`);
  t.same(seen[0], { algorithms: true, cudnn: true, cudnnBenchmark: false }, 'during the run');
  t.same(switches(), before, 'after the run');
  t.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).deterministic, true, 'config.json records it');

  // A run without it leaves the switches alone.
  const seenPlain: ReturnType<typeof switches>[] = [];
  const plain = path.join(root, 'plain');
  await pretrain({ ...base, out: plain }, { onProgress: () => seenPlain.push(switches()) });
  t.same(seenPlain[0], before, 'a run without deterministic does not set them');
  t.equal(JSON.parse(fs.readFileSync(path.join(plain, 'config.json'), 'utf8')).deterministic, false);

  // On the CPU the option must not change the arithmetic: the same bits.
  const a = await readSafetensors(path.join(dir, 'image_encoder.safetensors'));
  const b = await readSafetensors(path.join(plain, 'image_encoder.safetensors'));
  let tensors = 0, differing = 0;
  for (const [name, x] of a.tensors) {
    const y = b.tensors.get(name)!;
    tensors++;
    if (Buffer.compare(Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength), Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength)) !== 0) differing++;
  }
  t.ok(tensors > 10, `${tensors} tensors compared`);
  t.equal(differing, 0, 'the encoder is bit for bit the one trained without the option');
});

t.test('a run that fails to start still puts the switches back', async (t) => {
  const before = switches();
  // initWeights that exist but are not safetensors: TypeScript checks only
  // that the file exists, so the trainer's constructor refuses it, after it
  // has set the switches.
  const junk = path.join(root, 'junk.safetensors');
  fs.writeFileSync(junk, 'not a safetensors file');
  const err = await pretrain({ ...base, out: path.join(root, 'bad-init'), deterministic: true, initWeights: junk }).catch((e) => e);
  t.ok(err instanceof Error && /junk\.safetensors/.test(err.message), `refused naming the file: ${err?.code} ${String(err?.message).slice(0, 120)}`);
  t.same(switches(), before);
});

t.test('deterministic must be a boolean, in the API and in an experiment file', async (t) => {
  const err = await pretrain({ ...base, out: path.join(root, 'bad'), deterministic: 'yes' as never }).catch((e) => e);
  t.type(err, ConfigError);
  t.match(err.message, /deterministic/);
  t.notOk(fs.existsSync(path.join(root, 'bad', 'config.json')), 'nothing written');

  const good = path.join(root, 'good.yaml');
  fs.writeFileSync(good, 'pretrain:\n  deterministic: true\n');
  t.equal(loadExperimentConfig(good).pretrain?.deterministic, true);
  const bad = path.join(root, 'bad.yaml');
  fs.writeFileSync(bad, 'pretrain:\n  deterministic: 1\n');
  t.throws(() => loadExperimentConfig(bad), { message: /deterministic/ });
});
