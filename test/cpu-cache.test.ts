// The caching CPU allocator (native/common/caching_cpu_allocator.h): while
// the trainer runs, LibTorch's large CPU blocks are reused from step to step.
// Oracle: the same pretraining with the cache off (TABSIGHT_CPU_CACHE=0),
// which is LibTorch's default allocator; the weights must come out byte for
// byte the same, since an allocator may change where tensors live but never
// what is computed. The environment is read once per process, so each
// configuration runs in its own child process.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const repo = path.join(__dirname, '..');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-cpu-cache-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

// ResNet-18 (small stem) at 32 px, batch 16: the stem's output is 4 MiB and
// layer4's weights 9 MiB, so the step has blocks above the cache's 1 MiB
// threshold, and 2 epochs of 2 steps repeat every shape.
const child = `
const path = require('node:path');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const ts = require(${JSON.stringify(path.join(repo, 'dist', 'lib', 'index.js'))});
(async () => {
  const out = process.argv[1];
  let s = 5;
  const rand = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const images = Uint8Array.from({ length: 32 * 32 * 32 }, () => Math.floor(256 * rand()));
  const tabular = Float32Array.from({ length: 32 * 6 }, () => rand() - 0.5);
  await ts.pretrain({
    out, images: { data: images, shape: [32, 1, 32, 32] }, tabular: { data: tabular, shape: [32, 6] },
    batchSize: 16, epochs: 2, lr: 1e-3, warmupEpochs: 0, seed: 11, augment: { rate: 0.9 },
    model: { arch: 'resnet18', smallStem: true, tabularHidden: 64, tabularLayers: 2, projectionHidden: 64, projectionDim: 16 },
  });
  const during = ts._native().runtimeInfo().cpuCache;
  const hash = (f) => createHash('sha256').update(fs.readFileSync(path.join(out, f))).digest('hex');
  process.stdout.write(JSON.stringify({ cache: during, encoder: hash('image_encoder.safetensors') }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

interface CacheStats { enabled: boolean; activeScopes: number; hits: number; misses: number; liveBytes: number; cachedBytes: number; capBytes: number }
async function train(name: string, env: Record<string, string>): Promise<{ cache: CacheStats; encoder: string }> {
  const base = { ...process.env };
  delete base.TABSIGHT_CPU_CACHE;
  delete base.TABSIGHT_CPU_CACHE_MB;
  const { stdout } = await exec(process.execPath, ['-e', child, path.join(root, name)], { env: { ...base, ...env }, maxBuffer: 1 << 20 });
  return JSON.parse(stdout);
}

t.test('pretraining with the cache gives the weights of the default allocator, byte for byte', async (t) => {
  const off = await train('off', { TABSIGHT_CPU_CACHE: '0' });
  const on = await train('on', {});
  const capped = await train('capped', { TABSIGHT_CPU_CACHE_MB: '0' });

  t.equal(off.cache.enabled, false, 'TABSIGHT_CPU_CACHE=0 turns the cache off');
  t.equal(off.cache.hits + off.cache.misses, 0, 'and no block goes through it');

  t.equal(on.encoder, off.encoder, 'the image encoder is byte-identical with and without the cache');
  t.equal(capped.encoder, off.encoder, 'and with a cap of 0 MB');

  // 4 steps of the same shapes: after the first, the step's large blocks
  // come from the free lists.
  t.ok(on.cache.misses > 0, `first allocations go to the system (${on.cache.misses} misses)`);
  t.ok(on.cache.hits > 3 * on.cache.misses, `later steps reuse blocks (${on.cache.hits} hits)`);
  t.equal(on.cache.activeScopes, 0, 'no scope is left open after the run');
  t.equal(on.cache.cachedBytes, 0, 'the free lists are given back when the run ends');
  t.ok(on.cache.capBytes > 0, 'the default cap is a positive share of memory');

  t.equal(capped.cache.capBytes, 0, 'TABSIGHT_CPU_CACHE_MB=0 sets a cap of 0');
  t.equal(capped.cache.hits, 0, 'with a cap of 0 nothing is kept, so nothing is reused');
  t.ok(capped.cache.misses > 0, 'every large block goes to the system');
});

t.test('the hash comparison can fail: another seed gives other weights', async (t) => {
  const a = await train('seed-a', { TABSIGHT_CPU_CACHE: '0' });
  const other = child.replace('seed: 11', 'seed: 12');
  const { stdout } = await exec(process.execPath, ['-e', other, path.join(root, 'seed-b')], { env: { ...process.env, TABSIGHT_CPU_CACHE: '0' } });
  t.not(JSON.parse(stdout).encoder, a.encoder);
});
