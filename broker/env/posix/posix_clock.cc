#include "broker/env/posix/posix_clock.h"

#include <time.h>

#include <cassert>
#include <utility>

namespace runnel {

PosixClock::PosixClock(EventLoop& loop) : loop_(loop) {}

PosixClock::~PosixClock() {
  for (const auto& [timer, loop_timer] : loop_timers_) loop_.CancelTimer(loop_timer);
}

int64_t PosixClock::MonotonicNowUs() const { return EventLoop::NowUs(); }

int64_t PosixClock::WallNowMs() const {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000 + now.tv_nsec / 1'000'000;
}

TimerId PosixClock::ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback) {
  assert(callback);
  const TimerId timer = timer_next_++;
  const TimerId loop_timer =
      loop_.ScheduleAfter(delay_us, [this, timer, callback = std::move(callback)]() mutable {
        // Forget the timer before running it, so that the callback sees it as fired.
        loop_timers_.erase(timer);
        callback();
      });
  loop_timers_.emplace(timer, loop_timer);
  return timer;
}

bool PosixClock::CancelTimer(TimerId timer) {
  auto it = loop_timers_.find(timer);
  if (it == loop_timers_.end()) return false;
  const bool cancelled = loop_.CancelTimer(it->second);
  loop_timers_.erase(it);
  return cancelled;
}

}  // namespace runnel
