// Permission errors: each command that writes checks, before any work, that
// it may write where it was told to, and says so as ERR_CONFIG naming the
// path; an input it may not read is ERR_DATA naming the file. The tests run
// as root here, so the commands run as the unprivileged user nobody (a
// non-root tester runs them as itself: the folders are read-only to both).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const bin = path.join(__dirname, '..', 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-permissions-'));
fs.chmodSync(root, 0o755);
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

// Without tap's NODE_OPTIONS hooks: they write process info into the
// checkout, which nobody may not.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

/** Runs the CLI as nobody (as this user when not root). */
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, env, encoding: 'utf8', ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}) });
  return { code: r.status, stderr: r.stderr };
}

/** Every file under `dir` with its size and mtime. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const st = fs.statSync(path.join(dir, f));
    out[f] = `${st.size}:${st.mtimeMs}`;
  }
  return out;
}

const cohort = path.join(root, 'cohort');
const run = path.join(root, 'run');
const ro = path.join(root, 'read-only');

t.before(() => {
  // Made by this process (root): readable by everyone, writable only by root.
  const setup = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  };
  setup('synth', 'cardiac', '--out', cohort, '--n', '96', '--size', '32', '--seed', '4');
  const config = path.join(root, 'small.yaml');
  fs.writeFileSync(config, 'pretrain:\n  epochs: 1\n  batchSize: 32\n  model: { arch: resnet18, tabularHidden: 32, projectionHidden: 32, projectionDim: 16 }\n');
  setup('pretrain', '--cohort', cohort, '--out', run, '--config', config);
  fs.mkdirSync(ro);
  fs.chmodSync(ro, 0o555);
});

t.test('pretrain into a folder it may not create, or resume a run it may not lock: ERR_CONFIG, nothing written', async (t) => {
  const fresh = cli('pretrain', '--cohort', cohort, '--out', path.join(ro, 'run'), '--epochs', '1');
  t.equal(fresh.code, 1);
  t.match(fresh.stderr, new RegExp(`ERR_CONFIG: Cannot use ${ro}/run as an output folder: EACCES`));
  t.same(fs.readdirSync(ro), []);
  const before = snapshot(run);
  const resume = cli('pretrain', '--cohort', cohort, '--out', run, '--resume', '--epochs', '2');
  t.equal(resume.code, 1);
  t.match(resume.stderr, new RegExp(`ERR_CONFIG: Cannot lock run directory ${run}: permission denied \\(open ${run}/\\.lock\\)`));
  t.same(snapshot(run), before, 'the run is as it was');
});

t.test('evaluate --save-heads into a run it may not write is refused before the cohort is embedded', async (t) => {
  const r = cli('evaluate', '--run', run, '--cohort', cohort, '--seeds', '1', '--task', 'infarction', '--save-heads');
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`ERR_CONFIG: Cannot (write heads to|use) ${run}/heads`));
  t.notMatch(r.stderr, /embedding|probing/);
  t.notOk(fs.existsSync(path.join(run, 'heads')));
});

t.test('export and embed into a folder they may not write: ERR_CONFIG before any work (it was ERR_DATA after it)', async (t) => {
  const onnx = cli('export', '--run', run, '--out', path.join(ro, 'm.onnx'));
  t.equal(onnx.code, 1);
  t.match(onnx.stderr, new RegExp(`ERR_CONFIG: Cannot write the output file ${ro}/m\\.onnx: permission denied \\(access ${ro}\\)`));
  const npy = cli('embed', '--run', run, '--cohort', cohort, '--out', path.join(ro, 'e.npy'));
  t.equal(npy.code, 1);
  t.match(npy.stderr, new RegExp(`ERR_CONFIG: Cannot write the output file ${ro}/e\\.npy: permission denied`));
  t.notMatch(npy.stderr, /embedding \d+/);
  t.same(fs.readdirSync(ro), [], 'no temporary file either');
});

t.test('an input it may not read is ERR_DATA naming the file', async (t) => {
  const copy = path.join(root, 'cohort-unreadable');
  fs.cpSync(cohort, copy, { recursive: true });
  const file = path.join(copy, 'tabular.csv');
  fs.chmodSync(file, 0o000);
  // Root reads it anyway; only an unprivileged user sees the error.
  const r = cli('validate', '--cohort', copy);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`ERR_DATA: Cannot read ${file}: EACCES`));
});
