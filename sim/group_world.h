// The group world: one simulated broker and a consumer group under faults, checked online against
// what Kafka's classic group protocol promises (docs/simulator.md tells the whole story).
//
// Nodes: "broker-0" (a server::BrokerNode listening on kBrokerPort, with group settings for fast
// runs: initial rebalance delay 0, small minimum session timeout), "producer-0", and "member-<i>"
// for i < member_count, each running one client::GroupConsumer in group `group_id` subscribed to
// one topic of `partitions` partitions.
//
// Workloads:
// - The producer creates the topic (AdminClient), then sends one keyed record every
//   produce_interval_us with acks=all, values unique in the run ("v<sequence>"). Members are
//   started once the topic exists.
// - Each member consumes with auto_offset_reset=earliest and enable_auto_commit=false. It commits
//   explicitly: the positions of its owned partitions every commit_interval_us (0: back to back,
//   each commit made as soon as the previous one completed, for the throughput figure), and the
//   positions of the partitions it gives up in on_partitions_revoked. A position is the offset
//   after the last record delivered (what the member has processed). It never resets an offset.
//
// Faults, from `faults` and, when fault_mix.interval_us_mean > 0, a seeded random mix
// (GroupFaultKind says what each does). One fault at a time per node. A static member stopped by
// FENCED_INSTANCE_ID is restarted by the world, as a supervisor would (OnMemberFailed says when
// Kafka's protocol does that to a member); any other fatal member error is a violation
// (member-failed).
//
// Invariants, checked after every simulator event (Simulator::SetAfterEventHook) by GroupHistory
// from what the members' callbacks report and the coordinator's state. Each failure is one line in
// GroupWorldResult::violations starting with its name:
// - double-ownership: no two live members (node up, stalled or not, in their current incarnation)
//   that hold the same generation own the same partition. Ownership runs from
//   on_partitions_assigned (whose generation_id() is the generation held) to the
//   on_partitions_revoked / on_partitions_lost that takes the partition back, or the member's
//   crash.
// - commit-regressed: commits are ordered in real time as a client sees them. If commit A was
//   acknowledged OK for partition p with offset a before commit B was made (Commit called), and B
//   is acknowledged OK for p with offset b, then b >= a: the committed offset, as acknowledged to
//   members, never moves backwards (the workload never resets offsets explicitly).
// - committed-offset-decreased: the committed offsets the coordinator holds (loaded, not loading)
//   never decrease, across its crashes and restarts.
// - fenced-commit-accepted: generation g is superseded at the first moment the coordinator told a
//   member (through the assignment of a completed generation) that generation g' > g exists. A
//   commit made with generation g after that moment carries a stale generation; the coordinator
//   must refuse it (it is counted in fenced_commits_refused). An OK answer is the violation. The
//   definition only uses what members were told, so it never blames a commit that raced with a
//   rebalance the members had not heard of yet.
// - delivery-without-ownership: a member received records of a partition it did not own.
// - reassigned-without-release / release-without-ownership: the assignment callbacks broke the
//   GroupConsumer's pairing (every partition assigned is taken back exactly once before the next
//   assignment).
// - inconsistent-offsets: one offset of a partition was delivered with two different values.
// At the end, after a settle phase (faults healed, stalled members resumed, crashed nodes
// restarted, the producer stopped, until every member is stable in the coordinator's current
// generation and every partition's committed offset equals its high watermark):
// - lost-record: every record acknowledged to the producer was delivered to some member at its
//   offset with its value at least once.
// - stuck: the settle phase did not finish within settle_timeout_us.
// The same options (seed included) give the same trace digest.
#ifndef RUNNEL_SIM_GROUP_WORLD_H_
#define RUNNEL_SIM_GROUP_WORLD_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "sim/simulator.h"

