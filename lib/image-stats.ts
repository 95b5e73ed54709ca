/**
 * Statistics of the training images for pretraining's defaults: the
 * per-channel mean and standard deviation of a deterministic sample of up to
 * 512 images, after uint8 → [0, 1] scaling (the default normalisation), and
 * the smallest and largest value of a float store (the default clamp range
 * of the colour augmentations).
 */
import * as fs from 'node:fs';
import { decodeImageBytes, imageItemBytes, nonFiniteImageError } from './data/cohort-images';
import { readNpyHeader } from './data/npy';
import { DataError } from './errors';
import type { ImageFacts, ImageInput } from './pretrain-options';

const kSample = 512;

/** Reads whole images of the input by store index; close() releases the file. */
async function imageReader(input: ImageInput, facts: ImageFacts): Promise<{ read: (i: number) => ArrayLike<number>; close: () => void }> {
  const per = facts.channels * facts.height * facts.width;
  const bytes = imageItemBytes(facts.dtype);
  if ('npy' in input) {
    const header = await readNpyHeader(input.npy);
    const fd = fs.openSync(input.npy, 'r');
    const buf = Buffer.alloc(per * bytes);
    return {
      read: (i) => {
        fs.readSync(fd, buf, 0, buf.length, header.dataOffset + i * per * bytes);
        return decodeImageBytes(buf, facts.dtype);
      },
      close: () => fs.closeSync(fd),
    };
  }
  const data = input.data;
  return { read: (i) => data.subarray(i * per, (i + 1) * per), close: () => undefined };
}

/**
 * [min, max] over every value of the training images (`rows`, else all) of a
 * float16 or float32 store, for the colour augmentations' clamp: the range a uint8 store
 * has by construction ([0, 1] after scaling). A constant store gives
 * [v, v + 1]. NaN or Inf is a DataError naming the image and pixel, unless
 * `scan` is false (the caller scanned, or asked not to): then only finite
 * values count.
 */
export async function imageValueRange(input: ImageInput, facts: ImageFacts, rows?: ArrayLike<number>, scan = true): Promise<[number, number]> {
  const { channels: c, height: h, width: w } = facts;
  const n = rows ? rows.length : facts.n;
  let lo = Infinity;
  let hi = -Infinity;
  const reader = await imageReader(input, facts);
  try {
    for (let s = 0; s < n; s++) {
      const i = rows ? rows[s] : s;
      const img = reader.read(i);
      let a = Infinity;
      let b = -Infinity;
      let finite = true;
      for (let p = 0; p < img.length; p++) {
        const v = img[p];
        if (v - v !== 0) {
          finite = false;
          continue;
        }
        if (v < a) a = v;
        if (v > b) b = v;
      }
      if (!finite && scan) {
        throw nonFiniteImageError(img, [c, h, w], 'npy' in input ? input.npy : 'images', () => i) ?? new DataError(`image ${i} has no finite values`);
      }
      if (a < lo) lo = a;
      if (b > hi) hi = b;
    }
  } finally {
    reader.close();
  }
  if (!(hi >= lo)) return [0, 1]; // no rows, or no finite value
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

export async function channelStats(input: ImageInput, facts: ImageFacts, rows?: ArrayLike<number>): Promise<{ mean: number[]; std: number[] }> {
  const { channels: c, height: h, width: w } = facts;
  const n = rows ? rows.length : facts.n;
  const index = (i: number) => (rows ? rows[i] : i);
  const take = Math.min(n, kSample);
  const stride = n / take;
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const scale = facts.dtype === 'uint8' ? 1 / 255 : 1;
  const { read, close } = await imageReader(input, facts);
  try {
    for (let s = 0; s < take; s++) {
      const img = read(index(Math.floor(s * stride)));
      for (let ch = 0; ch < c; ch++) {
        let a = 0;
        let b = 0;
        for (let p = ch * h * w, end = (ch + 1) * h * w; p < end; p++) {
          const v = img[p] * scale;
          a += v;
          b += v * v;
        }
        if (!Number.isFinite(b)) {
          const i = index(Math.floor(s * stride));
          throw nonFiniteImageError(img, [c, h, w], 'npy' in input ? input.npy : 'images', () => i) ?? new DataError(`image ${i}: its channel ${ch} overflows float64`);
        }
        sum[ch] += a;
        sq[ch] += b;
      }
    }
  } finally {
    close();
  }
  const count = take * h * w;
  const mean = Array.from(sum, (s) => s / count);
  const std = Array.from(sq, (s, ch) => Math.sqrt(Math.max(s / count - mean[ch] ** 2, 0)) || 1);
  return { mean, std };
}
