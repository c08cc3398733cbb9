#include "broker/client/consumer.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/client/kafka_error.h"

namespace runnel::client {

using protocol::ErrorCode;

namespace {

constexpr int64_t kUsPerMs = 1000;
// Extra time the connection waits for an answer beyond what the request lets the broker wait.
constexpr int64_t kResponseGraceMs = 2'000;

}  // namespace

struct Consumer::ListOffsetsOperation {
  // Partitions still unanswered, with the timestamp to look up.
  std::map<TopicPartition, int64_t> remaining;
  ListOffsetsResult results;
  int64_t deadline_us = 0;
  int attempts = 0;
  // Requests of the current round still unanswered.
  int outstanding = 0;
  absl::Status last_error;
  absl::Status fatal;
  Callback<ListOffsetsResult> done;
};

absl::StatusOr<std::unique_ptr<Consumer>> Consumer::Create(Env& env, ConsumerOptions options) {
  if (absl::Status valid = ValidateClientOptions(options.client); !valid.ok()) return valid;
  auto invalid = [](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  if (options.fetch_max_wait_ms < 0) return invalid("fetch_max_wait_ms", "must not be negative");
  if (options.fetch_min_bytes < 0) return invalid("fetch_min_bytes", "must not be negative");
  if (options.fetch_max_bytes <= 0) return invalid("fetch_max_bytes", "must be positive");
  if (options.partition_fetch_bytes_max <= 0) {
    return invalid("partition_fetch_bytes_max", "must be positive");
  }
  if (options.default_api_timeout_ms <= 0) {
    return invalid("default_api_timeout_ms", "must be positive");
  }
  if (!options.on_records) return invalid("on_records", "is required");
  return std::unique_ptr<Consumer>(new Consumer(env, std::move(options)));
}

Consumer::Consumer(Env& env, ConsumerOptions options)
    : env_(env),
      options_(std::move(options)),
      metadata_(env, options_.client),
      alive_(std::make_shared<Consumer*>(this)) {
  std::weak_ptr<Consumer*> alive = alive_;
  metadata_.set_on_update([alive] {
    if (alive.expired()) return;
    Consumer* self = *alive.lock();
    self->ScheduleWork(self->env_.clock().MonotonicNowUs());
  });
}

Consumer::~Consumer() {
  alive_.reset();
  if (work_timer_ != kNoTimer) env_.clock().CancelTimer(work_timer_);
}

void Consumer::SetResetPolicy(PartitionState& state) {
  state.position.reset();
  switch (options_.auto_offset_reset) {
    case OffsetReset::kEarliest:
      state.pending_reset = Reset::kEarliest;
      break;
    case OffsetReset::kLatest:
      state.pending_reset = Reset::kLatest;
      break;
    case OffsetReset::kNone:
      state.pending_reset = Reset::kNone;
      state.stalled = true;
      break;
  }
}

absl::Status Consumer::Assign(std::vector<TopicPartition> partitions) {
  if (partitions.size() > ConsumerOptions::kAssignedPartitionsMax) {
    return absl::InvalidArgumentError(absl::StrCat("cannot assign ", partitions.size(),
                                                   " partitions (kAssignedPartitionsMax is ",
                                                   ConsumerOptions::kAssignedPartitionsMax, ")"));
  }
  std::map<TopicPartition, PartitionState> assigned;
  for (const TopicPartition& partition : partitions) {
    if (partition.topic.empty() || partition.partition < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot assign partition ", partition.ToString()));
    }
    if (assigned.contains(partition)) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition ", partition.ToString(), " is assigned twice"));
    }
    assigned[partition];
  }
  for (const TopicPartition& partition : partitions) {
    if (absl::Status tracked = metadata_.AddTopic(partition.topic); !tracked.ok()) return tracked;
  }
  std::vector<TopicPartition> without_position;
  for (auto& [partition, state] : assigned) {
    auto existing = assigned_.find(partition);
    if (existing != assigned_.end()) {
      state = existing->second;
      continue;
    }
    SetResetPolicy(state);
    if (state.stalled) without_position.push_back(partition);
  }
  assigned_ = std::move(assigned);
  for (const TopicPartition& partition : without_position) {
    pending_errors_.emplace_back(
        partition, absl::FailedPreconditionError(absl::StrCat(
                       "partition ", partition.ToString(),
                       " has no position and auto_offset_reset is none: Seek first")));
  }
  ScheduleWork(env_.clock().MonotonicNowUs());
  return absl::OkStatus();
}

absl::Status Consumer::Seek(const TopicPartition& partition, int64_t offset) {
  auto it = assigned_.find(partition);
  if (it == assigned_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("partition ", partition.ToString(), " is not assigned"));
  }
  if (offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot seek to offset ", offset));
  }
  PartitionState& state = it->second;
  state.position = offset;
  state.pending_reset = Reset::kNone;
  state.stalled = false;
  state.backoff_until_us = 0;
  state.failures = 0;
  ++state.epoch;
  ScheduleWork(env_.clock().MonotonicNowUs());
  return absl::OkStatus();
}

