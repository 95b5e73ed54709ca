/**
 * Loads a cohort directory (docs/data.md): cohort.yaml, the tabular, labels
 * and splits CSVs and the images, joined on the subject id and validated.
 * Cohort rows follow the order of the image ids. Tabular columns are kept
 * compact (lib/data/tabular-columns.ts); the truth file is read on demand
 * (loadTruth).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ConfigError, DataError } from '../errors';
import { knownKeys, plainObject, invalid } from '../validate';
import { readCsv, parseContinuous, isMissing, type CsvScan, type CsvTable } from './csv';
import { parseCohortYaml, type CohortConfig } from './cohort-schema';
import { convertIndexedImages, openNpyImages, type CohortImages, type ImageIds } from './cohort-images';
import { seededSplit, splitsFromValues, type CohortSplits } from './cohort-splits';
import { compareValues, distinctSorted, readTabular, type ColumnData, type CohortColumnType } from './tabular-columns';
import { checkUtf8, ioReason } from '../io/read';

export type { CohortImages } from './cohort-images';
export type { CohortSplits } from './cohort-splits';
export type { ColumnData } from './tabular-columns';
export { compareValues };

export interface CohortColumn {
  name: string;
  type: CohortColumnType;
  /** Categorical only: the distinct non-missing values over all rows, sorted (numbers numerically). */
  categories?: string[];
}

export interface CohortTask {
  name: string;
  type: 'binary' | 'multiclass' | 'regression';
  /** Classification only: the distinct non-missing labels, sorted; a label's class index is its position. */
  classes?: string[];
}

export interface Cohort {
  /** Absolute path of the cohort directory. */
  dir: string;
  name: string;
  /** Subject ids; row i of everything below is subject `ids[i]`. */
  ids: string[];
  images: CohortImages;
  tabular: {
    /** Absolute path of the tabular CSV; '' for an images-only cohort (no tabular section, no columns). */
    file: string;
    columns: CohortColumn[];
    /**
     * Values by column: `data[j][i]` is column j of row i. A continuous
     * column is a Float64Array, NaN for a missing cell; a categorical one an
     * Int32Array of indices into `columns[j].categories`, −1 for a missing cell.
     */
    data: ColumnData[];
    /** Spreadsheet row of each cohort row in the tabular CSV, for messages. */
    rowNumbers: number[];
  };
  labels: {
    file?: string;
    tasks: CohortTask[];
    /** Raw label cells by task name, in row order; missing labels are empty / NA cells. */
    values: Record<string, string[]>;
  };
  splits: CohortSplits;
  /** Absolute path of the `truth` JSON (synthetic cohorts); read it with loadTruth. */
  truthFile?: string;
  /** What the joins allowed by cohort.yaml dropped or left unlabelled (absent when nothing). */
  joined?: {
    tabular?: { ignoredRows: number };
    labels?: { ignoredRows: number; unlabelledSubjects: number };
    splits?: { ignoredRows: number };
  };
}

export interface LoadCohortOptions {
  /** Tabular columns to keep, in this order. @default every column that is not the id or excluded */
  features?: string[];
  /** Scan float NPY stores for NaN/Inf (a clean scan of an unchanged file is remembered). @default true */
  scanImages?: boolean;
  /** Progress of a first-time image conversion. */
  onProgress?: (done: number, total: number) => void;
}

function checkOptions(opts: unknown): LoadCohortOptions {
  if (opts === undefined) return {};
  const o = plainObject(opts, 'options');
  knownKeys(o, 'options', ['features', 'scanImages', 'onProgress']);
  const f = o.features;
  if (f !== undefined && (!Array.isArray(f) || f.length === 0 || f.some((v) => typeof v !== 'string' || v === ''))) {
    throw invalid('non-empty array of column names', 'features', f);
  }
  if (o.scanImages !== undefined && typeof o.scanImages !== 'boolean') throw invalid('boolean', 'scanImages', o.scanImages);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalid('function', 'onProgress', o.onProgress);
  return o as LoadCohortOptions;
}

/** Reads and validates cohort.yaml in `dir`. */
export async function readCohortConfig(dir: string): Promise<{ config: CohortConfig; file: string }> {
  const file = path.join(dir, 'cohort.yaml');
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file; a cohort directory needs a cohort.yaml (see docs/data.md)' : e.message;
    throw new DataError(`Cannot read ${file}: ${why}`, { cause: err });
  }
  checkUtf8(bytes, file);
  const text = bytes.toString('utf8');
  return { config: parseCohortYaml(text, file), file };
}

