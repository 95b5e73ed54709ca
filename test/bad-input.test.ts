// Bad input through the CLI: each case fails with one line `tabsight: CODE:
// message` naming the file (and the column, row or index), exits 1, and
// leaves no partial output.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readNpyHeader, writeNpy } from '../lib/data/npy';
import { synthCardiac } from '../lib/synth';
import { makeDirs } from '../lib/io/atomic';

const exec = promisify(execFile);
const bin = path.join(__dirname, '..', 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bad-input-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const at = (...p: string[]) => path.join(root, ...p);
const cli = (...args: string[]) => exec(process.execPath, [bin, ...args], { maxBuffer: 1 << 24, timeout: 300_000 });

/** Runs the CLI expecting failure: the stderr line `tabsight: CODE: …` carrying every part. */
async function fails(t: Test, args: string[], code: string, parts: (string | RegExp)[]): Promise<string> {
  const r = await cli(...args).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(r.code, 1, `tabsight ${args.join(' ')} exits 1`);
  const line = /^tabsight: .*$/m.exec(r.stderr)?.[0] ?? r.stderr;
  t.match(line, new RegExp(`^tabsight: ${code}: `), `${code}: ${line}`);
  for (const p of parts) t.match(line, p);
  return line;
}

const cohort = at('u8');
const fcohort = at('f32');
const run = at('run');
const frun = at('frun');
const tiny = at('tiny.yaml');

t.before(async () => {
  await synthCardiac({ out: cohort, n: 80, size: 16, seed: 4 });
  const h = await readNpyHeader(path.join(cohort, 'images.npy'));
  const raw = fs.readFileSync(path.join(cohort, 'images.npy'));
  fs.cpSync(cohort, fcohort, { recursive: true });
  await writeNpy(path.join(fcohort, 'images.npy'), Float32Array.from(raw.subarray(h.dataOffset), (v) => v / 255), h.shape);
  fs.writeFileSync(tiny, 'pretrain:\n  epochs: 1\n  batchSize: 16\n  model: { arch: resnet18, smallStem: true, tabularHidden: 16, projectionHidden: 16, projectionDim: 8 }\n');
  await cli('pretrain', '--cohort', cohort, '--out', run, '--config', tiny);
  await cli('pretrain', '--cohort', fcohort, '--out', frun, '--config', tiny);
});

t.test('embed and predict refuse NaN/Inf images, naming the file and the image index', async (t) => {
  const nan = at('nan.npy');
  const data = new Float32Array(3 * 3 * 16 * 16).fill(0.5);
  data[2 * 768 + 256 + 16 * 4 + 5] = Number.NaN; // image 2, channel 1, y 4, x 5
  await writeNpy(nan, data, [3, 3, 16, 16]);
  const inf = at('inf.npy');
  data.fill(0.5);
  data[7] = -Infinity;
  await writeNpy(inf, data, [3, 3, 16, 16]);
  const model = at('f.onnx');
  await cli('export', '--run', frun, '--out', model);
  const out = at('never.npy');
  for (const how of [['--model', model], ['--run', frun], ['--run', frun, '--backend', 'ort']]) {
    await fails(t, ['embed', ...how, '--images', nan, '--out', out], 'ERR_DATA', [nan, 'image 2 has NaN at channel 1, y 4, x 5']);
  }
  await fails(t, ['embed', '--model', model, '--images', inf, '--out', out], 'ERR_DATA', [inf, 'image 0 has Inf']);
  t.notOk(fs.existsSync(out), 'nothing was written');
  t.same(fs.readdirSync(root).filter((f) => f.includes('.tmp')), [], 'no temporary file is left');
});

t.test('pretrain --resume on a corrupt run directory: ERR_DATA naming the file, nothing allocated from a bogus header', async (t) => {
  const args = (out: string) => ['pretrain', '--cohort', cohort, '--out', out, '--config', tiny, '--epochs', '2', '--resume'];
  const badConfig = at('resume-config');
  fs.cpSync(run, badConfig, { recursive: true });
  fs.writeFileSync(path.join(badConfig, 'config.json'), '{bad');
  await fails(t, args(badConfig), 'ERR_DATA', [path.join(badConfig, 'config.json'), 'not valid JSON']);
  const badHeader = at('resume-header');
  fs.cpSync(run, badHeader, { recursive: true });
  const ckpt = path.join(badHeader, 'checkpoint.safetensors');
  const fd = fs.openSync(ckpt, 'r+');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(1n << 50n); // a petabyte header: refused before any allocation
  fs.writeSync(fd, len, 0, 8, 0);
  fs.closeSync(fd);
  await fails(t, args(badHeader), 'ERR_DATA', [ckpt, `header length ${1n << 50n} exceeds`]);
  fs.writeFileSync(ckpt, 'abc');
  await fails(t, args(badHeader), 'ERR_DATA', [ckpt, 'holds 3 bytes']);
});

t.test('output paths that cannot be written are refused before any work, naming the path', async (t) => {
  const afile = at('afile');
  fs.writeFileSync(afile, 'x');
  const adir = at('adir');
  fs.mkdirSync(adir);
  const images = at('ok.npy');
  await writeNpy(images, new Float32Array(2 * 3 * 16 * 16).fill(0.25), [2, 3, 16, 16]);
  await fails(t, ['pretrain', '--cohort', cohort, '--out', afile, '--config', tiny], 'ERR_CONFIG', [afile, 'it is a file']);
  await fails(t, ['study', '--cohort', cohort, '--out', afile], 'ERR_CONFIG', [afile, 'it is a file']);
  await fails(t, ['explain', '--run', frun, '--cohort', fcohort, '--method', 'gradcam', '--out', afile], 'ERR_CONFIG', [afile, 'it is a file']);
  await fails(t, ['export', '--run', frun, '--out', adir], 'ERR_CONFIG', [adir, 'it is a folder']);
  await fails(t, ['export', '--run', frun, '--out', at('nodir', 'x.onnx')], 'ERR_CONFIG', [at('nodir', 'x.onnx'), `${at('nodir')} does not exist`]);
  await fails(t, ['export', '--run', frun, '--out', path.join(afile, 'x.onnx')], 'ERR_CONFIG', [path.join(afile, 'x.onnx'), 'is not a folder']);
  await fails(t, ['embed', '--run', frun, '--images', images, '--out', adir], 'ERR_CONFIG', [adir, 'it is a folder']);
  t.same(fs.readdirSync(adir), [], 'nothing was written into the folder');
  t.equal(fs.readFileSync(afile, 'utf8'), 'x', 'the file in the way is untouched');

  // writeFileAtomic's cleanup never masks the real error.
  const { writeFileAtomic, writeFileAtomicSync } = await import('../lib/io/atomic');
  for (const write of [writeFileAtomic, writeFileAtomicSync]) {
    const err = await Promise.resolve().then(() => write(path.join(afile, 'x.json'), '{}')).then(() => null, (e: Error & { code?: string }) => e);
    t.equal(err?.code, 'ERR_DATA', `${write.name}: ${err?.message}`);
    t.match(err?.message, `Cannot write ${path.join(afile, 'x.json')}: ${afile} is not a folder`);
  }
});

t.test('a corrupt study.sqlite is ERR_DATA naming the file', async (t) => {
  const dir = at('study');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'study.sqlite'), 'this is not a database, just some text long enough to be read as a header'.repeat(20));
  await fails(t, ['study', '--cohort', cohort, '--out', dir], 'ERR_DATA', [path.join(dir, 'study.sqlite')]);
});

