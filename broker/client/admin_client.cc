#include "broker/client/admin_client.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "broker/client/assignors.h"
#include "broker/client/kafka_error.h"

namespace runnel::client {

using protocol::ErrorCode;

namespace {

constexpr int64_t kUsPerMs = 1000;
// Extra time a request's connection-level timeout allows beyond the wait it asks the broker for,
// so that the broker's own REQUEST_TIMED_OUT answer arrives before the client gives up.
constexpr int64_t kResponseGraceMs = 2'000;

// Answers that mean "ask the coordinator again", perhaps after finding it again.
bool CoordinatorRetriable(protocol::ErrorCode code) {
  return code == ErrorCode::kCoordinatorLoadInProgress || code == ErrorCode::kNotCoordinator ||
         code == ErrorCode::kCoordinatorNotAvailable;
}

// The wait (ms) a request may ask the broker for: what is left until `deadline_us`, at least 1.
int32_t RemainingWaitMs(int64_t deadline_us, int64_t now_us) {
  return static_cast<int32_t>(
      std::clamp<int64_t>((deadline_us - now_us) / kUsPerMs, 1, INT32_MAX));
}

// Gives each of `names` that the broker's per-topic answer left out an internal error, so that
// the caller gets one result per topic it asked about. `doing` names the operation.
void AddMissingResults(const std::vector<std::string>& names, absl::string_view doing,
                       std::map<std::string, absl::Status>& results) {
  for (const std::string& name : names) {
    if (!results.contains(name)) {
      results[name] = absl::InternalError(
          absl::StrCat(doing, " ", name, ": the broker's answer does not mention it"));
    }
  }
}

}  // namespace

std::string ConfigSourceName(int8_t source) {
  switch (source) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "DYNAMIC_TOPIC_CONFIG";
    case 2:
      return "DYNAMIC_BROKER_CONFIG";
    case 3:
      return "DYNAMIC_DEFAULT_BROKER_CONFIG";
    case 4:
      return "STATIC_BROKER_CONFIG";
    case 5:
      return "DEFAULT_CONFIG";
    case 6:
      return "DYNAMIC_BROKER_LOGGER_CONFIG";
    default:
      return "UNKNOWN";
  }
}

struct AdminClient::RetryState {
  absl::AnyInvocable<protocol::RequestBody()> make_request;
  int64_t deadline_us = 0;
  int attempts = 0;
  ResponseCallback done;
};

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::Create(Env& env, AdminOptions options) {
  if (absl::Status valid = ValidateClientOptions(options.client); !valid.ok()) return valid;
  if (options.api_timeout_ms <= 0) {
    return absl::InvalidArgumentError("api_timeout_ms: must be positive");
  }
  return std::unique_ptr<AdminClient>(new AdminClient(env, std::move(options)));
}

AdminClient::AdminClient(Env& env, AdminOptions options)
    : env_(env),
      options_(std::move(options)),
      metadata_(env, options_.client),
      alive_(std::make_shared<AdminClient*>(this)) {}

AdminClient::~AdminClient() { alive_.reset(); }

void AdminClient::SendWithRetries(absl::AnyInvocable<protocol::RequestBody()> make_request,
                                  int64_t timeout_ms, ResponseCallback done) {
  auto state = std::make_shared<RetryState>();
  state->make_request = std::move(make_request);
  state->deadline_us = env_.clock().MonotonicNowUs() + timeout_ms * kUsPerMs;
  state->done = std::move(done);
  Attempt(std::move(state));
}

