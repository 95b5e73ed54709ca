/**
 * Experiment configuration files (YAML), validated by a strict schema: an
 * unknown key is an error naming the file and the key's path. A file may
 * `extends:` another (a path relative to it); its keys override the base's,
 * objects merged key by key. CLI flags override the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { z } from 'zod';
import { resolveAugmentOptions } from './augment';
import { ConfigError } from './errors';
import { checkUtf8 } from './io/read';

const pair = z.tuple([z.number(), z.number()]);

const augmentSchema = z.object({
  rate: z.number(), crop: z.boolean(), cropScale: pair, cropRatio: pair, flipP: z.number(), rotationDeg: z.number(),
  brightness: z.number(), contrast: z.number(), saturation: z.number(), jitterP: z.number(), grayscaleP: z.number(),
  blurP: z.number(), blurKernel: z.number().int(), blurSigma: pair, outSize: pair, valueRange: pair,
}).partial().strict();

export const pretrainSchema = z.object({
  mode: z.enum(['multimodal', 'simclr', 'supervised']),
  epochs: z.number().int().positive(),
  batchSize: z.number().int().min(2),
  seed: z.number().int().nonnegative(),
  optimizer: z.enum(['adam', 'adamw']),
  lr: z.number().positive(),
  weightDecay: z.number().nonnegative(),
  warmupEpochs: z.number().nonnegative(),
  device: z.string(),
  precision: z.enum(['fp32', 'bf16']),
  memoryFormat: z.enum(['auto', 'channels_last', 'contiguous']),
  imageSize: z.number().int().positive(),
  corruptionRate: z.number().min(0).max(1),
  checkpointEvery: z.number().int().positive(),
  initWeights: z.string(),
  features: z.array(z.string()),
  labelTask: z.string(),
  model: z.object({
    arch: z.enum(['resnet18', 'resnet50']), smallStem: z.union([z.boolean(), z.literal('auto')]),
    tabularHidden: z.number().int().positive(), tabularLayers: z.number().int().positive(),
    projectionHidden: z.number().int().positive(), projectionDim: z.number().int().positive(), projectionBatchNorm: z.boolean(),
  }).partial().strict(),
  loss: z.object({ temperature: z.number().positive(), lambda: z.number().min(0).max(1), removeFalseNegatives: z.boolean() }).partial().strict(),
  augment: augmentSchema,
  normalize: z.union([z.literal('auto'), z.object({ mean: z.array(z.number()), std: z.array(z.number()) }).strict()]),
  syncBatchNorm: z.boolean(),
  deterministic: z.boolean(),
  // Rank and world size come from the launcher's environment, not from a file.
  distributed: z.object({ timeoutSec: z.number().positive(), backend: z.enum(['gloo', 'nccl']) }).partial().strict(),
}).partial().strict();

export const evaluateSchema = z.object({
  protocol: z.enum(['linear', 'finetune']),
  labelFraction: z.number().gt(0).max(1),
  seeds: z.number().int().positive(),
  tasks: z.array(z.string()),
  finetuneEpochs: z.number().int().positive(),
}).partial().strict();

export const experimentSchema = z.object({
  extends: z.string(),
  cohort: z.string(),
  pretrain: pretrainSchema,
  evaluate: evaluateSchema,
}).partial().strict();

export type ExperimentConfig = Omit<z.infer<typeof experimentSchema>, 'extends'>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge: `over` wins; objects merge key by key, arrays are replaced. */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (!isObject(base) || !isObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = v === undefined ? out[k] : mergeConfig(out[k], v);
  return out as T;
}

/** Reads and checks an experiment file, following `extends` (cycles are errors). */
export function loadExperimentConfig(file: string, seen: string[] = []): ExperimentConfig {
  const abs = path.resolve(file);
  if (seen.includes(abs)) throw new ConfigError(`${abs}: extends forms a cycle (${[...seen, abs].join(' → ')})`);
  let text: string;
  try {
    const bytes = fs.readFileSync(abs);
    checkUtf8(bytes, abs, (m) => new ConfigError(m));
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`Cannot read config ${abs}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text) ?? {};
  } catch (err) {
    throw new ConfigError(`${abs} is not valid YAML: ${(err as Error).message}`);
  }
  const parsed = experimentSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.join('.') || '(top level)';
    const keys = issue.code === 'unrecognized_keys' ? ` (${(issue as { keys: string[] }).keys.join(', ')})` : '';
    throw new ConfigError(`${abs}: ${where}: ${issue.message}${keys}`);
  }
  const { extends: parent, ...rest } = parsed.data;
  if (rest.pretrain?.augment) {
    // The augmentation's own rules (odd blur kernel, crop scale lo ≤ hi, ...) are checked here so that
    // their error names this file; the other sections' rules need the data and run when a command resolves them.
    try {
      resolveAugmentOptions(rest.pretrain.augment);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${abs}: pretrain: ${err.message}`, { cause: err });
      throw err;
    }
  }
  if (rest.cohort && !path.isAbsolute(rest.cohort)) rest.cohort = path.resolve(path.dirname(abs), rest.cohort);
  if (!parent) return rest;
  const base = loadExperimentConfig(path.resolve(path.dirname(abs), parent), [...seen, abs]);
  return mergeConfig(base, rest);
}
