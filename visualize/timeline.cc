#include "visualize/timeline.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "sim/node_pattern.h"

namespace runnel::visualize {

namespace {

using sim::TraceEvent;

// Pending bytes of messages in flight per directed node pair, beyond which old ones are dropped
// from matching (a crash loses them; the count keeps memory bounded).
constexpr size_t kPendingSendsPerPairMax = 10'000;
// Characters of one line in a cell; longer lines are cut (the report's fault table has them whole).
constexpr size_t kCellLineCharsMax = 60;

// DOT's quoted strings: backslashes and quotes escaped, newlines as left-justified line breaks.
std::string Quote(absl::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (c == '\n') {
      quoted += "\\l";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      quoted += ' ';
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

std::string Seconds(int64_t time_us) {
  return absl::StrFormat("%.3f s", static_cast<double>(time_us) / 1e6);
}

// Whether a semantic event's subject names a partition ("topic-3"), and which.
bool IsPartitionSubject(absl::string_view subject) {
  const size_t dash = subject.rfind('-');
  if (dash == absl::string_view::npos || dash == 0 || dash + 1 == subject.size()) return false;
  int32_t number = 0;
  return absl::SimpleAtoi(subject.substr(dash + 1), &number);
}

bool IsRoleChange(absl::string_view label) {
  return absl::StrContains(label, "leader") || absl::StrContains(label, "coordinator") ||
         absl::StrContains(label, "generation") || absl::StrContains(label, "assigned");
}

enum class Tone { kPlain, kStart, kRole, kSlow, kNetwork, kDisk, kCrash, kAnomaly };

const char* Fill(Tone tone) {
  switch (tone) {
    case Tone::kPlain:
      return "white";
    case Tone::kStart:
      return "#c8ecc8";
    case Tone::kRole:
      return "#cfe0fb";
    case Tone::kSlow:
      return "#f7f0a8";
    case Tone::kNetwork:
      return "#f8cf96";
    case Tone::kDisk:
      return "#dcc4f2";
    case Tone::kCrash:
      return "#f5a8a8";
    case Tone::kAnomaly:
      return "#ff6b6b";
  }
  return "white";
}

Tone FaultTone(absl::string_view name) {
  if (absl::StrContains(name, "crash") || absl::StrContains(name, "power")) return Tone::kCrash;
  if (absl::StrContains(name, "disk") || absl::StrContains(name, "corrupt")) return Tone::kDisk;
  if (absl::StrContains(name, "partition") || absl::StrContains(name, "heal") ||
      absl::StrContains(name, "reset")) {
    return Tone::kNetwork;
  }
  if (absl::StrContains(name, "restart")) return Tone::kStart;
  return Tone::kSlow;
}

struct Cell {
  std::vector<std::string> marks;        // faults, lifecycle and role changes, in order
  std::map<std::string, uint64_t> counts;  // other events by label
  Tone tone = Tone::kPlain;
  bool role = false;

  bool empty() const { return marks.empty() && counts.empty(); }
  void Mark(std::string text, Tone with) {
    if (marks.size() < 64) marks.push_back(std::move(text));
    tone = std::max(tone, with);
  }
  std::string Label() const {
    std::vector<std::string> lines = marks;
    for (const auto& [label, count] : counts) {
      lines.push_back(count == 1 ? label : absl::StrCat(label, " x", count));
    }
    std::string text;
    const size_t shown = std::min<size_t>(lines.size(), TimelineOptions::kCellLinesMax);
    for (size_t i = 0; i < shown; ++i) {
      // Long fault descriptions (every node of a partition) would widen the whole lane.
      if (lines[i].size() > kCellLineCharsMax) {
        absl::StrAppend(&text, lines[i].substr(0, kCellLineCharsMax - 3), "...\n");
      } else {
        absl::StrAppend(&text, lines[i], "\n");
      }
    }
    if (lines.size() > shown) absl::StrAppend(&text, "+", lines.size() - shown, " more\n");
    return text;
  }
};

class Drawing {
 public:
  Drawing(const sim::TraceFileContents& trace, const std::vector<TimelineAnomaly>& anomalies,
          const TimelineOptions& options)
      : trace_(trace), anomalies_(anomalies), options_(options) {}

  std::string Dot() {
    ChooseLanes();
    ChooseWindow();
    for (const TraceEvent& event : trace_.events) Place(event);
    return Emit();
  }

 private:
  void ChooseLanes() {
    const auto& names = trace_.header.node_names();
    for (int i = 0; i < names.size(); ++i) {
      bool shown = options_.nodes.empty();
      for (const std::string& pattern : options_.nodes) shown = shown || sim::NodePatternMatches(pattern, names[i]);
      if (shown) {
        lane_of_node_[i] = static_cast<int>(lanes_.size());
        lanes_.push_back(names[i]);
      } else {
        ++nodes_hidden_;
      }
    }
  }

  void ChooseWindow() {
    int64_t last_us = 0;
    for (const TraceEvent& event : trace_.events) last_us = std::max(last_us, event.time_us());
    for (const TimelineAnomaly& anomaly : anomalies_) last_us = std::max(last_us, anomaly.time_us);
    trace_end_us_ = last_us;
    from_us_ = std::max<int64_t>(0, options_.from_us);
    to_us_ = options_.to_us < 0 ? last_us : options_.to_us;
    if (to_us_ < from_us_) to_us_ = from_us_;
    rows_ = std::max(1, options_.rows_max);
    row_us_ = std::max<int64_t>(1, (to_us_ - from_us_ + rows_) / rows_);
    rows_ = static_cast<int>(std::min<int64_t>(rows_, (to_us_ - from_us_) / row_us_ + 1));
  }

  bool InWindow(int64_t time_us) const { return time_us >= from_us_ && time_us <= to_us_; }
  int Row(int64_t time_us) const {
    return static_cast<int>(std::min<int64_t>(rows_ - 1, (time_us - from_us_) / row_us_));
  }
  int Lane(int32_t node) const {
    auto found = lane_of_node_.find(node);
    return found == lane_of_node_.end() ? -1 : found->second;
  }
  Cell& CellAt(int row, int lane) { return cells_[{row, lane}]; }

  // The lane a simulator-level event (a fault) belongs to: the first node its text names.
  int LaneNamedIn(absl::string_view text) const {
    size_t best_position = absl::string_view::npos;
    int best_lane = -1;
    for (const auto& [node, lane] : lane_of_node_) {
      const std::string& name = lanes_[static_cast<size_t>(lane)];
      const size_t position = text.find(name);
      if (position == absl::string_view::npos) continue;
      // The longest name at the earliest position ("broker-1" rather than "broker-10").
      if (position < best_position ||
          (position == best_position &&
           name.size() > lanes_[static_cast<size_t>(best_lane)].size())) {
        best_position = position;
        best_lane = lane;
      }
    }
    return best_lane;
  }

  void ForgetPending(int32_t node) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->first.first == node || it->first.second == node) {
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Place(const TraceEvent& event) {
    // Message matching runs over every event, drawn or not, so that pairs stay aligned.
    if (event.kind() == sim::SEND) {
      auto& queue = pending_[{event.node(), event.peer_node()}];
      if (queue.size() >= kPendingSendsPerPairMax) queue.pop_front();
      queue.push_back({event.time_us(), event.bytes()});
    } else if (event.kind() == sim::DELIVER) {
      Deliver(event);
    } else if (event.kind() == sim::NODE_CRASH || event.kind() == sim::NODE_START) {
      ForgetPending(event.node());
    }
    if (event.kind() == sim::SEND || event.kind() == sim::DELIVER) return;

    if (!InWindow(event.time_us())) {
      ++events_outside_window_;
      return;
    }
    if (event.kind() == sim::SEMANTIC && !options_.partition.empty() &&
        IsPartitionSubject(event.subject()) && event.subject() != options_.partition) {
      ++events_other_partitions_;
      return;
    }
    int lane = event.node() >= 0 ? Lane(event.node()) : LaneNamedIn(event.detail());
    if (event.node() >= 0 && lane < 0) {
      ++events_hidden_nodes_;
      return;
    }
    const int row = Row(event.time_us());
    if (lane < 0) {
      axis_marks_[row].push_back(absl::StrCat(event.subject(), " ", event.detail()));
      ++events_drawn_;
      return;
    }
    Cell& cell = CellAt(row, lane);
    ++events_drawn_;
    switch (event.kind()) {
      case sim::NODE_START:
        cell.Mark(absl::StrCat("start #", event.value()), Tone::kStart);
        break;
      case sim::NODE_CRASH:
        cell.Mark(absl::StrCat("CRASH ", event.detail()), Tone::kCrash);
        break;
      case sim::NODE_STOP:
        cell.Mark("stop", Tone::kSlow);
        break;
      case sim::NODE_STALL:
        cell.Mark("stalled", Tone::kSlow);
        break;
      case sim::NODE_RESUME:
        cell.Mark("resumed", Tone::kSlow);
        break;
      case sim::FAULT:
        cell.Mark(absl::StrCat("FAULT ", event.subject(), ": ", event.detail()),
                  FaultTone(event.subject()));
        break;
      case sim::SEMANTIC:
        if (IsRoleChange(event.label())) {
          cell.Mark(absl::StrCat(event.label(), " ", event.subject(), " ", event.value()),
                    Tone::kRole);
          cell.role = true;
        } else {
          ++cell.counts[event.label()];
        }
        break;
      case sim::DISK_CRASH_LOSS:
        cell.Mark(absl::StrCat("disk lost ", event.bytes(), " B"), Tone::kDisk);
        break;
      case sim::DISK_ERROR:
        cell.Mark(absl::StrCat("disk: ", event.detail()), Tone::kDisk);
        break;
      case sim::CONNECTION_RESET:
        ++cell.counts["connection reset"];
        break;
      default:
        ++cell.counts[absl::AsciiStrToLower(sim::TraceKind_Name(event.kind()))];
        break;
    }
  }

  void Deliver(const TraceEvent& event) {
    auto found = pending_.find({event.peer_node(), event.node()});
    if (found == pending_.end() || found->second.empty()) return;
    auto& queue = found->second;
    const int64_t sent_us = queue.front().first;
    uint64_t remaining = event.bytes();
    while (remaining > 0 && !queue.empty()) {
      const uint64_t take = std::min(remaining, queue.front().second);
      queue.front().second -= take;
      remaining -= take;
      if (queue.front().second == 0) queue.pop_front();
    }
    ++messages_total_;
    const int from_lane = Lane(event.peer_node());
    const int to_lane = Lane(event.node());
    if (from_lane < 0 || to_lane < 0 || !InWindow(sent_us) || !InWindow(event.time_us())) {
      ++messages_not_shown_;
      return;
    }
    ++arrows_[{Row(sent_us), from_lane, Row(event.time_us()), to_lane}];
  }

  std::string CellId(int row, int lane) const { return absl::StrCat("c", row, "_", lane); }

  std::string Note() const {
    std::string note = absl::StrCat("window ", Seconds(from_us_), " .. ", Seconds(to_us_), " of ",
                                    Seconds(trace_end_us_), "; rows of ", Seconds(row_us_), "; ",
                                    events_drawn_, " events drawn");
    if (events_outside_window_ > 0) {
      absl::StrAppend(&note, "; ", events_outside_window_, " outside the window");
    }
    if (nodes_hidden_ > 0) {
      absl::StrAppend(&note, "; ", nodes_hidden_, " nodes hidden (", events_hidden_nodes_,
                      " of their events)");
    }
    if (events_other_partitions_ > 0) {
      absl::StrAppend(&note, "; ", events_other_partitions_, " events of other partitions than ",
                      options_.partition);
    }
    absl::StrAppend(&note, "\n", messages_total_, " messages: ", arrows_drawn_,
                    " arrows drawn (same cells bundled, with counts)");
    if (arrows_over_cap_ > 0) {
      absl::StrAppend(&note, "; ", arrows_over_cap_, " arrows (", messages_over_cap_,
                      " messages) not drawn beyond the cap of ", options_.arrows_max);
    }
    if (messages_not_shown_ > 0) {
      absl::StrAppend(&note, "; ", messages_not_shown_, " outside the window or hidden nodes");
    }
    return note;
  }

  std::string Emit() {
    // The busiest arrows first, up to the cap; ties in cell order, so the choice is stable.
    std::vector<std::pair<std::tuple<int, int, int, int>, uint64_t>> arrows(arrows_.begin(),
                                                                             arrows_.end());
    std::stable_sort(arrows.begin(), arrows.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    if (arrows.size() > static_cast<size_t>(std::max(0, options_.arrows_max))) {
      for (size_t i = static_cast<size_t>(options_.arrows_max); i < arrows.size(); ++i) {
        ++arrows_over_cap_;
        messages_over_cap_ += arrows[i].second;
      }
      arrows.resize(static_cast<size_t>(options_.arrows_max));
    }
    arrows_drawn_ = arrows.size();

    std::string dot = "digraph timeline {\n";
    absl::StrAppend(&dot, "  graph [rankdir=TB, splines=line, nodesep=0.25, ranksep=0.12, fontname=Helvetica, ",
                    "fontsize=10, labelloc=t, labeljust=l, label=", Quote(Note()), "];\n");
    absl::StrAppend(&dot, "  node [fontname=Helvetica, fontsize=8, margin=\"0.04,0.02\"];\n");
    absl::StrAppend(&dot, "  edge [arrowsize=0.5];\n");
    // The header row: the axis title and one box per lane.
    absl::StrAppend(&dot, "  { rank=same; axis [label=\"time\", shape=plaintext];");
    for (size_t lane = 0; lane < lanes_.size(); ++lane) {
      absl::StrAppend(&dot, " h", lane, " [label=", Quote(lanes_[lane]),
                      ", shape=box, style=\"filled,bold\", fillcolor=\"#e4e8f0\", fontsize=10];");
    }
    absl::StrAppend(&dot, " }\n");
    std::map<int, std::vector<size_t>> anomalies_by_row;
    for (size_t i = 0; i < anomalies_.size(); ++i) {
      if (!InWindow(anomalies_[i].time_us)) continue;
      anomalies_by_row[Row(anomalies_[i].time_us)].push_back(i);
    }
    for (int row = 0; row < rows_; ++row) {
      std::string axis_label = Seconds(from_us_ + row * row_us_);
      auto marks = axis_marks_.find(row);
      if (marks != axis_marks_.end()) {
        for (size_t i = 0; i < marks->second.size() && i < 3; ++i) {
          absl::StrAppend(&axis_label, "\n", marks->second[i]);
        }
      }
      absl::StrAppend(&dot, "  { rank=same; t", row, " [label=", Quote(axis_label + "\n"),
                      ", shape=plaintext];");
      for (size_t lane = 0; lane < lanes_.size(); ++lane) {
        auto cell = cells_.find({row, static_cast<int>(lane)});
        const std::string id = CellId(row, static_cast<int>(lane));
        if (cell == cells_.end() || cell->second.empty()) {
          absl::StrAppend(&dot, " ", id, " [label=\"\", shape=point, width=0.04];");
          continue;
        }
        absl::StrAppend(&dot, " ", id, " [label=", Quote(cell->second.Label()),
                        ", shape=box, style=\"filled", cell->second.role ? ",bold" : "",
                        "\", fillcolor=\"", Fill(cell->second.tone), "\"];");
      }
      for (size_t index : anomalies_by_row[row]) {
        const TimelineAnomaly& anomaly = anomalies_[index];
        absl::StrAppend(&dot, " anomaly", index, " [id=\"anomaly-", index, "\", label=",
                        Quote(absl::StrCat(anomaly.name, " @ ", Seconds(anomaly.time_us), "\n",
                                           anomaly.detail.substr(0, 80), "\n")),
                        ", shape=box, style=\"filled,bold\", color=red, fontcolor=black, "
                        "fillcolor=\"",
                        Fill(Tone::kAnomaly), "\"];");
      }
      absl::StrAppend(&dot, " }\n");
      // Keeps the lanes in order, left to right, within the row.
      absl::StrAppend(&dot, "  t", row);
      for (size_t lane = 0; lane < lanes_.size(); ++lane) {
        absl::StrAppend(&dot, " -> ", CellId(row, static_cast<int>(lane)));
      }
      absl::StrAppend(&dot, " [style=invis];\n");
    }
    // The lanes' lines and the axis, top to bottom.
    absl::StrAppend(&dot, "  axis");
    for (int row = 0; row < rows_; ++row) absl::StrAppend(&dot, " -> t", row);
    absl::StrAppend(&dot, " [style=invis, weight=100];\n");
    for (size_t lane = 0; lane < lanes_.size(); ++lane) {
      absl::StrAppend(&dot, "  h", lane);
      for (int row = 0; row < rows_; ++row) {
        absl::StrAppend(&dot, " -> ", CellId(row, static_cast<int>(lane)));
      }
      absl::StrAppend(&dot, " [arrowhead=none, color=gray60, weight=100];\n");
    }
    for (const auto& [key, count] : arrows) {
      const auto [from_row, from_lane, to_row, to_lane] = key;
      absl::StrAppend(&dot, "  ", CellId(from_row, from_lane), " -> ", CellId(to_row, to_lane),
                      " [constraint=false, color=\"#3b6fc4a0\"",
                      count > 1 ? absl::StrCat(", xlabel=\"", count, "\", fontsize=7") : "",
                      "];\n");
    }
    // Each anomaly points at the lane of the process that showed it.
    for (const auto& [row, indexes] : anomalies_by_row) {
      for (size_t index : indexes) {
        int lane = -1;
        for (size_t i = 0; i < lanes_.size(); ++i) {
          if (lanes_[i] == anomalies_[index].process) lane = static_cast<int>(i);
        }
        const std::string target = lane < 0 ? absl::StrCat("t", row) : CellId(row, lane);
        absl::StrAppend(&dot, "  anomaly", index, " -> ", target,
                        " [constraint=false, color=red, style=dashed];\n");
      }
    }
    dot += "}\n";
    return dot;
  }

  const sim::TraceFileContents& trace_;
  const std::vector<TimelineAnomaly>& anomalies_;
  const TimelineOptions& options_;
  std::vector<std::string> lanes_;
  std::map<int32_t, int> lane_of_node_;
  int64_t trace_end_us_ = 0;
  int64_t from_us_ = 0;
  int64_t to_us_ = 0;
  int64_t row_us_ = 1;
  int rows_ = 1;
  std::map<std::pair<int, int>, Cell> cells_;
  std::map<int, std::vector<std::string>> axis_marks_;
  std::map<std::pair<int32_t, int32_t>, std::deque<std::pair<int64_t, uint64_t>>> pending_;
  std::map<std::tuple<int, int, int, int>, uint64_t> arrows_;
  uint64_t nodes_hidden_ = 0;
  uint64_t events_drawn_ = 0;
  uint64_t events_outside_window_ = 0;
  uint64_t events_hidden_nodes_ = 0;
  uint64_t events_other_partitions_ = 0;
  uint64_t messages_total_ = 0;
  uint64_t messages_not_shown_ = 0;
  uint64_t arrows_drawn_ = 0;
  uint64_t arrows_over_cap_ = 0;
  uint64_t messages_over_cap_ = 0;
};

// Graphviz reports errors through a process-wide callback; RenderDot collects them here.
std::string* graphviz_errors = nullptr;

int CollectGraphvizError(char* message) {
  if (graphviz_errors != nullptr && graphviz_errors->size() < 4096) *graphviz_errors += message;
  return 0;
}

}  // namespace

std::string TimelineDot(const sim::TraceFileContents& trace,
                        const std::vector<TimelineAnomaly>& anomalies,
                        const TimelineOptions& options) {
  return Drawing(trace, anomalies, options).Dot();
}

absl::StatusOr<std::string> RenderDot(const std::string& dot, const std::string& format) {
  std::string errors;
  graphviz_errors = &errors;
  agseterr(AGERR);
  agseterrf(CollectGraphvizError);
  // One Graphviz context for the whole process, never freed: Debian 12's Graphviz 2.42 text
  // layout plugin keeps font names from the first context it served, and reads them after that
  // context is freed.
  static GVC_t* const context = gvContext();
  Agraph_t* graph = agmemread(dot.c_str());
  if (graph == nullptr) {
    graphviz_errors = nullptr;
    return absl::InvalidArgumentError(absl::StrCat("Graphviz could not read the drawing: ", errors));
  }
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> graph_owner(graph, agclose);
  if (gvLayout(context, graph, "dot") != 0) {
    graphviz_errors = nullptr;
    return absl::InternalError(absl::StrCat("Graphviz layout failed: ", errors));
  }
  // Rendering into a memory stream: gvRenderData corrupts the heap in Debian 12's Graphviz 2.42
  // on large drawings.
  char* data = nullptr;
  size_t length = 0;
  FILE* stream = open_memstream(&data, &length);
  if (stream == nullptr) {
    gvFreeLayout(context, graph);
    graphviz_errors = nullptr;
    return absl::InternalError("cannot open a memory stream for Graphviz");
  }
  const int rendered = gvRender(context, graph, format.c_str(), stream);
  std::fclose(stream);
  std::string output;
  if (rendered == 0 && data != nullptr) output.assign(data, length);
  std::free(data);
  gvFreeLayout(context, graph);
  graphviz_errors = nullptr;
  if (rendered != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Graphviz could not render format \"", format, "\": ", errors));
  }
  return output;
}

absl::StatusOr<std::vector<TimelineAnomaly>> ParseAnomalies(const std::string& text) {
  std::vector<TimelineAnomaly> anomalies;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const nlohmann::json parsed =
        nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object() || !parsed.contains("time_us") || !parsed["time_us"].is_number_integer() ||
        !parsed.contains("name") || !parsed["name"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "anomalies line ", line_number,
          ": expected {\"time_us\": int, \"process\": string, \"name\": string, \"detail\": string}"));
    }
    TimelineAnomaly anomaly;
    anomaly.time_us = parsed["time_us"].get<int64_t>();
    anomaly.name = parsed["name"].get<std::string>();
    if (parsed.contains("process") && parsed["process"].is_string()) {
      anomaly.process = parsed["process"].get<std::string>();
    }
    if (parsed.contains("detail") && parsed["detail"].is_string()) {
      anomaly.detail = parsed["detail"].get<std::string>();
    }
    anomalies.push_back(std::move(anomaly));
  }
  return anomalies;
}

}  // namespace runnel::visualize
