/**
 * Which weights an attribution loads, and with which model options: a run
 * directory, a run's checkpoint.safetensors, or an image_encoder.safetensors.
 * Options come from the file's `config` metadata (the run's resolved config)
 * unless given explicitly; only the header is read here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, DataError } from '../errors';
import type { Arch } from '../pretrain-options';
import * as is from '../validate';
import { readSafetensorsHeaderSync } from '../io/safetensors';

export interface AttributionModel {
  /** A run directory, a run's checkpoint.safetensors, or an image_encoder.safetensors. */
  path: string;
  /** @default the file's config metadata */
  arch?: Arch;
  /** @default the file's config metadata */
  inChannels?: number;
  /** @default the file's config metadata */
  smallStem?: boolean;
  /** @default the file's config metadata */
  tabularHidden?: number;
  /** @default the file's config metadata */
  tabularLayers?: number;
  /** @default the file's config metadata */
  projectionHidden?: number;
  /** @default the file's config metadata */
  projectionDim?: number;
  /** Per tabular column: 0 continuous, k categorical with k levels. @default the run's data.cardinalities */
  cardinalities?: readonly number[];
  /** 'cpu', 'cuda' or 'cuda:N'. @default 'cpu' */
  device?: string;
}

/** A path (run directory or weights file) or explicit options. */
export type ModelInput = string | AttributionModel;

/** What the native side receives: every field filled in. */
export interface NativeModel {
  path: string;
  format: 'checkpoint' | 'encoder';
  device: string;
  arch: Arch;
  inChannels: number;
  smallStem: boolean;
  tabularHidden?: number;
  tabularLayers?: number;
  projectionHidden?: number;
  projectionDim?: number;
  /** The heads' layout, read from the checkpoint's tensor names. */
  projectionBatchNorm?: boolean;
  cardinalities?: number[];
}

const MODEL_KEYS = ['path', 'arch', 'inChannels', 'smallStem', 'tabularHidden', 'tabularLayers', 'projectionHidden', 'projectionDim', 'cardinalities', 'device'] as const;

interface RunConfigLike {
  model?: Partial<Record<'arch' | 'inChannels' | 'smallStem' | 'tabularHidden' | 'tabularLayers' | 'projectionHidden' | 'projectionDim', unknown>>;
  data?: { cardinalities?: unknown };
}

/**
 * Resolves a model input. `needsCheckpoint`: the target uses projection heads
 * or the tabular encoder, which only a run's checkpoint holds.
 */
export function resolveModel(input: ModelInput, needsCheckpoint: boolean, needsTabular = false): NativeModel {
  const o: AttributionModel = typeof input === 'string' ? { path: input } : (is.plainObject(input, 'model') as unknown as AttributionModel);
  is.knownKeys(o as unknown as Record<string, unknown>, 'model', MODEL_KEYS);
  let file = path.resolve(is.string(o.path, 'model.path'));
  if (!fs.existsSync(file)) throw new ConfigError(`Expected a run directory or a weights file for model.path but ${file} does not exist`);
  if (fs.statSync(file).isDirectory()) {
    const checkpoint = path.join(file, 'checkpoint.safetensors');
    const encoder = path.join(file, 'image_encoder.safetensors');
    file = !needsCheckpoint && fs.existsSync(encoder) ? encoder : checkpoint;
    if (!fs.existsSync(file)) throw new ConfigError(`${o.path} is not a tabsight run: ${file} is missing`);
  }
  const { metadata, entries } = readSafetensorsHeaderSync(file);
  const names = entries.map((e) => e.name);
  const format = metadata.format === 'tabsight-checkpoint-1' || names.some((n) => n.startsWith('model.image.')) ? 'checkpoint' : 'encoder';
  if (needsCheckpoint && format !== 'checkpoint') {
    throw new ConfigError(`This target needs the projection heads or the tabular encoder, which only a run's checkpoint.safetensors holds; ${file} is an image encoder file`);
  }
  let config: RunConfigLike = {};
  if (metadata.config) {
    try {
      config = JSON.parse(metadata.config) as RunConfigLike;
    } catch (err) {
      throw new DataError(`${file}: its config metadata is not valid JSON`, { cause: err });
    }
  }
  const cm = config.model ?? {};
  const pick = <T>(key: keyof AttributionModel & string, fallback: unknown, check: (v: unknown, name: string) => T): T => {
    const v = o[key] ?? fallback;
    if (v === undefined) {
      throw new ConfigError(`Expected model.${key}: ${file} has no tabsight config metadata that gives it`);
    }
    return check(v, `model.${key}`);
  };
  const metaBool = metadata.small_stem === undefined ? undefined : metadata.small_stem === 'true';
  const metaChannels = metadata.in_channels === undefined ? undefined : Number(metadata.in_channels);
  const out: NativeModel = {
    path: file,
    format,
    device: is.string(o.device ?? 'cpu', 'model.device'),
    arch: pick('arch', cm.arch ?? metadata.arch, (v, n) => is.oneOf(v, n, ['resnet18', 'resnet50'] as const)),
    inChannels: pick('inChannels', cm.inChannels ?? metaChannels, is.positiveInteger),
    smallStem: pick('smallStem', cm.smallStem ?? metaBool, is.boolean),
  };
  if (!/^(cpu|cuda(:\d+)?)$/.test(out.device)) throw is.invalid('cpu, cuda or cuda:N', 'model.device', out.device);
  if (needsCheckpoint) {
    out.tabularHidden = pick('tabularHidden', cm.tabularHidden, is.positiveInteger);
    out.tabularLayers = pick('tabularLayers', cm.tabularLayers, is.positiveInteger);
    out.projectionHidden = pick('projectionHidden', cm.projectionHidden, is.positiveInteger);
    out.projectionDim = pick('projectionDim', cm.projectionDim, is.positiveInteger);
    // Heads with BatchNorm end in layers.3 (Linear, BN, ReLU, Linear); without, in layers.2.
    const bn = names.some((n) => /_projection\.layers\.3\.weight$/.test(n));
    const plain = names.some((n) => /_projection\.layers\.2\.weight$/.test(n));
    out.projectionBatchNorm = bn || !plain;
  }
  if (needsTabular) {
    const card = pick('cardinalities', config.data?.cardinalities, (v, n) => is.numberArray(v, n));
    card.forEach((k, i) => is.cardinality(k, `model.cardinalities[${i}]`));
    if (card.length === 0) throw new ConfigError(`Expected model.cardinalities: the run in ${file} has no tabular columns`);
    out.cardinalities = [...card];
  }
  return out;
}
