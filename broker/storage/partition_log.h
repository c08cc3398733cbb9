// PartitionLog: one topic partition's append-only log of RecordBatch v2 batches, on one node's Disk.
//
// On disk, in the log's directory (this list is the one home of the file set; each format has its
// own one home, named here):
//   <base offset, 20 digits>.log          a segment: whole batches (record_batch.h), back to back,
//                                         exactly as stored
//   <base offset, 20 digits>.index        the segment's sparse offset index (format: log_index.h),
//                                         written once the segment is sealed, and by Close()
//   <base offset, 20 digits>.timeindex    the segment's sparse time index (format: log_index.h)
//   <base offset, 20 digits>.log.cleaned  compaction's output for the segment: written, synced,
//                                         then renamed over the .log; a leftover at Open() is an
//                                         unfinished compaction and is removed
//   recovery-point                        the checkpoint (format: log_checkpoint.h): the log start
//                                         offset, the recovery point (every batch below it was
//                                         validated and synced), a pending truncation's bound,
//                                         the clean offset (compaction's horizon), the cleaned
//                                         offset (where completed compaction rounds reach) and
//                                         the leader epochs; replaced atomically by writing and
//                                         syncing
//   recovery-point.tmp                    the next checkpoint on its way, then renamed over
//                                         recovery-point; a leftover at Open() is removed
//   clean-shutdown                        the clean-shutdown marker (format: log_checkpoint.h): the
//                                         log end and the last segment's base and size as Close()
//                                         left them; present only after a clean Close(), it lets
//                                         Open() trust the index files and skip the scan
//   pending-appends.tmp                   a scratch copy of what is appended while a truncation
//                                         waits for its bound (partition_log_impl.h), so that a
//                                         full disk is reported at append time; never read, removed
//                                         at Open()
//
// Index files carry no checksum of their own, and need none: they are caches, checked against the
// segment they describe. Open() adopts a segment's index files only when two reads of them agree (a
// bit flipped on the way from the disk is not taken in), they decode (entries increasing, positions
// inside the segment), and the batches after the last offset entry read back to the end of the
// segment with valid CRCs and end the index where appending them would have (no batch after the
// last entry reaches the index interval again); otherwise it rebuilds them from the segment. After
// that every lookup is checked where it lands: a scan that starts at an index entry's position must
// find there a batch with exactly the entry's base offset and a valid CRC, or it reads again and
// reports kDataLoss; an index can make a read fail, never make it serve a wrong batch. (A time
// index damaged on the medium in a way that still decodes can make OffsetForTimestamp start its
// scan too late; nothing else relies on one.) Index files are synced before the recovery point
// moves past their segment, removed before compaction replaces their segment (durably) or a
// truncation cuts it, and written again after an Open() that followed a crash, since what it found
// may be a crashed process's unsynced writes.
//
// Guarantees:
// - Offsets are dense and increasing from the log start offset, except where compaction removed
//   records (offsets are never reused and never change).
// - A batch reported durable (WhenDurable) survives any crash. After a crash the log holds a prefix
//   of what was appended (at batch granularity) that contains every durable batch.
// - No read ever returns a batch whose CRC fails: every batch is verified on the way out, and a
//   corrupt one is reported (kDataLoss, naming segment file and byte position), never served.
// - What Open() reads, and what damage there means. It reads every segment from the one that holds
//   the recovery point on, whole, checking every batch: the first damage past the recovery point (a
//   torn or corrupt batch, a segment ending short of the next one's base) is the unsynced tail, and
//   the log is cut there (later segments dropped; LogStats::recovery_truncated_bytes). Segments
//   wholly below the recovery point are not rescanned: Open() reads only their index files and the
//   batches after the last index entry (all of a segment whose index files fail those checks).
//   Damage that Open() reads below the recovery point fails Open() with kDataLoss naming the file
//   and byte position, and nothing is deleted; damage it does not read (below the recovery point,
//   before a segment's last index entry) surfaces as kDataLoss when a read, a lookup, a truncation
//   or compaction reaches it. After a clean Close() no segment is rescanned.
// - The log start offset may be lower after a crash than it was. AdvanceLogStartOffset() and
//   retention raise it in memory at once and write it with the next checkpoint, which the log
//   starts at once but which a crash may beat; the segment files below the new start are deleted
//   only once that checkpoint is durable, so the data the older start exposes again is all there.
//   It never goes below the start of the last durable checkpoint.
#ifndef RUNNEL_BROKER_STORAGE_PARTITION_LOG_H_
#define RUNNEL_BROKER_STORAGE_PARTITION_LOG_H_

#include <cstddef>
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

// The largest write buffer a log may use (LogConfig::write_buffer_bytes): enough that one write(2)
// carries many small batches, small enough that a broker with many partitions does not hold much
// memory per partition.
inline constexpr size_t kWriteBufferBytesMax = size_t{1} << 20;

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
  // Runnel's own, not Kafka's (topic config write.buffer.bytes): when above 0, appends are copied
  // into a buffer of this many bytes (at most kWriteBufferBytesMax) and written to the segment file
  // in whole buffers at offsets that are multiples of the size, which makes appending several times
  // cheaper for small batches and a third cheaper for 64 KiB ones (bench/log_bench.cc; 256 KiB did
  // as well as 1 MiB there). What the buffer holds is written out when it is full, before every
  // sync (so WhenDurable means what it says), on roll, and at most a few milliseconds after it was
  // appended. The price: a crash of the process, not only of the machine, loses what the buffer
  // holds (unsynced appends are volatile either way), and a write error or a full disk met while
  // writing it out fails the log (kUnavailable) instead of being reported by the append that
  // caused it, unless it is met while making room for an append, which then fails alone. 0 writes
  // every append to the file at once, as Kafka does, so that unsynced appends survive a process
  // crash in the page cache.
  uint32_t write_buffer_bytes = 0;
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

