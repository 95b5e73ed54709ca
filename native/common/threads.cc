#include "common/threads.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/error.h"

namespace tabsight {

namespace {
std::atomic<int> g_intra_op_threads{0};
}  // namespace

void SetIntraOpThreads(int n) {
  if (n < 1 || n > kMaxThreads) {
    Fail(ErrorCode::kConfig, "Expected integer between 1 and " + std::to_string(kMaxThreads) + " for threads but received " +
                                 std::to_string(n));
  }
  at::set_num_threads(n);
  g_intra_op_threads.store(n);
}

void UseThreadsOnThisThread(int n) {
  // ATen initialises a thread's count lazily from the process-wide default on
  // its first parallel region; run that first so it cannot undo this later.
  if (at::get_num_threads() == n) return;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  // Without OpenMP (ATen's native backend) the pool is process-wide, set once
  // by SetIntraOpThreads; there is no per-thread count to give.
}

void UseIntraOpThreadsOnThisThread() {
  const int n = g_intra_op_threads.load();
  if (n > 0) UseThreadsOnThisThread(n);
}

}  // namespace tabsight
