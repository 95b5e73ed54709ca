/**
 * A cohort's tabular columns in compact form (docs/data.md, "Memory"): a
 * continuous column is a Float64Array (NaN = missing), a categorical one an
 * Int32Array of indices into its sorted categories (−1 = missing).
 *
 * loadCohort builds them while the tabular CSV streams past (readTabular),
 * so the cells are never held as strings, neither per row nor per column.
 * The string-based functions here (inferCohortColumnType, encodeColumn) state
 * what that streaming path computes; tests hold it to them.
 */
import { DataError } from '../errors';
import { beyondFloat32, FLOAT32_MAX, inferColumnType, isMissing, notANumber, parseContinuous, readCsvBytes, scanCsv, toNumber, type CsvScan } from './csv';

/** Column j of a cohort's tabular data: numbers (NaN = missing) or category indices (−1 = missing). */
export type ColumnData = Float64Array | Int32Array;

export type CohortColumnType = 'continuous' | 'categorical';

/** Orders category labels: numbers numerically and before text, text by code point. */
export function compareValues(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  const nx = a.trim() !== '' && Number.isFinite(x);
  const ny = b.trim() !== '' && Number.isFinite(y);
  if (nx && ny && x !== y) return x - y;
  if (nx !== ny) return nx ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The distinct non-missing values, sorted with compareValues. */
export function distinctSorted(values: readonly string[]): string[] {
  const s = new Set<string>();
  for (const v of values) if (!isMissing(v)) s.add(v);
  return [...s].sort(compareValues);
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * The type loadCohort gives an undeclared column: inferColumnType, with
 * binary folded into categorical, and one guard: a column whose non-missing
 * cells are at least 90% numbers with more than `maxCategories` distinct
 * values is continuous, so that a stray text cell is reported instead of
 * silently turning the column categorical.
 */
export function inferCohortColumnType(cells: readonly string[], maxCategories: number): CohortColumnType {
  const inferred = inferColumnType(cells, { maxCategories });
  if (inferred === 'continuous') return 'continuous';
  let present = 0;
  let numeric = 0;
  const distinct = new Set<string>();
  for (const c of cells) {
    if (isMissing(c)) continue;
    present++;
    distinct.add(c);
    if (NUMBER.test(c)) numeric++;
  }
  return numeric < present && numeric >= 0.9 * present && distinct.size > maxCategories ? 'continuous' : 'categorical';
}

/**
 * Encodes string cells the way loadCohort stores a column: a continuous
 * column through parseContinuous (a non-number is a DataError naming `file`,
 * the row and `column`), a categorical one as indices into its sorted
 * distinct non-missing values, which it returns as `categories`.
 */
export function encodeColumn(
  cells: readonly string[],
  type: CohortColumnType,
  file: string,
  column: string,
  rowNumbers?: readonly number[],
): { categories?: string[]; data: ColumnData } {
  if (type === 'continuous') return { data: parseContinuous(cells, file, column, rowNumbers) };
  const categories = distinctSorted(cells);
  const index = new Map(categories.map((c, k) => [c, k]));
  return { categories, data: Int32Array.from(cells, (c) => (isMissing(c) ? -1 : index.get(c)!)) };
}

/** A finite number whose text was not kept (an undeclared column past `numericTexts` distinct numbers). */
const DROPPED = -2;

/**
 * One column being read. Cells arrive in file order and are stored at their
 * cohort position. Declared continuous: numbers only, plus the first
 * non-number in cohort order. Declared categorical: indices into a
 * dictionary of the distinct texts. Undeclared: both, with the texts of
 * numbers kept only while there are few of them (a numeric column turns
 * categorical only with ≤ maxCategories distinct values); the inference
 * needs only counts, the distinct numbers and the dictionary.
 */
class ColumnBuilder {
  readonly num?: Float64Array;
  readonly code?: Int32Array;
  /** Distinct non-missing texts seen (all of them, except DROPPED numbers). */
  readonly texts: string[] = [];
  /** toNumber of each text (NaN for a non-number; ±Infinity stays). */
  private readonly values: number[] = [];
  private readonly index = new Map<string, number>();
  private numericTexts = 0;
  overflow = false;
  private present = 0;
  private rawNumeric = 0;
  private hasText = false;
  private bad = -1;
  private badText = '';

  constructor(
    readonly name: string,
    readonly j: number,
    readonly declared: CohortColumnType | undefined,
    n: number,
    private readonly numericLimit: number,
  ) {
    if (declared !== 'categorical') this.num = new Float64Array(n).fill(NaN);
    if (declared !== 'continuous') this.code = new Int32Array(n).fill(-1);
  }

  private intern(s: string, value: number): number {
    let k = this.index.get(s);
    if (k !== undefined) return k;
    if (Number.isFinite(value) && this.declared === undefined) {
      if (this.numericTexts >= this.numericLimit) {
        this.overflow = true;
        return DROPPED;
      }
      this.numericTexts++;
    }
    k = this.texts.length;
    this.texts.push(s);
    this.values.push(value);
    this.index.set(s, k);
    return k;
  }

  add(s: string, pos: number): void {
    if (isMissing(s)) return;
    if (this.declared === 'continuous') {
      const v = toNumber(s);
      if (v !== undefined && Number.isFinite(v)) this.num![pos] = v;
      else if (this.bad < 0 || pos < this.bad) {
        this.bad = pos;
        this.badText = s;
      }
      return;
    }
    if (this.declared === 'categorical') {
      this.code![pos] = this.intern(s, NaN);
      return;
    }
    this.present++;
    if (NUMBER.test(s)) this.rawNumeric++;
    const v = toNumber(s) ?? NaN;
    if (Number.isNaN(v)) this.hasText = true;
    else if (Number.isFinite(v)) this.num![pos] = v;
    this.code![pos] = this.intern(s, v);
  }

  /** inferCohortColumnType over the cells added. */
  private infer(maxCategories: number): CohortColumnType {
    // inferColumnType: any non-number makes it categorical.
    let inferred: 'continuous' | 'categorical' = 'categorical';
    if (!this.hasText && this.present > 0) {
      const distinct = new Set<number>(this.values);
      if (this.overflow) {
        const code = this.code!;
        for (let i = 0; i < code.length; i++) if (code[i] === DROPPED) distinct.add(this.num![i]);
      }
      let integers = true;
      for (const v of distinct) if (!Number.isInteger(v)) integers = false;
      const k = distinct.size;
      inferred = k <= 2 || (integers && k <= maxCategories && k <= this.present / 2) ? 'categorical' : 'continuous';
    }
    if (inferred === 'continuous') return 'continuous';
    // The guard; past the overflow there are more than numericLimit ≥ maxCategories distinct texts.
    const many = this.overflow || this.texts.length > maxCategories;
    const numeric = this.rawNumeric;
    return numeric < this.present && numeric >= 0.9 * this.present && many ? 'continuous' : 'categorical';
  }

  /**
   * The column's type and data, a DataError for a non-number in a continuous
   * column (the first in cohort order), or 'texts' when a categorical column
   * dropped number texts and must be read again.
   */
  finish(maxCategories: number, file: string, rowAt: Int32Array): { type: CohortColumnType; categories?: string[]; data: ColumnData } | DataError | 'texts' {
    const type = this.declared ?? this.infer(maxCategories);
    if (type === 'continuous') {
      if (this.declared === undefined) {
        const code = this.code!;
        for (let i = 0; i < code.length; i++) {
          const k = code[i];
          if (k >= 0 && !Number.isFinite(this.values[k])) return notANumber(file, this.name, rowAt[i], this.texts[k]);
        }
      } else if (this.bad >= 0) {
        return notANumber(file, this.name, rowAt[this.bad], this.badText);
      }
      const num = this.num!;
      for (let i = 0; i < num.length; i++) {
        if (Math.abs(num[i]) > FLOAT32_MAX) return beyondFloat32(file, this.name, rowAt[i], String(num[i]));
      }
      return { type, data: num };
    }
    if (this.overflow) return 'texts';
    const order = this.texts.map((_, k) => k).sort((a, b) => compareValues(this.texts[a], this.texts[b]));
    const rank = new Int32Array(order.length);
    order.forEach((k, r) => (rank[k] = r));
    const code = this.code!;
    for (let i = 0; i < code.length; i++) if (code[i] >= 0) code[i] = rank[code[i]];
    return { type, categories: order.map((k) => this.texts[k]), data: code };
  }
}

export interface ReadTabularOptions {
  idColumn: string;
  /** The cohort's ids (the image ids): row i of the result is subject ids[i]. */
  ids: readonly string[];
  maxCategories: number;
  /**
   * Given the header, the columns to encode, in order, each with its declared
   * type (undefined: infer it); undefined to encode none (the caller will
   * report why).
   */
  choose(columns: readonly string[], idColumn: string): { name: string; type?: CohortColumnType }[] | undefined;
}

export interface TabularRead {
  /** The CSV's header, ids and row numbers, for joining and messages. */
  table: CsvScan;
  /** The chosen columns in cohort order (row i = ids[i]); undefined when none were chosen. */
  columns?: { name: string; type: CohortColumnType; categories?: string[]; data: ColumnData }[];
  /** The first column error (a non-number in a continuous column), for the caller to throw in turn. */
  error?: DataError;
}

/**
 * Reads the tabular CSV of a cohort straight into compact columns. CSV-level
 * errors (readCsv's) are thrown; a column error is returned, since loadCohort
 * reports joining and label errors first. Rows whose id is not in `ids` are
 * skipped here (the join reports them).
 */
export async function readTabular(file: string, opts: ReadTabularOptions): Promise<TabularRead> {
  const n = opts.ids.length;
  const position = new Map<string, number>();
  opts.ids.forEach((id, i) => position.set(id, i));
  const rowAt = new Int32Array(n);
  const numericLimit = Math.max(64, opts.maxCategories + 1);
  let builders: ColumnBuilder[] | undefined;
  const bytes = await readCsvBytes(file);
  const table = await scanCsv(
    file,
    { idColumn: opts.idColumn },
    {
      header(columns) {
        const chosen = opts.choose(columns, opts.idColumn);
        builders = chosen?.map((c) => new ColumnBuilder(c.name, columns.indexOf(c.name), c.type, n, numericLimit));
      },
      row(record, id, row) {
        const pos = position.get(id);
        if (pos === undefined || !builders) return;
        rowAt[pos] = row;
        for (const b of builders) b.add(record[b.j], pos);
      },
    },
    bytes,
  );
  if (!builders) return { table };
  const columns: NonNullable<TabularRead['columns']> = [];
  const reread: number[] = [];
  for (const b of builders) {
    const r = b.finish(opts.maxCategories, file, rowAt);
    if (r instanceof DataError) return { table, error: r };
    if (r === 'texts') reread.push(columns.length);
    columns.push(r === 'texts' ? { name: b.name, type: 'categorical', data: new Int32Array(0) } : { name: b.name, ...r });
  }
  if (reread.length > 0) {
    // Rare: categorical columns with many distinct numbers among their texts.
    // Read their cells again from the same bytes, as strings, one column each.
    const cells = reread.map(() => new Array<string>(n).fill(''));
    const js = reread.map((c) => builders![c].j);
    await scanCsv(file, { idColumn: opts.idColumn }, {
      row(record, id) {
        const pos = position.get(id);
        if (pos !== undefined) js.forEach((j, k) => (cells[k][pos] = record[j]));
      },
    }, bytes);
    reread.forEach((c, k) => {
      const { categories, data } = encodeColumn(cells[k], 'categorical', file, columns[c].name);
      columns[c] = { name: columns[c].name, type: 'categorical', categories, data };
    });
  }
  return { table, columns };
}
