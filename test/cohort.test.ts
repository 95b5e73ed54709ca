import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import sharp from 'sharp';
import { loadCohort, loadTruth, type Cohort } from '../lib/data/cohort';
import { resizeBilinear } from '../lib/data/cohort-images';
import { seededSplit } from '../lib/data/cohort-splits';
import { summarizeCohort, formatSummary } from '../lib/data/validate-cohort';
import { encodeLabels } from '../lib/data/preprocess';
import { readNpy, readNpyHeader, writeNpy } from '../lib/data/npy';
import { readNifti } from '../lib/data/nifti';
import { readPng } from '../lib/data/png';
import { readDicom } from '../lib/data/dicom';
import { ConfigError, DataError } from '../lib/errors';
import { FIXTURES, rejection, tmpDir } from './fixtures/readers/oracle';

type Files = Record<string, string | Buffer | null>;
const N = 20;
const id = (i: number) => `S${String(i).padStart(3, '0')}`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const csv = (header: string, rows: string[]) => [header, ...rows].join('\n') + '\n';

const YAML = `version: 1
name: tiny
images:
  npy: images.npy
  ids: image_ids.csv
tabular:
  csv: tabular.csv
  types: { smoking: categorical }
  exclude: [notes]
labels:
  csv: labels.csv
  tasks: { infarction: binary, lvef: regression, nyha: multiclass }
splits:
  csv: splits.csv
truth: truth.json
`;

function baseFiles(): Files {
  return {
    'cohort.yaml': YAML,
    'image_ids.csv': csv('id', range(N).map(id)),
    // Reverse order: rows are joined on id, not position.
    'tabular.csv': csv(
      'id,age,sex,bmi,smoking,notes',
      range(N).reverse().map((i) => `${id(i)},${40 + i},${i % 2 ? 'F' : 'M'},${i % 5 === 0 ? '' : 20 + i / 2},${i % 3},n${i}`),
    ),
    'labels.csv': csv(
      'id,infarction,lvef,nyha',
      range(N).map((i) => `${id(i)},${i % 4 === 0 ? 1 : 0},${i === 3 ? 'NA' : 50 + i},${i === 7 ? '' : (i % 3) + 1}`),
    ),
    'splits.csv': csv('id,split', range(N).map((i) => `${id(i)},${i < 12 ? 'train' : i < 16 ? 'val' : 'test'}`)),
    'truth.json': '{"informative": ["age"]}',
  };
}

const imageData = (n = N) => Float32Array.from(range(n * 16), (k) => k / 16);

/** Writes a cohort; `edit` changes the files first (null removes one). images.npy is written unless given. */
async function makeCohort(t: Test, edit?: (f: Files) => void, images?: { data: Float32Array | Uint8Array | Int32Array; shape: number[] }): Promise<string> {
  const dir = tmpDir(t);
  const files = baseFiles();
  edit?.(files);
  for (const [name, body] of Object.entries(files)) {
    if (body !== null) fs.writeFileSync(path.join(dir, name), body);
  }
  if (!('images.npy' in files)) {
    const im = images ?? { data: imageData(), shape: [N, 1, 4, 4] };
    await writeNpy(path.join(dir, 'images.npy'), im.data, im.shape);
  }
  return dir;
}

async function fails(t: Test, p: Promise<unknown>, parts: string[], Cls: typeof DataError | typeof ConfigError = DataError): Promise<string> {
  const err = await rejection(p);
  t.type(err, Cls, `${Cls.name}: ${err.message}`);
  t.equal(err.code, Cls === DataError ? 'ERR_DATA' : 'ERR_CONFIG');
  for (const part of parts) t.ok(err.message.includes(part), `message names ${part}`, { message: err.message });
  return err.message;
}

t.test('loadCohort joins a valid NPY cohort on id, in image order', async (t) => {
  const dir = await makeCohort(t);
  const c = await loadCohort(dir);
  t.equal(c.name, 'tiny');
  t.same(c.ids, range(N).map(id));
  t.same(c.tabular.columns.map((x) => [x.name, x.type]), [['age', 'continuous'], ['sex', 'categorical'], ['bmi', 'continuous'], ['smoking', 'categorical']]);
  t.same(c.tabular.columns[1].categories, ['F', 'M']);
  t.same(c.tabular.columns[3].categories, ['0', '1', '2']);
  t.equal(c.tabular.data[0][3], 43, 'row 3 is S003 although tabular.csv is reversed');
  t.equal(c.tabular.rowNumbers[3], N - 3 + 1);
  t.type(c.tabular.data[0], Float64Array, 'a continuous column is a Float64Array');
  t.ok(Number.isNaN(c.tabular.data[2][5]), 'missing bmi is NaN');
  t.type(c.tabular.data[1], Int32Array, 'a categorical column is an Int32Array of category indices');
  t.same(Array.from(c.tabular.data[1].subarray(0, 3)), [1, 0, 1], 'S000 M, S001 F, S002 M');
  t.same(Array.from(c.tabular.data[3].subarray(0, 4)), [0, 1, 2, 0], 'smoking i % 3');
  t.same(c.labels.tasks, [
    { name: 'infarction', type: 'binary', classes: ['0', '1'] },
    { name: 'lvef', type: 'regression' },
    { name: 'nyha', type: 'multiclass', classes: ['1', '2', '3'] },
  ]);
  t.same(c.splits, { train: range(12), val: [12, 13, 14, 15], test: [16, 17, 18, 19], source: 'csv' });
  t.equal(c.truthFile, path.join(dir, 'truth.json'));
  t.same(await loadTruth(c), { informative: ['age'] }, 'loadTruth reads the truth file');
  const h = await readNpyHeader(path.join(dir, 'images.npy'));
  t.same(c.images, { kind: 'npy', path: path.join(dir, 'images.npy'), offset: h.dataOffset, dtype: 'float32', shape: [N, 1, 4, 4], source: 'npy' });
});

