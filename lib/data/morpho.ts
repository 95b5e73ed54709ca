/**
 * Morpho-MNIST morphometrics (Castro et al. 2019): area, stroke length,
 * thickness, slant, width and height of handwritten digits, computed as
 * dccastro/Morpho-MNIST does (see docs/morpho-mnist.md). The algorithms
 * live in morpho-core.ts / morpho-measure.ts; this module validates input,
 * fans the work out to worker threads and caches the results.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic, makeDirs } from '../io/atomic';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { AbortError, ConfigError, ShapeError } from '../errors';
import { MORPHO_COLUMNS, type Morphometrics } from './morpho-core';
import { measureRaw } from './morpho-measure';
import { MORPHO_WORKER_MARK, measureChunk, type MorphoJob, type MorphoReply } from './morpho-worker';

export { MORPHO_COLUMNS, type Morphometrics } from './morpho-core';

/** Bumped whenever a change to the algorithm can change a number; part of the cache key. */
export const MORPHO_ALGORITHM_VERSION = 1;

export interface MeasureDigitsOptions {
  /** Side of each square image, in pixels. @default 28 */
  size?: number;
  /**
   * Worker threads. 0 measures in the calling thread (between event-loop
   * turns). @default min(4, os.availableParallelism())
   */
  workers?: number;
  /**
   * JSON file that caches the results. It stores a SHA-256 of the images,
   * n, size and MORPHO_ALGORITHM_VERSION; a file with another key (or an
   * unreadable one) is recomputed and replaced. Written atomically (temp
   * file + rename). @default undefined (no cache)
   */
  cachePath?: string;
  /** Images per message to a worker. @default 64 */
  chunkSize?: number;
  /** Called after each finished chunk. @default undefined */
  onProgress?: (done: number, total: number) => void;
  /** Stops the work; the promise rejects with AbortError (ERR_ABORTED). @default undefined */
  signal?: AbortSignal;
  /**
   * Called when a worker cannot start or fails; its chunk goes back to the
   * queue and the calling thread finishes what no worker takes. @default undefined
   */
  onWorkerError?: (err: Error) => void;
}

function describe(v: unknown): string {
  return `${typeof v === 'number' || typeof v === 'string' ? String(v) : Object.prototype.toString.call(v)} of type ${typeof v}`;
}

function checkInt(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    const what = min === 0 ? 'non-negative integer' : min === 1 ? 'positive integer' : `integer >= ${min}`;
    throw new ConfigError(`Expected ${what} for ${name} but received ${describe(v)}`);
  }
  return v;
}

function checkPixels(name: string, pixels: unknown, expected: number): Uint8Array {
  if (!(pixels instanceof Uint8Array)) {
    throw new ShapeError(`Expected Uint8Array for ${name} but received ${describe(pixels)}`);
  }
  if (pixels.length !== expected) {
    throw new ShapeError(`Expected ${name} of length ${expected} but received length ${pixels.length}`);
  }
  return pixels;
}

/**
 * Morphometrics of one digit: a size x size row-major uint8 image, ink
 * bright on a dark background (MNIST convention). A constant image (no ink)
 * gives NaN in every column.
 *
 * @throws ShapeError (ERR_SHAPE) when pixels is not a Uint8Array of size² values.
 * @throws ConfigError (ERR_CONFIG) when size is not an integer >= 3.
 */
export function measureDigit(pixels: Uint8Array, size = 28): Morphometrics {
  checkInt('size', size, 3);
  return measureRaw(checkPixels('pixels', pixels, size * size), size);
}

function rowsFromValues(values: Float64Array, n: number): Morphometrics[] {
  const k = MORPHO_COLUMNS.length;
  const rows: Morphometrics[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const r = {} as Morphometrics;
    MORPHO_COLUMNS.forEach((c, j) => { r[c] = values[i * k + j]; });
    rows[i] = r;
  }
  return rows;
}

