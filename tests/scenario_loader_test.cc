// Scenario files (sim/scenario_loader.h): every catalogue file loads; a bad file gets an error that
// names the file, the line and the field (or line, column and field for a syntax error), listing
// every problem; node patterns and anomaly names follow the proto's rules; text round-trips.
//
// Each error test writes a small scenario with one kind of mistake on a known line and checks the
// exact "FILE:LINE: path: ..." a user would see.
#include "sim/scenario_loader.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace runnel::sim {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The error message ParseScenario gives for `text` (empty, with a test failure, if it loads).
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(text, "bad.textproto");
  EXPECT_FALSE(parsed.ok()) << "loaded:\n" << text;
  if (parsed.ok()) return std::string();
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

std::vector<std::string> ErrorLines(const std::string& text) {
  return absl::StrSplit(ErrorOf(text), '\n');
}

// Lines 1 to 3; whatever is appended starts on line 4.
constexpr char kMinimal[] =
    "topics { name: \"events\" }\n"
    "producers {}\n"
    "consumers { assign {} }\n";

std::string WithMinimal(absl::string_view more) { return absl::StrCat(kMinimal, more); }

std::vector<std::filesystem::path> CatalogueFiles() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(RUNNEL_SOURCE_DIR) + "/scenarios")) {
    if (entry.path().extension() == ".textproto") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ScenarioLoaderTest, EveryCatalogueScenarioLoadsAndRoundTrips) {
  const std::vector<std::filesystem::path> files = CatalogueFiles();
  for (const std::filesystem::path& file : files) {
    SCOPED_TRACE(file.string());
    absl::StatusOr<scenario::Scenario> loaded = LoadScenarioFile(file.string());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_FALSE(loaded->description().empty());
    EXPECT_EQ(loaded->name(), file.stem().string());
    // Only a FAIL verdict lists the anomalies it expects.
    EXPECT_EQ(loaded->expect().verdict() == scenario::FAIL, !loaded->expect().anomalies().empty());
    absl::StatusOr<scenario::Scenario> again =
        ParseScenario(ScenarioToText(*loaded), "printed.textproto");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*again, *loaded));
  }
  // The brief's catalogue: quickstart, orders, broker_crash, power_loss, power_loss_unsynced,
  // network_partition, disk_full, clock_jump, showcase and swarm.
  EXPECT_GE(files.size(), 10u);
}

TEST(ScenarioLoaderTest, DefaultsAndName) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(kMinimal, "dir/my-run.textproto");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name(), "my-run");
  EXPECT_EQ(parsed->cluster().brokers(), 1);
  EXPECT_EQ(parsed->producers(0).rate_per_s(), 100);
  EXPECT_EQ(parsed->producers(0).acks(), scenario::ACKS_ALL);
  EXPECT_EQ(parsed->run().duration_ms(), 10000);
  absl::StatusOr<scenario::Scenario> named =
      ParseScenario(WithMinimal("name: \"chosen\"\n"), "dir/my-run.textproto");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->name(), "chosen");
}

