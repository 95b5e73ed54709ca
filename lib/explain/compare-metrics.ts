/**
 * The numbers `tabsight compare` reports, as plain functions on typed arrays
 * (docs/explain.md, "Comparing runs"): rank agreement between attribution
 * maps, the deletion/insertion (RISE) curves and their AUC, localisation on
 * known regions, and retrieval, alignment and uniformity of paired
 * projections. Everything is computed in float64.
 */
import { ShapeError } from '../errors';
import { quantileSorted } from '../eval/metrics';
import { uniformStream } from '../rng';

/**
 * Ranks 1..n, ties given the mean of the ranks they span (scipy.stats.rankdata's
 * 'average'). A NaN anywhere makes every rank NaN (scipy's nan_policy 'propagate').
 */
export function rankData(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  for (let i = 0; i < n; i++) if (Number.isNaN(values[i])) return new Float64Array(n).fill(NaN);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b] || a - b);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]] === values[order[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]] = r;
    i = j + 1;
  }
  return ranks;
}

/** Pearson correlation; NaN when either side has no variance. */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new ShapeError(`Expected two arrays of the same length but received ${n} and ${b.length}`);
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i] - ma;
    const y = b[i] - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : NaN;
}

/** Spearman's ρ: Pearson correlation of the average ranks (ties allowed); NaN for a constant side or a NaN value. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`Expected two maps of the same size but received ${a.length} and ${b.length} values`);
  if (a.length < 2) return NaN;
  return pearson(rankData(a), rankData(b));
}

export interface Summary {
  /** Finite values summarised. */
  n: number;
  mean: number;
  median: number;
  q1: number;
  q3: number;
  /** q3 − q1 (quartiles with numpy's linear interpolation). */
  iqr: number;
}

/** Mean, median and quartiles of the finite values (NaN everywhere when there are none). */
export function summarize(values: ArrayLike<number>): Summary {
  const v = Float64Array.from(Array.prototype.filter.call(values, Number.isFinite) as number[]).sort();
  if (v.length === 0) return { n: 0, mean: NaN, median: NaN, q1: NaN, q3: NaN, iqr: NaN };
  const q1 = quantileSorted(v, 0.25);
  const q3 = quantileSorted(v, 0.75);
  return { n: v.length, mean: v.reduce((s, x) => s + x, 0) / v.length, median: quantileSorted(v, 0.5), q1, q3, iqr: q3 - q1 };
}

/** ∫ y dx by the trapezoid rule over the points (x_k, y_k), x ascending. */
export function trapezoidAuc(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new ShapeError(`Expected x and y of the same length but received ${x.length} and ${y.length}`);
  let s = 0;
  for (let k = 1; k < x.length; k++) s += (x[k] - x[k - 1]) * (y[k] + y[k - 1]) / 2;
  return s;
}

/** Pixel indices by decreasing saliency; ties in increasing index order. */
export function saliencyOrder(map: ArrayLike<number>): Int32Array {
  const order = Int32Array.from({ length: map.length }, (_, i) => i);
  return order.sort((a, b) => (map[b] - map[a]) || (a - b));
}

/**
 * How many pixels are perturbed after each step when `pixels` pixels go
 * `perStep` at a time: 0, perStep, 2·perStep, …, pixels (the last step may be
 * partial). `x` is the same as a fraction of the pixels.
 */
export function perturbationSchedule(pixels: number, perStep: number): { counts: Int32Array; x: Float64Array } {
  if (!(Number.isInteger(perStep) && perStep >= 1)) throw new ShapeError(`Expected positive integer pixels per step but received ${perStep}`);
  const steps = Math.ceil(pixels / perStep);
  const counts = Int32Array.from({ length: steps + 1 }, (_, k) => Math.min(k * perStep, pixels));
  return { counts, x: Float64Array.from(counts, (c) => c / pixels) };
}

/**
 * The images along a perturbation path: image k is `start` with its first
 * counts[k] pixels in `order` (all channels) taken from `end`. Deletion:
 * start = the image, end = the deleted image; insertion: start = the blurred
 * image, end = the image. `start` and `end` are C×P (P pixels).
 */
export function perturbationPath(start: Float32Array, end: Float32Array, order: Int32Array, counts: Int32Array, channels: number): Float32Array {
  const per = start.length;
  const pixels = per / channels;
  const out = new Float32Array(counts.length * per);
  const cur = Float32Array.from(start);
  let done = 0;
  counts.forEach((count, k) => {
    for (; done < count; done++) {
      const p = order[done];
      for (let ch = 0; ch < channels; ch++) cur[ch * pixels + p] = end[ch * pixels + p];
    }
    out.set(cur, k * per);
  });
  return out;
}

/**
 * (F_k − F(b)) / (F(x) − F(b)), b the reference image (deleted or blurred):
 * 1 at the image and 0 at the reference. NaN everywhere when
 * |F(x) − F(b)| ≤ 1e-6 · max(1, |F(x)|, |F(b)|), where the curve says nothing.
 */
