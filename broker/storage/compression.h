// The compression codecs of RecordBatch v2, framed exactly as Kafka's clients frame them, so that a
// batch compressed here is readable by Kafka's Java client and librdkafka, and theirs by Runnel:
//   gzip    a gzip stream (RFC 1952), as java.util.zip.GZIPOutputStream writes it; concatenated
//           members are accepted on decompression.
//   snappy  xerial snappy-java's stream framing: the header kSnappyXerialMagic, big-endian i32
//           version and compatible version (both 1), then blocks of [big-endian i32 compressed
//           length][raw snappy block], each block compressing at most kSnappyXerialBlockBytes.
//           Decompression also accepts one raw snappy block without framing, as librdkafka does.
//   lz4     the LZ4 frame format, with independent blocks, which Kafka's Java reader requires (it
//           decodes each block on its own); concatenated frames are accepted on decompression.
//   zstd    a zstd frame; concatenated frames are accepted on decompression.
// kNone passes bytes through unchanged (Decompress still enforces its limit).
//
// Decompression is bounded and total: for any input it returns either the output (at most
// `output_bytes_max` bytes, never holding more than one byte beyond that while decoding) or
// kInvalidArgument saying what was wrong (malformed, truncated, trailing garbage, or too large).
#ifndef RUNNEL_BROKER_STORAGE_COMPRESSION_H_
#define RUNNEL_BROKER_STORAGE_COMPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/storage/record_batch.h"

namespace runnel::storage {

// The most bytes Compress accepts and Decompress produces, whatever the caller asks for: far above
// kBatchBytesMax, and within the 32-bit lengths that zlib and snappy work in.
inline constexpr size_t kCompressionBytesMax = size_t{1} << 30;

// xerial snappy-java's stream header: 8 magic bytes, then version and compatible version.
inline constexpr absl::string_view kSnappyXerialMagic("\x82SNAPPY\0", 8);
inline constexpr int32_t kSnappyXerialVersion = 1;
inline constexpr int32_t kSnappyXerialCompatibleVersion = 1;
inline constexpr size_t kSnappyXerialHeaderBytes = 16;
// snappy-java's default block size, which Kafka's producer uses.
inline constexpr size_t kSnappyXerialBlockBytes = size_t{32} << 10;
// Each xerial block is prefixed with its compressed length.
inline constexpr size_t kSnappyXerialBlockLengthBytes = 4;

// zstd's own default window limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT), which libzstd-based readers
// (zstd-jni in Kafka's Java client, librdkafka) apply unless configured otherwise: frames asking
// for a larger window (over 128 MiB of history) are rejected. The decoder reserves the declared
// window up front, so this is also the bound on that reservation.
inline constexpr int kZstdWindowLogMax = 27;

// The codec's name as Kafka's compression.type spells it: "none", "gzip", "snappy", "lz4", "zstd".
absl::string_view CompressionName(Compression codec);

// Compresses `data` with `codec`, framed as described above. Fails with kInvalidArgument for a
// codec outside the enum or input over kCompressionBytesMax.
absl::StatusOr<std::string> Compress(Compression codec, absl::string_view data);

// Decompresses `data`, which must be exactly one compressed stream of `codec` (no trailing bytes).
// Fails with kInvalidArgument if it is malformed or truncated, or would decompress to more than
// `output_bytes_max` bytes (itself capped at kCompressionBytesMax).
absl::StatusOr<std::string> Decompress(Compression codec, absl::string_view data,
                                       size_t output_bytes_max);

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_COMPRESSION_H_
