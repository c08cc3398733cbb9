// PartitionLog::Impl: the partition log's state and the parts of its implementation, split by
// concern over partition_log.cc (appends, reads), log_truncation.cc (TruncateTo, the log start,
// retention, maintenance), log_recovery.cc (Open), log_flush.cc (the durability pipeline,
// WhenDurable, Close) and log_cleaner.cc (compaction). Private to broker/storage/.
//
// Durability pipeline ("cycles"). At most one cycle runs at a time; each is a fixed sequence of
// asynchronous steps, one disk operation in flight at a time:
//   1. plan       fix the target (the log end now) and the segments to sync;
//   2. segments   oldest first: write the index files of sealed segments that lack them and sync
//                 them, and sync every file with unsynced changes;
//   3. directory  sync the parent directories of the log's directory (once per Open) and the log
//                 directory (new segment files, removals, the clean-shutdown marker's removal);
//   4. bound      if a truncation waits (see below), write the checkpoint with its truncation
//                 bound (everything below it is durable by now), then cut the files and write the
//                 bytes appended meanwhile; the cut files are synced by the next cycle;
//   5. checkpoint when the recovery point can advance (to the active segment's base, every earlier
//                 segment having been synced in step 2), the log start or clean offset moved, or
//                 a truncation bound can be cleared (its cuts were synced in steps 2 and 3): write
//                 it atomically;
//   6. complete   the durable end becomes the target (never past a bound still on disk), waiters
//                 run in order, segment files that retention removed from the log are deleted now
//                 that the checkpoint holding the new log start is durable, and the next cycle
//                 starts if there is more to do.
// Appends arriving during a cycle are covered by the next one (group commit). Any failed step
// fails the log: appends are refused, every waiter gets the error, nothing is retried.
//
// Truncation. Cutting bytes that may be durable (covered by an issued Sync) in place, or removing
// more than the last segment, could mix old and new contents after a crash. Such a truncation is
// "complex": the log cuts itself in memory at once, but leaves the files alone until a checkpoint
// with truncation bound T is durable (step 4, written only once everything the truncation keeps
// is durable, so that a recovery never mistakes a lost batch for a gap); until then new appends
// are kept in memory (Segment::pending; see staging_file_). Open() cuts at a bound it finds, so
// after a crash the log is as before (bound not durable: files untouched) or as after (bound
// durable). The bound is cleared once the cut files and directory are synced. A truncation of
// bytes that were never synced, within the last segment, or at or past a bound already on disk,
// is done in place at once. Open() itself cuts a torn tail (or completes a bound it found) the
// complex way: it leaves the files alone until its own bound is durable, because a crash that
// undid the cut while new batches followed it could line old batches up behind new ones.
// WhenDurable callbacks registered after a complex truncation also wait for its bound.
//
// Write buffering. With write_buffer_bytes above 0 the active segment's appends go through a
// BufferedFile (segment.h): batches are copied (and stamped) into memory and written to the file
// in whole windows of write_buffer_bytes at multiples of it, since one write(2) per small batch,
// or one at an unaligned offset, costs far more than the copy. An unsynced append is volatile
// anyway; held bytes are only more volatile (a process crash loses them too), and for a bounded
// time: they are written out when the buffer is full, before
// every sync of the segment (step 2, so a sync covers them and WhenDurable means what it says), on
// roll, when write_buffer_bytes changes, at destruction (written, not synced), and at the latest
// kWriteBufferHoldUsMax after they were appended. A failure writing them out fails the log, as a
// failed sync does, except when an append needed the room: that append alone fails (a full disk
// is kResourceExhausted, and the log goes on with the bytes still held). With write_buffer_bytes 0
// (the default) every append is written through at once, so that a write error or a full disk is
// reported to the append that met it and a process crash loses nothing appended.
//
// Integrity of reads. Every batch a scan acts on passes its CRC (segment.h's BatchCursor, which
// re-reads before calling anything damaged). The fields outside the CRC are checked too: the base
// offset against the batch before it and the index, the leader epoch against leader_epochs_ (the
// log's list of epoch start offsets, kept in the checkpoint); a batch that does not match has
// those bytes read again.
#ifndef RUNNEL_BROKER_STORAGE_PARTITION_LOG_IMPL_H_
#define RUNNEL_BROKER_STORAGE_PARTITION_LOG_IMPL_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "broker/env/env.h"
#include "broker/storage/compaction.h"
#include "broker/storage/log_checkpoint.h"
#include "broker/storage/partition_log.h"
#include "broker/storage/segment.h"

