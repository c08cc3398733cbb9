#include "broker/env/posix/event_loop.h"

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cassert>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "broker/env/posix/errno_status.h"

namespace runnel {
namespace {

constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();
// Signal information records read from the signalfd per readiness.
constexpr int kSignalsPerReadMax = 8;

uint32_t ToEpollEvents(uint32_t interest) {
  uint32_t events = 0;
  if (interest & EventLoop::kReadable) events |= EPOLLIN | EPOLLRDHUP;
  if (interest & EventLoop::kWritable) events |= EPOLLOUT;
  return events;
}

uint32_t FromEpollEvents(uint32_t events) {
  uint32_t ready = 0;
  if (events & (EPOLLIN | EPOLLPRI)) ready |= EventLoop::kReadable;
  if (events & EPOLLOUT) ready |= EventLoop::kWritable;
  if (events & EPOLLERR) ready |= EventLoop::kError;
  if (events & (EPOLLHUP | EPOLLRDHUP)) ready |= EventLoop::kHangup;
  return ready;
}

// Saturating a + b for deadlines, so that huge delays mean "never" instead of overflowing.
int64_t AddSaturated(int64_t a, int64_t b) {
  if (b > 0 && a > kNoDeadline - b) return kNoDeadline;
  return a + b;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  ScopedFd epoll_fd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd.valid()) return ErrnoToStatus(errno, "epoll_create1");
  ScopedFd wake_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd.valid()) return ErrnoToStatus(errno, "eventfd");
  ScopedFd timer_fd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_fd.valid()) return ErrnoToStatus(errno, "timerfd_create");
  std::unique_ptr<EventLoop> loop(
      new EventLoop(std::move(epoll_fd), std::move(wake_fd), std::move(timer_fd)));
  if (absl::Status status = loop->Initialize(); !status.ok()) return status;
  return loop;
}

EventLoop::EventLoop(ScopedFd epoll_fd, ScopedFd wake_fd, ScopedFd timer_fd)
    : epoll_fd_(std::move(epoll_fd)), wake_fd_(std::move(wake_fd)), timer_fd_(std::move(timer_fd)) {
  sigemptyset(&signal_mask_saved_value_);
}

absl::Status EventLoop::Initialize() {
  absl::StatusOr<WatchId> wake =
      WatchFd(wake_fd_.get(), kReadable, [this](uint32_t) { DrainWakeFd(); });
  if (!wake.ok()) return wake.status();
  absl::StatusOr<WatchId> timer =
      WatchFd(timer_fd_.get(), kReadable, [this](uint32_t) { DrainTimerFd(); });
  if (!timer.ok()) return timer.status();
  return absl::OkStatus();
}

EventLoop::~EventLoop() {
  assert(!running_);
  if (signal_mask_saved_) pthread_sigmask(SIG_SETMASK, &signal_mask_saved_value_, nullptr);
}

int64_t EventLoop::NowUs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
}

TimerId EventLoop::ScheduleAt(int64_t deadline_us, absl::AnyInvocable<void()> callback) {
  assert(callback);
  assert(timer_deadlines_.size() < kTimersPendingMax);
  const TimerId timer = timer_next_++;
  timers_.emplace(TimerKey{deadline_us, timer}, std::move(callback));
  timer_deadlines_.emplace(timer, deadline_us);
  return timer;
}

TimerId EventLoop::ScheduleAfter(int64_t delay_us, absl::AnyInvocable<void()> callback) {
  return ScheduleAt(AddSaturated(NowUs(), delay_us < 0 ? 0 : delay_us), std::move(callback));
}

bool EventLoop::CancelTimer(TimerId timer) {
  auto it = timer_deadlines_.find(timer);
  if (it == timer_deadlines_.end()) return false;
  const size_t erased = timers_.erase(TimerKey{it->second, timer});
  assert(erased == 1);
  static_cast<void>(erased);
  timer_deadlines_.erase(it);
  return true;
}

