/**
 * Pretraining options: the public type with every default documented, and
 * the resolution that checks every field and fills in the defaults. The
 * resolved config is plain JSON; it is saved with the run.
 */
import { AugmentOptions, resolveAugmentOptions } from './augment';
import { ConfigError } from './errors';
import * as is from './validate';

export type PretrainMode = 'multimodal' | 'simclr' | 'supervised';
export type Arch = 'resnet18' | 'resnet50';

export interface ModelOptions {
  /** Image encoder. @default 'resnet50' (MMCL) */
  arch: Arch;
  /**
   * 3×3 stride-1 stem without max-pool, for images of 28 to 64 px.
   * @default 'auto' (on when the training image size is ≤ 64)
   */
  smallStem: boolean | 'auto';
  /** Tabular MLP width. @default 2048 */
  tabularHidden: number;
  /** Tabular MLP depth: Linear, then (layers − 1) × [BN, ReLU, Linear]. @default 2 */
  tabularLayers: number;
  /** Projection head hidden width. @default 2048 */
  projectionHidden: number;
  /** Projection size. @default 128 */
  projectionDim: number;
}

export interface LossOptions {
  /** Softmax temperature τ. @default 0.1 */
  temperature: number;
  /** Weight of the image→tabular direction; 1 − λ weighs tabular→image. @default 0.5 */
  lambda: number;
  /** Drop same-label pairs from the denominators (needs labels). @default false */
  removeFalseNegatives: boolean;
}

/** Images: an in-memory N×C×H×W array, or an NPY file read memory-mapped. */
export type ImageInput =
  | { data: Uint8Array | Float32Array; shape: readonly [number, number, number, number] | readonly number[] }
  | { npy: string };

export interface TabularInput {
  /** N×F row-major; categorical columns hold codes 0..k−1 (−1 = unseen). */
  data: Float32Array;
  shape: readonly [number, number] | readonly number[];
  /** Per column: 0 for continuous, k for a categorical with k levels. @default all 0 */
  cardinalities?: readonly number[];
  /** Column names, kept in the run's config. */
  names?: readonly string[];
}

export interface PretrainOptions {
  /** The run directory (created). */
  out: string;
  images: ImageInput;
  /** Needed for mode 'multimodal'. Its rows are also the corruption marginals. */
  tabular?: TabularInput;
  /** Class labels 0..K−1, for mode 'supervised' and for removeFalseNegatives. */
  labels?: Int32Array | readonly number[];
  /** Regression targets for mode 'supervised' (instead of labels): MSE on a 1-output head. */
  targets?: Float32Array | readonly number[];
  /**
   * Train on these rows of the image store only (e.g. a cohort's train
   * split). tabular, labels and targets then hold one row per entry.
   * @default every image
   */
  rows?: Int32Array | readonly number[];
  /**
   * Initial image encoder weights: a safetensors file with torchvision's
   * names (a run's image_encoder.safetensors, or ImageNet weights you
   * have). Missing, unexpected and mismatched tensors are named.
   */
  initWeights?: string;
  /** Scan a float32 store for NaN/Inf first. @default true */
  scanImages?: boolean;
  /**
   * LibTorch intra-op threads for this process (a process-wide setting).
   * @default TABSIGHT_THREADS, else the machine's core count (set on load)
   */
  threads?: number;
  /**
   * Intra-op threads of the prefetch thread that prepares batches
   * (gather, augment, corrupt) while the step runs; a process-wide setting.
   * 0 is automatic: 1 on the CPU (the step needs the cores), the intra-op
   * count on CUDA. @default TABSIGHT_DATA_THREADS, else 0
   */
  dataThreads?: number;
  /** @default 'multimodal' */
  mode?: PretrainMode;
  /** @default 10 */
  epochs?: number;
  /** @default 512 (MMCL); capped at the number of images */
  batchSize?: number;
  /** @default 0 */
  seed?: number;
  /** @default 'adam' */
  optimizer?: 'adam' | 'adamw';
  /** Peak learning rate. @default 3e-3 (MMCL cardiac) */
  lr?: number;
  /** @default 1e-4 (MMCL cardiac) */
  weightDecay?: number;
  /** Linear warm-up, then cosine decay. @default min(10, floor(epochs / 10)) */
  warmupEpochs?: number;
  /** 'cpu', 'cuda' or 'cuda:N'. @default 'cpu' */
  device?: string;
  model?: Partial<ModelOptions>;
  loss?: Partial<LossOptions>;
  /** @default MMCL's cardiac augmentations, output at the input size */
  augment?: Partial<AugmentOptions>;
  /** Square training image size. @default the input height */
  imageSize?: number;
  /** Fraction of each row's features replaced from the marginals. @default 0.3 */
  corruptionRate?: number;
  /**
   * Per-channel normalisation after uint8 → [0, 1] scaling.
   * @default 'auto': mean and std of up to 512 training images
   */
  normalize?: { mean: readonly number[]; std: readonly number[] } | 'auto';
  /** Write a checkpoint every this many epochs (and at the end). @default 1 */
  checkpointEvery?: number;
  /** Continue the run in `out` from its checkpoint. @default false */
  resume?: boolean;
  /** Extra JSON-serialisable facts stored with the config (cohort, features, ...). */
  meta?: Record<string, unknown>;
}

