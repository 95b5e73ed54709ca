/**
 * A finished (or stopped) run: its resolved config and its image encoder,
 * ready to embed images.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from './binding';
import { embeddingMemoryFormat } from './cpu';
import { ConfigError, DataError, DisposedError, ShapeError, awaitNative, callNative } from './errors';
import { MEMORY_FORMATS, type MemoryFormat, type ResolvedPretrainConfig } from './pretrain-options';
import * as is from './validate';
import { readRunConfigFile } from './run-config';

/* eslint-disable @typescript-eslint/no-explicit-any */
type NativeEncoder = any;

export interface ImageArray {
  data: Uint8Array | Float32Array;
  shape: readonly number[];
}

/**
 * Images per forward pass when embedding with LibTorch. On the CPU: 16 where
 * the stem's output map is at least 64 px on a side (image size ≥ 128, or
 * ≥ 64 with the small stem), 64 below that. On CUDA: 64 (not measured).
 * Measured on the 2-core AMD EPYC VM (benchmarks/RESULTS.md, "Inference: the
 * batch size"): at 16 a ResNet-18 at 128 px embedded 1.14–1.27× faster than
 * at 64, a ResNet-50 1.49× and a ResNet-18 with the small stem at 64 px
 * 1.36×; with smaller maps 16 was slower (0.88× at 28 px with the small
 * stem, 0.91× at 32 px, 0.72× at 64 px with the standard stem, 0.49× at
 * 32 px). onnxruntime's throughput barely changes with the batch, and keeps 64.
 */
export function defaultEmbedBatch(device: string, imageSize: number, smallStem: boolean): number {
  if (device !== 'cpu') return 64;
  const stemOutput = smallStem ? imageSize : Math.ceil(imageSize / 2);
  return stemOutput >= 64 ? 16 : 64;
}

export interface RunEmbedOptions {
  /** Images per forward pass. @default defaultEmbedBatch(device, imageSize, smallStem) of the run: on the CPU 16 for images of at least 128 px (at least 64 px with the small stem), else 64 */
  batchSize?: number;
  /**
   * Layout of each input batch. `'auto'` is `embeddingMemoryFormat(device,
   * imageSize, smallStem)`: on an x86 CPU with AVX-512, channels_last when the
   * first residual stage's maps are at least 32 px on a side (image size ≥ 128,
   * or ≥ 32 with the small stem), where oneDNN's NHWC convolutions measured
   * faster, and NCHW below; on an x86 CPU without AVX-512, and on CUDA, NCHW.
   * The results agree to float32 rounding. @default 'auto'
   */
  memoryFormat?: MemoryFormat;
}

export class Run {
  readonly dir: string;
  readonly config: ResolvedPretrainConfig;
  #encoder: NativeEncoder | null;

  /** Use loadRun(). */
  constructor(dir: string, config: ResolvedPretrainConfig, encoder: NativeEncoder) {
    this.dir = dir;
    this.config = config;
    this.#encoder = encoder;
  }

  /** Size of the pooled image features. */
  get featureDim(): number {
    return this.#live().featureDim as number;
  }

  get disposed(): boolean {
    return this.#encoder === null;
  }

  #live(): NativeEncoder {
    if (this.#encoder === null) throw new DisposedError(`Run ${this.dir} has been disposed`);
    return this.#encoder;
  }

  /** Embeds images (N×C×H×W, uint8 or float32) into N×featureDim floats. */
  async embed(images: ImageArray, options: RunEmbedOptions = {}): Promise<Float32Array> {
    const encoder = this.#live();
    const batchSize = is.positiveInteger(options.batchSize ?? defaultEmbedBatch(this.config.device, this.config.imageSize, this.config.model.smallStem), 'batchSize');
    const requested = is.oneOf(options.memoryFormat ?? 'auto', 'memoryFormat', MEMORY_FORMATS);
    const memoryFormat = requested === 'auto' ? embeddingMemoryFormat(this.config.device, this.config.imageSize, this.config.model.smallStem) : requested;
    const { data, shape } = checkImages(images, this.config.model.inChannels);
    const out = await awaitNative(callNative(() => encoder.embed(data, [...shape], {
      mean: this.config.normalize.mean,
      std: this.config.normalize.std,
      outSize: [this.config.imageSize, this.config.imageSize],
      batchSize,
      memoryFormat,
    })) as Promise<{ data: Float32Array }>);
    return out.data;
  }

  /** Frees the native encoder. Later calls throw DisposedError. */
  dispose(): void {
    if (this.#encoder) this.#encoder.dispose();
    this.#encoder = null;
  }
}

function checkImages(images: ImageArray, channels: number): ImageArray {
  const obj = is.plainObject(images, 'images');
  const { data, shape } = obj as unknown as ImageArray;
  if (!(data instanceof Uint8Array) && !(data instanceof Float32Array)) {
    throw new ShapeError(`Expected Uint8Array or Float32Array for images.data but received ${ArrayBuffer.isView(data) ? `a ${(data as object).constructor.name}` : typeof data}`);
  }
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ShapeError(`Expected images.shape [N, C, H, W] but received ${JSON.stringify(shape)}`);
  }
  if (shape[1] !== channels) throw new ShapeError(`Expected ${channels} channels in images.shape but received ${shape[1]}`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new ShapeError(`Expected ${n} values for images.data (shape [${shape.join(', ')}]) but received ${data.length}`);
  return { data, shape };
}

/** Opens a run directory written by pretrain(). */
export async function loadRun(dir: string): Promise<Run> {
  const root = path.resolve(is.string(dir, 'dir'));
  const configFile = path.join(root, 'config.json');
  const weights = path.join(root, 'image_encoder.safetensors');
  if (!fs.existsSync(configFile)) throw new ConfigError(`${root} is not a tabsight run: ${configFile} is missing`);
  if (!fs.existsSync(weights)) {
    throw new DataError(`${weights} is missing: the run has not finished (resume it: tabsight pretrain --resume, or resume: true)`);
  }
  const config = readRunConfigFile(configFile, `${root} is not a tabsight run: ${configFile} is missing`);
  return openEncoder(root, config, weights);
}

/** A run-like handle on a randomly initialised encoder (a baseline). */
export function randomRun(config: ResolvedPretrainConfig, seed = 0): Run {
  const encoder = callNative(() => new (native().ImageEncoder)({ arch: config.model.arch, inChannels: config.model.inChannels, smallStem: config.model.smallStem, seed, device: config.device }));
  return new Run(`random:${config.model.arch}`, config, encoder);
}

async function openEncoder(root: string, config: ResolvedPretrainConfig, weights: string): Promise<Run> {
  const m = config.model;
  const encoder = callNative(() => new (native().ImageEncoder)({ arch: m.arch, inChannels: m.inChannels, smallStem: m.smallStem, seed: 0, device: config.device }));
  try {
    await awaitNative(encoder.loadWeights(weights) as Promise<void>);
  } catch (err) {
    encoder.dispose();
    throw err;
  }
  return new Run(root, config, encoder);
}

/** Embeds images with a run's encoder. */
export function embed(run: Run, images: ImageArray, options?: RunEmbedOptions): Promise<Float32Array> {
  return run.embed(images, options);
}
