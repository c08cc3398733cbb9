#include "broker/protocol/codec.h"

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {
namespace {

// The first bytes of every request header: api key and api version, two int16s.
constexpr size_t kRequestKeyAndVersionBytes = 4;

// --- Dispatch from an api's index in kSupportedApis to its variant alternative ---

template <typename Variant>
using BodyDecoder = absl::Status (*)(absl::string_view input, int16_t version, Variant* body,
                                     size_t* trailing_bytes);

template <typename Variant, size_t I>
absl::Status DecodeAlternative(absl::string_view input, int16_t version, Variant* body,
                               size_t* trailing_bytes) {
  return DecodeMessage(input, version, &body->template emplace<I>(), trailing_bytes);
}

template <typename Variant, size_t... I>
constexpr std::array<BodyDecoder<Variant>, sizeof...(I)> MakeBodyDecoders(
    std::index_sequence<I...>) {
  return {&DecodeAlternative<Variant, I>...};
}

// One decoder per alternative, indexed like kSupportedApis (messages.h checks the order).
template <typename Variant>
constexpr std::array<BodyDecoder<Variant>, std::variant_size_v<Variant>> kBodyDecoders =
    MakeBodyDecoders<Variant>(std::make_index_sequence<std::variant_size_v<Variant>>());

size_t TableIndex(const SupportedApi& api) {
  return static_cast<size_t>(&api - kSupportedApis.data());
}

std::string VersionRange(const SupportedApi& api) {
  return absl::StrCat(api.version_min, "-", api.version_max);
}

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

template <typename Variant>
absl::Status EncodeBody(const Variant& body, int16_t version, std::string* out) {
  return std::visit([&](const auto& message) { return EncodeMessage(message, version, out); },
                    body);
}

template <typename Variant>
void PrintBody(const Variant& body, int16_t version, std::string* out) {
  std::visit(
      [&](const auto& message) {
        Printer printer(out, version);
        printer.PrintStruct(message);
      },
      body);
}

template <typename Variant>
absl::string_view BodyName(const Variant& body) {
  return std::visit(
      [](const auto& message) { return std::decay_t<decltype(message)>::kName; }, body);
}

}  // namespace

ApiKey ApiKeyOf(const RequestBody& body) {
  return std::visit([](const auto& message) { return std::decay_t<decltype(message)>::kApiKey; },
                    body);
}

ApiKey ApiKeyOf(const ResponseBody& body) {
  return std::visit([](const auto& message) { return std::decay_t<decltype(message)>::kApiKey; },
                    body);
}

absl::StatusOr<Request> DecodeRequest(absl::string_view frame_body) {
  if (frame_body.size() < kRequestKeyAndVersionBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request of ", frame_body.size(),
                                                   " bytes is too short for a request header"));
  }
  const int16_t api_key = LoadBigEndian<int16_t>(frame_body.data());
  const int16_t api_version = LoadBigEndian<int16_t>(frame_body.data() + sizeof(int16_t));
  const SupportedApi* api = FindSupportedApi(api_key);
  if (api == nullptr) {
    return absl::UnimplementedError(absl::StrCat("api key ", api_key, " is not supported"));
  }
  const std::string context = absl::StrCat(api->name, " v", api_version, " request");
  const bool version_supported =
      api->version_min <= api_version && api_version <= api->version_max;
  const bool api_versions_too_new =
      api->api_key == ApiKey::kApiVersions && api_version > api->version_max;
  if (!version_supported && !api_versions_too_new) {
    return absl::OutOfRangeError(
        absl::StrCat(context, ": version not supported (", VersionRange(*api), ")"));
  }

  Request request;
  WireReader reader(frame_body);
  const absl::Status header_status =
      DecodeRequestHeader(&reader, RequestHeaderVersion(api->api_key, api_version),
                          &request.header);
  if (!header_status.ok()) return WithContext(header_status, context);

  if (api_versions_too_new) {
    // The body's layout is one Runnel does not parse; the header is all the answer needs.
    request.body.emplace<ApiVersionsRequest>();
    request.api_versions_unsupported = true;
    request.trailing_bytes = reader.remaining();
    return request;
  }
  const absl::Status body_status = kBodyDecoders<RequestBody>[TableIndex(*api)](
      reader.rest(), api_version, &request.body, &request.trailing_bytes);
  if (!body_status.ok()) return body_status;
  return request;
}

ApiVersionsResponse MakeApiVersionsResponse(ErrorCode error_code) {
  ApiVersionsResponse response;
  response.error_code = ToWire(error_code);
  response.api_keys.reserve(kSupportedApis.size());
  for (const SupportedApi& api : kSupportedApis) {
    response.api_keys.push_back(ApiVersionsResponse::ApiVersion{
        .api_key = static_cast<int16_t>(api.api_key),
        .min_version = api.version_min,
        .max_version = api.version_max,
    });
  }
  return response;
}

