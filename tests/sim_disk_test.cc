// Tests of the simulated disk (sim/sim_disk.h): every Disk and File operation and its error codes,
// the durability model across crashes in each loss mode, every injected fault, the trace it
// records, and properties over random operation sequences (rapidcheck).
#include "sim/sim_disk.h"

#include <rapidcheck.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/env/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/sim_context.h"
#include "sim/trace.h"

namespace runnel::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A SimContext that drives one disk alone: scheduled actions run in (time, sequence) order when
// the test says so, node incarnations are whatever the test sets, faults draw from a seeded stream
// and the trace is kept in memory.
class FakeSimContext final : public SimContext {
 public:
  explicit FakeSimContext(uint64_t seed) : random_(seed) { trace_.KeepInMemory(size_t{1} << 20); }

  int64_t NowUs() const override { return now_us_; }

  uint64_t Schedule(int64_t delay_us, absl::AnyInvocable<void()> action) override {
    return Push(delay_us, std::nullopt, 0, std::move(action));
  }

  uint64_t ScheduleForNode(NodeId node, uint64_t incarnation, int64_t delay_us,
                           absl::AnyInvocable<void()> action) override {
    return Push(delay_us, node, incarnation, std::move(action));
  }

  void CancelEvent(uint64_t sequence) override {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->first.second == sequence) {
        events_.erase(it);
        return;
      }
    }
  }

  Random& FaultRandom() override { return random_; }
  Trace& trace() override { return trace_; }

  // The node's live incarnation; node actions scheduled for any other incarnation are dropped.
  void SetIncarnation(NodeId node, uint64_t incarnation) { incarnations_[node] = incarnation; }
  // When false, node actions run whatever their incarnation, so that tests can check the disk's
  // own guard against completions of a crashed epoch.
  void set_check_incarnations(bool check) { check_incarnations_ = check; }

  // Runs every action due within `duration_us` from now, advancing time; returns how many ran.
  int RunFor(int64_t duration_us) {
    const int64_t end_us = now_us_ + duration_us;
    int ran = 0;
    while (!events_.empty() && events_.begin()->first.first <= end_us) {
      auto node = events_.extract(events_.begin());
      now_us_ = node.key().first;
      Event& event = node.mapped();
      if (event.node.has_value() && check_incarnations_ &&
          incarnations_[*event.node] != event.incarnation) {
        continue;
      }
      event.action();
      ++ran;
    }
    now_us_ = end_us;
    return ran;
  }

  // Runs until nothing is pending.
  int RunAll() {
    int ran = 0;
    while (!events_.empty()) ran += RunFor(events_.begin()->first.first - now_us_);
    return ran;
  }

  size_t pending() const { return events_.size(); }

  std::vector<TraceEvent> EventsOfKind(TraceKind kind) const {
    std::vector<TraceEvent> found;
    for (const TraceEvent& event : trace_.kept_events()) {
      if (event.kind() == kind) found.push_back(event);
    }
    return found;
  }

 private:
  struct Event {
    std::optional<NodeId> node;
    uint64_t incarnation;
    absl::AnyInvocable<void()> action;
  };

  uint64_t Push(int64_t delay_us, std::optional<NodeId> node, uint64_t incarnation,
                absl::AnyInvocable<void()> action) {
    const uint64_t sequence = next_sequence_++;
    events_.emplace(std::make_pair(now_us_ + std::max<int64_t>(delay_us, 0), sequence),
                    Event{node, incarnation, std::move(action)});
    return sequence;
  }

  int64_t now_us_ = 0;
  uint64_t next_sequence_ = 1;
  std::map<std::pair<int64_t, uint64_t>, Event> events_;
  std::map<NodeId, uint64_t> incarnations_;
  bool check_incarnations_ = true;
  Random random_;
  Trace trace_;
};

::testing::AssertionResult IsOk(const absl::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}
template <typename T>
::testing::AssertionResult IsOk(const absl::StatusOr<T>& status_or) {
  return IsOk(status_or.status());
}
absl::StatusCode CodeOf(const absl::Status& status) { return status.code(); }
template <typename T>
absl::StatusCode CodeOf(const absl::StatusOr<T>& status_or) {
  return status_or.status().code();
}

// `count` bytes that depend on their position in the stream, never zero (so that zero-filled
// holes from torn writes stand out).
std::string StreamBytes(uint64_t position, size_t count, uint64_t salt = 0) {
  std::string bytes(count, '\0');
  for (size_t i = 0; i < count; ++i) {
    uint64_t state = salt ^ ((position + i) * 0x9e3779b97f4a7c15ULL);
    bytes[i] = static_cast<char>(1 + SplitMix64Next(state) % 255);
  }
  return bytes;
}

constexpr NodeId kNode = 3;
constexpr uint64_t kSector = 512;
constexpr std::array<CrashLossMode, 3> kAllModes = {CrashLossMode::kLoseAll, CrashLossMode::kPrefix,
                                                    CrashLossMode::kTorn};

class SimDiskTest : public ::testing::Test {
 protected:
  SimDiskTest() : SimDiskTest(7) {}
  explicit SimDiskTest(uint64_t seed) : context_(seed), storage_(context_, kNode, Options()) {
    context_.SetIncarnation(kNode, incarnation_);
    disk_ = storage_.OpenView(incarnation_);
  }

  static SimDiskOptions Options() {
    SimDiskOptions options;
    options.sync_latency_us_min = 10;
    options.sync_latency_us_max = 100;
    return options;
  }

  // Power loss and restart: the old view dies, a new incarnation gets a new one.
  void CrashAndRestart(std::optional<CrashLossMode> mode = std::nullopt) {
    if (mode.has_value()) {
      storage_.CrashWithMode(*mode);
    } else {
      storage_.Crash();
    }
    Restart();
  }

  void Restart() {
    ++incarnation_;
    context_.SetIncarnation(kNode, incarnation_);
    disk_ = storage_.OpenView(incarnation_);
    storage_.CheckInvariants();
  }

  std::unique_ptr<File> OpenFile(absl::string_view path, OpenMode mode = OpenMode::kCreate) {
    absl::StatusOr<std::unique_ptr<File>> file = disk_->Open(path, mode);
    EXPECT_TRUE(IsOk(file)) << path;
    return file.ok() ? *std::move(file) : nullptr;
  }

  // Calls Sync and runs the simulation until it completes.
  absl::Status SyncNow(File& file) {
    std::optional<absl::Status> result;
    file.Sync([&result](const absl::Status& status) { result = status; });
    context_.RunAll();
    return result.value_or(absl::InternalError("the sync never completed"));
  }

  absl::Status SyncDirectoryNow(absl::string_view directory) {
    std::optional<absl::Status> result;
    disk_->SyncDirectory(directory, [&result](const absl::Status& status) { result = status; });
    context_.RunAll();
    return result.value_or(absl::InternalError("the sync never completed"));
  }

  // Writes `contents` to a new file and makes both contents and name durable.
  void WriteDurableFile(absl::string_view path, absl::string_view contents) {
    std::unique_ptr<File> file = OpenFile(path, OpenMode::kCreateExclusive);
    ASSERT_NE(file, nullptr);
    ASSERT_TRUE(IsOk(file->Append(contents)));
    ASSERT_TRUE(IsOk(SyncNow(*file)));
    ASSERT_TRUE(IsOk(SyncDirectoryNow(ParentDirectory(path))));
  }

  std::string ReadAll(File& file) {
    absl::StatusOr<uint64_t> size = file.Size();
    EXPECT_TRUE(IsOk(size));
    std::string contents(size.value_or(0), '\0');
    absl::StatusOr<size_t> read = file.ReadAt(0, absl::MakeSpan(contents));
    EXPECT_TRUE(IsOk(read));
    EXPECT_EQ(read.value_or(0), contents.size());
    return contents;
  }

  std::string Contents(absl::string_view path) {
    absl::StatusOr<std::string> contents = storage_.VolatileContents(path);
    EXPECT_TRUE(IsOk(contents)) << path;
    return contents.value_or("<missing>");
  }

  FakeSimContext context_;
  SimDiskStorage storage_;
  uint64_t incarnation_ = 1;
  std::unique_ptr<Disk> disk_;
};

// ---- Operations and error codes ----

