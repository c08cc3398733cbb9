#include "broker/client/group_consumer.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/client/kafka_error.h"

namespace runnel::client {

using protocol::ErrorCode;

namespace {

constexpr int64_t kUsPerMs = 1000;

// Errors after which the member asks for the coordinator again (Kafka's markCoordinatorUnknown).
bool CoordinatorLost(const absl::Status& status) {
  std::optional<ErrorCode> code = KafkaErrorCodeOf(status);
  if (!code.has_value()) return false;
  return *code == ErrorCode::kNotCoordinator || *code == ErrorCode::kCoordinatorNotAvailable ||
         *code == ErrorCode::kNetworkException || *code == ErrorCode::kRequestTimedOut;
}

// Join-loop errors that nothing but a change of configuration or of the other process can fix.
bool FatalJoinError(ErrorCode code) {
  switch (code) {
    case ErrorCode::kFencedInstanceId:
    case ErrorCode::kGroupAuthorizationFailed:
    case ErrorCode::kInconsistentGroupProtocol:
    case ErrorCode::kGroupMaxSizeReached:
    case ErrorCode::kInvalidSessionTimeout:
    case ErrorCode::kInvalidGroupId:
    case ErrorCode::kUnsupportedVersion:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct GroupConsumer::PendingCommit {
  std::map<TopicPartition, OffsetAndMetadata> offsets;
  int32_t generation_id = -1;
  std::string member_id;
  bool automatic = false;
  StatusCallback done;
  int attempts = 0;
  int64_t deadline_us = 0;
  int64_t not_before_us = 0;
};

struct GroupConsumer::CommittedLookup {
  std::vector<TopicPartition> partitions;
  CommittedCallback done;
  int attempts = 0;
  int64_t deadline_us = 0;
};

absl::StatusOr<std::unique_ptr<GroupConsumer>> GroupConsumer::Create(Env& env,
                                                                     GroupConsumerOptions options) {
  auto invalid = [](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  if (options.group_id.empty()) return invalid("group_id", "is required");
  if (options.group_id.size() > GroupConsumerOptions::kGroupIdBytesMax) {
    return invalid("group_id", absl::StrCat("is longer than ",
                                            GroupConsumerOptions::kGroupIdBytesMax, " bytes"));
  }
  if (options.group_instance_id.has_value() &&
      (options.group_instance_id->empty() ||
       options.group_instance_id->size() > GroupConsumerOptions::kGroupIdBytesMax)) {
    return invalid("group_instance_id", absl::StrCat("must be 1 to ",
                                                     GroupConsumerOptions::kGroupIdBytesMax,
                                                     " bytes when set"));
  }
  if (options.topics.empty()) return invalid("topics", "must name at least one topic");
  if (options.topics.size() > GroupConsumerOptions::kSubscribedTopicsMax) {
    return invalid("topics", absl::StrCat("names more than ",
                                          GroupConsumerOptions::kSubscribedTopicsMax, " topics"));
  }
  std::set<std::string> topics;
  for (const std::string& topic : options.topics) {
    if (topic.empty()) return invalid("topics", "contains an empty name");
    if (!topics.insert(topic).second) {
      return invalid("topics", absl::StrCat("names '", topic, "' twice"));
    }
  }
  if (options.session_timeout_ms <= 0) return invalid("session_timeout_ms", "must be positive");
  if (options.rebalance_timeout_ms <= 0) {
    return invalid("rebalance_timeout_ms", "must be positive");
  }
  if (options.heartbeat_interval_ms <= 0 ||
      options.heartbeat_interval_ms >= options.session_timeout_ms) {
    return invalid("heartbeat_interval_ms", "must be positive and below session_timeout_ms");
  }
  if (options.assignors.empty() || options.assignors.size() > GroupConsumerOptions::kAssignorsMax) {
    return invalid("assignors", absl::StrCat("must name 1 to ", GroupConsumerOptions::kAssignorsMax,
                                             " assignors"));
  }
  std::set<std::string> assignors;
  for (const std::string& assignor : options.assignors) {
    if (!IsKnownAssignor(assignor)) {
      return invalid("assignors", absl::StrCat("'", assignor, "' is not range or roundrobin"));
    }
    if (!assignors.insert(assignor).second) {
      return invalid("assignors", absl::StrCat("names '", assignor, "' twice"));
    }
  }
  if (options.enable_auto_commit && options.auto_commit_interval_ms <= 0) {
    return invalid("auto_commit_interval_ms", "must be positive");
  }
  if (options.coordinator_lookup_attempts_max <= 0) {
    return invalid("coordinator_lookup_attempts_max", "must be positive");
  }
  if (options.join_attempts_max <= 0) return invalid("join_attempts_max", "must be positive");
  if (!options.on_records) return invalid("on_records", "is required");

  std::unique_ptr<GroupConsumer> group(new GroupConsumer(env, std::move(options)));
  // The Consumer gets callbacks that forward to the group consumer while it lives.
  ConsumerOptions consumer_options;
  {
    const ConsumerOptions& given = group->options_.consumer;
    consumer_options.client = given.client;
    consumer_options.fetch_max_wait_ms = given.fetch_max_wait_ms;
    consumer_options.fetch_min_bytes = given.fetch_min_bytes;
    consumer_options.fetch_max_bytes = given.fetch_max_bytes;
    consumer_options.partition_fetch_bytes_max = given.partition_fetch_bytes_max;
    consumer_options.default_api_timeout_ms = given.default_api_timeout_ms;
    consumer_options.auto_offset_reset = group->options_.auto_offset_reset;
  }
  std::weak_ptr<GroupConsumer*> alive = group->alive_;
  consumer_options.on_records = [alive](FetchedRecords records) {
    if (!alive.expired()) (*alive.lock())->DeliverRecords(std::move(records));
  };
  consumer_options.on_error = [alive](const TopicPartition&, const absl::Status& error) {
    if (!alive.expired()) (*alive.lock())->ReportError(error);
  };
  absl::StatusOr<std::unique_ptr<Consumer>> consumer =
      Consumer::Create(env, std::move(consumer_options));
  if (!consumer.ok()) return consumer.status();
  group->consumer_ = *std::move(consumer);
  for (const std::string& topic : group->options_.topics) {
    if (absl::Status tracked = group->consumer_->metadata().AddTopic(topic); !tracked.ok()) {
      return tracked;
    }
  }
  GroupConsumer* self = group.get();
  self->RunLater([self] { self->Advance(); });
  return group;
}

GroupConsumer::GroupConsumer(Env& env, GroupConsumerOptions options)
    : env_(env), options_(std::move(options)), alive_(std::make_shared<GroupConsumer*>(this)) {}

GroupConsumer::~GroupConsumer() {
  alive_.reset();
  CancelTimer(&advance_timer_);
  CancelTimer(&coordinator_timer_);
  CancelTimer(&heartbeat_timer_);
  CancelTimer(&auto_commit_timer_);
  CancelTimer(&commit_timer_);
}

// --- Helpers ---

int64_t GroupConsumer::NowUs() const { return env_.clock().MonotonicNowUs(); }

int64_t GroupConsumer::BackoffUs(int attempt) {
  return BackoffMs(attempt, options_.consumer.client.retry_backoff_ms,
                   options_.consumer.client.retry_backoff_ms_max, env_.random()) *
         kUsPerMs;
}

std::string GroupConsumer::Context(absl::string_view what) const {
  return absl::StrCat(what, " (group ", options_.group_id, ")");
}

void GroupConsumer::CancelTimer(TimerId* timer) {
  if (*timer != kNoTimer) env_.clock().CancelTimer(*timer);
  *timer = kNoTimer;
}

void GroupConsumer::ArmTimer(TimerId GroupConsumer::*timer, int64_t delay_us,
                             void (GroupConsumer::*method)()) {
  CancelTimer(&(this->*timer));
  std::weak_ptr<GroupConsumer*> alive = alive_;
  this->*timer =
      env_.clock().ScheduleAfter(std::max<int64_t>(delay_us, 0), [alive, timer, method] {
        if (alive.expired()) return;
        GroupConsumer* self = *alive.lock();
        self->*timer = kNoTimer;
        (self->*method)();
      });
}

void GroupConsumer::RunLater(absl::AnyInvocable<void()> task) {
  std::weak_ptr<GroupConsumer*> alive = alive_;
  env_.clock().ScheduleAfter(0, [alive, task = std::move(task)]() mutable {
    if (!alive.expired()) task();
  });
}

void GroupConsumer::ReportError(const absl::Status& error) {
  env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", options_.group_id, " member ",
                                          member_id_, ": ", error.message()));
  if (options_.on_error) options_.on_error(error);
}

// --- Coordinator discovery ---

void GroupConsumer::FindCoordinator() {
  if (Terminal() || coordinator_ != nullptr || coordinator_lookup_in_flight_) return;
  const int64_t now_us = NowUs();
  if (now_us < coordinator_lookup_not_before_us_) {
    if (coordinator_timer_ == kNoTimer) {
      ArmTimer(&GroupConsumer::coordinator_timer_, coordinator_lookup_not_before_us_ - now_us,
               &GroupConsumer::FindCoordinator);
    }
    return;
  }
  coordinator_lookup_in_flight_ = true;
  ++stats_.coordinator_lookups;
  protocol::FindCoordinatorRequest request;
  request.key = options_.group_id;
  request.key_type = protocol::kCoordinatorKeyGroup;
  std::weak_ptr<GroupConsumer*> alive = alive_;
  consumer_->metadata().SendToAny(std::move(request), [alive](absl::StatusOr<ApiResponse> response) {
    if (!alive.expired()) (*alive.lock())->OnFindCoordinator(std::move(response));
  });
}

void GroupConsumer::OnFindCoordinator(absl::StatusOr<ApiResponse> response) {
  coordinator_lookup_in_flight_ = false;
  if (Terminal()) return;
  absl::StatusOr<protocol::FindCoordinatorResponse> answer =
      TakeResponse<protocol::FindCoordinatorResponse>(std::move(response));
  absl::Status error = answer.status();
  if (error.ok() && answer->error_code != 0) {
    error = KafkaErrorStatusFromWire(answer->error_code, Context("finding the coordinator"),
                                     answer->error_message.value_or(""));
  }
  if (error.ok() && (answer->port <= 0 || answer->port > UINT16_MAX || answer->host.empty())) {
    error = KafkaErrorStatus(ErrorCode::kCoordinatorNotAvailable,
                             Context("finding the coordinator"),
                             absl::StrCat("the answer names no usable address (", answer->host,
                                          ":", answer->port, ")"));
  }
  if (!error.ok()) {
    ++coordinator_failures_;
    if (NeedsMetadataRefresh(error)) consumer_->metadata().RequestUpdate();
    const std::optional<ErrorCode> code = KafkaErrorCodeOf(error);
    if (code.has_value() && FatalJoinError(*code)) {
      Fail(error);
      return;
    }
    if (coordinator_failures_ >= options_.coordinator_lookup_attempts_max) {
      Fail(absl::UnavailableError(absl::StrCat(
          Context("finding the coordinator"), ": gave up after ", coordinator_failures_,
          " attempts (coordinator_lookup_attempts_max); last error: ", error.message())));
      return;
    }
    coordinator_lookup_not_before_us_ = NowUs() + BackoffUs(coordinator_failures_ - 1);
    FindCoordinator();
    return;
  }
  coordinator_failures_ = 0;
  ++coordinator_epoch_;
  coordinator_id_ = answer->node_id;
  coordinator_ = std::make_unique<BrokerConnection>(
      env_, NetworkAddress{answer->host, static_cast<uint16_t>(answer->port)},
      options_.consumer.client, absl::StrCat("coordinator-", answer->node_id));
  env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", options_.group_id,
                                          " coordinator is node ", answer->node_id, " at ",
                                          answer->host, ":", answer->port));
  // Everything that waited for a coordinator goes on: the join loop, commits, heartbeats.
  Advance();
  PumpCommits();
  if ((phase_ == Phase::kStable || phase_ == Phase::kFetchingOffsets) &&
      heartbeat_timer_ == kNoTimer && !heartbeat_in_flight_) {
    ScheduleHeartbeat(0);
  }
}

void GroupConsumer::MarkCoordinatorUnknown(uint64_t epoch, absl::string_view why) {
  // An answer from a former coordinator's connection says nothing about the current one.
  if (coordinator_ == nullptr || epoch != coordinator_epoch_) return;
  env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", options_.group_id,
                                          " forgets coordinator ", coordinator_id_.value_or(-1),
                                          ": ", why));
  retired_connections_.push_back(std::move(coordinator_));
  coordinator_id_.reset();
  // Closing fails whatever the old connection still holds; each request's handler then decides
  // what to do. That happens on a later turn, never inside a callback of the connection itself.
  RunLater([this] {
    std::vector<std::unique_ptr<BrokerConnection>> retired = std::move(retired_connections_);
    retired_connections_.clear();
    std::weak_ptr<GroupConsumer*> alive = alive_;
    for (std::unique_ptr<BrokerConnection>& connection : retired) {
      connection->Close();
      if (alive.expired()) return;
    }
  });
  coordinator_lookup_not_before_us_ = NowUs() + BackoffUs(coordinator_failures_);
  FindCoordinator();
}

