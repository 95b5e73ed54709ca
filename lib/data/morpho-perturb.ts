/**
 * Morpho-MNIST perturbations (dccastro/Morpho-MNIST `morphomnist.perturb`,
 * defaults as in the paper): thinning, thickening, swelling and fracture.
 * Each works on the 4x upscaled binary digit and is downscaled back with
 * skimage's `pyramid_reduce(order=3)`. Random choices come from a seeded
 * MT19937, and every result carries its parameters and locations so they
 * can go into a ground-truth table. See docs/morpho-mnist.md.
 */
import { ConfigError, ShapeError } from '../errors';
import { MT19937, edtSquared, pyramidReduce } from './morpho-core';
import { analyseDigit, imageMoments, meanThickness, type DigitMorphology } from './morpho-measure';

/** A point in image coordinates (row, col); low-resolution unless named `...Hires`. */
export interface Point { row: number; col: number }

/** A box in low-resolution pixel coordinates (inclusive edges, may be fractional). */
export interface Box { top: number; left: number; bottom: number; right: number }

export interface ThinningParams { kind: 'thinning'; amount: number; meanThickness: number; radiusHires: number }
export interface ThickeningParams { kind: 'thickening'; amount: number; meanThickness: number; radiusHires: number }
export interface SwellingParams {
  kind: 'swelling'; seed: number; strength: number; radius: number;
  meanThickness: number; radiusHires: number; centre: Point; centreHires: Point;
}
export interface FractureLine { centre: Point; centreHires: Point; p0Hires: Point; p1Hires: Point; box: Box }
export interface FractureParams {
  kind: 'fracture'; seed: number; thickness: number; prune: number; numFrac: number;
  /** True when pruning left no skeleton and centres were drawn from the whole skeleton. */
  unpruned: boolean; fractures: FractureLine[];
}
export type PerturbationParams = ThinningParams | ThickeningParams | SwellingParams | FractureParams;

export interface PerturbResult<P extends PerturbationParams = PerturbationParams> {
  /** size x size uint8 digit. */
  image: Uint8Array;
  /** Perturbed high-resolution image in [0, 1] (binary except after swelling), (size*4)². */
  hires: Float64Array;
  params: P;
}

export type PerturbationSpec =
  | { kind: 'thinning'; amount?: number }
  | { kind: 'thickening'; amount?: number }
  | { kind: 'swelling'; strength?: number; radius?: number; seed?: number }
  | { kind: 'fracture'; thickness?: number; prune?: number; numFrac?: number; seed?: number };

function num(name: string, v: number | undefined, dflt: number, min: number, integer = false): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < min || (integer && !Number.isInteger(x))) {
    throw new ConfigError(`Expected ${integer ? 'integer' : 'number'} >= ${min} for ${name} but received ${String(x)} of type ${typeof x}`);
  }
  return x;
}

function prepare(pixels: Uint8Array, size: number): DigitMorphology {
  if (!Number.isInteger(size) || size < 3) throw new ConfigError(`Expected integer >= 3 for size but received ${String(size)} of type ${typeof size}`);
  if (!(pixels instanceof Uint8Array) || pixels.length !== size * size) {
    throw new ShapeError(`Expected pixels as a Uint8Array of length ${size * size}`);
  }
  const m = analyseDigit(pixels, size);
  if (!m.hasInk) throw new ShapeError('Cannot perturb a constant image (no ink)');
  return m;
}

function downscale(m: DigitMorphology, hires: Float64Array): Uint8Array {
  return pyramidReduce(hires, m.hiSize, m.hiSize, m.scale);
}

/** Erosion (radius < 0 → no-op) or dilation of the binary image by a disk (x² + y² <= r²). */
function morph(m: DigitMorphology, radius: number, dilate: boolean): Float64Array {
  const n = m.binary.length;
  const out = new Float64Array(n);
  const r2 = radius * radius;
  if (dilate) {
    const inv = new Uint8Array(n);
    for (let i = 0; i < n; i++) inv[i] = m.binary[i] ? 0 : 1;
    const d2 = edtSquared(inv, m.hiSize, m.hiSize); // distance from background to ink
    for (let i = 0; i < n; i++) out[i] = m.binary[i] || d2[i] <= r2 ? 1 : 0;
  } else {
    for (let i = 0; i < n; i++) out[i] = m.binary[i] && m.dist2[i] > r2 ? 1 : 0;
  }
  return out;
}

/** Thins a digit by about `amount` of its thickness (erosion by a disk). @default amount 0.7 */
export function thinDigit(pixels: Uint8Array, opts: { amount?: number; size?: number } = {}): PerturbResult<ThinningParams> {
  const amount = num('amount', opts.amount, 0.7, 0);
  const m = prepare(pixels, opts.size ?? 28);
  const t = meanThickness(m);
  const radiusHires = Math.trunc((amount * m.scale * t) / 2);
  const hires = morph(m, radiusHires, false);
  return { image: downscale(m, hires), hires, params: { kind: 'thinning', amount, meanThickness: t, radiusHires } };
}

