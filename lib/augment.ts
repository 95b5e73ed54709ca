/**
 * Batched image augmentations for contrastive pretraining (MMCL's image
 * views), run by the native core on LibTorch's thread pool. See
 * docs/augment.md for the conventions and how they compare to torchvision.
 */
import { native } from './binding';
import { ConfigError, ShapeError, awaitNative, callNative } from './errors';
import {
  boolean,
  invalid,
  isNumber,
  knownKeys,
  nonNegativeInteger,
  nonNegativeNumber,
  numberArray,
  numberInRange,
  plainObject,
  probability,
} from './validate';

/** A batch of images, N×C×H×W in row-major order. */
export interface ImageBatch {
  /** uint8 (scaled by 1/255) or float32 pixel values. */
  data: Uint8Array | Float32Array;
  /** [n, c, h, w]. */
  shape: readonly number[];
}

/** A float32 batch, N×C×H×W. */
export interface FloatImageBatch {
  data: Float32Array;
  shape: number[];
}

export interface AugmentOptions {
  /**
   * Probability that a sample gets the random pipeline; the others are only
   * resized (MMCL's augmentation rate).
   * @default 0.95
   */
  rate: number;
  /**
   * Random resized crop (torchvision's RandomResizedCrop sampling). false
   * keeps the whole image.
   * @default true
   */
  crop: boolean;
  /**
   * Crop area as a fraction of the image, [min, max] with 0 < min ≤ max ≤ 1.
   * @default [0.2, 1]
   */
  cropScale: [number, number];
  /**
   * Crop aspect ratio (width / height) range, sampled log-uniformly.
   * @default [0.75, 1.3333333333333333]
   */
  cropRatio: [number, number];
  /**
   * Horizontal flip probability.
   * @default 0.5
   */
  flipP: number;
  /**
   * Rotation by an angle uniform in [-rotationDeg, rotationDeg] degrees
   * (counter-clockwise positive) about the image centre, zero fill; 0 to 180.
   * @default 45
   */
  rotationDeg: number;
  /**
   * Brightness jitter: x·f with f uniform in [max(0, 1 − b), 1 + b].
   * @default 0.5
   */
  brightness: number;
  /**
   * Contrast jitter: blend with the image's mean gray level.
   * @default 0.5
   */
  contrast: number;
  /**
   * Saturation jitter: blend with the grayscale image (3 channels only).
   * @default 0.5
   */
  saturation: number;
  /**
   * Probability of applying the colour jitter (RandomApply).
   * @default 1
   */
  jitterP: number;
  /**
   * Random grayscale probability (3 channels only).
   * @default 0
   */
  grayscaleP: number;
  /**
   * Gaussian blur probability.
   * @default 0
   */
  blurP: number;
  /**
   * Gaussian blur kernel size (odd). Needs outputs of at least
   * blurKernel / 2 + 1 pixels per side when blurP > 0 (reflect padding).
   * @default 9
   */
  blurKernel: number;
  /**
   * Gaussian blur sigma range in output pixels, [min, max].
   * @default [0.1, 2]
   */
  blurSigma: [number, number];
  /**
   * Output [height, width]; [0, 0] keeps the input size.
   * @default [0, 0]
   */
  outSize: [number, number];
  /**
   * Colour operations clamp to this range, as torchvision clamps to [0, 1].
   * @default [0, 1]
   */
  valueRange: [number, number];
}

/** MMCL's cardiac (UK Biobank MRI) view: flip, rotation 45°, jitter 0.5, crop 0.2–1. */
export const MMCL_CARDIAC_AUGMENT: Readonly<AugmentOptions> = Object.freeze({
  rate: 0.95,
  crop: true,
  cropScale: [0.2, 1] as [number, number],
  cropRatio: [3 / 4, 4 / 3] as [number, number],
  flipP: 0.5,
  rotationDeg: 45,
  brightness: 0.5,
  contrast: 0.5,
  saturation: 0.5,
  jitterP: 1,
  grayscaleP: 0,
  blurP: 0,
  blurKernel: 9,
  blurSigma: [0.1, 2] as [number, number],
  outSize: [0, 0] as [number, number],
  valueRange: [0, 1] as [number, number],
});

/** MMCL's DVM (car adverts) view: jitter 0.8 (p 0.8), grayscale 0.2, blur 29 (p 0.5), crop 0.08–1, flip. */
export const MMCL_DVM_AUGMENT: Readonly<AugmentOptions> = Object.freeze({
  ...MMCL_CARDIAC_AUGMENT,
  cropScale: [0.08, 1] as [number, number],
  rotationDeg: 0,
  brightness: 0.8,
  contrast: 0.8,
  saturation: 0.8,
  jitterP: 0.8,
  grayscaleP: 0.2,
  blurP: 0.5,
  blurKernel: 29,
  blurSigma: [0.1, 2] as [number, number],
});

