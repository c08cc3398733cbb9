#include "broker/server/admin_handler.h"

#include <array>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/group/group_settings.h"
#include "broker/server/error_mapping.h"

namespace runnel::server {

using protocol::CreateTopicsRequest;
using protocol::CreateTopicsResponse;
using protocol::DeleteTopicsRequest;
using protocol::DeleteTopicsResponse;
using protocol::DescribeConfigsRequest;
using protocol::DescribeConfigsResponse;
using protocol::ErrorCode;
using protocol::ToWire;

namespace {

// DescribeConfigs config_source values.
constexpr int8_t kSourceDynamicTopic = 1;
constexpr int8_t kSourceStaticBroker = 4;
constexpr int8_t kSourceDefault = 5;

// Kafka's ConfigType values (DescribeConfigs v3 config_type).
enum class ConfigType : int8_t {
  kUnknown = 0,
  kBoolean = 1,
  kString = 2,
  kInt = 3,
  kShort = 4,
  kLong = 5,
  kDouble = 6,
  kList = 7,
};

// Sorted by name; topic configs and the broker settings DescribeConfigs lists.
constexpr std::array<std::pair<absl::string_view, ConfigType>, 19> kConfigTypes = {{
    {"advertised.listeners", ConfigType::kString},
    {"auto.create.topics.enable", ConfigType::kBoolean},
    {"broker.id", ConfigType::kInt},
    {"cleanup.policy", ConfigType::kList},
    {"default.replication.factor", ConfigType::kInt},
    {"delete.retention.ms", ConfigType::kLong},
    {"flush.messages", ConfigType::kLong},
    {"flush.ms", ConfigType::kLong},
    {"flush.policy", ConfigType::kString},
    {"index.interval.bytes", ConfigType::kInt},
    {"listeners", ConfigType::kString},
    {"max.message.bytes", ConfigType::kInt},
    {"message.timestamp.type", ConfigType::kString},
    {"min.cleanable.dirty.ratio", ConfigType::kDouble},
    {"num.partitions", ConfigType::kInt},
    {"retention.bytes", ConfigType::kLong},
    {"retention.ms", ConfigType::kLong},
    {"segment.bytes", ConfigType::kInt},
    {"segment.ms", ConfigType::kLong},
}};

int8_t TypeOf(absl::string_view name) {
  for (const auto& [config, type] : kConfigTypes) {
    if (config == name) return static_cast<int8_t>(type);
  }
  return static_cast<int8_t>(ConfigType::kUnknown);
}

bool Wanted(const DescribeConfigsRequest::Resource& resource, absl::string_view name) {
  if (!resource.configuration_keys.has_value()) return true;
  for (const std::string& key : *resource.configuration_keys) {
    if (key == name) return true;
  }
  return false;
}

// The value of every topic config under `log`, by name.
std::map<std::string, std::string> DefaultValues(const storage::LogConfig& log) {
  std::map<std::string, std::string> values;
  absl::StatusOr<std::vector<ConfigDescription>> described = DescribeTopicConfig(log, {});
  if (described.ok()) {
    for (ConfigDescription& description : *described) {
      values.emplace(std::move(description.name), std::move(description.value));
    }
  }
  return values;
}

// A request waiting for topic changes to become durable: one result per position, answered when
// every started change is done or at the timeout.
template <typename Response>
struct AdminWait {
  Response response;
  Respond respond;
  std::vector<bool> waiting;
  size_t waiting_count = 1;  // a sentinel while changes are being started
  TimerId timer = kNoTimer;
  bool answered = false;
  Env* env = nullptr;
  // Sets the error of the result at a position.
  void (*set_error)(Response& response, size_t index, const absl::Status& status) = nullptr;

