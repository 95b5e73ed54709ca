/**
 * The HTML report: one self-contained file (inline CSS, inline SVG charts,
 * PNGs as data URIs, no script, no external URL) that prints cleanly.
 * Every piece of user text is escaped; raw HTML is not accepted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../binding';
import { ConfigError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { integer, invalid, knownKeys, plainObject, string } from '../validate';
import { renderSvg, VegaLiteSpec } from './charts';

export type Cell = string | number;

export interface ReportTable {
  columns: string[];
  /** One array per row, as long as `columns`. Numbers are formatted by `formatNumber`; strings such as "0.812 ± 0.013" are kept as they are. */
  rows: Cell[][];
  caption?: string;
}

export interface ReportImage {
  /** Path of a PNG file; it is embedded in the report as a data URI. */
  src: string;
  caption: string;
}

export interface ReportLink {
  /** A relative path: no scheme (https:, javascript:, …), no leading "/" or "//". */
  href: string;
  text: string;
}

export interface Section {
  heading: string;
  /** Plain text. A blank line starts a new paragraph; line breaks are kept. */
  text?: string | string[];
  table?: ReportTable;
  /** Vega-Lite specs (see charts.ts), rendered to inline SVG. */
  charts?: VegaLiteSpec[];
  images?: ReportImage[];
  /** Links to files next to the report (relative paths only, e.g. "compare/report.html"). */
  links?: ReportLink[];
  /** Raw HTML is not accepted: everything is escaped. */
  html?: never;
}

export interface Report {
  title: string;
  subtitle?: string;
  /** @default the time of rendering */
  generatedAt?: Date | string;
  sections: Section[];
}

const SECTION_KEYS = ['heading', 'text', 'table', 'charts', 'images', 'links'] as const;

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

/**
 * A number for a table: integers as they are, otherwise four significant
 * digits (trailing zeros dropped), and exponent notation for very large or
 * very small magnitudes.
 */
export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '−∞';
  const abs = Math.abs(value);
  if (Number.isInteger(value) && abs < 1e9) return String(value);
  if (abs >= 1e6 || abs < 1e-3) return value.toExponential(2);
  const fixed = value.toPrecision(4);
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** "0.812 ± 0.013": a mean and standard deviation with a fixed number of decimals; the mean alone when sd is NaN (one seed). */
export function formatMeanSd(mean: number, sd: number, digits = 3): string {
  integer(digits, 'digits', 0, 20);
  return Number.isNaN(sd) ? mean.toFixed(digits) : `${mean.toFixed(digits)} ± ${sd.toFixed(digits)}`;
}

const NUMERIC = /^\s*[-+−]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?\s*%?\s*(±\s*(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?\s*%?)?\s*$/i;

const PLACEHOLDER = /^\s*(|-|–|—|n\/a|na|nan)\s*$/i;

function isNumeric(cell: Cell): boolean {
  return typeof cell === 'number' || NUMERIC.test(cell);
}

/** A column is numeric (right-aligned) when all its cells are numbers or "mean ± sd", blanks and dashes aside. */
function numericColumn(rows: Cell[][], j: number): boolean {
  const cells = rows.map((r) => r[j]).filter((c) => typeof c === 'number' || !PLACEHOLDER.test(c));
  return cells.length > 0 && cells.every(isNumeric);
}

function checkTable(value: unknown, name: string): ReportTable {
  const t = plainObject(value, name);
  knownKeys(t, name, ['columns', 'rows', 'caption']);
  if (!Array.isArray(t.columns) || t.columns.length === 0) throw invalid('non-empty array of strings', `${name}.columns`, t.columns);
  t.columns.forEach((c, j) => {
    if (typeof c !== 'string') throw invalid('string', `${name}.columns[${j}]`, c);
  });
  if (!Array.isArray(t.rows)) throw invalid('array of rows', `${name}.rows`, t.rows);
  const width = t.columns.length;
  t.rows.forEach((row, i) => {
    if (!Array.isArray(row)) throw invalid('array of cells', `${name}.rows[${i}]`, row);
    if (row.length !== width) {
      throw new ConfigError(`Expected ${width} cells (one per column) in ${name}.rows[${i}] but received ${row.length}`);
    }
    row.forEach((cell, j) => {
      if (typeof cell !== 'string' && typeof cell !== 'number') throw invalid('string or number', `${name}.rows[${i}][${j}]`, cell);
    });
  });
  if (t.caption !== undefined) string(t.caption, `${name}.caption`);
  return t as unknown as ReportTable;
}

function checkSection(value: unknown, name: string): Section {
  const s = plainObject(value, name);
  knownKeys(s, name, SECTION_KEYS);
  string(s.heading, `${name}.heading`);
  if (s.text !== undefined) {
    const parts = Array.isArray(s.text) ? s.text : [s.text];
    parts.forEach((p, i) => {
      if (typeof p !== 'string') throw invalid('string or array of strings', Array.isArray(s.text) ? `${name}.text[${i}]` : `${name}.text`, p);
    });
  }
  if (s.table !== undefined) checkTable(s.table, `${name}.table`);
  if (s.charts !== undefined) {
    if (!Array.isArray(s.charts)) throw invalid('array of Vega-Lite specs', `${name}.charts`, s.charts);
    s.charts.forEach((c, j) => plainObject(c, `${name}.charts[${j}]`));
  }
  if (s.images !== undefined) {
    if (!Array.isArray(s.images)) throw invalid('array of images', `${name}.images`, s.images);
    s.images.forEach((im, j) => {
      const o = plainObject(im, `${name}.images[${j}]`);
      knownKeys(o, `${name}.images[${j}]`, ['src', 'caption']);
      string(o.src, `${name}.images[${j}].src`);
      if (typeof o.caption !== 'string') throw invalid('string', `${name}.images[${j}].caption`, o.caption);
    });
  }
  if (s.links !== undefined) {
    if (!Array.isArray(s.links)) throw invalid('array of links', `${name}.links`, s.links);
    s.links.forEach((l, j) => {
      const o = plainObject(l, `${name}.links[${j}]`);
      knownKeys(o, `${name}.links[${j}]`, ['href', 'text']);
      const href = string(o.href, `${name}.links[${j}].href`);
      if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith('/') || href.startsWith('\\')) {
        throw invalid('relative path (no scheme, not absolute)', `${name}.links[${j}].href`, href);
      }
      string(o.text, `${name}.links[${j}].text`);
    });
  }
  return s as unknown as Section;
}

