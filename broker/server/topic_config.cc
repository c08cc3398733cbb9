#include "broker/server/topic_config.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace runnel::server {
namespace {

// ---------------------------------------------------------------------------------------------
// Error kinds travel as a status payload under this type URL, one byte holding the enum value.

constexpr absl::string_view kTopicRequestErrorUrl = "type.runnel.dev/runnel.TopicRequestError";

absl::Status InvalidConfig(absl::string_view message) {
  return TopicRequestErrorStatus(TopicRequestError::kInvalidConfig, message);
}

// ---------------------------------------------------------------------------------------------
// The table of supported configs.

enum class Key {
  kCleanupPolicy,
  kDeleteRetentionMs,
  kFlushMessages,
  kFlushMs,
  kFlushPolicy,
  kIndexIntervalBytes,
  kMaxMessageBytes,
  kMessageTimestampType,
  kMinCleanableDirtyRatio,
  kRetentionBytes,
  kRetentionMs,
  kSegmentBytes,
  kSegmentMs,
  kWriteBufferBytes,
};

enum class Kind {
  kInteger,  // decimal int64 in [min, max]
  kRatio,    // a real number in [0, 1]
  kChoice,   // one of Choices(key)
  kList,     // a comma-separated, non-empty set of Choices(key)
};

struct Spec {
  absl::string_view name;
  Key key;
  Kind kind;
  int64_t min = 0;
  int64_t max = 0;
};

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// Sorted by name: SupportedTopicConfigNames() and DescribeTopicConfig() return this order.
constexpr std::array<Spec, 14> kSpecs = {{
    {"cleanup.policy", Key::kCleanupPolicy, Kind::kList},
    {"delete.retention.ms", Key::kDeleteRetentionMs, Kind::kInteger, 0, kInt64Max},
    {"flush.messages", Key::kFlushMessages, Kind::kInteger, 1, kInt64Max},
    {"flush.ms", Key::kFlushMs, Kind::kInteger, 1, kTimerMsMax},
    {"flush.policy", Key::kFlushPolicy, Kind::kChoice},
    {"index.interval.bytes", Key::kIndexIntervalBytes, Kind::kInteger, 0, kInt32Max},
    {"max.message.bytes", Key::kMaxMessageBytes, Kind::kInteger,
     static_cast<int64_t>(storage::kBatchHeaderBytes), static_cast<int64_t>(storage::kBatchBytesMax)},
    {"message.timestamp.type", Key::kMessageTimestampType, Kind::kChoice},
    {"min.cleanable.dirty.ratio", Key::kMinCleanableDirtyRatio, Kind::kRatio},
    {"retention.bytes", Key::kRetentionBytes, Kind::kInteger, -1, kInt64Max},
    {"retention.ms", Key::kRetentionMs, Kind::kInteger, -1, kInt64Max},
    {"segment.bytes", Key::kSegmentBytes, Kind::kInteger,
     static_cast<int64_t>(storage::kBatchHeaderBytes), kInt32Max},
    {"segment.ms", Key::kSegmentMs, Kind::kInteger, 1, kTimerMsMax},
    {"write.buffer.bytes", Key::kWriteBufferBytes, Kind::kInteger, 0,
     static_cast<int64_t>(storage::kWriteBufferBytesMax)},
}};

constexpr std::array<absl::string_view, kSpecs.size()> kNames = [] {
  std::array<absl::string_view, kSpecs.size()> names{};
  for (size_t i = 0; i < kSpecs.size(); ++i) names[i] = kSpecs[i].name;
  return names;
}();

const Spec* FindSpec(absl::string_view name) {
  auto it = std::lower_bound(kSpecs.begin(), kSpecs.end(), name,
                             [](const Spec& spec, absl::string_view n) { return spec.name < n; });
  return it != kSpecs.end() && it->name == name ? &*it : nullptr;
}

absl::Span<const absl::string_view> Choices(Key key) {
  static constexpr absl::string_view kCleanup[] = {"compact", "delete"};
  static constexpr absl::string_view kFlush[] = {"always", "interval", "never"};
  static constexpr absl::string_view kTimestamp[] = {"CreateTime", "LogAppendTime"};
  switch (key) {
    case Key::kCleanupPolicy:
      return kCleanup;
    case Key::kFlushPolicy:
      return kFlush;
    case Key::kMessageTimestampType:
      return kTimestamp;
    default:
      return {};
  }
}

absl::Status BadValue(const Spec& spec, absl::string_view value, absl::string_view why) {
  return InvalidConfig(
      absl::StrCat("invalid value '", value, "' for topic config ", spec.name, ": ", why));
}

// The shortest text that reads back as exactly `value` ("0.5", "1", "0.25").
std::string FormatRatio(double value) {
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  assert(result.ec == std::errc());
  return std::string(buffer, result.ptr);
}

// The items of a list value, trimmed; each must be a choice. Returns them sorted and unique.
absl::StatusOr<std::set<std::string>> ParseListItems(const Spec& spec, absl::string_view value) {
  std::set<std::string> items;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    item = absl::StripAsciiWhitespace(item);
    const absl::Span<const absl::string_view> choices = Choices(spec.key);
    if (std::find(choices.begin(), choices.end(), item) == choices.end()) {
      return BadValue(spec, value,
                      absl::StrCat("'", item, "' is not one of ", absl::StrJoin(choices, ", ")));
    }
    items.emplace(item);
  }
  return items;
}

