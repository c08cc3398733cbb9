// The scenario commands run on the developer's machine, outside the simulation: they may read the
// real clock (for wall time and speed-up) and start processes. Nothing here reaches a simulated
// run's state.
#include "sim/scenario_commands.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <ostream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "sim/scenario_loader.h"
#include "sim/scenario_world.h"
#include "visualize/report.h"

namespace runnel::sim {

namespace {

// Anomalies printed one per line in the summary; the rest are counted.
constexpr size_t kAnomaliesPrintedMax = 20;
// Output kept from one swarm child (its brief line and any error text).
constexpr size_t kChildOutputBytesMax = 64 * 1024;

std::string ShellQuote(absl::string_view text) {
  if (!text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789_-./=:,") == absl::string_view::npos) {
    return std::string(text);
  }
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string ReplayCommand(absl::string_view program, absl::string_view path, uint64_t seed) {
  return absl::StrCat(ShellQuote(program), " run ", ShellQuote(path), " --seed=", seed);
}

// Anomaly names with their counts, "lost-write x3, unseen".
std::string AnomalyNames(const ScenarioResult& result) {
  std::map<std::string, int> counts;
  for (const model::Anomaly& anomaly : result.anomalies) ++counts[anomaly.name];
  std::vector<std::string> parts;
  for (const auto& [name, count] : counts) {
    parts.push_back(count == 1 ? name : absl::StrCat(name, " x", count));
  }
  return absl::StrJoin(parts, ", ");
}

std::string AnomalyLocation(const model::Anomaly& anomaly) {
  std::string where = absl::StrFormat("%.3f s", static_cast<double>(anomaly.time_us) / 1e6);
  if (!anomaly.process.empty()) absl::StrAppend(&where, " ", anomaly.process);
  if (!anomaly.partition.topic.empty()) {
    absl::StrAppend(&where, " ", anomaly.partition.topic, "-", anomaly.partition.partition);
    if (anomaly.offset >= 0) absl::StrAppend(&where, "@", anomaly.offset);
  }
  return where;
}

}  // namespace

int RunScenarioCommand(const RunCommandOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<scenario::Scenario> loaded = LoadScenarioFile(options.scenario_path);
  if (!loaded.ok()) {
    err << "runnel-sim: " << loaded.status().message() << "\n";
    return 2;
  }
  const std::string replay = ReplayCommand(options.program, options.scenario_path, options.seed);
  ScenarioRunOptions run;
  run.seed = options.seed;
  run.echo_logs = options.echo_logs;
  run.source = options.scenario_path;
  run.trace_path = options.trace_path;
  if (!options.report_directory.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.report_directory, error);
    if (error) {
      err << "runnel-sim: cannot create the report directory " << options.report_directory
          << ": " << error.message() << "\n";
      return 2;
    }
    // The report draws its timeline from the trace, which then lives beside it.
    if (run.trace_path.empty()) run.trace_path = options.report_directory + "/trace.bin";
  }

  const auto wall_start = std::chrono::steady_clock::now();
  ScenarioWorld world(*loaded, run);
  const ScenarioResult result = world.Run();
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double simulated_s = static_cast<double>(result.simulated_us) / 1e6;

  if (!options.history_path.empty()) {
    std::ofstream history(options.history_path, std::ios::binary | std::ios::trunc);
    world.history().WriteJsonLines(history);
    history.close();
    if (!history) {
      err << "runnel-sim: cannot write the history to " << options.history_path << "\n";
      return 2;
    }
  }

  const std::string expected = world.scenario().expect().verdict() == scenario::FAIL ? "FAIL"
                                                                                     : "PASS";
  if (options.brief) {
    out << absl::StrFormat("seed %d %s %s%s%s digest %s\n", options.seed, result.verdict,
                           result.as_expected ? "as-expected" : "UNEXPECTED",
                           result.anomalies.empty() ? "" : " anomalies: ",
                           AnomalyNames(result), result.digest);
    return result.as_expected ? 0 : 1;
  }

