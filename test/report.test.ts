import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { ConfigError } from '../lib/errors';
import {
  barChartWithErrors,
  formatMeanSd,
  formatNumber,
  heatmap,
  lineChart,
  renderReport,
  renderSvg,
  Report,
  scatterLine,
  writeReport,
} from '../lib/report';

const GENERATED = new Date('2026-01-02T03:04:05Z');
const VERSION = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
const RUNS = ['seed 0', 'seed 1', 'seed 2'];
// Error bars with sd proportional to the mean, so every bar's relative extent is known.
const BARS = [
  { category: 'T1', group: 'A', mean: 2, sd: 0.5 },
  { category: 'T1', group: 'B', mean: 4, sd: 1 },
  { category: 'T2', group: 'A', mean: 6, sd: 1.5 },
  { category: 'T2', group: 'B', mean: 8, sd: 2 },
];

function curves() {
  return RUNS.flatMap((run, s) =>
    Array.from({ length: 20 }, (_, e) => ({ epoch: e + 1, loss: 4 * Math.exp(-e / (5 + s)) + 0.1, run })),
  );
}

async function png(dir: string): Promise<string> {
  const file = path.join(dir, 'sample.png');
  const pixels = Buffer.alloc(16 * 8 * 3);
  for (let i = 0; i < 16 * 8; i++) pixels[i * 3] = (i * 16) & 0xff;
  await sharp(pixels, { raw: { width: 16, height: 8, channels: 3 } }).png().toFile(file);
  return file;
}

function report(image: string): Report {
  return {
    title: 'Cardiac MMCL <script>alert(1)</script>',
    subtitle: 'ResNet-18, 3 seeds',
    generatedAt: GENERATED,
    sections: [
      {
        heading: 'Pretraining',
        text: 'Loss per epoch.\n\nSecond paragraph with <script>alert("x")</script> & friends.',
        charts: [lineChart({ title: 'Contrastive loss', x: 'epoch', y: 'loss', series: 'run', data: curves(), logY: true })],
      },
      {
        heading: 'Downstream',
        charts: [
          barChartWithErrors({ title: 'AUC (mean ± sd)', data: BARS }),
          heatmap({ title: 'Correlation', rows: ['age', 'bmi'], cols: ['age', 'bmi'], values: [[1, -0.25], [-0.25, 1]], domain: [-1, 1] }),
        ],
        table: {
          columns: ['encoder', 'AUC', 'n', 'lr', 'note'],
          rows: [
            ['ImageNet', formatMeanSd(0.812, 0.013), 42, 0.0003, '<script>bad()</script>'],
            ['MMCL', '0.845 ± 0.010', 1234, 3.5, 'ok'],
          ],
          caption: 'Linear probe, 3 seeds',
        },
        images: [{ src: image, caption: 'A sample <image>' }],
      },
    ],
  };
}

const svgs = (html: string) => html.match(/<svg[^]*?<\/svg>/g) ?? [];
/** The children of every `<g class="mark-KIND role-mark ...">` group. */
function markGroups(svg: string, kind: string): string[] {
  const re = new RegExp(`<g class="mark-${kind} role-mark[^"]*"[^>]*>([^]*?)</g>`, 'g');
  return [...svg.matchAll(re)].map((m) => m[1]);
}

