#include "common/caching_cpu_allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/env.h"
#include "common/error.h"

namespace tabsight {

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kMinBytes = kMiB;           // smaller blocks: the default allocator
constexpr size_t kHugeBytes = 16 * kMiB;     // from here: 2 MiB classes, aligned, THP-advised
constexpr size_t kSmallStep = 64 * 1024;     // class step below kHugeBytes
constexpr size_t kHugeStep = 2 * kMiB;

size_t RoundUp(size_t n, size_t step) { return (n + step - 1) / step * step; }

// The size class a request of n bytes (≥ kMinBytes) is served from.
size_t SizeClass(size_t n) { return n < kHugeBytes ? RoundUp(n, kSmallStep) : RoundUp(n, kHugeStep); }

bool EnabledFromEnv() { return EnvFlag("TABSIGHT_CPU_CACHE", true); }

size_t CapFromEnv() {
  if (const char* v = std::getenv("TABSIGHT_CPU_CACHE_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(v, &end, 10);
    if (end != v && *end == '\0') return static_cast<size_t>(mb) * kMiB;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<size_t>(pages) * static_cast<size_t>(page) / 4;
  return size_t{4} << 30;
}

// The process-wide state. Never destroyed: tensors may be freed during static
// destruction, after any ordinary static would be gone.
struct State {
  std::mutex mu;
  const bool enabled = EnabledFromEnv();
  const size_t cap = CapFromEnv();
  int64_t active = 0;
  std::unordered_map<void*, size_t> live;                 // block → size class
  std::unordered_map<size_t, std::vector<void*>> free;  // size class → blocks
  size_t live_bytes = 0;
  size_t cached_bytes = 0;
  int64_t hits = 0;
  int64_t misses = 0;

  // Caller holds mu. Returns the blocks to release outside the lock.
  std::vector<void*> TakeAllCached() {
    std::vector<void*> out;
    for (auto& entry : free) out.insert(out.end(), entry.second.begin(), entry.second.end());
    free.clear();
    cached_bytes = 0;
    return out;
  }
};

State& GetState() {
  static State* state = new State();
  return *state;
}

void* AllocateBlock(size_t cls) {
  void* p = nullptr;
  const size_t align = cls >= kHugeBytes ? kHugeStep : 64;
  if (::posix_memalign(&p, align, cls) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
  // Best effort: fewer faults and TLB misses on the largest activations.
  if (cls >= kHugeBytes) ::madvise(p, cls, MADV_HUGEPAGE);
#endif
  return p;
}

void ReleaseBlocks(const std::vector<void*>& blocks) {
  for (void* p : blocks) std::free(p);
}

// The deleter of every block this allocator hands out, and its raw deleter.
// Pointers it does not know came from the default allocator (allocated
// before it was installed, or passed through to it, as raw_allocate does for
// small blocks): they go back there.
void FreeBlock(void* p) {
  if (p == nullptr) return;
  State& s = GetState();
  bool ours = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.live.find(p);
    if (it != s.live.end()) {
      ours = true;
      const size_t cls = it->second;
      s.live.erase(it);
      s.live_bytes -= cls;
      if (s.active > 0 && s.cached_bytes + cls <= s.cap) {
        s.free[cls].push_back(p);
        s.cached_bytes += cls;
        return;
      }
    }
  }
  if (ours) {
    std::free(p);
  } else {
    c10::GetDefaultCPUAllocator()->raw_deleter()(p);
  }
}

c10::DataPtr AllocateCached(size_t n) {
  c10::Allocator* fallback = c10::GetDefaultCPUAllocator();
  State& s = GetState();
  if (n < kMinBytes || !s.enabled) return fallback->allocate(n);
  const size_t cls = SizeClass(n);
  void* p = nullptr;
  std::vector<void*> release;
  bool outside = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    outside = s.active == 0;
    auto it = outside ? s.free.end() : s.free.find(cls);
    if (outside) {
      // Outside any scope: not tracked, not cached.
    } else if (it != s.free.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      s.cached_bytes -= cls;
      s.live.emplace(p, cls);
      s.live_bytes += cls;
      ++s.hits;
    } else {
      ++s.misses;
      // Shapes changed (another phase, another model): drop the free lists
      // rather than grow past the cap.
      if (s.cached_bytes + cls > s.cap) release = s.TakeAllCached();
    }
  }
  if (outside) return fallback->allocate(n);
  if (p == nullptr) {
    ReleaseBlocks(release);
    p = AllocateBlock(cls);
    if (p == nullptr) {
      // Out of memory: give every cached block back and try once more.
      {
        std::lock_guard<std::mutex> lock(s.mu);
        release = s.TakeAllCached();
      }
      ReleaseBlocks(release);
      p = AllocateBlock(cls);
      if (p == nullptr) {
        Fail(ErrorCode::kOom, "CPU allocator: out of memory allocating " + std::to_string(n) + " bytes");
      }
    }
    std::lock_guard<std::mutex> lock(s.mu);
    s.live.emplace(p, cls);
    s.live_bytes += cls;
  }
  return {p, p, &FreeBlock, c10::Device(c10::DeviceType::CPU)};
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
// LibTorch < 2.3 declares `allocate(size_t) const` and no copy_data; later
// versions declare `allocate(size_t)` and `copy_data(...) const` (with a
// trailing `bool sync` on the newest). Each overload below overrides the one
// the linked LibTorch declares and is an ordinary member otherwise.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const { return AllocateCached(n); }
  c10::DataPtr allocate(size_t n) { return AllocateCached(n); }
  c10::DeleterFnPtr raw_deleter() const override { return &FreeBlock; }
  void copy_data(void* dest, const void* src, size_t count) const { std::memcpy(dest, src, count); }
  void copy_data(void* dest, const void* src, size_t count, bool /*sync*/) const { std::memcpy(dest, src, count); }
};
#pragma GCC diagnostic pop

// Makes the caching allocator LibTorch's CPU allocator, once. Outside a scope
// it passes everything to the default allocator.
void InstallCachingCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CachingCpuAllocator* allocator = new CachingCpuAllocator();
    c10::SetCPUAllocator(allocator, /*priority=*/0);
  });
}

}  // namespace

CpuCacheScope::CpuCacheScope() {
  InstallCachingCpuAllocator();
  State& s = GetState();
  std::lock_guard<std::mutex> lock(s.mu);
  ++s.active;
}

CpuCacheScope::~CpuCacheScope() {
  State& s = GetState();
  std::vector<void*> release;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (--s.active == 0) release = s.TakeAllCached();
  }
  ReleaseBlocks(release);
}

CpuCacheStats GetCpuCacheStats() {
  State& s = GetState();
  std::lock_guard<std::mutex> lock(s.mu);
  CpuCacheStats out;
  out.enabled = s.enabled;
  out.active_scopes = s.active;
  out.hits = s.hits;
  out.misses = s.misses;
  out.live_bytes = static_cast<int64_t>(s.live_bytes);
  out.cached_bytes = static_cast<int64_t>(s.cached_bytes);
  out.cap_bytes = static_cast<int64_t>(s.cap);
  return out;
}

}  // namespace tabsight
