// Tests of the group coordinator (broker/group/group_coordinator.h) wired into a real BrokerNode in
// the simulator, driven with raw Kafka protocol requests by TestClients
// (tests/server_test_world.h). Each test says what it checks and how.
#include "broker/group/group_coordinator.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/group/offsets_records.h"
#include "broker/protocol/codec.h"
#include "broker/server/broker_node.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/simulator.h"
#include "tests/server_test_world.h"

namespace runnel::server {
namespace {

using group::GroupState;
using protocol::ErrorCode;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr int32_t kSessionTimeoutMs = 10'000;
constexpr int32_t kRebalanceTimeoutMs = 30'000;

protocol::JoinGroupRequest JoinRequest(const std::string& group, const std::string& member_id,
                                       std::optional<std::string> instance = std::nullopt,
                                       std::string protocol_metadata = "subscription",
                                       std::vector<std::string> protocol_names = {"range"}) {
  protocol::JoinGroupRequest request;
  request.group_id = group;
  request.session_timeout_ms = kSessionTimeoutMs;
  request.rebalance_timeout_ms = kRebalanceTimeoutMs;
  request.member_id = member_id;
  request.group_instance_id = std::move(instance);
  request.protocol_type = "consumer";
  for (const std::string& name : protocol_names) {
    request.protocols.push_back({.name = name, .metadata = protocol_metadata});
  }
  return request;
}

protocol::SyncGroupRequest SyncRequest(
    const std::string& group, int32_t generation, const std::string& member_id,
    std::vector<std::pair<std::string, std::string>> assignments = {},
    std::optional<std::string> instance = std::nullopt) {
  protocol::SyncGroupRequest request;
  request.group_id = group;
  request.generation_id = generation;
  request.member_id = member_id;
  request.group_instance_id = std::move(instance);
  for (auto& [member, assignment] : assignments) {
    request.assignments.push_back({.member_id = member, .assignment = assignment});
  }
  return request;
}

protocol::HeartbeatRequest HeartbeatRequest(const std::string& group, int32_t generation,
                                            const std::string& member_id,
                                            std::optional<std::string> instance = std::nullopt) {
  return protocol::HeartbeatRequest{.group_id = group,
                                    .generation_id = generation,
                                    .member_id = member_id,
                                    .group_instance_id = std::move(instance)};
}

protocol::OffsetCommitRequest CommitRequest(const std::string& group, int32_t generation,
                                            const std::string& member_id, const std::string& topic,
                                            int32_t partition, int64_t offset,
                                            std::optional<std::string> metadata = "meta") {
  protocol::OffsetCommitRequest request;
  request.group_id = group;
  request.generation_id = generation;
  request.member_id = member_id;
  auto& out = request.topics.emplace_back();
  out.name = topic;
  out.partitions.push_back({.partition_index = partition,
                            .committed_offset = offset,
                            .committed_leader_epoch = -1,
                            .commit_timestamp = -1,
                            .committed_metadata = std::move(metadata)});
  return request;
}

protocol::OffsetFetchRequest FetchOffsetsRequest(
    const std::string& group, std::optional<std::vector<std::pair<std::string, int32_t>>> wanted) {
  protocol::OffsetFetchRequest request;
  request.group_id = group;
  if (wanted.has_value()) {
    request.topics.emplace();
    for (const auto& [topic, partition] : *wanted) {
      if (request.topics->empty() || request.topics->back().name != topic) {
        request.topics->push_back({.name = topic, .partition_indexes = {}});
      }
      request.topics->back().partition_indexes.push_back(partition);
    }
  }
  return request;
}

protocol::CreateTopicsRequest CreateTopicRequest(const std::string& name, int32_t partitions) {
  protocol::CreateTopicsRequest request;
  request.timeout_ms = 30'000;
  auto& topic = request.topics.emplace_back();
  topic.name = name;
  topic.num_partitions = partitions;
  topic.replication_factor = -1;
  return request;
}

// A member as the test sees it after a completed join.
struct Joined {
  std::string member_id;
  int32_t generation = -1;
  std::string leader;
  std::vector<std::string> members;  // filled for the leader only
};

class GroupCoordinatorTest : public ::testing::Test {
 protected:
  GroupCoordinatorTest() {
    world_.config().mutable_groups()->set_group_initial_rebalance_delay_ms(0);
    world_.config().mutable_groups()->set_offsets_topic_num_partitions(4);
  }

  void Start() {
    ASSERT_NO_FATAL_FAILURE(world_.Start());
    ASSERT_TRUE(WaitLoaded());
  }
  // Runs until the coordinator hosts and has loaded every partition of __consumer_offsets.
  bool WaitLoaded() {
    return world_.RunUntil([&] {
      group::GroupCoordinator& groups = world_.node().groups();
      if (groups.offsets_topic_partitions() == 0) return false;
      for (int32_t p = 0; p < groups.offsets_topic_partitions(); ++p) {
        if (!groups.IsHosted(p) || groups.IsLoading(p)) return false;
      }
      return true;
    });
  }
  group::GroupCoordinator& coordinator() { return world_.node().groups(); }
  // Runs until `group` is in `state` (requests on different connections may arrive in any order).
  bool WaitState(const std::string& group, GroupState state) {
    return world_.RunUntil([&] {
      std::optional<group::GroupCoordinator::GroupView> view = coordinator().ViewGroup(group);
      return view.has_value() && view->state == state;
    });
  }

  std::unique_ptr<TestClient> Client() {
    std::unique_ptr<TestClient> client = world_.Connect();
    return client;
  }
  void CreateTopic(TestClient& client, const std::string& name, int32_t partitions) {
    auto response = world_.Call<protocol::CreateTopicsResponse>(
        client, CreateTopicRequest(name, partitions), 4);
    ASSERT_TRUE(response.has_value());
    ASSERT_EQ(response->topics[0].error_code, 0);
  }