// Checks the three open modes: kExisting needs the file, kCreate creates or keeps, and
// kCreateExclusive refuses an existing file.
TEST_F(SimDiskTest, OpenModes) {
  EXPECT_EQ(CodeOf(disk_->Open("f", OpenMode::kExisting)), absl::StatusCode::kNotFound);
  std::unique_ptr<File> created = OpenFile("f", OpenMode::kCreate);
  ASSERT_TRUE(IsOk(created->Append("abc")));
  EXPECT_EQ(created->path(), "f");
  std::unique_ptr<File> reopened = OpenFile("f", OpenMode::kCreate);
  EXPECT_EQ(ReadAll(*reopened), "abc");  // kCreate keeps the contents
  std::unique_ptr<File> existing = OpenFile("f", OpenMode::kExisting);
  EXPECT_EQ(ReadAll(*existing), "abc");
  EXPECT_EQ(CodeOf(disk_->Open("f", OpenMode::kCreateExclusive)), absl::StatusCode::kAlreadyExists);
  std::unique_ptr<File> fresh = OpenFile("g", OpenMode::kCreateExclusive);
  EXPECT_EQ(ReadAll(*fresh), "");
  storage_.CheckInvariants();
}

// Checks that malformed paths are kInvalidArgument everywhere, that a directory cannot be opened
// as a file, and that a missing or non-directory parent is refused.
TEST_F(SimDiskTest, OpenRejectsBadPathsDirectoriesAndMissingParents) {
  const std::vector<std::string> bad_paths = {
      "/abs", "a//b", "a/./b", "../a", "a/..", "a/", std::string("a\0b", 3)};
  for (const std::string& bad : bad_paths) {
    EXPECT_EQ(CodeOf(disk_->Open(bad, OpenMode::kCreate)), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(CodeOf(disk_->CreateDirectory(bad)), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(CodeOf(disk_->Rename(bad, "x")), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(CodeOf(disk_->Rename("x", bad)), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(CodeOf(disk_->Remove(bad)), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(CodeOf(disk_->List(bad)), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(disk_->Exists(bad)) << bad;
    EXPECT_EQ(CodeOf(SyncDirectoryNow(bad)), absl::StatusCode::kInvalidArgument) << bad;
  }
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("d")));
  EXPECT_EQ(CodeOf(disk_->Open("", OpenMode::kCreate)), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Open("d", OpenMode::kCreate)), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Open("d", OpenMode::kExisting)), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Open("d", OpenMode::kCreateExclusive)), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeOf(disk_->Open("missing/f", OpenMode::kCreate)), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(disk_->Open("d/missing/f", OpenMode::kCreate)), absl::StatusCode::kNotFound);
  std::unique_ptr<File> file = OpenFile("d/f");
  EXPECT_EQ(CodeOf(disk_->Open("d/f/g", OpenMode::kCreate)), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(disk_->Exists("d/f/g"));
  EXPECT_EQ(storage_.VolatilePaths(), (std::vector<std::string>{"d", "d/f"}));
}

// Checks WriteAt, ReadAt, Size and Truncate together: gaps are zero-filled, reads stop at the end,
// truncation cuts and zero-extends.
TEST_F(SimDiskTest, WriteReadSizeTruncate) {
  std::unique_ptr<File> file = OpenFile("f");
  EXPECT_EQ(file->Size().value(), 0u);
  ASSERT_TRUE(IsOk(file->WriteAt(0, "hello")));
  ASSERT_TRUE(IsOk(file->WriteAt(8, "xy")));
  EXPECT_EQ(ReadAll(*file), std::string("hello\0\0\0xy", 10));
  ASSERT_TRUE(IsOk(file->WriteAt(1, "EL")));
  EXPECT_EQ(ReadAll(*file), std::string("hELlo\0\0\0xy", 10));
  // A zero-length write never extends the file.
  ASSERT_TRUE(IsOk(file->WriteAt(100, "")));
  EXPECT_EQ(file->Size().value(), 10u);

  char buffer[4];
  EXPECT_EQ(file->ReadAt(8, absl::MakeSpan(buffer)).value(), 2u);  // short read at the end
  EXPECT_EQ(std::string(buffer, 2), "xy");
  EXPECT_EQ(file->ReadAt(10, absl::MakeSpan(buffer)).value(), 0u);    // at the end
  EXPECT_EQ(file->ReadAt(1000, absl::MakeSpan(buffer)).value(), 0u);  // past it
  EXPECT_EQ(file->ReadAt(0, absl::Span<char>()).value(), 0u);

  ASSERT_TRUE(IsOk(file->Truncate(3)));
  EXPECT_EQ(ReadAll(*file), "hEL");
  ASSERT_TRUE(IsOk(file->Truncate(6)));
  EXPECT_EQ(ReadAll(*file), std::string("hEL\0\0\0", 6));
  ASSERT_TRUE(IsOk(file->Truncate(6)));  // same size: nothing changes
  EXPECT_EQ(storage_.UsedBytes(), 6u);
  storage_.CheckInvariants();
}

// Checks that Append writes at the end and returns where each piece starts.
TEST_F(SimDiskTest, AppendReturnsOffsets) {
  std::unique_ptr<File> file = OpenFile("log");
  EXPECT_EQ(file->Append("abc").value(), 0u);
  EXPECT_EQ(file->Append("").value(), 3u);
  EXPECT_EQ(file->Append("de").value(), 3u);
  ASSERT_TRUE(IsOk(file->WriteAt(10, "z")));
  EXPECT_EQ(file->Append("!").value(), 11u);
  EXPECT_EQ(ReadAll(*file), std::string("abcde\0\0\0\0\0z!", 12));
}

// Checks the named file size limit: growth past kFileBytesMax is kResourceExhausted, including
// offsets that would overflow, and changes nothing.
TEST_F(SimDiskTest, FileSizeLimit) {
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("abc")));
  EXPECT_EQ(CodeOf(file->WriteAt(SimDiskStorage::kFileBytesMax, "x")),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(file->WriteAt(UINT64_MAX, "x")), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(file->WriteAt(UINT64_MAX - 1, "xyz")), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(file->Truncate(SimDiskStorage::kFileBytesMax + 1)),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadAll(*file), "abc");
  EXPECT_EQ(storage_.UsedBytes(), 3u);
}

