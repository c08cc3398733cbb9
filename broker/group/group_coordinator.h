// GroupCoordinator: the server side of Kafka's classic consumer group protocol (FindCoordinator,
// JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
// DescribeGroups) for the groups whose __consumer_offsets partition this node hosts. docs/groups.md
// describes the behaviour and the error codes per situation; offsets_records.h the stored records.
//
// Contract:
// - Hosting. A group lives in partition OffsetsPartitionFor(group, partition count) of
//   __consumer_offsets. The node hands partitions to the coordinator with Elect() and takes them
//   back with Resign() (the single node elects itself for all of them once the topic exists; with
//   replication, the partition's leader will). Requests for a group whose partition is not hosted
//   get NOT_COORDINATOR; while an elected partition loads, COORDINATOR_LOAD_IN_PROGRESS; before
//   the topic exists (SetOffsetsTopicPartitions not called), FindCoordinator answers
//   COORDINATOR_NOT_AVAILABLE.
// - Loading. Elect() never loads inside the call: it waits until the log is durable to its end,
//   then replays it from its start to its durable end in steps of at most kLoadStepBytesMax
//   bytes, one per turn of the event loop, rebuilding groups (a group with members comes back
//   Stable, each member with a fresh session timer; one without, Empty) and committed offsets.
// - Durability. An OffsetCommit is answered only once its record is durable in the log; the
//   in-memory offsets change then, so OffsetFetch never returns an offset a crash could take back.
//   A generation's group-metadata record is written when the leader's SyncGroup completes it (the
//   members' SyncGroup answers wait until it is durable), when a static member replaces its id,
//   and when the group becomes Empty.
// - Limits (group_settings.h): members per group (GROUP_MAX_SIZE_REACHED), groups per node,
//   metadata and assignment bytes, partitions per request, session timeouts within the settings.
// - Everything runs on the node's event loop; callbacks run at most once, possibly inside the call.
//   Destroying the coordinator is a crash: pending callbacks are dropped unanswered. Shutdown()
//   (clean stop) answers pending requests with NOT_COORDINATOR and stops every timer.
#ifndef RUNNEL_BROKER_GROUP_GROUP_COORDINATOR_H_
#define RUNNEL_BROKER_GROUP_GROUP_COORDINATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/group/group_settings.h"
#include "broker/group/offsets_records.h"
#include "broker/protocol/error_codes.h"
#include "broker/protocol/messages.h"
#include "broker/storage/partition_log.h"

namespace runnel::group {

// Kafka's group states; GroupStateName gives the names DescribeGroups reports.
enum class GroupState { kEmpty, kPreparingRebalance, kCompletingRebalance, kStable, kDead };
absl::string_view GroupStateName(GroupState state);

// Who sent a request: what JoinGroup records about a member and DescribeGroups reports.
struct RequestContext {
  int16_t api_version = 0;
  std::string client_id;
  std::string client_host;
};

struct GroupCoordinatorStats {
  uint64_t rebalances = 0;       // generations completed (join phases ended)
  uint64_t members_expired = 0;  // by session timeout
  uint64_t members_removed_by_rebalance_timeout = 0;
  uint64_t offsets_committed = 0;  // partitions whose commit became durable
  uint64_t offsets_expired = 0;
  uint64_t records_loaded = 0;
  uint64_t records_skipped = 0;  // undecodable records met while loading
};

class GroupCoordinator {
 public:
  using JoinGroupCallback = absl::AnyInvocable<void(protocol::JoinGroupResponse)>;
  using SyncGroupCallback = absl::AnyInvocable<void(protocol::SyncGroupResponse)>;
  using OffsetCommitCallback = absl::AnyInvocable<void(protocol::OffsetCommitResponse)>;
  // Whether a topic partition exists (an OffsetCommit for one that does not gets
  // UNKNOWN_TOPIC_OR_PARTITION).
  using PartitionExists =
      absl::AnyInvocable<bool(absl::string_view topic, int32_t partition) const>;

  GroupCoordinator(Env& env, GroupSettings settings, PartitionExists partition_exists);
  ~GroupCoordinator();

