/**
 * Small helpers to build ONNX graphs over onnx-proto (protobufjs classes for
 * onnx.proto, v1.10). The models written here use IR version 7 and the
 * default-domain opset 13, which onnx-proto 8.0.1 encodes correctly and
 * onnxruntime and onnx.checker (full_check) accept.
 */
import { onnx } from 'onnx-proto';
import { DataError, ShapeError } from '../errors';
import { SafeTensor, toFloat32 } from '../io/safetensors';

export const IR_VERSION = 7;
export const OPSET = 13;
/** PyTorch's BatchNorm default ε. */
export const BN_EPS = 1e-5;

export type AttrValue = number | number[] | string;
/** Attribute values: integers go out as INT(S) unless listed in `floats`. */
export type Attrs = Record<string, AttrValue>;

/** A dimension: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const DT = onnx.TensorProto.DataType;

/** Initializer data: float32, int64, or the integer types of quantized models (int8, uint8, int32). */
export type TensorData = Float32Array | BigInt64Array | Int8Array | Uint8Array | Int32Array;

function dataType(data: TensorData): onnx.TensorProto.DataType {
  if (data instanceof Float32Array) return DT.FLOAT;
  if (data instanceof BigInt64Array) return DT.INT64;
  if (data instanceof Int8Array) return DT.INT8;
  if (data instanceof Uint8Array) return DT.UINT8;
  return DT.INT32;
}

function littleEndianBytes(data: TensorData): Uint8Array {
  // Every platform Node supports is little-endian, as raw_data requires.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** An initializer: values stored as raw little-endian bytes. */
export function tensor(name: string, dims: readonly number[], data: TensorData): onnx.ITensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`tensor ${name}: dims [${dims.join(', ')}] need ${count} values, got ${data.length}`);
  return {
    name,
    dims: [...dims],
    dataType: dataType(data),
    rawData: littleEndianBytes(data),
  };
}

function attribute(name: string, value: AttrValue, asFloat: boolean): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: Buffer.from(value, 'utf8') };
  if (Array.isArray(value)) return asFloat ? { name, type: T.FLOATS, floats: value } : { name, type: T.INTS, ints: value };
  return asFloat ? { name, type: T.FLOAT, f: value } : { name, type: T.INT, i: value };
}

/** A float32 tensor type with the given dims. */
export function valueInfo(name: string, dims: readonly Dim[], docString?: string): onnx.IValueInfoProto {
  return {
    name,
    docString: docString ?? null,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Accumulates nodes, initializers, inputs and outputs of one graph. */
export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  readonly inputs: onnx.IValueInfoProto[] = [];
  readonly outputs: onnx.IValueInfoProto[] = [];
  readonly #used = new Set<string>();
  #counter = 0;

  /** A value name not used yet, derived from `hint`. */
  name(hint: string): string {
    let n = hint;
    while (this.#used.has(n)) n = `${hint}_${++this.#counter}`;
    this.#used.add(n);
    return n;
  }

  input(name: string, dims: readonly Dim[], doc?: string): string {
    this.#used.add(name);
    this.inputs.push(valueInfo(name, dims, doc));
    return name;
  }

  output(name: string, dims: readonly Dim[], doc?: string): void {
    this.outputs.push(valueInfo(name, dims, doc));
  }

  /** Adds an initializer and returns its name. */
  constant(hint: string, dims: readonly number[], data: TensorData): string {
    const n = this.name(hint);
    this.initializers.push(tensor(n, dims, data));
    return n;
  }

  /**
   * Adds a node and returns its (first) output name. `out` fixes the output
   * name (e.g. a graph output); otherwise one is derived from `hint`.
   */
  node(op: string, inputs: string[], opts: { hint?: string; out?: string; attrs?: Attrs; floats?: string[] } = {}): string {
    const out = opts.out ?? this.name(opts.hint ?? op.toLowerCase());
    if (opts.out) this.#used.add(out);
    const floats = new Set(opts.floats ?? []);
    this.nodes.push({
      name: `${op}_${this.nodes.length}`,
      opType: op,
      input: inputs,
      output: [out],
      attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => attribute(k, v, floats.has(k))),
    });
    return out;
  }

  graph(name: string, docString?: string): onnx.IGraphProto {
    return {
      name,
      docString: docString ?? null,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
  }
}

export interface ModelOptions {
  producerVersion: string;
  docString?: string;
  metadata: Record<string, string>;
}

/** Encodes a model (IR 7, opset 13) to ONNX protobuf bytes. */
export function encodeModel(graph: onnx.IGraphProto, opts: ModelOptions): Uint8Array {
  const model: onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'tabsight',
    producerVersion: opts.producerVersion,
    docString: opts.docString ?? null,
    graph,
    metadataProps: Object.entries(opts.metadata).map(([key, value]) => ({ key, value })),
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/** Decodes ONNX bytes (e.g. to read metadata_props and the graph's input types). */
export function decodeModel(bytes: Uint8Array): onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** The same model with metadata_props keys set (replaced where present, appended otherwise). */
export function withMetadata(bytes: Uint8Array, update: Record<string, string>): Uint8Array {
  const model = decodeModel(bytes);
  const props = (model.metadataProps ?? []).filter((p) => !(p.key! in update));
  model.metadataProps = [...props, ...Object.entries(update).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value }))];
  return onnx.ModelProto.encode(model).finish();
}

