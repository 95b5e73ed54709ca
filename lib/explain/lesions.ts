/**
 * Known lesion regions of the synthetic cohorts, for localisation metrics:
 * the cardiac cohort's infarct scar boxes (truth.lesions[].box) and the
 * Morpho-MNIST cohort's fracture cuts (the union of each fractured digit's
 * truth.subjects[].params.fractures[].boxPx). Boxes are half-open
 * [y0, x0, y1, x1] in the cohort's stored pixels.
 */
import type { Cohort } from '../data/cohort';
import type { Box } from './compare-metrics';

export interface LesionTruth {
  /** 'cardiac-scar' or 'mnist-fracture'. */
  source: string;
  description: string;
  /** Boxes by cohort row; only subjects with a lesion appear. */
  boxes: Map<number, Box[]>;
  /** Pixel grid of the boxes (the stored images'). */
  height: number;
  width: number;
}

type Json = Record<string, unknown>;

const isBox = (b: unknown): b is Box => Array.isArray(b) && b.length === 4 && b.every((v) => Number.isFinite(v));

/** The cohort's lesion boxes from its parsed truth.json (loadTruth), or null when it records none. */
export function lesionTruth(cohort: Pick<Cohort, 'ids' | 'images'>, truthJson: unknown): LesionTruth | null {
  const truth = truthJson as Json | undefined;
  if (!truth || typeof truth !== 'object') return null;
  const [, , height, width] = cohort.images.shape;
  const rowOf = new Map(cohort.ids.map((id, r) => [id, r]));
  const generator = ((truth.generator ?? {}) as Json).name;
  const boxes = new Map<number, Box[]>();
  if (Array.isArray(truth.lesions)) {
    for (const l of truth.lesions as Json[]) {
      const row = rowOf.get(String(l.id));
      if (row !== undefined && isBox(l.box)) boxes.set(row, [l.box]);
    }
    return {
      source: 'cardiac-scar',
      description: `infarct scar boxes from ${String(generator ?? 'truth.json')} (truth.lesions[].box: the box around the scar mask; subjects without a scar are left out)`,
      boxes, height, width,
    };
  }
  if (Array.isArray(truth.subjects)) {
    for (const s of truth.subjects as Json[]) {
      if (s.perturbation !== 'fracture') continue;
      const fractures = ((s.params ?? {}) as Json).fractures;
      if (!Array.isArray(fractures)) continue;
      const list = (fractures as Json[]).map((f) => f.boxPx).filter(isBox);
      const row = rowOf.get(String(s.id));
      if (row !== undefined && list.length) boxes.set(row, list);
    }
    if (boxes.size === 0) return null;
    return {
      source: 'mnist-fracture',
      description: `fracture cuts from ${String(generator ?? 'truth.json')}: the union of each fractured digit's cut boxes (params.fractures[].boxPx); other digits are left out`,
      boxes, height, width,
    };
  }
  return null;
}
