#include "broker/env/random.h"

#include <cassert>

namespace runnel {
namespace {

uint64_t RotateLeft(uint64_t value, int bits) { return (value << bits) | (value >> (64 - bits)); }

}  // namespace

uint64_t SplitMix64Next(uint64_t& state) {
  state += 0x9e3779b97f4a7c15ULL;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t DeriveSeed(uint64_t parent_seed, uint64_t stream) {
  // Mixing the stream number through SplitMix64 twice keeps neighbouring stream numbers from
  // producing correlated xoshiro states.
  uint64_t state = parent_seed ^ (stream * 0xd1b54a32d192ed03ULL);
  SplitMix64Next(state);
  return SplitMix64Next(state);
}

Random::Random(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& word : state_) word = SplitMix64Next(state);
  // xoshiro's all-zero state is a fixed point; SplitMix64 never yields four zeros, but be sure.
  assert((state_[0] | state_[1] | state_[2] | state_[3]) != 0);
}

uint64_t Random::Next64() {
  const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

uint64_t Random::Below(uint64_t bound) {
  assert(bound > 0);
  // Lemire's nearly divisionless method: multiply into 128 bits, reject the biased low range.
  unsigned __int128 product = static_cast<unsigned __int128>(Next64()) * bound;
  uint64_t low = static_cast<uint64_t>(product);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(Next64()) * bound;
      low = static_cast<uint64_t>(product);
    }
  }
  return static_cast<uint64_t>(product >> 64);
}

int64_t Random::Between(int64_t low, int64_t high) {
  assert(low <= high);
  const uint64_t span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  if (span == UINT64_MAX) return static_cast<int64_t>(Next64());
  return static_cast<int64_t>(static_cast<uint64_t>(low) + Below(span + 1));
}

double Random::Fraction() { return static_cast<double>(Next64() >> 11) * 0x1.0p-53; }

bool Random::Chance(double probability) {
  if (probability <= 0.0) return false;
  if (probability >= 1.0) return true;
  return Fraction() < probability;
}

}  // namespace runnel
