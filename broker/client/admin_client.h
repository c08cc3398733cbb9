// AdminClient: topic administration (create, delete, list, describe, describe configs) and
// consumer group inspection (list, describe, committed offsets), like Kafka's Admin API,
// asynchronous over the Env.
//
// Contract:
// - Every call completes exactly once through its callback, on the event loop, never from inside
//   the call. Results are absl::Status / StatusOr whose errors name the Kafka error code
//   (kafka_error.h): for example kAlreadyExists "TOPIC_ALREADY_EXISTS (36): creating topic t: ...".
// - Requests go to any broker (a single-node cluster is its own controller). A request that fails
//   as a whole with a retriable error (NETWORK_EXCEPTION, REQUEST_TIMED_OUT from the connection,
//   NOT_CONTROLLER) is sent again after a backoff until the call's timeout_ms has passed; then the
//   call fails with the last error. Per-topic errors in an answer are reported as they are, not
//   retried.
// - A retried CreateTopics whose first attempt was executed but whose answer was lost reports
//   TOPIC_ALREADY_EXISTS, and a retried DeleteTopics UNKNOWN_TOPIC_OR_PARTITION, as with Kafka's
//   own admin client.
// - Group calls go to the group's coordinator, found with FindCoordinator (ListGroups goes to every
//   known broker and merges the answers). COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR,
//   COORDINATOR_NOT_AVAILABLE and lost connections are retried (finding the coordinator again)
//   until the call's timeout, as Kafka's admin client does.
// - Destroying the client runs no callback afterwards.
#ifndef RUNNEL_BROKER_CLIENT_ADMIN_CLIENT_H_
#define RUNNEL_BROKER_CLIENT_ADMIN_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/client/cluster_metadata.h"
#include "broker/client/group_consumer.h"
#include "broker/env/env.h"

namespace runnel::client {

struct AdminOptions {
  // Kafka's default.api.timeout.ms: how long one call may take, retries included.
  static constexpr int64_t kApiTimeoutMsDefault = 60'000;
  // The most topics one CreateTopics or DeleteTopics call may name.
  static constexpr size_t kTopicsPerCallMax = 1000;

  ClientOptions client;
  int64_t api_timeout_ms = kApiTimeoutMsDefault;
};

struct NewTopic {
  std::string name;
  // -1: the broker's default (num.partitions, default.replication.factor).
  int32_t partitions = -1;
  int16_t replication_factor = -1;
  // Topic config overrides (retention.ms, cleanup.policy, ...).
  std::map<std::string, std::string> configs;
};

struct CreateTopicsOptions {
  // Check everything, create nothing.
  bool validate_only = false;
  // The broker-side wait for the creation to complete, and this call's timeout; 0 means
  // AdminOptions::api_timeout_ms.
  int64_t timeout_ms = 0;
};

struct PartitionDescription {
  int32_t partition = 0;
  // -1 when the partition has no leader now.
  int32_t leader_id = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
  std::vector<int32_t> offline_replicas;
};

struct TopicDescription {
  std::string name;
  bool internal = false;
  std::vector<PartitionDescription> partitions;  // sorted by partition
};

// One configuration value, as DescribeConfigs reports it.
struct ConfigEntry {
  std::string name;
  std::optional<std::string> value;
  // Kafka's source names: DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG, ...
  std::string source;
  bool read_only = false;
  bool is_default = false;
  bool sensitive = false;
};

// Kafka's name for a DescribeConfigs config_source value; "UNKNOWN" for others.
std::string ConfigSourceName(int8_t source);

// One group as ListGroups reports it.
struct GroupListing {
  std::string group_id;
  // "consumer" for consumer groups; empty for a group that has only committed offsets.
  std::string protocol_type;
  friend bool operator==(const GroupListing&, const GroupListing&) = default;
};

struct GroupMemberDescription {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  // For consumer groups (protocol type "consumer"), the subscription and assignment decoded
  // (assignors.h); empty when they do not decode or the group is of another protocol type.
  std::vector<std::string> subscribed_topics;
  std::vector<TopicPartition> assignment;
};

struct GroupDescription {
  std::string group_id;
  // Kafka's state names: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead (a group the
  // coordinator does not know).
  std::string state;
  std::string protocol_type;
  // The chosen protocol: for consumer groups, the assignor.
  std::string protocol;
  std::vector<GroupMemberDescription> members;  // sorted by member id
};

class AdminClient {
 public:
  template <typename T>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;
  using StatusCallback = absl::AnyInvocable<void(const absl::Status&)>;

