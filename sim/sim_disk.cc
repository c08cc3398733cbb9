#include "sim/sim_disk.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace runnel::sim {
namespace {

std::string JoinPath(absl::string_view directory, absl::string_view name) {
  if (directory.empty()) return std::string(name);
  return absl::StrCat(directory, "/", name);
}

absl::Status DeadHandleError() {
  return absl::FailedPreconditionError(
      "disk handle of a crashed incarnation (or of a destroyed disk): every call fails");
}

// Copies contents[start, end) into result[start, end), reading contents as if it were followed by
// zeros forever; `result` must already be zero over that range.
void CopyZeroExtended(const std::string& contents, uint64_t start, uint64_t end,
                      std::string& result) {
  assert(end <= result.size());
  if (start >= contents.size()) return;
  const uint64_t copy_end = std::min<uint64_t>(end, contents.size());
  std::memcpy(result.data() + start, contents.data() + start, copy_end - start);
}

// Whether a and b, each read as followed by zeros forever, agree over [start, end).
bool SameZeroExtended(const std::string& a, const std::string& b, uint64_t start, uint64_t end) {
  const uint64_t common_end = std::min<uint64_t>({end, a.size(), b.size()});
  if (start < common_end && std::memcmp(a.data() + start, b.data() + start, common_end - start)) {
    return false;
  }
  // Past the shorter one, the longer one must hold zeros.
  const std::string& longer = a.size() > b.size() ? a : b;
  const uint64_t tail_end = std::min<uint64_t>(end, longer.size());
  for (uint64_t i = std::max(start, common_end); i < tail_end; ++i) {
    if (longer[i] != '\0') return false;
  }
  return true;
}

// How many byte positions at or past `start` differ between a and b, a position held by only one
// of them counting as differing. Below `start` they must agree.
uint64_t CountDifferingBytes(const std::string& a, const std::string& b, uint64_t start) {
  const uint64_t common = std::min(a.size(), b.size());
  uint64_t differing = std::max(a.size(), b.size()) - common;
  for (uint64_t i = std::min(start, common); i < common; ++i) {
    if (a[i] != b[i]) ++differing;
  }
  return differing;
}

// How many names map differently (or only in one) between two directory listings.
template <typename Map>
uint64_t CountDifferingEntries(const Map& a, const Map& b) {
  uint64_t differing = 0;
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      ++differing;
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      ++differing;
      ++ib;
    } else {
      if (ia->second != ib->second) ++differing;
      ++ia;
      ++ib;
    }
  }
  return differing;
}

}  // namespace

absl::string_view CrashLossModeName(CrashLossMode mode) {
  switch (mode) {
    case CrashLossMode::kLoseAll:
      return "lose_all";
    case CrashLossMode::kPrefix:
      return "prefix";
    case CrashLossMode::kTorn:
      return "torn";
  }
  return "unknown";
}

// The Disk of one incarnation: forwards to the storage while its epoch lives.
class SimDiskStorage::View final : public Disk {
 public:
  View(std::shared_ptr<Epoch> epoch, uint64_t incarnation)
      : epoch_(std::move(epoch)), incarnation_(incarnation) {}

  absl::StatusOr<std::unique_ptr<File>> Open(absl::string_view path, OpenMode mode) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->OpenFile(path, mode, incarnation_);
  }

  absl::Status CreateDirectory(absl::string_view path) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->CreateDirectory(path);
  }

  absl::Status Rename(absl::string_view from, absl::string_view to) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->Rename(from, to);
  }

  absl::Status Remove(absl::string_view path) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->Remove(path);
  }

  absl::StatusOr<std::vector<std::string>> List(absl::string_view directory) const override {
    const SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->List(directory);
  }

  bool Exists(absl::string_view path) const override {
    const SimDiskStorage* storage = epoch_->storage;
    return storage != nullptr && storage->Exists(path);
  }

  void SyncDirectory(absl::string_view directory, SyncCallback done) override {
    SimDiskStorage* storage = epoch_->storage;
    // A dead incarnation never sees a callback run, so dropping `done` is all there is to do.
    if (storage == nullptr) return;
    storage->SyncDirectory(directory, incarnation_, std::move(done));
  }

 private:
  const std::shared_ptr<Epoch> epoch_;
  const uint64_t incarnation_;
};

// An open file: pins its inode so that it outlives removal, while its epoch lives.
class SimDiskStorage::FileHandle final : public File {
 public:
  FileHandle(std::shared_ptr<Epoch> epoch, uint64_t incarnation, InodeId inode, std::string path)
      : epoch_(std::move(epoch)),
        incarnation_(incarnation),
        inode_(inode),
        path_(std::move(path)) {}

  ~FileHandle() override {
    // After a crash the storage has already forgotten every pin of the dead epoch.
    if (SimDiskStorage* storage = epoch_->storage) storage->Unpin(inode_);
  }