void GroupConsumer::SendToCoordinator(protocol::RequestBody request, ResponseCallback callback,
                                      int64_t timeout_ms) {
  if (coordinator_ == nullptr) {
    FindCoordinator();
    const uint64_t epoch = coordinator_epoch_;
    RunLater([this, epoch, callback = std::move(callback)]() mutable {
      answer_epoch_ = epoch;
      callback(KafkaErrorStatus(ErrorCode::kCoordinatorNotAvailable,
                                Context("sending to the coordinator"), "no coordinator known"));
    });
    return;
  }
  std::weak_ptr<GroupConsumer*> alive = alive_;
  const uint64_t epoch = coordinator_epoch_;
  coordinator_->Send(
      std::move(request),
      [alive, epoch, callback = std::move(callback)](absl::StatusOr<ApiResponse> response) mutable {
        if (alive.expired()) return;
        // The handler reads which coordinator answered (see MarkCoordinatorUnknown).
        (*alive.lock())->answer_epoch_ = epoch;
        callback(std::move(response));
      },
      RequestOptions{.timeout_ms = timeout_ms});
}

// --- The join loop ---

void GroupConsumer::ScheduleAdvance(int64_t delay_us) {
  ArmTimer(&GroupConsumer::advance_timer_, delay_us, &GroupConsumer::Advance);
}

void GroupConsumer::Advance() {
  if (Terminal() || state_ == State::kClosing) return;
  if (phase_ == Phase::kStable) {
    if (rejoin_requested_) BeginRevocation();
    return;
  }
  if (phase_ != Phase::kIdle) return;
  if (coordinator_ == nullptr) {
    FindCoordinator();
    return;
  }
  const int64_t now_us = NowUs();
  if (now_us < join_not_before_us_) {
    ScheduleAdvance(join_not_before_us_ - now_us);
    return;
  }
  JoinGroup();
}

