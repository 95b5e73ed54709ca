/**
 * What the explain and compare commands feed a run's encoders: cohort images
 * read from the NPY store and prepared as the run was trained (scaled,
 * resized, normalised), and the targets they explain (a saved probe head, or
 * the image–tabular similarity with each subject's own preprocessed row).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cohort } from '../data/cohort';
import { decodeImageBytes, imageItemBytes, nonFiniteImageError, resizeBilinear } from '../data/cohort-images';
import { Preprocessor } from '../data/preprocess';
import { ConfigError, DataError } from '../errors';
import { readHead } from '../export/heads';
import type { ResolvedPretrainConfig } from '../pretrain-options';
import type { AttributionImages } from './attribution';
import type { ImageTarget } from './targets';

export type ParsedTarget = { kind: 'similarity' } | { kind: 'task'; task: string; cls?: string } | { kind: 'dim'; index: number };

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

/**
 * Reads cohort rows from the NPY store as floats in the run's input range
 * (uint8 / 255; float stores as stored), one row at a time.
 */
export function readCohortImages(cohort: Cohort, rows: readonly number[]): { data: Float32Array; shape: [number, number, number, number] } {
  const { path: file, offset, dtype, shape } = cohort.images;
  const [, c, h, w] = shape;
  const per = c * h * w;
  const bytes = imageItemBytes(dtype);
  const out = new Float32Array(rows.length * per);
  const buf = Buffer.alloc(per * bytes);
  const fd = fs.openSync(file, 'r');
  try {
    rows.forEach((r, i) => {
      fs.readSync(fd, buf, 0, buf.length, offset + r * per * bytes);
      const o = i * per;
      const image = decodeImageBytes(buf, dtype);
      if (dtype === 'uint8') for (let k = 0; k < per; k++) out[o + k] = image[k] / 255;
      else out.set(image, o);
      const bad = dtype === 'uint8' ? undefined : nonFiniteImageError(image, [c, h, w], file, () => r, cohort.ids);
      if (bad) throw bad;
    });
  } finally {
    fs.closeSync(fd);
  }
  return { data: out, shape: [rows.length, c, h, w] };
}

/**
 * Resizes to the run's image size (bilinear) and applies its normalize, as
 * training did. `unit` is the resized image before normalisation.
 */
export function prepareRunImages(raw: { data: Float32Array; shape: readonly number[] }, config: ResolvedPretrainConfig): { unit: Float32Array; images: AttributionImages } {
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

/** The probe head saved in RUN/heads/T.json as a target (binary heads: the positive class). */
export function headTarget(runDir: string, t: { task: string; cls?: string }): { target: ImageTarget & { kind: 'probe' }; describe: Record<string, unknown> } {
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

/** The run's preprocessor.json (ConfigError naming the file when it is missing). */
export function readRunPreprocessor(runDir: string, why: string): { file: string; prep: Preprocessor } {
  const file = path.join(runDir, 'preprocessor.json');
  if (!fs.existsSync(file)) throw new ConfigError(`${why} needs the run's ${file} (runs pretrained on a cohort keep it)`);
  return { file, prep: Preprocessor.fromJSON(fs.readFileSync(file, 'utf8')) };
}

/** Image–tabular similarity of a multimodal run: each image against its own subject's row, preprocessed as in training. */
export function similarityTarget(runDir: string, config: ResolvedPretrainConfig, cohort: Cohort, rows: number[]): { target: ImageTarget & { pairedTabular: { data: Float32Array; shape: number[] } }; describe: Record<string, unknown>; warnings: string[] } {
  if (config.mode !== 'multimodal') throw new ConfigError(`Target similarity needs a multimodal run, but ${runDir} was trained in ${config.mode} mode: use dim:i or task:T`);
  const { file, prep } = readRunPreprocessor(runDir, 'Target similarity');
  const t = prep.transform(cohort, rows);
  return {
    target: { kind: 'similarity', pairedTabular: { data: t.data, shape: t.shape } },
    describe: { preprocessor: file, features: t.shape[1] },
    warnings: t.warnings,
  };
}

/** The target named by a parsed --target for one run (`rows`: the cohort rows of the images). */
export function runTarget(parsed: ParsedTarget, runDir: string, config: ResolvedPretrainConfig, cohort: Cohort, rows: number[]): { target: ImageTarget; describe: Record<string, unknown>; warnings: string[] } {
  if (parsed.kind === 'dim') return { target: { kind: 'feature', index: parsed.index }, describe: { dim: parsed.index }, warnings: [] };
  if (parsed.kind === 'task') return { ...headTarget(runDir, parsed), warnings: [] };
  return similarityTarget(runDir, config, cohort, rows);
}
