// A broker's resolved settings: what broker_config.proto (the file and flags of runnel-broker, or a
// test) says, checked and turned into the values the topic manager and the Kafka server use.
#ifndef RUNNEL_BROKER_SERVER_BROKER_SETTINGS_H_
#define RUNNEL_BROKER_SERVER_BROKER_SETTINGS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/network.h"
#include "broker/group/group_settings.h"
#include "broker/server/broker_config.pb.h"
#include "broker/server/topic_config.h"

namespace runnel::server {

inline constexpr char kDefaultClusterId[] = "runnel";

// The Kafka server's bounds. Each protects the node from one kind of overload; what happens at the
// bound is said per field.
struct KafkaServerLimits {
  // Open client connections. A connection beyond it is closed as soon as it is accepted.
  static constexpr size_t kConnectionsMaxDefault = 4096;
  // Requests of one connection read but not yet answered (including acks=0 produces being
  // handled). At the bound the server stops reading the connection (Kafka "mutes" it) until a
  // response goes out; the client's requests wait in its socket.
  static constexpr size_t kRequestsInProgressPerConnectionMaxDefault = 1024;
  // Bytes of responses that are complete but held back, because an earlier response of the same
  // connection is not ready or the connection's send backlog is full. At the bound the server
  // stops reading the connection, as above.
  static constexpr size_t kResponseBytesHeldPerConnectionMaxDefault = size_t{64} << 20;
  // Send backlog (Network::SendBacklogBytes) of a connection at which the server stops sending
  // further responses and stops reading its requests, until the backlog drains below it (checked
  // every kSendBacklogCheckIntervalUs). It stays well below kSendBacklogBytesMax, so that a
  // response never fails to be queued.
  static constexpr size_t kSendBacklogPauseBytesDefault = size_t{8} << 20;
  // Fetches waiting for data (long poll). A fetch that would exceed it is answered at once with
  // whatever is there.
  static constexpr size_t kParkedFetchesMaxDefault = 4096;

  size_t connections_max = kConnectionsMaxDefault;
  size_t requests_in_progress_per_connection_max = kRequestsInProgressPerConnectionMaxDefault;
  size_t response_bytes_held_per_connection_max = kResponseBytesHeldPerConnectionMaxDefault;
  size_t send_backlog_pause_bytes = kSendBacklogPauseBytesDefault;
  size_t parked_fetches_max = kParkedFetchesMaxDefault;
};

struct BrokerSettings {
  NetworkAddress listen;
  // What Metadata advertises; unset: the listen host with the port actually bound.
  std::optional<NetworkAddress> advertised;
  std::string cluster_id = kDefaultClusterId;
  BrokerDefaults defaults;
  KafkaServerLimits limits;
  group::GroupSettings groups;
  // Kafka broker config names ("num.partitions", "log.retention.ms", ...) whose value was set by
  // the configuration rather than left at the built-in default. DescribeConfigs reports them as
  // STATIC_BROKER_CONFIG, the others as DEFAULT_CONFIG.
  std::set<std::string> static_configs;
};

// Checks `config` and resolves it. Only the fields the node itself uses are read (node_id,
// data_dir and log_level belong to the process; runnel-broker reads them). kInvalidArgument's
// message starts with the field path ("log.flush_policy: ..."); `error_field`, when given, receives
// that path alone.
absl::StatusOr<BrokerSettings> ResolveBrokerConfig(const BrokerConfig& config,
                                                   std::string* error_field = nullptr);

// A config file's contents parsed as Protobuf text format, and the 1-based line of every field set
// in it, by field path ("listen", "log.flush_policy").
struct ParsedBrokerConfig {
  BrokerConfig config;
  std::map<std::string, int> field_lines;
};
// kInvalidArgument "<file_name>:<line>:<column>: <parser's message>" for a file that does not
// parse (unknown field, bad value, syntax).
absl::StatusOr<ParsedBrokerConfig> ParseBrokerConfigText(absl::string_view text,
                                                         absl::string_view file_name);

// Kafka's broker config name for the broker default of a topic config ("retention.ms" ->
// "log.retention.ms"; Runnel's flush.policy -> "log.flush.policy"); empty for an unknown name.
absl::string_view BrokerSynonymOf(absl::string_view topic_config);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_BROKER_SETTINGS_H_
