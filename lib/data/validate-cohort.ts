/**
 * A summary of a loaded cohort for `tabsight validate --cohort DIR`: sizes,
 * feature types, missingness, class balance, splits and a sampled image
 * value range.
 */
import { promises as fsp } from 'node:fs';
import { halfToFloat } from '../io/safetensors';
import { isMissing } from './csv';
import type { Cohort } from './cohort';

export interface CohortSummary {
  name: string;
  dir: string;
  /** Number of subjects. */
  n: number;
  features: { total: number; continuous: number; categorical: number };
  /** Columns with missing cells, most missing first. */
  missingness: { column: string; missing: number; fraction: number }[];
  tasks: {
    name: string;
    type: 'binary' | 'multiclass' | 'regression';
    labelled: number;
    missing: number;
    /** Classification: per class, over all rows and per split. */
    classes?: { label: string; count: number; fraction: number; train: number; val: number; test: number }[];
    /** Regression: over labelled rows. */
    range?: { min: number; max: number; mean: number };
  }[];
  splits: { source: 'csv' | 'seeded'; train: number; val: number; test: number };
  images: {
    path: string;
    source: string;
    dtype: string;
    shape: number[];
    /** Value range over `sampled` images spread evenly over the store. */
    sampled: number;
    min: number;
    max: number;
    mean: number;
  };
  /** Rows skipped, and subjects left unlabelled, by the joins cohort.yaml allows (unmatchedRows, missingRows). */
  joined?: NonNullable<Cohort['joined']>;
  /** Things worth a look: a class absent from a split, constant columns, mostly-missing columns. */
  warnings: string[];
}

export interface SummaryOptions {
  /** Images read for the value range. @default 16 */
  sampleImages?: number;
}

async function sampleRange(cohort: Cohort, count: number): Promise<{ sampled: number; min: number; max: number; mean: number }> {
  const { path, offset, dtype, shape } = cohort.images;
  const [n, c, h, w] = shape;
  const per = c * h * w;
  const item = dtype === 'uint8' ? 1 : dtype === 'float16' ? 2 : 4;
  const k = Math.min(n, Math.max(1, count));
  const buf = new Uint8Array(per * item);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  const fh = await fsp.open(path, 'r');
  try {
    for (let s = 0; s < k; s++) {
      const i = k === 1 ? 0 : Math.round((s * (n - 1)) / (k - 1));
      for (let got = 0; got < buf.length; ) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + i * buf.length + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const view =
        dtype === 'uint8' ? buf : dtype === 'float16' ? Array.from(new Uint16Array(buf.buffer), halfToFloat) : new Float32Array(buf.buffer);
      for (let j = 0; j < per; j++) {
        const v = view[j];
        if (v < min) min = v;
        if (v > max) max = v;
        sum += v;
      }
    }
  } finally {
    await fh.close();
  }
  return { sampled: k, min, max, mean: sum / (k * per) };
}

