import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Cohort } from '../lib/data/cohort';
import { loadCohort, loadTruth } from '../lib/data/cohort';
import { encodeColumn } from '../lib/data/tabular-columns';
import { ConfigError } from '../lib/errors';
import { uniformStream } from '../lib/eval/metrics';
import { crossModalFromEmbeddings, featureData, trainRows } from '../lib/features/relevance';
import { planHalving } from '../lib/features/search';
import { selectFeatures, type SelectionMethod } from '../lib/features/selectors';
import { synthCardiac } from '../lib/synth';
import { resizeToFloat } from '../lib/augment';
import { Preprocessor } from '../lib/data/preprocess';
import { tabularIntegratedGradients } from '../lib/explain/attribution';
import { pretrainCohort } from '../lib/pipeline/cohort-pretrain';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-selectors-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

function normals(seed: number): () => number {
  const u = uniformStream(seed);
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** An in-memory cohort (no images) from columns of numbers and one binary task. */
function memoryCohort(cols: Record<string, number[]>, y: number[], split: ('train' | 'val' | 'test')[], categorical: string[] = []): Cohort {
  const n = y.length;
  const names = Object.keys(cols);
  const encoded = names.map((name) => encodeColumn(cols[name].map(String), categorical.includes(name) ? 'categorical' : 'continuous', 'memory.csv', name));
  return {
    dir: '/memory', name: 'memory', ids: Array.from({ length: n }, (_, i) => `s${i}`),
    images: {} as Cohort['images'],
    tabular: {
      file: 'memory.csv',
      columns: names.map((name, j) => (categorical.includes(name) ? { name, type: 'categorical' as const, categories: encoded[j].categories } : { name, type: 'continuous' as const })),
      data: encoded.map((e) => e.data),
      rowNumbers: Array.from({ length: n }, (_, i) => i + 2),
    },
    labels: { tasks: [{ name: 'y', type: 'binary', classes: ['0', '1'] }], values: { y: y.map(String) } },
    splits: {
      train: split.flatMap((s, i) => (s === 'train' ? [i] : [])), val: split.flatMap((s, i) => (s === 'val' ? [i] : [])),
      test: split.flatMap((s, i) => (s === 'test' ? [i] : [])), source: 'seeded',
    },
  };
}

/** rel (strong) and rel2 (weaker) carry y, independent given y; copy ≈ rel; two noise columns and a categorical noise column. */
function constructed(n = 600) {
  const z = normals(11);
  const u = uniformStream(12);
  const y = Array.from({ length: n }, (_, i) => i % 2);
  const rel = y.map((v) => 3 * v + z());
  const cols = {
    noise1: y.map(() => z()),
    copy: rel.map((v) => v + 0.01 * z()),
    rel,
    noise2: y.map(() => z()),
    rel2: y.map((v) => 1.5 * v + z()),
    catnoise: y.map(() => Math.floor(u() * 3)),
  };
  const split = y.map((_, i) => (i < n * 0.8 ? 'train' : i < n * 0.9 ? 'val' : 'test') as 'train' | 'val' | 'test');
  return { cols, y, split };
}

t.test('selectFeatures with mrmr, mrmr-miq, jmi and cmim picks the relevant feature, then not its copy', async (t) => {
  const { cols, y, split } = constructed();
  const cohort = memoryCohort(cols, y, split, ['catnoise']);
  for (const method of ['mrmr', 'mrmr-miq', 'jmi', 'cmim'] as SelectionMethod[]) {
    const sel = await selectFeatures(cohort, { method, k: 3 });
    t.equal(sel.method, method);
    t.equal(sel.selected.length, 3);
    t.ok(sel.selected[0] === 'rel' || sel.selected[0] === 'copy', `${method} first: ${sel.selected.join(', ')}`);
    const twin = sel.selected[0] === 'rel' ? 'copy' : 'rel';
    t.not(sel.selected[1], twin, `${method} second is not the copy: ${sel.selected.join(', ')}`);
    // JMI and CMIM discount dependence that y explains (I(rel; rel2 | y) ≈ 0), so they take rel2 next;
    // mRMR penalises it (I(rel; rel2) > 0) and may prefer noise, as Brown et al. discuss.
    if (method === 'jmi' || method === 'cmim') t.equal(sel.selected[1], 'rel2', `${method} second is the other relevant feature`);
    t.same(Object.keys(sel.scores).sort(), Object.keys(cols).sort(), `${method} scores every candidate`);
  }
  const mim = await selectFeatures(cohort, { method: 'mim', k: 3 });
  t.same(new Set(mim.selected), new Set(['rel', 'copy', 'rel2']), 'MIM ignores redundancy: it keeps the copy');
});

t.test('selectFeatures uses the train rows only: changing val and test rows changes nothing', async (t) => {
  const { cols, y, split } = constructed(300);
  const a = memoryCohort(cols, y, split, ['catnoise']);
  const changed = Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, v.map((x, i) => (split[i] === 'train' ? x : k === 'catnoise' ? 2 : 1000 - x * 7))]));
  const b = memoryCohort(changed, y.map((v, i) => (split[i] === 'train' ? v : 1 - v)), split, ['catnoise']);
  for (const method of ['mim', 'mrmr', 'jmi', 'cmim', 'vif', 'cluster'] as SelectionMethod[]) {
    t.same(await selectFeatures(b, { method, k: 3 }), await selectFeatures(a, { method, k: 3 }), method);
  }
  t.same(trainRows(a, 0.5, 1), trainRows(a, 0.5, 1), 'the subsample is seeded');
  t.ok(trainRows(a, 0.5, 1).every((r) => split[r] === 'train'));
  t.throws(() => featureData(a, [split.indexOf('test')]), /not a train row/);
});