void GroupConsumer::JoinGroup() {
  assert(phase_ == Phase::kIdle);
  assert(owned_.empty());
  CancelTimer(&advance_timer_);
  CancelTimer(&heartbeat_timer_);
  CancelTimer(&auto_commit_timer_);
  phase_ = Phase::kJoining;
  state_ = State::kJoining;
  rejoin_requested_ = false;
  generation_id_ = -1;
  is_leader_ = false;
  const uint64_t round = ++round_;

  protocol::JoinGroupRequest request;
  request.group_id = options_.group_id;
  request.session_timeout_ms = options_.session_timeout_ms;
  request.rebalance_timeout_ms = options_.rebalance_timeout_ms;
  request.member_id = member_id_;
  request.group_instance_id = options_.group_instance_id;
  request.protocol_type = std::string(kConsumerProtocolType);
  ConsumerSubscription subscription;
  subscription.topics = options_.topics;
  absl::StatusOr<std::string> metadata = EncodeSubscription(subscription);
  if (!metadata.ok()) {
    Fail(metadata.status());
    return;
  }
  for (const std::string& assignor : options_.assignors) {
    request.protocols.push_back({assignor, *metadata});
  }
  ++stats_.joins_sent;
  const int64_t timeout_ms =
      std::max<int64_t>(options_.consumer.client.request_timeout_ms,
                        options_.rebalance_timeout_ms + GroupConsumerOptions::kJoinGroupResponseGraceMs);
  std::weak_ptr<GroupConsumer*> alive = alive_;
  SendToCoordinator(
      std::move(request),
      [alive, round](absl::StatusOr<ApiResponse> response) {
        if (!alive.expired()) (*alive.lock())->OnJoinGroup(round, std::move(response));
      },
      timeout_ms);
}

void GroupConsumer::RestartJoin(bool backoff, absl::string_view why) {
  ++join_failures_;
  if (join_failures_ > options_.join_attempts_max) {
    Fail(absl::UnavailableError(absl::StrCat(Context("joining"), ": gave up after ",
                                             join_failures_ - 1,
                                             " attempts (join_attempts_max); last: ", why)));
    return;
  }
  env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", options_.group_id, " member ",
                                          member_id_, " rejoins: ", why));
  ++round_;
  phase_ = Phase::kIdle;
  state_ = State::kJoining;
  generation_id_ = -1;
  is_leader_ = false;
  CancelTimer(&heartbeat_timer_);
  join_not_before_us_ = backoff ? NowUs() + BackoffUs(std::min(join_failures_ - 1, 16)) : 0;
  ScheduleAdvance(join_not_before_us_ == 0 ? 0 : join_not_before_us_ - NowUs());
}

bool GroupConsumer::HandleMembershipError(ErrorCode code, absl::string_view context) {
  switch (code) {
    case ErrorCode::kRebalanceInProgress:
      RequestRejoin(context);
      return true;
    case ErrorCode::kIllegalGeneration:
      LoseGeneration(/*forget_member_id=*/false, context);
      return true;
    case ErrorCode::kUnknownMemberId:
      LoseGeneration(/*forget_member_id=*/true, context);
      return true;
    case ErrorCode::kFencedInstanceId:
      Fail(KafkaErrorStatus(code, Context(context),
                            absl::StrCat("another member took group.instance.id '",
                                         options_.group_instance_id.value_or(""), "'")));
      return true;
    default:
      return false;
  }
}

void GroupConsumer::OnJoinGroup(uint64_t round, absl::StatusOr<ApiResponse> response) {
  if (round != round_ || phase_ != Phase::kJoining || Terminal() || state_ == State::kClosing) {
    return;
  }
  const int16_t version = response.ok() ? response->api_version : -1;
  absl::StatusOr<protocol::JoinGroupResponse> answer =
      TakeResponse<protocol::JoinGroupResponse>(std::move(response));
  if (!answer.ok()) {
    if (CoordinatorLost(answer.status())) MarkCoordinatorUnknown(answer_epoch_, answer.status().message());
    if (IsRetriableError(answer.status())) {
      RestartJoin(true, answer.status().message());
    } else {
      Fail(answer.status());
    }
    return;
  }
  if (options_.group_instance_id.has_value() && version < 5) {
    Fail(KafkaErrorStatus(ErrorCode::kUnsupportedVersion, Context("joining"),
                          absl::StrCat("static membership needs JoinGroup v5; the coordinator "
                                       "speaks up to v", version)));
    return;
  }
  const absl::Status error = KafkaErrorStatusFromWire(answer->error_code, Context("joining"));
  const std::optional<ErrorCode> code = protocol::ErrorCodeFromWire(answer->error_code);
  if (!error.ok()) {
    if (code == ErrorCode::kMemberIdRequired) {
      // KIP-394: the coordinator gave this member its id; join again with it at once.
      member_id_ = answer->member_id;
      RestartJoin(false, "MEMBER_ID_REQUIRED");
      return;
    }
    if (code == ErrorCode::kUnknownMemberId) {
      member_id_.clear();
      RestartJoin(false, error.message());
      return;
    }
    if (code == ErrorCode::kIllegalGeneration || code == ErrorCode::kRebalanceInProgress) {
      RestartJoin(false, error.message());
      return;
    }
    if (code.has_value() && FatalJoinError(*code)) {
      Fail(error);
      return;
    }
    if (CoordinatorLost(error)) MarkCoordinatorUnknown(answer_epoch_, error.message());
    if (IsRetriableError(error)) {
      RestartJoin(true, error.message());
    } else {
      Fail(error);
    }
    return;
  }
  member_id_ = answer->member_id;
  generation_id_ = answer->generation_id;
  is_leader_ = !answer->leader.empty() && answer->leader == member_id_;
  ++stats_.joins;
  if (!IsKnownAssignor(answer->protocol_name) ||
      std::find(options_.assignors.begin(), options_.assignors.end(), answer->protocol_name) ==
          options_.assignors.end()) {
    Fail(KafkaErrorStatus(ErrorCode::kInconsistentGroupProtocol, Context("joining"),
                          absl::StrCat("the group chose assignor '", answer->protocol_name,
                                       "', which this member did not offer")));
    return;
  }
  if (is_leader_) {
    phase_ = Phase::kAssigning;
    ComputeAssignment(round, *std::move(answer));
  } else {
    SyncGroup(round, {});
  }
}

