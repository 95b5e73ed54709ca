import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCohort, type Cohort } from '../lib/data/cohort';
import { readCsv } from '../lib/data/csv';
import { writeNpy } from '../lib/data/npy';
import { compareValues, encodeColumn, inferCohortColumnType } from '../lib/data/tabular-columns';
import { DataError } from '../lib/errors';
import { uniformStream } from '../lib/rng';
import { rejection, tmpDir } from './fixtures/readers/oracle';

/** A cohort of `ids` with this tabular CSV text; images are 1×1×1 uint8. */
async function cohortWith(t: Test, ids: string[], tabular: string, yamlExtra = ''): Promise<string> {
  const dir = tmpDir(t);
  const w = (name: string, text: string) => fs.writeFileSync(path.join(dir, name), text);
  w('cohort.yaml', `version: 1\nimages: { npy: x.npy, ids: ids.csv }\ntabular:\n  csv: tab.csv\n${yamlExtra}splits: { seed: 0 }\n`);
  w('ids.csv', ['id', ...ids].join('\n') + '\n');
  w('tab.csv', tabular);
  await writeNpy(path.join(dir, 'x.npy'), new Uint8Array(ids.length), [ids.length, 1, 1, 1]);
  return dir;
}

/**
 * What loadCohort stored before the compact columns: every cell as a string
 * (readCsv), joined in image-id order, typed with inferCohortColumnType and
 * encoded with encodeColumn. The streaming path must give exactly this.
 */
async function viaStrings(c: Cohort, maxCategories = 10, types: Record<string, 'continuous' | 'categorical'> = {}) {
  const table = await readCsv(c.tabular.file);
  const at = new Map(table.ids.map((id, k) => [id, k]));
  return c.tabular.columns.map(({ name }) => {
    const j = table.columns.indexOf(name);
    const cells = c.ids.map((id) => table.rows[at.get(id)!][j]);
    const type = types[name] ?? inferCohortColumnType(cells, maxCategories);
    return { name, type, ...encodeColumn(cells, type, c.tabular.file, name) };
  });
}

const asPlain = (cols: { name: string; type: string; categories?: string[]; data: ArrayLike<number> }[]) =>
  cols.map((c) => ({ name: c.name, type: c.type, categories: c.categories, data: Array.from(c.data, (v) => (Number.isNaN(v) ? 'NaN' : v)) }));
const stored = (c: Cohort) => c.tabular.columns.map((col, j) => ({ ...col, data: c.tabular.data[j] }));

t.test('loadCohort stores compact columns equal to parsing every cell as a string', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  // Rows in another order than the ids; quoted cells, a quoted comma and
  // newline, missing markers, exponents, signs, leading-dot numbers.
  const tab = [
    'id,age,weight,site,smoke,note,code',
    'h,1e2,70,"Leeds, UK",0,"two\nlines",1',
    'a,42,+1.5E1,Leeds,1,x,2',
    'b,NA,.5,"Bristol",2,,3',
    'c,  43 ,72,Bristol,NaN,"y",1',
    'd,4.4e1,n/a,NA,1,z,2',
    '',
    'e,45,-7e-1,Leeds,0,"",3',
    'f,46,"80",Cardiff,1,x,1',
    'g,,81,Leeds,2,x,2',
  ].join('\n') + '\n';
  const c = await loadCohort(await cohortWith(t, ids, tab));
  t.same(c.tabular.columns.map((x) => [x.name, x.type]), [
    ['age', 'continuous'], ['weight', 'continuous'], ['site', 'categorical'], ['smoke', 'categorical'], ['note', 'categorical'], ['code', 'categorical'],
  ]);
  const data = (name: string) => Array.from(c.tabular.data[c.tabular.columns.findIndex((x) => x.name === name)], (v) => (Number.isNaN(v) ? 'NaN' : v));
  t.same(data('age'), [42, 'NaN', 43, 44, 45, 46, 'NaN', 100], 'numbers in image-id order, exponents parsed, missing → NaN');
  t.same(data('weight'), [15, 0.5, 72, 'NaN', -0.7, 80, 81, 70]);
  const cats = (name: string) => c.tabular.columns.find((x) => x.name === name)!.categories;
  t.same(cats('site'), ['Bristol', 'Cardiff', 'Leeds', 'Leeds, UK'], 'quoted text kept without its quotes, sorted');
  t.same(data('site'), [2, 0, 0, -1, 2, 1, 2, 3], 'indices into the categories, −1 missing');
  t.same(cats('smoke'), ['0', '1', '2'], 'integer codes with few values are categorical, sorted as numbers');
  t.same(data('smoke'), [1, 2, -1, 1, 0, 1, 2, 0]);
  t.same(cats('note'), ['two\nlines', 'x', 'y', 'z']);
  t.same(data('note'), [1, -1, 2, 3, -1, 1, 1, 0]);
  t.same(asPlain(stored(c)), asPlain(await viaStrings(c)), 'same as the string path, column by column');
});

