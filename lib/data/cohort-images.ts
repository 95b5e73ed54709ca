/**
 * The image side of a cohort: checks an N×C×H×W NPY store (header, shape,
 * NaN/Inf scanned in chunks), or converts an index of per-subject NIfTI /
 * PNG / DICOM files once into a cached float32 NPY store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataError } from '../errors';
import type { CsvTable } from './csv';
import { readDicom } from './dicom';
import { readNifti } from './nifti';
import { float16ToFloat32, readNpyHeader, type NpyHeader } from './npy';
import { readPng } from './png';
import type { ImagesConfig } from './cohort-schema';
import { ioReason } from '../io/read';
import { AtomicFile, makeDirs } from '../io/atomic';
import { processAlive } from '../io/process';

export type ImageDtype = 'uint8' | 'float16' | 'float32';

/** An N×C×H×W NPY store, to be memory-mapped by the native side. */
export interface CohortImages {
  kind: 'npy';
  /** Absolute path of the .npy file. */
  path: string;
  /** Byte offset of the first element. */
  offset: number;
  dtype: ImageDtype;
  shape: [number, number, number, number];
  /** `'npy'` for a store given in cohort.yaml; the format of the files a cached store was converted from. */
  source: 'npy' | 'nifti' | 'png' | 'dicom';
  /** For a converted store: the index CSV it was made from. */
  index?: string;
}

/** Which subject each image row belongs to, for messages. */
export interface ImageIds {
  ids: readonly string[];
  /** Spreadsheet row of each id in `file`. */
  rows: readonly number[];
  file: string;
}

