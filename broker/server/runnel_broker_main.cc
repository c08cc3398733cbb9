// runnel-broker: a single-node Kafka-compatible broker (docs/broker.md).
//
//   runnel-broker --node-id=N --listen=HOST:PORT --data-dir=DIR [--config=FILE]
//                 [--advertised-listener=HOST:PORT] [--log-level=debug|info|warning|error]
//
// Flags may be written with dashes or underscores. The optional config file is Protobuf text
// format (broker/server/broker_config.proto); flags override it. A bad flag or config file is
// reported with the file, line and field, and the exit status is 2. Logs go to stderr; once the
// broker serves, one line goes to stdout: "runnel-broker: node N listening on HOST:PORT".
// SIGTERM or SIGINT stops it cleanly (exit 0); a second signal during the stop abandons it.
//
// This file is the process's edge: it alone may read the config file and ask the OS for the host
// name; everything else runs on the event loop through the PosixEnv.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_env.h"
#include "broker/server/broker_node.h"
#include "broker/server/broker_settings.h"

ABSL_FLAG(int32_t, node_id, -1, "this broker's id (Kafka's broker.id), 0 or more");
ABSL_FLAG(std::string, listen, "", "HOST:PORT to accept Kafka clients on");
ABSL_FLAG(std::string, data_dir, "", "directory holding the broker's data (created if missing)");
ABSL_FLAG(std::string, config, "", "optional config file in Protobuf text format (BrokerConfig)");
ABSL_FLAG(std::string, advertised_listener, "",
          "HOST:PORT that clients are told to connect to (default: the listen address)");
ABSL_FLAG(std::string, log_level, "", "debug, info (default), warning or error");

namespace {

using runnel::server::BrokerConfig;

// Exit statuses.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// How long a clean stop may take before the process gives up on it.
constexpr int64_t kShutdownTimeoutUs = 60'000'000;
// How long closed connections get to deliver their last responses before the process exits.
constexpr int64_t kConnectionDrainUs = 1'000'000;
// Fetch responses and produce requests are buffers of up to tens of MiB. By default glibc serves
// each such allocation with a fresh mmap(), so every fetch would fault its pages in anew (measured:
// the first 10 MiB fetches took five times as long as later ones); with this threshold (glibc's
// largest) they come from the heap and their memory is reused. The trim threshold keeps the heap
// from being handed back to the OS after every large response.
constexpr int kMallocMmapThresholdBytes = 32 << 20;
constexpr int kMallocTrimThresholdBytes = 256 << 20;

int UsageError(const std::string& message) {
  std::fprintf(stderr, "runnel-broker: %s\n", message.c_str());
  return kExitUsage;
}

// absl flags are named with underscores; the documented spelling uses dashes. Rewrites
// "--node-id=1" to "--node_id=1" (only the name, up to '=').
std::vector<std::string> NormalizeFlagNames(int argc, char** argv) {
  std::vector<std::string> args;
  bool flags_ended = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && !flags_ended && arg == "--") flags_ended = true;
    if (i > 0 && !flags_ended && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t j = 2; j < end; ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
    }
    args.push_back(std::move(arg));
  }
  return args;
}

bool ParseLogLevel(const std::string& text, runnel::LogLevel* level) {
  if (text == "debug") *level = runnel::LogLevel::kDebug;
  else if (text == "info") *level = runnel::LogLevel::kInfo;
  else if (text == "warning") *level = runnel::LogLevel::kWarning;
  else if (text == "error") *level = runnel::LogLevel::kError;
  else return false;
  return true;
}

bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::";
}

