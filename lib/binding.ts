/**
 * Loads the native addon (a prebuild when one matches, else build/Release)
 * and types its raw surface. Users never see this module: the public API
 * wraps every call, validates its input and maps its errors.
 */
import { cpuFlags } from './cpu';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from './errors';

/** Numeric arrays that cross into the native core. */
export type NativeArray = Float32Array | Float64Array | Uint8Array | Int32Array | BigInt64Array;

export interface RuntimeInfo {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  threads: number;
  interopThreads: number;
  hardwareConcurrency: number;
  parallelInfo: string;
  /** OpenBLAS's kernel family (e.g. 'SkylakeX'), '' without OpenBLAS. */
  blasCore: string;
  /** The caching CPU allocator (native/common/caching_cpu_allocator.h). */
  cpuCache: {
    enabled: boolean;
    activeScopes: number;
    hits: number;
    misses: number;
    liveBytes: number;
    cachedBytes: number;
    capBytes: number;
  };
  /**
   * The 3×3 stride-1 convolutions of training and of Integrated Gradients
   * as Winograd F(4×4, 3×3) (native/models/winograd_conv.h): whether this
   * build can (`available`, else `reason`), with which kernels (`kernel`:
   * 'onednn', oneDNN's AVX-512 kernels; 'tabsight', tabsight's own AVX2 + FMA
   * kernels; '' when none), whether it may (`enabled`; TABSIGHT_WINOGRAD=0
   * turns it off), and how many convolutions ran that way in this process
   * (`calls`).
   */
  winograd: { available: boolean; kernel: '' | 'onednn' | 'tabsight'; enabled: boolean; reason: string; calls: number };
  /**
   * LibTorch's process-wide determinism switches: deterministic algorithms,
   * deterministic cuDNN, and cuDNN's autotuner. A run with `deterministic:
   * true` turns the first two on and the third off while it trains.
   */
  deterministic: { algorithms: boolean; cudnn: boolean; cudnnBenchmark: boolean };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface NativeBinding {
  runtimeInfo(): RuntimeInfo;
  setThreads(n: number): number;
  [name: string]: any;
}

let cached: NativeBinding | undefined;

/**
 * The most intra-op (or data) threads a count may ask for; the native core
 * refuses more (native/common/threads.h: OpenMP allocates every thread's
 * state up front and exits the process when that fails).
 */
export const MAX_THREADS = 1024;

/** The folder holding tabsight's package.json (works from lib/ and dist/lib/). */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const pkg = require(path.join(dir, 'package.json')) as { name?: string };
      if (pkg.name === 'tabsight') return dir;
    } catch {
      // keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`tabsight: package.json not found above ${__dirname}`);
    dir = parent;
  }
}

/**
 * The OpenBLAS kernel family for a CPU with these /proc/cpuinfo flags:
 * 'SkylakeX' with AVX-512 (F, CD, BW, DQ, VL), 'Haswell' with AVX2 and FMA,
 * else undefined.
 */
export function openBlasCoreFor(flags: ReadonlySet<string>): string | undefined {
  if (['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f))) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return undefined;
}

/**
 * Debian's LibTorch does its matrix products (linear layers, the CLIP logits)
 * in OpenBLAS, which picks its kernels from a table of CPU models when it
 * loads. OpenBLAS 0.3.21 (Debian 12) does not know newer models: on the
 * development VM (family 6, model 207) it fell back to its SSE3 "Prescott"
 * kernels, and a 2048² sgemm ran at 48 GFLOP/s against 235 with the AVX-512
 * ones. So, before the addon (and with it OpenBLAS) loads, name the kernel
 * family from the CPU's own flags. OPENBLAS_CORETYPE, if set, wins;
 * TABSIGHT_OPENBLAS_CORETYPE=auto leaves the choice to OpenBLAS. Child
 * processes inherit the setting, so PyTorch oracles and baselines spawned
 * afterwards use the same kernels. Official LibTorch builds use MKL, which
 * ignores this.
 */
function chooseOpenBlasCore(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') return;
  if (process.env.OPENBLAS_CORETYPE !== undefined || process.env.TABSIGHT_OPENBLAS_CORETYPE === 'auto') return;
  const flags = cpuFlags();
  if (!flags) return;
  const core = openBlasCoreFor(flags);
  if (core) process.env.OPENBLAS_CORETYPE = core;
}

function load(): NativeBinding {
  chooseOpenBlasCore();
  // node-gyp-build looks in prebuilds/<platform>-<arch>/ and build/Release/.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
  // TABSIGHT_ADDON points at a specific .node file (a second build folder).
  const binding = process.env.TABSIGHT_ADDON
    ? (require(path.resolve(process.env.TABSIGHT_ADDON)) as NativeBinding)
    : nodeGypBuild(packageRoot());
  const fromEnv = process.env.TABSIGHT_THREADS;
  const threads = fromEnv ? Number(fromEnv) : Math.min(os.availableParallelism(), MAX_THREADS);
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new ConfigError(`Expected integer between 1 and ${MAX_THREADS} for TABSIGHT_THREADS but received ${fromEnv}`);
  }
  // LibTorch's default was seen to be 1 on a 2-core machine. The addon
  // records the count, and each libuv worker applies it to its own thread
  // before it runs (native/common/threads.h).
  binding.setThreads(threads);
  const dataFromEnv = process.env.TABSIGHT_DATA_THREADS;
  if (dataFromEnv) {
    const dataThreads = Number(dataFromEnv);
    if (!Number.isInteger(dataThreads) || dataThreads < 0 || dataThreads > MAX_THREADS) {
      throw new ConfigError(`Expected integer between 0 and ${MAX_THREADS} for TABSIGHT_DATA_THREADS but received ${dataFromEnv}`);
    }
    binding.setDataThreads(dataThreads);
  }
  return binding;
}

/**
 * What this process's native core runs with: the LibTorch version, CUDA,
 * thread counts, OpenBLAS's kernels, the caching CPU allocator's counters
 * and the Winograd convolutions' state. A fresh snapshot on each call.
 */
export function runtimeInfo(): RuntimeInfo {
  return native().runtimeInfo();
}

/** The addon, loaded on first use. */
export function native(): NativeBinding {
  if (!cached) cached = load();
  return cached;
}
