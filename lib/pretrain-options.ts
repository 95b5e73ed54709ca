/**
 * Pretraining options: the public type with every default documented, and
 * the resolution that checks every field and fills in the defaults. The
 * resolved config is plain JSON; it is saved with the run.
 */
import { AugmentOptions, resolveAugmentOptions } from './augment';
import type { ImageDtype } from './data/cohort-images';
import { trainingMemoryFormat } from './cpu';
import { ConfigError } from './errors';
import * as is from './validate';

export type PretrainMode = 'multimodal' | 'simclr' | 'supervised';
export type Arch = 'resnet18' | 'resnet50';
export type DistributedBackend = 'gloo' | 'nccl';

/**
 * Data-parallel training: one process per rank, as torchrun starts them.
 * Rank 0 hosts the rendezvous store (a TCPStore) at masterAddr:masterPort.
 */
export interface DistributedOptions {
  /** This process's rank, 0 ≤ rank < worldSize (torchrun: RANK). */
  rank: number;
  /** Number of processes (torchrun: WORLD_SIZE). */
  worldSize: number;
  /** Rank on this node; with device 'cuda' it picks cuda:localRank (torchrun: LOCAL_RANK). @default rank */
  localRank?: number;
  /** Host of rank 0's rendezvous store (torchrun: MASTER_ADDR). @default '127.0.0.1' */
  masterAddr?: string;
  /** Port of rank 0's rendezvous store (torchrun: MASTER_PORT). @default 29500 */
  masterPort?: number;
  /**
   * Seconds the rendezvous and every collective wait for a peer before the
   * training fails with ERR_DIST naming the rank responsible.
   * @default 60
   */
  timeoutSec?: number;
  /** c10d backend. @default 'gloo' with device 'cpu', 'nccl' with 'cuda' */
  backend?: DistributedBackend;
  /**
   * The store at masterAddr:masterPort is already hosted by the launcher
   * (torchrun ≥ 2.x sets TORCHELASTIC_USE_AGENT_STORE=True); otherwise
   * rank 0 hosts it.
   * @default false
   */
  externalStore?: boolean;
}

/** The resolved process group settings. */
export type ResolvedDistributed = Required<DistributedOptions>;

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
  /**
   * BatchNorm in the projection heads: Linear, BN, ReLU, Linear. false gives
   * Linear, ReLU, Linear, the head of lightly 1.2's SimCLRProjectionHead
   * that MMCL's pinned environment runs (docs/api.md, "Differences from
   * MMCL's code"). @default true
   */
  projectionBatchNorm: boolean;
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

