// tabsight explain end to end: a tiny synthetic cohort, a 1-epoch multimodal
// run with tiny heads, then IG and GradCAM on its first test subjects:
// files, NPY shapes, overlays, IG's convergence deltas, and bad input.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readNpy } from '../lib/data/npy';
import { loadCohort } from '../lib/data/cohort';

const exec = promisify(execFile);
const repo = path.join(__dirname, '..');
const bin = path.join(repo, 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-explain-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

// The compiled CLI, with the explain commands added when the program does not have them yet.
const shim = path.join(root, 'cli.js');
fs.writeFileSync(shim, `
const dist = ${JSON.stringify(path.join(repo, 'dist', 'lib'))};
const { buildProgram } = require(dist + '/cli/index.js');
const { addExplainCommands } = require(dist + '/cli/explain-commands.js');
const { TabsightError } = require(dist + '/errors.js');
const program = buildProgram();
if (!program.commands.some((c) => c.name() === 'explain')) addExplainCommands(program);
program.parseAsync(process.argv).catch((err) => {
  if (!(err instanceof TabsightError)) throw err;
  process.stderr.write('tabsight: ' + err.code + ': ' + err.message + '\\n');
  process.exitCode = 1;
});
`);
const cli = (...args: string[]) => exec(process.execPath, [shim, ...args], { maxBuffer: 1 << 24 });
// With LibTorch's direct convolutions in IG (TABSIGHT_WINOGRAD=0): batches of
// 1 and 2 then differ by rounding only. Winograd's larger rounding can flip a
// ReLU at a path point (test/attribution.test.ts bounds that against float64).
const cliDirect = (...args: string[]) => exec(process.execPath, [shim, ...args], { maxBuffer: 1 << 24, env: { ...process.env, TABSIGHT_WINOGRAD: '0' } });
const tabsight = (...args: string[]) => exec(process.execPath, [bin, ...args], { maxBuffer: 1 << 24 });

const cohort = path.join(root, 'cardiac');
const run = path.join(root, 'run');
const size = 32;

t.before(async () => {
  await tabsight('synth', 'cardiac', '--out', cohort, '--n', '200', '--size', String(size), '--seed', '5');
  const config = path.join(root, 'exp.yaml');
  fs.writeFileSync(config, 'pretrain:\n  epochs: 1\n  batchSize: 32\n  lr: 0.001\n  model: { arch: resnet18, tabularHidden: 16, tabularLayers: 1, projectionHidden: 16, projectionDim: 8 }\n');
  await tabsight('pretrain', '--cohort', cohort, '--out', run, '--config', config);
});

t.test('explain --method ig --n 4: attributions N×C×H×W, one overlay each, finite deltas, the first test subjects', async (t) => {
  const out = path.join(root, 'ig');
  await cli('explain', '--run', run, '--cohort', cohort, '--method', 'ig', '--n', '4', '--steps', '16', '--out', out);
  for (const f of ['attributions.npy', 'explain.json', 'overlays']) t.ok(fs.existsSync(path.join(out, f)), `${f} exists`);
  const a = await readNpy(path.join(out, 'attributions.npy'));
  t.equal(a.dtype, 'float32');
  const c = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).model.inChannels;
  t.same(a.shape, [4, c, size, size], 'N×C×H×W');
  t.ok((a.data as Float32Array).some((v) => v !== 0) && (a.data as Float32Array).every(Number.isFinite), 'non-zero and finite');
  const overlays = fs.readdirSync(path.join(out, 'overlays')).filter((f) => f.endsWith('.png'));
  t.equal(overlays.length, 4, 'one overlay per image');
  const png = fs.readFileSync(path.join(out, 'overlays', overlays[0]));
  t.same([...png.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(''), 'PNG', 'overlays are PNG files');
  const info = JSON.parse(fs.readFileSync(path.join(out, 'explain.json'), 'utf8'));
  t.equal(info.method, 'ig');
  t.equal(info.target.spec, 'similarity', 'similarity is the default target');
  t.equal(info.settings.steps, 16);
  t.equal(info.delta.length, 4, 'one delta per image');
  t.ok(info.delta.every((d: unknown) => typeof d === 'number' && Number.isFinite(d)), `deltas are finite: ${info.delta.map((d: number) => d.toExponential(2)).join(', ')}`);
  t.ok(info.scores.every((s: number) => Math.abs(s) <= 1 + 1e-6), 'similarity scores are cosines');
  const co = await loadCohort(cohort, { scanImages: false });
  t.same(info.subjects, co.splits.test.slice(0, 4).map((r) => co.ids[r]), 'the first 4 test-split subjects, in order');
  t.same(info.settings.normalize, JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).normalize, 'normalised as the run was trained');
});

t.test('explain --method gradcam: N×1×h×w, overlays for every image; default n 16 and out RUN/explain/gradcam', async (t) => {
  const { stdout } = await cli('explain', '--run', run, '--cohort', cohort, '--method', 'gradcam', '--target', 'dim:3');
  const out = path.join(run, 'explain', 'gradcam');
  t.equal(stdout.trim(), out, 'prints the output directory');
  const a = await readNpy(path.join(out, 'attributions.npy'));
  t.equal(a.shape.length, 4);
  t.equal(a.shape[0], 16);
  t.equal(a.shape[1], 1, 'one channel');
  t.ok(a.shape[2] < size && a.shape[2] === a.shape[3], `layer4 resolution ${a.shape[2]}×${a.shape[3]}`);
  t.equal(fs.readdirSync(path.join(out, 'overlays')).filter((f) => f.endsWith('.png')).length, 16);
  const info = JSON.parse(fs.readFileSync(path.join(out, 'explain.json'), 'utf8'));
  t.same(info.target, { spec: 'dim:3', dim: 3 });
  t.equal(info.delta, undefined, 'no deltas for GradCAM');
});