/** Thickens a digit by about `amount` of its thickness (dilation by a disk). @default amount 1 */
export function thickenDigit(pixels: Uint8Array, opts: { amount?: number; size?: number } = {}): PerturbResult<ThickeningParams> {
  const amount = num('amount', opts.amount, 1, 0);
  const m = prepare(pixels, opts.size ?? 28);
  const t = meanThickness(m);
  const radiusHires = Math.trunc((amount * m.scale * t) / 2);
  const hires = morph(m, radiusHires, true);
  return { image: downscale(m, hires), hires, params: { kind: 'thickening', amount, meanThickness: t, radiusHires } };
}

function skeletonCoords(skel: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < skel.length; i++) if (skel[i]) out.push(i);
  return out;
}

function neighbours(skel: Uint8Array, w: number, p: number): number {
  const r = Math.trunc(p / w);
  const c = p - r * w;
  let n = 0;
  for (let dr = -1; dr <= 1; dr++) {
    for (let dc = -1; dc <= 1; dc++) {
      const rr = r + dr;
      const cc = c + dc;
      if ((dr || dc) && rr >= 0 && rr < w && cc >= 0 && cc < w && skel[rr * w + cc]) n++;
    }
  }
  return n;
}

/** Clears a disk of radius r around every seed pixel. */
function erase(skel: Uint8Array, w: number, seeds: number[], r: number): Uint8Array {
  const out = skel.slice();
  for (const p of seeds) {
    const pr = Math.trunc(p / w);
    const pc = p - pr * w;
    for (let dr = -r; dr <= r; dr++) {
      for (let dc = -r; dc <= r; dc++) {
        const rr = pr + dr;
        const cc = pc + dc;
        if (dr * dr + dc * dc <= r * r && rr >= 0 && rr < w && cc >= 0 && cc < w) out[rr * w + cc] = 0;
      }
    }
  }
  return out;
}

/** Skeleton pixels at least `prune` (low-res px) from tips and forks, like Morpho-MNIST's LocationSampler. */
function prunedSkeleton(m: DigitMorphology, prune: number): number[] {
  const w = m.hiSize;
  const r = Math.trunc(prune * m.scale);
  let skel = m.skeleton;
  skel = erase(skel, w, skeletonCoords(skel).filter((p) => neighbours(skel, w, p) === 1), r);
  const afterTips = skel;
  skel = erase(skel, w, skeletonCoords(afterTips).filter((p) => neighbours(afterTips, w, p) === 3), r);
  return skeletonCoords(skel);
}

const toPoint = (p: number, w: number, scale: number): Point => ({ row: Math.trunc(p / w) / scale, col: (p % w) / scale });

/**
 * Swells a digit around a random skeleton point: within radius R of the
 * centre c, x maps from c + (x - c)(|x - c| / R)^(strength - 1) (bilinear
 * sampling). R = radius · sqrt(thickness) / 2 in low-res px.
 * @default strength 3, radius 7, seed 0
 */
export function swellDigit(pixels: Uint8Array, opts: { strength?: number; radius?: number; seed?: number; size?: number } = {}): PerturbResult<SwellingParams> {
  const strength = num('strength', opts.strength, 3, 1);
  const radius = num('radius', opts.radius, 7, 0);
  const seed = num('seed', opts.seed, 0, 0, true);
  const m = prepare(pixels, opts.size ?? 28);
  const rng = new MT19937(seed);
  const coords = skeletonCoords(m.skeleton);
  const p = coords[rng.interval(coords.length - 1)];
  const w = m.hiSize;
  const cy = Math.trunc(p / w);
  const cx = p - cy * w;
  const t = meanThickness(m);
  const R = ((radius * Math.sqrt(t)) / 2) * m.scale;
  const hires = new Float64Array(w * w);
  const src = (r: number, c: number): number => (r >= 0 && r < w && c >= 0 && c < w ? m.binary[r * w + c] : 0);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const d = Math.hypot(dx, dy);
      const k = d > R ? 1 : (d / R) ** (strength - 1);
      const sx = cx + k * dx;
      const sy = cy + k * dy;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const v = (1 - fy) * ((1 - fx) * src(y0, x0) + fx * src(y0, x0 + 1)) + fy * ((1 - fx) * src(y0 + 1, x0) + fx * src(y0 + 1, x0 + 1));
      hires[y * w + x] = Math.min(1, Math.max(0, v));
    }
  }
  return {
    image: downscale(m, hires),
    hires,
    params: {
      kind: 'swelling', seed, strength, radius, meanThickness: t, radiusHires: R,
      centre: toPoint(p, w, m.scale), centreHires: { row: cy, col: cx },
    },
  };
}

