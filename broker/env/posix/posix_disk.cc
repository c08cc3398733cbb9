#include "broker/env/posix/posix_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/env/posix/errno_status.h"

namespace runnel {
namespace {

// File offsets and sizes must fit in off_t.
constexpr uint64_t kFileBytesMax = static_cast<uint64_t>(std::numeric_limits<off_t>::max());

// The *at() spelling of a disk path: "" (the root) is ".".
const char* AtPath(const std::string& path) { return path.empty() ? "." : path.c_str(); }

std::string Quoted(absl::string_view path) { return absl::StrCat("'", path, "'"); }

absl::Status FileGone(absl::string_view operation, absl::string_view path) {
  return absl::FailedPreconditionError(
      absl::StrCat(operation, " ", Quoted(path), ": the file's disk no longer exists"));
}

class PosixFile final : public File {
 public:
  PosixFile(std::weak_ptr<SyncQueue> sync_queue, std::shared_ptr<SyncQueue::Target> target)
      : sync_queue_(std::move(sync_queue)), target_(std::move(target)) {}

  absl::Status WriteAt(uint64_t offset, absl::string_view data) override {
    if (sync_queue_.expired()) return FileGone("write", path());
    if (offset > kFileBytesMax || data.size() > kFileBytesMax - offset) {
      return absl::InvalidArgumentError(absl::StrCat("write ", Quoted(path()), " at ", offset,
                                                     ": ", data.size(),
                                                     " bytes would end past the largest offset"));
    }
    while (!data.empty()) {
      const ssize_t written =
          pwrite(fd(), data.data(), data.size(), static_cast<off_t>(offset));
      if (written < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, absl::StrCat("write ", Quoted(path()), " at ", offset));
      }
      if (written == 0) {
        return absl::UnavailableError(
            absl::StrCat("write ", Quoted(path()), " at ", offset, ": no progress"));
      }
      data.remove_prefix(static_cast<size_t>(written));
      offset += static_cast<uint64_t>(written);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Append(absl::string_view data) override {
    // The size comes from the kernel rather than a cached end, so that appends through another
    // handle to the same file are not overwritten.
    absl::StatusOr<uint64_t> end = Size();
    if (!end.ok()) return end.status();
    if (absl::Status status = WriteAt(*end, data); !status.ok()) return status;
    return *end;
  }

  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> buffer) override {
    if (sync_queue_.expired()) return FileGone("read", path());
    size_t filled = 0;
    while (filled < buffer.size() && offset <= kFileBytesMax) {
      const ssize_t count = pread(fd(), buffer.data() + filled, buffer.size() - filled,
                                  static_cast<off_t>(offset));
      if (count < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, absl::StrCat("read ", Quoted(path()), " at ", offset));
      }
      if (count == 0) break;  // end of file
      filled += static_cast<size_t>(count);
      offset += static_cast<uint64_t>(count);
    }
    return filled;
  }

  absl::StatusOr<uint64_t> Size() const override {
    if (sync_queue_.expired()) return FileGone("size of", path());
    struct stat status;
    if (fstat(fd(), &status) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("size of ", Quoted(path())));
    }
    return static_cast<uint64_t>(status.st_size);
  }

  absl::Status Truncate(uint64_t size) override {
    if (sync_queue_.expired()) return FileGone("truncate", path());
    if (size > kFileBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("truncate ", Quoted(path()), " to ", size, ": larger than a file can be"));
    }
    int result;
    do {
      result = ftruncate(fd(), static_cast<off_t>(size));
    } while (result != 0 && errno == EINTR);
    if (result != 0) {
      return ErrnoToStatus(errno, absl::StrCat("truncate ", Quoted(path()), " to ", size));
    }
    return absl::OkStatus();
  }

  void Sync(SyncCallback done) override {
    std::shared_ptr<SyncQueue> sync_queue = sync_queue_.lock();
    // The node is gone: by contract its callback never runs.
    if (sync_queue == nullptr) return;
    sync_queue->Submit(target_, std::move(done));
  }

  void StartWriteback(uint64_t offset, uint64_t length) override {
    std::shared_ptr<SyncQueue> sync_queue = sync_queue_.lock();
    if (sync_queue == nullptr) return;
    sync_queue->StartWriteback(target_, offset, length);
  }

  const std::string& path() const override { return target_->path; }

 private:
  int fd() const { return target_->fd.get(); }

  std::weak_ptr<SyncQueue> sync_queue_;
  // Shared with queued syncs: the descriptor closes when the handle and every sync of it are done.
  std::shared_ptr<SyncQueue::Target> target_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PosixDisk>> PosixDisk::Create(EventLoop& loop, std::string root) {
  if (root.empty()) return absl::InvalidArgumentError("data directory path is empty");
  std::error_code error;
  std::filesystem::create_directories(root, error);
  if (error) {
    return ErrnoToStatus(error.value(), absl::StrCat("create data directory ", Quoted(root)));
  }
  ScopedFd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) {
    return ErrnoToStatus(errno, absl::StrCat("open data directory ", Quoted(root)));
  }
  return std::unique_ptr<PosixDisk>(new PosixDisk(loop, std::move(root), std::move(root_fd)));
}

PosixDisk::PosixDisk(EventLoop& loop, std::string root, ScopedFd root_fd)
    : root_(std::move(root)),
      root_fd_(std::move(root_fd)),
      sync_queue_(std::make_shared<SyncQueue>(loop)) {}

PosixDisk::~PosixDisk() = default;

