// Invariants checked while a run goes, after every simulator event, rather than from the history at
// the end, so that a violation is reported at the moment it happens (and the timeline can mark it):
// - hw-decreased: a partition's high watermark, as the broker holding it exposes it, never goes
//   below the highest value it had before (across crashes and restarts: the high watermark is
//   the durable end, which a restart may not take back). Consumers' views are not fed here: a
//   fetch response computed earlier may arrive after the broker's value moved on, so a lagging
//   view is not a decrease.
// - committed-data-changed: data read at an offset (below the high watermark, so committed) never
//   changes: a later read of the same offset must return the same key and value.
// - leader-conflict: one partition leader epoch has one leader (for when replication exists).
// Each observation costs O(log n) (a committed record: O(1) once its partition is found).
#ifndef RUNNEL_MODEL_ONLINE_CHECKER_H_
#define RUNNEL_MODEL_ONLINE_CHECKER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "model/history.h"
#include "model/kafka_checker.h"

namespace runnel::model {

class OnlineChecker {
 public:
  // Anomalies kept at most; more are counted in anomalies_not_kept().
  static constexpr size_t kAnomaliesKeptMax = 1'000;

  void ObserveHighWatermark(int64_t time_us, absl::string_view observer,
                            const TopicPartitionRef& partition, int64_t high_watermark);
  void ObserveCommittedRecord(int64_t time_us, absl::string_view observer,
                              const TopicPartitionRef& partition, int64_t offset,
                              const std::optional<std::string>& key,
                              const std::optional<std::string>& value);
  // The same for every record of one poll of `partition`.
  void ObserveCommittedRecords(int64_t time_us, absl::string_view observer,
                               const TopicPartitionRef& partition,
                               const std::vector<PolledRecord>& records);
  void ObserveLeader(int64_t time_us, const TopicPartitionRef& partition, int32_t leader_epoch,
                     int32_t leader_node);

  const std::vector<Anomaly>& anomalies() const { return anomalies_; }
  uint64_t anomalies_not_kept() const { return anomalies_not_kept_; }

 private:
  struct Record {
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::string observer;
  };
  void Report(Anomaly anomaly);

  std::map<TopicPartitionRef, std::pair<int64_t, std::string>> high_watermarks_;
  using PartitionRecords = absl::flat_hash_map<int64_t, Record>;  // by offset; lookups only
  void ObserveIn(PartitionRecords& records, int64_t time_us, absl::string_view observer,
                 const TopicPartitionRef& partition, int64_t offset,
                 const std::optional<std::string>& key, const std::optional<std::string>& value);

  std::map<TopicPartitionRef, PartitionRecords> records_;
  std::map<std::pair<TopicPartitionRef, int32_t>, int32_t> leaders_;
  std::vector<Anomaly> anomalies_;
  uint64_t anomalies_not_kept_ = 0;
};

}  // namespace runnel::model

#endif  // RUNNEL_MODEL_ONLINE_CHECKER_H_
