// Simulated clocks. Every node has its own view of time derived from the simulator's virtual time:
// a monotonic clock that runs fast or slow by drift_ppm, and a wall clock that follows it plus an
// offset that faults can jump forwards or backwards. Timers run on the monotonic clock, so a node
// whose clock runs fast sees its timers fire early in virtual time, as a real node would.
#ifndef RUNNEL_SIM_SIM_CLOCK_H_
#define RUNNEL_SIM_SIM_CLOCK_H_

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "broker/env/clock.h"
#include "broker/env/env.h"
#include "sim/sim_context.h"

namespace runnel::sim {

struct ClockOptions {
  // The node's monotonic reading at virtual time zero.
  int64_t monotonic_start_us = 1'000'000;
  // Parts per million by which the node's clock runs fast (positive) or slow (negative).
  double drift_ppm = 0.0;
  // Unix time in milliseconds at virtual time zero (2026-01-01T00:00:00Z by default).
  int64_t wall_epoch_ms = 1'767'225'600'000;
  // The node's wall clock error at the start.
  int64_t wall_offset_ms = 0;
};

// The most drift a clock may be given; real oscillators stay well within this.
inline constexpr double kDriftPpmMax = 100'000.0;

// One node's clock hardware. It survives the node's crashes.
class SimClockState {
 public:
  explicit SimClockState(ClockOptions options);

  int64_t MonotonicUs(int64_t virtual_us) const;
  int64_t WallMs(int64_t virtual_us) const;
  // The virtual delay after which `node_delay_us` of this node's monotonic time has passed.
  int64_t VirtualDelayUs(int64_t node_delay_us) const;

  // Steps the wall clock (NTP step, operator error). Monotonic time is unaffected.
  void JumpWallMs(int64_t delta_ms) { wall_offset_ms_ += delta_ms; }
  // Changes the drift from virtual time `now_us` on, keeping the clock continuous.
  void SetDriftPpm(double drift_ppm, int64_t now_us);
  double drift_ppm() const { return drift_ppm_; }

 private:
  int64_t anchor_virtual_us_ = 0;
  int64_t anchor_monotonic_us_;
  double drift_ppm_;
  int64_t wall_epoch_ms_;
  int64_t wall_offset_ms_;
};

// The Clock one node incarnation sees.
class SimClock final : public Clock {
 public:
  SimClock(SimContext& context, const SimClockState& state, NodeId node, uint64_t incarnation);

  int64_t MonotonicNowUs() const override;
  int64_t WallNowMs() const override;
  TimerId ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback) override;
  bool CancelTimer(TimerId timer) override;

  size_t pending_timer_count() const { return pending_.size(); }

 private:
  SimContext& context_;
  const SimClockState& state_;
  NodeId node_;
  uint64_t incarnation_;
  TimerId next_timer_id_ = 1;
  // Pending timers and their event sequence numbers. Looked up only, never iterated.
  absl::flat_hash_map<TimerId, uint64_t> pending_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SIM_CLOCK_H_