// Checks CreateDirectory: an existing directory is fine, an existing file is kAlreadyExists, the
// parent must exist and be a directory, and the root always exists.
TEST_F(SimDiskTest, CreateDirectoryCases) {
  EXPECT_TRUE(IsOk(disk_->CreateDirectory("")));
  EXPECT_TRUE(IsOk(disk_->CreateDirectory("a")));
  EXPECT_TRUE(IsOk(disk_->CreateDirectory("a")));
  EXPECT_TRUE(IsOk(disk_->CreateDirectory("a/b")));
  EXPECT_EQ(CodeOf(disk_->CreateDirectory("x/y")), absl::StatusCode::kNotFound);
  std::unique_ptr<File> file = OpenFile("a/f");
  EXPECT_EQ(CodeOf(disk_->CreateDirectory("a/f")), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeOf(disk_->CreateDirectory("a/f/g")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(storage_.VolatilePaths(), (std::vector<std::string>{"a", "a/b", "a/f"}));
  storage_.CheckInvariants();
}

// Checks Rename: it moves a file, replaces a file at the target atomically, keeps open handles on
// the moved inode, and refuses missing sources, directories, directory targets and missing
// target parents.
TEST_F(SimDiskTest, RenameCases) {
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("d")));
  std::unique_ptr<File> a = OpenFile("a");
  ASSERT_TRUE(IsOk(a->Append("AAA")));
  std::unique_ptr<File> b = OpenFile("d/b");
  ASSERT_TRUE(IsOk(b->Append("BBB")));

  ASSERT_TRUE(IsOk(disk_->Rename("a", "d/b")));
  EXPECT_FALSE(disk_->Exists("a"));
  EXPECT_EQ(Contents("d/b"), "AAA");
  // Both handles still work: `a` now writes the file named d/b, `b` the replaced, nameless one.
  ASSERT_TRUE(IsOk(a->Append("+")));
  EXPECT_EQ(Contents("d/b"), "AAA+");
  EXPECT_EQ(ReadAll(*b), "BBB");
  EXPECT_EQ(storage_.UsedBytes(), 7u);
  b.reset();  // the replaced file is gone once its last handle closes
  EXPECT_EQ(storage_.UsedBytes(), 4u);

  EXPECT_TRUE(IsOk(disk_->Rename("d/b", "d/b")));  // same name: nothing happens
  EXPECT_EQ(Contents("d/b"), "AAA+");
  EXPECT_EQ(CodeOf(disk_->Rename("missing", "x")), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(disk_->Rename("nodir/f", "x")), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(disk_->Rename("d/b", "nodir/x")), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(disk_->Rename("d", "e")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Rename("", "e")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Rename("d/b", "d")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Rename("d/b", "")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Rename("d/b", "d/b/c")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(storage_.VolatilePaths(), (std::vector<std::string>{"d", "d/b"}));
  storage_.CheckInvariants();
}

// Checks Remove: files and empty directories go, a non-empty directory is kFailedPrecondition, a
// missing path kNotFound, the root kInvalidArgument, and an open handle keeps a removed file.
TEST_F(SimDiskTest, RemoveCases) {
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("d")));
  std::unique_ptr<File> file = OpenFile("d/f");
  ASSERT_TRUE(IsOk(file->Append("data")));
  EXPECT_EQ(CodeOf(disk_->Remove("d")), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(disk_->Remove("")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(disk_->Remove("d/missing")), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(disk_->Remove("missing/f")), absl::StatusCode::kNotFound);
  ASSERT_TRUE(IsOk(disk_->Remove("d/f")));
  EXPECT_FALSE(disk_->Exists("d/f"));
  // The open handle keeps the removed file usable.
  ASSERT_TRUE(IsOk(file->Append("+more")));
  EXPECT_EQ(ReadAll(*file), "data+more");
  EXPECT_TRUE(IsOk(SyncNow(*file)));
  EXPECT_EQ(storage_.UsedBytes(), 9u);
  // A new file under the old name is a different file.
  std::unique_ptr<File> other = OpenFile("d/f", OpenMode::kCreateExclusive);
  EXPECT_EQ(ReadAll(*other), "");
  other.reset();
  ASSERT_TRUE(IsOk(disk_->Remove("d/f")));
  ASSERT_TRUE(IsOk(disk_->Remove("d")));
  EXPECT_FALSE(disk_->Exists("d"));
  file.reset();
  EXPECT_EQ(storage_.UsedBytes(), 0u);
  EXPECT_THAT(storage_.VolatilePaths(), IsEmpty());
  storage_.CheckInvariants();
}

// Checks List (sorted names of direct children, files and directories) and Exists.
TEST_F(SimDiskTest, ListAndExists) {
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("b")));
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("b/inner")));
  OpenFile("c");
  OpenFile("a");
  OpenFile("b/z");
  OpenFile("b/inner/deep");
  EXPECT_THAT(disk_->List("").value(), ElementsAre("a", "b", "c"));
  EXPECT_THAT(disk_->List("b").value(), ElementsAre("inner", "z"));
  EXPECT_THAT(disk_->List("b/inner").value(), ElementsAre("deep"));
  EXPECT_EQ(CodeOf(disk_->List("missing")), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(disk_->List("a")), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(disk_->Exists(""));
  EXPECT_TRUE(disk_->Exists("b"));
  EXPECT_TRUE(disk_->Exists("b/inner/deep"));
  EXPECT_FALSE(disk_->Exists("b/inner/nope"));
  EXPECT_FALSE(disk_->Exists("a/b"));
}

// Checks that two handles on one file see each other's writes at once.
TEST_F(SimDiskTest, HandlesShareOneFile) {
  std::unique_ptr<File> first = OpenFile("f");
  std::unique_ptr<File> second = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(first->Append("one")));
  ASSERT_TRUE(IsOk(second->Append("two")));
  EXPECT_EQ(ReadAll(*first), "onetwo");
  EXPECT_EQ(second->Size().value(), 6u);
}

// Checks SyncDirectory's errors, which arrive through the callback: kNotFound for a missing
// directory, kFailedPrecondition for a file.
TEST_F(SimDiskTest, SyncDirectoryErrors) {
  OpenFile("f");
  EXPECT_EQ(CodeOf(SyncDirectoryNow("missing")), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(SyncDirectoryNow("f")), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsOk(SyncDirectoryNow("")));
}

// Checks that Sync and SyncDirectory complete only through the event loop, after the configured
// latency, never inside the call.
TEST_F(SimDiskTest, SyncsCompleteLaterOnTheEventLoop) {
  storage_.options().sync_latency_us_min = 500;
  storage_.options().sync_latency_us_max = 500;
  std::unique_ptr<File> file = OpenFile("f");
  bool file_done = false;
  bool directory_done = false;
  file->Sync([&file_done](const absl::Status& status) {
    EXPECT_TRUE(IsOk(status));
    file_done = true;
  });
  disk_->SyncDirectory("", [&directory_done](const absl::Status& status) {
    EXPECT_TRUE(IsOk(status));
    directory_done = true;
  });
  EXPECT_FALSE(file_done || directory_done);
  context_.RunFor(499);
  EXPECT_FALSE(file_done || directory_done);
  context_.RunFor(1);
  EXPECT_TRUE(file_done && directory_done);
}

// ---- Durability across crashes ----

// Checks that synced contents and synced names survive a crash in every loss mode, and in the
// weighted draw, while unsynced appends after them never damage them.
TEST_F(SimDiskTest, SyncedDataSurvivesCrashInEveryMode) {
  const std::string synced = StreamBytes(0, 3000);
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("d")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  WriteDurableFile("d/log", synced);
  for (int round = 0; round < 40; ++round) {
    std::unique_ptr<File> file = OpenFile("d/log", OpenMode::kExisting);
    ASSERT_TRUE(IsOk(file->Truncate(synced.size())));
    ASSERT_TRUE(IsOk(SyncNow(*file)));
    ASSERT_TRUE(IsOk(file->Append(StreamBytes(synced.size(), 2000, round))));
    if (round < 3) {
      CrashAndRestart(kAllModes[static_cast<size_t>(round)]);
    } else {
      CrashAndRestart();
    }
    const std::string recovered = Contents("d/log");
    ASSERT_GE(recovered.size(), synced.size()) << round;
    EXPECT_EQ(recovered.substr(0, synced.size()), synced) << round;
    EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"d", "d/log"}));
  }
}

// Checks kLoseAll: every unsynced change to a file (appends, overwrites, truncation) is undone.
TEST_F(SimDiskTest, LoseAllModeDropsEveryUnsyncedChange) {
  WriteDurableFile("f", "0123456789");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->WriteAt(2, "XX")));
  ASSERT_TRUE(IsOk(file->Append("tail")));
  EXPECT_EQ(storage_.DurableContents("f").value(), "0123456789");
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_EQ(Contents("f"), "0123456789");

  file = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->Truncate(4)));
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_EQ(Contents("f"), "0123456789");
}

// Checks kPrefix: unsynced appends survive as a prefix whose length lies between the durable and
// the volatile length, and over many crashes both ends and the middle occur.
TEST_F(SimDiskTest, PrefixModeKeepsAPrefixOfTheAppends) {
  const std::string durable = StreamBytes(0, 1000);
  WriteDurableFile("log", durable);
  bool saw_none = false, saw_all = false, saw_between = false;
  for (int round = 0; round < 300; ++round) {
    std::unique_ptr<File> file = OpenFile("log", OpenMode::kExisting);
    ASSERT_TRUE(IsOk(file->Truncate(durable.size())));
    ASSERT_TRUE(IsOk(SyncNow(*file)));
    // Small appends so that the kept length hits both ends now and then.
    const std::string appended = StreamBytes(durable.size(), 1 + round % 7, round);
    ASSERT_TRUE(IsOk(file->Append(appended)));
    const std::string volatile_contents = durable + appended;
    CrashAndRestart(CrashLossMode::kPrefix);
    const std::string recovered = Contents("log");
    ASSERT_GE(recovered.size(), durable.size());
    ASSERT_LE(recovered.size(), volatile_contents.size());
    ASSERT_EQ(recovered, volatile_contents.substr(0, recovered.size()));
    saw_none |= recovered.size() == durable.size();
    saw_all |= recovered.size() == volatile_contents.size();
    saw_between |= recovered.size() > durable.size() && recovered.size() < volatile_contents.size();
  }
  EXPECT_TRUE(saw_none && saw_all && saw_between);
}

