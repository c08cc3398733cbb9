// Helpers shared by the storage tests: a reference CRC-32C that shares no code with the one under
// test, and a small deterministic random generator, so that every failure reproduces. Header-only.
#ifndef RUNNEL_TESTS_TEST_UTIL_H_
#define RUNNEL_TESTS_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace runnel::testing {

// The definition of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one bit at a time:
// slow, and too simple to share a bug with the table-driven or hardware code.
inline uint32_t BitwiseCrc32c(absl::string_view data) {
  constexpr uint32_t kPolynomialReflected = 0x82F63B78;
  uint32_t crc = 0xFFFFFFFF;
  for (char c : data) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) ? (crc >> 1) ^ kPolynomialReflected : crc >> 1;
    }
  }
  return ~crc;
}

// xorshift64: a tiny generator whose sequence is fixed by its seed on every platform. The seed
// must not be zero (the generator would stay at zero).
class XorShift {
 public:
  explicit XorShift(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  // In [0, bound); bound > 0. (The modulo bias is irrelevant for tests.)
  uint64_t Below(uint64_t bound) { return Next() % bound; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  // `length` random bytes.
  std::string Bytes(size_t length) {
    std::string bytes(length, '\0');
    for (char& c : bytes) c = static_cast<char>(Next());
    return bytes;
  }
  // Random bytes of a random length in [0, length_max].
  std::string String(size_t length_max) { return Bytes(Below(length_max + 1)); }

 private:
  uint64_t state_;
};

}  // namespace runnel::testing

#endif  // RUNNEL_TESTS_TEST_UTIL_H_