  absl::Status WriteAt(uint64_t offset, absl::string_view data) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->WriteFile(inode_, path_, offset, data);
  }

  absl::StatusOr<uint64_t> Append(absl::string_view data) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->AppendFile(inode_, path_, data);
  }

  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> buffer) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->ReadFile(inode_, path_, offset, buffer);
  }

  absl::StatusOr<uint64_t> Size() const override {
    const SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->FileSize(inode_);
  }

  absl::Status Truncate(uint64_t size) override {
    SimDiskStorage* storage = epoch_->storage;
    if (storage == nullptr) return DeadHandleError();
    return storage->TruncateFile(inode_, path_, size);
  }

  void Sync(SyncCallback done) override {
    SimDiskStorage* storage = epoch_->storage;
    // As in View::SyncDirectory: the callback of a dead incarnation never runs.
    if (storage == nullptr) return;
    storage->SyncFile(inode_, path_, incarnation_, std::move(done));
  }

  const std::string& path() const override { return path_; }

 private:
  const std::shared_ptr<Epoch> epoch_;
  const uint64_t incarnation_;
  const InodeId inode_;
  const std::string path_;
};

SimDiskStorage::SimDiskStorage(SimContext& context, NodeId node, SimDiskOptions options)
    : context_(context),
      node_(node),
      options_(options),
      epoch_(std::make_shared<Epoch>(Epoch{this})) {
  assert(options_.sector_bytes > 0);
  assert(options_.sync_latency_us_min >= 0);
  assert(options_.sync_latency_us_min <= options_.sync_latency_us_max);
  Inode root;
  root.is_directory = true;
  // The root is pinned for good: it is never collected.
  root.pins = 1;
  inodes_.emplace(kRootInode, std::move(root));
}

SimDiskStorage::~SimDiskStorage() { epoch_->storage = nullptr; }

std::unique_ptr<Disk> SimDiskStorage::OpenView(uint64_t incarnation) {
  return std::make_unique<View>(epoch_, incarnation);
}

// ---- Namespace operations ----

absl::StatusOr<std::unique_ptr<File>> SimDiskStorage::OpenFile(absl::string_view path,
                                                               OpenMode mode,
                                                               uint64_t incarnation) {
  if (absl::Status valid = ValidateDiskPath(path); !valid.ok()) return valid;
  if (path.empty()) {
    return absl::FailedPreconditionError("Open: the root is a directory, not a file");
  }
  absl::StatusOr<ParentAndName> where = ResolveParent(path);
  if (!where.ok()) return where.status();
  Inode& parent = Get(where->parent);
  InodeId id;
  if (auto it = parent.entries.find(where->name); it != parent.entries.end()) {
    if (mode == OpenMode::kCreateExclusive) {
      return absl::AlreadyExistsError(absl::StrCat("Open: '", path, "' already exists"));
    }
    if (Get(it->second).is_directory) {
      return absl::FailedPreconditionError(absl::StrCat("Open: '", path, "' is a directory"));
    }
    id = it->second;
  } else {
    if (mode == OpenMode::kExisting) {
      return absl::NotFoundError(absl::StrCat("Open: no file '", path, "'"));
    }
    id = NewInode(/*is_directory=*/false);
    Link(where->parent, where->name, id);
  }
  Pin(id);
  return std::make_unique<FileHandle>(epoch_, incarnation, id, std::string(path));
}

absl::Status SimDiskStorage::CreateDirectory(absl::string_view path) {
  if (absl::Status valid = ValidateDiskPath(path); !valid.ok()) return valid;
  if (path.empty()) return absl::OkStatus();  // the root always exists
  absl::StatusOr<ParentAndName> where = ResolveParent(path);
  if (!where.ok()) return where.status();
  const Inode& parent = Get(where->parent);
  if (auto it = parent.entries.find(where->name); it != parent.entries.end()) {
    if (Get(it->second).is_directory) return absl::OkStatus();
    return absl::AlreadyExistsError(
        absl::StrCat("CreateDirectory: '", path, "' exists and is a file"));
  }
  Link(where->parent, where->name, NewInode(/*is_directory=*/true));
  return absl::OkStatus();
}

absl::Status SimDiskStorage::Rename(absl::string_view from, absl::string_view to) {
  if (absl::Status valid = ValidateDiskPath(from); !valid.ok()) return valid;
  if (absl::Status valid = ValidateDiskPath(to); !valid.ok()) return valid;
  if (from.empty()) {
    return absl::FailedPreconditionError("Rename: the root is a directory; Rename moves files");
  }
  absl::StatusOr<ParentAndName> source = ResolveParent(from);
  if (!source.ok()) return source.status();
  const Inode& source_parent = Get(source->parent);
  auto source_entry = source_parent.entries.find(source->name);
  if (source_entry == source_parent.entries.end()) {
    return absl::NotFoundError(absl::StrCat("Rename: no file '", from, "'"));
  }
  const InodeId id = source_entry->second;
  if (Get(id).is_directory) {
    // Directories never move, which keeps the durable namespace a tree (see the header).
    return absl::FailedPreconditionError(
        absl::StrCat("Rename: '", from, "' is a directory; Rename moves files only"));
  }
  if (to.empty()) return absl::FailedPreconditionError("Rename: the target '' is the root");
  absl::StatusOr<ParentAndName> target = ResolveParent(to);
  if (!target.ok()) return target.status();
  const Inode& target_parent = Get(target->parent);
  if (auto it = target_parent.entries.find(target->name); it != target_parent.entries.end()) {
    if (Get(it->second).is_directory) {
      return absl::FailedPreconditionError(
          absl::StrCat("Rename: the target '", to, "' is a directory"));
    }
    // Both names already refer to the same file (the same path, or two names a crash left):
    // POSIX rename then does nothing.
    if (it->second == id) return absl::OkStatus();
  }
  // Link first so that the file is never without a name, which would let it be collected.
  Link(target->parent, target->name, id);
  Unlink(source->parent, source->name);
  return absl::OkStatus();
}

