#include "broker/client/assignors.h"

#include <algorithm>
#include <cassert>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/protocol/schema.h"

namespace runnel::client {

namespace {

// The wire shapes, walked by the protocol codec's visitors (broker/protocol/schema.h). The
// leading version is read and written separately, since it decides the version the rest is
// visited at.
struct WireTopicPartitions {
  std::string topic;
  std::vector<int32_t> partitions;
  static void Fields(auto& m, auto& v) {
    v.String("topic", m.topic);
    v.Array("partitions", m.partitions);
  }
};

struct WireSubscriptionBody {
  static constexpr absl::string_view kName = "ConsumerProtocolSubscription";
  std::vector<std::string> topics;
  std::optional<std::string> user_data;
  std::vector<WireTopicPartitions> owned_partitions;
  int32_t generation_id = -1;
  std::optional<std::string> rack_id;
  static void Fields(auto& m, auto& v) {
    v.Array("topics", m.topics);
    v.NullableBytes("user_data", m.user_data);
    v.Array("owned_partitions", m.owned_partitions, protocol::Since(1));
    v.Int32("generation_id", m.generation_id, protocol::Since(2));
    v.NullableString("rack_id", m.rack_id, protocol::Since(3));
  }
};

struct WireAssignmentBody {
  static constexpr absl::string_view kName = "ConsumerProtocolAssignment";
  std::vector<WireTopicPartitions> assigned_partitions;
  std::optional<std::string> user_data;
  static void Fields(auto& m, auto& v) {
    v.Array("assigned_partitions", m.assigned_partitions);
    v.NullableBytes("user_data", m.user_data);
  }
};

// Groups consecutive partitions of one topic into one wire entry.
std::vector<WireTopicPartitions> GroupByTopic(const std::vector<TopicPartition>& partitions) {
  std::vector<WireTopicPartitions> grouped;
  for (const TopicPartition& partition : partitions) {
    if (grouped.empty() || grouped.back().topic != partition.topic) {
      grouped.push_back({partition.topic, {}});
    }
    grouped.back().partitions.push_back(partition.partition);
  }
  return grouped;
}

std::vector<TopicPartition> Flatten(std::vector<WireTopicPartitions> grouped) {
  std::vector<TopicPartition> partitions;
  for (WireTopicPartitions& entry : grouped) {
    for (int32_t partition : entry.partitions) partitions.push_back({entry.topic, partition});
  }
  return partitions;
}

// Reads the leading version: kInvalidArgument when it is missing or negative.
absl::StatusOr<int16_t> ReadVersion(absl::string_view* bytes, absl::string_view what) {
  protocol::WireReader reader(*bytes);
  int16_t version = 0;
  if (!reader.ReadInt(&version)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", bytes->size(),
                                                   " bytes, too short for a version"));
  }
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": negative version ", version));
  }
  *bytes = reader.rest();
  return version;
}

// Kafka's member order: static members first, by instance id; then the others by member id.
bool MemberBefore(const AssignorMember* a, const AssignorMember* b) {
  if (a->group_instance_id.has_value() && b->group_instance_id.has_value()) {
    if (*a->group_instance_id != *b->group_instance_id) {
      return *a->group_instance_id < *b->group_instance_id;
    }
    return a->member_id < b->member_id;
  }
  if (a->group_instance_id.has_value() != b->group_instance_id.has_value()) {
    return a->group_instance_id.has_value();
  }
  return a->member_id < b->member_id;
}

