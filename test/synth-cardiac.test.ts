import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { synthCardiac } from '../lib/synth';
import { readNpy } from '../lib/data/npy';
import { readCsv } from '../lib/data/csv';
import { ConfigError } from '../lib/errors';
import { pearson, table } from './helpers/tables';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-synth-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));


const median = (a: number[]) => {
  const s = a.filter((x) => !Number.isNaN(x)).sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// One cohort for the image checks, one large one with tiny images for the statistics.
const main = { out: path.join(root, 'main'), n: 300, size: 48, seed: 0 };
const big = { out: path.join(root, 'big'), n: 3000, size: 16, seed: 11 };
const progress: [number, number][] = [];
const ready = (async () => {
  await synthCardiac({ ...main, onProgress: (d, n) => progress.push([d, n]) });
  await synthCardiac(big);
})();

t.test('synthCardiac is deterministic by seed', async (t) => {
  const dirs = ['a', 'b', 'c'].map((d) => path.join(root, `det-${d}`));
  await synthCardiac({ out: dirs[0], n: 40, size: 24, seed: 3 });
  await synthCardiac({ out: dirs[1], n: 40, size: 24, seed: 3 });
  await synthCardiac({ out: dirs[2], n: 40, size: 24, seed: 4 });
  const read = (d: string, f: string) => fs.readFileSync(path.join(d, f));
  for (const f of ['images.npy', 'image_ids.csv', 'tabular.csv', 'labels.csv', 'splits.csv', 'truth.json', 'cohort.yaml']) {
    t.ok(read(dirs[0], f).equals(read(dirs[1], f)), `same seed → identical ${f}`);
  }
  for (const f of ['images.npy', 'tabular.csv', 'labels.csv']) t.notOk(read(dirs[0], f).equals(read(dirs[2], f)), `other seed → different ${f}`);
});

t.test('synthCardiac writes a cohort directory whose files parse and agree', async (t) => {
  await ready;
  const { n, size } = main;
  const cfg = YAML.parse(fs.readFileSync(path.join(main.out, 'cohort.yaml'), 'utf8'));
  t.equal(cfg.version, 1);
  t.same(cfg.images, { npy: 'images.npy', ids: 'image_ids.csv' });
  t.same(cfg.labels.tasks, { infarction: 'binary', cad: 'binary', lvef: 'regression', hypertrophy: 'binary', nyha: 'multiclass' });
  t.same(cfg.splits, { csv: 'splits.csv' });
  t.equal(cfg.truth, 'truth.json');

  const npy = await readNpy(path.join(main.out, 'images.npy'));
  t.equal(npy.dtype, 'uint8');
  t.same(npy.shape, [n, 3, size, size]);

  const ids = (await readCsv(path.join(main.out, 'image_ids.csv'))).ids;
  t.equal(ids.length, n);
  const tab = await readCsv(path.join(main.out, 'tabular.csv'));
  const lab = await readCsv(path.join(main.out, 'labels.csv'));
  const spl = await readCsv(path.join(main.out, 'splits.csv'));
  t.same(tab.ids, ids, 'tabular ids = image ids');
  t.same(lab.ids, ids, 'label ids = image ids');
  t.same([...spl.ids].sort(), [...ids].sort(), 'splits cover every id exactly once');
  const truth = JSON.parse(fs.readFileSync(path.join(main.out, 'truth.json'), 'utf8'));
  const features = tab.columns.slice(1);
  t.ok(features.length >= 80 && features.length <= 120, `${features.length} feature columns`);
  t.same(Object.keys(cfg.tabular.types), features, 'every column has a declared type');
  t.same(Object.keys(truth.features), features, 'every column has a ground-truth entry');
  for (const f of features) t.equal(cfg.tabular.types[f], truth.features[f].type, `${f} type`);
  t.equal(features.filter((f) => truth.features[f].type === 'categorical').length >= 20, true, 'at least 20 categorical columns');

  const split = spl.rows.map((r) => r[1]);
  t.same([...new Set(split)].sort(), ['test', 'train', 'val']);
  const frac = (s: string) => split.filter((x) => x === s).length / n;
  t.ok(Math.abs(frac('train') - 0.7) < 0.02 && Math.abs(frac('val') - 0.15) < 0.02, `fractions ${frac('train')}/${frac('val')}/${frac('test')}`);
  const inf = table(path.join(main.out, 'labels.csv')).num('infarction');
  const positives = (s: string) => inf.filter((y, i) => y === 1 && split[i] === s).length;
  const total = inf.filter((y) => y === 1).length;
  t.ok(Math.abs(positives('train') - 0.7 * total) <= 1, 'infarction positives are split 70/15/15');

  t.ok(progress.length > 0 && progress.every(([, m]) => m === n), 'onProgress reports the total');
  t.same(progress[progress.length - 1], [n, n], 'onProgress ends at n');
  t.ok(progress.every(([d], k) => k === 0 || d > progress[k - 1][0]), 'onProgress is increasing');
});

/** Intensity with the recorded scanner scale and offset undone (blood pool ≈ 1, myocardium ≈ 0.15). */
function channel(img: Uint8Array, i: number, c: number, size: number, acq: { scale: number; offset: number }): Float64Array {
  const out = new Float64Array(size * size);
  const at = (i * 3 + c) * size * size;
  for (let k = 0; k < out.length; k++) out[k] = (img[at + k] / 255 - acq.offset) / acq.scale;
  return out;
}

function sample(v: Float64Array, S: number, y: number, x: number): number {
  const y0 = Math.max(0, Math.min(S - 2, Math.floor(y))), x0 = Math.max(0, Math.min(S - 2, Math.floor(x)));
  const fy = Math.max(0, Math.min(1, y - y0)), fx = Math.max(0, Math.min(1, x - x0));
  return (v[y0 * S + x0] * (1 - fy) + v[(y0 + 1) * S + x0] * fy) * (1 - fx) + (v[y0 * S + x0 + 1] * (1 - fy) + v[(y0 + 1) * S + x0 + 1] * fy) * fx;
}

const POOL = 0.575; // halfway between myocardium (0.15) and blood (1)
const EPI = 0.35; // halfway between myocardium (0.15) and surrounding tissue (0.55)

/**
 * Measures the LV on one frame: blood-pool area (pixels above POOL inside a
 * disc of 1.2× the median endocardial ray radius) and wall thickness (median
 * over 90 rays of the distance from the downward POOL crossing to the upward
 * EPI crossing that follows the dark myocardium).
 */
function measureLv(v: Float64Array, S: number, centre: [number, number]): { area: number; thickness: number } {
  const [cy, cx] = [centre[0] - 0.5, centre[1] - 0.5];
  const endo: number[] = [], wall: number[] = [];
  for (let k = 0; k < 90; k++) {
    const a = (2 * Math.PI * k) / 90;
    const dy = Math.sin(a), dx = Math.cos(a);
    let prev = sample(v, S, cy, cx), rEndo = NaN, rEpi = NaN, inWall = false;
    for (let s = 0.1; s < S / 2; s += 0.1) {
      const val = sample(v, S, cy + s * dy, cx + s * dx);
      if (Number.isNaN(rEndo) && val < POOL) rEndo = s - 0.1 * (POOL - val) / (prev - val);
      else if (!Number.isNaN(rEndo) && val < EPI) inWall = true;
      else if (inWall && val > EPI) {
        rEpi = s - 0.1 * (val - EPI) / (val - prev);
        break;
      }
      prev = val;
    }
    endo.push(rEndo);
    wall.push(rEpi - rEndo);
  }
  const limit = 1.2 * median(endo);
  let area = 0;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) if ((y - cy) ** 2 + (x - cx) ** 2 <= limit ** 2 && v[y * S + x] > POOL) area++;
  }
  return { area, thickness: median(wall) };
}

