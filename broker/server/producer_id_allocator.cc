#include "broker/server/producer_id_allocator.h"

#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/server/disk_helpers.h"
#include "broker/storage/crc32c.h"

namespace runnel::server {

std::string ProducerIdAllocator::EncodeFile(int64_t next_block_start) {
  std::string bytes;
  AppendBigEndian<uint32_t>(bytes, kProducerIdFileMagic);
  AppendBigEndian<uint16_t>(bytes, kProducerIdFileVersion);
  AppendBigEndian<uint16_t>(bytes, 0);
  AppendBigEndian<int64_t>(bytes, next_block_start);
  AppendBigEndian<uint32_t>(bytes, storage::Crc32c(bytes));
  return bytes;
}

absl::StatusOr<int64_t> ProducerIdAllocator::DecodeFile(absl::string_view bytes) {
  if (bytes.size() != kProducerIdFileBytes) {
    return absl::DataLossError(
        absl::StrCat("size ", bytes.size(), " instead of ", kProducerIdFileBytes));
  }
  const uint32_t crc = LoadBigEndian<uint32_t>(bytes.data() + kProducerIdFileBytes - 4);
  if (crc != storage::Crc32c(bytes.substr(0, kProducerIdFileBytes - 4))) {
    return absl::DataLossError("checksum mismatch");
  }
  if (LoadBigEndian<uint32_t>(bytes.data()) != kProducerIdFileMagic) {
    return absl::DataLossError("bad magic");
  }
  if (LoadBigEndian<uint16_t>(bytes.data() + 4) != kProducerIdFileVersion) {
    return absl::DataLossError("unknown version");
  }
  const int64_t start = LoadBigEndian<int64_t>(bytes.data() + 8);
  if (start < 0 || start > std::numeric_limits<int64_t>::max() - kBlockSize) {
    return absl::DataLossError(absl::StrCat("next block start ", start, " out of range"));
  }
  return start;
}

ProducerIdAllocator::ProducerIdAllocator(Env& env, std::string data_dir, int64_t start)
    : env_(env),
      data_dir_(std::move(data_dir)),
      next_id_(start),
      reserved_end_(start),
      alive_(std::make_shared<ProducerIdAllocator*>(this)) {}

ProducerIdAllocator::~ProducerIdAllocator() { alive_.reset(); }

absl::StatusOr<std::unique_ptr<ProducerIdAllocator>> ProducerIdAllocator::Open(
    Env& env, std::string data_dir) {
  Disk& disk = env.disk();
  const std::string path = JoinDiskPath(data_dir, kProducerIdFileName);
  const std::string temp_path = JoinDiskPath(data_dir, kProducerIdTempFileName);
  if (disk.Exists(temp_path)) {
    // A replacement that a crash interrupted before its rename: the file is what counts.
    if (absl::Status removed = disk.Remove(temp_path); !removed.ok()) return removed;
  }
  int64_t start = 0;
  if (disk.Exists(path)) {
    absl::Status last;
    std::string previous;
    bool decoded = false;
    for (int attempt = 0; attempt < kReadAttemptsMax && !decoded; ++attempt) {
      absl::StatusOr<std::string> bytes = ReadWholeFile(disk, path, kProducerIdFileBytes + 1);
      if (!bytes.ok()) {
        last = bytes.status();
        continue;
      }
      absl::StatusOr<int64_t> value = DecodeFile(*bytes);
      if (value.ok()) {
        start = *value;
        decoded = true;
        break;
      }
      last = value.status();
      if (attempt > 0 && *bytes == previous) break;
      previous = *std::move(bytes);
    }
    if (!decoded) {
      return absl::Status(last.code(), absl::StrCat("producer id file '", path,
                                                    "' is unreadable: ", last.message()));
    }
  }
  env.Log(LogLevel::kInfo, absl::StrCat("producer ids: next block starts at ", start));
  return std::unique_ptr<ProducerIdAllocator>(
      new ProducerIdAllocator(env, std::move(data_dir), start));
}

void ProducerIdAllocator::Allocate(Callback done) {
  if (next_id_ < reserved_end_ && waiters_.empty()) {
    done(next_id_++);
    return;
  }
  if (waiters_.size() >= kWaitersMax) {
    done(absl::ResourceExhaustedError(
        absl::StrCat(kWaitersMax, " InitProducerId requests are already waiting")));
    return;
  }
  waiters_.push_back(std::move(done));
  if (!write_in_flight_) StartWrite();
}

void ProducerIdAllocator::StartWrite() {
  write_in_flight_ = true;
  // The block starts where the durable reservation ends; a failed earlier write may have left
  // that same value (or nothing) durable, and writing it again is harmless.
  const int64_t block_end = reserved_end_ + kBlockSize;
  std::weak_ptr<ProducerIdAllocator*> alive = alive_;
  auto fail = [this](const absl::Status& status) {
    // Reported on a later turn: Allocate()'s callers never see their callback run inside a
    // failed write they did not start.
    std::weak_ptr<ProducerIdAllocator*> weak = alive_;
    env_.clock().ScheduleAfter(0, [weak, status] {
      if (weak.expired()) return;
      (*weak.lock())->FinishWrite(status, 0);
    });
  };
  Disk& disk = env_.disk();
  const std::string temp_path = JoinDiskPath(data_dir_, kProducerIdTempFileName);
  absl::StatusOr<std::unique_ptr<File>> file = disk.Open(temp_path, OpenMode::kCreate);
  if (!file.ok()) return fail(file.status());
  if (absl::Status truncated = (*file)->Truncate(0); !truncated.ok()) return fail(truncated);
  if (absl::Status written = (*file)->WriteAt(0, EncodeFile(block_end)); !written.ok()) {
    return fail(written);
  }
  File* raw = file->get();
  std::shared_ptr<File> held(std::move(*file));
  raw->Sync([alive, held, block_end, temp_path](const absl::Status& synced) {
    if (alive.expired()) return;
    ProducerIdAllocator* self = *alive.lock();
    if (!synced.ok()) return self->FinishWrite(synced, 0);
    const std::string path = JoinDiskPath(self->data_dir_, kProducerIdFileName);
    if (absl::Status renamed = self->env_.disk().Rename(temp_path, path); !renamed.ok()) {
      return self->FinishWrite(renamed, 0);
    }
    self->env_.disk().SyncDirectory(self->data_dir_, [alive, block_end](const absl::Status& done) {
      if (alive.expired()) return;
      (*alive.lock())->FinishWrite(done, block_end);
    });
  });
}

void ProducerIdAllocator::FinishWrite(const absl::Status& status, int64_t block_end) {
  write_in_flight_ = false;
  std::deque<Callback> waiters;
  if (!status.ok()) {
    env_.Log(LogLevel::kError,
             absl::StrCat("producer ids: reserving a block failed: ", status.ToString()));
    waiters.swap(waiters_);
    const absl::Status failure = absl::UnavailableError(
        absl::StrCat("reserving producer ids failed: ", status.message()));
    std::weak_ptr<ProducerIdAllocator*> alive = alive_;
    for (Callback& waiter : waiters) {
      waiter(failure);
      if (alive.expired()) return;
    }
    return;
  }
  reserved_end_ = block_end;
  std::weak_ptr<ProducerIdAllocator*> alive = alive_;
  while (!waiters_.empty() && next_id_ < reserved_end_) {
    Callback waiter = std::move(waiters_.front());
    waiters_.pop_front();
    waiter(next_id_++);
    if (alive.expired()) return;
  }
  if (!waiters_.empty() && !write_in_flight_) StartWrite();
}

}  // namespace runnel::server