t.test('compact columns follow inference edge cases exactly (the 90% guard, declared types, many numbers)', async (t) => {
  const n = 120;
  const ids = Array.from({ length: n }, (_, i) => `S${String(i).padStart(3, '0')}`);
  const rows = ids.map((id, i) =>
    [
      id,
      i === 7 ? 'fifty' : String(20 + (i % 50)), // continuous with one stray text: the guard keeps it continuous (error)
      i % 5 === 0 ? 'unknown' : String(1000 + i * 3), // 20% text: categorical with > 64 distinct numbers (re-read path)
      i % 2 ? '1.0' : '1', // two spellings of 1: distinct texts, one value (binary → categorical)
      String(i % 4), // declared continuous below
      i % 3 ? 'NA' : String((i % 7) * 0.5), // mostly missing, non-integers
      i % 2 ? '2' : '10', // sorted numerically: "2" before "10"
    ].join(','),
  );
  const text = ['id,age,income,one,grade,frac,num', ...rows.reverse()].join('\n') + '\n';
  const bad = await cohortWith(t, ids, text);
  const err = await rejection(loadCohort(bad));
  t.type(err, DataError);
  t.equal(err.message, `${path.join(bad, 'tab.csv')}: row ${n - 7 + 1}, column "age" has "fifty", which is not a number`);

  const types = { grade: 'continuous' as const };
  const ok = await cohortWith(t, ids, text, '  types: { grade: continuous }\n');
  const c = await loadCohort(ok, { features: ['income', 'one', 'grade', 'frac', 'num'] });
  t.same(c.tabular.columns.map((x) => [x.name, x.type]), [['income', 'categorical'], ['one', 'categorical'], ['grade', 'continuous'], ['frac', 'continuous'], ['num', 'categorical']]);
  t.equal(c.tabular.columns[0].categories!.length, n - n / 5 + 1, 'every distinct number of income, and "unknown", are categories');
  t.equal(c.tabular.columns[0].categories!.at(-1), 'unknown', 'text sorts after numbers');
  t.same(c.tabular.columns[1].categories, ['1', '1.0']);
  t.same(c.tabular.columns[4].categories, ['2', '10']);
  t.same(asPlain(stored(c)), asPlain(await viaStrings(c, 10, types)), 'same as the string path');
  const wide = await loadCohort(await cohortWith(t, ids, text, '  maxCategories: 200\n'), { features: ['income', 'frac'] });
  t.same(asPlain(stored(wide)), asPlain(await viaStrings(wide, 200)), 'with maxCategories 200 too');
});

