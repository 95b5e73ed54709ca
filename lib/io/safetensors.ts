/**
 * A small reader and writer for the safetensors format
 * (https://github.com/huggingface/safetensors):
 *
 *   u64 little-endian N | N bytes of JSON header | byte buffer
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
 * (offsets relative to the start of the byte buffer) and may hold a
 * "__metadata__" map of strings. Writers pad the header with spaces so that
 * the byte buffer starts on an 8-byte boundary.
 *
 * Tensors are read as typed arrays. F16 and BF16 have no JS typed array: they
 * come back as Uint16Array of raw bits; `toFloat32()` converts them. BOOL comes
 * back as Uint8Array. Data are little-endian, as on every platform Node runs on.
 * Tensors whose offset suits their element size are views over the one buffer
 * read from the file (no copy); the others are copied.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { writeFileAtomic } from './atomic';
import { DataError, ShapeError } from '../errors';

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type TensorData =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface SafeTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export interface Safetensors {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Tensors to write: `dtype` may be left out where the typed array says it. */
export type TensorInput = { dtype?: Dtype; shape: readonly number[]; data: TensorData };

const ITEM_SIZE: Record<Dtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

type ArrayCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData; BYTES_PER_ELEMENT: number };
const CTOR: Record<Dtype, ArrayCtor> = {
  F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I64: BigInt64Array,
  I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array,
};

/** The safetensors spec caps the header at 100 MB. */
const MAX_HEADER = 100 * 1024 * 1024;

/** The metadata key of the data section's CRC-32 (8 lowercase hex digits), as the native writer sets it. */
export const DATA_CRC_KEY = 'data_crc32';

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE, as zlib's crc32) of `bytes`, continuing from `crc`: Node's zlib.crc32 where it has one (Node ≥ 20.15). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  // Node 20's zlib.crc32 returns 0 for a view of a zero-length ArrayBuffer, whatever crc it continues.
  if (bytes.length === 0) return crc >>> 0;
  const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  return native ? native(bytes, crc) : crc32Table(bytes, crc);
}

/** crc32 by a bytewise table, for Node versions without zlib.crc32. */
export function crc32Table(bytes: Uint8Array, crc = 0): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, i) => {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const hex32 = (v: number) => (v >>> 0).toString(16).padStart(8, '0');

function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ITEM_SIZE, value);
}

function bad(file: string, what: string): DataError {
  return new DataError(`Invalid safetensors file ${file}: ${what}`);
}

export interface HeaderEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range in the data section. */
  begin: number;
  end: number;
}

/**
 * A parsed safetensors header (the JSON after the length), checked against a
 * data section of `dataLen` bytes: metadata strings, known dtypes, shapes,
 * and offsets inside the data that hold exactly shape × dtype bytes.
 * `fail(what)` makes the error. For readers of the header alone (a
 * checkpoint's position before a resume) as for parseSafetensors.
 */
export function checkHeader(header: unknown, dataLen: number, fail: (what: string) => DataError): { metadata: Record<string, string>; entries: HeaderEntry[] } {
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw fail('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw fail(`__metadata__ value "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (info === null || typeof info !== 'object') throw fail(`tensor "${name}" has no {dtype, shape, data_offsets}`);
    if (!isDtype(info.dtype)) throw fail(`tensor "${name}" has unknown dtype ${JSON.stringify(info.dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[0] > off[1]) {
      throw fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataLen) {
      throw fail(`tensor "${name}" data_offsets [${begin}, ${end}] go beyond the ${dataLen}-byte data buffer`);
    }
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * ITEM_SIZE[info.dtype];
    if (expected !== end - begin) {
      throw fail(`tensor "${name}" of shape [${shape.join(', ')}] and dtype ${info.dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.push({ name, dtype: info.dtype, shape: shape as number[], begin, end });
  }
  return { metadata, entries };
}

/** Parses safetensors bytes; `file` names the source in error messages. */
export function parseSafetensors(bytes: Uint8Array, file = '<buffer>'): Safetensors {
  if (bytes.byteLength < 8) throw bad(file, `${bytes.byteLength} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(bytes.byteLength - 8)) {
    throw bad(file, `header length ${n} goes beyond the end of the file (${bytes.byteLength} bytes)`);
  }
  const headerLen = Number(n);
  if (headerLen > MAX_HEADER) throw bad(file, `header length ${headerLen} exceeds the 100 MB limit`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLen).toString('utf8'));
  } catch (err) {
    throw new DataError(`Invalid safetensors file ${file}: the header is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const dataStart = 8 + headerLen;
  const { metadata, entries } = checkHeader(header, bytes.byteLength - dataStart, (what) => bad(file, what));
  if (metadata[DATA_CRC_KEY] !== undefined) {
    const got = hex32(crc32(bytes.subarray(dataStart)));
    if (got !== metadata[DATA_CRC_KEY]) {
      throw bad(file, `its data section does not match its checksum (CRC-32 ${got}, ${DATA_CRC_KEY} ${metadata[DATA_CRC_KEY]}): the file is damaged`);
    }
  }
  // Empty tensors hold no bytes and cannot overlap anything.
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.begin < prev.end) {
      throw bad(file, `tensor "${cur.name}" data_offsets [${cur.begin}, ${cur.end}] overlap tensor "${prev.name}" [${prev.begin}, ${prev.end}]`);
    }
  }
  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const Ctor = CTOR[e.dtype];
    const offset = bytes.byteOffset + dataStart + e.begin;
    const count = (e.end - e.begin) / Ctor.BYTES_PER_ELEMENT;
    // A view when aligned; a copy otherwise (typed arrays need aligned offsets).
    const data = offset % Ctor.BYTES_PER_ELEMENT === 0
      ? new Ctor(bytes.buffer, offset, count)
      : new Ctor(bytes.buffer.slice(offset, offset + e.end - e.begin), 0, count);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/**
 * Reads a safetensors file's header alone (names, shapes, metadata), checked
 * as parseSafetensors checks it against the file's size: for a checkpoint's
 * position or a weights file's kind without reading gigabytes. The data's
 * CRC is not checked. `fail(what)` makes the error (by default
 * `Invalid safetensors file FILE: what`).
 */
export function readSafetensorsHeaderSync(
  file: string,
  fail: (what: string, cause?: unknown) => DataError = (what, cause) => new DataError(`Invalid safetensors file ${file}: ${what}`, { cause }),
): { metadata: Record<string, string>; entries: HeaderEntry[] } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw readError(file, err);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw fail(`it holds ${size} bytes, less than the 8-byte header length`);
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = len.readBigUInt64LE(0);
    if (n > BigInt(size - 8)) throw fail(`its header length ${n} exceeds the ${size - 8} bytes after it`);
    if (n > BigInt(MAX_HEADER)) throw fail(`its header length ${n} exceeds the 100 MB limit`);
    const header = Buffer.alloc(Number(n));
    if (fs.readSync(fd, header, 0, header.length, 8) !== header.length) throw fail('it changed while it was read');
    let parsed: unknown;
    try {
      parsed = JSON.parse(header.toString('utf8'));
    } catch (err) {
      throw fail(`its header is not valid JSON: ${(err as Error).message}`, err);
    }
    return checkHeader(parsed, size - 8 - Number(n), (what) => fail(what));
  } finally {
    fs.closeSync(fd);
  }
}