namespace runnel::storage {

// The most segments one log holds; a roll beyond it is refused (kResourceExhausted).
inline constexpr size_t kSegmentsPerLogMax = size_t{1} << 14;
// The most bytes one AppendAsFollower call takes.
inline constexpr size_t kFollowerAppendBytesMax = size_t{64} << 20;
// The most bytes appended while a truncation waits for its bound (Segment::pending).
inline constexpr size_t kTruncationPendingBytesMax = size_t{64} << 20;
// The most bytes one Read() returns (its bytes_max is clamped to this), besides an oversized first
// batch.
inline constexpr size_t kReadBytesMax = size_t{64} << 20;
// The longest that appended bytes wait in a write buffer before they are written to their file
// (see "Write buffering"): what a process crash may lose of the unsynced appends, beyond what a
// machine crash loses anyway.
inline constexpr int64_t kWriteBufferHoldUsMax = 5'000;
// Each time this many more bytes of the active segment are in its file, the log asks for them to
// start on their way to the device (File::StartWriteback), whatever the flush policy, as RocksDB's
// bytes_per_sync does. Without it the operating system leaves appended bytes in memory until far
// more have piled up (a tenth of the memory, by Linux's default), and then the sync that finally
// needs them, or the append that hits the memory limit, waits for all of them at once; with it
// the device writes while the log appends. On bench/log_bench.cc's machine it made appending 256
// MiB and syncing it at the end (flush.policy=never) about one and a half times as fast.
inline constexpr uint64_t kWritebackStrideBytes = uint64_t{1} << 20;
// The stamping scratch buffer of appends written through is kept across appends up to this size.
inline constexpr size_t kAppendScratchBytesKeptMax = size_t{1} << 20;
// The largest index file read at Open().
inline constexpr uint64_t kIndexFileBytesMax =
    uint64_t{kIndexEntriesPerSegmentMax} * kTimeIndexEntryBytes;

class PartitionLog::Impl {
 public:
  Impl(Env& env, std::string directory, LogConfig config);
  ~Impl();

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // log_recovery.cc
  absl::Status Recover();

  // partition_log.cc
  absl::StatusOr<AppendInfo> AppendAsLeader(absl::string_view batch, int32_t leader_epoch);
  absl::StatusOr<AppendInfo> AppendAsFollower(absl::string_view batches);
  absl::StatusOr<std::string> Read(int64_t offset, size_t bytes_max, int64_t end_offset_max,
                                   bool allow_oversized_first);
  absl::StatusOr<int64_t> OffsetForTimestamp(int64_t timestamp_ms);
  absl::Status UpdateConfig(LogConfig config);

  // log_truncation.cc
  absl::Status TruncateTo(int64_t offset);
  absl::Status AdvanceLogStartOffset(int64_t offset);
  void RunMaintenance();

  // log_flush.cc
  void WhenDurable(int64_t end_offset, absl::AnyInvocable<void(const absl::Status&)> callback);
  void Flush();
  void Close(absl::AnyInvocable<void(const absl::Status&)> done);

  int64_t log_start_offset() const { return log_start_offset_; }
  int64_t log_end_offset() const { return log_end_offset_; }
  int64_t durable_end_offset() const { return durable_end_offset_; }
  const absl::Status& failure() const { return failed_; }
  const LogConfig& config() const { return config_; }
  const LogStats& stats() const { return stats_; }
  size_t segment_count() const { return segments_.size(); }
  uint64_t size_bytes() const;

 private:
  using SegmentMap = std::map<int64_t, std::shared_ptr<Segment>>;
  using Callback = absl::AnyInvocable<void(const absl::Status&)>;

