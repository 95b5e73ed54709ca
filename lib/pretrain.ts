/**
 * pretrain(): contrastive (or supervised) pretraining of an image encoder in
 * the native core, writing a run directory:
 *
 *   RUN/config.json                resolved configuration
 *   RUN/checkpoint.safetensors     weights, optimiser, position (atomic)
 *   RUN/image_encoder.safetensors  torchvision names, written at the end
 *   RUN/metrics.jsonl              one JSON line per epoch
 *
 * With `distributed`, every rank calls pretrain() with the same options;
 * rank 0 alone locks the run directory and writes these files.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from './binding';
import { readNpyHeader } from './data/npy';
import { AbortError, BusyError, ConfigError, DataError, ShapeError, TabsightError, awaitNative, callNative } from './errors';
import { cleanUpAtExit, ensureOutDir, writeFileAtomicSync, writeReason } from './io/atomic';
import { processAlive } from './io/process';
import { readSafetensorsHeaderSync } from './io/safetensors';
import { readRunConfigFile } from './run-config';
import { ImageFacts, PretrainOptions, ResolvedPretrainConfig, RESUME_INVARIANT, resolvePretrainOptions } from './pretrain-options';
import { channelStats, imageValueRange } from './image-stats';
import * as is from './validate';

export * from './pretrain-options';

/** What onProgress receives after every training step. */
export interface TrainProgress {
  epoch: number;
  step: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  loss: number;
  lr: number;
  imagesPerSec: number;
  epochDone: boolean;
  /** Mean loss over the epoch, when epochDone. */
  epochLoss?: number;
  /** In-batch top-1 retrieval accuracy over the epoch, when epochDone. */
  retrievalTop1?: number;
  /** This epoch's checkpoint is on disk. */
  checkpointed?: boolean;
}

export interface PretrainControl {
  onProgress?: (progress: TrainProgress) => void;
  signal?: AbortSignal;
  /**
   * Called once the run directory is locked and its config.json written,
   * before training (rank 0 only): files written here belong to the run
   * before its encoder can exist (pretrainCohort's preprocessor.json).
   */
  beforeTraining?: (out: string) => void | Promise<void>;
}

interface NativeImages {
  images: { data: Uint8Array | Float32Array; shape: number[] } | { path: string; offset: number; dtype: string; shape: number[] };
  facts: ImageFacts;
}

async function prepareImages(input: PretrainOptions['images']): Promise<NativeImages> {
  const obj = input as unknown;
  if (typeof obj !== 'object' || obj === null) throw new ConfigError('Expected an object for images');
  if ('npy' in (obj as object)) {
    const file = (input as { npy: string }).npy;
    const h = await readNpyHeader(file);
    if (h.dtype !== 'uint8' && h.dtype !== 'float16' && h.dtype !== 'float32') {
      throw new DataError(`Expected uint8, float16 or float32 images in ${file} but found ${h.dtype}; convert the store first`);
    }
    if (h.shape.length !== 4) throw new DataError(`Expected images of rank 4 [N, C, H, W] in ${file} but found shape [${h.shape.join(', ')}]`);
    const [n, c, hh, w] = h.shape;
    return { images: { path: path.resolve(file), offset: h.dataOffset, dtype: h.dtype, shape: [...h.shape] }, facts: { n, channels: c, height: hh, width: w, dtype: h.dtype } };
  }
  const { data, shape } = input as { data: unknown; shape: unknown };
  if (!(data instanceof Uint8Array) && !(data instanceof Float32Array)) {
    throw new ShapeError(`Expected Uint8Array or Float32Array for images.data but received ${describeArray(data)}`);
  }
  if (!Array.isArray(shape) || shape.length !== 4 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new ShapeError(`Expected images.shape [N, C, H, W] of positive integers but received ${JSON.stringify(shape)}`);
  }
  const [n, c, h, w] = shape as number[];
  if (data.length !== n * c * h * w) {
    throw new ShapeError(`Expected ${n * c * h * w} values for images.data (shape [${shape.join(', ')}]) but received ${data.length}`);
  }
  if (data instanceof Float32Array) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        const per = c * h * w;
        throw new DataError(`images.data holds ${data[i]} at image ${Math.floor(i / per)} (flat index ${i})`);
      }
    }
  }
  return { images: { data, shape: [n, c, h, w] }, facts: { n, channels: c, height: h, width: w, dtype: data instanceof Uint8Array ? 'uint8' : 'float32' } };
}

