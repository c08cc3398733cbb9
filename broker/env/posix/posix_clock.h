// PosixClock: the real Clock of one node. Monotonic time is CLOCK_MONOTONIC, wall time
// CLOCK_REALTIME, and timers run on the node's EventLoop.
#ifndef RUNNEL_BROKER_ENV_POSIX_POSIX_CLOCK_H_
#define RUNNEL_BROKER_ENV_POSIX_POSIX_CLOCK_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "broker/env/clock.h"
#include "broker/env/posix/event_loop.h"

namespace runnel {

class PosixClock final : public Clock {
 public:
  // `loop` must outlive the clock.
  explicit PosixClock(EventLoop& loop);
  // Cancels every pending timer of this clock: none of them runs afterwards.
  ~PosixClock() override;

  PosixClock(const PosixClock&) = delete;
  PosixClock& operator=(const PosixClock&) = delete;

  int64_t MonotonicNowUs() const override;
  int64_t WallNowMs() const override;
  TimerId ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback) override;
  bool CancelTimer(TimerId timer) override;

  size_t timers_pending() const { return loop_timers_.size(); }

 private:
  EventLoop& loop_;
  // This clock's own ids, so that a node sees only its own timers and its destructor knows what
  // to cancel; mapped to the loop's ids.
  TimerId timer_next_ = 1;
  absl::flat_hash_map<TimerId, TimerId> loop_timers_;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_POSIX_CLOCK_H_
