// Tests of the partition log (broker/storage/partition_log.h): appends, reads and lookups, the
// durability pipeline (group commit, interval and explicit flushes, failed syncs and writes, a
// full disk), crash recovery in every loss mode, damage detection (on the medium and on the way
// from it, inside and outside the CRC), truncation and its crash safety, the log start,
// retention, rolling, compaction and its crash safety, Close(); on the simulated disk (a
// Simulator with one node whose program holds the log, crashed through SimDiskStorage) and on
// the real disk (PosixEnv over a temporary directory). The property test
// (partition_log_property_test.cc) checks random operation sequences against a model.
#include "broker/storage/partition_log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/env/env.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_env.h"
#include "broker/storage/log_checkpoint.h"
#include "broker/storage/log_index.h"
#include "broker/storage/partition_log_impl.h"
#include "broker/storage/record_batch.h"
#include "broker/storage/segment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/sim_disk.h"
#include "sim/simulator.h"
#include "tests/test_util.h"

namespace runnel::storage {
namespace {

using ::testing::HasSubstr;

constexpr char kDirectory[] = "orders-0";
constexpr int64_t kWaitUs = 30'000'000;

struct KeyValue {
  std::optional<std::string> key;
  std::optional<std::string> value;
};

// A client batch of `records` (base offset 0), timestamps from `timestamp_ms` on.
std::string MakeBatch(const std::vector<KeyValue>& records, int64_t timestamp_ms,
                      Compression compression = Compression::kNone) {
  std::vector<Record> built;
  for (size_t i = 0; i < records.size(); ++i) {
    Record record;
    record.offset_delta = static_cast<int32_t>(i);
    record.timestamp_delta = static_cast<int64_t>(i);
    record.key = records[i].key;
    record.value = records[i].value;
    built.push_back(std::move(record));
  }
  absl::StatusOr<std::string> batch = BuildBatch(
      BatchBuildOptions{.compression = compression, .base_timestamp = timestamp_ms}, built);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return *batch;
}

// A batch of `count` keyless records whose values are `value_bytes` long and tagged with `tag`.
std::string ValuesBatch(int count, size_t value_bytes, int tag, int64_t timestamp_ms = 1000) {
  std::vector<KeyValue> records;
  for (int i = 0; i < count; ++i) {
    std::string value = absl::StrCat("v", tag, "-", i, "-");
    value.resize(std::max(value.size(), value_bytes), static_cast<char>('a' + tag % 26));
    records.push_back(KeyValue{std::nullopt, value});
  }
  return MakeBatch(records, timestamp_ms);
}

std::vector<absl::string_view> Split(absl::string_view bytes) {
  size_t remainder = 0;
  absl::StatusOr<std::vector<absl::string_view>> batches = SplitBatches(bytes, &remainder);
  EXPECT_TRUE(batches.ok()) << batches.status();
  EXPECT_EQ(remainder, 0u);
  return batches.ok() ? *batches : std::vector<absl::string_view>{};
}

BatchHeader Header(absl::string_view batch) {
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
  EXPECT_TRUE(header.ok()) << header.status();
  return *header;
}

// Every batch from the log start to the end, each as stored.
absl::StatusOr<std::vector<std::string>> ReadAll(PartitionLog& log) {
  std::vector<std::string> batches;
  int64_t offset = log.log_start_offset();
  while (offset < log.log_end_offset()) {
    absl::StatusOr<std::string> bytes = log.Read(offset, 1 << 20, log.log_end_offset(), true);
    if (!bytes.ok()) return bytes.status();
    std::vector<absl::string_view> split = Split(*bytes);
    if (split.empty()) break;  // the rest was compacted away
    for (absl::string_view batch : split) {
      EXPECT_TRUE(ValidateBatch(batch, {.check_records = false}).ok());
      batches.emplace_back(batch);
    }
    offset = Header(split.back()).last_offset() + 1;
  }
  return batches;
}

// Checks OffsetForTimestamp(t) for t in [t_from, t_to) by `t_step` against a brute force over the
// batches a full read returns (so compacted batches, with their maxTimestamp recomputed, count as
// stored): the first batch whose maxTimestamp reaches t, or the log start when that batch
// straddles it; kNotFound when none does.
void ExpectTimestampLookups(PartitionLog& log, int64_t t_from, int64_t t_to, int64_t t_step) {
  absl::StatusOr<std::vector<std::string>> batches = ReadAll(log);
  ASSERT_TRUE(batches.ok()) << batches.status();
  for (int64_t t = t_from; t < t_to; t += t_step) {
    std::optional<int64_t> want;
    for (const std::string& batch : *batches) {
      const BatchHeader header = Header(batch);
      if (header.last_offset() >= log.log_start_offset() && header.max_timestamp >= t) {
        want = std::max(header.base_offset, log.log_start_offset());
        break;
      }
    }
    absl::StatusOr<int64_t> found = log.OffsetForTimestamp(t);
    if (want.has_value()) {
      ASSERT_TRUE(found.ok()) << "t " << t << ": " << found.status();
      EXPECT_EQ(*found, *want) << "t " << t;
    } else {
      EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound) << "t " << t;
    }
  }
}

// The node's program: the log and the Env it runs on.
struct Host {
  explicit Host(Env& env_in) : env(env_in) {}
  Env& env;
  std::unique_ptr<PartitionLog> log;
};

sim::SimDiskOptions QuietDisk() {
  sim::SimDiskOptions options;
  options.sync_latency_us_min = 200;
  options.sync_latency_us_max = 1000;
  return options;
}

// A simulator with one node whose program is a Host; the test opens the log on the node's Env.
class SimLogTest : public ::testing::Test {
 protected:
  explicit SimLogTest(sim::SimDiskOptions disk = QuietDisk())
      : simulator_(sim::SimulatorOptions{.seed = 7}) {
    sim::NodeOptions options;
    options.name = "broker-0";
    options.has_own_disk_options = true;
    options.disk = disk;
    node_ = simulator_.AddNode(options, [this](Env& env) {
      auto host = std::make_shared<Host>(env);
      host_ = host.get();
      return std::shared_ptr<void>(host);
    });
    simulator_.StartNode(node_);
  }

  ~SimLogTest() override { simulator_.CrashNode(node_, sim::CrashKind::kProcess); }

  // Opens the log in `directory` (the test's usual one by default) on the node's Env.
  absl::Status Open(const LogConfig& config, absl::string_view directory = kDirectory) {
    absl::StatusOr<std::unique_ptr<PartitionLog>> log =
        PartitionLog::Open(host_->env, std::string(directory), config);
    if (!log.ok()) return log.status();
    host_->log = *std::move(log);
    return absl::OkStatus();
  }
  void OpenOrDie(const LogConfig& config, absl::string_view directory = kDirectory) {
    const absl::Status opened = Open(config, directory);
    ASSERT_TRUE(opened.ok()) << opened;
  }

  PartitionLog& log() { return *host_->log; }
  Env& env() { return host_->env; }
  sim::SimDiskStorage& disk() { return simulator_.disk(node_); }

  // Power loss in the given mode for every file, then a fresh start of the node (no log open).
  void PowerLoss(sim::CrashLossMode mode) {
    host_ = nullptr;
    simulator_.CrashNode(node_, sim::CrashKind::kProcess);
    disk().CrashWithMode(mode);
    simulator_.StartNode(node_);
  }
  // The process dies; the page cache survives.
  void ProcessCrash() {
    host_ = nullptr;
    simulator_.CrashNode(node_, sim::CrashKind::kProcess);
    simulator_.StartNode(node_);
  }

  // Runs the simulation until `start` (which registers a completion callback) has its callback
  // called, for at most kWaitUs; `what` names the wait in the timeout error.
  absl::Status RunUntilCalledBack(
      absl::string_view what,
      const std::function<void(absl::AnyInvocable<void(const absl::Status&)>)>& start) {
    auto result = std::make_shared<std::optional<absl::Status>>();
    start([result](const absl::Status& status) { *result = status; });
    simulator_.RunUntilCondition([&] { return result->has_value(); }, simulator_.NowUs() + kWaitUs);
    if (!result->has_value()) return absl::DeadlineExceededError(absl::StrCat(what, " timed out"));
    return **result;
  }
  absl::Status WaitDurable(int64_t end_offset) {
    return RunUntilCalledBack(
        "WhenDurable", [&](auto callback) { log().WhenDurable(end_offset, std::move(callback)); });
  }
  absl::Status Close() {
    return RunUntilCalledBack("Close", [&](auto callback) { log().Close(std::move(callback)); });
  }

  // Compaction steps: syncs (so that the recovery point, below which the cleaner works, follows
  // the appends) and RunMaintenance() calls, with time for the cleaner's syncs and renames.
  void CompactSteps(int steps = 20) {
    for (int i = 0; i < steps; ++i) {
      log().Flush();
      RunFor(20'000);
      log().RunMaintenance();
      RunFor(50'000);
    }
  }

  // Close() then a restart of the node, which reopens the log.
  void CleanRestart(const LogConfig& config) {
    ASSERT_TRUE(Close().ok());
    host_ = nullptr;
    simulator_.StopNode(node_);
    simulator_.StartNode(node_);
    OpenOrDie(config);
  }

  AppendInfo Append(absl::string_view batch, int32_t epoch = 1) {
    absl::StatusOr<AppendInfo> info = log().AppendAsLeader(batch, epoch);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : AppendInfo{};
  }

  void RunFor(int64_t us) { simulator_.RunFor(us); }

  void ExpectDamageFailsOpen(const LogConfig& config, int64_t base, uint64_t position,
                             int64_t end_offset);

  // Flips one bit of a stored byte of a segment, as damage on the medium would.
  void FlipByte(int64_t base, uint64_t position) {
    absl::StatusOr<std::unique_ptr<File>> file =
        env().disk().Open(SegmentPath(base), OpenMode::kExisting);
    ASSERT_TRUE(file.ok());
    char byte = 0;
    ASSERT_TRUE((*file)->ReadAt(position, absl::MakeSpan(&byte, 1)).ok());
    byte = static_cast<char>(byte ^ 0x10);
    ASSERT_TRUE((*file)->WriteAt(position, absl::string_view(&byte, 1)).ok());
  }

  std::string SegmentPath(int64_t base) const {
    return absl::StrCat(kDirectory, "/", SegmentStem(base), ".log");
  }
  std::vector<int64_t> SegmentBases() {
    std::vector<int64_t> bases;
    absl::StatusOr<std::vector<std::string>> names = env().disk().List(kDirectory);
    EXPECT_TRUE(names.ok());
    for (const std::string& name : *names) {
      if (std::optional<int64_t> base = ParseSegmentFileName(name, ".log")) bases.push_back(*base);
    }
    return bases;
  }

  sim::Simulator simulator_;
  NodeId node_ = 0;
  Host* host_ = nullptr;
};

// The stored form of a client batch appended at `base` with leader epoch `epoch`.
std::string Stored(std::string batch, int64_t base, int32_t epoch) {
  SetBaseOffset(batch.data(), base);
  SetPartitionLeaderEpoch(batch.data(), epoch);
  return batch;
}

// Appends enough batches to fill many small segments and reads every one back: offsets are
// assigned densely, the leader epoch is stamped, each batch comes back byte for byte as stored.
// A read at an offset among the last batches starts at that batch exactly, where the sparse index
// alone would start at its last entry, up to an interval earlier; older offsets, and offsets after
// a trim until batches are counted again, fall back to the index.
TEST(SegmentIndexTest, ReadsOfRecentBatchesStartAtTheirBatch) {
  constexpr uint32_t kIntervalBytes = 4096;
  constexpr int kBatches = 200;
  SegmentIndex index(1000);
  std::vector<uint64_t> positions;
  auto add = [&](int i) {
    BatchHeader header;
    header.base_offset = 1000 + 2 * i;  // two records per batch
    header.last_offset_delta = 1;
    header.batch_length = 100;
    positions.push_back(index.size_bytes());
    index.AddBatch(header, index.size_bytes(), kIntervalBytes);
  };
  for (int i = 0; i < kBatches; ++i) add(i);
  const int recent = kBatches - 5;
  for (int64_t offset : {int64_t{1000} + 2 * recent, int64_t{1000} + 2 * recent + 1}) {
    const ScanStart start = index.LookupForRead(offset);
    EXPECT_TRUE(start.exact);
    EXPECT_EQ(start.base_offset, 1000 + 2 * recent);
    EXPECT_EQ(start.position, positions[recent]);
    EXPECT_LT(index.Lookup(offset).position, start.position);
  }
  const int old = 10;
  const ScanStart from_index = index.Lookup(1000 + 2 * old);
  const ScanStart for_read = index.LookupForRead(1000 + 2 * old);
  EXPECT_EQ(for_read.position, from_index.position);
  EXPECT_EQ(for_read.base_offset, from_index.base_offset);
  // Past the end there is no batch to start at.
  EXPECT_EQ(index.LookupForRead(1000 + 2 * kBatches).position,
            index.Lookup(1000 + 2 * kBatches).position);

  // Trim to batch 150: what the index knew of later batches is gone until they are replayed.
  const uint64_t replay_from = index.TrimTo(1000 + 2 * 150);
  EXPECT_EQ(index.LookupForRead(1000 + 2 * 149).position, index.Lookup(1000 + 2 * 149).position);
  const auto first_replayed = std::find(positions.begin(), positions.end(), replay_from);
  ASSERT_NE(first_replayed, positions.end());
  positions.resize(static_cast<size_t>(first_replayed - positions.begin()));
  for (int i = static_cast<int>(positions.size()); i < 150; ++i) add(i);
  EXPECT_EQ(index.end_offset(), 1000 + 2 * 150);
  const ScanStart after = index.LookupForRead(1000 + 2 * 149);
  EXPECT_TRUE(after.exact);
  EXPECT_EQ(after.position, positions[149]);
}

TEST_F(SimLogTest, AppendAndReadAcrossManySegments) {
  LogConfig config;
  config.segment_bytes = 2000;
  OpenOrDie(config);
  std::vector<std::string> appended;
  int64_t next_offset = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string batch = ValuesBatch(1 + i % 4, 50 + i % 7, i);
    AppendInfo info = Append(batch, 3);
    EXPECT_EQ(info.base_offset, next_offset);
    EXPECT_EQ(info.last_offset, next_offset + i % 4);
    EXPECT_EQ(info.log_append_time_ms, -1);
    EXPECT_EQ(info.log_start_offset, 0);
    next_offset = info.last_offset + 1;
    appended.push_back(Stored(batch, info.base_offset, 3));
  }
  EXPECT_EQ(log().log_end_offset(), next_offset);
  EXPECT_GT(log().segment_count(), 10u);
  EXPECT_EQ(log().stats().segments_rolled + 1, log().segment_count());
  EXPECT_EQ(log().stats().batches_appended, 200u);
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, appended);
  EXPECT_EQ(SegmentBases().size(), log().segment_count());
  uint64_t total = 0;
  for (const std::string& batch : appended) total += batch.size();
  EXPECT_EQ(log().size_bytes(), total);
}

// With write.buffer.bytes the segment file is written in whole windows of the buffer's size at
// multiples of it (a batch crossing a window's end is split across two writes), and the rest is
// held in memory until kWriteBufferHoldUsMax later. A process crash loses only what was held: the
// log reopens at the last batch the written windows hold whole.
TEST_F(SimLogTest, WriteBufferWritesWholeAlignedWindows) {
  constexpr uint32_t kWindowBytes = 4096;
  LogConfig config;
  config.flush_policy = FlushPolicy::kNever;
  config.write_buffer_bytes = kWindowBytes;
  OpenOrDie(config);
  const std::string path = absl::StrCat(kDirectory, "/", SegmentStem(0), kLogSuffix);
  std::string stored;
  std::vector<int64_t> batch_ends;  // the log end after each append, with its byte position
  std::vector<uint64_t> batch_end_positions;
  for (int i = 0; i < 13; ++i) {
    const std::string batch = ValuesBatch(3, 300, i);
    const AppendInfo info = Append(batch, 2);
    stored += Stored(batch, info.base_offset, 2);
    batch_ends.push_back(info.last_offset + 1);
    batch_end_positions.push_back(stored.size());
  }
  ASSERT_GT(stored.size(), 2 * kWindowBytes);
  ASSERT_NE(stored.size() % kWindowBytes, 0u);
  absl::StatusOr<std::string> in_file = disk().VolatileContents(path);
  ASSERT_TRUE(in_file.ok()) << in_file.status();
  EXPECT_EQ(in_file->size(), stored.size() / kWindowBytes * kWindowBytes);
  EXPECT_EQ(*in_file, stored.substr(0, in_file->size()));
  // Reads see the held bytes all the same.
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(absl::StrJoin(*read, ""), stored);

  // The log end the written windows hold whole: what a process crash now leaves.
  const size_t written_bytes = in_file->size();
  int64_t end_after_crash = 0;
  for (size_t i = 0; i < batch_ends.size() && batch_end_positions[i] <= written_bytes; ++i) {
    end_after_crash = batch_ends[i];
  }
  ProcessCrash();
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), end_after_crash);

  // Held bytes reach the file on their own, kWriteBufferHoldUsMax after they were appended.
  const std::string batch = ValuesBatch(2, 100, 99);
  const AppendInfo info = Append(batch, 2);
  const std::string expected_tail = Stored(batch, info.base_offset, 2);
  RunFor(kWriteBufferHoldUsMax + 1000);
  in_file = disk().VolatileContents(path);
  ASSERT_TRUE(in_file.ok()) << in_file.status();
  EXPECT_TRUE(absl::EndsWith(*in_file, expected_tail));
  EXPECT_EQ(in_file->size(), log().size_bytes());
}