/** How a CSV may differ from the image ids (cohort.yaml's unmatchedRows, missingRows). */
interface AlignRules {
  /** Key named in the error, e.g. `tabular.unmatchedRows`. */
  unmatchedKey: string;
  unmatched: 'error' | 'ignore';
  /** Key named in the error, when the CSV may lack imaged subjects. */
  missingKey?: string;
  missing?: 'error' | 'unlabelled';
}

/**
 * For each image id, the row of `table` with that id (−1: none, where the
 * rules allow it). Throws DataError when `table` lacks an image id, or has an
 * id with no image, unless the rules allow it; counts what was allowed.
 */
function align(ref: ImageIds, table: CsvScan, file: string, rules: AlignRules): { order: number[]; unmatched: number; missing: number } {
  const byId = new Map<string, number>();
  table.ids.forEach((id, k) => byId.set(id, k));
  const out = new Array<number>(ref.ids.length);
  let missing = 0;
  for (let i = 0; i < ref.ids.length; i++) {
    const k = byId.get(ref.ids[i]);
    if (k === undefined) {
      if (rules.missing === 'unlabelled') {
        out[i] = -1;
        missing++;
        continue;
      }
      const hint = rules.missingKey ? ` (set ${rules.missingKey}: unlabelled to leave such subjects unlabelled)` : '';
      throw new DataError(
        `${file} has no row for id "${ref.ids[i]}" (id column "${table.idColumn}"), which ${ref.file} has on row ${ref.rows[i]}${hint}`,
      );
    }
    out[i] = k;
  }
  const unmatched = table.ids.length - (ref.ids.length - missing);
  if (unmatched > 0 && rules.unmatched === 'error') {
    const known = new Set(ref.ids);
    const k = table.ids.findIndex((id) => !known.has(id));
    throw new DataError(
      `${ref.file} has no image for id "${table.ids[k]}", which ${file} has on row ${table.rowNumbers[k]} (id column "${table.idColumn}"); ` +
        `set ${rules.unmatchedKey}: ignore to skip the rows of subjects without an image`,
    );
  }
  return { order: out, unmatched, missing };
}

/** A column's cells in image order; '' (missing) where the subject has no row. */
const column = (table: CsvTable, name: string, order: readonly number[]) => {
  const j = table.columns.indexOf(name);
  return order.map((k) => (k < 0 ? '' : table.rows[k][j]));
};

