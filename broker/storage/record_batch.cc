#include "broker/storage/record_batch.h"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/common/varint.h"
#include "broker/storage/compression.h"
#include "broker/storage/crc32c.h"

namespace runnel::storage {
namespace {

// The shortest record: length, attributes, timestampDelta, offsetDelta, keyLength, valueLength and
// headerCount, one byte each. Bounds how many records a given number of bytes can hold, so that a
// declared record count is checked against the bytes before it sizes anything.
constexpr size_t kRecordBytesMin = 7;
// The shortest header: keyLength and valueLength, one byte each.
constexpr size_t kRecordHeaderBytesMin = 2;
// A length field's value for a null key, value or header value.
constexpr int32_t kNullLength = -1;
// The CRC covers the batch from attributes to its end.
constexpr size_t kCrcCoveredOffset = kAttributesOffset;
// The smallest and largest batchLength: a bare header, and a batch of kBatchBytesMax.
constexpr int32_t kBatchLengthMin =
    static_cast<int32_t>(kBatchHeaderBytes - kBatchLogOverheadBytes);
constexpr int32_t kBatchLengthMax = static_cast<int32_t>(kBatchBytesMax - kBatchLogOverheadBytes);
constexpr int kCompressionCodecMax = static_cast<int>(Compression::kZstd);

static_assert(kBatchBytesMax - kBatchLogOverheadBytes <=
              size_t{std::numeric_limits<int32_t>::max()});
static_assert(kCrcOffset + sizeof(uint32_t) == kAttributesOffset);
static_assert(kRecordCountOffset + sizeof(int32_t) == kBatchHeaderBytes);

template <typename... Parts>
absl::Status Invalid(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat("record batch: ", parts...));
}

// --- Decoding ---

// A decoded record (and its headers) whose bytes still live in the batch or in its decompressed
// records, so that validation copies nothing.
struct HeaderView {
  absl::string_view key;
  std::optional<absl::string_view> value;
};
struct RecordView {
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  std::optional<absl::string_view> key;
  std::optional<absl::string_view> value;
  std::vector<HeaderView> headers;
};

// Reads the records of one batch, front to back, from bytes that belong to that batch alone.
class RecordReader {
 public:
  RecordReader(absl::string_view records, int32_t record_count)
      : rest_(records), record_count_(record_count) {}

  // Fails unless the declared count could fit in the bytes at all; checked before anyone sizes a
  // container by the count.
  absl::Status CheckCountFits() const {
    if (static_cast<size_t>(record_count_) > rest_.size() / kRecordBytesMin) {
      return Invalid("recordCount ", record_count_, " cannot fit in ", rest_.size(),
                     " bytes of records");
    }
    return absl::OkStatus();
  }

