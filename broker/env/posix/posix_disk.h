// PosixDisk: the real Disk of one node, a data directory on the local file system.
//
// Beyond disk.h:
// - Every path is resolved relative to a descriptor of the data directory (the *at() calls), so the
//   process's working directory does not matter.
// - File contents and sizes go straight to the kernel (pwrite, pread, ftruncate); Size() and Append()
//   ask the kernel for the current size, so several handles to one file see each other's writes.
// - Sync() runs fdatasync and SyncDirectory() fsync on a background thread (see SyncQueue); the loop
//   never waits for the disk.
// - After the PosixDisk is destroyed, its File handles fail every call with kFailedPrecondition and
//   their Sync() callbacks never run.
// - Every call must be made on the loop thread.
#ifndef RUNNEL_BROKER_ENV_POSIX_POSIX_DISK_H_
#define RUNNEL_BROKER_ENV_POSIX_POSIX_DISK_H_

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/disk.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/scoped_fd.h"
#include "broker/env/posix/sync_queue.h"

namespace runnel {

class PosixDisk final : public Disk {
 public:
  // List() refuses directories with more entries (kResourceExhausted): no broker directory comes
  // close, and the result must fit in memory.
  static constexpr size_t kListEntriesMax = size_t{1} << 20;
  static constexpr mode_t kFileMode = 0644;
  static constexpr mode_t kDirectoryMode = 0755;

  // Uses `root` as the data directory, creating it (and missing parents) if needed. `loop` must
  // outlive the disk.
  static absl::StatusOr<std::unique_ptr<PosixDisk>> Create(EventLoop& loop, std::string root);
  ~PosixDisk() override;

  PosixDisk(const PosixDisk&) = delete;
  PosixDisk& operator=(const PosixDisk&) = delete;

  absl::StatusOr<std::unique_ptr<File>> Open(absl::string_view path, OpenMode mode) override;
  absl::Status CreateDirectory(absl::string_view path) override;
  absl::Status Rename(absl::string_view from, absl::string_view to) override;
  absl::Status Remove(absl::string_view path) override;
  absl::StatusOr<std::vector<std::string>> List(absl::string_view directory) const override;
  bool Exists(absl::string_view path) const override;
  void SyncDirectory(absl::string_view directory, SyncCallback done) override;

  const std::string& root() const { return root_; }
  size_t syncs_pending() const { return sync_queue_->syncs_pending(); }

 private:
  PosixDisk(EventLoop& loop, std::string root, ScopedFd root_fd);

  std::string root_;
  ScopedFd root_fd_;
  // Shared with the File handles, which hold it weakly to notice that the disk is gone.
  std::shared_ptr<SyncQueue> sync_queue_;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_POSIX_DISK_H_
