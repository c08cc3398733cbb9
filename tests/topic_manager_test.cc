// Tests of the topic manager (broker/server/topic_manager.h): creating, describing, altering and
// deleting topics; visibility only once durable; data surviving clean restarts and kills; crash
// safety of creation and deletion at every step (power loss in every loss mode after each simulator
// event); damaged and transiently misread metadata files; failed metadata syncs; leftover and
// foreign directories; maintenance on a timer; Close(). Mostly on the simulated disk (a Simulator
// with one node whose program holds the manager, crashed through SimDiskStorage), and on real files
// (PosixEnv over a temporary directory).
#include "broker/server/topic_manager.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/env/env.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_env.h"
#include "broker/server/disk_helpers.h"
#include "broker/server/metadata_file.h"
#include "broker/storage/record_batch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/sim_disk.h"
#include "sim/simulator.h"

namespace runnel::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kWaitUs = 30'000'000;
constexpr sim::CrashLossMode kLossModes[] = {sim::CrashLossMode::kLoseAll,
                                             sim::CrashLossMode::kPrefix,
                                             sim::CrashLossMode::kTorn};

// A batch of one record per value, as a client would send it.
std::string ValuesBatch(const std::vector<std::string>& values) {
  std::vector<storage::Record> records;
  for (size_t i = 0; i < values.size(); ++i) {
    storage::Record record;
    record.offset_delta = static_cast<int32_t>(i);
    record.value = values[i];
    records.push_back(std::move(record));
  }
  absl::StatusOr<std::string> batch =
      storage::BuildBatch(storage::BatchBuildOptions{.base_timestamp = 1000}, records);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return *batch;
}

// Every record value of the log, in offset order.
std::vector<std::string> ReadValues(const storage::PartitionLog& log) {
  std::vector<std::string> values;
  int64_t offset = log.log_start_offset();
  while (offset < log.log_end_offset()) {
    absl::StatusOr<std::string> bytes = log.Read(offset, 1 << 20, log.log_end_offset(), true);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    if (!bytes.ok()) break;
    absl::StatusOr<std::vector<absl::string_view>> batches = storage::SplitBatches(*bytes);
    EXPECT_TRUE(batches.ok());
    if (!batches.ok() || batches->empty()) break;
    for (absl::string_view batch : *batches) {
      absl::StatusOr<std::vector<storage::Record>> records = storage::DecodeRecords(batch);
      EXPECT_TRUE(records.ok()) << records.status();
      for (const storage::Record& record : *records) values.push_back(record.value.value_or(""));
      offset = storage::ParseBatchHeader(batch)->last_offset() + 1;
    }
  }
  return values;
}

// The node's program: the manager and the Env it runs on.
struct Host {
  explicit Host(Env& env_in) : env(env_in) {}
  Env& env;
  std::unique_ptr<TopicManager> manager;
};

sim::SimDiskOptions QuietDisk() {
  sim::SimDiskOptions options;
  options.sync_latency_us_min = 200;
  options.sync_latency_us_max = 1000;
  return options;
}

// One simulated node whose program is a Host. Usable as a fixture member or, for the crash sweeps,
// built afresh for every crash point.
class SimNode {
 public:
  explicit SimNode(uint64_t seed = 7, std::string data_dir = "")
      : simulator_(sim::SimulatorOptions{.seed = seed}), data_dir_(std::move(data_dir)) {
    sim::NodeOptions options;
    options.name = "broker-0";
    options.has_own_disk_options = true;
    options.disk = QuietDisk();
    node_ = simulator_.AddNode(options, [this](Env& env) {
      auto host = std::make_shared<Host>(env);
      host_ = host.get();
      return std::shared_ptr<void>(host);
    });
    simulator_.StartNode(node_);
  }
  ~SimNode() {
    host_ = nullptr;
    simulator_.CrashNode(node_, sim::CrashKind::kProcess);
  }

  absl::Status Open(const BrokerDefaults& defaults = BrokerDefaults{}) {
    absl::StatusOr<std::unique_ptr<TopicManager>> manager =
        TopicManager::Open(host_->env, data_dir_, defaults);
    if (!manager.ok()) return manager.status();
    host_->manager = *std::move(manager);
    return absl::OkStatus();
  }

  TopicManager& manager() { return *host_->manager; }
  Env& env() { return host_->env; }
  sim::Simulator& simulator() { return simulator_; }
  sim::SimDiskStorage& disk() { return simulator_.disk(node_); }
  NodeId node_id() const { return node_; }

  bool RunUntil(const std::function<bool()>& done) {
    return simulator_.RunUntilCondition(done, simulator_.NowUs() + kWaitUs);
  }

  // Starts an operation that reports through a callback and runs the simulation until it does. An
  // error returned at once is returned as is.
  absl::Status Await(const std::function<absl::Status(TopicManager::Callback)>& start) {
    auto result = std::make_shared<std::optional<absl::Status>>();
    absl::Status started = start([result](const absl::Status& status) { *result = status; });
    if (!started.ok()) return started;
    if (!RunUntil([&] { return result->has_value(); })) {
      return absl::DeadlineExceededError("no callback in time");
    }
    return **result;
  }

  absl::Status Create(const std::string& name, int32_t partitions,
                      TopicConfigOverrides configs = {}) {
    return Await([&](TopicManager::Callback done) {
      return manager().CreateTopic(name, partitions, configs, std::move(done));
    });
  }
  absl::Status Delete(const std::string& name) {
    return Await([&](TopicManager::Callback done) {
      return manager().DeleteTopic(name, std::move(done));
    });
  }
  absl::Status Alter(const std::string& name, TopicConfigOverrides configs) {
    return Await([&](TopicManager::Callback done) {
      return manager().AlterTopicConfig(name, configs, std::move(done));
    });
  }
  absl::Status Close() {
    return Await([&](TopicManager::Callback done) {
      manager().Close(std::move(done));
      return absl::OkStatus();
    });
  }