absl::Status Consumer::SeekToBeginning(const std::vector<TopicPartition>& partitions) {
  return SeekByLookup(partitions, Reset::kEarliest);
}

absl::Status Consumer::SeekToEnd(const std::vector<TopicPartition>& partitions) {
  return SeekByLookup(partitions, Reset::kLatest);
}

absl::Status Consumer::SeekByLookup(const std::vector<TopicPartition>& partitions, Reset reset) {
  for (const TopicPartition& partition : partitions) {
    if (!assigned_.contains(partition)) {
      return absl::FailedPreconditionError(
          absl::StrCat("partition ", partition.ToString(), " is not assigned"));
    }
  }
  for (const TopicPartition& partition : partitions) {
    PartitionState& state = assigned_[partition];
    state.position.reset();
    state.pending_reset = reset;
    state.stalled = false;
    state.backoff_until_us = 0;
    ++state.epoch;
  }
  ScheduleWork(env_.clock().MonotonicNowUs());
  return absl::OkStatus();
}

std::optional<int64_t> Consumer::Position(const TopicPartition& partition) const {
  auto it = assigned_.find(partition);
  if (it == assigned_.end()) return std::nullopt;
  return it->second.position;
}

std::optional<int64_t> Consumer::HighWatermark(const TopicPartition& partition) const {
  auto it = assigned_.find(partition);
  if (it == assigned_.end() || it->second.high_watermark < 0) return std::nullopt;
  return it->second.high_watermark;
}

std::vector<TopicPartition> Consumer::assignment() const {
  std::vector<TopicPartition> partitions;
  for (const auto& [partition, state] : assigned_) partitions.push_back(partition);
  return partitions;
}

void Consumer::ScheduleWork(int64_t at_us) {
  if (work_timer_ != kNoTimer) {
    if (work_at_us_ <= at_us) return;
    env_.clock().CancelTimer(work_timer_);
  }
  work_at_us_ = at_us;
  std::weak_ptr<Consumer*> alive = alive_;
  work_timer_ = env_.clock().ScheduleAfter(at_us - env_.clock().MonotonicNowUs(), [alive] {
    if (alive.expired()) return;
    Consumer* self = *alive.lock();
    self->work_timer_ = kNoTimer;
    self->Work();
  });
}

void Consumer::Work() {
  const int64_t now_us = env_.clock().MonotonicNowUs();
  int64_t wake_us = std::numeric_limits<int64_t>::max();
  StartResets(now_us, &wake_us);
  StartFetches(now_us, &wake_us);
  if (wake_us != std::numeric_limits<int64_t>::max()) ScheduleWork(std::max(wake_us, now_us));
  FlushErrors();
}

void Consumer::FlushErrors() {
  std::vector<std::pair<TopicPartition, absl::Status>> errors = std::move(pending_errors_);
  pending_errors_.clear();
  std::weak_ptr<Consumer*> alive = alive_;
  for (auto& [partition, error] : errors) {
    if (alive.expired()) return;
    env_.Log(LogLevel::kDebug,
             absl::StrCat("client: consumer error on ", partition.ToString(), ": ",
                          error.message()));
    if (options_.on_error) options_.on_error(partition, error);
  }
}

