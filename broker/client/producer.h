// Producer: sends records to partitions, batching them per partition into RecordBatch v2, like
// Kafka's producer, fully asynchronous over the Env.
//
// Contract:
// - Send() either refuses the record at once (returns an error, and the callback never runs) or
//   accepts it, and then the callback runs exactly once, on the event loop and never from inside
//   Send(), with the record's partition and offset (offset -1 under acks=0, which gets no answer)
//   or the error that ended its delivery. Refusals: kInvalidArgument (empty topic, negative or
//   nonexistent partition, a record too large for request_bytes_max), kResourceExhausted (the
//   buffer of unacknowledged records would exceed buffer_bytes_max), kFailedPrecondition (the
//   producer was closed).
// - Partitioning: the record's partition if given, else partitioner.h's rule (murmur2 of the key
//   like Kafka's default partitioner; round-robin for records without a key). A record for a topic
//   whose partition count is not yet known waits for metadata (counted against the buffer and the
//   delivery timeout).
// - Batching: records of one partition are appended to an open batch until it reaches
//   batch_bytes_max (estimated) or kRecordsPerBatchMax records; a batch is sent when full, when
//   linger_ms has passed since it was opened, or at Flush(). One Produce request carries the ready
//   batches of every partition the same broker leads, up to request_bytes_max.
// - Ordering: at most one batch per partition is in flight, and a failed batch is retried before
//   any later batch of its partition is sent, so records of one partition are appended in Send
//   order, retries included. (This holds with and without idempotence; it costs throughput per
//   partition, not correctness.)
// - Retries: a batch that fails with a retriable error (kafka_error.h: NOT_LEADER_OR_FOLLOWER,
//   NETWORK_EXCEPTION, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS, ...) is sent again after an
//   exponential backoff with jitter, at most retries_max times and only while its
//   delivery_timeout_ms (counted from when the batch was opened) has not passed; metadata is
//   refreshed first when the error suggests the leader moved. When the delivery timeout passes, the
//   records fail with kDeadlineExceeded naming the last error. Without idempotence a retried batch
//   may be appended twice (at-least-once); with idempotence the broker recognises the retry by its
//   producer id and sequence numbers and appends it once (KAFKA-FACTS.md section 2).
// - Idempotence (idempotent = true, requires acks=all): the producer asks for a producer id
//   (InitProducerId) before sending, and stamps each batch with the id, epoch and the partition's
//   next sequence number when it is first sent; retries resend the identical bytes. If a sent batch
//   ends in an error (its fate at the broker unknown), the producer takes a new producer id so
//   that later batches do not trip over the gap in sequence numbers.
// - Memory: records count against buffer_bytes_max from Send until their callback has run.
// - Destroying the producer runs no callback afterwards: records still pending are dropped
//   silently. Call Flush() and wait for it first to learn every outcome.
#ifndef RUNNEL_BROKER_CLIENT_PRODUCER_H_
#define RUNNEL_BROKER_CLIENT_PRODUCER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/client/cluster_metadata.h"
#include "broker/env/env.h"
#include "broker/storage/record_batch.h"

namespace runnel::client {

// Kafka's acks setting.
enum class Acks : int16_t {
  kNone = 0,     // no answer at all; records may be lost without the producer knowing
  kLeader = 1,   // the leader appended the batch
  kAll = -1,     // the batch is durable on every in-sync replica (here: synced on the one node)
};

struct ProducerOptions {
  static constexpr int64_t kLingerMsDefault = 5;                          // linger.ms
  static constexpr size_t kBatchBytesMaxDefault = size_t{16} << 10;       // batch.size
  static constexpr size_t kRequestBytesMaxDefault = size_t{1} << 20;      // max.request.size
  static constexpr size_t kBufferBytesMaxDefault = size_t{32} << 20;      // buffer.memory
  static constexpr int64_t kDeliveryTimeoutMsDefault = 120'000;           // delivery.timeout.ms
  // Kafka's default is effectively unbounded (the delivery timeout decides); this bound is far
  // above what the delivery timeout allows with the default backoffs, and keeps a runaway
  // configuration finite.
  static constexpr int32_t kRetriesMaxDefault = 10'000;                   // retries
  // The most records one batch holds, whatever their size.
  static constexpr size_t kRecordsPerBatchMax = 10'000;
  // Batch header plus the request's per-partition framing: what a record may not use of
  // request_bytes_max.
  static constexpr size_t kBatchOverheadBytes = storage::kBatchHeaderBytes + 64;

  ClientOptions client;
  Acks acks = Acks::kAll;
  int64_t linger_ms = kLingerMsDefault;
  size_t batch_bytes_max = kBatchBytesMaxDefault;
  storage::Compression compression = storage::Compression::kNone;
  int32_t retries_max = kRetriesMaxDefault;
  int64_t delivery_timeout_ms = kDeliveryTimeoutMsDefault;
  size_t buffer_bytes_max = kBufferBytesMaxDefault;
  size_t request_bytes_max = kRequestBytesMaxDefault;
  bool idempotent = false;
};

struct ProducerRecord {
  std::string topic;
  // nullopt: chosen by the partitioner.
  std::optional<int32_t> partition;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<storage::RecordHeader> headers;
  // nullopt: the Env's wall clock at Send().
  std::optional<int64_t> timestamp_ms;
};

struct RecordMetadata {
  TopicPartition partition;
  // -1 under acks=0.
  int64_t offset = -1;
  // The record's timestamp, or the broker's append time when the topic uses LogAppendTime.
  int64_t timestamp_ms = -1;
};

using DeliveryCallback = absl::AnyInvocable<void(absl::StatusOr<RecordMetadata> result)>;

struct ProducerStats {
  uint64_t records_accepted = 0;
  uint64_t records_acknowledged = 0;
  uint64_t records_failed = 0;
  uint64_t batches_sent = 0;    // first attempts
  uint64_t batch_retries = 0;   // later attempts
  uint64_t requests_sent = 0;
  uint64_t producer_ids_obtained = 0;
};

class Producer {
 public:
  // kInvalidArgument for invalid options (the message names the field).
  static absl::StatusOr<std::unique_ptr<Producer>> Create(Env& env, ProducerOptions options);
  ~Producer();

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  absl::Status Send(ProducerRecord record, DeliveryCallback callback);

