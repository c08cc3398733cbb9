// CRC-32C (Castagnoli): the checksum RecordBatch v2 carries (see record_batch.h), and the one
// Runnel uses for its own formats.
//
// Every function here takes and returns a finished CRC (the register is inverted on the way in and
// out, as iSCSI and Kafka define it), so Crc32c("123456789") == 0xE3069283 and
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b) for any split of a message into a and b.
#ifndef RUNNEL_BROKER_STORAGE_CRC32C_H_
#define RUNNEL_BROKER_STORAGE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace runnel::storage {

// The CRC-32C of `data`, using the CPU's crc32 instruction when it has one.
uint32_t Crc32c(absl::string_view data);

// The CRC-32C of a message whose first part had CRC `crc` and whose next part is `data`. The CRC of
// the empty message is 0, so Crc32cExtend(0, data) == Crc32c(data).
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);

// The two implementations behind Crc32cExtend, with its contract, exposed so that tests and
// benchmarks can compare them. Both are Intel's ISA-L (Debian's libisal), which is two to three
// times faster for record batches of 1 KiB and up than the three-way interleaved crc32
// instruction loop Runnel had before.
// Table-driven: runs on any CPU.
uint32_t Crc32cPortable(uint32_t crc, absl::string_view data);
// The fastest version the CPU runs: SSE4.2's crc32 instruction, or carry-less multiplication
// folding with SSE or AVX-512 (ISA-L picks at its first call). Precondition (asserted):
// Crc32cHardwareAvailable().
uint32_t Crc32cHardware(uint32_t crc, absl::string_view data);

// Whether this CPU has SSE4.2 (CPUID, checked once). Always false off x86-64.
bool Crc32cHardwareAvailable();

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_CRC32C_H_
