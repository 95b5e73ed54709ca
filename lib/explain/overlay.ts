/**
 * Pictures of attributions: a map reduced over channels, the input in grey
 * with the map blended in as a heat map, and grids of such cells, written as
 * PNG with sharp.
 */
import sharp from 'sharp';
import { resizeBilinear } from '../data/cohort-images';
import { writeFileAtomic } from '../io/atomic';

/** Blue → cyan → yellow → red. */
export function heatColour(v: number): [number, number, number] {
  const stops: [number, number, number][] = [[0, 0, 128], [0, 160, 255], [255, 230, 0], [230, 0, 0]];
  const x = Math.min(1, Math.max(0, v)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]))) as [number, number, number];
}

/**
 * Example i of an N×C×h×w attribution reduced over channels, size×size:
 * Σ_c |a| ('abs', the default) or Σ_c a ('signed'); maps smaller than `size`
 * (GradCAM) are resized bilinearly.
 */
export function reduceMap(attributions: Float32Array, shape: readonly number[], i: number, size: number, mode: 'abs' | 'signed' = 'abs'): Float32Array {
  const [, ac, ah, aw] = shape;
  const plane = ah * aw;
  const a = attributions.subarray(i * ac * plane, (i + 1) * ac * plane);
  let heat: Float32Array = new Float32Array(plane);
  if (mode === 'abs') for (let ch = 0; ch < ac; ch++) for (let k = 0; k < plane; k++) heat[k] += Math.abs(a[ch * plane + k]);
  else for (let ch = 0; ch < ac; ch++) for (let k = 0; k < plane; k++) heat[k] += a[ch * plane + k];
  if (ah !== size || aw !== size) heat = resizeBilinear(heat, 1, ah, aw, size, size);
  return heat;
}

/**
 * An RGB cell (size×size×3 bytes): `grey` min–max scaled, with `heat` (≥ 0,
 * scaled to its maximum) blended in with opacity 0.6 × the scaled value.
 * Without a heat map, the grey image alone.
 */
export function overlayPixels(grey: ArrayLike<number>, heat: ArrayLike<number> | null, size: number): Buffer {
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k < size * size; k++) {
    lo = Math.min(lo, grey[k]);
    hi = Math.max(hi, grey[k]);
  }
  let top = 0;
  if (heat) for (let k = 0; k < size * size; k++) top = Math.max(top, heat[k]);
  const px = Buffer.alloc(size * size * 3);
  for (let k = 0; k < size * size; k++) {
    const g = hi > lo ? (grey[k] - lo) / (hi - lo) : 0;
    const a = heat && top > 0 ? heat[k] / top : 0;
    const col = heatColour(a);
    const alpha = 0.6 * a;
    for (let ch = 0; ch < 3; ch++) px[k * 3 + ch] = Math.round((1 - alpha) * 255 * g + alpha * col[ch]);
  }
  return px;
}

/** Writes one overlay, enlarged by nearest neighbour to about 256 px. */
export async function writeOverlay(file: string, grey: ArrayLike<number>, heat: ArrayLike<number>, size: number): Promise<void> {
  const scale = Math.max(1, Math.floor(256 / size));
  const png = await sharp(overlayPixels(grey, heat, size), { raw: { width: size, height: size, channels: 3 } })
    .resize(size * scale, size * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
  await writeFileAtomic(file, png);
}

/**
 * A PNG grid of RGB cells (rows × columns, each size×size×3), 2 px white
 * gaps, enlarged by nearest neighbour so that a cell is about `cellPx` wide.
 */
export async function gridPng(cells: Buffer[][], size: number, cellPx = 96): Promise<Buffer> {
  const gap = 2;
  const scale = Math.max(1, Math.round(cellPx / size));
  const s = size * scale;
  const rows = cells.length;
  const cols = Math.max(...cells.map((r) => r.length));
  const width = cols * s + (cols + 1) * gap;
  const height = rows * s + (rows + 1) * gap;
  const px = Buffer.alloc(width * height * 3, 255);
  cells.forEach((row, r) => row.forEach((cell, c) => {
    const y0 = gap + r * (s + gap);
    const x0 = gap + c * (s + gap);
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        const src = (Math.floor(y / scale) * size + Math.floor(x / scale)) * 3;
        const dst = ((y0 + y) * width + x0 + x) * 3;
        px[dst] = cell[src];
        px[dst + 1] = cell[src + 1];
        px[dst + 2] = cell[src + 2];
      }
    }
  }));
  return sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 64);
}