t.test('compact columns equal the string path on random cohorts (seeded)', async (t) => {
  const rand = uniformStream(7);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const pools = [
    ['', 'NA', 'nan', 'N/A', '0', '1', '1.0', '01', '-0', '2', '10', '+3', '.5', '5.', '1e2', '1E-2', '\u00a07', '7'],
    ['x', 'y', 'Z', '"a,b"', '"q ""r"""', 'NA', '', '1', '2', '1e999'],
    ['0', '1', '2', '3', '', 'NA'],
  ];
  const seen = { errors: 0, categorical: 0, continuous: 0 };
  const numbers = () => (rand() < 0.5 ? String(Math.floor(rand() * 400) - 50) : (rand() * 100 - 20).toFixed(Math.floor(rand() * 4)));
  for (let trial = 0; trial < 24; trial++) {
    const n = 20 + Math.floor(rand() * 120);
    const ids = Array.from({ length: n }, (_, i) => `P${i}`);
    const width = 2 + Math.floor(rand() * 5);
    // Per column: a pool mixed with numbers (0–2), numbers only (3), numbers with a rare stray cell (4).
    const kinds = Array.from({ length: width }, () => Math.floor(rand() * 5));
    const cell = (kind: number) =>
      kind < 3 ? (rand() < 0.7 ? pick(pools[kind]) : numbers()) : kind === 3 ? numbers() : rand() < 0.97 ? numbers() : pick(['x', '', 'NA']);
    const order = ids.map((_, i) => i).sort(() => rand() - 0.5);
    const header = ['id', ...kinds.map((_, j) => `c${j}`)].join(',');
    const text = [header, ...order.map((i) => [ids[i], ...kinds.map(cell)].join(','))].join('\n') + '\n';
    const maxCategories = pick([2, 3, 10, 80]);
    const types: Record<string, 'continuous' | 'categorical'> = {};
    kinds.forEach((_, j) => rand() < 0.2 && (types[`c${j}`] = pick(['continuous', 'categorical'] as const)));
    const typesYaml = Object.keys(types).length ? `  types: { ${Object.entries(types).map(([k, v]) => `${k}: ${v}`).join(', ')} }\n` : '';
    const dir = await cohortWith(t, ids, text, `  maxCategories: ${maxCategories}\n${typesYaml}`);
    let got: unknown;
    let want: unknown;
    try {
      got = asPlain(stored(await loadCohort(dir)));
    } catch (err) {
      got = (err as Error).message;
    }
    // The string path, column by column; the first column error is the cohort's error.
    const file = path.join(dir, 'tab.csv');
    const table = await readCsv(file);
    const at = new Map(table.ids.map((id, k) => [id, k]));
    try {
      want = asPlain(
        table.columns.slice(1).map((name, j) => {
          const cells = ids.map((id) => table.rows[at.get(id)!][j + 1]);
          const rows = ids.map((id) => table.rowNumbers[at.get(id)!]);
          const type = types[name] ?? inferCohortColumnType(cells, maxCategories);
          return { name, type, ...encodeColumn(cells, type, file, name, rows) };
        }),
      );
    } catch (err) {
      want = (err as Error).message;
    }
    if (typeof want === 'string') seen.errors++;
    else for (const c of want as { type: 'continuous' | 'categorical' }[]) seen[c.type]++;
    t.same(got, want, `trial ${trial}: n ${n}, kinds ${kinds.join('')}, maxCategories ${maxCategories}, types ${JSON.stringify(types)}`);
  }
  t.ok(seen.errors >= 3 && seen.errors <= 21 && seen.categorical >= 10 && seen.continuous >= 10, 'the trials mix errors, categorical and continuous columns', seen);
});

t.test('encodeColumn names file, row and column of a non-number; compareValues orders numbers first', async (t) => {
  const err = await rejection(Promise.resolve().then(() => encodeColumn(['1', 'Infinity'], 'continuous', 'f.csv', 'age', [5, 9])));
  t.type(err, DataError);
  t.equal(err.message, 'f.csv: row 9, column "age" has "Infinity", which is not a number');
  t.same(['b', '10', 'a', '2', '-1', '1.5'].sort(compareValues), ['-1', '1.5', '2', '10', 'a', 'b']);
});
