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
import { decodeImageBytes, imageItemBytes, imageValueType } from '../data/cohort-images';
import { encodeLabels } from '../data/preprocess';
import { ConfigError, DataError, ShapeError, TabsightError } from '../errors';
import { meanSd } from '../eval/metrics';
import { evaluateProbe, labelFractionSubset, type EvaluateProbeResult } from '../eval/protocol';
import { embedSource, openEmbedder, type Backend } from '../export/backend';
import { fitHead, writeHead, type SavedHead } from '../export/heads';
import { readRunConfig } from '../export/run-export';
import { ensureOutDir, removeAtExit, writeReason } from '../io/atomic';
import { fileSha256 } from '../io/read';
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
  /**
   * Which runtime embeds the cohort (linear protocol). 'auto' exports the run
   * to a temporary ONNX file and uses onnxruntime when the cohort's images
   * fit the exported model and a spot check on 16 images agrees with
   * LibTorch within ORT_TOLERANCE; otherwise LibTorch. @default 'auto'
   */
  backend?: Backend | 'auto';
  /** Also fit one deployable probe per task (seed 0) and write DIR/<task>.json (linear protocol, run directories only). */
  saveHeads?: string;
  /** Called with a line of progress text. */
  log?: (line: string) => void;
}

/** Largest |ORT − LibTorch| embedding difference accepted by backend 'auto' (and verified by test/deploy.test.ts). */
export const ORT_TOLERANCE = 1e-4;

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
  /** The runtime that computed the frozen embeddings ('torch' for fine-tuning). */
  embeddingBackend: Backend;
  /** Test metrics per task: mean ± sd over probe seeds. */
  tasks: Record<string, Record<string, MetricSummary>>;
  /**
   * Per task, the probe's monitored validation metric (AUC, macro one-vs-rest
   * for multiclass, or R²) at its early-stopping epoch, over probe seeds.
   * What model selection may look at; `tasks` (test) may not.
   */
  validation: Record<string, MetricSummary>;
  /** Head files written (with saveHeads), by task. */
  heads?: Record<string, string>;
}

