import t from 'tap';
import { clipLoss, ntXentLoss, ConfigError, ShapeError } from '../lib/index';

// Closed forms in float64, written out from the definitions.
function normalizeRows(x: Float64Array, n: number, d: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    const r = Array.from(x.subarray(i * d, (i + 1) * d));
    const norm = Math.sqrt(r.reduce((s, v) => s + v * v, 0));
    rows.push(r.map((v) => v / norm));
  }
  return rows;
}
const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
const logSumExp = (xs: number[]) => {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, v) => s + Math.exp(v - m), 0));
};

function clipClosedForm(a: Float64Array, b: Float64Array, n: number, d: number, tau: number, lambda: number, labels?: Int32Array): number {
  const za = normalizeRows(a, n, d);
  const zb = normalizeRows(b, n, d);
  const s = za.map((ri) => zb.map((cj) => dot(ri, cj) / tau));
  const keep = (i: number, j: number) => i === j || !labels || labels[i] !== labels[j];
  let rows = 0;
  let cols = 0;
  for (let i = 0; i < n; i++) {
    rows += logSumExp(s[i].filter((_, j) => keep(i, j))) - s[i][i];
    cols += logSumExp(s.map((r) => r[i]).filter((_, j) => keep(i, j))) - s[i][i];
  }
  return (lambda * rows) / n + ((1 - lambda) * cols) / n;
}

function ntXentClosedForm(a: Float64Array, b: Float64Array, n: number, d: number, tau: number, labels?: Int32Array): number {
  const z = [...normalizeRows(a, n, d), ...normalizeRows(b, n, d)];
  let total = 0;
  for (let i = 0; i < 2 * n; i++) {
    const p = (i + n) % (2 * n);
    const others: number[] = [];
    for (let j = 0; j < 2 * n; j++) {
      if (j === i) continue;
      if (labels && j !== p && labels[i % n] === labels[j % n]) continue;
      others.push(dot(z[i], z[j]) / tau);
    }
    total += logSumExp(others) - dot(z[i], z[p]) / tau;
  }
  return total / (2 * n);
}

// A small deterministic generator for test inputs.
function gen(seed: number, len: number): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(len);
  for (let i = 0; i < len; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

const n = 4;
const d = 3;
const a = gen(1, n * d);
const b = gen(2, n * d);

t.test('clipLoss matches the closed form on 4x3 inputs for several tau and lambda', async (t) => {
  for (const tau of [0.1, 0.5, 1]) {
    for (const lambda of [0, 0.3, 0.5, 1]) {
      const r = clipLoss(a, b, n, d, { temperature: tau, lambda });
      t.ok(Math.abs(r.loss - clipClosedForm(a, b, n, d, tau, lambda)) < 1e-10, `tau ${tau} lambda ${lambda}: ${r.loss}`);
    }
  }
});

t.test('clipLoss with removeFalseNegatives drops same-label pairs from the denominators', async (t) => {
  const labels = Int32Array.from([0, 1, 0, 1]);
  const r = clipLoss(a, b, n, d, { removeFalseNegatives: true }, labels);
  const expected = clipClosedForm(a, b, n, d, 0.1, 0.5, labels);
  t.ok(Math.abs(r.loss - expected) < 1e-10, `${r.loss} vs ${expected}`);
  t.ok(Math.abs(r.loss - clipClosedForm(a, b, n, d, 0.1, 0.5)) > 1e-3, 'differs from the plain loss');
});

t.test('ntXentLoss matches the closed form, with and without label-aware negatives', async (t) => {
  for (const tau of [0.1, 0.7]) {
    const r = ntXentLoss(a, b, n, d, { temperature: tau });
    t.ok(Math.abs(r.loss - ntXentClosedForm(a, b, n, d, tau)) < 1e-10, `tau ${tau}`);
  }
  const labels = Int32Array.from([2, 2, 5, 5]);
  const r = ntXentLoss(a, b, n, d, { removeFalseNegatives: true }, labels);
  t.ok(Math.abs(r.loss - ntXentClosedForm(a, b, n, d, 0.1, labels)) < 1e-10);
});

function finiteDifference(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i] += h;
    xm[i] -= h;
    g[i] = (f(xp) - f(xm)) / (2 * h);
  }
  return g;
}

const maxDiff = (x: ArrayLike<number>, y: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
};

t.test('clipLoss gradients match central finite differences', async (t) => {
  const opts = { temperature: 0.2, lambda: 0.3 };
  const r = clipLoss(a, b, n, d, opts);
  const ga = finiteDifference((x) => clipLoss(x, b, n, d, opts).loss, a);
  const gb = finiteDifference((x) => clipLoss(a, x, n, d, opts).loss, b);
  t.ok(maxDiff(r.gradA, ga) < 1e-6, `gradA max diff ${maxDiff(r.gradA, ga)}`);
  t.ok(maxDiff(r.gradB, gb) < 1e-6, `gradB max diff ${maxDiff(r.gradB, gb)}`);
  t.ok(maxDiff(r.gradA, new Float64Array(n * d)) > 1e-3, 'gradient is not zero');
});

t.test('ntXentLoss gradients match central finite differences', async (t) => {
  const labels = Int32Array.from([0, 1, 0, 1]);
  const opts = { temperature: 0.3, removeFalseNegatives: true };
  const r = ntXentLoss(a, b, n, d, opts, labels);
  const ga = finiteDifference((x) => ntXentLoss(x, b, n, d, opts, labels).loss, a);
  const gb = finiteDifference((x) => ntXentLoss(a, x, n, d, opts, labels).loss, b);
  t.ok(maxDiff(r.gradA, ga) < 1e-6, `gradA max diff ${maxDiff(r.gradA, ga)}`);
  t.ok(maxDiff(r.gradB, gb) < 1e-6, `gradB max diff ${maxDiff(r.gradB, gb)}`);
});

t.test('clipLoss in float32 agrees with float64 to float precision', async (t) => {
  const r32 = clipLoss(Float32Array.from(a), Float32Array.from(b), n, d);
  t.ok(Math.abs(r32.loss - clipClosedForm(a, b, n, d, 0.1, 0.5)) < 1e-5);
});

t.test('losses validate their settings', async (t) => {
  t.throws(() => clipLoss(a, b, n, d, { temperature: 0 }), ConfigError);
  t.throws(() => clipLoss(a, b, n, d, { lambda: 1.5 }), { code: 'ERR_CONFIG', message: /lambda/ });
  t.throws(() => clipLoss(a, b, n, d, { removeFalseNegatives: true }), { code: 'ERR_CONFIG', message: /labels/ });
  t.throws(() => clipLoss(a, b.subarray(0, 9), n, d), ShapeError);
  t.throws(() => clipLoss(a.subarray(0, 3), b.subarray(0, 3), 1, 3), { code: 'ERR_SHAPE', message: /at least 2/ });
  t.throws(() => ntXentLoss(a, b, n, d, { temperature: -1 }), { code: 'ERR_CONFIG', message: /temperature/ });
});