TEST(ScenarioLoaderTest, SyntaxErrorsNameLineColumnAndField) {
  // An unknown field points at its name and lists the fields allowed there.
  EXPECT_THAT(ErrorOf("topics { name: \"e\" }\nproducers { rate_per_sec: 5 }\n"),
              AllOf(StartsWith("bad.textproto:2:13: producers[0].rate_per_sec: no such field in "
                               "Producer (allowed: name, count, topics, rate_per_s,"),
                    HasSubstr("delivery_timeout_ms, active)")));
  // A bad enum value at the end of a line points at the value, not at the next line's token.
  EXPECT_EQ(ErrorOf("topics { name: \"e\" }\nproducers {\n  keys: KEYS_ZIPFF\n}\n"),
            "bad.textproto:3:9: producers[0].keys: unknown value \"KEYS_ZIPFF\" (allowed: "
            "KEYS_UNIFORM, KEYS_ZIPF, KEYS_SEQUENTIAL, KEYS_NONE)");
  // A value of the wrong type names the field.
  EXPECT_EQ(ErrorOf("topics { partitions: \"many\" }\n"),
            "bad.textproto:1:22: topics[0].partitions: Expected integer, got: \"many\"");
  EXPECT_EQ(ErrorOf("run { duration_ms: 99999999999999999999 }\n"),
            "bad.textproto:1:20: run.duration_ms: Integer out of range (99999999999999999999)");
  EXPECT_EQ(ErrorOf("producers { idempotent: maybe }\n"),
            "bad.textproto:1:25: producers[0].idempotent: Invalid value for boolean field "
            "\"idempotent\". Value: \"maybe\".");
  // A field given twice, and two members of one oneof, point at the field's name.
  EXPECT_EQ(ErrorOf("run { duration_ms: 1 }\nrun { duration_ms: 2 }\n"),
            "bad.textproto:2:1: run: Non-repeated field \"run\" is specified multiple times.");
  EXPECT_THAT(ErrorOf("faults { at { crash {} power_loss {} } }\n"),
              StartsWith("bad.textproto:1:24: faults.at[0].power_loss: Field \"power_loss\" is "
                         "specified along with field \"crash\""));
  // Braces: a missing one names the message it should close; a stray one says so.
  EXPECT_EQ(ErrorOf("topics { name: \"e\" }\ncluster {\n  brokers: 1\n"),
            "bad.textproto:4:1: the file ends before the '}' that closes cluster (opened at 2:1)");
  EXPECT_EQ(ErrorOf("topics { name: \"e\" } }\n"), "bad.textproto:1:22: this '}' closes nothing");
  // Columns count a tab as reaching the next multiple of 8, as protobuf's tokenizer does.
  EXPECT_EQ(ErrorOf("topics {\n\tpartitions:\t\"x\" }\n"),
            "bad.textproto:2:25: topics[0].partitions: Expected integer, got: \"x\"");
}

TEST(ScenarioLoaderTest, EverySyntaxErrorIsListedInFileOrder) {
  // Protobuf's parser stops at the first error; the loader reads on after each bad field.
  EXPECT_THAT(
      ErrorLines("topics { name: \"e\" partitions: x }\n"
                 "producers { rate_per_sec: 5 acks: SOMETIMES }\n"
                 "consumers { assign {} count: \"two\" }\n"
                 "run { duration_ms: 5 }\n"
                 "run { duration_ms: 6 }\n"),
      ElementsAre(StartsWith("bad.textproto:1:32: topics[0].partitions: Expected integer"),
                  StartsWith("bad.textproto:2:13: producers[0].rate_per_sec: no such field"),
                  StartsWith("bad.textproto:2:35: producers[0].acks: unknown value \"SOMETIMES\""),
                  StartsWith("bad.textproto:3:30: consumers[0].count: Expected integer"),
                  StartsWith("bad.textproto:5:1: run: Non-repeated field")));
}

TEST(ScenarioLoaderTest, ClusterAndRunErrors) {
  EXPECT_EQ(ErrorOf(WithMinimal("cluster {\n  brokers: 3\n  controllers: 1\n}\n")),
            "bad.textproto:5: cluster.brokers: must be 1: replication is not built yet\n"
            "bad.textproto:6: cluster.controllers: must be 0: the controller quorum is not built "
            "yet");
  EXPECT_EQ(ErrorOf(WithMinimal("run { duration_ms: 0 settle_timeout_ms: -1 }\n")),
            "bad.textproto:4: run.duration_ms: is 0 (allowed: 1..3600000)\n"
            "bad.textproto:4: run.settle_timeout_ms: is -1 (allowed: 1..3600000)");
  EXPECT_EQ(ErrorOf(WithMinimal("run { duration_ms: 3600001 }\n")),
            "bad.textproto:4: run.duration_ms: is 3600001 (allowed: 1..3600000)");
  EXPECT_EQ(ErrorOf(WithMinimal("cluster { latency_us { min: 500 max: 100 } }\n")),
            "bad.textproto:4: cluster.latency_us.max: must not be below min");
}

