import t from 'tap';
import * as path from 'node:path';
import {
  conditionNumber,
  correlationClusters,
  pearsonMatrix,
  spearmanMatrix,
  varianceInflationFactors,
  type Linkage,
} from '../lib/features/index';
import { normalStream } from '../lib/features/mi';
import { ConfigError, DataError, ShapeError } from '../lib/errors';
import { runPythonOracle } from './helpers/python-oracle';

const ORACLE = path.join(__dirname, 'fixtures', 'mi_oracle.py');

/** Runs the committed numpy/scipy oracle; null when python3/scipy are missing (exit 3). */
function runOracle(cases: object[]): { results: Record<string, any> } | null {
  return runPythonOracle(ORACLE, cases) as { results: Record<string, any> } | null;
}

const vec = (n: number, f: (i: number) => number): Float64Array => Float64Array.from({ length: n }, (_, i) => f(i));
const num = (v: number | string): number => (typeof v === 'string' ? Number(v) : v);

function errorOf(fn: () => unknown): any {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

/** Same partition, whatever the label numbers. */
function samePartition(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a.length; j++) if ((a[i] === a[j]) !== (b[i] === b[j])) return false;
  return true;
}

// Random data with correlated columns and one column with many ties.
const g = normalStream(99);
const n = 120;
const x0 = vec(n, () => g());
const x2 = vec(n, () => g());
const randomX = [x0, x0.map((v) => v + 0.5 * g()), x2, x2.map((v) => Math.round(v * 2) / 2), x0.map((v, i) => v - x2[i] + 0.3 * g()), vec(n, () => g())];

// Features in blocks: {0,1,2}, {3,4,5}, {6,7}, {8}.
const a = vec(200, () => g());
const b = vec(200, () => g());
const c = vec(200, () => g());
const blockX = [
  a,
  a.map((v) => v + 0.3 * g()),
  a.map((v) => -v + 0.4 * g()),
  b,
  b.map((v) => Math.exp(v) + 0.2 * g()),
  b.map((v) => -v + 0.5 * g()),
  c,
  c.map((v) => v + 0.8 * g()),
  vec(200, () => g()),
];
const LINKAGES: Linkage[] = ['ward', 'average', 'complete'];
const toArr = (cols: Float64Array[]): number[][] => cols.map((col) => Array.from(col));

const oracle = runOracle([
  { id: 'random', kind: 'redundancy', X: toArr(randomX), threshold: 0.5, linkages: LINKAGES },
  { id: 'blocks', kind: 'redundancy', X: toArr(blockX), threshold: 0.5, linkages: LINKAGES },
  { id: 'cancer', kind: 'redundancy', dataset: 'breast_cancer', threshold: 1, linkages: LINKAGES },
  { id: 'cancer03', kind: 'redundancy', dataset: 'breast_cancer', threshold: 0.3, linkages: LINKAGES },
]);
const skipOracle = oracle ? false : 'python3 with numpy/scipy/scikit-learn not available';

// Zero-mean orthogonal ±1 columns (rows of a Hadamard matrix), shifted to show the intercept matters.
const h1 = [1, -1, 1, -1, 1, -1, 1, -1];
const h2 = [1, 1, -1, -1, 1, 1, -1, -1];
const h3 = [1, -1, -1, 1, 1, -1, -1, 1];
const h4 = [1, 1, 1, 1, -1, -1, -1, -1];
const shift = (v: number[], s: number): number[] => v.map((x) => x + s);

t.test('pearsonMatrix and spearmanMatrix agree with numpy.corrcoef and scipy.stats.spearmanr', { skip: skipOracle }, async (t) => {
  for (const [id, X] of [['random', randomX], ['blocks', blockX]] as const) {
    const res = oracle!.results[id];
    for (const [name, ours, ref] of [['pearson', pearsonMatrix(X), res.pearson], ['spearman', spearmanMatrix(X), res.spearman]] as const) {
      let worst = 0;
      ours.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - num(ref[i][j]))))));
      t.ok(worst < 1e-12, `${id} ${name}: max |Δ| = ${worst}`);
    }
  }
});

