/**
 * The `cohort.yaml` schema (docs/data.md): a zod schema that rejects unknown
 * keys, and a parser whose ConfigErrors name the yaml file, the line and the
 * field path (`labels.tasks.lvef`).
 */
import { z } from 'zod';
import YAML, { LineCounter } from 'yaml';
import { ConfigError } from '../errors';

const relPath = z.string().min(1);
const idColumn = z.string().min(1).default('id');
const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);

const niftiOptions = z.strictObject({
  /** z slice; `'mid'` is floor(nz / 2). @default 'mid' */
  slice: z.union([z.literal('mid'), z.number().int().nonnegative()], {
    error: "expected 'mid' or a non-negative integer",
  }).default('mid'),
  /** Time frames stacked as channels. @default every frame */
  frames: z.array(z.number().int().nonnegative()).min(1).optional(),
});

const images = z
  .strictObject({
    npy: relPath.optional(),
    ids: relPath.optional(),
    index: relPath.optional(),
    /** Extension: the id column of the ids CSV or the index CSV (UK Biobank: eid). @default 'id' */
    id: idColumn,
    format: z.enum(['nifti', 'png', 'dicom']).optional(),
    nifti: niftiOptions.optional(),
    /** [H, W]: resize at conversion; with `npy`, an assertion on the stored H×W. */
    // At most 4096 a side: the cache holds every image at this size (a typo such as 100000 would ask for TBs).
    size: z.tuple([positiveInt.max(4096), positiveInt.max(4096)]).optional(),
    channels: z.union([z.literal(1), z.literal(3)], { error: 'expected 1 or 3' }).optional(),
  })
  .superRefine((v, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message, input: v });
    if (v.npy === undefined && v.index === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'needs either npy (with ids) or index (with format)', input: v });
    }
    if (v.npy !== undefined && v.index !== undefined) issue('index', 'cannot be used together with images.npy; give one of them');
    if (v.npy !== undefined && v.ids === undefined) issue('ids', 'is required with images.npy (a CSV with one column `id`)');
    if (v.index !== undefined && v.ids !== undefined) issue('ids', 'applies only to images.npy; the index CSV has its own id column');
    if (v.index !== undefined && v.format === undefined) issue('format', 'is required with images.index (nifti, png or dicom)');
    if (v.index === undefined && v.format !== undefined) issue('format', 'applies only to images.index');
    if (v.nifti !== undefined && v.format !== 'nifti') issue('nifti', 'applies only to format: nifti');
    if (v.channels !== undefined && v.format !== 'png') issue('channels', 'applies only to format: png');
  });

/** Rows of a CSV whose id has no image: an error, or skipped (a biobank-wide extract). */
const unmatchedRows = z.enum(['error', 'ignore']).default('error');

const tabular = z.strictObject({
  csv: relPath,
  id: idColumn,
  unmatchedRows,
  types: z.record(z.string(), z.enum(['continuous', 'categorical'])).default({}),
  exclude: z.array(z.string().min(1)).default([]),
  /** Extension: integer-coded columns with at most this many values are inferred categorical. @default 10 */
  maxCategories: positiveInt.min(2).default(10),
});

const labels = z.strictObject({
  csv: relPath,
  id: idColumn,
  unmatchedRows,
  /** Imaged subjects without a row: an error, or unlabelled in every task. */
  missingRows: z.enum(['error', 'unlabelled']).default('error'),
  tasks: z
    .record(z.string().min(1), z.enum(['binary', 'multiclass', 'regression']))
    .refine((t) => Object.keys(t).length > 0, { message: 'must name at least one task' }),
});

const splits = z
  .strictObject({
    csv: relPath.optional(),
    /** Extension: the id column of the splits CSV. @default 'id' */
    id: idColumn,
    unmatchedRows,
    seed: z.number().int().nonnegative().optional(),
    fractions: z.tuple([fraction, fraction, fraction]).optional(),
    stratify: z.string().min(1).optional(),
  })
  .superRefine((v, ctx) => {
    const seeded = v.seed !== undefined || v.fractions !== undefined || v.stratify !== undefined;
    if (v.csv !== undefined && seeded) {
      const key = v.seed !== undefined ? 'seed' : v.fractions !== undefined ? 'fractions' : 'stratify';
      ctx.addIssue({ code: 'custom', path: [key], message: 'cannot be used together with splits.csv', input: v[key] });
    }
    if (v.fractions !== undefined) {
      const sum = v.fractions[0] + v.fractions[1] + v.fractions[2];
      if (Math.abs(sum - 1) > 1e-6) {
        ctx.addIssue({ code: 'custom', path: ['fractions'], message: `must sum to 1 (they sum to ${sum})`, input: v.fractions });
      } else if (v.fractions[0] <= 0) {
        ctx.addIssue({ code: 'custom', path: ['fractions', 0], message: 'the train fraction must be > 0', input: v.fractions[0] });
      }
    }
  });

