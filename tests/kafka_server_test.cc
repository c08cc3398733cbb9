// Tests of the single-node Kafka broker (broker/server/kafka_server.h and its handlers), run in the
// simulator: one node runs a BrokerNode over its SimEnv, another node runs a tiny Kafka client
// that speaks through the codec (EncodeRequest / DecodeResponse) over the simulated network, with
// its latencies and split deliveries. Each test says what it checks and how.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/env/env.h"
#include "broker/protocol/codec.h"
#include "broker/server/api_versions_handler.h"
#include "broker/server/broker_node.h"
#include "broker/server/broker_settings.h"
#include "broker/server/producer_id_allocator.h"
#include "broker/server/producer_state.h"
#include "broker/storage/record_batch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/simulator.h"
#include "tests/server_test_world.h"

namespace runnel::server {
namespace {

using protocol::ApiKey;
using protocol::ErrorCode;
using protocol::RequestBody;
using protocol::ToWire;
using ::testing::HasSubstr;

// --- Requests --------------------------------------------------------------------------------

// A batch of records "<prefix>-<i>" with keys "k<i>" and a header on every record.
std::string MakeBatch(int count, absl::string_view prefix, int64_t base_timestamp_ms = 1'000'000,
                      storage::BatchBuildOptions options = {}) {
  std::vector<storage::Record> records;
  for (int i = 0; i < count; ++i) {
    storage::Record record;
    record.offset_delta = i;
    record.timestamp_delta = i;
    record.key = absl::StrCat("k", i);
    record.value = absl::StrCat(prefix, "-", i);
    record.headers.push_back(storage::RecordHeader{"h", std::string("v")});
    records.push_back(std::move(record));
  }
  options.base_timestamp = base_timestamp_ms;
  absl::StatusOr<std::string> batch = storage::BuildBatch(options, records);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return batch.ok() ? *batch : std::string();
}

// A batch as the log stores it: offset and leader epoch stamped.
std::string Stored(std::string batch, int64_t base_offset, int32_t leader_epoch = 0) {
  storage::SetBaseOffset(batch.data(), base_offset);
  storage::SetPartitionLeaderEpoch(batch.data(), leader_epoch);
  return batch;
}

// The values of every record in `batches`, by offset.
std::map<int64_t, std::string> RecordValues(absl::string_view batches) {
  std::map<int64_t, std::string> values;
  absl::StatusOr<std::vector<absl::string_view>> split = storage::SplitBatches(batches);
  EXPECT_TRUE(split.ok());
  if (!split.ok()) return values;
  for (absl::string_view batch : *split) {
    absl::StatusOr<storage::BatchHeader> header = storage::ParseBatchHeader(batch);
    absl::StatusOr<std::vector<storage::Record>> records = storage::DecodeRecords(batch);
    EXPECT_TRUE(records.ok());
    if (!records.ok()) continue;
    for (const storage::Record& record : *records) {
      values[header->base_offset + record.offset_delta] = record.value.value_or("");
    }
  }
  return values;
}

protocol::ProduceRequest Produce(const std::string& topic, int32_t partition, std::string batch,
                                 int16_t acks = -1, int32_t timeout_ms = 30'000) {
  protocol::ProduceRequest request;
  request.acks = acks;
  request.timeout_ms = timeout_ms;
  auto& topic_data = request.topic_data.emplace_back();
  topic_data.name = topic;
  topic_data.partition_data.push_back({.index = partition, .records = std::move(batch)});
  return request;
}

protocol::FetchRequest Fetch(const std::string& topic, int32_t partition, int64_t offset,
                             int32_t max_wait_ms = 0, int32_t min_bytes = 0,
                             int32_t partition_max_bytes = 1 << 20,
                             int32_t max_bytes = 50 << 20) {
  protocol::FetchRequest request;
  request.max_wait_ms = max_wait_ms;
  request.min_bytes = min_bytes;
  request.max_bytes = max_bytes;
  auto& topic_data = request.topics.emplace_back();
  topic_data.topic = topic;
  topic_data.partitions.push_back(
      {.partition = partition, .fetch_offset = offset, .partition_max_bytes = partition_max_bytes});
  return request;
}

protocol::ListOffsetsRequest ListOffsets(const std::string& topic, int32_t partition,
                                         int64_t timestamp) {
  protocol::ListOffsetsRequest request;
  auto& topic_data = request.topics.emplace_back();
  topic_data.name = topic;
  topic_data.partitions.push_back({.partition_index = partition, .timestamp = timestamp});
  return request;
}

protocol::MetadataRequest MetadataFor(std::vector<std::string> names, bool allow_create = true) {
  protocol::MetadataRequest request;
  request.topics.emplace();
  for (std::string& name : names) request.topics->push_back({std::move(name)});
  request.allow_auto_topic_creation = allow_create;
  return request;
}

class KafkaServerTest : public ::testing::Test {
 protected:
  void Start() { ASSERT_NO_FATAL_FAILURE(world_.Start()); }
  World world_;
};

// --- ApiVersions ----------------------------------------------------------------------------

// ApiVersions v0-v2 answer NONE with exactly the handled APIs (every api of the codec, the group
// APIs included), each with the codec's version range.
TEST_F(KafkaServerTest, ApiVersionsAdvertisesHandledApisOnly) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  for (int16_t version = 0; version <= 2; ++version) {
    auto response =
        world_.Call<protocol::ApiVersionsResponse>(*client, protocol::ApiVersionsRequest{}, version);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->error_code, 0);
    std::vector<int16_t> keys;
    for (const auto& api : response->api_keys) {
      keys.push_back(api.api_key);
      const protocol::SupportedApi* supported = protocol::FindSupportedApi(api.api_key);
      ASSERT_NE(supported, nullptr);
      EXPECT_EQ(api.min_version, supported->version_min);
      EXPECT_EQ(api.max_version, supported->version_max);
    }
    EXPECT_THAT(keys, ::testing::ElementsAre(0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19,
                                             20, 22, 32));
  }
}

// librdkafka's opening ApiVersions v3 (a flexible request, built here by hand) is answered with
// UNSUPPORTED_VERSION (35) in the v0 layout, still listing the supported ranges; the connection
// stays open and a v2 request afterwards works.
TEST_F(KafkaServerTest, ApiVersionsV3AnswersUnsupportedVersionWithRanges) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  std::string frame(4, '\0');
  AppendBigEndian<int16_t>(frame, 18);   // api key
  AppendBigEndian<int16_t>(frame, 3);    // version
  AppendBigEndian<int32_t>(frame, 777);  // correlation id
  AppendBigEndian<int16_t>(frame, 7);
  frame += "rdkafka";
  frame += '\0';    // header tagged fields
  frame += '\x0b';  // compact string: length + 1
  frame += "librdkafka";
  frame += '\x06';
  frame += "2.0.2";
  frame += '\0';  // body tagged fields
  StoreBigEndian<int32_t>(frame.data(), static_cast<int32_t>(frame.size() - 4));
  client->Expect(777, ApiKey::kApiVersions, 0);
  client->SendRaw(frame);
  world_.RunUntil([&] { return client->Has(777) || client->closed(); });
  ASSERT_TRUE(client->Has(777)) << client->protocol_error();
  auto response = std::get<protocol::ApiVersionsResponse>(client->Take(777).body);
  EXPECT_EQ(response.error_code, Wire(ErrorCode::kUnsupportedVersion));
  EXPECT_EQ(response.api_keys.size(), kHandledApis.size());
  auto again =
      world_.Call<protocol::ApiVersionsResponse>(*client, protocol::ApiVersionsRequest{}, 2);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->error_code, 0);
}

// --- Produce and fetch ------------------------------------------------------------------------

