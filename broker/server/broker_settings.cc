#include "broker/server/broker_settings.h"

#include <array>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace runnel::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Topic config -> Kafka's broker config for its default. Sorted by topic config name.
constexpr std::array<std::pair<absl::string_view, absl::string_view>, 13> kBrokerSynonyms = {{
    {"cleanup.policy", "log.cleanup.policy"},
    {"delete.retention.ms", "log.cleaner.delete.retention.ms"},
    {"flush.messages", "log.flush.interval.messages"},
    {"flush.ms", "log.flush.interval.ms"},
    {"flush.policy", "log.flush.policy"},
    {"index.interval.bytes", "log.index.interval.bytes"},
    {"max.message.bytes", "message.max.bytes"},
    {"message.timestamp.type", "log.message.timestamp.type"},
    {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"},
    {"retention.bytes", "log.retention.bytes"},
    {"retention.ms", "log.retention.ms"},
    {"segment.bytes", "log.segment.bytes"},
    {"segment.ms", "log.roll.ms"},
}};

absl::Status FieldError(std::string* error_field, absl::string_view field,
                        absl::string_view message) {
  if (error_field != nullptr) *error_field = std::string(field);
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// The text of a set LogDefaults field, as a topic config value.
std::string FieldText(const Message& message, const Reflection& reflection,
                      const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(reflection.GetInt64(message, &field));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrFormat("%.17g", reflection.GetDouble(message, &field));
    case FieldDescriptor::CPPTYPE_STRING:
      return reflection.GetString(message, &field);
    default:
      // broker_config.proto declares LogDefaults with these three kinds only.
      return "";
  }
}

absl::StatusOr<size_t> PositiveLimit(bool has, int64_t value, size_t fallback,
                                     absl::string_view field, std::string* error_field) {
  if (!has) return fallback;
  if (value <= 0) return FieldError(error_field, field, absl::StrCat("must be positive, not ", value));
  return static_cast<size_t>(value);
}

// The 1-based lines of every set field of `message` (and nested messages) under `prefix`.
void CollectFieldLines(const Message& message, const google::protobuf::TextFormat::ParseInfoTree& tree,
                       const std::string& prefix, std::map<std::string, int>* lines) {
  const Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string path = prefix.empty() ? field->name() : absl::StrCat(prefix, ".", field->name());
    const google::protobuf::TextFormat::ParseLocation location = tree.GetLocation(field, -1);
    if (location.line >= 0) (*lines)[path] = location.line + 1;
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated()) {
      const google::protobuf::TextFormat::ParseInfoTree* child = tree.GetTreeForNested(field, -1);
      if (child != nullptr) {
        CollectFieldLines(reflection.GetMessage(message, field), *child, path, lines);
      }
    }
  }
}

class CollectingErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectingErrors(absl::string_view file_name) : file_name_(file_name) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat(file_name_, ":", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string file_name_;
  std::string first_;
};

// An integer setting of the groups message: its value when set, checked against [min, max].
template <typename T>
absl::Status GroupField(bool has, T value, T min, T max, absl::string_view field,
                        absl::string_view kafka_name, T* target, BrokerSettings& settings,
                        std::string* error_field) {
  if (!has) return absl::OkStatus();
  if (value < min || value > max) {
    return FieldError(error_field, field,
                      absl::StrCat("must be between ", min, " and ", max, ", not ", value));
  }
  *target = value;
  settings.static_configs.insert(std::string(kafka_name));
  return absl::OkStatus();
}

