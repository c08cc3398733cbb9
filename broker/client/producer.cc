#include "broker/client/producer.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "broker/client/kafka_error.h"
#include "broker/client/partitioner.h"

namespace runnel::client {

using protocol::ErrorCode;

namespace {

constexpr int64_t kUsPerMs = 1000;
// Extra time the connection waits for a Produce answer beyond the timeout the request gives the
// broker, so that the broker's REQUEST_TIMED_OUT arrives before the client gives up.
constexpr int64_t kResponseGraceMs = 2'000;
// Per-record framing beyond key, value and headers: length, attributes, timestamp and offset
// deltas, and the key, value and header-count varints, each at its widest.
constexpr size_t kRecordOverheadBytes = 5 + 1 + 10 + 5 + 5 + 5 + 5;
constexpr size_t kHeaderOverheadBytes = 5 + 5;
// The next idempotent sequence number after `sequence` and `count` records (wraps like Kafka's).
int32_t NextSequence(int32_t sequence, size_t count) {
  const int64_t next = static_cast<int64_t>(sequence) + static_cast<int64_t>(count);
  return static_cast<int32_t>(next % (int64_t{INT32_MAX} + 1));
}

}  // namespace

size_t Producer::EstimateRecordBytes(const ProducerRecord& record) {
  size_t bytes = kRecordOverheadBytes;
  if (record.key.has_value()) bytes += record.key->size();
  if (record.value.has_value()) bytes += record.value->size();
  for (const storage::RecordHeader& header : record.headers) {
    bytes += kHeaderOverheadBytes + header.key.size() +
             (header.value.has_value() ? header.value->size() : 0);
  }
  return bytes;
}

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(Env& env, ProducerOptions options) {
  if (absl::Status valid = ValidateClientOptions(options.client); !valid.ok()) return valid;
  auto invalid = [](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  if (options.acks != Acks::kNone && options.acks != Acks::kLeader && options.acks != Acks::kAll) {
    return invalid("acks", "must be 0, 1 or -1 (all)");
  }
  if (options.linger_ms < 0) return invalid("linger_ms", "must not be negative");
  if (options.request_bytes_max <= ProducerOptions::kBatchOverheadBytes ||
      options.request_bytes_max > storage::kBatchBytesMax) {
    return invalid("request_bytes_max", "must hold a batch and stay within kBatchBytesMax");
  }
  if (options.batch_bytes_max == 0 || options.batch_bytes_max > options.request_bytes_max) {
    return invalid("batch_bytes_max", "must be positive and at most request_bytes_max");
  }
  if (options.buffer_bytes_max < options.batch_bytes_max) {
    return invalid("buffer_bytes_max", "must be at least batch_bytes_max");
  }
  if (options.retries_max < 0) return invalid("retries_max", "must not be negative");
  if (options.delivery_timeout_ms <= 0) return invalid("delivery_timeout_ms", "must be positive");
  if (static_cast<uint8_t>(options.compression) > static_cast<uint8_t>(storage::Compression::kZstd)) {
    return invalid("compression", "unknown codec");
  }
  if (options.idempotent && options.acks != Acks::kAll) {
    return invalid("idempotent", "requires acks=all, as Kafka's producer does");
  }
  return std::unique_ptr<Producer>(new Producer(env, std::move(options)));
}

Producer::Producer(Env& env, ProducerOptions options)
    : env_(env),
      options_(std::move(options)),
      metadata_(env, options_.client),
      alive_(std::make_shared<Producer*>(this)) {
  std::weak_ptr<Producer*> alive = alive_;
  metadata_.set_on_update([alive] {
    if (!alive.expired()) (*alive.lock())->OnMetadataUpdate();
  });
  if (options_.idempotent) RequestProducerId();
}

Producer::~Producer() {
  alive_.reset();
  if (drain_timer_ != kNoTimer) env_.clock().CancelTimer(drain_timer_);
  if (producer_id_timer_ != kNoTimer) env_.clock().CancelTimer(producer_id_timer_);
}

absl::Status Producer::Send(ProducerRecord record, DeliveryCallback callback) {
  if (closed_) return absl::FailedPreconditionError("the producer is closed");
  if (record.topic.empty()) return absl::InvalidArgumentError("a record needs a topic");
  if (record.partition.has_value() && *record.partition < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("partition ", *record.partition, " of topic ", record.topic,
                     " is negative"));
  }
  const size_t bytes = EstimateRecordBytes(record);
  if (bytes + ProducerOptions::kBatchOverheadBytes > options_.request_bytes_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("a record of about ", bytes, " bytes does not fit a request of ",
                     options_.request_bytes_max, " bytes (request_bytes_max)"));
  }
  if (buffered_bytes_ + bytes > options_.buffer_bytes_max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the producer's buffer is full: ", buffered_bytes_, " bytes of ",
                     options_.buffer_bytes_max, " (buffer_bytes_max) wait for acknowledgement"));
  }
  if (absl::Status tracked = metadata_.AddTopic(record.topic); !tracked.ok()) return tracked;

  const int64_t now_us = env_.clock().MonotonicNowUs();
  QueuedRecord queued;
  queued.partition = record.partition;
  queued.key = std::move(record.key);
  queued.value = std::move(record.value);
  queued.headers = std::move(record.headers);
  queued.timestamp_ms = record.timestamp_ms.value_or(env_.clock().WallNowMs());
  queued.bytes = bytes;
  queued.deadline_us = now_us + options_.delivery_timeout_ms * kUsPerMs;
  queued.callback = std::move(callback);

  std::optional<int32_t> partition_count = metadata_.PartitionCount(record.topic);
  auto waiting = waiting_for_metadata_.find(record.topic);
  const bool others_wait = waiting != waiting_for_metadata_.end() && !waiting->second.empty();
  if (partition_count.has_value() && !others_wait) {
    if (absl::Status appended = Append(record.topic, *partition_count, queued); !appended.ok()) {
      return appended;
    }
  } else {
    waiting_for_metadata_[record.topic].push_back(std::move(queued));
    metadata_.RequestUpdate();
    ScheduleDrain(now_us + options_.delivery_timeout_ms * kUsPerMs);
  }
  buffered_bytes_ += bytes;
  ++records_pending_;
  ++stats_.records_accepted;
  return absl::OkStatus();
}