/** The defaults of augmentBatch: MMCL's cardiac view. */
export const DEFAULT_AUGMENT: Readonly<AugmentOptions> = MMCL_CARDIAC_AUGMENT;

/** The parameters drawn for one sample (see sampleAugmentParams). */
export interface AugmentSampleParams {
  /** false: the sample was only resized, and every other field is the identity. */
  augmented: boolean;
  /** Crop box [top, left, height, width] in pixels of the flipped, rotated image. */
  crop: [number, number, number, number];
  flip: boolean;
  /** Degrees, counter-clockwise. */
  angle: number;
  jitter: boolean;
  brightness: number;
  contrast: number;
  saturation: number;
  /** The jitter operations in the order applied. */
  order: Array<'brightness' | 'contrast' | 'saturation'>;
  grayscale: boolean;
  blur: boolean;
  blurSigma: number;
}

const KEYS = Object.keys(MMCL_CARDIAC_AUGMENT) as Array<keyof AugmentOptions>;

/** A [min, max] pair: min in (0, hi], max in [min, hi]. */
function pair(value: unknown, name: string, hi: number): [number, number] {
  const [lo, up] = numberArray(value, name, 2);
  if (!(lo > 0 && lo <= hi)) throw invalid(hi === Infinity ? 'positive number' : `number in (0, ${hi}]`, `${name}[0]`, lo);
  if (!(up >= lo && up <= hi)) {
    throw invalid(`number ≥ ${name}[0] (${lo})${hi === Infinity ? '' : ` and ≤ ${hi}`}`, `${name}[1]`, up);
  }
  return [lo, up];
}

/**
 * Fills in the defaults and validates every option, returning the complete
 * object the native core expects. Unknown keys are rejected.
 * @throws ConfigError naming the option, e.g. "augment.flipP".
 */
export function resolveAugmentOptions(partial: Partial<AugmentOptions> = {}): AugmentOptions {
  const given = plainObject(partial, 'augment');
  knownKeys(given, 'augment', KEYS);
  const o = { ...DEFAULT_AUGMENT, ...given } as Record<string, unknown>;
  const blurKernel = o.blurKernel;
  if (!isNumber(blurKernel) || !Number.isInteger(blurKernel) || blurKernel < 1 || blurKernel % 2 === 0) {
    throw invalid('odd positive integer', 'augment.blurKernel', blurKernel);
  }
  const outSize = numberArray(o.outSize, 'augment.outSize', 2);
  const outH = nonNegativeInteger(outSize[0], 'augment.outSize[0]');
  const outW = nonNegativeInteger(outSize[1], 'augment.outSize[1]');
  if ((outH === 0) !== (outW === 0)) {
    throw new ConfigError(`Expected [0, 0] or two positive integers for augment.outSize but received [${outH}, ${outW}]`);
  }
  const valueRange = numberArray(o.valueRange, 'augment.valueRange', 2);
  if (!(valueRange[1] > valueRange[0])) {
    throw invalid(`number > augment.valueRange[0] (${valueRange[0]})`, 'augment.valueRange[1]', valueRange[1]);
  }
  return {
    rate: probability(o.rate, 'augment.rate'),
    crop: boolean(o.crop, 'augment.crop'),
    cropScale: pair(o.cropScale, 'augment.cropScale', 1),
    cropRatio: pair(o.cropRatio, 'augment.cropRatio', Infinity),
    flipP: probability(o.flipP, 'augment.flipP'),
    rotationDeg: numberInRange(o.rotationDeg, 'augment.rotationDeg', 0, 180),
    brightness: nonNegativeNumber(o.brightness, 'augment.brightness'),
    contrast: nonNegativeNumber(o.contrast, 'augment.contrast'),
    saturation: nonNegativeNumber(o.saturation, 'augment.saturation'),
    jitterP: probability(o.jitterP, 'augment.jitterP'),
    grayscaleP: probability(o.grayscaleP, 'augment.grayscaleP'),
    blurP: probability(o.blurP, 'augment.blurP'),
    blurKernel,
    blurSigma: pair(o.blurSigma, 'augment.blurSigma', Infinity),
    outSize: [outH, outW],
    valueRange: [valueRange[0], valueRange[1]],
  };
}

function checkSeed(seed: unknown): number {
  if (!isNumber(seed) || !Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw invalid('non-negative safe integer', 'seed', seed);
  }
  return seed;
}

