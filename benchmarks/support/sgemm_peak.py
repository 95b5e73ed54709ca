#!/usr/bin/python3
"""sgemm throughput through Debian's PyTorch, for benchmarks/roofline.js.

  sgemm_peak.py N THREADS[,THREADS...] REPS

torch.mm of two N x N float32 matrices into a preallocated output: ATen's
CPU matmul calls the system BLAS (libblas.so.3 -> OpenBLAS here), the same
libtorch_cpu.so.1.13 and BLAS the addon links (roofline.js checks with ldd).
One warm-up product, then REPS timed products per thread count; prints one
JSON line per thread count with the best and median GFLOP/s (2 N^3 FLOPs).
"""
import json
import statistics
import sys
import time

import torch


def main():
    n, threads, reps = int(sys.argv[1]), [int(t) for t in sys.argv[2].split(",")], int(sys.argv[3])
    import re
    blas = sorted(set(re.findall(r"(?:BLAS_INFO|LAPACK_INFO|USE_MKLDNN)=[^,\s]+", torch.__config__.show())))
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = torch.empty(n, n)
    for t in threads:
        torch.set_num_threads(t)
        torch.mm(a, b, out=c)
        secs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            secs.append(time.perf_counter() - t0)
        flops = 2.0 * n ** 3
        print(json.dumps({"n": n, "threads": t, "reps": reps, "best_gflops": flops / min(secs) / 1e9,
                          "median_gflops": flops / statistics.median(secs) / 1e9, "torch": torch.__version__, "blas": blas}), flush=True)


if __name__ == "__main__":
    main()
