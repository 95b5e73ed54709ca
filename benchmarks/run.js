#!/usr/bin/env node
'use strict';
// npm run bench [-- name ...] [-- --flag value ...]: compiles the TypeScript,
// then runs benchmarks/<name>.js (all when none is named), each in its own
// process, in the order below (roofline after the scripts it reuses:
// train-step's and inference's figures of the same run), then the scripts
// not in ORDER, by name (distributed). Flags after the names go to every
// script run (e.g. `npm run bench -- ig --reps 2`). BENCH_QUICK=1 makes every
// script use its smoke settings (seconds to a few minutes in all).
//
// Each script's JSON lines are echoed and also kept in
// $TABSIGHT_BENCH_RESULTS (default: a fresh folder under the OS temp dir),
// one <name>.jsonl per script, with summary.json (wall time per script);
// the folder is printed at the end.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const ORDER = ['mi', 'inference', 'train-step', 'epoch', 'data-path', 'ig', 'memory', 'roofline'];
const present = fs.readdirSync(__dirname).filter((f) => f.endsWith('.js') && f !== 'run.js').map((f) => f.slice(0, -3));
const all = [...ORDER.filter((n) => present.includes(n)), ...present.filter((n) => !ORDER.includes(n)).sort()];

const argv = process.argv.slice(2);
const firstFlag = argv.findIndex((a) => a.startsWith('--'));
const wanted = firstFlag < 0 ? argv : argv.slice(0, firstFlag);
const flags = firstFlag < 0 ? [] : argv.slice(firstFlag);
for (const name of wanted) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; available: ${all.join(', ')}`);
    process.exit(2);
  }
}

// The older scripts take their own flags; these are their smoke settings.
const QUICK_FLAGS = {
  mi: ['--reps', '1', '--n', '2000'],
  inference: ['--reps', '1', '--images', '64'],
  'train-step': ['--rounds', '1', '--steps', '1'],
  distributed: ['--rounds', '1', '--steps', '1'],
};

const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const results = process.env.TABSIGHT_BENCH_RESULTS ?? fs.mkdtempSync(path.join(os.tmpdir(), `tabsight-bench-results-${new Date().toISOString().replace(/[:.]/g, '-')}-`));
fs.mkdirSync(results, { recursive: true });
const load = os.loadavg();
const cores = os.cpus().length;
if (load[0] > cores) {
  console.error(`# warning: load average ${load.map((v) => v.toFixed(2)).join(' ')} on ${cores} cores; absolute times will be inflated. ` +
    'PyTorch spin-waits in OpenMP and collapses when cores are oversubscribed; GOMP_SPINCOUNT=1000 (both sides) avoids that (see benchmarks/README.md).');
}

function runOne(name) {
  return new Promise((resolve) => {
    // Smoke flags, except those given on the command line.
    const given = new Set(flags.filter((f) => f.startsWith('--')));
    const pairs = process.env.BENCH_QUICK === '1' ? QUICK_FLAGS[name] ?? [] : [];
    const quick = pairs.flatMap((v, i) => (i % 2 === 0 && !given.has(v) ? [v, pairs[i + 1]] : []));
    const child = spawn(process.execPath, [path.join(__dirname, `${name}.js`), ...quick, ...flags], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, TABSIGHT_BENCH_RESULTS: results },
    });
    const out = fs.createWriteStream(path.join(results, `${name}.jsonl`));
    child.stdout.on('data', (d) => { process.stdout.write(d); out.write(d); });
    child.on('close', (code) => out.end(() => resolve(code)));
  });
}

(async () => {
  const summary = { started: new Date().toISOString(), loadavg_start: load, cores, quick: process.env.BENCH_QUICK === '1', scripts: {} };
  let failed = 0;
  for (const name of wanted.length ? wanted : all) {
    console.error(`# benchmark ${name}`);
    const t0 = Date.now();
    const code = await runOne(name);
    const seconds = (Date.now() - t0) / 1000;
    summary.scripts[name] = { exit: code, seconds, loadavg_end: os.loadavg() };
    console.error(`# ${name}: exit ${code}, ${seconds.toFixed(1)} s`);
    if (code !== 0) failed++;
  }
  summary.total_seconds = Object.values(summary.scripts).reduce((a, s) => a + s.seconds, 0);
  fs.writeFileSync(path.join(results, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  console.error(`# total ${summary.total_seconds.toFixed(1)} s; results in ${results}`);
  process.exit(failed ? 1 : 0);
})();