  // Appends one batch of `values` and waits until it is durable.
  void AppendDurable(const std::string& topic, int32_t partition,
                     const std::vector<std::string>& values) {
    storage::PartitionLog* log = manager().Find(topic, partition);
    ASSERT_NE(log, nullptr) << topic << "-" << partition;
    absl::StatusOr<storage::AppendInfo> info = log->AppendAsLeader(ValuesBatch(values), 0);
    ASSERT_TRUE(info.ok()) << info.status();
    auto result = std::make_shared<std::optional<absl::Status>>();
    log->WhenDurable(info->last_offset + 1,
                     [result](const absl::Status& status) { *result = status; });
    ASSERT_TRUE(RunUntil([&] { return result->has_value(); }));
    ASSERT_TRUE(result->value().ok()) << result->value();
  }

  // Close(), a clean stop and a start; the manager is then reopened.
  void CleanRestart(const BrokerDefaults& defaults = BrokerDefaults{}) {
    ASSERT_TRUE(Close().ok());
    host_ = nullptr;
    simulator_.StopNode(node_);
    simulator_.StartNode(node_);
    ASSERT_TRUE(Open(defaults).ok());
  }
  // The process dies (the page cache survives); the manager is not reopened.
  void ProcessCrash() {
    host_ = nullptr;
    simulator_.CrashNode(node_, sim::CrashKind::kProcess);
    simulator_.StartNode(node_);
  }
  // Power loss in `mode` for every file; the manager is not reopened.
  void PowerLoss(sim::CrashLossMode mode) {
    host_ = nullptr;
    simulator_.CrashNode(node_, sim::CrashKind::kProcess);
    disk().CrashWithMode(mode);
    simulator_.StartNode(node_);
  }

  // Paths of the current namespace that belong to `topic`'s partition directories.
  std::vector<std::string> TopicPaths(const std::string& topic) {
    std::vector<std::string> paths;
    const std::string prefix = data_dir_.empty() ? topic + "-" : data_dir_ + "/" + topic + "-";
    for (const std::string& path : disk().VolatilePaths()) {
      if (absl::StartsWith(path, prefix)) paths.push_back(path);
    }
    return paths;
  }

  // The topics the durable metadata file holds (what a crash now would leave).
  std::vector<PersistedTopic> DurableTopics() {
    absl::StatusOr<std::string> bytes =
        disk().DurableContents(JoinDiskPath(data_dir_, kMetadataFileName));
    if (!bytes.ok()) return {};
    absl::StatusOr<std::vector<PersistedTopic>> topics = DecodeMetadataFile(*bytes);
    EXPECT_TRUE(topics.ok()) << topics.status();
    return topics.ok() ? *topics : std::vector<PersistedTopic>{};
  }

 private:
  sim::Simulator simulator_;
  std::string data_dir_;
  NodeId node_ = 0;
  Host* host_ = nullptr;
};

class TopicManagerTest : public ::testing::Test {
 protected:
  SimNode node_;
};

// Create, look up, describe and delete: a topic becomes visible only when its creation is durable,
// has one log per partition led by this node at epoch 0, and after a durable deletion its logs are
// closed and its directories removed.
TEST_F(TopicManagerTest, CreateDescribeDelete) {
  ASSERT_TRUE(node_.Open().ok());
  auto done = std::make_shared<std::optional<absl::Status>>();
  ASSERT_TRUE(node_.manager()
                  .CreateTopic("orders", 3, {{"retention.ms", "60000"}},
                               [done](const absl::Status& status) { *done = status; })
                  .ok());
  // Accepted, not yet durable: invisible, but a second creation is already refused.
  EXPECT_EQ(node_.manager().image().FindTopic("orders"), nullptr);
  EXPECT_EQ(node_.manager().Find("orders", 0), nullptr);
  EXPECT_EQ(node_.manager().CreateTopic("orders", 1, {}, nullptr).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(node_.RunUntil([&] { return done->has_value(); }));
  ASSERT_TRUE(done->value().ok()) << done->value();

  const TopicInfo* topic = node_.manager().image().FindTopic("orders");
  ASSERT_NE(topic, nullptr);
  EXPECT_EQ(topic->partition_count(), 3);
  EXPECT_FALSE(topic->id.IsZero());
  for (int32_t p = 0; p < 3; ++p) {
    const PartitionInfo* partition = node_.manager().image().FindPartition("orders", p);
    ASSERT_NE(partition, nullptr);
    EXPECT_EQ(partition->leader, node_.node_id());
    EXPECT_EQ(partition->leader_epoch, 0);
    EXPECT_THAT(partition->replicas, ElementsAre(node_.node_id()));
    EXPECT_THAT(partition->isr, ElementsAre(node_.node_id()));
    ASSERT_NE(node_.manager().Find("orders", p), nullptr);
    EXPECT_EQ(node_.manager().Find("orders", p)->config().retention_ms, 60000);
  }
  EXPECT_EQ(node_.manager().Find("orders", 3), nullptr);
  EXPECT_EQ(node_.manager().Find("orders", -1), nullptr);
  EXPECT_EQ(node_.manager().Find("other", 0), nullptr);
  EXPECT_EQ(node_.TopicPaths("orders").size() >= 3, true);

  absl::StatusOr<std::vector<ConfigDescription>> described =
      node_.manager().DescribeTopicConfig("orders");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->size(), SupportedTopicConfigNames().size());
  for (const ConfigDescription& d : *described) {
    EXPECT_EQ(d.source == ConfigSource::kTopicOverride, d.name == "retention.ms") << d.name;
  }
  EXPECT_EQ(node_.manager().DescribeTopicConfig("nope").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<storage::LogConfig> config = node_.manager().TopicLogConfig("orders");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->retention_ms, 60000);

  ASSERT_TRUE(node_.Delete("orders").ok());
  EXPECT_EQ(node_.manager().image().FindTopic("orders"), nullptr);
  EXPECT_EQ(node_.manager().Find("orders", 0), nullptr);
  ASSERT_TRUE(node_.RunUntil([&] { return node_.manager().stats().topics_deleted == 1; }));
  EXPECT_TRUE(node_.TopicPaths("orders").empty());
  EXPECT_EQ(node_.manager().DeleteTopic("orders", nullptr).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(node_.DurableTopics().empty());
}

// Refused requests: each returns at once with the documented code, names what is wrong, and
// creates nothing; the default partition count and validate-only work.
TEST_F(TopicManagerTest, CreateErrors) {
  BrokerDefaults defaults;
  defaults.num_partitions = 2;
  ASSERT_TRUE(node_.Open(defaults).ok());
  ASSERT_TRUE(node_.Create("a.b", TopicManager::kDefaultPartitionCount).ok());
  EXPECT_EQ(node_.manager().image().FindTopic("a.b")->partition_count(), 2);

  TopicManager& manager = node_.manager();
  absl::Status status = manager.CreateTopic("a.b", 1, {}, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  status = manager.CreateTopic("a_b", 1, {}, nullptr);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidTopicName);
  EXPECT_THAT(status.message(), HasSubstr("collides"));
  status = manager.CreateTopic("no/slash", 1, {}, nullptr);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidTopicName);
  EXPECT_THAT(status.message(), HasSubstr("no/slash"));
  status = manager.CreateTopic(std::string(kTopicNameLengthMax + 1, 'x'), 1, {}, nullptr);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidTopicName);
  for (int32_t count : {0, -2, kPartitionsPerTopicMax + 1}) {
    status = manager.CreateTopic("c", count, {}, nullptr);
    EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidPartitions) << count;
  }
  status = manager.CreateTopic("c", 1, {{"segment.bytes", "12"}}, nullptr);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  EXPECT_THAT(status.message(), HasSubstr("segment.bytes"));
  EXPECT_THAT(status.message(), HasSubstr("'12'"));
  status = manager.CreateTopic("c", 1, {{"compression.type", "zstd"}}, nullptr);
  EXPECT_THAT(status.message(), HasSubstr("unknown topic config 'compression.type'"));
  EXPECT_EQ(GetTopicRequestError(manager.ValidateReplicationFactor(3)),
            TopicRequestError::kInvalidReplicationFactor);
  EXPECT_TRUE(manager.ValidateReplicationFactor(1).ok());
  EXPECT_TRUE(manager.ValidateReplicationFactor(-1).ok());

  // Validate-only accepts a good request and changes nothing.
  EXPECT_TRUE(manager.ValidateCreateTopic("c", 4, {{"cleanup.policy", "compact"}}).ok());
  EXPECT_EQ(GetTopicRequestError(manager.ValidateCreateTopic("c", 0, {})),
            TopicRequestError::kInvalidPartitions);
  EXPECT_EQ(manager.ValidateCreateTopic("a.b", 1, {}).code(), absl::StatusCode::kAlreadyExists);
  node_.simulator().RunFor(1'000'000);
  EXPECT_EQ(manager.image().topics().size(), 1u);
  EXPECT_TRUE(node_.TopicPaths("c").empty());
  EXPECT_EQ(manager.stats().metadata_writes, 1u);
}