t.test('selectFeatures vif drops one column of an exactly collinear triple', async (t) => {
  const z = normals(3);
  const n = 200;
  const a = Array.from({ length: n }, () => z());
  const b = Array.from({ length: n }, () => z());
  const cols = { a, b, c: a.map((v, i) => v + b[i]), d: a.map(() => z()) };
  const cohort = memoryCohort(cols, a.map((_, i) => i % 2), a.map(() => 'train'));
  const sel = await selectFeatures(cohort, { method: 'vif' });
  const dropped = ['a', 'b', 'c'].filter((f) => !sel.selected.includes(f));
  t.equal(dropped.length, 1, `dropped ${dropped.join(', ')}; kept ${sel.selected.join(', ')}`);
  t.ok(sel.selected.includes('d'));
  t.ok(sel.scores[dropped[0]] < 1e-6, 'the dropped column has tolerance 1/VIF ≈ 0');
  t.equal((await selectFeatures(cohort, { method: 'vif', k: 2 })).selected.length, 2, 'with k it keeps dropping until k remain');
});

t.test('vif and cluster with k give k features whatever the threshold; a k past the varying columns is refused', async (t) => {
  const z = normals(5);
  const n = 200;
  const base = Array.from({ length: n }, () => z());
  // Five near-copies of one column (pairwise VIFs in the hundreds) and one independent column.
  const cols: Record<string, number[]> = {};
  for (const name of ['a', 'b', 'c', 'd', 'e']) cols[name] = base.map((v) => v + 0.05 * z());
  cols.f = base.map(() => z());
  const cohort = memoryCohort(cols, base.map((_, i) => i % 2), base.map(() => 'train'));
  const free = await selectFeatures(cohort, { method: 'vif' });
  t.equal(free.selected.length, 2, `without k the threshold stops at one near-copy and f: ${free.selected.join(', ')}`);
  for (const k of [1, 2, 3, 4, 5, 6]) {
    t.equal((await selectFeatures(cohort, { method: 'vif', k })).selected.length, k, `vif k = ${k}`);
  }
  t.ok((await selectFeatures(cohort, { method: 'vif', k: 4 })).selected.includes('f'), 'the independent column stays');
  const withConstant = memoryCohort({ ...cols, g: base.map(() => 3) }, base.map((_, i) => i % 2), base.map(() => 'train'));
  for (const method of ['vif', 'cluster'] as const) {
    await t.rejects(selectFeatures(withConstant, { method, k: 7 }), {
      code: 'ERR_DATA', message: `${method}: k is 7 but only 6 of the 7 candidate features vary on the 200 selection rows (constant: "g")`,
    });
    t.equal((await selectFeatures(withConstant, { method, k: 6 })).selected.length, 6, `${method}: k = 6 leaves the constant out`);
  }
});

