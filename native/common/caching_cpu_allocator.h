// A caching CPU allocator for LibTorch's large tensors.
//
// LibTorch's default CPU allocator hands every allocation to malloc and every
// free back to it. A training step allocates and frees the same large
// activations and gradients each time (ResNet-18 at 128 px, batch 64: about
// 900 MB a step in blocks of 1–67 MB). glibc serves blocks that large with
// mmap, or from per-thread heaps it trims, so each step faults the same
// memory in again page by page: about 220k minor faults a step, 20% of the
// step's CPU time in the kernel on the development VM. PyTorch's CUDA
// allocator caches for the same reason; its CPU allocator does not.
//
// While at least one CpuCacheScope is alive, blocks of ≥ 1 MiB that LibTorch
// frees are kept in per-size free lists and handed out again for the same
// size class. Blocks of ≥ 16 MiB are 2 MiB-aligned and advised for
// transparent huge pages. When the last scope ends, the cached blocks go back
// to the system; blocks still in use are freed to the system when LibTorch
// releases them. Small allocations, and all allocations outside a scope, go
// straight to LibTorch's default allocator.
//
// Environment: TABSIGHT_CPU_CACHE=0 turns caching off; TABSIGHT_CPU_CACHE_MB
// caps the bytes held in free lists (default: a quarter of physical memory).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tabsight {

// Enables caching for its lifetime (scopes nest and may overlap across
// threads). Installs the allocator as LibTorch's CPU allocator on first use.
class CpuCacheScope {
 public:
  CpuCacheScope();
  ~CpuCacheScope();
  CpuCacheScope(const CpuCacheScope&) = delete;
  CpuCacheScope& operator=(const CpuCacheScope&) = delete;
};

struct CpuCacheStats {
  bool enabled = false;       // TABSIGHT_CPU_CACHE is not 0
  int64_t active_scopes = 0;
  int64_t hits = 0;           // large allocations served from a free list
  int64_t misses = 0;         // large allocations that went to the system
  int64_t live_bytes = 0;     // size classes of large blocks in use
  int64_t cached_bytes = 0;   // size classes of blocks in free lists
  int64_t cap_bytes = 0;
};

CpuCacheStats GetCpuCacheStats();

}  // namespace tabsight
