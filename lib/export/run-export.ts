/**
 * Exports a run's encoders to ONNX: the image encoder with the run's
 * normalisation baked in (optionally with a probe head from RUN/heads), or
 * the tabular encoder from checkpoint.safetensors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, DataError, ShapeError } from '../errors';
import { checkOutFile, writeFileAtomic } from '../io/atomic';
import { readSafetensors } from '../io/safetensors';
import type { ResolvedPretrainConfig } from '../pretrain-options';
import { readRunConfigFile } from '../run-config';
import { decodeModel, withMetadata } from './onnx-builder';
import { headExportOptions, headFile, readHead, type SavedHead } from './heads';
import { fileSha256 } from '../io/read';
import { exportImageEncoder, exportTabularEncoder, imageEncoderMeta, type HeadOptions, type ImageEncoderMeta, type ImageExportOptions } from './resnet-onnx';
import { calibrateImageEncoder, measureAgreement, spreadRows, type Agreement } from './quantize';
import { imageSourceOfCohort, readImageChunks } from './images';
import { loadCohort, type Cohort } from '../data/cohort';
import { imageValueType } from '../data/cohort-images';
import { invalid, positiveInteger } from '../validate';
import type { WeightMap } from './onnx-builder';

export interface ExportRunOptions {
  /** A linear head to append (e.g. a probe from an evaluation). */
  head?: HeadOptions;
  /** Append the head saved for this task in RUN/heads/<task>.json (by evaluateRun({ saveHeads })). */
  withHead?: string;
  /** Which encoder. @default 'image' */
  part?: 'image' | 'tabular';
  /** Extra metadata_props (keys must not start with "tabsight."). */
  metadata?: Record<string, string>;
  /**
   * Writes a static int8 model (image encoder only): activation ranges are
   * calibrated on training images of a cohort, and the int8 model's outputs
   * are compared with the float32 model's on held-out images (the result is
   * returned and recorded in tabsight.quantization).
   */
  quantize?: QuantizeRunOptions;
}

export interface QuantizeRunOptions {
  /** The cohort directory to calibrate on. @default the run's own cohort (config.meta.cohort) */
  cohort?: string;
  /** Training-split images to calibrate on, spread evenly over the split. @default 256 */
  calibrationImages?: number;
  /** Validation-split images (the test split when there is none) to measure the agreement on. @default 256 */
  agreementImages?: number;
  /** onnxruntime threads for calibration and the agreement. @default every core (os.availableParallelism()), as embed and predict */
  threads?: number;
  /** 7-bit weights, for deployment on x86 CPUs without VNNI (see Int8Quantization.reduceRange). @default false */
  reduceRange?: boolean;
}

export interface ExportRunResult {
  out: string;
  part: 'image' | 'tabular';
  /** The metadata_props written (tabsight.* keys and the run's). */
  metadata: Record<string, string>;
  /** With `quantize`: how the ranges were calibrated and how far the int8 outputs move from float32's. */
  quantization?: QuantizationReport;
}

export interface QuantizationReport {
  cohort: string;
  calibrationImages: number;
  agreement: Agreement;
}

/** config.json of a run directory (ConfigError when it is not one). */
export function readRunConfig(runDir: string): ResolvedPretrainConfig {
  const configFile = path.join(runDir, 'config.json');
  return readRunConfigFile(configFile, `${runDir} is not a tabsight run: ${configFile} is missing`);
}

/** Names of the one-hot-encoded tabular columns, as the native encoder lays them out. */
export function encodedColumnNames(config: ResolvedPretrainConfig, runDir: string): string[] {
  const card = config.data.cardinalities.length > 0 ? config.data.cardinalities : new Array<number>(config.data.tabularFeatures).fill(0);
  const names = config.data.featureNames ?? card.map((_, j) => `column ${j}`);
  let categories: Record<string, string[]> = {};
  const prepFile = path.join(runDir, 'preprocessor.json');
  if (fs.existsSync(prepFile)) {
    try {
      const prep = JSON.parse(fs.readFileSync(prepFile, 'utf8')) as { columns?: { name: string; type: string; categories?: string[] }[] };
      categories = Object.fromEntries((prep.columns ?? []).filter((c) => c.categories).map((c) => [c.name, c.categories!]));
    } catch {
      categories = {};
    }
  }
  return card.flatMap((k, j) => (k === 0 ? [names[j]] : Array.from({ length: k }, (_, c) => `${names[j]}=${categories[names[j]]?.[c] ?? c}`)));
}

/**
 * Writes `out` (ONNX, atomically). The image model takes images in the
 * store's range (0–255 floats for uint8 stores) at the run's image size, and
 * outputs the pooled embedding (plus the head's outputs). The tabular model
 * takes preprocessed rows with categorical columns one-hot encoded.
 */
