// Tests of the group world (sim/group_world.h): a consumer group of Runnel's own GroupConsumer
// members against the real broker (BrokerNode and its group coordinator) in the simulator, under
// scheduled faults of every kind (member crash, member stall past the session timeout, member
// partitioned from the coordinator, clean leave, broker crash, power loss and stall) and a random
// mix over several seeds. Each run checks the world's invariants after every event (no double
// ownership within a generation, no committed offset moving backwards, no fenced commit accepted)
// and at the end (every acknowledged record consumed, every committed offset at the end of its
// partition); the tests assert that no violation was found and that the fault did what it should
// (rebalances happened, fenced commits were refused, a static member came back without a
// rebalance). Determinism is checked by digests, and the checker itself by feeding GroupHistory
// bad histories and by running deliberately misbehaving worlds, which each check must catch.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "sim/group_world.h"

namespace runnel::sim {
namespace {

GroupWorldOptions BaseOptions(uint64_t seed) {
  GroupWorldOptions options;
  options.seed = seed;
  options.member_count = 3;
  options.partitions = 6;
  options.duration_us = 8'000'000;
  return options;
}

std::string Describe(const GroupWorldResult& result) {
  return absl::StrCat("generations ", result.generations, " (last ", result.generation_last,
                      "), member rebalances ", result.member_rebalances, ", generations lost ",
                      result.generations_lost, ", commits ok ", result.commits_ok, " failed ",
                      result.commits_failed, " fenced refused ", result.fenced_commits_refused,
                      ", records sent ", result.records_sent, " acked ", result.records_acked,
                      " delivered ", result.records_delivered, " redelivered ",
                      result.records_redelivered, ", settled ", result.settled, ", simulated ",
                      result.simulated_us, " us, events ", result.events, "\nviolations:\n  ",
                      absl::StrJoin(result.violations, "\n  "));
}

// The common expectations of a run that should be clean: it settled, found no violation, and the
// workload did real work.
void ExpectClean(const GroupWorldResult& result) {
  EXPECT_TRUE(result.settled) << Describe(result);
  EXPECT_TRUE(result.violations.empty()) << Describe(result);
  EXPECT_GT(result.records_acked, 100u) << Describe(result);
  EXPECT_GE(result.records_delivered, result.records_acked) << Describe(result);
  EXPECT_GT(result.commits_ok, 10u) << Describe(result);
  EXPECT_GE(result.generations, 1u) << Describe(result);
}

// Without faults, three members share six partitions: every acknowledged record is consumed, every
// committed offset reaches the end, and nothing is flagged.
TEST(GroupSimTest, NoFaults) {
  GroupWorld world(BaseOptions(1));
  const GroupWorldResult result = world.Run();
  ExpectClean(result);
  EXPECT_EQ(result.generations_lost, 0u) << Describe(result);
  EXPECT_EQ(result.records_redelivered, 0u) << Describe(result);
}

GroupWorldResult RunWithFault(uint64_t seed, GroupFaultKind kind, int64_t downtime_us,
                              bool static_members = false) {
  GroupWorldOptions options = BaseOptions(seed);
  options.static_members = static_members;
  options.faults.push_back(GroupScheduledFault{3'000'000, kind, 1, downtime_us});
  GroupWorld world(options);
  GroupWorldResult result = world.Run();
  if (::testing::Test::HasFailure() || std::getenv("GROUP_SIM_VERBOSE") != nullptr) {
    std::cerr << Describe(result) << "\n";
  }
  return result;
}

// A member's process crashes; the coordinator removes it after the session timeout and the others
// take over its partitions in a new generation; it restarts as a new member and joins again.
TEST(GroupSimTest, MemberCrashAndRestartAsNewMember) {
  const GroupWorldResult result = RunWithFault(2, GroupFaultKind::kMemberCrash, 2'500'000);
  ExpectClean(result);
  EXPECT_EQ(result.member_crashes, 1u);
  EXPECT_GE(result.generations, 3u) << Describe(result);  // before, without it, with it again
  EXPECT_GT(result.member_rebalances, 0u) << Describe(result);
}

// A static member (group.instance.id) that crashes and restarts within the session timeout takes
// its old place: no new generation is formed, and nothing is flagged.
TEST(GroupSimTest, StaticMemberRestartCausesNoRebalance) {
  GroupWorldOptions options = BaseOptions(3);
  options.static_members = true;
  GroupWorld world(options);
  ASSERT_TRUE(world.StartBroker());
  for (int i = 0; i < options.member_count; ++i) world.StartMember(i);
  Simulator& simulator = world.simulator();
  simulator.RunUntil(3'000'000);
  ASSERT_TRUE(world.history().FullyAssignedGeneration(0).has_value());
  const int32_t generation_before = world.history().generation_last();
  simulator.CrashNode(world.member_node(1), CrashKind::kProcess);
  simulator.RunFor(300'000);
  world.StartMember(1);
  simulator.RunUntil(options.duration_us);
  EXPECT_EQ(world.history().generation_last(), generation_before);
  EXPECT_EQ(world.history().FullyAssignedGeneration(0), generation_before);
  const GroupWorldResult result = world.Finish();
  ExpectClean(result);
  EXPECT_EQ(result.generation_last, generation_before) << Describe(result);
}

// A member stalls (a process pause) for three session timeouts. The coordinator removes it and
// rebalances the others into a new generation; on resume its held commit timer fires first and
// commits with the old generation, which the coordinator refuses (counted as fenced commits
// refused, never accepted); the member finds itself fenced, loses its partitions and rejoins.
TEST(GroupSimTest, MemberStallPastSessionTimeoutIsFenced) {
  const GroupWorldResult result = RunWithFault(4, GroupFaultKind::kMemberStall, 4'500'000);
  ExpectClean(result);
  EXPECT_EQ(result.member_stalls, 1u);
  EXPECT_GT(result.fenced_commits_refused, 0u) << Describe(result);
  EXPECT_GT(result.generations_lost, 0u) << Describe(result);
  EXPECT_GE(result.generations, 3u) << Describe(result);
}

// A member is cut off from the coordinator (both ways) for longer than the session timeout: the
// others take its partitions; when the links heal it rejoins. No two members of one generation
// ever own a partition together, although the cut-off member still thinks it owns its old ones.
TEST(GroupSimTest, MemberPartitionedFromCoordinator) {
  const GroupWorldResult result = RunWithFault(5, GroupFaultKind::kMemberPartition, 4'000'000);
  ExpectClean(result);
  EXPECT_EQ(result.member_partitions, 1u);
  EXPECT_GE(result.generations, 3u) << Describe(result);
}

// A member leaves cleanly (LeaveGroup) and comes back later: two rebalances, no lost generation.
TEST(GroupSimTest, MemberLeavesAndReturns) {
  const GroupWorldResult result = RunWithFault(6, GroupFaultKind::kMemberLeave, 2'000'000);
  ExpectClean(result);
  EXPECT_EQ(result.member_leaves, 1u);
  EXPECT_GE(result.generations, 3u) << Describe(result);
}

// The broker (and so the coordinator) crashes and restarts, once as a process crash and once as a
// power loss: committed offsets are loaded back from __consumer_offsets (the online check sees
// them never decrease), the members find the coordinator again and carry on.
TEST(GroupSimTest, CoordinatorCrashAndPowerLoss) {
  GroupWorldOptions options = BaseOptions(7);
  options.faults.push_back(
      GroupScheduledFault{2'500'000, GroupFaultKind::kBrokerCrash, 0, 800'000});
  options.faults.push_back(
      GroupScheduledFault{5'500'000, GroupFaultKind::kBrokerPowerLoss, 0, 800'000});
  GroupWorld world(options);
  const GroupWorldResult result = world.Run();
  ExpectClean(result);
  EXPECT_EQ(result.broker_crashes, 2u) << Describe(result);
}

// A static member that crashes and stays down past the session timeout is removed (a rebalance
// without it); when it restarts with the same instance id it joins again (another rebalance).
TEST(GroupSimTest, StaticMemberCrashPastSessionTimeout) {
  const GroupWorldResult result =
      RunWithFault(8, GroupFaultKind::kMemberCrash, 3'000'000, /*static_members=*/true);
  ExpectClean(result);
  EXPECT_GE(result.generations, 3u) << Describe(result);
}

// The coordinator's process stalls (a long pause) for twice the session timeout. On resume its
// overdue session timers and the heartbeats that waited run together; whatever it decides, the
// members must end in one generation with nothing flagged.
TEST(GroupSimTest, CoordinatorStall) {
  GroupWorldOptions options = BaseOptions(9);
  options.faults.push_back(
      GroupScheduledFault{3'000'000, GroupFaultKind::kBrokerStall, 0, 3'000'000});
  options.faults.push_back(GroupScheduledFault{6'500'000, GroupFaultKind::kConnectionReset, 0, 0});
  GroupWorld world(options);
  const GroupWorldResult result = world.Run();
  ExpectClean(result);
  EXPECT_EQ(result.broker_stalls, 1u) << Describe(result);
  EXPECT_EQ(result.connection_resets, 1u) << Describe(result);
}

// A random mix of every fault kind over twelve seeds, static and dynamic members alike, and one
// larger group (10 members, 40 partitions) under a denser mix.
TEST(GroupSimTest, RandomFaultMixAcrossSeeds) {
  for (uint64_t seed = 11; seed <= 22; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    GroupWorldOptions options = BaseOptions(seed);
    options.member_count = 4;
    options.partitions = 8;
    options.static_members = seed % 2 == 0;
    options.duration_us = 20'000'000;
    options.fault_mix.interval_us_mean = 1'200'000;
    // Occasional latency spikes reorder nothing on a connection but delay answers past timeouts.
    options.network.latency_spike_probability = 0.01;
    GroupWorld world(options);
    const GroupWorldResult result = world.Run();
    ExpectClean(result);
    EXPECT_GT(result.member_crashes + result.member_stalls + result.member_partitions +
                  result.member_leaves + result.broker_crashes + result.broker_stalls +
                  result.connection_resets,
              5u)
        << Describe(result);
    if (std::getenv("GROUP_SIM_VERBOSE") != nullptr) std::cerr << Describe(result) << "\n";
  }
  GroupWorldOptions options = BaseOptions(23);
  options.member_count = 10;
  options.partitions = 40;
  options.duration_us = 20'000'000;
  options.fault_mix.interval_us_mean = 700'000;
  GroupWorld world(options);
  const GroupWorldResult result = world.Run();
  ExpectClean(result);
  EXPECT_GT(result.generations, 5u) << Describe(result);
}

// The same options and seed give the same trace digest (and the same counts); another seed gives
// another digest.
TEST(GroupSimTest, SameSeedSameDigest) {
  auto run = [](uint64_t seed) {
    GroupWorldOptions options = BaseOptions(seed);
    options.fault_mix.interval_us_mean = 1'000'000;
    GroupWorld world(options);
    return world.Run();
  };
  const GroupWorldResult first = run(21);
  const GroupWorldResult second = run(21);
  EXPECT_EQ(first.digest, second.digest);
  EXPECT_EQ(first.events, second.events);
  EXPECT_EQ(first.commits_ok, second.commits_ok);
  EXPECT_EQ(first.generation_last, second.generation_last);
  EXPECT_NE(first.digest, run(22).digest);
}

bool HasViolation(const std::vector<std::string>& violations, const std::string& name) {
  for (const std::string& line : violations) {
    if (line.rfind(name + ":", 0) == 0) return true;
  }
  return false;
}

bool HasViolation(const GroupHistory& history, const std::string& name) {
  return HasViolation(history.violations(), name);
}

// The online checks fire in a live world too. An impostor (a second process started with member
// 1's group.instance.id while member 1 is stalled) takes member 1's place, generation and
// partitions without a rebalance, as Kafka's static membership does, while the stalled original
// still owns them: double-ownership. A member that commits offset 0 once (an explicit reset the
// workload does not declare) moves committed offsets backwards: commit-regressed, and the
// coordinator's own offsets decrease.
TEST(GroupSimTest, ChecksCatchMisbehaviourInALiveWorld) {
  GroupWorldOptions impostor = BaseOptions(31);
  impostor.static_members = true;
  impostor.faults.push_back(
      GroupScheduledFault{3'000'000, GroupFaultKind::kMemberStall, 1, 1'000'000});
  impostor.impostor_of_member = 1;
  impostor.impostor_start_us = 3'100'000;
  const GroupWorldResult with_impostor = GroupWorld(impostor).Run();
  if (std::getenv("GROUP_SIM_VERBOSE") != nullptr) std::cerr << Describe(with_impostor) << "\n";
  EXPECT_TRUE(HasViolation(with_impostor.violations, "double-ownership"))
      << Describe(with_impostor);

  GroupWorldOptions rewinding = BaseOptions(32);
  rewinding.rewinding_member = 0;
  const GroupWorldResult with_rewind = GroupWorld(rewinding).Run();
  if (std::getenv("GROUP_SIM_VERBOSE") != nullptr) std::cerr << Describe(with_rewind) << "\n";
  EXPECT_TRUE(HasViolation(with_rewind.violations, "commit-regressed")) << Describe(with_rewind);
  EXPECT_TRUE(HasViolation(with_rewind.violations, "committed-offset-decreased"))
      << Describe(with_rewind);
}

// The checker catches each kind of violation when fed a history that has it, and stays quiet on a
// legitimate history with the same shape: two members of one generation owning one partition
// (but not members of different generations), an OK commit below an offset acknowledged before it
// was made (but not one acknowledged only after it was made, as network reordering allows), an
// OK commit made with a generation already superseded (but not one made before), the
// coordinator's committed offset going back, and an acknowledged record nobody consumed.
TEST(GroupSimTest, ChecksCatchBadHistories) {
  {
    GroupHistory history(4);
    history.MemberStarted(0, 1);
    history.MemberStarted(1, 1);
    history.MemberStarted(2, 1);
    history.Assigned(0, 5, "a", {0, 1}, 100);
    history.Assigned(1, 6, "b", {0, 1},
                     200);  // a later generation: allowed (eager, not yet fenced)
    history.CheckOnline();
    EXPECT_TRUE(history.violations().empty()) << absl::StrJoin(history.violations(), "\n");
    history.Assigned(2, 6, "c", {1, 2}, 210);
    history.CheckOnline();
    EXPECT_TRUE(HasViolation(history, "double-ownership"))
        << absl::StrJoin(history.violations(), "\n");
    EXPECT_EQ(history.FullyAssignedGeneration(0), std::nullopt);
  }
  {
    GroupHistory history(4);
    history.MemberStarted(0, 1);
    history.MemberStarted(1, 1);
    history.Assigned(0, 1, "a", {0, 1}, 100);
    history.Assigned(1, 1, "b", {2, 3}, 100);
    history.CheckOnline();
    EXPECT_EQ(history.FullyAssignedGeneration(0), 1);
    // A crashed member's partitions are no longer owned by a live member.
    history.MemberGone(1, 1);
    EXPECT_EQ(history.FullyAssignedGeneration(0), std::nullopt);
    EXPECT_TRUE(history.violations().empty());
  }
  {
    GroupHistory history(2);
    history.MemberStarted(0, 1);
    history.MemberStarted(1, 1);
    history.Assigned(0, 1, "a", {0}, 0);
    history.Assigned(1, 1, "b", {1}, 0);
    // Member 0 commits 50 (made at 10, acknowledged at 30); member 1's commit of 40 was made at 20,
    // before that acknowledgement: concurrent, so no order is implied.
    const uint64_t first = history.CommitMade(0, 1, {{0, 50}}, 10);
    const uint64_t concurrent = history.CommitMade(1, 1, {{0, 40}}, 20);
    history.CommitCompleted(first, absl::OkStatus(), 30);
    history.CommitCompleted(concurrent, absl::OkStatus(), 35);
    EXPECT_TRUE(history.violations().empty()) << absl::StrJoin(history.violations(), "\n");
    // A commit of 45 made at 40, after 50 was acknowledged at 30, moves the offset backwards.
    const uint64_t backwards = history.CommitMade(1, 1, {{0, 45}}, 40);
    history.CommitCompleted(backwards, absl::OkStatus(), 50);
    EXPECT_TRUE(HasViolation(history, "commit-regressed"))
        << absl::StrJoin(history.violations(), "\n");
    // A refused commit is no regression.
    GroupHistory refused(2);
    const uint64_t a = refused.CommitMade(0, 1, {{0, 50}}, 10);
    refused.CommitCompleted(a, absl::OkStatus(), 20);
    const uint64_t b = refused.CommitMade(0, 1, {{0, 10}}, 30);
    refused.CommitCompleted(b, absl::FailedPreconditionError("ILLEGAL_GENERATION"), 40);
    EXPECT_TRUE(refused.violations().empty());
    EXPECT_EQ(refused.commits_failed(), 1u);
  }
  {
    GroupHistory history(2);
    history.MemberStarted(0, 1);
    history.MemberStarted(1, 1);
    history.Assigned(0, 3, "a", {0, 1}, 100);
    // Made with generation 3 before generation 4 was assigned anywhere: legitimate even if it is
    // acknowledged after.
    const uint64_t early = history.CommitMade(0, 3, {{0, 10}}, 150);
    history.Released(0, {0, 1});
    history.Assigned(1, 4, "b", {0, 1}, 200);
    history.CommitCompleted(early, absl::OkStatus(), 210);
    EXPECT_TRUE(history.violations().empty()) << absl::StrJoin(history.violations(), "\n");
    // Made with generation 3 after generation 4 was assigned: a refusal is counted ...
    const uint64_t refused = history.CommitMade(0, 3, {{0, 12}}, 300);
    history.CommitCompleted(refused, absl::FailedPreconditionError("ILLEGAL_GENERATION"), 310);
    EXPECT_EQ(history.fenced_commits_refused(), 1u);
    EXPECT_TRUE(history.violations().empty());
    // ... and an acceptance is the violation.
    const uint64_t accepted = history.CommitMade(0, 3, {{0, 12}}, 400);
    history.CommitCompleted(accepted, absl::OkStatus(), 410);
    EXPECT_TRUE(HasViolation(history, "fenced-commit-accepted"))
        << absl::StrJoin(history.violations(), "\n");
  }
  {
    GroupHistory history(2);
    history.CoordinatorOffsets({{0, 10}, {1, 5}});
    history.CoordinatorOffsets({{0, 12}, {1, 5}});
    EXPECT_TRUE(history.violations().empty());
    history.CoordinatorOffsets({{0, 11}, {1, 5}});
    EXPECT_TRUE(HasViolation(history, "committed-offset-decreased"));
  }
  {
    GroupHistory history(2);
    history.MemberStarted(0, 1);
    history.Assigned(0, 1, "a", {0, 1}, 0);
    history.RecordAcked(0, 0, "v0");
    history.RecordAcked(1, 0, "v1");
    history.Delivered(0, 0, 0, "v0");
    history.CheckFinal();
    EXPECT_TRUE(HasViolation(history, "lost-record"));
    EXPECT_EQ(history.violation_count(), 1u);
    // A delivery of a partition the member does not own is flagged.
    history.Released(0, {1});
    history.Delivered(0, 1, 0, "v1");
    EXPECT_TRUE(HasViolation(history, "delivery-without-ownership"));
  }
}

}  // namespace
}  // namespace runnel::sim
