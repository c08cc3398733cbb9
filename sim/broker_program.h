// What a simulated broker node runs: a server::BrokerNode built from the node's Env, or the reason
// it did not start (a recovery error is a finding, not a crash of the simulator). The worlds that
// host brokers (the scenario and group worlds) build their broker nodes with BrokerNodeProgram.
#ifndef RUNNEL_SIM_BROKER_PROGRAM_H_
#define RUNNEL_SIM_BROKER_PROGRAM_H_

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/server/broker_node.h"
#include "sim/simulator.h"

namespace runnel::sim {

struct BrokerProgram {
  std::unique_ptr<server::BrokerNode> node;  // null when the node did not start
  absl::Status status;                        // why not
};

// The node program of a broker with `settings`: each start builds a BrokerNode over the node's
// Env (logging the error when it cannot start).
inline NodeProgram BrokerNodeProgram(server::BrokerSettings settings) {
  return [settings = std::move(settings)](Env& env) -> std::shared_ptr<void> {
    auto program = std::make_shared<BrokerProgram>();
    absl::StatusOr<std::unique_ptr<server::BrokerNode>> node =
        server::BrokerNode::Create(env, settings);
    if (node.ok()) {
      program->node = *std::move(node);
    } else {
      program->status = node.status();
      env.Log(LogLevel::kError, absl::StrCat("broker did not start: ", node.status().ToString()));
    }
    return program;
  };
}

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_BROKER_PROGRAM_H_
