#include "broker/server/disk_helpers.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace runnel::server {
namespace {

absl::Status RemoveTreeAtDepth(Disk& disk, const std::string& path, int depth) {
  // A file or an empty directory goes at once. The Disks disagree on how List() refuses a file
  // (kNotFound from ENOTDIR on the real one, kFailedPrecondition in the simulator), so the
  // directory's contents are listed only after Remove() said it is a directory that is not empty.
  absl::Status removed = disk.Remove(path);
  if (removed.ok() || absl::IsNotFound(removed)) return absl::OkStatus();
  if (!absl::IsFailedPrecondition(removed)) return removed;
  absl::StatusOr<std::vector<std::string>> children = disk.List(path);
  if (!children.ok()) return children.status();
  if (depth >= kRemoveTreeDepthMax) {
    return absl::FailedPreconditionError(absl::StrCat(
        "remove '", path, "': the tree is deeper than ", kRemoveTreeDepthMax, " levels"));
  }
  for (const std::string& child : *children) {
    if (absl::Status child_removed = RemoveTreeAtDepth(disk, JoinDiskPath(path, child), depth + 1);
        !child_removed.ok()) {
      return child_removed;
    }
  }
  removed = disk.Remove(path);
  if (absl::IsNotFound(removed)) return absl::OkStatus();
  return removed;
}

}  // namespace

absl::StatusOr<std::string> ReadWholeFile(Disk& disk, absl::string_view path, uint64_t bytes_max) {
  absl::StatusOr<std::unique_ptr<File>> file = disk.Open(path, OpenMode::kExisting);
  if (!file.ok()) return file.status();
  absl::StatusOr<uint64_t> size = (*file)->Size();
  if (!size.ok()) return size.status();
  if (*size > bytes_max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("'", path, "' holds ", *size, " bytes, more than the ", bytes_max, " allowed"));
  }
  std::string contents(*size, '\0');
  size_t done = 0;
  while (done < contents.size()) {
    absl::StatusOr<size_t> read =
        (*file)->ReadAt(done, absl::Span<char>(contents.data() + done, contents.size() - done));
    if (!read.ok()) return read.status();
    // A short read means the file ended (shrank since Size()): keep what is there.
    if (*read == 0) break;
    done += *read;
  }
  contents.resize(done);
  return contents;
}

absl::Status RemoveTree(Disk& disk, absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("RemoveTree: refusing to remove the root");
  return RemoveTreeAtDepth(disk, std::string(path), 0);
}

std::string JoinDiskPath(absl::string_view directory, absl::string_view name) {
  return directory.empty() ? std::string(name) : absl::StrCat(directory, "/", name);
}

}  // namespace runnel::server
