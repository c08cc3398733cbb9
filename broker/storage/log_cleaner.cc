// The partition log's incremental cleaner (cleanup.policy compact): compaction.h decides which
// records survive; this file decides what to clean and when, and replaces segments crash-safely.
//
// A round, spread over RunMaintenance() calls, each reading at most kCompactionStepBytesMax:
//   1. Start when the dirty share of the cleanable segments reaches min.cleanable.dirty.ratio.
//      Cleanable: sealed segments wholly below the durable recovery point (so never the active
//      segment, and never bytes a recovery scan could cut). Dirty: at or past the clean offset.
//   2. Feed the dirty batches to one OffsetMap until it is full or the cleanable part ends.
//   3. Rewrite, oldest first, every segment up to the map's last offset: its batches, compacted
//      against the map, go to "<base>.log.cleaned". A segment that loses nothing is left alone.
//      Otherwise the output is synced; the segment's index files are removed and the directory
//      synced (so that stale index files never describe the new contents); the output is renamed
//      over the segment and the directory synced; the in-memory segment switches to it with the
//      index built while writing (the cycle writes its index files later).
//   4. Before the first segment is replaced, the clean offset becomes the map's last offset + 1
//      and a checkpoint holding it is made durable: records below it may have been used to
//      remove older ones, so TruncateTo() refuses to cut below it (it would lose the latest value
//      of a key for good), across restarts too.
// Offsets never change and reads keep working throughout: a read sees the old file until the
// rename, the new one after. A truncation or deletion of segments aborts the round.
#include <algorithm>
#include <cassert>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/storage/batch_scan.h"
#include "broker/storage/partition_log_impl.h"