// Under LogAppendTime the log stamps the wall-clock time as the batch's maxTimestamp and sets the
// attribute (and the CRC stays valid); under CreateTime the client's timestamps stay.
TEST_F(SimLogTest, LogAppendTimeIsStamped) {
  LogConfig config;
  config.message_timestamp_type = TimestampType::kLogAppendTime;
  OpenOrDie(config);
  RunFor(5'000);
  const int64_t now_ms = env().clock().WallNowMs();
  AppendInfo info = Append(ValuesBatch(3, 10, 1, /*timestamp_ms=*/1000), 9);
  EXPECT_EQ(info.log_append_time_ms, now_ms);
  absl::StatusOr<std::string> bytes = log().Read(0, 1 << 20, 100, true);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(ValidateBatch(*bytes, {}).ok());
  const BatchHeader header = Header(*bytes);
  EXPECT_TRUE(header.log_append_time());
  EXPECT_EQ(header.max_timestamp, now_ms);
  EXPECT_EQ(header.partition_leader_epoch, 9);
  ASSERT_TRUE(log().UpdateConfig(LogConfig{}).ok());
  info = Append(ValuesBatch(1, 10, 2, /*timestamp_ms=*/1000));
  EXPECT_EQ(info.log_append_time_ms, -1);
}

// A read from an offset inside a batch returns the whole batch that holds it first, then whole
// batches after it; a read at the log end returns nothing; outside [start, end] is kOutOfRange.
TEST_F(SimLogTest, ReadFromTheMiddleOfABatchReturnsTheBatchThatHoldsIt) {
  LogConfig config;
  config.segment_bytes = 1500;
  config.index_interval_bytes = 200;
  OpenOrDie(config);
  for (int i = 0; i < 40; ++i) Append(ValuesBatch(5, 20, i));
  for (int64_t offset = 0; offset < 200; offset += 3) {
    absl::StatusOr<std::string> bytes = log().Read(offset, 300, 200, true);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    std::vector<absl::string_view> batches = Split(*bytes);
    ASSERT_FALSE(batches.empty()) << offset;
    EXPECT_EQ(Header(batches.front()).base_offset, offset / 5 * 5) << offset;
  }
  absl::StatusOr<std::string> at_end = log().Read(200, 1 << 20, 200, true);
  ASSERT_TRUE(at_end.ok());
  EXPECT_TRUE(at_end->empty());
  EXPECT_EQ(log().Read(201, 1 << 20, 300, true).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log().Read(-1, 1 << 20, 300, true).status().code(), absl::StatusCode::kOutOfRange);
}

// bytes_max limits a read to whole batches that fit; a first batch larger than bytes_max comes
// back alone only with allow_oversized_first; end_offset_max stops before batches starting at or
// past it (a batch that straddles it is returned).
TEST_F(SimLogTest, ReadLimits) {
  OpenOrDie(LogConfig{});
  std::vector<size_t> sizes;
  for (int i = 0; i < 10; ++i) {
    const std::string batch = ValuesBatch(2, 100, i);
    sizes.push_back(batch.size());
    Append(batch);
  }
  absl::StatusOr<std::string> bytes = log().Read(0, sizes[0] * 3 + 5, 100, false);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(Split(*bytes).size(), 3u);
  bytes = log().Read(0, sizes[0] - 1, 100, false);
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(bytes->empty());
  bytes = log().Read(0, sizes[0] - 1, 100, true);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(Split(*bytes).size(), 1u);
  bytes = log().Read(0, 0, 100, true);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(Split(*bytes).size(), 1u);
  // end_offset_max 5: batches [0,1] [2,3] [4,5]; the last straddles 5 and is returned.
  bytes = log().Read(0, 1 << 20, 5, false);
  ASSERT_TRUE(bytes.ok());
  std::vector<absl::string_view> batches = Split(*bytes);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(Header(batches.back()).base_offset, 4);
  bytes = log().Read(2, 1 << 20, 3, true);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(Split(*bytes).size(), 1u);  // [2,3] starts below 3 and straddles it
}

// OffsetForTimestamp finds the first batch whose max timestamp reaches T, across segments and
// with timestamps that go up and down, compared with a brute-force answer for every T in range;
// kNotFound past the largest timestamp. The same after a restart (indexes from their files).
TEST_F(SimLogTest, OffsetForTimestamp) {
  LogConfig config;
  config.segment_bytes = 3000;
  config.index_interval_bytes = 150;
  OpenOrDie(config);
  testing::XorShift random(12345);
  for (int i = 0; i < 120; ++i) {
    const int64_t timestamp = 10'000 + i * 10 + static_cast<int64_t>(random.Below(400)) - 200;
    Append(ValuesBatch(1 + i % 3, 30, i, timestamp));
  }
  ASSERT_GT(log().segment_count(), 3u);
  ExpectTimestampLookups(log(), 9'000, 12'000, 7);
  CleanRestart(config);
  ExpectTimestampLookups(log(), 9'000, 12'000, 37);
}

// Group commit: 300 appends made back to back, each with a WhenDurable, share a handful of syncs;
// every callback runs once, OK, in order of offset.
TEST_F(SimLogTest, GroupCommitSharesSyncs) {
  OpenOrDie(LogConfig{});
  RunFor(100'000);  // the open-time sync
  const uint64_t syncs_before = log().stats().syncs;
  std::vector<int64_t> completed;
  for (int i = 0; i < 300; ++i) {
    AppendInfo info = Append(ValuesBatch(1, 20, i));
    log().WhenDurable(info.last_offset + 1, [&completed, info](const absl::Status& status) {
      EXPECT_TRUE(status.ok()) << status;
      completed.push_back(info.last_offset + 1);
    });
  }
  simulator_.RunUntilCondition([&] { return completed.size() == 300; },
                               simulator_.NowUs() + kWaitUs);
  ASSERT_EQ(completed.size(), 300u);
  EXPECT_TRUE(std::is_sorted(completed.begin(), completed.end()));
  EXPECT_EQ(log().durable_end_offset(), 300);
  EXPECT_LE(log().stats().syncs - syncs_before, 10u);
  // Appends trickling in while syncs are in flight are covered by the next sync.
  const uint64_t syncs_middle = log().stats().syncs;
  for (int i = 0; i < 200; ++i) {
    Append(ValuesBatch(1, 20, i));
    RunFor(50);
  }
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  EXPECT_LT(log().stats().syncs - syncs_middle, 60u);
}

// WhenDurable callbacks run in order of their end offsets, whatever the order of registration;
// one whose offsets are durable already runs at once; past the log end is kOutOfRange.
TEST_F(SimLogTest, WhenDurableRunsInOrder) {
  OpenOrDie(LogConfig{.flush_policy = FlushPolicy::kNever});
  for (int i = 0; i < 10; ++i) Append(ValuesBatch(1, 20, i));
  std::vector<int64_t> order;
  for (int64_t end : {7, 3, 10, 1, 5, 5}) {
    log().WhenDurable(end, [&order, end](const absl::Status& status) {
      EXPECT_TRUE(status.ok());
      order.push_back(end);
    });
  }
  RunFor(1'000'000);
  EXPECT_TRUE(order.empty());  // kNever: nothing syncs until Flush()
  log().Flush();
  simulator_.RunUntilCondition([&] { return order.size() == 6; }, simulator_.NowUs() + kWaitUs);
  EXPECT_EQ(order, (std::vector<int64_t>{1, 3, 5, 5, 7, 10}));
  bool ran = false;
  log().WhenDurable(4, [&ran](const absl::Status& status) { ran = status.ok(); });
  EXPECT_TRUE(ran);
  absl::Status past;
  log().WhenDurable(11, [&past](const absl::Status& status) { past = status; });
  EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange);
}

// kInterval syncs on a timer: nothing is durable before flush.ms, everything after.
TEST_F(SimLogTest, IntervalFlush) {
  OpenOrDie(LogConfig{.flush_policy = FlushPolicy::kInterval, .flush_interval_ms = 500});
  RunFor(100'000);
  Append(ValuesBatch(1, 20, 1));
  RunFor(300'000);
  EXPECT_EQ(log().durable_end_offset(), 0);
  RunFor(400'000);
  EXPECT_EQ(log().durable_end_offset(), 1);
}

// The simulated-disk tests that run once per crash loss mode.
class SimLogLossModeTest : public SimLogTest,
                           public ::testing::WithParamInterface<sim::CrashLossMode> {};

INSTANTIATE_TEST_SUITE_P(EveryLossMode, SimLogLossModeTest,
                         ::testing::Values(sim::CrashLossMode::kLoseAll,
                                           sim::CrashLossMode::kPrefix, sim::CrashLossMode::kTorn),
                         [](const ::testing::TestParamInfo<sim::CrashLossMode>& info) {
                           return std::string(sim::CrashLossModeName(info.param));
                         });

// Power loss in the mode under test, several times over: batches reported durable survive, and
// the recovered log is a batch prefix of what was appended (every batch byte for byte).
TEST_P(SimLogLossModeTest, PowerLossKeepsDurableBatches) {
  LogConfig config;
  config.segment_bytes = 3000;
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    OpenOrDie(config);
    absl::StatusOr<std::vector<std::string>> before = ReadAll(log());
    ASSERT_TRUE(before.ok());
    std::vector<std::string> appended = *before;
    for (int i = 0; i < 10 + round; ++i) {
      const std::string batch = ValuesBatch(1 + i % 3, 40 + 13 * round, i);
      AppendInfo info = Append(batch, round + 1);
      appended.push_back(Stored(batch, info.base_offset, round + 1));
    }
    ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
    const size_t durable_batches = appended.size();
    // More appends, some with their syncs in flight when the power goes.
    for (int i = 0; i < 15; ++i) {
      const std::string batch = ValuesBatch(2, 300, 100 + i);
      AppendInfo info = Append(batch, round + 1);
      appended.push_back(Stored(batch, info.base_offset, round + 1));
      RunFor(137 * (round + 1));
    }
    PowerLoss(GetParam());
    OpenOrDie(config);
    absl::StatusOr<std::vector<std::string>> recovered = ReadAll(log());
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    ASSERT_GE(recovered->size(), durable_batches);
    ASSERT_LE(recovered->size(), appended.size());
    for (size_t i = 0; i < recovered->size(); ++i) {
      ASSERT_EQ((*recovered)[i], appended[i]) << "batch " << i;
    }
    EXPECT_EQ(log().log_end_offset(),
              recovered->empty() ? 0 : Header(recovered->back()).last_offset() + 1);
    RunFor(100'000);
    host_->log.reset();
  }
}

// A torn tail (garbage, or a batch cut short, after the last whole batch) is cut at Open: the
// log ends at the last whole batch, the bytes are counted in stats, and the file is cut once the
// cut is durable; new appends then go where the garbage was.
TEST_F(SimLogTest, TornTailIsCut) {
  OpenOrDie(LogConfig{});
  for (int i = 0; i < 5; ++i) Append(ValuesBatch(2, 50, i));
  ASSERT_TRUE(WaitDurable(5 * 2).ok());
  const std::string partial = ValuesBatch(2, 50, 99).substr(0, 70);
  host_->log.reset();  // a crash, as far as the log knows
  {
    absl::StatusOr<std::unique_ptr<File>> file =
        env().disk().Open(SegmentPath(0), OpenMode::kExisting);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Append(partial).ok());
    ASSERT_TRUE((*file)->Append(std::string(300, '\xab')).ok());
  }
  ProcessCrash();
  OpenOrDie(LogConfig{});
  EXPECT_EQ(log().log_end_offset(), 10);
  EXPECT_EQ(log().stats().recovery_truncated_bytes, partial.size() + 300);
  AppendInfo info = Append(ValuesBatch(1, 10, 7));
  EXPECT_EQ(info.base_offset, 10);
  ASSERT_TRUE(WaitDurable(11).ok());
  absl::StatusOr<std::vector<std::string>> batches = ReadAll(log());
  ASSERT_TRUE(batches.ok());
  EXPECT_EQ(batches->size(), 6u);
  // The cut and the new batch are durable: a power loss keeps exactly this.
  PowerLoss(sim::CrashLossMode::kLoseAll);
  OpenOrDie(LogConfig{});
  EXPECT_EQ(log().log_end_offset(), 11);
  EXPECT_EQ(log().stats().recovery_truncated_bytes, 0u);
}

// Damage on the medium that recovery must not cut as a torn tail: `base`'s segment gets one bit
// flipped at `position`, then the process restarts. Open() must fail with kDataLoss naming the
// segment file and byte, and delete nothing; once the bit is flipped back, Open() succeeds with the
// log ending at `end_offset`.
void SimLogTest::ExpectDamageFailsOpen(const LogConfig& config, int64_t base, uint64_t position,
                                       int64_t end_offset) {
  const std::vector<int64_t> bases = SegmentBases();
  host_->log.reset();
  FlipByte(base, position);
  ProcessCrash();
  absl::Status opened = Open(config);
  EXPECT_EQ(opened.code(), absl::StatusCode::kDataLoss) << opened;
  EXPECT_THAT(opened.message(), HasSubstr(SegmentPath(base)));
  EXPECT_THAT(opened.message(), HasSubstr("byte"));
  EXPECT_EQ(SegmentBases(), bases);  // nothing deleted
  FlipByte(base, position);          // repaired
  ProcessCrash();
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), end_offset);
}

// Damage below the recovery point fails Open(): here in the last segment, below the recovery point
// a clean Close() recorded (the segment holding the recovery point is scanned from its start).
TEST_F(SimLogTest, DamageBelowTheRecoveryPointFailsOpen) {
  LogConfig config;
  OpenOrDie(config);
  for (int i = 0; i < 40; ++i) Append(ValuesBatch(2, 60, i));
  CleanRestart(config);  // the recovery point is now the log end
  for (int i = 0; i < 3; ++i) Append(ValuesBatch(2, 60, 100 + i));
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  ExpectDamageFailsOpen(config, 0, 100, 86);
}

// The same for an old segment whose index file is missing, so that Open() must scan it: damage in
// its middle fails Open().
TEST_F(SimLogTest, DamageInAnOldSegmentFailsOpen) {
  LogConfig config;
  config.segment_bytes = 2000;
  OpenOrDie(config);
  for (int i = 0; i < 40; ++i) Append(ValuesBatch(2, 60, i));
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GT(bases.size(), 3u);
  ASSERT_TRUE(
      env().disk().Remove(absl::StrCat(kDirectory, "/", SegmentStem(bases[1]), ".index")).ok());
  ExpectDamageFailsOpen(config, bases[1], 500, 80);
}

// Reads verify every batch: damage in a stored batch is reported as kDataLoss naming the file and
// byte position (never served), while a bit flipped on the way from the disk is read again.
TEST_F(SimLogTest, ReadsVerifyEveryBatch) {
  LogConfig config;
  config.index_interval_bytes = 64;
  OpenOrDie(config);
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 100, i));
  ASSERT_TRUE(WaitDurable(20).ok());
  for (int i = 0; i < 20; ++i) {
    disk().CorruptNextRead();
    absl::StatusOr<std::string> bytes = log().Read(i, 1 << 20, 20, true);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    for (absl::string_view batch : Split(*bytes)) ASSERT_TRUE(ValidateBatch(batch, {}).ok());
    ASSERT_EQ(Split(*bytes).size(), static_cast<size_t>(20 - i));
  }
  EXPECT_GE(log().stats().corrupt_reads, 1u);
  // Damage a stored batch (the 5th) in place.
  absl::StatusOr<std::string> fifth = log().Read(5, 1, 6, true);
  ASSERT_TRUE(fifth.ok());
  uint64_t position = 0;
  {
    absl::StatusOr<std::string> first_five = log().Read(0, 1 << 20, 5, true);
    ASSERT_TRUE(first_five.ok());
    position = first_five->size();
  }
  absl::StatusOr<std::unique_ptr<File>> file =
      env().disk().Open(SegmentPath(0), OpenMode::kExisting);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->WriteAt(position + 80, "X").ok());
  absl::StatusOr<std::string> damaged = log().Read(3, 1 << 20, 20, true);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(damaged.status().message(), HasSubstr(SegmentPath(0)));
  EXPECT_THAT(damaged.status().message(), HasSubstr(absl::StrCat("byte ", position)));
  // Batches before it are still served.
  absl::StatusOr<std::string> before = log().Read(0, 1 << 20, 5, true);
  EXPECT_TRUE(before.ok());
}

