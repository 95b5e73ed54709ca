#!/usr/bin/env node
'use strict';
// npm run bench [-- name ...]: runs benchmarks/<name>.js (all when none is
// named), each in its own process, after compiling the TypeScript.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const all = fs.readdirSync(__dirname).filter((f) => f.endsWith('.js') && f !== 'run.js').map((f) => f.slice(0, -3)).sort();
const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; available: ${all.join(', ')}`);
    process.exit(2);
  }
}
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  console.error(`# benchmark ${name}`);
  const r = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
