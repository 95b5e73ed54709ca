// CKA (Kornblith et al. 2019): identities, invariances, the closed forms in
// float64 (feature space vs Gram matrices, and a numpy oracle when
// /usr/bin/python3 has numpy), a non-invariance, and shape errors.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { linearCka, rbfCka, cka } from '../lib/explain';
import { ShapeError } from '../lib/index';

type M = { data: Float64Array; shape: [number, number] };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

function randn(n: number, d: number, seed: number): M {
  const r = rng(seed);
  return { data: Float64Array.from({ length: n * d }, () => gauss(r)), shape: [n, d] };
}

function matmul(a: M, b: M): M {
  const [n, k] = a.shape;
  const m = b.shape[1];
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) for (let j = 0; j < m; j++) out[i * m + j] += a.data[i * k + p] * b.data[p * m + j];
  return { data: out, shape: [n, m] };
}

/** A random orthogonal D×D matrix (Gram–Schmidt on a Gaussian matrix). */
function rotation(d: number, seed: number): M {
  const g = randn(d, d, seed).data;
  const q: number[][] = [];
  for (let c = 0; c < d; c++) {
    const v = Array.from({ length: d }, (_, i) => g[i * d + c]);
    for (const u of q) {
      const p = v.reduce((s, x, i) => s + x * u[i], 0);
      for (let i = 0; i < d; i++) v[i] -= p * u[i];
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  return { data: Float64Array.from({ length: d * d }, (_, k) => q[k % d][Math.floor(k / d)]), shape: [d, d] };
}

const scale = (a: M, f: (j: number) => number): M => ({ data: a.data.map((v, k) => v * f(k % a.shape[1])), shape: a.shape });
const noisy = (a: M, eps: number, seed: number): M => {
  const r = rng(seed);
  return { data: a.data.map((v) => v + eps * gauss(r)), shape: a.shape };
};

/** Independent float64 closed forms, written out naively. */
function centred(a: M): number[][] {
  const [n, d] = a.shape;
  const rows = Array.from({ length: n }, (_, i) => Array.from(a.data.subarray(i * d, (i + 1) * d)));
  for (let j = 0; j < d; j++) {
    const mean = rows.reduce((s, r) => s + r[j], 0) / n;
    for (const r of rows) r[j] -= mean;
  }
  return rows;
}
function featureForm(x: M, y: M): number {
  const X = centred(x);
  const Y = centred(y);
  const fro2 = (A: number[][], B: number[][]) => {
    let s = 0;
    for (let p = 0; p < A[0].length; p++) {
      for (let q = 0; q < B[0].length; q++) {
        let v = 0;
        for (let i = 0; i < A.length; i++) v += A[i][p] * B[i][q];
        s += v * v;
      }
    }
    return s;
  };
  return fro2(Y, X) / (Math.sqrt(fro2(X, X)) * Math.sqrt(fro2(Y, Y)));
}
function hsicForm(K: number[][], L: number[][]): number {
  // HSIC ∝ tr(K H L H), H = I − 11ᵀ/n, formed explicitly.
  const n = K.length;
  const H = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0) - 1 / n));
  const mm = (A: number[][], B: number[][]) => A.map((r) => B[0].map((_, j) => r.reduce((s, v, k) => s + v * B[k][j], 0)));
  const tr = (A: number[][]) => A.reduce((s, r, i) => s + r[i], 0);
  const h = (A: number[][], B: number[][]) => tr(mm(mm(mm(A, H), B), H));
  return h(K, L) / Math.sqrt(h(K, K) * h(L, L));
}
function rows(a: M): number[][] {
  const [n, d] = a.shape;
  return Array.from({ length: n }, (_, i) => Array.from(a.data.subarray(i * d, (i + 1) * d)));
}
function linearGram(a: M): number[][] {
  const r = rows(a);
  return r.map((u) => r.map((v) => u.reduce((s, x, k) => s + x * v[k], 0)));
}
function rbfGram(a: M, threshold: number): number[][] {
  const r = rows(a);
  const sq = r.map((u) => r.map((v) => u.reduce((s, x, k) => s + (x - v[k]) ** 2, 0)));
  const all = sq.flat().sort((p, q) => p - q);
  const med = all.length % 2 ? all[(all.length - 1) / 2] : (all[all.length / 2 - 1] + all[all.length / 2]) / 2;
  return sq.map((row) => row.map((v) => Math.exp(-v / (2 * threshold * threshold * med))));
}