// Missing, truncated and garbage index files are rebuilt from their segments: reads and timestamp
// lookups give the same answers, and the next Close() writes them again.
TEST_F(SimLogTest, MissingOrGarbageIndexFilesAreRebuilt) {
  LogConfig config;
  config.segment_bytes = 2500;
  config.index_interval_bytes = 100;
  OpenOrDie(config);
  for (int i = 0; i < 60; ++i) Append(ValuesBatch(1 + i % 2, 50, i, 1000 + i * 10));
  absl::StatusOr<std::vector<std::string>> expected = ReadAll(log());
  ASSERT_TRUE(expected.ok());
  absl::StatusOr<int64_t> by_time = log().OffsetForTimestamp(1300);
  ASSERT_TRUE(by_time.ok());
  ASSERT_TRUE(Close().ok());
  host_->log.reset();
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GE(bases.size(), 4u);
  auto path = [&](int64_t base, absl::string_view suffix) {
    return absl::StrCat(kDirectory, "/", SegmentStem(base), suffix);
  };
  ASSERT_TRUE(env().disk().Remove(path(bases[0], ".index")).ok());
  ASSERT_TRUE(WriteFreshFile(env().disk(), path(bases[1], ".timeindex"), "garbage!garbage!").ok());
  {
    absl::StatusOr<std::unique_ptr<File>> file =
        env().disk().Open(path(bases[2], ".index"), OpenMode::kExisting);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Truncate(8).ok());
  }
  ProcessCrash();
  OpenOrDie(config);
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, *expected);
  absl::StatusOr<int64_t> again = log().OffsetForTimestamp(1300);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *by_time);
  ASSERT_TRUE(Close().ok());
  absl::StatusOr<std::string> rebuilt =
      ReadWholeFile(env().disk(), path(bases[0], ".index"), 1 << 20);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_GT(rebuilt->size(), 0u);
}

// Index files a crashed incarnation wrote but never synced survive a process crash in the page
// cache, where the reopened log finds them and adopts them. It must not count them durable: its
// first cycle syncs the directory, which would make their names durable with contents that a power
// loss then loses or tears (a torn time index passes the checks Open() makes, and misleads
// OffsetForTimestamp). Here one incarnation rebuilds segment 0's index files and dies before
// syncing them; once the next incarnation's first cycle is done, every index file on disk must be
// durable as it is (the simulated disk tells what a power loss would leave).
TEST_F(SimLogTest, IndexFilesFoundAfterAProcessCrashAreMadeDurable) {
  LogConfig config;
  config.segment_bytes = 600;
  config.index_interval_bytes = 64;
  OpenOrDie(config);
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 60, i, 1000 + i * 10));
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  RunFor(100'000);
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GT(bases.size(), 3u);
  auto path = [&](int64_t base, absl::string_view suffix) {
    return absl::StrCat(kDirectory, "/", SegmentStem(base), suffix);
  };
  host_->log.reset();
  ASSERT_TRUE(env().disk().Remove(path(bases[0], kOffsetIndexSuffix)).ok());
  ProcessCrash();
  OpenOrDie(config);  // rebuilds segment 0's index and writes its files; their sync is in flight
  ProcessCrash();
  OpenOrDie(config);
  RunFor(100'000);
  for (int64_t base : bases) {
    if (base == bases.back()) break;  // the active segment has no index files
    for (absl::string_view suffix : {kOffsetIndexSuffix, kTimeIndexSuffix}) {
      absl::StatusOr<std::string> durable = disk().DurableContents(path(base, suffix));
      absl::StatusOr<std::string> current = disk().VolatileContents(path(base, suffix));
      ASSERT_TRUE(current.ok()) << path(base, suffix) << ": " << current.status();
      ASSERT_TRUE(durable.ok()) << path(base, suffix) << ": " << durable.status();
      EXPECT_EQ(*durable, *current) << path(base, suffix);
    }
  }
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  ExpectTimestampLookups(log(), 990, 1210, 3);
}

// A clean Close() lets Open() skip the scan: evidence is that damage written into the middle of
// the last segment after Close() goes unnoticed by Open() (no bytes cut, no error; reads report
// it), while the same damage without the clean-shutdown marker fails Open() (the recovery point
// Close() recorded covers it).
TEST_F(SimLogTest, CleanShutdownSkipsTheScan) {
  LogConfig config;
  config.index_interval_bytes = 64;
  OpenOrDie(config);
  for (int i = 0; i < 30; ++i) Append(ValuesBatch(1, 80, i));
  ASSERT_TRUE(Close().ok());
  EXPECT_TRUE(env().disk().Exists(absl::StrCat(kDirectory, "/", kCleanShutdownFileName)));
  EXPECT_EQ(log().AppendAsLeader(ValuesBatch(1, 1, 1), 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  host_->log.reset();
  {
    absl::StatusOr<std::unique_ptr<File>> file =
        env().disk().Open(SegmentPath(0), OpenMode::kExisting);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(300, "XY").ok());
  }
  simulator_.StopNode(node_);
  simulator_.StartNode(node_);
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), 30);
  EXPECT_EQ(log().stats().recovery_truncated_bytes, 0u);
  EXPECT_EQ(log().Read(0, 1 << 20, 30, true).status().code(), absl::StatusCode::kDataLoss);
  // The marker is gone once Open() ran: a crash now is noticed.
  RunFor(100'000);
  EXPECT_FALSE(env().disk().Exists(absl::StrCat(kDirectory, "/", kCleanShutdownFileName)));
  ProcessCrash();
  EXPECT_EQ(Open(config).code(), absl::StatusCode::kDataLoss);
}

// Retention by bytes deletes the oldest segments while the rest still reaches retention.bytes;
// the log start moves to the first segment kept and survives a power loss once durable.
TEST_F(SimLogTest, RetentionByBytes) {
  LogConfig config;
  config.segment_bytes = 1000;
  config.retention_bytes = 3000;
  config.retention_ms = -1;
  OpenOrDie(config);
  for (int i = 0; i < 60; ++i) Append(ValuesBatch(1, 100, i));
  ASSERT_TRUE(WaitDurable(60).ok());
  const size_t segments_before = log().segment_count();
  log().RunMaintenance();
  EXPECT_LT(log().segment_count(), segments_before);
  EXPECT_GE(log().size_bytes(), 3000u);
  EXPECT_LT(log().size_bytes() - 1000, 3000u);
  EXPECT_GT(log().log_start_offset(), 0);
  EXPECT_EQ(log().stats().segments_deleted, segments_before - log().segment_count());
  const int64_t start = log().log_start_offset();
  EXPECT_EQ(log().Read(start - 1, 100, 60, true).status().code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(WaitDurable(60).ok());
  RunFor(100'000);
  EXPECT_EQ(SegmentBases().size(), log().segment_count());  // files deleted
  PowerLoss(sim::CrashLossMode::kLoseAll);
  OpenOrDie(config);
  EXPECT_EQ(log().log_start_offset(), start);
  EXPECT_EQ(log().log_end_offset(), 60);
}

// Retention by time deletes segments whose largest timestamp is older than retention.ms, oldest
// first, stopping at the first recent one; the active segment goes too (after a roll) when old.
TEST_F(SimLogTest, RetentionByTime) {
  LogConfig config;
  config.segment_bytes = 1000;
  config.retention_ms = 3'600'000;
  OpenOrDie(config);
  const int64_t now_ms = env().clock().WallNowMs();
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 100, i, now_ms - 7'200'000));
  const int64_t recent_from = log().log_end_offset();
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 100, i, now_ms - 60'000));
  log().RunMaintenance();
  EXPECT_GT(log().log_start_offset(), 0);
  EXPECT_LE(log().log_start_offset(), recent_from);
  absl::StatusOr<std::string> first = log().Read(log().log_start_offset(), 1, 100, true);
  ASSERT_TRUE(first.ok());
  // Everything is old by now: even the active segment goes, after a roll.
  simulator_.clock(node_).JumpWallMs(10'000'000);
  log().RunMaintenance();
  EXPECT_EQ(log().log_start_offset(), 40);
  EXPECT_EQ(log().log_end_offset(), 40);
  EXPECT_EQ(log().segment_count(), 1u);
  AppendInfo info = Append(ValuesBatch(1, 10, 1));
  EXPECT_EQ(info.base_offset, 40);
  EXPECT_EQ(info.log_start_offset, 40);
}

// A segment rolls when the next batch would pass segment.bytes, and when segment.ms passed since
// it was created (at the next append or RunMaintenance()), never while it is empty.
TEST_F(SimLogTest, RollBySizeAndByAge) {
  LogConfig config;
  config.segment_bytes = 1000;
  config.segment_ms = 1000;
  config.retention_ms = -1;
  OpenOrDie(config);
  const std::string batch = ValuesBatch(1, 300, 1);
  ASSERT_LT(batch.size() * 2, 1000u);
  ASSERT_GT(batch.size() * 3, 1000u);
  Append(batch);
  Append(batch);
  EXPECT_EQ(log().segment_count(), 1u);
  Append(batch);
  EXPECT_EQ(log().segment_count(), 2u);
  RunFor(1'100'000);
  log().RunMaintenance();
  EXPECT_EQ(log().segment_count(), 3u);
  RunFor(1'100'000);
  log().RunMaintenance();  // the active segment is empty: no roll
  EXPECT_EQ(log().segment_count(), 3u);
  Append(batch);
  RunFor(1'100'000);
  Append(batch);  // rolled by age at the append
  EXPECT_EQ(log().segment_count(), 4u);
  EXPECT_EQ(log().stats().segments_rolled, 3u);
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 5u);
}

