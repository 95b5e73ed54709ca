/**
 * Reading a run's config.json. Every command that opens a run (embed,
 * export, evaluate, explain, compare, select --method attribution, resume)
 * reads it through here, so a file that was edited or damaged by hand is a
 * DataError naming the file and the field, not a TypeError from deep inside
 * a command.
 */
import * as fs from 'node:fs';
import { ConfigError, DataError } from './errors';
import type { ResolvedPretrainConfig } from './pretrain-options';

const ARCHS = ['resnet18', 'resnet50'];
const MODES = ['multimodal', 'simclr', 'supervised'];
const DTYPES = ['uint8', 'float16', 'float32'];

/** The fields later code relies on, checked; returns the config as read. */
export function checkRunConfig(value: unknown, file: string): ResolvedPretrainConfig {
  const bad = (field: string, want: string, got: unknown) =>
    new DataError(`${file}: ${field} should be ${want} but is ${got === undefined ? 'missing' : JSON.stringify(got)?.slice(0, 80)}`);
  const obj = (v: unknown, field: string): Record<string, unknown> => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(field, 'an object', v);
    return v as Record<string, unknown>;
  };
  const int = (o: Record<string, unknown>, key: string, field: string, min: number) => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw bad(field, `an integer ≥ ${min}`, v);
    return v;
  };
  const oneOf = (o: Record<string, unknown>, key: string, field: string, values: readonly string[]) => {
    if (typeof o[key] !== 'string' || !values.includes(o[key] as string)) throw bad(field, `one of ${values.join(', ')}`, o[key]);
  };
  const c = obj(value, 'the run config');
  if (c.version !== 1) {
    throw bad('version', '1 (a config this version of tabsight wrote)', c.version);
  }
  oneOf(c, 'mode', 'mode', MODES);
  if (typeof c.device !== 'string') throw bad('device', 'a string', c.device);
  int(c, 'imageSize', 'imageSize', 1);
  const model = obj(c.model, 'model');
  oneOf(model, 'arch', 'model.arch', ARCHS);
  const channels = int(model, 'inChannels', 'model.inChannels', 1);
  if (typeof model.smallStem !== 'boolean') throw bad('model.smallStem', 'true or false', model.smallStem);
  for (const key of ['tabularHidden', 'tabularLayers', 'projectionHidden', 'projectionDim']) int(model, key, `model.${key}`, 1);
  const norm = obj(c.normalize, 'normalize');
  for (const key of ['mean', 'std'] as const) {
    const v = norm[key];
    const ok = Array.isArray(v) && v.length === channels && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (key === 'mean' || x > 0));
    if (!ok) throw bad(`normalize.${key}`, `${channels} finite number(s)${key === 'std' ? ', each > 0' : ''} (one per image channel)`, v);
  }
  obj(c.augment, 'augment');
  const data = obj(c.data, 'data');
  for (const key of ['n', 'channels', 'height', 'width']) int(data, key, `data.${key}`, 1);
  oneOf(data, 'dtype', 'data.dtype', DTYPES);
  int(data, 'tabularFeatures', 'data.tabularFeatures', 0);
  if (!Array.isArray(data.cardinalities) || !data.cardinalities.every((k) => Number.isInteger(k) && (k as number) >= 0)) {
    throw bad('data.cardinalities', 'an array of non-negative integers', data.cardinalities);
  }
  if (data.featureNames !== null && data.featureNames !== undefined && !(Array.isArray(data.featureNames) && data.featureNames.every((n) => typeof n === 'string'))) {
    throw bad('data.featureNames', 'null or an array of strings', data.featureNames);
  }
  if (c.meta !== undefined) obj(c.meta, 'meta');
  return value as ResolvedPretrainConfig;
}

/** A run directory's config.json, parsed and checked; ConfigError when `dir` has none. */
export function readRunConfigFile(configFile: string, missing: string): ResolvedPretrainConfig {
  if (!fs.existsSync(configFile)) throw new ConfigError(missing);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (err) {
    throw new DataError(`${configFile} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return checkRunConfig(parsed, configFile);
}