void Consumer::Backoff(PartitionState& state) {
  state.backoff_until_us =
      env_.clock().MonotonicNowUs() +
      BackoffMs(state.failures++, options_.client.retry_backoff_ms,
                options_.client.retry_backoff_ms_max, env_.random()) *
          kUsPerMs;
  ScheduleWork(state.backoff_until_us);
}

void Consumer::OnPartitionError(const TopicPartition& partition, PartitionState& state,
                                const absl::Status& error, bool report) {
  Backoff(state);
  if (NeedsMetadataRefresh(error)) metadata_.RequestUpdate();
  if (report) pending_errors_.emplace_back(partition, error);
}

void Consumer::StartResets(int64_t now_us, int64_t* wake_us) {
  std::map<TopicPartition, int64_t> timestamps;
  std::map<TopicPartition, uint64_t> epochs;
  for (auto& [partition, state] : assigned_) {
    if (state.pending_reset == Reset::kNone || state.reset_in_flight) continue;
    if (now_us < state.backoff_until_us) {
      *wake_us = std::min(*wake_us, state.backoff_until_us);
      continue;
    }
    timestamps[partition] = state.pending_reset == Reset::kEarliest
                                ? protocol::kListOffsetsEarliestTimestamp
                                : protocol::kListOffsetsLatestTimestamp;
    epochs[partition] = state.epoch;
    state.reset_in_flight = true;
  }
  if (timestamps.empty()) return;
  std::weak_ptr<Consumer*> alive = alive_;
  RunListOffsets(std::move(timestamps), [alive, epochs = std::move(epochs)](
                                            absl::StatusOr<ListOffsetsResult> result) {
    if (alive.expired()) return;
    Consumer* self = *alive.lock();
    for (const auto& [partition, epoch] : epochs) {
      auto it = self->assigned_.find(partition);
      if (it == self->assigned_.end()) continue;
      PartitionState& state = it->second;
      state.reset_in_flight = false;
      if (state.epoch != epoch || state.pending_reset == Reset::kNone) continue;
      if (!result.ok()) {
        self->OnPartitionError(partition, state, result.status(),
                               !IsRetriableError(result.status()));
        continue;
      }
      auto found = result->find(partition);
      if (found == result->end() || !found->second.has_value()) {
        self->OnPartitionError(
            partition, state,
            KafkaErrorStatus(ErrorCode::kOffsetNotAvailable,
                             absl::StrCat("resetting the position of ", partition.ToString())),
            false);
        continue;
      }
      state.position = found->second->offset;
      state.pending_reset = Reset::kNone;
      state.failures = 0;
      ++state.epoch;
      ++self->stats_.offset_resets;
    }
    self->ScheduleWork(self->env_.clock().MonotonicNowUs());
    self->FlushErrors();
  });
}

