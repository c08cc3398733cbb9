// The Kafka codec: requests and responses written out byte by byte here from the protocol
// specification (with this file's own big-endian writer) must decode to the expected structs and
// encode back to the same bytes; every message round-trips at every supported version, for
// deterministic seeds and for rapidcheck's values; every truncation of every request fails
// cleanly; random byte damage never crashes the decoder; hostile counts and lengths fail before
// allocating; and the error codes, the api table and the fuzzer's seed corpus are what they claim.
#include "broker/protocol/codec.h"

#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "broker/protocol/error_codes.h"
#include "broker/protocol/schema.h"
#include "broker/storage/record_batch.h"
#include "gtest/gtest.h"
#include "tests/protocol_test_support.h"

namespace runnel::protocol {
namespace {

using testing::FillBody;
using testing::SeededSource;

// --- An independent writer for expected bytes: nothing here calls the code under test. ---

class Wire {
 public:
  Wire& I8(int64_t value) { return Put(value, 1); }
  Wire& I16(int64_t value) { return Put(value, 2); }
  Wire& I32(int64_t value) { return Put(value, 4); }
  Wire& I64(int64_t value) { return Put(value, 8); }
  Wire& Bool(bool value) { return Put(value ? 1 : 0, 1); }
  Wire& Str(absl::string_view value) {
    Put(static_cast<int64_t>(value.size()), 2);
    bytes_.append(value.data(), value.size());
    return *this;
  }
  Wire& NullStr() { return Put(-1, 2); }
  // BYTES and RECORDS: an int32 length, then the bytes.
  Wire& Blob(absl::string_view value) {
    Put(static_cast<int64_t>(value.size()), 4);
    bytes_.append(value.data(), value.size());
    return *this;
  }
  Wire& NullBlob() { return Put(-1, 4); }
  Wire& Count(int64_t count) { return Put(count, 4); }
  Wire& Raw(absl::string_view bytes) {
    bytes_.append(bytes.data(), bytes.size());
    return *this;
  }
  // Request header v1.
  Wire& Header(int api_key, int api_version, int32_t correlation_id, absl::string_view client_id) {
    return I16(api_key).I16(api_version).I32(correlation_id).Str(client_id);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  Wire& Put(int64_t value, int width) {
    const uint64_t bits = static_cast<uint64_t>(value);
    for (int i = width - 1; i >= 0; --i) bytes_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
    return *this;
  }
  std::string bytes_;
};

std::string Frame(absl::string_view body) {
  return Wire().I32(static_cast<int64_t>(body.size())).Raw(body).bytes();
}

// A real RecordBatch v2 with two records, as a producer would send it.
std::string RecordsBlob() {
  std::vector<storage::Record> records(2);
  records[0].offset_delta = 0;
  records[0].key = "k0";
  records[0].value = "hello";
  records[1].offset_delta = 1;
  records[1].timestamp_delta = 3;
  records[1].value = "world";
  absl::StatusOr<std::string> batch =
      storage::BuildBatch({.base_timestamp = 1700000000000}, records);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return *batch;
}

// Checks both directions for a request: the hand-written frame contents decode to (header, body),
// and (header, body) encode to exactly that frame.
void ExpectRequestBytes(const RequestHeader& header, const RequestBody& body,
                        const std::string& frame_body) {
  absl::StatusOr<Request> decoded = DecodeRequest(frame_body);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->header == header);
  EXPECT_FALSE(decoded->api_versions_unsupported);
  EXPECT_EQ(decoded->trailing_bytes, 0u);
  EXPECT_TRUE(decoded->body == body)
      << "decoded  " << RequestToString(*decoded) << "\nexpected "
      << RequestToString(Request{.header = header, .body = body});
  absl::StatusOr<std::string> encoded = EncodeRequest(header, body);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(*encoded, Frame(frame_body));
}

// The same for a response to a request with `request_header`.
void ExpectResponseBytes(const RequestHeader& request_header, const ResponseBody& body,
                         const std::string& frame_body) {
  absl::StatusOr<std::string> encoded = EncodeResponse(request_header, body);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(*encoded, Frame(frame_body));
  absl::StatusOr<Response> decoded =
      DecodeResponse(frame_body, request_header.api_key, request_header.api_version);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->header.correlation_id, request_header.correlation_id);
  EXPECT_TRUE(decoded->body == body)
      << "decoded  " << ResponseToString(*decoded, request_header.api_version) << "\nexpected "
      << ResponseToString(Response{.header = {request_header.correlation_id}, .body = body},
                          request_header.api_version);
}

// The supported ranges written out here, in the order the ApiVersions response lists them.
const std::vector<std::tuple<int, int, int>> kExpectedRanges = {
    {0, 3, 8},  {1, 4, 11}, {2, 0, 5},  {3, 0, 8},  {8, 0, 7},  {9, 0, 5},
    {10, 0, 2}, {11, 0, 5}, {12, 0, 3}, {13, 0, 3}, {14, 0, 3}, {15, 0, 4},
    {16, 0, 2}, {18, 0, 2}, {19, 0, 4}, {20, 0, 3}, {22, 0, 1}, {32, 0, 3},
};

Wire& ApiRanges(Wire& wire) {
  wire.Count(static_cast<int64_t>(kExpectedRanges.size()));
  for (const auto& [key, min, max] : kExpectedRanges) wire.I16(key).I16(min).I16(max);
  return wire;
}

// --- ApiVersions ---

TEST(ApiVersionsTest, V0RequestFromBytes) {
  // kafka-python's opening probe: header v1 and an empty body.
  const std::string bytes = {0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
                             0x00, 0x04, 'p',  'r',  'o',  'b'};
  ExpectRequestBytes({.api_key = ApiKey::kApiVersions,
                      .api_version = 0,
                      .correlation_id = 1,
                      .client_id = "prob"},
                     ApiVersionsRequest{}, bytes);
}

TEST(ApiVersionsTest, V2ResponseListsEveryRange) {
  Wire wire;
  wire.I32(7).I16(0);
  ApiRanges(wire).I32(0);  // throttle_time_ms
  ExpectResponseBytes({.api_key = ApiKey::kApiVersions, .api_version = 2, .correlation_id = 7},
                      MakeApiVersionsResponse(ErrorCode::kNone), wire.bytes().substr(0));
}

TEST(ApiVersionsTest, LibrdkafkaV3RequestGetsUnsupportedVersionInTheV0Layout) {
  // Header v2 (client id with an int16 length, then an empty tagged-field section), then the v3
  // body: compact strings "librdkafka" and "2.0.2", and an empty tagged-field section.
  const std::string request = {0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x07,
                               'r',  'd',  'k',  'a',  'f',  'k',  'a',  0x00, 0x0b, 'l',
                               'i',  'b',  'r',  'd',  'k',  'a',  'f',  'k',  'a',  0x06,
                               '2',  '.',  '0',  '.',  '2',  0x00};
  EXPECT_EQ(request, testing::LibrdkafkaApiVersionsV3Request(42));
  absl::StatusOr<Request> decoded = DecodeRequest(request);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->api_versions_unsupported);
  EXPECT_EQ(decoded->header.api_key, ApiKey::kApiVersions);
  EXPECT_EQ(decoded->header.api_version, 3);
  EXPECT_EQ(decoded->header.correlation_id, 42);
  EXPECT_EQ(decoded->header.client_id, "rdkafka");
  EXPECT_TRUE(std::holds_alternative<ApiVersionsRequest>(decoded->body));
  EXPECT_TRUE(absl::StrContains(RequestToString(*decoded), "not parsed"));