  struct Waiter {
    // The complex truncations that must be durable first (those made before the call).
    uint64_t truncation_generation = 0;
    Callback callback;
  };

  // A segment that retention or DeleteRecords removed from the log; its files are deleted once a
  // durable checkpoint holds a log start at or past end_offset.
  struct DoomedSegment {
    std::shared_ptr<Segment> segment;
    int64_t end_offset = 0;
  };

  enum class CycleStep { kPlan, kSegments, kParentDirectories, kDirectory, kBound, kCheckpoint };

  struct CycleSegment {
    std::shared_ptr<Segment> segment;
    bool write_index = false;
    bool sync_data = false;
    // Sub-steps done.
    bool index_written = false;
    std::shared_ptr<File> index_file;
    std::shared_ptr<File> time_index_file;
    bool data_synced = false;
  };

  struct Cycle {
    CycleStep step = CycleStep::kPlan;
    // This cycle wrote a truncation bound (and cut the files it allows to cut).
    bool bound_written = false;
    int64_t target_end = 0;
    // The log end when the cycle was planned (target_end is lowered by truncations).
    int64_t planned_end = 0;
    int64_t recovery_point = 0;
    uint64_t bound_protected_changes = 0;
    bool closing = false;
    // Guard() calls before the cycle started (to tell whether it did anything asynchronous).
    uint64_t async_operations_at_start = 0;
    std::vector<CycleSegment> segments;
    size_t next_segment = 0;
  };

  enum class CleanerPhase { kIdle, kBuildMap, kRewrite };

  struct Cleaner {
    CleanerPhase phase = CleanerPhase::kIdle;
    uint64_t structure_generation = 0;
    std::unique_ptr<OffsetMap> map;
    // End of the cleanable part: segments wholly below it (never the active one).
    int64_t cleanable_end = 0;
    // Where the map is fed from next.
    int64_t feed_segment = 0;
    uint64_t feed_position = 0;
    int64_t feed_from_offset = 0;
    // The segment being rewritten and how far.
    int64_t rewrite_segment = -1;
    uint64_t rewrite_position = 0;
    std::shared_ptr<File> cleaned_file;
    std::unique_ptr<SegmentIndex> cleaned_index;
    uint64_t cleaned_bytes = 0;
    bool segment_changed = false;
    uint64_t records_removed = 0;
    // An asynchronous step (sync, rename) is in flight.
    bool busy = false;
  };

  // What AppendAsLeader writes into a client's batch as it stores it.
  struct BatchStamp {
    int64_t base_offset = 0;
    int32_t partition_leader_epoch = 0;
    // The LogAppendTime to stamp (attributes, maxTimestamp and the CRC change), or -1 for none.
    int64_t log_append_time_ms = -1;
  };

  // --- partition_log.cc
  absl::Status CheckWritable() const;
  // Appends validated batches (concatenated in `bytes`) that carry their offsets, or, with
  // `stamp`, one batch that gets them as it is stored (`headers` then describes it stamped).
  absl::Status AppendBatches(absl::string_view bytes, absl::Span<const BatchHeader> headers,
                             const BatchStamp* stamp = nullptr);
  // Writes appended bytes at the end of the active segment's file contents: into its write buffer
  // when write_buffer_bytes asks for one, else (or when they are too large for it) to the file.
  absl::Status WriteSegmentBytes(Segment& segment, absl::string_view bytes,
                                 const BatchStamp* stamp);
  // A copy of `batch` with `stamp` applied, in append_scratch_.
  absl::string_view StampedCopy(absl::string_view batch, const BatchStamp& stamp);
  // The segment's write buffer, wrapping its file first if needed.
  BufferedFile& WriteBufferOf(Segment& segment);
  // Writes out what the segment's write buffer holds and frees its memory; an error is returned
  // with the bytes still held.
  absl::Status FlushWriteBuffer(Segment& segment);
  // Starts the write-back of the active segment's bytes in its file once kWritebackStrideBytes
  // more are there.
  void MaybeStartWriteback(Segment& segment);
  // Arms the timer that writes out held bytes after kWriteBufferHoldUsMax.
  void ScheduleWriteBufferFlush();
  bool RollNeeded(uint64_t bytes, int64_t last_offset) const;
  absl::Status Roll();
  // The last segment, by reference: appends ask for it several times each, and copying the
  // shared_ptr costs two atomic operations every time. Copy it to keep it across a change of
  // segments_.
  const std::shared_ptr<Segment>& active() const { return segments_.rbegin()->second; }
  // The segment holding `offset` (the last one whose base is at or below it).
  SegmentMap::const_iterator SegmentFor(int64_t offset) const;
  // The next segment's base, or the log end for the last segment.
  int64_t SegmentLimit(SegmentMap::const_iterator it) const;
  CursorOptions ReadOptions(SegmentMap::const_iterator it, const ScanStart& start,
                            size_t chunk_bytes) const;
  void RemoveSegmentFiles(const Segment& segment);
  // Leader epoch bookkeeping: a batch appended (or scanned) at `base_offset` with `epoch`; every
  // batch at or past `offset` removed; everything below the log start forgotten.
  void RecordLeaderEpoch(int64_t base_offset, int32_t epoch);
  void TrimLeaderEpochs(int64_t offset);
  void PruneLeaderEpochs();