// Batches produced (acks=1 and acks=-1, several versions) come back from Fetch byte for byte as
// stored: the producer's bytes with only the base offset and leader epoch stamped.
TEST_F(KafkaServerTest, ProduceFetchRoundTripPreservesBatches) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "orders", 2);
  std::vector<std::string> batches = {MakeBatch(3, "a"), MakeBatch(1, "b"), MakeBatch(5, "c")};
  std::string expected;
  int64_t offset = 0;
  const int16_t versions[] = {3, 7, 8};
  for (size_t i = 0; i < batches.size(); ++i) {
    auto response = world_.Call<protocol::ProduceResponse>(
        *client, Produce("orders", 1, batches[i], i == 0 ? 1 : -1), versions[i]);
    ASSERT_TRUE(response.has_value());
    const auto& partition = response->responses.at(0).partition_responses.at(0);
    EXPECT_EQ(partition.error_code, 0) << partition.error_message.value_or("");
    EXPECT_EQ(partition.base_offset, offset);
    EXPECT_EQ(partition.log_append_time_ms, -1);
    expected += Stored(batches[i], offset);
    offset += storage::ParseBatchHeader(batches[i])->record_count;
  }
  // acks=1 records become visible once the next sync makes them durable.
  world_.RunFor(100'000);
  for (int16_t version : {4, 7, 11}) {
    auto fetched =
        world_.Call<protocol::FetchResponse>(*client, Fetch("orders", 1, 0), version);
    ASSERT_TRUE(fetched.has_value());
    const auto& partition = fetched->responses.at(0).partitions.at(0);
    EXPECT_EQ(partition.error_code, 0);
    EXPECT_EQ(partition.high_watermark, offset);
    EXPECT_EQ(partition.last_stable_offset, offset);
    EXPECT_FALSE(partition.aborted_transactions.has_value());
    EXPECT_EQ(partition.records.value_or(""), expected) << "version " << version;
    if (version >= 5) {
      EXPECT_EQ(partition.log_start_offset, 0);
    }
    if (version >= 7) {
      EXPECT_EQ(fetched->session_id, 0);
    }
    EXPECT_EQ(partition.preferred_read_replica, -1);
  }
  // From the middle of the second batch: whole batches from the one holding the offset.
  auto middle = world_.Call<protocol::FetchResponse>(*client, Fetch("orders", 1, 4), 11);
  ASSERT_TRUE(middle.has_value());
  EXPECT_EQ(middle->responses[0].partitions[0].records.value_or(""),
            Stored(batches[2], 4));
  // read_committed behaves alike but answers an empty (not null) aborted list.
  protocol::FetchRequest committed = Fetch("orders", 1, 0);
  committed.isolation_level = 1;
  auto committed_response = world_.Call<protocol::FetchResponse>(*client, committed, 11);
  ASSERT_TRUE(committed_response.has_value());
  ASSERT_TRUE(committed_response->responses[0].partitions[0].aborted_transactions.has_value());
  EXPECT_EQ(committed_response->responses[0].partitions[0].records.value_or(""), expected);
}

// Pipelined requests are answered strictly in request order even when the first, an acks=-1
// produce, waits for a disk sync while the later ones (metadata, acks=1 produce, ApiVersions,
// fetch) are ready at once.
TEST_F(KafkaServerTest, PipelinedResponsesComeBackInRequestOrder) {
  Start();
  std::unique_ptr<TestClient> admin = world_.Connect();
  world_.CreateTopic(*admin, "pipe");
  std::unique_ptr<TestClient> client = world_.Connect();
  std::vector<int32_t> sent;
  sent.push_back(client->Send(Produce("pipe", 0, MakeBatch(2, "x"), -1), 7));
  sent.push_back(client->Send(MetadataFor({"pipe"}), 5));
  sent.push_back(client->Send(Produce("pipe", 0, MakeBatch(2, "y"), 1), 7));
  sent.push_back(client->Send(protocol::ApiVersionsRequest{}, 2));
  sent.push_back(client->Send(Fetch("pipe", 0, 0), 11));
  sent.push_back(client->Send(Produce("pipe", 0, MakeBatch(2, "z"), -1), 8));
  sent.push_back(client->Send(ListOffsets("pipe", 0, -1), 5));
  world_.RunUntil([&] { return client->response_count() == sent.size() || client->closed(); });
  EXPECT_EQ(client->arrival_order(), sent);
  EXPECT_TRUE(client->protocol_error().empty()) << client->protocol_error();
}

// acks=0 gets no response (and takes no place in the order); the records are appended; a failed
// acks=0 produce closes the connection, as Kafka does.
TEST_F(KafkaServerTest, AcksZeroGetsNoResponse) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "fire");
  client->Send(Produce("fire", 0, MakeBatch(3, "f"), 0), 7, /*expect_response=*/false);
  auto metadata = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"fire"}), 1);
  ASSERT_TRUE(metadata.has_value());
  EXPECT_TRUE(client->protocol_error().empty()) << client->protocol_error();
  world_.RunFor(50'000);
  auto fetched = world_.Call<protocol::FetchResponse>(*client, Fetch("fire", 0, 0), 11);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(RecordValues(fetched->responses[0].partitions[0].records.value_or("")).size(), 3u);
  // A failure under acks=0: an unknown partition.
  client->Send(Produce("fire", 9, MakeBatch(1, "f"), 0), 7, /*expect_response=*/false);
  world_.RunUntil([&] { return client->closed(); });
  EXPECT_TRUE(client->closed());
  EXPECT_TRUE(world_.Connect()->connected());
}

// Produce errors: invalid acks, two batches in one partition's records, a corrupted CRC, a batch
// above max.message.bytes, a truncated batch, old message formats, transactional produce.
TEST_F(KafkaServerTest, ProduceRejectsBadRequestsWithKafkaErrors) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "strict", 1, {{"max.message.bytes", "2000"}});
  auto produce = [&](protocol::ProduceRequest request) {
    auto response = world_.Call<protocol::ProduceResponse>(*client, request, 8);
    EXPECT_TRUE(response.has_value());
    return response.has_value() ? response->responses.at(0).partition_responses.at(0)
                                : protocol::ProduceResponse::Partition{};
  };
  EXPECT_EQ(produce(Produce("strict", 0, MakeBatch(1, "a"), 2)).error_code,
            Wire(ErrorCode::kInvalidRequiredAcks));
  EXPECT_EQ(produce(Produce("strict", 0, MakeBatch(1, "a") + MakeBatch(1, "b"))).error_code,
            Wire(ErrorCode::kInvalidRecord));
  std::string corrupt = MakeBatch(2, "c");
  corrupt.back() ^= 0x01;
  EXPECT_EQ(produce(Produce("strict", 0, corrupt)).error_code, Wire(ErrorCode::kCorruptMessage));
  EXPECT_EQ(produce(Produce("strict", 0, MakeBatch(200, std::string(20, 'x')))).error_code,
            Wire(ErrorCode::kMessageTooLarge));
  std::string truncated = MakeBatch(2, "t");
  truncated.resize(truncated.size() - 3);
  EXPECT_EQ(produce(Produce("strict", 0, truncated)).error_code, Wire(ErrorCode::kCorruptMessage));
  std::string old_format = MakeBatch(1, "o");
  old_format[storage::kMagicOffset] = 1;
  EXPECT_EQ(produce(Produce("strict", 0, old_format)).error_code, Wire(ErrorCode::kInvalidRecord));
  EXPECT_EQ(produce(Produce("strict", 0, "")).error_code, Wire(ErrorCode::kInvalidRecord));
  protocol::ProduceRequest transactional = Produce("strict", 0, MakeBatch(1, "tx"));
  transactional.transactional_id = "tx-1";
  EXPECT_EQ(produce(transactional).error_code,
            Wire(ErrorCode::kTransactionalIdAuthorizationFailed));
  EXPECT_EQ(produce(Produce("strict", 3, MakeBatch(1, "p"))).error_code,
            Wire(ErrorCode::kUnknownTopicOrPartition));
  // Nothing of it was appended.
  auto offsets = world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("strict", 0, -1), 5);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].offset, 0);
}

// message.timestamp.type=LogAppendTime: the produce answer carries the stamped time, and the
// stored batch says LogAppendTime.
TEST_F(KafkaServerTest, LogAppendTimeIsReported) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "stamped", 1, {{"message.timestamp.type", "LogAppendTime"}});
  auto response =
      world_.Call<protocol::ProduceResponse>(*client, Produce("stamped", 0, MakeBatch(2, "s")), 5);
  ASSERT_TRUE(response.has_value());
  const auto& partition = response->responses[0].partition_responses[0];
  EXPECT_EQ(partition.error_code, 0);
  EXPECT_GT(partition.log_append_time_ms, 0);
  EXPECT_EQ(partition.log_start_offset, 0);
  auto fetched = world_.Call<protocol::FetchResponse>(*client, Fetch("stamped", 0, 0), 11);
  ASSERT_TRUE(fetched.has_value());
  absl::StatusOr<storage::BatchHeader> header =
      storage::ParseBatchHeader(fetched->responses[0].partitions[0].records.value_or(""));
  ASSERT_TRUE(header.ok());
  EXPECT_TRUE(header->log_append_time());
  EXPECT_EQ(header->max_timestamp, partition.log_append_time_ms);
}

// --- Long poll -----------------------------------------------------------------------------

