#!/usr/bin/env node
'use strict';
// Recomputes the study's paired comparisons with the paired t-test and
// Holm's correction (the statistics summarizeStudy uses since 2026-11-27)
// from the per-seed values in summary.txt, which the 2026-11-26 run printed
// with 3 decimals; the study's store was not kept. Run from the repository
// root after `npx tsc -p .`: node docs/results/cardiac-study-2026-11-26/restat.js
const fs = require('node:fs');
const path = require('node:path');
const { pairedTTest, holmAdjust } = require(path.join(__dirname, '..', '..', '..', 'dist', 'lib', 'eval'));

const text = fs.readFileSync(path.join(__dirname, 'summary.txt'), 'utf8');
const subsets = [];
let cur;
for (const line of text.split('\n')) {
  const h = /^## (\S+(?: k=\d+)?) \(seeds/.exec(line);
  if (h) subsets.push((cur = { name: h[1], tasks: {}, objective: NaN }));
  const m = /^ {2}(\w+): [-\d.]+ ± [-\d.]+ {2}\[([-\d., ]+)\]$/.exec(line);
  if (m && cur) cur.tasks[m[1]] = m[2].split(',').map(Number);
  const o = /^ {2}objective (-?[\d.]+) ±/.exec(line);
  if (o && cur) cur.objective = Number(o[1]);
}
const all = subsets.find((s) => s.name === 'all-features');
const tasks = Object.keys(all.tasks);
const sdOf = (v) => { const m = v.reduce((a, b) => a + b, 0) / v.length; return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)); };
const scale = Object.fromEntries(tasks.map((t) => [t, Math.max(sdOf(all.tasks[t]), 0.01)]));
const rows = subsets.filter((s) => s !== all).map((s) => {
  const perTask = Object.fromEntries(tasks.map((t) => [t, pairedTTest(s.tasks[t].map((v, i) => v - all.tasks[t][i]))]));
  for (const t of tasks) { const x = perTask[t]; x.pGreater = Number.isNaN(x.p) ? NaN : x.t > 0 ? x.p / 2 : 1 - x.p / 2; }
  const obj = s.tasks[tasks[0]].map((_, i) => tasks.reduce((acc, t) => acc + (s.tasks[t][i] - all.tasks[t][i]) / scale[t], 0) / tasks.length);
  // As summarizeStudy since the statistics review of 2026-11-27: the objective is descriptive (its scale comes
  // from the all-features runs it is compared with); "better on every task" is the intersection–union test of
  // one-sided t-tests (p = the largest), Holm over the subsets; the task columns are one Holm family.
  const ps = tasks.map((t) => perTask[t].pGreater);
  return { name: s.name, perTask, objective: obj.reduce((a, b) => a + b, 0) / obj.length, every: { p: ps.some(Number.isNaN) ? NaN : Math.max(...ps) }, storedObjective: s.objective };
});
const fam = (xs) => holmAdjust(xs.map((x) => x.p)).forEach((q, i) => { xs[i].pHolm = q; });
fam(rows.flatMap((r) => tasks.map((t) => r.perTask[t])));
fam(rows.map((r) => r.every));
const num = (v, d) => (Number.isNaN(v) ? '—' : v.toFixed(d));
const f = (x) => `${x.estimate >= 0 ? '+' : '−'}${Math.abs(x.estimate).toFixed(3)} [${x.lower.toFixed(3)}, ${x.upper.toFixed(3)}] p ${x.p.toFixed(3)}, Holm ${x.pHolm.toFixed(2)}`.replace(/-/g, '−');
console.log(`| subset | ${tasks.join(' | ')} | better on every task | objective |`);
console.log(`| --- | ${tasks.map(() => '---').join(' | ')} | --- | --- |`);
for (const r of rows) {
  console.log(`| ${r.name} | ${tasks.map((t) => f(r.perTask[t])).join(' | ')} | p ${num(r.every.p, 3)}, Holm ${num(r.every.pHolm, 2)} | ${(r.objective >= 0 ? '+' : '−') + Math.abs(r.objective).toFixed(2)} (stored mean ${r.storedObjective.toFixed(3)}) |`);
}
