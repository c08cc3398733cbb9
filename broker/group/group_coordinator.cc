#include "broker/group/group_coordinator.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/storage/record_batch.h"

namespace runnel::group {

using protocol::ErrorCode;
using protocol::ToWire;

namespace {

using Protocols = std::vector<protocol::JoinGroupRequest::Protocol>;
using TopicPartitionKey = std::pair<std::string, int32_t>;

int64_t TimerUs(int64_t ms) { return std::max<int64_t>(ms, 0) * 1000; }

bool IsValidTransition(GroupState from, GroupState to) {
  switch (to) {
    case GroupState::kDead:
      return true;
    case GroupState::kCompletingRebalance:
      return from == GroupState::kPreparingRebalance;
    case GroupState::kStable:
      return from == GroupState::kCompletingRebalance;
    case GroupState::kPreparingRebalance:
      return from == GroupState::kStable || from == GroupState::kCompletingRebalance ||
             from == GroupState::kEmpty;
    case GroupState::kEmpty:
      return from == GroupState::kPreparingRebalance;
  }
  return false;
}

// The error a failed append or durability wait of the offsets log means for the client.
ErrorCode AppendErrorFor(const absl::Status& status) {
  if (absl::IsFailedPrecondition(status)) return ErrorCode::kNotCoordinator;
  if (absl::IsOutOfRange(status) || absl::IsInvalidArgument(status)) {
    return ErrorCode::kInvalidCommitOffsetSize;
  }
  return ErrorCode::kCoordinatorNotAvailable;
}

}  // namespace

absl::string_view GroupStateName(GroupState state) {
  switch (state) {
    case GroupState::kEmpty:
      return "Empty";
    case GroupState::kPreparingRebalance:
      return "PreparingRebalance";
    case GroupState::kCompletingRebalance:
      return "CompletingRebalance";
    case GroupState::kStable:
      return "Stable";
    case GroupState::kDead:
      return "Dead";
  }
  return "Dead";
}

struct GroupCoordinator::Member {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  Protocols protocols;
  std::string assignment;
  // Joined during the current rebalance.
  bool is_new = false;
  // A JoinGroup or SyncGroup request waiting for the join phase or the assignment.
  JoinGroupCallback awaiting_join;
  SyncGroupCallback awaiting_sync;
  TimerId session_timer = kNoTimer;

  // The member's metadata for `protocol_name`, empty when it has none.
  std::string MetadataFor(absl::string_view protocol_name) const {
    for (const auto& protocol : protocols) {
      if (protocol.name == protocol_name) return protocol.metadata;
    }
    return {};
  }
};

struct GroupCoordinator::Group {
  std::string id;
  int32_t partition = 0;
  GroupState state = GroupState::kEmpty;
  int64_t state_timestamp_ms = 0;
  int32_t generation = 0;
  // Empty for a group that only stores offsets (never used group management).
  std::string protocol_type;
  std::optional<std::string> protocol_name;
  std::optional<std::string> leader;
  std::map<std::string, Member> members;
  // group_instance_id -> member id of the static members.
  std::map<std::string, std::string> static_members;
  // Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with their expiry timers.
  std::map<std::string, TimerId> pending_members;
  // The join phase's timer: the initial delay of an Empty group, or the rebalance timeout.
  TimerId join_timer = kNoTimer;
  bool initial_delay = false;
  bool new_member_added = false;
  int64_t initial_delay_remaining_ms = 0;
  int64_t initial_delay_last_ms = 0;
  std::map<TopicPartitionKey, OffsetCommitValue> offsets;

