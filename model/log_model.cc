#include "model/log_model.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/storage/compression.h"

namespace runnel::model {
namespace {

using storage::BatchHeader;
using storage::Compression;
using storage::CompressionName;

constexpr int64_t kNoCut = std::numeric_limits<int64_t>::max();

std::string Abbreviate(const std::optional<std::string>& bytes) {
  if (!bytes.has_value()) return "null";
  constexpr size_t kShownBytesMax = 12;
  std::string shown;
  for (size_t i = 0; i < bytes->size() && i < kShownBytesMax; ++i) {
    const unsigned char c = static_cast<unsigned char>((*bytes)[i]);
    if (c >= 0x20 && c < 0x7f) {
      shown.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&shown, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  if (bytes->size() > kShownBytesMax) absl::StrAppend(&shown, "...(", bytes->size(), " bytes)");
  return absl::StrCat("\"", shown, "\"");
}

// Every record of `batches` (in offset order), flattened.
std::vector<const ModelRecord*> FlattenRecords(const std::vector<ModelBatch>& batches) {
  std::vector<const ModelRecord*> records;
  for (const ModelBatch& batch : batches) {
    for (const ModelRecord& record : batch.records) records.push_back(&record);
  }
  return records;
}

const ModelRecord* FindRecord(const std::vector<const ModelRecord*>& records, int64_t offset) {
  auto it = std::lower_bound(
      records.begin(), records.end(), offset,
      [](const ModelRecord* record, int64_t wanted) { return record->offset < wanted; });
  if (it == records.end() || (*it)->offset != offset) return nullptr;
  return *it;
}

// The offsets in [start_offset, end_offset) that a valid compaction of `history` must keep: every
// keyless record, and each key's latest record unless it is an expired tombstone. Sorted.
std::vector<int64_t> MustKeepOffsets(const std::vector<ModelBatch>& history, int64_t start_offset,
                                     int64_t end_offset, const CompactionRules& rules) {
  std::vector<int64_t> keep;
  std::map<std::string, const ModelRecord*> latest;  // ordered: iteration is deterministic
  for (const ModelBatch& batch : history) {
    for (const ModelRecord& record : batch.records) {
      if (record.offset < start_offset || record.offset >= end_offset) continue;
      if (!record.key.has_value()) {
        keep.push_back(record.offset);
        continue;
      }
      const ModelRecord*& slot = latest[*record.key];
      if (slot == nullptr || slot->offset < record.offset) slot = &record;
    }
  }
  for (const auto& [key, record] : latest) {
    const bool expired_tombstone =
        record->tombstone() && record->timestamp_ms < rules.now_ms - rules.delete_retention_ms;
    if (!expired_tombstone) keep.push_back(record->offset);
  }
  std::sort(keep.begin(), keep.end());
  return keep;
}

// Structural checks of a sequence of batches as one log holds them: bases strictly increase past
// the previous batch's last offset, each batch's records lie in its range in increasing order.
absl::Status CheckBatchSequence(const std::vector<ModelBatch>& batches, absl::string_view what) {
  int64_t previous_last = std::numeric_limits<int64_t>::min();
  for (const ModelBatch& batch : batches) {
    if (batch.last_offset < batch.base_offset) {
      return absl::InternalError(
          absl::StrCat(what, ": batch ", DescribeBatch(batch), " ends before it starts"));
    }
    if (batch.base_offset <= previous_last) {
      return absl::InternalError(absl::StrCat(what, ": batch ", DescribeBatch(batch),
                                              " overlaps or precedes the batch before it, which "
                                              "ends at ",
                                              previous_last));
    }
    previous_last = batch.last_offset;
    int64_t previous_record = batch.base_offset - 1;
    for (const ModelRecord& record : batch.records) {
      if (record.offset <= previous_record || record.offset > batch.last_offset) {
        return absl::InternalError(absl::StrCat(what, ": batch ", DescribeBatch(batch),
                                                " holds a record out of order or range at offset ",
                                                record.offset));
      }
      previous_record = record.offset;
    }
  }
  return absl::OkStatus();
}

}  // namespace

int64_t ModelBatch::max_timestamp_ms() const {
  int64_t max_timestamp = std::numeric_limits<int64_t>::min();
  for (const ModelRecord& record : records)
    max_timestamp = std::max(max_timestamp, record.timestamp_ms);
  return max_timestamp;
}

absl::StatusOr<ModelBatch> DecodeModelBatch(absl::string_view batch) {
  // Header, size and CRC. Records are checked below rather than by ValidateBatch's check_records,
  // which wants dense offset deltas: a compacted batch has gaps in them.
  storage::BatchValidationOptions options;
  options.check_records = false;
  if (absl::Status valid = storage::ValidateBatch(batch, options); !valid.ok()) return valid;
  absl::StatusOr<BatchHeader> header = storage::ParseBatchHeader(batch);
  if (!header.ok()) return header.status();
  absl::StatusOr<std::vector<storage::Record>> records = storage::DecodeRecords(batch);
  if (!records.ok()) return records.status();
  if (records->size() != static_cast<size_t>(header->record_count)) {
    return absl::InvalidArgumentError(absl::StrCat("batch at offset ", header->base_offset,
                                                   " declares ", header->record_count,
                                                   " records but holds ", records->size()));
  }
  ModelBatch decoded;
  decoded.base_offset = header->base_offset;
  decoded.last_offset = header->last_offset();
  decoded.partition_leader_epoch = header->partition_leader_epoch;
  decoded.compression = header->compression();
  decoded.log_append_time = header->log_append_time();
  decoded.size_bytes = batch.size();
  int32_t previous_delta = -1;
  for (storage::Record& record : *records) {
    if (record.offset_delta <= previous_delta || record.offset_delta > header->last_offset_delta) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch at offset ", header->base_offset, " holds offset delta ", record.offset_delta,
          " after ", previous_delta, " (lastOffsetDelta ", header->last_offset_delta, ")"));
    }
    previous_delta = record.offset_delta;
    ModelRecord model_record;
    model_record.offset = header->base_offset + record.offset_delta;
    model_record.timestamp_ms = header->log_append_time()
                                    ? header->max_timestamp
                                    : header->base_timestamp + record.timestamp_delta;
    model_record.key = std::move(record.key);
    model_record.value = std::move(record.value);
    model_record.headers = std::move(record.headers);
    decoded.records.push_back(std::move(model_record));
  }
  return decoded;
}

