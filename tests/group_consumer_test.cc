// The client's GroupConsumer (broker/client/group_consumer.h) against a real BrokerNode and its
// group coordinator in the simulator. Each member runs on its own simulated node, so that a
// member "crash" is its node crashing (no LeaveGroup, no commit) and a member cut off from the
// broker is a network partition. What the members deliver, are assigned, give up and commit is
// recorded outside the nodes, so it survives their crashes and the checks can look at all of it.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/client/admin_client.h"
#include "broker/client/group_consumer.h"
#include "broker/client/kafka_error.h"
#include "broker/client/producer.h"
#include "broker/server/broker_node.h"
#include "gtest/gtest.h"
#include "sim/broker_program.h"
#include "sim/simulator.h"

namespace runnel::client {
namespace {

using protocol::ErrorCode;
using sim::CrashKind;

constexpr uint16_t kBrokerPort = 9092;
constexpr int64_t kMsUs = 1'000;
constexpr int64_t kSecondUs = 1'000'000;
constexpr int32_t kSessionTimeoutMs = 3'000;
constexpr int32_t kHeartbeatIntervalMs = 500;
constexpr int32_t kRebalanceTimeoutMs = 5'000;
constexpr char kTopic[] = "events";
constexpr char kGroup[] = "readers";

// Everything one member slot saw, over every incarnation of its node.
struct MemberLog {
  // (generation, partitions) per on_partitions_assigned.
  std::vector<std::pair<int32_t, std::vector<TopicPartition>>> assignments;
  std::vector<std::vector<TopicPartition>> revocations;
  std::vector<std::vector<TopicPartition>> losses;
  std::vector<absl::Status> errors;
  std::vector<CommitOutcome> commits;
  std::map<TopicPartition, std::vector<int64_t>> delivered;
  // Partitions owned now, by the callbacks: checks that delivery happens only while owned.
  std::set<TopicPartition> owned;
  int deliveries_while_not_owned = 0;
  int64_t last_assignment_us = -1;
};

// How a member is configured (copyable, so that a node's program can rebuild it at restart).
struct MemberSpec {
  std::optional<std::string> instance_id;
  bool auto_commit = true;
  OffsetReset reset = OffsetReset::kEarliest;
  std::vector<std::string> assignors = {"range", "roundrobin"};
  // 0: the client's default.
  int64_t metadata_max_age_ms = 0;
  // Commit the positions of the partitions given up, from inside on_partitions_revoked (the usual
  // pattern with manual commits).
  bool commit_on_revoke = false;
};

struct MemberProgram {
  std::unique_ptr<GroupConsumer> consumer;
};

// Each test runs under several simulator seeds (network delays, backoff jitter and member ids
// differ), since the order in which members join and commits race with rebalances depends on them.
class GroupConsumerSimTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  GroupConsumerSimTest() : simulator_(sim::SimulatorOptions{.seed = GetParam()}) {
    server::BrokerSettings settings;
    settings.listen = NetworkAddress{"broker", kBrokerPort};
    settings.defaults.auto_create_topics_enable = false;
    // As the tests with real clients do: no wait for more members before the first rebalance, and
    // session timeouts short enough for tests.
    settings.groups.group_initial_rebalance_delay_ms = 0;
    settings.groups.group_min_session_timeout_ms = 1'000;
    settings.groups.offsets_topic_num_partitions = 4;
    broker_node_ = simulator_.AddNode({.name = "broker"}, sim::BrokerNodeProgram(settings));
    driver_node_ = simulator_.AddNode({.name = "driver"}, [](Env&) {
      return std::make_shared<int>(0);
    });
    simulator_.StartNode(broker_node_);
    ExpectBrokerStarted();
    simulator_.StartNode(driver_node_);
  }

  // Every start of the broker node must build its BrokerNode.
  void ExpectBrokerStarted() {
    auto* program =
        static_cast<sim::BrokerProgram*>(simulator_.NodeProgramObject(broker_node_).get());
    ASSERT_NE(program, nullptr);
    EXPECT_NE(program->node, nullptr) << program->status;
  }

