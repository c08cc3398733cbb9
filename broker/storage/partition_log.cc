// The partition log's public face, its append and read paths. The durability pipeline is in
// log_flush.cc, recovery in log_recovery.cc, truncation and retention in log_truncation.cc,
// compaction in log_cleaner.cc; partition_log_impl.h describes how they fit.
#include "broker/storage/partition_log.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/storage/batch_scan.h"
#include "broker/storage/partition_log_impl.h"

namespace runnel::storage {

absl::Status ValidateLogConfig(const LogConfig& config) {
  auto bad = [](absl::string_view field, auto value) {
    return absl::InvalidArgumentError(absl::StrCat("log config: ", field, " = ", value));
  };
  // Positions in a segment are u32 in its index.
  if (config.segment_bytes < kBatchHeaderBytes ||
      config.segment_bytes > std::numeric_limits<int32_t>::max()) {
    return bad("segment_bytes", config.segment_bytes);
  }
  if (config.segment_ms < 1) return bad("segment_ms", config.segment_ms);
  if (config.retention_ms < -1) return bad("retention_ms", config.retention_ms);
  if (config.retention_bytes < -1) return bad("retention_bytes", config.retention_bytes);
  if (config.delete_retention_ms < 0) return bad("delete_retention_ms", config.delete_retention_ms);
  if (!(config.min_cleanable_dirty_ratio >= 0.0 && config.min_cleanable_dirty_ratio <= 1.0)) {
    return bad("min_cleanable_dirty_ratio", config.min_cleanable_dirty_ratio);
  }
  if (config.flush_interval_ms < 1) return bad("flush_interval_ms", config.flush_interval_ms);
  if (config.max_message_bytes < kBatchHeaderBytes || config.max_message_bytes > kBatchBytesMax) {
    return bad("max_message_bytes", config.max_message_bytes);
  }
  if (config.write_buffer_bytes > kWriteBufferBytesMax) {
    return bad("write_buffer_bytes", config.write_buffer_bytes);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// PartitionLog: forwards to Impl.

absl::StatusOr<std::unique_ptr<PartitionLog>> PartitionLog::Open(Env& env, std::string directory,
                                                                 LogConfig config) {
  if (absl::Status valid = ValidateLogConfig(config); !valid.ok()) return valid;
  if (absl::Status valid = ValidateDiskPath(directory); !valid.ok()) return valid;
  auto impl = std::make_unique<Impl>(env, std::move(directory), config);
  if (absl::Status recovered = impl->Recover(); !recovered.ok()) return recovered;
  return std::unique_ptr<PartitionLog>(new PartitionLog(std::move(impl)));
}

PartitionLog::PartitionLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PartitionLog::~PartitionLog() = default;

absl::StatusOr<AppendInfo> PartitionLog::AppendAsLeader(absl::string_view batch,
                                                        int32_t leader_epoch) {
  return impl_->AppendAsLeader(batch, leader_epoch);
}
absl::StatusOr<AppendInfo> PartitionLog::AppendAsFollower(absl::string_view batches) {
  return impl_->AppendAsFollower(batches);
}
void PartitionLog::WhenDurable(int64_t end_offset,
                               absl::AnyInvocable<void(const absl::Status&)> callback) {
  impl_->WhenDurable(end_offset, std::move(callback));
}
int64_t PartitionLog::durable_end_offset() const { return impl_->durable_end_offset(); }
const absl::Status& PartitionLog::failure() const { return impl_->failure(); }
void PartitionLog::Flush() { impl_->Flush(); }
absl::StatusOr<std::string> PartitionLog::Read(int64_t offset, size_t bytes_max,
                                               int64_t end_offset_max,
                                               bool allow_oversized_first) const {
  return impl_->Read(offset, bytes_max, end_offset_max, allow_oversized_first);
}
int64_t PartitionLog::log_start_offset() const { return impl_->log_start_offset(); }
int64_t PartitionLog::log_end_offset() const { return impl_->log_end_offset(); }
absl::StatusOr<int64_t> PartitionLog::OffsetForTimestamp(int64_t timestamp_ms) const {
  return impl_->OffsetForTimestamp(timestamp_ms);
}
absl::Status PartitionLog::TruncateTo(int64_t offset) { return impl_->TruncateTo(offset); }
absl::Status PartitionLog::AdvanceLogStartOffset(int64_t offset) {
  return impl_->AdvanceLogStartOffset(offset);
}
void PartitionLog::RunMaintenance() { impl_->RunMaintenance(); }
void PartitionLog::Close(absl::AnyInvocable<void(const absl::Status&)> done) {
  impl_->Close(std::move(done));
}
const LogConfig& PartitionLog::config() const { return impl_->config(); }
absl::Status PartitionLog::UpdateConfig(LogConfig config) {
  return impl_->UpdateConfig(std::move(config));
}
const LogStats& PartitionLog::stats() const { return impl_->stats(); }
size_t PartitionLog::segment_count() const { return impl_->segment_count(); }
uint64_t PartitionLog::size_bytes() const { return impl_->size_bytes(); }

// ---------------------------------------------------------------------------------------------
// Impl: appends.

PartitionLog::Impl::Impl(Env& env, std::string directory, LogConfig config)
    : env_(env),
      disk_(env.disk()),
      directory_(std::move(directory)),
      config_(config),
      alive_(std::make_shared<Impl*>(this)) {}

PartitionLog::Impl::~Impl() {
  // Held bytes go to their file, unsynced, as written-through appends would have: a process that
  // destroys its logs on the way down leaves them in the page cache. An error only loses bytes
  // that a crash may lose anyway.
  for (const auto& [base, segment] : segments_) {
    if (BufferedFile* buffer = segment->write_buffer_in_use()) buffer->Flush().IgnoreError();
  }
  alive_.reset();
  if (flush_timer_ != kNoTimer) env_.clock().CancelTimer(flush_timer_);
  if (write_buffer_timer_ != kNoTimer) env_.clock().CancelTimer(write_buffer_timer_);
}

uint64_t PartitionLog::Impl::size_bytes() const {
  uint64_t total = 0;
  for (const auto& [base, segment] : segments_) total += segment->size_bytes();
  return total;
}

absl::Status PartitionLog::Impl::UpdateConfig(LogConfig config) {
  if (absl::Status valid = ValidateLogConfig(config); !valid.ok()) return valid;
  const bool policy_changed = config.flush_policy != config_.flush_policy;
  const bool buffer_changed = config.write_buffer_bytes != config_.write_buffer_bytes;
  config_ = config;
  if (buffer_changed && !segments_.empty()) {
    // What is held goes out now: the new size (or writing through) applies to what comes next.
    if (absl::Status flushed = FlushWriteBuffer(*active()); !flushed.ok()) {
      Fail(flushed);
      return failed_;
    }
  }
  if (policy_changed) {
    // Data already waiting is synced under the new policy: kInterval arms its timer now rather
    // than at the next append, and a timer of the old policy must not sync under another one.
    if (flush_timer_ != kNoTimer && config_.flush_policy != FlushPolicy::kInterval) {
      env_.clock().CancelTimer(flush_timer_);
      flush_timer_ = kNoTimer;
    }
    if (config_.flush_policy != FlushPolicy::kInterval) interval_due_ = false;
    if (config_.flush_policy == FlushPolicy::kInterval &&
        (durable_end_offset_ < log_end_offset_ || files_dirty_)) {
      ScheduleIntervalFlush();
    }
    MaybeStartCycle();
  }
  return absl::OkStatus();
}

absl::Status PartitionLog::Impl::CheckWritable() const {
  if (closed_) return absl::FailedPreconditionError(absl::StrCat("log ", directory_, " is closed"));
  if (!failed_.ok()) return failed_;
  return absl::OkStatus();
}

absl::StatusOr<AppendInfo> PartitionLog::Impl::AppendAsLeader(absl::string_view batch,
                                                              int32_t leader_epoch) {
  if (absl::Status writable = CheckWritable(); !writable.ok()) return writable;
  if (batch.size() > config_.max_message_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "batch of ", batch.size(), " bytes exceeds max.message.bytes ", config_.max_message_bytes));
  }
  absl::StatusOr<BatchHeader> header = ValidateAndParseBatch(
      batch, BatchValidationOptions{.batch_bytes_max = config_.max_message_bytes});
  if (!header.ok()) return header.status();
  if (header->last_offset_delta > std::numeric_limits<int64_t>::max() - 1 - log_end_offset_) {
    return absl::OutOfRangeError("offsets exhausted");
  }
  // The batch is stamped as it is copied to where it is stored (AppendBatches); its header here
  // describes it stamped.
  BatchStamp stamp{.base_offset = log_end_offset_, .partition_leader_epoch = leader_epoch};
  if (config_.message_timestamp_type == TimestampType::kLogAppendTime) {
    stamp.log_append_time_ms = env_.clock().WallNowMs();
    header->attributes = static_cast<int16_t>(header->attributes | kAttributeLogAppendTime);
    header->max_timestamp = stamp.log_append_time_ms;
  }
  header->base_offset = stamp.base_offset;
  header->partition_leader_epoch = stamp.partition_leader_epoch;
  const int64_t append_time_ms = stamp.log_append_time_ms;
  if (absl::Status appended = AppendBatches(batch, {&*header, 1}, &stamp); !appended.ok()) {
    return appended;
  }
  return AppendInfo{.base_offset = header->base_offset,
                    .last_offset = header->last_offset(),
                    .log_append_time_ms = append_time_ms,
                    .log_start_offset = log_start_offset_};
}

absl::StatusOr<AppendInfo> PartitionLog::Impl::AppendAsFollower(absl::string_view batches) {
  if (absl::Status writable = CheckWritable(); !writable.ok()) return writable;
  if (batches.size() > kFollowerAppendBytesMax) {
    return absl::OutOfRangeError(absl::StrCat("follower append of ", batches.size(),
                                              " bytes exceeds ", kFollowerAppendBytesMax));
  }
  size_t remainder_bytes = 0;
  absl::StatusOr<std::vector<absl::string_view>> split = SplitBatches(batches, &remainder_bytes);
  if (!split.ok()) return split.status();
  if (remainder_bytes != 0 || split->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("follower append holds ", split->size(),
                                                   " whole batches and ", remainder_bytes,
                                                   " bytes of an incomplete one"));
  }
  std::vector<BatchHeader> headers;
  headers.reserve(split->size());
  for (absl::string_view batch : *split) {
    if (batch.size() > config_.max_message_bytes) {
      return absl::OutOfRangeError(absl::StrCat("batch of ", batch.size(),
                                                " bytes exceeds max.message.bytes ",
                                                config_.max_message_bytes));
    }
    // Compacted batches have gaps in their offset deltas: check the header and CRC only.
    if (absl::Status valid = ValidateBatch(
            batch, BatchValidationOptions{.batch_bytes_max = config_.max_message_bytes,
                                          .check_records = false});
        !valid.ok()) {
      return valid;
    }
    absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
    assert(header.ok());
    if (header->last_offset_delta < 0 ||
        header->base_offset > std::numeric_limits<int64_t>::max() - 1 - header->last_offset_delta) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch at ", header->base_offset, " has lastOffsetDelta ", header->last_offset_delta));
    }
    if (headers.empty() ? header->base_offset != log_end_offset_
                        : header->base_offset <= headers.back().last_offset()) {
      return absl::InvalidArgumentError(
          absl::StrCat("follower batch at offset ", header->base_offset, " does not follow ",
                       headers.empty() ? log_end_offset_ - 1 : headers.back().last_offset()));
    }
    headers.push_back(*header);
  }
  if (headers.back().last_offset() - headers.front().base_offset > kRelativeOffsetMax) {
    return absl::InvalidArgumentError("follower append spans too many offsets for one segment");
  }
  if (absl::Status appended = AppendBatches(batches, headers); !appended.ok()) return appended;
  return AppendInfo{.base_offset = headers.front().base_offset,
                    .last_offset = headers.back().last_offset(),
                    .log_append_time_ms = -1,
                    .log_start_offset = log_start_offset_};
}

