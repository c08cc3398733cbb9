// Consumer: reads records from manually assigned partitions (no consumer groups yet), like Kafka's
// consumer with assign(), fully asynchronous over the Env.
//
// Contract:
// - Records are delivered through ConsumerOptions::on_records, on the event loop, in offset order
//   per partition: one call per partition per fetch answer that returned records or moved the
//   partition's high watermark. Control batches are skipped. The callback may call any method,
//   including Seek and Assign.
// - Position: the offset of the next record to deliver, per partition. It advances only past
//   records that were delivered (or batches that were skipped), and only from an answer to a fetch
//   that started at the current position; answers to fetches sent before a Seek or Assign are
//   dropped. So no record is delivered twice or skipped, whatever fetches fail, time out or race
//   with reconnects: after any failure the fetch is simply repeated from the same position.
// - A partition without a position (newly assigned, or after OFFSET_OUT_OF_RANGE) gets one from
//   ListOffsets according to auto_offset_reset: kEarliest (the log start), kLatest (the high
//   watermark), kNone (on_error reports OFFSET_OUT_OF_RANGE or a missing position, and the
//   partition stays idle until Seek).
// - Fetches: at most one in flight per broker, carrying every assigned partition that broker leads
//   and that has a position, with fetch_max_wait_ms / fetch_min_bytes (long poll),
//   fetch_max_bytes and partition_fetch_bytes_max. Retriable errors (NOT_LEADER_OR_FOLLOWER,
//   UNKNOWN_TOPIC_OR_PARTITION, disconnects, timeouts, ...) back the partition off with
//   exponential backoff and refresh metadata when useful; other errors go to on_error and back off
//   too.
// - The high watermark is the last one a fetch answer reported for the partition.
// - BeginningOffsets, EndOffsets and OffsetsForTimes work on any partitions (assigned or not),
//   retrying retriable errors until default_api_timeout_ms.
// - Destroying the consumer runs no callback afterwards.
#ifndef RUNNEL_BROKER_CLIENT_CONSUMER_H_
#define RUNNEL_BROKER_CLIENT_CONSUMER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/client/cluster_metadata.h"
#include "broker/env/env.h"
#include "broker/storage/record_batch.h"

namespace runnel::client {

// Kafka's auto.offset.reset.
enum class OffsetReset { kEarliest, kLatest, kNone };

struct ConsumerRecord {
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  // The timestamp is the broker's append time rather than the producer's.
  bool log_append_time = false;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<storage::RecordHeader> headers;
};

struct FetchedRecords {
  TopicPartition partition;
  std::vector<ConsumerRecord> records;
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  // The position after these records.
  int64_t next_offset = 0;
};

struct OffsetAndTimestamp {
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
};

struct ConsumerOptions {
  static constexpr int32_t kFetchMaxWaitMsDefault = 500;                 // fetch.max.wait.ms
  static constexpr int32_t kFetchMinBytesDefault = 1;                    // fetch.min.bytes
  static constexpr int32_t kFetchMaxBytesDefault = 50 << 20;             // fetch.max.bytes
  static constexpr int32_t kPartitionFetchBytesMaxDefault = 1 << 20;     // max.partition.fetch.bytes
  static constexpr int64_t kDefaultApiTimeoutMsDefault = 60'000;         // default.api.timeout.ms
  // The most partitions one consumer may be assigned.
  static constexpr size_t kAssignedPartitionsMax = 10'000;
  // Bound on the records one batch may decompress to.
  static constexpr size_t kDecompressedBatchBytesMax = storage::kBatchBytesMax;

  ClientOptions client;
  int32_t fetch_max_wait_ms = kFetchMaxWaitMsDefault;
  int32_t fetch_min_bytes = kFetchMinBytesDefault;
  int32_t fetch_max_bytes = kFetchMaxBytesDefault;
  int32_t partition_fetch_bytes_max = kPartitionFetchBytesMaxDefault;
  OffsetReset auto_offset_reset = OffsetReset::kLatest;
  int64_t default_api_timeout_ms = kDefaultApiTimeoutMsDefault;
  // Receives every delivery (see the contract). Required.
  absl::AnyInvocable<void(FetchedRecords records)> on_records;
  // Receives errors the consumer cannot resolve by retrying. Optional.
  absl::AnyInvocable<void(const TopicPartition& partition, const absl::Status& error)> on_error;
};

struct ConsumerStats {
  uint64_t fetches_sent = 0;
  uint64_t fetch_failures = 0;
  uint64_t records_delivered = 0;
  uint64_t offset_resets = 0;
  uint64_t stale_answers_dropped = 0;
};

class Consumer {
 public:
  template <typename T>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