t.test('bad targets and methods exit non-zero with ERR_CONFIG naming them', async (t) => {
  const bad = await cli('explain', '--run', run, '--cohort', cohort, '--method', 'ig', '--target', 'banana', '--out', path.join(root, 'bad')).catch((e) => e);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^tabsight: ERR_CONFIG: .*"banana"/m);
  t.notOk(fs.existsSync(path.join(root, 'bad')), 'nothing was written');
  const method = await cli('explain', '--run', run, '--cohort', cohort, '--method', 'lime').catch((e) => e);
  t.equal(method.code, 1);
  t.match(method.stderr, /ERR_CONFIG: .*"lime"/);
  const head = await cli('explain', '--run', run, '--cohort', cohort, '--method', 'gradcam', '--target', 'task:infarction').catch((e) => e);
  t.equal(head.code, 1);
  t.match(head.stderr, /ERR_CONFIG: .*heads[/\\]infarction\.json.*tabsight evaluate .*--save-heads first/);
  const dim = await cli('explain', '--run', run, '--cohort', cohort, '--method', 'gradcam', '--target', 'dim:512').catch((e) => e);
  t.equal(dim.code, 1);
  t.match(dim.stderr, /ERR_CONFIG: .*target\.index/);
});

t.test('task:T explains a saved probe head; the other methods write their shapes', async (t) => {
  await tabsight('evaluate', '--run', run, '--cohort', cohort, '--task', 'infarction', '--seeds', '1', '--backend', 'torch', '--save-heads', '--json');
  const out = path.join(root, 'head');
  await cli('explain', '--run', run, '--cohort', cohort, '--method', 'guided-gradcam', '--target', 'task:infarction', '--n', '2', '--out', out);
  const info = JSON.parse(fs.readFileSync(path.join(out, 'explain.json'), 'utf8'));
  t.equal(info.target.task, 'infarction');
  t.equal(info.target.head, path.join(run, 'heads', 'infarction.json'));
  const c = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).model.inChannels;
  t.same((await readNpy(path.join(out, 'attributions.npy'))).shape, [2, c, size, size], 'guided-gradcam: N×C×H×W');
  for (const method of ['guided-backprop', 'smoothgrad-ig']) {
    const dir = path.join(root, method);
    await (method === 'smoothgrad-ig' ? cliDirect : cli)('explain', '--run', run, '--cohort', cohort, '--method', method, '--target', 'dim:0', '--n', '2', '--steps', '4', '--samples', '2', '--out', dir);
    t.same((await readNpy(path.join(dir, 'attributions.npy'))).shape, [2, c, size, size], `${method}: N×C×H×W`);
    t.equal(fs.readdirSync(path.join(dir, 'overlays')).length, 2, `${method}: 2 overlays`);
  }
  // smoothgrad-ig's noise sd is a fraction of each image's own range, so the first image gets the same noise and
  // the same attributions whether it is explained alone or with another.
  const one = path.join(root, 'smoothgrad-ig-1');
  await cliDirect('explain', '--run', run, '--cohort', cohort, '--method', 'smoothgrad-ig', '--target', 'dim:0', '--n', '1', '--steps', '4', '--samples', '2', '--out', one);
  const sd2 = JSON.parse(fs.readFileSync(path.join(root, 'smoothgrad-ig', 'explain.json'), 'utf8')).settings.stdev as number[];
  const sd1 = JSON.parse(fs.readFileSync(path.join(one, 'explain.json'), 'utf8')).settings.stdev as number[];
  t.equal(sd2.length, 2, 'one noise sd per image');
  t.equal(sd1[0], sd2[0], 'the first image\'s noise sd does not depend on the other image');
  const a1 = (await readNpy(path.join(one, 'attributions.npy'))).data as Float32Array;
  const a2 = (await readNpy(path.join(root, 'smoothgrad-ig', 'attributions.npy'))).data as Float32Array;
  let diff = 0;
  let big = 0;
  for (let k = 0; k < a1.length; k++) {
    diff = Math.max(diff, Math.abs(a1[k] - a2[k]));
    big = Math.max(big, Math.abs(a2[k]));
  }
  // Batches of 1 and 2 may take different convolution kernels. Their rounding
  // can flip a ReLU or a max-pool choice at one of the 8 path points, and
  // the input gradient then moves everywhere downstream of it: 0.58% of the
  // largest value, at 91% of the pixels, with weights trained in NCHW (about
  // 1e-5 with channels_last weights). Noise that depended on the other image
  // would move it by tens of percent.
  t.ok(diff <= 1e-2 * big, `the first image's attributions alone and with another: max |Δ| ${diff} of ${big}`);
  const cls = await cli('explain', '--run', run, '--cohort', cohort, '--method', 'gradcam', '--target', 'task:infarction:maybe').catch((e) => e);
  t.match(cls.stderr, /ERR_CONFIG: Unknown class "maybe"/);
});