  // The answer: response header v0, error 35, every range, and no throttle_time_ms (v0 layout).
  absl::StatusOr<std::string> answer =
      EncodeResponse(decoded->header, MakeApiVersionsResponse(ErrorCode::kUnsupportedVersion));
  ASSERT_TRUE(answer.ok()) << answer.status();
  Wire expected;
  expected.I32(42).I16(35);
  ApiRanges(expected);
  EXPECT_EQ(*answer, Frame(expected.bytes()));

  // Only UNSUPPORTED_VERSION may be answered in that layout.
  EXPECT_EQ(EncodeResponse(decoded->header, MakeApiVersionsResponse(ErrorCode::kNone))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);

  // A client that sent v1 or v2 and got this answer reads it in the v0 layout.
  for (int16_t version : {0, 1, 2}) {
    absl::StatusOr<Response> response =
        DecodeResponse(expected.bytes(), ApiKey::kApiVersions, version);
    ASSERT_TRUE(response.ok()) << response.status();
    const auto& body = std::get<ApiVersionsResponse>(response->body);
    EXPECT_EQ(body.error_code, 35);
    EXPECT_EQ(body.api_keys.size(), kExpectedRanges.size());
  }
}

TEST(ApiVersionsTest, FutureVersionsAreAnsweredTooAndNegativeOnesAreNot) {
  std::string v9 = testing::LibrdkafkaApiVersionsV3Request(5);
  v9[3] = 9;
  absl::StatusOr<Request> decoded = DecodeRequest(v9);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->api_versions_unsupported);
  std::string negative = Wire().Header(18, -1, 5, "c").bytes();
  EXPECT_EQ(DecodeRequest(negative).status().code(), absl::StatusCode::kOutOfRange);
}

// --- Metadata ---

TEST(MetadataTest, V1RequestAndResponse) {
  const RequestHeader header{.api_key = ApiKey::kMetadata,
                             .api_version = 1,
                             .correlation_id = 3,
                             .client_id = "kafka-python"};
  MetadataRequest request;
  request.topics = std::vector<MetadataRequest::Topic>{{"orders"}, {"audit"}};
  ExpectRequestBytes(
      header, request,
      Wire().Header(3, 1, 3, "kafka-python").Count(2).Str("orders").Str("audit").bytes());
  // v1: null asks for all topics.
  ExpectRequestBytes(header, MetadataRequest{},
                     Wire().Header(3, 1, 3, "kafka-python").Count(-1).bytes());

  MetadataResponse response;
  response.brokers.push_back({.node_id = 1, .host = "broker-1", .port = 9092, .rack = {}});
  response.cluster_id = "ignored-before-v2";
  response.controller_id = 1;
  MetadataResponse::Topic topic{.error_code = 0, .name = "orders", .is_internal = false};
  topic.partitions.push_back({.error_code = 0,
                              .partition_index = 0,
                              .leader_id = 1,
                              .replica_nodes = {1, 2},
                              .isr_nodes = {1}});
  response.topics.push_back(topic);
  const std::string expected = Wire()
                                   .I32(3)
                                   .Count(1)  // brokers
                                   .I32(1)
                                   .Str("broker-1")
                                   .I32(9092)
                                   .NullStr()  // rack
                                   .I32(1)     // controller_id
                                   .Count(1)   // topics
                                   .I16(0)
                                   .Str("orders")
                                   .Bool(false)
                                   .Count(1)  // partitions
                                   .I16(0)
                                   .I32(0)
                                   .I32(1)
                                   .Count(2)
                                   .I32(1)
                                   .I32(2)
                                   .Count(1)
                                   .I32(1)
                                   .bytes();
  absl::StatusOr<std::string> encoded = EncodeResponse(header, response);
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(*encoded, Frame(expected));
  // cluster_id does not exist in v1: decoding leaves its default.
  response.cluster_id.reset();
  ExpectResponseBytes(header, response, expected);
}

TEST(MetadataTest, V8RequestAndResponse) {
  const RequestHeader header{.api_key = ApiKey::kMetadata,
                             .api_version = 8,
                             .correlation_id = 0x11223344,
                             .client_id = "rdkafka"};
  MetadataRequest request;
  request.topics = std::vector<MetadataRequest::Topic>{{"orders"}};
  request.allow_auto_topic_creation = false;
  request.include_cluster_authorized_operations = true;
  request.include_topic_authorized_operations = false;
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(3, 8, 0x11223344, "rdkafka")
                         .Count(1)
                         .Str("orders")
                         .Bool(false)
                         .Bool(true)
                         .Bool(false)
                         .bytes());

  MetadataResponse response;
  response.throttle_time_ms = 0;
  response.brokers.push_back({.node_id = 2, .host = "b2", .port = 19092, .rack = "rack-a"});
  response.cluster_id = "runnel";
  response.controller_id = 2;
  MetadataResponse::Topic topic{.error_code = 0, .name = "orders", .is_internal = false};
  topic.partitions.push_back({.error_code = 0,
                              .partition_index = 0,
                              .leader_id = 2,
                              .leader_epoch = 5,
                              .replica_nodes = {2, 3},
                              .isr_nodes = {2},
                              .offline_replicas = {3}});
  topic.partitions.push_back({.error_code = 5,
                              .partition_index = 1,
                              .leader_id = -1,
                              .leader_epoch = -1,
                              .replica_nodes = {},
                              .isr_nodes = {},
                              .offline_replicas = {}});
  response.topics.push_back(topic);
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(0x11223344)
                          .I32(0)    // throttle_time_ms
                          .Count(1)  // brokers
                          .I32(2)
                          .Str("b2")
                          .I32(19092)
                          .Str("rack-a")
                          .Str("runnel")  // cluster_id
                          .I32(2)         // controller_id
                          .Count(1)       // topics
                          .I16(0)
                          .Str("orders")
                          .Bool(false)
                          .Count(2)  // partitions
                          .I16(0)
                          .I32(0)
                          .I32(2)
                          .I32(5)
                          .Count(2)
                          .I32(2)
                          .I32(3)
                          .Count(1)
                          .I32(2)
                          .Count(1)
                          .I32(3)
                          .I16(5)
                          .I32(1)
                          .I32(-1)
                          .I32(-1)
                          .Count(0)
                          .Count(0)
                          .Count(0)
                          .I32(std::numeric_limits<int32_t>::min())  // topic operations
                          .I32(std::numeric_limits<int32_t>::min())  // cluster operations
                          .bytes());
}

