/**
 * Tabular data: CSV files with a header row, one subject per row, and the
 * column type rules the tabular encoder relies on.
 *
 * Row numbers in messages are spreadsheet rows: the header is row 1, blank
 * lines count, and a quoted cell spanning several lines is one row.
 */
import { parse } from 'csv-parse/sync';
import { DataError } from '../errors';
import { string, plainObject, knownKeys, invalid } from '../validate';
import { checkUtf8, readInputFile } from '../io/read';

export interface ReadCsvOptions {
  /** Column that identifies subjects (e.g. `eid`); must be non-empty and unique. @default the first column */
  idColumn?: string;
}

export interface CsvTable {
  /** Header names, in file order (the id column included). */
  columns: string[];
  /** Data rows as strings (cells trimmed), each `columns.length` long. */
  rows: string[][];
  /** Value of the id column for each row. */
  ids: string[];
  /** The id column's name. */
  idColumn: string;
  /** Spreadsheet row number of each data row (2 for the first data row unless blank lines precede it). */
  rowNumbers: number[];
}

export type ColumnType = 'continuous' | 'categorical' | 'binary';

export interface InferOptions {
  /** Integer-coded numeric columns with at most this many distinct values are categorical (see inferColumnType). @default 10 */
  maxCategories?: number;
}

/** Where scanCsv is in a file: the header, then one call per accepted data row. */
export interface CsvScanHandlers {
  /** The header, once it passed its checks; `idIndex` is the id column's position. */
  header?(columns: readonly string[], idIndex: number): void;
  /** A data row that passed readCsv's checks, in file order: its cells (trimmed), its id and its spreadsheet row. */
  row(record: string[], id: string, row: number): void;
}

/** A CSV table without its rows (see scanCsv). */
export type CsvScan = Omit<CsvTable, 'rows'>;

/** Reads a CSV file with a header row. */
export async function readCsv(file: string, opts?: ReadCsvOptions): Promise<CsvTable> {
  const rows: string[][] = [];
  const scan = await scanCsv(file, opts, { row: (record) => rows.push(record) });
  return { ...scan, rows };
}

function readOptions(file: unknown, opts: unknown): string | undefined {
  string(file, 'path');
  if (opts === undefined) return undefined;
  const o = plainObject(opts, 'options');
  knownKeys(o, 'options', ['idColumn']);
  return o.idColumn !== undefined ? string(o.idColumn, 'idColumn') : undefined;
}

/** Reads a CSV file's bytes (`Cannot read …` DataError on failure; a file that is not UTF-8 is refused, see checkUtf8). */
export async function readCsvBytes(file: string): Promise<Buffer> {
  const bytes = await readInputFile(file);
  checkUtf8(bytes, file);
  return bytes;
}

/**
 * readCsv without keeping the rows: the same checks and messages, and the
 * same precedence (a parse error anywhere in the file comes first, then the
 * header, then the first bad row), but each accepted row goes to
 * `handlers.row` as it is parsed and is not kept. `bytes` are the file's
 * contents when the caller has read them already (scanCsv does not keep them).
 */
