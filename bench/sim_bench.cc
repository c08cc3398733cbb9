// Simulator speed, measured beside a reference in the same run (these machines are shared and noisy,
// so only side-by-side figures mean anything):
//
// - BM_SimulatorTimerEvents: the raw event rate of the simulator (events per wall second), each
//   event a node timer that reschedules itself through the node's Env, with incarnation checks.
// - BM_BareHeapEvents: the reference: the same number of callbacks through a bare binary heap of
//   std::function with no simulator around it, the floor any event loop pays.
// - BM_PingPongWorld: a simulated three-node message workload (ping every 10 ms per peer, framed
//   messages over simulated TCP, logs with group commit): simulated seconds per wall second, with
//   and without the random fault mix.
//
// Run: build/bench/sim_bench   (add --benchmark_min_time=2 for steadier figures)
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "benchmark/benchmark.h"
#include "sim/ping_pong_world.h"
#include "sim/simulator.h"

namespace runnel::sim {
namespace {

constexpr int kTimerNodes = 8;
constexpr int64_t kEventsPerIteration = 1'000'000;

// A node program whose timer reschedules itself forever.
class Ticker {
 public:
  Ticker(Env& env, uint64_t* ticks) : env_(env), ticks_(ticks) { Arm(); }
  ~Ticker() { env_.clock().CancelTimer(timer_); }

 private:
  void Arm() {
    timer_ = env_.clock().ScheduleAfter(1 + static_cast<int64_t>(env_.random().Below(100)), [this] {
      ++*ticks_;
      Arm();
    });
  }
  Env& env_;
  uint64_t* ticks_;
  TimerId timer_ = kNoTimer;
};

void BM_SimulatorTimerEvents(benchmark::State& state) {
  uint64_t total_events = 0;
  for (auto _ : state) {
    Simulator simulator(SimulatorOptions{.seed = 1});
    uint64_t ticks = 0;
    for (int i = 0; i < kTimerNodes; ++i) {
      simulator.AddNode(NodeOptions{}, [&ticks](Env& env) {
        return std::make_shared<Ticker>(env, &ticks);
      });
      simulator.StartNode(i);
    }
    while (ticks < static_cast<uint64_t>(kEventsPerIteration)) simulator.Step();
    total_events += simulator.events_processed();
    benchmark::DoNotOptimize(simulator.trace().digest());
  }
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(total_events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SimulatorTimerEvents)->Unit(benchmark::kMillisecond);

void BM_BareHeapEvents(benchmark::State& state) {
  struct Item {
    int64_t time;
    uint64_t sequence;
    std::function<void()> action;
    bool operator<(const Item& other) const {
      return time != other.time ? time > other.time : sequence > other.sequence;
    }
  };
  uint64_t total_events = 0;
  for (auto _ : state) {
    std::priority_queue<Item> heap;
    uint64_t sequence = 0;
    uint64_t ticks = 0;
    uint64_t lcg = 1;
    for (int i = 0; i < kTimerNodes; ++i) heap.push(Item{1, sequence++, [&ticks] { ++ticks; }});
    while (ticks < static_cast<uint64_t>(kEventsPerIteration)) {
      Item item = heap.top();
      heap.pop();
      item.action();
      lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
      heap.push(Item{item.time + 1 + static_cast<int64_t>((lcg >> 33) % 100), sequence++,
                     std::move(item.action)});
    }
    total_events += ticks;
  }
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(total_events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BareHeapEvents)->Unit(benchmark::kMillisecond);

void BM_PingPongWorld(benchmark::State& state) {
  const bool faults = state.range(0) != 0;
  double simulated_s = 0;
  uint64_t events = 0;
  uint64_t seed = 1;
  for (auto _ : state) {
    PingPongWorldOptions options;
    options.seed = seed++;
    options.node_count = 3;
    options.duration_us = 60'000'000;
    options.faults = faults;
    PingPongWorld world(options);
    const PingPongWorldResult result = world.Run();
    simulated_s += static_cast<double>(result.simulated_us) / 1e6;
    events += result.events;
  }
  state.counters["sim_s_per_wall_s"] = benchmark::Counter(simulated_s, benchmark::Counter::kIsRate);
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PingPongWorld)->Arg(0)->Arg(1)->ArgName("faults")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace runnel::sim

BENCHMARK_MAIN();
