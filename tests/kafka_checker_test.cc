// The history checker (model/kafka_checker.h) and the online checks (model/online_checker.h):
// every anomaly is found, by name and place, in a hand-built history that has it, and nothing is
// found in correct histories with gaps, rebalances, seeks, restarts and indeterminate sends. A
// rapidcheck property builds histories from a correct log (no anomaly) and then breaks them (the
// matching anomaly).
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/history.h"
#include "model/kafka_checker.h"
#include "model/online_checker.h"
#include "rapidcheck.h"

namespace runnel::model {
namespace {

const TopicPartitionRef kP0{"t", 0};
const TopicPartitionRef kP1{"t", 1};

// Builds histories with a running clock.
class Builder {
 public:
  int64_t Send(const std::string& process, const std::string& value,
               const std::string& key = "k") {
    return history_.InvokeSend(Tick(), process, 1, kP0.topic, key, value);
  }
  void Ok(int64_t invocation, int64_t offset, int32_t partition = 0) {
    history_.CompleteSend(Tick(), invocation, OpType::kOk, partition, offset, "");
  }
  void Fail(int64_t invocation) {
    history_.CompleteSend(Tick(), invocation, OpType::kFail, -1, -1, "refused");
  }
  void Info(int64_t invocation) {
    history_.CompleteSend(Tick(), invocation, OpType::kInfo, -1, -1, "timed out");
  }
  // Sends and acknowledges `value` at `offset`.
  void Acked(const std::string& process, const std::string& value, int64_t offset) {
    Ok(Send(process, value), offset);
  }
  void Poll(const std::string& process, std::vector<std::pair<int64_t, std::string>> records,
            uint64_t incarnation = 1, const std::string& key = "k") {
    std::vector<PolledRecord> polled;
    for (const auto& [offset, value] : records) polled.push_back({offset, key, value});
    history_.Poll(Tick(), process, incarnation, kP0, std::move(polled), 100);
  }
  void Assign(const std::string& process, uint64_t incarnation = 1) {
    history_.Assign(Tick(), process, incarnation, {kP0});
  }
  void Seek(const std::string& process, int64_t offset) {
    history_.Seek(Tick(), process, 1, kP0, offset);
  }
  CheckReport Check(CheckerOptions options = {}) {
    return CheckHistory(history_.entries(), options);
  }

