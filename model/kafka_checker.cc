#include "model/kafka_checker.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace runnel::model {

namespace {

// Anomalies collected before sorting; beyond this they are only counted, so that a badly broken
// run of millions of operations cannot exhaust memory.
constexpr size_t kAnomaliesCollectedMax = 100'000;

std::string Printable(const std::optional<std::string>& bytes) {
  return bytes.has_value() ? absl::StrCat("'", *bytes, "'") : std::string("null");
}

std::string Where(const TopicPartitionRef& partition, int64_t offset) {
  return absl::StrCat(partition.topic, "-", partition.partition, "@", offset);
}

// What was seen at one offset first, and by which entry.
struct Seen {
  std::optional<std::string> key;
  std::optional<std::string> value;
  const HistoryEntry* entry = nullptr;
  bool Same(const std::optional<std::string>& other_key,
            const std::optional<std::string>& other_value) const {
    return key == other_key && value == other_value;
  }
};

using ReaderKey = std::tuple<std::string, uint64_t, TopicPartitionRef>;

class Checker {
 public:
  Checker(const std::vector<HistoryEntry>& entries, const CheckerOptions& options)
      : entries_(entries), options_(options) {}

  CheckReport Run() {
    IndexSends();
    BuildLogs();
    CheckReads();
    CheckPollOrder();
    CheckAcknowledged();
    CheckSendOrder();
    CheckDuplicates();
    return Finish();
  }

 private:
  void Report(std::string name, std::string detail, const HistoryEntry* entry,
              const TopicPartitionRef& partition, int64_t offset) {
    if (options_.skip.contains(name)) return;
    ++report_.counts[name];
    if (collected_.size() >= kAnomaliesCollectedMax) {
      ++report_.anomalies_not_kept;
      return;
    }
    Anomaly anomaly;
    anomaly.name = std::move(name);
    anomaly.detail = std::move(detail);
    anomaly.partition = partition;
    anomaly.offset = offset;
    if (entry != nullptr) {
      anomaly.time_us = entry->time_us;
      anomaly.process = entry->process;
      anomaly.index = entry->index;
    }
    collected_.push_back(std::move(anomaly));
  }

  // Pairs every send invocation with its completion, and indexes sends by value.
  void IndexSends() {
    for (const HistoryEntry& entry : entries_) {
      if (entry.function != OpFunction::kSend) continue;
      if (entry.type == OpType::kInvoke) {
        sends_.push_back(&entry);
        if (entry.value.has_value()) send_by_value_.try_emplace(*entry.value, &entry);
        continue;
      }
      if (entry.op >= 0) completions_[entry.op] = &entry;
    }
    for (const HistoryEntry* send : sends_) {
      const HistoryEntry* completion = Completion(*send);
      if (completion == nullptr || completion->type == OpType::kInfo) {
        ++report_.sends_indeterminate;
      } else if (completion->type == OpType::kOk) {
        ++report_.sends_ok;
      } else {
        ++report_.sends_failed;
      }
    }
  }

  const HistoryEntry* Completion(const HistoryEntry& invocation) const {
    auto found = completions_.find(invocation.index);
    return found == completions_.end() ? nullptr : found->second;
  }

  // Records (key, value) at an offset, reporting a second, different record there.
  void Place(const TopicPartitionRef& partition, int64_t offset, const std::optional<std::string>& key,
             const std::optional<std::string>& value, const HistoryEntry& entry) {
    auto [slot, fresh] = log_[partition].try_emplace(offset, Seen{key, value, &entry});
    if (!fresh && !slot->second.Same(key, value) &&
        inconsistent_reported_.insert({partition, offset}).second) {
      Report("inconsistent-offsets",
             absl::StrCat(Where(partition, offset), " held key ", Printable(slot->second.key),
                          " value ", Printable(slot->second.value), " (entry ",
                          slot->second.entry->index, ", ", slot->second.entry->process,
                          ") and key ", Printable(key), " value ", Printable(value), " (entry ",
                          entry.index, ", ", entry.process, ")"),
             &entry, partition, offset);
    }
    if (value.has_value()) positions_[*value].try_emplace({partition, offset}, &entry);
  }

  void CloseRun(const ReaderKey& reader) {
    auto run = runs_.find(reader);
    if (run == runs_.end()) return;
    covered_[std::get<2>(reader)].push_back(run->second);
    runs_.erase(run);
  }

