import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { _native, runtimeInfo } from '../lib/index';
import { openBlasCoreFor } from '../lib/binding';
import { ConfigError, callNative } from '../lib/errors';

t.test('runtime#threads is set from the core count on load', async (t) => {
  const info = _native().runtimeInfo();
  const expected = process.env.TABSIGHT_THREADS ? Number(process.env.TABSIGHT_THREADS) : os.availableParallelism();
  t.equal(info.threads, expected);
  t.match(info.torchVersion, /^\d+\.\d+/);
});

t.test('runtime#runtimeInfo is exported and `tabsight info` prints its BLAS, Winograd and cache fields', async (t) => {
  const info = runtimeInfo();
  const raw = _native().runtimeInfo();
  t.same([info.torchVersion, info.threads, info.blasCore, info.winograd.available], [raw.torchVersion, raw.threads, raw.blasCore, raw.winograd.available]);
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'tabsight.js'), 'info'], { encoding: 'utf8', env: { ...process.env, TABSIGHT_WINOGRAD: '0' } });
  t.equal(r.status, 0, r.stderr);
  const printed = JSON.parse(r.stdout);
  t.equal(printed.torch, info.torchVersion);
  t.equal(printed.blasCore, info.blasCore);
  t.same(printed.winograd.available, info.winograd.available);
  t.equal(printed.winograd.enabled, false, 'TABSIGHT_WINOGRAD=0 shows as disabled');
  t.equal(printed.cpuCache.enabled, info.cpuCache.enabled);
});

t.test('runtime#setThreads rejects a non-positive count with ERR_CONFIG', async (t) => {
  t.throws(() => callNative(() => _native().setThreads(0)), ConfigError);
  const err = (() => { try { callNative(() => _native().setThreads(-3)); } catch (e) { return e; } })() as ConfigError;
  t.equal(err.code, 'ERR_CONFIG');
});

t.test('runtime#openBlasCoreFor names the kernel family from the CPU flags', async (t) => {
  const set = (s: string) => new Set(s.split(' '));
  t.equal(openBlasCoreFor(set('fma avx avx2 avx512f avx512cd avx512bw avx512dq avx512vl')), 'SkylakeX');
  t.equal(openBlasCoreFor(set('fma avx avx2 avx512f avx512cd')), 'Haswell', 'AVX-512 without BW/DQ/VL (Knights Landing) gets the AVX2 kernels');
  t.equal(openBlasCoreFor(set('fma avx avx2')), 'Haswell');
  t.equal(openBlasCoreFor(set('avx avx2')), undefined, 'AVX2 without FMA');
  t.equal(openBlasCoreFor(set('sse4_2 avx')), undefined);
});

t.test('runtime#the addon loads OpenBLAS with the kernels the CPU flags name, unless the environment says otherwise', async (t) => {
  let linked = false; // whether the last probe's process had OpenBLAS mapped
  const probe = (env: Record<string, string>) => {
    const base = { ...process.env };
    delete base.OPENBLAS_CORETYPE;
    delete base.TABSIGHT_OPENBLAS_CORETYPE;
    const r = spawnSync(process.execPath, ['-e', `
      const { _native } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'lib', 'index.js'))});
      const core = _native().runtimeInfo().blasCore;
      const mapped = /openblas/.test(require('node:fs').readFileSync('/proc/self/maps', 'utf8'));
      console.log(JSON.stringify({ env: process.env.OPENBLAS_CORETYPE ?? null, core, mapped }));`], { env: { ...base, ...env }, encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    const { mapped, ...rest } = JSON.parse(r.stdout) as { env: string | null; core: string; mapped: boolean };
    linked = mapped;
    return rest;
  };
  const chosen = probe({});
  // Only a process without OpenBLAS (official LibTorch builds use MKL) may
  // report no core; Debian's LibTorch maps it through libblas.so.3.
  if (!linked) {
    t.equal(chosen.core, '', 'no OpenBLAS linked, and none reported');
    return;
  }
  t.not(chosen.core, '', 'OpenBLAS is linked, so its core is reported');
  const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
  const expected = openBlasCoreFor(new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/)));
  t.equal(chosen.env, expected ?? null, 'OPENBLAS_CORETYPE set from the flags');
  if (expected) t.equal(chosen.core.toLowerCase(), expected.toLowerCase(), 'and OpenBLAS loaded those kernels');
  const forced = probe({ OPENBLAS_CORETYPE: 'Prescott' });
  t.same(forced, { env: 'Prescott', core: 'Prescott' }, "the user's OPENBLAS_CORETYPE wins");
  const auto = probe({ TABSIGHT_OPENBLAS_CORETYPE: 'auto' });
  t.equal(auto.env, null, 'auto leaves OPENBLAS_CORETYPE unset');
  t.ok(auto.core.length > 0, `OpenBLAS chose ${auto.core} itself`);
});
