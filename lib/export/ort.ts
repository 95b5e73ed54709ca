/**
 * Runs an exported image encoder with onnxruntime-node (CPU), streaming the
 * images through in batches. Inputs are checked against the model (its
 * metadata_props and its graph input) before anything runs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as ort from 'onnxruntime-node';
import { AbortError, DataError, DisposedError, ShapeError } from '../errors';
import { positiveInteger, threadCount } from '../validate';
import { nonFiniteImageError } from '../data/cohort-images';
import { decodeModel, dimsOf, elemTypeOf } from './onnx-builder';

export interface OrtLoadOptions {
  /** onnxruntime intra-op threads. @default os.availableParallelism() */
  threads?: number;
}

export interface ImageBatch {
  /** NCHW values; Uint8Array is fed as float32 0–255 (for models exported with inputScale 1/255). */
  data: Float32Array | Uint8Array;
  shape: [number, number, number, number];
}

/**
 * Float32 image arrays already checked for NaN/Inf (readImageChunks does, and
 * names the file and id): embed skips its own scan of them. Internal to the
 * export module; not part of the public API.
 */
const knownFinite = new WeakSet<Float32Array>();
export function markFinite(data: Float32Array): void {
  knownFinite.add(data);
}

export interface EmbedOptions {
  /** Images per onnxruntime run. @default 64 */
  batchSize?: number;
  /** Called after each batch. */
  onProgress?: (p: { done: number; total: number }) => void;
  /** Checked between batches. */
  signal?: AbortSignal;
}

export interface EmbedResult {
  /** Row-major [n, dim]. */
  embedding: Float32Array;
  dim: number;
  /** Row-major [n, K], present when the model has a head. */
  logits?: Float32Array;
  probabilities?: Float32Array;
  prediction?: Float32Array;
}

interface ModelInfo {
  input: string;
  channels: number | null;
  height: number | null;
  width: number | null;
  batch: number | null;
  range: [number, number] | null;
  dim: number;
  /** The head's outputs and their width K (0 where the graph leaves it symbolic). */
  heads: { name: 'logits' | 'probabilities' | 'prediction'; width: number }[];
  metadata: Record<string, string>;
}

function readInfo(bytes: Uint8Array, file: string): ModelInfo {
  let model;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new DataError(`Cannot read ONNX model ${file}: ${(err as Error).message}`, { cause: err });
  }
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  const graph = model.graph;
  const initNames = new Set((graph?.initializer ?? []).map((t) => t.name));
  const inputs = (graph?.input ?? []).filter((v) => !initNames.has(v.name));
  if (inputs.length !== 1) throw new DataError(`Expected 1 input in ONNX model ${file} but found ${inputs.length}`);
  const input = inputs[0];
  if (elemTypeOf(input) !== 'float32') throw new DataError(`Expected a float32 input in ONNX model ${file} but found ${elemTypeOf(input)}`);
  const dims = dimsOf(input);
  if (dims.length !== 4) throw new DataError(`Expected a 4-d [batch, C, H, W] input in ONNX model ${file} but found [${dims.join(', ')}]`);
  const num = (d: unknown): number | null => (typeof d === 'number' && d > 0 ? d : null);
  const fromMeta = (key: string): number | null => (metadata[key] && /^\d+$/.test(metadata[key]) ? Number(metadata[key]) : null);
  const size = /^(\d+)x(\d+)$/.exec(metadata['tabsight.image_size'] ?? '');
  const range = /^(-?[\d.e+-]+),(-?[\d.e+-]+)$/.exec(metadata['tabsight.input_range'] ?? '');
  const outputs = graph?.output ?? [];
  const embedding = outputs.find((o) => o.name === 'embedding');
  if (!embedding) throw new DataError(`Expected an "embedding" output in ONNX model ${file}`);
  const width = (o: typeof embedding): number => num(dimsOf(o)[1]) ?? 0;
  const heads: ModelInfo['heads'] = [];
  for (const o of outputs) {
    if (o.name === 'logits' || o.name === 'probabilities' || o.name === 'prediction') heads.push({ name: o.name, width: width(o) });
  }
  return {
    input: input.name ?? 'image',
    batch: num(dims[0]),
    channels: num(dims[1]) ?? fromMeta('tabsight.in_channels'),
    height: num(dims[2]) ?? (size ? Number(size[1]) : null),
    width: num(dims[3]) ?? (size ? Number(size[2]) : null),
    range: range ? [Number(range[1]), Number(range[2])] : null,
    dim: width(embedding) || (fromMeta('tabsight.embedding_dim') ?? 0),
    heads,
    metadata,
  };
}

/** An exported image encoder loaded into onnxruntime. */
export class OrtImageEncoder {
  #session: ort.InferenceSession | undefined;
  readonly #file: string;
  readonly #info: ModelInfo;

  private constructor(session: ort.InferenceSession, file: string, info: ModelInfo) {
    this.#session = session;
    this.#file = file;
    this.#info = info;
  }