void Consumer::StartFetches(int64_t now_us, int64_t* wake_us) {
  std::map<int32_t, std::vector<TopicPartition>> by_leader;
  for (auto& [partition, state] : assigned_) {
    if (!state.position.has_value() || state.stalled || state.fetch_in_flight ||
        state.reset_in_flight || state.pending_reset != Reset::kNone) {
      continue;
    }
    if (now_us < state.backoff_until_us) {
      *wake_us = std::min(*wake_us, state.backoff_until_us);
      continue;
    }
    std::optional<int32_t> leader = metadata_.LeaderFor(partition);
    if (!leader.has_value()) {
      // Work runs again after the update.
      metadata_.RequestUpdate();
      continue;
    }
    if (fetching_nodes_.contains(*leader)) continue;
    by_leader[*leader].push_back(partition);
  }
  std::weak_ptr<Consumer*> alive = alive_;
  for (auto& [leader, partitions] : by_leader) {
    BrokerConnection* connection = metadata_.ConnectionToNode(leader);
    if (connection == nullptr) continue;
    protocol::FetchRequest request;
    request.replica_id = -1;
    request.max_wait_ms = options_.fetch_max_wait_ms;
    request.min_bytes = options_.fetch_min_bytes;
    request.max_bytes = options_.fetch_max_bytes;
    request.isolation_level = 0;
    // No fetch session: every fetch is a full one.
    request.session_id = 0;
    request.session_epoch = -1;
    std::map<TopicPartition, std::pair<int64_t, uint64_t>> sent;
    for (const TopicPartition& partition : partitions) {
      PartitionState& state = assigned_[partition];
      state.fetch_in_flight = true;
      sent[partition] = {*state.position, state.epoch};
      if (request.topics.empty() || request.topics.back().topic != partition.topic) {
        request.topics.push_back({partition.topic, {}});
      }
      protocol::FetchRequest::Partition entry;
      entry.partition = partition.partition;
      entry.fetch_offset = *state.position;
      entry.log_start_offset = -1;
      entry.partition_max_bytes = options_.partition_fetch_bytes_max;
      request.topics.back().partitions.push_back(entry);
    }
    fetching_nodes_.insert(leader);
    ++stats_.fetches_sent;
    connection->Send(
        std::move(request),
        [alive, leader, sent = std::move(sent)](absl::StatusOr<ApiResponse> response) mutable {
          if (!alive.expired()) {
            (*alive.lock())->HandleFetch(leader, std::move(sent), std::move(response));
          }
        },
        RequestOptions{.timeout_ms = options_.client.request_timeout_ms +
                                     options_.fetch_max_wait_ms + kResponseGraceMs});
  }
}

void Consumer::HandleFetch(int32_t leader,
                           std::map<TopicPartition, std::pair<int64_t, uint64_t>> sent,
                           absl::StatusOr<ApiResponse> response) {
  fetching_nodes_.erase(leader);
  absl::Status request_error = response.status();
  std::map<TopicPartition, const protocol::FetchResponse::Partition*> answers;
  absl::StatusOr<protocol::FetchResponse> fetch;
  if (request_error.ok()) {
    fetch = TakeResponse<protocol::FetchResponse>(*std::move(response));
    if (!fetch.ok()) {
      request_error = fetch.status();
    } else if (fetch->error_code != 0) {
      request_error = KafkaErrorStatusFromWire(fetch->error_code, "fetch");
    } else {
      for (const auto& topic : fetch->responses) {
        for (const auto& partition : topic.partitions) {
          answers[TopicPartition{topic.topic, partition.partition_index}] = &partition;
        }
      }
    }
  }
  if (!request_error.ok()) ++stats_.fetch_failures;
  std::vector<FetchedRecords> deliveries;
  for (const auto& [partition, sent_at] : sent) {
    auto it = assigned_.find(partition);
    if (it == assigned_.end()) continue;
    PartitionState& state = it->second;
    state.fetch_in_flight = false;
    if (state.epoch != sent_at.second || state.position != sent_at.first) {
      ++stats_.stale_answers_dropped;
      continue;
    }
    if (!request_error.ok()) {
      OnPartitionError(partition, state, request_error, !IsRetriableError(request_error));
      continue;
    }
    auto answer = answers.find(partition);
    if (answer == answers.end()) {
      // Not answered: fetched again after a backoff, so a broker that keeps omitting it is not
      // asked in a tight loop.
      OnPartitionError(partition, state,
                       KafkaErrorStatus(ErrorCode::kUnknownServerError,
                                        absl::StrCat("fetching ", partition.ToString()),
                                        "the answer does not mention the partition"),
                       false);
      continue;
    }
    const protocol::FetchResponse::Partition& result = *answer->second;
    if (result.error_code == protocol::ToWire(ErrorCode::kOffsetOutOfRange)) {
      absl::Status error = KafkaErrorStatus(
          ErrorCode::kOffsetOutOfRange, absl::StrCat("fetching ", partition.ToString()),
          absl::StrCat("offset ", sent_at.first, " is outside the log"));
      ++state.epoch;
      SetResetPolicy(state);
      if (state.stalled) pending_errors_.emplace_back(partition, error);
      continue;
    }
    if (result.error_code != 0) {
      absl::Status error = KafkaErrorStatusFromWire(
          result.error_code, absl::StrCat("fetching ", partition.ToString()));
      OnPartitionError(partition, state, error, !IsRetriableError(error));
      continue;
    }
    absl::StatusOr<FetchedRecords> records = Decode(partition, state, result);
    if (!records.ok()) {
      OnPartitionError(partition, state, records.status(), true);
      continue;
    }
    const bool moved = records->high_watermark != state.high_watermark;
    state.high_watermark = records->high_watermark;
    state.log_start_offset = records->log_start_offset;
    state.position = records->next_offset;
    state.failures = 0;
    if (!records->records.empty() || moved) deliveries.push_back(*std::move(records));
  }
  ScheduleWork(env_.clock().MonotonicNowUs());
  std::weak_ptr<Consumer*> alive = alive_;
  for (FetchedRecords& delivery : deliveries) {
    if (alive.expired()) return;
    stats_.records_delivered += delivery.records.size();
    options_.on_records(std::move(delivery));
  }
  if (!alive.expired()) FlushErrors();
}

