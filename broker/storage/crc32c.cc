#include "broker/storage/crc32c.h"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <isa-l/crc.h>

namespace runnel::storage {
namespace {

// ISA-L's functions take an int length: longer inputs go through in pieces of at most this.
constexpr size_t kIsalPieceBytesMax = size_t{1} << 30;
static_assert(kIsalPieceBytesMax <= static_cast<size_t>(std::numeric_limits<int>::max()));

using IsalCrcFunction = unsigned int (*)(unsigned char*, int, unsigned int);

// ISA-L's iSCSI CRC functions take and return the register (no inversion on the way in or out),
// while this file's functions take and return finished CRCs.
uint32_t ExtendWith(IsalCrcFunction function, uint32_t crc, absl::string_view data) {
  uint32_t reg = ~crc;
  while (!data.empty()) {
    const size_t piece = std::min(data.size(), kIsalPieceBytesMax);
    // ISA-L only reads the buffer; its signature predates const.
    reg = function(reinterpret_cast<unsigned char*>(const_cast<char*>(data.data())),
                   static_cast<int>(piece), reg);
    data.remove_prefix(piece);
  }
  return ~reg;
}

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, absl::string_view data) {
  return ExtendWith(&crc32_iscsi_base, crc, data);
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
  return ExtendWith(&crc32_iscsi, crc, data);
}

uint32_t Crc32cExtend(uint32_t crc, absl::string_view data) {
  // crc32_iscsi picks, at its first call, the fastest version this CPU runs (the crc32
  // instruction, or carry-less multiplication folding with SSE or AVX-512), and the portable one
  // on a CPU with none of them.
  return ExtendWith(&crc32_iscsi, crc, data);
}

uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

}  // namespace runnel::storage
