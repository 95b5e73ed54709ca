/**
 * NIfTI-1 and NIfTI-2 single-file volumes (`.nii`, `.nii.gz`) → one 2D
 * slice, with chosen time frames as channels.
 *
 * Axis convention: the result is `[C, H, W]` with H = the first NIfTI axis
 * (i) and W = the second (j), i.e. `data[c][i][j] = vol[i, j, z, frames[c]]`,
 * exactly what nibabel's `img.get_fdata()[:, :, z, frames]` (moved to channels
 * first) holds. Nothing is reoriented.
 */
import * as zlib from 'node:zlib';
import type * as NiftiReader from 'nifti-reader-js';
import { DataError } from '../errors';
import { string, plainObject, knownKeys, invalid } from '../validate';
import { readInputFile } from '../io/read';

export interface ReadNiftiOptions {
  /** z index of the slice to take; `'mid'` is `floor(nz / 2)`. @default 'mid' */
  slice?: number | 'mid';
  /** Time frames to stack as channels, e.g. `[ED, mid, ES]`. 3D volumes have one frame, 0. @default every frame */
  frames?: number[];
}

export interface NiftiSlice {
  /** Scaled values (scl_slope / scl_inter applied), C × H × W, row-major. */
  data: Float32Array;
  /** `[channels, H, W]` = `[frames.length, nx, ny]`. */
  shape: [number, number, number];
  /** Voxel sizes for each dimension of the volume (`pixdim[1..ndim]`), e.g. `[dx, dy, dz, dt]`. */
  pixdim: number[];
  /** Stored datatype, e.g. `'int16'`. */
  datatype: string;
  /** Volume dimensions `dim[1..ndim]`. */
  dims: number[];
  /** The slice index that was read. */
  slice: number;
  /** The frames that were read, in channel order. */
  frames: number[];
}

// The package is ESM-only; a CommonJS build must load it with a real import().
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;
let readerPromise: Promise<typeof NiftiReader> | undefined;
function reader(): Promise<typeof NiftiReader> {
  readerPromise ??= importEsm('nifti-reader-js') as Promise<typeof NiftiReader>;
  return readerPromise;
}

type Getter = (dv: DataView, offset: number, le: boolean) => number;
const DATATYPES: Record<number, { name: string; bytes: number; get: Getter }> = {
  2: { name: 'uint8', bytes: 1, get: (dv, o) => dv.getUint8(o) },
  4: { name: 'int16', bytes: 2, get: (dv, o, le) => dv.getInt16(o, le) },
  8: { name: 'int32', bytes: 4, get: (dv, o, le) => dv.getInt32(o, le) },
  16: { name: 'float32', bytes: 4, get: (dv, o, le) => dv.getFloat32(o, le) },
  64: { name: 'float64', bytes: 8, get: (dv, o, le) => dv.getFloat64(o, le) },
  256: { name: 'int8', bytes: 1, get: (dv, o) => dv.getInt8(o) },
  512: { name: 'uint16', bytes: 2, get: (dv, o, le) => dv.getUint16(o, le) },
  768: { name: 'uint32', bytes: 4, get: (dv, o, le) => dv.getUint32(o, le) },
  1024: { name: 'int64', bytes: 8, get: (dv, o, le) => Number(dv.getBigInt64(o, le)) },
  1280: { name: 'uint64', bytes: 8, get: (dv, o, le) => Number(dv.getBigUint64(o, le)) },
};

/** Decompressed bytes past the end of the voxel data that a .nii.gz may carry (extensions written after the data, padding). */
export const NIFTI_GZ_SLACK = 64 << 20;
/** The most voxel data (with the header) a .nii.gz is decompressed to. */
export const NIFTI_GZ_MAX = 2 ** 31;

/**
 * Where a NIfTI file's voxel data ends, from the first 544 bytes of its
 * header (NIfTI-1 or -2, either byte order); undefined when the header does
 * not say (readNifti then reports what is wrong with it).
 */