namespace runnel::sim {

enum class GroupFaultKind {
  // The member's process dies and restarts after downtime_us: a new member (a new member id), or
  // the same static member when static_members is set.
  kMemberCrash,
  // The member's process is paused (Simulator::StallNode) for downtime_us; past the session timeout
  // the coordinator removes it, and on resume it must find itself fenced and rejoin.
  kMemberStall,
  // The member is cut off from the broker, both ways, for downtime_us, then the links heal.
  kMemberPartition,
  // The member closes cleanly (LeaveGroup, unless static) and its node stops; it starts again after
  // downtime_us.
  kMemberLeave,
  // The broker's process dies (the page cache survives); it restarts after downtime_us.
  kBrokerCrash,
  // One established connection, chosen by the fault stream, is reset (both ends see it at once).
  kConnectionReset,
  // The broker's process is paused for downtime_us (a long garbage-collection pause of the
  // coordinator): on resume its overdue session timers and the held requests run together.
  kBrokerStall,
  // The broker's machine loses power (unsynced writes may be lost); it restarts after downtime_us.
  kBrokerPowerLoss,
};
const char* GroupFaultKindName(GroupFaultKind kind);

struct GroupScheduledFault {
  int64_t at_us = 0;
  GroupFaultKind kind = GroupFaultKind::kMemberCrash;
  int member = 0;  // for member faults
  int64_t downtime_us = 1'000'000;
};

// Random faults: gaps drawn from an exponential distribution with the given mean (0: none), the
// kind by weight, the member uniformly, the downtime uniformly from [downtime_us_min,
// downtime_us_max]; stalls last stall_us_min to stall_us_max instead.
struct GroupFaultMix {
  int64_t interval_us_mean = 0;
  uint32_t member_crash_weight = 1;
  uint32_t member_stall_weight = 1;
  uint32_t member_partition_weight = 1;
  uint32_t member_leave_weight = 1;
  uint32_t broker_crash_weight = 1;
  uint32_t broker_power_loss_weight = 1;
  uint32_t broker_stall_weight = 1;
  uint32_t connection_reset_weight = 1;
  int64_t downtime_us_min = 100'000;
  int64_t downtime_us_max = 3'000'000;
  int64_t stall_us_min = 500'000;
  int64_t stall_us_max = 5'000'000;
};

struct GroupWorldOptions {
  static constexpr uint16_t kBrokerPort = 9092;
  static constexpr int kFaultsMax = 10'000;
  static constexpr int kMembersMax = 100;
  static constexpr int32_t kPartitionsMax = 10'000;

  uint64_t seed = 1;
  std::string topic = "events";
  int32_t partitions = 6;
  std::string group_id = "world";
  int member_count = 3;
  // Members use group_instance_id "member-<i>" (KIP-345): a restart within the session timeout
  // takes the old member's place without a rebalance.
  bool static_members = false;
  std::vector<std::string> assignors = {"range", "roundrobin"};
  int32_t session_timeout_ms = 1'500;
  int32_t heartbeat_interval_ms = 300;
  int32_t rebalance_timeout_ms = 3'000;
  // How often each member commits its positions; 0: back to back.
  int64_t commit_interval_us = 200'000;
  // The producer sends one record per interval; 0: no producer.
  int64_t produce_interval_us = 5'000;
  int key_count = 64;
  int64_t request_timeout_ms = 2'000;
  // The broker's offsets topic partitions and minimum session timeout.
  int32_t offsets_topic_partitions = 2;
  int64_t group_min_session_timeout_ms = 200;
  // Member i starts member_start_interval_us after member i - 1 (0: all at once).
  int64_t member_start_interval_us = 0;

