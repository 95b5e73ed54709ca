import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { DataError, ShapeError, TabsightError } from '../lib/errors';
import { crc32Table, readSafetensors, readSafetensorsSync, toFloat32, writeSafetensors } from '../lib/io/safetensors';

const PY = '/usr/bin/python3';
const hasPython = fs.existsSync(PY) && (() => {
  try { execFileSync(PY, ['-c', 'import numpy']); return true; } catch { return false; }
})();

/** Runs `fn`, expects an error of `cls` with `code`, and a message containing every string in `parts`. */
async function expectError(t: tap.Test, fn: () => unknown, cls: new (message: string) => TabsightError, code: string, parts: string[]): Promise<void> {
  let err: unknown;
  try { await fn(); } catch (e) { err = e; }
  t.ok(err instanceof cls, `throws ${cls.name} (got ${String(err)})`);
  t.equal((err as TabsightError)?.code, code);
  for (const p of parts) t.match((err as Error)?.message ?? '', p, `message names ${p}`);
}

/** A safetensors file from a header object and a data buffer, with header length `n` unless given. */
function rawFile(dir: string, name: string, header: unknown, data: Uint8Array = new Uint8Array(0), n?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(n ?? BigInt(json.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([head, json, data]));
  return file;
}

t.test('writeSafetensors/readSafetensors round-trip every dtype, metadata and 8-byte alignment', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'all.safetensors');
  const tensors = new Map<string, { dtype?: 'F16' | 'BF16' | 'BOOL'; shape: number[]; data: any }>([
    ['f32', { shape: [2, 3], data: Float32Array.of(1, -2.5, 3e-8, 4, 5, Infinity) }],
    ['f64', { shape: [2], data: Float64Array.of(Math.PI, -1e300) }],
    ['i64', { shape: [1], data: BigInt64Array.of(-(2n ** 62n)) }],
    ['i32', { shape: [3], data: Int32Array.of(-1, 0, 2 ** 31 - 1) }],
    ['i16', { shape: [1], data: Int16Array.of(-300) }],
    ['i8', { shape: [1], data: Int8Array.of(-7) }],
    ['u8', { shape: [3], data: Uint8Array.of(0, 128, 255) }],
    ['bool', { dtype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) }],
    ['f16', { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x3555) }], // 1, -2, 0.33325
    ['bf16', { dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc040) }], // 1, -3
    ['scalar', { shape: [], data: Float32Array.of(7) }],
    ['empty', { shape: [0, 3], data: new Float32Array(0) }],
  ]);
  await writeSafetensors(file, tensors, { arch: 'resnet18', note: 'ünïcode' });
  t.same(fs.readdirSync(dir), ['all.safetensors'], 'no temporary file is left');
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  t.equal((8 + n) % 8, 0, 'the data buffer starts on an 8-byte boundary');
  t.match(bytes.subarray(8, 8 + n).toString('utf8'), /^\{.*\} *$/, 'the header is padded with spaces');
  const back = await readSafetensors(file);
  // data_crc32 added by the writer: the CRC-32 of the data section, as Node's zlib (or the table) computes it.
  t.same(back.metadata, { arch: 'resnet18', note: 'ünïcode', data_crc32: crc32Table(bytes.subarray(8 + n)).toString(16).padStart(8, '0') });
  t.same([...back.tensors.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, src] of tensors) {
    const got = back.tensors.get(name)!;
    t.same(got.shape, src.shape, `${name} shape`);
    t.same(Array.from(got.data as ArrayLike<unknown>), Array.from(src.data as ArrayLike<unknown>), `${name} values`);
    t.equal(got.data.constructor, src.data.constructor, `${name} array type`);
  }
  t.equal(back.tensors.get('f16')!.dtype, 'F16');
  t.same(Array.from(toFloat32(back.tensors.get('f16')!)), [1, -2, Math.fround(0.333251953125)]);
  t.same(Array.from(toFloat32(back.tensors.get('bf16')!)), [1, -3]);
  t.same(Array.from(toFloat32(back.tensors.get('f64')!)), [Math.fround(Math.PI), -Infinity]);
  t.same(readSafetensorsSync(file).metadata, back.metadata, 'the sync reader agrees');
  // Overwrite in place (rename over an existing file).
  await writeSafetensors(file, { x: { shape: [1], data: Float32Array.of(2) } });
  t.same(Array.from((await readSafetensors(file)).tensors.get('x')!.data as Float32Array), [2]);
  t.same(fs.readdirSync(dir), ['all.safetensors']);
});

