// Sparse segment indexes: the one home of the formats of "<base>.index" and "<base>.timeindex"
// (partition_log.h lists the files of a log), and SegmentIndex, the in-memory index of one segment
// that the partition log builds on append, rebuilds from a segment's batches, and searches.
//
// Formats (integers big-endian, entries back to back, no header or trailer):
//   .index      8 bytes per entry: u32 (batch base offset - segment base), u32 byte position of
//               that batch in the segment. Both strictly increase from entry to entry.
//   .timeindex  12 bytes per entry: i64 the largest maxTimestamp of the segment's batches up to and
//               including the batch at u32 (offset - segment base). The timestamp strictly
//               increases from entry to entry, the offset never decreases.
//
// The rule that adds entries is the same on append and on rebuild, so a rebuilt index equals the
// one written on append: before a batch is counted, if at least index_interval_bytes were added
// since the last offset-index entry (or since the segment's start), the batch gets an offset-index
// entry, and also a time-index entry when the running max timestamp (this batch's included) is
// above the last time-index entry's. When a segment is sealed (rolled, or closed cleanly), one more
// time-index entry records its max timestamp at its last batch if that grew since the last entry.
//
// Consequences the log relies on:
// - A lookup by offset starts at most index_interval_bytes plus one batch before the batch it
//   wants, so it reads a bounded number of bytes after a binary search.
// - After the last offset-index entry, no batch but that entry's own reaches the interval again:
//   a complete index leaves a tail shorter than one interval (checked when an index is trusted).
// - Each time-index entry is the max of every batch at or before its offset, so every batch before
//   the last entry whose timestamp is below T can be skipped when looking for T.
#ifndef RUNNEL_BROKER_STORAGE_LOG_INDEX_H_
#define RUNNEL_BROKER_STORAGE_LOG_INDEX_H_

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "broker/common/big_endian.h"
#include "broker/storage/record_batch.h"

namespace runnel::storage {

inline constexpr size_t kOffsetIndexEntryBytes = 8;
inline constexpr size_t kTimeIndexEntryBytes = 12;
// The most entries one segment's index may hold; a segment whose index is full is rolled. 2^20
// entries cover 4 GiB at the default interval; they take 8 MiB (offsets) and 16 MiB (times).
inline constexpr size_t kIndexEntriesPerSegmentMax = size_t{1} << 20;
// Offsets within a segment are stored as u32 deltas; a segment is rolled before one would not fit.
inline constexpr int64_t kRelativeOffsetMax = std::numeric_limits<int32_t>::max();
// No timestamp yet (an empty segment).
inline constexpr int64_t kNoTimestamp = std::numeric_limits<int64_t>::min();

struct OffsetIndexEntry {
  uint32_t relative_offset = 0;
  uint32_t position = 0;
  friend bool operator==(const OffsetIndexEntry&, const OffsetIndexEntry&) = default;
};

struct TimeIndexEntry {
  int64_t timestamp_ms = 0;
  uint32_t relative_offset = 0;
  friend bool operator==(const TimeIndexEntry&, const TimeIndexEntry&) = default;
};

inline void AppendOffsetIndexEntry(std::string& out, const OffsetIndexEntry& entry) {
  AppendBigEndian<uint32_t>(out, entry.relative_offset);
  AppendBigEndian<uint32_t>(out, entry.position);
}

inline void AppendTimeIndexEntry(std::string& out, const TimeIndexEntry& entry) {
  AppendBigEndian<int64_t>(out, entry.timestamp_ms);
  AppendBigEndian<uint32_t>(out, entry.relative_offset);
}

// Decodes a whole .index file. kDataLoss when its size is not a whole number of entries, when
// entries do not strictly increase, or when there are more than kIndexEntriesPerSegmentMax.
inline absl::StatusOr<std::vector<OffsetIndexEntry>> DecodeOffsetIndex(absl::string_view bytes) {
  if (bytes.size() % kOffsetIndexEntryBytes != 0) {
    return absl::DataLossError(
        absl::StrCat("offset index of ", bytes.size(), " bytes is not whole entries"));
  }
  const size_t count = bytes.size() / kOffsetIndexEntryBytes;
  if (count > kIndexEntriesPerSegmentMax) {
    return absl::DataLossError(absl::StrCat("offset index has ", count, " entries"));
  }
  std::vector<OffsetIndexEntry> entries;
  entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const char* data = bytes.data() + i * kOffsetIndexEntryBytes;
    OffsetIndexEntry entry{LoadBigEndian<uint32_t>(data), LoadBigEndian<uint32_t>(data + 4)};
    if (!entries.empty() && (entry.relative_offset <= entries.back().relative_offset ||
                             entry.position <= entries.back().position)) {
      return absl::DataLossError(absl::StrCat("offset index entry ", i, " does not increase"));
    }
    if (entry.relative_offset > kRelativeOffsetMax) {
      return absl::DataLossError(absl::StrCat("offset index entry ", i, " is out of range"));
    }
    entries.push_back(entry);
  }
  return entries;
}