  GroupCoordinator(const GroupCoordinator&) = delete;
  GroupCoordinator& operator=(const GroupCoordinator&) = delete;

  // The partition count of __consumer_offsets, once the topic exists. Call once.
  void SetOffsetsTopicPartitions(int32_t partition_count);
  int32_t offsets_topic_partitions() const { return partition_count_; }
  // Starts hosting `partition` (see the file comment); `log` must stay open until Resign() or
  // Shutdown(). Electing a hosted partition again resigns it first.
  void Elect(int32_t partition, storage::PartitionLog& log, int32_t leader_epoch);
  // Stops hosting `partition`: its groups leave memory, their waiting requests are answered
  // NOT_COORDINATOR, and commits still waiting for durability are answered NOT_COORDINATOR (the
  // record may still become durable; the next coordinator loads it).
  void Resign(int32_t partition);
  bool IsLoading(int32_t partition) const;
  bool IsHosted(int32_t partition) const;
  // Clean stop: resigns every partition and stops the offsets expiry timer.
  void Shutdown();

  // The requests. Each validates the group id and the hosting state first.
  protocol::FindCoordinatorResponse FindCoordinator(int16_t version,
                                                    const protocol::FindCoordinatorRequest& request,
                                                    NodeId node_id,
                                                    const NetworkAddress& advertised);
  void JoinGroup(const RequestContext& context, protocol::JoinGroupRequest request,
                 JoinGroupCallback done);
  void SyncGroup(const RequestContext& context, protocol::SyncGroupRequest request,
                 SyncGroupCallback done);
  protocol::HeartbeatResponse Heartbeat(const RequestContext& context,
                                        const protocol::HeartbeatRequest& request);
  protocol::LeaveGroupResponse LeaveGroup(const RequestContext& context,
                                          const protocol::LeaveGroupRequest& request);
  void OffsetCommit(const RequestContext& context, protocol::OffsetCommitRequest request,
                    OffsetCommitCallback done);
  protocol::OffsetFetchResponse OffsetFetch(const RequestContext& context,
                                            const protocol::OffsetFetchRequest& request);
  protocol::ListGroupsResponse ListGroups(const RequestContext& context);
  protocol::DescribeGroupsResponse DescribeGroups(const RequestContext& context,
                                                  const protocol::DescribeGroupsRequest& request);

  // For tests and tools: a group's state, generation and member ids (nullopt when unknown here).
  struct GroupView {
    GroupState state = GroupState::kEmpty;
    int32_t generation = 0;
    std::optional<std::string> leader;
    std::vector<std::string> member_ids;
    std::map<std::pair<std::string, int32_t>, int64_t> offsets;
  };
  std::optional<GroupView> ViewGroup(absl::string_view group_id) const;
  size_t group_count() const { return groups_.size(); }
  const GroupCoordinatorStats& stats() const { return stats_; }

  // Runs the offsets expiry now (it also runs every kOffsetsRetentionCheckIntervalMs).
  void ExpireOffsets();
  // A topic was deleted: every hosted group forgets its committed offsets for the topic (with a
  // tombstone for each), as Kafka does, so that a topic created again under the same name is not
  // read from the old topic's positions. A group left Empty with nothing is deleted.
  void RemoveOffsetsOfTopic(absl::string_view topic);

 private:
  struct Member;
  struct Group;
  struct HostedPartition;
  struct LoadState;

  // The hosting check every group request starts with: NONE, or the error to answer.
  protocol::ErrorCode CheckGroupStatus(absl::string_view group_id, bool allow_empty_id) const;
  HostedPartition* HostedFor(absl::string_view group_id);
  Group* FindGroup(absl::string_view group_id);
  const Group* FindGroup(absl::string_view group_id) const;
  Group& CreateGroup(absl::string_view group_id);
  void RemoveGroup(const std::string& group_id);

