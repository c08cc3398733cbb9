// The simulator: one event queue, virtual time, and a world of nodes with clocks, disks and a
// network, all driven by one seed. Given the same seed and the same calls, a run is identical down
// to the trace digest.
//
// Usage:
//   Simulator simulator(SimulatorOptions{.seed = 7});
//   NodeId node = simulator.AddNode({.name = "node-0"}, [](Env& env) {
//     return std::make_shared<MyServer>(env);   // the node's program, built from its Env alone
//   });
//   simulator.StartNode(node);
//   simulator.RunFor(10'000'000);                 // ten simulated seconds
//   std::cout << simulator.trace().DigestHex();
//
// A node's program is destroyed when the node crashes or stops; on restart it is built again from
// the same factory with a new Env over the node's surviving disk.
//
// A node may also be stalled (StallNode) and resumed (ResumeNode), as a process is by a long
// garbage-collection pause or SIGSTOP / SIGCONT: while stalled, none of its events run (timers,
// deliveries, connection events, disk completions); they are held, in order, and run on resume
// before anything else due then, in their original order. The node's clock keeps running, so its
// timers fire late, all at once. Its peers notice nothing but silence: its connections stay open
// (the kernel still acknowledges bytes, so no TCP timeout fires) and it sends nothing.
#ifndef RUNNEL_SIM_SIMULATOR_H_
#define RUNNEL_SIM_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/env/env.h"
#include "broker/env/random.h"
#include "sim/buggify.h"
#include "sim/event_queue.h"
#include "sim/sim_clock.h"
#include "sim/sim_context.h"
#include "sim/sim_disk.h"
#include "sim/sim_env.h"
#include "sim/sim_network.h"
#include "sim/trace.h"

namespace runnel::sim {

struct SimulatorOptions {
  uint64_t seed = 1;
  NetworkOptions network;
  SimDiskOptions disk;  // the default for nodes that do not set their own
  BuggifyOptions buggify;
  // Print the nodes' log lines to stderr.
  bool echo_logs = false;
};

struct NodeOptions {
  std::string name;  // also the node's host name on the network; must be unique
  ClockOptions clock;
  bool has_own_disk_options = false;
  SimDiskOptions disk;
};

// Builds a node's program from its Env. The returned object is the node; destroying it must release
// everything the node holds. It may be of any type.
using NodeProgram = std::function<std::shared_ptr<void>(Env& env)>;

enum class CrashKind {
  // The process dies; the machine and its page cache survive, so no written data is lost. Peers
  // see their connections reset promptly, as the kernel closes the sockets.
  kProcess,
  // The machine loses power: unsynced disk changes are lost as SimDiskOptions says, and peers see
  // a reset or a timeout.
  kPowerLoss,
};

class Simulator final : public SimContext {
 public:
  // Stream numbers under the run's seed (node streams are kNodeStreamBase + node id).
  static constexpr uint64_t kFaultStream = 1;
  static constexpr uint64_t kBuggifyStream = 2;
  static constexpr uint64_t kNodeStreamBase = 1000;
  // The most nodes a simulation may hold.
  static constexpr size_t kNodesMax = 1024;

  explicit Simulator(SimulatorOptions options);
  ~Simulator() override;

  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Adds a node that is down until StartNode.
  NodeId AddNode(NodeOptions options, NodeProgram program);
  void StartNode(NodeId node);
  void CrashNode(NodeId node, CrashKind kind);
  // A clean shutdown: the program is destroyed (its destructor may still close connections and
  // write), then the process exits; written data stays in the page cache, so nothing is lost.
  void StopNode(NodeId node);
  // Crash (of the given kind) followed at once by a start.
  void RestartNode(NodeId node, CrashKind kind);

  // Stalls a running node that is not stalled yet (see the file comment). Crashing or stopping a
  // stalled node ends the stall: the events it held are dropped with its incarnation.
  void StallNode(NodeId node);
  // Resumes a stalled node: its held events run next, in their original order.
  void ResumeNode(NodeId node);
  bool IsStalled(NodeId node) const;
  // Events a stalled node holds back now (0 when it is not stalled).
  size_t HeldEventCount(NodeId node) const;

