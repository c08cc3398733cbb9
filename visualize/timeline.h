// Timelines: a simulated run's trace (sim/trace.proto) drawn with Graphviz as a space-time diagram.
//
// The drawing has one lane (column) per node, in the trace header's node order, with time flowing
// down a left-hand axis. Time is cut into rows (at most TimelineOptions::rows_max, each an equal
// slice of the window), so that a run of any length keeps a readable height:
// - A lane's cell in a row lists what happened there: lifecycle (start, crash, stop, stall,
//   resume), faults (shaped and coloured by kind: crash and power loss red, partition and heal
//   orange, slow links and clock jumps yellow, disk faults purple), role changes (SEMANTIC events
//   naming a leader, a coordinator, a group generation or an assignment; bold) and counts of the
//   other semantic events ("produce.ack x12"). An empty cell is a dot on the lane's line.
// - Messages are arrows from the cell of a SEND to the cell of the matching DELIVER on the peer
//   (matched per connection pair, in order). Arrows between the same two cells are one arrow with
//   a count; at most arrows_max arrows are drawn, busiest first, and the rest are counted.
// - Anomalies (given by the caller: they come from the checker, not the trace) are red boxes in
//   the lane of the process that showed them, each with the SVG id "anomaly-<i>" (i = its index in
//   the caller's list) so that a report can link to it.
// Filters: nodes (names or '*' patterns), a time window, and a partition (SEMANTIC events whose
// subject is another "topic-partition" are left out; events without one stay). Everything left
// out is counted in a note at the top of the drawing; nothing is dropped silently.
#ifndef RUNNEL_VISUALIZE_TIMELINE_H_
#define RUNNEL_VISUALIZE_TIMELINE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/trace.h"

namespace runnel::visualize {

// An anomaly to mark on the timeline. Its one JSON lines form (runnel-viz --anomalies=FILE) is one
// object per line: {"time_us": int, "process": string, "name": string, "detail": string}.
struct TimelineAnomaly {
  int64_t time_us = 0;
  std::string process;  // a node name; an unknown one is marked on the axis
  std::string name;
  std::string detail;
};

struct TimelineOptions {
  // Defaults that keep a 60-simulated-second run with a few thousand messages readable and its
  // layout within a few seconds.
  static constexpr int kRowsMaxDefault = 60;
  static constexpr int kArrowsMaxDefault = 400;
  static constexpr int kCellLinesMax = 6;

  std::vector<std::string> nodes;  // empty: every node
  int64_t from_us = 0;
  int64_t to_us = -1;  // -1: the end of the trace
  std::string partition;  // "topic-3"; empty: every partition
  int rows_max = kRowsMaxDefault;
  int arrows_max = kArrowsMaxDefault;
};

// The diagram in Graphviz's DOT language.
std::string TimelineDot(const sim::TraceFileContents& trace,
                        const std::vector<TimelineAnomaly>& anomalies,
                        const TimelineOptions& options);

// Lays out and renders DOT with Graphviz's library; `format` is "svg" (or any format Graphviz
// renders). Errors carry Graphviz's own message.
absl::StatusOr<std::string> RenderDot(const std::string& dot, const std::string& format);

// Parses the anomalies JSON lines format above; errors name the line.
absl::StatusOr<std::vector<TimelineAnomaly>> ParseAnomalies(const std::string& text);

}  // namespace runnel::visualize

#endif  // RUNNEL_VISUALIZE_TIMELINE_H_