export function normaliseCurve(scores: ArrayLike<number>, full: number, reference: number): Float64Array {
  const span = full - reference;
  const ok = Number.isFinite(span) && Math.abs(span) > 1e-6 * Math.max(1, Math.abs(full), Math.abs(reference));
  return Float64Array.from(scores as ArrayLike<number>, (s) => (ok ? (s - reference) / span : NaN));
}

/**
 * Separable Gaussian blur of C×H×W planes: kernel radius ceil(4σ), edges
 * replicated, float64 sums (the blurred IG baseline's rule, scipy's
 * gaussian_filter with mode 'nearest', truncate 4).
 */
export function gaussianBlur(image: Float32Array, channels: number, h: number, w: number, sigma: number): Float32Array {
  if (sigma === 0) return Float32Array.from(image);
  const r = Math.ceil(4 * sigma);
  const k = Float64Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-0.5 * ((i - r) / sigma) ** 2));
  const sum = k.reduce((a, b) => a + b, 0);
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const tmp = new Float64Array(h * w);
  const out = new Float32Array(image.length);
  for (let c = 0; c < channels; c++) {
    const o = c * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += k[i + r] * image[o + Math.min(h - 1, Math.max(0, y + i)) * w + x];
        tmp[y * w + x] = s;
      }
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += k[i + r] * tmp[y * w + Math.min(w - 1, Math.max(0, x + i))];
        out[o + y * w + x] = s;
      }
    }
  }
  return out;
}

/** A half-open box [y0, x0, y1, x1] in pixels. */
export type Box = readonly [number, number, number, number];

/**
 * The union of boxes given on an H×W grid, as a size×size mask: a box's
 * edges are scaled by size/H and size/W, then y0, x0 rounded down and y1, x1
 * up (the mask covers every pixel the scaled box touches).
 */
export function boxMask(boxes: readonly Box[], h: number, w: number, size: number): Uint8Array {
  const mask = new Uint8Array(size * size);
  const sy = size / h;
  const sx = size / w;
  for (const [y0, x0, y1, x1] of boxes) {
    const r0 = Math.max(0, Math.floor(y0 * sy));
    const c0 = Math.max(0, Math.floor(x0 * sx));
    const r1 = Math.min(size, Math.ceil(y1 * sy));
    const c1 = Math.min(size, Math.ceil(x1 * sx));
    for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) mask[r * size + c] = 1;
  }
  return mask;
}

/**
 * Pointing game: 1 when the map's largest value (the first in row-major
 * order on ties) lies inside the mask, else 0; NaN for a map that is all
 * ≤ 0 or not finite (it points nowhere).
 */
export function pointingHit(map: ArrayLike<number>, mask: ArrayLike<number>): number {
  let best = -Infinity;
  let at = -1;
  for (let k = 0; k < map.length; k++) {
    if (!Number.isFinite(map[k])) return NaN;
    if (map[k] > best) {
      best = map[k];
      at = k;
    }
  }
  if (!(best > 0)) return NaN;
  return mask[at] ? 1 : 0;
}

/** Σ_inside map / Σ map for a non-negative map; NaN when the map sums to 0. */
export function energyInside(map: ArrayLike<number>, mask: ArrayLike<number>): number {
  let inside = 0;
  let total = 0;
  for (let k = 0; k < map.length; k++) {
    const v = Math.max(0, map[k]);
    total += v;
    if (mask[k]) inside += v;
  }
  return total > 0 ? inside / total : NaN;
}

/** Rows (n×d) scaled to unit L2 norm (eps 1e-12, as the CLIP loss). */
export function l2Normalise(rows: ArrayLike<number>, n: number, d: number): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += rows[i * d + j] ** 2;
    const norm = Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) out[i * d + j] = rows[i * d + j] / norm;
  }
  return out;
}

export interface Retrieval {
  /** Images whose own row is the most similar of all n rows. */
  top1: number;
  /** … among the 5 most similar. */
  top5: number;
}

/**
 * Cross-modal retrieval among n pairs (u_i, v_i), unit rows n×d: image i
 * (u) retrieves row i (v) at rank #{j : u_i·v_j > u_i·v_i} (0 = first; ties
 * count in its favour); top-k accuracy is the fraction with rank < k. The
 * other direction swaps the roles.
 */
export function retrieval(u: Float64Array, v: Float64Array, n: number, d: number): { imageToTabular: Retrieval; tabularToImage: Retrieval } {
  const sim = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += u[i * d + k] * v[j * d + k];
      sim[i * n + j] = s;
    }
  }
  const hits = (rank: (i: number) => number) => {
    let h1 = 0;
    let h5 = 0;
    for (let i = 0; i < n; i++) {
      const r = rank(i);
      if (r < 1) h1++;
      if (r < 5) h5++;
    }
    return { top1: h1 / n, top5: h5 / n };
  };
  const rankRow = (i: number) => {
    let r = 0;
    for (let j = 0; j < n; j++) if (sim[i * n + j] > sim[i * n + i]) r++;
    return r;
  };
  const rankCol = (i: number) => {
    let r = 0;
    for (let j = 0; j < n; j++) if (sim[j * n + i] > sim[i * n + i]) r++;
    return r;
  };
  return { imageToTabular: hits(rankRow), tabularToImage: hits(rankCol) };
}

