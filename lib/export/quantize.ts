/**
 * Static int8 quantization of the exported image encoder (QDQ format).
 *
 * Calibration runs a float32 "probe" model, which outputs every activation
 * the int8 model quantizes, on a sample of training images in onnxruntime,
 * and keeps each activation's min and max. The int8 model then quantizes
 * each Conv's input to uint8 with those ranges and its weights to int8 per
 * output channel; onnxruntime fuses each DequantizeLinear → Conv →
 * QuantizeLinear into an integer convolution (VNNI where the CPU has it).
 * The embedding is no longer LibTorch's to float32 rounding: exportRun
 * measures how far it moves, on held-out images, and records it.
 */
import { cpuFlags } from '../cpu';
import * as os from 'node:os';
import * as ort from 'onnxruntime-node';
import { DataError, ShapeError } from '../errors';
import { positiveInteger, threadCount } from '../validate';
import { decodeModel } from './onnx-builder';
import type { ImageChunk } from './images';
import { exportImageEncoder, type ImageEncoderMeta, type ImageExportOptions } from './resnet-onnx';
import type { WeightMap } from './onnx-builder';

export interface CalibrateOptions {
  /** onnxruntime intra-op threads. @default onnxruntime's default */
  threads?: number;
  /** What to name in errors (the image source). */
  label?: string;
}

export interface CalibrationResult {
  /** [min, max] of each activation the int8 model quantizes, by name. */
  ranges: Record<string, [number, number]>;
  /** Images seen. */
  images: number;
}

async function session(bytes: Uint8Array, threads?: number): Promise<ort.InferenceSession> {
  const opts: ort.InferenceSession.SessionOptions = { interOpNumThreads: 1 };
  opts.intraOpNumThreads = threads === undefined ? os.availableParallelism() : threadCount(threads, 'threads', os.availableParallelism());
  return ort.InferenceSession.create(bytes, opts);
}

function toFloat(chunk: ImageChunk): Float32Array {
  return chunk.data instanceof Float32Array ? chunk.data : Float32Array.from(chunk.data);
}

/**
 * Measures the activation ranges of the image encoder on `images` (chunks
 * of NCHW images in the model's input range). `opts` are the export options
 * the int8 model will be built with (normalize, inputRange).
 */
export async function calibrateImageEncoder(
  weights: WeightMap,
  meta: ImageEncoderMeta,
  opts: ImageExportOptions,
  images: AsyncIterable<ImageChunk> | Iterable<ImageChunk>,
  o: CalibrateOptions = {},
): Promise<CalibrationResult> {
  const probe = exportImageEncoder(weights, meta, { ...opts, head: undefined, quantize: undefined, probeActivations: true });
  const names = (decodeModel(probe).graph?.output ?? []).map((v) => v.name!).filter((n) => n !== 'embedding');
  const s = await session(probe, o.threads);
  const lo: Record<string, number> = {};
  const hi: Record<string, number> = {};
  const see = (name: string, v: ArrayLike<number>): void => {
    let a = lo[name] ?? Infinity;
    let b = hi[name] ?? -Infinity;
    for (let i = 0; i < v.length; i++) {
      const t = v[i];
      if (t < a) a = t;
      if (t > b) b = t;
    }
    lo[name] = a;
    hi[name] = b;
  };
  let seen = 0;
  try {
    for await (const chunk of images) {
      const x = toFloat(chunk);
      // The graph input itself is quantized when nothing is baked in before conv1.
      see('image', x);
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await s.run({ image: new ort.Tensor('float32', x, chunk.shape) });
      } catch (err) {
        throw new DataError(`onnxruntime failed calibrating on ${o.label ?? 'the images'} (images ${chunk.start}–${chunk.start + chunk.count - 1}): ${(err as Error).message}`, { cause: err });
      }
      for (const n of names) see(n, out[n].data as Float32Array);
      seen += chunk.count;
    }
  } finally {
    await s.release();
  }
  if (seen === 0) throw new ShapeError(`No images to calibrate on${o.label ? ` in ${o.label}` : ''}`);
  const ranges: Record<string, [number, number]> = {};
  for (const n of ['image', ...names]) {
    if (!(Number.isFinite(lo[n]) && Number.isFinite(hi[n]))) throw new DataError(`Activation "${n}" is not finite on ${o.label ?? 'the calibration images'}`);
    ranges[n] = [lo[n], hi[n]];
  }
  return { ranges, images: seen };
}

