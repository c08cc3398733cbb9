// InitProducerId (api key 22), versions 0-1: a producer id and epoch for an idempotent producer.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_INIT_PRODUCER_ID_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_INIT_PRODUCER_ID_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

struct InitProducerIdRequest {
  static constexpr ApiKey kApiKey = ApiKey::kInitProducerId;
  static constexpr absl::string_view kName = "InitProducerIdRequest";

  // Null for an idempotent producer without transactions.
  std::optional<std::string> transactional_id;
  int32_t transaction_timeout_ms = 0;

  friend bool operator==(const InitProducerIdRequest&, const InitProducerIdRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.NullableString("transactional_id", m.transactional_id);
    v.Int32("transaction_timeout_ms", m.transaction_timeout_ms);
  }
};

struct InitProducerIdResponse {
  static constexpr ApiKey kApiKey = ApiKey::kInitProducerId;
  static constexpr absl::string_view kName = "InitProducerIdResponse";

  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = 0;

  friend bool operator==(const InitProducerIdResponse&, const InitProducerIdResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms);
    v.Int16("error_code", m.error_code);
    v.Int64("producer_id", m.producer_id);
    v.Int16("producer_epoch", m.producer_epoch);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_INIT_PRODUCER_ID_H_