/** Checks dtype, rank and length of a batch; returns the shape. */
function checkImages(images: ImageBatch): [number, number, number, number] {
  const obj = plainObject(images, 'images');
  const { data, shape } = obj as unknown as ImageBatch;
  if (!(data instanceof Uint8Array || data instanceof Float32Array)) {
    const got = ArrayBuffer.isView(data) ? `a ${(data as object).constructor.name}` : typeof data;
    throw new ShapeError(`Expected Uint8Array or Float32Array for images.data but received ${got}`);
  }
  if (!Array.isArray(shape) || shape.length !== 4) {
    const got = Array.isArray(shape) ? `rank ${shape.length}` : typeof shape;
    throw new ShapeError(`Expected rank 4 [n, c, h, w] for images.shape but received ${got}`);
  }
  shape.forEach((d, i) => {
    if (!Number.isInteger(d) || d < (i === 0 ? 0 : 1)) {
      throw new ShapeError(`Expected ${i === 0 ? 'non-negative' : 'positive'} integer for images.shape[${i}] but received ${String(d)}`);
    }
  });
  const numel = shape.reduce((a: number, b: number) => a * b, 1);
  if (data.length !== numel) {
    throw new ShapeError(`Expected ${numel} elements for images.shape [${shape.join(', ')}] but images.data has ${data.length}`);
  }
  return shape as [number, number, number, number];
}

/**
 * A Float32Array whose memory is not zero-filled, for outputs the native code
 * writes in full. Node's Buffer.allocUnsafe gives a large buffer its own
 * ArrayBuffer at offset 0; below 4 KiB it would come from Node's shared pool,
 * so small arrays are allocated normally.
 */
function uninitialisedFloat32(length: number): Float32Array | undefined {
  if (length > 2 ** 32 - 1) return undefined; // the native side names the limit
  if (length * 4 < 4096) return new Float32Array(length);
  const bytes = Buffer.allocUnsafe(length * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, length);
}

/**
 * Augments a batch: one random view per image, deterministic in `seed`.
 * Resolves to float32 N×C×outH×outW (uint8 input scaled to [0, 1]).
 * `into`, if given, is the Float32Array of N×C×outH×outW elements the view is
 * written into (and resolved with): a loader that alternates two of them
 * saves a fresh 12 MB allocation, and its page faults, per batch of 64 at
 * 128 px. It must not overlap the input.
 * @throws ShapeError for bad data, shape or `into`, ConfigError for bad options.
 */
export async function augmentBatch(
  images: ImageBatch,
  options: Partial<AugmentOptions> = {},
  seed = 0,
  into?: Float32Array,
): Promise<FloatImageBatch> {
  const shape = checkImages(images);
  const resolved = resolveAugmentOptions(options);
  const s = checkSeed(seed);
  const [n, c, h, w] = shape;
  const length = n * c * (resolved.outSize[0] || h) * (resolved.outSize[1] || w);
  if (into !== undefined) {
    if (!(into instanceof Float32Array)) {
      const got = ArrayBuffer.isView(into) ? `a ${(into as object).constructor.name}` : typeof into;
      throw new ShapeError(`Expected a Float32Array for into but received ${got}`);
    }
    if (into.length !== length) {
      throw new ShapeError(`Expected ${length} elements for into (${n}×${c}×${resolved.outSize[0] || h}×${resolved.outSize[1] || w}) but received ${into.length}`);
    }
  }
  const out = into ?? uninitialisedFloat32(length);
  return awaitNative(callNative(() => native().augment(images.data, [...shape], resolved, s, false, out) as Promise<FloatImageBatch>));
}

/**
 * The per-sample parameters augmentBatch draws for n images of h×w with the
 * same options and seed (for inspection and tests).
 */
export function sampleAugmentParams(
  n: number,
  h: number,
  w: number,
  options: Partial<AugmentOptions> = {},
  seed = 0,
): AugmentSampleParams[] {
  nonNegativeInteger(n, 'n');
  if (!Number.isInteger(h) || h < 1) throw invalid('positive integer', 'h', h);
  if (!Number.isInteger(w) || w < 1) throw invalid('positive integer', 'w', w);
  const resolved = resolveAugmentOptions(options);
  return callNative(() => native().augmentParams(n, h, w, resolved, checkSeed(seed)) as AugmentSampleParams[]);
}

/**
 * The evaluation transform: uint8 → float /255, bilinear resize
 * (align_corners false, no antialias) to outH×outW (0 keeps the size).
 * Synchronous; meant for small batches.
 */
export function resizeToFloat(images: ImageBatch, outH = 0, outW = 0): FloatImageBatch {
  const shape = checkImages(images);
  nonNegativeInteger(outH, 'outH');
  nonNegativeInteger(outW, 'outW');
  return callNative(() => native().resizeToFloat(images.data, [...shape], outH, outW) as FloatImageBatch);
}
