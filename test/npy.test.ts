import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseNpyHeader, readNpyHeader, readNpy, writeNpy, NpyArray } from '../lib/data/npy';
import { ConfigError, DataError, ShapeError } from '../lib/errors';
import { expectDataError, reference, rejection, tmpDir } from './fixtures/readers/oracle';

type Written = { data: number[]; shape: number[] };
type Read = { descr: string; shape: number[]; fortran: boolean; version: number[]; data: number[] };

const asNumbers = (a: NpyArray): number[] => Array.from(a as ArrayLike<number | bigint>, (v) => Number(v));

t.test('readNpy reads what numpy wrote, for every dtype and format version 1.0, 2.0 and 3.0', async (t) => {
  const dir = tmpDir(t);
  const cases: { descr: string; dtype: string; shape: number[]; version: number[] }[] = [
    { descr: '|u1', dtype: 'uint8', shape: [4, 5], version: [1, 0] },
    { descr: '|b1', dtype: 'bool', shape: [7], version: [1, 0] },
    { descr: '<f2', dtype: 'float16', shape: [2, 3], version: [2, 0] },
    { descr: '<f4', dtype: 'float32', shape: [3, 2, 2], version: [3, 0] },
    { descr: '<f8', dtype: 'float64', shape: [], version: [1, 0] },
    { descr: '<i4', dtype: 'int32', shape: [0, 3], version: [2, 0] },
    { descr: '<i8', dtype: 'int64', shape: [6], version: [3, 0] },
  ];
  const jobs = cases.map((c, i) => ({ op: 'npy-write', file: path.join(dir, `np${i}.npy`), ...c }));
  const expected = reference<Written>(jobs);
  for (const [i, c] of cases.entries()) {
    const file = jobs[i].file;
    const got = await readNpy(file);
    t.equal(got.dtype, c.dtype, `${c.descr} dtype`);
    t.same(got.shape, c.shape, `${c.descr} shape`);
    t.same(asNumbers(got.data), expected[i].data, `${c.descr} values`);
    if (c.dtype === 'float16') t.type(got.data, Float32Array);
    if (c.dtype === 'int64') t.type(got.data, BigInt64Array);
    const header = await readNpyHeader(file);
    t.equal(header.version, `${c.version[0]}.${c.version[1]}`, `${c.descr} version`);
    t.equal(header.dataOffset + header.byteLength, fs.statSync(file).size, `${c.descr} offset + bytes = file size`);
    t.same(header, parseNpyHeader(fs.readFileSync(file), file));
  }
  t.equal((await readNpy(jobs[6].file)).data[0], 2n ** 40n - 100n, 'int64 beyond 2^32 kept exactly');
});

t.test('writeNpy writes files that numpy loads with the same dtype, shape and values', async (t) => {
  const dir = tmpDir(t);
  const arrays: { data: NpyArray; shape: number[]; descr: string }[] = [
    { data: Uint8Array.from([0, 1, 255, 7, 8, 9]), shape: [2, 3], descr: '|u1' },
    { data: Float32Array.from([1.5, -2.25, 3e-8, 1e30]), shape: [4], descr: '<f4' },
    { data: Float64Array.from([Math.PI]), shape: [], descr: '<f8' },
    { data: Int32Array.from([-5, 0, 2 ** 31 - 1, -(2 ** 31), 3, 4]), shape: [3, 1, 2], descr: '<i4' },
    { data: BigInt64Array.from([-(2n ** 62n), 2n ** 40n]), shape: [2, 1], descr: '<i8' },
    { data: new Float32Array(0), shape: [0, 4], descr: '<f4' },
  ];
  const files = arrays.map((_, i) => path.join(dir, `ours${i}.npy`));
  for (const [i, a] of arrays.entries()) await writeNpy(files[i], a.data, a.shape);
  const got = reference<Read>(files.map((file) => ({ op: 'npy-read', file })));
  for (const [i, a] of arrays.entries()) {
    t.equal(got[i].descr, a.descr, `${a.descr} descr`);
    t.same(got[i].shape, a.shape, `${a.descr} shape`);
    t.equal(got[i].fortran, false);
    t.same(got[i].version, [1, 0]);
    t.same(got[i].data, asNumbers(a.data), `${a.descr} values`);
    t.equal(parseNpyHeader(fs.readFileSync(files[i]), files[i]).dataOffset % 64, 0, 'data aligned to 64 bytes');
  }
  t.same(fs.readdirSync(dir).sort(), files.map((f) => path.basename(f)).sort(), 'no temporary files left');
});

t.test('writeNpy replaces an existing file atomically and round-trips through readNpy', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'x.npy');
  fs.writeFileSync(file, 'old contents');
  const data = Float32Array.from({ length: 12 }, (_, i) => i / 3);
  await writeNpy(file, data, [3, 4]);
  const back = await readNpy(file);
  t.same(back.shape, [3, 4]);
  t.same(Array.from(back.data as Float32Array), Array.from(data));
  t.same(fs.readdirSync(dir), ['x.npy']);
});

t.test('writeNpy rejects a missing folder with ERR_DATA naming the file and leaves nothing behind', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'no-such-dir', 'x.npy');
  const err = await rejection(writeNpy(file, new Uint8Array(2), [2]));
  t.type(err, DataError);
  t.equal(err.code, 'ERR_DATA');
  t.match(err.message, file);
  t.same(fs.readdirSync(dir), []);
});