export interface ImageStoreOptions {
  /** Scan float stores for NaN/Inf (skipped when an earlier scan of the same unchanged file passed). @default true */
  scan?: boolean;
  /** Called as images are converted. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * What a store's values mean to an encoder: 'uint8' (0–255, scaled by 1/255)
 * or 'float32' (the values as they are). A float16 store is a float32 store
 * in half the bytes: every half widens to float32 exactly, so a run trained
 * on either takes images of both.
 */
export function imageValueType(dtype: ImageDtype): 'uint8' | 'float32' {
  return dtype === 'uint8' ? 'uint8' : 'float32';
}

/** Bytes per element of an image store of `dtype`. */
export function imageItemBytes(dtype: ImageDtype): number {
  return dtype === 'uint8' ? 1 : dtype === 'float16' ? 2 : 4;
}

/**
 * Raw little-endian bytes of an image store (whole images) as the array the
 * encoders take: uint8 as is (a view of `bytes`), float16 and float32 as a
 * fresh, aligned Float32Array holding the stored values.
 */
export function decodeImageBytes(bytes: Uint8Array, dtype: ImageDtype): Uint8Array | Float32Array {
  if (dtype === 'uint8') return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  if (dtype === 'float16') return float16ToFloat32(bytes, bytes.length / 2);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/**
 * The first NaN or ±Inf in `data` (whole images of `shape` = [C, H, W], one
 * after another) as a DataError naming the file, the image (`index` maps the
 * position in `data` to the store index; its id too when `ids` are given) and
 * the pixel; undefined when every value is finite.
 */
export function nonFiniteImageError(
  data: ArrayLike<number>, shape: readonly number[], file: string, index: (i: number) => number, ids?: readonly string[],
): DataError | undefined {
  const [, h, w] = shape;
  const per = shape[0] * h * w;
  for (let k = 0; k < data.length; k++) {
    const v = data[k];
    if (v - v === 0) continue; // finite
    const i = index(Math.floor(k / per));
    const e = k % per;
    const id = ids ? ` (id "${ids[i]}")` : '';
    return new DataError(
      `${file}: image ${i}${id} has ${Number.isNaN(v) ? 'NaN' : 'Inf'} at channel ${Math.floor(e / (h * w))}, y ${Math.floor((e % (h * w)) / w)}, x ${e % w}; image values must be finite`,
    );
  }
  return undefined;
}

export const CACHE_DIR = '.tabsight-cache';
const CHUNK_BYTES = 4 << 20;
const CONVERT_CONCURRENCY = 4;
const STORE_VERSION = 'tabsight-images-v1';

const where = (ref: ImageIds, i: number) => `id "${ref.ids[i]}", row ${ref.rows[i]} of ${ref.file}`;

/** Checks an NPY image store against its ids; scans float data for NaN/Inf. */
export async function openNpyImages(
  file: string,
  ref: ImageIds,
  cohortDir: string,
  size: readonly [number, number] | undefined,
  opts: ImageStoreOptions = {},
): Promise<CohortImages> {
  const h = await readNpyHeader(file);
  if (h.dtype !== 'uint8' && h.dtype !== 'float16' && h.dtype !== 'float32') {
    throw new DataError(`${file} has dtype ${h.dtype}; an image store must be uint8, float16 or float32`);
  }
  const shape = h.shape;
  if (shape.length !== 4) {
    throw new DataError(`${file} has shape (${shape.join(', ')}), rank ${shape.length}; an image store must be N×C×H×W (rank 4)`);
  }
  const [n, c, hh, ww] = shape;
  if (c < 1 || hh < 1 || ww < 1) throw new DataError(`${file} has shape (${shape.join(', ')}); C, H and W must be at least 1`);
  if (n !== ref.ids.length) {
    const detail =
      n < ref.ids.length
        ? `${ref.file} row ${ref.rows[n]} (id "${ref.ids[n]}") and later have no image`
        : `images ${ref.ids.length} to ${n - 1} have no id`;
    throw new DataError(`${file} holds ${n} images (shape (${shape.join(', ')})) but ${ref.file} lists ${ref.ids.length} ids: ${detail}`);
  }
  if (size && (hh !== size[0] || ww !== size[1])) {
    throw new DataError(`${file} has images of ${hh}×${ww} (shape (${shape.join(', ')})) but images.size asks for ${size[0]}×${size[1]}`);
  }
  if (opts.scan !== false && h.dtype !== 'uint8') await scanOnce(file, h, ref, path.join(cohortDir, CACHE_DIR));
  return { kind: 'npy', path: path.resolve(file), offset: h.dataOffset, dtype: h.dtype, shape: [n, c, hh, ww], source: 'npy' };
}

/** Scans unless a marker says this exact file (size, mtime, inode) was scanned clean before. */
async function scanOnce(file: string, h: NpyHeader, ref: ImageIds, cacheDir: string): Promise<void> {
  const st = await fsp.stat(file);
  const key = createHash('sha256')
    .update(JSON.stringify([path.resolve(file), st.size, st.mtimeMs, st.ctimeMs, st.ino, h.dataOffset, h.dtype, h.shape]))
    .digest('hex')
    .slice(0, 16);
  const marker = path.join(cacheDir, `scan-${key}.ok`);
  if (await exists(marker)) return;
  await scanFinite(file, h, ref);
  try {
    makeDirs(cacheDir);
    for (const f of await fsp.readdir(cacheDir)) if (/^scan-[0-9a-f]+\.ok$/.test(f)) await fsp.unlink(path.join(cacheDir, f)).catch(() => undefined);
    await fsp.writeFile(marker, `${path.resolve(file)}\n`);
  } catch {
    // A read-only cohort folder only costs a rescan next time.
  }
}

async function exists(file: string): Promise<boolean> {
  return fsp.stat(file).then(
    () => true,
    () => false,
  );
}

/** Reads the data in chunks of whole images and throws at the first NaN or ±Inf. */
export async function scanFinite(file: string, h: NpyHeader, ref: ImageIds): Promise<void> {
  const [n, c, hh, ww] = h.shape;
  const per = c * hh * ww;
  const item = h.dtype === 'float16' ? 2 : 4;
  const imageBytes = per * item;
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / imageBytes));
  const buf = new Uint8Array(perChunk * imageBytes);
  const fh = await fsp.open(file, 'r');
  try {
    for (let i0 = 0; i0 < n; i0 += perChunk) {
      const len = Math.min(perChunk, n - i0) * imageBytes;
      for (let got = 0; got < len; ) {
        const { bytesRead } = await fh.read(buf, got, len - got, h.dataOffset + i0 * imageBytes + got);
        if (bytesRead === 0) throw new DataError(`${file} is truncated: it ends inside image ${i0} (${where(ref, i0)})`);
        got += bytesRead;
      }
      let bad = -1;
      let nan = false;
      if (item === 4) {
        const u = new Uint32Array(buf.buffer, 0, len / 4);
        for (let k = 0; k < u.length; k++) {
          if ((u[k] & 0x7f800000) === 0x7f800000) {
            bad = k;
            nan = (u[k] & 0x7fffff) !== 0;
            break;
          }
        }
      } else {
        const u = new Uint16Array(buf.buffer, 0, len / 2);
        for (let k = 0; k < u.length; k++) {
          if ((u[k] & 0x7c00) === 0x7c00) {
            bad = k;
            nan = (u[k] & 0x3ff) !== 0;
            break;
          }
        }
      }
      if (bad >= 0) {
        const i = i0 + Math.floor(bad / per);
        const e = bad % per;
        const ch = Math.floor(e / (hh * ww));
        const y = Math.floor((e % (hh * ww)) / ww);
        throw new DataError(
          `${file}: image ${i} (${where(ref, i)}) has ${nan ? 'NaN' : 'Inf'} at channel ${ch}, y ${y}, x ${e % ww}; ` +
            'image values must be finite',
        );
      }
    }
  } finally {
    await fh.close();
  }
}

