// Runnel's Kafka client (broker/client/) against a real BrokerNode in the simulator: connections,
// metadata, the admin client, the producer and the consumer, with crashes and network faults.
// Pure helpers (error mapping, murmur2, backoff) are checked first without a simulator.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/client/admin_client.h"
#include "broker/client/broker_connection.h"
#include "broker/client/consumer.h"
#include "broker/client/kafka_error.h"
#include "broker/client/partitioner.h"
#include "broker/client/producer.h"
#include "broker/protocol/codec.h"
#include "broker/server/broker_node.h"
#include "broker/storage/compression.h"
#include "gtest/gtest.h"
#include "sim/broker_program.h"
#include "sim/simulator.h"

namespace runnel::client {
namespace {

using protocol::ErrorCode;
using sim::CrashKind;

constexpr uint16_t kBrokerPort = 9092;
constexpr int64_t kSecondUs = 1'000'000;

// --- Pure helpers ---

// Every Kafka code maps to the status code its table promises, carries its number as a payload,
// and names itself in the message; the retriable flag follows Kafka's.
TEST(KafkaErrorTest, MapsCodesAndCarriesThemInTheStatus) {
  absl::Status exists = KafkaErrorStatus(ErrorCode::kTopicAlreadyExists, "creating topic t", "x");
  EXPECT_EQ(exists.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(exists.message(), "TOPIC_ALREADY_EXISTS (36): creating topic t: x"))
      << exists;
  EXPECT_EQ(KafkaErrorCodeOf(exists), ErrorCode::kTopicAlreadyExists);
  EXPECT_FALSE(IsRetriableError(exists));

  absl::Status not_leader = KafkaErrorStatus(ErrorCode::kNotLeaderOrFollower, "producing");
  EXPECT_EQ(not_leader.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsRetriableError(not_leader));
  EXPECT_TRUE(NeedsMetadataRefresh(not_leader));

  EXPECT_EQ(KafkaErrorStatus(ErrorCode::kRequestTimedOut, "").code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(KafkaErrorStatus(ErrorCode::kUnknownTopicOrPartition, "").code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(IsRetriableError(KafkaErrorStatus(ErrorCode::kUnknownTopicOrPartition, "")));
  EXPECT_EQ(KafkaErrorStatus(ErrorCode::kOffsetOutOfRange, "").code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(KafkaErrorStatus(ErrorCode::kInvalidPartitions, "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KafkaErrorStatus(ErrorCode::kOutOfOrderSequenceNumber, "").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(KafkaErrorStatus(ErrorCode::kNone, "").ok());

  absl::Status unknown = KafkaErrorStatusFromWire(999, "ctx");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnknown);
  EXPECT_TRUE(absl::StrContains(unknown.message(), "UNKNOWN_ERROR_CODE(999)")) << unknown;
  EXPECT_EQ(KafkaErrorCodeOf(unknown), std::nullopt);

  // Without a Kafka code, kUnavailable and kDeadlineExceeded count as retriable.
  EXPECT_TRUE(IsRetriableError(absl::UnavailableError("x")));
  EXPECT_FALSE(IsRetriableError(absl::InvalidArgumentError("x")));
  EXPECT_EQ(KafkaErrorCodeOf(absl::UnavailableError("x")), std::nullopt);
}

// Kafka's own murmur2 test vectors (clients/src/test/.../UtilsTest.java), and the partition
// choice toPositive(hash) % count.
TEST(PartitionerTest, Murmur2MatchesKafka) {
  EXPECT_EQ(Murmur2("21"), -973932308);
  EXPECT_EQ(Murmur2("foobar"), -790332482);
  EXPECT_EQ(Murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(Murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(Murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(Murmur2("abc"), 479470107);
  EXPECT_EQ(PartitionForKey("21", 7), ToPositive(-973932308) % 7);
  EXPECT_EQ(ToPositive(INT32_MIN), 0);
}

// The backoff doubles from the base up to the cap, and its jitter stays within 20% either way.
TEST(BackoffTest, ExponentialWithBoundedJitter) {
  Random random(7);
  for (int attempt = 0; attempt < 12; ++attempt) {
    const int64_t expected = std::min<int64_t>(int64_t{100} << attempt, 5'000);
    for (int i = 0; i < 50; ++i) {
      const int64_t backoff = BackoffMs(attempt, 100, 5'000, random);
      EXPECT_GE(backoff, expected * 8 / 10) << attempt;
      EXPECT_LE(backoff, expected * 12 / 10) << attempt;
    }
  }
}

TEST(ClientOptionsTest, ParsesBootstrapServersAndRejectsBadOptions) {
  absl::StatusOr<std::vector<NetworkAddress>> servers = ParseBootstrapServers("a:1, b:2");
  ASSERT_TRUE(servers.ok()) << servers.status();
  EXPECT_EQ(servers->size(), 2u);
  EXPECT_FALSE(ParseBootstrapServers("").ok());
  EXPECT_FALSE(ParseBootstrapServers("a").ok());
  EXPECT_FALSE(ParseBootstrapServers("a:0").ok());
  ClientOptions options;
  EXPECT_FALSE(ValidateClientOptions(options).ok());
  options.bootstrap_servers = *servers;
  EXPECT_TRUE(ValidateClientOptions(options).ok());
  options.retry_backoff_ms = options.retry_backoff_ms_max + 1;
  EXPECT_FALSE(ValidateClientOptions(options).ok());
}

// --- The simulated deployment: one broker node and one client node ---

class ClientSimTest : public ::testing::Test {
 protected:
  explicit ClientSimTest(uint64_t seed = 3, std::optional<sim::SimDiskOptions> broker_disk = {})
      : simulator_(sim::SimulatorOptions{.seed = seed}) {
    server::BrokerSettings settings;
    settings.listen = NetworkAddress{"broker", kBrokerPort};
    settings.defaults.auto_create_topics_enable = false;
    sim::NodeOptions broker_options{.name = "broker"};
    if (broker_disk.has_value()) {
      broker_options.has_own_disk_options = true;
      broker_options.disk = *broker_disk;
    }
    broker_node_ = simulator_.AddNode(broker_options, sim::BrokerNodeProgram(settings));
    client_node_ = simulator_.AddNode({.name = "client"}, [](Env&) {
      return std::make_shared<int>(0);
    });
    simulator_.StartNode(broker_node_);
    simulator_.StartNode(client_node_);
  }

  Env& env() { return *simulator_.NodeEnv(client_node_); }

  ClientOptions Options() {
    ClientOptions options;
    options.bootstrap_servers = {NetworkAddress{"broker", kBrokerPort}};
    options.request_timeout_ms = 2'000;
    options.connection_setup_timeout_ms = 2'000;
    return options;
  }

  bool RunUntil(const std::function<bool()>& done, int64_t timeout_us = 30 * kSecondUs) {
    return simulator_.RunUntilCondition(done, simulator_.NowUs() + timeout_us);
  }
  void RunFor(int64_t duration_us) { simulator_.RunFor(duration_us); }

  server::BrokerNode* broker() {
    auto* program =
        static_cast<sim::BrokerProgram*>(simulator_.NodeProgramObject(broker_node_).get());
    return program == nullptr ? nullptr : program->node.get();
  }
  void RestartBroker(CrashKind kind, int64_t downtime_us) {
    simulator_.CrashNode(broker_node_, kind);
    simulator_.RunFor(downtime_us);
    simulator_.StartNode(broker_node_);
    ASSERT_NE(broker(), nullptr);
  }

  std::unique_ptr<AdminClient> MakeAdmin() {
    AdminOptions options;
    options.client = Options();
    options.api_timeout_ms = 10'000;
    return *AdminClient::Create(env(), options);
  }

  void CreateTopic(const std::string& name, int32_t partitions,
                   std::map<std::string, std::string> configs = {}) {
    std::unique_ptr<AdminClient> admin = MakeAdmin();
    std::optional<absl::Status> result;
    admin->CreateTopic(NewTopic{name, partitions, 1, std::move(configs)}, {},
                       [&](const absl::Status& status) { result = status; });
    ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
    ASSERT_TRUE(result->ok()) << *result;
  }

  std::unique_ptr<Producer> MakeProducer(ProducerOptions options = {}) {
    options.client = Options();
    absl::StatusOr<std::unique_ptr<Producer>> producer = Producer::Create(env(), std::move(options));
    EXPECT_TRUE(producer.ok()) << producer.status();
    return *std::move(producer);
  }

  // Sends and waits for the outcome.
  absl::StatusOr<RecordMetadata> SendAndWait(Producer& producer, ProducerRecord record) {
    std::optional<absl::StatusOr<RecordMetadata>> outcome;
    absl::Status accepted = producer.Send(std::move(record), [&](absl::StatusOr<RecordMetadata> r) {
      outcome = std::move(r);
    });
    if (!accepted.ok()) return accepted;
    if (!RunUntil([&] { return outcome.has_value(); }, 200 * kSecondUs)) {
      return absl::DeadlineExceededError("no outcome");
    }
    return *outcome;
  }

  // A consumer that collects what it reads.
  struct Collected {
    std::map<TopicPartition, std::vector<ConsumerRecord>> records;
    std::map<TopicPartition, std::vector<int64_t>> high_watermarks;
    std::vector<std::pair<TopicPartition, absl::Status>> errors;
    size_t count(const TopicPartition& partition) const {
      auto it = records.find(partition);
      return it == records.end() ? 0 : it->second.size();
    }
  };
  std::unique_ptr<Consumer> MakeConsumer(Collected& collected, ConsumerOptions options = {}) {
    options.client = Options();
    options.on_records = [&collected](FetchedRecords fetched) {
      auto& records = collected.records[fetched.partition];
      for (ConsumerRecord& record : fetched.records) records.push_back(std::move(record));
      collected.high_watermarks[fetched.partition].push_back(fetched.high_watermark);
    };
    options.on_error = [&collected](const TopicPartition& partition, const absl::Status& error) {
      collected.errors.emplace_back(partition, error);
    };
    absl::StatusOr<std::unique_ptr<Consumer>> consumer = Consumer::Create(env(), std::move(options));
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    return *std::move(consumer);
  }

  sim::Simulator simulator_;
  NodeId broker_node_ = 0;
  NodeId client_node_ = 0;
};

ProducerRecord Record(std::string topic, std::optional<int32_t> partition, std::string key,
                      std::string value) {
  ProducerRecord record;
  record.topic = std::move(topic);
  record.partition = partition;
  record.key = std::move(key);
  record.value = std::move(value);
  return record;
}

// --- BrokerConnection ---

// The handshake picks, per api, the highest version both sides speak (the broker speaks the codec's
// whole range, so the client's maximum), and a burst of requests never has more than the window
// in flight while every one is answered in order.
TEST_F(ClientSimTest, ConnectionNegotiatesVersionsAndBoundsItsWindow) {
  ClientOptions options = Options();
  options.in_flight_requests_per_connection_max = 3;
  BrokerConnection connection(env(), options.bootstrap_servers[0], options, "broker");
  constexpr int kRequests = 20;
  std::vector<int> answered;
  size_t in_flight_max = 0;
  for (int i = 0; i < kRequests; ++i) {
    connection.Send(protocol::MetadataRequest{.topics = std::vector<protocol::MetadataRequest::Topic>{}},
                    [&, i](absl::StatusOr<ApiResponse> response) {
                      EXPECT_TRUE(response.ok()) << response.status();
                      answered.push_back(i);
                    });
  }
  EXPECT_TRUE(answered.empty()) << "callbacks never run inside Send";
  ASSERT_TRUE(RunUntil([&] {
    in_flight_max = std::max(in_flight_max, connection.in_flight_count());
    return answered.size() == kRequests;
  }));
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(answered[static_cast<size_t>(i)], i);
  EXPECT_LE(in_flight_max, 3u);
  EXPECT_GE(in_flight_max, 2u);
  EXPECT_EQ(connection.ApiVersion(protocol::ApiKey::kProduce), 8);
  EXPECT_EQ(connection.ApiVersion(protocol::ApiKey::kFetch), 11);
  EXPECT_EQ(connection.ApiVersion(protocol::ApiKey::kMetadata), 8);
  // The group coordinator advertises the group APIs.
  EXPECT_EQ(connection.ApiVersion(protocol::ApiKey::kJoinGroup), 5);
  EXPECT_EQ(connection.stats().handshakes_completed, 1u);
}

// A broker that does not listen: each attempt is refused, every queued request fails with the
// retriable NETWORK_EXCEPTION, and successive attempts are spaced by a growing backoff. Once the
// broker listens again, the next request goes through and the backoff starts over.
TEST_F(ClientSimTest, ConnectionFailsPendingRequestsAndReconnectsWithBackoff) {
  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  ClientOptions options = Options();
  options.reconnect_backoff_ms = 100;
  options.reconnect_backoff_ms_max = 800;
  BrokerConnection connection(env(), options.bootstrap_servers[0], options, "broker");
  std::vector<int64_t> failure_times_us;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::optional<absl::Status> result;
    connection.Send(protocol::ApiVersionsRequest{}, [&](absl::StatusOr<ApiResponse> response) {
      result = response.status();
    });
    ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
    EXPECT_EQ(KafkaErrorCodeOf(*result), ErrorCode::kNetworkException) << *result;
    EXPECT_TRUE(IsRetriableError(*result));
    failure_times_us.push_back(simulator_.NowUs());
  }
  EXPECT_EQ(connection.stats().connect_attempts, 5u);
  // Attempt n+1 waits for backoff n: 100, 200, 400, 800 ms, each within 20% jitter.
  for (size_t i = 1; i < failure_times_us.size(); ++i) {
    const int64_t expected_us = std::min<int64_t>(100 << (i - 1), 800) * 1000;
    EXPECT_GE(failure_times_us[i] - failure_times_us[i - 1], expected_us * 8 / 10) << i;
  }
  simulator_.StartNode(broker_node_);
  std::optional<absl::Status> result;
  connection.Send(protocol::ApiVersionsRequest{},
                  [&](absl::StatusOr<ApiResponse> response) { result = response.status(); });
  ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
  EXPECT_TRUE(result->ok()) << *result;
  EXPECT_TRUE(connection.ready());
}

// A request that gets no answer (the broker's replies are blocked by a one-way partition) fails
// with REQUEST_TIMED_OUT after its timeout, and the connection is dropped with it; a request still
// waiting in the queue at that moment fails with NETWORK_EXCEPTION. A full queue refuses at once.
TEST_F(ClientSimTest, ConnectionTimesOutRequestsAndBoundsItsQueue) {
  ClientOptions options = Options();
  options.request_timeout_ms = 1'000;
  options.in_flight_requests_per_connection_max = 1;
  options.queued_requests_per_connection_max = 3;
  BrokerConnection connection(env(), options.bootstrap_servers[0], options, "broker");
  std::optional<absl::Status> warmup;
  connection.Send(protocol::ApiVersionsRequest{},
                  [&](absl::StatusOr<ApiResponse> r) { warmup = r.status(); });
  ASSERT_TRUE(RunUntil([&] { return warmup.has_value(); }));
  ASSERT_TRUE(warmup->ok());

  simulator_.network().Partition({broker_node_}, {client_node_}, /*one_way=*/true);
  std::vector<absl::Status> results(4);
  std::vector<bool> done(4, false);
  for (size_t i = 0; i < 4; ++i) {
    connection.Send(protocol::ApiVersionsRequest{},
                    [&, i](absl::StatusOr<ApiResponse> r) {
                      results[i] = r.status();
                      done[i] = true;
                    },
                    RequestOptions{.timeout_ms = i == 0 ? 1'000 : 5'000});
  }
  // The fourth does not fit: requests are sent from a later turn, so all are still queued.
  ASSERT_TRUE(RunUntil([&] { return done[0] && done[1] && done[2] && done[3]; }));
  EXPECT_EQ(results[3].code(), absl::StatusCode::kResourceExhausted) << results[3];
  EXPECT_EQ(KafkaErrorCodeOf(results[0]), ErrorCode::kRequestTimedOut) << results[0];
  EXPECT_EQ(KafkaErrorCodeOf(results[1]), ErrorCode::kNetworkException) << results[1];
  EXPECT_EQ(KafkaErrorCodeOf(results[2]), ErrorCode::kNetworkException) << results[2];
  EXPECT_EQ(connection.stats().requests_timed_out, 1u);
  simulator_.network().HealAll();
}

// A broker that answers ApiVersions v2 with UNSUPPORTED_VERSION in the v0 layout (as a broker that
// only knows v0-v1 would): the client repeats the handshake at v1 on the same connection.
TEST(ConnectionHandshakeTest, FallsBackWhenTheBrokerRefusesTheApiVersionsVersion) {
  sim::Simulator simulator(sim::SimulatorOptions{.seed = 5});
  struct FakeBroker {
    explicit FakeBroker(Env& env) : env(env) {
      auto listener = env.network().Listen(
          NetworkAddress{"old-broker", kBrokerPort}, [this](ConnectionId id, const NetworkAddress&) {
            return ConnectionCallbacks{
                .on_receive = [this, id](absl::string_view bytes) { OnReceive(id, bytes); },
                .on_closed = [](const absl::Status&) {}};
          });
      EXPECT_TRUE(listener.ok());
    }
    void OnReceive(ConnectionId id, absl::string_view bytes) {
      reader.Append(bytes);
      while (true) {
        auto frame = reader.Next();
        ASSERT_TRUE(frame.ok());
        if (!frame->has_value()) return;
        absl::StatusOr<protocol::Request> request = protocol::DecodeRequest(**frame);
        ASSERT_TRUE(request.ok()) << request.status();
        versions_seen.push_back(request->header.api_version);
        protocol::RequestHeader header = request->header;
        protocol::ApiVersionsResponse body = protocol::MakeApiVersionsResponse(ErrorCode::kNone);
        for (auto& range : body.api_keys) {
          if (range.api_key == static_cast<int16_t>(protocol::ApiKey::kApiVersions)) {
            range.max_version = 1;
          }
        }
        if (header.api_version > 1) {
          // The v0 layout, as codec.h says a broker answers a version above its maximum.
          body.error_code = protocol::ToWire(ErrorCode::kUnsupportedVersion);
          header.api_version = 0;
        }
        absl::StatusOr<std::string> encoded = protocol::EncodeResponse(header, body);
        ASSERT_TRUE(encoded.ok()) << encoded.status();
        ASSERT_TRUE(env.network().Send(id, *encoded).ok());
      }
    }
    Env& env;
    protocol::FrameReader reader;
    std::vector<int16_t> versions_seen;
  };
  const NodeId broker = simulator.AddNode({.name = "old-broker"}, [](Env& env) {
    return std::make_shared<FakeBroker>(env);
  });
  const NodeId client = simulator.AddNode({.name = "client"}, [](Env&) {
    return std::make_shared<int>(0);
  });
  simulator.StartNode(broker);
  simulator.StartNode(client);
  ClientOptions options;
  options.bootstrap_servers = {NetworkAddress{"old-broker", kBrokerPort}};
  BrokerConnection connection(*simulator.NodeEnv(client), options.bootstrap_servers[0], options,
                              "old broker");
  connection.Connect();
  ASSERT_TRUE(simulator.RunUntilCondition([&] { return connection.ready(); }, 10 * kSecondUs));
  auto* fake = static_cast<FakeBroker*>(simulator.NodeProgramObject(broker).get());
  EXPECT_EQ(fake->versions_seen, (std::vector<int16_t>{2, 1}));
  EXPECT_EQ(connection.ApiVersion(protocol::ApiKey::kApiVersions), 1);
  EXPECT_EQ(connection.ApiVersion(protocol::ApiKey::kProduce), 8);
  EXPECT_EQ(connection.stats().connect_attempts, 1u);
}

// --- AdminClient ---

// Create (with a config and validate_only), list, describe, describe configs and delete, and the
// errors a user meets: an existing topic, a bad partition count or replication factor, an unknown
// topic. Each error carries the Kafka code by name.
TEST_F(ClientSimTest, AdminRoundTrips) {
  std::unique_ptr<AdminClient> admin = MakeAdmin();
  auto create = [&](NewTopic topic, CreateTopicsOptions options = {}) {
    std::optional<absl::Status> result;
    admin->CreateTopic(std::move(topic), options, [&](const absl::Status& s) { result = s; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }));
    return result.value_or(absl::InternalError("no answer"));
  };
  auto list = [&] {
    std::optional<absl::StatusOr<std::vector<std::string>>> result;
    admin->ListTopics(false, [&](absl::StatusOr<std::vector<std::string>> r) { result = r; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }));
    return result->value_or(std::vector<std::string>{"<error>"});
  };

  EXPECT_TRUE(create({"orders", 3, 1, {{"retention.ms", "3600000"}}}).ok());
  EXPECT_TRUE(create({"checked", 2, 1, {}}, {.validate_only = true}).ok());
  EXPECT_TRUE(create({"audit", -1, -1, {}}).ok());
  EXPECT_EQ(list(), (std::vector<std::string>{"audit", "orders"}));

  absl::Status exists = create({"orders", 3, 1, {}});
  EXPECT_EQ(exists.code(), absl::StatusCode::kAlreadyExists) << exists;
  EXPECT_TRUE(absl::StrContains(exists.message(), "TOPIC_ALREADY_EXISTS")) << exists;
  absl::Status partitions = create({"bad", 0, 1, {}});
  EXPECT_EQ(KafkaErrorCodeOf(partitions), ErrorCode::kInvalidPartitions) << partitions;
  absl::Status replication = create({"bad", 1, 3, {}});
  EXPECT_EQ(KafkaErrorCodeOf(replication), ErrorCode::kInvalidReplicationFactor) << replication;
  absl::Status config = create({"bad", 1, 1, {{"no.such.config", "1"}}});
  EXPECT_EQ(KafkaErrorCodeOf(config), ErrorCode::kInvalidConfig) << config;

  std::optional<absl::StatusOr<TopicDescription>> described;
  admin->DescribeTopic("orders", [&](absl::StatusOr<TopicDescription> r) { described = r; });
  ASSERT_TRUE(RunUntil([&] { return described.has_value(); }));
  ASSERT_TRUE(described->ok()) << described->status();
  ASSERT_EQ((*described)->partitions.size(), 3u);
  for (int32_t i = 0; i < 3; ++i) {
    const PartitionDescription& partition = (*described)->partitions[static_cast<size_t>(i)];
    EXPECT_EQ(partition.partition, i);
    EXPECT_EQ(partition.leader_id, 0);
    EXPECT_EQ(partition.replicas, std::vector<int32_t>{0});
    EXPECT_EQ(partition.isr, std::vector<int32_t>{0});
  }

  std::optional<absl::StatusOr<std::vector<ConfigEntry>>> configs;
  admin->DescribeTopicConfigs("orders", [&](absl::StatusOr<std::vector<ConfigEntry>> r) {
    configs = r;
  });
  ASSERT_TRUE(RunUntil([&] { return configs.has_value(); }));
  ASSERT_TRUE(configs->ok()) << configs->status();
  bool retention_seen = false;
  for (const ConfigEntry& entry : **configs) {
    if (entry.name == "retention.ms") {
      retention_seen = true;
      EXPECT_EQ(entry.value, "3600000");
      EXPECT_EQ(entry.source, "DYNAMIC_TOPIC_CONFIG");
      EXPECT_FALSE(entry.is_default);
    }
    if (entry.name == "cleanup.policy") {
      EXPECT_TRUE(entry.is_default);
    }
  }
  EXPECT_TRUE(retention_seen);

  std::optional<absl::StatusOr<std::vector<ConfigEntry>>> broker_configs;
  admin->DescribeBrokerConfigs(0, [&](absl::StatusOr<std::vector<ConfigEntry>> r) {
    broker_configs = r;
  });
  ASSERT_TRUE(RunUntil([&] { return broker_configs.has_value(); }));
  ASSERT_TRUE(broker_configs->ok()) << broker_configs->status();
  EXPECT_FALSE((*broker_configs)->empty());

  std::optional<absl::Status> deleted;
  admin->DeleteTopic("orders", [&](const absl::Status& s) { deleted = s; });
  ASSERT_TRUE(RunUntil([&] { return deleted.has_value(); }));
  EXPECT_TRUE(deleted->ok()) << *deleted;
  EXPECT_EQ(list(), (std::vector<std::string>{"audit"}));

  std::optional<absl::Status> deleted_again;
  admin->DeleteTopic("orders", [&](const absl::Status& s) { deleted_again = s; });
  ASSERT_TRUE(RunUntil([&] { return deleted_again.has_value(); }));
  EXPECT_EQ(KafkaErrorCodeOf(*deleted_again), ErrorCode::kUnknownTopicOrPartition) << *deleted_again;

  described.reset();
  admin->DescribeTopic("orders", [&](absl::StatusOr<TopicDescription> r) { described = r; });
  ASSERT_TRUE(RunUntil([&] { return described.has_value(); }));
  EXPECT_EQ(described->status().code(), absl::StatusCode::kNotFound) << described->status();
}

// An admin call made while the broker is down is retried until it comes back, within the call's
// timeout; past the timeout it fails with the last (retriable) error.
TEST_F(ClientSimTest, AdminRetriesWhileTheBrokerIsDown) {
  std::unique_ptr<AdminClient> admin = MakeAdmin();
  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  std::optional<absl::Status> result;
  admin->CreateTopic({"late", 1, 1, {}}, {}, [&](const absl::Status& s) { result = s; });
  RunFor(3 * kSecondUs);
  EXPECT_FALSE(result.has_value());
  simulator_.StartNode(broker_node_);
  ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
  EXPECT_TRUE(result->ok()) << *result;

  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  std::optional<absl::StatusOr<std::vector<std::string>>> listed;
  admin->ListTopics(false, [&](absl::StatusOr<std::vector<std::string>> r) { listed = r; });
  ASSERT_TRUE(RunUntil([&] { return listed.has_value(); }, 60 * kSecondUs));
  EXPECT_FALSE(listed->ok());
  EXPECT_TRUE(IsRetriableError(listed->status())) << listed->status();
}

// --- Producer ---

// Records sent within linger_ms of each other travel in one batch and one request, get consecutive
// offsets in send order, and are acknowledged no earlier than linger_ms after the first send.
// With a small batch_bytes_max, the same records need several batches.
TEST_F(ClientSimTest, ProducerBatchesWithinLinger) {
  CreateTopic("events", 1);
  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 50});
  const int64_t start_us = simulator_.NowUs();
  std::vector<int64_t> offsets(10, -2);
  int64_t first_ack_us = -1;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(producer
                    ->Send(Record("events", std::nullopt, "k", absl::StrCat("v", i)),
                           [&, i](absl::StatusOr<RecordMetadata> r) {
                             ASSERT_TRUE(r.ok()) << r.status();
                             offsets[static_cast<size_t>(i)] = r->offset;
                             if (first_ack_us < 0) first_ack_us = simulator_.NowUs();
                           })
                    .ok());
  }
  ASSERT_TRUE(RunUntil([&] { return offsets[9] != -2; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(offsets[static_cast<size_t>(i)], i);
  EXPECT_EQ(producer->stats().batches_sent, 1u);
  EXPECT_EQ(producer->stats().requests_sent, 1u);
  EXPECT_GE(first_ack_us - start_us, 50'000);
  EXPECT_EQ(producer->buffered_bytes(), 0u);
  EXPECT_EQ(producer->records_pending(), 0u);

  std::unique_ptr<Producer> small = MakeProducer({.linger_ms = 50, .batch_bytes_max = 200});
  int acked = 0;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(small->Send(Record("events", 0, "k", std::string(60, 'x')),
                            [&](absl::StatusOr<RecordMetadata> r) {
                              ASSERT_TRUE(r.ok()) << r.status();
                              ++acked;
                            })
                    .ok());
  }
  ASSERT_TRUE(RunUntil([&] { return acked == 10; }));
  EXPECT_GE(small->stats().batches_sent, 4u);
}

// acks=0 completes without offsets once the request is on the wire; acks=1 and acks=all return
// offsets. All three land in the log, as a consumer confirms. Keyed records go to the partition
// murmur2 picks.
TEST_F(ClientSimTest, ProducerAcksModes) {
  CreateTopic("acks", 4);
  for (Acks acks : {Acks::kNone, Acks::kLeader, Acks::kAll}) {
    std::unique_ptr<Producer> producer = MakeProducer({.acks = acks, .linger_ms = 0});
    const std::string key = absl::StrCat("key-", static_cast<int>(acks));
    absl::StatusOr<RecordMetadata> result =
        SendAndWait(*producer, Record("acks", std::nullopt, key, "value"));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->partition.partition, PartitionForKey(key, 4));
    if (acks == Acks::kNone) {
      EXPECT_EQ(result->offset, -1);
    } else {
      EXPECT_GE(result->offset, 0);
    }
  }
  Collected collected;
  std::unique_ptr<Consumer> consumer =
      MakeConsumer(collected, {.auto_offset_reset = OffsetReset::kEarliest});
  std::vector<TopicPartition> partitions;
  for (int32_t p = 0; p < 4; ++p) partitions.push_back({"acks", p});
  ASSERT_TRUE(consumer->Assign(partitions).ok());
  ASSERT_TRUE(RunUntil([&] {
    size_t total = 0;
    for (const auto& p : partitions) total += collected.count(p);
    return total == 3;
  }));
}

// A broker crash (each kind) while records are being sent: every record is still acknowledged,
// after retries, and each acknowledged record is in the log at its offset.
TEST_F(ClientSimTest, ProducerRetriesAcrossBrokerCrashes) {
  CreateTopic("crashy", 2);
  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 2});
  std::map<std::string, RecordMetadata> acked;
  int failed = 0;
  int sent = 0;
  auto send_some = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const std::string value = absl::StrCat("v", sent++);
      ASSERT_TRUE(producer
                      ->Send(Record("crashy", std::nullopt, value, value),
                             [&, value](absl::StatusOr<RecordMetadata> r) {
                               if (r.ok()) {
                                 acked[value] = *r;
                               } else {
                                 ++failed;
                                 ADD_FAILURE() << r.status();
                               }
                             })
                      .ok());
      RunFor(5'000);
    }
  };
  send_some(50);
  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  send_some(50);
  simulator_.StartNode(broker_node_);
  send_some(50);
  simulator_.CrashNode(broker_node_, CrashKind::kPowerLoss);
  send_some(50);
  RunFor(kSecondUs);
  simulator_.StartNode(broker_node_);
  ASSERT_TRUE(RunUntil([&] { return static_cast<int>(acked.size()) + failed == sent; }));
  EXPECT_EQ(failed, 0);
  EXPECT_GT(producer->stats().batch_retries, 0u);

  Collected collected;
  std::unique_ptr<Consumer> consumer =
      MakeConsumer(collected, {.auto_offset_reset = OffsetReset::kEarliest});
  ASSERT_TRUE(consumer->Assign({{"crashy", 0}, {"crashy", 1}}).ok());
  ASSERT_TRUE(RunUntil([&] {
    return collected.count({"crashy", 0}) + collected.count({"crashy", 1}) >= acked.size();
  }));
  RunFor(kSecondUs);
  std::map<std::pair<int32_t, int64_t>, std::string> log;
  for (const auto& [partition, records] : collected.records) {
    for (const ConsumerRecord& record : records) {
      log[{partition.partition, record.offset}] = record.value.value_or("<null>");
    }
  }
  for (const auto& [value, metadata] : acked) {
    auto it = log.find({metadata.partition.partition, metadata.offset});
    ASSERT_NE(it, log.end()) << value;
    EXPECT_EQ(it->second, value);
  }
}

// Responses lost to a one-way partition make the producer time out and resend batches the broker
// already appended. Without idempotence the log then holds duplicates (at-least-once); with it,
// the broker recognises the resent batches by producer id and sequence, and every record is in
// the log exactly once, at the offset it was acknowledged with.
TEST_F(ClientSimTest, IdempotentRetriesDoNotDuplicate) {
  CreateTopic("dedup", 1);
  for (bool idempotent : {false, true}) {
    const std::string topic = "dedup";
    std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 1, .idempotent = idempotent});
    // Warm up so that the producer id and the connection exist.
    ASSERT_TRUE(SendAndWait(*producer, Record(topic, 0, "warm", "warm")).ok());
    simulator_.network().Partition({broker_node_}, {client_node_}, /*one_way=*/true);
    std::map<std::string, int64_t> acked;
    const std::string prefix = idempotent ? "i" : "n";
    for (int i = 0; i < 20; ++i) {
      const std::string value = absl::StrCat(prefix, i);
      ASSERT_TRUE(producer
                      ->Send(Record(topic, 0, value, value),
                             [&, value](absl::StatusOr<RecordMetadata> r) {
                               ASSERT_TRUE(r.ok()) << r.status();
                               acked[value] = r->offset;
                             })
                      .ok());
      RunFor(2'000);
    }
    RunFor(6 * kSecondUs);
    simulator_.network().HealAll();
    ASSERT_TRUE(RunUntil([&] { return acked.size() == 20; }, 120 * kSecondUs));
    EXPECT_GT(producer->stats().batch_retries, 0u);

    Collected collected;
    std::unique_ptr<Consumer> consumer =
        MakeConsumer(collected, {.auto_offset_reset = OffsetReset::kEarliest});
    ASSERT_TRUE(consumer->Assign({{topic, 0}}).ok());
    std::optional<absl::StatusOr<std::map<TopicPartition, int64_t>>> end;
    consumer->EndOffsets({{topic, 0}}, [&](auto r) { end = r; });
    ASSERT_TRUE(RunUntil([&] { return end.has_value(); }));
    ASSERT_TRUE(end->ok());
    const int64_t end_offset = (**end)[{topic, 0}];
    ASSERT_TRUE(RunUntil([&] {
      return consumer->Position({topic, 0}).value_or(0) >= end_offset;
    }));
    std::map<std::string, std::vector<int64_t>> offsets_of;
    for (const ConsumerRecord& record : collected.records[{topic, 0}]) {
      if (absl::StartsWith(*record.value, prefix)) offsets_of[*record.value].push_back(record.offset);
    }
    size_t duplicates = 0;
    for (const auto& [value, offsets] : offsets_of) {
      duplicates += offsets.size() - 1;
      EXPECT_NE(std::find(offsets.begin(), offsets.end(), acked[value]), offsets.end()) << value;
    }
    EXPECT_EQ(offsets_of.size(), 20u);
    if (idempotent) {
      EXPECT_EQ(duplicates, 0u);
    } else {
      EXPECT_GT(duplicates, 0u) << "the scenario should make a plain producer duplicate";
    }
  }
}

// With the broker down, records accumulate until buffer_bytes_max, where Send refuses with
// kResourceExhausted; once the broker is back, every accepted record is acknowledged and the
// buffer empties, so Send accepts again.
TEST_F(ClientSimTest, ProducerBufferFullRefusesThenRecovers) {
  CreateTopic("buffered", 1);
  std::unique_ptr<Producer> producer =
      MakeProducer({.batch_bytes_max = 1024, .buffer_bytes_max = 8 * 1024});
  ASSERT_TRUE(SendAndWait(*producer, Record("buffered", 0, "k", "warm")).ok());
  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  int accepted = 0;
  int acked = 0;
  absl::Status refused;
  for (int i = 0; i < 1000 && refused.ok(); ++i) {
    refused = producer->Send(Record("buffered", 0, "k", std::string(100, 'x')),
                             [&](absl::StatusOr<RecordMetadata> r) {
                               ASSERT_TRUE(r.ok()) << r.status();
                               ++acked;
                             });
    if (refused.ok()) ++accepted;
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_GT(accepted, 40);
  EXPECT_LE(producer->buffered_bytes(), 8u * 1024u);
  simulator_.StartNode(broker_node_);
  ASSERT_TRUE(RunUntil([&] { return acked == accepted; }, 60 * kSecondUs));
  EXPECT_EQ(producer->buffered_bytes(), 0u);
  EXPECT_TRUE(SendAndWait(*producer, Record("buffered", 0, "k", "after")).ok());
}

// A broker that stays down past delivery_timeout_ms: the records fail with kDeadlineExceeded and
// say why. Records for a topic that does not exist fail the same way; a topic name the broker
// rejects fails at once with INVALID_TOPIC_EXCEPTION. Refusals at Send are immediate.
TEST_F(ClientSimTest, ProducerDeliveryTimeoutAndBadTopics) {
  CreateTopic("slow", 1);
  std::unique_ptr<Producer> producer = MakeProducer({.delivery_timeout_ms = 3'000});
  ASSERT_TRUE(SendAndWait(*producer, Record("slow", 0, "k", "warm")).ok());
  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  absl::StatusOr<RecordMetadata> late = SendAndWait(*producer, Record("slow", 0, "k", "late"));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  simulator_.StartNode(broker_node_);

  absl::StatusOr<RecordMetadata> missing = SendAndWait(*producer, Record("missing", 0, "k", "v"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDeadlineExceeded) << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "UNKNOWN_TOPIC_OR_PARTITION"))
      << missing.status();

  absl::StatusOr<RecordMetadata> invalid =
      SendAndWait(*producer, Record("bad name!", std::nullopt, "k", "v"));
  EXPECT_EQ(KafkaErrorCodeOf(invalid.status()), ErrorCode::kInvalidTopicException)
      << invalid.status();

  EXPECT_EQ(producer->Send(Record("slow", 7, "k", "v"), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(producer->Send(Record("", 0, "k", "v"), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(producer->Send(Record("slow", 0, "k", std::string(2 << 20, 'x')), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  producer->Close();
  EXPECT_EQ(producer->Send(Record("slow", 0, "k", "v"), nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
}

// Every compression codec round-trips records, headers, null keys and null values through the
// broker to the consumer.
TEST_F(ClientSimTest, CompressionHeadersAndNullsRoundTrip) {
  CreateTopic("codecs", 1);
  const std::vector<storage::Compression> codecs = {
      storage::Compression::kNone, storage::Compression::kGzip, storage::Compression::kSnappy,
      storage::Compression::kLz4, storage::Compression::kZstd};
  int expected = 0;
  for (storage::Compression codec : codecs) {
    std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 20, .compression = codec});
    int acked = 0;
    for (int i = 0; i < 5; ++i) {
      ProducerRecord record;
      record.topic = "codecs";
      record.partition = 0;
      if (i != 1) record.key = absl::StrCat("key", i);
      if (i != 2) record.value = absl::StrCat(storage::CompressionName(codec), "-", i);
      record.headers = {{"h", std::string("v")}, {"empty", std::nullopt}};
      ASSERT_TRUE(producer->Send(std::move(record), [&](absl::StatusOr<RecordMetadata> r) {
        ASSERT_TRUE(r.ok()) << r.status();
        ++acked;
      }).ok());
    }
    ASSERT_TRUE(RunUntil([&] { return acked == 5; }));
    expected += 5;
  }
  Collected collected;
  std::unique_ptr<Consumer> consumer =
      MakeConsumer(collected, {.auto_offset_reset = OffsetReset::kEarliest});
  ASSERT_TRUE(consumer->Assign({{"codecs", 0}}).ok());
  ASSERT_TRUE(RunUntil([&] { return collected.count({"codecs", 0}) == static_cast<size_t>(expected); }));
  const std::vector<ConsumerRecord>& records = collected.records[{"codecs", 0}];
  for (size_t c = 0; c < codecs.size(); ++c) {
    for (int i = 0; i < 5; ++i) {
      const ConsumerRecord& record = records[c * 5 + static_cast<size_t>(i)];
      EXPECT_EQ(record.offset, static_cast<int64_t>(c * 5) + i);
      EXPECT_EQ(record.key.has_value(), i != 1);
      EXPECT_EQ(record.value.has_value(), i != 2);
      if (i != 2) {
        EXPECT_EQ(*record.value, absl::StrCat(storage::CompressionName(codecs[c]), "-", i));
      }
      ASSERT_EQ(record.headers.size(), 2u);
      EXPECT_EQ(record.headers[0].key, "h");
      EXPECT_EQ(record.headers[0].value, "v");
      EXPECT_EQ(record.headers[1].value, std::nullopt);
    }
  }
}

// --- Consumer ---


class ConsumerSimTest : public ClientSimTest {
 protected:
  void SetUp() override {
    CreateTopic("log", 1);
    std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 0});
    int acked = 0;
    for (int i = 0; i < 20; ++i) {
      ProducerRecord record = Record("log", 0, absl::StrCat("k", i), absl::StrCat("v", i));
      record.timestamp_ms = (i + 1) * 1000;
      ASSERT_TRUE(producer->Send(std::move(record), [&](absl::StatusOr<RecordMetadata> r) {
        ASSERT_TRUE(r.ok()) << r.status();
        ++acked;
      }).ok());
    }
    ASSERT_TRUE(RunUntil([&] { return acked == 20; }));
  }
  const TopicPartition log_{"log", 0};
};

// Seek delivers from the offset asked for; SeekToBeginning and SeekToEnd move the position to the
// log's start and high watermark; a seek from inside the records callback takes effect at once.
TEST_F(ConsumerSimTest, SeekVariants) {
  Collected collected;
  std::unique_ptr<Consumer> consumer = MakeConsumer(collected);
  ASSERT_TRUE(consumer->Assign({log_}).ok());
  EXPECT_EQ(consumer->Seek({"other", 0}, 0).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(consumer->Seek(log_, 15).ok());
  ASSERT_TRUE(RunUntil([&] { return collected.count(log_) == 5; }));
  EXPECT_EQ(collected.records[log_].front().offset, 15);
  EXPECT_EQ(*collected.records[log_].front().value, "v15");
  EXPECT_EQ(collected.records[log_].front().timestamp_ms, 16'000);
  EXPECT_EQ(consumer->Position(log_), 20);
  EXPECT_EQ(consumer->HighWatermark(log_), 20);

  ASSERT_TRUE(consumer->SeekToBeginning({log_}).ok());
  ASSERT_TRUE(RunUntil([&] { return collected.count(log_) == 25; }));
  EXPECT_EQ(collected.records[log_][5].offset, 0);
  ASSERT_TRUE(consumer->SeekToEnd({log_}).ok());
  ASSERT_TRUE(RunUntil([&] { return consumer->Position(log_) == 20; }));
  RunFor(kSecondUs);
  EXPECT_EQ(collected.count(log_), 25u);
}

// OffsetsForTimes finds the first record at or after each time (and nothing past the last one);
// BeginningOffsets and EndOffsets give the log start and the high watermark; an unknown partition
// fails after the api timeout.
TEST_F(ConsumerSimTest, OffsetsForTimesAndListOffsets) {
  Collected collected;
  std::unique_ptr<Consumer> consumer = MakeConsumer(collected, {.default_api_timeout_ms = 3'000});
  std::optional<absl::StatusOr<std::map<TopicPartition, std::optional<OffsetAndTimestamp>>>> found;
  consumer->OffsetsForTimes({{log_, 5'500}}, [&](auto r) { found = r; });
  ASSERT_TRUE(RunUntil([&] { return found.has_value(); }));
  ASSERT_TRUE(found->ok()) << found->status();
  ASSERT_TRUE((**found)[log_].has_value());
  EXPECT_EQ((**found)[log_]->offset, 5);
  EXPECT_EQ((**found)[log_]->timestamp_ms, 6'000);

  found.reset();
  consumer->OffsetsForTimes({{log_, 50'000}}, [&](auto r) { found = r; });
  ASSERT_TRUE(RunUntil([&] { return found.has_value(); }));
  ASSERT_TRUE(found->ok()) << found->status();
  EXPECT_FALSE((**found)[log_].has_value());

  std::optional<absl::StatusOr<std::map<TopicPartition, int64_t>>> beginning, end;
  consumer->BeginningOffsets({log_}, [&](auto r) { beginning = r; });
  consumer->EndOffsets({log_}, [&](auto r) { end = r; });
  ASSERT_TRUE(RunUntil([&] { return beginning.has_value() && end.has_value(); }));
  ASSERT_TRUE(beginning->ok() && end->ok());
  EXPECT_EQ((**beginning)[log_], 0);
  EXPECT_EQ((**end)[log_], 20);

  std::optional<absl::StatusOr<std::map<TopicPartition, int64_t>>> unknown;
  consumer->EndOffsets({{"nope", 0}}, [&](auto r) { unknown = r; });
  ASSERT_TRUE(RunUntil([&] { return unknown.has_value(); }));
  EXPECT_EQ(unknown->status().code(), absl::StatusCode::kDeadlineExceeded) << unknown->status();
  EXPECT_TRUE(absl::StrContains(unknown->status().message(), "UNKNOWN_TOPIC_OR_PARTITION"))
      << unknown->status();
}

// auto_offset_reset: earliest reads everything, latest only what comes after, none reads nothing
// and reports the missing position. An out-of-range Seek resets by the policy (none: reported as
// OFFSET_OUT_OF_RANGE).
TEST_F(ConsumerSimTest, ResetPolicies) {
  Collected earliest_seen, latest_seen, none_seen;
  std::unique_ptr<Consumer> earliest =
      MakeConsumer(earliest_seen, {.auto_offset_reset = OffsetReset::kEarliest});
  std::unique_ptr<Consumer> latest =
      MakeConsumer(latest_seen, {.auto_offset_reset = OffsetReset::kLatest});
  std::unique_ptr<Consumer> none =
      MakeConsumer(none_seen, {.auto_offset_reset = OffsetReset::kNone});
  ASSERT_TRUE(earliest->Assign({log_}).ok());
  ASSERT_TRUE(latest->Assign({log_}).ok());
  ASSERT_TRUE(none->Assign({log_}).ok());
  ASSERT_TRUE(RunUntil([&] {
    return earliest_seen.count(log_) == 20 && latest->Position(log_) == 20 &&
           !none_seen.errors.empty();
  }));
  EXPECT_EQ(none_seen.errors[0].second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(none->Position(log_), std::nullopt);

  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 0});
  ASSERT_TRUE(SendAndWait(*producer, Record("log", 0, "k", "new")).ok());
  ASSERT_TRUE(RunUntil([&] { return earliest_seen.count(log_) == 21 && latest_seen.count(log_) == 1; }));
  EXPECT_EQ(*latest_seen.records[log_][0].value, "new");
  EXPECT_EQ(none_seen.count(log_), 0u);

  // Beyond the end: earliest starts over from 0; none reports OFFSET_OUT_OF_RANGE.
  ASSERT_TRUE(earliest->Seek(log_, 1000).ok());
  ASSERT_TRUE(RunUntil([&] { return earliest_seen.count(log_) == 42; }));
  EXPECT_EQ(earliest_seen.records[log_][21].offset, 0);
  ASSERT_TRUE(none->Seek(log_, 1000).ok());
  ASSERT_TRUE(RunUntil([&] { return none_seen.errors.size() == 2; }));
  EXPECT_EQ(KafkaErrorCodeOf(none_seen.errors[1].second), ErrorCode::kOffsetOutOfRange)
      << none_seen.errors[1].second;
  ASSERT_TRUE(none->Seek(log_, 19).ok());
  ASSERT_TRUE(RunUntil([&] { return none_seen.count(log_) == 2; }));
}

// Long poll: a consumer with nothing to read holds one fetch open for fetch_max_wait_ms instead of
// polling, yet a record produced meanwhile arrives at once, not at the end of the wait.
TEST_F(ConsumerSimTest, LongPollWaitsAndWakesOnData) {
  Collected collected;
  std::unique_ptr<Consumer> consumer =
      MakeConsumer(collected, {.fetch_max_wait_ms = 2'000});
  ASSERT_TRUE(consumer->Assign({log_}).ok());
  ASSERT_TRUE(RunUntil([&] { return consumer->Position(log_) == 20; }));
  const uint64_t fetches_before = consumer->stats().fetches_sent;
  RunFor(10 * kSecondUs);
  const uint64_t fetches = consumer->stats().fetches_sent - fetches_before;
  EXPECT_GE(fetches, 4u);
  EXPECT_LE(fetches, 7u);

  RunFor(700'000);  // into the middle of a wait
  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 0});
  int64_t acked_us = -1;
  ASSERT_TRUE(producer->Send(Record("log", 0, "k", "wake"), [&](absl::StatusOr<RecordMetadata> r) {
    ASSERT_TRUE(r.ok());
    acked_us = simulator_.NowUs();
  }).ok());
  ASSERT_TRUE(RunUntil([&] { return collected.count(log_) == 1; }));
  ASSERT_GE(acked_us, 0);
  EXPECT_LT(simulator_.NowUs() - acked_us, 100'000);
}

// A consumer reading while the broker crashes and restarts (process crash and power loss) and a
// producer keeps writing: it reads every acknowledged record, each offset exactly once and in
// order, and the high watermark it sees never goes down. Each round waits until the clients have
// caught up with the restarted broker (the consumer's long poll is then in flight), so that every
// crash interrupts real work: fetches fail, and the position must survive that.
TEST_F(ConsumerSimTest, PositionNeverSkipsOrRepeatsAcrossCrashes) {
  Collected collected;
  std::unique_ptr<Consumer> consumer =
      MakeConsumer(collected, {.fetch_max_wait_ms = 100,
                               .auto_offset_reset = OffsetReset::kEarliest});
  ASSERT_TRUE(consumer->Assign({log_}).ok());
  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 1});
  int acked = 0;
  int64_t last_acked_offset = -1;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(producer->Send(Record("log", 0, "k", absl::StrCat("r", round, "-", i)),
                                 [&](absl::StatusOr<RecordMetadata> r) {
                                   ASSERT_TRUE(r.ok()) << r.status();
                                   ++acked;
                                   last_acked_offset = std::max(last_acked_offset, r->offset);
                                 }).ok());
      RunFor(3'000);
    }
    ASSERT_TRUE(RunUntil([&] { return acked == 30 * (round + 1); }, 60 * kSecondUs));
    ASSERT_TRUE(RunUntil([&] { return consumer->Position(log_) > last_acked_offset; },
                         60 * kSecondUs));
    RestartBroker(round % 2 == 0 ? CrashKind::kProcess : CrashKind::kPowerLoss, 300'000);
  }
  ASSERT_TRUE(RunUntil([&] { return acked == 180; }, 60 * kSecondUs));
  ASSERT_TRUE(RunUntil([&] { return consumer->Position(log_) > last_acked_offset; }, 60 * kSecondUs));
  const std::vector<ConsumerRecord>& records = collected.records[log_];
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(records[i].offset, static_cast<int64_t>(i)) << "skip or repeat at " << i;
  }
  const std::vector<int64_t>& marks = collected.high_watermarks[log_];
  for (size_t i = 1; i < marks.size(); ++i) EXPECT_GE(marks[i], marks[i - 1]);
  EXPECT_TRUE(collected.errors.empty());
  EXPECT_GE(consumer->stats().fetch_failures, 6u);
}

// After a restart the broker listens only once the recovered tail of every log is durable again,
// so its high watermarks start where they were: a consumer that reconnects never sees one go back
// (which would make auto_offset_reset=latest or SeekToEnd re-read the partition). A slow fsync
// (200 ms) makes the window before the first sync wide.
class SlowSyncBrokerTest : public ClientSimTest {
 protected:
  SlowSyncBrokerTest()
      : ClientSimTest(3, sim::SimDiskOptions{.sync_latency_us_min = 200'000,
                                             .sync_latency_us_max = 200'000}) {}
};

TEST_F(SlowSyncBrokerTest, HighWatermarkDoesNotRegressAfterRestart) {
  CreateTopic("hw", 1);
  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 0});
  int acked = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(producer->Send(Record("hw", 0, "k", absl::StrCat("v", i)),
                               [&](absl::StatusOr<RecordMetadata> r) {
                                 ASSERT_TRUE(r.ok()) << r.status();
                                 ++acked;
                               }).ok());
  }
  ASSERT_TRUE(RunUntil([&] { return acked == 100; }));
  Collected collected;
  std::unique_ptr<Consumer> consumer = MakeConsumer(collected, {.fetch_max_wait_ms = 10});
  std::optional<absl::StatusOr<std::map<TopicPartition, int64_t>>> before;
  consumer->EndOffsets({{"hw", 0}}, [&](auto r) { before = r; });
  ASSERT_TRUE(RunUntil([&] { return before.has_value(); }));
  ASSERT_TRUE(before->ok());
  const TopicPartition partition{"hw", 0};
  EXPECT_EQ((**before)[partition], 100);

  RestartBroker(CrashKind::kProcess, 1'000);
  std::optional<absl::StatusOr<std::map<TopicPartition, int64_t>>> after;
  consumer->EndOffsets({{"hw", 0}}, [&](auto r) { after = r; });
  ASSERT_TRUE(RunUntil([&] { return after.has_value(); }));
  ASSERT_TRUE(after->ok()) << after->status();
  EXPECT_EQ((**after)[partition], 100) << "the high watermark went back after the restart";
}

// A partition whose log fails its recovery sync after a crash is offline until the broker restarts
// on a healthy disk (Fetch, ListOffsets and Produce answer KAFKA_STORAGE_ERROR, Metadata shows it
// leaderless). The clients wait it out as they would for Kafka: the producer holds its records and
// the consumer reports nothing, neither ever sees the high watermark go back, and the other
// partition serves on. After a healthy restart every held record is delivered and read once.
TEST_F(ClientSimTest, ClientsWaitOutAPartitionOfflineAfterAFailedRecovery) {
  // Upper-case: the logs open in name order, each starting the sync of its recovered tail, so
  // this one sorts before __consumer_offsets and gets the failed sync.
  const TopicPartition offline{"Fragile", 0};
  const TopicPartition online{"sturdy", 0};
  CreateTopic(offline.topic, 1);
  CreateTopic(online.topic, 1);
  std::unique_ptr<Producer> producer = MakeProducer({.linger_ms = 0});
  std::map<std::string, absl::StatusOr<RecordMetadata>> outcomes;
  auto send = [&](const TopicPartition& partition, const std::string& value) {
    ASSERT_TRUE(producer
                    ->Send(Record(partition.topic, partition.partition, value, value),
                           [&outcomes, value](absl::StatusOr<RecordMetadata> r) {
                             outcomes.emplace(value, std::move(r));
                           })
                    .ok());
  };
  for (int i = 0; i < 10; ++i) {
    send(offline, absl::StrCat("f", i));
    send(online, absl::StrCat("s", i));
  }
  ASSERT_TRUE(RunUntil([&] { return outcomes.size() == 20; }));
  for (const auto& [value, outcome] : outcomes) ASSERT_TRUE(outcome.ok()) << outcome.status();
  Collected collected;
  std::unique_ptr<Consumer> consumer =
      MakeConsumer(collected, {.fetch_max_wait_ms = 100,
                               .auto_offset_reset = OffsetReset::kEarliest,
                               .default_api_timeout_ms = 3'000});
  ASSERT_TRUE(consumer->Assign({offline, online}).ok());
  ASSERT_TRUE(RunUntil(
      [&] { return collected.count(offline) == 10 && collected.count(online) == 10; }));

  simulator_.CrashNode(broker_node_, CrashKind::kProcess);
  simulator_.disk(broker_node_).FailNextSync();
  simulator_.StartNode(broker_node_);
  ASSERT_NE(broker(), nullptr);
  ASSERT_TRUE(RunUntil([&] { return !broker()->topics().Find(offline.topic, 0)->failure().ok(); }));
  ASSERT_TRUE(broker()->topics().Find(online.topic, 0)->failure().ok());
  for (int i = 10; i < 15; ++i) {
    send(offline, absl::StrCat("f", i));
    send(online, absl::StrCat("s", i));
  }
  ASSERT_TRUE(RunUntil([&] { return collected.count(online) == 15; }));
  std::optional<absl::StatusOr<std::map<TopicPartition, int64_t>>> end;
  consumer->EndOffsets({offline}, [&](auto r) { end = r; });
  ASSERT_TRUE(RunUntil([&] { return end.has_value(); }));
  ASSERT_FALSE(end->ok()) << "an offline partition has no end offset to show";
  EXPECT_EQ(end->status().code(), absl::StatusCode::kDeadlineExceeded) << end->status();
  EXPECT_TRUE(IsRetriableError(end->status())) << end->status();
  RunFor(5 * kSecondUs);
  EXPECT_EQ(outcomes.size(), 25u) << "the offline partition's records are held, not failed";
  EXPECT_EQ(collected.count(offline), 10u);
  EXPECT_TRUE(collected.errors.empty()) << collected.errors.front().second;

  RestartBroker(CrashKind::kProcess, 1'000);
  ASSERT_TRUE(RunUntil([&] { return outcomes.size() == 30 && collected.count(offline) == 15; }));
  for (const auto& [value, outcome] : outcomes) {
    EXPECT_TRUE(outcome.ok()) << value << ": " << outcome.status();
  }
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(collected.records[offline][i].offset, i);
    EXPECT_EQ(*collected.records[offline][i].value, absl::StrCat("f", i));
  }
  for (const auto& [partition, high_watermarks] : collected.high_watermarks) {
    EXPECT_TRUE(std::is_sorted(high_watermarks.begin(), high_watermarks.end()))
        << partition.ToString() << ": the high watermark went back";
  }
  EXPECT_TRUE(collected.errors.empty());
}

}  // namespace
}  // namespace runnel::client
