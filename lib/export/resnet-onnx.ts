/**
 * ONNX export of the image encoder (a torchvision ResNet without `fc`) and of
 * the tabular encoder (MMCL's MLP), from the weights the native core writes
 * (torchvision / nn.Sequential state_dict names, see docs/export.md).
 *
 * BatchNorm in eval mode is an affine map per channel, so it is folded into
 * the convolution (or Linear) right before it, in float64, then rounded to
 * float32:
 *   s  = γ / √(running_var + ε)        (ε = 1e-5, PyTorch's default)
 *   w' = w · s                          (each output channel's filter)
 *   b' = β + (b − running_mean) · s     (b = 0 for convs without bias)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../binding';
import { ConfigError, DataError, ShapeError } from '../errors';
import { invalid, isNumber, oneOf, positiveInteger } from '../validate';
import { BN_EPS, Dim, encodeModel, foldBatchNorm, GraphBuilder, readBn, WeightMap, Weights } from './onnx-builder';

export type ResNetArch = 'resnet18' | 'resnet34' | 'resnet50' | 'resnet101' | 'resnet152';
const ARCHS: Record<ResNetArch, { blocks: number[]; bottleneck: boolean }> = {
  resnet18: { blocks: [2, 2, 2, 2], bottleneck: false },
  resnet34: { blocks: [3, 4, 6, 3], bottleneck: false },
  resnet50: { blocks: [3, 4, 6, 3], bottleneck: true },
  resnet101: { blocks: [3, 4, 23, 3], bottleneck: true },
  resnet152: { blocks: [3, 8, 36, 3], bottleneck: true },
};

export interface ImageEncoderMeta {
  arch: ResNetArch;
  inChannels: number;
  /** 3×3 stride-1 conv1 and no max-pool (28–64 px images). */
  smallStem: boolean;
  /** Fixes H and W in the graph; dynamic when left out. */
  imageSize?: number | [number, number];
  /** @default 1e-5 */
  bnEps?: number;
}

export interface HeadOptions {
  /** Row-major [K, D], as torch's Linear.weight. */
  weight: Float32Array;
  bias: Float32Array;
  /** binary: [negative, positive] (K = 1); multiclass: K names; regression: K names or []. */
  classes: string[];
  kind: 'binary' | 'multiclass' | 'regression';
  task: string;
}

export interface ImageExportOptions {
  /** Baked in before conv1: ((x · inputScale) − mean) / std, per channel. */
  normalize?: { mean: number[]; std: number[]; inputScale?: number };
  head?: HeadOptions;
  /** Range of the values the model takes; null leaves it unspecified. @default [0, 1/inputScale] with normalize, else unspecified */
  inputRange?: [number, number] | null;
  /** Extra metadata_props; keys must not start with "tabsight.". */
  metadata?: Record<string, string>;
  /** A fixed batch size; `false` keeps the batch axis dynamic ("batch"). @default false */
  batchStatic?: false | number;
  /**
   * Static int8 quantization in the QDQ format, from measured activation
   * ranges (calibrateImageEncoder, or exportRun's `quantize`). Leave out for
   * the float32 model.
   */
  quantize?: Int8Quantization;
  /**
   * Adds every activation the int8 model quantizes as an extra graph output
   * (named as in `Int8Quantization.ranges`), for calibration. Not with `quantize`.
   */
  probeActivations?: boolean;
}

/**
 * The int8 model's activation ranges. Weights are quantized per output
 * channel (int8, symmetric, from the BatchNorm-folded float32 weights);
 * activations per tensor (uint8, asymmetric, zero exactly representable).
 */
export interface Int8Quantization {
  /** [min, max] of each quantized activation, keyed by its name in the probe model (`probeActivations`). */
  ranges: Record<string, [number, number]>;
  /** Recorded in the tabsight.quantization metadata (e.g. how the ranges were calibrated). */
  calibration?: Record<string, unknown>;
  /**
   * Weights in [−63, 63] (7 bits) instead of [−127, 127]. x86 CPUs without
   * VNNI multiply uint8 by int8 in pairs summed into int16, which can
   * saturate with 8-bit weights (255 · 127 · 2 > 32767) but not with 7-bit
   * ones. @default false
   */
  reduceRange?: boolean;
}