/** Memory layout of image batches and convolution weights (PretrainOptions.memoryFormat). */
export type MemoryFormat = 'auto' | 'channels_last' | 'contiguous';
export const MEMORY_FORMATS = ['auto', 'channels_last', 'contiguous'] as const;

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
  /**
   * 'bf16' runs the forward pass and the loss under autocast (convolutions
   * and matmuls in bfloat16; weights, gradients and Adam state stay
   * float32). Measured on an H200 (benchmarks/RESULTS.md): ResNet-50 steps
   * 1.12× faster, ResNet-18 at batch 64 1.45× slower; on CPUs without
   * AVX-512 BF16 it is slower. Measure before adopting it. @default 'fp32'
   */
  precision?: 'fp32' | 'bf16';
  /**
   * Memory layout of the image encoder's convolution weights and input
   * batches. 'channels_last' (NHWC) lets LibTorch's oneDNN convolutions skip
   * the reorders around each call: on the 2-core AVX-512 test machine
   * ResNet-18 steps were 3–19% faster in two runs, from 28 px (small stem) to 128 px
   * (benchmarks/RESULTS.md, "Memory format"). 'auto' is
   * `trainingMemoryFormat(device, undefined, precision)`: channels_last on
   * x86 CPUs with AVX-512 (and with bf16) or where tabsight's own Winograd
   * kernels run (AVX2 + FMA), NCHW on other x86 CPUs, where NCHW measured
   * faster, and NCHW on CUDA. Checkpoints and exported
   * weights are NCHW either way. @default 'auto'
   */
  memoryFormat?: MemoryFormat;
  /**
   * Train with deterministic kernels: cuDNN in deterministic mode without
   * autotuning, and LibTorch's deterministic mode, in which an op that has
   * no deterministic kernel raises rather than runs. On CUDA,
   * CUBLAS_WORKSPACE_CONFIG is set to ':4096:8' when it is unset. These are
   * process-wide settings while the run trains; the previous ones come back
   * when it ends. The CPU path is deterministic either way. On CUDA it gives
   * up cuDNN's autotuner (its cost there has not been measured). @default false
   */
  deterministic?: boolean;
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
  /**
   * Data-parallel training across processes (docs/distributed.md). 'env'
   * follows torchrun's environment (MASTER_ADDR, MASTER_PORT, RANK,
   * WORLD_SIZE, LOCAL_RANK) and trains in one process when WORLD_SIZE is
   * unset or 1. batchSize stays the global batch: each rank takes
   * batchSize / worldSize of it.
   * @default one process
   */
  distributed?: DistributedOptions | 'env';
  /**
   * With several ranks, BatchNorm layers in training use the statistics of
   * the global batch (all ranks), as one process on that batch would.
   * No effect in one process.
   * @default true for multimodal and simclr, false for supervised
   */
  syncBatchNorm?: boolean;
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
  precision: 'fp32' | 'bf16';
  /** 'auto' resolved for the device. */
  memoryFormat: 'channels_last' | 'contiguous';
  /** projectionBatchNorm is present only when false, so configs of earlier runs stay comparable on resume. */
  model: { arch: Arch; inChannels: number; smallStem: boolean; tabularHidden: number; tabularLayers: number; projectionHidden: number; projectionDim: number; projectionBatchNorm?: false };
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
  /** Whether BatchNorm statistics span the ranks (meaningful with distributed only). */
  syncBatchNorm: boolean;
  /** Deterministic kernels (PretrainOptions.deterministic); absent in configs written before it existed. */
  deterministic?: boolean;
  /** The process group, or null for one process. */
  distributed: ResolvedDistributed | null;
  data: { n: number; channels: number; height: number; width: number; dtype: ImageDtype; trainRows: number; tabularFeatures: number; cardinalities: number[]; featureNames: string[] | null };
  meta: Record<string, unknown>;
}

const TOP_KEYS = ['out', 'images', 'tabular', 'labels', 'targets', 'rows', 'initWeights', 'scanImages', 'threads', 'dataThreads', 'mode', 'epochs', 'batchSize', 'seed', 'optimizer', 'lr', 'weightDecay', 'warmupEpochs', 'device', 'precision', 'memoryFormat', 'model', 'loss', 'augment', 'imageSize', 'corruptionRate', 'normalize', 'checkpointEvery', 'resume', 'meta', 'distributed', 'syncBatchNorm', 'deterministic'] as const;
const MODEL_KEYS = ['arch', 'smallStem', 'tabularHidden', 'tabularLayers', 'projectionHidden', 'projectionDim', 'projectionBatchNorm'] as const;
const LOSS_KEYS = ['temperature', 'lambda', 'removeFalseNegatives'] as const;
const DISTRIBUTED_KEYS = ['rank', 'worldSize', 'localRank', 'masterAddr', 'masterPort', 'timeoutSec', 'backend', 'externalStore'] as const;

/**
 * torchrun's environment contract: MASTER_ADDR, MASTER_PORT, RANK,
 * WORLD_SIZE and LOCAL_RANK (optional, default RANK); also
 * TORCHELASTIC_USE_AGENT_STORE (the launcher hosts the store). Returns undefined when
 * WORLD_SIZE is unset, so a plain `tabsight pretrain` trains in one process.
 * Throws ConfigError naming a variable that is missing or malformed.
 */
