// SyncQueue: runs fdatasync/fsync on a background thread so that the event loop never stalls on
// the disk, and reports each completion back on the loop; and starts write-back
// (File::StartWriteback) on a second one, since starting it does the work of building the device's
// write requests, which need not cost the loop's time.
//
// Contract:
// - Submit()/Reject() are called on the loop thread; `done` runs later on the loop thread, never
//   from inside the call. Completions run in submission order (one worker thread).
// - Once the SyncQueue is destroyed, no `done` runs: callbacks not yet run are destroyed on the
//   loop thread, and the destructor waits for a sync already in progress.
// - After a failed sync of a file, every later sync of the same Target fails too: Linux may drop
//   the dirty pages whose write-back failed and report success on the next fsync, so a retry could
//   claim durability that was lost.
#ifndef RUNNEL_BROKER_ENV_POSIX_SYNC_QUEUE_H_
#define RUNNEL_BROKER_ENV_POSIX_SYNC_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "broker/env/disk.h"
#include "broker/env/posix/background_worker.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/scoped_fd.h"

namespace runnel {

class SyncQueue {
 public:
  // Syncs submitted and not yet completed. Past this, Submit() fails the sync (kUnavailable)
  // instead of queueing without bound behind a stalled disk.
  static constexpr size_t kSyncsPendingMax = 4096;

  // What to sync. Shared between a File and the syncs it has queued, so that closing the file while
  // a sync waits cannot make the worker use a closed, or since reused, descriptor.
  struct Target {
    ScopedFd fd;
    // fsync(2) for directories; fdatasync(2), which skips metadata such as timestamps but not the
    // size, for files.
    bool directory = false;
    std::string path;  // for messages
    // Written by the worker thread, read by it and by the loop thread.
    std::atomic<bool> sync_failed{false};
  };

  // `loop` must outlive the queue.
  explicit SyncQueue(EventLoop& loop);
  ~SyncQueue();

  SyncQueue(const SyncQueue&) = delete;
  SyncQueue& operator=(const SyncQueue&) = delete;

  // Write-back starts waiting at most. Past this StartWriteback() drops the request: it is a hint,
  // and a disk that far behind is writing already.
  static constexpr size_t kWritebacksQueuedMax = 64;

  // Syncs `target` on the worker; `done` gets OK or kUnavailable.
  void Submit(std::shared_ptr<Target> target, SyncCallback done);
  // Starts the write-back of [offset, offset + length) of `target` (sync_file_range with
  // SYNC_FILE_RANGE_WRITE) on the write-back thread. Reports nothing: an error shows at the next
  // sync.
  void StartWriteback(std::shared_ptr<Target> target, uint64_t offset, uint64_t length);
  // Completes `done` with `status` on a later loop turn, without touching the disk.
  void Reject(absl::Status status, SyncCallback done);

  size_t syncs_pending() const { return pending_.size(); }

 private:
  // Registers `done` and returns the id its completion will carry.
  uint64_t Register(SyncCallback done);
  void PostCompletion(uint64_t sync, absl::Status status);
  void Complete(uint64_t sync, const absl::Status& status);

  EventLoop& loop_;
  // Expires with the queue; completions posted to the loop check it first.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  uint64_t sync_next_ = 1;
  absl::flat_hash_map<uint64_t, SyncCallback> pending_;
  // Its work touches only the Target it holds.
  BackgroundWorker writeback_worker_;
  // Last, so that it is destroyed (joined) first, while everything its work touches still exists.
  BackgroundWorker worker_;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_SYNC_QUEUE_H_
