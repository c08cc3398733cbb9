// GroupConsumer: a member of a Kafka consumer group (the classic protocol, eager rebalancing),
// like Kafka's consumer with subscribe(), fully asynchronous over the Env. It owns a Consumer
// (consumer.h) and drives its Assign and Seek; fetching, positions and offset lookups are the
// Consumer's.
//
// The member's life (docs/client.md has the full story):
// 1. Find the coordinator: FindCoordinator (key type group) to any broker, retried with backoff.
//    The coordinator gets its own connection, so that a JoinGroup the broker holds for a whole
//    rebalance never delays fetches. NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or a lost
//    connection to it at any step sends the member back here (it keeps its member id and
//    generation, so it can carry on after the coordinator is found again).
// 2. JoinGroup with protocol type "consumer" and one protocol per assignor (in preference order),
//    each carrying the member's subscription (assignors.h encodes it as Kafka's clients do).
//    MEMBER_ID_REQUIRED: join again at once with the member id the answer gave (KIP-394).
//    UNKNOWN_MEMBER_ID: forget the member id and join again. COORDINATOR_LOAD_IN_PROGRESS: join
//    again after a backoff.
// 3. The leader (the member the answer names) computes the assignment with the assignor the group
//    chose, from every member's subscription and the partition counts in fresh metadata, and sends
//    it in its SyncGroup; followers send an empty SyncGroup. The answer carries this member's
//    assignment. REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID: join again.
// 4. OffsetFetch for the assigned partitions; each starts at its committed offset, or where
//    auto_offset_reset says when the group has none. Then on_partitions_assigned runs, then
//    records flow (through on_records, as with Consumer).
// 5. Heartbeat every heartbeat_interval_ms while in a generation. REBALANCE_IN_PROGRESS (from a
//    heartbeat or a commit): stop fetching, commit the delivered positions when enable_auto_commit,
//    run on_partitions_revoked for every owned partition, and join again (step 2).
//    ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID: the generation is gone (and, for the latter, the
//    member id): run on_partitions_lost without committing, and join again. FENCED_INSTANCE_ID
//    (another process took this member's group_instance_id) is fatal.
// A fatal error (FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED, INCONSISTENT_GROUP_PROTOCOL,
// GROUP_MAX_SIZE_REACHED, INVALID_SESSION_TIMEOUT, UNSUPPORTED_VERSION, a retry limit reached)
// stops the member: fetching stops, on_partitions_lost runs for what it owned, the state becomes
// kFailed and on_error reports the error. It then only answers calls with errors; Close() still
// completes.
//
// Guarantees:
// - Callbacks run on the event loop, never from inside a public call. They may call any method,
//   and may destroy the GroupConsumer (nothing of it runs afterwards).
// - Records of a partition are delivered only between that partition's on_partitions_assigned and
//   the on_partitions_revoked / on_partitions_lost that takes it away: never before the assignment
//   callback has run, never after the revocation callback has started.
// - Every partition handed out by on_partitions_assigned is later taken back by exactly one
//   on_partitions_revoked or on_partitions_lost call (or the GroupConsumer is destroyed first).
//   on_partitions_assigned runs once per generation this member completes, possibly with no
//   partitions; generation_id() and member_id() inside it name that generation.
// - Commits carry the generation id and member id of the moment Commit / CommitPosition was
//   called (or the automatic commit was made), never a later generation's: offsets read under one
//   generation are never committed under another. The coordinator refuses a commit from a stale
//   generation or an unknown member (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID), and that refusal is
//   the commit's outcome. A commit made while the member is in no generation fails at once (from
//   a later turn) with REBALANCE_IN_PROGRESS.
// - Commits are sent one at a time, in the order they were made, and a commit is retried (same
//   offsets, same generation) only while no later commit has been sent, so offsets committed by
//   this member never go backwards through reordering. A commit is retried after retriable errors
//   (coordinator moved or loading, lost connection, timeout) until default_api_timeout_ms of the
//   Consumer options has passed or kCommitAttemptsMax attempts were made. At most
//   kPendingCommitsMax commits wait or are in flight; more fail at once with kResourceExhausted.
// - Every commit's callback runs exactly once, also when the GroupConsumer is closed or fails
//   meanwhile; then on_commit_completed (if set) sees the same outcome.
// - Automatic commits (enable_auto_commit): every auto_commit_interval_ms, before a revocation,
//   and in Close(): the positions of the owned partitions, that is, the offset after the last
//   record delivered (or the position a partition started at, if nothing was delivered yet).
//   Partitions whose position is not known yet are left out.
// - Commits made inside on_partitions_revoked (and any still pending) complete before the member
//   joins the next generation or leaves the group, as a commitSync in Kafka's callback would.
// - Close(done): stops fetching; commits positions when enable_auto_commit; runs
//   on_partitions_revoked; sends LeaveGroup unless the member is static (group_instance_id set:
//   the coordinator keeps its place for session_timeout_ms, so a restart with the same instance id
//   causes no rebalance); then runs done. done runs exactly once, even if nothing could be sent.
// - Destroying a GroupConsumer without Close() leaves the group as a crash would: the coordinator
//   notices after session_timeout_ms. No callback runs afterwards.
#ifndef RUNNEL_BROKER_CLIENT_GROUP_CONSUMER_H_
#define RUNNEL_BROKER_CLIENT_GROUP_CONSUMER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/client/assignors.h"
#include "broker/client/broker_connection.h"
#include "broker/client/consumer.h"
#include "broker/env/env.h"

