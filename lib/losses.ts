/**
 * The contrastive losses of the native core, callable on small inputs for
 * checking and exploration. Float64Array inputs compute in float64.
 */
import { native } from './binding';
import { ShapeError, callNative } from './errors';
import * as is from './validate';

export interface LossValue {
  loss: number;
  /** The similarity matrix divided by the temperature. */
  logits: Float32Array | Float64Array;
  /** d loss / d first input. */
  gradA: Float32Array | Float64Array;
  /** d loss / d second input. */
  gradB: Float32Array | Float64Array;
}

export interface ClipLossOptions {
  /** @default 0.1 */
  temperature?: number;
  /** @default 0.5 */
  lambda?: number;
  /** @default false */
  removeFalseNegatives?: boolean;
}

type Vec = Float32Array | Float64Array;

function check(a: Vec, b: Vec, n: number, d: number, labels?: Int32Array) {
  is.positiveInteger(n, 'n');
  is.positiveInteger(d, 'd');
  for (const [name, arr] of [['a', a], ['b', b]] as const) {
    if (!(arr instanceof Float32Array) && !(arr instanceof Float64Array)) throw new ShapeError(`Expected Float32Array or Float64Array for ${name}`);
    if (arr.length !== n * d) throw new ShapeError(`Expected ${n * d} values for ${name} ([${n}, ${d}]) but received ${arr.length}`);
  }
  if (labels !== undefined && (!(labels instanceof Int32Array) || labels.length !== n)) {
    throw new ShapeError(`Expected an Int32Array of ${n} labels`);
  }
}

/** CLIP loss between image projections a and tabular projections b, both N×D. */
export function clipLoss(a: Vec, b: Vec, n: number, d: number, options: ClipLossOptions = {}, labels?: Int32Array): LossValue {
  check(a, b, n, d, labels);
  const opts = {
    temperature: is.positiveNumber(options.temperature ?? 0.1, 'temperature'),
    lambda: is.probability(options.lambda ?? 0.5, 'lambda'),
    removeFalseNegatives: is.boolean(options.removeFalseNegatives ?? false, 'removeFalseNegatives'),
  };
  return callNative(() => native().clipLoss(a, b, [n, d], opts, labels ?? null) as LossValue);
}

/** SimCLR's NT-Xent between two views a and b, both N×D. */
export function ntXentLoss(a: Vec, b: Vec, n: number, d: number, options: Omit<ClipLossOptions, 'lambda'> = {}, labels?: Int32Array): LossValue {
  check(a, b, n, d, labels);
  const opts = {
    temperature: is.positiveNumber(options.temperature ?? 0.1, 'temperature'),
    removeFalseNegatives: is.boolean(options.removeFalseNegatives ?? false, 'removeFalseNegatives'),
  };
  return callNative(() => native().ntXentLoss(a, b, [n, d], opts, labels ?? null) as LossValue);
}

/** MMCL's tabular corruption on raw rows (B×F) from marginals (M×F). */
export function corruptTabular(rows: Float32Array, shape: [number, number], marginals: Float32Array, marginalRows: number, rate: number, seed = 0): Float32Array {
  is.probability(rate, 'rate');
  is.integer(seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  return callNative(() => native().corruptTabular(rows, shape, marginals, [marginalRows, shape[1]], rate, seed) as Float32Array);
}

/** One-hot encodes categorical codes (cardinality k > 0); continuous columns (0) pass through. */
export function encodeTabular(rows: Float32Array, shape: [number, number], cardinalities: number[]): { data: Float32Array; shape: number[] } {
  if (Array.isArray(cardinalities)) cardinalities.forEach((k, i) => is.cardinality(k, `cardinalities[${i}]`));
  return callNative(() => native().encodeTabular(rows, shape, cardinalities) as { data: Float32Array; shape: number[] });
}