/** Embeds every subject of a cohort, reading the store in chunks. */
export async function embedCohort(run: Run, cohort: Cohort, chunk = 256): Promise<Float32Array> {
  const { path: file, offset, dtype, shape } = cohort.images;
  const [n, c, h, w] = shape;
  const per = c * h * w;
  const bytes = imageItemBytes(dtype);
  const out = new Float32Array(n * run.featureDim);
  const fd = fs.openSync(file, 'r');
  try {
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      const buf = Buffer.alloc(m * per * bytes);
      fs.readSync(fd, buf, 0, buf.length, offset + start * per * bytes);
      const emb = await run.embed({ data: decodeImageBytes(buf, dtype), shape: [m, c, h, w] });
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
  const facts = { n, channels, height, width, dtype: cohort.images.dtype } as const;
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
  const backend = is.oneOf(options.backend ?? 'auto', 'backend', ['auto', 'ort', 'torch'] as const);
  const isRandom = options.run.startsWith('random:');
  if (options.saveHeads !== undefined) {
    is.string(options.saveHeads, 'saveHeads');
    if (protocol !== 'linear') throw new ConfigError('saveHeads needs the linear protocol: a fine-tuned encoder is not the run\'s encoder');
    if (isRandom) throw new ConfigError(`saveHeads needs a run directory, not ${options.run}`);
  }
  if (backend === 'ort' && (isRandom || protocol !== 'linear')) throw new ConfigError(`backend ort needs a run directory and the linear protocol (run ${options.run}, protocol ${protocol})`);
  // The data, before any embedding or fine-tuning (minutes on a real cohort).
  const unscorable = taskNames.flatMap((t) => whyUnscorable(cohort, t));
  if (unscorable.length > 0) {
    const ok = taskNames.filter((t) => !unscorable.some((u) => u.task === t));
    throw new DataError(
      `${cohort.labels.file}: ${unscorable.map((u) => `task "${u.task}": ${u.why}`).join('; ')}. `
      + (ok.length > 0 ? `evaluate the others with --task ${ok.join(' ')} (option tasks)` : 'No task can be evaluated on these splits'),
    );
  }
  if (options.saveHeads !== undefined) {
    // Before the evaluation, not after it: a folder that cannot take the heads is an error now.
    ensureOutDir(options.saveHeads);
    try {
      fs.accessSync(options.saveHeads, fs.constants.W_OK);
    } catch (err) {
      throw new ConfigError(`Cannot write heads to ${options.saveHeads}: ${writeReason(err, options.saveHeads)}`, { cause: err });
    }
  }
  const result: EvaluationResult = { run: options.run, cohort: cohort.dir, protocol, labelFraction, seeds: nSeeds, embeddingBackend: 'torch', tasks: {}, validation: {} };

  let frozen: { emb: Float32Array; d: number } | undefined;
  if (protocol === 'linear') {
    log(`embedding ${cohort.ids.length} subjects with ${options.run}`);
    const viaOrt = backend === 'torch' || isRandom ? undefined : await embedWithOrt(options.run, cohort, backend === 'auto', log);
    if (viaOrt) {
      frozen = viaOrt;
      result.embeddingBackend = 'ort';
    } else {
      const run = await openRun(options.run, cohort);
      try {
        frozen = { emb: await embedCohort(run, cohort), d: run.featureDim };
      } finally {
        run.dispose();
      }
    }
  }
  const heads: SavedHead[] = [];
  // Heads record which encoder file they were fitted on; export refuses a head from another.
  const encoderSha256 = options.saveHeads !== undefined ? await fileSha256(path.join(path.resolve(options.run), 'image_encoder.safetensors')) : undefined;
  for (const task of taskNames) {
    const spec = cohort.labels.tasks.find((t) => t.name === task)!;
    const y = encodeLabels(cohort, task);
    const split = {
      train: rowsWithLabels(cohort.splits.train, y),
      val: rowsWithLabels(cohort.splits.val, y),
      test: rowsWithLabels(cohort.splits.test, y),
    };
    let emb: { emb: Float32Array; d: number };
    // The probes' label fraction: drawn per probe seed by evaluateProbe for a
    // frozen encoder. Fine-tuning sees labels too, so there one subset of the
    // train labels is drawn (stratified, seed 0), the encoder is tuned on it
    // and every probe seed trains on that same subset: the labels used are
    // the fraction, not the fine-tuning's plus each probe's.
    let probeFraction = labelFraction;
    if (frozen) {
      emb = frozen;
    } else {
      if (labelFraction < 1) {
        split.train = labelFractionSubset(split.train, y instanceof Int32Array ? Int32Array.from(split.train, (r) => y[r]) : null, labelFraction, 0);
        probeFraction = 1;
      }
      log(`fine-tuning on ${split.train.length} labelled train subjects for ${task}`);
      emb = await finetuneAndEmbed(options, cohort, split.train, y);
    }
    const pick = (rows: number[]) => (y instanceof Int32Array ? Int32Array.from(rows, (r) => y[r]) : Float64Array.from(rows, (r) => y[r]));
    log(`probing ${task} (${spec.type}) on ${split.train.length}/${split.val.length}/${split.test.length} subjects, ${nSeeds} seeds`);
    try {
      const r: EvaluateProbeResult = evaluateProbe({
        embeddings: { train: take(emb.emb, emb.d, split.train), val: take(emb.emb, emb.d, split.val), test: take(emb.emb, emb.d, split.test) },
        labels: { train: pick(split.train), val: pick(split.val), test: pick(split.test) },
        kind: kindOf(spec.type),
        nClasses: spec.classes?.length,
        labelFraction: probeFraction,
        seeds,
      });
      result.tasks[task] = r.summary;
      const val = r.perSeed.map((x) => x.valMetric);
      result.validation[task] = { ...meanSd(val), values: val };
      if (options.saveHeads !== undefined) {
        heads.push(fitHead({
          task, kind: spec.type, classes: spec.classes ?? [], labelFraction, embeddingBackend: result.embeddingBackend, run: path.resolve(options.run), cohort: cohort.dir, encoderSha256,
          embeddings: { train: take(emb.emb, emb.d, split.train), val: take(emb.emb, emb.d, split.val), test: take(emb.emb, emb.d, split.test) },
          labels: { train: pick(split.train), val: pick(split.val), test: pick(split.test) },
        }));
      }
    } catch (err) {
      throw inTask(err, cohort, task, spec.classes);
    }
  }
  // Heads are written once every task has been evaluated: a failing task leaves none half-saved.
  for (const head of heads) {
    (result.heads ??= {})[head.task] = await writeHead(options.saveHeads!, head);
    log(`saved the ${head.task} head (test ${head.metric} ${head.testMetric.toFixed(3)}) to ${result.heads[head.task]}`);
  }
  return result;
}

/**
 * Why a task cannot be scored on the cohort's splits, as the probe would find
 * it only after the embedding: a classification task needs every class in
 * test (one-vs-rest AUC) and in val (the early-stopping AUC), and two in
 * train; a regression task needs two labelled rows in each split (R²).
 */
function whyUnscorable(cohort: Cohort, task: string): { task: string; why: string }[] {
  const spec = cohort.labels.tasks.find((t) => t.name === task)!;
  const y = encodeLabels(cohort, task);
  const out: { task: string; why: string }[] = [];
  for (const s of ['train', 'val', 'test'] as const) {
    const rows = rowsWithLabels(cohort.splits[s], y);
    if (!(y instanceof Int32Array)) {
      if (rows.length < 2) out.push({ task, why: `the ${s} split has ${rows.length} labelled row(s); R² needs at least 2` });
      continue;
    }
    const classes = spec.classes!;
    const count = new Array<number>(classes.length).fill(0);
    for (const r of rows) count[y[r]]++;
    const absent = classes.filter((_, k) => count[k] === 0);
    if (s === 'train') {
      if (classes.length - absent.length < 2) out.push({ task, why: `the train split has ${rows.length === 0 ? 'no labelled row' : `only class "${classes[count.findIndex((c) => c > 0)]}"`}; a probe needs two classes` });
    } else if (absent.length > 0) {
      const what = s === 'test' ? 'its test AUC is undefined' : 'early stopping on validation AUC needs every class';
      out.push({ task, why: `class${absent.length > 1 ? 'es' : ''} ${absent.map((c) => `"${c}"`).join(', ')} ha${absent.length > 1 ? 've' : 's'} no labelled row in the ${s} split (${what})` });
    }
  }
  return out;
}

/**
 * A probe's error with the task, the labels file and (for a class index) the
 * class's label as the file writes it: `labels.test has no example of class
 * 3` says nothing about which task or which label is missing.
 */
function inTask(err: unknown, cohort: Cohort, task: string, classes: readonly string[] | undefined): unknown {
  if (!(err instanceof TabsightError)) return err;
  const named = err.message.replace(/\bclass (\d+)\b/g, (m, i: string) => (classes?.[Number(i)] !== undefined ? `${m} (label "${classes[Number(i)]}")` : m));
  const message = `${cohort.labels.file}: task "${task}": ${named}`;
  if (err.constructor === TabsightError) return new TabsightError(err.code, message, { cause: err });
  return new (err.constructor as new (m: string, o: { cause: unknown }) => TabsightError)(message, { cause: err });
}

/**
 * Embeds the cohort through onnxruntime: the run exported to a temporary
 * ONNX file. With `fallback` (backend 'auto'), returns undefined instead of
 * failing when the export or the cohort's images do not fit, or when 16
 * images differ from LibTorch by more than ORT_TOLERANCE.
 */
async function embedWithOrt(runDir: string, cohort: Cohort, fallback: boolean, log: (line: string) => void): Promise<{ emb: Float32Array; d: number } | undefined> {
  const { path: file, offset, dtype, shape } = cohort.images;
  const src = { label: `cohort ${cohort.dir}`, file, offset, dtype, shape };
  const config = readRunConfig(runDir);
  if (fallback && config.device !== 'cpu') {
    log(`using LibTorch on ${config.device}: onnxruntime runs on the CPU here`);
    return undefined;
  }
  let ort;
  try {
    const stored = config.data.dtype;
    if (imageValueType(dtype) !== imageValueType(stored)) throw new ShapeError(`The cohort's images are ${dtype} but the run was trained on a ${stored} store; LibTorch and the exported model would scale them differently`);
    ort = await openEmbedder({ run: runDir, backend: 'ort' });
    ort.check(src);
  } catch (err) {
    await ort?.dispose();
    if (!fallback || !(err instanceof TabsightError)) throw err;
    log(`using LibTorch: onnxruntime cannot embed this cohort (${err.message})`);
    return undefined;
  }
  try {
    if (fallback) {
      const rows = Array.from({ length: Math.min(16, shape[0]) }, (_, i) => i);
      const torch = await openEmbedder({ run: runDir, backend: 'torch' });
      let diff = Infinity;
      try {
        const [a, b] = [await embedSource(ort, src, { rows }), await embedSource(torch, src, { rows })];
        diff = 0;
        for (let i = 0; i < a!.embedding.length; i++) diff = Math.max(diff, Math.abs(a!.embedding[i] - b!.embedding[i]));
      } catch (err) {
        if (!(err instanceof TabsightError)) throw err;
      } finally {
        await torch.dispose();
      }
      if (!(diff <= ORT_TOLERANCE)) {
        log(`using LibTorch: onnxruntime and LibTorch embeddings differ by ${diff.toExponential(2)} > ${ORT_TOLERANCE} on ${rows.length} images`);
        return undefined;
      }
      log(`embedding with onnxruntime (max |ORT − LibTorch| on ${rows.length} images: ${diff.toExponential(2)})`);
    }
    const out = (await embedSource(ort, src))!;
    return { emb: out.embedding, d: out.dim };
  } finally {
    await ort.dispose();
  }
}

/** Fine-tunes the run's encoder end to end on one task's labels of the `keep` rows, then embeds the cohort with it. */
async function finetuneAndEmbed(options: EvaluateOptions, cohort: Cohort, keep: number[], y: Int32Array | Float64Array) {
  const base = await openRun(options.run, cohort);
  const config = base.config;
  base.dispose();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-finetune-'));
  const forget = removeAtExit(tmp); // Ctrl-C kills evaluate at once: the folder goes with it
  try {
    const isClass = y instanceof Int32Array;
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
    forget();
  }
}
