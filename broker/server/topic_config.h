// Topic names, topic shape limits and topic configs: the Kafka names a client uses
// (CreateTopics, DescribeConfigs, IncrementalAlterConfigs) mapped onto storage::LogConfig.
//
// A topic's effective configuration is the broker's defaults (BrokerDefaults::log) with the topic's
// overrides applied. Overrides are kept as canonical text, name -> value, in an ordered map: that
// is what the metadata image holds and what the node persists, so two equal configurations are
// always spelled alike (numbers without leading zeros or '+', cleanup.policy's items sorted).
//
// Supported topic configs (every other name is rejected), with the range each accepts:
//   cleanup.policy             "delete", "compact", or both in either order ("compact,delete");
//                              items are comma-separated, surrounding spaces are ignored
//   delete.retention.ms        0 .. 2^63-1
//   flush.messages             1 (sync every append: the same as flush.policy=always) or
//                              9223372036854775807 (Kafka's "no count-based flush", which has no
//                              effect here: flush.policy decides)
//   flush.ms                   1 .. kTimerMsMax; the interval of flush.policy=interval
//   flush.policy               Runnel's extension: "always" | "interval" | "never" (see below)
//   index.interval.bytes       0 .. 2^31-1
//   max.message.bytes          storage::kBatchHeaderBytes .. storage::kBatchBytesMax
//   message.timestamp.type     "CreateTime" | "LogAppendTime" (case-sensitive, as in Kafka)
//   min.cleanable.dirty.ratio  0 .. 1
//   retention.bytes            -1 (no limit) .. 2^63-1
//   retention.ms               -1 (keep forever) .. 2^63-1
//   segment.bytes              storage::kBatchHeaderBytes .. 2^31-1
//   segment.ms                 1 .. kTimerMsMax
//
// flush.policy: Kafka has no such config; it relies on replication for durability and flushes by
// flush.messages / flush.ms, both off by default. Runnel acknowledges a write only once it is on
// disk, so it names the policy directly: "always" syncs before acknowledging (appends waiting at
// the same time share one sync), "interval" syncs every flush.ms, "never" leaves syncing to
// explicit flushes and clean shutdown. flush.messages=1 is accepted as Kafka's spelling of
// "always"; setting it together with a flush.policy other than "always" is a conflict (rejected).
// flush.ms alone never changes the policy: it only sets the interval "interval" uses.
//
// Errors: every validation failure is kInvalidArgument whose message names the config (or the
// topic name, or the partition count) and the bad value, and which carries a TopicRequestError
// (below) so that the server can pick the Kafka error code (INVALID_TOPIC_EXCEPTION,
// INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_CONFIG) in one place without reading
// messages.
#ifndef RUNNEL_BROKER_SERVER_TOPIC_CONFIG_H_
#define RUNNEL_BROKER_SERVER_TOPIC_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "broker/storage/partition_log.h"