// Checks `value` against the spec and returns its canonical text.
absl::StatusOr<std::string> Canonical(const Spec& spec, absl::string_view value) {
  if (value.size() > kConfigValueBytesMax) {
    return BadValue(spec, value.substr(0, 32),
                    absl::StrCat("longer than ", kConfigValueBytesMax, " bytes"));
  }
  const absl::string_view trimmed = absl::StripAsciiWhitespace(value);
  switch (spec.kind) {
    case Kind::kInteger: {
      int64_t number = 0;
      if (trimmed.empty() || !absl::SimpleAtoi(trimmed, &number)) {
        return BadValue(spec, value, "not a 64-bit integer");
      }
      if (number < spec.min || number > spec.max) {
        return BadValue(spec, value, absl::StrCat("must be between ", spec.min, " and ", spec.max));
      }
      if (spec.key == Key::kFlushMessages && number != 1 && number != kFlushMessagesNever) {
        return BadValue(spec, value,
                        absl::StrCat("Runnel supports only 1 (sync every append, the same as "
                                     "flush.policy=always) or ",
                                     kFlushMessagesNever,
                                     " (no count-based flush); use flush.policy and flush.ms"));
      }
      return absl::StrCat(number);
    }
    case Kind::kRatio: {
      double number = 0;
      if (trimmed.empty() || !absl::SimpleAtod(trimmed, &number) || !std::isfinite(number)) {
        return BadValue(spec, value, "not a number");
      }
      if (number < 0.0 || number > 1.0) return BadValue(spec, value, "must be between 0 and 1");
      return FormatRatio(number);
    }
    case Kind::kChoice: {
      const absl::Span<const absl::string_view> choices = Choices(spec.key);
      if (std::find(choices.begin(), choices.end(), trimmed) == choices.end()) {
        return BadValue(spec, value, absl::StrCat("must be one of ", absl::StrJoin(choices, ", ")));
      }
      return std::string(trimmed);
    }
    case Kind::kList: {
      absl::StatusOr<std::set<std::string>> items = ParseListItems(spec, value);
      if (!items.ok()) return items.status();
      return absl::StrJoin(*items, ",");
    }
  }
  return BadValue(spec, value, "unsupported");
}

