// Cutting a partition log at either end: TruncateTo() at the tail (a follower diverging from its
// leader; partition_log_impl.h says how it stays crash safe), and at the head the log start
// (DeleteRecords) and retention by time and size; and RunMaintenance(), which drives retention,
// rolls by age and compaction steps.
#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/storage/batch_scan.h"
#include "broker/storage/partition_log_impl.h"

namespace runnel::storage {

// ---------------------------------------------------------------------------------------------
// Truncation.

absl::StatusOr<PartitionLog::Impl::Located> PartitionLog::Impl::Locate(
    SegmentMap::const_iterator it, int64_t offset) {
  const Segment& segment = *it->second;
  BatchScan scan(segment, ReadOptions(it, segment.index.Lookup(offset), kCursorChunkBytesMin),
                 directory_, stats_.corrupt_reads);
  while (true) {
    absl::StatusOr<bool> batch = scan.Next();
    if (!batch.ok()) return batch.status();
    if (!*batch) return Located{segment.size_bytes(), -1};
    if (scan.header().last_offset() >= offset) {
      return Located{scan.position(), scan.header().base_offset};
    }
  }
}

absl::StatusOr<SegmentIndex> PartitionLog::Impl::TrimmedIndex(const Segment& segment,
                                                              int64_t offset, uint64_t position) {
  SegmentIndex index = segment.index;
  const uint64_t replay_from = index.TrimTo(offset);
  assert(replay_from <= position);
  CursorOptions options;
  options.start_position = replay_from;
  options.end_position = position;
  options.min_base_offset = index.end_offset();
  BatchScan scan(segment, options, directory_, stats_.corrupt_reads);
  while (true) {
    absl::StatusOr<bool> batch = scan.Next();
    if (!batch.ok()) return batch.status();
    if (!*batch) break;
    index.AddBatch(scan.header(), scan.position(), config_.index_interval_bytes);
  }
  assert(index.size_bytes() == position);
  return index;
}

void PartitionLog::Impl::FailWaitersAbove(int64_t offset) {
  std::vector<Callback> aborted;
  for (auto it = waiters_.upper_bound(offset); it != waiters_.end();) {
    aborted.push_back(std::move(it->second.callback));
    it = waiters_.erase(it);
  }
  if (aborted.empty()) return;
  ++waiters_changes_;
  // Run from a timer, not from inside TruncateTo(): the callbacks may call back into the log.
  std::weak_ptr<Impl*> alive = alive_;
  env_.clock().ScheduleAfter(0, [alive, aborted = std::move(aborted),
                                 status = absl::AbortedError(absl::StrCat(
                                     "log ", directory_, " was truncated to ", offset))]() mutable {
    for (Callback& callback : aborted) {
      if (alive.expired()) return;
      callback(status);
    }
  });
}

absl::Status PartitionLog::Impl::StartStaging() {
  assert(staging_file_ == nullptr);
  absl::StatusOr<std::unique_ptr<File>> file = WriteFreshFile(
      disk_, absl::StrCat(directory_, "/", kPendingAppendsFileName), absl::string_view());
  if (!file.ok()) return file.status();
  directory_dirty_ = true;
  staging_file_ = std::move(*file);
  staging_end_ = 0;
  return absl::OkStatus();
}

absl::Status PartitionLog::Impl::TruncateTo(int64_t offset) {
  if (absl::Status writable = CheckWritable(); !writable.ok()) return writable;
  if (offset < log_start_offset_ || offset > log_end_offset_) {
    return absl::OutOfRangeError(absl::StrCat("cannot truncate to ", offset, " outside [",
                                              log_start_offset_, ", ", log_end_offset_, "]"));
  }
  if (offset == log_end_offset_) return absl::OkStatus();
  if (clean_offset_ != kNoOffset && offset < clean_offset_) {
    // Compaction removed records that batches at or past `offset` superseded: cutting those
    // batches would lose the latest value of their keys for good.
    return absl::FailedPreconditionError(
        absl::StrCat("cannot truncate to ", offset, ": compaction used the records up to ",
                     clean_offset_, " (the log must be rebuilt from its leader instead)"));
  }
  // Everything that can fail on reads first, so that an error changes nothing.
  const SegmentMap::const_iterator it = SegmentFor(offset);
  absl::StatusOr<Located> located = Locate(it, offset);
  if (!located.ok()) return located.status();
  if (located->base_offset >= 0 && located->base_offset < offset) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset ", offset, " is inside the batch at ", located->base_offset));
  }
  std::shared_ptr<Segment> segment = it->second;
  const uint64_t position = located->position;
  absl::StatusOr<SegmentIndex> trimmed = TrimmedIndex(*segment, offset, position);
  if (!trimmed.ok()) return trimmed.status();

