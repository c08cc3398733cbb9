#include "broker/env/posix/sync_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/env/posix/errno_status.h"

namespace runnel {
namespace {

std::string Describe(const SyncQueue::Target& target) {
  return absl::StrCat(target.directory ? "sync directory '" : "sync '", target.path, "'");
}

// Runs on the worker thread.
absl::Status SyncNow(SyncQueue::Target& target) {
  if (target.sync_failed.load(std::memory_order_acquire)) {
    return absl::UnavailableError(absl::StrCat(
        Describe(target), ": an earlier sync of this file failed, so its durable state is unknown"));
  }
  int result;
  do {
    result = target.directory ? fsync(target.fd.get()) : fdatasync(target.fd.get());
  } while (result != 0 && errno == EINTR);
  if (result == 0) return absl::OkStatus();
  const int error = errno;
  target.sync_failed.store(true, std::memory_order_release);
  // Whatever the cause (EIO, ENOSPC on write-back, ...), disk.h reports a failed sync as
  // kUnavailable: the caller must treat every unsynced change as possibly lost.
  return absl::UnavailableError(absl::StrCat(Describe(target), ": ", ErrnoText(error)));
}

}  // namespace

SyncQueue::SyncQueue(EventLoop& loop)
    : loop_(loop),
      writeback_worker_("runnel-writeback", kWritebacksQueuedMax),
      worker_("runnel-sync", kSyncsPendingMax) {}

SyncQueue::~SyncQueue() = default;

void SyncQueue::Submit(std::shared_ptr<Target> target, SyncCallback done) {
  assert(target != nullptr && target->fd.valid());
  if (pending_.size() >= kSyncsPendingMax) {
    Reject(absl::UnavailableError(absl::StrCat(Describe(*target), ": more than ",
                                               kSyncsPendingMax, " syncs are already waiting")),
           std::move(done));
    return;
  }
  const uint64_t sync = Register(std::move(done));
  const bool queued = worker_.TrySubmit(
      [loop = &loop_, alive = std::weak_ptr<int>(alive_), self = this, sync,
       target = std::move(target)]() {
        absl::Status status = SyncNow(*target);
        loop->Post([alive, self, sync, status = std::move(status)]() {
          if (alive.expired()) return;
          self->Complete(sync, status);
        });
      });
  // Every queued sync is also in pending_, which is bounded by the worker's queue depth.
  assert(queued);
  static_cast<void>(queued);
}

void SyncQueue::StartWriteback(std::shared_ptr<Target> target, uint64_t offset, uint64_t length) {
  assert(target != nullptr && target->fd.valid());
  if (length == 0 || target->directory) return;
  // A full queue drops the hint (see kWritebacksQueuedMax).
  writeback_worker_.TrySubmit([target = std::move(target), offset, length]() {
    int result;
    do {
      result = sync_file_range(target->fd.get(), static_cast<off_t>(offset),
                               static_cast<off_t>(length), SYNC_FILE_RANGE_WRITE);
    } while (result != 0 && errno == EINTR);
  });
}

void SyncQueue::Reject(absl::Status status, SyncCallback done) {
  PostCompletion(Register(std::move(done)), std::move(status));
}

uint64_t SyncQueue::Register(SyncCallback done) {
  assert(done);
  const uint64_t sync = sync_next_++;
  pending_.emplace(sync, std::move(done));
  return sync;
}

void SyncQueue::PostCompletion(uint64_t sync, absl::Status status) {
  loop_.Post([alive = std::weak_ptr<int>(alive_), this, sync, status = std::move(status)]() {
    if (alive.expired()) return;
    Complete(sync, status);
  });
}

void SyncQueue::Complete(uint64_t sync, const absl::Status& status) {
  auto node = pending_.extract(sync);
  if (node.empty()) return;
  // Taken out first: the callback may submit more syncs or destroy the file.
  SyncCallback done = std::move(node.mapped());
  done(status);
}

}  // namespace runnel
