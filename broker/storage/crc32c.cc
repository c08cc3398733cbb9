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
