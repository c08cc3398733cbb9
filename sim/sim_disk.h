// The simulated disk: one node's storage, with the durability behaviour broker/env/disk.h promises
// and every fault that contract allows, driven by the simulator's fault stream.
//
// SimDiskStorage is the node's storage medium. The simulator owns it and keeps it across the node's
// crashes; each incarnation of the node sees it through a Disk view (OpenView). The storage keeps
// what is volatile (the page cache: current file contents and directory entries) apart from what is
// durable (what completed Sync and SyncDirectory calls wrote through), and a Crash() rebuilds the
// volatile state from the durable one plus a fault-chosen part of the unsynced changes.
//
// Model, in the terms of a real file system:
// - Files and directories are inodes. A directory maps names to inodes twice: its volatile entries
//   (what List and Open see) and its durable entries (what a crash falls back to). SyncDirectory(d)
//   copies d's volatile entries, as they were when it was called, into its durable entries. After a
//   crash, the namespace is what can be reached from the root through durable entries, so a
//   directory whose own creation was never synced in its parent is lost with everything in it.
// - A file inode has volatile contents and durable contents. Sync() makes durable the contents as
//   they were when Sync() was called; a write after the call is not covered by it.
// - Rename() moves files only (disk.h: "Renames a file"); a directory never moves, which keeps the
//   durable namespace a tree. Renaming a directory fails with kFailedPrecondition.
// - A crash may leave one file under two names: a rename whose target directory was synced but
//   whose source directory was not (the contract lets a crash undo each entry change
//   independently). Both names then refer to the same inode, as hard links do.
//
// Error codes follow absl::ErrnoToStatusCode where a POSIX errno exists (ENOENT kNotFound, EEXIST
// kAlreadyExists, EISDIR/ENOTDIR/ENOTEMPTY kFailedPrecondition, ENOSPC kResourceExhausted), so the
// simulated and the real disk fail alike. Injected I/O errors are kUnavailable. A file may not grow
// past kFileBytesMax (kResourceExhausted). Removing the root is kInvalidArgument.
//
// Trace (time = SimContext::NowUs(), node = the storage's node, subject = the path as the caller
// gave it): DISK_SYNC for each completed Sync (bytes = durable file size, detail "file") or
// SyncDirectory (bytes = durable entry count, detail "directory"); DISK_ERROR for each injected
// fault and each refused growth (bytes = bytes involved, detail "injected write error", "injected
// read error", "injected sync error", "injected read corruption" (value = file offset of the
// damaged byte), "injected disk full" or "disk capacity reached"); DISK_CRASH_LOSS as Crash() says.
//
// Determinism: every fault decision draws from SimContext::FaultRandom(), in an order fixed by the
// calls made (a crash visits files in path order); nothing iterates a hash container. All calls
// run on the simulator's one thread.
#ifndef RUNNEL_SIM_SIM_DISK_H_
#define RUNNEL_SIM_SIM_DISK_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/disk.h"
#include "broker/env/env.h"
#include "sim/sim_context.h"

