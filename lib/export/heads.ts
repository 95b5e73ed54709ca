/**
 * Probe heads saved by evaluation (RUN/heads/<task>.json), so that the
 * exported ONNX model can carry a downstream classifier or regressor.
 *
 * A head is one linear probe (seed 0) fitted on the task's labelled train
 * split (the label fraction as given, not class-balanced), early-stopped on
 * the whole labelled val split. It is stored twice: in raw embedding space
 * (`weight`, `bias`: logits = embedding · weightᵀ + bias, what the ONNX Gemm
 * computes) and as the probe itself (`probe`: standardised space, what
 * predictProbe computes). See docs/deploy.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, DataError } from '../errors';
import { writeFileAtomic, makeDirs } from '../io/atomic';
import { r2Score, rocAuc, rocAucOvr } from '../eval/metrics';
import { fitProbe, foldStandardization, predictProbe, type Matrix, type ProbeKind, type ProbeModel, type ProbePrediction } from '../eval/probe';
import { labelFractionSubset } from '../eval/protocol';
import type { HeadOptions } from './resnet-onnx';

export const HEAD_FORMAT = 'tabsight-probe-head';

export interface SavedHead {
  format: typeof HEAD_FORMAT;
  version: 1;
  task: string;
  kind: ProbeKind;
  /** binary: [negative, positive]; multiclass: K names; regression: []. */
  classes: string[];
  /** Embedding size D. */
  dim: number;
  /** Row-major K×D in raw embedding space (standardisation folded in). */
  weight: number[];
  bias: number[];
  /** The main test metric's name: auc (classification) or r2 (regression). */
  metric: 'auc' | 'r2';
  /** That metric on the test split, from this probe's predictions on the embeddings it was fitted on. */
  testMetric: number;
  /** Which backend computed those embeddings. */
  embeddingBackend: 'torch' | 'ort';
  labelFraction: number;
  seed: number;
  nTrain: number;
  nVal: number;
  nTest: number;
  run: string;
  cohort: string;
  /** SHA-256 of the run's image_encoder.safetensors the head was fitted on (heads saved before 2026-11-27 lack it). */
  encoderSha256?: string;
  /** The probe as fitted (standardised space), for predictProbe. */
  probe: { weights: number[]; bias: number[]; mean: number[]; std: number[]; nClasses: number; l2: number; bestEpoch: number; monitor: ProbeModel['monitor'] };
}

export interface FitHeadInput {
  task: string;
  kind: ProbeKind;
  classes: string[];
  /** Embeddings of the labelled rows of each split (N×D row-major) and their labels. */
  embeddings: { train: Matrix; val: Matrix; test: Matrix };
  labels: { train: ArrayLike<number>; val: ArrayLike<number>; test: ArrayLike<number> };
  labelFraction: number;
  embeddingBackend: 'torch' | 'ort';
  run: string;
  cohort: string;
  /** SHA-256 of the image encoder file whose embeddings these are. */
  encoderSha256?: string;
}