  std::vector<std::pair<std::string, std::string>> summary;
  auto line = [&](std::string key, std::string value) {
    out << absl::StrFormat("  %-20s %s\n", key, value);
    summary.push_back({std::move(key), std::move(value)});
  };
  out << absl::StrFormat("runnel-sim run: %s (%s), seed %d\n", world.scenario().name(),
                         options.scenario_path, options.seed);
  line("simulated time", absl::StrFormat("%.3f s", simulated_s));
  line("wall time", absl::StrFormat("%.3f s", wall_s));
  line("speed-up", absl::StrFormat("%.0fx simulated per wall second",
                                   wall_s > 0 ? simulated_s / wall_s : 0.0));
  line("events", absl::StrFormat("%d (%d in the trace)", result.events, result.trace_events));
  line("faults", absl::StrFormat("%d injected", result.faults_injected));
  if (!result.drawn_fault_mix.empty()) line("fault mix", result.drawn_fault_mix);
  line("sends", absl::StrFormat("%d invoked: %d ok, %d failed, %d indeterminate",
                                result.sends_invoked, result.sends_ok, result.sends_failed,
                                result.sends_indeterminate));
  line("reads", absl::StrFormat("%d polls, %d records", result.polls, result.records_read));
  line("commits", absl::StrFormat("%d ok, %d failed", result.commits_ok, result.commits_failed));
  line("settled", result.settled ? "yes" : "NO");
  line("anomalies", result.anomalies.empty()
                        ? std::string("none")
                        : absl::StrCat(result.anomalies.size() + result.anomalies_not_kept, ": ",
                                       AnomalyNames(result)));
  for (size_t i = 0; i < result.anomalies.size() && i < kAnomaliesPrintedMax; ++i) {
    const model::Anomaly& anomaly = result.anomalies[i];
    out << "    " << anomaly.name << " (" << AnomalyLocation(anomaly) << "): " << anomaly.detail
        << "\n";
  }
  if (result.anomalies.size() > kAnomaliesPrintedMax) {
    out << "    ... and " << result.anomalies.size() - kAnomaliesPrintedMax << " more\n";
  }
  line("verdict", absl::StrCat(result.verdict, result.as_expected
                                                   ? absl::StrCat(" (as expected)")
                                                   : absl::StrCat(" (UNEXPECTED: ",
                                                                  result.expectation_note, ")")));
  line("replay", replay);
  if (!run.trace_path.empty()) line("trace", run.trace_path);
  if (!options.history_path.empty()) line("history", options.history_path);
  line("trace digest", result.digest);

  if (!options.report_directory.empty()) {
    visualize::ReportInput report;
    report.title = world.scenario().name();
    report.description = world.scenario().description();
    report.verdict = result.verdict;
    report.as_expected = result.as_expected;
    report.expectation = absl::StrCat("expected ", expected,
                                      result.expectation_note.empty()
                                          ? std::string()
                                          : absl::StrCat(": ", result.expectation_note));
    report.summary = summary;
    report.replay_command = replay;
    report.trace_path = run.trace_path;
    for (const model::Anomaly& anomaly : result.anomalies) {
      visualize::ReportAnomaly item;
      item.name = anomaly.name;
      item.time_us = anomaly.time_us;
      item.process = anomaly.process;
      if (!anomaly.partition.topic.empty()) {
        item.partition = absl::StrCat(anomaly.partition.topic, "-", anomaly.partition.partition);
      }
      item.offset = anomaly.offset;
      item.detail = anomaly.detail;
      report.anomalies.push_back(std::move(item));
    }
    for (const InjectedFault& fault : result.faults) {
      report.faults.push_back(visualize::ReportFault{fault.time_us, fault.kind, fault.target,
                                                     fault.detail});
    }
    absl::Status written = visualize::WriteReport(report, options.report_directory);
    if (!written.ok()) {
      err << "runnel-sim: the report was not written: " << written.message() << "\n";
      return 2;
    }
    out << absl::StrFormat("  %-20s %s/index.html\n", "report", options.report_directory);
  }
  return result.as_expected ? 0 : 1;
}

absl::StatusOr<SeedRange> ParseSeedRange(absl::string_view seeds, absl::string_view shard) {
  SeedRange range;
  std::vector<absl::string_view> ends = absl::StrSplit(seeds, "..");
  if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], &range.first) ||
      !absl::SimpleAtoi(ends[1], &range.last) || range.first > range.last) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seeds must be A..B with A <= B, both non-negative integers; got \"",
                     seeds, "\""));
  }
  if (range.last - range.first >= SwarmCommandOptions::kSeedsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seeds spans more than ", SwarmCommandOptions::kSeedsMax, " seeds"));
  }
  if (!shard.empty()) {
    std::vector<absl::string_view> parts = absl::StrSplit(shard, '/');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &range.shard_index) ||
        !absl::SimpleAtoi(parts[1], &range.shard_count) || range.shard_count == 0 ||
        range.shard_index >= range.shard_count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shard must be I/N with 0 <= I < N (shard I of N); got \"", shard, "\""));
    }
  }
  return range;
}

namespace {

struct Child {
  pid_t pid = -1;
  uint64_t seed = 0;
  int output_fd = -1;
  std::string output;
  std::chrono::steady_clock::time_point started;
};

// Starts a child process that runs `run` (RunScenarioCommand) with its stdout and stderr going to
// a pipe; returns the child, or an error. The child is a fork of this process, not a new program:
// an exec would load some sixty shared libraries and run their initializers again for every
// seed, which cost more than a short scenario itself. runnel-sim runs no threads, so the fork
// copies a consistent process. The child never returns: it _exits with the command's status.
absl::StatusOr<Child> Spawn(const RunCommandOptions& run, std::ostream& out, std::ostream& err) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  // Whatever the streams hold would otherwise be written twice, by the child too.
  out.flush();
  err.flush();
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(error)));
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    const int status = RunScenarioCommand(run, std::cout, std::cerr);
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    _exit(status);
  }
  close(fds[1]);
  Child child;
  child.pid = pid;
  child.seed = run.seed;
  child.output_fd = fds[0];
  child.started = std::chrono::steady_clock::now();
  return child;
}

