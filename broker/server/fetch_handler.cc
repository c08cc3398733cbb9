#include "broker/server/fetch_handler.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "broker/server/error_mapping.h"
#include "broker/server/list_offsets_handler.h"

namespace runnel::server {

using protocol::ErrorCode;
using protocol::FetchRequest;
using protocol::FetchResponse;
using protocol::ToWire;

namespace {

// isolation_level 1: read_committed.
constexpr int8_t kReadCommitted = 1;

}  // namespace

FetchHandler::FetchHandler(Env& env, TopicManager& topics, size_t parked_fetches_max)
    : env_(env),
      topics_(topics),
      parked_fetches_max_(parked_fetches_max),
      alive_(std::make_shared<FetchHandler*>(this)) {}

FetchHandler::~FetchHandler() {
  alive_.reset();
  for (auto& [id, parked] : parked_) {
    if (parked.timer != kNoTimer) env_.clock().CancelTimer(parked.timer);
  }
}

FetchHandler::ReadResult FetchHandler::Read(int16_t version, const FetchRequest& request) {
  ReadResult result;
  FetchResponse& response = result.response;
  if (version >= 7 && request.session_id != 0) {
    // No incremental fetch sessions: a client that believes it has one starts over with a full
    // fetch after this error.
    response.error_code = ToWire(ErrorCode::kFetchSessionIdNotFound);
    result.answer_now = true;
    return result;
  }
  const MetadataImage image = topics_.image();
  size_t bytes_left =
      static_cast<size_t>(std::clamp<int64_t>(request.max_bytes, 0, kResponseBytesMax));
  bool first_with_data = true;
  response.responses.reserve(request.topics.size());
  for (const FetchRequest::Topic& topic : request.topics) {
    FetchResponse::Topic& topic_out = response.responses.emplace_back();
    topic_out.topic = topic.topic;
    topic_out.partitions.reserve(topic.partitions.size());
    for (const FetchRequest::Partition& partition : topic.partitions) {
      FetchResponse::Partition& out = topic_out.partitions.emplace_back();
      out.partition_index = partition.partition;
      out.high_watermark = -1;
      out.last_stable_offset = -1;
      out.log_start_offset = -1;
      out.records = std::string();
      if (request.isolation_level == kReadCommitted) {
        out.aborted_transactions.emplace();
      }
      const PartitionInfo* info = image.FindPartition(topic.topic, partition.partition);
      storage::PartitionLog* log = topics_.Find(topic.topic, partition.partition);
      if (info == nullptr || log == nullptr) {
        out.error_code = ToWire(ErrorCode::kUnknownTopicOrPartition);
        result.answer_now = true;
        continue;
      }
      if (ErrorCode epoch = CheckLeaderEpoch(partition.current_leader_epoch, info->leader_epoch);
          epoch != ErrorCode::kNone) {
        out.error_code = ToWire(epoch);
        result.answer_now = true;
        continue;
      }
      if (std::optional<ErrorCode> failed = ServableError(*log); failed.has_value()) {
        out.error_code = ToWire(*failed);
        result.answer_now = true;
        continue;
      }
      const int64_t high_watermark = HighWatermark(*log);
      out.high_watermark = high_watermark;
      out.last_stable_offset = high_watermark;
      out.log_start_offset = log->log_start_offset();
      const int64_t offset = partition.fetch_offset;
      if (offset < log->log_start_offset() || offset > log->log_end_offset()) {
        out.error_code = ToWire(ErrorCode::kOffsetOutOfRange);
        result.answer_now = true;
        continue;
      }
      if (offset >= high_watermark) continue;
      const size_t partition_bytes_max = std::min<size_t>(
          {static_cast<size_t>(std::max(partition.partition_max_bytes, 0)), bytes_left,
           kPartitionResponseBytesMax});
      absl::StatusOr<std::string> data =
          log->Read(offset, partition_bytes_max, high_watermark, first_with_data);
      if (!data.ok()) {
        out.error_code = ToKafkaErrorWire(data.status(), StatusOrigin::kRead);
        result.answer_now = true;
        env_.Log(absl::IsOutOfRange(data.status()) ? LogLevel::kDebug : LogLevel::kError,
                 absl::StrCat("fetch ", topic.topic, "-", partition.partition, " at ", offset,
                              ": ", data.status().ToString()));
        continue;
      }
      if (!data->empty()) {
        first_with_data = false;
        result.bytes += data->size();
        bytes_left -= std::min(bytes_left, data->size());
      }
      out.records = *std::move(data);
    }
  }
  return result;
}

void FetchHandler::Handle(ConnectionId connection, int16_t version, FetchRequest request,
                          Respond respond) {
  ++stats_.fetches;
  ReadResult result = Read(version, request);
  const bool enough = result.bytes >= static_cast<size_t>(std::max(request.min_bytes, 0));
  if (result.answer_now || enough || request.max_wait_ms <= 0 || request.topics.empty() ||
      parked_.size() >= parked_fetches_max_) {
    stats_.bytes_returned += result.bytes;
    respond(std::move(result.response));
    return;
  }
  Park(connection, version, std::move(request), std::move(respond));
}

void FetchHandler::Park(ConnectionId connection, int16_t version, FetchRequest request,
                        Respond respond) {
  ++stats_.parked;
  const uint64_t id = next_parked_id_++;
  Parked& parked = parked_[id];
  parked.connection = connection;
  parked.version = version;
  parked.respond = std::move(respond);
  for (const FetchRequest::Topic& topic : request.topics) {
    for (const FetchRequest::Partition& partition : topic.partitions) {
      PartitionKey key{topic.topic, partition.partition};
      if (watchers_[key].insert(id).second) parked.watched.push_back(std::move(key));
    }
  }
  const int64_t wait_us = ClientWaitUs(request.max_wait_ms);
  parked.request = std::move(request);
  by_connection_[connection].insert(id);
  std::weak_ptr<FetchHandler*> alive = alive_;
  parked.timer = env_.clock().ScheduleAfter(wait_us, [alive, id] {
    if (alive.expired()) return;
    FetchHandler* self = *alive.lock();
    auto it = self->parked_.find(id);
    if (it == self->parked_.end()) return;
    it->second.timer = kNoTimer;
    self->Retry(id, /*timed_out=*/true);
  });
  // Records already appended but not yet durable wake the fetch when they become durable. The
  // keys are copied: a watch's callback never runs inside ArmDurabilityWatch with success, but
  // nothing here relies on `parked` staying put.
  const std::vector<PartitionKey> watched = parked.watched;
  for (const PartitionKey& key : watched) ArmDurabilityWatch(key);
}

FetchHandler::Parked FetchHandler::Unpark(uint64_t id) {
  auto it = parked_.find(id);
  Parked parked = std::move(it->second);
  parked_.erase(it);
  if (parked.timer != kNoTimer) env_.clock().CancelTimer(parked.timer);
  parked.timer = kNoTimer;
  for (const PartitionKey& key : parked.watched) {
    auto watchers = watchers_.find(key);
    if (watchers == watchers_.end()) continue;
    watchers->second.erase(id);
    if (watchers->second.empty()) watchers_.erase(watchers);
  }
  if (auto fetches = by_connection_.find(parked.connection); fetches != by_connection_.end()) {
    fetches->second.erase(id);
    if (fetches->second.empty()) by_connection_.erase(fetches);
  }
  return parked;
}

void FetchHandler::Retry(uint64_t id, bool timed_out) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  ReadResult result = Read(it->second.version, it->second.request);
  const bool enough =
      result.bytes >= static_cast<size_t>(std::max(it->second.request.min_bytes, 0));
  if (!timed_out && !enough && !result.answer_now) return;
  if (timed_out) {
    ++stats_.timed_out;
  } else {
    ++stats_.woken_by_data;
  }
  stats_.bytes_returned += result.bytes;
  // Unparked before answering: the answer may close the connection, which calls back into
  // ForgetConnection.
  Parked parked = Unpark(id);
  parked.respond(std::move(result.response));
}