  // --- log_truncation.cc
  // The position of the first batch of `segment` whose last offset is at least `offset` (the
  // segment's size if none), and that batch's base offset.
  struct Located {
    uint64_t position = 0;
    int64_t base_offset = 0;  // of the batch there, or -1 at the end
  };
  absl::StatusOr<Located> Locate(SegmentMap::const_iterator it, int64_t offset);
  // A copy of the segment's index cut at `offset`, whose batches start before `position`.
  absl::StatusOr<SegmentIndex> TrimmedIndex(const Segment& segment, int64_t offset,
                                            uint64_t position);
  void FailWaitersAbove(int64_t offset);
  // Starts the scratch file for appends while a truncation waits.
  absl::Status StartStaging();
  void DeleteSegmentsBelowStart();
  void ApplyRetention();

  // --- log_recovery.cc
  absl::Status CreateDirectories();
  // Adopts the segment's index files after checking them against the segment (decodable, and the
  // batches after the last entry read back to the end of the file with their CRCs).
  absl::Status LoadTrustedIndex(Segment& segment, int64_t limit_offset);
  struct ScanResult {
    // Where damage stopped the scan (the index then covers the bytes before it).
    std::optional<uint64_t> damage_position;
    std::string damage_reason;
    // The scan stopped at the first batch at or past the cut offset (a truncation bound).
    bool cut = false;
  };
  // Scans a segment from its start, rebuilding its index from every batch (CRCs checked) up to
  // damage, the cut offset, or the end of the file.
  absl::StatusOr<ScanResult> ScanSegment(Segment& segment, int64_t limit_offset, int64_t cut_offset,
                                         bool learn_leader_epochs);
  // Reads an index file; its contents once two reads in a row agree.
  absl::StatusOr<std::string> ReadAgreedFile(absl::string_view path);
  // Reads a small metadata file, re-reading while `decode` rejects it and two reads differ.
  absl::StatusOr<std::string> ReadStableFile(
      absl::string_view path, absl::FunctionRef<absl::Status(absl::string_view)> decode);
  std::shared_ptr<Segment> NewSegment(int64_t base_offset);
  absl::Status CreateSegmentFile(Segment& segment);

  // --- log_flush.cc
  SyncCallback Guard(Callback then);
  void Fail(const absl::Status& status);
  bool CycleWanted() const;
  void MaybeStartCycle();
  void RunCycle();
  void PlanCycle();
  void ApplyPendingTruncation();
  void CompleteCycle();
  LogCheckpoint WantedCheckpoint() const;
  void WriteCheckpoint(const LogCheckpoint& checkpoint, Callback then);
  void WriteCleanShutdown();
  void FireWaiters();
  void ScheduleIntervalFlush();
  void DataWritten();

