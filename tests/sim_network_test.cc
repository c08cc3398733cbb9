// Tests of sim/sim_network.h, the simulated network, against the contract of broker/env/network.h.
//
// Every test runs a real Simulator whose nodes run a small test program (TestNode). The test drives
// the nodes' Envs (Listen, Connect, Send, Close) between simulator steps, and every connection
// callback appends to a ConnLog owned by the fixture, so logs outlive crashed programs. Callbacks
// capture the program's "alive" flag: a callback of a destroyed program is counted as stale instead
// of touching freed memory. After every test, TearDown checks the contract's per-connection
// invariants on every log (on_connected first and once for outgoing connections, nothing after a
// failed connect or on_closed, at most one on_closed, no stale callbacks), so each scenario is also
// checked for callback order, not only for its headline property. Receive pausing is tested at the
// end, by scenario, by a property over random operation sequences (rapidcheck) and for determinism.
#include "sim/sim_network.h"

#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/env/random.h"
#include "gtest/gtest.h"
#include "sim/simulator.h"

namespace runnel::sim {
namespace {

// Everything one end of one connection saw, in order.
struct ConnLog {
  NodeId node = -1;
  uint64_t incarnation = 0;
  ConnectionId id = kNoConnection;
  bool accepted = false;
  NetworkAddress peer;  // for accepted connections: as reported to on_accept
  std::string received;
  std::vector<std::string> chunks;
  std::vector<int64_t> receive_times_us;
  // "connected <CODE>", "receive", "closed <CODE>".
  std::vector<std::string> events;
  std::optional<absl::Status> connect_status;
  int64_t connect_time_us = -1;
  std::optional<absl::Status> close_status;
  int64_t close_time_us = -1;
  // Code run inside the callbacks, as a node's own logic would.
  std::function<void(ConnLog&)> on_connected_hook;
  std::function<void(ConnLog&, absl::string_view)> on_receive_hook;
};

class NetworkTest;

// A node's program: holds its Env and an "alive" flag its callbacks check.
class TestNode {
 public:
  TestNode(Env& env, NetworkTest* test);
  ~TestNode();
  Env& env() { return env_; }
  const std::shared_ptr<bool>& alive() const { return alive_; }

 private:
  Env& env_;
  NetworkTest* test_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

class NetworkTest : public ::testing::Test {
 protected:
  friend class TestNode;
  static constexpr uint16_t kPort = 9092;

  NetworkTest() { options_.seed = 11; }
  // The simulator goes first: destroying it destroys the programs, whose destructors use the
  // fixture's hooks and logs.
  ~NetworkTest() override { simulator_.reset(); }

  // Creates the simulator; tests adjust options_ first if they need to.
  Simulator& sim() {
    if (simulator_ == nullptr) {
      simulator_ = std::make_unique<Simulator>(options_);
      simulator_->trace().KeepInMemory(1'000'000);
    }
    return *simulator_;
  }

  NodeId AddNode(const std::string& name) {
    NodeOptions node;
    node.name = name;
    const NodeId id =
        sim().AddNode(node, [this](Env& env) { return std::make_shared<TestNode>(env, this); });
    sim().StartNode(id);
    return id;
  }

  // Every delivery takes exactly `latency_us`, so tests can name the times of events. Call before
  // sim() is first used.
  void FixLatency(int64_t latency_us) {
    options_.network.latency_us_min = latency_us;
    options_.network.latency_us_max = latency_us;
  }

  // The usual two nodes: "node-a", the server, listening on kPort, and "node-b", the client.
  std::pair<NodeId, NodeId> ServerAndClient() {
    const NodeId server = AddNode("node-a");
    const NodeId client = AddNode("node-b");
    Listen(server);
    return {server, client};
  }

  Env& env(NodeId node) {
    Env* env = sim().NodeEnv(node);
    EXPECT_NE(env, nullptr) << "node " << node << " is down";
    return *env;
  }
  TestNode& program(NodeId node) {
    return *static_cast<TestNode*>(sim().NodeProgramObject(node).get());
  }
  NetworkAddress Address(NodeId node, uint16_t port = kPort) {
    return NetworkAddress{sim().NodeName(node), port};
  }

  ConnectionCallbacks MakeCallbacks(ConnLog* log, std::shared_ptr<bool> alive) {
    ConnectionCallbacks callbacks;
    callbacks.on_connected = [this, log, alive](const absl::Status& status) {
      if (!*alive) {
        ++stale_callbacks_;
        return;
      }
      log->connect_status = status;
      log->connect_time_us = sim().NowUs();
      log->events.push_back(absl::StrCat("connected ", absl::StatusCodeToString(status.code())));
      if (log->on_connected_hook) log->on_connected_hook(*log);
    };
    callbacks.on_receive = [this, log, alive](absl::string_view bytes) {
      if (!*alive) {
        ++stale_callbacks_;
        return;
      }
      if (log->events.empty() || log->events.back() != "receive") log->events.push_back("receive");
      log->received.append(bytes.data(), bytes.size());
      log->chunks.emplace_back(bytes);
      log->receive_times_us.push_back(sim().NowUs());
      if (log->on_receive_hook) log->on_receive_hook(*log, bytes);
    };
    callbacks.on_closed = [this, log, alive](const absl::Status& status) {
      if (!*alive) {
        ++stale_callbacks_;
        return;
      }
      log->close_status = status;
      log->close_time_us = sim().NowUs();
      log->events.push_back(absl::StrCat("closed ", absl::StatusCodeToString(status.code())));
    };
    return callbacks;
  }

  // Listens on `port` of `node`; accepted connections get a ConnLog, then accept_hook_ runs.
  ListenerId Listen(NodeId node, uint16_t port = kPort) {
    std::shared_ptr<bool> alive = program(node).alive();
    const uint64_t incarnation = sim().Incarnation(node);
    absl::StatusOr<ListenerId> listener = env(node).network().Listen(
        Address(node, port),
        [this, node, incarnation, alive](ConnectionId id, const NetworkAddress& peer) {
          if (!*alive) ++stale_callbacks_;
          ConnLog& log = logs_.emplace_back();
          log.node = node;
          log.incarnation = incarnation;
          log.id = id;
          log.accepted = true;
          log.peer = peer;
          if (accept_hook_) accept_hook_(log);
          return MakeCallbacks(&log, alive);
        });
    EXPECT_TRUE(listener.ok()) << listener.status();
    return listener.ok() ? *listener : 0;
  }

  ConnLog* Connect(NodeId from, const NetworkAddress& to) {
    ConnLog& log = logs_.emplace_back();
    log.node = from;
    log.incarnation = sim().Incarnation(from);
    log.id = env(from).network().Connect(to, MakeCallbacks(&log, program(from).alive()));
    EXPECT_NE(log.id, kNoConnection);
    return &log;
  }

  absl::Status Send(const ConnLog* log, absl::string_view bytes) {
    return env(log->node).network().Send(log->id, bytes);
  }
  void Close(const ConnLog* log) { env(log->node).network().Close(log->id); }
  void SetPaused(const ConnLog* log, bool paused) {
    env(log->node).network().SetReceivePaused(log->id, paused);
  }
  size_t Backlog(const ConnLog* log) { return env(log->node).network().SendBacklogBytes(log->id); }

  // The accepted ends on `node`, in accept order.
  std::vector<ConnLog*> Accepted(NodeId node) {
    std::vector<ConnLog*> result;
    for (ConnLog& log : logs_) {
      if (log.accepted && log.node == node) result.push_back(&log);
    }
    return result;
  }

  bool RunUntil(const std::function<bool()>& done, int64_t timeout_us = 60'000'000) {
    return sim().RunUntilCondition(done, sim().NowUs() + timeout_us);
  }

  // Connects `client` to `server` (which must listen on kPort) and runs until both ends are up.
  std::pair<ConnLog*, ConnLog*> Establish(NodeId client, NodeId server) {
    const size_t accepted_before = Accepted(server).size();
    ConnLog* client_log = Connect(client, Address(server));
    EXPECT_TRUE(RunUntil([&] { return client_log->connect_status.has_value(); }));
    EXPECT_TRUE(client_log->connect_status.value_or(absl::UnknownError("none")).ok());
    std::vector<ConnLog*> accepted = Accepted(server);
    EXPECT_EQ(accepted.size(), accepted_before + 1);
    return {client_log, accepted.empty() ? nullptr : accepted.back()};
  }

  size_t CountTrace(TraceKind kind, NodeId node = -2, NodeId peer = -2) {
    size_t count = 0;
    for (const TraceEvent& event : sim().trace().kept_events()) {
      if (event.kind() == kind && (node == -2 || event.node() == node) &&
          (peer == -2 || event.peer_node() == peer)) {
        ++count;
      }
    }
    return count;
  }

  static std::string RandomBytes(Random& random, size_t size) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(random.Below(256));
    return bytes;
  }

  // The contract's per-connection invariants, checked on every log after every test.
  void TearDown() override { CheckCallbackOrder(); }

  void CheckCallbackOrder() {
    EXPECT_EQ(stale_callbacks_, 0) << "callbacks ran for a destroyed program";
    for (const ConnLog& log : logs_) {
      const std::string where = absl::StrCat("node ", log.node, " connection ", log.id,
                                             log.accepted ? " (accepted)" : " (outgoing)");
      bool ended = false;
      bool connected = log.accepted;
      for (size_t i = 0; i < log.events.size(); ++i) {
        const std::string& event = log.events[i];
        EXPECT_FALSE(ended) << where << ": '" << event << "' after the connection ended";
        if (event.rfind("connected", 0) == 0) {
          EXPECT_FALSE(log.accepted) << where << ": on_connected on an accepted connection";
          EXPECT_EQ(i, 0u) << where << ": on_connected is not the first callback";
          connected = event == "connected OK";
          if (!connected) ended = true;
        } else {
          EXPECT_TRUE(connected) << where << ": '" << event << "' before on_connected(OK)";
          if (event.rfind("closed", 0) == 0) ended = true;
        }
      }
    }
  }