TEST(MetadataTest, NullTopicsOnlyFromV1AndAllTopicsSemantics) {
  // v0 has no null: encoding one is an error, decoding one too.
  const RequestHeader v0{.api_key = ApiKey::kMetadata, .api_version = 0, .correlation_id = 1};
  absl::StatusOr<std::string> encoded = EncodeRequest(v0, MetadataRequest{});
  EXPECT_EQ(encoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(encoded.status().message(), "MetadataRequest v0: topics"))
      << encoded.status();
  absl::StatusOr<Request> decoded = DecodeRequest(Wire().Header(3, 0, 1, "c").Count(-1).bytes());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "topics is null")) << decoded.status();

  MetadataRequest empty;
  empty.topics.emplace();
  EXPECT_TRUE(empty.AllTopics(0));
  EXPECT_FALSE(empty.AllTopics(1));
  EXPECT_TRUE(MetadataRequest{}.AllTopics(1));
}

// --- Produce ---

TEST(ProduceTest, V3RequestWithRecordsAndResponse) {
  const std::string records = RecordsBlob();
  const RequestHeader header{.api_key = ApiKey::kProduce,
                             .api_version = 3,
                             .correlation_id = 9,
                             .client_id = "producer-1"};
  ProduceRequest request{.transactional_id = std::nullopt, .acks = -1, .timeout_ms = 30000};
  request.topic_data.push_back({.name = "orders", .partition_data = {{0, records}, {1, {}}}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(0, 3, 9, "producer-1")
                         .NullStr()  // transactional_id
                         .I16(-1)
                         .I32(30000)
                         .Count(1)
                         .Str("orders")
                         .Count(2)
                         .I32(0)
                         .Blob(records)
                         .I32(1)
                         .NullBlob()
                         .bytes());
  // The records come through byte for byte, still a valid batch.
  absl::StatusOr<Request> decoded = DecodeRequest(EncodeRequest(header, request)->substr(4));
  ASSERT_TRUE(decoded.ok());
  const std::string& carried =
      *std::get<ProduceRequest>(decoded->body).topic_data[0].partition_data[0].records;
  EXPECT_EQ(carried, records);
  EXPECT_TRUE(storage::ValidateBatch(carried, {}).ok());

  ProduceResponse response;
  response.responses.push_back(
      {.name = "orders",
       .partition_responses = {{.index = 0, .error_code = 0, .base_offset = 42},
                               {.index = 1, .error_code = 6, .base_offset = -1}}});
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(9)
                          .Count(1)
                          .Str("orders")
                          .Count(2)
                          .I32(0)
                          .I16(0)
                          .I64(42)
                          .I64(-1)  // log_append_time_ms
                          .I32(1)
                          .I16(6)
                          .I64(-1)
                          .I64(-1)
                          .I32(0)  // throttle_time_ms
                          .bytes());
}

TEST(ProduceTest, V7RequestAndResponse) {
  const std::string records = RecordsBlob();
  const RequestHeader header{.api_key = ApiKey::kProduce,
                             .api_version = 7,
                             .correlation_id = 100,
                             .client_id = std::nullopt};
  ProduceRequest request{.transactional_id = "tx-1", .acks = 1, .timeout_ms = 1500};
  request.topic_data.push_back({.name = "t", .partition_data = {{3, records}}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .I16(0)
                         .I16(7)
                         .I32(100)
                         .NullStr()  // client_id
                         .Str("tx-1")
                         .I16(1)
                         .I32(1500)
                         .Count(1)
                         .Str("t")
                         .Count(1)
                         .I32(3)
                         .Blob(records)
                         .bytes());

  ProduceResponse response;
  response.throttle_time_ms = 12;
  response.responses.push_back({.name = "t",
                                .partition_responses = {{.index = 3,
                                                         .error_code = 0,
                                                         .base_offset = 1000,
                                                         .log_append_time_ms = 1700000000123,
                                                         .log_start_offset = 7}}});
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(100)
                          .Count(1)
                          .Str("t")
                          .Count(1)
                          .I32(3)
                          .I16(0)
                          .I64(1000)
                          .I64(1700000000123)
                          .I64(7)  // log_start_offset (v5+)
                          .I32(12)
                          .bytes());
}

// --- Fetch ---

TEST(FetchTest, V4RequestAndResponse) {
  const std::string records = RecordsBlob();
  const RequestHeader header{.api_key = ApiKey::kFetch,
                             .api_version = 4,
                             .correlation_id = 77,
                             .client_id = "kafka-python"};
  FetchRequest request{.replica_id = -1,
                       .max_wait_ms = 500,
                       .min_bytes = 1,
                       .max_bytes = 52428800,
                       .isolation_level = 1};
  request.topics.push_back(
      {.topic = "orders",
       .partitions = {{.partition = 0, .fetch_offset = 42, .partition_max_bytes = 1048576}}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(1, 4, 77, "kafka-python")
                         .I32(-1)
                         .I32(500)
                         .I32(1)
                         .I32(52428800)
                         .I8(1)
                         .Count(1)
                         .Str("orders")
                         .Count(1)
                         .I32(0)
                         .I64(42)
                         .I32(1048576)
                         .bytes());

  FetchResponse response;
  FetchResponse::Partition partition{.partition_index = 0,
                                     .error_code = 0,
                                     .high_watermark = 100,
                                     .last_stable_offset = 100,
                                     .aborted_transactions = std::nullopt,
                                     .records = records};
  response.responses.push_back({.topic = "orders", .partitions = {partition}});
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(77)
                          .I32(0)  // throttle_time_ms
                          .Count(1)
                          .Str("orders")
                          .Count(1)
                          .I32(0)
                          .I16(0)
                          .I64(100)
                          .I64(100)
                          .Count(-1)  // aborted_transactions: null
                          .Blob(records)
                          .bytes());
}

TEST(FetchTest, V11RequestAndResponse) {
  const std::string records = RecordsBlob();
  const RequestHeader header{.api_key = ApiKey::kFetch,
                             .api_version = 11,
                             .correlation_id = 5,
                             .client_id = "rdkafka"};
  FetchRequest request{.replica_id = -1,
                       .max_wait_ms = 100,
                       .min_bytes = 1,
                       .max_bytes = 1000000,
                       .isolation_level = 0,
                       .session_id = 0,
                       .session_epoch = -1,
                       .rack_id = "rack-b"};
  request.topics.push_back({.topic = "orders",
                            .partitions = {{.partition = 2,
                                            .current_leader_epoch = 4,
                                            .fetch_offset = 8,
                                            .log_start_offset = -1,
                                            .partition_max_bytes = 65536}}});
  request.forgotten_topics_data.push_back({.topic = "old", .partitions = {0, 1}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(1, 11, 5, "rdkafka")
                         .I32(-1)
                         .I32(100)
                         .I32(1)
                         .I32(1000000)
                         .I8(0)
                         .I32(0)   // session_id
                         .I32(-1)  // session_epoch
                         .Count(1)
                         .Str("orders")
                         .Count(1)
                         .I32(2)
                         .I32(4)  // current_leader_epoch
                         .I64(8)
                         .I64(-1)  // log_start_offset
                         .I32(65536)
                         .Count(1)  // forgotten_topics_data
                         .Str("old")
                         .Count(2)
                         .I32(0)
                         .I32(1)
                         .Str("rack-b")
                         .bytes());

  FetchResponse response{.throttle_time_ms = 0, .error_code = 0, .session_id = 0};
  FetchResponse::Partition partition{.partition_index = 2,
                                     .error_code = 0,
                                     .high_watermark = 10,
                                     .last_stable_offset = 10,
                                     .log_start_offset = 0,
                                     .aborted_transactions = {{{.producer_id = 9,
                                                                .first_offset = 4}}},
                                     .preferred_read_replica = -1,
                                     .records = records};
  FetchResponse::Partition empty{.partition_index = 3,
                                 .error_code = 1,
                                 .high_watermark = -1,
                                 .last_stable_offset = -1,
                                 .log_start_offset = -1,
                                 .aborted_transactions = std::nullopt,
                                 .preferred_read_replica = -1,
                                 .records = std::nullopt};
  response.responses.push_back({.topic = "orders", .partitions = {partition, empty}});
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(5)
                          .I32(0)  // throttle_time_ms
                          .I16(0)  // error_code
                          .I32(0)  // session_id
                          .Count(1)
                          .Str("orders")
                          .Count(2)
                          .I32(2)
                          .I16(0)
                          .I64(10)
                          .I64(10)
                          .I64(0)
                          .Count(1)
                          .I64(9)
                          .I64(4)
                          .I32(-1)  // preferred_read_replica
                          .Blob(records)
                          .I32(3)
                          .I16(1)
                          .I64(-1)
                          .I64(-1)
                          .I64(-1)
                          .Count(-1)
                          .I32(-1)
                          .NullBlob()
                          .bytes());
}

