// DescribeConfigs (api key 32), versions 0-3: a topic's or broker's configuration.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_DESCRIBE_CONFIGS_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_DESCRIBE_CONFIGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

// Kafka's resource types as DescribeConfigs uses them.
inline constexpr int8_t kConfigResourceTopic = 2;
inline constexpr int8_t kConfigResourceBroker = 4;

struct DescribeConfigsRequest {
  static constexpr ApiKey kApiKey = ApiKey::kDescribeConfigs;
  static constexpr absl::string_view kName = "DescribeConfigsRequest";

  struct Resource {
    int8_t resource_type = 0;
    std::string resource_name;
    // Null for every key.
    std::optional<std::vector<std::string>> configuration_keys;
    friend bool operator==(const Resource&, const Resource&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int8("resource_type", m.resource_type);
      v.String("resource_name", m.resource_name);
      v.NullableArray("configuration_keys", m.configuration_keys);
    }
  };

  std::vector<Resource> resources;
  bool include_synonyms = false;
  bool include_documentation = false;

  friend bool operator==(const DescribeConfigsRequest&, const DescribeConfigsRequest&) = default;
  static void Fields(auto& m, auto& v) {
    v.Array("resources", m.resources);
    v.Bool("include_synonyms", m.include_synonyms, Since(1));
    v.Bool("include_documentation", m.include_documentation, Since(3));
  }
};

struct DescribeConfigsResponse {
  static constexpr ApiKey kApiKey = ApiKey::kDescribeConfigs;
  static constexpr absl::string_view kName = "DescribeConfigsResponse";

  struct Synonym {
    std::string name;
    std::optional<std::string> value;
    int8_t source = 0;
    friend bool operator==(const Synonym&, const Synonym&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.NullableString("value", m.value);
      v.Int8("source", m.source);
    }
  };

  struct Config {
    std::string name;
    std::optional<std::string> value;
    bool read_only = false;
    // v0 only; later versions say where the value came from in config_source instead.
    bool is_default = false;
    int8_t config_source = -1;
    bool is_sensitive = false;
    std::vector<Synonym> synonyms;
    int8_t config_type = 0;
    std::optional<std::string> documentation;
    friend bool operator==(const Config&, const Config&) = default;
    static void Fields(auto& m, auto& v) {
      v.String("name", m.name);
      v.NullableString("value", m.value);
      v.Bool("read_only", m.read_only);
      v.Bool("is_default", m.is_default, Only(0));
      v.Int8("config_source", m.config_source, Since(1));
      v.Bool("is_sensitive", m.is_sensitive);
      v.Array("synonyms", m.synonyms, Since(1));
      v.Int8("config_type", m.config_type, Since(3));
      v.NullableString("documentation", m.documentation, Since(3));
    }
  };

  struct Result {
    int16_t error_code = 0;
    std::optional<std::string> error_message;
    int8_t resource_type = 0;
    std::string resource_name;
    std::vector<Config> configs;
    friend bool operator==(const Result&, const Result&) = default;
    static void Fields(auto& m, auto& v) {
      v.Int16("error_code", m.error_code);
      v.NullableString("error_message", m.error_message);
      v.Int8("resource_type", m.resource_type);
      v.String("resource_name", m.resource_name);
      v.Array("configs", m.configs);
    }
  };

  int32_t throttle_time_ms = 0;
  std::vector<Result> results;

  friend bool operator==(const DescribeConfigsResponse&, const DescribeConfigsResponse&) = default;
  static void Fields(auto& m, auto& v) {
    v.Int32("throttle_time_ms", m.throttle_time_ms);
    v.Array("results", m.results);
  }
};

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_DESCRIBE_CONFIGS_H_