/** The complete, checked configuration that the native trainer receives. */
export interface ResolvedPretrainConfig {
  version: 1;
  mode: PretrainMode;
  epochs: number;
  batchSize: number;
  seed: number;
  optimizer: 'adam' | 'adamw';
  lr: number;
  weightDecay: number;
  warmupEpochs: number;
  device: string;
  model: { arch: Arch; inChannels: number; smallStem: boolean; tabularHidden: number; tabularLayers: number; projectionHidden: number; projectionDim: number };
  loss: LossOptions;
  augment: AugmentOptions;
  imageSize: number;
  corruptionRate: number;
  normalize: { mean: number[]; std: number[] };
  numClasses: number;
  /** 'regression' when supervised pretraining has real-valued targets. */
  target: 'classes' | 'regression' | 'none';
  initWeights: string | null;
  checkpointEvery: number;
  data: { n: number; channels: number; height: number; width: number; dtype: 'uint8' | 'float32'; trainRows: number; tabularFeatures: number; cardinalities: number[]; featureNames: string[] | null };
  meta: Record<string, unknown>;
}

const TOP_KEYS = ['out', 'images', 'tabular', 'labels', 'targets', 'rows', 'initWeights', 'scanImages', 'threads', 'dataThreads', 'mode', 'epochs', 'batchSize', 'seed', 'optimizer', 'lr', 'weightDecay', 'warmupEpochs', 'device', 'model', 'loss', 'augment', 'imageSize', 'corruptionRate', 'normalize', 'checkpointEvery', 'resume', 'meta'] as const;
const MODEL_KEYS = ['arch', 'smallStem', 'tabularHidden', 'tabularLayers', 'projectionHidden', 'projectionDim'] as const;
const LOSS_KEYS = ['temperature', 'lambda', 'removeFalseNegatives'] as const;

export interface ImageFacts {
  n: number;
  channels: number;
  height: number;
  width: number;
  dtype: 'uint8' | 'float32';
}