t.test('crossModal options are checked: a string folds ran as NaN folds (every R² 0)', async (t) => {
  const { cols, y, split } = constructed(100);
  const cohort = memoryCohort(cols, y, split, ['catnoise']);
  for (const [crossModal, message] of [
    [{ folds: 'x' }, /crossModal\.folds/],
    [{ folds: 1 }, /crossModal\.folds/],
    [{ components: 0 }, /crossModal\.components/],
    [{ miComponents: 1.5 }, /crossModal\.miComponents/],
    [{ fold: 5 }, /Unknown option crossModal\.fold/],
  ] as const) {
    await t.rejects(selectFeatures(cohort, { method: 'crossmodal', k: 2, crossModal: crossModal as never }), { code: 'ERR_CONFIG', message }, JSON.stringify(crossModal));
  }
});

t.test('selectFeatures cluster keeps one representative per correlation cluster', async (t) => {
  const { cols, y, split } = constructed(300);
  const cohort = memoryCohort(cols, y, split, ['catnoise']);
  const sel = await selectFeatures(cohort, { method: 'cluster', k: 5 });
  t.equal(sel.selected.length, 5);
  t.ok(!(sel.selected.includes('rel') && sel.selected.includes('copy')), `rel and its copy share a cluster: ${sel.selected.join(', ')}`);
  t.equal(sel.selected[0] === 'rel' || sel.selected[0] === 'copy', true, 'representatives are listed by relevance');
});

t.test('selectFeatures random is deterministic by seed and has size k', async (t) => {
  const { cols, y, split } = constructed(100);
  const cohort = memoryCohort(cols, y, split, ['catnoise']);
  const a = await selectFeatures(cohort, { method: 'random', k: 3, seed: 5 });
  t.same(await selectFeatures(cohort, { method: 'random', k: 3, seed: 5 }), a);
  t.equal(a.selected.length, 3);
  t.equal(new Set(a.selected).size, 3);
  const others = await Promise.all([6, 7, 8, 9].map((seed) => selectFeatures(cohort, { method: 'random', k: 3, seed })));
  t.ok(others.some((o) => o.selected.join() !== a.selected.join()), 'other seeds give other subsets');
});

t.test('selectFeatures rejects attribution with ConfigError giving the reason, and bad options', async (t) => {
  const { cols, y, split } = constructed(100);
  const cohort = memoryCohort(cols, y, split);
  await t.rejects(selectFeatures(cohort, { method: 'attribution', k: 2 }), {
    constructor: ConfigError, code: 'ERR_CONFIG', message: /needs option run/,
  });
  await t.rejects(selectFeatures(cohort, { method: 'nope' as SelectionMethod }), { code: 'ERR_CONFIG', message: /for method/ });
  await t.rejects(selectFeatures(cohort, { method: 'mim', k: 99 }), { code: 'ERR_CONFIG', message: /k at most 6/ });
  await t.rejects(selectFeatures(cohort, { method: 'jmi', relevance: 'crossmodal' }), { code: 'ERR_CONFIG', message: /conditions on a task label/ });
  await t.rejects(selectFeatures(cohort, { method: 'mim', tasks: ['nope'] }), { code: 'ERR_CONFIG', message: /Unknown task "nope"/ });
  await t.rejects(selectFeatures(cohort, { method: 'search', k: 2 }), { code: 'ERR_CONFIG', message: /needs search options/ });
});

t.test('crossModalFromEmbeddings: a feature written into the embedding has a high R², an unrelated one none', async (t) => {
  const { cols, y, split } = constructed(300);
  const cohort = memoryCohort(cols, y, split, ['catnoise']);
  const data = featureData(cohort, cohort.splits.train);
  const z = normals(9);
  const d = 40;
  const n = data.rows.length;
  const emb = new Float64Array(n * d);
  const rel = data.columns[data.names.indexOf('rel')];
  const w = Array.from({ length: d }, () => z());
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) emb[i * d + j] = w[j] * rel[i] + 0.3 * z();
  const cm = crossModalFromEmbeddings(data, emb, d, { components: 8, folds: 5 });
  const at = (f: string) => data.names.indexOf(f);
  t.ok(cm.r2[at('rel')] > 0.9, `R²(rel) = ${cm.r2[at('rel')]}`);
  t.ok(cm.r2[at('noise1')] < 0.1, `R²(noise1) = ${cm.r2[at('noise1')]}`);
  t.ok(cm.r2[at('catnoise')] < 0.1, `R²(catnoise) = ${cm.r2[at('catnoise')]}`);
  t.ok(cm.pcMI[at('rel')] > cm.pcMI[at('noise1')] + 0.3, 'MI with the leading PC follows');
  t.ok(cm.nats[at('rel')] > 1, 'R² as Gaussian-channel nats');
  t.ok(cm.explained[0] > 0.5, 'the first PC carries most of the variance');
});