t.test('loadCohort features keeps the requested columns in order and names unknown ones', async (t) => {
  const dir = await makeCohort(t);
  const c = await loadCohort(dir, { features: ['smoking', 'age'] });
  t.same(c.tabular.columns.map((x) => x.name), ['smoking', 'age']);
  t.same(Array.from(c.tabular.data[1].subarray(0, 2)), [40, 41]);
  t.same(c.tabular.columns[0].categories, ['0', '1', '2']);
  await fails(t, loadCohort(dir, { features: ['age', 'weight', 'notes'] }), ['tabular.csv', '"weight"', '"notes" (excluded by tabular.exclude)']);
});

t.test('loadCohort rejects a bad cohort.yaml with ConfigError naming the file and field path', async (t) => {
  const unknownKey = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('ids: image_ids.csv', 'ids: image_ids.csv\n  idz: x')));
  await fails(t, loadCohort(unknownKey), ['cohort.yaml line 6', 'images.idz', 'unknown key'], ConfigError);
  const badTask = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('lvef: regression', 'lvef: regresion')));
  await fails(t, loadCohort(badTask), ['cohort.yaml', 'labels.tasks.lvef', '"regresion"'], ConfigError);
  const strat = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('csv: splits.csv', 'stratify: lvef')));
  await fails(t, loadCohort(strat), ['splits.stratify', 'regression'], ConfigError);
  const noCol = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('exclude: [notes]', 'exclude: [note]')));
  await fails(t, loadCohort(noCol), ['cohort.yaml', 'tabular.exclude[0]', 'tabular.csv', '"note"'], ConfigError);
  await fails(t, loadCohort(tmpDir(t)), ['cohort.yaml', 'no such file']);
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['labels.csv'] = f['labels.csv']!.toString().replace('nyha', 'nyha_class')))), [
    'labels.csv',
    'column "nyha"',
    'labels.tasks.nyha',
  ]);
});

t.test('loadCohort names the file that lacks an id, and the id', async (t) => {
  const drop = (text: string, i: number) => text.split('\n').filter((l) => !l.startsWith(id(i) + ',')).join('\n');
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['tabular.csv'] = drop(f['tabular.csv'] as string, 5)))), [
    'tabular.csv has no row for id "S005"',
    'id column "id"',
    'image_ids.csv has on row 7',
  ]);
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['labels.csv'] = drop(f['labels.csv'] as string, 0)))), ['labels.csv has no row for id "S000"']);
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['splits.csv'] = drop(f['splits.csv'] as string, 19)))), ['splits.csv has no row for id "S019"']);
  const extra = await makeCohort(t, (f) => (f['tabular.csv'] = (f['tabular.csv'] as string) + 'S999,50,M,22,1,n\n'));
  await fails(t, loadCohort(extra), ['image_ids.csv has no image for id "S999"', 'tabular.csv has on row 22', 'id column "id"']);
});