t.test('measurements on the images agree with the morphometric columns', async (t) => {
  await ready;
  const { size } = main;
  const img = (await readNpy(path.join(main.out, 'images.npy'))).data as Uint8Array;
  const truth = JSON.parse(fs.readFileSync(path.join(main.out, 'truth.json'), 'utf8'));
  const tab = table(path.join(main.out, 'tabular.csv'));
  const ed = truth.geometry.map((g: { lvCentrePx: [number, number] }, i: number) =>
    measureLv(channel(img, i, 0, size, truth.acquisition[i]), size, g.lvCentrePx));
  const es = truth.geometry.map((g: { lvCentrePx: [number, number] }, i: number) =>
    measureLv(channel(img, i, 2, size, truth.acquisition[i]), size, g.lvCentrePx));
  const ms = truth.geometry.map((g: { lvCentrePx: [number, number] }, i: number) =>
    measureLv(channel(img, i, 1, size, truth.acquisition[i]), size, g.lvCentrePx));
  const ordered = ed.filter((m: { area: number }, i: number) => m.area > ms[i].area && ms[i].area > es[i].area).length;
  t.equal(ordered, main.n, 'channels are ED, mid-systole, ES: the pool shrinks from channel 0 to 2');
  const rEdv = pearson(ed.map((m: { area: number }) => m.area), tab.num('lvedv'));
  const rEsv = pearson(es.map((m: { area: number }) => m.area), tab.num('lvesv'));
  const rWall = pearson(ed.map((m: { thickness: number }) => m.thickness), tab.num('wt_mean'));
  const rDiam = pearson(ed.map((m: { area: number }) => Math.sqrt(m.area)), tab.num('lvedd'));
  t.comment(`n=${main.n} size=${size}: r(ED pool area, lvedv)=${rEdv.toFixed(3)} r(ES pool area, lvesv)=${rEsv.toFixed(3)} ` +
    `r(ED wall, wt_mean)=${rWall.toFixed(3)} r(√ED area, lvedd)=${rDiam.toFixed(3)}`);
  t.ok(rEdv >= 0.9, `ED pool area vs lvedv: r = ${rEdv}`);
  t.ok(rEsv >= 0.9, `ES pool area vs lvesv: r = ${rEsv}`);
  t.ok(rWall >= 0.9, `ED ring thickness vs wt_mean: r = ${rWall}`);
  t.ok(rDiam >= 0.9, `√(ED pool area) vs lvedd: r = ${rDiam}`);
  // the pool area in pixels is about π·r² of the recorded radius
  const rel = ed.map((m: { area: number }, i: number) => m.area / (Math.PI * truth.geometry[i].rEndoPx[0] ** 2));
  t.ok(Math.abs(median(rel) - 1) < 0.1, `ED pool area / π·rEndo² = ${median(rel).toFixed(3)} (median)`);
});