absl::StatusOr<EventLoop::WatchId> EventLoop::WatchFd(int fd, uint32_t interest,
                                                      FdCallback callback) {
  assert(fd >= 0);
  assert(callback);
  const WatchId watch = watch_next_++;
  epoll_event event = {};
  event.events = ToEpollEvents(interest);
  // The registration id, not the descriptor, identifies the watcher: a descriptor number can be
  // closed and reused within one batch of events, an id cannot.
  event.data.u64 = watch;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("epoll_ctl(ADD, fd ", fd, ")"));
  }
  auto watcher = std::make_shared<Watcher>();
  watcher->fd = fd;
  watcher->interest = interest;
  watcher->callback = std::move(callback);
  watchers_.emplace(watch, std::move(watcher));
  return watch;
}

absl::Status EventLoop::SetInterest(WatchId watch, uint32_t interest) {
  auto it = watchers_.find(watch);
  if (it == watchers_.end()) {
    return absl::NotFoundError(absl::StrCat("no fd watch with id ", watch));
  }
  Watcher& watcher = *it->second;
  if (watcher.interest == interest) return absl::OkStatus();
  epoll_event event = {};
  event.events = ToEpollEvents(interest);
  event.data.u64 = watch;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, watcher.fd, &event) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("epoll_ctl(MOD, fd ", watcher.fd, ")"));
  }
  watcher.interest = interest;
  return absl::OkStatus();
}

void EventLoop::UnwatchFd(WatchId watch) {
  auto it = watchers_.find(watch);
  if (it == watchers_.end()) return;
  // Failure is impossible for a registered, still open descriptor; if the owner closed it first,
  // the kernel has already dropped the registration, which is what we want anyway.
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second->fd, nullptr);
  watchers_.erase(it);
}

void EventLoop::Post(absl::AnyInvocable<void()> callback) {
  assert(callback);
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    assert(posted_.size() < kPostedPendingMax);
    was_empty = posted_.empty();
    posted_.push_back(std::move(callback));
  }
  // Only the first post into an empty queue needs to wake the loop: the loop reads the eventfd
  // before it takes the queue, so any later post either lands in the queue it is about to take or
  // finds the queue empty again and writes.
  if (was_empty) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = write(wake_fd_.get(), &one, sizeof(one));
  }
}

void EventLoop::Stop() {
  stop_requested_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  // An eventfd write fails only when the counter would overflow, in which case it is already
  // readable and the loop wakes anyway.
  [[maybe_unused]] const ssize_t written = write(wake_fd_.get(), &one, sizeof(one));
}

absl::Status EventLoop::StopOnSignals(std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int signal_number : signals) {
    if (sigaddset(&mask, signal_number) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("invalid signal number ", signal_number));
    }
  }
  sigset_t previous;
  if (const int error = pthread_sigmask(SIG_BLOCK, &mask, &previous); error != 0) {
    return ErrnoToStatus(error, "pthread_sigmask");
  }
  if (!signal_mask_saved_) {
    signal_mask_saved_value_ = previous;
    signal_mask_saved_ = true;
  }
  if (signal_fd_.valid()) {
    // Widen the existing signalfd to the new set; its watch stays as it is.
    sigset_t combined;
    pthread_sigmask(SIG_BLOCK, nullptr, &combined);
    if (signalfd(signal_fd_.get(), &combined, SFD_NONBLOCK | SFD_CLOEXEC) < 0) {
      return ErrnoToStatus(errno, "signalfd");
    }
    return absl::OkStatus();
  }
  ScopedFd signal_fd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd.valid()) return ErrnoToStatus(errno, "signalfd");
  absl::StatusOr<WatchId> watch =
      WatchFd(signal_fd.get(), kReadable, [this](uint32_t) { DrainSignalFd(); });
  if (!watch.ok()) return watch.status();
  signal_fd_ = std::move(signal_fd);
  return absl::OkStatus();
}

void EventLoop::Run() {
  RunLoop(kNoDeadline, [] { return false; });
}

void EventLoop::RunFor(int64_t duration_us) {
  RunLoop(AddSaturated(NowUs(), duration_us), [] { return false; });
}

bool EventLoop::RunUntil(absl::FunctionRef<bool()> done, int64_t timeout_us) {
  return RunLoop(AddSaturated(NowUs(), timeout_us), done) == RunResult::kDone;
}

