// AtomicFile: the one streaming atomic writer behind writeFileAtomic, the
// embed/predict outputs (NpyRowWriter, openTextOutput) and the cohort image
// cache. Readers see the old file until commit, then the whole new one; a
// failure or abort leaves no temporary file; errors are DataErrors naming
// the target.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AtomicFile, writeFileAtomic } from '../lib/io/atomic';
import { NpyRowWriter } from '../lib/export/images';
import { readNpy } from '../lib/data/npy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-atomic-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

t.test('positioned and appended writes give the bytes an in-memory copy gives; the old file stays until commit', async (t) => {
  const file = path.join(root, 'a.bin');
  fs.writeFileSync(file, 'old');
  const w = await AtomicFile.open(file);
  const expect = Buffer.alloc(40, 0);
  const put = async (data: string | Uint8Array, at?: number, end?: number) => {
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    buf.copy(expect, at ?? end!);
    await w.write(data, at);
  };
  await put('header', 0);
  await put(Uint8Array.from([1, 2, 3, 4]), 20); // a hole from 6 to 20 reads as zeros
  await put('tail', undefined, 24); // after the furthest byte written
  await put('HE', 0); // overwriting does not move the end
  await put('é', undefined, 28); // strings are UTF-8
  t.equal(fs.readFileSync(file, 'utf8'), 'old', 'readers still see the old file');
  t.equal(fs.readdirSync(root).length, 2, 'the temporary file sits next to it');
  await w.commit();
  t.same(fs.readFileSync(file), expect.subarray(0, 30));
  t.same(fs.readdirSync(root), ['a.bin'], 'no temporary file left');
  await t.rejects(w.write('x'), { code: 'ERR_DATA', message: `The writer for ${file} is closed` });
  await t.rejects(w.commit(), { code: 'ERR_DATA', message: /is closed/ });
  await w.abort(); // a no-op after commit
  t.ok(fs.existsSync(file), 'abort after commit removes nothing');
});

t.test('abort and failures leave the old file and no temporary file', async (t) => {
  const dir = path.join(root, 'b');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'b.txt');
  fs.writeFileSync(file, 'old');
  const w = await AtomicFile.open(file);
  await w.write('new');
  await w.abort();
  t.same(fs.readdirSync(dir), ['b.txt']);
  t.equal(fs.readFileSync(file, 'utf8'), 'old');

  // The rename fails: the target became a non-empty folder meanwhile.
  const target = path.join(dir, 'c');
  const w2 = await AtomicFile.open(target);
  await w2.write('data');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), '');
  await t.rejects(w2.commit(), { code: 'ERR_DATA', message: `Cannot write ${target}: it is a folder` });
  t.same(fs.readdirSync(dir).sort(), ['b.txt', 'c'], 'the temporary file is removed');

  // The folder is missing: named at open.
  const missing = path.join(root, 'nope', 'x.bin');
  await t.rejects(AtomicFile.open(missing), { code: 'ERR_DATA', message: `Cannot write ${missing}: its folder ${path.join(root, 'nope')} does not exist` });

  // writeFileAtomic on top: chunks in order.
  const chunks = path.join(dir, 'chunks.bin');
  await writeFileAtomic(chunks, [Uint8Array.of(1, 2), Uint8Array.of(), Uint8Array.of(3)]);
  t.same([...fs.readFileSync(chunks)], [1, 2, 3]);
});

t.test('NpyRowWriter: row blocks read back as written; too few rows is refused and leaves nothing', async (t) => {
  const file = path.join(root, 'e.npy');
  const rows = Float32Array.from({ length: 5 * 3 }, (_, i) => i / 7);
  const w = await NpyRowWriter.open(file, 5, 3);
  await w.write(rows.subarray(0, 6));
  await w.write(rows.subarray(6));
  await w.commit();
  const back = await readNpy(file);
  t.same(back.shape, [5, 3]);
  t.same(Array.from(back.data as Float32Array), Array.from(rows));
  const short = path.join(root, 'short.npy');
  const s = await NpyRowWriter.open(short, 5, 3);
  await s.write(rows.subarray(0, 3));
  await t.rejects(s.commit(), { code: 'ERR_DATA', message: `Wrote 1 of 5 rows to ${short}` });
  t.notOk(fs.existsSync(short));
  t.same(fs.readdirSync(root).filter((f) => f.startsWith('.')), [], 'no temporary file anywhere');
});