  void CloseRunsOf(const std::string& process, uint64_t incarnation) {
    std::vector<ReaderKey> closing;
    for (auto it = runs_.lower_bound(ReaderKey{process, incarnation, TopicPartitionRef{}});
         it != runs_.end() && std::get<0>(it->first) == process &&
         std::get<1>(it->first) == incarnation;
         ++it) {
      closing.push_back(it->first);
    }
    for (const ReaderKey& reader : closing) CloseRun(reader);
  }

  // The offset order of every partition from acknowledged sends and reads, and the offset ranges
  // each consumer read over.
  void BuildLogs() {
    for (const HistoryEntry& entry : entries_) {
      if (entry.type == OpType::kInvoke) continue;
      switch (entry.function) {
        case OpFunction::kSend: {
          if (entry.type != OpType::kOk || entry.offset < 0 || entry.op < 0) break;
          const HistoryEntry& invocation = entries_[static_cast<size_t>(entry.op)];
          Place(TopicPartitionRef{invocation.topic, entry.partition}, entry.offset,
                invocation.key, invocation.value, entry);
          break;
        }
        case OpFunction::kPoll: {
          ++report_.polls;
          const TopicPartitionRef partition{entry.topic, entry.partition};
          for (const PolledRecord& record : entry.records) {
            ++report_.records_read;
            Place(partition, record.offset, record.key, record.value, entry);
            reads_[partition].try_emplace(record.offset, Seen{record.key, record.value, &entry});
            if (record.value.has_value()) values_read_.insert(*record.value);
          }
          if (entry.records.empty()) break;
          const ReaderKey reader{entry.process, entry.incarnation, partition};
          auto [run, fresh] = runs_.try_emplace(
              reader, std::make_pair(entry.records.front().offset, entry.records.back().offset));
          if (!fresh) {
            run->second.first = std::min(run->second.first, entry.records.front().offset);
            run->second.second = std::max(run->second.second, entry.records.back().offset);
          }
          break;
        }
        case OpFunction::kAssign:
          CloseRunsOf(entry.process, entry.incarnation);
          break;
        case OpFunction::kSeek:
          CloseRun(ReaderKey{entry.process, entry.incarnation,
                             TopicPartitionRef{entry.topic, entry.partition}});
          break;
        case OpFunction::kCommit:
          if (entry.type == OpType::kOk) ++report_.commits_ok;
          if (entry.type == OpType::kFail) ++report_.commits_failed;
          break;
      }
    }
    while (!runs_.empty()) CloseRun(runs_.begin()->first);
    for (auto& [partition, intervals] : covered_) {
      std::sort(intervals.begin(), intervals.end());
      std::vector<std::pair<int64_t, int64_t>> merged;
      for (const auto& interval : intervals) {
        if (!merged.empty() && interval.first <= merged.back().second + 1) {
          merged.back().second = std::max(merged.back().second, interval.second);
        } else {
          merged.push_back(interval);
        }
      }
      intervals = std::move(merged);
    }
    for (const auto& [partition, offsets] : log_) report_.offsets_observed += offsets.size();
  }

  // Whether some consumer's run of reads covered `offset` of `partition`.
  bool Covered(const TopicPartitionRef& partition, int64_t offset) const {
    auto found = covered_.find(partition);
    if (found == covered_.end()) return false;
    const auto& intervals = found->second;
    auto after = std::upper_bound(intervals.begin(), intervals.end(),
                                  std::make_pair(offset, std::numeric_limits<int64_t>::max()));
    if (after == intervals.begin()) return false;
    --after;
    return after->first <= offset && offset <= after->second;
  }

  // The first offset known to exist in `partition` after `offset`, if any.
  std::optional<int64_t> NextKnown(const TopicPartitionRef& partition, int64_t offset) const {
    auto found = log_.find(partition);
    if (found == log_.end()) return std::nullopt;
    auto next = found->second.upper_bound(offset);
    if (next == found->second.end()) return std::nullopt;
    return next->first;
  }