namespace runnel::client {

// An offset to commit, or one the group has committed, with its free-form metadata.
struct OffsetAndMetadata {
  int64_t offset = 0;
  std::string metadata;
  friend bool operator==(const OffsetAndMetadata&, const OffsetAndMetadata&) = default;
};

// What became of one commit, explicit or automatic (on_commit_completed).
struct CommitOutcome {
  std::map<TopicPartition, OffsetAndMetadata> offsets;
  // The generation and member id the commit carried.
  int32_t generation_id = -1;
  std::string member_id;
  // Made by the consumer itself (the auto-commit timer, before a revocation, in Close).
  bool automatic = false;
  // OK, or why the commit failed (the first partition error, or the request's error).
  absl::Status status;
};

struct GroupConsumerOptions {
  // Kafka's defaults (Kafka 3.x), where Kafka has the setting.
  static constexpr int32_t kSessionTimeoutMsDefault = 45'000;       // session.timeout.ms
  static constexpr int32_t kRebalanceTimeoutMsDefault = 300'000;    // max.poll.interval.ms
  static constexpr int32_t kHeartbeatIntervalMsDefault = 3'000;     // heartbeat.interval.ms
  static constexpr int64_t kAutoCommitIntervalMsDefault = 5'000;    // auto.commit.interval.ms
  // A group id longer than this is refused by Create.
  static constexpr size_t kGroupIdBytesMax = 255;
  // The most topics one member may subscribe to.
  static constexpr size_t kSubscribedTopicsMax = 1'000;
  // The most assignors one member may offer.
  static constexpr size_t kAssignorsMax = 8;
  // Commits waiting or in flight; more fail at once with kResourceExhausted.
  static constexpr size_t kPendingCommitsMax = 64;
  // Attempts of one commit (its first send and its retries).
  static constexpr int kCommitAttemptsMax = 10;
  // Attempts of one Committed() lookup.
  static constexpr int kOffsetFetchAttemptsMax = 10;
  // Consecutive failed FindCoordinator rounds before the member gives up (a fatal error). With
  // the default retry backoff of at most a second that is about a quarter of an hour.
  static constexpr int kCoordinatorLookupAttemptsMaxDefault = 1'000;
  // Consecutive JoinGroup / SyncGroup / OffsetFetch rounds without reaching a generation with
  // positions before the member gives up (a fatal error).
  static constexpr int kJoinAttemptsMaxDefault = 1'000;
  // Extra time a JoinGroup's answer may take beyond the rebalance timeout, which is how long the
  // coordinator may hold it (Kafka's client allows the same 5 s).
  static constexpr int64_t kJoinGroupResponseGraceMs = 5'000;