function describeArray(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (Array.isArray(v)) return 'an Array';
  return v === null ? 'null' : typeof v;
}

function prepareTabular(options: PretrainOptions, n: number, config: ResolvedPretrainConfig) {
  const t = options.tabular;
  if (!t) {
    if (config.mode === 'multimodal') throw new ConfigError('mode multimodal needs tabular data (options.tabular)');
    return undefined;
  }
  if (!(t.data instanceof Float32Array)) throw new ShapeError(`Expected Float32Array for tabular.data but received ${describeArray(t.data)}`);
  const shape = t.shape as number[];
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ShapeError(`Expected tabular.shape [N, F] of positive integers but received ${JSON.stringify(shape)}`);
  }
  const [rows, f] = shape;
  if (rows !== n) throw new ShapeError(`Expected ${n} tabular rows (one per image) but received ${rows}`);
  if (t.data.length !== rows * f) throw new ShapeError(`Expected ${rows * f} values for tabular.data but received ${t.data.length}`);
  const card = t.cardinalities ? [...t.cardinalities] : new Array<number>(f).fill(0);
  if (card.length !== f || card.some((k) => !Number.isInteger(k) || k < 0 || k > is.MAX_CARDINALITY)) {
    throw new ShapeError(`Expected ${f} integers between 0 and ${is.MAX_CARDINALITY} for tabular.cardinalities`);
  }
  for (let i = 0; i < t.data.length; i++) {
    const v = t.data[i];
    const col = i % f;
    const row = Math.floor(i / f);
    const name = t.names?.[col] ?? `column ${col}`;
    if (!Number.isFinite(v)) throw new DataError(`tabular.data holds ${v} at row ${row}, ${name}`);
    if (card[col] > 0 && (!Number.isInteger(v) || v < -1 || v >= card[col])) {
      throw new DataError(`tabular.data holds category code ${v} at row ${row}, ${name}; expected an integer in [-1, ${card[col]})`);
    }
  }
  if (t.names && t.names.length !== f) throw new ShapeError(`Expected ${f} tabular.names but received ${t.names.length}`);
  config.data.tabularFeatures = f;
  config.data.cardinalities = card;
  config.data.featureNames = t.names ? [...t.names] : null;
  return { data: t.data, shape: [rows, f], cardinalities: card };
}

function prepareRows(options: PretrainOptions, storeN: number): Int32Array | undefined {
  if (options.rows === undefined) return undefined;
  const rows = options.rows instanceof Int32Array ? options.rows : Int32Array.from(options.rows as number[]);
  for (let i = 0; i < rows.length; i++) {
    const v = (options.rows as ArrayLike<number>)[i];
    if (!Number.isInteger(v) || v < 0 || v >= storeN) throw new ShapeError(`rows[${i}] is ${v}; expected an image index in [0, ${storeN})`);
  }
  if (rows.length < 2) throw new ShapeError(`Expected at least 2 rows but received ${rows.length}`);
  return rows;
}

function prepareTargets(options: PretrainOptions, n: number, config: ResolvedPretrainConfig): Float32Array | undefined {
  if (options.targets === undefined) return undefined;
  if (config.mode !== 'supervised') throw new ConfigError('targets apply to mode supervised only');
  if (options.labels !== undefined) throw new ConfigError('Give labels or targets, not both');
  const targets = Float32Array.from(options.targets as ArrayLike<number>);
  if (targets.length !== n) throw new ShapeError(`Expected ${n} targets (one per image) but received ${targets.length}`);
  targets.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new DataError(`targets[${i}] is ${v}; expected a finite number`);
  });
  config.numClasses = 1;
  config.target = 'regression';
  return targets;
}