int32_t Producer::ChoosePartition(const QueuedRecord& record, int32_t partition_count) {
  if (record.partition.has_value()) return *record.partition;
  if (record.key.has_value()) return PartitionForKey(*record.key, partition_count);
  return static_cast<int32_t>(round_robin_++ % static_cast<uint32_t>(partition_count));
}

absl::Status Producer::Append(const std::string& topic, int32_t partition_count,
                              QueuedRecord& record) {
  const int32_t partition = ChoosePartition(record, partition_count);
  if (partition >= partition_count) {
    return absl::InvalidArgumentError(absl::StrCat("partition ", partition, " of topic ", topic,
                                                   " does not exist (the topic has ",
                                                   partition_count, " partitions)"));
  }
  TopicPartition key{topic, partition};
  PartitionQueue& queue = partitions_[key];
  Batch* open = queue.batches.empty() ? nullptr : queue.batches.back().get();
  if (open != nullptr &&
      (open->closed || open->built ||
       open->records.size() >= ProducerOptions::kRecordsPerBatchMax ||
       open->bytes + record.bytes > options_.batch_bytes_max)) {
    if (!open->built) open->closed = true;
    open = nullptr;
  }
  const int64_t now_us = env_.clock().MonotonicNowUs();
  if (open == nullptr) {
    auto batch = std::make_unique<Batch>();
    batch->id = next_batch_id_++;
    batch->partition = key;
    batch->created_us = now_us;
    batch->deadline_us = now_us + options_.delivery_timeout_ms * kUsPerMs;
    open = batch.get();
    queue.batches.push_back(std::move(batch));
  }
  open->bytes += record.bytes;
  open->records.push_back(std::move(record));
  if (open->bytes >= options_.batch_bytes_max ||
      open->records.size() >= ProducerOptions::kRecordsPerBatchMax) {
    open->closed = true;
  }
  ScheduleDrain(open->closed ? now_us : open->created_us + options_.linger_ms * kUsPerMs);
  return absl::OkStatus();
}

void Producer::OnMetadataUpdate() {
  std::vector<Completion> completions;
  for (auto& [topic, records] : waiting_for_metadata_) {
    if (records.empty()) continue;
    std::optional<int32_t> partition_count = metadata_.PartitionCount(topic);
    if (partition_count.has_value()) {
      while (!records.empty()) {
        QueuedRecord record = std::move(records.front());
        records.pop_front();
        if (absl::Status appended = Append(topic, *partition_count, record); !appended.ok()) {
          FailRecord(record, appended, completions);
        }
      }
      continue;
    }
    const TopicMetadata* metadata = metadata_.FindTopic(topic);
    if (metadata == nullptr || metadata->error_code == 0) continue;
    absl::Status error = KafkaErrorStatusFromWire(metadata->error_code,
                                                  absl::StrCat("metadata of topic ", topic));
    if (IsRetriableError(error)) continue;
    while (!records.empty()) {
      FailRecord(records.front(), error, completions);
      records.pop_front();
    }
  }
  ScheduleDrain(env_.clock().MonotonicNowUs());
  RunCompletions(std::move(completions));
}

