#include "broker/storage/compaction.h"

#include <cassert>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/storage/record_batch.h"

namespace runnel::storage {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// Keeps the status code and puts `context` (which batch) in front of the message.
absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// Names a batch by its byte position in the input and its base offset (-1 when unreadable).
std::string BatchContext(size_t position_bytes, int64_t base_offset) {
  return absl::StrCat("batch at byte ", position_bytes, " (base offset ", base_offset, ")");
}

// Splits `batches` into whole batches; a trailing fragment is an error, because dropping it would
// silently lose data and keeping it would write a damaged batch.
absl::StatusOr<std::vector<absl::string_view>> SplitWhole(absl::string_view batches) {
  size_t remainder_bytes = 0;
  absl::StatusOr<std::vector<absl::string_view>> split = SplitBatches(batches, &remainder_bytes);
  if (!split.ok()) return split.status();
  if (remainder_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the last ", remainder_bytes, " of ",
                                                   batches.size(),
                                                   " bytes are not a whole batch"));
  }
  return split;
}

// Checks one batch's header, size and CRC (not its records), and that it lies above
// `previous_last_offset` (batches come in increasing offset order). Fills `header`.
absl::Status CheckBatch(absl::string_view batch, size_t position_bytes,
                        int64_t previous_last_offset, BatchHeader* header) {
  absl::StatusOr<BatchHeader> parsed = ParseBatchHeader(batch);
  if (!parsed.ok()) return WithContext(parsed.status(), BatchContext(position_bytes, -1));
  const std::string context = BatchContext(position_bytes, parsed->base_offset);
  absl::Status valid = ValidateBatch(batch, BatchValidationOptions{.check_records = false});
  if (!valid.ok()) return WithContext(valid, context);
  if (parsed->base_offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": negative base offset"));
  }
  if (parsed->last_offset_delta < 0 || parsed->base_offset > kInt64Max - parsed->last_offset_delta) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": lastOffsetDelta ", parsed->last_offset_delta, " out of range"));
  }
  if (parsed->base_offset <= previous_last_offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": not above the previous batch's last offset ", previous_last_offset));
  }
  *header = *parsed;
  return absl::OkStatus();
}

// A record's timestamp: the batch's maxTimestamp under LogAppendTime (the append time), else
// baseTimestamp + timestampDelta; nullopt when that overflows.
std::optional<int64_t> RecordTimestamp(const BatchHeader& header, const Record& record) {
  if (header.log_append_time()) return header.max_timestamp;
  int64_t timestamp = 0;
  if (__builtin_add_overflow(header.base_timestamp, record.timestamp_delta, &timestamp)) {
    return std::nullopt;
  }
  return timestamp;
}

// Checks what compaction relies on in decoded records: as many as the header says, offset deltas
// strictly increasing within [0, lastOffsetDelta] (gaps allowed: the batch may have been compacted
// before), and timestamps that do not overflow.
absl::Status CheckRecords(const BatchHeader& header, const std::vector<Record>& records,
                          absl::string_view context) {
  if (records.size() != static_cast<size_t>(header.record_count)) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": holds ", records.size(),
                                                   " records, header says ", header.record_count));
  }
  int64_t previous_delta = -1;
  for (const Record& record : records) {
    if (record.offset_delta <= previous_delta || record.offset_delta > header.last_offset_delta) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": offset delta ", record.offset_delta, " after ", previous_delta,
                       " with lastOffsetDelta ", header.last_offset_delta));
    }
    previous_delta = record.offset_delta;
    if (!RecordTimestamp(header, record).has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": timestamp delta ", record.timestamp_delta, " overflows"));
    }
  }
  return absl::OkStatus();
}

// Decodes a checked batch's records and checks them.
absl::StatusOr<std::vector<Record>> DecodeChecked(absl::string_view batch,
                                                  const BatchHeader& header,
                                                  absl::string_view context) {
  absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
  if (!records.ok()) return WithContext(records.status(), context);
  absl::Status checked = CheckRecords(header, *records, context);
  if (!checked.ok()) return checked;
  return records;
}