  SimulatorOptions options_;
  std::unique_ptr<Simulator> simulator_;
  std::deque<ConnLog> logs_;
  std::function<void(ConnLog&)> accept_hook_;
  // Runs in a TestNode's destructor (with the node's Env still usable).
  std::function<void(TestNode&)> on_destroy_;
  int stale_callbacks_ = 0;
};

TestNode::TestNode(Env& env, NetworkTest* test) : env_(env), test_(test) {}

TestNode::~TestNode() {
  if (test_->on_destroy_) test_->on_destroy_(*this);
  *alive_ = false;
}

// A connection is established (on_connected OK at the client, on_accept at the server, which sees
// the client's host name), then bytes flow both ways in order and byte-exact, including NUL and
// high bytes, in several Send calls each way. The trace records CONNECT_START, ACCEPT, CONNECT_OK,
// SEND and DELIVER with the right nodes, and the connection stays open.
TEST_F(NetworkTest, ConnectAndExchangeBytesBothWays) {
  const auto [server, client] = ServerAndClient();
  const int64_t start_us = sim().NowUs();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(c->events, (std::vector<std::string>{"connected OK"}));
  // One latency each way, drawn from [latency_us_min, latency_us_max].
  EXPECT_GE(c->connect_time_us - start_us, 2 * options_.network.latency_us_min);
  EXPECT_LE(c->connect_time_us - start_us, 2 * options_.network.latency_us_max);
  EXPECT_EQ(s->peer.host, "node-b");
  EXPECT_NE(c->id, s->id);

  Random random(1);
  std::string to_server;
  std::string to_client;
  for (int i = 0; i < 5; ++i) {
    std::string a = RandomBytes(random, 1 + random.Below(3000));
    std::string b = RandomBytes(random, 1 + random.Below(3000));
    ASSERT_TRUE(Send(c, a).ok());
    ASSERT_TRUE(Send(s, b).ok());
    to_server += a;
    to_client += b;
  }
  ASSERT_TRUE(Send(c, std::string("\0\xff\x80tail", 7)).ok());
  to_server += std::string("\0\xff\x80tail", 7);
  EXPECT_TRUE(RunUntil([&] {
    return s->received.size() >= to_server.size() && c->received.size() >= to_client.size();
  }));
  EXPECT_EQ(s->received, to_server);
  EXPECT_EQ(c->received, to_client);
  EXPECT_FALSE(c->close_status.has_value());
  EXPECT_FALSE(s->close_status.has_value());
  EXPECT_EQ(sim().network().OpenConnectionCount(), 1u);

  EXPECT_EQ(CountTrace(CONNECT_START, client, server), 1u);
  EXPECT_EQ(CountTrace(ACCEPT, server, client), 1u);
  EXPECT_EQ(CountTrace(CONNECT_OK, client, server), 1u);
  EXPECT_EQ(CountTrace(SEND, client, server), 6u);
  EXPECT_EQ(CountTrace(SEND, server, client), 5u);
  EXPECT_GE(CountTrace(DELIVER, server, client), 1u);
  EXPECT_GE(CountTrace(DELIVER, client, server), 1u);
  uint64_t delivered_to_server = 0;
  for (const TraceEvent& event : sim().trace().kept_events()) {
    if (event.kind() == DELIVER && event.node() == server) {
      EXPECT_EQ(event.connection(), s->id);
      delivered_to_server += event.bytes();
    }
    if (event.kind() == SEND && event.node() == client) {
      EXPECT_EQ(event.connection(), c->id);
    }
  }
  EXPECT_EQ(delivered_to_server, to_server.size());
}

// With every message split in two (delivery_split_probability = 1) and random latency spikes, 300
// messages each way of random sizes (1 byte to 4 KiB) arrive byte-exact and in order: no chunk is
// empty, chunks really were split (more chunks than messages of 2+ bytes), and receive times never
// go backwards.
TEST_F(NetworkTest, SplitDeliveryKeepsStreamsByteExactAndOrdered) {
  options_.network.delivery_split_probability = 1.0;
  options_.network.latency_spike_probability = 0.3;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);

