#include "model/kafka_checker.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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

// A value's dense id (Checker::ValueId), or kNoValue for a record without one.
constexpr int kNoValue = -1;

// What was seen at one offset first, and by which entry. Key and value point into the history,
// which outlives the checker, so that a history of millions of records is not copied; value_id
// stands for the value in comparisons (equal ids, equal values).
struct Seen {
  const std::optional<std::string>* key = nullptr;
  const std::optional<std::string>* value = nullptr;
  int value_id = kNoValue;
  const HistoryEntry* entry = nullptr;
  bool Same(const std::optional<std::string>& other_key, int other_value_id) const {
    return value_id == other_value_id && *key == other_key;
  }
};

// A reader of one partition: process (Checker::ProcessId), incarnation and the partition's id
// (Checker::PartitionId). Maps keyed by it are only searched and erased by prefix; nothing
// reported depends on their order.
using ReaderKey = std::tuple<int, uint64_t, int>;

// Where a value was placed: the partition's id and the offset, with the entry that showed it.
struct Position {
  int partition_id = 0;
  int64_t offset = 0;
  const HistoryEntry* entry = nullptr;
};

// Everything the checker gathers about one partition.
struct PartitionFacts {
  // Every offset known to exist (acknowledged or read), ordered for NextKnown.
  absl::btree_map<int64_t, Seen> log;
  // What consumers read at each offset (the first read of it).
  absl::flat_hash_map<int64_t, Seen> reads;
  // Offset ranges some consumer read over without an assign or seek in between, merged.
  std::vector<std::pair<int64_t, int64_t>> covered;
};

class Checker {
 public:
  Checker(const std::vector<HistoryEntry>& entries, const CheckerOptions& options)
      : entries_(entries), options_(options) {}

