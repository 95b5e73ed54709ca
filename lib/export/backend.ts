/**
 * One interface over the two inference backends: an exported ONNX model in
 * onnxruntime ('ort'), or a run's image encoder in LibTorch ('torch').
 * Inputs are checked against the model before anything runs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AbortError, ConfigError, DataError, ShapeError } from '../errors';
import { imageValueType } from '../data/cohort-images';
import { removeAtExit } from '../io/atomic';
import { loadRun, type Run } from '../run';
import { readImageChunks, type ImageChunk, type ImageSource } from './images';
import { markFinite, OrtImageEncoder } from './ort';
import { exportRun } from './run-export';

export type Backend = 'ort' | 'torch';

export interface EmbedderOutput {
  /** Row-major [n, dim]. */
  embedding: Float32Array;
  dim: number;
  logits?: Float32Array;
  probabilities?: Float32Array;
  prediction?: Float32Array;
}

export interface HeadInfo {
  task: string;
  kind: 'binary' | 'multiclass' | 'regression';
  classes: string[];
  /** The head's width K: logits per class (1 for binary), or regression targets. */
  outputs: number;
}

export interface Embedder {
  backend: Backend;
  /** The model file or run directory. */
  source: string;
  /** The probe head inside an ONNX model, if any. */
  head: HeadInfo | null;
  /** Embedding size. */
  dim: number;
  /** Throws ShapeError when `src` does not fit the model (channels, size, dtype). */
  check(src: Pick<ImageSource, 'label' | 'dtype' | 'shape'>): void;
  embed(chunk: ImageChunk): Promise<EmbedderOutput>;
  dispose(): Promise<void>;
}

export interface OpenEmbedderOptions {
  /** An exported ONNX model (backend ort). */
  model?: string;
  /** A run directory (backend torch, or ort through a temporary export). */
  run?: string;
  /** @default 'ort' with model, 'torch' with run */
  backend?: Backend;
  /** Images per forward pass. @default OrtImageEncoder.embed's 64 in onnxruntime; in LibTorch the run's defaultEmbedBatch (on the CPU 16 for images of at least 128 px, or at least 64 px with the small stem; else 64) */
  batchSize?: number;
  /** onnxruntime intra-op threads. @default os.availableParallelism() */
  threads?: number;
}

function checkCommon(src: Pick<ImageSource, 'label' | 'dtype' | 'shape'>, where: string, channels: number | null, size: [number, number][] | null): void {
  const { shape, dtype, label } = src;
  if (dtype !== 'uint8' && dtype !== 'float16' && dtype !== 'float32') throw new ShapeError(`Expected uint8, float16 or float32 images in ${label} but found ${String(dtype)} (${where})`);
  if (shape.length !== 4) throw new ShapeError(`Expected images [N, C, H, W] in ${label} but found shape [${shape.join(', ')}] (${where})`);
  const [, c, h, w] = shape;
  if (channels !== null && c !== channels) throw new ShapeError(`Expected ${channels} channels for images but received ${c} in ${label} (${where})`);
  if (size && !size.some(([eh, ew]) => eh === h && ew === w)) {
    throw new ShapeError(`Expected ${[...new Set(size.map(([a, b]) => `${a}×${b}`))].join(' or ')} images (height×width) but received ${h}×${w} in ${label} (${where})`);
  }
}

/**
 * The probe head a model's metadata describes, checked against the model's
 * head output: broken JSON in tabsight.head.classes crashed embed and
 * predict, and classes or a kind edited to disagree with the output's width
 * gave CSVs whose columns did not match their values. A DataError naming the
 * model and the key otherwise.
 */
