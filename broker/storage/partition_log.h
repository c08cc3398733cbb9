// PartitionLog: one topic partition's append-only log of RecordBatch v2 batches, on one node's Disk.
//
// On disk (the one home of this description), in the log's directory:
//   <base offset, 20 digits>.log        a segment: whole batches, back to back, exactly as stored
//   <base offset, 20 digits>.index      sparse offset index: entries of (u32 offset - base,
//                                       u32 byte position), one per index_interval_bytes of log
//   <base offset, 20 digits>.timeindex  sparse time index: entries of (i64 max timestamp so far,
//                                       u32 offset - base), appended when the max timestamp grows
//   recovery-point                      the offset below which every batch has been validated and
//                                       synced, with a checksum (written atomically by rename)
//   clean-shutdown                      present only after a clean Close(); it lets Open() trust the
//                                       index files and skip the scan
// Index files are caches: any of them may be missing or damaged after a crash, and Open() rebuilds
// them from their segment. Compaction writes "<base>.log.cleaned", syncs it, then renames it over
// the segment; a leftover ".cleaned" file at Open() is an unfinished compaction and is removed.
//
// Guarantees:
// - Offsets are dense and increasing from the log start offset, except where compaction removed
//   records (offsets are never reused and never change).
// - A batch reported durable (WhenDurable) survives any crash. After a crash the log holds a prefix
//   of what was appended (at batch granularity) that contains every durable batch.
// - No read ever returns a batch whose CRC fails: every batch is verified on the way out, and a
//   corrupt one is reported (kDataLoss, naming segment file and offset), never served.
// - Corruption found at Open() in the unsynced tail is truncated away; damage anywhere else (below
//   the recovery point, or followed by valid data in an earlier segment) fails Open() with
//   kDataLoss naming the file and byte position, and nothing is deleted.
#ifndef RUNNEL_BROKER_STORAGE_PARTITION_LOG_H_
#define RUNNEL_BROKER_STORAGE_PARTITION_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/storage/record_batch.h"

namespace runnel::storage {

enum class FlushPolicy {
  // Every append is synced before it is reported durable; appends waiting at the same time share
  // one sync (group commit). The default.
  kAlways,
  // A sync runs every flush_interval_ms while there is unsynced data.
  kInterval,
  // The log never syncs on its own; data becomes durable only through Flush() or Close().
  kNever,
};

enum class CleanupPolicy { kDelete, kCompact, kCompactAndDelete };
enum class TimestampType { kCreateTime, kLogAppendTime };

// Per-log configuration, named after Kafka's topic configs.
struct LogConfig {
  uint64_t segment_bytes = uint64_t{1} << 30;              // segment.bytes
  int64_t segment_ms = int64_t{7} * 24 * 3600 * 1000;      // segment.ms
  int64_t retention_ms = int64_t{7} * 24 * 3600 * 1000;    // retention.ms; -1 keeps forever
  int64_t retention_bytes = -1;                             // retention.bytes; -1 has no limit
  CleanupPolicy cleanup_policy = CleanupPolicy::kDelete;    // cleanup.policy
  int64_t delete_retention_ms = int64_t{24} * 3600 * 1000;  // delete.retention.ms
  // Compaction starts when the uncompacted share of the log's bytes reaches this.
  double min_cleanable_dirty_ratio = 0.5;                   // min.cleanable.dirty.ratio
  FlushPolicy flush_policy = FlushPolicy::kAlways;
  int64_t flush_interval_ms = 1000;                         // flush.ms, for kInterval
  uint32_t index_interval_bytes = 4096;                     // index.interval.bytes
  uint32_t max_message_bytes = 1048588;                     // max.message.bytes (largest batch)
  TimestampType message_timestamp_type = TimestampType::kCreateTime;  // message.timestamp.type
};

// Checks a configuration's ranges; kInvalidArgument names the first bad field.
absl::Status ValidateLogConfig(const LogConfig& config);

struct AppendInfo {
  int64_t base_offset = 0;
  int64_t last_offset = 0;
  // The LogAppendTime stamped on the batch, or -1 under CreateTime.
  int64_t log_append_time_ms = -1;
  int64_t log_start_offset = 0;
};

struct LogStats {
  uint64_t batches_appended = 0;
  uint64_t bytes_appended = 0;
  uint64_t syncs = 0;
  uint64_t segments_rolled = 0;
  uint64_t segments_deleted = 0;
  uint64_t compactions = 0;
  uint64_t records_compacted_away = 0;
  uint64_t recovery_truncated_bytes = 0;
  uint64_t corrupt_reads = 0;
};

class PartitionLog {
 public:
  // The most WhenDurable callbacks that may wait at once.
  static constexpr size_t kDurabilityWaitersMax = 1 << 16;
  // Bytes of compaction work one RunMaintenance() call does at most, so appends never stall.
  static constexpr uint64_t kCompactionStepBytesMax = uint64_t{4} << 20;

