import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCohort, type Cohort, type CohortTask } from '../lib/data/cohort';
import { encodeLabels, fitPreprocessor, Preprocessor } from '../lib/data/preprocess';
import { encodeColumn } from '../lib/data/tabular-columns';
import { writeNpy } from '../lib/data/npy';
import { ConfigError, DataError } from '../lib/errors';
import { rejection, tmpDir } from './fixtures/readers/oracle';

type Col = { name: string; type: 'continuous' | 'categorical'; cells: string[] };

/** An in-memory cohort: rows 0–4 train, 5 val, 6–7 test; cells stored as loadCohort stores them. */
function cohortOf(cols: Col[], tasks: (CohortTask & { cells: string[] })[] = []): Cohort {
  const n = cols[0].cells.length;
  const encoded = cols.map((c) => encodeColumn(c.cells, c.type, '/cohort/tabular.csv', c.name));
  return {
    dir: '/cohort',
    name: 'mem',
    ids: Array.from({ length: n }, (_, i) => `S${i}`),
    images: { kind: 'npy', path: '/cohort/images.npy', offset: 128, dtype: 'float32', shape: [n, 1, 2, 2], source: 'npy' },
    tabular: {
      file: '/cohort/tabular.csv',
      columns: cols.map((c, j) => (c.type === 'continuous' ? { name: c.name, type: c.type } : { name: c.name, type: c.type, categories: encoded[j].categories })),
      data: encoded.map((e) => e.data),
      rowNumbers: Array.from({ length: n }, (_, i) => i + 2),
    },
    labels: { file: '/cohort/labels.csv', tasks: tasks.map(({ cells: _, ...task }) => task), values: Object.fromEntries(tasks.map((x) => [x.name, x.cells])) },
    splits: { train: [0, 1, 2, 3, 4], val: [5], test: [6, 7], source: 'csv' },
  };
}

const base = (): Col[] => [
  { name: 'age', type: 'continuous', cells: ['1', '2', '3', '4', '', '10', '20', '30'] },
  { name: 'const', type: 'continuous', cells: ['5', '5', '5', '5', '5', '7', '8', '9'] },
  { name: 'sex', type: 'categorical', cells: ['M', 'F', 'M', 'NA', 'M', 'F', 'F', 'F'] },
  { name: 'bmi', type: 'continuous', cells: ['20', '22', '24', '26', '28', '30', '', '32'] },
];

const close = (t: Test, got: ArrayLike<number>, want: number[], msg: string) => {
  t.equal(got.length, want.length, `${msg}: length`);
  t.ok(Array.from(got).every((g, k) => Math.abs(g - want[k]) < 1e-6), msg, { got: Array.from(got), want });
};

t.test('fitPreprocessor z-scores, codes and imputes from the training rows only', async (t) => {
  const p = fitPreprocessor(cohortOf(base()));
  const s = Math.sqrt(1.25); // age over [1, 2, 3, 4]: mean 2.5, population std √1.25, median 2.5
  const b = Math.sqrt(8); // bmi over [20 … 28]: mean 24, std √8
  t.same(p.names, ['age', 'const', 'sex', 'bmi', 'age__missing', 'sex__missing'], 'indicators only for columns missing in train');
  t.same(p.cardinalities, [0, 0, 2, 0, 0, 0]);
  t.same(p.toJSON().columns, [
    { name: 'age', type: 'continuous', mean: 2.5, std: s, median: 2.5 },
    { name: 'const', type: 'continuous', mean: 5, std: 1, median: 5 },
    { name: 'sex', type: 'categorical', categories: ['F', 'M'], mode: 'M' },
    { name: 'bmi', type: 'continuous', mean: 24, std: b, median: 24 },
  ]);
  const m = p.marginals!;
  t.same(m.shape, [5, 6]);
  const row = (i: number) => Array.from(m.data.subarray(i * 6, i * 6 + 6));
  close(t, row(0), [-1.5 / s, 0, 1, -4 / b, 0, 0], 'row 0');
  close(t, row(3), [1.5 / s, 0, 1, 2 / b, 0, 1], 'row 3: missing sex → mode M, indicator 1');
  close(t, row(4), [0, 0, 1, 4 / b, 1, 0], 'row 4: missing age → median, indicator 1');
  const test = p.transform(cohortOf(base()), [5, 6]);
  close(t, test.data, [7.5 / s, 2, 0, 6 / b, 0, 0, 17.5 / s, 3, 0, 0, 0, 0], 'val/test rows use the train statistics; missing bmi → median');
  t.same(test.warnings, []);
});

