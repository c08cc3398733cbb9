// The history of a run's client operations, and its JSON lines format: the one home of that format's
// description.
//
// A history is the list of everything the clients did, as they saw it: each operation is an
// invocation (what was asked) followed, later, by a completion (what came of it), as in Jepsen. A
// completion is ok (it happened), fail (it definitely did not happen) or info (indeterminate: it may
// or may not have happened, as when a producer's request timed out or acks=0).
//
// Operations ("f"):
// - send: a producer sends one record (topic, key, value) with acks and idempotence as configured.
//   ok carries the partition and offset the broker assigned; fail and info carry the error.
// - poll: a consumer received records of one partition (a fetch response delivered to the
//   application). Invocation and completion are recorded together; the completion lists the records
//   in the order they were delivered and the partition's high watermark.
// - assign: the consumer's set of owned partitions changed to `partitions` (assign(), or a group
//   rebalance completing). The consumer's position in a partition it newly owns starts wherever the
//   client says (committed offset, beginning or end), so reads after it are not compared with reads
//   before it.
// - seek: the consumer moved its position in one partition to `offset` (also recorded when it
//   rewinds for a final read).
// - commit: a group member committed offsets; ok when the coordinator acknowledged them.
//
// JSON lines: one JSON object per line, one line per invocation or completion, in the order they
// happened (non-decreasing time). Fields (absent when they do not apply):
//   "index"      int     position of the line in the history, from 0
//   "time_us"    int     simulated time in microseconds
//   "process"    string  the client node, e.g. "producer-0" (after a crash, the restarted client is
//                        the same process name with a higher "incarnation")
//   "incarnation" int    the client process's incarnation, from 1
//   "type"       string  "invoke", "ok", "fail" or "info"
//   "f"          string  "send", "poll", "assign", "seek" or "commit"
//   "op"         int     the index of the invocation this line completes (completions only)
//   "topic", "partition", "offset"   for send (topic in every line; partition when known; offset
//                        on ok), poll, seek
//   "key", "value"       strings or null, for send
//   "error"      string  why a send or commit failed or is indeterminate
//   "records"    array of {"offset", "key", "value"}, for poll (completion), with "topic",
//                "partition" and "high_watermark" beside it
//   "partitions" array of {"topic", "partition"} for assign; of {"topic", "partition", "offset"}
//                for commit
// Strings are JSON strings when they are valid UTF-8. A key, value or other string that is not valid
// UTF-8 (records are arbitrary bytes) is written as an object {"base64": "..."} holding its bytes in
// standard base64, so that every byte string round-trips exactly. A null key or value is JSON null.
// ReadJsonLines parses exactly this format back.
#ifndef RUNNEL_MODEL_HISTORY_H_
#define RUNNEL_MODEL_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel::model {

struct TopicPartitionRef {
  std::string topic;
  int32_t partition = 0;
  friend auto operator<=>(const TopicPartitionRef&, const TopicPartitionRef&) = default;
  friend bool operator==(const TopicPartitionRef&, const TopicPartitionRef&) = default;
};

enum class OpType { kInvoke, kOk, kFail, kInfo };
enum class OpFunction { kSend, kPoll, kAssign, kSeek, kCommit };

const char* OpTypeName(OpType type);
const char* OpFunctionName(OpFunction function);

struct PolledRecord {
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  friend bool operator==(const PolledRecord&, const PolledRecord&) = default;
};

struct CommittedOffset {
  TopicPartitionRef partition;
  int64_t offset = 0;
  friend bool operator==(const CommittedOffset&, const CommittedOffset&) = default;
};

// One line of the history. Which fields are meaningful depends on `function` and `type`, as the
// file comment says.
struct HistoryEntry {
  int64_t index = 0;
  int64_t time_us = 0;
  std::string process;
  uint64_t incarnation = 1;
  OpType type = OpType::kInvoke;
  OpFunction function = OpFunction::kSend;
  int64_t op = -1;  // completions: the invocation's index
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::string error;
  std::vector<PolledRecord> records;
  int64_t high_watermark = -1;
  std::vector<TopicPartitionRef> partitions;  // assign
  std::vector<CommittedOffset> offsets;       // commit
  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

// Records a history as a run goes. Indexes are assigned in call order; times must not decrease.
class History {
 public:
  // The most entries one history holds; recording past it is refused (the run's summary says so),
  // so that a runaway workload cannot exhaust memory.
  static constexpr size_t kEntriesMax = 20'000'000;

  // Returns the invocation's index, to pass to the completion.
  int64_t InvokeSend(int64_t time_us, absl::string_view process, uint64_t incarnation,
                     absl::string_view topic, std::optional<std::string> key,
                     std::optional<std::string> value);
  void CompleteSend(int64_t time_us, int64_t invocation, OpType outcome, int32_t partition,
                    int64_t offset, absl::string_view error);
  // Records an invocation and its ok completion.
  void Poll(int64_t time_us, absl::string_view process, uint64_t incarnation,
            const TopicPartitionRef& partition, std::vector<PolledRecord> records,
            int64_t high_watermark);
  void Assign(int64_t time_us, absl::string_view process, uint64_t incarnation,
              std::vector<TopicPartitionRef> partitions);
  void Seek(int64_t time_us, absl::string_view process, uint64_t incarnation,
            const TopicPartitionRef& partition, int64_t offset);
  int64_t InvokeCommit(int64_t time_us, absl::string_view process, uint64_t incarnation,
                       std::vector<CommittedOffset> offsets);
  void CompleteCommit(int64_t time_us, int64_t invocation, OpType outcome, absl::string_view error);

  // Makes room for about `entries` entries (at most kEntriesMax), so that a history whose size can
  // be foreseen is not moved as it grows. Only capacity changes.
  void Reserve(size_t entries);

  const std::vector<HistoryEntry>& entries() const { return entries_; }
  // True when entries were refused because the history reached kEntriesMax.
  bool truncated() const { return truncated_; }

  // Writes the history as JSON lines (the file comment's format).
  void WriteJsonLines(std::ostream& out) const;

 private:
  HistoryEntry* Append(HistoryEntry entry);
  // An invocation entry of `function` by `process` at `time_us`, to fill in.
  static HistoryEntry Invocation(int64_t time_us, absl::string_view process, uint64_t incarnation,
                                 OpFunction function);
  // Appends an invocation; its index, or -1 when the history is full.
  int64_t Invoke(HistoryEntry entry);
  // Appends the completion of `invocation` (its fields from `completion`, the rest from the
  // invocation); nothing for an unknown invocation.
  void Complete(int64_t time_us, int64_t invocation, OpType outcome, OpFunction function,
                HistoryEntry completion);
  // Appends `entry` as an invocation and an ok completion with the same fields.
  void InvokeAndComplete(HistoryEntry entry);

  std::vector<HistoryEntry> entries_;
  bool truncated_ = false;
};

// Parses JSON lines written by History::WriteJsonLines. A malformed line gives an error naming its
// line number and what is wrong.
absl::StatusOr<std::vector<HistoryEntry>> ReadJsonLines(absl::string_view text);

}  // namespace runnel::model

#endif  // RUNNEL_MODEL_HISTORY_H_