void Producer::ScheduleDrain(int64_t at_us) {
  if (drain_timer_ != kNoTimer) {
    if (drain_at_us_ <= at_us) return;
    env_.clock().CancelTimer(drain_timer_);
  }
  drain_at_us_ = at_us;
  std::weak_ptr<Producer*> alive = alive_;
  drain_timer_ = env_.clock().ScheduleAfter(at_us - env_.clock().MonotonicNowUs(), [alive] {
    if (alive.expired()) return;
    Producer* self = *alive.lock();
    self->drain_timer_ = kNoTimer;
    self->Drain();
  });
}

void Producer::Drain() {
  const int64_t now_us = env_.clock().MonotonicNowUs();
  int64_t wake_us = std::numeric_limits<int64_t>::max();
  std::vector<Completion> completions;

  // Records still waiting for their topic's metadata expire by their own deadlines, in order.
  for (auto& [topic, records] : waiting_for_metadata_) {
    while (!records.empty() && records.front().deadline_us <= now_us) {
      const TopicMetadata* metadata = metadata_.FindTopic(topic);
      std::string detail =
          metadata != nullptr && metadata->error_code != 0
              ? absl::StrCat("last metadata error ",
                             protocol::ErrorCodeNameFromWire(metadata->error_code))
              : std::string("no answer from the cluster");
      FailRecord(records.front(),
                 absl::DeadlineExceededError(absl::StrCat(
                     "delivery timeout: the partitions of topic ", topic, " are not known (",
                     detail, ")")),
                 completions);
      records.pop_front();
    }
    if (!records.empty()) wake_us = std::min(wake_us, records.front().deadline_us);
  }

  const bool need_producer_id = options_.idempotent && producer_id_ < 0;
  if (need_producer_id) RequestProducerId();
  const int64_t linger_us = options_.linger_ms * kUsPerMs;
  std::map<int32_t, std::vector<Batch*>> by_leader;
  std::map<int32_t, size_t> request_bytes;
  std::vector<std::pair<std::unique_ptr<Batch>, absl::Status>> failed;
  for (auto& [partition, queue] : partitions_) {
    // Batches not in flight expire at their delivery deadline.
    for (auto it = queue.batches.begin(); it != queue.batches.end();) {
      Batch& batch = **it;
      if (!batch.in_flight && batch.deadline_us <= now_us) {
        absl::Status error = absl::DeadlineExceededError(absl::StrCat(
            "delivery timeout of ", options_.delivery_timeout_ms, " ms passed for ",
            partition.ToString(), " after ", batch.attempts, " attempts",
            batch.last_error.ok() ? std::string()
                                  : absl::StrCat("; last error: ", batch.last_error.message())));
        failed.emplace_back(std::move(*it), std::move(error));
        it = queue.batches.erase(it);
        continue;
      }
      if (!batch.in_flight) wake_us = std::min(wake_us, batch.deadline_us);
      ++it;
    }
    if (queue.batches.empty()) continue;
    Batch& front = *queue.batches.front();
    if (front.in_flight) continue;
    const bool ready = front.closed || queue.batches.size() > 1 || flushing_ ||
                       now_us >= front.created_us + linger_us;
    if (!ready) {
      wake_us = std::min(wake_us, front.created_us + linger_us);
      continue;
    }
    if (now_us < front.retry_at_us) {
      wake_us = std::min(wake_us, front.retry_at_us);
      continue;
    }
    // A batch not yet stamped waits for the producer id; a stamped one keeps its old id.
    if (need_producer_id && !front.built) continue;
    std::optional<int32_t> leader = metadata_.LeaderFor(partition);
    if (!leader.has_value()) {
      // Drain runs again after the update.
      metadata_.RequestUpdate();
      continue;
    }
    if (!front.built) {
      if (absl::Status built = Build(queue, front); !built.ok()) {
        std::unique_ptr<Batch> batch = std::move(queue.batches.front());
        queue.batches.pop_front();
        failed.emplace_back(std::move(batch), built);
        wake_us = now_us;
        continue;
      }
    }
    size_t& bytes = request_bytes[*leader];
    if (bytes > 0 && bytes + front.encoded.size() > options_.request_bytes_max) {
      // The request to this leader is full; the batch goes in the next one.
      wake_us = now_us;
      continue;
    }
    bytes += front.encoded.size();
    by_leader[*leader].push_back(&front);
  }
  for (auto& [leader, batches] : by_leader) SendBatches(leader, std::move(batches));
  for (auto& [batch, error] : failed) FailBatch(std::move(batch), error, completions);
  if (wake_us != std::numeric_limits<int64_t>::max()) ScheduleDrain(std::max(wake_us, now_us));
  RunCompletions(std::move(completions));
}