t.test('scar boxes hold brighter myocardium than the rest of the ring', async (t) => {
  await ready;
  const { size } = main;
  const img = (await readNpy(path.join(main.out, 'images.npy'))).data as Uint8Array;
  const truth = JSON.parse(fs.readFileSync(path.join(main.out, 'truth.json'), 'utf8'));
  const labels = table(path.join(main.out, 'labels.csv')).num('infarction');
  t.equal(truth.lesions.length, labels.filter((y) => y === 1).length, 'one lesion per infarction');
  const diffs: number[] = [];
  for (const l of truth.lesions) {
    t.equal(labels[l.index], 1, `lesion ${l.id} belongs to an infarction subject`);
    const [y0, x0, y1, x1] = l.box;
    t.ok(y0 >= 0 && x0 >= 0 && y1 <= size && x1 <= size && y1 > y0 && x1 > x0, `box ${l.box} inside the image`);
    const g = truth.geometry[l.index];
    const v = channel(img, l.index, 0, size, truth.acquisition[l.index]);
    const [r0, r1] = [g.rEndoPx[0], g.rEndoPx[0] + g.wallMeanPx[0]];
    let sIn = 0, nIn = 0, sOut = 0, nOut = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d = Math.hypot(y + 0.5 - g.lvCentrePx[0], x + 0.5 - g.lvCentrePx[1]);
        if (d < r0 + 0.5 || d > r1 - 0.5) continue;
        const inside = y >= y0 && y < y1 && x >= x0 && x < x1;
        if (inside) { sIn += v[y * size + x]; nIn++; } else { sOut += v[y * size + x]; nOut++; }
      }
    }
    if (nIn > 0 && nOut > 0) diffs.push(sIn / nIn - sOut / nOut);
  }
  const brighter = diffs.filter((d) => d > 0.05).length / diffs.length;
  t.comment(`${diffs.length} scars: median (inside − outside) ring intensity ${median(diffs).toFixed(3)}, ${(100 * brighter).toFixed(0)}% > 0.05`);
  t.ok(diffs.length >= 0.9 * truth.lesions.length, 'most boxes overlap the myocardial ring');
  t.ok(median(diffs) > 0.1, 'inside the box the myocardium is brighter');
  t.ok(brighter >= 0.8, 'for at least 80% of the scars');
});