void AdminClient::Attempt(std::shared_ptr<RetryState> state) {
  ++state->attempts;
  const int64_t remaining_ms =
      std::max<int64_t>(1, (state->deadline_us - env_.clock().MonotonicNowUs()) / kUsPerMs);
  std::weak_ptr<AdminClient*> alive = alive_;
  metadata_.SendToAny(
      state->make_request(),
      [alive, state](absl::StatusOr<ApiResponse> response) mutable {
        if (alive.expired()) return;
        AdminClient* self = *alive.lock();
        const int64_t now_us = self->env_.clock().MonotonicNowUs();
        if (!response.ok() && IsRetriableError(response.status())) {
          const int64_t backoff_ms =
              BackoffMs(state->attempts - 1, self->options_.client.retry_backoff_ms,
                        self->options_.client.retry_backoff_ms_max, self->env_.random());
          if (now_us + backoff_ms * kUsPerMs < state->deadline_us) {
            if (NeedsMetadataRefresh(response.status())) self->metadata_.RequestUpdate();
            self->env_.clock().ScheduleAfter(backoff_ms * kUsPerMs, [alive, state]() mutable {
              if (!alive.expired()) (*alive.lock())->Attempt(std::move(state));
            });
            return;
          }
        }
        state->done(std::move(response));
      },
      RequestOptions{.timeout_ms = remaining_ms + kResponseGraceMs});
}

void AdminClient::CreateTopics(std::vector<NewTopic> topics, CreateTopicsOptions options,
                               Callback<std::map<std::string, absl::Status>> done) {
  if (topics.empty() || topics.size() > AdminOptions::kTopicsPerCallMax) {
    std::weak_ptr<AdminClient*> alive = alive_;
    const size_t count = topics.size();
    env_.clock().ScheduleAfter(0, [alive, count, done = std::move(done)]() mutable {
      if (alive.expired()) return;
      done(absl::InvalidArgumentError(absl::StrCat("CreateTopics needs 1 to ",
                                                   AdminOptions::kTopicsPerCallMax,
                                                   " topics, not ", count)));
    });
    return;
  }
  const int64_t timeout_ms = options.timeout_ms > 0 ? options.timeout_ms : options_.api_timeout_ms;
  const int64_t deadline_us = env_.clock().MonotonicNowUs() + timeout_ms * kUsPerMs;
  std::vector<std::string> names;
  for (const NewTopic& topic : topics) names.push_back(topic.name);
  auto make_request = [this, topics = std::move(topics), validate_only = options.validate_only,
                       deadline_us]() -> protocol::RequestBody {
    protocol::CreateTopicsRequest request;
    for (const NewTopic& topic : topics) {
      protocol::CreateTopicsRequest::Topic entry;
      entry.name = topic.name;
      entry.num_partitions = topic.partitions;
      entry.replication_factor = topic.replication_factor;
      for (const auto& [name, value] : topic.configs) entry.configs.push_back({name, value});
      request.topics.push_back(std::move(entry));
    }
    request.timeout_ms = RemainingWaitMs(deadline_us, env_.clock().MonotonicNowUs());
    request.validate_only = validate_only;
    return request;
  };
  SendWithRetries(
      std::move(make_request), timeout_ms,
      [names = std::move(names), done = std::move(done)](
          absl::StatusOr<ApiResponse> response) mutable {
        absl::StatusOr<protocol::CreateTopicsResponse> answer =
            TakeResponse<protocol::CreateTopicsResponse>(std::move(response));
        if (!answer.ok()) {
          done(answer.status());
          return;
        }
        std::map<std::string, absl::Status> results;
        for (const auto& topic : answer->topics) {
          results[topic.name] = KafkaErrorStatusFromWire(
              topic.error_code, absl::StrCat("creating topic ", topic.name),
              topic.error_message.value_or(""));
        }
        AddMissingResults(names, "creating topic", results);
        done(std::move(results));
      });
}

void AdminClient::CreateTopic(NewTopic topic, CreateTopicsOptions options, StatusCallback done) {
  const std::string name = topic.name;
  std::vector<NewTopic> topics;
  topics.push_back(std::move(topic));
  CreateTopics(std::move(topics), options,
               [name, done = std::move(done)](
                   absl::StatusOr<std::map<std::string, absl::Status>> results) mutable {
                 if (!results.ok()) {
                   done(results.status());
                   return;
                 }
                 done((*results)[name]);
               });
}

