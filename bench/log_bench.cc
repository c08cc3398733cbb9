// Partition log throughput on the real disk, each figure beside its reference measured in the same
// run (these machines are shared and noisy, so only side-by-side figures mean anything):
//
// - raw_disk/pwrite_1MiB+writeback+fdatasync_at_end: 256 MiB of 1 MiB pwrites into a fresh file,
//   starting the write-back of every 1 MiB written (sync_file_range, as the log does every
//   kWritebackStrideBytes) and one fdatasync at the end (no Env): the raw sequential write
//   bandwidth of the disk the log uses, with the device writing while the program does, the
//   reference of the flush_never goal.
// - raw_disk/pwrite_1MiB+fdatasync_at_end: the same without starting write-back, as
//   `dd conv=fdatasync` measures a disk: there the device waits for the writes to end, so on this
//   machine it is about a third slower, and a log that starts write-back beats it.
// - raw_write/pwrite_1MiB: 64 MiB of the same writes with no sync: the page cache's write
//   bandwidth, the reference for what the log's own work costs.
// - raw_write/pwrite_64KiB+fdatasync: the same disk with an fdatasync after every 64 KiB: what
//   syncing costs.
// - raw_write/pwrite_1MiB+fdatasync_per_4MiB: 1 MiB writes with an fdatasync after every 4 MiB,
//   the most that flush_always below keeps in flight: about the best any log that syncs before it
//   acknowledges can do on this disk with that window, if it cannot overlap its writes with its
//   syncs. raw_write/pwrite_1MiB+fdatasync_per_16MiB is the same at the deeper window.
// - append/<batch>/flush_<policy>: PartitionLog::AppendAsLeader on PosixEnv, 1 KiB and 64 KiB
//   batches. flush_never appends 64 MiB back to back (into the page cache, though the log starts
//   the write-back of each MiB, which the figure includes); flush_always keeps a
//   window of appends in flight (up to 1024 batches or 4 MiB, each with its own WhenDurable, as
//   producers waiting for acks would) and runs the event loop only when the window is full, so
//   that appends waiting at the same time share one sync (group commit). Reports MB/s, batches/s
//   and batches per sync. The plain figures use the default LogConfig (every append written to
//   the file at once, as Kafka does); the "...+buffer" ones set write_buffer_bytes to 256 KiB
//   (partition_log.h), which writes appends out in whole aligned windows at the price of what a
//   process crash may lose.
// - append_to_disk/<batch>/flush_never: 256 MiB appended under flush_never, then Flush() and a
//   wait until all of it is durable: the same work as raw_disk, through the log.
// - append/64KiB/flush_always+buffer+16MiB_in_flight: flush_always with four times the window,
//   for reference: a closed window bounds what any policy that syncs before it acknowledges can do.
// - read/Read_1MiB: PartitionLog::Read of 1 MiB at a time across a 64 MiB log that is in the page
//   cache (every batch CRC-checked on the way out), beside raw_read/pread_1MiB (the same file bytes
//   through pread) and memcpy/1MiB (user-space copy bandwidth).
//
// At the end a summary prints the ratios the storage issue asks for, for the default and the
// buffered configuration. Its goals are read on the disk, where every figure ends with its bytes
// durable: append_to_disk(never) / raw_disk (goal >= 0.8) and append(always, 64 KiB) /
// append_to_disk(never, 64 KiB) (goal: within 2x, i.e. >= 0.5). Against the page cache the two
// goals cannot both hold on a machine whose disk is more than 2.5 times slower than its page
// cache (this one's is about 3 times): flush_always can go no faster than the disk, so it would
// need flush_never at no more than twice the disk's speed, below 0.8 of the page cache's. The
// page-cache ratios (append(never) / raw_write) are printed too, as the measure of the log's own
// CPU cost; CRC-32C alone caps them below 1 (every appended byte is checksummed).
//
// The summary gives each figure over wall time (the goals) and over the process's CPU time, which
// says how efficient the code is when other work on a shared machine makes wall time noisy.
//
// Files go under $TMPDIR (or /tmp) in a directory removed at exit. Run: build/bench/log_bench
// (each figure runs for at least 1 s unless --benchmark_min_time says otherwise;
// --benchmark_filter=append runs a subset).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_env.h"
#include "broker/storage/partition_log.h"
#include "broker/storage/partition_log_impl.h"
#include "broker/storage/record_batch.h"