/** uint8 scale and zero point covering [min(lo, 0), max(hi, 0)]. */
export function activationQuantParams(lo: number, hi: number): { scale: number; zeroPoint: number } {
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const scale = b > a ? Math.fround((b - a) / 255) : 1;
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-a / scale))) };
}

/**
 * Symmetric int8 quantization of a [O, ...] weight per output channel:
 * scale = max|w| / levels (1 for an all-zero channel), q = round(w / scale),
 * with levels 127, or 63 for the reduced (7-bit) range.
 */
export function quantizeWeightPerChannel(weight: Float32Array, out: number, levels: 127 | 63 = 127): { q: Int8Array; scale: Float32Array } {
  if (levels !== 127 && levels !== 63) throw invalid('127 or 63', 'levels', levels);
  const per = weight.length / out;
  const q = new Int8Array(weight.length);
  const scale = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let m = 0;
    for (let i = o * per; i < (o + 1) * per; i++) m = Math.max(m, Math.abs(weight[i]));
    const s = m > 0 ? Math.fround(m / levels) : 1;
    scale[o] = s;
    for (let i = o * per; i < (o + 1) * per; i++) q[i] = Math.max(-levels, Math.min(levels, Math.round(weight[i] / s)));
  }
  return { q, scale };
}

let version: string | undefined;
/** tabsight's version, from its package.json. */
export function tabsightVersion(): string {
  if (!version) {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
    version = pkg.version;
  }
  return version;
}

function callerMetadata(meta: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) {
    if (k.startsWith('tabsight.')) throw invalid('a metadata key not starting with "tabsight."', 'metadata', k);
    if (typeof v !== 'string') throw invalid('string', `metadata["${k}"]`, v);
    out[k] = v;
  }
  return out;
}

function batchDim(batchStatic: false | number | undefined): Dim {
  return batchStatic === undefined || batchStatic === false ? 'batch' : positiveInteger(batchStatic, 'batchStatic');
}

/** Parses the `__metadata__` of image_encoder.safetensors (arch, in_channels, small_stem, image_size?, bn_eps?). */
export function imageEncoderMeta(metadata: Record<string, string>, file = 'image_encoder.safetensors'): ImageEncoderMeta {
  const need = (key: string): string => {
    const v = metadata[key];
    if (v === undefined) throw new DataError(`Missing metadata "${key}" in ${file}`);
    return v;
  };
  const arch = need('arch');
  if (!(arch in ARCHS)) throw new DataError(`Expected one of ${Object.keys(ARCHS).join(', ')} for metadata "arch" in ${file} but received "${arch}"`);
  const inChannels = Number(need('in_channels'));
  if (!Number.isInteger(inChannels) || inChannels < 1) throw new DataError(`Expected positive integer for metadata "in_channels" in ${file} but received "${metadata.in_channels}"`);
  const stem = need('small_stem');
  if (stem !== 'true' && stem !== 'false') throw new DataError(`Expected "true" or "false" for metadata "small_stem" in ${file} but received "${stem}"`);
  const meta: ImageEncoderMeta = { arch: arch as ResNetArch, inChannels, smallStem: stem === 'true' };
  if (metadata.image_size !== undefined) {
    const m = /^(\d+)(?:x(\d+))?$/.exec(metadata.image_size);
    if (!m) throw new DataError(`Expected "S" or "HxW" for metadata "image_size" in ${file} but received "${metadata.image_size}"`);
    meta.imageSize = [Number(m[1]), Number(m[2] ?? m[1])];
  }
  if (metadata.bn_eps !== undefined) {
    meta.bnEps = Number(metadata.bn_eps);
    if (!(meta.bnEps > 0 && Number.isFinite(meta.bnEps))) throw new DataError(`Expected positive number for metadata "bn_eps" in ${file} but received "${metadata.bn_eps}"`);
  }
  return meta;
}

