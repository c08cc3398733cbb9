// The run history (model/history.h): recording, and its JSON lines format, which other checkers
// read: every entry round-trips exactly (arbitrary bytes, null keys, empty strings), and malformed
// input gets an error naming the line.
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/history.h"
#include "rapidcheck.h"

namespace runnel::model {
namespace {

History Sample() {
  History history;
  const TopicPartitionRef partition{"orders", 2};
  const int64_t send = history.InvokeSend(10, "producer-0", 1, "orders", "k1", "v1");
  const int64_t null_key = history.InvokeSend(11, "producer-0", 1, "orders", std::nullopt, "");
  const int64_t binary =
      history.InvokeSend(12, "producer-1", 2, "orders", std::string("\xff\x00\x80", 3), std::nullopt);
  history.CompleteSend(20, send, OpType::kOk, 2, 41, "");
  history.CompleteSend(21, null_key, OpType::kInfo, -1, -1, "timed out \"quoted\"\n");
  history.CompleteSend(22, binary, OpType::kFail, -1, -1, "refused");
  history.Assign(30, "consumer-0", 1, {partition, {"audit", 0}});
  history.Poll(31, "consumer-0", 1, partition,
               {{41, "k1", "v1"}, {42, std::nullopt, std::string("\x01\xfe", 2)}}, 43);
  history.Seek(32, "consumer-0", 1, partition, 0);
  const int64_t commit = history.InvokeCommit(33, "consumer-0", 1, {{partition, 43}});
  history.CompleteCommit(34, commit, OpType::kFail, "ILLEGAL_GENERATION");
  return history;
}

TEST(HistoryTest, RecordsInvocationsAndCompletions) {
  const History history = Sample();
  const std::vector<HistoryEntry>& entries = history.entries();
  ASSERT_EQ(entries.size(), 14u);
  for (size_t i = 0; i < entries.size(); ++i) EXPECT_EQ(entries[i].index, static_cast<int64_t>(i));
  EXPECT_EQ(entries[3].type, OpType::kOk);
  EXPECT_EQ(entries[3].op, 0);
  EXPECT_EQ(entries[3].offset, 41);
  EXPECT_EQ(entries[3].topic, "orders");
  EXPECT_EQ(entries[4].type, OpType::kInfo);
  EXPECT_EQ(entries[4].offset, -1);
  // A poll is an invocation and its completion with the records.
  EXPECT_EQ(entries[8].function, OpFunction::kPoll);
  EXPECT_EQ(entries[8].type, OpType::kInvoke);
  EXPECT_EQ(entries[9].op, 8);
  EXPECT_EQ(entries[9].records.size(), 2u);
  EXPECT_EQ(entries[9].high_watermark, 43);
}

TEST(HistoryTest, JsonLinesRoundTripExactly) {
  const History history = Sample();
  std::ostringstream out;
  history.WriteJsonLines(out);
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 14);
  // Documented fields, as other checkers read them.
  EXPECT_NE(text.find("\"f\":\"send\""), std::string::npos);
  EXPECT_NE(text.find("\"type\":\"invoke\""), std::string::npos);
  EXPECT_NE(text.find("{\"base64\":"), std::string::npos);
  absl::StatusOr<std::vector<HistoryEntry>> read = ReadJsonLines(text);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, history.entries());
}

TEST(HistoryTest, ArbitraryBytesRoundTrip) {
  const bool passed = rc::check("keys and values of any bytes round-trip", [] {
    const auto key = *rc::gen::maybe(rc::gen::arbitrary<std::string>());
    const auto value = *rc::gen::maybe(rc::gen::arbitrary<std::string>());
    History history;
    std::optional<std::string> k = key ? std::optional<std::string>(*key) : std::nullopt;
    std::optional<std::string> v = value ? std::optional<std::string>(*value) : std::nullopt;
    history.InvokeSend(1, "p", 1, "t", k, v);
    history.Poll(2, "c", 1, {"t", 0}, {{0, k, v}}, 1);
    std::ostringstream out;
    history.WriteJsonLines(out);
    absl::StatusOr<std::vector<HistoryEntry>> read = ReadJsonLines(out.str());
    RC_ASSERT(read.ok());
    RC_ASSERT(*read == history.entries());
  });
  EXPECT_TRUE(passed);
}

TEST(HistoryTest, MalformedLinesNameTheLine) {
  std::ostringstream out;
  Sample().WriteJsonLines(out);
  const std::string good = out.str();
  const std::string first_line = good.substr(0, good.find('\n') + 1);
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {first_line + "{not json\n", "line 2: not valid JSON"},
      {first_line + "[1,2]\n", "line 2: a line must be a JSON object"},
      {"{\"index\":0}\n", "line 1: missing field \"time_us\""},
      {first_line + first_line + R"({"index":2,"time_us":1,"process":"p","incarnation":1,"type":"maybe","f":"send"})" "\n",
       "line 3: field \"type\" has unknown value \"maybe\""},
      {R"({"index":0,"time_us":"soon","process":"p","incarnation":1,"type":"ok","f":"send"})" "\n",
       "line 1: field \"time_us\" must be an integer"},
      {R"({"index":0,"time_us":1,"process":"p","incarnation":1,"type":"invoke","f":"send","key":{"base64":"***"},"value":null,"topic":"t"})" "\n",
       "line 1: field \"key\" holds invalid base64"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<HistoryEntry>> read = ReadJsonLines(c.text);
    ASSERT_FALSE(read.ok()) << c.text;
    EXPECT_NE(read.status().message().find(c.expected), std::string::npos)
        << read.status().message() << " vs " << c.expected;
  }
}

TEST(HistoryTest, CompletionsOfUnknownInvocationsAreIgnored) {
  History history;
  history.CompleteSend(1, 7, OpType::kOk, 0, 0, "");
  history.CompleteCommit(1, -1, OpType::kOk, "");
  EXPECT_TRUE(history.entries().empty());
  EXPECT_FALSE(history.truncated());
}

}  // namespace
}  // namespace runnel::model