  void Answer() {
    if (answered) return;
    answered = true;
    if (timer != kNoTimer) env->clock().CancelTimer(timer);
    timer = kNoTimer;
    Respond done = std::move(respond);
    done(std::move(response));
  }
  void Finish(size_t index, const absl::Status& status) {
    if (answered || !waiting[index]) return;
    waiting[index] = false;
    if (!status.ok()) set_error(response, index, status);
    if (--waiting_count == 0) Answer();
  }
  void TimeOut() {
    timer = kNoTimer;
    if (answered) return;
    for (size_t i = 0; i < waiting.size(); ++i) {
      if (!waiting[i]) continue;
      waiting[i] = false;
      set_error(response, i,
                absl::DeadlineExceededError("the change did not become durable within the "
                                            "request's timeout; it continues"));
    }
    Answer();
  }
};

void SetCreateError(CreateTopicsResponse& response, size_t index, const absl::Status& status) {
  CreateTopicsResponse::Topic& topic = response.topics[index];
  topic.error_code = ToKafkaErrorWire(status, StatusOrigin::kTopicAdmin);
  topic.error_message = ErrorMessageOf(status);
}

void SetDeleteError(DeleteTopicsResponse& response, size_t index, const absl::Status& status) {
  response.responses[index].error_code = ToKafkaErrorWire(status, StatusOrigin::kTopicAdmin);
}

// Starts the timeout (or answers now) once every change was started.
template <typename Response>
void StartWaiting(const std::shared_ptr<AdminWait<Response>>& wait, Env& env, int32_t timeout_ms) {
  if (timeout_ms <= 0) {
    // Kafka's rule: with no timeout the request only starts the changes.
    std::fill(wait->waiting.begin(), wait->waiting.end(), false);
    wait->Answer();
    return;
  }
  if (--wait->waiting_count == 0) {
    wait->Answer();
    return;
  }
  wait->timer = env.clock().ScheduleAfter(ClientWaitUs(timeout_ms), [wait] { wait->TimeOut(); });
}

}  // namespace

AdminHandler::AdminHandler(Env& env, TopicManager& topics, const BrokerSettings& settings,
                           BrokerIdentity identity, TopicDeleted on_topic_deleted)
    : env_(env),
      topics_(topics),
      settings_(settings),
      identity_(std::move(identity)),
      on_topic_deleted_(std::move(on_topic_deleted)),
      alive_(std::make_shared<AdminHandler*>(this)) {}

AdminHandler::~AdminHandler() { alive_.reset(); }

absl::Status AdminHandler::CreateOne(const CreateTopicsRequest::Topic& topic, bool validate_only,
                                     TopicManager::Callback done) {
  int32_t partition_count = topic.num_partitions;
  if (!topic.assignments.empty()) {
    if (topic.num_partitions != -1 || topic.replication_factor != -1) {
      return absl::InvalidArgumentError(
          "both num_partitions or replication_factor and manual assignments were set");
    }
    std::set<int32_t> partitions;
    for (const CreateTopicsRequest::Assignment& assignment : topic.assignments) {
      if (assignment.broker_ids.size() != 1 || assignment.broker_ids[0] != identity_.node_id) {
        return absl::InvalidArgumentError(absl::StrCat(
            "partition ", assignment.partition_index,
            " must be assigned to exactly this broker (", identity_.node_id, ")"));
      }
      partitions.insert(assignment.partition_index);
    }
    const int32_t count = static_cast<int32_t>(topic.assignments.size());
    if (partitions.size() != topic.assignments.size() || *partitions.begin() != 0 ||
        *partitions.rbegin() != count - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("manual assignments must name partitions 0 to ", count - 1, " once each"));
    }
    partition_count = count;
  } else if (absl::Status factor = topics_.ValidateReplicationFactor(topic.replication_factor);
             !factor.ok()) {
    return factor;
  }
  TopicConfigOverrides configs;
  for (const CreateTopicsRequest::Config& config : topic.configs) {
    if (!config.value.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("null value not supported for topic config '", config.name, "'"));
    }
    configs[config.name] = *config.value;
  }
  if (validate_only) return topics_.ValidateCreateTopic(topic.name, partition_count, configs);
  return topics_.CreateTopic(topic.name, partition_count, std::move(configs), std::move(done));
}

void AdminHandler::HandleCreateTopics(int16_t version, const CreateTopicsRequest& request,
                                      Respond respond) {
  static_cast<void>(version);
  auto wait = std::make_shared<AdminWait<CreateTopicsResponse>>();
  wait->respond = std::move(respond);
  wait->env = &env_;
  wait->set_error = &SetCreateError;
  wait->waiting.assign(request.topics.size(), false);
  std::map<std::string, int> name_counts;
  for (const CreateTopicsRequest::Topic& topic : request.topics) ++name_counts[topic.name];
  for (size_t i = 0; i < request.topics.size(); ++i) {
    const CreateTopicsRequest::Topic& topic = request.topics[i];
    CreateTopicsResponse::Topic& out = wait->response.topics.emplace_back();
    out.name = topic.name;
    absl::Status started;
    if (name_counts[topic.name] > 1) {
      started = absl::InvalidArgumentError(
          absl::StrCat("topic '", topic.name, "' appears more than once in the request"));
    } else {
      std::weak_ptr<AdminWait<CreateTopicsResponse>> weak = wait;
      started = CreateOne(topic, request.validate_only, [weak, i](const absl::Status& status) {
        if (auto held = weak.lock()) held->Finish(i, status);
      });
      if (started.ok() && !request.validate_only) {
        wait->waiting[i] = true;
        ++wait->waiting_count;
      }
    }
    if (!started.ok()) SetCreateError(wait->response, i, started);
  }
  if (request.validate_only) {
    wait->Answer();
    return;
  }
  StartWaiting(wait, env_, request.timeout_ms);
}

