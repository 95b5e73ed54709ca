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
import { headProbeModel, mainMetric, readHead } from './heads';
import type { ImageSource } from './images';
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

export async function verifyExportedProbe(runDir: string, cohortDir: string, task: string, options: VerifyExportedProbeOptions = {}): Promise<VerifyExportedProbeResult> {
  const head = readHead(runDir, task);
  const onnxFile = options.out ?? path.join(runDir, 'heads', `${task}.onnx`);
  await exportRun(runDir, onnxFile, { withHead: task });
  const cohort = await loadCohort(cohortDir);
  const y = encodeLabels(cohort, task);
  const rows = cohort.splits.test.filter((r) => (y instanceof Int32Array ? y[r] >= 0 : Number.isFinite(y[r])));
  if (rows.length === 0) throw new DataError(`The test split of ${cohort.dir} has no labels for ${task}`);
  const yTest = Array.from(rows, (r) => y[r]);
  const { path: file, offset, dtype, shape } = cohort.images;
  const src: ImageSource = { label: `cohort ${cohort.dir}`, file, offset, dtype: dtype as 'uint8' | 'float32', shape };

  const embed = async (o: Parameters<typeof openEmbedder>[0]): Promise<EmbedderOutput> => {
    const e = await openEmbedder(o);
    try {
      return (await embedSource(e, src, { rows }))!;
    } finally {
      await e.dispose();
    }
  };
  const viaTorch = await embed({ run: runDir, backend: 'torch' });
  const viaOrt = await embed({ model: onnxFile, threads: options.threads });

  const pred = predictProbe(headProbeModel(head), viaTorch.embedding);
  const torchMetric = mainMetric(head.kind, yTest, pred);
  let ortOut: Float32Array;
  let ref: ArrayLike<number>;
  if (head.kind === 'regression') {
    ortOut = viaOrt.prediction!;
    ref = pred.predictions;
  } else {
    ortOut = viaOrt.probabilities!;
    ref = pred.probabilities!;
  }
  if (!ortOut) throw new DataError(`${onnxFile} has no ${head.kind === 'regression' ? 'prediction' : 'probabilities'} output`);
  const ortPredictions = head.kind === 'regression' ? ortOut : new Float64Array(0);
  const ortMetric = mainMetric(head.kind, yTest, { probabilities: head.kind === 'regression' ? null : Float64Array.from(ortOut), predictions: Float64Array.from(ortPredictions) });
  return {
    metric: head.metric, torchMetric, ortMetric, savedMetric: head.testMetric,
    maxEmbeddingDiff: maxAbsDiff(viaOrt.embedding, viaTorch.embedding), maxOutputDiff: maxAbsDiff(ortOut, ref),
    nTest: rows.length, onnxFile,
  };
}