absl::StatusOr<std::vector<ModelBatch>> DecodeModelBatches(absl::string_view batches) {
  size_t remainder_bytes = 0;
  absl::StatusOr<std::vector<absl::string_view>> split =
      storage::SplitBatches(batches, &remainder_bytes);
  if (!split.ok()) return split.status();
  if (remainder_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        remainder_bytes, " bytes of a partial batch after ", split->size(), " whole batches"));
  }
  std::vector<ModelBatch> decoded;
  for (absl::string_view batch : *split) {
    absl::StatusOr<ModelBatch> one = DecodeModelBatch(batch);
    if (!one.ok()) {
      return absl::Status(one.status().code(),
                          absl::StrCat("batch ", decoded.size(), " of ", split->size(), ": ",
                                       one.status().message()));
    }
    decoded.push_back(*std::move(one));
  }
  return decoded;
}

std::string DescribeRecord(const ModelRecord& record) {
  std::string text = absl::StrCat("@", record.offset, " ts ", record.timestamp_ms, " key ",
                                  Abbreviate(record.key), " value ", Abbreviate(record.value));
  if (!record.headers.empty()) {
    absl::StrAppend(&text, " headers {");
    for (const storage::RecordHeader& header : record.headers) {
      absl::StrAppend(&text, " ", header.key, "=", Abbreviate(header.value));
    }
    absl::StrAppend(&text, " }");
  }
  return text;
}

std::string DescribeBatch(const ModelBatch& batch) {
  return absl::StrCat("[", batch.base_offset, "..", batch.last_offset, "] ", batch.records.size(),
                      " records epoch ", batch.partition_leader_epoch, " codec ",
                      CompressionName(batch.compression),
                      batch.log_append_time ? " log-append-time" : "", " bytes ", batch.size_bytes);
}

