/**
 * Forward passes through a run's encoders without gradients, for the
 * comparison metrics: the score F(x) that an attribution explains, on any
 * batch of (perturbed) images, and the pooled image features with the image
 * and tabular projections of paired inputs.
 */
import { native } from '../binding';
import { ShapeError, awaitNative, callNative } from '../errors';
import * as is from '../validate';
import { resolveModel, type ModelInput } from './model-source';
import { checkArray, resolveTarget, targetNeeds, type ArrayWithShape, type ImageTarget } from './targets';

export interface ScoreImagesOptions {
  /** The score, as for the attribution methods. */
  target: ImageTarget;
  /** Images per forward pass. @default 64 */
  batchSize?: number;
}

/**
 * F(x) for every image (normalised float32, N×C×H×W), computed as the
 * attribution methods compute it (the same model loading and target heads):
 * one float64 per image, in order.
 */
export async function scoreImages(model: ModelInput, images: ArrayWithShape, options: ScoreImagesOptions): Promise<Float64Array> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', ['target', 'batchSize']);
  const x = checkArray(images, 'images', 4);
  const batchSize = is.positiveInteger(o.batchSize ?? 64, 'batchSize');
  const target = resolveTarget(o.target, x.shape[0], 'image');
  const needs = targetNeeds(target);
  const m = resolveModel(model, needs.projection || needs.tabular, needs.tabular);
  if (x.shape[1] !== m.inChannels) throw new ShapeError(`Expected ${m.inChannels} channels in images.shape but received ${x.shape[1]}`);
  if (target.pairedTabular && m.cardinalities && target.pairedTabular.shape[1] !== m.cardinalities.length) {
    throw new ShapeError(`Expected ${m.cardinalities.length} columns in target.pairedTabular.shape but received ${target.pairedTabular.shape[1]}`);
  }
  return awaitNative(callNative(() => native().scoreImages(x.data, x.shape, { model: m, target, batchSize })) as Promise<Float64Array>);
}

export interface ProjectPairsOptions {
  /** Also return the image projection head's output (needs a run's checkpoint). @default true when `rows` are given */
  imageProjection?: boolean;
  /** Images (and rows) per forward pass. @default 64 */
  batchSize?: number;
}

export interface Projections {
  /** Pooled image features (the run's embedding), N×D. */
  features: Float32Array;
  featureDim: number;
  /** The image projection head's output, N×P, not normalised. */
  imageProjection?: Float32Array;
  /** The tabular projection head's output for the paired rows, N×P, not normalised. */
  tabularProjection?: Float32Array;
  projectionDim?: number;
}

/**
 * The pooled image features of N images and, from a run's checkpoint, their
 * image projections and the tabular projections of N paired raw rows
 * (continuous values, categorical codes; one-hot encoded with the run's
 * cardinalities as in training), with the encoders in eval mode.
 */
export async function projectPairs(model: ModelInput, images: ArrayWithShape, rows?: ArrayWithShape | null, options: ProjectPairsOptions = {}): Promise<Projections> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', ['imageProjection', 'batchSize']);
  const x = checkArray(images, 'images', 4);
  const r = rows === undefined || rows === null ? null : checkArray(rows, 'rows', 2);
  const imageProjection = is.boolean(o.imageProjection ?? r !== null, 'imageProjection');
  const batchSize = is.positiveInteger(o.batchSize ?? 64, 'batchSize');
  const m = resolveModel(model, imageProjection || r !== null, r !== null);
  if (x.shape[1] !== m.inChannels) throw new ShapeError(`Expected ${m.inChannels} channels in images.shape but received ${x.shape[1]}`);
  if (r) {
    if (r.shape[0] !== x.shape[0]) throw new ShapeError(`Expected ${x.shape[0]} rows (one per image) but received ${r.shape[0]}`);
    if (r.shape[1] !== m.cardinalities!.length) throw new ShapeError(`Expected ${m.cardinalities!.length} columns in rows.shape (the run's tabular features) but received ${r.shape[1]}`);
  }
  /* eslint-disable @typescript-eslint/no-explicit-any */
  const out = await awaitNative(callNative(() => native().projectPairs(x.data, x.shape, r ? r.data : null, r ? r.shape : null, { model: m, imageProjection, batchSize })) as Promise<any>);
  const res: Projections = { features: out.features, featureDim: out.featureShape[1] };
  if (out.imageProjection) Object.assign(res, { imageProjection: out.imageProjection, projectionDim: out.projectionShape[1] });
  if (out.tabularProjection) Object.assign(res, { tabularProjection: out.tabularProjection, projectionDim: out.projectionShape[1] });
  return res;
}
