/**
 * Cascading randomisation for the model-parameter sanity check (Adebayo et
 * al. 2018): a copy of a run's weights file with the tensors of some stages
 * re-initialised as a fresh model would be (docs/explain.md, "Comparing
 * runs"). Everything else is copied bit for bit.
 *
 * - convolutions: Kaiming normal, fan_out, ReLU gain (torchvision's ResNet
 *   init): N(0, 2 / (out_channels · kh · kw));
 * - BatchNorm: weight 1, bias 0, running_mean 0, running_var 1,
 *   num_batches_tracked 0 (a freshly constructed layer);
 * - linear layers (the projection head): PyTorch's default,
 *   U(−1/√fan_in, 1/√fan_in) for weight and bias.
 *
 * Draws are seeded per tensor from (seed, tensor name), so a tensor gets the
 * same values whichever stages are randomised with it.
 */
import { ConfigError, DataError } from '../errors';
import { readSafetensors, writeSafetensors, type SafeTensor, type TensorInput } from '../io/safetensors';
import { uniformStream } from '../rng';

/** From the top of the network down. 'head': the image projection head; 'stem': conv1 and bn1. */
export const RANDOMIZATION_STAGES = ['head', 'layer4', 'layer3', 'layer2', 'layer1', 'stem'] as const;
export type RandomizationStage = (typeof RANDOMIZATION_STAGES)[number];

export interface RandomizeOptions {
  /** Stages to re-initialise. */
  stages: readonly RandomizationStage[];
  /** Prefix of the image encoder's tensors: 'model.image.' in a run's checkpoint, '' in an image_encoder.safetensors. */
  encoderPrefix: string;
  /** Prefix of the projection head's tensors (stage 'head'). @default 'model.image_projection.' */
  headPrefix?: string;
  /** Keep only tensors whose name starts with this (e.g. 'model.' drops a checkpoint's optimizer state). @default '' (all) */
  keepPrefix?: string;
  /** @default 0 */
  seed?: number;
}

/** The stage a tensor belongs to, or null. */
export function stageOf(name: string, encoderPrefix: string, headPrefix = 'model.image_projection.'): RandomizationStage | null {
  if (headPrefix && name.startsWith(headPrefix)) return 'head';
  if (!name.startsWith(encoderPrefix)) return null;
  const local = name.slice(encoderPrefix.length);
  const m = /^(layer[1-4])\./.exec(local);
  if (m) return m[1] as RandomizationStage;
  if (local.startsWith('conv1.') || local.startsWith('bn1.')) return 'stem';
  return null;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A seeded stream for one tensor. */
function streamFor(seed: number, name: string): () => number {
  return uniformStream(fnv1a(name) + (seed % 2 ** 20) * 2 ** 32);
}

/** Kaiming normal (fan_out, ReLU) for a conv weight [out, in, kh, kw]. */
export function kaimingNormalFanOut(shape: readonly number[], seed: number, name: string): Float32Array {
  const [out, , kh, kw] = shape;
  const std = Math.sqrt(2 / (out * kh * kw));
  const u = streamFor(seed, name);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    data[i] = std * r * Math.cos(t);
    if (i + 1 < n) data[i + 1] = std * r * Math.sin(t);
  }
  return data;
}

/** U(−1/√fanIn, 1/√fanIn) values (PyTorch's default Linear init for weight and bias). */
export function uniformFanIn(count: number, fanIn: number, seed: number, name: string): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const u = streamFor(seed, name);
  return Float32Array.from({ length: count }, () => (2 * u() - 1) * bound);
}

function fresh(name: string, t: SafeTensor, all: Map<string, SafeTensor>, seed: number): TensorInput {
  const dot = name.lastIndexOf('.');
  const module = name.slice(0, dot);
  const leaf = name.slice(dot + 1);
  const count = t.shape.reduce((a, b) => a * b, 1);
  const checkF32 = () => {
    if (t.dtype !== 'F32') throw new DataError(`Expected F32 for tensor ${name} but it is ${t.dtype}`);
  };
  const float = (v: number): TensorInput => {
    checkF32();
    return { dtype: 'F32', shape: t.shape, data: new Float32Array(count).fill(v) };
  };
  if (all.has(`${module}.running_mean`)) {
    if (leaf === 'num_batches_tracked') return { dtype: t.dtype, shape: t.shape, data: t.dtype === 'I64' ? new BigInt64Array(count) : new Float32Array(count) } as TensorInput;
    if (leaf === 'weight' || leaf === 'running_var') return float(1);
    return float(0); // bias, running_mean
  }
  const weight = all.get(`${module}.weight`);
  if (weight && weight.shape.length === 4 && leaf === 'weight') {
    checkF32();
    return { dtype: 'F32', shape: t.shape, data: kaimingNormalFanOut(t.shape, seed, name) };
  }
  if (weight && weight.shape.length === 2 && (leaf === 'weight' || leaf === 'bias')) {
    checkF32();
    return { dtype: 'F32', shape: t.shape, data: uniformFanIn(count, weight.shape[1], seed, name) };
  }
  throw new DataError(`Do not know how to re-initialise tensor ${name} (shape [${t.shape.join(', ')}])`);
}

/**
 * Writes `dst`: the tensors of `src` (those under keepPrefix) with every
 * tensor of the given stages re-initialised; metadata copied. Returns the
 * names re-initialised.
 */
export async function randomizeWeights(src: string, dst: string, options: RandomizeOptions): Promise<{ changed: string[] }> {
  const stages = new Set(options.stages);
  for (const s of stages) {
    if (!(RANDOMIZATION_STAGES as readonly string[]).includes(s)) throw new ConfigError(`Expected one of ${RANDOMIZATION_STAGES.join(', ')} for stage but received "${s}"`);
  }
  const seed = options.seed ?? 0;
  const keep = options.keepPrefix ?? '';
  const file = await readSafetensors(src);
  const out = new Map<string, TensorInput>();
  const changed: string[] = [];
  for (const [name, t] of file.tensors) {
    if (!name.startsWith(keep)) continue;
    const stage = stageOf(name, options.encoderPrefix, options.headPrefix ?? 'model.image_projection.');
    if (stage && stages.has(stage)) {
      out.set(name, fresh(name, t, file.tensors, seed));
      changed.push(name);
    } else {
      out.set(name, t);
    }
  }
  if (stages.has('head') && !changed.some((n) => stageOf(n, options.encoderPrefix, options.headPrefix ?? 'model.image_projection.') === 'head')) {
    throw new ConfigError(`${src} has no projection head tensors (${options.headPrefix ?? 'model.image_projection.'}*) to randomise`);
  }
  await writeSafetensors(dst, out, file.metadata);
  return { changed };
}