  // Sends a JoinGroup (without waiting); its correlation id.
  int32_t SendJoin(TestClient& client, const protocol::JoinGroupRequest& request,
                   int16_t version = 5) {
    return client.Send(request, version);
  }
  std::optional<protocol::JoinGroupResponse> TakeJoin(TestClient& client, int32_t correlation_id) {
    world_.RunUntil([&] { return client.Has(correlation_id) || client.closed(); });
    if (!client.Has(correlation_id)) return std::nullopt;
    return std::get<protocol::JoinGroupResponse>(client.Take(correlation_id).body);
  }
  // The v5 two-step join of a new dynamic member: MEMBER_ID_REQUIRED, then the join with that id,
  // sent without waiting for the rebalance; returns the second join's correlation id.
  int32_t StartJoin(TestClient& client, const std::string& group, std::string* member_id) {
    auto first = world_.Call<protocol::JoinGroupResponse>(client, JoinRequest(group, ""), 5);
    EXPECT_TRUE(first.has_value());
    if (!first.has_value()) return -1;
    EXPECT_EQ(first->error_code, Wire(ErrorCode::kMemberIdRequired));
    *member_id = first->member_id;
    return SendJoin(client, JoinRequest(group, *member_id));
  }
  Joined Finish(TestClient& client, int32_t correlation_id) {
    std::optional<protocol::JoinGroupResponse> response = TakeJoin(client, correlation_id);
    EXPECT_TRUE(response.has_value());
    Joined joined;
    if (!response.has_value()) return joined;
    EXPECT_EQ(response->error_code, 0);
    joined.member_id = response->member_id;
    joined.generation = response->generation_id;
    joined.leader = response->leader;
    for (const auto& member : response->members) joined.members.push_back(member.member_id);
    return joined;
  }
  int16_t Heartbeat(TestClient& client, const std::string& group, const Joined& member,
                    std::optional<std::string> instance = std::nullopt) {
    auto response = world_.Call<protocol::HeartbeatResponse>(
        client, HeartbeatRequest(group, member.generation, member.member_id, std::move(instance)),
        3);
    return response.has_value() ? response->error_code : int16_t{-100};
  }
  int16_t Commit(TestClient& client, const protocol::OffsetCommitRequest& request,
                 int16_t version = 7) {
    auto response = world_.Call<protocol::OffsetCommitResponse>(client, request, version);
    if (!response.has_value() || response->topics.empty() ||
        response->topics[0].partitions.empty()) {
      return -100;
    }
    return response->topics[0].partitions[0].error_code;
  }
  // The committed offset of one partition as OffsetFetch v5 reports it (-1 for none).
  int64_t Committed(TestClient& client, const std::string& group, const std::string& topic,
                    int32_t partition) {
    auto response = world_.Call<protocol::OffsetFetchResponse>(
        client,
        FetchOffsetsRequest(group,
                            std::vector<std::pair<std::string, int32_t>>{{topic, partition}}),
        5);
    if (!response.has_value()) return -100;
    EXPECT_EQ(response->error_code, 0);
    return response->topics.at(0).partitions.at(0).committed_offset;
  }
  // A one-member group that completed a generation (joined and synced) with `assignment`.
  Joined JoinAlone(TestClient& client, const std::string& group,
                   const std::string& assignment = "assigned") {
    std::string member_id;
    Joined joined = Finish(client, StartJoin(client, group, &member_id));
    auto synced = world_.Call<protocol::SyncGroupResponse>(
        client,
        SyncRequest(group, joined.generation, joined.member_id, {{joined.member_id, assignment}}),
        3);
    EXPECT_TRUE(synced.has_value());
    if (synced.has_value()) {
      EXPECT_EQ(synced->error_code, 0);
    }
    return joined;
  }
  std::optional<protocol::DescribeGroupsResponse::Group> Describe(TestClient& client,
                                                                  const std::string& group) {
    protocol::DescribeGroupsRequest request;
    request.groups = {group};
    auto response = world_.Call<protocol::DescribeGroupsResponse>(client, request, 4);
    if (!response.has_value() || response->groups.size() != 1) return std::nullopt;
    return response->groups[0];
  }

  World world_;
};

// --- The classic protocol -----------------------------------------------------------------------

// Three members join one group (v5: MEMBER_ID_REQUIRED, then the join with the given id); all three
// get the same generation and leader, and only the leader gets the member list with metadata; the
// followers' SyncGroup waits until the leader's arrives, then each gets its own assignment;
// heartbeats answer NONE; DescribeGroups shows the Stable group with client ids, metadata and
// assignments; ListGroups lists it.
TEST_F(GroupCoordinatorTest, ThreeMembersJoinSyncAndHeartbeat) {
  Start();
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(Client());
  std::vector<std::string> ids(3);
  std::vector<int32_t> joins(3);
  // The first member's join completes alone (no initial delay); the other two rebalance it.
  joins[0] = StartJoin(*clients[0], "g", &ids[0]);
  Joined first = Finish(*clients[0], joins[0]);
  EXPECT_EQ(first.generation, 1);
  joins[1] = StartJoin(*clients[1], "g", &ids[1]);
  joins[2] = StartJoin(*clients[2], "g", &ids[2]);
  ASSERT_TRUE(WaitState("g", GroupState::kPreparingRebalance));
  // The first member learns of the rebalance from its heartbeat and rejoins.
  EXPECT_EQ(Heartbeat(*clients[0], "g", first), Wire(ErrorCode::kRebalanceInProgress));
  joins[0] = SendJoin(*clients[0], JoinRequest("g", ids[0]));
  std::vector<Joined> joined;
  for (int i = 0; i < 3; ++i) joined.push_back(Finish(*clients[i], joins[i]));
  for (const Joined& member : joined) {
    EXPECT_EQ(member.generation, 2);
    EXPECT_EQ(member.leader, joined[0].leader);
  }
  int leader = -1;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(joined[i].member_id, ids[i]);
    if (joined[i].member_id == joined[i].leader) {
      leader = i;
      EXPECT_THAT(joined[i].members, UnorderedElementsAre(ids[0], ids[1], ids[2]));
    } else {
      EXPECT_TRUE(joined[i].members.empty());
    }
  }
  ASSERT_GE(leader, 0);
  // Followers first: they wait for the leader.
  std::vector<int32_t> syncs(3, -1);
  for (int i = 0; i < 3; ++i) {
    if (i != leader) syncs[i] = clients[i]->Send(SyncRequest("g", 2, ids[i]), 3);
  }
  world_.RunFor(100'000);
  for (int i = 0; i < 3; ++i) {
    if (i != leader) {
      EXPECT_FALSE(clients[i]->Has(syncs[i]));
    }
  }
  syncs[leader] = clients[leader]->Send(
      SyncRequest("g", 2, ids[leader],
                  {{ids[0], "assignment-0"}, {ids[1], "assignment-1"}, {ids[2], "assignment-2"}}),
      3);
  for (int i = 0; i < 3; ++i) {
    world_.RunUntil([&] { return clients[i]->Has(syncs[i]); });
    ASSERT_TRUE(clients[i]->Has(syncs[i]));
    auto response = std::get<protocol::SyncGroupResponse>(clients[i]->Take(syncs[i]).body);
    EXPECT_EQ(response.error_code, 0);
    EXPECT_EQ(response.assignment, absl::StrCat("assignment-", i));
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Heartbeat(*clients[i], "g", joined[i]), 0);

  auto described = Describe(*clients[0], "g");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->error_code, 0);
  EXPECT_EQ(described->group_state, "Stable");
  EXPECT_EQ(described->protocol_type, "consumer");
  EXPECT_EQ(described->protocol_data, "range");
  ASSERT_EQ(described->members.size(), 3u);
  for (const auto& member : described->members) {
    EXPECT_EQ(member.client_id, "test-client");
    EXPECT_EQ(member.client_host, "client");
    EXPECT_EQ(member.member_metadata, "subscription");
    const int index =
        static_cast<int>(std::find(ids.begin(), ids.end(), member.member_id) - ids.begin());
    ASSERT_LT(index, 3);
    EXPECT_EQ(member.member_assignment, absl::StrCat("assignment-", index));
  }
  auto unknown = Describe(*clients[0], "nobody");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->error_code, 0);
  EXPECT_EQ(unknown->group_state, "Dead");
  auto listed =
      world_.Call<protocol::ListGroupsResponse>(*clients[0], protocol::ListGroupsRequest{}, 2);
  ASSERT_TRUE(listed.has_value());
  EXPECT_EQ(listed->error_code, 0);
  ASSERT_EQ(listed->groups.size(), 1u);
  EXPECT_EQ(listed->groups[0].group_id, "g");
  EXPECT_EQ(listed->groups[0].protocol_type, "consumer");
}

