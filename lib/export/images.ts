/**
 * Streaming image input and embedding output for deployment: an NPY store
 * (or a cohort's store) is read in chunks of images, never whole, and
 * N×D float32 results are written row-block by row-block into a temporary
 * NPY file that is renamed into place at the end.
 */
import * as fs from 'node:fs';
import { loadCohort, type Cohort } from '../data/cohort';
import { decodeImageBytes, imageItemBytes, nonFiniteImageError, type ImageDtype } from '../data/cohort-images';
import { readNpyHeader } from '../data/npy';
import { DataError, ShapeError } from '../errors';
import { AtomicFile, checkOutFile } from '../io/atomic';

export interface ImageSource {
  /** What to name in messages (the file, or the cohort). */
  label: string;
  file: string;
  /** Byte offset of the first element. */
  offset: number;
  /** The stored dtype; float16 is read as float32 (exactly), see imageValueType. */
  dtype: ImageDtype;
  shape: [number, number, number, number];
  /** Subject ids (cohorts only), one per image. */
  ids?: string[];
}

/** An N×C×H×W uint8, float16 or float32 NPY file; anything else is a ShapeError (nothing is read beyond the header). */
export async function npyImageSource(file: string): Promise<ImageSource> {
  const h = await readNpyHeader(file);
  if (h.shape.length !== 4) throw new ShapeError(`Expected images of rank 4 [N, C, H, W] in ${file} but found shape [${h.shape.join(', ')}]`);
  if (h.dtype !== 'uint8' && h.dtype !== 'float16' && h.dtype !== 'float32') {
    throw new ShapeError(`Expected uint8, float16 or float32 images in ${file} but found ${h.dtype}; convert them first (numpy: a.astype("float32"))`);
  }
  return { label: file, file, offset: h.dataOffset, dtype: h.dtype, shape: h.shape as [number, number, number, number] };
}

/** Every subject's image of a loaded cohort, in cohort order. */
export function imageSourceOfCohort(cohort: Cohort): ImageSource {
  const { path: file, offset, dtype, shape } = cohort.images;
  return { label: `cohort ${cohort.dir}`, file, offset, dtype, shape, ids: cohort.ids };
}

/** Every subject's image of a cohort directory, in cohort order. */
export async function cohortImageSource(dir: string): Promise<ImageSource> {
  return imageSourceOfCohort(await loadCohort(dir));
}

export interface ImageChunk {
  start: number;
  count: number;
  data: Uint8Array | Float32Array;
  shape: [number, number, number, number];
}

/** Reads `rows` (default: every image) in chunks of at most `chunk` images. */
export async function* readImageChunks(src: ImageSource, chunk: number, rows?: readonly number[]): AsyncGenerator<ImageChunk> {
  const [n, c, h, w] = src.shape;
  const per = c * h * w;
  const bytes = imageItemBytes(src.dtype);
  const fh = await fs.promises.open(src.file, 'r');
  try {
    const total = rows ? rows.length : n;
    for (let start = 0; start < total; start += chunk) {
      const count = Math.min(chunk, total - start);
      const buf = Buffer.alloc(count * per * bytes);
      if (rows) {
        for (let i = 0; i < count; i++) {
          const r = rows[start + i];
          if (!(Number.isInteger(r) && r >= 0 && r < n)) throw new ShapeError(`Row ${r} is not an image of ${src.label} (0..${n - 1})`);
          await readFully(fh, buf, i * per * bytes, per * bytes, src.offset + r * per * bytes, src.label);
        }
      } else {
        await readFully(fh, buf, 0, buf.length, src.offset + start * per * bytes, src.label);
      }
      // float32 as a view of this fresh buffer; uint8 (a view) and float16 (widened) as decodeImageBytes gives them.
      const data = src.dtype === 'float32' ? new Float32Array(buf.buffer, buf.byteOffset, count * per) : decodeImageBytes(buf, src.dtype);
      const bad = data instanceof Float32Array ? nonFiniteImageError(data, [c, h, w], src.file, (i) => (rows ? rows[start + i] : start + i), src.ids) : undefined;
      if (bad) throw bad;
      yield { start, count, data, shape: [count, c, h, w] };
    }
  } finally {
    await fh.close();
  }
}

async function readFully(fh: fs.promises.FileHandle, buf: Buffer, at: number, length: number, position: number, label: string): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, at + done, length - done, position + done);
    if (bytesRead === 0) throw new DataError(`${label} ended early: expected ${length} bytes at offset ${position}`);
    done += bytesRead;
  }
}

function npyHeader(descr: string, shape: number[]): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const out = Buffer.alloc(total, 0x20);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(out, 0);
  out.writeUInt16LE(total - 10, 8);
  out.write(dict, 10, 'latin1');
  out[total - 1] = 0x0a;
  return out;
}

/**
 * Writes an N×D float32 NPY file in row blocks, atomically (AtomicFile):
 * checks before any work that `file` can be written, and commit() refuses
 * a file with fewer rows than its header promises.
 */
export class NpyRowWriter {
  readonly #out: AtomicFile;
  readonly #rowBytes: number;
  readonly #rows: number;
  readonly #headerBytes: number;
  #written = 0;

  private constructor(out: AtomicFile, rows: number, cols: number, headerBytes: number) {
    this.#out = out;
    this.#rows = rows;
    this.#rowBytes = cols * 4;
    this.#headerBytes = headerBytes;
  }

  static async open(file: string, rows: number, cols: number): Promise<NpyRowWriter> {
    checkOutFile(file);
    const out = await AtomicFile.open(file);
    const header = npyHeader('<f4', [rows, cols]);
    await out.write(header, 0);
    return new NpyRowWriter(out, rows, cols, header.length);
  }

  /** Appends rows (row-major float32). */
  async write(rows: Float32Array): Promise<void> {
    const body = new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
    await this.#out.write(body, this.#headerBytes + this.#written * this.#rowBytes);
    this.#written += rows.byteLength / this.#rowBytes;
  }

  async commit(): Promise<void> {
    if (this.#written !== this.#rows) {
      await this.#out.abort();
      throw new DataError(`Wrote ${this.#written} of ${this.#rows} rows to ${this.#out.file}`);
    }
    await this.#out.commit();
  }

  abort(): Promise<void> {
    return this.#out.abort();
  }
}

/** Writes a text file piece by piece, atomically (AtomicFile), after checking that it can be written. */
export async function openTextOutput(file: string): Promise<AtomicFile> {
  checkOutFile(file);
  return AtomicFile.open(file);
}