t.test('labels, leaks, noise, copies and missing values follow the ground truth', async (t) => {
  await ready;
  const tab = table(path.join(big.out, 'tabular.csv'));
  const lab = table(path.join(big.out, 'labels.csv'));
  const truth = JSON.parse(fs.readFileSync(path.join(big.out, 'truth.json'), 'utf8'));
  const n = big.n;
  const prev = (task: string) => lab.num(task).reduce((s, y) => s + y, 0) / n;
  t.ok(prev('infarction') >= 0.05 && prev('infarction') <= 0.1, `infarction prevalence ${prev('infarction')} in [0.05, 0.10]`);
  t.ok(prev('cad') >= 0.2 && prev('cad') <= 0.3, `cad prevalence ${prev('cad')} in [0.20, 0.30]`);
  t.ok(prev('hypertrophy') >= 0.08 && prev('hypertrophy') <= 0.25, `hypertrophy prevalence ${prev('hypertrophy')}`);
  t.same([...new Set(lab.cells.nyha)].sort(), ['1', '2', '3', '4'], 'nyha has 4 classes');
  t.ok(lab.num('infarction').every((y, i) => y === 0 || lab.num('cad')[i] === 1), 'every infarction is CAD');

  const leaks: [string, string][] = [['heart_attack_diagnosed', 'infarction'], ['angina_diagnosed', 'cad'], ['lvef_echo', 'lvef']];
  for (const [f, task] of leaks) {
    const r = pearson(tab.num(f), lab.num(task));
    t.ok(r > 0.9, `leak ${f} vs ${task}: r = ${r.toFixed(3)}`);
    t.ok(truth.tasks[task].leaks.includes(f), `truth lists ${f} as a leak of ${task}`);
  }
  const noise = Object.keys(truth.features).filter((f) => truth.features[f].role === 'noise');
  t.ok(noise.length >= 10, `${noise.length} noise columns`);
  let worst = 0;
  for (const f of noise) {
    for (const task of Object.keys(truth.tasks)) worst = Math.max(worst, Math.abs(pearson(tab.num(f), lab.num(task))));
    t.notOk(Object.values(truth.tasks).some((x) => (x as { relevant: string[] }).relevant.includes(f)), `${f} is relevant to no task`);
  }
  t.ok(worst < 0.1, `noise columns: max |r| with any task = ${worst.toFixed(3)} < 0.1`);

  const copies = Object.entries(truth.features) as [string, { role: string; of?: string }][];
  const dups = copies.filter(([, f]) => f.role === 'duplicate');
  const near = copies.filter(([, f]) => f.role === 'near_duplicate');
  t.ok(dups.length >= 2 && near.length >= 2, `${dups.length} duplicates, ${near.length} near-duplicates`);
  for (const [name, f] of dups) t.same(tab.cells[name], tab.cells[f.of!], `${name} is an exact copy of ${f.of}`);
  const nearR: string[] = [];
  for (const [name, f] of near) {
    const r = pearson(tab.num(name), tab.num(f.of!));
    nearR.push(`${name} ${r.toFixed(4)}`);
    t.ok(r >= 0.95 && r <= 0.995, `${name} vs ${f.of}: r = ${r.toFixed(4)} in [0.95, 0.995]`);
  }
  t.comment(`near-duplicates: ${nearR.join(', ')}`);

  const missing = (c: string) => tab.cells[c].filter((x) => x === '').length / n;
  t.equal(missing('age'), 0, 'age is never missing');
  t.ok(missing('pack_years') > 0.02 && missing('pack_years') < 0.09, `pack_years ${missing('pack_years')} missing`);
  t.same(tab.cells.ldl.map((x) => x === ''), tab.cells.hdl.map((x) => x === ''), 'the blood block goes missing together');
  t.ok(tab.columns.slice(1).filter((c) => missing(c) > 0).length >= 10, 'at least 10 columns have missing cells');

  // relevance from the causal graph
  const rel = (task: string) => truth.tasks[task].relevant as string[];
  for (const task of Object.keys(truth.tasks)) {
    for (const f of rel(task)) t.ok(f in truth.features, `${task}: ${f} is a column`);
  }
  t.ok(['age', 'ldl', 'lvef', 'wt_seg7', 'heart_attack_diagnosed'].every((f) => rel('infarction').includes(f)), 'infarction: causes, effects and the leak');
  t.notOk(['height', 'imaging_centre', 'occupation', 'lvef_dup'].some((f) => rel('infarction').includes(f)), 'infarction: no correlates or copies');
  t.same(truth.tasks.cad.leaks, ['angina_diagnosed']);
  t.ok(truth.tasks.hypertrophy.causes.includes('systolic_bp') && truth.tasks.hypertrophy.causes.includes('bsa'), 'hypertrophy caused by blood pressure and body size');
  t.ok(truth.imageDerivable.includes('lvedv') && !truth.imageDerivable.includes('age'), 'imageDerivable lists morphometrics only');
});

