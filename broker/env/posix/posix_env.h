// PosixEnv: the real Env of one node, built on an EventLoop, TCP sockets and a data directory.
//
// Construction resolves everything that can fail (the data directory, the random seed), so a node
// that got a PosixEnv has a working one. Every call must be made on the loop thread; the loop must
// outlive the Env, and the Env every object of its node (env.h). Destroying the Env is how a node
// stops: no timer, network or disk callback of it runs afterwards, and its peers see resets.
#ifndef RUNNEL_BROKER_ENV_POSIX_POSIX_ENV_H_
#define RUNNEL_BROKER_ENV_POSIX_POSIX_ENV_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_clock.h"
#include "broker/env/posix/posix_disk.h"
#include "broker/env/posix/posix_network.h"

namespace runnel {

class PosixEnv final : public Env {
 public:
  // Longest log line written; longer messages are cut and marked, so one line stays one write(2)
  // and lines of concurrent processes sharing stderr do not interleave.
  static constexpr size_t kLogLineBytesMax = 16 << 10;

  // `data_directory` is created if missing. Without `seed`, the Random is seeded from getrandom(2);
  // seed() tells which seed was used, so a run's random choices can be replayed.
  static absl::StatusOr<std::unique_ptr<PosixEnv>> Create(
      EventLoop& loop, NodeId node_id, std::string data_directory,
      std::optional<uint64_t> seed = std::nullopt);
  ~PosixEnv() override;

  PosixEnv(const PosixEnv&) = delete;
  PosixEnv& operator=(const PosixEnv&) = delete;

  NodeId node_id() const override { return node_id_; }
  Clock& clock() override { return clock_; }
  Network& network() override { return network_; }
  Disk& disk() override { return *disk_; }
  Random& random() override { return random_; }
  // Always false: fault injection exists only in the simulator.
  bool BuggifyFires(const BuggifySite& site) override;
  // One line to stderr: "<UTC time> node=<id> EVENT <kind> <subject> value=<value> <detail>".
  void RecordEvent(const SemanticEvent& event) override;
  // One line to stderr: "<UTC time> node=<id> <LEVEL> <message>", if level >= log_level_min().
  // Newlines in the message are escaped, so every entry stays one line.
  void Log(LogLevel level, absl::string_view message) override;

  EventLoop& loop() { return loop_; }
  PosixClock& posix_clock() { return clock_; }
  PosixNetwork& posix_network() { return network_; }
  PosixDisk& posix_disk() { return *disk_; }
  uint64_t seed() const { return seed_; }

  LogLevel log_level_min() const { return log_level_min_; }
  void set_log_level_min(LogLevel level) { log_level_min_ = level; }

 private:
  PosixEnv(EventLoop& loop, NodeId node_id, std::unique_ptr<PosixDisk> disk, uint64_t seed);

  // Writes "<time> node=<id> <tag> <text>\n" to stderr in one write(2).
  void WriteLine(absl::string_view tag, absl::string_view text);

  EventLoop& loop_;
  const NodeId node_id_;
  const uint64_t seed_;
  LogLevel log_level_min_ = LogLevel::kInfo;
  Random random_;
  PosixClock clock_;
  std::unique_ptr<PosixDisk> disk_;
  PosixNetwork network_;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_POSIX_ENV_H_