t.test('biobank-style joins: unmatchedRows: ignore skips subjects without an image; labels.missingRows: unlabelled; images.id; mixed line endings', async (t) => {
  const base = await loadCohort(await makeCohort(t));
  // Extra subjects (no image) in every CSV, e.g. a 500k-participant extract against 40k imaged.
  const more = (text: string, rows: string[]) => text + rows.join('\n') + '\n';
  const extra = (f: Files) => {
    f['tabular.csv'] = more(f['tabular.csv'] as string, ['X001,50,M,22,1,n', 'X002,51,F,,2,n', 'X003,52,F,23,0,n']);
    f['labels.csv'] = more(f['labels.csv'] as string, ['X001,1,40,3', 'X004,0,41,1']);
    f['splits.csv'] = more(f['splits.csv'] as string, ['X001,test']);
  };
  const strict = await makeCohort(t, extra);
  await fails(t, loadCohort(strict), ['image_ids.csv has no image for id "X001"', 'tabular.csv has on row 22', 'set tabular.unmatchedRows: ignore']);
  const relaxed = await makeCohort(t, (f) => {
    extra(f);
    f['cohort.yaml'] = (f['cohort.yaml'] as string)
      .replace('  csv: tabular.csv\n', '  csv: tabular.csv\n  unmatchedRows: ignore\n')
      .replace('  csv: labels.csv\n', '  csv: labels.csv\n  unmatchedRows: ignore\n')
      .replace('  csv: splits.csv\n', '  csv: splits.csv\n  unmatchedRows: ignore\n');
  });
  const c = await loadCohort(relaxed);
  t.same(c.ids, base.ids);
  t.same(c.tabular.data, base.tabular.data, 'the same feature columns as without the extra rows');
  t.same(c.tabular.columns, base.tabular.columns, 'the same categories (inferred from imaged subjects only)');
  t.same(c.labels.values, base.labels.values);
  t.same(c.splits, base.splits);
  t.same(c.joined, { tabular: { ignoredRows: 3 }, labels: { ignoredRows: 2, unlabelledSubjects: 0 }, splits: { ignoredRows: 1 } });
  t.match(formatSummary(await summarizeCohort(c, { sampleImages: 2 })), /skipped \(no image; unmatchedRows: ignore\): 3 tabular row\(s\), 2 label row\(s\), 1 split row\(s\)/);

  // Subjects without a label row: an error naming the key, or unlabelled in every task.
  const drop = (text: string, ids: string[]) => text.split('\n').filter((l) => !ids.some((i) => l.startsWith(i + ','))).join('\n');
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['labels.csv'] = drop(f['labels.csv'] as string, ['S002'])))), ['labels.csv has no row for id "S002"', 'labels.missingRows: unlabelled']);
  const partial = await makeCohort(t, (f) => {
    f['labels.csv'] = drop(f['labels.csv'] as string, ['S002', 'S009']);
    f['cohort.yaml'] = (f['cohort.yaml'] as string).replace('  csv: labels.csv\n', '  csv: labels.csv\n  missingRows: unlabelled\n');
  });
  const p = await loadCohort(partial);
  for (const task of ['infarction', 'lvef', 'nyha']) {
    const want = base.labels.values[task].map((v, i) => (i === 2 || i === 9 ? '' : v));
    t.same(p.labels.values[task], want, `${task}: subjects S002 and S009 are unlabelled, the rest as before`);
  }
  t.ok(Number.isNaN(encodeLabels(p, 'lvef')[2]), 'lvef of S002 is NaN (missing)');
  t.equal(encodeLabels(p, 'infarction')[9], -1, 'infarction of S009 is -1 (missing)');
  t.same(p.joined, { labels: { ignoredRows: 0, unlabelledSubjects: 2 } });
  // The tabular CSV may not lack imaged subjects: features are needed for every image.
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['tabular.csv'] = drop(f['tabular.csv'] as string, ['S004'])))), ['tabular.csv has no row for id "S004"']);

  // The image ids' column may have another name (UK Biobank: eid).
  const eid = await makeCohort(t, (f) => {
    f['image_ids.csv'] = csv('eid', range(N).map(id));
    f['cohort.yaml'] = (f['cohort.yaml'] as string).replace('  ids: image_ids.csv\n', '  ids: image_ids.csv\n  id: eid\n');
  });
  t.same((await loadCohort(eid)).ids, base.ids);
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['image_ids.csv'] = csv('eid', range(N).map(id))))), ['image_ids.csv has no id column "id"', '"eid"']);

  // A CSV whose rows end in CRLF and LF alike reads as the LF file does.
  const mixed = await makeCohort(t, (f) => {
    const lines = (f['tabular.csv'] as string).split('\n');
    // CRLF first (what csv-parse would take for the whole file), then some LF-only rows.
    f['tabular.csv'] = lines.map((l, i) => (i % 3 === 1 || l === '' ? l : l + '\r')).join('\n');
  });
  const m = await loadCohort(mixed);
  t.same(m.tabular.data, base.tabular.data, 'mixed line endings');
});

t.test('loadCohort rejects duplicate ids naming the file, rows, id and column', async (t) => {
  const dup = await makeCohort(t, (f) => (f['labels.csv'] = (f['labels.csv'] as string) + 'S004,1,60,2\n'));
  await fails(t, loadCohort(dup), ['labels.csv', 'row 22', 'repeats id "S004"', 'row 6', 'id column "id"']);
  const dupImg = await makeCohort(t, (f) => (f['image_ids.csv'] = csv('id', [...range(N - 1).map(id), id(0)])));
  await fails(t, loadCohort(dupImg), ['image_ids.csv', 'row 21', 'repeats id "S000"', 'id column "id"']);
});

