// The records of __consumer_offsets: the one home of their format. Each record of the internal
// topic carries a key and a value (record_batch.h); the log is compacted (cleanup.policy=compact),
// so for each key only the latest value survives, and a null value (a tombstone) deletes the key.
//
// All integers are big-endian. A string is an i32 length and that many bytes; a nullable string
// has length -1 for null. Every key and value starts with an i16 version; an unknown version, a
// length past the end, trailing bytes or a negative count is an error (kDataLoss), never a crash.
//
// Offset-commit record (one per group, topic and partition):
//   key:    i16 version = kOffsetCommitKeyVersion (1), string group, string topic, i32 partition
//   value:  i16 version = kOffsetCommitValueVersion (1), i64 offset, i32 leader_epoch (-1: none),
//           nullable string metadata, i64 commit_timestamp_ms, i64 expire_timestamp_ms (-1: none;
//           set only by an OffsetCommit v2-4 with an explicit retention time)
//   tombstone: the offset expired or was deleted.
// Group-metadata record (one per group):
//   key:    i16 version = kGroupMetadataKeyVersion (2), string group
//   value:  i16 version = kGroupMetadataValueVersion (1), string protocol_type, i32 generation,
//           nullable string protocol_name, nullable string leader, i64 state_timestamp_ms (when the
//           group entered its current state; the offsets retention of an Empty group counts from
//           it), i32 member count, then per member: string member_id, nullable string
//           group_instance_id, string client_id, string client_host, i32 session_timeout_ms,
//           i32 rebalance_timeout_ms, string subscription (the member's metadata for the group's
//           protocol), string assignment
//   tombstone: the group was deleted (it was Empty and its last offset expired).
// The key's version tells the two kinds apart, as Kafka's does.
#ifndef RUNNEL_BROKER_GROUP_OFFSETS_RECORDS_H_
#define RUNNEL_BROKER_GROUP_OFFSETS_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel::group {

inline constexpr int16_t kOffsetCommitKeyVersion = 1;
inline constexpr int16_t kGroupMetadataKeyVersion = 2;
inline constexpr int16_t kOffsetCommitValueVersion = 1;
inline constexpr int16_t kGroupMetadataValueVersion = 1;
// The most members a group-metadata value may list when decoded (a bound on damaged counts).
inline constexpr int32_t kRecordMembersMax = 100'000;

struct OffsetCommitKey {
  std::string group;
  std::string topic;
  int32_t partition = 0;
  friend bool operator==(const OffsetCommitKey&, const OffsetCommitKey&) = default;
};

struct OffsetCommitValue {
  int64_t offset = 0;
  int32_t leader_epoch = -1;
  std::optional<std::string> metadata;
  int64_t commit_timestamp_ms = 0;
  int64_t expire_timestamp_ms = -1;
  friend bool operator==(const OffsetCommitValue&, const OffsetCommitValue&) = default;
};

struct MemberRecord {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::string subscription;
  std::string assignment;
  friend bool operator==(const MemberRecord&, const MemberRecord&) = default;
};

struct GroupMetadataValue {
  std::string protocol_type;
  int32_t generation = 0;
  std::optional<std::string> protocol_name;
  std::optional<std::string> leader;
  int64_t state_timestamp_ms = 0;
  std::vector<MemberRecord> members;
  friend bool operator==(const GroupMetadataValue&, const GroupMetadataValue&) = default;
};

// A decoded key: exactly one of the two is set.
struct OffsetsRecordKey {
  std::optional<OffsetCommitKey> offset_commit;
  std::optional<std::string> group_metadata;  // the group id
};

std::string EncodeOffsetCommitKey(const OffsetCommitKey& key);
std::string EncodeOffsetCommitValue(const OffsetCommitValue& value);
std::string EncodeGroupMetadataKey(absl::string_view group);
std::string EncodeGroupMetadataValue(const GroupMetadataValue& value);

// kDataLoss naming what is wrong for bytes that are not a valid key or value of this format.
absl::StatusOr<OffsetsRecordKey> DecodeOffsetsRecordKey(absl::string_view bytes);
absl::StatusOr<OffsetCommitValue> DecodeOffsetCommitValue(absl::string_view bytes);
absl::StatusOr<GroupMetadataValue> DecodeGroupMetadataValue(absl::string_view bytes);

// The partition of __consumer_offsets that holds a group, as Kafka computes it:
// abs(Java's String.hashCode(group_id)) % partition_count, where abs maps INT_MIN to 0 (Kafka's
// Utils.abs). Java hashes UTF-16 code units; a group id is taken as UTF-8 and decoded to them
// (each byte that is not part of valid UTF-8 counts as U+FFFD, as Java's decoder replaces it).
// partition_count must be positive.
int32_t OffsetsPartitionFor(absl::string_view group_id, int32_t partition_count);

}  // namespace runnel::group

#endif  // RUNNEL_BROKER_GROUP_OFFSETS_RECORDS_H_