  // Client settings, fetch settings and default_api_timeout_ms. Its on_records, on_error and
  // auto_offset_reset are ignored: the group consumer sets them from the fields below.
  ConsumerOptions consumer;
  // Required, at most kGroupIdBytesMax bytes.
  std::string group_id;
  // Set: a static member (KIP-345, JoinGroup v5). Restarting with the same instance id within
  // session_timeout_ms takes the old member's place and assignment without a rebalance, and
  // Close() does not leave the group.
  std::optional<std::string> group_instance_id;
  // The topics to consume; required, at most kSubscribedTopicsMax, no duplicates. Topics that do
  // not exist yet get partitions once they exist and the leader notices (at its next metadata
  // refresh, at most ClientOptions::metadata_max_age_ms later), which starts a rebalance.
  std::vector<std::string> topics;
  // The coordinator removes a member it has not heard from for this long. Must lie within the
  // broker's group_min/max_session_timeout_ms.
  int32_t session_timeout_ms = kSessionTimeoutMsDefault;
  // How long the coordinator waits for every member to rejoin in a rebalance.
  int32_t rebalance_timeout_ms = kRebalanceTimeoutMsDefault;
  // Must be below session_timeout_ms (Kafka advises a third of it).
  int32_t heartbeat_interval_ms = kHeartbeatIntervalMsDefault;
  // Assignor names in preference order (assignors.h: "range", "roundrobin"); the group uses the
  // first one every member offers. 1 to kAssignorsMax, no duplicates, each known.
  std::vector<std::string> assignors = {std::string(kRangeAssignorName),
                                        std::string(kRoundRobinAssignorName)};
  bool enable_auto_commit = true;
  int64_t auto_commit_interval_ms = kAutoCommitIntervalMsDefault;
  // Where a partition without a committed offset starts (and where one whose offset left the log
  // restarts). kNone: it stays idle and on_error reports it until Seek.
  OffsetReset auto_offset_reset = OffsetReset::kLatest;
  // Bounds on retrying the group's own requests (see kCoordinatorLookupAttemptsMaxDefault and
  // kJoinAttemptsMaxDefault).
  int coordinator_lookup_attempts_max = kCoordinatorLookupAttemptsMaxDefault;
  int join_attempts_max = kJoinAttemptsMaxDefault;

