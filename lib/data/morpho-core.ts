/**
 * Morpho-MNIST image processing, pure and synchronous: no Node imports, so
 * that the worker thread in `morpho-worker.ts` can load it as well.
 *
 * Each step follows the code that produced the published Morpho-MNIST
 * tables (dccastro/Morpho-MNIST with scikit-image <= 0.18 and SciPy):
 *
 * - `pyramidExpand`: skimage `pyramid_expand(img, upscale, order=3)`. Up to
 *   skimage 0.18, `resize` with order 3 ran `_warp_fast`, which is
 *   Catmull-Rom cubic convolution (not a B-spline) with skimage's `reflect`
 *   (mirror) border, clipped to the input range; then SciPy's Gaussian
 *   (sigma = 2 * upscale / 6, truncate 4, `reflect` border).
 * - `medialAxis`: skimage `medial_axis`: exact Euclidean distance transform,
 *   then a single pass of table-driven removal in the order (distance,
 *   cornerness, tiebreaker) where the tiebreaker is
 *   `np.random.RandomState(0).permutation(n)` (MT19937).
 *
 * See docs/morpho-mnist.md.
 */

/** The six Morpho-MNIST morphometrics of one digit, in low-resolution pixels (slant in radians). */
export interface Morphometrics {
  area: number;
  length: number;
  thickness: number;
  slant: number;
  width: number;
  height: number;
}

export const MORPHO_COLUMNS = ['area', 'length', 'thickness', 'slant', 'width', 'height'] as const;

// ---------------------------------------------------------------------------
// MT19937 as in numpy's legacy RandomState (integer seed, rk_interval).

/** Mersenne Twister, seeded like `np.random.RandomState(seed)` for an integer seed. */
export class MT19937 {
  #mt = new Uint32Array(624);
  #idx = 624;