namespace runnel::server {

// ---------------------------------------------------------------------------------------------
// Topic names and shape limits.

// Kafka's limit: a partition directory "<topic>-<partition>" must fit a 255-byte file name.
inline constexpr size_t kTopicNameLengthMax = 249;
// The most partitions one topic may have. Each open partition holds file handles; the bound keeps
// one CreateTopics request from exhausting them.
inline constexpr int32_t kPartitionsPerTopicMax = 1000;
// The most partitions (of all topics together) the metadata image holds.
inline constexpr int64_t kPartitionsTotalMax = 10000;
// The most topics the metadata image holds (each has at least one partition).
inline constexpr int64_t kTopicsMax = kPartitionsTotalMax;

// Checks a topic name as Kafka does: 1 to kTopicNameLengthMax characters of [a-zA-Z0-9._-], and
// not "." or "..". kInvalidArgument (kInvalidTopicName) says what is wrong with which name.
absl::Status ValidateTopicName(absl::string_view name);

// Kafka's collision rule: '.' and '_' become the same character in metric names, so two different
// topics may not differ only by them ("a.b" and "a_b" collide). True for equal names too.
bool TopicNamesCollide(absl::string_view a, absl::string_view b);

// ---------------------------------------------------------------------------------------------
// Error kinds of topic requests.

// Which Kafka error a kInvalidArgument from this library stands for.
enum class TopicRequestError {
  kNone,                      // not a topic request error (or not kInvalidArgument)
  kInvalidTopicName,          // INVALID_TOPIC_EXCEPTION: bad name, or a '.'/'_' collision
  kInvalidPartitions,         // INVALID_PARTITIONS
  kInvalidReplicationFactor,  // INVALID_REPLICATION_FACTOR
  kInvalidConfig,             // INVALID_CONFIG: unknown config name, bad value, conflict
};

// kInvalidArgument with `message` and `kind` attached as a payload.
absl::Status TopicRequestErrorStatus(TopicRequestError kind, absl::string_view message);
// The kind attached by TopicRequestErrorStatus, or kNone.
TopicRequestError GetTopicRequestError(const absl::Status& status);

// ---------------------------------------------------------------------------------------------
// Topic configs.

// The longest config value text accepted (the longest valid one, "compact,delete" with spaces, is
// far shorter; this only bounds what is parsed and persisted).
inline constexpr size_t kConfigValueBytesMax = 256;
// The largest duration in milliseconds that the storage layer may turn into microseconds for a
// timer without overflowing int64 (segment.ms, flush.ms).
inline constexpr int64_t kTimerMsMax = std::numeric_limits<int64_t>::max() / 1000;
// Kafka's "never" for flush.messages (Long.MAX_VALUE).
inline constexpr int64_t kFlushMessagesNever = std::numeric_limits<int64_t>::max();

// A topic's config overrides: config name -> canonical value text, ordered by name.
using TopicConfigOverrides = std::map<std::string, std::string>;

// Broker-level settings that topics inherit unless they override them.
struct BrokerDefaults {
  // num.partitions: the partition count of a topic created without one (CreateTopics with -1, or
  // auto-creation).
  int32_t num_partitions = 1;
  // default.replication.factor: a single node has one replica of everything.
  int16_t default_replication_factor = 1;
  // auto.create.topics.enable: whether a Metadata or Produce request for an unknown topic creates it.
  bool auto_create_topics_enable = true;
  // log.*: the configuration of every topic that does not override it.
  storage::LogConfig log;
};

// Checks the defaults: num.partitions in 1..kPartitionsPerTopicMax, a positive replication factor,
// and a LogConfig that every topic config accepts (the ranges above). kInvalidArgument names the
// setting.
absl::Status ValidateBrokerDefaults(const BrokerDefaults& defaults);

// Every supported topic config name, sorted.
absl::Span<const absl::string_view> SupportedTopicConfigNames();
bool IsSupportedTopicConfig(absl::string_view name);

// Checks each override (known name, value in range, no flush conflict) and returns them in
// canonical form. kInvalidArgument (kInvalidConfig) names the config and the bad value.
absl::StatusOr<TopicConfigOverrides> CanonicalTopicConfigOverrides(
    const TopicConfigOverrides& overrides);

// The effective LogConfig of a topic: `defaults` with `overrides` applied. Validates as
// CanonicalTopicConfigOverrides does.
absl::StatusOr<storage::LogConfig> ResolveLogConfig(const storage::LogConfig& defaults,
                                                    const TopicConfigOverrides& overrides);

// Where a described value comes from (Kafka's DescribeConfigs config_source: DYNAMIC_TOPIC_CONFIG
// for kTopicOverride, and STATIC_BROKER_CONFIG or DEFAULT_CONFIG for kBrokerDefault).
enum class ConfigSource { kTopicOverride, kBrokerDefault };

struct ConfigDescription {
  std::string name;
  std::string value;  // canonical text
  ConfigSource source = ConfigSource::kBrokerDefault;
  bool is_default = true;  // source == kBrokerDefault
  // Whether IncrementalAlterConfigs may change it. Every supported topic config is alterable: the
  // partition log applies changes at once (UpdateConfig).
  bool read_only = false;
  bool sensitive = false;  // no topic config is a secret
};

// Every supported config of a topic with its effective value, sorted by name (DescribeConfigs).
// An overridden config shows the override's text; others show the broker default's. The overrides
// must be valid (kInvalidArgument otherwise).
absl::StatusOr<std::vector<ConfigDescription>> DescribeTopicConfig(
    const storage::LogConfig& defaults, const TopicConfigOverrides& overrides);

// One change of IncrementalAlterConfigs; the values match Kafka's AlterConfigOp types.
enum class ConfigOp : int8_t { kSet = 0, kDelete = 1, kAppend = 2, kSubtract = 3 };

struct ConfigChange {
  std::string name;
  ConfigOp op = ConfigOp::kSet;
  std::string value;  // ignored for kDelete
};

// The overrides after applying `changes` in order to `current`, canonical and validated. kSet sets
// the override, kDelete removes it (a no-op when not set), kAppend / kSubtract add or remove items
// of a list config (cleanup.policy only) starting from its effective value (the override, or the
// default when none). Unknown names and list operations on non-list configs are kInvalidConfig.
absl::StatusOr<TopicConfigOverrides> ApplyConfigChanges(const storage::LogConfig& defaults,
                                                        const TopicConfigOverrides& current,
                                                        absl::Span<const ConfigChange> changes);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_TOPIC_CONFIG_H_