void GroupConsumer::ComputeAssignment(uint64_t round, protocol::JoinGroupResponse join) {
  ++stats_.leader_assignments;
  std::vector<AssignorMember> members;
  std::set<std::string> topics;
  for (protocol::JoinGroupResponse::Member& member : join.members) {
    AssignorMember entry;
    entry.member_id = member.member_id;
    entry.group_instance_id = member.group_instance_id;
    absl::StatusOr<ConsumerSubscription> subscription = DecodeSubscription(member.metadata);
    if (subscription.ok()) {
      entry.topics = std::move(subscription->topics);
    } else {
      // The member gets nothing rather than stopping the whole group.
      ReportError(absl::InvalidArgumentError(absl::StrCat(
          Context("assigning"), ": member ", member.member_id,
          " sent a subscription that does not decode: ", subscription.status().message())));
    }
    topics.insert(entry.topics.begin(), entry.topics.end());
    members.push_back(std::move(entry));
  }
  for (const std::string& topic : topics) {
    if (absl::Status tracked = consumer_->metadata().AddTopic(topic); !tracked.ok()) {
      Fail(tracked);
      return;
    }
  }
  std::weak_ptr<GroupConsumer*> alive = alive_;
  // Fresh metadata, so that the partition counts are current. If the update fails, what is known
  // is used; a later difference starts a rebalance (CheckPartitionCounts).
  consumer_->metadata().AwaitUpdate([alive, round, members = std::move(members),
                                     topics = std::move(topics),
                                     protocol_name = join.protocol_name](const absl::Status&) {
    if (alive.expired()) return;
    GroupConsumer* self = *alive.lock();
    if (round != self->round_ || self->phase_ != Phase::kAssigning) return;
    std::map<std::string, int32_t> counts;
    self->assigned_partition_counts_.clear();
    for (const std::string& topic : topics) {
      std::optional<int32_t> count = self->consumer_->metadata().PartitionCount(topic);
      self->assigned_partition_counts_[topic] = count.value_or(-1);
      if (count.has_value()) counts[topic] = *count;
    }
    absl::StatusOr<GroupAssignment> assignment = Assign(protocol_name, members, counts);
    if (!assignment.ok()) {
      self->Fail(assignment.status());
      return;
    }
    std::vector<protocol::SyncGroupRequest::Assignment> assignments;
    for (auto& [member_id, partitions] : *assignment) {
      absl::StatusOr<std::string> bytes =
          EncodeAssignment(ConsumerAssignment{.partitions = std::move(partitions)});
      if (!bytes.ok()) {
        self->Fail(bytes.status());
        return;
      }
      assignments.push_back({member_id, *std::move(bytes)});
    }
    self->SyncGroup(round, std::move(assignments));
  });
}

void GroupConsumer::SyncGroup(uint64_t round,
                              std::vector<protocol::SyncGroupRequest::Assignment> assignments) {
  phase_ = Phase::kSyncing;
  protocol::SyncGroupRequest request;
  request.group_id = options_.group_id;
  request.generation_id = generation_id_;
  request.member_id = member_id_;
  request.group_instance_id = options_.group_instance_id;
  request.assignments = std::move(assignments);
  std::weak_ptr<GroupConsumer*> alive = alive_;
  SendToCoordinator(std::move(request), [alive, round](absl::StatusOr<ApiResponse> response) {
    if (!alive.expired()) (*alive.lock())->OnSyncGroup(round, std::move(response));
  });
}

void GroupConsumer::OnSyncGroup(uint64_t round, absl::StatusOr<ApiResponse> response) {
  if (round != round_ || phase_ != Phase::kSyncing || Terminal() || state_ == State::kClosing) {
    return;
  }
  absl::StatusOr<protocol::SyncGroupResponse> answer =
      TakeResponse<protocol::SyncGroupResponse>(std::move(response));
  if (!answer.ok()) {
    if (CoordinatorLost(answer.status())) MarkCoordinatorUnknown(answer_epoch_, answer.status().message());
    if (IsRetriableError(answer.status())) {
      RestartJoin(true, answer.status().message());
    } else {
      Fail(answer.status());
    }
    return;
  }
  const absl::Status error = KafkaErrorStatusFromWire(answer->error_code, Context("syncing"));
  const std::optional<ErrorCode> code = protocol::ErrorCodeFromWire(answer->error_code);
  if (!error.ok()) {
    if (code == ErrorCode::kUnknownMemberId) {
      member_id_.clear();
      RestartJoin(false, error.message());
    } else if (code == ErrorCode::kIllegalGeneration || code == ErrorCode::kRebalanceInProgress) {
      RestartJoin(false, error.message());
    } else if (code.has_value() && FatalJoinError(*code)) {
      Fail(error);
    } else {
      if (CoordinatorLost(error)) MarkCoordinatorUnknown(answer_epoch_, error.message());
      if (IsRetriableError(error)) {
        RestartJoin(true, error.message());
      } else {
        Fail(error);
      }
    }
    return;
  }
  absl::StatusOr<ConsumerAssignment> assignment = DecodeAssignment(answer->assignment);
  if (!assignment.ok()) {
    ReportError(absl::InvalidArgumentError(absl::StrCat(
        Context("syncing"), ": the assignment does not decode: ", assignment.status().message())));
    RestartJoin(true, "undecodable assignment");
    return;
  }
  std::set<std::string> subscribed(options_.topics.begin(), options_.topics.end());
  std::set<TopicPartition> partitions;
  for (TopicPartition& partition : assignment->partitions) {
    if (!subscribed.contains(partition.topic) || partition.partition < 0) {
      ReportError(absl::InvalidArgumentError(
          absl::StrCat(Context("syncing"), ": ignoring assigned partition ", partition.ToString(),
                       ", which is not of a subscribed topic")));
      continue;
    }
    partitions.insert(std::move(partition));
  }
  if (partitions.size() > ConsumerOptions::kAssignedPartitionsMax) {
    Fail(absl::ResourceExhaustedError(absl::StrCat(
        Context("syncing"), ": assigned ", partitions.size(), " partitions (kAssignedPartitionsMax is ",
        ConsumerOptions::kAssignedPartitionsMax, ")")));
    return;
  }
  ++stats_.generations;
  last_heartbeat_ok_us_ = NowUs();
  FetchCommittedForAssignment(round,
                              std::vector<TopicPartition>(partitions.begin(), partitions.end()));
}

void GroupConsumer::FetchCommittedForAssignment(uint64_t round,
                                                std::vector<TopicPartition> partitions) {
  phase_ = Phase::kFetchingOffsets;
  if (heartbeat_timer_ == kNoTimer && !heartbeat_in_flight_) {
    ScheduleHeartbeat(options_.heartbeat_interval_ms * kUsPerMs);
  }
  if (partitions.empty()) {
    InstallAssignment({}, {});
    return;
  }
  std::weak_ptr<GroupConsumer*> alive = alive_;
  LookupCommitted(partitions, [alive, round, partitions](
                                  absl::StatusOr<std::map<TopicPartition,
                                                          std::optional<OffsetAndMetadata>>>
                                      committed) mutable {
    if (alive.expired()) return;
    GroupConsumer* self = *alive.lock();
    if (round != self->round_ || self->phase_ != Phase::kFetchingOffsets) return;
    if (!committed.ok()) {
      ++self->join_failures_;
      if (self->join_failures_ > self->options_.join_attempts_max) {
        self->Fail(committed.status());
        return;
      }
      // Still in the generation (heartbeats go on): look again after a backoff.
      std::weak_ptr<GroupConsumer*> again = self->alive_;
      self->env_.clock().ScheduleAfter(
          self->BackoffUs(std::min(self->join_failures_ - 1, 16)),
          [again, round, partitions = std::move(partitions)]() mutable {
            if (again.expired()) return;
            GroupConsumer* group = *again.lock();
            if (round != group->round_ || group->phase_ != Phase::kFetchingOffsets) return;
            group->FetchCommittedForAssignment(round, std::move(partitions));
          });
      return;
    }
    self->InstallAssignment(std::move(partitions), *committed);
  });
}