function checkReport(value: unknown): { report: Report; generatedAt: Date } {
  const r = plainObject(value, 'report');
  knownKeys(r, 'report', ['title', 'subtitle', 'generatedAt', 'sections']);
  string(r.title, 'title');
  if (r.subtitle !== undefined && typeof r.subtitle !== 'string') throw invalid('string', 'subtitle', r.subtitle);
  let generatedAt = new Date();
  if (r.generatedAt !== undefined) {
    generatedAt = r.generatedAt instanceof Date ? r.generatedAt : new Date(typeof r.generatedAt === 'string' ? r.generatedAt : NaN);
    if (Number.isNaN(generatedAt.getTime())) throw invalid('Date or ISO 8601 string', 'generatedAt', r.generatedAt);
  }
  if (!Array.isArray(r.sections)) throw invalid('array of sections', 'sections', r.sections);
  r.sections.forEach((s, i) => checkSection(s, `sections[${i}]`));
  return { report: r as unknown as Report, generatedAt };
}

let cachedVersion: string | undefined;

/** tabsight's version, from its package.json. */
export function tabsightVersion(): string {
  if (cachedVersion === undefined) {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    cachedVersion = pkg.version ?? 'unknown';
  }
  return cachedVersion;
}

function paragraphs(text: string | string[]): string {
  const blocks = (Array.isArray(text) ? text : [text]).flatMap((t) => t.split(/\r?\n\s*\r?\n/));
  return blocks
    .map((b) => b.trim())
    .filter((b) => b.length > 0)
    .map((b) => `<p>${escapeHtml(b)}</p>`)
    .join('\n');
}

function tableHtml(t: ReportTable): string {
  const numericCol = t.columns.map((_, j) => numericColumn(t.rows, j));
  const th = t.columns.map((c, j) => `<th scope="col"${numericCol[j] ? ' class="num"' : ''}>${escapeHtml(c)}</th>`).join('');
  const body = t.rows
    .map((row) => {
      const tds = row.map((cell, j) => {
        const text = typeof cell === 'number' ? formatNumber(cell) : cell;
        return `<td${numericCol[j] ? ' class="num"' : ''}>${escapeHtml(text)}</td>`;
      });
      return `<tr>${tds.join('')}</tr>`;
    })
    .join('\n');
  const caption = t.caption === undefined ? '' : `<caption>${escapeHtml(t.caption)}</caption>`;
  return `<div class="table-wrap"><table>${caption}\n<thead><tr>${th}</tr></thead>\n<tbody>\n${body}\n</tbody></table></div>`;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function imageHtml(image: ReportImage, name: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(image.src);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'read error';
    throw new ConfigError(`Expected a readable PNG file for ${name}.src but "${image.src}" could not be read (${code})`, { cause: err });
  }
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE) || bytes.toString('latin1', 12, 16) !== 'IHDR') {
    throw new ConfigError(`Expected a PNG file for ${name}.src but "${image.src}" is not one`);
  }
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  const alt = escapeHtml(image.caption || path.basename(image.src));
  const caption = image.caption ? `<figcaption>${escapeHtml(image.caption)}</figcaption>` : '';
  return `<figure class="image"><img src="data:image/png;base64,${bytes.toString('base64')}" width="${width}" height="${height}" alt="${alt}">${caption}</figure>`;
}