t.test('writeNpy rejects a shape that does not match the data with ERR_SHAPE, bad arguments with ERR_CONFIG', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'x.npy');
  const err = await rejection(writeNpy(file, new Float32Array(5), [2, 3]));
  t.type(err, ShapeError);
  t.equal(err.code, 'ERR_SHAPE');
  t.match(err.message, file);
  t.match(err.message, /6 elements but data has 5/);
  const bad = await rejection(writeNpy(file, new Float32Array(2), [-2]));
  t.type(bad, ConfigError);
  t.equal(bad.code, 'ERR_CONFIG');
  const wrongType = await rejection(writeNpy(file, [1, 2] as unknown as Float32Array, [2]));
  t.type(wrongType, ConfigError);
  t.match(wrongType.message, /for data/);
  t.notOk(fs.existsSync(file));
});

t.test('readNpyHeader reads only the header of a 3 GiB sparse file', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'big.npy');
  await writeNpy(file, new Float32Array(1), [1]);
  // Rewrite the header for (805306368,) float32 = 3 GiB and extend the file sparsely.
  const small = fs.readFileSync(file);
  const header = small.subarray(0, parseNpyHeader(small, file).dataOffset).toString('latin1')
    .replace('(1,)', '(805306368,)')
    .replace('        \n', '\n'); // keep the header length
  fs.writeFileSync(file, Buffer.from(header, 'latin1'));
  fs.truncateSync(file, header.length + 3 * 2 ** 30);
  const h = await readNpyHeader(file);
  t.same(h.shape, [805306368]);
  t.equal(h.byteLength, 3 * 2 ** 30);
  t.equal(h.dataOffset, header.length);
});

t.test('readNpy and readNpyHeader reject a file without the NPY magic string with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'not.npy');
  fs.writeFileSync(file, 'PK\x03\x04 this is a zip, not an npy file');
  await expectDataError(t, readNpy(file), file, /not an NPY file/);
  await expectDataError(t, readNpyHeader(file), file, /not an NPY file/);
  t.throws(() => parseNpyHeader(fs.readFileSync(file), file), DataError);
});

t.test('readNpy and readNpyHeader reject a truncated header with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'h.npy');
  await writeNpy(file, new Float64Array(4), [4]);
  const full = fs.readFileSync(file);
  for (const cut of [0, 5, 9, 40]) {
    fs.writeFileSync(file, full.subarray(0, cut));
    await expectDataError(t, readNpy(file), file, /truncated NPY header/);
    await expectDataError(t, readNpyHeader(file), file, /truncated NPY header/);
  }
  fs.writeFileSync(file, full.subarray(0, 40));
  await expectDataError(t, readNpy(file), file, /needs 128 bytes, the file has 40/);
});

t.test('readNpy and readNpyHeader reject truncated data with ERR_DATA naming expected and actual bytes', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'd.npy');
  await writeNpy(file, new Float32Array(10), [2, 5]);
  const full = fs.readFileSync(file);
  fs.writeFileSync(file, full.subarray(0, full.length - 3));
  const msg = new RegExp(`needs ${full.length} bytes \\(128 header \\+ 40 data\\), the file has ${full.length - 3}`);
  await expectDataError(t, readNpy(file), file, msg);
  await expectDataError(t, readNpyHeader(file), file, msg);
});

t.test('readNpy rejects Fortran order, big-endian and unsupported dtypes with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const f = (name: string) => path.join(dir, name);
  reference([
    { op: 'npy-write', file: f('fortran.npy'), descr: '<f4', shape: [2, 3], fortran: true },
    { op: 'npy-write', file: f('big.npy'), descr: '>f4', shape: [3] },
    { op: 'npy-write', file: f('complex.npy'), descr: '<c8', shape: [3] },
    { op: 'npy-write', file: f('uint16.npy'), descr: '<u2', shape: [3] },
  ]);
  t.equal(parseNpyHeader(fs.readFileSync(f('fortran.npy')), 'x').fortranOrder, true, 'parseNpyHeader reports Fortran order');
  t.equal(parseNpyHeader(fs.readFileSync(f('big.npy')), 'x').littleEndian, false, 'parseNpyHeader reports big-endian');
  for (const read of [readNpy, readNpyHeader]) {
    await expectDataError(t, read(f('fortran.npy')), f('fortran.npy'), /Fortran order, which is not supported/);
    await expectDataError(t, read(f('big.npy')), f('big.npy'), /big-endian dtype, which is not supported/);
    await expectDataError(t, read(f('complex.npy')), f('complex.npy'), /unsupported dtype '<c8'/);
    await expectDataError(t, read(f('uint16.npy')), f('uint16.npy'), /unsupported dtype '<u2'/);
  }
});

t.test('readNpy rejects an unknown format version and a malformed header with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'v.npy');
  await writeNpy(file, new Float32Array(2), [2]);
  const buf = fs.readFileSync(file);
  buf[6] = 4;
  fs.writeFileSync(file, buf);
  await expectDataError(t, readNpy(file), file, /version 4\.0/);
  buf[6] = 1;
  buf.write("{'desc'", 10, 'latin1');
  fs.writeFileSync(file, buf);
  await expectDataError(t, readNpy(file), file, /malformed NPY header \(no descr\)/);
});

t.test('readNpy rejects a missing file with ERR_DATA naming it, and a bad path with ERR_CONFIG', async (t) => {
  const file = path.join(tmpDir(t), 'missing.npy');
  await expectDataError(t, readNpy(file), file, /no such file/);
  await expectDataError(t, readNpyHeader(file), file, /no such file/);
  const err = await rejection(readNpy('' as string));
  t.type(err, ConfigError);
});