// A fetch at the end of the log with max_wait 5 s is parked and answered as soon as a produce on
// another connection makes data available, well before the timeout.
TEST_F(KafkaServerTest, LongPollFetchIsWokenByProduce) {
  Start();
  std::unique_ptr<TestClient> consumer = world_.Connect();
  std::unique_ptr<TestClient> producer = world_.Connect();
  world_.CreateTopic(*consumer, "poll");
  const int32_t fetch = consumer->Send(Fetch("poll", 0, 0, 5'000, 1), 11);
  world_.RunFor(200'000);
  EXPECT_FALSE(consumer->Has(fetch));
  EXPECT_EQ(world_.node().server().fetch_handler().parked_count(), 1u);
  const int64_t produced_at = world_.NowUs();
  auto produced =
      world_.Call<protocol::ProduceResponse>(*producer, Produce("poll", 0, MakeBatch(2, "p")), 7);
  ASSERT_TRUE(produced.has_value());
  world_.RunUntil([&] { return consumer->Has(fetch); });
  ASSERT_TRUE(consumer->Has(fetch));
  EXPECT_LT(world_.NowUs() - produced_at, 100'000);
  auto response = std::get<protocol::FetchResponse>(consumer->Take(fetch).body);
  EXPECT_EQ(RecordValues(response.responses[0].partitions[0].records.value_or("")).size(), 2u);
  EXPECT_EQ(world_.node().server().fetch_handler().parked_count(), 0u);
}

// With nothing produced, a parked fetch is answered empty at max_wait_ms, not before.
TEST_F(KafkaServerTest, LongPollFetchTimesOut) {
  Start();
  std::unique_ptr<TestClient> consumer = world_.Connect();
  world_.CreateTopic(*consumer, "quiet");
  const int64_t sent_at = world_.NowUs();
  auto response =
      world_.Call<protocol::FetchResponse>(*consumer, Fetch("quiet", 0, 0, 300, 1), 11);
  ASSERT_TRUE(response.has_value());
  EXPECT_GE(world_.NowUs() - sent_at, 300'000);
  EXPECT_LT(world_.NowUs() - sent_at, 400'000);
  EXPECT_EQ(response->responses[0].partitions[0].error_code, 0);
  EXPECT_TRUE(response->responses[0].partitions[0].records.value_or("").empty());
}

// min_bytes: one small batch is not enough, so the fetch stays parked; a second batch brings the
// available bytes over min_bytes and the fetch is answered with both.
TEST_F(KafkaServerTest, LongPollWaitsForMinBytes) {
  Start();
  std::unique_ptr<TestClient> consumer = world_.Connect();
  std::unique_ptr<TestClient> producer = world_.Connect();
  world_.CreateTopic(*consumer, "minbytes");
  const std::string first = MakeBatch(1, "one");
  const int32_t fetch = consumer->Send(
      Fetch("minbytes", 0, 0, 10'000, static_cast<int32_t>(first.size() + 10)), 11);
  ASSERT_TRUE(
      world_.Call<protocol::ProduceResponse>(*producer, Produce("minbytes", 0, first), 7));
  world_.RunFor(200'000);
  EXPECT_FALSE(consumer->Has(fetch));
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(*producer,
                                                     Produce("minbytes", 0, MakeBatch(1, "two")), 7));
  world_.RunUntil([&] { return consumer->Has(fetch); }, 1'000'000);
  ASSERT_TRUE(consumer->Has(fetch));
  auto response = std::get<protocol::FetchResponse>(consumer->Take(fetch).body);
  EXPECT_EQ(RecordValues(response.responses[0].partitions[0].records.value_or("")).size(), 2u);
}

// Limits: partition_max_bytes stops before a batch that does not fit, the response's max_bytes
// limits the partitions after the first, and a first batch larger than both limits is returned
// anyway so that a consumer makes progress.
TEST_F(KafkaServerTest, FetchRespectsByteLimits) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "limits", 2);
  std::vector<std::string> batches;
  for (int i = 0; i < 5; ++i) {
    batches.push_back(MakeBatch(10, absl::StrCat("b", i, std::string(50, 'x'))));
    for (int32_t partition : {0, 1}) {
      auto response = world_.Call<protocol::ProduceResponse>(
          *client, Produce("limits", partition, batches.back()), 7);
      ASSERT_TRUE(response.has_value());
    }
  }
  const int32_t batch_bytes = static_cast<int32_t>(batches[0].size());
  auto fetch_two = [&](int32_t partition_max_bytes, int32_t max_bytes) {
    protocol::FetchRequest request = Fetch("limits", 0, 0, 0, 0, partition_max_bytes, max_bytes);
    request.topics[0].partitions.push_back(
        {.partition = 1, .fetch_offset = 0, .partition_max_bytes = partition_max_bytes});
    auto response = world_.Call<protocol::FetchResponse>(*client, request, 11);
    EXPECT_TRUE(response.has_value());
    std::vector<size_t> sizes;
    if (response.has_value()) {
      for (const auto& partition : response->responses[0].partitions) {
        sizes.push_back(partition.records.value_or("").size());
      }
    }
    return sizes;
  };
  const size_t one = static_cast<size_t>(batch_bytes);
  EXPECT_EQ(fetch_two(batch_bytes * 2 + 10, 1 << 20), (std::vector<size_t>{2 * one, 2 * one}));
  EXPECT_EQ(fetch_two(batch_bytes * 2 + 10, batch_bytes * 3), (std::vector<size_t>{2 * one, one}));
  EXPECT_EQ(fetch_two(10, 10), (std::vector<size_t>{one, 0}));
  EXPECT_EQ(fetch_two(1 << 20, 10), (std::vector<size_t>{one, 0}));
}

// OFFSET_OUT_OF_RANGE past the log end; an offset equal to the high watermark answers empty.
TEST_F(KafkaServerTest, FetchOutOfRange) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "range");
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(*client,
                                                     Produce("range", 0, MakeBatch(3, "r")), 7));
  auto beyond = world_.Call<protocol::FetchResponse>(*client, Fetch("range", 0, 100), 11);
  ASSERT_TRUE(beyond.has_value());
  EXPECT_EQ(beyond->responses[0].partitions[0].error_code, Wire(ErrorCode::kOffsetOutOfRange));
  EXPECT_EQ(beyond->responses[0].partitions[0].high_watermark, 3);
  auto at_end = world_.Call<protocol::FetchResponse>(*client, Fetch("range", 0, 3), 11);
  ASSERT_TRUE(at_end.has_value());
  EXPECT_EQ(at_end->responses[0].partitions[0].error_code, 0);
  EXPECT_TRUE(at_end->responses[0].partitions[0].records.value_or("").empty());
  auto negative = world_.Call<protocol::FetchResponse>(*client, Fetch("range", 0, -5), 11);
  ASSERT_TRUE(negative.has_value());
  EXPECT_EQ(negative->responses[0].partitions[0].error_code, Wire(ErrorCode::kOffsetOutOfRange));
}

// Fetch sessions are not kept: a request naming a session gets FETCH_SESSION_ID_NOT_FOUND.
TEST_F(KafkaServerTest, FetchSessionsAreRefused) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "sessions");
  protocol::FetchRequest request = Fetch("sessions", 0, 0);
  request.session_id = 12;
  request.session_epoch = 3;
  auto response = world_.Call<protocol::FetchResponse>(*client, request, 11);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->error_code, Wire(ErrorCode::kFetchSessionIdNotFound));
  EXPECT_EQ(response->session_id, 0);
}

// --- Metadata and unknown topics -----------------------------------------------------------

// Unknown topics: Fetch, Produce and ListOffsets answer UNKNOWN_TOPIC_OR_PARTITION; with
// auto-creation off, Metadata does too and nothing is created.
TEST_F(KafkaServerTest, UnknownTopicWithoutAutoCreation) {
  world_.config().set_auto_create_topics_enable(false);
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  auto fetched = world_.Call<protocol::FetchResponse>(*client, Fetch("ghost", 0, 0), 11);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->responses[0].partitions[0].error_code,
            Wire(ErrorCode::kUnknownTopicOrPartition));
  auto produced =
      world_.Call<protocol::ProduceResponse>(*client, Produce("ghost", 0, MakeBatch(1, "g")), 7);
  ASSERT_TRUE(produced.has_value());
  EXPECT_EQ(produced->responses[0].partition_responses[0].error_code,
            Wire(ErrorCode::kUnknownTopicOrPartition));
  auto offsets =
      world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("ghost", 0, -2), 2);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].error_code, Wire(ErrorCode::kUnknownTopicOrPartition));
  auto metadata = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"ghost"}), 1);
  ASSERT_TRUE(metadata.has_value());
  EXPECT_EQ(metadata->topics[0].error_code, Wire(ErrorCode::kUnknownTopicOrPartition));
  world_.RunFor(100'000);
  EXPECT_EQ(world_.node().topics().image().FindTopic("ghost"), nullptr);
}

// With auto-creation on, Metadata for an unknown topic answers LEADER_NOT_AVAILABLE while the
// topic is created with the broker's default partition count, then describes it; a v4 request
// that forbids creation gets UNKNOWN_TOPIC_OR_PARTITION; an invalid name INVALID_TOPIC_EXCEPTION.
// A produce to an unknown topic creates it too.
TEST_F(KafkaServerTest, MetadataAutoCreatesTopics) {
  world_.config().set_num_partitions(3);
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  auto first = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"auto"}), 4);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->topics[0].error_code, Wire(ErrorCode::kLeaderNotAvailable));
  world_.RunFor(100'000);
  auto second = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"auto"}), 4);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->topics[0].error_code, 0);
  EXPECT_EQ(second->topics[0].partitions.size(), 3u);

  auto forbidden =
      world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"nope"}, false), 4);
  ASSERT_TRUE(forbidden.has_value());
  EXPECT_EQ(forbidden->topics[0].error_code, Wire(ErrorCode::kUnknownTopicOrPartition));
  // Before v4 the request cannot forbid it.
  auto old = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"old"}, false), 3);
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->topics[0].error_code, Wire(ErrorCode::kLeaderNotAvailable));
  auto invalid = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"bad name!"}), 4);
  ASSERT_TRUE(invalid.has_value());
  EXPECT_EQ(invalid->topics[0].error_code, Wire(ErrorCode::kInvalidTopicException));

  auto produced = world_.Call<protocol::ProduceResponse>(
      *client, Produce("by-produce", 0, MakeBatch(1, "p")), 7);
  ASSERT_TRUE(produced.has_value());
  EXPECT_EQ(produced->responses[0].partition_responses[0].error_code,
            Wire(ErrorCode::kUnknownTopicOrPartition));
  world_.RunFor(100'000);
  EXPECT_NE(world_.node().topics().image().FindTopic("by-produce"), nullptr);
  EXPECT_EQ(world_.node().topics().image().FindTopic("nope"), nullptr);
}