namespace runnel::storage {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;
// Bytes written per iteration by the unsynced loops and by flush_never appends.
constexpr size_t kWriteBytesPerIteration = size_t{64} << 20;
// Bytes written per iteration when every 64 KiB (or every append window) is synced.
constexpr size_t kSyncedWriteBytesPerIteration = size_t{16} << 20;
// Bytes written per iteration by the figures that end with everything on the disk (raw_disk and
// append_to_disk): enough that the device's own speed, not the page cache's, decides the figure.
constexpr size_t kDiskWriteBytesPerIteration = size_t{256} << 20;
constexpr size_t kSyncEveryBytes = size_t{64} << 10;
// Group commit: appends in flight at most (by count and by bytes), like many producers each
// waiting for its ack.
constexpr size_t kInFlightBatchesMax = 1024;
constexpr size_t kInFlightBytesMax = size_t{4} << 20;
// A deeper window, for one figure printed for reference: how far group commit goes when more is in
// flight (more producers, or more requests each), since with a closed window of appends a flush
// policy that syncs before it acknowledges can do no better than window / (time to write and sync
// one window).
constexpr size_t kDeepInFlightBytesMax = size_t{16} << 20;
// The write buffer of the "...+buffer" figures (LogConfig::write_buffer_bytes). Since the buffer
// writes whole aligned windows, 256 KiB did as well as 1 MiB on this bench's machine (within the
// noise), and holds less memory per partition.
constexpr uint32_t kBufferedWriteBytes = uint32_t{256} << 10;
constexpr size_t kReadLogBytes = size_t{64} << 20;
constexpr size_t kReadBytesMax = size_t{1} << 20;
// How long the event loop runs after a log is destroyed, for the work it left queued (DiscardLog).
constexpr int64_t kDiscardDrainUs = 10'000;
// A durability wait or Close that takes longer than this means something is stuck.
constexpr int64_t kWaitTimeoutUs = 60'000'000;

// The reference of the flush_never goal (see the file comment).
constexpr char kRawDisk[] = "raw_disk/pwrite_1MiB+writeback+fdatasync_at_end";
// flush_always with 64 KiB batches, the write buffer and kDeepInFlightBytesMax in flight.
constexpr char kDeepAlways[] = "append/64KiB/flush_always+buffer+16MiB_in_flight";
// Its reference: the disk synced once per kDeepInFlightBytesMax.
constexpr char kRawDeepWindow[] = "raw_write/pwrite_1MiB+fdatasync_per_16MiB";

std::string& BenchRoot() {
  static std::string root;
  return root;
}

std::string FillBytes(size_t bytes, uint32_t seed) {
  std::string data(bytes, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (char& c : data) {
    state = state * 1103515245u + 12345u;
    c = static_cast<char>(state >> 24);
  }
  return data;
}

// The real Env of one node over a data directory under the bench root.
struct RealNode {
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<PosixEnv> env;
  std::string data_directory;

  static absl::StatusOr<RealNode> Create(const std::string& name) {
    RealNode node;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    if (!loop.ok()) return loop.status();
    node.loop = *std::move(loop);
    node.data_directory = BenchRoot() + "/" + name;
    absl::StatusOr<std::unique_ptr<PosixEnv>> env =
        PosixEnv::Create(*node.loop, 0, node.data_directory, uint64_t{1});
    if (!env.ok()) return env.status();
    node.env = *std::move(env);
    node.env->set_log_level_min(LogLevel::kWarning);
    return node;
  }
};

// One batch of about `batch_bytes` bytes: records of about 1 KiB of incompressible values.
absl::StatusOr<std::string> MakeBatch(size_t batch_bytes) {
  constexpr size_t kRecordOverheadBytes = 16;  // length, attributes, deltas, key, header count
  const size_t record_count = std::max<size_t>(1, batch_bytes / 1024);
  const size_t payload_bytes =
      batch_bytes > kBatchHeaderBytes ? batch_bytes - kBatchHeaderBytes : 1;
  const size_t per_record_bytes = payload_bytes / record_count;
  const size_t value_bytes =
      per_record_bytes > kRecordOverheadBytes ? per_record_bytes - kRecordOverheadBytes : 1;
  std::vector<Record> records(record_count);
  for (size_t i = 0; i < record_count; ++i) {
    records[i].offset_delta = static_cast<int32_t>(i);
    records[i].key = absl::StrCat("key-", i % 16);
    records[i].value = FillBytes(value_bytes, static_cast<uint32_t>(i));
  }
  BatchBuildOptions options;
  options.base_timestamp = 1'767'225'600'000;
  return BuildBatch(options, records);
}

absl::StatusOr<std::unique_ptr<PartitionLog>> OpenLog(RealNode& node, const std::string& directory,
                                                      FlushPolicy policy,
                                                      uint32_t write_buffer_bytes = 0) {
  LogConfig config;
  config.flush_policy = policy;
  config.write_buffer_bytes = write_buffer_bytes;
  return PartitionLog::Open(*node.env, directory, config);
}

// Destroys a log without syncing and removes its files. The event loop then runs briefly: work the
// log left queued there (such as the completion of the sync of a segment file it created) holds
// that file open, and a removed file that stays open keeps its dirty pages. Under flush_never
// nothing else runs the loop, so without this every iteration's 64 MiB stayed dirty in the page
// cache until the kernel's writeback threshold throttled later iterations' writes to the disk's
// speed, and the figure measured the machine's memory instead of the log (a broker runs its loop
// all the time).
void DiscardLog(RealNode& node, std::unique_ptr<PartitionLog>& log, const std::string& directory) {
  log.reset();
  node.loop->RunFor(kDiscardDrainUs);
  std::error_code ignored;
  std::filesystem::remove_all(node.data_directory + "/" + directory, ignored);
}

// Writes of `write_bytes` up to `total_bytes`, with an fdatasync after every `sync_every_bytes`
// (0: none) and, when `sync_at_end`, one after the last write (as `dd conv=fdatasync` measures a
// disk).
void BM_RawWrite(benchmark::State& state, size_t write_bytes, size_t sync_every_bytes,
                 size_t total_bytes, bool sync_at_end, bool start_writeback) {
  const std::string path = BenchRoot() + "/raw_write.dat";
  const std::string chunk = FillBytes(kChunkBytes, 7);
  const bool sync = sync_every_bytes > 0;
  for (auto _ : state) {
    state.PauseTiming();
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    state.ResumeTiming();
    if (fd < 0) {
      state.SkipWithError("open failed");
      break;
    }
    bool failed = false;
    size_t writeback_started_bytes = 0;
    for (size_t offset = 0; offset < total_bytes && !failed; offset += write_bytes) {
      if (::pwrite(fd, chunk.data(), write_bytes, static_cast<off_t>(offset)) !=
          static_cast<ssize_t>(write_bytes)) {
        failed = true;
      } else if (start_writeback &&
                 offset + write_bytes - writeback_started_bytes >= kWritebackStrideBytes) {
        ::sync_file_range(fd, static_cast<off_t>(writeback_started_bytes),
                          static_cast<off_t>(offset + write_bytes - writeback_started_bytes),
                          SYNC_FILE_RANGE_WRITE);
        writeback_started_bytes = offset + write_bytes;
      }
      if (!failed && sync && (offset + write_bytes) % sync_every_bytes == 0 &&
          ::fdatasync(fd) != 0) {
        failed = true;
      }
    }
    if (!failed && sync_at_end && ::fdatasync(fd) != 0) failed = true;
    state.PauseTiming();
    ::close(fd);
    ::unlink(path.c_str());
    state.ResumeTiming();
    if (failed) {
      state.SkipWithError("pwrite or fdatasync failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * total_bytes));
}

// Appends under `policy`. With `to_disk` (flush_never only) the iteration also ends with
// everything on the disk: kDiskWriteBytesPerIteration bytes are appended, then Flush() and a wait
// for all of it to be durable, which is what raw_disk's final fdatasync does.
void BM_Append(benchmark::State& state, size_t batch_bytes, FlushPolicy policy,
               uint32_t write_buffer_bytes, bool to_disk, size_t in_flight_bytes_max) {
  assert(!to_disk || policy == FlushPolicy::kNever);
  absl::StatusOr<RealNode> node = RealNode::Create(
      absl::StrCat("append_", batch_bytes, policy == FlushPolicy::kNever ? "_never" : "_always",
                   write_buffer_bytes > 0 ? "_buffered" : "", to_disk ? "_to_disk" : ""));
  if (!node.ok()) {
    state.SkipWithError(node.status().ToString().c_str());
    return;
  }
  absl::StatusOr<std::string> batch = MakeBatch(batch_bytes);
  if (!batch.ok()) {
    state.SkipWithError(batch.status().ToString().c_str());
    return;
  }
  // A synced iteration writes at least four windows, so that the first and last count little.
  const size_t synced_bytes = std::max(kSyncedWriteBytesPerIteration, 4 * in_flight_bytes_max);
  const size_t total_bytes = to_disk                        ? kDiskWriteBytesPerIteration
                             : policy == FlushPolicy::kNever ? kWriteBytesPerIteration
                                                             : synced_bytes;
  const size_t batch_count = std::max<size_t>(1, total_bytes / batch->size());
  const size_t window =
      std::min(kInFlightBatchesMax, std::max<size_t>(1, in_flight_bytes_max / batch->size()));
  uint64_t syncs = 0;
  int iteration = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string directory = absl::StrCat("log-", iteration++);
    absl::StatusOr<std::unique_ptr<PartitionLog>> log =
        OpenLog(*node, directory, policy, write_buffer_bytes);
    state.ResumeTiming();
    if (!log.ok()) {
      state.SkipWithError(log.status().ToString().c_str());
      break;
    }
    std::string error;
    // Completion cells of the appends in flight, oldest first.
    std::deque<std::shared_ptr<absl::Status>> in_flight;
    for (size_t i = 0; i < batch_count && error.empty(); ++i) {
      absl::StatusOr<AppendInfo> info = (*log)->AppendAsLeader(*batch, 1);
      if (!info.ok()) {
        error = info.status().ToString();
        break;
      }
      if (policy == FlushPolicy::kNever) continue;
      auto done = std::make_shared<absl::Status>(absl::UnknownError("pending"));
      (*log)->WhenDurable(info->last_offset + 1,
                          [done](const absl::Status& status) { *done = status; });
      in_flight.push_back(std::move(done));
      const bool last = i + 1 == batch_count;
      while (!in_flight.empty() && (in_flight.size() >= window || last)) {
        const std::shared_ptr<absl::Status> oldest = in_flight.front();
        if (!node->loop->RunUntil([&] { return !absl::IsUnknown(*oldest); }, kWaitTimeoutUs)) {
          error = "a durability wait timed out";
          break;
        }
        while (!in_flight.empty() && !absl::IsUnknown(*in_flight.front())) {
          if (!in_flight.front()->ok()) error = in_flight.front()->ToString();
          in_flight.pop_front();
        }
        if (!error.empty()) break;
      }
    }
    if (to_disk && error.empty()) {
      auto done = std::make_shared<absl::Status>(absl::UnknownError("pending"));
      (*log)->Flush();
      (*log)->WhenDurable((*log)->log_end_offset(),
                          [done](const absl::Status& status) { *done = status; });
      if (!node->loop->RunUntil([&] { return !absl::IsUnknown(*done); }, kWaitTimeoutUs)) {
        error = "the final durability wait timed out";
      } else if (!done->ok()) {
        error = done->ToString();
      }
    }
    state.PauseTiming();
    syncs += (*log)->stats().syncs;
    DiscardLog(*node, *log, directory);
    state.ResumeTiming();
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
  const auto batches = static_cast<double>(state.iterations() * batch_count);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch_count * batch->size()));
  state.counters["batches_per_second"] = benchmark::Counter(batches, benchmark::Counter::kIsRate);
  if (policy == FlushPolicy::kAlways) {
    // How well group commit works: appends covered by one sync on average.
    state.counters["batches_per_sync"] =
        benchmark::Counter(syncs == 0 ? 0.0 : batches / static_cast<double>(syncs));
  }
}

// A 64 KiB-batch log of kReadLogBytes, written once and kept (in the page cache) for the readers.
struct ReadFixture {
  absl::StatusOr<RealNode> node = absl::UnknownError("not built");
  std::unique_ptr<PartitionLog> log;
  std::string error;

  static ReadFixture& Get() {
    static ReadFixture* fixture = [] {
      auto* built = new ReadFixture;
      built->Build();
      return built;
    }();
    return *fixture;
  }

  void Build() {
    node = RealNode::Create("read");
    if (!node.ok()) {
      error = node.status().ToString();
      return;
    }
    absl::StatusOr<std::string> batch = MakeBatch(size_t{64} << 10);
    if (!batch.ok()) {
      error = batch.status().ToString();
      return;
    }
    absl::StatusOr<std::unique_ptr<PartitionLog>> opened =
        OpenLog(*node, "read-log", FlushPolicy::kNever);
    if (!opened.ok()) {
      error = opened.status().ToString();
      return;
    }
    log = *std::move(opened);
    for (size_t written = 0; written < kReadLogBytes; written += batch->size()) {
      absl::StatusOr<AppendInfo> info = log->AppendAsLeader(*batch, 1);
      if (!info.ok()) {
        error = info.status().ToString();
        return;
      }
    }
  }
};

void BM_LogRead(benchmark::State& state) {
  ReadFixture& fixture = ReadFixture::Get();
  if (!fixture.error.empty()) {
    state.SkipWithError(fixture.error.c_str());
    return;
  }
  PartitionLog& log = *fixture.log;
  uint64_t bytes_read = 0;
  for (auto _ : state) {
    int64_t offset = log.log_start_offset();
    const int64_t end = log.log_end_offset();
    while (offset < end) {
      absl::StatusOr<std::string> bytes = log.Read(offset, kReadBytesMax, end, true);
      if (!bytes.ok() || bytes->size() < kBatchHeaderBytes) {
        state.SkipWithError(bytes.ok() ? "empty read" : bytes.status().ToString().c_str());
        return;
      }
      // The next offset: hop over the batch headers to the last batch.
      size_t position = 0;
      int64_t next = offset;
      while (position + kBatchHeaderBytes <= bytes->size()) {
        absl::StatusOr<BatchHeader> header =
            ParseBatchHeader(absl::string_view(*bytes).substr(position));
        if (!header.ok()) break;
        next = header->last_offset() + 1;
        position += header->total_bytes();
      }
      if (next <= offset) {
        state.SkipWithError("a read made no progress");
        return;
      }
      bytes_read += bytes->size();
      benchmark::DoNotOptimize(bytes->data());
      offset = next;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes_read));
}

// The same file bytes through pread, 1 MiB at a time: the page-cache read floor.
void BM_RawRead(benchmark::State& state) {
  ReadFixture& fixture = ReadFixture::Get();
  if (!fixture.error.empty()) {
    state.SkipWithError(fixture.error.c_str());
    return;
  }
  std::vector<std::string> paths;
  std::error_code ignored;
  for (const auto& entry :
       std::filesystem::directory_iterator(fixture.node->data_directory + "/read-log", ignored)) {
    if (entry.path().extension() == ".log") paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::string buffer(kReadBytesMax, '\0');
  uint64_t bytes_read = 0;
  for (auto _ : state) {
    for (const std::string& path : paths) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        state.SkipWithError("open failed");
        return;
      }
      for (off_t offset = 0;;) {
        const ssize_t got = ::pread(fd, buffer.data(), buffer.size(), offset);
        if (got <= 0) break;
        bytes_read += static_cast<uint64_t>(got);
        offset += got;
      }
      ::close(fd);
    }
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes_read));
}

void BM_Memcpy(benchmark::State& state) {
  const std::string source = FillBytes(kReadLogBytes, 3);
  std::string destination(kReadBytesMax, '\0');
  for (auto _ : state) {
    for (size_t offset = 0; offset < source.size(); offset += kReadBytesMax) {
      std::memcpy(destination.data(), source.data() + offset, kReadBytesMax);
      benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(destination.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kReadLogBytes));
}

// Keeps each benchmark's rates for the summary while the console reporter prints as usual.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  struct Rates {
    double bytes_per_second = 0;
    // The same bytes over the process's CPU time instead of wall time: what the figure would be
    // if the run had the CPU to itself (on a shared machine, waiting for a CPU inflates wall time
    // by whatever else runs meanwhile). Not meaningful where waiting for the disk is the point
    // (flush_always and the fdatasync references).
    double cpu_bytes_per_second = 0;
    double batches_per_second = 0;
    double batches_per_sync = 0;
  };

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      Rates rates;
      auto counter = [&](const char* name) {
        auto it = run.counters.find(name);
        return it == run.counters.end() ? 0.0 : static_cast<double>(it->second.value);
      };
      rates.bytes_per_second = counter("bytes_per_second");
      if (run.cpu_accumulated_time > 0) {
        rates.cpu_bytes_per_second =
            rates.bytes_per_second * run.real_accumulated_time / run.cpu_accumulated_time;
      }
      rates.batches_per_second = counter("batches_per_second");
      rates.batches_per_sync = counter("batches_per_sync");
      rates_[run.benchmark_name()] = rates;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  // The rates of the benchmark named `name`, with or without the "/real_time" suffix the library
  // adds, or nullptr. (Exact, since one name may begin another: flush_never, flush_never+buffer.)
  const Rates* Find(const std::string& name) const {
    for (const std::string& full_name : {name, name + "/real_time"}) {
      auto it = rates_.find(full_name);
      if (it != rates_.end()) return &it->second;
    }
    return nullptr;
  }