  // phantom-read and aborted-read, for every record read.
  void CheckReads() {
    for (const HistoryEntry& entry : entries_) {
      if (entry.function != OpFunction::kPoll || entry.type != OpType::kOk) continue;
      const TopicPartitionRef partition{entry.topic, entry.partition};
      for (const PolledRecord& record : entry.records) {
        const HistoryEntry* send = nullptr;
        if (record.value.has_value()) {
          auto found = send_by_value_.find(*record.value);
          if (found != send_by_value_.end()) send = found->second;
        }
        if (send == nullptr) {
          Report("phantom-read",
                 absl::StrCat(entry.process, " read value ", Printable(record.value), " at ",
                              Where(partition, record.offset), " that no send invoked"),
                 &entry, partition, record.offset);
          continue;
        }
        if (send->key != record.key || send->topic != partition.topic) {
          Report("phantom-read",
                 absl::StrCat(entry.process, " read ", Printable(record.value), " with key ",
                              Printable(record.key), " at ", Where(partition, record.offset),
                              " but it was sent to ", send->topic, " with key ",
                              Printable(send->key), " (entry ", send->index, ")"),
                 &entry, partition, record.offset);
        }
        const HistoryEntry* completion = Completion(*send);
        if (completion != nullptr && completion->type == OpType::kFail) {
          Report("aborted-read",
                 absl::StrCat(entry.process, " read ", Printable(record.value), " at ",
                              Where(partition, record.offset), " whose send failed (entry ",
                              completion->index, ": ", completion->error, ")"),
                 &entry, partition, record.offset);
        }
      }
    }
  }

  // Compares offset `next` read after `last` by one reader: going back, or skipping a known one.
  void CompareOrder(const HistoryEntry& entry, const TopicPartitionRef& partition, int64_t last,
                    int64_t next, bool internal) {
    const std::string prefix = internal ? "int-" : "";
    if (next <= last) {
      Report(absl::StrCat(prefix, "nonmonotonic-poll"),
             absl::StrCat(entry.process, " read ", Where(partition, next), " after offset ", last,
                          internal ? " in the same poll" : " in its previous poll", " (entry ",
                          entry.index, ")"),
             &entry, partition, next);
      return;
    }
    std::optional<int64_t> between = NextKnown(partition, last);
    if (between.has_value() && *between < next) {
      Report(absl::StrCat(prefix, "poll-skip"),
             absl::StrCat(entry.process, " read ", Where(partition, next), " after offset ", last,
                          internal ? " in the same poll" : " in its previous poll",
                          ", skipping offset ", *between, " (entry ", entry.index, ")"),
             &entry, partition, *between);
    }
  }

  void CheckPollOrder() {
    std::map<ReaderKey, int64_t> last_read;
    for (const HistoryEntry& entry : entries_) {
      if (entry.type == OpType::kInvoke) continue;
      if (entry.function == OpFunction::kAssign) {
        auto it = last_read.lower_bound(ReaderKey{entry.process, entry.incarnation, {}});
        while (it != last_read.end() && std::get<0>(it->first) == entry.process &&
               std::get<1>(it->first) == entry.incarnation) {
          it = last_read.erase(it);
        }
        continue;
      }
      if (entry.function == OpFunction::kSeek) {
        last_read.erase(ReaderKey{entry.process, entry.incarnation,
                                  TopicPartitionRef{entry.topic, entry.partition}});
        continue;
      }
      if (entry.function != OpFunction::kPoll || entry.records.empty()) continue;
      const TopicPartitionRef partition{entry.topic, entry.partition};
      const ReaderKey reader{entry.process, entry.incarnation, partition};
      auto last = last_read.find(reader);
      if (last != last_read.end()) {
        CompareOrder(entry, partition, last->second, entry.records.front().offset, false);
      }
      for (size_t i = 1; i < entry.records.size(); ++i) {
        CompareOrder(entry, partition, entry.records[i - 1].offset, entry.records[i].offset, true);
      }
      last_read[reader] = entry.records.back().offset;
    }
  }

  // lost-write and unseen, for every acknowledged send.
  void CheckAcknowledged() {
    for (const HistoryEntry* send : sends_) {
      const HistoryEntry* completion = Completion(*send);
      if (completion == nullptr || completion->type != OpType::kOk || completion->offset < 0) {
        continue;
      }
      const TopicPartitionRef partition{send->topic, completion->partition};
      const int64_t offset = completion->offset;
      const Seen* read = nullptr;
      auto log = reads_.find(partition);
      if (log != reads_.end()) {
        auto at = log->second.find(offset);
        if (at != log->second.end()) read = &at->second;
      }
      const bool read_there = read != nullptr && read->Same(send->key, send->value);
      if (!read_there && Covered(partition, offset)) {
        Report("lost-write",
               absl::StrCat(send->process, " sent ", Printable(send->value), " (entry ",
                            send->index, "), acknowledged at ", Where(partition, offset),
                            read == nullptr
                                ? std::string(", but consumers read over that offset without it")
                                : absl::StrCat(", but consumers read ", Printable(read->value),
                                               " there")),
               completion, partition, offset);
        continue;
      }
      if (options_.final_reads && send->value.has_value() &&
          !values_read_.contains(*send->value)) {
        Report("unseen",
               absl::StrCat(send->process, " sent ", Printable(send->value), " (entry ",
                            send->index, "), acknowledged at ", Where(partition, offset),
                            ", but no consumer read it by the end"),
               completion, partition, offset);
      }
    }
  }

