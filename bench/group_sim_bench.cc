// Consumer groups in the simulator (sim/group_world.h), the real broker and client code over the
// simulated network and disks. Times are simulated unless marked wall:
//
// - Rebalance time for 10 members over 100 partitions: simulated milliseconds from the start of the
//   last member until the live members of one generation, all ten of them, own every partition
//   exactly once (as their on_partitions_assigned callbacks report); then, after one member leaves
//   cleanly (LeaveGroup), until the nine others own every partition in a later generation; and
//   after one member crashes, which the coordinator only notices at the session timeout.
// - Offset commit throughput: one member owning every partition commits its positions back to
//   back (each commit made as soon as the previous one was acknowledged) while a producer writes;
//   commits per simulated second, each one durable in __consumer_offsets (flush.policy=always)
//   before it is acknowledged.
// - Simulation speed: simulated seconds and simulator events per wall second of each run.
//
// Each figure is the median over several seeds (min and max beside it). Settings are printed first.
//
// Run: build/bench/group_sim_bench [--seeds=N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sim/group_world.h"

namespace runnel::sim {
namespace {

constexpr int kMembers = 10;
constexpr int32_t kPartitions = 100;
constexpr int64_t kPhaseTimeoutUs = 120'000'000;
constexpr int64_t kCommitRunUs = 10'000'000;

struct Figures {
  std::vector<double> values;
  void Add(double value) { values.push_back(value); }
  std::string Summary(const char* unit) const {
    if (values.empty()) return "no data";
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    char text[160];
    std::snprintf(text, sizeof(text), "median %.1f %s (min %.1f, max %.1f, n=%zu)",
                  sorted[sorted.size() / 2], unit, sorted.front(), sorted.back(), sorted.size());
    return text;
  }
};

GroupWorldOptions RebalanceOptions(uint64_t seed) {
  GroupWorldOptions options;
  options.seed = seed;
  options.member_count = kMembers;
  options.partitions = kPartitions;
  options.session_timeout_ms = 6'000;
  options.heartbeat_interval_ms = 1'000;
  options.rebalance_timeout_ms = 30'000;
  options.commit_interval_us = 1'000'000;
  options.produce_interval_us = 10'000;
  options.assignors = {"range"};
  return options;
}

void PrintSettings(const GroupWorldOptions& rebalance, int seeds) {
  const NetworkOptions network;
  std::printf(
      "settings: %d seeds; broker: group.initial.rebalance.delay.ms=0, "
      "__consumer_offsets with %d partitions, flush.policy=always; network latency "
      "%lld-%lld us per message; simulated disk sync %lld-%lld us\n",
      seeds, rebalance.offsets_topic_partitions, static_cast<long long>(network.latency_us_min),
      static_cast<long long>(network.latency_us_max),
      static_cast<long long>(SimDiskOptions().sync_latency_us_min),
      static_cast<long long>(SimDiskOptions().sync_latency_us_max));
  std::printf(
      "rebalance: %d members, %d partitions, assignor range, session.timeout.ms=%d, "
      "heartbeat.interval.ms=%d, rebalance timeout %d ms, members started together, "
      "producer every %lld us, commits every %lld us\n",
      rebalance.member_count, rebalance.partitions, rebalance.session_timeout_ms,
      rebalance.heartbeat_interval_ms, rebalance.rebalance_timeout_ms,
      static_cast<long long>(rebalance.produce_interval_us),
      static_cast<long long>(rebalance.commit_interval_us));
}

double WallSeconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Main(int argc, char** argv) {
  int seeds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seeds=", 8) == 0) seeds = std::max(1, std::atoi(argv[i] + 8));
  }
  PrintSettings(RebalanceOptions(1), seeds);