void GroupConsumer::InstallAssignment(
    std::vector<TopicPartition> partitions,
    const std::map<TopicPartition, std::optional<OffsetAndMetadata>>& committed) {
  assert(owned_.empty());
  assert(generation_id_ >= 0);
  if (absl::Status assigned = consumer_->Assign(partitions); !assigned.ok()) {
    Fail(assigned);
    return;
  }
  for (const TopicPartition& partition : partitions) {
    auto found = committed.find(partition);
    if (found == committed.end() || !found->second.has_value()) continue;
    absl::Status sought = consumer_->Seek(partition, found->second->offset);
    assert(sought.ok());
    (void)sought;
  }
  owned_ = std::set<TopicPartition>(partitions.begin(), partitions.end());
  delivering_ = true;
  frozen_positions_.clear();
  phase_ = Phase::kStable;
  state_ = State::kStable;
  join_failures_ = 0;
  ScheduleAutoCommit();
  std::weak_ptr<GroupConsumer*> alive = alive_;
  if (options_.on_partitions_assigned) options_.on_partitions_assigned(partitions);
  if (alive.expired()) return;
  // A rebalance announced while the offsets were looked up starts now.
  if (rejoin_requested_) Advance();
}

void GroupConsumer::RequestRejoin(absl::string_view why) {
  if (Terminal() || state_ == State::kClosing) return;
  switch (phase_) {
    case Phase::kStable:
      rejoin_requested_ = true;
      env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", options_.group_id, " member ",
                                              member_id_, " rebalances: ", why));
      BeginRevocation();
      return;
    case Phase::kFetchingOffsets:
      // Nothing is owned yet: simply join the next generation.
      RestartJoin(false, why);
      return;
    default:
      // Joining or syncing: that step's answer leads into the new generation; revoking: on it.
      return;
  }
}

void GroupConsumer::BeginRevocation() {
  assert(phase_ == Phase::kStable);
  phase_ = Phase::kRevoking;
  state_ = State::kJoining;
  ++stats_.rebalances;
  CancelTimer(&heartbeat_timer_);
  CancelTimer(&auto_commit_timer_);
  StopFetching();
  if (options_.enable_auto_commit) {
    std::map<TopicPartition, OffsetAndMetadata> positions = DeliveredPositions();
    if (!positions.empty()) {
      EnqueueCommit(std::move(positions), /*automatic=*/true,
                    [this](const absl::Status&) { FinishRevocation(); });
      return;
    }
  }
  RunLater([this] { FinishRevocation(); });
}

void GroupConsumer::FinishRevocation() {
  // The generation may have been lost, or the member closed or failed, while committing.
  if (phase_ != Phase::kRevoking || Terminal() || state_ == State::kClosing) return;
  if (!RevokeOwned(/*lost=*/false)) return;
  // Commits made inside on_partitions_revoked carry this generation: they go out before the member
  // joins the next one, as a commitSync in Kafka's callback does. Joining first could complete the
  // join phase and make the coordinator refuse them as stale.
  AfterPendingCommits([this] { RejoinAfterRevocation(); });
}

void GroupConsumer::RejoinAfterRevocation() {
  if (phase_ != Phase::kRevoking || Terminal() || state_ == State::kClosing) return;
  phase_ = Phase::kIdle;
  join_not_before_us_ = 0;
  Advance();
}

void GroupConsumer::AfterPendingCommits(absl::AnyInvocable<void()> next) {
  if (commits_.empty()) {
    next();
    return;
  }
  // Commits complete in queue order, so the last one finishing means all of them did.
  std::shared_ptr<PendingCommit> last = commits_.back();
  StatusCallback previous = std::move(last->done);
  std::weak_ptr<GroupConsumer*> alive = alive_;
  last->done = [alive, previous = std::move(previous),
                next = std::move(next)](const absl::Status& status) mutable {
    if (previous) previous(status);
    if (!alive.expired()) next();
  };
}

void GroupConsumer::LoseGeneration(bool forget_member_id, absl::string_view why) {
  if (Terminal()) return;
  if (phase_ == Phase::kStable || phase_ == Phase::kRevoking ||
      phase_ == Phase::kFetchingOffsets) {
    ++stats_.generations_lost;
  }
  env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", options_.group_id, " member ",
                                          member_id_, " lost its generation ", generation_id_,
                                          ": ", why));
  generation_id_ = -1;
  is_leader_ = false;
  if (forget_member_id) member_id_.clear();
  CancelTimer(&heartbeat_timer_);
  CancelTimer(&auto_commit_timer_);
  StopFetching();
  const bool closing = state_ == State::kClosing;
  ++round_;
  phase_ = Phase::kIdle;
  if (!RevokeOwned(/*lost=*/true)) return;
  if (closing || Terminal() || phase_ != Phase::kIdle) return;
  RestartJoin(false, why);
}

void GroupConsumer::Fail(const absl::Status& error) {
  if (Terminal()) return;
  assert(!error.ok());
  env_.Log(LogLevel::kWarning, absl::StrCat("client: group ", options_.group_id, " member ",
                                            member_id_, " stops: ", error.message()));
  state_ = State::kFailed;
  phase_ = Phase::kIdle;
  ++round_;
  generation_id_ = -1;
  is_leader_ = false;
  CancelTimer(&advance_timer_);
  CancelTimer(&coordinator_timer_);
  CancelTimer(&heartbeat_timer_);
  CancelTimer(&auto_commit_timer_);
  CancelTimer(&commit_timer_);
  StopFetching();
  std::weak_ptr<GroupConsumer*> alive = alive_;
  // Commits still waiting will never be sent: they fail with the member's error.
  std::deque<std::shared_ptr<PendingCommit>> commits = std::move(commits_);
  commits_.clear();
  if (!RevokeOwned(/*lost=*/true)) return;
  ReportError(error);
  if (alive.expired()) return;
  for (std::shared_ptr<PendingCommit>& commit : commits) {
    if (!FinishCommit(commit, error)) return;
  }
  if (!RunCloseCallbacks()) return;
  if (coordinator_ != nullptr) MarkCoordinatorUnknown(coordinator_epoch_, "the member failed");
}

// --- Heartbeats and auto-commit ---

void GroupConsumer::ScheduleHeartbeat(int64_t delay_us) {
  ArmTimer(&GroupConsumer::heartbeat_timer_, delay_us, &GroupConsumer::Heartbeat);
}

void GroupConsumer::Heartbeat() {
  if (Terminal() || state_ == State::kClosing || generation_id_ < 0) return;
  if (phase_ != Phase::kStable && phase_ != Phase::kFetchingOffsets) return;
  const int64_t interval_us = options_.heartbeat_interval_ms * kUsPerMs;
  // Kafka's client: no successful heartbeat for a whole session probably means the coordinator
  // moved or is unreachable, so look it up again (the partitions stay until the coordinator says
  // otherwise).
  if (NowUs() - last_heartbeat_ok_us_ > options_.session_timeout_ms * kUsPerMs) {
    last_heartbeat_ok_us_ = NowUs();
    MarkCoordinatorUnknown(coordinator_epoch_, "no successful heartbeat for session_timeout_ms");
  }
  if (coordinator_ == nullptr) {
    // OnFindCoordinator resumes heartbeats as soon as the coordinator is known.
    FindCoordinator();
    return;
  }
  if (heartbeat_in_flight_) {
    ScheduleHeartbeat(interval_us);
    return;
  }
  protocol::HeartbeatRequest request;
  request.group_id = options_.group_id;
  request.generation_id = generation_id_;
  request.member_id = member_id_;
  request.group_instance_id = options_.group_instance_id;
  heartbeat_in_flight_ = true;
  ++stats_.heartbeats_sent;
  const uint64_t round = round_;
  const int64_t sent_us = NowUs();
  std::weak_ptr<GroupConsumer*> alive = alive_;
  SendToCoordinator(std::move(request), [alive, round, sent_us, interval_us](
                                            absl::StatusOr<ApiResponse> response) {
    if (alive.expired()) return;
    GroupConsumer* self = *alive.lock();
    self->heartbeat_in_flight_ = false;
    if (round == self->round_ && self->heartbeat_timer_ == kNoTimer) {
      // The next heartbeat is due an interval after this one was sent; the handler may replace
      // or cancel that.
      self->ScheduleHeartbeat(sent_us + interval_us - self->NowUs());
    }
    self->OnHeartbeat(round, std::move(response));
  });
}