namespace runnel::storage {
namespace {

// The cursor options of both passes of a round over `segment` (sealed, so it ends below
// `limit_offset`, the next segment's base): from byte `position` on, reading a step's budget at a
// time. Like reads, the passes check each batch's leader epoch against the log's list: the epoch
// lies outside the CRC, and one flipped on the way from the disk must be read again rather than
// copied into the compacted segment, where it would stay for good.
CursorOptions CleanerCursorOptions(const Segment& segment, int64_t limit_offset, uint64_t position,
                                   uint64_t budget_bytes,
                                   const std::map<int64_t, int32_t>& leader_epochs) {
  CursorOptions options;
  options.start_position = position;
  options.end_position = segment.size_bytes();
  options.min_base_offset = segment.base_offset();
  options.limit_offset = limit_offset;
  options.chunk_bytes = static_cast<size_t>(budget_bytes);
  options.leader_epochs = &leader_epochs;
  return options;
}

}  // namespace

void PartitionLog::Impl::CleanerAbort() {
  ++cleaner_round_;
  for (auto& [base, segment] : segments_) segment->replacing = false;
  if (cleaner_.rewrite_segment >= 0 && cleaner_.cleaned_file != nullptr) {
    cleaner_.cleaned_file.reset();
    auto it = segments_.find(cleaner_.rewrite_segment);
    const std::string path = it != segments_.end()
                                 ? it->second->cleaned_path
                                 : Segment(cleaner_.rewrite_segment, directory_).cleaned_path;
    if (absl::Status removed = RemoveIfExists(disk_, path); !removed.ok()) {
      env_.Log(LogLevel::kWarning, absl::StrCat("cannot remove ", path, ": ", removed.message()));
    }
    directory_dirty_ = true;
  }
  cleaner_ = Cleaner{};
}

bool PartitionLog::Impl::CleanerStart() {
  assert(cleaner_.phase == CleanerPhase::kIdle);
  const int64_t cleanable_end =
      std::min(active()->base_offset(), checkpoint_durable_.recovery_point);
  // From the end of the completed rounds, not from the clean offset: a round that was aborted
  // raised the clean offset without rewriting every segment, so what it covered is fed again.
  const int64_t first_dirty = std::max(cleaned_offset_ == kNoOffset ? int64_t{0} : cleaned_offset_,
                                       segments_.begin()->first);
  uint64_t total_bytes = 0;
  uint64_t dirty_bytes = 0;
  for (auto it = segments_.begin(); std::next(it) != segments_.end(); ++it) {
    const int64_t end_offset = std::next(it)->first;
    if (end_offset > cleanable_end) break;
    total_bytes += it->second->size_bytes();
    if (end_offset > first_dirty) dirty_bytes += it->second->size_bytes();
  }
  if (dirty_bytes == 0 || static_cast<double>(dirty_bytes) < config_.min_cleanable_dirty_ratio *
                                                                 static_cast<double>(total_bytes)) {
    return false;
  }
  ++cleaner_round_;
  cleaner_ = Cleaner{};
  cleaner_.phase = CleanerPhase::kBuildMap;
  cleaner_.structure_generation = structure_generation_;
  cleaner_.cleanable_end = cleanable_end;
  cleaner_.map = std::make_unique<OffsetMap>();
  cleaner_.feed_from_offset = first_dirty;
  auto it = SegmentFor(first_dirty);
  cleaner_.feed_segment = it->first;
  cleaner_.feed_position = it->second->index.Lookup(first_dirty).position;
  return true;
}

absl::Status PartitionLog::Impl::CleanerFeed(uint64_t& budget_bytes) {
  while (budget_bytes > 0) {
    auto it = segments_.find(cleaner_.feed_segment);
    if (it == segments_.end() || std::next(it) == segments_.end() ||
        std::next(it)->first > cleaner_.cleanable_end) {
      cleaner_.phase = CleanerPhase::kRewrite;
      return absl::OkStatus();
    }
    const Segment& segment = *it->second;
    BatchScan scan(segment,
                   CleanerCursorOptions(segment, std::next(it)->first, cleaner_.feed_position,
                                        budget_bytes, leader_epochs_),
                   directory_, stats_.corrupt_reads);
    while (true) {
      absl::StatusOr<bool> batch = scan.Next();
      if (!batch.ok()) return batch.status();
      if (!*batch) {
        cleaner_.feed_segment = std::next(it)->first;
        cleaner_.feed_position = 0;
        break;
      }
      if (absl::Status fed = AddToOffsetMap(scan.bytes(), *cleaner_.map); !fed.ok()) return fed;
      if (cleaner_.map->last_offset() < scan.header().last_offset()) {
        // The map is full: this batch and the rest wait for a later round.
        cleaner_.phase = CleanerPhase::kRewrite;
        return absl::OkStatus();
      }
      cleaner_.feed_position = scan.next_position();
      budget_bytes -= std::min<uint64_t>(budget_bytes, scan.bytes().size());
      if (cleaner_.map->full()) {
        cleaner_.phase = CleanerPhase::kRewrite;
        return absl::OkStatus();
      }
      if (budget_bytes == 0) return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void PartitionLog::Impl::CleanerNextSegment() {
  cleaner_.cleaned_file.reset();
  cleaner_.cleaned_index.reset();
  cleaner_.cleaned_bytes = 0;
  cleaner_.segment_changed = false;
  cleaner_.records_removed = 0;
  cleaner_.rewrite_position = 0;
  auto next = segments_.upper_bound(cleaner_.rewrite_segment);
  cleaner_.rewrite_segment = next == segments_.end() ? cleaner_.cleanable_end : next->first;
}

absl::Status PartitionLog::Impl::CleanerRewrite(uint64_t& budget_bytes) {
  while (budget_bytes > 0 && !cleaner_.busy) {
    auto it = segments_.find(cleaner_.rewrite_segment);
    if (it == segments_.end() || it->first > cleaner_.map->last_offset() ||
        std::next(it) == segments_.end() || std::next(it)->first > cleaner_.cleanable_end) {
      // Every segment the map covers is rewritten, and the map was fed from the end of the
      // earlier completed rounds (or the log start), so the completed rounds now reach its end.
      assert(clean_offset_ >= cleaner_.map->last_offset() + 1);
      cleaned_offset_ = std::max(cleaned_offset_, cleaner_.map->last_offset() + 1);
      ++stats_.compactions;
      cleaner_ = Cleaner{};
      return absl::OkStatus();
    }
    Segment& segment = *it->second;
    if (cleaner_.cleaned_file == nullptr) {
      absl::StatusOr<std::unique_ptr<File>> file =
          WriteFreshFile(disk_, segment.cleaned_path, absl::string_view());
      if (!file.ok()) return file.status();
      directory_dirty_ = true;
      cleaner_.cleaned_file = std::move(*file);
      cleaner_.cleaned_index = std::make_unique<SegmentIndex>(segment.base_offset());
      cleaner_.cleaned_bytes = 0;
      cleaner_.rewrite_position = 0;
    }
    // Whole batches, up to the budget (at least one).
    BatchScan scan(segment,
                   CleanerCursorOptions(segment, std::next(it)->first, cleaner_.rewrite_position,
                                        budget_bytes, leader_epochs_),
                   directory_, stats_.corrupt_reads);
    std::string input;
    bool segment_read = false;
    while (true) {
      absl::StatusOr<bool> batch = scan.Next();
      if (!batch.ok()) return batch.status();
      if (!*batch) {
        segment_read = true;
        break;
      }
      input.append(scan.bytes().data(), scan.bytes().size());
      cleaner_.rewrite_position = scan.next_position();
      if (input.size() >= budget_bytes) break;
    }
    budget_bytes -= std::min<uint64_t>(budget_bytes, std::max<uint64_t>(input.size(), 1));
    if (!input.empty()) {
      CompactionStats compaction;
      absl::StatusOr<std::string> output = CompactBatches(
          input, *cleaner_.map, env_.clock().WallNowMs(), config_.delete_retention_ms,
          cleaned_offset_, &compaction);
      if (!output.ok()) return output.status();
      if (compaction.records_removed > 0 || output->size() != input.size()) {
        cleaner_.segment_changed = true;
      }
      cleaner_.records_removed += compaction.records_removed;
      if (!output->empty()) {
        if (absl::Status written = cleaner_.cleaned_file->WriteAt(cleaner_.cleaned_bytes, *output);
            !written.ok()) {
          return written;
        }
        absl::StatusOr<std::vector<absl::string_view>> batches = SplitBatches(*output);
        if (!batches.ok()) return batches.status();
        for (absl::string_view batch : *batches) {
          absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
          if (!header.ok()) return header.status();
          cleaner_.cleaned_index->AddBatch(*header, cleaner_.cleaned_bytes,
                                           config_.index_interval_bytes);
          cleaner_.cleaned_bytes += batch.size();
        }
      }
    }
    if (!segment_read) continue;
    if (!cleaner_.segment_changed) {
      // Nothing to remove here: keep the segment as it is.
      cleaner_.cleaned_file.reset();
      if (absl::Status removed = RemoveIfExists(disk_, segment.cleaned_path); !removed.ok()) {
        return removed;
      }
      CleanerNextSegment();
      continue;
    }
    if (checkpoint_durable_.clean_offset < clean_offset_) {
      // The checkpoint must hold the clean offset before any segment is replaced (so that a
      // restart still refuses truncations below it); a cycle writes it, the next step goes on.
      flush_requested_ = true;
      MaybeStartCycle();
      return absl::OkStatus();
    }
    CleanerReplaceSegment();
  }
  return absl::OkStatus();
}

void PartitionLog::Impl::CleanerReplaceSegment() {
  cleaner_.busy = true;
  cleaner_.cleaned_index->Seal();
  const uint64_t round = cleaner_round_;
  const std::shared_ptr<Segment> segment = segments_.at(cleaner_.rewrite_segment);
  std::shared_ptr<File> cleaned = cleaner_.cleaned_file;
  segment->replacing = true;
  ++stats_.syncs;
  cleaned->Sync(Guard([this, round, segment, cleaned](const absl::Status& status) {
    if (round != cleaner_round_) return;  // aborted; the abort removed the output
    if (!status.ok()) {
      env_.Log(LogLevel::kWarning,
               absl::StrCat("compaction of ", segment->log_path, " failed: ", status.message()));
      CleanerAbort();
      return;
    }
    // The index files go first, durably: they must never describe the new contents wrongly.
    for (const std::string* path : {&segment->index_path, &segment->time_index_path}) {
      if (absl::Status removed = RemoveIfExists(disk_, *path); !removed.ok()) {
        Fail(removed);
        return;
      }
    }
    segment->index_files_written = false;
    segment->index_files_durable = false;
    ++stats_.syncs;
    disk_.SyncDirectory(
        directory_, Guard([this, round, segment](const absl::Status& status) {
          if (!status.ok()) {
            Fail(status);
            return;
          }
          if (round != cleaner_round_) return;
          if (absl::Status renamed = disk_.Rename(segment->cleaned_path, segment->log_path);
              !renamed.ok()) {
            Fail(renamed);
            return;
          }
          directory_dirty_ = true;
          cleaner_.cleaned_file.reset();
          absl::StatusOr<std::unique_ptr<File>> file =
              disk_.Open(segment->log_path, OpenMode::kExisting);
          if (!file.ok()) {
            Fail(file.status());
            return;
          }
          // Switch the segment to the compacted contents (offsets and batch boundaries of what is
          // kept are unchanged).
          segment->file = std::move(*file);
          segment->replacing = false;
          segment->index_files_written = false;
          segment->index_files_durable = false;
          segment->index = *std::move(cleaner_.cleaned_index);
          cleaner_.cleaned_index.reset();
          segment->physical_bytes = cleaner_.cleaned_bytes;
          segment->durable_bytes_max = std::max(segment->durable_bytes_max, cleaner_.cleaned_bytes);
          ++segment->change_seq;
          segment->synced_seq = segment->change_seq;
          stats_.records_compacted_away += cleaner_.records_removed;
          ++stats_.syncs;
          disk_.SyncDirectory(directory_, Guard([this, round](const absl::Status& status) {
                                if (!status.ok()) {
                                  Fail(status);
                                  return;
                                }
                                if (round != cleaner_round_) return;
                                cleaner_.busy = false;
                                CleanerNextSegment();
                              }));
        }));
  }));
}

void PartitionLog::Impl::CleanerStep() {
  if (config_.cleanup_policy == CleanupPolicy::kDelete) {
    if (cleaner_.phase != CleanerPhase::kIdle) CleanerAbort();
    return;
  }
  if (closed_ || !failed_.ok() || cleaner_.busy || truncation_pending_.has_value()) return;
  if (cleaner_.phase != CleanerPhase::kIdle &&
      cleaner_.structure_generation != structure_generation_) {
    CleanerAbort();
  }
  if (cleaner_.phase == CleanerPhase::kIdle && !CleanerStart()) return;
  uint64_t budget_bytes = kCompactionStepBytesMax;
  absl::Status status;
  if (cleaner_.phase == CleanerPhase::kBuildMap) {
    status = CleanerFeed(budget_bytes);
    if (status.ok() && cleaner_.phase == CleanerPhase::kRewrite) {
      if (cleaner_.map->last_offset() < 0) {
        cleaner_ = Cleaner{};
        return;
      }
      cleaner_.rewrite_segment = segments_.begin()->first;
      cleaner_.rewrite_position = 0;
      // From now on records up to the map's end may be used to remove older ones: TruncateTo()
      // refuses to cut below this, and the checkpoint records it before any segment is replaced.
      clean_offset_ = std::max(clean_offset_, cleaner_.map->last_offset() + 1);
    }
  }
  if (status.ok() && cleaner_.phase == CleanerPhase::kRewrite && budget_bytes > 0) {
    status = CleanerRewrite(budget_bytes);
  }
  if (!status.ok()) {
    // Compaction is an optimisation: a read error or damage ends the round, not the log (reads
    // report damage themselves).
    env_.Log(LogLevel::kWarning, absl::StrCat("partition log ", directory_,
                                              ": compaction stopped: ", status.message()));
    CleanerAbort();
  }
}

}  // namespace runnel::storage
