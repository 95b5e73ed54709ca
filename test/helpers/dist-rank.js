// One rank of a distributed test run (plain JS: it runs in a child process
// on the compiled library). argv[2] is a JSON spec { images, tabular?,
// labels?, options, timeoutSec? }; images and tabular are .npy files. The process group
// comes from torchrun's environment (distributed: 'env'), so without
// WORLD_SIZE this is the single-process reference. Prints one JSON line per
// step; exits 1 (130 when aborted) printing "CODE: message" on failure.
'use strict';
const path = require('node:path');
const lib = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'index.js'));

(async () => {
  const spec = JSON.parse(process.argv[2]);
  const options = { ...spec.options, images: { npy: spec.images }, distributed: 'env' };
  if (spec.tabular) {
    const t = await lib.readNpy(spec.tabular);
    options.tabular = { data: Float32Array.from(t.data), shape: t.shape };
  }
  if (spec.labels) options.labels = spec.labels;
  const env = lib.distributedFromEnv();
  if (env && spec.timeoutSec) options.distributed = { ...env, timeoutSec: spec.timeoutSec };
  await lib.pretrain(options, {
    onProgress: (p) => process.stdout.write(JSON.stringify({ step: p.step, epoch: p.epoch, loss: p.loss, epochDone: p.epochDone, top1: p.retrievalTop1 }) + '\n'),
  });
  process.stdout.write(JSON.stringify({ done: true }) + '\n');
})().catch((err) => {
  process.stderr.write(`${err.code ?? 'ERR'}: ${err.message}\n`);
  process.exit(err.code === 'ERR_ABORTED' ? 130 : 1);
});