void AdminClient::DeleteTopics(std::vector<std::string> topics, int64_t timeout_ms,
                               Callback<std::map<std::string, absl::Status>> done) {
  if (topics.empty() || topics.size() > AdminOptions::kTopicsPerCallMax) {
    std::weak_ptr<AdminClient*> alive = alive_;
    const size_t count = topics.size();
    env_.clock().ScheduleAfter(0, [alive, count, done = std::move(done)]() mutable {
      if (alive.expired()) return;
      done(absl::InvalidArgumentError(absl::StrCat("DeleteTopics needs 1 to ",
                                                   AdminOptions::kTopicsPerCallMax,
                                                   " topics, not ", count)));
    });
    return;
  }
  if (timeout_ms <= 0) timeout_ms = options_.api_timeout_ms;
  const int64_t deadline_us = env_.clock().MonotonicNowUs() + timeout_ms * kUsPerMs;
  std::vector<std::string> names = topics;
  auto make_request = [this, topics = std::move(topics), deadline_us]() -> protocol::RequestBody {
    protocol::DeleteTopicsRequest request;
    request.topic_names = topics;
    request.timeout_ms = RemainingWaitMs(deadline_us, env_.clock().MonotonicNowUs());
    return request;
  };
  SendWithRetries(
      std::move(make_request), timeout_ms,
      [names = std::move(names), done = std::move(done)](
          absl::StatusOr<ApiResponse> response) mutable {
        absl::StatusOr<protocol::DeleteTopicsResponse> answer =
            TakeResponse<protocol::DeleteTopicsResponse>(std::move(response));
        if (!answer.ok()) {
          done(answer.status());
          return;
        }
        std::map<std::string, absl::Status> results;
        for (const auto& topic : answer->responses) {
          results[topic.name] =
              KafkaErrorStatusFromWire(topic.error_code, absl::StrCat("deleting topic ", topic.name));
        }
        AddMissingResults(names, "deleting topic", results);
        done(std::move(results));
      });
}

void AdminClient::DeleteTopic(std::string topic, StatusCallback done) {
  const std::string name = topic;
  DeleteTopics({std::move(topic)}, 0,
               [name, done = std::move(done)](
                   absl::StatusOr<std::map<std::string, absl::Status>> results) mutable {
                 if (!results.ok()) {
                   done(results.status());
                   return;
                 }
                 done((*results)[name]);
               });
}

void AdminClient::ListTopics(bool include_internal, Callback<std::vector<std::string>> done) {
  auto make_request = []() -> protocol::RequestBody {
    protocol::MetadataRequest request;
    request.topics = std::nullopt;  // every topic
    request.allow_auto_topic_creation = false;
    return request;
  };
  SendWithRetries(std::move(make_request), options_.api_timeout_ms,
                  [include_internal, done = std::move(done)](
                      absl::StatusOr<ApiResponse> response) mutable {
                    absl::StatusOr<protocol::MetadataResponse> answer =
                        TakeResponse<protocol::MetadataResponse>(std::move(response));
                    if (!answer.ok()) {
                      done(answer.status());
                      return;
                    }
                    std::set<std::string> names;
                    for (const auto& topic : answer->topics) {
                      if (topic.error_code != 0) continue;
                      if (topic.is_internal && !include_internal) continue;
                      names.insert(topic.name);
                    }
                    done(std::vector<std::string>(names.begin(), names.end()));
                  });
}

void AdminClient::DescribeTopic(std::string topic, Callback<TopicDescription> done) {
  auto make_request = [topic]() -> protocol::RequestBody {
    protocol::MetadataRequest request;
    request.topics.emplace();
    request.topics->push_back({topic});
    request.allow_auto_topic_creation = false;
    return request;
  };
  SendWithRetries(
      std::move(make_request), options_.api_timeout_ms,
      [topic, done = std::move(done)](absl::StatusOr<ApiResponse> response) mutable {
        absl::StatusOr<protocol::MetadataResponse> answer =
            TakeResponse<protocol::MetadataResponse>(std::move(response));
        if (!answer.ok()) {
          done(answer.status());
          return;
        }
        for (const auto& entry : answer->topics) {
          if (entry.name != topic) continue;
          if (entry.error_code != 0) {
            done(KafkaErrorStatusFromWire(entry.error_code,
                                          absl::StrCat("describing topic ", topic)));
            return;
          }
          TopicDescription description;
          description.name = entry.name;
          description.internal = entry.is_internal;
          for (const auto& partition : entry.partitions) {
            description.partitions.push_back(PartitionDescription{
                .partition = partition.partition_index,
                .leader_id = partition.leader_id,
                .leader_epoch = partition.leader_epoch,
                .replicas = partition.replica_nodes,
                .isr = partition.isr_nodes,
                .offline_replicas = partition.offline_replicas,
            });
          }
          std::stable_sort(description.partitions.begin(), description.partitions.end(),
                           [](const PartitionDescription& a, const PartitionDescription& b) {
                             return a.partition < b.partition;
                           });
          done(std::move(description));
          return;
        }
        done(KafkaErrorStatus(ErrorCode::kUnknownTopicOrPartition,
                              absl::StrCat("describing topic ", topic),
                              "the broker's answer does not mention it"));
      });
}

