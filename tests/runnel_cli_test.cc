// The `runnel` command-line tool against a real runnel-broker process, over real sockets: the
// broker starts on a free port (it picks one, given port 0, and names it in its ready line) with a
// temporary data directory, and each test drives the runnel binary as a user would, checking its
// output and exit status.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

constexpr auto kProcessTimeout = std::chrono::seconds(60);

fs::path MakeTempDirectory(const std::string& prefix) {
  fs::path directory = fs::temp_directory_path() / (prefix + "-XXXXXX");
  std::string pattern = directory.string();
  if (::mkdtemp(pattern.data()) == nullptr) return {};
  return pattern;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct CliResult {
  int exit_status = -1;
  std::string out;
  std::string err;
};

// Waits for `pid`, killing it if it outlives kProcessTimeout; returns its exit status (128 + the
// signal if it was killed).
int WaitFor(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kProcessTimeout;
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "process " << pid << " timed out";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A runnel-broker process on 127.0.0.1 with its own data directory.
class BrokerProcess {
 public:
  // `config_text`, when not empty, is written to a config file the broker reads (--config).
  explicit BrokerProcess(const std::string& config_text = "")
      : directory_(MakeTempDirectory("runnel-cli-test")) {
    EXPECT_FALSE(directory_.empty());
    int out_pipe[2];
    EXPECT_EQ(::pipe(out_pipe), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    const std::string log = (directory_ / "broker.log").string();
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {RUNNEL_BROKER_PATH, "--node-id=0", "--listen=127.0.0.1:0",
                                     absl::StrCat("--data-dir=", (directory_ / "data").string())};
    if (!config_text.empty()) {
      const fs::path config = directory_ / "broker.conf";
      std::ofstream(config) << config_text;
      args.push_back(absl::StrCat("--config=", config.string()));
    }
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_pipe[1]);
    // The ready line: "runnel-broker: node 0 listening on 127.0.0.1:PORT".
    std::string output;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      pollfd fd{out_pipe[0], POLLIN, 0};
      if (::poll(&fd, 1, 100) <= 0) continue;
      char buffer[256];
      const ssize_t got = ::read(out_pipe[0], buffer, sizeof(buffer));
      if (got <= 0) break;
      output.append(buffer, static_cast<size_t>(got));
      const size_t at = output.find("listening on ");
      const size_t end = output.find('\n', at);
      if (at != std::string::npos && end != std::string::npos) {
        const std::string address = output.substr(at + 13, end - at - 13);
        const size_t colon = address.rfind(':');
        int port = 0;
        if (colon != std::string::npos && absl::SimpleAtoi(address.substr(colon + 1), &port)) {
          port_ = port;
        }
      }
    }
    ::close(out_pipe[0]);
    EXPECT_NE(port_, 0) << "no ready line; broker output: " << output << "\nlog: "
                        << ReadFile(directory_ / "broker.log");
  }

  ~BrokerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      EXPECT_EQ(WaitFor(pid_), 0) << ReadFile(directory_ / "broker.log");
    }
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }

  std::string bootstrap() const { return absl::StrCat("--bootstrap-server=127.0.0.1:", port_); }
  const fs::path& directory() const { return directory_; }

 private:
  fs::path directory_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Runs the runnel binary with `args`, `input` on stdin (from a file, or through a pipe when
// `through_pipe`), and returns its exit status and output.
CliResult RunCli(const std::vector<std::string>& args, const std::string& input = "",
                 bool through_pipe = false) {
  const fs::path directory = MakeTempDirectory("runnel-cli-run");
  const std::string in_path = (directory / "in").string();
  const std::string out_path = (directory / "out").string();
  const std::string err_path = (directory / "err").string();
  {
    std::ofstream in(in_path);
    in << input;
  }
  int in_pipe[2] = {-1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (through_pipe) {
    EXPECT_EQ(::pipe(in_pipe), 0);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&actions, in_pipe[1]);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, in_path.c_str(), O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> full = {RUNNEL_CLI_PATH};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : full) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  if (through_pipe) {
    ::close(in_pipe[0]);
    size_t written = 0;
    while (written < input.size()) {
      const ssize_t n = ::write(in_pipe[1], input.data() + written, input.size() - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    ::close(in_pipe[1]);
  }
  CliResult result;
  result.exit_status = WaitFor(pid);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  std::error_code ignored;
  fs::remove_all(directory, ignored);
  return result;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

class RunnelCliTest : public ::testing::Test {
 protected:
  explicit RunnelCliTest(const std::string& broker_config = "") : broker_(broker_config) {}
  CliResult Run(std::vector<std::string> args, const std::string& input = "",
                bool through_pipe = false) {
    args.insert(args.begin(), broker_.bootstrap());
    return RunCli(args, input, through_pipe);
  }
  BrokerProcess broker_;
};

// Consumer groups start their first rebalance at once, as in the other group tests.
class RunnelCliGroupTest : public RunnelCliTest {
 protected:
  RunnelCliGroupTest() : RunnelCliTest("groups { group_initial_rebalance_delay_ms: 0 }\n") {}
};

// topics create / list / describe / delete, and their errors: an existing topic is
// TOPIC_ALREADY_EXISTS with exit status 1 (0 with --if-not-exists), a bad config INVALID_CONFIG,
// a deleted topic UNKNOWN_TOPIC_OR_PARTITION.
TEST_F(RunnelCliTest, TopicsLifecycle) {
  CliResult created = Run({"topics", "create", "orders", "--partitions", "3", "--config",
                           "retention.ms=3600000", "--config=cleanup.policy=delete"});
  ASSERT_EQ(created.exit_status, 0) << created.err;
  EXPECT_EQ(created.out, "Created topic orders.\n");

  CliResult again = Run({"topics", "create", "orders", "--partitions=3"});
  EXPECT_EQ(again.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(again.err, "TOPIC_ALREADY_EXISTS")) << again.err;
  EXPECT_EQ(Run({"topics", "create", "orders", "--if-not-exists"}).exit_status, 0);

  CliResult bad_config = Run({"topics", "create", "other", "--config", "no.such=1"});
  EXPECT_EQ(bad_config.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(bad_config.err, "INVALID_CONFIG")) << bad_config.err;
  CliResult validate = Run({"topics", "create", "checked", "--validate-only"});
  EXPECT_EQ(validate.exit_status, 0) << validate.err;
  ASSERT_EQ(Run({"topics", "create", "audit", "--partitions=1"}).exit_status, 0);

  CliResult listed = Run({"topics", "list"});
  ASSERT_EQ(listed.exit_status, 0) << listed.err;
  EXPECT_EQ(listed.out, "audit\norders\n");

  CliResult described = Run({"topics", "describe", "orders"});
  ASSERT_EQ(described.exit_status, 0) << described.err;
  std::vector<std::string> lines = Lines(described.out);
  ASSERT_EQ(lines.size(), 4u) << described.out;
  EXPECT_EQ(lines[0],
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\t"
            "Configs: cleanup.policy=delete,retention.ms=3600000");
  EXPECT_EQ(lines[2], "\tTopic: orders\tPartition: 1\tLeader: 0\tReplicas: 0\tIsr: 0");
  CliResult all = Run({"topics", "describe", "orders", "--all-configs"});
  EXPECT_TRUE(absl::StrContains(all.out, "\tConfig: flush.policy=always\t(DEFAULT_CONFIG)"))
      << all.out;

  CliResult deleted = Run({"topics", "delete", "orders"});
  ASSERT_EQ(deleted.exit_status, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "Deleted topic orders.\n");
  CliResult gone = Run({"topics", "describe", "orders"});
  EXPECT_EQ(gone.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(gone.err, "UNKNOWN_TOPIC_OR_PARTITION")) << gone.err;
  EXPECT_EQ(Run({"topics", "delete", "orders"}).exit_status, 1);
  EXPECT_EQ(Run({"topics", "list"}).out, "audit\n");
}

// Lines with keys and headers go in through `runnel produce` and come back through
// `runnel consume`: values, keys, headers and offsets as sent, records with equal keys in equal
// partitions, and the consumer stops at --max-messages.
TEST_F(RunnelCliTest, ProduceAndConsumeRoundTrip) {
  ASSERT_EQ(Run({"topics", "create", "lines", "--partitions=1"}).exit_status, 0);
  CliResult produced = Run({"produce", "--topic=lines", "--key-separator=:", "--header", "app=cli",
                            "--header=trace=42"},
                           "k1:hello\nk2:world\nk1:again\n");
  ASSERT_EQ(produced.exit_status, 0) << produced.err;
  CliResult consumed = Run({"consume", "--topic=lines", "--from-beginning", "--max-messages=3",
                            "--print-key", "--print-offset", "--print-headers"});
  ASSERT_EQ(consumed.exit_status, 0) << consumed.err;
  EXPECT_EQ(consumed.out,
            "Offset:0\tapp:cli,trace:42\tk1\thello\n"
            "Offset:1\tapp:cli,trace:42\tk2\tworld\n"
            "Offset:2\tapp:cli,trace:42\tk1\tagain\n");
  EXPECT_TRUE(absl::StrContains(consumed.err, "Processed a total of 3 messages")) << consumed.err;

  // Keyed records over three partitions: equal keys land together.
  ASSERT_EQ(Run({"topics", "create", "keyed", "--partitions=3"}).exit_status, 0);
  std::string input;
  for (int i = 0; i < 30; ++i) absl::StrAppend(&input, "key", i % 5, "|value", i, "\n");
  ASSERT_EQ(Run({"produce", "--topic=keyed", "--key-separator=|"}, input).exit_status, 0);
  CliResult keyed = Run({"consume", "--topic=keyed", "--from-beginning", "--max-messages=30",
                         "--print-partition", "--print-key"});
  ASSERT_EQ(keyed.exit_status, 0) << keyed.err;
  std::map<std::string, std::set<std::string>> partitions_of_key;
  std::set<std::string> values;
  for (const std::string& line : Lines(keyed.out)) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    ASSERT_EQ(fields.size(), 3u) << line;
    partitions_of_key[fields[1]].insert(fields[0]);
    values.insert(fields[2]);
  }
  EXPECT_EQ(values.size(), 30u);
  EXPECT_EQ(partitions_of_key.size(), 5u);
  for (const auto& [key, partitions] : partitions_of_key) EXPECT_EQ(partitions.size(), 1u) << key;
}

// Every --acks and --compression choice round-trips, a large input read through a pipe arrives
// whole and in order, and consume's --partition, --offset and --timeout-ms select and stop as
// documented (fewer records than --max-messages within the timeout is still success).
TEST_F(RunnelCliTest, ProduceOptionsAndConsumeSelection) {
  ASSERT_EQ(Run({"topics", "create", "opts", "--partitions=2"}).exit_status, 0);
  int expected = 0;
  for (std::string acks : {"all", "1", "0"}) {
    for (std::string codec : {"none", "gzip", "snappy", "lz4", "zstd"}) {
      CliResult produced = Run({"produce", "--topic=opts", "--partition=0", "--acks=" + acks,
                                "--compression=" + codec},
                               absl::StrCat(acks, "-", codec, "\n"));
      ASSERT_EQ(produced.exit_status, 0) << acks << " " << codec << ": " << produced.err;
      ++expected;
    }
  }
  CliResult all = Run({"consume", "--topic=opts", "--partition=0", "--from-beginning",
                       "--max-messages=" + std::to_string(expected)});
  ASSERT_EQ(all.exit_status, 0) << all.err;
  std::vector<std::string> lines = Lines(all.out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(expected));
  EXPECT_EQ(lines[0], "all-none");
  EXPECT_EQ(lines.back(), "0-zstd");

  std::string big;
  for (int i = 0; i < 5000; ++i) absl::StrAppend(&big, "line-", i, "\n");
  CliResult piped = Run({"produce", "--topic=opts", "--partition=1"}, big, /*through_pipe=*/true);
  ASSERT_EQ(piped.exit_status, 0) << piped.err;
  CliResult from_offset = Run({"consume", "--topic=opts", "--partition=1", "--offset=4990",
                               "--print-offset", "--timeout-ms=1500"});
  ASSERT_EQ(from_offset.exit_status, 0) << from_offset.err;
  lines = Lines(from_offset.out);
  ASSERT_EQ(lines.size(), 10u) << from_offset.out;
  EXPECT_EQ(lines[0], "Offset:4990\tline-4990");
  EXPECT_EQ(lines[9], "Offset:4999\tline-4999");
  CliResult counted = Run({"consume", "--topic=opts", "--partition=1", "--from-beginning",
                           "--max-messages=5000"});
  ASSERT_EQ(counted.exit_status, 0);
  lines = Lines(counted.out);
  ASSERT_EQ(lines.size(), 5000u);
  for (int i = 0; i < 5000; i += 499) EXPECT_EQ(lines[static_cast<size_t>(i)], absl::StrCat("line-", i));

  // Nothing new: the consumer from the end gives up after the timeout, successfully.
  CliResult idle = Run({"consume", "--topic=opts", "--timeout-ms=500"});
  EXPECT_EQ(idle.exit_status, 0) << idle.err;
  EXPECT_EQ(idle.out, "");
}

// Usage errors exit with 2; operations that fail exit with 1 and say why, naming the Kafka error.
TEST_F(RunnelCliTest, ErrorsGiveNonZeroExitStatus) {
  EXPECT_EQ(Run({}).exit_status, 2);
  EXPECT_EQ(Run({"frobnicate"}).exit_status, 2);
  EXPECT_EQ(Run({"topics", "create"}).exit_status, 2);
  EXPECT_EQ(Run({"produce"}).exit_status, 2);
  EXPECT_EQ(Run({"produce", "--topic=t", "--acks=2"}).exit_status, 2);
  EXPECT_EQ(Run({"produce", "--topic=t", "--compression=brotli"}).exit_status, 2);
  EXPECT_EQ(Run({"produce", "--topic=t", "--header", "novalue"}).exit_status, 2);
  EXPECT_EQ(Run({"consume", "--topic=t", "--offset=5"}).exit_status, 2);
  EXPECT_EQ(RunCli({"--bootstrap-server=nonsense", "topics", "list"}).exit_status, 2);

  CliResult missing = Run({"consume", "--topic=missing", "--from-beginning"});
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "UNKNOWN_TOPIC_OR_PARTITION")) << missing.err;

  ASSERT_EQ(Run({"topics", "create", "strict", "--partitions=1"}).exit_status, 0);
  CliResult no_separator = Run({"produce", "--topic=strict", "--key-separator=:"}, "a:1\nnokey\n");
  EXPECT_EQ(no_separator.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(no_separator.err, "line 2 has no key separator")) << no_separator.err;
  CliResult bad_partition = Run({"produce", "--topic=strict", "--partition=9"}, "x\n");
  EXPECT_EQ(bad_partition.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(bad_partition.err, "partition 9")) << bad_partition.err;

  // No broker at all: connections are refused until the command's timeout.
  const int unused_port = 1;
  CliResult unreachable =
      RunCli({absl::StrCat("--bootstrap-server=127.0.0.1:", unused_port), "--command-timeout-ms=1500",
              "topics", "list"});
  EXPECT_EQ(unreachable.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(unreachable.err, "NETWORK_EXCEPTION")) << unreachable.err;
}

// `consume --group`: a member that stops at --max-messages commits exactly what it printed, so
// the next member of the group goes on from there; two members running at once share the
// partitions and print each record once; `groups list` and `groups describe` show the group, its
// committed offsets, log end offsets and lag (0 once everything was read), and the members while
// they run.
TEST_F(RunnelCliGroupTest, ConsumeWithGroupAndDescribeIt) {
  ASSERT_EQ(Run({"topics", "create", "jobs", "--partitions=3"}).exit_status, 0);
  std::string input;
  for (int i = 0; i < 30; ++i) absl::StrAppend(&input, "job-", i, "\n");
  ASSERT_EQ(Run({"produce", "--topic=jobs"}, input).exit_status, 0);

  CliResult first = Run({"consume", "--topic=jobs", "--group=workers", "--from-beginning",
                         "--max-messages=12"});
  ASSERT_EQ(first.exit_status, 0) << first.err;
  std::vector<std::string> seen = Lines(first.out);
  ASSERT_EQ(seen.size(), 12u);
  CliResult rest = Run({"consume", "--topic=jobs", "--group=workers", "--timeout-ms=2000"});
  ASSERT_EQ(rest.exit_status, 0) << rest.err;
  for (const std::string& line : Lines(rest.out)) seen.push_back(line);
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), 30u) << absl::StrJoin(seen, " ");
  EXPECT_EQ(unique.size(), 30u);

  CliResult listed = Run({"groups", "list"});
  ASSERT_EQ(listed.exit_status, 0) << listed.err;
  EXPECT_TRUE(absl::StrContains(listed.out, "workers\n")) << listed.out;
  CliResult described = Run({"groups", "describe", "workers"});
  ASSERT_EQ(described.exit_status, 0) << described.err;
  std::vector<std::string> lines = Lines(described.out);
  ASSERT_EQ(lines.size(), 5u) << described.out;
  EXPECT_EQ(lines[0], "Group: workers\tState: Empty\tAssignor: -\tMembers: 0");
  EXPECT_TRUE(absl::StartsWith(lines[1], "GROUP")) << lines[1];
  int64_t total_end = 0;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    ASSERT_EQ(cells.size(), 9u) << lines[i];
    EXPECT_EQ(cells[0], "workers");
    EXPECT_EQ(cells[1], "jobs");
    EXPECT_EQ(cells[2], std::to_string(i - 2));
    EXPECT_EQ(cells[3], cells[4]) << "committed offset is not the log end: " << lines[i];
    EXPECT_EQ(cells[5], "0");
    int64_t end = 0;
    ASSERT_TRUE(absl::SimpleAtoi(cells[4], &end));
    total_end += end;
  }
  EXPECT_EQ(total_end, 30);

  // Two members at once: together they print the 30 new records, each once.
  std::string more;
  for (int i = 30; i < 60; ++i) absl::StrAppend(&more, "job-", i, "\n");
  CliResult results[2];
  std::thread members[2];
  for (int m = 0; m < 2; ++m) {
    members[m] = std::thread([&, m] {
      results[m] = Run({"consume", "--topic=jobs", "--group=workers", "--timeout-ms=4000"});
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CliResult during = Run({"groups", "describe", "workers"});
  ASSERT_EQ(Run({"produce", "--topic=jobs"}, more).exit_status, 0);
  for (std::thread& member : members) member.join();
  std::vector<std::string> shared;
  for (const CliResult& result : results) {
    ASSERT_EQ(result.exit_status, 0) << result.err;
    for (const std::string& line : Lines(result.out)) shared.push_back(line);
  }
  std::set<std::string> expected;
  for (int i = 30; i < 60; ++i) expected.insert(absl::StrCat("job-", i));
  EXPECT_EQ(shared.size(), 30u) << absl::StrJoin(shared, " ");
  EXPECT_EQ(std::set<std::string>(shared.begin(), shared.end()), expected);
  ASSERT_EQ(during.exit_status, 0) << during.err;
  EXPECT_TRUE(absl::StartsWith(during.out, "Group: workers\tState: Stable\tAssignor: range\tMembers: 2"))
      << during.out;
  EXPECT_TRUE(absl::StrContains(during.out, "runnel-cli")) << during.out;

  CliResult missing = Run({"groups", "describe", "nobody"});
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "Consumer group 'nobody' does not exist.")) << missing.err;
  EXPECT_EQ(Run({"consume", "--topic=jobs", "--group=g", "--partition=0"}).exit_status, 2);
  EXPECT_EQ(Run({"groups"}).exit_status, 2);
  EXPECT_EQ(Run({"groups", "describe"}).exit_status, 2);
}

}  // namespace