  // Deliberate misbehaviour, for tests that the checks catch what they should (-1: none).
  // An impostor: at impostor_start_us a node "impostor" starts a second process with member
  // impostor_of_member's group_instance_id (static_members must be set), as an operator who starts
  // an application twice would. The coordinator hands it the member's place, generation and
  // partitions while the original, if it is stalled then, still owns them: double ownership.
  int impostor_of_member = -1;
  int64_t impostor_start_us = 0;
  // An undeclared reset: this member's fifth commit commits offset 0 for every owned partition
  // (an explicit reset the workload does not declare), so committed offsets move backwards.
  int rewinding_member = -1;
  int64_t duration_us = 15'000'000;
  int64_t settle_timeout_us = 60'000'000;
  std::vector<GroupScheduledFault> faults;
  GroupFaultMix fault_mix;
  NetworkOptions network;
  // Keep every trace event in memory, up to this many (0: keep none).
  size_t trace_events_kept_max = 0;
  std::string trace_path;  // write the trace file here when not empty
  // Print the nodes' log lines to stderr (for debugging a seed).
  bool echo_logs = false;
};

struct GroupWorldResult {
  int64_t simulated_us = 0;
  uint64_t events = 0;
  uint64_t trace_events = 0;
  std::string digest;
  // Faults.
  uint64_t member_crashes = 0;
  uint64_t member_stalls = 0;
  uint64_t member_partitions = 0;
  uint64_t member_leaves = 0;
  uint64_t broker_crashes = 0;
  uint64_t broker_stalls = 0;
  uint64_t connection_resets = 0;
  // Static members stopped by FENCED_INSTANCE_ID and restarted (see OnMemberFailed).
  uint64_t static_members_restarted = 0;
  // Group progress.
  uint64_t generations = 0;        // distinct generations members were assigned in
  int32_t generation_last = -1;    // the highest generation a member was assigned in
  uint64_t member_rebalances = 0;  // revocations started by REBALANCE_IN_PROGRESS, all members
  uint64_t generations_lost = 0;   // generations members lost (ILLEGAL_GENERATION, ...)
  uint64_t commits_ok = 0;
  uint64_t commits_failed = 0;
  // Commits made with a superseded generation (see fenced-commit-accepted) and refused.
  uint64_t fenced_commits_refused = 0;
  // Records.
  uint64_t records_sent = 0;
  uint64_t records_acked = 0;
  uint64_t records_delivered = 0;    // deliveries to members, redeliveries included
  uint64_t records_redelivered = 0;  // deliveries of an offset some member had received before
  bool settled = false;
  std::vector<std::string> violations;
};

// What the members did and saw, and the checks of the file comment. The world feeds it from the
// members' callbacks; tests may feed it directly to show that each check fires.
class GroupHistory {
 public:
  // Violations kept as text; more are only counted.
  static constexpr size_t kViolationsMax = 200;

  explicit GroupHistory(int32_t partitions) : partitions_(partitions) {}

  // Member `member` (a slot: one node, any incarnation) started incarnation `incarnation`.
  void MemberStarted(int member, uint64_t incarnation);
  // The member's incarnation ended (crash or stop): it owns nothing any more.
  void MemberGone(int member, uint64_t incarnation);
  void Assigned(int member, int32_t generation, const std::string& member_id,
                const std::vector<int32_t>& partitions, int64_t now_us);
  // Revoked or lost: the partitions are no longer owned.
  void Released(int member, const std::vector<int32_t>& partitions);
  void Delivered(int member, int32_t partition, int64_t offset, const std::string& value);

  // A commit was made (Commit called) with this generation; returns its id.
  uint64_t CommitMade(int member, int32_t generation, std::map<int32_t, int64_t> offsets,
                      int64_t now_us);
  void CommitCompleted(uint64_t commit, const absl::Status& status, int64_t now_us);

  // The coordinator's committed offsets for the group, as it holds them now (loaded).
  void CoordinatorOffsets(const std::map<int32_t, int64_t>& offsets);

  void RecordAcked(int32_t partition, int64_t offset, std::string value);

  // The checks that run after events: ownership (only when something changed since the last call).
  void CheckOnline();
  // The final at-least-once check.
  void CheckFinal();
  void Violation(std::string text);

  // The generation (>= generation_min) whose live members own every partition, each exactly once,
  // if there is one with at least members_min live members; nullopt otherwise.
  std::optional<int32_t> FullyAssignedGeneration(int32_t generation_min,
                                                 size_t members_min = 1) const;
  int32_t generation_last() const { return generation_last_; }
  uint64_t generations() const { return first_assigned_us_.size(); }
  uint64_t commits_ok() const { return commits_ok_; }
  uint64_t commits_failed() const { return commits_failed_; }
  uint64_t fenced_commits_refused() const { return fenced_commits_refused_; }
  uint64_t records_delivered() const { return records_delivered_; }
  uint64_t records_redelivered() const { return records_redelivered_; }
  uint64_t records_acked() const { return acked_.size(); }
  const std::vector<std::string>& violations() const { return violations_; }
  size_t violation_count() const { return violation_count_; }

 private:
  struct MemberState {
    bool live = false;
    uint64_t incarnation = 0;
    int32_t generation = -1;
    std::string member_id;
    std::set<int32_t> owned;
  };
  struct Commit {
    int member = 0;
    int32_t generation = -1;
    std::map<int32_t, int64_t> offsets;
    int64_t made_us = 0;
    bool done = false;
  };
  // When generation g was superseded (the first assignment of a later generation), if it was.
  std::optional<int64_t> SupersededAtUs(int32_t generation) const;
  // The highest offset acknowledged OK for `partition` strictly before `time_us`, with the time it
  // was first acknowledged.
  std::optional<std::pair<int64_t, int64_t>> AckedMaxBefore(int32_t partition,
                                                            int64_t time_us) const;

