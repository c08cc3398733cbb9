#include "broker/client/admin_client.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/client/kafka_error.h"

namespace runnel::client {

using protocol::ErrorCode;

namespace {

constexpr int64_t kUsPerMs = 1000;
// Extra time a request's connection-level timeout allows beyond the wait it asks the broker for,
// so that the broker's own REQUEST_TIMED_OUT answer arrives before the client gives up.
constexpr int64_t kResponseGraceMs = 2'000;

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
    request.timeout_ms = static_cast<int32_t>(std::clamp<int64_t>(
        (deadline_us - env_.clock().MonotonicNowUs()) / kUsPerMs, 1, INT32_MAX));
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
        for (const std::string& name : names) {
          if (!results.contains(name)) {
            results[name] = absl::InternalError(
                absl::StrCat("creating topic ", name, ": the broker's answer does not mention it"));
          }
        }
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
    request.timeout_ms = static_cast<int32_t>(std::clamp<int64_t>(
        (deadline_us - env_.clock().MonotonicNowUs()) / kUsPerMs, 1, INT32_MAX));
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
        for (const std::string& name : names) {
          if (!results.contains(name)) {
            results[name] = absl::InternalError(
                absl::StrCat("deleting topic ", name, ": the broker's answer does not mention it"));
          }
        }
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

}  // namespace runnel::client
