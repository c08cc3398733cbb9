// The group coordinator's settings (Kafka's broker configs of the same names) and its fixed bounds.
// broker_config.proto's `groups` message sets the settings; docs/groups.md describes them.
#ifndef RUNNEL_BROKER_GROUP_GROUP_SETTINGS_H_
#define RUNNEL_BROKER_GROUP_GROUP_SETTINGS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace runnel::group {

// The internal topic that holds committed offsets and group metadata.
inline constexpr char kOffsetsTopic[] = "__consumer_offsets";

// Whether clients may not write to or delete `topic`: Kafka's internal topics.
inline bool IsInternalTopic(std::string_view topic) { return topic == kOffsetsTopic; }

// The most groups one node coordinates; a JoinGroup or OffsetCommit that would create one more is
// refused with COORDINATOR_NOT_AVAILABLE (retriable: an expired group frees its place).
inline constexpr size_t kGroupsMax = 100'000;
// The longest group id, member id, group instance id, client id, protocol type or protocol name
// accepted (Kafka strings are at most 32767 bytes on the wire; these bound memory and records).
inline constexpr size_t kGroupIdBytesMax = 255;
inline constexpr size_t kNameBytesMax = 255;
// The most protocols one JoinGroup may offer.
inline constexpr size_t kProtocolsPerMemberMax = 16;
// The most bytes of one member's protocol metadata (subscription) or assignment. Larger ones are
// refused with INVALID_REQUEST, so that a group-metadata record stays far below the largest batch.
inline constexpr size_t kMemberMetadataBytesMax = 64 * 1024;
// The most bytes of all members' subscriptions and assignments of one group together.
inline constexpr size_t kGroupMetadataBytesMax = 4 * 1024 * 1024;
// The most partitions one OffsetCommit or OffsetFetch may name.
inline constexpr size_t kOffsetRequestPartitionsMax = 100'000;
// A new member (joined during the current rebalance) that stops rejoining is removed after this
// long, as Kafka's GroupCoordinator.NewMemberJoinTimeoutMs.
inline constexpr int64_t kNewMemberJoinTimeoutMs = 300'000;
// How often expired offsets are looked for (Kafka's offsets.retention.check.interval.ms).
inline constexpr int64_t kOffsetsRetentionCheckIntervalMs = 600'000;
// Bytes of the offsets log one load step reads; loading yields to the event loop between steps.
inline constexpr size_t kLoadStepBytesMax = 1 << 20;

struct GroupSettings {
  static constexpr int32_t kOffsetsTopicNumPartitionsDefault = 8;
  static constexpr int32_t kOffsetsTopicNumPartitionsMax = 1000;
  static constexpr int64_t kGroupInitialRebalanceDelayMsDefault = 3000;
  static constexpr int64_t kGroupMinSessionTimeoutMsDefault = 6000;
  static constexpr int64_t kGroupMaxSessionTimeoutMsDefault = 1'800'000;
  static constexpr int32_t kGroupMaxSizeDefault = 1000;
  // Bounds every member list held in memory and in one record, whatever the setting says.
  static constexpr int32_t kGroupMaxSizeLimit = 10'000;
  static constexpr int64_t kOffsetsRetentionMinutesDefault = 10080;
  static constexpr int32_t kOffsetMetadataMaxBytesDefault = 4096;
  static constexpr int32_t kOffsetMetadataMaxBytesLimit = 1 << 20;

  // offsets.topic.num.partitions: partitions of __consumer_offsets when the node creates it (an
  // existing topic keeps its count).
  int32_t offsets_topic_num_partitions = kOffsetsTopicNumPartitionsDefault;
  // group.initial.rebalance.delay.ms: how long the first rebalance of an Empty group waits for more
  // members, extended by this much each time one arrives, up to the rebalance timeout.
  int64_t group_initial_rebalance_delay_ms = kGroupInitialRebalanceDelayMsDefault;
  // group.min.session.timeout.ms / group.max.session.timeout.ms: the session timeouts a member may
  // ask for; others get INVALID_SESSION_TIMEOUT.
  int64_t group_min_session_timeout_ms = kGroupMinSessionTimeoutMsDefault;
  int64_t group_max_session_timeout_ms = kGroupMaxSessionTimeoutMsDefault;
  // group.max.size: members per group; a join beyond it gets GROUP_MAX_SIZE_REACHED.
  int32_t group_max_size = kGroupMaxSizeDefault;
  // offsets.retention.minutes: how long an Empty group's offsets are kept.
  int64_t offsets_retention_minutes = kOffsetsRetentionMinutesDefault;
  // offset.metadata.max.bytes: the longest metadata string of a commit (OFFSET_METADATA_TOO_LARGE).
  int32_t offset_metadata_max_bytes = kOffsetMetadataMaxBytesDefault;
};

}  // namespace runnel::group

#endif  // RUNNEL_BROKER_GROUP_GROUP_SETTINGS_H_
