// What every request handler of the Kafka server shares: how a handler answers, the high watermark
// rule, and the bounds on client-given waits.
#ifndef RUNNEL_BROKER_SERVER_HANDLER_SUPPORT_H_
#define RUNNEL_BROKER_SERVER_HANDLER_SUPPORT_H_

#include <algorithm>
#include <cstdint>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "broker/protocol/error_codes.h"
#include "broker/protocol/messages.h"
#include "broker/storage/partition_log.h"

namespace runnel::server {

// Completes one request with its response body (the response of the request's api). Called at most
// once, at once or later; the server puts the response in the request's place in its connection's
// order. Calling it after the connection closed, or after the server is gone, does nothing.
using Respond = absl::AnyInvocable<void(protocol::ResponseBody body)>;

// The longest wait a client may ask for (produce acks=all timeout, fetch max_wait, admin timeouts);
// longer requests wait this long.
inline constexpr int64_t kClientWaitMsMax = 300'000;

// A client-given wait in ms, clamped to [0, kClientWaitMsMax], in microseconds for a timer.
inline int64_t ClientWaitUs(int64_t wait_ms) {
  return std::clamp<int64_t>(wait_ms, 0, kClientWaitMsMax) * 1000;
}

// The high watermark of a partition on this node: the offset below which consumers may read and
// what ListOffsets "latest" returns. A record is exposed only once it is durable (flush.policy
// always or interval), so a consumer never reads a record that a crash could take back; under
// flush.policy=never the user chose to trust the OS, and records are exposed once appended.
// A failed log (PartitionLog::failure()) has no meaningful high watermark: callers check
// ServableError first.
inline int64_t HighWatermark(const storage::PartitionLog& log) {
  return log.config().flush_policy == storage::FlushPolicy::kNever ? log.log_end_offset()
                                                                    : log.durable_end_offset();
}

// The error to answer for a partition whose log failed (a write or sync error, also during
// recovery), or nullopt when it may be served. Kafka takes such a log's directory offline and
// answers KAFKA_STORAGE_ERROR (retriable) until the broker restarts on a healthy disk. Produce,
// Fetch and ListOffsets answer this error and nothing else of the partition; Metadata shows the
// partition leaderless instead (metadata_handler.h). Whatever samples a partition's high
// watermark from outside the handlers (the simulator's worlds) skips the partitions this refuses.
inline std::optional<protocol::ErrorCode> ServableError(const storage::PartitionLog& log) {
  if (log.failure().ok()) return std::nullopt;
  return protocol::ErrorCode::kKafkaStorageError;
}

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_HANDLER_SUPPORT_H_
