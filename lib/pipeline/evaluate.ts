/**
 * Downstream evaluation of a run's frozen image encoder on every task of a
 * cohort: embed each subject once, then fit a linear probe per task and seed
 * on the train split, stop early on the validation metric, and report test
 * metrics as mean ± sd over seeds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCohort, type Cohort } from '../data/cohort';
import { encodeLabels } from '../data/preprocess';
import { ConfigError } from '../errors';
import { evaluateProbe, labelFractionSubset, type EvaluateProbeResult } from '../eval/protocol';
import { channelStats } from '../image-stats';
import { pretrain, resolvePretrainOptions, type ResolvedPretrainConfig } from '../pretrain';
import { loadRun, randomRun, type Run } from '../run';
import * as is from '../validate';
import { cohortImageStore } from './cohort-pretrain';

export interface EvaluateOptions {
  /** A run directory, or 'random:resnet18' / 'random:resnet50' for a randomly initialised baseline. */
  run: string;
  cohort: string;
  /** @default every task of the cohort */
  tasks?: string[];
  /** 'linear' (frozen encoder) or 'finetune' (end-to-end, then a probe on the tuned features). @default 'linear' */
  protocol?: 'linear' | 'finetune';
  /** Fraction of the train labels used. @default 1 */
  labelFraction?: number;
  /** Number of probe seeds. @default 5 */
  seeds?: number;
  /** Fine-tuning epochs. @default 5 */
  finetuneEpochs?: number;
  /** Called with a line of progress text. */
  log?: (line: string) => void;
}

export interface MetricSummary {
  mean: number;
  sd: number;
  values: number[];
}

export interface EvaluationResult {
  run: string;
  cohort: string;
  protocol: 'linear' | 'finetune';
  labelFraction: number;
  seeds: number;
  tasks: Record<string, Record<string, MetricSummary>>;
}

