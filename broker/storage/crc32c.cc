#include "broker/storage/crc32c.h"

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace runnel::storage {
namespace {

// CRC-32C's polynomial 0x1EDC6F41, bit-reversed: the CRC is computed least significant bit first.
constexpr uint32_t kCastagnoliReflected = 0x82F63B78;
// Slicing-by-8 consumes this many bytes per step, with one table per byte position.
constexpr size_t kSliceBytes = 8;
constexpr size_t kByteValues = 256;

using Crc32cTables = std::array<std::array<uint32_t, kByteValues>, kSliceBytes>;

// tables[0][b] advances the CRC register over byte b; tables[k][b] is the effect of byte b followed
// by k zero bytes, which is what lets one step fold in eight bytes with eight independent lookups.
constexpr Crc32cTables MakeCrc32cTables() {
  Crc32cTables tables{};
  for (uint32_t byte = 0; byte < kByteValues; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ (kCastagnoliReflected & (0u - (crc & 1u)));
    }
    tables[0][byte] = crc;
  }
  for (size_t k = 1; k < kSliceBytes; ++k) {
    for (size_t byte = 0; byte < kByteValues; ++byte) {
      const uint32_t previous = tables[k - 1][byte];
      tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xff];
    }
  }
  return tables;
}

constexpr Crc32cTables kCrc32cTables = MakeCrc32cTables();

// The first entries are the well-known CRC-32C byte table; a wrong polynomial fails to compile.
static_assert(kCrc32cTables[0][1] == 0xF26B8303);
static_assert(kCrc32cTables[0][128] == 0x82F63B78);

// The register update over n zero bytes (no inversion): how a CRC register moves when the bytes
// after it are zeros, computed one byte at a time (for the tables below, at compile time).
constexpr uint32_t AppendZeroBytes(uint32_t reg, size_t n) {
  for (size_t i = 0; i < n; ++i) reg = (reg >> 8) ^ kCrc32cTables[0][reg & 0xff];
  return reg;
}

// The register update over a fixed number of zero bytes is linear in the register, so it is the
// xor of four lookups, one per byte of the register: tables[k][b] moves byte value b at byte k.
using ZeroBytesTables = std::array<std::array<uint32_t, kByteValues>, sizeof(uint32_t)>;

constexpr ZeroBytesTables MakeZeroBytesTables(size_t n) {
  std::array<uint32_t, 32> moved_bits{};
  for (size_t bit = 0; bit < moved_bits.size(); ++bit) {
    moved_bits[bit] = AppendZeroBytes(uint32_t{1} << bit, n);
  }
  ZeroBytesTables tables{};
  for (size_t k = 0; k < tables.size(); ++k) {
    for (size_t value = 0; value < kByteValues; ++value) {
      uint32_t moved = 0;
      for (size_t bit = 0; bit < 8; ++bit) {
        if ((value >> bit) & 1) moved ^= moved_bits[8 * k + bit];
      }
      tables[k][value] = moved;
    }
  }
  return tables;
}

inline uint32_t ApplyZeroBytes(const ZeroBytesTables& tables, uint32_t reg) {
  return tables[0][reg & 0xff] ^ tables[1][(reg >> 8) & 0xff] ^ tables[2][(reg >> 16) & 0xff] ^
         tables[3][reg >> 24];
}

#if defined(__x86_64__)
// The crc32 instruction takes 3 cycles but a new one can start every cycle, so one chain of them
// runs at a third of the speed the CPU has. Long inputs are therefore cut into blocks of three
// stripes whose CRCs are computed side by side and then combined: the register is linear in the
// bytes, so that of A+B+C is Z(|C|, Z(|B|, reg(A)) ^ reg(B)) ^ reg(C), where reg(B) and reg(C)
// start from 0 and Z(n, r) is r moved over n zero bytes (the tables above). Two stripe sizes: long
// ones to make the combining cost nothing, short ones so that inputs of a few hundred bytes
// (small record batches) gain too.
constexpr size_t kLongStripeBytes = 4096;
constexpr size_t kShortStripeBytes = 128;
constexpr ZeroBytesTables kLongStripeZeros = MakeZeroBytesTables(kLongStripeBytes);
constexpr ZeroBytesTables kShortStripeZeros = MakeZeroBytesTables(kShortStripeBytes);
static_assert(kLongStripeBytes % sizeof(uint64_t) == 0);
static_assert(kShortStripeBytes % sizeof(uint64_t) == 0);

