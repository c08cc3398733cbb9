// A simulated Kafka deployment: broker nodes (server::BrokerNode over each node's SimEnv) crashed
// and restarted by a fault schedule, and client nodes running workloads with Runnel's own client,
// checked against what Kafka promises.
//
// Nodes: "broker-0" (listening on kBrokerPort), "producer-<i>" and "consumer-<i>". Client nodes
// never crash here; only brokers do.
//
// Workloads:
// - Each producer first makes sure every topic exists (AdminClient: created, or already there),
//   then sends one record every produce_interval_us with acks=all: a key drawn from key_count keys,
//   partitioned by the key's murmur2 hash like Kafka's default partitioner, and a value unique in
//   the run ("p<producer>-<sequence>"). Each record's outcome is recorded: its offset, its error,
//   or nothing by the end of the run.
// - Each consumer is assigned every partition of every topic and reads from the beginning
//   (auto_offset_reset=earliest), recording what it saw at each offset and each high watermark.
//
// Phases: the workload phase lasts duration_us, during which faults are injected (the scheduled
// ones and, if fault_mix.interval_us_mean > 0, random ones from the fault stream). Then producers
// stop sending, brokers that are down are restarted, and the world runs until every record has an
// outcome and every consumer has read up to every partition's high watermark (at most
// settle_timeout_us).
//
// Checks (each failure is a line in KafkaWorldResult::violations, named after Jepsen's anomalies
// where one applies):
// - lost-write: every record acknowledged under acks=all was read by every consumer at its
//   acknowledged offset, with the same key and value.
// - inconsistent-offsets: no offset of a partition ever held two different records, across every
//   consumer and every crash.
// - nonmonotonic-poll / poll-skip: each consumer read each partition's offsets in order, each once,
//   without gaps (the workload's logs have no compaction, transactions or control batches).
// - hw-decreased: the high watermark a consumer saw for a partition never decreased (each
//   regression is also counted in KafkaWorldResult::high_watermark_regressions).
// - phantom-read: every record read was sent by a producer, with the key it was sent with.
// - duplicate (idempotent producers only): no value appears at two offsets.
// - stuck: the settle phase ended with records still unresolved or consumers behind.
// The same options (seed included) give the same trace digest.
#ifndef RUNNEL_SIM_KAFKA_WORLD_H_
#define RUNNEL_SIM_KAFKA_WORLD_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/client/client_options.h"
#include "broker/storage/record_batch.h"
#include "sim/simulator.h"

namespace runnel::sim {

struct KafkaTopicSpec {
  std::string name;
  int32_t partitions = 1;
  // Topic config overrides (for example flush.policy).
  std::map<std::string, std::string> configs;
};

enum class KafkaFaultKind {
  kProcessCrash,    // the broker process dies; the page cache survives
  kPowerLoss,       // the machine loses power; unsynced writes may be lost
  kCleanRestart,    // clean shutdown, then start
  kConnectionReset, // one random connection is reset
  kPartition,       // the broker is cut off from every client (both ways) for downtime_us
};

// One fault at a fixed time. For crashes and restarts, the broker stays down for downtime_us; a
// partition lasts that long.
struct KafkaScheduledFault {
  int64_t at_us = 0;
  KafkaFaultKind kind = KafkaFaultKind::kProcessCrash;
  int64_t downtime_us = 500'000;
  int broker = 0;
};

// Random faults: gaps drawn from an exponential distribution with the given mean (0: none), the
// kind drawn by weight, the downtime uniformly from [downtime_us_min, downtime_us_max].
struct KafkaFaultMix {
  int64_t interval_us_mean = 0;
  uint32_t process_crash_weight = 1;
  uint32_t power_loss_weight = 1;
  uint32_t clean_restart_weight = 0;
  uint32_t connection_reset_weight = 0;
  uint32_t partition_weight = 0;
  int64_t downtime_us_min = 50'000;
  int64_t downtime_us_max = 2'000'000;
};

struct KafkaWorldOptions {
  // The broker's port on every broker node.
  static constexpr uint16_t kBrokerPort = 9092;
  // The most faults one run injects.
  static constexpr int kFaultsMax = 10'000;

  uint64_t seed = 1;
  // Only one broker is supported until replication exists.
  int broker_count = 1;
  std::vector<KafkaTopicSpec> topics = {{"events", 3, {}}};
  int producer_count = 1;
  int consumer_count = 1;
  // Each producer sends one record per interval.
  int64_t produce_interval_us = 10'000;
  int key_count = 16;
  size_t value_padding_bytes = 16;
  bool idempotent = false;
  storage::Compression compression = storage::Compression::kNone;
  int64_t linger_ms = 5;
  // Client timeouts: short, so that crashes exercise retries within a short run.
  int64_t request_timeout_ms = 3'000;
  int64_t delivery_timeout_ms = 60'000;
  int64_t duration_us = 10'000'000;
  int64_t settle_timeout_us = 60'000'000;
  std::vector<KafkaScheduledFault> faults;
  KafkaFaultMix fault_mix;
  bool buggify = false;
  NetworkOptions network;
  // Keep every trace event in memory, up to this many (0: keep none).
  size_t trace_events_kept_max = 0;
  std::string trace_path;  // write the trace file here when not empty
};

struct KafkaWorldResult {
  int64_t simulated_us = 0;
  uint64_t events = 0;
  uint64_t trace_events = 0;
  std::string digest;
  uint64_t faults_injected = 0;
  uint64_t broker_crashes = 0;
  uint64_t broker_restarts = 0;
  uint64_t records_sent = 0;
  uint64_t records_refused = 0;   // Send() refused them (buffer full)
  uint64_t records_acked = 0;
  uint64_t records_failed = 0;
  uint64_t records_unresolved = 0;
  uint64_t records_read = 0;      // deliveries, over every consumer
  uint64_t offsets_observed = 0;  // distinct (partition, offset) pairs read
  uint64_t acked_checked = 0;
  uint64_t high_watermark_regressions = 0;
  std::vector<std::string> violations;
};

class KafkaWorld {
 public:
  explicit KafkaWorld(KafkaWorldOptions options);
  ~KafkaWorld();

  KafkaWorld(const KafkaWorld&) = delete;
  KafkaWorld& operator=(const KafkaWorld&) = delete;

  // Runs the whole scenario and reports. Call once.
  KafkaWorldResult Run();

  Simulator& simulator() { return simulator_; }
  NodeId broker_node(int broker) const { return broker_nodes_.at(static_cast<size_t>(broker)); }

  // The history the workloads record into; public so that node programs reach it.
  class History;

 private:
  void ScheduleFaults();
  void InjectFault(KafkaFaultKind kind, int broker, int64_t downtime_us);
  void StopProducers();
  bool Settled();
  void CheckFinal();
  // The high watermark the broker exposes for a partition now, or nullopt while it is down.
  std::optional<int64_t> BrokerHighWatermark(const client::TopicPartition& partition);

  KafkaWorldOptions options_;
  // Before the simulator: the node programs it destroys hold pointers to the history.
  std::unique_ptr<History> history_;
  Simulator simulator_;
  std::vector<NodeId> broker_nodes_;
  std::vector<NodeId> producer_nodes_;
  std::vector<NodeId> consumer_nodes_;
  std::vector<bool> broker_busy_;
  bool partitioned_ = false;
  KafkaWorldResult result_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_KAFKA_WORLD_H_