// TruncateTo cuts whole batches, in the active segment or across segments, of unsynced or durable
// data; appends continue at the cut with the same offsets; a truncation that is not yet durable
// may be undone by a power loss (the log is as before or as after), one that is durable stays.
TEST_F(SimLogTest, TruncateToThenAppend) {
  LogConfig config;
  config.segment_bytes = 1500;
  OpenOrDie(config);
  std::vector<std::string> appended;
  for (int i = 0; i < 30; ++i) {
    const std::string batch = ValuesBatch(2, 60, i);
    AppendInfo info = Append(batch);
    appended.push_back(Stored(batch, info.base_offset, 1));
  }
  ASSERT_TRUE(WaitDurable(60).ok());
  ASSERT_GT(log().segment_count(), 3u);
  EXPECT_EQ(log().TruncateTo(61).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log().TruncateTo(31).code(), absl::StatusCode::kInvalidArgument);  // inside a batch
  EXPECT_EQ(log().log_end_offset(), 60);
  // Durable data across segments: cut at 20.
  ASSERT_TRUE(log().TruncateTo(20).ok());
  EXPECT_EQ(log().log_end_offset(), 20);
  EXPECT_LE(log().durable_end_offset(), 20);
  appended.resize(10);
  for (int i = 0; i < 5; ++i) {
    const std::string batch = ValuesBatch(3, 40, 100 + i);
    AppendInfo info = Append(batch, 2);
    EXPECT_EQ(info.base_offset, 20 + 3 * i);
    appended.push_back(Stored(batch, info.base_offset, 2));
  }
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, appended);
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  // Unsynced data in the active segment: cut at once.
  Append(ValuesBatch(1, 10, 200), 2);
  ASSERT_TRUE(log().TruncateTo(35).ok());
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  read = ReadAll(log());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, appended);
  EXPECT_EQ(log().log_end_offset(), 35);
}

// A truncation that is not durable yet: a power loss in the mode under test, at several moments
// of the truncation's course, leaves the log as before it or as after it, never a mix.
TEST_P(SimLogLossModeTest, TruncationIsCrashSafe) {
  LogConfig config;
  config.segment_bytes = 1200;
  for (int wait_us : {0, 300, 900, 2000, 5000}) {
    SCOPED_TRACE(absl::StrCat("power loss after ", wait_us, "us"));
    OpenOrDie(config);
    ASSERT_TRUE(log().TruncateTo(log().log_start_offset()).ok() ||
                log().log_start_offset() == log().log_end_offset());
    ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
    std::vector<std::string> before;
    const int64_t base = log().log_end_offset();
    for (int i = 0; i < 20; ++i) {
      const std::string batch = ValuesBatch(1, 80, i);
      AppendInfo info = Append(batch);
      before.push_back(Stored(batch, info.base_offset, 1));
    }
    ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
    ASSERT_TRUE(log().TruncateTo(base + 5).ok());
    std::vector<std::string> after(before.begin(), before.begin() + 5);
    for (int i = 0; i < 3; ++i) {
      const std::string batch = ValuesBatch(2, 30, 50 + i);
      AppendInfo info = Append(batch);
      after.push_back(Stored(batch, info.base_offset, 1));
    }
    RunFor(wait_us);
    PowerLoss(GetParam());
    OpenOrDie(config);
    absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
    ASSERT_TRUE(read.ok()) << read.status();
    auto is_prefix = [&](const std::vector<std::string>& of) {
      if (read->size() > of.size()) return false;
      return std::equal(read->begin(), read->end(), of.begin());
    };
    // As before (all of it: it was durable) or as after (a prefix holding at least the kept part).
    EXPECT_TRUE(*read == before || (read->size() >= 5 && is_prefix(after)));
    host_->log.reset();
    PowerLoss(sim::CrashLossMode::kLoseAll);
  }
}

// A truncation made durable (a WhenDurable(log end) registered after it completed) stays whatever
// a power loss does.
TEST_F(SimLogTest, DurableTruncationSurvivesPowerLoss) {
  LogConfig config;
  config.segment_bytes = 1200;
  OpenOrDie(config);
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 80, i));
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  ASSERT_TRUE(log().TruncateTo(7).ok());
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), 7);
}

// AdvanceLogStartOffset hides offsets below it at once, deletes whole segments below it, and the
// new start survives a power loss once a WhenDurable after it completed.
TEST_F(SimLogTest, AdvanceLogStartOffsetSurvivesRestart) {
  LogConfig config;
  config.segment_bytes = 1000;
  OpenOrDie(config);
  for (int i = 0; i < 30; ++i) Append(ValuesBatch(2, 60, i));
  EXPECT_EQ(log().AdvanceLogStartOffset(61).code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(log().AdvanceLogStartOffset(25).ok());
  EXPECT_EQ(log().log_start_offset(), 25);
  EXPECT_EQ(log().Read(24, 100, 60, true).status().code(), absl::StatusCode::kOutOfRange);
  absl::StatusOr<std::string> first = log().Read(25, 1, 60, true);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Header(*first).base_offset, 24);  // the batch holding 25
  EXPECT_GT(log().stats().segments_deleted, 0u);
  ASSERT_TRUE(log().AdvanceLogStartOffset(10).ok());  // lower: no-op
  EXPECT_EQ(log().log_start_offset(), 25);
  ASSERT_TRUE(WaitDurable(60).ok());
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  EXPECT_EQ(log().log_start_offset(), 25);
  EXPECT_EQ(log().log_end_offset(), 60);
  absl::StatusOr<int64_t> by_time = log().OffsetForTimestamp(0);
  ASSERT_TRUE(by_time.ok());
  EXPECT_EQ(*by_time, 25);
}

