// BrokerNode: one single-node Kafka broker assembled from an Env and its settings: the topic
// manager (topics and partition logs in the Env's disk), the producer id allocator, and the Kafka
// server listening on the Env's network. runnel-broker builds one over a PosixEnv; the simulator
// builds one per node incarnation over a SimEnv.
//
// Data directory: the Disk path `data_dir` ("" is the Disk's root, which is how runnel-broker
// roots a PosixEnv at --data-dir). Its layout is topic_manager.h's, plus the producer id file
// (producer_id_allocator.h).
//
// Start-up recovers every topic and record (PartitionLog recovery). After a crash a log's
// recovered tail is not known to be durable, and the high watermark (the durable end) would start
// below what consumers saw before the crash. So, as Kafka finishes log recovery before it opens its
// listener, the node syncs every such log first and only then listens: a client meets either no
// broker or one whose high watermarks are where they were. A log whose recovery sync fails stays
// failed (PartitionLog::failure()) until the next start: its partition is offline (Produce, Fetch
// and ListOffsets answer KAFKA_STORAGE_ERROR, Metadata shows it leaderless; handler_support.h's
// ServableError), and the node serves the others regardless.
//
// A crash at any moment (destroying the node without Shutdown) loses nothing that was acknowledged
// to an acks=all producer or returned to a consumer, except under flush.policy=never.
//
// Consumer groups: the node owns the group coordinator (broker/group/group_coordinator.h). At every
// start it makes sure the internal topic __consumer_offsets exists (creating it with
// offsets_topic_num_partitions partitions, cleanup.policy=compact, flush.policy=always when
// missing) and then elects the coordinator for every partition of it, which loads them; until the
// topic is durable, group requests get COORDINATOR_NOT_AVAILABLE.
#ifndef RUNNEL_BROKER_SERVER_BROKER_NODE_H_
#define RUNNEL_BROKER_SERVER_BROKER_NODE_H_

#include <cassert>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/env/env.h"
#include "broker/group/group_coordinator.h"
#include "broker/server/broker_settings.h"
#include "broker/server/kafka_server.h"
#include "broker/server/producer_id_allocator.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

class BrokerNode {
 public:
  // Runs once, when the node listens, or with the error that keeps it from ever listening.
  using ServingCallback = absl::AnyInvocable<void(const absl::Status&)>;

  // Opens the data directory and starts serving: at once when every log is known durable (a first
  // start or one after a clean shutdown), otherwise once the recovery syncs have finished. Errors:
  // the topic manager's (kDataLoss for a damaged metadata file or log), the producer id file's,
  // and the listener's when it starts at once; a listener that starts later reports its error to
  // `on_serving` and the Env's log. `on_serving` may be empty; it runs inside Create() when the
  // node listens at once.
  static absl::StatusOr<std::unique_ptr<BrokerNode>> Create(Env& env, BrokerSettings settings,
                                                            std::string data_dir = "",
                                                            ServingCallback on_serving = nullptr);
  // Without Shutdown() this is a crash as far as the disk and the clients are concerned.
  ~BrokerNode();

  BrokerNode(const BrokerNode&) = delete;
  BrokerNode& operator=(const BrokerNode&) = delete;

  // Clean stop: stops accepting connections and requests, answers parked fetches, lets requests in
  // progress complete while the topic manager closes (every log synced, clean-shutdown markers
  // written), sends the responses that are ready and closes the connections. `done` runs once,
  // with the topic manager's result. Call at most once.
  void Shutdown(absl::AnyInvocable<void(const absl::Status&)> done);

  // Whether the Kafka server listens; server() may be called only then.
  bool serving() const { return server_ != nullptr; }
  KafkaServer& server() {
    assert(server_ != nullptr);
    return *server_;
  }
  TopicManager& topics() { return *topics_; }
  ProducerIdAllocator& producer_ids() { return *producer_ids_; }
  group::GroupCoordinator& groups() { return *groups_; }
  const BrokerSettings& settings() const { return settings_; }

 private:
  BrokerNode(Env& env, BrokerSettings settings);

  // Starts the Kafka server; reports to on_serving_ (and the log, when it fails).
  absl::Status StartServing();
  // One recovery sync has finished.
  void OnRecoverySynced();
  // Creates __consumer_offsets when missing; elects the coordinator for its partitions once the
  // topic is durable.
  void StartGroupCoordinator();
  void ElectOffsetsPartitions();

  Env& env_;
  const BrokerSettings settings_;
  std::unique_ptr<TopicManager> topics_;
  std::unique_ptr<ProducerIdAllocator> producer_ids_;
  // After topics_: destroyed before the logs it appends to.
  std::unique_ptr<group::GroupCoordinator> groups_;
  ServingCallback on_serving_;
  // Recovery syncs not yet finished; the server starts when this reaches zero.
  size_t recovery_syncs_pending_ = 0;
  // Shutdown() came before the server started: it never will.
  bool shutting_down_ = false;
  // Declared last: destroyed first, while what it refers to still exists.
  std::unique_ptr<KafkaServer> server_;
  std::shared_ptr<BrokerNode*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_BROKER_NODE_H_
