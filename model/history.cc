#include "model/history.h"

#include <algorithm>
#include <cassert>
#include <exception>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace runnel::model {

namespace {

using Json = nlohmann::json;

constexpr const char* kTypeNames[] = {"invoke", "ok", "fail", "info"};
constexpr const char* kFunctionNames[] = {"send", "poll", "assign", "seek", "commit"};

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (byte < 0x80) {
      ++i;
      continue;
    } else if ((byte & 0xE0) == 0xC0) {
      length = 2;
      code = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3;
      code = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4;
      code = byte & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    const uint32_t minimum = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

Json EncodeBytes(absl::string_view bytes) {
  if (IsValidUtf8(bytes)) return Json(std::string(bytes));
  return Json{{"base64", absl::Base64Escape(bytes)}};
}

Json EncodeOptional(const std::optional<std::string>& bytes) {
  return bytes.has_value() ? EncodeBytes(*bytes) : Json(nullptr);
}

Json EncodePartition(const TopicPartitionRef& partition) {
  return Json{{"topic", EncodeBytes(partition.topic)}, {"partition", partition.partition}};
}

// Decoding throws DecodeError with a message naming the field; ReadJsonLines adds the line.
struct DecodeError {
  std::string message;
};

const Json& Field(const Json& object, const char* name) {
  auto found = object.find(name);
  if (found == object.end()) throw DecodeError{absl::StrCat("missing field \"", name, "\"")};
  return *found;
}

int64_t IntField(const Json& object, const char* name) {
  const Json& value = Field(object, name);
  if (!value.is_number_integer()) {
    throw DecodeError{absl::StrCat("field \"", name, "\" must be an integer")};
  }
  return value.get<int64_t>();
}

std::string DecodeBytes(const Json& value, const char* name) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.size() == 1 && value.contains("base64") &&
      value["base64"].is_string()) {
    std::string bytes;
    if (absl::Base64Unescape(value["base64"].get<std::string>(), &bytes)) return bytes;
    throw DecodeError{absl::StrCat("field \"", name, "\" holds invalid base64")};
  }
  throw DecodeError{absl::StrCat("field \"", name, "\" must be a string or {\"base64\": ...}")};
}

std::string BytesField(const Json& object, const char* name) {
  return DecodeBytes(Field(object, name), name);
}

std::optional<std::string> OptionalBytesField(const Json& object, const char* name) {
  const Json& value = Field(object, name);
  if (value.is_null()) return std::nullopt;
  return DecodeBytes(value, name);
}

TopicPartitionRef DecodePartition(const Json& object) {
  if (!object.is_object()) throw DecodeError{"a partition must be an object"};
  return TopicPartitionRef{BytesField(object, "topic"),
                           static_cast<int32_t>(IntField(object, "partition"))};
}

template <typename Enum, size_t N>
Enum DecodeName(const Json& object, const char* name, const char* const (&names)[N]) {
  const std::string text = BytesField(object, name);
  for (size_t i = 0; i < N; ++i) {
    if (text == names[i]) return static_cast<Enum>(i);
  }
  throw DecodeError{absl::StrCat("field \"", name, "\" has unknown value \"", text, "\"")};
}

const Json& ArrayField(const Json& object, const char* name) {
  const Json& value = Field(object, name);
  if (!value.is_array()) throw DecodeError{absl::StrCat("field \"", name, "\" must be an array")};
  return value;
}

HistoryEntry DecodeEntry(const Json& line) {
  if (!line.is_object()) throw DecodeError{"a line must be a JSON object"};
  HistoryEntry entry;
  entry.index = IntField(line, "index");
  entry.time_us = IntField(line, "time_us");
  entry.process = BytesField(line, "process");
  entry.incarnation = static_cast<uint64_t>(IntField(line, "incarnation"));
  entry.type = DecodeName<OpType>(line, "type", kTypeNames);
  entry.function = DecodeName<OpFunction>(line, "f", kFunctionNames);
  if (entry.type != OpType::kInvoke) entry.op = IntField(line, "op");
  if (line.contains("topic")) entry.topic = BytesField(line, "topic");
  if (line.contains("partition")) entry.partition = static_cast<int32_t>(IntField(line, "partition"));
  if (line.contains("offset")) entry.offset = IntField(line, "offset");
  if (line.contains("key")) entry.key = OptionalBytesField(line, "key");
  if (line.contains("value")) entry.value = OptionalBytesField(line, "value");
  if (line.contains("error")) entry.error = BytesField(line, "error");
  if (line.contains("high_watermark")) entry.high_watermark = IntField(line, "high_watermark");
  if (line.contains("records")) {
    for (const Json& record : ArrayField(line, "records")) {
      if (!record.is_object()) throw DecodeError{"a record must be an object"};
      entry.records.push_back(PolledRecord{IntField(record, "offset"),
                                           OptionalBytesField(record, "key"),
                                           OptionalBytesField(record, "value")});
    }
  }
  if (line.contains("partitions")) {
    for (const Json& item : ArrayField(line, "partitions")) {
      if (entry.function == OpFunction::kCommit) {
        entry.offsets.push_back(CommittedOffset{DecodePartition(item), IntField(item, "offset")});
      } else {
        entry.partitions.push_back(DecodePartition(item));
      }
    }
  }
  return entry;
}

