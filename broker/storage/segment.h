// One segment of a partition log in memory (its file, its SegmentIndex and its durability
// bookkeeping), the file names of a segment, and BatchCursor, the one reader of a segment's
// batches: every scan (recovery, index rebuild, reads, compaction) goes through it, so every scan
// checks the same things and treats a suspicious read the same way.
//
// Reading policy: the simulated disk (and real hardware) may flip bits on the way from the medium
// without damaging what is stored, so a batch that fails a check is read again, straight from the
// disk, before it counts as damaged. A failure counts as damage only when two fresh reads in a row
// return the same bytes; a batch that passes on a re-read is used as re-read. The CRC does not
// cover a batch's base offset and leader epoch: a batch that does not continue the one before it
// exactly (next offset, same epoch), and the first batch of every scan, has those bytes read a
// second time and compared, so a flipped bit there is neither served nor adopted into an index.
#ifndef RUNNEL_BROKER_STORAGE_SEGMENT_H_
#define RUNNEL_BROKER_STORAGE_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "broker/env/disk.h"
#include "broker/storage/log_index.h"
#include "broker/storage/partition_log.h"
#include "broker/storage/record_batch.h"

namespace runnel::storage {

inline constexpr size_t kSegmentNameDigits = 20;
inline constexpr char kLogSuffix[] = ".log";
inline constexpr char kOffsetIndexSuffix[] = ".index";
inline constexpr char kTimeIndexSuffix[] = ".timeindex";
inline constexpr char kCleanedSuffix[] = ".log.cleaned";

// Reads of one batch region, first read included, before giving up on getting two equal reads.
inline constexpr int kBatchReadAttemptsMax = 6;
// The header bytes outside the CRC: baseOffset, batchLength, partitionLeaderEpoch, magic, crc.
inline constexpr size_t kCrcUnprotectedBytes = kAttributesOffset;
inline constexpr size_t kBaseOffsetBytes = 8;
inline constexpr size_t kEpochBytes = 4;
// The most bytes a cursor asks for in one read beyond the batch it needs.
inline constexpr size_t kCursorChunkBytesMax = size_t{8} << 20;
inline constexpr size_t kCursorChunkBytesMin = size_t{64} << 10;

// The first allocation of a write buffer; it grows by doubling up to kWriteBufferBytesMax, so that
// a partition that receives little never holds a large buffer.
inline constexpr size_t kWriteBufferBytesMin = size_t{64} << 10;

// "00000000000000000042" for 42.
std::string SegmentStem(int64_t base_offset);
// The base offset of a file name "<20 digits><suffix>", or nullopt if it is not one.
std::optional<int64_t> ParseSegmentFileName(absl::string_view name, absl::string_view suffix);

// A segment file that can hold appended bytes in memory and write them out in large pieces: one
// write(2) of up to a buffer's worth instead of one per batch, which is most of what appending
// small batches costs. The bytes it holds are part of the file's contents for every caller: ReadAt
// returns them, Size() counts them, Truncate() cuts them, and Sync() writes them out before it
// syncs, so that a completed Sync() covers them as the Disk contract says. WriteAt() and Append()
// write through (after writing what is held, so that bytes reach the file in order).
//
// Held bytes are volatile like any unsynced write, only more so: a crash of the process, and not
// only of the machine, loses them. The destructor drops them without writing: destroying the
// handle is a crash as far as they are concerned. Only the partition log's append path holds bytes
// (PartitionLog::Impl, which bounds for how long, when the log's write_buffer_bytes asks for it).
class BufferedFile final : public File {
 public:
  explicit BufferedFile(std::shared_ptr<File> inner) : inner_(std::move(inner)) {}

  // Adds `data`, the file's contents from `offset` on, to what is held. The held bytes always lie
  // inside one window of `capacity_bytes` (up to kWriteBufferBytesMax) that starts at a multiple
  // of it in the file, and are written out each time they reach the window's end, so that the file
  // is written in whole aligned windows: the page cache gives such writes large folios, and on
  // bench/log_bench.cc's machine that made 64 KiB batches a third cheaper to append than writing
  // out whatever whole batches fit. Batches are split across windows for it. What is held already
  // is written out first when `data` does not continue it. On error, as with a failed WriteAt, a
  // prefix of `data` may already be part of the contents (held or written): Truncate(offset) cuts
  // it off again.
  absl::Status Hold(uint64_t offset, absl::string_view data, size_t capacity_bytes);
  // Writes what is held to the file. On error the bytes stay held and the file is cut back to its
  // size before the write (a write that got partway must not leave a fragment).
  absl::Status Flush();
  // Frees the buffer's memory when nothing is held (a quiet partition should not keep it).
  void Release();
  size_t held_bytes() const { return held_bytes_; }