TEST(ScenarioLoaderTest, TopicErrors) {
  EXPECT_EQ(ErrorOf("producers {}\n"), "bad.textproto:1: topics: at least one topic is needed");
  EXPECT_THAT(ErrorOf("topics { name: \"bad name!\" }\n"),
              StartsWith("bad.textproto:1: topics[0].name: "));
  EXPECT_THAT(ErrorOf("topics { name: \"\" }\n"), StartsWith("bad.textproto:1: topics[0].name: "));
  EXPECT_THAT(ErrorOf(absl::StrCat("topics { name: \"", std::string(250, 'a'), "\" }\n")),
              StartsWith("bad.textproto:1: topics[0].name: "));
  EXPECT_EQ(ErrorOf("topics { name: \"__internal\" }\n"),
            "bad.textproto:1: topics[0].name: names starting with \"__\" are internal topics");
  EXPECT_EQ(ErrorOf("topics { name: \"a.b\" }\ntopics { name: \"a_b\" }\n"),
            "bad.textproto:2: topics[1].name: \"a_b\" collides with topics[0] \"a.b\"");
  EXPECT_THAT(ErrorOf("topics { name: \"e\" }\ntopics { name: \"e\" }\n"),
              HasSubstr("bad.textproto:2: topics[1].name: \"e\" collides with topics[0]"));
  EXPECT_EQ(ErrorOf("topics {\n  name: \"e\"\n  partitions: 0\n}\n"),
            "bad.textproto:3: topics[0].partitions: is 0 (allowed: 1..1000)");
  EXPECT_EQ(ErrorOf("topics { name: \"e\" replication_factor: 3 }\n"),
            "bad.textproto:1: topics[0].replication_factor: must be 1: replication is not built "
            "yet");
  EXPECT_THAT(
      ErrorOf("topics { name: \"e\"\n  configs { key: \"flush.policy\" value: \"sometimes\" } }\n"),
      AllOf(StartsWith("bad.textproto:2: topics[0].configs: "), HasSubstr("sometimes")));
  EXPECT_THAT(
      ErrorOf("topics { name: \"e\" configs { key: \"no.such.config\" value: \"1\" } }\n"),
      AllOf(StartsWith("bad.textproto:1: topics[0].configs: "), HasSubstr("no.such.config")));
  std::string many;
  for (int i = 0; i < 2; ++i)
    absl::StrAppend(&many, "topics { name: \"t", i, "\" partitions: 600 }\n");
  EXPECT_EQ(ErrorOf(many), "bad.textproto:1: topics: 1200 partitions in all; at most 1000");
}

TEST(ScenarioLoaderTest, ProducerErrors) {
  EXPECT_EQ(ErrorOf(WithMinimal("producers {\n  name: \"fast\"\n  rate_per_s: -1\n}\n")),
            "bad.textproto:6: producers[1].rate_per_s: must be > 0 and at most 100000");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" rate_per_s: 100001 }\n")),
            "bad.textproto:4: producers[1].rate_per_s: must be > 0 and at most 100000");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" key_count: 0 }\n")),
            "bad.textproto:4: producers[1].key_count: is 0 (allowed: 1..1000000)");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" topics: \"events\" topics: \"nope\" }\n")),
            "bad.textproto:4: producers[1].topics[1]: no topic is named \"nope\"");
  EXPECT_EQ(
      ErrorOf(WithMinimal("producers { name: \"p\" idempotent: true acks: ACKS_LEADER }\n")),
      "bad.textproto:4: producers[1].idempotent: an idempotent producer needs acks: ACKS_ALL");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" delivery_timeout_ms: 1000 }\n")),
            "bad.textproto:4: producers[1].delivery_timeout_ms: is 1000: must be at least "
            "linger_ms + request_timeout_ms (3005)");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" count: 0 }\n")),
            "bad.textproto:4: producers[1].count: is 0 (allowed: 1..64)");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" count: 40 }\n"
                                "consumers { name: \"c\" count: 40 assign {} }\n")),
            "bad.textproto:2: producers: 82 client nodes in all; at most 64");
}

