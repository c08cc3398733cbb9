// Topic administration: CreateTopics (0-4), DeleteTopics (0-3) and DescribeConfigs (0-3).
//
// CreateTopics, per topic (each with its own error code, and from v1 a message):
// - validate_only checks everything and creates nothing.
// - num_partitions and replication_factor of -1 mean the broker defaults. A replication factor
//   other than 1 is INVALID_REPLICATION_FACTOR (a single node holds one replica). Manual
//   assignments are accepted only when num_partitions and replication_factor are -1 and every
//   partition 0..n-1 is assigned to exactly this node; otherwise INVALID_REQUEST.
// - configs are topic configs (topic_config.h); an unknown name or a bad value is INVALID_CONFIG
//   with the reason, a null value INVALID_REQUEST (as Kafka).
// - A name twice in one request is INVALID_REQUEST for both; TOPIC_ALREADY_EXISTS,
//   INVALID_TOPIC_EXCEPTION and INVALID_PARTITIONS as Kafka.
// - The answer comes when every created topic is durable (TopicManager::CreateTopic), or at
//   timeout_ms with REQUEST_TIMED_OUT for those still waiting (their creation goes on). With
//   timeout_ms <= 0 the answer is immediate: NONE means the creation started.
// DeleteTopics: per topic, NONE once the deletion is durable, UNKNOWN_TOPIC_OR_PARTITION, or
// REQUEST_TIMED_OUT at timeout_ms (the deletion goes on); a name twice is INVALID_REQUEST.
// DescribeConfigs:
// - Topic resources (type 2): every supported topic config, or those named, with its effective
//   value; config source (v1+) DYNAMIC_TOPIC_CONFIG for an override, STATIC_BROKER_CONFIG when the
//   broker's configuration set the default, DEFAULT_CONFIG otherwise (v0: is_default unless
//   overridden); synonyms (v1+, when asked) from the most to the least specific: the override, the
//   broker's setting (under Kafka's broker name, e.g. log.retention.ms), the built-in default.
//   Unknown topic: UNKNOWN_TOPIC_OR_PARTITION on that resource.
// - Broker resources (type 4) named by this node's id (or ""): the broker's settings, all
//   read-only. Another id, or another resource type, is INVALID_REQUEST on that resource.
// - config_type (v3) follows Kafka's types; documentation is null.
#ifndef RUNNEL_BROKER_SERVER_ADMIN_HANDLER_H_
#define RUNNEL_BROKER_SERVER_ADMIN_HANDLER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/protocol/messages.h"
#include "broker/server/broker_settings.h"
#include "broker/server/handler_support.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

// What DescribeConfigs says about the broker itself.
struct BrokerIdentity {
  NodeId node_id = 0;
  std::string listeners;             // "PLAINTEXT://host:port"
  std::string advertised_listeners;  // likewise
};

class AdminHandler {
 public:
  // Runs once for each topic a DeleteTopics request deleted, when the deletion is durable.
  using TopicDeleted = absl::AnyInvocable<void(absl::string_view topic)>;

  AdminHandler(Env& env, TopicManager& topics, const BrokerSettings& settings,
               BrokerIdentity identity, TopicDeleted on_topic_deleted);
  ~AdminHandler();

  AdminHandler(const AdminHandler&) = delete;
  AdminHandler& operator=(const AdminHandler&) = delete;

  void HandleCreateTopics(int16_t version, const protocol::CreateTopicsRequest& request,
                          Respond respond);
  void HandleDeleteTopics(int16_t version, const protocol::DeleteTopicsRequest& request,
                          Respond respond);
  protocol::DescribeConfigsResponse HandleDescribeConfigs(
      int16_t version, const protocol::DescribeConfigsRequest& request) const;

 private:
  absl::Status CreateOne(const protocol::CreateTopicsRequest::Topic& topic, bool validate_only,
                         TopicManager::Callback done);
  protocol::DescribeConfigsResponse::Result DescribeTopic(
      int16_t version, const protocol::DescribeConfigsRequest& request,
      const protocol::DescribeConfigsRequest::Resource& resource) const;
  protocol::DescribeConfigsResponse::Result DescribeBroker(
      int16_t version, const protocol::DescribeConfigsRequest& request,
      const protocol::DescribeConfigsRequest::Resource& resource) const;

  Env& env_;
  TopicManager& topics_;
  const BrokerSettings& settings_;
  const BrokerIdentity identity_;
  TopicDeleted on_topic_deleted_;
  std::shared_ptr<AdminHandler*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_ADMIN_HANDLER_H_
