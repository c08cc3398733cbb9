// Fetch (api key 1), versions 4-11: read record batches from partitions.
//
// Version 4 is the first that returns RecordBatch v2 data and last stable offsets; 7 adds fetch
// sessions (KIP-227), 11 the rack of the consumer for follower fetching (KIP-392).
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_FETCH_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_FETCH_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct FetchRequest {
  static constexpr ApiKey kApiKey = ApiKey::kFetch;
  static constexpr absl::string_view kName = "FetchRequest";

  struct Partition {
    int32_t partition = 0;
    int32_t current_leader_epoch = -1;
    int64_t fetch_offset = 0;
    // Only followers send it; consumers send -1.
    int64_t log_start_offset = -1;
    int32_t partition_max_bytes = 0;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition", m.partition);
      v.Int32("current_leader_epoch", m.current_leader_epoch, Since(9));
      v.Int64("fetch_offset", m.fetch_offset);
      v.Int64("log_start_offset", m.log_start_offset, Since(5));
      v.Int32("partition_max_bytes", m.partition_max_bytes);
    }
  };

  struct Topic {
    std::string topic;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("topic", m.topic);
      v.Array("partitions", m.partitions);
    }
  };

  struct ForgottenTopic {
    std::string topic;
    std::vector<int32_t> partitions;
    friend bool operator==(const ForgottenTopic&, const ForgottenTopic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("topic", m.topic);
      v.Array("partitions", m.partitions);
    }
  };

  // -1 for a consumer; a follower's broker id otherwise.
  int32_t replica_id = -1;
  int32_t max_wait_ms = 0;
  int32_t min_bytes = 0;
  int32_t max_bytes = std::numeric_limits<int32_t>::max();
  // 0: read uncommitted; 1: read committed (stop at the last stable offset).
  int8_t isolation_level = 0;
  int32_t session_id = 0;
  int32_t session_epoch = -1;
  std::vector<Topic> topics;
  std::vector<ForgottenTopic> forgotten_topics_data;
  std::string rack_id;

  friend bool operator==(const FetchRequest&, const FetchRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("replica_id", m.replica_id);
    v.Int32("max_wait_ms", m.max_wait_ms);
    v.Int32("min_bytes", m.min_bytes);
    v.Int32("max_bytes", m.max_bytes, Since(3));
    v.Int8("isolation_level", m.isolation_level, Since(4));
    v.Int32("session_id", m.session_id, Since(7));
    v.Int32("session_epoch", m.session_epoch, Since(7));
    v.Array("topics", m.topics);
    v.Array("forgotten_topics_data", m.forgotten_topics_data, Since(7));
    v.String("rack_id", m.rack_id, Since(11));
  }
};

struct FetchResponse {
  static constexpr ApiKey kApiKey = ApiKey::kFetch;
  static constexpr absl::string_view kName = "FetchResponse";

  struct AbortedTransaction {
    int64_t producer_id = 0;
    int64_t first_offset = 0;
    friend bool operator==(const AbortedTransaction&, const AbortedTransaction&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int64("producer_id", m.producer_id);
      v.Int64("first_offset", m.first_offset);
    }
  };

  struct Partition {
    int32_t partition_index = 0;
    int16_t error_code = 0;
    int64_t high_watermark = 0;
    int64_t last_stable_offset = -1;
    int64_t log_start_offset = -1;
    // Null when the fetch was not read-committed (Kafka sends null, not empty, then).
    std::optional<std::vector<AbortedTransaction>> aborted_transactions;
    int32_t preferred_read_replica = -1;
    // Whole record batches from the log, possibly ending in a partial batch that the client
    // drops (Kafka cuts at partition_max_bytes the same way).
    std::optional<std::string> records;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("partition_index", m.partition_index);
      v.Int16("error_code", m.error_code);
      v.Int64("high_watermark", m.high_watermark);
      v.Int64("last_stable_offset", m.last_stable_offset, Since(4));
      v.Int64("log_start_offset", m.log_start_offset, Since(5));
      v.NullableArray("aborted_transactions", m.aborted_transactions, Since(4));
      v.Int32("preferred_read_replica", m.preferred_read_replica, Since(11));
      v.Records("records", m.records);
    }
  };

  struct Topic {
    std::string topic;
    std::vector<Partition> partitions;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("topic", m.topic);
      v.Array("partitions", m.partitions);
    }
  };

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  int32_t session_id = 0;
  std::vector<Topic> responses;

  friend bool operator==(const FetchResponse&, const FetchResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
    v.Int16("error_code", m.error_code, Since(7));
    v.Int32("session_id", m.session_id, Since(7));
    v.Array("responses", m.responses);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_FETCH_H_
