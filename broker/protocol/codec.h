// The Kafka codec's entry points: whole requests and responses, for the broker (DecodeRequest,
// EncodeResponse) and for Runnel's client (EncodeRequest, DecodeResponse), over the message
// structs of messages.h.
//
// Decoding is total and bounded: any byte string yields a message or an error status, never a
// crash, and nothing is allocated beyond what the input's length justifies (schema.h). Errors:
//   kInvalidArgument  malformed bytes; the message names the message, version and field. The
//                     server closes the connection (Kafka does the same).
//   kUnimplemented    an api key Runnel does not support. Close the connection.
//   kOutOfRange       a supported api at a version outside its range in kSupportedApis, other
//                     than ApiVersions (below). Close the connection, as Kafka does.
//
// ApiVersions above its supported maximum (librdkafka opens with v3, a flexible version): the
// request's header is read (header v2 for v3 and up, skipping its tagged fields), its body is not,
// and DecodeRequest succeeds with `api_versions_unsupported` set. The answer is
// MakeApiVersionsResponse(ErrorCode::kUnsupportedVersion) passed to EncodeResponse, which writes
// it in the v0 layout (error code, then every supported api range) for any version above the
// maximum: the client reads the ApiVersions range there and retries with a version we support.
// This is what Kafka brokers do since 2.4.
//
// Trailing bytes: every supported version is non-flexible and fully described by its schema, so
// bytes after a request body carry nothing. DecodeRequest ignores them, as Kafka's brokers do,
// and reports their number in Request::trailing_bytes. DecodeResponse rejects them
// (kInvalidArgument): Runnel's client talks to brokers that never send them, and a length
// disagreement there means the two sides disagree on the layout.
#ifndef RUNNEL_BROKER_PROTOCOL_CODEC_H_
#define RUNNEL_BROKER_PROTOCOL_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/error_codes.h"
#include "broker/protocol/frame.h"
#include "broker/protocol/messages.h"

namespace runnel::protocol {

struct Request {
  RequestHeader header;
  // The alternative matching header.api_key.
  RequestBody body;
  // True for an ApiVersions request above the supported maximum, whose body was not parsed (see
  // above): answer MakeApiVersionsResponse(ErrorCode::kUnsupportedVersion).
  bool api_versions_unsupported = false;
  // Bytes after the body, ignored (when api_versions_unsupported: the whole unparsed body).
  size_t trailing_bytes = 0;
  friend bool operator==(const Request&, const Request&) = default;
};

struct Response {
  ResponseHeader header;
  ResponseBody body;
  friend bool operator==(const Response&, const Response&) = default;
};

// --- Broker side ---

// Decodes one request frame's contents (after the size prefix; see FrameReader).
absl::StatusOr<Request> DecodeRequest(absl::string_view frame_body);

// Encodes the response to the request with `request_header` as a whole frame, size prefix
// included, at the request's version (for ApiVersions above its maximum, the v0 layout, which
// must then carry UNSUPPORTED_VERSION). Fails with kInvalidArgument when `body` is not the
// response of the request's api, when the version is unsupported, or when a value cannot be
// carried (schema.h's Encoder), such as null in a version where the field is not nullable.
absl::StatusOr<std::string> EncodeResponse(const RequestHeader& request_header,
                                           const ResponseBody& body);

// The ApiVersions answer: `error_code` and every range of kSupportedApis.
ApiVersionsResponse MakeApiVersionsResponse(ErrorCode error_code);

// --- Client side ---

// Encodes a request as a whole frame, size prefix included, at header.api_version (which must be
// supported, and header.api_key must match `body`), with request header v1.
absl::StatusOr<std::string> EncodeRequest(const RequestHeader& header, const RequestBody& body);

// Decodes one response frame's contents, for a request of `api_key` at `api_version` (the client
// finds them by the correlation id it sent). An ApiVersions response that does not parse at the
// request's version is parsed again in the v0 layout, and accepted if it says
// UNSUPPORTED_VERSION: that is how a broker answers a version it does not support (see above).
absl::StatusOr<Response> DecodeResponse(absl::string_view frame_body, ApiKey api_key,
                                        int16_t api_version);

// --- Both ---

ApiKey ApiKeyOf(const RequestBody& body);
ApiKey ApiKeyOf(const ResponseBody& body);

// One-line debug renderings: "ProduceRequest v7 correlation_id=5 client_id="app" {acks=-1 ...}".
std::string RequestToString(const Request& request);
std::string ResponseToString(const Response& response, int16_t api_version);

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_CODEC_H_
