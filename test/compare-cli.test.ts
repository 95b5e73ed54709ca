// tabsight compare end to end: a tiny synthetic cardiac cohort, two 1-epoch
// multimodal runs (all features, and 5 of them), then the compare command:
// its files, the documented keys of metrics.json, numbers that must hold
// whatever the runs learned, the demo's comparison step, and bad input.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readNpy } from '../lib/data/npy';
import { loadCohort } from '../lib/data/cohort';
import { compareDemoRuns, runDemo } from '../lib/cli/demo';

const exec = promisify(execFile);
const repo = path.join(__dirname, '..');
const bin = path.join(repo, 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-compare-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const tabsight = (...args: string[]) => exec(process.execPath, [bin, ...args], { maxBuffer: 1 << 26 });
const failure = async (args: string[]) => {
  try {
    await tabsight(...args);
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`expected tabsight ${args.join(' ')} to fail`);
};

const cohort = path.join(root, 'cardiac');
const runA = path.join(root, 'all');
const runB = path.join(root, 'five');
const size = 32;
const subset = ['age', 'sex', 'lvef', 'lvedv', 'ldl'];
const METHODS = ['ig', 'gradcam', 'guided-backprop', 'guided-gradcam'];

t.before(async () => {
  await tabsight('synth', 'cardiac', '--out', cohort, '--n', '200', '--size', String(size), '--seed', '11');
  const config = path.join(root, 'exp.yaml');
  fs.writeFileSync(config, 'pretrain:\n  epochs: 1\n  batchSize: 32\n  lr: 0.001\n  model: { arch: resnet18, tabularHidden: 16, tabularLayers: 1, projectionHidden: 16, projectionDim: 8 }\n');
  await tabsight('pretrain', '--cohort', cohort, '--out', runA, '--config', config);
  await tabsight('pretrain', '--cohort', cohort, '--out', runB, '--config', config, '--features', subset.join(','));
});

t.test('compare two runs: report, metrics.json with the documented keys, NPY and grids', async (t) => {
  const out = path.join(root, 'cmp');
  const { stdout } = await tabsight('compare', '--cohort', cohort, '--runs', runA, runB, '--out', out, '--n', '6', '--steps', '4',
    '--perturb-steps', '8', '--sanity-images', '2', '--max-rows', '30', '--json');
  const r = JSON.parse(stdout);
  t.same(r.runs, ['all', 'five']);
  t.equal(r.report, path.join(out, 'report.html'));
  t.ok(Array.isArray(r.summary) && r.summary.length > 3, 'a summary');
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  for (const h of ['Why one run may be better', 'Representation similarity (CKA)', 'Attribution agreement between runs', 'Faithfulness: deletion and insertion',
    'Localisation on known lesions', 'Sanity check: cascading randomisation', 'Tabular feature importance', 'Shared latent space', 'Decodability of tabular features', 'Attribution maps']) {
    t.ok(html.includes(h), `report section "${h}"`);
  }
  const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  t.same(Object.keys(m).sort(), ['agreement', 'cka', 'cohort', 'decodability', 'faithfulness', 'format', 'latent', 'localisation', 'methods', 'runs', 'sanity', 'settings', 'split', 'subjects', 'summary', 'tabular', 'target', 'version'].sort());
  t.equal(m.format, 'tabsight-compare');
  t.same(m.methods, METHODS, 'all four methods by default');
  const co = await loadCohort(cohort, { scanImages: false });
  t.same(m.subjects, co.splits.test.slice(0, 6).map((row) => co.ids[row]), 'the first 6 test subjects');
  t.equal(m.settings.analysisRows, Math.min(30, co.splits.test.length));
  // CKA of a pair, in [0, 1].
  t.equal(m.cka.pairs.length, 1);
  for (const k of ['linear', 'rbf']) t.ok(m.cka.pairs[0][k] >= 0 && m.cka.pairs[0][k] <= 1 + 1e-9, `${k} CKA ${m.cka.pairs[0][k]}`);
  for (const meth of METHODS) {
    const a = m.agreement[meth][0];
    t.equal(a.perImage.length, 6);
    t.ok(a.median >= -1 && a.median <= 1, `${meth}: median Spearman ${a.median}`);
    for (const run of ['all', 'five']) {
      const f = m.faithfulness[run][meth];
      t.same(Object.keys(f).sort(), ['curve', 'deletion', 'excluded', 'insertion', 'perImage']);
      t.equal(f.curve.x.length, 9, '8 steps: 9 points');
      t.equal(f.curve.x[8], 1);
      const npy = await readNpy(path.join(out, 'attributions', run, `${meth}.npy`));
      t.same(npy.shape, [6, meth === 'gradcam' ? 1 : 3, size, size], `${run}/${meth}.npy shape`);
    }
  }
  t.ok(m.faithfulness.all.random, 'a random-order baseline');
  t.equal(m.localisation.source, 'cardiac-scar');
  t.same(m.sanity.all.stages, ['head', 'layer4', 'layer3', 'layer2', 'layer1', 'stem']);
  t.equal(m.sanity.all.methods.ig.length, 6);
  t.equal(m.sanity.all.methods.ig[0].perImage.abs.length, 2);
  // Tabular IG: the union of the features; the five-feature run is blank elsewhere.
  t.equal(m.tabular.features.length, co.tabular.columns.length);
  const five = m.tabular.runs.five as (number | null)[];
  t.same(m.tabular.features.filter((_: string, j: number) => five[j] !== null).sort(), [...subset].sort());
  for (const run of ['all', 'five']) {
    const l = m.latent[run];
    t.ok(l.retrieval.imageToTabular.top1 <= l.retrieval.imageToTabular.top5, `${run}: top-1 ≤ top-5`);
    t.ok(l.alignment >= 0 && l.alignment <= 4, `${run}: alignment in [0, 4]`);
    t.ok(l.uniformity.image <= 0 && l.uniformity.image >= -8, `${run}: uniformity in [−8, 0]`);
  }
  t.equal(m.decodability.features.length, co.tabular.columns.length, 'every cohort feature is decoded');
  t.equal(m.decodability.values.all.length, co.tabular.columns.length);
  t.ok(m.decodability.features.some((f: { metric: string }) => f.metric === 'auc') && m.decodability.features.some((f: { metric: string }) => f.metric === 'r2'));
  for (const run of ['all', 'five']) {
    const png = fs.readFileSync(path.join(out, 'grids', `${run}.png`));
    t.equal(png.subarray(1, 4).toString('latin1'), 'PNG', `grids/${run}.png`);
  }
});

t.test('compare --target dim:0 --methods gradcam,guided-backprop: the encoder file is randomised from layer4', async (t) => {
  const out = path.join(root, 'dim');
  await tabsight('compare', '--cohort', cohort, '--runs', runA, runB, '--out', out, '--n', '4', '--methods', 'gradcam,guided-backprop', '--target', 'dim:0',
    '--perturb-steps', '4', '--sanity-images', '2', '--max-rows', '20');
  const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  t.same(m.methods, ['gradcam', 'guided-backprop']);
  t.same(m.sanity.five.stages, ['layer4', 'layer3', 'layer2', 'layer1', 'stem'], 'no head for a feature target');
  t.notOk(fs.existsSync(path.join(out, 'attributions', 'all', 'ig.npy')));
});

t.test('bad input exits non-zero with ERR_CONFIG naming the culprit', async (t) => {
  const args = (...runs: string[]) => ['compare', '--cohort', cohort, '--runs', ...runs, '--out', path.join(root, 'bad')];
  t.match(await failure(args(runA, path.join(root, 'nope'))), /ERR_CONFIG: Run .*nope does not exist/);
  t.match(await failure(args(runA)), /ERR_CONFIG: Expected at least two runs/);
  t.match(await failure([...args(runA, runB), '--methods', 'ig,lime']), /ERR_CONFIG: Unknown compare method "lime"/);
  t.match(await failure([...args(runA, runB), '--target', 'pixels']), /ERR_CONFIG: Unknown explain target "pixels"/);
  // A run trained on another image shape, and an image-only run with the similarity target.
  const other = path.join(root, 'other');
  fs.cpSync(runB, other, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(other, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(other, 'config.json'), JSON.stringify({ ...config, data: { ...config.data, height: 64, width: 64 } }));
  t.match(await failure(args(runA, other)), /ERR_CONFIG: Run .*other was trained on 3×64×64 images but cohort .* has 3×32×32/);
  const simclr = path.join(root, 'simclr');
  fs.cpSync(runB, simclr, { recursive: true });
  fs.writeFileSync(path.join(simclr, 'config.json'), JSON.stringify({ ...config, mode: 'simclr' }));
  t.match(await failure(args(runA, simclr)), /ERR_CONFIG: Target similarity needs multimodal runs, but .*simclr was trained in simclr mode/);
  t.notOk(fs.existsSync(path.join(root, 'bad', 'metrics.json')), 'nothing written');
});

t.test('the demo compares the study\'s all-features and mRMR top-10 runs into compare/report.html', async (t) => {
  const out = path.join(root, 'demo');
  fs.mkdirSync(path.join(out, 'study', 'runs'), { recursive: true });
  fs.symlinkSync(runA, path.join(out, 'study', 'runs', 'all-features-k90-s0'));
  fs.symlinkSync(runB, path.join(out, 'study', 'runs', 'mrmr-k10-s0'));
  const lines: string[] = [];
  const r = await compareDemoRuns(out, cohort, (l) => lines.push(l), { n: 4, perturbSteps: 4, sanityImages: 1, methods: ['gradcam'] });
  t.ok(r && fs.existsSync(path.join(out, 'compare', 'report.html')));
  t.same(r!.runs, ['all-features-k90-s0', 'mrmr-k10-s0']);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'compare', 'metrics.json'), 'utf8'));
  t.equal(m.settings.n, 4);
  t.equal(m.settings.steps, 8, 'the demo\'s settings, with the test\'s overrides');
  t.equal(await compareDemoRuns(path.join(root, 'empty'), cohort, (l) => lines.push(l)), null, 'no study runs: skipped');
});

t.test('tabsight demo (tiny) links compare/report.html from its report (slow)', { skip: !process.env.TABSIGHT_SLOW && 'set TABSIGHT_SLOW=1' }, async (t) => {
  const out = path.join(root, 'full-demo');
  await runDemo({ out, epochs: 1, n: 160, size: 32, seeds: 1, log: () => undefined });
  t.ok(fs.existsSync(path.join(out, 'compare', 'report.html')));
  t.match(fs.readFileSync(path.join(out, 'report.html'), 'utf8'), '<a href="compare/report.html">');
});
