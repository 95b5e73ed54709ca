/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), C order,
 * little-endian, for the dtypes tabsight uses.
 *
 * `parseNpyHeader` describes a header as it is written (so a caller can see
 * that a file is big-endian or Fortran-ordered); `readNpyHeader` and
 * `readNpy` also refuse what they cannot hand on unchanged.
 */
import { promises as fsp } from 'node:fs';
import { DataError, ShapeError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { string, invalid, isNumber } from '../validate';
import { ioReason } from '../io/read';
import { halfToFloat } from '../io/safetensors';

export type NpyDtype = 'uint8' | 'float16' | 'float32' | 'float64' | 'int64' | 'int32' | 'bool';

export interface NpyHeader {
  /** Element type. */
  dtype: NpyDtype;
  /** Array shape; `[]` for a 0-d array. */
  shape: number[];
  /** True for Fortran (column-major) order, which the readers refuse. */
  fortranOrder: boolean;
  /** Byte offset of the first element (header size). */
  dataOffset: number;
  /** False for a big-endian dtype such as `>f4`, which the readers refuse. */
  littleEndian: boolean;
  /** Format version, e.g. `'1.0'`. */
  version: string;
  /** Size of the data in bytes: product(shape) × itemsize. */
  byteLength: number;
}

export type NpyArray = Uint8Array | Float32Array | Float64Array | Int32Array | BigInt64Array;

export interface NpyData {
  /** bool → Uint8Array (0/1), float16 → Float32Array, int64 → BigInt64Array. */
  data: NpyArray;
  shape: number[];
  /** dtype as stored in the file. */
  dtype: NpyDtype;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const SUPPORTED = "'|u1', '|b1', '<f2', '<f4', '<f8', '<i4', '<i8'";
const KINDS: Record<string, { dtype: NpyDtype; size: number }> = {
  u1: { dtype: 'uint8', size: 1 },
  b1: { dtype: 'bool', size: 1 },
  f2: { dtype: 'float16', size: 2 },
  f4: { dtype: 'float32', size: 4 },
  f8: { dtype: 'float64', size: 8 },
  i4: { dtype: 'int32', size: 4 },
  i8: { dtype: 'int64', size: 8 },
};

const isHostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Header text longer than this is treated as corrupt (numpy itself refuses > 10000 by default). */
const MAX_HEADER = 1 << 20;

function prefixLength(major: number): number {
  return major === 1 ? 10 : 12;
}

/**
 * Parses the header at the start of `buf` (the buffer may hold only the
 * header). `file` is used in error messages. Throws DataError for a bad
 * magic string, a truncated or malformed header, an unknown version and an
 * unsupported dtype.
 */
export function parseNpyHeader(buf: Uint8Array, file: string): NpyHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const head = b.subarray(0, MAGIC.length);
  if (!head.equals(MAGIC.subarray(0, head.length))) {
    throw new DataError(`${file} is not an NPY file: it does not start with the magic string \\x93NUMPY`);
  }
  if (b.length < 8) {
    throw new DataError(`${file} has a truncated NPY header: expected at least 10 bytes, the file has ${b.length}`);
  }
  const major = b[6];
  const minor = b[7];
  if (major < 1 || major > 3) {
    throw new DataError(`${file} has NPY format version ${major}.${minor}; supported versions are 1.0, 2.0 and 3.0`);
  }
  const pre = prefixLength(major);
  if (b.length < pre) {
    throw new DataError(`${file} has a truncated NPY header: expected at least ${pre} bytes, the file has ${b.length}`);
  }
  const headerLen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  if (headerLen > MAX_HEADER) {
    throw new DataError(`${file} has a corrupt NPY header: it declares a header of ${headerLen} bytes (at most ${MAX_HEADER} allowed)`);
  }
  const dataOffset = pre + headerLen;
  if (b.length < dataOffset) {
    throw new DataError(
      `${file} has a truncated NPY header: the header needs ${dataOffset} bytes, the file has ${b.length}`,
    );
  }
  const text = b.subarray(pre, dataOffset).toString(major === 3 ? 'utf8' : 'latin1');
  const malformed = (what: string) => new DataError(`${file} has a malformed NPY header (${what}): ${text.trim()}`);

  const descrMatch = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(text);
  if (!descrMatch) {
    if (/['"]descr['"]\s*:\s*\[/.test(text)) {
      throw new DataError(`${file} has an unsupported dtype (a structured dtype); supported dtypes are ${SUPPORTED}`);
    }
    throw malformed('no descr');
  }
  const descr = descrMatch[2];
  const order = descr[0];
  const kind = KINDS[descr.slice(1)];
  if (!'<>|='.includes(order) || !kind) {
    throw new DataError(`${file} has an unsupported dtype '${descr}'; supported dtypes are ${SUPPORTED}`);
  }
  const littleEndian = kind.size === 1 || order === '<' || order === '|' || (order === '=' && isHostLittleEndian);

  const fortranMatch = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  if (!fortranMatch) throw malformed('no fortran_order');
  const shapeMatch = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!shapeMatch) throw malformed('no shape');
  const parts = shapeMatch[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const shape = parts.map((s) => Number(s.replace(/L$/, '')));
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw malformed(`bad shape (${shapeMatch[1]})`);

  const count = shape.reduce((a, d) => a * d, 1);
  return {
    dtype: kind.dtype,
    shape,
    fortranOrder: fortranMatch[1] === 'True',
    dataOffset,
    littleEndian,
    version: `${major}.${minor}`,
    byteLength: count * kind.size,
  };
}

/** Throws for what the readers cannot hand on unchanged: Fortran order, big-endian. */
function checkReadable(h: NpyHeader, file: string): void {
  if (h.fortranOrder) {
    throw new DataError(
      `${file} is stored in Fortran order, which is not supported; save it with np.save(path, np.ascontiguousarray(a))`,
    );
  }
  if (!h.littleEndian) {
    throw new DataError(
      `${file} has a big-endian dtype, which is not supported; save it with np.save(path, a.astype(a.dtype.newbyteorder('<')))`,
    );
  }
}

function checkSize(h: NpyHeader, file: string, size: number): void {
  const expected = h.dataOffset + h.byteLength;
  if (size < expected) {
    throw new DataError(
      `${file} is truncated: shape (${h.shape.join(', ')}) of ${h.dtype} needs ${expected} bytes ` +
        `(${h.dataOffset} header + ${h.byteLength} data), the file has ${size}`,
    );
  }
}

function ioError(file: string, err: unknown, verb = 'read'): DataError {
  return new DataError(`Cannot ${verb} ${file}: ${ioReason(err)}`, { cause: err });
}

/**
 * Reads only the header of an NPY file (for memory-mapping by the native
 * side) and checks that the file holds all the data it announces, that it is
 * C-ordered and little-endian.
 */
export async function readNpyHeader(file: string): Promise<NpyHeader> {
  string(file, 'path');
  let fh: fsp.FileHandle | undefined;
  try {
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      throw ioError(file, err);
    }
    const { size } = await fh.stat();
    const prefix = Buffer.alloc(Math.min(12, size));
    await fh.read(prefix, 0, prefix.length, 0);
    let full = prefix;
    if (prefix.length >= 10 && prefix.subarray(0, 6).equals(MAGIC)) {
      const major = prefix[6];
      const need = major === 1 ? 10 + prefix.readUInt16LE(8) : prefix.length >= 12 ? 12 + prefix.readUInt32LE(8) : 0;
      if (need > prefix.length && need <= MAX_HEADER + 12) {
        full = Buffer.alloc(Math.min(need, size));
        await fh.read(full, 0, full.length, 0);
      }
    }
    const header = parseNpyHeader(full, file);
    checkReadable(header, file);
    checkSize(header, file, size);
    return header;
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw ioError(file, err);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** `count` little-endian float16 values from `src` as float32 (exact: every half is a float). */
export function float16ToFloat32(src: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  return out;
}

/** Reads a whole NPY file. The returned array owns a fresh, aligned buffer. */
export async function readNpy(file: string): Promise<NpyData> {
  string(file, 'path');
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (err) {
    throw ioError(file, err);
  }
  const h = parseNpyHeader(buf, file);
  checkReadable(h, file);
  checkSize(h, file, buf.length);
  const count = h.shape.reduce((a, d) => a * d, 1);
  const start = buf.byteOffset + h.dataOffset;
  const bytes = buf.buffer.slice(start, start + h.byteLength); // a copy, so aligned
  let data: NpyArray;
  switch (h.dtype) {
    case 'uint8':
    case 'bool':
      data = new Uint8Array(bytes);
      break;
    case 'float16':
      data = float16ToFloat32(new Uint8Array(bytes), count);
      break;
    case 'float32':
      data = new Float32Array(bytes);
      break;
    case 'float64':
      data = new Float64Array(bytes);
      break;
    case 'int32':
      data = new Int32Array(bytes);
      break;
    case 'int64':
      data = new BigInt64Array(bytes);
      break;
  }
  return { data, shape: h.shape, dtype: h.dtype };
}

function descrOf(data: unknown): string {
  if (data instanceof Uint8Array) return '|u1';
  if (data instanceof Float32Array) return '<f4';
  if (data instanceof Float64Array) return '<f8';
  if (data instanceof Int32Array) return '<i4';
  if (data instanceof BigInt64Array) return '<i8';
  throw invalid('Uint8Array, Float32Array, Float64Array, Int32Array or BigInt64Array', 'data', data);
}

/** Builds a version 1.0 (or 2.0 when needed) header, padded to 64 bytes as numpy does. */
function buildHeader(descr: string, shape: number[]): Buffer {
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const pad = (pre: number) => Math.ceil((pre + dict.length + 1) / 64) * 64 - pre;
  const major = pad(10) <= 65535 ? 1 : 2;
  const pre = major === 1 ? 10 : 12;
  const padded = dict.padEnd(pad(pre) - 1, ' ') + '\n';
  const out = Buffer.alloc(pre + padded.length);
  MAGIC.copy(out, 0);
  out[6] = major;
  out[7] = 0;
  if (major === 1) out.writeUInt16LE(padded.length, 8);
  else out.writeUInt32LE(padded.length, 8);
  out.write(padded, pre, 'latin1');
  return out;
}

/**
 * Writes `data` with `shape` as an NPY file, atomically: a temporary file in
 * the same folder is written, flushed and renamed over `file`.
 * The dtype follows the array: Uint8Array → uint8, Float32Array → float32,
 * Float64Array → float64, Int32Array → int32, BigInt64Array → int64.
 */
export async function writeNpy(file: string, data: NpyArray, shape: readonly number[]): Promise<void> {
  string(file, 'path');
  const descr = descrOf(data);
  if (!Array.isArray(shape) || shape.some((d) => !isNumber(d) || !Number.isInteger(d) || d < 0)) {
    throw invalid('array of non-negative integers', 'shape', shape);
  }
  const count = shape.reduce((a, d) => a * d, 1);
  if (count !== data.length) {
    throw new ShapeError(
      `writeNpy ${file}: shape (${shape.join(', ')}) holds ${count} elements but data has ${data.length}`,
    );
  }
  if (!isHostLittleEndian) throw new DataError(`writeNpy ${file}: big-endian hosts are not supported`);
  const header = buildHeader(descr, [...shape]);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  try {
    await writeFileAtomic(file, [header, body]);
  } catch (err) {
    if (err instanceof DataError) throw err; // already names the file
    throw ioError(file, err, 'write');
  }
}