/** Loads, joins and validates a cohort; see docs/data.md for the format and the errors. */
export async function loadCohort(dir: string, opts?: LoadCohortOptions): Promise<Cohort> {
  if (typeof dir !== 'string' || dir === '') throw invalid('non-empty string', 'dir', dir);
  const o = checkOptions(opts);
  const root = path.resolve(dir);
  const { config, file: yamlFile } = await readCohortConfig(root);
  const at = (p: string) => path.resolve(root, p);
  const img = config.images;

  // Ids first: they fix the row order.
  const idsFile = at(img.npy !== undefined ? img.ids! : img.index!);
  const idsTable = await readCsv(idsFile, { idColumn: img.id });
  const ref: ImageIds = { ids: idsTable.ids, rows: idsTable.rowNumbers, file: idsFile };

  // The tabular CSV streams into compact columns; its column errors wait for their turn below.
  const tabConfig = config.tabular;
  if (tabConfig === undefined && o.features !== undefined) {
    throw new ConfigError(`${yamlFile} has no tabular section, so there are no features to choose (features: ${o.features.join(', ')})`);
  }
  const tabFile = tabConfig ? at(tabConfig.csv) : '';
  const tab = tabConfig
    ? await readTabular(tabFile, {
      idColumn: tabConfig.id,
      ids: ref.ids,
      maxCategories: tabConfig.maxCategories,
      choose: (header, idColumn) => {
        try {
          return chooseColumns(config, yamlFile, header, idColumn, tabFile, o.features).map((name) => ({ name, type: tabConfig.types[name] }));
        } catch {
          return undefined;
        }
      },
    })
    : undefined;
  const joined: NonNullable<Cohort['joined']> = {};
  let tabOrder: number[] = [];
  if (tab && tabConfig) {
    const tabJoin = align(ref, tab.table, tabFile, { unmatchedKey: 'tabular.unmatchedRows', unmatched: tabConfig.unmatchedRows });
    tabOrder = tabJoin.order;
    if (tabJoin.unmatched) joined.tabular = { ignoredRows: tabJoin.unmatched };
  }

  const tasks: CohortTask[] = [];
  const values: Record<string, string[]> = {};
  let labelsFile: string | undefined;
  if (config.labels) {
    labelsFile = at(config.labels.csv);
    const lab = await readCsv(labelsFile, { idColumn: config.labels.id });
    for (const name of Object.keys(config.labels.tasks)) {
      if (!lab.columns.includes(name) || name === lab.idColumn) {
        throw new DataError(`${labelsFile} has no column "${name}" for task labels.tasks.${name} in ${yamlFile}`);
      }
    }
    const labJoin = align(ref, lab, labelsFile, {
      unmatchedKey: 'labels.unmatchedRows', unmatched: config.labels.unmatchedRows, missingKey: 'labels.missingRows', missing: config.labels.missingRows,
    });
    const labOrder = labJoin.order;
    if (labJoin.unmatched || labJoin.missing) joined.labels = { ignoredRows: labJoin.unmatched, unlabelledSubjects: labJoin.missing };
    for (const [name, type] of Object.entries(config.labels.tasks)) {
      const cells = column(lab, name, labOrder);
      const rows = labOrder.map((k) => (k < 0 ? -1 : lab.rowNumbers[k]));
      tasks.push(checkTask(name, type, cells, rows, labelsFile));
      values[name] = cells;
    }
  }

  let columns: CohortColumn[] = [];
  let data: ColumnData[] = [];
  if (tab) {
    chooseColumns(config, yamlFile, tab.table.columns, tab.table.idColumn, tabFile, o.features);
    if (tab.error) throw tab.error;
    columns = tab.columns!.map(({ name, type, categories }) => (categories ? { name, type, categories } : { name, type }));
    data = tab.columns!.map((c) => c.data);
  }

  let splits: CohortSplits;
  const sp = config.splits;
  if (sp?.csv !== undefined) {
    const splitFile = at(sp.csv);
    const st = await readCsv(splitFile, { idColumn: sp.id });
    if (!st.columns.includes('split')) {
      throw new DataError(`${splitFile} has no column "split"; its columns are ${st.columns.map((c) => `"${c}"`).join(', ')}`);
    }
    const stJoin = align(ref, st, splitFile, { unmatchedKey: 'splits.unmatchedRows', unmatched: sp.unmatchedRows });
    const order = stJoin.order;
    if (stJoin.unmatched) joined.splits = { ignoredRows: stJoin.unmatched };
    splits = splitsFromValues(column(st, 'split', order), ref.ids, order.map((k) => st.rowNumbers[k]), splitFile, 'split');
  } else {
    const fractions = sp?.fractions ?? [0.7, 0.15, 0.15];
    splits = seededSplit(ref.ids, fractions, sp?.seed ?? 0, sp?.stratify ? values[sp.stratify] : undefined);
    if (splits.train.length === 0) throw new DataError(`${yamlFile}: splits.fractions leave no row of ${ref.ids.length} for train`);
  }

  // The truth file can be large (10 MB at 16k subjects) and few callers need
  // it: only check here that it can be opened; loadTruth reads it.
  let truthFile: string | undefined;
  if (config.truth !== undefined) {
    truthFile = at(config.truth);
    try {
      await (await fsp.open(truthFile, 'r')).close();
    } catch (err) {
      throw cannotReadTruth(truthFile, yamlFile, err);
    }
  }

  // Images last: a first-time conversion or a NaN scan is the slow part.
  const storeOpts = { scan: o.scanImages, onProgress: o.onProgress };
  const images =
    img.npy !== undefined
      ? await openNpyImages(at(img.npy), ref, root, img.size, storeOpts)
      : await convertIndexedImages(root, img, idsFile, idsTable, storeOpts);

  return {
    dir: root,
    name: config.name ?? path.basename(root),
    ids: [...ref.ids],
    images,
    tabular: { file: tabFile, columns, data, rowNumbers: tab ? tabOrder.map((k) => tab.table.rowNumbers[k]) : [] },
    labels: { file: labelsFile, tasks, values },
    splits,
    ...(truthFile !== undefined ? { truthFile } : {}),
    ...(Object.keys(joined).length ? { joined } : {}),
  };
}