// Config overrides round trip through the metadata file; AlterTopicConfig reaches the logs when it
// is durable and survives a restart; refused alterations change nothing.
TEST_F(TopicManagerTest, ConfigsRoundTripAndAlter) {
  BrokerDefaults defaults;
  defaults.log.retention_ms = 3'600'000;
  ASSERT_TRUE(node_.Open(defaults).ok());
  ASSERT_TRUE(node_.Create("events", 2,
                           {{"cleanup.policy", "delete,compact"}, {"segment.bytes", "0500000"}})
                  .ok());
  EXPECT_EQ(node_.manager().image().FindTopic("events")->configs,
            (TopicConfigOverrides{{"cleanup.policy", "compact,delete"},
                                  {"segment.bytes", "500000"}}));
  EXPECT_EQ(node_.manager().Find("events", 1)->config().cleanup_policy,
            storage::CleanupPolicy::kCompactAndDelete);
  EXPECT_EQ(node_.manager().Find("events", 1)->config().retention_ms, 3'600'000);

  ASSERT_TRUE(node_.Alter("events", {{"retention.ms", "1000"}, {"flush.policy", "interval"}}).ok());
  for (int32_t p = 0; p < 2; ++p) {
    const storage::LogConfig& config = node_.manager().Find("events", p)->config();
    EXPECT_EQ(config.retention_ms, 1000);
    EXPECT_EQ(config.flush_policy, storage::FlushPolicy::kInterval);
    // Replaced, not merged: the earlier overrides are gone.
    EXPECT_EQ(config.cleanup_policy, storage::CleanupPolicy::kDelete);
    EXPECT_EQ(config.segment_bytes, defaults.log.segment_bytes);
  }
  absl::Status status = node_.manager().AlterTopicConfig("events", {{"retention.ms", "x"}}, nullptr);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  EXPECT_THAT(status.message(), HasSubstr("retention.ms"));
  EXPECT_EQ(node_.manager().AlterTopicConfig("nope", {}, nullptr).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(node_.manager().ValidateAlterTopicConfig("events", {{"segment.ms", "5000"}}).ok());

  node_.CleanRestart(defaults);
  const TopicInfo* topic = node_.manager().image().FindTopic("events");
  ASSERT_NE(topic, nullptr);
  EXPECT_EQ(topic->configs, (TopicConfigOverrides{{"flush.policy", "interval"},
                                                  {"retention.ms", "1000"}}));
  EXPECT_EQ(node_.manager().Find("events", 0)->config().retention_ms, 1000);
  absl::StatusOr<std::vector<ConfigDescription>> described =
      node_.manager().DescribeTopicConfig("events");
  ASSERT_TRUE(described.ok());
  for (const ConfigDescription& d : *described) {
    if (d.name == "retention.ms") {
      EXPECT_EQ(d.value, "1000");
    }
    if (d.name == "flush.policy") {
      EXPECT_EQ(d.source, ConfigSource::kTopicOverride);
    }
    if (d.name == "segment.bytes") {
      EXPECT_TRUE(d.is_default);
    }
  }
}

// Records appended to several partitions of several topics survive Close() and a restart, and the
// topic ids stay the same.
TEST_F(TopicManagerTest, DataSurvivesCloseAndOpen) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("a", 2).ok());
  ASSERT_TRUE(node_.Create("b", 1).ok());
  const TopicId id_a = node_.manager().image().FindTopic("a")->id;
  std::map<std::string, std::vector<std::string>> expected;
  for (int round = 0; round < 5; ++round) {
    for (const auto& [topic, partition] :
         std::vector<std::pair<std::string, int32_t>>{{"a", 0}, {"a", 1}, {"b", 0}}) {
      std::vector<std::string> values = {absl::StrCat(topic, partition, "-", round, "-x"),
                                         absl::StrCat(topic, partition, "-", round, "-y")};
      node_.AppendDurable(topic, partition, values);
      auto& list = expected[absl::StrCat(topic, "-", partition)];
      list.insert(list.end(), values.begin(), values.end());
    }
  }
  node_.CleanRestart();
  EXPECT_EQ(node_.manager().image().FindTopic("a")->id, id_a);
  EXPECT_EQ(ReadValues(*node_.manager().Find("a", 0)), expected["a-0"]);
  EXPECT_EQ(ReadValues(*node_.manager().Find("a", 1)), expected["a-1"]);
  EXPECT_EQ(ReadValues(*node_.manager().Find("b", 0)), expected["b-0"]);
  EXPECT_EQ(node_.manager().stats().leftover_directories_removed, 0u);
}