/** A decoded value's dims: numbers for fixed sizes, strings for symbolic (or unknown) ones. */
export function dimsOf(v: onnx.IValueInfoProto): Dim[] {
  const dims = v.type?.tensorType?.shape?.dim ?? [];
  return (dims as onnx.TensorShapeProto.Dimension[]).map((d) => (d.value === 'dimValue' ? toNumber(d.dimValue) : d.dimParam || '?'));
}

/** protobufjs gives int64 fields as Long objects (or numbers). */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return Number(v);
}

/** The element type name of a decoded value ("float32", "uint8", ...). */
export function elemTypeOf(v: onnx.IValueInfoProto): string {
  const t = v.type?.tensorType?.elemType;
  switch (t) {
    case DT.FLOAT: return 'float32';
    case DT.UINT8: return 'uint8';
    case DT.DOUBLE: return 'float64';
    case DT.FLOAT16: return 'float16';
    case DT.INT64: return 'int64';
    case DT.INT32: return 'int32';
    default: return `onnx type ${t}`;
  }
}

// ---- Weights and BatchNorm folding (shared by the image and tabular exports) ----

export type WeightMap = Map<string, SafeTensor>;

/** Float32 weights looked up by name with their shape checked; tracks what was used. */
export class Weights {
  readonly used = new Set<string>();
  constructor(readonly map: WeightMap, readonly what: string) {}

  get(name: string, shape: number[]): Float32Array {
    const t = this.map.get(name);
    if (!t) throw new DataError(`Missing weight "${name}" for the ${this.what} export`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new DataError(`Weight "${name}" has shape [${t.shape.join(', ')}] but the ${this.what} needs [${shape.join(', ')}]`);
    }
    this.used.add(name);
    return toFloat32(t, `weight "${name}"`);
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  shape(name: string): number[] {
    const t = this.map.get(name);
    if (!t) throw new DataError(`Missing weight "${name}" for the ${this.what} export`);
    return t.shape;
  }

  /** Throws on weights the architecture does not use (a wrong arch or channel count). */
  checkAllUsed(ignore: (name: string) => boolean): void {
    for (const name of this.map.keys()) {
      if (!this.used.has(name) && !ignore(name)) {
        throw new DataError(`Unexpected weight "${name}" for the ${this.what} (is the architecture right?)`);
      }
    }
  }
}

export interface BatchNormParams { gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array }

/**
 * Folds eval-mode BatchNorm into the layer before it. `weight` is row-major
 * with the output channel first ([O, ...]); `bias` defaults to zeros.
 */
export function foldBatchNorm(weight: Float32Array, bias: Float32Array | undefined, bn: BatchNormParams, eps = BN_EPS): { weight: Float32Array; bias: Float32Array } {
  const out = bn.gamma.length;
  const per = weight.length / out;
  if (!Number.isInteger(per)) throw new ShapeError(`Expected a weight length divisible by ${out} channels but received ${weight.length}`);
  const w = new Float32Array(weight.length);
  const b = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const s = bn.gamma[o] / Math.sqrt(bn.variance[o] + eps);
    for (let i = o * per; i < (o + 1) * per; i++) w[i] = weight[i] * s;
    b[o] = bn.beta[o] + ((bias ? bias[o] : 0) - bn.mean[o]) * s;
  }
  return { weight: w, bias: b };
}

export function readBn(W: Weights, prefix: string, c: number): BatchNormParams {
  return {
    gamma: W.get(`${prefix}.weight`, [c]),
    beta: W.get(`${prefix}.bias`, [c]),
    mean: W.get(`${prefix}.running_mean`, [c]),
    variance: W.get(`${prefix}.running_var`, [c]),
  };
}
