/**
 * `tabsight explain`: attributions for a run's image encoder on the first n
 * test subjects of a cohort, written as attributions.npy, PNG overlays and
 * explain.json (docs/explain.md, "The explain command").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { loadCohort, type Cohort } from '../data/cohort';
import { resizeBilinear } from '../data/cohort-images';
import { writeNpy } from '../data/npy';
import { Preprocessor } from '../data/preprocess';
import { ConfigError, DataError } from '../errors';
import { readHead } from '../export/heads';
import { readRunConfig } from '../export/run-export';
import { writeFileAtomic } from '../io/atomic';
import type { ResolvedPretrainConfig } from '../pretrain-options';
import * as is from '../validate';
import { gradCam, guidedBackprop, guidedGradCam, integratedGradients, noiseTunnel, CAM_LAYERS, type Attribution, type AttributionImages, type CamLayer } from './attribution';
import type { AttributionModel } from './model-source';
import type { ImageTarget } from './targets';

export const EXPLAIN_METHODS = ['ig', 'gradcam', 'guided-backprop', 'guided-gradcam', 'smoothgrad-ig'] as const;
export type ExplainMethod = (typeof EXPLAIN_METHODS)[number];

export interface ExplainRunOptions {
  /** A run directory. */
  run: string;
  /** The cohort directory; its test split is explained. */
  cohort: string;
  method: ExplainMethod;
  /** 'similarity' (multimodal runs), 'task:T' or 'task:T:CLASS' (a saved probe head), 'dim:i'. @default 'similarity' */
  target?: string;
  /** Subjects: the first n of the test split, in cohort order. @default 16 */
  n?: number;
  /** Output directory. @default RUN/explain/<method> */
  out?: string;
  /** IG quadrature points (ig, smoothgrad-ig). @default 50 */
  steps?: number;
  /** GradCAM layer (gradcam, guided-gradcam). @default 'layer4' */
  layer?: CamLayer;
  /** smoothgrad-ig: noisy copies. @default 8 */
  samples?: number;
  /** smoothgrad-ig: noise sd, as a fraction of the normalised images' value range (max − min). @default 0.15 */
  noise?: number;
  /** 'cpu', 'cuda' or 'cuda:N'. @default 'cpu' */
  device?: string;
  log?: (line: string) => void;
}

export interface ExplainRunResult {
  out: string;
  method: ExplainMethod;
  target: string;
  subjects: string[];
  shape: number[];
  /** IG methods: per-image convergence delta Σ attribution − (F(x) − F(baseline)). */
  delta?: number[];
  overlays: string[];
}

type ParsedTarget = { kind: 'similarity' } | { kind: 'task'; task: string; cls?: string } | { kind: 'dim'; index: number };

/** Parses --target; unknown kinds are a ConfigError naming the target. */
export function parseExplainTarget(value: string): ParsedTarget {
  const s = String(value);
  if (s === 'similarity') return { kind: 'similarity' };
  let m = /^dim:(\d+)$/.exec(s);
  if (m) return { kind: 'dim', index: Number(m[1]) };
  m = /^task:([^:]+)(?::(.+))?$/.exec(s);
  if (m) return { kind: 'task', task: m[1], cls: m[2] };
  throw new ConfigError(`Unknown explain target "${s}": expected similarity, task:T (or task:T:CLASS) or dim:i`);
}