export async function exportRun(runDir: string, out: string, options: ExportRunOptions = {}): Promise<ExportRunResult> {
  const config = readRunConfig(runDir);
  checkOutFile(out);
  const part = options.part ?? 'image';
  if (part !== 'image' && part !== 'tabular') throw new ConfigError(`Expected "image" or "tabular" for part but received ${JSON.stringify(part)}`);
  if (part === 'tabular' && (options.head || options.withHead)) throw new ConfigError('A probe head applies to the image encoder only (part "image")');
  if (options.head && options.withHead) throw new ConfigError('Give head or withHead, not both');
  if (part === 'tabular' && options.quantize !== undefined) throw new ConfigError('int8 quantization applies to the image encoder only (part "image")');
  const extra = { ...(options.metadata ?? {}), run_config: JSON.stringify(config) };
  const bytes = part === 'tabular'
    ? await tabularBytes(runDir, config, extra)
    : await imageBytes(runDir, config, options, extra);
  await writeFileAtomic(out, bytes.model);
  const res: ExportRunResult = { out, part, metadata: bytes.metadata };
  if (bytes.quantization) res.quantization = bytes.quantization;
  return res;
}

interface ModelBytes { model: Uint8Array; metadata: Record<string, string>; quantization?: QuantizationReport }

async function imageBytes(runDir: string, config: ResolvedPretrainConfig, options: ExportRunOptions, extra: Record<string, string>): Promise<ModelBytes> {
  const weightsFile = path.join(runDir, 'image_encoder.safetensors');
  if (!fs.existsSync(weightsFile)) throw new DataError(`${weightsFile} is missing: the run has not finished (resume it: tabsight pretrain --resume, or resume: true)`);
  let head = options.head;
  let saved: SavedHead | undefined;
  if (options.withHead !== undefined) {
    saved = readHead(runDir, options.withHead);
    head = headExportOptions(saved);
  }
  const file = await readSafetensors(weightsFile);
  const meta = { ...imageEncoderMeta(file.metadata, weightsFile), imageSize: config.imageSize };
  const scale = config.data.dtype === 'uint8' ? 1 / 255 : 1;
  const metadata: Record<string, string> = { ...extra, image_dtype: imageValueType(config.data.dtype) };
  if (saved) {
    const headPath = headFile(path.join(runDir, 'heads'), options.withHead!);
    const dim = meta.arch === 'resnet50' ? 2048 : 512;
    if (saved.dim !== dim) throw new DataError(`Head file ${headPath} has dim ${saved.dim}, but this run's ${meta.arch} embeddings have ${dim}`);
    // The head must come from this encoder: a head copied from another run, or
    // fitted before the run was resumed, would export without complaint.
    if (saved.encoderSha256 !== undefined) {
      const sha = await fileSha256(weightsFile);
      if (sha !== saved.encoderSha256) {
        throw new DataError(
          `Head file ${headPath} was fitted on another image encoder (run ${saved.run}, encoder sha256 ${saved.encoderSha256.slice(0, 12)}…) ` +
            `than ${weightsFile} (sha256 ${sha.slice(0, 12)}…): fit it again with \`tabsight evaluate --run ${runDir} --save-heads\``,
        );
      }
    }
    Object.assign(metadata, {
      head_metric: saved.metric, head_test_metric: String(saved.testMetric), head_embedding_backend: saved.embeddingBackend,
      head_label_fraction: String(saved.labelFraction), head_cohort: saved.cohort,
    });
  }
  const exportOptions: ImageExportOptions = {
    normalize: { mean: config.normalize.mean, std: config.normalize.std, inputScale: scale },
    // A uint8 store is 0–255; a float32 store's values can have any range.
    inputRange: config.data.dtype === 'uint8' ? [0, 255] : null,
    head,
    metadata,
  };
  const model = exportImageEncoder(file.tensors, meta, exportOptions);
  if (options.quantize === undefined) return { model, metadata: decodeMeta(model) };
  return quantizedBytes(runDir, config, file.tensors, meta, exportOptions, model, options.quantize);
}