t.test('pretrain whose native setup fails leaves no run directory behind', async (t) => {
  const out = at('nodevice');
  await fails(t, ['pretrain', '--cohort', cohort, '--out', out, '--config', tiny, '--device', 'cuda:99'], 'ERR_CONFIG', ['cuda:99']);
  t.notOk(fs.existsSync(out), 'no run directory with a lone config.json');
  const weights = at('bad.safetensors');
  fs.writeFileSync(weights, '{}');
  const out2 = at('badweights');
  await fails(t, ['pretrain', '--cohort', cohort, '--out', out2, '--config', tiny, '--init-weights', weights], 'ERR_DATA', [weights]);
  t.notOk(fs.existsSync(out2));
});

t.test('explain: NaN images name the cohort file, subject id and store index; a failed call leaves no stale explain.json', async (t) => {
  const nanCohort = at('fnan');
  fs.cpSync(fcohort, nanCohort, { recursive: true });
  const splits = fs.readFileSync(path.join(nanCohort, 'splits.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  const testRows = splits.flatMap(([, split], i) => (split === 'test' ? [i] : []));
  const row = testRows[1];
  const file = path.join(nanCohort, 'images.npy');
  const h = await readNpyHeader(file);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from(new Float32Array([Number.NaN]).buffer), 0, 4, h.dataOffset + (row * 768 + 300) * 4);
  fs.closeSync(fd);
  await fails(t, ['explain', '--run', frun, '--cohort', nanCohort, '--method', 'gradcam', '--n', '3'], 'ERR_DATA', [file, `image ${row} (id "${splits[row][0]}") has NaN at channel 1, y 2, x 12`]);

  const out = at('explained');
  await cli('explain', '--run', frun, '--cohort', fcohort, '--method', 'gradcam', '--n', '3', '--out', out);
  t.equal(fs.readdirSync(path.join(out, 'overlays')).length, 3);
  await cli('explain', '--run', frun, '--cohort', fcohort, '--method', 'gradcam', '--n', '2', '--out', out);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'explain.json'), 'utf8'));
  t.same(fs.readdirSync(path.join(out, 'overlays')).sort(), json.overlays.map((f: string) => f.slice('overlays/'.length)).sort(), 'only the overlays explain.json lists');
  t.equal(json.overlays.length, 2);
  fs.rmSync(path.join(out, 'overlays'), { recursive: true });
  fs.writeFileSync(path.join(out, 'overlays'), 'in the way');
  await fails(t, ['explain', '--run', frun, '--cohort', fcohort, '--method', 'gradcam', '--n', '2', '--out', out], 'ERR_CONFIG', [path.join(out, 'overlays')]);
  t.notOk(fs.existsSync(path.join(out, 'explain.json')), 'no explain.json describes a half-written folder');
});

