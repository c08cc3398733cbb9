// The determinism guard: a multi-node workload under a random fault mix must replay exactly from
// its seed. Runs the ping-pong world with faults and buggify twice per seed and compares the trace
// digests, which cover every fault, connection event, send, delivery, disk loss and semantic event.
#include <string>

#include "gtest/gtest.h"
#include "sim/ping_pong_world.h"

namespace runnel::sim {
namespace {

PingPongWorldResult RunWorld(uint64_t seed) {
  PingPongWorldOptions options;
  options.seed = seed;
  options.node_count = 3;
  options.duration_us = 20'000'000;
  options.faults = true;
  options.buggify = true;
  options.fault_interval_us_mean = 500'000;
  PingPongWorld world(options);
  return world.Run();
}

// Same seed, same run: the digests and every counter agree, and the run did real work (faults
// happened, records were exchanged), so the comparison is not between two empty runs.
TEST(DeterminismTest, SameSeedGivesSameDigest) {
  for (uint64_t seed : {7u, 1234u}) {
    const PingPongWorldResult first = RunWorld(seed);
    const PingPongWorldResult second = RunWorld(seed);
    EXPECT_EQ(first.digest, second.digest) << "seed " << seed;
    EXPECT_EQ(first.events, second.events) << "seed " << seed;
    EXPECT_EQ(first.trace_events, second.trace_events) << "seed " << seed;
    EXPECT_EQ(first.totals.pings_received, second.totals.pings_received) << "seed " << seed;
    EXPECT_GT(first.faults_injected, 10u) << "seed " << seed;
    EXPECT_GT(first.totals.pongs_received, 100u) << "seed " << seed;
    EXPECT_TRUE(first.violations.empty()) << first.violations.front();
  }
}

// A different seed draws different latencies, faults and choices, so the digest must differ.
TEST(DeterminismTest, DifferentSeedGivesDifferentDigest) {
  EXPECT_NE(RunWorld(7).digest, RunWorld(8).digest);
}

// The digest is printed as 16 hex digits, the form users compare by eye and tests by string.
TEST(DeterminismTest, DigestIsSixteenHexDigits) {
  const std::string digest = RunWorld(3).digest;
  ASSERT_EQ(digest.size(), 16u);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace runnel::sim