/**
 * Bilinear resize of a C×H×W image to C×outH×outW with half-pixel centres
 * and no antialiasing, as PyTorch's `interpolate(mode='bilinear',
 * align_corners=False)`.
 */
export function resizeBilinear(src: Float32Array, c: number, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(c * outH * outW);
  const sy = h / outH;
  const sx = w / outW;
  const x0s = new Int32Array(outW);
  const x1s = new Int32Array(outW);
  const lxs = new Float64Array(outW);
  for (let x = 0; x < outW; x++) {
    const fx = Math.max(0, (x + 0.5) * sx - 0.5);
    x0s[x] = Math.min(Math.floor(fx), w - 1);
    x1s[x] = Math.min(x0s[x] + 1, w - 1);
    lxs[x] = fx - x0s[x];
  }
  for (let ch = 0; ch < c; ch++) {
    const base = ch * h * w;
    const obase = ch * outH * outW;
    for (let y = 0; y < outH; y++) {
      const fy = Math.max(0, (y + 0.5) * sy - 0.5);
      const y0 = Math.min(Math.floor(fy), h - 1);
      const y1 = Math.min(y0 + 1, h - 1);
      const ly = fy - y0;
      const r0 = base + y0 * w;
      const r1 = base + y1 * w;
      for (let x = 0; x < outW; x++) {
        const lx = lxs[x];
        const top = src[r0 + x0s[x]] * (1 - lx) + src[r0 + x1s[x]] * lx;
        const bottom = src[r1 + x0s[x]] * (1 - lx) + src[r1 + x1s[x]] * lx;
        out[obase + y * outW + x] = top * (1 - ly) + bottom * ly;
      }
    }
  }
  return out;
}

/** An NPY 1.0 header for a float32 C-order array, padded to 64 bytes as numpy does. */
function float32Header(shape: readonly number[]): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const text = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const out = Buffer.alloc(total);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(text.length, 8);
  out.write(text, 10, 'latin1');
  return out;
}

interface Entry {
  file: string;
  row: number;
  id: string;
}