// A member that stops heartbeating is removed when its session times out: the group rebalances,
// the survivor's heartbeat answers REBALANCE_IN_PROGRESS, it rejoins alone into a new generation,
// and the expired member's heartbeat then answers UNKNOWN_MEMBER_ID.
TEST_F(GroupCoordinatorTest, SessionExpiryRebalancesIntoNewGeneration) {
  Start();
  auto a = Client();
  auto b = Client();
  std::string id_a, id_b;
  Joined first = Finish(*a, StartJoin(*a, "g", &id_a));
  int32_t join_b = StartJoin(*b, "g", &id_b);
  ASSERT_TRUE(WaitState("g", GroupState::kPreparingRebalance));
  EXPECT_EQ(Heartbeat(*a, "g", first), Wire(ErrorCode::kRebalanceInProgress));
  int32_t join_a = SendJoin(*a, JoinRequest("g", id_a));
  Joined ja = Finish(*a, join_a);
  Joined jb = Finish(*b, join_b);
  ASSERT_EQ(ja.generation, jb.generation);
  const std::string& leader_id = ja.leader;
  TestClient& leader = leader_id == id_a ? *a : *b;
  auto synced = world_.Call<protocol::SyncGroupResponse>(
      leader, SyncRequest("g", ja.generation, leader_id, {{id_a, "A"}, {id_b, "B"}}), 3);
  ASSERT_TRUE(synced.has_value());
  TestClient& follower = leader_id == id_a ? *b : *a;
  const std::string follower_id = leader_id == id_a ? id_b : id_a;
  ASSERT_TRUE(world_.Call<protocol::SyncGroupResponse>(
      follower, SyncRequest("g", ja.generation, follower_id), 3));
  ASSERT_EQ(coordinator().ViewGroup("g")->state, GroupState::kStable);

  // Only a heartbeats from now on, every 3 s, for longer than b's 10 s session.
  const uint64_t expired_before = coordinator().stats().members_expired;
  int16_t seen = 0;
  for (int i = 0; i < 5 && seen == 0; ++i) {
    world_.RunFor(3'000'000);
    seen = Heartbeat(*a, "g", ja);
  }
  EXPECT_EQ(seen, Wire(ErrorCode::kRebalanceInProgress));
  EXPECT_EQ(coordinator().stats().members_expired, expired_before + 1);
  Joined again = Finish(*a, SendJoin(*a, JoinRequest("g", id_a)));
  EXPECT_EQ(again.generation, ja.generation + 1);
  EXPECT_EQ(again.leader, id_a);
  EXPECT_THAT(again.members, ElementsAre(id_a));
  EXPECT_EQ(Heartbeat(*b, "g", jb), Wire(ErrorCode::kUnknownMemberId));
}

// When a rebalance starts, a member that keeps heartbeating but never rejoins is removed once the
// rebalance timeout passes: the join phase ends with the members that did rejoin, and the one left
// out gets UNKNOWN_MEMBER_ID.
TEST_F(GroupCoordinatorTest, RebalanceTimeoutRemovesMemberThatDidNotRejoin) {
  Start();
  auto a = Client();
  auto b = Client();
  std::string id_a, id_b;
  Joined first = Finish(*a, StartJoin(*a, "g", &id_a));
  ASSERT_TRUE(world_.Call<protocol::SyncGroupResponse>(
      *a, SyncRequest("g", first.generation, id_a, {{id_a, "all"}}), 3));
  // b joins: a must rejoin within a's rebalance timeout (30 s), but only heartbeats.
  const int64_t started_us = world_.NowUs();
  int32_t join_b = StartJoin(*b, "g", &id_b);
  std::optional<protocol::JoinGroupResponse> b_joined;
  while (!b->Has(join_b) && world_.NowUs() - started_us < 60'000'000) {
    world_.RunFor(2'000'000);
    if (!b->Has(join_b)) {
      EXPECT_NE(Heartbeat(*a, "g", first), 0);
    }
  }
  b_joined = TakeJoin(*b, join_b);
  ASSERT_TRUE(b_joined.has_value());
  EXPECT_EQ(b_joined->error_code, 0);
  EXPECT_GE(world_.NowUs() - started_us, int64_t{kRebalanceTimeoutMs} * 1000 - 2'000'000);
  EXPECT_EQ(b_joined->leader, id_b);
  EXPECT_EQ(b_joined->generation_id, first.generation + 1);
  ASSERT_EQ(b_joined->members.size(), 1u);
  EXPECT_EQ(b_joined->members[0].member_id, id_b);
  EXPECT_EQ(coordinator().stats().members_removed_by_rebalance_timeout, 1u);
  EXPECT_EQ(Heartbeat(*a, "g", first), Wire(ErrorCode::kUnknownMemberId));
}

// KIP-394: JoinGroup v4+ with an empty member id answers MEMBER_ID_REQUIRED with an id built from
// the client id; that id then joins. v3 and below join at once with a new id. An id handed out but
// never used expires with the session timeout and does not hold the group's rebalance up.
TEST_F(GroupCoordinatorTest, MemberIdRequiredFromV4) {
  Start();
  auto client = Client();
  auto first = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("g4", ""), 4);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->error_code, Wire(ErrorCode::kMemberIdRequired));
  EXPECT_THAT(first->member_id, ::testing::StartsWith("test-client-"));
  EXPECT_EQ(first->generation_id, -1);
  auto second =
      world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("g4", first->member_id), 4);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->error_code, 0);
  EXPECT_EQ(second->member_id, first->member_id);
  EXPECT_EQ(second->generation_id, 1);

  auto old = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("g3", ""), 3);
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->error_code, 0);
  EXPECT_FALSE(old->member_id.empty());
  EXPECT_EQ(old->leader, old->member_id);

  // A second joiner of g3 gets an id but never comes back; the first member's rejoin completes
  // the rebalance once that id expires (10 s), well before the 30 s rebalance timeout.
  auto ghost = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("g3", ""), 5);
  ASSERT_TRUE(ghost.has_value());
  EXPECT_EQ(ghost->error_code, Wire(ErrorCode::kMemberIdRequired));
  const int64_t started_us = world_.NowUs();
  auto rejoined =
      world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("g3", old->member_id), 3);
  ASSERT_TRUE(rejoined.has_value());
  EXPECT_EQ(rejoined->error_code, 0);
  EXPECT_LT(world_.NowUs() - started_us, 20'000'000);
}