absl::Status SimDiskStorage::Remove(absl::string_view path) {
  if (absl::Status valid = ValidateDiskPath(path); !valid.ok()) return valid;
  if (path.empty()) return absl::InvalidArgumentError("Remove: cannot remove the root directory");
  absl::StatusOr<ParentAndName> where = ResolveParent(path);
  if (!where.ok()) return where.status();
  const Inode& parent = Get(where->parent);
  auto it = parent.entries.find(where->name);
  if (it == parent.entries.end()) {
    return absl::NotFoundError(absl::StrCat("Remove: no file or directory '", path, "'"));
  }
  const Inode& inode = Get(it->second);
  if (inode.is_directory && !inode.entries.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Remove: directory '", path, "' is not empty"));
  }
  Unlink(where->parent, where->name);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SimDiskStorage::List(absl::string_view directory) const {
  if (absl::Status valid = ValidateDiskPath(directory); !valid.ok()) return valid;
  absl::StatusOr<InodeId> id = Resolve(directory, /*durable=*/false);
  if (!id.ok()) return id.status();
  const Inode& inode = Get(*id);
  if (!inode.is_directory) {
    return absl::FailedPreconditionError(absl::StrCat("List: '", directory, "' is a file"));
  }
  std::vector<std::string> names;
  names.reserve(inode.entries.size());
  for (const auto& [name, child] : inode.entries) names.push_back(name);
  return names;
}

bool SimDiskStorage::Exists(absl::string_view path) const {
  return ValidateDiskPath(path).ok() && Resolve(path, /*durable=*/false).ok();
}

void SimDiskStorage::SyncDirectory(absl::string_view directory, uint64_t incarnation,
                                   SyncCallback done) {
  const absl::Status valid = ValidateDiskPath(directory);
  absl::StatusOr<InodeId> id =
      valid.ok() ? Resolve(directory, /*durable=*/false) : absl::StatusOr<InodeId>(valid);
  if (id.ok() && !Get(*id).is_directory) {
    id = absl::FailedPreconditionError(absl::StrCat("SyncDirectory: '", directory, "' is a file"));
  }
  if (!id.ok()) {
    // Errors, too, complete on the event loop: the contract has no synchronous completion.
    context_.ScheduleForNode(
        node_, incarnation, 0,
        [epoch = epoch_, status = id.status(), done = std::move(done)]() mutable {
          if (epoch->storage == nullptr) return;
          done(status);
        });
    return;
  }
  // The entries as they are now are what this call makes durable; later changes are not covered.
  std::map<std::string, InodeId> snapshot = Get(*id).entries;
  const uint64_t sequence = next_directory_sync_sequence_++;
  const int64_t latency_us = DrawSyncLatencyUs();
  const bool failed = DrawSyncFault();
  // Pin the directory and every inode the snapshot names, so that they still exist when the
  // snapshot becomes durable even if they are removed meanwhile.
  Pin(*id);
  for (const auto& [name, child] : snapshot) Pin(child);
  context_.ScheduleForNode(
      node_, incarnation, latency_us,
      [epoch = epoch_, id = *id, path = std::string(directory), sequence,
       snapshot = std::move(snapshot), failed, done = std::move(done)]() mutable {
        SimDiskStorage* storage = epoch->storage;
        // The disk crashed since: the completion belongs to a dead incarnation.
        if (storage == nullptr) return;
        storage->CompleteDirectorySync(id, path, sequence, std::move(snapshot), failed,
                                       std::move(done));
      });
}

void SimDiskStorage::CompleteDirectorySync(InodeId id, const std::string& path, uint64_t sequence,
                                           std::map<std::string, InodeId> snapshot, bool failed,
                                           SyncCallback done) {
  absl::Status status;
  if (failed) {
    Record(DISK_ERROR, path, 0, "injected sync error");
    status = absl::UnavailableError(absl::StrCat("SyncDirectory: I/O error on '", path, "'"));
  } else {
    Inode& directory = Get(id);
    // An older snapshot completing after a newer one must not undo it.
    if (sequence > directory.durable_entries_sequence) {
      SetDurableEntries(id, snapshot);
      directory.durable_entries_sequence = sequence;
    }
    Record(DISK_SYNC, path, directory.durable_entries.size(), "directory");
  }
  for (const auto& [name, child] : snapshot) Unpin(child);
  Unpin(id);
  done(status);
}

// ---- File operations ----

absl::Status SimDiskStorage::WriteFile(InodeId id, const std::string& path, uint64_t offset,
                                       absl::string_view bytes) {
  if (offset > kFileBytesMax || bytes.size() > kFileBytesMax - offset) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "WriteAt: '", path, "' would grow past kFileBytesMax = ", kFileBytesMax, " bytes"));
  }
  if (DrawWriteFault(path, bytes.size())) {
    return absl::UnavailableError(absl::StrCat("WriteAt: I/O error on '", path, "'"));
  }
  if (bytes.empty()) return absl::OkStatus();  // POSIX: a zero-length write never extends
  Inode& inode = Get(id);
  assert(!inode.is_directory);
  const uint64_t old_size = inode.data.size();
  const uint64_t end = offset + bytes.size();
  if (end > old_size) {
    if (absl::Status reserved = ReserveGrowth(path, end - old_size); !reserved.ok()) {
      return reserved;
    }
    ResizeData(inode, end);  // zero-fills any gap
  }
  std::memcpy(inode.data.data() + offset, bytes.data(), bytes.size());
  MarkDirty(inode, std::min(offset, old_size));
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SimDiskStorage::AppendFile(InodeId id, const std::string& path,
                                                    absl::string_view bytes) {
  const uint64_t offset = Get(id).data.size();
  if (absl::Status written = WriteFile(id, path, offset, bytes); !written.ok()) return written;
  return offset;
}

