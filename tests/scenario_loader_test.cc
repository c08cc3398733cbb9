// Scenario files (sim/scenario_loader.h): every catalogue file loads; a bad file gets an error that
// names the file, the line and the field (or line and column for a syntax error), listing every
// problem; node patterns and anomaly names follow the proto's rules; text round-trips.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "google/protobuf/util/message_differencer.h"
#include "sim/scenario_loader.h"

namespace runnel::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ErrorOf(const std::string& text) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(text, "bad.textproto");
  EXPECT_FALSE(parsed.ok()) << text;
  return parsed.ok() ? std::string() : std::string(parsed.status().message());
}

constexpr char kMinimal[] = R"pb(
topics { name: "events" }
producers {}
consumers { assign {} }
)pb";

TEST(ScenarioLoaderTest, EveryCatalogueScenarioLoads) {
  int count = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(RUNNEL_SOURCE_DIR) + "/scenarios")) {
    if (entry.path().extension() != ".textproto") continue;
    ++count;
    absl::StatusOr<scenario::Scenario> loaded = LoadScenarioFile(entry.path().string());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_FALSE(loaded->description().empty()) << entry.path();
    EXPECT_EQ(loaded->name(), entry.path().stem().string());
  }
  EXPECT_GE(count, 8);
}

TEST(ScenarioLoaderTest, DefaultsAndName) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(kMinimal, "dir/my-run.textproto");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name(), "my-run");
  EXPECT_EQ(parsed->cluster().brokers(), 1);
  EXPECT_EQ(parsed->producers(0).rate_per_s(), 100);
  EXPECT_EQ(parsed->producers(0).acks(), scenario::ACKS_ALL);
  EXPECT_EQ(parsed->run().duration_ms(), 10000);
}

TEST(ScenarioLoaderTest, SyntaxErrorsNameLineAndColumn) {
  const std::string error = ErrorOf("topics { name: \"e\" }\nproducers { rate_per_sec: 5 }\n");
  EXPECT_THAT(error, HasSubstr("bad.textproto:2:"));
  EXPECT_THAT(error, HasSubstr("rate_per_sec"));
  EXPECT_THAT(ErrorOf("topics { name: \"e\" }\nproducers { acks: ACKS_SOME }\n"),
              HasSubstr("bad.textproto:2:"));
  EXPECT_THAT(ErrorOf("topics { partitions: \"many\" }\n"), HasSubstr("bad.textproto:1:"));
  EXPECT_THAT(ErrorOf("topics {\n"), HasSubstr("bad.textproto:"));
}

TEST(ScenarioLoaderTest, SemanticErrorsNameLineAndField) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "producers {\n  name: \"fast\"\n  rate_per_s: -1\n}\n")),
              HasSubstr("bad.textproto:7: producers[1].rate_per_s: must be > 0"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "cluster { brokers: 3 }\n")),
              HasSubstr("bad.textproto:5: cluster.brokers: must be 1: replication is not built yet"));
  EXPECT_THAT(ErrorOf("topics { name: \"bad name!\" }\n"), HasSubstr("bad.textproto:1: topics[0].name:"));
  EXPECT_THAT(ErrorOf("topics { name: \"__internal\" }\n"), HasSubstr("internal topics"));
  EXPECT_THAT(ErrorOf("topics { name: \"a.b\" }\ntopics { name: \"a_b\" }\n"),
              HasSubstr("bad.textproto:2: topics[1].name: \"a_b\" collides"));
  EXPECT_THAT(ErrorOf("topics { name: \"e\" partitions: 0 }\n"),
              HasSubstr("topics[0].partitions: is 0 (allowed: 1..1000)"));
  EXPECT_THAT(ErrorOf("topics { name: \"e\" configs { key: \"flush.policy\" value: \"sometimes\" } }\n"),
              HasSubstr("topics[0].configs:"));
  EXPECT_THAT(ErrorOf("topics { name: \"e\" configs { key: \"no.such.config\" value: \"1\" } }\n"),
              HasSubstr("no.such.config"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "consumers { name: \"x\" topics: \"nope\" assign {} }\n")),
              HasSubstr("consumers[1].topics[0]: no topic is named \"nope\""));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "producers { }\n")),
              HasSubstr("producers[1].name: node name \"producer-0\" is used twice"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "consumers { name: \"g\" }\n")),
              HasSubstr("consumers[1].assign: say how the consumer reads"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "consumers { name: \"g\" group { assignor: \"sticky\" } }\n")),
              HasSubstr("consumers[1].group.assignor: is \"sticky\""));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal,
                                   "consumers { name: \"g\" group { session_timeout_ms: 1000 "
                                   "heartbeat_interval_ms: 2000 } }\n")),
              HasSubstr("consumers[1].group.heartbeat_interval_ms: is 2000 (allowed: 1..999)"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "producers { name: \"p\" idempotent: true acks: ACKS_LEADER }\n")),
              HasSubstr("producers[1].idempotent: an idempotent producer needs acks: ACKS_ALL"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "producers { name: \"p\" active { start_ms: 20000 } }\n")),
              HasSubstr("producers[1].active.start_ms: is 20000"));
}