// Static membership: a known group.instance.id rejoining with an empty member id takes a new member
// id without a rebalance while the group is Stable (same generation, the old assignment), and the
// old member id is fenced: its heartbeat, SyncGroup and OffsetCommit with the same instance id get
// FENCED_INSTANCE_ID.
TEST_F(GroupCoordinatorTest, StaticMemberRejoinsWithoutRebalance) {
  Start();
  auto client = Client();
  CreateTopic(*client, "t", 1);
  auto joined = world_.Call<protocol::JoinGroupResponse>(
      *client, JoinRequest("s", "", std::string("instance-1")), 5);
  ASSERT_TRUE(joined.has_value());
  ASSERT_EQ(joined->error_code, 0);  // static members need no MEMBER_ID_REQUIRED round
  const std::string old_id = joined->member_id;
  EXPECT_THAT(old_id, ::testing::StartsWith("instance-1-"));
  const int32_t generation = joined->generation_id;
  auto synced = world_.Call<protocol::SyncGroupResponse>(
      *client, SyncRequest("s", generation, old_id, {{old_id, "mine"}}, "instance-1"), 3);
  ASSERT_TRUE(synced.has_value());
  ASSERT_EQ(synced->error_code, 0);
  const uint64_t rebalances = coordinator().stats().rebalances;

  // The restarted process.
  auto restarted = Client();
  auto rejoined = world_.Call<protocol::JoinGroupResponse>(
      *restarted, JoinRequest("s", "", std::string("instance-1")), 5);
  ASSERT_TRUE(rejoined.has_value());
  EXPECT_EQ(rejoined->error_code, 0);
  EXPECT_NE(rejoined->member_id, old_id);
  EXPECT_EQ(rejoined->generation_id, generation);
  EXPECT_EQ(rejoined->leader, old_id);  // the old leader id: nobody reassigns in a Stable group
  EXPECT_EQ(coordinator().stats().rebalances, rebalances);
  EXPECT_EQ(coordinator().ViewGroup("s")->state, GroupState::kStable);
  auto resynced = world_.Call<protocol::SyncGroupResponse>(
      *restarted, SyncRequest("s", generation, rejoined->member_id, {}, "instance-1"), 3);
  ASSERT_TRUE(resynced.has_value());
  EXPECT_EQ(resynced->error_code, 0);
  EXPECT_EQ(resynced->assignment, "mine");

  Joined old{.member_id = old_id, .generation = generation, .leader = "", .members = {}};
  EXPECT_EQ(Heartbeat(*client, "s", old, "instance-1"), Wire(ErrorCode::kFencedInstanceId));
  auto old_sync = world_.Call<protocol::SyncGroupResponse>(
      *client, SyncRequest("s", generation, old_id, {}, "instance-1"), 3);
  ASSERT_TRUE(old_sync.has_value());
  EXPECT_EQ(old_sync->error_code, Wire(ErrorCode::kFencedInstanceId));
  protocol::OffsetCommitRequest commit = CommitRequest("s", generation, old_id, "t", 0, 5);
  commit.group_instance_id = "instance-1";
  EXPECT_EQ(Commit(*client, commit), Wire(ErrorCode::kFencedInstanceId));
  Joined fresh{
      .member_id = rejoined->member_id, .generation = generation, .leader = "", .members = {}};
  EXPECT_EQ(Heartbeat(*restarted, "s", fresh, "instance-1"), 0);
}

// --- Offsets ------------------------------------------------------------------------------------