// Metadata's shape per version: brokers with the advertised address, cluster id (v2+), controller
// (v1+), leader epochs (v7+), replicas and ISR; v0 with an empty list and v1+ with a null list mean
// every topic, v1+ with an empty list none.
TEST_F(KafkaServerTest, MetadataDescribesBrokerAndTopics) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "alpha", 2);
  world_.CreateTopic(*client, "beta", 1);
  const NodeId node = world_.broker_id();
  auto v8 = world_.Call<protocol::MetadataResponse>(*client, protocol::MetadataRequest{}, 8);
  ASSERT_TRUE(v8.has_value());
  ASSERT_EQ(v8->brokers.size(), 1u);
  EXPECT_EQ(v8->brokers[0].node_id, node);
  EXPECT_EQ(v8->brokers[0].host, kBrokerHost);
  EXPECT_EQ(v8->brokers[0].port, kBrokerPort);
  EXPECT_FALSE(v8->brokers[0].rack.has_value());
  EXPECT_EQ(v8->cluster_id, "test-cluster");
  EXPECT_EQ(v8->controller_id, node);
  // The node's internal __consumer_offsets is listed too, marked internal; the rest are ours.
  std::erase_if(v8->topics, [](const auto& topic) { return topic.is_internal; });
  ASSERT_EQ(v8->topics.size(), 2u);
  EXPECT_EQ(v8->topics[0].name, "alpha");
  ASSERT_EQ(v8->topics[0].partitions.size(), 2u);
  const auto& partition = v8->topics[0].partitions[1];
  EXPECT_EQ(partition.partition_index, 1);
  EXPECT_EQ(partition.leader_id, node);
  EXPECT_EQ(partition.leader_epoch, 0);
  EXPECT_THAT(partition.replica_nodes, ::testing::ElementsAre(node));
  EXPECT_THAT(partition.isr_nodes, ::testing::ElementsAre(node));
  EXPECT_TRUE(partition.offline_replicas.empty());

  protocol::MetadataRequest empty;
  empty.topics.emplace();
  auto v0 = world_.Call<protocol::MetadataResponse>(*client, empty, 0);
  ASSERT_TRUE(v0.has_value());
  EXPECT_EQ(v0->topics.size(), 3u);
  auto v1 = world_.Call<protocol::MetadataResponse>(*client, empty, 1);
  ASSERT_TRUE(v1.has_value());
  EXPECT_TRUE(v1->topics.empty());
  auto named = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"beta", "beta"}), 2);
  ASSERT_TRUE(named.has_value());
  ASSERT_EQ(named->topics.size(), 1u);
  EXPECT_EQ(named->topics[0].name, "beta");
}

// --- Admin -------------------------------------------------------------------------------------

// CreateTopics: validate_only creates nothing; bad config (INVALID_CONFIG with the reason), bad
// replication factor, bad partition count, invalid name, an existing topic, manual assignments
// (accepted only when they name this node), and a duplicate name in one request.
TEST_F(KafkaServerTest, CreateTopicsValidatesLikeKafka) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  auto create = [&](const protocol::CreateTopicsRequest& request, int16_t version = 4) {
    auto response = world_.Call<protocol::CreateTopicsResponse>(*client, request, version);
    EXPECT_TRUE(response.has_value());
    return response.has_value() ? response->topics : std::vector<protocol::CreateTopicsResponse::Topic>{};
  };
  auto validate = create(CreateTopics("checked", 3, 1, {}, /*validate_only=*/true));
  ASSERT_EQ(validate.size(), 1u);
  EXPECT_EQ(validate[0].error_code, 0);
  world_.RunFor(100'000);
  EXPECT_EQ(world_.node().topics().image().FindTopic("checked"), nullptr);

  auto bad_config = create(CreateTopics("configured", 1, -1, {{"retention.ms", "soon"}}));
  EXPECT_EQ(bad_config[0].error_code, Wire(ErrorCode::kInvalidConfig));
  EXPECT_THAT(bad_config[0].error_message.value_or(""), HasSubstr("retention.ms"));
  auto unknown_config = create(CreateTopics("configured", 1, -1, {{"no.such.config", "1"}}));
  EXPECT_EQ(unknown_config[0].error_code, Wire(ErrorCode::kInvalidConfig));
  EXPECT_EQ(create(CreateTopics("replicated", 1, 3))[0].error_code,
            Wire(ErrorCode::kInvalidReplicationFactor));
  EXPECT_EQ(create(CreateTopics("empty", 0))[0].error_code, Wire(ErrorCode::kInvalidPartitions));
  EXPECT_EQ(create(CreateTopics("bad/name", 1))[0].error_code,
            Wire(ErrorCode::kInvalidTopicException));

  auto created = create(CreateTopics("real", 2, 1, {{"cleanup.policy", "compact"}}));
  EXPECT_EQ(created[0].error_code, 0);
  EXPECT_FALSE(created[0].error_message.has_value());
  ASSERT_NE(world_.node().topics().image().FindTopic("real"), nullptr);
  auto again = create(CreateTopics("real", 2), 0);
  EXPECT_EQ(again[0].error_code, Wire(ErrorCode::kTopicAlreadyExists));

  protocol::CreateTopicsRequest assigned = CreateTopics("assigned", -1, -1);
  for (int32_t partition = 0; partition < 2; ++partition) {
    assigned.topics[0].assignments.push_back({partition, {world_.broker_id()}});
  }
  EXPECT_EQ(create(assigned)[0].error_code, 0);
  EXPECT_EQ(world_.node().topics().image().FindTopic("assigned")->partition_count(), 2);
  protocol::CreateTopicsRequest elsewhere = CreateTopics("elsewhere", -1, -1);
  elsewhere.topics[0].assignments.push_back({0, {world_.broker_id() + 5}});
  EXPECT_EQ(create(elsewhere)[0].error_code, Wire(ErrorCode::kInvalidRequest));

  protocol::CreateTopicsRequest twice = CreateTopics("twice", 1);
  twice.topics.push_back(twice.topics[0]);
  auto both = create(twice);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].error_code, Wire(ErrorCode::kInvalidRequest));
  EXPECT_EQ(both[1].error_code, Wire(ErrorCode::kInvalidRequest));
}

// DeleteTopics removes a topic once durable (then unknown to Metadata and Fetch); an unknown topic
// answers UNKNOWN_TOPIC_OR_PARTITION; the name can be created again afterwards.
TEST_F(KafkaServerTest, DeleteTopics) {
  world_.config().set_auto_create_topics_enable(false);
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "doomed");
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(*client,
                                                     Produce("doomed", 0, MakeBatch(2, "d")), 7));
  protocol::DeleteTopicsRequest request;
  request.topic_names = {"doomed", "never-was"};
  request.timeout_ms = 10'000;
  auto deleted = world_.Call<protocol::DeleteTopicsResponse>(*client, request, 3);
  ASSERT_TRUE(deleted.has_value());
  ASSERT_EQ(deleted->responses.size(), 2u);
  EXPECT_EQ(deleted->responses[0].error_code, 0);
  EXPECT_EQ(deleted->responses[1].error_code, Wire(ErrorCode::kUnknownTopicOrPartition));
  auto metadata = world_.Call<protocol::MetadataResponse>(*client, MetadataFor({"doomed"}), 1);
  ASSERT_TRUE(metadata.has_value());
  EXPECT_EQ(metadata->topics[0].error_code, Wire(ErrorCode::kUnknownTopicOrPartition));
  world_.RunFor(200'000);
  world_.CreateTopic(*client, "doomed");
  auto fetched = world_.Call<protocol::FetchResponse>(*client, Fetch("doomed", 0, 0), 11);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->responses[0].partitions[0].error_code, 0);
  EXPECT_EQ(fetched->responses[0].partitions[0].high_watermark, 0);
}