TEST(ScenarioLoaderTest, WindowErrors) {
  // The default run lasts 10000 ms.
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"p\" active { start_ms: 20000 } }\n")),
            "bad.textproto:4: producers[1].active.start_ms: is 20000 (allowed: 0..9999)");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"c\" assign {}\n"
                                "  active { start_ms: 5000 stop_ms: 4000 } }\n")),
            "bad.textproto:5: consumers[1].active.stop_ms: must be after start_ms");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"c\" assign {} active { stop_ms: 10001 } }\n")),
            "bad.textproto:4: consumers[1].active.stop_ms: is 10001 (allowed: 1..10000)");
}

TEST(ScenarioLoaderTest, NodeNameErrors) {
  EXPECT_EQ(ErrorOf(WithMinimal("producers {}\n")),
            "bad.textproto:4: producers[1].name: entries after the first must name themselves "
            "(name: \"...\")");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"producer\" assign {} }\n")),
            "bad.textproto:4: consumers[1].name: node name \"producer-0\" is used twice: give each "
            "client entry its own name");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"broker\" }\n")),
            "bad.textproto:4: producers[1].name: node name \"broker-0\" is used twice: give each "
            "client entry its own name");
  EXPECT_EQ(ErrorOf(WithMinimal("producers { name: \"Fast*\" }\n")),
            "bad.textproto:4: producers[1].name: is \"Fast*\" (allowed: 1 to 64 lower-case "
            "letters, digits, '_', '.' or '-')");
}

TEST(ScenarioLoaderTest, ConsumerAndGroupErrors) {
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"g\" }\n")),
            "bad.textproto:4: consumers[1].assign: say how the consumer reads: assign {} or "
            "group {}");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"x\" topics: \"nope\" assign {} }\n")),
            "bad.textproto:4: consumers[1].topics[0]: no topic is named \"nope\"");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"g\" group { assignor: \"sticky\" } }\n")),
            "bad.textproto:4: consumers[1].group.assignor: is \"sticky\" (allowed: \"range\", "
            "\"roundrobin\")");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"g\" group {\n  session_timeout_ms: 1000\n"
                                "  heartbeat_interval_ms: 2000 } }\n")),
            "bad.textproto:6: consumers[1].group.heartbeat_interval_ms: is 2000 (allowed: 1..999)");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"g\" group { session_timeout_ms: 100 } }\n")),
            "bad.textproto:4: consumers[1].group.session_timeout_ms: is 100 (allowed: "
            "500..1800000)\n"
            "bad.textproto:4: consumers[1].group.heartbeat_interval_ms: is 1000 (allowed: 1..99)");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"g\" group { group_id: \"\" } }\n")),
            "bad.textproto:4: consumers[1].group.group_id: must be 1 to 255 characters");
  EXPECT_EQ(ErrorOf(WithMinimal("consumers { name: \"g\" group { commit_interval_ms: 0 } }\n")),
            "bad.textproto:4: consumers[1].group.commit_interval_ms: is 0 (allowed: 1..600000)");
}