bool PartitionLog::Impl::RollNeeded(uint64_t bytes, int64_t last_offset) const {
  const Segment& segment = *active();
  if (segment.empty()) return false;
  return segment.size_bytes() + bytes > config_.segment_bytes ||
         segment.size_bytes() + bytes > std::numeric_limits<uint32_t>::max() ||
         env_.clock().MonotonicNowUs() - segment.created_us >= config_.segment_ms * 1000 ||
         segment.index.full() || last_offset - segment.base_offset() > kRelativeOffsetMax;
}

absl::Status PartitionLog::Impl::Roll() {
  assert(!truncation_pending_.has_value());
  std::shared_ptr<Segment> old = active();
  assert(!old->empty());
  assert(old->index.end_offset() == log_end_offset_);
  if (segments_.size() >= kSegmentsPerLogMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "log ", directory_, " holds ", segments_.size(), " segments, the most allowed"));
  }
  // A sealed segment holds nothing in memory: its bytes are in its file before the next one
  // starts.
  if (absl::Status flushed = FlushWriteBuffer(*old); !flushed.ok()) return flushed;
  std::shared_ptr<Segment> segment = NewSegment(log_end_offset_);
  if (absl::Status created = CreateSegmentFile(*segment); !created.ok()) return created;
  old->index.Seal();
  old->sealed = true;
  old->index_files_written = false;
  old->index_files_durable = false;
  // The sealed segment's index files are to be written and the recovery point can move past it:
  // a cycle is wanted even if the append that rolled fails and nothing else is appended.
  files_dirty_ = true;
  segments_.emplace(segment->base_offset(), std::move(segment));
  ++stats_.segments_rolled;
  return absl::OkStatus();
}