absl::StatusOr<size_t> SimDiskStorage::ReadFile(InodeId id, const std::string& path,
                                                uint64_t offset, absl::Span<char> buffer) {
  Random& random = context_.FaultRandom();
  if (random.Chance(options_.read_error_probability)) {
    Record(DISK_ERROR, path, buffer.size(), "injected read error");
    return absl::UnavailableError(absl::StrCat("ReadAt: I/O error on '", path, "'"));
  }
  const Inode& inode = Get(id);
  assert(!inode.is_directory);
  if (offset >= inode.data.size()) return 0;
  const size_t count =
      static_cast<size_t>(std::min<uint64_t>(buffer.size(), inode.data.size() - offset));
  // An empty span may have a null data pointer, which memcpy must never see.
  if (count == 0) return 0;
  std::memcpy(buffer.data(), inode.data.data() + offset, count);
  if (corrupt_next_read_ || random.Chance(options_.read_corruption_probability)) {
    corrupt_next_read_ = false;
    // Only the returned copy is damaged: a retry reads the right bytes.
    const uint64_t bit = random.Below(uint64_t{count} * 8);
    buffer[bit / 8] = static_cast<char>(buffer[bit / 8] ^ (1 << (bit % 8)));
    Record(DISK_ERROR, path, count, "injected read corruption",
           static_cast<int64_t>(offset + bit / 8));
  }
  return count;
}

uint64_t SimDiskStorage::FileSize(InodeId id) const { return Get(id).data.size(); }

absl::Status SimDiskStorage::TruncateFile(InodeId id, const std::string& path,
                                          uint64_t size_bytes) {
  if (size_bytes > kFileBytesMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Truncate: '", path, "' would grow past kFileBytesMax = ", kFileBytesMax, " bytes"));
  }
  if (DrawWriteFault(path, 0)) {
    return absl::UnavailableError(absl::StrCat("Truncate: I/O error on '", path, "'"));
  }
  Inode& inode = Get(id);
  assert(!inode.is_directory);
  const uint64_t old_size = inode.data.size();
  if (size_bytes == old_size) return absl::OkStatus();
  if (size_bytes > old_size) {
    if (absl::Status reserved = ReserveGrowth(path, size_bytes - old_size); !reserved.ok()) {
      return reserved;
    }
  }
  ResizeData(inode, size_bytes);
  MarkDirty(inode, std::min(old_size, size_bytes));
  return absl::OkStatus();
}

void SimDiskStorage::SyncFile(InodeId id, const std::string& path, uint64_t incarnation,
                              SyncCallback done) {
  // The contents as they are now are what this call makes durable; later writes are not covered.
  const uint64_t target_version = TakeSnapshot(Get(id));
  const int64_t latency_us = DrawSyncLatencyUs();
  const bool failed = DrawSyncFault();
  // The pending sync keeps the inode alive even if its handle is closed and its name removed.
  Pin(id);
  context_.ScheduleForNode(
      node_, incarnation, latency_us,
      [epoch = epoch_, id, path, target_version, failed, done = std::move(done)]() mutable {
        SimDiskStorage* storage = epoch->storage;
        // The disk crashed since: this belongs to a dead incarnation.
        if (storage == nullptr) return;
        storage->CompleteFileSync(id, path, target_version, failed, std::move(done));
      });
}

void SimDiskStorage::CompleteFileSync(InodeId id, const std::string& path, uint64_t target_version,
                                      bool failed, SyncCallback done) {
  Inode& inode = Get(id);
  absl::Status status;
  if (failed) {
    // Nothing new becomes durable; the snapshot stays pending, so a later successful Sync
    // covers it.
    Record(DISK_ERROR, path, inode.data.size(), "injected sync error");
    status = absl::UnavailableError(absl::StrCat("Sync: I/O error on '", path, "'"));
  } else {
    ApplyDeltasThrough(inode, target_version);
    Record(DISK_SYNC, path, inode.durable_data.size(), "file");
  }
  Unpin(id);
  done(status);
}

