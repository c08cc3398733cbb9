#include "broker/server/list_offsets_handler.h"

#include <utility>
#include <vector>

#include "broker/server/error_mapping.h"
#include "broker/server/handler_support.h"
#include "broker/storage/record_batch.h"

namespace runnel::server {

using protocol::ErrorCode;
using protocol::ListOffsetsRequest;
using protocol::ListOffsetsResponse;
using protocol::ToWire;

namespace {

struct Found {
  int64_t offset = -1;
  int64_t timestamp = -1;
};

// The first record at or after `target_ms` below the high watermark. OffsetForTimestamp finds the
// first batch whose max timestamp reaches the target; the record inside it is found by decoding
// the batch, as Kafka does. A batch that cannot be decoded answers with its base offset and max
// timestamp.
absl::StatusOr<Found> FindByTimestamp(const storage::PartitionLog& log, int64_t target_ms,
                                      int64_t high_watermark) {
  absl::StatusOr<int64_t> offset = log.OffsetForTimestamp(target_ms);
  if (absl::IsNotFound(offset.status())) return Found{};
  if (!offset.ok()) return offset.status();
  if (*offset >= high_watermark) return Found{};
  absl::StatusOr<std::string> bytes =
      log.Read(*offset, 1, high_watermark, /*allow_oversized_first=*/true);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<storage::BatchHeader> header = storage::ParseBatchHeader(*bytes);
  if (!header.ok() || header->total_bytes() > bytes->size()) return Found{*offset, -1};
  const absl::string_view batch = absl::string_view(*bytes).substr(0, header->total_bytes());
  if (header->log_append_time()) {
    return Found{std::max(*offset, header->base_offset), header->max_timestamp};
  }
  absl::StatusOr<std::vector<storage::Record>> records = storage::DecodeRecords(batch);
  if (records.ok()) {
    for (const storage::Record& record : *records) {
      const int64_t record_offset = header->base_offset + record.offset_delta;
      const int64_t timestamp = header->base_timestamp + record.timestamp_delta;
      if (record_offset >= *offset && timestamp >= target_ms) return Found{record_offset, timestamp};
    }
  }
  return Found{std::max(*offset, header->base_offset), header->max_timestamp};
}

}  // namespace

ErrorCode CheckLeaderEpoch(int32_t current_leader_epoch, int32_t leader_epoch) {
  if (current_leader_epoch < 0 || current_leader_epoch == leader_epoch) return ErrorCode::kNone;
  return current_leader_epoch < leader_epoch ? ErrorCode::kFencedLeaderEpoch
                                             : ErrorCode::kUnknownLeaderEpoch;
}

ListOffsetsResponse HandleListOffsets(int16_t version, const ListOffsetsRequest& request,
                                      const TopicManager& topics) {
  ListOffsetsResponse response;
  const MetadataImage image = topics.image();
  response.topics.reserve(request.topics.size());
  for (const ListOffsetsRequest::Topic& topic : request.topics) {
    ListOffsetsResponse::Topic& topic_out = response.topics.emplace_back();
    topic_out.name = topic.name;
    for (const ListOffsetsRequest::Partition& partition : topic.partitions) {
      ListOffsetsResponse::Partition& out = topic_out.partitions.emplace_back();
      out.partition_index = partition.partition_index;
      const PartitionInfo* info = image.FindPartition(topic.name, partition.partition_index);
      storage::PartitionLog* log = topics.Find(topic.name, partition.partition_index);
      if (info == nullptr || log == nullptr) {
        out.error_code = ToWire(ErrorCode::kUnknownTopicOrPartition);
        continue;
      }
      if (ErrorCode epoch = CheckLeaderEpoch(partition.current_leader_epoch, info->leader_epoch);
          epoch != ErrorCode::kNone) {
        out.error_code = ToWire(epoch);
        continue;
      }
      if (std::optional<ErrorCode> failed = ServableError(*log); failed.has_value()) {
        out.error_code = ToWire(*failed);
        continue;
      }
      out.leader_epoch = info->leader_epoch;
      const int64_t high_watermark = HighWatermark(*log);
      Found found;
      if (partition.timestamp == protocol::kListOffsetsEarliestTimestamp) {
        found.offset = log->log_start_offset();
      } else if (partition.timestamp == protocol::kListOffsetsLatestTimestamp) {
        found.offset = high_watermark;
      } else {
        absl::StatusOr<Found> by_time = FindByTimestamp(*log, partition.timestamp, high_watermark);
        if (!by_time.ok()) {
          out.error_code = ToKafkaErrorWire(by_time.status(), StatusOrigin::kRead);
          continue;
        }
        found = *by_time;
      }
      out.offset = found.offset;
      out.timestamp = found.timestamp;
      if (version == 0 && found.offset >= 0 && partition.max_num_offsets > 0) {
        out.old_style_offsets.push_back(found.offset);
      }
    }
  }
  return response;
}

}  // namespace runnel::server