Json EncodeEntry(const HistoryEntry& entry) {
  Json line = {{"index", entry.index},
               {"time_us", entry.time_us},
               {"process", EncodeBytes(entry.process)},
               {"incarnation", entry.incarnation},
               {"type", OpTypeName(entry.type)},
               {"f", OpFunctionName(entry.function)}};
  if (entry.type != OpType::kInvoke) line["op"] = entry.op;
  switch (entry.function) {
    case OpFunction::kSend:
      if (entry.type == OpType::kInvoke) {
        line["topic"] = EncodeBytes(entry.topic);
        line["key"] = EncodeOptional(entry.key);
        line["value"] = EncodeOptional(entry.value);
      } else {
        line["topic"] = EncodeBytes(entry.topic);
        if (entry.partition >= 0) line["partition"] = entry.partition;
        if (entry.type == OpType::kOk) line["offset"] = entry.offset;
        if (!entry.error.empty()) line["error"] = EncodeBytes(entry.error);
      }
      break;
    case OpFunction::kPoll:
      line["topic"] = EncodeBytes(entry.topic);
      line["partition"] = entry.partition;
      if (entry.type != OpType::kInvoke) {
        Json records = Json::array();
        for (const PolledRecord& record : entry.records) {
          records.push_back(Json{{"offset", record.offset},
                                 {"key", EncodeOptional(record.key)},
                                 {"value", EncodeOptional(record.value)}});
        }
        line["records"] = std::move(records);
        line["high_watermark"] = entry.high_watermark;
      }
      break;
    case OpFunction::kAssign: {
      Json partitions = Json::array();
      for (const TopicPartitionRef& partition : entry.partitions) {
        partitions.push_back(EncodePartition(partition));
      }
      line["partitions"] = std::move(partitions);
      break;
    }
    case OpFunction::kSeek:
      line["topic"] = EncodeBytes(entry.topic);
      line["partition"] = entry.partition;
      line["offset"] = entry.offset;
      break;
    case OpFunction::kCommit:
      if (entry.type == OpType::kInvoke) {
        Json partitions = Json::array();
        for (const CommittedOffset& offset : entry.offsets) {
          Json item = EncodePartition(offset.partition);
          item["offset"] = offset.offset;
          partitions.push_back(std::move(item));
        }
        line["partitions"] = std::move(partitions);
      } else if (!entry.error.empty()) {
        line["error"] = EncodeBytes(entry.error);
      }
      break;
  }
  return line;
}

}  // namespace

const char* OpTypeName(OpType type) { return kTypeNames[static_cast<int>(type)]; }
const char* OpFunctionName(OpFunction function) {
  return kFunctionNames[static_cast<int>(function)];
}

void History::Reserve(size_t entries) { entries_.reserve(std::min(entries, kEntriesMax)); }

HistoryEntry* History::Append(HistoryEntry entry) {
  if (entries_.size() >= kEntriesMax) {
    truncated_ = true;
    return nullptr;
  }
  assert(entries_.empty() || entry.time_us >= entries_.back().time_us);
  entry.index = static_cast<int64_t>(entries_.size());
  entries_.push_back(std::move(entry));
  return &entries_.back();
}

HistoryEntry History::Invocation(int64_t time_us, absl::string_view process, uint64_t incarnation,
                                 OpFunction function) {
  HistoryEntry entry;
  entry.time_us = time_us;
  entry.process = std::string(process);
  entry.incarnation = incarnation;
  entry.function = function;
  return entry;
}

int64_t History::Invoke(HistoryEntry entry) {
  HistoryEntry* added = Append(std::move(entry));
  return added == nullptr ? -1 : added->index;
}