  const int32_t partitions_;
  std::map<int, MemberState> members_;
  bool ownership_changed_ = false;
  // (generation, partition, member, member) conflicts already reported.
  std::set<std::tuple<int32_t, int32_t, int, int>> double_owners_reported_;
  // Generation -> when a member was first assigned in it.
  std::map<int32_t, int64_t> first_assigned_us_;
  int32_t generation_last_ = -1;
  std::map<uint64_t, Commit> commits_;  // pending and done (done ones are erased)
  uint64_t next_commit_ = 1;
  // Per partition: (ack time, offset) for each offset acknowledged OK that was higher than every
  // one acknowledged before it, in ack-time order; so the entries' offsets increase too.
  std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>> acked_running_max_;
  std::map<int32_t, int64_t> coordinator_offsets_;
  std::map<std::pair<int32_t, int64_t>, std::string> acked_;      // (partition, offset) -> value
  std::map<std::pair<int32_t, int64_t>, std::string> delivered_;  // first delivery's value
  uint64_t commits_ok_ = 0;
  uint64_t commits_failed_ = 0;
  uint64_t fenced_commits_refused_ = 0;
  uint64_t records_delivered_ = 0;
  uint64_t records_redelivered_ = 0;
  std::vector<std::string> violations_;
  size_t violation_count_ = 0;
};

class GroupWorld {
 public:
  explicit GroupWorld(GroupWorldOptions options);
  ~GroupWorld();

  GroupWorld(const GroupWorld&) = delete;
  GroupWorld& operator=(const GroupWorld&) = delete;

  // Runs the whole scenario (start, faults for duration_us, settle, final checks) and reports.
  // Call once, and not together with the steps below.
  GroupWorldResult Run();

  // Steps for benchmarks that drive the world themselves. StartBroker starts the broker and the
  // producer (when produce_interval_us > 0, else only creates the topic through an admin node)
  // and runs until the topic exists; false if it did not within the settle timeout.
  bool StartBroker();
  void StartMember(int member);
  // Closes the member (LeaveGroup unless static) and stops its node once closed.
  void LeaveMember(int member);
  // Stops the producer, ends the run's faults, and runs the settle phase; then the final checks.
  // Fills the result.
  GroupWorldResult Finish();

  Simulator& simulator() { return simulator_; }
  const GroupHistory& history() const { return *history_; }
  GroupHistory& history() { return *history_; }
  NodeId member_node(int member) const { return member_nodes_.at(static_cast<size_t>(member)); }

  // Node programs reach the world through this; public for them only.
  struct Shared;

 private:
  void ScheduleFaults();
  void InjectFault(GroupFaultKind kind, int member, int64_t downtime_us);
  void RestartMemberLater(int member, int64_t downtime_us);
  void CheckCoordinator();
  // A member stopped with a fatal error. FENCED_INSTANCE_ID of a static member is legitimate in
  // one case Kafka shares: the member replaced its instance's old member id during a rebalance
  // that never completed before the coordinator crashed, so the replacement was never stored and
  // the reloaded group fences the new id. The world restarts such a member (a new process takes
  // the instance's place); any other fatal error is a member-failed violation.
  void OnMemberFailed(int member, uint64_t incarnation, const absl::Status& error);
  bool Settled();
  // The group's state as the coordinator and the members see it, for a stuck run's report.
  std::string DescribeState();
  void CollectMemberStats(int member);

  GroupWorldOptions options_;
  std::unique_ptr<GroupHistory> history_;
  std::unique_ptr<Shared> shared_;
  // After the history: node programs the simulator destroys report to it.
  Simulator simulator_;
  NodeId broker_node_ = -1;
  NodeId producer_node_ = -1;
  NodeId impostor_node_ = -1;
  std::vector<NodeId> member_nodes_;
  std::vector<bool> member_busy_;
  bool broker_busy_ = false;
  // The settle phase has begun: members that finish leaving start again at once.
  bool settling_ = false;
  // The coordinator state last looked at: (broker incarnation, offsets committed, records loaded).
  std::tuple<uint64_t, uint64_t, uint64_t> coordinator_seen_{0, 0, 0};
  GroupWorldResult result_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_GROUP_WORLD_H_
