/**
 * `tabsight compare`: what two or more runs' image encoders learned, on the
 * same test subjects of one cohort (docs/explain.md, "Comparing runs").
 * This file checks the options and the runs, and computes everything that
 * needs one run's encoders; compare-report.ts puts the runs side by side.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCohort, loadTruth, type Cohort } from '../data/cohort';
import { writeNpy } from '../data/npy';
import type { Preprocessor } from '../data/preprocess';
import { ConfigError, DataError } from '../errors';
import { readRunConfig } from '../export/run-export';
import { featureAttributions } from '../features/attribution-rank';
import type { ResolvedPretrainConfig } from '../pretrain-options';
import { uniformStream } from '../rng';
import * as is from '../validate';
import { gradCam, guidedBackprop, guidedGradCam, integratedGradients, tabularIntegratedGradients, CAM_LAYERS, type Attribution, type CamLayer } from './attribution';
import { alignment, boxMask, energyInside, l2Normalise, pointingHit, retrieval, spearman, uniformity, type Retrieval } from './compare-metrics';
import { faithfulness, mapOrders, type FaithfulnessCurves } from './faithfulness';
import { projectPairs } from './forward';
import { lesionTruth, type LesionTruth } from './lesions';
import type { AttributionModel } from './model-source';
import { gridPng, overlayPixels, reduceMap, safeName } from './overlay';
import { RANDOMIZATION_STAGES, randomizeWeights, uniformFanIn, type RandomizationStage } from './randomize';
import { parseExplainTarget, prepareRunImages, readCohortImages, readRunPreprocessor, runTarget, type ParsedTarget } from './run-inputs';
import type { ImageTarget } from './targets';
import { makeDirs, removeAtExit } from '../io/atomic';

export const COMPARE_METHODS = ['ig', 'gradcam', 'guided-backprop', 'guided-gradcam'] as const;
export type CompareMethod = (typeof COMPARE_METHODS)[number];

export interface CompareRunsOptions {
  /** The cohort directory; its test split is used. */
  cohort: string;
  /** Two or more run directories pretrained on this cohort. */
  runs: string[];
  /** Output directory: report.html, metrics.json, attributions/, grids/. */
  out: string;
  /** Test subjects whose images are attributed (the first n of the test split, in cohort order). @default 64 */
  n?: number;
  /** @default all four: ig, gradcam, guided-backprop, guided-gradcam */
  methods?: CompareMethod[];
  /** 'similarity' (multimodal runs), 'task:T[:CLASS]' (each run's RUN/heads/T.json) or 'dim:i'. @default 'similarity' */
  target?: string;
  /** IG quadrature points (Gauss–Legendre, zero baseline). @default 50 */
  steps?: number;
  /** GradCAM and Guided GradCAM layer. @default 'layer4' */
  layer?: CamLayer;
  /** Deletion/insertion steps: ceil(H·W / perturbSteps) pixels per step. @default 32 */
  perturbSteps?: number;
  /** σ of the insertion start image's blur, as a fraction of the image size. @default 1/16 */
  insertionBlur?: number;
  /** Images (the first of the n) for the randomisation sanity check; 0 skips it. @default 8 */
  sanityImages?: number;
  /** Test subjects (the first, in cohort order) for CKA, the latent space, tabular IG and decodability. @default 512 */
  maxRows?: number;
  /** Cross-validation folds of the decodability. @default 5 */
  folds?: number;
  /** Images per run in the PNG grid. @default 8 */
  gridImages?: number;
  /** Seeds the random pixel order, the randomised weights, the folds and the bootstrap. @default 0 */
  seed?: number;
  /** 'cpu', 'cuda' or 'cuda:N'. @default 'cpu' */
  device?: string;
  log?: (line: string) => void;
}

export interface ResolvedCompareOptions {
  cohort: string;
  runs: string[];
  out: string;
  n: number;
  methods: CompareMethod[];
  target: string;
  parsedTarget: ParsedTarget;
  steps: number;
  layer: CamLayer;
  perturbSteps: number;
  insertionBlur: number;
  sanityImages: number;
  maxRows: number;
  folds: number;
  gridImages: number;
  seed: number;
  device: string;
}

