// FindCoordinator (api key 10), versions 0-2: the broker that coordinates a group (or, with key
// type 1 from v1, a transactional id).
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_FIND_COORDINATOR_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_FIND_COORDINATOR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

inline constexpr int8_t kCoordinatorKeyGroup = 0;
inline constexpr int8_t kCoordinatorKeyTransaction = 1;

struct FindCoordinatorRequest {
  static constexpr ApiKey kApiKey = ApiKey::kFindCoordinator;
  static constexpr absl::string_view kName = "FindCoordinatorRequest";

  std::string key;
  int8_t key_type = kCoordinatorKeyGroup;

  friend bool operator==(const FindCoordinatorRequest&, const FindCoordinatorRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("key", m.key);
    v.Int8("key_type", m.key_type, Since(1));
  }
};

struct FindCoordinatorResponse {
  static constexpr ApiKey kApiKey = ApiKey::kFindCoordinator;
  static constexpr absl::string_view kName = "FindCoordinatorResponse";

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  std::optional<std::string> error_message;
  int32_t node_id = 0;
  std::string host;
  int32_t port = 0;

  friend bool operator==(const FindCoordinatorResponse&, const FindCoordinatorResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Int16("error_code", m.error_code);
    v.NullableString("error_message", m.error_message, Since(1));
    v.Int32("node_id", m.node_id);
    v.String("host", m.host);
    v.Int32("port", m.port);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_FIND_COORDINATOR_H_