absl::Status PartitionLog::Impl::AppendBatches(absl::string_view bytes,
                                               absl::Span<const BatchHeader> headers,
                                               const BatchStamp* stamp) {
  assert(stamp == nullptr || headers.size() == 1);
  assert(!headers.empty());
  assert(headers.front().base_offset == log_end_offset_);
  const int64_t last_offset = headers.back().last_offset();
  if (!truncation_pending_.has_value() && RollNeeded(bytes.size(), last_offset)) {
    if (absl::Status rolled = Roll(); !rolled.ok()) {
      if (!absl::IsResourceExhausted(rolled)) Fail(rolled);
      return rolled.code() == absl::StatusCode::kResourceExhausted ? rolled : failed_;
    }
  }
  Segment& segment = *active();
  if (last_offset - segment.base_offset() > kRelativeOffsetMax ||
      segment.size_bytes() + bytes.size() > std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError("the active segment is full while a truncation completes");
  }
  uint64_t position = segment.size_bytes();
  if (truncation_pending_.has_value()) {
    // The file may still hold bytes the truncation cuts: keep new bytes in memory until it is cut.
    if (segment.pending.size() + bytes.size() > kTruncationPendingBytesMax ||
        staging_end_ + bytes.size() > uint64_t{1} << 40) {
      return absl::ResourceExhaustedError("too many bytes appended while a truncation completes");
    }
    if (stamp != nullptr) bytes = StampedCopy(bytes, *stamp);
    absl::Status written = staging_file_->WriteAt(staging_end_, bytes);
    if (!written.ok()) {
      absl::StatusOr<uint64_t> size = staging_file_->Size();
      absl::Status restored = size.status();
      if (size.ok() && *size > staging_end_) restored = staging_file_->Truncate(staging_end_);
      if (absl::IsResourceExhausted(written) && restored.ok()) return written;
      Fail(written.ok() ? restored : written);
      return failed_;
    }
    staging_end_ += bytes.size();
    segment.pending.append(bytes.data(), bytes.size());
  } else {
    assert(segment.pending.empty());
    absl::Status written = WriteSegmentBytes(segment, bytes, stamp);
    if (!written.ok()) {
      // Nothing may stay appended: cut off whatever part of the write happened.
      ++segment.change_seq;
      absl::StatusOr<uint64_t> size = segment.file->Size();
      absl::Status restored = size.status();
      if (size.ok() && *size > segment.physical_bytes) {
        restored = segment.file->Truncate(segment.physical_bytes);
      }
      if (absl::IsResourceExhausted(written) && restored.ok()) return written;
      Fail(written.ok() ? restored : written);
      return failed_;
    }
    segment.physical_bytes += bytes.size();
    ++segment.change_seq;
    MaybeStartWriteback(segment);
  }
  // Index files on disk no longer describe the segment.
  segment.index_files_written = false;
  segment.index_files_durable = false;
  for (const BatchHeader& header : headers) {
    segment.index.AddBatch(header, position, config_.index_interval_bytes);
    RecordLeaderEpoch(header.base_offset, header.partition_leader_epoch);
    position += header.total_bytes();
  }
  assert(segment.size_bytes() == segment.physical_bytes + segment.pending.size());
  log_end_offset_ = last_offset + 1;
  stats_.batches_appended += headers.size();
  stats_.bytes_appended += bytes.size();
  if (segment.write_buffer != nullptr && segment.write_buffer->held_bytes() > 0) {
    ScheduleWriteBufferFlush();
  }
  DataWritten();
  return absl::OkStatus();
}