/** Parses a --methods list; unknown names are a ConfigError naming them. */
export function parseCompareMethods(value: unknown): CompareMethod[] {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`Expected a non-empty list of methods (${COMPARE_METHODS.join(', ')}) but received ${JSON.stringify(value)}`);
  for (const m of list) {
    if (!(COMPARE_METHODS as readonly unknown[]).includes(m)) throw new ConfigError(`Unknown compare method "${String(m)}": expected one of ${COMPARE_METHODS.join(', ')}`);
  }
  if (new Set(list).size !== list.length) throw new ConfigError(`Expected distinct methods but received ${list.join(',')}`);
  return list as CompareMethod[];
}

export function resolveCompareOptions(options: CompareRunsOptions): ResolvedCompareOptions {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, 'options', ['cohort', 'runs', 'out', 'n', 'methods', 'target', 'steps', 'layer', 'perturbSteps', 'insertionBlur', 'sanityImages', 'maxRows', 'folds', 'gridImages', 'seed', 'device', 'log']);
  if (!Array.isArray(o.runs) || o.runs.length < 2) throw new ConfigError(`Expected at least two runs to compare but received ${Array.isArray(o.runs) ? o.runs.length : JSON.stringify(o.runs)}`);
  const device = is.string(o.device ?? 'cpu', 'device');
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw is.invalid('cpu, cuda or cuda:N', 'device', device);
  const target = is.string(o.target ?? 'similarity', 'target');
  return {
    cohort: is.string(o.cohort, 'cohort'),
    runs: o.runs.map((r, i) => is.string(r, `runs[${i}]`)),
    out: path.resolve(is.string(o.out, 'out')),
    n: is.integer(o.n ?? 64, 'n', 2, 100000),
    methods: parseCompareMethods(o.methods ?? [...COMPARE_METHODS]),
    target,
    parsedTarget: parseExplainTarget(target),
    steps: is.integer(o.steps ?? 50, 'steps', 1, 100000),
    layer: is.oneOf(o.layer ?? 'layer4', 'layer', CAM_LAYERS),
    perturbSteps: is.integer(o.perturbSteps ?? 32, 'perturbSteps', 1, 1_000_000),
    insertionBlur: is.numberInRange(o.insertionBlur ?? 1 / 16, 'insertionBlur', 0, 1),
    sanityImages: is.integer(o.sanityImages ?? 8, 'sanityImages', 0, 100000),
    maxRows: is.integer(o.maxRows ?? 512, 'maxRows', 4, 1_000_000),
    folds: is.integer(o.folds ?? 5, 'folds', 2, 100),
    gridImages: is.integer(o.gridImages ?? 8, 'gridImages', 0, 1000),
    seed: is.integer(o.seed ?? 0, 'seed', 0, 2 ** 31 - 1),
    device,
  };
}

/** A run checked against the cohort. */
export interface RunInfo {
  label: string;
  dir: string;
  config: ResolvedPretrainConfig;
  multimodal: boolean;
  prep?: Preprocessor;
}