  /** Loads an ONNX image encoder (as written by exportImageEncoder). */
  static async load(modelPath: string, opts: OrtLoadOptions = {}): Promise<OrtImageEncoder> {
    const threads = opts.threads === undefined ? os.availableParallelism() : threadCount(opts.threads, 'threads', os.availableParallelism());
    let bytes: Buffer;
    try {
      bytes = await fs.promises.readFile(modelPath);
    } catch (err) {
      throw new DataError(`Cannot read ONNX model ${modelPath}: ${(err as Error).message}`, { cause: err });
    }
    const info = readInfo(bytes, modelPath);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
    } catch (err) {
      throw new DataError(`onnxruntime cannot load ONNX model ${modelPath}: ${(err as Error).message}`, { cause: err });
    }
    return new OrtImageEncoder(session, modelPath, info);
  }

  /** The model's metadata_props. */
  get metadata(): Record<string, string> {
    return { ...this.#info.metadata };
  }

  /** The head's outputs (logits, probabilities, prediction) with their width K; empty without a head. */
  get headOutputs(): { name: 'logits' | 'probabilities' | 'prediction'; width: number }[] {
    return this.#info.heads.map((h) => ({ ...h }));
  }

  /** Channels, height and width the model takes (null where dynamic), and the embedding size. */
  get inputInfo(): { channels: number | null; height: number | null; width: number | null; dim: number } {
    const { channels, height, width, dim } = this.#info;
    return { channels, height, width, dim };
  }

  #check(images: ImageBatch): [number, number, number, number] {
    const info = this.#info;
    const where = `(model ${this.#file})`;
    const data = images?.data;
    if (!(data instanceof Float32Array) && !(data instanceof Uint8Array)) {
      const got = ArrayBuffer.isView(data) ? `a ${(data as object).constructor.name}` : typeof data;
      throw new ShapeError(`Expected Float32Array or Uint8Array for images.data but received ${got} ${where}`);
    }
    const shape = images.shape;
    if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new ShapeError(`Expected [n, c, h, w] of positive integers for images.shape but received ${JSON.stringify(shape)} ${where}`);
    }
    const [n, c, h, w] = shape;
    if (info.channels !== null && c !== info.channels) {
      throw new ShapeError(`Expected ${info.channels} channels for images but received ${c} ${where}`);
    }
    if ((info.height !== null && h !== info.height) || (info.width !== null && w !== info.width)) {
      throw new ShapeError(`Expected ${info.height ?? h}×${info.width ?? w} images (height×width) but received ${h}×${w} ${where}`);
    }
    if (data.length !== n * c * h * w) {
      throw new ShapeError(`Expected ${n}×${c}×${h}×${w} = ${n * c * h * w} values for images.data but received ${data.length} ${where}`);
    }
    if (data instanceof Uint8Array && info.range !== null && info.range[1] < 255) {
      throw new ShapeError(`Expected float32 images in [${info.range.join(', ')}] but received a Uint8Array (0–255) ${where}; convert to Float32Array or export with normalize.inputScale = 1/255`);
    }
    if (data instanceof Uint8Array && info.metadata['image_dtype'] === 'float32') {
      throw new ShapeError(`Expected float32 images (the model's run was trained on a float32 store) but received a Uint8Array ${where}`);
    }
    // NaN or Inf would come back as rows of NaN embeddings; LibTorch's embed refuses them too.
    if (data instanceof Float32Array && !knownFinite.has(data)) {
      const bad = nonFiniteImageError(data, [c, h, w], `images.data ${where}`, (i) => i);
      if (bad) throw bad;
    }
    return [n, c, h, w];
  }

  /** Embeds images in batches of `batchSize`; returns the embedding and the head's outputs. */
  async embed(images: ImageBatch, opts: EmbedOptions = {}): Promise<EmbedResult> {
    const session = this.#session;
    if (!session) throw new DisposedError(`OrtImageEncoder for model ${this.#file} was disposed`);
    const [n, c, h, w] = this.#check(images);
    const info = this.#info;
    let batchSize = opts.batchSize === undefined ? 64 : positiveInteger(opts.batchSize, 'batchSize');
    if (info.batch !== null) batchSize = info.batch; // a fixed batch: the last one is zero-padded
    const per = c * h * w;
    // Output widths come from the first run's tensors (the graph may leave them symbolic).
    let result: EmbedResult | undefined;
    // Uint8 batches and zero-padded fixed batches are converted into one
    // buffer that every batch of this call reuses: a fresh 12.6 MB array per
    // batch of 64 at 128 px costs its page faults each time. Each run is
    // awaited before the buffer is refilled.
    let scratch: Float32Array | undefined;
    for (let start = 0; start < n; start += batchSize) {
      if (opts.signal?.aborted) throw new AbortError(`embed on model ${this.#file} was aborted after ${start} of ${n} images`);
      const count = Math.min(batchSize, n - start);
      const rows = info.batch ?? count;
      const slice = images.data.subarray(start * per, (start + count) * per);
      let input: Float32Array;
      if (slice instanceof Float32Array && rows === count) input = slice;
      else {
        scratch ??= new Float32Array(Math.min(batchSize, info.batch ?? n) * per);
        input = scratch.subarray(0, rows * per);
        input.set(slice);
        if (rows > count) input.fill(0, count * per);
      }
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run({ [info.input]: new ort.Tensor('float32', input, [rows, c, h, w]) });
      } catch (err) {
        throw new DataError(`onnxruntime failed on model ${this.#file}: ${(err as Error).message}`, { cause: err });
      }
      const dim = out.embedding.dims[1];
      if (!result) {
        result = { embedding: new Float32Array(n * dim), dim };
        for (const head of info.heads) result[head.name] = new Float32Array(n * out[head.name].dims[1]);
      }
      result.embedding.set((out.embedding.data as Float32Array).subarray(0, count * dim), start * dim);
      for (const head of info.heads) {
        const width = out[head.name].dims[1];
        result[head.name]!.set((out[head.name].data as Float32Array).subarray(0, count * width), start * width);
      }
      opts.onProgress?.({ done: start + count, total: n });
    }
    return result!;
  }

  /** Releases the onnxruntime session; later calls throw DisposedError. */
  async dispose(): Promise<void> {
    const s = this.#session;
    this.#session = undefined;
    if (s) await s.release();
  }
}
