// The broker's view of time. The only way broker code learns the time or waits for it.
//
// Contract:
// - MonotonicNowUs() never decreases during one incarnation of a node. It starts at an arbitrary
//   value; only differences are meaningful. Timers are measured against it.
// - WallNowMs() is Unix time in milliseconds, used only for record timestamps and retention by age.
//   It may jump forwards or backwards at any moment (NTP steps, operator error); broker logic must
//   never assume it is monotonic or agrees with any other node.
// - A timer callback runs on the node's event loop after at least `delay_us` of monotonic time, and
//   runs to completion before any other callback of that node starts. Timers with equal deadlines run
//   in the order they were scheduled.
// - CancelTimer() on a timer that has not fired guarantees it never fires. Cancelling a fired,
//   cancelled or unknown timer is a harmless no-op that returns false.
// - When a node crashes, none of its pending timers fire.
#ifndef RUNNEL_BROKER_ENV_CLOCK_H_
#define RUNNEL_BROKER_ENV_CLOCK_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"

namespace runnel {

// Identifies one scheduled timer of one Clock. Zero is never a valid id.
using TimerId = uint64_t;
inline constexpr TimerId kNoTimer = 0;

class Clock {
 public:
  virtual ~Clock() = default;

  virtual int64_t MonotonicNowUs() const = 0;
  virtual int64_t WallNowMs() const = 0;

  // Schedules `callback` to run once after `delay_us` (negative delays count as zero).
  virtual TimerId ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback) = 0;

  // Returns true if the timer was pending and will now never run.
  virtual bool CancelTimer(TimerId timer) = 0;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_CLOCK_H_
