/**
 * Attribution-based feature ranking: the cohort-level mean |tabular
 * Integrated Gradients| of a full-feature multimodal pretraining run, over
 * (a deterministic subset of) the cohort's train rows. The target is MMCL's
 * own image–tabular similarity: the cosine between each row's tabular
 * projection and its paired subject's image projection (docs/feature-selection.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resizeToFloat } from '../augment';
import type { Cohort } from '../data/cohort';
import { decodeImageBytes, imageItemBytes } from '../data/cohort-images';
import { Preprocessor } from '../data/preprocess';
import { ConfigError, DataError } from '../errors';
import { uniformStream } from '../eval/metrics';
import { tabularIntegratedGradients } from '../explain/attribution';
import type { ResolvedPretrainConfig } from '../pretrain-options';
import { readRunConfigFile } from '../run-config';
import * as is from '../validate';

export interface AttributionRankOptions {
  /** A full-feature multimodal pretraining run directory (written by pretrainCohort). */
  run: string;
  /** Train rows to attribute over (a deterministic subset when there are more). @default 256 */
  maxRows?: number;
  /** Seeds the row subset. @default 0 */
  seed?: number;
  /** IG quadrature points (Gauss–Legendre). @default 50 */
  steps?: number;
  /** 'cpu', 'cuda' or 'cuda:N'. @default 'cpu' */
  device?: string;
}

export interface AttributionRank {
  /** Candidate features, in the run's column order. */
  names: string[];
  /** Mean |attribution| per feature over `rows`. */
  scores: Float64Array;
  /** The train rows (cohort row indices, ascending) attributed over. */
  rows: number[];
}

/** The run's resolved config and preprocessor; ConfigError naming `run` unless it is a multimodal cohort run. */
export function readAttributionRun(run: unknown): { dir: string; config: ResolvedPretrainConfig; prep: Preprocessor } {
  if (run === undefined) {
    throw new ConfigError("method 'attribution' needs option run: a full-feature multimodal pretraining run directory whose tabular encoder is attributed");
  }
  const dir = path.resolve(is.string(run, 'run'));
  const configFile = path.join(dir, 'config.json');
  const config = readRunConfigFile(configFile, `Expected a tabsight run directory for run but ${configFile} is missing`);
  if (config.mode !== 'multimodal') {
    throw new ConfigError(`Expected a multimodal pretraining run for run but ${dir} is a ${String(config.mode)} run (it has no tabular encoder to attribute)`);
  }
  if (!fs.existsSync(path.join(dir, 'checkpoint.safetensors'))) throw new ConfigError(`Expected a finished run for run but ${dir} has no checkpoint.safetensors`);
  const prepFile = path.join(dir, 'preprocessor.json');
  if (!fs.existsSync(prepFile)) throw new ConfigError(`Expected a cohort pretraining run for run (one with preprocessor.json) but ${prepFile} is missing`);
  const prep = Preprocessor.fromJSON(fs.readFileSync(prepFile, 'utf8'));
  return { dir, config, prep };
}

/** At most `max` of `rows`, a seeded subset kept in ascending order. */
export function capRows(rows: readonly number[], max: number, seed: number): number[] {
  if (rows.length <= max) return [...rows].sort((a, b) => a - b);
  const u = uniformStream(seed);
  const a = [...rows];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, max).sort((x, y) => x - y);
}

/**
 * The images of `rows` from the cohort's store, as the run's encoder sees
 * them: the evaluation transform (uint8 /255, bilinear resize to the run's
 * imageSize), then the run's per-channel normalisation.
 */
export function pairedImages(cohort: Cohort, rows: readonly number[], config: ResolvedPretrainConfig): { data: Float32Array; shape: number[] } {
  const { path: file, offset, dtype, shape } = cohort.images;
  const [, c, h, w] = shape;
  const per = c * h * w;
  const bytes = imageItemBytes(dtype);
  const buf = Buffer.alloc(rows.length * per * bytes);
  const fd = fs.openSync(file, 'r');
  try {
    rows.forEach((r, i) => fs.readSync(fd, buf, i * per * bytes, per * bytes, offset + r * per * bytes));
  } finally {
    fs.closeSync(fd);
  }
  const data = decodeImageBytes(buf, dtype);
  const size = config.imageSize;
  const x = resizeToFloat({ data, shape: [rows.length, c, h, w] }, size, size);
  const [, , oh, ow] = x.shape;
  const plane = oh * ow;
  const { mean, std } = config.normalize;
  for (let i = 0; i < x.data.length; i++) {
    const ch = Math.floor(i / plane) % c;
    x.data[i] = (x.data[i] - mean[ch]) / std[ch];
  }
  return x;
}

/**
 * Per-row attribution of each candidate feature from the run's N×F
 * attributions: a feature's column plus its `__missing` indicator column when
 * the run has one (one-hot columns are already summed by the IG).
 */
export function featureAttributions(prep: Preprocessor, attributions: ArrayLike<number>, n: number): { names: string[]; perRow: Float64Array[] } {
  const all = prep.names;
  const F = all.length;
  const names = prep.columns.map((c) => c.name);
  const perRow = names.map((name, j) => {
    const k = all.indexOf(`${name}__missing`);
    return Float64Array.from({ length: n }, (_, i) => attributions[i * F + j] + (k >= 0 ? attributions[i * F + k] : 0));
  });
  return { names, perRow };
}

/** Ranks the candidate features by mean |tabular IG| of the run's image–tabular similarity over the cohort's train rows. */
export async function attributionRank(cohort: Cohort, candidates: readonly string[], train: readonly number[], options: AttributionRankOptions): Promise<AttributionRank> {
  const { dir, config, prep } = readAttributionRun(options.run);
  const maxRows = is.positiveInteger(options.maxRows ?? 256, 'maxRows');
  const seed = is.integer(options.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER);
  const steps = is.positiveInteger(options.steps ?? 50, 'steps');
  const runFeatures = prep.columns.map((c) => c.name);
  const same = runFeatures.length === candidates.length && [...runFeatures].sort().join('\u0000') === [...candidates].sort().join('\u0000');
  if (!same) {
    const missing = candidates.filter((f) => !runFeatures.includes(f));
    const extra = runFeatures.filter((f) => !candidates.includes(f));
    throw new ConfigError(
      `Expected run to be pretrained on the requested features but its features differ` +
      `${missing.length ? `; not in the run: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}` : ''}` +
      `${extra.length ? `; in the run but not requested: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}` : ''}`,
    );
  }
  const [, c] = cohort.images.shape;
  if (c !== config.model.inChannels) throw new ConfigError(`Expected run to take ${c}-channel images (the cohort's) but it takes ${config.model.inChannels}`);
  const rows = capRows(train, maxRows, seed);
  const tab = prep.transform(cohort, rows);
  const images = pairedImages(cohort, rows, config);
  const attr = await tabularIntegratedGradients(
    { path: dir, device: options.device ?? 'cpu', cardinalities: tab.cardinalities },
    { data: tab.data, shape: tab.shape },
    { target: { kind: 'similarity', pairedImages: images }, steps },
  );
  const { names, perRow } = featureAttributions(prep, attr.attributions, rows.length);
  const scores = Float64Array.from(perRow, (col) => col.reduce((s, v) => s + Math.abs(v), 0) / rows.length);
  return { names, scores, rows };
}