  ClientOptions Options() {
    ClientOptions options;
    options.bootstrap_servers = {NetworkAddress{"broker", kBrokerPort}};
    options.request_timeout_ms = 2'000;
    options.connection_setup_timeout_ms = 2'000;
    return options;
  }

  bool RunUntil(const std::function<bool()>& done, int64_t timeout_us = 60 * kSecondUs) {
    return simulator_.RunUntilCondition(done, simulator_.NowUs() + timeout_us);
  }
  void RunFor(int64_t duration_us) { simulator_.RunFor(duration_us); }
  int64_t NowUs() const { return simulator_.NowUs(); }

  Env& driver() { return *simulator_.NodeEnv(driver_node_); }

  void CreateTopic(const std::string& name, int32_t partitions) {
    AdminOptions options;
    options.client = Options();
    std::unique_ptr<AdminClient> admin = *AdminClient::Create(driver(), options);
    std::optional<absl::Status> result;
    admin->CreateTopic(NewTopic{name, partitions, 1, {}}, {},
                       [&](const absl::Status& status) { result = status; });
    ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
    ASSERT_TRUE(result->ok()) << *result;
  }

  // Produces `count` keyed records (acks=all) and waits for every acknowledgement.
  void Produce(int count) {
    ProducerOptions options;
    options.client = Options();
    options.linger_ms = 0;
    std::unique_ptr<Producer> producer = *Producer::Create(driver(), std::move(options));
    int acked = 0;
    for (int i = 0; i < count; ++i) {
      ProducerRecord record;
      record.topic = kTopic;
      record.key = absl::StrCat("key-", produced_);
      record.value = absl::StrCat("value-", produced_);
      ++produced_;
      ASSERT_TRUE(producer->Send(std::move(record), [&](absl::StatusOr<RecordMetadata> result) {
        ASSERT_TRUE(result.ok()) << result.status();
        int64_t& end = end_offsets_[result->partition];
        end = std::max(end, result->offset + 1);
        ++acked;
      }).ok());
    }
    ASSERT_TRUE(RunUntil([&] { return acked == count; }));
  }

  // Adds a member node (not started).
  size_t AddMember(MemberSpec spec) {
    const size_t index = logs_.size();
    logs_.push_back(std::make_unique<MemberLog>());
    MemberLog* log = logs_.back().get();
    std::map<TopicPartition, std::vector<int64_t>>* consumed = &consumed_;
    const ClientOptions client = Options();
    const NodeId node = simulator_.AddNode(
        {.name = absl::StrCat("member-", index)},
        [this, spec, log, consumed, client](Env& env) -> std::shared_ptr<void> {
          auto program = std::make_shared<MemberProgram>();
          GroupConsumerOptions options;
          options.consumer.client = client;
          options.consumer.client.client_id = "member";
          if (spec.metadata_max_age_ms > 0) {
            options.consumer.client.metadata_max_age_ms = spec.metadata_max_age_ms;
          }
          options.consumer.fetch_max_wait_ms = 200;
          options.group_id = kGroup;
          options.group_instance_id = spec.instance_id;
          options.topics = {kTopic};
          options.session_timeout_ms = kSessionTimeoutMs;
          options.heartbeat_interval_ms = kHeartbeatIntervalMs;
          options.rebalance_timeout_ms = kRebalanceTimeoutMs;
          options.assignors = spec.assignors;
          options.enable_auto_commit = spec.auto_commit;
          options.auto_commit_interval_ms = 1'000;
          options.auto_offset_reset = spec.reset;
          options.on_records = [log, consumed](FetchedRecords fetched) {
            if (!log->owned.contains(fetched.partition)) ++log->deliveries_while_not_owned;
            for (const ConsumerRecord& record : fetched.records) {
              log->delivered[fetched.partition].push_back(record.offset);
              (*consumed)[fetched.partition].push_back(record.offset);
            }
          };
          MemberProgram* raw = program.get();
          options.on_partitions_assigned = [this, log, raw](const std::vector<TopicPartition>& p) {
            log->assignments.emplace_back(raw->consumer->generation_id(), p);
            log->owned.insert(p.begin(), p.end());
            log->last_assignment_us = simulator_.NowUs();
          };
          options.on_partitions_revoked = [log, raw, spec](const std::vector<TopicPartition>& p) {
            log->revocations.push_back(p);
            for (const TopicPartition& partition : p) log->owned.erase(partition);
            if (spec.commit_on_revoke) raw->consumer->CommitPosition(nullptr);
          };
          options.on_partitions_lost = [log](const std::vector<TopicPartition>& p) {
            log->losses.push_back(p);
            for (const TopicPartition& partition : p) log->owned.erase(partition);
          };
          options.on_error = [log](const absl::Status& error) { log->errors.push_back(error); };
          options.on_commit_completed = [log](const CommitOutcome& outcome) {
            log->commits.push_back(outcome);
          };
          absl::StatusOr<std::unique_ptr<GroupConsumer>> consumer =
              GroupConsumer::Create(env, std::move(options));
          EXPECT_TRUE(consumer.ok()) << consumer.status();
          if (consumer.ok()) program->consumer = *std::move(consumer);
          // A new incarnation owns nothing yet.
          log->owned.clear();
          return program;
        });
    member_nodes_.push_back(node);
    return index;
  }

