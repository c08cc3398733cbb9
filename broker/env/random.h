// A deterministic pseudo-random stream: xoshiro256** seeded through SplitMix64.
//
// Broker and model code draw every random choice from the Random their Env hands them, never from
// the C or C++ standard library's generators, devices or distributions (whose output differs
// between library versions and runs).
// The same seed gives the same sequence on every platform and compiler.
#ifndef RUNNEL_BROKER_ENV_RANDOM_H_
#define RUNNEL_BROKER_ENV_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/types/span.h"

namespace runnel {

// SplitMix64: used to expand seeds and to derive independent child seeds.
uint64_t SplitMix64Next(uint64_t& state);

// Derives a seed for a sub-stream (for example one node's) from a parent seed and a stream number,
// so that streams of different numbers are statistically independent.
uint64_t DeriveSeed(uint64_t parent_seed, uint64_t stream);

class Random {
 public:
  explicit Random(uint64_t seed);

  // 64 uniformly distributed bits.
  uint64_t Next64();
  // Uniform in [0, bound); bound must be positive. Unbiased (Lemire's method with rejection).
  uint64_t Below(uint64_t bound);
  // Uniform in [low, high], both inclusive; low <= high.
  int64_t Between(int64_t low, int64_t high);
  // Uniform in [0, 1) with 53 bits of precision.
  double Fraction();
  // True with probability `probability` (clamped to [0, 1]); 0 never, 1 always.
  bool Chance(double probability);
  // Fisher-Yates shuffle of `items`.
  template <typename T>
  void Shuffle(absl::Span<T> items) {
    for (size_t i = items.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(Below(i));
      using std::swap;
      swap(items[i - 1], items[j]);
    }
  }

 private:
  uint64_t state_[4];
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_RANDOM_H_