t.test('planHalving fits successive halving into the budget', async (t) => {
  const p = planHalving(9, 18, 10, 3)!;
  t.same(p.rungs, [{ n: 9, epochs: 1 }, { n: 3, epochs: 3 }]);
  t.equal(p.cost, 18);
  t.same(planHalving(9, 36, 10, 3)!.rungs, [{ n: 9, epochs: 2 }, { n: 3, epochs: 6 }], 'a larger budget lengthens the first rung');
  t.equal(planHalving(9, 10, 10, 3)!.candidates, 4, 'a small budget evaluates fewer candidates');
  t.equal(planHalving(9, 1, 10, 3), null, 'no plan when two candidates at one epoch do not fit');
  t.equal(planHalving(1, 0, 10, 3)!.cost, 0, 'one candidate needs no evaluation');
});

t.test('on a small synthetic cardiac cohort, mim and mrmr rank the infarction leak first', async (t) => {
  const dir = path.join(root, 'cardiac');
  await synthCardiac({ out: dir, n: 200, size: 32, seed: 0 });
  const cohort = await loadCohort(dir);
  const truth = (await loadTruth(cohort)) as { tasks: Record<string, { leaks: string[]; relevant: string[] }> };
  t.ok(truth.tasks.infarction.leaks.includes('heart_attack_diagnosed'), 'truth.json lists the leak');
  for (const method of ['mim', 'mrmr'] as SelectionMethod[]) {
    const sel = await selectFeatures(cohort, { method, k: 5, tasks: ['infarction'] });
    const leaks = sel.selected.filter((f) => truth.tasks.infarction.leaks.includes(f));
    t.ok(sel.selected.slice(0, 3).includes('heart_attack_diagnosed'), `${method}: ${sel.selected.join(', ')}`);
    t.ok(leaks.length >= 1);
  }
  const cm = await selectFeatures(cohort, { method: 'crossmodal', k: 4, crossModal: { encoder: 'random:resnet18', components: 8 } });
  t.equal(cm.selected.length, 4);
  t.ok(Object.values(cm.scores).every(Number.isFinite), 'cross-modal R² for every feature');
});

