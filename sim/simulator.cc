#include "sim/simulator.h"

#include <cassert>
#include <limits>

#include "absl/strings/str_cat.h"

namespace runnel::sim {

Simulator::Simulator(SimulatorOptions options)
    : options_(options),
      fault_random_(DeriveSeed(options.seed, kFaultStream)),
      buggify_(*this, DeriveSeed(options.seed, kBuggifyStream), options.buggify),
      network_(*this, options.network) {}

Simulator::~Simulator() {
  // Programs go first: their destructors may still call into the network and disks.
  for (auto& node : nodes_) {
    node->program_object.reset();
  }
  for (auto& node : nodes_) node->env.reset();
}

NodeId Simulator::AddNode(NodeOptions options, NodeProgram program) {
  assert(nodes_.size() < kNodesMax);
  const NodeId id = static_cast<NodeId>(nodes_.size());
  if (options.name.empty()) options.name = absl::StrCat("node-", id);
  auto node = std::make_unique<Node>();
  node->clock = std::make_unique<SimClockState>(options.clock);
  node->disk = std::make_unique<SimDiskStorage>(
      *this, id, options.has_own_disk_options ? options.disk : options_.disk);
  network_.RegisterNode(id, options.name);
  node->options = std::move(options);
  node->program = std::move(program);
  nodes_.push_back(std::move(node));
  return id;
}

Simulator::Node& Simulator::node_at(NodeId node) {
  assert(node >= 0 && static_cast<size_t>(node) < nodes_.size());
  return *nodes_[static_cast<size_t>(node)];
}

const Simulator::Node& Simulator::node_at(NodeId node) const {
  assert(node >= 0 && static_cast<size_t>(node) < nodes_.size());
  return *nodes_[static_cast<size_t>(node)];
}

void Simulator::StartNode(NodeId id) {
  Node& node = node_at(id);
  assert(!node.up);
  ++node.incarnation;
  node.up = true;
  RecordNodeEvent(id, NODE_START, node.options.name);
  // Each incarnation gets its own random stream, so a restarted node does not replay the choices
  // of its previous life.
  const uint64_t random_seed =
      DeriveSeed(DeriveSeed(options_.seed, kNodeStreamBase + static_cast<uint64_t>(id)),
                 node.incarnation);
  node.env = std::make_unique<SimEnv>(*this, id, node.incarnation, *node.clock,
                                      network_.OpenView(id, node.incarnation),
                                      node.disk->OpenView(node.incarnation), random_seed,
                                      buggify_, options_.echo_logs);
  node.program_object = node.program(*node.env);
}

void Simulator::TearDown(Node& node) {
  node.program_object.reset();
  node.env.reset();
}

void Simulator::StallNode(NodeId id) {
  Node& node = node_at(id);
  assert(node.up);
  assert(!node.stalled);
  assert(node.held.empty());
  node.stalled = true;
  RecordNodeEvent(id, NODE_STALL, "stalled");
}

void Simulator::ResumeNode(NodeId id) {
  Node& node = node_at(id);
  assert(node.up);
  assert(node.stalled);
  node.stalled = false;
  TraceEntry entry;
  entry.time_us = now_us_;
  entry.node = id;
  entry.kind = NODE_RESUME;
  entry.value = static_cast<int64_t>(node.incarnation);
  entry.bytes = node.held.size();
  entry.detail = "resumed";
  trace_.Record(entry);
  std::vector<EventQueue::Event> held = std::move(node.held);
  node.held.clear();
  queue_.Requeue(now_us_, std::move(held));
}

bool Simulator::IsStalled(NodeId node) const { return node_at(node).stalled; }

size_t Simulator::HeldEventCount(NodeId node) const { return node_at(node).held.size(); }

void Simulator::EndStallForShutdown(NodeId id, Node& node) {
  if (!node.stalled) return;
  node.stalled = false;
  RecordNodeEvent(id, NODE_RESUME, "stall ended by shutdown");
  std::vector<EventQueue::Event> held = std::move(node.held);
  node.held.clear();
  queue_.Requeue(now_us_, std::move(held));
}

void Simulator::CrashNode(NodeId id, CrashKind kind) {
  Node& node = node_at(id);
  if (!node.up) return;
  RecordNodeEvent(id, NODE_CRASH, kind == CrashKind::kPowerLoss ? "power loss" : "process crash");
  EndStallForShutdown(id, node);
  // Mark the node down before destroying its program, so that anything its destructors try
  // (closing connections, writing) is refused as coming from a dead incarnation: a crash sends no
  // goodbyes.
  node.up = false;
  if (kind == CrashKind::kProcess) {
    // The machine survives and its kernel resets the dead process's connections at once: every
    // peer hears promptly (CrashKind::kProcess), whatever crash_reset_probability says; that
    // probability models a machine that lost power. Chance(1) draws nothing from the fault stream.
    NetworkOptions& network_options = network_.options();
    const double crash_reset_probability = network_options.crash_reset_probability;
    network_options.crash_reset_probability = 1.0;
    network_.NodeCrashed(id);
    network_options.crash_reset_probability = crash_reset_probability;
  } else {
    network_.NodeCrashed(id);
  }
  if (kind == CrashKind::kPowerLoss) {
    node.disk->Crash();
  } else {
    // The process is gone but the machine is not: the page cache keeps every write. The disk
    // still refuses handles of the dead incarnation.
    node.disk->ProcessCrash();
  }
  TearDown(node);
}

void Simulator::StopNode(NodeId id) {
  Node& node = node_at(id);
  if (!node.up) return;
  RecordNodeEvent(id, NODE_STOP, "clean shutdown");
  EndStallForShutdown(id, node);
  // The program's destructor runs while the node is still up, so its orderly closes go out.
  node.program_object.reset();
  node.up = false;
  // The kernel closes whatever sockets the program left open, in an orderly way.
  network_.NodeStopped(id);
  node.disk->ProcessCrash();
  node.env.reset();
}

void Simulator::RestartNode(NodeId id, CrashKind kind) {
  CrashNode(id, kind);
  StartNode(id);
}

bool Simulator::IsUp(NodeId node) const { return node_at(node).up; }
uint64_t Simulator::Incarnation(NodeId node) const { return node_at(node).incarnation; }
const std::string& Simulator::NodeName(NodeId node) const { return node_at(node).options.name; }
Env* Simulator::NodeEnv(NodeId node) { return node_at(node).env.get(); }
std::shared_ptr<void> Simulator::NodeProgramObject(NodeId node) {
  return node_at(node).program_object;
}
SimDiskStorage& Simulator::disk(NodeId node) { return *node_at(node).disk; }
SimClockState& Simulator::clock(NodeId node) { return *node_at(node).clock; }

void Simulator::ScheduleFault(int64_t at_us, std::string name, std::string detail,
                              absl::AnyInvocable<void()> action) {
  assert(at_us >= now_us_);
  Schedule(at_us - now_us_, [this, name = std::move(name), detail = std::move(detail),
                             action = std::move(action)]() mutable {
    TraceEntry entry;
    entry.time_us = now_us_;
    entry.kind = FAULT;
    entry.subject = name;
    entry.detail = detail;
    trace_.Record(entry);
    action();
  });
}

uint64_t Simulator::Schedule(int64_t delay_us, absl::AnyInvocable<void()> action) {
  if (delay_us < 0) delay_us = 0;
  return queue_.Push(now_us_ + delay_us, -1, 0, std::move(action));
}

uint64_t Simulator::ScheduleForNode(NodeId node, uint64_t incarnation, int64_t delay_us,
                                    absl::AnyInvocable<void()> action) {
  assert(node >= 0);
  if (delay_us < 0) delay_us = 0;
  return queue_.Push(now_us_ + delay_us, node, incarnation, std::move(action));
}

bool Simulator::RunNextEvent(int64_t deadline_us) {
  EventQueue::Event event;
  while (queue_.PopDue(deadline_us, &event)) {
    assert(event.time_us >= now_us_);
    now_us_ = event.time_us;
    if (event.node >= 0) {
      Node& node = node_at(event.node);
      // Callbacks of a crashed incarnation never run.
      if (!node.up || node.incarnation != event.incarnation) continue;
      // A stalled node's events wait for its resume, in the order they came due.
      if (node.stalled) {
        assert(node.held.size() < EventQueue::kPendingEventsMax);
        node.held.push_back(std::move(event));
        continue;
      }
    }
    ++events_processed_;
    event.action();
    if (after_event_hook_) after_event_hook_(event.node);
    return true;
  }
  return false;
}

bool Simulator::Step() { return RunNextEvent(std::numeric_limits<int64_t>::max()); }

void Simulator::RunUntil(int64_t time_us) {
  while (RunNextEvent(time_us)) {
  }
  if (time_us > now_us_) now_us_ = time_us;
}

bool Simulator::RunUntilCondition(const std::function<bool()>& done, int64_t deadline_us) {
  if (done()) return true;
  while (RunNextEvent(deadline_us)) {
    if (done()) return true;
  }
  if (deadline_us > now_us_) now_us_ = deadline_us;
  return done();
}

void Simulator::RecordNodeEvent(NodeId node, TraceKind kind, absl::string_view detail) {
  TraceEntry entry;
  entry.time_us = now_us_;
  entry.node = node;
  entry.kind = kind;
  entry.value = static_cast<int64_t>(node_at(node).incarnation);
  entry.detail = detail;
  trace_.Record(entry);
}

}  // namespace runnel::sim