/** A ConfigError when the cohort has no tabular section (an images-only cohort) and `what` needs features. */
export function requireTabular(cohort: Pick<Cohort, 'dir' | 'tabular'>, what: string): void {
  if (cohort.tabular.file === '') {
    throw new ConfigError(`${path.join(cohort.dir, 'cohort.yaml')} has no tabular section (an images-only cohort): ${what} needs tabular features`);
  }
}

const cannotReadTruth = (file: string, yamlFile: string, err: unknown) =>
  new DataError(`Cannot read ${file} (truth in ${yamlFile}): ${ioReason(err)}`, { cause: err });

/**
 * Reads and parses a cohort's `truth` JSON (synthetic cohorts): undefined
 * when cohort.yaml names none. Each call reads the file again; keep the
 * result only as long as it is needed (it is large for big cohorts).
 */
export async function loadTruth(cohort: Pick<Cohort, 'dir' | 'truthFile'>): Promise<unknown> {
  const file = cohort.truthFile;
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw cannotReadTruth(file, path.join(cohort.dir, 'cohort.yaml'), err);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DataError(`${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function checkTask(name: string, type: CohortTask['type'], cells: string[], rows: number[], file: string): CohortTask {
  const what = `${file}: column "${name}" (task "${name}", ${type})`;
  if (type === 'regression') {
    const v = parseContinuous(cells, file, name, rows);
    if (v.every((x) => Number.isNaN(x))) throw new DataError(`${what} has no labelled rows`);
    return { name, type };
  }
  const classes = distinctSorted(cells);
  if (classes.length === 0) throw new DataError(`${what} has no labelled rows`);
  if (classes.length === 1) {
    const n = cells.filter((c) => !isMissing(c)).length;
    throw new DataError(`${what} has a single class, "${classes[0]}", in its ${n} labelled rows; a classification task needs at least 2 classes`);
  }
  if (type === 'binary' && classes.length > 2) {
    const list = classes.slice(0, 10).map((c) => `"${c}"`).join(', ');
    throw new DataError(`${what} has ${classes.length} classes (${list}${classes.length > 10 ? ', …' : ''}); a binary task needs exactly 2 (declare it multiclass)`);
  }
  return { name, type, classes };
}

/**
 * The feature columns of the tabular CSV, checked against cohort.yaml and
 * `features`: throws ConfigError for a `types` or `exclude` entry naming no
 * column (or the id column), DataError for unknown or repeated features.
 */
function chooseColumns(
  config: CohortConfig,
  yamlFile: string,
  header: readonly string[],
  idColumn: string,
  tabFile: string,
  features: readonly string[] | undefined,
): string[] {
  const t = config.tabular!; // called only for a cohort with a tabular section
  const named = (name: string, field: string) => {
    if (!header.includes(name)) throw new ConfigError(`${yamlFile}: ${field}: ${tabFile} has no column "${name}"`);
    if (name === idColumn) throw new ConfigError(`${yamlFile}: ${field}: "${name}" is the id column of ${tabFile}`);
  };
  Object.keys(t.types).forEach((name) => named(name, `tabular.types.${name}`));
  t.exclude.forEach((name, k) => named(name, `tabular.exclude[${k}]`));
  const usable = header.filter((c) => c !== idColumn && !t.exclude.includes(c));
  let chosen = usable;
  if (features) {
    const unknown = features.filter((f) => !usable.includes(f));
    if (unknown.length > 0) {
      const why = (f: string) =>
        f === idColumn ? `"${f}" (the id column)` : t.exclude.includes(f) ? `"${f}" (excluded by tabular.exclude)` : `"${f}"`;
      const list = usable.slice(0, 20).join(', ') + (usable.length > 20 ? `, … (${usable.length} in all)` : '');
      throw new DataError(`${tabFile}: unknown feature(s) requested: ${unknown.map(why).join(', ')}; the feature columns are ${list}`);
    }
    const dup = features.find((f, k) => features.indexOf(f) !== k);
    if (dup !== undefined) throw new DataError(`${tabFile}: feature "${dup}" is requested twice`);
    chosen = [...features];
  }
  if (chosen.length === 0) throw new DataError(`${tabFile} has no feature columns besides the id column "${idColumn}"`);
  return chosen;
}