function checkNormalize(n: NonNullable<ImageExportOptions['normalize']>, c: number): { mean: number[]; std: number[]; scale?: number } {
  const vec = (v: unknown, name: string, positive: boolean): number[] => {
    if (!Array.isArray(v) || (v.length !== c && v.length !== 1) || !v.every((x) => isNumber(x) && (!positive || x > 0))) {
      throw invalid(`an array of ${c === 1 ? 1 : `1 or ${c}`} ${positive ? 'positive ' : ''}numbers (one per channel)`, name, v);
    }
    return v.length === c ? [...v] : new Array(c).fill(v[0]);
  };
  const mean = vec(n.mean, 'normalize.mean', false);
  const std = vec(n.std, 'normalize.std', true);
  if (n.inputScale !== undefined && !(isNumber(n.inputScale) && n.inputScale > 0)) throw invalid('positive number', 'normalize.inputScale', n.inputScale);
  return { mean, std, scale: n.inputScale };
}

function checkHead(h: HeadOptions, dim: number): number {
  oneOf(h.kind, 'head.kind', ['binary', 'multiclass', 'regression'] as const);
  if (typeof h.task !== 'string' || h.task === '') throw invalid('non-empty string', 'head.task', h.task);
  if (!(h.weight instanceof Float32Array)) throw new ShapeError(`Expected Float32Array for head.weight but received ${String(h.weight)}`);
  if (!(h.bias instanceof Float32Array) || h.bias.length === 0) throw new ShapeError('Expected non-empty Float32Array for head.bias');
  const k = h.bias.length;
  if (h.weight.length !== k * dim) {
    throw new ShapeError(`Expected ${k}×${dim} = ${k * dim} values for head.weight (${k} outputs, ${dim}-d embedding) but received ${h.weight.length}`);
  }
  const classes = h.classes;
  if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) throw invalid('an array of strings', 'head.classes', classes);
  if (h.kind === 'binary' && (k !== 1 || classes.length !== 2)) {
    throw new ShapeError(`Expected 1 output and 2 classes [negative, positive] for a binary head but received ${k} outputs and ${classes.length} classes`);
  }
  if (h.kind === 'multiclass' && (k < 2 || classes.length !== k)) {
    throw new ShapeError(`Expected as many classes as outputs (≥ 2) for a multiclass head but received ${k} outputs and ${classes.length} classes`);
  }
  if (h.kind === 'regression' && classes.length !== 0 && classes.length !== k) {
    throw new ShapeError(`Expected ${k} target names (or none) for a regression head but received ${classes.length}`);
  }
  return k;
}

/**
 * Builds the ONNX model of a ResNet image encoder from its weights. Input
 * `image` float32 [batch, C, H, W]; output `embedding` [batch, D] (pooled
 * features), plus `logits` and `probabilities` (or `prediction`) with a head.
 */