namespace {

// Writes `stamp`'s fields into the stored copy of a batch (`size` bytes at `batch`).
void ApplyStamp(char* batch, size_t size, int64_t base_offset, int32_t partition_leader_epoch,
                int64_t log_append_time_ms) {
  SetBaseOffset(batch, base_offset);
  SetPartitionLeaderEpoch(batch, partition_leader_epoch);
  if (log_append_time_ms < 0) return;
  // Attributes and maxTimestamp lie inside the CRC, which must then be computed again.
  const int16_t attributes = LoadBigEndian<int16_t>(batch + kAttributesOffset);
  StoreBigEndian(batch + kAttributesOffset,
                 static_cast<int16_t>(attributes | kAttributeLogAppendTime));
  StoreBigEndian(batch + kMaxTimestampOffset, log_append_time_ms);
  StoreBigEndian(batch + kCrcOffset, ComputeBatchCrc(absl::string_view(batch, size)));
}

}  // namespace

absl::string_view PartitionLog::Impl::StampedCopy(absl::string_view batch,
                                                  const BatchStamp& stamp) {
  if (append_scratch_.capacity() > kAppendScratchBytesKeptMax) std::string().swap(append_scratch_);
  append_scratch_.assign(batch.data(), batch.size());
  ApplyStamp(append_scratch_.data(), append_scratch_.size(), stamp.base_offset,
             stamp.partition_leader_epoch, stamp.log_append_time_ms);
  return append_scratch_;
}

