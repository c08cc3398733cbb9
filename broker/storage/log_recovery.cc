// Opening a partition log: finding its files, and recovering it after a crash.
//
// 1. Leftovers of unfinished work are removed: "<base>.log.cleaned" (a compaction that had not
//    renamed its output) and "recovery-point.tmp".
// 2. The checkpoint (log_checkpoint.h) gives the log start, the recovery point and any truncation
//    bound. Segments wholly below the log start are removed (retention that a crash interrupted);
//    with a bound, segments at or past it are removed and the segment holding it is cut there, so
//    an unfinished truncation completes (partition_log_impl.h).
// 3. With an intact clean-shutdown marker that still describes the last segment, every segment's
//    index files are adopted after a cheap check (decodable; the batches after the last entry read
//    back, CRCs included, to the end of the file). Anything amiss falls back to step 4.
// 4. Otherwise segments wholly below the recovery point have their index files adopted the same way
//    (and written again by the first cycle: after a crash they may be a dead process's unsynced
//    writes), or rebuilt by a full scan; every segment from the one holding the recovery point on
//    is scanned in full, each batch's framing and CRC checked. The first damage (a torn or corrupt
//    batch, an incomplete one, or a segment ending short of the next one's base) cuts the log
//    there: the rest of that segment and every later segment are removed. Damage below the recovery
//    point fails Open() with kDataLoss naming the file and byte position, and deletes nothing.
//    Every suspicious read is repeated first (segment.h), so a bit flipped on the way from the disk
//    is not mistaken for damage.
// 5. The clean-shutdown marker is removed, and a first cycle syncs what recovery changed (the
//    marker's removal included, so that a later crash is noticed).
#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "broker/storage/batch_scan.h"
#include "broker/storage/partition_log_impl.h"

