// The simulated world of the server tests: one node runs a BrokerNode over its SimEnv, another
// node runs TestClient, a tiny Kafka client that speaks through the codec (EncodeRequest /
// DecodeResponse) over the simulated network, with its latencies and split deliveries. Used by
// kafka_server_test and group_coordinator_test.
#ifndef RUNNEL_TESTS_SERVER_TEST_WORLD_H_
#define RUNNEL_TESTS_SERVER_TEST_WORLD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "broker/env/env.h"
#include "broker/protocol/codec.h"
#include "broker/server/broker_node.h"
#include "broker/server/broker_settings.h"
#include "gtest/gtest.h"
#include "sim/broker_program.h"
#include "sim/simulator.h"

namespace runnel::server {

inline constexpr int64_t kWaitUs = 30'000'000;
inline constexpr uint16_t kBrokerPort = 9092;
inline constexpr char kBrokerHost[] = "broker";

inline int16_t Wire(protocol::ErrorCode code) { return protocol::ToWire(code); }

// --- A tiny Kafka client over the simulated network ----------------------------------------------

class TestClient {
 public:
  TestClient(Env& env, const NetworkAddress& address)
      : env_(env), state_(std::make_shared<State>()) {
    std::weak_ptr<State> weak = state_;
    id_ = env.network().Connect(address, ConnectionCallbacks{
                                             .on_connected =
                                                 [weak](const absl::Status& status) {
                                                   std::shared_ptr<State> state = weak.lock();
                                                   if (state == nullptr) return;
                                                   if (status.ok()) {
                                                     state->connected = true;
                                                   } else {
                                                     state->closed = true;
                                                     state->close_status = status;
                                                   }
                                                 },
                                             .on_receive =
                                                 [weak](absl::string_view bytes) {
                                                   std::shared_ptr<State> state = weak.lock();
                                                   if (state != nullptr) state->Receive(bytes);
                                                 },
                                             .on_closed =
                                                 [weak](const absl::Status& status) {
                                                   std::shared_ptr<State> state = weak.lock();
                                                   if (state == nullptr) return;
                                                   state->closed = true;
                                                   state->close_status = status;
                                                 },
                                         });
  }
  ~TestClient() {
    if (!state_->closed) env_.network().Close(id_);
  }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Sends a request; returns its correlation id. `expect_response` false for acks=0 produce.
  int32_t Send(const protocol::RequestBody& body, int16_t version, bool expect_response = true) {
    const int32_t correlation_id = next_correlation_id_++;
    protocol::RequestHeader header{.api_key = protocol::ApiKeyOf(body),
                                   .api_version = version,
                                   .correlation_id = correlation_id,
                                   .client_id = std::string("test-client")};
    absl::StatusOr<std::string> frame = protocol::EncodeRequest(header, body);
    EXPECT_TRUE(frame.ok()) << frame.status();
    if (!frame.ok()) return -1;
    if (expect_response) state_->expected[correlation_id] = {header.api_key, version};
    SendRaw(*frame);
    return correlation_id;
  }
  // Registers a correlation id for a hand-made request.
  void Expect(int32_t correlation_id, protocol::ApiKey api, int16_t decode_version) {
    state_->expected[correlation_id] = {api, decode_version};
  }
  void SendRaw(absl::string_view bytes) {
    absl::Status sent = env_.network().Send(id_, bytes);
    EXPECT_TRUE(sent.ok() || state_->closed) << sent;
  }
  void SetReceivePaused(bool paused) { env_.network().SetReceivePaused(id_, paused); }

  bool closed() const { return state_->closed; }
  bool connected() const { return state_->connected; }
  bool Has(int32_t correlation_id) const { return state_->responses.contains(correlation_id); }
  size_t response_count() const { return state_->responses.size(); }
  const std::vector<int32_t>& arrival_order() const { return state_->arrival_order; }
  const std::string& protocol_error() const { return state_->protocol_error; }

  protocol::Response Take(int32_t correlation_id) {
    auto it = state_->responses.find(correlation_id);
    EXPECT_NE(it, state_->responses.end()) << "no response to " << correlation_id;
    if (it == state_->responses.end()) return {};
    protocol::Response response = std::move(it->second);
    state_->responses.erase(it);
    return response;
  }

 private:
  struct State {
    protocol::FrameReader reader;
    std::map<int32_t, std::pair<protocol::ApiKey, int16_t>> expected;
    std::map<int32_t, protocol::Response> responses;
    std::vector<int32_t> arrival_order;
    std::string protocol_error;
    bool connected = false;
    bool closed = false;
    absl::Status close_status;

    // Decodes every complete response frame received.
    void Receive(absl::string_view bytes);
  };

