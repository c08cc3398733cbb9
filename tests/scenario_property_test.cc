// Random scenarios against the checker: rapidcheck generates a cluster's topics, clients and a
// schedule of faults of every kind, runs the scenario in the simulator with a generated seed, and
// asserts that the checker finds nothing. On a failure rapidcheck shrinks the scenario (fewer
// faults, fewer clients, shorter runs, smaller numbers) and the test prints the minimal scenario as
// a text-format file, writes it to a temporary file, and prints the `runnel-sim run` command that
// replays it exactly.
//
// Only configurations that keep Kafka's promises are generated: producers use acks=all (or
// acks=0, whose sends are all indeterminate) and topics keep the default flush policy, so that a
// power loss may not take back anything acknowledged.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "sim/scenario_loader.h"
#include "sim/scenario_world.h"

namespace runnel::sim {
namespace {

constexpr int kFaultKinds = 11;
constexpr int64_t kRunMsMin = 2'000;
constexpr int64_t kRunMsSpan = 6'000;

// One generated fault: (kind, start as a fraction of the run in thousandths, duration in ms,
// which node, a parameter). Every part shrinks towards 0: a crash of broker-0 at the start.
using FaultTuple = std::tuple<int, int, int, int, int>;

struct Generated {
  uint64_t seed = 1;
  scenario::Scenario scenario;
};

void AddFault(scenario::Scenario& scenario, int64_t run_ms, const FaultTuple& tuple) {
  const auto [kind, at_thousandths, duration_ms, node_choice, parameter] = tuple;
  const std::vector<std::string> nodes = {"broker-0", "clients", "producer-*", "consumer-*", "*"};
  const std::string node = node_choice == 0 ? "broker-0" : nodes[node_choice % nodes.size()];
  scenario::Fault* fault = scenario.mutable_faults()->add_at();
  fault->set_at_ms(run_ms * at_thousandths / 1000);
  const int64_t duration = 1 + duration_ms;
  switch (kind % kFaultKinds) {
    case 0:
      fault->mutable_crash()->set_downtime_ms(duration);
      break;
    case 1:
      fault->mutable_power_loss()->set_downtime_ms(duration);
      break;
    case 2:
      fault->mutable_clean_restart()->set_downtime_ms(duration);
      break;
    case 3:
      fault->mutable_stall()->set_node(node == "clients" ? "broker-0" : node);
      fault->mutable_stall()->set_duration_ms(duration);
      break;
    case 4:
      fault->mutable_partition()->add_side_a("broker-0");
      if (node != "broker-0") fault->mutable_partition()->add_side_b(node);
      fault->mutable_partition()->set_one_way(parameter % 2 == 1);
      fault->mutable_partition()->set_duration_ms(duration);
      break;
    case 5:
      fault->mutable_link_delay()->add_from("broker-0");
      fault->mutable_link_delay()->set_extra_delay_ms(1 + parameter % 500);
      fault->mutable_link_delay()->set_duration_ms(duration);
      break;
    case 6:
      if (parameter % 2 == 1) fault->mutable_connection_reset()->set_node("broker-0");
      else fault->mutable_connection_reset();
      break;
    case 7:
      fault->mutable_clock_jump()->set_node(node == "clients" ? "broker-0" : node);
      fault->mutable_clock_jump()->set_jump_ms((parameter % 2 == 0 ? 1 : -1) *
                                               int64_t{1000} * (parameter % 600));
      break;
    case 8:
      fault->mutable_disk_errors()->set_probability(0.001 * (1 + parameter % 50));
      fault->mutable_disk_errors()->set_duration_ms(duration);
      break;
    case 9:
      fault->mutable_disk_full()->set_duration_ms(duration);
      break;
    case 10:
      fault->mutable_read_corruption()->set_probability(0.001 * (1 + parameter % 50));
      fault->mutable_read_corruption()->set_duration_ms(duration);
      break;
  }
}

rc::Gen<Generated> GenScenario() {
  return rc::gen::exec([] {
    Generated generated;
    generated.seed = *rc::gen::inRange<uint64_t>(1, 1'000'000);
    scenario::Scenario& scenario = generated.scenario;
    scenario.set_name("generated");
    const int64_t run_ms = kRunMsMin + *rc::gen::inRange<int64_t>(0, kRunMsSpan);
    scenario.mutable_run()->set_duration_ms(run_ms);
    scenario.mutable_run()->set_buggify(*rc::gen::arbitrary<bool>());
    const int topics = *rc::gen::inRange(1, 3);
    for (int i = 0; i < topics; ++i) {
      scenario::Topic* topic = scenario.add_topics();
      topic->set_name(absl::StrCat("t", i));
      topic->set_partitions(*rc::gen::inRange(1, 5));
    }
    const int producers = *rc::gen::inRange(1, 3);
    for (int i = 0; i < producers; ++i) {
      scenario::Producer* producer = scenario.add_producers();
      if (i > 0) producer->set_name(absl::StrCat("producer", i));
      producer->set_rate_per_s(*rc::gen::inRange(10, 300));
      producer->set_keys(static_cast<scenario::KeyDistribution>(*rc::gen::inRange(0, 4)));
      producer->set_idempotent(*rc::gen::arbitrary<bool>());
      if (!producer->idempotent() && *rc::gen::inRange(0, 8) == 0) {
        producer->set_acks(scenario::ACKS_NONE);
      }
      producer->set_compression(static_cast<scenario::Compression>(*rc::gen::inRange(0, 5)));
    }
    const int consumers = *rc::gen::inRange(1, 4);
    for (int i = 0; i < consumers; ++i) {
      scenario::Consumer* consumer = scenario.add_consumers();
      if (i > 0) consumer->set_name(absl::StrCat("consumer", i));
      // The first consumer reads everything from the beginning, so that "unseen" is checked.
      if (i == 0 || *rc::gen::arbitrary<bool>()) {
        consumer->mutable_assign();
      } else {
        consumer->set_count(*rc::gen::inRange(1, 3));
        consumer->mutable_group()->set_session_timeout_ms(*rc::gen::inRange(1000, 6000));
        consumer->mutable_group()->set_heartbeat_interval_ms(
            consumer->group().session_timeout_ms() / 4);
        consumer->mutable_group()->set_auto_commit(*rc::gen::arbitrary<bool>());
      }
    }
    const auto faults = *rc::gen::container<std::vector<FaultTuple>>(rc::gen::tuple(
        rc::gen::inRange(0, kFaultKinds), rc::gen::inRange(0, 1000), rc::gen::inRange(0, 3000),
        rc::gen::inRange(0, 5), rc::gen::inRange(0, 1000)));
    for (size_t i = 0; i < faults.size() && i < 12; ++i) AddFault(scenario, run_ms, faults[i]);
    return generated;
  });
}

TEST(ScenarioProperty, RandomScenariosKeepKafkasGuarantees) {
  int cases = 0;
  const bool passed = rc::check("the checker finds nothing in random scenarios", [&cases] {
    const Generated generated = *GenScenario();
    ++cases;
    // A generated scenario must be a valid one: the loader is the judge of that.
    const std::string text = ScenarioToText(generated.scenario);
    absl::StatusOr<scenario::Scenario> parsed = ParseScenario(text, "generated.textproto");
    RC_ASSERT(parsed.ok());
    ScenarioRunOptions options;
    options.seed = generated.seed;
    ScenarioWorld world(*parsed, options);
    const ScenarioResult result = world.Run();
    if (result.verdict != "PASS") {
      const std::string path =
          absl::StrCat(::testing::TempDir(), "scenario-counterexample-", generated.seed,
                       ".textproto");
      std::ofstream(path) << "# A counterexample found by scenario_property_test (seed "
                          << generated.seed << ").\n"
                          << text;
      std::string anomalies;
      for (const model::Anomaly& anomaly : result.anomalies) {
        absl::StrAppend(&anomalies, "  ", anomaly.name, ": ", anomaly.detail, "\n");
      }
      RC_FAIL(absl::StrCat("anomalies:\n", anomalies, "scenario (written to ", path, "):\n",
                           text, "replay: runnel-sim run ", path, " --seed=", generated.seed));
    }
  });
  EXPECT_TRUE(passed);
  EXPECT_GT(cases, 0);
}

}  // namespace
}  // namespace runnel::sim