TEST(ScenarioLoaderTest, ScheduledFaultErrors) {
  EXPECT_EQ(
      ErrorOf(WithMinimal("faults {\n  at { at_ms: 1000 crash { node: \"broker-7\" } }\n}\n")),
      "bad.textproto:5: faults.at[0].crash.node: \"broker-7\" matches no node (nodes: "
      "broker-0, producer-0, consumer-0; or \"brokers\", \"clients\", patterns with '*')");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { at_ms: 10000 crash {} } }\n")),
            "bad.textproto:4: faults.at[0].at_ms: is 10000 (allowed: 0..9999)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { at_ms: -1 stall {} } }\n")),
            "bad.textproto:4: faults.at[0].at_ms: is -1 (allowed: 0..9999)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { at_ms: 5 } }\n")),
            "bad.textproto:4: faults.at[0].at_ms: the fault has no kind (crash, power_loss, "
            "partition, ...)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { power_loss { downtime_ms: 0 } } }\n")),
            "bad.textproto:4: faults.at[0].power_loss.downtime_ms: is 0 (allowed: 1..3600000)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { disk_full { duration_ms: 3600001 } } }\n")),
            "bad.textproto:4: faults.at[0].disk_full.duration_ms: is 3600001 (allowed: "
            "1..3600000)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { disk_errors { probability: 2 } } }\n")),
            "bad.textproto:4: faults.at[0].disk_errors.probability: must lie in [0, 1]");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { read_corruption { probability: -0.5 } } }\n")),
            "bad.textproto:4: faults.at[0].read_corruption.probability: must lie in [0, 1]");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { partition { duration_ms: 5 } } }\n")),
            "bad.textproto:4: faults.at[0].partition.side_a: name at least one node");
  EXPECT_EQ(
      ErrorOf(WithMinimal("faults { at { partition { side_a: \"broker-0\" side_b: \"brokers\" "
                          "} } }\n")),
      "bad.textproto:4: faults.at[0].partition.side_a: the two sides leave no link between "
      "different nodes");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { link_delay { from: \"*\" } } }\n")),
            "bad.textproto:4: faults.at[0].link_delay.from: the two sides leave no link between "
            "different nodes");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { link_delay { from: \"producer-*\" to: \"x-*\" "
                                "extra_delay_ms: 0 } } }\n")),
            "bad.textproto:4: faults.at[0].link_delay.to[0]: \"x-*\" matches no node (nodes: "
            "broker-0, producer-0, consumer-0; or \"brokers\", \"clients\", patterns with '*')\n"
            "bad.textproto:4: faults.at[0].link_delay.extra_delay_ms: is 0 (allowed: 1..600000)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { clock_jump { node: \"clients\" jump_ms: "
                                "100000000000 } } }\n")),
            "bad.textproto:4: faults.at[0].clock_jump.jump_ms: is 100000000000 (allowed: "
            "-31622400000..31622400000)");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { at { connection_reset { node: \"nobody\" } } }\n")),
            "bad.textproto:4: faults.at[0].connection_reset.node: \"nobody\" matches no node "
            "(nodes: broker-0, producer-0, consumer-0; or \"brokers\", \"clients\", patterns with "
            "'*')");
}

TEST(ScenarioLoaderTest, FaultMixErrors) {
  EXPECT_EQ(ErrorOf(WithMinimal("faults { mix { interval_ms { min: 10 max: 5 } kinds { kind: "
                                "FAULT_CRASH } } }\n")),
            "bad.textproto:4: faults.mix.interval_ms.max: must not be below min");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { mix { kinds { kind: FAULT_CRASH } } }\n")),
            "bad.textproto:4: faults.mix.interval_ms: a fault mix needs interval_ms, the mean "
            "time between faults");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { mix { interval_ms { min: 100 } } }\n")),
            "bad.textproto:4: faults.mix.kinds: a fault mix needs at least one kind");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { mix {\n  interval_ms { min: 10 }\n"
                                "  kinds { kind: FAULT_CRASH weight { min: 0 max: 0 } }\n"
                                "  kinds { kind: FAULT_STALL weight { min: 0 } }\n} }\n")),
            "bad.textproto:6: faults.mix.kinds: at least one kind needs a positive weight");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { mix { interval_ms { min: 10 }\n"
                                "  kinds { kind: FAULT_CRASH weight { min: -1 max: 2 } } } }\n")),
            "bad.textproto:5: faults.mix.kinds[0].weight.min: is -1 (allowed: 0..1000000)");
  EXPECT_EQ(
      ErrorOf(WithMinimal("faults { mix { interval_ms { min: 10 }\n"
                          "  kinds { kind: FAULT_CRASH }\n  kinds { kind: FAULT_CRASH } } }\n")),
      "bad.textproto:6: faults.mix.kinds[1].kind: FAULT_CRASH is listed already (kinds[0])");
  EXPECT_EQ(ErrorOf(WithMinimal("faults { mix { interval_ms { min: 10 } kinds { kind: FAULT_CRASH }"
                                "\n  nodes: \"brokers\" nodes: \"zookeeper\"\n"
                                "  duration_ms { min: 0 max: 10 }\n"
                                "  disk_fault_ppm { max: 2000000 } } }\n")),
            "bad.textproto:5: faults.mix.nodes[1]: \"zookeeper\" matches no node (nodes: broker-0, "
            "producer-0, consumer-0; or \"brokers\", \"clients\", patterns with '*')\n"
            "bad.textproto:6: faults.mix.duration_ms.min: is 0 (allowed: 1..3600000)\n"
            "bad.textproto:7: faults.mix.disk_fault_ppm.max: is 2000000 (allowed: 0..1000000)");
  // A kind without a weight counts with weight 1, as the world draws it.
  EXPECT_TRUE(ParseScenario(WithMinimal("faults { mix { interval_ms { min: 10 } kinds { kind: "
                                        "FAULT_CRASH weight {} } } }\n"),
                            "ok.textproto")
                  .ok());
}

