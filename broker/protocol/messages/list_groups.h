// ListGroups (api key 16), versions 0-2: the groups a broker coordinates.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_LIST_GROUPS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_LIST_GROUPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

// Versions 0-2 have no request fields.
struct ListGroupsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kListGroups;
  static constexpr absl::string_view kName = "ListGroupsRequest";

  friend bool operator==(const ListGroupsRequest&, const ListGroupsRequest&) = default;
  static void Fields(auto&, auto&) {}
};

struct ListGroupsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kListGroups;
  static constexpr absl::string_view kName = "ListGroupsResponse";

  struct Group {
    std::string group_id;
    std::string protocol_type;
    friend bool operator==(const Group&, const Group&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("group_id", m.group_id);
      v.String("protocol_type", m.protocol_type);
    }
  };

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  std::vector<Group> groups;

  friend bool operator==(const ListGroupsResponse&, const ListGroupsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Int16("error_code", m.error_code);
    v.Array("groups", m.groups);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_LIST_GROUPS_H_