// Checks kPrefix on a shrunk file: the length lands between the truncated and the durable one, the
// bytes past the truncation point being the durable ones.
TEST_F(SimDiskTest, PrefixModeAfterTruncation) {
  const std::string durable = StreamBytes(0, 100);
  WriteDurableFile("f", durable);
  for (int round = 0; round < 50; ++round) {
    std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
    ASSERT_TRUE(IsOk(file->Truncate(durable.size())));
    ASSERT_TRUE(IsOk(file->WriteAt(0, durable)));
    ASSERT_TRUE(IsOk(SyncNow(*file)));
    ASSERT_TRUE(IsOk(file->Truncate(40)));
    CrashAndRestart(CrashLossMode::kPrefix);
    const std::string recovered = Contents("f");
    ASSERT_GE(recovered.size(), 40u);
    ASSERT_LE(recovered.size(), 100u);
    EXPECT_EQ(recovered, durable.substr(0, recovered.size()));
  }
}

// Checks kTorn: only whole sectors that differ change, each to entirely old or entirely new
// contents (zeros past the durable length), the length is the old or the new one, sectors nobody
// touched stay intact, and over many crashes every combination shows up.
TEST_F(SimDiskTest, TornModeChangesOnlyWholeSectors) {
  const std::string durable = StreamBytes(0, 4 * kSector, 1);
  WriteDurableFile("f", durable);
  // Sector 1 is partly overwritten; sectors 4.. are appended; 0, 2 and 3 are never touched.
  const std::string overwrite = StreamBytes(0, 200, 2);
  const std::string appended = StreamBytes(4 * kSector, 2 * kSector + 100, 3);
  std::string now = durable;
  now.replace(kSector + 100, overwrite.size(), overwrite);
  now += appended;
  std::set<std::string> outcomes;
  for (int round = 0; round < 200; ++round) {
    std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
    ASSERT_TRUE(IsOk(file->Truncate(durable.size())));
    ASSERT_TRUE(IsOk(file->WriteAt(0, durable)));
    ASSERT_TRUE(IsOk(SyncNow(*file)));
    ASSERT_TRUE(IsOk(file->WriteAt(kSector + 100, overwrite)));
    ASSERT_TRUE(IsOk(file->Append(appended)));
    ASSERT_EQ(ReadAll(*file), now);
    CrashAndRestart(CrashLossMode::kTorn);
    const std::string recovered = Contents("f");
    ASSERT_TRUE(recovered.size() == durable.size() || recovered.size() == now.size());
    std::string outcome = recovered.size() == durable.size() ? "short:" : "long:";
    for (uint64_t start = 0; start < recovered.size(); start += kSector) {
      const uint64_t length = std::min<uint64_t>(kSector, recovered.size() - start);
      const std::string got = recovered.substr(start, length);
      std::string old_image = start < durable.size() ? durable.substr(start, length) : "";
      old_image.resize(length, '\0');
      const std::string new_image = now.substr(start, length);
      const bool is_old = got == old_image;
      const bool is_new = got == new_image;
      ASSERT_TRUE(is_old || is_new) << "round " << round << " sector at " << start;
      if (start == 0 || start == 2 * kSector || start == 3 * kSector) {
        ASSERT_EQ(got, old_image);  // untouched sectors are intact
      }
      outcome += is_new ? (is_old ? "=" : "N") : "O";
    }
    outcomes.insert(outcome);
  }
  // Sectors 1, 4, 5 and 6 are each old or new independently, for each of two lengths.
  EXPECT_GE(outcomes.size(), 12u);
}

// Checks that what a crash leaves is durable: a second crash, whatever its mode, changes nothing.
TEST_F(SimDiskTest, CrashResultIsDurable) {
  WriteDurableFile("f", "base");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->Append(StreamBytes(4, 3000))));
  file.reset();
  CrashAndRestart(CrashLossMode::kTorn);
  const std::string after_first = Contents("f");
  EXPECT_EQ(storage_.DurableContents("f").value(), after_first);
  for (CrashLossMode mode : kAllModes) {
    CrashAndRestart(mode);
    EXPECT_EQ(Contents("f"), after_first);
  }
}

// Checks that creating a file is undone by a crash unless its directory was synced, and that
// syncing the file alone does not make its name durable.
TEST_F(SimDiskTest, UnsyncedCreateIsUndoneByCrash) {
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("data")));
  ASSERT_TRUE(IsOk(SyncNow(*file)));
  EXPECT_THAT(storage_.DurablePaths(), IsEmpty());
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_FALSE(disk_->Exists("f"));
  EXPECT_EQ(storage_.UsedBytes(), 0u);

  file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("data")));
  ASSERT_TRUE(IsOk(SyncNow(*file)));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"f"}));
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_EQ(Contents("f"), "data");
}

// Checks that a file whose name was synced but whose contents were not comes back empty after a
// kLoseAll crash.
TEST_F(SimDiskTest, SyncedNameWithUnsyncedContentsComesBackEmpty) {
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("data")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_EQ(Contents("f"), "");
}

// Checks that an unsynced rename is undone by a crash and a synced one survives, atomically: the
// target refers to the old or the new file, never a mix.
TEST_F(SimDiskTest, RenameIsDurableOnlyAfterDirectorySync) {
  WriteDurableFile("target", "old target");
  WriteDurableFile("tmp", "new target");
  ASSERT_TRUE(IsOk(disk_->Rename("tmp", "target")));
  EXPECT_EQ(Contents("target"), "new target");
  CrashAndRestart();
  EXPECT_EQ(Contents("target"), "old target");
  EXPECT_EQ(Contents("tmp"), "new target");

  ASSERT_TRUE(IsOk(disk_->Rename("tmp", "target")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  CrashAndRestart();
  EXPECT_EQ(Contents("target"), "new target");
  EXPECT_FALSE(disk_->Exists("tmp"));
}

// Checks that an unsynced remove is undone by a crash (with the file's durable contents) and a
// synced one survives.
TEST_F(SimDiskTest, RemoveIsDurableOnlyAfterDirectorySync) {
  WriteDurableFile("f", "keep me");
  ASSERT_TRUE(IsOk(disk_->Remove("f")));
  EXPECT_FALSE(disk_->Exists("f"));
  // The durable name keeps the file's bytes on the medium.
  EXPECT_EQ(storage_.UsedBytes(), 7u);
  CrashAndRestart();
  EXPECT_EQ(Contents("f"), "keep me");

  ASSERT_TRUE(IsOk(disk_->Remove("f")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  EXPECT_EQ(storage_.UsedBytes(), 0u);
  CrashAndRestart();
  EXPECT_FALSE(disk_->Exists("f"));
}

// Checks that a directory's entries are reachable after a crash only if the directory itself is
// durably named in its parent, and that a synced subdirectory survives with its synced entries.
TEST_F(SimDiskTest, DirectoryNeedsItsParentSynced) {
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("a")));
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("a/b")));
  WriteDurableFile("a/b/f", "data");  // syncs a/b, but neither a nor the root
  EXPECT_THAT(storage_.DurablePaths(), IsEmpty());
  CrashAndRestart();
  EXPECT_FALSE(disk_->Exists("a"));
  EXPECT_EQ(storage_.UsedBytes(), 0u);

  ASSERT_TRUE(IsOk(disk_->CreateDirectory("a")));
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("a/b")));
  WriteDurableFile("a/b/f", "data");
  ASSERT_TRUE(IsOk(SyncDirectoryNow("a")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"a", "a/b", "a/b/f"}));
  CrashAndRestart();
  EXPECT_EQ(Contents("a/b/f"), "data");
  EXPECT_EQ(storage_.VolatilePaths(), (std::vector<std::string>{"a", "a/b", "a/b/f"}));
}

// Checks that each directory's entries are durable independently: a rename between two
// directories with only the target synced leaves the file under both names after a crash (the
// contract lets a crash undo each entry change on its own), and both names then share one file.
TEST_F(SimDiskTest, RenameAcrossDirectoriesSyncedOnOneSide) {
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("from")));
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("to")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  WriteDurableFile("from/f", "data");
  ASSERT_TRUE(IsOk(disk_->Rename("from/f", "to/f")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("to")));
  CrashAndRestart();
  EXPECT_EQ(Contents("from/f"), "data");
  EXPECT_EQ(Contents("to/f"), "data");
  std::unique_ptr<File> file = OpenFile("from/f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->Append("+")));
  EXPECT_EQ(Contents("to/f"), "data+");
  // Renaming one name onto the other changes nothing, as POSIX rename of two links to one file.
  ASSERT_TRUE(IsOk(disk_->Rename("from/f", "to/f")));
  EXPECT_TRUE(disk_->Exists("from/f"));
  // Removing one name keeps the other.
  ASSERT_TRUE(IsOk(disk_->Remove("from/f")));
  EXPECT_EQ(Contents("to/f"), "data+");
  storage_.CheckInvariants();
}

