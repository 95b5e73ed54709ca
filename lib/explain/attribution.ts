/**
 * Attribution methods on a run's encoders, computed in the native core:
 * Integrated Gradients, saliency, GradCAM, Guided Backprop, Guided GradCAM
 * and NoiseTunnel on images; Integrated Gradients on tabular rows. Captum
 * 0.8's conventions unless stated (see docs/explain.md).
 */
import { native } from '../binding';
import { ConfigError, ShapeError, awaitNative, callNative } from '../errors';
import * as is from '../validate';
import { ModelInput, NativeModel, resolveModel } from './model-source';
import { ArrayWithShape, ImageTarget, NativeTarget, TabularTarget, checkArray, resolveTarget, targetNeeds } from './targets';

export const IG_METHODS = ['gausslegendre', 'riemann_left', 'riemann_right', 'riemann_middle', 'riemann_trapezoid'] as const;
export type IgMethod = (typeof IG_METHODS)[number];
export const CAM_LAYERS = ['conv1', 'layer1', 'layer2', 'layer3', 'layer4'] as const;
export type CamLayer = (typeof CAM_LAYERS)[number];

/** Normalised float32 images, N×C×H×W (what the encoder sees). */
export type AttributionImages = ArrayWithShape;

export interface Attribution {
  attributions: Float32Array;
  shape: number[];
  /** Integrated Gradients only: Σ attribution − (F(x) − F(baseline)) per example. */
  delta?: Float64Array;
  /** Integrated Gradients only: F(x) per example. */
  scores?: Float64Array;
  /** Integrated Gradients only: F(baseline) per example. */
  baselineScores?: Float64Array;
}

interface TargetOptions<T> {
  /** The score to explain. */
  target: T;
}

interface BatchOptions {
  /** Images per forward/backward pass. @default 16 */
  batchSize?: number;
}

export interface IntegratedGradientsOptions extends TargetOptions<ImageTarget> {
  /** Quadrature of the path integral. @default 'gausslegendre' */
  method?: IgMethod;
  /** Quadrature points. @default 50 */
  steps?: number;
  /**
   * 'zeros', a Gaussian blur of each input ({ blur: sigma in pixels }), or a
   * tensor of the inputs' shape or of one image's shape (e.g. the cohort's
   * mean image). @default 'zeros'
   */
  baseline?: 'zeros' | { blur: number } | ArrayWithShape;
  /** Path points (steps × images) per forward/backward pass. @default 64 */
  internalBatchSize?: number;
}

export interface SaliencyOptions extends TargetOptions<ImageTarget>, BatchOptions {
  /** Absolute value of the gradient (Captum's Saliency default). @default true */
  abs?: boolean;
}

export interface GradCamOptions extends TargetOptions<ImageTarget>, BatchOptions {
  /** @default 'layer4' */
  layer?: CamLayer;
  /** ReLU on the map (Captum's relu_attributions). @default false */
  relu?: boolean;
  /** Per-image min–max normalisation, before resizing (pytorch-grad-cam). @default false */
  normalize?: boolean;
  /** Resize to the input: 'nearest' (Captum), 'bilinear' (pytorch-grad-cam) or 'none'. @default 'none' */
  upsample?: 'none' | 'nearest' | 'bilinear';
}

export type GuidedBackpropOptions = TargetOptions<ImageTarget> & BatchOptions;

export interface GuidedGradCamOptions extends TargetOptions<ImageTarget>, BatchOptions {
  /** @default 'layer4' */
  layer?: CamLayer;
}

export type WrappedMethod = 'integratedGradients' | 'saliency' | 'gradCam' | 'guidedBackprop' | 'guidedGradCam';

export interface NoiseTunnelOptions extends TargetOptions<ImageTarget> {
  /** The wrapped method. */
  method: WrappedMethod;
  /** The wrapped method's options, without target. @default {} */
  methodOptions?: Record<string, unknown>;
  /** @default 'smoothgrad' */
  type?: 'smoothgrad' | 'smoothgrad_sq' | 'vargrad';
  /** Noisy copies. @default 5 */
  samples?: number;
  /**
   * Absolute standard deviation of the Gaussian noise: one for all images,
   * or one per image (an array of N, e.g. SmoothGrad's fraction of each
   * image's own max − min). @default 1.0
   */
  stdev?: number | number[];
  /** Noise seed. @default 0 */
  seed?: number;
}

