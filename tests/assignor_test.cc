// The consumer protocol's subscription and assignment encodings (broker/client/assignors.h) and
// Kafka's range and roundrobin assignors: hand-built byte vectors as Kafka's clients put them on
// the wire, the examples from Kafka's documentation of the assignors, decoding of bad bytes, and
// properties over random groups (rapidcheck).
#include <rapidcheck.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "broker/client/assignors.h"
#include "gtest/gtest.h"

namespace runnel::client {
namespace {

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int value : values) out.push_back(static_cast<char>(value));
  return out;
}

// "foo" as a wire string: int16 length, then the bytes.
std::string Str(const std::string& text) {
  std::string out;
  out.push_back(static_cast<char>(text.size() >> 8));
  out.push_back(static_cast<char>(text.size() & 0xff));
  return out + text;
}

std::string Int32(int32_t value) {
  const uint32_t bits = static_cast<uint32_t>(value);
  return Bytes({static_cast<int>(bits >> 24), static_cast<int>((bits >> 16) & 0xff),
                static_cast<int>((bits >> 8) & 0xff), static_cast<int>(bits & 0xff)});
}

const std::string kNullBytes = Int32(-1);

// rapidcheck's own Maybe does not convert to std::optional.
std::optional<std::string> MaybeString() {
  if (*rc::gen::arbitrary<bool>()) return std::nullopt;
  return *rc::gen::arbitrary<std::string>();
}

// --- Encodings ---

// A version 0 subscription is the version, the topic array and null user data; version 1 adds
// the owned partitions grouped by topic; version 3 the generation and the rack. Encoding gives
// exactly these bytes and decoding them gives the value back.
TEST(ConsumerProtocolTest, SubscriptionBytesMatchKafka) {
  const std::string v0 = Bytes({0, 0}) + Int32(2) + Str("bar") + Str("foo") + kNullBytes;
  ConsumerSubscription subscription;
  subscription.version = 0;
  subscription.topics = {"bar", "foo"};
  EXPECT_EQ(EncodeSubscription(subscription).value(), v0);
  EXPECT_EQ(DecodeSubscription(v0).value(), subscription);

  const std::string v1 = Bytes({0, 1}) + Int32(1) + Str("foo") + Int32(3) + Bytes({0xca, 0xfe, 0x00}) +
                         Int32(2) + Str("bar") + Int32(1) + Int32(4) + Str("foo") + Int32(2) +
                         Int32(0) + Int32(2);
  subscription.version = 1;
  subscription.topics = {"foo"};
  subscription.user_data = Bytes({0xca, 0xfe, 0x00});
  subscription.owned_partitions = {{"bar", 4}, {"foo", 0}, {"foo", 2}};
  EXPECT_EQ(EncodeSubscription(subscription).value(), v1);
  EXPECT_EQ(DecodeSubscription(v1).value(), subscription);

  const std::string v3 = Bytes({0, 3}) + Int32(1) + Str("foo") + kNullBytes + Int32(0) +
                         Int32(7) + Str("rack-a");
  ConsumerSubscription newest;
  newest.version = 3;
  newest.topics = {"foo"};
  newest.generation_id = 7;
  newest.rack_id = "rack-a";
  EXPECT_EQ(EncodeSubscription(newest).value(), v3);
  EXPECT_EQ(DecodeSubscription(v3).value(), newest);

  // What we write by default: version 1, no user data, no owned partitions.
  ConsumerSubscription ours;
  ours.topics = {"t"};
  EXPECT_EQ(EncodeSubscription(ours).value(),
            Bytes({0, 1}) + Int32(1) + Str("t") + kNullBytes + Int32(0));
}

TEST(ConsumerProtocolTest, AssignmentBytesMatchKafka) {
  const std::string v1 = Bytes({0, 1}) + Int32(2) + Str("bar") + Int32(1) + Int32(3) + Str("foo") +
                         Int32(2) + Int32(0) + Int32(1) + kNullBytes;
  ConsumerAssignment assignment;
  assignment.partitions = {{"bar", 3}, {"foo", 0}, {"foo", 1}};
  EXPECT_EQ(EncodeAssignment(assignment).value(), v1);
  EXPECT_EQ(DecodeAssignment(v1).value(), assignment);

  // Version 0 with user data, as an old client's leader sends it.
  const std::string v0 = Bytes({0, 0}) + Int32(1) + Str("foo") + Int32(1) + Int32(5) + Int32(2) +
                         Bytes({'h', 'i'});
  ConsumerAssignment decoded = DecodeAssignment(v0).value();
  EXPECT_EQ(decoded.version, 0);
  EXPECT_EQ(decoded.partitions, (std::vector<TopicPartition>{{"foo", 5}}));
  EXPECT_EQ(decoded.user_data, "hi");

  // An empty assignment (the coordinator's answer to a member the leader left out) is no
  // partitions.
  EXPECT_TRUE(DecodeAssignment("").value().partitions.empty());
}

