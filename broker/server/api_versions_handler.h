// ApiVersions, and the set of APIs this server handles.
//
// The server advertises only what it handles, so that clients never send a request it cannot
// answer; a request for an api it does not advertise closes the connection, as for an unknown api.
// Today that is every api of the codec's table (protocol/api_versions.h).
#ifndef RUNNEL_BROKER_SERVER_API_VERSIONS_HANDLER_H_
#define RUNNEL_BROKER_SERVER_API_VERSIONS_HANDLER_H_

#include <array>

#include "broker/protocol/api_versions.h"
#include "broker/protocol/error_codes.h"
#include "broker/protocol/messages.h"

namespace runnel::server {

// Sorted by api key.
inline constexpr std::array<protocol::ApiKey, 18> kHandledApis = {
    protocol::ApiKey::kProduce,         protocol::ApiKey::kFetch,
    protocol::ApiKey::kListOffsets,     protocol::ApiKey::kMetadata,
    protocol::ApiKey::kOffsetCommit,    protocol::ApiKey::kOffsetFetch,
    protocol::ApiKey::kFindCoordinator, protocol::ApiKey::kJoinGroup,
    protocol::ApiKey::kHeartbeat,       protocol::ApiKey::kLeaveGroup,
    protocol::ApiKey::kSyncGroup,       protocol::ApiKey::kDescribeGroups,
    protocol::ApiKey::kListGroups,      protocol::ApiKey::kApiVersions,
    protocol::ApiKey::kCreateTopics,    protocol::ApiKey::kDeleteTopics,
    protocol::ApiKey::kInitProducerId,  protocol::ApiKey::kDescribeConfigs,
};

bool IsHandledApi(protocol::ApiKey api_key);

// The ApiVersions answer: `error_code` and the codec's version range of every handled api. With
// kUnsupportedVersion it answers a request above ApiVersions' maximum (codec.h).
protocol::ApiVersionsResponse AdvertisedApiVersions(protocol::ErrorCode error_code);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_API_VERSIONS_HANDLER_H_
