#!/usr/bin/env node
'use strict';
// prebuildify always spawns node-gyp. This stands in for it: whatever
// arguments node-gyp would get, run cmake-js, whose output prebuildify then
// picks up from build/Release/.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const cmakeJs = path.join(__dirname, '..', 'node_modules', '.bin', 'cmake-js');
const r = spawnSync(cmakeJs, ['rebuild'], { stdio: 'inherit', cwd: path.join(__dirname, '..') });
process.exit(r.status === null ? 1 : r.status);
