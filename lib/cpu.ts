/**
 * The CPU's x86 feature flags, read once from /proc/cpuinfo. Four choices
 * depend on them: OpenBLAS's kernel family (binding.ts), whether int8
 * weights need 7 bits (export/quantize.ts, cpuVnni), and the layouts that
 * `memoryFormat: 'auto'` picks on the CPU for training (pretrain-options.ts)
 * and for embedding (run.ts).
 */
import * as fs from 'node:fs';

let cached: ReadonlySet<string> | null | undefined;

/** The flags of the first CPU in /proc/cpuinfo; null off Linux x64 or where there is no flags line. */
export function cpuFlags(): ReadonlySet<string> | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (process.platform === 'linux' && process.arch === 'x64') {
    try {
      const line = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
      if (line !== undefined) cached = new Set(line.trim().split(/\s+/));
    } catch {
      cached = null;
    }
  }
  return cached;
}

/**
 * Whether training's 3×3 convolutions on the CPU run by Winograd in this
 * process (`runtimeInfo().winograd`: available and enabled).
 */
export function cpuWinograd(): boolean {
  // Required here, not at the top: binding.ts imports this module.
  const { native } = require('./binding') as typeof import('./binding');
  const w = native().runtimeInfo().winograd;
  return w.available && w.enabled;
}

/**
 * The layout `memoryFormat: 'auto'` trains in on `device`.
 * - CUDA: NCHW ('contiguous'), the layout measured there.
 * - An x86 CPU with AVX-512: channels_last. It measured 3–22% faster in
 *   the ResNet-18 step on two AVX-512 VMs (benchmarks/RESULTS.md, "Memory
 *   format" and the full runs' "memory format gain").
 * - An x86 CPU without AVX-512, where tabsight's own Winograd kernels run
 *   (`winograd`: AVX2 and FMA, `TABSIGHT_WINOGRAD` not 0): channels_last.
 *   Those kernels read and write channels innermost, so NCHW pays a
 *   conversion on each side of every 3×3 layer; on the AVX2 EPYC the step
 *   was 0.7% and 8.5% faster in channels_last in two runs (RESULTS.md,
 *   2026-11-28, twenty-fourth session).
 * - An x86 CPU without AVX-512 or Winograd: NCHW. On the AVX2 EPYC, with
 *   LibTorch's direct convolutions, NCHW was faster in 5 of 5 paired
 *   rounds, by 6–13% (RESULTS.md, 2026-11-28).
 *   That was measured in fp32. With `precision: 'bf16'` the CPU keeps
 *   channels_last: on that EPYC, LibTorch 1.13's NCHW bf16 convolutions put
 *   the first step's loss 6.8% from fp32's, against the ≤ 2% that
 *   channels_last meets (test/precision.test.ts).
 * - Anything else (no x86 flags): channels_last, unmeasured, as before.
 */
export function trainingMemoryFormat(
  device: string,
  flags: ReadonlySet<string> | null = cpuFlags(),
  precision: 'fp32' | 'bf16' = 'fp32',
  winograd: boolean = device === 'cpu' && cpuWinograd(),
): 'channels_last' | 'contiguous' {
  if (device !== 'cpu') return 'contiguous';
  if (flags === null || precision === 'bf16') return 'channels_last';
  return flags.has('avx512f') || winograd ? 'channels_last' : 'contiguous';
}

/**
 * The layout `Run.embed`'s `memoryFormat: 'auto'` gives each batch.
 * - CUDA: NCHW ('contiguous').
 * - An x86 CPU without AVX-512: NCHW at every size. On the AVX2 EPYC,
 *   ResNet-18 embedded faster in NCHW at each size and batch measured
 *   (28–128 px, batches 16 and 64; benchmarks/RESULTS.md, 2026-11-28,
 *   twenty-second session).
 * - Otherwise (AVX-512, or no x86 flags): channels_last where the first
 *   residual stage's maps are at least 32 px on a side (image size ≥ 128,
 *   or ≥ 32 with the small stem), NCHW below, as measured on the AVX-512 VMs
 *   (RESULTS.md, "Memory format").
 */
export function embeddingMemoryFormat(
  device: string,
  imageSize: number,
  smallStem: boolean,
  flags: ReadonlySet<string> | null = cpuFlags(),
): 'channels_last' | 'contiguous' {
  if (device !== 'cpu') return 'contiguous';
  if (flags !== null && !flags.has('avx512f')) return 'contiguous';
  const stage1 = smallStem ? imageSize : Math.floor(imageSize / 4);
  return stage1 >= 32 ? 'channels_last' : 'contiguous';
}
