/**
 * Morpho-MNIST morphometrics of one image (dccastro/Morpho-MNIST
 * `measure_image` with threshold 0.5, scale 4, bound_frac 0.02). Pure and
 * synchronous: the worker thread loads this module too.
 */
import { medialAxis, pyramidExpand, type Morphometrics } from './morpho-core';

/** The high-resolution intermediates that the measurements and perturbations share. */
export interface DigitMorphology {
  /** Side of the low-resolution input. */
  size: number;
  /** Upscale factor. */
  scale: number;
  /** Side of the high-resolution images (size * scale). */
  hiSize: number;
  /** Upscaled uint8 image. */
  hires: Uint8Array;
  /** hires >= min + 0.5 (max - min), 0/1. */
  binary: Uint8Array;
  /** Medial axis, 0/1. */
  skeleton: Uint8Array;
  /** Squared Euclidean distance to the background. */
  dist2: Float64Array;
  /** False for a constant image (no ink): every measurement is NaN. */
  hasInk: boolean;
}

const SQRT2 = Math.SQRT2;

/** Upscales, thresholds and skeletonises one square image. */
export function analyseDigit(pixels: ArrayLike<number>, size: number, scale = 4, threshold = 0.5): DigitMorphology {
  const hires = pyramidExpand(pixels, size, size, scale);
  const hiSize = size * scale;
  let lo = 255;
  let hi = 0;
  for (let i = 0; i < hires.length; i++) {
    if (hires[i] < lo) lo = hires[i];
    if (hires[i] > hi) hi = hires[i];
  }
  const cut = lo + (hi - lo) * threshold;
  const binary = new Uint8Array(hires.length);
  for (let i = 0; i < hires.length; i++) binary[i] = hires[i] >= cut ? 1 : 0;
  const hasInk = hi > lo;
  const { skeleton, dist2 } = hasInk ? medialAxis(binary, hiSize, hiSize)
    : { skeleton: new Uint8Array(hires.length), dist2: new Float64Array(hires.length) };
  return { size, scale, hiSize, hires, binary, skeleton, dist2, hasInk };
}

/** 2 * mean(distance on the skeleton) / scale. */
export function meanThickness(m: DigitMorphology): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < m.skeleton.length; i++) if (m.skeleton[i]) { s += Math.sqrt(m.dist2[i]); n++; }
  return n ? (2 * (s / n)) / m.scale : NaN;
}

/** Skeleton correlated with [[0,0,0],[0,0,1],[√2,1,√2]], summed over the skeleton, / scale. */
export function strokeLength(m: DigitMorphology): number {
  const { skeleton: k, hiSize: w } = m;
  const h = w;
  let s = 0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const p = r * w + c;
      if (!k[p]) continue;
      let v = 0;
      if (c + 1 < w && k[p + 1]) v += 1;
      if (r + 1 < h) {
        if (c > 0 && k[p + w - 1]) v += SQRT2;
        if (k[p + w]) v += 1;
        if (c + 1 < w && k[p + w + 1]) v += SQRT2;
      }
      s += v;
    }
  }
  return s / m.scale;
}

/** Raw and central moments (x = column, y = row) of a float image. */
export interface Moments {
  m00: number;
  m10: number;
  m01: number;
  u20: number;
  u11: number;
  u02: number;
}

export function imageMoments(img: ArrayLike<number>, h: number, w: number): Moments {
  let m00 = 0, sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = img[y * w + x];
      if (!v) continue;
      m00 += v; sx += x * v; sy += y * v;
      sxx += x * x * v; sxy += x * y * v; syy += y * y * v;
    }
  }
  const m10 = sx / m00;
  const m01 = sy / m00;
  return { m00, m10, m01, u20: sxx / m00 - m10 * m10, u11: sxy / m00 - m10 * m01, u02: syy / m00 - m01 * m01 };
}