absl::Status CheckCompaction(const std::vector<ModelBatch>& history,
                             const std::vector<ModelBatch>& compacted, int64_t start_offset,
                             int64_t end_offset, const CompactionRules& rules) {
  if (absl::Status sequence = CheckBatchSequence(compacted, "compacted log"); !sequence.ok()) {
    return sequence;
  }
  const std::vector<const ModelRecord*> original = FlattenRecords(history);
  std::vector<int64_t> present;
  for (const ModelBatch& batch : compacted) {
    for (const ModelRecord& record : batch.records) {
      const ModelRecord* expected = FindRecord(original, record.offset);
      if (expected == nullptr) {
        return absl::InternalError(absl::StrCat("compacted log holds ", DescribeRecord(record),
                                                " in batch ", DescribeBatch(batch),
                                                ", but no record was appended at that offset"));
      }
      if (!(*expected == record)) {
        return absl::InternalError(absl::StrCat(
            "compacted log holds ", DescribeRecord(record), " in batch ", DescribeBatch(batch),
            ", but the record appended there is ", DescribeRecord(*expected)));
      }
      present.push_back(record.offset);
    }
  }
  // CheckBatchSequence made `present` strictly increasing.
  for (int64_t offset : MustKeepOffsets(history, start_offset, end_offset, rules)) {
    if (!std::binary_search(present.begin(), present.end(), offset)) {
      const ModelRecord* missing = FindRecord(original, offset);
      assert(missing != nullptr);
      return absl::InternalError(absl::StrCat(
          "compaction lost ", DescribeRecord(*missing),
          missing->key.has_value() ? ", the latest record of its key" : ", a keyless record",
          missing->tombstone() ? " (a tombstone not yet past delete.retention.ms)" : "",
          "; log range [", start_offset, ", ", end_offset, "), now_ms ", rules.now_ms));
    }
  }
  return absl::OkStatus();
}

LogModel::LogModel(LogModelOptions options)
    : options_(options),
      log_start_offset_(options.initial_log_start_offset),
      log_end_offset_(options.initial_log_start_offset),
      durable_end_offset_(options.initial_log_start_offset) {
  assert(options.initial_log_start_offset >= 0);
  assert(options.delete_retention_ms >= 0);
}

const ModelBatch* LogModel::BatchContaining(int64_t offset) const {
  auto it = std::lower_bound(
      batches_.begin(), batches_.end(), offset,
      [](const ModelBatch& batch, int64_t wanted) { return batch.last_offset < wanted; });
  if (it == batches_.end() || it->base_offset > offset) return nullptr;
  return &*it;
}

bool LogModel::IsBatchBoundary(int64_t offset) const {
  if (offset == log_end_offset_) return true;
  for (const ModelBatch& batch : batches_) {
    if (batch.base_offset == offset || batch.end_offset() == offset) return true;
  }
  return false;
}

const ModelBatch& LogModel::Append(std::vector<ModelRecord> records, const BatchMeta& meta) {
  assert(!records.empty());
  ModelBatch batch;
  batch.base_offset = log_end_offset_;
  batch.last_offset = log_end_offset_ + static_cast<int64_t>(records.size()) - 1;
  batch.partition_leader_epoch = meta.partition_leader_epoch;
  batch.compression = meta.compression;
  batch.log_append_time = meta.log_append_time_ms >= 0;
  batch.size_bytes = meta.size_bytes;
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].offset = batch.base_offset + static_cast<int64_t>(i);
    if (batch.log_append_time) records[i].timestamp_ms = meta.log_append_time_ms;
  }
  batch.records = std::move(records);
  log_end_offset_ = batch.end_offset();
  batches_.push_back(std::move(batch));
  return batches_.back();
}