absl::Status PartitionLog::Impl::WriteSegmentBytes(Segment& segment, absl::string_view bytes,
                                                   const BatchStamp* stamp) {
  // Under kAlways an append that finds no sync in flight starts one at once, and that writes the
  // buffer out right away: writing through instead reports a write error or a full disk to this
  // append, which met it, rather than failing the log.
  const bool written_out_at_once =
      config_.flush_policy == FlushPolicy::kAlways && !cycle_in_flight_;
  if (config_.write_buffer_bytes > 0 && !written_out_at_once) {
    BufferedFile& buffer = WriteBufferOf(segment);
    const uint64_t position = segment.physical_bytes;
    if (stamp == nullptr) return buffer.Hold(position, bytes, config_.write_buffer_bytes);
    if (stamp->log_append_time_ms >= 0) {
      return buffer.Hold(position, StampedCopy(bytes, *stamp), config_.write_buffer_bytes);
    }
    // The stamp changes only fields in front of the CRC'd part: stamp a copy of those few bytes
    // and take the rest as it is, instead of copying the whole batch twice.
    const size_t capacity_bytes = config_.write_buffer_bytes;
    char head[kCrcUnprotectedBytes];
    std::memcpy(head, bytes.data(), sizeof(head));
    ApplyStamp(head, sizeof(head), stamp->base_offset, stamp->partition_leader_epoch, -1);
    if (absl::Status held = buffer.Hold(position, absl::string_view(head, sizeof(head)),
                                        capacity_bytes);
        !held.ok()) {
      return held;
    }
    return buffer.Hold(position + sizeof(head), bytes.substr(sizeof(head)), capacity_bytes);
  }
  if (stamp != nullptr) bytes = StampedCopy(bytes, *stamp);
  return segment.file->WriteAt(segment.physical_bytes, bytes);
}

void PartitionLog::Impl::MaybeStartWriteback(Segment& segment) {
  const BufferedFile* buffer = segment.write_buffer_in_use();
  const uint64_t in_file = segment.physical_bytes - (buffer != nullptr ? buffer->held_bytes() : 0);
  // A truncation may have cut the file below where write-back was last started.
  segment.writeback_started_bytes = std::min(segment.writeback_started_bytes, in_file);
  if (in_file - segment.writeback_started_bytes < kWritebackStrideBytes) return;
  segment.file->StartWriteback(segment.writeback_started_bytes,
                               in_file - segment.writeback_started_bytes);
  segment.writeback_started_bytes = in_file;
}

BufferedFile& PartitionLog::Impl::WriteBufferOf(Segment& segment) {
  if (BufferedFile* buffer = segment.write_buffer_in_use()) return *buffer;
  segment.write_buffer = std::make_shared<BufferedFile>(segment.file);
  segment.file = segment.write_buffer;
  return *segment.write_buffer;
}

