// Bad input through the CLI: each case fails with one line `tabsight: CODE:
// message` naming the file (and the column, row or index), exits 1, and
// leaves no partial output.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readNpyHeader, writeNpy } from '../lib/data/npy';
import { synthCardiac } from '../lib/synth';

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