const close = (t: { ok: (v: boolean, msg: string) => unknown }, a: number, b: number, tol: number, msg: string) => t.ok(Math.abs(a - b) <= tol, `${msg}: ${a} vs ${b}`);

t.test('1 for identical inputs, in float32 and float64', async (t) => {
  const x = randn(40, 12, 1);
  close(t, linearCka(x, x), 1, 1e-12, 'linear, float64');
  close(t, rbfCka(x, x), 1, 1e-12, 'rbf, float64');
  const f = { data: Float32Array.from(x.data), shape: x.shape };
  close(t, linearCka(f, f), 1, 1e-12, 'linear, float32');
  close(t, rbfCka(f, f, { threshold: 1 }), 1, 1e-12, 'rbf, float32, threshold 1');
  const wide = randn(6, 30, 2);
  close(t, linearCka(wide, wide), 1, 1e-12, 'linear, N < D (Gram path)');
});

t.test('invariant to orthogonal transforms and isotropic scaling; D may differ', async (t) => {
  for (const [n, d] of [[50, 8], [10, 24]] as const) {
    const x = randn(n, d, 3 + d);
    const y = noisy(matmul(x, randn(d, 5, 7)), 0.5, 8); // another representation, D = 5
    const xr = matmul(x, rotation(d, 11));
    const xs = scale(x, () => 3.7);
    const base = linearCka(x, y);
    t.ok(base > 0.05 && base < 0.999, `linear CKA of related representations lies strictly inside (0, 1): ${base}`);
    close(t, linearCka(xr, y), base, 1e-10, `linear, rotation (N=${n}, D=${d})`);
    close(t, linearCka(xs, y), base, 1e-10, `linear, scaling (N=${n}, D=${d})`);
    close(t, linearCka(y, x), base, 1e-12, `linear, symmetric (N=${n}, D=${d})`);
    const rb = rbfCka(x, y);
    close(t, rbfCka(xr, y), rb, 1e-10, `rbf, rotation (N=${n}, D=${d})`);
    close(t, rbfCka(xs, y), rb, 1e-10, `rbf, scaling (N=${n}, D=${d})`);
    const shifted = { data: x.data.map((v, k) => v + (k % d)), shape: x.shape } as M;
    close(t, linearCka(shifted, y), base, 1e-10, 'linear, translation');
  }
});

t.test('equals the closed forms computed independently in float64', async (t) => {
  for (const [n, dx, dy, seed] of [[12, 3, 5, 21], [7, 9, 4, 22], [9, 2, 2, 23]] as const) {
    const x = randn(n, dx, seed);
    const y = noisy(matmul(x, randn(dx, dy, seed + 100)), 1, seed + 200);
    const feature = featureForm(x, y);
    const gramForm = hsicForm(linearGram(x), linearGram(y));
    close(t, feature, gramForm, 1e-12, `the two closed forms agree (N=${n}, ${dx}×${dy})`);
    close(t, linearCka(x, y), feature, 1e-12, `linearCka (N=${n}, ${dx}×${dy})`);
    for (const threshold of [0.5, 1, 2]) {
      close(t, rbfCka(x, y, { threshold }), hsicForm(rbfGram(x, threshold), rbfGram(y, threshold)), 1e-12, `rbfCka, threshold ${threshold}`);
    }
    close(t, cka(x, y, { kernel: 'rbf' }), rbfCka(x, y), 0, 'cka({ kernel: rbf }) defaults to threshold 0.5');
  }
});