export function distributedFromEnv(env: Record<string, string | undefined> = process.env): DistributedOptions | undefined {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE.trim() === '') return undefined;
  const read = (name: string, min: number, max: number, fallback?: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`WORLD_SIZE is set (${env.WORLD_SIZE}) but ${name} is not; a launcher (torchrun, an srun wrapper, tabsight --nproc) sets MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE`);
    }
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(`Expected an integer in [${min}, ${max}] for ${name} (torchrun environment) but received ${JSON.stringify(raw)}`);
    }
    return v;
  };
  const worldSize = read('WORLD_SIZE', 1, 1 << 20);
  if (worldSize === 1) return { rank: 0, worldSize: 1 };
  const rank = read('RANK', 0, worldSize - 1);
  const masterAddr = env.MASTER_ADDR?.trim();
  if (!masterAddr) throw new ConfigError(`WORLD_SIZE is set (${worldSize}) but MASTER_ADDR is not; a launcher (torchrun, an srun wrapper, tabsight --nproc) sets MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE`);
  const externalStore = /^(1|true)$/i.test(env.TORCHELASTIC_USE_AGENT_STORE ?? '');
  return { rank, worldSize, localRank: read('LOCAL_RANK', 0, 1 << 20, rank), masterAddr, masterPort: read('MASTER_PORT', 1, 65535), externalStore };
}

/** This process's rank under `distributed` (0 in one process); the options must be valid. */
export function distributedRank(input: PretrainOptions['distributed']): number {
  const o = input === 'env' ? distributedFromEnv() : input;
  return o && o.worldSize > 1 ? o.rank : 0;
}

/** Checks the process group options; null means one process. */
export function resolveDistributed(input: PretrainOptions['distributed'], device: string, batchSize: number): ResolvedDistributed | null {
  if (input === undefined) return null;
  const o = input === 'env' ? distributedFromEnv() : input;
  if (o === undefined) return null;
  const d = is.plainObject(o, 'distributed');
  is.knownKeys(d, 'distributed', DISTRIBUTED_KEYS);
  const worldSize = is.positiveInteger(o.worldSize, 'distributed.worldSize');
  const rank = is.integer(o.rank, 'distributed.rank', 0, worldSize - 1);
  const localRank = is.integer(o.localRank ?? rank, 'distributed.localRank', 0);
  const masterAddr = is.string(o.masterAddr ?? '127.0.0.1', 'distributed.masterAddr');
  if (masterAddr.trim() === '') throw is.invalid('non-empty host name or address', 'distributed.masterAddr', masterAddr);
  const masterPort = is.integer(o.masterPort ?? 29500, 'distributed.masterPort', 1, 65535);
  const timeoutSec = is.positiveNumber(o.timeoutSec ?? 60, 'distributed.timeoutSec');
  const backend = is.oneOf(o.backend ?? (device === 'cpu' ? 'gloo' : 'nccl'), 'distributed.backend', ['gloo', 'nccl'] as const);
  if (backend === 'nccl' && device === 'cpu') throw new ConfigError("distributed.backend nccl needs device 'cuda'; use gloo on the CPU");
  const externalStore = is.boolean(o.externalStore ?? false, 'distributed.externalStore');
  if (worldSize === 1) return null;
  if (batchSize % worldSize !== 0) {
    throw new ConfigError(`Expected batchSize (${batchSize}) to be a multiple of the world size (${worldSize}): batchSize is the global batch, split evenly over the ranks`);
  }
  return { rank, worldSize, localRank, masterAddr, masterPort, timeoutSec, backend, externalStore };
}