  GroupConsumer* member(size_t index) {
    auto* program =
        static_cast<MemberProgram*>(simulator_.NodeProgramObject(member_nodes_[index]).get());
    return program == nullptr ? nullptr : program->consumer.get();
  }
  MemberLog& log(size_t index) { return *logs_[index]; }

  // Whether the given members are all stable in one generation and own every partition of the
  // topic between them, each exactly once.
  bool GroupSettled(const std::vector<size_t>& members, int32_t partitions) {
    std::optional<int32_t> generation;
    std::map<TopicPartition, int> owners;
    for (size_t index : members) {
      GroupConsumer* consumer = member(index);
      if (consumer == nullptr || consumer->state() != GroupConsumer::State::kStable) return false;
      if (generation.has_value() && *generation != consumer->generation_id()) return false;
      generation = consumer->generation_id();
      for (const TopicPartition& partition : consumer->assignment()) ++owners[partition];
    }
    if (static_cast<int32_t>(owners.size()) != partitions) return false;
    for (const auto& [partition, count] : owners) {
      if (count != 1) return false;
    }
    return true;
  }

  // Whether every produced record has been delivered at least once.
  bool AllConsumed() const {
    for (const auto& [partition, end] : end_offsets_) {
      auto it = consumed_.find(partition);
      if (it == consumed_.end()) return false;
      std::set<int64_t> seen(it->second.begin(), it->second.end());
      for (int64_t offset = 0; offset < end; ++offset) {
        if (!seen.contains(offset)) return false;
      }
    }
    return true;
  }

  // Offsets delivered more than once, per partition.
  std::map<TopicPartition, std::set<int64_t>> Duplicates() const {
    std::map<TopicPartition, std::set<int64_t>> duplicates;
    for (const auto& [partition, offsets] : consumed_) {
      std::set<int64_t> seen;
      for (int64_t offset : offsets) {
        if (!seen.insert(offset).second) duplicates[partition].insert(offset);
      }
    }
    return duplicates;
  }

