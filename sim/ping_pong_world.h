// A simulated cluster of PingPongNodes under a random fault mix: the foundation's end-to-end
// workload, used by the runnel-sim main job, the determinism tests and the benchmarks.
//
// Faults drawn from the run's fault stream, each at a random time: power loss and process crash of a
// node followed by a restart, a clean stop and start, two-way and one-way partitions healed later,
// link delays, connection resets, wall-clock jumps, disk write/sync errors and read corruption.
//
// Invariants checked at every restart: the recovered log is a prefix of the records the previous
// incarnation knew, and it contains at least every record a completed Sync had covered.
#ifndef RUNNEL_SIM_PING_PONG_WORLD_H_
#define RUNNEL_SIM_PING_PONG_WORLD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "broker/pingpong/ping_pong.h"
#include "sim/simulator.h"

namespace runnel::sim {

struct PingPongWorldOptions {
  uint64_t seed = 1;
  int node_count = 3;
  int64_t duration_us = 60'000'000;
  int64_t ping_interval_us = 10'000;
  bool faults = true;
  // Mean time between injected faults.
  int64_t fault_interval_us_mean = 2'000'000;
  bool buggify = true;
  // Keep every trace event in memory, up to this many (0: keep none).
  size_t trace_events_kept_max = 0;
  std::string trace_path;  // write the trace file here when not empty
};

struct PingPongWorldResult {
  int64_t simulated_us = 0;
  uint64_t events = 0;
  uint64_t trace_events = 0;
  std::string digest;
  uint64_t faults_injected = 0;
  uint64_t crashes = 0;
  PingPongStats totals;  // summed over the nodes' last incarnations
  uint64_t records_checked = 0;
  std::vector<std::string> violations;
};

class PingPongWorld {
 public:
  // The most faults one run injects.
  static constexpr int kFaultsMax = 10'000;

  explicit PingPongWorld(PingPongWorldOptions options);

  // Runs the whole scenario and reports. Call once.
  PingPongWorldResult Run();

  Simulator& simulator() { return simulator_; }

 private:
  PingPongNode* node_program(NodeId node);
  void ScheduleFaults();
  void InjectRandomFault();
  void CrashAndRestart(NodeId node, CrashKind kind, int64_t downtime_us);
  void SnapshotBeforeCrash(NodeId node);
  void CheckRecovery(NodeId node);
  void AddTotals(const PingPongStats& stats);

  PingPongWorldOptions options_;
  Simulator simulator_;
  PingPongWorldResult result_;
  struct Snapshot {
    bool valid = false;
    std::vector<PingPongRecord> records;
    uint64_t durable = 0;
    bool power_loss = false;
  };
  std::vector<Snapshot> snapshots_;
  std::vector<bool> busy_;  // a node in the middle of a crash-restart cycle
};

SimulatorOptions MakeSimulatorOptions(uint64_t seed, bool buggify);

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_PING_PONG_WORLD_H_
