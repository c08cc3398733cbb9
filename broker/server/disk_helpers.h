// Small synchronous helpers over the Disk interface (broker/env/disk.h) that the server needs:
// reading a whole small file and removing a directory tree. Neither makes anything durable; the
// caller syncs the parent directory when the change must survive a crash.
#ifndef RUNNEL_BROKER_SERVER_DISK_HELPERS_H_
#define RUNNEL_BROKER_SERVER_DISK_HELPERS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/disk.h"

namespace runnel::server {

// The deepest directory tree RemoveTree descends into. Partition directories hold only files, so
// the server never needs more than two levels; the bound keeps the recursion finite.
inline constexpr int kRemoveTreeDepthMax = 8;

// The contents of the file at `path` (its current, volatile state). kNotFound when missing,
// kResourceExhausted when larger than `bytes_max`, or the Disk's error.
absl::StatusOr<std::string> ReadWholeFile(Disk& disk, absl::string_view path, uint64_t bytes_max);

// Removes the file or directory at `path` and, for a directory, everything in it, deepest first.
// OK when nothing is there. kFailedPrecondition when the tree is deeper than kRemoveTreeDepthMax;
// otherwise the first error of the Disk, after which part of the tree may be gone.
absl::Status RemoveTree(Disk& disk, absl::string_view path);

// The path of `name` inside `directory` ("" is the Disk's root).
std::string JoinDiskPath(absl::string_view directory, absl::string_view name);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_DISK_HELPERS_H_