// Checks that a directory removed and recreated under the same name is a new directory: syncing
// the new one does not change what the old one durably holds, so a crash before the parent is
// synced brings back the old directory with its old entries.
TEST_F(SimDiskTest, RecreatedDirectoryIsANewDirectory) {
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("d")));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  WriteDurableFile("d/old", "old");
  ASSERT_TRUE(IsOk(disk_->Remove("d/old")));
  ASSERT_TRUE(IsOk(disk_->Remove("d")));
  ASSERT_TRUE(IsOk(disk_->CreateDirectory("d")));
  WriteDurableFile("d/new", "new");
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"d", "d/old"}));
  CrashAndRestart();
  EXPECT_THAT(disk_->List("d").value(), ElementsAre("old"));
  EXPECT_EQ(Contents("d/old"), "old");
}

// Checks that SyncDirectory makes durable the entries as they were when it was called, not
// changes made while it was in flight.
TEST_F(SimDiskTest, DirectorySyncCoversOnlyEntriesBeforeTheCall) {
  OpenFile("before");
  std::optional<absl::Status> result;
  disk_->SyncDirectory("", [&result](const absl::Status& status) { result = status; });
  OpenFile("after");
  ASSERT_TRUE(IsOk(disk_->Remove("before")));
  context_.RunAll();
  ASSERT_TRUE(result.has_value() && result->ok());
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"before"}));
  CrashAndRestart();
  EXPECT_THAT(disk_->List("").value(), ElementsAre("before"));
}

// Checks that a write made after a Sync call is not made durable by that Sync, even though the
// Sync completes after the write.
TEST_F(SimDiskTest, WriteAfterSyncCallIsNotCoveredByIt) {
  WriteDurableFile("f", "");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->Append("one")));
  std::optional<absl::Status> result;
  file->Sync([&result](const absl::Status& status) { result = status; });
  ASSERT_TRUE(IsOk(file->Append("two")));
  ASSERT_TRUE(IsOk(file->WriteAt(0, "O")));
  context_.RunAll();
  ASSERT_TRUE(result.has_value() && result->ok());
  EXPECT_EQ(storage_.DurableContents("f").value(), "one");
  EXPECT_EQ(Contents("f"), "Onetwo");
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_EQ(Contents("f"), "one");
}

// Checks that when a later Sync completes before an earlier one, the earlier completion does not
// roll the durable contents back.
TEST_F(SimDiskTest, EarlierSyncCompletingLastDoesNotRollBack) {
  WriteDurableFile("f", "");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  std::vector<std::string> completions;
  storage_.options().sync_latency_us_min = storage_.options().sync_latency_us_max = 1000;
  ASSERT_TRUE(IsOk(file->Append("first")));
  file->Sync([&](const absl::Status& status) {
    EXPECT_TRUE(IsOk(status));
    completions.push_back("first");
    EXPECT_EQ(storage_.DurableContents("f").value(), "first+second");
  });
  storage_.options().sync_latency_us_min = storage_.options().sync_latency_us_max = 10;
  ASSERT_TRUE(IsOk(file->Append("+second")));
  file->Sync([&](const absl::Status& status) {
    EXPECT_TRUE(IsOk(status));
    completions.push_back("second");
    EXPECT_EQ(storage_.DurableContents("f").value(), "first+second");
  });
  context_.RunAll();
  EXPECT_THAT(completions, ElementsAre("second", "first"));
  EXPECT_EQ(storage_.DurableContents("f").value(), "first+second");
}

// Checks the same for directories: an older directory snapshot completing last is ignored.
TEST_F(SimDiskTest, EarlierDirectorySyncCompletingLastDoesNotRollBack) {
  OpenFile("a");
  storage_.options().sync_latency_us_min = storage_.options().sync_latency_us_max = 1000;
  disk_->SyncDirectory("", [](const absl::Status& status) { EXPECT_TRUE(IsOk(status)); });
  OpenFile("b");
  storage_.options().sync_latency_us_min = storage_.options().sync_latency_us_max = 10;
  disk_->SyncDirectory("", [](const absl::Status& status) { EXPECT_TRUE(IsOk(status)); });
  context_.RunAll();
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"a", "b"}));
}

// Checks that the Sync callback of a crashed incarnation never runs and makes nothing durable,
// whether or not the context itself filters by incarnation (the disk has its own guard).
TEST_F(SimDiskTest, SyncCallbackOfCrashedIncarnationNeverRuns) {
  for (bool context_filters : {true, false}) {
    context_.set_check_incarnations(context_filters);
    WriteDurableFile(context_filters ? "f1" : "f2", "durable");
    std::unique_ptr<File> file = OpenFile(context_filters ? "f1" : "f2", OpenMode::kExisting);
    ASSERT_TRUE(IsOk(file->Append("+pending")));
    bool ran = false;
    file->Sync([&ran](const absl::Status&) { ran = true; });
    disk_->SyncDirectory("", [&ran](const absl::Status&) { ran = true; });
    CrashAndRestart(CrashLossMode::kLoseAll);
    context_.RunAll();
    EXPECT_FALSE(ran);
    EXPECT_EQ(Contents(context_filters ? "f1" : "f2"), "durable");
  }
}

// Checks that after a crash every handle and view of the earlier incarnation fails every call with
// kFailedPrecondition, drops Sync callbacks, and can still be destroyed safely, also after the
// storage itself is gone.
TEST_F(SimDiskTest, OldHandlesFailAfterCrash) {
  WriteDurableFile("f", "data");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  std::unique_ptr<Disk> old_disk = std::move(disk_);
  CrashAndRestart();
  const auto kDead = absl::StatusCode::kFailedPrecondition;
  char buffer[4];
  EXPECT_EQ(CodeOf(file->WriteAt(0, "x")), kDead);
  EXPECT_EQ(CodeOf(file->Append("x")), kDead);
  EXPECT_EQ(CodeOf(file->ReadAt(0, absl::MakeSpan(buffer))), kDead);
  EXPECT_EQ(CodeOf(file->Size()), kDead);
  EXPECT_EQ(CodeOf(file->Truncate(0)), kDead);
  EXPECT_EQ(file->path(), "f");
  bool ran = false;
  file->Sync([&ran](const absl::Status&) { ran = true; });
  EXPECT_EQ(CodeOf(old_disk->Open("f", OpenMode::kExisting)), kDead);
  EXPECT_EQ(CodeOf(old_disk->CreateDirectory("d")), kDead);
  EXPECT_EQ(CodeOf(old_disk->Rename("f", "g")), kDead);
  EXPECT_EQ(CodeOf(old_disk->Remove("f")), kDead);
  EXPECT_EQ(CodeOf(old_disk->List("")), kDead);
  EXPECT_FALSE(old_disk->Exists("f"));
  old_disk->SyncDirectory("", [&ran](const absl::Status&) { ran = true; });
  context_.RunAll();
  EXPECT_FALSE(ran);
  // Nothing the dead handles tried reached the disk.
  EXPECT_EQ(Contents("f"), "data");
  EXPECT_EQ(storage_.VolatilePaths(), (std::vector<std::string>{"f"}));
  file.reset();
  old_disk.reset();
  storage_.CheckInvariants();

  // Handles outliving their storage fail the same way and are safe to destroy.
  FakeSimContext context(1);
  std::unique_ptr<Disk> orphan_disk;
  std::unique_ptr<File> orphan_file;
  {
    SimDiskStorage storage(context, 0, SimDiskOptions());
    orphan_disk = storage.OpenView(1);
    orphan_file = orphan_disk->Open("x", OpenMode::kCreate).value();
    orphan_file->Sync([](const absl::Status&) { ADD_FAILURE() << "ran after the storage died"; });
  }
  EXPECT_EQ(CodeOf(orphan_file->Append("x")), kDead);
  EXPECT_EQ(CodeOf(orphan_disk->List("")), kDead);
  context.RunAll();
}

