#include "broker/server/producer_state.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace runnel::server {

using protocol::ErrorCode;
using storage::BatchHeader;

int32_t AdvanceSequence(int32_t sequence, int64_t count) {
  // Kafka's sequences wrap from INT32_MAX to 0, never to negative values.
  constexpr int64_t kModulus = int64_t{std::numeric_limits<int32_t>::max()} + 1;
  return static_cast<int32_t>((int64_t{sequence} + count) % kModulus);
}

SequenceCheck PartitionProducerState::Check(const BatchHeader& header) const {
  SequenceCheck check;
  const auto it = producers_.find(header.producer_id);
  if (it == producers_.end()) return check;  // unknown producer: accepted at any sequence
  const Producer& producer = it->second;
  const int32_t first = header.base_sequence;
  const int32_t last = AdvanceSequence(first, header.last_offset_delta);
  if (header.producer_epoch < producer.epoch) {
    check.verdict = SequenceCheck::Verdict::kReject;
    check.error = ErrorCode::kInvalidProducerEpoch;
    check.message = absl::StrCat("producer ", header.producer_id, " epoch ", header.producer_epoch,
                                 " is older than the current epoch ", producer.epoch);
    return check;
  }
  if (header.producer_epoch > producer.epoch) {
    // A re-initialised producer starts its sequences again at 0.
    if (first != 0) {
      check.verdict = SequenceCheck::Verdict::kReject;
      check.error = ErrorCode::kOutOfOrderSequenceNumber;
      check.message =
          absl::StrCat("producer ", header.producer_id, " starts epoch ", header.producer_epoch,
                       " at sequence ", first, " instead of 0");
    }
    return check;
  }
  for (const ProducerBatch& batch : producer.batches) {
    if (batch.first_sequence == first && batch.last_sequence == last) {
      check.verdict = SequenceCheck::Verdict::kDuplicate;
      check.original = batch;
      return check;
    }
  }
  if (!producer.batches.empty()) {
    const int32_t expected = AdvanceSequence(producer.batches.back().last_sequence, 1);
    if (first != expected) {
      check.verdict = SequenceCheck::Verdict::kReject;
      check.error = ErrorCode::kOutOfOrderSequenceNumber;
      check.message = absl::StrCat("producer ", header.producer_id, " sent sequence ", first,
                                   " where ", expected, " was expected");
    }
  }
  return check;
}

void PartitionProducerState::Record(const BatchHeader& header, int64_t base_offset) {
  auto [it, inserted] = producers_.try_emplace(header.producer_id);
  Producer& producer = it->second;
  if (!inserted) by_last_use_.erase(producer.last_use);
  if (inserted || header.producer_epoch != producer.epoch) {
    producer.epoch = header.producer_epoch;
    producer.batches.clear();
  }
  producer.batches.push_back(ProducerBatch{
      .first_sequence = header.base_sequence,
      .last_sequence = AdvanceSequence(header.base_sequence, header.last_offset_delta),
      .base_offset = base_offset,
      .last_offset = base_offset + header.last_offset_delta,
  });
  while (producer.batches.size() > kBatchesRememberedPerProducer) producer.batches.pop_front();
  producer.last_use = ++use_clock_;
  by_last_use_.emplace(producer.last_use, header.producer_id);
  while (producers_.size() > kProducersPerPartitionMax) {
    const auto oldest = by_last_use_.begin();
    producers_.erase(oldest->second);
    by_last_use_.erase(oldest);
  }
  assert(by_last_use_.size() == producers_.size());
}

void PartitionProducerState::RecordStored(absl::string_view batches) {
  while (batches.size() >= storage::kBatchHeaderBytes) {
    absl::StatusOr<BatchHeader> header = storage::ParseBatchHeader(batches);
    if (!header.ok() || header->total_bytes() > batches.size()) return;
    if (header->producer_id >= 0 && header->base_sequence >= 0 && !header->control()) {
      Record(*header, header->base_offset);
    }
    batches.remove_prefix(header->total_bytes());
  }
}

void ProducerStateTable::Prune(const MetadataImage& image) {
  for (auto it = partitions_.begin(); it != partitions_.end();) {
    if (image.FindTopicById(it->first.first) == nullptr) {
      it = partitions_.erase(it);
    } else {
      ++it;
    }
  }
  // Still full: forget the first partitions in key order. Their producers are then unknown and
  // accepted at any sequence, which is the rule for unknown producers anyway.
  while (partitions_.size() >= kPartitionsMax) partitions_.erase(partitions_.begin());
}

PartitionProducerState& ProducerStateTable::For(const MetadataImage& image, const TopicId& topic,
                                                int32_t partition,
                                                const storage::PartitionLog& log) {
  const Key key{topic, partition};
  if (auto it = partitions_.find(key); it != partitions_.end()) return it->second;
  Prune(image);
  ++rebuilds_;
  PartitionProducerState state;
  // Rebuild from the tail, shrinking the window while it holds more bytes than the bound.
  const int64_t end = log.log_end_offset();
  for (int64_t window = kRebuildOffsetsMax; window > 0; window /= 4) {
    PartitionProducerState candidate;
    int64_t offset = std::max(log.log_start_offset(), end - window);
    size_t bytes_read = 0;
    bool complete = true;
    while (offset < end) {
      absl::StatusOr<std::string> bytes =
          log.Read(offset, kRebuildReadBytes, end, /*allow_oversized_first=*/true);
      if (!bytes.ok() || bytes->empty()) break;  // a damaged batch ends the rebuild early
      bytes_read += bytes->size();
      if (bytes_read > kRebuildBytesMax) {
        complete = false;
        break;
      }
      candidate.RecordStored(*bytes);
      // Continue after the last whole batch read.
      absl::string_view rest = *bytes;
      int64_t next = offset;
      while (rest.size() >= storage::kBatchHeaderBytes) {
        absl::StatusOr<BatchHeader> header = storage::ParseBatchHeader(rest);
        if (!header.ok() || header->total_bytes() > rest.size()) break;
        next = header->last_offset() + 1;
        rest.remove_prefix(header->total_bytes());
      }
      if (next <= offset) break;
      offset = next;
    }
    if (complete) {
      state = std::move(candidate);
      break;
    }
  }
  return partitions_.emplace(key, std::move(state)).first->second;
}

}  // namespace runnel::server