// Consumes whole blocks of three `stripe_bytes` stripes from the front of [*next, *next +
// *bytes_left), updating `reg` (a register: no inversion).
__attribute__((target("sse4.2"), always_inline)) inline uint64_t ConsumeStripes(
    uint64_t reg, const char** next, size_t* bytes_left, size_t stripe_bytes,
    const ZeroBytesTables& zeros) {
  while (*bytes_left >= 3 * stripe_bytes) {
    const char* a = *next;
    const char* b = a + stripe_bytes;
    const char* c = b + stripe_bytes;
    uint64_t reg_a = reg;
    uint64_t reg_b = 0;
    uint64_t reg_c = 0;
    for (size_t i = 0; i < stripe_bytes; i += sizeof(uint64_t)) {
      uint64_t word_a;
      uint64_t word_b;
      uint64_t word_c;
      std::memcpy(&word_a, a + i, sizeof(word_a));
      std::memcpy(&word_b, b + i, sizeof(word_b));
      std::memcpy(&word_c, c + i, sizeof(word_c));
      reg_a = _mm_crc32_u64(reg_a, word_a);
      reg_b = _mm_crc32_u64(reg_b, word_b);
      reg_c = _mm_crc32_u64(reg_c, word_c);
    }
    const uint32_t ab = ApplyZeroBytes(zeros, static_cast<uint32_t>(reg_a)) ^
                        static_cast<uint32_t>(reg_b);
    reg = ApplyZeroBytes(zeros, ab) ^ static_cast<uint32_t>(reg_c);
    *next += 3 * stripe_bytes;
    *bytes_left -= 3 * stripe_bytes;
  }
  return reg;
}
#endif

inline uint32_t LoadLittleEndian32(const unsigned char* bytes) {
  return uint32_t{bytes[0]} | (uint32_t{bytes[1]} << 8) | (uint32_t{bytes[2]} << 16) |
         (uint32_t{bytes[3]} << 24);
}

#if defined(__x86_64__)
// The only code that executes SSE4.2 instructions; reached only after Crc32cHardwareAvailable().
// The target attribute keeps that true even if this file is ever compiled without -msse4.2.
__attribute__((target("sse4.2"))) uint32_t Crc32cHardwareUnchecked(uint32_t crc,
                                                                   absl::string_view data) {
  const char* next = data.data();
  size_t bytes_left = data.size();
  uint32_t state = ~crc;
  // Byte steps up to an 8-byte boundary, so that the word loads below never straddle cache lines.
  while (bytes_left > 0 && reinterpret_cast<uintptr_t>(next) % sizeof(uint64_t) != 0) {
    state = _mm_crc32_u8(state, static_cast<unsigned char>(*next));
    ++next;
    --bytes_left;
  }
  uint64_t state_wide = state;
  state_wide =
      ConsumeStripes(state_wide, &next, &bytes_left, kLongStripeBytes, kLongStripeZeros);
  state_wide =
      ConsumeStripes(state_wide, &next, &bytes_left, kShortStripeBytes, kShortStripeZeros);
  while (bytes_left >= sizeof(uint64_t)) {
    uint64_t word;  // x86 is little-endian, which is the byte order the instruction expects.
    std::memcpy(&word, next, sizeof(word));
    state_wide = _mm_crc32_u64(state_wide, word);
    next += sizeof(uint64_t);
    bytes_left -= sizeof(uint64_t);
  }
  state = static_cast<uint32_t>(state_wide);
  while (bytes_left > 0) {
    state = _mm_crc32_u8(state, static_cast<unsigned char>(*next));
    ++next;
    --bytes_left;
  }
  return ~state;
}
#endif

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, absl::string_view data) {
  const auto* next = reinterpret_cast<const unsigned char*>(data.data());
  size_t bytes_left = data.size();
  uint32_t state = ~crc;
  const Crc32cTables& t = kCrc32cTables;
  while (bytes_left >= kSliceBytes) {
    const uint32_t low = LoadLittleEndian32(next) ^ state;
    const uint32_t high = LoadLittleEndian32(next + 4);
    state = t[7][low & 0xff] ^ t[6][(low >> 8) & 0xff] ^ t[5][(low >> 16) & 0xff] ^
            t[4][low >> 24] ^ t[3][high & 0xff] ^ t[2][(high >> 8) & 0xff] ^
            t[1][(high >> 16) & 0xff] ^ t[0][high >> 24];
    next += kSliceBytes;
    bytes_left -= kSliceBytes;
  }
  while (bytes_left > 0) {
    state = (state >> 8) ^ t[0][(state ^ *next) & 0xff];
    ++next;
    --bytes_left;
  }
  return ~state;
}

bool Crc32cHardwareAvailable() {
#if defined(__x86_64__)
  static const bool available = [] {
    // Needed when this runs before libgcc's own constructor has filled in the CPU model.
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return available;
#else
  return false;
#endif
}

uint32_t Crc32cHardware(uint32_t crc, absl::string_view data) {
  assert(Crc32cHardwareAvailable());
#if defined(__x86_64__)
  return Crc32cHardwareUnchecked(crc, data);
#else
  return Crc32cPortable(crc, data);  // Unreachable: the assertion above fails first.
#endif
}

uint32_t Crc32cExtend(uint32_t crc, absl::string_view data) {
#if defined(__x86_64__)
  if (Crc32cHardwareAvailable()) return Crc32cHardwareUnchecked(crc, data);
#endif
  return Crc32cPortable(crc, data);
}

uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

}  // namespace runnel::storage