/**
 * Converts the files of an index CSV (columns id, path) into a float32 NPY
 * store at `<dir>/.tabsight-cache/images-<hash>.npy`, or reuses it. The hash
 * covers the index CSV's bytes, each file's path, size and mtime, and the
 * conversion options. The store is written to a temporary file and renamed;
 * on failure nothing is left behind.
 */
export async function convertIndexedImages(
  dir: string,
  cfg: ImagesConfig,
  indexFile: string,
  table: CsvTable,
  opts: ImageStoreOptions = {},
): Promise<CohortImages> {
  const format = cfg.format!;
  const pathIndex = table.columns.indexOf('path');
  if (pathIndex < 0) {
    throw new DataError(`${indexFile} has no column "path"; its columns are ${table.columns.map((c) => `"${c}"`).join(', ')}`);
  }
  const options = {
    format,
    nifti: format === 'nifti' ? { slice: cfg.nifti?.slice ?? 'mid', frames: cfg.nifti?.frames ?? null } : null,
    size: cfg.size ?? null,
    channels: format === 'png' ? cfg.channels ?? null : null,
  };
  const hash = createHash('sha256').update(`${STORE_VERSION}\n${JSON.stringify(options)}\n`);
  hash.update(await fsp.readFile(indexFile));
  const entries: Entry[] = [];
  for (let i = 0; i < table.rows.length; i++) {
    const rel = table.rows[i][pathIndex];
    const at = `${indexFile}: row ${table.rowNumbers[i]} (id "${table.ids[i]}"), column "path"`;
    if (rel === '') throw new DataError(`${at} is empty`);
    const file = path.resolve(dir, rel);
    let st;
    try {
      st = await fsp.stat(file);
    } catch (err) {
      throw new DataError(`${at}: cannot read ${file}: ${ioReason(err)}`, { cause: err });
    }
    if (!st.isFile()) throw new DataError(`${at}: ${file} is not a file`);
    // The path as written (in the index bytes above), so that moving the cohort folder keeps the cache.
    hash.update(`${st.size}\0${st.mtimeMs}\n`);
    entries.push({ file, row: table.rowNumbers[i], id: table.ids[i] });
  }
  const cacheDir = path.join(dir, CACHE_DIR);
  const target = path.join(cacheDir, `images-${hash.digest('hex').slice(0, 16)}.npy`);
  const done = (h: NpyHeader): CohortImages => ({
    kind: 'npy',
    path: target,
    offset: h.dataOffset,
    dtype: 'float32',
    shape: h.shape as [number, number, number, number],
    source: format,
    index: indexFile,
  });
  try {
    const h = await readNpyHeader(target);
    if (h.dtype === 'float32' && h.shape.length === 4 && h.shape[0] === entries.length) return done(h);
  } catch {
    // No usable cache: convert.
  }
  await writeStore(target, entries, cfg, indexFile, opts);
  for (const f of await fsp.readdir(cacheDir)) {
    if (/^images-[0-9a-f]+\.npy$/.test(f) && f !== path.basename(target)) await fsp.unlink(path.join(cacheDir, f)).catch(() => undefined);
  }
  return done(await readNpyHeader(target));
}