void AdminHandler::HandleDeleteTopics(int16_t version, const DeleteTopicsRequest& request,
                                      Respond respond) {
  static_cast<void>(version);
  auto wait = std::make_shared<AdminWait<DeleteTopicsResponse>>();
  wait->respond = std::move(respond);
  wait->env = &env_;
  wait->set_error = &SetDeleteError;
  wait->waiting.assign(request.topic_names.size(), false);
  std::map<std::string, int> name_counts;
  for (const std::string& name : request.topic_names) ++name_counts[name];
  for (size_t i = 0; i < request.topic_names.size(); ++i) {
    const std::string& name = request.topic_names[i];
    DeleteTopicsResponse::Result& out = wait->response.responses.emplace_back();
    out.name = name;
    absl::Status started;
    if (name_counts[name] > 1) {
      started = absl::InvalidArgumentError("topic appears more than once in the request");
    } else if (group::IsInternalTopic(name)) {
      started = TopicRequestErrorStatus(TopicRequestError::kInvalidTopicName,
                                        absl::StrCat("'", name, "' is an internal topic"));
    } else {
      std::weak_ptr<AdminWait<DeleteTopicsResponse>> weak = wait;
      std::weak_ptr<AdminHandler*> alive = alive_;
      started = topics_.DeleteTopic(name, [weak, alive, i, name](const absl::Status& status) {
        if (status.ok() && !alive.expired()) {
          AdminHandler* self = *alive.lock();
          if (self->on_topic_deleted_) self->on_topic_deleted_(name);
        }
        if (auto held = weak.lock()) held->Finish(i, status);
      });
      if (started.ok()) {
        wait->waiting[i] = true;
        ++wait->waiting_count;
      }
    }
    if (!started.ok()) SetDeleteError(wait->response, i, started);
  }
  StartWaiting(wait, env_, request.timeout_ms);
}

DescribeConfigsResponse::Result AdminHandler::DescribeTopic(
    int16_t version, const DescribeConfigsRequest& request,
    const DescribeConfigsRequest::Resource& resource) const {
  DescribeConfigsResponse::Result result;
  result.resource_type = resource.resource_type;
  result.resource_name = resource.resource_name;
  absl::StatusOr<std::vector<ConfigDescription>> described =
      topics_.DescribeTopicConfig(resource.resource_name);
  if (!described.ok()) {
    result.error_code = ToKafkaErrorWire(described.status(), StatusOrigin::kTopicAdmin);
    result.error_message = ErrorMessageOf(described.status());
    return result;
  }
  const std::map<std::string, std::string> broker_values = DefaultValues(settings_.defaults.log);
  const std::map<std::string, std::string> builtin_values = DefaultValues(storage::LogConfig{});
  for (const ConfigDescription& description : *described) {
    if (!Wanted(resource, description.name)) continue;
    const std::string synonym(BrokerSynonymOf(description.name));
    const bool override = description.source == ConfigSource::kTopicOverride;
    const bool static_default = settings_.static_configs.contains(synonym);
    DescribeConfigsResponse::Config& config = result.configs.emplace_back();
    config.name = description.name;
    config.value = description.value;
    config.read_only = description.read_only;
    config.is_sensitive = description.sensitive;
    config.is_default = !override;
    config.config_source =
        override ? kSourceDynamicTopic : (static_default ? kSourceStaticBroker : kSourceDefault);
    config.config_type = TypeOf(description.name);
    if (version >= 1 && request.include_synonyms) {
      if (override) {
        config.synonyms.push_back({description.name, description.value, kSourceDynamicTopic});
      }
      if (static_default) {
        auto it = broker_values.find(description.name);
        config.synonyms.push_back(
            {synonym, it == broker_values.end() ? std::nullopt : std::optional(it->second),
             kSourceStaticBroker});
      }
      auto it = builtin_values.find(description.name);
      config.synonyms.push_back(
          {synonym, it == builtin_values.end() ? std::nullopt : std::optional(it->second),
           kSourceDefault});
    }
  }
  return result;
}