// Sets the field of `config` that `spec` names from a canonical value.
void Apply(const Spec& spec, absl::string_view canonical, storage::LogConfig& config) {
  int64_t number = 0;
  double ratio = 0;
  if (spec.kind == Kind::kInteger) {
    const bool parsed = absl::SimpleAtoi(canonical, &number);
    assert(parsed);
    static_cast<void>(parsed);
  }
  switch (spec.key) {
    case Key::kCleanupPolicy:
      config.cleanup_policy = canonical == "compact"   ? storage::CleanupPolicy::kCompact
                              : canonical == "delete" ? storage::CleanupPolicy::kDelete
                                                      : storage::CleanupPolicy::kCompactAndDelete;
      break;
    case Key::kDeleteRetentionMs:
      config.delete_retention_ms = number;
      break;
    case Key::kFlushMessages:
      // kFlushMessagesNever has no effect: flush.policy and the defaults decide.
      if (number == 1) config.flush_policy = storage::FlushPolicy::kAlways;
      break;
    case Key::kFlushMs:
      config.flush_interval_ms = number;
      break;
    case Key::kFlushPolicy:
      config.flush_policy = canonical == "always"     ? storage::FlushPolicy::kAlways
                            : canonical == "interval" ? storage::FlushPolicy::kInterval
                                                      : storage::FlushPolicy::kNever;
      break;
    case Key::kIndexIntervalBytes:
      config.index_interval_bytes = static_cast<uint32_t>(number);
      break;
    case Key::kMaxMessageBytes:
      config.max_message_bytes = static_cast<uint32_t>(number);
      break;
    case Key::kMessageTimestampType:
      config.message_timestamp_type = canonical == "LogAppendTime"
                                          ? storage::TimestampType::kLogAppendTime
                                          : storage::TimestampType::kCreateTime;
      break;
    case Key::kMinCleanableDirtyRatio: {
      const bool parsed = absl::SimpleAtod(canonical, &ratio);
      assert(parsed);
      static_cast<void>(parsed);
      config.min_cleanable_dirty_ratio = ratio;
      break;
    }
    case Key::kRetentionBytes:
      config.retention_bytes = number;
      break;
    case Key::kRetentionMs:
      config.retention_ms = number;
      break;
    case Key::kSegmentBytes:
      config.segment_bytes = static_cast<uint64_t>(number);
      break;
    case Key::kSegmentMs:
      config.segment_ms = number;
      break;
    case Key::kWriteBufferBytes:
      config.write_buffer_bytes = static_cast<uint32_t>(number);
      break;
  }
}

// The value of the field `spec` names, as text (not necessarily in range: see CheckRanges).
std::string Describe(const Spec& spec, const storage::LogConfig& config) {
  switch (spec.key) {
    case Key::kCleanupPolicy:
      switch (config.cleanup_policy) {
        case storage::CleanupPolicy::kDelete:
          return "delete";
        case storage::CleanupPolicy::kCompact:
          return "compact";
        case storage::CleanupPolicy::kCompactAndDelete:
          return "compact,delete";
      }
      break;
    case Key::kDeleteRetentionMs:
      return absl::StrCat(config.delete_retention_ms);
    case Key::kFlushMessages:
      return config.flush_policy == storage::FlushPolicy::kAlways
                 ? "1"
                 : absl::StrCat(kFlushMessagesNever);
    case Key::kFlushMs:
      return absl::StrCat(config.flush_interval_ms);
    case Key::kFlushPolicy:
      switch (config.flush_policy) {
        case storage::FlushPolicy::kAlways:
          return "always";
        case storage::FlushPolicy::kInterval:
          return "interval";
        case storage::FlushPolicy::kNever:
          return "never";
      }
      break;
    case Key::kIndexIntervalBytes:
      return absl::StrCat(config.index_interval_bytes);
    case Key::kMaxMessageBytes:
      return absl::StrCat(config.max_message_bytes);
    case Key::kMessageTimestampType:
      return config.message_timestamp_type == storage::TimestampType::kLogAppendTime
                 ? "LogAppendTime"
                 : "CreateTime";
    case Key::kMinCleanableDirtyRatio:
      return FormatRatio(config.min_cleanable_dirty_ratio);
    case Key::kRetentionBytes:
      return absl::StrCat(config.retention_bytes);
    case Key::kRetentionMs:
      return absl::StrCat(config.retention_ms);
    case Key::kSegmentBytes:
      return absl::StrCat(config.segment_bytes);
    case Key::kSegmentMs:
      return absl::StrCat(config.segment_ms);
    case Key::kWriteBufferBytes:
      return absl::StrCat(config.write_buffer_bytes);
  }
  return "";
}

