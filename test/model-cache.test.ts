// Attribution calls keep recently loaded models (native/attribution/
// loaded_models.h), keyed by the options and the file's identity. Oracle:
// the scores of a fresh load of the same weights under another path, which
// the cache has never seen. A checkpoint replaced by rename, or overwritten
// in place with other weights, must be read again.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pretrain } from '../lib/index';
import { scoreImages } from '../lib/explain/forward';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-model-cache-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const n = 4;
const S = 32;
const raw = new Uint8Array(n * 3 * S * S).map((_, i) => (i * 31 + (i >> 9) * 7) % 256);
const rows = Float32Array.from({ length: n * 3 }, (_, i) => Math.sin(i));
const images = { data: Float32Array.from(raw, (v) => v / 64 - 2), shape: [n, 3, S, S] };
const target = { kind: 'feature' as const, index: 3 };
const model = { arch: 'resnet18' as const, smallStem: true, tabularHidden: 16, tabularLayers: 1, projectionHidden: 16, projectionDim: 8 };

async function train(name: string, seed: number): Promise<string> {
  const out = path.join(dir, name);
  await pretrain({ out, images: { data: raw, shape: [n, 3, S, S] }, tabular: { data: rows, shape: [n, 3] }, epochs: 1, batchSize: 2, seed, model, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } });
  return out;
}
const same = (a: Float64Array, b: Float64Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const score = (run: string) => scoreImages(run, images, { target });

t.test('a run replaced or overwritten on disk is loaded again; an unchanged one gives the same scores', async (t) => {
  const a = await train('a', 1);
  const b = await train('b', 2);
  const sa = await score(a);
  const sb = await score(b);
  t.notOk(same(sa, sb), 'two seeds give different scores (the comparison can fail)');

  // A third run folder whose weights file changes under the same path
  // (scoreImages reads the run's image_encoder.safetensors for this target).
  const p = await train('p', 1);
  const file = 'image_encoder.safetensors';
  const ckpt = path.join(p, file);
  t.ok(same(await score(p), sa), 'the same seed gives the same scores as run a');
  t.ok(same(await score(p), sa), 'and again from the cache');

  // Overwritten in place: same inode, same size.
  fs.copyFileSync(path.join(b, file), ckpt);
  t.ok(same(await score(p), sb), 'after overwriting the weights in place with run b\'s (same inode, same size), the scores are run b\'s');

  // Replaced by rename, as tabsight writes checkpoints.
  fs.copyFileSync(path.join(a, file), ckpt + '.tmp');
  fs.renameSync(ckpt + '.tmp', ckpt);
  t.ok(same(await score(p), sa), 'after renaming run a\'s weights over them, the scores are run a\'s again');
});