void AdminClient::DescribeTopicConfigs(std::string topic, Callback<std::vector<ConfigEntry>> done) {
  DescribeConfigsOf(protocol::kConfigResourceTopic, std::move(topic), std::move(done));
}

void AdminClient::DescribeBrokerConfigs(int32_t node_id, Callback<std::vector<ConfigEntry>> done) {
  DescribeConfigsOf(protocol::kConfigResourceBroker, absl::StrCat(node_id), std::move(done));
}

void AdminClient::DescribeConfigsOf(int8_t resource_type, std::string name,
                                    Callback<std::vector<ConfigEntry>> done) {
  auto make_request = [resource_type, name]() -> protocol::RequestBody {
    protocol::DescribeConfigsRequest request;
    request.resources.push_back({resource_type, name, std::nullopt});
    return request;
  };
  SendWithRetries(
      std::move(make_request), options_.api_timeout_ms,
      [name, done = std::move(done)](absl::StatusOr<ApiResponse> response) mutable {
        if (!response.ok()) {
          done(response.status());
          return;
        }
        const int16_t version = response->api_version;
        absl::StatusOr<protocol::DescribeConfigsResponse> answer =
            TakeResponse<protocol::DescribeConfigsResponse>(std::move(response));
        if (!answer.ok()) {
          done(answer.status());
          return;
        }
        if (answer->results.size() != 1) {
          done(absl::InternalError(absl::StrCat("describing configs of ", name, ": ",
                                                answer->results.size(),
                                                " results for one resource")));
          return;
        }
        const auto& result = answer->results.front();
        if (result.error_code != 0) {
          done(KafkaErrorStatusFromWire(result.error_code,
                                        absl::StrCat("describing configs of ", name),
                                        result.error_message.value_or("")));
          return;
        }
        std::vector<ConfigEntry> entries;
        for (const auto& config : result.configs) {
          ConfigEntry entry;
          entry.name = config.name;
          entry.value = config.value;
          entry.read_only = config.read_only;
          entry.sensitive = config.is_sensitive;
          if (version == 0) {
            entry.is_default = config.is_default;
            entry.source = config.is_default ? "DEFAULT_CONFIG" : "UNKNOWN";
          } else {
            entry.source = ConfigSourceName(config.config_source);
            entry.is_default = config.config_source == 5;
          }
          entries.push_back(std::move(entry));
        }
        std::stable_sort(entries.begin(), entries.end(),
                         [](const ConfigEntry& a, const ConfigEntry& b) { return a.name < b.name; });
        done(std::move(entries));
      });
}

struct AdminClient::CoordinatorCall {
  std::string group_id;
  absl::AnyInvocable<protocol::RequestBody()> make_request;
  absl::AnyInvocable<absl::Status(absl::StatusOr<ApiResponse>)> handle;
  absl::AnyInvocable<void(const absl::Status&)> fail;
  int64_t deadline_us = 0;
  int attempts = 0;
};

