// LogModel: the reference model of one partition log (broker/storage/partition_log.h), as a plain
// in-memory sequence of records grouped by batch, and the checkers that compare an actual log with
// it: a live log, a log recovered after a crash, one Read() result, and a compacted log.
//
// What the model holds:
// - The history: every batch appended and not truncated away, in offset order, including the
//   batches below the log start offset (retention and DeleteRecords only move the start; a crash
//   may bring deleted segments back, and they must then hold the same records at the same offsets).
//   Records are kept as appended: the model never compacts; compaction is checked against it.
// - log_start_offset <= log_end_offset and durable_end_offset <= log_end_offset (the start may
//   pass the durable end: DeleteRecords of data not yet synced). durable_end_offset only grows,
//   except when a truncation or a crash cuts the history below it.
// - Pending truncations: the history as it was before each TruncateTo() that is not yet known to
//   be durable. partition_log.h: "after a crash the log is either as before or as after"; the
//   truncation is durable once a WhenDurable(log_end_offset()) registered after it completes.
//
// What a crash may leave (CheckRecovered): for one of the candidate histories (the current one,
// or the one before a pending truncation provided that no batch durable in the current history
// lies at or past that truncation point), a batch prefix of it whose end lies in
// [durable end, end], containing every batch (in compacted mode: every record the compaction
// rules keep) at or past the log start offset below that end, each byte-for-byte identical in
// content, offsets unchanged. Batches below the log start offset may be there or not.
//
// Compaction (CheckCompaction): every surviving record exists in the history at the same offset
// with the same content; offsets strictly increase (order kept); every keyless record survives;
// for every key, the record with the key's highest offset in the range survives, unless it is a
// tombstone whose timestamp is below now_ms - delete_retention_ms. Records are compared by
// content, so batch boundaries, sizes and codecs of a compacted log are free.
//
// Determinism: no clock, no randomness, no hash-container iteration. Time comes in as arguments.
// Every check returns OK or a Status whose message says what differed, at which offset.
#ifndef RUNNEL_MODEL_LOG_MODEL_H_
#define RUNNEL_MODEL_LOG_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/storage/record_batch.h"

namespace runnel::model {

// One record with its absolute offset and timestamp.
struct ModelRecord {
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt: a tombstone (when keyed)
  std::vector<storage::RecordHeader> headers;

  bool tombstone() const { return key.has_value() && !value.has_value(); }
  friend bool operator==(const ModelRecord&, const ModelRecord&) = default;
};

// One batch as the log stores it.
struct ModelBatch {
  int64_t base_offset = 0;
  // base_offset + lastOffsetDelta: the batch covers [base_offset, last_offset] even where
  // compaction removed records.
  int64_t last_offset = -1;
  int32_t partition_leader_epoch = -1;
  storage::Compression compression = storage::Compression::kNone;
  bool log_append_time = false;
  // The batch's bytes as stored (header included).
  uint64_t size_bytes = 0;
  std::vector<ModelRecord> records;  // offsets strictly increasing within [base, last]