void GroupConsumer::OnHeartbeat(uint64_t round, absl::StatusOr<ApiResponse> response) {
  if (round != round_ || Terminal() || state_ == State::kClosing) return;
  absl::StatusOr<protocol::HeartbeatResponse> answer =
      TakeResponse<protocol::HeartbeatResponse>(std::move(response));
  absl::Status error = answer.status();
  if (error.ok()) error = KafkaErrorStatusFromWire(answer->error_code, Context("heartbeat"));
  if (error.ok()) {
    last_heartbeat_ok_us_ = NowUs();
    CheckPartitionCounts();
    return;
  }
  ++stats_.heartbeats_failed;
  const std::optional<ErrorCode> code = KafkaErrorCodeOf(error);
  if (code.has_value() && HandleMembershipError(*code, "heartbeat")) return;
  if (CoordinatorLost(error)) {
    MarkCoordinatorUnknown(answer_epoch_, error.message());
    return;
  }
  if (!IsRetriableError(error)) ReportError(error);
}

void GroupConsumer::CheckPartitionCounts() {
  if (!is_leader_ || phase_ != Phase::kStable) return;
  bool unknown = false;
  for (const auto& [topic, count] : assigned_partition_counts_) {
    std::optional<int32_t> now = consumer_->metadata().PartitionCount(topic);
    if (now.has_value() && *now != count) {
      RequestRejoin(absl::StrCat("topic ", topic, " has ", *now, " partitions, not ", count));
      return;
    }
    unknown = unknown || !now.has_value();
  }
  // A subscribed topic without partitions yet (just created, or not created yet) is looked up
  // again at every heartbeat rather than at the next periodic refresh, as Kafka's consumer keeps
  // asking for the metadata of subscribed topics it does not know, so that the group starts
  // consuming it soon after it appears.
  if (unknown) consumer_->metadata().RequestUpdate();
}

void GroupConsumer::ScheduleAutoCommit() {
  CancelTimer(&auto_commit_timer_);
  if (!options_.enable_auto_commit) return;
  std::weak_ptr<GroupConsumer*> alive = alive_;
  auto_commit_timer_ =
      env_.clock().ScheduleAfter(options_.auto_commit_interval_ms * kUsPerMs, [alive] {
        if (alive.expired()) return;
        GroupConsumer* self = *alive.lock();
        self->auto_commit_timer_ = kNoTimer;
        if (self->phase_ != Phase::kStable || self->state_ != State::kStable) return;
        self->ScheduleAutoCommit();
        // One automatic commit at a time: a slow coordinator does not get a pile of them.
        for (const std::shared_ptr<PendingCommit>& commit : self->commits_) {
          if (commit->automatic) return;
        }
        std::map<TopicPartition, OffsetAndMetadata> positions = self->DeliveredPositions();
        if (positions.empty()) return;
        self->EnqueueCommit(std::move(positions), /*automatic=*/true, nullptr);
      });
}

// --- Commits ---

std::map<TopicPartition, OffsetAndMetadata> GroupConsumer::DeliveredPositions() const {
  std::map<TopicPartition, OffsetAndMetadata> positions;
  if (delivering_) {
    for (const TopicPartition& partition : owned_) {
      std::optional<int64_t> position = consumer_->Position(partition);
      if (position.has_value()) positions[partition] = OffsetAndMetadata{*position, ""};
    }
  } else {
    for (const auto& [partition, position] : frozen_positions_) {
      positions[partition] = OffsetAndMetadata{position, ""};
    }
  }
  return positions;
}

void GroupConsumer::Commit(std::map<TopicPartition, OffsetAndMetadata> offsets,
                           StatusCallback done) {
  EnqueueCommit(std::move(offsets), /*automatic=*/false, std::move(done));
}

void GroupConsumer::CommitPosition(StatusCallback done) {
  std::map<TopicPartition, OffsetAndMetadata> positions = DeliveredPositions();
  if (positions.empty() && !Terminal()) {
    RunLater([done = std::move(done)]() mutable {
      if (done) done(absl::OkStatus());
    });
    return;
  }
  EnqueueCommit(std::move(positions), /*automatic=*/false, std::move(done));
}

void GroupConsumer::FailCommitLater(std::map<TopicPartition, OffsetAndMetadata> offsets,
                                    bool automatic, StatusCallback done, absl::Status status) {
  auto commit = std::make_shared<PendingCommit>();
  commit->offsets = std::move(offsets);
  commit->generation_id = generation_id_;
  commit->member_id = member_id_;
  commit->automatic = automatic;
  commit->done = std::move(done);
  RunLater([this, commit, status = std::move(status)] { FinishCommit(commit, status); });
}

void GroupConsumer::EnqueueCommit(std::map<TopicPartition, OffsetAndMetadata> offsets,
                                  bool automatic, StatusCallback done) {
  if (Terminal()) {
    FailCommitLater(std::move(offsets), automatic, std::move(done),
                    absl::FailedPreconditionError(absl::StrCat(
                        Context("committing"), ": the consumer is ",
                        state_ == State::kClosed ? "closed" : "stopped by an error")));
    return;
  }
  for (const auto& [partition, offset] : offsets) {
    if (partition.topic.empty() || partition.partition < 0 || offset.offset < 0) {
      FailCommitLater(std::move(offsets), automatic, std::move(done),
                      absl::InvalidArgumentError(absl::StrCat(
                          Context("committing"), ": cannot commit offset ", offset.offset,
                          " of ", partition.ToString())));
      return;
    }
  }
  if (generation_id_ < 0) {
    FailCommitLater(std::move(offsets), automatic, std::move(done),
                    KafkaErrorStatus(ErrorCode::kRebalanceInProgress, Context("committing"),
                                     "the member is in no generation now (joining)"));
    return;
  }
  if (commits_.size() >= GroupConsumerOptions::kPendingCommitsMax) {
    FailCommitLater(std::move(offsets), automatic, std::move(done),
                    absl::ResourceExhaustedError(absl::StrCat(
                        Context("committing"), ": ", commits_.size(),
                        " commits are pending (kPendingCommitsMax)")));
    return;
  }
  auto commit = std::make_shared<PendingCommit>();
  commit->offsets = std::move(offsets);
  commit->generation_id = generation_id_;
  commit->member_id = member_id_;
  commit->automatic = automatic;
  commit->done = std::move(done);
  commit->deadline_us = NowUs() + options_.consumer.default_api_timeout_ms * kUsPerMs;
  commits_.push_back(std::move(commit));
  // Sent from a later turn, so that no callback runs inside this call even if sending fails.
  RunLater([this] { PumpCommits(); });
}