  // The classic protocol's steps (named after Kafka's GroupCoordinator).
  void JoinUnknownMember(Group& group, const RequestContext& context,
                         protocol::JoinGroupRequest request, JoinGroupCallback done);
  void JoinKnownMember(Group& group, const RequestContext& context,
                       protocol::JoinGroupRequest request, JoinGroupCallback done);
  void AddMemberAndRebalance(Group& group, const RequestContext& context, std::string member_id,
                             protocol::JoinGroupRequest& request, JoinGroupCallback done);
  void UpdateMemberAndRebalance(Group& group, Member& member, protocol::JoinGroupRequest& request,
                                JoinGroupCallback done);
  void ReplaceStaticMember(Group& group, const RequestContext& context, std::string old_member_id,
                           protocol::JoinGroupRequest& request, JoinGroupCallback done);
  void MaybePrepareRebalance(Group& group);
  void PrepareRebalance(Group& group);
  void ScheduleJoinTimer(Group& group, int64_t delay_ms);
  void OnJoinTimer(const std::string& group_id);
  // Completes the join phase when every member has rejoined (not during the initial delay).
  void MaybeCompleteJoin(Group& group);
  void CompleteJoin(Group& group);
  void ResetAndPropagateAssignmentError(Group& group, protocol::ErrorCode error);
  void PropagateAssignment(Group& group);
  void RemoveMemberAndUpdateGroup(Group& group, const std::string& member_id);
  void RemoveMember(Group& group, const std::string& member_id);
  void TransitionTo(Group& group, GroupState state);
  std::string SelectProtocol(const Group& group) const;
  bool SupportsProtocols(const Group& group, absl::string_view protocol_type,
                         const std::vector<protocol::JoinGroupRequest::Protocol>& protocols) const;
  protocol::JoinGroupResponse JoinResponseFor(const Group& group, const Member& member) const;
  std::string NewMemberId(absl::string_view prefix);
  bool IsStaticMemberFenced(const Group& group, absl::string_view member_id,
                            const std::optional<std::string>& group_instance_id) const;

  // Session timers.
  void ScheduleSessionTimer(Group& group, Member& member);
  void OnSessionTimer(const std::string& group_id, const std::string& member_id);
  void SchedulePendingMemberTimer(Group& group, const std::string& member_id, int64_t timeout_ms);

  // Durable state.
  // Writes the group-metadata record (with `assignments` when given, else the members' current
  // ones) and runs `done` once it is durable.
  void StoreGroup(Group& group, const std::map<std::string, std::string>* assignments,
                  absl::AnyInvocable<void(protocol::ErrorCode)> done);
  // Appends records (key, value-or-tombstone) to the group's partition and runs `done` once they
  // are durable, with NONE or the error for the client.
  void AppendRecords(int32_t partition,
                     std::vector<std::pair<std::string, std::optional<std::string>>> records,
                     absl::AnyInvocable<void(protocol::ErrorCode)> done);
  void StartLoad(int32_t partition, uint64_t election);
  void LoadStep(int32_t partition, uint64_t election);
  void FinishLoad(HostedPartition& hosted);
  void ScheduleExpiry();
  // Removes from every loaded group the offsets `doomed` picks, writes a tombstone for each, and
  // deletes the groups left Empty with no members and no offsets (Kafka's cleanupGroupMetadata).
  // Returns how many offsets it removed.
  uint64_t RemoveOffsetsWhere(
      absl::FunctionRef<bool(const Group& group, const std::pair<std::string, int32_t>& key,
                             const OffsetCommitValue& value)>
          doomed);

  Env& env_;
  const GroupSettings settings_;
  PartitionExists partition_exists_;
  int32_t partition_count_ = 0;
  uint64_t elections_ = 0;
  std::map<int32_t, std::unique_ptr<HostedPartition>> hosted_;
  // Ordered by group id: every walk over groups is replayable.
  std::map<std::string, std::unique_ptr<Group>, std::less<>> groups_;
  TimerId expiry_timer_ = kNoTimer;
  GroupCoordinatorStats stats_;
  // Reset by the destructor; every callback holds a weak reference.
  std::shared_ptr<GroupCoordinator*> alive_;
};

}  // namespace runnel::group

#endif  // RUNNEL_BROKER_GROUP_GROUP_COORDINATOR_H_
