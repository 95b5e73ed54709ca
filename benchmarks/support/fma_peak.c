// Peak fp32 FMA throughput of this machine, for benchmarks/roofline.js.
//
//   fma_peak ISA THREADS   (ISA: avx2 | avx512)
//
// Each thread runs 12 independent chains of vector FMAs (x = x * m + b) in
// registers: enough chains to cover the FMA latency on two ports, no memory
// traffic. The inner loop must be unrolled for the chains to stay in
// registers: GCC 12 at -O2 did not unroll it, kept x[] on the stack, and
// measured a quarter of the peak (AVX-512, 1 thread: 56.6 GFLOP/s against
// 189.5 unrolled, 2026-11-26), hence the pragmas. FLOPs = threads × iterations × 12 chains × lanes × 2. The
// iteration count is calibrated to about 0.3 s; the best of 3 runs is printed
// as one JSON line. Built by roofline.js with `cc -O2 -pthread`; the ISA is
// chosen per function (target attributes), so one binary holds both and only
// the one the CPU reports is called.
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define CHAINS 12

__attribute__((target("avx2,fma"))) static float Avx2(long n) {
  __m256 x[CHAINS];
  const __m256 m = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS; ++i) x[i] = _mm256_set1_ps((float)i);
  for (long k = 0; k < n; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < CHAINS; ++i) x[i] = _mm256_fmadd_ps(x[i], m, b);
  }
  __m256 s = x[0];
  for (int i = 1; i < CHAINS; ++i) s = _mm256_add_ps(s, x[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float Avx512(long n) {
  __m512 x[CHAINS];
  const __m512 m = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS; ++i) x[i] = _mm512_set1_ps((float)i);
  for (long k = 0; k < n; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < CHAINS; ++i) x[i] = _mm512_fmadd_ps(x[i], m, b);
  }
  __m512 s = x[0];
  for (int i = 1; i < CHAINS; ++i) s = _mm512_add_ps(s, x[i]);
  return _mm512_reduce_add_ps(s);
}

struct Job {
  int avx512;
  long n;
  float sink;
};

static void* Work(void* arg) {
  struct Job* j = (struct Job*)arg;
  j->sink = j->avx512 ? Avx512(j->n) : Avx2(j->n);
  return NULL;
}

// Wall seconds for `threads` threads running n iterations each.
static double Run(int avx512, int threads, long n) {
  pthread_t t[64];
  struct Job jobs[64];
  const double t0 = Now();
  for (int i = 0; i < threads; ++i) {
    jobs[i].avx512 = avx512;
    jobs[i].n = n;
    pthread_create(&t[i], NULL, Work, &jobs[i]);
  }
  float sink = 0;
  for (int i = 0; i < threads; ++i) {
    pthread_join(t[i], NULL);
    sink += jobs[i].sink;
  }
  const double secs = Now() - t0;
  if (sink == 12345.0f) fprintf(stderr, "%g\n", sink);  // keeps the result alive
  return secs;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fma_peak avx2|avx512 THREADS\n");
    return 2;
  }
  const int avx512 = strcmp(argv[1], "avx512") == 0;
  const int threads = atoi(argv[2]);
  if (threads < 1 || threads > 64) return 2;
  const int lanes = avx512 ? 16 : 8;
  long n = 100000;
  while (Run(avx512, 1, n) < 0.1) n *= 2;  // about 0.1 s on one thread, then ×3
  n *= 3;
  double best = 1e300;
  for (int r = 0; r < 3; ++r) {
    const double s = Run(avx512, threads, n);
    if (s < best) best = s;
  }
  const double flops = (double)threads * (double)n * CHAINS * lanes * 2.0;
  printf("{\"isa\":\"%s\",\"threads\":%d,\"iterations\":%ld,\"seconds\":%.6f,\"gflops\":%.2f}\n", argv[1], threads, n, best,
         flops / best / 1e9);
  return 0;
}