t.test('agrees with a numpy oracle (Kornblith et al.\'s reference code)', async (t) => {
  let ok = true;
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' });
  } catch {
    ok = false;
  }
  if (!ok) return t.skip('no /usr/bin/python3 with numpy');
  const x = randn(15, 6, 31);
  const y = noisy(matmul(x, randn(6, 4, 32)), 0.8, 33);
  const script = `
import json, sys, numpy as np
d = json.load(sys.stdin)
x = np.array(d['x']).reshape(d['xs']); y = np.array(d['y']).reshape(d['ys'])
def gram_linear(x): return x.dot(x.T)
def gram_rbf(x, threshold=1.0):
    dp = x.dot(x.T); sq = np.diag(dp)
    sd = -2 * dp + sq[:, None] + sq[None, :]
    return np.exp(-sd / (2 * threshold ** 2 * np.median(sd)))
def center(g):
    m = g.mean(0); m = m - m.mean() / 2
    return g - m[:, None] - m[None, :]
def cka(g1, g2):
    g1 = center(g1); g2 = center(g2)
    return float(g1.ravel().dot(g2.ravel()) / (np.linalg.norm(g1) * np.linalg.norm(g2)))
print(json.dumps({'linear': cka(gram_linear(x), gram_linear(y)), 'rbf05': cka(gram_rbf(x, 0.5), gram_rbf(y, 0.5)), 'rbf1': cka(gram_rbf(x, 1.0), gram_rbf(y, 1.0))}))
`;
  const res = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify({ x: [...x.data], xs: x.shape, y: [...y.data], ys: y.shape }) }).toString());
  close(t, linearCka(x, y), res.linear, 1e-12, 'linear');
  close(t, rbfCka(x, y), res.rbf05, 1e-12, 'rbf, threshold 0.5');
  close(t, rbfCka(x, y, { threshold: 1 }), res.rbf1, 1e-12, 'rbf, threshold 1');
});

t.test('linear CKA is not invariant to non-isotropic scaling', async (t) => {
  const x = randn(60, 6, 41);
  const y = noisy(matmul(x, randn(6, 6, 42)), 0.3, 43);
  const base = linearCka(x, y);
  const stretched = scale(x, (j) => (j === 0 ? 20 : 1));
  const changed = linearCka(stretched, y);
  t.ok(Math.abs(changed - base) > 0.05, `stretching one axis ×20 changes linear CKA: ${base.toFixed(4)} → ${changed.toFixed(4)}`);
  close(t, featureForm(stretched, y), changed, 1e-12, 'and the closed form agrees on the stretched input');
});

t.test('bad shapes are ShapeErrors; a constant representation gives NaN', async (t) => {
  const x = randn(10, 3, 51);
  t.throws(() => linearCka(x, randn(9, 3, 52)), ShapeError, 'different N');
  t.throws(() => linearCka(x, randn(9, 3, 52)), { code: 'ERR_SHAPE', message: /same number of rows/ });
  t.throws(() => rbfCka(x, { data: new Float64Array(29), shape: [10, 3] }), { code: 'ERR_SHAPE', message: /30 values for y\.data/ });
  t.throws(() => linearCka({ data: x.data, shape: [30] } as never, x), { code: 'ERR_SHAPE', message: /x\.shape \[N, D\]/ });
  t.throws(() => linearCka({ data: Array.from(x.data), shape: [10, 3] } as never, x), { code: 'ERR_SHAPE', message: /Float32Array or Float64Array/ });
  t.throws(() => linearCka(randn(1, 3, 53), randn(1, 2, 54)), { code: 'ERR_SHAPE', message: /at least 2 rows/ });
  t.throws(() => rbfCka(x, x, { threshold: 0 }), { code: 'ERR_CONFIG' });
  t.throws(() => cka(x, x, { kernel: 'poly' as never }), { code: 'ERR_CONFIG', message: /kernel/ });
  const constant = { data: new Float64Array(30).fill(2), shape: [10, 3] as [number, number] };
  t.ok(Number.isNaN(linearCka(constant, x)), 'linear: NaN');
  t.ok(Number.isNaN(rbfCka(constant, x)), 'rbf: NaN');
});