export interface ImageFacts {
  n: number;
  channels: number;
  height: number;
  width: number;
  /** The stored dtype; float16 widens to float32 exactly. */
  dtype: ImageDtype;
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
  const precision = is.oneOf(options.precision ?? 'fp32', 'precision', ['fp32', 'bf16'] as const);
  const memoryFormatOpt = is.oneOf(options.memoryFormat ?? 'auto', 'memoryFormat', MEMORY_FORMATS);
  const memoryFormat = memoryFormatOpt === 'auto' ? trainingMemoryFormat(device, undefined, precision) : memoryFormatOpt;

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
    ...(is.boolean(options.model?.projectionBatchNorm ?? true, 'model.projectionBatchNorm') ? {} : { projectionBatchNorm: false as const }),
  };

  const l = is.plainObject(options.loss ?? {}, 'loss');
  is.knownKeys(l, 'loss', LOSS_KEYS);
  const loss: LossOptions = {
    temperature: is.positiveNumber(options.loss?.temperature ?? 0.1, 'loss.temperature'),
    lambda: is.probability(options.loss?.lambda ?? 0.5, 'loss.lambda'),
    removeFalseNegatives: is.boolean(options.loss?.removeFalseNegatives ?? false, 'loss.removeFalseNegatives'),
  };

  const augment = resolveAugmentOptions({ outSize: [imageSize, imageSize], ...(options.augment ?? {}) });
  // Training crops to imageSize; an augment.outSize of its own would train on
  // another size than config.json records.
  const [outH, outW] = augment.outSize[0] === 0 ? [images.height, images.width] : augment.outSize; // [0, 0]: the stored size
  if (options.augment?.outSize !== undefined && (outH !== imageSize || outW !== imageSize)) {
    throw new ConfigError(
      `augment.outSize [${augment.outSize.join(', ')}] conflicts with imageSize ${imageSize}${options.imageSize === undefined ? ' (the stored image size)' : ''}: ` +
        'set the training size with imageSize (--image-size) and leave augment.outSize out',
    );
  }
  const corruptionRate = is.probability(options.corruptionRate ?? 0.3, 'corruptionRate');
  const checkpointEvery = is.positiveInteger(options.checkpointEvery ?? 1, 'checkpointEvery');
  if (normalize.mean.length !== images.channels || normalize.std.length !== images.channels) {
    throw new ConfigError(`Expected ${images.channels} values for normalize.mean and normalize.std (one per channel)`);
  }
  normalize.std.forEach((s, i) => is.positiveNumber(s, `normalize.std[${i}]`));
  normalize.mean.forEach((s, i) => is.numberInRange(s, `normalize.mean[${i}]`, -1e6, 1e6));

  const meta = options.meta === undefined ? {} : is.plainObject(options.meta, 'meta');
  const distributed = resolveDistributed(options.distributed, device, batchSize);
  const syncBatchNorm = is.boolean(options.syncBatchNorm ?? mode !== 'supervised', 'syncBatchNorm');
  if (distributed && !syncBatchNorm && batchSize / distributed.worldSize < 2) {
    throw new ConfigError(`Expected at least 2 images per rank without syncBatchNorm (batch norm needs them) but batchSize ${batchSize} over ${distributed.worldSize} ranks gives ${batchSize / distributed.worldSize}`);
  }
  const deterministic = is.boolean(options.deterministic ?? false, 'deterministic');
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
    precision,
    memoryFormat,
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
    syncBatchNorm,
    deterministic,
    distributed,
    data: { ...images, trainRows: images.n, tabularFeatures: 0, cardinalities: [], featureNames: null },
    meta: meta as Record<string, unknown>,
  };
}

/**
 * Config fields that must not change when a run is resumed. distributed and
 * syncBatchNorm may: positions count global batches, so any world size that
 * divides batchSize continues the run.
 */
export const RESUME_INVARIANT: readonly string[] = ['mode', 'target', 'initWeights', 'batchSize', 'seed', 'optimizer', 'lr', 'weightDecay', 'warmupEpochs', 'model', 'loss', 'augment', 'imageSize', 'corruptionRate', 'normalize', 'numClasses', 'data'];
