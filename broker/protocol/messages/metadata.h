// Metadata (api key 3), versions 0-8: brokers, topics, partitions and their leaders.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_METADATA_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_METADATA_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

// Kafka's "authorized operations not requested" marker (INT32_MIN).
inline constexpr int32_t kAuthorizedOperationsOmitted = std::numeric_limits<int32_t>::min();

struct MetadataRequest {
  static constexpr ApiKey kApiKey = ApiKey::kMetadata;
  static constexpr absl::string_view kName = "MetadataRequest";

  struct Topic {
    std::string name;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) { v.String("name", m.name); }
  };

  // Which topics to describe. From v1, null means all topics and an empty list none; v0 has no
  // null, and there an empty list means all topics. AllTopics() says which applies.
  std::optional<std::vector<Topic>> topics;
  // Whether the broker may create the requested topics that do not exist (true before v4).
  bool allow_auto_topic_creation = true;
  bool include_cluster_authorized_operations = false;
  bool include_topic_authorized_operations = false;

  bool AllTopics(int16_t version) const {
    return !topics.has_value() || (version == 0 && topics->empty());
  }

  friend bool operator==(const MetadataRequest&, const MetadataRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.NullableArray("topics", m.topics, kAllVersions, /*nullable=*/Since(1));
    v.Bool("allow_auto_topic_creation", m.allow_auto_topic_creation, Since(4));
    v.Bool("include_cluster_authorized_operations", m.include_cluster_authorized_operations,
           Between(8, 10));
    v.Bool("include_topic_authorized_operations", m.include_topic_authorized_operations, Since(8));
  }
};

struct MetadataResponse {
  static constexpr ApiKey kApiKey = ApiKey::kMetadata;
  static constexpr absl::string_view kName = "MetadataResponse";

  struct Broker {
    int32_t node_id = 0;
    std::string host;
    int32_t port = 0;
    std::optional<std::string> rack;
    friend bool operator==(const Broker&, const Broker&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("node_id", m.node_id);
      v.String("host", m.host);
      v.Int32("port", m.port);
      v.NullableString("rack", m.rack, Since(1));
    }
  };

  struct Partition {
    int16_t error_code = 0;
    int32_t partition_index = 0;
    int32_t leader_id = 0;
    int32_t leader_epoch = -1;
    std::vector<int32_t> replica_nodes;
    std::vector<int32_t> isr_nodes;
    std::vector<int32_t> offline_replicas;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int16("error_code", m.error_code);
      v.Int32("partition_index", m.partition_index);
      v.Int32("leader_id", m.leader_id);
      v.Int32("leader_epoch", m.leader_epoch, Since(7));
      v.Array("replica_nodes", m.replica_nodes);
      v.Array("isr_nodes", m.isr_nodes);
      v.Array("offline_replicas", m.offline_replicas, Since(5));
    }
  };

  struct Topic {
    int16_t error_code = 0;
    std::string name;
    bool is_internal = false;
    std::vector<Partition> partitions;
    int32_t topic_authorized_operations = kAuthorizedOperationsOmitted;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int16("error_code", m.error_code);
      v.String("name", m.name);
      v.Bool("is_internal", m.is_internal, Since(1));
      v.Array("partitions", m.partitions);
      v.Int32("topic_authorized_operations", m.topic_authorized_operations, Since(8));
    }
  };

  int32_t throttle_time_ms = 0;
  std::vector<Broker> brokers;
  std::optional<std::string> cluster_id;
  int32_t controller_id = -1;
  std::vector<Topic> topics;
  int32_t cluster_authorized_operations = kAuthorizedOperationsOmitted;

  friend bool operator==(const MetadataResponse&, const MetadataResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(3));
    v.Array("brokers", m.brokers);
    v.NullableString("cluster_id", m.cluster_id, Since(2));
    v.Int32("controller_id", m.controller_id, Since(1));
    v.Array("topics", m.topics);
    v.Int32("cluster_authorized_operations", m.cluster_authorized_operations, Between(8, 10));
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_METADATA_H_
