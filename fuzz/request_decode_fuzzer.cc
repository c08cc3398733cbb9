// libFuzzer target for DecodeRequest, the broker's first contact with a client's bytes. Each input
// is one request frame's contents (no size prefix), as in fuzz/corpus/request_decode.
//
// Checks, beyond the sanitizers' memory and undefined-behaviour checks: decoding never crashes;
// an ApiVersions request above the supported range can always be answered; and any request that
// decodes re-encodes, and decodes again to the same header and body (what the broker understood
// is exactly what the bytes say, with nothing lost or invented).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/protocol/codec.h"

namespace {

[[noreturn]] void Finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "request_decode_fuzzer: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace runnel::protocol;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<Request> request = DecodeRequest(input);
  if (!request.ok()) return 0;
  const std::string printed = RequestToString(*request);

  if (request->api_versions_unsupported) {
    const absl::StatusOr<std::string> answer =
        EncodeResponse(request->header, MakeApiVersionsResponse(ErrorCode::kUnsupportedVersion));
    if (!answer.ok()) Finding("cannot answer an unsupported ApiVersions", printed);
    return 0;
  }
  const absl::StatusOr<std::string> frame = EncodeRequest(request->header, request->body);
  if (!frame.ok()) Finding("a decoded request does not encode", std::string(frame.status().message()));
  const absl::StatusOr<Request> again =
      DecodeRequest(absl::string_view(*frame).substr(kFrameSizePrefixBytes));
  if (!again.ok()) Finding("a re-encoded request does not decode", printed);
  if (!(again->header == request->header) || !(again->body == request->body)) {
    Finding("a request changed through re-encoding", printed + "\n" + RequestToString(*again));
  }
  return 0;
}
