// Counter-based seeding. Every random draw in training derives from
// (seed, epoch, step, stream), never from hidden global state, so a run
// resumed from a checkpoint replays exactly what an uninterrupted run does.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <random>

namespace tabsight {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Mixes a seed with any number of counters into one 64-bit seed.
inline uint64_t DeriveSeed(uint64_t seed, std::initializer_list<uint64_t> counters) {
  uint64_t h = SplitMix64(seed);
  for (uint64_t c : counters) h = SplitMix64(h ^ SplitMix64(c + 0x632BE59BD9B4E019ull));
  return h;
}

using Rng = std::mt19937_64;

// Uniform double in [lo, hi). std::uniform_real_distribution is not
// specified bit-for-bit across standard libraries; this is.
inline double Uniform(Rng& rng, double lo = 0.0, double hi = 1.0) {
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
  return lo + (hi - lo) * u;
}

// Uniform integer in [0, n).
inline uint64_t UniformInt(Rng& rng, uint64_t n) {
  // Lemire's nearly divisionless method would do; n is small here, so plain
  // rejection keeps it obviously unbiased.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

}  // namespace tabsight
