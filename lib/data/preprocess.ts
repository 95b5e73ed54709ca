/**
 * Tabular preprocessing fitted on the training rows only (docs/data.md):
 * z-scores, categorical codes, median / mode imputation with optional
 * missingness indicators, and the transformed training rows as the marginals
 * that tabular corruption samples from. Saved with toJSON(), restored with
 * Preprocessor.fromJSON(), so evaluation and export reuse it exactly.
 */
import { z } from 'zod';
import { ConfigError, DataError } from '../errors';
import { invalid, knownKeys, plainObject } from '../validate';
import { isMissing, notANumber, toNumber } from './csv';
import { requireTabular, type Cohort, type CohortColumn } from './cohort';
import type { ColumnData } from './tabular-columns';
import { fieldPath } from './cohort-schema';

export interface PreprocessOptions {
  /** Columns to use, in this order. @default every column of `cohort.tabular.columns` */
  features?: string[];
  /** Append a 0/1 column `<name>__missing` for each feature with a missing value in the training rows. @default true */
  missingIndicators?: boolean;
}

export interface ContinuousSpec {
  name: string;
  type: 'continuous';
  /** Training mean and standard deviation (population, ddof 0; 1 when the column is constant). */
  mean: number;
  std: number;
  /** Training median: the value a missing cell gets, before scaling. */
  median: number;
}

export interface CategoricalSpec {
  name: string;
  type: 'categorical';
  /** Training categories, sorted; a value's code is its index. Unseen values get −1. */
  categories: string[];
  /** Most frequent training category (ties: the first in order): the value a missing cell gets. */
  mode: string;
}

export type ColumnSpec = ContinuousSpec | CategoricalSpec;

export interface PreprocessorJSON {
  format: 'tabsight-preprocessor';
  version: 1;
  columns: ColumnSpec[];
  /** Features that have a missingness indicator column, in output order. */
  indicators: string[];
}

export interface TransformResult {
  /** N×F, row-major: z-scores, integer codes (−1 unseen) and 0/1 indicators. */
  data: Float32Array;
  shape: [number, number];
  /** Per output column: the number of categories, 0 for continuous (and indicator) columns. */
  cardinalities: number[];
  names: string[];
  /** One line per categorical column with values unseen in training. */
  warnings: string[];
}

export class Preprocessor {
  readonly columns: readonly ColumnSpec[];
  readonly indicators: readonly string[];
  /** The transformed training rows (set by fitPreprocessor; not saved by toJSON). */
  marginals?: TransformResult;

  constructor(columns: ColumnSpec[], indicators: string[]) {
    this.columns = columns;
    this.indicators = indicators;
  }

  /** Output column names: the features, then `<name>__missing` indicators. */
  get names(): string[] {
    return [...this.columns.map((c) => c.name), ...this.indicators.map((n) => `${n}__missing`)];
  }

  get cardinalities(): number[] {
    return [...this.columns.map((c) => (c.type === 'categorical' ? c.categories.length : 0)), ...this.indicators.map(() => 0)];
  }

  /**
   * Transforms cohort rows (indices into `cohort.ids`). Columns are found by
   * name. A column stored with the other type than the one fitted (another
   * cohort) is converted: a categorical column's categories are parsed as
   * numbers (a non-number is a DataError naming file, row and column); a
   * continuous column's numbers are matched to categories by value.
   */
  transform(cohort: Cohort, rows: readonly number[] | Int32Array): TransformResult {
    const n = cohort.ids.length;
    if (!(Array.isArray(rows) || rows instanceof Int32Array) || Array.prototype.some.call(rows, (r: unknown) => !Number.isInteger(r) || (r as number) < 0 || (r as number) >= n)) {
      throw invalid(`array of row indices in 0..${n - 1}`, 'rows', rows);
    }
    requireTabular(cohort, 'the tabular side of a multimodal run (its features, the similarity target)');
    const file = cohort.tabular.file;
    const names = cohort.tabular.columns.map((c) => c.name);
    const column = (name: string): { meta: CohortColumn; data: ColumnData } => {
      const j = names.indexOf(name);
      if (j < 0) throw new DataError(`${file} has no column "${name}", which the preprocessor was fitted on (or it was left out of features)`);
      return { meta: cohort.tabular.columns[j], data: cohort.tabular.data[j] };
    };
    const m = rows.length;
    const width = this.columns.length + this.indicators.length;
    const data = new Float32Array(m * width);
    const warnings: string[] = [];
    this.columns.forEach((spec, j) => {
      const col = column(spec.name);
      if (spec.type === 'continuous') {
        const v = numbers(col, rows, file, cohort.tabular.rowNumbers);
        for (let i = 0; i < m; i++) data[i * width + j] = ((Number.isNaN(v[i]) ? spec.median : v[i]) - spec.mean) / spec.std;
        return;
      }
      // Spec code of each stored category (or of each stored number); −1 unseen.
      const code = new Map(spec.categories.map((c, k) => [c, k]));
      const modeCode = code.get(spec.mode)!;
      const unseen = new Map<string, number>();
      const miss = (label: string) => unseen.set(label, (unseen.get(label) ?? 0) + 1);
      if (col.meta.type === 'categorical') {
        const levels = col.meta.categories!;
        const levelCode = Int32Array.from(levels, (c) => code.get(c) ?? -1);
        const codes = col.data as Int32Array;
        for (let i = 0; i < m; i++) {
          const c = codes[rows[i]];
          const k = c < 0 ? modeCode : levelCode[c];
          if (k < 0) miss(levels[c]);
          data[i * width + j] = k;
        }
      } else {
        const byValue = new Map<number, number>();
        spec.categories.forEach((c, k) => {
          const v = toNumber(c);
          if (v !== undefined && !byValue.has(v)) byValue.set(v, k);
        });
        const values = col.data as Float64Array;
        for (let i = 0; i < m; i++) {
          const v = values[rows[i]];
          const k = Number.isNaN(v) ? modeCode : byValue.get(v) ?? -1;
          if (k < 0) miss(String(v));
          data[i * width + j] = k;
        }
      }
      if (unseen.size > 0) {
        const count = [...unseen.values()].reduce((a, b) => a + b, 0);
        const list = [...unseen.keys()].slice(0, 5).map((v) => `"${v}"`).join(', ');
        warnings.push(
          `column "${spec.name}": ${count} value(s) unseen in training (${list}${unseen.size > 5 ? ', …' : ''}) coded −1 (all-zero one-hot)`,
        );
      }
    });
    this.indicators.forEach((name, k) => {
      const { data: col } = column(name);
      const j = this.columns.length + k;
      for (let i = 0; i < m; i++) data[i * width + j] = missingAt(col, rows[i]) ? 1 : 0;
    });
    return { data, shape: [m, width], cardinalities: this.cardinalities, names: this.names, warnings };
  }