// A kill (the manager destroyed without Close) recovers every topic and every durable record: after
// a process crash (page cache kept) and after a power loss in each mode.
TEST_F(TopicManagerTest, RestartAfterKillRecoversDurableRecords) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("k", 3, {{"segment.bytes", "2000"}}).ok());
  std::vector<std::vector<std::string>> durable(3);
  int serial = 0;
  auto append_round = [&] {
    for (int32_t p = 0; p < 3; ++p) {
      std::vector<std::string> values;
      for (int i = 0; i < 4; ++i) values.push_back(absl::StrCat("value-", serial++, "-", p));
      node_.AppendDurable("k", p, values);
      durable[p].insert(durable[p].end(), values.begin(), values.end());
    }
  };
  for (int round = 0; round < 10; ++round) append_round();
  node_.ProcessCrash();
  ASSERT_TRUE(node_.Open().ok());
  for (int32_t p = 0; p < 3; ++p) EXPECT_EQ(ReadValues(*node_.manager().Find("k", p)), durable[p]);

  for (sim::CrashLossMode mode : kLossModes) {
    append_round();
    // Unacknowledged appends: a power loss may keep or drop them, but keeps a prefix.
    for (int32_t p = 0; p < 3; ++p) {
      ASSERT_TRUE(node_.manager().Find("k", p)->AppendAsLeader(ValuesBatch({"maybe"}), 0).ok());
    }
    node_.PowerLoss(mode);
    ASSERT_TRUE(node_.Open().ok());
    ASSERT_NE(node_.manager().image().FindTopic("k"), nullptr);
    for (int32_t p = 0; p < 3; ++p) {
      std::vector<std::string> read = ReadValues(*node_.manager().Find("k", p));
      ASSERT_GE(read.size(), durable[p].size());
      EXPECT_EQ(std::vector<std::string>(read.begin(), read.begin() + durable[p].size()),
                durable[p]);
      // Whatever survived counts from now on.
      durable[p] = read;
    }
  }
}

// A power loss after every simulator event of a CreateTopic, in each loss mode, leaves the topic
// with all its partitions or not at all (and never any of its directories). Once `done` has run,
// it exists. Whenever the durable metadata names the topic, its directories are durable too.
TEST(TopicManagerCrashTest, CrashDuringCreateIsAllOrNothing) {
  constexpr int32_t kPartitions = 4;
  for (sim::CrashLossMode mode : kLossModes) {
    bool saw_absent = false;
    bool saw_present = false;
    for (int steps_max = 0;; ++steps_max) {
      ASSERT_LT(steps_max, 500) << "CreateTopic never completed";
      SimNode node(11);
      ASSERT_TRUE(node.Open().ok());
      ASSERT_TRUE(node.Create("base", 1).ok());
      node.AppendDurable("base", 0, {"kept"});
      auto done = std::make_shared<std::optional<absl::Status>>();
      ASSERT_TRUE(node.manager()
                      .CreateTopic("t", kPartitions, {{"retention.ms", "5000"}},
                                   [done](const absl::Status& status) { *done = status; })
                      .ok());
      for (int step = 0; step < steps_max && !done->has_value(); ++step) {
        if (!node.simulator().Step()) break;
      }
      const bool completed = done->has_value();
      if (completed) {
        ASSERT_TRUE(done->value().ok()) << done->value();
      }
      node.PowerLoss(mode);
      // The ordering the design relies on: metadata naming the topic implies durable directories.
      bool durable_metadata_names_t = false;
      for (const PersistedTopic& topic : node.DurableTopics()) {
        durable_metadata_names_t = durable_metadata_names_t || topic.name == "t";
      }
      if (durable_metadata_names_t) {
        const std::vector<std::string> durable_paths = node.disk().DurablePaths();
        for (int32_t p = 0; p < kPartitions; ++p) {
          EXPECT_NE(std::find(durable_paths.begin(), durable_paths.end(), absl::StrCat("t-", p)),
                    durable_paths.end())
              << "mode " << sim::CrashLossModeName(mode) << " steps " << steps_max;
        }
      }
      ASSERT_TRUE(node.Open().ok());
      ASSERT_EQ(ReadValues(*node.manager().Find("base", 0)), std::vector<std::string>{"kept"});
      const TopicInfo* topic = node.manager().image().FindTopic("t");
      if (topic != nullptr) {
        saw_present = true;
        EXPECT_EQ(topic->partition_count(), kPartitions);
        EXPECT_EQ(topic->configs.at("retention.ms"), "5000");
        for (int32_t p = 0; p < kPartitions; ++p) {
          ASSERT_NE(node.manager().Find("t", p), nullptr);
          EXPECT_EQ(node.manager().Find("t", p)->log_end_offset(), 0);
        }
      } else {
        saw_absent = true;
        EXPECT_FALSE(completed) << "a creation reported durable was lost";
        EXPECT_THAT(node.TopicPaths("t"), ElementsAre())
            << "mode " << sim::CrashLossModeName(mode) << " steps " << steps_max;
      }
      if (completed) break;
    }
    EXPECT_TRUE(saw_absent);
    EXPECT_TRUE(saw_present);
  }
}