async function sectionHtml(section: Section, index: number): Promise<string> {
  const name = `sections[${index}]`;
  const parts = [`<h2>${escapeHtml(section.heading)}</h2>`];
  if (section.text !== undefined) parts.push(paragraphs(section.text));
  if (section.links?.length) {
    parts.push(`<ul class="links">${section.links.map((l) => `<li><a href="${escapeHtml(l.href)}">${escapeHtml(l.text)}</a></li>`).join('')}</ul>`);
  }
  for (const [j, spec] of (section.charts ?? []).entries()) {
    const svg = await renderSvg(spec, { idPrefix: `s${index}c${j}-`, name: `${name}.charts[${j}]` });
    parts.push(`<figure class="chart">${svg}</figure>`);
  }
  if (section.table !== undefined) parts.push(tableHtml(section.table));
  for (const [j, image] of (section.images ?? []).entries()) parts.push(await imageHtml(image, `${name}.images[${j}]`));
  return `<section id="section-${index + 1}">\n${parts.join('\n')}\n</section>`;
}

const CSS = `
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5f6368; --rule: #d0d4d9; --stripe: #f5f7f9; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 64rem; padding: 2rem 1.5rem 3rem; color: var(--ink); background: #fff;
  font: 15px/1.5 Helvetica, Arial, sans-serif; }
header { border-bottom: 2px solid var(--ink); padding-bottom: .75rem; margin-bottom: 1.25rem; }
h1 { font-size: 1.75rem; line-height: 1.2; margin: 0 0 .25rem; }
.subtitle { font-size: 1.1rem; margin: 0 0 .5rem; color: var(--muted); }
.meta { font-size: .85rem; margin: 0; color: var(--muted); }
nav ol { margin: 0 0 1.5rem; padding-left: 1.5rem; font-size: .95rem; }
nav a { color: inherit; }
section { margin: 0 0 2.25rem; }
h2 { font-size: 1.3rem; margin: 1.5rem 0 .5rem; padding-bottom: .2rem; border-bottom: 1px solid var(--rule); }
p { margin: .5rem 0; white-space: pre-line; max-width: 48rem; }
figure { margin: 1rem 0; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figure.image img { display: block; max-width: 100%; height: auto; image-rendering: auto; border: 1px solid var(--rule); }
figcaption, caption { font-size: .9rem; color: var(--muted); margin-top: .35rem; }
caption { caption-side: bottom; text-align: left; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .75rem; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); font-weight: 600; }
tbody tr:nth-child(even) { background: var(--stripe); }
tbody tr:last-child td { border-bottom: 1px solid var(--ink); }
.num { text-align: right; white-space: nowrap; }
footer { border-top: 1px solid var(--rule); margin-top: 2rem; padding-top: .5rem; font-size: .8rem; color: var(--muted); }
@page { margin: 15mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav { display: none; }
  h2 { break-after: avoid; }
  figure, table, tr { break-inside: avoid; }
  tbody tr:nth-child(even) { background: #f5f7f9; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
`;

/** Renders a report to one self-contained HTML document. */
export async function renderReport(report: Report): Promise<string> {
  const { report: r, generatedAt } = checkReport(report);
  const stamp = `${generatedAt.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  const version = escapeHtml(tabsightVersion());
  const body: string[] = [];
  for (const [i, section] of r.sections.entries()) body.push(await sectionHtml(section, i));
  const nav =
    r.sections.length > 1
      ? `<nav aria-label="Contents"><ol>\n${r.sections.map((s, i) => `<li><a href="#section-${i + 1}">${escapeHtml(s.heading)}</a></li>`).join('\n')}\n</ol></nav>`
      : '';
  const subtitle = r.subtitle ? `<p class="subtitle">${escapeHtml(r.subtitle)}</p>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="generator" content="tabsight ${version}">
<title>${escapeHtml(r.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(r.title)}</h1>
${subtitle}<p class="meta">Generated <time datetime="${generatedAt.toISOString()}">${stamp}</time> by tabsight ${version}</p>
</header>
${nav}
<main>
${body.join('\n')}
</main>
<footer>tabsight ${version} · ${stamp}</footer>
</body>
</html>
`;
}

/** Renders a report and writes it atomically: readers see the old file or the complete new one. */
export async function writeReport(file: string, report: Report): Promise<void> {
  string(file, 'file');
  const html = await renderReport(report);
  await writeFileAtomic(file, html);
}
