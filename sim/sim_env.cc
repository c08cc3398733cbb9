#include "sim/sim_env.h"

#include <iostream>

#include "absl/strings/str_format.h"

namespace runnel::sim {

SimEnv::SimEnv(SimContext& context, NodeId node, uint64_t incarnation,
               const SimClockState& clock_state, std::unique_ptr<Network> network,
               std::unique_ptr<Disk> disk, uint64_t random_seed, BuggifyRegistry& buggify,
               bool echo_logs)
    : context_(context),
      node_(node),
      incarnation_(incarnation),
      clock_(context, clock_state, node, incarnation),
      network_(std::move(network)),
      disk_(std::move(disk)),
      random_(random_seed),
      buggify_(buggify),
      echo_logs_(echo_logs) {}

void SimEnv::RecordEvent(const SemanticEvent& event) {
  TraceEntry entry;
  entry.time_us = context_.NowUs();
  entry.node = node_;
  entry.kind = SEMANTIC;
  entry.value = event.value;
  entry.subject = event.subject;
  entry.detail = event.detail;
  entry.label = event.kind;
  context_.trace().Record(entry);
}

void SimEnv::Log(LogLevel level, absl::string_view message) {
  // Logs stay out of the trace and its digest: wording changes must not change a run's witness.
  if (!echo_logs_) return;
  static constexpr const char* kLevelNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  std::cerr << absl::StrFormat("%12.6fs node %d %s %s\n", context_.NowUs() / 1e6, node_,
                               kLevelNames[static_cast<int>(level)], message);
}

}  // namespace runnel::sim
