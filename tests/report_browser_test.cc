// The HTML report in a real browser: a simulated run whose checker finds anomalies is written as a
// report, loaded in headless Chromium (Debian's chromium), and the test fails on any console
// message (errors and uncaught exceptions are logged there) or when the page's own check did not
// mark it rendered (the timeline SVG present). A deliberately broken report must be caught by the
// same check, so the check is known to work.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "sim/scenario_loader.h"
#include "sim/scenario_world.h"
#include "visualize/report.h"

namespace runnel::visualize {
namespace {

constexpr char kChromium[] = "/usr/bin/chromium";
// Chromium gets this long to load a page; a hang fails the test rather than blocking CI.
constexpr int kBrowserTimeoutS = 60;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Loads `html_path` in headless Chromium; returns what is wrong with the page, or "" when it
// rendered with no console message.
std::string BrowserProblems(const std::string& html_path, const std::string& work) {
  const std::string dom_path = work + "/dom.html";
  const std::string log_path = work + "/chromium.log";
  const std::string command = absl::StrCat(
      "timeout ", kBrowserTimeoutS, " ", kChromium,
      " --headless=new --no-sandbox --disable-gpu --no-first-run --user-data-dir=", work,
      "/profile --enable-logging=stderr --v=0 --dump-dom file://", html_path, " > ", dom_path,
      " 2> ", log_path);
  const int status = std::system(command.c_str());
  if (status != 0) return absl::StrCat("chromium failed (status ", status, "): ", ReadAll(log_path));
  std::string problems;
  for (absl::string_view line : absl::StrSplit(ReadAll(log_path), '\n')) {
    if (absl::StrContains(line, ":CONSOLE")) absl::StrAppend(&problems, line, "\n");
  }
  const std::string dom = ReadAll(dom_path);
  if (!absl::StrContains(dom, "data-rendered=\"yes\"")) {
    absl::StrAppend(&problems, "the page did not mark itself rendered\n");
  }
  if (!absl::StrContains(dom, "<svg")) absl::StrAppend(&problems, "no SVG in the page\n");
  return problems;
}

class ReportBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kChromium)) {
      GTEST_SKIP() << kChromium << " is not installed (scripts/install-deps installs it)";
    }
    work_ = ::testing::TempDir() + "report_browser_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(work_);
    std::filesystem::create_directories(work_);
  }
  std::string work_;
};

// Power losses under flush.policy=never: the report has anomalies, faults and a windowed timeline.
ReportInput FailingRun(const std::string& work) {
  absl::StatusOr<sim::scenario::Scenario> scenario = sim::ParseScenario(R"pb(
    description: "power losses without fsync"
    topics { name: "events" partitions: 2 configs { key: "flush.policy" value: "never" } }
    producers { rate_per_s: 100 acks: ACKS_LEADER }
    consumers { assign {} }
    run { duration_ms: 5000 }
    faults { at { at_ms: 2000 power_loss { downtime_ms: 200 } } }
    expect { verdict: FAIL }
  )pb", "browser.textproto");
  EXPECT_TRUE(scenario.ok()) << scenario.status();
  sim::ScenarioRunOptions options;
  options.trace_path = work + "/trace.bin";
  sim::ScenarioWorld world(*scenario, options);
  const sim::ScenarioResult result = world.Run();
  EXPECT_EQ(result.verdict, "FAIL");
  ReportInput input;
  input.title = scenario->name();
  input.description = scenario->description();
  input.verdict = result.verdict;
  input.as_expected = result.as_expected;
  input.expectation = "expected FAIL";
  input.summary = {{"seed", "1"}, {"trace digest", result.digest}};
  input.replay_command = "runnel-sim run browser.textproto --seed=1";
  input.trace_path = options.trace_path;
  for (const model::Anomaly& anomaly : result.anomalies) {
    input.anomalies.push_back(ReportAnomaly{anomaly.name, anomaly.time_us, anomaly.process,
                                            anomaly.partition.topic, anomaly.offset,
                                            anomaly.detail});
  }
  for (const sim::InjectedFault& fault : result.faults) {
    input.faults.push_back(ReportFault{fault.time_us, fault.kind, fault.target, fault.detail});
  }
  return input;
}

TEST_F(ReportBrowserTest, ReportRendersWithoutErrors) {
  const ReportInput input = FailingRun(work_);
  ASSERT_FALSE(input.anomalies.empty());
  ASSERT_TRUE(WriteReport(input, work_).ok());
  const std::string problems = BrowserProblems(work_ + "/index.html", work_);
  EXPECT_EQ(problems, "");
  const std::string dom = ReadAll(work_ + "/dom.html");
  EXPECT_TRUE(absl::StrContains(dom, "id=\"anomaly-0\"")) << "the first anomaly's mark";
  EXPECT_TRUE(absl::StrContains(dom, "id=\"summary\""));
  EXPECT_TRUE(absl::StrContains(dom, "runnel-sim run browser.textproto --seed=1"));
}

TEST_F(ReportBrowserTest, BrokenReportIsCaught) {
  const ReportInput input = FailingRun(work_);
  // No timeline: the page's own check throws, which the console shows.
  const std::string path = work_ + "/broken.html";
  std::ofstream(path) << ReportHtml(input, "");
  const std::string problems = BrowserProblems(path, work_);
  EXPECT_TRUE(absl::StrContains(problems, "Uncaught")) << problems;
  EXPECT_TRUE(absl::StrContains(problems, "did not mark itself rendered")) << problems;
}

}  // namespace
}  // namespace runnel::visualize
