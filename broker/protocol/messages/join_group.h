// JoinGroup (api key 11), versions 0-5: join a consumer group and take part in its rebalance.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_JOIN_GROUP_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_JOIN_GROUP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct JoinGroupRequest {
  static constexpr ApiKey kApiKey = ApiKey::kJoinGroup;
  static constexpr absl::string_view kName = "JoinGroupRequest";

  struct Protocol {
    std::string name;
    std::string metadata;
    friend bool operator==(const Protocol&, const Protocol&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Bytes("metadata", m.metadata);
    }
  };

  std::string group_id;
  int32_t session_timeout_ms = 0;
  // -1 (v0, which has no such field): use session_timeout_ms, as Kafka does.
  int32_t rebalance_timeout_ms = -1;
  // Empty on a member's first join.
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string protocol_type;
  std::vector<Protocol> protocols;

  friend bool operator==(const JoinGroupRequest&, const JoinGroupRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("group_id", m.group_id);
    v.Int32("session_timeout_ms", m.session_timeout_ms);
    v.Int32("rebalance_timeout_ms", m.rebalance_timeout_ms, Since(1));
    v.String("member_id", m.member_id);
    v.NullableString("group_instance_id", m.group_instance_id, Since(5));
    v.String("protocol_type", m.protocol_type);
    v.Array("protocols", m.protocols);
  }
};

struct JoinGroupResponse {
  static constexpr ApiKey kApiKey = ApiKey::kJoinGroup;
  static constexpr absl::string_view kName = "JoinGroupResponse";

  struct Member {
    std::string member_id;
    std::optional<std::string> group_instance_id;
    std::string metadata;
    friend bool operator==(const Member&, const Member&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("member_id", m.member_id);
      v.NullableString("group_instance_id", m.group_instance_id, Since(5));
      v.Bytes("metadata", m.metadata);
    }
  };

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  int32_t generation_id = -1;
  std::string protocol_name;
  std::string leader;
  std::string member_id;
  // Filled only in the leader's response.
  std::vector<Member> members;

  friend bool operator==(const JoinGroupResponse&, const JoinGroupResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(2));
    v.Int16("error_code", m.error_code);
    v.Int32("generation_id", m.generation_id);
    v.String("protocol_name", m.protocol_name);
    v.String("leader", m.leader);
    v.String("member_id", m.member_id);
    v.Array("members", m.members);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_JOIN_GROUP_H_