void FetchHandler::WakeWatchers(const PartitionKey& key) {
  auto it = watchers_.find(key);
  if (it == watchers_.end()) return;
  // Copied: each retry may unpark fetches and so change the index.
  const std::set<uint64_t> ids = it->second;
  for (uint64_t id : ids) Retry(id, /*timed_out=*/false);
}

void FetchHandler::OnAppend(absl::string_view topic, int32_t partition) {
  if (watchers_.empty()) return;
  PartitionKey key{std::string(topic), partition};
  if (!watchers_.contains(key)) return;
  storage::PartitionLog* log = topics_.Find(topic, partition);
  if (log == nullptr) return;
  if (log->config().flush_policy == storage::FlushPolicy::kNever) {
    WakeWatchers(key);
  } else {
    ArmDurabilityWatch(key);
  }
}

void FetchHandler::ArmDurabilityWatch(const PartitionKey& key) {
  if (durability_watches_.contains(key)) return;  // re-armed when it fires
  storage::PartitionLog* log = topics_.Find(key.first, key.second);
  if (log == nullptr || log->config().flush_policy == storage::FlushPolicy::kNever) return;
  const int64_t end_offset = log->log_end_offset();
  if (log->durable_end_offset() >= end_offset) return;
  const uint64_t watch_id = next_watch_id_++;
  // Registered before WhenDurable, whose callback may run inside the call (with an error).
  durability_watches_[key] = DurabilityWatch{watch_id, end_offset};
  std::weak_ptr<FetchHandler*> alive = alive_;
  log->WhenDurable(end_offset, [alive, key, watch_id](const absl::Status& status) {
    if (alive.expired()) return;
    FetchHandler* self = *alive.lock();
    auto it = self->durability_watches_.find(key);
    if (it != self->durability_watches_.end() && it->second.id == watch_id) {
      self->durability_watches_.erase(it);
    }
    // The parked fetches read again, after an error too: Read answers a failed log's partition at
    // once with KAFKA_STORAGE_ERROR. A failed log never becomes durable, so after an error the
    // watch is not armed again (a registration would fail at once, and spin); fetches still
    // parked then wait for their timeout.
    self->WakeWatchers(key);
    if (!status.ok() || alive.expired()) return;
    if (self->watchers_.contains(key)) self->ArmDurabilityWatch(key);
  });
}

void FetchHandler::ForgetConnection(ConnectionId connection) {
  auto it = by_connection_.find(connection);
  if (it == by_connection_.end()) return;
  const std::set<uint64_t> ids = it->second;
  for (uint64_t id : ids) Unpark(id);
}

void FetchHandler::CompleteAll() {
  std::vector<uint64_t> ids;
  ids.reserve(parked_.size());
  for (const auto& [id, parked] : parked_) ids.push_back(id);
  for (uint64_t id : ids) Retry(id, /*timed_out=*/true);
}

}  // namespace runnel::server
