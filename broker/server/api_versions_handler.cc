#include "broker/server/api_versions_handler.h"

#include <algorithm>

#include "broker/protocol/codec.h"

namespace runnel::server {

bool IsHandledApi(protocol::ApiKey api_key) {
  return std::find(kHandledApis.begin(), kHandledApis.end(), api_key) != kHandledApis.end();
}

protocol::ApiVersionsResponse AdvertisedApiVersions(protocol::ErrorCode error_code) {
  protocol::ApiVersionsResponse response = protocol::MakeApiVersionsResponse(error_code);
  std::erase_if(response.api_keys, [](const protocol::ApiVersionsResponse::ApiVersion& api) {
    return !IsHandledApi(static_cast<protocol::ApiKey>(api.api_key));
  });
  return response;
}

}  // namespace runnel::server