int64_t LogModel::CutAfter(uint64_t generation, uint64_t through) const {
  int64_t cut = kNoCut;
  for (const Truncation& truncation : truncations_) {
    if (truncation.generation > generation && truncation.generation <= through) {
      cut = std::min(cut, truncation.offset);
    }
  }
  return cut;
}

absl::Status LogModel::MarkDurable(int64_t end_offset, DurabilityTicket ticket) {
  if (end_offset > ticket.log_end_offset || ticket.generation > generation_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "durability of offsets below ", end_offset, " claimed for a log that ended at ",
        ticket.log_end_offset, " (generation ", ticket.generation, " of ", generation_, ")"));
  }
  // In the current history, truncations since the ticket cut what the claim covers.
  durable_end_offset_ =
      std::max(durable_end_offset_, std::min(end_offset, CutAfter(ticket.generation, generation_)));
  assert(durable_end_offset_ <= log_end_offset_);
  // A history from before a later truncation holds the claimed offsets too, up to the truncations
  // between the ticket and that one.
  for (PendingTruncation& pending : pending_) {
    if (pending.generation <= ticket.generation) continue;
    const int64_t covered =
        std::min(end_offset, CutAfter(ticket.generation, pending.generation - 1));
    pending.before.durable_end_offset = std::max(pending.before.durable_end_offset, covered);
  }
  // A wait for the whole log, registered after a truncation, makes that truncation durable.
  if (end_offset >= ticket.log_end_offset) {
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [&](const PendingTruncation& pending) {
                                    return pending.generation <= ticket.generation;
                                  }),
                   pending_.end());
  }
  return absl::OkStatus();
}

absl::Status LogModel::ObserveDurableEnd(int64_t end_offset) {
  if (end_offset > log_end_offset_) {
    return absl::InvalidArgumentError(
        absl::StrCat("durable end ", end_offset, " reported past the log end ", log_end_offset_));
  }
  durable_end_offset_ = std::max(durable_end_offset_, end_offset);
  return absl::OkStatus();
}

absl::Status LogModel::Truncate(int64_t offset) {
  if (offset > log_end_offset_ || offset < log_start_offset_ || !IsBatchBoundary(offset)) {
    return absl::InvalidArgumentError(absl::StrCat("truncation to ", offset,
                                                   " is not a batch boundary within [",
                                                   log_start_offset_, ", ", log_end_offset_, "]"));
  }
  ++generation_;
  PendingTruncation pending;
  pending.generation = generation_;
  pending.offset = offset;
  pending.before = History{batches_, log_end_offset_, durable_end_offset_};
  pending_.push_back(std::move(pending));
  truncations_.push_back({generation_, offset});
  batches_.erase(std::find_if(batches_.begin(), batches_.end(),
                              [&](const ModelBatch& batch) { return batch.base_offset >= offset; }),
                 batches_.end());
  log_end_offset_ = offset;
  durable_end_offset_ = std::min(durable_end_offset_, offset);
  return absl::OkStatus();
}

absl::Status LogModel::AdvanceStart(int64_t offset) {
  if (offset > log_end_offset_) {
    return absl::InvalidArgumentError(
        absl::StrCat("log start ", offset, " past the log end ", log_end_offset_));
  }
  log_start_offset_ = std::max(log_start_offset_, offset);
  return absl::OkStatus();
}