// Checks ProcessCrash: handles die as with a power loss, but nothing is lost, and unsynced changes
// stay volatile for a later Sync to cover.
TEST_F(SimDiskTest, ProcessCrashKillsHandlesButLosesNothing) {
  WriteDurableFile("f", "durable");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->Append("+cached")));
  std::unique_ptr<File> removed = OpenFile("removed");
  ASSERT_TRUE(IsOk(removed->Append("gone")));
  ASSERT_TRUE(IsOk(disk_->Remove("removed")));
  bool ran = false;
  file->Sync([&ran](const absl::Status&) { ran = true; });
  storage_.ProcessCrash();
  Restart();
  context_.RunAll();
  EXPECT_FALSE(ran);
  EXPECT_EQ(CodeOf(file->Append("x")), absl::StatusCode::kFailedPrecondition);
  // The removed file was kept only by its handle: gone now.
  EXPECT_EQ(storage_.UsedBytes(), std::string("durable+cached").size());
  EXPECT_EQ(Contents("f"), "durable+cached");
  EXPECT_EQ(storage_.DurableContents("f").value(), "durable");
  std::unique_ptr<File> reopened = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(SyncNow(*reopened)));
  EXPECT_EQ(storage_.DurableContents("f").value(), "durable+cached");
  storage_.CheckInvariants();
}

// ---- Faults ----

// Checks SetFull: every growth fails with kResourceExhausted and changes nothing, while writes in
// place and shrinking still work; clearing it restores growth.
TEST_F(SimDiskTest, DiskFullFailsEveryGrowth) {
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("0123456789")));
  storage_.SetFull(true);
  EXPECT_TRUE(storage_.full());
  EXPECT_EQ(CodeOf(file->Append("x")), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(file->WriteAt(8, "xyz")), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(file->Truncate(11)), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadAll(*file), "0123456789");
  EXPECT_TRUE(IsOk(file->WriteAt(0, "AB")));
  EXPECT_TRUE(IsOk(file->Truncate(5)));
  EXPECT_TRUE(IsOk(file->Append("")));
  EXPECT_EQ(ReadAll(*file), "AB234");
  EXPECT_EQ(context_.EventsOfKind(DISK_ERROR).size(), 3u);
  storage_.SetFull(false);
  EXPECT_TRUE(IsOk(file->Append("56")));
  EXPECT_EQ(ReadAll(*file), "AB23456");
}

// Checks capacity_bytes: total volatile bytes never exceed it, and freeing space lets growth
// resume.
TEST_F(SimDiskTest, CapacityLimitsTotalVolatileBytes) {
  storage_.options().capacity_bytes = 1000;
  std::unique_ptr<File> a = OpenFile("a");
  std::unique_ptr<File> b = OpenFile("b");
  ASSERT_TRUE(IsOk(a->Append(std::string(600, 'a'))));
  EXPECT_EQ(CodeOf(b->Append(std::string(401, 'b'))), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(b->Truncate(401)), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(b->Size().value(), 0u);
  ASSERT_TRUE(IsOk(b->Append(std::string(400, 'b'))));
  EXPECT_EQ(storage_.UsedBytes(), 1000u);
  EXPECT_EQ(CodeOf(b->Append("x")), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(IsOk(a->Truncate(100)));
  EXPECT_EQ(storage_.UsedBytes(), 500u);
  ASSERT_TRUE(IsOk(disk_->Remove("b")));
  EXPECT_EQ(storage_.UsedBytes(), 500u);  // still open
  b.reset();
  EXPECT_EQ(storage_.UsedBytes(), 100u);
  EXPECT_TRUE(IsOk(a->Append(std::string(900, 'a'))));
  storage_.CheckInvariants();
}

// Checks write_error_probability: at 1 every WriteAt, Append and Truncate fails with kUnavailable,
// changes nothing and is traced; at 0 none ever fails.
TEST_F(SimDiskTest, WriteErrorProbability) {
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("data")));
  storage_.options().write_error_probability = 1.0;
  EXPECT_EQ(CodeOf(file->WriteAt(0, "XX")), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeOf(file->Append("more")), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeOf(file->Truncate(1)), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReadAll(*file), "data");
  EXPECT_EQ(storage_.UsedBytes(), 4u);
  const std::vector<TraceEvent> errors = context_.EventsOfKind(DISK_ERROR);
  ASSERT_EQ(errors.size(), 3u);
  for (const TraceEvent& error : errors) {
    EXPECT_EQ(error.subject(), "f");
    EXPECT_EQ(error.node(), kNode);
    EXPECT_EQ(error.detail(), "injected write error");
  }
  storage_.options().write_error_probability = 0.0;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(IsOk(file->Append("x")));
    ASSERT_TRUE(IsOk(file->WriteAt(0, "y")));
    ASSERT_TRUE(IsOk(file->Truncate(4 + static_cast<uint64_t>(i) + 1)));
  }
  EXPECT_EQ(context_.EventsOfKind(DISK_ERROR).size(), 3u);
}

// Checks read_error_probability: at 1 every ReadAt fails with kUnavailable; at 0 none does.
TEST_F(SimDiskTest, ReadErrorProbability) {
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append("data")));
  char buffer[4];
  storage_.options().read_error_probability = 1.0;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(CodeOf(file->ReadAt(0, absl::MakeSpan(buffer))), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(context_.EventsOfKind(DISK_ERROR).size(), 10u);
  storage_.options().read_error_probability = 0.0;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(file->ReadAt(0, absl::MakeSpan(buffer)).value(), 4u);
    ASSERT_EQ(std::string(buffer, 4), "data");
  }
}

// Checks sync_error_probability: at 1 Sync and SyncDirectory complete with kUnavailable and make
// nothing new durable; at 0 they always succeed.
TEST_F(SimDiskTest, SyncErrorProbability) {
  WriteDurableFile("f", "durable");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);
  ASSERT_TRUE(IsOk(file->Append("+new")));
  OpenFile("g");
  storage_.options().sync_error_probability = 1.0;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(CodeOf(SyncNow(*file)), absl::StatusCode::kUnavailable);
    EXPECT_EQ(CodeOf(SyncDirectoryNow("")), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(storage_.DurableContents("f").value(), "durable");
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"f"}));
  EXPECT_EQ(context_.EventsOfKind(DISK_ERROR).size(), 10u);
  storage_.options().sync_error_probability = 0.0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(IsOk(SyncNow(*file)));
    ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  }
  // A later successful Sync covers what the failed ones did not.
  EXPECT_EQ(storage_.DurableContents("f").value(), "durable+new");
  EXPECT_EQ(storage_.DurablePaths(), (std::vector<std::string>{"f", "g"}));
}

// Checks read_corruption_probability: at 1 each read returns the right length with exactly one bit
// flipped, and the stored bytes never change; at 0 reads are exact.
TEST_F(SimDiskTest, ReadCorruptionFlipsExactlyOneBit) {
  const std::string stored = StreamBytes(0, 3000);
  std::unique_ptr<File> file = OpenFile("f");
  ASSERT_TRUE(IsOk(file->Append(stored)));
  storage_.options().read_corruption_probability = 1.0;
  Random picks(99);
  std::set<uint64_t> corrupted_offsets;
  for (int i = 0; i < 300; ++i) {
    const uint64_t offset = picks.Below(stored.size());
    std::string buffer(1 + picks.Below(600), '\0');
    const size_t read = file->ReadAt(offset, absl::MakeSpan(buffer)).value();
    ASSERT_EQ(read, std::min<uint64_t>(buffer.size(), stored.size() - offset));
    int flipped_bits = 0;
    for (size_t j = 0; j < read; ++j) {
      const auto difference = static_cast<unsigned char>(buffer[j] ^ stored[offset + j]);
      flipped_bits += std::popcount(difference);
      if (difference != 0) corrupted_offsets.insert(offset + j);
    }
    ASSERT_EQ(flipped_bits, 1) << "read " << i;
    ASSERT_EQ(Contents("f"), stored);
  }
  EXPECT_GT(corrupted_offsets.size(), 100u);  // the flipped bit moves around
  // A read returning nothing has nothing to corrupt.
  char byte;
  EXPECT_EQ(file->ReadAt(stored.size(), absl::MakeSpan(&byte, 1)).value(), 0u);
  const std::vector<TraceEvent> errors = context_.EventsOfKind(DISK_ERROR);
  ASSERT_EQ(errors.size(), 300u);
  EXPECT_EQ(errors.front().detail(), "injected read corruption");

  storage_.options().read_corruption_probability = 0.0;
  for (int i = 0; i < 300; ++i) ASSERT_EQ(ReadAll(*file), stored);
}