function dataEnd(head: Uint8Array): number | undefined {
  if (head.length < 348) return undefined;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  for (const le of [true, false]) {
    const size = dv.getInt32(0, le);
    if (size === 348) {
      const ndim = dv.getInt16(40, le);
      if (ndim < 1 || ndim > 7) return undefined;
      let voxels = 1;
      for (let d = 1; d <= ndim; d++) voxels *= Math.max(dv.getInt16(40 + 2 * d, le), 1);
      const type = DATATYPES[dv.getInt16(70, le)];
      const off = dv.getFloat32(108, le);
      return type && Number.isFinite(off) ? Math.max(Math.floor(off), 352) + voxels * type.bytes : undefined;
    }
    if (size === 540 && head.length >= 544) {
      const ndim = Number(dv.getBigInt64(16, le));
      if (ndim < 1 || ndim > 7) return undefined;
      let voxels = 1;
      for (let d = 1; d <= ndim; d++) voxels *= Math.max(Number(dv.getBigInt64(16 + 8 * d, le)), 1);
      const type = DATATYPES[dv.getInt16(12, le)];
      return type ? Math.max(Number(dv.getBigInt64(168, le)), 544) + voxels * type.bytes : undefined;
    }
  }
  return undefined;
}

/**
 * Node's zlib: it checks each member's CRC-32 and length trailer, reads
 * multi-member files (concatenated gzip streams, as some writers produce) and
 * ignores zero padding after the last member, as nibabel does. Streamed, and
 * bounded by the header: only the bytes up to the end of the voxel data are
 * kept, and a file that inflates to more than NIFTI_GZ_SLACK beyond them (a
 * few MB of gzip can hold GBs of zeros) is refused before it fills memory.
 */
function gunzip(file: string, gz: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const z = zlib.createGunzip();
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    let end: number | undefined;
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      z.destroy();
      reject(err);
    };
    z.on('data', (c: Buffer) => {
      if (done) return;
      total += c.length;
      const limit = end ?? Infinity;
      if (kept < limit) {
        const take = Math.min(c.length, limit - kept);
        chunks.push(take === c.length ? c : c.subarray(0, take));
        kept += take;
      }
      if (end === undefined && kept >= 544) {
        const head = Buffer.concat(chunks);
        chunks.length = 0;
        chunks.push(head);
        end = dataEnd(head) ?? 544;
        if (end > NIFTI_GZ_MAX) {
          fail(new DataError(`${file}: its header declares ${end} bytes of header and voxel data, more than the ${NIFTI_GZ_MAX} a .nii.gz is decompressed to`));
          return;
        }
        if (kept > end) {
          chunks[0] = head.subarray(0, end);
          kept = end;
        }
      }
      if (end !== undefined && total > end + NIFTI_GZ_SLACK) {
        fail(new DataError(`${file} decompresses to more than ${end + NIFTI_GZ_SLACK} bytes, though its header needs ${end}: not read (a gzip bomb, or data after the volume)`));
      }
    });
    z.on('error', (err) => fail(new DataError(`${file} has corrupt or truncated gzip data (${err.message})`, { cause: err })));
    z.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
    z.end(gz);
  });
}

function checkOptions(opts: unknown): { slice: number | 'mid'; frames?: number[] } {
  if (opts === undefined) return { slice: 'mid' };
  const o = plainObject(opts, 'options');
  knownKeys(o, 'options', ['slice', 'frames']);
  const slice = o.slice ?? 'mid';
  if (slice !== 'mid' && !(typeof slice === 'number' && Number.isInteger(slice) && slice >= 0)) {
    throw invalid("non-negative integer or 'mid'", 'slice', slice);
  }
  let frames: number[] | undefined;
  if (o.frames !== undefined) {
    const f = o.frames;
    if (!Array.isArray(f) || f.length === 0 || f.some((v) => typeof v !== 'number' || !Number.isInteger(v) || v < 0)) {
      throw invalid('non-empty array of non-negative integers', 'frames', f);
    }
    frames = [...(f as number[])];
  }
  return { slice: slice as number | 'mid', frames };
}