async function decode(e: Entry, cfg: ImagesConfig, indexFile: string): Promise<{ data: Float32Array; shape: number[] }> {
  const at = `${indexFile}: row ${e.row} (id "${e.id}"), column "path"`;
  let img: { data: Float32Array; shape: number[] };
  try {
    if (cfg.format === 'nifti') {
      img = await readNifti(e.file, { slice: cfg.nifti?.slice ?? 'mid', frames: cfg.nifti?.frames });
    } else if (cfg.format === 'png') {
      const p = await readPng(e.file, cfg.channels ? { channels: cfg.channels } : undefined);
      img = { data: Float32Array.from(p.data), shape: p.shape };
    } else {
      img = await readDicom(e.file);
    }
  } catch (err) {
    throw new DataError(`${at}: ${(err as Error).message}`, { cause: err });
  }
  const [c, h, w] = img.shape;
  const size = cfg.size;
  if (size && (h !== size[0] || w !== size[1])) img = { data: resizeBilinear(img.data, c, h, w, size[0], size[1]), shape: [c, size[0], size[1]] };
  const d = img.data;
  for (let k = 0; k < d.length; k++) {
    if (!Number.isFinite(d[k])) {
      const [, hh, ww] = img.shape;
      const p = k % (hh * ww);
      throw new DataError(
        `${at}: ${e.file} has ${Number.isNaN(d[k]) ? 'NaN' : 'Inf'} at channel ${Math.floor(k / (hh * ww))}, ` +
          `y ${Math.floor(p / ww)}, x ${p % ww}${size ? ' (after resizing)' : ''}; image values must be finite`,
      );
    }
  }
  return img;
}

async function writeStore(target: string, entries: Entry[], cfg: ImagesConfig, indexFile: string, opts: ImageStoreOptions): Promise<void> {
  const cacheDir = path.dirname(target);
  let createdDir = false;
  try {
    await fsp.mkdir(cacheDir);
    createdDir = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new DataError(`Cannot create the image cache ${cacheDir}: ${(err as Error).message}`, { cause: err });
    }
  }
  await sweepDeadTemps(cacheDir);
  // The host and pid in the name let a later conversion remove what a killed one left (sweepDeadTemps).
  const tmp = path.join(cacheDir, `.${path.basename(target)}.${os.hostname()}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let out: AtomicFile | undefined;
  try {
    let first: number[] | undefined;
    let offset = 0;
    let perBytes = 0;
    for (let i0 = 0; i0 < entries.length; i0 += CONVERT_CONCURRENCY) {
      const batch = entries.slice(i0, i0 + CONVERT_CONCURRENCY);
      const imgs = await Promise.all(batch.map((e) => decode(e, cfg, indexFile)));
      for (let k = 0; k < imgs.length; k++) {
        const { data, shape } = imgs[k];
        if (!first) {
          first = shape;
          const header = float32Header([entries.length, ...shape]);
          out = await AtomicFile.open(target, { tmp });
          await out.write(header, 0);
          offset = header.length;
          perBytes = data.length * 4;
        } else if (shape.some((d, j) => d !== first![j])) {
          const e = batch[k];
          const hint = shape[0] !== first[0] ? (cfg.format === 'png' ? '; set images.channels' : '; choose images.nifti.frames') : '; set images.size to resize';
          throw new DataError(
            `${indexFile}: row ${e.row} (id "${e.id}"), column "path": ${e.file} gives an image of shape (${shape.join(', ')}) ` +
              `but row ${entries[0].row} (id "${entries[0].id}") gave (${first.join(', ')})${hint}`,
          );
        }
        await out!.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
        offset += perBytes;
      }
      opts.onProgress?.(Math.min(i0 + batch.length, entries.length), entries.length);
    }
    await out!.commit();
  } catch (err) {
    await out?.abort();
    if (createdDir) await fsp.rmdir(cacheDir).catch(() => undefined);
    if (err instanceof DataError) throw err;
    throw new DataError(`Cannot write the image cache ${target}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Removes the temporary stores of conversions that died on this host (their
 * process is gone: SIGKILL, a crash, a node reboot). Temporaries of other
 * hosts sharing the folder, or of live processes, are left alone.
 */
async function sweepDeadTemps(cacheDir: string): Promise<void> {
  const host = os.hostname();
  let names: string[];
  try {
    names = await fsp.readdir(cacheDir);
  } catch {
    return;
  }
  for (const f of names) {
    const m = /^\.images-[0-9a-f]+\.npy\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/.exec(f);
    if (!m || m[1] !== host || processAlive(Number(m[2]))) continue;
    await fsp.unlink(path.join(cacheDir, f)).catch(() => undefined);
  }
}