// Decodes a whole .timeindex file, with the same checks.
inline absl::StatusOr<std::vector<TimeIndexEntry>> DecodeTimeIndex(absl::string_view bytes) {
  if (bytes.size() % kTimeIndexEntryBytes != 0) {
    return absl::DataLossError(
        absl::StrCat("time index of ", bytes.size(), " bytes is not whole entries"));
  }
  const size_t count = bytes.size() / kTimeIndexEntryBytes;
  if (count > kIndexEntriesPerSegmentMax) {
    return absl::DataLossError(absl::StrCat("time index has ", count, " entries"));
  }
  std::vector<TimeIndexEntry> entries;
  entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const char* data = bytes.data() + i * kTimeIndexEntryBytes;
    TimeIndexEntry entry{LoadBigEndian<int64_t>(data), LoadBigEndian<uint32_t>(data + 8)};
    if (!entries.empty() && (entry.timestamp_ms <= entries.back().timestamp_ms ||
                             entry.relative_offset < entries.back().relative_offset)) {
      return absl::DataLossError(absl::StrCat("time index entry ", i, " does not increase"));
    }
    if (entry.relative_offset > kRelativeOffsetMax) {
      return absl::DataLossError(absl::StrCat("time index entry ", i, " is out of range"));
    }
    entries.push_back(entry);
  }
  return entries;
}

// Where a scan for an offset starts: a byte position and the lowest base offset the batch there
// may have. `exact` says that the batch there is known (from an index entry) to start exactly at
// base_offset.
struct ScanStart {
  uint64_t position = 0;
  int64_t base_offset = 0;
  bool exact = false;
};

// The in-memory index of one segment, and the segment facts that come with indexing it: its end
// offset, max timestamp, last batch and byte count.
class SegmentIndex {
 public:
  explicit SegmentIndex(int64_t base_offset) : base_offset_(base_offset) {}

  // Counts one batch that starts at `position` (== size_bytes() on append) and indexes it by the
  // rule above. The batch must lie in the segment's offset range and after every earlier batch.
  void AddBatch(const BatchHeader& header, uint64_t position, uint32_t interval_bytes) {
    assert(header.base_offset >= base_offset_);
    assert(header.base_offset >= end_offset_);
    assert(header.last_offset() >= header.base_offset);
    assert(header.last_offset() - base_offset_ <= kRelativeOffsetMax);
    assert(position == size_bytes_);
    const uint32_t relative = static_cast<uint32_t>(header.base_offset - base_offset_);
    max_timestamp_ = std::max(max_timestamp_, header.max_timestamp);
    if (resume_position_.has_value() && *resume_position_ == position) {
      // Replaying the batch of the last kept entry after a trim (see TrimTo): it is indexed
      // already.
      resume_position_.reset();
      bytes_since_entry_ = 0;
    } else if (bytes_since_entry_ >= interval_bytes) {
      assert(position <= std::numeric_limits<uint32_t>::max());
      offset_entries_.push_back(OffsetIndexEntry{relative, static_cast<uint32_t>(position)});
      if (time_entries_.empty() || max_timestamp_ > time_entries_.back().timestamp_ms) {
        time_entries_.push_back(TimeIndexEntry{max_timestamp_, relative});
      }
      bytes_since_entry_ = 0;
    }
    recent_[recent_next_] = RecentBatch{header.base_offset, position};
    recent_next_ = (recent_next_ + 1) % kRecentBatches;
    recent_count_ = std::min(recent_count_ + 1, kRecentBatches);
    bytes_since_entry_ += header.total_bytes();
    size_bytes_ = position + header.total_bytes();
    end_offset_ = header.last_offset() + 1;
    last_batch_base_offset_ = header.base_offset;
    ++batch_count_;
  }

