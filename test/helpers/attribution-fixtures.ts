// The random ResNets of test/fixtures/attribution_ref.py (Debian's
// python3-torch), written once per test file into a temporary folder, and
// the array comparisons the attribution tests share.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

export const PY = '/usr/bin/python3';
export const ORACLE = path.join(__dirname, '..', 'fixtures', 'attribution_ref.py');

export type Ref = { file: string; shape: number[]; max_abs: number };
export type Case = {
  weights: string; arch: string; feature_dim: number; small_stem: boolean; input: string; input_shape: number[];
  feature_index: number; probe_w: string; probe_b: string; classes: number[]; refs: Record<string, Ref>;
};

/** Runs the oracle's `gen` into a new temporary folder; `cleanup` removes it. */
export function generateFixtures(prefix: string): { dir: string; manifest: Record<string, Case>; f32: (file: string) => Float32Array; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  execFileSync(PY, [ORACLE, 'gen', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, Case>;
  const f32 = (file: string) => {
    const b = fs.readFileSync(path.join(dir, file));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  };
  return { dir, manifest, f32, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Largest |a − b|; Infinity when the lengths differ. */
export const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
};
export const maxAbs = (a: ArrayLike<number>) => maxDiff(a, new Float64Array(a.length));
/** Bit-for-bit equality (Object.is, so −0 ≠ 0 and NaN = NaN). */
export const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => Object.is(v, b[i]));
