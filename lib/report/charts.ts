/**
 * Chart helpers for reports: each builder checks its input and returns a
 * Vega-Lite spec with the data inline; `renderSvg` turns any such spec into
 * an SVG string offline (Vega-Lite -> Vega -> SVG, no canvas, no network).
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { ConfigError } from '../errors';
import { boolean, integer, invalid, isNumber, knownKeys, plainObject, positiveInteger, string } from '../validate';

/** A Vega-Lite spec. Data must be inline (`data.values`); URLs are refused. */
export type VegaLiteSpec = TopLevelSpec;

/** One font family for every chart, so output does not depend on the machine. */
export const CHART_FONT = 'Helvetica, Arial, sans-serif';

const CONFIG = {
  font: CHART_FONT,
  background: 'white',
  padding: 8,
  view: { stroke: '#bbb' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e6e6e6', labelLimit: 220 },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 240 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start', offset: 10 },
  range: { category: { scheme: 'tableau10' } },
} as const;

let svgCount = 0;

export interface RenderSvgOptions {
  /** Prefix for the ids inside the SVG (clip paths, gradients), so that several SVGs can share one page. @default a fresh "vgN-" per call */
  idPrefix?: string;
  /** Name of the spec in error messages. @default "spec" */
  name?: string;
}

function refusal(what: string, name: string): ConfigError {
  return new ConfigError(`Chart ${name} refers to ${what}; charts take inline data only (data.values) and no links or images`);
}

/** A Vega loader that never loads anything and remembers what was asked. */
function offlineLoader(refused: string[]): vega.Loader {
  const refuse = async (uri: string): Promise<never> => {
    refused.push(uri);
    throw new ConfigError(`refusing to load ${uri}`);
  };
  return { load: refuse, sanitize: refuse, http: refuse, file: refuse };
}

/**
 * Rejects a compiled Vega spec that would load or link anything: data URLs,
 * href or url encodings, image marks. Inline data values are not searched.
 */
function checkOffline(node: unknown, name: string): void {
  if (Array.isArray(node)) {
    for (const item of node) checkOffline(item, name);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const obj = node as Record<string, unknown>;
  if (obj.type === 'image' && ('encode' in obj || 'from' in obj)) throw refusal('an image mark', name);
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'values') continue;
    if (key === 'url' || key === 'href') throw refusal(`${key} ${JSON.stringify(value).slice(0, 80)}`, name);
    checkOffline(value, name);
  }
}

