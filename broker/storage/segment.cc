#include "broker/storage/segment.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/common/big_endian.h"

namespace runnel::storage {

std::string SegmentStem(int64_t base_offset) {
  assert(base_offset >= 0);
  return absl::StrFormat("%020d", base_offset);
}

std::optional<int64_t> ParseSegmentFileName(absl::string_view name, absl::string_view suffix) {
  if (name.size() != kSegmentNameDigits + suffix.size()) return std::nullopt;
  if (name.substr(kSegmentNameDigits) != suffix) return std::nullopt;
  int64_t value = 0;
  for (size_t i = 0; i < kSegmentNameDigits; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
    const int digit = name[i] - '0';
    if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

Segment::Segment(int64_t base, const std::string& directory)
    : log_path(absl::StrCat(directory, "/", SegmentStem(base), kLogSuffix)),
      index_path(absl::StrCat(directory, "/", SegmentStem(base), kOffsetIndexSuffix)),
      time_index_path(absl::StrCat(directory, "/", SegmentStem(base), kTimeIndexSuffix)),
      cleaned_path(absl::StrCat(directory, "/", SegmentStem(base), kCleanedSuffix)),
      index(base) {}

absl::Status BufferedFile::Hold(uint64_t offset, absl::string_view data, size_t capacity_bytes) {
  capacity_bytes = std::clamp<size_t>(capacity_bytes, 1, kWriteBufferBytesMax);
  if (held_bytes_ > 0 && offset != held_end()) {
    if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
  }
  while (!data.empty()) {
    if (held_bytes_ == 0) held_offset_ = offset;
    const uint64_t window_end = (held_offset_ / capacity_bytes + 1) * capacity_bytes;
    if (held_end() >= window_end) {
      // The capacity shrank since these bytes were taken in: they no longer fit one window.
      if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
      continue;
    }
    const size_t taken =
        static_cast<size_t>(std::min<uint64_t>(window_end - held_end(), data.size()));
    const size_t needed_bytes = held_bytes_ + taken;
    if (buffer_.size() < needed_bytes) {
      // Doubling keeps the zero-filling of growth to a constant share of the bytes appended.
      buffer_.resize(std::min(capacity_bytes,
                              std::max({needed_bytes, 2 * buffer_.size(), kWriteBufferBytesMin})));
    }
    std::memcpy(buffer_.data() + held_bytes_, data.data(), taken);
    held_bytes_ = needed_bytes;
    offset += taken;
    data.remove_prefix(taken);
    if (held_end() == window_end) {
      if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
    }
  }
  assert(held_bytes_ <= capacity_bytes);
  return absl::OkStatus();
}

absl::Status BufferedFile::Flush() {
  if (held_bytes_ == 0) return absl::OkStatus();
  absl::StatusOr<uint64_t> size_before = inner_->Size();
  if (!size_before.ok()) return size_before.status();
  absl::Status written =
      inner_->WriteAt(held_offset_, absl::string_view(buffer_.data(), held_bytes_));
  if (!written.ok()) {
    absl::StatusOr<uint64_t> size_after = inner_->Size();
    absl::Status restored = size_after.status();
    if (size_after.ok() && *size_after > *size_before) restored = inner_->Truncate(*size_before);
    // A fragment that cannot be cut off is worse than the write error: report that one.
    if (!restored.ok()) {
      return absl::Status(restored.code(),
                          absl::StrCat("cutting off a failed write (", written.message(),
                                       "): ", restored.message()));
    }
    return written;
  }
  held_bytes_ = 0;
  return absl::OkStatus();
}

void BufferedFile::Release() {
  if (held_bytes_ == 0) std::string().swap(buffer_);
}

absl::Status BufferedFile::WriteAt(uint64_t offset, absl::string_view data) {
  if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
  return inner_->WriteAt(offset, data);
}

absl::StatusOr<uint64_t> BufferedFile::Append(absl::string_view data) {
  if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
  return inner_->Append(data);
}

absl::StatusOr<size_t> BufferedFile::ReadAt(uint64_t offset, absl::Span<char> buffer) {
  if (held_bytes_ == 0 || offset + buffer.size() <= held_offset_) {
    return inner_->ReadAt(offset, buffer);
  }
  size_t done = 0;
  if (offset < held_offset_) {
    const size_t below = static_cast<size_t>(held_offset_ - offset);
    absl::StatusOr<size_t> read = inner_->ReadAt(offset, buffer.first(below));
    if (!read.ok()) return read;
    // A file shorter than where the held bytes go reads as zeros there, as writing them will
    // make it.
    std::fill(buffer.begin() + static_cast<ptrdiff_t>(*read),
              buffer.begin() + static_cast<ptrdiff_t>(below), '\0');
    done = below;
  }
  if (offset + done < held_end()) {
    const size_t from_held = static_cast<size_t>(
        std::min<uint64_t>(buffer.size() - done, held_end() - (offset + done)));
    std::copy_n(buffer_.data() + (offset + done - held_offset_), from_held, buffer.data() + done);
    done += from_held;
  }
  if (done < buffer.size()) {
    // The file may hold older bytes past the held ones (the held ones replace what they cover).
    absl::StatusOr<size_t> read = inner_->ReadAt(offset + done, buffer.subspan(done));
    if (!read.ok()) return read;
    done += *read;
  }
  return done;
}

absl::StatusOr<uint64_t> BufferedFile::Size() const {
  absl::StatusOr<uint64_t> size = inner_->Size();
  if (!size.ok() || held_bytes_ == 0) return size;
  return std::max(*size, held_end());
}

absl::Status BufferedFile::Truncate(uint64_t size) {
  if (held_bytes_ > 0 && size <= held_offset_) {
    held_bytes_ = 0;
  } else if (held_bytes_ > 0 && size <= held_end()) {
    absl::StatusOr<uint64_t> file_size = inner_->Size();
    if (!file_size.ok()) return file_size.status();
    if (*file_size <= held_offset_) {
      // The cut falls among the held bytes and the file has nothing past them: cut in memory.
      held_bytes_ = static_cast<size_t>(size - held_offset_);
      return absl::OkStatus();
    }
    // Rare (older bytes past held_offset_): write out, then cut the file as asked.
    if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
  } else if (held_bytes_ > 0) {
    // Extending past the held bytes: they go first, then the file grows with zeros.
    if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
  }
  return inner_->Truncate(size);
}

void BufferedFile::Sync(SyncCallback done) {
  absl::Status flushed = Flush();
  if (!flushed.ok()) {
    // The sync must not claim the held bytes durable; its completion (on the event loop, as the
    // contract wants) reports the failed write instead.
    inner_->Sync([flushed, done = std::move(done)](const absl::Status&) mutable { done(flushed); });
    return;
  }
  inner_->Sync(std::move(done));
}

absl::StatusOr<size_t> ReadSegmentBytes(const Segment& segment, uint64_t position,
                                        absl::Span<char> buffer) {
  // What is readable: during recovery the index is still being built, so not size_bytes().
  const uint64_t readable = segment.physical_bytes + segment.pending.size();
  if (position >= readable) return 0;
  const size_t wanted = static_cast<size_t>(std::min<uint64_t>(buffer.size(), readable - position));
  size_t done = 0;
  while (done < wanted && position + done < segment.physical_bytes) {
    const size_t from_file = static_cast<size_t>(
        std::min<uint64_t>(wanted - done, segment.physical_bytes - (position + done)));
    absl::StatusOr<size_t> read =
        segment.file->ReadAt(position + done, buffer.subspan(done, from_file));
    if (!read.ok()) {
      return absl::Status(read.status().code(),
                          absl::StrCat("reading ", segment.log_path, " at byte ", position + done,
                                       ": ", read.status().message()));
    }
    if (*read == 0) {
      return absl::DataLossError(absl::StrCat(segment.log_path, " ends at byte ", position + done,
                                              ", before the ", segment.physical_bytes,
                                              " bytes the log holds in it"));
    }
    done += *read;
  }
  if (done < wanted) {
    const uint64_t pending_offset = position + done - segment.physical_bytes;
    const size_t from_pending = wanted - done;
    assert(pending_offset + from_pending <= segment.pending.size());
    std::copy_n(segment.pending.data() + pending_offset, from_pending, buffer.data() + done);
    done += from_pending;
  }
  return done;
}

BatchCursor::BatchCursor(const Segment& segment, const CursorOptions& options)
    : segment_(segment),
      options_(options),
      position_(options.start_position),
      min_base_offset_(options.min_base_offset),
      buffer_(options.scratch != nullptr ? options.scratch : &own_buffer_) {
  assert(options_.end_position <= segment.physical_bytes + segment.pending.size());
  assert(options_.start_position <= options_.end_position);
  options_.chunk_bytes =
      std::clamp(options_.chunk_bytes, kCursorChunkBytesMin, kCursorChunkBytesMax);
}

std::string BatchCursor::Check(uint64_t position, absl::string_view bytes, bool verify_crc,
                               BatchHeader* header) const {
  const uint64_t remaining = options_.end_position - position;
  if (remaining < kBatchHeaderBytes) {
    return absl::StrCat("an incomplete batch header (", remaining, " bytes) ends the segment");
  }
  absl::StatusOr<BatchHeader> parsed = ParseBatchHeader(bytes);
  if (!parsed.ok()) return std::string(parsed.status().message());
  if (parsed->magic != kBatchMagic) return absl::StrCat("magic ", int{parsed->magic});
  if (parsed->total_bytes() > remaining) {
    return absl::StrCat("a batch of ", parsed->total_bytes(), " bytes runs past the end (",
                        remaining, " bytes left)");
  }
  if (parsed->last_offset_delta < 0) {
    return absl::StrCat("lastOffsetDelta ", parsed->last_offset_delta);
  }
  if (first_ && options_.exact_first_base_offset.has_value() &&
      parsed->base_offset != *options_.exact_first_base_offset) {
    return absl::StrCat("base offset ", parsed->base_offset, " where the index says ",
                        *options_.exact_first_base_offset);
  }
  if (parsed->base_offset < min_base_offset_) {
    return absl::StrCat("base offset ", parsed->base_offset, " below ", min_base_offset_);
  }
  if (parsed->base_offset > std::numeric_limits<int64_t>::max() - parsed->last_offset_delta ||
      parsed->last_offset() >= options_.limit_offset ||
      parsed->last_offset() - segment_.base_offset() > kRelativeOffsetMax) {
    return absl::StrCat("batch [", parsed->base_offset, ", +", parsed->last_offset_delta,
                        "] ends outside the segment's offsets");
  }
  if (verify_crc) {
    if (bytes.size() < parsed->total_bytes()) return "batch not fully read";
    absl::Status valid = ValidateBatch(bytes.substr(0, parsed->total_bytes()),
                                       BatchValidationOptions{.check_records = false});
    if (!valid.ok()) return std::string(valid.message());
  }
  *header = *parsed;
  return "";
}

absl::Status BatchCursor::ReadFresh(uint64_t position, std::string* out) const {
  const uint64_t remaining = options_.end_position - position;
  out->assign(static_cast<size_t>(std::min<uint64_t>(remaining, kBatchHeaderBytes)), '\0');
  absl::StatusOr<size_t> read = ReadSegmentBytes(segment_, position, absl::MakeSpan(*out));
  if (!read.ok()) return read.status();
  out->resize(*read);
  if (out->size() < kBatchHeaderBytes) return absl::OkStatus();
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(*out);
  if (!header.ok() || header->total_bytes() > remaining) return absl::OkStatus();
  out->resize(header->total_bytes());
  read = ReadSegmentBytes(segment_, position + kBatchHeaderBytes,
                          absl::MakeSpan(*out).subspan(kBatchHeaderBytes));
  if (!read.ok()) return read.status();
  out->resize(kBatchHeaderBytes + *read);
  return absl::OkStatus();
}

absl::Status BatchCursor::Ensure(uint64_t position, size_t length) {
  assert(position + length <= options_.end_position);
  if (position >= buffer_position_ && position + length <= buffer_position_ + buffer_bytes_) {
    return absl::OkStatus();
  }
  const size_t size = static_cast<size_t>(std::min<uint64_t>(
      options_.end_position - position, std::max<uint64_t>(length, options_.chunk_bytes)));
  // The buffer only grows: a reused one is neither cleared nor zero-filled again.
  if (buffer_->size() < size) buffer_->resize(size);
  buffer_position_ = position;
  buffer_bytes_ = 0;
  absl::StatusOr<size_t> read =
      ReadSegmentBytes(segment_, position, absl::MakeSpan(buffer_->data(), size));
  if (!read.ok()) return read.status();
  buffer_bytes_ = *read;
  if (*read < length) {
    return absl::DataLossError(absl::StrCat(segment_.log_path, " is shorter than the log holds"));
  }
  return absl::OkStatus();
}

uint64_t BatchCursor::PeekBatchBytes() {
  if (options_.end_position - position_ < kBatchHeaderBytes) return 0;
  char header_bytes[kBatchHeaderBytes];
  const char* header = header_bytes;
  if (position_ >= buffer_position_ &&
      position_ + kBatchHeaderBytes <= buffer_position_ + buffer_bytes_) {
    header = buffer_->data() + (position_ - buffer_position_);
  } else {
    // Only the header: a reader that peeks often stops here, and a chunk read for it (as Next()
    // would do) could be a megabyte it never uses.
    absl::StatusOr<size_t> read =
        ReadSegmentBytes(segment_, position_, absl::MakeSpan(header_bytes, kBatchHeaderBytes));
    if (!read.ok() || *read < kBatchHeaderBytes) return 0;
  }
  const int32_t length = LoadBigEndian<int32_t>(header + kBatchLengthOffset);
  return length < 0 ? 0 : kBatchLogOverheadBytes + static_cast<uint64_t>(length);
}

absl::StatusOr<BatchCursor::Step> BatchCursor::Reread(uint64_t position, std::string first_bytes,
                                                      std::string reason, bool verify_crc) {
  std::string previous = std::move(first_bytes);
  for (int attempt = 1; attempt < kBatchReadAttemptsMax; ++attempt) {
    std::string fresh;
    if (absl::Status read = ReadFresh(position, &fresh); !read.ok()) return read;
    BatchHeader header;
    std::string fresh_reason = Check(position, fresh, verify_crc, &header);
    if (fresh_reason.empty()) {
      // The earlier read was corrupted on the way; this one is good.
      ++transient_failures_;
      buffer_bytes_ = 0;  // it may hold the corrupted copy
      reread_ = std::move(fresh);
      header_ = header;
      batch_position_ = position;
      batch_ = absl::string_view(reread_).substr(0, header.total_bytes());
      return Step::kBatch;
    }
    // Two fresh reads must agree: the first copy may come from a larger read, and one flipped
    // bit there and the same one in the next read is not unheard of in a long simulation.
    if (attempt > 1 && fresh == previous) {
      damage_position_ = position;
      damage_reason_ = std::move(fresh_reason);
      return Step::kDamage;
    }
    previous = std::move(fresh);
    reason = std::move(fresh_reason);
  }
  return absl::UnavailableError(absl::StrCat("reads of ", segment_.log_path, " at byte ", position,
                                             " keep returning different bytes (last: ", reason,
                                             ")"));
}

absl::StatusOr<BatchCursor::Step> BatchCursor::ReadCandidate() {
  const uint64_t position = position_;
  const uint64_t remaining = options_.end_position - position;
  std::string reason;
  BatchHeader header;
  absl::string_view bytes;
  bool whole_batch_read = false;
  if (remaining < kBatchHeaderBytes) {
    reason = Check(position, absl::string_view(), false, &header);
  } else {
    if (absl::Status ensured = Ensure(position, kBatchHeaderBytes); !ensured.ok()) return ensured;
    bytes = absl::string_view(buffer_->data(), buffer_bytes_)
                .substr(static_cast<size_t>(position - buffer_position_));
    reason = Check(position, bytes, false, &header);
    if (reason.empty()) {
      if (absl::Status ensured = Ensure(position, header.total_bytes()); !ensured.ok()) {
        return ensured;
      }
      bytes = absl::string_view(buffer_->data(), buffer_bytes_)
                  .substr(static_cast<size_t>(position - buffer_position_), header.total_bytes());
      // Every field a scan acts on (lastOffsetDelta, maxTimestamp, ...) is inside the CRC.
      reason = Check(position, bytes, true, &header);
      whole_batch_read = true;
    }
  }
  if (reason.empty()) {
    header_ = header;
    batch_position_ = position;
    batch_ = bytes;
    return Step::kBatch;
  }
  const size_t first_size = whole_batch_read
                                ? bytes.size()
                                : static_cast<size_t>(std::min<uint64_t>(
                                      {remaining, bytes.size(), uint64_t{kBatchHeaderBytes}}));
  return Reread(position, std::string(bytes.substr(0, first_size)), reason, true);
}

bool BatchCursor::Suspicious() const {
  // The batch's base offset and leader epoch lie outside its CRC. A batch that continues the one
  // before it exactly (next offset) in the epoch the log knows for it is consistent; any other is
  // confirmed by a read.
  if (options_.confirm_every_batch || first_ || header_.base_offset != min_base_offset_) {
    return true;
  }
  if (options_.leader_epochs != nullptr) {
    auto it = options_.leader_epochs->upper_bound(header_.base_offset);
    if (it != options_.leader_epochs->begin()) {
      return std::prev(it)->second != header_.partition_leader_epoch;
    }
  }
  return header_.partition_leader_epoch != last_epoch_;
}

absl::StatusOr<BatchCursor::Step> BatchCursor::Next() {
  if (position_ >= options_.end_position) return Step::kEnd;
  for (int attempt = 0; attempt < kBatchReadAttemptsMax; ++attempt) {
    absl::StatusOr<Step> step = ReadCandidate();
    if (!step.ok() || *step != Step::kBatch) return step;
    if (Suspicious()) {
      std::string prefix(kCrcUnprotectedBytes, '\0');
      absl::StatusOr<size_t> read =
          ReadSegmentBytes(segment_, batch_position_, absl::MakeSpan(prefix));
      if (!read.ok()) return read.status();
      if (*read != prefix.size() || batch_.substr(0, prefix.size()) != prefix) {
        // One of the two reads was corrupted on the way: start again from the disk.
        ++transient_failures_;
        buffer_bytes_ = 0;
        continue;
      }
    }
    first_ = false;
    last_epoch_ = header_.partition_leader_epoch;
    min_base_offset_ = header_.last_offset() + 1;
    position_ = batch_position_ + header_.total_bytes();
    return Step::kBatch;
  }
  return absl::UnavailableError(absl::StrCat("reads of ", segment_.log_path, " at byte ", position_,
                                             " keep returning different bytes"));
}

std::string MakeEmptyBatch(int64_t base_offset, int64_t last_offset) {
  assert(last_offset >= base_offset);
  assert(last_offset - base_offset <= kRelativeOffsetMax);
  std::string batch;
  batch.reserve(kBatchHeaderBytes);
  AppendBigEndian<int64_t>(batch, base_offset);
  AppendBigEndian<int32_t>(batch, static_cast<int32_t>(kBatchHeaderBytes - kBatchLogOverheadBytes));
  AppendBigEndian<int32_t>(batch, -1);  // partitionLeaderEpoch
  AppendBigEndian<int8_t>(batch, kBatchMagic);
  AppendBigEndian<uint32_t>(batch, 0);  // crc, below
  AppendBigEndian<int16_t>(batch, 0);   // attributes
  AppendBigEndian<int32_t>(batch, static_cast<int32_t>(last_offset - base_offset));
  AppendBigEndian<int64_t>(batch, -1);  // baseTimestamp
  AppendBigEndian<int64_t>(batch, -1);  // maxTimestamp
  AppendBigEndian<int64_t>(batch, -1);  // producerId
  AppendBigEndian<int16_t>(batch, -1);  // producerEpoch
  AppendBigEndian<int32_t>(batch, -1);  // baseSequence
  AppendBigEndian<int32_t>(batch, 0);   // recordCount
  assert(batch.size() == kBatchHeaderBytes);
  const uint32_t crc = ComputeBatchCrc(batch);
  std::string crc_bytes;
  AppendBigEndian<uint32_t>(crc_bytes, crc);
  batch.replace(kCrcOffset, crc_bytes.size(), crc_bytes);
  return batch;
}

std::string EncodeOffsetIndex(const std::vector<OffsetIndexEntry>& entries) {
  std::string out;
  out.reserve(entries.size() * kOffsetIndexEntryBytes);
  for (const OffsetIndexEntry& entry : entries) AppendOffsetIndexEntry(out, entry);
  return out;
}

std::string EncodeTimeIndex(const std::vector<TimeIndexEntry>& entries) {
  std::string out;
  out.reserve(entries.size() * kTimeIndexEntryBytes);
  for (const TimeIndexEntry& entry : entries) AppendTimeIndexEntry(out, entry);
  return out;
}

absl::StatusOr<std::string> ReadWholeFile(Disk& disk, absl::string_view path, uint64_t bytes_max) {
  absl::StatusOr<std::unique_ptr<File>> file = disk.Open(path, OpenMode::kExisting);
  if (!file.ok()) return file.status();
  absl::StatusOr<uint64_t> size = (*file)->Size();
  if (!size.ok()) return size.status();
  if (*size > bytes_max) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, " holds ", *size, " bytes, more than ", bytes_max));
  }
  std::string bytes(static_cast<size_t>(*size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    absl::StatusOr<size_t> read = (*file)->ReadAt(done, absl::MakeSpan(bytes).subspan(done));
    if (!read.ok()) return read.status();
    if (*read == 0) break;
    done += *read;
  }
  bytes.resize(done);
  return bytes;
}

absl::StatusOr<std::unique_ptr<File>> WriteFreshFile(Disk& disk, absl::string_view path,
                                                     absl::string_view bytes) {
  if (absl::Status removed = RemoveIfExists(disk, path); !removed.ok()) return removed;
  absl::StatusOr<std::unique_ptr<File>> file = disk.Open(path, OpenMode::kCreateExclusive);
  if (!file.ok()) return file.status();
  if (!bytes.empty()) {
    if (absl::Status written = (*file)->WriteAt(0, bytes); !written.ok()) {
      // No file rather than a short one: an empty or cut index file can still decode (as fewer
      // entries), and a later Open() would take it for the real thing. The removal is best effort:
      // the write error is what the caller needs to hear.
      RemoveIfExists(disk, path).IgnoreError();
      return written;
    }
  }
  return file;
}

absl::Status RemoveIfExists(Disk& disk, absl::string_view path) {
  absl::Status removed = disk.Remove(path);
  if (removed.ok() || absl::IsNotFound(removed)) return absl::OkStatus();
  return removed;
}

}  // namespace runnel::storage