namespace runnel::storage {
namespace {

constexpr uint64_t kMetadataFileBytesMax = kLogCheckpointBytesMax;
constexpr size_t kRecoveryChunkBytes = size_t{1} << 20;

}  // namespace

std::shared_ptr<Segment> PartitionLog::Impl::NewSegment(int64_t base_offset) {
  auto segment = std::make_shared<Segment>(base_offset, directory_);
  segment->created_us = env_.clock().MonotonicNowUs();
  return segment;
}

absl::Status PartitionLog::Impl::CreateSegmentFile(Segment& segment) {
  // A file of that name can only be a leftover nobody reads any more.
  if (absl::Status removed = RemoveIfExists(disk_, segment.log_path); !removed.ok()) return removed;
  absl::StatusOr<std::unique_ptr<File>> file =
      disk_.Open(segment.log_path, OpenMode::kCreateExclusive);
  if (!file.ok()) return file.status();
  segment.file = std::move(*file);
  directory_dirty_ = true;
  return absl::OkStatus();
}

absl::Status PartitionLog::Impl::CreateDirectories() {
  std::string path;
  for (absl::string_view component : absl::StrSplit(directory_, '/')) {
    const std::string parent = path;
    path = path.empty() ? std::string(component) : absl::StrCat(path, "/", component);
    if (!disk_.Exists(path)) {
      if (absl::Status created = disk_.CreateDirectory(path); !created.ok()) return created;
    }
    // An entry is durable only once its parent is synced, and one that exists may still be new
    // (an earlier incarnation may have died before syncing it): sync every level once.
    parent_directories_dirty_.push_back(parent);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PartitionLog::Impl::ReadStableFile(
    absl::string_view path, absl::FunctionRef<absl::Status(absl::string_view)> decode) {
  std::string previous;
  absl::Status last;
  for (int attempt = 0; attempt < kBatchReadAttemptsMax; ++attempt) {
    absl::StatusOr<std::string> bytes = ReadWholeFile(disk_, path, kMetadataFileBytesMax);
    if (!bytes.ok()) return bytes.status();
    last = decode(*bytes);
    if (last.ok()) return bytes;
    if (attempt > 0 && *bytes == previous) break;  // the same bytes twice: damage
    previous = *std::move(bytes);
  }
  return absl::DataLossError(
      absl::StrCat("partition log ", directory_, ": ", path, " at byte 0: ", last.message()));
}

absl::StatusOr<std::string> PartitionLog::Impl::ReadAgreedFile(absl::string_view path) {
  // Index files carry no checksum: a bit flipped on the way from the disk would go unnoticed, so
  // the contents are used only once two reads in a row agree.
  absl::StatusOr<std::string> previous = ReadWholeFile(disk_, path, kIndexFileBytesMax);
  if (!previous.ok()) return previous;
  for (int attempt = 1; attempt < kBatchReadAttemptsMax; ++attempt) {
    absl::StatusOr<std::string> bytes = ReadWholeFile(disk_, path, kIndexFileBytesMax);
    if (!bytes.ok()) return bytes;
    if (*bytes == *previous) return bytes;
    ++stats_.corrupt_reads;
    previous = std::move(bytes);
  }
  return absl::UnavailableError(absl::StrCat("reads of ", path, " keep returning different bytes"));
}

absl::Status PartitionLog::Impl::LoadTrustedIndex(Segment& segment, int64_t limit_offset) {
  absl::StatusOr<std::string> index_bytes = ReadAgreedFile(segment.index_path);
  if (!index_bytes.ok()) return index_bytes.status();
  absl::StatusOr<std::string> time_bytes = ReadAgreedFile(segment.time_index_path);
  if (!time_bytes.ok()) return time_bytes.status();
  absl::StatusOr<std::vector<OffsetIndexEntry>> entries = DecodeOffsetIndex(*index_bytes);
  if (!entries.ok()) return entries.status();
  absl::StatusOr<std::vector<TimeIndexEntry>> times = DecodeTimeIndex(*time_bytes);
  if (!times.ok()) return times.status();
  if (!entries->empty() && entries->back().position >= segment.physical_bytes) {
    return absl::DataLossError("offset index points past the end of the segment");
  }
  const uint32_t last_time_offset = times->empty() ? 0 : times->back().relative_offset;
  SegmentIndex index(segment.base_offset());
  index.Adopt(*std::move(entries), *std::move(times));
  CursorOptions options;
  options.start_position = index.size_bytes();
  options.end_position = segment.physical_bytes;
  options.min_base_offset = index.end_offset();
  options.limit_offset = limit_offset;
  if (!index.offset_entries().empty()) options.exact_first_base_offset = index.end_offset();
  // Damage here only means the index files are not to be trusted: the full scan that follows
  // decides what it is (a torn tail to cut, or kDataLoss below the recovery point).
  BatchScan scan(segment, options, directory_, stats_.corrupt_reads, BatchScan::OnDamage::kStop);
  while (true) {
    absl::StatusOr<bool> batch = scan.Next();
    if (!batch.ok()) return batch.status();
    if (!*batch) break;
    index.AddBatch(scan.header(), scan.position(), config_.index_interval_bytes);
  }
  if (scan.damaged()) return scan.DamageError();
  if (index.replay_pending() ||
      segment.base_offset() + last_time_offset > index.last_batch_base_offset()) {
    return absl::DataLossError("index files do not match the segment");
  }
  segment.index = std::move(index);
  assert(segment.size_bytes() == segment.physical_bytes);
  segment.index_files_written = true;
  segment.index_files_durable = true;
  return absl::OkStatus();
}

absl::StatusOr<PartitionLog::Impl::ScanResult> PartitionLog::Impl::ScanSegment(
    Segment& segment, int64_t limit_offset, int64_t cut_offset, bool learn_leader_epochs) {
  ScanResult result;
  segment.index = SegmentIndex(segment.base_offset());
  segment.index_files_written = false;
  segment.index_files_durable = false;
  CursorOptions options;
  options.end_position = segment.physical_bytes;
  options.min_base_offset = segment.base_offset();
  options.limit_offset = limit_offset;
  options.chunk_bytes = kRecoveryChunkBytes;
  // What is learned here is trusted later: no field outside the CRC is taken from one read.
  options.confirm_every_batch = learn_leader_epochs;
  // Damage is the caller's to judge: a torn tail past the recovery point, kDataLoss below it.
  BatchScan scan(segment, options, directory_, stats_.corrupt_reads, BatchScan::OnDamage::kStop);
  while (true) {
    absl::StatusOr<bool> batch = scan.Next();
    if (!batch.ok()) return batch.status();
    if (!*batch) break;
    if (scan.header().base_offset >= cut_offset) {
      result.cut = true;
      break;
    }
    segment.index.AddBatch(scan.header(), scan.position(), config_.index_interval_bytes);
    if (learn_leader_epochs) {
      RecordLeaderEpoch(scan.header().base_offset, scan.header().partition_leader_epoch);
    }
  }
  if (scan.damaged()) {
    result.damage_position = scan.damage_position();
    result.damage_reason = scan.damage_reason();
  }
  return result;
}

absl::Status PartitionLog::Impl::Recover() {
  if (absl::Status created = CreateDirectories(); !created.ok()) return created;
  absl::StatusOr<std::vector<std::string>> names = disk_.List(directory_);
  if (!names.ok()) return names.status();
  std::vector<int64_t> bases;
  bool has_checkpoint = false;
  bool has_marker = false;
  for (const std::string& name : *names) {
    const std::string path = absl::StrCat(directory_, "/", name);
    if (std::optional<int64_t> base = ParseSegmentFileName(name, kLogSuffix)) {
      bases.push_back(*base);
    } else if (ParseSegmentFileName(name, kCleanedSuffix).has_value() ||
               name == kRecoveryPointTempFileName || name == kPendingAppendsFileName) {
      if (absl::Status removed = RemoveIfExists(disk_, path); !removed.ok()) return removed;
      directory_dirty_ = true;
    } else if (name == kRecoveryPointFileName) {
      has_checkpoint = true;
    } else if (name == kCleanShutdownFileName) {
      has_marker = true;
    }
  }
  if (bases.size() > kSegmentsPerLogMax) {
    return absl::ResourceExhaustedError(absl::StrCat("log ", directory_, " holds ", bases.size(),
                                                     " segments, more than ", kSegmentsPerLogMax));
  }

  LogCheckpoint checkpoint;
  checkpoint.log_start_offset = bases.empty() ? 0 : bases.front();
  checkpoint.recovery_point = checkpoint.log_start_offset;
  if (has_checkpoint) {
    absl::StatusOr<std::string> bytes =
        ReadStableFile(absl::StrCat(directory_, "/", kRecoveryPointFileName),
                       [](absl::string_view data) { return DecodeLogCheckpoint(data).status(); });
    if (!bytes.ok()) return bytes.status();
    checkpoint = *DecodeLogCheckpoint(*bytes);
  }
  std::optional<CleanShutdownRecord> marker;
  if (has_marker) {
    const std::string path = absl::StrCat(directory_, "/", kCleanShutdownFileName);
    absl::StatusOr<std::string> bytes = ReadStableFile(
        path, [](absl::string_view data) { return DecodeCleanShutdown(data).status(); });
    if (bytes.ok()) marker = *DecodeCleanShutdown(*bytes);
    // From now on a crash must not look like a clean shutdown (synced by the first cycle).
    if (absl::Status removed = RemoveIfExists(disk_, path); !removed.ok()) return removed;
    directory_dirty_ = true;
  }
  // The checkpoint was read from the page cache: its rename may not be durable yet. The first
  // cycle syncs the directory before anything relies on it (bounds are written again, segments
  // below its log start are deleted only after a cycle).
  checkpoint_durable_ = checkpoint;
  log_start_offset_ = checkpoint.log_start_offset;
  clean_offset_ = checkpoint.clean_offset;
  cleaned_offset_ = checkpoint.cleaned_offset;
  for (const LeaderEpochEntry& entry : checkpoint.leader_epochs) {
    leader_epochs_[entry.start_offset] = entry.epoch;
  }

  for (int64_t base : bases) {
    std::shared_ptr<Segment> segment = NewSegment(base);
    absl::StatusOr<std::unique_ptr<File>> file = disk_.Open(segment->log_path, OpenMode::kExisting);
    if (!file.ok()) return file.status();
    absl::StatusOr<uint64_t> size = (*file)->Size();
    if (!size.ok()) return size.status();
    segment->file = std::move(*file);
    segment->physical_bytes = *size;
    segment->durable_bytes_max = *size;
    segments_.emplace(base, std::move(segment));
  }

  // An unfinished truncation completes first: nothing at or past its bound is part of the log.
  // Segments past the bound are cut like a torn tail, below.
  const int64_t cut_offset = checkpoint.truncation_bound != kNoOffset
                                 ? checkpoint.truncation_bound
                                 : std::numeric_limits<int64_t>::max();
  if (segments_.empty() || segments_.begin()->first > std::min(cut_offset, log_start_offset_)) {
    // No segment holds the log start (a new log, or every file lost): start one there.
    const int64_t base = std::min(cut_offset, log_start_offset_);
    if (!segments_.empty() && segments_.begin()->first <= cut_offset) {
      log_start_offset_ = segments_.begin()->first;
    } else {
      std::shared_ptr<Segment> segment = NewSegment(base);
      if (absl::Status created = CreateSegmentFile(*segment); !created.ok()) return created;
      segments_.emplace(base, std::move(segment));
    }
  }
  // Segments wholly below the log start: retention whose deletions a crash undid. They go once
  // the checkpoint is known durable.
  while (segments_.size() > 1 && std::next(segments_.begin())->first <= log_start_offset_) {
    doomed_by_retention_.push_back(
        DoomedSegment{segments_.begin()->second, std::next(segments_.begin())->first});
    segments_.erase(segments_.begin());
  }

  const int64_t recovery_point =
      std::max(std::min(checkpoint.recovery_point, cut_offset), segments_.begin()->first);
  auto limit_of = [this](SegmentMap::iterator it) {
    auto next = std::next(it);
    return next == segments_.end() ? std::numeric_limits<int64_t>::max() : next->first;
  };

  bool clean = marker.has_value() && checkpoint.truncation_bound == kNoOffset &&
               marker->last_segment_base_offset == segments_.rbegin()->first &&
               marker->last_segment_bytes == segments_.rbegin()->second->physical_bytes;
  if (clean) {
    for (auto it = segments_.begin(); it != segments_.end() && clean; ++it) {
      clean = LoadTrustedIndex(*it->second, limit_of(it)).ok();
    }
    clean = clean && segments_.rbegin()->second->index.end_offset() == marker->log_end_offset;
  }
  // Where the log is cut (damage, a lost tail, or a truncation bound), if it is.
  bool cut = false;
  if (!clean) {
    auto scan_from = segments_.upper_bound(recovery_point);
    if (scan_from != segments_.begin()) --scan_from;
    for (auto it = segments_.begin(); it != scan_from; ++it) {
      Segment& segment = *it->second;
      if (LoadTrustedIndex(segment, limit_of(it)).ok()) {
        // After a crash the index files may be what a crashed incarnation wrote to the page cache
        // and never synced (a process crash keeps them; say it rebuilt them and died). Counting
        // them durable would let the first directory sync make their names durable with contents
        // that a power loss then tears, and a torn time index can pass LoadTrustedIndex's checks
        // (they only replay the batches after the last offset entry). The first cycle writes them
        // again and syncs them before it syncs the directory.
        segment.index_files_written = false;
        segment.index_files_durable = false;
        continue;
      }
      absl::StatusOr<ScanResult> scanned =
          ScanSegment(segment, limit_of(it), cut_offset, /*learn_leader_epochs=*/false);
      if (!scanned.ok()) return scanned.status();
      if (scanned->damage_position.has_value()) {
        return absl::DataLossError(
            absl::StrCat("partition log ", directory_, ": ", segment.log_path, " at byte ",
                         *scanned->damage_position, ": ", scanned->damage_reason,
                         " (below the recovery point ", recovery_point, ")"));
      }
    }
    // The leader epochs of the scanned batches are learned again from the batches themselves.
    TrimLeaderEpochs(scan_from->first);
    for (auto it = scan_from; it != segments_.end(); ++it) {
      Segment& segment = *it->second;
      const bool last = std::next(it) == segments_.end();
      absl::StatusOr<ScanResult> scanned =
          ScanSegment(segment, limit_of(it), cut_offset, /*learn_leader_epochs=*/true);
      if (!scanned.ok()) return scanned.status();
      const int64_t end_offset = segment.index.end_offset();
      std::string problem;
      uint64_t problem_position = segment.size_bytes();
      if (scanned->damage_position.has_value()) {
        problem = scanned->damage_reason;
        problem_position = *scanned->damage_position;
      } else if (!last && !scanned->cut && end_offset != std::next(it)->first &&
                 std::next(it)->first <= cut_offset) {
        problem = absl::StrCat("the segment ends at offset ", end_offset,
                               " but the next one starts at ", std::next(it)->first);
      }
      const bool cut_here =
          !problem.empty() || scanned->cut || (!last && std::next(it)->first > cut_offset);
      if (end_offset < recovery_point && (cut_here || last)) {
        return absl::DataLossError(absl::StrCat("partition log ", directory_, ": ",
                                                segment.log_path, " at byte ", problem_position,
                                                ": ", problem.empty() ? "the log ends" : problem,
                                                " below the recovery point ", recovery_point));
      }
      if (!cut_here) continue;
      // Cut here and drop every later segment. Like a truncation whose bound is not durable yet
      // (partition_log_impl.h), the files stay as they are until a bound is: if their removal or
      // cut were undone by a crash while new batches follow the cut, old batches could line up
      // behind the new ones.
      cut = true;
      uint64_t cut_bytes = segment.physical_bytes - segment.size_bytes();
      segment.physical_bytes = segment.size_bytes();
      for (auto later = std::next(it); later != segments_.end();) {
        cut_bytes += later->second->physical_bytes;
        doomed_by_truncation_.push_back(later->second);
        later = segments_.erase(later);
      }
      if (!problem.empty()) {
        stats_.recovery_truncated_bytes += cut_bytes;
        env_.Log(LogLevel::kWarning,
                 absl::StrCat("partition log ", directory_, ": cutting ", cut_bytes, " bytes at ",
                              segment.log_path, " byte ", problem_position, ": ", problem));
      }
      break;
    }
  }
  for (auto& [base, segment] : segments_) segment->sealed = true;
  active()->sealed = false;
  log_end_offset_ = active()->index.end_offset();
  if (cut) {
    TrimLeaderEpochs(log_end_offset_);
    truncation_pending_ = log_end_offset_;
    truncation_kept_end_ = log_end_offset_;
    ++truncation_generation_;
    if (absl::Status started = StartStaging(); !started.ok()) return started;
  }
  // After a crash even the checkpoint just read may be only in the page cache, and an older one
  // (with a truncation bound) may come back: nothing counts as durable before the first cycle has
  // synced the files and the directory. After a clean shutdown everything is.
  durable_end_offset_ = clean ? log_end_offset_ : 0;
  if (!clean) {
    // What a crashed incarnation wrote may still be only in the page cache (a process crash):
    // past the recovery point, nothing counts as durable before it is synced again.
    for (auto& [base, segment] : segments_) {
      if (segment->synced_seq == segment->change_seq) ++segment->change_seq;
    }
    files_dirty_ = true;
  }
  directory_dirty_ = true;
  if (clean_offset_ != kNoOffset) clean_offset_ = std::min(clean_offset_, log_end_offset_);
  if (cleaned_offset_ != kNoOffset) cleaned_offset_ = std::min(cleaned_offset_, log_end_offset_);
  // The log must end at or past the truncation bound it completes (compaction may have left a gap
  // before it) and at or past its start (DeleteRecords past what a crash kept): empty batches
  // cover the offsets in between.
  const int64_t end_floor = std::max(
      log_start_offset_, cut_offset == std::numeric_limits<int64_t>::max() ? 0 : cut_offset);
  while (log_end_offset_ < end_floor) {
    const int64_t last = std::min(end_floor - 1, log_end_offset_ + kRelativeOffsetMax / 2);
    const std::string filler = MakeEmptyBatch(log_end_offset_, last);
    absl::StatusOr<BatchHeader> header = ParseBatchHeader(filler);
    assert(header.ok());
    if (absl::Status appended = AppendBatches(filler, {*header}); !appended.ok()) return appended;
  }
  env_.Log(LogLevel::kInfo,
           absl::StrCat("partition log ", directory_, " opened ",
                        clean ? "cleanly" : "after a scan", ": ", segments_.size(),
                        " segments, offsets [", log_start_offset_, ", ", log_end_offset_, ")"));
  flush_requested_ = true;
  MaybeStartCycle();
  return absl::OkStatus();
}

}  // namespace runnel::storage