absl::Status LogModel::CheckView(const LogView& view, const History& history, bool exact_end,
                                 int64_t now_ms) const {
  const int64_t start = log_start_offset_;
  if (view.log_start_offset > view.log_end_offset) {
    return absl::InternalError(absl::StrCat("log start ", view.log_start_offset,
                                            " is past the log end ", view.log_end_offset));
  }
  if (exact_end) {
    if (view.log_end_offset != history.end_offset || view.log_start_offset != start) {
      return absl::InternalError(absl::StrCat("log covers [", view.log_start_offset, ", ",
                                              view.log_end_offset, "), model [", start, ", ",
                                              history.end_offset, ")"));
    }
  } else {
    bool boundary = view.log_end_offset == history.end_offset;
    for (const ModelBatch& batch : history.batches) {
      if (batch.base_offset == view.log_end_offset || batch.end_offset() == view.log_end_offset) {
        boundary = true;
      }
    }
    if (view.log_end_offset < history.durable_end_offset ||
        view.log_end_offset > history.end_offset || !boundary) {
      return absl::InternalError(absl::StrCat(
          "recovered log ends at ", view.log_end_offset, ", which is not a batch boundary in [",
          history.durable_end_offset, " (durable end), ", history.end_offset, " (log end)]"));
    }
  }
  if (absl::Status sequence = CheckBatchSequence(view.batches, "log"); !sequence.ok()) {
    return sequence;
  }
  if (!view.batches.empty() && view.batches.back().last_offset >= view.log_end_offset) {
    return absl::InternalError(absl::StrCat("log holds batch ", DescribeBatch(view.batches.back()),
                                            " at or past its end offset ", view.log_end_offset));
  }

  int64_t first_required = view.log_end_offset;
  if (options_.compacted) {
    const CompactionRules rules = Rules(now_ms);
    if (absl::Status compaction =
            CheckCompaction(history.batches, view.batches, start, view.log_end_offset, rules);
        !compaction.ok()) {
      return compaction;
    }
    const std::vector<int64_t> keep =
        MustKeepOffsets(history.batches, start, view.log_end_offset, rules);
    if (!keep.empty()) first_required = keep.front();
  } else {
    // Every batch equals the history's batch with the same base offset...
    size_t next = 0;
    for (const ModelBatch& batch : view.batches) {
      while (next < history.batches.size() &&
             history.batches[next].base_offset < batch.base_offset) {
        ++next;
      }
      if (next == history.batches.size() || !(history.batches[next] == batch)) {
        const ModelBatch* expected =
            next < history.batches.size() && history.batches[next].base_offset == batch.base_offset
                ? &history.batches[next]
                : nullptr;
        std::string detail =
            expected == nullptr
                ? std::string("no batch was appended at that offset")
                : absl::StrCat("the batch appended there is ", DescribeBatch(*expected));
        if (expected != nullptr) {
          for (size_t i = 0; i < batch.records.size() && i < expected->records.size(); ++i) {
            if (!(batch.records[i] == expected->records[i])) {
              absl::StrAppend(&detail, "; first differing record: log ",
                              DescribeRecord(batch.records[i]), ", model ",
                              DescribeRecord(expected->records[i]));
              break;
            }
          }
        }
        return absl::InternalError(
            absl::StrCat("log holds batch ", DescribeBatch(batch), ", but ", detail));
      }
    }
    // ...and every batch from the log start up to the end is there.
    size_t present = 0;
    for (const ModelBatch& expected : history.batches) {
      if (expected.last_offset < start || expected.end_offset() > view.log_end_offset) continue;
      first_required = std::min(first_required, std::max(start, expected.base_offset));
      while (present < view.batches.size() &&
             view.batches[present].base_offset < expected.base_offset) {
        ++present;
      }
      if (present == view.batches.size() ||
          view.batches[present].base_offset != expected.base_offset) {
        return absl::InternalError(absl::StrCat(
            "log lost batch ", DescribeBatch(expected), " (log start ", start, ", durable end ",
            history.durable_end_offset, ", log end ", view.log_end_offset, ")"));
      }
    }
  }
  if (!exact_end && view.log_start_offset > first_required) {
    return absl::InternalError(
        absl::StrCat("log start ", view.log_start_offset, " hides offset ", first_required,
                     ", which the log must still serve (model log start ", start, ")"));
  }
  return absl::OkStatus();
}

absl::Status LogModel::CheckLog(const LogView& actual, int64_t now_ms) const {
  return CheckView(actual, History{batches_, log_end_offset_, durable_end_offset_},
                   /*exact_end=*/true, now_ms);
}

