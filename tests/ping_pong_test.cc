// The foundation's end-to-end workload, PingPongNode, over the simulated Env (with and without
// faults) and over the real Env (real sockets on 127.0.0.1 and real files).
#include <memory>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_env.h"
#include "broker/pingpong/ping_pong.h"
#include "gtest/gtest.h"
#include "sim/ping_pong_world.h"
#include "sim/simulator.h"

namespace runnel {
namespace {

using sim::CrashKind;
using sim::Simulator;

// Log records round-trip, and any single flipped bit is detected by the checksum.
TEST(PingPongCodecTest, LogRecordRoundTripAndCorruptionDetected) {
  const PingPongRecord record{PingPongMessageType::kPong, 42, 0x0102030405060708ULL};
  const std::string bytes = PingPongNode::EncodeLogRecord(record);
  ASSERT_EQ(bytes.size(), PingPongNode::kRecordBytes);
  PingPongRecord decoded;
  ASSERT_TRUE(PingPongNode::DecodeLogRecord(bytes, &decoded));
  EXPECT_EQ(decoded, record);
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string flipped = bytes;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_FALSE(PingPongNode::DecodeLogRecord(flipped, &decoded)) << "bit " << bit;
  }
}

struct SimCluster {
  explicit SimCluster(int nodes, uint64_t seed = 5) : simulator(sim::SimulatorOptions{.seed = seed}) {
    for (int i = 0; i < nodes; ++i) {
      PingPongOptions options;
      options.listen_address = NetworkAddress{"node-" + std::to_string(i), 7000};
      for (int j = 0; j < nodes; ++j) {
        if (j != i) options.peers.push_back(NetworkAddress{"node-" + std::to_string(j), 7000});
      }
      simulator.AddNode(sim::NodeOptions{.name = options.listen_address.host}, [options](Env& env) {
        return std::make_shared<PingPongNode>(env, options);
      });
    }
    for (int i = 0; i < nodes; ++i) simulator.StartNode(i);
  }
  PingPongNode& node(NodeId id) {
    return *static_cast<PingPongNode*>(simulator.NodeProgramObject(id).get());
  }
  Simulator simulator;
};

// Without faults, every node pings every peer each interval and every ping is answered: after one
// simulated second of 10 ms pings, each node has received close to 100 pings from each peer.
TEST(PingPongSimTest, HealthyClusterExchangesPingsAndPongs) {
  SimCluster cluster(3);
  cluster.simulator.RunFor(1'000'000);
  for (NodeId id = 0; id < 3; ++id) {
    const PingPongStats& stats = cluster.node(id).stats();
    EXPECT_GE(stats.pings_received, 180u) << "node " << id;
    EXPECT_GE(stats.pongs_received, 180u) << "node " << id;
    EXPECT_LE(stats.pings_sent, 2u * 100u) << "node " << id;
    EXPECT_EQ(stats.malformed_frames, 0u);
    EXPECT_EQ(stats.connections_established, 2u);
    EXPECT_EQ(stats.records_appended, stats.pings_received + stats.pongs_received);
  }
}

// A power loss after a completed sync loses nothing that was durable; records appended after the
// last sync may be lost, and what survives is a prefix of what was written.
TEST(PingPongSimTest, PowerLossKeepsDurablePrefix) {
  SimCluster cluster(2, 11);
  cluster.simulator.RunFor(2'000'000);
  const std::vector<PingPongRecord> written = cluster.node(0).records();
  const uint64_t durable = cluster.node(0).stats().records_durable;
  ASSERT_GT(durable, 100u);
  cluster.simulator.RestartNode(0, CrashKind::kPowerLoss);
  const PingPongNode& restarted = cluster.node(0);
  ASSERT_TRUE(restarted.status().ok()) << restarted.status();
  EXPECT_GE(restarted.stats().records_recovered, durable);
  EXPECT_LE(restarted.stats().records_recovered, written.size());
  for (size_t i = 0; i < restarted.records().size(); ++i) {
    ASSERT_EQ(restarted.records()[i], written[i]) << "record " << i;
  }
}

// A process crash keeps the page cache: every written record survives, synced or not.
TEST(PingPongSimTest, ProcessCrashKeepsEveryWrittenRecord) {
  SimCluster cluster(2, 12);
  cluster.simulator.RunFor(1'000'000);
  const std::vector<PingPongRecord> written = cluster.node(1).records();
  cluster.simulator.RestartNode(1, CrashKind::kProcess);
  EXPECT_EQ(cluster.node(1).records(), written);
}

// A torn tail (half a record of garbage after the last whole record) is cut off at recovery, and
// the node goes on appending after the last good record.
TEST(PingPongSimTest, TornTailIsTruncatedAtRecovery) {
  SimCluster cluster(2, 13);
  cluster.simulator.RunFor(500'000);
  const std::vector<PingPongRecord> written = cluster.node(0).records();
  cluster.simulator.StopNode(0);
  {
    std::unique_ptr<Disk> disk = cluster.simulator.disk(0).OpenView(1000);
    auto file = disk->Open("pingpong.log", OpenMode::kExisting);
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_TRUE((*file)->Append("garbage!").ok());
  }
  cluster.simulator.StartNode(0);
  PingPongNode& node = cluster.node(0);
  ASSERT_TRUE(node.status().ok()) << node.status();
  EXPECT_EQ(node.records(), written);
  cluster.simulator.RunFor(200'000);
  EXPECT_GT(node.records().size(), written.size());
}

// Many seeds of the full fault mix: the recovery invariants hold at every restart and the
// cluster keeps making progress between faults.
TEST(PingPongSimTest, FaultMixKeepsInvariantsAcrossSeeds) {
  for (uint64_t seed = 100; seed < 110; ++seed) {
    sim::PingPongWorldOptions options;
    options.seed = seed;
    options.duration_us = 30'000'000;
    options.fault_interval_us_mean = 700'000;
    sim::PingPongWorld world(options);
    const sim::PingPongWorldResult result = world.Run();
    EXPECT_TRUE(result.violations.empty()) << "seed " << seed << ": " << result.violations.front();
    EXPECT_GT(result.crashes, 0u) << "seed " << seed;
    EXPECT_GT(result.records_checked, 0u) << "seed " << seed;
    EXPECT_GT(result.totals.pongs_received, 1000u) << "seed " << seed;
  }
}

// A port on 127.0.0.1 that was free a moment ago (the kernel picks it; the socket is closed again).
uint16_t FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// The same workload over the real Env: three nodes in one process, each with its own PosixEnv and
// data directory, talking over real TCP on 127.0.0.1. Every node must hear pings and pongs from both
// peers, log them to a real file, and after a clean restart recover exactly what it had logged.
TEST(PingPongRealTest, ThreeNodesOverRealSocketsAndFiles) {
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("runnel-pingpong-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  constexpr int kNodes = 3;
  std::vector<NetworkAddress> addresses;
  for (int i = 0; i < kNodes; ++i) addresses.push_back({"127.0.0.1", FreeLoopbackPort()});
  std::vector<PingPongOptions> options(kNodes);
  std::vector<std::unique_ptr<PosixEnv>> envs(kNodes);
  std::vector<std::unique_ptr<PingPongNode>> nodes(kNodes);
  auto start = [&](int i) {
    absl::StatusOr<std::unique_ptr<PosixEnv>> env =
        PosixEnv::Create(**loop, i, (root / ("node-" + std::to_string(i))).string());
    ASSERT_TRUE(env.ok()) << env.status();
    envs[i] = std::move(*env);
    envs[i]->set_log_level_min(LogLevel::kWarning);
    nodes[i] = std::make_unique<PingPongNode>(*envs[i], options[i]);
    ASSERT_TRUE(nodes[i]->status().ok()) << nodes[i]->status();
  };
  for (int i = 0; i < kNodes; ++i) {
    options[i].listen_address = addresses[i];
    for (int j = 0; j < kNodes; ++j) {
      if (j != i) options[i].peers.push_back(addresses[j]);
    }
    start(i);
  }
  auto everyone_talked = [&] {
    for (const auto& node : nodes) {
      const PingPongStats& stats = node->stats();
      if (stats.pings_received < 40 || stats.pongs_received < 40) return false;
      if (stats.records_durable < 40) return false;
    }
    return true;
  };
  ASSERT_TRUE((*loop)->RunUntil(everyone_talked, 20'000'000));
  for (const auto& node : nodes) {
    EXPECT_EQ(node->stats().malformed_frames, 0u);
    EXPECT_EQ(node->stats().connections_established, 2u);
  }

  // A clean restart of node 0 recovers every record it logged, from the real file.
  std::vector<PingPongRecord> written = nodes[0]->records();
  nodes[0].reset();
  envs[0].reset();
  start(0);
  EXPECT_EQ(nodes[0]->records(), written);
  EXPECT_EQ(nodes[0]->stats().records_recovered, written.size());
  // And it rejoins: its peers reconnect and it hears from them again.
  const uint64_t pongs_before = nodes[0]->stats().pongs_received;
  ASSERT_TRUE((*loop)->RunUntil(
      [&] { return nodes[0]->stats().pongs_received >= pongs_before + 20; }, 20'000'000));

  for (int i = 0; i < kNodes; ++i) {
    nodes[i].reset();
    envs[i].reset();
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace runnel