  // The group's committed offsets of partitions 0..partitions-1, through a live member's
  // Committed() (OffsetFetch).
  std::map<TopicPartition, std::optional<OffsetAndMetadata>> CommittedVia(size_t index,
                                                                          int32_t partitions) {
    std::vector<TopicPartition> all;
    for (int32_t p = 0; p < partitions; ++p) all.push_back({kTopic, p});
    std::optional<absl::StatusOr<std::map<TopicPartition, std::optional<OffsetAndMetadata>>>>
        result;
    member(index)->Committed(all, [&](auto committed) { result = std::move(committed); });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }));
    EXPECT_TRUE(result.has_value() && result->ok());
    if (!result.has_value() || !result->ok()) return {};
    return **result;
  }

  void ExpectDeliveriesOnlyWhileOwned() {
    for (size_t i = 0; i < logs_.size(); ++i) {
      EXPECT_EQ(logs_[i]->deliveries_while_not_owned, 0) << "member " << i;
    }
  }

  sim::Simulator simulator_;
  NodeId broker_node_ = 0;
  NodeId driver_node_ = 0;
  std::vector<NodeId> member_nodes_;
  std::vector<std::unique_ptr<MemberLog>> logs_;
  std::map<TopicPartition, std::vector<int64_t>> consumed_;
  std::map<TopicPartition, int64_t> end_offsets_;
  int produced_ = 0;
};

// Three members share six partitions: they settle into one generation in which each partition is
// owned by exactly one of them (range: two each), one of them led, and every record, produced
// before and while they joined and after they settled, is delivered exactly once: the rebalances
// while members arrive commit what was delivered before handing partitions over.
TEST_P(GroupConsumerSimTest, ThreeMembersShareThePartitionsAndReadEachRecordOnce) {
  CreateTopic(kTopic, 6);
  Produce(60);
  for (int i = 0; i < 3; ++i) AddMember({});
  simulator_.StartNode(member_nodes_[0]);
  RunFor(2 * kSecondUs);
  simulator_.StartNode(member_nodes_[1]);
  Produce(30);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 6); }));
  Produce(30);
  simulator_.StartNode(member_nodes_[2]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1, 2}, 6); }));
  int leaders = 0;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(member(i)->assignment().size(), 2u) << i;
    leaders += member(i)->is_leader() ? 1 : 0;
  }
  EXPECT_EQ(leaders, 1);
  Produce(90);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  RunFor(2 * kSecondUs);
  EXPECT_TRUE(Duplicates().empty());
  ExpectDeliveriesOnlyWhileOwned();
  // The first member went through at least two rebalances (each newcomer), revoking before each.
  EXPECT_GE(member(0)->stats().rebalances, 2u);
  EXPECT_GE(log(0).revocations.size(), 2u);
  EXPECT_TRUE(log(0).losses.empty());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_GT(member(i)->stats().heartbeats_sent, 0u);
    EXPECT_TRUE(log(i).errors.empty()) << log(i).errors.front();
  }
  // Auto-commit caught up with what was delivered.
  RunFor(2 * kSecondUs);
  std::map<TopicPartition, std::optional<OffsetAndMetadata>> committed = CommittedVia(0, 6);
  for (const auto& [partition, end] : end_offsets_) {
    ASSERT_TRUE(committed[partition].has_value()) << partition.ToString();
    EXPECT_EQ(committed[partition]->offset, end) << partition.ToString();
  }
}

// A member that closes commits what it delivered and leaves at once: the others rebalance without
// waiting for its session to expire, take over its partitions from the committed offsets, and so
// read every record exactly once across the change.
TEST_P(GroupConsumerSimTest, MemberLeavingHandsItsPartitionsOverFromCommittedOffsets) {
  CreateTopic(kTopic, 6);
  for (int i = 0; i < 3; ++i) AddMember({});
  for (int i = 0; i < 3; ++i) simulator_.StartNode(member_nodes_[i]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1, 2}, 6); }));
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  const std::vector<TopicPartition> leaving_partitions = member(2)->assignment();
  bool closed = false;
  const int64_t close_us = NowUs();
  member(2)->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed; }));
  EXPECT_EQ(member(2)->state(), GroupConsumer::State::kClosed);
  EXPECT_EQ(log(2).revocations.back(), leaving_partitions);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 6); }));
  // Well within a session timeout: the LeaveGroup, not the coordinator's timer, started it.
  EXPECT_LT(NowUs() - close_us, kSessionTimeoutMs * kMsUs);
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  RunFor(kSecondUs);
  EXPECT_TRUE(Duplicates().empty());
  ExpectDeliveriesOnlyWhileOwned();
  // The last commit of the leaving member covered what it delivered.
  ASSERT_FALSE(log(2).commits.empty());
  EXPECT_TRUE(log(2).commits.back().status.ok()) << log(2).commits.back().status;
}

