// Counter-based seeding. Every random draw in training derives from
// (seed, epoch, step, stream), never from hidden global state, so a run
// resumed from a checkpoint replays exactly what an uninterrupted run does.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
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

// std::mt19937_64's sequence for a seed, for streams that draw a few numbers
// (augmentation parameters: one stream per sample and kind, 1 to about 20
// draws each). Constructing std::mt19937_64 seeds all 312 state words and its
// first draw twists all 312; together that was 8–10% of the CPU data path.
// Yet output j < 156 needs only the seeded words up to 156 + j: it is the
// tempered
//   x[j + 156] ^ twist((x[j] & upper) | (x[j + 1] & lower)),
// so this engine seeds the words as far as the next draw needs them
// (157 + j) and twists one word per draw. From the 157th draw on it
// continues with a std::mt19937_64 advanced past the first 156, so every
// draw equals std::mt19937_64's (checked against it, and against the C++
// standard's 10000th output, by test/rng.test.ts).
class StreamRng {
 public:
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }

  explicit StreamRng(uint64_t seed) : seed_(seed) { x_[0] = seed; }

  result_type operator()() {
    if (drawn_ >= kM) return Continue();
    const int j = drawn_++;
    Seed(kM + j + 1);
    const uint64_t y = (x_[j] & kUpper) | (x_[j + 1] & kLower);
    uint64_t z = x_[j + kM] ^ (y >> 1) ^ ((y & 1) ? kA : 0);
    z ^= (z >> 29) & 0x5555555555555555ull;
    z ^= (z << 17) & 0x71D67FFFEDA60000ull;
    z ^= (z << 37) & 0xFFF7EEE000000000ull;
    return z ^ (z >> 43);
  }

 private:
  static constexpr int kN = 312, kM = 156;
  static constexpr uint64_t kA = 0xB5026F5AA96619E9ull;
  static constexpr uint64_t kUpper = ~uint64_t{0} << 31, kLower = (uint64_t{1} << 31) - 1;

  // Seeded words x[0..n): x[i] = f·(x[i−1] ^ (x[i−1] >> 62)) + i.
  void Seed(int n) {
    for (; seeded_ < n; ++seeded_) {
      const uint64_t prev = x_[seeded_ - 1];
      x_[seeded_] = 6364136223846793005ull * (prev ^ (prev >> 62)) + static_cast<uint64_t>(seeded_);
    }
  }

  result_type Continue() {
    if (!full_) {
      full_ = std::make_unique<std::mt19937_64>(seed_);
      full_->discard(kM);
    }
    return (*full_)();
  }

  uint64_t seed_;
  uint64_t x_[kN];
  int seeded_ = 1;
  int drawn_ = 0;
  std::unique_ptr<std::mt19937_64> full_;
};

// Uniform double in [lo, hi). std::uniform_real_distribution is not
// specified bit-for-bit across standard libraries; this is.
template <typename Engine>
inline double Uniform(Engine& rng, double lo = 0.0, double hi = 1.0) {
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
  return lo + (hi - lo) * u;
}

// Uniform integer in [0, n).
template <typename Engine>
inline uint64_t UniformInt(Engine& rng, uint64_t n) {
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
