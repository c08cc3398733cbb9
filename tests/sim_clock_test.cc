// Tests of sim/sim_clock.h: the per-node clock hardware (SimClockState: drift, wall offset and
// jumps, drift changes) checked with direct arithmetic, and the Clock a node sees (SimClock: timers)
// checked through a real Simulator, the way broker code uses it: a node's program schedules timers
// on env.clock() and the test runs virtual time and records what fired, when, and in what order.
// Nothing here sleeps or reads real time.
#include "sim/sim_clock.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/env/random.h"
#include "gtest/gtest.h"
#include "sim/simulator.h"

namespace runnel::sim {
namespace {

ClockOptions Drift(double ppm) {
  ClockOptions options;
  options.drift_ppm = ppm;
  return options;
}

SimulatorOptions Seed(uint64_t seed) {
  SimulatorOptions options;
  options.seed = seed;
  return options;
}

NodeOptions Node(std::string name, ClockOptions clock) {
  NodeOptions options;
  options.name = std::move(name);
  options.clock = clock;
  return options;
}

// With no drift the monotonic clock is the virtual time plus its start value.
TEST(SimClockStateTest, NoDriftFollowsVirtualTime) {
  ClockOptions options;
  options.monotonic_start_us = 5'000;
  SimClockState clock(options);
  EXPECT_EQ(clock.MonotonicUs(0), 5'000);
  EXPECT_EQ(clock.MonotonicUs(1), 5'001);
  EXPECT_EQ(clock.MonotonicUs(10'000'000'000), 10'000'005'000);
  EXPECT_EQ(clock.VirtualDelayUs(1234), 1234);
  EXPECT_EQ(clock.drift_ppm(), 0.0);
}

// A fast clock (+1000 ppm) gains 1 ms per virtual second and a slow one (-1000 ppm) loses 1 ms;
// both stay monotonic (never decrease, checked over a sweep of increasing virtual times) at every
// drift up to the documented maximum in both directions.
TEST(SimClockStateTest, DriftScalesAndStaysMonotonic) {
  SimClockState fast(Drift(1000));
  SimClockState slow(Drift(-1000));
  EXPECT_EQ(fast.MonotonicUs(1'000'000) - fast.MonotonicUs(0), 1'001'000);
  EXPECT_EQ(slow.MonotonicUs(1'000'000) - slow.MonotonicUs(0), 999'000);
  EXPECT_EQ(fast.MonotonicUs(0), ClockOptions().monotonic_start_us);
  EXPECT_EQ(slow.MonotonicUs(0), ClockOptions().monotonic_start_us);

  for (double ppm : {-kDriftPpmMax, -12345.6, -1.0, 0.0, 0.5, 200.0, kDriftPpmMax}) {
    SimClockState clock(Drift(ppm));
    Random random(static_cast<uint64_t>(ppm + 1e6));
    int64_t virtual_us = 0;
    int64_t previous = clock.MonotonicUs(0);
    for (int i = 0; i < 20'000; ++i) {
      virtual_us += random.Between(0, i % 100 == 0 ? 10'000'000'000 : 3);
      const int64_t now = clock.MonotonicUs(virtual_us);
      ASSERT_GE(now, previous) << "ppm " << ppm << " at virtual " << virtual_us;
      previous = now;
    }
    // Over a long span the rate is exactly 1 + ppm/1e6 (to within rounding).
    const double rate = static_cast<double>(clock.MonotonicUs(1'000'000'000'000) -
                                            clock.MonotonicUs(0)) / 1e12;
    EXPECT_NEAR(rate, 1.0 + ppm * 1e-6, 1e-9) << ppm;
  }
}

// VirtualDelayUs inverts the drift: for a fast clock less virtual time is needed, for a slow one
// more; zero and negative delays need none. For random drifts, delays and start points, the
// monotonic clock has advanced by at least the asked delay after VirtualDelayUs(delay) of virtual
// time, and (measured from virtual zero) one microsecond less would not be enough.
TEST(SimClockStateTest, VirtualDelayIsTheInverseOfDrift) {
  SimClockState fast(Drift(1000));
  SimClockState slow(Drift(-1000));
  EXPECT_EQ(fast.VirtualDelayUs(1'001'000), 1'000'000);
  EXPECT_EQ(slow.VirtualDelayUs(999'000), 1'000'000);
  EXPECT_EQ(fast.VirtualDelayUs(0), 0);
  EXPECT_EQ(fast.VirtualDelayUs(-5), 0);
  EXPECT_EQ(slow.VirtualDelayUs(1), 2);  // 1 / 0.999 rounds up

  Random random(404);
  for (int i = 0; i < 20'000; ++i) {
    const double ppm = static_cast<double>(random.Between(-100'000, 100'000)) +
                       (random.Chance(0.5) ? random.Fraction() : 0.0);
    SimClockState clock(Drift(ppm));
    const int64_t delay = random.Between(1, i % 10 == 0 ? 100'000'000'000 : 100'000);
    const int64_t start = random.Between(0, 1'000'000'000'000);
    const int64_t virtual_delay = clock.VirtualDelayUs(delay);
    ASSERT_GE(clock.MonotonicUs(start + virtual_delay) - clock.MonotonicUs(start), delay)
        << "ppm " << ppm << " delay " << delay << " start " << start;
    ASSERT_GE(clock.MonotonicUs(virtual_delay) - clock.MonotonicUs(0), delay);
    ASSERT_LT(clock.MonotonicUs(virtual_delay - 1) - clock.MonotonicUs(0), delay)
        << "ppm " << ppm << " delay " << delay;
  }
}

// The wall clock starts at wall_epoch_ms + wall_offset_ms at virtual time zero (the documented
// meaning of those options) and then advances with the node's monotonic clock.
TEST(SimClockStateTest, WallClockStartsAtEpochPlusOffset) {
  ClockOptions options;
  options.wall_offset_ms = -250;
  SimClockState clock(options);
  EXPECT_EQ(clock.WallMs(0), options.wall_epoch_ms - 250);
  EXPECT_EQ(clock.WallMs(1'000'000), options.wall_epoch_ms - 250 + 1'000);
  ClockOptions late_start;
  late_start.monotonic_start_us = 123'456'789'000;
  SimClockState late(late_start);
  EXPECT_EQ(late.WallMs(0), late_start.wall_epoch_ms);
  SimClockState fast(Drift(1000));
  EXPECT_EQ(fast.WallMs(1'000'000'000), ClockOptions().wall_epoch_ms + 1'001'000);
}

// Wall-clock jumps (forwards and backwards) move only the wall clock: the monotonic readings at
// every virtual time are unchanged, and the wall clock moves by exactly the jump.
TEST(SimClockStateTest, WallJumpsDoNotAffectMonotonic) {
  SimClockState clock(Drift(300));
  const int64_t mono_before = clock.MonotonicUs(5'000'000);
  const int64_t wall_before = clock.WallMs(5'000'000);
  clock.JumpWallMs(-3'600'000);
  EXPECT_EQ(clock.MonotonicUs(5'000'000), mono_before);
  EXPECT_EQ(clock.WallMs(5'000'000), wall_before - 3'600'000);
  clock.JumpWallMs(7'200'000);
  EXPECT_EQ(clock.MonotonicUs(5'000'000), mono_before);
  EXPECT_EQ(clock.WallMs(5'000'000), wall_before + 3'600'000);
  EXPECT_EQ(clock.MonotonicUs(9'000'000) - mono_before, 4'001'200);
}

// SetDriftPpm keeps the clock continuous: the reading at the change time is the same under the old
// and the new drift, readings before it keep their values, and from then on the clock runs at the
// new rate. A sequence of changes (fast, slow, back) keeps the clock monotonic throughout.
TEST(SimClockStateTest, SetDriftPpmIsContinuous) {
  SimClockState clock(Drift(0));
  const int64_t at_change = clock.MonotonicUs(2'000'000);
  clock.SetDriftPpm(50'000, 2'000'000);
  EXPECT_EQ(clock.drift_ppm(), 50'000);
  EXPECT_EQ(clock.MonotonicUs(2'000'000), at_change);
  EXPECT_EQ(clock.MonotonicUs(3'000'000) - at_change, 1'050'000);

  clock.SetDriftPpm(-50'000, 3'000'000);
  EXPECT_EQ(clock.MonotonicUs(3'000'000) - at_change, 1'050'000);
  EXPECT_EQ(clock.MonotonicUs(4'000'000) - at_change, 1'050'000 + 950'000);
  // The inverse follows the current drift.
  EXPECT_EQ(clock.VirtualDelayUs(950'000), 1'000'000);

  Random random(9);
  int64_t virtual_us = 4'000'000;
  int64_t previous = clock.MonotonicUs(virtual_us);
  for (int i = 0; i < 1000; ++i) {
    virtual_us += random.Between(0, 50'000);
    if (random.Chance(0.1)) {
      const int64_t before = clock.MonotonicUs(virtual_us);
      clock.SetDriftPpm(static_cast<double>(random.Between(-100'000, 100'000)), virtual_us);
      ASSERT_EQ(clock.MonotonicUs(virtual_us), before);
    }
    const int64_t now = clock.MonotonicUs(virtual_us);
    ASSERT_GE(now, previous);
    previous = now;
  }
}

// A world with one node whose program does nothing; tests drive its Env's clock directly between
// simulator steps, as a node's callbacks would.
class SimClockTest : public ::testing::Test {
 protected:
  void MakeNode(ClockOptions clock = ClockOptions()) {
    node_ = simulator_.AddNode(Node("node-0", clock),
                               [](Env&) { return std::make_shared<int>(0); });
    simulator_.StartNode(node_);
  }
  Clock& clock() { return simulator_.NodeEnv(node_)->clock(); }

  // Schedules a timer that logs `name` and the virtual and monotonic times it ran at.
  TimerId Schedule(int64_t delay_us, std::string name) {
    return clock().ScheduleAfter(delay_us, [this, name] {
      fired_.push_back(name);
      fired_at_us_.push_back(simulator_.NowUs());
    });
  }

  Simulator simulator_{Seed(3)};
  NodeId node_ = -1;
  std::vector<std::string> fired_;
  std::vector<int64_t> fired_at_us_;
};

// The node's clock reads the SimClockState at the current virtual time, and a timer with no drift
// fires at exactly now + delay of virtual time, in deadline order regardless of scheduling order.
// Timer ids are nonzero and distinct.
TEST_F(SimClockTest, TimersFireInDeadlineOrderAtTheirDeadlines) {
  MakeNode();
  EXPECT_EQ(clock().MonotonicNowUs(), ClockOptions().monotonic_start_us);
  EXPECT_EQ(clock().WallNowMs(), simulator_.clock(node_).WallMs(0));
  simulator_.RunUntil(1'000);
  EXPECT_EQ(clock().MonotonicNowUs(), ClockOptions().monotonic_start_us + 1'000);

  const TimerId a = Schedule(300, "a");
  const TimerId b = Schedule(100, "b");
  const TimerId c = Schedule(200, "c");
  EXPECT_NE(a, kNoTimer);
  EXPECT_NE(b, kNoTimer);
  EXPECT_NE(c, kNoTimer);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(a, c);
  simulator_.RunUntil(1'199);
  EXPECT_EQ(fired_, (std::vector<std::string>{"b"}));
  simulator_.RunUntil(10'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(fired_at_us_, (std::vector<int64_t>{1'100, 1'200, 1'300}));
}

// Negative and zero delays fire at the current virtual time, after the event that scheduled them
// (never re-entrantly inside ScheduleAfter).
TEST_F(SimClockTest, ZeroAndNegativeDelaysFireNowButNotReentrantly) {
  MakeNode();
  simulator_.RunUntil(500);
  Schedule(-100, "negative");
  Schedule(0, "zero");
  EXPECT_TRUE(fired_.empty());
  simulator_.RunUntil(500);
  EXPECT_EQ(fired_, (std::vector<std::string>{"negative", "zero"}));
  EXPECT_EQ(fired_at_us_, (std::vector<int64_t>{500, 500}));
}

// CancelTimer returns true for a pending timer, which then never fires; a second cancel returns
// false; cancelling a fired timer, kNoTimer or an id never issued returns false and changes
// nothing. pending_timer_count tracks pending timers.
TEST_F(SimClockTest, CancelReturnsTrueOnceThenFalse) {
  MakeNode();
  auto* sim_clock = dynamic_cast<SimClock*>(&clock());
  ASSERT_NE(sim_clock, nullptr);
  const TimerId keep = Schedule(100, "keep");
  const TimerId cancel = Schedule(50, "cancel");
  EXPECT_EQ(sim_clock->pending_timer_count(), 2u);
  EXPECT_TRUE(clock().CancelTimer(cancel));
  EXPECT_FALSE(clock().CancelTimer(cancel));
  EXPECT_EQ(sim_clock->pending_timer_count(), 1u);
  EXPECT_FALSE(clock().CancelTimer(kNoTimer));
  EXPECT_FALSE(clock().CancelTimer(999'999));
  simulator_.RunUntil(1'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"keep"}));
  EXPECT_FALSE(clock().CancelTimer(keep));
  EXPECT_EQ(sim_clock->pending_timer_count(), 0u);
}

// A timer may cancel another timer due at the same instant (the other then never runs), cancel
// itself while running (false: it is no longer pending), and schedule a new timer.
TEST_F(SimClockTest, CallbacksCanCancelAndSchedule) {
  MakeNode();
  TimerId second = kNoTimer;
  TimerId first = kNoTimer;
  bool self_cancel = true;
  first = clock().ScheduleAfter(100, [&] {
    fired_.push_back("first");
    self_cancel = clock().CancelTimer(first);
    EXPECT_TRUE(clock().CancelTimer(second));
    Schedule(0, "scheduled by first");
  });
  second = Schedule(100, "second");
  simulator_.RunUntil(1'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"first", "scheduled by first"}));
  EXPECT_FALSE(self_cancel);
}

// Timers with equal deadlines fire in the order they were scheduled, here 50 timers scheduled at
// one instant with the same delay, interleaved with timers of other deadlines.
TEST_F(SimClockTest, EqualDeadlinesFireInSchedulingOrder) {
  MakeNode(Drift(-777));
  std::vector<std::string> expected_same;
  for (int i = 0; i < 50; ++i) {
    Schedule(10'000, "same-" + std::to_string(i));
    Schedule(5'000 + i, "other");
    expected_same.push_back("same-" + std::to_string(i));
  }
  simulator_.RunUntil(1'000'000);
  std::vector<std::string> same;
  for (const std::string& name : fired_) {
    if (name != "other") same.push_back(name);
  }
  EXPECT_EQ(same, expected_same);
}

// Equal deadlines reached from different scheduling times: with a slow clock, timer A is
// scheduled for monotonic deadline D, then one microsecond of virtual time later (when the
// monotonic clock has also advanced by exactly one) timer B for the same deadline D. The contract
// (broker/env/clock.h) says equal deadlines run in scheduling order, and each must run only once its
// node's monotonic clock has reached D.
TEST_F(SimClockTest, EqualDeadlinesFromDifferentTimesFireInSchedulingOrder) {
  MakeNode(Drift(-100'000));  // the clock runs at 0.9x
  // Find an instant where one virtual microsecond moves the monotonic clock by exactly one.
  int64_t at_us = 0;
  while (simulator_.clock(node_).MonotonicUs(at_us + 1) !=
         simulator_.clock(node_).MonotonicUs(at_us) + 1) {
    ++at_us;
  }
  simulator_.RunUntil(at_us);
  const int64_t deadline = clock().MonotonicNowUs() + 100;
  std::vector<int64_t> monotonic_at_fire;
  clock().ScheduleAfter(100, [&] {
    fired_.push_back("A");
    monotonic_at_fire.push_back(clock().MonotonicNowUs());
  });
  simulator_.RunUntil(at_us + 1);
  ASSERT_EQ(clock().MonotonicNowUs() + 99, deadline);
  clock().ScheduleAfter(99, [&] {
    fired_.push_back("B");
    monotonic_at_fire.push_back(clock().MonotonicNowUs());
  });
  simulator_.RunUntil(at_us + 1'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"A", "B"}));
  for (int64_t monotonic : monotonic_at_fire) EXPECT_GE(monotonic, deadline);
}

// Under drift, every timer runs only after at least its delay of the node's monotonic time, for
// fast and slow clocks and many random delays, and at the first virtual microsecond at which that
// much monotonic time has passed (never later).
TEST_F(SimClockTest, TimersWaitAtLeastTheirMonotonicDelayUnderDrift) {
  for (double ppm : {-100'000.0, -333.3, 250.0, 99'999.0}) {
    Simulator simulator(Seed(4));
    const NodeId node =
        simulator.AddNode(Node("n", Drift(ppm)),
                          [](Env&) { return std::make_shared<int>(0); });
    simulator.StartNode(node);
    Clock& clock = simulator.NodeEnv(node)->clock();
    Random random(17);
    int late = 0;
    int fired = 0;
    for (int i = 0; i < 2000; ++i) {
      const int64_t start = clock.MonotonicNowUs();
      const int64_t delay = random.Between(0, 50'000);
      clock.ScheduleAfter(delay, [&, start, delay] {
        ++fired;
        EXPECT_GE(clock.MonotonicNowUs() - start, delay) << "ppm " << ppm;
        // One virtual microsecond earlier the deadline had not been reached.
        if (simulator.clock(node).MonotonicUs(simulator.NowUs() - 1) >= start + delay &&
            delay > 0) {
          ++late;
        }
      });
      simulator.RunFor(random.Between(0, 700));
    }
    simulator.RunFor(1'000'000);
    EXPECT_EQ(fired, 2000);
    EXPECT_EQ(late, 0) << "ppm " << ppm;
  }
}

// A drift change while timers wait (SimClockState::SetDriftPpm, e.g. injected by a fault): when the
// clock is slowed, timers still run only once the node's monotonic clock reaches their deadlines
// (at the first such virtual microsecond), equal deadlines keep their scheduling order, and a
// timer can still be cancelled after the moment it would have fired under the old drift. When the
// clock is sped up, timers run late but never early.
TEST_F(SimClockTest, DriftChangesNeverMakeTimersFireEarly) {
  MakeNode(Drift(0));
  const int64_t deadline = clock().MonotonicNowUs() + 1'000'000;
  std::vector<int64_t> monotonic_at_fire;
  auto log_fire = [&](std::string name) {
    return [&, name] {
      fired_.push_back(name);
      fired_at_us_.push_back(simulator_.NowUs());
      monotonic_at_fire.push_back(clock().MonotonicNowUs());
    };
  };
  clock().ScheduleAfter(1'000'000, log_fire("A"));
  clock().ScheduleAfter(1'000'000, log_fire("B"));
  const TimerId c = clock().ScheduleAfter(1'000'000, log_fire("C"));
  simulator_.RunUntil(500'000);
  simulator_.clock(node_).SetDriftPpm(-100'000, simulator_.NowUs());
  simulator_.RunUntil(1'000'000);  // the old firing time
  EXPECT_TRUE(fired_.empty());
  EXPECT_TRUE(clock().CancelTimer(c));
  simulator_.RunUntil(2'000'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"A", "B"}));
  for (int64_t monotonic : monotonic_at_fire) EXPECT_GE(monotonic, deadline);
  // At the first virtual microsecond that reaches the deadline.
  ASSERT_FALSE(fired_at_us_.empty());
  EXPECT_LT(simulator_.clock(node_).MonotonicUs(fired_at_us_[0] - 1), deadline);

  // Speeding up: late is allowed, early is not.
  fired_.clear();
  monotonic_at_fire.clear();
  const int64_t second_deadline = clock().MonotonicNowUs() + 100'000;
  clock().ScheduleAfter(100'000, log_fire("D"));
  simulator_.RunFor(10'000);
  simulator_.clock(node_).SetDriftPpm(100'000, simulator_.NowUs());
  simulator_.RunFor(1'000'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"D"}));
  ASSERT_EQ(monotonic_at_fire.size(), 1u);
  EXPECT_GE(monotonic_at_fire[0], second_deadline);
}

// The node's wall clock follows its SimClockState: a wall jump shows at once in WallNowMs and not
// in MonotonicNowUs, and the clock state (its offset and readings) survives a crash and restart.
TEST_F(SimClockTest, WallJumpsShowThroughTheNodeClock) {
  MakeNode(Drift(0));
  simulator_.RunUntil(2'000'000);
  const int64_t wall = clock().WallNowMs();
  const int64_t monotonic = clock().MonotonicNowUs();
  simulator_.clock(node_).JumpWallMs(-60'000);
  EXPECT_EQ(clock().WallNowMs(), wall - 60'000);
  EXPECT_EQ(clock().MonotonicNowUs(), monotonic);
  simulator_.RestartNode(node_, CrashKind::kPowerLoss);
  EXPECT_EQ(clock().WallNowMs(), wall - 60'000);
  EXPECT_EQ(clock().MonotonicNowUs(), monotonic);
}

// A randomized check over many seeds: one node schedules timers with random delays (including
// zero and negative), cancels random pending ones, and now and then crashes and restarts; in half
// the seeds its drift also changes at random. Checked: a timer runs at most once, only if it was
// not cancelled and its incarnation is alive, and never before its monotonic deadline;
// CancelTimer returns true exactly for pending timers; every uncancelled timer of the final
// incarnation runs; and without drift changes, timers of one incarnation run in (deadline,
// scheduling order) order.
TEST(SimClockRandomizedTest, TimersKeepTheClockContract) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const bool drift_changes = seed % 2 == 0;
    Random random(seed);
    Simulator simulator(Seed(seed));
    const NodeId node = simulator.AddNode(
        Node("n", Drift(static_cast<double>(random.Between(-100'000, 100'000)))),
        [](Env&) { return std::make_shared<int>(0); });
    simulator.StartNode(node);
    struct Timer {
      uint64_t incarnation;
      TimerId id;
      int64_t deadline;
      bool cancelled = false;
      int fired = 0;
      int64_t fired_monotonic = 0;
    };
    std::vector<Timer> timers;
    std::vector<size_t> fire_order;
    for (int step = 0; step < 3000; ++step) {
      Clock& clock = simulator.NodeEnv(node)->clock();
      const uint64_t op = random.Below(100);
      if (op < 50) {
        const int64_t delay = random.Between(-10, 30'000);
        const size_t index = timers.size();
        timers.push_back(Timer{simulator.Incarnation(node), kNoTimer,
                               clock.MonotonicNowUs() + std::max<int64_t>(delay, 0)});
        timers[index].id = clock.ScheduleAfter(delay, [&, index] {
          Timer& timer = timers[index];
          ++timer.fired;
          timer.fired_monotonic = simulator.NodeEnv(node)->clock().MonotonicNowUs();
          fire_order.push_back(index);
        });
      } else if (op < 70 && !timers.empty()) {
        Timer& timer = timers[random.Below(timers.size())];
        if (timer.incarnation != simulator.Incarnation(node)) continue;
        const bool pending = !timer.cancelled && timer.fired == 0;
        EXPECT_EQ(clock.CancelTimer(timer.id), pending);
        if (pending) timer.cancelled = true;
      } else if (op < 72) {
        simulator.RestartNode(node, random.Chance(0.5) ? CrashKind::kProcess
                                                       : CrashKind::kPowerLoss);
      } else if (op < 76 && drift_changes) {
        simulator.clock(node).SetDriftPpm(static_cast<double>(random.Between(-100'000, 100'000)),
                                          simulator.NowUs());
      }
      simulator.RunFor(random.Between(0, 2'000));
    }
    simulator.RunFor(1'000'000);
    const uint64_t last = simulator.Incarnation(node);
    for (const Timer& timer : timers) {
      ASSERT_LE(timer.fired, 1);
      if (timer.fired == 1) {
        EXPECT_FALSE(timer.cancelled);
        EXPECT_GE(timer.fired_monotonic, timer.deadline);
      }
      if (timer.incarnation == last && !timer.cancelled) {
        EXPECT_EQ(timer.fired, 1);
      }
    }
    for (size_t i = 1; i < fire_order.size(); ++i) {
      const Timer& a = timers[fire_order[i - 1]];
      const Timer& b = timers[fire_order[i]];
      // Timers of a dead incarnation never run after the next one started.
      EXPECT_LE(a.incarnation, b.incarnation);
      if (!drift_changes && a.incarnation == b.incarnation) {
        EXPECT_TRUE(a.deadline < b.deadline ||
                    (a.deadline == b.deadline && fire_order[i - 1] < fire_order[i]))
            << "timer " << fire_order[i - 1] << " ran before timer " << fire_order[i];
      }
    }
    if (HasFailure()) break;
  }
}

// Timers of a crashed incarnation never fire: not at their deadline while the node is down, and
// not after it restarts (the new incarnation's own timers do fire). The same holds for a clean
// stop. The clock state (drift, readings) survives the crash.
TEST_F(SimClockTest, TimersOfACrashedIncarnationNeverFire) {
  MakeNode(Drift(10));
  Schedule(1'000, "before crash");
  Schedule(5'000, "before crash, late");
  simulator_.RunUntil(100);
  const int64_t monotonic_before = clock().MonotonicNowUs();
  simulator_.CrashNode(node_, CrashKind::kProcess);
  simulator_.RunUntil(2'000);
  EXPECT_TRUE(fired_.empty());
  simulator_.StartNode(node_);
  EXPECT_GT(clock().MonotonicNowUs(), monotonic_before);
  Schedule(500, "after restart");
  simulator_.RunUntil(100'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"after restart"}));

  Schedule(1'000, "before stop");
  simulator_.StopNode(node_);
  simulator_.RunUntil(200'000);
  simulator_.StartNode(node_);
  simulator_.RunUntil(300'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"after restart"}));

  Schedule(1'000, "before power loss");
  simulator_.RestartNode(node_, CrashKind::kPowerLoss);
  simulator_.RunUntil(400'000);
  EXPECT_EQ(fired_, (std::vector<std::string>{"after restart"}));
}

}  // namespace
}  // namespace runnel::sim
