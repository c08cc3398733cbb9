// Fetch, versions 4-11, with long polling.
//
// Per partition, in request order: whole stored batches from fetch_offset, never past the high
// watermark (handler_support.h), up to partition_max_bytes and what is left of the response's
// max_bytes (at most kResponseBytesMax). As in Kafka, the first batch of the first partition that
// returns data is returned even when it alone exceeds those limits, so a consumer always makes
// progress; other partitions stop before a batch that does not fit. Batches go out exactly as
// stored (the bytes the producer sent, with the offset and leader epoch stamped).
//
// Errors per partition: UNKNOWN_TOPIC_OR_PARTITION; OFFSET_OUT_OF_RANGE when fetch_offset is below
// the log start or past the log end (an offset between the high watermark and the log end is
// valid and returns nothing yet); FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH (v9+);
// KAFKA_STORAGE_ERROR when a stored batch fails its checksum, and for every fetch of a partition
// whose log failed (PartitionLog::failure(); handler_support.h's ServableError), with nothing else
// of it (high watermark, log start and last stable offset -1) until the broker restarts.
//
// Long poll: when the partitions hold fewer than min_bytes and nothing failed, the fetch is parked
// until data arrives (a produce to, or the high watermark advancing on, any of its partitions lets
// it read again; so does one of its partitions' logs failing, which answers it at once) or
// max_wait_ms passes, and is then answered with whatever is there. At most `parked_fetches_max`
// fetches wait at once; beyond that a fetch is answered at once.
//
// Also: last stable offset = high watermark (no transactions); log start offset (v5+); aborted
// transactions null for read_uncommitted and empty for read_committed (which otherwise behaves the
// same); no fetch sessions: the answer's session id is always 0 (so clients keep sending full
// fetches) and a request naming a session gets FETCH_SESSION_ID_NOT_FOUND; preferred read replica
// -1 (v11).
#ifndef RUNNEL_BROKER_SERVER_FETCH_HANDLER_H_
#define RUNNEL_BROKER_SERVER_FETCH_HANDLER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/protocol/messages.h"
#include "broker/server/handler_support.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

struct FetchStats {
  uint64_t fetches = 0;
  uint64_t parked = 0;
  uint64_t woken_by_data = 0;
  uint64_t timed_out = 0;
  uint64_t bytes_returned = 0;
};

class FetchHandler {
 public:
  // The most record bytes one response carries, whatever the request asks, so that a response
  // always fits a connection's send backlog (network.h's kSendBacklogBytesMax).
  static constexpr size_t kResponseBytesMax = size_t{32} << 20;
  // The most record bytes one partition contributes to one response (beyond its oversized first
  // batch), whatever partition_max_bytes asks.
  static constexpr size_t kPartitionResponseBytesMax = size_t{1} << 20;

  FetchHandler(Env& env, TopicManager& topics, size_t parked_fetches_max);
  ~FetchHandler();

  FetchHandler(const FetchHandler&) = delete;
  FetchHandler& operator=(const FetchHandler&) = delete;

  // Answers through `respond`, at once or when the fetch is woken or times out. `connection` lets
  // ForgetConnection drop the fetch if its connection closes first.
  void Handle(ConnectionId connection, int16_t version, protocol::FetchRequest request,
              Respond respond);

  // Records were appended to the partition: parked fetches on it read again once they are visible
  // (at once under flush.policy=never, when they are durable otherwise).
  void OnAppend(absl::string_view topic, int32_t partition);

  // Drops the parked fetches of a closed connection without answering them.
  void ForgetConnection(ConnectionId connection);
  // Answers every parked fetch now with whatever is there (the server is stopping).
  void CompleteAll();

  size_t parked_count() const { return parked_.size(); }
  const FetchStats& stats() const { return stats_; }

 private:
  using PartitionKey = std::pair<std::string, int32_t>;

  struct Parked {
    ConnectionId connection = kNoConnection;
    int16_t version = 0;
    protocol::FetchRequest request;
    Respond respond;
    TimerId timer = kNoTimer;
    std::vector<PartitionKey> watched;
  };

  // A WhenDurable registration that wakes the partition's parked fetches.
  struct DurabilityWatch {
    uint64_t id = 0;
    int64_t end_offset = 0;
  };

  struct ReadResult {
    protocol::FetchResponse response;
    size_t bytes = 0;
    // An error in some partition (or the request): answer at once, as Kafka does.
    bool answer_now = false;
  };

  ReadResult Read(int16_t version, const protocol::FetchRequest& request);
  void Park(ConnectionId connection, int16_t version, protocol::FetchRequest request,
            Respond respond);
  // Reads again for a parked fetch; answers it when it has enough or `timed_out`.
  void Retry(uint64_t id, bool timed_out);
  // Removes a parked fetch from every index and returns it.
  Parked Unpark(uint64_t id);
  void WakeWatchers(const PartitionKey& key);
  // Makes sure a WhenDurable registration exists for the partition's current log end, if records
  // past its high watermark are waiting to become durable.
  void ArmDurabilityWatch(const PartitionKey& key);

  Env& env_;
  TopicManager& topics_;
  const size_t parked_fetches_max_;

  uint64_t next_parked_id_ = 1;
  uint64_t next_watch_id_ = 1;
  std::map<uint64_t, Parked> parked_;
  std::map<PartitionKey, std::set<uint64_t>> watchers_;
  std::map<ConnectionId, std::set<uint64_t>> by_connection_;
  std::map<PartitionKey, DurabilityWatch> durability_watches_;
  FetchStats stats_;
  // Reset by the destructor; timer and durability callbacks hold weak references.
  std::shared_ptr<FetchHandler*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_FETCH_HANDLER_H_
