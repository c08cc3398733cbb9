#include "broker/server/metadata_handler.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/group/group_settings.h"
#include "broker/server/error_mapping.h"
#include "broker/server/handler_support.h"

namespace runnel::server {

using protocol::ErrorCode;
using protocol::MetadataRequest;
using protocol::MetadataResponse;
using protocol::ToWire;

namespace {

MetadataResponse::Topic DescribeTopic(const TopicInfo& info, const TopicManager& topics,
                                      NodeId node_id) {
  MetadataResponse::Topic topic;
  topic.name = info.name;
  topic.is_internal = group::IsInternalTopic(info.name);
  topic.partitions.reserve(info.partitions.size());
  for (const PartitionInfo& partition : info.partitions) {
    MetadataResponse::Partition out;
    out.partition_index = partition.partition;
    out.leader_id = partition.leader;
    out.leader_epoch = partition.leader_epoch;
    out.replica_nodes.assign(partition.replicas.begin(), partition.replicas.end());
    out.isr_nodes.assign(partition.isr.begin(), partition.isr.end());
    const storage::PartitionLog* log = topics.Find(info.name, partition.partition);
    if (log != nullptr && ServableError(*log).has_value()) {
      // This node's replica, the only one, is on a failed log: the partition is offline, as Kafka
      // shows a partition whose replicas are all in offline log directories. Clients hold its
      // records and stop fetching it until a broker restart brings it back.
      out.error_code = ToWire(ErrorCode::kLeaderNotAvailable);
      out.leader_id = -1;
      out.offline_replicas.push_back(node_id);
    }
    topic.partitions.push_back(std::move(out));
  }
  return topic;
}

}  // namespace

int16_t AutoCreateTopic(TopicManager& topics, const std::string& topic, bool allowed) {
  if (absl::Status valid = ValidateTopicName(topic); !valid.ok()) {
    return ToWire(ErrorCode::kInvalidTopicException);
  }
  if (!allowed) return ToWire(ErrorCode::kUnknownTopicOrPartition);
  const absl::Status created =
      topics.CreateTopic(topic, TopicManager::kDefaultPartitionCount, {}, nullptr);
  // Created now, already being created, or a deletion of the name still finishing: the client
  // retries and finds the topic once it is durable.
  if (created.ok() || absl::IsAlreadyExists(created) || absl::IsUnavailable(created)) {
    return ToWire(ErrorCode::kLeaderNotAvailable);
  }
  return ToKafkaErrorWire(created, StatusOrigin::kTopicAdmin);
}

MetadataResponse HandleMetadata(int16_t version, const MetadataRequest& request,
                                const MetadataSettings& settings, TopicManager& topics) {
  MetadataResponse response;
  const MetadataImage image = topics.image();
  for (const auto& [node, broker] : image.brokers()) {
    response.brokers.push_back(MetadataResponse::Broker{
        .node_id = broker.node_id,
        .host = broker.host,
        .port = broker.port,
        .rack = broker.rack,
    });
  }
  response.cluster_id = settings.cluster_id;
  response.controller_id = settings.node_id;

  if (request.AllTopics(version)) {
    for (const auto& [name, info] : image.topics()) {
      response.topics.push_back(DescribeTopic(info, topics, settings.node_id));
    }
    return response;
  }
  const bool may_create =
      settings.auto_create_topics_enable && (version < 4 || request.allow_auto_topic_creation);
  std::set<std::string, std::less<>> seen;
  for (const MetadataRequest::Topic& requested : *request.topics) {
    if (!seen.insert(requested.name).second) continue;
    if (const TopicInfo* info = image.FindTopic(requested.name); info != nullptr) {
      response.topics.push_back(DescribeTopic(*info, topics, settings.node_id));
      continue;
    }
    MetadataResponse::Topic topic;
    topic.name = requested.name;
    topic.error_code = AutoCreateTopic(topics, requested.name, may_create);
    response.topics.push_back(std::move(topic));
  }
  return response;
}

}  // namespace runnel::server
