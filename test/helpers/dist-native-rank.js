// One rank of a native collective test (plain JS, child process): calls the
// addon's distTest* entry point named in the spec with this rank's slice
// and prints the result as JSON (typed arrays as plain arrays).
'use strict';
const path = require('node:path');
const { native } = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'binding.js'));

(async () => {
  const spec = JSON.parse(process.argv[2]);
  const f64 = (a) => Float64Array.from(a);
  let out;
  if (spec.fn === 'gatherLoss') {
    out = await native().distTestGatherLoss(spec.dist, f64(spec.a), f64(spec.b), spec.shape, spec.options, spec.labels ? Int32Array.from(spec.labels) : undefined);
  } else {
    out = await native().distTestSyncBatchNorm(spec.dist, f64(spec.x), spec.shape, f64(spec.weight), f64(spec.bias), f64(spec.dy), spec.momentum, spec.eps);
  }
  const plain = {};
  for (const [k, v] of Object.entries(out)) plain[k] = ArrayBuffer.isView(v) ? Array.from(v) : v;
  process.stdout.write(JSON.stringify(plain) + '\n');
})().catch((err) => {
  process.stderr.write(`${err.code ?? 'ERR'}: ${err.message}\n`);
  process.exit(1);
});