void AdminClient::CallCoordinator(
    std::string group_id, absl::AnyInvocable<protocol::RequestBody()> make_request,
    absl::AnyInvocable<absl::Status(absl::StatusOr<ApiResponse>)> handle,
    absl::AnyInvocable<void(const absl::Status&)> fail) {
  auto call = std::make_shared<CoordinatorCall>();
  call->group_id = std::move(group_id);
  call->make_request = std::move(make_request);
  call->handle = std::move(handle);
  call->fail = std::move(fail);
  call->deadline_us = env_.clock().MonotonicNowUs() + options_.api_timeout_ms * kUsPerMs;
  if (call->group_id.empty()) {
    std::weak_ptr<AdminClient*> alive = alive_;
    env_.clock().ScheduleAfter(0, [alive, call] {
      if (!alive.expired()) call->fail(absl::InvalidArgumentError("the group id is empty"));
    });
    return;
  }
  CoordinatorAttempt(std::move(call));
}

void AdminClient::RetryCoordinatorCall(std::shared_ptr<CoordinatorCall> call, absl::Status why) {
  const int64_t backoff_us = BackoffMs(call->attempts - 1, options_.client.retry_backoff_ms,
                                       options_.client.retry_backoff_ms_max, env_.random()) *
                             kUsPerMs;
  if (!IsRetriableError(why) || env_.clock().MonotonicNowUs() + backoff_us >= call->deadline_us) {
    call->fail(why);
    return;
  }
  if (NeedsMetadataRefresh(why)) metadata_.RequestUpdate();
  std::weak_ptr<AdminClient*> alive = alive_;
  env_.clock().ScheduleAfter(backoff_us, [alive, call] {
    if (!alive.expired()) (*alive.lock())->CoordinatorAttempt(call);
  });
}

void AdminClient::CoordinatorAttempt(std::shared_ptr<CoordinatorCall> call) {
  ++call->attempts;
  protocol::FindCoordinatorRequest find;
  find.key = call->group_id;
  find.key_type = protocol::kCoordinatorKeyGroup;
  std::weak_ptr<AdminClient*> alive = alive_;
  metadata_.SendToAny(std::move(find), [alive, call](absl::StatusOr<ApiResponse> response) {
    if (alive.expired()) return;
    AdminClient* self = *alive.lock();
    absl::StatusOr<protocol::FindCoordinatorResponse> found =
        TakeResponse<protocol::FindCoordinatorResponse>(std::move(response));
    absl::Status error = found.status();
    if (error.ok()) {
      error = KafkaErrorStatusFromWire(found->error_code,
                                       absl::StrCat("finding the coordinator of group ",
                                                    call->group_id),
                                       found->error_message.value_or(""));
    }
    if (!error.ok()) {
      self->RetryCoordinatorCall(call, error);
      return;
    }
    BrokerConnection* connection = self->metadata_.ConnectionToNode(found->node_id);
    if (connection == nullptr) {
      // A broker the metadata has not listed yet: learn it, then try again.
      self->metadata_.RequestUpdate();
      self->RetryCoordinatorCall(
          call, KafkaErrorStatus(ErrorCode::kCoordinatorNotAvailable,
                                 absl::StrCat("reaching the coordinator of group ", call->group_id),
                                 absl::StrCat("node ", found->node_id, " is not known yet")));
      return;
    }
    connection->Send(call->make_request(), [alive, call](absl::StatusOr<ApiResponse> answer) {
      if (alive.expired()) return;
      AdminClient* admin = *alive.lock();
      absl::Status retry = call->handle(std::move(answer));
      if (!retry.ok()) admin->RetryCoordinatorCall(call, retry);
    });
  });
}