  Env& env_;
  std::shared_ptr<State> state_;
  ConnectionId id_ = kNoConnection;
  int32_t next_correlation_id_ = 1;
};

// A CreateTopics request for one topic.
inline protocol::CreateTopicsRequest CreateTopics(
    const std::string& name, int32_t partitions, int16_t replication_factor = -1,
    std::vector<std::pair<std::string, std::string>> configs = {}, bool validate_only = false) {
  protocol::CreateTopicsRequest request;
  request.timeout_ms = 30'000;
  request.validate_only = validate_only;
  auto& topic = request.topics.emplace_back();
  topic.name = name;
  topic.num_partitions = partitions;
  topic.replication_factor = replication_factor;
  for (auto& [config_name, value] : configs) topic.configs.push_back({config_name, value});
  return request;
}

// --- The simulated world ------------------------------------------------------------------------

// What the broker node runs: its BrokerNode, or why it did not start.
using BrokerHost = sim::BrokerProgram;

struct ClientHost {
  explicit ClientHost(Env& env_in) : env(env_in) {}
  Env& env;
};

// A disk without faults and with short sync latencies.
sim::SimDiskOptions QuietDisk();

// A broker node and a client node. The broker starts with `config`: set it before the first Start();
// restarts keep what the first start read, as a deployed broker keeps its configuration file.
class World {
 public:
  explicit World(uint64_t seed = 7) : simulator_(sim::SimulatorOptions{.seed = seed}) {
    config_.set_listen(absl::StrCat(kBrokerHost, ":", kBrokerPort));
    config_.set_cluster_id("test-cluster");
    sim::NodeOptions broker_options{.name = kBrokerHost};
    broker_options.has_own_disk_options = true;
    broker_options.disk = QuietDisk();
    broker_ = simulator_.AddNode(broker_options, [this](Env& env) -> std::shared_ptr<void> {
      if (!broker_program_) {
        absl::StatusOr<BrokerSettings> settings = ResolveBrokerConfig(config_);
        if (!settings.ok()) {
          auto refused = std::make_shared<BrokerHost>();
          refused->status = settings.status();
          broker_host_ = refused.get();
          return refused;
        }
        broker_program_ = sim::BrokerNodeProgram(*std::move(settings));
      }
      std::shared_ptr<void> program = broker_program_(env);
      broker_host_ = static_cast<BrokerHost*>(program.get());
      return program;
    });
    client_ = simulator_.AddNode(sim::NodeOptions{.name = "client"}, [this](Env& env) {
      auto host = std::make_shared<ClientHost>(env);
      client_host_ = host.get();
      return std::shared_ptr<void>(host);
    });
    simulator_.StartNode(client_);
  }
  ~World() {
    // Test clients live on the client node; they are gone before it stops.
    simulator_.CrashNode(broker_, sim::CrashKind::kProcess);
  }

  BrokerConfig& config() { return config_; }
  // Starts the broker and waits until it listens (after a crash, once its recovery syncs are done).
  void Start() {
    simulator_.StartNode(broker_);
    ASSERT_TRUE(broker_host_->status.ok()) << broker_host_->status;
    ASSERT_TRUE(RunUntil([&] { return broker_host_->node->serving(); }));
  }
  void Crash(sim::CrashKind kind) {
    broker_host_ = nullptr;
    simulator_.CrashNode(broker_, kind);
  }
  void Restart(sim::CrashKind kind) {
    Crash(kind);
    Start();
  }
  BrokerNode& node() { return *broker_host_->node; }
  BrokerHost* broker_host() { return broker_host_; }
  Env& client_env() { return client_host_->env; }
  sim::Simulator& simulator() { return simulator_; }
  NodeId broker_id() const { return broker_; }

  std::unique_ptr<TestClient> Connect() {
    auto client =
        std::make_unique<TestClient>(client_env(), NetworkAddress{kBrokerHost, kBrokerPort});
    RunUntil([&] { return client->connected() || client->closed(); });
    EXPECT_TRUE(client->connected());
    return client;
  }

  bool RunUntil(const std::function<bool()>& done, int64_t timeout_us = kWaitUs) {
    return simulator_.RunUntilCondition(done, simulator_.NowUs() + timeout_us);
  }
  void RunFor(int64_t us) { simulator_.RunFor(us); }
  int64_t NowUs() const { return const_cast<sim::Simulator&>(simulator_).NowUs(); }

  // Sends a request and runs until its response; the response body, or nullopt on a timeout or
  // closed connection.
  template <typename Response>
  std::optional<Response> Call(TestClient& client, const protocol::RequestBody& body,
                               int16_t version) {
    const int32_t correlation_id = client.Send(body, version);
    RunUntil([&] { return client.Has(correlation_id) || client.closed(); });
    EXPECT_TRUE(client.Has(correlation_id))
        << "no response; closed=" << client.closed() << " " << client.protocol_error();
    if (!client.Has(correlation_id)) return std::nullopt;
    protocol::Response response = client.Take(correlation_id);
    EXPECT_TRUE(std::holds_alternative<Response>(response.body));
    return std::get<Response>(std::move(response.body));
  }

  // Creates a topic through CreateTopics and checks it worked.
  void CreateTopic(TestClient& client, const std::string& name, int32_t partitions = 1,
                   std::vector<std::pair<std::string, std::string>> configs = {}) {
    auto response = Call<protocol::CreateTopicsResponse>(
        client, CreateTopics(name, partitions, -1, std::move(configs)), 4);
    ASSERT_TRUE(response.has_value());
    ASSERT_EQ(response->topics.size(), 1u);
    ASSERT_EQ(response->topics[0].error_code, 0) << response->topics[0].error_message.value_or("");
  }

 private:
  sim::Simulator simulator_;
  BrokerConfig config_;
  // The broker's node program, made from config_ at the first start.
  sim::NodeProgram broker_program_;
  NodeId broker_ = 0;
  NodeId client_ = 0;
  BrokerHost* broker_host_ = nullptr;
  ClientHost* client_host_ = nullptr;
};

}  // namespace runnel::server

#endif  // RUNNEL_TESTS_SERVER_TEST_WORLD_H_
