// runnel-sim: runs simulated Runnel worlds from a seed and prints what happened.
//
//   runnel-sim pingpong [--seed=N] [--nodes=N] [--duration_s=S] [--faults] [--trace=PATH]
//   runnel-sim group [--seed=N] [--members=N] [--partitions=N] [--static_members]
//                    [--duration_s=S] [--faults] [--fault_interval_ms=MS]
//                    [--latency_spike_probability=P] [--assignor=NAME] [--commit_interval_ms=MS]
//                    [--session_timeout_ms=MS] [--heartbeat_interval_ms=MS]
//                    [--echo_logs] [--trace=PATH]
//
//   runnel-sim run FILE [--seed=N] [--trace=PATH] [--history=PATH] [--report=DIR] [--brief]
//   runnel-sim swarm FILE --seeds=A..B [--jobs=J] [--shard=I/N]
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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/group_world.h"
#include "sim/scenario_commands.h"
#include "sim/ping_pong_world.h"

ABSL_FLAG(uint64_t, seed, 1, "The run's seed: every random choice of the run derives from it.");
ABSL_FLAG(int, nodes, 3, "How many nodes the world has.");
ABSL_FLAG(double, duration_s, 60.0, "Simulated seconds to run.");
ABSL_FLAG(bool, faults, true, "Inject a random fault mix (crashes, partitions, disk faults, ...).");
ABSL_FLAG(bool, buggify, true, "Switch on fault points in broker code.");
ABSL_FLAG(std::string, trace, "", "Write the trace to this file.");
ABSL_FLAG(int, members, 3, "group: how many members the consumer group has.");
ABSL_FLAG(int, partitions, 6, "group: how many partitions the group's topic has.");
ABSL_FLAG(bool, static_members, false, "group: members use a group.instance.id.");
ABSL_FLAG(int, fault_interval_ms, 1500, "group: mean simulated time between random faults.");
ABSL_FLAG(bool, echo_logs, false, "group: print the nodes' log lines to stderr.");
ABSL_FLAG(std::string, assignor, "",
          "group: the one assignor members offer (default: range, roundrobin).");
ABSL_FLAG(int, commit_interval_ms, 200, "group: how often members commit (0: back to back).");
ABSL_FLAG(int, session_timeout_ms, 1500, "group: the members' session timeout.");
ABSL_FLAG(int, heartbeat_interval_ms, 300, "group: the members' heartbeat interval.");
ABSL_FLAG(std::string, history, "", "run: write the history as JSON lines to this file.");
ABSL_FLAG(std::string, report, "", "run: write the HTML report (and the trace) into this directory.");
ABSL_FLAG(bool, brief, false, "run: print one line (verdict, anomalies, digest) instead of the summary.");
ABSL_FLAG(std::string, seeds, "", "swarm: the seeds to run, A..B inclusive.");
ABSL_FLAG(int, jobs, 1, "swarm: how many seeds run at once (child processes).");
ABSL_FLAG(std::string, shard, "",
          "swarm: I/N runs only shard I of N of the seeds (for splitting a sweep across machines).");
ABSL_FLAG(double, latency_spike_probability, 0.0,
          "group: the chance that a message is delayed by up to 20 ms more.");

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