export const cohortSchema = z
  .strictObject({
    version: z.literal(1),
    /** Free text. Extension: optional, defaults to the directory's name. */
    name: z.string().min(1).optional(),
    images,
    /** Extension: optional (an images-only cohort, for embedding, prediction, evaluation and image-only pretraining). */
    tabular: tabular.optional(),
    /** Extension: optional (a pretraining-only cohort has no tasks). */
    labels: labels.optional(),
    /** Extension: optional; defaults to `{ seed: 0, fractions: [0.7, 0.15, 0.15] }`. */
    splits: splits.optional(),
    truth: relPath.optional(),
  })
  .superRefine((v, ctx) => {
    const s = v.splits?.stratify;
    if (s === undefined) return;
    const type = v.labels?.tasks[s];
    if (type === undefined) {
      const known = Object.keys(v.labels?.tasks ?? {});
      ctx.addIssue({
        code: 'custom',
        path: ['splits', 'stratify'],
        message: `names no task in labels.tasks (${known.length ? known.join(', ') : 'none declared'})`,
        input: s,
      });
    } else if (type === 'regression') {
      ctx.addIssue({ code: 'custom', path: ['splits', 'stratify'], message: `task "${s}" is a regression task; stratify needs a binary or multiclass task`, input: s });
    }
  });

export type CohortConfig = z.output<typeof cohortSchema>;
export type ImagesConfig = CohortConfig['images'];

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return `"${v}"`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return String(v);
  return `${typeof v} ${String(v)}`;
}

/** `['labels','tasks','lvef']` → `labels.tasks.lvef`; indices as `[1]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(top level)';
}

/** The keys an object schema accepts at `path`, for "unknown key" messages. */
function allowedKeys(path: readonly PropertyKey[]): string[] {
  type Node = { shape?: Record<string, Node>; unwrap?: () => Node; def?: { in?: Node; innerType?: Node } };
  let node: Node | undefined = cohortSchema as unknown as Node;
  const down = (n: Node | undefined): Node | undefined => {
    for (let k = 0; k < 10 && n && !n.shape; k++) n = n.def?.innerType ?? n.def?.in ?? n.unwrap?.();
    return n;
  };
  node = down(node);
  for (const p of path) node = down(node?.shape?.[String(p)]);
  return node?.shape ? Object.keys(node.shape) : [];
}

function issueText(iss: z.core.$ZodIssue & { input?: unknown }): { path: PropertyKey[]; text: string } {
  const path = [...iss.path];
  switch (iss.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(path);
      const keys = iss.keys.map((k) => `"${k}"`).join(', ');
      return {
        path: [...path, iss.keys[0]],
        text: `unknown key ${keys} in ${fieldPath(path)}${allowed.length ? `; expected one of ${allowed.join(', ')}` : ''}`,
      };
    }
    case 'invalid_type':
      return {
        path,
        text: iss.input === undefined ? `is required (expected ${iss.expected})` : `expected ${iss.expected} but got ${describe(iss.input)}`,
      };
    case 'invalid_value':
      return { path, text: `expected ${iss.values.map((x) => JSON.stringify(x)).join(' | ')} but got ${describe(iss.input)}` };
    case 'custom':
      return { path, text: iss.message };
    case 'too_small':
    case 'too_big': {
      const bound = iss.code === 'too_small' ? iss.minimum : iss.maximum;
      const op = iss.code === 'too_small' ? (iss.inclusive ? '≥' : '>') : iss.inclusive ? '≤' : '<';
      const what = iss.origin === 'array' ? `a list with ${iss.exact ? 'exactly' : iss.code === 'too_small' ? 'at least' : 'at most'} ${bound} item(s)`
        : iss.origin === 'string' ? `a string of ${op} ${bound} character(s)` : `a number ${op} ${bound}`;
      return { path, text: `expected ${what} but got ${describe(iss.input)}` };
    }
    default:
      return { path, text: `${iss.message.replace(/^Invalid input: /, '')}${iss.input !== undefined ? ` (got ${describe(iss.input)})` : ''}` };
  }
}

/**
 * Parses the text of a cohort.yaml. `file` names it in messages. Throws
 * ConfigError for YAML syntax errors and for every schema violation (all of
 * them, one per line: `<file> line N: <field.path>: <what>`).
 */
export function parseCohortYaml(text: string, file: string): CohortConfig {
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? lineCounter.linePos(e.pos[0]).line;
    throw new ConfigError(`${file} line ${line}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) throw new ConfigError(`${file} is empty; see docs/data.md for the cohort format`);
  const result = cohortSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const lineOf = (path: PropertyKey[]): string => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) return ` line ${lineCounter.linePos(node.range[0]).line}`;
    }
    return '';
  };
  const lines = result.error.issues.slice(0, 10).map((iss) => {
    const { path, text } = issueText(iss as z.core.$ZodIssue & { input?: unknown });
    return `${file}${lineOf(path)}: ${fieldPath(path)}: ${text}`;
  });
  const more = result.error.issues.length > 10 ? `\n(and ${result.error.issues.length - 10} more)` : '';
  throw new ConfigError(lines.join('\n') + more);
}
