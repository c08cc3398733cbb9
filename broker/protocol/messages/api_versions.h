// ApiVersions (api key 18), versions 0-2: which APIs and versions the broker supports.
//
// librdkafka opens with v3, a flexible version; codec.h describes how that request is answered.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_API_VERSIONS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_API_VERSIONS_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

// Versions 0-2 have no request fields. (v3 adds the client's software name and version, which
// Runnel never parses.)
struct ApiVersionsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kApiVersions;
  static constexpr absl::string_view kName = "ApiVersionsRequest";

  friend bool operator==(const ApiVersionsRequest&, const ApiVersionsRequest&) = default;
  static void Fields(auto&, auto&) {}
};

struct ApiVersionsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kApiVersions;
  static constexpr absl::string_view kName = "ApiVersionsResponse";

  struct ApiVersion {
    int16_t api_key = 0;
    int16_t min_version = 0;
    int16_t max_version = 0;
    friend bool operator==(const ApiVersion&, const ApiVersion&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int16("api_key", m.api_key);
      v.Int16("min_version", m.min_version);
      v.Int16("max_version", m.max_version);
    }
  };

  int16_t error_code = 0;
  std::vector<ApiVersion> api_keys;
  int32_t throttle_time_ms = 0;

  friend bool operator==(const ApiVersionsResponse&, const ApiVersionsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int16("error_code", m.error_code);
    v.Array("api_keys", m.api_keys);
    v.Int32("throttle_time_ms", m.throttle_time_ms, Since(1));
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_API_VERSIONS_H_