t.test('spearmanMatrix uses average ranks for ties; a constant column gives NaN', async (t) => {
  const s = spearmanMatrix([[1, 2, 2, 3], [10, 20, 20, 30], [4, 3, 2, 1]]);
  t.equal(s[0][1], 1);
  t.ok(Math.abs(s[0][2] + 0.9486832980505138) < 1e-15, `${s[0][2]}`);
  const p = pearsonMatrix([[1, 2, 3], [5, 5, 5]]);
  t.ok(Number.isNaN(p[0][1]) && Number.isNaN(p[1][1]) && p[0][0] === 1);
});

t.test('varianceInflationFactors: 1 for orthogonal columns, 5 for R² = 0.8, Infinity for exact collinearity', async (t) => {
  const ones = varianceInflationFactors([shift(h1, 5), shift(h2, -3), shift(h3, 100), h4]);
  ones.forEach((v, j) => t.ok(Math.abs(v - 1) < 1e-9, `orthogonal column ${j}: ${v}`));
  // x = 2·h1 + h3: its fit on (h1, h2) explains 4 of its 5 units of variance, R² = 0.8.
  const five = varianceInflationFactors([shift(h1, 1), h2, h1.map((v, i) => 2 * v + h3[i] + 7)]);
  t.ok(Math.abs(five[2] - 5) < 1e-9, `R² = 0.8 column: ${five[2]}`);
  t.ok(Math.abs(five[0] - 5) < 1e-9, `and symmetrically h1: ${five[0]}`);
  t.ok(Math.abs(five[1] - 1) < 1e-9, `h2 stays orthogonal: ${five[1]}`);
  const u = vec(50, () => g());
  const w = vec(50, () => g());
  const inf = varianceInflationFactors([u, w, u.map((v, i) => v - 2 * w[i] + 3), vec(50, () => g())]);
  t.same(Array.from(inf.slice(0, 3)), [Infinity, Infinity, Infinity]);
  t.ok(Number.isFinite(inf[3]) && inf[3] < 2, `independent column: ${inf[3]}`);
  const withConstant = varianceInflationFactors([u, new Array(50).fill(4), w]);
  t.ok(Number.isNaN(withConstant[1]), 'a constant column gets NaN');
  t.ok(Number.isFinite(withConstant[0]) && Number.isFinite(withConstant[2]), 'and leaves the others finite');
});

t.test('varianceInflationFactors agree with an intercept-included numpy lstsq oracle', { skip: skipOracle }, async (t) => {
  const cancerX: number[][] = oracle!.results.cancer.X;
  for (const [id, X] of [['random', randomX], ['blocks', blockX], ['cancer', cancerX]] as const) {
    const ref: number[] = oracle!.results[id].vif.map(num);
    varianceInflationFactors(X).forEach((v, j) => t.ok(Math.abs(v - ref[j]) < 1e-9 * ref[j], `${id} VIF[${j}] ${v} vs ${ref[j]}`));
  }
});

t.test('conditionNumber: 1 for orthogonal columns, Infinity for collinear ones, numpy.linalg.cond otherwise', async (t) => {
  t.ok(Math.abs(conditionNumber([shift(h1, 2), h2, h3, shift(h4, -1)]) - 1) < 1e-12);
  const u = vec(40, () => g());
  t.equal(conditionNumber([u, u.map((v) => 3 * v - 1), vec(40, () => g())]), Infinity);
  t.equal(conditionNumber([[1, 2, 3], [3, 1, 2], [2, 2, 1], [0, 1, 0]]), Infinity, 'n − 1 < p');
  const e = errorOf(() => conditionNumber([u, new Array(40).fill(1)]));
  t.ok(e instanceof DataError && /X\[1\] is constant/.test(e.message), e.message);
  if (!oracle) return;
  for (const [id, X] of [['random', randomX], ['blocks', blockX], ['cancer', oracle.results.cancer.X as number[][]]] as const) {
    const ref = oracle.results[id].cond;
    const ours = conditionNumber(X);
    t.ok(Math.abs(ours - ref) < 1e-9 * ref, `${id}: ${ours} vs numpy ${ref}`);
  }
});