// Generation and member fencing of OffsetCommit: a stale generation gets ILLEGAL_GENERATION, an
// unknown member UNKNOWN_MEMBER_ID, a commit while the group awaits its leader's SyncGroup
// REBALANCE_IN_PROGRESS, a commit for a group that does not exist with a generation
// ILLEGAL_GENERATION; the current generation's commit succeeds and OffsetFetch returns it with its
// metadata; a fenced commit changes nothing.
TEST_F(GroupCoordinatorTest, OffsetCommitIsFencedByGenerationAndMember) {
  Start();
  auto a = Client();
  auto b = Client();
  CreateTopic(*a, "t", 2);
  std::string id_a, id_b;
  Joined first = Finish(*a, StartJoin(*a, "g", &id_a));
  ASSERT_TRUE(world_.Call<protocol::SyncGroupResponse>(
      *a, SyncRequest("g", first.generation, id_a, {{id_a, "all"}}), 3));
  EXPECT_EQ(Commit(*a, CommitRequest("g", first.generation, id_a, "t", 0, 10)), 0);
  EXPECT_EQ(Committed(*a, "g", "t", 0), 10);

  // b joins; a rejoins: generation 2, CompletingRebalance until the leader syncs.
  int32_t join_b = StartJoin(*b, "g", &id_b);
  ASSERT_TRUE(WaitState("g", GroupState::kPreparingRebalance));
  Joined ja = Finish(*a, SendJoin(*a, JoinRequest("g", id_a)));
  Joined jb = Finish(*b, join_b);
  ASSERT_EQ(ja.generation, first.generation + 1);
  EXPECT_EQ(Commit(*a, CommitRequest("g", ja.generation, id_a, "t", 0, 11)),
            Wire(ErrorCode::kRebalanceInProgress));
  EXPECT_EQ(Commit(*a, CommitRequest("g", first.generation, id_a, "t", 0, 12)),
            Wire(ErrorCode::kIllegalGeneration));
  EXPECT_EQ(Commit(*a, CommitRequest("g", ja.generation, "stranger", "t", 0, 13)),
            Wire(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(Commit(*a, CommitRequest("never-seen", 3, "x", "t", 0, 14)),
            Wire(ErrorCode::kIllegalGeneration));
  TestClient& leader = ja.leader == id_a ? *a : *b;
  TestClient& follower = ja.leader == id_a ? *b : *a;
  const std::string follower_id = ja.leader == id_a ? id_b : id_a;
  int32_t follower_sync = follower.Send(SyncRequest("g", ja.generation, follower_id), 3);
  ASSERT_TRUE(world_.Call<protocol::SyncGroupResponse>(
      leader, SyncRequest("g", ja.generation, ja.leader, {{id_a, "p0"}, {id_b, "p1"}}), 3));
  world_.RunUntil([&] { return follower.Has(follower_sync); });
  ASSERT_TRUE(follower.Has(follower_sync));
  EXPECT_EQ(Commit(*b, CommitRequest("g", jb.generation, id_b, "t", 1, 20, "b's")), 0);
  EXPECT_EQ(Committed(*a, "g", "t", 0), 10);
  EXPECT_EQ(Committed(*a, "g", "t", 1), 20);
  // A simple commit (generation -1, no member) into a group with members is refused.
  EXPECT_EQ(Commit(*a, CommitRequest("g", -1, "", "t", 0, 99)), Wire(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(Committed(*a, "g", "t", 0), 10);
  auto fetched = world_.Call<protocol::OffsetFetchResponse>(
      *a, FetchOffsetsRequest("g", std::vector<std::pair<std::string, int32_t>>{{"t", 1}}), 3);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->topics[0].partitions[0].metadata, "b's");
}

// Simple commits (generation -1, empty member id; OffsetCommit v0 has neither) create the group and
// are accepted while it has no members; metadata longer than offset_metadata_max_bytes gets
// OFFSET_METADATA_TOO_LARGE and an unknown topic or partition UNKNOWN_TOPIC_OR_PARTITION, each for
// its own partition only. OffsetFetch with a null topic list (v2+) returns every committed offset;
// a requested partition without one returns -1; v1 reports per partition.
TEST_F(GroupCoordinatorTest, SimpleCommitsAndOffsetFetchAll) {
  Start();
  auto client = Client();
  CreateTopic(*client, "t", 3);
  CreateTopic(*client, "u", 1);
  EXPECT_EQ(Commit(*client, CommitRequest("simple", -1, "", "t", 0, 5), 2), 0);
  EXPECT_EQ(Commit(*client, CommitRequest("simple", -1, "", "u", 0, 7), 0), 0);
  protocol::OffsetCommitRequest mixed = CommitRequest("simple", -1, "", "t", 1, 6);
  mixed.topics[0].partitions.push_back({.partition_index = 2,
                                        .committed_offset = 8,
                                        .committed_leader_epoch = -1,
                                        .commit_timestamp = -1,
                                        .committed_metadata = std::string(5000, 'm')});
  mixed.topics[0].partitions.push_back({.partition_index = 9,
                                        .committed_offset = 8,
                                        .committed_leader_epoch = -1,
                                        .commit_timestamp = -1,
                                        .committed_metadata = std::nullopt});
  mixed.topics.push_back({.name = "ghost",
                          .partitions = {{.partition_index = 0,
                                          .committed_offset = 1,
                                          .committed_leader_epoch = -1,
                                          .commit_timestamp = -1,
                                          .committed_metadata = std::nullopt}}});
  auto response = world_.Call<protocol::OffsetCommitResponse>(*client, mixed, 7);
  ASSERT_TRUE(response.has_value());
  ASSERT_EQ(response->topics.size(), 2u);
  EXPECT_EQ(response->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(response->topics[0].partitions[1].error_code, Wire(ErrorCode::kOffsetMetadataTooLarge));
  EXPECT_EQ(response->topics[0].partitions[2].error_code,
            Wire(ErrorCode::kUnknownTopicOrPartition));
  EXPECT_EQ(response->topics[1].partitions[0].error_code,
            Wire(ErrorCode::kUnknownTopicOrPartition));

  auto all = world_.Call<protocol::OffsetFetchResponse>(
      *client, FetchOffsetsRequest("simple", std::nullopt), 5);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->error_code, 0);
  ASSERT_EQ(all->topics.size(), 2u);
  EXPECT_EQ(all->topics[0].name, "t");
  ASSERT_EQ(all->topics[0].partitions.size(), 2u);
  EXPECT_EQ(all->topics[0].partitions[0].committed_offset, 5);
  EXPECT_EQ(all->topics[0].partitions[1].committed_offset, 6);
  EXPECT_EQ(all->topics[1].name, "u");
  EXPECT_EQ(all->topics[1].partitions[0].committed_offset, 7);

  auto v1 = world_.Call<protocol::OffsetFetchResponse>(
      *client,
      FetchOffsetsRequest("simple",
                          std::vector<std::pair<std::string, int32_t>>{{"t", 2}, {"t", 0}}),
      1);
  ASSERT_TRUE(v1.has_value());
  ASSERT_EQ(v1->topics[0].partitions.size(), 2u);
  EXPECT_EQ(v1->topics[0].partitions[0].committed_offset, -1);
  EXPECT_EQ(v1->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(v1->topics[0].partitions[1].committed_offset, 5);
  auto none = world_.Call<protocol::OffsetFetchResponse>(
      *client, FetchOffsetsRequest("nobody", std::nullopt), 5);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->error_code, 0);
  EXPECT_TRUE(none->topics.empty());
}

// Deleting a topic deletes every group's committed offsets for it, durably (tombstones): after
// the deletion, after the topic is created again under the same name and after a power loss, the
// group has no offset there, while its offsets for other topics stay. A simple-commit group left
// with nothing is deleted.
TEST_F(GroupCoordinatorTest, DeletedTopicTakesItsCommittedOffsets) {
  Start();
  auto client = Client();
  CreateTopic(*client, "doomed", 2);
  CreateTopic(*client, "kept", 1);
  ASSERT_EQ(Commit(*client, CommitRequest("g", -1, "", "doomed", 0, 5)), 0);
  ASSERT_EQ(Commit(*client, CommitRequest("g", -1, "", "doomed", 1, 6)), 0);
  ASSERT_EQ(Commit(*client, CommitRequest("g", -1, "", "kept", 0, 7)), 0);
  ASSERT_EQ(Commit(*client, CommitRequest("only-doomed", -1, "", "doomed", 0, 9)), 0);
  protocol::DeleteTopicsRequest deletion;
  deletion.topic_names = {"doomed"};
  deletion.timeout_ms = 10'000;
  auto deleted = world_.Call<protocol::DeleteTopicsResponse>(*client, deletion, 3);
  ASSERT_TRUE(deleted.has_value());
  ASSERT_EQ(deleted->responses.at(0).error_code, 0);
  world_.RunFor(100'000);
  EXPECT_EQ(Committed(*client, "g", "doomed", 0), -1);
  EXPECT_EQ(Committed(*client, "g", "kept", 0), 7);
  EXPECT_FALSE(coordinator().ViewGroup("only-doomed").has_value());
  CreateTopic(*client, "doomed", 2);
  EXPECT_EQ(Committed(*client, "g", "doomed", 0), -1);
  EXPECT_EQ(Committed(*client, "g", "doomed", 1), -1);

  client.reset();
  world_.Restart(sim::CrashKind::kPowerLoss);
  ASSERT_TRUE(WaitLoaded());
  auto view = coordinator().ViewGroup("g");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->offsets, (std::map<std::pair<std::string, int32_t>, int64_t>{{{"kept", 0}, 7}}));
  EXPECT_FALSE(coordinator().ViewGroup("only-doomed").has_value());
}

// --- Limits and bad input -----------------------------------------------------------------------

// group_max_size: a join beyond it gets GROUP_MAX_SIZE_REACHED; a session timeout outside
// [min, max] INVALID_SESSION_TIMEOUT; an empty group id INVALID_GROUP_ID; a member whose protocols
// share none with the group INCONSISTENT_GROUP_PROTOCOL; a known member id to an unknown group
// UNKNOWN_MEMBER_ID; a SyncGroup of another generation ILLEGAL_GENERATION.
TEST_F(GroupCoordinatorTest, LimitsAndBadRequests) {
  world_.config().mutable_groups()->set_group_max_size(2);
  Start();
  auto client = Client();
  std::string id_a, id_b;
  Joined a = Finish(*client, StartJoin(*client, "small", &id_a));
  auto b_first = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("small", ""), 5);
  ASSERT_TRUE(b_first.has_value());
  EXPECT_EQ(b_first->error_code, Wire(ErrorCode::kMemberIdRequired));
  auto third = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("small", ""), 5);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->error_code, Wire(ErrorCode::kGroupMaxSizeReached));

  protocol::JoinGroupRequest short_session = JoinRequest("other", "");
  short_session.session_timeout_ms = 10;
  auto refused = world_.Call<protocol::JoinGroupResponse>(*client, short_session, 5);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error_code, Wire(ErrorCode::kInvalidSessionTimeout));
  short_session.session_timeout_ms = 2'000'000;
  refused = world_.Call<protocol::JoinGroupResponse>(*client, short_session, 5);
  EXPECT_EQ(refused->error_code, Wire(ErrorCode::kInvalidSessionTimeout));
  refused = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("", ""), 5);
  EXPECT_EQ(refused->error_code, Wire(ErrorCode::kInvalidGroupId));
  refused = world_.Call<protocol::JoinGroupResponse>(
      *client, JoinRequest("small", id_a, std::nullopt, "x", {"roundrobin"}), 5);
  EXPECT_EQ(refused->error_code, Wire(ErrorCode::kInconsistentGroupProtocol));
  refused =
      world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("unknown", "member-1"), 5);
  EXPECT_EQ(refused->error_code, Wire(ErrorCode::kUnknownMemberId));
  auto stale = world_.Call<protocol::SyncGroupResponse>(
      *client, SyncRequest("small", a.generation + 5, id_a), 3);
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->error_code, Wire(ErrorCode::kIllegalGeneration));
  auto nobody =
      world_.Call<protocol::HeartbeatResponse>(*client, HeartbeatRequest("nope", 1, "m"), 3);
  ASSERT_TRUE(nobody.has_value());
  EXPECT_EQ(nobody->error_code, Wire(ErrorCode::kUnknownMemberId));
}