TEST(ScenarioLoaderTest, FaultErrorsNameTheFault) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults {\n  at { at_ms: 1000 crash { node: \"broker-7\" } }\n}\n")),
              HasSubstr("bad.textproto:6: faults.at[0].crash.node: \"broker-7\" matches no node"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults { at { at_ms: 99999 crash {} } }\n")),
              HasSubstr("faults.at[0].at_ms: is 99999 (allowed: 0..9999)"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults { at { at_ms: 5 } }\n")),
              HasSubstr("the fault has no kind"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults { at { disk_errors { probability: 2 } } }\n")),
              HasSubstr("faults.at[0].disk_errors.probability: must lie in [0, 1]"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults { at { partition { duration_ms: 5 } } }\n")),
              HasSubstr("faults.at[0].partition.side_a: name at least one node"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults { mix { interval_ms { min: 10 max: 5 } kinds { kind: FAULT_CRASH } } }\n")),
              HasSubstr("faults.mix.interval_ms.max: must not be below min"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "faults { mix { interval_ms { min: 10 } kinds { kind: FAULT_CRASH weight { min: 0 max: 0 } } } }\n")),
              HasSubstr("faults.mix.kinds: at least one kind needs a positive weight"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "expect { anomalies: LOST_WRITE }\n")),
              HasSubstr("expect.anomalies: anomalies are expected only with verdict: FAIL"));
}

TEST(ScenarioLoaderTest, EveryProblemIsListed) {
  const std::string error =
      ErrorOf("topics { name: \"e\" partitions: 0 }\nproducers { rate_per_s: 0 key_count: 0 }\n");
  EXPECT_THAT(error, HasSubstr("partitions"));
  EXPECT_THAT(error, HasSubstr("rate_per_s"));
  EXPECT_THAT(error, HasSubstr("key_count"));
}

TEST(ScenarioLoaderTest, MissingFile) {
  absl::StatusOr<scenario::Scenario> loaded = LoadScenarioFile("/nonexistent/x.textproto");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("/nonexistent/x.textproto"));
}

TEST(ScenarioLoaderTest, NodeNamesAndPatterns) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(
      "topics { name: \"e\" }\nproducers { count: 2 }\nconsumers { name: \"member\" count: 2 "
      "group {} }\nconsumers { assign {} }\n",
      "x.textproto");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(ScenarioNodeNames(*parsed),
              ElementsAre("broker-0", "producer-0", "producer-1", "member-0", "member-1",
                          "consumer-0"));
  EXPECT_THAT(MatchNodes(*parsed, "brokers"), ElementsAre("broker-0"));
  EXPECT_THAT(MatchNodes(*parsed, "clients"),
              ElementsAre("producer-0", "producer-1", "member-0", "member-1", "consumer-0"));
  EXPECT_THAT(MatchNodes(*parsed, "member-*"), ElementsAre("member-0", "member-1"));
  EXPECT_THAT(MatchNodes(*parsed, "*-1"), ElementsAre("producer-1", "member-1"));
  EXPECT_THAT(MatchNodes(*parsed, "producer-0"), ElementsAre("producer-0"));
  EXPECT_TRUE(MatchNodes(*parsed, "producer").empty());
}

TEST(ScenarioLoaderTest, AnomalyNames) {
  EXPECT_EQ(AnomalyName(scenario::LOST_WRITE), "lost-write");
  EXPECT_EQ(AnomalyName(scenario::INT_NONMONOTONIC_POLL), "int-nonmonotonic-poll");
  EXPECT_EQ(AnomalyFromName("hw-decreased"), scenario::HW_DECREASED);
  EXPECT_EQ(AnomalyFromName("no-such-thing"), std::nullopt);
  EXPECT_EQ(AnomalyFromName("anomaly-unspecified"), std::nullopt);
}

TEST(ScenarioLoaderTest, TextRoundTrip) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(
      absl::StrCat(kMinimal, "faults { at { at_ms: 5 clock_jump { jump_ms: -5 } } }\n"
                             "topics { name: \"x\" configs { key: \"retention.ms\" value: \"1000\" } }\n"),
      "x.textproto");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<scenario::Scenario> again = ParseScenario(ScenarioToText(*parsed), "y.textproto");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*again, *parsed));
}

}  // namespace
}  // namespace runnel::sim