t.test('renderReport', async (t) => {
  const dir = t.testdir();
  const image = await png(dir);
  const html = await renderReport(report(image));

  t.test('renderReport writes one inline <svg> per chart', async (t) => {
    t.equal(svgs(html).length, 3);
    t.equal((html.match(/<svg/g) ?? []).length, 3);
  });

  t.test('renderReport refers to no URL except the SVG namespace', async (t) => {
    const urls = html.match(/https?:\/\/[^\s"'<>)]*/g) ?? [];
    t.ok(urls.length > 0);
    t.same([...new Set(urls)], ['http://www.w3.org/2000/svg']);
    t.notMatch(html, /<link|<script|src="(?!data:image\/png;base64,)/i);
  });

  t.test('renderReport escapes text, headings and table cells', async (t) => {
    t.notMatch(html, /<script/i);
    t.match(html, '<title>Cardiac MMCL &#60;script&#62;alert(1)&#60;/script&#62;</title>');
    t.match(html, 'with &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; friends.');
    t.match(html, '<td>&#60;script&#62;bad()&#60;/script&#62;</td>');
    t.match(html, 'A sample &#60;image&#62;');
    t.equal((html.match(/<p>/g) ?? []).length, 2, 'blank line splits paragraphs');
  });

  t.test('renderReport keeps the numbers of the table, right-aligned', async (t) => {
    for (const cell of ['0.812 ± 0.013', '0.845 ± 0.010', '42', '1234', '3e-4', '3.5']) {
      t.match(html, `<td class="num">${cell}</td>`.replace('3e-4', '3.00e-4'));
    }
    t.match(html, '<th scope="col" class="num">AUC</th>');
    t.match(html, '<caption>Linear probe, 3 seeds</caption>');
  });

  t.test('renderReport embeds the PNG as a data URI with its size', async (t) => {
    const m = /<img src="data:image\/png;base64,([^"]+)" width="(\d+)" height="(\d+)"/.exec(html);
    t.ok(m);
    t.same(Buffer.from(m![1], 'base64'), fs.readFileSync(image));
    t.same([m![2], m![3]], ['16', '8']);
  });

  t.test('renderReport states the tabsight version and generation time', async (t) => {
    t.match(html, `by tabsight ${VERSION}`);
    t.match(html, '<time datetime="2026-01-02T03:04:05.000Z">2026-01-02 03:04:05 UTC</time>');
  });

  t.test('renderReport gives ids that are unique across charts', async (t) => {
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    t.equal(new Set(ids).size, ids.length);
    for (const ref of html.matchAll(/url\(#([^)]+)\)/g)) t.ok(ids.includes(ref[1]), `${ref[1]} is defined`);
  });

  t.test('lineChart draws one path per series, each in its own colour', async (t) => {
    const groups = markGroups(svgs(html)[0], 'line');
    const paths = groups.flatMap((g) => g.match(/<path[^>]*>/g) ?? []);
    t.equal(paths.length, RUNS.length);
    const strokes = paths.map((p) => /stroke="([^"]+)"/.exec(p)![1]);
    t.equal(new Set(strokes).size, RUNS.length);
    for (const p of paths) t.equal((/ d="([^"]+)"/.exec(p)![1].match(/L/g) ?? []).length, 19, '20 points per line');
    for (const run of RUNS) t.match(svgs(html)[0], `>${run}</text>`, 'legend names the run');
  });

  t.test('barChartWithErrors draws error bars from mean - sd to mean + sd', async (t) => {
    const svg = svgs(html)[1];
    const bars = (markGroups(svg, 'rect')[0].match(/ d="M[^"]+"/g) ?? []).map((d) => {
      const [x, y, w, h] = /M([-\d.e]+),([-\d.e]+)h([-\d.e]+)v([-\d.e]+)/.exec(d)!.slice(1).map(Number);
      return { cx: x + w / 2, top: y, bottom: y + h };
    });
    const rules = (markGroups(svg, 'rule')[0].match(/<line[^>]*>/g) ?? []).map((l) => {
      const [x, y] = /translate\(([-\d.e]+),([-\d.e]+)\)/.exec(l)!.slice(1).map(Number);
      const dy = Number(/y2="([-\d.e]+)"/.exec(l)![1]);
      return { x, y1: Math.max(y, y + dy), y2: Math.min(y, y + dy) };
    });
    t.equal(bars.length, BARS.length);
    t.equal(rules.length, BARS.length);
    // The y scale is linear with zero at the common bar bottom: px(v) = bottom - v * k.
    const bottom = bars[0].bottom;
    const k = (bottom - bars[0].top) / BARS[0].mean;
    const px = (v: number) => bottom - v * k;
    BARS.forEach((b, i) => {
      t.ok(Math.abs(bars[i].bottom - bottom) < 1e-6, `bar ${i} starts at zero`);
      t.ok(Math.abs(bars[i].top - px(b.mean)) < 0.5, `bar ${i} reaches its mean`);
      const rule = rules.find((r) => Math.abs(r.x - bars[i].cx) < 0.5);
      t.ok(rule, `bar ${i} has an error bar at its centre`);
      t.ok(Math.abs(rule!.y1 - px(b.mean - b.sd)) < 0.5, `bar ${i} error bar starts at mean - sd`);
      t.ok(Math.abs(rule!.y2 - px(b.mean + b.sd)) < 0.5, `bar ${i} error bar ends at mean + sd`);
    });
    const lengths = rules.map((r) => r.y1 - r.y2);
    t.ok(lengths.every((l, i) => i === 0 || l > lengths[i - 1]), 'longer sd, longer bar');
  });

  t.test('heatmap draws one cell per value and writes the values', async (t) => {
    const svg = svgs(html)[2];
    t.equal((markGroups(svg, 'rect')[0].match(/<path/g) ?? []).length, 4);
    t.equal((svg.match(/>−0\.25</g) ?? []).length, 2);
  });
});

t.test('writeReport writes the complete file atomically and leaves no temp file', async (t) => {
  const dir = t.testdir();
  const image = await png(dir);
  const file = path.join(dir, 'report.html');
  fs.writeFileSync(file, 'old');
  await writeReport(file, report(image));
  t.same(fs.readdirSync(dir).sort(), ['report.html', 'sample.png']);
  const written = fs.readFileSync(file, 'utf8');
  t.equal(written, await renderReport(report(image)));
  t.match(written, /^<!DOCTYPE html>/);
  t.match(written, /<\/html>\n$/);
});

t.test('renderReport writes relative links, escaped', async (t) => {
  const html = await renderReport({ title: 'r', sections: [{ heading: 'h', text: 'see', links: [{ href: 'compare/report.html?a=1&b="2"', text: 'The <compare> report' }] }] });
  t.match(html, '<ul class="links"><li><a href="compare/report.html?a=1&#38;b=&#34;2&#34;">The &#60;compare&#62; report</a></li></ul>');
});

t.test('renderReport rejects bad input with ConfigError naming the field', async (t) => {
  const dir = t.testdir();
  const image = await png(dir);
  const table = { columns: ['a', 'b'], rows: [[1, 2]] };
  const cases: [string, unknown, RegExp][] = [
    ['missing title', { sections: [] }, /for title/],
    ['sections not an array', { title: 'r', sections: {} }, /for sections but/],
    ['section without heading', { title: 'r', sections: [{}] }, /sections\[0\]\.heading/],
    ['rows not an array', { title: 'r', sections: [{ heading: 'h', table: { ...table, rows: 'x' } }] }, /sections\[0\]\.table\.rows/],
    ['ragged rows', { title: 'r', sections: [{ heading: 'h', table: { ...table, rows: [[1, 2], [3]] } }] }, /2 cells .* sections\[0\]\.table\.rows\[1\] but received 1/],
    ['object cell', { title: 'r', sections: [{ heading: 'h', table: { ...table, rows: [[1, {}]] } }] }, /sections\[0\]\.table\.rows\[0\]\[1\]/],
    ['raw html', { title: 'r', sections: [{ heading: 'h', html: '<b>x</b>' }] }, /sections\[0\]\.html/],
    ['missing image', { title: 'r', sections: [{ heading: 'h', images: [{ src: path.join(dir, 'no.png'), caption: '' }] }] }, /sections\[0\]\.images\[0\]\.src .*ENOENT/],
    ['not a PNG', { title: 'r', sections: [{ heading: 'h', images: [{ src: __filename, caption: '' }] }] }, /PNG file for sections\[0\]\.images\[0\]\.src/],
    ['bad date', { title: 'r', generatedAt: 'yesterday', sections: [] }, /generatedAt/],
    ['absolute link', { title: 'r', sections: [{ heading: 'h', links: [{ href: 'https://example.com', text: 'x' }] }] }, /relative path .* sections\[0\]\.links\[0\]\.href/],
    ['javascript link', { title: 'r', sections: [{ heading: 'h', links: [{ href: 'javascript:alert(1)', text: 'x' }] }] }, /sections\[0\]\.links\[0\]\.href/],
    ['rooted link', { title: 'r', sections: [{ heading: 'h', links: [{ href: '/etc/passwd', text: 'x' }] }] }, /sections\[0\]\.links\[0\]\.href/],
    ['chart with a data URL', { title: 'r', sections: [{ heading: 'h', charts: [{ data: { url: 'https://example.com/d.csv' }, mark: 'point' }] }] }, /sections\[0\]\.charts\[0\] refers to url/],
  ];
  for (const [what, input, message] of cases) {
    await t.rejects(renderReport(input as Report), { constructor: ConfigError, code: 'ERR_CONFIG', message }, what);
  }
  t.ok(image);
});

t.test('chart builders reject bad input with ConfigError naming the field', async (t) => {
  const cases: [string, () => unknown, RegExp][] = [
    ['lineChart without title', () => lineChart({ x: 'e', y: 'l', data: [{ e: 1, l: 1 }] } as never), /lineChart\.title/],
    ['lineChart non-numeric y', () => lineChart({ title: 't', x: 'e', y: 'l', data: [{ e: 1, l: 1 }, { e: 2, l: 'x' }] }), /lineChart\.data\[1\]\.l/],
    ['lineChart log of zero', () => lineChart({ title: 't', x: 'e', y: 'l', logY: true, data: [{ e: 1, l: 0 }] }), /positive .* lineChart\.data\[0\]\.l/],
    ['bar with negative sd', () => barChartWithErrors({ title: 't', data: [{ category: 'a', mean: 1, sd: -1 }] }), /barChartWithErrors\.data\[0\]\.sd/],
    ['bar duplicate', () => barChartWithErrors({ title: 't', data: [{ category: 'a', mean: 1 }, { category: 'a', mean: 2 }] }), /Duplicate bar at barChartWithErrors\.data\[1\]/],
    ['bar unknown category', () => barChartWithErrors({ title: 't', categories: ['a'], data: [{ category: 'b', mean: 1 }] }), /barChartWithErrors\.data\[0\]\.category/],
    ['scatterLine missing series', () => scatterLine({ title: 't', data: [{ x: 1, mean: 1 } as never] }), /scatterLine\.data\[0\]\.series/],
    ['lineChart option typo', () => lineChart({ title: 't', x: 'e', y: 'l', data: [{ e: 1, l: 1 }], logy: true } as never), /Unknown option lineChart\.logy/],
    ['heatmap ragged', () => heatmap({ rows: ['a', 'b'], cols: ['x'], values: [[1], [1, 2]] }), /heatmap\.values\[1\]/],
  ];
  for (const [what, fn, message] of cases) t.throws(fn, { constructor: ConfigError, message }, what);
});

t.test('renderSvg renders offline and refuses links and images', async (t) => {
  const spec = scatterLine({ title: 'AUC vs k', data: [1, 2, 4].flatMap((x) => [{ x, series: 'mRMR', mean: 0.6 + x / 100, sd: 0.01 }, { x, series: 'MI', mean: 0.6, sd: 0.02 }]), logX: true });
  const svg = await renderSvg(spec, { idPrefix: 'sl-' });
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.equal(markGroups(svg, 'rule')[0].match(/<line/g)?.length, 6, 'one error bar per point');
  t.equal(await renderSvg(spec, { idPrefix: 'sl-' }), svg, 'deterministic');
  const href = { data: { values: [{ a: 1 }] }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' }, href: { value: 'https://example.com' } } };
  await t.rejects(renderSvg(href as never), { code: 'ERR_CONFIG', message: /href/ });
  const image = { data: { values: [{ a: 1, u: 'x.png' }] }, mark: 'image', encoding: { x: { field: 'a', type: 'quantitative' }, url: { field: 'u' } } };
  await t.rejects(renderSvg(image as never), { code: 'ERR_CONFIG', message: /image/ });
});

t.test('formatNumber keeps integers and four significant digits', async (t) => {
  t.same([42, 0.78123, 0.5, 3.5, 1234.5678, 0.0003, 1234567.5, 2.5e9, NaN, -Infinity].map(formatNumber), ['42', '0.7812', '0.5', '3.5', '1235', '3.00e-4', '1.23e+6', '2.50e+9', 'NaN', '−∞']);
  t.equal(formatMeanSd(0.8, 0.0125, 2), '0.80 ± 0.01');
  t.equal(formatMeanSd(0.8, NaN), '0.800', 'one seed: no sd');
});
