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
// The clean-shutdown record's version, and the checkpoint's current and previous ones.
constexpr uint16_t kCleanShutdownVersion = 1;
constexpr uint16_t kCheckpointVersion = 2;
constexpr uint16_t kCheckpointVersionV1 = 1;
constexpr size_t kPreambleBytes = 8;
constexpr size_t kCrcBytes = 4;
// Where the checkpoint's u32 leader epoch count lies: after the preamble and five i64 offsets
// (four in version 1).
constexpr size_t kEpochCountPosition = kPreambleBytes + 5 * 8;
constexpr size_t kEpochCountPositionV1 = kPreambleBytes + 4 * 8;
constexpr size_t kEpochCountBytes = 4;
static_assert(kEpochCountPosition + kEpochCountBytes + kCrcBytes == kLogCheckpointFixedBytes);
static_assert(kEpochCountPositionV1 + kEpochCountBytes + kCrcBytes == kLogCheckpointFixedBytesV1);

// A metadata file whose payload is `body`: the preamble (magic, version, zero), the body, then the
// CRC-32C of everything before it. Both files are laid out this way (log_checkpoint.h).
std::string EncodeFramed(uint32_t magic, uint16_t version, absl::string_view body) {
  std::string out;
  out.reserve(kPreambleBytes + body.size() + kCrcBytes);
  AppendBigEndian<uint32_t>(out, magic);
  AppendBigEndian<uint16_t>(out, version);
  AppendBigEndian<uint16_t>(out, 0);
  out.append(body.data(), body.size());
  AppendBigEndian<uint32_t>(out, Crc32c(out));
  return out;
}

// The body of a file EncodeFramed() wrote, after checking its size, CRC, magic and version; `what`
// names the file in messages.
absl::StatusOr<absl::string_view> DecodeFramed(absl::string_view bytes, size_t size, uint32_t magic,
                                               uint16_t version, absl::string_view what) {
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
  if (LoadBigEndian<uint16_t>(bytes.data() + 4) != version) {
    return absl::DataLossError(
        absl::StrCat(what, " has unknown version ", LoadBigEndian<uint16_t>(bytes.data() + 4)));
  }
  return bytes.substr(kPreambleBytes, size - kPreambleBytes - kCrcBytes);
}

}  // namespace

std::string EncodeLogCheckpoint(const LogCheckpoint& checkpoint) {
  assert(checkpoint.leader_epochs.size() <= kLeaderEpochEntriesMax);
  std::string body;
  body.reserve(kLogCheckpointFixedBytes + checkpoint.leader_epochs.size() * kLeaderEpochEntryBytes);
  AppendBigEndian<int64_t>(body, checkpoint.log_start_offset);
  AppendBigEndian<int64_t>(body, checkpoint.recovery_point);
  AppendBigEndian<int64_t>(body, checkpoint.truncation_bound);
  AppendBigEndian<int64_t>(body, checkpoint.clean_offset);
  AppendBigEndian<int64_t>(body, checkpoint.cleaned_offset);
  AppendBigEndian<uint32_t>(body, static_cast<uint32_t>(checkpoint.leader_epochs.size()));
  for (const LeaderEpochEntry& entry : checkpoint.leader_epochs) {
    AppendBigEndian<int64_t>(body, entry.start_offset);
    AppendBigEndian<int32_t>(body, entry.epoch);
  }
  std::string out = EncodeFramed(kCheckpointMagic, kCheckpointVersion, body);
  assert(out.size() ==
         kLogCheckpointFixedBytes + checkpoint.leader_epochs.size() * kLeaderEpochEntryBytes);
  return out;
}

absl::StatusOr<LogCheckpoint> DecodeLogCheckpoint(absl::string_view bytes) {
  const absl::string_view what = kRecoveryPointFileName;
  if (bytes.size() < kLogCheckpointFixedBytesV1 || bytes.size() > kLogCheckpointBytesMax) {
    return absl::DataLossError(absl::StrCat(what, " holds ", bytes.size(), " bytes"));
  }
  // The version decides the layout; DecodeFramed checks it against the CRC-protected bytes.
  const bool v1 = LoadBigEndian<uint16_t>(bytes.data() + 4) == kCheckpointVersionV1;
  const size_t fixed_bytes = v1 ? kLogCheckpointFixedBytesV1 : kLogCheckpointFixedBytes;
  const size_t epoch_count_position = v1 ? kEpochCountPositionV1 : kEpochCountPosition;
  if (bytes.size() < fixed_bytes) {
    return absl::DataLossError(absl::StrCat(what, " holds ", bytes.size(), " bytes"));
  }
  const size_t count = LoadBigEndian<uint32_t>(bytes.data() + epoch_count_position);
  if (count > kLeaderEpochEntriesMax) {
    return absl::DataLossError(absl::StrCat(what, " holds ", count, " leader epochs"));
  }
  absl::StatusOr<absl::string_view> body =
      DecodeFramed(bytes, fixed_bytes + count * kLeaderEpochEntryBytes, kCheckpointMagic,
                   v1 ? kCheckpointVersionV1 : kCheckpointVersion, what);
  if (!body.ok()) return body.status();
  const char* data = body->data();
  LogCheckpoint checkpoint;
  checkpoint.log_start_offset = LoadBigEndian<int64_t>(data);
  checkpoint.recovery_point = LoadBigEndian<int64_t>(data + 8);
  checkpoint.truncation_bound = LoadBigEndian<int64_t>(data + 16);
  checkpoint.clean_offset = LoadBigEndian<int64_t>(data + 24);
  checkpoint.cleaned_offset = v1 ? kNoOffset : LoadBigEndian<int64_t>(data + 32);
  if (checkpoint.log_start_offset < 0 || checkpoint.recovery_point < 0 ||
      checkpoint.truncation_bound < kNoOffset || checkpoint.clean_offset < kNoOffset ||
      checkpoint.cleaned_offset < kNoOffset || checkpoint.cleaned_offset > checkpoint.clean_offset) {
    return absl::DataLossError(absl::StrCat(what, " holds offsets out of range"));
  }
  const char* entries = bytes.data() + epoch_count_position + kEpochCountBytes;
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
  std::string body;
  body.reserve(kCleanShutdownBytes);
  AppendBigEndian<int64_t>(body, record.log_end_offset);
  AppendBigEndian<int64_t>(body, record.last_segment_base_offset);
  AppendBigEndian<uint64_t>(body, record.last_segment_bytes);
  AppendBigEndian<uint64_t>(body, record.segment_count);
  std::string out = EncodeFramed(kCleanShutdownMagic, kCleanShutdownVersion, body);
  assert(out.size() == kCleanShutdownBytes);
  return out;
}

absl::StatusOr<CleanShutdownRecord> DecodeCleanShutdown(absl::string_view bytes) {
  absl::StatusOr<absl::string_view> body =
      DecodeFramed(bytes, kCleanShutdownBytes, kCleanShutdownMagic, kCleanShutdownVersion,
                   kCleanShutdownFileName);
  if (!body.ok()) return body.status();
  const char* data = body->data();
  CleanShutdownRecord record;
  record.log_end_offset = LoadBigEndian<int64_t>(data);
  record.last_segment_base_offset = LoadBigEndian<int64_t>(data + 8);
  record.last_segment_bytes = LoadBigEndian<uint64_t>(data + 16);
  record.segment_count = LoadBigEndian<uint64_t>(data + 24);
  return record;
}

}  // namespace runnel::storage