// --- ListOffsets, CreateTopics, DescribeConfigs ---

TEST(ListOffsetsTest, V1RequestAndResponse) {
  const RequestHeader header{.api_key = ApiKey::kListOffsets,
                             .api_version = 1,
                             .correlation_id = 4,
                             .client_id = "c"};
  ListOffsetsRequest request{.replica_id = -1};
  request.topics.push_back(
      {.name = "orders",
       .partitions = {{.partition_index = 0, .timestamp = kListOffsetsLatestTimestamp},
                      {.partition_index = 1, .timestamp = kListOffsetsEarliestTimestamp}}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(2, 1, 4, "c")
                         .I32(-1)
                         .Count(1)
                         .Str("orders")
                         .Count(2)
                         .I32(0)
                         .I64(-1)
                         .I32(1)
                         .I64(-2)
                         .bytes());

  ListOffsetsResponse response;
  response.topics.push_back(
      {.name = "orders",
       .partitions = {{.partition_index = 0, .error_code = 0, .timestamp = -1, .offset = 100},
                      {.partition_index = 1, .error_code = 0, .timestamp = -1, .offset = 0}}});
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(4)
                          .Count(1)
                          .Str("orders")
                          .Count(2)
                          .I32(0)
                          .I16(0)
                          .I64(-1)
                          .I64(100)
                          .I32(1)
                          .I16(0)
                          .I64(-1)
                          .I64(0)
                          .bytes());
}

TEST(ListOffsetsTest, V0CarriesMaxNumOffsetsAndOldStyleOffsets) {
  const RequestHeader header{.api_key = ApiKey::kListOffsets,
                             .api_version = 0,
                             .correlation_id = 1,
                             .client_id = "c"};
  ListOffsetsRequest request{.replica_id = -1};
  request.topics.push_back(
      {.name = "t", .partitions = {{.partition_index = 0, .timestamp = -1, .max_num_offsets = 1}}});
  ExpectRequestBytes(
      header, request,
      Wire().Header(2, 0, 1, "c").I32(-1).Count(1).Str("t").Count(1).I32(0).I64(-1).I32(1).bytes());
  ListOffsetsResponse response;
  response.topics.push_back(
      {.name = "t",
       .partitions = {{.partition_index = 0, .error_code = 0, .old_style_offsets = {55}}}});
  ExpectResponseBytes(
      header, response,
      Wire().I32(1).Count(1).Str("t").Count(1).I32(0).I16(0).Count(1).I64(55).bytes());
}

TEST(CreateTopicsTest, V2RequestAndResponse) {
  const RequestHeader header{.api_key = ApiKey::kCreateTopics,
                             .api_version = 2,
                             .correlation_id = 8,
                             .client_id = "admin"};
  CreateTopicsRequest request{.timeout_ms = 30000, .validate_only = false};
  request.topics.push_back({.name = "orders",
                            .num_partitions = 3,
                            .replication_factor = 1,
                            .assignments = {},
                            .configs = {{"cleanup.policy", "compact"}, {"x", std::nullopt}}});
  request.topics.push_back({.name = "placed",
                            .num_partitions = -1,
                            .replication_factor = -1,
                            .assignments = {{.partition_index = 0, .broker_ids = {1, 2}}}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(19, 2, 8, "admin")
                         .Count(2)
                         .Str("orders")
                         .I32(3)
                         .I16(1)
                         .Count(0)
                         .Count(2)
                         .Str("cleanup.policy")
                         .Str("compact")
                         .Str("x")
                         .NullStr()
                         .Str("placed")
                         .I32(-1)
                         .I16(-1)
                         .Count(1)
                         .I32(0)
                         .Count(2)
                         .I32(1)
                         .I32(2)
                         .Count(0)
                         .I32(30000)
                         .Bool(false)
                         .bytes());

  CreateTopicsResponse response{.throttle_time_ms = 0};
  response.topics.push_back({.name = "orders", .error_code = 0, .error_message = std::nullopt});
  response.topics.push_back(
      {.name = "placed", .error_code = 36, .error_message = "Topic 'placed' already exists."});
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(8)
                          .I32(0)
                          .Count(2)
                          .Str("orders")
                          .I16(0)
                          .NullStr()
                          .Str("placed")
                          .I16(36)
                          .Str("Topic 'placed' already exists.")
                          .bytes());
}

TEST(DescribeConfigsTest, V1RequestAndResponse) {
  const RequestHeader header{.api_key = ApiKey::kDescribeConfigs,
                             .api_version = 1,
                             .correlation_id = 21,
                             .client_id = "admin"};
  DescribeConfigsRequest request{.include_synonyms = true};
  request.resources.push_back({.resource_type = kConfigResourceTopic,
                               .resource_name = "orders",
                               .configuration_keys = std::nullopt});
  request.resources.push_back({.resource_type = kConfigResourceBroker,
                               .resource_name = "1",
                               .configuration_keys = {{"log.dirs"}}});
  ExpectRequestBytes(header, request,
                     Wire()
                         .Header(32, 1, 21, "admin")
                         .Count(2)
                         .I8(2)
                         .Str("orders")
                         .Count(-1)
                         .I8(4)
                         .Str("1")
                         .Count(1)
                         .Str("log.dirs")
                         .Bool(true)
                         .bytes());

  DescribeConfigsResponse response{.throttle_time_ms = 0};
  DescribeConfigsResponse::Result result{.error_code = 0,
                                         .error_message = std::nullopt,
                                         .resource_type = kConfigResourceTopic,
                                         .resource_name = "orders"};
  result.configs.push_back(
      {.name = "retention.ms",
       .value = "604800000",
       .read_only = false,
       .config_source = 5,
       .is_sensitive = false,
       .synonyms = {{.name = "log.retention.ms", .value = "604800000", .source = 4}}});
  response.results.push_back(result);
  ExpectResponseBytes(header, response,
                      Wire()
                          .I32(21)
                          .I32(0)
                          .Count(1)
                          .I16(0)
                          .NullStr()
                          .I8(2)
                          .Str("orders")
                          .Count(1)
                          .Str("retention.ms")
                          .Str("604800000")
                          .Bool(false)
                          .I8(5)  // config_source (v1+; v0 had is_default here)
                          .Bool(false)
                          .Count(1)
                          .Str("log.retention.ms")
                          .Str("604800000")
                          .I8(4)
                          .bytes());
}

