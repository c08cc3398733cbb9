// DeleteTopics (api key 20), versions 0-3.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_DELETE_TOPICS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_DELETE_TOPICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct DeleteTopicsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kDeleteTopics;
  static constexpr absl::string_view kName = "DeleteTopicsRequest";

  std::vector<std::string> topic_names;
  int32_t timeout_ms = 0;

  friend bool operator==(const DeleteTopicsRequest&, const DeleteTopicsRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.Array("topic_names", m.topic_names);
    v.Int32("timeout_ms", m.timeout_ms);
  }
};

struct DeleteTopicsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kDeleteTopics;
  static constexpr absl::string_view kName = "DeleteTopicsResponse";

  struct Result {
    std::string name;
    int16_t error_code = 0;
    friend bool operator==(const Result&, const Result&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Int16("error_code", m.error_code);
    }
  };

  int32_t throttle_time_ms = 0;
  std::vector<Result> responses;

  friend bool operator==(const DeleteTopicsResponse&, const DeleteTopicsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Array("responses", m.responses);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_DELETE_TOPICS_H_