export async function scanCsv(file: string, opts: ReadCsvOptions | undefined, handlers: CsvScanHandlers, bytes?: Buffer): Promise<CsvScan> {
  const idOpt = readOptions(file, opts);
  const data = bytes ?? (await readCsvBytes(file));
  let columns: string[] | undefined;
  let headerRow = 0;
  let records = 0;
  // Errors are kept, not thrown, until the parse is over (see above).
  let headerError: DataError | undefined;
  let rowError: DataError | undefined;
  let idColumn = '';
  let idIndex = -1;
  const ids: string[] = [];
  const rowNumbers: number[] = [];
  const idRow = new Map<string, number>();
  let handlerError: unknown;
  const call = (f: () => void) => {
    try {
      f();
    } catch (err) {
      handlerError ??= err;
    }
  };
  const onRecord = (raw: string[], info: { records: number; empty_lines: number }): null => {
    // csv-parse's trim stops at the quotes: `"M "` would keep its space and make a category of its own.
    const record = raw.map((cell) => cell.trim());
    const row = info.records + info.empty_lines;
    records++;
    if (columns === undefined) {
      columns = record;
      headerRow = row;
      const seen = new Map<string, number>();
      for (let j = 0; j < columns.length && !headerError; j++) {
        const name = columns[j];
        if (name === '') headerError = new DataError(`${file}: header row ${headerRow} has an empty name for column ${j + 1}`);
        const prev = seen.get(name);
        if (prev !== undefined) {
          headerError ??= new DataError(`${file}: header row ${headerRow} has column "${name}" twice (columns ${prev + 1} and ${j + 1})`);
        }
        seen.set(name, j);
      }
      idColumn = idOpt ?? columns[0];
      idIndex = columns.indexOf(idColumn);
      if (!headerError && idIndex >= 0 && handlers.header) call(() => handlers.header!(columns!, idIndex));
      return null;
    }
    if (headerError || idIndex < 0 || rowError) return null;
    if (record.length !== columns.length) {
      const what = record.length < columns.length ? `column "${columns[record.length]}" is missing` : `an extra cell after column "${columns[columns.length - 1]}"`;
      rowError = new DataError(`${file}: row ${row} has ${record.length} cell(s) but the header has ${columns.length} (${what})`);
      return null;
    }
    const id = record[idIndex];
    if (id === '') {
      rowError = new DataError(`${file}: row ${row} has no value in id column "${idColumn}"`);
      return null;
    }
    const first = idRow.get(id);
    if (first !== undefined) {
      rowError = new DataError(`${file}: row ${row} repeats id "${id}" of row ${first} in id column "${idColumn}"`);
      return null;
    }
    idRow.set(id, row);
    ids.push(id);
    rowNumbers.push(row);
    if (handlerError === undefined) call(() => handlers.row(record, id, row));
    return null;
  };
  try {
    parse(data, {
      bom: true,
      trim: true,
      // Every line ending, mixed within a file too (rows appended with echo to a
      // Windows-written CSV); csv-parse would otherwise use the first one only.
      record_delimiter: ['\r\n', '\n', '\r'],
      skip_empty_lines: true,
      relax_column_count: true,
      on_record: onRecord,
    });
  } catch (err) {
    const e = err as Error & { lines?: number };
    throw new DataError(`${file}: cannot parse CSV near line ${e.lines ?? '?'}: ${e.message}`, { cause: err });
  }
  if (handlerError !== undefined) throw handlerError;
  if (columns === undefined) throw new DataError(`${file} is empty: expected a header row and at least one data row`);
  if (headerError) throw headerError;
  if (records === 1) throw new DataError(`${file} has a header but no data rows`);
  if (idIndex < 0) {
    throw new DataError(`${file} has no id column "${idColumn}"; its columns are ${columns.map((c) => `"${c}"`).join(', ')}`);
  }
  if (rowError) throw rowError;
  return { columns, ids, idColumn, rowNumbers };
}

const MISSING = new Set(['', 'na', 'n/a', 'nan']);
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** True for a cell that counts as missing: empty, `NA`, `N/A` or `NaN` (any case, surrounding spaces ignored). */
export function isMissing(value: string): boolean {
  return MISSING.has(value.trim().toLowerCase());
}

/** Parses a decimal number (`12`, `-3.5`, `1e-3`, `.5`); anything else (hex, `Infinity`, `1,5`) gives undefined. */
export function toNumber(value: string): number | undefined {
  const s = value.trim();
  return NUMBER.test(s) ? Number(s) : undefined;
}