absl::StatusOr<std::unique_ptr<File>> PosixDisk::Open(absl::string_view path, OpenMode mode) {
  if (absl::Status status = ValidateDiskPath(path); !status.ok()) return status;
  if (path.empty()) return absl::InvalidArgumentError("open '': the root is not a file");
  int flags = O_RDWR | O_CLOEXEC;
  switch (mode) {
    case OpenMode::kExisting:
      break;
    case OpenMode::kCreate:
      flags |= O_CREAT;
      break;
    case OpenMode::kCreateExclusive:
      flags |= O_CREAT | O_EXCL;
      break;
  }
  auto target = std::make_shared<SyncQueue::Target>();
  target->path = std::string(path);
  const std::string what = absl::StrCat("open ", Quoted(path));
  int fd;
  do {
    fd = openat(root_fd_.get(), target->path.c_str(), flags, kFileMode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoToStatus(errno, what);
  target->fd.Reset(fd);
  struct stat status;
  if (fstat(fd, &status) != 0) return ErrnoToStatus(errno, what);
  if (!S_ISREG(status.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": not a regular file"));
  }
  return std::unique_ptr<File>(new PosixFile(sync_queue_, std::move(target)));
}

absl::Status PosixDisk::CreateDirectory(absl::string_view path) {
  if (absl::Status status = ValidateDiskPath(path); !status.ok()) return status;
  if (path.empty()) return absl::OkStatus();  // the root exists
  const std::string path_string(path);
  if (mkdirat(root_fd_.get(), path_string.c_str(), kDirectoryMode) == 0) return absl::OkStatus();
  const int error = errno;
  if (error == EEXIST) {
    struct stat status;
    if (fstatat(root_fd_.get(), path_string.c_str(), &status, 0) == 0 && S_ISDIR(status.st_mode)) {
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError(
        absl::StrCat("create directory ", Quoted(path), ": exists and is not a directory"));
  }
  return ErrnoToStatus(error, absl::StrCat("create directory ", Quoted(path)));
}

absl::Status PosixDisk::Rename(absl::string_view from, absl::string_view to) {
  if (absl::Status status = ValidateDiskPath(from); !status.ok()) return status;
  if (absl::Status status = ValidateDiskPath(to); !status.ok()) return status;
  const std::string what = absl::StrCat("rename ", Quoted(from), " to ", Quoted(to));
  if (from.empty() || to.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the root cannot be renamed"));
  }
  const std::string from_string(from);
  const std::string to_string(to);
  if (renameat(root_fd_.get(), from_string.c_str(), root_fd_.get(), to_string.c_str()) == 0) {
    return absl::OkStatus();
  }
  const int error = errno;
  // POSIX allows EEXIST as well as ENOTEMPTY for a non-empty target directory.
  if (error == EEXIST || error == ENOTEMPTY) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": target is a non-empty directory"));
  }
  return ErrnoToStatus(error, what);
}

absl::Status PosixDisk::Remove(absl::string_view path) {
  if (absl::Status status = ValidateDiskPath(path); !status.ok()) return status;
  const std::string what = absl::StrCat("remove ", Quoted(path));
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot remove the root"));
  const std::string path_string(path);
  if (unlinkat(root_fd_.get(), path_string.c_str(), 0) == 0) return absl::OkStatus();
  int error = errno;
  // unlink(2) refuses directories with EISDIR on Linux (EPERM elsewhere): try rmdir's variant.
  if (error == EISDIR || error == EPERM) {
    struct stat status;
    if (fstatat(root_fd_.get(), path_string.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(status.st_mode)) {
      if (unlinkat(root_fd_.get(), path_string.c_str(), AT_REMOVEDIR) == 0) {
        return absl::OkStatus();
      }
      error = errno;
    }
  }
  if (error == EEXIST || error == ENOTEMPTY) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": directory not empty"));
  }
  return ErrnoToStatus(error, what);
}

absl::StatusOr<std::vector<std::string>> PosixDisk::List(absl::string_view directory) const {
  if (absl::Status status = ValidateDiskPath(directory); !status.ok()) return status;
  const std::string directory_string(directory);
  const std::string what = absl::StrCat("list ", Quoted(directory));
  const int fd =
      openat(root_fd_.get(), AtPath(directory_string), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, what);
  DIR* stream = fdopendir(fd);
  if (stream == nullptr) {
    const int error = errno;
    close(fd);
    return ErrnoToStatus(error, what);
  }
  // closedir() also closes `fd`.
  std::unique_ptr<DIR, int (*)(DIR*)> stream_owner(stream, &closedir);
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    const dirent* entry = readdir(stream);
    if (entry == nullptr) {
      if (errno != 0) return ErrnoToStatus(errno, what);
      break;
    }
    const absl::string_view name(entry->d_name);
    if (name == "." || name == "..") continue;
    if (names.size() >= kListEntriesMax) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what, ": more than ", kListEntriesMax, " entries"));
    }
    names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool PosixDisk::Exists(absl::string_view path) const {
  if (!ValidateDiskPath(path).ok()) return false;
  const std::string path_string(path);
  struct stat status;
  return fstatat(root_fd_.get(), AtPath(path_string), &status, 0) == 0;
}

void PosixDisk::SyncDirectory(absl::string_view directory, SyncCallback done) {
  if (absl::Status status = ValidateDiskPath(directory); !status.ok()) {
    sync_queue_->Reject(std::move(status), std::move(done));
    return;
  }
  auto target = std::make_shared<SyncQueue::Target>();
  target->directory = true;
  target->path = std::string(directory);
  // Opening is a quick metadata lookup; only the fsync itself goes to the worker.
  target->fd.Reset(
      openat(root_fd_.get(), AtPath(target->path), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!target->fd.valid()) {
    sync_queue_->Reject(ErrnoToStatus(errno, absl::StrCat("sync directory ", Quoted(directory))),
                        std::move(done));
    return;
  }
  sync_queue_->Submit(std::move(target), std::move(done));
}

}  // namespace runnel