absl::Status PartitionLog::Impl::FlushWriteBuffer(Segment& segment) {
  BufferedFile* buffer = segment.write_buffer_in_use();
  if (buffer == nullptr) return absl::OkStatus();
  if (absl::Status flushed = buffer->Flush(); !flushed.ok()) return flushed;
  buffer->Release();
  return absl::OkStatus();
}

void PartitionLog::Impl::ScheduleWriteBufferFlush() {
  if (write_buffer_timer_ != kNoTimer) return;
  std::weak_ptr<Impl*> alive = alive_;
  write_buffer_timer_ = env_.clock().ScheduleAfter(kWriteBufferHoldUsMax, [alive] {
    std::shared_ptr<Impl*> slot = alive.lock();
    if (slot == nullptr) return;
    Impl* self = *slot;
    self->write_buffer_timer_ = kNoTimer;
    // Only the active segment takes buffered appends (Roll() writes out the one before).
    if (absl::Status flushed = self->FlushWriteBuffer(*self->active()); !flushed.ok()) {
      self->Fail(flushed);
    }
  });
}

void PartitionLog::Impl::RecordLeaderEpoch(int64_t base_offset, int32_t epoch) {
  if (!leader_epochs_.empty()) {
    assert(leader_epochs_.rbegin()->first <= base_offset);
    if (leader_epochs_.rbegin()->second == epoch) return;
  }
  leader_epochs_[base_offset] = epoch;
  PruneLeaderEpochs();
  // Past the bound, the oldest are forgotten (reads then check their epochs less strictly).
  while (leader_epochs_.size() > kLeaderEpochEntriesMax)
    leader_epochs_.erase(leader_epochs_.begin());
}

void PartitionLog::Impl::TrimLeaderEpochs(int64_t offset) {
  leader_epochs_.erase(leader_epochs_.lower_bound(offset), leader_epochs_.end());
}

void PartitionLog::Impl::PruneLeaderEpochs() {
  // Keep the entry that covers the log start.
  while (leader_epochs_.size() > 1 &&
         std::next(leader_epochs_.begin())->first <= log_start_offset_) {
    leader_epochs_.erase(leader_epochs_.begin());
  }
}

void PartitionLog::Impl::RemoveSegmentFiles(const Segment& segment) {
  for (const std::string* path :
       {&segment.log_path, &segment.index_path, &segment.time_index_path, &segment.cleaned_path}) {
    if (absl::Status removed = RemoveIfExists(disk_, *path); !removed.ok()) {
      Fail(removed);
      return;
    }
  }
  directory_dirty_ = true;
}

// ---------------------------------------------------------------------------------------------
// Impl: reads.

PartitionLog::Impl::SegmentMap::const_iterator PartitionLog::Impl::SegmentFor(
    int64_t offset) const {
  auto it = segments_.upper_bound(offset);
  assert(it != segments_.begin());
  return std::prev(it);
}

int64_t PartitionLog::Impl::SegmentLimit(SegmentMap::const_iterator it) const {
  auto next = std::next(it);
  return next == segments_.end() ? log_end_offset_ : next->first;
}

CursorOptions PartitionLog::Impl::ReadOptions(SegmentMap::const_iterator it, const ScanStart& start,
                                              size_t chunk_bytes) const {
  CursorOptions options;
  options.start_position = start.position;
  options.end_position = it->second->size_bytes();
  options.min_base_offset = start.base_offset;
  options.limit_offset = SegmentLimit(it);
  if (start.exact) options.exact_first_base_offset = start.base_offset;
  options.chunk_bytes = chunk_bytes;
  options.leader_epochs = &leader_epochs_;
  return options;
}