/** Checks every run before any work: a run directory, trained on images of the cohort's shape and (multimodal) on its columns. */
export function checkRuns(dirs: readonly string[], cohort: Cohort): RunInfo[] {
  const [, c, h, w] = cohort.images.shape;
  const labels = new Map<string, number>();
  return dirs.map((input) => {
    const dir = path.resolve(input);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ConfigError(`Run ${input} does not exist (no directory ${dir})`);
    const config = readRunConfig(dir);
    if (!fs.existsSync(path.join(dir, 'image_encoder.safetensors')) && !fs.existsSync(path.join(dir, 'checkpoint.safetensors'))) {
      throw new ConfigError(`Run ${input} has no weights: neither image_encoder.safetensors nor checkpoint.safetensors is in ${dir}`);
    }
    const d = config.data ?? {};
    if (config.model?.inChannels !== c || (d.height !== undefined && d.height !== h) || (d.width !== undefined && d.width !== w)) {
      throw new ConfigError(`Run ${input} was trained on ${config.model?.inChannels}×${d.height}×${d.width} images but cohort ${cohort.dir} has ${c}×${h}×${w} images: compare runs pretrained on this cohort`);
    }
    const multimodal = config.mode === 'multimodal';
    let prep: Preprocessor | undefined;
    if (multimodal) {
      prep = readRunPreprocessor(dir, `Comparing multimodal run ${input}`).prep;
      const have = new Set(cohort.tabular.columns.map((col) => col.name));
      const missing = prep.columns.map((col) => col.name).filter((name) => !have.has(name));
      if (missing.length) throw new ConfigError(`Run ${input} was trained on tabular features that cohort ${cohort.dir} lacks: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    }
    const base = path.basename(dir);
    const k = labels.get(base) ?? 0;
    labels.set(base, k + 1);
    return { label: k ? `${base}-${k + 1}` : base, dir, config, multimodal, prep };
  });
}

/** Per-image localisation of one map set: pointing hits and energy fractions (NaN where undefined). */
export interface Localisation {
  pointing: number[];
  energy: number[];
}

export interface SanityStage {
  /** The topmost stage randomised; everything above it is randomised too. */
  stage: RandomizationStage;
  /** Per image: Spearman ρ between the original and the randomised map, Σ_c a (raw) and Σ_c |a| (abs). */
  raw: number[];
  abs: number[];
}

export interface RunAnalysis extends RunInfo {
  imageSize: number;
  target: Record<string, unknown>;
  /** Per method, per attributed image: Σ_c |a| at imageSize×imageSize (GradCAM: its upsampled map). */
  maps: Record<string, Float32Array[]>;
  /** IG only: per-image convergence delta. */
  igDelta?: number[];
  faithfulness: Record<string, FaithfulnessCurves>;
  localisation?: Record<string, Localisation>;
  sanity?: { stages: RandomizationStage[]; methods: Record<string, SanityStage[]> };
  /** Pooled image features of the analysis rows, rows × featureDim. */
  features: Float32Array;
  featureDim: number;
  latent?: { rows: number; retrieval: { imageToTabular: Retrieval; tabularToImage: Retrieval }; alignment: number; uniformity: { image: number; tabular: number } };
  tabular?: { names: string[]; meanAbs: number[]; rows: number };
  files: { attributions: Record<string, string>; grid?: string };
}

export interface CompareContext {
  options: ResolvedCompareOptions;
  cohort: Cohort;
  /** Cohort rows of the attributed images. */
  rows: number[];
  /** Cohort rows for CKA, the latent space, tabular IG and decodability. */
  analysisRows: number[];
  lesions: LesionTruth | null;
  /** Cohort rows for localisation: the first n test subjects with a lesion. */
  lesionRows: number[];
  log: (line: string) => void;
}

async function attribute(method: CompareMethod, model: AttributionModel, images: { data: Float32Array; shape: readonly number[] }, target: ImageTarget, o: ResolvedCompareOptions): Promise<Attribution> {
  switch (method) {
    case 'ig': return integratedGradients(model, images, { target, steps: o.steps, baseline: 'zeros' });
    case 'gradcam': return gradCam(model, images, { target, layer: o.layer, relu: true, upsample: 'bilinear' });
    case 'guided-backprop': return guidedBackprop(model, images, { target });
    case 'guided-gradcam': return guidedGradCam(model, images, { target, layer: o.layer });
  }
}

function subsetImages(images: { data: Float32Array; shape: readonly number[] }, m: number) {
  const per = images.shape.slice(1).reduce((a, b) => a * b, 1);
  return { data: images.data.slice(0, m * per), shape: [m, ...images.shape.slice(1)] };
}

function subsetTarget(target: ImageTarget, m: number): ImageTarget {
  if (!('pairedTabular' in target) || !target.pairedTabular) return target;
  const f = target.pairedTabular.shape[1];
  return { kind: 'similarity', pairedTabular: { data: target.pairedTabular.data.slice(0, m * f), shape: [m, f] } };
}

/** The cascading randomisation check: attributions with the stages from the top down to each stage re-initialised. */
async function sanityCheck(ctx: CompareContext, run: RunInfo, images: { data: Float32Array; shape: readonly number[] }, target: ImageTarget, original: Record<string, Attribution>): Promise<RunAnalysis['sanity']> {
  const o = ctx.options;
  const m = Math.min(o.sanityImages, images.shape[0]);
  const size = images.shape[2];
  const x = subsetImages(images, m);
  const t0 = subsetTarget(target, m);
  const useCheckpoint = o.parsedTarget.kind === 'similarity';
  const src = path.join(run.dir, useCheckpoint ? 'checkpoint.safetensors' : 'image_encoder.safetensors');
  if (!fs.existsSync(src)) throw new ConfigError(`The sanity check of run ${run.label} needs ${src}`);
  const hasHead = o.parsedTarget.kind !== 'dim';
  const stages = RANDOMIZATION_STAGES.filter((s) => s !== 'head' || hasHead);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-sanity-'));
  const forget = removeAtExit(tmp);
  const methods: Record<string, SanityStage[]> = Object.fromEntries(o.methods.map((mm) => [mm, []]));
  try {
    for (let k = 0; k < stages.length; k++) {
      const upTo = stages.slice(0, k + 1);
      const file = path.join(tmp, `${k}-${path.basename(src)}`);
      await randomizeWeights(src, file, {
        stages: upTo.filter((s) => s !== 'head' || useCheckpoint), encoderPrefix: useCheckpoint ? 'model.image.' : '',
        keepPrefix: useCheckpoint ? 'model.' : '', seed: o.seed,
      });
      let t = t0;
      if (upTo.includes('head') && t.kind === 'probe') {
        // The probe is the head of a task target: PyTorch's default Linear init, seeded like the weights.
        const [kk, dd] = t.weight.shape;
        t = { ...t, weight: { data: uniformFanIn(kk * dd, dd, o.seed, 'probe.weight'), shape: [kk, dd] }, bias: uniformFanIn(kk, dd, o.seed, 'probe.bias') };
      }
      const model: AttributionModel = { path: file, device: o.device };
      for (const method of o.methods) {
        const r = await attribute(method, model, x, t, o);
        const raw: number[] = [];
        const abs: number[] = [];
        for (let i = 0; i < m; i++) {
          raw.push(spearman(reduceMap(original[method].attributions, original[method].shape, i, size, 'signed'), reduceMap(r.attributions, r.shape, i, size, 'signed')));
          abs.push(spearman(reduceMap(original[method].attributions, original[method].shape, i, size, 'abs'), reduceMap(r.attributions, r.shape, i, size, 'abs')));
        }
        methods[method].push({ stage: stages[k], raw, abs });
      }
      fs.rmSync(file, { force: true });
      ctx.log(`  ${run.label}: sanity check, randomised down to ${stages[k]}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    forget();
  }
  return { stages, methods };
}

/** Features, projections and tabular IG on the analysis rows, in chunks. */
async function wholeSplit(ctx: CompareContext, run: RunInfo): Promise<Pick<RunAnalysis, 'features' | 'featureDim' | 'latent' | 'tabular'>> {
  const o = ctx.options;
  const rows = ctx.analysisRows;
  const chunk = 256;
  const feats: Float32Array[] = [];
  const imgProj: Float32Array[] = [];
  const tabProj: Float32Array[] = [];
  let featureDim = 0;
  let projectionDim = 0;
  let names: string[] = [];
  let sums: Float64Array | undefined;
  for (let s = 0; s < rows.length; s += chunk) {
    const part = rows.slice(s, s + chunk);
    const { images } = prepareRunImages(readCohortImages(ctx.cohort, part), run.config);
    if (!run.multimodal) {
      const p = await projectPairs({ path: run.dir, device: o.device }, images, null, { imageProjection: false });
      feats.push(p.features);
      featureDim = p.featureDim;
      continue;
    }
    const tab = run.prep!.transform(ctx.cohort, part);
    const model: AttributionModel = { path: run.dir, device: o.device, cardinalities: tab.cardinalities };
    const p = await projectPairs(model, images, { data: tab.data, shape: tab.shape });
    feats.push(p.features);
    imgProj.push(p.imageProjection!);
    tabProj.push(p.tabularProjection!);
    featureDim = p.featureDim;
    projectionDim = p.projectionDim!;
    const ig = await tabularIntegratedGradients(model, { data: tab.data, shape: tab.shape }, { target: { kind: 'similarity', pairedImages: images }, steps: o.steps });
    const fa = featureAttributions(run.prep!, ig.attributions, part.length);
    names = fa.names;
    sums ??= new Float64Array(names.length);
    fa.perRow.forEach((col, j) => {
      for (const v of col) sums![j] += Math.abs(v);
    });
  }
  const cat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let k = 0;
    for (const p of parts) {
      out.set(p, k);
      k += p.length;
    }
    return out;
  };
  const features = cat(feats);
  if (!run.multimodal) return { features, featureDim };
  const n = rows.length;
  const u = l2Normalise(cat(imgProj), n, projectionDim);
  const v = l2Normalise(cat(tabProj), n, projectionDim);
  return {
    features,
    featureDim,
    latent: { rows: n, retrieval: retrieval(u, v, n, projectionDim), alignment: alignment(u, v, n, projectionDim), uniformity: { image: uniformity(u, n, projectionDim), tabular: uniformity(v, n, projectionDim) } },
    tabular: { names, meanAbs: [...sums!].map((s) => s / n), rows: n },
  };
}

/** Everything that needs this run's encoders. */
export async function analyseRun(ctx: CompareContext, run: RunInfo): Promise<RunAnalysis> {
  const o = ctx.options;
  const log = ctx.log;
  const { unit, images } = prepareRunImages(readCohortImages(ctx.cohort, ctx.rows), run.config);
  const [n, c, size] = images.shape;
  const resolved = runTarget(o.parsedTarget, run.dir, run.config, ctx.cohort, ctx.rows);
  for (const w of resolved.warnings) log(`warning: ${run.label}: ${w}`);
  const model: AttributionModel = { path: run.dir, device: o.device };
  const maps: Record<string, Float32Array[]> = {};
  const raw: Record<string, Attribution> = {};
  const files: RunAnalysis['files'] = { attributions: {} };
  const dir = path.join(o.out, 'attributions', safeName(run.label));
  makeDirs(dir);
  let igDelta: number[] | undefined;
  for (const method of o.methods) {
    log(`  ${run.label}: ${method} on ${n} images`);
    const r = await attribute(method, model, images, resolved.target, o);
    raw[method] = r;
    if (r.delta) igDelta = [...r.delta];
    maps[method] = Array.from({ length: n }, (_, i) => reduceMap(r.attributions, r.shape, i, size));
    const file = path.join(dir, `${method}.npy`);
    await writeNpy(file, r.attributions, r.shape);
    files.attributions[method] = path.relative(o.out, file);
  }

  log(`  ${run.label}: deletion and insertion curves`);
  const orders: Record<string, (i: number) => Int32Array> = Object.fromEntries(o.methods.map((m) => [m, mapOrders(maps[m])]));
  orders.random = (i) => {
    const u = uniformStream(o.seed * 1_000_003 + i);
    const order = Int32Array.from({ length: size * size }, (_, k) => k);
    for (let k = order.length - 1; k > 0; k--) {
      const j = Math.floor(u() * (k + 1));
      [order[k], order[j]] = [order[j], order[k]];
    }
    return order;
  };
  const faith = await faithfulness(model, images, resolved.target, orders, { steps: o.perturbSteps, blur: o.insertionBlur * size });

  let localisation: Record<string, Localisation> | undefined;
  if (ctx.lesions && ctx.lesionRows.length) {
    // Lesion subjects among the attributed images reuse their maps; the others are attributed here.
    const lt = ctx.lesions;
    const pos = new Map(ctx.rows.map((r, i) => [r, i]));
    const extra = ctx.lesionRows.filter((r) => !pos.has(r));
    const extraMaps: Record<string, Float32Array[]> = {};
    if (extra.length) {
      log(`  ${run.label}: ${o.methods.join(', ')} on ${extra.length} more test subjects with a lesion`);
      const { images: ex } = prepareRunImages(readCohortImages(ctx.cohort, extra), run.config);
      const t = runTarget(o.parsedTarget, run.dir, run.config, ctx.cohort, extra);
      for (const method of o.methods) {
        const r = await attribute(method, model, ex, t.target, o);
        extraMaps[method] = Array.from({ length: extra.length }, (_, i) => reduceMap(r.attributions, r.shape, i, size));
      }
    }
    const extraPos = new Map(extra.map((r, i) => [r, i]));
    localisation = {};
    for (const method of o.methods) {
      const loc: Localisation = { pointing: [], energy: [] };
      for (const row of ctx.lesionRows) {
        const map = pos.has(row) ? maps[method][pos.get(row)!] : extraMaps[method][extraPos.get(row)!];
        const mask = boxMask(lt.boxes.get(row)!, lt.height, lt.width, size);
        loc.pointing.push(pointingHit(map, mask));
        loc.energy.push(energyInside(map, mask));
      }
      localisation[method] = loc;
    }
  }

  const sanity = o.sanityImages > 0 ? await sanityCheck(ctx, run, images, resolved.target, raw) : undefined;

  log(`  ${run.label}: embeddings${run.multimodal ? ', projections and tabular IG' : ''} on ${ctx.analysisRows.length} test subjects`);
  const split = await wholeSplit(ctx, run);

  const g = Math.min(o.gridImages, n);
  if (g > 0) {
    const plane = size * size;
    const cells = Array.from({ length: g }, (_, i) => {
      const grey = unit.subarray(i * c * plane, i * c * plane + plane);
      return [overlayPixels(grey, null, size), ...o.methods.map((m) => overlayPixels(grey, maps[m][i], size))];
    });
    makeDirs(path.join(o.out, 'grids'));
    const file = path.join(o.out, 'grids', `${safeName(run.label)}.png`);
    await fs.promises.writeFile(file, await gridPng(cells, size));
    files.grid = path.relative(o.out, file);
  }
  return {
    ...run, imageSize: size, target: resolved.describe, maps, igDelta, faithfulness: faith, localisation, sanity, ...split, files,
  };
}

/** Loads the cohort and checks the runs and the subjects (every error before any work). */
export async function prepareCompare(options: CompareRunsOptions): Promise<{ ctx: CompareContext; runs: RunInfo[] }> {
  const o = resolveCompareOptions(options);
  const log = options.log ?? (() => undefined);
  const cohort = await loadCohort(o.cohort, { scanImages: false });
  const runs = checkRuns(o.runs, cohort);
  const test = cohort.splits.test;
  if (test.length < 2) throw new DataError(`${cohort.dir} has ${test.length} test subject(s); comparing runs needs at least 2`);
  const rows = test.slice(0, o.n);
  if (o.parsedTarget.kind === 'similarity') {
    const other = runs.find((r) => !r.multimodal);
    if (other) throw new ConfigError(`Target similarity needs multimodal runs, but ${other.dir} was trained in ${other.config.mode} mode: use --target dim:i or task:T`);
  }
  const lesions = lesionTruth(cohort, await loadTruth(cohort));
  const lesionRows = lesions ? test.filter((r) => lesions.boxes.has(r)).slice(0, o.n) : [];
  return { ctx: { options: o, cohort, rows, analysisRows: test.slice(0, o.maxRows), lesions, lesionRows, log }, runs };
}
