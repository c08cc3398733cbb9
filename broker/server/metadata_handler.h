// Metadata, versions 0-8: this broker, the cluster id, the controller (this node), and topics with
// their partitions, leaders, replicas and ISRs.
//
// Which topics: v0 with an empty list, or v1+ with a null list, means every topic; otherwise the
// ones named (each once, in request order). A named topic that does not exist is created when the
// broker allows auto-creation and (v4+) the request does too; creation is asynchronous, so the
// topic is answered LEADER_NOT_AVAILABLE (retriable) until its creation is durable, as Kafka does.
// Without auto-creation: UNKNOWN_TOPIC_OR_PARTITION. A name Kafka would reject:
// INVALID_TOPIC_EXCEPTION.
//
// A partition whose log failed (handler_support.h's ServableError) is offline until the broker
// restarts: LEADER_NOT_AVAILABLE (retriable), leader -1, this node in offline_replicas (v5+), as
// Kafka shows a partition whose only replica is in an offline log directory. Its Produce, Fetch
// and ListOffsets answer KAFKA_STORAGE_ERROR meanwhile.
#ifndef RUNNEL_BROKER_SERVER_METADATA_HANDLER_H_
#define RUNNEL_BROKER_SERVER_METADATA_HANDLER_H_

#include <cstdint>
#include <string>

#include "broker/protocol/messages.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

struct MetadataSettings {
  NodeId node_id = 0;
  std::string cluster_id;
  bool auto_create_topics_enable = true;
};

protocol::MetadataResponse HandleMetadata(int16_t version, const protocol::MetadataRequest& request,
                                          const MetadataSettings& settings,
                                          TopicManager& topics);

// Starts creating `topic` with the broker defaults when the broker allows auto-creation. Returns
// the error code to answer for the topic meanwhile: LEADER_NOT_AVAILABLE while it is being created,
// INVALID_TOPIC_EXCEPTION for a bad name, UNKNOWN_TOPIC_OR_PARTITION when auto-creation is off.
int16_t AutoCreateTopic(TopicManager& topics, const std::string& topic, bool allowed);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_METADATA_HANDLER_H_