int RunGroup() {
  runnel::sim::GroupWorldOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.member_count = absl::GetFlag(FLAGS_members);
  options.partitions = absl::GetFlag(FLAGS_partitions);
  options.static_members = absl::GetFlag(FLAGS_static_members);
  options.duration_us = static_cast<int64_t>(absl::GetFlag(FLAGS_duration_s) * 1e6);
  if (absl::GetFlag(FLAGS_faults)) {
    options.fault_mix.interval_us_mean = int64_t{absl::GetFlag(FLAGS_fault_interval_ms)} * 1000;
  }
  options.trace_path = absl::GetFlag(FLAGS_trace);
  options.echo_logs = absl::GetFlag(FLAGS_echo_logs);
  options.network.latency_spike_probability = absl::GetFlag(FLAGS_latency_spike_probability);
  if (!absl::GetFlag(FLAGS_assignor).empty()) options.assignors = {absl::GetFlag(FLAGS_assignor)};
  options.commit_interval_us = int64_t{absl::GetFlag(FLAGS_commit_interval_ms)} * 1000;
  options.session_timeout_ms = absl::GetFlag(FLAGS_session_timeout_ms);
  options.heartbeat_interval_ms = absl::GetFlag(FLAGS_heartbeat_interval_ms);
  if (options.member_count < 1 || options.member_count > options.kMembersMax) {
    std::cerr << "runnel-sim: --members must be between 1 and " << options.kMembersMax << "\n";
    return 2;
  }
  if (options.partitions < 1 || options.partitions > options.kPartitionsMax) {
    std::cerr << "runnel-sim: --partitions must be between 1 and " << options.kPartitionsMax
              << "\n";
    return 2;
  }
  if (options.duration_us <= 0 || absl::GetFlag(FLAGS_fault_interval_ms) <= 0) {
    std::cerr << "runnel-sim: --duration_s and --fault_interval_ms must be positive\n";
    return 2;
  }

  const auto wall_start = std::chrono::steady_clock::now();
  runnel::sim::GroupWorld world(options);
  const runnel::sim::GroupWorldResult result = world.Run();
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double simulated_s = static_cast<double>(result.simulated_us) / 1e6;
  std::cout << absl::StrFormat(
      "runnel-sim group: seed %d, %d members, %d partitions%s, faults %s\n", options.seed,
      options.member_count, options.partitions, options.static_members ? " (static)" : "",
      absl::GetFlag(FLAGS_faults) ? "on" : "off");
  std::cout << absl::StrFormat("  simulated time     %.3f s (wall %.3f s)\n", simulated_s, wall_s);
  std::cout << absl::StrFormat("  events             %d\n", result.events);
  std::cout << absl::StrFormat("  faults             %d member crashes, %d stalls, %d partitions, "
                               "%d leaves, %d broker crashes, %d broker stalls, %d connection "
                               "resets, %d fenced static members restarted\n",
                               result.member_crashes, result.member_stalls,
                               result.member_partitions, result.member_leaves,
                               result.broker_crashes, result.broker_stalls,
                               result.connection_resets, result.static_members_restarted);
  std::cout << absl::StrFormat("  generations        %d (last %d), %d member rebalances, %d lost\n",
                               result.generations, result.generation_last,
                               result.member_rebalances, result.generations_lost);
  std::cout << absl::StrFormat("  commits            %d ok, %d failed, %d fenced and refused\n",
                               result.commits_ok, result.commits_failed,
                               result.fenced_commits_refused);
  std::cout << absl::StrFormat("  records            %d sent, %d acked, %d delivered (%d again)\n",
                               result.records_sent, result.records_acked, result.records_delivered,
                               result.records_redelivered);
  std::cout << absl::StrFormat("  settled            %s\n", result.settled ? "yes" : "NO");
  std::cout << absl::StrFormat("  invariants         %s\n",
                               result.violations.empty() ? "all held" : "VIOLATED");
  for (const std::string& violation : result.violations) {
    std::cout << "    " << violation << "\n";
  }
  std::cout << absl::StrFormat("  trace digest       %s\n", result.digest);
  return result.violations.empty() ? 0 : 1;
}

constexpr char kUsage[] =
    "usage: runnel-sim run FILE [--seed=N] [--trace=PATH] [--history=PATH] [--report=DIR] "
    "[--brief]\n"
    "       runnel-sim swarm FILE --seeds=A..B [--jobs=J] [--shard=I/N]\n"
    "       runnel-sim pingpong [--seed=N] [--nodes=N] [--duration_s=S] [--faults] "
    "[--trace=PATH]\n"
    "       runnel-sim group [--seed=N] [--members=N] [--partitions=N] [--static_members] "
    "[--duration_s=S] [--faults] [--fault_interval_ms=MS] [--trace=PATH]\n";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(absl::StrCat("runs a simulated Runnel world.\n\n", kUsage));
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() >= 2 ? std::string(args[1]) : std::string();
  if (command == "run" && args.size() == 3) {
    runnel::sim::RunCommandOptions options;
    options.scenario_path = args[2];
    options.seed = absl::GetFlag(FLAGS_seed);
    options.trace_path = absl::GetFlag(FLAGS_trace);
    options.history_path = absl::GetFlag(FLAGS_history);
    options.report_directory = absl::GetFlag(FLAGS_report);
    options.echo_logs = absl::GetFlag(FLAGS_echo_logs);
    options.brief = absl::GetFlag(FLAGS_brief);
    options.program = argv[0];
    return runnel::sim::RunScenarioCommand(options, std::cout, std::cerr);
  }
  if (command == "swarm" && args.size() == 3) {
    runnel::sim::SwarmCommandOptions options;
    options.scenario_path = args[2];
    options.seeds = absl::GetFlag(FLAGS_seeds);
    options.jobs = absl::GetFlag(FLAGS_jobs);
    options.shard = absl::GetFlag(FLAGS_shard);
    options.program = argv[0];
    return runnel::sim::RunSwarmCommand(options, std::cout, std::cerr);
  }
  if (command == "pingpong" && args.size() == 2) return RunPingPong();
  if (command == "group" && args.size() == 2) return RunGroup();
  std::cerr << kUsage;
  return 2;
}