export interface Agreement {
  /** Images compared. */
  images: number;
  /** Smallest cosine similarity between an image's float32 and int8 embeddings. */
  minCosine: number;
  /** Median of the same. */
  medianCosine: number;
  /** max |int8 − float32| over the embeddings, and the largest |float32| value, for scale. */
  maxEmbeddingDiff: number;
  maxEmbedding: number;
  /** max |int8 − float32| over the head's probabilities (or predictions), when the model has a head. */
  maxOutputDiff?: number;
  /** Mean of the same. */
  meanOutputDiff?: number;
  /** The CPU the agreement was measured on (onnxruntime's int8 kernels depend on it). */
  cpu: string;
  /** Whether that CPU has VNNI (avx512_vnni or avx_vnni); null where /proc/cpuinfo has no x86 flags. */
  vnni: boolean | null;
}

/** The CPU's model name, and whether it has x86 VNNI (null where unknown, e.g. not Linux on x86). */
export function cpuVnni(): { cpu: string; vnni: boolean | null } {
  const cpu = os.cpus()[0]?.model?.trim() || 'unknown';
  const flags = cpuFlags();
  return { cpu, vnni: flags === null ? null : flags.has('avx512_vnni') || flags.has('avx_vnni') };
}

/**
 * Runs the float32 and the int8 model on the same images and measures how
 * far the int8 outputs move.
 */
export async function measureAgreement(
  float32: Uint8Array,
  int8: Uint8Array,
  images: AsyncIterable<ImageChunk> | Iterable<ImageChunk>,
  o: CalibrateOptions = {},
): Promise<Agreement> {
  const a = await session(float32, o.threads);
  const b = await session(int8, o.threads);
  const cos: number[] = [];
  let maxDiff = 0;
  let maxAbs = 0;
  let outMax: number | undefined;
  let outSum = 0;
  let outN = 0;
  try {
    for await (const chunk of images) {
      const feeds = { image: new ort.Tensor('float32', toFloat(chunk), chunk.shape) };
      const [ra, rb] = [await a.run(feeds), await b.run(feeds)];
      const ea = ra.embedding.data as Float32Array;
      const eb = rb.embedding.data as Float32Array;
      const d = ra.embedding.dims[1];
      for (let i = 0; i < chunk.count; i++) {
        let dot = 0;
        let na = 0;
        let nb = 0;
        for (let j = i * d; j < (i + 1) * d; j++) {
          dot += ea[j] * eb[j];
          na += ea[j] * ea[j];
          nb += eb[j] * eb[j];
          maxDiff = Math.max(maxDiff, Math.abs(ea[j] - eb[j]));
          maxAbs = Math.max(maxAbs, Math.abs(ea[j]));
        }
        cos.push(na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : na === nb ? 1 : 0);
      }
      const head = 'probabilities' in ra ? 'probabilities' : 'prediction' in ra ? 'prediction' : undefined;
      if (head) {
        const pa = ra[head].data as Float32Array;
        const pb = rb[head].data as Float32Array;
        for (let i = 0; i < pa.length; i++) {
          const e = Math.abs(pa[i] - pb[i]);
          outMax = Math.max(outMax ?? 0, e);
          outSum += e;
          outN++;
        }
      }
    }
  } finally {
    await a.release();
    await b.release();
  }
  if (cos.length === 0) throw new ShapeError('No images to compare the int8 model on');
  const sorted = [...cos].sort((p, q) => p - q);
  const mid = sorted.length >> 1;
  const res: Agreement = {
    images: cos.length,
    minCosine: sorted[0],
    medianCosine: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2,
    maxEmbeddingDiff: maxDiff,
    maxEmbedding: maxAbs,
    ...cpuVnni(),
  };
  if (outMax !== undefined) {
    res.maxOutputDiff = outMax;
    res.meanOutputDiff = outSum / outN;
  }
  return res;
}

/** `n` rows spread evenly over `rows` (all of them when n ≥ rows.length). */
export function spreadRows(rows: readonly number[], n: number): number[] {
  if (n >= rows.length) return [...rows];
  return Array.from({ length: n }, (_, i) => rows[Math.floor((i * rows.length) / n)]);
}