absl::Status Producer::Build(PartitionQueue& queue, Batch& batch) {
  assert(!batch.records.empty());
  storage::BatchBuildOptions build;
  build.compression = options_.compression;
  build.base_timestamp = batch.records.front().timestamp_ms;
  if (options_.idempotent) {
    if (queue.sequence_producer_id != producer_id_) {
      queue.sequence_producer_id = producer_id_;
      queue.next_sequence = 0;
    }
    build.producer_id = producer_id_;
    build.producer_epoch = producer_epoch_;
    build.base_sequence = queue.next_sequence;
  }
  std::vector<storage::Record> records;
  records.reserve(batch.records.size());
  for (size_t i = 0; i < batch.records.size(); ++i) {
    QueuedRecord& queued = batch.records[i];
    storage::Record record;
    record.timestamp_delta = queued.timestamp_ms - build.base_timestamp;
    record.offset_delta = static_cast<int32_t>(i);
    record.key = std::move(queued.key);
    record.value = std::move(queued.value);
    record.headers = std::move(queued.headers);
    queued.key.reset();
    queued.value.reset();
    queued.headers.clear();
    records.push_back(std::move(record));
  }
  absl::StatusOr<std::string> encoded = storage::BuildBatch(build, records);
  if (!encoded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("building the batch for ",
                                                   batch.partition.ToString(), ": ",
                                                   encoded.status().message()));
  }
  if (options_.idempotent) {
    queue.next_sequence = NextSequence(queue.next_sequence, batch.records.size());
  }
  batch.encoded = *std::move(encoded);
  batch.built = true;
  batch.closed = true;
  batch.producer_id = producer_id_;
  return absl::OkStatus();
}

void Producer::SendBatches(int32_t leader, std::vector<Batch*> batches) {
  BrokerConnection* connection = metadata_.ConnectionToNode(leader);
  assert(connection != nullptr);
  protocol::ProduceRequest request;
  request.acks = static_cast<int16_t>(options_.acks);
  request.timeout_ms = static_cast<int32_t>(
      std::min<int64_t>(options_.client.request_timeout_ms, INT32_MAX));
  std::map<std::string, std::vector<protocol::ProduceRequest::Partition>> by_topic;
  std::vector<std::pair<TopicPartition, uint64_t>> ids;
  for (Batch* batch : batches) {
    by_topic[batch->partition.topic].push_back({batch->partition.partition, batch->encoded});
    ids.emplace_back(batch->partition, batch->id);
    batch->in_flight = true;
    if (batch->sent) {
      ++stats_.batch_retries;
    } else {
      ++stats_.batches_sent;
    }
    batch->sent = true;
  }
  for (auto& [topic, partitions] : by_topic) {
    request.topic_data.push_back({topic, std::move(partitions)});
  }
  ++stats_.requests_sent;
  std::weak_ptr<Producer*> alive = alive_;
  connection->Send(
      std::move(request),
      [alive, ids = std::move(ids)](absl::StatusOr<ApiResponse> response) mutable {
        if (!alive.expired()) (*alive.lock())->HandleResponse(std::move(ids), std::move(response));
      },
      RequestOptions{.timeout_ms = options_.client.request_timeout_ms + kResponseGraceMs,
                     .expect_response = options_.acks != Acks::kNone});
}

Producer::Batch* Producer::FindInFlight(const TopicPartition& partition, uint64_t id) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.batches.empty()) return nullptr;
  Batch* front = it->second.batches.front().get();
  if (front->id != id || !front->in_flight) return nullptr;
  return front;
}