t.test('correlationClusters matches scipy linkage + fcluster(criterion="distance")', { skip: skipOracle }, async (t) => {
  const cancerX: number[][] = oracle!.results.cancer.X;
  const cases = [['random', randomX, 0.5], ['blocks', blockX, 0.5], ['cancer', cancerX, 1], ['cancer03', cancerX, 0.3]] as const;
  for (const [id, X, threshold] of cases) {
    for (const linkage of LINKAGES) {
      const ref = oracle!.results[id].clusters[linkage];
      const ours = correlationClusters(X as ArrayLike<number>[], { threshold, linkage });
      t.ok(samePartition(ours.labels, ref.labels), `${id}/${linkage}: ${ours.clusters.length} clusters, labels ${Array.from(ours.labels)} vs ${ref.labels}`);
      let worst = 0;
      let sameIds = true;
      ours.linkage.forEach((row, s) => {
        worst = Math.max(worst, Math.abs(row[2] - ref.Z[s][2]));
        sameIds &&= row[0] === ref.Z[s][0] && row[1] === ref.Z[s][1] && row[3] === ref.Z[s][3];
      });
      t.ok(worst < 1e-12 && sameIds, `${id}/${linkage}: same merges, max height Δ ${worst}`);
    }
  }
  const blocks = correlationClusters(blockX, { threshold: 0.5, linkage: 'average' });
  t.same(blocks.clusters, [[0, 1, 2], [3, 4, 5], [6, 7], [8]]);
});

t.test('correlationClusters picks representatives by relevance, else by mean |ρ| within the cluster', async (t) => {
  const base = correlationClusters(blockX, { threshold: 0.5, linkage: 'average' });
  base.clusters.forEach((members, k) => {
    const rho = spearmanMatrix(blockX);
    const score = (j: number): number => (members.length === 1 ? 0 : members.filter((m) => m !== j).reduce((s, m) => s + Math.abs(rho[j][m]), 0));
    const best = members.reduce((x, j) => (score(j) > score(x) ? j : x), members[0]);
    t.equal(base.representatives[k], best, `cluster ${k}`);
  });
  const relevance = [0.1, 0.2, 0.9, 0.5, 0.4, 0.3, 0, 0.05, 1];
  const byRelevance = correlationClusters(blockX, { threshold: 0.5, linkage: 'average', relevance });
  t.same(byRelevance.representatives, [2, 3, 7, 8]);
});

t.test('redundancy functions reject bad inputs with errors naming the argument', async (t) => {
  let e = errorOf(() => pearsonMatrix([[1, 2, 3], [1, 2]]));
  t.ok(e instanceof ShapeError && /X\[1\] has length 2/.test(e.message), e.message);
  e = errorOf(() => spearmanMatrix([[1, 2, 3], [1, NaN, 2]]));
  t.ok(e instanceof DataError && /X\[1\]\[1\] is NaN/.test(e.message), e.message);
  e = errorOf(() => varianceInflationFactors([[1, 2, 3], [4, 5, 6, 7]]));
  t.ok(e instanceof ShapeError && /X\[1\]/.test(e.message), e.message);
  e = errorOf(() => correlationClusters(blockX, {} as never));
  t.ok(e instanceof ConfigError && /threshold/.test(e.message), e.message);
  e = errorOf(() => correlationClusters(blockX, { threshold: 0.5, linkage: 'single' as never }));
  t.ok(e instanceof ConfigError && /for linkage/.test(e.message), e.message);
  e = errorOf(() => correlationClusters(blockX, { threshold: 0.5, relevance: [1, 2] }));
  t.ok(e instanceof ShapeError && /relevance has length 2 but X has 9 columns/.test(e.message), e.message);
  e = errorOf(() => correlationClusters([[1, 2, 3], [2, 2, 2]], { threshold: 0.5 }));
  t.ok(e instanceof DataError && /X\[1\] is constant/.test(e.message), e.message);
});