// A member whose node crashes neither commits nor leaves: the coordinator notices when its session
// times out (not before), and the others take over. Records are delivered at least once; the only
// repeats are of the crashed member's partitions after its last commit.
TEST_P(GroupConsumerSimTest, CrashedMemberIsRemovedAfterItsSessionTimeout) {
  CreateTopic(kTopic, 6);
  for (int i = 0; i < 3; ++i) AddMember({});
  for (int i = 0; i < 3; ++i) simulator_.StartNode(member_nodes_[i]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1, 2}, 6); }));
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  // Deliveries after the last auto-commit are not committed when the node dies.
  Produce(12);
  RunFor(300 * kMsUs);
  const std::vector<TopicPartition> crashed_partitions = member(1)->assignment();
  const uint64_t rebalances_before = member(0)->stats().rebalances;
  const int64_t crash_us = NowUs();
  simulator_.CrashNode(member_nodes_[1], CrashKind::kProcess);
  ASSERT_TRUE(RunUntil([&] { return member(0)->stats().rebalances > rebalances_before; }));
  const int64_t detected_us = NowUs() - crash_us;
  EXPECT_GE(detected_us, (kSessionTimeoutMs - kHeartbeatIntervalMs) * kMsUs);
  EXPECT_LE(detected_us, (kSessionTimeoutMs + 2 * kHeartbeatIntervalMs) * kMsUs);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 2}, 6); }));
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  for (const auto& [partition, offsets] : Duplicates()) {
    EXPECT_TRUE(std::find(crashed_partitions.begin(), crashed_partitions.end(), partition) !=
                crashed_partitions.end())
        << partition.ToString() << " was read twice but was not the crashed member's";
  }
  ExpectDeliveriesOnlyWhileOwned();
}

// A static member (group_instance_id) whose process restarts within the session timeout takes its
// old place: the coordinator hands it the same partitions in the same generation, and the other
// members see no rebalance at all.
TEST_P(GroupConsumerSimTest, StaticMemberRestartDoesNotRebalance) {
  CreateTopic(kTopic, 6);
  for (int i = 0; i < 3; ++i) AddMember({.instance_id = absl::StrCat("instance-", i)});
  for (int i = 0; i < 3; ++i) simulator_.StartNode(member_nodes_[i]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1, 2}, 6); }));
  Produce(30);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  // Restart a member that does not lead (a restarted leader may make the coordinator rebalance).
  size_t restarted = 0;
  while (member(restarted)->is_leader()) ++restarted;
  const int32_t generation = member(restarted)->generation_id();
  const std::vector<TopicPartition> partitions = member(restarted)->assignment();
  const std::string old_member_id = member(restarted)->member_id();
  std::vector<uint64_t> rebalances_before;
  for (size_t i = 0; i < 3; ++i) rebalances_before.push_back(member(i)->stats().rebalances);

  simulator_.CrashNode(member_nodes_[restarted], CrashKind::kProcess);
  RunFor(kSessionTimeoutMs * kMsUs / 3);
  simulator_.StartNode(member_nodes_[restarted]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1, 2}, 6); }));
  EXPECT_EQ(member(restarted)->generation_id(), generation);
  EXPECT_EQ(member(restarted)->assignment(), partitions);
  EXPECT_NE(member(restarted)->member_id(), old_member_id);
  // Well past the old session: the coordinator did not expire the instance either.
  RunFor(2 * kSessionTimeoutMs * kMsUs);
  for (size_t i = 0; i < 3; ++i) {
    if (i == restarted) continue;
    EXPECT_EQ(member(i)->stats().rebalances, rebalances_before[i]) << i;
    EXPECT_EQ(member(i)->generation_id(), generation) << i;
  }
  Produce(30);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  ExpectDeliveriesOnlyWhileOwned();
  // Closing a static member does not leave the group: the others keep their generation.
  bool closed = false;
  member(restarted)->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed; }));
  RunFor(kSessionTimeoutMs * kMsUs / 2);
  for (size_t i = 0; i < 3; ++i) {
    if (i != restarted) {
      EXPECT_EQ(member(i)->generation_id(), generation) << i;
    }
  }
}