t.test('selectFeatures search pretrains its candidates within the budget, deterministically, and replays from its store', async (t) => {
  const dir = path.join(root, 'cardiac'); // written by the previous subtest
  const out = path.join(root, 'search');
  const options = {
    method: 'search' as const, k: 1, seed: 2, tasks: ['infarction'], features: ['heart_attack_diagnosed', 'noise_c01'],
    search: {
      out, epochs: 1, budget: 3, probeSeeds: 1,
      pretrain: { batchSize: 64, lr: 1e-3, warmupEpochs: 0, imageSize: 16, model: { arch: 'resnet18' as const, smallStem: false, tabularHidden: 64, projectionHidden: 64, projectionDim: 32 } },
    },
  };
  // Budget 3 epochs: the two one-feature candidates and the all-features reference, one epoch each.
  const lines: string[] = [];
  const a = await selectFeatures(dir, { ...options, log: (l) => lines.push(l) });
  t.equal(lines.filter((l) => l.startsWith('pretraining')).length, 3, lines.join('\n'));
  t.equal(a.selected.length, 1);
  t.same(Object.keys(a.scores).sort(), ['heart_attack_diagnosed', 'noise_c01']);
  t.ok(Object.values(a.scores).every(Number.isFinite));
  t.equal(fs.readdirSync(path.join(out, 'runs')).length, 0, 'finished candidate runs are removed once their evaluation is stored');
  lines.length = 0;
  const b = await selectFeatures(dir, { ...options, log: (l) => lines.push(l) });
  t.same(b, a, 'a rerun replays the same search from the stored evaluations');
  t.equal(lines.filter((l) => l.startsWith('pretraining')).length, 0, 'and pretrains nothing');
  // Backward from both features evaluates the same two one-feature subsets (replayed from the store):
  // removing one unit leaves the other. Its scores are higher-is-better too: minus the objective
  // without the feature, so each is minus the other feature's forward score, and it keeps what forward picked.
  lines.length = 0;
  const back = await selectFeatures(dir, { ...options, search: { ...options.search, direction: 'backward' as const }, log: (l) => lines.push(l) });
  t.equal(lines.filter((l) => l.startsWith('pretraining')).length, 0, 'backward replays the same evaluations');
  t.same(back.scores, { heart_attack_diagnosed: -a.scores.noise_c01, noise_c01: -a.scores.heart_attack_diagnosed });
  t.same(back.selected, a.selected);

  // The search must not look at the test split: flipping every test label
  // of its task leaves its scores and choice unchanged.
  const flipped = path.join(root, 'cardiac-flipped-test');
  fs.cpSync(dir, flipped, { recursive: true });
  const split = new Map(fs.readFileSync(path.join(dir, 'splits.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',') as [string, string]));
  const [header, ...rows] = fs.readFileSync(path.join(dir, 'labels.csv'), 'utf8').trim().split('\n');
  const col = header.split(',').indexOf('infarction');
  let changed = 0;
  const out2 = rows.map((l) => {
    const cells = l.split(',');
    if (split.get(cells[0]) === 'test' && (cells[col] === '0' || cells[col] === '1')) {
      cells[col] = cells[col] === '0' ? '1' : '0';
      changed++;
    }
    return cells.join(',');
  });
  t.ok(changed > 10, `${changed} test labels flipped`);
  fs.writeFileSync(path.join(flipped, 'labels.csv'), [header, ...out2].join('\n') + '\n');
  const c = await selectFeatures(flipped, { ...options, search: { ...options.search, out: path.join(root, 'search-flipped') } });
  t.same(c.scores, a.scores, 'scores come from the validation split only');
  t.same(c.selected, a.selected);
});

t.test('task relevance refuses a task with one class in the train split instead of ranking by zeros', async (t) => {
  const dir = path.join(root, 'cardiac'); // written by an earlier subtest
  const one = path.join(root, 'cardiac-one-class');
  fs.cpSync(dir, one, { recursive: true });
  const split = new Map(fs.readFileSync(path.join(dir, 'splits.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',') as [string, string]));
  const [header, ...rows] = fs.readFileSync(path.join(dir, 'labels.csv'), 'utf8').trim().split('\n');
  const col = header.split(',').indexOf('infarction');
  const out = rows.map((l) => {
    const cells = l.split(',');
    if (split.get(cells[0]) === 'train' && cells[col] !== '') cells[col] = '0';
    return cells.join(',');
  });
  fs.writeFileSync(path.join(one, 'labels.csv'), [header, ...out].join('\n') + '\n');
  await t.rejects(selectFeatures(one, { method: 'mim', k: 3, tasks: ['infarction'] }), { code: 'ERR_DATA', message: /task "infarction" has a single class in its \d+ labelled train rows/ });
});

t.test('selectFeatures attribution ranks by mean |tabular IG| of a multimodal run\'s image–tabular similarity', async (t) => {
  const dir = path.join(root, 'cardiac'); // written by an earlier subtest
  const cohort = await loadCohort(dir);
  const pretrain = {
    cohort: dir, epochs: 1, batchSize: 64, lr: 1e-3, warmupEpochs: 0, imageSize: 16,
    model: { arch: 'resnet18' as const, smallStem: false, tabularHidden: 32, projectionHidden: 32, projectionDim: 16 },
  };
  const run = path.join(root, 'attr-run');
  const simclr = path.join(root, 'attr-simclr');
  await pretrainCohort({ ...pretrain, out: run, mode: 'multimodal' });
  await pretrainCohort({ ...pretrain, out: simclr, mode: 'simclr', epochs: 1 });

  const opts = { method: 'attribution' as const, run, k: 4, maxRows: 48, steps: 8, seed: 1 };
  const a = await selectFeatures(cohort, opts);
  t.equal(a.method, 'attribution');
  t.equal(a.selected.length, 4);
  t.equal(new Set(a.selected).size, 4);
  const names = cohort.tabular.columns.map((c) => c.name);
  t.same(Object.keys(a.scores).sort(), [...names].sort(), 'a score for every feature');
  t.ok(Object.values(a.scores).every((v) => Number.isFinite(v) && v >= 0), 'scores are mean |attribution| ≥ 0');
  const order = Object.keys(a.scores).sort((x, y) => a.scores[y] - a.scores[x]);
  t.same(a.selected, order.slice(0, 4), 'the top k by score');
  t.same(await selectFeatures(dir, opts), a, 'deterministic (and the cohort may be given by its directory)');

  // Oracle: the same rows (seeded subset of the train split), preprocessed with the run's preprocessor,
  // images resized to the run's imageSize and normalised, IG of the paired-image similarity called directly.
  const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  const prep = Preprocessor.fromJSON(fs.readFileSync(path.join(run, 'preprocessor.json'), 'utf8'));
  const train = trainRows(cohort, 1, 1);
  const u = uniformStream(1);
  const shuffled = [...train];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const rows = shuffled.slice(0, 48).sort((x, y) => x - y);
  const tab = prep.transform(cohort, rows);
  const [, c, h, w] = cohort.images.shape;
  t.equal(cohort.images.dtype, 'uint8');
  const store = fs.readFileSync(cohort.images.path);
  const raw = new Uint8Array(rows.length * c * h * w);
  rows.forEach((r, i) => raw.set(store.subarray(cohort.images.offset + r * c * h * w, cohort.images.offset + (r + 1) * c * h * w), i * c * h * w));
  const img = resizeToFloat({ data: raw, shape: [rows.length, c, h, w] }, 16, 16);
  img.data.forEach((v, i) => {
    const ch = Math.floor(i / 256) % c;
    img.data[i] = (v - config.normalize.mean[ch]) / config.normalize.std[ch];
  });
  const ig = await tabularIntegratedGradients(run, { data: tab.data, shape: tab.shape }, { target: { kind: 'similarity', pairedImages: img }, steps: 8 });
  const F = tab.shape[1];
  let worst = 0;
  prep.columns.forEach((col, j) => {
    const k = tab.names.indexOf(`${col.name}__missing`);
    let s = 0;
    for (let i = 0; i < rows.length; i++) s += Math.abs(ig.attributions[i * F + j] + (k >= 0 ? ig.attributions[i * F + k] : 0));
    worst = Math.max(worst, Math.abs(s / rows.length - a.scores[col.name]));
  });
  t.ok(worst < 1e-9, `scores equal mean |attribution| recomputed directly (max diff ${worst.toExponential(1)})`);
  t.ok(Object.values(a.scores).some((v) => v > 0), 'some feature has a nonzero attribution');

  await t.rejects(selectFeatures(cohort, { method: 'attribution', k: 2 }), { constructor: ConfigError, message: /option run/ });
  await t.rejects(selectFeatures(cohort, { method: 'attribution', k: 2, run: simclr }), { constructor: ConfigError, message: /for run .*simclr run/ });
  await t.rejects(selectFeatures(cohort, { method: 'attribution', k: 2, run: path.join(root, 'nope') }), { constructor: ConfigError, message: /for run/ });
  await t.rejects(selectFeatures(cohort, { method: 'attribution', k: 2, run, features: names.slice(0, 3) }), { constructor: ConfigError, message: /run to be pretrained on the requested features/ });
});

t.test('greedy criteria estimate every term on the rows labelled for the task, and pick constant columns last', async (t) => {
  const { greedySelect } = await import('../lib/features/selectors');
  const { taskRelevance } = await import('../lib/features/relevance');
  const { normalStream } = await import('../lib/features/mi');
  // Half the rows have no label. On labelled rows y depends on x1 + xf with
  // xf independent of x1; on unlabelled rows xf copies x1. Only the labelled
  // rows say anything about y, so every criterion must pick {xf, x1}.
  const z = normalStream(8);
  const n = 1000;
  const x1 = new Float64Array(n), xf = new Float64Array(n), noise = new Float64Array(n), y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const [a, b] = [z(), z()];
    x1[i] = a;
    noise[i] = z();
    const labelled = i % 2 === 0;
    xf[i] = labelled ? b : a + 0.01 * z();
    y[i] = labelled ? (a + b + 0.3 * z() > 0 ? 1 : 0) : NaN;
  }
  const constant = new Float64Array(n).fill(2);
  const data = { names: ['x1', 'xf', 'noise', 'const'], columns: [x1, xf, noise, constant], discrete: [false, false, false, false], rows: Array.from({ length: n }, (_, i) => i) };
  const targets = [{ name: 'y', kind: 'binary' as const, y }];
  const rel = taskRelevance(data, targets, { seed: 0 });
  for (const criterion of ['mrmr', 'mrmr-miq', 'jmi', 'cmim'] as const) {
    const r = greedySelect(data, targets, rel.perTask, criterion, 2, { seed: 0 });
    t.same(r.selected.map((j) => data.names[j]).sort(), ['x1', 'xf'], `${criterion}: the label's two causes (unlabelled rows used to hide x1)`);
    const all = greedySelect(data, targets, rel.perTask, criterion, 4, { seed: 0 });
    t.equal(data.names[all.selected[3]], 'const', `${criterion}: the constant column comes last`);
  }
});

t.test('cluster with k equal to the usable columns keeps every column, exact monotone copies included', async (t) => {
  const { clusterSelection } = await import('../lib/features/selectors');
  const u = uniformStream(4);
  const a = Float64Array.from({ length: 200 }, () => 1 + u());
  const cols = [a, a.map(Math.log), Float64Array.from({ length: 200 }, () => u()), Float64Array.from({ length: 200 }, () => u())];
  const data = { names: ['a', 'log_a', 'b', 'c'], columns: cols, discrete: [false, false, false, false], rows: [] as number[] };
  t.equal(clusterSelection(data, 4, 1, 'ward').selected.length, 4, 'k = 4: four clusters (a and log a are |ρ| = 1 apart, height 0)');
  t.same(clusterSelection(data, 3, 1, 'ward').selected.length, 3);
});

t.test('ridge leave-one-out errors in closed form equal refitting without each row (intercept included)', async (t) => {
  const { ridgeLooFits, ridgeLooPress } = await import('../lib/features/relevance');
  const z = normals(9);
  const n = 30;
  const q = 4;
  const X = Array.from({ length: n }, () => Float64Array.from({ length: q }, () => z()));
  const y = Float64Array.from(X, (x) => 2 + x[0] - 0.5 * x[2] + 0.3 * z());
  const mu = Array.from({ length: q }, (_, a) => X.reduce((s, x) => s + x[a], 0) / n);
  const Xt = X.map((x) => Float64Array.from(x, (v, a) => v - mu[a]));
  // Oracle: fit intercept and slopes on the other n − 1 rows (their own means), by Gaussian elimination.
  const solve = (A: number[][], b: number[]) => {
    const m = b.length;
    const M = A.map((r, i) => [...r, b[i]]);
    for (let c = 0; c < m; c++) {
      const p = M.reduce((best, r, i) => (i >= c && Math.abs(r[c]) > Math.abs(M[best][c]) ? i : best), c);
      [M[c], M[p]] = [M[p], M[c]];
      for (let i = 0; i < m; i++) if (i !== c) { const f = M[i][c] / M[c][c]; for (let j = c; j <= m; j++) M[i][j] -= f * M[c][j]; }
    }
    return M.map((r, i) => r[m] / r[i]);
  };
  const fits = ridgeLooFits(Xt, [-2, 0, 1]);
  for (const fit of fits) {
    let press = 0;
    for (let i = 0; i < n; i++) {
      const rows = X.filter((_, r) => r !== i);
      const ys = Array.from(y).filter((_, r) => r !== i);
      const m = Array.from({ length: q }, (_, a) => rows.reduce((s, x) => s + x[a], 0) / rows.length);
      const ym = ys.reduce((s, v) => s + v, 0) / ys.length;
      const A = Array.from({ length: q }, (_, a) => Array.from({ length: q }, (_, b) => rows.reduce((s, x) => s + (x[a] - m[a]) * (x[b] - m[b]), 0) + (a === b ? fit.lambda : 0)));
      const b = Array.from({ length: q }, (_, a) => rows.reduce((s, x, r) => s + (x[a] - m[a]) * (ys[r] - ym), 0));
      const beta = solve(A, b);
      const pred = ym + beta.reduce((s, v, a) => s + v * (X[i][a] - m[a]), 0);
      press += (y[i] - pred) ** 2;
    }
    const got = ridgeLooPress(Xt, fit, y).press;
    t.ok(Math.abs(got - press) <= 1e-9 * press, `λ = ${fit.lambda.toFixed(3)}: closed form ${got}, refits ${press}`);
  }
});