absl::StatusOr<FetchedRecords> Consumer::Decode(const TopicPartition& partition,
                                                const PartitionState& state,
                                                const protocol::FetchResponse::Partition& answer) {
  FetchedRecords fetched;
  fetched.partition = partition;
  fetched.high_watermark = answer.high_watermark;
  fetched.log_start_offset = answer.log_start_offset;
  int64_t position = *state.position;
  if (answer.records.has_value() && !answer.records->empty()) {
    // A trailing partial batch (cut by the byte limits) is dropped and fetched again.
    absl::StatusOr<std::vector<absl::string_view>> batches = storage::SplitBatches(*answer.records);
    if (!batches.ok()) {
      return KafkaErrorStatus(ErrorCode::kCorruptMessage,
                              absl::StrCat("fetching ", partition.ToString()),
                              batches.status().message());
    }
    storage::BatchValidationOptions validation;
    validation.check_records = false;
    for (absl::string_view batch : *batches) {
      const absl::Status valid = storage::ValidateBatch(batch, validation);
      absl::StatusOr<storage::BatchHeader> header =
          valid.ok() ? storage::ParseBatchHeader(batch) : absl::StatusOr<storage::BatchHeader>(valid);
      if (!header.ok()) {
        return KafkaErrorStatus(ErrorCode::kCorruptMessage,
                                absl::StrCat("fetching ", partition.ToString()),
                                header.status().message());
      }
      if (header->last_offset() < position) continue;
      if (header->control()) {
        position = header->last_offset() + 1;
        continue;
      }
      absl::StatusOr<std::vector<storage::Record>> records =
          storage::DecodeRecords(batch, ConsumerOptions::kDecompressedBatchBytesMax);
      if (!records.ok()) {
        return KafkaErrorStatus(ErrorCode::kCorruptMessage,
                                absl::StrCat("fetching ", partition.ToString(), " at offset ",
                                             header->base_offset),
                                records.status().message());
      }
      for (storage::Record& record : *records) {
        const int64_t offset = header->base_offset + record.offset_delta;
        if (offset < position) continue;
        ConsumerRecord consumed;
        consumed.offset = offset;
        consumed.log_append_time = header->log_append_time();
        consumed.timestamp_ms = consumed.log_append_time
                                    ? header->max_timestamp
                                    : header->base_timestamp + record.timestamp_delta;
        consumed.key = std::move(record.key);
        consumed.value = std::move(record.value);
        consumed.headers = std::move(record.headers);
        fetched.records.push_back(std::move(consumed));
      }
      position = header->last_offset() + 1;
    }
  }
  fetched.next_offset = position;
  return fetched;
}

void Consumer::BeginningOffsets(std::vector<TopicPartition> partitions,
                                Callback<std::map<TopicPartition, int64_t>> done) {
  OffsetsAt(std::move(partitions), protocol::kListOffsetsEarliestTimestamp, std::move(done));
}