absl::Status LogModel::CheckCompactedAway(const LogView& actual, int64_t covered_from_offset,
                                          int64_t now_ms) const {
  assert(options_.compacted);
  const int64_t covered_from = std::max(covered_from_offset, log_start_offset_);
  // The latest record of every key, and whether it lies where the round's map saw it.
  std::map<std::string, const ModelRecord*> latest;  // ordered: iteration is deterministic
  for (const ModelBatch& batch : batches_) {
    for (const ModelRecord& record : batch.records) {
      if (record.key.has_value()) latest[*record.key] = &record;
    }
  }
  auto must_go = [&](const ModelRecord& record) {
    if (!record.key.has_value() || record.offset < log_start_offset_) return false;
    const ModelRecord* last = latest.at(*record.key);
    if (last->offset < covered_from) return false;
    if (last != &record) return true;  // superseded by a record the map saw
    return record.tombstone() && record.timestamp_ms < now_ms - options_.delete_retention_ms;
  };
  std::vector<int64_t> gone;  // sorted: batches_ is in offset order
  for (const ModelBatch& batch : batches_) {
    // A compressed batch that loses records may be kept whole (see the header); an uncompressed
    // one rebuilt without a record is always smaller, so it never is.
    if (batch.compression != Compression::kNone) continue;
    for (const ModelRecord& record : batch.records) {
      if (must_go(record)) gone.push_back(record.offset);
    }
  }
  for (const ModelBatch& batch : actual.batches) {
    for (const ModelRecord& record : batch.records) {
      if (!std::binary_search(gone.begin(), gone.end(), record.offset)) continue;
      const ModelRecord* last = latest.at(*record.key);
      return absl::InternalError(absl::StrCat(
          "a completed compaction round whose map covered [", covered_from, ", ", log_end_offset_,
          ") left ", DescribeRecord(record), " in batch ", DescribeBatch(batch),
          last->offset == record.offset
              ? absl::StrCat(", a tombstone older than delete.retention.ms ",
                             options_.delete_retention_ms, " (now_ms ", now_ms, ")")
              : absl::StrCat(", superseded by ", DescribeRecord(*last))));
    }
  }
  return absl::OkStatus();
}

absl::Status LogModel::CheckRecovered(const LogView& recovered, int64_t now_ms, RecoveryKind kind) {
  History current{batches_, log_end_offset_, durable_end_offset_};
  const History* adopted = nullptr;
  // The pending truncation whose "before" was adopted (none when the current history was).
  std::optional<uint64_t> undone_generation;
  absl::Status status = CheckView(recovered, current, /*exact_end=*/false, now_ms);
  std::string rejected_before;
  if (status.ok()) {
    adopted = &current;
  } else {
    // Newest truncation first: the most likely "as before".
    for (auto it = pending_.rbegin(); it != pending_.rend() && adopted == nullptr; ++it) {
      const int64_t cut = CutAfter(it->generation - 1, generation_);
      if (durable_end_offset_ > cut) continue;  // a durable batch lies past the truncation
      History before = it->before;
      before.durable_end_offset = std::max(before.durable_end_offset, durable_end_offset_);
      absl::Status before_status = CheckView(recovered, before, /*exact_end=*/false, now_ms);
      if (before_status.ok()) {
        it->before = std::move(before);
        adopted = &it->before;
        undone_generation = it->generation;
      } else {
        absl::StrAppend(&rejected_before, "; nor the log as before the truncation to ", it->offset,
                        ": ", before_status.message());
      }
    }
  }
  if (adopted == nullptr) {
    return absl::Status(status.code(), absl::StrCat(status.message(), rejected_before));
  }
  const History before_adoption = *adopted;
  std::vector<ModelBatch> batches;
  for (const ModelBatch& batch : adopted->batches) {
    if (batch.end_offset() <= recovered.log_end_offset) batches.push_back(batch);
  }
  const int64_t durable_end = std::min(adopted->durable_end_offset, recovered.log_end_offset);
  batches_ = std::move(batches);
  log_end_offset_ = recovered.log_end_offset;
  log_start_offset_ = recovered.log_start_offset;
  durable_end_offset_ = durable_end;
  if (undone_generation.has_value()) {
    // The log came back as before that truncation: it and every later one were undone. They are
    // neither pending any more nor cuts of the history, whose durable offsets they must no longer
    // limit (CutAfter).
    const uint64_t undone = *undone_generation;
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [undone](const PendingTruncation& pending) {
                                    return pending.generation >= undone;
                                  }),
                   pending_.end());
    truncations_.erase(std::remove_if(truncations_.begin(), truncations_.end(),
                                      [undone](const Truncation& truncation) {
                                        return truncation.generation >= undone;
                                      }),
                       truncations_.end());
  }
  ++generation_;
  truncations_.push_back({generation_, log_end_offset_});
  if (kind == RecoveryKind::kPowerLoss) {
    // The medium holds what the crash left, durably: nothing earlier can come back.
    pending_.clear();
    return absl::OkStatus();
  }
  // A process restart makes nothing durable: the reopened log may have read a checkpoint (with a
  // truncation bound) or a cut that is only in the page cache, and a later power loss may bring
  // back what the medium still holds. So the truncations made before the adopted history stay
  // pending, and a tail the reopened log dropped counts as one more.
  if (log_end_offset_ < before_adoption.end_offset) {
    PendingTruncation pending;
    pending.generation = generation_;
    pending.offset = log_end_offset_;
    pending.before = before_adoption;
    pending_.push_back(std::move(pending));
  }
  return absl::OkStatus();
}