export interface TabularIntegratedGradientsOptions extends TargetOptions<TabularTarget> {
  /** @default 'gausslegendre' */
  method?: IgMethod;
  /** @default 50 */
  steps?: number;
  /** 'zeros' or a baseline in the one-hot encoded space: W values or {data, shape: [N, W]}. @default 'zeros' */
  baseline?: 'zeros' | Float32Array | ArrayWithShape;
  /** @default 64 */
  internalBatchSize?: number;
}

export interface TabularAttribution extends Attribution {
  /** One value per one-hot encoded column, N×W. */
  encodedAttributions: Float32Array;
  encodedShape: number[];
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type NativeMethod = Record<string, any>;

const IG_KEYS = ['target', 'method', 'steps', 'baseline', 'internalBatchSize'];

function checkImages(images: unknown): { data: Float32Array; shape: number[] } {
  return checkArray(images, 'images', 4);
}

function igMethod(o: Record<string, unknown>): NativeMethod {
  const method = is.oneOf(o.method ?? 'gausslegendre', 'method', IG_METHODS);
  const steps = is.integer(o.steps ?? 50, 'steps', method === 'riemann_trapezoid' ? 2 : 1, 100000);
  const internalBatchSize = is.positiveInteger(o.internalBatchSize ?? 64, 'internalBatchSize');
  return { name: 'integrated_gradients', igMethod: method, steps, internalBatchSize };
}

function imageBaseline(value: unknown, images: { shape: number[] }): NativeMethod {
  if (value === undefined || value === 'zeros') return { kind: 'zeros' };
  if (typeof value === 'object' && value !== null && 'blur' in value) {
    is.knownKeys(value as Record<string, unknown>, 'baseline', ['blur']);
    return { kind: 'blur', sigma: is.nonNegativeNumber((value as { blur: unknown }).blur, 'baseline.blur') };
  }
  if (typeof value !== 'object' || value === null) throw is.invalid("'zeros', { blur: sigma } or { data, shape }", 'baseline', value);
  const rank = Array.isArray((value as { shape?: unknown }).shape) ? ((value as { shape: unknown[] }).shape.length) : 4;
  const b = checkArray(value, 'baseline', rank === 3 ? 3 : 4);
  const one = images.shape.slice(1).join(',');
  const ok = b.shape.join(',') === images.shape.join(',') || b.shape.slice(-3).join(',') === one && (b.shape.length === 3 || b.shape[0] === 1);
  if (!ok) throw new ShapeError(`Expected baseline.shape [${images.shape.join(', ')}] or [${images.shape.slice(1).join(', ')}] but received [${b.shape.join(', ')}]`);
  return { kind: 'tensor', data: b.data, shape: b.shape };
}

function batch(o: Record<string, unknown>): number {
  return is.positiveInteger(o.batchSize ?? 16, 'batchSize');
}

/** Builds the native method object for one image method; keys are checked. */
function imageMethod(name: WrappedMethod, o: Record<string, unknown>, images: { shape: number[] }, extraKeys: string[] = []): NativeMethod {
  switch (name) {
    case 'integratedGradients':
      is.knownKeys(o, '', [...IG_KEYS, ...extraKeys]);
      return { ...igMethod(o), baseline: imageBaseline(o.baseline, images) };
    case 'saliency':
      is.knownKeys(o, '', ['target', 'abs', 'batchSize', ...extraKeys]);
      return { name: 'saliency', abs: is.boolean(o.abs ?? true, 'abs'), batchSize: batch(o) };
    case 'gradCam':
      is.knownKeys(o, '', ['target', 'layer', 'relu', 'normalize', 'upsample', 'batchSize', ...extraKeys]);
      return {
        name: 'gradcam',
        layer: is.oneOf(o.layer ?? 'layer4', 'layer', CAM_LAYERS),
        relu: is.boolean(o.relu ?? false, 'relu'),
        normalize: is.boolean(o.normalize ?? false, 'normalize'),
        upsample: is.oneOf(o.upsample ?? 'none', 'upsample', ['none', 'nearest', 'bilinear'] as const),
        batchSize: batch(o),
      };
    case 'guidedBackprop':
      is.knownKeys(o, '', ['target', 'batchSize', ...extraKeys]);
      return { name: 'guided_backprop', batchSize: batch(o) };
    case 'guidedGradCam':
      is.knownKeys(o, '', ['target', 'layer', 'batchSize', ...extraKeys]);
      return { name: 'guided_gradcam', layer: is.oneOf(o.layer ?? 'layer4', 'layer', CAM_LAYERS), relu: true, normalize: false, upsample: 'nearest', batchSize: batch(o) };
    default:
      throw is.invalid('one of integratedGradients, saliency, gradCam, guidedBackprop, guidedGradCam', 'method', name);
  }
}

function toResult(out: any): Attribution {
  const r: Attribution = { attributions: out.attributions, shape: out.shape };
  if (out.delta) Object.assign(r, { delta: out.delta, scores: out.scores, baselineScores: out.baselineScores });
  return r;
}

async function runImages(model: ModelInput, images: unknown, options: unknown, build: (o: Record<string, unknown>, x: { shape: number[] }) => NativeMethod): Promise<Attribution> {
  const o = is.plainObject(options, 'options');
  const x = checkImages(images);
  const method = build(o, x);
  const target: NativeTarget = resolveTarget(o.target, x.shape[0], 'image');
  const needs = targetNeeds(target);
  const m: NativeModel = resolveModel(model, needs.projection || needs.tabular, needs.tabular);
  if (x.shape[1] !== m.inChannels) throw new ShapeError(`Expected ${m.inChannels} channels in images.shape but received ${x.shape[1]}`);
  if (target.pairedTabular && m.cardinalities && target.pairedTabular.shape[1] !== m.cardinalities.length) {
    throw new ShapeError(`Expected ${m.cardinalities.length} columns in target.pairedTabular.shape but received ${target.pairedTabular.shape[1]}`);
  }
  const out = await awaitNative(callNative(() => native().attributeImages(x.data, x.shape, { model: m, target, method })) as Promise<any>);
  return toResult(out);
}

/** Integrated Gradients of a target with respect to the input pixels. */
export function integratedGradients(model: ModelInput, images: AttributionImages, options: IntegratedGradientsOptions): Promise<Attribution> {
  return runImages(model, images, options, (o, x) => imageMethod('integratedGradients', o, x));
}

/** The input gradient (|∂F/∂x| by default). */
export function saliency(model: ModelInput, images: AttributionImages, options: SaliencyOptions): Promise<Attribution> {
  return runImages(model, images, options, (o, x) => imageMethod('saliency', o, x));
}

/** GradCAM on a residual stage (or conv1): N×1×h×w, or N×1×H×W when upsampled. */
export function gradCam(model: ModelInput, images: AttributionImages, options: GradCamOptions): Promise<Attribution> {
  return runImages(model, images, options, (o, x) => imageMethod('gradCam', o, x));
}

/** Guided Backprop, batched: N×C×H×W. */
export function guidedBackprop(model: ModelInput, images: AttributionImages, options: GuidedBackpropOptions): Promise<Attribution> {
  return runImages(model, images, options, (o, x) => imageMethod('guidedBackprop', o, x));
}

/** Guided Backprop × nearest-upsampled ReLU GradCAM: N×C×H×W. */
export function guidedGradCam(model: ModelInput, images: AttributionImages, options: GuidedGradCamOptions): Promise<Attribution> {
  return runImages(model, images, options, (o, x) => imageMethod('guidedGradCam', o, x));
}

/** SmoothGrad, SmoothGrad² or VarGrad around any image method. */
export function noiseTunnel(model: ModelInput, images: AttributionImages, options: NoiseTunnelOptions): Promise<Attribution> {
  return runImages(model, images, options, (o, x) => {
    is.knownKeys(o, '', ['target', 'method', 'methodOptions', 'type', 'samples', 'stdev', 'seed']);
    const name = is.oneOf(o.method, 'method', ['integratedGradients', 'saliency', 'gradCam', 'guidedBackprop', 'guidedGradCam'] as const);
    const inner = is.plainObject(o.methodOptions ?? {}, 'methodOptions');
    if ('target' in inner) throw new ConfigError('Expected the target in options.target, not in methodOptions');
    const method = imageMethod(name, { ...inner, target: o.target }, x);
    method.noise = {
      type: is.oneOf(o.type ?? 'smoothgrad', 'type', ['smoothgrad', 'smoothgrad_sq', 'vargrad'] as const),
      samples: is.integer(o.samples ?? 5, 'samples', 1, 10000),
      stdev: noiseStdev(o.stdev, x.shape[0]),
      seed: is.integer(o.seed ?? 0, 'seed', 0, Number.MAX_SAFE_INTEGER),
    };
    return method;
  });
}

/** noiseTunnel's stdev: a non-negative number, or one per image (N of them). */
function noiseStdev(v: unknown, n: number): number | number[] {
  if (v === undefined) return 1.0;
  if (!Array.isArray(v)) return is.nonNegativeNumber(v, 'stdev');
  if (v.length !== n) throw new ShapeError(`Expected ${n} values in stdev (one per image) but received ${v.length}`);
  return v.map((s, i) => is.nonNegativeNumber(s, `stdev[${i}]`));
}

/**
 * Integrated Gradients over the tabular encoder's input. Rows are raw
 * (continuous values and categorical codes); attributions of one-hot columns
 * are summed back to their feature (N×F), and also returned per column.
 */
export async function tabularIntegratedGradients(model: ModelInput, rows: ArrayWithShape, options: TabularIntegratedGradientsOptions): Promise<TabularAttribution> {
  const o = is.plainObject(options, 'options');
  is.knownKeys(o, '', IG_KEYS);
  const x = checkArray(rows, 'rows', 2);
  const method = igMethod(o);
  const target = resolveTarget(o.target, x.shape[0], 'tabular');
  const needsImages = target.pairedImages !== undefined;
  const m = resolveModel(model, true, true);
  const cards = m.cardinalities as number[];
  if (x.shape[1] !== cards.length) throw new ShapeError(`Expected ${cards.length} columns in rows.shape (the run's tabular features) but received ${x.shape[1]}`);
  if (needsImages && target.pairedImages!.shape[1] !== m.inChannels) {
    throw new ShapeError(`Expected ${m.inChannels} channels in target.pairedImages.shape but received ${target.pairedImages!.shape[1]}`);
  }
  const width = cards.reduce((a, k) => a + (k === 0 ? 1 : k), 0);
  const b = o.baseline ?? 'zeros';
  if (b !== 'zeros') {
    const arr = b instanceof Float32Array ? { data: b, shape: [b.length] } : checkArray(b, 'baseline', 2);
    const ok = arr.shape.length === 1 ? arr.shape[0] === width : arr.shape[1] === width && (arr.shape[0] === 1 || arr.shape[0] === x.shape[0]);
    if (!ok) throw new ShapeError(`Expected baseline of ${width} values (the one-hot encoded width) or shape [${x.shape[0]}, ${width}] but received shape [${arr.shape.join(', ')}]`);
    method.baseline = { kind: 'tensor', data: arr.data, shape: arr.shape };
  }
  const out = await awaitNative(callNative(() => native().attributeTabular(x.data, x.shape, { model: m, target, method })) as Promise<any>);
  return { ...toResult(out), encodedAttributions: out.encodedAttributions, encodedShape: out.encodedShape };
}

/** IG's quadrature on [0, 1]: path positions α and weights, as used for `steps` points. */
export function integrationPoints(method: IgMethod, steps: number): { alphas: Float64Array; weights: Float64Array } {
  const m = is.oneOf(method, 'method', IG_METHODS);
  const n = is.integer(steps, 'steps', m === 'riemann_trapezoid' ? 2 : 1, 100000);
  return callNative(() => native().integrationPoints(m, n)) as { alphas: Float64Array; weights: Float64Array };
}