export function exportImageEncoder(weights: WeightMap, meta: ImageEncoderMeta, opts: ImageExportOptions = {}): Uint8Array {
  const arch = oneOf(meta.arch, 'meta.arch', Object.keys(ARCHS) as ResNetArch[]);
  const c = positiveInteger(meta.inChannels, 'meta.inChannels');
  if (typeof meta.smallStem !== 'boolean') throw invalid('boolean', 'meta.smallStem', meta.smallStem);
  const eps = meta.bnEps ?? BN_EPS;
  let hw: [Dim, Dim] = ['height', 'width'];
  if (meta.imageSize !== undefined) {
    const s = typeof meta.imageSize === 'number' ? [meta.imageSize, meta.imageSize] : meta.imageSize;
    hw = [positiveInteger(s[0], 'meta.imageSize[0]'), positiveInteger(s[1], 'meta.imageSize[1]')];
  }
  const { blocks, bottleneck } = ARCHS[arch];
  const dim = 512 * (bottleneck ? 4 : 1);
  const norm = opts.normalize ? checkNormalize(opts.normalize, c) : undefined;
  const k = opts.head ? checkHead(opts.head, dim) : 0;
  const extra = callerMetadata(opts.metadata);
  const batch = batchDim(opts.batchStatic);

  const quant = opts.quantize;
  const probing = opts.probeActivations === true;
  if (quant && probing) throw new ConfigError('Give quantize or probeActivations, not both');
  if (quant && (typeof quant.ranges !== 'object' || quant.ranges === null)) throw invalid('an object of [min, max] ranges', 'quantize.ranges', quant.ranges);
  if (quant?.reduceRange !== undefined && typeof quant.reduceRange !== 'boolean') throw invalid('boolean', 'quantize.reduceRange', quant.reduceRange);
  const range = opts.inputRange === null ? undefined : opts.inputRange ?? (norm ? [0, 1 / (norm.scale ?? 1)] : undefined);
  if (range !== undefined && (!Array.isArray(range) || range.length !== 2 || !range.every(isNumber) || range[0] >= range[1])) {
    throw invalid('[low, high] with low < high', 'inputRange', range);
  }

  const W = new Weights(weights, `${arch} image encoder (${c} channel${c === 1 ? '' : 's'}${meta.smallStem ? ', small stem' : ''})`);
  const g = new GraphBuilder();
  let x = g.input('image', [batch, c, ...hw], `float32 images [batch, ${c}, H, W]`);

  // Quantization: each activation a Conv reads passes through QuantizeLinear →
  // DequantizeLinear; onnxruntime fuses the pattern into integer kernels.
  // Each DequantizeLinear output → the activation it carries (whose parameters are in actParams).
  const dqOf = new Map<string, string>();
  let ranges: Record<string, [number, number]> = quant ? { ...quant.ranges } : {};
  const actParams = new Map<string, { scale: number; zeroPoint: number }>();
  const probed: string[] = [];
  const act = (v: string, sameAs?: string): string => {
    if (probing) {
      // The graph input is not an output: the calibration reads its range from the images.
      if (sameAs === undefined && v !== 'image') {
        probed.push(v);
        g.output(v, [batch, '?', '?', '?'], 'calibration probe');
      }
      return v;
    }
    if (!quant) return v;
    let p = sameAs === undefined ? undefined : actParams.get(sameAs);
    if (!p) {
      const r = ranges[v];
      if (!Array.isArray(r) || r.length !== 2 || !r.every((e) => Number.isFinite(e)) || r[0] > r[1]) {
        throw invalid('[min, max] of finite numbers with min ≤ max', `quantize.ranges["${v}"]`, r);
      }
      p = activationQuantParams(r[0], r[1]);
    }
    actParams.set(v, p);
    const sc = g.constant(`${v}.scale`, [], Float32Array.of(p.scale));
    const zp = g.constant(`${v}.zero_point`, [], Uint8Array.of(p.zeroPoint));
    const dq = g.node('DequantizeLinear', [g.node('QuantizeLinear', [v, sc, zp], { hint: `${v}.q` }), sc, zp], { hint: `${v}.dq` });
    dqOf.set(dq, v);
    return dq;
  };

  const convBn = (input: string, conv: string, bn: string, o: number, i: number, kernel: number, stride: number, pad: number): string => {
    const w = W.get(`${conv}.weight`, [o, i, kernel, kernel]);
    const f = foldBatchNorm(w, undefined, readBn(W, bn, o), eps);
    let wn: string;
    let bnName: string;
    const inKey = dqOf.get(input);
    if (quant && inKey !== undefined) {
      const inScale = actParams.get(inKey)!.scale;
      const wq = quantizeWeightPerChannel(f.weight, o, quant.reduceRange ? 63 : 127);
      const bScale = Float32Array.from(wq.scale, (s) => Math.fround(inScale * s));
      const bq = new Int32Array(o);
      for (let k = 0; k < o; k++) {
        const v = Math.round(f.bias[k] / bScale[k]);
        if (!(Math.abs(v) <= 2147483647)) {
          throw new DataError(`The folded bias of ${conv} (channel ${k}: ${f.bias[k]}) does not fit int32 at scale ${bScale[k]}; export without quantization`);
        }
        bq[k] = v;
      }
      const dq = (hint: string, dims: number[], data: Int8Array | Int32Array, scale: Float32Array): string =>
        g.node('DequantizeLinear', [
          g.constant(`${hint}_quantized`, dims, data), g.constant(`${hint}_scale`, [o], scale),
          g.constant(`${hint}_zero_point`, [o], data instanceof Int8Array ? new Int8Array(o) : new Int32Array(o)),
        ], { hint: `${hint}_dq`, attrs: { axis: 0 } });
      wn = dq(`${conv}.weight`, [o, i, kernel, kernel], wq.q, wq.scale);
      bnName = dq(`${conv}.bias`, [o], bq, bScale);
    } else {
      if (quant) throw new Error(`internal: the input of ${conv} is not quantized`);
      wn = g.constant(`${conv}.weight`, [o, i, kernel, kernel], f.weight);
      bnName = g.constant(`${conv}.bias`, [o], f.bias);
    }
    return g.node('Conv', [input, wn, bnName], {
      hint: conv,
      attrs: { kernel_shape: [kernel, kernel], strides: [stride, stride], pads: [pad, pad, pad, pad], dilations: [1, 1], group: 1 },
    });
  };
  const relu = (v: string): string => g.node('Relu', [v], { hint: `${v}_relu` });

  if (norm) {
    if (norm.scale !== undefined && norm.scale !== 1) x = g.node('Mul', [x, g.constant('input_scale', [1], Float32Array.of(norm.scale))], { hint: 'scaled' });
    x = g.node('Sub', [x, g.constant('norm_mean', [1, c, 1, 1], Float32Array.from(norm.mean))], { hint: 'centred' });
    x = g.node('Div', [x, g.constant('norm_std', [1, c, 1, 1], Float32Array.from(norm.std))], { hint: 'normalized' });
  }
  if (quant && range !== undefined) {
    // The input's range is known: no calibration needed, and nothing clips.
    const ends = [range[0], range[1]].flatMap((r) => Array.from({ length: c }, (_, k) => norm ? (r * (norm.scale ?? 1) - norm.mean[k]) / norm.std[k] : r));
    ranges = { ...ranges, [x]: [Math.min(...ends), Math.max(...ends)] };
  }
  x = act(x);
  x = meta.smallStem ? act(relu(convBn(x, 'conv1', 'bn1', 64, c, 3, 1, 1))) : act(relu(convBn(x, 'conv1', 'bn1', 64, c, 7, 2, 3)));
  if (!meta.smallStem) {
    // Max pooling commutes with the quantization: the same scale and zero point.
    const before = x;
    x = g.node('MaxPool', [x], { hint: 'maxpool', attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } });
    if (quant) x = act(x, dqOf.get(before));
  }
  let inplanes = 64;
  blocks.forEach((n, li) => {
    const planes = 64 * 2 ** li;
    const outC = planes * (bottleneck ? 4 : 1);
    for (let b = 0; b < n; b++) {
      const p = `layer${li + 1}.${b}`;
      const stride = b === 0 && li > 0 ? 2 : 1;
      let y: string;
      if (bottleneck) {
        y = act(relu(convBn(x, `${p}.conv1`, `${p}.bn1`, planes, inplanes, 1, 1, 0)));
        y = act(relu(convBn(y, `${p}.conv2`, `${p}.bn2`, planes, planes, 3, stride, 1)));
        y = act(convBn(y, `${p}.conv3`, `${p}.bn3`, outC, planes, 1, 1, 0));
      } else {
        y = act(relu(convBn(x, `${p}.conv1`, `${p}.bn1`, planes, inplanes, 3, stride, 1)));
        y = act(convBn(y, `${p}.conv2`, `${p}.bn2`, planes, planes, 3, 1, 1));
      }
      const identity = stride !== 1 || inplanes !== outC
        ? act(convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, outC, inplanes, 1, stride, 0))
        : x;
      x = act(relu(g.node('Add', [y, identity], { hint: `${p}.add` })));
      inplanes = outC;
    }
  });
  W.checkAllUsed((name) => name.startsWith('fc.') || name.endsWith('.num_batches_tracked'));
  x = g.node('GlobalAveragePool', [x], { hint: 'avgpool' });
  g.node('Flatten', [x], { out: 'embedding', attrs: { axis: 1 } });
  g.output('embedding', [batch, dim], `pooled ${arch} features`);
  const outputs = ['embedding'];
  if (probing) outputs.push(...probed);

  const metadata: Record<string, string> = {
    'tabsight.version': tabsightVersion(),
    'tabsight.model': 'image_encoder',
    'tabsight.arch': arch,
    'tabsight.in_channels': String(c),
    'tabsight.small_stem': String(meta.smallStem),
    'tabsight.image_size': typeof hw[0] === 'number' ? `${hw[0]}x${hw[1]}` : 'dynamic',
    'tabsight.input_dtype': 'float32',
    'tabsight.embedding_dim': String(dim),
    'tabsight.bn_eps': String(eps),
    'tabsight.normalization': norm ? JSON.stringify({ mean: norm.mean, std: norm.std, input_scale: norm.scale ?? 1 }) : 'none',
    'tabsight.quantization': quant
      ? JSON.stringify({
        scheme: 'int8 QDQ',
        weights: `int8${quant.reduceRange ? ' in [-63, 63] (reduced range)' : ''}, symmetric, per output channel`,
        activations: 'uint8, per tensor, calibrated min-max',
        tensors: actParams.size, ...(quant.calibration ?? {}),
      })
      : 'none',
  };
  if (range !== undefined) {
    metadata['tabsight.input_range'] = `${range[0]},${Math.round(range[1] * 1e6) / 1e6}`;
  } else {
    metadata['tabsight.input_range'] = 'unspecified';
  }

  if (opts.head) {
    const h = opts.head;
    const wn = g.constant('head.weight', [k, dim], h.weight);
    const bn = g.constant('head.bias', [k], h.bias);
    const gemm = { attrs: { alpha: 1, beta: 1, transA: 0, transB: 1 }, floats: ['alpha', 'beta'] };
    if (h.kind === 'regression') {
      g.node('Gemm', ['embedding', wn, bn], { out: 'prediction', ...gemm });
      g.output('prediction', [batch, k], `${h.task} prediction`);
      outputs.push('prediction');
    } else {
      g.node('Gemm', ['embedding', wn, bn], { out: 'logits', ...gemm });
      g.output('logits', [batch, k], `${h.task} logits`);
      if (h.kind === 'binary') g.node('Sigmoid', ['logits'], { out: 'probabilities' });
      else g.node('Softmax', ['logits'], { out: 'probabilities', attrs: { axis: 1 } });
      g.output('probabilities', [batch, k], h.kind === 'binary' ? `P(${h.classes[1]})` : 'class probabilities');
      outputs.push('logits', 'probabilities');
    }
    metadata['tabsight.head.task'] = h.task;
    metadata['tabsight.head.kind'] = h.kind;
    metadata['tabsight.head.classes'] = JSON.stringify(h.classes);
  }
  metadata['tabsight.outputs'] = outputs.join(',');
  return encodeModel(g.graph(`tabsight_${arch}_image_encoder`), {
    producerVersion: tabsightVersion(),
    docString: `tabsight ${arch} image encoder (BatchNorm folded into Conv${quant ? '; int8 QDQ' : ''})`,
    metadata: { ...metadata, ...extra },
  });
}