t.test('loadCohort checks the NPY store: count, rank, dtype, truncation, NaN / Inf', async (t) => {
  const fewer = await makeCohort(t, undefined, { data: imageData(N - 2), shape: [N - 2, 1, 4, 4] });
  await fails(t, loadCohort(fewer), ['images.npy holds 18 images', 'image_ids.csv lists 20 ids', 'row 20 (id "S018")']);
  const rank3 = await makeCohort(t, undefined, { data: imageData(), shape: [N, 4, 4] });
  await fails(t, loadCohort(rank3), ['images.npy', 'shape (20, 4, 4)', 'rank 3', 'N×C×H×W']);
  const int = await makeCohort(t, undefined, { data: new Int32Array(N * 16), shape: [N, 1, 4, 4] });
  await fails(t, loadCohort(int), ['images.npy', 'dtype int32']);
  const size = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('ids: image_ids.csv', 'ids: image_ids.csv\n  size: [8, 8]')));
  await fails(t, loadCohort(size), ['images.npy', '4×4', 'images.size', '8×8']);
  const huge = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('ids: image_ids.csv', 'ids: image_ids.csv\n  size: [100000, 64]')));
  await fails(t, loadCohort(huge), ['cohort.yaml line', 'images.size[0]', '≤ 4096', '100000'], ConfigError);
  const cut = await makeCohort(t);
  const file = path.join(cut, 'images.npy');
  fs.truncateSync(file, fs.statSync(file).size - 5);
  await fails(t, loadCohort(cut), ['images.npy is truncated']);

  const nan = imageData();
  nan[13 * 16 + 6] = NaN;
  await fails(t, loadCohort(await makeCohort(t, undefined, { data: nan, shape: [N, 1, 4, 4] })), [
    'images.npy: image 13 (id "S013", row 15 of',
    'image_ids.csv',
    'NaN at channel 0, y 1, x 2',
  ]);
  // float16, written by hand (writeNpy has no float16): +Inf is 0x7c00.
  const dir = await makeCohort(t, (f) => (f['images.npy'] = float16Npy([N, 1, 2, 2], (k) => (k === 9 * 4 + 3 ? 0x7c00 : 0x3c00))));
  await fails(t, loadCohort(dir), ['image 9 (id "S009"', 'Inf at channel 0, y 1, x 1']);
  t.equal((await loadCohort(dir, { scanImages: false })).images.dtype, 'float16', 'scanImages: false skips the scan');
  const u8 = await makeCohort(t, undefined, { data: new Uint8Array(N * 16).fill(255), shape: [N, 1, 4, 4] });
  t.equal((await loadCohort(u8)).images.dtype, 'uint8');
});

t.test('loadCohort remembers a clean scan and rescans a changed store', async (t) => {
  const dir = await makeCohort(t);
  await loadCohort(dir);
  const markers = fs.readdirSync(path.join(dir, '.tabsight-cache')).filter((f) => f.startsWith('scan-'));
  t.equal(markers.length, 1, 'one scan marker');
  const bad = imageData();
  bad[5] = Infinity;
  await writeNpy(path.join(dir, 'images.npy'), bad, [N, 1, 4, 4]);
  await fails(t, loadCohort(dir), ['image 0 (id "S000"', 'Inf']);
});