  bool IsUp(NodeId node) const;
  uint64_t Incarnation(NodeId node) const;
  size_t node_count() const { return nodes_.size(); }
  const std::string& NodeName(NodeId node) const;
  // The node's current Env, or nullptr while it is down.
  Env* NodeEnv(NodeId node);
  // The node's current program object, or nullptr while it is down.
  std::shared_ptr<void> NodeProgramObject(NodeId node);

  SimNetwork& network() { return network_; }
  SimDiskStorage& disk(NodeId node);
  SimClockState& clock(NodeId node);
  BuggifyRegistry& buggify() { return buggify_; }

  // Runs `action` at absolute virtual time `at_us`, recording a FAULT trace event that names it.
  void ScheduleFault(int64_t at_us, std::string name, std::string detail,
                     absl::AnyInvocable<void()> action);

  // Processes the next event; false when there is none.
  bool Step();
  // Processes every event up to and including `time_us`, then sets the time to `time_us`.
  void RunUntil(int64_t time_us);
  void RunFor(int64_t duration_us) { RunUntil(now_us_ + duration_us); }
  // Runs until `done` returns true (checked after each event) or `deadline_us` passes; returns
  // whether `done` became true.
  bool RunUntilCondition(const std::function<bool()>& done, int64_t deadline_us);

  // Runs after every event the simulator processes (not after skipped or held ones), for checks of
  // invariants online, with the node the event ran on (-1 for the simulator's own events, such as
  // faults and node starts), so that a check of one node's state can skip other nodes' events. The
  // hook must not schedule, step or inject faults; it observes.
  using AfterEventHook = std::function<void(NodeId event_node)>;
  void SetAfterEventHook(AfterEventHook hook) { after_event_hook_ = std::move(hook); }

  uint64_t seed() const { return options_.seed; }
  uint64_t events_processed() const { return events_processed_; }
  size_t pending_event_count() const { return queue_.size(); }

  // SimContext.
  int64_t NowUs() const override { return now_us_; }
  uint64_t Schedule(int64_t delay_us, absl::AnyInvocable<void()> action) override;
  uint64_t ScheduleForNode(NodeId node, uint64_t incarnation, int64_t delay_us,
                           absl::AnyInvocable<void()> action) override;
  void CancelEvent(uint64_t sequence) override { queue_.Cancel(sequence); }
  bool IsNodeStalled(NodeId node) const override { return IsStalled(node); }
  Random& FaultRandom() override { return fault_random_; }
  Trace& trace() override { return trace_; }

 private:
  struct Node {
    NodeOptions options;
    NodeProgram program;
    std::unique_ptr<SimClockState> clock;
    std::unique_ptr<SimDiskStorage> disk;
    uint64_t incarnation = 0;  // of the current or last run
    bool up = false;
    bool stalled = false;
    // Events of the current incarnation that came due while it was stalled, in the order due.
    std::vector<EventQueue::Event> held;
    std::unique_ptr<SimEnv> env;
    std::shared_ptr<void> program_object;
  };

  // Runs the next live event due at or before `deadline_us`; false when there is none.
  bool RunNextEvent(int64_t deadline_us);
  Node& node_at(NodeId node);
  const Node& node_at(NodeId node) const;
  void RecordNodeEvent(NodeId node, TraceKind kind, absl::string_view detail);
  // Destroys the program and the Env of a running node.
  void TearDown(Node& node);
  // Ends a stall without running what it held: the held events go back to the queue, where they
  // are skipped as belonging to an ended incarnation (and cancellations of them are forgotten).
  void EndStallForShutdown(NodeId id, Node& node);

  SimulatorOptions options_;
  int64_t now_us_ = 0;
  uint64_t events_processed_ = 0;
  EventQueue queue_;
  Random fault_random_;
  Trace trace_;
  BuggifyRegistry buggify_;
  SimNetwork network_;
  std::vector<std::unique_ptr<Node>> nodes_;
  AfterEventHook after_event_hook_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SIMULATOR_H_
