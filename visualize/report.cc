#include "visualize/report.h"

#include <fstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace runnel::visualize {

namespace {

std::string Seconds(int64_t time_us) {
  return absl::StrFormat("%.3f s", static_cast<double>(time_us) / 1e6);
}

// The SVG element alone: Graphviz writes an XML declaration and a DOCTYPE before it, which have
// no place inside HTML.
std::string SvgElement(const std::string& svg) {
  const size_t start = svg.find("<svg");
  return start == std::string::npos ? std::string() : svg.substr(start);
}

constexpr char kStyle[] = R"css(
body { font-family: system-ui, -apple-system, Helvetica, Arial, sans-serif; margin: 1.5em; color: #1d2330; }
h1 { margin-bottom: 0.2em; }
.description { color: #4a5365; max-width: 60em; }
.verdict { display: inline-block; padding: 0.3em 0.9em; border-radius: 0.3em; font-weight: bold; font-size: 1.4em; }
.pass { background: #c8ecc8; } .fail { background: #f5a8a8; }
.expectation { margin-left: 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #d0d5de; padding: 0.25em 0.6em; text-align: left; vertical-align: top; font-size: 0.9em; }
th { background: #eef1f6; }
pre { background: #f4f6fa; padding: 0.7em; overflow-x: auto; }
.timeline { overflow: auto; border: 1px solid #d0d5de; max-height: 90vh; }
.anomaly-name { color: #b00020; font-weight: bold; }
)css";

constexpr char kScript[] = R"js(
document.addEventListener("DOMContentLoaded", function () {
  var timeline = document.querySelector("#timeline svg");
  if (!timeline) throw new Error("the timeline is missing");
  document.body.dataset.rendered = "yes";
});
)js";

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': escaped += "&amp;"; break;
      case '<': escaped += "&lt;"; break;
      case '>': escaped += "&gt;"; break;
      case '"': escaped += "&quot;"; break;
      case '\'': escaped += "&#39;"; break;
      default: escaped += c;
    }
  }
  return escaped;
}

std::string ReportHtml(const ReportInput& input, const std::string& svg) {
  const bool passed = input.verdict == "PASS";
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  absl::StrAppend(&html, "<title>", HtmlEscape(input.title), " - runnel-sim report</title>\n");
  absl::StrAppend(&html, "<style>", kStyle, "</style>\n<script>", kScript, "</script>\n</head>\n");
  absl::StrAppend(&html, "<body>\n<h1>", HtmlEscape(input.title), "</h1>\n");
  if (!input.description.empty()) {
    absl::StrAppend(&html, "<p class=\"description\">", HtmlEscape(input.description), "</p>\n");
  }
  absl::StrAppend(&html, "<p><span id=\"verdict\" class=\"verdict ", passed ? "pass" : "fail", "\">",
                  HtmlEscape(input.verdict), "</span><span class=\"expectation\">",
                  input.as_expected ? "as expected" : "<b>NOT as expected</b>", " (",
                  HtmlEscape(input.expectation), ")</span></p>\n");

  absl::StrAppend(&html, "<h2>Summary</h2>\n<table id=\"summary\">\n");
  for (const auto& [key, value] : input.summary) {
    absl::StrAppend(&html, "<tr><th>", HtmlEscape(key), "</th><td>", HtmlEscape(value),
                    "</td></tr>\n");
  }
  absl::StrAppend(&html, "</table>\n");

  absl::StrAppend(&html, "<h2>Replay</h2>\n<pre id=\"replay\">", HtmlEscape(input.replay_command),
                  "</pre>\n");

  absl::StrAppend(&html, "<h2>Anomalies (", input.anomalies.size(), ")</h2>\n");
  if (input.anomalies.empty()) {
    absl::StrAppend(&html, "<p>None: every check held.</p>\n");
  } else {
    absl::StrAppend(&html, "<table id=\"anomalies\">\n<tr><th>anomaly</th><th>time</th>",
                    "<th>process</th><th>partition@offset</th><th>what was seen</th></tr>\n");
    for (size_t i = 0; i < input.anomalies.size() && i < kReportRowsMax; ++i) {
      const ReportAnomaly& anomaly = input.anomalies[i];
      std::string where = anomaly.partition;
      if (!where.empty() && anomaly.offset >= 0) absl::StrAppend(&where, "@", anomaly.offset);
      absl::StrAppend(&html, "<tr><td><a class=\"anomaly-name\" href=\"#anomaly-", i, "\">",
                      HtmlEscape(anomaly.name), "</a></td><td>", Seconds(anomaly.time_us),
                      "</td><td>", HtmlEscape(anomaly.process), "</td><td>", HtmlEscape(where),
                      "</td><td>", HtmlEscape(anomaly.detail), "</td></tr>\n");
    }
    absl::StrAppend(&html, "</table>\n");
    if (input.anomalies.size() > kReportRowsMax) {
      absl::StrAppend(&html, "<p>... and ", input.anomalies.size() - kReportRowsMax,
                      " more.</p>\n");
    }
  }

  absl::StrAppend(&html, "<h2>Faults (", input.faults.size(), ")</h2>\n");
  if (!input.faults.empty()) {
    absl::StrAppend(&html, "<table id=\"faults\">\n<tr><th>time</th><th>fault</th><th>target</th>",
                    "<th>detail</th></tr>\n");
    for (size_t i = 0; i < input.faults.size() && i < kReportRowsMax; ++i) {
      const ReportFault& fault = input.faults[i];
      absl::StrAppend(&html, "<tr><td>", Seconds(fault.time_us), "</td><td>",
                      HtmlEscape(fault.kind), "</td><td>", HtmlEscape(fault.target), "</td><td>",
                      HtmlEscape(fault.detail), "</td></tr>\n");
    }
    absl::StrAppend(&html, "</table>\n");
    if (input.faults.size() > kReportRowsMax) {
      absl::StrAppend(&html, "<p>... and ", input.faults.size() - kReportRowsMax, " more.</p>\n");
    }
  }

  absl::StrAppend(&html, "<h2>Timeline</h2>\n<p>One lane per node, time flowing down. Arrows are ",
                  "messages (bundled, with counts); coloured boxes are faults and role changes; ",
                  "red boxes are anomalies. <a href=\"timeline.svg\">Open the drawing alone</a>.",
                  "</p>\n<div id=\"timeline\" class=\"timeline\">\n", SvgElement(svg),
                  "\n</div>\n</body>\n</html>\n");
  return html;
}

absl::Status WriteReport(const ReportInput& input, const std::string& directory) {
  sim::TraceFileContents trace;
  absl::Status read = sim::ReadTraceFile(input.trace_path, &trace);
  if (!read.ok()) return read;
  std::vector<TimelineAnomaly> marks;
  for (const ReportAnomaly& anomaly : input.anomalies) {
    marks.push_back(TimelineAnomaly{anomaly.time_us, anomaly.process, anomaly.name,
                                    anomaly.detail});
  }
  TimelineOptions options = input.timeline;
  if (options.from_us == 0 && options.to_us < 0 && !input.anomalies.empty()) {
    int64_t first_us = input.anomalies.front().time_us;
    for (const ReportAnomaly& anomaly : input.anomalies) first_us = std::min(first_us, anomaly.time_us);
    options.from_us = std::max<int64_t>(0, first_us - kReportWindowBeforeAnomalyUs);
    options.to_us = first_us + kReportWindowAfterAnomalyUs;
  }
  absl::StatusOr<std::string> svg = RenderDot(TimelineDot(trace, marks, options), "svg");
  if (!svg.ok()) return svg.status();
  const std::string html = ReportHtml(input, *svg);
  for (const auto& [name, content] : {std::pair<std::string, const std::string*>{"index.html", &html},
                                      {"timeline.svg", &*svg}}) {
    const std::string path = absl::StrCat(directory, "/", name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << *content;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace runnel::visualize
