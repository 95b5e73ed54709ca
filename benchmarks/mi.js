#!/usr/bin/env node
/**
 * Question: how long does mutualInfoRegression take on 10,000 samples × 100
 * features, against scikit-learn's mutual_info_regression on the same data?
 *
 * Run:  npx tsc -p tsconfig.json && node benchmarks/mi.js [--reps 5] [--n 10000] [--p 100]
 * (this script loads the compiled dist/lib/features/index.js).
 *
 * The baseline runs in one long-lived /usr/bin/python3 child that loads the
 * same float64 data from a temp dir and times each call with perf_counter
 * inside Python (import and data loading excluded). Both sides get one
 * warm-up call, then the reps alternate: ours, sklearn, ours, sklearn, ...
 * Both use their defaults: k = 3, tie-breaking noise on (seed 0 /
 * random_state=0). Prints one JSON line per figure: the machine, each
 * side's median and min–max seconds, and the ratio with the max |Δ| of the
 * 100 MI values. For scale, the last line also gives sklearn's own max |Δ|
 * between random_state 0 and 1: at n = 10,000 its 1e-10 noise flips a few
 * near-tied neighbour counts (a point 5e-11 beyond ε), moving one MI by
 * ~1e-6; our result differs from sklearn's by that much, no more.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
require('./support/common').device('mi');

const dist = path.join(__dirname, '..', 'dist', 'lib', 'features');
if (!fs.existsSync(path.join(dist, 'index.js'))) {
  console.error('dist/lib/features/index.js is missing: run `npx tsc -p tsconfig.json` first');
  process.exit(2);
}
const { mutualInfoRegression } = require(path.join(dist, 'index.js'));
const { normalStream } = require(path.join(dist, 'mi.js'));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const reps = arg('reps', 5);
const n = arg('n', 10000);
const p = arg('p', 100);

// Data: y ~ N(0, 1); columns linear, non-linear or independent of y, plus noise.
const g = normalStream(2024);
const y = Float64Array.from({ length: n }, () => g());
const X = Array.from({ length: p }, (_, j) => {
  const kind = j % 4;
  return Float64Array.from(y, (v) => {
    const e = g();
    if (kind === 0) return v + (0.2 + j / p) * e;
    if (kind === 1) return Math.sin(2 * v) + 0.5 * e;
    if (kind === 2) return Math.exp(v / 2) * (1 + 0.3 * e);
    return e;
  });
});
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-mi-'));
const rowMajor = new Float64Array(n * p);
for (let j = 0; j < p; j++) for (let i = 0; i < n; i++) rowMajor[i * p + j] = X[j][i];
fs.writeFileSync(path.join(dir, 'X.f64'), Buffer.from(rowMajor.buffer));
fs.writeFileSync(path.join(dir, 'y.f64'), Buffer.from(y.buffer));

const PY = `
import json, sys, time, platform
import numpy as np, sklearn
from sklearn.feature_selection import mutual_info_regression
d, n, p = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
X = np.fromfile(d + "/X.f64", dtype=np.float64).reshape(n, p)
y = np.fromfile(d + "/y.f64", dtype=np.float64)
print(json.dumps({"python": platform.python_version(), "sklearn": sklearn.__version__, "numpy": np.__version__}), flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    mi = mutual_info_regression(X, y, random_state=int(line.split()[1]))
    s = time.perf_counter() - t
    print(json.dumps({"seconds": s, "mi": mi.tolist()}), flush=True)
`;

function pythonWorker() {
  const child = spawn('/usr/bin/python3', ['-c', PY, dir, String(n), String(p)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  const waiting = [];
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    let k;
    while ((k = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 1);
      waiting.shift()(JSON.parse(line));
    }
  });
  const next = () => new Promise((resolve) => waiting.push(resolve));
  return {
    hello: next(),
    run(randomState = 0) {
      const r = next();
      child.stdin.write(`run ${randomState}\n`);
      return r;
    },
    close: () => child.stdin.end(),
  };
}

const median = (a) => {
  const s = [...a].sort((u, v) => u - v);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x, d = 4) => Number(x.toPrecision(d));

async function main() {
  const loadStart = os.loadavg().map((x) => round(x, 3));
  const py = pythonWorker();
  const versions = await py.hello;
  const ours = () => {
    const t = process.hrtime.bigint();
    const mi = mutualInfoRegression(X, y, { seed: 0 });
    return { seconds: Number(process.hrtime.bigint() - t) / 1e9, mi };
  };
  ours();
  await py.run(); // warm-up
  const tOurs = [];
  const tSk = [];
  let maxDiff = 0;
  for (let r = 0; r < reps; r++) {
    const a = ours();
    const b = await py.run();
    tOurs.push(a.seconds);
    tSk.push(b.seconds);
    for (let j = 0; j < p; j++) maxDiff = Math.max(maxDiff, Math.abs(a.mi[j] - b.mi[j]));
  }
  // sklearn's own sensitivity to its noise: the same call with another random_state.
  const other = await py.run(1);
  const first = await py.run(0);
  let skSelf = 0;
  for (let j = 0; j < p; j++) skSelf = Math.max(skSelf, Math.abs(first.mi[j] - other.mi[j]));
  py.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const shape = `${n}x${p}`;
  const lines = [
    {
      figure: 'machine',
      ...require('./support/common').machine(),
      ...versions,
      loadavg_start: loadStart,
      loadavg_end: os.loadavg().map((x) => round(x, 3)),
    },
    { figure: `tabsight mutualInfoRegression ${shape}`, reps, median_s: round(median(tOurs)), min_s: round(Math.min(...tOurs)), max_s: round(Math.max(...tOurs)) },
    { figure: `sklearn mutual_info_regression ${shape}`, reps, median_s: round(median(tSk)), min_s: round(Math.min(...tSk)), max_s: round(Math.max(...tSk)) },
    { figure: `speed-up ${shape} (sklearn median / tabsight median)`, ratio: round(median(tSk) / median(tOurs), 3), max_abs_diff: maxDiff, sklearn_rs0_vs_rs1_max_abs_diff: skSelf },
  ];
  for (const l of lines) console.log(JSON.stringify(l));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