/** Bresenham line from (r0, c0) to (r1, c1), both ends included. */
function line(r0: number, c0: number, r1: number, c1: number): [number, number][] {
  const pts: [number, number][] = [];
  const dr = Math.abs(r1 - r0);
  const dc = Math.abs(c1 - c0);
  const sr = r0 < r1 ? 1 : -1;
  const sc = c0 < c1 ? 1 : -1;
  let err = dc - dr;
  let r = r0;
  let c = c0;
  for (;;) {
    pts.push([r, c]);
    if (r === r1 && c === c1) break;
    const e2 = 2 * err;
    if (e2 > -dr) { err -= dr; c += sc; }
    if (e2 < dc) { err += dc; r += sr; }
  }
  return pts;
}

/**
 * Cuts `numFrac` strokes at random skeleton points away from tips and
 * forks (`prune` low-res px), each cut perpendicular to the local skeleton
 * direction (skeleton moments in a ±2 px window), as long as the local
 * stroke width plus 0.5 px on each side, and `thickness` low-res px wide.
 * @default thickness 1.5, prune 2, numFrac 3, seed 0
 */
export function fractureDigit(pixels: Uint8Array, opts: { thickness?: number; prune?: number; numFrac?: number; seed?: number; size?: number } = {}): PerturbResult<FractureParams> {
  const thickness = num('thickness', opts.thickness, 1.5, 0);
  const prune = num('prune', opts.prune, 2, 0);
  const numFrac = num('numFrac', opts.numFrac, 3, 1, true);
  const seed = num('seed', opts.seed, 0, 0, true);
  const m = prepare(pixels, opts.size ?? 28);
  const w = m.hiSize;
  const rng = new MT19937(seed);
  let coords = prunedSkeleton(m, prune);
  const unpruned = coords.length === 0;
  if (unpruned) coords = skeletonCoords(m.skeleton);
  const r = Math.ceil((thickness * m.scale - 1) / 2);
  const hires = Float64Array.from(m.binary);
  const win = 2 * m.scale; // angle window radius, hi-res px
  const fractures: FractureLine[] = [];
  const centres = Array.from({ length: numFrac }, () => coords[rng.interval(coords.length - 1)]);
  for (const p of centres) {
    const ci = Math.trunc(p / w);
    const cj = p - ci * w;
    const patch = new Float64Array((2 * win + 1) ** 2);
    for (let a = -win; a <= win; a++) {
      for (let b = -win; b <= win; b++) {
        const rr = ci + a;
        const cc = cj + b;
        if (rr >= 0 && rr < w && cc >= 0 && cc < w) patch[(a + win) * (2 * win + 1) + b + win] = m.skeleton[rr * w + cc];
      }
    }
    const mom = imageMoments(patch, 2 * win + 1, 2 * win + 1);
    const angle = 0.5 * Math.atan2(2 * mom.u11, mom.u20 - mom.u02) + Math.PI / 2;
    const len = Math.sqrt(m.dist2[p]) + 0.5 * m.scale;
    const nr = len * Math.sin(angle);
    const nc = len * Math.cos(angle);
    const p0 = { row: Math.trunc(ci + nr), col: Math.trunc(cj + nc) };
    const p1 = { row: Math.trunc(ci - nr), col: Math.trunc(cj - nc) };
    for (const [li, lj] of line(p0.row, p0.col, p1.row, p1.col)) {
      for (let a = -r; a <= r; a++) {
        for (let b = -r; b <= r; b++) {
          const rr = li + a;
          const cc = lj + b;
          if (a * a + b * b <= r * r && rr >= 0 && rr < w && cc >= 0 && cc < w) hires[rr * w + cc] = 0;
        }
      }
    }
    const s = m.scale;
    fractures.push({
      centre: toPoint(p, w, s), centreHires: { row: ci, col: cj }, p0Hires: p0, p1Hires: p1,
      box: {
        top: Math.max(0, Math.min(p0.row, p1.row) - r) / s, left: Math.max(0, Math.min(p0.col, p1.col) - r) / s,
        bottom: Math.min(w - 1, Math.max(p0.row, p1.row) + r) / s, right: Math.min(w - 1, Math.max(p0.col, p1.col) + r) / s,
      },
    });
  }
  return {
    image: downscale(m, hires),
    hires,
    params: { kind: 'fracture', seed, thickness, prune, numFrac, unpruned, fractures },
  };
}

/** Applies one perturbation described by `spec` (for ground-truth generation loops). */
export function perturbDigit(pixels: Uint8Array, spec: PerturbationSpec, size = 28): PerturbResult {
  switch (spec.kind) {
    case 'thinning': return thinDigit(pixels, { ...spec, size });
    case 'thickening': return thickenDigit(pixels, { ...spec, size });
    case 'swelling': return swellDigit(pixels, { ...spec, size });
    case 'fracture': return fractureDigit(pixels, { ...spec, size });
    default: throw new ConfigError(`Unknown perturbation kind ${JSON.stringify((spec as { kind?: unknown }).kind)}`);
  }
}
