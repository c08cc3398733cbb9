// Tests of the runnel-broker binary with real I/O: the binary (its path comes from the build,
// RUNNEL_BROKER_BINARY) runs as a child process on a free loopback port with a temporary data
// directory, and kcat (librdkafka, a client nobody here wrote) talks to it. Each test says what it
// checks and how.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "runnel-broker-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// runnel-broker as a child process, its stdout and stderr captured in files.
class Broker {
 public:
  Broker(std::filesystem::path work_dir, int port, std::vector<std::string> extra_args = {})
      : work_dir_(std::move(work_dir)), port_(port), extra_args_(std::move(extra_args)) {}
  ~Broker() {
    if (pid_ > 0) Kill9();
  }

  std::string bootstrap() const { return absl::StrCat("127.0.0.1:", port_); }
  std::filesystem::path data_dir() const { return work_dir_ / "data"; }
  std::string stdout_text() const { return ReadFile(work_dir_ / "broker.out"); }
  std::string stderr_text() const { return ReadFile(work_dir_ / "broker.err"); }

  // Starts the process; returns false if it exits or does not print its ready line in time.
  bool Start() {
    std::vector<std::string> args = {RUNNEL_BROKER_BINARY, "--node-id=1",
                                     absl::StrCat("--listen=127.0.0.1:", port_),
                                     absl::StrCat("--data-dir=", data_dir().string())};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    Spawn(args);
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (absl::StrContains(stdout_text(), "listening on")) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Runs the binary with `args` to completion; returns its exit status.
  int RunToExit(const std::vector<std::string>& args) {
    Spawn(args);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // SIGTERM; returns the exit status (or -1 if it did not exit in time or died of a signal).
  int Stop() {
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill9();
    return -1;
  }

  void Kill9() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  int exit_status() const { return exit_status_; }

 private:
  void Spawn(const std::vector<std::string>& args) {
    const std::string out = (work_dir_ / "broker.out").string();
    const std::string err = (work_dir_ / "broker.err").string();
    // Each run starts with fresh files, so that an earlier run's ready line is not mistaken for
    // this one's.
    std::filesystem::remove(out);
    std::filesystem::remove(err);
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out_file = std::freopen(out.c_str(), "w", stdout);
      FILE* err_file = std::freopen(err.c_str(), "w", stderr);
      if (out_file == nullptr || err_file == nullptr) _exit(126);
      std::vector<char*> argv;
      for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  std::filesystem::path work_dir_;
  int port_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

struct CommandResult {
  int exit_status = -1;
  std::string output;
};

// Runs a shell command with `input` on its stdin; captures stdout (stderr goes to the test log).
CommandResult RunCommand(const std::filesystem::path& work_dir, const std::string& command,
                         const std::string& input = "") {
  const std::filesystem::path input_path = work_dir / "command.in";
  {
    std::ofstream file(input_path);
    file << input;
  }
  const std::string full = absl::StrCat(command, " < ", input_path.string());
  CommandResult result;
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t read = 0;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, read);
  const int status = pclose(pipe);
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Kcat(const Broker& broker, const std::string& args) {
  return absl::StrCat(KCAT_BINARY, " -b ", broker.bootstrap(), " ", args);
}

// The records of `topic`, read from the start to the end with kcat, one "key=value;headers" line
// each.
std::vector<std::string> ConsumeAll(const TempDir& dir, const Broker& broker,
                                    const std::string& topic) {
  CommandResult consumed =
      RunCommand(dir.path(), Kcat(broker, absl::StrCat("-C -e -q -t ", topic, " -o beginning",
                                                      " -f '%k=%s;%h\\n'")));
  EXPECT_EQ(consumed.exit_status, 0) << consumed.output;
  std::vector<std::string> lines = absl::StrSplit(consumed.output, '\n', absl::SkipEmpty());
  return lines;
}

// kcat -L lists this broker; records produced with keys and headers (auto-creating the topic)
// come back from a consumer with their keys, values and headers, in order; SIGTERM exits 0 after
// printing the ready line once.
TEST(RunnelBrokerTest, KcatMetadataProduceAndConsume) {
  TempDir dir;
  Broker broker(dir.path(), FreeLoopbackPort());
  ASSERT_TRUE(broker.Start()) << broker.stderr_text();
  EXPECT_THAT(broker.stdout_text(),
              HasSubstr(absl::StrCat("runnel-broker: node 1 listening on ", broker.bootstrap())));
  CommandResult metadata = RunCommand(dir.path(), Kcat(broker, "-L"));
  EXPECT_EQ(metadata.exit_status, 0);
  EXPECT_THAT(metadata.output, HasSubstr(absl::StrCat("broker 1 at ", broker.bootstrap())));

  std::string input;
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    input += absl::StrCat("key", i % 7, ":value-", i, "\n");
    expected.push_back(absl::StrCat("key", i % 7, "=value-", i, ";trace=abc,n=1"));
  }
  CommandResult produced =
      RunCommand(dir.path(),
                 Kcat(broker, "-P -t events -K: -H trace=abc -H n=1 -X acks=all"), input);
  ASSERT_EQ(produced.exit_status, 0);
  EXPECT_EQ(ConsumeAll(dir, broker, "events"), expected);

  CommandResult listed = RunCommand(dir.path(), Kcat(broker, "-L -t events"));
  EXPECT_THAT(listed.output, HasSubstr("topic \"events\" with 1 partitions"));
  EXPECT_EQ(broker.Stop(), 0) << broker.stderr_text();
  EXPECT_THAT(broker.stderr_text(), HasSubstr("topic manager: closed: OK"));
}

// kill -9 while idle after acknowledged (acks=all) produces, then a restart on the same data
// directory: every acknowledged record is there, in order; then a clean restart keeps them too.
TEST(RunnelBrokerTest, KillNineThenRestartKeepsAcknowledgedRecords) {
  TempDir dir;
  const int port = FreeLoopbackPort();
  std::vector<std::string> expected;
  {
    Broker broker(dir.path(), port);
    ASSERT_TRUE(broker.Start()) << broker.stderr_text();
    for (int round = 0; round < 3; ++round) {
      std::string input;
      for (int i = 0; i < 200; ++i) {
        input += absl::StrCat("r", round, ":payload-", round, "-", i, "\n");
        expected.push_back(absl::StrCat("r", round, "=payload-", round, "-", i, ";"));
      }
      CommandResult produced =
          RunCommand(dir.path(), Kcat(broker, "-P -t durable -K: -X acks=all"), input);
      ASSERT_EQ(produced.exit_status, 0);
    }
    broker.Kill9();
  }
  {
    Broker broker(dir.path(), port);
    ASSERT_TRUE(broker.Start()) << broker.stderr_text();
    EXPECT_EQ(ConsumeAll(dir, broker, "durable"), expected);
    EXPECT_EQ(broker.Stop(), 0);
  }
  {
    Broker broker(dir.path(), port);
    ASSERT_TRUE(broker.Start()) << broker.stderr_text();
    EXPECT_EQ(ConsumeAll(dir, broker, "durable"), expected);
    EXPECT_EQ(broker.Stop(), 0);
  }
}

// A config file that does not parse, or sets a bad value, is reported with its file and line and
// the exit status is 2; missing required flags too. A valid config file is used (here: auto
// creation off, so producing to a new topic fails).
TEST(RunnelBrokerTest, ConfigFileErrorsAndSettings) {
  TempDir dir;
  const std::filesystem::path bad = dir.path() / "bad.cfg";
  {
    std::ofstream file(bad);
    file << "cluster_id: \"c\"\nlog {\n  flush_policy: \"sometimes\"\n}\n";
  }
  Broker broker(dir.path(), FreeLoopbackPort(), {absl::StrCat("--config=", bad.string())});
  EXPECT_FALSE(broker.Start());
  EXPECT_EQ(broker.exit_status(), 2);
  EXPECT_THAT(broker.stderr_text(), HasSubstr(absl::StrCat(bad.string(), ":3: log.flush_policy")));

  const std::filesystem::path unparsable = dir.path() / "unparsable.cfg";
  {
    std::ofstream file(unparsable);
    file << "node_id: 1\nlimits { connection_max: 3 }\n";
  }
  Broker second(dir.path(), FreeLoopbackPort(), {absl::StrCat("--config=", unparsable.string())});
  EXPECT_FALSE(second.Start());
  EXPECT_EQ(second.exit_status(), 2);
  EXPECT_THAT(second.stderr_text(), HasSubstr(absl::StrCat(unparsable.string(), ":2:")));

  Broker third(dir.path(), FreeLoopbackPort());
  EXPECT_EQ(third.RunToExit({RUNNEL_BROKER_BINARY, "--listen=127.0.0.1:1"}), 2);

  const std::filesystem::path good = dir.path() / "good.cfg";
  {
    std::ofstream file(good);
    file << "auto_create_topics_enable: false\nlog { flush_policy: \"interval\" flush_ms: 5 }\n";
  }
  Broker fourth(dir.path(), FreeLoopbackPort(), {absl::StrCat("--config=", good.string())});
  ASSERT_TRUE(fourth.Start()) << fourth.stderr_text();
  CommandResult produced = RunCommand(
      dir.path(), Kcat(fourth, "-P -t not-created -X message.timeout.ms=2000"), "x\n");
  EXPECT_NE(produced.exit_status, 0);
  CommandResult metadata = RunCommand(dir.path(), Kcat(fourth, "-L"));
  // Only the group coordinator's internal topic exists: the produce did not create its topic.
  EXPECT_THAT(metadata.output, HasSubstr("1 topics"));
  EXPECT_THAT(metadata.output, HasSubstr("__consumer_offsets"));
  EXPECT_THAT(metadata.output, Not(HasSubstr("not-created")));
  EXPECT_EQ(fourth.Stop(), 0);
}

}  // namespace