// Commits acknowledged before a broker crash (process crash, then power loss) are there after the
// restart: Committed() reads them back, and a member joining afterwards starts from them, reading
// none of the records before them again.
TEST_P(GroupConsumerSimTest, CommitsSurviveBrokerRestarts) {
  CreateTopic(kTopic, 2);
  Produce(40);
  AddMember({.auto_commit = false});
  simulator_.StartNode(member_nodes_[0]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0}, 2); }));
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  std::optional<absl::Status> committed;
  const std::map<TopicPartition, OffsetAndMetadata> offsets = {
      {{kTopic, 0}, {5, "first"}}, {{kTopic, 1}, {7, ""}}};
  member(0)->Commit(offsets, [&](const absl::Status& status) { committed = status; });
  ASSERT_TRUE(RunUntil([&] { return committed.has_value(); }));
  ASSERT_TRUE(committed->ok()) << *committed;
  EXPECT_EQ(member(0)->stats().commits_ok, 1u);

  for (CrashKind kind : {CrashKind::kProcess, CrashKind::kPowerLoss}) {
    simulator_.CrashNode(broker_node_, kind);
    RunFor(kSecondUs);
    simulator_.StartNode(broker_node_);
    ExpectBrokerStarted();
    std::map<TopicPartition, std::optional<OffsetAndMetadata>> after = CommittedVia(0, 2);
    const std::optional<OffsetAndMetadata>& first = after[TopicPartition{kTopic, 0}];
    const std::optional<OffsetAndMetadata>& second = after[TopicPartition{kTopic, 1}];
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, (OffsetAndMetadata{5, "first"}));
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->offset, 7);
  }
  // The member survives the coordinator's restarts (it finds it again and goes on).
  ASSERT_TRUE(RunUntil([&] { return member(0)->state() == GroupConsumer::State::kStable; }));

  bool closed = false;
  member(0)->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed; }));
  const size_t second = AddMember({.auto_commit = false});
  simulator_.StartNode(member_nodes_[second]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({second}, 2); }));
  const TopicPartition p0{kTopic, 0};
  const TopicPartition p1{kTopic, 1};
  ASSERT_TRUE(RunUntil([&] {
    return log(second).delivered[p0].size() + 5 == static_cast<size_t>(end_offsets_[p0]) &&
           log(second).delivered[p1].size() + 7 == static_cast<size_t>(end_offsets_[p1]);
  }));
  EXPECT_EQ(log(second).delivered[p0].front(), 5);
  EXPECT_EQ(log(second).delivered[p1].front(), 7);
}