// Checks the inputs both assignors share; returns the members in Kafka's order, each with its
// topics as a set, and starts `assignment` with an empty list per member.
absl::StatusOr<std::vector<std::pair<const AssignorMember*, std::set<std::string>>>> Prepare(
    const std::vector<AssignorMember>& members,
    const std::map<std::string, int32_t>& partition_counts, GroupAssignment* assignment) {
  if (members.size() > kAssignorMembersMax) {
    return absl::InvalidArgumentError(absl::StrCat("cannot assign to ", members.size(),
                                                   " members (kAssignorMembersMax is ",
                                                   kAssignorMembersMax, ")"));
  }
  size_t total = 0;
  for (const auto& [topic, count] : partition_counts) {
    if (count > kAssignorPartitionsPerTopicMax) {
      return absl::InvalidArgumentError(absl::StrCat("topic ", topic, " has ", count,
                                                     " partitions, more than ",
                                                     kAssignorPartitionsPerTopicMax));
    }
    if (count > 0) total += static_cast<size_t>(count);
  }
  if (total > kAssignorPartitionsTotalMax) {
    return absl::InvalidArgumentError(absl::StrCat("cannot assign ", total,
                                                   " partitions (kAssignorPartitionsTotalMax is ",
                                                   kAssignorPartitionsTotalMax, ")"));
  }
  std::vector<const AssignorMember*> ordered;
  for (const AssignorMember& member : members) {
    if (!assignment->emplace(member.member_id, std::vector<TopicPartition>{}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member id '", member.member_id, "' appears twice"));
    }
    ordered.push_back(&member);
  }
  std::sort(ordered.begin(), ordered.end(), MemberBefore);
  std::vector<std::pair<const AssignorMember*, std::set<std::string>>> result;
  for (const AssignorMember* member : ordered) {
    result.emplace_back(member, std::set<std::string>(member->topics.begin(), member->topics.end()));
  }
  return result;
}

void SortEach(GroupAssignment* assignment) {
  for (auto& [member_id, partitions] : *assignment) std::sort(partitions.begin(), partitions.end());
}

}  // namespace

absl::StatusOr<std::string> EncodeSubscription(const ConsumerSubscription& subscription) {
  if (subscription.version < 0 || subscription.version > kSubscriptionVersionMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write subscription version ", subscription.version));
  }
  WireSubscriptionBody body;
  body.topics = subscription.topics;
  body.user_data = subscription.user_data;
  body.owned_partitions = GroupByTopic(subscription.owned_partitions);
  body.generation_id = subscription.generation_id;
  body.rack_id = subscription.rack_id;
  std::string out;
  AppendBigEndian<int16_t>(out, subscription.version);
  if (absl::Status status = protocol::EncodeMessage(body, subscription.version, &out);
      !status.ok()) {
    return status;
  }
  return out;
}

absl::StatusOr<ConsumerSubscription> DecodeSubscription(absl::string_view bytes) {
  absl::StatusOr<int16_t> version = ReadVersion(&bytes, "subscription");
  if (!version.ok()) return version.status();
  WireSubscriptionBody body;
  size_t trailing_bytes = 0;
  if (absl::Status status = protocol::DecodeMessage(
          bytes, std::min<int16_t>(*version, kSubscriptionVersionMax), &body, &trailing_bytes);
      !status.ok()) {
    return status;
  }
  ConsumerSubscription subscription;
  subscription.version = *version;
  subscription.topics = std::move(body.topics);
  subscription.user_data = std::move(body.user_data);
  subscription.owned_partitions = Flatten(std::move(body.owned_partitions));
  subscription.generation_id = body.generation_id;
  subscription.rack_id = std::move(body.rack_id);
  return subscription;
}

absl::StatusOr<std::string> EncodeAssignment(const ConsumerAssignment& assignment) {
  if (assignment.version < 0 || assignment.version > kAssignmentVersionMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write assignment version ", assignment.version));
  }
  WireAssignmentBody body;
  body.assigned_partitions = GroupByTopic(assignment.partitions);
  body.user_data = assignment.user_data;
  std::string out;
  AppendBigEndian<int16_t>(out, assignment.version);
  if (absl::Status status = protocol::EncodeMessage(body, assignment.version, &out);
      !status.ok()) {
    return status;
  }
  return out;
}

