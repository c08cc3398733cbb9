// The simulator's trace: every fault, connection event, send and delivery, node start and stop,
// and every semantic event from broker code, stamped with virtual time and node.
//
// The digest is the determinism witness: two runs of the same scenario with the same seed must
// produce the same digest, and tests check it. It is a running 64-bit hash over, for each event in
// order: time_us, node, kind, peer_node, connection, bytes, value, then the bytes and lengths of
// subject, detail and label. Events are hashed as they are recorded, without serialization; the protobuf
// form (sim/trace.proto) is built only when a sink is attached.
#ifndef RUNNEL_SIM_TRACE_H_
#define RUNNEL_SIM_TRACE_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "sim/trace.pb.h"

namespace runnel::sim {

// The fields of one event; a view, cheap to build on hot paths.
struct TraceEntry {
  int64_t time_us = 0;
  int32_t node = -1;
  TraceKind kind = TRACE_KIND_UNSPECIFIED;
  int32_t peer_node = -1;
  uint64_t connection = 0;
  uint64_t bytes = 0;
  int64_t value = 0;
  absl::string_view subject;
  absl::string_view detail;
  absl::string_view label;
};

class Trace {
 public:
  Trace();
  ~Trace();

  void Record(const TraceEntry& entry);

  uint64_t digest() const { return digest_; }
  uint64_t event_count() const { return event_count_; }
  // The digest as 16 hex digits, as printed at the end of every run.
  std::string DigestHex() const;

  // Starts writing every later event to `path` in the trace file format, after `header`.
  absl::Status OpenFile(const std::string& path, const TraceHeader& header);
  // Flushes and closes the file, reporting any write error.
  absl::Status CloseFile();

  // Keeps every later event in memory (for tests and the report), up to `events_max`; the count of
  // events that did not fit is kept in dropped_event_count().
  void KeepInMemory(size_t events_max);
  const std::vector<TraceEvent>& kept_events() const { return kept_; }
  uint64_t dropped_event_count() const { return dropped_; }

  // When set, every event is also printed to stderr, one line each (for debugging a seed).
  void set_echo(bool echo) { echo_ = echo; }

 private:
  uint64_t digest_;
  uint64_t event_count_ = 0;
  std::unique_ptr<std::ofstream> file_;
  std::string scratch_;
  bool keep_ = false;
  size_t keep_max_ = 0;
  std::vector<TraceEvent> kept_;
  uint64_t dropped_ = 0;
  bool echo_ = false;
};

// Reads a whole trace file.
struct TraceFileContents {
  TraceHeader header;
  std::vector<TraceEvent> events;
};
absl::Status ReadTraceFile(const std::string& path, TraceFileContents* contents);

// One line of text for an event, as used by echo and by tools.
std::string DescribeTraceEvent(const TraceEvent& event);

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_TRACE_H_