  constructor(seed: number) {
    const mt = this.#mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** Next 32-bit unsigned integer (genrand_int32). */
  nextUint32(): number {
    const mt = this.#mt;
    if (this.#idx >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.#idx = 0;
    }
    let y = mt[this.#idx++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Uniform integer in [0, max] by masked rejection (numpy's rk_interval), max < 2^32. */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    let v: number;
    do v = (this.nextUint32() & mask) >>> 0;
    while (v > max);
    return v;
  }

  /** Uniform double in [0, 1) with 53 bits (numpy's random_sample). */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

/** `np.random.RandomState(seed).permutation(n)` (Fisher-Yates from the end). */
export function legacyPermutation(n: number, seed = 0): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const rng = new MT19937(seed);
  for (let i = n - 1; i >= 1; i--) {
    const j = rng.interval(i);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Resampling and smoothing.

/** skimage's 'reflect' (= numpy pad 'reflect', mirror without repeating the edge). */
function mirror(coord: number, dim: number): number {
  if (dim === 1) return 0;
  const cmax = dim - 1;
  if (coord < 0) {
    const q = Math.trunc(-coord / cmax);
    return q % 2 !== 0 ? cmax - (-coord % cmax) : -coord % cmax;
  }
  if (coord > cmax) {
    const q = Math.trunc(coord / cmax);
    return q % 2 !== 0 ? cmax - (coord % cmax) : coord % cmax;
  }
  return coord;
}

/** Catmull-Rom cubic through f0..f3 at x in [0, 1), in skimage's operation order. */
function cubic(x: number, f0: number, f1: number, f2: number, f3: number): number {
  return f1 + 0.5 * x * (f2 - f0 + x * (2.0 * f0 - 5.0 * f1 + 4.0 * f2 - f3 + x * (3.0 * (f1 - f2) + f3 - f0)));
}

/**
 * Separable Catmull-Rom resize like skimage <= 0.18 `resize(order=3,
 * mode='reflect', clip=True)`: the output pixel centre t maps to
 * (t + 0.5) * in / out - 0.5. Rows are interpolated along x first, then
 * along y, as `_warp_fast` does, and the result is clipped to [min, max] of
 * the input.
 */
export function resizeCubic(src: Float64Array, h: number, w: number, oh: number, ow: number): Float64Array {
  const fx = w / ow;
  const fy = h / oh;
  // Column taps per output column.
  const cx0 = new Int32Array(ow);
  const cxt = new Float64Array(ow);
  for (let c = 0; c < ow; c++) {
    const x = fx * (c + 0.5) - 0.5;
    const x0 = Math.floor(x);
    cx0[c] = x0 - 1;
    cxt[c] = x - x0;
  }
  const mid = new Float64Array(h * ow); // each input row interpolated along x
  for (let r = 0; r < h; r++) {
    const row = r * w;
    for (let c = 0; c < ow; c++) {
      const b = cx0[c];
      mid[r * ow + c] = cubic(cxt[c], src[row + mirror(b, w)], src[row + mirror(b + 1, w)],
        src[row + mirror(b + 2, w)], src[row + mirror(b + 3, w)]);
    }
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < src.length; i++) {
    if (src[i] < lo) lo = src[i];
    if (src[i] > hi) hi = src[i];
  }
  const out = new Float64Array(oh * ow);
  for (let r = 0; r < oh; r++) {
    const y = fy * (r + 0.5) - 0.5;
    const y0 = Math.floor(y);
    const t = y - y0;
    const r0 = mirror(y0 - 1, h) * ow;
    const r1 = mirror(y0, h) * ow;
    const r2 = mirror(y0 + 1, h) * ow;
    const r3 = mirror(y0 + 2, h) * ow;
    for (let c = 0; c < ow; c++) {
      const v = cubic(t, mid[r0 + c], mid[r1 + c], mid[r2 + c], mid[r3 + c]);
      out[r * ow + c] = v < lo ? lo : v > hi ? hi : v;
    }
  }
  return out;
}

/** numpy's pairwise sum for n < 128 (8 partial sums, then the remainder). */
function npSum(a: ArrayLike<number>): number {
  const n = a.length;
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[i];
    return s;
  }
  const r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
  let i = 8;
  for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[i + j];
  let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < n; i++) s += a[i];
  return s;
}

/** SciPy's normalised Gaussian kernel (truncate = 4). */
export function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.trunc(4 * sigma + 0.5);
  const k = new Float64Array(2 * radius + 1);
  const c = -0.5 / (sigma * sigma);
  for (let i = -radius; i <= radius; i++) k[i + radius] = Math.exp(c * (i * i));
  const s = npSum(k);
  for (let i = 0; i < k.length; i++) k[i] /= s;
  return k;
}

/** SciPy 'reflect' border (half-sample symmetric: d c b a | a b c d | d c b a). */
function symmetric(i: number, n: number): number {
  const period = 2 * n;
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

/**
 * One 1-D correlation pass with a symmetric kernel, SciPy style:
 * out = x[0]·k[0] + Σ_{j=-rad..-1} (x[j] + x[-j])·k[j], 'reflect' border.
 * Lines start at l·lineStep and advance by step.
 */
function correlatePass(src: Float64Array, k: Float64Array, len: number, lines: number, step: number, lineStep: number): Float64Array {
  const rad = (k.length - 1) >> 1;
  const dst = new Float64Array(src.length);
  const offs = new Int32Array(len + 2 * rad); // source offsets along the line, border included
  for (let i = -rad; i < len + rad; i++) offs[i + rad] = symmetric(i, len) * step;
  const buf = new Float64Array(len + 2 * rad);
  const k0 = k[rad];
  for (let l = 0; l < lines; l++) {
    const base = l * lineStep;
    for (let i = 0; i < buf.length; i++) buf[i] = src[base + offs[i]];
    for (let i = 0; i < len; i++) {
      const c = i + rad;
      let acc = buf[c] * k0;
      for (let j = -rad; j < 0; j++) acc += (buf[c + j] + buf[c - j]) * k[rad + j];
      dst[base + i * step] = acc;
    }
  }
  return dst;
}

/**
 * `scipy.ndimage.gaussian_filter(img, sigma, mode='reflect')` on an h x w
 * image: axis 0 then axis 1, with SciPy's symmetric-kernel summation order.
 */
export function gaussianFilter(img: Float64Array, h: number, w: number, sigma: number): Float64Array {
  const k = gaussianKernel(sigma);
  const a = correlatePass(img, k, h, w, w, 1); // along axis 0 (down each column)
  return correlatePass(a, k, w, h, 1, w); // along axis 1 (along each row)
}

/**
 * skimage `pyramid_expand(img, upscale, order=3)` on a uint8 image, then
 * Morpho-MNIST's `(255 * out).astype(uint8)` (truncation).
 */
export function pyramidExpand(pixels: ArrayLike<number>, h: number, w: number, scale: number): Uint8Array {
  const f = new Float64Array(h * w);
  for (let i = 0; i < f.length; i++) f[i] = pixels[i] / 255;
  const oh = Math.ceil(scale * h);
  const ow = Math.ceil(scale * w);
  const smooth = gaussianFilter(resizeCubic(f, h, w, oh, ow), oh, ow, (2 * scale) / 6);
  const out = new Uint8Array(oh * ow);
  for (let i = 0; i < out.length; i++) out[i] = Math.trunc(255 * smooth[i]);
  return out;
}

/**
 * skimage `pyramid_reduce(img, downscale, order=3)` on a float image in
 * [0, 1] (a binary image counts as 0/1), then `(255 * out).astype(uint8)`.
 */
export function pyramidReduce(img: Float64Array, h: number, w: number, scale: number): Uint8Array {
  const oh = Math.ceil(h / scale);
  const ow = Math.ceil(w / scale);
  const small = resizeCubic(gaussianFilter(img, h, w, (2 * scale) / 6), h, w, oh, ow);
  const out = new Uint8Array(oh * ow);
  for (let i = 0; i < out.length; i++) out[i] = Math.trunc(255 * Math.max(0, small[i]));
  return out;
}

// ---------------------------------------------------------------------------
// Distance transform and medial axis.

/**
 * Exact squared Euclidean distance from each foreground pixel to the nearest
 * background pixel inside the image (Felzenszwalb & Huttenlocher), as
 * `scipy.ndimage.distance_transform_edt` gives before its square root.
 */
export function edtSquared(bin: Uint8Array, h: number, w: number): Float64Array {
  const INF = 1e15;
  const g = new Float64Array(h * w);
  for (let c = 0; c < w; c++) { // 1-D along each column
    let last = -1;
    for (let r = 0; r < h; r++) {
      if (!bin[r * w + c]) { g[r * w + c] = 0; last = r; } else g[r * w + c] = last < 0 ? INF : (r - last) * (r - last);
    }
    last = -1;
    for (let r = h - 1; r >= 0; r--) {
      if (!bin[r * w + c]) last = r;
      else if (last >= 0) g[r * w + c] = Math.min(g[r * w + c], (last - r) * (last - r));
    }
  }
  const out = new Float64Array(h * w);
  const v = new Int32Array(w);
  const z = new Float64Array(w + 1);
  const f = new Float64Array(w);
  for (let r = 0; r < h; r++) { // lower envelope of parabolas along each row
    for (let c = 0; c < w; c++) f[c] = g[r * w + c];
    let k = 0;
    v[0] = 0; z[0] = -Infinity; z[1] = Infinity;
    for (let q = 1; q < w; q++) {
      let s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
      while (s <= z[k]) {
        k--;
        s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
      }
      k++;
      v[k] = q; z[k] = s; z[k + 1] = Infinity;
    }
    k = 0;
    for (let q = 0; q < w; q++) {
      while (z[k + 1] < q) k++;
      const d = q - v[k];
      out[r * w + q] = bin[r * w + q] ? d * d + f[v[k]] : 0;
    }
  }
  return out;
}

/** Number of 8-connected components among the set bits of a 3x3 pattern (bit i = row-major cell i). */
function components3x3(pattern: number): number {
  let seen = 0;
  let count = 0;
  for (let s = 0; s < 9; s++) {
    if (!(pattern & (1 << s)) || seen & (1 << s)) continue;
    count++;
    const stack = [s];
    seen |= 1 << s;
    while (stack.length) {
      const p = stack.pop()!;
      const pr = Math.trunc(p / 3);
      const pc = p % 3;
      for (let q = 0; q < 9; q++) {
        const qr = Math.trunc(q / 3);
        const qc = q % 3;
        if ((pattern & (1 << q)) && !(seen & (1 << q)) && Math.abs(qr - pr) <= 1 && Math.abs(qc - pc) <= 1) {
          seen |= 1 << q;
          stack.push(q);
        }
      }
    }
  }
  return count;
}

function popcount9(x: number): number {
  let n = 0;
  for (let i = 0; i < 9; i++) n += (x >> i) & 1;
  return n;
}

/**
 * skimage's medial-axis table: keep the centre if it is set and either
 * removing it changes the number of 8-connected components of the 3x3
 * neighbourhood, or the neighbourhood (centre included) has fewer than 3
 * pixels.
 */
const KEEP_TABLE: Uint8Array = (() => {
  const t = new Uint8Array(512);
  for (let i = 0; i < 512; i++) {
    const centre = (i & 16) !== 0;
    const changes = components3x3(i) !== components3x3(i & ~16);
    t[i] = centre && (changes || popcount9(i) < 3) ? 1 : 0;
  }
  return t;
})();

/** Cached tiebreakers by foreground count (they depend on nothing else). */
const tieCache = new Map<number, Int32Array>();

function tiebreaker(n: number): Int32Array {
  let t = tieCache.get(n);
  if (!t) {
    t = legacyPermutation(n, 0);
    if (tieCache.size >= 64) tieCache.clear(); // bounded: a permutation costs ~0.1 ms
    tieCache.set(n, t);
  }
  return t;
}

/**
 * skimage <= 0.18 `medial_axis(bin, return_distance=True)`. Returns the
 * skeleton (0/1) and the squared distance map.
 */
export function medialAxis(bin: Uint8Array, h: number, w: number): { skeleton: Uint8Array; dist2: Float64Array } {
  const dist2 = edtSquared(bin, h, w);
  const at = (r: number, c: number): number => (r >= 0 && r < h && c >= 0 && c < w && bin[r * w + c] ? 1 : 0);
  const fg: number[] = [];
  for (let i = 0; i < h * w; i++) if (bin[i]) fg.push(i);
  const n = fg.length;
  const tie = tiebreaker(n);
  // Sort keys: distance first, then cornerness (9 - pixels in the 3x3
  // neighbourhood, centre included), then the MT19937 tiebreaker, packed in
  // one exactly representable double.
  const keys = new Float64Array(n);
  const byTie = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const p = fg[k];
    const r = Math.trunc(p / w);
    const c = p - r * w;
    let nb = 0;
    for (let dr = -1; dr <= 1; dr++) for (let dc = -1; dc <= 1; dc++) nb += at(r + dr, c + dc);
    keys[k] = (dist2[p] * 16 + (9 - nb)) * n + tie[k];
    byTie[tie[k]] = k;
  }
  keys.sort();
  const res = bin.slice();
  for (let idx = 0; idx < n; idx++) {
    const p = fg[byTie[keys[idx] % n]];
    const ii = Math.trunc(p / w);
    const jj = p - ii * w;
    // As in skimage's _skeletonize_loop, pixels in row 0 are never updated.
    if (ii === 0) continue;
    let acc = 16;
    if (jj > 0 && res[p - w - 1]) acc += 1;
    if (res[p - w]) acc += 2;
    if (jj < w - 1 && res[p - w + 1]) acc += 4;
    if (jj > 0 && res[p - 1]) acc += 8;
    if (jj < w - 1 && res[p + 1]) acc += 32;
    if (ii < h - 1) {
      if (jj > 0 && res[p + w - 1]) acc += 64;
      if (res[p + w]) acc += 128;
      if (jj < w - 1 && res[p + w + 1]) acc += 256;
    }
    res[p] = KEEP_TABLE[acc];
  }
  return { skeleton: res, dist2 };
}