absl::StatusOr<std::string> PartitionLog::Impl::Read(int64_t offset, size_t bytes_max,
                                                     int64_t end_offset_max,
                                                     bool allow_oversized_first) {
  if (offset < log_start_offset_ || offset > log_end_offset_) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is outside the log [",
                                              log_start_offset_, ", ", log_end_offset_, "]"));
  }
  std::string out;
  const int64_t end_offset = std::min(end_offset_max, log_end_offset_);
  // At or past the high watermark nothing is returned, not even a batch that straddles it, as a
  // Kafka fetch there returns nothing: the batch's records past it are not committed.
  if (offset >= end_offset) return out;
  bytes_max = std::min(bytes_max, kReadBytesMax);
  // The scratch buffer is kept across reads, but not when an oversized batch made it huge.
  if (read_scratch_.size() > kCursorChunkBytesMax + kBatchHeaderBytes)
    std::string().swap(read_scratch_);
  const size_t chunk_bytes = bytes_max + config_.index_interval_bytes;
  const auto first = SegmentFor(offset);
  const ScanStart first_start = first->second->index.LookupForRead(offset);
  {
    // One allocation for the result: growing it batch by batch would copy it again at every
    // doubling, each time into fresh pages. At most bytes_max, and no more than the log holds
    // from where the scan starts (an oversized first batch grows it once).
    uint64_t available_bytes = first->second->size_bytes() - first_start.position;
    for (auto it = std::next(first); it != segments_.end() && available_bytes < bytes_max; ++it) {
      available_bytes += it->second->size_bytes();
    }
    out.reserve(static_cast<size_t>(std::min<uint64_t>(bytes_max, available_bytes)));
  }
  for (auto it = first; it != segments_.end(); ++it) {
    const ScanStart start = it == first ? first_start : ScanStart{0, it->first, false};
    CursorOptions options = ReadOptions(it, start, chunk_bytes);
    options.scratch = &read_scratch_;
    BatchScan scan(*it->second, options, directory_, stats_.corrupt_reads);
    while (true) {
      if (!out.empty()) {
        // Stop before reading a batch that would not be returned.
        const uint64_t next_bytes = scan.PeekBatchBytes();
        if (next_bytes > 0 && out.size() + next_bytes > bytes_max) return out;
      }
      absl::StatusOr<bool> batch = scan.Next();
      if (!batch.ok()) return batch.status();
      if (!*batch) break;
      const BatchHeader& header = scan.header();
      if (header.base_offset >= end_offset) return out;
      if (header.last_offset() < offset) continue;
      const bool fits = out.size() + header.total_bytes() <= bytes_max;
      if (!fits && !(out.empty() && allow_oversized_first)) return out;
      out.append(scan.bytes().data(), scan.bytes().size());
      // Stop before reading a batch that cannot be returned (it may be one that fails).
      if (!fits || out.size() >= bytes_max || header.last_offset() + 1 >= end_offset) return out;
    }
  }
  return out;
}

absl::StatusOr<int64_t> PartitionLog::Impl::OffsetForTimestamp(int64_t timestamp_ms) {
  for (auto it = SegmentFor(log_start_offset_); it != segments_.end(); ++it) {
    const Segment& segment = *it->second;
    if (segment.empty() || segment.index.max_timestamp() < timestamp_ms) continue;
    // Every batch up to the offset-index entry before the first time-index entry at or above the
    // timestamp is below it (log_index.h), so the scan starts there.
    const std::vector<TimeIndexEntry>& times = segment.index.time_entries();
    auto first_at_or_above = std::lower_bound(
        times.begin(), times.end(), timestamp_ms,
        [](const TimeIndexEntry& entry, int64_t value) { return entry.timestamp_ms < value; });
    ScanStart start = first_at_or_above == times.end()
                          ? segment.index.Lookup(std::numeric_limits<int64_t>::max())
                          : (first_at_or_above->relative_offset == 0
                                 ? ScanStart{0, segment.base_offset(), false}
                                 : segment.index.Lookup(segment.base_offset() +
                                                        first_at_or_above->relative_offset - 1));
    if (segment.base_offset() < log_start_offset_) {
      const ScanStart from_start = segment.index.Lookup(log_start_offset_);
      if (from_start.position > start.position) start = from_start;
    }
    BatchScan scan(segment, ReadOptions(it, start, kCursorChunkBytesMin), directory_,
                   stats_.corrupt_reads);
    while (true) {
      absl::StatusOr<bool> batch = scan.Next();
      if (!batch.ok()) return batch.status();
      if (!*batch) break;
      const BatchHeader& header = scan.header();
      if (header.last_offset() < log_start_offset_) continue;
      if (header.max_timestamp >= timestamp_ms) {
        return std::max(header.base_offset, log_start_offset_);
      }
    }
  }
  return absl::NotFoundError(absl::StrCat("no batch has a timestamp at or after ", timestamp_ms));
}

}  // namespace runnel::storage
