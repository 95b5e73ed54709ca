import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCsv, inferColumnType, parseContinuous, isMissing, ReadCsvOptions } from '../lib/data/csv';
import { ConfigError, DataError } from '../lib/errors';
import { expectDataError, rejection, tmpDir } from './fixtures/readers/oracle';

function write(t: tap.Test, name: string, text: string): string {
  const file = path.join(tmpDir(t), name);
  fs.writeFileSync(file, text);
  return file;
}

t.test('readCsv returns columns, trimmed rows, ids and spreadsheet row numbers', async (t) => {
  const file = write(t, 'cohort.csv', '\ufeffeid,age,sex,note\n1001, 63.5 ,M,"a, b"\n\n1002,NA,F,"two\nlines"\n1003,71,F,\n');
  const table = await readCsv(file);
  t.same(table.columns, ['eid', 'age', 'sex', 'note']);
  t.same(table.rows, [
    ['1001', '63.5', 'M', 'a, b'],
    ['1002', 'NA', 'F', 'two\nlines'],
    ['1003', '71', 'F', ''],
  ]);
  t.same(table.ids, ['1001', '1002', '1003']);
  t.equal(table.idColumn, 'eid');
  t.same(table.rowNumbers, [2, 4, 5], 'a blank line counts as a row; a quoted newline does not');
  const quoted = await readCsv(write(t, 'q.csv', 'eid,sex\n" 1 ",M\n2,"M "\n3," F"\n'));
  t.same(quoted.rows.map((r) => r[1]), ['M', 'M', 'F'], 'quoted cells are trimmed too (Python: csv + strip)');
  t.same(quoted.ids, ['1', '2', '3']);
  const bySex = await readCsv(write(t, 'b.csv', 'age,eid\n60,a\n61,b\n'), { idColumn: 'eid' });
  t.same(bySex.ids, ['a', 'b']);
});

t.test('readCsv rejects an empty file and a header without rows with ERR_DATA naming the file', async (t) => {
  const empty = write(t, 'empty.csv', '');
  await expectDataError(t, readCsv(empty), empty, /is empty/);
  const blank = write(t, 'blank.csv', '\n\n');
  await expectDataError(t, readCsv(blank), blank, /is empty/);
  const header = write(t, 'header.csv', 'eid,age\n');
  await expectDataError(t, readCsv(header), header, /has a header but no data rows/);
});

t.test('readCsv rejects duplicate ids with ERR_DATA naming the file, both rows and the column', async (t) => {
  const file = write(t, 'dup.csv', 'eid,age\n1,60\n2,61\n\n1,62\n');
  await expectDataError(t, readCsv(file), file, /row 5 repeats id "1" of row 2 in id column "eid"/);
});

t.test('readCsv rejects a missing id with ERR_DATA naming the file, row and column', async (t) => {
  const file = write(t, 'noid.csv', 'age,eid\n60,1\n61,  \n');
  await expectDataError(t, readCsv(file, { idColumn: 'eid' }), file, /row 3 has no value in id column "eid"/);
  const nocol = write(t, 'nocol.csv', 'age,id\n60,1\n');
  await expectDataError(t, readCsv(nocol, { idColumn: 'eid' }), nocol, /no id column "eid"; its columns are "age", "id"/);
});

t.test('readCsv rejects ragged rows with ERR_DATA naming the file, row and column', async (t) => {
  const short = write(t, 'short.csv', 'eid,age,sex\n1,60,M\n2,61\n');
  await expectDataError(t, readCsv(short), short, /row 3 has 2 cell\(s\) but the header has 3 \(column "sex" is missing\)/);
  const long = write(t, 'long.csv', 'eid,age\n1,60\n\n2,61,x\n');
  await expectDataError(t, readCsv(long), long, /row 4 has 3 cell\(s\) but the header has 2 \(an extra cell after column "age"\)/);
});