void Consumer::EndOffsets(std::vector<TopicPartition> partitions,
                          Callback<std::map<TopicPartition, int64_t>> done) {
  OffsetsAt(std::move(partitions), protocol::kListOffsetsLatestTimestamp, std::move(done));
}

void Consumer::OffsetsAt(std::vector<TopicPartition> partitions, int64_t special_timestamp,
                         Callback<std::map<TopicPartition, int64_t>> done) {
  std::map<TopicPartition, int64_t> timestamps;
  for (TopicPartition& partition : partitions) {
    timestamps[std::move(partition)] = special_timestamp;
  }
  RunListOffsets(std::move(timestamps),
                 [done = std::move(done)](absl::StatusOr<ListOffsetsResult> result) mutable {
                   if (!result.ok()) {
                     done(result.status());
                     return;
                   }
                   std::map<TopicPartition, int64_t> offsets;
                   for (const auto& [partition, found] : *result) {
                     offsets[partition] = found.has_value() ? found->offset : -1;
                   }
                   done(std::move(offsets));
                 });
}

void Consumer::OffsetsForTimes(std::map<TopicPartition, int64_t> timestamps_ms,
                               Callback<ListOffsetsResult> done) {
  for (const auto& [partition, timestamp_ms] : timestamps_ms) {
    if (timestamp_ms < 0) {
      std::weak_ptr<Consumer*> alive = alive_;
      env_.clock().ScheduleAfter(0, [alive, done = std::move(done)]() mutable {
        if (!alive.expired()) done(absl::InvalidArgumentError("timestamps must not be negative"));
      });
      return;
    }
  }
  RunListOffsets(std::move(timestamps_ms), std::move(done));
}

void Consumer::RunListOffsets(std::map<TopicPartition, int64_t> timestamps,
                              Callback<ListOffsetsResult> done) {
  auto operation = std::make_shared<ListOffsetsOperation>();
  operation->remaining = std::move(timestamps);
  operation->deadline_us =
      env_.clock().MonotonicNowUs() + options_.default_api_timeout_ms * kUsPerMs;
  operation->done = std::move(done);
  for (const auto& [partition, timestamp] : operation->remaining) {
    if (absl::Status tracked = metadata_.AddTopic(partition.topic); !tracked.ok()) {
      operation->fatal = tracked;
      break;
    }
  }
  std::weak_ptr<Consumer*> alive = alive_;
  // Never complete inside the caller's call.
  env_.clock().ScheduleAfter(0, [alive, operation] {
    if (alive.expired()) return;
    Consumer* self = *alive.lock();
    if (!operation->fatal.ok() || operation->remaining.empty()) {
      self->FinishListOffsetsRound(operation);
      return;
    }
    self->ListOffsetsRound(operation);
  });
}

