// The history checker: what Kafka promises, checked against a run's history (model/history.h).
//
// The checker builds, per partition, the order "offset -> (key, value)" from every acknowledged
// send and every polled record, and reports Jepsen's Kafka anomalies (../shared/KAFKA-FACTS.md,
// section 5), each under its name:
// - inconsistent-offsets: one offset of a partition held two different records (as sent with an
//   acknowledgement or as read).
// - duplicate: one value at two offsets. Only for values sent by idempotent producers
//   (CheckerOptions::idempotent_processes): a plain producer may write a retried batch twice.
// - lost-write: an acknowledged value is not at its acknowledged offset although a consumer read
//   over that offset (its run of reads, from where it started or last sought, covered the offset).
// - unseen: an acknowledged value that no consumer read by the end of the history (only with
//   CheckerOptions::final_reads, when the run guarantees that consumers read up to the end). A
//   value reported as lost-write is not also reported unseen.
// - aborted-read: a value whose send completed fail (it certainly did not happen) was read.
// - phantom-read: a record was read that no send invoked (its value is unknown), or with another
//   key or in another topic than it was sent with.
// - poll-skip / nonmonotonic-poll: between two successive polls of one partition by one consumer
//   process incarnation, the later poll started past an offset known to exist (acknowledged or read
//   by anyone) after the earlier one's last (skip), or at or before that last offset (going back or
//   re-reading). An assign entry of the process, or a seek of the partition, starts afresh: the
//   next poll is not compared with earlier ones. Offsets may have gaps (compaction, control
//   records), so a skip is measured against the offsets known to exist, not raw numbers.
// - int-poll-skip / int-nonmonotonic-poll: the same between consecutive records of one poll.
// - nonmonotonic-send: one producer process incarnation's acknowledged sends to one partition got
//   offsets that do not increase in the order the sends were invoked (only for
//   CheckerOptions::ordered_send_processes).
// Sends without a completion, and info completions, are indeterminate: they may appear or not.
// The checker runs in O(n log n) over the history and uses ordered containers only, so its report
// is the same for the same history.
#ifndef RUNNEL_MODEL_KAFKA_CHECKER_H_
#define RUNNEL_MODEL_KAFKA_CHECKER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/history.h"

namespace runnel::model {

// One anomaly: what was found, where and when it became visible.
struct Anomaly {
  std::string name;    // "lost-write", ...
  std::string detail;  // in words: processes, partition, offsets, values, history indexes
  int64_t time_us = 0;
  std::string process;           // the process whose operation showed it (may be empty)
  TopicPartitionRef partition;   // empty topic when none applies
  int64_t offset = -1;
  int64_t index = -1;            // the history entry that showed it, or -1
  friend bool operator==(const Anomaly&, const Anomaly&) = default;
};

struct CheckerOptions {
  std::set<std::string> idempotent_processes;
  std::set<std::string> ordered_send_processes;
  bool final_reads = false;
  // Anomaly names not to report.
  std::set<std::string> skip;
};

struct CheckReport {
  // The most anomalies kept; more are only counted (anomalies_not_kept).
  static constexpr size_t kAnomaliesKeptMax = 1'000;

  // Sorted by time, then name, then detail.
  std::vector<Anomaly> anomalies;
  uint64_t anomalies_not_kept = 0;
  std::map<std::string, uint64_t> counts;  // by name, kept or not
  uint64_t sends_ok = 0;
  uint64_t sends_failed = 0;
  uint64_t sends_indeterminate = 0;  // info completions and sends never completed
  uint64_t polls = 0;
  uint64_t records_read = 0;
  uint64_t offsets_observed = 0;  // distinct (partition, offset) pairs read or acknowledged
  uint64_t commits_ok = 0;
  uint64_t commits_failed = 0;
};

CheckReport CheckHistory(const std::vector<HistoryEntry>& entries, const CheckerOptions& options);

}  // namespace runnel::model

#endif  // RUNNEL_MODEL_KAFKA_CHECKER_H_
