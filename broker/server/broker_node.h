// BrokerNode: one single-node Kafka broker assembled from an Env and its settings: the topic
// manager (topics and partition logs in the Env's disk), the producer id allocator, and the Kafka
// server listening on the Env's network. runnel-broker builds one over a PosixEnv; the simulator
// builds one per node incarnation over a SimEnv.
//
// Data directory: the Disk path `data_dir` ("" is the Disk's root, which is how runnel-broker
// roots a PosixEnv at --data-dir). Its layout is topic_manager.h's, plus the producer id file
// (producer_id_allocator.h).
//
// Start-up recovers every topic and record (PartitionLog recovery), and starts a sync of every log
// whose tail was not known to be durable (after a crash), so that the high watermark catches up
// with what survived. A crash at any moment (destroying the node without Shutdown) loses nothing
// that was acknowledged to an acks=all producer or returned to a consumer, except under
// flush.policy=never.
#ifndef RUNNEL_BROKER_SERVER_BROKER_NODE_H_
#define RUNNEL_BROKER_SERVER_BROKER_NODE_H_

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/env/env.h"
#include "broker/server/broker_settings.h"
#include "broker/server/kafka_server.h"
#include "broker/server/producer_id_allocator.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

class BrokerNode {
 public:
  // Opens the data directory and starts serving. Errors: the topic manager's (kDataLoss for a
  // damaged metadata file or log), the producer id file's, and the listener's.
  static absl::StatusOr<std::unique_ptr<BrokerNode>> Create(Env& env, BrokerSettings settings,
                                                            std::string data_dir = "");
  // Without Shutdown() this is a crash as far as the disk and the clients are concerned.
  ~BrokerNode();

  BrokerNode(const BrokerNode&) = delete;
  BrokerNode& operator=(const BrokerNode&) = delete;

  // Clean stop: stops accepting connections and requests, answers parked fetches, lets requests in
  // progress complete while the topic manager closes (every log synced, clean-shutdown markers
  // written), sends the responses that are ready and closes the connections. `done` runs once,
  // with the topic manager's result. Call at most once.
  void Shutdown(absl::AnyInvocable<void(const absl::Status&)> done);

  KafkaServer& server() { return *server_; }
  TopicManager& topics() { return *topics_; }
  ProducerIdAllocator& producer_ids() { return *producer_ids_; }
  const BrokerSettings& settings() const { return settings_; }

 private:
  BrokerNode(Env& env, BrokerSettings settings);

  Env& env_;
  const BrokerSettings settings_;
  std::unique_ptr<TopicManager> topics_;
  std::unique_ptr<ProducerIdAllocator> producer_ids_;
  // Declared last: destroyed first, while what it refers to still exists.
  std::unique_ptr<KafkaServer> server_;
  std::shared_ptr<BrokerNode*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_BROKER_NODE_H_