  // Receives every delivery, as ConsumerOptions::on_records. Required.
  absl::AnyInvocable<void(FetchedRecords records)> on_records;
  // The partitions this member gives up in an orderly rebalance or in Close(), after the automatic
  // commit (if any) completed; a manual commit here still carries the old generation. Optional.
  absl::AnyInvocable<void(const std::vector<TopicPartition>& partitions)> on_partitions_revoked;
  // The partitions taken away without a chance to commit: the generation was lost
  // (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) or a fatal error stopped the member. Optional; when
  // unset, on_partitions_revoked runs instead (as in Kafka).
  absl::AnyInvocable<void(const std::vector<TopicPartition>& partitions)> on_partitions_lost;
  // The partitions of a new generation, sorted, each with its starting position known or being
  // looked up; Seek here overrides the committed offset. Optional.
  absl::AnyInvocable<void(const std::vector<TopicPartition>& partitions)> on_partitions_assigned;
  // Errors: fatal ones (state() is then kFailed), and others the member works around but the
  // owner should hear of (a partition without position under kNone, an undecodable assignment,
  // a member's undecodable subscription seen by the leader). Optional.
  absl::AnyInvocable<void(const absl::Status& error)> on_error;
  // Every commit's outcome, explicit or automatic, after the commit's own callback. Optional.
  absl::AnyInvocable<void(const CommitOutcome& outcome)> on_commit_completed;
};

struct GroupConsumerStats {
  uint64_t coordinator_lookups = 0;   // FindCoordinator requests sent
  uint64_t joins_sent = 0;            // JoinGroup requests sent
  uint64_t joins = 0;                 // JoinGroup answers that made this member part of a generation
  uint64_t generations = 0;           // SyncGroup answers with an assignment (generations completed)
  uint64_t leader_assignments = 0;    // generations in which this member computed the assignment
  uint64_t rebalances = 0;            // revocations started by REBALANCE_IN_PROGRESS
  uint64_t generations_lost = 0;      // ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID after joining
  uint64_t heartbeats_sent = 0;
  uint64_t heartbeats_failed = 0;     // answered with an error, or not answered
  uint64_t commits_ok = 0;
  uint64_t commits_failed = 0;
  uint64_t commit_retries = 0;
  uint64_t records_delivered = 0;
};

class GroupConsumer {
 public:
  enum class State {
    kJoining,  // finding the coordinator, joining, syncing or looking up committed offsets
    kStable,   // in a generation with positions: fetching and heartbeating
    kClosing,  // Close() is under way
    kClosed,   // Close() finished
    kFailed,   // stopped by a fatal error
  };
  using StatusCallback = absl::AnyInvocable<void(const absl::Status& status)>;
  using CommittedCallback = absl::AnyInvocable<void(
      absl::StatusOr<std::map<TopicPartition, std::optional<OffsetAndMetadata>>> committed)>;

  // Validates the options (kInvalidArgument naming the field) and starts joining the group from a
  // later turn of the event loop.
  static absl::StatusOr<std::unique_ptr<GroupConsumer>> Create(Env& env,
                                                               GroupConsumerOptions options);
  ~GroupConsumer();

  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // Commits `offsets` (the offset of the next record to read, per partition) with the current
  // generation and member id. Any partition may be named, owned or not; the coordinator decides.
  void Commit(std::map<TopicPartition, OffsetAndMetadata> offsets, StatusCallback done);
  // Commits the positions of the owned partitions (what was delivered; see Guarantees). With no
  // owned partition with a known position, completes OK without a request.
  void CommitPosition(StatusCallback done);
  // The group's committed offsets for `partitions` (nullopt: none committed), from the
  // coordinator (OffsetFetch), retried after retriable errors. Works in any state but kFailed and
  // kClosed.
  void Committed(std::vector<TopicPartition> partitions, CommittedCallback done);
  // Moves an owned partition's position (kFailedPrecondition when it is not owned now).
  absl::Status Seek(const TopicPartition& partition, int64_t offset);
  // See Close in the contract above. A second Close while one is under way, or after the member
  // closed or failed, completes (from a later turn) with OK.
  void Close(absl::AnyInvocable<void()> done);

  // The partitions owned now (between assignment and revocation), sorted.
  std::vector<TopicPartition> assignment() const;
  // The position of an owned partition.
  std::optional<int64_t> Position(const TopicPartition& partition) const;
  State state() const { return state_; }
  // The generation this member is in, or -1 between generations.
  int32_t generation_id() const { return generation_id_; }
  // Empty until the coordinator gave one.
  const std::string& member_id() const { return member_id_; }
  // Whether this member led the current generation.
  bool is_leader() const { return is_leader_; }
  // The coordinator's node id, when known.
  std::optional<int32_t> coordinator_id() const { return coordinator_id_; }
  const GroupConsumerOptions& options() const { return options_; }
  const GroupConsumerStats& stats() const { return stats_; }
  // The underlying consumer, for its offset lookups (BeginningOffsets, EndOffsets,
  // OffsetsForTimes), HighWatermark and stats. Calling its Assign or Seek breaks the guarantees
  // above: use this class's Seek.
  Consumer& consumer() { return *consumer_; }

