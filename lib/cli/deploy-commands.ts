/**
 * tabsight export, embed and predict: the deploy path. Images are streamed
 * from the NPY store in batches, results are written atomically, and the
 * input is checked against the model (channels, size, dtype) before any
 * inference runs.
 */
import { Command } from 'commander';
import * as cliProgress from 'cli-progress';
import { ConfigError, DataError } from '../errors';
import { embedSource, openEmbedder, type Backend, type Embedder, type EmbedderOutput } from '../export/backend';
import { cohortImageSource, npyImageSource, NpyRowWriter, openTextOutput, type ImageSource } from '../export/images';
import { exportRun } from '../export/run-export';
import { checkOutFile } from '../io/atomic';
import { int, stopSignal } from './args';

/** A count bar on stderr; silent when stderr is not a TTY. */
export function countBar(label: string, total: number): { update: (p: { done: number; total: number }) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ format: `${label} {bar} {value}/{total} images | {ips} img/s | eta {eta_formatted}`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  const t0 = Date.now();
  bar.start(total, 0, { ips: '-' });
  let stopped = false;
  return {
    update: ({ done }) => bar.update(done, { ips: (done / Math.max(1e-3, (Date.now() - t0) / 1000)).toFixed(1) }),
    stop: () => {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}

async function imageSource(o: { images?: string; cohort?: string }): Promise<ImageSource> {
  if (!o.images === !o.cohort) throw new ConfigError('Give exactly one of --images (an N×C×H×W .npy) and --cohort (a cohort directory)');
  return o.images ? npyImageSource(o.images) : cohortImageSource(o.cohort!);
}

async function withEmbedder<T>(o: { model?: string; run?: string; backend?: string; batch?: number; threads?: number }, fn: (e: Embedder) => Promise<T>): Promise<T> {
  if (o.backend !== undefined && o.backend !== 'ort' && o.backend !== 'torch') throw new ConfigError(`Expected ort or torch for --backend but received "${o.backend}"`);
  if (o.batch !== undefined && !(o.batch >= 1)) throw new ConfigError(`Expected a positive integer for --batch but received ${o.batch}`);
  if (o.threads !== undefined && !(o.threads >= 1)) throw new ConfigError(`Expected a positive integer for --threads but received ${o.threads}`);
  const e = await openEmbedder({ model: o.model, run: o.run, backend: o.backend as Backend | undefined, batchSize: o.batch, threads: o.threads });
  try {
    return await fn(e);
  } finally {
    await e.dispose();
  }
}

const csvCell = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
/** float32 values with 9 significant digits (enough to round-trip a float32). */
const num = (v: number): string => String(Number(v.toPrecision(9)));

/**
 * Runs `fill` with a progress bar, then commits the atomic writer; on any
 * error stops the bar, removes the temporary file and rethrows, so the
 * output is either complete or absent.
 */
export async function writeWithProgress<B extends { stop: () => void }>(writer: { commit: () => Promise<unknown>; abort: () => Promise<unknown> }, bar: B, fill: (bar: B) => Promise<unknown>): Promise<void> {
  try {
    await fill(bar);
    bar.stop();
    await writer.commit();
  } catch (err) {
    bar.stop();
    await writer.abort();
    throw err;
  }
}

/** The CSV header of a head's outputs: index, [id,] then p_<class>… and predicted, or the prediction(s). */
export function predictionHeader(head: NonNullable<Embedder['head']>, withIds: boolean): string {
  const idCol = withIds ? ['id'] : [];
  if (head.kind === 'regression') {
    // Named targets by name; one unnamed target is `prediction`, several are prediction_0, prediction_1, …
    const k = head.outputs;
    const names = head.classes.length === k ? head.classes.map((c) => `prediction_${c}`)
      : k === 1 ? ['prediction'] : Array.from({ length: k }, (_, i) => `prediction_${i}`);
    return ['index', ...idCol, ...names.map(csvCell)].join(',');
  }
  return ['index', ...idCol, ...head.classes.map((c) => csvCell(`p_${c}`)), 'predicted'].join(',');
}

/** CSV rows for images start … start + n − 1 (binary: P(negative), P(positive); predicted = logit > 0; multiclass: argmax). */
export function predictionRows(head: NonNullable<Embedder['head']>, out: EmbedderOutput, start: number, n: number, ids?: string[]): string[] {
  const lines: string[] = [];
  const lead = (i: number) => [String(start + i), ...(ids ? [csvCell(ids[start + i])] : [])];
  const values = head.kind === 'regression' ? out.prediction! : out.logits!;
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    const i = start + Math.floor(bad / (values.length / n));
    throw new DataError(`The model's ${head.kind === 'regression' ? 'prediction' : 'logits'} for image ${i}${ids ? ` (id "${ids[i]}")` : ''} are not finite (${values[bad]}); nothing was written`);
  }
  if (head.kind === 'regression') {
    const k = out.prediction!.length / n;
    for (let i = 0; i < n; i++) lines.push([...lead(i), ...Array.from(out.prediction!.subarray(i * k, (i + 1) * k), num)].join(','));
    return lines;
  }
  const k = head.classes.length;
  const width = out.logits!.length / n;
  for (let i = 0; i < n; i++) {
    const logits = out.logits!.subarray(i * width, (i + 1) * width);
    const probs = out.probabilities!.subarray(i * width, (i + 1) * width);
    let p: number[];
    let cls = 0;
    if (head.kind === 'binary') {
      p = [1 - probs[0], probs[0]];
      cls = logits[0] > 0 ? 1 : 0;
    } else {
      p = Array.from(probs);
      for (let c = 1; c < k; c++) if (logits[c] > logits[cls]) cls = c;
    }
    lines.push([...lead(i), ...p.map(num), csvCell(head.classes[cls])].join(','));
  }
  return lines;
}

export function addDeployCommands(program: Command): void {
  program.command('export')
    .description("export a run's image encoder (normalisation baked in, optionally with a probe head) or its tabular encoder to ONNX")
    .requiredOption('--run <dir>', 'a run directory')
    .requiredOption('--out <file.onnx>', 'the ONNX file (written atomically)')
    .option('--with-head <task>', 'append the probe head saved by `tabsight evaluate --save-heads` (RUN/heads/TASK.json)')
    .option('--part <part>', 'image | tabular', 'image')
    .option('--int8', 'a static int8 model (image encoder): calibrated on training images, checked against float32 on validation images')
    .option('--calibration-cohort <dir>', "with --int8: the cohort to calibrate on (default: the run's cohort)")
    .option('--calibration-images <n>', 'with --int8: training images to calibrate on (default: 256)', int('--calibration-images'))
    .option('--agreement-images <n>', 'with --int8: validation images to compare int8 and float32 outputs on (default: 256)', int('--agreement-images'))
    .option('--reduce-range', 'with --int8: 7-bit weights, for x86 CPUs without VNNI, whose int8 kernels can saturate with 8-bit weights')
    .option('--threads <n>', 'with --int8: onnxruntime threads, at most 4× the cores (default: all cores)', int('--threads'))
    .action(async (o) => {
      if (o.part !== 'image' && o.part !== 'tabular') throw new ConfigError(`Expected image or tabular for --part but received "${o.part}"`);
      const int8Only = {
        calibrationCohort: '--calibration-cohort', calibrationImages: '--calibration-images', agreementImages: '--agreement-images', reduceRange: '--reduce-range', threads: '--threads',
      };
      const stray = Object.entries(int8Only).filter(([k]) => o[k] !== undefined).map(([, flag]) => flag);
      if (!o.int8 && stray.length > 0) throw new ConfigError(`${stray.join(', ')} ${stray.length === 1 ? 'applies' : 'apply'} with --int8 only`);
      const quantize = o.int8
        ? { cohort: o.calibrationCohort, calibrationImages: o.calibrationImages, agreementImages: o.agreementImages, threads: o.threads, reduceRange: o.reduceRange === true }
        : undefined;
      const r = await exportRun(o.run, o.out, { part: o.part, withHead: o.withHead, quantize });
      const m = r.metadata;
      const what = r.part === 'tabular'
        ? `tabular encoder, ${m['tabsight.in_features']} inputs → ${m['tabsight.embedding_dim']}`
        : `${m['tabsight.arch']}, ${m['tabsight.in_channels']}×${m['tabsight.image_size'].replace('x', '×')} in [${m['tabsight.input_range']}] → ${m['tabsight.outputs']}`;
      process.stderr.write(`exported ${what}${r.quantization ? ' (int8)' : ''}\n`);
      if (r.quantization) {
        const a = r.quantization.agreement;
        const out = a.maxOutputDiff === undefined ? '' : `; head outputs max |Δ| ${a.maxOutputDiff.toFixed(4)}, mean ${a.meanOutputDiff!.toFixed(4)}`;
        process.stderr.write(
          `int8: calibrated on ${r.quantization.calibrationImages} training images of ${r.quantization.cohort}; on ${a.images} held-out images, ` +
            `embedding cosine to float32 ≥ ${a.minCosine.toFixed(5)} (median ${a.medianCosine.toFixed(5)}), max |Δ| ${a.maxEmbeddingDiff.toPrecision(3)} of values up to ${a.maxEmbedding.toPrecision(3)}${out}\n`,
        );
        const vnni = a.vnni === null ? 'unknown VNNI' : a.vnni ? 'VNNI' : 'no VNNI';
        process.stderr.write(`int8: measured on ${a.cpu} (${vnni})${o.reduceRange ? ', 7-bit weights' : ''}\n`);
        if (a.vnni === false && !o.reduceRange) {
          process.stderr.write('int8: this CPU has no VNNI, so onnxruntime\'s int8 kernels can saturate with 8-bit weights; if the agreement is poor, export with --reduce-range\n');
        }
      }
      process.stdout.write(`${o.out}\n`);
    });

  program.command('embed')
    .description('embed images with an exported model (onnxruntime) or a run (LibTorch, or onnxruntime with --backend ort), streaming in batches')
    .option('--model <file.onnx>', 'an exported model')
    .option('--run <dir>', 'a run directory')
    .option('--images <file.npy>', 'images N×C×H×W (uint8, float16 or float32), read in batches')
    .option('--cohort <dir>', 'instead of --images: every subject of a cohort, in cohort order')
    .requiredOption('--out <file.npy>', 'embeddings N×D float32 (written atomically)')
    .option('--backend <backend>', 'ort | torch (default: ort with --model, torch with --run)')
    .option('--batch <n>', 'images per batch (default: 64 in onnxruntime; in LibTorch on the CPU 16 for images of 128 px and more, or 64 px and more with the small stem, where it measured faster, else 64)', int('--batch'))
    .option('--threads <n>', 'onnxruntime threads, at most 4× the cores (default: all cores)', int('--threads'))
    .action(async (o) => {
      if (!o.run === !o.model) throw new ConfigError('Give exactly one of --run and --model');
      checkOutFile(o.out);
      const src = await imageSource(o);
      const stop = stopSignal('batch');
      try {
        await withEmbedder(o, async (e) => {
          e.check(src);
          const writer = await NpyRowWriter.open(o.out, src.shape[0], e.dim);
          await writeWithProgress(writer, countBar(`embed (${e.backend})`, src.shape[0]), (bar) =>
            embedSource(e, src, { chunk: o.batch ?? 64, onProgress: bar.update, onChunk: (_, out) => writer.write(out.embedding), signal: stop.signal }));
        });
      } finally {
        stop.dispose();
      }
      process.stdout.write(`${o.out}\n`);
    });

  program.command('predict')
    .description('run an exported model with a probe head (export --with-head) on images; writes per-class probabilities and the predicted class (or the prediction) as CSV')
    .requiredOption('--model <file.onnx>', 'a model exported with --with-head')
    .option('--images <file.npy>', 'images N×C×H×W (uint8, float16 or float32)')
    .option('--cohort <dir>', 'instead of --images: every subject of a cohort (adds an id column)')
    .requiredOption('--out <file.csv>', 'the CSV (written atomically)')
    .option('--batch <n>', 'images per batch', int('--batch'), 64)
    .option('--threads <n>', 'onnxruntime threads, at most 4× the cores (default: all cores)', int('--threads'))
    .action(async (o) => {
      checkOutFile(o.out);
      const src = await imageSource(o);
      const stop = stopSignal('batch');
      try {
        await withEmbedder({ ...o, backend: 'ort' }, async (e) => {
          const head = e.head;
          if (!head) throw new ConfigError(`${o.model} has no probe head; export it with \`tabsight export --run RUN --with-head TASK\``);
          e.check(src);
          const writer = await openTextOutput(o.out);
          await writeWithProgress(writer, countBar(`predict ${head.task}`, src.shape[0]), async (bar) => {
            await writer.write(predictionHeader(head, src.ids !== undefined) + '\n');
            await embedSource(e, src, {
              chunk: o.batch, onProgress: bar.update, signal: stop.signal,
              onChunk: async (start, out) => {
                const n = out.embedding.length / out.dim;
                if (n > 0) await writer.write(predictionRows(head, out, start, n, src.ids).join('\n') + '\n');
              },
            });
          });
        });
      } finally {
        stop.dispose();
      }
      process.stdout.write(`${o.out}\n`);
    });
}