  // Records the max timestamp at the last batch, as sealing a segment does.
  void Seal() {
    if (batch_count_ == 0) return;
    if (!time_entries_.empty() && max_timestamp_ <= time_entries_.back().timestamp_ms) return;
    time_entries_.push_back(TimeIndexEntry{
        max_timestamp_, static_cast<uint32_t>(last_batch_base_offset_ - base_offset_)});
  }

  // Whether the index has room for another batch's entries and a seal.
  bool full() const {
    return offset_entries_.size() + 1 >= kIndexEntriesPerSegmentMax ||
           time_entries_.size() + 2 >= kIndexEntriesPerSegmentMax;
  }

  // Where to start reading for `offset`: the last entry at or before it, else the segment start.
  ScanStart Lookup(int64_t offset) const {
    if (offset <= base_offset_ || offset_entries_.empty()) return ScanStart{0, base_offset_, false};
    const int64_t relative = std::min<int64_t>(offset - base_offset_, kRelativeOffsetMax);
    auto it = std::upper_bound(offset_entries_.begin(), offset_entries_.end(),
                               static_cast<uint32_t>(relative),
                               [](uint32_t value, const OffsetIndexEntry& entry) {
                                 return value < entry.relative_offset;
                               });
    if (it == offset_entries_.begin()) return ScanStart{0, base_offset_, false};
    --it;
    return ScanStart{it->position, base_offset_ + it->relative_offset, true};
  }

  // Lookup for a read, which also knows where each of the last kRecentBatches batches starts: a
  // consumer at the end of the log asks for offsets there, and then starts at its batch (exact)
  // rather than scanning up to an interval of batches from the last index entry.
  ScanStart LookupForRead(int64_t offset) const {
    if (recent_count_ > 0 && offset < end_offset_) {
      for (size_t i = 1; i <= recent_count_; ++i) {
        const RecentBatch& batch = recent_[(recent_next_ + kRecentBatches - i) % kRecentBatches];
        if (batch.base_offset <= offset) return ScanStart{batch.position, batch.base_offset, true};
      }
    }
    return Lookup(offset);
  }

  // The offset of the last time-index entry whose timestamp is below `timestamp_ms`: every batch up
  // to and including the one there has a max timestamp below it. nullopt when there is none.
  std::optional<int64_t> LastOffsetBelow(int64_t timestamp_ms) const {
    auto it = std::lower_bound(
        time_entries_.begin(), time_entries_.end(), timestamp_ms,
        [](const TimeIndexEntry& entry, int64_t value) { return entry.timestamp_ms < value; });
    if (it == time_entries_.begin()) return std::nullopt;
    --it;
    return base_offset_ + it->relative_offset;
  }

