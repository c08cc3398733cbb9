// The one place where absl::Status results of the broker's layers become Kafka error codes.
//
// A status code alone does not say which Kafka error a client should see: kOutOfRange from an
// append means the batch is too large, from a read that the offset is outside the log. So every
// mapping names where the status came from (StatusOrigin); the tables below are the contract, and
// docs/broker.md repeats them for users.
//
//   origin            status code           Kafka error
//   kAppend           kInvalidArgument      INVALID_RECORD (malformed batch: not retriable)
//                     kDataLoss             CORRUPT_MESSAGE (CRC mismatch: bytes damaged in
//                                           transit; retriable, the client sends them again)
//                     kOutOfRange           MESSAGE_TOO_LARGE (larger than max.message.bytes)
//                     kResourceExhausted    KAFKA_STORAGE_ERROR (disk full)
//                     kUnavailable          KAFKA_STORAGE_ERROR (I/O error)
//                     kFailedPrecondition   NOT_LEADER_OR_FOLLOWER (the log is closing: the topic
//                                           is being deleted or the broker is stopping; the client
//                                           refreshes its metadata and retries)
//   kDurability       (WhenDurable of an acks=all produce) as kAppend, except
//                     kOutOfRange           KAFKA_STORAGE_ERROR (the log lost the records)
//   kRead             kOutOfRange           OFFSET_OUT_OF_RANGE
//                     kDataLoss             KAFKA_STORAGE_ERROR (a stored batch failed its CRC)
//                     kUnavailable          KAFKA_STORAGE_ERROR
//   kTopicAdmin       kAlreadyExists        TOPIC_ALREADY_EXISTS
//                     kNotFound             UNKNOWN_TOPIC_OR_PARTITION
//                     kInvalidArgument      by its TopicRequestError (topic_config.h):
//                                           INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS,
//                                           INVALID_REPLICATION_FACTOR, INVALID_CONFIG; without
//                                           one, INVALID_REQUEST
//                     kResourceExhausted    POLICY_VIOLATION (a topic or partition limit of the
//                                           node; the message names it)
//                     kUnavailable          KAFKA_STORAGE_ERROR (a metadata write failed, or a
//                                           deletion of the same name is still finishing; the
//                                           message says which)
//                     kFailedPrecondition   NOT_CONTROLLER (the node is stopping; retriable)
//                     kDataLoss             KAFKA_STORAGE_ERROR
//   kProducerIds      kUnavailable,         COORDINATOR_NOT_AVAILABLE (the producer id block could
//                     kResourceExhausted    not be made durable; clients retry InitProducerId)
//   every origin      OK                    NONE
//                     kNotFound             UNKNOWN_TOPIC_OR_PARTITION
//                     kDeadlineExceeded     REQUEST_TIMED_OUT
//                     anything else         UNKNOWN_SERVER_ERROR
#ifndef RUNNEL_BROKER_SERVER_ERROR_MAPPING_H_
#define RUNNEL_BROKER_SERVER_ERROR_MAPPING_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "broker/protocol/error_codes.h"

namespace runnel::server {

// Which layer, doing what, produced a status.
enum class StatusOrigin {
  kAppend,       // PartitionLog::AppendAsLeader
  kDurability,   // PartitionLog::WhenDurable for an acks=all produce
  kRead,         // PartitionLog::Read, OffsetForTimestamp
  kTopicAdmin,   // TopicManager changes and validation
  kProducerIds,  // the producer id allocator
};

protocol::ErrorCode ToKafkaError(const absl::Status& status, StatusOrigin origin);

// The wire value of ToKafkaError.
int16_t ToKafkaErrorWire(const absl::Status& status, StatusOrigin origin);

// The status's message for an error_message field: nullopt for OK (Kafka sends null then).
std::optional<std::string> ErrorMessageOf(const absl::Status& status);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_ERROR_MAPPING_H_