// --- Every message at every version ---

struct ApiVersion {
  ApiKey api_key;
  int16_t version;
};

std::vector<ApiVersion> AllApiVersions() {
  std::vector<ApiVersion> all;
  for (const SupportedApi& api : kSupportedApis) {
    for (int16_t version = api.version_min; version <= api.version_max; ++version) {
      all.push_back({api.api_key, version});
    }
  }
  return all;
}

std::string ApiVersionName(const ::testing::TestParamInfo<ApiVersion>& info) {
  return absl::StrCat(ApiName(info.param.api_key), "V", info.param.version);
}

class EveryVersionTest : public ::testing::TestWithParam<ApiVersion> {
 protected:
  RequestHeader Header(int32_t correlation_id) const {
    return {.api_key = GetParam().api_key,
            .api_version = GetParam().version,
            .correlation_id = correlation_id,
            .client_id = "client"};
  }
};

constexpr uint64_t kRoundTripSeeds = 300;

TEST_P(EveryVersionTest, RequestsRoundTrip) {
  for (uint64_t seed = 0; seed < kRoundTripSeeds; ++seed) {
    SeededSource source(seed);
    const RequestHeader header = Header(static_cast<int32_t>(seed));
    const RequestBody body = FillBody<RequestBody>(header.api_key, &source, header.api_version);
    absl::StatusOr<std::string> frame = EncodeRequest(header, body);
    ASSERT_TRUE(frame.ok()) << frame.status();
    absl::StatusOr<Request> decoded = DecodeRequest(absl::string_view(*frame).substr(4));
    ASSERT_TRUE(decoded.ok()) << decoded.status() << " seed " << seed;
    EXPECT_TRUE(decoded->header == header);
    ASSERT_TRUE(decoded->body == body)
        << "seed " << seed << "\nsent     " << RequestToString({.header = header, .body = body})
        << "\nreceived " << RequestToString(*decoded);
    EXPECT_EQ(decoded->trailing_bytes, 0u);
    // The size counter agrees with the encoder.
    const size_t body_bytes = std::visit(
        [&](const auto& message) { return EncodedBytes(message, header.api_version); }, body);
    EXPECT_EQ(frame->size(), 4 + 10 + header.client_id->size() + body_bytes);
  }
}

TEST_P(EveryVersionTest, ResponsesRoundTrip) {
  for (uint64_t seed = 0; seed < kRoundTripSeeds; ++seed) {
    SeededSource source(seed);
    const RequestHeader header = Header(static_cast<int32_t>(seed));
    const ResponseBody body = FillBody<ResponseBody>(header.api_key, &source, header.api_version);
    absl::StatusOr<std::string> frame = EncodeResponse(header, body);
    ASSERT_TRUE(frame.ok()) << frame.status();
    absl::StatusOr<Response> decoded =
        DecodeResponse(absl::string_view(*frame).substr(4), header.api_key, header.api_version);
    ASSERT_TRUE(decoded.ok()) << decoded.status() << " seed " << seed;
    EXPECT_EQ(decoded->header.correlation_id, header.correlation_id);
    ASSERT_TRUE(decoded->body == body)
        << "seed " << seed << "\nsent     "
        << ResponseToString({.header = {header.correlation_id}, .body = body}, header.api_version)
        << "\nreceived " << ResponseToString(*decoded, header.api_version);
  }
}

TEST_P(EveryVersionTest, EveryTruncationOfARequestFails) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    SeededSource source(seed);
    const RequestHeader header = Header(1);
    absl::StatusOr<std::string> frame =
        EncodeRequest(header, FillBody<RequestBody>(header.api_key, &source, header.api_version));
    ASSERT_TRUE(frame.ok());
    const absl::string_view body = absl::string_view(*frame).substr(4);
    for (size_t length = 0; length < body.size(); ++length) {
      absl::StatusOr<Request> decoded = DecodeRequest(body.substr(0, length));
      // Requests with an empty body (ApiVersions, ListGroups) are whole once the header is.
      if (decoded.ok()) {
        EXPECT_EQ(length, body.size()) << length;
        continue;
      }
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << length;
    }
  }
}

TEST_P(EveryVersionTest, EveryTruncationOfAResponseFails) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    SeededSource source(seed);
    const RequestHeader header = Header(1);
    absl::StatusOr<std::string> frame = EncodeResponse(
        header, FillBody<ResponseBody>(header.api_key, &source, header.api_version));
    ASSERT_TRUE(frame.ok());
    const absl::string_view body = absl::string_view(*frame).substr(4);
    for (size_t length = 0; length < body.size(); ++length) {
      absl::StatusOr<Response> decoded =
          DecodeResponse(body.substr(0, length), header.api_key, header.api_version);
      if (decoded.ok()) {
        // The one exception: an ApiVersions v1+ answer cut right before throttle_time_ms is the
        // v0 layout, accepted when it says UNSUPPORTED_VERSION.
        EXPECT_EQ(header.api_key, ApiKey::kApiVersions);
        EXPECT_EQ(length, body.size() - 4);
        EXPECT_EQ(std::get<ApiVersionsResponse>(decoded->body).error_code, 35);
      }
    }
    if (header.api_key == ApiKey::kApiVersions && header.api_version > 0) {
      ApiVersionsResponse unsupported = MakeApiVersionsResponse(ErrorCode::kUnsupportedVersion);
      absl::StatusOr<std::string> v0 =
          EncodeResponse({.api_key = ApiKey::kApiVersions, .api_version = 0}, unsupported);
      absl::StatusOr<Response> decoded = DecodeResponse(absl::string_view(*v0).substr(4),
                                                        ApiKey::kApiVersions, header.api_version);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      ApiVersionsResponse no_error = MakeApiVersionsResponse(ErrorCode::kNone);
      v0 = EncodeResponse({.api_key = ApiKey::kApiVersions, .api_version = 0}, no_error);
      EXPECT_FALSE(DecodeResponse(absl::string_view(*v0).substr(4), ApiKey::kApiVersions,
                                  header.api_version)
                       .ok());
    }
  }
}

