/**
 * `tabsight explain`: attributions for a run's image encoder on the first n
 * test subjects of a cohort, written as attributions.npy, PNG overlays and
 * explain.json (docs/explain.md, "The explain command").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCohort } from '../data/cohort';
import { writeNpy } from '../data/npy';
import { ConfigError, DataError } from '../errors';
import { readRunConfig } from '../export/run-export';
import { ensureOutDir, writeFileAtomic } from '../io/atomic';
import * as is from '../validate';
import { gradCam, guidedBackprop, guidedGradCam, integratedGradients, noiseTunnel, CAM_LAYERS, type Attribution, type CamLayer } from './attribution';
import type { AttributionModel } from './model-source';
import { reduceMap, safeName, writeOverlay } from './overlay';
import { parseExplainTarget, prepareRunImages, readCohortImages, runTarget } from './run-inputs';
import type { ImageTarget } from './targets';

export { parseExplainTarget };

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
  /** smoothgrad-ig: noise sd, as a fraction of each normalised image's own value range (max − min). @default 0.15 */
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

function checkMethod(value: unknown): ExplainMethod {
  if (typeof value !== 'string' || !(EXPLAIN_METHODS as readonly string[]).includes(value)) {
    throw new ConfigError(`Unknown explain method "${String(value)}": expected one of ${EXPLAIN_METHODS.join(', ')}`);
  }
  return value as ExplainMethod;
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** The overlay files (names in overlays/) an earlier explain.json lists; none when it is missing or unreadable. */
function previousOverlays(jsonFile: string): string[] {
  try {
    const old = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as { overlays?: unknown };
    if (!Array.isArray(old.overlays)) return [];
    return old.overlays.filter((f): f is string => typeof f === 'string' && /^overlays\/[^/\\]+\.png$/.test(f)).map((f) => f.slice('overlays/'.length));
  } catch {
    return [];
  }
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
  ensureOutDir(out);

  const cohort = await loadCohort(is.string(o.cohort, 'cohort'), { scanImages: false });
  const rows = cohort.splits.test.slice(0, n);
  if (rows.length === 0) throw new DataError(`${cohort.dir} has no test subjects to explain`);
  const ids = rows.map((r) => cohort.ids[r]);

  const resolved = runTarget(parsed, runDir, config, cohort, rows);
  for (const w of resolved.warnings) log(`warning: ${w}`);
  const target: ImageTarget = resolved.target;
  const describe = resolved.describe;

  const { unit, images } = prepareRunImages(readCohortImages(cohort, rows), config);
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
      // SmoothGrad's noise level: a fraction of each image's own max − min (Smilkov et al. 2017), so an
      // image's noise does not depend on the other images of the call.
      const per = images.data.length / m;
      const stdev = Array.from({ length: m }, (_, i) => {
        let lo = Infinity;
        let hi = -Infinity;
        for (let k = i * per; k < (i + 1) * per; k++) {
          const v = images.data[k];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        return noise * (hi - lo);
      });
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

  // explain.json describes the folder: the old one goes first and the new
  // one is written last, so a failure in between leaves no explain.json
  // naming files of another call. Every file is written atomically.
  const jsonFile = path.join(out, 'explain.json');
  const previous = previousOverlays(jsonFile);
  await fs.promises.rm(jsonFile, { force: true });
  ensureOutDir(path.join(out, 'overlays'));
  await writeNpy(path.join(out, 'attributions.npy'), result.attributions, result.shape);
  const overlays: string[] = [];
  for (let i = 0; i < m; i++) {
    const heat = reduceMap(result.attributions, result.shape, i, size);
    const name = `${String(i).padStart(3, '0')}_${safeName(ids[i])}.png`;
    await writeOverlay(path.join(out, 'overlays', name), unit.subarray(i * c * size * size, i * c * size * size + size * size), heat, size);
    overlays.push(name);
  }
  for (const f of previous) if (!overlays.includes(f)) await fs.promises.rm(path.join(out, 'overlays', f), { force: true });

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
  await writeFileAtomic(jsonFile, JSON.stringify(json, null, 1) + '\n');
  log(`wrote ${path.join(out, 'attributions.npy')} [${result.shape.join(', ')}], ${overlays.length} overlays and explain.json`);
  return res;
}
