#!/usr/bin/env node
'use strict';
// Prints LibTorch's build flags for binding.gyp, taken from the same CMake
// logic that CMakeLists.txt uses (cmake/TorchFlags.cmake), so that node-gyp
// and cmake-js never disagree about where LibTorch is.
//
//   node scripts/torch-flags.js includes|libs|defines|cflags|ldflags|json
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const buildDir = path.join(root, 'build', 'torch-probe');
const flagsFile = path.join(buildDir, 'torch-flags.json');

function probe() {
  const args = ['-S', path.join(root, 'cmake', 'probe'), '-B', buildDir];
  if (process.env.TORCH_DIR) args.push(`-DTORCH_DIR=${process.env.TORCH_DIR}`);
  execFileSync('cmake', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return JSON.parse(fs.readFileSync(flagsFile, 'utf8'));
}

const what = process.argv[2] || 'json';
const flags = probe();
const out = {
  includes: flags.includes,
  libs: flags.libs,
  defines: flags.defines,
  cflags: flags.options,
  ldflags: flags.rpath.map((dir) => `-Wl,-rpath,${dir}`),
  json: [JSON.stringify(flags)],
}[what];
if (!out) {
  process.stderr.write(`torch-flags: unknown request ${what}\n`);
  process.exit(2);
}
process.stdout.write(out.join(what === 'json' ? '' : '\n') + '\n');