absl::StatusOr<ConsumerAssignment> DecodeAssignment(absl::string_view bytes) {
  // The coordinator hands an empty assignment to a member the leader left out; that means no
  // partitions, as librdkafka reads it.
  if (bytes.empty()) return ConsumerAssignment{.version = 0, .partitions = {}, .user_data = {}};
  absl::StatusOr<int16_t> version = ReadVersion(&bytes, "assignment");
  if (!version.ok()) return version.status();
  WireAssignmentBody body;
  size_t trailing_bytes = 0;
  if (absl::Status status = protocol::DecodeMessage(
          bytes, std::min<int16_t>(*version, kAssignmentVersionMax), &body, &trailing_bytes);
      !status.ok()) {
    return status;
  }
  ConsumerAssignment assignment;
  assignment.version = *version;
  assignment.partitions = Flatten(std::move(body.assigned_partitions));
  assignment.user_data = std::move(body.user_data);
  return assignment;
}

absl::StatusOr<GroupAssignment> AssignRange(const std::vector<AssignorMember>& members,
                                            const std::map<std::string, int32_t>& partition_counts) {
  GroupAssignment assignment;
  auto ordered = Prepare(members, partition_counts, &assignment);
  if (!ordered.ok()) return ordered.status();
  for (const auto& [topic, count] : partition_counts) {
    if (count <= 0) continue;
    std::vector<const AssignorMember*> subscribed;
    for (const auto& [member, topics] : *ordered) {
      if (topics.contains(topic)) subscribed.push_back(member);
    }
    if (subscribed.empty()) continue;
    const int32_t member_count = static_cast<int32_t>(subscribed.size());
    const int32_t per_member = count / member_count;
    const int32_t with_extra = count % member_count;
    for (int32_t i = 0; i < member_count; ++i) {
      const int32_t start = per_member * i + std::min(i, with_extra);
      const int32_t length = per_member + (i < with_extra ? 1 : 0);
      std::vector<TopicPartition>& into = assignment[subscribed[i]->member_id];
      for (int32_t partition = start; partition < start + length; ++partition) {
        into.push_back({topic, partition});
      }
    }
  }
  SortEach(&assignment);
  return assignment;
}

absl::StatusOr<GroupAssignment> AssignRoundRobin(
    const std::vector<AssignorMember>& members,
    const std::map<std::string, int32_t>& partition_counts) {
  GroupAssignment assignment;
  auto ordered = Prepare(members, partition_counts, &assignment);
  if (!ordered.ok()) return ordered.status();
  if (ordered->empty()) return assignment;
  std::set<std::string> subscribed_topics;
  for (const auto& [member, topics] : *ordered) {
    subscribed_topics.insert(topics.begin(), topics.end());
  }
  size_t turn = 0;
  for (const std::string& topic : subscribed_topics) {
    auto count = partition_counts.find(topic);
    if (count == partition_counts.end() || count->second <= 0) continue;
    for (int32_t partition = 0; partition < count->second; ++partition) {
      // Some member subscribes to `topic` (it is in subscribed_topics), so this ends within one
      // lap.
      size_t skipped = 0;
      while (!(*ordered)[turn].second.contains(topic)) {
        turn = (turn + 1) % ordered->size();
        ++skipped;
        assert(skipped < ordered->size());
      }
      assignment[(*ordered)[turn].first->member_id].push_back({topic, partition});
      turn = (turn + 1) % ordered->size();
    }
  }
  SortEach(&assignment);
  return assignment;
}

absl::StatusOr<GroupAssignment> Assign(absl::string_view assignor,
                                       const std::vector<AssignorMember>& members,
                                       const std::map<std::string, int32_t>& partition_counts) {
  if (assignor == kRangeAssignorName) return AssignRange(members, partition_counts);
  if (assignor == kRoundRobinAssignorName) return AssignRoundRobin(members, partition_counts);
  return absl::InvalidArgumentError(absl::StrCat("unknown assignor '", assignor, "'"));
}

bool IsKnownAssignor(absl::string_view assignor) {
  return assignor == kRangeAssignorName || assignor == kRoundRobinAssignorName;
}

}  // namespace runnel::client