t.test('readSafetensors#python (numpy) reads the file we wrote', { skip: !hasPython && 'no /usr/bin/python3 with numpy' }, async (t) => {
  const file = path.join(t.testdir(), 'ours.safetensors');
  await writeSafetensors(file, {
    w: { shape: [2, 2], data: Float32Array.of(0.5, -1, 2, 3.25) },
    steps: { shape: [], data: BigInt64Array.of(41n) },
    b: { shape: [3], data: Float64Array.of(1e-9, 2, -3) },
    m: { shape: [2], data: Uint8Array.of(9, 250) },
  }, { arch: 'resnet50', in_channels: '1' });
  const script = `
import json, struct, sys, numpy as np
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
assert (8 + n) % 8 == 0
h = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out = {'__metadata__': h.pop('__metadata__')}
import zlib
out['crc'] = '%08x' % zlib.crc32(data)
types = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8', 'U8': 'u1'}
for k, v in h.items():
    b, e = v['data_offsets']
    a = np.frombuffer(data[b:e], dtype=types[v['dtype']]).reshape(v['shape'])
    out[k] = {'dtype': v['dtype'], 'shape': list(a.shape), 'values': a.ravel().tolist()}
print(json.dumps(out))`;
  const got = JSON.parse(execFileSync(PY, ['-c', script, file], { encoding: 'utf8' }));
  t.equal(got.__metadata__.data_crc32, got.crc, "data_crc32 is Python's zlib.crc32 of the data section");
  delete got.crc;
  t.same(got, {
    __metadata__: { arch: 'resnet50', in_channels: '1', data_crc32: got.__metadata__.data_crc32 },
    w: { dtype: 'F32', shape: [2, 2], values: [0.5, -1, 2, 3.25] },
    steps: { dtype: 'I64', shape: [], values: [41] },
    b: { dtype: 'F64', shape: [3], values: [1e-9, 2, -3] },
    m: { dtype: 'U8', shape: [2], values: [9, 250] },
  });
});

t.test('readSafetensors reads a file written by a python writer (unaligned offsets, F16, BF16)', { skip: !hasPython && 'no /usr/bin/python3 with numpy' }, async (t) => {
  const file = path.join(t.testdir(), 'theirs.safetensors');
  const script = `
import json, struct, sys, numpy as np
rng = np.random.default_rng(7)
ts = {
  'flag': np.array([1, 0, 1], dtype='u1'),            # 3 bytes: what follows is unaligned
  'conv1.weight': rng.standard_normal((4, 1, 3, 3)).astype('<f4'),
  'bn1.num_batches_tracked': np.array(12345678901, dtype='<i8'),
  'half': np.array([0.1, -65504, 3], dtype='<f2'),
  'idx': np.array([-5, 7], dtype='<i4'),
  'd': np.array([1/3], dtype='<f8'),
}
bf = np.array([1.5, -0.25], dtype='<f4').view('<u4') >> 16
header, chunks, off = {'__metadata__': {'arch': 'resnet18', 'small_stem': 'true'}}, [], 0
names = {'u1': 'U8', 'f4': 'F32', 'i8': 'I64', 'f2': 'F16', 'i4': 'I32', 'f8': 'F64'}
for k, a in ts.items():
    b = a.tobytes(); header[k] = {'dtype': names[a.dtype.str[1:]], 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
    chunks.append(b); off += len(b)
b = bf.astype('<u2').tobytes(); header['bf'] = {'dtype': 'BF16', 'shape': [2], 'data_offsets': [off, off + 4]}; chunks.append(b)
h = json.dumps(header).encode()
h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(chunks))
print(json.dumps({k: a.astype('<f8').ravel().tolist() for k, a in ts.items()}))`;
  const expected = JSON.parse(execFileSync(PY, ['-c', script, file], { encoding: 'utf8' })) as Record<string, number[]>;
  const { tensors, metadata } = await readSafetensors(file);
  t.same(metadata, { arch: 'resnet18', small_stem: 'true' });
  t.same(tensors.get('conv1.weight')!.shape, [4, 1, 3, 3]);
  t.same(Array.from(tensors.get('conv1.weight')!.data as Float32Array), expected['conv1.weight'].map(Math.fround));
  t.equal(tensors.get('bn1.num_batches_tracked')!.dtype, 'I64');
  t.same(tensors.get('bn1.num_batches_tracked')!.shape, []);
  t.equal((tensors.get('bn1.num_batches_tracked')!.data as BigInt64Array)[0], 12345678901n);
  t.same(Array.from(tensors.get('flag')!.data as Uint8Array), [1, 0, 1]);
  t.same(Array.from(toFloat32(tensors.get('half')!)), expected.half.map(Math.fround));
  t.same(Array.from(tensors.get('idx')!.data as Int32Array), [-5, 7]);
  t.same(Array.from(tensors.get('d')!.data as Float64Array), expected.d);
  t.same(Array.from(toFloat32(tensors.get('bf')!)), [1.5, -0.25]);
});

