// OffsetCommit (api key 8), versions 0-7: a group's committed consumer positions.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_OFFSET_COMMIT_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_OFFSET_COMMIT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct OffsetCommitRequest {
  static constexpr ApiKey kApiKey = ApiKey::kOffsetCommit;
  static constexpr absl::string_view kName = "OffsetCommitRequest";

  struct Partition {
    int32_t partition_index = 0;
    int64_t committed_offset = 0;
    int32_t committed_leader_epoch = -1;
    // v1 only.
    int64_t commit_timestamp = -1;
    std::optional<std::string> committed_metadata;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
      v.Int64("committed_offset", m.committed_offset);
      v.Int32("committed_leader_epoch", m.committed_leader_epoch, Since(6));
      v.Int64("commit_timestamp", m.commit_timestamp, Only(1));
      v.NullableString("committed_metadata", m.committed_metadata);
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

  std::string group_id;
  // -1 and empty (v0, or a commit from outside the group's generation): a simple commit.
  int32_t generation_id = -1;
  std::string member_id;
  std::optional<std::string> group_instance_id;
  // v2-4 only; -1 for the broker's default retention.
  int64_t retention_time_ms = -1;
  std::vector<Topic> topics;

  friend bool operator==(const OffsetCommitRequest&, const OffsetCommitRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.String("group_id", m.group_id);
    v.Int32("generation_id", m.generation_id, Since(1));
    v.String("member_id", m.member_id, Since(1));
    v.NullableString("group_instance_id", m.group_instance_id, Since(7));
    v.Int64("retention_time_ms", m.retention_time_ms, Between(2, 4));
    v.Array("topics", m.topics);
  }
};

struct OffsetCommitResponse {
  static constexpr ApiKey kApiKey = ApiKey::kOffsetCommit;
  static constexpr absl::string_view kName = "OffsetCommitResponse";

  struct Partition {
    int32_t partition_index = 0;
    int16_t error_code = 0;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
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

  friend bool operator==(const OffsetCommitResponse&, const OffsetCommitResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(3));
    v.Array("topics", m.topics);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_OFFSET_COMMIT_H_
