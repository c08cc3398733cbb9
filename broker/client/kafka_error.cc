#include "broker/client/kafka_error.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace runnel::client {

using protocol::ErrorCode;

absl::StatusCode StatusCodeForKafkaError(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return absl::StatusCode::kOk;
    case ErrorCode::kRequestTimedOut:
      return absl::StatusCode::kDeadlineExceeded;
    case ErrorCode::kUnknownTopicOrPartition:
      return absl::StatusCode::kNotFound;
    case ErrorCode::kTopicAlreadyExists:
      return absl::StatusCode::kAlreadyExists;
    case ErrorCode::kOffsetOutOfRange:
      return absl::StatusCode::kOutOfRange;
    case ErrorCode::kCorruptMessage:
      return absl::StatusCode::kDataLoss;
    case ErrorCode::kUnknownServerError:
      return absl::StatusCode::kInternal;
    case ErrorCode::kInvalidFetchSize:
    case ErrorCode::kMessageTooLarge:
    case ErrorCode::kRecordListTooLarge:
    case ErrorCode::kInvalidTopicException:
    case ErrorCode::kInvalidRequiredAcks:
    case ErrorCode::kInvalidTimestamp:
    case ErrorCode::kInvalidPartitions:
    case ErrorCode::kInvalidReplicationFactor:
    case ErrorCode::kInvalidReplicaAssignment:
    case ErrorCode::kInvalidConfig:
    case ErrorCode::kInvalidRequest:
    case ErrorCode::kInvalidRecord:
    case ErrorCode::kOffsetMetadataTooLarge:
    case ErrorCode::kInvalidGroupId:
    case ErrorCode::kInvalidSessionTimeout:
    case ErrorCode::kInvalidCommitOffsetSize:
    case ErrorCode::kInvalidTransactionTimeout:
      return absl::StatusCode::kInvalidArgument;
    case ErrorCode::kOutOfOrderSequenceNumber:
    case ErrorCode::kDuplicateSequenceNumber:
    case ErrorCode::kInvalidProducerEpoch:
    case ErrorCode::kUnknownProducerId:
    case ErrorCode::kInvalidProducerIdMapping:
    case ErrorCode::kInvalidTxnState:
    case ErrorCode::kProducerFenced:
    case ErrorCode::kPolicyViolation:
    case ErrorCode::kTopicDeletionDisabled:
    case ErrorCode::kIllegalGeneration:
    case ErrorCode::kUnknownMemberId:
    case ErrorCode::kRebalanceInProgress:
    case ErrorCode::kNonEmptyGroup:
      return absl::StatusCode::kFailedPrecondition;
    case ErrorCode::kTopicAuthorizationFailed:
    case ErrorCode::kGroupAuthorizationFailed:
    case ErrorCode::kClusterAuthorizationFailed:
    case ErrorCode::kTransactionalIdAuthorizationFailed:
    case ErrorCode::kSaslAuthenticationFailed:
      return absl::StatusCode::kPermissionDenied;
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kUnsupportedCompressionType:
    case ErrorCode::kUnsupportedForMessageFormat:
    case ErrorCode::kUnsupportedSaslMechanism:
    case ErrorCode::kSecurityDisabled:
      return absl::StatusCode::kUnimplemented;
    default:
      return protocol::IsRetriable(code) ? absl::StatusCode::kUnavailable
                                         : absl::StatusCode::kUnknown;
  }
}

namespace {

absl::Status MakeStatus(absl::StatusCode status_code, int16_t wire, absl::string_view name,
                        absl::string_view context, absl::string_view detail) {
  std::string message = absl::StrCat(name, " (", wire, ")");
  if (!context.empty()) absl::StrAppend(&message, ": ", context);
  if (!detail.empty()) absl::StrAppend(&message, ": ", detail);
  absl::Status status(status_code, message);
  status.SetPayload(kKafkaErrorPayloadUrl, absl::Cord(absl::StrCat(wire)));
  return status;
}

}  // namespace

absl::Status KafkaErrorStatus(ErrorCode code, absl::string_view context, absl::string_view detail) {
  if (code == ErrorCode::kNone) return absl::OkStatus();
  return MakeStatus(StatusCodeForKafkaError(code), protocol::ToWire(code),
                    protocol::ErrorCodeName(code), context, detail);
}

absl::Status KafkaErrorStatusFromWire(int16_t code, absl::string_view context,
                                      absl::string_view detail) {
  std::optional<ErrorCode> known = protocol::ErrorCodeFromWire(code);
  if (known.has_value()) return KafkaErrorStatus(*known, context, detail);
  return MakeStatus(absl::StatusCode::kUnknown, code, protocol::ErrorCodeNameFromWire(code),
                    context, detail);
}

std::optional<ErrorCode> KafkaErrorCodeOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  absl::optional<absl::Cord> payload = status.GetPayload(kKafkaErrorPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  int32_t number = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &number)) return std::nullopt;
  if (number < INT16_MIN || number > INT16_MAX) return std::nullopt;
  return protocol::ErrorCodeFromWire(static_cast<int16_t>(number));
}

bool IsRetriableError(const absl::Status& status) {
  if (status.ok()) return false;
  if (std::optional<ErrorCode> code = KafkaErrorCodeOf(status); code.has_value()) {
    return protocol::IsRetriable(*code);
  }
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

bool NeedsMetadataRefresh(const absl::Status& status) {
  std::optional<ErrorCode> code = KafkaErrorCodeOf(status);
  if (!code.has_value()) return false;
  switch (*code) {
    case ErrorCode::kNotLeaderOrFollower:
    case ErrorCode::kUnknownTopicOrPartition:
    case ErrorCode::kLeaderNotAvailable:
    case ErrorCode::kFencedLeaderEpoch:
    case ErrorCode::kUnknownLeaderEpoch:
    case ErrorCode::kNetworkException:
    case ErrorCode::kReplicaNotAvailable:
    case ErrorCode::kKafkaStorageError:
    case ErrorCode::kNotController:
      return true;
    default:
      return false;
  }
}

}  // namespace runnel::client