// LeaveGroup v0 removes one member (the group rebalances; the other member rejoins alone); v3
// removes a batch with per-member results, a static member by its instance id, and answers
// UNKNOWN_MEMBER_ID for an id the group does not know.
TEST_F(GroupCoordinatorTest, LeaveGroupSingleAndBatch) {
  Start();
  auto client = Client();
  Joined alone = JoinAlone(*client, "leave");
  protocol::LeaveGroupRequest leave;
  leave.group_id = "leave";
  leave.member_id = alone.member_id;
  auto left = world_.Call<protocol::LeaveGroupResponse>(*client, leave, 0);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(left->error_code, 0);
  EXPECT_EQ(coordinator().ViewGroup("leave")->state, GroupState::kEmpty);
  left = world_.Call<protocol::LeaveGroupResponse>(*client, leave, 1);
  EXPECT_EQ(left->error_code, Wire(ErrorCode::kUnknownMemberId));

  auto joined = world_.Call<protocol::JoinGroupResponse>(
      *client, JoinRequest("batch", "", std::string("static-1")), 5);
  ASSERT_TRUE(joined.has_value());
  ASSERT_EQ(joined->error_code, 0);
  protocol::LeaveGroupRequest batch;
  batch.group_id = "batch";
  batch.members.push_back({.member_id = "", .group_instance_id = "static-1"});
  batch.members.push_back({.member_id = "who", .group_instance_id = std::nullopt});
  auto batch_left = world_.Call<protocol::LeaveGroupResponse>(*client, batch, 3);
  ASSERT_TRUE(batch_left.has_value());
  EXPECT_EQ(batch_left->error_code, 0);
  ASSERT_EQ(batch_left->members.size(), 2u);
  EXPECT_EQ(batch_left->members[0].error_code, 0);
  EXPECT_EQ(batch_left->members[1].error_code, Wire(ErrorCode::kUnknownMemberId));
  EXPECT_TRUE(coordinator().ViewGroup("batch")->member_ids.empty());
}

// With group_initial_rebalance_delay_ms the first rebalance of an Empty group waits for more
// members: two members joining 1 s apart end up in the same first generation, which completes no
// sooner than the delay after the first join.
TEST_F(GroupCoordinatorTest, InitialRebalanceDelayGathersMembers) {
  world_.config().mutable_groups()->set_group_initial_rebalance_delay_ms(3000);
  Start();
  auto a = Client();
  auto b = Client();
  const int64_t started_us = world_.NowUs();
  std::string id_a, id_b;
  int32_t join_a = StartJoin(*a, "delayed", &id_a);
  world_.RunFor(1'000'000);
  int32_t join_b = StartJoin(*b, "delayed", &id_b);
  Joined ja = Finish(*a, join_a);
  Joined jb = Finish(*b, join_b);
  EXPECT_EQ(ja.generation, 1);
  EXPECT_EQ(jb.generation, 1);
  EXPECT_GE(world_.NowUs() - started_us, 3'000'000);
  std::vector<std::string> members = ja.leader == id_a ? ja.members : jb.members;
  EXPECT_THAT(members, UnorderedElementsAre(id_a, id_b));
}

// --- Durability and hosting ---------------------------------------------------------------------

// Committed offsets and the group's metadata survive a crash of either kind: each commit is
// acknowledged only once durable, so the node is crashed the moment the last acknowledgement
// arrives. After the restart OffsetFetch returns every acknowledged offset, the group is Stable in
// the same generation with the same member and assignment, and the member's heartbeat works.
void CrashKeepsCommitsAndGroups(sim::CrashKind kind) {
  class Fixture : public GroupCoordinatorTest {
   public:
    void TestBody() override {}
    void Run(sim::CrashKind crash) {
      Start();
      auto client = Client();
      CreateTopic(*client, "t", 4);
      Joined member = JoinAlone(*client, "durable", "the-assignment");
      for (int i = 1; i <= 20; ++i) {
        ASSERT_EQ(Commit(*client, CommitRequest("durable", member.generation, member.member_id, "t",
                                                i % 4, i * 10)),
                  0);
      }
      EXPECT_EQ(Commit(*client, CommitRequest("loner", -1, "", "t", 0, 77)), 0);
      client.reset();
      world_.Restart(crash);
      ASSERT_TRUE(WaitLoaded());
      client = Client();
      for (int partition = 0; partition < 4; ++partition) {
        // The last commit for partition p was i = 16 + p (i % 4 == p), or 20 for partition 0.
        const int64_t expected = partition == 0 ? 200 : (16 + partition) * 10;
        EXPECT_EQ(Committed(*client, "durable", "t", partition), expected) << partition;
      }
      EXPECT_EQ(Committed(*client, "loner", "t", 0), 77);
      std::optional<group::GroupCoordinator::GroupView> view = coordinator().ViewGroup("durable");
      ASSERT_TRUE(view.has_value());
      EXPECT_EQ(view->state, GroupState::kStable);
      EXPECT_EQ(view->generation, member.generation);
      EXPECT_THAT(view->member_ids, ElementsAre(member.member_id));
      auto described = Describe(*client, "durable");
      ASSERT_TRUE(described.has_value());
      ASSERT_EQ(described->members.size(), 1u);
      EXPECT_EQ(described->members[0].member_assignment, "the-assignment");
      EXPECT_EQ(Heartbeat(*client, "durable", member), 0);
    }
  };
  Fixture fixture;
  fixture.Run(kind);
}

TEST(GroupCoordinatorCrashTest, ProcessCrashKeepsCommitsAndGroups) {
  CrashKeepsCommitsAndGroups(sim::CrashKind::kProcess);
}

TEST(GroupCoordinatorCrashTest, PowerLossKeepsCommitsAndGroups) {
  CrashKeepsCommitsAndGroups(sim::CrashKind::kPowerLoss);
}

// An Empty group's metadata record survives too: after the last member leaves and the node
// crashes, the group comes back Empty with its generation and offsets.
TEST_F(GroupCoordinatorTest, EmptyGroupSurvivesRestart) {
  Start();
  auto client = Client();
  CreateTopic(*client, "t", 1);
  Joined member = JoinAlone(*client, "emptied");
  ASSERT_EQ(
      Commit(*client, CommitRequest("emptied", member.generation, member.member_id, "t", 0, 3)), 0);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "emptied";
  leave.member_id = member.member_id;
  ASSERT_TRUE(world_.Call<protocol::LeaveGroupResponse>(*client, leave, 1));
  world_.RunFor(100'000);
  const int32_t generation = coordinator().ViewGroup("emptied")->generation;
  EXPECT_EQ(generation, member.generation + 1);
  client.reset();
  world_.Restart(sim::CrashKind::kPowerLoss);
  ASSERT_TRUE(WaitLoaded());
  auto view = coordinator().ViewGroup("emptied");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->state, GroupState::kEmpty);
  EXPECT_EQ(view->generation, generation);
  EXPECT_EQ(view->offsets.at({"t", 0}), 3);
}