t.test('pretrain --images: NaN images and bad --tabular files are ERR_DATA naming the file, index, row and column', async (t) => {
  const images = at('pt-images.npy');
  const data = new Float32Array(8 * 3 * 16 * 16).fill(0.5);
  await writeNpy(images, data, [8, 3, 16, 16]);
  const nanImages = at('pt-nan.npy');
  data[5 * 768 + 2 * 256 + 3 * 16 + 1] = Number.NaN; // image 5, channel 2, y 3, x 1
  await writeNpy(nanImages, data, [8, 3, 16, 16]);
  const out = at('pt-run');
  const pre = (imgs: string, ...more: string[]) => ['pretrain', '--images', imgs, '--out', out, '--config', tiny, '--batch-size', '4', ...more];
  await fails(t, pre(nanImages, '--mode', 'simclr'), 'ERR_DATA', [nanImages, 'image 5 has NaN at channel 2, y 3, x 1']);

  const i64 = at('tab-i64.npy');
  await writeNpy(i64, BigInt64Array.from({ length: 8 * 2 }, (_, k) => (k === 7 ? 2n ** 60n : BigInt(k))), [8, 2]);
  await fails(t, pre(images, '--tabular', i64), 'ERR_DATA', [i64, 'int64', String(2n ** 60n), 'row 3, column 1']);
  const short = at('tab-short.npy');
  await writeNpy(short, new Float32Array(7 * 2), [7, 2]);
  await fails(t, pre(images, '--tabular', short), 'ERR_DATA', [short, '7 rows', images, '8 images']);
  const nanTab = at('tab-nan.npy');
  await writeNpy(nanTab, Float64Array.from({ length: 16 }, (_, k) => (k === 9 ? Number.NaN : k)), [8, 2]);
  await fails(t, pre(images, '--tabular', nanTab), 'ERR_DATA', [nanTab, 'NaN at row 4, column 1']);
  t.notOk(fs.existsSync(path.join(out, 'config.json')), 'no run was started');

  // int64 rows within ±2^53 train as their exact values.
  const okTab = at('tab-ok.npy');
  await writeNpy(okTab, BigInt64Array.from({ length: 16 }, (_, k) => BigInt(k % 5) - 2n), [8, 2]);
  await cli(...pre(images, '--tabular', okTab, '--epochs', '1'));
  t.ok(fs.existsSync(path.join(out, 'checkpoint.safetensors')), 'an int64 --tabular file trains');
});