// Invalid batches are rejected with nothing appended: garbage and truncated bytes
// (kInvalidArgument), a CRC mismatch (kDataLoss), a batch past max.message.bytes (kOutOfRange), a
// follower batch at the wrong offset or with offsets going back (kInvalidArgument).
TEST_F(SimLogTest, InvalidBatchesAreRejected) {
  LogConfig config;
  config.max_message_bytes = 1000;
  OpenOrDie(config);
  Append(ValuesBatch(1, 10, 1));
  const std::string good = ValuesBatch(2, 10, 2);
  EXPECT_EQ(log().AppendAsLeader("not a batch", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log().AppendAsLeader(good.substr(0, good.size() - 1), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string corrupt = good;
  corrupt[corrupt.size() - 3] ^= 1;
  EXPECT_EQ(log().AppendAsLeader(corrupt, 1).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(log().AppendAsLeader(ValuesBatch(1, 2000, 3), 1).status().code(),
            absl::StatusCode::kOutOfRange);
  std::string follower = Stored(good, 5, 1);
  EXPECT_EQ(log().AppendAsFollower(follower).status().code(), absl::StatusCode::kInvalidArgument);
  std::string twice = Stored(good, 1, 1) + Stored(good, 2, 1);  // second overlaps the first
  EXPECT_EQ(log().AppendAsFollower(twice).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log().AppendAsFollower(Stored(good, 1, 1) + "xyz").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log().log_end_offset(), 1);
  EXPECT_EQ(log().stats().batches_appended, 1u);
  // Valid follower batches, with a gap between them (as compacted leader data has).
  absl::StatusOr<AppendInfo> info = log().AppendAsFollower(Stored(good, 1, 4) + Stored(good, 7, 4));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->base_offset, 1);
  EXPECT_EQ(info->last_offset, 8);
  EXPECT_EQ(log().log_end_offset(), 9);
  absl::StatusOr<std::string> read = log().Read(3, 1 << 20, 9, true);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(Header(*read).base_offset, 7);  // 3..6 is a gap
}

// A full disk makes an append fail with kResourceExhausted and nothing appended; the log goes on
// once there is room.
TEST_F(SimLogTest, DiskFullIsResourceExhausted) {
  OpenOrDie(LogConfig{});
  Append(ValuesBatch(1, 10, 1));
  disk().SetFull(true);
  EXPECT_EQ(log().AppendAsLeader(ValuesBatch(1, 10, 2), 1).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(log().log_end_offset(), 1);
  disk().SetFull(false);
  AppendInfo info = Append(ValuesBatch(1, 10, 3));
  EXPECT_EQ(info.base_offset, 1);
  ASSERT_TRUE(WaitDurable(2).ok());
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 2u);
}

// A failed sync fails the log: every waiter gets the error, appends are refused with
// kUnavailable, durable_end_offset() stays where it was; reopening recovers.
TEST_F(SimLogTest, FailedSyncFailsWaitersAndRefusesAppends) {
  OpenOrDie(LogConfig{});
  RunFor(100'000);
  Append(ValuesBatch(1, 10, 1));
  ASSERT_TRUE(WaitDurable(1).ok());
  disk().FailNextSync();
  Append(ValuesBatch(1, 10, 2));
  std::vector<absl::Status> results;
  log().WhenDurable(2, [&results](const absl::Status& status) { results.push_back(status); });
  RunFor(100'000);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(log().durable_end_offset(), 1);
  EXPECT_EQ(log().AppendAsLeader(ValuesBatch(1, 10, 3), 1).status().code(),
            absl::StatusCode::kUnavailable);
  absl::Status late;
  log().WhenDurable(2, [&late](const absl::Status& status) { late = status; });
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(log().TruncateTo(1).code(), absl::StatusCode::kUnavailable);
  ProcessCrash();
  OpenOrDie(LogConfig{});
  EXPECT_EQ(log().log_end_offset(), 2);
  ASSERT_TRUE(WaitDurable(2).ok());
}

// A failed write fails the log the same way; nothing of the failed append stays.
TEST_F(SimLogTest, FailedWriteRefusesAppends) {
  OpenOrDie(LogConfig{});
  Append(ValuesBatch(1, 10, 1));
  disk().FailNextWrite();
  EXPECT_EQ(log().AppendAsLeader(ValuesBatch(1, 10, 2), 1).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(log().log_end_offset(), 1);
  EXPECT_EQ(log().AppendAsLeader(ValuesBatch(1, 10, 3), 1).status().code(),
            absl::StatusCode::kUnavailable);
  ProcessCrash();
  OpenOrDie(LogConfig{});
  EXPECT_EQ(log().log_end_offset(), 1);
}

// Keyed records for compaction tests: `rounds` rounds over `keys` keys, each record's value
// naming its round, so the latest per key is round rounds - 1.
struct KeyedHistory {
  // offset -> (key, value) of every record appended.
  std::vector<std::pair<std::string, std::optional<std::string>>> records;
};

void AppendKeyed(PartitionLog& log, KeyedHistory& history, int keys, int rounds,
                 int64_t timestamp_ms) {
  for (int round = 0; round < rounds; ++round) {
    for (int key = 0; key < keys; key += 2) {
      std::vector<KeyValue> records;
      for (int k = key; k < std::min(keys, key + 2); ++k) {
        records.push_back(
            KeyValue{absl::StrCat("key-", k),
                     absl::StrCat("value-", k, "-round-", round, std::string(40, 'x'))});
      }
      absl::StatusOr<AppendInfo> info = log.AppendAsLeader(MakeBatch(records, timestamp_ms), 1);
      ASSERT_TRUE(info.ok()) << info.status();
      for (const KeyValue& record : records)
        history.records.emplace_back(*record.key, record.value);
    }
  }
}

// Checks a compacted log against the history: every record kept is the one appended at its offset,
// and the latest record of every key below `covered_end` is kept.
void CheckCompacted(PartitionLog& log, const KeyedHistory& history, bool expect_removed) {
  absl::StatusOr<std::vector<std::string>> batches = ReadAll(log);
  ASSERT_TRUE(batches.ok()) << batches.status();
  std::map<std::string, int64_t> latest;
  for (size_t offset = 0; offset < history.records.size(); ++offset) {
    latest[history.records[offset].first] = static_cast<int64_t>(offset);
  }
  std::set<int64_t> present;
  for (const std::string& batch : *batches) {
    const BatchHeader header = Header(batch);
    absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
    ASSERT_TRUE(records.ok());
    for (const Record& record : *records) {
      const int64_t offset = header.base_offset + record.offset_delta;
      ASSERT_LT(offset, static_cast<int64_t>(history.records.size()));
      EXPECT_EQ(record.key, history.records[offset].first) << offset;
      EXPECT_EQ(record.value, history.records[offset].second) << offset;
      present.insert(offset);
    }
  }
  for (const auto& [key, offset] : latest)
    EXPECT_TRUE(present.count(offset)) << key << "@" << offset;
  if (expect_removed) {
    EXPECT_LT(present.size(), history.records.size());
  }
}

// Compaction keeps the latest record of every key, with its offset unchanged, and removes older
// ones; it never touches the active segment; reads keep working between steps; a restart keeps
// the result.
TEST_F(SimLogTest, CompactionKeepsTheLatestRecordOfEveryKey) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_bytes = 2000;
  config.min_cleanable_dirty_ratio = 0.3;
  OpenOrDie(config);
  KeyedHistory history;
  AppendKeyed(log(), history, 10, 8, env().clock().WallNowMs());
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  const uint64_t size_before = log().size_bytes();
  for (int i = 0; i < 20; ++i) {
    log().RunMaintenance();
    RunFor(50'000);
    CheckCompacted(log(), history, false);
  }
  EXPECT_GT(log().stats().compactions, 0u);
  EXPECT_GT(log().stats().records_compacted_away, 0u);
  EXPECT_LT(log().size_bytes(), size_before);
  CheckCompacted(log(), history, true);
  EXPECT_EQ(log().log_end_offset(), static_cast<int64_t>(history.records.size()));
  // Truncating below what compaction relied on is refused; above it is fine.
  EXPECT_EQ(log().TruncateTo(0).code(), absl::StatusCode::kFailedPrecondition);
  CleanRestart(config);
  CheckCompacted(log(), history, true);
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  CheckCompacted(log(), history, true);
}

// A power loss at any point of compaction (output written, synced, renamed or not) leaves a valid
// compaction: every record kept is the one appended there, and every key's latest record is kept.
TEST_F(SimLogTest, CompactionSurvivesAPowerLossAtAnyPoint) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_bytes = 1500;
  config.min_cleanable_dirty_ratio = 0.1;
  for (int delay_us = 0; delay_us < 12'000; delay_us += 700) {
    for (sim::CrashLossMode mode : {sim::CrashLossMode::kPrefix, sim::CrashLossMode::kTorn}) {
      SCOPED_TRACE(absl::StrCat(sim::CrashLossModeName(mode), " after ", delay_us, "us"));
      // A fresh directory per case.
      const std::string directory =
          absl::StrCat("compaction-", delay_us, "-", static_cast<int>(mode));
      absl::StatusOr<std::unique_ptr<PartitionLog>> opened =
          PartitionLog::Open(env(), directory, config);
      ASSERT_TRUE(opened.ok());
      host_->log = *std::move(opened);
      KeyedHistory history;
      AppendKeyed(log(), history, 6, 10, env().clock().WallNowMs());
      ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
      log().RunMaintenance();
      RunFor(delay_us);
      PowerLoss(mode);
      opened = PartitionLog::Open(env(), directory, config);
      ASSERT_TRUE(opened.ok()) << opened.status();
      host_->log = *std::move(opened);
      CheckCompacted(log(), history, false);
      // Finish compacting and check again.
      for (int i = 0; i < 10; ++i) {
        log().RunMaintenance();
        RunFor(20'000);
      }
      CheckCompacted(log(), history, false);
      host_->log.reset();
    }
  }
}

// Close() syncs everything and writes the clean-shutdown marker before `done`; appends are refused
// afterwards; a second Close() is refused.
TEST_F(SimLogTest, CloseMakesEverythingDurable) {
  LogConfig config;
  config.flush_policy = FlushPolicy::kNever;
  config.segment_bytes = 1000;
  OpenOrDie(config);
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 100, i));
  EXPECT_EQ(log().durable_end_offset(), 0);
  ASSERT_TRUE(Close().ok());
  EXPECT_EQ(log().durable_end_offset(), 20);
  absl::Status second;
  log().Close([&second](const absl::Status& status) { second = status; });
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  PowerLoss(sim::CrashLossMode::kLoseAll);
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), 20);
  EXPECT_EQ(log().stats().recovery_truncated_bytes, 0u);
}

// A Disk that flips one chosen bit in a chosen read of one file (one that covers a chosen byte),
// and an Env that hands it out: bit flips in the header fields a batch's CRC does not cover. It
// also records the write-back starts asked of its files.
struct WritebackStart {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
  // The file's size (as the Disk below holds it) when the start was asked for.
  uint64_t file_bytes = 0;
};

struct PlannedFlip {
  std::string path;
  uint64_t position = 0;
  uint8_t mask = 0;
  // Reads of the byte to let through first, and the smallest read that counts (so that a flip can
  // aim at a scan's large reads and skip the small re-reads that check them).
  int skip_reads = 0;
  size_t read_bytes_min = 0;
};

class FlippingFile final : public File {
 public:
  FlippingFile(std::unique_ptr<File> inner, std::optional<PlannedFlip>* flip,
               std::vector<WritebackStart>* writebacks)
      : inner_(std::move(inner)), flip_(flip), writebacks_(writebacks) {}
  absl::Status WriteAt(uint64_t offset, absl::string_view data) override {
    return inner_->WriteAt(offset, data);
  }
  absl::StatusOr<uint64_t> Append(absl::string_view data) override { return inner_->Append(data); }
  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> buffer) override {
    absl::StatusOr<size_t> read = inner_->ReadAt(offset, buffer);
    if (!read.ok() || !flip_->has_value()) return read;
    PlannedFlip& flip = **flip_;
    if (inner_->path() != flip.path || flip.position < offset || flip.position >= offset + *read ||
        *read < flip.read_bytes_min) {
      return read;
    }
    if (flip.skip_reads > 0) {
      --flip.skip_reads;
      return read;
    }
    buffer[flip.position - offset] ^= static_cast<char>(flip.mask);
    flip_->reset();
    return read;
  }
  absl::StatusOr<uint64_t> Size() const override { return inner_->Size(); }
  absl::Status Truncate(uint64_t size) override { return inner_->Truncate(size); }
  void Sync(SyncCallback done) override { inner_->Sync(std::move(done)); }
  void StartWriteback(uint64_t offset, uint64_t length) override {
    writebacks_->push_back(WritebackStart{
        .path = inner_->path(), .offset = offset, .length = length, .file_bytes = *Size()});
    inner_->StartWriteback(offset, length);
  }
  const std::string& path() const override { return inner_->path(); }

 private:
  std::unique_ptr<File> inner_;
  std::optional<PlannedFlip>* flip_;
  std::vector<WritebackStart>* writebacks_;
};

class FlippingDisk final : public Disk {
 public:
  explicit FlippingDisk(Disk& inner) : inner_(inner) {}
  // The next read of `path` that covers byte `position` has `mask` xored into it.
  void FlipNextRead(std::string path, uint64_t position, uint8_t mask) {
    Flip(PlannedFlip{.path = std::move(path), .position = position, .mask = mask});
  }
  void Flip(PlannedFlip flip) { flip_ = std::move(flip); }
  bool flip_pending() const { return flip_.has_value(); }
  const std::vector<WritebackStart>& writebacks() const { return writebacks_; }

  absl::StatusOr<std::unique_ptr<File>> Open(absl::string_view path, OpenMode mode) override {
    absl::StatusOr<std::unique_ptr<File>> file = inner_.Open(path, mode);
    if (!file.ok()) return file;
    return std::unique_ptr<File>(
        std::make_unique<FlippingFile>(*std::move(file), &flip_, &writebacks_));
  }
  absl::Status CreateDirectory(absl::string_view path) override {
    return inner_.CreateDirectory(path);
  }
  absl::Status Rename(absl::string_view from, absl::string_view to) override {
    return inner_.Rename(from, to);
  }
  absl::Status Remove(absl::string_view path) override { return inner_.Remove(path); }
  absl::StatusOr<std::vector<std::string>> List(absl::string_view directory) const override {
    return inner_.List(directory);
  }
  bool Exists(absl::string_view path) const override { return inner_.Exists(path); }
  void SyncDirectory(absl::string_view directory, SyncCallback done) override {
    inner_.SyncDirectory(directory, std::move(done));
  }

 private:
  Disk& inner_;
  std::optional<PlannedFlip> flip_;
  std::vector<WritebackStart> writebacks_;
};

class FlippingEnv final : public Env {
 public:
  explicit FlippingEnv(Env& inner) : inner_(inner), disk_(inner.disk()) {}
  NodeId node_id() const override { return inner_.node_id(); }
  Clock& clock() override { return inner_.clock(); }
  Network& network() override { return inner_.network(); }
  Disk& disk() override { return disk_; }
  Random& random() override { return inner_.random(); }
  bool BuggifyFires(const BuggifySite& site) override { return inner_.BuggifyFires(site); }
  void RecordEvent(const SemanticEvent& event) override { inner_.RecordEvent(event); }
  void Log(LogLevel level, absl::string_view message) override { inner_.Log(level, message); }
  FlippingDisk& flipping_disk() { return disk_; }

 private:
  Env& inner_;
  FlippingDisk disk_;
};

// The log asks for the write-back of its active segment's bytes each time kWritebackStrideBytes
// more of them are in the file: in order, without gaps or overlaps, never past what the file holds
// (bytes a write buffer holds are not there yet), with and without a write buffer.
TEST_F(SimLogTest, WritebackStartsFollowTheAppendsInStrides) {
  for (uint32_t write_buffer_bytes : {uint32_t{0}, uint32_t{256} << 10}) {
    SCOPED_TRACE(absl::StrCat("write_buffer_bytes ", write_buffer_bytes));
    const std::string directory = absl::StrCat("writeback-", write_buffer_bytes);
    FlippingEnv recording(env());
    LogConfig config;
    config.flush_policy = FlushPolicy::kNever;
    config.write_buffer_bytes = write_buffer_bytes;
    absl::StatusOr<std::unique_ptr<PartitionLog>> opened =
        PartitionLog::Open(recording, directory, config);
    ASSERT_TRUE(opened.ok()) << opened.status();
    host_->log = *std::move(opened);
    uint64_t appended_bytes = 0;
    for (int i = 0; appended_bytes < 5 * kWritebackStrideBytes + 12345; ++i) {
      const std::string batch = ValuesBatch(7, 1000, i);
      Append(batch, 1);
      appended_bytes += batch.size();
    }
    const std::string path = absl::StrCat(directory, "/", SegmentStem(0), kLogSuffix);
    uint64_t next_offset = 0;
    for (const WritebackStart& start : recording.flipping_disk().writebacks()) {
      ASSERT_EQ(start.path, path);
      EXPECT_EQ(start.offset, next_offset);
      EXPECT_GE(start.length, kWritebackStrideBytes);
      EXPECT_LE(start.offset + start.length, start.file_bytes);
      next_offset = start.offset + start.length;
    }
    // Every full stride of what is in the file has been started.
    EXPECT_GT(next_offset + kWritebackStrideBytes, appended_bytes - write_buffer_bytes);
    EXPECT_GE(recording.flipping_disk().writebacks().size(), 4u);
    host_->log.reset();
  }
}

// The leader epoch and base offset of a batch lie outside its CRC. A bit flipped on the way from
// the disk in either is not served: here the epoch of the first batch of a new epoch is flipped
// to the previous epoch (which looks like no change at all) and a base offset is flipped, in
// reads after a restart and in the recovery scan itself.
TEST_F(SimLogTest, FlipsOutsideTheCrcAreNotServed) {
  FlippingEnv flipping(env());
  LogConfig config;
  config.index_interval_bytes = 64;
  absl::StatusOr<std::unique_ptr<PartitionLog>> opened =
      PartitionLog::Open(flipping, kDirectory, config);
  ASSERT_TRUE(opened.ok());
  host_->log = *std::move(opened);
  std::vector<std::string> appended;
  uint64_t position = 0;
  uint64_t epoch_three_position = 0;
  for (int i = 0; i < 12; ++i) {
    const int32_t epoch = i < 6 ? 2 : 3;  // 3 = 2 with bit 0 set
    const std::string batch = ValuesBatch(1, 40, i);
    AppendInfo info = Append(batch, epoch);
    if (i == 6) epoch_three_position = position;
    position += batch.size();
    appended.push_back(Stored(batch, info.base_offset, epoch));
  }
  ASSERT_TRUE(WaitDurable(12).ok());
  auto check_reads = [&]() {
    for (int round = 0; round < 2; ++round) {
      // round 0: the epoch's low bit; round 1: a bit of the base offset.
      flipping.flipping_disk().FlipNextRead(
          SegmentPath(0), epoch_three_position + (round == 0 ? 15 : 7), round == 0 ? 1 : 4);
      absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
      ASSERT_TRUE(read.ok()) << read.status();
      EXPECT_EQ(*read, appended);
      EXPECT_FALSE(flipping.flipping_disk().flip_pending());
    }
  };
  check_reads();
  // After a crash the recovery scan learns the epochs again, with the same flip in its way.
  host_->log.reset();
  flipping.flipping_disk().FlipNextRead(SegmentPath(0), epoch_three_position + 15, 1);
  opened = PartitionLog::Open(flipping, kDirectory, config);
  ASSERT_TRUE(opened.ok());
  host_->log = *std::move(opened);
  EXPECT_FALSE(flipping.flipping_disk().flip_pending());
  check_reads();
  // And after a clean restart, from the checkpoint.
  ASSERT_TRUE(Close().ok());
  host_->log.reset();
  opened = PartitionLog::Open(flipping, kDirectory, config);
  ASSERT_TRUE(opened.ok());
  host_->log = *std::move(opened);
  check_reads();
  host_->log.reset();
}

// The cleaner copies the batches it keeps, header included, into the compacted segment, where they
// stay for good: a leader epoch (outside the CRC) flipped on the way from the disk must be read
// again, not copied. Here segment 0 holds a batch of epoch 2 and then the first batch of epoch 3;
// the cleaner's rewrite of segment 0 (its second large read of it, after the map's) sees that
// epoch flipped to 2, which looks like no change at all; the compacted log must still hold epoch
// 3 there.
TEST_F(SimLogTest, FlipsOutsideTheCrcAreNotCompactedIn) {
  FlippingEnv flipping(env());
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_ms = 1000;
  config.min_cleanable_dirty_ratio = 0.01;
  absl::StatusOr<std::unique_ptr<PartitionLog>> opened =
      PartitionLog::Open(flipping, kDirectory, config);
  ASSERT_TRUE(opened.ok());
  host_->log = *std::move(opened);
  const int64_t now_ms = env().clock().WallNowMs();
  const std::string superseded = MakeBatch({{"key", std::string(100, 'a')}}, now_ms);
  Append(superseded, 2);
  Append(MakeBatch({{"unique", std::string(100, 'b')}}, now_ms), 3);  // epoch 3 begins
  RunFor(1'100'000);
  Append(MakeBatch({{"key", std::string(100, 'c')}}, now_ms), 3);  // segment 1
  RunFor(1'100'000);
  Append(MakeBatch({{"other", "d"}}, now_ms), 3);  // segment 2, the active one
  ASSERT_EQ(log().segment_count(), 3u);
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  flipping.flipping_disk().Flip(PlannedFlip{.path = SegmentPath(0),
                                            .position = superseded.size() + 15,
                                            .mask = 1,
                                            .skip_reads = 1,
                                            .read_bytes_min = superseded.size() + 16});
  CompactSteps();
  EXPECT_FALSE(flipping.flipping_disk().flip_pending());
  ASSERT_GT(log().stats().records_compacted_away, 0u);
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<std::pair<int64_t, int32_t>> epochs;
  for (const std::string& batch : *read) {
    epochs.emplace_back(Header(batch).base_offset, Header(batch).partition_leader_epoch);
  }
  EXPECT_EQ(epochs, (std::vector<std::pair<int64_t, int32_t>>{{1, 3}, {2, 3}, {3, 3}}));
  host_->log.reset();
}

// A truncation's bound is written only once what the truncation keeps is durable: a bound that
// cut below data a crash can still lose would make recovery mistake the loss for a gap. Here the
// data is appended while the open-time sync is in flight, the truncation follows at once, and
// the power fails at every point of what follows.
TEST_F(SimLogTest, TruncationBoundWaitsForTheDataItKeeps) {
  LogConfig config;
  config.flush_policy = FlushPolicy::kNever;
  config.segment_bytes = 1200;
  for (int64_t crash_us = 0; crash_us < 80'000; crash_us += 2'500) {
    SCOPED_TRACE(absl::StrCat("power loss after ", crash_us, "us"));
    disk().options().sync_latency_us_min = 10'000;
    disk().options().sync_latency_us_max = 10'000;
    const std::string directory = absl::StrCat("bound-", crash_us);
    absl::StatusOr<std::unique_ptr<PartitionLog>> opened =
        PartitionLog::Open(env(), directory, config);
    ASSERT_TRUE(opened.ok());
    host_->log = *std::move(opened);
    std::vector<std::string> appended;
    for (int i = 0; i < 3; ++i) {
      const std::string batch = ValuesBatch(1, 500, i);
      AppendInfo info = Append(batch);
      appended.push_back(Stored(batch, info.base_offset, 1));
    }
    ASSERT_GT(log().segment_count(), 1u);
    ASSERT_TRUE(log().TruncateTo(1).ok());
    RunFor(crash_us);
    PowerLoss(sim::CrashLossMode::kLoseAll);
    disk().options() = QuietDisk();
    opened = PartitionLog::Open(env(), directory, config);
    ASSERT_TRUE(opened.ok()) << opened.status();
    host_->log = *std::move(opened);
    absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
    ASSERT_TRUE(read.ok()) << read.status();
    // Nothing was ever reported durable: any batch prefix of before or after is right, but never
    // a batch that was not appended.
    ASSERT_LE(read->size(), appended.size());
    for (size_t i = 0; i < read->size(); ++i) EXPECT_EQ((*read)[i], appended[i]);
    host_->log.reset();
  }
}

// After a process crash the page cache still holds unsynced batches: the reopened log serves them
// but does not count them durable until it has synced them itself.
TEST_F(SimLogTest, ReopenDoesNotClaimUnsyncedDataDurable) {
  LogConfig config;
  config.flush_policy = FlushPolicy::kNever;
  OpenOrDie(config);
  for (int i = 0; i < 5; ++i) Append(ValuesBatch(1, 50, i));
  ProcessCrash();
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), 5);
  EXPECT_EQ(log().durable_end_offset(), 0);
  ASSERT_TRUE(WaitDurable(5).ok());  // Open() syncs what it found, whatever the policy
  PowerLoss(sim::CrashLossMode::kLoseAll);
  OpenOrDie(config);
  EXPECT_EQ(log().log_end_offset(), 5);
}