// Damaged requests: flipped, inserted and deleted bytes. Decoding must not crash (the sanitizer
// build checks memory safety too), and whatever decodes must re-encode and decode to itself.
TEST_P(EveryVersionTest, DamagedRequestsNeverCrash) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SeededSource source(seed);
    const RequestHeader header = Header(1);
    absl::StatusOr<std::string> frame =
        EncodeRequest(header, FillBody<RequestBody>(header.api_key, &source, header.api_version));
    ASSERT_TRUE(frame.ok());
    std::string damaged = frame->substr(4);
    const uint64_t edits = 1 + source.Below(4);
    for (uint64_t edit = 0; edit < edits && !damaged.empty(); ++edit) {
      const size_t at = source.Below(damaged.size());
      switch (source.Below(3)) {
        case 0:
          damaged[at] = static_cast<char>(source.Next());
          break;
        case 1:
          damaged.insert(at, 1, static_cast<char>(source.Next()));
          break;
        default:
          damaged.erase(at, 1);
      }
    }
    absl::StatusOr<Request> decoded = DecodeRequest(damaged);
    if (!decoded.ok() || decoded->api_versions_unsupported) continue;
    absl::StatusOr<std::string> again = EncodeRequest(decoded->header, decoded->body);
    ASSERT_TRUE(again.ok()) << again.status();
    absl::StatusOr<Request> redecoded = DecodeRequest(absl::string_view(*again).substr(4));
    ASSERT_TRUE(redecoded.ok());
    EXPECT_TRUE(redecoded->body == decoded->body);
    (void)RequestToString(*decoded);
  }
}

INSTANTIATE_TEST_SUITE_P(AllApis, EveryVersionTest, ::testing::ValuesIn(AllApiVersions()),
                         ApiVersionName);

// rapidcheck draws the values (and shrinks a failure to a small message).
struct RapidcheckSource {
  uint64_t Below(uint64_t bound) { return *rc::gen::inRange<uint64_t>(0, bound); }
  uint64_t Next() { return *rc::gen::arbitrary<uint64_t>(); }
  template <typename T>
  T Int() {
    return *rc::gen::arbitrary<T>();
  }
  std::string String(size_t bytes_max) {
    const size_t length = *rc::gen::inRange<size_t>(0, bytes_max + 1);
    return *rc::gen::container<std::string>(length, rc::gen::arbitrary<char>());
  }
};

TEST(RoundTripPropertyTest, EveryMessageAtEveryVersion) {
  const std::vector<ApiVersion> all = AllApiVersions();
  const bool passed = rc::check("requests and responses round-trip", [&all] {
    const ApiVersion pick = all[*rc::gen::inRange<size_t>(0, all.size())];
    RapidcheckSource source;
    RequestHeader header{.api_key = pick.api_key,
                               .api_version = pick.version,
                               .correlation_id = *rc::gen::arbitrary<int32_t>(),
                               .client_id = std::nullopt};
    if (*rc::gen::arbitrary<bool>()) header.client_id = source.String(40);
    const RequestBody request = FillBody<RequestBody>(pick.api_key, &source, pick.version);
    absl::StatusOr<std::string> frame = EncodeRequest(header, request);
    RC_ASSERT(frame.ok());
    absl::StatusOr<Request> decoded = DecodeRequest(absl::string_view(*frame).substr(4));
    RC_ASSERT(decoded.ok());
    RC_ASSERT(decoded->header == header);
    RC_ASSERT(decoded->body == request);

    const ResponseBody response = FillBody<ResponseBody>(pick.api_key, &source, pick.version);
    absl::StatusOr<std::string> response_frame = EncodeResponse(header, response);
    RC_ASSERT(response_frame.ok());
    absl::StatusOr<Response> response_decoded = DecodeResponse(
        absl::string_view(*response_frame).substr(4), pick.api_key, pick.version);
    RC_ASSERT(response_decoded.ok());
    RC_ASSERT(response_decoded->body == response);
  });
  EXPECT_TRUE(passed);
}

// --- Hostile and malformed input ---

TEST(HostileInputTest, HugeCountsFailBeforeAllocating) {
  // topic_data claims 2^31-1 topics with nothing after it.
  const std::string top = Wire().Header(0, 3, 1, "c").NullStr().I16(1).I32(0).Count(0x7fffffff).bytes();
  absl::StatusOr<Request> decoded = DecodeRequest(top);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(decoded.status().message(),
                                "ProduceRequest v3: topic_data count 2147483647 needs at least"))
      << decoded.status();

  // A nested count, named by its path.
  const std::string nested = Wire()
                                 .Header(0, 3, 1, "c")
                                 .NullStr()
                                 .I16(1)
                                 .I32(0)
                                 .Count(1)
                                 .Str("t")
                                 .Count(0x10000000)
                                 .I32(0)
                                 .bytes();
  decoded = DecodeRequest(nested);
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "topic_data[0].partition_data count"))
      << decoded.status();

  // Metadata v1's topics: each element needs at least 2 bytes (an empty name).
  decoded = DecodeRequest(Wire().Header(3, 1, 1, "c").Count(3).I16(0).I16(0).bytes());
  EXPECT_FALSE(decoded.ok());
  decoded = DecodeRequest(Wire().Header(3, 1, 1, "c").Count(3).I16(0).I16(0).I16(0).bytes());
  EXPECT_TRUE(decoded.ok()) << decoded.status();

  // A primitive array (replica nodes) in a response.
  absl::StatusOr<Response> response = DecodeResponse(
      Wire().I32(1).Count(0).Count(1).I16(0).Str("t").Count(1).I16(0).I32(0).I32(1).Count(1000).I32(1).bytes(),
      ApiKey::kMetadata, 0);
  EXPECT_TRUE(absl::StrContains(response.status().message(),
                                "topics[0].partitions[0].replica_nodes count 1000"))
      << response.status();
}

TEST(HostileInputTest, LengthsBeyondTheInputFail) {
  // A records length of 2^31-1 with 3 bytes present.
  std::string bytes = Wire()
                          .Header(0, 3, 1, "c")
                          .NullStr()
                          .I16(1)
                          .I32(0)
                          .Count(1)
                          .Str("t")
                          .Count(1)
                          .I32(0)
                          .I32(0x7fffffff)
                          .Raw("abc")
                          .bytes();
  absl::StatusOr<Request> decoded = DecodeRequest(bytes);
  EXPECT_TRUE(absl::StrContains(decoded.status().message(),
                                "topic_data[0].partition_data[0].records length 2147483647 exceeds "
                                "the 3 bytes left"))
      << decoded.status();
  // A string of 32767 bytes with 1 present, a negative string length, a negative count.
  decoded = DecodeRequest(Wire().Header(3, 1, 1, "c").Count(1).I16(0x7fff).Raw("x").bytes());
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "topics[0].name length 32767"))
      << decoded.status();
  decoded = DecodeRequest(Wire().Header(3, 1, 1, "c").Count(1).I16(-2).bytes());
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "negative length -2"))
      << decoded.status();
  decoded = DecodeRequest(Wire().Header(3, 1, 1, "c").Count(-5).bytes());
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "negative count -5"))
      << decoded.status();
  // A null string where the schema has no null.
  decoded = DecodeRequest(Wire().Header(3, 1, 1, "c").Count(1).NullStr().bytes());
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "topics[0].name is null"))
      << decoded.status();
}