  // --- log_cleaner.cc
  // One bounded step of compaction (at most kCompactionStepBytesMax read).
  void CleanerStep();
  // Drops the round in progress (its output file too); completions of its asynchronous steps
  // then do nothing.
  void CleanerAbort();
  // Starts a round if the dirty ratio calls for one.
  bool CleanerStart();
  absl::Status CleanerFeed(uint64_t& budget_bytes);
  absl::Status CleanerRewrite(uint64_t& budget_bytes);
  // The current segment's output is complete: replace the segment with it (asynchronously).
  void CleanerReplaceSegment();
  void CleanerNextSegment();

  Env& env_;
  Disk& disk_;
  const std::string directory_;
  LogConfig config_;
  LogStats stats_;
  // Cleared at destruction: asynchronous completions check it before touching the log.
  std::shared_ptr<Impl*> alive_;

  SegmentMap segments_;
  int64_t log_start_offset_ = 0;
  int64_t log_end_offset_ = 0;
  int64_t durable_end_offset_ = 0;
  absl::Status failed_;
  bool closed_ = false;

  // What the recovery-point file on disk says (the last one written durably).
  LogCheckpoint checkpoint_durable_;
  // Compaction horizon (log_checkpoint.h; kNoOffset when nothing was compacted).
  int64_t clean_offset_ = kNoOffset;
  // End of the completed compaction rounds (log_checkpoint.h's cleaned offset; kNoOffset when none
  // completed): the next round feeds its map from here. Never above clean_offset_.
  int64_t cleaned_offset_ = kNoOffset;
  // Start offset -> leader epoch of every batch from there on (log_checkpoint.h), at most
  // kLeaderEpochEntriesMax entries.
  std::map<int64_t, int32_t> leader_epochs_;

  // Truncation (see the file comment).
  std::optional<int64_t> truncation_pending_;
  // The end of what the pending truncations keep (below the truncation point when compaction left
  // a gap before it): the recovery point its bound checkpoint may claim at most.
  int64_t truncation_kept_end_ = std::numeric_limits<int64_t>::max();
  // Bytes appended while a truncation waits are also written to a scratch file
  // (kPendingAppendsFileName), so that a full disk is reported at append time, without touching a
  // segment file before the cut (extending one could complete a torn batch the cut removes).
  std::shared_ptr<File> staging_file_;
  uint64_t staging_end_ = 0;
  // A checkpoint clearing the bound is being written: a cut may no longer rely on the bound.
  bool bound_clear_in_flight_ = false;
  std::vector<std::shared_ptr<Segment>> doomed_by_truncation_;
  int64_t bound_durable_ = kNoOffset;
  uint64_t bound_protected_changes_ = 0;
  uint64_t truncation_generation_ = 0;
  uint64_t truncation_generation_durable_ = 0;
  std::vector<DoomedSegment> doomed_by_retention_;
  // Changes that make any compaction in progress stale (truncation, deletion of segments).
  uint64_t structure_generation_ = 0;

  // Durability pipeline.
  bool cycle_in_flight_ = false;
  // Asynchronous disk operations started (Guard() calls).
  uint64_t async_operations_ = 0;
  Cycle cycle_;
  bool flush_requested_ = false;
  bool interval_due_ = false;
  TimerId flush_timer_ = kNoTimer;
  bool directory_dirty_ = false;
  std::vector<std::string> parent_directories_dirty_;
  std::multimap<int64_t, Waiter> waiters_;
  uint64_t waiters_changes_ = 0;
  // Files changed since the last cycle was planned.
  bool files_dirty_ = false;
  bool close_requested_ = false;
  int close_cycles_ = 0;
  bool close_writing_marker_ = false;
  Callback close_done_;

  // Write buffering (see the file comment).
  TimerId write_buffer_timer_ = kNoTimer;
  // Where AppendAsLeader stamps a batch that is written through (kept across appends).
  std::string append_scratch_;

  Cleaner cleaner_;
  // Read() reads through this buffer, kept across calls (at most a chunk and a batch).
  std::string read_scratch_;
  // Identifies the cleaner's round; asynchronous completions of an aborted round see it changed.
  uint64_t cleaner_round_ = 0;
};

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_PARTITION_LOG_IMPL_H_
