// The consumer protocol (protocol type "consumer") that group members speak inside JoinGroup and
// SyncGroup, and Kafka's "range" and "roundrobin" partition assignors.
//
// The coordinator treats a member's protocol metadata and its assignment as opaque bytes; the
// members agree on their meaning. These encodings are Kafka's own (the Java client's
// ConsumerProtocol, also spoken by librdkafka, kafka-python and kafkajs), so a group may mix our
// members with other clients and any of them may lead:
//
//   Subscription (JoinGroup protocol metadata), big-endian, non-flexible:
//     version              int16   (0 to 3 are known; we write kSubscriptionVersionWritten)
//     topics               [string]
//     user_data            nullable bytes (int32 length, -1 for null)
//     owned_partitions     [topic string, partitions [int32]]        version 1 and later
//     generation_id        int32 (-1: unknown)                       version 2 and later
//     rack_id              nullable string                           version 3 and later
//
//   Assignment (SyncGroup assignment), big-endian, non-flexible, the same at versions 0 to 3:
//     version              int16   (we write kAssignmentVersionWritten)
//     assigned_partitions  [topic string, partitions [int32]]
//     user_data            nullable bytes
//
// Decoding is total and bounded: any input gives a value or kInvalidArgument, never a crash, and
// nothing is allocated beyond what the input's length justifies. A version newer than the newest
// known one is read as the newest known one, ignoring what follows (Kafka's rule: later versions
// only append fields). A negative version, a truncated field or a negative length is an error.
// Bytes after the last known field are ignored, as Kafka's decoders do.
//
// Assignors (Kafka's semantics; member order is Kafka's too: static members first, ordered by
// group_instance_id, then the others ordered by member id):
// - range: per topic, the members subscribed to it in that order; the partitions 0..n-1 are cut
//   into contiguous ranges, n / m each, and the first n % m members get one more.
// - roundrobin: every partition of every subscribed topic, ordered by topic name then partition,
//   dealt in turn to the members in that order, skipping members not subscribed to the
//   partition's topic (the turn goes on from the member that got the partition).
// Every member appears in the result, with an empty list if it gets nothing. Topics whose
// partition count is unknown (absent from `partition_counts`) or not positive are not assigned.
#ifndef RUNNEL_BROKER_CLIENT_ASSIGNORS_H_
#define RUNNEL_BROKER_CLIENT_ASSIGNORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/client/client_options.h"

namespace runnel::client {

inline constexpr absl::string_view kConsumerProtocolType = "consumer";
inline constexpr absl::string_view kRangeAssignorName = "range";
inline constexpr absl::string_view kRoundRobinAssignorName = "roundrobin";

// The newest versions this code knows, and the ones it writes: subscription v1 (owned partitions;
// what Kafka 2.4-2.8 clients write) and assignment v1.
inline constexpr int16_t kSubscriptionVersionMax = 3;
inline constexpr int16_t kSubscriptionVersionWritten = 1;
inline constexpr int16_t kAssignmentVersionMax = 3;
inline constexpr int16_t kAssignmentVersionWritten = 1;

// Bounds on what the assignors accept (kInvalidArgument beyond them).
inline constexpr size_t kAssignorMembersMax = 10'000;
inline constexpr int32_t kAssignorPartitionsPerTopicMax = 1'000'000;
inline constexpr size_t kAssignorPartitionsTotalMax = 1'000'000;

struct ConsumerSubscription {
  // The version it was read at, or is to be written at (0 to kSubscriptionVersionMax).
  int16_t version = kSubscriptionVersionWritten;
  std::vector<std::string> topics;
  std::optional<std::string> user_data;
  // Versions 1 and later.
  std::vector<TopicPartition> owned_partitions;
  // Versions 2 and later.
  int32_t generation_id = -1;
  // Versions 3 and later.
  std::optional<std::string> rack_id;

  friend bool operator==(const ConsumerSubscription&, const ConsumerSubscription&) = default;
};

struct ConsumerAssignment {
  int16_t version = kAssignmentVersionWritten;
  // On the wire grouped by topic, in the order given here (consecutive partitions of one topic
  // share an entry); decoding gives them in wire order.
  std::vector<TopicPartition> partitions;
  std::optional<std::string> user_data;

  friend bool operator==(const ConsumerAssignment&, const ConsumerAssignment&) = default;
};

// kInvalidArgument for a version outside 0..kSubscriptionVersionMax or a field the wire cannot
// carry (a string longer than 32767 bytes).
absl::StatusOr<std::string> EncodeSubscription(const ConsumerSubscription& subscription);
absl::StatusOr<ConsumerSubscription> DecodeSubscription(absl::string_view bytes);
absl::StatusOr<std::string> EncodeAssignment(const ConsumerAssignment& assignment);
absl::StatusOr<ConsumerAssignment> DecodeAssignment(absl::string_view bytes);

// One member as an assignor sees it.
struct AssignorMember {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::vector<std::string> topics;
};

// member id -> its partitions, sorted (topic, then partition).
using GroupAssignment = std::map<std::string, std::vector<TopicPartition>>;

// kInvalidArgument for duplicate member ids, more than kAssignorMembersMax members, a partition
// count above kAssignorPartitionsPerTopicMax or more than kAssignorPartitionsTotalMax partitions
// in all.
absl::StatusOr<GroupAssignment> AssignRange(const std::vector<AssignorMember>& members,
                                            const std::map<std::string, int32_t>& partition_counts);
absl::StatusOr<GroupAssignment> AssignRoundRobin(
    const std::vector<AssignorMember>& members,
    const std::map<std::string, int32_t>& partition_counts);
// By name; kInvalidArgument for an unknown one.
absl::StatusOr<GroupAssignment> Assign(absl::string_view assignor,
                                       const std::vector<AssignorMember>& members,
                                       const std::map<std::string, int32_t>& partition_counts);
bool IsKnownAssignor(absl::string_view assignor);

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_ASSIGNORS_H_
