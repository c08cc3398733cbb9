#include "model/online_checker.h"

#include "absl/strings/str_cat.h"

namespace runnel::model {

namespace {

std::string Printable(const std::optional<std::string>& bytes) {
  return bytes.has_value() ? absl::StrCat("'", *bytes, "'") : std::string("null");
}

}  // namespace

void OnlineChecker::Report(Anomaly anomaly) {
  if (anomalies_.size() >= kAnomaliesKeptMax) {
    ++anomalies_not_kept_;
    return;
  }
  anomalies_.push_back(std::move(anomaly));
}

void OnlineChecker::ObserveHighWatermark(int64_t time_us, absl::string_view observer,
                                         const TopicPartitionRef& partition,
                                         int64_t high_watermark) {
  auto [highest, fresh] =
      high_watermarks_.try_emplace(partition, high_watermark, std::string(observer));
  if (fresh) return;
  if (high_watermark < highest->second.first) {
    Report(Anomaly{.name = "hw-decreased",
                   .detail = absl::StrCat(partition.topic, "-", partition.partition,
                                          ": the high watermark ", observer, " exposes went to ",
                                          high_watermark, " after ", highest->second.first,
                                          " (seen on ", highest->second.second, ")"),
                   .time_us = time_us,
                   .process = std::string(observer),
                   .partition = partition,
                   .offset = high_watermark});
    // Report the next decrease from the new value, not every event until it is regained.
    highest->second = {high_watermark, std::string(observer)};
    return;
  }
  if (high_watermark > highest->second.first) highest->second = {high_watermark, std::string(observer)};
}

void OnlineChecker::ObserveCommittedRecord(int64_t time_us, absl::string_view observer,
                                           const TopicPartitionRef& partition, int64_t offset,
                                           const std::optional<std::string>& key,
                                           const std::optional<std::string>& value) {
  ObserveIn(records_[partition], time_us, observer, partition, offset, key, value);
}

void OnlineChecker::ObserveCommittedRecords(int64_t time_us, absl::string_view observer,
                                            const TopicPartitionRef& partition,
                                            const std::vector<PolledRecord>& records) {
  if (records.empty()) return;
  PartitionRecords& seen = records_[partition];
  for (const PolledRecord& record : records) {
    ObserveIn(seen, time_us, observer, partition, record.offset, record.key, record.value);
  }
}

void OnlineChecker::ObserveIn(PartitionRecords& records, int64_t time_us,
                              absl::string_view observer, const TopicPartitionRef& partition,
                              int64_t offset, const std::optional<std::string>& key,
                              const std::optional<std::string>& value) {
  auto [record, fresh] = records.try_emplace(offset);
  if (fresh) {
    // Built only for a new offset: most observations are of offsets already seen.
    record->second = Record{key, value, std::string(observer)};
    return;
  }
  if (record->second.key == key && record->second.value == value) return;
  Report(Anomaly{.name = "committed-data-changed",
                 .detail = absl::StrCat(observer, " read key ", Printable(key), " value ",
                                        Printable(value), " at ", partition.topic, "-",
                                        partition.partition, "@", offset, ", where ",
                                        record->second.observer, " had read key ",
                                        Printable(record->second.key), " value ",
                                        Printable(record->second.value)),
                 .time_us = time_us,
                 .process = std::string(observer),
                 .partition = partition,
                 .offset = offset});
  // Later reads are compared with the newest data, so that one change is reported once.
  record->second = Record{key, value, std::string(observer)};
}

void OnlineChecker::ObserveLeader(int64_t time_us, const TopicPartitionRef& partition,
                                  int32_t leader_epoch, int32_t leader_node) {
  auto [leader, fresh] = leaders_.try_emplace({partition, leader_epoch}, leader_node);
  if (fresh || leader->second == leader_node) return;
  Report(Anomaly{.name = "leader-conflict",
                 .detail = absl::StrCat(partition.topic, "-", partition.partition, " epoch ",
                                        leader_epoch, " has leaders ", leader->second, " and ",
                                        leader_node),
                 .time_us = time_us,
                 .partition = partition});
}

}  // namespace runnel::model
