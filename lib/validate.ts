/**
 * Input checks with one message shape everywhere:
 * "Expected positive integer for epochs but received -3 of type number".
 * TypeScript checks every user input; the native side re-checks only what
 * could corrupt memory.
 */
import { ConfigError } from './errors';

function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value}" of type string`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'object') return 'an object';
  return `${String(value)} of type ${typeof value}`;
}

export function invalid(expected: string, name: string, value: unknown): ConfigError {
  return new ConfigError(`Expected ${expected} for ${name} but received ${describe(value)}`);
}

export function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

export function integer(value: unknown, name: string, min = -Infinity, max = Infinity): number {
  if (!isNumber(value) || !Number.isInteger(value)) throw invalid('integer', name, value);
  if (value < min || value > max) {
    const range = max === Infinity ? `integer ≥ ${min}` : `integer between ${min} and ${max}`;
    throw invalid(range, name, value);
  }
  return value;
}

/**
 * The largest categorical cardinality: category codes travel to the native
 * core as float32, which holds every integer up to 2^24 exactly
 * (native/train/tabular.h, kMaxCardinality).
 */
export const MAX_CARDINALITY = 2 ** 24;

/** A tabular column's cardinality: 0 (continuous) or a category count up to MAX_CARDINALITY. */
export function cardinality(value: unknown, name: string): number {
  return integer(value, name, 0, MAX_CARDINALITY);
}

export function positiveInteger(value: unknown, name: string): number {
  if (!isNumber(value) || !Number.isInteger(value) || value <= 0) throw invalid('positive integer', name, value);
  return value;
}

/**
 * An onnxruntime thread count: a positive integer at most 4× the CPUs this
 * process may use (os.availableParallelism()). More only oversubscribes the
 * cores: 1000 threads on 2 cores ran 40 images for more than 15 s and took
 * a minute to stop.
 */
export function threadCount(value: unknown, name: string, cpus: number): number {
  const n = positiveInteger(value, name);
  if (n > 4 * cpus) throw new ConfigError(`Expected ${name} at most ${4 * cpus} (4× the ${cpus} CPU(s) this process may use) but received ${n}`);
  return n;
}

export function nonNegativeInteger(value: unknown, name: string): number {
  if (!isNumber(value) || !Number.isInteger(value) || value < 0) throw invalid('non-negative integer', name, value);
  return value;
}

export function positiveNumber(value: unknown, name: string): number {
  if (!isNumber(value) || value <= 0) throw invalid('positive number', name, value);
  return value;
}

export function nonNegativeNumber(value: unknown, name: string): number {
  if (!isNumber(value) || value < 0) throw invalid('non-negative number', name, value);
  return value;
}

export function numberInRange(value: unknown, name: string, min: number, max: number): number {
  if (!isNumber(value) || value < min || value > max) throw invalid(`number between ${min} and ${max}`, name, value);
  return value;
}

export function probability(value: unknown, name: string): number {
  return numberInRange(value, name, 0, 1);
}

export function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalid('boolean', name, value);
  return value;
}

export function string(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid('non-empty string', name, value);
  return value;
}

export function oneOf<T extends string>(value: unknown, name: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw invalid(`one of ${choices.join(', ')}`, name, value);
  }
  return value as T;
}

export function plainObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('object', name, value);
  return value as Record<string, unknown>;
}

/** Rejects keys that the option type does not know, so typos never pass silently. */
export function knownKeys(obj: Record<string, unknown>, name: string, keys: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k)) {
      throw new ConfigError(`Unknown option ${name ? `${name}.` : ''}${k}; expected one of ${keys.join(', ')}`);
    }
  }
}

export function numberArray(value: unknown, name: string, length?: number): number[] {
  if (!Array.isArray(value) || value.some((v) => !isNumber(v))) throw invalid('array of finite numbers', name, value);
  if (length !== undefined && value.length !== length) throw invalid(`array of ${length} numbers`, name, value);
  return value as number[];
}