// A member cut off from the broker for longer than its session is removed from the group while it
// still believes it owns its partitions. Its commit after the partition heals carries its old
// generation and is refused by the coordinator (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION), the
// committed offsets do not move, and the member then loses its partitions (without committing),
// rejoins and gets partitions again.
TEST_P(GroupConsumerSimTest, FencedMemberCannotCommit) {
  CreateTopic(kTopic, 4);
  Produce(40);
  AddMember({.auto_commit = false});
  AddMember({.auto_commit = false});
  simulator_.StartNode(member_nodes_[0]);
  simulator_.StartNode(member_nodes_[1]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 4); }));
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  const int32_t stale_generation = member(1)->generation_id();
  const std::vector<TopicPartition> stale_partitions = member(1)->assignment();
  ASSERT_FALSE(stale_partitions.empty());

  simulator_.network().Partition({member_nodes_[1]}, {broker_node_}, /*one_way=*/false);
  // The other member gets everything once the coordinator gives up on the cut-off one.
  ASSERT_TRUE(RunUntil([&] {
    return member(0)->state() == GroupConsumer::State::kStable &&
           member(0)->assignment().size() == 4 && member(0)->generation_id() > stale_generation;
  }));
  std::map<TopicPartition, std::optional<OffsetAndMetadata>> before = CommittedVia(0, 4);
  // The cut-off member still thinks it is in its old generation.
  EXPECT_EQ(member(1)->generation_id(), stale_generation);
  EXPECT_EQ(member(1)->assignment(), stale_partitions);

  simulator_.network().HealAll();
  std::optional<absl::Status> stale_commit;
  std::map<TopicPartition, OffsetAndMetadata> offsets;
  for (const TopicPartition& partition : stale_partitions) offsets[partition] = {1, "stale"};
  member(1)->Commit(offsets, [&](const absl::Status& status) { stale_commit = status; });
  ASSERT_TRUE(RunUntil([&] { return stale_commit.has_value(); }));
  ASSERT_FALSE(stale_commit->ok());
  const std::optional<ErrorCode> code = KafkaErrorCodeOf(*stale_commit);
  EXPECT_TRUE(code == ErrorCode::kUnknownMemberId || code == ErrorCode::kIllegalGeneration)
      << *stale_commit;
  ASSERT_FALSE(log(1).commits.empty());
  EXPECT_EQ(log(1).commits.back().generation_id, stale_generation);
  EXPECT_FALSE(log(1).commits.back().status.ok());
  EXPECT_EQ(CommittedVia(0, 4), before);

  // The member lost its partitions (never "revoked": it could not commit them) and came back.
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 4); }));
  EXPECT_GE(member(1)->stats().generations_lost, 1u);
  ASSERT_FALSE(log(1).losses.empty());
  EXPECT_EQ(log(1).losses.front(), stale_partitions);
  EXPECT_GT(member(1)->generation_id(), stale_generation);
  ExpectDeliveriesOnlyWhileOwned();
}

// Without auto-commit, a member that commits its positions inside on_partitions_revoked hands its
// partitions over exactly: that commit goes out (with the old generation) before the member
// rejoins, so the coordinator accepts it and the next owner starts after the last record read.
TEST_P(GroupConsumerSimTest, CommitInRevocationCallbackHandsOverExactly) {
  CreateTopic(kTopic, 6);
  for (int i = 0; i < 3; ++i) AddMember({.auto_commit = false, .commit_on_revoke = true});
  simulator_.StartNode(member_nodes_[0]);
  simulator_.StartNode(member_nodes_[1]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 6); }));
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  simulator_.StartNode(member_nodes_[2]);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1, 2}, 6); }));
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  bool closed = false;
  member(0)->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed && GroupSettled({1, 2}, 6); }));
  Produce(60);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  EXPECT_TRUE(Duplicates().empty());
  for (size_t i = 0; i < 3; ++i) {
    for (const CommitOutcome& commit : log(i).commits) {
      EXPECT_TRUE(commit.status.ok()) << "member " << i << ": " << commit.status;
    }
  }
  ExpectDeliveriesOnlyWhileOwned();
}