/** Reads one slice of a NIfTI volume; see the module comment for the axis convention. */
export async function readNifti(file: string, opts?: ReadNiftiOptions): Promise<NiftiSlice> {
  string(file, 'path');
  const o = checkOptions(opts);
  let raw: Uint8Array = await readInputFile(file);
  const compressed = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
  if (compressed) raw = await gunzip(file, raw);
  const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer;
  const dv = new DataView(ab);
  const nifti = await reader();

  if (!nifti.isNIFTI(ab)) {
    const first = raw.length >= 4 ? [dv.getInt32(0, true), dv.getInt32(0, false)] : [];
    if (first.includes(348) || first.includes(540)) {
      if (raw.length < first.find((v) => v === 348 || v === 540)!) {
        throw new DataError(`${file} is truncated: the NIfTI header needs ${first.includes(348) ? 348 : 540} bytes, the file has ${raw.length}`);
      }
      const magic = raw.length >= 347 ? String.fromCharCode(raw[344], raw[345], raw[346]) : '';
      if (magic === 'ni1') {
        throw new DataError(`${file} is the header of a .hdr/.img pair, which is not supported; convert it to a single .nii file`);
      }
    }
    throw new DataError(`${file} is not a NIfTI-1 or NIfTI-2 file (no 'n+1' or 'n+2' magic string)`);
  }
  if (nifti.isNIFTI2(ab) && raw.length < 540) {
    throw new DataError(`${file} is truncated: the NIfTI-2 header needs 540 bytes, the file has ${raw.length}`);
  }
  let header: NiftiReader.NIFTI1 | NiftiReader.NIFTI2;
  try {
    header = nifti.readHeader(ab);
  } catch (err) {
    throw new DataError(`${file} has a corrupt NIfTI header (${(err as Error).message})`, { cause: err });
  }
  const isV2 = header instanceof nifti.NIFTI2;
  const ndim = header.dims[0];
  if (!Number.isInteger(ndim) || ndim < 2 || ndim > 7) {
    throw new DataError(`${file} has a corrupt NIfTI header: dim[0] = ${ndim}, expected 2 to 7`);
  }
  const dims = header.dims.slice(1, ndim + 1);
  if (dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new DataError(`${file} has a corrupt NIfTI header: dims (${dims.join(', ')}) must be positive integers`);
  }
  if (dims.slice(4).some((d) => d !== 1)) {
    throw new DataError(`${file} has ${ndim} dimensions (${dims.join(', ')}); only 2D, 3D and 4D (x, y, z, t) volumes are supported`);
  }
  const [nx, ny, nz = 1, nt = 1] = dims;
  const type = DATATYPES[header.datatypeCode];
  if (!type) {
    throw new DataError(
      `${file} has NIfTI datatype ${header.datatypeCode} (${header.getDatatypeCodeString(header.datatypeCode)}), which is not supported; ` +
        `supported: ${Object.values(DATATYPES).map((t) => t.name).join(', ')}`,
    );
  }
  // A single-file NIfTI keeps its data after the header (352 / 544 bytes at least); some writers leave vox_offset 0.
  const voxOffset = Math.max(Math.floor(header.vox_offset), isV2 ? 544 : 352);
  const needed = voxOffset + nx * ny * nz * nt * type.bytes;
  if (raw.length < needed) {
    throw new DataError(
      `${file} is truncated: ${dims.join('×')} voxels of ${type.name} from byte ${voxOffset} need ${needed} bytes, ` +
        `${compressed ? 'the decompressed data has' : 'the file has'} ${raw.length}`,
    );
  }

  const z = o.slice === 'mid' ? Math.floor(nz / 2) : o.slice;
  if (z >= nz) {
    throw new DataError(`${file}: slice ${z} is out of range; the volume has ${nz} slice(s), valid indices are 0 to ${nz - 1}`);
  }
  const frames = o.frames ?? Array.from({ length: nt }, (_, t) => t);
  for (const t of frames) {
    if (t >= nt) {
      throw new DataError(`${file}: frame ${t} is out of range; the volume has ${nt} frame(s), valid indices are 0 to ${nt - 1}`);
    }
  }

  const slope = header.scl_slope;
  const scaled = Number.isFinite(slope) && slope !== 0;
  // A slope of 0 or NaN means "not scaled" (the standard); a valid slope with an intercept that is not a number is a broken header, refused as nibabel does.
  if (scaled && !Number.isFinite(header.scl_inter)) {
    throw new DataError(`${file}: scl_slope is ${slope} but scl_inter is ${header.scl_inter}; a scaled volume needs a finite intercept`);
  }
  const inter = scaled ? header.scl_inter : 0;
  const le = header.littleEndian;
  const out = new Float32Array(frames.length * nx * ny);
  let k = 0;
  for (const t of frames) {
    const base = voxOffset + (t * nz + z) * nx * ny * type.bytes;
    for (let i = 0; i < nx; i++) {
      for (let j = 0; j < ny; j++) {
        const v = type.get(dv, base + (j * nx + i) * type.bytes, le);
        out[k++] = scaled ? v * slope + inter : v;
      }
    }
  }
  return {
    data: out,
    shape: [frames.length, nx, ny],
    pixdim: header.pixDims.slice(1, ndim + 1),
    datatype: type.name,
    dims,
    slice: z,
    frames,
  };
}
