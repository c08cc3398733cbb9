// Every message Runnel's codec knows, and the variants that carry any request or response body.
#ifndef RUNNEL_BROKER_PROTOCOL_MESSAGES_H_
#define RUNNEL_BROKER_PROTOCOL_MESSAGES_H_

#include <cstddef>
#include <variant>

#include "broker/protocol/api_versions.h"
#include "broker/protocol/messages/api_versions.h"
#include "broker/protocol/messages/create_topics.h"
#include "broker/protocol/messages/delete_topics.h"
#include "broker/protocol/messages/describe_configs.h"
#include "broker/protocol/messages/describe_groups.h"
#include "broker/protocol/messages/fetch.h"
#include "broker/protocol/messages/find_coordinator.h"
#include "broker/protocol/messages/heartbeat.h"
#include "broker/protocol/messages/init_producer_id.h"
#include "broker/protocol/messages/join_group.h"
#include "broker/protocol/messages/leave_group.h"
#include "broker/protocol/messages/list_groups.h"
#include "broker/protocol/messages/list_offsets.h"
#include "broker/protocol/messages/metadata.h"
#include "broker/protocol/messages/offset_commit.h"
#include "broker/protocol/messages/offset_fetch.h"
#include "broker/protocol/messages/produce.h"
#include "broker/protocol/messages/sync_group.h"

namespace runnel::protocol {

// Alternatives in the order of kSupportedApis (checked below), so that the alternative index of
// an api is its index in the table.
using RequestBody =
    std::variant<ProduceRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
                 OffsetCommitRequest, OffsetFetchRequest, FindCoordinatorRequest, JoinGroupRequest,
                 HeartbeatRequest, LeaveGroupRequest, SyncGroupRequest, DescribeGroupsRequest,
                 ListGroupsRequest, ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
                 InitProducerIdRequest, DescribeConfigsRequest>;

using ResponseBody =
    std::variant<ProduceResponse, FetchResponse, ListOffsetsResponse, MetadataResponse,
                 OffsetCommitResponse, OffsetFetchResponse, FindCoordinatorResponse,
                 JoinGroupResponse, HeartbeatResponse, LeaveGroupResponse, SyncGroupResponse,
                 DescribeGroupsResponse, ListGroupsResponse, ApiVersionsResponse,
                 CreateTopicsResponse, DeleteTopicsResponse, InitProducerIdResponse,
                 DescribeConfigsResponse>;

namespace messages_internal {
template <typename Variant, size_t... I>
constexpr bool MatchesTable(std::index_sequence<I...>) {
  return std::variant_size_v<Variant> == kSupportedApis.size() &&
         ((std::variant_alternative_t<I, Variant>::kApiKey == kSupportedApis[I].api_key) && ...);
}
}  // namespace messages_internal

static_assert(messages_internal::MatchesTable<RequestBody>(
                  std::make_index_sequence<std::variant_size_v<RequestBody>>()),
              "RequestBody must list one request per kSupportedApis entry, in table order");
static_assert(messages_internal::MatchesTable<ResponseBody>(
                  std::make_index_sequence<std::variant_size_v<ResponseBody>>()),
              "ResponseBody must list one response per kSupportedApis entry, in table order");

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_MESSAGES_H_
