// The broker in the simulator (sim/kafka_world.h): a real BrokerNode crashed, powered off, stopped
// and cut off from its clients by fault schedules while Runnel's producer (acks=all, keyed) and
// consumers run against it. For several seeds, every check of the world must hold: no
// acknowledged record lost or changed, no offset holding two records, consumers reading every
// offset once and in order with a high watermark that never goes down. The runs are
// deterministic: the same seed gives the same trace digest, another seed another digest. A last
// test makes sure the checks can fail, by letting the broker acknowledge unsynced writes.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "sim/kafka_world.h"

namespace runnel::sim {
namespace {

std::string Describe(const KafkaWorldOptions& options, const KafkaWorldResult& result) {
  return absl::StrCat("seed ", options.seed, ": sent ", result.records_sent, ", acked ",
                      result.records_acked, ", failed ", result.records_failed, ", unresolved ",
                      result.records_unresolved, ", offsets ", result.offsets_observed,
                      ", crashes ", result.broker_crashes, ", faults ", result.faults_injected,
                      ", digest ", result.digest, "\n", absl::StrJoin(result.violations, "\n"));
}

// Runs the world and checks that it held up and did real work.
KafkaWorldResult RunClean(KafkaWorldOptions options) {
  KafkaWorld world(options);
  KafkaWorldResult result = world.Run();
  EXPECT_TRUE(result.violations.empty()) << Describe(options, result);
  EXPECT_EQ(result.records_unresolved, 0u) << Describe(options, result);
  EXPECT_GT(result.records_acked, result.records_sent / 2) << Describe(options, result);
  EXPECT_EQ(result.acked_checked, result.records_acked) << Describe(options, result);
  EXPECT_GE(result.offsets_observed, result.records_acked) << Describe(options, result);
  return result;
}

// A fixed schedule with each kind of broker failure: a process crash, a power loss, a clean
// restart and a network partition from the clients, for several seeds and both producer modes.
TEST(BrokerSimTest, ScheduledCrashesLoseNothingAcknowledged) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    for (bool idempotent : {false, true}) {
      KafkaWorldOptions options;
      options.seed = seed;
      options.idempotent = idempotent;
      options.duration_us = 12'000'000;
      options.faults = {
          {.at_us = 2'000'000, .kind = KafkaFaultKind::kProcessCrash, .downtime_us = 300'000},
          {.at_us = 4'000'000, .kind = KafkaFaultKind::kPowerLoss, .downtime_us = 1'000'000},
          {.at_us = 7'000'000, .kind = KafkaFaultKind::kCleanRestart, .downtime_us = 200'000},
          {.at_us = 9'000'000, .kind = KafkaFaultKind::kPartition, .downtime_us = 2'000'000},
      };
      KafkaWorldResult result = RunClean(options);
      EXPECT_EQ(result.broker_crashes, 2u) << Describe(options, result);
      EXPECT_EQ(result.broker_restarts, 3u) << Describe(options, result);
      if (idempotent) {
        // Idempotence: every record is in the log exactly once.
        EXPECT_EQ(result.offsets_observed, result.records_acked) << Describe(options, result);
      }
    }
  }
}

// Random power losses and process crashes every second or so under a heavier load: three
// producers at 250 records per second each, two consumers, two topics, every compression codec.
TEST(BrokerSimTest, RandomCrashMixAcrossSeeds) {
  for (uint64_t seed = 10; seed < 20; ++seed) {
    KafkaWorldOptions options;
    options.seed = seed;
    options.topics = {{"orders", 4, {}}, {"audit", 1, {}}};
    options.producer_count = 3;
    options.consumer_count = 2;
    options.produce_interval_us = 4'000;
    options.idempotent = seed % 2 == 0;
    options.compression = static_cast<storage::Compression>(seed % 5);
    options.duration_us = 12'000'000;
    options.fault_mix.interval_us_mean = 1'000'000;
    options.fault_mix.downtime_us_min = 20'000;
    options.fault_mix.downtime_us_max = 1'500'000;
    KafkaWorldResult result = RunClean(options);
    EXPECT_GT(result.broker_crashes, 2u) << Describe(options, result);
  }
}

// Everything at once, including clean restarts, connection resets and partitions, and the
// buggify sites of the broker switched on.
TEST(BrokerSimTest, FullFaultMixWithBuggify) {
  for (uint64_t seed = 20; seed < 24; ++seed) {
    KafkaWorldOptions options;
    options.seed = seed;
    options.buggify = true;
    options.idempotent = seed % 2 == 1;
    options.duration_us = 15'000'000;
    options.fault_mix.interval_us_mean = 1'000'000;
    options.fault_mix.clean_restart_weight = 1;
    options.fault_mix.connection_reset_weight = 2;
    options.fault_mix.partition_weight = 1;
    KafkaWorldResult result = RunClean(options);
    EXPECT_GT(result.faults_injected, 5u) << Describe(options, result);
  }
}

// The same seed twice gives the same digest; another seed gives another.
TEST(BrokerSimTest, SameSeedSameDigest) {
  auto run = [](uint64_t seed) {
    KafkaWorldOptions options;
    options.seed = seed;
    options.duration_us = 8'000'000;
    options.fault_mix.interval_us_mean = 1'500'000;
    options.fault_mix.connection_reset_weight = 1;
    KafkaWorld world(options);
    return world.Run();
  };
  const KafkaWorldResult first = run(31);
  const KafkaWorldResult second = run(31);
  const KafkaWorldResult other = run(32);
  EXPECT_TRUE(first.violations.empty()) << absl::StrJoin(first.violations, "\n");
  EXPECT_EQ(first.digest, second.digest);
  EXPECT_EQ(first.events, second.events);
  EXPECT_EQ(first.records_acked, second.records_acked);
  EXPECT_NE(first.digest, other.digest);
}

// The checks are not vacuous: under flush.policy=never a broker acknowledges and exposes writes
// that a power loss then takes back, and the world must report it.
TEST(BrokerSimTest, ChecksCatchABrokerThatLosesAcknowledgedWrites) {
  for (uint64_t seed = 40; seed < 43; ++seed) {
    KafkaWorldOptions options;
    options.seed = seed;
    options.duration_us = 8'000'000;
    options.topics = {{"events", 3, {{"flush.policy", "never"}}}};
    options.faults = {
        {.at_us = 3'000'000, .kind = KafkaFaultKind::kPowerLoss, .downtime_us = 300'000},
        {.at_us = 6'000'000, .kind = KafkaFaultKind::kPowerLoss, .downtime_us = 300'000},
    };
    KafkaWorld world(options);
    const KafkaWorldResult result = world.Run();
    ASSERT_FALSE(result.violations.empty()) << "seed " << seed;
    bool named = false;
    for (const std::string& violation : result.violations) {
      named = named || absl::StartsWith(violation, "lost-write") ||
              absl::StartsWith(violation, "inconsistent-offsets") ||
              absl::StartsWith(violation, "hw-decreased");
    }
    EXPECT_TRUE(named) << absl::StrJoin(result.violations, "\n");
  }
}

}  // namespace
}  // namespace runnel::sim