  CleanerAbort();
  ++structure_generation_;
  FailWaitersAbove(offset);
  if (cycle_in_flight_) {
    cycle_.target_end = std::min(cycle_.target_end, offset);
    cycle_.recovery_point = std::min(cycle_.recovery_point, offset);
  }
  durable_end_offset_ = std::min(durable_end_offset_, offset);

  const bool last = std::next(it) == segments_.end();
  const bool in_pending_bytes = truncation_pending_.has_value() && *truncation_pending_ <= offset;
  const bool covered_by_bound = !truncation_pending_.has_value() && !bound_clear_in_flight_ &&
                                bound_durable_ != kNoOffset && bound_durable_ <= offset;
  const bool never_synced =
      !truncation_pending_.has_value() && last && position >= segment->durable_bytes_max;
  std::vector<std::shared_ptr<Segment>> later;
  for (auto next = std::next(it); next != segments_.end(); ++next) later.push_back(next->second);
  segments_.erase(std::next(it), segments_.end());

  if (in_pending_bytes) {
    // Only bytes appended since the pending truncation are cut: they are in memory.
    assert(last);
    assert(position >= segment->physical_bytes);
    segment->pending.resize(position - segment->physical_bytes);
  } else if (covered_by_bound || never_synced) {
    // Nothing cut here can come back after a crash: cut the files now.
    for (const std::shared_ptr<Segment>& doomed : later) RemoveSegmentFiles(*doomed);
    if (segment->physical_bytes > position || segment->durable_bytes_max > position) {
      ++segment->change_seq;
      if (absl::Status cut = segment->file->Truncate(position); !cut.ok()) Fail(cut);
    }
    segment->physical_bytes = position;
    if (covered_by_bound) ++bound_protected_changes_;
  } else {
    // Complex: cut in memory now, in the files once a bound is durable (see the Impl comment).
    if (!truncation_pending_.has_value()) {
      if (absl::Status started = StartStaging(); !started.ok()) Fail(started);
    }
    for (std::shared_ptr<Segment>& doomed : later) {
      doomed_by_truncation_.push_back(std::move(doomed));
    }
    if (!truncation_pending_.has_value() || offset < *truncation_pending_) {
      ++truncation_generation_;
    }
    truncation_pending_ = offset;
    truncation_kept_end_ = std::min(truncation_kept_end_, trimmed->end_offset());
    if (position <= segment->physical_bytes) {
      segment->physical_bytes = position;
      segment->pending.clear();
    } else {
      segment->pending.resize(position - segment->physical_bytes);
    }
  }
  if (segment->sealed) {
    segment->sealed = false;
    if (!truncation_pending_.has_value()) {
      // Its index files describe the old contents.
      if (absl::Status removed = RemoveIfExists(disk_, segment->index_path); !removed.ok()) {
        Fail(removed);
      }
      if (absl::Status removed = RemoveIfExists(disk_, segment->time_index_path); !removed.ok()) {
        Fail(removed);
      }
      directory_dirty_ = true;
    }
  }
  segment->index_files_written = false;
  segment->index_files_durable = false;
  segment->index = *std::move(trimmed);
  TrimLeaderEpochs(offset);
  assert(segment->size_bytes() == position);
  assert(segment->size_bytes() == segment->physical_bytes + segment->pending.size());
  log_end_offset_ = segment->index.end_offset();
  if (log_end_offset_ < offset) {
    // Compaction left no batch between the last one kept and `offset`: an empty batch covers
    // the gap, so that the log end (and the offsets of what comes next) survive a restart.
    std::string filler = MakeEmptyBatch(log_end_offset_, offset - 1);
    absl::StatusOr<BatchHeader> header = ParseBatchHeader(filler);
    assert(header.ok());
    if (absl::Status appended = AppendBatches(filler, {*header}); !appended.ok()) {
      Fail(appended);
      log_end_offset_ = offset;
    }
  }
  assert(log_end_offset_ == offset);
  if (!failed_.ok()) return failed_;
  MaybeStartCycle();
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The log start, retention and maintenance.

void PartitionLog::Impl::DeleteSegmentsBelowStart() {
  while (segments_.size() > 1) {
    auto first = segments_.begin();
    const int64_t end_offset = std::next(first)->first;
    if (end_offset > log_start_offset_) break;
    doomed_by_retention_.push_back(DoomedSegment{first->second, end_offset});
    segments_.erase(first);
    ++stats_.segments_deleted;
    ++structure_generation_;
  }
}

absl::Status PartitionLog::Impl::AdvanceLogStartOffset(int64_t offset) {
  if (absl::Status writable = CheckWritable(); !writable.ok()) return writable;
  if (offset > log_end_offset_) {
    return absl::OutOfRangeError(
        absl::StrCat("log start ", offset, " past the log end ", log_end_offset_));
  }
  if (offset <= log_start_offset_) return absl::OkStatus();
  log_start_offset_ = offset;
  PruneLeaderEpochs();
  const uint64_t generation = structure_generation_;
  DeleteSegmentsBelowStart();
  if (generation != structure_generation_) CleanerAbort();
  MaybeStartCycle();
  return absl::OkStatus();
}

void PartitionLog::Impl::ApplyRetention() {
  if (config_.cleanup_policy == CleanupPolicy::kCompact) return;
  const uint64_t generation = structure_generation_;
  if (config_.retention_ms >= 0) {
    const int64_t threshold_ms = env_.clock().WallNowMs() - config_.retention_ms;
    while (true) {
      const Segment& first = *segments_.begin()->second;
      if (first.empty() || first.index.max_timestamp() >= threshold_ms) break;
      if (segments_.size() == 1) {
        // The active segment goes too, as in Kafka: roll it first.
        if (truncation_pending_.has_value() || !Roll().ok()) break;
      }
      log_start_offset_ = std::max(log_start_offset_, std::next(segments_.begin())->first);
      DeleteSegmentsBelowStart();
    }
  }
  if (config_.retention_bytes >= 0) {
    uint64_t total = size_bytes();
    while (segments_.size() > 1) {
      const Segment& first = *segments_.begin()->second;
      if (total - first.size_bytes() < static_cast<uint64_t>(config_.retention_bytes)) break;
      total -= first.size_bytes();
      log_start_offset_ = std::max(log_start_offset_, std::next(segments_.begin())->first);
      DeleteSegmentsBelowStart();
    }
  }
  if (generation != structure_generation_) CleanerAbort();
  PruneLeaderEpochs();
}

void PartitionLog::Impl::RunMaintenance() {
  if (closed_ || !failed_.ok()) return;
  const Segment& segment = *active();
  if (!segment.empty() && !truncation_pending_.has_value() &&
      env_.clock().MonotonicNowUs() - segment.created_us >= config_.segment_ms * 1000) {
    if (absl::Status rolled = Roll(); !rolled.ok() && !absl::IsResourceExhausted(rolled)) {
      Fail(rolled);
      return;
    }
    DataWritten();
  }
  ApplyRetention();
  if (!failed_.ok()) return;
  CleanerStep();
  MaybeStartCycle();
}

}  // namespace runnel::storage
