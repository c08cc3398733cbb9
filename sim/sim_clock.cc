#include "sim/sim_clock.h"

#include <cassert>
#include <cmath>

namespace runnel::sim {
namespace {

// The node time that passes during `elapsed_us` of virtual time at `drift_ppm`, rounded down. The
// whole elapsed time is kept as an integer and only the drift correction is computed in floating
// point, divided by an exact 1e6, so whole ppm values give exact results (1000 ppm over one second
// is exactly 1000 us; multiplying by 1.0 + 1000 * 1e-6 would give 999.99...). Non-decreasing in
// elapsed_us for every drift within kDriftPpmMax.
int64_t DriftedUs(int64_t elapsed_us, double drift_ppm) {
  const double correction_us = static_cast<double>(elapsed_us) * drift_ppm / 1e6;
  return elapsed_us + static_cast<int64_t>(std::floor(correction_us));
}

int64_t FloorDiv(int64_t value, int64_t divisor) {
  const int64_t quotient = value / divisor;
  return (value % divisor != 0 && value < 0) ? quotient - 1 : quotient;
}

}  // namespace

// wall_epoch_ms_ holds the wall reading at monotonic zero, so that at virtual time zero (monotonic
// monotonic_start_us) the wall clock reads exactly wall_epoch_ms + wall_offset_ms, as ClockOptions
// documents.
SimClockState::SimClockState(ClockOptions options)
    : anchor_monotonic_us_(options.monotonic_start_us),
      drift_ppm_(options.drift_ppm),
      wall_epoch_ms_(options.wall_epoch_ms - FloorDiv(options.monotonic_start_us, 1000)),
      wall_offset_ms_(options.wall_offset_ms) {
  assert(std::fabs(drift_ppm_) <= kDriftPpmMax);
}

int64_t SimClockState::MonotonicUs(int64_t virtual_us) const {
  assert(virtual_us >= anchor_virtual_us_);
  return anchor_monotonic_us_ + DriftedUs(virtual_us - anchor_virtual_us_, drift_ppm_);
}

int64_t SimClockState::WallMs(int64_t virtual_us) const {
  return wall_epoch_ms_ + wall_offset_ms_ + FloorDiv(MonotonicUs(virtual_us), 1000);
}

int64_t SimClockState::VirtualDelayUs(int64_t node_delay_us) const {
  if (node_delay_us <= 0) return 0;
  // An estimate from the inverse rate, then corrected to the exact least virtual delay.
  int64_t virtual_us = static_cast<int64_t>(
      std::ceil(static_cast<double>(node_delay_us) * 1e6 / (1e6 + drift_ppm_)));
  while (DriftedUs(virtual_us, drift_ppm_) < node_delay_us) ++virtual_us;
  while (virtual_us > 0 && DriftedUs(virtual_us - 1, drift_ppm_) >= node_delay_us) --virtual_us;
  return virtual_us;
}

void SimClockState::SetDriftPpm(double drift_ppm, int64_t now_us) {
  assert(std::fabs(drift_ppm) <= kDriftPpmMax);
  anchor_monotonic_us_ = MonotonicUs(now_us);
  anchor_virtual_us_ = now_us;
  drift_ppm_ = drift_ppm;
}

SimClock::SimClock(SimContext& context, const SimClockState& state, NodeId node,
                   uint64_t incarnation)
    : context_(context), state_(state), node_(node), incarnation_(incarnation) {}

int64_t SimClock::MonotonicNowUs() const { return state_.MonotonicUs(context_.NowUs()); }

int64_t SimClock::WallNowMs() const { return state_.WallMs(context_.NowUs()); }

namespace {

// What a timer event needs of its SimClock (whose private parts only its members may name).
struct TimerOwner {
  SimContext* context;
  const SimClockState* state;
  NodeId node;
  uint64_t incarnation;
  absl::flat_hash_map<TimerId, uint64_t>* pending;
};

// Schedules the event of timer `id` at the first virtual microsecond at which the node's monotonic
// clock reaches `deadline_us`, and returns its sequence number. Converting the deadline (rather
// than the delay) gives timers with equal deadlines one virtual time, so they run in scheduling
// order even when scheduled at different times under drift. If the clock's drift changes while the
// timer waits so that the deadline has not been reached when the event runs, the timer waits again
// instead of firing early.
uint64_t ArmTimer(TimerOwner owner, TimerId id, int64_t deadline_us,
                  absl::AnyInvocable<void()> callback) {
  const int64_t now_us = owner.context->NowUs();
  const int64_t now_monotonic_us = owner.state->MonotonicUs(now_us);
  int64_t at_us = now_us;
  if (deadline_us > now_monotonic_us) {
    at_us += owner.state->VirtualDelayUs(deadline_us - now_monotonic_us);
    while (owner.state->MonotonicUs(at_us) < deadline_us) ++at_us;
    while (at_us > now_us && owner.state->MonotonicUs(at_us - 1) >= deadline_us) --at_us;
  }
  return owner.context->ScheduleForNode(
      owner.node, owner.incarnation, at_us - now_us,
      [owner, id, deadline_us, callback = std::move(callback)]() mutable {
        if (owner.state->MonotonicUs(owner.context->NowUs()) < deadline_us) {
          (*owner.pending)[id] = ArmTimer(owner, id, deadline_us, std::move(callback));
          return;
        }
        owner.pending->erase(id);
        callback();
      });
}

}  // namespace

TimerId SimClock::ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback) {
  const TimerId id = next_timer_id_++;
  const int64_t deadline_us = MonotonicNowUs() + (delay_us > 0 ? delay_us : 0);
  const TimerOwner owner{&context_, &state_, node_, incarnation_, &pending_};
  pending_.emplace(id, ArmTimer(owner, id, deadline_us, std::move(callback)));
  return id;
}

bool SimClock::CancelTimer(TimerId timer) {
  auto it = pending_.find(timer);
  if (it == pending_.end()) return false;
  context_.CancelEvent(it->second);
  pending_.erase(it);
  return true;
}

}  // namespace runnel::sim
