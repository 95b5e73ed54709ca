#!/usr/bin/env python3
"""Measured matmul peak of a CUDA GPU through PyTorch, for benchmarks/cuda.sh.

  gpu_peak.py [N] [REPS]      (default 8192, 30)

torch.mm of two N x N matrices into a preallocated output, in fp32 with TF32
off (true fp32 FMA), fp32 with TF32 on, and bf16 (fp32 accumulation). One
warm-up product per type, then REPS products timed with CUDA events; prints
one JSON line per type with the best and median TFLOP/s (2 N^3 FLOPs each).
"""
import json
import statistics
import sys

import torch


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    dev = torch.device("cuda")
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        c = torch.empty(n, n, device=dev, dtype=dtype)
        torch.mm(a, b, out=c)
        torch.cuda.synchronize()
        ms = []
        for _ in range(reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            torch.mm(a, b, out=c)
            e1.record()
            e1.synchronize()
            ms.append(e0.elapsed_time(e1))
        flops = 2.0 * n ** 3
        print(json.dumps({"figure": "gpu matmul peak", "type": name, "n": n, "reps": reps,
                          "best_tflops": flops / (min(ms) / 1e3) / 1e12, "median_tflops": flops / (statistics.median(ms) / 1e3) / 1e12,
                          "gpu": torch.cuda.get_device_name(dev), "torch": torch.__version__, "cuda": torch.version.cuda}), flush=True)
        del a, b, c
    torch.backends.cuda.matmul.allow_tf32 = False


if __name__ == "__main__":
    main()