function readError(file: string, err: unknown): DataError {
  return new DataError(`Cannot read safetensors file ${file}: ${(err as Error).message}`, { cause: err });
}

/** Reads a safetensors file. Errors are DataError naming the file and the tensor. */
export async function readSafetensors(file: string): Promise<Safetensors> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (err) {
    throw readError(file, err);
  }
  return parseSafetensors(bytes, file);
}

/** Synchronous `readSafetensors`. */
export function readSafetensorsSync(file: string): Safetensors {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw readError(file, err);
  }
  return parseSafetensors(bytes, file);
}

function dtypeOf(name: string, t: TensorInput): Dtype {
  if (t.dtype !== undefined) {
    if (!isDtype(t.dtype)) throw new ShapeError(`Expected a safetensors dtype for tensor "${name}" but received ${JSON.stringify(t.dtype)}`);
    return t.dtype;
  }
  const d = t.data;
  if (d instanceof Float32Array) return 'F32';
  if (d instanceof Float64Array) return 'F64';
  if (d instanceof BigInt64Array) return 'I64';
  if (d instanceof Int32Array) return 'I32';
  if (d instanceof Int16Array) return 'I16';
  if (d instanceof Int8Array) return 'I8';
  if (d instanceof Uint8Array) return 'U8';
  throw new ShapeError(`Expected a dtype for tensor "${name}" (a ${d.constructor.name} could be F16 or BF16)`);
}

/** Serialises tensors and metadata to safetensors bytes (header, then data, in order). */
export function encodeSafetensors(
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata: Record<string, string> = {},
): Buffer[] {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new ShapeError(`Expected string for metadata "${k}" but received ${typeof v}`);
  }
  // Always this file's own checksum (metadata copied from another file carries that file's).
  const meta = { ...metadata, [DATA_CRC_KEY]: '' };
  header.__metadata__ = meta;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new ShapeError('Expected a tensor name other than "__metadata__"');
    const dtype = dtypeOf(name, t);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ShapeError(`Expected non-negative integer dims for the shape of tensor "${name}" but received ${JSON.stringify(t.shape)}`);
    }
    const bytes = t.shape.reduce((a, b) => a * b, 1) * ITEM_SIZE[dtype];
    if (t.data.byteLength !== bytes) {
      throw new ShapeError(`Expected ${bytes} bytes for tensor "${name}" (shape [${t.shape.join(', ')}], ${dtype}) but received ${t.data.byteLength}`);
    }
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    chunks.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    offset += bytes;
  }
  meta[DATA_CRC_KEY] = hex32(chunks.reduce((crc, c) => crc32(c, crc), 0));
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + len) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json, 'utf8'));
  head.writeBigUInt64LE(BigInt(head.length - 8), 0);
  head.write(json, 8, 'utf8');
  return [head, ...chunks];
}

/**
 * Writes a safetensors file atomically: to a temporary file in the same
 * folder, flushed, then renamed over `file`.
 */
export async function writeSafetensors(
  file: string,
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const chunks = encodeSafetensors(tensors, metadata);
  try {
    await writeFileAtomic(file, chunks);
  } catch (err) {
    throw new DataError(`Cannot write safetensors file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** An IEEE half-precision bit pattern as a number. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A floating-point tensor as Float32Array (F32 as is; F64, F16, BF16 converted). */
export function toFloat32(t: SafeTensor, name = 'tensor'): Float32Array {
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'F64': return Float32Array.from(t.data as Float64Array);
    case 'F16': return Float32Array.from(t.data as Uint16Array, halfToFloat);
    case 'BF16': {
      const bits = new Uint32Array((t.data as Uint16Array).length);
      (t.data as Uint16Array).forEach((b, i) => { bits[i] = b << 16; });
      return new Float32Array(bits.buffer);
    }
    default:
      throw new DataError(`Expected a floating-point dtype for ${name} but received ${t.dtype}`);
  }
}