// Counters since Open() (a reopened log starts from zero).
struct LogStats {
  uint64_t batches_appended = 0;
  uint64_t bytes_appended = 0;
  // Sync() and SyncDirectory() calls started.
  uint64_t syncs = 0;
  uint64_t segments_rolled = 0;
  // By retention or AdvanceLogStartOffset().
  uint64_t segments_deleted = 0;
  // Compaction rounds completed (each rewrote every segment its offset map covered).
  uint64_t compactions = 0;
  uint64_t records_compacted_away = 0;
  // Bytes Open() cut as a torn tail.
  uint64_t recovery_truncated_bytes = 0;
  // Reads that returned bytes failing a check: each one a re-read then corrected (corruption on
  // the way from the disk), and each damaged batch reported as kDataLoss. Damage Open() cuts as a
  // torn tail counts in recovery_truncated_bytes instead.
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

  // Appends batches that already carry their offsets and leader epochs (a follower copying its
  // leader), as they are. The first batch's base offset must equal log_end_offset(), and each later
  // one must start past the end of the one before it (gaps are allowed: compacted data has them).
  // Each batch is validated like the above (records excepted, for those gaps). All or nothing: on
  // any error nothing is appended.
  absl::StatusOr<AppendInfo> AppendAsFollower(absl::string_view batches);

  // Runs `callback` once every offset below `end_offset` is durable, or with the error that makes
  // that impossible. Runs at once (synchronously) when it already is, and with kOutOfRange when
  // `end_offset` is past the log end (so also for offsets a truncation removed, once they are
  // gone). A wait for offsets that a later TruncateTo() removes (end_offset past the truncation
  // point) gets kAborted, run from a timer, never inside TruncateTo(); a wait up to the truncation
  // point itself stays and completes normally. A log that failed (a write or sync error) answers
  // with that error; more than kDurabilityWaitersMax waits at once get kResourceExhausted.
  void WhenDurable(int64_t end_offset, absl::AnyInvocable<void(const absl::Status&)> callback);
  // Every offset below this is durable.
  int64_t durable_end_offset() const;
  // OK while the log is healthy; once a write or sync failed (here or during recovery), the error
  // that failed it. A failed log refuses appends until it is reopened, and its durable end stops
  // where it was, which after a crash may be below what was durable before: a failed log must not
  // be served (the broker answers KAFKA_STORAGE_ERROR for it, as Kafka does for an offline log
  // directory).
  const absl::Status& failure() const;
  // Starts a sync of everything appended so far, whatever the flush policy.
  void Flush();

  // Whole batches starting with the one that contains `offset`, concatenated, up to `bytes_max`
  // bytes, and none whose base offset is at or past `end_offset_max` (the high watermark); a batch
  // that starts below it and ends past it is returned whole. A read at or past end_offset_max (or
  // at the log end) returns nothing, as a Kafka fetch at the high watermark does, even when the
  // batch holding `offset` starts below it. When `allow_oversized_first` is set and the first batch
  // alone exceeds bytes_max, it is returned anyway, as Kafka does so that a consumer can always
  // make progress. Errors: kOutOfRange when offset < log_start_offset() or offset >
  // log_end_offset(); kDataLoss for a corrupt batch (nothing is returned then, not even the
  // batches before it).
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
  // WhenDurable(log_end_offset()) completes. Errors, with nothing changed: kOutOfRange outside
  // [log start, log end]; kInvalidArgument inside a batch; kFailedPrecondition below the clean
  // offset (compaction used the records up to there to remove older ones, so cutting them would
  // lose the latest value of some key for good: the log must be rebuilt from its leader instead),
  // and after Close(); a failed log's error; a read error or damage met while locating the batch.
  absl::Status TruncateTo(int64_t offset);

  // Raises the log start offset (DeleteRecords): offsets below it are no longer served, and whole
  // segments below it are deleted once the new start is durable (see the file comment: a crash
  // before that brings the old start back). kOutOfRange past the log end; lower is a no-op.
  absl::Status AdvanceLogStartOffset(int64_t offset);

  // Periodic housekeeping, to be called from a timer: rolls the active segment by age, deletes
  // segments by retention.ms and retention.bytes, and does a bounded step of compaction.
  void RunMaintenance();

  // Clean shutdown: syncs everything and writes the clean-shutdown marker; `done` runs when that is
  // durable. After Close() no append is accepted.
  void Close(absl::AnyInvocable<void(const absl::Status&)> done);

  const LogConfig& config() const;
  // Replaces the configuration. An invalid one is refused as Open() refuses it (kInvalidArgument
  // naming the first bad field) and the old one stays. Each field applies where the log uses it:
  // retention and cleanup.policy at the next RunMaintenance(), segment.ms there and at the next
  // append, the flush policy at once (data already waiting is synced under the new policy), the
  // rest at the next append.
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
