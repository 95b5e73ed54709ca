/**
 * Attribution targets: what score an attribution explains. Each is a head on
 * an encoder's output (the image encoder's pooled features, or the tabular
 * encoder's embedding), checked here and handed to the native core.
 */
import { ConfigError, ShapeError } from '../errors';
import * as is from '../validate';

/** A float32 array with its shape. */
export interface ArrayWithShape {
  data: Float32Array;
  shape: readonly number[];
}

/** One index for every example, or one per example. */
export type IndexSpec = number | readonly number[];

/** A reference vector: one for all examples (D values) or one per example ({data, shape: [N, D]}). */
export type VectorSpec = Float32Array | readonly number[] | ArrayWithShape;

/** Targets shared by image and tabular attributions. */
export type CommonTarget =
  /** One dimension of the encoder output (pooled image features, or the tabular embedding). */
  | { kind: 'feature'; index: IndexSpec }
  /** One dimension of the projection head's output (needs a run's checkpoint). */
  | { kind: 'projection'; index: IndexSpec }
  /**
   * Cosine similarity (both sides L2-normalised, as MMCL's loss) between the
   * projection (space 'projection', the default, needs a checkpoint) or the
   * encoder output (space 'features') and a vector, e.g. a concept embedding.
   */
  | { kind: 'similarity'; vector: VectorSpec; space?: 'projection' | 'features' }
  /** A linear probe on the encoder output: (W·h + b)[index], weight [K, D]. */
  | { kind: 'probe'; weight: ArrayWithShape; bias?: Float32Array | readonly number[]; index?: IndexSpec };

export type ImageTarget =
  | CommonTarget
  /** Image–tabular similarity: cosine between each image's projection and its paired row's tabular projection. */
  | { kind: 'similarity'; pairedTabular: ArrayWithShape };

export type TabularTarget =
  | CommonTarget
  /** Tabular–image similarity: cosine between each row's projection and its paired image's projection. */
  | { kind: 'similarity'; pairedImages: ArrayWithShape };

/** The checked target as the native core reads it. */
export interface NativeTarget {
  kind: string;
  index?: number[];
  space?: string;
  vector?: Float32Array;
  vectorShape?: number[];
  weight?: Float32Array;
  weightShape?: number[];
  bias?: Float32Array;
  biasShape?: number[];
  pairedTabular?: { data: Float32Array; shape: number[] };
  pairedImages?: { data: Float32Array; shape: number[] };
}

function indices(value: unknown, n: number, name: string): number[] {
  const list = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(list) || (list.length !== 1 && list.length !== n)) {
    throw is.invalid(`non-negative integer or array of ${n} non-negative integers`, name, value);
  }
  return list.map((v, i) => is.nonNegativeInteger(v, list.length === 1 ? name : `${name}[${i}]`));
}

export function checkArray(value: unknown, name: string, rank: number): { data: Float32Array; shape: number[] } {
  const o = is.plainObject(value, name);
  const { data, shape } = o as { data: unknown; shape: unknown };
  if (!(data instanceof Float32Array)) {
    throw new ShapeError(`Expected Float32Array for ${name}.data but received ${ArrayBuffer.isView(data) ? `a ${(data as object).constructor.name}` : typeof data}`);
  }
  if (!Array.isArray(shape) || shape.length !== rank || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ShapeError(`Expected ${name}.shape of ${rank} positive integers but received ${JSON.stringify(shape)}`);
  }
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new ShapeError(`Expected ${count} values for ${name}.data (shape [${shape.join(', ')}]) but received ${data.length}`);
  return { data, shape: [...(shape as number[])] };
}

function vector(value: unknown, n: number): { data: Float32Array; shape: number[] } {
  if (value instanceof Float32Array || Array.isArray(value)) {
    const data = value instanceof Float32Array ? value : Float32Array.from(is.numberArray(value, 'target.vector'));
    if (data.length === 0) throw is.invalid('non-empty vector', 'target.vector', value);
    return { data, shape: [1, data.length] };
  }
  const v = checkArray(value, 'target.vector', 2);
  if (v.shape[0] !== 1 && v.shape[0] !== n) throw new ShapeError(`Expected target.vector.shape [1, D] or [${n}, D] but received [${v.shape.join(', ')}]`);
  return v;
}

/** What a target needs from the weights file. */
export function targetNeeds(target: NativeTarget): { projection: boolean; tabular: boolean } {
  const projection = target.kind === 'projection' || (target.kind === 'similarity' && target.space === 'projection');
  return { projection, tabular: target.pairedTabular !== undefined };
}

/** Checks a target for n examples of the given modality. */
export function resolveTarget(value: unknown, n: number, modality: 'image' | 'tabular'): NativeTarget {
  const t = is.plainObject(value, 'target');
  const kind = is.oneOf(t.kind, 'target.kind', ['feature', 'projection', 'similarity', 'probe'] as const);
  const paired = modality === 'image' ? 'pairedTabular' : 'pairedImages';
  const keys: Record<typeof kind, string[]> = {
    feature: ['kind', 'index'],
    projection: ['kind', 'index'],
    similarity: ['kind', 'vector', 'space', paired],
    probe: ['kind', 'weight', 'bias', 'index'],
  };
  is.knownKeys(t, 'target', keys[kind]);
  if (kind === 'feature' || kind === 'projection') return { kind, index: indices(t.index, n, 'target.index') };
  if (kind === 'probe') {
    const w = checkArray(t.weight, 'target.weight', 2);
    const out: NativeTarget = { kind, weight: w.data, weightShape: w.shape, index: indices(t.index ?? 0, n, 'target.index') };
    if (t.bias !== undefined) {
      const b = t.bias instanceof Float32Array ? t.bias : Float32Array.from(is.numberArray(t.bias, 'target.bias'));
      if (b.length !== w.shape[0]) throw new ShapeError(`Expected ${w.shape[0]} values for target.bias (one per probe output) but received ${b.length}`);
      out.bias = b;
      out.biasShape = [b.length];
    }
    return out;
  }
  if ((t.vector === undefined) === (t[paired] === undefined)) {
    throw new ConfigError(`Expected exactly one of target.vector and target.${paired} for a similarity target`);
  }
  if (t[paired] !== undefined) {
    if (t.space !== undefined && t.space !== 'projection') throw is.invalid('projection', 'target.space', t.space);
    const p = checkArray(t[paired], `target.${paired}`, modality === 'image' ? 2 : 4);
    if (p.shape[0] !== n) throw new ShapeError(`Expected ${n} rows in target.${paired} (one per example) but received ${p.shape[0]}`);
    return { kind, space: 'projection', [paired]: p };
  }
  const space = is.oneOf(t.space ?? 'projection', 'target.space', ['projection', 'features'] as const);
  const v = vector(t.vector, n);
  return { kind, space, vector: v.data, vectorShape: v.shape };
}