t.test('readCsv rejects a bad header and unparseable CSV with ERR_DATA naming the file', async (t) => {
  const dup = write(t, 'duphead.csv', 'eid,age,age\n1,2,3\n');
  await expectDataError(t, readCsv(dup), dup, /header row 1 has column "age" twice \(columns 2 and 3\)/);
  const blankName = write(t, 'blankname.csv', 'eid,,age\n1,2,3\n');
  await expectDataError(t, readCsv(blankName), blankName, /empty name for column 2/);
  const quote = write(t, 'quote.csv', 'eid,age\n1,"60\n');
  await expectDataError(t, readCsv(quote), quote, /cannot parse CSV near line 2/);
  const missing = path.join(tmpDir(t), 'missing.csv');
  await expectDataError(t, readCsv(missing), missing, /no such file/);
});

t.test('readCsv rejects bad options with ERR_CONFIG', async (t) => {
  const file = write(t, 'ok.csv', 'eid\n1\n');
  for (const opts of [{ idColumn: '' }, { idColumn: 3 }, { id: 'eid' }]) {
    const err = await rejection(readCsv(file, opts as ReadCsvOptions));
    t.type(err, ConfigError, JSON.stringify(opts));
    t.equal(err.code, 'ERR_CONFIG');
  }
});

t.test('isMissing treats empty, NA, N/A and NaN (any case) as missing', async (t) => {
  for (const v of ['', '  ', 'NA', 'na', 'N/A', 'NaN', 'nan', ' NAN ']) t.ok(isMissing(v), JSON.stringify(v));
  for (const v of ['0', 'None', 'null', '-', 'NAB']) t.notOk(isMissing(v), JSON.stringify(v));
});

t.test('inferColumnType follows the documented rules', async (t) => {
  t.equal(inferColumnType(['0', '1', '1', 'NA', '', '0']), 'binary', 'numeric with 2 distinct values');
  t.equal(inferColumnType(['5', '5', 'NaN']), 'binary', 'numeric with 1 distinct value');
  t.equal(inferColumnType(['1.5', '2.5', '1.5']), 'binary', 'two distinct non-integers');
  t.equal(inferColumnType(['M', 'F', 'M']), 'categorical', 'non-numeric');
  t.equal(inferColumnType(['1', '2', 'x']), 'categorical', 'one non-numeric cell');
  t.equal(inferColumnType(['', 'NA']), 'categorical', 'all missing');
  t.equal(inferColumnType(['0', '1', '2', '0', '1', '2', '2']), 'categorical', 'integer codes, 3 levels each seen twice');
  t.equal(inferColumnType(['61', '62', '63', '64', '65']), 'continuous', 'integers all distinct (ages)');
  t.equal(inferColumnType(['0.1', '0.2', '0.3', '0.1', '0.2', '0.3']), 'continuous', 'non-integers');
  t.equal(inferColumnType(Array.from({ length: 40 }, (_, i) => String(i % 12))), 'continuous', '12 levels > maxCategories 10');
  t.equal(inferColumnType(Array.from({ length: 40 }, (_, i) => String(i % 12)), { maxCategories: 12 }), 'categorical', 'maxCategories 12');
  t.equal(inferColumnType(['1e3', '-2.5E-1', '.5', '+7']), 'continuous', 'exponent and sign forms are numeric');
  t.equal(inferColumnType(['0x10', '1', '2']), 'categorical', 'hex is not numeric');
  t.type((() => { try { inferColumnType(['1'], { maxCategories: 1 }); } catch (e) { return e; } })(), ConfigError);
});

t.test('parseContinuous turns missing cells into NaN and parses numbers', async (t) => {
  const out = parseContinuous(['1.5', 'NA', '', '-2e3', ' 4 '], 'f.csv', 'age');
  t.type(out, Float64Array);
  t.same(Array.from(out, (v) => (Number.isNaN(v) ? 'NaN' : v)), [1.5, 'NaN', 'NaN', -2000, 4]);
});

t.test('parseContinuous rejects a non-number with ERR_DATA naming the file, column and row', async (t) => {
  const err = (fn: () => unknown) => { try { fn(); } catch (e) { return e as DataError; } return undefined; };
  const e1 = err(() => parseContinuous(['1', '2', 'abc'], '/data/cohort.csv', 'bmi'));
  t.type(e1, DataError);
  t.equal(e1?.code, 'ERR_DATA');
  t.match(e1?.message, /\/data\/cohort\.csv: row 4, column "bmi" has "abc", which is not a number/);
  const file = write(t, 'gaps.csv', 'eid,bmi\n1,20\n\n2,21\n3,Inf\n');
  const table = await readCsv(file);
  const col = table.rows.map((r) => r[1]);
  const e2 = err(() => parseContinuous(col, file, 'bmi', table.rowNumbers));
  t.type(e2, DataError);
  t.match(e2?.message, file);
  t.match(e2?.message, /row 5, column "bmi" has "Inf"/);
});