absl::StatusOr<std::string> EncodeResponse(const RequestHeader& request_header,
                                           const ResponseBody& body) {
  const ApiKey api_key = ApiKeyOf(body);
  const SupportedApi* api = FindSupportedApi(static_cast<int16_t>(api_key));
  if (api_key != request_header.api_key) {
    return absl::InvalidArgumentError(
        absl::StrCat(BodyName(body), " does not answer a request of api key ",
                     static_cast<int16_t>(request_header.api_key)));
  }
  int16_t version = request_header.api_version;
  if (api_key == ApiKey::kApiVersions && version > api->version_max) {
    // The fallback layout every client can read (see codec.h). A client parses it only as the
    // answer UNSUPPORTED_VERSION; with any other code it would misread the bytes.
    if (std::get<ApiVersionsResponse>(body).error_code != ToWire(ErrorCode::kUnsupportedVersion)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ApiVersionsResponse to v", version, " must carry UNSUPPORTED_VERSION (",
          ToWire(ErrorCode::kUnsupportedVersion), ")"));
    }
    version = 0;
  }
  if (!IsVersionSupported(api_key, version)) {
    return absl::InvalidArgumentError(absl::StrCat(BodyName(body), " v", version,
                                                   " is not supported (", VersionRange(*api),
                                                   ")"));
  }
  std::string frame(kFrameSizePrefixBytes, '\0');
  AppendBigEndian(frame, request_header.correlation_id);
  const absl::Status status = EncodeBody(body, version, &frame);
  if (!status.ok()) return status;
  const absl::Status frame_status = FinishFrame(&frame);
  if (!frame_status.ok()) return WithContext(frame_status, BodyName(body));
  return frame;
}

absl::StatusOr<std::string> EncodeRequest(const RequestHeader& header, const RequestBody& body) {
  const ApiKey api_key = ApiKeyOf(body);
  const SupportedApi* api = FindSupportedApi(static_cast<int16_t>(api_key));
  if (api_key != header.api_key) {
    return absl::InvalidArgumentError(absl::StrCat(BodyName(body), " sent with api key ",
                                                   static_cast<int16_t>(header.api_key)));
  }
  if (!IsVersionSupported(api_key, header.api_version)) {
    return absl::InvalidArgumentError(absl::StrCat(BodyName(body), " v", header.api_version,
                                                   " is not supported (", VersionRange(*api),
                                                   ")"));
  }
  std::string frame(kFrameSizePrefixBytes, '\0');
  const absl::Status header_status =
      EncodeRequestHeader(header, RequestHeaderVersion(api_key, header.api_version), &frame);
  if (!header_status.ok()) return WithContext(header_status, BodyName(body));
  const absl::Status status = EncodeBody(body, header.api_version, &frame);
  if (!status.ok()) return status;
  const absl::Status frame_status = FinishFrame(&frame);
  if (!frame_status.ok()) return WithContext(frame_status, BodyName(body));
  return frame;
}

absl::StatusOr<Response> DecodeResponse(absl::string_view frame_body, ApiKey api_key,
                                        int16_t api_version) {
  const SupportedApi* api = FindSupportedApi(static_cast<int16_t>(api_key));
  if (api == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("api key ", static_cast<int16_t>(api_key), " is not supported"));
  }
  if (!IsVersionSupported(api_key, api_version)) {
    return absl::OutOfRangeError(absl::StrCat(api->name, " v", api_version,
                                              " response: version not supported (",
                                              VersionRange(*api), ")"));
  }
  WireReader reader(frame_body);
  Response response;
  if (!reader.ReadInt(&response.header.correlation_id)) {
    return absl::InvalidArgumentError(absl::StrCat(api->name, " v", api_version, " response of ",
                                                   frame_body.size(),
                                                   " bytes is too short for a response header"));
  }
  const BodyDecoder<ResponseBody> decode = kBodyDecoders<ResponseBody>[TableIndex(*api)];
  auto decode_whole = [&](int16_t version, ResponseBody* body) {
    size_t trailing_bytes = 0;
    absl::Status status = decode(reader.rest(), version, body, &trailing_bytes);
    if (status.ok() && trailing_bytes > 0) {
      status = absl::InvalidArgumentError(absl::StrCat(BodyName(*body), " v", version, ": ",
                                                       trailing_bytes,
                                                       " bytes follow the body"));
    }
    return status;
  };
  const absl::Status status = decode_whole(api_version, &response.body);
  if (status.ok()) return response;
  if (api_key == ApiKey::kApiVersions && api_version != 0) {
    // A broker that does not support the version answers UNSUPPORTED_VERSION in the v0 layout;
    // only that answer is accepted in it.
    if (decode_whole(0, &response.body).ok() &&
        std::get<ApiVersionsResponse>(response.body).error_code ==
            ToWire(ErrorCode::kUnsupportedVersion)) {
      return response;
    }
  }
  return status;
}

std::string RequestToString(const Request& request) {
  const RequestHeader& header = request.header;
  std::string out = absl::StrCat(
      BodyName(request.body), " v", header.api_version, " correlation_id=", header.correlation_id,
      " client_id=",
      header.client_id.has_value() ? absl::StrCat("\"", absl::CHexEscape(*header.client_id), "\"")
                                   : "null",
      " ");
  if (request.api_versions_unsupported) {
    out.append("(version above the supported range; body not parsed)");
    return out;
  }
  PrintBody(request.body, header.api_version, &out);
  return out;
}

std::string ResponseToString(const Response& response, int16_t api_version) {
  std::string out = absl::StrCat(BodyName(response.body), " v", api_version,
                                 " correlation_id=", response.header.correlation_id, " ");
  PrintBody(response.body, api_version, &out);
  return out;
}

}  // namespace runnel::protocol