// ---------------------------------------------------------------------------------------------
// Follower appends, transactions, configuration, lookups, limits and durability waits.

// AppendAsFollower takes several batches in one call: they are stored with the offsets and leader
// epochs they carry (nothing is restamped), AppendInfo spans them all, the next call continues at
// the new log end, and everything reads back byte for byte, after a clean restart and after a
// power loss too.
TEST_F(SimLogTest, AppendAsFollowerTakesSeveralBatches) {
  LogConfig config;
  config.segment_bytes = 1000;
  OpenOrDie(config);
  const std::vector<std::string> first = {Stored(ValuesBatch(3, 40, 1), 0, 4),
                                          Stored(ValuesBatch(2, 40, 2), 3, 4),
                                          Stored(ValuesBatch(1, 40, 3), 5, 5)};
  absl::StatusOr<AppendInfo> info = log().AppendAsFollower(first[0] + first[1] + first[2]);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->base_offset, 0);
  EXPECT_EQ(info->last_offset, 5);
  EXPECT_EQ(info->log_append_time_ms, -1);
  EXPECT_EQ(info->log_start_offset, 0);
  EXPECT_EQ(log().log_end_offset(), 6);
  const std::vector<std::string> second = {Stored(ValuesBatch(2, 300, 4), 6, 5),
                                           Stored(ValuesBatch(4, 300, 5), 8, 6)};
  info = log().AppendAsFollower(second[0] + second[1]);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->base_offset, 6);
  EXPECT_EQ(info->last_offset, 11);
  EXPECT_EQ(log().stats().batches_appended, 5u);
  std::vector<std::string> expected = first;
  expected.insert(expected.end(), second.begin(), second.end());
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, expected);
  CleanRestart(config);
  read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, expected);
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, expected);
}

// A follower append is all or nothing: a call whose first batch does not start at the log end
// (a gap, or going back), or with a later batch that does not start past the one before it, or
// with a corrupt or partial batch after valid ones, is refused and appends nothing; the same
// valid batches alone are then accepted at the same offsets.
TEST_F(SimLogTest, FollowerAppendIsAllOrNothing) {
  OpenOrDie(LogConfig{});
  Append(ValuesBatch(2, 10, 1));  // [0, 1]
  const std::string two = ValuesBatch(2, 10, 2);
  std::string corrupt = Stored(two, 6, 1);
  corrupt[corrupt.size() - 3] ^= 1;
  const struct {
    const char* what;
    std::string bytes;
    absl::StatusCode code;
  } cases[] = {
      {"a gap before the first batch", Stored(two, 3, 1), absl::StatusCode::kInvalidArgument},
      {"a first batch below the log end", Stored(two, 1, 1), absl::StatusCode::kInvalidArgument},
      {"a batch overlapping the one before", Stored(two, 2, 1) + Stored(two, 3, 1),
       absl::StatusCode::kInvalidArgument},
      {"a batch at the base of the one before", Stored(two, 2, 1) + Stored(two, 2, 1),
       absl::StatusCode::kInvalidArgument},
      {"a batch going back", Stored(two, 2, 1) + Stored(two, 6, 1) + Stored(two, 4, 1),
       absl::StatusCode::kInvalidArgument},
      {"a corrupt batch after valid ones", Stored(two, 2, 1) + Stored(two, 4, 1) + corrupt,
       absl::StatusCode::kDataLoss},
      {"a partial batch after a valid one", Stored(two, 2, 1) + two.substr(0, 30),
       absl::StatusCode::kInvalidArgument},
      {"no batch at all", "", absl::StatusCode::kInvalidArgument},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(log().AppendAsFollower(c.bytes).status().code(), c.code);
    EXPECT_EQ(log().log_end_offset(), 2);
    EXPECT_EQ(log().stats().batches_appended, 1u);
    absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read->size(), 1u);
  }
  absl::StatusOr<AppendInfo> info =
      log().AppendAsFollower(Stored(two, 2, 1) + Stored(two, 4, 1) + Stored(two, 6, 1));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->last_offset, 7);
}

// Producer metadata for the transactional batches below.
constexpr int64_t kProducerId = 77;
constexpr int16_t kProducerEpoch = 3;

// A transactional batch of keyed records of producer kProducerId.
std::string TransactionalBatch(const std::vector<KeyValue>& records, int32_t base_sequence,
                               int64_t timestamp_ms) {
  std::vector<Record> built;
  for (size_t i = 0; i < records.size(); ++i) {
    built.push_back(Record{.timestamp_delta = static_cast<int64_t>(i),
                           .offset_delta = static_cast<int32_t>(i),
                           .key = records[i].key,
                           .value = records[i].value});
  }
  absl::StatusOr<std::string> batch = BuildBatch(BatchBuildOptions{.transactional = true,
                                                                   .base_timestamp = timestamp_ms,
                                                                   .producer_id = kProducerId,
                                                                   .producer_epoch = kProducerEpoch,
                                                                   .base_sequence = base_sequence},
                                                 built);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return *batch;
}

// Kafka's control record key for a transaction marker: version 0, type (0 abort, 1 commit).
std::string MarkerKey(bool commit) { return std::string{0, 0, 0, commit ? '\1' : '\0'}; }

// A control batch holding one transaction marker of producer kProducerId (attributes bits 4 and
// 5), with Kafka's layout: the key above, a value of version 0 and coordinator epoch 5.
std::string MarkerBatch(bool commit, int64_t timestamp_ms) {
  absl::StatusOr<std::string> batch =
      BuildBatch(BatchBuildOptions{.transactional = true,
                                   .control = true,
                                   .base_timestamp = timestamp_ms,
                                   .producer_id = kProducerId,
                                   .producer_epoch = kProducerEpoch},
                 {Record{.key = MarkerKey(commit), .value = std::string{0, 0, 0, 0, 0, 5}}});
  EXPECT_TRUE(batch.ok()) << batch.status();
  return *batch;
}

// Transactional batches and control batches (transaction markers) are stored and served exactly
// as sent, attributes, producer id, epoch and sequence included, whether appended as leader or as
// follower, and so they stay across a restart that scans them (a power loss).
TEST_F(SimLogTest, TransactionalAndControlBatchesAreStoredUnchanged) {
  OpenOrDie(LogConfig{});
  std::vector<std::string> expected;
  const std::vector<std::string> leader_batches = {
      TransactionalBatch({{"a", "1"}, {"b", "2"}}, 0, 1000), MarkerBatch(true, 1001),
      ValuesBatch(1, 10, 1), TransactionalBatch({{"a", "3"}}, 2, 1002), MarkerBatch(false, 1003)};
  for (const std::string& batch : leader_batches) {
    AppendInfo info = Append(batch, 2);
    expected.push_back(Stored(batch, info.base_offset, 2));
  }
  const int64_t end = log().log_end_offset();
  const std::string follower = Stored(TransactionalBatch({{"c", "4"}}, 3, 1004), end, 3) +
                               Stored(MarkerBatch(true, 1005), end + 1, 3);
  ASSERT_TRUE(log().AppendAsFollower(follower).ok());
  for (absl::string_view batch : Split(follower)) expected.emplace_back(batch);
  auto check = [&] {
    absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
    ASSERT_TRUE(read.ok()) << read.status();
    ASSERT_EQ(*read, expected);
    const BatchHeader marker = Header((*read)[1]);
    EXPECT_TRUE(marker.control());
    EXPECT_TRUE(marker.transactional());
    EXPECT_EQ(marker.producer_id, kProducerId);
    EXPECT_EQ(marker.producer_epoch, kProducerEpoch);
    const BatchHeader data = Header((*read)[3]);
    EXPECT_TRUE(data.transactional());
    EXPECT_FALSE(data.control());
    EXPECT_EQ(data.base_sequence, 2);
  };
  check();
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  PowerLoss(sim::CrashLossMode::kLoseAll);
  OpenOrDie(LogConfig{});
  check();
}

// Compaction and transactions: records of transactional batches are compacted like any others
// (aborted ones included, as compaction.h says), the batches that survive keep their attributes
// and producer fields, and control batches are kept byte for byte at their offsets, even when a
// later data record carries the same key bytes as their marker (control records are not keys).
TEST_F(SimLogTest, CompactionKeepsControlBatchesAndTransactionalAttributes) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_bytes = 700;
  config.min_cleanable_dirty_ratio = 0.01;
  OpenOrDie(config);
  const int64_t now_ms = env().clock().WallNowMs();
  KeyedHistory history;
  std::map<int64_t, std::string> markers;  // base offset -> stored control batch
  int32_t sequence = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<KeyValue> records;
    for (int key = 0; key < 3; ++key) {
      records.push_back(
          KeyValue{absl::StrCat("key-", key), absl::StrCat("round-", round, std::string(30, 'v'))});
    }
    const std::string data = TransactionalBatch(records, sequence, now_ms);
    sequence += static_cast<int32_t>(records.size());
    Append(data);
    for (const KeyValue& record : records) history.records.emplace_back(*record.key, record.value);
    const std::string marker = MarkerBatch(round % 2 == 0, now_ms);
    AppendInfo info = Append(marker);
    markers[info.base_offset] = Stored(marker, info.base_offset, 1);
    history.records.emplace_back(MarkerKey(round % 2 == 0), std::string{0, 0, 0, 0, 0, 5});
  }
  // A data record whose key equals a commit marker's key, then more data so that it is sealed.
  Append(MakeBatch({KeyValue{MarkerKey(true), "not a marker"}}, now_ms));
  history.records.emplace_back(MarkerKey(true), "not a marker");
  for (int key = 0; key < 3; ++key) {
    Append(MakeBatch({KeyValue{absl::StrCat("key-", key), "last"}}, now_ms));
    history.records.emplace_back(absl::StrCat("key-", key), "last");
  }
  CompactSteps();
  EXPECT_GT(log().stats().compactions, 0u);
  EXPECT_GT(log().stats().records_compacted_away, 0u);
  CheckCompacted(log(), history, /*expect_removed=*/true);
  absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
  ASSERT_TRUE(read.ok()) << read.status();
  std::map<int64_t, std::string> markers_read;
  for (const std::string& batch : *read) {
    const BatchHeader header = Header(batch);
    if (header.control()) {
      markers_read[header.base_offset] = batch;
    } else if (header.producer_id == kProducerId) {
      EXPECT_TRUE(header.transactional()) << header.base_offset;
      EXPECT_EQ(header.producer_epoch, kProducerEpoch) << header.base_offset;
    }
  }
  EXPECT_EQ(markers_read, markers);
}