t.test('readSafetensors rejects malformed files with ERR_DATA naming the file and the tensor', async (t) => {
  const dir = t.testdir();
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: [string, () => string, string[]][] = [
    ['too short', () => { const f = path.join(dir, 'short.safetensors'); fs.writeFileSync(f, Buffer.from([1, 2, 3])); return f; }, ['too short']],
    ['header length beyond the file', () => rawFile(dir, 'long.safetensors', { w: ok }, new Uint8Array(8), 1000n), ['header length 1000 goes beyond the end of the file']],
    ['bad JSON', () => rawFile(dir, 'json.safetensors', '{"w": {"dtype": "F32",'), ['not valid JSON']],
    ['header not an object', () => rawFile(dir, 'array.safetensors', '[1, 2]'), ['not a JSON object']],
    ['unknown dtype', () => rawFile(dir, 'dtype.safetensors', { 'layer1.0.conv1.weight': { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), ['"layer1.0.conv1.weight"', 'unknown dtype "F8"']],
    ['shape and dtype disagree with the byte range', () => rawFile(dir, 'size.safetensors', { 'bn1.weight': { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), ['"bn1.weight"', 'needs 12 bytes', 'hold 8']],
    ['offsets out of range', () => rawFile(dir, 'range.safetensors', { 'fc.bias': { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), ['"fc.bias"', 'beyond the 8-byte data buffer']],
    ['offsets reversed', () => rawFile(dir, 'rev.safetensors', { x: { dtype: 'U8', shape: [0], data_offsets: [4, 2] } }, new Uint8Array(8)), ['"x"', 'invalid data_offsets']],
    ['overlapping tensors', () => rawFile(dir, 'overlap.safetensors', { a: ok, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), ['"b"', 'overlap tensor "a"']],
    ['negative dim', () => rawFile(dir, 'shape.safetensors', { conv: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)), ['"conv"', 'invalid shape']],
    ['non-string metadata', () => rawFile(dir, 'meta.safetensors', { __metadata__: { epochs: 3 }, w: ok }, new Uint8Array(8)), ['"epochs" is not a string']],
  ];
  for (const [what, make, parts] of cases) {
    const file = make();
    await t.test(what, async (t) => {
      await expectError(t, () => readSafetensors(file), DataError, 'ERR_DATA', [file, ...parts]);
      await expectError(t, () => readSafetensorsSync(file), DataError, 'ERR_DATA', [file]);
    });
  }
  await expectError(t, () => readSafetensors(path.join(dir, 'missing.safetensors')), DataError, 'ERR_DATA', ['missing.safetensors']);
});

t.test('writeSafetensors rejects bad tensors with ERR_SHAPE and write failures with ERR_DATA', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'w.safetensors');
  await expectError(t, () => writeSafetensors(file, { 'layer2.0.conv1.weight': { shape: [2, 3], data: new Float32Array(5) } }),
    ShapeError, 'ERR_SHAPE', ['"layer2.0.conv1.weight"', 'Expected 24 bytes', 'received 20']);
  await expectError(t, () => writeSafetensors(file, { half: { shape: [1], data: new Uint16Array(1) } }), ShapeError, 'ERR_SHAPE', ['"half"', 'F16 or BF16']);
  await expectError(t, () => writeSafetensors(file, { x: { shape: [1.5], data: new Float32Array(1) } }), ShapeError, 'ERR_SHAPE', ['"x"']);
  const nowhere = path.join(dir, 'no-such-dir', 'w.safetensors');
  await expectError(t, () => writeSafetensors(nowhere, { x: { shape: [1], data: new Float32Array(1) } }), DataError, 'ERR_DATA', [nowhere]);
  t.same(fs.readdirSync(dir), [], 'nothing was written');
});