  absl::Status WriteAt(uint64_t offset, absl::string_view data) override;
  absl::StatusOr<uint64_t> Append(absl::string_view data) override;
  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> buffer) override;
  absl::StatusOr<uint64_t> Size() const override;
  absl::Status Truncate(uint64_t size) override;
  void Sync(SyncCallback done) override;
  // Passed on: the range's held bytes, not in the file yet, have nothing to start.
  void StartWriteback(uint64_t offset, uint64_t length) override {
    inner_->StartWriteback(offset, length);
  }
  const std::string& path() const override { return inner_->path(); }

 private:
  uint64_t held_end() const { return held_offset_ + held_bytes_; }

  std::shared_ptr<File> inner_;
  // The first held_bytes_ bytes of buffer_ are the file's contents at [held_offset_, held_end()).
  std::string buffer_;
  size_t held_bytes_ = 0;
  uint64_t held_offset_ = 0;
};

struct Segment {
  Segment(int64_t base, const std::string& directory);

  int64_t base_offset() const { return index.base_offset(); }
  // Logical size: the file's first physical_bytes, then `pending`.
  uint64_t size_bytes() const { return index.size_bytes(); }
  bool empty() const { return index.size_bytes() == 0; }

  const std::string log_path;
  const std::string index_path;
  const std::string time_index_path;
  const std::string cleaned_path;

  std::shared_ptr<File> file;
  // Set once appends to this segment went through a write buffer: then `file` is this same object
  // (unless something replaced `file` since, which only happens to sealed segments, whose buffers
  // are empty).
  std::shared_ptr<BufferedFile> write_buffer;
  // The write buffer when `file` still goes through it, else nullptr.
  BufferedFile* write_buffer_in_use() const {
    return write_buffer != nullptr && file == write_buffer ? write_buffer.get() : nullptr;
  }
  // The segment's contents as the log sees them; size_bytes() == physical_bytes + pending.size().
  SegmentIndex index;
  // Bytes at the start of the file that belong to the contents. The file may hold more (old bytes
  // a pending truncation has not cut yet).
  uint64_t physical_bytes = 0;
  // Bytes at the start of the file that the log asked to start on their way to the device
  // (File::StartWriteback; see kWritebackStrideBytes).
  uint64_t writeback_started_bytes = 0;
  // Bytes appended while a truncation waits for its bound to be durable (see PartitionLog::Impl);
  // they are logically at [physical_bytes, size_bytes()) and written to the file once it is cut.
  std::string pending;
  // Rolled: no appends until a truncation makes it the active segment again.
  bool sealed = false;
  // Monotonic time of creation (or of Open), for segment.ms.
  int64_t created_us = 0;

  // Durability of the file: every write or truncation increments change_seq; a completed Sync()
  // sets synced_seq to the change_seq it was called at.
  uint64_t change_seq = 0;
  uint64_t synced_seq = 0;
  // No contents of the file past this many bytes may be durable from before (the largest size any
  // Sync() was called at, or the size found at Open()). Truncating at or past it cannot bring
  // older bytes back after a crash.
  uint64_t durable_bytes_max = 0;
  // The cleaner is replacing the file: its index files must not be written meanwhile (they are
  // removed before the rename and written again after it).
  bool replacing = false;
  // Whether the index files on disk were written from `index` as it is now, and made durable.
  bool index_files_written = false;
  bool index_files_durable = false;
};

// Reads bytes [position, position + buffer.size()) of a segment's contents (the file's first
// physical_bytes, then `pending`); fewer only at their end.
absl::StatusOr<size_t> ReadSegmentBytes(const Segment& segment, uint64_t position,
                                        absl::Span<char> buffer);

struct CursorOptions {
  uint64_t start_position = 0;
  // The logical end of what is read (at most the segment's size).
  uint64_t end_position = 0;
  // Every batch's base offset is at least this, and at least the end of the batch before it.
  int64_t min_base_offset = 0;
  // Every batch ends below this (the next segment's base offset).
  int64_t limit_offset = std::numeric_limits<int64_t>::max();
  // The base offset the first batch must have, when an index entry says so.
  std::optional<int64_t> exact_first_base_offset;
  // How much to read at once.
  size_t chunk_bytes = kCursorChunkBytesMin;
  // The leader epochs the log knows, start offset -> epoch (null if none): a batch whose epoch
  // differs from the one its offset falls in has its header confirmed by a second read.
  const std::map<int64_t, int32_t>* leader_epochs = nullptr;
  // Confirm the header bytes outside the CRC of every batch by a second read (recovery scans,
  // which teach the log its leader epochs).
  bool confirm_every_batch = false;
  // A buffer to read into, kept by the caller across cursors (null: the cursor's own).
  std::string* scratch = nullptr;
};