namespace runnel::sim {

// How a crash treats a file's unsynced changes.
enum class CrashLossMode {
  // Every unsynced change is lost: the file holds exactly its durable contents.
  kLoseAll,
  // The file's dirty bytes were written back in offset order up to a random point: its length
  // becomes a random value between its durable and its volatile length, and every byte below that
  // length is the volatile (newest) byte, or the durable one past the volatile length.
  kPrefix,
  // Each sector that differs between the durable and the volatile contents is independently old or
  // new, and the length is either the durable or the volatile one. Past the durable length the
  // "old" contents of a sector are zeros, so a torn append can leave zero-filled holes.
  kTorn,
};

// "lose_all", "prefix" or "torn": the detail of DISK_CRASH_LOSS trace events.
absl::string_view CrashLossModeName(CrashLossMode mode);

// Knobs of one simulated disk. The simulator may change them at any time through
// SimDiskStorage::options(); each call reads them when it runs.
struct SimDiskOptions {
  // Total volatile file bytes the disk holds; growth past it fails with kResourceExhausted.
  uint64_t capacity_bytes = uint64_t{1} << 30;
  // A Sync or SyncDirectory completes after a latency drawn uniformly from [min, max].
  int64_t sync_latency_us_min = 100;
  int64_t sync_latency_us_max = 2000;
  // Per WriteAt/Append/Truncate call: it fails with kUnavailable and changes nothing.
  double write_error_probability = 0.0;
  // Per ReadAt call: it fails with kUnavailable.
  double read_error_probability = 0.0;
  // Per Sync/SyncDirectory call: it completes with kUnavailable and makes nothing new durable.
  double sync_error_probability = 0.0;
  // Per ReadAt call that returns at least one byte: one random bit of the returned buffer is
  // flipped. The stored bytes stay intact, as with a bad transfer or a bad cache line.
  double read_corruption_probability = 0.0;
  // Relative weights of the crash loss modes, drawn per file with unsynced changes at each crash.
  // All zero means kLoseAll.
  uint32_t crash_lose_all_weight = 1;
  uint32_t crash_prefix_weight = 1;
  uint32_t crash_torn_weight = 1;
  // The granularity of torn writes.
  uint64_t sector_bytes = 512;
};

class SimDiskStorage {
 public:
  // The largest size a file may reach. The simulator keeps files small; this catches runaway
  // writes and keeps offset arithmetic far from overflow.
  static constexpr uint64_t kFileBytesMax = uint64_t{1} << 30;

  // `context` must outlive the storage. The disk starts empty: only the root directory, durable.
  SimDiskStorage(SimContext& context, NodeId node, SimDiskOptions options);
  // Views and file handles may outlive the storage: afterwards they fail every call with
  // kFailedPrecondition, and destroying them is safe.
  ~SimDiskStorage();

  SimDiskStorage(const SimDiskStorage&) = delete;
  SimDiskStorage& operator=(const SimDiskStorage&) = delete;

  // The Disk for incarnation `incarnation` of the node. Sync and SyncDirectory completions are
  // scheduled with SimContext::ScheduleForNode(node, incarnation, ...). The view and every File it
  // opens stay usable until the next Crash() or ProcessCrash(); after it they fail every call with
  // kFailedPrecondition, Exists() says false, and Sync/SyncDirectory drop their callback unrun (a
  // dead incarnation never sees a callback). Destroying them stays safe, even after the storage.
  std::unique_ptr<Disk> OpenView(uint64_t incarnation);

  // Power loss. Every earlier view and file handle dies and pending Sync completions are dropped.
  // The namespace reverts to the durable one; each file reachable in it keeps its durable contents
  // plus part of its unsynced changes, in a CrashLossMode drawn per file by the options' weights.
  // What the crash leaves is on the medium, so it is durable from then on. Records DISK_CRASH_LOSS
  // (subject = path, bytes = bytes that differ from the volatile contents, detail = mode name) per
  // file that lost something, and one per directory whose unsynced entry changes were undone
  // (bytes = number of names affected, detail = "directory entries").
  void Crash();
  // Crash() with `mode` for every file, for tests.
  void CrashWithMode(CrashLossMode mode);
  // The node's process died (or stopped) but the machine did not: every view and file handle of
  // the old epoch dies and pending Sync completions are dropped, as in Crash(), but the page cache
  // survives, so nothing is lost. Changes that were not yet durable stay volatile; a later Sync or
  // SyncDirectory covers them, and a later Crash() may still lose them.
  void ProcessCrash();

  // Run-time fault controls.
  SimDiskOptions& options() { return options_; }
  const SimDiskOptions& options() const { return options_; }
  // While set, every call that would grow a file fails with kResourceExhausted.
  void SetFull(bool full) { full_ = full; }
  bool full() const { return full_; }
  // One-shot faults: the next WriteAt/Append/Truncate fails with kUnavailable; the next
  // Sync/SyncDirectory completes with kUnavailable; the next ReadAt that returns data has one bit
  // flipped. Each stays armed until a call consumes it, across crashes too.
  void FailNextWrite() { fail_next_write_ = true; }
  void FailNextSync() { fail_next_sync_ = true; }
  void CorruptNextRead() { corrupt_next_read_ = true; }