  toJSON(): PreprocessorJSON {
    return {
      format: 'tabsight-preprocessor',
      version: 1,
      columns: this.columns.map((c) => (c.type === 'continuous' ? { ...c } : { ...c, categories: [...c.categories] })),
      indicators: [...this.indicators],
    };
  }

  /** Restores a saved preprocessor; throws ConfigError naming the field for a malformed object. */
  static fromJSON(json: unknown): Preprocessor {
    const value = typeof json === 'string' ? parseJson(json) : json;
    const r = jsonSchema.safeParse(value);
    if (!r.success) {
      const iss = r.error.issues[0];
      throw new ConfigError(`Invalid preprocessor JSON: ${fieldPath(iss.path)}: ${iss.message}`);
    }
    return new Preprocessor(r.data.columns as ColumnSpec[], r.data.indicators);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`Invalid preprocessor JSON: ${(err as Error).message}`);
  }
}

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });
const jsonSchema = z
  .strictObject({
    format: z.literal('tabsight-preprocessor'),
    version: z.literal(1),
    columns: z
      .array(
        z.discriminatedUnion('type', [
          z.strictObject({ name: z.string().min(1), type: z.literal('continuous'), mean: finite, std: finite.refine((s) => s > 0, { message: 'must be > 0' }), median: finite }),
          z
            .strictObject({ name: z.string().min(1), type: z.literal('categorical'), categories: z.array(z.string()).min(1), mode: z.string() })
            .refine((c) => c.categories.includes(c.mode), { message: 'mode must be one of the categories', path: ['mode'] })
            .refine((c) => new Set(c.categories).size === c.categories.length, { message: 'categories must be distinct', path: ['categories'] }),
        ]),
      )
      .min(1),
    indicators: z.array(z.string()),
  })
  .refine((p) => new Set(p.columns.map((c) => c.name)).size === p.columns.length, { message: 'column names must be distinct', path: ['columns'] })
  .refine((p) => p.indicators.every((n) => p.columns.some((c) => c.name === n)), { message: 'every indicator must name a column', path: ['indicators'] });

/** True when cohort row `r` of a stored column is missing. */
const missingAt = (col: ColumnData, r: number) => (col instanceof Float64Array ? Number.isNaN(col[r]) : col[r] < 0);

/**
 * A column's values at `rows` as numbers (NaN = missing). A categorical
 * column (another cohort's) has its categories parsed; the first row holding
 * a non-number is a DataError naming file, row and column.
 */
function numbers(col: { meta: CohortColumn; data: ColumnData }, rows: ArrayLike<number>, file: string, rowNumbers: readonly number[]): Float64Array {
  const out = new Float64Array(rows.length);
  if (col.data instanceof Float64Array) {
    for (let i = 0; i < rows.length; i++) out[i] = col.data[rows[i]];
    return out;
  }
  const levels = col.meta.categories!;
  const value = levels.map((c) => toNumber(c));
  for (let i = 0; i < rows.length; i++) {
    const c = col.data[rows[i]];
    if (c < 0) {
      out[i] = NaN;
      continue;
    }
    const v = value[c];
    if (v === undefined || !Number.isFinite(v)) throw notANumber(file, col.meta.name, rowNumbers[rows[i]], levels[c]);
    out[i] = v;
  }
  return out;
}