absl::Status ResolveGroups(const Groups& groups, BrokerSettings& settings,
                           std::string* error_field) {
  group::GroupSettings& out = settings.groups;
  using Limits = group::GroupSettings;
  constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
  // Timers take microseconds; keep every millisecond setting far from overflowing them.
  constexpr int64_t kMsMax = kInt64Max / 1'000'000;
  // Checked in order, so that the first bad field is the one reported.
  const std::function<absl::Status()> checks[] = {
      [&] {
        return GroupField<int32_t>(
            groups.has_offsets_topic_num_partitions(), groups.offsets_topic_num_partitions(), 1,
            Limits::kOffsetsTopicNumPartitionsMax, "groups.offsets_topic_num_partitions",
            "offsets.topic.num.partitions", &out.offsets_topic_num_partitions, settings,
            error_field);
      },
      [&] {
        return GroupField<int64_t>(groups.has_group_initial_rebalance_delay_ms(),
                                   groups.group_initial_rebalance_delay_ms(), 0, kMsMax,
                                   "groups.group_initial_rebalance_delay_ms",
                                   "group.initial.rebalance.delay.ms",
                                   &out.group_initial_rebalance_delay_ms, settings, error_field);
      },
      [&] {
        return GroupField<int64_t>(
            groups.has_group_min_session_timeout_ms(), groups.group_min_session_timeout_ms(), 1,
            kMsMax, "groups.group_min_session_timeout_ms", "group.min.session.timeout.ms",
            &out.group_min_session_timeout_ms, settings, error_field);
      },
      [&] {
        return GroupField<int64_t>(
            groups.has_group_max_session_timeout_ms(), groups.group_max_session_timeout_ms(), 1,
            kMsMax, "groups.group_max_session_timeout_ms", "group.max.session.timeout.ms",
            &out.group_max_session_timeout_ms, settings, error_field);
      },
      [&] {
        return GroupField<int32_t>(groups.has_group_max_size(), groups.group_max_size(), 1,
                                   Limits::kGroupMaxSizeLimit, "groups.group_max_size",
                                   "group.max.size", &out.group_max_size, settings, error_field);
      },
      [&] {
        return GroupField<int64_t>(groups.has_offsets_retention_minutes(),
                                   groups.offsets_retention_minutes(), 1, kMsMax / 60'000,
                                   "groups.offsets_retention_minutes", "offsets.retention.minutes",
                                   &out.offsets_retention_minutes, settings, error_field);
      },
      [&] {
        return GroupField<int32_t>(
            groups.has_offset_metadata_max_bytes(), groups.offset_metadata_max_bytes(), 0,
            Limits::kOffsetMetadataMaxBytesLimit, "groups.offset_metadata_max_bytes",
            "offset.metadata.max.bytes", &out.offset_metadata_max_bytes, settings, error_field);
      },
  };
  for (const std::function<absl::Status()>& check : checks) {
    if (absl::Status status = check(); !status.ok()) return status;
  }
  if (out.group_min_session_timeout_ms > out.group_max_session_timeout_ms) {
    return FieldError(
        error_field,
        groups.has_group_max_session_timeout_ms() ? "groups.group_max_session_timeout_ms"
                                                  : "groups.group_min_session_timeout_ms",
        absl::StrCat("group_min_session_timeout_ms (", out.group_min_session_timeout_ms,
                     ") must not exceed group_max_session_timeout_ms (",
                     out.group_max_session_timeout_ms, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view BrokerSynonymOf(absl::string_view topic_config) {
  for (const auto& [name, synonym] : kBrokerSynonyms) {
    if (name == topic_config) return synonym;
  }
  return {};
}

absl::StatusOr<BrokerSettings> ResolveBrokerConfig(const BrokerConfig& config,
                                                   std::string* error_field) {
  BrokerSettings settings;
  if (!config.has_listen()) return FieldError(error_field, "listen", "is required");
  absl::StatusOr<NetworkAddress> listen = NetworkAddress::Parse(config.listen());
  if (!listen.ok()) return FieldError(error_field, "listen", listen.status().message());
  settings.listen = *std::move(listen);
  if (config.has_advertised_listener()) {
    absl::StatusOr<NetworkAddress> advertised = NetworkAddress::Parse(config.advertised_listener());
    if (!advertised.ok()) {
      return FieldError(error_field, "advertised_listener", advertised.status().message());
    }
    if (advertised->host.empty() || advertised->port == 0) {
      return FieldError(error_field, "advertised_listener", "needs a host and a non-zero port");
    }
    settings.advertised = *std::move(advertised);
  }
  if (config.has_cluster_id()) {
    if (config.cluster_id().empty()) return FieldError(error_field, "cluster_id", "is empty");
    settings.cluster_id = config.cluster_id();
  }

  BrokerDefaults& defaults = settings.defaults;
  if (config.has_auto_create_topics_enable()) {
    defaults.auto_create_topics_enable = config.auto_create_topics_enable();
    settings.static_configs.insert("auto.create.topics.enable");
  }
  if (config.has_num_partitions()) {
    if (config.num_partitions() < 1 || config.num_partitions() > kPartitionsPerTopicMax) {
      return FieldError(error_field, "num_partitions",
                        absl::StrCat("must be between 1 and ", kPartitionsPerTopicMax, ", not ",
                                     config.num_partitions()));
    }
    defaults.num_partitions = config.num_partitions();
    settings.static_configs.insert("num.partitions");
  }
  if (config.has_default_replication_factor()) {
    if (config.default_replication_factor() != 1) {
      return FieldError(error_field, "default_replication_factor",
                        "a single node holds one replica: only 1 is accepted");
    }
    settings.static_configs.insert("default.replication.factor");
  }

  // Each set LogDefaults field is the broker default of the topic config of the same name.
  TopicConfigOverrides log_overrides;
  std::map<std::string, std::string> field_of_config;
  const Reflection& reflection = *config.log().GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(config.log(), &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string name = absl::StrReplaceAll(field->name(), {{"_", "."}});
    const std::string path = absl::StrCat("log.", field->name());
    if (!IsSupportedTopicConfig(name)) {
      return FieldError(error_field, path, absl::StrCat("no topic config '", name, "'"));
    }
    log_overrides[name] = FieldText(config.log(), reflection, *field);
    field_of_config[name] = path;
    settings.static_configs.insert(std::string(BrokerSynonymOf(name)));
  }
  // Checked one at a time so the error names the field; then all together (flush conflicts).
  for (const auto& [name, value] : log_overrides) {
    absl::Status valid = ResolveLogConfig(storage::LogConfig{}, {{name, value}}).status();
    if (!valid.ok()) return FieldError(error_field, field_of_config[name], valid.message());
  }
  absl::StatusOr<storage::LogConfig> log = ResolveLogConfig(storage::LogConfig{}, log_overrides);
  if (!log.ok()) return FieldError(error_field, "log", log.status().message());
  defaults.log = *std::move(log);
  if (absl::Status valid = ValidateBrokerDefaults(defaults); !valid.ok()) {
    return FieldError(error_field, "log", valid.message());
  }

  const Limits& limits = config.limits();
  KafkaServerLimits& out = settings.limits;
  struct LimitField {
    bool has;
    int64_t value;
    size_t* target;
    absl::string_view name;
  };
  const LimitField limit_fields[] = {
      {limits.has_connections_max(), limits.connections_max(), &out.connections_max,
       "limits.connections_max"},
      {limits.has_requests_in_progress_per_connection_max(),
       limits.requests_in_progress_per_connection_max(),
       &out.requests_in_progress_per_connection_max,
       "limits.requests_in_progress_per_connection_max"},
      {limits.has_response_bytes_held_per_connection_max(),
       limits.response_bytes_held_per_connection_max(),
       &out.response_bytes_held_per_connection_max,
       "limits.response_bytes_held_per_connection_max"},
      {limits.has_send_backlog_pause_bytes(), limits.send_backlog_pause_bytes(),
       &out.send_backlog_pause_bytes, "limits.send_backlog_pause_bytes"},
      {limits.has_parked_fetches_max(), limits.parked_fetches_max(), &out.parked_fetches_max,
       "limits.parked_fetches_max"},
  };
  for (const LimitField& field : limit_fields) {
    absl::StatusOr<size_t> value =
        PositiveLimit(field.has, field.value, *field.target, field.name, error_field);
    if (!value.ok()) return value.status();
    *field.target = *value;
  }
  if (out.send_backlog_pause_bytes > kSendBacklogBytesMax / 2) {
    return FieldError(error_field, "limits.send_backlog_pause_bytes",
                      absl::StrCat("must be at most ", kSendBacklogBytesMax / 2,
                                   " (half the network's send backlog bound)"));
  }
  if (absl::Status groups = ResolveGroups(config.groups(), settings, error_field); !groups.ok()) {
    return groups;
  }
  return settings;
}

absl::StatusOr<ParsedBrokerConfig> ParseBrokerConfigText(absl::string_view text,
                                                         absl::string_view file_name) {
  ParsedBrokerConfig parsed;
  google::protobuf::TextFormat::Parser parser;
  CollectingErrors errors(file_name);
  google::protobuf::TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(std::string(text), &parsed.config)) {
    return absl::InvalidArgumentError(
        errors.first().empty() ? absl::StrCat(file_name, ": does not parse") : errors.first());
  }
  CollectFieldLines(parsed.config, tree, "", &parsed.field_lines);
  return parsed;
}

}  // namespace runnel::server