t.test('a cell quoted in an error is escaped and cut to 60 characters', async (t) => {
  const { notANumber, cellText } = await import('../lib/data/csv');
  const long = notANumber('f.csv', 'age', 3, 'x'.repeat(100000)).message;
  t.equal(long, `f.csv: row 3, column "age" has "${'x'.repeat(57)}… (100000 characters)", which is not a number`);
  t.equal(cellText('a\u0000b\nc'), 'a\\u0000b\\nc', 'control characters escaped, as JSON writes them');
  t.equal(cellText('12,5'), '12,5', 'an ordinary cell as it is');
});

t.test('firstInvalidUtf8 finds where the longest UTF-8 prefix ends (oracle: TextDecoder with fatal errors)', async (t) => {
  const { firstInvalidUtf8 } = await import('../lib/io/read');
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const valid = (b: Uint8Array) => {
    try {
      fatal.decode(b);
      return true;
    } catch {
      return false;
    }
  };
  // Bytes at the edges of the well-formed ranges (Unicode table 3-7).
  const pool = [0x41, 0x0a, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
  let seed = 12345;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16);
  let invalid = 0;
  for (let k = 0; k < 20000; k++) {
    const b = Uint8Array.from({ length: next() % 12 }, () => pool[next() % pool.length]);
    let want = -1;
    if (!valid(b)) {
      want = 0;
      for (let p = b.length; p >= 0; p--) if (valid(b.subarray(0, p))) { want = p; break; }
      invalid++;
    }
    if (firstInvalidUtf8(b) !== want) {
      t.fail(`bytes ${Buffer.from(b).toString('hex')}: ${firstInvalidUtf8(b)}, TextDecoder ${want}`);
      return;
    }
  }
  t.ok(invalid > 5000 && invalid < 20000, `${invalid} of 20000 strings were ill-formed`);
  t.equal(firstInvalidUtf8(Buffer.from('Zürich, 東京, 🫀', 'utf8')), -1);
});

t.test('a CSV that is not UTF-8 is refused, naming the file, the line and the bytes; UTF-8 with a BOM is read', async (t) => {
  const dir = tmpDir(t);
  // Latin-1: ü is the single byte 0xfc.
  const latin1 = path.join(dir, 'latin1.csv');
  fs.writeFileSync(latin1, Buffer.concat([Buffer.from('eid,name\nS1,Meier\nS2,M'), Buffer.from([0xfc]), Buffer.from('ller\n')]));
  await expectDataError(t, readCsv(latin1), latin1, /latin1\.csv: line 3 is not UTF-8 text \(bytes fc 6c 6c 65 at byte 5 of the line, offset 22 in the file\); save the file as UTF-8/);
  // Lone CR line endings count as lines too.
  const cr = path.join(dir, 'cr.csv');
  fs.writeFileSync(cr, Buffer.concat([Buffer.from('eid,x\rS1,1\r\nS2,'), Buffer.from([0xe9]), Buffer.from('\r')]));
  await expectDataError(t, readCsv(cr), cr, /line 3 is not UTF-8 text \(bytes e9 0d at byte 4 of the line/);
  const utf16 = path.join(dir, 'utf16.csv');
  fs.writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('eid,x\nS1,1\n', 'utf16le')]));
  await expectDataError(t, readCsv(utf16), utf16, /utf16\.csv is UTF-16 text \(it starts with a UTF-16 byte-order mark\); save it as UTF-8/);
  const bom = path.join(dir, 'bom.csv');
  fs.writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('eid,name\nS1,Müller\n', 'utf8')]));
  const table = await readCsv(bom);
  t.same([table.columns, table.rows], [['eid', 'name'], [['S1', 'Müller']]], 'the BOM is dropped and ü read');
});