/** Wang & Isola's alignment with α = 2: mean_i ‖u_i − v_i‖² over the pairs (unit rows). */
export function alignment(u: Float64Array, v: Float64Array, n: number, d: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) s += (u[i * d + k] - v[i * d + k]) ** 2;
  return s / n;
}

/** Wang & Isola's uniformity with t = 2: log of the mean of exp(−2‖u_i − u_j‖²) over the pairs i < j (unit rows). */
export function uniformity(u: Float64Array, n: number, d: number): number {
  if (n < 2) return NaN;
  let s = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let dist = 0;
      for (let k = 0; k < d; k++) dist += (u[i * d + k] - u[j * d + k]) ** 2;
      s += Math.exp(-2 * dist);
    }
  }
  return Math.log(s / ((n * (n - 1)) / 2));
}

export interface PairedDifference {
  /** The statistic on the full sample (e.g. mean(a) − mean(b)). */
  estimate: number;
  /** 2.5 and 97.5 % quantiles of the bootstrap replicates. */
  lower: number;
  upper: number;
  /** Standard deviation of the replicates (the bootstrap standard error). */
  se: number;
  /** Two-sided p of estimate / se under a normal approximation. */
  p: number;
  /** Items (images or rows) in the comparison. */
  n: number;
}

/** Φ(x), the standard normal CDF (erfc by Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Benjamini–Hochberg at level q: which of the p-values (NaN never) are discoveries. */
export function benjaminiHochberg(p: readonly number[], q = 0.05): boolean[] {
  const idx = p.map((_, i) => i).filter((i) => Number.isFinite(p[i])).sort((a, b) => p[a] - p[b]);
  const m = idx.length;
  let k = -1;
  idx.forEach((i, r) => {
    if (p[i] <= (q * (r + 1)) / m) k = r;
  });
  const out = p.map(() => false);
  for (let r = 0; r <= k; r++) out[idx[r]] = true;
  return out;
}

/**
 * Percentile bootstrap (seeded, `reps` resamples with replacement) of a
 * paired statistic stat(indices) over n items; resamples where it is not
 * finite are skipped. The interval is the 2.5 and 97.5 % quantiles; p is
 * two-sided from estimate / (sd of the replicates). NaN interval and p for
 * fewer than 2 items.
 */
export function pairedBootstrap(n: number, stat: (idx: Uint32Array) => number, reps: number, seed: number): PairedDifference {
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const estimate = stat(all);
  const rng = uniformStream(seed);
  const values: number[] = [];
  const idx = new Uint32Array(n);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rng() * n);
    const v = stat(idx);
    if (Number.isFinite(v)) values.push(v);
  }
  if (n < 2 || values.length < 2) return { estimate, lower: NaN, upper: NaN, se: NaN, p: NaN, n };
  const sorted = Float64Array.from(values).sort();
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const se = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));
  // Replicates that are all equal (constant differences) leave an se of rounding noise: treat it as 0.
  const p = se > 1e-12 * Math.abs(estimate) ? 2 * normalCdf(-Math.abs(estimate / se)) : estimate === 0 ? 1 : 0;
  return { estimate, lower: quantileSorted(sorted, 0.025), upper: quantileSorted(sorted, 0.975), se, p, n };
}

/**
 * Paired difference a − b over the items finite in both: the mean of the
 * differences ('mean', for bounded values such as hit rates), or their median
 * ('median', for values with heavy tails such as normalised AUCs).
 */
export function pairedDifference(a: readonly number[], b: readonly number[], reps: number, seed: number, stat: 'mean' | 'median' = 'mean'): PairedDifference {
  const keep = a.map((_, i) => i).filter((i) => Number.isFinite(a[i]) && Number.isFinite(b[i]));
  const d = keep.map((i) => a[i] - b[i]);
  if (d.length === 0) return { estimate: NaN, lower: NaN, upper: NaN, se: NaN, p: NaN, n: 0 };
  const buf = new Float64Array(d.length);
  return pairedBootstrap(d.length, (idx) => {
    if (stat === 'median') {
      for (let i = 0; i < idx.length; i++) buf[i] = d[idx[i]];
      return quantileSorted(buf.sort(), 0.5);
    }
    let s = 0;
    for (let i = 0; i < idx.length; i++) s += d[idx[i]];
    return s / idx.length;
  }, reps, seed);
}

/** The paired mean difference a − b (pairedDifference with 'mean'). */
export function meanDifference(a: readonly number[], b: readonly number[], reps: number, seed: number): PairedDifference {
  return pairedDifference(a, b, reps, seed, 'mean');
}