// Checks the one-shot faults: each fires on exactly the next call of its kind and then disarms.
TEST_F(SimDiskTest, OneShotFaultsFireOnce) {
  WriteDurableFile("f", "base");
  std::unique_ptr<File> file = OpenFile("f", OpenMode::kExisting);

  storage_.FailNextWrite();
  EXPECT_EQ(CodeOf(file->Append("x")), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsOk(file->Append("x")));
  storage_.FailNextWrite();
  EXPECT_EQ(CodeOf(file->Truncate(0)), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReadAll(*file), "basex");

  storage_.FailNextSync();
  EXPECT_EQ(CodeOf(SyncNow(*file)), absl::StatusCode::kUnavailable);
  EXPECT_EQ(storage_.DurableContents("f").value(), "base");
  EXPECT_TRUE(IsOk(SyncNow(*file)));
  EXPECT_EQ(storage_.DurableContents("f").value(), "basex");
  storage_.FailNextSync();
  EXPECT_EQ(CodeOf(SyncDirectoryNow("")), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsOk(SyncDirectoryNow("")));

  storage_.CorruptNextRead();
  char empty;
  // A read at the end returns nothing and leaves the fault armed.
  EXPECT_EQ(file->ReadAt(5, absl::MakeSpan(&empty, 1)).value(), 0u);
  EXPECT_NE(ReadAll(*file), "basex");
  EXPECT_EQ(ReadAll(*file), "basex");

  // Disarmed faults survive a crash armed.
  storage_.FailNextWrite();
  CrashAndRestart();
  file = OpenFile("f", OpenMode::kExisting);
  EXPECT_EQ(CodeOf(file->Append("y")), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsOk(file->Append("y")));

  std::vector<std::string> details;
  for (const TraceEvent& event : context_.EventsOfKind(DISK_ERROR)) {
    details.push_back(event.detail());
  }
  EXPECT_THAT(details, ElementsAre("injected write error", "injected write error",
                                   "injected sync error", "injected sync error",
                                   "injected read corruption", "injected write error"));
}

// ---- Trace ----

// Checks the trace: each completed Sync is a DISK_SYNC with the path and durable size, stamped
// with the node and the completion time; each file that lost bytes in a crash is a DISK_CRASH_LOSS
// with the bytes lost and the mode; undone directory entries are one event per directory.
TEST_F(SimDiskTest, TraceRecordsSyncsAndCrashLosses) {
  storage_.options().sync_latency_us_min = storage_.options().sync_latency_us_max = 250;
  std::unique_ptr<File> file = OpenFile("log");
  ASSERT_TRUE(IsOk(file->Append("12345")));
  ASSERT_TRUE(IsOk(SyncNow(*file)));
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  std::vector<TraceEvent> syncs = context_.EventsOfKind(DISK_SYNC);
  ASSERT_EQ(syncs.size(), 2u);
  EXPECT_EQ(syncs[0].subject(), "log");
  EXPECT_EQ(syncs[0].bytes(), 5u);
  EXPECT_EQ(syncs[0].node(), kNode);
  EXPECT_EQ(syncs[0].time_us(), 250);
  EXPECT_EQ(syncs[1].subject(), "");
  EXPECT_EQ(syncs[1].bytes(), 1u);  // one entry
  EXPECT_EQ(syncs[1].time_us(), 500);

  ASSERT_TRUE(IsOk(file->Append("67890")));
  OpenFile("unsynced");
  CrashAndRestart(CrashLossMode::kLoseAll);
  std::vector<TraceEvent> losses = context_.EventsOfKind(DISK_CRASH_LOSS);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_EQ(losses[0].subject(), "");
  EXPECT_EQ(losses[0].detail(), "directory entries");
  EXPECT_EQ(losses[0].bytes(), 1u);
  EXPECT_EQ(losses[1].subject(), "log");
  EXPECT_EQ(losses[1].detail(), "lose_all");
  EXPECT_EQ(losses[1].bytes(), 5u);
  EXPECT_EQ(losses[1].node(), kNode);

  // A crash that loses nothing records nothing.
  CrashAndRestart(CrashLossMode::kLoseAll);
  EXPECT_EQ(context_.EventsOfKind(DISK_CRASH_LOSS).size(), 2u);
}

// Checks determinism: the same seed and calls give the same trace digest and the same contents,
// with every fault enabled.
TEST(SimDiskDeterminismTest, SameSeedSameOutcome) {
  auto run = [](uint64_t seed) {
    FakeSimContext context(seed);
    SimDiskOptions options;
    options.write_error_probability = 0.1;
    options.read_error_probability = 0.1;
    options.sync_error_probability = 0.2;
    options.read_corruption_probability = 0.1;
    SimDiskStorage storage(context, 0, options);
    std::string outcome;
    for (uint64_t incarnation = 1; incarnation <= 5; ++incarnation) {
      context.SetIncarnation(0, incarnation);
      std::unique_ptr<Disk> disk = storage.OpenView(incarnation);
      std::unique_ptr<File> file = disk->Open("log", OpenMode::kCreate).value();
      for (int i = 0; i < 50; ++i) {
        static_cast<void>(file->Append(StreamBytes(0, 700)));
        if (i % 5 == 0) file->Sync([](const absl::Status&) {});
        if (i % 7 == 0) disk->SyncDirectory("", [](const absl::Status&) {});
        char buffer[64];
        static_cast<void>(file->ReadAt(static_cast<uint64_t>(i) * 13, absl::MakeSpan(buffer)));
        context.RunFor(100);
      }
      storage.Crash();
      outcome += storage.VolatileContents("log").value_or("<none>");
    }
    return std::make_pair(context.trace().digest(), outcome);
  };
  const auto first = run(42);
  const auto second = run(42);
  EXPECT_EQ(first.first, second.first);
  EXPECT_EQ(first.second, second.second);
  EXPECT_NE(run(43).first, first.first);
}

// Checks that appending and syncing thousands of times stays linear: each Sync copies only what
// changed since the previous one, so the bytes copied equal the bytes appended (a whole-file copy
// per Sync would copy about 32 GB here).
TEST_F(SimDiskTest, AppendAndSyncManyTimesStaysCheap) {
  storage_.options().capacity_bytes = uint64_t{1} << 30;
  std::unique_ptr<File> file = OpenFile("log");
  ASSERT_TRUE(IsOk(SyncDirectoryNow("")));
  const std::string chunk = StreamBytes(0, 1024);
  for (int i = 0; i < 8000; ++i) {
    ASSERT_TRUE(IsOk(file->Append(chunk)));
    std::optional<absl::Status> result;
    file->Sync([&result](const absl::Status& status) { result = status; });
    context_.RunAll();
    ASSERT_TRUE(result.has_value() && result->ok());
  }
  EXPECT_EQ(storage_.DurableContents("log").value().size(), 8000u * 1024u);
  EXPECT_EQ(storage_.SnapshotBytesCopied(), 8000u * 1024u);
  storage_.CheckInvariants();
}

// ---- Properties ----

// rapidcheck's inRange narrows its range at small sizes; operation kinds must all be likely at
// every size, or the early (small) cases would never crash or sync.
rc::Gen<int> UniformInRange(int low, int high) {
  return rc::gen::resize(rc::kNominalSize, rc::gen::inRange(low, high));
}

