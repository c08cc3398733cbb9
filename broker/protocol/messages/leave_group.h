// LeaveGroup (api key 13), versions 0-3: members leave a group. Up to v2 one member leaves by its
// member_id; from v3 a batch of members (static members by group_instance_id, KIP-345).
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_LEAVE_GROUP_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_LEAVE_GROUP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct LeaveGroupRequest {
  static constexpr ApiKey kApiKey = ApiKey::kLeaveGroup;
  static constexpr absl::string_view kName = "LeaveGroupRequest";

  struct Member {
    std::string member_id;
    std::optional<std::string> group_instance_id;
    friend bool operator==(const Member&, const Member&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("member_id", m.member_id);
      v.NullableString("group_instance_id", m.group_instance_id);
    }
  };

  std::string group_id;
  std::string member_id;  // v0-2
  std::vector<Member> members;  // v3+

  friend bool operator==(const LeaveGroupRequest&, const LeaveGroupRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("group_id", m.group_id);
    v.String("member_id", m.member_id, Between(0, 2));
    v.Array("members", m.members, Since(3));
  }
};

struct LeaveGroupResponse {
  static constexpr ApiKey kApiKey = ApiKey::kLeaveGroup;
  static constexpr absl::string_view kName = "LeaveGroupResponse";

  struct Member {
    std::string member_id;
    std::optional<std::string> group_instance_id;
    int16_t error_code = 0;
    friend bool operator==(const Member&, const Member&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("member_id", m.member_id);
      v.NullableString("group_instance_id", m.group_instance_id);
      v.Int16("error_code", m.error_code);
    }
  };

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  std::vector<Member> members;  // v3+

  friend bool operator==(const LeaveGroupResponse&, const LeaveGroupResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Int16("error_code", m.error_code);
    v.Array("members", m.members, Since(3));
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_LEAVE_GROUP_H_