  Random random(2);
  std::string to_server;
  std::string to_client;
  size_t multi_byte_messages = 0;
  for (int i = 0; i < 300; ++i) {
    std::string a = RandomBytes(random, 1 + random.Below(4096));
    std::string b = RandomBytes(random, 1 + random.Below(4096));
    multi_byte_messages += (a.size() > 1) + (b.size() > 1);
    ASSERT_TRUE(Send(c, a).ok());
    ASSERT_TRUE(Send(s, b).ok());
    to_server += a;
    to_client += b;
    sim().RunFor(random.Between(0, 300));
  }
  EXPECT_TRUE(RunUntil([&] {
    return s->received.size() >= to_server.size() && c->received.size() >= to_client.size();
  }));
  EXPECT_EQ(s->received, to_server);
  EXPECT_EQ(c->received, to_client);
  EXPECT_GT(s->chunks.size() + c->chunks.size(), multi_byte_messages);
  for (const ConnLog* log : {c, s}) {
    for (const std::string& chunk : log->chunks) EXPECT_FALSE(chunk.empty());
    for (size_t i = 1; i < log->receive_times_us.size(); ++i) {
      EXPECT_LE(log->receive_times_us[i - 1], log->receive_times_us[i]);
    }
  }
}

// Bytes sent before the connection is established are queued (SendBacklogBytes counts them) and
// go out after it, before anything sent later: a message sent right after Connect, one sent by a
// timer while the handshake is in flight (after the server accepted, before the client heard) and
// one sent from on_connected arrive in that order.
TEST_F(NetworkTest, BytesSentBeforeEstablishedArriveFirstAndInOrder) {
  FixLatency(100);  // fixed latency: accept at +100, on_connected at +200
  const auto [server, client] = ServerAndClient();
  ConnLog* c = Connect(client, Address(server));
  c->on_connected_hook = [this](ConnLog& log) { ASSERT_TRUE(Send(&log, "3-on-connected;").ok()); };
  ASSERT_TRUE(Send(c, "1-before;").ok());
  EXPECT_EQ(env(client).network().SendBacklogBytes(c->id), 9u);
  env(client).clock().ScheduleAfter(150, [this, c] { ASSERT_TRUE(Send(c, "2-timer;").ok()); });
  EXPECT_TRUE(RunUntil([&] { return !Accepted(server).empty(); }));
  ASSERT_TRUE(RunUntil([&] { return Accepted(server)[0]->received.size() >= 32; }));
  EXPECT_EQ(Accepted(server)[0]->received, "1-before;2-timer;3-on-connected;");
  EXPECT_EQ(env(client).network().SendBacklogBytes(c->id), 0u);
}

// A server that writes (a greeting) or closes inside on_accept: the client still hears
// on_connected(OK) before anything else, then the greeting, and for the close an orderly
// on_closed(OK). Fixed latencies make the greeting's delivery time equal the handshake's.
TEST_F(NetworkTest, ServerActionsInsideAcceptFollowOnConnected) {
  FixLatency(100);
  const NodeId server = AddNode("node-a");
  const NodeId greeter_client = AddNode("node-b");
  const NodeId closed_client = AddNode("node-c");
  Listen(server);
  accept_hook_ = [this](ConnLog& log) {
    if (log.peer.host == "node-b") {
      ASSERT_TRUE(env(log.node).network().Send(log.id, "hello").ok());
    } else {
      env(log.node).network().Close(log.id);
    }
  };
  ConnLog* greeted = Connect(greeter_client, Address(server));
  ConnLog* closed = Connect(closed_client, Address(server));
  EXPECT_TRUE(RunUntil([&] { return greeted->received == "hello" && closed->close_status; }));
  EXPECT_EQ(greeted->events, (std::vector<std::string>{"connected OK", "receive"}));
  EXPECT_EQ(closed->events, (std::vector<std::string>{"connected OK", "closed OK"}));
}

// Connecting to a port with no listener (on a live node) is refused after one round trip:
// on_connected gets kUnavailable, on_closed never runs, and the trace records CONNECT_FAILED. A
// port whose listener stopped is refused the same way, while a connection accepted before
// StopListening keeps working.
TEST_F(NetworkTest, ConnectToPortWithoutListenerIsRefused) {
  const NodeId server = AddNode("node-a");
  const NodeId client = AddNode("node-b");
  const ListenerId listener = Listen(server);
  const int64_t start_us = sim().NowUs();
  ConnLog* refused = Connect(client, Address(server, 1234));
  EXPECT_TRUE(RunUntil([&] { return refused->connect_status.has_value(); }));
  EXPECT_EQ(refused->connect_status->code(), absl::StatusCode::kUnavailable)
      << *refused->connect_status;
  EXPECT_GE(refused->connect_time_us - start_us, 2 * options_.network.latency_us_min);
  EXPECT_LE(refused->connect_time_us - start_us, 2 * options_.network.latency_us_max);
  EXPECT_EQ(CountTrace(CONNECT_FAILED, client, server), 1u);
  EXPECT_TRUE(Accepted(server).empty());

  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  env(server).network().StopListening(listener);
  EXPECT_FALSE(env(server).network().ListenerAddress(listener).ok());
  ConnLog* after_stop = Connect(client, Address(server));
  EXPECT_TRUE(RunUntil([&] { return after_stop->connect_status.has_value(); }));
  EXPECT_EQ(after_stop->connect_status->code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(Send(c, "still works").ok());
  EXPECT_TRUE(RunUntil([&] { return s->received == "still works"; }));
  sim().RunFor(1'000'000);
  EXPECT_FALSE(refused->close_status.has_value());
  EXPECT_FALSE(after_stop->close_status.has_value());
}

// Connecting to a host name no node has fails with kUnavailable after latency_us_min, and to a node
// that exists but is down it is refused; neither ever reports on_closed. A Send queued on the failed
// connection is dropped and later Sends fail.
TEST_F(NetworkTest, ConnectToUnknownOrDownHostFails) {
  const NodeId client = AddNode("node-b");
  const NodeId down = AddNode("node-down");
  sim().CrashNode(down, CrashKind::kPowerLoss);
  const int64_t start_us = sim().NowUs();
  ConnLog* unknown = Connect(client, NetworkAddress{"no-such-host", kPort});
  ASSERT_TRUE(Send(unknown, "queued").ok());
  ConnLog* to_down = Connect(client, Address(down));
  EXPECT_TRUE(RunUntil([&] { return unknown->connect_status && to_down->connect_status; }));
  EXPECT_EQ(unknown->connect_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(unknown->connect_time_us - start_us, options_.network.latency_us_min);
  EXPECT_EQ(to_down->connect_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Send(unknown, "more").code(), absl::StatusCode::kFailedPrecondition);
  sim().RunFor(1'000'000);
  EXPECT_EQ(unknown->events.size(), 1u);
  EXPECT_EQ(to_down->events.size(), 1u);
}

// Connecting across a partition (two-way, or one-way in either direction: the SYN or its answer is
// lost) fails exactly connect_timeout_us after Connect, with an error, and never reports
// on_closed. The server never sees the connection.
TEST_F(NetworkTest, ConnectAcrossPartitionTimesOut) {
  options_.network.connect_timeout_us = 2'000'000;
  const auto [server, client] = ServerAndClient();
  for (int mode = 0; mode < 3; ++mode) {
    sim().network().HealAll();
    if (mode == 0) sim().network().Partition({server}, {client}, /*one_way=*/false);
    if (mode == 1) sim().network().Partition({client}, {server}, /*one_way=*/true);
    if (mode == 2) sim().network().Partition({server}, {client}, /*one_way=*/true);
    const int64_t start_us = sim().NowUs();
    ConnLog* c = Connect(client, Address(server));
    sim().RunFor(1'999'999);
    EXPECT_FALSE(c->connect_status.has_value()) << "mode " << mode;
    EXPECT_TRUE(RunUntil([&] { return c->connect_status.has_value(); }));
    EXPECT_FALSE(c->connect_status->ok()) << "mode " << mode;
    EXPECT_EQ(c->connect_time_us - start_us, 2'000'000) << "mode " << mode;
  }
  sim().RunFor(20'000'000);
  EXPECT_TRUE(Accepted(server).empty());
}

// A two-way partition holds data instead of dropping it: during the partition nothing arrives in
// either direction, SendBacklogBytes shows the held bytes, and after HealAll (within the connection
// timeout) everything arrives in order and the connection stays open.
TEST_F(NetworkTest, PartitionHoldsDataAndHealDeliversInOrder) {
  options_.network.delivery_split_probability = 0.5;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(Send(c, "before;").ok());
  sim().network().Partition({client}, {server}, /*one_way=*/false);
  EXPECT_TRUE(sim().network().IsLinkBlocked(client, server));
  EXPECT_TRUE(sim().network().IsLinkBlocked(server, client));
  // "before;" was already on the wire and may still arrive.
  std::string to_server = "before;";
  std::string to_client;
  for (int i = 0; i < 50; ++i) {
    const std::string a = absl::StrCat("c", i, ";");
    const std::string b = absl::StrCat("s", i, ";");
    ASSERT_TRUE(Send(c, a).ok());
    ASSERT_TRUE(Send(s, b).ok());
    to_server += a;
    to_client += b;
    sim().RunFor(10'000);
  }
  sim().RunFor(5'000'000);
  EXPECT_LE(s->received.size(), 7u);
  EXPECT_EQ(c->received, "");
  EXPECT_EQ(env(client).network().SendBacklogBytes(c->id), to_server.size() - 7);
  EXPECT_EQ(env(server).network().SendBacklogBytes(s->id), to_client.size());
  sim().network().HealAll();
  EXPECT_FALSE(sim().network().IsLinkBlocked(client, server));
  EXPECT_EQ(env(client).network().SendBacklogBytes(c->id), 0u);
  EXPECT_TRUE(RunUntil([&] {
    return s->received.size() >= to_server.size() && c->received.size() >= to_client.size();
  }));
  EXPECT_EQ(s->received, to_server);
  EXPECT_EQ(c->received, to_client);
  sim().RunFor(30'000'000);  // well past the connection timeout: nothing stalled, no reset
  EXPECT_FALSE(c->close_status.has_value());
  EXPECT_FALSE(s->close_status.has_value());
  EXPECT_TRUE(Send(c, "after").ok());
  EXPECT_TRUE(RunUntil([&] { return s->received == to_server + "after"; }));
}

// Data held on a blocked link for connection_timeout_us resets the connection: both ends get
// on_closed(kUnavailable) exactly connection_timeout_us after the first held send, none of the held
// bytes arrive (not even after a heal), Sends then fail with kFailedPrecondition, and the trace
// records CONNECTION_RESET for both ends.
TEST_F(NetworkTest, DataStalledPastTimeoutResetsBothSides) {
  options_.network.connection_timeout_us = 4'000'000;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  sim().network().Partition({client}, {server}, /*one_way=*/false);
  sim().RunFor(1'000'000);  // a blocked link with nothing to send does not time out
  const int64_t first_send_us = sim().NowUs();
  ASSERT_TRUE(Send(c, "held").ok());
  sim().RunFor(1'000'000);
  ASSERT_TRUE(Send(c, "more").ok());
  EXPECT_TRUE(RunUntil([&] { return c->close_status && s->close_status; }));
  EXPECT_EQ(c->close_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s->close_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(c->close_time_us, first_send_us + 4'000'000);
  EXPECT_EQ(s->close_time_us, first_send_us + 4'000'000);
  sim().network().HealAll();
  sim().RunFor(1'000'000);
  EXPECT_EQ(s->received, "");
  EXPECT_EQ(Send(c, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Send(s, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountTrace(CONNECTION_RESET, client, server), 1u);
  EXPECT_EQ(CountTrace(CONNECTION_RESET, server, client), 1u);
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// A partition healed and re-formed restarts the stall clock: data held for less than the timeout
// in each of two partitions (separated by a heal) does not reset the connection.
TEST_F(NetworkTest, StallClockRestartsAfterHeal) {
  options_.network.connection_timeout_us = 4'000'000;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  sim().network().Partition({client}, {server}, false);
  ASSERT_TRUE(Send(c, "one;").ok());
  sim().RunFor(3'000'000);
  sim().network().HealAll();
  sim().RunFor(10'000);
  sim().network().Partition({client}, {server}, false);
  ASSERT_TRUE(Send(c, "two;").ok());
  sim().RunFor(3'000'000);
  sim().network().HealAll();
  EXPECT_TRUE(RunUntil([&] { return s->received == "one;two;"; }));
  sim().RunFor(10'000'000);
  EXPECT_FALSE(c->close_status.has_value());
  EXPECT_FALSE(s->close_status.has_value());
}

// A one-way partition blocks only its direction: with client->server blocked, the server's bytes
// still reach the client while the client's are held, until the link is unblocked.
TEST_F(NetworkTest, OneWayPartitionBlocksOnlyOneDirection) {
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  sim().network().Partition({client}, {server}, /*one_way=*/true);
  EXPECT_TRUE(sim().network().IsLinkBlocked(client, server));
  EXPECT_FALSE(sim().network().IsLinkBlocked(server, client));
  ASSERT_TRUE(Send(c, "up").ok());
  ASSERT_TRUE(Send(s, "down").ok());
  EXPECT_TRUE(RunUntil([&] { return c->received == "down"; }));
  sim().RunFor(1'000'000);
  EXPECT_EQ(s->received, "");
  sim().network().SetLinkBlocked(client, server, false);
  EXPECT_TRUE(RunUntil([&] { return s->received == "up"; }));
}

// An orderly Close: the peer receives every byte sent before it (also when they were held by a
// partition at the time), then on_closed(OK); the closer gets no callback at all afterwards, even
// though the peer keeps sending; Send and a second Close on the closed id are harmless (the Send
// fails with kFailedPrecondition), and the connection is forgotten once both ends are closed.
TEST_F(NetworkTest, OrderlyCloseDeliversEverythingThenClosesPeer) {
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  std::string sent;
  for (int i = 0; i < 20; ++i) {
    const std::string piece = absl::StrCat("piece-", i, ";");
    ASSERT_TRUE(Send(c, piece).ok());
    sent += piece;
  }
  sim().network().Partition({client}, {server}, /*one_way=*/true);
  ASSERT_TRUE(Send(c, "held;").ok());
  sent += "held;";
  Close(c);
  EXPECT_EQ(Send(c, "late").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env(client).network().SendBacklogBytes(c->id), 0u);
  Close(c);  // no-op
  ASSERT_TRUE(Send(s, "to a closed end").ok());
  sim().RunFor(1'000'000);
  EXPECT_FALSE(s->close_status.has_value());  // the FIN is held behind the data
  sim().network().HealAll();
  EXPECT_TRUE(RunUntil([&] { return s->close_status.has_value(); }));
  EXPECT_EQ(s->received, sent);
  EXPECT_TRUE(s->close_status->ok()) << *s->close_status;
  EXPECT_EQ(s->events.back(), "closed OK");
  EXPECT_EQ(Send(s, "after close").code(), absl::StatusCode::kFailedPrecondition);
  sim().RunFor(1'000'000);
  EXPECT_EQ(c->events, (std::vector<std::string>{"connected OK"}));
  EXPECT_EQ(c->received, "");
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
  EXPECT_EQ(CountTrace(CONNECTION_CLOSED, client, server), 1u);  // "closed locally"
  EXPECT_EQ(CountTrace(CONNECTION_CLOSED, server, client), 1u);  // "closed by peer"
}

// Closing an outgoing connection before it is established abandons it: the client gets no
// callback, the queued bytes go nowhere and the server never sees a connection.
TEST_F(NetworkTest, CloseBeforeEstablishedAbandonsTheAttempt) {
  const auto [server, client] = ServerAndClient();
  ConnLog* c = Connect(client, Address(server));
  ASSERT_TRUE(Send(c, "queued").ok());
  Close(c);
  EXPECT_EQ(Send(c, "x").code(), absl::StatusCode::kFailedPrecondition);
  sim().RunFor(5'000'000);
  EXPECT_TRUE(c->events.empty());
  EXPECT_TRUE(Accepted(server).empty());
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// Send on ids that are not this node's open connections fails with kFailedPrecondition: a never
// issued id, kNoConnection, and another node's connection id. SendBacklogBytes of them is 0.
TEST_F(NetworkTest, SendOnUnknownOrForeignIdFails) {
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(env(client).network().Send(987654, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env(client).network().Send(kNoConnection, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env(client).network().Send(s->id, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env(server).network().Send(c->id, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env(client).network().SendBacklogBytes(s->id), 0u);
  env(client).network().Close(s->id);  // another node's id: nothing happens
  EXPECT_TRUE(Send(s, "fine").ok());
  EXPECT_TRUE(RunUntil([&] { return c->received == "fine"; }));
  EXPECT_TRUE(Send(c, "").ok());  // an empty send is a no-op
}

// ResetRandomConnection with a stream in flight: both ends get on_closed(kUnavailable), the
// receiver got a prefix of what was sent (some bytes, not all, and nothing after its on_closed),
// Sends fail afterwards, CONNECTION_RESET is traced; with no established connection it returns
// false.
TEST_F(NetworkTest, ResetRandomConnectionDeliversAPrefix) {
  options_.network.delivery_split_probability = 0.5;
  const auto [server, client] = ServerAndClient();
  EXPECT_FALSE(sim().network().ResetRandomConnection());
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  Random random(3);
  std::string sent;
  for (int i = 0; i < 100; ++i) {
    sim().RunFor(50);
    const std::string piece = RandomBytes(random, 100);
    ASSERT_TRUE(Send(c, piece).ok());
    sent += piece;
  }
  const int64_t reset_us = sim().NowUs();
  EXPECT_TRUE(sim().network().ResetRandomConnection());
  // Until the reset reaches it, the client's socket still accepts sends, which go nowhere.
  EXPECT_TRUE(Send(c, "x").ok());
  EXPECT_TRUE(RunUntil([&] { return c->close_status && s->close_status; }));
  EXPECT_EQ(c->close_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s->close_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(c->close_time_us, reset_us + options_.network.latency_us_min);
  EXPECT_GT(s->received.size(), 0u);
  EXPECT_LT(s->received.size(), sent.size());
  EXPECT_EQ(s->received, sent.substr(0, s->received.size()));
  for (int64_t t : s->receive_times_us) EXPECT_LE(t, s->close_time_us);
  EXPECT_EQ(CountTrace(CONNECTION_RESET), 2u);
  sim().RunFor(1'000'000);
  EXPECT_FALSE(sim().network().ResetRandomConnection());
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// Parameters of NetworkCrashTest: the crash kind, the network's crash_reset_probability, and
// whether the peer must hear of the crash promptly.
struct CrashCase {
  CrashKind kind;
  double crash_reset_probability;
  bool prompt;
};

void PrintTo(const CrashCase& param, std::ostream* out) {
  *out << (param.kind == CrashKind::kPowerLoss ? "power loss" : "process crash")
       << ", crash_reset_probability " << param.crash_reset_probability;
}

class NetworkCrashTest : public NetworkTest, public ::testing::WithParamInterface<CrashCase> {};

// A node crash (power loss or process crash) with data in flight both ways: the peer sees
// on_closed(kUnavailable) having received a prefix of the crashed node's bytes; the crashed
// program's callbacks never run (bytes in flight towards it, its pending handshakes); the peer's
// Sends then fail. For a power loss with crash_reset_probability = 1 the peer hears after
// latency_us_max, with 0 only after connection_timeout_us; a process crash is always reported
// promptly (simulator.h: "Peers see their connections reset promptly").
TEST_P(NetworkCrashTest, PeerSeesResetAndCrashedProgramIsSilent) {
  const CrashCase param = GetParam();
  options_.network.crash_reset_probability = param.crash_reset_probability;
  options_.network.connection_timeout_us = 7'000'000;
  const NodeId server = AddNode("node-a");
  const NodeId client = AddNode("node-b");
  const NodeId third = AddNode("node-c");
  Listen(server);
  Listen(client);
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  std::string client_sent;
  for (int i = 0; i < 20; ++i) {
    const std::string piece = absl::StrCat("c", i, ";");
    ASSERT_TRUE(Send(c, piece).ok());
    ASSERT_TRUE(Send(s, absl::StrCat("s", i, ";")).ok());
    client_sent += piece;
    sim().RunFor(37);
  }
  // A handshake towards the client in flight at the crash.
  ConnLog* pending = Connect(third, Address(client));
  sim().RunFor(10);
  const size_t client_events = c->events.size();
  const int64_t crash_us = sim().NowUs();
  sim().CrashNode(client, param.kind);
  EXPECT_EQ(sim().NodeEnv(client), nullptr);
  EXPECT_TRUE(RunUntil([&] { return s->close_status && pending->connect_status; }, 20'000'000));
  EXPECT_EQ(s->close_status->code(), absl::StatusCode::kUnavailable);
  if (param.prompt) {
    EXPECT_LE(s->close_time_us - crash_us, options_.network.latency_us_max);
  } else {
    EXPECT_EQ(s->close_time_us - crash_us, 7'000'000);
  }
  EXPECT_EQ(s->received, client_sent.substr(0, s->received.size()));
  EXPECT_FALSE(pending->connect_status->ok());
  EXPECT_EQ(Send(s, "x").code(), absl::StatusCode::kFailedPrecondition);
  sim().RunFor(10'000'000);
  // The client's end heard nothing after the crash.
  EXPECT_FALSE(c->close_status.has_value());
  EXPECT_EQ(c->events.size(), client_events);
  EXPECT_EQ(CountTrace(NODE_CRASH, client), 1u);
  EXPECT_EQ(CountTrace(CONNECTION_RESET, server, client), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, NetworkCrashTest,
    ::testing::Values(CrashCase{CrashKind::kPowerLoss, 1.0, true},
                      CrashCase{CrashKind::kPowerLoss, 0.0, false},
                      CrashCase{CrashKind::kProcess, 1.0, true},
                      CrashCase{CrashKind::kProcess, 0.0, true}),
    [](const ::testing::TestParamInfo<CrashCase>& info) {
      return absl::StrCat(info.param.kind == CrashKind::kPowerLoss ? "PowerLoss" : "Process",
                          info.param.crash_reset_probability == 1.0 ? "Prompt" : "MaybeSlow");
    });

// After a crash and restart, the node's new incarnation can listen on the same port again and be
// reached; the new connection carries bytes both ways. Handles of the dead incarnation are inert:
// the new Env cannot send on the old connection's id.
TEST_F(NetworkTest, RestartedNodeListensAgainAndIsReachable) {
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  const ConnectionId old_server_id = s->id;
  sim().RestartNode(server, CrashKind::kPowerLoss);
  EXPECT_EQ(sim().Incarnation(server), 2u);
  EXPECT_EQ(env(server).network().Send(old_server_id, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(RunUntil([&] { return c->close_status.has_value(); }, 30'000'000));
  EXPECT_EQ(c->close_status->code(), absl::StatusCode::kUnavailable);

  Listen(server);
  auto [c2, s2] = Establish(client, server);
  ASSERT_NE(s2, nullptr);
  EXPECT_EQ(s2->incarnation, 2u);
  ASSERT_TRUE(Send(c2, "ping").ok());
  ASSERT_TRUE(Send(s2, "pong").ok());
  EXPECT_TRUE(RunUntil([&] { return s2->received == "ping" && c2->received == "pong"; }));
}

// A clean StopNode: the program's destructor still runs with a working network (its goodbye
// arrives), then the kernel closes what it left open in an orderly way, so the peer receives every
// byte and then on_closed(OK), not a reset; the stopped node's listener is gone.
TEST_F(NetworkTest, StopNodeClosesConnectionsInOrder) {
  const NodeId server = AddNode("node-a");
  const NodeId client = AddNode("node-b");
  const NodeId other = AddNode("node-c");
  Listen(server);
  auto [c, s] = Establish(client, server);
  auto [c2, s2] = Establish(other, server);
  ASSERT_NE(s, nullptr);
  ASSERT_NE(s2, nullptr);
  ASSERT_TRUE(Send(s, "data;").ok());
  on_destroy_ = [s = s](TestNode& node) {
    if (node.env().node_id() == s->node) {
      EXPECT_TRUE(node.env().network().Send(s->id, "goodbye").ok());
    }
  };
  sim().StopNode(server);
  on_destroy_ = nullptr;
  EXPECT_FALSE(sim().IsUp(server));
  EXPECT_TRUE(RunUntil([&] { return c->close_status && c2->close_status; }));
  EXPECT_EQ(c->received, "data;goodbye");
  EXPECT_TRUE(c->close_status->ok()) << *c->close_status;
  EXPECT_TRUE(c2->close_status->ok()) << *c2->close_status;
  EXPECT_EQ(CountTrace(NODE_STOP, server), 1u);
  ConnLog* refused = Connect(client, Address(server));
  EXPECT_TRUE(RunUntil([&] { return refused->connect_status.has_value(); }));
  EXPECT_EQ(refused->connect_status->code(), absl::StatusCode::kUnavailable);
}

// The send backlog limit: bytes queued before the connection is established, and bytes held on a
// blocked link, count against kSendBacklogBytesMax; a Send that would exceed it fails with
// kResourceExhausted and queues nothing, while one that exactly fills it succeeds.
TEST_F(NetworkTest, SendBacklogLimitReturnsResourceExhausted) {
  const auto [server, client] = ServerAndClient();
  const std::string big(kSendBacklogBytesMax - 1, 'x');

  ConnLog* pending = Connect(client, Address(server));
  ASSERT_TRUE(Send(pending, big).ok());
  EXPECT_EQ(Send(pending, "yz").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(env(client).network().SendBacklogBytes(pending->id), kSendBacklogBytesMax - 1);
  EXPECT_TRUE(Send(pending, "y").ok());
  EXPECT_EQ(env(client).network().SendBacklogBytes(pending->id), kSendBacklogBytesMax);
  EXPECT_EQ(Send(pending, "z").code(), absl::StatusCode::kResourceExhausted);
  Close(pending);

  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  sim().network().Partition({client}, {server}, /*one_way=*/true);
  ASSERT_TRUE(Send(c, big).ok());
  EXPECT_EQ(env(client).network().SendBacklogBytes(c->id), kSendBacklogBytesMax - 1);
  EXPECT_EQ(Send(c, "yz").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Send(c, "y").ok());
  EXPECT_EQ(Send(c, "z").code(), absl::StatusCode::kResourceExhausted);
  // The other direction has its own, empty backlog.
  EXPECT_EQ(env(server).network().SendBacklogBytes(s->id), 0u);
  EXPECT_TRUE(Send(s, "fine").ok());
}

// SetLinkExtraDelayUs delays one direction only: with 1 s extra on client->server, the server
// receives no earlier than 1 s + latency_us_min after the send (and within latency_us_max more),
// the reverse direction is unaffected, and setting 0 removes the delay.
TEST_F(NetworkTest, LinkExtraDelayDelaysOneDirection) {
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  sim().network().SetLinkExtraDelayUs(client, server, 1'000'000);
  int64_t sent_us = sim().NowUs();
  ASSERT_TRUE(Send(c, "slow").ok());
  ASSERT_TRUE(Send(s, "fast").ok());
  EXPECT_TRUE(RunUntil([&] { return s->received == "slow" && c->received == "fast"; }));
  EXPECT_GE(s->receive_times_us.back() - sent_us, 1'000'000 + options_.network.latency_us_min);
  EXPECT_LE(s->receive_times_us.back() - sent_us, 1'000'000 + options_.network.latency_us_max);
  EXPECT_LE(c->receive_times_us.back() - sent_us, options_.network.latency_us_max);

  sim().network().SetLinkExtraDelayUs(client, server, 0);
  sent_us = sim().NowUs();
  ASSERT_TRUE(Send(c, "again").ok());
  EXPECT_TRUE(RunUntil([&] { return s->received == "slowagain"; }));
  EXPECT_LE(s->receive_times_us.back() - sent_us, options_.network.latency_us_max);
}

// Listen: a node may listen only on its own host name (or a wildcard), a port can be taken once,
// port 0 picks distinct ephemeral ports starting at kEphemeralPortFirst, and ListenerAddress
// reports the real port (NotFound for an unknown listener). A wildcard listener accepts.
TEST_F(NetworkTest, ListenAddressesAndErrors) {
  const NodeId server = AddNode("node-a");
  const NodeId client = AddNode("node-b");
  Network& network = env(server).network();
  auto no_accept = [](ConnectionId, const NetworkAddress&) { return ConnectionCallbacks(); };
  EXPECT_EQ(network.Listen(NetworkAddress{"node-b", 1}, no_accept).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ListenerId> first = network.Listen(NetworkAddress{"node-a", 0}, no_accept);
  absl::StatusOr<ListenerId> second = network.Listen(NetworkAddress{"0.0.0.0", 0}, no_accept);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(network.ListenerAddress(*first)->port, SimNetwork::kEphemeralPortFirst);
  EXPECT_EQ(network.ListenerAddress(*second)->port, SimNetwork::kEphemeralPortFirst + 1);
  EXPECT_EQ(network.ListenerAddress(*first)->host, "node-a");
  EXPECT_EQ(network.ListenerAddress(12345).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(env(client).network().ListenerAddress(*first).ok());  // not the client's listener
  Listen(server, 7000);
  EXPECT_EQ(network.Listen(NetworkAddress{"node-a", 7000}, no_accept).status().code(),
            absl::StatusCode::kAlreadyExists);
  ConnLog* c = Connect(client, Address(server, 7000));
  EXPECT_TRUE(RunUntil([&] { return c->connect_status.has_value(); }));
  EXPECT_TRUE(c->connect_status->ok());
}

// Many connections between three nodes with random sends, closes and splits: every connection
// that was not reset delivers exactly what was sent, in order, and closes cleanly; the per-test
// invariant checks in TearDown cover the callback order of all of them.
TEST_F(NetworkTest, ManyConnectionsStayIndependent) {
  options_.network.delivery_split_probability = 0.3;
  options_.network.latency_spike_probability = 0.1;
  const NodeId nodes[3] = {AddNode("node-a"), AddNode("node-b"), AddNode("node-c")};
  for (NodeId node : nodes) Listen(node);
  Random random(4);
  struct Pair {
    ConnLog* client;
    std::string sent;
  };
  std::vector<Pair> pairs;
  for (int i = 0; i < 30; ++i) {
    const NodeId from = nodes[random.Below(3)];
    const NodeId to = nodes[random.Below(3)];
    pairs.push_back(Pair{Connect(from, Address(to)), ""});
  }
  for (int round = 0; round < 200; ++round) {
    Pair& pair = pairs[random.Below(pairs.size())];
    const std::string piece = RandomBytes(random, 1 + random.Below(200));
    if (Send(pair.client, piece).ok()) pair.sent += piece;
    sim().RunFor(random.Between(0, 500));
  }
  for (Pair& pair : pairs) Close(pair.client);
  sim().RunFor(2'000'000);
  // Match each accepted end to its client by the order of accepts per (server, client host).
  size_t matched = 0;
  for (ConnLog& server_end : logs_) {
    if (!server_end.accepted) continue;
    ASSERT_TRUE(server_end.close_status.has_value());
    EXPECT_TRUE(server_end.close_status->ok());
    bool found = false;
    for (const Pair& pair : pairs) {
      if (server_end.received == pair.sent && sim().NodeName(pair.client->node) ==
                                                  server_end.peer.host) {
        found = true;
      }
    }
    EXPECT_TRUE(found) << "an accepted connection received bytes no client sent in that order";
    ++matched;
  }
  EXPECT_EQ(matched, pairs.size());
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// Callbacks may use the network re-entrantly: an echo server sends back every chunk from inside
// on_receive, and the client closes from inside its own on_receive once everything came back. The
// client gets back exactly its bytes, the server then sees an orderly close, and the client no
// callback after its Close.
TEST_F(NetworkTest, CallbacksCanSendAndCloseReentrantly) {
  options_.network.delivery_split_probability = 0.5;
  const auto [server, client] = ServerAndClient();
  accept_hook_ = [this](ConnLog& log) {
    log.on_receive_hook = [this](ConnLog& self, absl::string_view bytes) {
      ASSERT_TRUE(Send(&self, bytes).ok());
    };
  };
  Random random(6);
  std::string sent;
  for (int i = 0; i < 20; ++i) sent += RandomBytes(random, 1 + random.Below(500));
  ConnLog* c = Connect(client, Address(server));
  c->on_connected_hook = [this, &sent](ConnLog& log) { ASSERT_TRUE(Send(&log, sent).ok()); };
  c->on_receive_hook = [this, &sent](ConnLog& log, absl::string_view) {
    if (log.received.size() == sent.size()) Close(&log);
  };
  EXPECT_TRUE(RunUntil([&] {
    return !Accepted(server).empty() && Accepted(server)[0]->close_status.has_value();
  }));
  EXPECT_EQ(c->received, sent);
  EXPECT_EQ(Accepted(server)[0]->received, sent);
  EXPECT_TRUE(Accepted(server)[0]->close_status->ok());
  EXPECT_FALSE(c->close_status.has_value());
}

// ResetConnectionsOf(node) resets every established connection with an end on that node (both
// ends hear kUnavailable after latency_us_min) and leaves connections between other nodes alone.
TEST_F(NetworkTest, ResetConnectionsOfResetsOnlyThatNode) {
  const NodeId a = AddNode("node-a");
  const NodeId b = AddNode("node-b");
  const NodeId c = AddNode("node-c");
  Listen(a);
  Listen(b);
  auto [ba, ab] = Establish(b, a);
  auto [ca, ac] = Establish(c, a);
  auto [cb, bc] = Establish(c, b);
  ASSERT_TRUE(ab != nullptr && ac != nullptr && bc != nullptr);
  const int64_t reset_us = sim().NowUs();
  sim().network().ResetConnectionsOf(a);
  EXPECT_TRUE(RunUntil([&] {
    return ba->close_status && ab->close_status && ca->close_status && ac->close_status;
  }));
  for (ConnLog* log : {ba, ab, ca, ac}) {
    EXPECT_EQ(log->close_status->code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(log->close_time_us, reset_us + options_.network.latency_us_min);
  }
  sim().RunFor(1'000'000);
  EXPECT_FALSE(cb->close_status.has_value());
  EXPECT_FALSE(bc->close_status.has_value());
  ASSERT_TRUE(Send(cb, "alive").ok());
  EXPECT_TRUE(RunUntil([&] { return bc->received == "alive"; }));
}

// A randomized property test over many seeds. Three nodes connect to each other at random, send
// random bytes both ways, close either end, and suffer random partitions (one- and two-way),
// heals, link delays, injected resets and crash-restarts (both kinds); delivery splitting and
// latency spikes are on. Each client's first bytes are a tag naming it, so the accepted end can be
// matched to its client. At the end the network is healed and run well past every timeout. Then,
// for every matched pair and each direction: the receiver got a prefix of what the sender sent;
// it got everything if it saw an orderly close from a sender that closed after being connected;
// and it got everything if the connection is still open at both ends. TearDown checks the callback
// order of every connection.
TEST_F(NetworkTest, RandomizedFaultsKeepStreamsPrefixesAndCallbacksOrdered) {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    simulator_.reset();
    logs_.clear();
    options_ = SimulatorOptions();
    options_.seed = seed;
    options_.network.delivery_split_probability = 0.3;
    options_.network.latency_spike_probability = 0.05;
    options_.network.connection_timeout_us = 2'000'000;
    options_.network.connect_timeout_us = 500'000;
    if (seed % 2 == 0) {
      // A fixed latency makes many events coincide, where ordering mistakes hide.
      options_.network.latency_us_min = 100;
      options_.network.latency_us_max = 100;
    }
    const NodeId nodes[3] = {AddNode("node-a"), AddNode("node-b"), AddNode("node-c")};
    for (NodeId node : nodes) Listen(node);
    Random random(seed * 7919);
    struct Sent {
      std::string bytes;
      bool closed = false;                  // the sender called Close
      bool closed_after_connected = false;  // ... after on_connected(OK), or on an accepted end
    };
    std::map<ConnLog*, Sent> sent;  // by sending end
    int tags = 0;
    for (int step = 0; step < 600; ++step) {
      const uint64_t op = logs_.empty() ? 0 : random.Below(100);
      if (op < 15) {
        const NodeId from = nodes[random.Below(3)];
        const NodeId to = nodes[random.Below(3)];
        if (!sim().IsUp(from)) continue;
        ConnLog* log = Connect(from, Address(to));
        const std::string tag = absl::StrFormat("T%06d;", tags++);
        if (Send(log, tag).ok()) sent[log].bytes += tag;
      } else if (op < 70) {
        ConnLog& log = logs_[random.Below(logs_.size())];
        if (!sim().IsUp(log.node) || sim().Incarnation(log.node) != log.incarnation) continue;
        const std::string bytes = RandomBytes(random, 1 + random.Below(300));
        if (Send(&log, bytes).ok()) sent[&log].bytes += bytes;
      } else if (op < 78) {
        ConnLog& log = logs_[random.Below(logs_.size())];
        if (!sim().IsUp(log.node) || sim().Incarnation(log.node) != log.incarnation) continue;
        if (!log.close_status) {
          sent[&log].closed = true;
          if (log.accepted || (log.connect_status && log.connect_status->ok())) {
            sent[&log].closed_after_connected = true;
          }
        }
        Close(&log);
      } else if (op < 84) {
        const NodeId a = nodes[random.Below(3)];
        const NodeId b = nodes[random.Below(3)];
        sim().network().Partition({a}, {b}, random.Chance(0.5));
      } else if (op < 90) {
        sim().network().HealAll();
      } else if (op < 93) {
        sim().network().SetLinkExtraDelayUs(nodes[random.Below(3)], nodes[random.Below(3)],
                                            random.Chance(0.5) ? random.Between(0, 50'000) : 0);
      } else if (op < 96) {
        sim().network().ResetRandomConnection();
      } else if (op < 98) {
        const NodeId node = nodes[random.Below(3)];
        sim().RestartNode(node, random.Chance(0.5) ? CrashKind::kProcess : CrashKind::kPowerLoss);
        Listen(node);
      } else {
        // A clean stop: the kernel closes every open connection of the node in an orderly way.
        const NodeId node = nodes[random.Below(3)];
        for (ConnLog& log : logs_) {
          if (log.node != node || log.incarnation != sim().Incarnation(node) || log.close_status ||
              (log.connect_status && !log.connect_status->ok())) {
            continue;
          }
          sent[&log].closed = true;
          if (log.accepted || log.connect_status) sent[&log].closed_after_connected = true;
        }
        sim().StopNode(node);
        sim().StartNode(node);
        Listen(node);
      }
      sim().RunFor(random.Between(0, 20'000));
    }
    sim().network().HealAll();
    sim().RunFor(10'000'000);

    // Match accepted ends to their clients by the tag at the start of what they received.
    std::map<std::string, ConnLog*> client_by_tag;
    for (auto& [log, stream] : sent) {
      if (!log->accepted && stream.bytes.size() >= 8) client_by_tag[stream.bytes.substr(0, 8)] = log;
    }
    auto alive = [this](const ConnLog* log) {
      return sim().IsUp(log->node) && sim().Incarnation(log->node) == log->incarnation;
    };
    size_t pairs = 0;
    size_t full_checks = 0;
    for (ConnLog& server_end : logs_) {
      if (!server_end.accepted || server_end.received.size() < 8) continue;
      auto found = client_by_tag.find(server_end.received.substr(0, 8));
      ASSERT_NE(found, client_by_tag.end()) << "unknown tag";
      ConnLog* client_end = found->second;
      ++pairs;
      const struct {
        ConnLog* from;
        ConnLog* to;
      } directions[2] = {{client_end, &server_end}, {&server_end, client_end}};
      for (const auto& [from, to] : directions) {
        const Sent& stream = sent[from];
        ASSERT_LE(to->received.size(), stream.bytes.size());
        ASSERT_EQ(to->received, stream.bytes.substr(0, to->received.size()))
            << "not a prefix: node " << from->node << " -> node " << to->node;
        const bool orderly = to->close_status && to->close_status->ok();
        const bool both_open = !to->close_status && !from->close_status && alive(from) &&
                               alive(to) && !sent[from].closed && !sent[to].closed &&
                               from->connect_status.value_or(absl::OkStatus()).ok() &&
                               to->connect_status.value_or(absl::OkStatus()).ok();
        if ((orderly && stream.closed_after_connected) || both_open) {
          ++full_checks;
          EXPECT_EQ(to->received.size(), stream.bytes.size())
              << "incomplete stream: node " << from->node << " -> node " << to->node
              << (orderly ? " after an orderly close" : " on an open connection");
        }
        // An orderly close only comes from a sender that closed.
        if (orderly) {
          EXPECT_TRUE(stream.closed);
        }
      }
    }
    EXPECT_GT(pairs, 10u);
    EXPECT_GT(full_checks, 5u);
    CheckCallbackOrder();
    if (HasFatalFailure() || HasNonfatalFailure()) break;
  }
}

// The same scenario under the same seed gives the same trace digest and event count; a different
// seed (different latencies and splits) gives a different digest.
TEST_F(NetworkTest, NetworkRunsAreDeterministic) {
  auto run = [](uint64_t seed) {
    SimulatorOptions options;
    options.seed = seed;
    options.network.delivery_split_probability = 0.5;
    Simulator simulator(options);
    NodeOptions a;
    a.name = "a";
    NodeOptions b;
    b.name = "b";
    auto noop = [](Env&) { return std::make_shared<int>(0); };
    simulator.AddNode(a, noop);
    simulator.AddNode(b, noop);
    simulator.StartNode(0);
    simulator.StartNode(1);
    auto accept = [](ConnectionId, const NetworkAddress&) { return ConnectionCallbacks(); };
    EXPECT_TRUE(simulator.NodeEnv(0)->network().Listen(NetworkAddress{"a", 1}, accept).ok());
    const ConnectionId id =
        simulator.NodeEnv(1)->network().Connect(NetworkAddress{"a", 1}, ConnectionCallbacks());
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE(simulator.NodeEnv(1)->network().Send(id, std::string(100, 'x')).ok());
      simulator.RunFor(100);
    }
    simulator.RunFor(1'000'000);
    return std::make_pair(simulator.trace().DigestHex(), simulator.trace().event_count());
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5).first, run(6).first);
}


// ---- Receive pausing (Network::SetReceivePaused) ----

// A paused receiver gets nothing while everything sent after the pause piles up in the sender's
// backlog: SendBacklogBytes counts every byte, a Send that would pass kSendBacklogBytesMax fails
// with kResourceExhausted, and one that exactly fills it succeeds. A pause far longer than
// connection_timeout_us resets nothing (a closed window is not a dead link). Resuming delivers
// nothing from inside the call, then everything, in order and exactly once, and the backlog drains
// to zero; RECEIVE_PAUSED and RECEIVE_RESUMED are traced once each.
TEST_F(NetworkTest, PausedReceiverFillsSenderBacklogUntilResourceExhausted) {
  options_.network.connection_timeout_us = 4'000'000;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  SetPaused(s, true);
  SetPaused(s, true);  // pausing twice is one pause
  Random random(4);
  std::string sent;
  for (int i = 0; i < 200; ++i) {
    const std::string piece = RandomBytes(random, 1 + random.Below(5000));
    ASSERT_TRUE(Send(c, piece).ok());
    sent += piece;
    sim().RunFor(random.Between(0, 1000));
  }
  sim().RunFor(1'000'000);
  EXPECT_EQ(s->received, "");
  EXPECT_EQ(Backlog(c), sent.size());
  const std::string fill(kSendBacklogBytesMax - sent.size(), 'f');
  EXPECT_EQ(Send(c, fill + "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Backlog(c), sent.size());
  ASSERT_TRUE(Send(c, fill).ok());
  sent += fill;
  EXPECT_EQ(Backlog(c), kSendBacklogBytesMax);
  EXPECT_EQ(Send(c, "x").code(), absl::StatusCode::kResourceExhausted);
  // The other direction is not affected by the server's pause.
  ASSERT_TRUE(Send(s, "reply").ok());
  EXPECT_TRUE(RunUntil([&] { return c->received == "reply"; }));

  sim().RunFor(20'000'000);  // five connection timeouts
  EXPECT_FALSE(c->close_status.has_value());
  EXPECT_FALSE(s->close_status.has_value());
  EXPECT_EQ(s->received, "");

  SetPaused(s, false);
  EXPECT_EQ(s->received, "");  // never from inside the call
  EXPECT_TRUE(RunUntil([&] { return s->received.size() >= sent.size(); }));
  EXPECT_TRUE(s->received == sent) << "first difference at "
                                   << std::mismatch(s->received.begin(), s->received.end(),
                                                    sent.begin(), sent.end()).first -
                                          s->received.begin();
  EXPECT_EQ(Backlog(c), 0u);
  sim().RunFor(1'000'000);
  EXPECT_EQ(s->received.size(), sent.size());  // nothing twice
  EXPECT_EQ(CountTrace(RECEIVE_PAUSED, server, client), 1u);
  EXPECT_EQ(CountTrace(RECEIVE_RESUMED, server, client), 1u);
}

// Bytes already on the wire when the receiver pauses still arrive, into its socket buffer, not the
// sender's backlog; later bytes wait in the backlog. With a fixed latency of 100 us: "a" is sent,
// the receiver pauses 50 us later, "b" is sent after that. On resume, "a" is delivered at the very
// time of the resume (from a later event, not from inside the call) and "b" one latency later.
// Then a resume that coincides with the arrival of more in-flight bytes keeps them behind the
// buffered ones.
TEST_F(NetworkTest, BytesInFlightAtPauseWaitInTheReceiverThenComeFirst) {
  FixLatency(100);
  options_.network.delivery_split_probability = 0;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(Send(c, "a").ok());
  sim().RunFor(50);
  SetPaused(s, true);
  ASSERT_TRUE(Send(c, "b").ok());
  EXPECT_EQ(Backlog(c), 1u);  // "a" is in flight, "b" held back
  sim().RunFor(1'000'000);
  EXPECT_EQ(s->received, "");
  EXPECT_EQ(Backlog(c), 1u);  // "a" arrived in the receiver's buffer, which is not the backlog
  const int64_t resume_us = sim().NowUs();
  SetPaused(s, false);
  EXPECT_EQ(s->received, "");
  EXPECT_EQ(Backlog(c), 0u);
  EXPECT_TRUE(RunUntil([&] { return s->received == "ab"; }));
  ASSERT_EQ(s->receive_times_us.size(), 2u);
  EXPECT_EQ(s->receive_times_us[0], resume_us);
  EXPECT_EQ(s->receive_times_us[1], resume_us + 100);

  // The same, but the resume runs at the very instant at which "d", sent before the pause, arrives,
  // and before its delivery event: "d" must still come after "c", which waited in the buffer. The
  // resume is scheduled first so that it precedes both deliveries at equal times.
  const int64_t start_us = sim().NowUs();
  sim().Schedule(150, [this, s = s] { SetPaused(s, false); });
  ASSERT_TRUE(Send(c, "c").ok());  // arrives at +100, while paused
  sim().RunFor(50);
  ASSERT_TRUE(Send(c, "d").ok());  // arrives at +150, right after the resume
  sim().RunFor(10);
  SetPaused(s, true);
  EXPECT_TRUE(RunUntil([&] { return s->received.size() >= 4; }));
  EXPECT_EQ(s->received, "abcd");
  EXPECT_EQ(s->receive_times_us.back(), start_us + 150);
}

// A pause from inside on_receive takes effect at once: with every message split in two chunks that
// arrive at the same virtual time, a receiver that pauses in each on_receive gets exactly one
// chunk per resume, however long it stays paused; a resume from a timer of the node lets exactly
// one more through. The stream is byte-exact at the end.
TEST_F(NetworkTest, PauseInsideOnReceiveStopsTheNextChunk) {
  options_.network.delivery_split_probability = 1.0;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  s->on_receive_hook = [this](ConnLog& log, absl::string_view) { SetPaused(&log, true); };
  std::string sent;
  for (int i = 0; i < 10; ++i) {
    const std::string piece = absl::StrCat("message-", i, ";");
    ASSERT_TRUE(Send(c, piece).ok());
    sent += piece;
  }
  EXPECT_TRUE(RunUntil([&] { return !s->chunks.empty(); }));
  size_t resumes = 0;
  while (s->received.size() < sent.size() && resumes < 100) {
    const size_t chunks = s->chunks.size();
    sim().RunFor(100'000);
    ASSERT_EQ(s->chunks.size(), chunks) << "a chunk arrived while paused";
    env(server).clock().ScheduleAfter(10, [this, s = s] { SetPaused(s, false); });
    ++resumes;
    EXPECT_TRUE(RunUntil([&] { return s->chunks.size() > chunks; }));
    EXPECT_EQ(s->chunks.size(), chunks + 1);
  }
  EXPECT_EQ(s->received, sent);
  EXPECT_EQ(s->chunks.size(), 20u);
}

// A peer's orderly close while the receiver is paused is reported only after every byte, after the
// resume: (a) the data and FIN sent after the pause (held in the sender's backlog), (b) data and
// FIN already in flight at the pause (held in the receiver's buffer), (c) the sender's node stops
// cleanly while the receiver is paused, so the kernel delivers its last bytes and FIN later. In
// each case nothing at all is reported while paused (no on_receive, no on_closed), and after the
// resume the receiver gets every byte, then on_closed(OK).
TEST_F(NetworkTest, OrderlyCloseWhilePausedComesAfterTheBytesOnResume) {
  FixLatency(100);
  const auto [server, client] = ServerAndClient();
  for (const char* mode : {"held by the sender", "held by the receiver", "sender stops"}) {
    SCOPED_TRACE(mode);
    const std::string mode_name = mode;
    if (!sim().IsUp(client)) sim().StartNode(client);
    auto [c, s] = Establish(client, server);
    ASSERT_NE(s, nullptr);
    if (mode_name != "held by the receiver") SetPaused(s, true);
    const std::string data = absl::StrCat("everything before the close (", mode, ")");
    ASSERT_TRUE(Send(c, data).ok());
    if (mode_name == "sender stops") {
      sim().StopNode(client);
    } else {
      Close(c);
    }
    if (mode_name == "held by the receiver") {
      sim().RunFor(50);
      SetPaused(s, true);
    }
    sim().RunFor(30'000'000);
    EXPECT_TRUE(s->events.empty());
    SetPaused(s, false);
    EXPECT_TRUE(s->events.empty());
    EXPECT_TRUE(RunUntil([&] { return s->close_status.has_value(); }));
    EXPECT_EQ(s->received, data);
    EXPECT_TRUE(s->close_status->ok()) << *s->close_status;
    EXPECT_EQ(s->events, (std::vector<std::string>{"receive", "closed OK"}));
  }
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// A reset is reported to a paused receiver at once, losing what waited: with bytes both in its
// buffer and in the sender's backlog, ResetRandomConnection makes both ends hear
// on_closed(kUnavailable) one latency later although the receiver is still paused, and the
// receiver got none of the waiting bytes, not even after resuming (which does nothing on a closed
// connection). A sender's crash (power loss, prompt reset) is likewise reported while paused.
TEST_F(NetworkTest, ResetWhilePausedIsReportedAtOnceAndLosesWaitingBytes) {
  FixLatency(100);
  options_.network.crash_reset_probability = 1.0;
  const auto [server, client] = ServerAndClient();
  {
    auto [c, s] = Establish(client, server);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(Send(c, "in flight;").ok());
    sim().RunFor(50);
    SetPaused(s, true);
    ASSERT_TRUE(Send(c, "backlog;").ok());
    sim().RunFor(1'000'000);
    const int64_t reset_us = sim().NowUs();
    EXPECT_TRUE(sim().network().ResetRandomConnection());
    EXPECT_TRUE(RunUntil([&] { return c->close_status && s->close_status; }));
    EXPECT_EQ(s->close_status->code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(c->close_status->code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(s->close_time_us, reset_us + 100);
    SetPaused(s, false);
    sim().RunFor(1'000'000);
    EXPECT_EQ(s->received, "");
    EXPECT_EQ(s->events, (std::vector<std::string>{"closed UNAVAILABLE"}));
  }
  {
    auto [c, s] = Establish(client, server);
    ASSERT_NE(s, nullptr);
    SetPaused(s, true);
    ASSERT_TRUE(Send(c, "lost with the crash").ok());
    sim().RunFor(1'000'000);
    const int64_t crash_us = sim().NowUs();
    sim().CrashNode(client, CrashKind::kPowerLoss);
    EXPECT_TRUE(RunUntil([&] { return s->close_status.has_value(); }));
    EXPECT_EQ(s->close_status->code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(s->close_time_us, crash_us + 100);
    EXPECT_EQ(s->received, "");
  }
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// A crash of the paused receiver itself resets the connection for the sender as any crash does,
// and the receiver's program hears nothing; bytes waiting in either place are gone.
TEST_F(NetworkTest, CrashOfPausedReceiverResetsTheSender) {
  options_.network.crash_reset_probability = 1.0;
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  SetPaused(s, true);
  ASSERT_TRUE(Send(c, "held").ok());
  sim().RunFor(10'000);
  sim().CrashNode(server, CrashKind::kProcess);
  EXPECT_TRUE(RunUntil([&] { return c->close_status.has_value(); }));
  EXPECT_EQ(c->close_status->code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(s->events.empty());
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// A paused receiver and a blocked link: bytes held only by the pause do not time out, but once the
// link is also blocked they count as undelivered on a dead link, and the connection resets exactly
// connection_timeout_us after the block. A heal before that timeout stops the clock again: the
// connection survives a later long pause and delivers everything after the resume.
TEST_F(NetworkTest, PausedReceiverBehindBlockedLinkTimesOutOnlyWhileBlocked) {
  options_.network.connection_timeout_us = 4'000'000;
  const auto [server, client] = ServerAndClient();
  {
    auto [c, s] = Establish(client, server);
    ASSERT_NE(s, nullptr);
    SetPaused(s, true);
    ASSERT_TRUE(Send(c, "first;").ok());
    sim().RunFor(3'000'000);
    sim().network().Partition({client}, {server}, /*one_way=*/false);
    sim().RunFor(3'000'000);
    sim().network().HealAll();  // 3 s blocked: no timeout yet
    sim().RunFor(10'000'000);   // a closed window alone never times out
    EXPECT_FALSE(s->close_status.has_value());
    EXPECT_FALSE(c->close_status.has_value());
    ASSERT_TRUE(Send(c, "second;").ok());
    SetPaused(s, false);
    EXPECT_TRUE(RunUntil([&] { return s->received == "first;second;"; }));
    // Now block for good while paused with held bytes: reset 4 s after the block.
    SetPaused(s, true);
    ASSERT_TRUE(Send(c, "third;").ok());
    sim().RunFor(1'000'000);
    const int64_t block_us = sim().NowUs();
    sim().network().SetLinkBlocked(client, server, true);
    EXPECT_TRUE(RunUntil([&] { return s->close_status && c->close_status; }));
    EXPECT_EQ(s->close_status->code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(c->close_time_us, block_us + 4'000'000);
    EXPECT_EQ(s->received, "first;second;");
    sim().network().HealAll();
  }
  {
    // Resuming while the link is still blocked: the bytes stay on the link (the stall clock keeps
    // running) and arrive after the heal.
    auto [c, s] = Establish(client, server);
    ASSERT_NE(s, nullptr);
    SetPaused(s, true);
    ASSERT_TRUE(Send(c, "held twice;").ok());
    sim().network().SetLinkBlocked(client, server, true);
    sim().RunFor(1'000'000);
    SetPaused(s, false);
    sim().RunFor(1'000'000);
    EXPECT_EQ(s->received, "");
    sim().network().HealAll();
    EXPECT_TRUE(RunUntil([&] { return s->received == "held twice;"; }));
    sim().RunFor(10'000'000);
    EXPECT_FALSE(s->close_status.has_value());
  }
}

// Pausing before the connection is established applies from the start: a client that pauses right
// after Connect hears on_connected(OK), but not the greeting the server sends inside on_accept,
// until it resumes. Closing a paused connection discards what waited for it, lets the peer's
// backlog drain (it reads and discards, as a closed socket does) and closes the peer cleanly.
TEST_F(NetworkTest, PauseBeforeConnectedAndCloseWhilePaused) {
  const auto [server, client] = ServerAndClient();
  accept_hook_ = [this](ConnLog& log) {
    ASSERT_TRUE(env(log.node).network().Send(log.id, "greeting").ok());
  };
  ConnLog* c = Connect(client, Address(server));
  SetPaused(c, true);
  EXPECT_TRUE(RunUntil([&] { return c->connect_status.has_value(); }));
  sim().RunFor(1'000'000);
  EXPECT_EQ(c->events, (std::vector<std::string>{"connected OK"}));
  SetPaused(c, false);
  EXPECT_TRUE(RunUntil([&] { return c->received == "greeting"; }));

  ConnLog* s = Accepted(server).at(0);
  SetPaused(c, true);
  ASSERT_TRUE(Send(s, "never read").ok());
  sim().RunFor(1'000'000);
  EXPECT_EQ(Backlog(s), 10u);
  Close(c);
  EXPECT_EQ(Backlog(s), 0u);
  EXPECT_TRUE(RunUntil([&] { return s->close_status.has_value(); }));
  EXPECT_TRUE(s->close_status->ok());
  EXPECT_EQ(c->received, "greeting");
  sim().RunFor(1'000'000);
  EXPECT_EQ(sim().network().OpenConnectionCount(), 0u);
}

// SetReceivePaused on ids that are not this node's open connections does nothing and traces
// nothing: a never issued id, kNoConnection, the peer's id, and a closed connection.
TEST_F(NetworkTest, SetReceivePausedOnUnknownOrClosedIdsDoesNothing) {
  const auto [server, client] = ServerAndClient();
  auto [c, s] = Establish(client, server);
  ASSERT_NE(s, nullptr);
  env(client).network().SetReceivePaused(987654, true);
  env(client).network().SetReceivePaused(kNoConnection, true);
  env(client).network().SetReceivePaused(s->id, true);
  EXPECT_EQ(CountTrace(RECEIVE_PAUSED), 0u);
  ASSERT_TRUE(Send(c, "still flows").ok());
  EXPECT_TRUE(RunUntil([&] { return s->received == "still flows"; }));
  Close(c);
  SetPaused(c, true);
  SetPaused(c, false);
  EXPECT_EQ(CountTrace(RECEIVE_PAUSED), 0u);
  EXPECT_EQ(CountTrace(RECEIVE_RESUMED), 0u);
  EXPECT_TRUE(RunUntil([&] { return s->close_status.has_value(); }));
}

// rapidcheck's inRange narrows its range at small sizes; operation kinds must all be likely at
// every size.
rc::Gen<int> UniformInRange(int low, int high) {
  return rc::gen::resize(rc::kNominalSize, rc::gen::inRange(low, high));
}

// A property over random operation sequences: two nodes exchange random-sized sends both ways
// while either end pauses and resumes at random (also from inside on_receive, and several times
// within one instant), with delivery splitting and latency spikes at random strengths and virtual
// time advancing by random amounts. No on_receive ever runs while its end is paused, and after a
// final resume both streams arrive byte-exact, in order and exactly once, with no connection
// ending.
TEST(SimNetworkPropertyTest, PauseAndResumeKeepStreamsExact) {
  const bool passed = rc::check("pause and resume keep both streams exact", [] {
    SimulatorOptions options;
    options.seed = *rc::gen::arbitrary<uint64_t>();
    options.network.delivery_split_probability = *rc::gen::element(0.0, 0.3, 1.0);
    options.network.latency_spike_probability = *rc::gen::element(0.0, 0.2);
    if (*rc::gen::arbitrary<bool>()) {
      options.network.latency_us_min = 100;  // coinciding events
      options.network.latency_us_max = 100;
    }
    // For end `which`, kind: 0-3 send `size` bytes, 4 toggle its pause, 5 pause and resume it at
    // once, 6 pause it inside its next on_receive, 7 toggle the other end's pause inside its next
    // on_receive (where a delivery to the other end may be due at the same instant), 8 run for
    // `size` us.
    const auto steps = *rc::gen::container<std::vector<std::tuple<int, int, int>>>(
        rc::gen::tuple(UniformInRange(0, 9), rc::gen::inRange(0, 2), rc::gen::inRange(1, 3000)));

    Simulator simulator(options);
    auto noop = [](Env&) { return std::make_shared<int>(0); };
    simulator.AddNode(NodeOptions{.name = "a"}, noop);
    simulator.AddNode(NodeOptions{.name = "b"}, noop);
    simulator.StartNode(0);
    simulator.StartNode(1);
    struct End {
      NodeId node = 0;
      ConnectionId id = kNoConnection;
      std::string sent;
      std::string received;
      bool paused = false;
      bool pause_on_receive = false;
      End* toggle_on_receive = nullptr;
      int receives_while_paused = 0;
      int closes = 0;
    };
    End ends[2];
    ends[0].node = 1;  // the client, on node "b"
    ends[1].node = 0;
    auto callbacks = [&simulator](End* end) {
      ConnectionCallbacks result;
      result.on_receive = [&simulator, end](absl::string_view bytes) {
        if (end->paused) ++end->receives_while_paused;
        end->received.append(bytes.data(), bytes.size());
        if (end->pause_on_receive) {
          end->pause_on_receive = false;
          end->paused = true;
          simulator.NodeEnv(end->node)->network().SetReceivePaused(end->id, true);
        }
        if (End* other = end->toggle_on_receive; other != nullptr) {
          end->toggle_on_receive = nullptr;
          other->paused = !other->paused;
          simulator.NodeEnv(other->node)->network().SetReceivePaused(other->id, other->paused);
        }
      };
      result.on_closed = [end](const absl::Status&) { ++end->closes; };
      return result;
    };
    RC_ASSERT(simulator.NodeEnv(0)
                  ->network()
                  .Listen(NetworkAddress{"a", 1},
                          [&](ConnectionId id, const NetworkAddress&) {
                            ends[1].id = id;
                            return callbacks(&ends[1]);
                          })
                  .ok());
    ends[0].id =
        simulator.NodeEnv(1)->network().Connect(NetworkAddress{"a", 1}, callbacks(&ends[0]));
    simulator.RunUntilCondition([&] { return ends[1].id != kNoConnection; }, 1'000'000);
    RC_ASSERT(ends[1].id != kNoConnection);
    Random bytes_random(options.seed);
    for (const auto& [kind, which, size] : steps) {
      End& end = ends[which];
      Network& network = simulator.NodeEnv(end.node)->network();
      switch (kind) {
        case 0:
        case 1:
        case 2:
        case 3: {
          std::string bytes(static_cast<size_t>(size), '\0');
          for (char& ch : bytes) ch = static_cast<char>(bytes_random.Below(256));
          RC_ASSERT(network.Send(end.id, bytes).ok());
          end.sent += bytes;
          break;
        }
        case 4:
          end.paused = !end.paused;
          network.SetReceivePaused(end.id, end.paused);
          break;
        case 5:
          network.SetReceivePaused(end.id, true);
          network.SetReceivePaused(end.id, false);
          network.SetReceivePaused(end.id, end.paused);
          break;
        case 6:
          end.pause_on_receive = true;
          break;
        case 7:
          end.toggle_on_receive = &ends[1 - which];
          break;
        default:
          simulator.RunFor(size);
          break;
      }
    }
    for (End& end : ends) {
      end.pause_on_receive = false;
      end.toggle_on_receive = nullptr;
      end.paused = false;
      simulator.NodeEnv(end.node)->network().SetReceivePaused(end.id, false);
    }
    simulator.RunFor(10'000'000);
    for (int i = 0; i < 2; ++i) {
      RC_ASSERT(ends[i].receives_while_paused == 0);
      RC_ASSERT(ends[i].closes == 0);
      RC_ASSERT(ends[1 - i].received.size() == ends[i].sent.size());
      RC_ASSERT(ends[1 - i].received == ends[i].sent);
      RC_ASSERT(simulator.NodeEnv(ends[i].node)->network().SendBacklogBytes(ends[i].id) == 0u);
    }
  });
  EXPECT_TRUE(passed);
}

// Determinism with pauses: a scenario mixing random sends, pauses and resumes (some from inside
// on_receive), partitions, heals and an injected reset gives the same trace digest and event
// count twice under one seed, and a different digest under another seed. The run really paused
// (RECEIVE_PAUSED events), and the digests of pausing runs differ from the same scenario without
// pauses, so the pauses are covered by the digest.
TEST(SimNetworkPauseDeterminismTest, SameSeedGivesSameDigestWithPauses) {
  struct Outcome {
    std::string digest;
    uint64_t events = 0;
    size_t pauses = 0;
  };
  auto run = [](uint64_t seed, bool pauses) {
    SimulatorOptions options;
    options.seed = seed;
    options.network.delivery_split_probability = 0.3;
    options.network.latency_spike_probability = 0.1;
    options.network.connection_timeout_us = 2'000'000;
    Simulator simulator(options);
    simulator.trace().KeepInMemory(1'000'000);
    auto noop = [](Env&) { return std::make_shared<int>(0); };
    for (const char* name : {"a", "b", "c"}) simulator.AddNode(NodeOptions{.name = name}, noop);
    for (NodeId node = 0; node < 3; ++node) simulator.StartNode(node);
    // Every node listens; every accepted end may pause itself inside on_receive.
    struct Handle {
      NodeId node;
      ConnectionId id;
    };
    std::vector<Handle> handles;  // in creation order, so picking from it is reproducible
    Random workload(seed * 31 + 7);
    for (NodeId node = 0; node < 3; ++node) {
      Network& network = simulator.NodeEnv(node)->network();
      EXPECT_TRUE(network
                      .Listen(NetworkAddress{simulator.NodeName(node), 1},
                              [&, node, pauses](ConnectionId id, const NetworkAddress&) {
                                handles.push_back(Handle{node, id});
                                ConnectionCallbacks callbacks;
                                callbacks.on_receive = [&, node, id, pauses](absl::string_view) {
                                  if (pauses && workload.Chance(0.1)) {
                                    simulator.NodeEnv(node)->network().SetReceivePaused(id, true);
                                  }
                                };
                                return callbacks;
                              })
                      .ok());
    }
    for (int step = 0; step < 3000; ++step) {
      const uint64_t op = workload.Below(100);
      if (op < 5 || handles.empty()) {
        const NodeId from = static_cast<NodeId>(workload.Below(3));
        const NodeId to = static_cast<NodeId>(workload.Below(3));
        const ConnectionId id = simulator.NodeEnv(from)->network().Connect(
            NetworkAddress{simulator.NodeName(to), 1}, ConnectionCallbacks());
        handles.push_back(Handle{from, id});
      } else if (op < 75) {
        const Handle& handle = handles[workload.Below(handles.size())];
        const std::string bytes(1 + workload.Below(2000), 'x');
        simulator.NodeEnv(handle.node)->network().Send(handle.id, bytes).IgnoreError();
      } else if (op < 90) {
        const Handle& handle = handles[workload.Below(handles.size())];
        const bool paused = workload.Chance(0.5);
        if (pauses) simulator.NodeEnv(handle.node)->network().SetReceivePaused(handle.id, paused);
      } else if (op < 94) {
        simulator.network().Partition({static_cast<NodeId>(workload.Below(3))},
                                      {static_cast<NodeId>(workload.Below(3))},
                                      workload.Chance(0.5));
      } else if (op < 98) {
        simulator.network().HealAll();
      } else {
        simulator.network().ResetRandomConnection();
      }
      simulator.RunFor(workload.Between(0, 5'000));
    }
    simulator.network().HealAll();
    simulator.RunFor(5'000'000);
    Outcome outcome;
    outcome.digest = simulator.trace().DigestHex();
    outcome.events = simulator.trace().event_count();
    for (const TraceEvent& event : simulator.trace().kept_events()) {
      if (event.kind() == RECEIVE_PAUSED) ++outcome.pauses;
    }
    return outcome;
  };
  for (uint64_t seed : {3u, 99u}) {
    const Outcome first = run(seed, true);
    const Outcome second = run(seed, true);
    EXPECT_EQ(first.digest, second.digest) << "seed " << seed;
    EXPECT_EQ(first.events, second.events) << "seed " << seed;
    EXPECT_GT(first.pauses, 50u) << "seed " << seed;
    EXPECT_NE(first.digest, run(seed, false).digest) << "seed " << seed;
  }
  EXPECT_NE(run(3, true).digest, run(4, true).digest);
}
}  // namespace
}  // namespace runnel::sim