// UpdateConfig changes take effect where the log applies them: a switch of flush policy from
// never to interval syncs what is waiting within flush.ms, and to always at once; segment.bytes at
// the next append; retention at the next RunMaintenance() (not before); a switch to
// cleanup.policy compact at the next RunMaintenance() (compaction starts), and a switch back to
// delete stops it.
TEST_F(SimLogTest, UpdateConfigTakesEffect) {
  LogConfig config;
  config.retention_ms = -1;
  config.flush_policy = FlushPolicy::kNever;
  OpenOrDie(config);
  KeyedHistory history;
  AppendKeyed(log(), history, 4, 3, env().clock().WallNowMs());
  EXPECT_EQ(log().segment_count(), 1u);
  RunFor(100'000);
  EXPECT_LT(log().durable_end_offset(), log().log_end_offset());
  config.flush_policy = FlushPolicy::kInterval;
  config.flush_interval_ms = 300;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  RunFor(200'000);
  EXPECT_LT(log().durable_end_offset(), log().log_end_offset());
  RunFor(200'000);
  EXPECT_EQ(log().durable_end_offset(), log().log_end_offset());
  config.flush_policy = FlushPolicy::kNever;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  AppendKeyed(log(), history, 4, 1, env().clock().WallNowMs());
  RunFor(1'000'000);
  EXPECT_LT(log().durable_end_offset(), log().log_end_offset());
  config.flush_policy = FlushPolicy::kAlways;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  RunFor(100'000);
  EXPECT_EQ(log().durable_end_offset(), log().log_end_offset());

  config.segment_bytes = 500;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  EXPECT_EQ(log().config().segment_bytes, 500u);
  AppendKeyed(log(), history, 4, 6, env().clock().WallNowMs());
  EXPECT_GT(log().segment_count(), 4u);
  log().RunMaintenance();
  EXPECT_EQ(log().log_start_offset(), 0);  // no retention yet

  config.retention_bytes = 1500;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  EXPECT_EQ(log().log_start_offset(), 0);  // applied by RunMaintenance(), not by UpdateConfig()
  log().RunMaintenance();
  EXPECT_GT(log().log_start_offset(), 0);
  EXPECT_GT(log().stats().segments_deleted, 0u);
  EXPECT_LT(log().size_bytes(), 1500u + 500u);

  config.retention_bytes = -1;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.min_cleanable_dirty_ratio = 0.01;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  EXPECT_EQ(log().stats().compactions, 0u);
  CompactSteps();
  EXPECT_GT(log().stats().compactions, 0u);

  config.cleanup_policy = CleanupPolicy::kDelete;
  ASSERT_TRUE(log().UpdateConfig(config).ok());
  const uint64_t compactions = log().stats().compactions;
  AppendKeyed(log(), history, 4, 6, env().clock().WallNowMs());
  CompactSteps();
  EXPECT_EQ(log().stats().compactions, compactions);
}

// One invalid LogConfig field and its name, for the test below.
struct InvalidField {
  const char* field;
  void (*spoil)(LogConfig&);
};

class InvalidConfigTest : public SimLogTest, public ::testing::WithParamInterface<InvalidField> {};

INSTANTIATE_TEST_SUITE_P(
    EachField, InvalidConfigTest,
    ::testing::Values(
        InvalidField{"segment_bytes", [](LogConfig& c) { c.segment_bytes = 10; }},
        InvalidField{"segment_ms", [](LogConfig& c) { c.segment_ms = 0; }},
        InvalidField{"retention_ms", [](LogConfig& c) { c.retention_ms = -2; }},
        InvalidField{"retention_bytes", [](LogConfig& c) { c.retention_bytes = -2; }},
        InvalidField{"delete_retention_ms", [](LogConfig& c) { c.delete_retention_ms = -1; }},
        InvalidField{"min_cleanable_dirty_ratio",
                     [](LogConfig& c) { c.min_cleanable_dirty_ratio = 1.5; }},
        InvalidField{"flush_interval_ms", [](LogConfig& c) { c.flush_interval_ms = 0; }},
        InvalidField{"max_message_bytes", [](LogConfig& c) { c.max_message_bytes = 10; }}),
    [](const ::testing::TestParamInfo<InvalidField>& info) { return info.param.field; });

// An invalid value of the field under test is refused by UpdateConfig with kInvalidArgument naming
// the field, and the log keeps its old configuration (checked through config() and by the log
// still working); Open() refuses the same configuration.
TEST_P(InvalidConfigTest, IsRefusedAndTheOldConfigKept) {
  LogConfig config;
  config.segment_bytes = 5000;
  OpenOrDie(config);
  LogConfig bad = config;
  GetParam().spoil(bad);
  const absl::Status updated = log().UpdateConfig(bad);
  EXPECT_EQ(updated.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(updated.message(), HasSubstr(GetParam().field));
  EXPECT_EQ(log().config().segment_bytes, 5000u);
  EXPECT_EQ(log().config().segment_ms, config.segment_ms);
  EXPECT_EQ(log().config().retention_ms, config.retention_ms);
  EXPECT_EQ(log().config().retention_bytes, config.retention_bytes);
  EXPECT_EQ(log().config().delete_retention_ms, config.delete_retention_ms);
  EXPECT_EQ(log().config().min_cleanable_dirty_ratio, config.min_cleanable_dirty_ratio);
  EXPECT_EQ(log().config().flush_interval_ms, config.flush_interval_ms);
  EXPECT_EQ(log().config().max_message_bytes, config.max_message_bytes);
  Append(ValuesBatch(1, 10, 1));
  ASSERT_TRUE(WaitDurable(1).ok());
  host_->log.reset();
  const absl::Status opened = Open(bad);
  EXPECT_EQ(opened.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(opened.message(), HasSubstr(GetParam().field));
}

// OffsetForTimestamp on a compacted log answers from what compaction left (batches that lost
// records have their maxTimestamp recomputed): compared with a brute force over a full read, for
// every timestamp in range, before and after a restart.
TEST_F(SimLogTest, OffsetForTimestampOnACompactedLog) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_bytes = 800;
  config.index_interval_bytes = 100;
  config.min_cleanable_dirty_ratio = 0.01;
  OpenOrDie(config);
  for (int i = 0; i < 60; ++i) {
    std::vector<KeyValue> records;
    for (int k = 0; k < 3; ++k) {
      records.push_back(KeyValue{absl::StrCat("key-", (i * 3 + k) % 7), std::string(20, 'v')});
    }
    Append(MakeBatch(records, 10'000 + i * 10));
  }
  CompactSteps();
  ASSERT_GT(log().stats().records_compacted_away, 0u);
  ExpectTimestampLookups(log(), 9'990, 10'650, 3);
  CleanRestart(config);
  ExpectTimestampLookups(log(), 9'990, 10'650, 3);
}

// OffsetForTimestamp after retention deleted the oldest segments: timestamps from before the log
// start answer the log start (the first batch still there), the others as a brute force says.
TEST_F(SimLogTest, OffsetForTimestampAfterRetention) {
  LogConfig config;
  config.segment_bytes = 1000;
  config.retention_ms = 3'600'000;
  OpenOrDie(config);
  const int64_t now_ms = env().clock().WallNowMs();
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 100, i, now_ms - 7'200'000 + i));
  for (int i = 0; i < 20; ++i) Append(ValuesBatch(1, 100, i, now_ms - 60'000 + i * 10));
  log().RunMaintenance();
  const int64_t start = log().log_start_offset();
  ASSERT_GT(start, 0);
  absl::StatusOr<int64_t> oldest = log().OffsetForTimestamp(0);
  ASSERT_TRUE(oldest.ok()) << oldest.status();
  EXPECT_EQ(*oldest, start);
  absl::StatusOr<int64_t> deleted = log().OffsetForTimestamp(now_ms - 7'200'000 + 1);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, start);
  ExpectTimestampLookups(log(), now_ms - 7'200'010, now_ms - 7'199'980, 1);
  ExpectTimestampLookups(log(), now_ms - 60'010, now_ms - 59'700, 3);
}

// A read at or past end_offset_max (the high watermark) returns nothing, as a Kafka fetch at the
// high watermark does, even when the batch holding the offset starts below it; a read from below
// it still gets the batch that straddles it.
TEST_F(SimLogTest, ReadsAtOrPastEndOffsetMaxReturnNothing) {
  OpenOrDie(LogConfig{});
  for (int i = 0; i < 5; ++i) Append(ValuesBatch(2, 20, i));  // [0,1] [2,3] [4,5] [6,7] [8,9]
  for (const auto& [offset, end_offset_max] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 0}, {2, 2}, {3, 2}, {3, 3}, {5, 4}, {9, 5}, {10, 10}, {10, 3}}) {
    absl::StatusOr<std::string> bytes = log().Read(offset, 1 << 20, end_offset_max, true);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_TRUE(bytes->empty()) << "Read(" << offset << ", end_offset_max " << end_offset_max
                                << ") returned " << Split(*bytes).size() << " batches";
  }
  absl::StatusOr<std::string> straddling = log().Read(2, 1 << 20, 3, true);
  ASSERT_TRUE(straddling.ok());
  ASSERT_EQ(Split(*straddling).size(), 1u);
  EXPECT_EQ(Header(*straddling).base_offset, 2);
}

// TruncateTo below the offset compaction relied on (the clean offset) is refused with
// kFailedPrecondition and changes nothing, also after a power loss (the checkpoint keeps the clean
// offset); at or above it, where new appends went, it works.
TEST_F(SimLogTest, TruncateBelowTheCleanOffsetIsRefused) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_bytes = 1000;
  config.min_cleanable_dirty_ratio = 0.01;
  OpenOrDie(config);
  KeyedHistory history;
  AppendKeyed(log(), history, 6, 6, env().clock().WallNowMs());
  CompactSteps();
  ASSERT_GT(log().stats().compactions, 0u);
  // New batches, in the active segment: past anything compaction used.
  const int64_t new_from = log().log_end_offset();
  for (int i = 0; i < 3; ++i) Append(ValuesBatch(1, 10, i));
  absl::StatusOr<std::vector<std::string>> before = ReadAll(log());
  ASSERT_TRUE(before.ok());
  auto expect_refused = [&] {
    // The first two batches lie in the first segment, which the first round cleaned.
    for (size_t i = 0; i < 2; ++i) {
      const int64_t offset = Header((*before)[i]).base_offset;
      const absl::Status truncated = log().TruncateTo(offset);
      EXPECT_EQ(truncated.code(), absl::StatusCode::kFailedPrecondition) << offset;
      EXPECT_THAT(truncated.message(), HasSubstr("compaction"));
    }
    EXPECT_EQ(log().log_end_offset(), new_from + 3);
    absl::StatusOr<std::vector<std::string>> after = ReadAll(log());
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(*after, *before);
  };
  expect_refused();
  ASSERT_TRUE(WaitDurable(log().log_end_offset()).ok());
  PowerLoss(sim::CrashLossMode::kTorn);
  OpenOrDie(config);
  expect_refused();
  ASSERT_TRUE(log().TruncateTo(new_from + 1).ok());
  EXPECT_EQ(log().log_end_offset(), new_from + 1);
}

// WhenDurable and truncation: a wait for offsets a TruncateTo() removes gets kAborted, delivered
// from a timer (never inside TruncateTo()), while a wait for offsets the truncation keeps (up to
// the truncation point itself) still completes OK once they are durable; a wait past the log end,
// the truncated offsets included once they are gone, gets kOutOfRange at once.
TEST_F(SimLogTest, WhenDurableAndTruncation) {
  OpenOrDie(LogConfig{.flush_policy = FlushPolicy::kNever});
  for (int i = 0; i < 10; ++i) Append(ValuesBatch(1, 20, i));
  std::map<int64_t, absl::Status> results;
  for (int64_t end : {4, 5, 8, 10}) {
    log().WhenDurable(end, [&results, end](const absl::Status& status) { results[end] = status; });
  }
  ASSERT_TRUE(log().TruncateTo(5).ok());
  EXPECT_TRUE(results.empty());  // not from inside TruncateTo()
  RunFor(1);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[8].code(), absl::StatusCode::kAborted);
  EXPECT_EQ(results[10].code(), absl::StatusCode::kAborted);
  EXPECT_THAT(results[8].message(), HasSubstr("truncated to 5"));
  for (int64_t end : {6, 8, 11}) {
    absl::Status past;
    log().WhenDurable(end, [&past](const absl::Status& status) { past = status; });
    EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange) << end;
  }
  log().Flush();
  simulator_.RunUntilCondition([&] { return results.size() == 4; }, simulator_.NowUs() + kWaitUs);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[4].ok()) << results[4];
  EXPECT_TRUE(results[5].ok()) << results[5];
  EXPECT_EQ(log().durable_end_offset(), 5);
}