// ---- Snapshots and durability ----

void SimDiskStorage::MarkDirty(Inode& inode, uint64_t offset) {
  assert(offset <= inode.data.size());
  ++inode.version;
  inode.dirty_from = std::min(inode.dirty_from, offset);
}

uint64_t SimDiskStorage::TakeSnapshot(Inode& inode) {
  assert(!inode.is_directory);
  if (inode.version != inode.snapshot_version) {
    assert(inode.dirty_from != kNotDirty);
    assert(inode.dirty_from <= inode.data.size());
    inode.pending_deltas.push_back(FileDelta{
        .version = inode.version,
        .size_bytes = inode.data.size(),
        .offset = inode.dirty_from,
        .bytes = inode.data.substr(inode.dirty_from),
    });
    snapshot_bytes_copied_ += inode.pending_deltas.back().bytes.size();
    inode.snapshot_version = inode.version;
    inode.dirty_from = kNotDirty;
  }
  return inode.snapshot_version;
}

void SimDiskStorage::ApplyDeltasThrough(Inode& inode, uint64_t target_version) {
  while (!inode.pending_deltas.empty() && inode.pending_deltas.front().version <= target_version) {
    const FileDelta& delta = inode.pending_deltas.front();
    assert(delta.version > inode.durable_version);
    assert(delta.offset <= inode.durable_data.size());
    assert(delta.offset + delta.bytes.size() == delta.size_bytes);
    inode.durable_data.resize(delta.size_bytes);
    std::memcpy(inode.durable_data.data() + delta.offset, delta.bytes.data(), delta.bytes.size());
    inode.durable_version = delta.version;
    inode.pending_deltas.pop_front();
  }
  // Either this call applied the target snapshot or a later-called Sync already had.
  assert(inode.durable_version >= target_version);
}

uint64_t SimDiskStorage::LowestUnsyncedOffset(const Inode& inode) {
  uint64_t lowest = inode.dirty_from;
  for (const FileDelta& delta : inode.pending_deltas) lowest = std::min(lowest, delta.offset);
  return lowest;
}

int64_t SimDiskStorage::DrawSyncLatencyUs() {
  assert(options_.sync_latency_us_min >= 0);
  assert(options_.sync_latency_us_min <= options_.sync_latency_us_max);
  return context_.FaultRandom().Between(options_.sync_latency_us_min, options_.sync_latency_us_max);
}

bool SimDiskStorage::DrawSyncFault() {
  const bool failed =
      fail_next_sync_ || context_.FaultRandom().Chance(options_.sync_error_probability);
  fail_next_sync_ = false;
  return failed;
}

bool SimDiskStorage::DrawWriteFault(const std::string& path, uint64_t bytes) {
  const bool failed =
      fail_next_write_ || context_.FaultRandom().Chance(options_.write_error_probability);
  if (!failed) return false;
  fail_next_write_ = false;
  Record(DISK_ERROR, path, bytes, "injected write error");
  return true;
}

absl::Status SimDiskStorage::ReserveGrowth(const std::string& path, uint64_t growth_bytes) {
  if (growth_bytes == 0) return absl::OkStatus();
  if (full_) {
    Record(DISK_ERROR, path, growth_bytes, "injected disk full");
    return absl::ResourceExhaustedError(absl::StrCat("disk full: cannot grow '", path, "'"));
  }
  if (growth_bytes > options_.capacity_bytes ||
      used_bytes_ > options_.capacity_bytes - growth_bytes) {
    Record(DISK_ERROR, path, growth_bytes, "disk capacity reached");
    return absl::ResourceExhaustedError(absl::StrCat("disk full: cannot grow '", path, "' by ",
                                                     growth_bytes, " bytes, ", used_bytes_, " of ",
                                                     options_.capacity_bytes, " used"));
  }
  return absl::OkStatus();
}

void SimDiskStorage::ResizeData(Inode& inode, uint64_t size_bytes) {
  assert(used_bytes_ >= inode.data.size());
  used_bytes_ = used_bytes_ - inode.data.size() + size_bytes;
  inode.data.resize(size_bytes);
}

// ---- Crash ----

void SimDiskStorage::Crash() { CrashImpl(std::nullopt); }

void SimDiskStorage::CrashWithMode(CrashLossMode mode) { CrashImpl(mode); }

void SimDiskStorage::EndEpoch() {
  epoch_->storage = nullptr;
  epoch_ = std::make_shared<Epoch>(Epoch{this});
}

void SimDiskStorage::ProcessCrash() {
  EndEpoch();
  // The dead epoch's handles and pending syncs no longer pin anything; whatever only they kept
  // alive (removed files still open, say) goes now.
  std::vector<InodeId> ids;
  ids.reserve(inodes_.size());
  for (auto& [id, inode] : inodes_) {
    inode.pins = id == kRootInode ? 1 : 0;
    ids.push_back(id);
  }
  for (InodeId id : ids) {
    // An earlier collection may have cascaded to this inode already.
    if (inodes_.contains(id)) MaybeCollect(id);
  }
}