DescribeConfigsResponse::Result AdminHandler::DescribeBroker(
    int16_t version, const DescribeConfigsRequest& request,
    const DescribeConfigsRequest::Resource& resource) const {
  DescribeConfigsResponse::Result result;
  result.resource_type = resource.resource_type;
  result.resource_name = resource.resource_name;
  int32_t node = 0;
  if (!resource.resource_name.empty() &&
      (!absl::SimpleAtoi(resource.resource_name, &node) || node != identity_.node_id)) {
    result.error_code = ToWire(ErrorCode::kInvalidRequest);
    result.error_message = absl::StrCat("this is broker ", identity_.node_id, ", not '",
                                        resource.resource_name, "'");
    return result;
  }
  const BrokerDefaults& defaults = settings_.defaults;
  struct Setting {
    std::string name;
    std::string value;
    std::string builtin;
    bool is_static;
  };
  const BrokerDefaults builtin;
  std::vector<Setting> settings = {
      {"advertised.listeners", identity_.advertised_listeners, "", true},
      {"auto.create.topics.enable", defaults.auto_create_topics_enable ? "true" : "false",
       builtin.auto_create_topics_enable ? "true" : "false",
       settings_.static_configs.contains("auto.create.topics.enable")},
      {"broker.id", absl::StrCat(identity_.node_id), "", true},
      {"default.replication.factor", absl::StrCat(defaults.default_replication_factor),
       absl::StrCat(builtin.default_replication_factor),
       settings_.static_configs.contains("default.replication.factor")},
      {"listeners", identity_.listeners, "", true},
      {"num.partitions", absl::StrCat(defaults.num_partitions),
       absl::StrCat(builtin.num_partitions), settings_.static_configs.contains("num.partitions")},
  };
  const std::map<std::string, std::string> broker_values = DefaultValues(defaults.log);
  const std::map<std::string, std::string> builtin_values = DefaultValues(storage::LogConfig{});
  for (const auto& [topic_config, value] : broker_values) {
    const std::string synonym(BrokerSynonymOf(topic_config));
    auto builtin_value = builtin_values.find(topic_config);
    settings.push_back({synonym, value,
                        builtin_value == builtin_values.end() ? "" : builtin_value->second,
                        settings_.static_configs.contains(synonym)});
  }
  std::sort(settings.begin(), settings.end(),
            [](const Setting& a, const Setting& b) { return a.name < b.name; });
  for (const Setting& setting : settings) {
    if (!Wanted(resource, setting.name)) continue;
    DescribeConfigsResponse::Config& config = result.configs.emplace_back();
    config.name = setting.name;
    config.value = setting.value;
    config.read_only = true;  // no dynamic broker configs
    config.is_default = !setting.is_static;
    config.config_source = setting.is_static ? kSourceStaticBroker : kSourceDefault;
    // Topic-level types apply to their broker synonyms too.
    int8_t type = TypeOf(setting.name);
    for (const auto& [topic_config, value] : broker_values) {
      if (BrokerSynonymOf(topic_config) == setting.name) type = TypeOf(topic_config);
    }
    config.config_type = type;
    if (version >= 1 && request.include_synonyms) {
      config.synonyms.push_back({setting.name, setting.value, config.config_source});
      if (setting.is_static && !setting.builtin.empty()) {
        config.synonyms.push_back({setting.name, setting.builtin, kSourceDefault});
      }
    }
  }
  return result;
}

DescribeConfigsResponse AdminHandler::HandleDescribeConfigs(
    int16_t version, const DescribeConfigsRequest& request) const {
  DescribeConfigsResponse response;
  response.results.reserve(request.resources.size());
  for (const DescribeConfigsRequest::Resource& resource : request.resources) {
    if (resource.resource_type == protocol::kConfigResourceTopic) {
      response.results.push_back(DescribeTopic(version, request, resource));
    } else if (resource.resource_type == protocol::kConfigResourceBroker) {
      response.results.push_back(DescribeBroker(version, request, resource));
    } else {
      DescribeConfigsResponse::Result& result = response.results.emplace_back();
      result.resource_type = resource.resource_type;
      result.resource_name = resource.resource_name;
      result.error_code = ToWire(ErrorCode::kInvalidRequest);
      result.error_message =
          absl::StrCat("resource type ", resource.resource_type, " is not supported");
    }
  }
  return response;
}

}  // namespace runnel::server