export function headInfo(source: string, enc: Pick<OrtImageEncoder, 'metadata' | 'headOutputs'>): HeadInfo | null {
  const md = enc.metadata;
  const task = md['tabsight.head.task'];
  if (!task) return null;
  const bad = (key: string, what: string) => new DataError(`${source}: metadata ${key} ${what}; re-export the model (tabsight export --with-head)`);
  const kind = md['tabsight.head.kind'];
  if (kind !== 'binary' && kind !== 'multiclass' && kind !== 'regression') throw bad('tabsight.head.kind', `is ${JSON.stringify(kind)}, not binary, multiclass or regression`);
  let classes: unknown;
  try {
    classes = JSON.parse(md['tabsight.head.classes'] ?? '[]');
  } catch {
    throw bad('tabsight.head.classes', 'is not valid JSON');
  }
  if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) throw bad('tabsight.head.classes', 'is not a JSON array of strings');
  const output = kind === 'regression' ? 'prediction' : 'logits';
  const width = enc.headOutputs.find((h) => h.name === output)?.width;
  if (width === undefined || width < 1) throw bad('tabsight.head.task', `names a head, but the model has no "${output}" output of a known width`);
  const fits = kind === 'binary' ? width === 1 && classes.length === 2
    : kind === 'multiclass' ? width >= 2 && classes.length === width
      : classes.length === 0 || classes.length === width;
  if (!fits) throw bad('tabsight.head.classes', `holds ${classes.length} class(es) for a ${kind} head with ${width} output(s) (binary: 1 output and 2 classes; multiclass: one class per output)`);
  return { task, kind, classes: classes as string[], outputs: width };
}

class OrtEmbedder implements Embedder {
  readonly backend = 'ort' as const;
  readonly head: HeadInfo | null;
  constructor(readonly source: string, private enc: OrtImageEncoder, private batchSize: number | undefined, private cleanup?: () => void) {
    this.head = headInfo(source, enc);
  }

  get dim(): number {
    return this.enc.inputInfo.dim;
  }

  check(src: Pick<ImageSource, 'label' | 'dtype' | 'shape'>): void {
    const where = `model ${this.source}`;
    const info = this.enc.inputInfo;
    checkCommon(src, where, info.channels, info.height !== null && info.width !== null ? [[info.height, info.width]] : null);
    const range = /^(-?[\d.e+-]+),(-?[\d.e+-]+)$/.exec(this.enc.metadata['tabsight.input_range'] ?? '');
    if (src.dtype === 'uint8' && range && Number(range[2]) < 255) {
      throw new ShapeError(`Expected float32 images in [${range[1]}, ${range[2]}] but received uint8 (0–255) in ${src.label} (${where})`);
    }
    // A model exported from a run knows the store it was trained on (image_dtype), as the run's LibTorch backend does.
    const trained = this.enc.metadata['image_dtype'];
    if ((trained === 'uint8' || trained === 'float32') && imageValueType(src.dtype) !== trained) {
      throw new ShapeError(`Expected ${trained === 'uint8' ? 'uint8' : 'float32 or float16'} images (the model's run was trained on a ${trained} store) but received ${src.dtype} in ${src.label} (${where})`);
    }
  }

  async embed(chunk: ImageChunk): Promise<EmbedderOutput> {
    return this.enc.embed({ data: chunk.data, shape: chunk.shape }, { batchSize: this.batchSize });
  }

  async dispose(): Promise<void> {
    await this.enc.dispose();
    this.cleanup?.();
  }
}

class TorchEmbedder implements Embedder {
  readonly backend = 'torch' as const;
  readonly head = null;
  constructor(readonly source: string, private run: Run, private batchSize: number | undefined) {}

  get dim(): number {
    return this.run.featureDim;
  }

  check(src: Pick<ImageSource, 'label' | 'dtype' | 'shape'>): void {
    const c = this.run.config;
    const where = `run ${this.source}`;
    // LibTorch resizes to the training size, as it did in training: accept that size and the stored one.
    checkCommon(src, where, c.model.inChannels, [[c.imageSize, c.imageSize], [c.data.height, c.data.width]]);
    if (imageValueType(src.dtype) !== imageValueType(c.data.dtype)) {
      const want = imageValueType(c.data.dtype) === 'uint8' ? 'uint8' : 'float32 or float16';
      throw new ShapeError(`Expected ${want} images (the run was trained on a ${c.data.dtype} store) but received ${src.dtype} in ${src.label} (${where})`);
    }
  }

  async embed(chunk: ImageChunk): Promise<EmbedderOutput> {
    const embedding = await this.run.embed({ data: chunk.data, shape: chunk.shape }, { batchSize: this.batchSize });
    return { embedding, dim: this.run.featureDim };
  }

  async dispose(): Promise<void> {
    this.run.dispose();
  }
}