// A power loss after every simulator event of a DeleteTopic, in each loss mode, leaves the topic
// either present with all its durable records or gone without leftover directories. Once `done` has
// run, it is gone.
TEST(TopicManagerCrashTest, CrashDuringDeleteIsPresentWithDataOrGone) {
  constexpr int32_t kPartitions = 3;
  for (sim::CrashLossMode mode : kLossModes) {
    bool saw_absent = false;
    bool saw_present = false;
    for (int steps_max = 0;; ++steps_max) {
      ASSERT_LT(steps_max, 500) << "DeleteTopic never finished";
      SimNode node(13);
      ASSERT_TRUE(node.Open().ok());
      ASSERT_TRUE(node.Create("t", kPartitions, {{"segment.bytes", "1000"}}).ok());
      std::vector<std::vector<std::string>> values(kPartitions);
      for (int32_t p = 0; p < kPartitions; ++p) {
        for (int i = 0; i < 6; ++i) {
          values[p].push_back(absl::StrCat("p", p, "-value-", i, std::string(100, 'x')));
          node.AppendDurable("t", p, {values[p].back()});
        }
      }
      auto done = std::make_shared<std::optional<absl::Status>>();
      ASSERT_TRUE(node.manager()
                      .DeleteTopic("t", [done](const absl::Status& status) { *done = status; })
                      .ok());
      bool removed = false;
      for (int step = 0; step < steps_max; ++step) {
        removed = node.manager().stats().topics_deleted == 1;
        if (removed || !node.simulator().Step()) break;
      }
      removed = node.manager().stats().topics_deleted == 1;
      const bool completed = done->has_value();
      if (completed) {
        ASSERT_TRUE(done->value().ok()) << done->value();
      }
      node.PowerLoss(mode);
      ASSERT_TRUE(node.Open().ok());
      const TopicInfo* topic = node.manager().image().FindTopic("t");
      if (topic != nullptr) {
        saw_present = true;
        EXPECT_FALSE(completed) << "a deletion reported durable was undone";
        for (int32_t p = 0; p < kPartitions; ++p) {
          ASSERT_NE(node.manager().Find("t", p), nullptr);
          EXPECT_EQ(ReadValues(*node.manager().Find("t", p)), values[p])
              << "mode " << sim::CrashLossModeName(mode) << " steps " << steps_max;
        }
      } else {
        saw_absent = true;
        EXPECT_THAT(node.TopicPaths("t"), ElementsAre())
            << "mode " << sim::CrashLossModeName(mode) << " steps " << steps_max;
      }
      if (removed) break;
    }
    EXPECT_TRUE(saw_absent);
    EXPECT_TRUE(saw_present);
  }
}

// A damaged metadata file fails Open() with kDataLoss naming the file, and nothing is removed.
TEST_F(TopicManagerTest, CorruptMetadataFileIsDataLoss) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("precious", 2).ok());
  node_.AppendDurable("precious", 0, {"data"});
  ASSERT_TRUE(node_.Close().ok());
  node_.ProcessCrash();
  // Flip one byte on the medium, durably.
  {
    Disk& disk = node_.env().disk();
    absl::StatusOr<std::unique_ptr<File>> file = disk.Open(kMetadataFileName, OpenMode::kExisting);
    ASSERT_TRUE(file.ok());
    char byte = 0;
    ASSERT_EQ(*(*file)->ReadAt(20, absl::Span<char>(&byte, 1)), 1u);
    byte = static_cast<char>(byte ^ 0x10);
    ASSERT_TRUE((*file)->WriteAt(20, absl::string_view(&byte, 1)).ok());
    auto synced = std::make_shared<std::optional<absl::Status>>();
    (*file)->Sync([synced](const absl::Status& status) { *synced = status; });
    ASSERT_TRUE(node_.RunUntil([&] { return synced->has_value(); }));
  }
  node_.PowerLoss(sim::CrashLossMode::kLoseAll);
  const absl::Status status = node_.Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("'__runnel_metadata'"));
  EXPECT_THAT(status.message(), HasSubstr("checksum"));
  EXPECT_EQ(node_.TopicPaths("precious").size() >= 2, true);

  // A truncated file, likewise.
  {
    Disk& disk = node_.env().disk();
    absl::StatusOr<std::unique_ptr<File>> file = disk.Open(kMetadataFileName, OpenMode::kExisting);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Truncate(10).ok());
  }
  const absl::Status truncated = node_.Open();
  EXPECT_EQ(truncated.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.message(), HasSubstr("__runnel_metadata"));
}

// A bit flipped on the way from the disk (not on the medium) is survived: the file is read again.
TEST_F(TopicManagerTest, TransientReadCorruptionIsRetried) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("t", 1).ok());
  node_.CleanRestart();
  ASSERT_TRUE(node_.Close().ok());
  node_.ProcessCrash();
  node_.disk().CorruptNextRead();  // the metadata file is the first file Open() reads
  ASSERT_TRUE(node_.Open().ok());
  EXPECT_NE(node_.manager().image().FindTopic("t"), nullptr);
}