/** numpy.interp for one point on a non-decreasing xp. */
function interp(x: number, xp: Float64Array, fp: ArrayLike<number>): number {
  const n = xp.length;
  if (x < xp[0]) return fp[0];
  if (x >= xp[n - 1]) return fp[n - 1];
  let lo = 0;
  let hi = n - 1; // invariant xp[lo] <= x < xp[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid] <= x) lo = mid; else hi = mid;
  }
  if (xp[lo] === x) return fp[lo];
  return ((fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo])) * (x - xp[lo]) + fp[lo];
}

/**
 * Morpho-MNIST `bounding_parallelogram`: a parallelogram sheared by
 * u11/u02 about the centroid row, bounding the mass between the frac/2 and
 * 1 - frac/2 quantiles horizontally (along the shear) and vertically.
 * Returns left/right at the centroid row and top/bottom, in hi-res pixels.
 */
export function boundingParallelogram(img: ArrayLike<number>, h: number, w: number, frac: number, mom: Moments):
  { left: number; right: number; top: number; bottom: number; shear: number } {
  const shear = mom.u11 / mom.u02;
  const middle = mom.m01;
  // Horizontal CDF: mass with x + 0.5 < t + shear * (y - middle), t = 0..w-1.
  const hcount = new Float64Array(w);
  const rowSum = new Float64Array(h);
  const prefix = new Float64Array(w + 1);
  let total = 0;
  for (let y = 0; y < h; y++) {
    prefix[0] = 0;
    for (let x = 0; x < w; x++) prefix[x + 1] = prefix[x] + img[y * w + x];
    rowSum[y] = prefix[w];
    total += prefix[w];
    if (!prefix[w]) continue;
    const d = shear * (y - middle);
    for (let t = 0; t < w; t++) {
      const rhs = t + d;
      // Number of x in [0, w) with x + 0.5 < rhs, checked with the same float comparison.
      let k = Math.min(w, Math.max(0, Math.ceil(rhs - 0.5)));
      while (k > 0 && !(k - 1 + 0.5 < rhs)) k--;
      while (k < w && k + 0.5 < rhs) k++;
      hcount[t] += prefix[k];
    }
  }
  const vcount = new Float64Array(h);
  let acc = 0;
  for (let t = 0; t < h; t++) { vcount[t] = acc; acc += rowSum[t]; }
  for (let t = 0; t < w; t++) hcount[t] /= total;
  for (let t = 0; t < h; t++) vcount[t] /= total;
  const half = frac / 2;
  const xs = Float64Array.from({ length: w }, (_, i) => i);
  const ys = Float64Array.from({ length: h }, (_, i) => i);
  return {
    left: interp(half, hcount, xs),
    right: interp(1 - half, hcount, xs),
    top: interp(half, vcount, ys),
    bottom: interp(1 - half, vcount, ys),
    shear,
  };
}

const NAN_METRICS: Morphometrics = { area: NaN, length: NaN, thickness: NaN, slant: NaN, width: NaN, height: NaN };

/** All six morphometrics from an analysed digit. */
export function measureMorphology(m: DigitMorphology, boundFrac = 0.02): Morphometrics {
  if (!m.hasInk) return { ...NAN_METRICS };
  let fg = 0;
  for (let i = 0; i < m.binary.length; i++) fg += m.binary[i];
  const mom = imageMoments(m.hires, m.hiSize, m.hiSize);
  const box = boundingParallelogram(m.hires, m.hiSize, m.hiSize, boundFrac, mom);
  return {
    area: fg / (m.scale * m.scale),
    length: strokeLength(m),
    thickness: meanThickness(m),
    slant: Math.atan(-box.shear),
    width: (box.right - box.left) / m.scale,
    height: (box.bottom - box.top) / m.scale,
  };
}

/** Morphometrics of one square uint8 image (no validation; see `measureDigit` in morpho.ts). */
export function measureRaw(pixels: ArrayLike<number>, size: number): Morphometrics {
  return measureMorphology(analyseDigit(pixels, size, 4, 0.5));
}