function float16Npy(shape: number[], value: (k: number) => number): Buffer {
  const dict = `{'descr': '<f2', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  const text = dict.padEnd(128 - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = 1;
  head.writeUInt16LE(text.length, 8);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = Buffer.from(Uint16Array.from(range(count), value).buffer);
  return Buffer.concat([head, Buffer.from(text, 'latin1'), body]);
}

t.test('loadCohort names file, row and column for a non-number in a continuous column', async (t) => {
  const dir = await makeCohort(t, (f) => (f['tabular.csv'] = (f['tabular.csv'] as string).replace('S010,50,', 'S010,fifty,')));
  await fails(t, loadCohort(dir), ['tabular.csv', 'row 11', 'column "age"', '"fifty"']);
  const forced = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('smoking: categorical', 'sex: continuous')));
  await fails(t, loadCohort(forced), ['tabular.csv', 'column "sex"', 'not a number']);
  const lab = await makeCohort(t, (f) => (f['labels.csv'] = (f['labels.csv'] as string).replace('S002,0,52', 'S002,0,high')));
  await fails(t, loadCohort(lab), ['labels.csv', 'row 4', 'column "lvef"', '"high"']);
});

t.test('loadCohort checks the truth file opens; loadTruth parses it and names a bad one', async (t) => {
  await fails(t, loadCohort(await makeCohort(t, (f) => (f['truth.json'] = null))), ['truth.json (truth in', 'cohort.yaml', 'no such file']);
  const c = await loadCohort(await makeCohort(t, (f) => (f['truth.json'] = '{"informative": [')));
  await fails(t, loadTruth(c), ['truth.json is not valid JSON']);
  const none = await loadCohort(await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('truth: truth.json\n', ''))));
  t.equal(none.truthFile, undefined);
  t.equal(await loadTruth(none), undefined, 'no truth: undefined');
});

t.test('loadCohort rejects a label column with one class, naming the task', async (t) => {
  const one = await makeCohort(t, (f) => (f['labels.csv'] = csv('id,infarction,lvef,nyha', range(N).map((i) => `${id(i)},${i % 2 ? '' : 1},50,1${i % 2}`))));
  await fails(t, loadCohort(one), ['labels.csv', 'column "infarction"', 'task "infarction"', 'single class, "1"', '10 labelled rows']);
  const three = await makeCohort(t, (f) => (f['cohort.yaml'] = YAML.replace('nyha: multiclass', 'nyha: binary')));
  await fails(t, loadCohort(three), ['task "nyha"', '3 classes', 'multiclass']);
});

t.test('loadCohort rejects a bad split value naming file, row, id and column', async (t) => {
  const dir = await makeCohort(t, (f) => (f['splits.csv'] = (f['splits.csv'] as string).replace('S003,train', 'S003,trian')));
  await fails(t, loadCohort(dir), ['splits.csv', 'row 5', 'id "S003"', 'column "split"', '"trian"']);
});

t.test('seeded splits are deterministic, order-free and stratified', async (t) => {
  const yaml = YAML.replace('csv: splits.csv', 'seed: 7\n  fractions: [0.6, 0.2, 0.2]\n  stratify: infarction');
  const a = await loadCohort(await makeCohort(t, (f) => (f['cohort.yaml'] = yaml)));
  const b = await loadCohort(await makeCohort(t, (f) => (f['cohort.yaml'] = yaml)));
  t.same(a.splits, b.splits, 'same seed, same split');
  t.equal(a.splits.source, 'seeded');
  const shuffled = await loadCohort(await makeCohort(t, (f) => {
    f['cohort.yaml'] = yaml;
    f['image_ids.csv'] = csv('id', range(N).reverse().map(id));
  }), { scanImages: false });
  const idsOf = (c: Cohort, s: 'train' | 'val' | 'test') => c.splits[s].map((r) => c.ids[r]).sort();
  for (const s of ['train', 'val', 'test'] as const) t.same(idsOf(shuffled, s), idsOf(a, s), `${s}: same ids whatever the row order`);

  const ids = range(1000).map(id);
  const strata = range(1000).map((i) => (i % 10 < 2 ? 'pos' : i % 10 < 9 ? 'neg' : i === 999 ? 'NA' : 'mid'));
  const s1 = seededSplit(ids, [0.7, 0.15, 0.15], 3, strata);
  t.same(seededSplit(ids, [0.7, 0.15, 0.15], 3, strata), s1, 'deterministic');
  t.not(JSON.stringify(seededSplit(ids, [0.7, 0.15, 0.15], 4, strata).train), JSON.stringify(s1.train), 'another seed, another split');
  t.same([...s1.train, ...s1.val, ...s1.test].sort((x, y) => x - y), range(1000), 'a partition of the rows');
  for (const cls of ['pos', 'neg', 'mid']) {
    const total = strata.filter((s) => s === cls).length;
    for (const [name, f] of [['train', 0.7], ['val', 0.15], ['test', 0.15]] as const) {
      const got = s1[name].filter((r) => strata[r] === cls).length;
      t.ok(Math.abs(got - f * total) <= 1, `${cls} in ${name}: ${got} ≈ ${f * total}`);
    }
  }
});

t.test('resizeBilinear matches PyTorch bilinear (align_corners=False)', async (t) => {
  const up = resizeBilinear(Float32Array.from([0, 1, 2, 3]), 1, 2, 2, 4, 4);
  t.same(Array.from(up), [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  const down = resizeBilinear(Float32Array.from(range(16)), 1, 4, 4, 2, 2);
  t.same(Array.from(down), [2.5, 4.5, 10.5, 12.5]);
  const same = Float32Array.from(range(24), (k) => k * 1.5);
  t.same(resizeBilinear(same, 2, 3, 4, 3, 4), same, 'same size is the identity');
});

const PNG_YAML = YAML.replace('npy: images.npy\n  ids: image_ids.csv', 'index: images.csv\n  format: png');

async function pngCohort(t: Test, sizes: (i: number) => number, extraYaml = ''): Promise<string> {
  const dir = await makeCohort(t, (f) => {
    f['cohort.yaml'] = PNG_YAML.replace('format: png', `format: png${extraYaml}`);
    f['images.csv'] = csv('id,path', range(N).map((i) => `${id(i)},png/${id(i)}.png`));
    f['images.npy'] = null;
  });
  fs.mkdirSync(path.join(dir, 'png'));
  for (const i of range(N)) await writePng(path.join(dir, 'png', `${id(i)}.png`), sizes(i), i);
  return dir;
}

async function writePng(file: string, side: number, seed: number): Promise<void> {
  const px = Buffer.from(range(side * side).map((k) => (k * 7 + seed * 13) % 256));
  await sharp(px, { raw: { width: side, height: side, channels: 1 } }).toColourspace('b-w').png().toFile(file);
}

const f32 = async (file: string) => (await readNpy(file)).data as Float32Array;
const cacheFiles = (dir: string) => (fs.existsSync(path.join(dir, '.tabsight-cache')) ? fs.readdirSync(path.join(dir, '.tabsight-cache')).sort() : []);

t.test('loadCohort converts PNGs once into a cached NPY store and reuses it', async (t) => {
  const dir = await pngCohort(t, () => 6);
  const c = await loadCohort(dir);
  t.match(c.images.path, /\.tabsight-cache\/images-[0-9a-f]{16}\.npy$/);
  t.same([c.images.dtype, c.images.shape, c.images.source], ['float32', [N, 1, 6, 6], 'png']);
  const store = { data: await f32(c.images.path) };
  const png7 = await readPng(path.join(dir, 'png', 'S007.png'));
  t.same(Array.from(store.data.subarray(7 * 36, 8 * 36)), Array.from(png7.data), 'image 7 is S007.png as float32');
  t.same(cacheFiles(dir), [path.basename(c.images.path)]);

  const before = fs.statSync(c.images.path);
  const again = await loadCohort(dir);
  t.equal(again.images.path, c.images.path, 'same store');
  const after = fs.statSync(c.images.path);
  t.same([after.mtimeMs, after.ino], [before.mtimeMs, before.ino], 'second load does not rewrite the store');

  const changed = path.join(dir, 'png', 'S003.png');
  await writePng(changed, 6, 99);
  const future = new Date(Date.now() + 10_000);
  fs.utimesSync(changed, future, future);
  const third = await loadCohort(dir);
  t.not(third.images.path, c.images.path, 'a changed input file gives a new store');
  t.same(cacheFiles(dir), [path.basename(third.images.path)], 'the stale store is removed');
  const png3 = await readPng(changed);
  t.same(Array.from((await f32(third.images.path)).subarray(3 * 36, 4 * 36)), Array.from(png3.data));

  fs.writeFileSync(path.join(dir, 'images.csv'), csv('id,path', range(N).reverse().map((i) => `${id(i)},png/${id(i)}.png`)));
  const reordered = await loadCohort(dir);
  t.not(reordered.images.path, third.images.path, 'a changed index CSV gives a new store');
  t.equal(reordered.ids[0], id(N - 1));
});

t.test('loadCohort resizes to images.size, and rejects mixed sizes without it', async (t) => {
  const mixed = await pngCohort(t, (i) => (i === 4 ? 8 : 6));
  await fails(t, loadCohort(mixed), ['images.csv: row 6 (id "S004"), column "path"', 'S004.png', 'shape (1, 8, 8)', 'images.size']);
  t.same(cacheFiles(mixed), [], 'nothing is left behind');
  const dir = await pngCohort(t, (i) => (i === 4 ? 8 : 6), '\n  size: [4, 4]');
  const c = await loadCohort(dir);
  t.same(c.images.shape, [N, 1, 4, 4]);
  const png4 = await readPng(path.join(dir, 'png', 'S004.png'));
  const want = resizeBilinear(Float32Array.from(png4.data), 1, 8, 8, 4, 4);
  t.same(Array.from((await f32(c.images.path)).subarray(4 * 16, 5 * 16)), Array.from(want));
  const rgb = await pngCohort(t, () => 4, '\n  channels: 3');
  t.same((await loadCohort(rgb)).images.shape, [N, 3, 4, 4], 'images.channels: 3 gives 3 channels');
});

t.test('loadCohort leaves nothing half-written when a conversion fails', async (t) => {
  const dir = await pngCohort(t, () => 6);
  fs.writeFileSync(path.join(dir, 'png', 'S011.png'), fs.readFileSync(path.join(dir, 'png', 'S010.png')).subarray(0, 40));
  await fails(t, loadCohort(dir), ['images.csv: row 13 (id "S011"), column "path"', 'S011.png', 'truncated']);
  t.same(cacheFiles(dir), [], 'no cache folder, no temporary file');
  fs.writeFileSync(path.join(dir, 'png', 'S011.png'), 'not a png');
  await fails(t, loadCohort(dir), ['id "S011"', 'not a PNG file']);
  fs.rmSync(path.join(dir, 'png', 'S012.png'));
  await fails(t, loadCohort(dir), ['images.csv: row 14 (id "S012"), column "path"', 'no such file']);
  t.same(cacheFiles(dir), []);
});

t.test('Ctrl-C during a conversion removes its temporary store; a later conversion removes those of dead processes on this host', async (t) => {
  const dir = await pngCohort(t, () => 6);
  // Reading row 10's file never finishes (a preload holds it), so the
  // conversion waits there with its temporary store open, as on a slow disk.
  const preload = path.join(dir, 'hold.js');
  fs.writeFileSync(preload, `const fsp = require('fs').promises; const readFile = fsp.readFile;
fsp.readFile = function (p, ...rest) {
  if (String(p).endsWith('S010.png')) { setInterval(() => {}, 1000); return new Promise(() => {}); }
  return readFile.call(this, p, ...rest);
};\n`);
  const bin = path.join(__dirname, '..', 'bin', 'tabsight.js');
  const child = spawn(process.execPath, ['--require', preload, bin, 'validate', '--cohort', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => { stderr += b; });
  const exited = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
  const start = Date.now();
  while (!cacheFiles(dir).some((f) => f.endsWith('.tmp')) && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 20));
  const tmp = cacheFiles(dir).find((f) => f.endsWith('.tmp'));
  t.match(tmp, new RegExp(`^\\.images-[0-9a-f]{16}\\.npy\\.${os.hostname().replace(/[.]/g, '\\.')}\\.${child.pid}\\.[0-9a-f]{12}\\.tmp$`), 'the temporary store names its host and pid');
  child.kill('SIGINT');
  t.same(await exited, [null, 'SIGINT'], 'the process died of the signal, as without a handler', { stderr });
  t.same(cacheFiles(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary store is left');

  // What a SIGKILL leaves: temporaries of a dead process here, of another host, and of a live process.
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => dead.on('exit', r));
  const cache = path.join(dir, '.tabsight-cache');
  fs.mkdirSync(cache, { recursive: true });
  const names = {
    dead: `.images-0123456789abcdef.npy.${os.hostname()}.${dead.pid}.0123456789ab.tmp`,
    otherHost: `.images-0123456789abcdef.npy.not-${os.hostname()}.${dead.pid}.0123456789ab.tmp`,
    live: `.images-0123456789abcdef.npy.${os.hostname()}.${process.pid}.0123456789ab.tmp`,
  };
  for (const f of Object.values(names)) fs.writeFileSync(path.join(cache, f), 'partial');
  const c = await loadCohort(dir);
  t.same(cacheFiles(dir), [names.otherHost, names.live, path.basename(c.images.path)].sort(), 'only the dead process\'s temporary on this host was removed');
});

t.test('loadCohort converts NIfTI and DICOM files, naming the row of a bad one', async (t) => {
  const nifti = await makeCohort(t, (f) => {
    f['cohort.yaml'] = PNG_YAML.replace('format: png', 'format: nifti\n  nifti: { slice: 1, frames: [0, 5, 10] }');
    f['images.csv'] = csv('id,path', range(N).map((i) => `${id(i)},${path.join(FIXTURES, 'functional.nii')}`));
    f['images.npy'] = null;
  });
  const c = await loadCohort(nifti);
  t.same(c.images.shape, [N, 3, 17, 21]);
  const want = await readNifti(path.join(FIXTURES, 'functional.nii'), { slice: 1, frames: [0, 5, 10] });
  t.same(Array.from((await f32(c.images.path)).subarray(19 * want.data.length)), Array.from(want.data));

  const withNaN = await makeCohort(t, (f) => {
    f['cohort.yaml'] = PNG_YAML.replace('format: png', 'format: nifti');
    f['images.csv'] = csv('id,path', range(N).map((i) => `${id(i)},${path.join(FIXTURES, i === 2 ? 'resampled_anat_moved.nii' : 'functional.nii')}`));
    f['images.npy'] = null;
  });
  await fails(t, loadCohort(withNaN), ['images.csv: row 4 (id "S002"), column "path"', 'resampled_anat_moved.nii has NaN']);

  const dicomYaml = PNG_YAML.replace('format: png', 'format: dicom');
  const dicom = await makeCohort(t, (f) => {
    f['cohort.yaml'] = dicomYaml;
    f['images.csv'] = csv('id,path', range(N).map((i) => `${id(i)},${path.join(FIXTURES, i % 2 ? 'MR_small.dcm' : 'MR_small_implicit.dcm')}`));
    f['images.npy'] = null;
  });
  const d = await loadCohort(dicom);
  t.same(d.images.shape, [N, 1, 64, 64]);
  const mr = await readDicom(path.join(FIXTURES, 'MR_small.dcm'));
  t.same(Array.from((await f32(d.images.path)).subarray(64 * 64, 2 * 64 * 64)), Array.from(mr.data));
  const bad = await makeCohort(t, (f) => {
    f['cohort.yaml'] = dicomYaml;
    f['images.csv'] = csv('id,path', range(N).map((i) => `${id(i)},${path.join(FIXTURES, i === 9 ? 'MR_truncated.dcm' : 'MR_small.dcm')}`));
    f['images.npy'] = null;
  });
  await fails(t, loadCohort(bad), ['images.csv: row 11 (id "S009"), column "path"', 'MR_truncated.dcm']);
  t.same(cacheFiles(bad), []);
});

t.test('summarizeCohort reports sizes, missingness, balance, splits and image range', async (t) => {
  const c = await loadCohort(await makeCohort(t));
  const s = await summarizeCohort(c, { sampleImages: 3 });
  t.equal(s.n, N);
  t.same(s.features, { total: 4, continuous: 2, categorical: 2 });
  t.same(s.missingness, [{ column: 'bmi', missing: 4, fraction: 0.2 }]);
  t.same(s.splits, { source: 'csv', train: 12, val: 4, test: 4 });
  const inf = s.tasks.find((x) => x.name === 'infarction')!;
  t.same(inf.classes!.map((k) => [k.label, k.count, k.train, k.val, k.test]), [['0', 15, 9, 3, 3], ['1', 5, 3, 1, 1]]);
  t.same(s.tasks.find((x) => x.name === 'lvef')!.range, { min: 50, max: 69, mean: (50 * 19 + (190 - 3)) / 19 });
  t.same([s.images.sampled, s.images.min, s.images.max], [3, 0, (N * 16 - 1) / 16]);
  t.same(s.warnings, []);
  const constant = await loadCohort(await makeCohort(t, (f) => {
    const lines = (f['tabular.csv'] as string).trim().split('\n');
    f['tabular.csv'] = lines.map((l, k) => (k === 0 ? `${l},k,w` : `${l},7.0,${k === 3 ? 'NA' : 'x'}`)).join('\n') + '\n';
    f['cohort.yaml'] = YAML.replace('smoking: categorical', 'smoking: categorical, k: continuous');
  }));
  t.same((await summarizeCohort(constant, { sampleImages: 1 })).warnings, ['column "k" is constant ("7")', 'column "w" is constant ("x")'], 'a constant number shows as a number');
  const empty = await summarizeCohort(await loadCohort(await makeCohort(t, (f) => {
    const lines = (f['tabular.csv'] as string).trim().split('\n');
    f['tabular.csv'] = lines.map((l, k) => (k === 0 ? `${l},e` : `${l},NA`)).join('\n') + '\n';
    f['cohort.yaml'] = YAML.replace('smoking: categorical', 'smoking: categorical, e: continuous');
    // Every infarction case in train: none left for test.
    f['labels.csv'] = f['labels.csv']!.replace(/^(S0(?:1[2-9])),1,/gm, '$1,0,');
  })), { sampleImages: 1 });
  t.same(empty.warnings.filter((w) => /no value|no row in test/.test(w)), [
    'column "e" has no value at all: pretrain and select refuse it; drop it with tabular.exclude in cohort.yaml',
    'task "infarction": class "1" has no row in test: evaluate refuses this task (its test AUC needs every class); leave it out with --task',
  ], 'what a warning means for the later commands');
  const text = formatSummary(s);
  for (const part of ['subjects: 20', '2 continuous, 2 categorical', 'bmi: 4 (20.0%)', 'train 12, val 4, test 4', 'task infarction (binary)', '20×1×4×4 float32']) {
    t.ok(text.includes(part), `summary shows ${part}`);
  }
});

t.test('numbers beyond float32 (what training and evaluation store) are refused at load, naming the file, row and column', async (t) => {
  // S004 is on spreadsheet row 2 + (N − 1 − 4) of the reversed tabular.csv.
  const tab = await makeCohort(t, (f) => (f['tabular.csv'] = f['tabular.csv']!.replace('S004,44,', 'S004,1e308,')));
  await fails(t, loadCohort(tab), ['tabular.csv', `row ${2 + N - 1 - 4}`, 'column "age"', 'beyond the float32 range']);
  const neg = await makeCohort(t, (f) => (f['tabular.csv'] = f['tabular.csv']!.replace('S004,44,', 'S004,-3.5e38,')));
  await fails(t, loadCohort(neg), ['tabular.csv', 'column "age"', 'beyond the float32 range']);
  const edge = await makeCohort(t, (f) => (f['tabular.csv'] = f['tabular.csv']!.replace('S004,44,', 'S004,3.4e38,')));
  t.ok(await loadCohort(edge), '3.4e38 fits in float32');
  const lab = await makeCohort(t, (f) => (f['labels.csv'] = f['labels.csv']!.replace('S005,0,55,', 'S005,0,1e300,')));
  await fails(t, loadCohort(lab), ['labels.csv', 'row 7', 'column "lvef"', '"1e300"', 'beyond the float32 range']);
});

t.test('a splits.csv with one train row is refused at load, naming the row and id', async (t) => {
  const one = await makeCohort(t, (f) => (f['splits.csv'] = csv('id,split', range(N).map((i) => `${id(i)},${i === 5 ? 'train' : 'test'}`))));
  await fails(t, loadCohort(one), ['splits.csv', 'column "split"', 'assigns one row to train', 'row 7', 'id "S005"', 'at least 2']);
  const none = await makeCohort(t, (f) => (f['splits.csv'] = csv('id,split', range(N).map((i) => `${id(i)},test`))));
  await fails(t, loadCohort(none), ['splits.csv', 'assigns no row to train']);
});