void History::Complete(int64_t time_us, int64_t invocation, OpType outcome, OpFunction function,
                       HistoryEntry completion) {
  if (invocation < 0 || invocation >= static_cast<int64_t>(entries_.size())) return;
  assert(outcome != OpType::kInvoke);
  const HistoryEntry& invoked = entries_[static_cast<size_t>(invocation)];
  assert(invoked.function == function && invoked.type == OpType::kInvoke);
  completion.time_us = time_us;
  completion.process = invoked.process;
  completion.incarnation = invoked.incarnation;
  completion.type = outcome;
  completion.function = function;
  completion.op = invocation;
  Append(std::move(completion));
}

void History::InvokeAndComplete(HistoryEntry entry) {
  const int64_t invocation = Invoke(entry);
  if (invocation < 0) return;
  entry.op = invocation;
  entry.type = OpType::kOk;
  Append(std::move(entry));
}

int64_t History::InvokeSend(int64_t time_us, absl::string_view process, uint64_t incarnation,
                            absl::string_view topic, std::optional<std::string> key,
                            std::optional<std::string> value) {
  HistoryEntry entry = Invocation(time_us, process, incarnation, OpFunction::kSend);
  entry.topic = std::string(topic);
  entry.key = std::move(key);
  entry.value = std::move(value);
  return Invoke(std::move(entry));
}

void History::CompleteSend(int64_t time_us, int64_t invocation, OpType outcome, int32_t partition,
                           int64_t offset, absl::string_view error) {
  if (invocation < 0 || invocation >= static_cast<int64_t>(entries_.size())) return;
  HistoryEntry completion;
  completion.topic = entries_[static_cast<size_t>(invocation)].topic;
  completion.partition = partition;
  completion.offset = outcome == OpType::kOk ? offset : -1;
  completion.error = std::string(error);
  Complete(time_us, invocation, outcome, OpFunction::kSend, std::move(completion));
}

void History::Poll(int64_t time_us, absl::string_view process, uint64_t incarnation,
                   const TopicPartitionRef& partition, std::vector<PolledRecord> records,
                   int64_t high_watermark) {
  HistoryEntry entry = Invocation(time_us, process, incarnation, OpFunction::kPoll);
  entry.topic = partition.topic;
  entry.partition = partition.partition;
  const int64_t invocation = Invoke(entry);
  if (invocation < 0) return;
  // The invocation names the partition; the completion also carries what was read.
  entry.op = invocation;
  entry.type = OpType::kOk;
  entry.records = std::move(records);
  entry.high_watermark = high_watermark;
  Append(std::move(entry));
}

void History::Assign(int64_t time_us, absl::string_view process, uint64_t incarnation,
                     std::vector<TopicPartitionRef> partitions) {
  HistoryEntry entry = Invocation(time_us, process, incarnation, OpFunction::kAssign);
  entry.partitions = std::move(partitions);
  InvokeAndComplete(std::move(entry));
}

void History::Seek(int64_t time_us, absl::string_view process, uint64_t incarnation,
                   const TopicPartitionRef& partition, int64_t offset) {
  HistoryEntry entry = Invocation(time_us, process, incarnation, OpFunction::kSeek);
  entry.topic = partition.topic;
  entry.partition = partition.partition;
  entry.offset = offset;
  InvokeAndComplete(std::move(entry));
}

int64_t History::InvokeCommit(int64_t time_us, absl::string_view process, uint64_t incarnation,
                              std::vector<CommittedOffset> offsets) {
  HistoryEntry entry = Invocation(time_us, process, incarnation, OpFunction::kCommit);
  entry.offsets = std::move(offsets);
  return Invoke(std::move(entry));
}

void History::CompleteCommit(int64_t time_us, int64_t invocation, OpType outcome,
                             absl::string_view error) {
  HistoryEntry completion;
  completion.error = std::string(error);
  Complete(time_us, invocation, outcome, OpFunction::kCommit, std::move(completion));
}

void History::WriteJsonLines(std::ostream& out) const {
  for (const HistoryEntry& entry : entries_) out << EncodeEntry(entry).dump() << '\n';
}

absl::StatusOr<std::vector<HistoryEntry>> ReadJsonLines(absl::string_view text) {
  std::vector<HistoryEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (line.empty()) continue;
    if (entries.size() >= History::kEntriesMax) {
      return absl::ResourceExhaustedError(absl::StrCat("line ", line_number, ": more than ",
                                                       History::kEntriesMax, " entries"));
    }
    Json parsed = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": not valid JSON"));
    }
    try {
      entries.push_back(DecodeEntry(parsed));
    } catch (const DecodeError& error) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", error.message));
    } catch (const std::exception& error) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", error.what()));
    }
  }
  return entries;
}

}  // namespace runnel::model