void SimDiskStorage::CrashImpl(std::optional<CrashLossMode> forced_mode) {
  // Kill every view, handle and pending completion of the old epoch.
  EndEpoch();
  ++crash_count_;

  // Walk the durable namespace from the root, settling every directory and file met.
  std::map<InodeId, int64_t> reached_links;
  CrashDirectory(kRootInode, "", forced_mode, reached_links);

  // Keep only what is reachable, with references recounted: the crash forgot every handle and
  // pending sync, and the volatile namespace now equals the durable one.
  used_bytes_ = 0;
  for (auto it = inodes_.begin(); it != inodes_.end();) {
    const auto reached = reached_links.find(it->first);
    if (it->first != kRootInode && reached == reached_links.end()) {
      it = inodes_.erase(it);
      continue;
    }
    Inode& inode = it->second;
    const int64_t links = reached == reached_links.end() ? 0 : reached->second;
    inode.links = links;
    inode.durable_links = links;
    inode.pins = it->first == kRootInode ? 1 : 0;
    used_bytes_ += inode.data.size();
    ++it;
  }
}

void SimDiskStorage::CrashDirectory(InodeId id, const std::string& path,
                                    std::optional<CrashLossMode> forced_mode,
                                    std::map<InodeId, int64_t>& reached_links) {
  Inode& directory = Get(id);
  assert(directory.is_directory);
  if (directory.entries != directory.durable_entries) {
    Record(DISK_CRASH_LOSS, path,
           CountDifferingEntries(directory.entries, directory.durable_entries),
           "directory entries");
    directory.entries = directory.durable_entries;
  }
  for (const auto& [name, child] : directory.durable_entries) {
    int64_t& links = reached_links[child];
    ++links;
    Inode& inode = Get(child);
    if (links > 1) {
      // A file reached under a second name (see the header); it was settled at the first.
      assert(!inode.is_directory);
      continue;
    }
    const std::string child_path = JoinPath(path, name);
    if (inode.is_directory) {
      CrashDirectory(child, child_path, forced_mode, reached_links);
    } else {
      CrashFile(inode, child_path, forced_mode);
    }
  }
}

void SimDiskStorage::CrashFile(Inode& inode, const std::string& path,
                               std::optional<CrashLossMode> forced_mode) {
  assert(!inode.is_directory);
  if (inode.version != inode.durable_version) {
    const CrashLossMode mode = forced_mode.has_value() ? *forced_mode : DrawCrashLossMode();
    const std::string& now = inode.data;
    const std::string& old = inode.durable_data;
    // Below `lowest` the two versions agree; the loss modes only decide what happens above it.
    const uint64_t lowest = LowestUnsyncedOffset(inode);
    assert(lowest <= std::min(now.size(), old.size()));
    Random& random = context_.FaultRandom();
    std::string result;
    switch (mode) {
      case CrashLossMode::kLoseAll:
        result = old;
        break;
      case CrashLossMode::kPrefix: {
        const uint64_t size = static_cast<uint64_t>(
            random.Between(static_cast<int64_t>(std::min(old.size(), now.size())),
                           static_cast<int64_t>(std::max(old.size(), now.size()))));
        result.assign(now, 0, std::min<uint64_t>(size, now.size()));
        if (size > now.size()) result.append(old, now.size(), size - now.size());
        break;
      }
      case CrashLossMode::kTorn: {
        const uint64_t size = random.Chance(0.5) ? old.size() : now.size();
        const uint64_t sector = options_.sector_bytes;
        assert(sector > 0);
        result.assign(size, '\0');
        const uint64_t first_sector_start = lowest / sector * sector;
        CopyZeroExtended(now, 0, std::min(first_sector_start, size), result);
        for (uint64_t start = first_sector_start; start < size; start += sector) {
          const uint64_t end = std::min(start + sector, size);
          // Each sector differing between the two images independently made it or not.
          const bool take_new = SameZeroExtended(old, now, start, end) || random.Chance(0.5);
          CopyZeroExtended(take_new ? now : old, start, end, result);
        }
        break;
      }
    }
    const uint64_t bytes_lost = CountDifferingBytes(result, now, lowest);
    if (bytes_lost > 0) Record(DISK_CRASH_LOSS, path, bytes_lost, CrashLossModeName(mode));
    inode.data = std::move(result);
    // What the crash left is on the medium: durable from now on.
    inode.durable_data = inode.data;
  }
  inode.pending_deltas.clear();
  inode.snapshot_version = inode.version;
  inode.durable_version = inode.version;
  inode.dirty_from = kNotDirty;
}

CrashLossMode SimDiskStorage::DrawCrashLossMode() {
  const uint64_t lose_all = options_.crash_lose_all_weight;
  const uint64_t prefix = options_.crash_prefix_weight;
  const uint64_t total = lose_all + prefix + options_.crash_torn_weight;
  if (total == 0) return CrashLossMode::kLoseAll;
  const uint64_t draw = context_.FaultRandom().Below(total);
  if (draw < lose_all) return CrashLossMode::kLoseAll;
  if (draw < lose_all + prefix) return CrashLossMode::kPrefix;
  return CrashLossMode::kTorn;
}