  // Reads record number `index` (for messages) into `*record`, reusing its header storage.
  absl::Status Next(int32_t index, RecordView* record) {
    index_ = index;
    if (rest_.empty()) {
      return Invalid("recordCount is ", record_count_, " but the records end after ", index);
    }
    const std::optional<int32_t> length = ConsumeVarint(&rest_);
    if (!length.has_value()) return Fail("malformed length");
    if (*length < 0 || static_cast<size_t>(*length) > rest_.size()) {
      return Fail(absl::StrCat("length ", *length, " but ", rest_.size(), " bytes remain"));
    }
    absl::string_view body = rest_.substr(0, static_cast<size_t>(*length));
    rest_.remove_prefix(body.size());

    if (body.empty()) return Fail("truncated before attributes");
    body.remove_prefix(1);  // attributes: unused by magic 2, ignored as Kafka ignores them.
    const std::optional<int64_t> timestamp_delta = ConsumeVarlong(&body);
    if (!timestamp_delta.has_value()) return Fail("malformed timestampDelta");
    record->timestamp_delta = *timestamp_delta;
    const std::optional<int32_t> offset_delta = ConsumeVarint(&body);
    if (!offset_delta.has_value()) return Fail("malformed offsetDelta");
    record->offset_delta = *offset_delta;
    if (absl::Status status = ReadBytes(&body, "key", &record->key); !status.ok()) return status;
    if (absl::Status status = ReadBytes(&body, "value", &record->value); !status.ok()) {
      return status;
    }

    const std::optional<int32_t> header_count = ConsumeVarint(&body);
    if (!header_count.has_value()) return Fail("malformed headerCount");
    if (*header_count < 0 || *header_count > kRecordHeadersMax) {
      return Fail(
          absl::StrCat("headerCount ", *header_count, " outside [0, ", kRecordHeadersMax, "]"));
    }
    if (static_cast<size_t>(*header_count) > body.size() / kRecordHeaderBytesMin) {
      return Fail(
          absl::StrCat("headerCount ", *header_count, " cannot fit in ", body.size(), " bytes"));
    }
    record->headers.clear();
    record->headers.reserve(static_cast<size_t>(*header_count));
    for (int32_t i = 0; i < *header_count; ++i) {
      std::optional<absl::string_view> key;
      if (absl::Status status = ReadBytes(&body, "header key", &key); !status.ok()) return status;
      if (!key.has_value()) return Fail(absl::StrCat("header ", i, " has a null key"));
      std::optional<absl::string_view> value;
      if (absl::Status status = ReadBytes(&body, "header value", &value); !status.ok()) {
        return status;
      }
      record->headers.push_back(HeaderView{*key, value});
    }
    if (!body.empty()) {
      return Fail(absl::StrCat(body.size(), " bytes left over inside the record's length"));
    }
    return absl::OkStatus();
  }