t.test('fitPreprocessor does not leak: val/test values change nothing fitted', async (t) => {
  const a = fitPreprocessor(cohortOf(base()));
  const cols = base();
  for (const c of cols) for (const r of [5, 6, 7]) c.cells[r] = '';
  cols[0].cells[5] = '1000';
  cols[2].cells[6] = 'X';
  cols[2].cells[7] = 'Y';
  cols[1].cells[7] = '-3';
  const b = fitPreprocessor(cohortOf(cols));
  t.same(b.toJSON(), a.toJSON(), 'same scaler, codes, imputation values and indicators');
  t.same(Buffer.from(b.marginals!.data.buffer), Buffer.from(a.marginals!.data.buffer), 'same marginals');
  t.same(b.marginals!.names, a.marginals!.names);
});

t.test('Preprocessor#transform codes unseen categories −1 with a warning naming column and count', async (t) => {
  const cols = base();
  cols[2].cells[6] = 'X';
  cols[2].cells[7] = 'X';
  const c = cohortOf(cols);
  const p = fitPreprocessor(c);
  const r = p.transform(c, [5, 6, 7]);
  t.same([r.data[2], r.data[6 + 2], r.data[12 + 2]], [0, -1, -1]);
  t.equal(r.warnings.length, 1);
  t.match(r.warnings[0], /column "sex": 2 value\(s\) unseen in training \("X"\) coded −1/);
});

t.test('Preprocessor toJSON / fromJSON round-trips exactly', async (t) => {
  const c = cohortOf(base());
  const p = fitPreprocessor(c);
  const text = JSON.stringify(p);
  for (const q of [Preprocessor.fromJSON(JSON.parse(text)), Preprocessor.fromJSON(text)]) {
    const rows = [0, 1, 2, 3, 4, 5, 6, 7];
    t.same(Buffer.from(q.transform(c, rows).data.buffer), Buffer.from(p.transform(c, rows).data.buffer), 'bit-identical transform');
    t.same(q.names, p.names);
    t.same(q.cardinalities, p.cardinalities);
  }
  const bad = (edit: (j: any) => void, parts: string[]) => {
    const j = JSON.parse(text);
    edit(j);
    let err: Error & { code?: string } = new Error('no error');
    try {
      Preprocessor.fromJSON(j);
    } catch (e) {
      err = e as Error & { code?: string };
    }
    t.type(err, ConfigError);
    t.equal(err.code, 'ERR_CONFIG');
    for (const part of parts) t.ok(err.message.includes(part), `names ${part}`, { message: err.message });
  };
  bad((j) => (j.columns[0].std = 0), ['columns[0].std', '> 0']);
  bad((j) => (j.columns[2].mode = 'Z'), ['columns[2].mode']);
  bad((j) => (j.columns[1].extra = 1), ['columns[1]']);
  bad((j) => (j.indicators = ['nope']), ['indicators']);
  bad((j) => (j.format = 'other'), ['format']);
});

t.test('fitPreprocessor options: missingIndicators false, features subset, bad features', async (t) => {
  const c = cohortOf(base());
  t.same(fitPreprocessor(c, { missingIndicators: false }).names, ['age', 'const', 'sex', 'bmi']);
  const p = fitPreprocessor(c, { features: ['sex', 'age'] });
  t.same(p.names, ['sex', 'age', 'sex__missing', 'age__missing']);
  t.same(p.marginals!.shape, [5, 4]);
  let err = await rejection(Promise.resolve().then(() => fitPreprocessor(c, { features: ['age', 'weight'] })));
  t.type(err, DataError);
  t.equal(err.code, 'ERR_DATA');
  t.match(err.message, /tabular\.csv: unknown feature\(s\) requested: "weight"/);
  err = await rejection(Promise.resolve().then(() => fitPreprocessor(c, { features: 'age' } as never)));
  t.type(err, ConfigError);
});

t.test('fitPreprocessor rejects a column with no training value, naming file and column', async (t) => {
  const cols = base();
  for (let r = 0; r < 5; r++) cols[3].cells[r] = 'NA';
  const err = await rejection(Promise.resolve().then(() => fitPreprocessor(cohortOf(cols))));
  t.type(err, DataError);
  t.equal(err.code, 'ERR_DATA');
  t.match(err.message, /tabular\.csv: column "bmi" has no value in the 5 training rows/);
});

t.test('Preprocessor#transform names file, row and column of a bad cell, and a missing column', async (t) => {
  const p = fitPreprocessor(cohortOf(base()));
  // Another cohort, where age holds a text and so is categorical.
  const cols = base();
  cols[0].cells[6] = 'abc';
  cols[0].type = 'categorical';
  let err = await rejection(Promise.resolve().then(() => p.transform(cohortOf(cols), [5, 6])));
  t.type(err, DataError);
  t.equal(err.code, 'ERR_DATA');
  t.match(err.message, /tabular\.csv: row 8, column "age" has "abc"/);
  err = await rejection(Promise.resolve().then(() => p.transform(cohortOf(base().filter((c) => c.name !== 'bmi')), [0])));
  t.type(err, DataError);
  t.match(err.message, /tabular\.csv has no column "bmi"/);
  err = await rejection(Promise.resolve().then(() => p.transform(cohortOf(base()), [8])));
  t.type(err, ConfigError);
});