/** Checks every option and fills in every default. Data arrays are checked by the caller. */
export function resolvePretrainOptions(
  options: PretrainOptions,
  images: ImageFacts,
  normalize: { mean: number[]; std: number[] },
): ResolvedPretrainConfig {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', TOP_KEYS);
  const mode = is.oneOf(options.mode ?? 'multimodal', 'mode', ['multimodal', 'simclr', 'supervised'] as const);
  const epochs = is.positiveInteger(options.epochs ?? 10, 'epochs');
  const batchSize = is.integer(options.batchSize ?? 512, 'batchSize', 2);
  const seed = is.integer(options.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const optimizer = is.oneOf(options.optimizer ?? 'adam', 'optimizer', ['adam', 'adamw'] as const);
  const lr = is.positiveNumber(options.lr ?? 3e-3, 'lr');
  const weightDecay = is.nonNegativeNumber(options.weightDecay ?? 1e-4, 'weightDecay');
  const warmupEpochs = is.nonNegativeNumber(options.warmupEpochs ?? Math.min(10, Math.floor(epochs / 10)), 'warmupEpochs');
  if (warmupEpochs >= epochs && warmupEpochs > 0) {
    throw new ConfigError(`Expected warmupEpochs below epochs (${epochs}) but received ${warmupEpochs}`);
  }
  const device = is.string(options.device ?? 'cpu', 'device');
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw is.invalid('cpu, cuda or cuda:N', 'device', device);

  const m = is.plainObject(options.model ?? {}, 'model');
  is.knownKeys(m, 'model', MODEL_KEYS);
  const imageSize = is.positiveInteger(options.imageSize ?? images.height, 'imageSize');
  const smallStemOpt = options.model?.smallStem ?? 'auto';
  if (smallStemOpt !== 'auto' && typeof smallStemOpt !== 'boolean') throw is.invalid("boolean or 'auto'", 'model.smallStem', smallStemOpt);
  const model = {
    arch: is.oneOf(options.model?.arch ?? 'resnet50', 'model.arch', ['resnet18', 'resnet50'] as const),
    inChannels: images.channels,
    smallStem: smallStemOpt === 'auto' ? imageSize <= 64 : smallStemOpt,
    tabularHidden: is.positiveInteger(options.model?.tabularHidden ?? 2048, 'model.tabularHidden'),
    tabularLayers: is.positiveInteger(options.model?.tabularLayers ?? 2, 'model.tabularLayers'),
    projectionHidden: is.positiveInteger(options.model?.projectionHidden ?? 2048, 'model.projectionHidden'),
    projectionDim: is.positiveInteger(options.model?.projectionDim ?? 128, 'model.projectionDim'),
  };

  const l = is.plainObject(options.loss ?? {}, 'loss');
  is.knownKeys(l, 'loss', LOSS_KEYS);
  const loss: LossOptions = {
    temperature: is.positiveNumber(options.loss?.temperature ?? 0.1, 'loss.temperature'),
    lambda: is.probability(options.loss?.lambda ?? 0.5, 'loss.lambda'),
    removeFalseNegatives: is.boolean(options.loss?.removeFalseNegatives ?? false, 'loss.removeFalseNegatives'),
  };

  const augment = resolveAugmentOptions({ outSize: [imageSize, imageSize], ...(options.augment ?? {}) });
  const corruptionRate = is.probability(options.corruptionRate ?? 0.3, 'corruptionRate');
  const checkpointEvery = is.positiveInteger(options.checkpointEvery ?? 1, 'checkpointEvery');
  if (normalize.mean.length !== images.channels || normalize.std.length !== images.channels) {
    throw new ConfigError(`Expected ${images.channels} values for normalize.mean and normalize.std (one per channel)`);
  }
  normalize.std.forEach((s, i) => is.positiveNumber(s, `normalize.std[${i}]`));
  normalize.mean.forEach((s, i) => is.numberInRange(s, `normalize.mean[${i}]`, -1e6, 1e6));

  const meta = options.meta === undefined ? {} : is.plainObject(options.meta, 'meta');
  return {
    version: 1,
    mode,
    epochs,
    batchSize,
    seed,
    optimizer,
    lr,
    weightDecay,
    warmupEpochs,
    device,
    model,
    loss,
    augment,
    imageSize,
    corruptionRate,
    normalize: { mean: [...normalize.mean], std: [...normalize.std] },
    numClasses: 0,
    target: 'none',
    initWeights: options.initWeights === undefined ? null : is.string(options.initWeights, 'initWeights'),
    checkpointEvery,
    data: { ...images, trainRows: images.n, tabularFeatures: 0, cardinalities: [], featureNames: null },
    meta: meta as Record<string, unknown>,
  };
}

/** Config fields that must not change when a run is resumed. */
export const RESUME_INVARIANT: readonly string[] = ['mode', 'target', 'initWeights', 'batchSize', 'seed', 'optimizer', 'lr', 'weightDecay', 'warmupEpochs', 'model', 'loss', 'augment', 'imageSize', 'corruptionRate', 'normalize', 'numClasses', 'data'];
