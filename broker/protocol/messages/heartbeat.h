// Heartbeat (api key 12), versions 0-3: a group member is alive; the answer says whether a
// rebalance has begun.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_HEARTBEAT_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_HEARTBEAT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct HeartbeatRequest {
  static constexpr ApiKey kApiKey = ApiKey::kHeartbeat;
  static constexpr absl::string_view kName = "HeartbeatRequest";

  std::string group_id;
  int32_t generation_id = 0;
  std::string member_id;
  std::optional<std::string> group_instance_id;

  friend bool operator==(const HeartbeatRequest&, const HeartbeatRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("group_id", m.group_id);
    v.Int32("generation_id", m.generation_id);
    v.String("member_id", m.member_id);
    v.NullableString("group_instance_id", m.group_instance_id, Since(3));
  }
};

struct HeartbeatResponse {
  static constexpr ApiKey kApiKey = ApiKey::kHeartbeat;
  static constexpr absl::string_view kName = "HeartbeatResponse";

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;

  friend bool operator==(const HeartbeatResponse&, const HeartbeatResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Int16("error_code", m.error_code);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_HEARTBEAT_H_
