/**
 * Deletion and insertion curves (Petsiuk et al. 2018, RISE) for attribution
 * maps: pixels in decreasing order of saliency, a fixed number per step;
 * deletion replaces them with zeros (in the normalised space the encoder
 * sees), insertion copies them from the image into its blurred copy. The
 * target's score F is computed on every image along both paths with the
 * native scoreImages, normalised to (F − F(reference)) / (F(x) − F(reference))
 * and integrated by the trapezoid rule over the fraction of pixels.
 */
import type { ModelInput } from './model-source';
import { scoreImages } from './forward';
import { gaussianBlur, normaliseCurve, perturbationPath, perturbationSchedule, saliencyOrder, trapezoidAuc } from './compare-metrics';
import type { ArrayWithShape, ImageTarget } from './targets';

export interface FaithfulnessOptions {
  /** Steps along each path: ceil(H·W / steps) pixels per step. @default 32 */
  steps?: number;
  /** σ in pixels of the insertion start image's Gaussian blur. @default H / 16 */
  blur?: number;
  /** Images per forward pass. @default 64 */
  batchSize?: number;
  /** Floats of path images scored per native call (memory bound). @default 8_000_000 */
  chunkFloats?: number;
}

export interface FaithfulnessCurves {
  /** Fraction of pixels perturbed at each point. */
  x: number[];
  /** Per image: the normalised deletion and insertion AUCs (NaN when F(x) ≈ F(reference)). */
  deletion: Float64Array;
  insertion: Float64Array;
  /** Per image: the raw scores along each path (F at x_k). */
  deletionScores: Float64Array[];
  insertionScores: Float64Array[];
  /** Mean of the normalised curves over the images where they are defined (NaN where none is). */
  meanDeletion: number[];
  meanInsertion: number[];
}

/** A target with one entry per path image: paired rows repeated for each image's path. */
function expandTarget(target: ImageTarget, owners: readonly number[]): ImageTarget {
  if (!('pairedTabular' in target) || !target.pairedTabular) return target;
  const { data, shape } = target.pairedTabular;
  const f = shape[1];
  const out = new Float32Array(owners.length * f);
  owners.forEach((i, k) => out.set(data.subarray(i * f, (i + 1) * f), k * f));
  return { kind: 'similarity', pairedTabular: { data: out, shape: [owners.length, f] } };
}

interface Job {
  image: number;
  order: Int32Array;
  mode: 'deletion' | 'insertion';
  key: string;
}

/**
 * Deletion and insertion curves of every image for each named ordering of
 * its pixels (one map per image, or a ready order). `images`: N×C×H×W
 * normalised; `target`: the attribution target for those N images.
 */
export async function faithfulness(
  model: ModelInput,
  images: ArrayWithShape,
  target: ImageTarget,
  orders: Record<string, (i: number) => Int32Array>,
  options: FaithfulnessOptions = {},
): Promise<Record<string, FaithfulnessCurves>> {
  const [n, c, h, w] = images.shape;
  const per = c * h * w;
  const { counts, x } = perturbationSchedule(h * w, Math.ceil((h * w) / (options.steps ?? 32)));
  const points = counts.length;
  const sigma = options.blur ?? h / 16;
  const jobsPerCall = Math.max(1, Math.floor((options.chunkFloats ?? 8_000_000) / (points * per)));
  const zeros = new Float32Array(per);
  const blurred = Array.from({ length: n }, (_, i) => gaussianBlur(images.data.subarray(i * per, (i + 1) * per), c, h, w, sigma));
  const jobs: Job[] = [];
  for (const key of Object.keys(orders)) {
    for (let i = 0; i < n; i++) {
      const order = orders[key](i);
      jobs.push({ image: i, order, mode: 'deletion', key }, { image: i, order, mode: 'insertion', key });
    }
  }
  const scores: Float64Array[] = [];
  for (let j0 = 0; j0 < jobs.length; j0 += jobsPerCall) {
    const batch = jobs.slice(j0, j0 + jobsPerCall);
    const data = new Float32Array(batch.length * points * per);
    batch.forEach((job, b) => {
      const x0 = images.data.subarray(job.image * per, (job.image + 1) * per);
      const path = job.mode === 'deletion'
        ? perturbationPath(x0, zeros, job.order, counts, c)
        : perturbationPath(blurred[job.image], x0, job.order, counts, c);
      data.set(path, b * points * per);
    });
    const owners = batch.flatMap((job) => new Array<number>(points).fill(job.image));
    const f = await scoreImages(model, { data, shape: [owners.length, c, h, w] }, { target: expandTarget(target, owners), batchSize: options.batchSize ?? 64 });
    batch.forEach((_, b) => scores.push(f.slice(b * points, (b + 1) * points)));
  }
  const out: Record<string, FaithfulnessCurves> = {};
  jobs.forEach((job, j) => {
    const r = (out[job.key] ??= {
      x: [...x], deletion: new Float64Array(n), insertion: new Float64Array(n), deletionScores: [], insertionScores: [],
      meanDeletion: [], meanInsertion: [],
    });
    const s = scores[j];
    // Deletion runs from the image to the deleted image; insertion from the blurred image to the image.
    const curve = job.mode === 'deletion' ? normaliseCurve(s, s[0], s[points - 1]) : normaliseCurve(s, s[points - 1], s[0]);
    r[job.mode][job.image] = trapezoidAuc(x, curve);
    (job.mode === 'deletion' ? r.deletionScores : r.insertionScores)[job.image] = s;
  });
  for (const r of Object.values(out)) {
    for (const mode of ['deletion', 'insertion'] as const) {
      const all = (mode === 'deletion' ? r.deletionScores : r.insertionScores).map((s) => (mode === 'deletion' ? normaliseCurve(s, s[0], s[points - 1]) : normaliseCurve(s, s[points - 1], s[0])));
      const mean = Array.from(x, (_, k) => {
        const v = all.map((cv) => cv[k]).filter(Number.isFinite);
        return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
      });
      if (mode === 'deletion') r.meanDeletion = mean;
      else r.meanInsertion = mean;
    }
  }
  return out;
}

/** Orders from per-image saliency maps (H·W values each). */
export function mapOrders(maps: readonly Float32Array[]): (i: number) => Int32Array {
  return (i) => saliencyOrder(maps[i]);
}