// A version beyond the newest known is read as the newest known, ignoring what follows (Kafka's
// forward-compatibility rule); so are trailing bytes after a known version's last field.
TEST(ConsumerProtocolTest, NewerVersionsAndTrailingBytesAreTolerated) {
  const std::string v9 = Bytes({0, 9}) + Int32(1) + Str("foo") + kNullBytes + Int32(0) + Int32(-1) +
                         Bytes({0xff, 0xff}) + Bytes({1, 2, 3, 4, 5});
  absl::StatusOr<ConsumerSubscription> subscription = DecodeSubscription(v9);
  ASSERT_TRUE(subscription.ok()) << subscription.status();
  EXPECT_EQ(subscription->version, 9);
  EXPECT_EQ(subscription->topics, std::vector<std::string>{"foo"});
  EXPECT_EQ(subscription->rack_id, std::nullopt);

  const std::string v0_trailing = Bytes({0, 0}) + Int32(0) + kNullBytes + Bytes({9, 9, 9});
  EXPECT_TRUE(DecodeSubscription(v0_trailing).ok());
  const std::string assignment_v7 = Bytes({0, 7}) + Int32(0) + kNullBytes + Bytes({1});
  EXPECT_TRUE(DecodeAssignment(assignment_v7).ok());
}

// Bad bytes give kInvalidArgument: every truncation of a valid encoding, a negative version, a
// negative string length, an array count larger than the bytes could hold (without allocating
// for it), and a null topic name.
TEST(ConsumerProtocolTest, BadBytesGiveErrors) {
  ConsumerSubscription subscription;
  subscription.topics = {"orders", "payments"};
  subscription.owned_partitions = {{"orders", 1}};
  const std::string good = EncodeSubscription(subscription).value();
  for (size_t length = 0; length < good.size(); ++length) {
    absl::StatusOr<ConsumerSubscription> decoded = DecodeSubscription(good.substr(0, length));
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << length;
  }
  ConsumerAssignment assignment;
  assignment.partitions = {{"orders", 1}, {"orders", 2}};
  const std::string good_assignment = EncodeAssignment(assignment).value();
  for (size_t length = 1; length < good_assignment.size(); ++length) {
    EXPECT_EQ(DecodeAssignment(good_assignment.substr(0, length)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << length;
  }
  EXPECT_EQ(DecodeSubscription(Bytes({0xff, 0xfe}) + Int32(0) + kNullBytes).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(DecodeAssignment(Bytes({0x80, 0x00}) + Int32(0) + kNullBytes).ok());
  EXPECT_FALSE(DecodeSubscription(Bytes({0, 0}) + Int32(1) + Bytes({0xff, 0xf0}) + kNullBytes).ok());
  EXPECT_FALSE(DecodeSubscription(Bytes({0, 0}) + Int32(0x7fffffff) + Str("a")).ok());
  EXPECT_FALSE(DecodeAssignment(Bytes({0, 1}) + Int32(1) + Str("t") + Int32(0x40000000)).ok());
  EXPECT_FALSE(DecodeSubscription(Bytes({0, 0}) + Int32(1) + Bytes({0xff, 0xff}) + kNullBytes).ok());
  EXPECT_FALSE(DecodeSubscription(Bytes({0, 0}) + Int32(-2) + kNullBytes).ok());

  ConsumerSubscription bad_version;
  bad_version.version = 4;
  EXPECT_EQ(EncodeSubscription(bad_version).status().code(), absl::StatusCode::kInvalidArgument);
  ConsumerSubscription too_long;
  too_long.topics = {std::string(40'000, 'x')};
  EXPECT_EQ(EncodeSubscription(too_long).status().code(), absl::StatusCode::kInvalidArgument);
}

// Decoding arbitrary bytes never crashes and either succeeds or says kInvalidArgument; whatever
// decodes re-encodes (at a known version) to bytes that decode to the same value.
TEST(ConsumerProtocolTest, DecodingIsTotal) {
  const bool passed = rc::check("decoding arbitrary bytes is total", [] {
    const std::string bytes = *rc::gen::arbitrary<std::string>();
    absl::StatusOr<ConsumerSubscription> subscription = DecodeSubscription(bytes);
    if (!subscription.ok()) {
      RC_ASSERT(subscription.status().code() == absl::StatusCode::kInvalidArgument);
    } else {
      ConsumerSubscription known = *subscription;
      known.version = std::min<int16_t>(known.version, kSubscriptionVersionMax);
      absl::StatusOr<std::string> again = EncodeSubscription(known);
      RC_ASSERT(again.ok());
      RC_ASSERT(DecodeSubscription(*again).value() == known);
    }
    absl::StatusOr<ConsumerAssignment> assignment = DecodeAssignment(bytes);
    if (!assignment.ok()) {
      RC_ASSERT(assignment.status().code() == absl::StatusCode::kInvalidArgument);
    }
  });
  EXPECT_TRUE(passed);
}

TEST(ConsumerProtocolTest, RandomValuesRoundTrip) {
  const bool passed = rc::check("subscriptions and assignments round trip", [] {
    ConsumerSubscription subscription;
    subscription.version = *rc::gen::inRange<int16_t>(0, kSubscriptionVersionMax + 1);
    subscription.topics = *rc::gen::container<std::vector<std::string>>(
        rc::gen::container<std::string>(rc::gen::inRange<char>('a', 'e')));
    subscription.user_data = MaybeString();
    if (subscription.version >= 1) {
      const auto owned = *rc::gen::container<std::vector<std::pair<std::string, int32_t>>>(
          rc::gen::pair(rc::gen::container<std::string>(rc::gen::inRange<char>('a', 'e')),
                        rc::gen::inRange<int32_t>(0, 100)));
      for (const auto& [topic, partition] : owned) {
        subscription.owned_partitions.push_back({topic, partition});
      }
    }
    if (subscription.version >= 2) subscription.generation_id = *rc::gen::arbitrary<int32_t>();
    if (subscription.version >= 3) {
      subscription.rack_id = MaybeString();
    }
    absl::StatusOr<std::string> bytes = EncodeSubscription(subscription);
    RC_ASSERT(bytes.ok());
    RC_ASSERT(DecodeSubscription(*bytes).value() == subscription);

    ConsumerAssignment assignment;
    assignment.version = *rc::gen::inRange<int16_t>(0, kAssignmentVersionMax + 1);
    for (const std::string& topic : subscription.topics) {
      assignment.partitions.push_back({topic, *rc::gen::inRange<int32_t>(0, 50)});
    }
    assignment.user_data = MaybeString();
    absl::StatusOr<std::string> assignment_bytes = EncodeAssignment(assignment);
    RC_ASSERT(assignment_bytes.ok());
    RC_ASSERT(DecodeAssignment(*assignment_bytes).value() == assignment);
  });
  EXPECT_TRUE(passed);
}

// --- Assignors: the examples of Kafka's documentation ---

std::vector<TopicPartition> Parts(std::initializer_list<std::pair<const char*, int32_t>> list) {
  std::vector<TopicPartition> partitions;
  for (const auto& [topic, partition] : list) partitions.push_back({topic, partition});
  return partitions;
}

// RangeAssignor's documented example: C0 and C1 subscribe to t0 and t1 of 3 partitions each;
// C0 gets [t0p0, t0p1, t1p0, t1p1] and C1 [t0p2, t1p2].
TEST(AssignorTest, RangeDocumentationExample) {
  std::vector<AssignorMember> members = {{"C0", std::nullopt, {"t0", "t1"}},
                                         {"C1", std::nullopt, {"t0", "t1"}}};
  GroupAssignment assignment = AssignRange(members, {{"t0", 3}, {"t1", 3}}).value();
  EXPECT_EQ(assignment["C0"], Parts({{"t0", 0}, {"t0", 1}, {"t1", 0}, {"t1", 1}}));
  EXPECT_EQ(assignment["C1"], Parts({{"t0", 2}, {"t1", 2}}));
}

// RoundRobinAssignor's documented examples. Same subscriptions: C0 gets [t0p0, t0p2, t1p1] and
// C1 [t0p1, t1p0, t1p2]. Different subscriptions (C0: t0; C1: t0, t1; C2: t0, t1, t2; with 1, 2
// and 3 partitions): C0 [t0p0], C1 [t1p0], C2 [t1p1, t2p0, t2p1, t2p2].
TEST(AssignorTest, RoundRobinDocumentationExamples) {
  std::vector<AssignorMember> same = {{"C0", std::nullopt, {"t0", "t1"}},
                                      {"C1", std::nullopt, {"t0", "t1"}}};
  GroupAssignment assignment = AssignRoundRobin(same, {{"t0", 3}, {"t1", 3}}).value();
  EXPECT_EQ(assignment["C0"], Parts({{"t0", 0}, {"t0", 2}, {"t1", 1}}));
  EXPECT_EQ(assignment["C1"], Parts({{"t0", 1}, {"t1", 0}, {"t1", 2}}));

  std::vector<AssignorMember> different = {{"C0", std::nullopt, {"t0"}},
                                           {"C1", std::nullopt, {"t0", "t1"}},
                                           {"C2", std::nullopt, {"t0", "t1", "t2"}}};
  assignment = AssignRoundRobin(different, {{"t0", 1}, {"t1", 2}, {"t2", 3}}).value();
  EXPECT_EQ(assignment["C0"], Parts({{"t0", 0}}));
  EXPECT_EQ(assignment["C1"], Parts({{"t1", 0}}));
  EXPECT_EQ(assignment["C2"], Parts({{"t1", 1}, {"t2", 0}, {"t2", 1}, {"t2", 2}}));
}

// Range with an uneven split: 7 partitions over 3 members give 3, 2, 2, in member id order; a
// member subscribed to nothing still appears with no partitions; topics without a known
// partition count are skipped.
TEST(AssignorTest, RangeUnevenSplitAndEdgeCases) {
  std::vector<AssignorMember> members = {{"b", std::nullopt, {"t"}},
                                         {"a", std::nullopt, {"t", "unknown"}},
                                         {"c", std::nullopt, {"t"}},
                                         {"idle", std::nullopt, {}}};
  GroupAssignment assignment = AssignRange(members, {{"t", 7}}).value();
  EXPECT_EQ(assignment["a"], Parts({{"t", 0}, {"t", 1}, {"t", 2}}));
  EXPECT_EQ(assignment["b"], Parts({{"t", 3}, {"t", 4}}));
  EXPECT_EQ(assignment["c"], Parts({{"t", 5}, {"t", 6}}));
  ASSERT_TRUE(assignment.contains("idle"));
  EXPECT_TRUE(assignment["idle"].empty());
  // More members than partitions: the last ones get nothing.
  assignment = AssignRange(members, {{"t", 2}}).value();
  EXPECT_EQ(assignment["a"], Parts({{"t", 0}}));
  EXPECT_EQ(assignment["b"], Parts({{"t", 1}}));
  EXPECT_TRUE(assignment["c"].empty());
}

// Kafka orders static members first, by group instance id, so that a static member that
// restarts under a new member id keeps its partitions.
TEST(AssignorTest, StaticMembersAreOrderedByInstanceId) {
  std::vector<AssignorMember> members = {{"a-new", std::string("instance-2"), {"t"}},
                                         {"z-old", std::string("instance-1"), {"t"}},
                                         {"dynamic", std::nullopt, {"t"}}};
  GroupAssignment assignment = AssignRange(members, {{"t", 3}}).value();
  EXPECT_EQ(assignment["z-old"], Parts({{"t", 0}}));
  EXPECT_EQ(assignment["a-new"], Parts({{"t", 1}}));
  EXPECT_EQ(assignment["dynamic"], Parts({{"t", 2}}));
}

TEST(AssignorTest, RejectsBadInputAndUnknownAssignors) {
  std::vector<AssignorMember> twice = {{"a", std::nullopt, {"t"}}, {"a", std::nullopt, {"t"}}};
  EXPECT_EQ(AssignRange(twice, {{"t", 1}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AssignRoundRobin({{"a", std::nullopt, {"t"}}},
                             {{"t", kAssignorPartitionsPerTopicMax + 1}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Assign("sticky", {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Assign("range", {}, {{"t", 3}}).value().empty());
  EXPECT_TRUE(IsKnownAssignor("roundrobin"));
  EXPECT_FALSE(IsKnownAssignor("cooperative-sticky"));
}

// --- Assignors: properties over random groups ---

struct RandomGroup {
  std::vector<AssignorMember> members;
  std::map<std::string, int32_t> counts;
};

RandomGroup GenerateGroup(bool same_subscriptions) {
  RandomGroup group;
  const int topic_count = *rc::gen::inRange(1, 5);
  std::vector<std::string> topics;
  for (int i = 0; i < topic_count; ++i) {
    topics.push_back("topic-" + std::to_string(i));
    group.counts[topics.back()] = *rc::gen::inRange(0, 13);
  }
  const int member_count = *rc::gen::inRange(1, 9);
  for (int i = 0; i < member_count; ++i) {
    AssignorMember member;
    member.member_id = "member-" + std::to_string(*rc::gen::inRange(0, 1'000'000)) + "-" +
                       std::to_string(i);
    if (*rc::gen::inRange(0, 4) == 0) member.group_instance_id = "instance-" + std::to_string(i);
    for (const std::string& topic : topics) {
      if (same_subscriptions || *rc::gen::inRange(0, 2) == 0) member.topics.push_back(topic);
    }
    group.members.push_back(std::move(member));
  }
  return group;
}

// Every partition of a topic someone subscribes to goes to exactly one member, that member
// subscribes to the topic, and nothing else is assigned.
void CheckExactlyOnce(const RandomGroup& group, const GroupAssignment& assignment) {
  RC_ASSERT(assignment.size() == group.members.size());
  std::map<TopicPartition, int> owners;
  for (const AssignorMember& member : group.members) {
    const std::set<std::string> subscribed(member.topics.begin(), member.topics.end());
    for (const TopicPartition& partition : assignment.at(member.member_id)) {
      RC_ASSERT(subscribed.contains(partition.topic));
      ++owners[partition];
    }
  }
  for (const auto& [topic, count] : group.counts) {
    bool anyone = false;
    for (const AssignorMember& member : group.members) {
      for (const std::string& subscribed : member.topics) anyone = anyone || subscribed == topic;
    }
    for (int32_t partition = 0; partition < count; ++partition) {
      const TopicPartition key{topic, partition};
      RC_ASSERT(owners[key] == (anyone ? 1 : 0));
    }
  }
  for (const auto& [partition, times] : owners) {
    RC_ASSERT(partition.partition < group.counts.at(partition.topic));
  }
}

TEST(AssignorPropertyTest, RoundRobinAssignsEachPartitionOnceAndEvenly) {
  const bool passed = rc::check("roundrobin", [] {
    const bool same = *rc::gen::arbitrary<bool>();
    RandomGroup group = GenerateGroup(same);
    GroupAssignment assignment = AssignRoundRobin(group.members, group.counts).value();
    CheckExactlyOnce(group, assignment);
    if (same) {
      size_t fewest = SIZE_MAX, most = 0;
      for (const auto& [member, partitions] : assignment) {
        fewest = std::min(fewest, partitions.size());
        most = std::max(most, partitions.size());
      }
      RC_ASSERT(most - fewest <= 1);
    }
  });
  EXPECT_TRUE(passed);
}

TEST(AssignorPropertyTest, RangeAssignsEachPartitionOnceAndEvenlyPerTopic) {
  const bool passed = rc::check("range", [] {
    RandomGroup group = GenerateGroup(*rc::gen::arbitrary<bool>());
    GroupAssignment assignment = AssignRange(group.members, group.counts).value();
    CheckExactlyOnce(group, assignment);
    for (const auto& [topic, count] : group.counts) {
      size_t fewest = SIZE_MAX, most = 0;
      for (const AssignorMember& member : group.members) {
        if (std::find(member.topics.begin(), member.topics.end(), topic) == member.topics.end()) {
          continue;
        }
        size_t mine = 0;
        for (const TopicPartition& partition : assignment.at(member.member_id)) {
          if (partition.topic == topic) ++mine;
        }
        fewest = std::min(fewest, mine);
        most = std::max(most, mine);
      }
      if (most > 0 || fewest != SIZE_MAX) RC_ASSERT(most - fewest <= 1);
    }
  });
  EXPECT_TRUE(passed);
}

// The assignment does not depend on the order the members are listed in (the coordinator's
// order is not specified), only on their ids.
TEST(AssignorPropertyTest, IndependentOfMemberListOrder) {
  const bool passed = rc::check("member order", [] {
    RandomGroup group = GenerateGroup(*rc::gen::arbitrary<bool>());
    std::vector<AssignorMember> reversed(group.members.rbegin(), group.members.rend());
    const bool range_same = AssignRange(group.members, group.counts).value() ==
                            AssignRange(reversed, group.counts).value();
    const bool round_robin_same = AssignRoundRobin(group.members, group.counts).value() ==
                                  AssignRoundRobin(reversed, group.counts).value();
    RC_ASSERT(range_same);
    RC_ASSERT(round_robin_same);
  });
  EXPECT_TRUE(passed);
}

}  // namespace
}  // namespace runnel::client
