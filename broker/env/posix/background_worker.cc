#include "broker/env/posix/background_worker.h"

#include <pthread.h>
#include <signal.h>

#include <cassert>
#include <utility>

namespace runnel {
namespace {

// pthread_setname_np accepts 16 bytes including the terminating NUL.
constexpr size_t kThreadNameBytesMax = 15;

}  // namespace

BackgroundWorker::BackgroundWorker(std::string name, size_t queue_depth_max)
    : name_(std::move(name)), queue_depth_max_(queue_depth_max) {
  assert(queue_depth_max_ > 0);
  thread_ = std::thread([this] { ThreadMain(); });
}

BackgroundWorker::~BackgroundWorker() {
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  work_available_.notify_one();
  thread_.join();
  // `dropped` is destroyed here, on the owner's thread, which is where its captures came from.
}

bool BackgroundWorker::TrySubmit(absl::AnyInvocable<void()> work) {
  assert(work);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || queue_.size() >= queue_depth_max_) return false;
    queue_.push_back(std::move(work));
  }
  work_available_.notify_one();
  return true;
}

void BackgroundWorker::ThreadMain() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), name_.substr(0, kThreadNameBytesMax).c_str());

  while (true) {
    absl::AnyInvocable<void()> work;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_available_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work();
  }
}

}  // namespace runnel