function takeRows(x: Matrix, d: number, rows: number[]): Float64Array {
  const out = new Float64Array(rows.length * d);
  rows.forEach((r, i) => out.set(x.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

/** The main metric (auc or r2) of a prediction. */
export function mainMetric(kind: ProbeKind, y: ArrayLike<number>, p: Pick<ProbePrediction, 'probabilities' | 'predictions'>): number {
  if (kind === 'regression') return r2Score(y, p.predictions);
  return kind === 'binary' ? rocAuc(y, p.probabilities!) : rocAucOvr(y, p.probabilities!);
}

/** Fits the deployable head of one task (seed 0) and describes it as a SavedHead. */
export function fitHead(input: FitHeadInput): SavedHead {
  const { kind, embeddings: X, labels: Y } = input;
  const d = X.train.length / Y.train.length;
  let rows = Array.from({ length: Y.train.length }, (_, i) => i);
  if (input.labelFraction < 1) {
    rows = labelFractionSubset(rows, kind === 'regression' ? null : rows.map((i) => Y.train[i]), input.labelFraction, 0);
  }
  const nClasses = kind === 'multiclass' ? input.classes.length : undefined;
  const model = fitProbe({
    kind, nClasses, seed: 0,
    train: { x: takeRows(X.train, d, rows), y: rows.map((i) => Y.train[i]) },
    val: { x: X.val, y: Y.val },
  });
  const testMetric = mainMetric(kind, Y.test, predictProbe(model, X.test));
  const folded = foldStandardization(model);
  return {
    format: HEAD_FORMAT, version: 1, task: input.task, kind,
    classes: kind === 'regression' ? [] : [...input.classes],
    dim: d, weight: Array.from(folded.weights), bias: Array.from(folded.bias),
    metric: kind === 'regression' ? 'r2' : 'auc', testMetric,
    embeddingBackend: input.embeddingBackend, labelFraction: input.labelFraction, seed: 0,
    nTrain: rows.length, nVal: Y.val.length, nTest: Y.test.length, run: input.run, cohort: input.cohort,
    ...(input.encoderSha256 ? { encoderSha256: input.encoderSha256 } : {}),
    probe: {
      weights: Array.from(model.weights), bias: Array.from(model.bias), mean: Array.from(model.mean), std: Array.from(model.std),
      nClasses: model.nClasses, l2: model.l2, bestEpoch: model.bestEpoch, monitor: model.monitor,
    },
  };
}

/** A task name as a file name: letters, digits, '.', '_' and '-' only. */
export function headFile(dir: string, task: string): string {
  if (typeof task !== 'string' || !/^[\w.-]+$/.test(task) || task.startsWith('.')) {
    throw new ConfigError(`Expected a task name of letters, digits, ".", "_" or "-" but received ${JSON.stringify(task)}`);
  }
  return path.join(dir, `${task}.json`);
}

/** Writes DIR/<task>.json atomically (the folder is created). Returns the file. */
export async function writeHead(dir: string, head: SavedHead): Promise<string> {
  const file = headFile(dir, head.task);
  makeDirs(dir);
  await writeFileAtomic(file, JSON.stringify(head, null, 1) + '\n');
  return file;
}

/** Tasks with a head in DIR. */
export function listHeads(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => f.slice(0, -5)).sort();
}

function checkHead(h: SavedHead, file: string, task: string): SavedHead {
  const bad = (what: string) => new DataError(`Invalid head file ${file}: ${what}`);
  if (h === null || typeof h !== 'object' || h.format !== HEAD_FORMAT) throw bad(`expected "format": "${HEAD_FORMAT}"`);
  // The file's name is the task it is looked up by; a head fitted for another task must not pass as this one.
  if (h.task !== task) throw bad(`"task" is ${JSON.stringify(h.task)} but the file is the head of task "${task}"`);
  if (!['binary', 'multiclass', 'regression'].includes(h.kind)) throw bad(`unknown kind ${JSON.stringify(h.kind)}`);
  if (!Number.isInteger(h.dim) || h.dim < 1) throw bad('"dim" must be a positive integer');
  const nums = (v: unknown, n: number, name: string) => {
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw bad(`"${name}" must hold ${n} finite numbers`);
  };
  const k = Array.isArray(h.bias) ? h.bias.length : 0;
  if (k < 1) throw bad('"bias" must be a non-empty array');
  nums(h.bias, k, 'bias');
  nums(h.weight, k * h.dim, 'weight');
  nums(h.probe?.weights, k * h.dim, 'probe.weights');
  nums(h.probe?.mean, h.dim, 'probe.mean');
  nums(h.probe?.std, h.dim, 'probe.std');
  const classes = h.classes;
  if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) throw bad('"classes" must be an array of strings');
  if (h.kind === 'binary' && (k !== 1 || classes.length !== 2)) throw bad(`a binary head has 1 output and 2 classes [negative, positive], this one ${k} output(s) and ${classes.length} class(es)`);
  if (h.kind === 'multiclass' && (k < 2 || classes.length !== k)) throw bad(`a multiclass head has as many classes as outputs (≥ 2), this one ${k} output(s) and ${classes.length} class(es)`);
  if (h.kind === 'regression' && classes.length !== 0 && classes.length !== k) throw bad(`a regression head names its ${k} target(s) or none, this one ${classes.length}`);
  if (h.encoderSha256 !== undefined && !(typeof h.encoderSha256 === 'string' && /^[0-9a-f]{64}$/.test(h.encoderSha256))) throw bad('"encoderSha256" must be 64 lowercase hex digits');
  return h;
}

/**
 * Reads RUN/heads/<task>.json (or DIR/<task>.json when `dir` is a heads
 * folder). A run without heads, or without this task's head, is a
 * ConfigError that names the heads there are.
 */
export function readHead(runOrHeadsDir: string, task: string): SavedHead {
  // A run (it has config.json) keeps its heads in RUN/heads, whatever the run's own folder is called.
  const dir = fs.existsSync(path.join(runOrHeadsDir, 'config.json')) ? path.join(runOrHeadsDir, 'heads') : runOrHeadsDir;
  const file = headFile(dir, task);
  if (!fs.existsSync(file)) {
    const have = listHeads(dir);
    throw new ConfigError(have.length === 0
      ? `No probe heads in ${dir}: run \`tabsight evaluate --run RUN --save-heads\` (evaluateRun({ saveHeads })) first`
      : `Unknown task "${task}": ${dir} holds heads for ${have.join(', ')}`);
  }
  let parsed: SavedHead;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as SavedHead;
  } catch (err) {
    throw new DataError(`Invalid head file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return checkHead(parsed, file, task);
}

/** The head as exportImageEncoder takes it (float32, raw space). */
export function headExportOptions(h: SavedHead): HeadOptions {
  return { weight: Float32Array.from(h.weight), bias: Float32Array.from(h.bias), classes: [...h.classes], kind: h.kind, task: h.task };
}

/** The fitted probe, for predictProbe. */
export function headProbeModel(h: SavedHead): ProbeModel {
  return {
    kind: h.kind, dim: h.dim, nClasses: h.probe.nClasses, weights: Float64Array.from(h.probe.weights), bias: Float64Array.from(h.probe.bias),
    mean: Float64Array.from(h.probe.mean), std: Float64Array.from(h.probe.std), l2: h.probe.l2, monitor: h.probe.monitor,
    bestEpoch: h.probe.bestEpoch, valMetric: NaN, history: [],
  };
}