// ---- Inodes and references ----

SimDiskStorage::Inode& SimDiskStorage::Get(InodeId id) {
  auto it = inodes_.find(id);
  assert(it != inodes_.end());
  return it->second;
}

const SimDiskStorage::Inode& SimDiskStorage::Get(InodeId id) const {
  auto it = inodes_.find(id);
  assert(it != inodes_.end());
  return it->second;
}

SimDiskStorage::InodeId SimDiskStorage::NewInode(bool is_directory) {
  const InodeId id = next_inode_id_++;
  Inode inode;
  inode.is_directory = is_directory;
  const bool inserted = inodes_.emplace(id, std::move(inode)).second;
  assert(inserted);
  static_cast<void>(inserted);
  return id;
}

void SimDiskStorage::Link(InodeId directory, const std::string& name, InodeId child) {
  Inode& parent = Get(directory);
  assert(parent.is_directory);
  ++Get(child).links;
  auto [it, inserted] = parent.entries.try_emplace(name, child);
  if (!inserted) {
    const InodeId replaced = it->second;
    assert(replaced != child);
    it->second = child;
    --Get(replaced).links;
    MaybeCollect(replaced);
  }
}

void SimDiskStorage::Unlink(InodeId directory, const std::string& name) {
  Inode& parent = Get(directory);
  auto it = parent.entries.find(name);
  assert(it != parent.entries.end());
  const InodeId child = it->second;
  parent.entries.erase(it);
  Inode& inode = Get(child);
  assert(inode.links > 0);
  --inode.links;
  MaybeCollect(child);
}

void SimDiskStorage::SetDurableEntries(InodeId directory, std::map<std::string, InodeId> entries) {
  // Count the new references before dropping the old ones, so that an inode in both is never
  // collected in between.
  for (const auto& [name, child] : entries) ++Get(child).durable_links;
  Inode& parent = Get(directory);
  std::swap(parent.durable_entries, entries);
  for (const auto& [name, child] : entries) {
    Inode& inode = Get(child);
    assert(inode.durable_links > 0);
    --inode.durable_links;
    MaybeCollect(child);
  }
}

void SimDiskStorage::Pin(InodeId id) { ++Get(id).pins; }

void SimDiskStorage::Unpin(InodeId id) {
  Inode& inode = Get(id);
  assert(inode.pins > 0);
  --inode.pins;
  MaybeCollect(id);
}

void SimDiskStorage::MaybeCollect(InodeId id) {
  if (id == kRootInode) return;
  auto it = inodes_.find(id);
  assert(it != inodes_.end());
  Inode& inode = it->second;
  assert(inode.links >= 0 && inode.durable_links >= 0 && inode.pins >= 0);
  if (inode.links > 0 || inode.durable_links > 0 || inode.pins > 0) return;
  // Without a volatile name a directory was removed, which required it to be empty.
  assert(inode.entries.empty());
  std::map<std::string, InodeId> durable_entries = std::move(inode.durable_entries);
  assert(used_bytes_ >= inode.data.size());
  used_bytes_ -= inode.data.size();
  inodes_.erase(it);
  for (const auto& [name, child] : durable_entries) {
    Inode& child_inode = Get(child);
    assert(child_inode.durable_links > 0);
    --child_inode.durable_links;
    MaybeCollect(child);
  }
}

// ---- Paths ----

absl::StatusOr<SimDiskStorage::InodeId> SimDiskStorage::Resolve(absl::string_view path,
                                                                bool durable) const {
  InodeId id = kRootInode;
  absl::string_view rest = path;
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    const absl::string_view component = rest.substr(0, slash);
    rest = slash == absl::string_view::npos ? absl::string_view() : rest.substr(slash + 1);
    const Inode& directory = Get(id);
    if (!directory.is_directory) {
      return absl::FailedPreconditionError(
          absl::StrCat("disk path '", path, "': a component before '", component, "' is a file"));
    }
    const std::map<std::string, InodeId>& entries =
        durable ? directory.durable_entries : directory.entries;
    auto it = entries.find(std::string(component));
    if (it == entries.end()) {
      return absl::NotFoundError(absl::StrCat("disk path '", path, "' does not exist"));
    }
    id = it->second;
  }
  return id;
}

absl::StatusOr<SimDiskStorage::ParentAndName> SimDiskStorage::ResolveParent(
    absl::string_view path) const {
  assert(!path.empty());
  const absl::string_view parent_path = ParentDirectory(path);
  absl::StatusOr<InodeId> parent = Resolve(parent_path, /*durable=*/false);
  if (!parent.ok()) return parent.status();
  if (!Get(*parent).is_directory) {
    return absl::FailedPreconditionError(
        absl::StrCat("disk path '", path, "': '", parent_path, "' is a file"));
  }
  const size_t name_start = parent_path.empty() ? 0 : parent_path.size() + 1;
  return ParentAndName{*parent, std::string(path.substr(name_start))};
}

// ---- Inspection ----