void AdminClient::ListGroups(Callback<std::vector<GroupListing>> done) {
  struct Operation {
    std::set<int32_t> remaining;
    std::map<std::string, GroupListing> groups;
    absl::Status error;
    int64_t deadline_us = 0;
    Callback<std::vector<GroupListing>> done;
  };
  auto operation = std::make_shared<Operation>();
  operation->done = std::move(done);
  operation->deadline_us = env_.clock().MonotonicNowUs() + options_.api_timeout_ms * kUsPerMs;
  std::weak_ptr<AdminClient*> alive = alive_;
  auto finish_one = [alive, operation](int32_t node, absl::Status error) {
    if (!error.ok() && operation->error.ok()) operation->error = error;
    operation->remaining.erase(node);
    if (!operation->remaining.empty()) return;
    if (!operation->error.ok()) {
      operation->done(operation->error);
      return;
    }
    std::vector<GroupListing> groups;
    for (auto& [id, listing] : operation->groups) groups.push_back(std::move(listing));
    operation->done(std::move(groups));
  };
  // Asks one broker, again after retriable failures until the deadline.
  auto ask = std::make_shared<absl::AnyInvocable<void(int32_t, int)>>();
  *ask = [alive, operation, finish_one, ask_weak = std::weak_ptr(ask)](int32_t node,
                                                                       int attempt) mutable {
    if (alive.expired()) return;
    AdminClient* self = *alive.lock();
    BrokerConnection* connection = self->metadata_.ConnectionToNode(node);
    if (connection == nullptr) {
      finish_one(node, absl::InternalError(absl::StrCat("broker ", node, " vanished")));
      return;
    }
    auto ask_again = ask_weak.lock();
    connection->Send(protocol::ListGroupsRequest{}, [alive, operation, finish_one, ask_again, node,
                                                     attempt](absl::StatusOr<ApiResponse> response) mutable {
      if (alive.expired()) return;
      AdminClient* admin = *alive.lock();
      absl::StatusOr<protocol::ListGroupsResponse> answer =
          TakeResponse<protocol::ListGroupsResponse>(std::move(response));
      absl::Status error = answer.status();
      if (error.ok()) {
        error = KafkaErrorStatusFromWire(answer->error_code,
                                         absl::StrCat("listing the groups of broker ", node));
      }
      if (error.ok()) {
        for (auto& group : answer->groups) {
          operation->groups[group.group_id] =
              GroupListing{group.group_id, std::move(group.protocol_type)};
        }
        finish_one(node, absl::OkStatus());
        return;
      }
      const int64_t backoff_us =
          BackoffMs(attempt, admin->options_.client.retry_backoff_ms,
                    admin->options_.client.retry_backoff_ms_max, admin->env_.random()) *
          kUsPerMs;
      if (IsRetriableError(error) && ask_again != nullptr &&
          admin->env_.clock().MonotonicNowUs() + backoff_us < operation->deadline_us) {
        admin->env_.clock().ScheduleAfter(backoff_us, [ask_again, node, attempt]() mutable {
          (*ask_again)(node, attempt + 1);
        });
        return;
      }
      finish_one(node, error);
    });
  };
  // The brokers come from metadata; without any yet, one update first.
  metadata_.AwaitUpdate([alive, operation, ask](const absl::Status& status) mutable {
    if (alive.expired()) return;
    AdminClient* self = *alive.lock();
    if (self->metadata_.brokers().empty()) {
      operation->done(status.ok() ? absl::UnavailableError("listing groups: no broker is known")
                                  : status);
      return;
    }
    for (const auto& [node, broker] : self->metadata_.brokers()) operation->remaining.insert(node);
    const std::set<int32_t> nodes = operation->remaining;
    for (int32_t node : nodes) (*ask)(node, 0);
  });
}

