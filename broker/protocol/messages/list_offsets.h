// ListOffsets (api key 2), versions 0-5: the offset for a timestamp, or the log's start or end.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_LIST_OFFSETS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_LIST_OFFSETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

// The special timestamps of a ListOffsets partition.
inline constexpr int64_t kListOffsetsLatestTimestamp = -1;    // the log end offset
inline constexpr int64_t kListOffsetsEarliestTimestamp = -2;  // the log start offset

struct ListOffsetsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kListOffsets;
  static constexpr absl::string_view kName = "ListOffsetsRequest";

  struct Partition {
    int32_t partition_index = 0;
    int32_t current_leader_epoch = -1;
    // A record timestamp in ms, or kListOffsetsLatestTimestamp / kListOffsetsEarliestTimestamp.
    int64_t timestamp = 0;
    // v0 only: how many offsets to return at most (v0 answers with a list of offsets).
    int32_t max_num_offsets = 1;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
      v.Int32("current_leader_epoch", m.current_leader_epoch, Since(4));
      v.Int64("timestamp", m.timestamp);
      v.Int32("max_num_offsets", m.max_num_offsets, Only(0));
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

  int32_t replica_id = -1;
  int8_t isolation_level = 0;
  std::vector<Topic> topics;

  friend bool operator==(const ListOffsetsRequest&, const ListOffsetsRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("replica_id", m.replica_id);
    v.Int8("isolation_level", m.isolation_level, Since(2));
    v.Array("topics", m.topics);
  }
};

struct ListOffsetsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kListOffsets;
  static constexpr absl::string_view kName = "ListOffsetsResponse";

  struct Partition {
    int32_t partition_index = 0;
    int16_t error_code = 0;
    // v0 only: the offsets found, newest first.
    std::vector<int64_t> old_style_offsets;
    int64_t timestamp = -1;
    int64_t offset = -1;
    int32_t leader_epoch = -1;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
      v.Int16("error_code", m.error_code);
      v.Array("old_style_offsets", m.old_style_offsets, Only(0));
      v.Int64("timestamp", m.timestamp, Since(1));
      v.Int64("offset", m.offset, Since(1));
      v.Int32("leader_epoch", m.leader_epoch, Since(4));
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

  friend bool operator==(const ListOffsetsResponse&, const ListOffsetsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(2));
    v.Array("topics", m.topics);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_LIST_OFFSETS_H_
