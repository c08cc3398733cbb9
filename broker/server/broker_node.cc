#include "broker/server/broker_node.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace runnel::server {

BrokerNode::BrokerNode(Env& env, BrokerSettings settings)
    : env_(env),
      settings_(std::move(settings)),
      alive_(std::make_shared<BrokerNode*>(this)) {}

BrokerNode::~BrokerNode() {
  alive_.reset();
  server_.reset();
}

absl::StatusOr<std::unique_ptr<BrokerNode>> BrokerNode::Create(Env& env, BrokerSettings settings,
                                                               std::string data_dir) {
  std::unique_ptr<BrokerNode> node(new BrokerNode(env, std::move(settings)));
  absl::StatusOr<std::unique_ptr<TopicManager>> topics =
      TopicManager::Open(env, data_dir, node->settings_.defaults);
  if (!topics.ok()) return topics.status();
  node->topics_ = *std::move(topics);
  // After a crash a log's recovered tail counts as durable only once synced again; until then the
  // high watermark would hide it from consumers. Sync it now rather than at the next append.
  size_t flushed = 0;
  for (const auto& [name, info] : node->topics_->image().topics()) {
    for (int32_t partition = 0; partition < info.partition_count(); ++partition) {
      storage::PartitionLog* log = node->topics_->Find(name, partition);
      if (log != nullptr && log->durable_end_offset() < log->log_end_offset()) {
        log->Flush();
        ++flushed;
      }
    }
  }
  if (flushed > 0) {
    env.Log(LogLevel::kInfo,
            absl::StrCat("broker: syncing the recovered tails of ", flushed, " partitions"));
  }
  absl::StatusOr<std::unique_ptr<ProducerIdAllocator>> producer_ids =
      ProducerIdAllocator::Open(env, data_dir);
  if (!producer_ids.ok()) return producer_ids.status();
  node->producer_ids_ = *std::move(producer_ids);
  absl::StatusOr<std::unique_ptr<KafkaServer>> server =
      KafkaServer::Start(env, *node->topics_, *node->producer_ids_, node->settings_);
  if (!server.ok()) return server.status();
  node->server_ = *std::move(server);
  return node;
}

void BrokerNode::Shutdown(absl::AnyInvocable<void(const absl::Status&)> done) {
  env_.Log(LogLevel::kInfo, "broker: shutting down");
  server_->StopAccepting();
  std::weak_ptr<BrokerNode*> alive = alive_;
  topics_->Close([alive, done = std::move(done)](const absl::Status& status) mutable {
    if (alive.expired()) return;
    BrokerNode* self = *alive.lock();
    self->server_->CloseConnections();
    self->env_.Log(status.ok() ? LogLevel::kInfo : LogLevel::kError,
                   absl::StrCat("broker: shut down: ", status.ToString()));
    done(status);
  });
}

}  // namespace runnel::server
