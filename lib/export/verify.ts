/**
 * Shows that an exported model reproduces a probe head: the run is exported
 * with the task's head, the cohort's labelled test subjects are embedded by
 * LibTorch and by onnxruntime, and the head's main test metric is computed
 * both ways (predictProbe on LibTorch embeddings, and the ONNX model's own
 * probabilities or predictions).
 */
import * as path from 'node:path';
import { loadCohort } from '../data/cohort';
import { encodeLabels } from '../data/preprocess';
import { DataError } from '../errors';
import { predictProbe } from '../eval/probe';
import { embedSource, openEmbedder, type EmbedderOutput } from './backend';
import { headProbeModel, mainMetric, readHead, type SavedHead } from './heads';
import { imageSourceOfCohort, type ImageSource } from './images';
import { exportRun } from './run-export';

export interface VerifyExportedProbeOptions {
  /** Where to write the ONNX model. @default RUN/heads/<task>.onnx */
  out?: string;
  /** onnxruntime threads. @default os.availableParallelism() */
  threads?: number;
}

export interface VerifyExportedProbeResult {
  /** auc or r2. */
  metric: 'auc' | 'r2';
  /** The head's test metric from predictProbe on LibTorch embeddings. */
  torchMetric: number;
  /** The same metric from the ONNX model's outputs in onnxruntime. */
  ortMetric: number;
  /** The test metric saved with the head (on the embeddings evaluation used). */
  savedMetric: number;
  /** max |ORT − LibTorch| over the test subjects' embeddings. */
  maxEmbeddingDiff: number;
  /** max |ORT − predictProbe| over probabilities (classification) or predictions (regression). */
  maxOutputDiff: number;
  nTest: number;
  onnxFile: string;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new DataError(`Cannot compare outputs of length ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface TestSet { rows: number[]; yTest: number[]; src: ImageSource }

async function labelledTest(cohortDir: string, task: string): Promise<TestSet> {
  const cohort = await loadCohort(cohortDir);
  const y = encodeLabels(cohort, task);
  const rows = cohort.splits.test.filter((r) => (y instanceof Int32Array ? y[r] >= 0 : Number.isFinite(y[r])));
  if (rows.length === 0) throw new DataError(`The test split of ${cohort.dir} has no labels for ${task}`);
  return { rows, yTest: Array.from(rows, (r) => y[r]), src: imageSourceOfCohort(cohort) };
}

async function embedTest(o: Parameters<typeof openEmbedder>[0], test: TestSet): Promise<EmbedderOutput> {
  const e = await openEmbedder(o);
  try {
    return (await embedSource(e, test.src, { rows: test.rows }))!;
  } finally {
    await e.dispose();
  }
}

/** The metric of a model's own head outputs (probabilities or predictions) against the test labels. */
function ortHeadMetric(kind: SavedHead['kind'], onnxFile: string, yTest: number[], out: EmbedderOutput): { metric: number; output: Float32Array } {
  const output = kind === 'regression' ? out.prediction : out.probabilities;
  if (!output) throw new DataError(`${onnxFile} has no ${kind === 'regression' ? 'prediction' : 'probabilities'} output`);
  const metric = kind === 'regression'
    ? mainMetric(kind, yTest, { probabilities: null, predictions: Float64Array.from(output) })
    : mainMetric(kind, yTest, { probabilities: Float64Array.from(output), predictions: new Float64Array(0) });
  return { metric, output };
}

export interface ExportedProbeMetricResult {
  /** auc or r2. */
  metric: 'auc' | 'r2';
  /** The head's main metric on the cohort's labelled test subjects, from the model's own outputs in onnxruntime. */
  value: number;
  nTest: number;
}

/**
 * The main test metric of a model exported with a head (`--with-head`, or
 * `--int8 --with-head`), run in onnxruntime on the cohort's labelled test
 * subjects. The head's kind and metric come from RUN/heads/TASK.json.
 */
export async function exportedProbeMetric(runDir: string, onnxFile: string, cohortDir: string, task: string, options: { threads?: number } = {}): Promise<ExportedProbeMetricResult> {
  const head = readHead(runDir, task);
  const test = await labelledTest(cohortDir, task);
  const out = await embedTest({ model: onnxFile, threads: options.threads }, test);
  return { metric: head.metric, value: ortHeadMetric(head.kind, onnxFile, test.yTest, out).metric, nTest: test.rows.length };
}

export async function verifyExportedProbe(runDir: string, cohortDir: string, task: string, options: VerifyExportedProbeOptions = {}): Promise<VerifyExportedProbeResult> {
  const head = readHead(runDir, task);
  const onnxFile = options.out ?? path.join(runDir, 'heads', `${task}.onnx`);
  await exportRun(runDir, onnxFile, { withHead: task });
  const test = await labelledTest(cohortDir, task);
  const viaTorch = await embedTest({ run: runDir, backend: 'torch' }, test);
  const viaOrt = await embedTest({ model: onnxFile, threads: options.threads }, test);

  const pred = predictProbe(headProbeModel(head), viaTorch.embedding);
  const torchMetric = mainMetric(head.kind, test.yTest, pred);
  const ref: ArrayLike<number> = head.kind === 'regression' ? pred.predictions : pred.probabilities!;
  const ort = ortHeadMetric(head.kind, onnxFile, test.yTest, viaOrt);
  return {
    metric: head.metric, torchMetric, ortMetric: ort.metric, savedMetric: head.testMetric,
    maxEmbeddingDiff: maxAbsDiff(viaOrt.embedding, viaTorch.embedding), maxOutputDiff: maxAbsDiff(ort.output, ref),
    nTest: test.rows.length, onnxFile,
  };
}
