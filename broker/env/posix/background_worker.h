// BackgroundWorker: one thread that runs submitted work in submission order, off the event loop.
//
// The posix Env uses it for the calls that may block for a long time and have no non-blocking form
// (fsync, getaddrinfo). Work reports back by EventLoop::Post(). The queue is bounded: TrySubmit()
// refuses work beyond `queue_depth_max` instead of letting a stalled disk or resolver accumulate an
// unbounded backlog.
#ifndef RUNNEL_BROKER_ENV_POSIX_BACKGROUND_WORKER_H_
#define RUNNEL_BROKER_ENV_POSIX_BACKGROUND_WORKER_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"

namespace runnel {

class BackgroundWorker {
 public:
  // Starts the thread, named `name` (at most 15 characters are kept) for debuggers and top(1). It
  // blocks every signal, so that process-directed signals reach the loop thread's signalfd.
  BackgroundWorker(std::string name, size_t queue_depth_max);
  // Drops work not yet started (destroying it on the calling thread) and waits for the work in
  // progress to finish.
  ~BackgroundWorker();

  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;

  // Queues `work`; false if queue_depth_max items are already waiting. Thread-safe.
  bool TrySubmit(absl::AnyInvocable<void()> work);

 private:
  void ThreadMain();

  const std::string name_;
  const size_t queue_depth_max_;
  std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<absl::AnyInvocable<void()>> queue_;  // guarded by mutex_
  bool stopping_ = false;                         // guarded by mutex_
  std::thread thread_;                            // last: started after the fields it reads
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_BACKGROUND_WORKER_H_
