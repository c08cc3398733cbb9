#include "broker/storage/log_checkpoint.h"

#include <cassert>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/storage/crc32c.h"

namespace runnel::storage {
namespace {

constexpr uint32_t kCheckpointMagic = 0x524E4C43;     // "RNLC"
constexpr uint32_t kCleanShutdownMagic = 0x524E4C53;  // "RNLS"
constexpr uint16_t kVersion = 1;
constexpr size_t kPreambleBytes = 8;
constexpr size_t kCrcBytes = 4;

void AppendPreamble(std::string& out, uint32_t magic) {
  AppendBigEndian<uint32_t>(out, magic);
  AppendBigEndian<uint16_t>(out, kVersion);
  AppendBigEndian<uint16_t>(out, 0);
}

void AppendCrc(std::string& out) { AppendBigEndian<uint32_t>(out, Crc32c(out)); }

// Checks size, magic, version and CRC; `what` names the file in messages.
absl::Status CheckFraming(absl::string_view bytes, size_t size, uint32_t magic,
                          absl::string_view what) {
  if (bytes.size() != size) {
    return absl::DataLossError(absl::StrCat(what, " holds ", bytes.size(), " bytes, want ", size));
  }
  const uint32_t stored_crc = LoadBigEndian<uint32_t>(bytes.data() + size - kCrcBytes);
  if (Crc32c(bytes.substr(0, size - kCrcBytes)) != stored_crc) {
    return absl::DataLossError(absl::StrCat(what, " fails its checksum"));
  }
  if (LoadBigEndian<uint32_t>(bytes.data()) != magic) {
    return absl::DataLossError(absl::StrCat(what, " has a wrong magic number"));
  }
  if (LoadBigEndian<uint16_t>(bytes.data() + 4) != kVersion) {
    return absl::DataLossError(
        absl::StrCat(what, " has unknown version ", LoadBigEndian<uint16_t>(bytes.data() + 4)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeLogCheckpoint(const LogCheckpoint& checkpoint) {
  assert(checkpoint.leader_epochs.size() <= kLeaderEpochEntriesMax);
  std::string out;
  out.reserve(kLogCheckpointFixedBytes + checkpoint.leader_epochs.size() * kLeaderEpochEntryBytes);
  AppendPreamble(out, kCheckpointMagic);
  AppendBigEndian<int64_t>(out, checkpoint.log_start_offset);
  AppendBigEndian<int64_t>(out, checkpoint.recovery_point);
  AppendBigEndian<int64_t>(out, checkpoint.truncation_bound);
  AppendBigEndian<int64_t>(out, checkpoint.clean_offset);
  AppendBigEndian<uint32_t>(out, static_cast<uint32_t>(checkpoint.leader_epochs.size()));
  for (const LeaderEpochEntry& entry : checkpoint.leader_epochs) {
    AppendBigEndian<int64_t>(out, entry.start_offset);
    AppendBigEndian<int32_t>(out, entry.epoch);
  }
  AppendCrc(out);
  assert(out.size() ==
         kLogCheckpointFixedBytes + checkpoint.leader_epochs.size() * kLeaderEpochEntryBytes);
  return out;
}

absl::StatusOr<LogCheckpoint> DecodeLogCheckpoint(absl::string_view bytes) {
  const absl::string_view what = kRecoveryPointFileName;
  if (bytes.size() < kLogCheckpointFixedBytes || bytes.size() > kLogCheckpointBytesMax) {
    return absl::DataLossError(absl::StrCat(what, " holds ", bytes.size(), " bytes"));
  }
  const size_t count = LoadBigEndian<uint32_t>(bytes.data() + kLogCheckpointFixedBytes - 8);
  if (count > kLeaderEpochEntriesMax) {
    return absl::DataLossError(absl::StrCat(what, " holds ", count, " leader epochs"));
  }
  if (absl::Status framing = CheckFraming(
          bytes, kLogCheckpointFixedBytes + count * kLeaderEpochEntryBytes, kCheckpointMagic, what);
      !framing.ok()) {
    return framing;
  }
  const char* data = bytes.data() + kPreambleBytes;
  LogCheckpoint checkpoint;
  checkpoint.log_start_offset = LoadBigEndian<int64_t>(data);
  checkpoint.recovery_point = LoadBigEndian<int64_t>(data + 8);
  checkpoint.truncation_bound = LoadBigEndian<int64_t>(data + 16);
  checkpoint.clean_offset = LoadBigEndian<int64_t>(data + 24);
  if (checkpoint.log_start_offset < 0 || checkpoint.recovery_point < 0 ||
      checkpoint.truncation_bound < kNoOffset || checkpoint.clean_offset < kNoOffset) {
    return absl::DataLossError(absl::StrCat(what, " holds offsets out of range"));
  }
  const char* entries = bytes.data() + kLogCheckpointFixedBytes - 4;
  for (size_t i = 0; i < count; ++i) {
    LeaderEpochEntry entry{LoadBigEndian<int64_t>(entries + i * kLeaderEpochEntryBytes),
                           LoadBigEndian<int32_t>(entries + i * kLeaderEpochEntryBytes + 8)};
    if (entry.start_offset < 0 ||
        (!checkpoint.leader_epochs.empty() &&
         entry.start_offset <= checkpoint.leader_epochs.back().start_offset)) {
      return absl::DataLossError(absl::StrCat(what, " holds leader epochs out of order"));
    }
    checkpoint.leader_epochs.push_back(entry);
  }
  return checkpoint;
}

std::string EncodeCleanShutdown(const CleanShutdownRecord& record) {
  std::string out;
  out.reserve(kCleanShutdownBytes);
  AppendPreamble(out, kCleanShutdownMagic);
  AppendBigEndian<int64_t>(out, record.log_end_offset);
  AppendBigEndian<int64_t>(out, record.last_segment_base_offset);
  AppendBigEndian<uint64_t>(out, record.last_segment_bytes);
  AppendBigEndian<uint64_t>(out, record.segment_count);
  AppendCrc(out);
  assert(out.size() == kCleanShutdownBytes);
  return out;
}

absl::StatusOr<CleanShutdownRecord> DecodeCleanShutdown(absl::string_view bytes) {
  if (absl::Status framing =
          CheckFraming(bytes, kCleanShutdownBytes, kCleanShutdownMagic, kCleanShutdownFileName);
      !framing.ok()) {
    return framing;
  }
  const char* data = bytes.data() + kPreambleBytes;
  CleanShutdownRecord record;
  record.log_end_offset = LoadBigEndian<int64_t>(data);
  record.last_segment_base_offset = LoadBigEndian<int64_t>(data + 8);
  record.last_segment_bytes = LoadBigEndian<uint64_t>(data + 16);
  record.segment_count = LoadBigEndian<uint64_t>(data + 24);
  return record;
}

}  // namespace runnel::storage
