#!/usr/bin/env node
'use strict';
require('../dist/lib/cli/index.js').main(process.argv).catch((err) => {
  process.stderr.write(`tabsight: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