 private:
  struct PendingCommit;
  struct CommittedLookup;
  // Where the join loop is. Coordinator discovery runs beside it (coordinator_ null means
  // unknown, and every step that needs the coordinator waits for or retries after the lookup).
  enum class Phase {
    kIdle,             // between steps: the next JoinGroup is due (possibly after a backoff)
    kJoining,          // JoinGroup in flight
    kAssigning,        // leader: waiting for metadata to compute the assignment
    kSyncing,          // SyncGroup in flight
    kFetchingOffsets,  // in a generation, looking up the committed offsets of its assignment
    kStable,           // assignment installed: fetching, heartbeating, auto-committing
    kRevoking,         // a rebalance began: fetching stopped, the automatic commit is under way
  };

  GroupConsumer(Env& env, GroupConsumerOptions options);

  // Coordinator discovery.
  void FindCoordinator();
  void OnFindCoordinator(absl::StatusOr<ApiResponse> response);
  // Forgets the coordinator if `epoch` is still the current one's (coordinator_epoch_), and looks
  // it up again. Handlers of coordinator answers pass answer_epoch_.
  void MarkCoordinatorUnknown(uint64_t epoch, absl::string_view why);
  // Sends a request to the coordinator; when none is known, fails it with
  // COORDINATOR_NOT_AVAILABLE from a later turn and starts a lookup.
  void SendToCoordinator(protocol::RequestBody request, ResponseCallback callback,
                         int64_t timeout_ms = 0);

  // The join loop.
  void Advance();
  void ScheduleAdvance(int64_t delay_us);
  void JoinGroup();
  void OnJoinGroup(uint64_t round, absl::StatusOr<ApiResponse> response);
  void ComputeAssignment(uint64_t round, protocol::JoinGroupResponse join);
  void SyncGroup(uint64_t round, std::vector<protocol::SyncGroupRequest::Assignment> assignments);
  void OnSyncGroup(uint64_t round, absl::StatusOr<ApiResponse> response);
  void FetchCommittedForAssignment(uint64_t round, std::vector<TopicPartition> partitions);
  void InstallAssignment(std::vector<TopicPartition> partitions,
                         const std::map<TopicPartition, std::optional<OffsetAndMetadata>>& committed);
  // Starts the join loop over: at once, or after a backoff when `backoff`. Counts towards
  // join_attempts_max (a fatal error beyond it).
  void RestartJoin(bool backoff, absl::string_view why);
  // Acts on an error code that ends the generation or the member; true when `code` was one.
  bool HandleMembershipError(protocol::ErrorCode code, absl::string_view context);
  void RequestRejoin(absl::string_view why);
  void BeginRevocation();
  void FinishRevocation();
  void RejoinAfterRevocation();
  // Runs `next` once every commit queued now has completed (at once when none is).
  void AfterPendingCommits(absl::AnyInvocable<void()> next);
  void LoseGeneration(bool forget_member_id, absl::string_view why);
  void Fail(const absl::Status& error);

  // Heartbeats and auto-commit.
  void ScheduleHeartbeat(int64_t delay_us);
  void Heartbeat();
  void OnHeartbeat(uint64_t round, absl::StatusOr<ApiResponse> response);
  void ScheduleAutoCommit();
  void CheckPartitionCounts();

  // Commits.
  void EnqueueCommit(std::map<TopicPartition, OffsetAndMetadata> offsets, bool automatic,
                     StatusCallback done);
  void PumpCommits();
  void OnCommit(std::shared_ptr<PendingCommit> commit, absl::StatusOr<ApiResponse> response);
  // Runs the commit's callback and on_commit_completed, from a later turn when `later`. False
  // when a callback destroyed this object.
  bool FinishCommit(std::shared_ptr<PendingCommit> commit, absl::Status status);
  void FailCommitLater(std::map<TopicPartition, OffsetAndMetadata> offsets, bool automatic,
                       StatusCallback done, absl::Status status);
  std::map<TopicPartition, OffsetAndMetadata> DeliveredPositions() const;

