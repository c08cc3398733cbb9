// The scenario world (sim/scenario_world.h): real brokers and Runnel's own clients in the
// simulator, driven by scenario files, judged by the history checker. For several seeds and every
// kind of fault the checks must hold when the broker keeps Kafka's promises; the runs must be
// deterministic; and the checks must fire when a configuration that does not keep them is run
// (flush.policy=never under power loss).
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "sim/scenario_loader.h"
#include "sim/scenario_world.h"

namespace runnel::sim {
namespace {

scenario::Scenario Parse(const std::string& text) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(text, "test.textproto");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : scenario::Scenario();
}

std::string Describe(uint64_t seed, const ScenarioResult& result) {
  std::string text = absl::StrCat("seed ", seed, ": sends ", result.sends_invoked, " (ok ",
                                  result.sends_ok, ", failed ", result.sends_failed,
                                  ", indeterminate ", result.sends_indeterminate, "), records read ",
                                  result.records_read, ", faults ", result.faults_injected,
                                  ", settled ", result.settled, ", digest ", result.digest);
  for (const model::Anomaly& anomaly : result.anomalies) {
    absl::StrAppend(&text, "\n  ", anomaly.name, " at ", anomaly.time_us, " us: ", anomaly.detail);
  }
  for (const InjectedFault& fault : result.faults) {
    absl::StrAppend(&text, "\n  fault at ", fault.time_us, " us: ", fault.kind, " ", fault.target,
                    " ", fault.detail);
  }
  return text;
}

ScenarioResult RunSeed(const scenario::Scenario& scenario, uint64_t seed) {
  ScenarioRunOptions options;
  options.seed = seed;
  ScenarioWorld world(scenario, options);
  return world.Run();
}

// Runs and checks that the run passed, settled and did real work.
ScenarioResult RunClean(const std::string& text, uint64_t seed) {
  const ScenarioResult result = RunSeed(Parse(text), seed);
  EXPECT_EQ(result.verdict, "PASS") << Describe(seed, result);
  EXPECT_TRUE(result.as_expected) << Describe(seed, result);
  EXPECT_TRUE(result.settled) << Describe(seed, result);
  EXPECT_GT(result.sends_ok, result.sends_invoked / 2) << Describe(seed, result);
  EXPECT_GE(result.records_read, result.sends_ok) << Describe(seed, result);
  return result;
}

std::set<std::string> Names(const ScenarioResult& result) {
  std::set<std::string> names;
  for (const model::Anomaly& anomaly : result.anomalies) names.insert(anomaly.name);
  return names;
}

// Each kind of broker failure at a fixed time: a process crash, a power loss, a clean restart and
// a two-way network partition from the clients, with idempotent and plain producers.
constexpr char kScheduledCrashes[] = R"pb(
  topics { name: "events" partitions: 3 }
  producers { rate_per_s: 100 idempotent: %s }
  consumers { assign {} }
  run { duration_ms: 12000 }
  faults {
    at { at_ms: 2000 crash { downtime_ms: 300 } }
    at { at_ms: 4000 power_loss { downtime_ms: 1000 } }
    at { at_ms: 7000 clean_restart { downtime_ms: 200 } }
    at { at_ms: 9000 partition { side_a: "broker-0" duration_ms: 2000 } }
  }
)pb";

TEST(ScenarioWorldTest, ScheduledCrashesLoseNothingAcknowledged) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    for (const char* idempotent : {"false", "true"}) {
      const ScenarioResult result =
          RunClean(absl::StrReplaceAll(kScheduledCrashes, {{"%s", idempotent}}), seed);
      std::map<std::string, int> kinds;
      for (const InjectedFault& fault : result.faults) ++kinds[fault.kind];
      EXPECT_EQ(kinds["crash"], 1) << Describe(seed, result);
      EXPECT_EQ(kinds["power loss"], 1) << Describe(seed, result);
      EXPECT_EQ(kinds["clean restart"], 1) << Describe(seed, result);
      EXPECT_EQ(kinds["restart"], 3) << Describe(seed, result);
      EXPECT_EQ(kinds["partition"], 1) << Describe(seed, result);
      EXPECT_EQ(kinds["heal"], 1) << Describe(seed, result);
    }
  }
}