/**
 * Infers how the tabular encoder should treat a column. Rules, in order:
 * 1. Missing cells (see isMissing) are ignored.
 * 2. Any remaining cell that is not a decimal number → `'categorical'`.
 *    A column with no non-missing cell is also `'categorical'`.
 * 3. Numeric with at most 2 distinct values → `'binary'`.
 * 4. Numeric, every value an integer, 3 to `maxCategories` distinct values,
 *    and every distinct value seen at least twice on average
 *    (distinct ≤ non-missing count / 2) → `'categorical'` (coded categories such as 0/1/2).
 * 5. Any other numeric column → `'continuous'`.
 */
export function inferColumnType(values: readonly string[], opts?: InferOptions): ColumnType {
  if (!Array.isArray(values)) throw invalid('array of strings', 'values', values);
  let maxCategories = 10;
  if (opts !== undefined) {
    const o = plainObject(opts, 'options');
    knownKeys(o, 'options', ['maxCategories']);
    if (o.maxCategories !== undefined) {
      const m = o.maxCategories;
      if (typeof m !== 'number' || !Number.isInteger(m) || m < 2) throw invalid('integer ≥ 2', 'maxCategories', m);
      maxCategories = m;
    }
  }
  const distinct = new Set<number>();
  let present = 0;
  let integers = true;
  for (const v of values) {
    if (typeof v !== 'string') throw invalid('array of strings', 'values', values);
    if (isMissing(v)) continue;
    const n = toNumber(v);
    if (n === undefined) return 'categorical';
    present++;
    distinct.add(n);
    if (!Number.isInteger(n)) integers = false;
  }
  if (present === 0) return 'categorical';
  if (distinct.size <= 2) return 'binary';
  if (integers && distinct.size <= maxCategories && distinct.size <= present / 2) return 'categorical';
  return 'continuous';
}

/**
 * Parses a continuous column: missing cells (see isMissing) become NaN, any
 * other non-number throws DataError naming `file`, `column` and the row.
 * `rowNumbers` (from readCsv) gives each value's spreadsheet row; without it
 * value i is taken to be on row i + 2 (right after the header).
 */
export function parseContinuous(
  values: readonly string[],
  file: string,
  column: string,
  rowNumbers?: readonly number[],
): Float64Array {
  if (!Array.isArray(values)) throw invalid('array of strings', 'values', values);
  if (rowNumbers !== undefined && (!Array.isArray(rowNumbers) || rowNumbers.length !== values.length)) {
    throw invalid(`array of ${values.length} row numbers`, 'rowNumbers', rowNumbers);
  }
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string' && isMissing(v)) {
      out[i] = NaN;
      continue;
    }
    const n = typeof v === 'string' ? toNumber(v) : undefined;
    if (n === undefined || !Number.isFinite(n)) {
      throw notANumber(file, column, rowNumbers ? rowNumbers[i] : i + 2, String(v));
    }
    if (Math.abs(n) > FLOAT32_MAX) throw beyondFloat32(file, column, rowNumbers ? rowNumbers[i] : i + 2, String(v));
    out[i] = n;
  }
  return out;
}

/**
 * A cell as a message quotes it: control characters escaped, and cut to 60
 * characters (a 100 kB cell or a binary file would otherwise fill the
 * terminal).
 */
export function cellText(cell: string): string {
  const escaped = JSON.stringify(cell).slice(1, -1);
  return escaped.length > 60 ? `${escaped.slice(0, 57)}… (${cell.length} characters)` : escaped;
}

/** The DataError for a cell of a continuous column that is not a number. */
export function notANumber(file: string, column: string, row: number, cell: string): DataError {
  return new DataError(`${file}: row ${row}, column "${column}" has "${cellText(cell)}", which is not a number`);
}

/** The largest float32: tabular data, labels and targets are float32 once they reach the encoders. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** A number the float32 the encoders and metrics use cannot hold (it would become ±Infinity). */
export function beyondFloat32(file: string, column: string, row: number, cell: string): DataError {
  return new DataError(`${file}: row ${row}, column "${column}" has "${cellText(cell)}", beyond the float32 range (±3.4e38) that training and evaluation use`);
}