TEST(HostileInputTest, UnknownApisAndVersions) {
  EXPECT_EQ(DecodeRequest("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRequest("\x00\x03\x00").status().code(), absl::StatusCode::kInvalidArgument);
  // ControlledShutdown (7) and SaslHandshake (17) are not supported; nor are negative keys.
  EXPECT_EQ(DecodeRequest(Wire().Header(7, 1, 1, "c").bytes()).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(DecodeRequest(Wire().Header(17, 1, 1, "c").bytes()).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(DecodeRequest(Wire().Header(-1, 1, 1, "c").bytes()).status().code(),
            absl::StatusCode::kUnimplemented);
  // Produce v2 (message sets v0/v1) and v9 (flexible) are outside the range.
  absl::StatusOr<Request> decoded = DecodeRequest(Wire().Header(0, 2, 1, "c").bytes());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "Produce v2 request")) << decoded.status();
  EXPECT_EQ(DecodeRequest(Wire().Header(0, 9, 1, "c").bytes()).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(DecodeRequest(Wire().Header(1, 12, 1, "c").bytes()).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(TrailingBytesTest, IgnoredInRequestsRejectedInResponses) {
  absl::StatusOr<Request> decoded =
      DecodeRequest(Wire().Header(18, 1, 1, "c").Raw("xyz").bytes());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->trailing_bytes, 3u);
  absl::StatusOr<Response> response =
      DecodeResponse(Wire().I32(1).I32(0).I16(0).Raw("z").bytes(), ApiKey::kHeartbeat, 1);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(response.status().message(), "1 bytes follow the body"))
      << response.status();
  EXPECT_TRUE(DecodeResponse(Wire().I32(1).I32(0).I16(0).bytes(), ApiKey::kHeartbeat, 1).ok());
}

TEST(BoolTest, AnyNonZeroByteIsTrue) {
  // Metadata v8: allow_auto_topic_creation 0, include_cluster_authorized_operations 0x7f,
  // include_topic_authorized_operations 2.
  absl::StatusOr<Request> decoded =
      DecodeRequest(Wire().Header(3, 8, 1, "c").Count(0).I8(0).I8(0x7f).I8(2).bytes());
  ASSERT_TRUE(decoded.ok());
  const auto& request = std::get<MetadataRequest>(decoded->body);
  EXPECT_FALSE(request.allow_auto_topic_creation);
  EXPECT_TRUE(request.include_cluster_authorized_operations);
  EXPECT_TRUE(request.include_topic_authorized_operations);
}

// --- Encoding errors ---

TEST(EncodeTest, RefusesWhatTheWireCannotCarry) {
  const RequestHeader produce{.api_key = ApiKey::kProduce, .api_version = 3, .correlation_id = 1};
  ProduceRequest request;
  request.topic_data.push_back({.name = std::string(40000, 'n')});
  absl::StatusOr<std::string> frame = EncodeRequest(produce, request);
  EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(frame.status().message(), "topic_data[0].name is 40000 bytes"))
      << frame.status();

  // The body must be the request's api, at a supported version.
  EXPECT_FALSE(EncodeRequest(produce, FetchRequest{}).ok());
  EXPECT_FALSE(EncodeResponse(produce, FetchResponse{}).ok());
  const RequestHeader produce_v2{.api_key = ApiKey::kProduce, .api_version = 2};
  EXPECT_FALSE(EncodeRequest(produce_v2, ProduceRequest{}).ok());
  EXPECT_FALSE(EncodeResponse(produce_v2, ProduceResponse{}).ok());
  // Our client does not send flexible versions, ApiVersions v3 included.
  const RequestHeader api_versions_v3{.api_key = ApiKey::kApiVersions, .api_version = 3};
  EXPECT_FALSE(EncodeRequest(api_versions_v3, ApiVersionsRequest{}).ok());

  // Null where the version has none: OffsetFetch v1's topics.
  const RequestHeader offset_fetch{.api_key = ApiKey::kOffsetFetch, .api_version = 1};
  EXPECT_FALSE(EncodeRequest(offset_fetch, OffsetFetchRequest{.group_id = "g"}).ok());
  const RequestHeader offset_fetch_v2{.api_key = ApiKey::kOffsetFetch, .api_version = 2};
  EXPECT_TRUE(EncodeRequest(offset_fetch_v2, OffsetFetchRequest{.group_id = "g"}).ok());
}

TEST(EncodeTest, FieldsOutsideTheVersionAreDropped) {
  // log_start_offset exists from v5: at v3 it is not written, and decodes as its default.
  const RequestHeader header{.api_key = ApiKey::kProduce, .api_version = 3, .correlation_id = 1};
  ProduceResponse response;
  response.responses.push_back(
      {.name = "t", .partition_responses = {{.index = 0, .base_offset = 5, .log_start_offset = 3}}});
  absl::StatusOr<std::string> frame = EncodeResponse(header, response);
  ASSERT_TRUE(frame.ok());
  absl::StatusOr<Response> decoded =
      DecodeResponse(absl::string_view(*frame).substr(4), ApiKey::kProduce, 3);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::get<ProduceResponse>(decoded->body).responses[0].partition_responses[0]
                .log_start_offset,
            -1);
}

// --- Printing ---

TEST(PrinterTest, PrintsFieldsOfTheVersion) {
  ProduceRequest request{.transactional_id = std::nullopt, .acks = -1, .timeout_ms = 30000};
  request.topic_data.push_back(
      {.name = "or\"ders", .partition_data = {{0, std::string(68, 'r')}, {1, std::nullopt}}});
  EXPECT_EQ(MessageToString(request, 3),
            "ProduceRequest v3 {transactional_id=null acks=-1 timeout_ms=30000 "
            "topic_data=[{name=\"or\\\"ders\" partition_data=[{index=0 records=<68 bytes>}, "
            "{index=1 records=null}]}]}");
  MetadataResponse::Partition partition{.replica_nodes = {1, 2}};
  MetadataResponse response;
  response.topics.push_back({.name = "t", .partitions = {partition}});
  EXPECT_EQ(MessageToString(response, 0),
            "MetadataResponse v0 {brokers=[] topics=[{error_code=0 name=\"t\" "
            "partitions=[{error_code=0 partition_index=0 leader_id=0 replica_nodes=[1, 2] "
            "isr_nodes=[]}]}]}");
  const Request whole{.header = {.api_key = ApiKey::kMetadata,
                                 .api_version = 1,
                                 .correlation_id = 5,
                                 .client_id = "app"},
                      .body = MetadataRequest{}};
  EXPECT_EQ(RequestToString(whole),
            "MetadataRequest v1 correlation_id=5 client_id=\"app\" {topics=null}");
}

// --- Depth limit ---

TEST(FieldPathTest, RefusesToNestBeyondTheLimit) {
  FieldPath path;
  for (size_t depth = 0; depth < kSchemaDepthMax; ++depth) {
    ASSERT_TRUE(path.Push("a"));
    path.SetIndex(depth);
  }
  EXPECT_FALSE(path.Push("a"));
  EXPECT_EQ(path.Describe("f"), "a[0].a[1].a[2].a[3].a[4].a[5].a[6].a[7].f");
}

// Decoded memory per input byte: an array of n elements is reserved only when the input holds
// n * ElementBytesMin bytes, so the worst case is the largest sizeof(element) / ElementBytesMin
// over every array of every message and version (a std::string element is 32 bytes in memory and
// 2 on the wire). docs/protocol.md quotes this bound.
constexpr size_t kDecodedBytesPerInputByteMax = 24;

class AmplificationVisitor {
 public:
  explicit AmplificationVisitor(int16_t version) : version_(version) {}
  size_t worst() const { return worst_; }

  template <typename T>
  void Int8(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void Int16(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void Int32(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void Int64(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void Bool(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void String(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void NullableString(const char*, const T&, Versions = kAllVersions, Versions = kAllVersions) {}
  template <typename T>
  void Bytes(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void NullableBytes(const char*, const T&, Versions = kAllVersions, Versions = kAllVersions) {}
  template <typename T>
  void Records(const char*, const T&, Versions = kAllVersions) {}
  template <typename T>
  void Array(const char*, const std::vector<T>&, Versions versions = kAllVersions) {
    if (versions.Contains(version_)) Element<T>();
  }
  template <typename T>
  void NullableArray(const char*, const std::optional<std::vector<T>>&,
                     Versions versions = kAllVersions, Versions = kAllVersions) {
    if (versions.Contains(version_)) Element<T>();
  }

 private:
  template <typename T>
  void Element() {
    worst_ = std::max(worst_, (sizeof(T) + ElementBytesMin<T>(version_) - 1) /
                                  ElementBytesMin<T>(version_));
    if constexpr (!kIsPrimitiveElement<T>) {
      const T element{};
      T::Fields(element, *this);
    }
  }
  int16_t version_;
  size_t worst_ = 0;
};

TEST(DecodeBoundsTest, DecodedMemoryPerInputByteIsBounded) {
  size_t worst = 0;
  for (const ApiVersion& pick : AllApiVersions()) {
    SeededSource source(1);
    const RequestBody request = FillBody<RequestBody>(pick.api_key, &source, pick.version);
    const ResponseBody response = FillBody<ResponseBody>(pick.api_key, &source, pick.version);
    auto measure = [&](const auto& message) {
      AmplificationVisitor visitor(pick.version);
      std::decay_t<decltype(message)>::Fields(message, visitor);
      worst = std::max(worst, visitor.worst());
    };
    std::visit(measure, request);
    std::visit(measure, response);
  }
  EXPECT_LE(worst, kDecodedBytesPerInputByteMax);
  EXPECT_GE(worst, 16u);  // An array of strings, at least.
}

// --- Error codes and the api table ---

TEST(ErrorCodeTest, NumbersNamesAndRetriability) {
  EXPECT_EQ(ToWire(ErrorCode::kNone), 0);
  EXPECT_EQ(ToWire(ErrorCode::kUnknownServerError), -1);
  EXPECT_EQ(ToWire(ErrorCode::kNotLeaderOrFollower), 6);
  EXPECT_EQ(ToWire(ErrorCode::kUnsupportedVersion), 35);
  EXPECT_EQ(ToWire(ErrorCode::kInvalidConfig), 40);
  EXPECT_EQ(ToWire(ErrorCode::kUnknownProducerId), 59);
  EXPECT_EQ(ToWire(ErrorCode::kMemberIdRequired), 79);
  EXPECT_EQ(ToWire(ErrorCode::kUnstableOffsetCommit), 88);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotLeaderOrFollower), "NOT_LEADER_OR_FOLLOWER");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInvalidTopicException), "INVALID_TOPIC_EXCEPTION");
  EXPECT_EQ(ErrorCodeNameFromWire(27), "REBALANCE_IN_PROGRESS");
  EXPECT_EQ(ErrorCodeNameFromWire(1000), "UNKNOWN_ERROR_CODE(1000)");
  EXPECT_EQ(ErrorCodeFromWire(-2), std::nullopt);
  EXPECT_EQ(ErrorCodeFromWire(56), ErrorCode::kKafkaStorageError);
  EXPECT_TRUE(IsRetriable(ErrorCode::kNotLeaderOrFollower));
  EXPECT_TRUE(IsRetriable(ErrorCode::kNotEnoughReplicas));
  EXPECT_TRUE(IsRetriable(ErrorCode::kCoordinatorLoadInProgress));
  EXPECT_TRUE(IsRetriable(ErrorCode::kRequestTimedOut));
  EXPECT_FALSE(IsRetriable(ErrorCode::kNone));
  EXPECT_FALSE(IsRetriable(ErrorCode::kTopicAlreadyExists));
  EXPECT_FALSE(IsRetriable(ErrorCode::kOutOfOrderSequenceNumber));
  // Every wire number from -1 to 98 is known and maps back to itself.
  for (int number = -1; number <= 98; ++number) {
    const std::optional<ErrorCode> code = ErrorCodeFromWire(static_cast<int16_t>(number));
    ASSERT_TRUE(code.has_value()) << number;
    EXPECT_EQ(ToWire(*code), number);
  }
}

TEST(ApiTableTest, AdvertisedRangesAreTheExpectedOnes) {
  ASSERT_EQ(kSupportedApis.size(), kExpectedRanges.size());
  for (size_t i = 0; i < kSupportedApis.size(); ++i) {
    const auto& [key, min, max] = kExpectedRanges[i];
    EXPECT_EQ(static_cast<int>(kSupportedApis[i].api_key), key);
    EXPECT_EQ(kSupportedApis[i].version_min, min);
    EXPECT_EQ(kSupportedApis[i].version_max, max);
  }
  EXPECT_TRUE(IsVersionSupported(ApiKey::kFetch, 11));
  EXPECT_FALSE(IsVersionSupported(ApiKey::kFetch, 3));
  EXPECT_EQ(ApiName(ApiKey::kDescribeConfigs), "DescribeConfigs");
  EXPECT_EQ(ApiName(static_cast<ApiKey>(99)), "Unknown");
  EXPECT_EQ(RequestHeaderVersion(ApiKey::kApiVersions, 3), 2);
  EXPECT_EQ(RequestHeaderVersion(ApiKey::kApiVersions, 2), 1);
  EXPECT_EQ(RequestHeaderVersion(ApiKey::kProduce, 8), 1);
}

// --- The fuzzer's seed corpus ---

TEST(SeedCorpusTest, CommittedCorpusIsCurrentAndDecodes) {
  const std::filesystem::path directory =
      std::filesystem::path(RUNNEL_SOURCE_DIR) / "fuzz" / "corpus" / "request_decode";
  std::map<std::string, std::string> committed;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    std::ifstream file(entry.path(), std::ios::binary);
    std::stringstream contents;
    contents << file.rdbuf();
    committed[entry.path().filename().string()] = contents.str();
  }
  const std::vector<testing::CorpusFile> corpus = testing::RequestCorpus();
  EXPECT_EQ(committed.size(), corpus.size())
      << "regenerate with: <build>/tests/make_request_corpus fuzz/corpus/request_decode";
  for (const testing::CorpusFile& file : corpus) {
    EXPECT_EQ(committed[file.name], file.bytes)
        << file.name << " is stale; regenerate with: <build>/tests/make_request_corpus "
        << "fuzz/corpus/request_decode";
    absl::StatusOr<Request> decoded = DecodeRequest(file.bytes);
    EXPECT_TRUE(decoded.ok()) << file.name << ": " << decoded.status();
  }
}

}  // namespace
}  // namespace runnel::protocol