absl::Status LogModel::CheckRead(const ReadRequest& request,
                                 const absl::StatusOr<std::string>& result, int64_t now_ms) const {
  const std::string what = absl::StrCat(
      "Read(offset ", request.offset, ", bytes_max ", request.bytes_max, ", end_offset_max ",
      request.end_offset_max, ", oversized_first ", request.allow_oversized_first, ") of log [",
      log_start_offset_, ", ", log_end_offset_, ")");
  if (request.offset < log_start_offset_ || request.offset > log_end_offset_) {
    if (result.status().code() == absl::StatusCode::kOutOfRange) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(what, " returned ",
                                            result.ok() ? "data" : result.status().ToString(),
                                            ", want kOutOfRange"));
  }
  if (!result.ok()) {
    return absl::InternalError(absl::StrCat(what, " failed: ", result.status().ToString()));
  }
  absl::StatusOr<std::vector<ModelBatch>> returned = DecodeModelBatches(*result);
  if (!returned.ok()) {
    return absl::InternalError(absl::StrCat(
        what, " returned a batch that fails validation: ", returned.status().ToString()));
  }
  if (absl::Status sequence = CheckBatchSequence(*returned, what); !sequence.ok()) return sequence;
  if (result->size() > request.bytes_max &&
      !(request.allow_oversized_first && returned->size() == 1)) {
    return absl::InternalError(absl::StrCat(what, " returned ", result->size(), " bytes in ",
                                            returned->size(), " batches"));
  }
  for (const ModelBatch& batch : *returned) {
    if (batch.base_offset >= request.end_offset_max || batch.base_offset >= log_end_offset_) {
      return absl::InternalError(
          absl::StrCat(what, " returned batch ", DescribeBatch(batch), " past its limits"));
    }
  }
  if (request.offset == log_end_offset_) {
    if (!returned->empty()) {
      return absl::InternalError(
          absl::StrCat(what, " at the log end returned ", returned->size(), " batches"));
    }
    return absl::OkStatus();
  }

  if (options_.compacted) {
    if (!returned->empty() && returned->front().last_offset < request.offset) {
      return absl::InternalError(absl::StrCat(what, " began with batch ",
                                              DescribeBatch(returned->front()),
                                              ", which ends before the offset asked for"));
    }
    if (absl::Status content = CheckCompaction(batches_, *returned, 0, 0, Rules(now_ms));
        !content.ok()) {
      return absl::InternalError(absl::StrCat(what, ": ", content.message()));
    }
    // Every record the compaction rules keep between the offset asked for and the last record
    // returned must be among those returned.
    const std::vector<int64_t> keep =
        MustKeepOffsets(batches_, log_start_offset_, log_end_offset_, Rules(now_ms));
    std::vector<int64_t> present;
    for (const ModelBatch& batch : *returned) {
      for (const ModelRecord& record : batch.records) present.push_back(record.offset);
    }
    const int64_t covered_end = returned->empty() ? request.offset : returned->back().end_offset();
    for (int64_t offset : keep) {
      if (offset < request.offset) continue;
      if (offset >= covered_end) {
        // Nothing returned although a kept record could have been: only a byte limit excuses it.
        if (returned->empty() && request.allow_oversized_first && offset < request.end_offset_max) {
          return absl::InternalError(absl::StrCat(what, " returned nothing, but offset ", offset,
                                                  " holds a record compaction must keep"));
        }
        break;
      }
      if (!std::binary_search(present.begin(), present.end(), offset)) {
        return absl::InternalError(
            absl::StrCat(what, " skipped offset ", offset, ", a record compaction must keep"));
      }
    }
    return absl::OkStatus();
  }

  const ModelBatch* first = BatchContaining(request.offset);
  if (first == nullptr) {
    return absl::InternalError(absl::StrCat(what, ": model holds no batch at the offset"));
  }
  if (returned->empty()) {
    // At or past end_offset_max (the high watermark) nothing need be returned, even the batch
    // that straddles it: its records past the watermark are not committed.
    const bool excused = request.offset >= request.end_offset_max ||
                         first->base_offset >= request.end_offset_max ||
                         (first->size_bytes > request.bytes_max && !request.allow_oversized_first);
    if (!excused) {
      return absl::InternalError(
          absl::StrCat(what, " returned nothing, want batch ", DescribeBatch(*first), " at least"));
    }
    return absl::OkStatus();
  }
  size_t index = static_cast<size_t>(first - batches_.data());
  for (const ModelBatch& batch : *returned) {
    if (index >= batches_.size() || !(batches_[index] == batch)) {
      std::string detail = index < batches_.size()
                               ? absl::StrCat("want ", DescribeBatch(batches_[index]))
                               : std::string("want nothing more");
      if (index < batches_.size()) {
        const ModelBatch& expected = batches_[index];
        for (size_t i = 0; i < batch.records.size() && i < expected.records.size(); ++i) {
          if (!(batch.records[i] == expected.records[i])) {
            absl::StrAppend(&detail, "; first differing record: read ",
                            DescribeRecord(batch.records[i]), ", model ",
                            DescribeRecord(expected.records[i]));
            break;
          }
        }
      }
      return absl::InternalError(
          absl::StrCat(what, " returned batch ", DescribeBatch(batch), ", ", detail));
    }
    ++index;
  }
  return absl::OkStatus();
}

