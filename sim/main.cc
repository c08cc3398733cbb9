// runnel-sim: runs simulated Runnel worlds from a seed and prints what happened.
//
//   runnel-sim pingpong [--seed=N] [--nodes=N] [--duration_s=S] [--faults] [--trace=PATH]
//
// The summary ends with the trace digest, the run's determinism witness: the same seed and flags
// always give the same digest. The exit status is 0 only when every invariant held.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "sim/ping_pong_world.h"

ABSL_FLAG(uint64_t, seed, 1, "The run's seed: every random choice of the run derives from it.");
ABSL_FLAG(int, nodes, 3, "How many nodes the world has.");
ABSL_FLAG(double, duration_s, 60.0, "Simulated seconds to run.");
ABSL_FLAG(bool, faults, true, "Inject a random fault mix (crashes, partitions, disk faults, ...).");
ABSL_FLAG(bool, buggify, true, "Switch on fault points in broker code.");
ABSL_FLAG(std::string, trace, "", "Write the trace to this file.");

namespace {

constexpr int kNodesMax = 64;

int RunPingPong() {
  runnel::sim::PingPongWorldOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.node_count = absl::GetFlag(FLAGS_nodes);
  options.duration_us = static_cast<int64_t>(absl::GetFlag(FLAGS_duration_s) * 1e6);
  options.faults = absl::GetFlag(FLAGS_faults);
  options.buggify = absl::GetFlag(FLAGS_buggify);
  options.trace_path = absl::GetFlag(FLAGS_trace);
  if (options.node_count < 1 || options.node_count > kNodesMax) {
    std::cerr << "runnel-sim: --nodes must be between 1 and " << kNodesMax << "\n";
    return 2;
  }
  if (options.duration_us <= 0) {
    std::cerr << "runnel-sim: --duration_s must be positive\n";
    return 2;
  }

  const auto wall_start = std::chrono::steady_clock::now();
  runnel::sim::PingPongWorld world(options);
  const runnel::sim::PingPongWorldResult result = world.Run();
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double simulated_s = static_cast<double>(result.simulated_us) / 1e6;

  std::cout << absl::StrFormat("runnel-sim pingpong: seed %d, %d nodes, faults %s\n",
                               options.seed, options.node_count, options.faults ? "on" : "off");
  std::cout << absl::StrFormat("  simulated time     %.3f s\n", simulated_s);
  std::cout << absl::StrFormat("  wall time          %.3f s\n", wall_s);
  std::cout << absl::StrFormat("  speed-up           %.0fx\n", wall_s > 0 ? simulated_s / wall_s : 0);
  std::cout << absl::StrFormat("  events             %d (%.0f per wall second)\n", result.events,
                               wall_s > 0 ? static_cast<double>(result.events) / wall_s : 0);
  std::cout << absl::StrFormat("  trace events       %d\n", result.trace_events);
  std::cout << absl::StrFormat("  faults injected    %d (%d crashes)\n", result.faults_injected,
                               result.crashes);
  std::cout << absl::StrFormat("  pings sent         %d, received %d, pongs received %d\n",
                               result.totals.pings_sent, result.totals.pings_received,
                               result.totals.pongs_received);
  std::cout << absl::StrFormat("  connections        %d established, %d lost\n",
                               result.totals.connections_established,
                               result.totals.connections_lost);
  std::cout << absl::StrFormat("  log records        %d appended, %d checked after restarts\n",
                               result.totals.records_appended, result.records_checked);
  std::cout << absl::StrFormat("  invariants         %s\n",
                               result.violations.empty() ? "all held" : "VIOLATED");
  for (const std::string& violation : result.violations) {
    std::cout << "    " << violation << "\n";
  }
  if (!result.violations.empty()) {
    std::cout << absl::StrFormat("  replay with        runnel-sim pingpong --seed=%d --nodes=%d "
                                 "--duration_s=%g%s\n",
                                 options.seed, options.node_count,
                                 absl::GetFlag(FLAGS_duration_s),
                                 options.faults ? "" : " --nofaults");
  }
  std::cout << absl::StrFormat("  trace digest       %s\n", result.digest);
  return result.violations.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "runs a simulated Runnel world.\n\n  runnel-sim pingpong [--seed=N] [--nodes=N] "
      "[--duration_s=S] [--faults] [--trace=PATH]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2 || std::string(args[1]) != "pingpong") {
    std::cerr << "usage: runnel-sim pingpong [--seed=N] [--nodes=N] [--duration_s=S] [--faults] "
                 "[--trace=PATH]\n";
    return 2;
  }
  return RunPingPong();
}