void Producer::HandleResponse(std::vector<std::pair<TopicPartition, uint64_t>> batches,
                              absl::StatusOr<ApiResponse> response) {
  std::vector<Completion> completions;
  if (!response.ok()) {
    for (const auto& [partition, id] : batches) {
      if (FindInFlight(partition, id) != nullptr) {
        OnBatchError(partition, response.status(), completions);
      }
    }
  } else if (!response->answered) {
    // acks=0: handed to the network is all anyone will know.
    for (const auto& [partition, id] : batches) {
      if (FindInFlight(partition, id) != nullptr) {
        CompleteFront(partition, int64_t{-1}, -1, completions);
      }
    }
  } else {
    absl::StatusOr<protocol::ProduceResponse> answer =
        TakeResponse<protocol::ProduceResponse>(*std::move(response));
    std::map<TopicPartition, const protocol::ProduceResponse::Partition*> results;
    if (answer.ok()) {
      for (const auto& topic : answer->responses) {
        for (const auto& partition : topic.partition_responses) {
          results[TopicPartition{topic.name, partition.index}] = &partition;
        }
      }
    }
    for (const auto& [partition, id] : batches) {
      if (FindInFlight(partition, id) == nullptr) continue;
      auto result = results.find(partition);
      if (result == results.end()) {
        OnBatchError(partition,
                     answer.ok() ? KafkaErrorStatus(ErrorCode::kUnknownServerError,
                                                    absl::StrCat("producing to ",
                                                                 partition.ToString()),
                                                    "the answer does not mention the partition")
                                 : answer.status(),
                     completions);
        continue;
      }
      const protocol::ProduceResponse::Partition& outcome = *result->second;
      if (outcome.error_code == protocol::ToWire(ErrorCode::kNone) ||
          outcome.error_code == protocol::ToWire(ErrorCode::kDuplicateSequenceNumber)) {
        CompleteFront(partition, outcome.base_offset, outcome.log_append_time_ms, completions);
        continue;
      }
      OnBatchError(partition,
                   KafkaErrorStatusFromWire(outcome.error_code,
                                            absl::StrCat("producing to ", partition.ToString()),
                                            outcome.error_message.value_or("")),
                   completions);
    }
  }
  ScheduleDrain(env_.clock().MonotonicNowUs());
  RunCompletions(std::move(completions));
}

void Producer::OnBatchError(const TopicPartition& partition, const absl::Status& status,
                            std::vector<Completion>& completions) {
  PartitionQueue& queue = partitions_[partition];
  Batch& batch = *queue.batches.front();
  batch.in_flight = false;
  ++batch.attempts;
  batch.last_error = status;
  if (NeedsMetadataRefresh(status)) metadata_.RequestUpdate();
  const int64_t now_us = env_.clock().MonotonicNowUs();
  if (IsRetriableError(status) && batch.attempts <= options_.retries_max) {
    const int64_t backoff_us =
        BackoffMs(batch.attempts - 1, options_.client.retry_backoff_ms,
                  options_.client.retry_backoff_ms_max, env_.random()) *
        kUsPerMs;
    if (now_us + backoff_us < batch.deadline_us) {
      batch.retry_at_us = now_us + backoff_us;
      return;
    }
  }
  std::unique_ptr<Batch> failed = std::move(queue.batches.front());
  queue.batches.pop_front();
  absl::Status error = status;
  if (IsRetriableError(status)) {
    error = absl::Status(
        batch.attempts > options_.retries_max ? status.code() : absl::StatusCode::kDeadlineExceeded,
        absl::StrCat(batch.attempts > options_.retries_max
                         ? absl::StrCat("gave up after ", batch.attempts,
                                        " attempts (retries_max)")
                         : absl::StrCat("delivery timeout of ", options_.delivery_timeout_ms,
                                        " ms would pass before the next attempt"),
                     "; last error: ", status.message()));
    if (absl::optional<absl::Cord> code = status.GetPayload(kKafkaErrorPayloadUrl)) {
      error.SetPayload(kKafkaErrorPayloadUrl, *code);
    }
  }
  FailBatch(std::move(failed), error, completions);
}

void Producer::CompleteFront(const TopicPartition& partition, absl::StatusOr<int64_t> base_offset,
                             int64_t log_append_time_ms, std::vector<Completion>& completions) {
  PartitionQueue& queue = partitions_[partition];
  std::unique_ptr<Batch> batch = std::move(queue.batches.front());
  queue.batches.pop_front();
  if (!base_offset.ok()) {
    FailBatch(std::move(batch), base_offset.status(), completions);
    return;
  }
  for (size_t i = 0; i < batch->records.size(); ++i) {
    QueuedRecord& record = batch->records[i];
    RecordMetadata metadata;
    metadata.partition = partition;
    metadata.offset = *base_offset < 0 ? -1 : *base_offset + static_cast<int64_t>(i);
    metadata.timestamp_ms = log_append_time_ms >= 0 ? log_append_time_ms : record.timestamp_ms;
    buffered_bytes_ -= record.bytes;
    --records_pending_;
    ++stats_.records_acknowledged;
    completions.emplace_back(std::move(record.callback), metadata);
  }
}