TEST(ScenarioLoaderTest, ExpectAndChecksErrors) {
  EXPECT_EQ(ErrorOf(WithMinimal("expect { anomalies: LOST_WRITE }\n")),
            "bad.textproto:4: expect.anomalies: anomalies are expected only with verdict: FAIL");
  EXPECT_EQ(ErrorOf(WithMinimal("checks { skip: ANOMALY_UNSPECIFIED }\n")),
            "bad.textproto:4: checks.skip[0]: ANOMALY_UNSPECIFIED is not an anomaly");
  EXPECT_EQ(ErrorOf(WithMinimal("expect { verdict: FAIL anomalies: ANOMALY_UNSPECIFIED }\n")),
            "bad.textproto:4: expect.anomalies[0]: ANOMALY_UNSPECIFIED is not an anomaly");
  EXPECT_EQ(
      ErrorOf(WithMinimal("checks { skip: UNSEEN }\n"
                          "expect { verdict: FAIL anomalies: LOST_WRITE anomalies: UNSEEN }\n")),
      "bad.textproto:5: expect.anomalies[1]: UNSEEN is in checks.skip, so it is never "
      "reported");
}

TEST(ScenarioLoaderTest, EveryValidationProblemIsListed) {
  EXPECT_THAT(ErrorLines("topics { name: \"e\" partitions: 0 }\n"
                         "producers { rate_per_s: 0 key_count: 0 }\n"),
              ElementsAre(StartsWith("bad.textproto:1: topics[0].partitions:"),
                          StartsWith("bad.textproto:2: producers[0].rate_per_s:"),
                          StartsWith("bad.textproto:2: producers[0].key_count:")));
  // At most kErrorsMax, however many there are.
  std::string many = "topics { name: \"e\" }\n";
  for (int i = 0; i < 100; ++i)
    absl::StrAppend(&many, "producers { name: \"p", i, "\" rate_per_s: 0 }\n");
  EXPECT_EQ(ErrorLines(many).size(), ScenarioLimits::kErrorsMax);
  std::string typos;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&typos, "producers { rate: ", i, " }\n");
  EXPECT_EQ(ErrorLines(typos).size(), ScenarioLimits::kErrorsMax);
}

TEST(ScenarioLoaderTest, FileErrors) {
  absl::StatusOr<scenario::Scenario> loaded = LoadScenarioFile("/nonexistent/x.textproto");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("/nonexistent/x.textproto"));
  const std::string directory = std::string(RUNNEL_SOURCE_DIR) + "/scenarios";
  absl::StatusOr<scenario::Scenario> from_directory = LoadScenarioFile(directory);
  ASSERT_FALSE(from_directory.ok());
  EXPECT_THAT(std::string(from_directory.status().message()), StartsWith(directory + ":"));
  const std::string huge(ScenarioLimits::kFileBytesMax + 1, ' ');
  EXPECT_THAT(ErrorOf(huge), StartsWith("bad.textproto: larger than"));
  // Binary junk gets an error, not a crash.
  EXPECT_THAT(ErrorOf(std::string("\x01\xff{}\0\"", 6)), StartsWith("bad.textproto:1:"));
}