  void PrintSummary() const {
    std::printf("\nSummary (same run; MB = 10^6 bytes)\n");
    std::printf("  %-52s %10s %10s %12s %12s\n", "figure", "MB/s", "cpu MB/s", "batches/s",
                "batches/sync");
    for (const auto& [name, rates] : rates_) {
      std::printf("  %-52s %10.1f %10.1f %12.0f %12.1f\n", name.c_str(),
                  rates.bytes_per_second / 1e6, rates.cpu_bytes_per_second / 1e6,
                  rates.batches_per_second, rates.batches_per_sync);
    }
    for (const char* variant : {"", "+buffer"}) {
      const std::string never_64 = absl::StrCat("append/64KiB/flush_never", variant);
      const std::string never_1 = absl::StrCat("append/1KiB/flush_never", variant);
      const std::string disk_never_64 = absl::StrCat("append_to_disk/64KiB/flush_never", variant);
      const std::string disk_never_1 = absl::StrCat("append_to_disk/1KiB/flush_never", variant);
      const std::string always_64 = absl::StrCat("append/64KiB/flush_always", variant);
      const std::string always_1 = absl::StrCat("append/1KiB/flush_always", variant);
      std::printf("\nRatios, %s\n",
                  *variant == '\0' ? "default LogConfig (appends written through)"
                                   : "write_buffer_bytes = 256 KiB (appends coalesced)");
      std::printf(" on the disk (each figure ends with its bytes durable): the issue's goals\n");
      PrintRatio("append(never, 64 KiB) / raw disk write", disk_never_64, kRawDisk, ">= 0.8");
      PrintRatio("append(never, 1 KiB) / raw disk write", disk_never_1, kRawDisk, ">= 0.8");
      PrintRatio("append(always, 64 KiB) / append(never, 64 KiB)", always_64, disk_never_64,
                 ">= 0.5 (within 2x)");
      PrintRatio("append(always, 1 KiB) / append(never, 1 KiB)", always_1, disk_never_1,
                 "(for reference)");
      if (*variant != '\0') {
        PrintRatio("  the same at 64 KiB with 16 MiB in flight", kDeepAlways, disk_never_64,
                   "(for reference: a deeper window)");
        PrintRatio("  16 MiB in flight / raw write + fdatasync/16 MiB", kDeepAlways,
                   kRawDeepWindow, "(vs. the disk at the same window)");
      }
      PrintRatio("append(always, 64 KiB) / raw write + fdatasync/4 MiB", always_64,
                 "raw_write/pwrite_1MiB+fdatasync_per_4MiB", "(vs. the disk at the same window)");
      std::printf(" in the page cache (nothing synced): what the log's own work costs\n");
      PrintRatio("append(never, 64 KiB) / raw write", never_64, "raw_write/pwrite_1MiB",
                 "(for reference)");
      PrintRatio("append(never, 1 KiB) / raw write", never_1, "raw_write/pwrite_1MiB",
                 "(for reference)");
      PrintRatio("  the same in CPU time", never_64, "raw_write/pwrite_1MiB", "(64 KiB)",
                 /*cpu=*/true);
      PrintRatio("  the same in CPU time", never_1, "raw_write/pwrite_1MiB", "(1 KiB)",
                 /*cpu=*/true);
    }
    std::printf("\nReferences\n");
    PrintRatio("raw disk write / raw write", kRawDisk, "raw_write/pwrite_1MiB",
               "(the disk against the page cache)");
    PrintRatio("raw disk write without write-back / raw disk write",
               "raw_disk/pwrite_1MiB+fdatasync_at_end", kRawDisk,
               "(what starting write-back buys)");
    PrintRatio("raw write + fdatasync/64 KiB / raw write", "raw_write/pwrite_64KiB+fdatasync",
               "raw_write/pwrite_1MiB", "(the cost of syncing)");
    PrintRatio("raw write + fdatasync/4 MiB / raw write",
               "raw_write/pwrite_1MiB+fdatasync_per_4MiB", "raw_write/pwrite_1MiB",
               "(the cost of syncing, at the always window)");
    PrintRatio("raw write + fdatasync/4 MiB / raw disk write",
               "raw_write/pwrite_1MiB+fdatasync_per_4MiB", kRawDisk,
               "(the most any always log gets of the disk at that window)");
    PrintRatio("raw write + fdatasync/16 MiB / raw disk write", kRawDeepWindow, kRawDisk,
               "(the same at 16 MiB)");
    PrintRatio("read / memcpy", "read/Read_1MiB", "memcpy/1MiB", "(for reference)");
    PrintRatio("  the same in CPU time", "read/Read_1MiB", "memcpy/1MiB", "", /*cpu=*/true);
    PrintRatio("read / raw pread", "read/Read_1MiB", "raw_read/pread_1MiB", "(for reference)");
  }