  CheckReport Run() {
    NumberProcesses();
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

  // Gives every entry its process's dense id (ProcessId), in order of first appearance.
  void NumberProcesses() {
    process_ids_.reserve(entries_.size());
    absl::flat_hash_map<absl::string_view, int> ids_of_processes;
    for (const HistoryEntry& entry : entries_) {
      process_ids_.push_back(
          ids_of_processes.try_emplace(entry.process, static_cast<int>(ids_of_processes.size()))
              .first->second);
    }
  }

  // Pairs every send invocation with its completion, and gives sent values their ids.
  void IndexSends() {
    completions_.assign(entries_.size(), nullptr);
    send_value_ids_.assign(entries_.size(), kNoValue);
    for (const HistoryEntry& entry : entries_) {
      if (entry.function != OpFunction::kSend) continue;
      if (entry.type == OpType::kInvoke) {
        sends_.push_back(&entry);
        if (entry.value.has_value()) {
          const int value_id = ValueId(*entry.value);
          send_value_ids_[EntryPosition(entry)] = value_id;
          const HistoryEntry*& first = first_send_of_value_[static_cast<size_t>(value_id)];
          if (first == nullptr) first = &entry;
        }
        continue;
      }
      if (entry.op >= 0 && static_cast<size_t>(entry.op) < completions_.size()) {
        completions_[static_cast<size_t>(entry.op)] = &entry;
      }
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
    if (invocation.index < 0 || static_cast<size_t>(invocation.index) >= completions_.size()) {
      return nullptr;
    }
    return completions_[static_cast<size_t>(invocation.index)];
  }

  // A dense id for `partition`, given in order of first appearance. Ids only index
  // partition_facts_; reports name partitions by partition_refs_.
  int PartitionId(const TopicPartitionRef& partition) {
    auto [it, fresh] = partition_ids_.try_emplace(partition, static_cast<int>(partition_refs_.size()));
    if (fresh) {
      partition_refs_.push_back(&it->first);
      partition_facts_.emplace_back();
    }
    return it->second;
  }

  std::optional<int> FindPartitionId(const TopicPartitionRef& partition) const {
    auto it = partition_ids_.find(partition);
    if (it == partition_ids_.end()) return std::nullopt;
    return it->second;
  }

  // The id of a partition BuildLogs numbered: that of every polled record and every acknowledged
  // send. The later passes rely on it; asking for another one is a bug in this checker.
  int KnownPartitionId(const TopicPartitionRef& partition) const {
    const std::optional<int> id = FindPartitionId(partition);
    assert(id.has_value() && "BuildLogs numbers every polled and acknowledged partition");
    return id.value_or(0);
  }

  const TopicPartitionRef& Ref(int partition_id) const {
    return *partition_refs_[static_cast<size_t>(partition_id)];
  }

  // Where `entry`, one of entries_, is in it: the index of the per-entry vectors below.
  size_t EntryPosition(const HistoryEntry& entry) const {
    assert(&entry >= entries_.data() && &entry < entries_.data() + entries_.size());
    return static_cast<size_t>(&entry - entries_.data());
  }

  // A dense id for the process of `entry`, so that readers compare as integers.
  int ProcessId(const HistoryEntry& entry) const { return process_ids_[EntryPosition(entry)]; }

  // A dense id for `value`, given in order of first appearance in the history: the checker
  // compares and indexes values by it, so that each value is hashed once per record.
  int ValueId(absl::string_view value) {
    auto [it, fresh] = value_ids_.try_emplace(value, static_cast<int>(value_names_.size()));
    if (fresh) {
      value_names_.push_back(value);
      first_send_of_value_.push_back(nullptr);
      positions_.emplace_back();
      value_read_.push_back(false);
    }
    return it->second;
  }

  // The value id of a send invocation (kNoValue when it sent none).
  int SendValueId(const HistoryEntry& invocation) const {
    return send_value_ids_[EntryPosition(invocation)];
  }

  // Records (key, value) at an offset, reporting a second, different record there.
  void Place(int partition_id, int64_t offset, const std::optional<std::string>& key,
             const std::optional<std::string>& value, int value_id, const HistoryEntry& entry) {
    PartitionFacts& facts = partition_facts_[static_cast<size_t>(partition_id)];
    auto [slot, fresh] = facts.log.try_emplace(offset, Seen{&key, &value, value_id, &entry});
    if (!fresh && !slot->second.Same(key, value_id) &&
        inconsistent_reported_.insert({partition_id, offset}).second) {
      const TopicPartitionRef& partition = Ref(partition_id);
      Report("inconsistent-offsets",
             absl::StrCat(Where(partition, offset), " held key ", Printable(*slot->second.key),
                          " value ", Printable(*slot->second.value), " (entry ",
                          slot->second.entry->index, ", ", slot->second.entry->process,
                          ") and key ", Printable(key), " value ", Printable(value), " (entry ",
                          entry.index, ", ", entry.process, ")"),
             &entry, partition, offset);
    }
    if (value_id == kNoValue) return;
    PositionList& positions = positions_[static_cast<size_t>(value_id)];
    for (const Position& position : positions) {
      if (position.partition_id == partition_id && position.offset == offset) return;
    }
    positions.push_back(Position{partition_id, offset, &entry});
    if (positions.size() == 2) repeated_values_.push_back(value_id);
  }

  void CloseRun(const ReaderKey& reader) {
    auto run = runs_.find(reader);
    if (run == runs_.end()) return;
    partition_facts_[static_cast<size_t>(std::get<2>(reader))].covered.push_back(run->second);
    runs_.erase(run);
  }

  void CloseRunsOf(int process, uint64_t incarnation) {
    std::vector<ReaderKey> closing;
    for (auto it = runs_.lower_bound(ReaderKey{process, incarnation, -1});
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
    first_read_value_id_.assign(entries_.size(), 0);
    for (const HistoryEntry& entry : entries_) {
      if (entry.type == OpType::kInvoke) continue;
      switch (entry.function) {
        case OpFunction::kSend: {
          if (entry.type != OpType::kOk || entry.offset < 0 || entry.op < 0) break;
          if (static_cast<size_t>(entry.op) >= entries_.size()) break;
          const HistoryEntry& invocation = entries_[static_cast<size_t>(entry.op)];
          Place(PartitionId(TopicPartitionRef{invocation.topic, entry.partition}), entry.offset,
                invocation.key, invocation.value, SendValueId(invocation), entry);
          break;
        }
        case OpFunction::kPoll: {
          ++report_.polls;
          if (entry.records.empty()) break;
          const int partition_id = PartitionId(TopicPartitionRef{entry.topic, entry.partition});
          PartitionFacts& facts = partition_facts_[static_cast<size_t>(partition_id)];
          first_read_value_id_[EntryPosition(entry)] = read_value_ids_.size();
          for (const PolledRecord& record : entry.records) {
            ++report_.records_read;
            const int value_id = record.value.has_value() ? ValueId(*record.value) : kNoValue;
            read_value_ids_.push_back(value_id);
            Place(partition_id, record.offset, record.key, record.value, value_id, entry);
            facts.reads.try_emplace(record.offset,
                                    Seen{&record.key, &record.value, value_id, &entry});
            if (value_id != kNoValue) value_read_[static_cast<size_t>(value_id)] = true;
          }
          const ReaderKey reader{ProcessId(entry), entry.incarnation, partition_id};
          auto [run, fresh] = runs_.try_emplace(
              reader, std::make_pair(entry.records.front().offset, entry.records.back().offset));
          if (!fresh) {
            run->second.first = std::min(run->second.first, entry.records.front().offset);
            run->second.second = std::max(run->second.second, entry.records.back().offset);
          }
          break;
        }
        case OpFunction::kAssign:
          CloseRunsOf(ProcessId(entry), entry.incarnation);
          break;
        case OpFunction::kSeek:
          if (std::optional<int> id = FindPartitionId({entry.topic, entry.partition})) {
            CloseRun(ReaderKey{ProcessId(entry), entry.incarnation, *id});
          }
          break;
        case OpFunction::kCommit:
          if (entry.type == OpType::kOk) ++report_.commits_ok;
          if (entry.type == OpType::kFail) ++report_.commits_failed;
          break;
      }
    }
    while (!runs_.empty()) CloseRun(runs_.begin()->first);
    for (PartitionFacts& facts : partition_facts_) {
      std::vector<std::pair<int64_t, int64_t>>& intervals = facts.covered;
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
    for (const PartitionFacts& facts : partition_facts_) report_.offsets_observed += facts.log.size();
  }

  // Whether some consumer's run of reads covered `offset` of `partition`.
  bool Covered(int partition_id, int64_t offset) const {
    const auto& intervals = partition_facts_[static_cast<size_t>(partition_id)].covered;
    auto after = std::upper_bound(intervals.begin(), intervals.end(),
                                  std::make_pair(offset, std::numeric_limits<int64_t>::max()));
    if (after == intervals.begin()) return false;
    --after;
    return after->first <= offset && offset <= after->second;
  }

  // The first offset known to exist in `partition` after `offset`, if any.
  std::optional<int64_t> NextKnown(int partition_id, int64_t offset) const {
    const auto& log = partition_facts_[static_cast<size_t>(partition_id)].log;
    auto next = log.upper_bound(offset);
    if (next == log.end()) return std::nullopt;
    return next->first;
  }

  // phantom-read and aborted-read, for every record read.
  void CheckReads() {
    for (const HistoryEntry& entry : entries_) {
      if (entry.function != OpFunction::kPoll || entry.type != OpType::kOk) continue;
      const TopicPartitionRef partition{entry.topic, entry.partition};
      // BuildLogs gave every polled record its value id, in this order.
      size_t read_index = first_read_value_id_[EntryPosition(entry)];
      for (const PolledRecord& record : entry.records) {
        const int value_id = read_value_ids_[read_index++];
        const HistoryEntry* send =
            value_id == kNoValue ? nullptr : first_send_of_value_[static_cast<size_t>(value_id)];
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
  void CompareOrder(const HistoryEntry& entry, int partition_id, int64_t last, int64_t next,
                    bool internal) {
    const TopicPartitionRef& partition = Ref(partition_id);
    const std::string prefix = internal ? "int-" : "";
    if (next <= last) {
      Report(absl::StrCat(prefix, "nonmonotonic-poll"),
             absl::StrCat(entry.process, " read ", Where(partition, next), " after offset ", last,
                          internal ? " in the same poll" : " in its previous poll", " (entry ",
                          entry.index, ")"),
             &entry, partition, next);
      return;
    }
    std::optional<int64_t> between = NextKnown(partition_id, last);
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
        const int process = ProcessId(entry);
        auto it = last_read.lower_bound(ReaderKey{process, entry.incarnation, -1});
        while (it != last_read.end() && std::get<0>(it->first) == process &&
               std::get<1>(it->first) == entry.incarnation) {
          it = last_read.erase(it);
        }
        continue;
      }
      if (entry.function == OpFunction::kSeek) {
        if (std::optional<int> id = FindPartitionId({entry.topic, entry.partition})) {
          last_read.erase(ReaderKey{ProcessId(entry), entry.incarnation, *id});
        }
        continue;
      }
      if (entry.function != OpFunction::kPoll || entry.records.empty()) continue;
      const int partition_id = KnownPartitionId({entry.topic, entry.partition});
      const ReaderKey reader{ProcessId(entry), entry.incarnation, partition_id};
      auto last = last_read.find(reader);
      if (last != last_read.end()) {
        CompareOrder(entry, partition_id, last->second, entry.records.front().offset, false);
      }
      for (size_t i = 1; i < entry.records.size(); ++i) {
        CompareOrder(entry, partition_id, entry.records[i - 1].offset, entry.records[i].offset,
                     true);
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
      const int partition_id = KnownPartitionId(partition);
      const Seen* read = nullptr;
      const auto& reads = partition_facts_[static_cast<size_t>(partition_id)].reads;
      if (auto at = reads.find(offset); at != reads.end()) read = &at->second;
      const int value_id = SendValueId(*send);
      const bool read_there = read != nullptr && read->Same(send->key, value_id);
      if (!read_there && Covered(partition_id, offset)) {
        Report("lost-write",
               absl::StrCat(send->process, " sent ", Printable(send->value), " (entry ",
                            send->index, "), acknowledged at ", Where(partition, offset),
                            read == nullptr
                                ? std::string(", but consumers read over that offset without it")
                                : absl::StrCat(", but consumers read ", Printable(*read->value),
                                               " there")),
               completion, partition, offset);
        continue;
      }
      if (options_.final_reads && value_id != kNoValue &&
          !value_read_[static_cast<size_t>(value_id)]) {
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
      const ReaderKey producer{ProcessId(*send), send->incarnation, KnownPartitionId(partition)};
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

  // Values placed at two or more offsets, reported in value order.
  void CheckDuplicates() {
    std::sort(repeated_values_.begin(), repeated_values_.end(), [this](int a, int b) {
      return value_names_[static_cast<size_t>(a)] < value_names_[static_cast<size_t>(b)];
    });
    for (const int value_id : repeated_values_) {
      const absl::string_view value = value_names_[static_cast<size_t>(value_id)];
      PositionList* positions = &positions_[static_cast<size_t>(value_id)];
      const HistoryEntry* send = first_send_of_value_[static_cast<size_t>(value_id)];
      if (send == nullptr || !options_.idempotent_processes.contains(send->process)) continue;
      std::sort(positions->begin(), positions->end(), [this](const Position& a, const Position& b) {
        return std::tie(Ref(a.partition_id), a.offset) < std::tie(Ref(b.partition_id), b.offset);
      });
      const Position& first = (*positions)[0];
      const Position& second = (*positions)[1];
      Report("duplicate",
             absl::StrCat("value '", value, "' sent once by ", send->process, " is at ",
                          Where(Ref(first.partition_id), first.offset), " and at ",
                          Where(Ref(second.partition_id), second.offset),
                          positions->size() > 2
                              ? absl::StrCat(" and ", positions->size() - 2, " more offsets")
                              : std::string()),
             second.entry, Ref(second.partition_id), second.offset);
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

  using PositionList = absl::InlinedVector<Position, 1>;

  std::vector<const HistoryEntry*> sends_;        // invocations, in history order
  std::vector<const HistoryEntry*> completions_;  // by invocation index; null when none
  std::vector<int> process_ids_;                  // by EntryPosition
  // Every value sent or read, by ValueId (the map is for lookups only, never iterated).
  absl::flat_hash_map<absl::string_view, int> value_ids_;
  std::vector<absl::string_view> value_names_;
  std::vector<const HistoryEntry*> first_send_of_value_;  // null when only read
  std::vector<bool> value_read_;
  std::vector<int> send_value_ids_;  // by EntryPosition of invocations; kNoValue when none
  // The value ids of every polled record, poll by poll, and where each poll's begin (by
  // EntryPosition).
  std::vector<int> read_value_ids_;
  std::vector<size_t> first_read_value_id_;
  std::map<TopicPartitionRef, int> partition_ids_;
  std::vector<const TopicPartitionRef*> partition_refs_;  // by id
  std::vector<PartitionFacts> partition_facts_;           // by id
  std::set<std::pair<int, int64_t>> inconsistent_reported_;
  // The distinct places of each value by ValueId, and the values with two or more.
  std::vector<PositionList> positions_;
  std::vector<int> repeated_values_;
  // Open runs of reads (first and last offset) per reader; closed ones go to PartitionFacts.
  std::map<ReaderKey, std::pair<int64_t, int64_t>> runs_;
};

}  // namespace

CheckReport CheckHistory(const std::vector<HistoryEntry>& entries, const CheckerOptions& options) {
  return Checker(entries, options).Run();
}

}  // namespace runnel::model