/** A Vega logger that keeps errors (to throw them) and drops the rest. */
function collectingLogger(errors: string[]): vega.LoggerInterface {
  let level = 0;
  const logger = {
    level: (v?: number) => (v === undefined ? level : ((level = v), logger)),
    error: (...args: readonly unknown[]) => (errors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ')), logger),
    warn: () => logger,
    info: () => logger,
    debug: () => logger,
  };
  return logger as unknown as vega.LoggerInterface;
}

/** Renders a Vega-Lite spec to a standalone SVG string with inline styles only. */
export async function renderSvg(spec: VegaLiteSpec, options: RenderSvgOptions = {}): Promise<string> {
  const name = options.name ?? 'spec';
  plainObject(spec, name);
  const prefix = options.idPrefix ?? `vg${++svgCount}-`;
  if (!/^[A-Za-z][\w-]*$/.test(prefix)) throw invalid('identifier (letters, digits, _ or -)', 'idPrefix', prefix);
  const errors: string[] = [];
  let vgSpec: vega.Spec;
  try {
    vgSpec = vl.compile(spec, { config: CONFIG as never, logger: collectingLogger(errors) as never }).spec;
  } catch (err) {
    throw new ConfigError(`Invalid chart ${name}: ${(err as Error).message}`, { cause: err });
  }
  checkOffline(vgSpec, name);
  const refused: string[] = [];
  // Text widths are estimated from the font size, never measured with a canvas,
  // so the same spec gives the same SVG on every machine.
  // Clip and gradient ids restart per chart (they get the prefix below), so output is deterministic.
  const internals = vega as unknown as { textMetrics: { canvas(use: boolean): void }; resetSVGDefIds(): void };
  internals.textMetrics.canvas(false);
  internals.resetSVGDefIds();
  let view: vega.View | undefined;
  let svg: string;
  try {
    view = new vega.View(vega.parse(vgSpec), {
      renderer: 'none',
      loader: offlineLoader(refused),
      logger: collectingLogger(errors),
      logLevel: vega.Error,
    });
    svg = await view.toSVG();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`Could not render chart ${name}: ${(err as Error).message}`, { cause: err });
  } finally {
    view?.finalize();
  }
  if (refused.length > 0) throw refusal(refused[0], name);
  if (errors.length > 0) throw new ConfigError(`Could not render chart ${name}: ${errors[0]}`);
  if (/\shref="(?!#)|url\((?!#)/.test(svg)) throw refusal('an external resource', name);
  return scopeIds(svg, prefix);
}

/** Prefixes ids and their references, and drops the xlink namespace when unused. */
function scopeIds(svg: string, prefix: string): string {
  let out = svg
    .replace(/\sid="([^"]+)"/g, (_m, id: string) => ` id="${prefix}${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}${id})`)
    .replace(/href="#([^"]+)"/g, (_m, id: string) => `href="#${prefix}${id}"`);
  if (!/xlink:(?!xmlns)\w+=/.test(out.replace(/xmlns:xlink="[^"]*"/, ''))) {
    out = out.replace(/\s+xmlns:xlink="[^"]*"/, '');
  }
  return out;
}

// ---------------------------------------------------------------- builders

interface Size {
  /** Plot width in pixels. */
  width?: number;
  /** Plot height in pixels. */
  height?: number;
}

function size(opts: Size, name: string, width: number, height: number): { width: number; height: number } {
  const side = (v: unknown, key: string, d: number) => (v === undefined ? d : positiveInteger(v, `${name}.${key}`));
  return { width: side(opts.width, 'width', width), height: side(opts.height, 'height', height) };
}

/** Checks the options object (no unknown keys) and its title. */
function start<T>(options: T, name: string, keys: readonly string[], titleRequired = true): T {
  const o = plainObject(options, name);
  knownKeys(o, name, ['title', ...keys]);
  if (titleRequired || o.title !== undefined) string(o.title, `${name}.title`);
  return o as unknown as T;
}

const flag = (v: unknown, name: string, d: boolean) => (v === undefined ? d : boolean(v, name));

function finite(value: unknown, name: string): number {
  if (!isNumber(value)) throw invalid('finite number', name, value);
  return value;
}

function label(value: unknown, name: string): string {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return string(value, name);
}

function records(value: unknown, name: string): Record<string, unknown>[] {
  if (!Array.isArray(value) || value.length === 0) throw invalid('non-empty array', name, value);
  return value.map((d, i) => plainObject(d, `${name}[${i}]`));
}

function optionalTitle(value: unknown, name: string, fallback: string): string {
  return value === undefined ? fallback : string(value, name);
}

function meanSd(d: Record<string, unknown>, name: string) {
  const mean = finite(d.mean, `${name}.mean`);
  // A single seed gives sd = NaN (see eval's meanSd): no error bar then.
  if (d.sd === undefined || d.sd === null || Number.isNaN(d.sd)) return { mean, sd: null, lo: null, hi: null };
  const sd = finite(d.sd, `${name}.sd`);
  if (sd < 0) throw invalid('non-negative number', `${name}.sd`, sd);
  return { mean, sd, lo: mean - sd, hi: mean + sd };
}

function orderOf(values: string[], given: unknown, name: string, dataName: string, key: string): string[] {
  if (given === undefined) return [...new Set(values)];
  if (!Array.isArray(given) || given.length === 0) throw invalid('non-empty array of strings', name, given);
  const order = given.map((g, i) => label(g, `${name}[${i}]`));
  values.forEach((v, i) => {
    if (!order.includes(v)) throw invalid(`one of ${order.join(', ')}`, `${dataName}[${i}].${key}`, v);
  });
  return order;
}

export interface LineChartOptions extends Size {
  title: string;
  /** Field of each record on the x axis (numeric, e.g. "epoch"). */
  x: string;
  /** Field on the y axis (numeric, e.g. "loss"). */
  y: string;
  /** Field naming the line a record belongs to (e.g. "run"); one line when absent. */
  series?: string;
  data: Record<string, unknown>[];
  /** @default the x field name */
  xTitle?: string;
  /** @default the y field name */
  yTitle?: string;
  /** Log-scaled y axis; every y must then be positive. @default false */
  logY?: boolean;
}

/** Training curves: one line per series, e.g. loss per epoch per run. */
export function lineChart(options: LineChartOptions): VegaLiteSpec {
  const o = start(options, 'lineChart', ['x', 'y', 'series', 'data', 'xTitle', 'yTitle', 'logY', 'width', 'height']);
  const x = string(o.x, 'lineChart.x');
  const y = string(o.y, 'lineChart.y');
  const series = o.series === undefined ? undefined : string(o.series, 'lineChart.series');
  const logY = flag(o.logY, 'lineChart.logY', false);
  const rows = records(o.data, 'lineChart.data').map((d, i) => {
    const yv = finite(d[y], `lineChart.data[${i}].${y}`);
    if (logY && yv <= 0) throw invalid('positive number (logY is set)', `lineChart.data[${i}].${y}`, yv);
    const s = series === undefined ? y : label(d[series], `lineChart.data[${i}].${series}`);
    return { x: finite(d[x], `lineChart.data[${i}].${x}`), y: yv, s };
  });
  const domain = [...new Set(rows.map((r) => r.s))];
  return {
    title: o.title,
    ...size(o, 'lineChart', 420, 240),
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 1.75 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: optionalTitle(o.xTitle, 'lineChart.xTitle', x), scale: { zero: false, nice: false } },
      y: { field: 'y', type: 'quantitative', title: optionalTitle(o.yTitle, 'lineChart.yTitle', y), scale: logY ? { type: 'log' } : { zero: false } },
      color: { field: 's', type: 'nominal', title: series ?? null, scale: { domain }, legend: series === undefined ? null : {} },
      order: { field: 'x', type: 'quantitative' },
    },
  } as VegaLiteSpec;
}

export interface MeanSd {
  mean: number;
  /** Standard deviation over seeds; no error bar when absent, null or NaN (a single seed). */
  sd?: number;
}

export interface BarDatum extends MeanSd {
  /** Position on the x axis, e.g. the downstream task or the encoder. */
  category: string;
  /** Bar within a category, e.g. the method; colour. */
  group?: string;
  /** Panel, e.g. the metric; one panel per value, each with its own y scale. */
  panel?: string;
}

export interface BarChartOptions extends Size {
  title: string;
  data: BarDatum[];
  /** Order of the categories. @default order of first appearance */
  categories?: string[];
  /** Order of the groups. @default order of first appearance */
  groups?: string[];
  /** @default "" (the category names say enough) */
  xTitle?: string;
  /** @default "mean ± sd" */
  yTitle?: string;
  /** Start the y axis at zero. @default true */
  zero?: boolean;
}

/** Results as bars of the mean with ± sd error bars, grouped, optionally one panel per metric. */
export function barChartWithErrors(options: BarChartOptions): VegaLiteSpec {
  const name = 'barChartWithErrors';
  const o = start(options, name, ['data', 'categories', 'groups', 'xTitle', 'yTitle', 'zero', 'width', 'height']);
  const zero = flag(o.zero, `${name}.zero`, true);
  const rows = records(o.data, `${name}.data`).map((d, i) => {
    const at = `${name}.data[${i}]`;
    const opt = (key: string) => (d[key] === undefined ? '' : label(d[key], `${at}.${key}`));
    return { c: label(d.category, `${at}.category`), g: opt('group'), p: opt('panel'), ...meanSd(d, at) };
  });
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    const key = JSON.stringify([r.p, r.c, r.g]);
    if (seen.has(key)) throw new ConfigError(`Duplicate bar at ${name}.data[${i}]: panel "${r.p}", category "${r.c}", group "${r.g}"`);
    seen.add(key);
  });
  const categories = orderOf(rows.map((r) => r.c), o.categories, `${name}.categories`, `${name}.data`, 'category');
  const groups = orderOf(rows.map((r) => r.g), o.groups, `${name}.groups`, `${name}.data`, 'group');
  const grouped = groups.length > 1 || groups[0] !== '';
  const panels = [...new Set(rows.map((r) => r.p))];
  const faceted = panels.length > 1 || panels[0] !== '';
  const { width, height } = size(o, name, 0, 220);
  const xTitle = o.xTitle === undefined ? null : string(o.xTitle, `${name}.xTitle`);
  const x = { field: 'c', type: 'nominal', sort: categories, title: xTitle, axis: { labelAngle: categories.some((c) => c.length > 8) ? -30 : 0 } };
  const xOffset = grouped ? { xOffset: { field: 'g', type: 'nominal', sort: groups } } : {};
  const yTitle = optionalTitle(o.yTitle, `${name}.yTitle`, 'mean ± sd');
  const layer = [
    {
      mark: { type: 'bar' },
      encoding: {
        x,
        ...xOffset,
        y: { field: 'mean', type: 'quantitative', title: yTitle, scale: { zero } },
        color: grouped ? { field: 'g', type: 'nominal', title: null, scale: { domain: groups } } : { value: '#4c78a8' },
      },
    },
    {
      transform: [{ filter: 'datum.sd != null' }],
      mark: { type: 'rule', color: '#222', strokeWidth: 1.5 },
      encoding: { x, ...xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    },
  ];
  // With groups, the step is per bar (Vega-Lite's offset step); without, per category.
  const step = grouped ? 22 : 40;
  const inner = { width: width || { step }, height, layer };
  const top = { title: o.title, data: { values: rows } };
  const facet = { column: { field: 'p', type: 'nominal', title: null, sort: panels } };
  const resolve = { scale: { x: 'independent', y: 'independent' } };
  return (faceted ? { ...top, facet, spec: inner, resolve } : { ...top, ...inner }) as VegaLiteSpec;
}

export interface ScatterLineDatum extends MeanSd {
  /** e.g. the number of selected features k. */
  x: number;
  /** e.g. the selection method; one line per series. */
  series: string;
}

export interface ScatterLineOptions extends Size {
  title: string;
  data: ScatterLineDatum[];
  /** @default "x" */
  xTitle?: string;
  /** @default "mean ± sd" */
  yTitle?: string;
  /** Log-scaled x axis (for k = 1, 2, 4, ...); every x must then be positive. @default false */
  logX?: boolean;
}

/** Score against k per method: points joined by lines, with ± sd error bars. */
export function scatterLine(options: ScatterLineOptions): VegaLiteSpec {
  const o = start(options, 'scatterLine', ['data', 'xTitle', 'yTitle', 'logX', 'width', 'height']);
  const logX = flag(o.logX, 'scatterLine.logX', false);
  const rows = records(o.data, 'scatterLine.data').map((d, i) => {
    const at = `scatterLine.data[${i}]`;
    const x = finite(d.x, `${at}.x`);
    if (logX && x <= 0) throw invalid('positive number (logX is set)', `${at}.x`, x);
    return { x, s: label(d.series, `${at}.series`), ...meanSd(d, at) };
  });
  const domain = [...new Set(rows.map((r) => r.s))];
  const ticks = [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b);
  const x = {
    field: 'x',
    type: 'quantitative',
    title: optionalTitle(o.xTitle, 'scatterLine.xTitle', 'x'),
    axis: ticks.length <= 12 ? { values: ticks, grid: false } : {},
    scale: logX ? { type: 'log', nice: false, padding: 12 } : { zero: false, padding: 12 },
  };
  const color = { field: 's', type: 'nominal', title: null, scale: { domain } };
  const y = { field: 'mean', type: 'quantitative', title: optionalTitle(o.yTitle, 'scatterLine.yTitle', 'mean ± sd'), scale: { zero: false } };
  return {
    title: o.title,
    ...size(o, 'scatterLine', 420, 240),
    data: { values: rows },
    layer: [
      {
        mark: { type: 'line', point: { filled: true, size: 36 }, strokeWidth: 1.75 },
        encoding: { x, y, color, order: { field: 'x', type: 'quantitative' } },
      },
      {
        transform: [{ filter: 'datum.sd != null' }],
        mark: { type: 'rule', strokeWidth: 1.25 },
        encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color },
      },
    ],
  } as VegaLiteSpec;
}

export interface HeatmapOptions {
  title?: string;
  /** Row labels, top to bottom. */
  rows: string[];
  /** Column labels, left to right. */
  cols: string[];
  /** values[r][c]; null or NaN leaves the cell blank. */
  values: (number | null)[][];
  /** Colour range; a correlation matrix wants [-1, 1]. @default [min, max] of the values */
  domain?: [number, number];
  /** Diverging colours centred on the middle of the domain. @default true when domain[0] < 0 < domain[1] */
  diverging?: boolean;
  /** Write each value in its cell. @default true when there are at most 400 cells */
  showValues?: boolean;
  /** Digits after the decimal point for written values. @default 2 */
  digits?: number;
  /** Legend title. @default "" */
  colorTitle?: string;
  /** Side of a cell in pixels. @default 32 */
  cell?: number;
}

/** A matrix of values, e.g. subsets × tasks or a correlation matrix. */
export function heatmap(options: HeatmapOptions): VegaLiteSpec {
  const o = start(options, 'heatmap', ['rows', 'cols', 'values', 'domain', 'diverging', 'showValues', 'digits', 'colorTitle', 'cell'], false);
  const labels = (v: unknown, name: string) => {
    if (!Array.isArray(v) || v.length === 0) throw invalid('non-empty array of strings', name, v);
    const out = v.map((s, i) => label(s, `${name}[${i}]`));
    if (new Set(out).size !== out.length) throw new ConfigError(`Expected distinct labels in ${name}`);
    return out;
  };
  const rowLabels = labels(o.rows, 'heatmap.rows');
  const colLabels = labels(o.cols, 'heatmap.cols');
  if (!Array.isArray(o.values) || o.values.length !== rowLabels.length) {
    throw invalid(`array of ${rowLabels.length} rows`, 'heatmap.values', o.values);
  }
  const cells: { r: string; c: string; v: number }[] = [];
  o.values.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== colLabels.length) {
      throw invalid(`array of ${colLabels.length} numbers`, `heatmap.values[${i}]`, row);
    }
    row.forEach((v, j) => {
      if (v === null || (typeof v === 'number' && Number.isNaN(v))) return;
      cells.push({ r: rowLabels[i], c: colLabels[j], v: finite(v, `heatmap.values[${i}][${j}]`) });
    });
  });
  if (cells.length === 0) throw new ConfigError('Expected at least one finite number in heatmap.values');
  let lo = cells.reduce((m, c) => Math.min(m, c.v), Infinity);
  let hi = cells.reduce((m, c) => Math.max(m, c.v), -Infinity);
  if (o.domain !== undefined) {
    if (!Array.isArray(o.domain) || o.domain.length !== 2 || !isNumber(o.domain[0]) || !isNumber(o.domain[1]) || o.domain[0] >= o.domain[1]) {
      throw invalid('[min, max] with min < max', 'heatmap.domain', o.domain);
    }
    [lo, hi] = o.domain;
  }
  if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const diverging = flag(o.diverging, 'heatmap.diverging', lo < 0 && hi > 0);
  const showValues = flag(o.showValues, 'heatmap.showValues', rowLabels.length * colLabels.length <= 400);
  const digits = o.digits === undefined ? 2 : integer(o.digits, 'heatmap.digits', 0, 20);
  const cell = o.cell === undefined ? 32 : positiveInteger(o.cell, 'heatmap.cell');
  const values = cells.map((c) => {
    const t = Math.min(1, Math.max(0, (c.v - lo) / (hi - lo)));
    const dark = diverging ? Math.abs(2 * t - 1) > 0.6 : t > 0.6;
    return { ...c, txt: c.v.toFixed(digits).replace('-', '−'), ink: dark ? 'white' : 'black' };
  });
  const x = { field: 'c', type: 'ordinal', sort: colLabels, title: null, axis: { orient: 'top', labelAngle: -40, labelAlign: 'left' } };
  const y = { field: 'r', type: 'ordinal', sort: rowLabels, title: null };
  const scale = diverging ? { scheme: 'redblue', domain: [lo, hi], domainMid: (lo + hi) / 2 } : { scheme: 'blues', domain: [lo, hi] };
  const colorTitle = o.colorTitle === undefined ? null : string(o.colorTitle, 'heatmap.colorTitle');
  const layer: unknown[] = [
    { mark: { type: 'rect', stroke: 'white', strokeWidth: 1 }, encoding: { x, y, color: { field: 'v', type: 'quantitative', title: colorTitle, scale } } },
  ];
  if (showValues) {
    layer.push({
      mark: { type: 'text', fontSize: Math.min(11, Math.max(7, Math.floor(cell / 3))) },
      encoding: { x, y, text: { field: 'txt' }, color: { condition: { test: "datum.ink === 'white'", value: 'white' }, value: 'black' } },
    });
  }
  return {
    ...(o.title === undefined ? {} : { title: o.title }),
    width: { step: cell },
    height: { step: cell },
    data: { values },
    layer,
    config: { axis: { grid: false, domain: false, ticks: false } },
  } as VegaLiteSpec;
}
