/**
 * Train / val / test splits of a cohort: read from a CSV, or drawn with a
 * seeded, optionally stratified shuffle that depends only on the seed, the
 * set of ids and their strata (not on row order).
 */
import { DataError } from '../errors';
import { cellText, isMissing } from './csv';

export interface CohortSplits {
  /** Cohort row indices, ascending. */
  train: number[];
  val: number[];
  test: number[];
  /** Where the split came from. */
  source: 'csv' | 'seeded';
}

const NAMES = ['train', 'val', 'test'] as const;

/**
 * Splits from the `split` cells of a splits CSV, already aligned to cohort
 * rows. `rows[i]` is the CSV row (spreadsheet numbering) of cohort row i.
 */
export function splitsFromValues(
  values: readonly string[],
  ids: readonly string[],
  rows: readonly number[],
  file: string,
  column: string,
): CohortSplits {
  const out: CohortSplits = { train: [], val: [], test: [], source: 'csv' };
  for (let i = 0; i < values.length; i++) {
    const v = values[i].trim().toLowerCase();
    if (v !== 'train' && v !== 'val' && v !== 'test') {
      throw new DataError(
        `${file}: row ${rows[i]} (id "${ids[i]}"), column "${column}" has "${cellText(values[i])}"; expected train, val or test`,
      );
    }
    out[v].push(i);
  }
  if (out.train.length === 0) throw new DataError(`${file}: column "${column}" assigns no row to train`);
  if (out.train.length === 1) {
    throw new DataError(`${file}: column "${column}" assigns one row to train (row ${rows[out.train[0]]}, id "${ids[out.train[0]]}"); training needs at least 2`);
  }
  return out;
}

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `n` items by `fractions` with the largest-remainder rule (ties go to train, then val). */
export function allocate(n: number, fractions: readonly number[]): number[] {
  const exact = fractions.map((f) => f * n);
  const counts = exact.map((x) => Math.floor(x + 1e-9));
  let left = n - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, k) => ({ k, r: x - Math.floor(x + 1e-9) })).sort((p, q) => q.r - p.r || p.k - q.k);
  for (let j = 0; left > 0; j = (j + 1) % order.length) {
    if (fractions[order[j].k] > 0) {
      counts[order[j].k]++;
      left--;
    }
  }
  return counts;
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A seeded split. With `strata` (one label per row; missing labels form their
 * own stratum), each stratum is split by `fractions` on its own, so class
 * proportions carry over to every split within one subject per stratum.
 * Within a stratum rows are ordered by id before the shuffle, so the result
 * depends on the ids, not on the order of the files.
 */
export function seededSplit(
  ids: readonly string[],
  fractions: readonly [number, number, number],
  seed: number,
  strata?: readonly string[],
): CohortSplits {
  const groups = new Map<string, number[]>();
  for (let i = 0; i < ids.length; i++) {
    const key = strata ? (isMissing(strata[i]) ? '\u0000missing' : strata[i].trim()) : '';
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(i);
  }
  const rand = mulberry32(seed);
  const out: CohortSplits = { train: [], val: [], test: [], source: 'seeded' };
  for (const key of [...groups.keys()].sort(byCodePoint)) {
    const rows = groups.get(key)!.sort((a, b) => byCodePoint(ids[a], ids[b]));
    for (let k = rows.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [rows[k], rows[j]] = [rows[j], rows[k]];
    }
    const [nTrain, nVal] = allocate(rows.length, fractions);
    out.train.push(...rows.slice(0, nTrain));
    out.val.push(...rows.slice(nTrain, nTrain + nVal));
    out.test.push(...rows.slice(nTrain + nVal));
  }
  for (const name of NAMES) out[name].sort((a, b) => a - b);
  return out;
}