async function quantizedBytes(
  runDir: string, config: ResolvedPretrainConfig, weights: WeightMap, meta: ImageEncoderMeta,
  exportOptions: ImageExportOptions, float32: Uint8Array, q: QuantizeRunOptions,
): Promise<ModelBytes> {
  if (typeof q !== 'object' || q === null) throw invalid('an object', 'quantize', q);
  const nCal = q.calibrationImages === undefined ? 256 : positiveInteger(q.calibrationImages, 'quantize.calibrationImages');
  const nAgree = q.agreementImages === undefined ? 256 : positiveInteger(q.agreementImages, 'quantize.agreementImages');
  const reduceRange = q.reduceRange ?? false;
  if (typeof reduceRange !== 'boolean') throw invalid('boolean', 'quantize.reduceRange', reduceRange);
  const cohortDir = q.cohort ?? (typeof config.meta?.cohort === 'string' ? config.meta.cohort : undefined);
  if (cohortDir === undefined) {
    throw new ConfigError(`${runDir} was not pretrained on a cohort directory: give quantize.cohort (--calibration-cohort) to calibrate the int8 model on`);
  }
  let cohort: Cohort;
  try {
    cohort = await loadCohort(cohortDir);
  } catch (err) {
    // The run's own cohort may have moved since it was pretrained.
    if (q.cohort === undefined && err instanceof DataError) {
      throw new DataError(`${(err as Error).message} (the cohort ${runDir} was pretrained on, from its config.json; give quantize.cohort, or --calibration-cohort, to calibrate on a copy)`, { cause: err });
    }
    throw err;
  }
  const src = imageSourceOfCohort(cohort);
  const [, c, h, w] = src.shape;
  const [rh, rw] = [config.imageSize, config.imageSize];
  if (c !== meta.inChannels || h !== rh || w !== rw) {
    throw new ShapeError(`Cohort ${cohort.dir} has ${c}×${h}×${w} images (channels×height×width) but the run ${runDir} takes ${meta.inChannels}×${rh}×${rw}`);
  }
  if (imageValueType(src.dtype) !== imageValueType(config.data.dtype)) {
    throw new ShapeError(`Cohort ${cohort.dir} stores ${src.dtype} images but the run ${runDir} was trained on ${config.data.dtype} images`);
  }
  if (cohort.splits.train.length === 0) throw new DataError(`Cohort ${cohort.dir} has no training images to calibrate on`);
  const calRows = spreadRows(cohort.splits.train, nCal);
  const held = cohort.splits.val.length > 0 ? cohort.splits.val : cohort.splits.test;
  const heldName = cohort.splits.val.length > 0 ? 'val' : 'test';
  if (held.length === 0) throw new DataError(`Cohort ${cohort.dir} has no validation or test images to measure the int8 model on`);
  const agreeRows = spreadRows(held, nAgree);
  const cal = await calibrateImageEncoder(weights, meta, exportOptions, readImageChunks(src, 32, calRows), { threads: q.threads, label: `cohort ${cohort.dir}` });
  const calibration = { calibration: { cohort: cohort.dir, split: 'train', images: cal.images } };
  const int8 = exportImageEncoder(weights, meta, { ...exportOptions, quantize: { ranges: cal.ranges, calibration, reduceRange } });
  const agreement = await measureAgreement(float32, int8, readImageChunks(src, 32, agreeRows), { threads: q.threads });
  // The agreement goes into the model too, so that it travels with the file.
  const scheme = JSON.parse(decodeMeta(int8)['tabsight.quantization']) as Record<string, unknown>;
  const final = withMetadata(int8, { 'tabsight.quantization': JSON.stringify({ ...scheme, agreement: { split: heldName, ...agreement } }) });
  return {
    model: final,
    metadata: decodeMeta(final),
    quantization: { cohort: cohort.dir, calibrationImages: cal.images, agreement },
  };
}

async function tabularBytes(runDir: string, config: ResolvedPretrainConfig, extra: Record<string, string>): Promise<ModelBytes> {
  if (config.mode !== 'multimodal') throw new ConfigError(`${runDir} was pretrained in mode ${config.mode}: it has no tabular encoder to export`);
  const ckpt = path.join(runDir, 'checkpoint.safetensors');
  if (!fs.existsSync(ckpt)) throw new DataError(`${ckpt} is missing: the tabular encoder's weights are only in the checkpoint`);
  const file = await readSafetensors(ckpt);
  const prefix = 'model.tabular.';
  const tensors = new Map([...file.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  if (tensors.size === 0) throw new DataError(`${ckpt} holds no "${prefix}*" tensors`);
  const columns = encodedColumnNames(config, runDir);
  const metadata: Record<string, string> = {
    ...extra,
    feature_names: JSON.stringify(config.data.featureNames ?? []),
    cardinalities: JSON.stringify(config.data.cardinalities),
    encoded_columns: JSON.stringify(columns),
    input_encoding: 'preprocessed rows (preprocessor.json), categorical codes one-hot encoded in column order; code -1 (unseen) is all zeros',
  };
  const prepFile = path.join(runDir, 'preprocessor.json');
  if (fs.existsSync(prepFile)) metadata.preprocessor = fs.readFileSync(prepFile, 'utf8').trim();
  const model = exportTabularEncoder(tensors, { inFeatures: columns.length, layers: config.model.tabularLayers }, { metadata });
  return { model, metadata: decodeMeta(model) };
}

function decodeMeta(model: Uint8Array): Record<string, string> {
  return Object.fromEntries((decodeModel(model).metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
}