EventLoop::RunResult EventLoop::RunLoop(int64_t deadline_us, absl::FunctionRef<bool()> done) {
  assert(!running_ && "the event loop must not be run recursively");
  running_ = true;
  RunResult result;
  while (true) {
    if (stop_requested_.exchange(false, std::memory_order_acq_rel)) {
      result = RunResult::kStopped;
      break;
    }
    if (done()) {
      result = RunResult::kDone;
      break;
    }
    if (NowUs() >= deadline_us) {
      result = RunResult::kDeadline;
      break;
    }
    int64_t wake_deadline_us = deadline_us;
    if (!timers_.empty() && timers_.begin()->first.first < wake_deadline_us) {
      wake_deadline_us = timers_.begin()->first.first;
    }
    PollOnce(wake_deadline_us);
    RunDueTimers();
    RunPosted();
  }
  running_ = false;
  return result;
}

void EventLoop::PollOnce(int64_t wake_deadline_us) {
  int timeout_ms = -1;
  if (wake_deadline_us <= NowUs()) {
    timeout_ms = 0;
  } else {
    ArmTimerFd(wake_deadline_us);
  }
  epoll_event events[kEpollEventsPerWaitMax];
  const int count = epoll_wait(epoll_fd_.get(), events, kEpollEventsPerWaitMax, timeout_ms);
  if (count < 0) {
    // EINTR: a signal handler ran; the caller re-checks everything and polls again.
    assert(errno == EINTR);
    return;
  }
  for (int i = 0; i < count; ++i) {
    auto it = watchers_.find(events[i].data.u64);
    // Unwatched by an earlier callback of this batch.
    if (it == watchers_.end()) continue;
    // Keeps the watcher (and its callback) alive even if the callback unwatches itself.
    std::shared_ptr<Watcher> watcher = it->second;
    watcher->callback(FromEpollEvents(events[i].events));
  }
}

void EventLoop::ArmTimerFd(int64_t deadline_us) {
  if (deadline_us == timer_fd_armed_us_) return;
  itimerspec spec = {};
  if (deadline_us != kNoDeadline) {
    spec.it_value.tv_sec = deadline_us / 1'000'000;
    spec.it_value.tv_nsec = (deadline_us % 1'000'000) * 1'000;
    // An all-zero it_value would disarm the timer instead of firing at once.
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  }
  [[maybe_unused]] const int result =
      timerfd_settime(timer_fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
  assert(result == 0);
  timer_fd_armed_us_ = deadline_us;
}

void EventLoop::RunDueTimers() {
  const int64_t now_us = NowUs();
  // Timers scheduled by the callbacks below wait for the next iteration even when already due, so
  // that a timer re-arming itself with zero delay cannot starve fd events and posted work.
  const TimerId timer_limit = timer_next_;
  while (!timers_.empty()) {
    auto it = timers_.begin();
    const auto [deadline_us, timer] = it->first;
    if (deadline_us > now_us || timer >= timer_limit) break;
    absl::AnyInvocable<void()> callback = std::move(it->second);
    timers_.erase(it);
    timer_deadlines_.erase(timer);
    callback();
  }
}

void EventLoop::RunPosted() {
  std::vector<absl::AnyInvocable<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (absl::AnyInvocable<void()>& callback : batch) callback();
}

void EventLoop::DrainWakeFd() {
  uint64_t count;
  // Non-blocking: EAGAIN means another iteration already consumed the wake-up.
  [[maybe_unused]] const ssize_t bytes_read = read(wake_fd_.get(), &count, sizeof(count));
}

void EventLoop::DrainTimerFd() {
  uint64_t expirations;
  [[maybe_unused]] const ssize_t bytes_read = read(timer_fd_.get(), &expirations, sizeof(expirations));
  // Fired, so disarmed: the next PollOnce must arm it again even for the same deadline.
  timer_fd_armed_us_ = kNoDeadline;
}

void EventLoop::DrainSignalFd() {
  signalfd_siginfo infos[kSignalsPerReadMax];
  const ssize_t bytes_read = read(signal_fd_.get(), infos, sizeof(infos));
  if (bytes_read < static_cast<ssize_t>(sizeof(signalfd_siginfo))) return;
  const size_t count = static_cast<size_t>(bytes_read) / sizeof(signalfd_siginfo);
  stop_signal_ = static_cast<int>(infos[count - 1].ssi_signo);
  Stop();
}

}  // namespace runnel