// While an elected partition loads, its groups' requests get COORDINATOR_LOAD_IN_PROGRESS (the load
// never runs inside Elect()); once loaded, the state is back. A resigned partition's groups get
// NOT_COORDINATOR and FindCoordinator COORDINATOR_NOT_AVAILABLE; other partitions keep serving.
TEST_F(GroupCoordinatorTest, LoadingAndResignedPartitions) {
  Start();
  auto client = Client();
  CreateTopic(*client, "t", 1);
  ASSERT_EQ(Commit(*client, CommitRequest("hosted", -1, "", "t", 0, 41)), 0);
  const int32_t partition =
      group::OffsetsPartitionFor("hosted", coordinator().offsets_topic_partitions());
  // A group in another partition.
  std::string other;
  for (int i = 0; other.empty(); ++i) {
    std::string candidate = absl::StrCat("other-", i);
    if (group::OffsetsPartitionFor(candidate, coordinator().offsets_topic_partitions()) !=
        partition) {
      other = candidate;
    }
  }
  ASSERT_EQ(Commit(*client, CommitRequest(other, -1, "", "t", 0, 9)), 0);

  coordinator().Resign(partition);
  auto fetched = world_.Call<protocol::OffsetFetchResponse>(
      *client, FetchOffsetsRequest("hosted", std::nullopt), 5);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->error_code, Wire(ErrorCode::kNotCoordinator));
  auto join = world_.Call<protocol::JoinGroupResponse>(*client, JoinRequest("hosted", ""), 5);
  EXPECT_EQ(join->error_code, Wire(ErrorCode::kNotCoordinator));
  auto found = world_.Call<protocol::FindCoordinatorResponse>(
      *client, protocol::FindCoordinatorRequest{.key = "hosted", .key_type = 0}, 2);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->error_code, Wire(ErrorCode::kCoordinatorNotAvailable));
  EXPECT_EQ(Committed(*client, other, "t", 0), 9);

  storage::PartitionLog* log = world_.node().topics().Find(group::kOffsetsTopic, partition);
  ASSERT_NE(log, nullptr);
  coordinator().Elect(partition, *log, 0);
  const group::RequestContext context{.api_version = 5, .client_id = "direct", .client_host = "h"};
  protocol::OffsetFetchRequest request = FetchOffsetsRequest("hosted", std::nullopt);
  EXPECT_EQ(coordinator().OffsetFetch(context, request).error_code,
            Wire(ErrorCode::kCoordinatorLoadInProgress));
  EXPECT_EQ(coordinator().Heartbeat(context, HeartbeatRequest("hosted", 1, "m")).error_code,
            Wire(ErrorCode::kCoordinatorLoadInProgress));
  EXPECT_TRUE(coordinator().IsLoading(partition));
  ASSERT_TRUE(WaitLoaded());
  EXPECT_EQ(Committed(*client, "hosted", "t", 0), 41);
}

// FindCoordinator: a group key names this node at its advertised address (v0-v2); a transactional
// key is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (no transactions), an unknown key type
// with INVALID_REQUEST.
TEST_F(GroupCoordinatorTest, FindCoordinator) {
  Start();
  auto client = Client();
  for (int16_t version = 0; version <= 2; ++version) {
    auto found = world_.Call<protocol::FindCoordinatorResponse>(
        *client, protocol::FindCoordinatorRequest{.key = "any-group", .key_type = 0}, version);
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->error_code, 0);
    EXPECT_EQ(found->node_id, world_.broker_id());
    EXPECT_EQ(found->host, kBrokerHost);
    EXPECT_EQ(found->port, kBrokerPort);
  }
  auto transactional = world_.Call<protocol::FindCoordinatorResponse>(
      *client, protocol::FindCoordinatorRequest{.key = "txn", .key_type = 1}, 2);
  ASSERT_TRUE(transactional.has_value());
  EXPECT_EQ(transactional->error_code, Wire(ErrorCode::kTransactionalIdAuthorizationFailed));
  EXPECT_TRUE(transactional->error_message.has_value());
  auto unknown = world_.Call<protocol::FindCoordinatorResponse>(
      *client, protocol::FindCoordinatorRequest{.key = "x", .key_type = 7}, 2);
  EXPECT_EQ(unknown->error_code, Wire(ErrorCode::kInvalidRequest));
}

// __consumer_offsets is created by the node with the configured partition count, compacted;
// Metadata reports it with is_internal; clients may neither produce to it nor delete it
// (INVALID_TOPIC_EXCEPTION, as Kafka answers a produce to an internal topic).
TEST_F(GroupCoordinatorTest, OffsetsTopicIsInternalAndProtected) {
  Start();
  auto client = Client();
  const TopicInfo* info = world_.node().topics().image().FindTopic(group::kOffsetsTopic);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->partition_count(), 4);
  auto config = world_.node().topics().TopicLogConfig(group::kOffsetsTopic);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->cleanup_policy, storage::CleanupPolicy::kCompact);
  protocol::MetadataRequest metadata;
  metadata.topics.emplace();
  metadata.topics->push_back({group::kOffsetsTopic});
  auto described = world_.Call<protocol::MetadataResponse>(*client, metadata, 5);
  ASSERT_TRUE(described.has_value());
  ASSERT_EQ(described->topics.size(), 1u);
  EXPECT_EQ(described->topics[0].error_code, 0);
  EXPECT_TRUE(described->topics[0].is_internal);

  storage::Record record;
  record.key = "k";
  record.value = "v";
  storage::BatchBuildOptions options;
  absl::StatusOr<std::string> batch = storage::BuildBatch(options, {record});
  ASSERT_TRUE(batch.ok());
  protocol::ProduceRequest produce;
  produce.acks = -1;
  produce.timeout_ms = 1000;
  produce.topic_data.push_back(
      {.name = group::kOffsetsTopic, .partition_data = {{.index = 0, .records = *batch}}});
  auto produced = world_.Call<protocol::ProduceResponse>(*client, produce, 7);
  ASSERT_TRUE(produced.has_value());
  EXPECT_EQ(produced->responses[0].partition_responses[0].error_code,
            Wire(ErrorCode::kInvalidTopicException));
  protocol::DeleteTopicsRequest deletion;
  deletion.topic_names = {group::kOffsetsTopic};
  deletion.timeout_ms = 1000;
  auto deleted = world_.Call<protocol::DeleteTopicsResponse>(*client, deletion, 3);
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->responses[0].error_code, Wire(ErrorCode::kInvalidTopicException));
  world_.RunFor(100'000);
  EXPECT_NE(world_.node().topics().image().FindTopic(group::kOffsetsTopic), nullptr);
}

}  // namespace
}  // namespace runnel::server

namespace runnel::server {
namespace {

// The `groups` message of the config file: defaults when absent (Kafka's), values when set, and a
// value out of range refused with the field's path, as every other config field.
TEST(GroupSettingsTest, ConfigFileSetsAndChecksGroupSettings) {
  absl::StatusOr<ParsedBrokerConfig> parsed = ParseBrokerConfigText("listen: \"h:1\"\n", "a.cfg");
  ASSERT_TRUE(parsed.ok());
  absl::StatusOr<BrokerSettings> settings = ResolveBrokerConfig(parsed->config);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->groups.offsets_topic_num_partitions, 8);
  EXPECT_EQ(settings->groups.group_initial_rebalance_delay_ms, 3000);
  EXPECT_EQ(settings->groups.group_min_session_timeout_ms, 6000);
  EXPECT_EQ(settings->groups.group_max_session_timeout_ms, 1'800'000);
  EXPECT_EQ(settings->groups.offsets_retention_minutes, 10080);
  EXPECT_EQ(settings->groups.offset_metadata_max_bytes, 4096);

  parsed = ParseBrokerConfigText(
      "listen: \"h:1\"\ngroups { group_initial_rebalance_delay_ms: 0 group_max_size: 5\n"
      "offsets_topic_num_partitions: 3 offset_metadata_max_bytes: 10 }\n",
      "b.cfg");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->field_lines.at("groups.group_max_size"), 2);
  settings = ResolveBrokerConfig(parsed->config);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->groups.group_initial_rebalance_delay_ms, 0);
  EXPECT_EQ(settings->groups.group_max_size, 5);
  EXPECT_EQ(settings->groups.offsets_topic_num_partitions, 3);
  EXPECT_EQ(settings->groups.offset_metadata_max_bytes, 10);
  EXPECT_TRUE(settings->static_configs.contains("group.max.size"));

  for (const auto& [text, field] : std::vector<std::pair<std::string, std::string>>{
           {"groups { group_max_size: 0 }", "groups.group_max_size"},
           {"groups { offsets_topic_num_partitions: 0 }", "groups.offsets_topic_num_partitions"},
           {"groups { group_initial_rebalance_delay_ms: -1 }",
            "groups.group_initial_rebalance_delay_ms"},
           {"groups { group_min_session_timeout_ms: 9000 group_max_session_timeout_ms: 8000 }",
            "groups.group_max_session_timeout_ms"},
           {"groups { offsets_retention_minutes: 0 }", "groups.offsets_retention_minutes"},
       }) {
    parsed = ParseBrokerConfigText(absl::StrCat("listen: \"h:1\"\n", text), "c.cfg");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    std::string error_field;
    settings = ResolveBrokerConfig(parsed->config, &error_field);
    ASSERT_FALSE(settings.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(settings.status()));
    EXPECT_EQ(error_field, field);
    EXPECT_THAT(std::string(settings.status().message()), ::testing::StartsWith(field + ": "));
  }
}

}  // namespace
}  // namespace runnel::server