t.test('synthCardiac rejects bad options with ConfigError naming the option', async (t) => {
  const out = path.join(root, 'bad');
  const cases: [unknown, RegExp | string][] = [
    [{ out, n: -3 }, 'Expected positive integer for n but received -3 of type number'],
    [{ out, n: 2.5 }, 'Expected positive integer for n but received 2.5 of type number'],
    [{ out, size: 8 }, 'Expected integer between 16 and 1024 for size but received 8 of type number'],
    [{ out, seed: -1 }, 'Expected integer between 0 and 4294967295 for seed but received -1 of type number'],
    [{ out, seed: '1' }, 'Expected integer for seed but received "1" of type string'],
    [{ out: '' }, 'Expected non-empty string for out but received "" of type string'],
    [{ n: 10 }, 'Expected non-empty string for out but received undefined of type undefined'],
    [{ out, onProgress: 1 }, 'Expected function for onProgress but received 1 of type number'],
    [{ out, nn: 10 }, /Unknown option nn; expected one of out, n, size, seed, onProgress/],
    [null, 'Expected object for options but received null'],
  ];
  for (const [opts, msg] of cases) {
    await t.rejects(synthCardiac(opts as never), { constructor: ConfigError, code: 'ERR_CONFIG', message: msg }, JSON.stringify(opts));
  }
  t.notOk(fs.existsSync(out), 'nothing is written');
});

t.test('synthCardiac rejects with the error an onProgress callback throws and writes no cohort.yaml', async (t) => {
  const out = path.join(root, 'throws');
  const boom = new Error('stop here');
  await t.rejects(synthCardiac({ out, n: 5, size: 16, onProgress: () => { throw boom; } }), boom);
  t.notOk(fs.existsSync(path.join(out, 'cohort.yaml')), 'no cohort.yaml');
});