// Walks the batches of one segment region, checking each one's framing (header, magic, size within
// the region, offsets in range and increasing) and its CRC.
class BatchCursor {
 public:
  enum class Step { kBatch, kEnd, kDamage };

  BatchCursor(const Segment& segment, const CursorOptions& options);

  // The size the next batch's header claims (unchecked; 0 if none can be read): lets a reader stop
  // before reading a batch it would not return.
  uint64_t PeekBatchBytes();
  // The next batch, with its framing and CRC checked. A read error is returned as a status
  // (kUnavailable); damage (confirmed by re-reading) as kDamage, with damage_position() and
  // damage_reason().
  absl::StatusOr<Step> Next();

  // The current batch (after kBatch).
  uint64_t position() const { return batch_position_; }
  const BatchHeader& header() const { return header_; }
  absl::string_view bytes() const { return batch_; }

  // Where the next batch would start.
  uint64_t next_position() const { return position_; }
  uint64_t damage_position() const { return damage_position_; }
  const std::string& damage_reason() const { return damage_reason_; }
  // Checks that failed on a read and passed on a re-read (transient corruption) since the last
  // call.
  uint64_t TakeTransientFailures() { return std::exchange(transient_failures_, 0); }

 private:
  // Checks `bytes` (read at `position`; at most what the region holds from there) as a batch.
  // Sets header_ and returns "" when it is one, else the reason.
  std::string Check(uint64_t position, absl::string_view bytes, bool verify_crc,
                    BatchHeader* header) const;
  // Reads the batch at `position` straight from the disk into `out` (header first, then as many
  // bytes as its header says, within the region).
  absl::Status ReadFresh(uint64_t position, std::string* out) const;
  // Makes [position, position + length) available in buffer_.
  absl::Status Ensure(uint64_t position, size_t length);
  // The batch at position_, framing checked (re-read if needed), not yet accepted.
  absl::StatusOr<Step> ReadCandidate();
  // Whether the candidate's fields outside the CRC need a second read to be trusted.
  bool Suspicious() const;
  // The re-read protocol after `reason` failed on `first_bytes`: kBatch with batch_ set from a
  // good read, or kDamage.
  absl::StatusOr<Step> Reread(uint64_t position, std::string first_bytes, std::string reason,
                              bool verify_crc);

  const Segment& segment_;
  CursorOptions options_;
  uint64_t position_;
  int64_t min_base_offset_;
  bool first_ = true;
  int32_t last_epoch_ = 0;

  std::string own_buffer_;
  // The read buffer (own_buffer_ or the caller's scratch): buffer_bytes_ bytes read at
  // buffer_position_.
  std::string* buffer_;
  uint64_t buffer_position_ = 0;
  size_t buffer_bytes_ = 0;

  uint64_t batch_position_ = 0;
  BatchHeader header_;
  absl::string_view batch_;
  // Holds batch_ when it came from a re-read.
  std::string reread_;

  uint64_t damage_position_ = 0;
  std::string damage_reason_;
  uint64_t transient_failures_ = 0;
};

// A batch without records covering offsets [base_offset, last_offset], with a valid CRC: what the
// log writes where a truncation leaves a gap (compaction removed every record before the cut).
std::string MakeEmptyBatch(int64_t base_offset, int64_t last_offset);

// Index files: whole-file encodings of a SegmentIndex's entries (formats in log_index.h).
std::string EncodeOffsetIndex(const std::vector<OffsetIndexEntry>& entries);
std::string EncodeTimeIndex(const std::vector<TimeIndexEntry>& entries);

// Reads a whole small file; kNotFound if missing, kResourceExhausted if larger than `bytes_max`.
absl::StatusOr<std::string> ReadWholeFile(Disk& disk, absl::string_view path, uint64_t bytes_max);
// Creates `path` afresh (a new file, never rewriting the old one in place, so that a crash leaves
// the old file or the new one but never a mix of their sectors) holding `bytes`. Returns the open
// file, for syncing. When the write fails, the new file is removed again (best effort), so that no
// short copy is left behind to be taken for the whole one.
absl::StatusOr<std::unique_ptr<File>> WriteFreshFile(Disk& disk, absl::string_view path,
                                                     absl::string_view bytes);
// Removes `path`; a missing file is not an error.
absl::Status RemoveIfExists(Disk& disk, absl::string_view path);

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_SEGMENT_H_