// Reads what is available from the child's pipe; false once it is closed.
bool Drain(Child& child) {
  char buffer[4096];
  const ssize_t got = read(child.output_fd, buffer, sizeof(buffer));
  if (got > 0) {
    const size_t room = kChildOutputBytesMax - std::min(kChildOutputBytesMax, child.output.size());
    child.output.append(buffer, std::min(room, static_cast<size_t>(got)));
    return true;
  }
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  return false;
}

double ChildrenCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int RunSwarmCommand(const SwarmCommandOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<SeedRange> range = ParseSeedRange(options.seeds, options.shard);
  if (!range.ok()) {
    err << "runnel-sim: " << range.status().message() << "\n";
    return 2;
  }
  if (options.jobs < 1 || options.jobs > SwarmCommandOptions::kJobsMax) {
    err << "runnel-sim: --jobs must be between 1 and " << SwarmCommandOptions::kJobsMax << "\n";
    return 2;
  }
  // A bad file is reported once, here, rather than by every child.
  absl::StatusOr<scenario::Scenario> loaded = LoadScenarioFile(options.scenario_path);
  if (!loaded.ok()) {
    err << "runnel-sim: " << loaded.status().message() << "\n";
    return 2;
  }
  std::deque<uint64_t> queue;
  for (uint64_t seed = range->first;; ++seed) {
    if ((seed - range->first) % range->shard_count == range->shard_index) queue.push_back(seed);
    if (seed == range->last) break;
  }
  const size_t total = queue.size();
  out << absl::StrFormat("runnel-sim swarm: %s, seeds %d..%d%s, %d seeds, %d jobs\n",
                         options.scenario_path, range->first, range->last,
                         options.shard.empty() ? "" : absl::StrCat(", shard ", options.shard),
                         total, options.jobs);
  out.flush();

  const double cpu_before_s = ChildrenCpuSeconds();
  const auto wall_start = std::chrono::steady_clock::now();
  std::map<pid_t, Child> running;
  std::map<uint64_t, std::string> failures;  // by seed: what the child said
  size_t done = 0;
  while (!queue.empty() || !running.empty()) {
    while (!queue.empty() && running.size() < static_cast<size_t>(options.jobs)) {
      const uint64_t seed = queue.front();
      queue.pop_front();
      RunCommandOptions run;
      run.scenario_path = options.scenario_path;
      run.seed = seed;
      run.brief = true;
      run.program = options.program;
      absl::StatusOr<Child> child = Spawn(run, out, err);
      if (!child.ok()) {
        err << "runnel-sim: " << child.status().message() << "\n";
        return 2;
      }
      running[child->pid] = *std::move(child);
    }
    std::vector<pollfd> fds;
    std::vector<pid_t> owners;
    for (auto& [pid, child] : running) {
      if (child.output_fd < 0) continue;
      fds.push_back(pollfd{child.output_fd, POLLIN, 0});
      owners.push_back(pid);
    }
    if (!fds.empty()) poll(fds.data(), fds.size(), 200);
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Child& child = running[owners[i]];
      if (!Drain(child)) {
        close(child.output_fd);
        child.output_fd = -1;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto it = running.begin(); it != running.end();) {
      Child& child = it->second;
      if (child.output_fd >= 0 &&
          now - child.started > std::chrono::seconds(options.seed_timeout_s)) {
        kill(child.pid, SIGKILL);
        child.output += absl::StrCat("killed after ", options.seed_timeout_s, " s of wall time\n");
        close(child.output_fd);
        child.output_fd = -1;
      }
      if (child.output_fd >= 0) {
        ++it;
        continue;
      }
      int status = 0;
      if (waitpid(child.pid, &status, 0) < 0) status = -1;
      const bool passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!passed) {
        std::string said(absl::StripTrailingAsciiWhitespace(child.output));
        if (WIFSIGNALED(status)) {
          absl::StrAppend(&said, said.empty() ? "" : "; ", "died of signal ", WTERMSIG(status));
        }
        failures[child.seed] = said;
      }
      ++done;
      err << absl::StrFormat("\r[%d/%d] %d failing", done, total, failures.size());
      err.flush();
      it = running.erase(it);
    }
  }
  err << "\n";
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double cpu_s = ChildrenCpuSeconds() - cpu_before_s;
  for (const auto& [seed, said] : failures) {
    // The child's brief line, or the tail of whatever it printed before it failed.
    std::string shown = said;
    const size_t newline = shown.rfind('\n');
    if (newline != std::string::npos && shown.rfind("seed ", 0) != 0) {
      shown = shown.substr(newline + 1);
    }
    out << absl::StrFormat("FAILED seed %d: %s\n  replay: %s\n", seed, shown,
                           ReplayCommand(options.program, options.scenario_path, seed));
  }
  out << absl::StrFormat("%d seeds: %d passed, %d failed; wall %.1f s, CPU %.1f s, %.0f seeds per "
                         "CPU-hour\n",
                         total, total - failures.size(), failures.size(), wall_s, cpu_s,
                         cpu_s > 0 ? static_cast<double>(total) * 3600.0 / cpu_s : 0.0);
  return failures.empty() ? 0 : 1;
}

}  // namespace runnel::sim
