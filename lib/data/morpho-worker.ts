/**
 * Worker-thread entry for `measureDigits` (morpho.ts). It loads only the
 * pure measurement modules, so it runs the same from compiled JS
 * (dist/lib/data/morpho-worker.js) and from TypeScript source when the
 * parent was started with a TS loader (tap's `--import` hooks are inherited
 * through `execArgv`).
 *
 * Protocol: the parent posts `{ start, count, size, pixels }` (count images
 * of size x size, row-major uint8); the worker answers `{ start, values }`
 * with count x 6 doubles in MORPHO_COLUMNS order (the buffer is
 * transferred), or `{ start, error }` if measuring threw.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MORPHO_COLUMNS } from './morpho-core';
import { measureRaw } from './morpho-measure';

export interface MorphoJob {
  start: number;
  count: number;
  size: number;
  pixels: Uint8Array;
}

export type MorphoReply = { start: number; values: Float64Array } | { start: number; error: string };

/** Measures `count` consecutive images into a count x 6 array. */
export function measureChunk(pixels: Uint8Array, count: number, size: number): Float64Array {
  const px = size * size;
  const values = new Float64Array(count * MORPHO_COLUMNS.length);
  for (let i = 0; i < count; i++) {
    const m = measureRaw(pixels.subarray(i * px, (i + 1) * px), size);
    MORPHO_COLUMNS.forEach((c, k) => { values[i * MORPHO_COLUMNS.length + k] = m[c]; });
  }
  return values;
}

/** Marker in `workerData`, so that importing this module in another worker attaches nothing. */
export const MORPHO_WORKER_MARK = 'tabsight-morpho-worker';

if (parentPort && (workerData as { mark?: unknown } | undefined)?.mark === MORPHO_WORKER_MARK) {
  const port = parentPort;
  port.on('message', (job: MorphoJob) => {
    let reply: MorphoReply;
    try {
      reply = { start: job.start, values: measureChunk(job.pixels, job.count, job.size) };
    } catch (err) {
      reply = { start: job.start, error: err instanceof Error ? err.message : String(err) };
    }
    if ('values' in reply) port.postMessage(reply, [reply.values.buffer as ArrayBuffer]);
    else port.postMessage(reply);
  });
}
