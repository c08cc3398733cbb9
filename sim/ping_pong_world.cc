#include "sim/ping_pong_world.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace runnel::sim {
namespace {

constexpr uint16_t kPingPongPort = 7000;

}  // namespace

SimulatorOptions MakeSimulatorOptions(uint64_t seed, bool buggify) {
  SimulatorOptions options;
  options.seed = seed;
  options.buggify.enabled = buggify;
  return options;
}

PingPongWorld::PingPongWorld(PingPongWorldOptions options)
    : options_(options), simulator_(MakeSimulatorOptions(options.seed, options.buggify)) {
  assert(options_.node_count >= 1);
  std::vector<NetworkAddress> addresses;
  for (int i = 0; i < options_.node_count; ++i) {
    addresses.push_back(NetworkAddress{absl::StrCat("node-", i), kPingPongPort});
  }
  for (int i = 0; i < options_.node_count; ++i) {
    PingPongOptions node_options;
    node_options.listen_address = addresses[static_cast<size_t>(i)];
    node_options.ping_interval_us = options_.ping_interval_us;
    for (int j = 0; j < options_.node_count; ++j) {
      if (j != i) node_options.peers.push_back(addresses[static_cast<size_t>(j)]);
    }
    NodeOptions node;
    node.name = addresses[static_cast<size_t>(i)].host;
    // Clocks disagree a little, as real ones do.
    node.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
    node.clock.wall_offset_ms = simulator_.FaultRandom().Between(-50, 50);
    simulator_.AddNode(node, [node_options](Env& env) {
      return std::make_shared<PingPongNode>(env, node_options);
    });
  }
  snapshots_.resize(static_cast<size_t>(options_.node_count));
  busy_.assign(static_cast<size_t>(options_.node_count), false);
}

PingPongNode* PingPongWorld::node_program(NodeId node) {
  return static_cast<PingPongNode*>(simulator_.NodeProgramObject(node).get());
}

PingPongWorldResult PingPongWorld::Run() {
  Trace& trace = simulator_.trace();
  if (options_.trace_events_kept_max > 0) trace.KeepInMemory(options_.trace_events_kept_max);
  if (!options_.trace_path.empty()) {
    TraceHeader header;
    header.set_seed(options_.seed);
    header.set_source("ping-pong world");
    for (int i = 0; i < options_.node_count; ++i) header.add_node_names(simulator_.NodeName(i));
    absl::Status opened = trace.OpenFile(options_.trace_path, header);
    if (!opened.ok()) result_.violations.push_back(std::string(opened.message()));
  }
  for (int i = 0; i < options_.node_count; ++i) simulator_.StartNode(i);
  if (options_.faults) ScheduleFaults();
  simulator_.RunUntil(options_.duration_us);

  for (int i = 0; i < options_.node_count; ++i) {
    if (PingPongNode* node = node_program(i)) AddTotals(node->stats());
  }
  absl::Status closed = trace.CloseFile();
  if (!closed.ok()) result_.violations.push_back(std::string(closed.message()));
  result_.simulated_us = simulator_.NowUs();
  result_.events = simulator_.events_processed();
  result_.trace_events = trace.event_count();
  result_.digest = trace.DigestHex();
  return result_;
}

void PingPongWorld::ScheduleFaults() {
  // Fault times form a Poisson-like process: exponential gaps drawn from the fault stream.
  Random& random = simulator_.FaultRandom();
  int64_t at_us = 0;
  for (int i = 0; i < kFaultsMax; ++i) {
    const double fraction = std::max(random.Fraction(), 1e-9);
    at_us += static_cast<int64_t>(-std::log(fraction) *
                                  static_cast<double>(options_.fault_interval_us_mean));
    if (at_us >= options_.duration_us) break;
    simulator_.Schedule(at_us, [this] { InjectRandomFault(); });
  }
}