function prepareLabels(options: PretrainOptions, n: number, config: ResolvedPretrainConfig): Int32Array | undefined {
  if (options.labels === undefined) {
    if (config.mode === 'supervised' && config.target !== 'regression') throw new ConfigError('mode supervised needs labels (options.labels) or targets');
    if (config.loss.removeFalseNegatives) throw new ConfigError('loss.removeFalseNegatives needs labels (options.labels)');
    return undefined;
  }
  const labels = options.labels instanceof Int32Array ? options.labels : Int32Array.from(options.labels as number[]);
  if (labels.length !== n) throw new ShapeError(`Expected ${n} labels (one per image) but received ${labels.length}`);
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const v = (options.labels as ArrayLike<number>)[i];
    if (!Number.isInteger(v) || v < 0) throw new DataError(`labels[${i}] is ${v}; expected a class index ≥ 0`);
    max = Math.max(max, v);
  }
  config.numClasses = max + 1;
  config.target = 'classes';
  if (config.mode === 'supervised' && config.numClasses < 2) throw new DataError('labels hold a single class; supervised pretraining needs at least 2');
  return labels;
}

/** The locks this process holds: a lock naming this pid and host is ours only if it is here. */
const heldLocks = new Set<string>();

/**
 * Who holds RUN/.lock: `HOST PID` (older locks hold the pid alone, and
 * count as this host's), or undefined when there is no lock.
 */
export function runLockOwner(dir: string): { host: string; pid: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, '.lock'), 'utf8').trim();
  } catch {
    return undefined;
  }
  const m = /^(?:(\S+) )?(\d+)$/.exec(text);
  return { host: m?.[1] ?? os.hostname(), pid: m ? Number(m[2]) : NaN };
}

/**
 * Takes RUN/.lock (`HOST PID`), or throws BusyError when a live process
 * holds it. A lock of this host whose process is gone is stale and taken
 * over; so is one naming this very pid that this process does not hold (a
 * rerun in a PID namespace can get the dead process's pid). A lock of
 * another host cannot be checked from here and is BusyError naming the host.
 */
function lockRun(dir: string): () => void {
  const lock = path.join(dir, '.lock');
  const host = os.hostname();
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, `${host} ${process.pid}`, { flag: 'wx' });
      heldLocks.add(lock);
      return () => {
        heldLocks.delete(lock);
        fs.rmSync(lock, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`Cannot lock run directory ${dir}: ${writeReason(err, lock)}`, { cause: err });
      const owner = runLockOwner(dir);
      if (owner && owner.host !== host) {
        throw new BusyError(`Run directory ${dir} is locked by process ${owner.pid} on host ${owner.host}; if that process is gone (a job killed on another node), delete ${lock}`);
      }
      const pid = owner?.pid ?? NaN;
      const alive = pid === process.pid ? heldLocks.has(lock) : processAlive(pid);
      if (alive) throw new BusyError(`Run directory ${dir} is in use by a training (process ${pid}); wait for it or choose another out`);
      fs.rmSync(lock, { force: true }); // a stale lock from a process that died
    }
  }
  throw new BusyError(`Could not lock run directory ${dir}`);
}

/**
 * The temporary files of a run directory's atomic writes (the trainer's
 * `checkpoint.safetensors.tmp-PID-N` and `image_encoder.safetensors.tmp-PID-N`,
 * and `.config.json.tmp-PID-HEX` style files of this library), of process
 * `pid` or of any process. A process killed mid-write leaves them.
 */
function runTemps(dir: string, pid?: number): string[] {
  const own = /^(?:(?:checkpoint|image_encoder)\.safetensors\.tmp-(\d+)-\d+|\.(?:config\.json|metrics\.jsonl|preprocessor\.json)\.tmp-(\d+)-[0-9a-f]+|\.image_encoder\.safetensors\.previous-(\d+))$/;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => {
    const m = own.exec(n);
    return m !== null && (pid === undefined || Number(m[1] ?? m[2] ?? m[3]) === pid);
  }).map((n) => path.join(dir, n));
}