  // After the last record: nothing may follow it.
  absl::Status CheckFinished() const {
    if (!rest_.empty()) {
      return Invalid(rest_.size(), " bytes follow the last of ", record_count_, " records");
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Fail(absl::string_view what) const { return Invalid("record ", index_, ": ", what); }

  // Reads a varint length (kNullLength for null) and that many bytes.
  absl::Status ReadBytes(absl::string_view* body, absl::string_view field,
                         std::optional<absl::string_view>* bytes) const {
    const std::optional<int32_t> length = ConsumeVarint(body);
    if (!length.has_value()) return Fail(absl::StrCat("malformed ", field, " length"));
    if (*length == kNullLength) {
      *bytes = std::nullopt;
      return absl::OkStatus();
    }
    if (*length < 0 || static_cast<size_t>(*length) > body->size()) {
      return Fail(absl::StrCat(field, " length ", *length, " but ", body->size(),
                               " bytes remain in the record"));
    }
    *bytes = body->substr(0, static_cast<size_t>(*length));
    body->remove_prefix(static_cast<size_t>(*length));
    return absl::OkStatus();
  }

  absl::string_view rest_;
  const int32_t record_count_;
  int32_t index_ = 0;
};

// Header checks that come before the CRC, since they decide what the bytes are at all: the batch
// is exactly as long as it says, and magic 2 (the magic byte lies outside the CRC).
absl::StatusOr<BatchHeader> ParseFramedHeader(absl::string_view batch) {
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
  if (!header.ok()) return header.status();
  if (batch.size() != header->total_bytes()) {
    return Invalid("batch holds ", batch.size(), " bytes but batchLength says ",
                   header->total_bytes());
  }
  if (header->magic != kBatchMagic) return Invalid("magic ", int{header->magic}, ", expected 2");
  return header;
}

// Header checks for every reader of records, whether or not it checked the CRC: a known codec and a
// record count within limits.
absl::Status CheckCodecAndCount(const BatchHeader& header) {
  if ((header.attributes & kAttributeCompressionMask) > kCompressionCodecMax) {
    return Invalid("unknown compression codec ", header.attributes & kAttributeCompressionMask);
  }
  if (header.record_count < 0 || header.record_count > kBatchRecordsMax) {
    return Invalid("recordCount ", header.record_count, " outside [0, ", kBatchRecordsMax, "]");
  }
  return absl::OkStatus();
}

// The records section of a batch that passed the checks above, decompressed into `*storage` when
// compressed.
absl::StatusOr<absl::string_view> RecordsBytes(const BatchHeader& header, absl::string_view batch,
                                               size_t decompressed_bytes_max,
                                               std::string* storage) {
  const absl::string_view section = batch.substr(kBatchHeaderBytes);
  if (header.compression() == Compression::kNone) {
    if (section.size() > decompressed_bytes_max) {
      return Invalid("records of ", section.size(), " bytes exceed the limit of ",
                     decompressed_bytes_max);
    }
    return section;
  }
  absl::StatusOr<std::string> decompressed =
      Decompress(header.compression(), section, decompressed_bytes_max);
  if (!decompressed.ok()) {
    // Malformed input is the batch's fault; anything else (out of memory) is passed on as it is.
    if (!absl::IsInvalidArgument(decompressed.status())) return decompressed.status();
    return Invalid(decompressed.status().message());
  }
  *storage = *std::move(decompressed);
  return absl::string_view(*storage);
}

// Calls `visit(index, record)` for each record of `records`, in order, stopping at the first error
// (its own or the visitor's).
template <typename Visit>
absl::Status ForEachRecord(absl::string_view records, int32_t record_count, Visit visit) {
  RecordReader reader(records, record_count);
  if (absl::Status status = reader.CheckCountFits(); !status.ok()) return status;
  RecordView record;
  for (int32_t index = 0; index < record_count; ++index) {
    if (absl::Status status = reader.Next(index, &record); !status.ok()) return status;
    if (absl::Status status = visit(index, record); !status.ok()) return status;
  }
  return reader.CheckFinished();
}

// The checks that ValidateBatch makes of the records of an uncompressed batch (ForEachRecord and
// its visitor: framing, lengths, offset deltas 0, 1, 2, ..., timestamps up to maxTimestamp when
// `check_timestamps`), without building any view of them. True means every one passed; false
// means one failed, and the caller runs the full decoder to say which (the slow path only ever
// runs for a bad batch). Every field is consumed by the same varint readers as the decoder's, so
// the two accept exactly the same bytes.
bool RecordsPassQuickWalk(absl::string_view rest, int32_t record_count, const BatchHeader& header,
                          bool check_timestamps) {
  if (static_cast<size_t>(record_count) > rest.size() / kRecordBytesMin) return false;
  // A bytes field: a length, kNullLength when `nullable`, else that many bytes.
  const auto skip_bytes = [](absl::string_view* body, bool nullable) {
    const std::optional<int32_t> length = ConsumeVarint(body);
    if (!length.has_value()) return false;
    if (*length == kNullLength) return nullable;
    if (*length < 0 || static_cast<size_t>(*length) > body->size()) return false;
    body->remove_prefix(static_cast<size_t>(*length));
    return true;
  };
  for (int32_t index = 0; index < record_count; ++index) {
    const std::optional<int32_t> length = ConsumeVarint(&rest);
    if (!length.has_value() || *length < 0 || static_cast<size_t>(*length) > rest.size()) {
      return false;
    }
    absl::string_view body = rest.substr(0, static_cast<size_t>(*length));
    rest.remove_prefix(body.size());
    if (body.empty()) return false;
    body.remove_prefix(1);  // attributes
    const std::optional<int64_t> timestamp_delta = ConsumeVarlong(&body);
    if (!timestamp_delta.has_value()) return false;
    const std::optional<int32_t> offset_delta = ConsumeVarint(&body);
    if (!offset_delta.has_value() || *offset_delta != index) return false;
    if (!skip_bytes(&body, /*nullable=*/true) || !skip_bytes(&body, /*nullable=*/true)) {
      return false;
    }
    const std::optional<int32_t> header_count = ConsumeVarint(&body);
    if (!header_count.has_value() || *header_count < 0 || *header_count > kRecordHeadersMax ||
        static_cast<size_t>(*header_count) > body.size() / kRecordHeaderBytesMin) {
      return false;
    }
    for (int32_t i = 0; i < *header_count; ++i) {
      if (!skip_bytes(&body, /*nullable=*/false) || !skip_bytes(&body, /*nullable=*/true)) {
        return false;
      }
    }
    if (!body.empty()) return false;
    if (check_timestamps) {
      int64_t timestamp = 0;
      if (__builtin_add_overflow(header.base_timestamp, *timestamp_delta, &timestamp) ||
          timestamp > header.max_timestamp) {
        return false;
      }
    }
  }
  return rest.empty();
}

// --- Encoding ---

// The bytes a record takes after its length field, or nullopt when over kBatchBytesMax (which also
// keeps every length within an int32).
std::optional<size_t> RecordBodyBytes(const Record& record) {
  const auto bytes_field = [](const std::optional<std::string>& bytes) -> std::optional<size_t> {
    if (!bytes.has_value()) return VarintBytes(kNullLength);
    if (bytes->size() > kBatchBytesMax) return std::nullopt;
    return VarintBytes(static_cast<int32_t>(bytes->size())) + bytes->size();
  };
  size_t total = 1 + VarlongBytes(record.timestamp_delta) + VarintBytes(record.offset_delta) +
                 VarintBytes(static_cast<int32_t>(record.headers.size()));
  const std::optional<size_t> key = bytes_field(record.key);
  const std::optional<size_t> value = bytes_field(record.value);
  if (!key || !value) return std::nullopt;
  total += *key + *value;
  for (const RecordHeader& header : record.headers) {
    const std::optional<size_t> header_key = bytes_field(header.key);
    const std::optional<size_t> header_value = bytes_field(header.value);
    if (!header_key || !header_value) return std::nullopt;
    total += *header_key + *header_value;
    if (total > kBatchBytesMax) return std::nullopt;
  }
  if (total > kBatchBytesMax) return std::nullopt;
  return total;
}

void AppendBytesField(std::string& out, const std::optional<std::string>& bytes) {
  if (!bytes.has_value()) {
    AppendVarint(out, kNullLength);
    return;
  }
  AppendVarint(out, static_cast<int32_t>(bytes->size()));
  out.append(*bytes);
}

// Appends `record` (length field included) to `out`. `body_bytes` is RecordBodyBytes(record).
void AppendRecord(std::string& out, const Record& record, size_t body_bytes) {
  AppendVarint(out, static_cast<int32_t>(body_bytes));
  const size_t body_start = out.size();
  out.push_back('\0');  // attributes: unused by magic 2.
  AppendVarlong(out, record.timestamp_delta);
  AppendVarint(out, record.offset_delta);
  AppendBytesField(out, record.key);
  AppendBytesField(out, record.value);
  AppendVarint(out, static_cast<int32_t>(record.headers.size()));
  for (const RecordHeader& header : record.headers) {
    AppendBytesField(out, header.key);
    AppendBytesField(out, header.value);
  }
  assert(out.size() - body_start == body_bytes);
}

}  // namespace

absl::StatusOr<BatchHeader> ParseBatchHeader(absl::string_view bytes) {
  if (bytes.size() < kBatchHeaderBytes) {
    return Invalid("header needs ", kBatchHeaderBytes, " bytes, got ", bytes.size());
  }
  const char* data = bytes.data();
  BatchHeader header;
  header.base_offset = LoadBigEndian<int64_t>(data + kBaseOffsetOffset);
  header.batch_length = LoadBigEndian<int32_t>(data + kBatchLengthOffset);
  if (header.batch_length < kBatchLengthMin || header.batch_length > kBatchLengthMax) {
    return Invalid("batchLength ", header.batch_length, " outside [", kBatchLengthMin, ", ",
                   kBatchLengthMax, "]");
  }
  header.partition_leader_epoch = LoadBigEndian<int32_t>(data + kPartitionLeaderEpochOffset);
  header.magic = LoadBigEndian<int8_t>(data + kMagicOffset);
  header.crc = LoadBigEndian<uint32_t>(data + kCrcOffset);
  header.attributes = LoadBigEndian<int16_t>(data + kAttributesOffset);
  header.last_offset_delta = LoadBigEndian<int32_t>(data + kLastOffsetDeltaOffset);
  header.base_timestamp = LoadBigEndian<int64_t>(data + kBaseTimestampOffset);
  header.max_timestamp = LoadBigEndian<int64_t>(data + kMaxTimestampOffset);
  header.producer_id = LoadBigEndian<int64_t>(data + kProducerIdOffset);
  header.producer_epoch = LoadBigEndian<int16_t>(data + kProducerEpochOffset);
  header.base_sequence = LoadBigEndian<int32_t>(data + kBaseSequenceOffset);
  header.record_count = LoadBigEndian<int32_t>(data + kRecordCountOffset);
  return header;
}

uint32_t ComputeBatchCrc(absl::string_view batch) {
  assert(batch.size() >= kCrcCoveredOffset);
  return Crc32c(batch.substr(std::min(kCrcCoveredOffset, batch.size())));
}

absl::Status ValidateBatch(absl::string_view batch, const BatchValidationOptions& options) {
  return ValidateAndParseBatch(batch, options).status();
}

absl::StatusOr<BatchHeader> ValidateAndParseBatch(absl::string_view batch,
                                                  const BatchValidationOptions& options) {
  const size_t batch_bytes_max = std::min(options.batch_bytes_max, kBatchBytesMax);
  absl::StatusOr<BatchHeader> header = ParseFramedHeader(batch);
  if (!header.ok()) return header.status();
  if (batch.size() > batch_bytes_max) {
    return Invalid("batch of ", batch.size(), " bytes exceeds the limit of ", batch_bytes_max);
  }
  const uint32_t crc_computed = ComputeBatchCrc(batch);
  if (crc_computed != header->crc) {
    return absl::DataLossError(absl::StrCat("record batch: CRC mismatch: stored ",
                                            absl::Hex(header->crc), ", computed ",
                                            absl::Hex(crc_computed)));
  }
  if (absl::Status status = CheckCodecAndCount(*header); !status.ok()) return status;
  if (!options.check_records) return header;

  // A batch as a producer sends it: records with offset deltas 0..n-1. (Compacted batches, with
  // gaps, are checked with check_records off.)
  if (header->record_count == 0) return Invalid("batch holds no records");
  if (header->last_offset_delta != header->record_count - 1) {
    return Invalid("lastOffsetDelta ", header->last_offset_delta, " but recordCount ",
                   header->record_count);
  }
  std::string decompressed;
  // Decompressed records may take up to kBatchBytesMax, as BuildBatch allows.
  absl::StatusOr<absl::string_view> records =
      RecordsBytes(*header, batch, kBatchBytesMax, &decompressed);
  if (!records.ok()) return records.status();
  // Under LogAppendTime the records' own timestamps are not the ones readers see (every record
  // takes maxTimestamp, the append time), and the broker's clock may lag the producer's, so only
  // CreateTime batches have their record timestamps checked.
  const bool check_timestamps = !header->log_append_time();
  if (header->compression() == Compression::kNone &&
      RecordsPassQuickWalk(*records, header->record_count, *header, check_timestamps)) {
    return header;
  }
  absl::Status records_valid = ForEachRecord(
      *records, header->record_count, [&](int32_t index, const RecordView& record) -> absl::Status {
        if (record.offset_delta != index) {
          return Invalid("record ", index, " has offsetDelta ", record.offset_delta);
        }
        if (!check_timestamps) return absl::OkStatus();
        int64_t timestamp = 0;
        // Only the upper bound is a rule: Kafka's producers take baseTimestamp from the first
        // record, so a later record with an earlier user-supplied timestamp has a negative delta.
        if (__builtin_add_overflow(header->base_timestamp, record.timestamp_delta, &timestamp) ||
            timestamp > header->max_timestamp) {
          return Invalid("record ", index, " has timestampDelta ", record.timestamp_delta,
                         ", past maxTimestamp ", header->max_timestamp, " (baseTimestamp ",
                         header->base_timestamp, ")");
        }
        return absl::OkStatus();
      });
  if (!records_valid.ok()) return records_valid;
  return header;
}

absl::StatusOr<std::vector<absl::string_view>> SplitBatches(absl::string_view bytes,
                                                            size_t* remainder_bytes) {
  std::vector<absl::string_view> batches;
  size_t position = 0;
  // A tail shorter than a header is an incomplete batch, like a tail shorter than its batchLength.
  while (bytes.size() - position >= kBatchHeaderBytes) {
    absl::StatusOr<BatchHeader> header = ParseBatchHeader(bytes.substr(position));
    if (!header.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("at byte ", position, ": ", header.status().message()));
    }
    if (header->total_bytes() > bytes.size() - position) break;
    batches.push_back(bytes.substr(position, header->total_bytes()));
    position += header->total_bytes();
  }
  if (remainder_bytes != nullptr) *remainder_bytes = bytes.size() - position;
  return batches;
}

void SetBaseOffset(char* batch, int64_t base_offset) {
  StoreBigEndian(batch + kBaseOffsetOffset, base_offset);
}

void SetPartitionLeaderEpoch(char* batch, int32_t epoch) {
  StoreBigEndian(batch + kPartitionLeaderEpochOffset, epoch);
}

void SetLogAppendTime(std::string& batch, int64_t timestamp_ms) {
  assert(batch.size() >= kBatchHeaderBytes);
  const int16_t attributes = LoadBigEndian<int16_t>(batch.data() + kAttributesOffset);
  StoreBigEndian(batch.data() + kAttributesOffset,
                 static_cast<int16_t>(attributes | kAttributeLogAppendTime));
  StoreBigEndian(batch.data() + kMaxTimestampOffset, timestamp_ms);
  StoreBigEndian(batch.data() + kCrcOffset, ComputeBatchCrc(batch));
}

absl::StatusOr<std::vector<Record>> DecodeRecords(absl::string_view batch,
                                                  size_t decompressed_bytes_max) {
  absl::StatusOr<BatchHeader> header = ParseFramedHeader(batch);
  if (!header.ok()) return header.status();
  if (absl::Status status = CheckCodecAndCount(*header); !status.ok()) return status;
  std::string decompressed;
  absl::StatusOr<absl::string_view> records_bytes =
      RecordsBytes(*header, batch, decompressed_bytes_max, &decompressed);
  if (!records_bytes.ok()) return records_bytes.status();

  std::vector<Record> records;
  // Bounded by the bytes, not just by the declared count (which ForEachRecord checks first anyway).
  records.reserve(
      std::min(static_cast<size_t>(header->record_count), records_bytes->size() / kRecordBytesMin));
  const auto to_string = [](const std::optional<absl::string_view>& bytes) {
    return bytes.has_value() ? std::optional<std::string>(std::string(*bytes)) : std::nullopt;
  };
  absl::Status status = ForEachRecord(
      *records_bytes, header->record_count, [&](int32_t index, const RecordView& view) {
        assert(static_cast<size_t>(index) == records.size());
        Record& record = records.emplace_back();
        record.timestamp_delta = view.timestamp_delta;
        record.offset_delta = view.offset_delta;
        record.key = to_string(view.key);
        record.value = to_string(view.value);
        record.headers.reserve(view.headers.size());
        for (const HeaderView& header_view : view.headers) {
          record.headers.push_back(
              RecordHeader{std::string(header_view.key), to_string(header_view.value)});
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return records;
}

absl::StatusOr<std::string> BuildBatch(const BatchBuildOptions& options,
                                       const std::vector<Record>& records) {
  if (records.empty()) return Invalid("cannot build a batch without records");
  if (records.size() > static_cast<size_t>(kBatchRecordsMax)) {
    return Invalid(records.size(), " records exceed the limit of ", kBatchRecordsMax);
  }
  if (static_cast<int>(options.compression) > kCompressionCodecMax) {
    return Invalid("unknown compression codec ", static_cast<int>(options.compression));
  }

  // Check every record and size the records section before writing anything.
  size_t records_bytes = 0;
  std::vector<size_t> body_bytes(records.size());
  int32_t offset_delta_previous = -1;
  int64_t timestamp_delta_max = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& record = records[i];
    // Gaps are allowed (a compacted batch keeps its survivors' deltas); going backwards is not.
    if (record.offset_delta <= offset_delta_previous) {
      return Invalid("record ", i, " has offsetDelta ", record.offset_delta, " after ",
                     offset_delta_previous, "; offset deltas must increase from 0");
    }
    offset_delta_previous = record.offset_delta;
    timestamp_delta_max = std::max(timestamp_delta_max, record.timestamp_delta);
    if (record.headers.size() > static_cast<size_t>(kRecordHeadersMax)) {
      return Invalid("record ", i, " has ", record.headers.size(), " headers, over the limit of ",
                     kRecordHeadersMax);
    }
    const std::optional<size_t> bytes = RecordBodyBytes(record);
    if (!bytes.has_value()) return Invalid("record ", i, " exceeds ", kBatchBytesMax, " bytes");
    body_bytes[i] = *bytes;
    records_bytes += VarintBytes(static_cast<int32_t>(*bytes)) + *bytes;
    // Past this, no reader would accept the batch, compressed or not (DecodeRecords bounds the
    // decompressed records by kBatchBytesMax by default).
    if (records_bytes > kBatchBytesMax - kBatchHeaderBytes) {
      return Invalid("records exceed ", kBatchBytesMax - kBatchHeaderBytes, " bytes");
    }
  }
  int64_t max_timestamp = 0;
  if (__builtin_add_overflow(options.base_timestamp, timestamp_delta_max, &max_timestamp)) {
    return Invalid("baseTimestamp ", options.base_timestamp, " plus timestampDelta ",
                   timestamp_delta_max, " overflows");
  }

  std::string plain;
  std::string* records_out = &plain;
  std::string batch;
  if (options.compression == Compression::kNone) {
    batch.reserve(kBatchHeaderBytes + records_bytes);
    batch.resize(kBatchHeaderBytes);
    records_out = &batch;  // Written in place after the header.
  } else {
    plain.reserve(records_bytes);
  }
  for (size_t i = 0; i < records.size(); ++i) AppendRecord(*records_out, records[i], body_bytes[i]);
  if (options.compression != Compression::kNone) {
    assert(plain.size() == records_bytes);
    absl::StatusOr<std::string> compressed = Compress(options.compression, plain);
    if (!compressed.ok()) return compressed.status();
    if (compressed->size() > kBatchBytesMax - kBatchHeaderBytes) {
      return Invalid("compressed records exceed ", kBatchBytesMax - kBatchHeaderBytes, " bytes");
    }
    batch.reserve(kBatchHeaderBytes + compressed->size());
    batch.resize(kBatchHeaderBytes);
    batch.append(*compressed);
  }
  assert(batch.size() >= kBatchHeaderBytes && batch.size() <= kBatchBytesMax);

  int16_t attributes = static_cast<int16_t>(options.compression);
  if (options.log_append_time) attributes |= kAttributeLogAppendTime;
  if (options.transactional) attributes |= kAttributeTransactional;
  if (options.control) attributes |= kAttributeControl;
  char* header = batch.data();
  StoreBigEndian(header + kBaseOffsetOffset, options.base_offset);
  StoreBigEndian(header + kBatchLengthOffset,
                 static_cast<int32_t>(batch.size() - kBatchLogOverheadBytes));
  StoreBigEndian(header + kPartitionLeaderEpochOffset, options.partition_leader_epoch);
  StoreBigEndian(header + kMagicOffset, kBatchMagic);
  StoreBigEndian(header + kAttributesOffset, attributes);
  StoreBigEndian(header + kLastOffsetDeltaOffset, records.back().offset_delta);
  StoreBigEndian(header + kBaseTimestampOffset, options.base_timestamp);
  StoreBigEndian(header + kMaxTimestampOffset, max_timestamp);
  StoreBigEndian(header + kProducerIdOffset, options.producer_id);
  StoreBigEndian(header + kProducerEpochOffset, options.producer_epoch);
  StoreBigEndian(header + kBaseSequenceOffset, options.base_sequence);
  StoreBigEndian(header + kRecordCountOffset, static_cast<int32_t>(records.size()));
  // Last: the CRC covers every field after it.
  StoreBigEndian(header + kCrcOffset, ComputeBatchCrc(batch));
  return batch;
}

}  // namespace runnel::storage