void PingPongWorld::InjectRandomFault() {
  Random& random = simulator_.FaultRandom();
  SimNetwork& network = simulator_.network();
  const int count = options_.node_count;
  const NodeId node = static_cast<NodeId>(random.Below(static_cast<uint64_t>(count)));
  const int64_t now_us = simulator_.NowUs();
  ++result_.faults_injected;
  switch (random.Below(9)) {
    case 0:
      if (!busy_[static_cast<size_t>(node)]) {
        CrashAndRestart(node, CrashKind::kPowerLoss, random.Between(100'000, 3'000'000));
      }
      break;
    case 1:
      if (!busy_[static_cast<size_t>(node)]) {
        CrashAndRestart(node, CrashKind::kProcess, random.Between(10'000, 1'000'000));
      }
      break;
    case 2: {
      if (busy_[static_cast<size_t>(node)]) break;
      busy_[static_cast<size_t>(node)] = true;
      simulator_.ScheduleFault(now_us, "stop", simulator_.NodeName(node), [this, node] {
        SnapshotBeforeCrash(node);
        snapshots_[static_cast<size_t>(node)].power_loss = false;
        simulator_.StopNode(node);
      });
      simulator_.ScheduleFault(now_us + random.Between(10'000, 2'000'000), "start",
                               simulator_.NodeName(node), [this, node] {
                                 simulator_.StartNode(node);
                                 CheckRecovery(node);
                                 busy_[static_cast<size_t>(node)] = false;
                               });
      break;
    }
    case 3:
    case 4: {
      if (count < 2) break;
      const bool one_way = random.Chance(0.5);
      std::vector<NodeId> nodes;
      for (NodeId i = 0; i < count; ++i) nodes.push_back(i);
      random.Shuffle(absl::MakeSpan(nodes));
      const size_t cut = 1 + random.Below(static_cast<uint64_t>(count - 1));
      std::vector<NodeId> group_a(nodes.begin(), nodes.begin() + static_cast<ptrdiff_t>(cut));
      std::vector<NodeId> group_b(nodes.begin() + static_cast<ptrdiff_t>(cut), nodes.end());
      std::string detail = "{";
      for (NodeId n : group_a) absl::StrAppend(&detail, n, " ");
      absl::StrAppend(&detail, one_way ? "} -/-> {" : "} <-/-> {");
      for (NodeId n : group_b) absl::StrAppend(&detail, n, " ");
      absl::StrAppend(&detail, "}");
      simulator_.ScheduleFault(now_us, one_way ? "partition one-way" : "partition", detail,
                               [&network, group_a, group_b, one_way] {
                                 network.Partition(group_a, group_b, one_way);
                               });
      simulator_.ScheduleFault(now_us + random.Between(200'000, 20'000'000), "heal", "all links",
                               [&network] { network.HealAll(); });
      break;
    }
    case 5: {
      const NodeId other = static_cast<NodeId>(random.Below(static_cast<uint64_t>(count)));
      const int64_t delay_us = random.Between(1'000, 50'000);
      simulator_.ScheduleFault(now_us, "link delay",
                               absl::StrCat(node, " -> ", other, " +", delay_us, "us"),
                               [&network, node, other, delay_us] {
                                 network.SetLinkExtraDelayUs(node, other, delay_us);
                               });
      simulator_.ScheduleFault(now_us + random.Between(100'000, 5'000'000), "link delay end",
                               absl::StrCat(node, " -> ", other),
                               [&network, node, other] {
                                 network.SetLinkExtraDelayUs(node, other, 0);
                               });
      break;
    }
    case 6:
      simulator_.ScheduleFault(now_us, "connection reset", "random connection",
                               [&network] { network.ResetRandomConnection(); });
      break;
    case 7: {
      const int64_t jump_ms = random.Chance(0.5) ? random.Between(1'000, 3'600'000)
                                                 : -random.Between(1'000, 3'600'000);
      simulator_.ScheduleFault(now_us, "clock jump",
                               absl::StrCat(simulator_.NodeName(node), " wall ", jump_ms, "ms"),
                               [this, node, jump_ms] { simulator_.clock(node).JumpWallMs(jump_ms); });
      break;
    }
    case 8: {
      const uint64_t which = random.Below(3);
      const char* names[] = {"disk write error", "disk sync error", "disk read corruption"};
      simulator_.ScheduleFault(now_us, names[which], simulator_.NodeName(node),
                               [this, node, which] {
                                 SimDiskStorage& disk = simulator_.disk(node);
                                 if (which == 0) disk.FailNextWrite();
                                 if (which == 1) disk.FailNextSync();
                                 if (which == 2) disk.CorruptNextRead();
                               });
      break;
    }
  }
}

void PingPongWorld::CrashAndRestart(NodeId node, CrashKind kind, int64_t downtime_us) {
  busy_[static_cast<size_t>(node)] = true;
  const int64_t now_us = simulator_.NowUs();
  const bool power_loss = kind == CrashKind::kPowerLoss;
  simulator_.ScheduleFault(now_us, power_loss ? "power loss" : "process crash",
                           simulator_.NodeName(node), [this, node, kind, power_loss] {
                             SnapshotBeforeCrash(node);
                             snapshots_[static_cast<size_t>(node)].power_loss = power_loss;
                             ++result_.crashes;
                             simulator_.CrashNode(node, kind);
                           });
  simulator_.ScheduleFault(now_us + downtime_us, "restart", simulator_.NodeName(node),
                           [this, node] {
                             simulator_.StartNode(node);
                             CheckRecovery(node);
                             busy_[static_cast<size_t>(node)] = false;
                           });
}

void PingPongWorld::SnapshotBeforeCrash(NodeId node) {
  Snapshot& snapshot = snapshots_[static_cast<size_t>(node)];
  snapshot = Snapshot();
  PingPongNode* program = node_program(node);
  if (program == nullptr || !program->status().ok()) return;
  snapshot.valid = true;
  snapshot.records = program->records();
  snapshot.durable = program->stats().records_durable;
  AddTotals(program->stats());
}

void PingPongWorld::CheckRecovery(NodeId node) {
  Snapshot& snapshot = snapshots_[static_cast<size_t>(node)];
  PingPongNode* program = node_program(node);
  if (!snapshot.valid || program == nullptr) return;
  const std::string who = absl::StrCat(simulator_.NodeName(node), " at ", simulator_.NowUs(), "us");
  if (!program->status().ok()) {
    result_.violations.push_back(
        absl::StrCat(who, ": did not restart: ", program->status().message()));
    return;
  }
  const std::vector<PingPongRecord>& recovered = program->records();
  const uint64_t recovered_count = program->stats().records_recovered;
  if (recovered_count < snapshot.durable) {
    result_.violations.push_back(absl::StrCat(who, ": lost durable records: recovered ",
                                              recovered_count, " of ", snapshot.durable,
                                              " durable"));
  }
  if (!snapshot.power_loss && recovered_count < snapshot.records.size()) {
    result_.violations.push_back(absl::StrCat(who, ": a process crash lost written records: ",
                                              recovered_count, " of ", snapshot.records.size()));
  }
  const size_t compared = std::min(recovered.size(), snapshot.records.size());
  if (recovered_count > snapshot.records.size()) {
    result_.violations.push_back(absl::StrCat(who, ": recovered ", recovered_count,
                                              " records but only ", snapshot.records.size(),
                                              " were ever written"));
  }
  for (size_t i = 0; i < compared; ++i) {
    if (!(recovered[i] == snapshot.records[i])) {
      result_.violations.push_back(
          absl::StrCat(who, ": recovered record ", i, " differs from the one written"));
      break;
    }
  }
  result_.records_checked += compared;
  snapshot = Snapshot();
}

void PingPongWorld::AddTotals(const PingPongStats& stats) {
  PingPongStats& totals = result_.totals;
  totals.pings_sent += stats.pings_sent;
  totals.pings_received += stats.pings_received;
  totals.pongs_received += stats.pongs_received;
  totals.connections_established += stats.connections_established;
  totals.connections_lost += stats.connections_lost;
  totals.malformed_frames += stats.malformed_frames;
  totals.records_appended += stats.records_appended;
  totals.sync_failures += stats.sync_failures;
  totals.log_full_drops += stats.log_full_drops;
}

}  // namespace runnel::sim
