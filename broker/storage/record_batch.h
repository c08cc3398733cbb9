// Kafka RecordBatch v2 (magic 2): the one home of its description in Runnel, and the unit that
// Runnel stores, replicates and serves exactly as clients send it.
//
// Layout (all integers big-endian):
//   offset  size  field
//   0       8     baseOffset             i64   assigned by the log on append
//   8       4     batchLength            i32   bytes after this field (total size = 12 + batchLength)
//   12      4     partitionLeaderEpoch   i32   stamped by the log on append
//   16      1     magic                  i8    always 2
//   17      4     crc                    u32   CRC-32C of every byte from attributes to the end
//   21      2     attributes             i16   bits 0-2 compression (0 none, 1 gzip, 2 snappy,
//                                              3 lz4, 4 zstd), bit 3 timestamp type
//                                              (1 = LogAppendTime), bit 4 transactional,
//                                              bit 5 control batch
//   23      4     lastOffsetDelta        i32
//   27      8     baseTimestamp          i64   ms
//   35      8     maxTimestamp           i64   ms
//   43      8     producerId             i64   -1 when not idempotent
//   51      2     producerEpoch          i16
//   53      4     baseSequence           i32
//   57      4     recordCount            i32
//   61      ...   records: plain, or one compressed blob of them (gzip; snappy in xerial framing
//                 or raw; lz4 frame format; zstd frame)
// A record: length varint (bytes after it), attributes i8 (unused, 0), timestampDelta varlong,
// offsetDelta varint, keyLength varint (-1 = null) and key, valueLength varint (-1 = null) and value,
// headerCount varint, then per header: keyLength varint and key (a string, never null), valueLength
// varint (-1 = null) and value. Varints are zigzag-encoded as in protobuf's sint32/sint64.
//
// Because the CRC starts at attributes, the log rewrites baseOffset and partitionLeaderEpoch freely.
// Stamping LogAppendTime changes attributes and maxTimestamp, which the CRC covers, so it is then
// recomputed.
#ifndef RUNNEL_BROKER_STORAGE_RECORD_BATCH_H_
#define RUNNEL_BROKER_STORAGE_RECORD_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel::storage {

inline constexpr size_t kBatchHeaderBytes = 61;
// baseOffset and batchLength: the part of the header outside batchLength's count.
inline constexpr size_t kBatchLogOverheadBytes = 12;
inline constexpr int8_t kBatchMagic = 2;
// The largest batch any path accepts, whatever a topic's max.message.bytes says.
inline constexpr size_t kBatchBytesMax = size_t{64} << 20;
// The most records one batch may declare.
inline constexpr int32_t kBatchRecordsMax = 1 << 20;
// The most headers one record may carry.
inline constexpr int32_t kRecordHeadersMax = 1 << 16;

// Byte offsets of the header fields.
inline constexpr size_t kBaseOffsetOffset = 0;
inline constexpr size_t kBatchLengthOffset = 8;
inline constexpr size_t kPartitionLeaderEpochOffset = 12;
inline constexpr size_t kMagicOffset = 16;
inline constexpr size_t kCrcOffset = 17;
inline constexpr size_t kAttributesOffset = 21;
inline constexpr size_t kLastOffsetDeltaOffset = 23;
inline constexpr size_t kBaseTimestampOffset = 27;
inline constexpr size_t kMaxTimestampOffset = 35;
inline constexpr size_t kProducerIdOffset = 43;
inline constexpr size_t kProducerEpochOffset = 51;
inline constexpr size_t kBaseSequenceOffset = 53;
inline constexpr size_t kRecordCountOffset = 57;

enum class Compression : uint8_t { kNone = 0, kGzip = 1, kSnappy = 2, kLz4 = 3, kZstd = 4 };

inline constexpr int16_t kAttributeCompressionMask = 0x07;
inline constexpr int16_t kAttributeLogAppendTime = 0x08;
inline constexpr int16_t kAttributeTransactional = 0x10;
inline constexpr int16_t kAttributeControl = 0x20;

struct BatchHeader {
  int64_t base_offset = 0;
  int32_t batch_length = 0;
  int32_t partition_leader_epoch = -1;
  int8_t magic = kBatchMagic;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t record_count = 0;