// Random crashes and power losses under a heavier load: three producers, two assign consumers
// and a consumer group, two topics, every compression codec.
TEST(ScenarioWorldTest, RandomCrashMixAcrossSeeds) {
  const char* codecs[] = {"COMPRESSION_NONE", "COMPRESSION_GZIP", "COMPRESSION_SNAPPY",
                          "COMPRESSION_LZ4", "COMPRESSION_ZSTD"};
  for (uint64_t seed = 10; seed < 15; ++seed) {
    const std::string text = absl::StrCat(R"pb(
      topics { name: "orders" partitions: 4 }
      topics { name: "audit" partitions: 1 }
      producers { count: 3 rate_per_s: 200 keys: KEYS_ZIPF idempotent: )pb",
                                          seed % 2 == 0 ? "true" : "false",
                                          " compression: ", codecs[seed % 5], R"pb( }
      consumers { count: 2 assign {} }
      consumers { name: "member" count: 2 topics: "orders" group { session_timeout_ms: 3000 } }
      run { duration_ms: 12000 }
      faults {
        mix {
          interval_ms { min: 1000 }
          kinds { kind: FAULT_CRASH weight { min: 1 } }
          kinds { kind: FAULT_POWER_LOSS weight { min: 1 } }
          duration_ms { min: 20 max: 1500 }
        }
      }
    )pb");
    const ScenarioResult result = RunClean(text, seed);
    EXPECT_GT(result.faults_injected, 2u) << Describe(seed, result);
    EXPECT_GT(result.commits_ok, 0u) << Describe(seed, result);
  }
}

// The faults beyond crashes: one-way partitions, slow links, stalls, connection resets, clock
// jumps, a full disk, disk errors and read corruption, on the broker and on clients, with buggify.
TEST(ScenarioWorldTest, EveryFaultKindWithBuggify) {
  constexpr char kText[] = R"pb(
    cluster { clock_offset_ms_max: 5000 }
    topics { name: "events" partitions: 3 }
    producers { count: 2 rate_per_s: 100 idempotent: true }
    consumers { assign {} }
    consumers { name: "member" count: 2 group { session_timeout_ms: 2000 heartbeat_interval_ms: 500 } }
    run { duration_ms: 15000 buggify: true }
    faults {
      at { at_ms: 1000 partition { side_a: "broker-0" side_b: "clients" one_way: true duration_ms: 1500 } }
      at { at_ms: 3000 link_delay { from: "broker-0" extra_delay_ms: 300 duration_ms: 1000 } }
      at { at_ms: 4500 stall { node: "broker-0" duration_ms: 800 } }
      at { at_ms: 5000 stall { node: "member-*" duration_ms: 3000 } }
      at { at_ms: 6000 clock_jump { node: "broker-0" jump_ms: -30000 } }
      at { at_ms: 6500 clock_jump { node: "producer-1" jump_ms: 120000 } }
      at { at_ms: 7000 disk_full { duration_ms: 1500 } }
      at { at_ms: 9000 read_corruption { probability: 0.05 duration_ms: 1000 } }
      at { at_ms: 10500 disk_errors { probability: 0.02 duration_ms: 800 } }
      at { at_ms: 12000 connection_reset { node: "broker-0" } }
      at { at_ms: 13000 crash { node: "producer-0" downtime_ms: 500 } }
    }
  )pb";
  for (uint64_t seed = 20; seed < 23; ++seed) {
    const ScenarioResult result = RunClean(kText, seed);
    EXPECT_GE(result.faults_injected, 10u) << Describe(seed, result);
  }
}

// The same seed twice gives the same digest and the same history; another seed another digest.
TEST(ScenarioWorldTest, SameSeedSameDigestAndHistory) {
  const scenario::Scenario scenario = Parse(R"pb(
    topics { name: "events" partitions: 2 }
    producers { rate_per_s: 100 }
    consumers { group {} }
    run { duration_ms: 6000 }
    faults {
      mix {
        interval_ms { min: 500 max: 2000 }
        kinds { kind: FAULT_CRASH weight { min: 0 max: 3 } }
        kinds { kind: FAULT_CONNECTION_RESET weight { min: 1 max: 3 } }
        kinds { kind: FAULT_PARTITION weight { min: 1 } }
        nodes: "*"
      }
    }
  )pb");
  auto run = [&](uint64_t seed) {
    ScenarioRunOptions options;
    options.seed = seed;
    ScenarioWorld world(scenario, options);
    ScenarioResult result = world.Run();
    return std::make_pair(result, world.history().entries());
  };
  const auto [first, first_history] = run(31);
  const auto [second, second_history] = run(31);
  const auto [other, other_history] = run(32);
  EXPECT_EQ(first.verdict, "PASS") << Describe(31, first);
  EXPECT_EQ(first.digest, second.digest);
  EXPECT_EQ(first.events, second.events);
  EXPECT_EQ(first.drawn_fault_mix, second.drawn_fault_mix);
  EXPECT_TRUE(first_history == second_history);
  EXPECT_NE(first.digest, other.digest);
}