// A failed metadata sync fails the waiting change and every later one (kUnavailable), Close()
// reports it, and after a restart the change is either wholly there or not.
TEST_F(TopicManagerTest, FailedMetadataSyncStopsChanges) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("t", 2).ok());
  node_.disk().FailNextSync();
  const absl::Status altered = node_.Alter("t", {{"retention.ms", "1234"}});
  EXPECT_EQ(altered.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(altered.message(), HasSubstr("__runnel_metadata"));
  // Not applied, and not visible.
  EXPECT_TRUE(node_.manager().image().FindTopic("t")->configs.empty());
  EXPECT_NE(node_.manager().Find("t", 0)->config().retention_ms, 1234);
  const absl::Status later = node_.manager().CreateTopic("u", 1, {}, nullptr);
  EXPECT_EQ(later.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(later.message(), HasSubstr("restart"));
  EXPECT_FALSE(node_.Close().ok());
  node_.PowerLoss(sim::CrashLossMode::kTorn);
  ASSERT_TRUE(node_.Open().ok());
  const TopicInfo* topic = node_.manager().image().FindTopic("t");
  ASSERT_NE(topic, nullptr);
  EXPECT_TRUE(topic->configs.empty() || topic->configs.at("retention.ms") == "1234");
  ASSERT_TRUE(node_.Create("u", 1).ok());
}

// A full disk during CreateTopic fails it (at once or through `done`) with kResourceExhausted;
// after space returns and the node restarts, the topic is wholly there or wholly absent.
TEST_F(TopicManagerTest, DiskFullDuringCreate) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("before", 1).ok());
  node_.disk().SetFull(true);
  const absl::Status created = node_.Create("t", 3);
  EXPECT_EQ(created.code(), absl::StatusCode::kResourceExhausted) << created;
  node_.disk().SetFull(false);
  node_.PowerLoss(sim::CrashLossMode::kPrefix);
  ASSERT_TRUE(node_.Open().ok());
  EXPECT_NE(node_.manager().image().FindTopic("before"), nullptr);
  const TopicInfo* topic = node_.manager().image().FindTopic("t");
  if (topic == nullptr) {
    EXPECT_THAT(node_.TopicPaths("t"), ElementsAre());
  } else {
    for (int32_t p = 0; p < 3; ++p) EXPECT_NE(node_.manager().Find("t", p), nullptr);
  }
  ASSERT_TRUE(node_.Create("after", 1).ok());
}

// Deleting then re-creating a name: refused (kUnavailable) until the old directories are gone, then
// a new, empty topic with a new id that a power loss does not mix with the old one's data.
TEST_F(TopicManagerTest, DeleteThenRecreateNeverResurrectsOldData) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("t", 3).ok());
  const TopicId old_id = node_.manager().image().FindTopic("t")->id;
  for (int32_t p = 0; p < 3; ++p) node_.AppendDurable("t", p, {"old-1", "old-2"});
  auto deleted = std::make_shared<std::optional<absl::Status>>();
  ASSERT_TRUE(node_.manager()
                  .DeleteTopic("t", [deleted](const absl::Status& status) { *deleted = status; })
                  .ok());
  EXPECT_EQ(node_.manager().CreateTopic("t", 1, {}, nullptr).code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(node_.RunUntil([&] { return deleted->has_value(); }));
  ASSERT_TRUE(deleted->value().ok());
  if (node_.manager().stats().topics_deleted == 0) {
    EXPECT_EQ(node_.manager().CreateTopic("t", 1, {}, nullptr).code(),
              absl::StatusCode::kUnavailable);
  }
  ASSERT_TRUE(node_.RunUntil([&] { return node_.manager().stats().topics_deleted == 1; }));
  ASSERT_TRUE(node_.Create("t", 2).ok());
  const TopicId new_id = node_.manager().image().FindTopic("t")->id;
  EXPECT_NE(new_id, old_id);
  node_.PowerLoss(sim::CrashLossMode::kLoseAll);
  ASSERT_TRUE(node_.Open().ok());
  const TopicInfo* topic = node_.manager().image().FindTopic("t");
  ASSERT_NE(topic, nullptr);
  EXPECT_EQ(topic->id, new_id);
  EXPECT_EQ(topic->partition_count(), 2);
  for (int32_t p = 0; p < 2; ++p) EXPECT_TRUE(ReadValues(*node_.manager().Find("t", p)).empty());
  for (const std::string& path : node_.TopicPaths("t")) EXPECT_FALSE(absl::StartsWith(path, "t-2"));
}

// Open() removes partition directories the metadata does not list (including ones past a topic's
// partition count) and leaves every other entry alone.
TEST_F(TopicManagerTest, LeftoverDirectoriesRemovedForeignEntriesKept) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("kept", 1).ok());
  ASSERT_TRUE(node_.Close().ok());
  node_.ProcessCrash();
  Disk& disk = node_.env().disk();
  for (const char* directory : {"ghost-0", "kept-1", "notes", "orders-00", "dashes-", "x-y"}) {
    ASSERT_TRUE(disk.CreateDirectory(directory).ok());
  }
  ASSERT_TRUE(disk.Open("ghost-0/00000000000000000000.log", OpenMode::kCreate).ok());
  ASSERT_TRUE(disk.Open("readme.txt", OpenMode::kCreate).ok());
  ASSERT_TRUE(node_.Open().ok());
  EXPECT_EQ(node_.manager().stats().leftover_directories_removed, 2u);
  EXPECT_FALSE(disk.Exists("ghost-0"));
  EXPECT_FALSE(disk.Exists("kept-1"));
  EXPECT_TRUE(disk.Exists("kept-0"));
  for (const char* entry : {"notes", "orders-00", "dashes-", "x-y", "readme.txt"}) {
    EXPECT_TRUE(disk.Exists(entry)) << entry;
  }
}

// The maintenance timer runs RunMaintenance on every log (here: retention by bytes deletes old
// segments) every kMaintenanceIntervalMs, and stops at Close().
TEST_F(TopicManagerTest, MaintenanceRunsOnTimerAndStopsAtClose) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.Create("r", 2, {{"segment.bytes", "1000"}, {"retention.bytes", "2000"}}).ok());
  for (int i = 0; i < 40; ++i) {
    node_.AppendDurable("r", i % 2, {absl::StrCat("value-", i, std::string(150, 'v'))});
  }
  EXPECT_EQ(node_.manager().Find("r", 0)->log_start_offset(), 0);
  const uint64_t rounds_before = node_.manager().stats().maintenance_rounds;
  node_.simulator().RunFor(3 * TopicManager::kMaintenanceIntervalMs * 1000);
  EXPECT_GE(node_.manager().stats().maintenance_rounds, rounds_before + 2);
  for (int32_t p = 0; p < 2; ++p) {
    EXPECT_GT(node_.manager().Find("r", p)->log_start_offset(), 0);
    EXPECT_LE(node_.manager().Find("r", p)->size_bytes(), 3000u);
  }
  ASSERT_TRUE(node_.Close().ok());
  const uint64_t rounds_at_close = node_.manager().stats().maintenance_rounds;
  node_.simulator().RunFor(10 * TopicManager::kMaintenanceIntervalMs * 1000);
  EXPECT_EQ(node_.manager().stats().maintenance_rounds, rounds_at_close);
}