// DescribeConfigs: a topic's override is DYNAMIC_TOPIC_CONFIG, a default the broker's config set
// is STATIC_BROKER_CONFIG, the others DEFAULT_CONFIG; synonyms list the override, the broker
// setting and the built-in default; v0 reports is_default; configuration_keys filter; an unknown
// topic is UNKNOWN_TOPIC_OR_PARTITION on its resource; the broker resource lists read-only
// settings.
TEST_F(KafkaServerTest, DescribeConfigsReportsSources) {
  world_.config().mutable_log()->set_retention_ms(3'600'000);
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "described", 1, {{"segment.bytes", "1048576"}});
  protocol::DescribeConfigsRequest request;
  request.include_synonyms = true;
  request.resources.push_back({protocol::kConfigResourceTopic, "described", std::nullopt});
  request.resources.push_back({protocol::kConfigResourceTopic, "missing", std::nullopt});
  request.resources.push_back(
      {protocol::kConfigResourceBroker, absl::StrCat(world_.broker_id()),
       std::vector<std::string>{"num.partitions", "log.retention.ms", "broker.id"}});
  auto response = world_.Call<protocol::DescribeConfigsResponse>(*client, request, 3);
  ASSERT_TRUE(response.has_value());
  ASSERT_EQ(response->results.size(), 3u);
  std::map<std::string, protocol::DescribeConfigsResponse::Config> configs;
  for (const auto& config : response->results[0].configs) configs[config.name] = config;
  ASSERT_TRUE(configs.contains("segment.bytes"));
  EXPECT_EQ(configs["segment.bytes"].value, "1048576");
  EXPECT_EQ(configs["segment.bytes"].config_source, 1);
  ASSERT_EQ(configs["segment.bytes"].synonyms.size(), 2u);
  EXPECT_EQ(configs["segment.bytes"].synonyms[1].name, "log.segment.bytes");
  EXPECT_EQ(configs["segment.bytes"].synonyms[1].source, 5);
  EXPECT_EQ(configs["retention.ms"].value, "3600000");
  EXPECT_EQ(configs["retention.ms"].config_source, 4);
  ASSERT_EQ(configs["retention.ms"].synonyms.size(), 2u);
  EXPECT_EQ(configs["retention.ms"].synonyms[0].name, "log.retention.ms");
  EXPECT_EQ(configs["retention.ms"].synonyms[0].value, "3600000");
  EXPECT_EQ(configs["cleanup.policy"].config_source, 5);
  EXPECT_EQ(configs["cleanup.policy"].value, "delete");
  EXPECT_EQ(configs["cleanup.policy"].config_type, 7);
  EXPECT_EQ(configs["flush.policy"].value, "always");
  EXPECT_EQ(response->results[1].error_code, Wire(ErrorCode::kUnknownTopicOrPartition));
  const auto& broker = response->results[2];
  EXPECT_EQ(broker.error_code, 0);
  ASSERT_EQ(broker.configs.size(), 3u);
  EXPECT_EQ(broker.configs[0].name, "broker.id");
  EXPECT_EQ(broker.configs[0].value, absl::StrCat(world_.broker_id()));
  EXPECT_EQ(broker.configs[1].name, "log.retention.ms");
  EXPECT_EQ(broker.configs[1].config_source, 4);
  EXPECT_TRUE(broker.configs[1].read_only);
  EXPECT_EQ(broker.configs[2].name, "num.partitions");
  EXPECT_EQ(broker.configs[2].config_source, 5);

  protocol::DescribeConfigsRequest v0;
  v0.resources.push_back(
      {protocol::kConfigResourceTopic, "described", std::vector<std::string>{"segment.bytes", "retention.ms"}});
  auto old = world_.Call<protocol::DescribeConfigsResponse>(*client, v0, 0);
  ASSERT_TRUE(old.has_value());
  ASSERT_EQ(old->results[0].configs.size(), 2u);
  EXPECT_EQ(old->results[0].configs[0].name, "retention.ms");
  EXPECT_TRUE(old->results[0].configs[0].is_default);
  EXPECT_FALSE(old->results[0].configs[1].is_default);
}

// --- ListOffsets ---------------------------------------------------------------------------------

// Earliest (-2), latest (-1, the high watermark), by timestamp (the first record at or after it,
// its own timestamp; none: -1/-1), and v0's list of offsets.
TEST_F(KafkaServerTest, ListOffsetsEarliestLatestAndByTime) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "times");
  // Batches of 3 records at timestamps 1000-1002, 2000-2002 and 3000-3002.
  for (int64_t base : {1000, 2000, 3000}) {
    ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
        *client, Produce("times", 0, MakeBatch(3, "t", base)), 7));
  }
  auto list = [&](int64_t timestamp, int16_t version) {
    auto response =
        world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("times", 0, timestamp), version);
    EXPECT_TRUE(response.has_value());
    return response.has_value() ? response->topics[0].partitions[0]
                                : protocol::ListOffsetsResponse::Partition{};
  };
  EXPECT_EQ(list(-2, 1).offset, 0);
  EXPECT_EQ(list(-1, 1).offset, 9);
  auto by_time = list(2001, 5);
  EXPECT_EQ(by_time.error_code, 0);
  EXPECT_EQ(by_time.offset, 4);
  EXPECT_EQ(by_time.timestamp, 2001);
  EXPECT_EQ(by_time.leader_epoch, 0);
  EXPECT_EQ(list(1500, 2).offset, 3);
  auto none = list(99'999, 4);
  EXPECT_EQ(none.offset, -1);
  EXPECT_EQ(none.timestamp, -1);
  EXPECT_THAT(list(-1, 0).old_style_offsets, ::testing::ElementsAre(9));
  EXPECT_THAT(list(-2, 0).old_style_offsets, ::testing::ElementsAre(0));
  protocol::ListOffsetsRequest fenced = ListOffsets("times", 0, -1);
  fenced.topics[0].partitions[0].current_leader_epoch = 7;
  auto epoch = world_.Call<protocol::ListOffsetsResponse>(*client, fenced, 4);
  ASSERT_TRUE(epoch.has_value());
  EXPECT_EQ(epoch->topics[0].partitions[0].error_code, Wire(ErrorCode::kUnknownLeaderEpoch));
}

// --- Connection handling -----------------------------------------------------------------------

// A malformed frame (garbage body, an unknown api key, a negative size, an unsupported version)
// closes only that connection; another connection keeps working.
TEST_F(KafkaServerTest, MalformedFramesCloseOnlyTheirConnection) {
  Start();
  std::unique_ptr<TestClient> healthy = world_.Connect();
  world_.CreateTopic(*healthy, "survivor");
  std::vector<std::string> bad_frames;
  {
    std::string frame;
    AppendBigEndian<int32_t>(frame, 6);
    AppendBigEndian<int16_t>(frame, 3);  // Metadata
    AppendBigEndian<int16_t>(frame, 1);  // v1, but no correlation id or body
    AppendBigEndian<int16_t>(frame, 0);
    bad_frames.push_back(frame);
  }
  {
    std::string frame;
    AppendBigEndian<int32_t>(frame, 10);
    AppendBigEndian<int16_t>(frame, 999);  // unknown api
    frame += std::string(8, '\0');
    bad_frames.push_back(frame);
  }
  {
    std::string frame;
    AppendBigEndian<int32_t>(frame, -5);
    bad_frames.push_back(frame);
  }
  {
    // Produce v2: an unsupported version.
    std::string frame;
    AppendBigEndian<int32_t>(frame, 8);
    AppendBigEndian<int16_t>(frame, 0);
    AppendBigEndian<int16_t>(frame, 2);
    AppendBigEndian<int32_t>(frame, 1);
    bad_frames.push_back(frame);
  }
  for (const std::string& frame : bad_frames) {
    std::unique_ptr<TestClient> victim = world_.Connect();
    victim->SendRaw(frame);
    world_.RunUntil([&] { return victim->closed(); });
    EXPECT_TRUE(victim->closed());
    auto metadata =
        world_.Call<protocol::MetadataResponse>(*healthy, MetadataFor({"survivor"}), 5);
    ASSERT_TRUE(metadata.has_value());
    EXPECT_EQ(metadata->topics[0].error_code, 0);
  }
  EXPECT_FALSE(healthy->closed());
}

// More pipelined requests than the in-progress limit: the server stops reading the connection at
// the limit and resumes as responses go out; every request is answered, in order.
TEST_F(KafkaServerTest, InProgressLimitPausesReadingWithoutLosingRequests) {
  world_.config().mutable_limits()->set_requests_in_progress_per_connection_max(4);
  Start();
  std::unique_ptr<TestClient> admin = world_.Connect();
  world_.CreateTopic(*admin, "busy");
  std::unique_ptr<TestClient> client = world_.Connect();
  std::vector<int32_t> sent;
  for (int i = 0; i < 60; ++i) {
    if (i % 10 == 0) {
      sent.push_back(client->Send(Produce("busy", 0, MakeBatch(1, absl::StrCat(i)), -1), 7));
    } else {
      sent.push_back(client->Send(MetadataFor({"busy"}), 5));
    }
  }
  world_.RunUntil([&] { return client->response_count() == sent.size() || client->closed(); });
  EXPECT_EQ(client->arrival_order(), sent);
  EXPECT_GT(world_.node().server().stats().receive_pauses, 0u);
}