/** Summarises a loaded cohort (reads a few images for the value range). */
export async function summarizeCohort(cohort: Cohort, opts: SummaryOptions = {}): Promise<CohortSummary> {
  const n = cohort.ids.length;
  const { columns, data } = cohort.tabular;
  const warnings: string[] = [];
  // Per column: missing cells, and the distinct present values (numbers, or category indices).
  const stats = columns.map((_, j) => {
    const col = data[j];
    const present = new Set<number>();
    let missing = 0;
    for (let i = 0; i < col.length; i++) {
      const v = col[i];
      if (col instanceof Float64Array ? Number.isNaN(v) : v < 0) missing++;
      else present.add(v);
    }
    return { missing, present };
  });
  const missingness = columns
    .map((c, j) => ({ column: c.name, missing: stats[j].missing, fraction: stats[j].missing / n }))
    .filter((m) => m.missing > 0)
    .sort((a, b) => b.missing - a.missing || (a.column < b.column ? -1 : 1));
  for (const m of missingness) {
    if (m.missing === n) warnings.push(`column "${m.column}" has no value at all: pretrain and select refuse it; drop it with tabular.exclude in cohort.yaml`);
    else if (m.fraction > 0.5) warnings.push(`column "${m.column}" is ${(100 * m.fraction).toFixed(0)}% missing`);
  }
  columns.forEach((c, j) => {
    const { present } = stats[j];
    if (present.size !== 1) return;
    const v = [...present][0];
    warnings.push(`column "${c.name}" is constant ("${c.type === 'categorical' ? c.categories![v] : String(v)}")`);
  });

  const splitOf = new Array<'train' | 'val' | 'test'>(n);
  for (const s of ['train', 'val', 'test'] as const) for (const r of cohort.splits[s]) splitOf[r] = s;
  const tasks = cohort.labels.tasks.map((t) => {
    const cells = cohort.labels.values[t.name];
    const missing = cells.filter(isMissing).length;
    const labelled = n - missing;
    if (t.type === 'regression') {
      const range = { min: Infinity, max: -Infinity, mean: 0 };
      for (const c of cells) {
        if (isMissing(c)) continue;
        const v = Number(c);
        range.min = Math.min(range.min, v);
        range.max = Math.max(range.max, v);
        range.mean += v;
      }
      range.mean /= labelled;
      return { name: t.name, type: t.type, labelled, missing, range };
    }
    const classes = t.classes!.map((label) => ({ label, count: 0, fraction: 0, train: 0, val: 0, test: 0 }));
    const index = new Map(t.classes!.map((c, k) => [c, k]));
    cells.forEach((c, i) => {
      const k = index.get(c);
      if (k === undefined) return;
      classes[k].count++;
      if (splitOf[i]) classes[k][splitOf[i]]++;
    });
    for (const c of classes) {
      c.fraction = c.count / labelled;
      for (const s of ['train', 'val', 'test'] as const) {
        if (c[s] === 0 && cohort.splits[s].length > 0) {
          // evaluateRun's whyUnscorable refuses such a task before embedding.
          const effect = s === 'train' ? '' : `: evaluate refuses this task (${s === 'test' ? 'its test AUC needs every class' : 'early stopping on validation AUC needs every class'}); leave it out with --task`;
          warnings.push(`task "${t.name}": class "${c.label}" has no row in ${s}${effect}`);
        }
      }
    }
    return { name: t.name, type: t.type, labelled, missing, classes };
  });

  const continuous = columns.filter((c) => c.type === 'continuous').length;
  const { path, source, dtype, shape } = cohort.images;
  return {
    name: cohort.name,
    dir: cohort.dir,
    n,
    features: { total: columns.length, continuous, categorical: columns.length - continuous },
    missingness,
    tasks,
    splits: { source: cohort.splits.source, train: cohort.splits.train.length, val: cohort.splits.val.length, test: cohort.splits.test.length },
    images: { path, source, dtype, shape: [...shape], ...(await sampleRange(cohort, opts.sampleImages ?? 16)) },
    ...(cohort.joined ? { joined: cohort.joined } : {}),
    warnings,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));

/** Plain-text rendering of a summary; `top` limits the missingness list. */
export function formatSummary(s: CohortSummary, opts: { top?: number } = {}): string {
  const top = opts.top ?? 10;
  const out: string[] = [];
  out.push(`Cohort ${s.name} (${s.dir})`);
  out.push(`  subjects: ${s.n}`);
  out.push(`  features: ${s.features.total} (${s.features.continuous} continuous, ${s.features.categorical} categorical)`);
  if (s.missingness.length === 0) out.push('  missing values: none');
  else {
    out.push(`  missing values: ${s.missingness.length} column(s)${s.missingness.length > top ? `, top ${top}` : ''}:`);
    for (const m of s.missingness.slice(0, top)) out.push(`    ${m.column}: ${m.missing} (${pct(m.fraction)})`);
  }
  const j = s.joined;
  if (j) {
    const parts: string[] = [];
    if (j.tabular?.ignoredRows) parts.push(`${j.tabular.ignoredRows} tabular row(s)`);
    if (j.labels?.ignoredRows) parts.push(`${j.labels.ignoredRows} label row(s)`);
    if (j.splits?.ignoredRows) parts.push(`${j.splits.ignoredRows} split row(s)`);
    if (parts.length) out.push(`  skipped (no image; unmatchedRows: ignore): ${parts.join(', ')}`);
    if (j.labels?.unlabelledSubjects) out.push(`  subjects without a label row (missingRows: unlabelled): ${j.labels.unlabelledSubjects}, unlabelled in every task`);
  }
  out.push(`  splits (${s.splits.source}): train ${s.splits.train}, val ${s.splits.val}, test ${s.splits.test}`);
  if (s.tasks.length === 0) out.push('  tasks: none');
  for (const t of s.tasks) {
    out.push(`  task ${t.name} (${t.type}): ${t.labelled} labelled, ${t.missing} missing`);
    if (t.range) out.push(`    min ${num(t.range.min)}, max ${num(t.range.max)}, mean ${num(t.range.mean)}`);
    for (const c of t.classes ?? []) {
      out.push(`    ${c.label}: ${c.count} (${pct(c.fraction)}); train ${c.train}, val ${c.val}, test ${c.test}`);
    }
  }
  const im = s.images;
  out.push(`  images: ${im.shape.join('×')} ${im.dtype} (${im.source === 'npy' ? 'NPY' : `converted from ${im.source}`}) ${im.path}`);
  out.push(`    values over ${im.sampled} sampled image(s): min ${num(im.min)}, max ${num(im.max)}, mean ${num(im.mean)}`);
  if (s.warnings.length > 0) {
    out.push('  warnings:');
    for (const w of s.warnings) out.push(`    ${w}`);
  }
  return out.join('\n') + '\n';
}