// Close() lets a change already accepted become durable (its callback runs first), then refuses
// changes; the topic exists after a restart.
TEST_F(TopicManagerTest, CloseFinishesAcceptedChangesThenRefuses) {
  ASSERT_TRUE(node_.Open().ok());
  std::vector<std::string> order;
  ASSERT_TRUE(node_.manager()
                  .CreateTopic("late", 2, {},
                               [&order](const absl::Status& status) {
                                 order.push_back(absl::StrCat("create ", status.ToString()));
                               })
                  .ok());
  node_.manager().Close(
      [&order](const absl::Status& status) { order.push_back(absl::StrCat("close ", status.ToString())); });
  EXPECT_TRUE(order.empty());  // nothing runs inside the calls
  EXPECT_EQ(node_.manager().CreateTopic("x", 1, {}, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(node_.manager().DeleteTopic("late", nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(node_.RunUntil([&] { return order.size() == 2; }));
  EXPECT_THAT(order, ElementsAre("create OK", "close OK"));
  EXPECT_NE(node_.manager().image().FindTopic("late"), nullptr);
  EXPECT_FALSE(node_.manager().Find("late", 0)->AppendAsLeader(ValuesBatch({"v"}), 0).ok());
  node_.ProcessCrash();
  ASSERT_TRUE(node_.Open().ok());
  EXPECT_NE(node_.manager().image().FindTopic("late"), nullptr);
}

// Changes accepted in one turn of the event loop share one metadata write.
TEST_F(TopicManagerTest, ChangesShareMetadataWrites) {
  ASSERT_TRUE(node_.Open().ok());
  int completed = 0;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(node_.manager()
                    .CreateTopic(absl::StrCat("t", i), 1, {},
                                 [&completed](const absl::Status& status) {
                                   EXPECT_TRUE(status.ok());
                                   ++completed;
                                 })
                    .ok());
  }
  ASSERT_TRUE(node_.RunUntil([&] { return completed == 10; }));
  EXPECT_EQ(node_.manager().stats().metadata_writes, 1u);
  EXPECT_EQ(node_.manager().image().topics().size(), 10u);
}

// Broker registrations show in the image at once and survive later metadata writes.
TEST_F(TopicManagerTest, RegisterBroker) {
  ASSERT_TRUE(node_.Open().ok());
  ASSERT_TRUE(node_.manager().RegisterBroker({.node_id = 0, .host = "broker-0", .port = 9092}).ok());
  EXPECT_NE(node_.manager().image().FindBroker(0), nullptr);
  auto done = std::make_shared<std::optional<absl::Status>>();
  ASSERT_TRUE(node_.manager()
                  .CreateTopic("t", 1, {}, [done](const absl::Status& status) { *done = status; })
                  .ok());
  // A registration while the write is pending is kept when the write publishes its image.
  ASSERT_TRUE(node_.manager().RegisterBroker({.node_id = 0, .host = "broker-0", .port = 9093}).ok());
  ASSERT_TRUE(node_.RunUntil([&] { return done->has_value(); }));
  ASSERT_NE(node_.manager().image().FindBroker(0), nullptr);
  EXPECT_EQ(node_.manager().image().FindBroker(0)->port, 9093);
  EXPECT_NE(node_.manager().image().FindTopic("t"), nullptr);
  EXPECT_EQ(node_.manager().RegisterBroker({.node_id = 1, .host = ""}).code(),
            absl::StatusCode::kInvalidArgument);
}

// Topic ids come from the node's seeded Random: the same seed gives the same id, another seed
// another one.
TEST(TopicManagerIdTest, IdsAreDeterministic) {
  auto id_for_seed = [](uint64_t seed) {
    SimNode node(seed);
    EXPECT_TRUE(node.Open().ok());
    EXPECT_TRUE(node.Create("t", 1).ok());
    return node.manager().image().FindTopic("t")->id;
  };
  EXPECT_EQ(id_for_seed(5), id_for_seed(5));
  EXPECT_NE(id_for_seed(5), id_for_seed(6));
}

// A data directory below the root is created, and its creation made durable before the first
// metadata write: a topic survives a power loss that loses everything unsynced.
TEST(TopicManagerDataDirTest, NestedDataDirectoryIsDurable) {
  SimNode node(3, "var/runnel");
  ASSERT_TRUE(node.Open().ok());
  ASSERT_TRUE(node.Create("t", 2).ok());
  node.AppendDurable("t", 1, {"v"});
  node.PowerLoss(sim::CrashLossMode::kLoseAll);
  ASSERT_TRUE(node.Open().ok());
  ASSERT_NE(node.manager().image().FindTopic("t"), nullptr);
  EXPECT_EQ(ReadValues(*node.manager().Find("t", 1)), std::vector<std::string>{"v"});
  EXPECT_TRUE(node.disk().DurableContents("var/runnel/__runnel_metadata").ok());
  EXPECT_EQ(node.manager().data_dir(), "var/runnel");
}

// Bad arguments to Open(): a bad data directory path, bad broker defaults.
TEST_F(TopicManagerTest, OpenRefusesBadArguments) {
  BrokerDefaults defaults;
  defaults.num_partitions = 0;
  EXPECT_EQ(node_.Open(defaults).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(TopicManager::Open(node_.env(), "/abs", BrokerDefaults{}).ok());
  EXPECT_FALSE(TopicManager::Open(node_.env(), "a/../b", BrokerDefaults{}).ok());
}

// RemoveTree removes nested trees and files, and is OK when nothing is there.
TEST_F(TopicManagerTest, RemoveTreeHelper) {
  Disk& disk = node_.env().disk();
  ASSERT_TRUE(disk.CreateDirectory("a").ok());
  ASSERT_TRUE(disk.CreateDirectory("a/b").ok());
  ASSERT_TRUE(disk.Open("a/b/f", OpenMode::kCreate).ok());
  ASSERT_TRUE(disk.Open("a/g", OpenMode::kCreate).ok());
  ASSERT_TRUE(disk.Open("h", OpenMode::kCreate).ok());
  EXPECT_TRUE(RemoveTree(disk, "a").ok());
  EXPECT_TRUE(RemoveTree(disk, "h").ok());
  EXPECT_TRUE(RemoveTree(disk, "missing").ok());
  EXPECT_FALSE(disk.Exists("a"));
  EXPECT_FALSE(disk.Exists("h"));
  EXPECT_FALSE(RemoveTree(disk, "").ok());
  std::string deep = "d";
  ASSERT_TRUE(disk.CreateDirectory(deep).ok());
  for (int i = 0; i < kRemoveTreeDepthMax + 1; ++i) {
    deep += "/d";
    ASSERT_TRUE(disk.CreateDirectory(deep).ok());
  }
  EXPECT_EQ(RemoveTree(disk, "d").code(), absl::StatusCode::kFailedPrecondition);
}

// ---------------------------------------------------------------------------------------------
// The real disk: PosixEnv over a temporary directory.

class PosixTopicManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/topic-manager-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    StartEnv();
  }
  void TearDown() override {
    manager_.reset();
    env_.reset();
    loop_.reset();
    std::filesystem::remove_all(root_);
  }
  void StartEnv() {
    absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(*loop_, 0, root_, 1);
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = *std::move(env);
    env_->set_log_level_min(LogLevel::kWarning);
  }
  // A new process: the manager and the Env are dropped (without Close) and rebuilt.
  void Restart() {
    manager_.reset();
    env_.reset();
    StartEnv();
    OpenOrDie();
  }
  void OpenOrDie() {
    absl::StatusOr<std::unique_ptr<TopicManager>> manager =
        TopicManager::Open(*env_, "data", BrokerDefaults{});
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
  }
  absl::Status Await(const std::function<absl::Status(TopicManager::Callback)>& start) {
    std::optional<absl::Status> result;
    absl::Status started = start([&result](const absl::Status& status) { result = status; });
    if (!started.ok()) return started;
    loop_->RunUntil([&] { return result.has_value(); }, 30'000'000);
    return result.value_or(absl::DeadlineExceededError("timeout"));
  }
  void AppendDurable(const std::string& topic, int32_t partition, const std::string& value) {
    storage::PartitionLog* log = manager_->Find(topic, partition);
    ASSERT_NE(log, nullptr);
    absl::StatusOr<storage::AppendInfo> info = log->AppendAsLeader(ValuesBatch({value}), 0);
    ASSERT_TRUE(info.ok()) << info.status();
    std::optional<absl::Status> result;
    log->WhenDurable(info->last_offset + 1, [&result](const absl::Status& status) { result = status; });
    loop_->RunUntil([&] { return result.has_value(); }, 30'000'000);
    ASSERT_TRUE(result.has_value() && result->ok());
  }
  bool DirectoryExists(const std::string& relative) {
    return std::filesystem::is_directory(std::filesystem::path(root_) / relative);
  }

  std::string root_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<PosixEnv> env_;
  std::unique_ptr<TopicManager> manager_;
};

// On real files: create topics, append, Close, restart, read back; delete removes the directories
// from the file system and the deletion survives a restart.
TEST_F(PosixTopicManagerTest, CreateAppendRestartDelete) {
  OpenOrDie();
  ASSERT_TRUE(Await([&](TopicManager::Callback done) {
                return manager_->CreateTopic("orders", 2, {{"segment.bytes", "4096"}}, std::move(done));
              }).ok());
  ASSERT_TRUE(Await([&](TopicManager::Callback done) {
                return manager_->CreateTopic("audit", 1, {}, std::move(done));
              }).ok());
  EXPECT_TRUE(DirectoryExists("data/orders-0"));
  EXPECT_TRUE(DirectoryExists("data/orders-1"));
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(root_) / "data/__runnel_metadata"));
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back(absl::StrCat("order-", i, std::string(100, 'o')));
    AppendDurable("orders", 1, expected.back());
  }
  AppendDurable("audit", 0, "audit-record");
  ASSERT_TRUE(Await([&](TopicManager::Callback done) {
                manager_->Close(std::move(done));
                return absl::OkStatus();
              }).ok());
  Restart();
  ASSERT_EQ(manager_->image().topics().size(), 2u);
  EXPECT_EQ(ReadValues(*manager_->Find("orders", 1)), expected);
  EXPECT_TRUE(ReadValues(*manager_->Find("orders", 0)).empty());
  EXPECT_EQ(ReadValues(*manager_->Find("audit", 0)), std::vector<std::string>{"audit-record"});

  ASSERT_TRUE(Await([&](TopicManager::Callback done) {
                return manager_->DeleteTopic("orders", std::move(done));
              }).ok());
  loop_->RunUntil([&] { return manager_->stats().topics_deleted == 1; }, 30'000'000);
  EXPECT_FALSE(DirectoryExists("data/orders-0"));
  EXPECT_FALSE(DirectoryExists("data/orders-1"));
  EXPECT_TRUE(DirectoryExists("data/audit-0"));
  Restart();
  EXPECT_EQ(manager_->image().FindTopic("orders"), nullptr);
  ASSERT_NE(manager_->image().FindTopic("audit"), nullptr);
  EXPECT_EQ(ReadValues(*manager_->Find("audit", 0)), std::vector<std::string>{"audit-record"});
}

// On real files: a kill (no Close) keeps every topic and durable record; a leftover partition
// directory of an unknown topic is removed at the next start.
TEST_F(PosixTopicManagerTest, KillRecoversAndLeftoversAreRemoved) {
  OpenOrDie();
  ASSERT_TRUE(Await([&](TopicManager::Callback done) {
                return manager_->CreateTopic("k", 3, {}, std::move(done));
              }).ok());
  for (int32_t p = 0; p < 3; ++p) AppendDurable("k", p, absl::StrCat("durable-", p));
  std::filesystem::create_directories(std::filesystem::path(root_) / "data/ghost-0");
  Restart();
  ASSERT_NE(manager_->image().FindTopic("k"), nullptr);
  for (int32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(ReadValues(*manager_->Find("k", p)),
              std::vector<std::string>{absl::StrCat("durable-", p)});
  }
  EXPECT_FALSE(DirectoryExists("data/ghost-0"));
  EXPECT_EQ(manager_->stats().leftover_directories_removed, 1u);
}

}  // namespace
}  // namespace runnel::server