  // kInvalidArgument for invalid options (the message names the field).
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(Env& env, ConsumerOptions options);
  ~Consumer();

  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Replaces the assignment. Partitions that stay keep their positions; new ones start without a
  // position (auto_offset_reset applies unless Seek comes first). kInvalidArgument for a
  // duplicate, a negative partition or more than kAssignedPartitionsMax partitions.
  absl::Status Assign(std::vector<TopicPartition> partitions);
  // Sets the position of an assigned partition (kFailedPrecondition when it is not assigned,
  // kInvalidArgument for a negative offset). The next fetch starts there; an offset outside the
  // log then resets as auto_offset_reset says.
  absl::Status Seek(const TopicPartition& partition, int64_t offset);
  absl::Status SeekToBeginning(const std::vector<TopicPartition>& partitions);
  absl::Status SeekToEnd(const std::vector<TopicPartition>& partitions);

  std::optional<int64_t> Position(const TopicPartition& partition) const;
  std::optional<int64_t> HighWatermark(const TopicPartition& partition) const;
  std::vector<TopicPartition> assignment() const;

  // The log start offset of each partition.
  void BeginningOffsets(std::vector<TopicPartition> partitions,
                        Callback<std::map<TopicPartition, int64_t>> done);
  // The high watermark (Kafka's "end offset" for read_uncommitted) of each partition.
  void EndOffsets(std::vector<TopicPartition> partitions,
                  Callback<std::map<TopicPartition, int64_t>> done);
  // Per partition, the first offset whose record timestamp is at or after the given time, with
  // that record's timestamp; nullopt when no such record exists.
  void OffsetsForTimes(std::map<TopicPartition, int64_t> timestamps_ms,
                       Callback<std::map<TopicPartition, std::optional<OffsetAndTimestamp>>> done);

  const ConsumerStats& stats() const { return stats_; }
  ClusterMetadata& metadata() { return metadata_; }

 private:
  enum class Reset { kNone, kEarliest, kLatest };
  // BeginningOffsets and EndOffsets: ListOffsets of every partition at `special_timestamp`
  // (earliest or latest), -1 where the broker found none.
  void OffsetsAt(std::vector<TopicPartition> partitions, int64_t special_timestamp,
                 Callback<std::map<TopicPartition, int64_t>> done);
  // SeekToBeginning and SeekToEnd: every partition must be assigned (else nothing changes); each
  // forgets its position and looks one up by `reset` before it fetches again.
  absl::Status SeekByLookup(const std::vector<TopicPartition>& partitions, Reset reset);
  struct PartitionState {
    std::optional<int64_t> position;
    // A position to look up (set by SeekToBeginning/End or by auto_offset_reset).
    Reset pending_reset = Reset::kNone;
    bool reset_in_flight = false;
    bool fetch_in_flight = false;
    // Bumped by every Seek, reset and Assign: answers to older requests are dropped.
    uint64_t epoch = 0;
    // No fetch or reset before this time (after an error).
    int64_t backoff_until_us = 0;
    int failures = 0;
    // kNone policy ran out of positions: idle until Seek.
    bool stalled = false;
    int64_t high_watermark = -1;
    int64_t log_start_offset = -1;
  };
  struct ListOffsetsOperation;
  using ListOffsetsResult = std::map<TopicPartition, std::optional<OffsetAndTimestamp>>;

  Consumer(Env& env, ConsumerOptions options);

  // Starts what can start: position lookups and fetches.
  void ScheduleWork(int64_t at_us);
  void Work();
  void StartResets(int64_t now_us, int64_t* wake_us);
  void StartFetches(int64_t now_us, int64_t* wake_us);
  void HandleFetch(int32_t leader, std::map<TopicPartition, std::pair<int64_t, uint64_t>> sent,
                   absl::StatusOr<ApiResponse> response);
  // Decodes one partition's answer from the partition's position: the records at or after it, and
  // the position after them. kCorruptMessage (CORRUPT_MESSAGE) for a batch that fails its checks.
  absl::StatusOr<FetchedRecords> Decode(const TopicPartition& partition,
                                        const PartitionState& state,
                                        const protocol::FetchResponse::Partition& answer);
  // Backs the partition off; refreshes metadata when the error suggests it; queues the error
  // for on_error when `report`.
  void OnPartitionError(const TopicPartition& partition, PartitionState& state,
                        const absl::Status& error, bool report);
  void Backoff(PartitionState& state);
  // Runs on_error for the queued errors (never from inside a public call).
  void FlushErrors();
  // Drops the position and sets the reset auto_offset_reset asks for (stalled for kNone).
  void SetResetPolicy(PartitionState& state);

  void RunListOffsets(std::map<TopicPartition, int64_t> timestamps,
                      Callback<ListOffsetsResult> done);
  void ListOffsetsRound(std::shared_ptr<ListOffsetsOperation> operation);
  void FinishListOffsetsRound(std::shared_ptr<ListOffsetsOperation> operation);

  Env& env_;
  ConsumerOptions options_;
  ClusterMetadata metadata_;
  std::map<TopicPartition, PartitionState> assigned_;
  std::set<int32_t> fetching_nodes_;
  std::vector<std::pair<TopicPartition, absl::Status>> pending_errors_;
  TimerId work_timer_ = kNoTimer;
  int64_t work_at_us_ = 0;
  ConsumerStats stats_;
  std::shared_ptr<Consumer*> alive_;
};

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_CONSUMER_H_