  // kInvalidArgument for invalid options.
  static absl::StatusOr<std::unique_ptr<AdminClient>> Create(Env& env, AdminOptions options);
  ~AdminClient();

  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Per topic: OK, or the error for that topic. The call itself fails only when no answer came.
  void CreateTopics(std::vector<NewTopic> topics, CreateTopicsOptions options,
                    Callback<std::map<std::string, absl::Status>> done);
  void CreateTopic(NewTopic topic, CreateTopicsOptions options, StatusCallback done);
  // timeout_ms 0: AdminOptions::api_timeout_ms.
  void DeleteTopics(std::vector<std::string> topics, int64_t timeout_ms,
                    Callback<std::map<std::string, absl::Status>> done);
  void DeleteTopic(std::string topic, StatusCallback done);
  // Every topic's name, sorted; internal topics only when asked.
  void ListTopics(bool include_internal, Callback<std::vector<std::string>> done);
  // kNotFound (UNKNOWN_TOPIC_OR_PARTITION) for a topic that does not exist; the call never creates
  // the topic.
  void DescribeTopic(std::string topic, Callback<TopicDescription> done);
  // Every config of the topic with its effective value, sorted by name.
  void DescribeTopicConfigs(std::string topic, Callback<std::vector<ConfigEntry>> done);
  // Every setting of broker `node_id`, sorted by name.
  void DescribeBrokerConfigs(int32_t node_id, Callback<std::vector<ConfigEntry>> done);

  // Every group of every known broker, sorted by group id.
  void ListGroups(Callback<std::vector<GroupListing>> done);
  // The group's state and members, from its coordinator. A group the coordinator does not know is
  // reported with state "Dead" and no members, as Kafka does.
  void DescribeGroup(std::string group_id, Callback<GroupDescription> done);
  // Every committed offset of the group (OffsetFetch with all topics, v2 or later), from its
  // coordinator.
  void ListGroupOffsets(std::string group_id,
                        Callback<std::map<TopicPartition, OffsetAndMetadata>> done);

  ClusterMetadata& metadata() { return metadata_; }

 private:
  AdminClient(Env& env, AdminOptions options);

  // Sends `request` to any broker, again after a backoff while the whole request fails with a
  // retriable error, until `timeout_ms` after the first attempt. `make_request` builds it afresh
  // each time.
  void SendWithRetries(absl::AnyInvocable<protocol::RequestBody()> make_request,
                       int64_t timeout_ms, ResponseCallback done);
  struct RetryState;
  void Attempt(std::shared_ptr<RetryState> state);
  void DescribeConfigsOf(int8_t resource_type, std::string name,
                         Callback<std::vector<ConfigEntry>> done);

  // A call to a group's coordinator: finds it (FindCoordinator), sends make_request() there, and
  // hands the answer to `handle`, which either finishes the call (returns OK) or returns a
  // retriable error to start over (coordinator lookup included) after a backoff, until
  // `timeout_ms`; then `fail` gets that error.
  struct CoordinatorCall;
  void CallCoordinator(std::string group_id,
                       absl::AnyInvocable<protocol::RequestBody()> make_request,
                       absl::AnyInvocable<absl::Status(absl::StatusOr<ApiResponse>)> handle,
                       absl::AnyInvocable<void(const absl::Status&)> fail);
  void CoordinatorAttempt(std::shared_ptr<CoordinatorCall> call);
  void RetryCoordinatorCall(std::shared_ptr<CoordinatorCall> call, absl::Status why);

  Env& env_;
  const AdminOptions options_;
  ClusterMetadata metadata_;
  std::shared_ptr<AdminClient*> alive_;
};

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_ADMIN_CLIENT_H_
