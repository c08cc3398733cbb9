// Timelines and reports (visualize/): a real simulated run's trace is drawn with a lane per node,
// faults and anomalies marked, filters applied with a note of what they left out, rendered to SVG
// by Graphviz; and the report escapes whatever comes from data.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/scenario_loader.h"
#include "sim/scenario_world.h"
#include "visualize/report.h"
#include "visualize/timeline.h"

namespace runnel::visualize {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Where SampleTrace wrote its file: one per test process, since ctest runs each test case in its
// own process, several at once.
const std::string& SampleTracePath() {
  static const std::string* path = new std::string(
      ::testing::TempDir() + "visualize_sample_" +
      ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".trace");
  return *path;
}

// A short run with a crash, a partition and two topics, traced to a file.
const sim::TraceFileContents& SampleTrace() {
  static const sim::TraceFileContents* trace = [] {
    absl::StatusOr<sim::scenario::Scenario> scenario = sim::ParseScenario(R"pb(
      topics { name: "orders" partitions: 2 }
      topics { name: "audit" }
      producers { rate_per_s: 50 }
      consumers { assign {} }
      run { duration_ms: 4000 }
      faults {
        at { at_ms: 1000 crash { downtime_ms: 300 } }
        at { at_ms: 2500 partition { side_a: "broker-0" duration_ms: 500 } }
      }
    )pb", "sample.textproto");
    EXPECT_TRUE(scenario.ok()) << scenario.status();
    sim::ScenarioRunOptions options;
    options.trace_path = SampleTracePath();
    sim::ScenarioWorld world(*scenario, options);
    world.Run();
    auto* contents = new sim::TraceFileContents;
    EXPECT_TRUE(sim::ReadTraceFile(options.trace_path, contents).ok());
    return contents;
  }();
  return *trace;
}

TEST(TimelineTest, LanesFaultsMessagesAndAnomalies) {
  const std::vector<TimelineAnomaly> anomalies = {
      {1'500'000, "consumer-0", "lost-write", "orders-1@3 went missing"}};
  const std::string dot = TimelineDot(SampleTrace(), anomalies, TimelineOptions{});
  for (const char* lane : {"broker-0", "producer-0", "consumer-0"}) {
    EXPECT_THAT(dot, HasSubstr(absl::StrCat("label=\"", lane, "\"")));
  }
  EXPECT_THAT(dot, HasSubstr("FAULT crash"));
  EXPECT_THAT(dot, HasSubstr("FAULT partition"));
  EXPECT_THAT(dot, HasSubstr("CRASH"));
  EXPECT_THAT(dot, HasSubstr("id=\"anomaly-0\""));
  EXPECT_THAT(dot, HasSubstr("lost-write @ 1.500 s"));
  EXPECT_THAT(dot, HasSubstr("color=red"));
  EXPECT_THAT(dot, HasSubstr("messages:"));
  EXPECT_THAT(dot, HasSubstr("constraint=false, color=\"#3b6fc4a0\""));
}

TEST(TimelineTest, FiltersSayWhatTheyLeaveOut) {
  TimelineOptions options;
  options.nodes = {"broker-*", "consumer-0"};
  options.from_us = 2'000'000;
  options.to_us = 3'000'000;
  options.partition = "orders-0";
  options.arrows_max = 3;
  const std::string dot = TimelineDot(SampleTrace(), {}, options);
  EXPECT_THAT(dot, Not(HasSubstr("label=\"producer-0\"")));
  EXPECT_THAT(dot, HasSubstr("label=\"broker-0\""));
  EXPECT_THAT(dot, HasSubstr("window 2.000 s .. 3.000 s"));
  EXPECT_THAT(dot, HasSubstr("outside the window"));
  EXPECT_THAT(dot, HasSubstr("1 nodes hidden"));
  EXPECT_THAT(dot, HasSubstr("of other partitions than orders-0"));
  EXPECT_THAT(dot, HasSubstr("not drawn beyond the cap of 3"));
  EXPECT_THAT(dot, Not(HasSubstr("FAULT crash")));  // at 1 s, outside the window
}

TEST(TimelineTest, RendersSvgWithGraphviz) {
  absl::StatusOr<std::string> svg = RenderDot(TimelineDot(SampleTrace(), {}, {}), "svg");
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_THAT(*svg, HasSubstr("<svg"));
  EXPECT_THAT(*svg, HasSubstr("broker&#45;0"));  // Graphviz escapes the dash
  EXPECT_FALSE(RenderDot("digraph { a -> ", "svg").ok());
  EXPECT_FALSE(RenderDot("digraph { a -> b }", "no-such-format").ok());
}

TEST(TimelineTest, AnomaliesFileErrorsNameTheLine) {
  absl::StatusOr<std::vector<TimelineAnomaly>> parsed = ParseAnomalies(
      "{\"time_us\": 5, \"process\": \"c\", \"name\": \"unseen\", \"detail\": \"d\"}\n\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].name, "unseen");
  absl::StatusOr<std::vector<TimelineAnomaly>> bad =
      ParseAnomalies("{\"time_us\": 5, \"name\": \"x\"}\n{\"time_us\": \"soon\"}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("line 2"));
}

TEST(TimelineTest, TraceErrorsNameTheFile) {
  const std::string path = SampleTracePath() + ".truncated";
  {
    SampleTrace();
    std::ifstream in(SampleTracePath(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 100u);
    std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() - 7);
  }
  sim::TraceFileContents contents;
  const absl::Status read = sim::ReadTraceFile(path, &contents);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(std::string(read.message()), HasSubstr(path));
}

TEST(ReportTest, EscapesDataAndLinksAnomalies) {
  ReportInput input;
  input.title = "<script>alert(1)</script>";
  input.verdict = "FAIL";
  input.as_expected = false;
  input.expectation = "expected PASS";
  input.summary = {{"seed", "7"}, {"value", "<b>&</b>"}};
  input.replay_command = "runnel-sim run 'x.textproto' --seed=7";
  input.anomalies = {{"lost-write", 5, "c\"0", "t-1", 3, "value '<img src=x>'"}};
  input.faults = {{1, "crash", "broker-0", "<x>"}};
  const std::string html = ReportHtml(input, "<?xml version=\"1.0\"?><svg id=\"s\"></svg>");
  EXPECT_THAT(html, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;b&gt;&amp;&lt;/b&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;img src=x&gt;"));
  EXPECT_THAT(html, HasSubstr("href=\"#anomaly-0\""));
  EXPECT_THAT(html, HasSubstr("t-1@3"));
  EXPECT_THAT(html, HasSubstr("NOT as expected"));
  EXPECT_THAT(html, HasSubstr("runnel-sim run &#39;x.textproto&#39; --seed=7"));
  EXPECT_THAT(html, HasSubstr("<svg id=\"s\">"));
  EXPECT_THAT(html, Not(HasSubstr("<?xml")));
}

}  // namespace
}  // namespace runnel::visualize