/** Opens a model (ONNX) or a run (LibTorch, or onnxruntime through a temporary export) for embedding. */
export async function openEmbedder(o: OpenEmbedderOptions): Promise<Embedder> {
  if (!o.model === !o.run) throw new ConfigError('Give exactly one of model (an ONNX file) and run (a run directory)');
  const backend = o.backend ?? (o.model ? 'ort' : 'torch');
  if (backend !== 'ort' && backend !== 'torch') throw new ConfigError(`Expected "ort" or "torch" for backend but received ${JSON.stringify(backend)}`);
  const batchSize = o.batchSize;
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1)) throw new ConfigError(`Expected positive integer for batch size but received ${batchSize}`);
  if (o.model) {
    if (backend === 'torch') throw new ConfigError('Backend torch needs a run directory (--run); an ONNX model runs in onnxruntime (--backend ort)');
    const enc = await OrtImageEncoder.load(o.model, { threads: o.threads });
    try {
      return new OrtEmbedder(o.model, enc, batchSize);
    } catch (err) {
      await enc.dispose();
      throw err;
    }
  }
  const run = o.run!;
  if (backend === 'torch') return new TorchEmbedder(run, await loadRun(run), batchSize);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-ort-'));
  const forget = removeAtExit(tmp);
  const cleanup = () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    forget();
  };
  try {
    const file = path.join(tmp, 'model.onnx');
    await exportRun(run, file);
    const enc = await OrtImageEncoder.load(file, { threads: o.threads });
    try {
      return new OrtEmbedder(run, enc, batchSize, cleanup);
    } catch (err) {
      await enc.dispose();
      throw err;
    }
  } catch (err) {
    cleanup();
    throw err;
  }
}

export interface EmbedSourceOptions {
  /** Only these image rows, in this order. @default every image */
  rows?: readonly number[];
  /** Images read per chunk. @default 4 × batchSize of the embedder, at least 256 */
  chunk?: number;
  onProgress?: (p: { done: number; total: number }) => void;
  /** Receives each chunk's outputs instead of collecting them (nothing is returned then). */
  onChunk?: (start: number, out: EmbedderOutput) => Promise<void> | void;
  /** Checked before each chunk: AbortError once it fires. */
  signal?: AbortSignal;
}

/** Embeds an image source chunk by chunk; collects the outputs unless onChunk is given. */
export async function embedSource(embedder: Embedder, src: ImageSource, opts: EmbedSourceOptions = {}): Promise<EmbedderOutput | undefined> {
  embedder.check(src);
  const total = opts.rows ? opts.rows.length : src.shape[0];
  let result: EmbedderOutput | undefined;
  let done = 0;
  for await (const chunk of readImageChunks(src, opts.chunk ?? 256, opts.rows)) {
    if (opts.signal?.aborted) throw new AbortError(`Embedding ${src.label} was stopped after ${done} of ${total} images`);
    if (chunk.data instanceof Float32Array) markFinite(chunk.data); // readImageChunks scanned it for NaN/Inf
    const out = await embedder.embed(chunk);
    // Finite images can still overflow the encoder (float32 values of 1e37): say which image, rather than write NaNs.
    const bad = out.embedding.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const i = chunk.start + Math.floor(bad / out.dim);
      const image = opts.rows ? `image ${opts.rows[i]} (row ${i} of the selection)` : `image ${i}`;
      throw new DataError(`The embedding of ${image} of ${src.label} is not finite (${out.embedding[bad]}): the encoder overflowed on its values (far outside what the run was trained on?)`);
    }
    done += chunk.count;
    if (opts.onChunk) await opts.onChunk(chunk.start, out);
    else {
      if (!result) {
        result = { embedding: new Float32Array(total * out.dim), dim: out.dim };
        for (const k of ['logits', 'probabilities', 'prediction'] as const) {
          if (out[k]) result[k] = new Float32Array(total * (out[k]!.length / chunk.count));
        }
      }
      result.embedding.set(out.embedding, chunk.start * out.dim);
      for (const k of ['logits', 'probabilities', 'prediction'] as const) {
        if (out[k]) result[k]!.set(out[k]!, chunk.start * (out[k]!.length / chunk.count));
      }
    }
    opts.onProgress?.({ done: chunk.start + chunk.count, total });
  }
  return result;
}