  void CheckSendOrder() {
    std::map<ReaderKey, std::pair<int64_t, const HistoryEntry*>> last_offset;
    for (const HistoryEntry* send : sends_) {
      if (!options_.ordered_send_processes.contains(send->process)) continue;
      const HistoryEntry* completion = Completion(*send);
      if (completion == nullptr || completion->type != OpType::kOk || completion->offset < 0) {
        continue;
      }
      const TopicPartitionRef partition{send->topic, completion->partition};
      const ReaderKey producer{send->process, send->incarnation, partition};
      auto [last, fresh] = last_offset.try_emplace(producer, completion->offset, send);
      if (fresh) continue;
      if (completion->offset <= last->second.first) {
        Report("nonmonotonic-send",
               absl::StrCat(send->process, "'s send ", Printable(send->value), " (entry ",
                            send->index, ") landed at ", Where(partition, completion->offset),
                            ", not after its earlier send ", Printable(last->second.second->value),
                            " (entry ", last->second.second->index, ") at offset ",
                            last->second.first),
               completion, partition, completion->offset);
      }
      last->second = {completion->offset, send};
    }
  }

  void CheckDuplicates() {
    for (const auto& [value, positions] : positions_) {
      if (positions.size() < 2) continue;
      auto send = send_by_value_.find(value);
      if (send == send_by_value_.end() ||
          !options_.idempotent_processes.contains(send->second->process)) {
        continue;
      }
      auto first = positions.begin();
      auto second = std::next(first);
      Report("duplicate",
             absl::StrCat("value '", value, "' sent once by ", send->second->process, " is at ",
                          Where(first->first.first, first->first.second), " and at ",
                          Where(second->first.first, second->first.second),
                          positions.size() > 2 ? absl::StrCat(" and ", positions.size() - 2,
                                                              " more offsets")
                                               : std::string()),
             second->second, second->first.first, second->first.second);
    }
  }

  CheckReport Finish() {
    std::sort(collected_.begin(), collected_.end(), [](const Anomaly& a, const Anomaly& b) {
      return std::tie(a.time_us, a.name, a.detail) < std::tie(b.time_us, b.name, b.detail);
    });
    if (collected_.size() > CheckReport::kAnomaliesKeptMax) {
      report_.anomalies_not_kept += collected_.size() - CheckReport::kAnomaliesKeptMax;
      collected_.resize(CheckReport::kAnomaliesKeptMax);
    }
    report_.anomalies = std::move(collected_);
    return std::move(report_);
  }

  const std::vector<HistoryEntry>& entries_;
  const CheckerOptions& options_;
  CheckReport report_;
  std::vector<Anomaly> collected_;

  std::vector<const HistoryEntry*> sends_;  // invocations, in history order
  std::map<int64_t, const HistoryEntry*> completions_;  // by invocation index
  std::map<std::string, const HistoryEntry*> send_by_value_;
  std::map<TopicPartitionRef, std::map<int64_t, Seen>> log_;
  std::map<TopicPartitionRef, std::map<int64_t, Seen>> reads_;
  std::set<std::pair<TopicPartitionRef, int64_t>> inconsistent_reported_;
  std::map<std::string, std::map<std::pair<TopicPartitionRef, int64_t>, const HistoryEntry*>>
      positions_;
  std::set<std::string> values_read_;
  // Open runs of reads (first and last offset) per reader, and the closed ones per partition.
  std::map<ReaderKey, std::pair<int64_t, int64_t>> runs_;
  std::map<TopicPartitionRef, std::vector<std::pair<int64_t, int64_t>>> covered_;
};

}  // namespace

CheckReport CheckHistory(const std::vector<HistoryEntry>& entries, const CheckerOptions& options) {
  return Checker(entries, options).Run();
}

}  // namespace runnel::model