t.test('augment.outSize that disagrees with the training image size is ERR_CONFIG naming both keys', async (t) => {
  const cfg = at('outsize.yaml');
  fs.writeFileSync(cfg, fs.readFileSync(tiny, 'utf8') + '  augment: { outSize: [12, 12] }\n');
  const out = at('outsize-run');
  await fails(t, ['pretrain', '--cohort', cohort, '--out', out, '--config', cfg, '--image-size', '16'], 'ERR_CONFIG', ['augment.outSize [12, 12]', 'imageSize 16']);
  t.notOk(fs.existsSync(out));
});

t.test('a malformed command line gets the same error line, with ERR_CONFIG, and exit 1', async (t) => {
  await fails(t, ['pretrain', '--cohort', cohort, '--out', at('never'), '--bogus'], 'ERR_CONFIG', [/unknown option '--bogus'/]);
  await fails(t, ['pretrain', '--cohort', cohort, '--out', at('never'), '--epochs', 'abc'], 'ERR_CONFIG', [/--epochs/, /abc/]);
  for (const v of ['0x1', '0b1', '', '2.5']) {
    await fails(t, ['pretrain', '--cohort', cohort, '--out', at('never'), '--epochs', v], 'ERR_CONFIG', [/Expected an integer for --epochs/, `"${v}"`]);
  }
  await fails(t, ['pretrain', '--cohort', cohort, '--out', at('never'), '--lr', '0x10'], 'ERR_CONFIG', [/Expected a number for --lr but received "0x10"/]);
  await fails(t, ['pretrain', '--cohort', cohort], 'ERR_CONFIG', [/required option '--out <dir>'/]);
  await fails(t, ['pretran'], 'ERR_CONFIG', [/unknown command 'pretran'/]);
  t.notOk(fs.existsSync(at('never')), 'nothing was written');
});

t.test('makeDirs is mkdir -p: the first folder it made, EEXIST for a file at the path, ENOTDIR for a file above it', async (t) => {
  const base = at('mk');
  t.equal(makeDirs(path.join(base, 'a', 'b')), base, 'returns the shallowest folder it created');
  t.ok(fs.statSync(path.join(base, 'a', 'b')).isDirectory());
  t.equal(makeDirs(path.join(base, 'a', 'b')), undefined, 'nothing to create');
  t.equal(makeDirs(path.join(base, 'a', 'c')), path.join(base, 'a', 'c'));
  fs.writeFileSync(path.join(base, 'f'), 'x');
  t.throws(() => makeDirs(path.join(base, 'f')), { code: 'EEXIST' });
  t.throws(() => makeDirs(path.join(base, 'f', 'g', 'h')), { code: 'ENOTDIR' });
  t.notOk(fs.existsSync(path.join(base, 'f', 'g')));
});

// Node's own recursive mkdir never returns for a path under /proc (mkdir
// answers ENOENT there although /proc exists); these ran forever before.
const procProbe = (() => { try { fs.mkdirSync('/proc/tabsight-probe'); return 'created'; } catch (e) { return (e as NodeJS.ErrnoException).code; } })();
t.test('an output folder under /proc is an error, not a hang', { skip: procProbe === 'ENOENT' ? false : `mkdir under /proc gives ${procProbe} here` }, async (t) => {
  t.throws(() => makeDirs('/proc/tabsight-x/y'), { code: 'ENOENT' });
  await fails(t, ['pretrain', '--cohort', cohort, '--out', '/proc/tabsight-x/run', '--config', tiny], 'ERR_CONFIG', ['/proc/tabsight-x/run', /ENOENT/]);
  await fails(t, ['synth', 'cardiac', '--out', '/proc/tabsight-x', '--n', '40', '--size', '16'], 'ERR_CONFIG', ['/proc/tabsight-x']);
});