  bool AllMembersJoined() const {
    if (!pending_members.empty()) return false;
    for (const auto& [id, member] : members) {
      if (member.awaiting_join == nullptr) return false;
    }
    return true;
  }
  int32_t RebalanceTimeoutMs() const {
    int32_t timeout_ms = 0;
    for (const auto& [id, member] : members) {
      timeout_ms = std::max(timeout_ms, member.rebalance_timeout_ms);
    }
    return timeout_ms;
  }
  void CheckInvariants() const {
    // The leader is a member; a group without members has none.
    assert(!leader.has_value() || members.contains(*leader));
    assert(members.empty() || leader.has_value());
    assert(state != GroupState::kStable || protocol_name.has_value());
    for ([[maybe_unused]] const auto& [instance, member_id] : static_members) {
      assert(members.contains(member_id));
    }
  }
};

struct GroupCoordinator::LoadState {
  int64_t next_offset = 0;
  int64_t end_offset = 0;
  std::map<std::string, std::optional<GroupMetadataValue>> groups;
  std::map<std::string, std::map<TopicPartitionKey, std::optional<OffsetCommitValue>>> offsets;
};

struct GroupCoordinator::HostedPartition {
  int32_t partition = 0;
  storage::PartitionLog* log = nullptr;
  int32_t leader_epoch = 0;
  uint64_t election = 0;
  bool loaded = false;
  // Loading failed (an unreadable log): requests get COORDINATOR_NOT_AVAILABLE.
  bool failed = false;
  std::unique_ptr<LoadState> load;
};

GroupCoordinator::GroupCoordinator(Env& env, GroupSettings settings,
                                   PartitionExists partition_exists)
    : env_(env),
      settings_(std::move(settings)),
      partition_exists_(std::move(partition_exists)),
      alive_(std::make_shared<GroupCoordinator*>(this)) {}

GroupCoordinator::~GroupCoordinator() {
  alive_.reset();
  Clock& clock = env_.clock();
  if (expiry_timer_ != kNoTimer) clock.CancelTimer(expiry_timer_);
  for (auto& [id, group] : groups_) {
    if (group->join_timer != kNoTimer) clock.CancelTimer(group->join_timer);
    for (auto& [member_id, timer] : group->pending_members) clock.CancelTimer(timer);
    for (auto& [member_id, member] : group->members) {
      if (member.session_timer != kNoTimer) clock.CancelTimer(member.session_timer);
    }
  }
}

// --- Hosting ----------------------------------------------------------------------------------

void GroupCoordinator::SetOffsetsTopicPartitions(int32_t partition_count) {
  assert(partition_count > 0);
  assert(partition_count_ == 0);
  partition_count_ = partition_count;
  ScheduleExpiry();
}

bool GroupCoordinator::IsHosted(int32_t partition) const { return hosted_.contains(partition); }

bool GroupCoordinator::IsLoading(int32_t partition) const {
  auto it = hosted_.find(partition);
  return it != hosted_.end() && !it->second->loaded && !it->second->failed;
}

void GroupCoordinator::Elect(int32_t partition, storage::PartitionLog& log, int32_t leader_epoch) {
  assert(partition >= 0 && partition < partition_count_);
  if (hosted_.contains(partition)) Resign(partition);
  auto hosted = std::make_unique<HostedPartition>();
  hosted->partition = partition;
  hosted->log = &log;
  hosted->leader_epoch = leader_epoch;
  hosted->election = ++elections_;
  const uint64_t election = hosted->election;
  hosted_[partition] = std::move(hosted);
  env_.RecordEvent(SemanticEvent{
      .kind = "group-coordinator-elect", .subject = kOffsetsTopic, .value = partition});
  // Never inside the call: the caller may still be setting up.
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  env_.clock().ScheduleAfter(0, [alive, partition, election] {
    if (!alive.expired()) (*alive.lock())->StartLoad(partition, election);
  });
}

void GroupCoordinator::Resign(int32_t partition) {
  auto it = hosted_.find(partition);
  if (it == hosted_.end()) return;
  hosted_.erase(it);
  env_.RecordEvent(SemanticEvent{
      .kind = "group-coordinator-resign", .subject = kOffsetsTopic, .value = partition});
  std::vector<std::string> doomed;
  for (const auto& [id, group] : groups_) {
    if (group->partition == partition) doomed.push_back(id);
  }
  Clock& clock = env_.clock();
  for (const std::string& id : doomed) {
    auto group_it = groups_.find(id);
    std::unique_ptr<Group> group = std::move(group_it->second);
    groups_.erase(group_it);
    if (group->join_timer != kNoTimer) clock.CancelTimer(group->join_timer);
    for (auto& [member_id, timer] : group->pending_members) clock.CancelTimer(timer);
    for (auto& [member_id, member] : group->members) {
      if (member.session_timer != kNoTimer) clock.CancelTimer(member.session_timer);
      if (member.awaiting_join != nullptr) {
        protocol::JoinGroupResponse response;
        response.error_code = ToWire(ErrorCode::kNotCoordinator);
        response.member_id = member.member_id;
        std::exchange(member.awaiting_join, nullptr)(std::move(response));
      }
      if (member.awaiting_sync != nullptr) {
        protocol::SyncGroupResponse response;
        response.error_code = ToWire(ErrorCode::kNotCoordinator);
        std::exchange(member.awaiting_sync, nullptr)(std::move(response));
      }
    }
  }
}

void GroupCoordinator::Shutdown() {
  std::vector<int32_t> partitions;
  for (const auto& [partition, hosted] : hosted_) partitions.push_back(partition);
  for (int32_t partition : partitions) Resign(partition);
  if (expiry_timer_ != kNoTimer) env_.clock().CancelTimer(expiry_timer_);
  expiry_timer_ = kNoTimer;
}

ErrorCode GroupCoordinator::CheckGroupStatus(absl::string_view group_id,
                                             bool allow_empty_id) const {
  if ((!allow_empty_id && group_id.empty()) || group_id.size() > kGroupIdBytesMax) {
    return ErrorCode::kInvalidGroupId;
  }
  if (partition_count_ == 0) return ErrorCode::kCoordinatorNotAvailable;
  auto it = hosted_.find(OffsetsPartitionFor(group_id, partition_count_));
  if (it == hosted_.end()) return ErrorCode::kNotCoordinator;
  if (it->second->failed) return ErrorCode::kCoordinatorNotAvailable;
  if (!it->second->loaded) return ErrorCode::kCoordinatorLoadInProgress;
  return ErrorCode::kNone;
}

GroupCoordinator::Group* GroupCoordinator::FindGroup(absl::string_view group_id) {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

const GroupCoordinator::Group* GroupCoordinator::FindGroup(absl::string_view group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

GroupCoordinator::Group& GroupCoordinator::CreateGroup(absl::string_view group_id) {
  assert(!groups_.contains(group_id));
  auto group = std::make_unique<Group>();
  group->id = std::string(group_id);
  group->partition = OffsetsPartitionFor(group_id, partition_count_);
  group->state_timestamp_ms = env_.clock().WallNowMs();
  Group& created = *group;
  groups_.emplace(group->id, std::move(group));
  return created;
}

void GroupCoordinator::RemoveGroup(const std::string& group_id) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return;
  Group& group = *it->second;
  // Only a group with nothing left in it goes: no member may be left waiting.
  assert(group.members.empty());
  Clock& clock = env_.clock();
  if (group.join_timer != kNoTimer) clock.CancelTimer(group.join_timer);
  for (auto& [member_id, timer] : group.pending_members) clock.CancelTimer(timer);
  groups_.erase(it);
}

void GroupCoordinator::TransitionTo(Group& group, GroupState state) {
  assert(IsValidTransition(group.state, state));
  group.state = state;
  group.state_timestamp_ms = env_.clock().WallNowMs();
  env_.RecordEvent(SemanticEvent{.kind = "group-state",
                                 .subject = group.id,
                                 .value = static_cast<int64_t>(state),
                                 .detail = GroupStateName(state)});
}

std::string GroupCoordinator::NewMemberId(absl::string_view prefix) {
  // Kafka's ids are the client id (or instance id) and a UUID; the Env's Random keeps them
  // replayable.
  constexpr size_t kPrefixBytesMax = kNameBytesMax - 33;
  const uint64_t high = env_.random().Next64();
  const uint64_t low = env_.random().Next64();
  return absl::StrFormat("%s-%016x%016x", prefix.substr(0, kPrefixBytesMax), high, low);
}

bool GroupCoordinator::IsStaticMemberFenced(
    const Group& group, absl::string_view member_id,
    const std::optional<std::string>& group_instance_id) const {
  if (!group_instance_id.has_value()) return false;
  auto it = group.static_members.find(*group_instance_id);
  return it != group.static_members.end() && it->second != member_id;
}

// --- FindCoordinator --------------------------------------------------------------------------

protocol::FindCoordinatorResponse GroupCoordinator::FindCoordinator(
    int16_t, const protocol::FindCoordinatorRequest& request, NodeId node_id,
    const NetworkAddress& advertised) {
  protocol::FindCoordinatorResponse response;
  auto refuse = [&response](ErrorCode error, absl::string_view message) {
    response.error_code = ToWire(error);
    response.error_message = std::string(message);
    response.node_id = -1;
    response.host.clear();
    response.port = -1;
  };
  if (request.key_type == protocol::kCoordinatorKeyTransaction) {
    // No transactions: the same refusal InitProducerId gives a transactional producer.
    refuse(ErrorCode::kTransactionalIdAuthorizationFailed,
           "transactions are not supported by this broker");
    return response;
  }
  if (request.key_type != protocol::kCoordinatorKeyGroup) {
    refuse(ErrorCode::kInvalidRequest, absl::StrCat("unknown key type ", request.key_type));
    return response;
  }
  if (request.key.size() > kGroupIdBytesMax) {
    refuse(ErrorCode::kInvalidGroupId, "the group id is too long");
    return response;
  }
  if (partition_count_ == 0 || !IsHosted(OffsetsPartitionFor(request.key, partition_count_))) {
    refuse(ErrorCode::kCoordinatorNotAvailable, "the group's coordinator is not available");
    return response;
  }
  response.node_id = node_id;
  response.host = advertised.host;
  response.port = advertised.port;
  return response;
}

// --- JoinGroup --------------------------------------------------------------------------------

void GroupCoordinator::JoinGroup(const RequestContext& context, protocol::JoinGroupRequest request,
                                 JoinGroupCallback done) {
  auto fail = [&](ErrorCode error) {
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(error);
    response.member_id = request.member_id;
    done(std::move(response));
  };
  if (ErrorCode status = CheckGroupStatus(request.group_id, false); status != ErrorCode::kNone) {
    return fail(status);
  }
  // v0 has no rebalance timeout: the session timeout stands for it, as in Kafka.
  if (request.rebalance_timeout_ms < 0) request.rebalance_timeout_ms = request.session_timeout_ms;
  if (request.session_timeout_ms < settings_.group_min_session_timeout_ms ||
      request.session_timeout_ms > settings_.group_max_session_timeout_ms) {
    return fail(ErrorCode::kInvalidSessionTimeout);
  }
  if (request.protocol_type.empty() || request.protocols.empty()) {
    return fail(ErrorCode::kInconsistentGroupProtocol);
  }
  bool too_large =
      request.protocol_type.size() > kNameBytesMax || request.member_id.size() > kNameBytesMax ||
      request.protocols.size() > kProtocolsPerMemberMax ||
      (request.group_instance_id.has_value() &&
       (request.group_instance_id->empty() || request.group_instance_id->size() > kNameBytesMax));
  for (const auto& protocol : request.protocols) {
    too_large = too_large || protocol.name.size() > kNameBytesMax ||
                protocol.metadata.size() > kMemberMetadataBytesMax;
  }
  if (too_large) return fail(ErrorCode::kInvalidRequest);

  const bool unknown_member = request.member_id.empty();
  Group* group = FindGroup(request.group_id);
  if (group == nullptr) {
    if (!unknown_member) return fail(ErrorCode::kUnknownMemberId);
    if (groups_.size() >= kGroupsMax) return fail(ErrorCode::kCoordinatorNotAvailable);
    group = &CreateGroup(request.group_id);
  }
  const bool known = !unknown_member && (group->members.contains(request.member_id) ||
                                         group->pending_members.contains(request.member_id));
  const bool known_instance = request.group_instance_id.has_value() &&
                              group->static_members.contains(*request.group_instance_id);
  if (!known && !known_instance &&
      group->members.size() + group->pending_members.size() >=
          static_cast<size_t>(settings_.group_max_size)) {
    return fail(ErrorCode::kGroupMaxSizeReached);
  }
  const std::string group_id = group->id;
  if (unknown_member) {
    JoinUnknownMember(*group, context, std::move(request), std::move(done));
  } else {
    JoinKnownMember(*group, context, std::move(request), std::move(done));
  }
  if (Group* after = FindGroup(group_id);
      after != nullptr && after->state == GroupState::kPreparingRebalance) {
    MaybeCompleteJoin(*after);
  }
}

void GroupCoordinator::JoinUnknownMember(Group& group, const RequestContext& context,
                                         protocol::JoinGroupRequest request,
                                         JoinGroupCallback done) {
  auto fail = [&](ErrorCode error) {
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(error);
    done(std::move(response));
  };
  if (group.state == GroupState::kDead) return fail(ErrorCode::kCoordinatorNotAvailable);
  if (!SupportsProtocols(group, request.protocol_type, request.protocols)) {
    return fail(ErrorCode::kInconsistentGroupProtocol);
  }
  if (request.group_instance_id.has_value()) {
    auto it = group.static_members.find(*request.group_instance_id);
    if (it != group.static_members.end()) {
      ReplaceStaticMember(group, context, it->second, request, std::move(done));
      return;
    }
    AddMemberAndRebalance(group, context, NewMemberId(*request.group_instance_id), request,
                          std::move(done));
    return;
  }
  std::string member_id = NewMemberId(context.client_id);
  if (context.api_version >= 4) {
    // KIP-394: the member must come back with this id, so that a client whose first response got
    // lost does not leave a ghost member behind.
    SchedulePendingMemberTimer(group, member_id, request.session_timeout_ms);
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(ErrorCode::kMemberIdRequired);
    response.member_id = std::move(member_id);
    done(std::move(response));
    return;
  }
  AddMemberAndRebalance(group, context, std::move(member_id), request, std::move(done));
}

void GroupCoordinator::JoinKnownMember(Group& group, const RequestContext& context,
                                       protocol::JoinGroupRequest request, JoinGroupCallback done) {
  auto fail = [&](ErrorCode error) {
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(error);
    response.member_id = request.member_id;
    done(std::move(response));
  };
  if (group.state == GroupState::kDead) return fail(ErrorCode::kCoordinatorNotAvailable);
  if (!SupportsProtocols(group, request.protocol_type, request.protocols)) {
    return fail(ErrorCode::kInconsistentGroupProtocol);
  }
  if (auto pending = group.pending_members.find(request.member_id);
      pending != group.pending_members.end()) {
    env_.clock().CancelTimer(pending->second);
    group.pending_members.erase(pending);
    AddMemberAndRebalance(group, context, request.member_id, request, std::move(done));
    return;
  }
  if (IsStaticMemberFenced(group, request.member_id, request.group_instance_id)) {
    return fail(ErrorCode::kFencedInstanceId);
  }
  auto it = group.members.find(request.member_id);
  if (it == group.members.end()) return fail(ErrorCode::kUnknownMemberId);
  Member& member = it->second;
  const bool same_protocols = member.protocols == request.protocols;
  switch (group.state) {
    case GroupState::kPreparingRebalance:
      UpdateMemberAndRebalance(group, member, request, std::move(done));
      return;
    case GroupState::kCompletingRebalance:
      if (same_protocols) {
        // The member lost its JoinGroup response: give it the current generation again.
        done(JoinResponseFor(group, member));
      } else {
        UpdateMemberAndRebalance(group, member, request, std::move(done));
      }
      return;
    case GroupState::kStable:
      if (group.leader == member.member_id || !same_protocols) {
        // The leader rejoining means it wants a new assignment (its subscription changed).
        UpdateMemberAndRebalance(group, member, request, std::move(done));
      } else {
        ScheduleSessionTimer(group, member);
        done(JoinResponseFor(group, member));
      }
      return;
    case GroupState::kEmpty:
    case GroupState::kDead:
      return fail(ErrorCode::kUnknownMemberId);
  }
}

void GroupCoordinator::AddMemberAndRebalance(Group& group, const RequestContext& context,
                                             std::string member_id,
                                             protocol::JoinGroupRequest& request,
                                             JoinGroupCallback done) {
  assert(!group.members.contains(member_id));
  Member member;
  member.member_id = member_id;
  member.group_instance_id = request.group_instance_id;
  member.client_id = context.client_id;
  member.client_host = context.client_host;
  member.session_timeout_ms = request.session_timeout_ms;
  member.rebalance_timeout_ms = request.rebalance_timeout_ms;
  member.protocol_type = request.protocol_type;
  member.protocols = std::move(request.protocols);
  member.is_new = true;
  member.awaiting_join = std::move(done);
  if (group.members.empty()) group.protocol_type = member.protocol_type;
  if (member.group_instance_id.has_value()) {
    group.static_members[*member.group_instance_id] = member_id;
  }
  Member& added = group.members.emplace(member_id, std::move(member)).first->second;
  if (!group.leader.has_value()) group.leader = member_id;
  group.new_member_added = true;
  ScheduleSessionTimer(group, added);
  group.CheckInvariants();
  MaybePrepareRebalance(group);
}

void GroupCoordinator::UpdateMemberAndRebalance(Group& group, Member& member,
                                                protocol::JoinGroupRequest& request,
                                                JoinGroupCallback done) {
  if (member.awaiting_join != nullptr) {
    // A second JoinGroup while the first still waits: the first is answered so that no response
    // slot of the member's connection stays open.
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(ErrorCode::kRebalanceInProgress);
    response.member_id = member.member_id;
    std::exchange(member.awaiting_join, nullptr)(std::move(response));
  }
  member.protocols = std::move(request.protocols);
  member.session_timeout_ms = request.session_timeout_ms;
  member.rebalance_timeout_ms = request.rebalance_timeout_ms;
  member.awaiting_join = std::move(done);
  ScheduleSessionTimer(group, member);
  MaybePrepareRebalance(group);
}

void GroupCoordinator::ReplaceStaticMember(Group& group, const RequestContext& context,
                                           std::string old_member_id,
                                           protocol::JoinGroupRequest& request,
                                           JoinGroupCallback done) {
  auto it = group.members.find(old_member_id);
  assert(it != group.members.end());
  Member member = std::move(it->second);
  group.members.erase(it);
  if (member.session_timer != kNoTimer) env_.clock().CancelTimer(member.session_timer);
  member.session_timer = kNoTimer;
  // The old incarnation is fenced: whatever it was waiting for is answered so.
  if (member.awaiting_join != nullptr) {
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(ErrorCode::kFencedInstanceId);
    response.member_id = old_member_id;
    std::exchange(member.awaiting_join, nullptr)(std::move(response));
  }
  if (member.awaiting_sync != nullptr) {
    protocol::SyncGroupResponse response;
    response.error_code = ToWire(ErrorCode::kFencedInstanceId);
    std::exchange(member.awaiting_sync, nullptr)(std::move(response));
  }
  const std::string new_member_id = NewMemberId(*request.group_instance_id);
  member.member_id = new_member_id;
  member.client_id = context.client_id;
  member.client_host = context.client_host;
  member.session_timeout_ms = request.session_timeout_ms;
  member.rebalance_timeout_ms = request.rebalance_timeout_ms;
  member.protocols = std::move(request.protocols);
  group.static_members[*request.group_instance_id] = new_member_id;
  const std::optional<std::string> old_leader = group.leader;
  if (group.leader == old_member_id) group.leader = new_member_id;
  Member& replaced = group.members.emplace(new_member_id, std::move(member)).first->second;
  ScheduleSessionTimer(group, replaced);
  group.CheckInvariants();

  switch (group.state) {
    case GroupState::kStable: {
      if (group.protocol_name == SelectProtocol(group)) {
        // No rebalance: the member takes the old one's place and assignment. The answer names the
        // old leader id so that no member believes it must assign while the group is Stable.
        const int32_t generation = group.generation;
        const std::string protocol_name = group.protocol_name.value_or("");
        StoreGroup(group, nullptr,
                   [done = std::move(done), generation, protocol_name, old_leader,
                    new_member_id](ErrorCode error) mutable {
                     protocol::JoinGroupResponse response;
                     response.error_code = ToWire(error);
                     response.member_id = new_member_id;
                     if (error == ErrorCode::kNone) {
                       response.generation_id = generation;
                       response.protocol_name = protocol_name;
                       response.leader = old_leader.value_or("");
                     }
                     done(std::move(response));
                   });
      } else {
        replaced.awaiting_join = std::move(done);
        MaybePrepareRebalance(group);
      }
      return;
    }
    case GroupState::kCompletingRebalance:
      // The leader may be assigning to the old member id: the generation must be redone.
      replaced.awaiting_join = std::move(done);
      PrepareRebalance(group);
      return;
    case GroupState::kPreparingRebalance:
      replaced.awaiting_join = std::move(done);
      return;
    case GroupState::kEmpty:
    case GroupState::kDead: {
      // A group with a static member has members, so it is neither.
      assert(false && "static member in an Empty or Dead group");
      protocol::JoinGroupResponse response;
      response.error_code = ToWire(ErrorCode::kUnknownMemberId);
      done(std::move(response));
      return;
    }
  }
}

bool GroupCoordinator::SupportsProtocols(const Group& group, absl::string_view protocol_type,
                                         const Protocols& protocols) const {
  if (group.members.empty()) return !protocol_type.empty() && !protocols.empty();
  if (group.protocol_type != protocol_type) return false;
  for (const auto& protocol : protocols) {
    bool everyone = true;
    for (const auto& [id, member] : group.members) {
      const bool has = std::any_of(member.protocols.begin(), member.protocols.end(),
                                   [&](const auto& p) { return p.name == protocol.name; });
      if (!has) {
        everyone = false;
        break;
      }
    }
    if (everyone) return true;
  }
  return false;
}

std::string GroupCoordinator::SelectProtocol(const Group& group) const {
  assert(!group.members.empty());
  // Candidates: the protocols every member supports.
  std::set<std::string> candidates;
  for (const auto& protocol : group.members.begin()->second.protocols) {
    candidates.insert(protocol.name);
  }
  for (const auto& [id, member] : group.members) {
    std::set<std::string> supported;
    for (const auto& protocol : member.protocols) {
      if (candidates.contains(protocol.name)) supported.insert(protocol.name);
    }
    candidates = std::move(supported);
  }
  assert(!candidates.empty());
  // Each member votes for the first candidate in its order of preference; the most votes win,
  // ties going to the smallest name so that the choice is replayable.
  std::map<std::string, int> votes;
  for (const auto& [id, member] : group.members) {
    for (const auto& protocol : member.protocols) {
      if (candidates.contains(protocol.name)) {
        ++votes[protocol.name];
        break;
      }
    }
  }
  std::string chosen;
  int chosen_votes = -1;
  for (const auto& [name, count] : votes) {
    if (count > chosen_votes) {
      chosen = name;
      chosen_votes = count;
    }
  }
  return chosen;
}

protocol::JoinGroupResponse GroupCoordinator::JoinResponseFor(const Group& group,
                                                              const Member& member) const {
  protocol::JoinGroupResponse response;
  response.generation_id = group.generation;
  response.protocol_name = group.protocol_name.value_or("");
  response.leader = group.leader.value_or("");
  response.member_id = member.member_id;
  if (group.leader == member.member_id) {
    for (const auto& [id, other] : group.members) {
      response.members.push_back(protocol::JoinGroupResponse::Member{
          .member_id = id,
          .group_instance_id = other.group_instance_id,
          .metadata = other.MetadataFor(response.protocol_name),
      });
    }
  }
  return response;
}

void GroupCoordinator::MaybePrepareRebalance(Group& group) {
  if (group.state == GroupState::kStable || group.state == GroupState::kCompletingRebalance ||
      group.state == GroupState::kEmpty) {
    PrepareRebalance(group);
  }
}

void GroupCoordinator::PrepareRebalance(Group& group) {
  if (group.state == GroupState::kCompletingRebalance) {
    ResetAndPropagateAssignmentError(group, ErrorCode::kRebalanceInProgress);
  }
  const bool was_empty = group.state == GroupState::kEmpty;
  TransitionTo(group, GroupState::kPreparingRebalance);
  const int64_t rebalance_timeout_ms = group.RebalanceTimeoutMs();
  if (was_empty) {
    // The first rebalance of an Empty group waits for more members to arrive.
    group.initial_delay = true;
    group.new_member_added = false;
    group.initial_delay_last_ms = settings_.group_initial_rebalance_delay_ms;
    group.initial_delay_remaining_ms =
        std::max<int64_t>(rebalance_timeout_ms - settings_.group_initial_rebalance_delay_ms, 0);
    ScheduleJoinTimer(group, settings_.group_initial_rebalance_delay_ms);
  } else {
    group.initial_delay = false;
    ScheduleJoinTimer(group, rebalance_timeout_ms);
    MaybeCompleteJoin(group);
  }
}

void GroupCoordinator::ScheduleJoinTimer(Group& group, int64_t delay_ms) {
  if (group.join_timer != kNoTimer) env_.clock().CancelTimer(group.join_timer);
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  group.join_timer = env_.clock().ScheduleAfter(TimerUs(delay_ms), [alive, group_id = group.id] {
    if (!alive.expired()) (*alive.lock())->OnJoinTimer(group_id);
  });
}

void GroupCoordinator::OnJoinTimer(const std::string& group_id) {
  Group* group = FindGroup(group_id);
  if (group == nullptr) return;
  group->join_timer = kNoTimer;
  if (group->state != GroupState::kPreparingRebalance) return;
  if (group->initial_delay && group->new_member_added && group->initial_delay_remaining_ms > 0) {
    // Members keep arriving: wait once more, within the rebalance timeout.
    group->new_member_added = false;
    const int64_t delay_ms =
        std::min(settings_.group_initial_rebalance_delay_ms, group->initial_delay_remaining_ms);
    group->initial_delay_remaining_ms =
        std::max<int64_t>(group->initial_delay_remaining_ms - group->initial_delay_last_ms, 0);
    group->initial_delay_last_ms = delay_ms;
    ScheduleJoinTimer(*group, delay_ms);
    return;
  }
  CompleteJoin(*group);
}

void GroupCoordinator::MaybeCompleteJoin(Group& group) {
  if (group.state == GroupState::kPreparingRebalance && !group.initial_delay &&
      group.AllMembersJoined()) {
    CompleteJoin(group);
  }
}

void GroupCoordinator::CompleteJoin(Group& group) {
  assert(group.state == GroupState::kPreparingRebalance);
  if (group.join_timer != kNoTimer) env_.clock().CancelTimer(group.join_timer);
  group.join_timer = kNoTimer;
  group.initial_delay = false;
  // Dynamic members that did not rejoin in time are out; static ones keep their place until their
  // session expires, as in Kafka.
  std::vector<std::string> missing;
  for (const auto& [id, member] : group.members) {
    if (member.awaiting_join == nullptr && !member.group_instance_id.has_value()) {
      missing.push_back(id);
    }
  }
  for (const std::string& id : missing) {
    RemoveMember(group, id);
    ++stats_.members_removed_by_rebalance_timeout;
  }
  // The leader must be one of the members that rejoined.
  if (group.leader.has_value() && group.members.at(*group.leader).awaiting_join == nullptr) {
    for (const auto& [id, member] : group.members) {
      if (member.awaiting_join != nullptr) {
        group.leader = id;
        break;
      }
    }
  }
  const int32_t previous_generation = group.generation;
  ++group.generation;
  assert(group.generation > previous_generation);
  ++stats_.rebalances;
  if (group.members.empty()) {
    group.protocol_name.reset();
    TransitionTo(group, GroupState::kEmpty);
    group.CheckInvariants();
    const std::string group_id = group.id;
    StoreGroup(group, nullptr, [this, group_id](ErrorCode error) {
      if (error != ErrorCode::kNone) {
        env_.Log(LogLevel::kWarning,
                 absl::StrCat("group coordinator: storing empty group ", group_id,
                              " failed: ", protocol::ErrorCodeName(error)));
      }
    });
    return;
  }
  group.protocol_name = SelectProtocol(group);
  TransitionTo(group, GroupState::kCompletingRebalance);
  group.CheckInvariants();
  env_.RecordEvent(
      SemanticEvent{.kind = "group-generation", .subject = group.id, .value = group.generation});
  for (auto& [id, member] : group.members) {
    member.assignment.clear();
    if (member.awaiting_join != nullptr) {
      protocol::JoinGroupResponse response = JoinResponseFor(group, member);
      std::exchange(member.awaiting_join, nullptr)(std::move(response));
    }
    member.is_new = false;
    ScheduleSessionTimer(group, member);
  }
}

void GroupCoordinator::ResetAndPropagateAssignmentError(Group& group, ErrorCode error) {
  for (auto& [id, member] : group.members) {
    member.assignment.clear();
    if (member.awaiting_sync != nullptr) {
      protocol::SyncGroupResponse response;
      response.error_code = ToWire(error);
      std::exchange(member.awaiting_sync, nullptr)(std::move(response));
    }
  }
}

void GroupCoordinator::PropagateAssignment(Group& group) {
  for (auto& [id, member] : group.members) {
    if (member.awaiting_sync != nullptr) {
      protocol::SyncGroupResponse response;
      response.assignment = member.assignment;
      std::exchange(member.awaiting_sync, nullptr)(std::move(response));
      ScheduleSessionTimer(group, member);
    }
  }
}

void GroupCoordinator::RemoveMember(Group& group, const std::string& member_id) {
  auto it = group.members.find(member_id);
  if (it == group.members.end()) return;
  Member& member = it->second;
  if (member.session_timer != kNoTimer) env_.clock().CancelTimer(member.session_timer);
  // Requests the member still has waiting are answered, so that its connection's order holds.
  if (member.awaiting_join != nullptr) {
    protocol::JoinGroupResponse response;
    response.error_code = ToWire(ErrorCode::kUnknownMemberId);
    response.member_id = member_id;
    std::exchange(member.awaiting_join, nullptr)(std::move(response));
  }
  if (member.awaiting_sync != nullptr) {
    protocol::SyncGroupResponse response;
    response.error_code = ToWire(ErrorCode::kUnknownMemberId);
    std::exchange(member.awaiting_sync, nullptr)(std::move(response));
  }
  if (member.group_instance_id.has_value()) {
    auto instance = group.static_members.find(*member.group_instance_id);
    if (instance != group.static_members.end() && instance->second == member_id) {
      group.static_members.erase(instance);
    }
  }
  group.members.erase(it);
  if (group.leader == member_id) {
    if (group.members.empty()) {
      group.leader.reset();
    } else {
      group.leader = group.members.begin()->first;
    }
  }
  group.CheckInvariants();
}

void GroupCoordinator::RemoveMemberAndUpdateGroup(Group& group, const std::string& member_id) {
  RemoveMember(group, member_id);
  switch (group.state) {
    case GroupState::kDead:
    case GroupState::kEmpty:
      return;
    case GroupState::kPreparingRebalance:
      MaybeCompleteJoin(group);
      return;
    case GroupState::kStable:
    case GroupState::kCompletingRebalance:
      PrepareRebalance(group);
      return;
  }
}

// --- Session timers ---------------------------------------------------------------------------

void GroupCoordinator::ScheduleSessionTimer(Group& group, Member& member) {
  Clock& clock = env_.clock();
  if (member.session_timer != kNoTimer) clock.CancelTimer(member.session_timer);
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  member.session_timer =
      clock.ScheduleAfter(TimerUs(member.session_timeout_ms),
                          [alive, group_id = group.id, member_id = member.member_id] {
                            if (!alive.expired())
                              (*alive.lock())->OnSessionTimer(group_id, member_id);
                          });
}

void GroupCoordinator::OnSessionTimer(const std::string& group_id, const std::string& member_id) {
  Group* group = FindGroup(group_id);
  if (group == nullptr) return;
  auto it = group->members.find(member_id);
  if (it == group->members.end()) return;
  Member& member = it->second;
  member.session_timer = kNoTimer;
  if (member.awaiting_join != nullptr || member.awaiting_sync != nullptr) {
    // A member waiting for the coordinator cannot heartbeat; the rebalance timeout bounds it.
    ScheduleSessionTimer(*group, member);
    return;
  }
  ++stats_.members_expired;
  env_.Log(LogLevel::kInfo,
           absl::StrCat("group coordinator: member ", member_id, " of group ", group_id,
                        " expired (no heartbeat for ", member.session_timeout_ms, " ms)"));
  RemoveMemberAndUpdateGroup(*group, member_id);
}

void GroupCoordinator::SchedulePendingMemberTimer(Group& group, const std::string& member_id,
                                                  int64_t timeout_ms) {
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  group.pending_members[member_id] =
      env_.clock().ScheduleAfter(TimerUs(timeout_ms), [alive, group_id = group.id, member_id] {
        if (alive.expired()) return;
        GroupCoordinator* self = *alive.lock();
        Group* group = self->FindGroup(group_id);
        if (group == nullptr || group->pending_members.erase(member_id) == 0) return;
        self->MaybeCompleteJoin(*group);
      });
}

// --- SyncGroup, Heartbeat, LeaveGroup ---------------------------------------------------------

void GroupCoordinator::SyncGroup(const RequestContext&, protocol::SyncGroupRequest request,
                                 SyncGroupCallback done) {
  auto fail = [&](ErrorCode error) {
    protocol::SyncGroupResponse response;
    response.error_code = ToWire(error);
    done(std::move(response));
  };
  if (ErrorCode status = CheckGroupStatus(request.group_id, false); status != ErrorCode::kNone) {
    return fail(status);
  }
  Group* group = FindGroup(request.group_id);
  if (group == nullptr) return fail(ErrorCode::kUnknownMemberId);
  if (IsStaticMemberFenced(*group, request.member_id, request.group_instance_id)) {
    return fail(ErrorCode::kFencedInstanceId);
  }
  auto it = group->members.find(request.member_id);
  if (it == group->members.end()) return fail(ErrorCode::kUnknownMemberId);
  if (request.generation_id != group->generation) return fail(ErrorCode::kIllegalGeneration);
  Member& member = it->second;
  switch (group->state) {
    case GroupState::kEmpty:
      return fail(ErrorCode::kUnknownMemberId);
    case GroupState::kDead:
      return fail(ErrorCode::kCoordinatorNotAvailable);
    case GroupState::kPreparingRebalance:
      return fail(ErrorCode::kRebalanceInProgress);
    case GroupState::kStable: {
      protocol::SyncGroupResponse response;
      response.assignment = member.assignment;
      ScheduleSessionTimer(*group, member);
      done(std::move(response));
      return;
    }
    case GroupState::kCompletingRebalance:
      break;
  }
  if (group->leader == member.member_id) {
    size_t total_bytes = 0;
    for (const auto& assignment : request.assignments) {
      if (assignment.assignment.size() > kMemberMetadataBytesMax) {
        return fail(ErrorCode::kInvalidRequest);
      }
      total_bytes += assignment.assignment.size();
    }
    for (const auto& [id, other] : group->members) {
      total_bytes += other.MetadataFor(group->protocol_name.value_or("")).size();
    }
    if (total_bytes > kGroupMetadataBytesMax) return fail(ErrorCode::kInvalidRequest);
  }
  if (member.awaiting_sync != nullptr) {
    protocol::SyncGroupResponse response;
    response.error_code = ToWire(ErrorCode::kRebalanceInProgress);
    std::exchange(member.awaiting_sync, nullptr)(std::move(response));
  }
  member.awaiting_sync = std::move(done);
  ScheduleSessionTimer(*group, member);
  if (group->leader != member.member_id) return;

  // The leader's assignment completes the generation once it is durable. Members it leaves out
  // get an empty assignment; entries for unknown members are ignored.
  std::map<std::string, std::string> assignments;
  for (const auto& [id, other] : group->members) assignments[id];
  for (auto& assignment : request.assignments) {
    auto slot = assignments.find(assignment.member_id);
    if (slot != assignments.end()) slot->second = std::move(assignment.assignment);
  }
  const int32_t generation = group->generation;
  const std::string group_id = group->id;
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  StoreGroup(*group, &assignments,
             [alive, group_id, generation, assignments](ErrorCode error) mutable {
               if (alive.expired()) return;
               GroupCoordinator* self = *alive.lock();
               Group* group = self->FindGroup(group_id);
               // The group may have moved on (a member joined or left) while the record was
               // being written: then this generation is over and nothing is propagated.
               if (group == nullptr || group->state != GroupState::kCompletingRebalance ||
                   group->generation != generation) {
                 return;
               }
               if (error != ErrorCode::kNone) {
                 self->ResetAndPropagateAssignmentError(*group, error);
                 self->MaybePrepareRebalance(*group);
                 return;
               }
               for (auto& [id, member] : group->members) {
                 auto assigned = assignments.find(id);
                 assert(assigned != assignments.end());
                 member.assignment = assigned->second;
               }
               self->TransitionTo(*group, GroupState::kStable);
               group->CheckInvariants();
               self->PropagateAssignment(*group);
             });
}

protocol::HeartbeatResponse GroupCoordinator::Heartbeat(const RequestContext&,
                                                        const protocol::HeartbeatRequest& request) {
  protocol::HeartbeatResponse response;
  auto answer = [&response](ErrorCode error) {
    response.error_code = ToWire(error);
    return response;
  };
  if (ErrorCode status = CheckGroupStatus(request.group_id, false); status != ErrorCode::kNone) {
    return answer(status);
  }
  Group* group = FindGroup(request.group_id);
  if (group == nullptr) return answer(ErrorCode::kUnknownMemberId);
  if (group->state == GroupState::kDead) return answer(ErrorCode::kCoordinatorNotAvailable);
  if (group->state == GroupState::kEmpty) return answer(ErrorCode::kUnknownMemberId);
  if (IsStaticMemberFenced(*group, request.member_id, request.group_instance_id)) {
    return answer(ErrorCode::kFencedInstanceId);
  }
  auto it = group->members.find(request.member_id);
  if (it == group->members.end()) return answer(ErrorCode::kUnknownMemberId);
  if (request.generation_id != group->generation) return answer(ErrorCode::kIllegalGeneration);
  ScheduleSessionTimer(*group, it->second);
  if (group->state == GroupState::kPreparingRebalance) {
    return answer(ErrorCode::kRebalanceInProgress);
  }
  return answer(ErrorCode::kNone);
}

protocol::LeaveGroupResponse GroupCoordinator::LeaveGroup(
    const RequestContext& context, const protocol::LeaveGroupRequest& request) {
  protocol::LeaveGroupResponse response;
  const bool batch = context.api_version >= 3;
  std::vector<protocol::LeaveGroupRequest::Member> leaving;
  if (batch) {
    leaving = request.members;
  } else {
    leaving.push_back({.member_id = request.member_id, .group_instance_id = std::nullopt});
  }
  ErrorCode status = CheckGroupStatus(request.group_id, false);
  if (status == ErrorCode::kNone &&
      leaving.size() > static_cast<size_t>(GroupSettings::kGroupMaxSizeLimit)) {
    status = ErrorCode::kInvalidRequest;
  }
  Group* group = status == ErrorCode::kNone ? FindGroup(request.group_id) : nullptr;
  if (status == ErrorCode::kNone && group != nullptr && group->state == GroupState::kDead) {
    status = ErrorCode::kCoordinatorNotAvailable;
  }
  if (status != ErrorCode::kNone) {
    response.error_code = ToWire(status);
    return response;
  }
  const std::string group_id = request.group_id;
  for (const auto& member : leaving) {
    ErrorCode error = ErrorCode::kNone;
    group = FindGroup(group_id);
    std::string member_id = member.member_id;
    if (group == nullptr) {
      error = ErrorCode::kUnknownMemberId;
    } else {
      if (member_id.empty() && member.group_instance_id.has_value()) {
        // An admin removing a static member by its instance id alone.
        auto instance = group->static_members.find(*member.group_instance_id);
        if (instance != group->static_members.end()) member_id = instance->second;
      }
      if (auto pending = group->pending_members.find(member_id);
          pending != group->pending_members.end()) {
        env_.clock().CancelTimer(pending->second);
        group->pending_members.erase(pending);
        MaybeCompleteJoin(*group);
      } else if (IsStaticMemberFenced(*group, member_id, member.group_instance_id)) {
        error = ErrorCode::kFencedInstanceId;
      } else if (!group->members.contains(member_id)) {
        error = ErrorCode::kUnknownMemberId;
      } else {
        RemoveMemberAndUpdateGroup(*group, member_id);
      }
    }
    if (batch) {
      response.members.push_back(protocol::LeaveGroupResponse::Member{
          .member_id = member.member_id,
          .group_instance_id = member.group_instance_id,
          .error_code = ToWire(error),
      });
    } else {
      response.error_code = ToWire(error);
    }
  }
  return response;
}

// --- OffsetCommit, OffsetFetch ----------------------------------------------------------------

void GroupCoordinator::OffsetCommit(const RequestContext& context,
                                    protocol::OffsetCommitRequest request,
                                    OffsetCommitCallback done) {
  const int16_t version = context.api_version;
  protocol::OffsetCommitResponse response;
  size_t partition_count = 0;
  for (const auto& topic : request.topics) {
    auto& out = response.topics.emplace_back();
    out.name = topic.name;
    for (const auto& partition : topic.partitions) {
      out.partitions.push_back({.partition_index = partition.partition_index, .error_code = 0});
      ++partition_count;
    }
  }
  auto fail_all = [&](ErrorCode error) {
    for (auto& topic : response.topics) {
      for (auto& partition : topic.partitions) partition.error_code = ToWire(error);
    }
    done(std::move(response));
  };
  if (ErrorCode status = CheckGroupStatus(request.group_id, true); status != ErrorCode::kNone) {
    return fail_all(status);
  }
  if (partition_count > kOffsetRequestPartitionsMax) return fail_all(ErrorCode::kInvalidRequest);
  Group* group = FindGroup(request.group_id);
  if (group == nullptr) {
    // A group Kafka does not manage (a simple commit) is created by its first commit; a commit
    // that names a generation of a group that does not exist comes from the past.
    if (request.generation_id >= 0) return fail_all(ErrorCode::kIllegalGeneration);
    if (groups_.size() >= kGroupsMax) return fail_all(ErrorCode::kCoordinatorNotAvailable);
    group = &CreateGroup(request.group_id);
  }
  if (group->state == GroupState::kDead) return fail_all(ErrorCode::kCoordinatorNotAvailable);
  if (IsStaticMemberFenced(*group, request.member_id, request.group_instance_id)) {
    return fail_all(ErrorCode::kFencedInstanceId);
  }
  const bool simple = request.generation_id < 0 && group->state == GroupState::kEmpty;
  if (!simple) {
    auto member = group->members.find(request.member_id);
    if (member == group->members.end()) return fail_all(ErrorCode::kUnknownMemberId);
    if (request.generation_id != group->generation) return fail_all(ErrorCode::kIllegalGeneration);
    if (group->state == GroupState::kCompletingRebalance) {
      return fail_all(ErrorCode::kRebalanceInProgress);
    }
    // Stable, or PreparingRebalance: a member still commits what it consumed before it learns
    // of the rebalance from its next heartbeat.
    ScheduleSessionTimer(*group, member->second);
  }

  const int64_t now_ms = env_.clock().WallNowMs();
  std::vector<std::pair<std::string, std::optional<std::string>>> records;
  // Where each record's partition sits in the response, and what it stores.
  std::vector<std::pair<size_t, size_t>> positions;
  std::vector<std::pair<TopicPartitionKey, OffsetCommitValue>> values;
  for (size_t t = 0; t < request.topics.size(); ++t) {
    auto& topic = request.topics[t];
    for (size_t p = 0; p < topic.partitions.size(); ++p) {
      auto& partition = topic.partitions[p];
      int16_t& error = response.topics[t].partitions[p].error_code;
      if (partition.committed_metadata.has_value() &&
          partition.committed_metadata->size() >
              static_cast<size_t>(settings_.offset_metadata_max_bytes)) {
        error = ToWire(ErrorCode::kOffsetMetadataTooLarge);
        continue;
      }
      if (!partition_exists_(topic.name, partition.partition_index)) {
        error = ToWire(ErrorCode::kUnknownTopicOrPartition);
        continue;
      }
      OffsetCommitValue value;
      value.offset = partition.committed_offset;
      value.leader_epoch = partition.committed_leader_epoch;
      value.metadata = partition.committed_metadata;
      value.commit_timestamp_ms =
          (version == 1 && partition.commit_timestamp >= 0) ? partition.commit_timestamp : now_ms;
      if (version >= 2 && version <= 4 && request.retention_time_ms >= 0) {
        value.expire_timestamp_ms = value.commit_timestamp_ms + request.retention_time_ms;
      }
      OffsetCommitKey key{
          .group = group->id, .topic = topic.name, .partition = partition.partition_index};
      records.emplace_back(EncodeOffsetCommitKey(key), EncodeOffsetCommitValue(value));
      positions.emplace_back(t, p);
      values.emplace_back(TopicPartitionKey{topic.name, partition.partition_index},
                          std::move(value));
    }
  }
  if (records.empty()) {
    done(std::move(response));
    return;
  }
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  AppendRecords(
      group->partition, std::move(records),
      [alive, group_id = group->id, positions = std::move(positions), values = std::move(values),
       response = std::move(response), done = std::move(done)](ErrorCode error) mutable {
        if (alive.expired()) return;
        GroupCoordinator* self = *alive.lock();
        if (error == ErrorCode::kNone) {
          Group* group = self->FindGroup(group_id);
          if (group == nullptr) group = &self->CreateGroup(group_id);
          for (auto& [key, value] : values) group->offsets[key] = std::move(value);
          self->stats_.offsets_committed += values.size();
        }
        for (const auto& [t, p] : positions) {
          response.topics[t].partitions[p].error_code = ToWire(error);
        }
        done(std::move(response));
      });
}

protocol::OffsetFetchResponse GroupCoordinator::OffsetFetch(
    const RequestContext& context, const protocol::OffsetFetchRequest& request) {
  const int16_t version = context.api_version;
  protocol::OffsetFetchResponse response;
  ErrorCode status = CheckGroupStatus(request.group_id, true);
  if (status == ErrorCode::kNone && request.topics.has_value()) {
    size_t count = 0;
    for (const auto& topic : *request.topics) count += topic.partition_indexes.size();
    if (count > kOffsetRequestPartitionsMax) status = ErrorCode::kInvalidRequest;
  }
  const Group* group = status == ErrorCode::kNone ? FindGroup(request.group_id) : nullptr;
  auto describe = [&](const std::string& topic, int32_t partition) {
    protocol::OffsetFetchResponse::Partition out;
    out.partition_index = partition;
    out.metadata = "";
    if (status != ErrorCode::kNone) {
      out.error_code = ToWire(status);
      return out;
    }
    if (group == nullptr) return out;
    auto it = group->offsets.find(TopicPartitionKey{topic, partition});
    if (it == group->offsets.end()) return out;
    out.committed_offset = it->second.offset;
    out.committed_leader_epoch = it->second.leader_epoch;
    out.metadata = it->second.metadata.value_or("");
    return out;
  };
  if (status != ErrorCode::kNone && version >= 2) {
    // From v2 the group's error is reported once, at the top.
    response.error_code = ToWire(status);
    return response;
  }
  if (!request.topics.has_value()) {
    if (group != nullptr) {
      for (const auto& [key, value] : group->offsets) {
        if (response.topics.empty() || response.topics.back().name != key.first) {
          response.topics.emplace_back().name = key.first;
        }
        response.topics.back().partitions.push_back(describe(key.first, key.second));
      }
    }
    return response;
  }
  for (const auto& topic : *request.topics) {
    auto& out = response.topics.emplace_back();
    out.name = topic.name;
    for (int32_t partition : topic.partition_indexes) {
      out.partitions.push_back(describe(topic.name, partition));
    }
  }
  return response;
}

// --- ListGroups, DescribeGroups ---------------------------------------------------------------

protocol::ListGroupsResponse GroupCoordinator::ListGroups(const RequestContext&) {
  protocol::ListGroupsResponse response;
  for (const auto& [partition, hosted] : hosted_) {
    if (!hosted->loaded && !hosted->failed) {
      response.error_code = ToWire(ErrorCode::kCoordinatorLoadInProgress);
    }
  }
  if (partition_count_ == 0) response.error_code = ToWire(ErrorCode::kCoordinatorNotAvailable);
  for (const auto& [id, group] : groups_) {
    if (group->state == GroupState::kDead) continue;
    response.groups.push_back({.group_id = id, .protocol_type = group->protocol_type});
  }
  return response;
}

protocol::DescribeGroupsResponse GroupCoordinator::DescribeGroups(
    const RequestContext&, const protocol::DescribeGroupsRequest& request) {
  protocol::DescribeGroupsResponse response;
  for (const std::string& group_id : request.groups) {
    auto& out = response.groups.emplace_back();
    out.group_id = group_id;
    if (ErrorCode status = CheckGroupStatus(group_id, true); status != ErrorCode::kNone) {
      // Kafka reports an error with an empty state.
      out.error_code = ToWire(status);
      continue;
    }
    const Group* group = FindGroup(group_id);
    if (group == nullptr) {
      out.group_state = std::string(GroupStateName(GroupState::kDead));
      continue;
    }
    out.group_state = std::string(GroupStateName(group->state));
    out.protocol_type = group->protocol_type;
    // As Kafka: the protocol, metadata and assignments are reported only for a Stable group.
    const bool stable = group->state == GroupState::kStable;
    if (stable) out.protocol_data = group->protocol_name.value_or("");
    for (const auto& [id, member] : group->members) {
      protocol::DescribeGroupsResponse::Member described;
      described.member_id = id;
      described.group_instance_id = member.group_instance_id;
      described.client_id = member.client_id;
      described.client_host = member.client_host;
      if (stable) {
        described.member_metadata = member.MetadataFor(out.protocol_data);
        described.member_assignment = member.assignment;
      }
      out.members.push_back(std::move(described));
    }
  }
  return response;
}

std::optional<GroupCoordinator::GroupView> GroupCoordinator::ViewGroup(
    absl::string_view group_id) const {
  const Group* group = FindGroup(group_id);
  if (group == nullptr) return std::nullopt;
  GroupView view;
  view.state = group->state;
  view.generation = group->generation;
  view.leader = group->leader;
  for (const auto& [id, member] : group->members) view.member_ids.push_back(id);
  for (const auto& [key, value] : group->offsets) view.offsets[key] = value.offset;
  return view;
}

// --- Durable state ----------------------------------------------------------------------------

void GroupCoordinator::StoreGroup(Group& group,
                                  const std::map<std::string, std::string>* assignments,
                                  absl::AnyInvocable<void(ErrorCode)> done) {
  GroupMetadataValue value;
  value.protocol_type = group.protocol_type;
  value.generation = group.generation;
  value.protocol_name = group.protocol_name;
  value.leader = group.leader;
  value.state_timestamp_ms = group.state_timestamp_ms;
  for (const auto& [id, member] : group.members) {
    MemberRecord record;
    record.member_id = id;
    record.group_instance_id = member.group_instance_id;
    record.client_id = member.client_id;
    record.client_host = member.client_host;
    record.session_timeout_ms = member.session_timeout_ms;
    record.rebalance_timeout_ms = member.rebalance_timeout_ms;
    record.subscription = member.MetadataFor(group.protocol_name.value_or(""));
    if (assignments != nullptr) {
      auto it = assignments->find(id);
      if (it != assignments->end()) record.assignment = it->second;
    } else {
      record.assignment = member.assignment;
    }
    value.members.push_back(std::move(record));
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> records;
  records.emplace_back(EncodeGroupMetadataKey(group.id), EncodeGroupMetadataValue(value));
  AppendRecords(group.partition, std::move(records), std::move(done));
}

void GroupCoordinator::AppendRecords(
    int32_t partition, std::vector<std::pair<std::string, std::optional<std::string>>> records,
    absl::AnyInvocable<void(ErrorCode)> done) {
  auto it = hosted_.find(partition);
  if (it == hosted_.end() || !it->second->loaded) {
    done(ErrorCode::kNotCoordinator);
    return;
  }
  HostedPartition& hosted = *it->second;
  std::vector<storage::Record> batch_records;
  batch_records.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    storage::Record record;
    record.offset_delta = static_cast<int32_t>(i);
    record.key = std::move(records[i].first);
    record.value = std::move(records[i].second);
    batch_records.push_back(std::move(record));
  }
  storage::BatchBuildOptions options;
  options.base_timestamp = env_.clock().WallNowMs();
  absl::StatusOr<std::string> batch = storage::BuildBatch(options, batch_records);
  if (!batch.ok()) {
    env_.Log(LogLevel::kError, absl::StrCat("group coordinator: building a record batch: ",
                                            batch.status().ToString()));
    done(ErrorCode::kUnknownServerError);
    return;
  }
  absl::StatusOr<storage::AppendInfo> appended =
      hosted.log->AppendAsLeader(*batch, hosted.leader_epoch);
  if (!appended.ok()) {
    env_.Log(LogLevel::kWarning, absl::StrCat("group coordinator: appending to ", kOffsetsTopic,
                                              "-", partition, ": ", appended.status().ToString()));
    done(AppendErrorFor(appended.status()));
    return;
  }
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  const uint64_t election = hosted.election;
  storage::PartitionLog* log = hosted.log;
  log->WhenDurable(appended->last_offset + 1, [alive, partition, election, done = std::move(done)](
                                                  const absl::Status& status) mutable {
    if (alive.expired()) return;
    GroupCoordinator* self = *alive.lock();
    auto it = self->hosted_.find(partition);
    if (it == self->hosted_.end() || it->second->election != election) {
      // Resigned meanwhile: the record may be durable, but this coordinator no
      // longer speaks for the group.
      done(ErrorCode::kNotCoordinator);
      return;
    }
    done(status.ok() ? ErrorCode::kNone : AppendErrorFor(status));
  });
  if (log->config().flush_policy == storage::FlushPolicy::kNever) log->Flush();
}

void GroupCoordinator::StartLoad(int32_t partition, uint64_t election) {
  auto it = hosted_.find(partition);
  if (it == hosted_.end() || it->second->election != election) return;
  HostedPartition& hosted = *it->second;
  storage::PartitionLog& log = *hosted.log;
  hosted.load = std::make_unique<LoadState>();
  hosted.load->next_offset = log.log_start_offset();
  hosted.load->end_offset = log.log_end_offset();
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  // Only what is durable is replayed: wait for the tail a crash left unsynced.
  log.WhenDurable(
      hosted.load->end_offset, [alive, partition, election](const absl::Status& status) {
        if (alive.expired()) return;
        GroupCoordinator* self = *alive.lock();
        auto it = self->hosted_.find(partition);
        if (it == self->hosted_.end() || it->second->election != election) return;
        if (!status.ok()) {
          it->second->failed = true;
          self->env_.Log(LogLevel::kError,
                         absl::StrCat("group coordinator: ", kOffsetsTopic, "-", partition,
                                      " cannot be made durable for loading: ", status.ToString()));
          return;
        }
        self->env_.clock().ScheduleAfter(0, [alive, partition, election] {
          if (!alive.expired()) (*alive.lock())->LoadStep(partition, election);
        });
      });
  if (log.durable_end_offset() < hosted.load->end_offset) log.Flush();
}

void GroupCoordinator::LoadStep(int32_t partition, uint64_t election) {
  auto it = hosted_.find(partition);
  if (it == hosted_.end() || it->second->election != election) return;
  HostedPartition& hosted = *it->second;
  LoadState& load = *hosted.load;
  storage::PartitionLog& log = *hosted.log;
  if (load.next_offset < log.log_start_offset()) load.next_offset = log.log_start_offset();
  if (load.next_offset >= load.end_offset) {
    FinishLoad(hosted);
    return;
  }
  auto fail = [&](const absl::Status& status) {
    hosted.failed = true;
    hosted.load.reset();
    env_.Log(LogLevel::kError, absl::StrCat("group coordinator: loading ", kOffsetsTopic, "-",
                                            partition, " failed: ", status.ToString()));
  };
  absl::StatusOr<std::string> read = log.Read(load.next_offset, kLoadStepBytesMax, load.end_offset,
                                              /*allow_oversized_first=*/true);
  if (!read.ok()) return fail(read.status());
  absl::StatusOr<std::vector<absl::string_view>> batches = storage::SplitBatches(*read);
  if (!batches.ok()) return fail(batches.status());
  if (batches->empty()) {
    return fail(absl::DataLossError(absl::StrCat("no batch readable at offset ", load.next_offset,
                                                 " below ", load.end_offset)));
  }
  for (absl::string_view batch : *batches) {
    absl::StatusOr<storage::BatchHeader> header = storage::ParseBatchHeader(batch);
    if (!header.ok()) return fail(header.status());
    load.next_offset = std::max(load.next_offset, header->last_offset() + 1);
    if (header->control()) continue;
    absl::StatusOr<std::vector<storage::Record>> records = storage::DecodeRecords(batch);
    if (!records.ok()) {
      ++stats_.records_skipped;
      env_.Log(LogLevel::kError,
               absl::StrCat("group coordinator: skipping an undecodable batch at ",
                            header->base_offset, ": ", records.status().ToString()));
      continue;
    }
    for (const storage::Record& record : *records) {
      absl::StatusOr<OffsetsRecordKey> key =
          record.key.has_value()
              ? DecodeOffsetsRecordKey(*record.key)
              : absl::StatusOr<OffsetsRecordKey>(absl::DataLossError("a record without a key"));
      if (!key.ok()) {
        ++stats_.records_skipped;
        env_.Log(LogLevel::kError, absl::StrCat("group coordinator: skipping a record at ",
                                                header->base_offset + record.offset_delta, ": ",
                                                key.status().ToString()));
        continue;
      }
      ++stats_.records_loaded;
      // The latest record of a key wins: a tombstone clears its slot, a value that decodes sets
      // it, and one that does not is skipped (and logged) rather than stopping the load.
      auto apply = [this, &record](auto& slot, auto decode) {
        if (!record.value.has_value()) {
          slot.reset();
          return;
        }
        auto value = decode(*record.value);
        if (!value.ok()) {
          ++stats_.records_skipped;
          env_.Log(LogLevel::kError, absl::StrCat("group coordinator: skipping a record: ",
                                                  value.status().ToString()));
          return;
        }
        slot = *std::move(value);
      };
      if (key->offset_commit.has_value()) {
        const OffsetCommitKey& commit = *key->offset_commit;
        apply(load.offsets[commit.group][TopicPartitionKey{commit.topic, commit.partition}],
              DecodeOffsetCommitValue);
      } else {
        apply(load.groups[*key->group_metadata], DecodeGroupMetadataValue);
      }
    }
  }
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  env_.clock().ScheduleAfter(0, [alive, partition, election] {
    if (!alive.expired()) (*alive.lock())->LoadStep(partition, election);
  });
}

void GroupCoordinator::FinishLoad(HostedPartition& hosted) {
  std::unique_ptr<LoadState> load = std::move(hosted.load);
  const int32_t partition = hosted.partition;
  // Every group named by a record, ordered by id.
  std::set<std::string> ids;
  for (const auto& [id, value] : load->groups) {
    if (value.has_value()) ids.insert(id);
  }
  for (const auto& [id, offsets] : load->offsets) {
    for (const auto& [key, value] : offsets) {
      if (value.has_value()) ids.insert(id);
    }
  }
  size_t skipped = 0;
  for (const std::string& id : ids) {
    if (OffsetsPartitionFor(id, partition_count_) != partition || groups_.contains(id) ||
        groups_.size() >= kGroupsMax) {
      // Written under another partition count, or beyond the bound: not this partition's to serve.
      ++skipped;
      continue;
    }
    Group& group = CreateGroup(id);
    if (auto meta = load->groups.find(id); meta != load->groups.end() && meta->second.has_value()) {
      GroupMetadataValue& value = *meta->second;
      group.protocol_type = value.protocol_type;
      group.generation = value.generation;
      group.protocol_name = value.protocol_name;
      group.state_timestamp_ms = value.state_timestamp_ms;
      for (MemberRecord& record : value.members) {
        if (group.members.contains(record.member_id) ||
            group.members.size() >= static_cast<size_t>(GroupSettings::kGroupMaxSizeLimit)) {
          continue;
        }
        Member member;
        member.member_id = record.member_id;
        member.group_instance_id = record.group_instance_id;
        member.client_id = record.client_id;
        member.client_host = record.client_host;
        member.session_timeout_ms = record.session_timeout_ms;
        member.rebalance_timeout_ms = record.rebalance_timeout_ms;
        member.protocol_type = value.protocol_type;
        member.protocols.push_back(
            {.name = value.protocol_name.value_or(""), .metadata = std::move(record.subscription)});
        member.assignment = std::move(record.assignment);
        if (member.group_instance_id.has_value()) {
          group.static_members[*member.group_instance_id] = member.member_id;
        }
        group.members.emplace(member.member_id, std::move(member));
      }
      if (!group.members.empty() && group.protocol_name.has_value()) {
        group.leader = (value.leader.has_value() && group.members.contains(*value.leader))
                           ? value.leader
                           : std::optional<std::string>(group.members.begin()->first);
        group.state = GroupState::kStable;
        // Restored members get a whole session to show up again.
        for (auto& [member_id, member] : group.members) ScheduleSessionTimer(group, member);
      } else {
        group.members.clear();
        group.static_members.clear();
        group.state = GroupState::kEmpty;
      }
    }
    if (auto offsets = load->offsets.find(id); offsets != load->offsets.end()) {
      for (auto& [key, value] : offsets->second) {
        if (value.has_value()) group.offsets[key] = std::move(*value);
      }
    }
    group.CheckInvariants();
  }
  hosted.loaded = true;
  env_.Log(LogLevel::kInfo,
           absl::StrCat("group coordinator: loaded ", kOffsetsTopic, "-", partition, ": ",
                        ids.size() - skipped, " groups",
                        skipped > 0 ? absl::StrCat(", ", skipped, " skipped") : ""));
  env_.RecordEvent(SemanticEvent{
      .kind = "group-coordinator-loaded", .subject = kOffsetsTopic, .value = partition});
}

// --- Offsets expiry ---------------------------------------------------------------------------

void GroupCoordinator::ScheduleExpiry() {
  std::weak_ptr<GroupCoordinator*> alive = alive_;
  expiry_timer_ = env_.clock().ScheduleAfter(TimerUs(kOffsetsRetentionCheckIntervalMs), [alive] {
    if (alive.expired()) return;
    GroupCoordinator* self = *alive.lock();
    self->expiry_timer_ = kNoTimer;
    self->ExpireOffsets();
    self->ScheduleExpiry();
  });
}

void GroupCoordinator::ExpireOffsets() {
  const int64_t now_ms = env_.clock().WallNowMs();
  const int64_t retention_ms = settings_.offsets_retention_minutes * 60'000;
  stats_.offsets_expired += RemoveOffsetsWhere(
      [&](const Group& group, const TopicPartitionKey&, const OffsetCommitValue& value) {
        // Kafka 2.1+: a group's offsets expire once it has been Empty for the retention time; a
        // group that never used group management counts from each commit; an explicit expiry
        // (OffsetCommit v2-4) applies as given.
        if (value.expire_timestamp_ms >= 0) return now_ms >= value.expire_timestamp_ms;
        if (group.protocol_type.empty()) return now_ms - value.commit_timestamp_ms >= retention_ms;
        return group.state == GroupState::kEmpty &&
               now_ms - group.state_timestamp_ms >= retention_ms;
      });
}

void GroupCoordinator::RemoveOffsetsOfTopic(absl::string_view topic) {
  const uint64_t removed = RemoveOffsetsWhere(
      [topic](const Group&, const TopicPartitionKey& key, const OffsetCommitValue&) {
        return key.first == topic;
      });
  if (removed > 0) {
    env_.Log(LogLevel::kInfo, absl::StrCat("group coordinator: topic '", topic, "' deleted: ",
                                           removed, " committed offsets removed"));
  }
}

uint64_t GroupCoordinator::RemoveOffsetsWhere(
    absl::FunctionRef<bool(const Group& group, const TopicPartitionKey& key,
                           const OffsetCommitValue& value)>
        doomed) {
  uint64_t removed = 0;
  std::map<int32_t, std::vector<std::pair<std::string, std::optional<std::string>>>> tombstones;
  std::vector<std::string> dead;
  for (auto& [id, group_ptr] : groups_) {
    Group& group = *group_ptr;
    auto hosted = hosted_.find(group.partition);
    if (hosted == hosted_.end() || !hosted->second->loaded) continue;
    std::vector<TopicPartitionKey> picked;
    for (const auto& [key, value] : group.offsets) {
      if (doomed(group, key, value)) picked.push_back(key);
    }
    for (const TopicPartitionKey& key : picked) {
      group.offsets.erase(key);
      tombstones[group.partition].emplace_back(
          EncodeOffsetCommitKey({.group = id, .topic = key.first, .partition = key.second}),
          std::nullopt);
      ++removed;
    }
    if (group.state == GroupState::kEmpty && group.members.empty() && group.offsets.empty() &&
        group.pending_members.empty()) {
      dead.push_back(id);
      tombstones[group.partition].emplace_back(EncodeGroupMetadataKey(id), std::nullopt);
    }
  }
  for (const std::string& id : dead) {
    Group* group = FindGroup(id);
    TransitionTo(*group, GroupState::kDead);
    RemoveGroup(id);
  }
  for (auto& [partition, records] : tombstones) {
    AppendRecords(partition, std::move(records), [this, partition](ErrorCode error) {
      if (error != ErrorCode::kNone) {
        env_.Log(LogLevel::kWarning,
                 absl::StrCat("group coordinator: writing tombstones to ", kOffsetsTopic, "-",
                              partition, " failed: ", protocol::ErrorCodeName(error)));
      }
    });
  }
  return removed;
}

}  // namespace runnel::group
