// SyncGroup (api key 14), versions 0-3: the leader hands out assignments; every member gets its
// own.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_SYNC_GROUP_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_SYNC_GROUP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct SyncGroupRequest {
  static constexpr ApiKey kApiKey = ApiKey::kSyncGroup;
  static constexpr absl::string_view kName = "SyncGroupRequest";

  struct Assignment {
    std::string member_id;
    std::string assignment;
    friend bool operator==(const Assignment&, const Assignment&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("member_id", m.member_id);
      v.Bytes("assignment", m.assignment);
    }
  };

  std::string group_id;
  int32_t generation_id = 0;
  std::string member_id;
  std::optional<std::string> group_instance_id;
  // Sent by the leader only; empty from the other members.
  std::vector<Assignment> assignments;

  friend bool operator==(const SyncGroupRequest&, const SyncGroupRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("group_id", m.group_id);
    v.Int32("generation_id", m.generation_id);
    v.String("member_id", m.member_id);
    v.NullableString("group_instance_id", m.group_instance_id, Since(3));
    v.Array("assignments", m.assignments);
  }
};

struct SyncGroupResponse {
  static constexpr ApiKey kApiKey = ApiKey::kSyncGroup;
  static constexpr absl::string_view kName = "SyncGroupResponse";

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  std::string assignment;

  friend bool operator==(const SyncGroupResponse&, const SyncGroupResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Int16("error_code", m.error_code);
    v.Bytes("assignment", m.assignment);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_SYNC_GROUP_H_