  // Drops every entry at or past `offset` and forgets the batches after the last kept offset
  // entry. Returns the position from which the caller must replay (AddBatch) the segment's batches
  // up to the new end to restore the counts; the first one replayed is the kept entry's own.
  uint64_t TrimTo(int64_t offset) {
    assert(offset >= base_offset_);
    const int64_t relative = offset - base_offset_;
    while (!offset_entries_.empty() && offset_entries_.back().relative_offset >= relative) {
      offset_entries_.pop_back();
    }
    while (!time_entries_.empty() && time_entries_.back().relative_offset >= relative) {
      time_entries_.pop_back();
    }
    max_timestamp_ = time_entries_.empty() ? kNoTimestamp : time_entries_.back().timestamp_ms;
    bytes_since_entry_ = 0;
    batch_count_ = 0;
    recent_count_ = 0;
    if (offset_entries_.empty()) {
      resume_position_.reset();
      size_bytes_ = 0;
      end_offset_ = base_offset_;
      last_batch_base_offset_ = base_offset_;
      return 0;
    }
    const OffsetIndexEntry& last = offset_entries_.back();
    resume_position_ = last.position;
    size_bytes_ = last.position;
    end_offset_ = base_offset_ + last.relative_offset;
    last_batch_base_offset_ = end_offset_;
    return last.position;
  }

  // Adopts entries read from the index files (already checked to increase). The caller then
  // replays (AddBatch) the segment's batches from the last offset entry's position (the first one
  // replayed is that entry's own) to the segment's end, which restores the counts and the tail.
  void Adopt(std::vector<OffsetIndexEntry> offset_entries,
             std::vector<TimeIndexEntry> time_entries) {
    offset_entries_ = std::move(offset_entries);
    time_entries_ = std::move(time_entries);
    max_timestamp_ = time_entries_.empty() ? kNoTimestamp : time_entries_.back().timestamp_ms;
    resume_position_.reset();
    recent_count_ = 0;
    if (!offset_entries_.empty()) {
      resume_position_ = offset_entries_.back().position;
      size_bytes_ = offset_entries_.back().position;
      end_offset_ = base_offset_ + offset_entries_.back().relative_offset;
    } else {
      size_bytes_ = 0;
      end_offset_ = base_offset_;
    }
    last_batch_base_offset_ = end_offset_;
    bytes_since_entry_ = 0;
    batch_count_ = 0;
  }

  int64_t base_offset() const { return base_offset_; }
  // One past the last offset of the last batch; the base offset when empty.
  int64_t end_offset() const { return end_offset_; }
  int64_t max_timestamp() const { return max_timestamp_; }
  uint64_t size_bytes() const { return size_bytes_; }
  int64_t last_batch_base_offset() const { return last_batch_base_offset_; }
  uint64_t bytes_since_entry() const { return bytes_since_entry_; }
  bool replay_pending() const { return resume_position_.has_value(); }
  const std::vector<OffsetIndexEntry>& offset_entries() const { return offset_entries_; }
  const std::vector<TimeIndexEntry>& time_entries() const { return time_entries_; }

 private:
  // How many of the last batches LookupForRead knows exactly (memory only, never written).
  static constexpr size_t kRecentBatches = 32;
  struct RecentBatch {
    int64_t base_offset = 0;
    uint64_t position = 0;
  };

  int64_t base_offset_;
  std::vector<OffsetIndexEntry> offset_entries_;
  std::vector<TimeIndexEntry> time_entries_;
  int64_t max_timestamp_ = kNoTimestamp;
  uint64_t bytes_since_entry_ = 0;
  uint64_t size_bytes_ = 0;
  int64_t end_offset_ = base_offset_;
  int64_t last_batch_base_offset_ = base_offset_;
  // Batches counted since construction, a trim or an adoption (only whether it is zero matters).
  uint64_t batch_count_ = 0;
  // Set by TrimTo/Adopt: the position of the last kept entry's batch, whose replay must not index
  // it a second time.
  std::optional<uint64_t> resume_position_;
  // The last recent_count_ batches counted (since construction, a trim or an adoption), oldest
  // first from recent_next_ - recent_count_ around the ring.
  std::array<RecentBatch, kRecentBatches> recent_{};
  size_t recent_next_ = 0;
  size_t recent_count_ = 0;
};

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_LOG_INDEX_H_