// A client that stops reading: the broker's send backlog for it grows past the pause threshold,
// the broker stops sending and reading for that connection, and when the client reads again every
// response arrives, in order.
TEST_F(KafkaServerTest, SendBacklogPausesAndResumes) {
  world_.config().mutable_limits()->set_send_backlog_pause_bytes(256 << 10);
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "big");
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
        *client, Produce("big", 0, MakeBatch(50, std::string(1000, 'b'))), 7));
  }
  client->SetReceivePaused(true);
  std::vector<int32_t> sent;
  for (int i = 0; i < 40; ++i) sent.push_back(client->Send(Fetch("big", 0, 0), 11));
  world_.RunFor(2'000'000);
  EXPECT_GT(world_.node().server().stats().receive_pauses, 0u);
  EXPECT_LT(world_.node().server().stats().responses_sent, 20u + 2u + sent.size());
  client->SetReceivePaused(false);
  world_.RunUntil([&] { return client->response_count() == sent.size() || client->closed(); });
  EXPECT_EQ(client->arrival_order().size(), sent.size() + 21);
  EXPECT_TRUE(std::is_sorted(client->arrival_order().begin(), client->arrival_order().end()));
}

// --- Idempotence ---------------------------------------------------------------------------------

storage::BatchBuildOptions Idempotent(int64_t producer_id, int16_t epoch, int32_t sequence) {
  return storage::BatchBuildOptions{
      .producer_id = producer_id, .producer_epoch = epoch, .base_sequence = sequence};
}

// InitProducerId hands out distinct ids; an exact duplicate of a recent batch answers NONE with
// the original base offset and appends nothing; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an
// older epoch INVALID_PRODUCER_EPOCH; a newer epoch must start at 0. Transactional ids are refused.
TEST_F(KafkaServerTest, IdempotentProducerDeduplicates) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "exactly-once");
  auto init = world_.Call<protocol::InitProducerIdResponse>(
      *client, protocol::InitProducerIdRequest{}, 1);
  ASSERT_TRUE(init.has_value());
  ASSERT_EQ(init->error_code, 0);
  const int64_t producer_id = init->producer_id;
  EXPECT_EQ(init->producer_epoch, 0);
  auto second = world_.Call<protocol::InitProducerIdResponse>(
      *client, protocol::InitProducerIdRequest{}, 0);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->producer_id, producer_id);
  protocol::InitProducerIdRequest transactional;
  transactional.transactional_id = "tx";
  auto refused = world_.Call<protocol::InitProducerIdResponse>(*client, transactional, 1);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error_code, Wire(ErrorCode::kTransactionalIdAuthorizationFailed));

  auto produce = [&](const std::string& batch) {
    auto response =
        world_.Call<protocol::ProduceResponse>(*client, Produce("exactly-once", 0, batch), 7);
    EXPECT_TRUE(response.has_value());
    return response.has_value() ? response->responses[0].partition_responses[0]
                                : protocol::ProduceResponse::Partition{};
  };
  const std::string first = MakeBatch(3, "a", 1000, Idempotent(producer_id, 0, 0));
  const std::string next = MakeBatch(2, "b", 1000, Idempotent(producer_id, 0, 3));
  EXPECT_EQ(produce(first).base_offset, 0);
  EXPECT_EQ(produce(next).base_offset, 3);
  auto duplicate = produce(first);
  EXPECT_EQ(duplicate.error_code, 0);
  EXPECT_EQ(duplicate.base_offset, 0);
  EXPECT_EQ(produce(next).base_offset, 3);
  EXPECT_EQ(produce(MakeBatch(1, "gap", 1000, Idempotent(producer_id, 0, 9))).error_code,
            Wire(ErrorCode::kOutOfOrderSequenceNumber));
  EXPECT_EQ(produce(MakeBatch(1, "ok", 1000, Idempotent(producer_id, 0, 5))).base_offset, 5);
  EXPECT_EQ(produce(MakeBatch(1, "new-epoch", 1000, Idempotent(producer_id, 1, 4))).error_code,
            Wire(ErrorCode::kOutOfOrderSequenceNumber));
  EXPECT_EQ(produce(MakeBatch(1, "new-epoch", 1000, Idempotent(producer_id, 1, 0))).base_offset,
            6);
  EXPECT_EQ(produce(MakeBatch(1, "stale", 1000, Idempotent(producer_id, 0, 6))).error_code,
            Wire(ErrorCode::kInvalidProducerEpoch));
  auto offsets =
      world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("exactly-once", 0, -1), 5);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].offset, 7);
}

// After a restart (here a power loss after the acknowledgement), the producer state is rebuilt
// from the log's tail: retrying the last batch is still recognised as a duplicate. A producer the
// log does not mention is accepted at any sequence (KIP-360). InitProducerId never hands out an id
// of the previous incarnation.
TEST_F(KafkaServerTest, IdempotenceSurvivesRestart) {
  Start();
  int64_t producer_id = 0;
  const std::string last = MakeBatch(2, "last", 1000, Idempotent(0, 0, 4));
  {
    std::unique_ptr<TestClient> client = world_.Connect();
    world_.CreateTopic(*client, "durable-ids");
    auto init = world_.Call<protocol::InitProducerIdResponse>(
        *client, protocol::InitProducerIdRequest{}, 1);
    ASSERT_TRUE(init.has_value());
    producer_id = init->producer_id;
    ASSERT_EQ(producer_id, 0);
    ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
        *client, Produce("durable-ids", 0, MakeBatch(4, "first", 1000, Idempotent(0, 0, 0))), 7));
    auto appended =
        world_.Call<protocol::ProduceResponse>(*client, Produce("durable-ids", 0, last), 7);
    ASSERT_TRUE(appended.has_value());
    ASSERT_EQ(appended->responses[0].partition_responses[0].base_offset, 4);
  }
  world_.Restart(sim::CrashKind::kPowerLoss);
  std::unique_ptr<TestClient> client = world_.Connect();
  auto retried =
      world_.Call<protocol::ProduceResponse>(*client, Produce("durable-ids", 0, last), 7);
  ASSERT_TRUE(retried.has_value());
  EXPECT_EQ(retried->responses[0].partition_responses[0].error_code, 0);
  EXPECT_EQ(retried->responses[0].partition_responses[0].base_offset, 4);
  auto stranger = world_.Call<protocol::ProduceResponse>(
      *client, Produce("durable-ids", 0, MakeBatch(1, "s", 1000, Idempotent(77, 0, 57))), 7);
  ASSERT_TRUE(stranger.has_value());
  EXPECT_EQ(stranger->responses[0].partition_responses[0].error_code, 0);
  EXPECT_EQ(stranger->responses[0].partition_responses[0].base_offset, 6);
  auto init = world_.Call<protocol::InitProducerIdResponse>(
      *client, protocol::InitProducerIdRequest{}, 1);
  ASSERT_TRUE(init.has_value());
  EXPECT_GE(init->producer_id, ProducerIdAllocator::kBlockSize);
}

