// The scenario world: runs one scenario file (sim/scenario.proto) in the simulator with a seed,
// records what every client did (model/history.h), checks it (model/kafka_checker.h and
// model/online_checker.h) and says whether the verdict is what the scenario expects.
//
// Nodes, as scenario.proto names them: "broker-<i>" (a server::BrokerNode listening on kBrokerPort),
// then each producer entry's "<name>-<i>" and each consumer entry's "<name>-<i>" client nodes.
//
// Clients (each a node program built from its Env alone, restarted with a new incarnation after a
// crash; every incarnation is its own process in the history):
// - Every client first makes sure its topics exist (CreateTopics; "already exists" is fine),
//   retrying until they do.
// - A producer sends one record every 1 / rate_per_s seconds of its window to its topics in turn:
//   a key drawn by the entry's key distribution and a value unique in the run
//   ("<node>.<incarnation>.<sequence>" plus padding). A send is invoked when Send() is called and
//   completes ok with its offset, fail when Send() refused it at once (so it certainly never
//   reached a broker), or info (indeterminate) when its delivery failed later (a timeout may hide
//   a write), under acks=0 (no answer), when its process crashed first, or when the run ended
//   first.
// - An assign consumer owns every partition of its topics from the start (an assign entry in the
//   history) and reads from the beginning (or the end). A group consumer joins its group; each
//   completed rebalance is an assign entry, each commit a commit entry. Every delivery is a poll.
//
// Phases:
// 1. Workload, for run.duration_ms: clients work within their windows; faults strike at their
//    times and, with a FaultMix, at random (the seed first draws the mix from its ranges; see
//    drawn_fault_mix in the result).
// 2. Settle: every fault heals (links, delays, disks, stalls), nodes that are down start again,
//    brokers whose disk returned errors or was full are restarted (an operator replacing a failed
//    disk: a log that met an I/O error refuses appends until reopened, as Kafka takes a failed log
//    directory offline), producers stop, and the run goes on until every send has an outcome and
//    every consumer has caught up with every partition's high watermark (groups: each partition
//    owned by a member that has read up to it), at most run.settle_timeout_ms.
// 3. Final read: assign consumers read everything again from the beginning (a seek entry), so
//    that the checker can tell lost writes from unread ones.
//
// Checks: the history checker's anomalies (model/kafka_checker.h) and the online invariants
// checked after every simulator event (model/online_checker.h: the broker's high watermark of
// every partition never decreases; records read at an offset never change), plus "stuck" when the
// settle phase did not finish. Anomalies named in checks.skip are left out. The verdict is PASS
// with no anomaly; the run passes when the verdict is the scenario's expected one (and, for an
// expected FAIL with listed anomalies, every anomaly found is listed).
//
// The same scenario and seed give the same trace digest and the same history.
#ifndef RUNNEL_SIM_SCENARIO_WORLD_H_
#define RUNNEL_SIM_SCENARIO_WORLD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/history.h"
#include "model/kafka_checker.h"
#include "sim/scenario.pb.h"
#include "sim/simulator.h"

namespace runnel::sim {

struct ScenarioRunOptions {
  uint64_t seed = 1;
  // Write the trace file here when not empty.
  std::string trace_path;
  // Keep this many trace events in memory (0: none), for callers that inspect the trace.
  size_t trace_events_kept_max = 0;
  // Print the nodes' log lines to stderr.
  bool echo_logs = false;
  // What the trace header names as the trace's source (for example the scenario file).
  std::string source;
};

// One fault as it was injected (or healed), for summaries and reports.
struct InjectedFault {
  int64_t time_us = 0;
  std::string kind;    // "crash", "power loss", "partition", "heal", ...
  std::string target;  // the node(s) it struck
  std::string detail;
};

struct ScenarioResult {
  int64_t simulated_us = 0;
  uint64_t events = 0;
  uint64_t trace_events = 0;
  std::string digest;
  // What the seed drew from the FaultMix's ranges, in words (empty without a mix).
  std::string drawn_fault_mix;
  std::vector<InjectedFault> faults;
  uint64_t faults_injected = 0;
  uint64_t sends_invoked = 0;
  uint64_t sends_ok = 0;
  uint64_t sends_failed = 0;
  uint64_t sends_indeterminate = 0;
  uint64_t polls = 0;
  uint64_t records_read = 0;
  uint64_t commits_ok = 0;
  uint64_t commits_failed = 0;
  bool settled = false;
  // Every anomaly found (after checks.skip), sorted by time.
  std::vector<model::Anomaly> anomalies;
  // Anomalies found beyond those kept in `anomalies`.
  uint64_t anomalies_not_kept = 0;
  // "PASS" or "FAIL": what the checks concluded.
  std::string verdict;
  // Whether the verdict is the one the scenario expects, and why not when it is not.
  bool as_expected = false;
  std::string expectation_note;
};

class ScenarioWorld {
 public:
  // The broker's port on every broker node.
  static constexpr uint16_t kBrokerPort = 9092;
  // The most faults one run injects (scheduled and random together).
  static constexpr int kFaultsMax = 10'000;

  // `scenario` must have passed ValidateScenario (sim/scenario_loader.h).
  ScenarioWorld(scenario::Scenario scenario, ScenarioRunOptions options);
  ~ScenarioWorld();

  ScenarioWorld(const ScenarioWorld&) = delete;
  ScenarioWorld& operator=(const ScenarioWorld&) = delete;

  // Runs the whole scenario and reports. Call once.
  ScenarioResult Run();

  const model::History& history() const;
  Simulator& simulator() { return simulator_; }
  const scenario::Scenario& scenario() const { return scenario_; }

  // Shared state the node programs reach; defined in scenario_world.cc.
  struct Shared;

 private:
  scenario::Scenario scenario_;
  ScenarioRunOptions options_;
  // Before the simulator: the node programs it destroys hold pointers into it.
  std::unique_ptr<Shared> shared_;
  Simulator simulator_;
  class Runner;
  std::unique_ptr<Runner> runner_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SCENARIO_WORLD_H_