TEST(ScenarioLoaderTest, NodeNamesAndPatterns) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(
      "topics { name: \"e\" }\nproducers { count: 2 }\nconsumers { name: \"member\" count: 2 "
      "group {} }\nconsumers { name: \"audit\" assign {} }\n",
      "x.textproto");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(ScenarioNodeNames(*parsed), ElementsAre("broker-0", "producer-0", "producer-1",
                                                      "member-0", "member-1", "audit-0"));
  EXPECT_THAT(MatchNodes(*parsed, "brokers"), ElementsAre("broker-0"));
  EXPECT_THAT(MatchNodes(*parsed, "clients"),
              ElementsAre("producer-0", "producer-1", "member-0", "member-1", "audit-0"));
  EXPECT_THAT(MatchNodes(*parsed, "*"), ElementsAre("broker-0", "producer-0", "producer-1",
                                                    "member-0", "member-1", "audit-0"));
  EXPECT_THAT(MatchNodes(*parsed, "member-*"), ElementsAre("member-0", "member-1"));
  EXPECT_THAT(MatchNodes(*parsed, "*-1"), ElementsAre("producer-1", "member-1"));
  EXPECT_THAT(MatchNodes(*parsed, "*r*-0"), ElementsAre("broker-0", "producer-0", "member-0"));
  EXPECT_THAT(MatchNodes(*parsed, "producer-0"), ElementsAre("producer-0"));
  EXPECT_TRUE(MatchNodes(*parsed, "producer").empty());
  EXPECT_TRUE(MatchNodes(*parsed, "Broker-0").empty());
  EXPECT_TRUE(MatchNodes(*parsed, "").empty());
}

TEST(ScenarioLoaderTest, AnomalyNames) {
  EXPECT_EQ(AnomalyName(scenario::LOST_WRITE), "lost-write");
  EXPECT_EQ(AnomalyName(scenario::INT_NONMONOTONIC_POLL), "int-nonmonotonic-poll");
  EXPECT_EQ(AnomalyFromName("hw-decreased"), scenario::HW_DECREASED);
  EXPECT_EQ(AnomalyFromName("no-such-thing"), std::nullopt);
  EXPECT_EQ(AnomalyFromName("anomaly-unspecified"), std::nullopt);
  // Every anomaly's name leads back to it.
  const google::protobuf::EnumDescriptor* anomalies = scenario::Anomaly_descriptor();
  for (int i = 0; i < anomalies->value_count(); ++i) {
    const auto anomaly = static_cast<scenario::Anomaly>(anomalies->value(i)->number());
    if (anomaly == scenario::ANOMALY_UNSPECIFIED) continue;
    EXPECT_THAT(AnomalyName(anomaly), Not(HasSubstr("_")));
    EXPECT_EQ(AnomalyFromName(AnomalyName(anomaly)), anomaly);
  }
}

TEST(ScenarioLoaderTest, TextRoundTrip) {
  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(
      WithMinimal("faults { at { at_ms: 5 clock_jump { jump_ms: -5 } }\n"
                  "  at { at_ms: 7 disk_errors { probability: 0.1 } } }\n"
                  "topics { name: \"x\" configs { key: \"retention.ms\" value: \"1000\" }\n"
                  "  configs { key: \"cleanup.policy\" value: \"compact\" } }\n"
                  "producers { name: \"slow\" rate_per_s: 0.3333333333333333 zipf_exponent: 1.1 }\n"
                  "description: \"quotes \\\" and\\nnew lines\"\n"),
      "x.textproto");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::string text = ScenarioToText(*parsed);
  absl::StatusOr<scenario::Scenario> again = ParseScenario(text, "y.textproto");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*again, *parsed)) << text;
  // Fields left out stay left out: defaults are not written.
  EXPECT_THAT(text, Not(HasSubstr("linger_ms")));
  EXPECT_FALSE(again->producers(0).has_rate_per_s());
}

}  // namespace
}  // namespace runnel::sim