 private:
  void PrintRatio(const char* label, const std::string& numerator, const std::string& denominator,
                  const char* goal, bool cpu = false) const {
    const Rates* top = Find(numerator);
    const Rates* bottom = Find(denominator);
    const auto rate = [cpu](const Rates& rates) {
      return cpu ? rates.cpu_bytes_per_second : rates.bytes_per_second;
    };
    if (top == nullptr || bottom == nullptr || rate(*bottom) <= 0) {
      std::printf("  %-58s %8s   %s\n", label, "n/a", goal);
      return;
    }
    std::printf("  %-58s %8.2f   %s\n", label, rate(*top) / rate(*bottom), goal);
  }

  std::map<std::string, Rates> rates_;
};

void RegisterBenchmarks() {
  benchmark::RegisterBenchmark("raw_write/pwrite_1MiB", BM_RawWrite, kChunkBytes, 0,
                               kWriteBytesPerIteration, false, false)
      ->UseRealTime();
  benchmark::RegisterBenchmark("raw_write/pwrite_64KiB+fdatasync", BM_RawWrite, kSyncEveryBytes,
                               kSyncEveryBytes, kSyncedWriteBytesPerIteration, false, false)
      ->UseRealTime();
  benchmark::RegisterBenchmark("raw_write/pwrite_1MiB+fdatasync_per_4MiB", BM_RawWrite, kChunkBytes,
                               kInFlightBytesMax, kSyncedWriteBytesPerIteration, false, false)
      ->UseRealTime();
  benchmark::RegisterBenchmark(kRawDeepWindow, BM_RawWrite, kChunkBytes, kDeepInFlightBytesMax,
                               4 * kDeepInFlightBytesMax, false, false)
      ->UseRealTime();
  benchmark::RegisterBenchmark("raw_disk/pwrite_1MiB+fdatasync_at_end", BM_RawWrite, kChunkBytes, 0,
                               kDiskWriteBytesPerIteration, true, false)
      ->UseRealTime();
  benchmark::RegisterBenchmark(kRawDisk, BM_RawWrite, kChunkBytes, 0, kDiskWriteBytesPerIteration,
                               true, true)
      ->UseRealTime();
  for (uint32_t write_buffer_bytes : {uint32_t{0}, kBufferedWriteBytes}) {
    const char* variant = write_buffer_bytes > 0 ? "+buffer" : "";
    for (size_t batch_bytes : {size_t{1} << 10, size_t{64} << 10}) {
      const std::string size_name = batch_bytes == 1024 ? "1KiB" : "64KiB";
      benchmark::RegisterBenchmark(
          absl::StrCat("append/", size_name, "/flush_never", variant).c_str(), BM_Append,
          batch_bytes, FlushPolicy::kNever, write_buffer_bytes, false, kInFlightBytesMax)
          ->UseRealTime();
      benchmark::RegisterBenchmark(
          absl::StrCat("append_to_disk/", size_name, "/flush_never", variant).c_str(), BM_Append,
          batch_bytes, FlushPolicy::kNever, write_buffer_bytes, true, kInFlightBytesMax)
          ->UseRealTime();
      benchmark::RegisterBenchmark(
          absl::StrCat("append/", size_name, "/flush_always", variant).c_str(), BM_Append,
          batch_bytes, FlushPolicy::kAlways, write_buffer_bytes, false, kInFlightBytesMax)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark(kDeepAlways, BM_Append, size_t{64} << 10, FlushPolicy::kAlways,
                               kBufferedWriteBytes, false, kDeepInFlightBytesMax)
      ->UseRealTime();
  benchmark::RegisterBenchmark("read/Read_1MiB", BM_LogRead)->UseRealTime();
  benchmark::RegisterBenchmark("raw_read/pread_1MiB", BM_RawRead)->UseRealTime();
  benchmark::RegisterBenchmark("memcpy/1MiB", BM_Memcpy)->UseRealTime();
}

}  // namespace
}  // namespace runnel::storage

int main(int argc, char** argv) {
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string base = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
  runnel::storage::BenchRoot() = absl::StrCat(base, "/runnel-log-bench-", ::getpid());
  std::error_code error;
  std::filesystem::create_directories(runnel::storage::BenchRoot(), error);
  if (error) {
    std::fprintf(stderr, "cannot create %s: %s\n", runnel::storage::BenchRoot().c_str(),
                 error.message().c_str());
    return 1;
  }
  // One second per figure unless told otherwise: steadier than the library's 0.5 s, and the whole
  // run still takes well under two minutes.
  std::vector<char*> args(argv, argv + argc);
  std::string min_time_flag = "--benchmark_min_time=1";
  bool has_min_time = false;
  for (int i = 1; i < argc; ++i) {
    has_min_time = has_min_time || std::string(argv[i]).rfind("--benchmark_min_time", 0) == 0;
  }
  if (!has_min_time) args.insert(args.begin() + 1, min_time_flag.data());
  argc = static_cast<int>(args.size());
  argv = args.data();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  runnel::storage::RegisterBenchmarks();
  runnel::storage::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary();
  benchmark::Shutdown();
  std::filesystem::remove_all(runnel::storage::BenchRoot(), error);
  return 0;
}