// Checks that every field of `config` lies in the range its topic config accepts, so that a
// default can always be described and set back as an override.
absl::Status CheckRanges(const storage::LogConfig& config, absl::string_view what) {
  for (const Spec& spec : kSpecs) {
    absl::StatusOr<std::string> canonical = Canonical(spec, Describe(spec, config));
    if (!canonical.ok()) {
      return TopicRequestErrorStatus(TopicRequestError::kInvalidConfig,
                                     absl::StrCat(what, ": ", canonical.status().message()));
    }
  }
  if (absl::Status valid = storage::ValidateLogConfig(config); !valid.ok()) {
    return InvalidConfig(absl::StrCat(what, ": ", valid.message()));
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Names.

absl::Status ValidateTopicName(absl::string_view name) {
  auto invalid = [](absl::string_view message) {
    return TopicRequestErrorStatus(TopicRequestError::kInvalidTopicName, message);
  };
  if (name.empty()) return invalid("topic name is empty");
  if (name.size() > kTopicNameLengthMax) {
    return invalid(absl::StrCat("topic name '", name.substr(0, 40), "...' is ", name.size(),
                                " characters long; the limit is ", kTopicNameLengthMax));
  }
  if (name == "." || name == "..") {
    return invalid(absl::StrCat("topic name '", name, "' is not allowed"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return invalid(absl::StrCat("topic name '", absl::CHexEscape(name),
                                  "' has an illegal character '", absl::CHexEscape({&c, 1}),
                                  "'; only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
  }
  return absl::OkStatus();
}

bool TopicNamesCollide(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] == '.' ? '_' : a[i];
    const char y = b[i] == '.' ? '_' : b[i];
    if (x != y) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Error kinds.

absl::Status TopicRequestErrorStatus(TopicRequestError kind, absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kTopicRequestErrorUrl,
                    absl::Cord(std::string(1, static_cast<char>(static_cast<int>(kind)))));
  return status;
}

TopicRequestError GetTopicRequestError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) return TopicRequestError::kNone;
  const absl::optional<absl::Cord> payload = status.GetPayload(kTopicRequestErrorUrl);
  if (!payload.has_value() || payload->size() != 1) return TopicRequestError::kNone;
  const int value = static_cast<int>((*payload)[0]);
  if (value < 0 || value > static_cast<int>(TopicRequestError::kInvalidConfig)) {
    return TopicRequestError::kNone;
  }
  return static_cast<TopicRequestError>(value);
}

// ---------------------------------------------------------------------------------------------
// Configs.

absl::Status ValidateBrokerDefaults(const BrokerDefaults& defaults) {
  if (defaults.num_partitions < 1 || defaults.num_partitions > kPartitionsPerTopicMax) {
    return TopicRequestErrorStatus(
        TopicRequestError::kInvalidPartitions,
        absl::StrCat("broker default num.partitions = ", defaults.num_partitions,
                     " must be between 1 and ", kPartitionsPerTopicMax));
  }
  if (defaults.default_replication_factor < 1) {
    return TopicRequestErrorStatus(TopicRequestError::kInvalidReplicationFactor,
                                   absl::StrCat("broker default default.replication.factor = ",
                                                defaults.default_replication_factor,
                                                " must be at least 1"));
  }
  return CheckRanges(defaults.log, "broker default");
}

absl::Span<const absl::string_view> SupportedTopicConfigNames() { return kNames; }

bool IsSupportedTopicConfig(absl::string_view name) { return FindSpec(name) != nullptr; }

absl::StatusOr<TopicConfigOverrides> CanonicalTopicConfigOverrides(
    const TopicConfigOverrides& overrides) {
  TopicConfigOverrides canonical;
  for (const auto& [name, value] : overrides) {
    const Spec* spec = FindSpec(name);
    if (spec == nullptr) {
      return InvalidConfig(absl::StrCat("unknown topic config '", absl::CHexEscape(name),
                                        "'; supported: ",
                                        absl::StrJoin(SupportedTopicConfigNames(), ", ")));
    }
    absl::StatusOr<std::string> text = Canonical(*spec, value);
    if (!text.ok()) return text.status();
    canonical.emplace(name, *std::move(text));
  }
  auto messages = canonical.find("flush.messages");
  auto policy = canonical.find("flush.policy");
  if (messages != canonical.end() && messages->second == "1" && policy != canonical.end() &&
      policy->second != "always") {
    return InvalidConfig(absl::StrCat("topic config flush.messages=1 (sync every append) conflicts "
                                      "with flush.policy=",
                                      policy->second));
  }
  return canonical;
}

absl::StatusOr<storage::LogConfig> ResolveLogConfig(const storage::LogConfig& defaults,
                                                    const TopicConfigOverrides& overrides) {
  absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(overrides);
  if (!canonical.ok()) return canonical.status();
  storage::LogConfig config = defaults;
  // flush.messages sorts before flush.policy, so an explicit flush.policy (which can only agree,
  // as checked above) is applied last.
  for (const auto& [name, value] : *canonical) Apply(*FindSpec(name), value, config);
  if (absl::Status valid = storage::ValidateLogConfig(config); !valid.ok()) {
    return InvalidConfig(absl::StrCat("topic config: ", valid.message()));
  }
  return config;
}

absl::StatusOr<std::vector<ConfigDescription>> DescribeTopicConfig(
    const storage::LogConfig& defaults, const TopicConfigOverrides& overrides) {
  absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(overrides);
  if (!canonical.ok()) return canonical.status();
  std::vector<ConfigDescription> descriptions;
  descriptions.reserve(kSpecs.size());
  absl::StatusOr<storage::LogConfig> effective = ResolveLogConfig(defaults, *canonical);
  if (!effective.ok()) return effective.status();
  for (const Spec& spec : kSpecs) {
    ConfigDescription description;
    description.name = std::string(spec.name);
    auto it = canonical->find(description.name);
    if (it != canonical->end()) {
      description.value = it->second;
      description.source = ConfigSource::kTopicOverride;
      description.is_default = false;
    } else {
      // The effective value, which differs from the broker default only for the derived
      // flush.messages (a flush.policy override changes it).
      description.value = Describe(spec, *effective);
    }
    descriptions.push_back(std::move(description));
  }
  return descriptions;
}

absl::StatusOr<TopicConfigOverrides> ApplyConfigChanges(const storage::LogConfig& defaults,
                                                        const TopicConfigOverrides& current,
                                                        absl::Span<const ConfigChange> changes) {
  TopicConfigOverrides result = current;
  for (const ConfigChange& change : changes) {
    const Spec* spec = FindSpec(change.name);
    if (spec == nullptr) {
      return InvalidConfig(absl::StrCat("unknown topic config '", absl::CHexEscape(change.name),
                                        "'; supported: ",
                                        absl::StrJoin(SupportedTopicConfigNames(), ", ")));
    }
    switch (change.op) {
      case ConfigOp::kSet:
        result[change.name] = change.value;
        break;
      case ConfigOp::kDelete:
        result.erase(change.name);
        break;
      case ConfigOp::kAppend:
      case ConfigOp::kSubtract: {
        if (spec->kind != Kind::kList) {
          return InvalidConfig(absl::StrCat("topic config ", spec->name,
                                            " is not a list: APPEND and SUBTRACT do not apply"));
        }
        auto it = result.find(change.name);
        const std::string base = it != result.end() ? it->second : Describe(*spec, defaults);
        absl::StatusOr<std::set<std::string>> items = ParseListItems(*spec, base);
        if (!items.ok()) return items.status();
        absl::StatusOr<std::set<std::string>> operand = ParseListItems(*spec, change.value);
        if (!operand.ok()) return operand.status();
        for (const std::string& item : *operand) {
          if (change.op == ConfigOp::kAppend) {
            items->insert(item);
          } else {
            items->erase(item);
          }
        }
        if (items->empty()) {
          return InvalidConfig(absl::StrCat("topic config ", spec->name, " would become empty after ",
                                            "removing '", change.value, "'"));
        }
        result[change.name] = absl::StrJoin(*items, ",");
        break;
      }
      default:
        return InvalidConfig(absl::StrCat("unknown config operation ",
                                          static_cast<int>(change.op), " for ", spec->name));
    }
  }
  absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(result);
  if (!canonical.ok()) return canonical.status();
  if (absl::StatusOr<storage::LogConfig> resolved = ResolveLogConfig(defaults, *canonical);
      !resolved.ok()) {
    return resolved.status();
  }
  return canonical;
}

}  // namespace runnel::server