  // Inspection, for tests and reports; no fault applies and nothing is drawn.
  NodeId node() const { return node_; }
  // How many crashes this storage went through.
  uint64_t crash_count() const { return crash_count_; }
  // Total volatile bytes of every file the disk still holds (including removed files that are
  // still open or still durably named).
  uint64_t UsedBytes() const { return used_bytes_; }
  // A file's contents as a crash with kLoseAll would leave them, looked up in the durable
  // namespace; or its current contents, looked up in the volatile namespace. kNotFound when no
  // such file, kFailedPrecondition for a directory, kInvalidArgument for a bad path.
  absl::StatusOr<std::string> DurableContents(absl::string_view path) const;
  absl::StatusOr<std::string> VolatileContents(absl::string_view path) const;
  // Every file and directory path of the durable (reachable after a crash) or of the volatile
  // namespace, sorted, without the root.
  std::vector<std::string> DurablePaths() const;
  std::vector<std::string> VolatilePaths() const;
  // Bytes Sync() calls have copied into snapshots so far: the cost model's witness, which stays
  // proportional to the bytes changed (not to file sizes) for append-and-sync workloads.
  uint64_t SnapshotBytesCopied() const { return snapshot_bytes_copied_; }
  // Checks every internal invariant with assert; costs time proportional to all stored bytes.
  void CheckInvariants() const;

 private:
  class View;
  class FileHandle;

  using InodeId = uint64_t;
  static constexpr InodeId kRootInode = 1;
  static constexpr uint64_t kNotDirty = UINT64_MAX;

  // Shared by the storage and every view, handle and scheduled completion of one epoch (the time
  // between two crashes). `storage` is cleared by a crash or by the storage's destructor, which is
  // how everything of an earlier epoch knows it is dead without touching freed memory.
  struct Epoch {
    SimDiskStorage* storage;
  };

  // What changed between two consecutive Sync() snapshots of a file: the file then had
  // `size_bytes` bytes, and only [offset, size_bytes) may differ from the previous snapshot, whose
  // size was at least `offset`. Appends make small deltas, which keeps append-and-sync linear.
  struct FileDelta {
    uint64_t version;
    uint64_t size_bytes;
    uint64_t offset;
    std::string bytes;  // the contents [offset, size_bytes)
  };

  struct Inode {
    bool is_directory = false;

    // Files. Every change increments `version`; Sync() takes a snapshot of the current version
    // (as a delta from the previous snapshot), and a completed Sync() applies the deltas up to its
    // snapshot to `durable_data`. durable_version <= snapshot_version <= version.
    std::string data;
    std::string durable_data;
    uint64_t version = 0;
    uint64_t snapshot_version = 0;
    uint64_t durable_version = 0;
    // The lowest offset changed since the newest snapshot, or kNotDirty.
    uint64_t dirty_from = kNotDirty;
    // Snapshots taken but not yet durable, oldest first, with increasing versions.
    std::deque<FileDelta> pending_deltas;

    // Directories: name -> inode, as seen now and as a crash would leave it.
    std::map<std::string, InodeId> entries;
    std::map<std::string, InodeId> durable_entries;
    // The sequence number of the SyncDirectory snapshot durable_entries holds, so that an older
    // snapshot completing later does not undo a newer one.
    uint64_t durable_entries_sequence = 0;

    // References. An inode lives while any is positive: names in volatile entries, names in
    // durable entries, and pins (open handles and pending syncs).
    int64_t links = 0;
    int64_t durable_links = 0;
    int64_t pins = 0;
  };

  // Where a path's last component lives.
  struct ParentAndName {
    InodeId parent;
    std::string name;
  };

  // Namespace operations behind View.
  absl::StatusOr<std::unique_ptr<File>> OpenFile(absl::string_view path, OpenMode mode,
                                                 uint64_t incarnation);
  absl::Status CreateDirectory(absl::string_view path);
  absl::Status Rename(absl::string_view from, absl::string_view to);
  absl::Status Remove(absl::string_view path);
  absl::StatusOr<std::vector<std::string>> List(absl::string_view directory) const;
  bool Exists(absl::string_view path) const;
  void SyncDirectory(absl::string_view directory, uint64_t incarnation, SyncCallback done);

