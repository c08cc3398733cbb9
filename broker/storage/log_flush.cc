// The partition log's durability pipeline (see partition_log_impl.h), WhenDurable, Flush and Close.
#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/storage/partition_log_impl.h"

namespace runnel::storage {
namespace {

// Closing cycles run until everything is durable; more than this means a bug.
constexpr int kCloseCyclesMax = 8;

}  // namespace

SyncCallback PartitionLog::Impl::Guard(Callback then) {
  ++async_operations_;
  std::weak_ptr<Impl*> alive = alive_;
  return [alive, then = std::move(then)](const absl::Status& status) mutable {
    // On the real disk a completion may arrive after the log is gone.
    std::shared_ptr<Impl*> slot = alive.lock();
    if (slot == nullptr) return;
    then(status);
  };
}

void PartitionLog::Impl::Fail(const absl::Status& status) {
  assert(!status.ok());
  if (!failed_.ok()) return;
  failed_ = absl::UnavailableError(
      absl::StrCat("partition log ", directory_,
                   " failed and refuses appends until reopened: ", status.ToString()));
  env_.Log(LogLevel::kError, failed_.message());
  if (flush_timer_ != kNoTimer) {
    env_.clock().CancelTimer(flush_timer_);
    flush_timer_ = kNoTimer;
  }
  // The waiters learn it from a timer, not from inside whatever call failed: they may call back
  // into the log.
  std::vector<Callback> callbacks;
  for (auto& [end_offset, waiter] : waiters_) callbacks.push_back(std::move(waiter.callback));
  waiters_.clear();
  ++waiters_changes_;
  if (close_done_ != nullptr) callbacks.push_back(std::move(close_done_));
  close_done_ = nullptr;
  if (callbacks.empty()) return;
  std::weak_ptr<Impl*> alive = alive_;
  env_.clock().ScheduleAfter(0,
                             [alive, callbacks = std::move(callbacks), status = failed_]() mutable {
                               for (Callback& callback : callbacks) {
                                 if (alive.expired()) return;
                                 callback(status);
                               }
                             });
}

void PartitionLog::Impl::DataWritten() {
  files_dirty_ = true;
  switch (config_.flush_policy) {
    case FlushPolicy::kAlways:
      MaybeStartCycle();
      break;
    case FlushPolicy::kInterval:
      ScheduleIntervalFlush();
      break;
    case FlushPolicy::kNever:
      break;
  }
}

void PartitionLog::Impl::ScheduleIntervalFlush() {
  if (flush_timer_ != kNoTimer || !failed_.ok()) return;
  std::weak_ptr<Impl*> alive = alive_;
  flush_timer_ = env_.clock().ScheduleAfter(config_.flush_interval_ms * 1000, [alive] {
    std::shared_ptr<Impl*> slot = alive.lock();
    if (slot == nullptr) return;
    Impl* self = *slot;
    self->flush_timer_ = kNoTimer;
    self->interval_due_ = true;
    self->MaybeStartCycle();
  });
}

bool PartitionLog::Impl::CycleWanted() const {
  if (!failed_.ok()) return false;
  if (close_requested_) return !close_writing_marker_;
  if (truncation_pending_.has_value() || bound_durable_ != kNoOffset) return true;
  if (log_start_offset_ != checkpoint_durable_.log_start_offset ||
      clean_offset_ != checkpoint_durable_.clean_offset ||
      cleaned_offset_ != checkpoint_durable_.cleaned_offset) {
    return true;
  }
  const bool dirty = durable_end_offset_ < log_end_offset_ || files_dirty_ || directory_dirty_ ||
                     !parent_directories_dirty_.empty();
  if (!dirty) return false;
  return flush_requested_ || interval_due_ || config_.flush_policy == FlushPolicy::kAlways;
}

void PartitionLog::Impl::MaybeStartCycle() {
  if (cycle_in_flight_ || !CycleWanted()) return;
  cycle_in_flight_ = true;
  cycle_ = Cycle{};
  cycle_.closing = close_requested_;
  cycle_.async_operations_at_start = async_operations_;
  flush_requested_ = false;
  interval_due_ = false;
  RunCycle();
}

void PartitionLog::Impl::ApplyPendingTruncation() {
  assert(truncation_pending_.has_value());
  assert(bound_durable_ != kNoOffset && bound_durable_ <= *truncation_pending_);
  truncation_pending_.reset();
  truncation_kept_end_ = std::numeric_limits<int64_t>::max();
  staging_file_.reset();
  staging_end_ = 0;
  if (absl::Status removed =
          RemoveIfExists(disk_, absl::StrCat(directory_, "/", kPendingAppendsFileName));
      !removed.ok()) {
    Fail(removed);
  }
  for (const std::shared_ptr<Segment>& doomed : doomed_by_truncation_) RemoveSegmentFiles(*doomed);
  doomed_by_truncation_.clear();
  Segment& segment = *active();
  // Its index files describe the contents before the cut.
  for (const std::string* path : {&segment.index_path, &segment.time_index_path}) {
    if (absl::Status removed = RemoveIfExists(disk_, *path); !removed.ok()) Fail(removed);
  }
  directory_dirty_ = true;
  ++segment.change_seq;
  files_dirty_ = true;
  ++bound_protected_changes_;
  absl::StatusOr<uint64_t> size = segment.file->Size();
  if (!size.ok()) {
    Fail(size.status());
    return;
  }
  if (*size > segment.physical_bytes) {
    if (absl::Status cut = segment.file->Truncate(segment.physical_bytes); !cut.ok()) {
      Fail(cut);
      return;
    }
  }
  if (!segment.pending.empty()) {
    if (absl::Status written = segment.file->WriteAt(segment.physical_bytes, segment.pending);
        !written.ok()) {
      // These bytes were acknowledged as appended: the log cannot go on without them.
      Fail(written);
      return;
    }
    segment.physical_bytes += segment.pending.size();
    segment.pending.clear();
  }
  assert(segment.physical_bytes == segment.size_bytes());
}

void PartitionLog::Impl::PlanCycle() {
  cycle_.target_end = log_end_offset_;
  cycle_.planned_end = log_end_offset_;
  cycle_.recovery_point = cycle_.closing ? log_end_offset_ : active()->base_offset();
  cycle_.bound_protected_changes = bound_protected_changes_;
  files_dirty_ = false;
  // Segments retention removed from the log are synced too: the recovery point and the durable
  // end cover their offsets, and their files stay until the new log start is durable.
  for (const DoomedSegment& doomed : doomed_by_retention_) {
    if (doomed.segment->change_seq == doomed.segment->synced_seq) continue;
    CycleSegment item;
    item.segment = doomed.segment;
    item.sync_data = true;
    cycle_.segments.push_back(std::move(item));
  }
  for (const auto& [base, segment] : segments_) {
    CycleSegment item;
    item.segment = segment;
    item.write_index =
        !segment->index_files_durable && !segment->replacing && (segment->sealed || cycle_.closing);
    item.sync_data = segment->change_seq != segment->synced_seq;
    if (item.write_index || item.sync_data) cycle_.segments.push_back(std::move(item));
  }
}

void PartitionLog::Impl::RunCycle() {
  // Each step either completes at once (and the loop goes on) or starts one asynchronous disk
  // operation whose completion calls RunCycle() again.
  auto resume = [this](const absl::Status& status) {
    if (!status.ok()) {
      Fail(status);
      cycle_in_flight_ = false;
      return;
    }
    RunCycle();
  };
  while (true) {
    if (!failed_.ok()) {
      cycle_in_flight_ = false;
      return;
    }
    switch (cycle_.step) {
      case CycleStep::kBound: {
        if (!truncation_pending_.has_value()) {
          cycle_.step = CycleStep::kCheckpoint;
          break;
        }
        const int64_t bound = *truncation_pending_;
        if (bound_durable_ != kNoOffset && bound_durable_ <= bound) {
          ApplyPendingTruncation();
          cycle_.bound_written = true;
          break;
        }
        if (cycle_.planned_end < truncation_kept_end_) {
          // Part of what the truncation keeps was appended after this cycle was planned, so it
          // is not durable yet: the bound waits for the next cycle (a bound must never cut below
          // data that a crash may still lose, or recovery could not tell a gap from a loss).
          cycle_.step = CycleStep::kCheckpoint;
          break;
        }
        LogCheckpoint checkpoint = WantedCheckpoint();
        checkpoint.truncation_bound = bound;
        checkpoint.recovery_point =
            std::min({checkpoint_durable_.recovery_point, bound, truncation_kept_end_});
        const uint64_t generation = truncation_generation_;
        WriteCheckpoint(checkpoint, [this, generation, resume](const absl::Status& status) {
          if (status.ok()) {
            truncation_generation_durable_ = std::max(truncation_generation_durable_, generation);
          }
          resume(status);
        });
        return;
      }
      case CycleStep::kPlan:
        PlanCycle();
        cycle_.step = CycleStep::kSegments;
        break;
      case CycleStep::kSegments: {
        if (cycle_.next_segment == cycle_.segments.size()) {
          cycle_.step = CycleStep::kParentDirectories;
          break;
        }
        CycleSegment& item = cycle_.segments[cycle_.next_segment];
        Segment& segment = *item.segment;
        if (item.write_index && !item.index_written && segment.replacing) item.write_index = false;
        if (item.write_index && !item.index_written) {
          item.index_written = true;
          absl::StatusOr<std::unique_ptr<File>> index_file = WriteFreshFile(
              disk_, segment.index_path, EncodeOffsetIndex(segment.index.offset_entries()));
          absl::StatusOr<std::unique_ptr<File>> time_index_file =
              index_file.ok() ? WriteFreshFile(disk_, segment.time_index_path,
                                               EncodeTimeIndex(segment.index.time_entries()))
                              : absl::StatusOr<std::unique_ptr<File>>(index_file.status());
          directory_dirty_ = true;
          if (!time_index_file.ok()) {
            // Index files are caches: a full disk leaves them to be rebuilt at Open().
            if (!absl::IsResourceExhausted(time_index_file.status())) {
              Fail(time_index_file.status());
              break;
            }
            RemoveIfExists(disk_, segment.index_path).IgnoreError();
            RemoveIfExists(disk_, segment.time_index_path).IgnoreError();
            item.write_index = false;
            break;
          }
          item.index_file = std::move(*index_file);
          item.time_index_file = std::move(*time_index_file);
          segment.index_files_written = true;
          break;
        }
        if (item.index_file != nullptr || item.time_index_file != nullptr) {
          std::shared_ptr<File> file = item.index_file != nullptr ? std::move(item.index_file)
                                                                  : std::move(item.time_index_file);
          ++stats_.syncs;
          file->Sync(Guard([file, resume](const absl::Status& status) { resume(status); }));
          return;
        }
        if (item.write_index && segment.index_files_written) segment.index_files_durable = true;
        if (item.sync_data && !item.data_synced) {
          item.data_synced = true;
          // Bytes held in a write buffer go to the file first, so that the sync covers them.
          if (absl::Status flushed = FlushWriteBuffer(segment); !flushed.ok()) {
            Fail(flushed);
            break;
          }
          const uint64_t change_seq = segment.change_seq;
          absl::StatusOr<uint64_t> size = segment.file->Size();
          if (!size.ok()) {
            Fail(size.status());
            break;
          }
          segment.durable_bytes_max = std::max(segment.durable_bytes_max, *size);
          std::shared_ptr<File> file = segment.file;
          std::shared_ptr<Segment> kept = item.segment;
          ++stats_.syncs;
          file->Sync(Guard([kept, file, change_seq, resume](const absl::Status& status) {
            if (status.ok() && kept->file == file) {
              kept->synced_seq = std::max(kept->synced_seq, change_seq);
            }
            resume(status);
          }));
          return;
        }
        ++cycle_.next_segment;
        break;
      }
      case CycleStep::kParentDirectories:
        if (!parent_directories_dirty_.empty()) {
          const std::string path = parent_directories_dirty_.back();
          parent_directories_dirty_.pop_back();
          ++stats_.syncs;
          disk_.SyncDirectory(path, Guard(resume));
          return;
        }
        cycle_.step = CycleStep::kDirectory;
        break;
      case CycleStep::kDirectory:
        if (directory_dirty_) {
          directory_dirty_ = false;
          ++stats_.syncs;
          // Every checkpoint renamed so far is durable once this completes.
          const uint64_t generation = truncation_generation_;
          const bool truncation_waits = truncation_pending_.has_value();
          disk_.SyncDirectory(directory_, Guard([this, generation, truncation_waits,
                                                 resume](const absl::Status& status) {
                                if (status.ok() && !truncation_waits) {
                                  truncation_generation_durable_ =
                                      std::max(truncation_generation_durable_, generation);
                                }
                                resume(status);
                              }));
          return;
        }
        cycle_.step = CycleStep::kBound;
        break;
      case CycleStep::kCheckpoint: {
        const LogCheckpoint wanted = WantedCheckpoint();
        // After a bound was written, the files it allowed to cut need a cycle of their own.
        if (wanted == checkpoint_durable_ || cycle_.bound_written) {
          CompleteCycle();
          return;
        }
        WriteCheckpoint(wanted, [this](const absl::Status& status) {
          if (!status.ok()) {
            Fail(status);
            cycle_in_flight_ = false;
            return;
          }
          CompleteCycle();
        });
        return;
      }
    }
  }
}

LogCheckpoint PartitionLog::Impl::WantedCheckpoint() const {
  LogCheckpoint checkpoint;
  // A log start past what is durable would leave a recovered log starting past its end.
  int64_t durable_end = std::max(durable_end_offset_, std::min(cycle_.target_end, log_end_offset_));
  if (bound_durable_ != kNoOffset) durable_end = std::min(durable_end, bound_durable_);
  checkpoint.log_start_offset =
      std::max(checkpoint_durable_.log_start_offset, std::min(log_start_offset_, durable_end));
  // A durable recovery point stays valid until a truncation cuts below it, and such a truncation
  // lowers it with its bound before touching any file.
  checkpoint.recovery_point = std::max(std::min(cycle_.recovery_point, log_end_offset_),
                                       checkpoint_durable_.recovery_point);
  const bool clear_bound = bound_durable_ != kNoOffset && !truncation_pending_.has_value() &&
                           cycle_.bound_protected_changes == bound_protected_changes_;
  checkpoint.truncation_bound = clear_bound ? kNoOffset : bound_durable_;
  if (truncation_pending_.has_value()) {
    // While a cut waits for its own bound, a bound already on disk (say one that Open() found and
    // has not written again yet) must stay: the files it cuts are not cut yet.
    checkpoint.truncation_bound =
        bound_durable_ != kNoOffset ? bound_durable_ : checkpoint_durable_.truncation_bound;
  }
  if (checkpoint.truncation_bound != kNoOffset) {
    checkpoint.recovery_point = std::min(checkpoint.recovery_point, checkpoint.truncation_bound);
  }
  checkpoint.clean_offset = clean_offset_;
  checkpoint.cleaned_offset = cleaned_offset_;
  for (const auto& [start_offset, epoch] : leader_epochs_) {
    checkpoint.leader_epochs.push_back(LeaderEpochEntry{start_offset, epoch});
  }
  return checkpoint;
}

void PartitionLog::Impl::WriteCheckpoint(const LogCheckpoint& checkpoint, Callback then) {
  const std::string temp_path = absl::StrCat(directory_, "/", kRecoveryPointTempFileName);
  absl::StatusOr<std::unique_ptr<File>> written =
      WriteFreshFile(disk_, temp_path, EncodeLogCheckpoint(checkpoint));
  if (!written.ok()) {
    then(written.status());
    return;
  }
  std::shared_ptr<File> file = std::move(*written);
  if (bound_durable_ != kNoOffset && checkpoint.truncation_bound == kNoOffset) {
    bound_clear_in_flight_ = true;
  }
  ++stats_.syncs;
  file->Sync(Guard([this, file, temp_path, checkpoint,
                    then = std::move(then)](const absl::Status& status) mutable {
    if (!status.ok()) {
      then(status);
      return;
    }
    // The contents are durable before the name can be: the file is never seen torn.
    if (absl::Status renamed =
            disk_.Rename(temp_path, absl::StrCat(directory_, "/", kRecoveryPointFileName));
        !renamed.ok()) {
      then(renamed);
      return;
    }
    directory_dirty_ = false;
    ++stats_.syncs;
    disk_.SyncDirectory(
        directory_,
        Guard([this, checkpoint, then = std::move(then)](const absl::Status& status) mutable {
          bound_clear_in_flight_ = false;
          if (status.ok()) {
            checkpoint_durable_ = checkpoint;
            bound_durable_ = checkpoint.truncation_bound;
          }
          then(status);
        }));
  }));
}

void PartitionLog::Impl::CompleteCycle() {
  assert(cycle_in_flight_);
  cycle_in_flight_ = false;
  int64_t durable = std::min(cycle_.target_end, log_end_offset_);
  if (bound_durable_ != kNoOffset) durable = std::min(durable, bound_durable_);
  if (truncation_pending_.has_value()) durable = std::min(durable, *truncation_pending_);
  durable_end_offset_ = std::max(durable_end_offset_, durable);
  assert(durable_end_offset_ <= log_end_offset_);
  // Segments retention removed may go now that the log start that covers them is durable.
  for (auto it = doomed_by_retention_.begin(); it != doomed_by_retention_.end();) {
    if (it->end_offset > checkpoint_durable_.log_start_offset) {
      ++it;
      continue;
    }
    RemoveSegmentFiles(*it->segment);
    it = doomed_by_retention_.erase(it);
  }
  std::weak_ptr<Impl*> alive = alive_;
  FireWaiters();
  if (alive.expired()) return;
  if (close_requested_ && !close_writing_marker_ && failed_.ok()) {
    bool ready = durable_end_offset_ == log_end_offset_ && !files_dirty_ && !directory_dirty_ &&
                 parent_directories_dirty_.empty() && !truncation_pending_.has_value() &&
                 bound_durable_ == kNoOffset && doomed_by_retention_.empty() &&
                 checkpoint_durable_.recovery_point == log_end_offset_ &&
                 checkpoint_durable_.log_start_offset == log_start_offset_;
    for (const auto& [base, segment] : segments_) {
      ready = ready && segment->index_files_durable && segment->change_seq == segment->synced_seq;
    }
    if (ready) {
      close_writing_marker_ = true;
      WriteCleanShutdown();
      return;
    }
    if (++close_cycles_ >= kCloseCyclesMax) {
      Fail(absl::InternalError("Close() could not make the log durable"));
      return;
    }
  }
  if (cycle_.async_operations_at_start == async_operations_) {
    // Nothing asynchronous happened: start the next cycle from a timer rather than recursing.
    env_.clock().ScheduleAfter(0, [alive] {
      std::shared_ptr<Impl*> slot = alive.lock();
      if (slot != nullptr) (*slot)->MaybeStartCycle();
    });
    return;
  }
  MaybeStartCycle();
}

void PartitionLog::Impl::WriteCleanShutdown() {
  const Segment& last = *active();
  CleanShutdownRecord record;
  record.log_end_offset = log_end_offset_;
  record.last_segment_base_offset = last.base_offset();
  record.last_segment_bytes = last.size_bytes();
  record.segment_count = segments_.size();
  absl::StatusOr<std::unique_ptr<File>> written = WriteFreshFile(
      disk_, absl::StrCat(directory_, "/", kCleanShutdownFileName), EncodeCleanShutdown(record));
  if (!written.ok()) {
    Fail(written.status());
    return;
  }
  std::shared_ptr<File> file = std::move(*written);
  ++stats_.syncs;
  file->Sync(Guard([this, file](const absl::Status& status) {
    if (!status.ok()) {
      Fail(status);
      return;
    }
    ++stats_.syncs;
    disk_.SyncDirectory(directory_, Guard([this](const absl::Status& status) {
                          if (!status.ok()) {
                            Fail(status);
                            return;
                          }
                          Callback done = std::move(close_done_);
                          close_done_ = nullptr;
                          if (done != nullptr) done(absl::OkStatus());
                        }));
  }));
}

void PartitionLog::Impl::FireWaiters() {
  std::weak_ptr<Impl*> alive = alive_;
  auto it = waiters_.begin();
  while (it != waiters_.end() && it->first <= durable_end_offset_) {
    if (it->second.truncation_generation > truncation_generation_durable_) {
      ++it;
      continue;
    }
    Callback callback = std::move(it->second.callback);
    it = waiters_.erase(it);
    const uint64_t changes = ++waiters_changes_;
    callback(absl::OkStatus());
    if (alive.expired()) return;
    // The callback may have added or removed waiters: start over if so.
    if (waiters_changes_ != changes) it = waiters_.begin();
  }
}

void PartitionLog::Impl::WhenDurable(int64_t end_offset, Callback callback) {
  if (end_offset > log_end_offset_) {
    callback(absl::OutOfRangeError(
        absl::StrCat("offset ", end_offset, " is past the log end ", log_end_offset_)));
    return;
  }
  if (!failed_.ok()) {
    callback(failed_);
    return;
  }
  if (end_offset <= durable_end_offset_ &&
      truncation_generation_durable_ >= truncation_generation_) {
    callback(absl::OkStatus());
    return;
  }
  if (waiters_.size() >= kDurabilityWaitersMax) {
    callback(absl::ResourceExhaustedError(
        absl::StrCat("more than ", kDurabilityWaitersMax, " durability waiters")));
    return;
  }
  waiters_.emplace(end_offset, Waiter{truncation_generation_, std::move(callback)});
  ++waiters_changes_;
  MaybeStartCycle();
}

void PartitionLog::Impl::Flush() {
  flush_requested_ = true;
  MaybeStartCycle();
}

void PartitionLog::Impl::Close(Callback done) {
  if (close_requested_) {
    done(absl::FailedPreconditionError(absl::StrCat("log ", directory_, " is already closing")));
    return;
  }
  closed_ = true;
  if (!failed_.ok()) {
    done(failed_);
    return;
  }
  CleanerAbort();
  if (flush_timer_ != kNoTimer) {
    env_.clock().CancelTimer(flush_timer_);
    flush_timer_ = kNoTimer;
  }
  close_requested_ = true;
  close_done_ = std::move(done);
  MaybeStartCycle();
}

}  // namespace runnel::storage
