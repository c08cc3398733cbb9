// The two small metadata files of a partition log (partition_log.h lists every file of a log): the
// one home of their formats.
//
// "recovery-point" (kLogCheckpointFixedBytes + 12 bytes per leader epoch, integers big-endian):
//   u32 magic 0x524E4C43 ("RNLC"), u16 version 2, u16 zero,
//   i64 log start offset      the offset below which the log has been deleted (retention,
//                             DeleteRecords); segments wholly below it are removed at Open()
//   i64 recovery point        every batch below it was validated and synced, so Open() scans only
//                             from the segment that holds it
//   i64 truncation bound      -1, or an offset at which an unfinished TruncateTo() cuts the log:
//                             Open() removes everything at or past it before anything else
//   i64 clean offset          -1, or the compaction horizon: compaction may have used records
//                             below it to remove older ones, so the log is never cut below it
//   i64 cleaned offset        -1, or the end of the last completed compaction round: every
//                             record below it went through completed rounds whose maps covered
//                             it, so each tombstone there is the only record of its key (the
//                             next round feeds its map from here, and may drop such a tombstone
//                             once it is older than delete.retention.ms); at most the clean offset
//   u32 leader epoch count    at most kLeaderEpochEntriesMax, then per entry, by start offset:
//     i64 start offset, i32 leader epoch: batches from this offset on (to the next entry's) carry
//     this partitionLeaderEpoch. A batch's leader epoch lies outside its CRC; reads check it
//     against these entries (Kafka keeps the same list in leader-epoch-checkpoint).
//   u32 CRC-32C of every byte before it.
// Version 1 files (the same without the cleaned offset, kLogCheckpointFixedBytesV1 fixed bytes) are
// read with a cleaned offset of -1; files are always written as version 2.
// It is replaced atomically: written whole to "recovery-point.tmp", synced, renamed over
// "recovery-point", and the directory synced. A file that fails its checks is damaged media, never
// a torn write.
//
// "clean-shutdown" (kCleanShutdownBytes): u32 magic 0x524E4C53 ("RNLS"), u16 version 1, u16 zero,
// i64 log end offset, i64 base offset of the last segment, u64 bytes of the last segment, u64
// number of segments, u32 CRC-32C of the 40 bytes before it. Close() writes it last, once
// everything else is durable; Open() trusts the index files only when it is intact and still
// describes the segments found (a marker whose removal a crash undid no longer matches a log that
// was appended to since), and removes it.
#ifndef RUNNEL_BROKER_STORAGE_LOG_CHECKPOINT_H_
#define RUNNEL_BROKER_STORAGE_LOG_CHECKPOINT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel::storage {

inline constexpr char kRecoveryPointFileName[] = "recovery-point";
inline constexpr char kRecoveryPointTempFileName[] = "recovery-point.tmp";
inline constexpr char kCleanShutdownFileName[] = "clean-shutdown";
// A scratch file holding a copy of what is appended while a truncation waits for its bound
// (partition_log_impl.h); never read, removed at Open().
inline constexpr char kPendingAppendsFileName[] = "pending-appends.tmp";

inline constexpr size_t kLogCheckpointFixedBytes = 56;
inline constexpr size_t kLogCheckpointFixedBytesV1 = 48;
inline constexpr size_t kLeaderEpochEntryBytes = 12;
// The most leader epochs a log remembers (the oldest are forgotten first).
inline constexpr size_t kLeaderEpochEntriesMax = 4096;
inline constexpr size_t kLogCheckpointBytesMax =
    kLogCheckpointFixedBytes + kLeaderEpochEntriesMax * kLeaderEpochEntryBytes;
inline constexpr size_t kCleanShutdownBytes = 44;
// No truncation bound / no compaction cursor.
inline constexpr int64_t kNoOffset = -1;

struct LeaderEpochEntry {
  int64_t start_offset = 0;
  int32_t epoch = 0;
  friend bool operator==(const LeaderEpochEntry&, const LeaderEpochEntry&) = default;
};

struct LogCheckpoint {
  int64_t log_start_offset = 0;
  int64_t recovery_point = 0;
  int64_t truncation_bound = kNoOffset;
  int64_t clean_offset = kNoOffset;
  int64_t cleaned_offset = kNoOffset;
  // By increasing start offset.
  std::vector<LeaderEpochEntry> leader_epochs;
  friend bool operator==(const LogCheckpoint&, const LogCheckpoint&) = default;
};

struct CleanShutdownRecord {
  int64_t log_end_offset = 0;
  int64_t last_segment_base_offset = 0;
  uint64_t last_segment_bytes = 0;
  uint64_t segment_count = 0;
  friend bool operator==(const CleanShutdownRecord&, const CleanShutdownRecord&) = default;
};

std::string EncodeLogCheckpoint(const LogCheckpoint& checkpoint);
// kDataLoss when the bytes are not a checkpoint (size, magic, version, CRC) or its offsets are out
// of range (negative start or recovery point, a bound below -1, a cleaned offset past the clean
// offset, epochs not by increasing offset).
absl::StatusOr<LogCheckpoint> DecodeLogCheckpoint(absl::string_view bytes);

std::string EncodeCleanShutdown(const CleanShutdownRecord& record);
// kDataLoss when the bytes are not a clean-shutdown record.
absl::StatusOr<CleanShutdownRecord> DecodeCleanShutdown(absl::string_view bytes);

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_LOG_CHECKPOINT_H_