  // Opens the log in `directory` (created if missing) and recovers it (see the file comment).
  static absl::StatusOr<std::unique_ptr<PartitionLog>> Open(Env& env, std::string directory,
                                                            LogConfig config);
  // Destroying a log without Close() is a crash as far as the disk is concerned: nothing is synced.
  ~PartitionLog();

  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // Validates one batch as a client sent it (ValidateBatch with max_message_bytes), assigns it the
  // next offsets, stamps `leader_epoch` (and the append time under LogAppendTime), and appends it.
  // Nothing is appended on error: kInvalidArgument (malformed), kDataLoss (CRC mismatch),
  // kOutOfRange (larger than max_message_bytes), kResourceExhausted (disk full), kUnavailable
  // (I/O error; the log then refuses further appends until reopened).
  absl::StatusOr<AppendInfo> AppendAsLeader(absl::string_view batch, int32_t leader_epoch);

  // Appends batches that already carry their offsets (a follower copying its leader). The first
  // batch's base offset must equal log_end_offset(); offsets must increase. Validated like the above.
  absl::StatusOr<AppendInfo> AppendAsFollower(absl::string_view batches);

  // Runs `callback` once every offset below `end_offset` is durable, or with the error that makes
  // that impossible. Runs at once (synchronously) when it already is.
  void WhenDurable(int64_t end_offset, absl::AnyInvocable<void(const absl::Status&)> callback);
  // Every offset below this is durable.
  int64_t durable_end_offset() const;
  // Starts a sync of everything appended so far, whatever the flush policy.
  void Flush();

  // Whole batches starting with the one that contains `offset`, concatenated, up to `bytes_max`
  // bytes, and none whose base offset is at or past `end_offset_max` (the high watermark). When
  // `allow_oversized_first` is set and the first batch alone exceeds bytes_max, it is returned
  // anyway, as Kafka does so that a consumer can always make progress. Errors: kOutOfRange when
  // offset < log_start_offset() or offset > log_end_offset(); kDataLoss for a corrupt batch.
  absl::StatusOr<std::string> Read(int64_t offset, size_t bytes_max, int64_t end_offset_max,
                                   bool allow_oversized_first) const;

  int64_t log_start_offset() const;
  int64_t log_end_offset() const;
  // The first offset of the first batch whose max timestamp is at least `timestamp_ms`
  // (ListOffsets by time); kNotFound when there is none.
  absl::StatusOr<int64_t> OffsetForTimestamp(int64_t timestamp_ms) const;

  // Removes every batch at or after `offset` (a follower diverging from its leader). Batches are
  // removed whole: `offset` must be a batch boundary or the log end. Crash safe: after a crash the
  // log is either as before or as after, never damaged; the truncation is durable once a later
  // WhenDurable(log_end_offset()) completes.
  absl::Status TruncateTo(int64_t offset);

  // Raises the log start offset (DeleteRecords); whole segments below it are deleted.
  absl::Status AdvanceLogStartOffset(int64_t offset);

  // Periodic housekeeping, to be called from a timer: rolls the active segment by age, deletes
  // segments by retention.ms and retention.bytes, and does a bounded step of compaction.
  void RunMaintenance();

  // Clean shutdown: syncs everything and writes the clean-shutdown marker; `done` runs when that is
  // durable. After Close() no append is accepted.
  void Close(absl::AnyInvocable<void(const absl::Status&)> done);

  const LogConfig& config() const;
  absl::Status UpdateConfig(LogConfig config);
  const LogStats& stats() const;
  size_t segment_count() const;
  uint64_t size_bytes() const;

 private:
  class Impl;
  explicit PartitionLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_PARTITION_LOG_H_
