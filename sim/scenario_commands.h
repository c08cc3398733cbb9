// The scenario commands of runnel-sim: `run` (one seed, with its summary, trace, history and
// report) and `swarm` (many seeds in child processes, with the failing ones and their replay
// commands). docs/simulator.md is the user's guide to both.
#ifndef RUNNEL_SIM_SCENARIO_COMMANDS_H_
#define RUNNEL_SIM_SCENARIO_COMMANDS_H_

#include <cstdint>
#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel::sim {

struct RunCommandOptions {
  std::string scenario_path;
  uint64_t seed = 1;
  std::string trace_path;    // write the trace here (empty: none, unless a report needs one)
  std::string history_path;  // write the history as JSON lines here (model/history.h)
  std::string report_directory;  // write the HTML report here
  bool echo_logs = false;
  // Print only one line: the verdict, the seed and the anomaly names (swarm children use it).
  bool brief = false;
  // The path runnel-sim was invoked as, for the replay command.
  std::string program = "runnel-sim";
};

// Runs one scenario and prints its summary to `out` (errors to `err`). Exit status: 0 when the
// verdict is the one the scenario expects, 1 when it is not, 2 for a bad scenario file or option.
int RunScenarioCommand(const RunCommandOptions& options, std::ostream& out, std::ostream& err);

struct SwarmCommandOptions {
  // The most child processes at once.
  static constexpr int kJobsMax = 256;
  // The most seeds one swarm runs.
  static constexpr uint64_t kSeedsMax = 100'000'000;

  std::string scenario_path;
  std::string seeds;  // "A..B", inclusive
  int jobs = 1;
  std::string shard;  // "I/N": run only the seeds s with (s - A) % N == I; empty: all
  std::string program = "runnel-sim";
  // Give up on one seed after this much wall time (it counts as failing: a hang is a bug too).
  int64_t seed_timeout_s = 600;
};

// The seeds a swarm runs: [first, last] of `seeds`, restricted to shard `shard`.
struct SeedRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t shard_index = 0;
  uint64_t shard_count = 1;
};
absl::StatusOr<SeedRange> ParseSeedRange(absl::string_view seeds, absl::string_view shard);

// Runs the swarm: each seed runs as `program run FILE --seed=N --brief` would, in a child process
// forked from this one (so the caller must run no threads), at most `jobs` at once. Prints progress to `err` and, to `out`, every failing seed with its replay
// command, then totals (seeds per CPU-hour among them). Exit status: 0 when every seed passed, 1
// when any failed, 2 for bad options.
int RunSwarmCommand(const SwarmCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SCENARIO_COMMANDS_H_
