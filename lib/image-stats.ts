/**
 * Per-channel mean and standard deviation of a deterministic sample of up to
 * 512 images, after uint8 → [0, 1] scaling: the default normalisation.
 */
import * as fs from 'node:fs';
import { nonFiniteImageError } from './data/cohort-images';
import { readNpyHeader } from './data/npy';
import { DataError } from './errors';
import type { ImageFacts, ImageInput } from './pretrain-options';

const kSample = 512;

export async function channelStats(input: ImageInput, facts: ImageFacts, rows?: ArrayLike<number>): Promise<{ mean: number[]; std: number[] }> {
  const { channels: c, height: h, width: w } = facts;
  const n = rows ? rows.length : facts.n;
  const index = (i: number) => (rows ? rows[i] : i);
  const per = c * h * w;
  const take = Math.min(n, kSample);
  const stride = n / take;
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const scale = facts.dtype === 'uint8' ? 1 / 255 : 1;
  const bytes = facts.dtype === 'uint8' ? 1 : 4;
  let read: (i: number) => ArrayLike<number>;
  let fd = -1;
  if ('npy' in input) {
    const header = await readNpyHeader(input.npy);
    fd = fs.openSync(input.npy, 'r');
    const buf = Buffer.alloc(per * bytes);
    read = (i) => {
      fs.readSync(fd, buf, 0, buf.length, header.dataOffset + i * per * bytes);
      return facts.dtype === 'uint8' ? new Uint8Array(buf.buffer, buf.byteOffset, per) : new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    };
  } else {
    const data = input.data;
    read = (i) => data.subarray(i * per, (i + 1) * per);
  }
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
    if (fd >= 0) fs.closeSync(fd);
  }
  const count = take * h * w;
  const mean = Array.from(sum, (s) => s / count);
  const std = Array.from(sq, (s, ch) => Math.sqrt(Math.max(s / count - mean[ch] ** 2, 0)) || 1);
  return { mean, std };
}
