// CreateTopics (api key 19), versions 0-4.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_CREATE_TOPICS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_CREATE_TOPICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct CreateTopicsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kCreateTopics;
  static constexpr absl::string_view kName = "CreateTopicsRequest";

  struct Assignment {
    int32_t partition_index = 0;
    std::vector<int32_t> broker_ids;
    friend bool operator==(const Assignment&, const Assignment&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
      v.Array("broker_ids", m.broker_ids);
    }
  };

  struct Config {
    std::string name;
    std::optional<std::string> value;
    friend bool operator==(const Config&, const Config&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.NullableString("value", m.value);
    }
  };

  struct Topic {
    std::string name;
    // -1 (from v4) for the broker's default, as is -1 for replication_factor; both are -1 when
    // assignments are given.
    int32_t num_partitions = 0;
    int16_t replication_factor = 0;
    std::vector<Assignment> assignments;
    std::vector<Config> configs;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Int32("num_partitions", m.num_partitions);
      v.Int16("replication_factor", m.replication_factor);
      v.Array("assignments", m.assignments);
      v.Array("configs", m.configs);
    }
  };

  std::vector<Topic> topics;
  int32_t timeout_ms = 60000;
  bool validate_only = false;

  friend bool operator==(const CreateTopicsRequest&, const CreateTopicsRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.Array("topics", m.topics);
    v.Int32("timeout_ms", m.timeout_ms);
    v.Bool("validate_only", m.validate_only, Since(1));
  }
};

struct CreateTopicsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kCreateTopics;
  static constexpr absl::string_view kName = "CreateTopicsResponse";

  struct Topic {
    std::string name;
    int16_t error_code = 0;
    std::optional<std::string> error_message;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Int16("error_code", m.error_code);
      v.NullableString("error_message", m.error_message, Since(1));
    }
  };

  int32_t throttle_time_ms = 0;
  std::vector<Topic> topics;

  friend bool operator==(const CreateTopicsResponse&, const CreateTopicsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(2));
    v.Array("topics", m.topics);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_CREATE_TOPICS_H_
