// Tests of sim/simulator.h: the event loop (Step, RunUntil, RunUntilCondition), fault scheduling,
// the node lifecycle (start, crash, stop, restart, incarnations, per-incarnation random streams,
// NodeEnv), determinism of whole runs (trace digests) and buggify decisions. Each test builds a
// Simulator with small node programs defined here, drives it through its public API and checks
// the observable results: what ran, when (virtual time), and what the trace recorded.
#include "sim/simulator.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/env/random.h"
#include "gtest/gtest.h"

namespace runnel::sim {
namespace {

SimulatorOptions Options(uint64_t seed) {
  SimulatorOptions options;
  options.seed = seed;
  return options;
}

NodeOptions Named(std::string name) {
  NodeOptions options;
  options.name = std::move(name);
  return options;
}

std::shared_ptr<void> Idle(Env&) { return std::make_shared<int>(0); }

size_t CountKind(const Trace& trace, TraceKind kind) {
  size_t count = 0;
  for (const TraceEvent& event : trace.kept_events()) count += event.kind() == kind ? 1 : 0;
  return count;
}

// Step on an empty simulator returns false and leaves time alone; otherwise it runs exactly one
// event, advancing NowUs to that event's time, and counts it in events_processed.
TEST(SimulatorLoopTest, StepRunsOneEventAtATime) {
  Simulator simulator(Options(1));
  EXPECT_FALSE(simulator.Step());
  EXPECT_EQ(simulator.NowUs(), 0);
  std::vector<int64_t> ran_at;
  simulator.Schedule(30, [&] { ran_at.push_back(simulator.NowUs()); });
  simulator.Schedule(10, [&] { ran_at.push_back(simulator.NowUs()); });
  simulator.Schedule(-5, [&] { ran_at.push_back(simulator.NowUs()); });  // counts as now
  EXPECT_EQ(simulator.pending_event_count(), 3u);
  EXPECT_TRUE(simulator.Step());
  EXPECT_EQ(ran_at, (std::vector<int64_t>{0}));
  EXPECT_TRUE(simulator.Step());
  EXPECT_EQ(simulator.NowUs(), 10);
  EXPECT_EQ(simulator.events_processed(), 2u);
  EXPECT_TRUE(simulator.Step());
  EXPECT_EQ(ran_at, (std::vector<int64_t>{0, 10, 30}));
  EXPECT_FALSE(simulator.Step());
  EXPECT_EQ(simulator.NowUs(), 30);
  EXPECT_EQ(simulator.events_processed(), 3u);
}

// RunUntil(t) runs every event at or before t (including ones scheduled by those events for times
// up to t) and none after, then sets the time to exactly t even if no event was due; RunFor is
// relative; asking for an earlier time never moves time backwards.
TEST(SimulatorLoopTest, RunUntilIsInclusiveAndSetsTheTime) {
  Simulator simulator(Options(1));
  std::vector<std::string> log;
  simulator.Schedule(100, [&] {
    log.push_back("100");
    simulator.Schedule(50, [&] { log.push_back("150 (chained)"); });
    simulator.Schedule(101, [&] { log.push_back("201 (chained)"); });
  });
  simulator.Schedule(200, [&] { log.push_back("200"); });
  simulator.Schedule(201, [&] { log.push_back("201"); });
  simulator.RunUntil(200);
  EXPECT_EQ(log, (std::vector<std::string>{"100", "150 (chained)", "200"}));
  EXPECT_EQ(simulator.NowUs(), 200);
  simulator.RunUntil(150);
  EXPECT_EQ(simulator.NowUs(), 200);
  simulator.RunFor(1);
  EXPECT_EQ(log.back(), "201 (chained)");
  EXPECT_EQ(log.size(), 5u);
  simulator.RunUntil(1'000'000);
  EXPECT_EQ(simulator.NowUs(), 1'000'000);
  EXPECT_EQ(simulator.pending_event_count(), 0u);
}

// RunUntil(t) must not run events later than t even when the earliest pending events are ones
// that are skipped: timers of a crashed incarnation here. (Before the fix in simulator.cc the
// skipped events let Step run the next live event, past t, and moved time past t.)
TEST(SimulatorLoopTest, RunUntilDoesNotOvershootPastSkippedDeadEvents) {
  Simulator simulator(Options(1));
  const NodeId node = simulator.AddNode(Named("n"), Idle);
  simulator.StartNode(node);
  simulator.NodeEnv(node)->clock().ScheduleAfter(10, [] {});
  bool late_ran = false;
  simulator.Schedule(100, [&] { late_ran = true; });
  simulator.CrashNode(node, CrashKind::kProcess);
  simulator.RunUntil(50);
  EXPECT_FALSE(late_ran);
  EXPECT_EQ(simulator.NowUs(), 50);
  // The same through RunUntilCondition with a deadline.
  simulator.StartNode(node);
  simulator.NodeEnv(node)->clock().ScheduleAfter(10, [] {});
  simulator.CrashNode(node, CrashKind::kProcess);
  EXPECT_FALSE(simulator.RunUntilCondition([&] { return late_ran; }, 70));
  EXPECT_FALSE(late_ran);
  EXPECT_EQ(simulator.NowUs(), 70);
  simulator.RunUntil(100);
  EXPECT_TRUE(late_ran);
}

// The same property when the earliest pending event was cancelled (a cancelled timer is the
// commonest case): EventQueue::PopDue drops cancelled events and still respects the deadline.
TEST(SimulatorLoopTest, RunUntilDoesNotOvershootPastCancelledEvents) {
  Simulator simulator(Options(1));
  const NodeId node = simulator.AddNode(Named("n"), Idle);
  simulator.StartNode(node);
  Clock& clock = simulator.NodeEnv(node)->clock();
  const TimerId cancelled = clock.ScheduleAfter(10, [] {});
  bool late_ran = false;
  clock.ScheduleAfter(100, [&] { late_ran = true; });
  ASSERT_TRUE(clock.CancelTimer(cancelled));
  simulator.RunUntil(50);
  EXPECT_FALSE(late_ran);
  EXPECT_EQ(simulator.NowUs(), 50);
}

// RunUntilCondition returns true at once (running nothing) when the condition already holds;
// otherwise it stops right after the event that makes it true, with the time of that event; and
// when the deadline passes first it returns false with the time set to the deadline, without
// running later events.
TEST(SimulatorLoopTest, RunUntilConditionSemantics) {
  Simulator simulator(Options(1));
  int counter = 0;
  for (int i = 1; i <= 10; ++i) simulator.Schedule(i * 100, [&] { ++counter; });
  EXPECT_TRUE(simulator.RunUntilCondition([] { return true; }, 1'000'000));
  EXPECT_EQ(simulator.events_processed(), 0u);
  EXPECT_EQ(simulator.NowUs(), 0);

  EXPECT_TRUE(simulator.RunUntilCondition([&] { return counter == 3; }, 1'000'000));
  EXPECT_EQ(counter, 3);
  EXPECT_EQ(simulator.NowUs(), 300);

  EXPECT_FALSE(simulator.RunUntilCondition([&] { return counter == 100; }, 650));
  EXPECT_EQ(counter, 6);
  EXPECT_EQ(simulator.NowUs(), 650);

  // A deadline equal to an event's time includes that event.
  EXPECT_TRUE(simulator.RunUntilCondition([&] { return counter == 7; }, 700));
  EXPECT_EQ(simulator.NowUs(), 700);
}

// ScheduleFault runs its action at the absolute time given and records a FAULT trace event (node
// -1, subject = name, detail) at that time, just before the action runs.
TEST(SimulatorFaultTest, ScheduleFaultRecordsAFaultEvent) {
  Simulator simulator(Options(1));
  simulator.trace().KeepInMemory(100);
  simulator.RunUntil(1'000);
  size_t events_when_run = 0;
  simulator.ScheduleFault(5'000, "partition", "node-0 | node-1",
                          [&] { events_when_run = simulator.trace().kept_events().size(); });
  simulator.RunUntil(4'999);
  EXPECT_TRUE(simulator.trace().kept_events().empty());
  simulator.RunUntil(5'000);
  ASSERT_EQ(simulator.trace().kept_events().size(), 1u);
  const TraceEvent& event = simulator.trace().kept_events()[0];
  EXPECT_EQ(event.kind(), FAULT);
  EXPECT_EQ(event.time_us(), 5'000);
  EXPECT_EQ(event.node(), -1);
  EXPECT_EQ(event.subject(), "partition");
  EXPECT_EQ(event.detail(), "node-0 | node-1");
  EXPECT_EQ(events_when_run, 1u);
  // A fault at the current time is allowed and runs in the next step.
  bool ran = false;
  simulator.ScheduleFault(simulator.NowUs(), "now", "", [&] { ran = true; });
  EXPECT_TRUE(simulator.Step());
  EXPECT_TRUE(ran);
}

// Simulator-level events (Schedule) run whatever the nodes' state; node events
// (ScheduleForNode) run only while that exact incarnation is up: not while the node is down, not
// for an older incarnation after a restart.
TEST(SimulatorFaultTest, NodeEventsRunOnlyForTheirLiveIncarnation) {
  Simulator simulator(Options(1));
  const NodeId node = simulator.AddNode(Named("n"), Idle);
  simulator.StartNode(node);
  std::vector<std::string> ran;
  simulator.ScheduleForNode(node, 1, 10, [&] { ran.push_back("incarnation 1"); });
  simulator.ScheduleForNode(node, 1, 50, [&] { ran.push_back("incarnation 1, late"); });
  simulator.ScheduleForNode(node, 2, 60, [&] { ran.push_back("incarnation 2"); });
  simulator.Schedule(20, [&] { ran.push_back("simulator"); });
  simulator.RunUntil(15);
  simulator.CrashNode(node, CrashKind::kPowerLoss);
  simulator.RunUntil(40);
  simulator.StartNode(node);
  simulator.RunUntil(100);
  EXPECT_EQ(ran, (std::vector<std::string>{"incarnation 1", "simulator", "incarnation 2"}));
}

// A test program that remembers what it was built with and notices its destruction.
struct ProbeProgram {
  ProbeProgram(Env& env, std::vector<std::string>* log)
      : env(env), log(log), incarnation(static_cast<SimEnv&>(env).incarnation()),
        first_random(env.random().Next64()) {
    log->push_back(absl::StrCat("start ", env.node_id(), "/", incarnation));
  }
  ~ProbeProgram() { log->push_back(absl::StrCat("destroy ", env.node_id(), "/", incarnation)); }
  Env& env;
  std::vector<std::string>* log;
  uint64_t incarnation;
  uint64_t first_random;
};

// The node lifecycle: AddNode leaves a node down (NodeEnv and the program null); StartNode builds
// the program from the factory with incarnation 1; CrashNode destroys it (NodeEnv null, IsUp
// false) and a later StartNode builds a new one with incarnation 2 and a different random stream;
// RestartNode and StopNode do the same; crashing or stopping a down node does nothing. Each step is
// traced with the incarnation as value. An unnamed node is called "node-<id>".
TEST(SimulatorNodeTest, LifecycleIncarnationsAndEnvs) {
  Simulator simulator(Options(21));
  simulator.trace().KeepInMemory(100);
  std::vector<std::string> log;
  const NodeId node = simulator.AddNode(Named("alpha"), [&log](Env& env) {
    return std::make_shared<ProbeProgram>(env, &log);
  });
  const NodeId unnamed = simulator.AddNode(NodeOptions(), Idle);
  EXPECT_EQ(simulator.NodeName(node), "alpha");
  EXPECT_EQ(simulator.NodeName(unnamed), "node-1");
  EXPECT_EQ(simulator.node_count(), 2u);
  EXPECT_FALSE(simulator.IsUp(node));
  EXPECT_EQ(simulator.NodeEnv(node), nullptr);
  EXPECT_EQ(simulator.NodeProgramObject(node), nullptr);
  EXPECT_EQ(simulator.Incarnation(node), 0u);

  auto probe = [&] { return static_cast<ProbeProgram*>(simulator.NodeProgramObject(node).get()); };
  simulator.StartNode(node);
  ASSERT_NE(simulator.NodeEnv(node), nullptr);
  EXPECT_EQ(simulator.NodeEnv(node)->node_id(), node);
  EXPECT_TRUE(simulator.IsUp(node));
  EXPECT_EQ(simulator.Incarnation(node), 1u);
  ASSERT_NE(probe(), nullptr);
  EXPECT_EQ(probe()->incarnation, 1u);
  const uint64_t first_life_random = probe()->first_random;

  simulator.CrashNode(node, CrashKind::kPowerLoss);
  EXPECT_FALSE(simulator.IsUp(node));
  EXPECT_EQ(simulator.NodeEnv(node), nullptr);
  EXPECT_EQ(simulator.NodeProgramObject(node), nullptr);
  EXPECT_EQ(simulator.Incarnation(node), 1u);  // of the last run
  simulator.CrashNode(node, CrashKind::kProcess);  // already down: nothing happens
  simulator.StopNode(node);

  simulator.StartNode(node);
  EXPECT_EQ(simulator.Incarnation(node), 2u);
  EXPECT_EQ(probe()->incarnation, 2u);
  EXPECT_NE(probe()->first_random, first_life_random);

  simulator.RestartNode(node, CrashKind::kProcess);
  EXPECT_EQ(probe()->incarnation, 3u);
  simulator.StopNode(node);
  EXPECT_EQ(simulator.NodeEnv(node), nullptr);

  EXPECT_EQ(log, (std::vector<std::string>{"start 0/1", "destroy 0/1", "start 0/2", "destroy 0/2",
                                           "start 0/3", "destroy 0/3"}));
  std::vector<std::string> traced;
  for (const TraceEvent& event : simulator.trace().kept_events()) {
    traced.push_back(absl::StrCat(TraceKind_Name(event.kind()), " ", event.node(), "/",
                                  event.value()));
  }
  EXPECT_EQ(traced, (std::vector<std::string>{"NODE_START 0/1", "NODE_CRASH 0/1", "NODE_START 0/2",
                                              "NODE_CRASH 0/2", "NODE_START 0/3", "NODE_STOP 0/3"}));
}

// Each node incarnation's random stream is the documented derivation from the run's seed
// (DeriveSeed(DeriveSeed(seed, kNodeStreamBase + node), incarnation)), so nodes and incarnations
// differ from each other while the same seed reproduces them; and the fault stream is unaffected by
// how much randomness node programs consume.
TEST(SimulatorNodeTest, RandomStreamsPerNodeAndIncarnation) {
  auto first_values = [](uint64_t seed, int draws_by_node) {
    Simulator simulator(Options(seed));
    std::vector<uint64_t> values;
    for (int i = 0; i < 2; ++i) {
      simulator.AddNode(NodeOptions(), [&values, draws_by_node](Env& env) {
        values.push_back(env.random().Next64());
        for (int d = 0; d < draws_by_node; ++d) env.random().Next64();
        return std::make_shared<int>(0);
      });
    }
    simulator.StartNode(0);
    simulator.StartNode(1);
    simulator.RestartNode(0, CrashKind::kProcess);
    values.push_back(simulator.FaultRandom().Next64());
    return values;
  };
  const std::vector<uint64_t> a = first_values(77, 0);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0], Random(DeriveSeed(DeriveSeed(77, Simulator::kNodeStreamBase + 0), 1)).Next64());
  EXPECT_EQ(a[1], Random(DeriveSeed(DeriveSeed(77, Simulator::kNodeStreamBase + 1), 1)).Next64());
  EXPECT_EQ(a[2], Random(DeriveSeed(DeriveSeed(77, Simulator::kNodeStreamBase + 0), 2)).Next64());
  EXPECT_EQ(a[3], Random(DeriveSeed(77, Simulator::kFaultStream)).Next64());
  EXPECT_NE(a[0], a[1]);
  EXPECT_NE(a[0], a[2]);
  EXPECT_EQ(first_values(77, 0), a);
  EXPECT_EQ(first_values(77, 1000), a);  // node draws do not shift the fault stream
  EXPECT_NE(first_values(78, 0)[0], a[0]);
}

// A program that exercises the whole Env with random choices: it listens, connects to its peers,
// sends random amounts at random intervals, records semantic events with random values, and logs
// (logs stay out of the digest).
class ChattyProgram {
 public:
  ChattyProgram(Env& env, int node_count) : env_(env) {
    (void)env_.network().Listen(NetworkAddress{absl::StrCat("node-", env_.node_id()), 1},
                                [this](ConnectionId, const NetworkAddress&) {
                                  ConnectionCallbacks callbacks;
                                  callbacks.on_receive = [this](absl::string_view bytes) {
                                    env_.RecordEvent({"received", "bytes",
                                                      static_cast<int64_t>(bytes.size()), ""});
                                  };
                                  return callbacks;
                                });
    for (int peer = 0; peer < node_count; ++peer) {
      if (peer == env_.node_id()) continue;
      connections_.push_back(env_.network().Connect(
          NetworkAddress{absl::StrCat("node-", peer), 1}, ConnectionCallbacks()));
    }
    Tick();
  }
  ~ChattyProgram() { env_.clock().CancelTimer(timer_); }

 private:
  void Tick() {
    const int64_t value = env_.random().Between(0, 1'000'000);
    env_.RecordEvent({"tick", "chatty", value, "detail"});
    env_.Log(LogLevel::kInfo, absl::StrCat("tick ", value));
    for (ConnectionId connection : connections_) {
      (void)env_.network().Send(connection, std::string(1 + env_.random().Below(64), 'x'));
    }
    timer_ = env_.clock().ScheduleAfter(env_.random().Between(1'000, 20'000), [this] { Tick(); });
  }

  Env& env_;
  std::vector<ConnectionId> connections_;
  TimerId timer_ = kNoTimer;
};

struct RunSummary {
  std::string digest;
  uint64_t trace_events;
  uint64_t events;
};

RunSummary RunChattyWorld(uint64_t seed, bool with_faults = true) {
  Simulator simulator(Options(seed));
  for (int i = 0; i < 3; ++i) {
    simulator.AddNode(NodeOptions(),
                      [](Env& env) { return std::make_shared<ChattyProgram>(env, 3); });
  }
  for (int i = 0; i < 3; ++i) simulator.StartNode(i);
  if (with_faults) {
    simulator.ScheduleFault(300'000, "crash", "node-1", [&] {
      simulator.CrashNode(1, CrashKind::kPowerLoss);
    });
    simulator.ScheduleFault(400'000, "start", "node-1", [&] { simulator.StartNode(1); });
    simulator.ScheduleFault(500'000, "partition", "", [&] {
      simulator.network().Partition({0}, {2}, false);
    });
    simulator.ScheduleFault(700'000, "heal", "", [&] { simulator.network().HealAll(); });
  }
  simulator.RunUntil(1'000'000);
  return RunSummary{simulator.trace().DigestHex(), simulator.trace().event_count(),
                    simulator.events_processed()};
}

// Same seed and same program give an identical run: same digest, trace event count and event count
// (and the run did real work). A different seed changes the nodes' random choices and so the
// digest. Logging is outside the digest: echoing logs does not change it.
TEST(SimulatorDeterminismTest, SameSeedSameDigestDifferentSeedDifferentDigest) {
  const RunSummary first = RunChattyWorld(5);
  const RunSummary second = RunChattyWorld(5);
  EXPECT_EQ(first.digest, second.digest);
  EXPECT_EQ(first.trace_events, second.trace_events);
  EXPECT_EQ(first.events, second.events);
  EXPECT_GT(first.trace_events, 300u);
  EXPECT_NE(RunChattyWorld(6).digest, first.digest);
  EXPECT_NE(RunChattyWorld(5, /*with_faults=*/false).digest, first.digest);
}

// A program that reaches two buggify sites several times each and counts how often they fire.
struct BuggifyProgram {
  explicit BuggifyProgram(Env& env) {
    for (int i = 0; i < 10; ++i) {
      fires_a += RUNNEL_BUGGIFY(env) ? 1 : 0;
      fires_b += RUNNEL_BUGGIFY(env) ? 1 : 0;
    }
  }
  int fires_a = 0;
  int fires_b = 0;
};

struct BuggifyOutcome {
  int fires_a;
  int fires_b;
  size_t enabled_events;
  size_t site_count;
  size_t enabled_site_count;
  uint64_t fire_count;
};

BuggifyOutcome RunBuggify(BuggifyOptions buggify, int starts = 1) {
  SimulatorOptions options = Options(9);
  options.buggify = buggify;
  Simulator simulator(options);
  simulator.trace().KeepInMemory(1000);
  simulator.AddNode(NodeOptions(), [](Env& env) { return std::make_shared<BuggifyProgram>(env); });
  int fires_a = 0;
  int fires_b = 0;
  for (int i = 0; i < starts; ++i) {
    simulator.StartNode(0);
    auto* program = static_cast<BuggifyProgram*>(simulator.NodeProgramObject(0).get());
    fires_a += program->fires_a;
    fires_b += program->fires_b;
    simulator.CrashNode(0, CrashKind::kProcess);
  }
  return BuggifyOutcome{fires_a,
                        fires_b,
                        CountKind(simulator.trace(), BUGGIFY_ENABLED),
                        simulator.buggify().site_count(),
                        simulator.buggify().enabled_site_count(),
                        simulator.buggify().fire_count()};
}

// Buggify disabled (the default): no site ever fires and none is even registered or traced.
TEST(SimulatorBuggifyTest, DisabledNeverFires) {
  BuggifyOptions buggify;
  buggify.site_enable_probability = 1.0;
  buggify.fire_probability = 1.0;
  ASSERT_FALSE(buggify.enabled);
  const BuggifyOutcome outcome = RunBuggify(buggify);
  EXPECT_EQ(outcome.fires_a + outcome.fires_b, 0);
  EXPECT_EQ(outcome.site_count, 0u);
  EXPECT_EQ(outcome.enabled_events, 0u);
}

// Enabled with site_enable_probability = 1 and fire_probability = 1: every reach of every site
// fires, and BUGGIFY_ENABLED is recorded exactly once per site (not per reach, not per
// incarnation), with subject "file:line" naming this test file.
TEST(SimulatorBuggifyTest, EnabledAlwaysFiresAndRecordsEachSiteOnce) {
  BuggifyOptions buggify;
  buggify.enabled = true;
  buggify.site_enable_probability = 1.0;
  buggify.fire_probability = 1.0;
  const BuggifyOutcome outcome = RunBuggify(buggify, /*starts=*/3);
  EXPECT_EQ(outcome.fires_a, 30);
  EXPECT_EQ(outcome.fires_b, 30);
  EXPECT_EQ(outcome.fire_count, 60u);
  EXPECT_EQ(outcome.site_count, 2u);
  EXPECT_EQ(outcome.enabled_site_count, 2u);
  EXPECT_EQ(outcome.enabled_events, 2u);

  SimulatorOptions options = Options(9);
  options.buggify = buggify;
  Simulator simulator(options);
  simulator.trace().KeepInMemory(10);
  simulator.AddNode(NodeOptions(), [](Env& env) { return std::make_shared<BuggifyProgram>(env); });
  simulator.StartNode(0);
  ASSERT_EQ(simulator.trace().kept_events().size(), 3u);  // NODE_START, then the two sites
  const TraceEvent& enabled = simulator.trace().kept_events()[1];
  EXPECT_EQ(enabled.kind(), BUGGIFY_ENABLED);
  EXPECT_EQ(enabled.node(), 0);
  EXPECT_NE(enabled.subject().find("simulator_test.cc:"), std::string::npos) << enabled.subject();
}

// Enabled with a site probability of 0: sites are registered but none is switched on or traced,
// and none fires; with fire probability 0 sites are switched on (and traced) but never fire.
TEST(SimulatorBuggifyTest, ZeroProbabilitiesNeverFire) {
  BuggifyOptions never_enabled;
  never_enabled.enabled = true;
  never_enabled.site_enable_probability = 0.0;
  never_enabled.fire_probability = 1.0;
  BuggifyOutcome outcome = RunBuggify(never_enabled);
  EXPECT_EQ(outcome.fires_a + outcome.fires_b, 0);
  EXPECT_EQ(outcome.site_count, 2u);
  EXPECT_EQ(outcome.enabled_site_count, 0u);
  EXPECT_EQ(outcome.enabled_events, 0u);

  BuggifyOptions never_fires;
  never_fires.enabled = true;
  never_fires.site_enable_probability = 1.0;
  never_fires.fire_probability = 0.0;
  outcome = RunBuggify(never_fires);
  EXPECT_EQ(outcome.fires_a + outcome.fires_b, 0);
  EXPECT_EQ(outcome.enabled_events, 2u);
}

// Semantic events from Env::RecordEvent land in the trace with the node, time and all fields
// (kind as label), while Env::Log leaves the trace and its digest untouched.
TEST(SimulatorNodeTest, RecordEventTracesAndLogDoesNot) {
  Simulator simulator(Options(4));
  simulator.trace().KeepInMemory(10);
  const NodeId node = simulator.AddNode(NodeOptions(), Idle);
  simulator.StartNode(node);
  simulator.RunUntil(1234);
  Env& env = *simulator.NodeEnv(node);
  const uint64_t digest = simulator.trace().digest();
  const uint64_t count = simulator.trace().event_count();
  env.Log(LogLevel::kError, "this is not traced");
  EXPECT_EQ(simulator.trace().digest(), digest);
  EXPECT_EQ(simulator.trace().event_count(), count);
  env.RecordEvent({"leader", "orders-0", 5, "elected"});
  const TraceEvent& event = simulator.trace().kept_events().back();
  EXPECT_EQ(event.kind(), SEMANTIC);
  EXPECT_EQ(event.node(), node);
  EXPECT_EQ(event.time_us(), 1234);
  EXPECT_EQ(event.label(), "leader");
  EXPECT_EQ(event.subject(), "orders-0");
  EXPECT_EQ(event.value(), 5);
  EXPECT_EQ(event.detail(), "elected");
}

// Programs whose destructors still use the Env (cancel timers, close connections, send) are torn
// down safely both at a crash and when the Simulator itself is destroyed with nodes up.
TEST(SimulatorNodeTest, DestroyingTheSimulatorWithLiveProgramsIsSafe) {
  for (int crash_first = 0; crash_first < 2; ++crash_first) {
    Simulator simulator(Options(8));
    for (int i = 0; i < 3; ++i) {
      simulator.AddNode(NodeOptions(),
                        [](Env& env) { return std::make_shared<ChattyProgram>(env, 3); });
    }
    for (int i = 0; i < 3; ++i) simulator.StartNode(i);
    simulator.RunUntil(100'000);
    if (crash_first == 1) simulator.CrashNode(2, CrashKind::kPowerLoss);
  }
  SUCCEED();
}

}  // namespace
}  // namespace runnel::sim
