#include "broker/server/produce_handler.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/group/group_settings.h"
#include "broker/server/error_mapping.h"
#include "broker/server/metadata_handler.h"
#include "broker/storage/record_batch.h"

namespace runnel::server {

using protocol::ErrorCode;
using protocol::ProduceRequest;
using protocol::ProduceResponse;
using protocol::ToWire;

namespace {

void SetError(ProduceResponse::Partition& out, ErrorCode code, std::string message) {
  out.error_code = ToWire(code);
  out.base_offset = -1;
  out.log_append_time_ms = -1;
  out.error_message = std::move(message);
}

}  // namespace

// An acks=-1 request waiting for its partitions to become durable.
struct ProduceHandler::Pending {
  ProduceResponse response;
  Respond respond;
  // Partitions still waiting, by position in the response; a sentinel count is held while the
  // waits are being registered, so that callbacks running inside WhenDurable cannot answer early.
  std::vector<std::pair<size_t, size_t>> positions;
  std::vector<bool> finished;
  size_t waiting = 1;
  TimerId timer = kNoTimer;
  bool answered = false;
  Env* env = nullptr;

  void Answer() {
    if (answered) return;
    answered = true;
    if (timer != kNoTimer) env->clock().CancelTimer(timer);
    timer = kNoTimer;
    Respond done = std::move(respond);
    done(std::move(response));
  }
  void Finish(size_t index, const absl::Status& status) {
    if (answered || finished[index]) return;
    finished[index] = true;
    if (!status.ok()) {
      auto [t, p] = positions[index];
      SetError(response.responses[t].partition_responses[p],
               ToKafkaError(status, StatusOrigin::kDurability), std::string(status.message()));
    }
    if (--waiting == 0) Answer();
  }
};

ProduceHandler::ProduceHandler(Env& env, TopicManager& topics,
                               ProducerStateTable& producer_states, FetchHandler& fetches,
                               bool auto_create_topics_enable)
    : env_(env),
      topics_(topics),
      producer_states_(producer_states),
      fetches_(fetches),
      auto_create_topics_enable_(auto_create_topics_enable),
      alive_(std::make_shared<ProduceHandler*>(this)) {}

ProduceHandler::~ProduceHandler() { alive_.reset(); }

storage::PartitionLog* ProduceHandler::ProducePartition(const std::string& topic,
                                                        int32_t partition,
                                                        const std::optional<std::string>& records,
                                                        ProduceResponse::Partition& out,
                                                        int64_t* wait_end_offset) {
  *wait_end_offset = 0;
  // A copy (one reference count): the image stays valid whatever this call starts.
  const MetadataImage image = topics_.image();
  const TopicInfo* topic_info = image.FindTopic(topic);
  if (topic_info == nullptr) {
    const int16_t code = AutoCreateTopic(topics_, topic, auto_create_topics_enable_);
    // While a topic is being created its partitions are unknown; clients retry that code.
    SetError(out,
             code == ToWire(ErrorCode::kInvalidTopicException) ? ErrorCode::kInvalidTopicException
                                                               : ErrorCode::kUnknownTopicOrPartition,
             absl::StrCat("topic '", topic, "' does not exist"));
    return nullptr;
  }
  if (group::IsInternalTopic(topic)) {
    // Only the group coordinator writes there, as in Kafka.
    SetError(out, ErrorCode::kInvalidTopicException,
             absl::StrCat("cannot append to internal topic '", topic, "'"));
    return nullptr;
  }
  storage::PartitionLog* log = topics_.Find(topic, partition);
  if (log == nullptr || partition < 0 || partition >= topic_info->partition_count()) {
    SetError(out, ErrorCode::kUnknownTopicOrPartition,
             absl::StrCat("topic '", topic, "' has no partition ", partition));
    return nullptr;
  }
  if (std::optional<ErrorCode> failed = ServableError(*log); failed.has_value()) {
    // Before the sequence check too: a failed log's producer state is not consulted, and a
    // duplicate is not acknowledged from it.
    SetError(out, *failed,
             absl::StrCat("the log of ", topic, "-", partition, " failed (",
                          log->failure().message(), "); it is offline until the broker restarts"));
    return nullptr;
  }
  out.log_start_offset = log->log_start_offset();
  const absl::string_view batch = records.has_value() ? absl::string_view(*records) : "";
  if (batch.size() > storage::kMagicOffset &&
      batch[storage::kMagicOffset] != storage::kBatchMagic) {
    SetError(out, ErrorCode::kInvalidRecord,
             absl::StrCat("records of magic ", static_cast<int>(batch[storage::kMagicOffset]),
                          ": Produce v3 and up carries only RecordBatch v2 (magic 2)"));
    return nullptr;
  }
  absl::StatusOr<storage::BatchHeader> header = storage::ParseBatchHeader(batch);
  if (!header.ok()) {
    SetError(out, batch.empty() ? ErrorCode::kInvalidRecord : ErrorCode::kCorruptMessage,
             batch.empty() ? "no record batch" : std::string(header.status().message()));
    return nullptr;
  }
  if (batch.size() < header->total_bytes()) {
    SetError(out, ErrorCode::kCorruptMessage,
             absl::StrCat("record batch of ", header->total_bytes(), " bytes is truncated to ",
                          batch.size()));
    return nullptr;
  }
  if (batch.size() > header->total_bytes()) {
    SetError(out, ErrorCode::kInvalidRecord,
             "a partition's records must be exactly one record batch");
    return nullptr;
  }
  if (header->transactional() || header->control()) {
    SetError(out, ErrorCode::kInvalidRecord,
             "transactional and control batches are not supported without transactions");
    return nullptr;
  }
  const PartitionInfo& partition_info = topic_info->partitions[static_cast<size_t>(partition)];

  PartitionProducerState* producer_state = nullptr;
  if (header->producer_id >= 0) {
    if (header->base_sequence < 0) {
      SetError(out, ErrorCode::kInvalidRecord,
               "a batch with a producer id must carry a base sequence");
      return nullptr;
    }
    producer_state = &producer_states_.For(image, topic_info->id, partition, *log);
    const SequenceCheck check = producer_state->Check(*header);
    switch (check.verdict) {
      case SequenceCheck::Verdict::kAppend:
        break;
      case SequenceCheck::Verdict::kDuplicate:
        ++stats_.duplicates;
        out.base_offset = check.original.base_offset;
        if (log->durable_end_offset() <= check.original.last_offset) {
          *wait_end_offset = check.original.last_offset + 1;
        }
        return log;
      case SequenceCheck::Verdict::kReject:
        SetError(out, check.error, check.message);
        return nullptr;
    }
  }

  absl::StatusOr<storage::AppendInfo> info =
      log->AppendAsLeader(batch, partition_info.leader_epoch);
  if (!info.ok()) {
    SetError(out, ToKafkaError(info.status(), StatusOrigin::kAppend),
             std::string(info.status().message()));
    if (!absl::IsInvalidArgument(info.status()) && !absl::IsDataLoss(info.status()) &&
        !absl::IsOutOfRange(info.status())) {
      env_.Log(LogLevel::kWarning, absl::StrCat("produce to ", topic, "-", partition, ": ",
                                                info.status().ToString()));
    }
    return nullptr;
  }
  if (producer_state != nullptr) producer_state->Record(*header, info->base_offset);
  ++stats_.batches_appended;
  stats_.bytes_appended += batch.size();
  out.base_offset = info->base_offset;
  out.log_append_time_ms = info->log_append_time_ms;
  out.log_start_offset = info->log_start_offset;
  *wait_end_offset = info->last_offset + 1;
  fetches_.OnAppend(topic, partition);
  return log;
}

bool ProduceHandler::Handle(int16_t version, ProduceRequest request, Respond respond) {
  static_cast<void>(version);  // every supported version is handled alike; the codec drops fields
  ++stats_.requests;
  auto pending = std::make_shared<Pending>();
  pending->env = &env_;
  ProduceResponse& response = pending->response;
  response.responses.reserve(request.topic_data.size());

  ErrorCode request_error = ErrorCode::kNone;
  std::string request_message;
  if (request.acks != 0 && request.acks != 1 && request.acks != -1) {
    request_error = ErrorCode::kInvalidRequiredAcks;
    request_message = absl::StrCat("acks must be 0, 1 or -1, not ", request.acks);
  } else if (request.transactional_id.has_value()) {
    request_error = ErrorCode::kTransactionalIdAuthorizationFailed;
    request_message = "transactions are not supported";
  }

  bool all_ok = true;
  struct Wait {
    size_t index;
    storage::PartitionLog* log;
    int64_t end_offset;
  };
  std::vector<Wait> waits;
  for (size_t t = 0; t < request.topic_data.size(); ++t) {
    const ProduceRequest::Topic& topic = request.topic_data[t];
    ProduceResponse::Topic& topic_out = response.responses.emplace_back();
    topic_out.name = topic.name;
    topic_out.partition_responses.reserve(topic.partition_data.size());
    for (size_t p = 0; p < topic.partition_data.size(); ++p) {
      const ProduceRequest::Partition& partition = topic.partition_data[p];
      ProduceResponse::Partition& out = topic_out.partition_responses.emplace_back();
      out.index = partition.index;
      if (request_error != ErrorCode::kNone) {
        SetError(out, request_error, request_message);
        all_ok = false;
        continue;
      }
      int64_t wait_end_offset = 0;
      storage::PartitionLog* log =
          ProducePartition(topic.name, partition.index, partition.records, out, &wait_end_offset);
      if (out.error_code != ToWire(ErrorCode::kNone)) {
        all_ok = false;
        ++stats_.errors;
        continue;
      }
      if (request.acks == -1 && wait_end_offset > 0 &&
          log->config().flush_policy != storage::FlushPolicy::kNever) {
        pending->positions.emplace_back(t, p);
        waits.push_back(Wait{pending->positions.size() - 1, log, wait_end_offset});
      }
    }
  }
  if (respond == nullptr) return all_ok;  // acks=0
  pending->respond = std::move(respond);
  if (waits.empty()) {
    pending->Answer();
    return all_ok;
  }
  pending->finished.assign(pending->positions.size(), false);
  pending->waiting += waits.size();
  std::weak_ptr<ProduceHandler*> alive = alive_;
  pending->timer = env_.clock().ScheduleAfter(ClientWaitUs(request.timeout_ms), [pending, alive] {
    pending->timer = kNoTimer;
    if (pending->answered) return;
    if (!alive.expired()) ++(*alive.lock())->stats_.timeouts;
    for (size_t i = 0; i < pending->positions.size(); ++i) {
      if (pending->finished[i]) continue;
      pending->finished[i] = true;
      auto [t, p] = pending->positions[i];
      SetError(pending->response.responses[t].partition_responses[p], ErrorCode::kRequestTimedOut,
               "the records did not become durable within the request's timeout");
    }
    pending->Answer();
  });
  for (const Wait& wait : waits) {
    wait.log->WhenDurable(wait.end_offset, [pending, index = wait.index](const absl::Status& s) {
      pending->Finish(index, s);
    });
  }
  // Drops the sentinel: answers now if every wait already completed.
  if (--pending->waiting == 0) pending->Answer();
  return all_ok;
}

}  // namespace runnel::server