void Consumer::ListOffsetsRound(std::shared_ptr<ListOffsetsOperation> operation) {
  ++operation->attempts;
  std::map<int32_t, std::vector<std::pair<TopicPartition, int64_t>>> by_leader;
  bool leaders_missing = false;
  for (const auto& [partition, timestamp] : operation->remaining) {
    std::optional<int32_t> leader = metadata_.LeaderFor(partition);
    if (!leader.has_value() || metadata_.ConnectionToNode(*leader) == nullptr) {
      leaders_missing = true;
      const TopicMetadata* topic = metadata_.FindTopic(partition.topic);
      if (topic != nullptr && topic->error_code != 0) {
        operation->last_error = KafkaErrorStatusFromWire(
            topic->error_code, absl::StrCat("listing offsets of ", partition.ToString()));
      } else if (operation->last_error.ok()) {
        operation->last_error = KafkaErrorStatus(
            ErrorCode::kLeaderNotAvailable,
            absl::StrCat("listing offsets of ", partition.ToString()), "no known leader");
      }
      continue;
    }
    by_leader[*leader].emplace_back(partition, timestamp);
  }
  std::weak_ptr<Consumer*> alive = alive_;
  if (by_leader.empty()) {
    // Nothing to ask yet: wait for fresher metadata, then try again (or give up at the deadline).
    metadata_.AwaitUpdate([alive, operation](const absl::Status&) {
      if (!alive.expired()) (*alive.lock())->FinishListOffsetsRound(operation);
    });
    return;
  }
  if (leaders_missing) metadata_.RequestUpdate();
  operation->outstanding = static_cast<int>(by_leader.size());
  for (auto& [leader, partitions] : by_leader) {
    protocol::ListOffsetsRequest request;
    request.replica_id = -1;
    request.isolation_level = 0;
    for (const auto& [partition, timestamp] : partitions) {
      if (request.topics.empty() || request.topics.back().name != partition.topic) {
        request.topics.push_back({partition.topic, {}});
      }
      protocol::ListOffsetsRequest::Partition entry;
      entry.partition_index = partition.partition;
      entry.timestamp = timestamp;
      entry.max_num_offsets = 1;
      request.topics.back().partitions.push_back(entry);
    }
    metadata_.ConnectionToNode(leader)->Send(
        std::move(request), [alive, operation](absl::StatusOr<ApiResponse> response) {
          if (alive.expired()) return;
          Consumer* self = *alive.lock();
          if (!response.ok()) {
            if (IsRetriableError(response.status())) {
              operation->last_error = response.status();
              if (NeedsMetadataRefresh(response.status())) self->metadata_.RequestUpdate();
            } else {
              operation->fatal = response.status();
            }
          } else {
            const int16_t version = response->api_version;
            absl::StatusOr<protocol::ListOffsetsResponse> answer =
                TakeResponse<protocol::ListOffsetsResponse>(*std::move(response));
            if (!answer.ok()) {
              operation->fatal = answer.status();
            } else {
              for (const auto& topic : answer->topics) {
                for (const auto& partition : topic.partitions) {
                  TopicPartition key{topic.name, partition.partition_index};
                  if (!operation->remaining.contains(key)) continue;
                  absl::Status error = KafkaErrorStatusFromWire(
                      partition.error_code, absl::StrCat("listing offsets of ", key.ToString()));
                  if (!error.ok()) {
                    if (IsRetriableError(error)) {
                      operation->last_error = error;
                      if (NeedsMetadataRefresh(error)) self->metadata_.RequestUpdate();
                    } else {
                      operation->fatal = error;
                    }
                    continue;
                  }
                  int64_t offset = partition.offset;
                  int64_t timestamp = partition.timestamp;
                  if (version == 0) {
                    offset = partition.old_style_offsets.empty() ? -1
                                                                 : partition.old_style_offsets[0];
                    timestamp = -1;
                  }
                  if (offset >= 0) {
                    operation->results[key] = OffsetAndTimestamp{offset, timestamp};
                  } else {
                    operation->results[key] = std::nullopt;
                  }
                  operation->remaining.erase(key);
                }
              }
            }
          }
          if (--operation->outstanding == 0) self->FinishListOffsetsRound(operation);
        });
  }
}

void Consumer::FinishListOffsetsRound(std::shared_ptr<ListOffsetsOperation> operation) {
  if (!operation->fatal.ok()) {
    operation->done(operation->fatal);
    return;
  }
  if (operation->remaining.empty()) {
    operation->done(std::move(operation->results));
    return;
  }
  const int64_t now_us = env_.clock().MonotonicNowUs();
  const int64_t backoff_us = BackoffMs(operation->attempts - 1, options_.client.retry_backoff_ms,
                                       options_.client.retry_backoff_ms_max, env_.random()) *
                             kUsPerMs;
  if (now_us + backoff_us >= operation->deadline_us) {
    operation->done(absl::DeadlineExceededError(absl::StrCat(
        "listing offsets: no answer for ", operation->remaining.size(), " partitions within ",
        options_.default_api_timeout_ms, " ms (default_api_timeout_ms); last error: ",
        operation->last_error.ok() ? "none" : operation->last_error.message())));
    return;
  }
  std::weak_ptr<Consumer*> alive = alive_;
  env_.clock().ScheduleAfter(backoff_us, [alive, operation] {
    if (!alive.expired()) (*alive.lock())->ListOffsetsRound(operation);
  });
}

}  // namespace runnel::client
