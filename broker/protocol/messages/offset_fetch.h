// OffsetFetch (api key 9), versions 0-5: a group's committed positions.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_OFFSET_FETCH_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_OFFSET_FETCH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct OffsetFetchRequest {
  static constexpr ApiKey kApiKey = ApiKey::kOffsetFetch;
  static constexpr absl::string_view kName = "OffsetFetchRequest";

  struct Topic {
    std::string name;
    std::vector<int32_t> partition_indexes;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Array("partition_indexes", m.partition_indexes);
    }
  };

  std::string group_id;
  // Null (from v2) for every topic the group has committed offsets for.
  std::optional<std::vector<Topic>> topics;

  friend bool operator==(const OffsetFetchRequest&, const OffsetFetchRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("group_id", m.group_id);
    v.NullableArray("topics", m.topics, kAllVersions, /*nullable=*/Since(2));
  }
};

struct OffsetFetchResponse {
  static constexpr ApiKey kApiKey = ApiKey::kOffsetFetch;
  static constexpr absl::string_view kName = "OffsetFetchResponse";

  struct Partition {
    int32_t partition_index = 0;
    // -1 when the group has no committed offset for the partition.
    int64_t committed_offset = -1;
    int32_t committed_leader_epoch = -1;
    std::optional<std::string> metadata;
    int16_t error_code = 0;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
      v.Int64("committed_offset", m.committed_offset);
      v.Int32("committed_leader_epoch", m.committed_leader_epoch, Since(5));
      v.NullableString("metadata", m.metadata);
      v.Int16("error_code", m.error_code);
    }
  };

  struct Topic {
    std::string name;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Array("partitions", m.partitions);
    }
  };

  int32_t throttle_time_ms = 0;
  std::vector<Topic> topics;
  int16_t error_code = 0;

  friend bool operator==(const OffsetFetchResponse&, const OffsetFetchResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(3));
    v.Array("topics", m.topics);
    v.Int16("error_code", m.error_code, Since(2));
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_OFFSET_FETCH_H_
