// Intra-op thread counts per calling thread.
//
// With LibTorch's OpenMP backend, at::set_num_threads sets the count of the
// thread that calls it (and a process-wide default that other threads copy
// once, on their first parallel region). The addon's work runs on libuv's
// worker threads and on the trainer's producer thread, so a count set later
// on the main thread would not reach a worker that has already run a parallel
// region. SetIntraOpThreads records the count; every worker applies it to
// itself before it runs (UseIntraOpThreadsOnThisThread).
#pragma once

namespace tabsight {

// The most intra-op (or data) threads a count may ask for: OpenMP allocates
// every thread's state up front, and libgomp exits the process when that
// fails ("Out of memory allocating ... bytes").
constexpr int kMaxThreads = 1024;

// The process-wide intra-op thread count (at::set_num_threads, recorded).
// Throws kConfig unless 1 ≤ n ≤ kMaxThreads.
void SetIntraOpThreads(int n);

// Gives the calling thread n intra-op threads for its later parallel regions
// (OpenMP; a no-op with ATen's native backend, whose pool is process-wide).
void UseThreadsOnThisThread(int n);

// UseThreadsOnThisThread with the count last given to SetIntraOpThreads, if any.
void UseIntraOpThreadsOnThisThread();

}  // namespace tabsight