function checkMethod(value: unknown): ExplainMethod {
  if (typeof value !== 'string' || !(EXPLAIN_METHODS as readonly string[]).includes(value)) {
    throw new ConfigError(`Unknown explain method "${String(value)}": expected one of ${EXPLAIN_METHODS.join(', ')}`);
  }
  return value as ExplainMethod;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Reads cohort rows from the NPY store as floats in the run's input range
 * (uint8 / 255; float stores as stored), one row at a time.
 */
function readRows(cohort: Cohort, rows: readonly number[]): { data: Float32Array; shape: [number, number, number, number] } {
  const { path: file, offset, dtype, shape } = cohort.images;
  const [, c, h, w] = shape;
  const per = c * h * w;
  const bytes = dtype === 'uint8' ? 1 : dtype === 'float16' ? 2 : 4;
  const out = new Float32Array(rows.length * per);
  const buf = Buffer.alloc(per * bytes);
  const fd = fs.openSync(file, 'r');
  try {
    rows.forEach((r, i) => {
      fs.readSync(fd, buf, 0, buf.length, offset + r * per * bytes);
      const o = i * per;
      if (dtype === 'uint8') for (let k = 0; k < per; k++) out[o + k] = buf[k] / 255;
      else if (dtype === 'float16') for (let k = 0; k < per; k++) out[o + k] = halfToFloat(buf.readUInt16LE(2 * k));
      else for (let k = 0; k < per; k++) out[o + k] = buf.readFloatLE(4 * k);
    });
  } finally {
    fs.closeSync(fd);
  }
  return { data: out, shape: [rows.length, c, h, w] };
}

/** Resizes to the run's image size (bilinear) and applies its normalize, as training did. */
function prepareImages(raw: { data: Float32Array; shape: number[] }, config: ResolvedPretrainConfig): { unit: Float32Array; images: AttributionImages } {
  const [n, c, h, w] = raw.shape;
  const size = config.imageSize ?? h;
  let unit = raw.data;
  if (size !== h || size !== w) {
    unit = new Float32Array(n * c * size * size);
    for (let i = 0; i < n; i++) unit.set(resizeBilinear(raw.data.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, size, size), i * c * size * size);
  }
  const { mean, std } = config.normalize;
  if (mean.length !== c || std.length !== c) throw new DataError(`The run normalises ${mean.length} channels but the cohort's images have ${c}`);
  const plane = size * size;
  const data = new Float32Array(unit.length);
  for (let k = 0; k < unit.length; k++) {
    const ch = Math.floor(k / plane) % c;
    data[k] = (unit[k] - mean[ch]) / std[ch];
  }
  return { unit, images: { data, shape: [n, c, size, size] } };
}

function headTarget(runDir: string, t: { task: string; cls?: string }): { target: ImageTarget; describe: Record<string, unknown> } {
  const file = path.join(runDir, 'heads', `${t.task}.json`);
  if (!fs.existsSync(file)) {
    throw new ConfigError(`No probe head for task "${t.task}": ${file} is missing; run tabsight evaluate --run ${runDir} --save-heads first`);
  }
  const h = readHead(runDir, t.task);
  const k = h.bias.length;
  let index: number;
  if (t.cls !== undefined) {
    index = h.classes.indexOf(t.cls);
    if (index < 0 && /^\d+$/.test(t.cls) && Number(t.cls) < h.classes.length) index = Number(t.cls);
    if (index < 0) throw new ConfigError(`Unknown class "${t.cls}" in target task:${t.task}:${t.cls}: the head's classes are ${h.classes.join(', ') || '(none: a regression head)'}`);
    if (index >= k) index = k === 1 ? 0 : index; // a binary head with one logit scores the positive class
  } else if (k === 1) {
    index = 0;
  } else if (h.kind === 'binary' && k === 2) {
    index = 1;
  } else {
    throw new ConfigError(`The ${t.task} head has ${k} classes (${h.classes.join(', ')}): name one as task:${t.task}:CLASS`);
  }
  return {
    target: { kind: 'probe', weight: { data: Float32Array.from(h.weight), shape: [k, h.dim] }, bias: Float32Array.from(h.bias), index },
    describe: { head: file, task: t.task, kind: h.kind, logit: index, class: h.classes[index] ?? null },
  };
}

function similarityTarget(runDir: string, config: ResolvedPretrainConfig, cohort: Cohort, rows: number[]): { target: ImageTarget; describe: Record<string, unknown>; warnings: string[] } {
  if (config.mode !== 'multimodal') throw new ConfigError(`Target similarity needs a multimodal run, but ${runDir} was trained in ${config.mode} mode: use dim:i or task:T`);
  const file = path.join(runDir, 'preprocessor.json');
  if (!fs.existsSync(file)) throw new ConfigError(`Target similarity needs the run's ${file} (runs pretrained on a cohort keep it)`);
  const prep = Preprocessor.fromJSON(fs.readFileSync(file, 'utf8'));
  const t = prep.transform(cohort, rows);
  return {
    target: { kind: 'similarity', pairedTabular: { data: t.data, shape: t.shape } },
    describe: { preprocessor: file, features: t.shape[1] },
    warnings: t.warnings,
  };
}

/** Blue → cyan → yellow → red. */
function heatColour(v: number): [number, number, number] {
  const stops: [number, number, number][] = [[0, 0, 128], [0, 160, 255], [255, 230, 0], [230, 0, 0]];
  const x = Math.min(1, Math.max(0, v)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]))) as [number, number, number];
}