// now_ms - delete_retention_ms, saturating at the smallest int64.
int64_t DeleteHorizonMs(int64_t now_ms, int64_t delete_retention_ms) {
  assert(delete_retention_ms >= 0);
  if (now_ms < kInt64Min + delete_retention_ms) return kInt64Min;
  return now_ms - delete_retention_ms;
}

// Rebuilds `original` (described by `header`) with only `survivors`, keeping every header field
// but maxTimestamp (recomputed, except under LogAppendTime) and recordCount. Checks the result.
absl::StatusOr<std::string> RebuildBatch(const BatchHeader& header,
                                         const std::vector<Record>& survivors,
                                         absl::string_view context) {
  assert(!survivors.empty());
  absl::StatusOr<std::string> rebuilt = BuildBatch(
      BatchBuildOptions{
          .base_offset = header.base_offset,
          .partition_leader_epoch = header.partition_leader_epoch,
          .compression = header.compression(),
          .log_append_time = header.log_append_time(),
          .transactional = header.transactional(),
          .control = false,
          .base_timestamp = header.base_timestamp,
          .producer_id = header.producer_id,
          .producer_epoch = header.producer_epoch,
          .base_sequence = header.base_sequence,
      },
      survivors);
  if (!rebuilt.ok()) return WithContext(rebuilt.status(), context);
  std::string& bytes = *rebuilt;
  if (bytes.size() < kBatchHeaderBytes) {
    return absl::InternalError(absl::StrCat(context, ": BuildBatch returned ", bytes.size(),
                                            " bytes"));
  }
  // BuildBatch ends the batch at its last survivor; Kafka keeps the original last offset so that
  // the log never hands out an offset twice. Attributes are copied whole, any bits BuildBatch does
  // not know included. The append time of a LogAppendTime batch is its maxTimestamp.
  StoreBigEndian<int32_t>(&bytes[kLastOffsetDeltaOffset], header.last_offset_delta);
  StoreBigEndian<int16_t>(&bytes[kAttributesOffset], header.attributes);
  if (header.log_append_time()) {
    StoreBigEndian<int64_t>(&bytes[kMaxTimestampOffset], header.max_timestamp);
  }
  StoreBigEndian<uint32_t>(&bytes[kCrcOffset], ComputeBatchCrc(bytes));

  // Check the result where it is made: a bad batch written here would replace good data on disk.
  absl::Status valid = ValidateBatch(bytes, BatchValidationOptions{.check_records = false});
  if (!valid.ok()) {
    return absl::InternalError(absl::StrCat(context, ": rebuilt batch is invalid: ",
                                            valid.message()));
  }
  absl::StatusOr<BatchHeader> out = ParseBatchHeader(bytes);
  if (!out.ok()) return absl::InternalError(absl::StrCat(context, ": ", out.status().message()));
  const bool same_fields = out->base_offset == header.base_offset &&
                           out->partition_leader_epoch == header.partition_leader_epoch &&
                           out->attributes == header.attributes &&
                           out->last_offset_delta == header.last_offset_delta &&
                           out->base_timestamp == header.base_timestamp &&
                           out->producer_id == header.producer_id &&
                           out->producer_epoch == header.producer_epoch &&
                           out->base_sequence == header.base_sequence &&
                           out->record_count == static_cast<int32_t>(survivors.size());
  if (!same_fields) {
    return absl::InternalError(absl::StrCat(context, ": rebuilt batch changed a header field"));
  }
  return rebuilt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// OffsetMap

OffsetMap::OffsetMap(size_t entries_max, size_t key_bytes_max)
    : entries_max_(entries_max), key_bytes_max_(key_bytes_max) {
  assert(entries_max >= 1);
  assert(entries_max <= kOffsetMapEntriesMax);
  assert(key_bytes_max >= 1);
  assert(key_bytes_max <= kOffsetMapKeyBytesMax);
}

void OffsetMap::Put(absl::string_view key, int64_t offset) {
  assert(offset >= 0);
  auto it = offsets_.find(key);
  if (it != offsets_.end()) {
    if (offset > it->second) it->second = offset;
  } else if (Fits(1, key.size())) {
    offsets_.emplace(std::string(key), offset);
    key_bytes_ += key.size();
  } else {
    // Not recorded, so every record of this key survives compaction, which is safe; and the
    // offset does not extend last_offset_, since the map does not cover it.
    turned_away_ = true;
    return;
  }
  Cover(offset);
}

std::optional<int64_t> OffsetMap::Get(absl::string_view key) const {
  auto it = offsets_.find(key);
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

bool OffsetMap::full() const {
  return turned_away_ || offsets_.size() >= entries_max_ || key_bytes_ >= key_bytes_max_;
}

void OffsetMap::Clear() {
  offsets_.clear();
  key_bytes_ = 0;
  last_offset_ = -1;
  turned_away_ = false;
}

void OffsetMap::Cover(int64_t offset) {
  if (offset > last_offset_) last_offset_ = offset;
}

bool OffsetMap::Fits(size_t new_entries, size_t new_key_bytes) const {
  return new_entries <= entries_max_ - offsets_.size() &&
         new_key_bytes <= key_bytes_max_ - key_bytes_;
}

// ---------------------------------------------------------------------------------------------
// AddToOffsetMap

absl::Status AddToOffsetMap(absl::string_view batches, OffsetMap& map) {
  absl::StatusOr<std::vector<absl::string_view>> split = SplitWhole(batches);
  if (!split.ok()) return split.status();
  size_t position_bytes = 0;
  int64_t previous_last_offset = -1;
  for (absl::string_view batch : *split) {
    if (map.full()) return absl::OkStatus();
    BatchHeader header;
    absl::Status checked = CheckBatch(batch, position_bytes, previous_last_offset, &header);
    if (!checked.ok()) return checked;
    const std::string context = BatchContext(position_bytes, header.base_offset);
    position_bytes += batch.size();
    previous_last_offset = header.last_offset();
    if (header.control()) {
      map.Cover(header.last_offset());
      continue;
    }
    absl::StatusOr<std::vector<Record>> records = DecodeChecked(batch, header, context);
    if (!records.ok()) return records.status();

    // Count the keys this batch would add, each distinct key once, before feeding any of it.
    absl::flat_hash_set<absl::string_view> new_keys;  // Lookups only, never iterated.
    size_t new_key_bytes = 0;
    for (const Record& record : *records) {
      if (!record.key.has_value()) continue;
      const absl::string_view key = *record.key;
      if (map.Get(key).has_value()) continue;
      if (new_keys.insert(key).second) new_key_bytes += key.size();
    }
    if (new_keys.size() > map.entries_max() || new_key_bytes > map.key_bytes_max()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          context, ": has ", new_keys.size(), " distinct keys of ", new_key_bytes,
          " bytes, more than an offset map of ", map.entries_max(), " entries and ",
          map.key_bytes_max(), " key bytes can hold"));
    }
    if (!map.Fits(new_keys.size(), new_key_bytes)) {
      map.turned_away_ = true;
      return absl::OkStatus();
    }
    for (const Record& record : *records) {
      if (!record.key.has_value()) continue;
      map.Put(*record.key, header.base_offset + record.offset_delta);
    }
    assert(!map.turned_away_);
    map.Cover(header.last_offset());
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// CompactBatches

absl::StatusOr<std::string> CompactBatches(absl::string_view batches, const OffsetMap& map,
                                           int64_t now_ms, int64_t delete_retention_ms,
                                           int64_t cleaned_end_offset, CompactionStats* stats) {
  if (delete_retention_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("delete_retention_ms is negative: ", delete_retention_ms));
  }
  const int64_t delete_horizon_ms = DeleteHorizonMs(now_ms, delete_retention_ms);
  absl::StatusOr<std::vector<absl::string_view>> split = SplitWhole(batches);
  if (!split.ok()) return split.status();

  CompactionStats counted;
  counted.bytes_read = batches.size();
  std::string out;
  size_t position_bytes = 0;
  int64_t previous_last_offset = -1;
  for (absl::string_view batch : *split) {
    BatchHeader header;
    absl::Status checked = CheckBatch(batch, position_bytes, previous_last_offset, &header);
    if (!checked.ok()) return checked;
    const std::string context = BatchContext(position_bytes, header.base_offset);
    position_bytes += batch.size();
    previous_last_offset = header.last_offset();
    ++counted.batches_read;

    if (header.control() || header.record_count == 0) {
      counted.records_read += static_cast<uint64_t>(header.record_count);
      counted.records_kept += static_cast<uint64_t>(header.record_count);
      ++counted.batches_written;
      out.append(batch.data(), batch.size());
      continue;
    }

    absl::StatusOr<std::vector<Record>> records = DecodeChecked(batch, header, context);
    if (!records.ok()) return records.status();
    std::vector<Record> survivors;
    survivors.reserve(records->size());
    uint64_t tombstones_removed = 0;
    for (Record& record : *records) {
      if (record.key.has_value()) {
        const int64_t offset = header.base_offset + record.offset_delta;
        const std::optional<int64_t> latest = map.Get(*record.key);
        // A later record of the key exists (at an offset the map has seen).
        if (latest.has_value() && offset < *latest) continue;
        // A tombstone is dropped for age only when no older record of its key can survive: the
        // map saw it as its key's latest record (then the same map removes every older record of
        // the key), or completed rounds did (below cleaned_end_offset). A tombstone above the
        // map's range may still have older values below it that this round keeps, so it stays.
        const bool only_record_of_key =
            latest == offset || (offset < cleaned_end_offset && !latest.has_value());
        if (!record.value.has_value() && only_record_of_key &&
            *RecordTimestamp(header, record) < delete_horizon_ms) {
          ++tombstones_removed;
          continue;
        }
      }
      survivors.push_back(std::move(record));
    }

    const uint64_t read = records->size();
    counted.records_read += read;
    if (survivors.size() == records->size()) {
      counted.records_kept += read;
      ++counted.batches_written;
      out.append(batch.data(), batch.size());
      continue;
    }
    if (survivors.empty()) {
      counted.records_removed += read;
      counted.tombstones_removed += tombstones_removed;
      continue;
    }
    absl::StatusOr<std::string> rebuilt = RebuildBatch(header, survivors, context);
    if (!rebuilt.ok()) return rebuilt.status();
    ++counted.batches_written;
    if (rebuilt->size() >= batch.size()) {
      // Recompression came out no smaller (another compressor or level wrote the original): keep
      // the original, so that the output never outgrows the input.
      ++counted.rewrites_discarded;
      counted.records_kept += read;
      out.append(batch.data(), batch.size());
      continue;
    }
    counted.records_kept += survivors.size();
    counted.records_removed += read - survivors.size();
    counted.tombstones_removed += tombstones_removed;
    out.append(*rebuilt);
  }

  assert(out.size() <= batches.size());
  assert(counted.records_read == counted.records_kept + counted.records_removed);
  counted.bytes_written = out.size();
  if (stats != nullptr) {
    stats->records_read += counted.records_read;
    stats->records_kept += counted.records_kept;
    stats->records_removed += counted.records_removed;
    stats->tombstones_removed += counted.tombstones_removed;
    stats->batches_read += counted.batches_read;
    stats->batches_written += counted.batches_written;
    stats->bytes_read += counted.bytes_read;
    stats->bytes_written += counted.bytes_written;
    stats->rewrites_discarded += counted.rewrites_discarded;
  }
  return out;
}

}  // namespace runnel::storage