/** Key of a measurement run: SHA-256 over the algorithm version, the shape and the pixels. */
export function morphoCacheKey(images: Uint8Array, n: number, size: number): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ algorithm: MORPHO_ALGORITHM_VERSION, n, size }));
  h.update(images);
  return h.digest('hex');
}

interface CacheFile {
  format: 'tabsight-morpho';
  key: string;
  n: number;
  columns: string[];
  rows: (number | null)[][];
}

async function readCache(file: string, key: string, n: number): Promise<Morphometrics[] | undefined> {
  let parsed: CacheFile;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as CacheFile;
  } catch {
    return undefined; // missing or unreadable: recompute
  }
  if (parsed?.format !== 'tabsight-morpho' || parsed.key !== key || parsed.n !== n || !Array.isArray(parsed.rows)
    || parsed.rows.length !== n || JSON.stringify(parsed.columns) !== JSON.stringify(MORPHO_COLUMNS)) return undefined;
  return parsed.rows.map((row) => {
    const r = {} as Morphometrics;
    MORPHO_COLUMNS.forEach((c, j) => { r[c] = row[j] === null ? NaN : Number(row[j]); });
    return r;
  });
}

async function writeCache(file: string, key: string, rows: Morphometrics[]): Promise<void> {
  const body: CacheFile = {
    format: 'tabsight-morpho',
    key,
    n: rows.length,
    columns: [...MORPHO_COLUMNS],
    rows: rows.map((r) => MORPHO_COLUMNS.map((c) => (Number.isFinite(r[c]) ? r[c] : null))),
  };
  makeDirs(path.dirname(path.resolve(file)));
  await writeFileAtomic(file, JSON.stringify(body));
}

/**
 * The worker script next to this module: `.js` when running compiled, `.ts`
 * when running from source under a TS loader (workers inherit execArgv, so
 * the loader applies to them too). Undefined when it is missing. The
 * environment variable TABSIGHT_MORPHO_WORKER overrides the path (for tests
 * and debugging).
 */
function workerScript(): string | undefined {
  const override = process.env.TABSIGHT_MORPHO_WORKER;
  if (override) return override;
  const ext = path.extname(__filename);
  const file = path.join(__dirname, `morpho-worker${ext}`);
  return existsSync(file) ? file : undefined;
}