void Producer::FailBatch(std::unique_ptr<Batch> batch, const absl::Status& status,
                         std::vector<Completion>& completions) {
  // The broker may hold the batch or not; a new producer id keeps later sequences valid.
  if (options_.idempotent && batch->sent && batch->producer_id == producer_id_) ResetProducerId();
  for (QueuedRecord& record : batch->records) FailRecord(record, status, completions);
}

void Producer::FailRecord(QueuedRecord& record, const absl::Status& status,
                          std::vector<Completion>& completions) {
  buffered_bytes_ -= record.bytes;
  --records_pending_;
  ++stats_.records_failed;
  completions.emplace_back(std::move(record.callback), status);
}

void Producer::RequestProducerId() {
  if (producer_id_in_flight_ || producer_id_timer_ != kNoTimer || producer_id_ >= 0) return;
  producer_id_in_flight_ = true;
  protocol::InitProducerIdRequest request;
  request.transactional_id = std::nullopt;
  request.transaction_timeout_ms = static_cast<int32_t>(
      std::min<int64_t>(options_.delivery_timeout_ms, INT32_MAX));
  std::weak_ptr<Producer*> alive = alive_;
  metadata_.SendToAny(std::move(request), [alive](absl::StatusOr<ApiResponse> response) {
    if (alive.expired()) return;
    Producer* self = *alive.lock();
    self->producer_id_in_flight_ = false;
    absl::StatusOr<protocol::InitProducerIdResponse> answer =
        TakeResponse<protocol::InitProducerIdResponse>(std::move(response));
    absl::Status status = answer.ok() ? KafkaErrorStatusFromWire(answer->error_code,
                                                                 "obtaining a producer id")
                                      : answer.status();
    if (status.ok()) {
      self->producer_id_ = answer->producer_id;
      self->producer_epoch_ = answer->producer_epoch;
      self->producer_id_failures_ = 0;
      ++self->stats_.producer_ids_obtained;
      self->env_.Log(LogLevel::kDebug,
                     absl::StrCat("client: producer id ", self->producer_id_, " epoch ",
                                  self->producer_epoch_));
      self->ScheduleDrain(self->env_.clock().MonotonicNowUs());
      return;
    }
    self->env_.Log(LogLevel::kDebug, absl::StrCat("client: ", status.message()));
    if (NeedsMetadataRefresh(status)) self->metadata_.RequestUpdate();
    const int64_t backoff_ms =
        BackoffMs(self->producer_id_failures_++, self->options_.client.retry_backoff_ms,
                  self->options_.client.retry_backoff_ms_max, self->env_.random());
    self->producer_id_timer_ = self->env_.clock().ScheduleAfter(backoff_ms * kUsPerMs, [alive] {
      if (alive.expired()) return;
      Producer* producer = *alive.lock();
      producer->producer_id_timer_ = kNoTimer;
      producer->RequestProducerId();
    });
  });
}

void Producer::ResetProducerId() {
  env_.Log(LogLevel::kDebug,
           absl::StrCat("client: a batch of producer id ", producer_id_,
                        " failed with an unknown outcome; taking a new producer id"));
  producer_id_ = -1;
  producer_epoch_ = 0;
  RequestProducerId();
}

void Producer::Flush(absl::AnyInvocable<void()> done) {
  flush_waiters_.push_back(std::move(done));
  flushing_ = true;
  ScheduleDrain(env_.clock().MonotonicNowUs());
}

void Producer::RunCompletions(std::vector<Completion> completions) {
  std::weak_ptr<Producer*> alive = alive_;
  for (Completion& completion : completions) {
    if (alive.expired()) return;
    completion.first(std::move(completion.second));
  }
  if (alive.expired()) return;
  if (records_pending_ == 0 && !flush_waiters_.empty()) {
    flushing_ = false;
    std::vector<absl::AnyInvocable<void()>> waiters = std::move(flush_waiters_);
    flush_waiters_.clear();
    for (auto& waiter : waiters) {
      if (alive.expired()) return;
      waiter();
    }
  }
}

}  // namespace runnel::client
