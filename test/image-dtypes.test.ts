// Every image-store dtype a cohort may hold (uint8, float16, float32) reaches
// the encoders as the values stored: a float16 copy of a float32 cohort whose
// values are exact halves embeds, attributes and explains the same.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCohort } from '../lib/data/cohort';
import { readNpyHeader } from '../lib/data/npy';
import { synthCardiac } from '../lib/synth';
import { embedCohort } from '../lib/pipeline/evaluate';
import { cohortImageStore } from '../lib/pipeline/cohort-pretrain';
import { pairedImages } from '../lib/features/attribution-rank';
import { readCohortImages } from '../lib/explain/run-inputs';
import { resolvePretrainOptions } from '../lib/pretrain-options';
import { randomRun } from '../lib/run';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-dtypes-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

/** IEEE half bits of k/256 (k in 0 … 255, all exact halves). */
function halfOf(k: number): number {
  if (k === 0) return 0;
  const e = Math.floor(Math.log2(k / 256));
  return ((e + 15) << 10) | Math.round((k / 256 / 2 ** e - 1) * 1024);
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
};

const base = path.join(root, 'u8');
const f32 = path.join(root, 'f32');
const f16 = path.join(root, 'f16');

t.before(async () => {
  await synthCardiac({ out: base, n: 80, size: 16, seed: 2 });
  const h = await readNpyHeader(path.join(base, 'images.npy'));
  const raw = fs.readFileSync(path.join(base, 'images.npy'));
  const header = raw.subarray(0, h.dataOffset).toString('latin1');
  const u8 = raw.subarray(h.dataOffset);
  for (const [dir, descr, body] of [
    [f32, '<f4', Buffer.from(Float32Array.from(u8, (k) => k / 256).buffer)],
    [f16, '<f2', Buffer.from(Uint16Array.from(u8, halfOf).buffer)],
  ] as const) {
    fs.cpSync(base, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'images.npy'), Buffer.concat([Buffer.from(header.replace("'|u1'", `'${descr}'`), 'latin1'), body]));
  }
});

t.test('a float16 store gives the embeddings, paired images and explain inputs of the float32 store with the same values', async (t) => {
  const c32 = await loadCohort(f32);
  const c16 = await loadCohort(f16);
  t.equal(c16.images.dtype, 'float16');
  t.equal(c32.images.dtype, 'float32');
  const [n, channels, height, width] = c32.images.shape;
  const config = resolvePretrainOptions(
    { out: '-', images: cohortImageStore(c32), model: { arch: 'resnet18' } },
    { n, channels, height, width, dtype: 'float32' },
    { mean: [0.3, 0.3, 0.3], std: [0.2, 0.2, 0.2] },
  );
  const run = randomRun(config, 1);
  t.teardown(() => run.dispose());
  const e32 = await embedCohort(run, c32, 10);
  const e16 = await embedCohort(run, c16, 10);
  t.ok(e32.every(Number.isFinite), 'the float32 embeddings are finite');
  t.ok(maxDiff(e32, e16) <= 1e-6, `float16 embeddings equal float32 ones (max |Δ| ${maxDiff(e32, e16)})`);

  const rows = [0, 5, 79, 7];
  const p32 = pairedImages(c32, rows, { ...config, imageSize: 12 });
  const p16 = pairedImages(c16, rows, { ...config, imageSize: 12 });
  t.same(p16.shape, p32.shape);
  t.equal(maxDiff(p32.data, p16.data), 0, 'pairedImages reads float16 as stored');

  const r32 = readCohortImages(c32, rows);
  const r16 = readCohortImages(c16, rows);
  t.equal(maxDiff(r32.data, r16.data), 0, 'readCohortImages reads float16 as stored');
  const u8 = readCohortImages(await loadCohort(base), rows);
  t.ok(maxDiff(u8.data, r32.data) <= 1 / 256 + 1e-7, 'and uint8 as value / 255');
});

t.test('pretraining on a float16 store is pretraining on the float32 store with the same values, with augmentations and the store-derived normalisation and clamp range (bitwise-identical tensors)', async (t) => {
  const { pretrainCohort } = await import('../lib/pipeline/cohort-pretrain');
  const { readRunConfig } = await import('../lib/export/run-export');
  const opts = {
    epochs: 2, batchSize: 16, seed: 3, warmupEpochs: 0, augment: { rate: 0.95 },
    model: { arch: 'resnet18' as const, smallStem: true, tabularHidden: 16, tabularLayers: 2, projectionHidden: 16, projectionDim: 8 },
  };
  const run32 = await pretrainCohort({ ...opts, cohort: f32, out: path.join(root, 'run32') });
  const run16 = await pretrainCohort({ ...opts, cohort: f16, out: path.join(root, 'run16') });
  const c32 = readRunConfig(run32);
  const c16 = readRunConfig(run16);
  t.equal(c16.data.dtype, 'float16', 'the run records the store it read');
  t.same(c16.normalize, c32.normalize, 'the same per-channel statistics');
  t.same(c16.augment.valueRange, c32.augment.valueRange, 'the same clamp range, from the store');
  t.not(c32.augment.valueRange.join(), '0,1', 'a float store gets its own range (the values are k/256, up to 255/256)');
  // The files' metadata differ (the config names the store's dtype and its cohort); every tensor must not.
  const { readSafetensors } = await import('../lib/io/safetensors');
  for (const f of ['image_encoder.safetensors', 'checkpoint.safetensors']) {
    const a = (await readSafetensors(path.join(run32, f))).tensors;
    const b = (await readSafetensors(path.join(run16, f))).tensors;
    t.same([...b.keys()], [...a.keys()], `${f}: the same tensors`);
    const differ = [...a].filter(([name, x]) => !Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).equals(Buffer.from(b.get(name)!.data.buffer, b.get(name)!.data.byteOffset, b.get(name)!.data.byteLength)));
    t.same(differ.map(([name]) => name), [], `${f}: every one of its ${a.size} tensors is bitwise identical`);
  }
});

t.test('a run trained on a float32 store embeds a float16 cohort, and the reverse, in LibTorch and onnxruntime, as the float32 cohort', async (t) => {
  const { openEmbedder, embedSource } = await import('../lib/export/backend');
  const { imageSourceOfCohort } = await import('../lib/export/images');
  const c32 = await loadCohort(f32);
  const c16 = await loadCohort(f16);
  const cu8 = await loadCohort(base);
  for (const runDir of [path.join(root, 'run32'), path.join(root, 'run16')]) {
    for (const backend of ['torch', 'ort'] as const) {
      const emb = await openEmbedder({ run: runDir, backend });
      try {
        const a = (await embedSource(emb, imageSourceOfCohort(c32)))!.embedding;
        const b = (await embedSource(emb, imageSourceOfCohort(c16)))!.embedding;
        t.ok(a.length === 80 * emb.dim && a.every(Number.isFinite), 'finite embeddings of every image');
        t.equal(maxDiff(a, b), 0, `${path.basename(runDir)}, ${backend}: the float16 cohort embeds as the float32 one`);
        t.throws(() => emb.check(imageSourceOfCohort(cu8)), { name: 'ShapeError', message: /Expected float32 or float16 images .* received uint8/ }, 'a uint8 cohort is refused (it would be scaled by 1/255)');
      } finally {
        await emb.dispose();
      }
    }
  }
});