// The producer id file round-trips and rejects damage.
TEST(ProducerIdFileTest, EncodesAndRejectsDamage) {
  const std::string bytes = ProducerIdAllocator::EncodeFile(123'000);
  ASSERT_EQ(bytes.size(), kProducerIdFileBytes);
  EXPECT_EQ(*ProducerIdAllocator::DecodeFile(bytes), 123'000);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] ^= 0x04;
    EXPECT_FALSE(ProducerIdAllocator::DecodeFile(damaged).ok()) << "byte " << i;
  }
  EXPECT_FALSE(ProducerIdAllocator::DecodeFile(bytes.substr(1)).ok());
}

// Sequence arithmetic wraps from INT32_MAX to 0, as Kafka's does.
TEST(ProducerStateTest, SequencesWrap) {
  EXPECT_EQ(AdvanceSequence(5, 3), 8);
  EXPECT_EQ(AdvanceSequence(2147483647, 1), 0);
  EXPECT_EQ(AdvanceSequence(2147483646, 3), 1);
  PartitionProducerState state;
  storage::BatchHeader header;
  header.producer_id = 1;
  header.producer_epoch = 0;
  header.base_sequence = 2147483646;
  header.last_offset_delta = 1;
  state.Record(header, 10);
  header.base_sequence = 0;
  header.last_offset_delta = 0;
  EXPECT_EQ(state.Check(header).verdict, SequenceCheck::Verdict::kAppend);
  header.base_sequence = 1;
  EXPECT_EQ(state.Check(header).verdict, SequenceCheck::Verdict::kReject);
}

// --- Durability across crashes -------------------------------------------------------------------

// Producers (acks=-1, pipelined) and a consumer (long-poll fetches) run against the broker; at a
// random moment the broker loses power (or its process dies), then restarts. Every record
// acknowledged before the crash is in the log afterwards at its acknowledged offset, and every
// record a consumer was ever given (below the high watermark) is still there with the same value:
// the high watermark never exposed a record the crash then lost. Repeated over several seeds and
// crash times.
void RunCrashRound(uint64_t seed, sim::CrashKind kind) {
  SCOPED_TRACE(absl::StrCat("seed ", seed, kind == sim::CrashKind::kPowerLoss ? " power loss"
                                                                               : " process crash"));
  World world(seed);
  ASSERT_NO_FATAL_FAILURE(world.Start());
  std::unique_ptr<TestClient> admin = world.Connect();
  world.CreateTopic(*admin, "ledger", 2);
  std::unique_ptr<TestClient> producer = world.Connect();
  std::unique_ptr<TestClient> consumer = world.Connect();

  struct Sent {
    int32_t partition;
    std::string batch;
  };
  std::map<int32_t, Sent> in_flight;   // by correlation id
  std::map<std::pair<int32_t, int64_t>, std::string> acknowledged;  // (partition, offset) -> value
  std::map<std::pair<int32_t, int64_t>, std::string> consumed;
  int64_t next_fetch_offset[2] = {0, 0};
  int32_t fetch_in_flight = -1;  // -1: none
  int batch_number = 0;
  sim::Simulator& simulator = world.simulator();
  const int64_t crash_at_us = simulator.NowUs() + 200'000 + static_cast<int64_t>(seed % 7) * 97'000;
  int32_t fetch_partition = 0;

  while (simulator.NowUs() < crash_at_us) {
    while (in_flight.size() < 5) {
      const int32_t partition = batch_number % 2;
      std::string batch = MakeBatch(1 + batch_number % 4, absl::StrCat("v", batch_number));
      const int32_t id = producer->Send(Produce("ledger", partition, batch, -1), 7);
      in_flight[id] = Sent{partition, std::move(batch)};
      ++batch_number;
    }
    if (fetch_in_flight < 0) {
      fetch_in_flight = consumer->Send(
          Fetch("ledger", fetch_partition, next_fetch_offset[fetch_partition], 50, 1), 11);
    }
    simulator.Step();
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (!producer->Has(it->first)) {
        ++it;
        continue;
      }
      auto response = std::get<protocol::ProduceResponse>(producer->Take(it->first).body);
      const auto& partition = response.responses[0].partition_responses[0];
      ASSERT_EQ(partition.error_code, 0);
      for (const auto& [offset, value] : RecordValues(Stored(it->second.batch, partition.base_offset))) {
        acknowledged[{it->second.partition, offset}] = value;
      }
      it = in_flight.erase(it);
    }
    if (fetch_in_flight >= 0 && consumer->Has(fetch_in_flight)) {
      auto response = std::get<protocol::FetchResponse>(consumer->Take(fetch_in_flight).body);
      const auto& partition = response.responses[0].partitions[0];
      ASSERT_EQ(partition.error_code, 0);
      for (const auto& [offset, value] : RecordValues(partition.records.value_or(""))) {
        if (offset < next_fetch_offset[fetch_partition]) continue;
        EXPECT_LT(offset, partition.high_watermark);
        consumed[{fetch_partition, offset}] = value;
        next_fetch_offset[fetch_partition] = offset + 1;
      }
      fetch_in_flight = -1;
      fetch_partition = 1 - fetch_partition;
    }
  }
  ASSERT_GT(acknowledged.size(), 10u);
  world.Crash(kind);
  producer.reset();
  consumer.reset();
  admin.reset();
  ASSERT_NO_FATAL_FAILURE(world.Start());
  std::unique_ptr<TestClient> reader = world.Connect();
  // Read everything below the high watermark of each partition after recovery.
  std::map<std::pair<int32_t, int64_t>, std::string> recovered;
  for (int32_t partition : {0, 1}) {
    int64_t offset = 0;
    int64_t high_watermark = 0;
    do {
      auto response = world.Call<protocol::FetchResponse>(
          *reader, Fetch("ledger", partition, offset, 200, 1), 11);
      ASSERT_TRUE(response.has_value());
      const auto& data = response->responses[0].partitions[0];
      ASSERT_EQ(data.error_code, 0);
      high_watermark = data.high_watermark;
      for (const auto& [record_offset, value] : RecordValues(data.records.value_or(""))) {
        recovered[{partition, record_offset}] = value;
        offset = record_offset + 1;
      }
    } while (offset < high_watermark);
  }
  for (const auto& [key, value] : acknowledged) {
    auto it = recovered.find(key);
    ASSERT_NE(it, recovered.end()) << "acknowledged record lost: partition " << key.first
                                   << " offset " << key.second;
    EXPECT_EQ(it->second, value);
  }
  for (const auto& [key, value] : consumed) {
    auto it = recovered.find(key);
    ASSERT_NE(it, recovered.end()) << "consumed record lost: partition " << key.first
                                   << " offset " << key.second;
    EXPECT_EQ(it->second, value);
  }
}

TEST(KafkaServerCrashTest, PowerLossKeepsAcknowledgedAndConsumedRecords) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunCrashRound(seed, sim::CrashKind::kPowerLoss));
  }
}

TEST(KafkaServerCrashTest, ProcessCrashKeepsAcknowledgedAndConsumedRecords) {
  for (uint64_t seed = 11; seed <= 14; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunCrashRound(seed, sim::CrashKind::kProcess));
  }
}

// flush.policy=never: records are visible (high watermark = log end) as soon as they are appended,
// and acks=-1 answers at once, without waiting for a sync.
TEST_F(KafkaServerTest, FlushPolicyNeverExposesAppendedRecords) {
  world_.config().mutable_log()->set_flush_policy("never");
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "fast");
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(*client,
                                                     Produce("fast", 0, MakeBatch(4, "n")), 7));
  storage::PartitionLog* log = world_.node().topics().Find("fast", 0);
  ASSERT_NE(log, nullptr);
  EXPECT_LT(log->durable_end_offset(), 4);
  auto offsets = world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("fast", 0, -1), 5);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].offset, 4);
}

// Under flush.policy=always, an acks=1 record is not exposed until it is durable: right after the
// acknowledgement, ListOffsets latest may lag, but after the sync it catches up.
TEST_F(KafkaServerTest, HighWatermarkFollowsDurability) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "careful");
  auto produced = world_.Call<protocol::ProduceResponse>(
      *client, Produce("careful", 0, MakeBatch(3, "c"), 1), 7);
  ASSERT_TRUE(produced.has_value());
  storage::PartitionLog* log = world_.node().topics().Find("careful", 0);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(HighWatermark(*log), log->durable_end_offset());
  world_.RunFor(100'000);
  auto offsets =
      world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("careful", 0, -1), 5);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].offset, 3);
}

// A log whose sync failed is offline, as Kafka takes a failed log directory offline: Fetch and
// ListOffsets answer KAFKA_STORAGE_ERROR (retriable) for it rather than a high watermark that
// could go back, and further produce requests fail with the same error. Other partitions serve on.
TEST_F(KafkaServerTest, FailedLogAnswersStorageError) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "fragile", 2);
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
      *client, Produce("fragile", 0, MakeBatch(5, "a"), -1), 7));
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
      *client, Produce("fragile", 1, MakeBatch(2, "b"), -1), 7));
  world_.simulator().disk(world_.broker_id()).FailNextSync();
  auto failed = world_.Call<protocol::ProduceResponse>(
      *client, Produce("fragile", 0, MakeBatch(3, "c"), -1), 7);
  ASSERT_TRUE(failed.has_value());
  const int16_t storage_error = ToWire(protocol::ErrorCode::kKafkaStorageError);
  EXPECT_EQ(failed->responses.at(0).partition_responses.at(0).error_code, storage_error);
  storage::PartitionLog* log = world_.node().topics().Find("fragile", 0);
  ASSERT_NE(log, nullptr);
  ASSERT_FALSE(log->failure().ok());

  auto fetched = world_.Call<protocol::FetchResponse>(*client, Fetch("fragile", 0, 0), 11);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->responses[0].partitions[0].error_code, storage_error);
  EXPECT_EQ(fetched->responses[0].partitions[0].high_watermark, -1);
  auto offsets =
      world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("fragile", 0, -1), 5);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].error_code, storage_error);
  auto healthy =
      world_.Call<protocol::ListOffsetsResponse>(*client, ListOffsets("fragile", 1, -1), 5);
  ASSERT_TRUE(healthy.has_value());
  EXPECT_EQ(healthy->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(healthy->topics[0].partitions[0].offset, 2);
}

