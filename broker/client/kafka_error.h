// The client's one mapping from Kafka error codes to absl::Status, and back.
//
// Every error the client reports carries, besides an absl::StatusCode that says what to do next,
// the Kafka error code it came from: in the message ("TOPIC_ALREADY_EXISTS (36): creating topic
// orders: Topic 'orders' already exists.") and as a payload that KafkaErrorCodeOf() reads back.
// Failures of the transport are reported as the Kafka codes a Java client would report:
// NETWORK_EXCEPTION for a lost or refused connection, REQUEST_TIMED_OUT for a request that got no
// answer in time.
//
// Status codes, by what the caller should do:
//   kUnavailable        retry later (retriable Kafka errors: NOT_LEADER_OR_FOLLOWER,
//                       LEADER_NOT_AVAILABLE, NETWORK_EXCEPTION, NOT_ENOUGH_REPLICAS, ...)
//   kDeadlineExceeded   REQUEST_TIMED_OUT; retriable, the outcome is unknown
//   kNotFound           UNKNOWN_TOPIC_OR_PARTITION (retriable: the topic may be being created)
//   kAlreadyExists      TOPIC_ALREADY_EXISTS
//   kInvalidArgument    INVALID_* codes, MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, ...
//   kOutOfRange         OFFSET_OUT_OF_RANGE
//   kFailedPrecondition sequence and producer-epoch errors, POLICY_VIOLATION, deletion disabled
//   kPermissionDenied   *_AUTHORIZATION_FAILED
//   kUnimplemented      UNSUPPORTED_VERSION, UNSUPPORTED_COMPRESSION_TYPE, ...
//   kDataLoss           CORRUPT_MESSAGE
//   kInternal           UNKNOWN_SERVER_ERROR
//   kUnknown            any other code, including numbers this client does not know
#ifndef RUNNEL_BROKER_CLIENT_KAFKA_ERROR_H_
#define RUNNEL_BROKER_CLIENT_KAFKA_ERROR_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/protocol/error_codes.h"

namespace runnel::client {

// The payload key under which a Status carries its Kafka error code (decimal wire number).
inline constexpr absl::string_view kKafkaErrorPayloadUrl = "type.runnel.dev/kafka.error_code";

// The StatusCode the client uses for a Kafka error code (see the table above). kNone maps to kOk.
absl::StatusCode StatusCodeForKafkaError(protocol::ErrorCode code);

// An error Status for `code`, with the message "<NAME> (<number>): <context>[: <detail>]" and the
// code as payload. kNone gives OkStatus().
absl::Status KafkaErrorStatus(protocol::ErrorCode code, absl::string_view context,
                              absl::string_view detail = "");
// The same for a code read off the wire, which may be a number this client does not know.
absl::Status KafkaErrorStatusFromWire(int16_t code, absl::string_view context,
                                      absl::string_view detail = "");

// The Kafka error code a Status carries, or nullopt for a status that carries none (OK, or an
// error that did not come from a broker or the transport, such as a client-side limit).
std::optional<protocol::ErrorCode> KafkaErrorCodeOf(const absl::Status& status);

// Whether retrying the operation that failed with `status` may succeed: the Kafka code's retriable
// flag when the status carries one, else kUnavailable and kDeadlineExceeded.
bool IsRetriableError(const absl::Status& status);

// Whether the error means the client's idea of who leads the partition may be stale, so metadata
// should be refreshed before retrying (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
// LEADER_NOT_AVAILABLE, the leader epoch errors, NETWORK_EXCEPTION, ...).
bool NeedsMetadataRefresh(const absl::Status& status);

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_KAFKA_ERROR_H_