// The line scripts and tests wait for: printed once the node listens.
void PrintReady(int32_t node_id, runnel::server::BrokerNode& node) {
  std::printf("runnel-broker: node %d listening on %s\n", node_id,
              node.server().listen_address().ToString().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, kMallocMmapThresholdBytes);
  mallopt(M_TRIM_THRESHOLD, kMallocTrimThresholdBytes);
  absl::SetProgramUsageMessage(
      "runnel-broker --node-id=N --listen=HOST:PORT --data-dir=DIR [--config=FILE] "
      "[--advertised-listener=HOST:PORT] [--log-level=debug|info|warning|error]");
  std::vector<std::string> args = NormalizeFlagNames(argc, argv);
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  absl::ParseCommandLine(static_cast<int>(arg_pointers.size()), arg_pointers.data());

  // The file first, then the flags on top of it.
  BrokerConfig config;
  std::map<std::string, int> field_lines;
  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (!config_path.empty()) {
    std::ifstream file(config_path);
    if (!file) {
      return UsageError(absl::StrCat("cannot read config file ", config_path, ": ",
                                     std::strerror(errno)));
    }
    std::stringstream text;
    text << file.rdbuf();
    absl::StatusOr<runnel::server::ParsedBrokerConfig> parsed =
        runnel::server::ParseBrokerConfigText(text.str(), config_path);
    if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
    config = std::move(parsed->config);
    field_lines = std::move(parsed->field_lines);
  }
  std::map<std::string, std::string> flag_of_field;
  if (absl::GetFlag(FLAGS_node_id) >= 0) {
    config.set_node_id(absl::GetFlag(FLAGS_node_id));
    flag_of_field["node_id"] = "--node-id";
  }
  if (!absl::GetFlag(FLAGS_listen).empty()) {
    config.set_listen(absl::GetFlag(FLAGS_listen));
    flag_of_field["listen"] = "--listen";
  }
  if (!absl::GetFlag(FLAGS_data_dir).empty()) {
    config.set_data_dir(absl::GetFlag(FLAGS_data_dir));
    flag_of_field["data_dir"] = "--data-dir";
  }
  if (!absl::GetFlag(FLAGS_advertised_listener).empty()) {
    config.set_advertised_listener(absl::GetFlag(FLAGS_advertised_listener));
    flag_of_field["advertised_listener"] = "--advertised-listener";
  }
  if (!absl::GetFlag(FLAGS_log_level).empty()) {
    config.set_log_level(absl::GetFlag(FLAGS_log_level));
    flag_of_field["log_level"] = "--log-level";
  }
  // Where a field's value came from, for error messages.
  auto where = [&](const std::string& field) {
    if (auto flag = flag_of_field.find(field); flag != flag_of_field.end()) return flag->second;
    if (auto line = field_lines.find(field); line != field_lines.end()) {
      return absl::StrCat(config_path, ":", line->second, ": ", field);
    }
    if (!config_path.empty()) return absl::StrCat(config_path, ": ", field);
    return field;
  };

  if (!config.has_node_id() || config.node_id() < 0) {
    return UsageError(config.has_node_id() ? absl::StrCat(where("node_id"), ": must be 0 or more")
                                           : "--node-id is required");
  }
  if (!config.has_data_dir() || config.data_dir().empty()) return UsageError("--data-dir is required");
  if (!config.has_listen()) return UsageError("--listen is required");
  runnel::LogLevel log_level = runnel::LogLevel::kInfo;
  if (config.has_log_level() && !ParseLogLevel(config.log_level(), &log_level)) {
    return UsageError(absl::StrCat(where("log_level"), ": '", config.log_level(),
                                   "' is not one of debug, info, warning, error"));
  }
  std::string error_field;
  absl::StatusOr<runnel::server::BrokerSettings> settings =
      runnel::server::ResolveBrokerConfig(config, &error_field);
  if (!settings.ok()) {
    // The message starts with the field path; say where that field was set.
    std::string message(settings.status().message());
    if (!error_field.empty() && message.compare(0, error_field.size(), error_field) == 0) {
      message = absl::StrCat(where(error_field), message.substr(error_field.size()));
    }
    return UsageError(message);
  }
  if (!settings->advertised.has_value() && IsWildcardHost(settings->listen.host)) {
    // Clients need a name to connect to: this machine's.
    char host[256] = {};
    if (settings->listen.port == 0 || gethostname(host, sizeof(host) - 1) != 0) {
      return UsageError("listening on every address needs --advertised-listener");
    }
    settings->advertised = runnel::NetworkAddress{host, settings->listen.port};
  }

  absl::StatusOr<std::unique_ptr<runnel::EventLoop>> loop = runnel::EventLoop::Create();
  if (!loop.ok()) {
    std::fprintf(stderr, "runnel-broker: %s\n", loop.status().ToString().c_str());
    return kExitFailure;
  }
  // Before the Env starts its background threads, which inherit the blocked signal mask.
  if (absl::Status signals = (*loop)->StopOnSignals({SIGTERM, SIGINT}); !signals.ok()) {
    std::fprintf(stderr, "runnel-broker: %s\n", signals.ToString().c_str());
    return kExitFailure;
  }
  absl::StatusOr<std::unique_ptr<runnel::PosixEnv>> env =
      runnel::PosixEnv::Create(**loop, config.node_id(), config.data_dir());
  if (!env.ok()) {
    std::fprintf(stderr, "runnel-broker: data directory %s: %s\n", config.data_dir().c_str(),
                 env.status().ToString().c_str());
    return kExitFailure;
  }
  (*env)->set_log_level_min(log_level);
  // The node listens once every recovered log is durable again, which after a crash may be a
  // little after Create() returns: the ready line is printed then.
  runnel::server::BrokerNode* serving_node = nullptr;
  absl::Status listen_status;
  absl::StatusOr<std::unique_ptr<runnel::server::BrokerNode>> node =
      runnel::server::BrokerNode::Create(
          **env, *std::move(settings), "", [&](const absl::Status& status) {
            listen_status = status;
            if (!status.ok()) {
              (*loop)->Stop();
              return;
            }
            // Inside Create() serving_node is not yet set: the line is printed after it returns.
            if (serving_node != nullptr) PrintReady(config.node_id(), *serving_node);
          });
  if (!node.ok()) {
    (*env)->Log(runnel::LogLevel::kError,
                absl::StrCat("broker failed to start: ", node.status().ToString()));
    return kExitFailure;
  }
  serving_node = node->get();
  if ((*node)->serving()) PrintReady(config.node_id(), **node);

  (*loop)->Run();
  if (!listen_status.ok()) {
    (*env)->Log(runnel::LogLevel::kError,
                absl::StrCat("broker failed to start: ", listen_status.ToString()));
    return kExitFailure;
  }
  (*env)->Log(runnel::LogLevel::kInfo,
              absl::StrCat("received signal ", (*loop)->stop_signal(), ": stopping"));
  bool stopped = false;
  absl::Status result;
  (*node)->Shutdown([&](const absl::Status& status) {
    stopped = true;
    result = status;
  });
  if (!(*loop)->RunUntil([&] { return stopped; }, kShutdownTimeoutUs)) {
    (*env)->Log(runnel::LogLevel::kError, "the clean stop did not finish; exiting anyway");
    return kExitFailure;
  }
  runnel::PosixNetwork& network = (*env)->posix_network();
  (*loop)->RunUntil([&] { return network.connections_tracked() == 0; }, kConnectionDrainUs);
  node->reset();
  env->reset();
  return result.ok() ? kExitOk : kExitFailure;
}
