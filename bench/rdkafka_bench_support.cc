#include "bench/rdkafka_bench_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"

namespace runnel::bench {
namespace {

// Between two connection attempts while the broker starts.
constexpr auto kStartPollInterval = std::chrono::milliseconds(20);

std::string program_name = "bench";

// The running broker child, for Fail() to stop: at most one.
pid_t broker_pid = -1;
std::string broker_data_dir;

void StopBroker() {
  if (broker_pid <= 0) return;
  kill(broker_pid, SIGTERM);
  int status = 0;
  waitpid(broker_pid, &status, 0);
  broker_pid = -1;
  if (!broker_data_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(broker_data_dir, ignored);
    std::filesystem::remove(broker_data_dir + ".conf", ignored);
    broker_data_dir.clear();
  }
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) Fail("bind");
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

}  // namespace

void SetProgramName(const char* argv0) {
  program_name = std::filesystem::path(argv0).filename().string();
}

void Fail(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program_name.c_str(), message.c_str());
  StopBroker();
  std::exit(1);
}

void Set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
  char error[512];
  if (rd_kafka_conf_set(conf, name, value.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK) {
    Fail(absl::StrCat("config ", name, "=", value, ": ", error));
  }
}

KafkaHandle NewClient(rd_kafka_type_t type, rd_kafka_conf_t* conf, const std::string& debug) {
  if (!debug.empty()) Set(conf, "debug", debug);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof(error));
  if (rk == nullptr) Fail(absl::StrCat("rd_kafka_new: ", error));
  return KafkaHandle(rk);
}

BrokerChild::BrokerChild(const std::string& binary, const std::string& config_text) {
  if (broker_pid > 0) Fail("a broker child is already running");
  if (!std::filesystem::exists(binary)) Fail(absl::StrCat("no broker binary at ", binary));
  const char* tmp = std::getenv("TMPDIR");
  data_dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/runnel-bench-XXXXXX");
  if (mkdtemp(data_dir_.data()) == nullptr) Fail("mkdtemp");
  broker_data_dir = data_dir_;
  const std::string config_path = data_dir_ + ".conf";
  if (!config_text.empty()) std::ofstream(config_path) << config_text;
  const int port = FreeLoopbackPort();
  bootstrap_ = absl::StrCat("127.0.0.1:", port);
  broker_pid = fork();
  if (broker_pid < 0) Fail("fork");
  if (broker_pid == 0) {
    dup2(STDERR_FILENO, STDOUT_FILENO);
    const std::string listen = absl::StrCat("--listen=", bootstrap_);
    const std::string dir = absl::StrCat("--data-dir=", data_dir_);
    const std::string config = absl::StrCat("--config=", config_path);
    if (config_text.empty()) {
      execl(binary.c_str(), binary.c_str(), "--node-id=1", listen.c_str(), dir.c_str(),
            static_cast<char*>(nullptr));
    } else {
      execl(binary.c_str(), binary.c_str(), "--node-id=1", listen.c_str(), dir.c_str(),
            config.c_str(), static_cast<char*>(nullptr));
    }
    std::perror("exec runnel-broker");
    _exit(127);
  }
  const auto start = Clock::now();
  while (!CanConnect(port)) {
    int status = 0;
    if (waitpid(broker_pid, &status, WNOHANG) == broker_pid) {
      broker_pid = -1;
      Fail("runnel-broker exited at start-up");
    }
    if (Clock::now() - start > kBrokerStartTimeout) Fail("runnel-broker did not start");
    std::this_thread::sleep_for(kStartPollInterval);
  }
}

BrokerChild::~BrokerChild() { StopBroker(); }

std::string DefaultBrokerBinary(const char* argv0) {
  std::filesystem::path self = std::filesystem::absolute(argv0);
  return (self.parent_path().parent_path() / "broker" / "server" / "runnel-broker").string();
}

void PrintRatioHeading() {
  std::printf("%-34s %14s %14s %8s\n", "figure", "runnel-broker", "mock cluster", "ratio");
}

void PrintRatioRow(const char* name, double runnel, double mock, const char* unit, int decimals) {
  const double ratio = mock > 0 ? runnel / mock : 0;
  std::printf("%-34s %14.*f %14.*f %8.2f   %s\n", name, decimals, runnel, decimals, mock, ratio,
              unit);
}

}  // namespace runnel::bench