function median(sorted: Float64Array): number {
  const k = sorted.length >> 1;
  return sorted.length % 2 ? sorted[k] : (sorted[k - 1] + sorted[k]) / 2;
}

/** Fits a Preprocessor on `cohort.splits.train` only. */
export function fitPreprocessor(cohort: Cohort, opts?: PreprocessOptions): Preprocessor {
  requireTabular(cohort, 'tabular preprocessing (multimodal pretraining, feature selection and statistics)');
  let features: string[] | undefined;
  let indicators = true;
  if (opts !== undefined) {
    const o = plainObject(opts, 'options');
    knownKeys(o, 'options', ['features', 'missingIndicators']);
    if (o.features !== undefined) {
      const f = o.features;
      if (!Array.isArray(f) || f.length === 0 || f.some((v) => typeof v !== 'string' || v === '')) throw invalid('non-empty array of column names', 'features', f);
      features = f as string[];
    }
    if (o.missingIndicators !== undefined) {
      if (typeof o.missingIndicators !== 'boolean') throw invalid('boolean', 'missingIndicators', o.missingIndicators);
      indicators = o.missingIndicators;
    }
  }
  const file = cohort.tabular.file;
  const all = cohort.tabular.columns;
  if (features) {
    const unknown = features.filter((f) => !all.some((c) => c.name === f));
    if (unknown.length > 0) {
      throw new DataError(`${file}: unknown feature(s) requested: ${unknown.map((f) => `"${f}"`).join(', ')}; the cohort's columns are ${all.map((c) => c.name).join(', ')}`);
    }
    const dup = features.find((f, k) => features!.indexOf(f) !== k);
    if (dup !== undefined) throw new DataError(`${file}: feature "${dup}" is requested twice`);
  }
  const chosen = features ?? all.map((c) => c.name);
  const train = cohort.splits.train;
  if (train.length === 0) throw new DataError(`${cohort.dir}: the cohort has no training rows to fit the preprocessor on`);
  const specs: ColumnSpec[] = [];
  const withMissing: string[] = [];
  for (const name of chosen) {
    const j = all.findIndex((c) => c.name === name);
    const col = { meta: all[j], data: cohort.tabular.data[j] };
    let nMissing = 0;
    for (const r of train) if (missingAt(col.data, r)) nMissing++;
    if (nMissing === train.length) {
      throw new DataError(`${file}: column "${name}" has no value in the ${train.length} training rows; exclude it (tabular.exclude)`);
    }
    if (nMissing > 0) withMissing.push(name);
    if (all[j].type === 'continuous') {
      const v = numbers(col, train, file, cohort.tabular.rowNumbers).filter((x) => !Number.isNaN(x)).sort();
      let sum = 0;
      for (const x of v) sum += x;
      const mean = sum / v.length;
      let ss = 0;
      for (const x of v) ss += (x - mean) ** 2;
      const std = Math.sqrt(ss / v.length);
      specs.push({ name, type: 'continuous', mean, std: std > 0 && Number.isFinite(std) ? std : 1, median: median(v) });
    } else {
      // Stored categories are sorted already; keep those seen in training.
      const levels = all[j].categories!;
      const counts = new Int32Array(levels.length);
      const codes = col.data as Int32Array;
      for (const r of train) if (codes[r] >= 0) counts[codes[r]]++;
      const seen = levels.map((_, k) => k).filter((k) => counts[k] > 0);
      let mode = seen[0];
      for (const k of seen) if (counts[k] > counts[mode]) mode = k;
      specs.push({ name, type: 'categorical', categories: seen.map((k) => levels[k]), mode: levels[mode] });
    }
  }
  const p = new Preprocessor(specs, indicators ? withMissing : []);
  p.marginals = p.transform(cohort, train);
  return p;
}

/**
 * Labels of `task` for every cohort row: class indices (Int32Array, −1 for a
 * missing label) for classification, values (Float64Array, NaN for a missing
 * label) for regression. Rows with −1 / NaN are left out downstream.
 */
export function encodeLabels(cohort: Cohort, task: string): Int32Array | Float64Array {
  const spec = cohort.labels.tasks.find((t) => t.name === task);
  if (!spec) {
    const known = cohort.labels.tasks.map((t) => t.name);
    throw new ConfigError(`Unknown task "${task}"; the cohort's tasks are ${known.length ? known.join(', ') : '(none: cohort.yaml has no labels)'}`);
  }
  const cells = cohort.labels.values[task];
  if (spec.type === 'regression') return Float64Array.from(cells, (c) => (isMissing(c) ? NaN : Number(c)));
  const index = new Map(spec.classes!.map((c, k) => [c, k]));
  return Int32Array.from(cells, (c) => (isMissing(c) ? -1 : index.get(c) ?? -1));
}
