// Small readers for the CSVs the synthetic cohort generators write, and a
// Pearson r that skips missing cells. Tests only.
import * as fs from 'node:fs';

export interface Table { ids: string[]; columns: string[]; cells: Record<string, string[]>; num: (c: string) => number[] }

/** A plain CSV (no quoting), by column; the first column holds the ids. */
export function table(file: string): Table {
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => l.split(','));
  const columns = lines[0];
  const cells: Record<string, string[]> = {};
  columns.forEach((c, j) => (cells[c] = lines.slice(1).map((r) => r[j])));
  return { ids: cells[columns[0]], columns, cells, num: (c) => cells[c].map((x) => (x === '' ? NaN : Number(x))) };
}

/** Pearson r over the pairs where both values are present. */
export function pearson(a: number[], b: number[]): number {
  const keep = a.map((x, i) => !Number.isNaN(x) && !Number.isNaN(b[i]));
  const x = a.filter((_, i) => keep[i]), y = b.filter((_, i) => keep[i]);
  const mx = x.reduce((s, v) => s + v, 0) / x.length, my = y.reduce((s, v) => s + v, 0) / y.length;
  let sxy = 0, sxx = 0, syy = 0;
  x.forEach((v, i) => { sxy += (v - mx) * (y[i] - my); sxx += (v - mx) ** 2; syy += (y[i] - my) ** 2; });
  return sxy / Math.sqrt(sxx * syy);
}