void GroupConsumer::PumpCommits() {
  if (commit_in_flight_ || commits_.empty() || Terminal()) return;
  std::shared_ptr<PendingCommit> commit = commits_.front();
  const int64_t now_us = NowUs();
  if (now_us < commit->not_before_us) {
    if (commit_timer_ == kNoTimer) {
      ArmTimer(&GroupConsumer::commit_timer_, commit->not_before_us - now_us,
               &GroupConsumer::PumpCommits);
    }
    return;
  }
  protocol::OffsetCommitRequest request;
  request.group_id = options_.group_id;
  request.generation_id = commit->generation_id;
  request.member_id = commit->member_id;
  request.group_instance_id = options_.group_instance_id;
  request.retention_time_ms = -1;
  for (const auto& [partition, offset] : commit->offsets) {
    if (request.topics.empty() || request.topics.back().name != partition.topic) {
      request.topics.push_back({partition.topic, {}});
    }
    protocol::OffsetCommitRequest::Partition entry;
    entry.partition_index = partition.partition;
    entry.committed_offset = offset.offset;
    entry.committed_leader_epoch = -1;
    entry.commit_timestamp = -1;
    entry.committed_metadata = offset.metadata;
    request.topics.back().partitions.push_back(std::move(entry));
  }
  commit_in_flight_ = true;
  ++commit->attempts;
  std::weak_ptr<GroupConsumer*> alive = alive_;
  SendToCoordinator(std::move(request), [alive, commit](absl::StatusOr<ApiResponse> response) {
    if (!alive.expired()) (*alive.lock())->OnCommit(commit, std::move(response));
  });
}

void GroupConsumer::OnCommit(std::shared_ptr<PendingCommit> commit,
                             absl::StatusOr<ApiResponse> response) {
  commit_in_flight_ = false;
  // Fail() empties the queue and finishes its commits itself.
  if (commits_.empty() || commits_.front() != commit) return;
  absl::StatusOr<protocol::OffsetCommitResponse> answer =
      TakeResponse<protocol::OffsetCommitResponse>(std::move(response));
  absl::Status status = answer.status();
  if (status.ok()) {
    std::set<TopicPartition> answered;
    for (const auto& topic : answer->topics) {
      for (const auto& partition : topic.partitions) {
        answered.insert({topic.name, partition.partition_index});
        if (partition.error_code != 0 && status.ok()) {
          status = KafkaErrorStatusFromWire(
              partition.error_code,
              Context(absl::StrCat("committing ", topic.name, "-", partition.partition_index)));
        }
      }
    }
    for (const auto& [partition, offset] : commit->offsets) {
      if (status.ok() && !answered.contains(partition)) {
        status = KafkaErrorStatus(ErrorCode::kUnknownServerError,
                                  Context(absl::StrCat("committing ", partition.ToString())),
                                  "the answer does not mention the partition");
      }
    }
  }
  if (!status.ok()) {
    if (CoordinatorLost(status)) MarkCoordinatorUnknown(answer_epoch_, status.message());
    const int64_t backoff_us = BackoffUs(commit->attempts - 1);
    if (IsRetriableError(status) && commit->attempts < GroupConsumerOptions::kCommitAttemptsMax &&
        NowUs() + backoff_us < commit->deadline_us) {
      // Retried before any later commit is sent, so commits stay in order.
      ++stats_.commit_retries;
      commit->not_before_us = NowUs() + backoff_us;
      PumpCommits();
      return;
    }
  }
  commits_.pop_front();
  std::weak_ptr<GroupConsumer*> alive = alive_;
  // The answer speaks about this member's current generation only if the commit carried it; an
  // older commit's refusal says nothing about the generation the member is in now.
  if (!status.ok() && commit->generation_id == generation_id_ &&
      commit->member_id == member_id_) {
    const std::optional<ErrorCode> code = KafkaErrorCodeOf(status);
    if (code.has_value()) HandleMembershipError(*code, "commit");
    if (alive.expired()) return;
  }
  if (!FinishCommit(commit, status)) return;
  PumpCommits();
}

bool GroupConsumer::FinishCommit(std::shared_ptr<PendingCommit> commit, absl::Status status) {
  if (status.ok()) {
    ++stats_.commits_ok;
  } else {
    ++stats_.commits_failed;
  }
  std::weak_ptr<GroupConsumer*> alive = alive_;
  if (commit->done) commit->done(status);
  if (alive.expired()) return false;
  if (options_.on_commit_completed) {
    CommitOutcome outcome;
    outcome.offsets = commit->offsets;
    outcome.generation_id = commit->generation_id;
    outcome.member_id = commit->member_id;
    outcome.automatic = commit->automatic;
    outcome.status = status;
    options_.on_commit_completed(outcome);
    if (alive.expired()) return false;
  }
  return true;
}

// --- Committed offsets ---

void GroupConsumer::Committed(std::vector<TopicPartition> partitions, CommittedCallback done) {
  LookupCommitted(std::move(partitions), std::move(done));
}

void GroupConsumer::LookupCommitted(std::vector<TopicPartition> partitions,
                                    CommittedCallback done) {
  if (Terminal()) {
    RunLater([this, done = std::move(done)]() mutable {
      done(absl::FailedPreconditionError(
          absl::StrCat(Context("looking up committed offsets"), ": the consumer is ",
                       state_ == State::kClosed ? "closed" : "stopped by an error")));
    });
    return;
  }
  std::sort(partitions.begin(), partitions.end());
  partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
  auto lookup = std::make_shared<CommittedLookup>();
  lookup->partitions = std::move(partitions);
  lookup->done = std::move(done);
  lookup->deadline_us = NowUs() + options_.consumer.default_api_timeout_ms * kUsPerMs;
  if (lookup->partitions.empty()) {
    RunLater([lookup] { lookup->done(std::map<TopicPartition, std::optional<OffsetAndMetadata>>{}); });
    return;
  }
  SendLookup(std::move(lookup));
}

void GroupConsumer::SendLookup(std::shared_ptr<CommittedLookup> lookup) {
  ++lookup->attempts;
  protocol::OffsetFetchRequest request;
  request.group_id = options_.group_id;
  request.topics.emplace();
  for (const TopicPartition& partition : lookup->partitions) {
    if (request.topics->empty() || request.topics->back().name != partition.topic) {
      request.topics->push_back({partition.topic, {}});
    }
    request.topics->back().partition_indexes.push_back(partition.partition);
  }
  std::weak_ptr<GroupConsumer*> alive = alive_;
  SendToCoordinator(std::move(request), [alive, lookup](absl::StatusOr<ApiResponse> response) {
    if (alive.expired()) return;
    GroupConsumer* self = *alive.lock();
    absl::StatusOr<protocol::OffsetFetchResponse> answer =
        TakeResponse<protocol::OffsetFetchResponse>(std::move(response));
    absl::Status status = answer.status();
    std::map<TopicPartition, std::optional<OffsetAndMetadata>> committed;
    if (status.ok() && answer->error_code != 0) {
      status = KafkaErrorStatusFromWire(answer->error_code,
                                        self->Context("looking up committed offsets"));
    }
    if (status.ok()) {
      for (const TopicPartition& partition : lookup->partitions) committed[partition] = std::nullopt;
      for (const auto& topic : answer->topics) {
        for (const auto& partition : topic.partitions) {
          const TopicPartition key{topic.name, partition.partition_index};
          if (!committed.contains(key)) continue;
          if (partition.error_code != 0) {
            if (status.ok()) {
              status = KafkaErrorStatusFromWire(
                  partition.error_code,
                  self->Context(absl::StrCat("looking up the committed offset of ",
                                             key.ToString())));
            }
            continue;
          }
          if (partition.committed_offset >= 0) {
            committed[key] =
                OffsetAndMetadata{partition.committed_offset, partition.metadata.value_or("")};
          }
        }
      }
    }
    if (status.ok()) {
      lookup->done(std::move(committed));
      return;
    }
    if (CoordinatorLost(status)) self->MarkCoordinatorUnknown(self->answer_epoch_, status.message());
    const int64_t backoff_us = self->BackoffUs(lookup->attempts - 1);
    if (IsRetriableError(status) && !self->Terminal() &&
        lookup->attempts < GroupConsumerOptions::kOffsetFetchAttemptsMax &&
        self->NowUs() + backoff_us < lookup->deadline_us) {
      self->env_.clock().ScheduleAfter(backoff_us, [alive, lookup] {
        if (alive.expired()) return;
        GroupConsumer* group = *alive.lock();
        if (group->Terminal()) {
          lookup->done(absl::FailedPreconditionError(
              group->Context("looking up committed offsets: the consumer stopped")));
          return;
        }
        group->SendLookup(lookup);
      });
      return;
    }
    lookup->done(status);
  });
}

