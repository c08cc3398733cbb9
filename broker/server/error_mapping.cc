#include "broker/server/error_mapping.h"

#include "broker/server/topic_config.h"

namespace runnel::server {

using protocol::ErrorCode;

namespace {

ErrorCode FromTopicRequestError(const absl::Status& status) {
  switch (GetTopicRequestError(status)) {
    case TopicRequestError::kInvalidTopicName:
      return ErrorCode::kInvalidTopicException;
    case TopicRequestError::kInvalidPartitions:
      return ErrorCode::kInvalidPartitions;
    case TopicRequestError::kInvalidReplicationFactor:
      return ErrorCode::kInvalidReplicationFactor;
    case TopicRequestError::kInvalidConfig:
      return ErrorCode::kInvalidConfig;
    case TopicRequestError::kNone:
      break;
  }
  return ErrorCode::kInvalidRequest;
}

// The codes every origin shares; nullopt when the origin decides.
std::optional<ErrorCode> CommonError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return ErrorCode::kNone;
    case absl::StatusCode::kNotFound:
      return ErrorCode::kUnknownTopicOrPartition;
    case absl::StatusCode::kDeadlineExceeded:
      return ErrorCode::kRequestTimedOut;
    default:
      return std::nullopt;
  }
}

}  // namespace

ErrorCode ToKafkaError(const absl::Status& status, StatusOrigin origin) {
  const absl::StatusCode code = status.code();
  if (std::optional<ErrorCode> common = CommonError(code)) return *common;
  switch (origin) {
    case StatusOrigin::kAppend:
    case StatusOrigin::kDurability:
      switch (code) {
        case absl::StatusCode::kInvalidArgument:
          return ErrorCode::kInvalidRecord;
        case absl::StatusCode::kDataLoss:
          return ErrorCode::kCorruptMessage;
        case absl::StatusCode::kOutOfRange:
          return origin == StatusOrigin::kAppend ? ErrorCode::kMessageTooLarge
                                                 : ErrorCode::kKafkaStorageError;
        case absl::StatusCode::kResourceExhausted:
        case absl::StatusCode::kUnavailable:
          return ErrorCode::kKafkaStorageError;
        case absl::StatusCode::kFailedPrecondition:
          return ErrorCode::kNotLeaderOrFollower;
        default:
          break;
      }
      break;
    case StatusOrigin::kRead:
      switch (code) {
        case absl::StatusCode::kOutOfRange:
          return ErrorCode::kOffsetOutOfRange;
        case absl::StatusCode::kDataLoss:
        case absl::StatusCode::kUnavailable:
        case absl::StatusCode::kResourceExhausted:
          return ErrorCode::kKafkaStorageError;
        case absl::StatusCode::kFailedPrecondition:
          return ErrorCode::kNotLeaderOrFollower;
        default:
          break;
      }
      break;
    case StatusOrigin::kTopicAdmin:
      switch (code) {
        case absl::StatusCode::kAlreadyExists:
          return ErrorCode::kTopicAlreadyExists;
        case absl::StatusCode::kInvalidArgument:
          return FromTopicRequestError(status);
        case absl::StatusCode::kResourceExhausted:
          return ErrorCode::kPolicyViolation;
        case absl::StatusCode::kUnavailable:
        case absl::StatusCode::kDataLoss:
          return ErrorCode::kKafkaStorageError;
        case absl::StatusCode::kFailedPrecondition:
          return ErrorCode::kNotController;
        default:
          break;
      }
      break;
    case StatusOrigin::kProducerIds:
      switch (code) {
        case absl::StatusCode::kUnavailable:
        case absl::StatusCode::kResourceExhausted:
          return ErrorCode::kCoordinatorNotAvailable;
        default:
          break;
      }
      break;
  }
  return ErrorCode::kUnknownServerError;
}

int16_t ToKafkaErrorWire(const absl::Status& status, StatusOrigin origin) {
  return protocol::ToWire(ToKafkaError(status, origin));
}

std::optional<std::string> ErrorMessageOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  return std::string(status.message());
}

}  // namespace runnel::server