export interface TabularEncoderMeta {
  /** Checked against encoder.0.weight when given. */
  inFeatures?: number;
  /** Number of Linear layers; inferred from the weights when left out. */
  layers?: number;
  /** @default 1e-5 */
  bnEps?: number;
}

/**
 * Builds the ONNX model of the tabular encoder: Linear(in, h), then
 * (layers − 1) × [BatchNorm1d, ReLU, Linear(h, h)] (nn.Sequential indices
 * 0 Linear, 1 BN, 2 ReLU, 3 Linear, ...). Each BN is folded into the Linear
 * before it. Input `features` float32 [batch, in]; output `embedding`.
 */
export function exportTabularEncoder(
  weights: WeightMap,
  meta: TabularEncoderMeta = {},
  opts: { metadata?: Record<string, string>; batchStatic?: false | number } = {},
): Uint8Array {
  const W = new Weights(weights, 'tabular encoder');
  let layers = meta.layers;
  if (layers === undefined) {
    layers = 0;
    while (W.has(`encoder.${3 * layers}.weight`)) layers++;
    if (layers === 0) W.shape('encoder.0.weight');
  } else {
    positiveInteger(layers, 'meta.layers');
  }
  const eps = meta.bnEps ?? BN_EPS;
  const extra = callerMetadata(opts.metadata);
  const batch = batchDim(opts.batchStatic);
  const s0 = W.shape('encoder.0.weight');
  if (s0.length !== 2) throw new DataError(`Weight "encoder.0.weight" has shape [${s0.join(', ')}] but the tabular encoder needs [hidden, in_features]`);
  const inFeatures = s0[1];
  if (meta.inFeatures !== undefined && meta.inFeatures !== inFeatures) {
    throw new ShapeError(`Expected ${meta.inFeatures} input features but weight "encoder.0.weight" takes ${inFeatures}`);
  }
  // Linear layers with the following BN folded in.
  const linear: { weight: Float32Array; bias: Float32Array; out: number; in: number }[] = [];
  let prevOut = inFeatures;
  for (let l = 0; l < layers; l++) {
    const name = `encoder.${3 * l}`;
    const out = W.shape(`${name}.weight`)[0];
    const weight = W.get(`${name}.weight`, [out, prevOut]);
    const bias = W.has(`${name}.bias`) ? W.get(`${name}.bias`, [out]) : new Float32Array(out);
    linear.push({ weight, bias, out, in: prevOut });
    if (l > 0) {
      const prev = linear[l - 1];
      const f = foldBatchNorm(prev.weight, prev.bias, readBn(W, `encoder.${3 * l - 2}`, prev.out), eps);
      prev.weight = f.weight;
      prev.bias = f.bias;
    }
    prevOut = out;
  }
  W.checkAllUsed((name) => name.endsWith('.num_batches_tracked'));

  const g = new GraphBuilder();
  let x = g.input('features', [batch, inFeatures], `float32 features [batch, ${inFeatures}]`);
  linear.forEach((lin, l) => {
    if (l > 0) x = g.node('Relu', [x], { hint: `encoder.${3 * l - 1}` });
    const wn = g.constant(`encoder.${3 * l}.weight`, [lin.out, lin.in], lin.weight);
    const bn = g.constant(`encoder.${3 * l}.bias`, [lin.out], lin.bias);
    x = g.node('Gemm', [x, wn, bn], {
      out: l === layers! - 1 ? 'embedding' : undefined,
      hint: `encoder.${3 * l}`,
      attrs: { alpha: 1, beta: 1, transB: 1 },
      floats: ['alpha', 'beta'],
    });
  });
  const dim = linear[linear.length - 1].out;
  g.output('embedding', [batch, dim], 'tabular embedding');
  return encodeModel(g.graph('tabsight_tabular_encoder'), {
    producerVersion: tabsightVersion(),
    docString: 'tabsight tabular encoder (BatchNorm1d folded into Linear)',
    metadata: {
      'tabsight.version': tabsightVersion(),
      'tabsight.model': 'tabular_encoder',
      'tabsight.in_features': String(inFeatures),
      'tabsight.layers': String(layers),
      'tabsight.embedding_dim': String(dim),
      'tabsight.bn_eps': String(eps),
      'tabsight.outputs': 'embedding',
      ...extra,
    },
  });
}
