// ClusterMetadata: what one client knows about the cluster (brokers, topics, partition leaders),
// and the connections to its brokers.
//
// Contract:
// - Starts from ClientOptions::bootstrap_servers. The first update asks a bootstrap server; later
//   ones ask any broker (the least loaded ready connection, else the next candidate in turn among
//   known brokers and bootstrap servers).
// - An update is a Metadata request for the tracked topics (AddTopic), or for no topic while none
//   is tracked (which still returns the brokers). Updates happen when asked (RequestUpdate, after
//   NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, disconnects, ... as the owners decide),
//   at most one at a time and at least retry_backoff_ms apart, and at least every
//   metadata_max_age_ms. A failed update is retried with exponential backoff.
// - Each completed update replaces what is known about the topics it answered and the broker
//   list; then the update listener runs (set_on_update), then every AwaitUpdate callback.
// - One BrokerConnection per broker node id, created on first use and kept while the client lives;
//   if a broker's advertised address changes, its old connection is closed (failing what it held
//   with NETWORK_EXCEPTION) on a later turn of the event loop and replaced.
// - Destroying it destroys its connections: no callback runs afterwards.
#ifndef RUNNEL_BROKER_CLIENT_CLUSTER_METADATA_H_
#define RUNNEL_BROKER_CLIENT_CLUSTER_METADATA_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/client/broker_connection.h"
#include "broker/client/client_options.h"
#include "broker/env/env.h"

namespace runnel::client {

struct PartitionMetadata {
  int32_t partition = 0;
  int16_t error_code = 0;
  // -1 when the partition has no leader now.
  int32_t leader_id = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
  std::vector<int32_t> offline_replicas;
};

struct TopicMetadata {
  std::string name;
  // NONE, or why the topic is not usable now (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE
  // while it is being created, INVALID_TOPIC_EXCEPTION, ...).
  int16_t error_code = 0;
  bool internal = false;
  // Sorted by partition number; partitions[i].partition == i when the broker lists them all.
  std::vector<PartitionMetadata> partitions;
};

struct BrokerMetadata {
  int32_t node_id = 0;
  NetworkAddress address;
  std::optional<std::string> rack;
};

struct ClusterMetadataStats {
  uint64_t updates_started = 0;
  uint64_t updates_completed = 0;
  uint64_t updates_failed = 0;
};

class ClusterMetadata {
 public:
  // The most topics tracked at once; AddTopic beyond it fails (kResourceExhausted).
  static constexpr size_t kTrackedTopicsMax = 10'000;
  // The most callbacks waiting for the next update; AwaitUpdate beyond it fails the new waiter
  // (from a later turn) with kResourceExhausted.
  static constexpr size_t kUpdateWaitersMax = 10'000;

  // `options` must be valid (ValidateClientOptions).
  ClusterMetadata(Env& env, ClientOptions options);
  ~ClusterMetadata();

  ClusterMetadata(const ClusterMetadata&) = delete;
  ClusterMetadata& operator=(const ClusterMetadata&) = delete;

  // Includes `topic` in every later update; asks for an update when it is new.
  absl::Status AddTopic(const std::string& topic);
  // Asks for an update as soon as the rate limit allows.
  void RequestUpdate();
  // Asks for an update and runs `done` when the next one completes: OK, or why it failed.
  void AwaitUpdate(absl::AnyInvocable<void(const absl::Status&)> done);
  // Runs after every completed update, before the AwaitUpdate callbacks. One listener; setting
  // another replaces it.
  void set_on_update(absl::AnyInvocable<void()> listener) { on_update_ = std::move(listener); }

  // What the last update said about `topic`, or nullptr if no update mentioned it.
  const TopicMetadata* FindTopic(const std::string& topic) const;
  // The partition count of a topic that was answered without error; nullopt otherwise.
  std::optional<int32_t> PartitionCount(const std::string& topic) const;
  // The leader of a partition, when known and the partition has one.
  std::optional<int32_t> LeaderFor(const TopicPartition& partition) const;

  // The connection to broker `node_id`, or nullptr when no update listed that broker.
  BrokerConnection* ConnectionToNode(int32_t node_id);
  // A connection to some broker, for requests any broker can answer (Metadata, CreateTopics, ...).
  BrokerConnection& AnyConnection();
  // Sends through AnyConnection().
  void SendToAny(protocol::RequestBody request, ResponseCallback callback,
                 RequestOptions options = {});

  bool has_update() const { return stats_.updates_completed > 0; }
  const std::map<int32_t, BrokerMetadata>& brokers() const { return brokers_; }
  const std::map<std::string, TopicMetadata>& topics() const { return topics_; }
  int32_t controller_id() const { return controller_id_; }
  const std::optional<std::string>& cluster_id() const { return cluster_id_; }
  const ClusterMetadataStats& stats() const { return stats_; }
  Env& env() { return env_; }
  const ClientOptions& options() const { return options_; }

 private:
  void ScheduleUpdate(int64_t at_us);
  void StartUpdate();
  void FinishUpdate(const absl::Status& status);
  void Apply(const protocol::MetadataResponse& response);
  BrokerConnection& BootstrapConnection(size_t index);

  Env& env_;
  const ClientOptions options_;
  std::set<std::string> tracked_topics_;
  std::map<std::string, TopicMetadata> topics_;
  std::map<int32_t, BrokerMetadata> brokers_;
  int32_t controller_id_ = -1;
  std::optional<std::string> cluster_id_;

  std::map<int32_t, std::unique_ptr<BrokerConnection>> connections_;
  std::vector<std::unique_ptr<BrokerConnection>> bootstrap_connections_;
  // Which candidate AnyConnection() tries next when no connection is ready.
  size_t any_cursor_ = 0;

  bool update_in_flight_ = false;
  bool update_wanted_ = false;
  int update_failures_ = 0;
  int64_t last_update_start_us_ = -1;
  TimerId update_timer_ = kNoTimer;
  int64_t update_timer_at_us_ = 0;
  absl::AnyInvocable<void()> on_update_;
  std::vector<absl::AnyInvocable<void(const absl::Status&)>> waiters_;

  ClusterMetadataStats stats_;
  std::shared_ptr<ClusterMetadata*> alive_;
};

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_CLUSTER_METADATA_H_