// A tombstone goes once it is older than delete.retention.ms when the compaction round that sees
// it as its key's latest record runs, and takes every older record of its key with it; a tombstone
// still younger than that stays (the older records of its key go).
TEST_F(SimLogTest, TombstonesGoAfterDeleteRetention) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_ms = 1000;
  config.delete_retention_ms = 60'000;
  config.min_cleanable_dirty_ratio = 0.01;
  for (const bool expired : {false, true}) {
    SCOPED_TRACE(expired ? "expired" : "fresh");
    OpenOrDie(config, expired ? "tombstones-expired" : "tombstones-fresh");
    const int64_t now_ms = env().clock().WallNowMs();
    Append(MakeBatch({{"gone", "1"}, {"kept", "2"}}, now_ms));
    Append(MakeBatch({{"gone", std::nullopt}}, now_ms));
    RunFor(1'100'000);
    Append(MakeBatch({{"other", "3"}}, now_ms));  // rolls: the records above are sealed
    if (expired) simulator_.clock(node_).JumpWallMs(config.delete_retention_ms + 1);
    CompactSteps();
    ASSERT_GT(log().stats().compactions, 0u);
    std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> left;
    absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
    ASSERT_TRUE(read.ok());
    for (const std::string& batch : *read) {
      absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
      ASSERT_TRUE(records.ok());
      for (const Record& record : *records) left.emplace_back(record.key, record.value);
    }
    using Left = std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>>;
    const Left want = expired ? Left{{"kept", "2"}, {"other", "3"}}
                              : Left{{"kept", "2"}, {"gone", std::nullopt}, {"other", "3"}};
    EXPECT_EQ(left, want);
    host_->log.reset();
  }
}

// A tombstone that was still young when a completed round compacted it is removed by a later round
// once it is old, although that round's map (fed from the end of the completed rounds) never sees
// it; also when a restart comes between the rounds (the checkpoint keeps the cleaned offset).
TEST_F(SimLogTest, YoungTombstoneGoesInALaterRoundOnceOld) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_ms = 1000;
  config.delete_retention_ms = 60'000;
  config.min_cleanable_dirty_ratio = 0.01;
  for (const bool restart : {false, true}) {
    SCOPED_TRACE(restart ? "restart between rounds" : "no restart");
    const std::string name = restart ? "late-tombstone-restart" : "late-tombstone";
    OpenOrDie(config, name);
    const int64_t now_ms = env().clock().WallNowMs();
    Append(MakeBatch({{"gone", "1"}, {"kept", "2"}}, now_ms));
    Append(MakeBatch({{"gone", std::nullopt}}, now_ms));
    RunFor(1'100'000);
    Append(MakeBatch({{"other", "3"}}, now_ms));  // rolls: the records above are sealed
    CompactSteps();
    const uint64_t first_rounds = log().stats().compactions;
    ASSERT_GT(first_rounds, 0u);
    if (restart) {
      ASSERT_TRUE(Close().ok());
      host_->log.reset();
      OpenOrDie(config, name);
    }
    simulator_.clock(node_).JumpWallMs(config.delete_retention_ms + 1);
    RunFor(1'100'000);
    Append(MakeBatch({{"more", "4"}}, env().clock().WallNowMs()));  // new dirty data, and a roll
    RunFor(1'100'000);
    Append(MakeBatch({{"last", "5"}}, env().clock().WallNowMs()));
    CompactSteps();
    ASSERT_GT(log().stats().compactions, restart ? 0u : first_rounds);
    std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> left;
    absl::StatusOr<std::vector<std::string>> read = ReadAll(log());
    ASSERT_TRUE(read.ok());
    for (const std::string& batch : *read) {
      absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
      ASSERT_TRUE(records.ok());
      for (const Record& record : *records) left.emplace_back(record.key, record.value);
    }
    using Left = std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>>;
    EXPECT_EQ(left, (Left{{"kept", "2"}, {"other", "3"}, {"more", "4"}, {"last", "5"}}));
    host_->log.reset();
  }
}

// The two metadata files are laid out exactly as log_checkpoint.h says: built here byte by byte
// (the CRC by the reference CRC-32C) and compared with the encoders; decoding gives the values
// back, and a flipped bit or a wrong size is kDataLoss.
TEST(LogCheckpointTest, FormatsMatchTheirDescription) {
  auto be = [](std::string& out, uint64_t value, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i)));
  };
  LogCheckpoint checkpoint;
  checkpoint.log_start_offset = 5;
  checkpoint.recovery_point = 9;
  checkpoint.truncation_bound = kNoOffset;
  checkpoint.clean_offset = 7;
  checkpoint.cleaned_offset = 6;
  checkpoint.leader_epochs = {{0, 1}, {6, 3}};
  // Version 2 with `offsets`; version 1 lacks the cleaned offset.
  auto layout = [&](int version, std::vector<int64_t> offsets) {
    std::string bytes;
    be(bytes, 0x524E4C43, 4);
    be(bytes, static_cast<uint64_t>(version), 2);
    be(bytes, 0, 2);
    for (int64_t value : offsets) be(bytes, static_cast<uint64_t>(value), 8);
    be(bytes, 2, 4);
    be(bytes, 0, 8);
    be(bytes, 1, 4);
    be(bytes, 6, 8);
    be(bytes, 3, 4);
    be(bytes, testing::BitwiseCrc32c(bytes), 4);
    return bytes;
  };
  const std::string want = layout(2, {5, 9, -1, 7, 6});
  EXPECT_EQ(EncodeLogCheckpoint(checkpoint), want);
  absl::StatusOr<LogCheckpoint> decoded = DecodeLogCheckpoint(want);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, checkpoint);
  absl::StatusOr<LogCheckpoint> from_v1 = DecodeLogCheckpoint(layout(1, {5, 9, -1, 7}));
  ASSERT_TRUE(from_v1.ok()) << from_v1.status();
  LogCheckpoint v1_checkpoint = checkpoint;
  v1_checkpoint.cleaned_offset = kNoOffset;
  EXPECT_EQ(*from_v1, v1_checkpoint);
  // A cleaned offset past the clean offset is not a checkpoint this code wrote.
  EXPECT_EQ(DecodeLogCheckpoint(layout(2, {5, 9, -1, 7, 8})).status().code(),
            absl::StatusCode::kDataLoss);

  CleanShutdownRecord record{.log_end_offset = 42,
                             .last_segment_base_offset = 40,
                             .last_segment_bytes = 300,
                             .segment_count = 2};
  std::string marker;
  be(marker, 0x524E4C53, 4);
  be(marker, 1, 2);
  be(marker, 0, 2);
  for (uint64_t value : {42, 40, 300, 2}) be(marker, value, 8);
  be(marker, testing::BitwiseCrc32c(marker), 4);
  ASSERT_EQ(marker.size(), kCleanShutdownBytes);
  EXPECT_EQ(EncodeCleanShutdown(record), marker);
  absl::StatusOr<CleanShutdownRecord> decoded_marker = DecodeCleanShutdown(marker);
  ASSERT_TRUE(decoded_marker.ok()) << decoded_marker.status();
  EXPECT_EQ(*decoded_marker, record);

  for (const std::string* bytes : {&want, static_cast<const std::string*>(&marker)}) {
    std::string flipped = *bytes;
    flipped[20] ^= 4;
    EXPECT_EQ(DecodeLogCheckpoint(flipped).status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(DecodeCleanShutdown(flipped).status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(DecodeLogCheckpoint(bytes->substr(1)).status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(DecodeCleanShutdown(*bytes + "x").status().code(), absl::StatusCode::kDataLoss);
  }
}

// ---------------------------------------------------------------------------------------------
// The real disk: PosixEnv over a temporary directory.

class PosixLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/partition-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    StartEnv();
  }
  void TearDown() override {
    log_.reset();
    env_.reset();
    loop_.reset();
    std::filesystem::remove_all(root_);
  }
  void StartEnv() {
    absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(*loop_, 0, root_, 1);
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = *std::move(env);
  }
  void OpenOrDie(const LogConfig& config) {
    absl::StatusOr<std::unique_ptr<PartitionLog>> log =
        PartitionLog::Open(*env_, kDirectory, config);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }
  absl::Status WaitDurable(int64_t end) {
    std::optional<absl::Status> result;
    log_->WhenDurable(end, [&result](const absl::Status& status) { result = status; });
    loop_->RunUntil([&] { return result.has_value(); }, 30'000'000);
    return result.value_or(absl::DeadlineExceededError("timeout"));
  }
  absl::Status Close() {
    std::optional<absl::Status> result;
    log_->Close([&result](const absl::Status& status) { result = status; });
    loop_->RunUntil([&] { return result.has_value(); }, 30'000'000);
    return result.value_or(absl::DeadlineExceededError("timeout"));
  }

  std::string root_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<PosixEnv> env_;
  std::unique_ptr<PartitionLog> log_;
};

// On real files: appends across segments with group commit, a clean restart that trusts the
// index files, and a crash (no Close) with a torn tail that Open() cuts.
TEST_F(PosixLogTest, AppendSyncRestartAndRecover) {
  LogConfig config;
  config.segment_bytes = 4000;
  OpenOrDie(config);
  std::vector<std::string> appended;
  int completed = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string batch = ValuesBatch(1 + i % 3, 60, i);
    absl::StatusOr<AppendInfo> info = log_->AppendAsLeader(batch, 1);
    ASSERT_TRUE(info.ok()) << info.status();
    appended.push_back(Stored(batch, info->base_offset, 1));
    log_->WhenDurable(info->last_offset + 1, [&completed](const absl::Status& status) {
      EXPECT_TRUE(status.ok());
      ++completed;
    });
  }
  loop_->RunUntil([&] { return completed == 300; }, 30'000'000);
  EXPECT_EQ(completed, 300);
  EXPECT_LT(log_->stats().syncs, 100u);
  ASSERT_GT(log_->segment_count(), 5u);
  ASSERT_TRUE(Close().ok());
  log_.reset();
  OpenOrDie(config);
  absl::StatusOr<std::vector<std::string>> read = ReadAll(*log_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, appended);
  absl::StatusOr<int64_t> by_time = log_->OffsetForTimestamp(1000);
  ASSERT_TRUE(by_time.ok());
  EXPECT_EQ(*by_time, 0);
  // A crash: the log is dropped without Close(), and the active segment gets a torn tail.
  ASSERT_TRUE(WaitDurable(log_->log_end_offset()).ok());
  const int64_t end = log_->log_end_offset();
  int64_t last_base = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root_ + "/" + kDirectory)) {
    std::optional<int64_t> base = ParseSegmentFileName(entry.path().filename().string(), ".log");
    if (base.has_value()) last_base = std::max(last_base, *base);
  }
  log_.reset();
  {
    FILE* file = fopen(
        absl::StrCat(root_, "/", kDirectory, "/", SegmentStem(last_base), ".log").c_str(), "ab");
    ASSERT_NE(file, nullptr);
    const std::string garbage = ValuesBatch(2, 50, 7).substr(0, 90);
    fwrite(garbage.data(), 1, garbage.size(), file);
    fclose(file);
  }
  OpenOrDie(config);
  EXPECT_EQ(log_->log_end_offset(), end);
  EXPECT_EQ(log_->stats().recovery_truncated_bytes, 90u);
  read = ReadAll(*log_);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, appended);
  absl::StatusOr<AppendInfo> info = log_->AppendAsLeader(ValuesBatch(1, 10, 1), 2);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->base_offset, end);
  ASSERT_TRUE(WaitDurable(end + 1).ok());
}

// On real files: truncation across segments and retention, then a clean restart.
TEST_F(PosixLogTest, TruncateRetainAndRestart) {
  LogConfig config;
  config.segment_bytes = 1500;
  config.retention_bytes = 4000;
  config.retention_ms = -1;
  OpenOrDie(config);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(log_->AppendAsLeader(ValuesBatch(1, 80, i), 1).ok());
  ASSERT_TRUE(WaitDurable(60).ok());
  ASSERT_TRUE(log_->TruncateTo(45).ok());
  ASSERT_TRUE(log_->AppendAsLeader(ValuesBatch(1, 80, 99), 2).ok());
  log_->RunMaintenance();
  const int64_t start = log_->log_start_offset();
  EXPECT_GT(start, 0);
  ASSERT_TRUE(WaitDurable(46).ok());
  ASSERT_TRUE(Close().ok());
  log_.reset();
  OpenOrDie(config);
  EXPECT_EQ(log_->log_start_offset(), start);
  EXPECT_EQ(log_->log_end_offset(), 46);
  absl::StatusOr<std::string> last = log_->Read(45, 1 << 20, 46, true);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Header(*last).partition_leader_epoch, 2);
}

// On real files: compaction writes "<base>.log.cleaned", renames it over the segment and keeps
// the latest record of every key; the result survives a clean restart.
TEST_F(PosixLogTest, CompactionOnRealFiles) {
  LogConfig config;
  config.cleanup_policy = CleanupPolicy::kCompact;
  config.segment_bytes = 2000;
  config.min_cleanable_dirty_ratio = 0.2;
  OpenOrDie(config);
  KeyedHistory history;
  AppendKeyed(*log_, history, 8, 10, 1000);
  ASSERT_TRUE(WaitDurable(log_->log_end_offset()).ok());
  const uint64_t size_before = log_->size_bytes();
  auto cleaned_files = [&] {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root_ + "/" + kDirectory)) {
      if (entry.path().string().find(".cleaned") != std::string::npos) ++count;
    }
    return count;
  };
  // Real syncs take real time: step until a round is complete and its files are renamed.
  for (int i = 0; i < 1000 && (log_->stats().compactions == 0 || cleaned_files() > 0); ++i) {
    log_->RunMaintenance();
    loop_->RunFor(10'000);
  }
  EXPECT_GT(log_->stats().compactions, 0u);
  EXPECT_LT(log_->size_bytes(), size_before);
  EXPECT_EQ(cleaned_files(), 0);
  CheckCompacted(*log_, history, true);
  ASSERT_TRUE(Close().ok());
  log_.reset();
  OpenOrDie(config);
  CheckCompacted(*log_, history, true);
}

}  // namespace
}  // namespace runnel::storage
