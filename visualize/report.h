// The HTML report of one simulated run: DIR/index.html, self-contained (inline CSS, the timeline
// SVG inline, no network resources), showing the scenario, the verdict, the summary, the anomalies
// (each linking to its mark on the timeline), the fault log, the timeline and the command that
// replays the run. Everything that comes from data is HTML-escaped. A small script checks, when
// the page loads, that the timeline is there and marks the page rendered
// (document.body.dataset.rendered = "yes"), so that a headless browser can tell a complete page
// from a broken one.
//
// A large run gets a window of the timeline: around the first anomaly when there is one (from a
// little before it to a little after), else the whole run scaled to TimelineOptions::rows_max rows;
// the timeline's note says what was left out.
#ifndef RUNNEL_VISUALIZE_REPORT_H_
#define RUNNEL_VISUALIZE_REPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "visualize/timeline.h"

namespace runnel::visualize {

struct ReportAnomaly {
  std::string name;
  int64_t time_us = 0;
  std::string process;
  std::string partition;  // "topic-3", or empty
  int64_t offset = -1;
  std::string detail;
};

struct ReportFault {
  int64_t time_us = 0;
  std::string kind;
  std::string target;
  std::string detail;
};

struct ReportInput {
  std::string title;
  std::string description;
  std::string verdict;  // "PASS" or "FAIL"
  bool as_expected = true;
  std::string expectation;  // e.g. "expected PASS"
  // Key and value lines, in order (seed, simulated time, speed-up, digest, ...).
  std::vector<std::pair<std::string, std::string>> summary;
  std::string replay_command;
  std::string trace_path;  // the timeline is drawn from this trace file
  std::vector<ReportAnomaly> anomalies;
  std::vector<ReportFault> faults;
  // Filters for the timeline; when no window is given, WriteReport chooses one (file comment).
  TimelineOptions timeline;
};

// How far before and after the first anomaly the default window of a report reaches.
inline constexpr int64_t kReportWindowBeforeAnomalyUs = 5'000'000;
inline constexpr int64_t kReportWindowAfterAnomalyUs = 2'000'000;
// The most anomalies and faults listed in a report's tables; the rest are counted.
inline constexpr size_t kReportRowsMax = 500;

// Writes DIR/index.html and DIR/timeline.svg (the same drawing, for viewing alone). DIR must exist.
absl::Status WriteReport(const ReportInput& input, const std::string& directory);

// The HTML text of the report with the given SVG drawing (for tests).
std::string ReportHtml(const ReportInput& input, const std::string& svg);

std::string HtmlEscape(std::string_view text);

}  // namespace runnel::visualize

#endif  // RUNNEL_VISUALIZE_REPORT_H_