  Figures join_ms, leave_ms, crash_ms, sim_speed, event_rate;
  int failures = 0;
  for (int s = 0; s < seeds; ++s) {
    const auto wall_start = std::chrono::steady_clock::now();
    GroupWorld world(RebalanceOptions(100 + static_cast<uint64_t>(s)));
    Simulator& simulator = world.simulator();
    if (!world.StartBroker()) {
      std::printf("seed %d: the topic was not created\n", s);
      ++failures;
      continue;
    }
    for (int i = 0; i < kMembers; ++i) world.StartMember(i);
    const int64_t started_us = simulator.NowUs();
    int32_t generation = -1;
    const bool joined = simulator.RunUntilCondition(
        [&] {
          auto full = world.history().FullyAssignedGeneration(0, kMembers);
          if (full.has_value()) generation = *full;
          return full.has_value();
        },
        started_us + kPhaseTimeoutUs);
    if (!joined) {
      std::printf("seed %d: the group never assigned every partition\n", s);
      ++failures;
      continue;
    }
    join_ms.Add(static_cast<double>(simulator.NowUs() - started_us) / 1000.0);

    simulator.RunFor(2'000'000);
    world.LeaveMember(kMembers - 1);
    const int64_t left_us = simulator.NowUs();
    const bool rebalanced = simulator.RunUntilCondition(
        [&] {
          auto full = world.history().FullyAssignedGeneration(generation + 1, kMembers - 1);
          if (full.has_value()) generation = *full;
          return full.has_value();
        },
        left_us + kPhaseTimeoutUs);
    if (rebalanced) {
      leave_ms.Add(static_cast<double>(simulator.NowUs() - left_us) / 1000.0);
    } else {
      ++failures;
    }

    simulator.RunFor(2'000'000);
    simulator.CrashNode(world.member_node(kMembers - 2), CrashKind::kProcess);
    const int64_t crashed_us = simulator.NowUs();
    const bool recovered = simulator.RunUntilCondition(
        [&] {
          return world.history().FullyAssignedGeneration(generation + 1, kMembers - 2).has_value();
        },
        crashed_us + kPhaseTimeoutUs);
    if (recovered) {
      crash_ms.Add(static_cast<double>(simulator.NowUs() - crashed_us) / 1000.0);
    } else {
      ++failures;
    }
    const double wall_s = WallSeconds(wall_start);
    sim_speed.Add(static_cast<double>(simulator.NowUs()) / 1e6 / wall_s);
    event_rate.Add(static_cast<double>(simulator.events_processed()) / wall_s);
    if (!world.history().violations().empty()) {
      std::printf("seed %d: violation: %s\n", s, world.history().violations().front().c_str());
      ++failures;
    }
  }
  std::printf("rebalance, 10 members join:           %s simulated\n",
              join_ms.Summary("ms").c_str());
  std::printf("rebalance, 1 of 10 leaves:            %s simulated\n",
              leave_ms.Summary("ms").c_str());
  std::printf("rebalance, 1 of 9 crashes (session):  %s simulated\n",
              crash_ms.Summary("ms").c_str());
  std::printf("simulation speed (rebalance runs):    %s, %s\n",
              sim_speed.Summary("simulated s / wall s").c_str(),
              event_rate.Summary("events / wall s").c_str());

  Figures commits_per_s, commit_sim_speed;
  for (int s = 0; s < seeds; ++s) {
    GroupWorldOptions options;
    options.seed = 200 + static_cast<uint64_t>(s);
    options.member_count = 1;
    options.partitions = 10;
    options.commit_interval_us = 0;
    options.produce_interval_us = 1'000;
    const auto wall_start = std::chrono::steady_clock::now();
    GroupWorld world(options);
    Simulator& simulator = world.simulator();
    if (!world.StartBroker()) {
      ++failures;
      continue;
    }
    world.StartMember(0);
    if (!simulator.RunUntilCondition(
            [&] { return world.history().FullyAssignedGeneration(0).has_value(); },
            simulator.NowUs() + kPhaseTimeoutUs)) {
      ++failures;
      continue;
    }
    const uint64_t commits_before = world.history().commits_ok();
    const int64_t from_us = simulator.NowUs();
    simulator.RunFor(kCommitRunUs);
    const uint64_t commits = world.history().commits_ok() - commits_before;
    commits_per_s.Add(static_cast<double>(commits) /
                      (static_cast<double>(simulator.NowUs() - from_us) / 1e6));
    commit_sim_speed.Add(static_cast<double>(simulator.NowUs()) / 1e6 / WallSeconds(wall_start));
    if (world.history().commits_failed() > 0 || !world.history().violations().empty()) ++failures;
  }
  std::printf("commit: 1 member, 10 partitions, commits back to back, producer every 1000 us\n");
  std::printf("offset commit throughput:             %s\n",
              commits_per_s.Summary("commits / simulated s").c_str());
  std::printf("simulation speed (commit runs):       %s\n",
              commit_sim_speed.Summary("simulated s / wall s").c_str());
  if (failures > 0) std::printf("FAILURES: %d\n", failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace runnel::sim

int main(int argc, char** argv) { return runnel::sim::Main(argc, argv); }
