// Scenario speed in the simulator (sim/scenario_world.h), side by side with the simulator's own
// event-loop limit measured in the same run:
//
// - The showcase scenario (scenarios/showcase.textproto, the README's main job): simulated seconds
//   per wall second and simulator events per wall second, median over several seeds. Goal: at
//   least 1000 simulated seconds per wall second.
// - The event-loop limit: events per wall second of the bare simulator, each event a node timer
//   that reschedules itself (no broker, no network). The showcase's events per wall second beside
//   it says how much of the time the broker and client code take.
// - The swarm scenario (scenarios/swarm.textproto, 60 simulated seconds of every fault kind):
//   seeds per CPU-hour, from the CPU time of running several seeds one after another in this
//   process (runnel-sim swarm runs one per child process; its totals give the same figure).
//
// Run: build/bench/scenario_bench [--seeds=N] [--source_dir=DIR]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "sim/scenario_loader.h"
#include "sim/scenario_world.h"
#include "sim/simulator.h"

namespace runnel::sim {
namespace {

constexpr int64_t kTimerEventsMeasured = 2'000'000;
constexpr int kTimerNodes = 8;

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// A node program whose timer reschedules itself forever.
class Ticker {
 public:
  explicit Ticker(Env& env) : env_(env) { Arm(); }
  ~Ticker() { env_.clock().CancelTimer(timer_); }

 private:
  void Arm() {
    timer_ = env_.clock().ScheduleAfter(1 + static_cast<int64_t>(env_.random().Below(1000)),
                                        [this] { Arm(); });
  }
  Env& env_;
  TimerId timer_ = kNoTimer;
};

double TimerEventsPerWallSecond() {
  Simulator simulator(SimulatorOptions{.seed = 1});
  for (int i = 0; i < kTimerNodes; ++i) {
    const NodeId node = simulator.AddNode(NodeOptions{.name = "ticker-" + std::to_string(i)},
                                          [](Env& env) { return std::make_shared<Ticker>(env); });
    simulator.StartNode(node);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < kTimerEventsMeasured && simulator.Step(); ++i) {
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(simulator.events_processed()) / wall_s;
}

struct Run {
  double simulated_s = 0;
  double wall_s = 0;
  double cpu_s = 0;
  uint64_t events = 0;
  bool as_expected = false;
};

Run RunScenario(const scenario::Scenario& scenario, uint64_t seed) {
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start_s = CpuSeconds();
  ScenarioRunOptions options;
  options.seed = seed;
  ScenarioWorld world(scenario, options);
  const ScenarioResult result = world.Run();
  Run run;
  run.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.cpu_s = CpuSeconds() - cpu_start_s;
  run.simulated_s = static_cast<double>(result.simulated_us) / 1e6;
  run.events = result.events;
  run.as_expected = result.as_expected;
  return run;
}

int Main(int argc, char** argv) {
  int seeds = 5;
  std::string source_dir = RUNNEL_SOURCE_DIR;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seeds=", 8) == 0) {
      seeds = std::max(1, std::atoi(argv[i] + 8));
    } else if (std::strncmp(argv[i], "--source_dir=", 13) == 0) {
      source_dir = argv[i] + 13;
    } else {
      std::fprintf(stderr, "usage: scenario_bench [--seeds=N] [--source_dir=DIR]\n");
      return 2;
    }
  }
  absl::StatusOr<scenario::Scenario> showcase =
      LoadScenarioFile(source_dir + "/scenarios/showcase.textproto");
  absl::StatusOr<scenario::Scenario> swarm =
      LoadScenarioFile(source_dir + "/scenarios/swarm.textproto");
  if (!showcase.ok() || !swarm.ok()) {
    std::fprintf(stderr, "scenario_bench: %s\n",
                 std::string((showcase.ok() ? swarm.status() : showcase.status()).message())
                     .c_str());
    return 2;
  }

  std::printf("scenario_bench: %d seeds per scenario, median (min..max)\n", seeds);
  const double limit_events_per_s = TimerEventsPerWallSecond();

  std::vector<double> speedups;
  std::vector<double> event_rates;
  int unexpected = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    const Run run = RunScenario(*showcase, static_cast<uint64_t>(seed));
    speedups.push_back(run.simulated_s / run.wall_s);
    event_rates.push_back(static_cast<double>(run.events) / run.wall_s);
    if (!run.as_expected) ++unexpected;
  }
  std::printf("showcase: %.0f simulated s per wall s (%.0f..%.0f); goal >= 1000\n",
              Median(speedups), *std::min_element(speedups.begin(), speedups.end()),
              *std::max_element(speedups.begin(), speedups.end()));
  std::printf("showcase: %.0f events per wall s, beside the bare simulator's %.0f events per wall "
              "s (ratio %.2f)\n",
              Median(event_rates), limit_events_per_s, Median(event_rates) / limit_events_per_s);

  double cpu_s = 0;
  std::vector<double> swarm_speedups;
  for (int seed = 1; seed <= seeds; ++seed) {
    const Run run = RunScenario(*swarm, static_cast<uint64_t>(seed));
    cpu_s += run.cpu_s;
    swarm_speedups.push_back(run.simulated_s / run.wall_s);
    if (!run.as_expected) ++unexpected;
  }
  std::printf("swarm (60 simulated s, every fault kind): %.0f seeds per CPU-hour; %.0f simulated s "
              "per wall s\n",
              static_cast<double>(seeds) * 3600.0 / cpu_s, Median(swarm_speedups));
  if (unexpected > 0) {
    std::printf("note: %d runs did not reach their expected verdict (see runnel-sim swarm)\n",
                unexpected);
  }
  return 0;
}

}  // namespace
}  // namespace runnel::sim

int main(int argc, char** argv) { return runnel::sim::Main(argc, argv); }