namespace runnel::server {
namespace {

class GroupExpiryTest : public GroupCoordinatorTest {};

// Offsets expire after offsets_retention_minutes (here 1) once a group is Empty (Kafka 2.1+): the
// check runs every 10 minutes; an Empty consumer group loses its offsets and is deleted, a group of
// simple commits loses offsets older than the retention, and a group with a live member keeps its
// offsets. The tombstones are durable: after a restart the expired offsets stay gone.
TEST_F(GroupExpiryTest, OffsetsExpireOnlyOnceTheGroupIsEmpty) {
  world_.config().mutable_groups()->set_offsets_retention_minutes(1);
  Start();
  auto client = Client();
  CreateTopic(*client, "t", 1);
  Joined active = JoinAlone(*client, "active");
  ASSERT_EQ(
      Commit(*client, CommitRequest("active", active.generation, active.member_id, "t", 0, 1)), 0);
  auto other = Client();
  Joined leaving = JoinAlone(*other, "emptied");
  ASSERT_EQ(
      Commit(*other, CommitRequest("emptied", leaving.generation, leaving.member_id, "t", 0, 2)),
      0);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "emptied";
  leave.member_id = leaving.member_id;
  ASSERT_TRUE(world_.Call<protocol::LeaveGroupResponse>(*other, leave, 1));
  ASSERT_EQ(Commit(*client, CommitRequest("simple", -1, "", "t", 0, 3)), 0);

  // Eleven minutes, with the active member heartbeating every 3 s.
  const uint64_t expired_before = coordinator().stats().offsets_expired;
  for (int i = 0; i < 11 * 20; ++i) {
    world_.RunFor(3'000'000);
    ASSERT_EQ(Heartbeat(*client, "active", active), 0);
  }
  EXPECT_EQ(coordinator().stats().offsets_expired, expired_before + 2);
  EXPECT_EQ(Committed(*client, "active", "t", 0), 1);
  EXPECT_EQ(Committed(*client, "emptied", "t", 0), -1);
  EXPECT_EQ(Committed(*client, "simple", "t", 0), -1);
  EXPECT_FALSE(coordinator().ViewGroup("emptied").has_value());
  auto described = Describe(*client, "emptied");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->group_state, "Dead");

  client.reset();
  other.reset();
  world_.Restart(sim::CrashKind::kPowerLoss);
  ASSERT_TRUE(WaitLoaded());
  client = Client();
  EXPECT_EQ(Committed(*client, "active", "t", 0), 1);
  EXPECT_EQ(Committed(*client, "emptied", "t", 0), -1);
  EXPECT_EQ(Committed(*client, "simple", "t", 0), -1);
  EXPECT_FALSE(coordinator().ViewGroup("emptied").has_value());
}

}  // namespace
}  // namespace runnel::server

namespace runnel::server {
namespace {

class GroupRebalanceTest : public GroupCoordinatorTest {};

// A member joining while a follower waits in SyncGroup for its leader ends that generation: the
// waiting follower is answered REBALANCE_IN_PROGRESS, so is the leader's late SyncGroup, and
// everyone meets again in the next generation.
TEST_F(GroupRebalanceTest, JoinDuringSyncAnswersWaitingFollowers) {
  Start();
  auto a = Client();
  auto b = Client();
  auto c = Client();
  std::string id_a, id_b, id_c;
  Joined first = Finish(*a, StartJoin(*a, "g", &id_a));
  int32_t join_b = StartJoin(*b, "g", &id_b);
  ASSERT_TRUE(WaitState("g", GroupState::kPreparingRebalance));
  Joined ja = Finish(*a, SendJoin(*a, JoinRequest("g", id_a)));
  Joined jb = Finish(*b, join_b);
  ASSERT_EQ(ja.generation, first.generation + 1);
  ASSERT_EQ(coordinator().ViewGroup("g")->state, GroupState::kCompletingRebalance);
  TestClient& leader = ja.leader == id_a ? *a : *b;
  TestClient& follower = ja.leader == id_a ? *b : *a;
  const std::string follower_id = ja.leader == id_a ? id_b : id_a;
  const int32_t waiting = follower.Send(SyncRequest("g", ja.generation, follower_id), 3);
  world_.RunFor(50'000);
  ASSERT_FALSE(follower.Has(waiting));

  int32_t join_c = StartJoin(*c, "g", &id_c);
  world_.RunUntil([&] { return follower.Has(waiting); });
  ASSERT_TRUE(follower.Has(waiting));
  EXPECT_EQ(std::get<protocol::SyncGroupResponse>(follower.Take(waiting).body).error_code,
            Wire(ErrorCode::kRebalanceInProgress));
  auto late = world_.Call<protocol::SyncGroupResponse>(
      leader, SyncRequest("g", ja.generation, ja.leader, {{id_a, "x"}, {id_b, "y"}}), 3);
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->error_code, Wire(ErrorCode::kRebalanceInProgress));

  int32_t rejoin_a = SendJoin(*a, JoinRequest("g", id_a));
  int32_t rejoin_b = SendJoin(*b, JoinRequest("g", id_b));
  Joined na = Finish(*a, rejoin_a);
  Joined nb = Finish(*b, rejoin_b);
  Joined nc = Finish(*c, join_c);
  EXPECT_EQ(na.generation, ja.generation + 1);
  EXPECT_EQ(nb.generation, na.generation);
  EXPECT_EQ(nc.generation, na.generation);
  EXPECT_EQ(jb.generation, ja.generation);
}

// A clean shutdown answers the requests waiting in the coordinator (a JoinGroup waiting for the
// rebalance) with NOT_COORDINATOR, so that clients look for the coordinator again.
TEST_F(GroupRebalanceTest, CleanShutdownAnswersWaitingJoins) {
  Start();
  auto a = Client();
  auto b = Client();
  std::string id_a, id_b;
  Finish(*a, StartJoin(*a, "g", &id_a));
  int32_t join_b = StartJoin(*b, "g", &id_b);
  ASSERT_TRUE(WaitState("g", GroupState::kPreparingRebalance));
  world_.RunFor(100'000);
  ASSERT_FALSE(b->Has(join_b));
  std::optional<absl::Status> shut;
  world_.node().Shutdown([&](const absl::Status& status) { shut = status; });
  ASSERT_TRUE(world_.RunUntil([&] { return shut.has_value() && b->Has(join_b); }));
  EXPECT_TRUE(shut->ok()) << *shut;
  auto response = std::get<protocol::JoinGroupResponse>(b->Take(join_b).body);
  EXPECT_EQ(response.error_code, Wire(ErrorCode::kNotCoordinator));
}

}  // namespace
}  // namespace runnel::server
