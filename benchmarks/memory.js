#!/usr/bin/env node
/**
 * Question: does pretraining on a memory-mapped cohort keep its memory flat
 * as the cohort grows, apart from the pages of the mapped image store?
 *
 * For each N (1k, 4k, 16k subjects by default), a fresh child process runs
 * pretrainCohort on the synthetic cardiac cohort of N subjects at 64 px
 * (cached, see support/common.js; ResNet-18 with the demo's standard stem,
 * MMCL's widths, batch 64) for a fixed number of steps, then aborts (the
 * AbortSignal path: it writes a checkpoint and returns). The child reads its
 * own /proc/self/status (VmRSS, RssAnon, RssFile, RssShmem, VmHWM) and the
 * Rss of its mapping of images.npy (from /proc/self/smaps) every 100 ms and
 * after every step, and reports:
 *   vmhwm_mb              peak resident set (the kernel's high-water mark)
 *   peak_anon_mb          largest sampled RssAnon (heap: JS, LibTorch, Python-free)
 *   peak_file_mb          largest sampled RssFile (shared libraries + mapped store)
 *   peak_store_mb         largest sampled Rss of the images.npy mapping
 *   peak_rss_minus_store_mb  largest sampled VmRSS − store Rss
 *   before_train_mb       VmRSS after the addon is loaded, before pretrainCohort
 *   peak_js_heap_total_mb, peak_js_heap_used_mb, peak_js_external_mb
 *                         process.memoryUsage() peaks: the JavaScript side's share
 *                         (the cohort's columns are typed arrays, in "external")
 * "Flat" means peak_rss_minus_store_mb (and peak_anon_mb) do not grow with N
 * beyond what is O(N) by design: the tabular table N × F float32, the
 * cohort's compact columns (8 B per continuous, 4 B per categorical cell),
 * ids and label cells; tabular_mb gives the first. Identical runs at one N
 * differ by up to about 90 MB of peak RssAnon (allocator and GC timing), so
 * each N runs `reps` times (one fresh child each, the Ns taking turns), and
 * each N's line gives medians with their min–max; the growth line compares
 * the medians and prints the widest spread of one N's reps beside them.
 *
 *   node benchmarks/memory.js [--ns 1024,4096,16384] [--size 64] [--steps 8] [--batch 64] [--threads 2] [--reps 5]
 *   BENCH_QUICK=1: ns 160,320,640, steps 2, batch 16, reps 2.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const c = require('./support/common');
c.device('memory');

const MB = 1 / 1024; // /proc reports kB

function status() {
  const out = {};
  for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** kB resident of every mapping of `file` (0 when not mapped). */
function mappedRss(file) {
  let text;
  try {
    text = fs.readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return 0;
  }
  let total = 0;
  let inside = false;
  for (const line of text.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inside = line.endsWith(file);
    else if (inside && line.startsWith('Rss:')) total += Number(line.split(/\s+/)[1]);
  }
  return total;
}

async function child(spec) {
  const ts = c.library();
  ts._native(); // load the addon before the first sample
  const store = path.join(spec.cohort, 'images.npy');
  const peak = { anon: 0, file: 0, store: 0, minusStore: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  const sample = () => {
    const js = process.memoryUsage();
    peak.heapTotal = Math.max(peak.heapTotal, js.heapTotal / 1024);
    peak.heapUsed = Math.max(peak.heapUsed, js.heapUsed / 1024);
    peak.external = Math.max(peak.external, js.external / 1024);
    const s = status();
    const st = mappedRss(fs.realpathSync(store));
    peak.anon = Math.max(peak.anon, s.RssAnon ?? 0);
    peak.file = Math.max(peak.file, s.RssFile ?? 0);
    peak.store = Math.max(peak.store, st);
    peak.minusStore = Math.max(peak.minusStore, (s.VmRSS ?? 0) - st);
  };
  const before = status();
  sample();
  const timer = setInterval(sample, 100);
  const ac = new AbortController();
  let steps = 0;
  const t0 = c.now();
  try {
    await ts.pretrainCohort({
      cohort: spec.cohort, out: spec.out, epochs: 1, batchSize: spec.batch, warmupEpochs: 0,
      model: { arch: 'resnet18', smallStem: false, tabularHidden: 2048, tabularLayers: 2, projectionHidden: 2048, projectionDim: 128 },
    }, {
      signal: ac.signal,
      onProgress: () => { sample(); if (++steps >= spec.steps) ac.abort(); },
    });
  } catch (err) {
    if (!(err instanceof ts.AbortError)) throw err;
  } finally {
    clearInterval(timer);
  }
  sample();
  const end = status();
  const usage = process.resourceUsage();
  const config = JSON.parse(fs.readFileSync(path.join(spec.out, 'config.json'), 'utf8'));
  process.stdout.write(JSON.stringify({
    train_rows: config.data.trainRows, tabular_mb: (config.data.trainRows * config.data.tabularFeatures * 4) / 2 ** 20, steps, seconds: c.now() - t0, before_train_mb: before.VmRSS * MB, vmhwm_mb: end.VmHWM * MB, maxrss_mb: usage.maxRSS * MB,
    peak_anon_mb: peak.anon * MB, peak_file_mb: peak.file * MB, peak_store_mb: peak.store * MB, peak_rss_minus_store_mb: peak.minusStore * MB,
    peak_js_heap_total_mb: peak.heapTotal * MB, peak_js_heap_used_mb: peak.heapUsed * MB, peak_js_external_mb: peak.external * MB,
  }) + '\n');
}

function runChild(spec, threads) {
  return new Promise((resolve, reject) => {
    const kid = spawn(process.execPath, [__filename, '--child', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TABSIGHT_THREADS: String(threads) } });
    let out = '';
    kid.stdout.on('data', (d) => { out += d; });
    kid.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`memory child for ${spec.cohort} exited with ${code}`))));
  });
}