  int64_t end_offset() const { return last_offset + 1; }
  // The largest record timestamp (the batch's maxTimestamp); INT64_MIN without records.
  int64_t max_timestamp_ms() const;
  friend bool operator==(const ModelBatch&, const ModelBatch&) = default;
};

// What a batch carries besides its records, for LogModel::Append.
struct BatchMeta {
  int32_t partition_leader_epoch = -1;
  storage::Compression compression = storage::Compression::kNone;
  // The LogAppendTime the log stamped (AppendInfo::log_append_time_ms), or -1 under CreateTime.
  // When set, every record's timestamp is this time, as consumers read it.
  int64_t log_append_time_ms = -1;
  uint64_t size_bytes = 0;
};

// Validates one stored batch and decodes it: ValidateBatch's header, size and CRC checks, then
// every record decoded, their count equal to recordCount and their offset deltas strictly
// increasing up to lastOffsetDelta (gaps allowed: a compacted batch has them, so ValidateBatch's
// check_records, which wants 0, 1, 2, ..., is left to callers that know the batch is not
// compacted). Record timestamps are baseTimestamp + delta, or maxTimestamp under LogAppendTime.
// kDataLoss for a CRC mismatch, kInvalidArgument otherwise.
absl::StatusOr<ModelBatch> DecodeModelBatch(absl::string_view batch);
// Splits concatenated batches (a Read() result) and decodes each; a trailing partial batch is
// kInvalidArgument (Read returns whole batches only).
absl::StatusOr<std::vector<ModelBatch>> DecodeModelBatches(absl::string_view batches);

// One line describing a batch, for messages: "[base..last] n records epoch e codec c bytes b".
std::string DescribeBatch(const ModelBatch& batch);
std::string DescribeRecord(const ModelRecord& record);

// A snapshot of an actual log: its offsets and every batch a full read returned, in order.
struct LogView {
  int64_t log_start_offset = 0;
  int64_t log_end_offset = 0;
  std::vector<ModelBatch> batches;
};

struct CompactionRules {
  // The wall-clock time of the check; a tombstone may be gone once its timestamp is below
  // now_ms - delete_retention_ms (compaction.h removes it no earlier).
  int64_t now_ms = 0;
  int64_t delete_retention_ms = 0;
};

// Checks that `compacted` (what a compacted log holds) is a valid compaction of `history` over the
// offsets [start_offset, end_offset): see the file comment. Batches of `compacted` outside the
// range are checked for content only. `history` batches must be in offset order.
absl::Status CheckCompaction(const std::vector<ModelBatch>& history,
                             const std::vector<ModelBatch>& compacted, int64_t start_offset,
                             int64_t end_offset, const CompactionRules& rules);

struct LogModelOptions {
  // cleanup.policy includes compact: checks accept any valid compaction of the history.
  bool compacted = false;
  int64_t delete_retention_ms = 0;
  int64_t initial_log_start_offset = 0;
};

// Identifies the log's state when a durability wait was registered, so that the completion can be
// applied to the right history (a truncation may have happened in between).
struct DurabilityTicket {
  uint64_t generation = 0;
  int64_t log_end_offset = 0;
};

enum class RecoveryKind {
  // The machine lost power: unsynced changes were partly lost (SimDiskStorage::Crash).
  kPowerLoss,
  // Only the process died or stopped: the page cache kept every write, synced or not.
  kProcessRestart,
};

// One Read() call's arguments (partition_log.h).
struct ReadRequest {
  int64_t offset = 0;
  size_t bytes_max = 0;
  int64_t end_offset_max = 0;
  bool allow_oversized_first = false;
};

class LogModel {
 public:
  explicit LogModel(LogModelOptions options);

  int64_t log_start_offset() const { return log_start_offset_; }
  int64_t log_end_offset() const { return log_end_offset_; }
  int64_t durable_end_offset() const { return durable_end_offset_; }
  const LogModelOptions& options() const { return options_; }
  // The current history, below the log start offset included.
  const std::vector<ModelBatch>& batches() const { return batches_; }
  // How many truncations are not yet known to be durable.
  size_t pending_truncation_count() const { return pending_.size(); }
  // The batch that holds `offset` (base <= offset <= last), if any.
  const ModelBatch* BatchContaining(int64_t offset) const;
  // Whether `offset` is where a batch of the history starts or ends (the log end included).
  bool IsBatchBoundary(int64_t offset) const;

  // Appends one batch at the log end: record i gets offset log_end_offset() + i. Returns the batch
  // as the model stores it (the caller compares AppendInfo with it). `records` must not be empty.
  const ModelBatch& Append(std::vector<ModelRecord> records, const BatchMeta& meta);

  // The ticket for a durability wait registered now.
  DurabilityTicket Ticket() const { return {generation_, log_end_offset_}; }
  // A WhenDurable(end_offset) registered under `ticket` completed OK: every offset below
  // end_offset of the log as it was then is durable. When end_offset covered the whole log of
  // then, every truncation made before the ticket becomes durable too. kInvalidArgument when
  // end_offset is past the log end of then.
  absl::Status MarkDurable(int64_t end_offset, DurabilityTicket ticket);
  // The log reported durable_end_offset() == end_offset now: offsets below it are durable. This
  // makes no truncation durable (partition_log.h ties that to a WhenDurable completion).
  // kInvalidArgument when end_offset is past the log end.
  absl::Status ObserveDurableEnd(int64_t end_offset);

  // TruncateTo(offset): removes every batch at or past `offset`, which must be a batch boundary at
  // or past the log start and at most the log end (kInvalidArgument otherwise). In compacted mode
  // the records below `offset` must still form a valid compaction on their own: a log that
  // compacted older records away using records at or past `offset` must refuse the truncation.
  absl::Status Truncate(int64_t offset);
  // Raises the log start offset to `offset` (no-op when not higher); offset <= log end required.
  absl::Status AdvanceStart(int64_t offset);