  Compression compression() const {
    return static_cast<Compression>(attributes & kAttributeCompressionMask);
  }
  bool log_append_time() const { return (attributes & kAttributeLogAppendTime) != 0; }
  bool transactional() const { return (attributes & kAttributeTransactional) != 0; }
  bool control() const { return (attributes & kAttributeControl) != 0; }
  int64_t last_offset() const { return base_offset + last_offset_delta; }
  // The batch's size in bytes, header included.
  size_t total_bytes() const { return kBatchLogOverheadBytes + static_cast<size_t>(batch_length); }
};

struct RecordHeader {
  std::string key;
  std::optional<std::string> value;
  friend bool operator==(const RecordHeader&, const RecordHeader&) = default;
};

// One record, decoded. Absolute offset and timestamp are base + delta.
struct Record {
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<RecordHeader> headers;
  friend bool operator==(const Record&, const Record&) = default;
};

// Reads the 61-byte header from the start of `bytes` without validating the batch. Fails with
// kInvalidArgument if fewer than kBatchHeaderBytes bytes are given or batchLength is out of range
// (smaller than the header or larger than kBatchBytesMax).
absl::StatusOr<BatchHeader> ParseBatchHeader(absl::string_view bytes);

// The CRC-32C a batch should carry: over bytes [kAttributesOffset, end).
uint32_t ComputeBatchCrc(absl::string_view batch);

struct BatchValidationOptions {
  // The largest batch accepted (a topic's max.message.bytes), at most kBatchBytesMax.
  size_t batch_bytes_max = kBatchBytesMax;
  // Decode every record (decompressing if needed) and check the count, the offset deltas
  // (0, 1, 2, ... in order), lastOffsetDelta, each record's length, and, for CreateTime batches,
  // that no record's timestamp exceeds maxTimestamp (records may precede baseTimestamp, as Kafka's
  // producers allow). Costs a pass over the records; without it only the header, the size and the
  // CRC are checked. Compacted batches have gaps in their offset deltas: check them without it.
  bool check_records = true;
};

// Validates one complete batch: exactly total_bytes() long, magic 2, a known compression codec,
// the CRC, record count within limits, and (see options) the records themselves. Returns
// kDataLoss for a CRC mismatch (corrupt bytes) and kInvalidArgument for every other violation, with
// a message that says which rule was broken.
absl::Status ValidateBatch(absl::string_view batch, const BatchValidationOptions& options);
// ValidateBatch, returning the batch's header when it is valid (saves the caller parsing it again).
absl::StatusOr<BatchHeader> ValidateAndParseBatch(absl::string_view batch,
                                                  const BatchValidationOptions& options);

// Splits concatenated batches (a Produce request's records field, a segment's contents) into
// whole batches. Stops at the first incomplete batch; `*remainder_bytes` (if given) is how many bytes
// were left over. Fails with kInvalidArgument if a batch header is unreadable.
absl::StatusOr<std::vector<absl::string_view>> SplitBatches(absl::string_view bytes,
                                                            size_t* remainder_bytes = nullptr);

// In-place rewrites of fields outside the CRC. `batch` must hold at least kBatchHeaderBytes bytes.
void SetBaseOffset(char* batch, int64_t base_offset);
void SetPartitionLeaderEpoch(char* batch, int32_t epoch);
// Sets maxTimestamp and the LogAppendTime attribute, then recomputes the CRC (both are inside it).
void SetLogAppendTime(std::string& batch, int64_t timestamp_ms);

// Decodes every record of a valid batch, decompressing as needed. Output is bounded: a batch whose
// records would decompress past `decompressed_bytes_max` fails with kInvalidArgument.
absl::StatusOr<std::vector<Record>> DecodeRecords(absl::string_view batch,
                                                  size_t decompressed_bytes_max = kBatchBytesMax);

struct BatchBuildOptions {
  int64_t base_offset = 0;
  int32_t partition_leader_epoch = -1;
  Compression compression = Compression::kNone;
  bool log_append_time = false;
  bool transactional = false;
  bool control = false;
  int64_t base_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
};

// Builds a batch from records (their offset deltas and timestamp deltas are used as given;
// lastOffsetDelta is the largest offset delta, maxTimestamp base + the largest timestamp delta), with
// a correct CRC. Used by the client library, by compaction, and by tests.
absl::StatusOr<std::string> BuildBatch(const BatchBuildOptions& options,
                                       const std::vector<Record>& records);

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_RECORD_BATCH_H_