  // File operations behind FileHandle.
  absl::Status WriteFile(InodeId id, const std::string& path, uint64_t offset,
                         absl::string_view bytes);
  absl::StatusOr<uint64_t> AppendFile(InodeId id, const std::string& path, absl::string_view bytes);
  absl::StatusOr<size_t> ReadFile(InodeId id, const std::string& path, uint64_t offset,
                                  absl::Span<char> buffer);
  uint64_t FileSize(InodeId id) const;
  absl::Status TruncateFile(InodeId id, const std::string& path, uint64_t size_bytes);
  void SyncFile(InodeId id, const std::string& path, uint64_t incarnation, SyncCallback done);
  void CompleteFileSync(InodeId id, const std::string& path, uint64_t target_version, bool failed,
                        SyncCallback done);
  void CompleteDirectorySync(InodeId id, const std::string& path, uint64_t sequence,
                             std::map<std::string, InodeId> snapshot, bool failed,
                             SyncCallback done);

  // Path resolution through volatile (`durable` false) or durable entries.
  absl::StatusOr<InodeId> Resolve(absl::string_view path, bool durable) const;
  absl::StatusOr<ParentAndName> ResolveParent(absl::string_view path) const;

  Inode& Get(InodeId id);
  const Inode& Get(InodeId id) const;
  InodeId NewInode(bool is_directory);
  // Volatile entry changes, keeping `links` counts.
  void Link(InodeId directory, const std::string& name, InodeId child);
  void Unlink(InodeId directory, const std::string& name);
  void SetDurableEntries(InodeId directory, std::map<std::string, InodeId> entries);
  void Pin(InodeId id);
  void Unpin(InodeId id);
  // Frees `id` if nothing refers to it any more, and then whatever only it referred to.
  void MaybeCollect(InodeId id);

  // Fault decisions, each drawing from the fault stream only when its probability is strictly
  // between 0 and 1. An injected fault is recorded as DISK_ERROR.
  bool DrawWriteFault(const std::string& path, uint64_t bytes);
  // Checks that a file may grow by `growth_bytes` (disk full, capacity).
  absl::Status ReserveGrowth(const std::string& path, uint64_t growth_bytes);
  void ResizeData(Inode& inode, uint64_t size_bytes);
  static void MarkDirty(Inode& inode, uint64_t offset);
  // Takes a snapshot for a Sync() call and returns the version it makes durable.
  uint64_t TakeSnapshot(Inode& inode);
  static void ApplyDeltasThrough(Inode& inode, uint64_t target_version);
  // The lowest offset at which durable and volatile contents may differ.
  static uint64_t LowestUnsyncedOffset(const Inode& inode);
  int64_t DrawSyncLatencyUs();
  bool DrawSyncFault();

  // Ends the current epoch: every view, handle and pending completion of it dies.
  void EndEpoch();
  void CrashImpl(std::optional<CrashLossMode> forced_mode);
  void CrashDirectory(InodeId id, const std::string& path, std::optional<CrashLossMode> forced_mode,
                      std::map<InodeId, int64_t>& reached_links);
  void CrashFile(Inode& inode, const std::string& path, std::optional<CrashLossMode> forced_mode);
  CrashLossMode DrawCrashLossMode();

  void CollectPaths(InodeId directory, const std::string& prefix, bool durable,
                    std::vector<std::string>& paths) const;
  void Record(TraceKind kind, absl::string_view subject, uint64_t bytes, absl::string_view detail,
              int64_t value = 0);

  SimContext& context_;
  const NodeId node_;
  SimDiskOptions options_;
  std::shared_ptr<Epoch> epoch_;
  uint64_t crash_count_ = 0;
  // Ordered by id, so that anything iterating it is deterministic. std::map keeps references to
  // inodes valid while others are added or erased.
  std::map<InodeId, Inode> inodes_;
  InodeId next_inode_id_ = kRootInode + 1;
  uint64_t next_directory_sync_sequence_ = 1;
  uint64_t used_bytes_ = 0;
  uint64_t snapshot_bytes_copied_ = 0;
  bool full_ = false;
  bool fail_next_write_ = false;
  bool fail_next_sync_ = false;
  bool corrupt_next_read_ = false;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SIM_DISK_H_