void AdminClient::DescribeGroup(std::string group_id, Callback<GroupDescription> done) {
  auto shared_done = std::make_shared<Callback<GroupDescription>>(std::move(done));
  CallCoordinator(
      group_id,
      [group_id]() -> protocol::RequestBody {
        protocol::DescribeGroupsRequest request;
        request.groups = {group_id};
        return request;
      },
      [group_id, shared_done](absl::StatusOr<ApiResponse> response) -> absl::Status {
        absl::StatusOr<protocol::DescribeGroupsResponse> answer =
            TakeResponse<protocol::DescribeGroupsResponse>(std::move(response));
        if (!answer.ok()) {
          if (IsRetriableError(answer.status())) return answer.status();
          (*shared_done)(answer.status());
          return absl::OkStatus();
        }
        for (auto& group : answer->groups) {
          if (group.group_id != group_id) continue;
          const std::string context = absl::StrCat("describing group ", group_id);
          absl::Status error = KafkaErrorStatusFromWire(group.error_code, context);
          if (!error.ok()) {
            std::optional<ErrorCode> code = KafkaErrorCodeOf(error);
            if (code.has_value() && CoordinatorRetriable(*code)) return error;
            (*shared_done)(error);
            return absl::OkStatus();
          }
          GroupDescription description;
          description.group_id = group.group_id;
          description.state = group.group_state;
          description.protocol_type = group.protocol_type;
          description.protocol = group.protocol_data;
          for (auto& member : group.members) {
            GroupMemberDescription entry;
            entry.member_id = member.member_id;
            entry.group_instance_id = member.group_instance_id;
            entry.client_id = member.client_id;
            entry.client_host = member.client_host;
            if (group.protocol_type == kConsumerProtocolType) {
              absl::StatusOr<ConsumerSubscription> subscription =
                  DecodeSubscription(member.member_metadata);
              if (subscription.ok()) entry.subscribed_topics = std::move(subscription->topics);
              absl::StatusOr<ConsumerAssignment> assignment =
                  DecodeAssignment(member.member_assignment);
              if (assignment.ok()) {
                entry.assignment = std::move(assignment->partitions);
                std::sort(entry.assignment.begin(), entry.assignment.end());
              }
            }
            description.members.push_back(std::move(entry));
          }
          std::sort(description.members.begin(), description.members.end(),
                    [](const GroupMemberDescription& a, const GroupMemberDescription& b) {
                      return a.member_id < b.member_id;
                    });
          (*shared_done)(std::move(description));
          return absl::OkStatus();
        }
        (*shared_done)(KafkaErrorStatus(ErrorCode::kUnknownServerError,
                                        absl::StrCat("describing group ", group_id),
                                        "the answer does not mention the group"));
        return absl::OkStatus();
      },
      [shared_done](const absl::Status& error) { (*shared_done)(error); });
}

void AdminClient::ListGroupOffsets(std::string group_id,
                                   Callback<std::map<TopicPartition, OffsetAndMetadata>> done) {
  auto shared_done =
      std::make_shared<Callback<std::map<TopicPartition, OffsetAndMetadata>>>(std::move(done));
  CallCoordinator(
      group_id,
      [group_id]() -> protocol::RequestBody {
        // topics stays null: every topic (v2 and later).
        protocol::OffsetFetchRequest request;
        request.group_id = group_id;
        return request;
      },
      [group_id, shared_done](absl::StatusOr<ApiResponse> response) -> absl::Status {
        if (response.ok() && response->api_version < 2) {
          (*shared_done)(KafkaErrorStatus(
              ErrorCode::kUnsupportedVersion, absl::StrCat("listing the offsets of group ", group_id),
              "listing every offset needs OffsetFetch v2"));
          return absl::OkStatus();
        }
        absl::StatusOr<protocol::OffsetFetchResponse> answer =
            TakeResponse<protocol::OffsetFetchResponse>(std::move(response));
        if (!answer.ok()) {
          if (IsRetriableError(answer.status())) return answer.status();
          (*shared_done)(answer.status());
          return absl::OkStatus();
        }
        const std::string context = absl::StrCat("listing the offsets of group ", group_id);
        absl::Status error = KafkaErrorStatusFromWire(answer->error_code, context);
        if (!error.ok()) {
          std::optional<ErrorCode> code = KafkaErrorCodeOf(error);
          if (code.has_value() && CoordinatorRetriable(*code)) return error;
          (*shared_done)(error);
          return absl::OkStatus();
        }
        std::map<TopicPartition, OffsetAndMetadata> offsets;
        for (const auto& topic : answer->topics) {
          for (const auto& partition : topic.partitions) {
            if (partition.error_code != 0) {
              (*shared_done)(KafkaErrorStatusFromWire(
                  partition.error_code,
                  absl::StrCat(context, ": ", topic.name, "-", partition.partition_index)));
              return absl::OkStatus();
            }
            if (partition.committed_offset < 0) continue;
            offsets[TopicPartition{topic.name, partition.partition_index}] =
                OffsetAndMetadata{partition.committed_offset, partition.metadata.value_or("")};
          }
        }
        (*shared_done)(std::move(offsets));
        return absl::OkStatus();
      },
      [shared_done](const absl::Status& error) { (*shared_done)(error); });
}

}  // namespace runnel::client