t.test('signals during native work: a command without its own handler dies of Ctrl-C at once; pretrain stops cleanly on SIGTERM', async (t) => {
  const bin2 = path.join(__dirname, '..', 'bin', 'tabsight.js');
  const start = (args: string[]) => {
    const child = spawn(process.execPath, [bin2, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => { stderr += b; });
    const exited = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
    return { child, exited, stderr: () => stderr };
  };
  // explain has no graceful stop: Ctrl-C must not wait for the attribution running in the libuv pool
  // (process.exit would: it waits for native work to finish).
  const ex = start(['explain', '--run', run, '--cohort', cohort, '--method', 'ig', '--steps', '20000', '--n', '8', '--out', at('ex-signal')]);
  await new Promise((r) => setTimeout(r, 4000));
  const sent = Date.now();
  ex.child.kill('SIGINT');
  t.same(await ex.exited, [null, 'SIGINT'], 'explain died of the signal', { stderr: ex.stderr() });
  const took = Date.now() - sent;
  t.ok(took < 3000, `within ${took} ms of the signal`);

  // pretrain: SIGTERM (SLURM) stops after the step with a valid checkpoint, exit 130.
  const long = at('long.yaml');
  fs.writeFileSync(long, fs.readFileSync(tiny, 'utf8').replace('epochs: 1', 'epochs: 500'));
  const out = at('sigterm-run');
  const pt = start(['pretrain', '--cohort', cohort, '--out', out, '--config', long]);
  const begun = Date.now();
  while (!fs.existsSync(path.join(out, 'checkpoint.safetensors')) && Date.now() - begun < 120_000) await new Promise((r) => setTimeout(r, 50));
  pt.child.kill('SIGTERM');
  t.same(await pt.exited, [130, null], 'pretrain exits 130 after SIGTERM', { stderr: pt.stderr() });
  t.match(pt.stderr(), /SIGTERM, stopping after this step/);
  t.match(pt.stderr(), /tabsight: ERR_ABORTED: Training was aborted after step \d+; the checkpoint in .* is valid/);
  t.ok(fs.existsSync(path.join(out, 'checkpoint.safetensors')));
});

t.test('a run whose config.json was edited or damaged: ERR_DATA naming the file and the field, in every command that opens the run', async (t) => {
  const good = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  const channels = good.model.inChannels as number;
  const cases: [string, unknown, RegExp][] = [
    ['null', null, /the run config should be an object but is null/],
    ['empty', {}, /version should be 1 .* but is missing/],
    ['newer', { ...good, version: 2 }, /version should be 1 .* but is 2/],
    ['no model', { ...good, model: null }, /model should be an object but is null/],
    ['bad arch', { ...good, model: { ...good.model, arch: 'vgg' } }, /model\.arch should be one of resnet18, resnet50 but is "vgg"/],
    ['zero std', { ...good, normalize: { ...good.normalize, std: new Array(channels).fill(0) } }, new RegExp(`normalize\\.std should be ${channels} finite number\\(s\\), each > 0`)],
    ['no data', { ...good, data: undefined }, /data should be an object but is missing/],
    ['bad dtype', { ...good, data: { ...good.data, dtype: 'int16' } }, /data\.dtype should be one of uint8, float16, float32 but is "int16"/],
  ];
  const images = at('cfg-images.npy');
  await writeNpy(images, new Uint8Array(2 * channels * 16 * 16).fill(100), [2, channels, 16, 16]);
  for (const [name, config, why] of cases) {
    const dir = at(`cfg-${name.replace(/ /g, '-')}`);
    fs.cpSync(run, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    const file = path.join(dir, 'config.json');
    await fails(t, ['embed', '--run', dir, '--images', images, '--out', at('cfg-never.npy')], 'ERR_DATA', [file, why]);
    await fails(t, ['export', '--run', dir, '--out', at('cfg-never.onnx')], 'ERR_DATA', [file, why]);
    await fails(t, ['evaluate', '--run', dir, '--cohort', cohort, '--task', 'lvef', '--seeds', '1'], 'ERR_DATA', [file, why]);
  }
  t.notOk(fs.existsSync(at('cfg-never.npy')) || fs.existsSync(at('cfg-never.onnx')), 'nothing was written');
});