async function main() {
  const o = c.options({ ns: ['1024,4096,16384', '160,320,640'], size: [64, 64], steps: [8, 2], batch: [64, 16], threads: [2, 2], reps: [5, 2] });
  const ts = c.library();
  const ns = String(o.ns).split(',').map(Number);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-memory-'));
  try {
    const cohorts = [];
    for (const n of ns) cohorts.push(await c.cardiacCohort(ts, n, o.size));
    c.emit({ figure: 'machine', ...c.machine(), loadavg_start: c.loadavg() });
    c.emit({ figure: 'setup', ns, size: o.size, steps: o.steps, batch: o.batch, threads: o.threads, reps: o.reps, model: 'resnet18 standard stem, tabular 2048x2, heads 2048->128', cohort_seconds: cohorts.map((x) => x.seconds) });
    // Rep by rep, every N once (in turn, the order rotating), so that drift of the machine touches every N alike.
    const runs = ns.map(() => []);
    for (let rep = 0; rep < o.reps; rep++) {
      for (let j = 0; j < ns.length; j++) {
        const i = (j + rep) % ns.length;
        const dir = cohorts[i].dir;
        const storeMb = fs.statSync(path.join(dir, 'images.npy')).size / 2 ** 20;
        const run = path.join(tmp, `run-${ns[i]}-${rep}`);
        const r = await runChild({ cohort: dir, out: run, steps: o.steps, batch: o.batch }, o.threads);
        const line = { figure: `memory N=${ns[i]} rep ${rep + 1}`, n: ns[i], rep: rep + 1, store_mb: c.round(storeMb) };
        for (const [k, v] of Object.entries(r)) line[k] = typeof v === 'number' ? c.round(v) : v;
        c.emit(line);
        runs[i].push(line);
        fs.rmSync(run, { recursive: true, force: true });
      }
    }
    const keys = ['vmhwm_mb', 'peak_anon_mb', 'peak_store_mb', 'peak_rss_minus_store_mb'];
    const rows = ns.map((n, i) => {
      const row = { figure: `memory N=${n}`, n, reps: runs[i].length, store_mb: runs[i][0].store_mb, tabular_mb: runs[i][0].tabular_mb };
      for (const k of keys) {
        const v = runs[i].map((x) => x[k]);
        row[k] = c.round(c.median(v));
        row[`${k.replace(/_mb$/, '')}_range_mb`] = [c.round(Math.min(...v)), c.round(Math.max(...v))];
      }
      c.emit(row);
      return row;
    });
    const first = rows[0];
    const last = rows[rows.length - 1];
    // Growth of the medians, and the widest spread of one N's reps: growth within that spread is not growth.
    const spread = Math.max(...rows.map((r) => r.peak_rss_minus_store_range_mb[1] - r.peak_rss_minus_store_range_mb[0]));
    c.emit({
      figure: `growth from N=${first.n} to N=${last.n} (medians)`,
      store_mb: c.round(last.store_mb - first.store_mb), vmhwm_mb: c.round(last.vmhwm_mb - first.vmhwm_mb),
      peak_rss_minus_store_mb: c.round(last.peak_rss_minus_store_mb - first.peak_rss_minus_store_mb), peak_anon_mb: c.round(last.peak_anon_mb - first.peak_anon_mb),
      peak_store_mb: c.round(last.peak_store_mb - first.peak_store_mb), widest_rep_spread_rss_minus_store_mb: c.round(spread), loadavg_end: c.loadavg(),
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3])).catch((e) => { console.error(e); process.exit(1); });
} else {
  main().catch((e) => { console.error(e); process.exit(1); });
}
