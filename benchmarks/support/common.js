'use strict';
// Helpers shared by the benchmark scripts: options, statistics, the machine
// line, a long-lived Python worker spoken to in JSON lines, and the cache of
// synthetic cohorts. Not a benchmark itself (run.js only runs the .js files
// directly in benchmarks/).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');

const ROOT = path.join(__dirname, '..', '..');
// Every PyTorch side's Python: Debian's PyTorch by default; TABSIGHT_PYTHON
// names another, e.g. the CUDA PyTorch of a GPU node (benchmarks/cuda.sh sets it).
const PYTHON = process.env.TABSIGHT_PYTHON ?? '/usr/bin/python3';

/**
 * Options from `--kebab-name value` flags, else `BENCH_<SNAKE_NAME>` in the environment,
 * else the quick value when BENCH_QUICK=1, else the full value.
 * spec: { name: [full, quick] }; numbers stay numbers.
 */
function options(spec, argv = process.argv.slice(2)) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2).replace(/-([a-z])/g, (_, ch) => ch.toUpperCase()); // --probe-steps → probeSteps
    const next = argv[i + 1];
    flags[key] = next === undefined || next.startsWith('--') ? 'true' : argv[++i];
  }
  const quick = process.env.BENCH_QUICK === '1';
  const out = { quick };
  for (const [name, [full, fast]] of Object.entries(spec)) {
    const env = process.env[`BENCH_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`];
    const raw = flags[name] ?? env;
    const fallback = quick ? fast : full;
    if (raw === undefined) out[name] = fallback;
    else if (typeof fallback === 'number') {
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new Error(`Expected a number for --${name} but received ${raw}`);
      out[name] = v;
    } else if (typeof fallback === 'boolean') out[name] = raw === 'true' || raw === '1';
    else out[name] = raw;
  }
  return out;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x, d = 4) => (Number.isFinite(x) ? Number(x.toPrecision(d)) : x);
const loadavg = () => os.loadavg().map((v) => +v.toFixed(2));
const now = () => Number(process.hrtime.bigint()) / 1e9;

/** A figure line for a list of seconds: median, min, max (and per-second rates when `per` is given). */
function timeFigure(figure, secs, per, unit = 'images') {
  const m = median(secs);
  const line = { figure, reps: secs.length, median_s: round(m), min_s: round(Math.min(...secs)), max_s: round(Math.max(...secs)) };
  if (per !== undefined) line[`${unit}_per_s`] = round(per / m);
  return line;
}

/** CPU model, core count, the flags that matter for the kernels, Node. */
function machine() {
  const cpus = os.cpus();
  let flags = [];
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = info.split('\n').find((l) => l.startsWith('flags'));
    const all = line ? line.split(':')[1].trim().split(/\s+/) : [];
    flags = all.filter((f) => /^(avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx512_fp16|amx_tile|amx_bf16|amx_int8|avx_vnni|f16c)$/.test(f));
  } catch {
    // not Linux
  }
  return {
    cpu: cpus[0] ? cpus[0].model : 'unknown',
    cores: cpus.length,
    cpu_flags: flags.join(' '),
    mem_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    GOMP_SPINCOUNT: process.env.GOMP_SPINCOUNT ?? null,
    OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? null,
    OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? null,
  };
}

/**
 * A long-lived Python process that answers one JSON line per request.
 * The first line it prints is its hello (versions, settings).
 */
function pythonWorker(args, { env } = {}) {
  const child = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  let exited = null;
  lines.on('line', (l) => {
    const w = waiting.shift();
    if (!w) return;
    try {
      w.resolve(JSON.parse(l));
    } catch (err) {
      w.reject(new Error(`unexpected line from Python: ${l}`));
    }
  });
  child.on('exit', (code, signal) => {
    exited = code ?? signal;
    for (const w of waiting.splice(0)) w.reject(new Error(`the Python process exited with ${exited}`));
  });
  const next = () => new Promise((resolve, reject) => {
    if (exited !== null) reject(new Error(`the Python process exited with ${exited}`));
    else waiting.push({ resolve, reject });
  });
  return {
    child,
    hello: next(),
    ask(command) {
      const p = next();
      child.stdin.write(`${typeof command === 'string' ? command : JSON.stringify(command)}\n`);
      return p;
    },
    close() {
      child.stdin.end();
      return new Promise((resolve) => (exited !== null ? resolve(exited) : child.on('exit', resolve)));
    },
  };
}

/** The compiled library (dist/), with a clear message when it is missing. */
function library() {
  const file = path.join(ROOT, 'dist', 'lib', 'index.js');
  if (!fs.existsSync(file)) {
    console.error('dist/lib/index.js is missing: run `npx tsc -p tsconfig.json` first (npm run bench does)');
    process.exit(2);
  }
  const ts = require(file);
  // Load the addon now: it sets OPENBLAS_CORETYPE (docs/api.md, "BLAS"), and
  // the Python baselines started after this inherit it.
  ts._native();
  return ts;
}

/**
 * A synthetic cardiac cohort of n subjects at size px, generated once and
 * kept in TABSIGHT_BENCH_CACHE (default: <tmpdir>/tabsight-bench-cache).
 * The generator is deterministic in (n, size, seed), so a cached copy is the
 * same bytes. Returns { dir, seconds } (0 s when cached).
 */
async function cardiacCohort(ts, n, size) {
  const cache = process.env.TABSIGHT_BENCH_CACHE ?? path.join(os.tmpdir(), 'tabsight-bench-cache');
  const dir = path.join(cache, `cardiac-n${n}-s${size}-seed0-v${ts.SYNTH_CARDIAC_VERSION}`);
  const done = path.join(dir, '.complete');
  if (fs.existsSync(done)) return { dir, seconds: 0 };
  fs.rmSync(dir, { recursive: true, force: true });
  const t0 = now();
  await ts.synthCardiac({ out: dir, n, size, seed: 0 });
  fs.writeFileSync(done, new Date().toISOString() + '\n');
  return { dir, seconds: round(now() - t0) };
}

/** Prints one JSON line per figure. */
const emit = (obj) => console.log(JSON.stringify(obj));

/**
 * The device asked for with --device (default cpu). A script that measures
 * the CPU only (`supported` = ['cpu']) prints a `skipped` line and exits 0
 * for another device, so that `npm run bench -- --device cuda` gives no CPU
 * figures that read as GPU ones.
 */
function device(name, supported = ['cpu'], argv = process.argv.slice(2)) {
  const i = argv.indexOf('--device');
  const d = i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : 'cpu';
  const kind = d.split(':')[0];
  if (!supported.includes(kind)) {
    emit({ figure: 'skipped', benchmark: name, device: d, reason: `${name} measures the ${supported.map((x) => (x === 'cpu' ? 'CPU' : x.toUpperCase())).join(' or ')} only; GPU figures come from train-step, epoch and benchmarks/cuda.sh` });
    process.exit(0);
  }
  return d;
}

module.exports = { ROOT, PYTHON, options, median, round, loadavg, now, timeFigure, machine, pythonWorker, library, cardiacCohort, emit, device };
