/**
 * Loads the native addon (a prebuild when one matches, else build/Release)
 * and types its raw surface. Users never see this module: the public API
 * wraps every call, validates its input and maps its errors.
 */
import * as os from 'node:os';
import * as path from 'node:path';

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
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface NativeBinding {
  runtimeInfo(): RuntimeInfo;
  setThreads(n: number): number;
  [name: string]: any;
}

let cached: NativeBinding | undefined;

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

function load(): NativeBinding {
  // node-gyp-build looks in prebuilds/<platform>-<arch>/ and build/Release/.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
  // TABSIGHT_ADDON points at a specific .node file (a second build folder).
  const binding = process.env.TABSIGHT_ADDON
    ? (require(path.resolve(process.env.TABSIGHT_ADDON)) as NativeBinding)
    : nodeGypBuild(packageRoot());
  const fromEnv = process.env.TABSIGHT_THREADS;
  const threads = fromEnv ? Number(fromEnv) : os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`Expected positive integer for TABSIGHT_THREADS but received ${fromEnv}`);
  }
  // LibTorch's default was seen to be 1 on a 2-core machine. Setting it once
  // here, on the main thread, is enough: libuv's workers use the same pool.
  binding.setThreads(threads);
  const dataFromEnv = process.env.TABSIGHT_DATA_THREADS;
  if (dataFromEnv) {
    const dataThreads = Number(dataFromEnv);
    if (!Number.isInteger(dataThreads) || dataThreads < 0) {
      throw new Error(`Expected non-negative integer for TABSIGHT_DATA_THREADS but received ${dataFromEnv}`);
    }
    binding.setDataThreads(dataThreads);
  }
  return binding;
}

/** The addon, loaded on first use. */
export function native(): NativeBinding {
  if (!cached) cached = load();
  return cached;
}
