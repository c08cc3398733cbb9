// DescribeGroups (api key 15), versions 0-4: the state and members of groups.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_DESCRIBE_GROUPS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_DESCRIBE_GROUPS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/messages/metadata.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct DescribeGroupsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kDescribeGroups;
  static constexpr absl::string_view kName = "DescribeGroupsRequest";

  std::vector<std::string> groups;
  bool include_authorized_operations = false;

  friend bool operator==(const DescribeGroupsRequest&, const DescribeGroupsRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.Array("groups", m.groups);
    v.Bool("include_authorized_operations", m.include_authorized_operations, Since(3));
  }
};

struct DescribeGroupsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kDescribeGroups;
  static constexpr absl::string_view kName = "DescribeGroupsResponse";

  struct Member {
    std::string member_id;
    std::optional<std::string> group_instance_id;
    std::string client_id;
    std::string client_host;
    std::string member_metadata;
    std::string member_assignment;
    friend bool operator==(const Member&, const Member&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("member_id", m.member_id);
      v.NullableString("group_instance_id", m.group_instance_id, Since(4));
      v.String("client_id", m.client_id);
      v.String("client_host", m.client_host);
      v.Bytes("member_metadata", m.member_metadata);
      v.Bytes("member_assignment", m.member_assignment);
    }
  };

  struct Group {
    int16_t error_code = 0;
    std::string group_id;
    std::string group_state;
    std::string protocol_type;
    std::string protocol_data;
    std::vector<Member> members;
    int32_t authorized_operations = kAuthorizedOperationsOmitted;
    friend bool operator==(const Group&, const Group&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int16("error_code", m.error_code);
      v.String("group_id", m.group_id);
      v.String("group_state", m.group_state);
      v.String("protocol_type", m.protocol_type);
      v.String("protocol_data", m.protocol_data);
      v.Array("members", m.members);
      v.Int32("authorized_operations", m.authorized_operations, Since(3));
    }
  };

  int32_t throttle_time_ms = 0;
  std::vector<Group> groups;

  friend bool operator==(const DescribeGroupsResponse&, const DescribeGroupsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Array("groups", m.groups);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_DESCRIBE_GROUPS_H_