// --- Ownership and delivery ---

void GroupConsumer::StopFetching() {
  if (!delivering_) return;
  frozen_positions_.clear();
  for (const TopicPartition& partition : owned_) {
    std::optional<int64_t> position = consumer_->Position(partition);
    if (position.has_value()) frozen_positions_[partition] = *position;
  }
  delivering_ = false;
  // Unassigning drops every fetch in flight: no record of these partitions is delivered now.
  absl::Status unassigned = consumer_->Assign({});
  assert(unassigned.ok());
  (void)unassigned;
}

bool GroupConsumer::RevokeOwned(bool lost) {
  assert(!delivering_);
  std::vector<TopicPartition> partitions(owned_.begin(), owned_.end());
  owned_.clear();
  std::weak_ptr<GroupConsumer*> alive = alive_;
  if (!partitions.empty()) {
    if (lost && options_.on_partitions_lost) {
      options_.on_partitions_lost(partitions);
    } else if (options_.on_partitions_revoked) {
      options_.on_partitions_revoked(partitions);
    }
    if (alive.expired()) return false;
  }
  frozen_positions_.clear();
  return true;
}

void GroupConsumer::DeliverRecords(FetchedRecords records) {
  if (!delivering_ || !owned_.contains(records.partition)) return;
  stats_.records_delivered += records.records.size();
  options_.on_records(std::move(records));
}

// --- Closing ---

void GroupConsumer::Close(absl::AnyInvocable<void()> done) {
  if (state_ == State::kClosing) {
    close_callbacks_.push_back(std::move(done));
    return;
  }
  if (Terminal()) {
    RunLater([done = std::move(done)]() mutable {
      if (done) done();
    });
    return;
  }
  state_ = State::kClosing;
  close_callbacks_.push_back(std::move(done));
  // Abandon whatever step of the join loop was under way; its answer is ignored.
  ++round_;
  const bool was_revoking = phase_ == Phase::kRevoking;
  phase_ = Phase::kIdle;
  CancelTimer(&advance_timer_);
  CancelTimer(&heartbeat_timer_);
  CancelTimer(&auto_commit_timer_);
  StopFetching();
  RunLater([this, was_revoking] {
    // A revocation's own commit is already queued; Close's commit would repeat it.
    if (options_.enable_auto_commit && generation_id_ >= 0 && !was_revoking) {
      std::map<TopicPartition, OffsetAndMetadata> positions = DeliveredPositions();
      if (!positions.empty()) {
        EnqueueCommit(std::move(positions), /*automatic=*/true,
                      [this](const absl::Status&) { CloseAfterCommit(); });
        return;
      }
    }
    // Commits already made (a revocation's among them) finish first.
    AfterPendingCommits([this] { CloseAfterCommit(); });
  });
}

void GroupConsumer::CloseAfterCommit() {
  if (state_ != State::kClosing) return;
  if (!RevokeOwned(/*lost=*/false)) return;
  if (state_ != State::kClosing) return;
  // Commits made inside on_partitions_revoked go out before the member leaves (after leaving, the
  // coordinator would refuse them).
  AfterPendingCommits([this] { LeaveGroup(); });
}

void GroupConsumer::LeaveGroup() {
  if (state_ != State::kClosing) return;
  // A static member keeps its place (and its partitions) for session_timeout_ms, so a restart
  // with the same instance id does not rebalance. A member that never got an id has nothing to
  // leave.
  if (options_.group_instance_id.has_value() || member_id_.empty() || coordinator_ == nullptr) {
    FinishClose();
    return;
  }
  protocol::LeaveGroupRequest request;
  request.group_id = options_.group_id;
  request.member_id = member_id_;
  request.members.push_back({member_id_, std::nullopt});
  std::weak_ptr<GroupConsumer*> alive = alive_;
  SendToCoordinator(std::move(request), [alive](absl::StatusOr<ApiResponse> response) {
    if (alive.expired()) return;
    GroupConsumer* self = *alive.lock();
    absl::StatusOr<protocol::LeaveGroupResponse> answer =
        TakeResponse<protocol::LeaveGroupResponse>(std::move(response));
    absl::Status status = answer.status();
    if (status.ok()) status = KafkaErrorStatusFromWire(answer->error_code, "leaving");
    if (!status.ok()) {
      // Leaving is a courtesy: the coordinator removes the member after its session anyway.
      self->env_.Log(LogLevel::kDebug, absl::StrCat("client: group ", self->options_.group_id,
                                                    " leave failed: ", status.message()));
    }
    self->FinishClose();
  });
}

void GroupConsumer::FinishClose() {
  if (state_ != State::kClosing) return;
  state_ = State::kClosed;
  generation_id_ = -1;
  is_leader_ = false;
  CancelTimer(&commit_timer_);
  CancelTimer(&coordinator_timer_);
  std::weak_ptr<GroupConsumer*> alive = alive_;
  std::deque<std::shared_ptr<PendingCommit>> commits = std::move(commits_);
  commits_.clear();
  for (std::shared_ptr<PendingCommit>& commit : commits) {
    if (!FinishCommit(commit, absl::FailedPreconditionError(
                                  Context("committing: the consumer closed first")))) {
      return;
    }
  }
  if (coordinator_ != nullptr) MarkCoordinatorUnknown(coordinator_epoch_, "closed");
  RunCloseCallbacks();
}

bool GroupConsumer::RunCloseCallbacks() {
  std::vector<absl::AnyInvocable<void()>> callbacks = std::move(close_callbacks_);
  close_callbacks_.clear();
  std::weak_ptr<GroupConsumer*> alive = alive_;
  for (absl::AnyInvocable<void()>& callback : callbacks) {
    if (callback) callback();
    if (alive.expired()) return false;
  }
  return true;
}

std::vector<TopicPartition> GroupConsumer::assignment() const {
  return std::vector<TopicPartition>(owned_.begin(), owned_.end());
}

std::optional<int64_t> GroupConsumer::Position(const TopicPartition& partition) const {
  if (!owned_.contains(partition)) return std::nullopt;
  if (delivering_) return consumer_->Position(partition);
  auto frozen = frozen_positions_.find(partition);
  if (frozen == frozen_positions_.end()) return std::nullopt;
  return frozen->second;
}

absl::Status GroupConsumer::Seek(const TopicPartition& partition, int64_t offset) {
  if (!delivering_ || !owned_.contains(partition)) {
    return absl::FailedPreconditionError(
        absl::StrCat("partition ", partition.ToString(), " is not owned by this member now"));
  }
  return consumer_->Seek(partition, offset);
}

}  // namespace runnel::client