absl::StatusOr<std::string> SimDiskStorage::DurableContents(absl::string_view path) const {
  if (absl::Status valid = ValidateDiskPath(path); !valid.ok()) return valid;
  absl::StatusOr<InodeId> id = Resolve(path, /*durable=*/true);
  if (!id.ok()) return id.status();
  const Inode& inode = Get(*id);
  if (inode.is_directory) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is a directory"));
  }
  return inode.durable_data;
}

absl::StatusOr<std::string> SimDiskStorage::VolatileContents(absl::string_view path) const {
  if (absl::Status valid = ValidateDiskPath(path); !valid.ok()) return valid;
  absl::StatusOr<InodeId> id = Resolve(path, /*durable=*/false);
  if (!id.ok()) return id.status();
  const Inode& inode = Get(*id);
  if (inode.is_directory) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is a directory"));
  }
  return inode.data;
}

std::vector<std::string> SimDiskStorage::DurablePaths() const {
  std::vector<std::string> paths;
  CollectPaths(kRootInode, "", /*durable=*/true, paths);
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::vector<std::string> SimDiskStorage::VolatilePaths() const {
  std::vector<std::string> paths;
  CollectPaths(kRootInode, "", /*durable=*/false, paths);
  std::sort(paths.begin(), paths.end());
  return paths;
}

void SimDiskStorage::CollectPaths(InodeId directory, const std::string& prefix, bool durable,
                                  std::vector<std::string>& paths) const {
  const Inode& inode = Get(directory);
  for (const auto& [name, child] : durable ? inode.durable_entries : inode.entries) {
    std::string path = JoinPath(prefix, name);
    if (Get(child).is_directory) CollectPaths(child, path, durable, paths);
    paths.push_back(std::move(path));
  }
}

void SimDiskStorage::CheckInvariants() const {
  std::map<InodeId, int64_t> links;
  std::map<InodeId, int64_t> durable_links;
  uint64_t used_bytes = 0;
  for (const auto& [id, inode] : inodes_) {
    assert(id < next_inode_id_);
    for (const auto& [name, child] : inode.entries) {
      assert(inode.is_directory);
      assert(inodes_.contains(child));
      // Directories never move, so a subdirectory is always younger than its parent: no cycles.
      assert(!Get(child).is_directory || child > id);
      ++links[child];
    }
    for (const auto& [name, child] : inode.durable_entries) {
      assert(inode.is_directory);
      assert(inodes_.contains(child));
      assert(!Get(child).is_directory || child > id);
      ++durable_links[child];
    }
    if (inode.is_directory) {
      assert(inode.data.empty() && inode.durable_data.empty() && inode.pending_deltas.empty());
      continue;
    }
    used_bytes += inode.data.size();
    assert(inode.data.size() <= kFileBytesMax);
    assert(inode.durable_version <= inode.snapshot_version);
    assert(inode.snapshot_version <= inode.version);
    assert((inode.version == inode.snapshot_version) == (inode.dirty_from == kNotDirty));
    // Replaying the pending snapshots onto the durable contents must give the newest snapshot,
    // which agrees with the current contents everywhere below dirty_from.
    std::string replay = inode.durable_data;
    [[maybe_unused]] uint64_t previous_version = inode.durable_version;
    for (const FileDelta& delta : inode.pending_deltas) {
      assert(delta.version > previous_version);
      assert(delta.offset <= replay.size());
      assert(delta.offset + delta.bytes.size() == delta.size_bytes);
      replay.resize(delta.size_bytes);
      replay.replace(delta.offset, delta.bytes.size(), delta.bytes);
      previous_version = delta.version;
    }
    assert(previous_version == inode.snapshot_version);
    if (inode.dirty_from == kNotDirty) {
      assert(replay == inode.data);
    } else {
      assert(inode.dirty_from <= replay.size() && inode.dirty_from <= inode.data.size());
      assert(replay.compare(0, inode.dirty_from, inode.data, 0, inode.dirty_from) == 0);
    }
  }
  for (const auto& [id, inode] : inodes_) {
    [[maybe_unused]] const auto link = links.find(id);
    [[maybe_unused]] const auto durable_link = durable_links.find(id);
    assert(inode.links == (link == links.end() ? 0 : link->second));
    assert(inode.durable_links == (durable_link == durable_links.end() ? 0 : durable_link->second));
    assert(inode.pins >= 0);
    if (inode.is_directory) assert(inode.links <= 1 && inode.durable_links <= 1);
    if (id == kRootInode) {
      assert(inode.is_directory && inode.links == 0 && inode.durable_links == 0 && inode.pins >= 1);
    } else {
      assert(inode.links > 0 || inode.durable_links > 0 || inode.pins > 0);
    }
  }
  assert(used_bytes == used_bytes_);
  static_cast<void>(used_bytes);
}

void SimDiskStorage::Record(TraceKind kind, absl::string_view subject, uint64_t bytes,
                            absl::string_view detail, int64_t value) {
  // Assigned field by field, so that fields TraceEntry gains later keep their defaults.
  TraceEntry entry;
  entry.time_us = context_.NowUs();
  entry.node = node_;
  entry.kind = kind;
  entry.bytes = bytes;
  entry.value = value;
  entry.subject = subject;
  entry.detail = detail;
  context_.trace().Record(entry);
}

}  // namespace runnel::sim