  // Checks a live log (no crash since the model last agreed with it): same start and end, and the
  // batches from the log start on are exactly the history's (compacted mode: a valid compaction).
  // Batches below the log start may be present (a segment not yet deleted), with the same content.
  absl::Status CheckLog(const LogView& actual, int64_t now_ms) const;
  // Checks that compaction did its work, not only that it did no harm: for a live log (`actual`,
  // which CheckLog accepts) on which cleaning rounds have run to completion with their offset maps
  // fed, between them, from `covered_from_offset` to the log end (each round rewriting every
  // segment from the log start to its map's end; log_cleaner.cc), at wall-clock time `now_ms` or
  // later. Every record at or past the log start must then be gone whose key has a later record at
  // or past max(covered_from_offset, log start), and so must every such latest record that is a
  // tombstone older than now_ms - delete_retention_ms. Exempt: records of compressed batches, which
  // compaction.h keeps whole when their rebuild, recompressed, comes out no smaller (and a later
  // round whose map lacks the key then keeps them too). Compacted mode only; the message names the
  // first record that should be gone.
  absl::Status CheckCompactedAway(const LogView& actual, int64_t covered_from_offset,
                                  int64_t now_ms) const;
  // Checks what a crash left (see the file comment) and, when it is acceptable, adopts it: the
  // history becomes the matching candidate's prefix up to the recovered end and the start becomes
  // the recovered start. After a power loss the medium holds what the crash left, so every pending
  // truncation is resolved. After a process restart the page cache survives and nothing new is
  // durable: the reopened log may have read a checkpoint whose truncation bound is only in the page
  // cache. So pending truncations stay (when the log came back as before one of them, that one and
  // the later ones are undone, and the earlier ones stay), and a tail the reopened log dropped
  // counts as one more pending truncation (a later power loss may bring it back). Nothing changes
  // on error.
  absl::Status CheckRecovered(const LogView& recovered, int64_t now_ms, RecoveryKind kind);
  // Checks one Read() result. A request outside [log start, log end] must fail with kOutOfRange;
  // any other error is reported as such (the caller decides first whether an injected fault
  // excuses it). Every returned batch must validate (CRC included) and match the history: the
  // batch holding the offset first, then the following ones, whole, none whose base offset is at
  // or past end_offset_max, at most bytes_max bytes unless allow_oversized_first lets the first
  // batch alone exceed it. At least one batch must come back when one qualifies, except that an
  // offset at or past end_offset_max may return nothing (Kafka: a fetch at the high watermark).
  absl::Status CheckRead(const ReadRequest& request, const absl::StatusOr<std::string>& result,
                         int64_t now_ms) const;
  // Checks one OffsetForTimestamp() result: the base offset of the first batch at or past the log
  // start whose max timestamp is >= timestamp_ms (the log start itself is accepted when that batch
  // straddles it), kNotFound when there is none. Compacted mode only checks the range.
  absl::Status CheckOffsetForTimestamp(int64_t timestamp_ms,
                                       const absl::StatusOr<int64_t>& result) const;

 private:
  struct History {
    std::vector<ModelBatch> batches;
    int64_t end_offset = 0;
    int64_t durable_end_offset = 0;
  };
  struct PendingTruncation {
    uint64_t generation = 0;  // the generation the truncation started
    int64_t offset = 0;
    History before;
  };
  struct Truncation {
    uint64_t generation = 0;
    int64_t offset = 0;
  };

  // Checks `view` against `history` for a recovery (exact_end false: any acceptable end) or a live
  // log (exact_end true).
  absl::Status CheckView(const LogView& view, const History& history, bool exact_end,
                         int64_t now_ms) const;
  // The lowest offset of truncations made after `generation`, up to and including `through`.
  int64_t CutAfter(uint64_t generation, uint64_t through) const;
  CompactionRules Rules(int64_t now_ms) const {
    return CompactionRules{now_ms, options_.delete_retention_ms};
  }

  LogModelOptions options_;
  std::vector<ModelBatch> batches_;
  int64_t log_start_offset_;
  int64_t log_end_offset_;
  int64_t durable_end_offset_;
  // Increments at every truncation and every adopted recovery.
  uint64_t generation_ = 0;
  std::vector<PendingTruncation> pending_;
  std::vector<Truncation> truncations_;
};

}  // namespace runnel::model

#endif  // RUNNEL_MODEL_LOG_MODEL_H_
