// Produce (api key 0), versions 3-8: append record batches to partitions.
//
// Versions 3 and up carry RecordBatch v2 (magic 2) data, the only format Runnel stores.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_PRODUCE_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_PRODUCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct ProduceRequest {
  static constexpr ApiKey kApiKey = ApiKey::kProduce;
  static constexpr absl::string_view kName = "ProduceRequest";

  struct Partition {
    int32_t index = 0;
    // One or more record batches exactly as the client sent them, unparsed and unvalidated
    // (broker/storage/record_batch.h splits and validates them).
    std::optional<std::string> records;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("index", m.index);
      v.Records("records", m.records);
    }
  };

  struct Topic {
    std::string name;
    std::vector<Partition> partition_data;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Array("partition_data", m.partition_data);
    }
  };

  std::optional<std::string> transactional_id;
  // 0: no response at all; 1: the leader appended; -1: every in-sync replica has the records.
  int16_t acks = 0;
  int32_t timeout_ms = 0;
  std::vector<Topic> topic_data;

  friend bool operator==(const ProduceRequest&, const ProduceRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.NullableString("transactional_id", m.transactional_id, Since(3));
    v.Int16("acks", m.acks);
    v.Int32("timeout_ms", m.timeout_ms);
    v.Array("topic_data", m.topic_data);
  }
};

struct ProduceResponse {
  static constexpr ApiKey kApiKey = ApiKey::kProduce;
  static constexpr absl::string_view kName = "ProduceResponse";

  struct RecordError {
    int32_t batch_index = 0;
    std::optional<std::string> batch_index_error_message;
    friend bool operator==(const RecordError&, const RecordError&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("batch_index", m.batch_index);
      v.NullableString("batch_index_error_message", m.batch_index_error_message);
    }
  };

  struct Partition {
    int32_t index = 0;
    int16_t error_code = 0;
    int64_t base_offset = 0;
    // -1 unless the topic stamps LogAppendTime.
    int64_t log_append_time_ms = -1;
    int64_t log_start_offset = -1;
    std::vector<RecordError> record_errors;
    std::optional<std::string> error_message;
    friend bool operator==(const Partition&, const Partition&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int32("index", m.index);
      v.Int16("error_code", m.error_code);
      v.Int64("base_offset", m.base_offset);
      v.Int64("log_append_time_ms", m.log_append_time_ms, Since(2));
      v.Int64("log_start_offset", m.log_start_offset, Since(5));
      v.Array("record_errors", m.record_errors, Since(8));
      v.NullableString("error_message", m.error_message, Since(8));
    }
  };

  struct Topic {
    std::string name;
    std::vector<Partition> partition_responses;
    friend bool operator==(const Topic&, const Topic&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.Array("partition_responses", m.partition_responses);
    }
  };

  std::vector<Topic> responses;
  int32_t throttle_time_ms = 0;

  friend bool operator==(const ProduceResponse&, const ProduceResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Array("responses", m.responses);
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_PRODUCE_H_