/** Embeds every subject of a cohort, reading the store in chunks. */
export async function embedCohort(run: Run, cohort: Cohort, chunk = 256): Promise<Float32Array> {
  const { path: file, offset, dtype, shape } = cohort.images;
  const [n, c, h, w] = shape;
  const per = c * h * w;
  const bytes = dtype === 'uint8' ? 1 : 4;
  const out = new Float32Array(n * run.featureDim);
  const fd = fs.openSync(file, 'r');
  try {
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      const buf = Buffer.alloc(m * per * bytes);
      fs.readSync(fd, buf, 0, buf.length, offset + start * per * bytes);
      const data = dtype === 'uint8' ? new Uint8Array(buf.buffer, buf.byteOffset, buf.length) : new Float32Array(buf.buffer, buf.byteOffset, m * per);
      const emb = await run.embed({ data, shape: [m, c, h, w] });
      out.set(emb, start * run.featureDim);
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** A config for a randomly initialised encoder on this cohort (the baseline). */
async function randomConfig(arch: 'resnet18' | 'resnet50', cohort: Cohort): Promise<ResolvedPretrainConfig> {
  const [n, channels, height, width] = cohort.images.shape;
  const dtype = cohort.images.dtype === 'uint8' ? 'uint8' : 'float32';
  const facts = { n, channels, height, width, dtype } as const;
  const images = cohortImageStore(cohort);
  const normalize = await channelStats(images, facts, cohort.splits.train);
  return resolvePretrainOptions({ out: '-', images, model: { arch } }, facts, normalize);
}

async function openRun(spec: string, cohort: Cohort): Promise<Run> {
  const m = /^random:(resnet18|resnet50)$/.exec(spec);
  if (m) return randomRun(await randomConfig(m[1] as 'resnet18' | 'resnet50', cohort), 0);
  return loadRun(spec);
}

function kindOf(type: 'binary' | 'multiclass' | 'regression') {
  return type;
}

function rowsWithLabels(rows: number[], y: Int32Array | Float64Array): number[] {
  return rows.filter((r) => (y instanceof Int32Array ? y[r] >= 0 : Number.isFinite(y[r])));
}

function take(emb: Float32Array, d: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(emb.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

export async function evaluateRun(options: EvaluateOptions): Promise<EvaluationResult> {
  const protocol = is.oneOf(options.protocol ?? 'linear', 'protocol', ['linear', 'finetune'] as const);
  const labelFraction = options.labelFraction ?? 1;
  if (!(labelFraction > 0 && labelFraction <= 1)) throw is.invalid('number in (0, 1]', 'labelFraction', labelFraction);
  const nSeeds = is.positiveInteger(options.seeds ?? 5, 'seeds');
  const log = options.log ?? (() => undefined);
  const cohort = await loadCohort(options.cohort);
  const taskNames = options.tasks ?? cohort.labels.tasks.map((t) => t.name);
  if (taskNames.length === 0) throw new ConfigError(`${cohort.dir} has no label tasks to evaluate`);
  for (const t of taskNames) {
    if (!cohort.labels.tasks.some((k) => k.name === t)) throw new ConfigError(`Unknown task "${t}"; the cohort's tasks are ${cohort.labels.tasks.map((k) => k.name).join(', ')}`);
  }
  const seeds = Array.from({ length: nSeeds }, (_, i) => i);
  const result: EvaluationResult = { run: options.run, cohort: cohort.dir, protocol, labelFraction, seeds: nSeeds, tasks: {} };

  let frozen: { emb: Float32Array; d: number } | undefined;
  if (protocol === 'linear') {
    const run = await openRun(options.run, cohort);
    try {
      log(`embedding ${cohort.ids.length} subjects with ${options.run}`);
      frozen = { emb: await embedCohort(run, cohort), d: run.featureDim };
    } finally {
      run.dispose();
    }
  }
  for (const task of taskNames) {
    const spec = cohort.labels.tasks.find((t) => t.name === task)!;
    const y = encodeLabels(cohort, task);
    const split = {
      train: rowsWithLabels(cohort.splits.train, y),
      val: rowsWithLabels(cohort.splits.val, y),
      test: rowsWithLabels(cohort.splits.test, y),
    };
    let emb: { emb: Float32Array; d: number };
    if (frozen) {
      emb = frozen;
    } else {
      emb = await finetuneAndEmbed(options, cohort, split.train, y, labelFraction);
    }
    const pick = (rows: number[]) => (y instanceof Int32Array ? Int32Array.from(rows, (r) => y[r]) : Float64Array.from(rows, (r) => y[r]));
    log(`probing ${task} (${spec.type}) on ${split.train.length}/${split.val.length}/${split.test.length} subjects, ${nSeeds} seeds`);
    const r: EvaluateProbeResult = evaluateProbe({
      embeddings: { train: take(emb.emb, emb.d, split.train), val: take(emb.emb, emb.d, split.val), test: take(emb.emb, emb.d, split.test) },
      labels: { train: pick(split.train), val: pick(split.val), test: pick(split.test) },
      kind: kindOf(spec.type),
      nClasses: spec.classes?.length,
      labelFraction,
      seeds,
    });
    result.tasks[task] = r.summary;
  }
  return result;
}

/** Fine-tunes the run's encoder end to end on one task's train labels, then embeds the cohort with it. */
async function finetuneAndEmbed(options: EvaluateOptions, cohort: Cohort, train: number[], y: Int32Array | Float64Array, labelFraction: number) {
  const base = await openRun(options.run, cohort);
  const config = base.config;
  base.dispose();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-finetune-'));
  try {
    const isClass = y instanceof Int32Array;
    const keep = labelFraction < 1 ? labelFractionSubset(train, isClass ? Int32Array.from(train, (r) => y[r]) : null, labelFraction, 0) : train;
    const out = await pretrain({
      out: path.join(tmp, 'run'),
      images: cohortImageStore(cohort),
      rows: keep,
      mode: 'supervised',
      labels: isClass ? Int32Array.from(keep, (r) => y[r]) : undefined,
      targets: isClass ? undefined : Float32Array.from(keep, (r) => y[r]),
      initWeights: options.run.startsWith('random:') ? undefined : path.join(options.run, 'image_encoder.safetensors'),
      epochs: options.finetuneEpochs ?? 5,
      batchSize: Math.min(64, keep.length),
      lr: 1e-4,
      warmupEpochs: 0,
      normalize: config.normalize,
      imageSize: config.imageSize,
      model: { arch: config.model.arch, smallStem: config.model.smallStem },
      augment: config.augment,
      scanImages: false,
    });
    const run = await loadRun(out);
    try {
      return { emb: await embedCohort(run, cohort), d: run.featureDim };
    } finally {
      run.dispose();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
