// The Env one simulated node incarnation sees: a clock view, network and disk views, its own random
// stream, buggify decisions and the trace. Built by the Simulator at each start of a node and
// destroyed at its crash or stop, after the node's program.
#ifndef RUNNEL_SIM_SIM_ENV_H_
#define RUNNEL_SIM_SIM_ENV_H_

#include <memory>

#include "broker/env/env.h"
#include "sim/buggify.h"
#include "sim/sim_clock.h"
#include "sim/sim_context.h"

namespace runnel::sim {

class SimEnv final : public Env {
 public:
  SimEnv(SimContext& context, NodeId node, uint64_t incarnation, const SimClockState& clock_state,
         std::unique_ptr<Network> network, std::unique_ptr<Disk> disk, uint64_t random_seed,
         BuggifyRegistry& buggify, bool echo_logs);

  NodeId node_id() const override { return node_; }
  Clock& clock() override { return clock_; }
  Network& network() override { return *network_; }
  Disk& disk() override { return *disk_; }
  Random& random() override { return random_; }
  bool BuggifyFires(const BuggifySite& site) override { return buggify_.Fires(site, node_); }
  void RecordEvent(const SemanticEvent& event) override;
  void Log(LogLevel level, absl::string_view message) override;

  uint64_t incarnation() const { return incarnation_; }

 private:
  SimContext& context_;
  NodeId node_;
  uint64_t incarnation_;
  SimClock clock_;
  std::unique_ptr<Network> network_;
  std::unique_ptr<Disk> disk_;
  Random random_;
  BuggifyRegistry& buggify_;
  bool echo_logs_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SIM_ENV_H_
