// What the librdkafka benchmarks (kafka_client_bench, group_bench) share: librdkafka handles and
// configuration, runnel-broker as a child process, the clock, failing loudly, and the
// side-by-side table rows that compare runnel-broker with librdkafka's mock cluster.
//
// Benchmarks are plain programs with real threads and real clocks; nothing here is used by the
// broker.
#ifndef RUNNEL_BENCH_RDKAFKA_BENCH_SUPPORT_H_
#define RUNNEL_BENCH_RDKAFKA_BENCH_SUPPORT_H_

#include <librdkafka/rdkafka.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

namespace runnel::bench {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
inline double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Names the program in Fail()'s messages; call first in main().
void SetProgramName(const char* argv0);
// Prints "<program>: <message>" to stderr, stops the broker child (BrokerChild) if one runs, and
// exits 1: std::exit runs no destructors, and an orphaned broker would keep the output pipe open.
[[noreturn]] void Fail(const std::string& message);

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// Sets one librdkafka property, or fails naming it.
void Set(rd_kafka_conf_t* conf, const char* name, const std::string& value);
// A client of `type` from `conf` (which it takes over), with librdkafka's debug contexts `debug`
// unless empty; fails when librdkafka refuses.
KafkaHandle NewClient(rd_kafka_type_t type, rd_kafka_conf_t* conf, const std::string& debug);

// runnel-broker as a child process on a free loopback port, with a fresh data directory under
// $TMPDIR (or /tmp) and, when `config_text` is not empty, that configuration file (Protobuf text
// format). The constructor returns once the broker accepts connections (or fails after
// kBrokerStartTimeout); the destructor stops it with SIGTERM and removes its files. The broker's
// ready line goes to stderr with its log, so that stdout carries only the benchmark's table. At
// most one at a time (Fail() stops it).
class BrokerChild {
 public:
  static constexpr auto kBrokerStartTimeout = std::chrono::seconds(30);

  BrokerChild(const std::string& binary, const std::string& config_text);
  ~BrokerChild();
  BrokerChild(const BrokerChild&) = delete;
  BrokerChild& operator=(const BrokerChild&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  const std::string& data_dir() const { return data_dir_; }

 private:
  std::string data_dir_;
  std::string bootstrap_;
};

// build/broker/server/runnel-broker, found from the benchmark's own path (build/bench/...).
std::string DefaultBrokerBinary(const char* argv0);

// The comparison table's heading, then one row per figure: the figure's name, runnel's value, the
// mock cluster's, and runnel/mock, with `decimals` digits after the point for the two values.
void PrintRatioHeading();
void PrintRatioRow(const char* name, double runnel, double mock, const char* unit,
                   int decimals = 0);

}  // namespace runnel::bench

#endif  // RUNNEL_BENCH_RDKAFKA_BENCH_SUPPORT_H_
