// The Kafka APIs Runnel speaks and the version range of each: one table that the ApiVersions
// response advertises and the request decoder enforces, so the two can never disagree.
//
// Why these ranges (docs/protocol.md says more):
// - Every maximum is at or below the API's last non-flexible version (the version before
//   `first_flexible_version`), so no client ever sends a flexible (KIP-482) request, except the
//   opening ApiVersions v3 that librdkafka sends before it knows anything; the decoder answers
//   that one specially (codec.h).
// - The maxima are those of a Kafka 2.4-2.8 broker capped at the last non-flexible version.
//   kafka-python 2.0 does not negotiate: it infers a Kafka release from the advertised maxima
//   (Produce v8 and Fetch v11 read as Kafka 2.4) and then sends that release's fixed versions,
//   all of which fall inside these ranges.
// - Minima are 0 except Produce (3) and Fetch (4): Runnel stores only RecordBatch v2 (magic 2),
//   which those versions introduced; older versions carry message sets v0/v1.
#ifndef RUNNEL_BROKER_PROTOCOL_API_VERSIONS_H_
#define RUNNEL_BROKER_PROTOCOL_API_VERSIONS_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace runnel::protocol {

// Kafka's api keys for the APIs Runnel supports. The underlying type is the wire's int16, so a
// value read off the wire may also be a key that has no enumerator here.
enum class ApiKey : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kDescribeGroups = 15,
  kListGroups = 16,
  kApiVersions = 18,
  kCreateTopics = 19,
  kDeleteTopics = 20,
  kInitProducerId = 22,
  kDescribeConfigs = 32,
};

struct SupportedApi {
  ApiKey api_key;
  absl::string_view name;
  int16_t version_min;
  int16_t version_max;
  // Kafka's first flexible version of this API: every supported version must stay below it.
  int16_t first_flexible_version;
};

inline constexpr size_t kSupportedApiCount = 18;

// Sorted by api key, the order in which the ApiVersions response lists them.
inline constexpr std::array<SupportedApi, kSupportedApiCount> kSupportedApis = {{
    {ApiKey::kProduce, "Produce", 3, 8, 9},
    {ApiKey::kFetch, "Fetch", 4, 11, 12},
    {ApiKey::kListOffsets, "ListOffsets", 0, 5, 6},
    {ApiKey::kMetadata, "Metadata", 0, 8, 9},
    {ApiKey::kOffsetCommit, "OffsetCommit", 0, 7, 8},
    {ApiKey::kOffsetFetch, "OffsetFetch", 0, 5, 6},
    {ApiKey::kFindCoordinator, "FindCoordinator", 0, 2, 3},
    {ApiKey::kJoinGroup, "JoinGroup", 0, 5, 6},
    {ApiKey::kHeartbeat, "Heartbeat", 0, 3, 4},
    {ApiKey::kLeaveGroup, "LeaveGroup", 0, 3, 4},
    {ApiKey::kSyncGroup, "SyncGroup", 0, 3, 4},
    {ApiKey::kDescribeGroups, "DescribeGroups", 0, 4, 5},
    {ApiKey::kListGroups, "ListGroups", 0, 2, 3},
    {ApiKey::kApiVersions, "ApiVersions", 0, 2, 3},
    {ApiKey::kCreateTopics, "CreateTopics", 0, 4, 5},
    {ApiKey::kDeleteTopics, "DeleteTopics", 0, 3, 4},
    {ApiKey::kInitProducerId, "InitProducerId", 0, 1, 2},
    {ApiKey::kDescribeConfigs, "DescribeConfigs", 0, 3, 4},
}};

namespace api_versions_internal {
constexpr bool TableIsWellFormed() {
  for (size_t i = 0; i < kSupportedApis.size(); ++i) {
    const SupportedApi& api = kSupportedApis[i];
    if (api.version_min < 0 || api.version_min > api.version_max) return false;
    if (api.version_max >= api.first_flexible_version) return false;
    if (i > 0 && static_cast<int16_t>(kSupportedApis[i - 1].api_key) >=
                     static_cast<int16_t>(api.api_key)) {
      return false;
    }
  }
  return true;
}
}  // namespace api_versions_internal
static_assert(api_versions_internal::TableIsWellFormed(),
              "kSupportedApis: ranges must be non-empty, non-flexible, and keys strictly sorted");

// The table entry for a wire api key, or nullptr when Runnel does not support that key.
constexpr const SupportedApi* FindSupportedApi(int16_t api_key) {
  for (const SupportedApi& api : kSupportedApis) {
    if (static_cast<int16_t>(api.api_key) == api_key) return &api;
  }
  return nullptr;
}

constexpr bool IsVersionSupported(ApiKey api_key, int16_t version) {
  const SupportedApi* api = FindSupportedApi(static_cast<int16_t>(api_key));
  return api != nullptr && api->version_min <= version && version <= api->version_max;
}

// "Produce", "Fetch", ...; "Unknown" for a key outside the table.
constexpr absl::string_view ApiName(ApiKey api_key) {
  const SupportedApi* api = FindSupportedApi(static_cast<int16_t>(api_key));
  return api == nullptr ? absl::string_view("Unknown") : api->name;
}

// The request header version a request of this api and version carries: 2 (flexible, with tagged
// fields) for ApiVersions v3 and above, 1 (with a client id) for every other request Runnel may
// see. (Header v0, without a client id, is used only by ControlledShutdown v0, which Runnel does
// not support.)
constexpr int16_t RequestHeaderVersion(ApiKey api_key, int16_t api_version) {
  if (api_key == ApiKey::kApiVersions && api_version >= 3) return 2;
  return 1;
}

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_API_VERSIONS_H_
