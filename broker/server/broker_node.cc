#include "broker/server/broker_node.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace runnel::server {

BrokerNode::BrokerNode(Env& env, BrokerSettings settings)
    : env_(env),
      settings_(std::move(settings)),
      alive_(std::make_shared<BrokerNode*>(this)) {}

BrokerNode::~BrokerNode() {
  alive_.reset();
  server_.reset();
  groups_.reset();
}

absl::StatusOr<std::unique_ptr<BrokerNode>> BrokerNode::Create(Env& env, BrokerSettings settings,
                                                               std::string data_dir,
                                                               ServingCallback on_serving) {
  std::unique_ptr<BrokerNode> node(new BrokerNode(env, std::move(settings)));
  node->on_serving_ = std::move(on_serving);
  absl::StatusOr<std::unique_ptr<TopicManager>> topics =
      TopicManager::Open(env, data_dir, node->settings_.defaults);
  if (!topics.ok()) return topics.status();
  node->topics_ = *std::move(topics);
  absl::StatusOr<std::unique_ptr<ProducerIdAllocator>> producer_ids =
      ProducerIdAllocator::Open(env, data_dir);
  if (!producer_ids.ok()) return producer_ids.status();
  node->producer_ids_ = *std::move(producer_ids);
  TopicManager* topic_manager = node->topics_.get();
  node->groups_ = std::make_unique<group::GroupCoordinator>(
      env, node->settings_.groups,
      [topic_manager](absl::string_view topic, int32_t partition) {
        const TopicInfo* info = topic_manager->image().FindTopic(topic);
        return info != nullptr && partition >= 0 && partition < info->partition_count();
      });
  node->StartGroupCoordinator();
  // Logs whose recovered tail is not yet durable, in name order, with their names for the log.
  std::vector<std::pair<std::string, storage::PartitionLog*>> unsynced;
  for (const auto& [name, info] : node->topics_->image().topics()) {
    for (int32_t partition = 0; partition < info.partition_count(); ++partition) {
      storage::PartitionLog* log = node->topics_->Find(name, partition);
      if (log != nullptr && log->durable_end_offset() < log->log_end_offset()) {
        unsynced.emplace_back(absl::StrCat(name, "-", partition), log);
      }
    }
  }
  if (unsynced.empty()) {
    if (absl::Status started = node->StartServing(); !started.ok()) return started;
    return node;
  }
  env.Log(LogLevel::kInfo, absl::StrCat("broker: syncing the recovered tails of ", unsynced.size(),
                                        " partitions before listening"));
  // Counted in full first: a WhenDurable callback may run inside the call (with an error).
  node->recovery_syncs_pending_ = unsynced.size();
  std::weak_ptr<BrokerNode*> alive = node->alive_;
  for (auto& [name, log] : unsynced) {
    log->WhenDurable(log->log_end_offset(), [alive, name](const absl::Status& status) {
      if (alive.expired()) return;
      BrokerNode* self = *alive.lock();
      if (!status.ok()) {
        self->env_.Log(LogLevel::kError,
                       absl::StrCat("broker: recovery sync of ", name, " failed: ",
                                    status.ToString(), "; serving the other partitions"));
      }
      self->OnRecoverySynced();
    });
    log->Flush();
  }
  return node;
}

void BrokerNode::OnRecoverySynced() {
  assert(recovery_syncs_pending_ > 0);
  if (--recovery_syncs_pending_ > 0 || shutting_down_) return;
  // Errors went to on_serving_ and the log.
  StartServing().IgnoreError();
}

void BrokerNode::StartGroupCoordinator() {
  if (topics_->image().FindTopic(group::kOffsetsTopic) != nullptr) {
    ElectOffsetsPartitions();
    return;
  }
  const int32_t partitions = settings_.groups.offsets_topic_num_partitions;
  // Compacted, as Kafka's: only each key's latest value matters. Synced before acknowledging
  // whatever the broker default says, since commits are acknowledged once durable. Segments are
  // smaller than the default so that compaction (which cleans sealed segments) keeps up, and
  // batches may be as large as the largest group-metadata record.
  TopicConfigOverrides configs = {
      {"cleanup.policy", "compact"},
      {"flush.policy", "always"},
      {"max.message.bytes", "8388608"},
      {"segment.bytes", "104857600"},
  };
  std::weak_ptr<BrokerNode*> alive = alive_;
  absl::Status started = topics_->CreateTopic(
      group::kOffsetsTopic, partitions, std::move(configs), [alive](const absl::Status& status) {
        if (alive.expired()) return;
        BrokerNode* self = *alive.lock();
        if (!status.ok()) {
          self->env_.Log(LogLevel::kError,
                         absl::StrCat("broker: creating ", group::kOffsetsTopic, " failed: ",
                                      status.ToString(), "; consumer groups are unavailable"));
          return;
        }
        self->ElectOffsetsPartitions();
      });
  if (!started.ok()) {
    env_.Log(LogLevel::kError, absl::StrCat("broker: cannot create ", group::kOffsetsTopic, ": ",
                                            started.ToString(),
                                            "; consumer groups are unavailable"));
  }
}

void BrokerNode::ElectOffsetsPartitions() {
  const TopicInfo* info = topics_->image().FindTopic(group::kOffsetsTopic);
  assert(info != nullptr);
  groups_->SetOffsetsTopicPartitions(info->partition_count());
  // A single node leads every partition: it coordinates every group.
  for (const PartitionInfo& partition : info->partitions) {
    storage::PartitionLog* log = topics_->Find(group::kOffsetsTopic, partition.partition);
    assert(log != nullptr);
    groups_->Elect(partition.partition, *log, partition.leader_epoch);
  }
}

absl::Status BrokerNode::StartServing() {
  absl::StatusOr<std::unique_ptr<KafkaServer>> server =
      KafkaServer::Start(env_, *topics_, *producer_ids_, *groups_, settings_);
  absl::Status status = server.status();
  if (server.ok()) {
    server_ = *std::move(server);
  } else {
    env_.Log(LogLevel::kError, absl::StrCat("broker: cannot listen: ", status.ToString()));
  }
  if (on_serving_) {
    ServingCallback on_serving = std::move(on_serving_);
    on_serving_ = nullptr;
    on_serving(status);
  }
  return status;
}

void BrokerNode::Shutdown(absl::AnyInvocable<void(const absl::Status&)> done) {
  env_.Log(LogLevel::kInfo, "broker: shutting down");
  shutting_down_ = true;
  if (server_ != nullptr) server_->StopAccepting();
  // Before the logs close: waiting requests are answered NOT_COORDINATOR and nothing more is
  // appended to __consumer_offsets.
  groups_->Shutdown();
  std::weak_ptr<BrokerNode*> alive = alive_;
  topics_->Close([alive, done = std::move(done)](const absl::Status& status) mutable {
    if (alive.expired()) return;
    BrokerNode* self = *alive.lock();
    if (self->server_ != nullptr) self->server_->CloseConnections();
    self->env_.Log(status.ok() ? LogLevel::kInfo : LogLevel::kError,
                   absl::StrCat("broker: shut down: ", status.ToString()));
    done(status);
  });
}

}  // namespace runnel::server
