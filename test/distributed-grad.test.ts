// The collective pieces of data-parallel training against one process on
// the global batch, in float64: the gathered contrastive losses (gradients
// flowing back to each rank's own rows) and synchronised batch norm.
import t from 'tap';
import { _native } from '../lib/index';
import { freePort } from '../lib/cli/launch';
import { startRank, nativeRankScript } from './helpers/dist';

const native = _native();

function random(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 * 2 - 1;
  });
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** Runs `world` ranks of the native test entry point; spec(rank) gives each its slice. */
async function ranks(world: number, spec: (rank: number, dist: object) => object): Promise<Record<string, number[] | number>[]> {
  const port = await freePort();
  const handles = Array.from({ length: world }, (_, rank) => {
    const dist = { rank, worldSize: world, localRank: rank, masterAddr: '127.0.0.1', masterPort: port, timeoutSec: 30, backend: 'gloo' };
    return startRank(nativeRankScript, [JSON.stringify(spec(rank, dist))], rank, 0, port);
  });
  const results = await Promise.all(handles.map((h) => h.done));
  return results.map((r) => {
    if (r.code !== 0) throw new Error(`rank ${r.rank}: ${r.stderr}`);
    return r.lines[0] as Record<string, number[] | number>;
  });
}

const cases = [
  { kind: 'clip', world: 2, removeFalseNegatives: false },
  { kind: 'clip', world: 3, removeFalseNegatives: true },
  { kind: 'ntxent', world: 2, removeFalseNegatives: false },
  { kind: 'ntxent', world: 2, removeFalseNegatives: true },
] as const;

for (const c of cases) {
  t.test(`all-gather with local gradients: ${c.kind} over ${c.world} ranks${c.removeFalseNegatives ? ' with removeFalseNegatives' : ''} gives the single-process loss and gradient of the global batch`, async (t) => {
    const b = 4;
    const d = 5;
    const g = b * c.world;
    const a = random(g * d, 11);
    const z = random(g * d, 12);
    const labels = Array.from({ length: g }, (_, i) => (i * 7) % 3);
    const options = { kind: c.kind, temperature: 0.1, lambda: 0.3, removeFalseNegatives: c.removeFalseNegatives };
    const ref = c.kind === 'clip'
      ? native.clipLoss(Float64Array.from(a), Float64Array.from(z), [g, d], options, c.removeFalseNegatives ? Int32Array.from(labels) : undefined)
      : native.ntXentLoss(Float64Array.from(a), Float64Array.from(z), [g, d], options, c.removeFalseNegatives ? Int32Array.from(labels) : undefined);
    const out = await ranks(c.world, (rank, dist) => ({
      fn: 'gatherLoss', dist, shape: [b, d], options,
      a: a.slice(rank * b * d, (rank + 1) * b * d), b: z.slice(rank * b * d, (rank + 1) * b * d),
      labels: c.removeFalseNegatives ? labels : undefined,
    }));
    for (let r = 0; r < c.world; r++) {
      t.ok(Math.abs((out[r].loss as number) - ref.loss) < 1e-12, `rank ${r}: loss ${out[r].loss} = ${ref.loss}`);
      const slice = (arr: Float64Array) => Array.from(arr.subarray(r * b * d, (r + 1) * b * d));
      t.ok(maxDiff(out[r].gradA as number[], slice(ref.gradA)) < 1e-12, `rank ${r}: the gradient for its first-input rows is the global loss's (${maxDiff(out[r].gradA as number[], slice(ref.gradA)).toExponential(1)})`);
      t.ok(maxDiff(out[r].gradB as number[], slice(ref.gradB)) < 1e-12, `rank ${r}: the same for its second-input rows`);
    }
  });
}

t.test('SyncBatchNorm over 2 ranks equals BatchNorm on the global batch: output, input gradient, summed weight and bias gradients, running statistics', async (t) => {
  const world = 2;
  const shape = [3, 4, 2, 3]; // per rank: N=3, C=4, 2×3
  const per = shape.reduce((x, y) => x * y, 1);
  const globalShape = [shape[0] * world, ...shape.slice(1)];
  // Channel means far from zero and uneven scales, to exercise E[x²] − mean².
  const x = random(per * world, 21).map((v, i) => 3 * v + 5 * (Math.floor(i / 6) % 4));
  const dy = random(per * world, 22);
  const weight = [0.5, 1.5, -1, 2];
  const bias = [0.1, -0.2, 0.3, 0];
  const args = { momentum: 0.1, eps: 1e-5 };
  const ref = await native.distTestSyncBatchNorm(null, Float64Array.from(x), globalShape, Float64Array.from(weight), Float64Array.from(bias), Float64Array.from(dy), args.momentum, args.eps);
  const out = await ranks(world, (rank, dist) => ({
    fn: 'syncBatchNorm', dist, shape, weight, bias, ...args,
    x: x.slice(rank * per, (rank + 1) * per), dy: dy.slice(rank * per, (rank + 1) * per),
  }));
  for (let r = 0; r < world; r++) {
    const slice = (arr: Float64Array) => Array.from(arr.subarray(r * per, (r + 1) * per));
    t.ok(maxDiff(out[r].y as number[], slice(ref.y)) < 1e-10, `rank ${r}: output (${maxDiff(out[r].y as number[], slice(ref.y)).toExponential(1)})`);
    t.ok(maxDiff(out[r].dx as number[], slice(ref.dx)) < 1e-10, `rank ${r}: input gradient (${maxDiff(out[r].dx as number[], slice(ref.dx)).toExponential(1)})`);
    t.ok(maxDiff(out[r].runningMean as number[], ref.runningMean) < 1e-12, `rank ${r}: running mean`);
    t.ok(maxDiff(out[r].runningVar as number[], ref.runningVar) < 1e-10, `rank ${r}: running variance (unbiased, global)`);
  }
  const sum = (k: string) => (out[0][k] as number[]).map((v, i) => v + (out[1][k] as number[])[i]);
  t.ok(maxDiff(sum('dweight'), ref.dweight) < 1e-10, 'weight gradients summed over ranks');
  t.ok(maxDiff(sum('dbias'), ref.dbias) < 1e-10, 'bias gradients summed over ranks');
});