// Checks the central durability promise for an append-only log: after any sequence of appends,
// syncs (some failing), partial progress of the event loop and crashes in any mode, the recovered
// file holds every byte whose Sync completed, is no longer than what was appended, and beyond the
// synced bytes each sector is the appended data or, in torn mode only, zeros. Without torn
// crashes it is exactly a prefix of the appended stream.
TEST(SimDiskPropertyTest, RecoveredLogKeepsEverySyncedByte) {
  const bool passed = rc::check("recovered log keeps every synced byte", [] {
    const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
    // kind: 0-1 append `size` bytes, 2 Sync, 3 run the loop for `size` us, 4 crash.
    const auto steps = *rc::gen::container<std::vector<std::pair<int, int>>>(
        rc::gen::pair(UniformInRange(0, 5), rc::gen::inRange(1, 1500)));
    FakeSimContext context(seed);
    SimDiskOptions options;
    options.sync_latency_us_min = 10;
    options.sync_latency_us_max = 300;
    options.sync_error_probability = 0.15;
    SimDiskStorage storage(context, 0, options);
    uint64_t incarnation = 1;
    context.SetIncarnation(0, incarnation);
    std::unique_ptr<Disk> disk = storage.OpenView(incarnation);
    std::unique_ptr<File> file = disk->Open("log", OpenMode::kCreate).value();
    storage.options().sync_error_probability = 0;
    disk->SyncDirectory("", [](const absl::Status& status) { RC_ASSERT(status.ok()); });
    context.RunAll();
    storage.options().sync_error_probability = 0.15;

    std::string stream;   // what the log holds if nothing is lost
    uint64_t synced = 0;  // how much of it is known durable
    auto crash = [&](int choice) {
      // choice 0-2 forces a mode, 3 lets the storage draw one.
      const bool forced = choice < 3;
      const CrashLossMode mode = kAllModes[static_cast<size_t>(std::min(choice, 2))];
      if (forced) {
        storage.CrashWithMode(mode);
      } else {
        storage.Crash();
      }
      const bool lose_all = forced && mode == CrashLossMode::kLoseAll;
      const bool prefix = forced && mode == CrashLossMode::kPrefix;
      const bool torn = forced && mode == CrashLossMode::kTorn;
      const std::string recovered = storage.VolatileContents("log").value();
      RC_ASSERT(recovered.size() >= synced);
      RC_ASSERT(recovered.size() <= stream.size());
      RC_ASSERT(recovered.compare(0, synced, stream, 0, synced) == 0);
      for (uint64_t start = synced; start < recovered.size();) {
        const uint64_t end = std::min<uint64_t>((start / kSector + 1) * kSector, recovered.size());
        const bool is_stream =
            recovered.compare(start, end - start, stream, start, end - start) == 0;
        const bool is_zero = recovered.find_first_not_of('\0', start) >= end;
        RC_ASSERT(is_stream || (is_zero && !lose_all && !prefix));
        start = end;
      }
      if (lose_all) RC_ASSERT(recovered.size() == synced);
      if (torn) {
        RC_ASSERT(recovered.size() == synced || recovered.size() == stream.size());
      }
      storage.CheckInvariants();
      // The crash leaves the recovered contents durable; the log goes on from there.
      stream = recovered;
      synced = recovered.size();
      ++incarnation;
      context.SetIncarnation(0, incarnation);
      disk = storage.OpenView(incarnation);
      file = disk->Open("log", OpenMode::kExisting).value();
    };
    for (const auto& [kind, size] : steps) {
      switch (kind) {
        case 0:
        case 1: {
          const std::string bytes = StreamBytes(stream.size(), static_cast<size_t>(size), seed);
          const absl::StatusOr<uint64_t> offset = file->Append(bytes);
          RC_ASSERT(offset.ok());
          RC_ASSERT(*offset == stream.size());
          stream += bytes;
          break;
        }
        case 2: {
          const uint64_t length = stream.size();
          file->Sync([&synced, length](const absl::Status& status) {
            if (status.ok()) synced = std::max(synced, length);
          });
          break;
        }
        case 3:
          context.RunFor(size);
          break;
        default:
          crash(size % 4);
          break;
      }
    }
    crash(3);
  });
  EXPECT_TRUE(passed);
}

// Checks the bookkeeping under arbitrary namespace and file operations: every internal invariant
// holds after each step, a crash leaves exactly the durable namespace, and a kLoseAll crash leaves
// every durably named file with exactly its durable contents.
TEST(SimDiskPropertyTest, RandomOperationsKeepInvariants) {
  enum Op {
    kOpen,
    kCreateDirectory,
    kRename,
    kRemove,
    kSyncDirectory,
    kAppend,
    kWriteAt,
    kTruncate,
    kSync,
    kClose,
    kRun,
    kProcessCrash,
    kCrash
  };
  // Weighted so that files get written and synced and names get synced often enough for crashes
  // to have something durable to keep.
  static const std::vector<Op> kOps = {
      kOpen,          kOpen,          kOpen,          kCreateDirectory, kRename, kRemove,
      kSyncDirectory, kSyncDirectory, kSyncDirectory, kAppend,          kAppend, kWriteAt,
      kTruncate,      kSync,          kSync,          kClose,           kRun,    kRun,
      kRun,           kProcessCrash,  kCrash};
  static const std::vector<std::string> kPaths = {"a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "e"};
  const bool passed = rc::check("random operations keep invariants", [] {
    const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
    // Long runs, so that names and bytes have time to become durable between crashes.
    const auto step_count = static_cast<size_t>(*rc::gen::inRange(20, 400));
    const auto steps = *rc::gen::container<std::vector<std::tuple<int, int, int>>>(
        step_count, rc::gen::tuple(UniformInRange(0, static_cast<int>(kOps.size())),
                                   UniformInRange(0, 8), UniformInRange(0, 8)));
    FakeSimContext context(seed);
    SimDiskOptions options;
    options.sync_latency_us_min = 1;
    options.sync_latency_us_max = 50;
    options.write_error_probability = 0.05;
    options.sync_error_probability = 0.05;
    options.capacity_bytes = 20000;
    SimDiskStorage storage(context, 0, options);
    uint64_t incarnation = 1;
    context.SetIncarnation(0, incarnation);
    std::unique_ptr<Disk> disk = storage.OpenView(incarnation);
    // Start with durable directories, so that deep paths are usable from the first step.
    RC_ASSERT(disk->CreateDirectory("d").ok());
    RC_ASSERT(disk->CreateDirectory("d/e").ok());
    storage.options().sync_error_probability = 0;
    disk->SyncDirectory("", [](const absl::Status&) {});
    disk->SyncDirectory("d", [](const absl::Status&) {});
    context.RunAll();
    storage.options().sync_error_probability = 0.05;
    std::vector<std::unique_ptr<File>> files;
    for (const auto& [op_index, x, y] : steps) {
      const Op op = kOps[static_cast<size_t>(op_index)];
      const std::string& path = kPaths[static_cast<size_t>(x)];
      const std::string& other = kPaths[static_cast<size_t>(y)];
      File* file = files.empty() ? nullptr : files[static_cast<size_t>(x) % files.size()].get();
      switch (op) {
        case kOpen: {
          auto opened = disk->Open(path, y % 2 ? OpenMode::kCreate : OpenMode::kCreateExclusive);
          if (opened.ok()) files.push_back(*std::move(opened));
          break;
        }
        case kCreateDirectory:
          static_cast<void>(disk->CreateDirectory(path));
          break;
        case kRename:
          static_cast<void>(disk->Rename(path, other));
          break;
        case kRemove:
          static_cast<void>(disk->Remove(path));
          break;
        case kSyncDirectory:
          disk->SyncDirectory(ParentDirectory(path), [](const absl::Status&) {});
          break;
        case kAppend:
          if (file) static_cast<void>(file->Append(StreamBytes(0, 1 + 300 * y)));
          break;
        case kWriteAt:
          if (file) static_cast<void>(file->WriteAt(static_cast<uint64_t>(y) * 200, "written"));
          break;
        case kTruncate:
          if (file) static_cast<void>(file->Truncate(static_cast<uint64_t>(y) * 150));
          break;
        case kSync:
          if (file) file->Sync([](const absl::Status&) {});
          break;
        case kClose:
          if (!files.empty()) files.erase(files.begin() + x % static_cast<int>(files.size()));
          break;
        case kRun:
          context.RunFor(10 * (y + 1));
          break;
        case kProcessCrash:
          storage.ProcessCrash();
          break;
        case kCrash: {
          const std::vector<std::string> durable_paths = storage.DurablePaths();
          std::map<std::string, std::string> durable_files;
          for (const std::string& p : durable_paths) {
            absl::StatusOr<std::string> contents = storage.DurableContents(p);
            if (contents.ok()) durable_files[p] = *contents;
          }
          const bool lose_all = y % 2 == 0;
          if (lose_all) {
            storage.CrashWithMode(CrashLossMode::kLoseAll);
          } else {
            storage.Crash();
          }
          RC_ASSERT(storage.VolatilePaths() == durable_paths);
          RC_ASSERT(storage.DurablePaths() == durable_paths);
          if (lose_all) {
            for (const auto& [p, contents] : durable_files) {
              RC_ASSERT(storage.VolatileContents(p).value() == contents);
            }
          }
          break;
        }
      }
      storage.CheckInvariants();
      if (op == kProcessCrash || op == kCrash) {
        files.clear();  // the dead handles are still safe to destroy
        ++incarnation;
        context.SetIncarnation(0, incarnation);
        disk = storage.OpenView(incarnation);
      }
    }
    files.clear();
    disk.reset();
    context.RunAll();
    storage.CheckInvariants();
  });
  EXPECT_TRUE(passed);
}

}  // namespace
}  // namespace runnel::sim
