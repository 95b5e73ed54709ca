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