function removeAll(files: string[]): void {
  for (const f of files) fs.rmSync(f, { force: true });
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Pretrains an image encoder and returns the run directory. Rejects with
 * AbortError when `signal` fires (the checkpoint then holds the exact
 * position; pass `resume: true` to continue), and with the matching
 * TabsightError for bad input.
 */
export async function pretrain(options: PretrainOptions, control: PretrainControl = {}): Promise<string> {
  const opts = options ?? ({} as PretrainOptions);
  if (typeof opts.out !== 'string' || opts.out.length === 0) throw new ConfigError(`Expected non-empty string for out but received ${JSON.stringify(opts.out)}`);
  if (control.onProgress !== undefined && typeof control.onProgress !== 'function') throw new ConfigError('Expected a function for onProgress');
  if (control.signal?.aborted) throw new AbortError('Training was aborted before it started');
  if (opts.threads !== undefined) {
    const threads = is.positiveInteger(opts.threads, 'threads');
    callNative(() => native().setThreads(threads));
  }
  if (opts.dataThreads !== undefined) {
    const dataThreads = is.integer(opts.dataThreads, 'dataThreads', 0, 1024);
    callNative(() => native().setDataThreads(dataThreads));
  }
  const prepared = await prepareImages(opts.images);
  const rows = prepareRows(opts, prepared.facts.n);
  const normalize = opts.normalize === undefined || opts.normalize === 'auto'
    ? await channelStats(opts.images, prepared.facts, rows)
    : { mean: [...opts.normalize.mean], std: [...opts.normalize.std] };
  // The colour augmentations clamp to augment.valueRange, [0, 1] by default:
  // what a uint8 store is after scaling. A float32 store (converted NIfTI,
  // DICOM or PNG, in their own units) gets its own range instead, or every
  // jittered view would be clipped to [0, 1].
  const augmentGiven = opts.augment === undefined || opts.augment === null || typeof opts.augment !== 'object' ? undefined : opts.augment;
  const ownRange = prepared.facts.dtype !== 'uint8' && augmentGiven?.valueRange === undefined && augmentGiven?.rate !== 0
    ? await imageValueRange(opts.images, prepared.facts, rows, opts.scanImages ?? true)
    : undefined;
  const config = resolvePretrainOptions(ownRange ? { ...opts, augment: { ...(augmentGiven ?? {}), valueRange: ownRange } } : opts, prepared.facts, normalize);
  const n = rows ? rows.length : prepared.facts.n;
  const tabular = prepareTabular(opts, n, config);
  const targets = prepareTargets(opts, n, config);
  const labels = prepareLabels(opts, n, config);
  if (config.initWeights && !fs.existsSync(config.initWeights)) throw new ConfigError(`initWeights: ${config.initWeights} does not exist`);
  config.data.trainRows = n;
  if (opts.resume !== undefined && typeof opts.resume !== 'boolean') throw new ConfigError(`Expected boolean for resume but received ${JSON.stringify(opts.resume)}`);

  const out = path.resolve(opts.out);
  const madeOut = ensureOutDir(out);
  // Rank 0 owns the run directory; the other ranks only read it (to resume).
  const root = (config.distributed?.rank ?? 0) === 0;
  const unlock = root ? lockRun(out) : () => undefined;
  // Under the lock no other process writes here: every temporary file is a
  // killed process's. This process's own go when it dies of a signal.
  if (root) removeAll(runTemps(out));
  const forgetTemps = root ? cleanUpAtExit(() => removeAll(runTemps(out, process.pid))) : () => undefined;
  let setupFailed = false;
  let finished = false;
  try {
    const checkpoint = path.join(out, 'checkpoint.safetensors');
    const configFile = path.join(out, 'config.json');
    const encoderFile = path.join(out, 'image_encoder.safetensors');
    let resumeFrom = '';
    let resumeEpoch = 0;
    if (opts.resume) {
      if (!fs.existsSync(checkpoint)) throw new ConfigError(`Cannot resume: ${checkpoint} does not exist`);
      const saved = readRunConfigFile(configFile, `Cannot resume: ${configFile} does not exist`);
      // The default warm-up follows epochs (min(10, ⌊epochs/10⌋)), so asking
      // for more epochs would change it: a resume without an explicit
      // warmupEpochs keeps the saved run's.
      if (opts.warmupEpochs === undefined && typeof saved.warmupEpochs === 'number' && saved.warmupEpochs < config.epochs) config.warmupEpochs = saved.warmupEpochs;
      // A clamp range that was not given is the saved run's (runs made before
      // float32 stores got their own range keep [0, 1]).
      const savedRange = (saved.augment as { valueRange?: unknown } | undefined)?.valueRange;
      if (augmentGiven?.valueRange === undefined && Array.isArray(savedRange) && savedRange.length === 2 && savedRange.every((v) => typeof v === 'number')) {
        config.augment = { ...config.augment, valueRange: [savedRange[0], savedRange[1]] };
      }
      for (const key of RESUME_INVARIANT) {
        const k = key as keyof ResolvedPretrainConfig;
        if (!sameJson(saved[k], config[k])) {
          throw new ConfigError(`Cannot resume ${out}: ${key} differs from the saved run (${JSON.stringify(saved[k])} vs ${JSON.stringify(config[k])})`);
        }
      }
      resumeFrom = checkpoint;
      // Checked before anything of the run is touched: a checkpoint the trainer would refuse leaves the run as it was.
      resumeEpoch = readPosition(checkpoint, config.epochs);
    } else if (fs.existsSync(checkpoint)) {
      throw new ConfigError(`${out} already holds a run; pass resume: true to continue it, or choose another out`);
    } else if (fs.existsSync(encoderFile)) {
      throw new ConfigError(`${out} already holds a finished run (${encoderFile}, without a checkpoint to resume); choose another out, or remove the run first`);
    }
    const configJson = JSON.stringify(config, null, 2);
    const hadConfig = fs.existsSync(configFile);
    const present = root ? new Set(fs.readdirSync(out)) : new Set<string>();
    const metricsFile = path.join(out, 'metrics.jsonl');
    // What a resume changes before the trainer has read the checkpoint, to
    // put back if it refuses it: the run stays as it was.
    const previous = root && resumeFrom ? {
      config: fs.readFileSync(configFile),
      metrics: fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile) : undefined,
      encoder: fs.existsSync(encoderFile) ? path.join(out, `.image_encoder.safetensors.previous-${process.pid}`) : undefined,
    } : undefined;
    let progressed = false;
    if (root) writeFileAtomicSync(configFile, configJson + '\n');

    try {
      if (root && control.beforeTraining) await control.beforeTraining(out);
      await train();
      if (previous?.encoder) fs.rmSync(previous.encoder, { force: true });
    } catch (err) {
      if (previous && !progressed) {
        if (previous.encoder && fs.existsSync(previous.encoder)) fs.renameSync(previous.encoder, encoderFile);
        writeFileAtomicSync(configFile, previous.config);
        if (previous.metrics) writeFileAtomicSync(metricsFile, previous.metrics);
        else fs.rmSync(metricsFile, { force: true });
        // The trainer's own message names a tensor or a shape, not the file.
        if (err instanceof TabsightError && !(err instanceof AbortError)) {
          err.message = `${err.message.includes(checkpoint) ? '' : `Cannot resume from ${checkpoint}: `}${err.message} (the run is left as it was)`;
        }
      } else if (previous?.encoder) {
        fs.rmSync(previous.encoder, { force: true });
      }
      // A failure before the first checkpoint (the device, the initial
      // weights, the data): take back the config.json this call wrote, and
      // what beforeTraining wrote, so no half-made run is left behind for
      // other commands to misread.
      if (root && !hadConfig && !fs.existsSync(checkpoint)) {
        for (const f of fs.readdirSync(out)) if (!present.has(f) && f !== '.lock') fs.rmSync(path.join(out, f), { recursive: true, force: true });
        setupFailed = true;
      }
      throw err;
    }
    finished = true;
    return out;

    async function train(): Promise<void> {
      // cuBLAS is deterministic only with a fixed workspace, which it reads
      // from this variable when it first starts in the process (PyTorch's
      // deterministic mode also refuses cuBLAS calls without it).
      if (config.deterministic && config.device !== 'cpu' && process.env.CUBLAS_WORKSPACE_CONFIG === undefined) {
        process.env.CUBLAS_WORKSPACE_CONFIG = ':4096:8';
      }
      const job = callNative(() => new (native().TrainingJob)(
        { ...config, outDir: out, configJson, initWeights: config.initWeights ?? undefined },
        { images: prepared.images, tabular, labels, targets, rows, scanImages: opts.scanImages ?? true },
      ));
      // The native trainer appends one line per epoch; a resumed run drops the
      // lines of epochs it will redo.
      if (root) {
        const kept = keepMetricsBefore(metricsFile, resumeEpoch);
        if (kept.length) writeFileAtomicSync(metricsFile, kept.join('\n') + '\n');
        else fs.rmSync(metricsFile, { force: true });
        // A resumed run is unfinished until it ends again: the image encoder
        // of its previous end would otherwise be exported, embedded and
        // evaluated as this run's. The trainer writes the new one at the end.
        // Set aside, not removed, until the trainer has taken the checkpoint.
        if (previous?.encoder) fs.renameSync(encoderFile, previous.encoder);
      }
      let callbackError: unknown;
      const onAbort = () => job.abort();
      control.signal?.addEventListener('abort', onAbort);
      try {
        const summary = await awaitNative(job.run((p: TrainProgress) => {
          if (!progressed) {
            // The trainer has taken the checkpoint and moved on: the previous end's encoder is gone for good.
            progressed = true;
            if (previous?.encoder) fs.rmSync(previous.encoder, { force: true });
          }
          if (callbackError === undefined && control.onProgress) {
            try {
              control.onProgress(p);
            } catch (err) {
              callbackError = err;
              job.abort();
            }
          }
        }, resumeFrom) as Promise<{ aborted: boolean; stepsDone: number }>);
        if (summary.aborted) {
          if (callbackError !== undefined) {
            throw new AbortError(`Training stopped because onProgress threw: ${(callbackError as Error)?.message ?? String(callbackError)}; the checkpoint in ${out} is valid`, { cause: callbackError });
          }
          throw new AbortError(`Training was aborted after step ${summary.stepsDone}; the checkpoint in ${out} is valid (resume: true continues it)`);
        }
      } finally {
        control.signal?.removeEventListener('abort', onAbort);
      }
    }
  } finally {
    forgetTemps();
    if (root) removeAll(runTemps(out, process.pid)); // a write the trainer abandoned on an error
    unlock();
    // A folder this call made and left empty goes (a failed setup, a resume of a run that is not there).
    if ((setupFailed || !finished) && madeOut !== undefined) {
      // The folders this call made, from out up to the first of them, while they are empty.
      for (let d = out; ; d = path.dirname(d)) {
        try {
          fs.rmdirSync(d);
        } catch {
          break; // something is in it: keep it
        }
        if (d === madeOut || path.dirname(d) === d) break;
      }
    }
  }
}