  // OffsetFetch with retries.
  void LookupCommitted(std::vector<TopicPartition> partitions, CommittedCallback done);
  void SendLookup(std::shared_ptr<CommittedLookup> lookup);

  // Ownership.
  void StopFetching();
  // Takes every owned partition away and runs on_partitions_revoked (or on_partitions_lost when
  // `lost`). False when the callback destroyed this object.
  bool RevokeOwned(bool lost);
  void DeliverRecords(FetchedRecords records);

  // Closing.
  void CloseAfterCommit();
  void LeaveGroup();
  void FinishClose();
  // Runs the Close callbacks; false when one destroyed this object.
  bool RunCloseCallbacks();

  void RunLater(absl::AnyInvocable<void()> task);
  void ReportError(const absl::Status& error);
  void CancelTimer(TimerId* timer);
  // Arms the timer member `timer` to run `method` after `delay_us` (at least 0), replacing what it
  // was armed for; the member is kNoTimer again when the method runs. Nothing runs after the
  // consumer is destroyed.
  void ArmTimer(TimerId GroupConsumer::*timer, int64_t delay_us, void (GroupConsumer::*method)());
  bool Terminal() const { return state_ == State::kClosed || state_ == State::kFailed; }
  int64_t NowUs() const;
  int64_t BackoffUs(int attempt);
  std::string Context(absl::string_view what) const;

  Env& env_;
  GroupConsumerOptions options_;
  std::unique_ptr<Consumer> consumer_;

  State state_ = State::kJoining;
  Phase phase_ = Phase::kIdle;
  // Incremented whenever the join loop starts over, so that answers to abandoned steps (and
  // heartbeats of an ended generation) are recognised and ignored.
  uint64_t round_ = 0;
  int join_failures_ = 0;
  int64_t join_not_before_us_ = 0;
  bool rejoin_requested_ = false;

  std::optional<int32_t> coordinator_id_;
  std::unique_ptr<BrokerConnection> coordinator_;
  // Incremented for each coordinator found; requests remember the epoch they were sent in.
  uint64_t coordinator_epoch_ = 0;
  // The epoch of the request whose answer is being handled now.
  uint64_t answer_epoch_ = 0;
  bool coordinator_lookup_in_flight_ = false;
  int coordinator_failures_ = 0;
  int64_t coordinator_lookup_not_before_us_ = 0;
  // Connections to former coordinators, closed (failing what they held) and destroyed on a later
  // turn, never from inside their own callbacks.
  std::vector<std::unique_ptr<BrokerConnection>> retired_connections_;

  std::string member_id_;
  int32_t generation_id_ = -1;
  bool is_leader_ = false;
  // The leader's view when it assigned: topic -> partition count used (-1: unknown then). A
  // different count in later metadata starts a rebalance.
  std::map<std::string, int32_t> assigned_partition_counts_;

  std::set<TopicPartition> owned_;
  // Whether owned partitions receive records (false from the start of a revocation).
  bool delivering_ = false;
  // Positions frozen when fetching stopped, for the commit before revocation and for commits
  // made inside on_partitions_revoked.
  std::map<TopicPartition, int64_t> frozen_positions_;

  std::deque<std::shared_ptr<PendingCommit>> commits_;
  bool commit_in_flight_ = false;

  TimerId advance_timer_ = kNoTimer;
  TimerId coordinator_timer_ = kNoTimer;
  TimerId heartbeat_timer_ = kNoTimer;
  TimerId auto_commit_timer_ = kNoTimer;
  TimerId commit_timer_ = kNoTimer;
  bool heartbeat_in_flight_ = false;
  int64_t last_heartbeat_ok_us_ = 0;

  std::vector<absl::AnyInvocable<void()>> close_callbacks_;
  GroupConsumerStats stats_;
  std::shared_ptr<GroupConsumer*> alive_;
};

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_GROUP_CONSUMER_H_
