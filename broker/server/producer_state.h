// Idempotent producer state: per partition, what each producer id last appended, so that a retried
// batch is recognised instead of being appended twice.
//
// Kafka's rules, which clients rely on (KAFKA-FACTS.md section 2):
// - A producer has at most 5 requests in flight per partition, so the broker remembers the sequence
//   ranges and offsets of each producer's last kBatchesRememberedPerProducer batches.
// - A batch whose (first sequence, last sequence) equals a remembered one is an exact duplicate:
//   it is not appended, and the answer is NONE with the original batch's base offset, as if the
//   retry had been the first attempt.
// - Otherwise, with the producer's current epoch, the batch must continue the sequence: its first
//   sequence is the last one + 1 (wrapping from INT32_MAX to 0). Anything else is
//   OUT_OF_ORDER_SEQUENCE_NUMBER. A batch with a newer epoch must start at sequence 0 (the producer
//   was re-initialised); an older epoch is INVALID_PRODUCER_EPOCH.
// - A producer id the partition has no state for is accepted at any sequence (Kafka's behaviour
//   since KIP-360), because its state may have been evicted or lost.
//
// After a restart: the state of a partition is rebuilt, when a partition is first used by an
// idempotent produce, from the batches in the log's tail (the last kRebuildOffsetsMax offsets, fewer
// if they hold more than kRebuildBytesMax bytes). So a producer retrying a batch that the previous
// incarnation appended (acknowledged or not) gets the duplicate answer, provided the batch is
// still within that tail; a batch lost in a crash is simply appended again. Producers whose last
// batches lie before the tail are unknown and accepted at any sequence (the rule above).
//
// Not thread-safe; lives on the node's event loop like everything else. Bounded: at most
// kProducersPerPartitionMax producers per partition (the least recently used is forgotten) and at
// most kPartitionsMax partitions' states.
#ifndef RUNNEL_BROKER_SERVER_PRODUCER_STATE_H_
#define RUNNEL_BROKER_SERVER_PRODUCER_STATE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "broker/protocol/error_codes.h"
#include "broker/server/metadata_image.h"
#include "broker/storage/partition_log.h"
#include "broker/storage/record_batch.h"

namespace runnel::server {

// One appended batch of an idempotent producer.
struct ProducerBatch {
  int32_t first_sequence = 0;
  int32_t last_sequence = 0;
  int64_t base_offset = 0;
  int64_t last_offset = 0;
};

// The outcome of checking a batch against a producer's state.
struct SequenceCheck {
  enum class Verdict { kAppend, kDuplicate, kReject };
  Verdict verdict = Verdict::kAppend;
  // kDuplicate: the batch that was appended before.
  ProducerBatch original;
  // kReject: OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH, and why.
  protocol::ErrorCode error = protocol::ErrorCode::kNone;
  std::string message;
};

// The sequence that follows `sequence` after `count` more records, wrapping past INT32_MAX to 0.
int32_t AdvanceSequence(int32_t sequence, int64_t count);

class PartitionProducerState {
 public:
  static constexpr size_t kBatchesRememberedPerProducer = 5;
  static constexpr size_t kProducersPerPartitionMax = 8192;

  // What to do with a batch of an idempotent producer (producer_id >= 0).
  SequenceCheck Check(const storage::BatchHeader& header) const;
  // Records a batch that was appended at `base_offset` (its header's offsets may be unstamped).
  void Record(const storage::BatchHeader& header, int64_t base_offset);
  // Records every idempotent, non-control batch of `batches` (stored batches, in log order).
  void RecordStored(absl::string_view batches);

  size_t producer_count() const { return producers_.size(); }

 private:
  struct Producer {
    int16_t epoch = 0;
    std::deque<ProducerBatch> batches;  // oldest first
    uint64_t last_use = 0;
  };

  std::map<int64_t, Producer> producers_;
  // last_use -> producer id, to forget the least recently used producer at the limit.
  std::map<uint64_t, int64_t> by_last_use_;
  uint64_t use_clock_ = 0;
};

// Every partition's producer state on this node, by topic id and partition.
class ProducerStateTable {
 public:
  static constexpr size_t kPartitionsMax = 20000;
  // The tail read to rebuild a partition's state (see the file comment).
  static constexpr int64_t kRebuildOffsetsMax = 65536;
  static constexpr size_t kRebuildBytesMax = size_t{16} << 20;
  // Bytes per Read() while rebuilding.
  static constexpr size_t kRebuildReadBytes = size_t{1} << 20;

  // The state of the partition, rebuilt from `log`'s tail when first asked for. Forgets the states
  // of topics that `image` no longer holds whenever it creates one.
  PartitionProducerState& For(const MetadataImage& image, const TopicId& topic, int32_t partition,
                              const storage::PartitionLog& log);

  size_t partition_count() const { return partitions_.size(); }
  uint64_t rebuilds() const { return rebuilds_; }

 private:
  using Key = std::pair<TopicId, int32_t>;
  void Prune(const MetadataImage& image);

  std::map<Key, PartitionProducerState> partitions_;
  uint64_t rebuilds_ = 0;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_PRODUCER_STATE_H_