/**
 * The epoch a checkpoint resumes at, read from its metadata header, checked
 * as the trainer will check it: at most `epochs`, and every tensor's bytes
 * inside the file (DataError naming the file otherwise).
 */
function readPosition(checkpoint: string, epochs: number): number {
  const bad = (why: string, cause?: unknown) => new DataError(`Cannot resume: ${checkpoint} is not a valid checkpoint: ${why}`, { cause });
  // The header as every safetensors reader checks it, against the data the file holds (a truncated file fails here).
  const { metadata: meta } = readSafetensorsHeaderSync(checkpoint, bad);
  const epoch = Number(meta.epoch ?? 0);
  if (!(Number.isInteger(epoch) && epoch >= 0)) throw bad(`its metadata epoch ${JSON.stringify(meta.epoch)} is not a non-negative integer`);
  if (epoch > epochs) throw bad(`it is at epoch ${epoch}, past the ${epochs} epoch(s) asked for (resume with at least ${epoch})`);
  return epoch;
}

/** metrics.jsonl lines of epochs before `epoch` (a resumed run rewrites the rest). */
function keepMetricsBefore(file: string, epoch: number): string[] {
  if (epoch === 0 || !fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return (JSON.parse(line) as { epoch: number }).epoch < epoch;
    } catch {
      return false;
    }
  });
}
