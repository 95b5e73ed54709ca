'use strict';
// What the PyTorch baseline reads of a cohort: the train split's rows of the
// image store, the train rows' preprocessed tabular values (exactly what
// pretrainCohort hands the native trainer: z-scores, category codes,
// missingness indicators) with their cardinalities, and the normalisation
// pretrain's 'auto' computes. Pure TypeScript of the library (no addon).
const fs = require('node:fs');
const path = require('node:path');
const { ROOT } = require('./common');

async function cohortInputs(ts, dir, tmp) {
  const cohort = await ts.loadCohort(dir);
  const prep = ts.fitPreprocessor(cohort);
  const rows = Int32Array.from(cohort.splits.train);
  const tab = prep.transform(cohort, rows);
  const { channelStats } = require(path.join(ROOT, 'dist', 'lib', 'image-stats.js'));
  const [n, c, h, w] = cohort.images.shape;
  const normalize = await channelStats({ npy: cohort.images.path }, { n, channels: c, height: h, width: w, dtype: cohort.images.dtype }, rows);
  const files = { rows: path.join(tmp, 'rows.i32'), tabular: path.join(tmp, 'tabular.f32') };
  fs.writeFileSync(files.rows, Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength));
  fs.writeFileSync(files.tabular, Buffer.from(tab.data.buffer, tab.data.byteOffset, tab.data.byteLength));
  return {
    cohort,
    images: cohort.images.path,
    imageOffset: cohort.images.offset,
    shape: cohort.images.shape,
    rows,
    tabular: tab.data,
    features: tab.shape[1],
    cardinalities: tab.cardinalities,
    normalize,
    files,
  };
}

module.exports = { cohortInputs };
