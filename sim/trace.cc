#include "sim/trace.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace runnel::sim {
namespace {

constexpr uint64_t kDigestSeed = 0x52554e4e454c3031ULL;  // "RUNNEL01"

// One round of a multiply-xorshift mix: cheap, and every input bit affects the whole state.
inline uint64_t Mix(uint64_t state, uint64_t value) {
  state ^= value + 0x9e3779b97f4a7c15ULL + (state << 6) + (state >> 2);
  state *= 0xff51afd7ed558ccdULL;
  return state ^ (state >> 33);
}

uint64_t MixBytes(uint64_t state, absl::string_view bytes) {
  state = Mix(state, bytes.size());
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, bytes.data() + i, 8);
    state = Mix(state, word);
  }
  uint64_t tail = 0;
  for (size_t shift = 0; i < bytes.size(); ++i, shift += 8) {
    tail |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << shift;
  }
  return Mix(state, tail);
}

TraceEvent ToProto(const TraceEntry& entry) {
  TraceEvent event;
  event.set_time_us(entry.time_us);
  event.set_node(entry.node);
  event.set_kind(entry.kind);
  event.set_peer_node(entry.peer_node);
  event.set_connection(entry.connection);
  event.set_bytes(entry.bytes);
  event.set_value(entry.value);
  event.set_subject(std::string(entry.subject));
  event.set_detail(std::string(entry.detail));
  event.set_label(std::string(entry.label));
  return event;
}

}  // namespace

Trace::Trace() : digest_(kDigestSeed) {}
Trace::~Trace() { (void)CloseFile(); }

void Trace::Record(const TraceEntry& entry) {
  uint64_t state = digest_;
  state = Mix(state, static_cast<uint64_t>(entry.time_us));
  state = Mix(state, static_cast<uint64_t>(static_cast<int64_t>(entry.node)));
  state = Mix(state, static_cast<uint64_t>(entry.kind));
  state = Mix(state, static_cast<uint64_t>(static_cast<int64_t>(entry.peer_node)));
  state = Mix(state, entry.connection);
  state = Mix(state, entry.bytes);
  state = Mix(state, static_cast<uint64_t>(entry.value));
  state = MixBytes(state, entry.subject);
  state = MixBytes(state, entry.detail);
  state = MixBytes(state, entry.label);
  digest_ = state;
  ++event_count_;

  if (file_ == nullptr && !keep_ && !echo_) return;
  TraceEvent event = ToProto(entry);
  if (echo_) std::cerr << DescribeTraceEvent(event) << "\n";
  if (file_ != nullptr) {
    TraceRecord record;
    *record.mutable_event() = event;
    google::protobuf::io::OstreamOutputStream stream(file_.get());
    google::protobuf::util::SerializeDelimitedToZeroCopyStream(record, &stream);
  }
  if (keep_) {
    if (kept_.size() < keep_max_) {
      kept_.push_back(std::move(event));
    } else {
      ++dropped_;
    }
  }
}

std::string Trace::DigestHex() const { return absl::StrFormat("%016x", digest_); }

absl::Status Trace::OpenFile(const std::string& path, const TraceHeader& header) {
  auto file = std::make_unique<std::ofstream>(path, std::ios::binary | std::ios::trunc);
  if (!*file) return absl::UnavailableError(absl::StrCat("cannot open trace file ", path));
  TraceRecord record;
  *record.mutable_header() = header;
  {
    google::protobuf::io::OstreamOutputStream stream(file.get());
    if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(record, &stream)) {
      return absl::UnavailableError(absl::StrCat("cannot write trace file ", path));
    }
  }
  file_ = std::move(file);
  return absl::OkStatus();
}

absl::Status Trace::CloseFile() {
  if (file_ == nullptr) return absl::OkStatus();
  file_->flush();
  const bool good = file_->good();
  file_.reset();
  if (!good) return absl::UnavailableError("error writing the trace file");
  return absl::OkStatus();
}

void Trace::KeepInMemory(size_t events_max) {
  keep_ = true;
  keep_max_ = events_max;
}

absl::Status ReadTraceFile(const std::string& path, TraceFileContents* contents) {
  // The result replaces whatever `contents` held; events must not pile up across calls.
  *contents = TraceFileContents();
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open trace file ", path));
  google::protobuf::io::IstreamInputStream stream(&file);
  bool first = true;
  while (true) {
    TraceRecord record;
    bool clean_eof = false;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&record, &stream, &clean_eof)) {
      if (clean_eof) break;
      return absl::DataLossError(
          absl::StrCat("trace file ", path, ": malformed record after ",
                       contents->events.size(), " events"));
    }
    if (first) {
      if (!record.has_header()) {
        return absl::DataLossError(absl::StrCat("trace file ", path, ": no header record"));
      }
      contents->header = record.header();
      first = false;
      continue;
    }
    if (!record.has_event()) {
      return absl::DataLossError(absl::StrCat("trace file ", path, ": unexpected header record"));
    }
    contents->events.push_back(record.event());
  }
  if (first) return absl::DataLossError(absl::StrCat("trace file ", path, " is empty"));
  return absl::OkStatus();
}

std::string DescribeTraceEvent(const TraceEvent& event) {
  std::string line = absl::StrFormat("%12.6fs node %2d %-18s", event.time_us() / 1e6, event.node(),
                                     TraceKind_Name(event.kind()));
  if (event.peer_node() >= 0) absl::StrAppend(&line, " peer=", event.peer_node());
  if (event.connection() != 0) absl::StrAppend(&line, " conn=", event.connection());
  if (event.bytes() != 0) absl::StrAppend(&line, " bytes=", event.bytes());
  if (event.value() != 0) absl::StrAppend(&line, " value=", event.value());
  if (!event.label().empty()) absl::StrAppend(&line, " [", event.label(), "]");
  if (!event.subject().empty()) absl::StrAppend(&line, " ", event.subject());
  if (!event.detail().empty()) absl::StrAppend(&line, ": ", event.detail());
  return line;
}

}  // namespace runnel::sim
