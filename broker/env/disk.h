// The broker's disk: one node's data directory, addressed by relative paths such as
// "orders-0/00000000000000000000.log" ('/'-separated, no empty, "." or ".." components).
//
// Durability contract (what survives a crash or power loss):
// - File contents: bytes written by WriteAt/Append and sizes set by Truncate are volatile until a
//   Sync() of that file completes with OK. A crash may lose any unsynced change: all of them, a
//   prefix of the appended bytes, or individual 512-byte sectors (a "torn" write), in any mix.
//   Synced data is never lost, but a later read may still fail or return flipped bits: readers
//   must verify checksums.
// - Directory entries: creating, renaming and removing files and directories are volatile until a
//   SyncDirectory() of the parent directory completes with OK. A crash may undo any unsynced entry
//   change independently of the others. Rename() is atomic: after a crash the target name refers to
//   either the old or the new file, never to a mix.
// - A failed Sync() (kUnavailable) leaves the file's durable state unknown: the caller must treat
//   every unsynced change as possibly lost and must not retry as if nothing happened.
//
// Error codes: kNotFound (no such path), kAlreadyExists, kInvalidArgument (bad path),
// kResourceExhausted (disk full), kUnavailable (I/O error), kFailedPrecondition (e.g. directory not
// empty, or a file handle used after its disk's node crashed).
//
// Every call returns at once except Sync() and SyncDirectory(), which complete through a callback on
// the node's event loop. If the node crashes first, that callback never runs.
#ifndef RUNNEL_BROKER_ENV_DISK_H_
#define RUNNEL_BROKER_ENV_DISK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace runnel {

using SyncCallback = absl::AnyInvocable<void(const absl::Status&)>;

class File {
 public:
  virtual ~File() = default;

  // Writes `data` at `offset`, extending the file (with zero bytes in any gap) if needed.
  virtual absl::Status WriteAt(uint64_t offset, absl::string_view data) = 0;
  // Writes `data` at the current end of the file and returns the offset where it starts.
  virtual absl::StatusOr<uint64_t> Append(absl::string_view data) = 0;
  // Reads up to buffer.size() bytes at `offset` into `buffer`; returns how many were read, which is
  // less than asked only at the end of the file (zero at or past it).
  virtual absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> buffer) = 0;
  // The current (volatile) size.
  virtual absl::StatusOr<uint64_t> Size() const = 0;
  // Sets the size, cutting or zero-extending the contents.
  virtual absl::Status Truncate(uint64_t size) = 0;
  // Makes the file's contents and size durable; `done` runs when they are, or with the error.
  virtual void Sync(SyncCallback done) = 0;
  // Asks for the written bytes of [offset, offset + length) to start on their way to the device,
  // and returns without waiting for them. A hint for a writer that syncs late or never: the device
  // then writes while the writer works, so a later Sync() has less left to do and unsynced bytes do
  // not pile up in memory. It makes nothing durable (only Sync() does), changes no contents, may be
  // dropped, and reports no error (a failed device write shows at the next Sync()). A disk with no
  // write-back cache of its own, such as the simulator's, has nothing to start: the default does
  // nothing.
  virtual void StartWriteback(uint64_t offset, uint64_t length) {
    static_cast<void>(offset);
    static_cast<void>(length);
  }

  virtual const std::string& path() const = 0;
};

enum class OpenMode {
  kExisting,         // the file must exist
  kCreate,           // create if missing, keep the contents if present
  kCreateExclusive,  // the file must not exist yet
};

class Disk {
 public:
  virtual ~Disk() = default;

  // Opens a file for reading and writing. Its parent directory must exist.
  virtual absl::StatusOr<std::unique_ptr<File>> Open(absl::string_view path, OpenMode mode) = 0;
  // Creates a directory; its parent must exist. An existing directory is not an error.
  virtual absl::Status CreateDirectory(absl::string_view path) = 0;
  // Renames a file, atomically replacing any file at `to`.
  virtual absl::Status Rename(absl::string_view from, absl::string_view to) = 0;
  // Removes a file or an empty directory. Open handles to a removed file stay usable.
  virtual absl::Status Remove(absl::string_view path) = 0;
  // The names (not paths) of the entries directly inside `directory` ("" is the root), sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(absl::string_view directory) const = 0;
  virtual bool Exists(absl::string_view path) const = 0;
  // Makes the directory's entries (creations, renames, removals inside it) durable.
  virtual void SyncDirectory(absl::string_view directory, SyncCallback done) = 0;
};

// Checks that `path` is a relative path of the form the Disk accepts.
absl::Status ValidateDiskPath(absl::string_view path);
// The directory part of a path: "a/b/c" -> "a/b", "c" -> "".
absl::string_view ParentDirectory(absl::string_view path);

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_DISK_H_