// After a crash, a log's durable end restarts at its recovery point, below what was durable and
// shown before; the broker syncs the recovered tail before listening. When that sync fails the log
// stays failed, and the partition is offline until a restart on a healthy disk: Produce, Fetch and
// ListOffsets answer KAFKA_STORAGE_ERROR with no offsets (not a high watermark gone back from 5 to
// the recovery point), Metadata shows it leaderless (LEADER_NOT_AVAILABLE, leader -1, this node in
// offline_replicas), and the other partitions serve on. A restart on a healthy disk brings it back
// with every acknowledged record.
TEST_F(KafkaServerTest, LogFailedInRecoveryIsOfflineUntilRestart) {
  Start();
  {
    std::unique_ptr<TestClient> client = world_.Connect();
    world_.CreateTopic(*client, "Recovering");
    world_.CreateTopic(*client, "steady");
    ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
        *client, Produce("Recovering", 0, MakeBatch(5, "r"), -1), 7));
    ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
        *client, Produce("steady", 0, MakeBatch(2, "s"), -1), 7));
    auto before = world_.Call<protocol::FetchResponse>(*client, Fetch("Recovering", 0, 0), 11);
    ASSERT_TRUE(before.has_value());
    ASSERT_EQ(before->responses[0].partitions[0].high_watermark, 5);
  }
  // The recovered tails are synced in name order: "Recovering" gets the failed sync.
  world_.Crash(sim::CrashKind::kProcess);
  world_.simulator().disk(world_.broker_id()).FailNextSync();
  ASSERT_NO_FATAL_FAILURE(world_.Start());
  storage::PartitionLog* failed_log = world_.node().topics().Find("Recovering", 0);
  ASSERT_NE(failed_log, nullptr);
  ASSERT_FALSE(failed_log->failure().ok());
  ASSERT_LT(failed_log->durable_end_offset(), 5) << "the recovery point is below the old end";
  ASSERT_TRUE(world_.node().topics().Find("steady", 0)->failure().ok());

  std::unique_ptr<TestClient> client = world_.Connect();
  const int16_t storage_error = Wire(ErrorCode::kKafkaStorageError);
  auto fetched = world_.Call<protocol::FetchResponse>(*client, Fetch("Recovering", 0, 0), 11);
  ASSERT_TRUE(fetched.has_value());
  const protocol::FetchResponse::Partition& fetched_partition = fetched->responses[0].partitions[0];
  EXPECT_EQ(fetched_partition.error_code, storage_error);
  EXPECT_EQ(fetched_partition.high_watermark, -1);
  EXPECT_EQ(fetched_partition.last_stable_offset, -1);
  EXPECT_EQ(fetched_partition.log_start_offset, -1);
  EXPECT_TRUE(!fetched_partition.records.has_value() || fetched_partition.records->empty());
  for (int64_t timestamp : {int64_t{-1}, int64_t{-2}}) {
    auto offsets = world_.Call<protocol::ListOffsetsResponse>(
        *client, ListOffsets("Recovering", 0, timestamp), 5);
    ASSERT_TRUE(offsets.has_value());
    EXPECT_EQ(offsets->topics[0].partitions[0].error_code, storage_error) << timestamp;
    EXPECT_EQ(offsets->topics[0].partitions[0].offset, -1) << timestamp;
  }
  auto produced = world_.Call<protocol::ProduceResponse>(
      *client, Produce("Recovering", 0, MakeBatch(1, "late"), 1), 7);
  ASSERT_TRUE(produced.has_value());
  EXPECT_EQ(produced->responses[0].partition_responses[0].error_code, storage_error);
  EXPECT_EQ(produced->responses[0].partition_responses[0].log_start_offset, -1);
  auto metadata = world_.Call<protocol::MetadataResponse>(
      *client, MetadataFor({"Recovering", "steady"}, false), 8);
  ASSERT_TRUE(metadata.has_value());
  ASSERT_EQ(metadata->topics.size(), 2u);
  const protocol::MetadataResponse::Partition& offline = metadata->topics[0].partitions.at(0);
  EXPECT_EQ(offline.error_code, Wire(ErrorCode::kLeaderNotAvailable));
  EXPECT_EQ(offline.leader_id, -1);
  EXPECT_THAT(offline.offline_replicas, ::testing::ElementsAre(metadata->controller_id));
  const protocol::MetadataResponse::Partition& online = metadata->topics[1].partitions.at(0);
  EXPECT_EQ(online.error_code, 0);
  EXPECT_EQ(online.leader_id, metadata->controller_id);
  EXPECT_TRUE(online.offline_replicas.empty());
  auto steady = world_.Call<protocol::FetchResponse>(*client, Fetch("steady", 0, 0), 11);
  ASSERT_TRUE(steady.has_value());
  EXPECT_EQ(steady->responses[0].partitions[0].error_code, 0);
  EXPECT_EQ(steady->responses[0].partitions[0].high_watermark, 2);
  EXPECT_EQ(RecordValues(*steady->responses[0].partitions[0].records).size(), 2u);

  client.reset();
  world_.Restart(sim::CrashKind::kProcess);
  ASSERT_TRUE(world_.node().topics().Find("Recovering", 0)->failure().ok());
  client = world_.Connect();
  auto back = world_.Call<protocol::FetchResponse>(*client, Fetch("Recovering", 0, 0), 11);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->responses[0].partitions[0].error_code, 0);
  EXPECT_EQ(back->responses[0].partitions[0].high_watermark, 5);
  EXPECT_EQ(RecordValues(*back->responses[0].partitions[0].records).size(), 5u);
}

// A fetch parked on a partition whose log then fails (its sync fails) is answered at once with
// KAFKA_STORAGE_ERROR rather than when its max_wait_ms passes.
TEST_F(KafkaServerTest, ParkedFetchAnsweredWhenItsLogFails) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "brittle");
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
      *client, Produce("brittle", 0, MakeBatch(2, "a"), -1), 7));
  const int64_t parked_at_us = world_.NowUs();
  const int32_t parked =
      client->Send(Fetch("brittle", 0, 2, /*max_wait_ms=*/20'000, /*min_bytes=*/1), 11);
  world_.RunUntil([&] { return world_.node().server().fetch_handler().parked_count() == 1; });
  ASSERT_EQ(world_.node().server().fetch_handler().parked_count(), 1u);
  world_.simulator().disk(world_.broker_id()).FailNextSync();
  ASSERT_TRUE(world_.Call<protocol::ProduceResponse>(
      *client, Produce("brittle", 0, MakeBatch(1, "b"), 1), 7));
  world_.RunUntil([&] { return client->Has(parked); });
  ASSERT_TRUE(client->Has(parked));
  EXPECT_LT(world_.NowUs() - parked_at_us, 5'000'000) << "answered before max_wait_ms";
  auto answer = std::get<protocol::FetchResponse>(client->Take(parked).body);
  EXPECT_EQ(answer.responses[0].partitions[0].error_code, Wire(ErrorCode::kKafkaStorageError));
  EXPECT_EQ(answer.responses[0].partitions[0].high_watermark, -1);
}

// A clean Shutdown answers parked fetches, completes the acks=-1 produce in progress, closes the
// topic manager (clean-shutdown markers) and the connections; everything is there after a start.
TEST_F(KafkaServerTest, CleanShutdownCompletesInFlightRequests) {
  Start();
  std::unique_ptr<TestClient> client = world_.Connect();
  world_.CreateTopic(*client, "final");
  const int32_t parked = client->Send(Fetch("final", 0, 0, 20'000, 1 << 20), 11);
  const int32_t produced = client->Send(Produce("final", 0, MakeBatch(2, "last"), -1), 7);
  // Both requests are read (the fetch parked, the produce waiting for its sync) before the stop:
  // requests not yet read when the server stops reading are abandoned.
  world_.RunUntil([&] {
    return world_.node().server().fetch_handler().parked_count() == 1 &&
           world_.node().server().produce_handler().stats().requests == 1;
  });
  ASSERT_FALSE(client->Has(produced));
  bool done = false;
  absl::Status result;
  world_.node().Shutdown([&](const absl::Status& status) {
    done = true;
    result = status;
  });
  world_.RunUntil([&] { return done && client->closed(); });
  ASSERT_TRUE(done);
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_TRUE(client->Has(parked));
  EXPECT_TRUE(client->Has(produced));
  EXPECT_TRUE(client->closed());
  world_.simulator().StopNode(world_.broker_id());
  ASSERT_NO_FATAL_FAILURE(world_.Start());
  std::unique_ptr<TestClient> again = world_.Connect();
  auto offsets = world_.Call<protocol::ListOffsetsResponse>(*again, ListOffsets("final", 0, -1), 5);
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(offsets->topics[0].partitions[0].offset, 2);
}

// Config resolution: file text with an unknown field or a bad value is reported with its line.
TEST(BrokerSettingsTest, ParsesAndReportsBadConfig) {
  absl::StatusOr<ParsedBrokerConfig> parsed = ParseBrokerConfigText(
      "listen: \"h:1\"\n# comment\nlog {\n  flush_policy: \"interval\"\n  flush_ms: 20\n}\n",
      "broker.cfg");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->field_lines.at("log.flush_policy"), 4);
  absl::StatusOr<BrokerSettings> settings = ResolveBrokerConfig(parsed->config);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->defaults.log.flush_policy, storage::FlushPolicy::kInterval);
  EXPECT_EQ(settings->defaults.log.flush_interval_ms, 20);
  EXPECT_TRUE(settings->static_configs.contains("log.flush.policy"));

  absl::StatusOr<ParsedBrokerConfig> unknown =
      ParseBrokerConfigText("listen: \"h:1\"\n\nfrobnicate: 3\n", "broker.cfg");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("broker.cfg:3:"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("frobnicate"));

  absl::StatusOr<ParsedBrokerConfig> bad_value =
      ParseBrokerConfigText("listen: \"h:1\"\nlog { flush_policy: \"sometimes\" }\n", "b.cfg");
  ASSERT_TRUE(bad_value.ok());
  std::string field;
  absl::StatusOr<BrokerSettings> rejected = ResolveBrokerConfig(bad_value->config, &field);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(field, "log.flush_policy");
  EXPECT_THAT(rejected.status().message(), HasSubstr("sometimes"));
}

}  // namespace
}  // namespace runnel::server