// Members may subscribe to a topic before it exists: they form a generation with nothing to
// read, and once the topic is created the leader's next metadata refresh shows partitions where
// it assigned none, so it starts a rebalance that hands them out (roundrobin here: 2 each).
TEST_P(GroupConsumerSimTest, TopicCreatedLaterIsAssignedOnceTheLeaderNotices) {
  for (int i = 0; i < 2; ++i) {
    AddMember({.assignors = {"roundrobin"}, .metadata_max_age_ms = 1'000});
    simulator_.StartNode(member_nodes_[i]);
  }
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 0); }));
  const int32_t empty_generation = member(0)->generation_id();
  CreateTopic(kTopic, 4);
  Produce(40);
  ASSERT_TRUE(RunUntil([&] { return GroupSettled({0, 1}, 4); }, 10 * kSecondUs));
  EXPECT_GT(member(0)->generation_id(), empty_generation);
  EXPECT_EQ(member(0)->assignment().size(), 2u);
  ASSERT_TRUE(RunUntil([&] { return AllConsumed(); }));
  EXPECT_TRUE(Duplicates().empty());
}

// Bad options are refused with the field's name; a commit outside any generation fails at once
// with REBALANCE_IN_PROGRESS; Committed on nothing answers nothing.
TEST_P(GroupConsumerSimTest, ValidatesOptionsAndRefusesCommitsOutsideAGeneration) {
  GroupConsumerOptions options;
  options.consumer.client = Options();
  options.on_records = [](FetchedRecords) {};
  EXPECT_TRUE(absl::StrContains(GroupConsumer::Create(driver(), GroupConsumerOptions{})
                                    .status()
                                    .message(),
                                "group_id"));
  options.group_id = kGroup;
  EXPECT_TRUE(absl::StrContains(
      GroupConsumer::Create(driver(), std::move(options)).status().message(), "topics"));
  auto make = [&](auto change) {
    GroupConsumerOptions o;
    o.consumer.client = Options();
    o.on_records = [](FetchedRecords) {};
    o.group_id = kGroup;
    o.topics = {kTopic};
    change(o);
    return GroupConsumer::Create(driver(), std::move(o)).status();
  };
  EXPECT_TRUE(absl::StrContains(make([](GroupConsumerOptions& o) { o.assignors = {"sticky"}; }).message(),
                                "assignors"));
  EXPECT_TRUE(absl::StrContains(
      make([](GroupConsumerOptions& o) { o.heartbeat_interval_ms = o.session_timeout_ms; }).message(),
      "heartbeat_interval_ms"));
  EXPECT_TRUE(absl::StrContains(
      make([](GroupConsumerOptions& o) { o.topics = {kTopic, kTopic}; }).message(), "topics"));
  EXPECT_TRUE(make([](GroupConsumerOptions&) {}).ok());

  CreateTopic(kTopic, 1);
  GroupConsumerOptions good;
  good.consumer.client = Options();
  good.on_records = [](FetchedRecords) {};
  good.group_id = kGroup;
  good.topics = {kTopic};
  std::unique_ptr<GroupConsumer> consumer = *GroupConsumer::Create(driver(), std::move(good));
  std::optional<absl::Status> early;
  consumer->Commit({{{kTopic, 0}, {1, ""}}}, [&](const absl::Status& status) { early = status; });
  EXPECT_FALSE(early.has_value());  // never from inside the call
  ASSERT_TRUE(RunUntil([&] { return early.has_value(); }));
  EXPECT_EQ(KafkaErrorCodeOf(*early), ErrorCode::kRebalanceInProgress) << *early;
  EXPECT_EQ(consumer->Seek({kTopic, 0}, 0).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RunUntil([&] { return consumer->state() == GroupConsumer::State::kStable; }));
  bool closed = false;
  consumer->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed; }));
  std::optional<absl::Status> late;
  consumer->CommitPosition([&](const absl::Status& status) { late = status; });
  ASSERT_TRUE(RunUntil([&] { return late.has_value(); }));
  EXPECT_EQ(late->code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Seeds, GroupConsumerSimTest, ::testing::Values(11, 12, 13, 14, 15));

}  // namespace
}  // namespace runnel::client