absl::Status LogModel::CheckOffsetForTimestamp(int64_t timestamp_ms,
                                               const absl::StatusOr<int64_t>& result) const {
  const std::string what = absl::StrCat("OffsetForTimestamp(", timestamp_ms, ") of log [",
                                        log_start_offset_, ", ", log_end_offset_, ")");
  if (options_.compacted) {
    if (result.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
    if (result.ok() && *result < log_end_offset_) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(
        what, " returned ", result.ok() ? absl::StrCat(*result) : result.status().ToString()));
  }
  const ModelBatch* expected = nullptr;
  for (const ModelBatch& batch : batches_) {
    if (batch.last_offset < log_start_offset_) continue;
    if (batch.max_timestamp_ms() >= timestamp_ms) {
      expected = &batch;
      break;
    }
  }
  if (expected == nullptr) {
    if (result.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  } else if (result.ok() && (*result == expected->base_offset ||
                             *result == std::max(expected->base_offset, log_start_offset_))) {
    return absl::OkStatus();
  }
  return absl::InternalError(
      absl::StrCat(what, " returned ",
                   result.ok() ? absl::StrCat(*result) : result.status().ToString(), ", want ",
                   expected == nullptr
                       ? std::string("kNotFound")
                       : absl::StrCat(expected->base_offset, " (batch ", DescribeBatch(*expected),
                                      ", max timestamp ", expected->max_timestamp_ms(), ")")));
}

}  // namespace runnel::model