t.test('Preprocessor#transform converts a column stored with the other type (another cohort)', async (t) => {
  const p = fitPreprocessor(cohortOf(base()));
  const all = [0, 1, 2, 3, 4, 5, 6, 7];
  const want = p.transform(cohortOf(base()), all).data;
  // age, const and bmi stored as categories (numbers as text).
  const asCategories = base().map((c) => (c.name === 'sex' ? c : { ...c, type: 'categorical' as const }));
  t.same(Array.from(p.transform(cohortOf(asCategories), all).data), Array.from(want), 'categories parsed as numbers give the same values');

  const coded = (cells: string[], type: 'continuous' | 'categorical'): Col[] => [{ name: 'smoke', type, cells }];
  const q = fitPreprocessor(cohortOf(coded(['0', '1', '2', '1', '', '0', '1', '2'], 'categorical')), { missingIndicators: false });
  t.same(q.toJSON().columns, [{ name: 'smoke', type: 'categorical', categories: ['0', '1', '2'], mode: '1' }]);
  const r = q.transform(cohortOf(coded(['0', '1.0', '2e0', 'NA', '1', '3', '0.5', '3'], 'continuous')), all);
  t.same(Array.from(r.data), [0, 1, 2, 1, 1, -1, -1, -1], 'numbers matched to categories by value; missing → mode');
  t.same(r.warnings, ['column "smoke": 3 value(s) unseen in training ("3", "0.5") coded −1 (all-zero one-hot)']);
});

t.test('encodeLabels gives class indices or values, with missing labels marked', async (t) => {
  const c = cohortOf(base(), [
    { name: 'mi', type: 'binary', classes: ['0', '1'], cells: ['0', '1', '', '1', '0', 'NA', '0', '1'] },
    { name: 'nyha', type: 'multiclass', classes: ['I', 'II', 'III'], cells: ['III', 'I', 'II', 'I', 'NaN', 'II', 'III', 'I'] },
    { name: 'lvef', type: 'regression', cells: ['55.5', '60', 'NA', '40', '50', '', '45', '70'] },
  ]);
  const mi = encodeLabels(c, 'mi');
  t.type(mi, Int32Array);
  t.same(Array.from(mi), [0, 1, -1, 1, 0, -1, 0, 1]);
  t.same(Array.from(encodeLabels(c, 'nyha')), [2, 0, 1, 0, -1, 1, 2, 0]);
  const lvef = encodeLabels(c, 'lvef');
  t.type(lvef, Float64Array);
  t.same(Array.from(lvef, (v) => (Number.isNaN(v) ? 'NaN' : v)), [55.5, 60, 'NaN', 40, 50, 'NaN', 45, 70]);
  const err = await rejection(Promise.resolve().then(() => encodeLabels(c, 'cad')));
  t.type(err, ConfigError);
  t.match(err.message, /Unknown task "cad"; the cohort's tasks are mi, nyha, lvef/);
});

t.test('fitPreprocessor works on a cohort loaded from disk with a seeded split', async (t) => {
  const dir = tmpDir(t);
  const n = 30;
  const ids = Array.from({ length: n }, (_, i) => `P${i}`);
  const w = (name: string, text: string) => fs.writeFileSync(path.join(dir, name), text);
  w('cohort.yaml', 'version: 1\nimages: { npy: x.npy, ids: ids.csv }\ntabular: { csv: tab.csv }\nlabels: { csv: lab.csv, tasks: { cad: binary } }\nsplits: { seed: 1, stratify: cad }\n');
  w('ids.csv', ['id', ...ids].join('\n'));
  w('tab.csv', ['id,sbp,diabetic,site', ...ids.map((id, i) => `${id},${110 + ((i * 7) % 40)},${i % 3 === 0 ? 1 : 0},${['a', 'b', 'c'][i % 3]}`)].join('\n'));
  w('lab.csv', ['id,cad', ...ids.map((id, i) => `${id},${i % 4 === 0 ? 'yes' : 'no'}`)].join('\n'));
  await writeNpy(path.join(dir, 'x.npy'), new Uint8Array(n * 4), [n, 1, 2, 2]);
  const c = await loadCohort(dir);
  t.same(c.tabular.columns.map((x) => x.type), ['continuous', 'categorical', 'categorical']);
  const p = fitPreprocessor(c);
  t.same(p.cardinalities, [0, 2, 3]);
  t.same(p.marginals!.shape, [c.splits.train.length, 3]);
  const cad = encodeLabels(c, 'cad');
  t.same(c.labels.tasks[0].classes, ['no', 'yes']);
  t.equal(cad.filter((v) => v === 1).length, 8);
});
