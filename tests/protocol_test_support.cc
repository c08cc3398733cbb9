#include "tests/protocol_test_support.h"

#include <cassert>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/status/statusor.h"

namespace runnel::protocol::testing {

std::vector<CorpusFile> RequestCorpus() {
  std::vector<CorpusFile> corpus;
  SeededSource source(/*seed=*/20240601);
  int32_t correlation_id = 1;
  for (const SupportedApi& api : kSupportedApis) {
    for (int16_t version = api.version_min; version <= api.version_max; ++version) {
      const RequestHeader header{.api_key = api.api_key,
                                 .api_version = version,
                                 .correlation_id = correlation_id++,
                                 .client_id = "runnel-corpus"};
      const absl::StatusOr<std::string> frame =
          EncodeRequest(header, FillBody<RequestBody>(api.api_key, &source, version));
      assert(frame.ok());
      corpus.push_back(CorpusFile{
          .name = absl::StrCat(absl::AsciiStrToLower(api.name), "-v", version),
          .bytes = frame->substr(kFrameSizePrefixBytes),
      });
    }
  }
  corpus.push_back(CorpusFile{.name = "apiversions-v3-librdkafka",
                              .bytes = LibrdkafkaApiVersionsV3Request(correlation_id)});
  return corpus;
}

std::string LibrdkafkaApiVersionsV3Request(int32_t correlation_id) {
  std::string bytes;
  auto put16 = [&](int v) {
    bytes.push_back(static_cast<char>((v >> 8) & 0xff));
    bytes.push_back(static_cast<char>(v & 0xff));
  };
  put16(18);  // api_key: ApiVersions
  put16(3);   // api_version
  for (int shift = 24; shift >= 0; shift -= 8) {
    bytes.push_back(static_cast<char>((correlation_id >> shift) & 0xff));
  }
  put16(7);  // client_id: int16 length even in header v2
  bytes.append("rdkafka");
  bytes.push_back(0);  // header tagged fields: none
  // Body: client_software_name and client_software_version as compact strings (unsigned varint
  // length + 1), then no tagged fields.
  bytes.push_back(static_cast<char>(10 + 1));
  bytes.append("librdkafka");
  bytes.push_back(static_cast<char>(5 + 1));
  bytes.append("2.0.2");
  bytes.push_back(0);
  return bytes;
}

}  // namespace runnel::protocol::testing
