/**
 * compareRuns: runs every run through compare-run.ts, then puts them side by
 * side (CKA, attribution agreement, decodability) and writes metrics.json
 * and report.html (with the attributions as NPY and one PNG grid per run).
 */
import * as path from 'node:path';
import { resizeBilinear } from '../data/cohort-images';
import { writeFileAtomic } from '../io/atomic';
import { linearCka, rbfCka } from './cka';
import { boxMask, spearman, summarize, type Summary } from './compare-metrics';
import { buildCompareReport, summaryStatements } from './compare-report';
import { analyseRun, prepareCompare, type CompareContext, type CompareRunsOptions, type RunAnalysis } from './compare-run';
import { cohortFeatures, decodability, type DecodabilityResult } from './decode';

export interface CompareRunsResult {
  out: string;
  report: string;
  metrics: string;
  runs: string[];
  /** The plain-language summary at the top of the report. */
  summary: string[];
}

/** What only exists across runs. */
export interface CrossRun {
  cka: { a: string; b: string; linear: number; rbf: number }[];
  /** By method: per pair, Spearman ρ per image and its summary. */
  agreement: Record<string, (Summary & { a: string; b: string; perImage: number[] })[]>;
  decodability: DecodabilityResult;
  /** The size at which maps of runs with different image sizes are compared. */
  comparisonSize: number;
  /** Lesion box area as a fraction of the image, per lesion subject, by run (its own image size). */
  areaFraction: Record<string, number[]>;
}

const finiteOrNull = (v: number) => (Number.isFinite(v) ? v : null);

/** JSON-ready copy: NaN and ±Infinity as null, typed arrays as arrays, undefined fields dropped. */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === 'number') return finiteOrNull(value);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>, finiteOrNull);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, jsonSafe(v)]));
  return value;
}

function crossRun(ctx: CompareContext, runs: RunAnalysis[]): CrossRun {
  const o = ctx.options;
  const n = ctx.analysisRows.length;
  const pairs: [RunAnalysis, RunAnalysis][] = [];
  for (let a = 0; a < runs.length; a++) for (let b = a + 1; b < runs.length; b++) pairs.push([runs[a], runs[b]]);
  const cka = pairs.map(([a, b]) => {
    const x = { data: a.features, shape: [n, a.featureDim] };
    const y = { data: b.features, shape: [n, b.featureDim] };
    return { a: a.label, b: b.label, linear: linearCka(x, y), rbf: rbfCka(x, y) };
  });
  const common = Math.min(...runs.map((r) => r.imageSize));
  const at = (r: RunAnalysis, m: string, i: number) => (r.imageSize === common ? r.maps[m][i] : resizeBilinear(r.maps[m][i], 1, r.imageSize, r.imageSize, common, common));
  const agreement = Object.fromEntries(o.methods.map((m) => [m, pairs.map(([a, b]) => {
    const perImage = ctx.rows.map((_, i) => spearman(at(a, m, i), at(b, m, i)));
    return { a: a.label, b: b.label, ...summarize(perImage), perImage };
  })]));
  const lesions = ctx.lesions;
  const areaFraction = Object.fromEntries(runs.map((r) => [r.label, lesions
    ? ctx.lesionRows.map((row) => {
      const mask = boxMask(lesions.boxes.get(row)!, lesions.height, lesions.width, r.imageSize);
      return mask.reduce((s, v) => s + v, 0) / mask.length;
    })
    : []]));
  return {
    cka, agreement, comparisonSize: common, areaFraction,
    decodability: decodability(runs, cohortFeatures(ctx.cohort, ctx.analysisRows), n, o.folds, o.seed),
  };
}

/** Mean |tabular IG| per feature: the union of the multimodal runs' features in cohort column order (null where a run lacks one). */
export function tabularTable(ctx: CompareContext, runs: RunAnalysis[]): { features: string[]; rows: Record<string, number>; runs: Record<string, (number | null)[]> } | null {
  const mm = runs.filter((r) => r.tabular);
  if (mm.length === 0) return null;
  const used = new Set(mm.flatMap((r) => r.tabular!.names));
  const features = ctx.cohort.tabular.columns.map((c) => c.name).filter((f) => used.has(f));
  return {
    features,
    rows: Object.fromEntries(mm.map((r) => [r.label, r.tabular!.rows])),
    runs: Object.fromEntries(mm.map((r) => [r.label, features.map((f) => {
      const j = r.tabular!.names.indexOf(f);
      return j < 0 ? null : r.tabular!.meanAbs[j];
    })])),
  };
}

