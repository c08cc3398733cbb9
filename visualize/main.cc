// runnel-viz: draws a simulated run's trace as a space-time timeline (visualize/timeline.h).
//
//   runnel-viz TRACE -o timeline.svg [--nodes=a,b*] [--from_ms=MS] [--to_ms=MS]
//              [--partition=topic-3] [--rows=N] [--arrows=N] [--format=svg|dot|png]
//              [--anomalies=FILE]
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "visualize/timeline.h"

ABSL_FLAG(std::string, o, "", "Write the drawing to this file (required).");
ABSL_FLAG(std::string, nodes, "", "Comma-separated node names or '*' patterns to show (default all).");
ABSL_FLAG(int64_t, from_ms, 0, "Start of the time window, in simulated milliseconds.");
ABSL_FLAG(int64_t, to_ms, -1, "End of the time window (default: the end of the trace).");
ABSL_FLAG(std::string, partition, "", "Show only this partition's events (\"topic-3\").");
ABSL_FLAG(int, rows, runnel::visualize::TimelineOptions::kRowsMaxDefault,
          "The most time rows in the drawing.");
ABSL_FLAG(int, arrows, runnel::visualize::TimelineOptions::kArrowsMaxDefault,
          "The most message arrows drawn (busiest first).");
ABSL_FLAG(std::string, format, "svg", "svg, dot (the Graphviz source), png, or another Graphviz format.");
ABSL_FLAG(std::string, anomalies, "",
          "JSON lines of anomalies to mark: {\"time_us\", \"process\", \"name\", \"detail\"}.");

namespace {

constexpr int kRowsMax = 1000;
constexpr int kArrowsMax = 100'000;

int Fail(const std::string& message) {
  std::cerr << "runnel-viz: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("draws a runnel-sim trace as a timeline.\n\n  runnel-viz TRACE -o timeline.svg [options]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2 || absl::GetFlag(FLAGS_o).empty()) {
    return Fail("usage: runnel-viz TRACE -o timeline.svg [--nodes=..] [--from_ms=..] [--to_ms=..] "
                "[--partition=..] [--format=svg|dot|png] [--anomalies=FILE]");
  }
  runnel::visualize::TimelineOptions options;
  const std::string nodes = absl::GetFlag(FLAGS_nodes);
  if (!nodes.empty()) options.nodes = absl::StrSplit(nodes, ',', absl::SkipEmpty());
  options.from_us = absl::GetFlag(FLAGS_from_ms) * 1000;
  options.to_us = absl::GetFlag(FLAGS_to_ms) < 0 ? -1 : absl::GetFlag(FLAGS_to_ms) * 1000;
  options.partition = absl::GetFlag(FLAGS_partition);
  options.rows_max = absl::GetFlag(FLAGS_rows);
  options.arrows_max = absl::GetFlag(FLAGS_arrows);
  if (options.rows_max < 1 || options.rows_max > kRowsMax) {
    return Fail("--rows must be between 1 and " + std::to_string(kRowsMax));
  }
  if (options.arrows_max < 0 || options.arrows_max > kArrowsMax) {
    return Fail("--arrows must be between 0 and " + std::to_string(kArrowsMax));
  }
  if (options.from_us < 0 || (options.to_us >= 0 && options.to_us < options.from_us)) {
    return Fail("--from_ms must be >= 0 and --to_ms at or after it");
  }
  runnel::sim::TraceFileContents trace;
  absl::Status read = runnel::sim::ReadTraceFile(args[1], &trace);
  if (!read.ok()) return Fail(std::string(read.message()));
  std::vector<runnel::visualize::TimelineAnomaly> anomalies;
  if (!absl::GetFlag(FLAGS_anomalies).empty()) {
    std::ifstream in(absl::GetFlag(FLAGS_anomalies));
    if (!in) return Fail("cannot open " + absl::GetFlag(FLAGS_anomalies));
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::vector<runnel::visualize::TimelineAnomaly>> parsed =
        runnel::visualize::ParseAnomalies(text.str());
    if (!parsed.ok()) return Fail(absl::GetFlag(FLAGS_anomalies) + ": " + std::string(parsed.status().message()));
    anomalies = *std::move(parsed);
  }
  const std::string dot = runnel::visualize::TimelineDot(trace, anomalies, options);
  std::string output = dot;
  if (absl::GetFlag(FLAGS_format) != "dot") {
    absl::StatusOr<std::string> rendered = runnel::visualize::RenderDot(dot, absl::GetFlag(FLAGS_format));
    if (!rendered.ok()) return Fail(std::string(rendered.status().message()));
    output = *std::move(rendered);
  }
  std::ofstream out(absl::GetFlag(FLAGS_o), std::ios::binary | std::ios::trunc);
  out << output;
  out.close();
  if (!out) return Fail("cannot write " + absl::GetFlag(FLAGS_o));
  return 0;
}