 private:
  int64_t Tick() { return time_us_ += 10; }
  History history_;
  int64_t time_us_ = 0;
};

std::set<std::string> Names(const CheckReport& report) {
  std::set<std::string> names;
  for (const Anomaly& anomaly : report.anomalies) names.insert(anomaly.name);
  return names;
}

std::string Describe(const CheckReport& report) {
  std::string text;
  for (const Anomaly& anomaly : report.anomalies) {
    absl::StrAppend(&text, anomaly.name, ": ", anomaly.detail, "\n");
  }
  return text;
}

CheckerOptions Strict() {
  CheckerOptions options;
  options.final_reads = true;
  options.idempotent_processes = {"p"};
  options.ordered_send_processes = {"p"};
  return options;
}

TEST(KafkaCheckerTest, CleanHistoryWithGapsRestartsAndIndeterminateSends) {
  Builder b;
  b.Acked("p", "a", 0);
  b.Acked("p", "b", 1);
  // A compacted-away or control-record gap at 2..4: nobody knows those offsets.
  b.Acked("p", "c", 5);
  const int64_t maybe = b.Send("p", "d");
  b.Info(maybe);  // it was written after all
  const int64_t failed = b.Send("p", "never");
  b.Fail(failed);
  b.Poll("c", {{0, "a"}, {1, "b"}});
  b.Poll("c", {{5, "c"}, {6, "d"}});
  // A restarted consumer (new incarnation) reads from the start again.
  b.Poll("c", {{0, "a"}}, 2);
  // A seek back, then reading again.
  b.Seek("c", 0);
  b.Poll("c", {{0, "a"}, {1, "b"}, {5, "c"}});
  const CheckReport report = b.Check(Strict());
  EXPECT_TRUE(report.anomalies.empty()) << Describe(report);
  EXPECT_EQ(report.sends_ok, 3u);
  EXPECT_EQ(report.sends_failed, 1u);
  EXPECT_EQ(report.sends_indeterminate, 1u);
  EXPECT_EQ(report.polls, 4u);
  EXPECT_EQ(report.records_read, 8u);
  EXPECT_EQ(report.offsets_observed, 4u);
}

TEST(KafkaCheckerTest, LostWriteWhenConsumersReadOverTheOffset) {
  Builder b;
  b.Acked("p", "a", 0);
  b.Acked("p", "b", 1);
  b.Acked("p", "c", 2);
  b.Poll("c", {{0, "a"}, {2, "c"}});
  const CheckReport report = b.Check(Strict());
  ASSERT_TRUE(Names(report).contains("lost-write")) << Describe(report);
  for (const Anomaly& anomaly : report.anomalies) {
    if (anomaly.name != "lost-write") continue;
    EXPECT_EQ(anomaly.partition, kP0);
    EXPECT_EQ(anomaly.offset, 1);
  }
  // Lost, so not also reported unseen.
  EXPECT_FALSE(Names(report).contains("unseen")) << Describe(report);
  // The consumer jumped over a known offset too.
  EXPECT_TRUE(Names(report).contains("int-poll-skip")) << Describe(report);
}

TEST(KafkaCheckerTest, UnseenOnlyWithFinalReads) {
  Builder b;
  b.Acked("p", "a", 0);
  b.Acked("p", "b", 1);
  b.Poll("c", {{0, "a"}});
  EXPECT_EQ(Names(b.Check(Strict())), std::set<std::string>{"unseen"});
  CheckerOptions options = Strict();
  options.final_reads = false;
  EXPECT_TRUE(b.Check(options).anomalies.empty());
}

TEST(KafkaCheckerTest, InconsistentOffsets) {
  Builder b;
  b.Acked("p", "a", 0);
  b.Acked("p", "b", 0);
  const CheckReport report = b.Check(Strict());
  EXPECT_TRUE(Names(report).contains("inconsistent-offsets")) << Describe(report);
  Builder reads;
  reads.Acked("p", "a", 0);
  reads.Acked("p", "b", 1);
  reads.Poll("c", {{0, "a"}, {1, "b"}});
  reads.Poll("d", {{0, "b"}});
  EXPECT_TRUE(Names(reads.Check(Strict())).contains("inconsistent-offsets"));
}

TEST(KafkaCheckerTest, DuplicateOnlyForIdempotentProducers) {
  Builder b;
  b.Acked("p", "a", 0);
  b.Poll("c", {{0, "a"}, {1, "a"}});
  EXPECT_TRUE(Names(b.Check(Strict())).contains("duplicate"));
  CheckerOptions options = Strict();
  options.idempotent_processes.clear();
  EXPECT_FALSE(Names(b.Check(options)).contains("duplicate"));
}

TEST(KafkaCheckerTest, AbortedAndPhantomReads) {
  Builder b;
  const int64_t failed = b.Send("p", "x");
  b.Fail(failed);
  b.Acked("p", "a", 1);
  b.Poll("c", {{0, "x"}, {1, "a"}});
  b.Poll("c", {{2, "ghost"}});
  b.Poll("d", {{1, "a"}}, 1, "another key");
  const CheckReport report = b.Check(Strict());
  const std::set<std::string> names = Names(report);
  EXPECT_TRUE(names.contains("aborted-read")) << Describe(report);
  EXPECT_TRUE(names.contains("phantom-read")) << Describe(report);
  int phantoms = 0;
  for (const Anomaly& anomaly : report.anomalies) phantoms += anomaly.name == "phantom-read";
  EXPECT_EQ(phantoms, 2) << Describe(report);
}

TEST(KafkaCheckerTest, PollOrderAcrossPollsResetByAssignAndSeek) {
  Builder b;
  for (int i = 0; i < 6; ++i) b.Acked("p", absl::StrCat("v", i), i);
  b.Poll("c", {{0, "v0"}, {1, "v1"}});
  b.Poll("c", {{3, "v3"}});  // skips 2
  b.Poll("c", {{1, "v1"}});  // goes back
  CheckReport report = b.Check();
  EXPECT_TRUE(Names(report).contains("poll-skip")) << Describe(report);
  EXPECT_TRUE(Names(report).contains("nonmonotonic-poll")) << Describe(report);

  Builder reset;
  for (int i = 0; i < 6; ++i) reset.Acked("p", absl::StrCat("v", i), i);
  reset.Poll("c", {{0, "v0"}, {1, "v1"}});
  reset.Assign("c");  // a rebalance: the next poll starts wherever the group says
  reset.Poll("c", {{4, "v4"}});
  reset.Seek("c", 0);
  reset.Poll("c", {{0, "v0"}});
  report = reset.Check();
  EXPECT_TRUE(report.anomalies.empty()) << Describe(report);
}

TEST(KafkaCheckerTest, InternalPollOrder) {
  Builder b;
  for (int i = 0; i < 4; ++i) b.Acked("p", absl::StrCat("v", i), i);
  b.Poll("c", {{0, "v0"}, {2, "v2"}, {1, "v1"}});
  const std::set<std::string> names = Names(b.Check());
  EXPECT_TRUE(names.contains("int-poll-skip"));
  EXPECT_TRUE(names.contains("int-nonmonotonic-poll"));
}

TEST(KafkaCheckerTest, NonmonotonicSend) {
  Builder b;
  b.Acked("p", "a", 5);
  b.Acked("p", "b", 3);
  EXPECT_TRUE(Names(b.Check(Strict())).contains("nonmonotonic-send"));
  CheckerOptions options = Strict();
  options.ordered_send_processes.clear();
  EXPECT_FALSE(Names(b.Check(options)).contains("nonmonotonic-send"));
}

TEST(KafkaCheckerTest, SkippedNamesAreNotReported) {
  Builder b;
  b.Acked("p", "a", 0);
  CheckerOptions options = Strict();
  options.skip = {"unseen"};
  const CheckReport report = b.Check(options);
  EXPECT_TRUE(report.anomalies.empty()) << Describe(report);
  EXPECT_EQ(b.Check(Strict()).counts.at("unseen"), 1u);
}

TEST(OnlineCheckerTest, HighWatermarkNeverDecreases) {
  OnlineChecker checker;
  checker.ObserveHighWatermark(1, "broker-0", kP0, 5);
  checker.ObserveHighWatermark(2, "broker-0", kP0, 7);
  checker.ObserveHighWatermark(3, "broker-0", kP0, 7);
  EXPECT_TRUE(checker.anomalies().empty());
  checker.ObserveHighWatermark(4, "broker-0", kP0, 6);
  ASSERT_EQ(checker.anomalies().size(), 1u);
  EXPECT_EQ(checker.anomalies()[0].name, "hw-decreased");
  EXPECT_EQ(checker.anomalies()[0].time_us, 4);
  // Reported once, not at every later sample of the lower value.
  checker.ObserveHighWatermark(5, "broker-0", kP0, 6);
  EXPECT_EQ(checker.anomalies().size(), 1u);
}

TEST(OnlineCheckerTest, CommittedDataNeverChangesAndOneLeaderPerEpoch) {
  OnlineChecker checker;
  checker.ObserveCommittedRecord(1, "c", kP0, 3, "k", "a");
  checker.ObserveCommittedRecord(2, "d", kP0, 3, "k", "a");
  checker.ObserveLeader(2, kP0, 1, 0);
  checker.ObserveLeader(3, kP0, 1, 0);
  checker.ObserveLeader(3, kP0, 2, 1);
  EXPECT_TRUE(checker.anomalies().empty());
  checker.ObserveCommittedRecord(4, "d", kP0, 3, "k", "b");
  checker.ObserveLeader(5, kP0, 2, 2);
  ASSERT_EQ(checker.anomalies().size(), 2u);
  EXPECT_EQ(checker.anomalies()[0].name, "committed-data-changed");
  EXPECT_EQ(checker.anomalies()[1].name, "leader-conflict");
}

// A poll's records are checked together: a repeated read of the same data passes, a changed key or
// value at an offset read before is reported once, with the poll's time and observer, and the
// changed data becomes what later reads are compared with.
TEST(OnlineCheckerTest, PolledRecordsAreComparedWithEarlierReads) {
  OnlineChecker checker;
  checker.ObserveCommittedRecords(1, "c", kP0, {{3, "k", "a"}, {4, std::nullopt, "b"}});
  checker.ObserveCommittedRecords(2, "d", kP0, {{4, std::nullopt, "b"}, {5, "k", std::nullopt}});
  checker.ObserveCommittedRecords(3, "d", kP1, {{4, std::nullopt, "other partition"}});
  EXPECT_TRUE(checker.anomalies().empty());
  checker.ObserveCommittedRecords(4, "e", kP0, {{3, "k", "a"}, {4, "k", "b"}, {5, "k", std::nullopt}});
  ASSERT_EQ(checker.anomalies().size(), 1u);
  EXPECT_EQ(checker.anomalies()[0].name, "committed-data-changed");
  EXPECT_EQ(checker.anomalies()[0].time_us, 4);
  EXPECT_EQ(checker.anomalies()[0].process, "e");
  EXPECT_EQ(checker.anomalies()[0].offset, 4);
  checker.ObserveCommittedRecords(5, "c", kP0, {{4, "k", "b"}});
  EXPECT_EQ(checker.anomalies().size(), 1u);
}

// Histories from a correct log: producers append to a list; consumers read it in order in random
// chunks, sometimes seeking or being reassigned. The checker must find nothing; then one
// corruption must be found under its name.
TEST(KafkaCheckerProperty, CorrectHistoriesPassAndBrokenOnesAreCaught) {
  const bool passed = rc::check("correct histories have no anomaly", [] {
    const int sends = *rc::gen::inRange(1, 60);
    const int corruption = *rc::gen::inRange(0, 4);  // 0: none
    Builder b;
    std::vector<std::string> log;
    for (int i = 0; i < sends; ++i) {
      const std::string value = absl::StrCat("v", i);
      const int64_t invocation = b.Send("p", value);
      if (*rc::gen::inRange(0, 5) == 0) {
        b.Info(invocation);  // indeterminate, and not written
      } else {
        b.Ok(invocation, static_cast<int64_t>(log.size()));
        log.push_back(value);
      }
    }
    RC_PRE(log.size() >= 3);
    const int64_t victim = *rc::gen::inRange<int64_t>(1, static_cast<int64_t>(log.size()) - 1);
    int64_t position = 0;
    while (position < static_cast<int64_t>(log.size())) {
      const int64_t chunk = *rc::gen::inRange<int64_t>(1, 6);
      std::vector<std::pair<int64_t, std::string>> records;
      for (int64_t offset = position;
           offset < position + chunk && offset < static_cast<int64_t>(log.size()); ++offset) {
        std::string value = log[static_cast<size_t>(offset)];
        if (offset == victim && corruption == 1) continue;                   // dropped
        if (offset == victim && corruption == 2) value = "altered";          // changed
        records.push_back({offset, value});
      }
      if (corruption == 3 && records.size() >= 2) std::swap(records[0], records[1]);
      if (!records.empty()) b.Poll("c", records);
      position += chunk;
      if (*rc::gen::inRange(0, 10) == 0) {
        b.Seek("c", 0);
        position = 0;
      }
    }
    const std::set<std::string> names = Names(b.Check(Strict()));
    switch (corruption) {
      case 0:
        RC_ASSERT(names.empty());
        break;
      case 1:
        RC_ASSERT(names.contains("lost-write"));
        break;
      case 2:
        RC_ASSERT(names.contains("inconsistent-offsets"));
        RC_ASSERT(names.contains("phantom-read"));
        break;
      case 3:
        RC_PRE(!names.empty());  // a swap needs two records in one poll
        RC_ASSERT(names.contains("int-nonmonotonic-poll"));
        break;
    }
  });
  EXPECT_TRUE(passed);
}

}  // namespace
}  // namespace runnel::model