// The checks are not vacuous: under flush.policy=never with acks=1 a broker acknowledges writes
// that a power loss then takes back, and the checker must say so.
TEST(ScenarioWorldTest, ChecksCatchAcknowledgedWritesLostToPowerLoss) {
  const scenario::Scenario scenario = Parse(R"pb(
    topics { name: "events" partitions: 3 configs { key: "flush.policy" value: "never" } }
    producers { rate_per_s: 200 acks: ACKS_LEADER }
    consumers { assign {} }
    run { duration_ms: 8000 }
    faults {
      at { at_ms: 3000 power_loss { downtime_ms: 300 } }
      at { at_ms: 6000 power_loss { downtime_ms: 300 } }
    }
    expect { verdict: FAIL }
  )pb");
  for (uint64_t seed = 40; seed < 43; ++seed) {
    const ScenarioResult result = RunSeed(scenario, seed);
    EXPECT_EQ(result.verdict, "FAIL") << Describe(seed, result);
    EXPECT_TRUE(result.as_expected) << Describe(seed, result);
    const std::set<std::string> names = Names(result);
    EXPECT_TRUE(names.contains("lost-write") || names.contains("inconsistent-offsets") ||
                names.contains("hw-decreased"))
        << Describe(seed, result);
  }
}

// An expectation that does not match makes the run fail: the catalogue relies on it.
TEST(ScenarioWorldTest, UnexpectedVerdictIsReported) {
  const scenario::Scenario scenario = Parse(R"pb(
    topics { name: "events" }
    producers { rate_per_s: 50 }
    consumers { assign {} }
    run { duration_ms: 2000 }
    expect { verdict: FAIL anomalies: LOST_WRITE }
  )pb");
  const ScenarioResult result = RunSeed(scenario, 1);
  EXPECT_EQ(result.verdict, "PASS") << Describe(1, result);
  EXPECT_FALSE(result.as_expected);
  EXPECT_NE(result.expectation_note.find("expected FAIL"), std::string::npos);
}

// Consumers that stop early cannot vouch for records written later: no "unseen" then, but
// lost-write checks still apply to what they read.
TEST(ScenarioWorldTest, ConsumerWindowsAndLateStarters) {
  RunClean(R"pb(
    topics { name: "events" partitions: 2 }
    producers { rate_per_s: 100 active { start_ms: 500 stop_ms: 5000 } }
    consumers { name: "early" assign {} active { stop_ms: 3000 } }
    consumers { name: "late" assign {} active { start_ms: 4000 } }
    consumers { name: "tail" assign { from_end: true } active { start_ms: 2000 } }
    run { duration_ms: 6000 }
  )pb",
           5);
}

}  // namespace
}  // namespace runnel::sim

namespace runnel::sim {
namespace {

// Minimal scenarios that scenario_property_test shrank from failures, kept with their seeds so
// that the bugs they found stay fixed.
TEST(ScenarioWorldTest, ShrunkCounterexamplesStayFixed) {
  struct Counterexample {
    const char* what;
    uint64_t seed;
    const char* text;
  };
  const Counterexample counterexamples[] = {
      {"a group formed while its topic was being created again after a broker crash got an empty "
       "assignment and waited for the periodic metadata refresh (5 minutes) to see the topic",
       422, R"pb(
         topics { name: "t0" partitions: 1 }
         producers { rate_per_s: 10 acks: ACKS_NONE }
         consumers { assign {} }
         consumers { name: "consumer1" group { session_timeout_ms: 1000 heartbeat_interval_ms: 250 } }
         faults { at { at_ms: 4 crash { downtime_ms: 1 } } }
         run { duration_ms: 2000 }
       )pb"},
      {"a log whose recovery sync failed after a crash was served with a high watermark that "
       "went back from 69 to 0 (now KAFKA_STORAGE_ERROR until the broker restarts)",
       44294, R"pb(
         topics { name: "t0" partitions: 1 }
         producers { rate_per_s: 190 idempotent: true }
         producers { name: "producer1" rate_per_s: 50 }
         consumers { assign {} }
         consumers { name: "consumer1" assign {} }
         faults {
           at { at_ms: 292 crash { downtime_ms: 1 } }
           at { at_ms: 292 disk_errors { probability: 0.024 duration_ms: 3 } }
         }
         run { duration_ms: 2737 }
       )pb"},
      {"a full disk while a topic was created left the broker refusing topic changes until it "
       "restarted, and the run never settled",
       1, R"pb(
         topics { name: "t0" partitions: 1 }
         producers { rate_per_s: 10 acks: ACKS_NONE }
         consumers { assign {} }
         faults { at { at_ms: 0 disk_full { duration_ms: 2 } } }
         run { duration_ms: 3722 }
       )pb"},
  };
  for (const Counterexample& counterexample : counterexamples) {
    const ScenarioResult result = RunSeed(Parse(counterexample.text), counterexample.seed);
    EXPECT_EQ(result.verdict, "PASS") << counterexample.what << "\n"
                                      << Describe(counterexample.seed, result);
  }
}

}  // namespace
}  // namespace runnel::sim