/** The metrics.json object (docs/explain.md lists its keys). */
export function compareMetrics(ctx: CompareContext, runs: RunAnalysis[], x: CrossRun, summary: string[]): Record<string, unknown> {
  const o = ctx.options;
  const lesions = ctx.lesions;
  return {
    format: 'tabsight-compare',
    version: 1,
    cohort: ctx.cohort.dir,
    split: 'test',
    target: o.target,
    methods: o.methods,
    settings: {
      n: ctx.rows.length, steps: o.steps, layer: o.layer, perturbSteps: o.perturbSteps, insertionBlur: o.insertionBlur,
      sanityImages: Math.min(o.sanityImages, ctx.rows.length), maxRows: o.maxRows, analysisRows: ctx.analysisRows.length, folds: o.folds,
      gridImages: o.gridImages, seed: o.seed, device: o.device, comparisonSize: x.comparisonSize,
    },
    subjects: ctx.rows.map((r) => ctx.cohort.ids[r]),
    runs: runs.map((r) => ({
      label: r.label, dir: r.dir, mode: r.config.mode, arch: r.config.model.arch, imageSize: r.imageSize,
      tabularFeatures: r.prep ? r.prep.columns.length : 0, target: r.target, files: r.files,
      ...(r.igDelta ? { igAbsDelta: summarize(r.igDelta.map(Math.abs)) } : {}),
    })),
    summary,
    cka: { rows: ctx.analysisRows.length, rbfThreshold: 0.5, pairs: x.cka },
    agreement: x.agreement,
    faithfulness: Object.fromEntries(runs.map((r) => [r.label, Object.fromEntries(Object.entries(r.faithfulness).map(([k, f]) => [k, {
      deletion: summarize(f.deletion),
      insertion: summarize(f.insertion),
      excluded: { deletion: f.deletion.filter((v) => !Number.isFinite(v)).length, insertion: f.insertion.filter((v) => !Number.isFinite(v)).length },
      perImage: { deletion: f.deletion, insertion: f.insertion },
      curve: { x: f.x, deletion: f.meanDeletion, insertion: f.meanInsertion },
    }]))])),
    localisation: lesions
      ? {
        source: lesions.source,
        description: lesions.description,
        images: ctx.lesionRows.length,
        subjects: ctx.lesionRows.map((r) => ctx.cohort.ids[r]),
        areaFraction: Object.fromEntries(runs.map((r) => [r.label, summarize(x.areaFraction[r.label])])),
        runs: Object.fromEntries(runs.map((r) => [r.label, Object.fromEntries(Object.entries(r.localisation ?? {}).map(([m, l]) => [m, {
          pointing: { hits: l.pointing.filter((v) => v === 1).length, n: l.pointing.filter(Number.isFinite).length, rate: summarize(l.pointing).mean },
          energy: summarize(l.energy),
          perImage: l,
        }]))])),
      }
      : { source: null, description: `${ctx.cohort.dir} records no lesion regions in truth.json (the synthetic cardiac and Morpho-MNIST cohorts do)` },
    sanity: o.sanityImages > 0
      ? Object.fromEntries(runs.map((r) => [r.label, {
        stages: r.sanity!.stages,
        methods: Object.fromEntries(Object.entries(r.sanity!.methods).map(([m, list]) => [m, list.map((s) => ({
          stage: s.stage, raw: summarize(s.raw), abs: summarize(s.abs), perImage: { raw: s.raw, abs: s.abs },
        }))])),
      }]))
      : null,
    tabular: tabularTable(ctx, runs),
    latent: Object.fromEntries(runs.filter((r) => r.latent).map((r) => [r.label, r.latent])),
    decodability: x.decodability,
  };
}

/** Compares two or more runs on one cohort's test split and writes report.html and metrics.json (docs/explain.md, "Comparing runs"). */
export async function compareRuns(options: CompareRunsOptions): Promise<CompareRunsResult> {
  const { ctx, runs: infos } = await prepareCompare(options);
  const o = ctx.options;
  const log = ctx.log;
  log(`comparing ${infos.map((r) => r.label).join(', ')} on ${ctx.rows.length} test subjects of ${ctx.cohort.name} (target ${o.target})`);
  const runs: RunAnalysis[] = [];
  for (const info of infos) {
    log(`${info.label}: ${info.dir}`);
    runs.push(await analyseRun(ctx, info));
  }
  log('CKA, attribution agreement and decodability');
  const x = crossRun(ctx, runs);
  const summary = summaryStatements(ctx, runs, x);
  const metricsFile = path.join(o.out, 'metrics.json');
  await writeFileAtomic(metricsFile, JSON.stringify(jsonSafe(compareMetrics(ctx, runs, x, summary)), null, 1) + '\n');
  const reportFile = path.join(o.out, 'report.html');
  await buildCompareReport(reportFile, ctx, runs, x, summary, tabularTable(ctx, runs));
  log(`wrote ${reportFile} and ${metricsFile}`);
  return { out: o.out, report: reportFile, metrics: metricsFile, runs: runs.map((r) => r.label), summary };
}