/** Channel 0 in grey with the |attribution| heat map (summed over channels, scaled to its max) blended in. */
async function writeOverlay(file: string, grey: Float32Array, heat: Float32Array, size: number): Promise<void> {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of grey) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  let top = 0;
  for (const v of heat) top = Math.max(top, v);
  const px = Buffer.alloc(size * size * 3);
  for (let k = 0; k < size * size; k++) {
    const g = hi > lo ? (grey[k] - lo) / (hi - lo) : 0;
    const a = top > 0 ? heat[k] / top : 0;
    const col = heatColour(a);
    const alpha = 0.6 * a;
    for (let ch = 0; ch < 3; ch++) px[k * 3 + ch] = Math.round((1 - alpha) * 255 * g + alpha * col[ch]);
  }
  const scale = Math.max(1, Math.floor(256 / size));
  await sharp(px, { raw: { width: size, height: size, channels: 3 } })
    .resize(size * scale, size * scale, { kernel: 'nearest' })
    .png()
    .toFile(file);
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 64);
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** Runs one attribution method on the first n test subjects and writes its files. */
export async function explainRun(options: ExplainRunOptions): Promise<ExplainRunResult> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, 'options', ['run', 'cohort', 'method', 'target', 'n', 'out', 'steps', 'layer', 'samples', 'noise', 'device', 'log']);
  const method = checkMethod(o.method);
  const targetSpec = is.string(o.target ?? 'similarity', 'target');
  const parsed = parseExplainTarget(targetSpec);
  const n = is.positiveInteger(o.n ?? 16, 'n');
  const steps = is.positiveInteger(o.steps ?? 50, 'steps');
  const layer = is.oneOf(o.layer ?? 'layer4', 'layer', CAM_LAYERS);
  const samples = is.positiveInteger(o.samples ?? 8, 'samples');
  const noise = is.nonNegativeNumber(o.noise ?? 0.15, 'noise');
  const log = options.log ?? (() => undefined);
  const runDir = path.resolve(is.string(o.run, 'run'));
  const config = readRunConfig(runDir);
  const out = path.resolve(options.out ?? path.join(runDir, 'explain', method));
  const device = options.device ?? 'cpu';

  const cohort = await loadCohort(is.string(o.cohort, 'cohort'), { scanImages: false });
  const rows = cohort.splits.test.slice(0, n);
  if (rows.length === 0) throw new DataError(`${cohort.dir} has no test subjects to explain`);
  const ids = rows.map((r) => cohort.ids[r]);

  let target: ImageTarget;
  let describe: Record<string, unknown>;
  if (parsed.kind === 'dim') {
    target = { kind: 'feature', index: parsed.index };
    describe = { dim: parsed.index };
  } else if (parsed.kind === 'task') {
    ({ target, describe } = headTarget(runDir, parsed));
  } else {
    const s = similarityTarget(runDir, config, cohort, rows);
    for (const w of s.warnings) log(`warning: ${w}`);
    ({ target, describe } = s);
  }

  const { unit, images } = prepareImages(readRows(cohort, rows), config);
  const [m, c, size] = images.shape;
  const model: AttributionModel = { path: runDir, device };
  log(`${method} on ${m} test subjects of ${cohort.name} (target ${targetSpec})`);
  let result: Attribution;
  let settings: Record<string, unknown>;
  switch (method) {
    case 'ig':
      settings = { quadrature: 'gausslegendre', steps, baseline: 'zeros' };
      result = await integratedGradients(model, images, { target, steps, baseline: 'zeros' });
      break;
    case 'smoothgrad-ig': {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of images.data) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const stdev = noise * (hi - lo);
      settings = { wrapped: 'integratedGradients', quadrature: 'gausslegendre', steps, baseline: 'zeros', type: 'smoothgrad', samples, noise, stdev, seed: 0 };
      result = await noiseTunnel(model, images, { target, method: 'integratedGradients', methodOptions: { steps }, type: 'smoothgrad', samples, stdev, seed: 0 });
      break;
    }
    case 'gradcam':
      settings = { layer, relu: true, upsample: 'none' };
      result = await gradCam(model, images, { target, layer, relu: true });
      break;
    case 'guided-backprop':
      settings = {};
      result = await guidedBackprop(model, images, { target });
      break;
    case 'guided-gradcam':
      settings = { layer };
      result = await guidedGradCam(model, images, { target, layer });
      break;
  }

  await fs.promises.mkdir(path.join(out, 'overlays'), { recursive: true });
  await writeNpy(path.join(out, 'attributions.npy'), result.attributions, result.shape);
  const [, ac, ah, aw] = result.shape;
  const overlays: string[] = [];
  for (let i = 0; i < m; i++) {
    const a = result.attributions.subarray(i * ac * ah * aw, (i + 1) * ac * ah * aw);
    let heat: Float32Array = new Float32Array(ah * aw);
    for (let ch = 0; ch < ac; ch++) for (let k = 0; k < ah * aw; k++) heat[k] += Math.abs(a[ch * ah * aw + k]);
    if (ah !== size || aw !== size) heat = resizeBilinear(heat, 1, ah, aw, size, size);
    const name = `${String(i).padStart(3, '0')}_${safeName(ids[i])}.png`;
    await writeOverlay(path.join(out, 'overlays', name), unit.subarray(i * c * size * size, i * c * size * size + size * size), heat, size);
    overlays.push(name);
  }

  const res: ExplainRunResult = { out, method, target: targetSpec, subjects: ids, shape: [...result.shape], overlays };
  const json: Record<string, unknown> = {
    format: 'tabsight-explain',
    version: 1,
    run: runDir,
    cohort: cohort.dir,
    split: 'test',
    method,
    target: { spec: targetSpec, ...describe },
    settings: { ...settings, device, imageSize: size, normalize: config.normalize },
    subjects: ids,
    rows,
    shape: result.shape,
    attributions: 'attributions.npy',
    overlays: overlays.map((f) => `overlays/${f}`),
  };
  if (result.delta) {
    res.delta = [...result.delta];
    Object.assign(json, {
      delta: [...result.delta].map(finiteOrNull),
      scores: result.scores ? [...result.scores].map(finiteOrNull) : undefined,
      baselineScores: result.baselineScores ? [...result.baselineScores].map(finiteOrNull) : undefined,
    });
  }
  await writeFileAtomic(path.join(out, 'explain.json'), JSON.stringify(json, null, 1) + '\n');
  log(`wrote ${path.join(out, 'attributions.npy')} [${result.shape.join(', ')}], ${overlays.length} overlays and explain.json`);
  return res;
}