  // Sends every batch now, without waiting for linger_ms, and runs `done` (on a later turn) once no
  // record is pending any more, including records sent after this call.
  void Flush(absl::AnyInvocable<void()> done);

  // Refuses every later Send (kFailedPrecondition). Records already accepted are still delivered.
  void Close() { closed_ = true; }

  // Estimated bytes of accepted records whose callback has not run yet.
  size_t buffered_bytes() const { return buffered_bytes_; }
  size_t records_pending() const { return records_pending_; }
  // The producer id in use (idempotent producers), or -1.
  int64_t producer_id() const { return producer_id_; }
  const ProducerStats& stats() const { return stats_; }
  ClusterMetadata& metadata() { return metadata_; }

  // The bytes a record is counted as in batches and the buffer: an upper bound of its encoding.
  static size_t EstimateRecordBytes(const ProducerRecord& record);

 private:
  struct QueuedRecord {
    std::optional<int32_t> partition;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<storage::RecordHeader> headers;
    int64_t timestamp_ms = 0;
    size_t bytes = 0;
    int64_t deadline_us = 0;
    DeliveryCallback callback;
  };
  struct Batch {
    uint64_t id = 0;
    TopicPartition partition;
    std::vector<QueuedRecord> records;
    size_t bytes = 0;
    int64_t created_us = 0;
    int64_t deadline_us = 0;
    // No more records may join.
    bool closed = false;
    // Encoded once, when first sent; retries resend these bytes.
    bool built = false;
    std::string encoded;
    int64_t producer_id = -1;
    bool in_flight = false;
    bool sent = false;
    int attempts = 0;
    int64_t retry_at_us = 0;
    absl::Status last_error;
  };
  struct PartitionQueue {
    std::deque<std::unique_ptr<Batch>> batches;
    // The producer id that next_sequence counts for; another id starts again at 0.
    int64_t sequence_producer_id = -1;
    int32_t next_sequence = 0;
  };
  using Completion = std::pair<DeliveryCallback, absl::StatusOr<RecordMetadata>>;

  Producer(Env& env, ProducerOptions options);

  // Puts a record whose partition count is known into its partition's open batch. Returns the
  // error for a partition that does not exist.
  absl::Status Append(const std::string& topic, int32_t partition_count, QueuedRecord& record);
  int32_t ChoosePartition(const QueuedRecord& record, int32_t partition_count);
  void OnMetadataUpdate();
  void ScheduleDrain(int64_t at_us);
  // Expires what ran out of time, sends every ready batch, and sets the next wake-up.
  void Drain();
  // Encodes the front batch of `queue`, stamping idempotence fields.
  absl::Status Build(PartitionQueue& queue, Batch& batch);
  void SendBatches(int32_t leader, std::vector<Batch*> batches);
  void HandleResponse(std::vector<std::pair<TopicPartition, uint64_t>> batches,
                      absl::StatusOr<ApiResponse> response);
  // The in-flight batch `id` of `partition`, or nullptr.
  Batch* FindInFlight(const TopicPartition& partition, uint64_t id);
  // A sent batch failed with `status`: retried, or failed for good (appended to `completions`).
  void OnBatchError(const TopicPartition& partition, const absl::Status& status,
                    std::vector<Completion>& completions);
  // Removes the front batch of `partition` and produces its records' outcomes.
  void CompleteFront(const TopicPartition& partition, absl::StatusOr<int64_t> base_offset,
                     int64_t log_append_time_ms, std::vector<Completion>& completions);
  void FailBatch(std::unique_ptr<Batch> batch, const absl::Status& status,
                 std::vector<Completion>& completions);
  void FailRecord(QueuedRecord& record, const absl::Status& status,
                  std::vector<Completion>& completions);
  void RequestProducerId();
  void ResetProducerId();
  // Runs completions in order, stopping if a callback destroyed the producer; then finishes
  // flushes that are done.
  void RunCompletions(std::vector<Completion> completions);

  Env& env_;
  const ProducerOptions options_;
  ClusterMetadata metadata_;
  bool closed_ = false;

  std::map<TopicPartition, PartitionQueue> partitions_;
  // Records of topics whose partition count is not known yet, in Send order per topic.
  std::map<std::string, std::deque<QueuedRecord>> waiting_for_metadata_;
  uint32_t round_robin_ = 0;
  uint64_t next_batch_id_ = 1;
  size_t buffered_bytes_ = 0;
  size_t records_pending_ = 0;

  TimerId drain_timer_ = kNoTimer;
  int64_t drain_at_us_ = 0;

  int64_t producer_id_ = -1;
  int16_t producer_epoch_ = 0;
  bool producer_id_in_flight_ = false;
  int producer_id_failures_ = 0;
  TimerId producer_id_timer_ = kNoTimer;

  bool flushing_ = false;
  std::vector<absl::AnyInvocable<void()>> flush_waiters_;

  ProducerStats stats_;
  std::shared_ptr<Producer*> alive_;
};

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_PRODUCER_H_
