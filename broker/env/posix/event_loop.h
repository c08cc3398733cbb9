// EventLoop: the single-threaded epoll loop on which every callback of the real (posix) Env runs.
//
// Contract:
// - One thread runs the loop (Run, RunFor or RunUntil) and makes every other call, except Post()
//   and Stop(), which any thread may call at any time. Nothing here is thread-safe otherwise.
// - Callbacks (timers, fd readiness, posted work) run one at a time, each to completion, on the
//   thread that runs the loop, and only while it runs. None runs from inside the call that
//   registered it.
// - Timers run after at least their delay of CLOCK_MONOTONIC time, earliest deadline first; equal
//   deadlines run in the order they were scheduled. A cancelled timer never runs.
// - Fd watching is level-triggered: the callback runs on every iteration in which the descriptor is
//   ready for something it is interested in, or has an error or hang-up (which are always reported).
//   Once UnwatchFd() returns, the callback never runs again, even for readiness already collected
//   in the current iteration. The loop never closes a watched descriptor; its owner does, after
//   UnwatchFd().
// - Callbacks may schedule, cancel, watch, unwatch, post and stop freely, including on
//   themselves. They must not run the loop recursively or destroy it.
// - Destroying the loop runs nothing: pending timers and posted work are dropped.
#ifndef RUNNEL_BROKER_ENV_POSIX_EVENT_LOOP_H_
#define RUNNEL_BROKER_ENV_POSIX_EVENT_LOOP_H_

#include <signal.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/env/clock.h"
#include "broker/env/posix/scoped_fd.h"

namespace runnel {

class EventLoop {
 public:
  // Identifies one fd registration. Zero is never a valid id; ids are never reused.
  using WatchId = uint64_t;
  static constexpr WatchId kNoWatch = 0;

  // Interest (what WatchFd/SetInterest ask for) and readiness (what the callback receives).
  static constexpr uint32_t kReadable = 1u << 0;
  static constexpr uint32_t kWritable = 1u << 1;
  // Readiness only: always reported, never asked for.
  static constexpr uint32_t kError = 1u << 2;
  static constexpr uint32_t kHangup = 1u << 3;

  // Receives the readiness bits of one iteration.
  using FdCallback = absl::AnyInvocable<void(uint32_t ready)>;

  // Most readiness events collected by one epoll_wait; more wait for the next iteration.
  static constexpr int kEpollEventsPerWaitMax = 256;
  // Pending timers and posted callbacks beyond these counts mean a leak or a runaway producer;
  // the loop asserts rather than grow without bound.
  static constexpr size_t kTimersPendingMax = size_t{1} << 22;
  static constexpr size_t kPostedPendingMax = size_t{1} << 22;

  // Creates the epoll instance and its wake-up and timer descriptors.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // CLOCK_MONOTONIC in microseconds: never decreases; only differences are meaningful.
  static int64_t NowUs();

  // Schedules `callback` to run once at `deadline_us` (NowUs() scale) or as soon after as the
  // loop gets to it. Returns an id that is never kNoTimer and never reused.
  TimerId ScheduleAt(int64_t deadline_us, absl::AnyInvocable<void()> callback);
  // ScheduleAt(NowUs() + delay_us); negative delays count as zero.
  TimerId ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback);
  // True if the timer was pending and now never runs; false (a no-op) for a fired, cancelled or
  // unknown timer.
  bool CancelTimer(TimerId timer);
  size_t timers_pending() const { return timer_deadlines_.size(); }

  // Starts watching `fd` for `interest` (kReadable and/or kWritable, possibly neither). Fails if the
  // descriptor is already watched or cannot be polled.
  absl::StatusOr<WatchId> WatchFd(int fd, uint32_t interest, FdCallback callback);
  // Changes what an existing registration waits for.
  absl::Status SetInterest(WatchId watch, uint32_t interest);
  // Stops watching; a no-op for an unknown id. Call before closing the descriptor.
  void UnwatchFd(WatchId watch);

  // Runs `callback` on the loop thread soon, in posting order. This is how work finished on another
  // thread returns to the loop. Thread-safe; never blocks on the loop.
  void Post(absl::AnyInvocable<void()> callback);

  // Makes the current or next Run/RunFor/RunUntil return after the iteration in progress. Safe from
  // any thread and from a signal handler (an atomic store and a write to an eventfd).
  void Stop();

  // From now on, delivery of any of `signals` stops the loop (see stop_signal()). The signals are
  // blocked in the calling thread and read through a signalfd, so call this on the loop thread
  // before starting other threads (which inherit the blocked mask); a thread that does not block
  // them would still receive them the default way. The previous mask is restored on destruction.
  absl::Status StopOnSignals(std::initializer_list<int> signals = {SIGTERM, SIGINT});
  // The last signal that stopped the loop through StopOnSignals(), or 0.
  int stop_signal() const { return stop_signal_; }

  // Runs until Stop().
  void Run();
  // Runs for `duration_us` of monotonic time, or until Stop().
  void RunFor(int64_t duration_us);
  // Runs until `done()` is true (checked before the first and after every iteration), at most
  // `timeout_us`. Returns whether `done()` became true; false on timeout or Stop().
  bool RunUntil(absl::FunctionRef<bool()> done, int64_t timeout_us);

 private:
  struct Watcher {
    int fd = -1;
    uint32_t interest = 0;
    FdCallback callback;
  };
  // Timers ordered by deadline, then by id, which grows with scheduling order.
  using TimerKey = std::pair<int64_t, TimerId>;

  enum class RunResult { kStopped, kDone, kDeadline };

  EventLoop(ScopedFd epoll_fd, ScopedFd wake_fd, ScopedFd timer_fd);

  absl::Status Initialize();
  RunResult RunLoop(int64_t deadline_us, absl::FunctionRef<bool()> done);
  void PollOnce(int64_t wake_deadline_us);
  void ArmTimerFd(int64_t deadline_us);
  void RunDueTimers();
  void RunPosted();
  void DrainWakeFd();
  void DrainTimerFd();
  void DrainSignalFd();

  ScopedFd epoll_fd_;
  // Written by Post() and Stop() to interrupt epoll_wait.
  ScopedFd wake_fd_;
  // Armed at the earliest deadline the loop waits for, so timers keep microsecond precision.
  ScopedFd timer_fd_;
  // The deadline timer_fd_ is armed for; the maximum when disarmed or already fired (one-shot).
  int64_t timer_fd_armed_us_ = std::numeric_limits<int64_t>::max();

  ScopedFd signal_fd_;
  bool signal_mask_saved_ = false;
  sigset_t signal_mask_saved_value_;
  int stop_signal_ = 0;

  bool running_ = false;
  std::atomic<bool> stop_requested_{false};

  TimerId timer_next_ = 1;
  std::map<TimerKey, absl::AnyInvocable<void()>> timers_;
  absl::flat_hash_map<TimerId, int64_t> timer_deadlines_;

  WatchId watch_next_ = 1;
  // Shared so that a callback that unwatches itself is not destroyed while it runs.
  absl::flat_hash_map<WatchId, std::shared_ptr<Watcher>> watchers_;

  std::mutex posted_mutex_;
  std::vector<absl::AnyInvocable<void()>> posted_;  // guarded by posted_mutex_
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_EVENT_LOOP_H_