function abortError(): AbortError {
  return new AbortError('measureDigits was aborted');
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Morphometrics of n digits stored back to back in `images` (n x size x
 * size, row-major uint8), measured in worker threads.
 *
 * Workers that cannot start (for example TypeScript source run without a TS
 * loader) or that fail hand their chunks back, and whatever is left is
 * measured in the calling thread, between event-loop turns; so the result
 * never depends on the workers.
 *
 * @throws ShapeError (ERR_SHAPE) when images is not a Uint8Array of n·size² values.
 * @throws ConfigError (ERR_CONFIG) for an invalid n or option.
 * @throws AbortError (ERR_ABORTED) when `signal` aborts.
 */
export async function measureDigits(images: Uint8Array, n: number, options: MeasureDigitsOptions = {}): Promise<Morphometrics[]> {
  checkInt('n', n, 0);
  const size = checkInt('size', options.size ?? 28, 3);
  const workers = checkInt('workers', options.workers ?? Math.min(4, os.availableParallelism()), 0);
  const chunkSize = checkInt('chunkSize', options.chunkSize ?? 64, 1);
  if (options.cachePath !== undefined && (typeof options.cachePath !== 'string' || options.cachePath === '')) {
    throw new ConfigError(`Expected non-empty string for cachePath but received ${describe(options.cachePath)}`);
  }
  for (const name of ['onProgress', 'onWorkerError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new ConfigError(`Expected function for ${name} but received ${describe(options[name])}`);
    }
  }
  checkPixels('images', images, n * size * size);
  const { signal, onProgress, cachePath } = options;
  if (signal?.aborted) throw abortError();

  const key = cachePath ? morphoCacheKey(images, n, size) : '';
  if (cachePath) {
    const cached = await readCache(cachePath, key, n);
    if (cached) return cached;
  }

  const values = await runChunks(images, n, size, workers, chunkSize, signal, onProgress, options.onWorkerError);
  const rows = rowsFromValues(values, n);
  if (cachePath) await writeCache(cachePath, key, rows);
  return rows;
}

async function runChunks(images: Uint8Array, n: number, size: number, workers: number, chunkSize: number,
  signal: AbortSignal | undefined, onProgress: ((done: number, total: number) => void) | undefined,
  onWorkerError: ((err: Error) => void) | undefined): Promise<Float64Array> {
  const k = MORPHO_COLUMNS.length;
  const px = size * size;
  const out = new Float64Array(n * k);
  const queue: number[] = [];
  for (let s = 0; s < n; s += chunkSize) queue.push(s);
  let done = 0;
  const finish = (start: number, values: Float64Array): void => {
    out.set(values, start * k);
    done += values.length / k;
    onProgress?.(done, n);
  };
  const count = (start: number): number => Math.min(chunkSize, n - start);

  const script = workerScript();
  const nWorkers = script ? Math.min(workers, queue.length) : 0;
  if (nWorkers > 0) {
    await new Promise<void>((resolve, reject) => {
      const jobs = new Map<Worker, number | undefined>(); // live workers and their chunk
      let settled = false;
      const settle = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        for (const w of jobs.keys()) void w.terminate();
        jobs.clear();
        if (err) reject(err); else resolve();
      };
      const onAbort = (): void => settle(abortError());
      signal?.addEventListener('abort', onAbort, { once: true });
      const feed = (w: Worker): void => {
        const start = queue.shift();
        if (start === undefined) {
          jobs.delete(w);
          void w.terminate();
          if (jobs.size === 0) settle();
          return;
        }
        jobs.set(w, start);
        const c = count(start);
        // A fresh copy (Buffer#slice is a view): only the copy's buffer is transferred.
        const pixels = new Uint8Array(c * px);
        pixels.set(images.subarray(start * px, (start + c) * px));
        const job: MorphoJob = { start, count: c, size, pixels };
        w.postMessage(job, [pixels.buffer as ArrayBuffer]);
      };
      const drop = (w: Worker, err?: Error): void => { // hand the chunk back to the queue
        if (settled || !jobs.has(w)) return;
        const start = jobs.get(w);
        if (start !== undefined) queue.unshift(start);
        jobs.delete(w);
        void w.terminate();
        try {
          if (err) onWorkerError?.(err);
        } catch (cbErr) {
          return settle(cbErr);
        }
        if (jobs.size === 0) settle(); // the calling thread finishes the queue
      };
      for (let i = 0; i < nWorkers; i++) {
        const w = new Worker(script!, { workerData: { mark: MORPHO_WORKER_MARK } });
        jobs.set(w, undefined);
        w.on('message', (msg: MorphoReply) => {
          if (settled) return;
          if ('error' in msg) return drop(w, new Error(`morpho worker failed: ${msg.error}`));
          jobs.set(w, undefined);
          try {
            finish(msg.start, msg.values);
          } catch (cbErr) { // onProgress threw
            return settle(cbErr);
          }
          feed(w);
        });
        w.on('error', (err: Error) => drop(w, err));
        w.on('exit', () => drop(w));
        feed(w);
      }
    });
  }
  // In-thread path: workers disabled, unavailable, or failed.
  while (queue.length) {
    if (signal?.aborted) throw abortError();
    const start = queue.shift()!;
    const c = count(start);
    finish(start, measureChunk(images.subarray(start * px, (start + c) * px), c, size));
    await tick();
  }
  return out;
}

/** Morphometrics as CSV in the published layout: `index,area,length,thickness,slant,width,height`. */
export function toMorphoCsv(rows: readonly Morphometrics[], firstIndex = 0): string {
  const lines = [['index', ...MORPHO_COLUMNS].join(',')];
  rows.forEach((r, i) => lines.push([firstIndex + i, ...MORPHO_COLUMNS.map((c) => String(r[c]))].join(',')));
  return `${lines.join('\n')}\n`;
}
