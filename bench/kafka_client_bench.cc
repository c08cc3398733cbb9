// Kafka client benchmark: librdkafka (a real client that nobody here wrote) against runnel-broker
// and, in the same run, against librdkafka's own in-process mock cluster as the peer.
//
// For each target it measures, with 100-byte records by default:
//   - produce throughput at acks=1 and at acks=all (records/s and MB/s, from the first produce()
//     to the last delivery report), with producer batching (linger.ms, batch.size) as a
//     throughput-minded application would set it;
//   - consume throughput (records/s) reading everything produced back from offset 0 with the
//     legacy simple consumer (no consumer group: the group APIs are a later issue);
//   - produce latency p50 and p99 at a steady, moderate rate with linger.ms=0 (time from
//     produce() to the delivery report, acks=all).
// The targets take turns, round by round (--repetitions, default 3), each round on fresh topics,
// and every figure printed is the median over the rounds: this 2-core machine is shared, and one
// round of either target can be slowed by a neighbour. Then it prints both targets side by side
// with the ratio runnel/mock.
//
// runnel-broker is started as a child process on a free loopback port with a fresh data directory
// (removed at exit) and stopped with SIGTERM; its topic is created through librdkafka's admin API
// (CreateTopics). The mock cluster cannot create topics through the protocol, so its topic is made
// with rd_kafka_mock_topic_create.
//
// Run: build/bench/kafka_client_bench [--broker_binary=build/broker/server/runnel-broker]
//      [--records=2000000] [--record_bytes=100] [--partitions=1] [--flush_policy=always]
//      [--targets=runnel,mock] [--repetitions=3]
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/rdkafka_bench_support.h"

ABSL_FLAG(std::string, broker_binary, "",
          "path of runnel-broker; defaults to broker/server/runnel-broker beside this build's bench/");
ABSL_FLAG(int64_t, records, 2'000'000, "records produced per throughput run");
ABSL_FLAG(int32_t, record_bytes, 100, "value size of each record in bytes");
ABSL_FLAG(int32_t, partitions, 1, "partitions of the benchmark topic");
ABSL_FLAG(std::string, flush_policy, "always",
          "runnel topic config flush.policy for the benchmark topic (always, interval, never)");
ABSL_FLAG(int64_t, latency_records, 20'000, "records sent one by one for the latency figure");
ABSL_FLAG(int64_t, latency_rate_per_s, 10'000, "send rate for the latency figure");
ABSL_FLAG(std::string, client_debug, "", "librdkafka debug contexts for the clients (e.g. fetch)");
ABSL_FLAG(std::string, targets, "runnel,mock", "which targets to run, comma separated");
ABSL_FLAG(int32_t, repetitions, 3,
          "rounds of every phase; the targets alternate round by round and each figure printed is "
          "the median over the rounds");

namespace {

namespace bench = runnel::bench;
using bench::Clock;
using bench::Fail;
using bench::KafkaHandle;
using bench::SecondsSince;
using bench::Set;

// The longest any one phase may take before the benchmark gives up on a stuck target.
constexpr auto kPhaseTimeout = std::chrono::seconds(120);
// librdkafka's in-memory queue: big enough that produce() rarely waits on delivery reports.
constexpr int kProducerQueueMessagesMax = 1'000'000;

struct Figures {
  double produce_acks1_records_per_s = 0;
  double produce_acksall_records_per_s = 0;
  double consume_records_per_s = 0;
  double latency_p50_ms = 0;
  double latency_p99_ms = 0;
  int64_t delivery_failures = 0;
};

// --- librdkafka helpers -----------------------------------------------------------------------

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* rkt) const { rd_kafka_topic_destroy(rkt); }
};
using TopicHandle = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;

KafkaHandle NewClient(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  return bench::NewClient(type, conf, absl::GetFlag(FLAGS_client_debug));
}

// Delivery bookkeeping shared with librdkafka's delivery report callback (called from poll()).
struct DeliveryState {
  int64_t delivered = 0;
  int64_t failed = 0;
  std::string first_error;
  // For the latency phase: the send time of each record, indexed by its opaque.
  std::vector<Clock::time_point> sent_at;
  std::vector<double> latencies_ms;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* state = static_cast<DeliveryState*>(opaque);
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (state->failed++ == 0) state->first_error = rd_kafka_err2str(message->err);
    return;
  }
  ++state->delivered;
  if (!state->sent_at.empty()) {
    const auto index = reinterpret_cast<uintptr_t>(message->_private);
    state->latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - state->sent_at[index]).count());
  }
}

KafkaHandle NewProducer(const std::string& bootstrap, const std::string& acks, int linger_ms,
                        DeliveryState* state) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", bootstrap);
  Set(conf, "acks", acks);
  Set(conf, "linger.ms", std::to_string(linger_ms));
  Set(conf, "batch.size", "1000000");
  Set(conf, "batch.num.messages", "100000");
  Set(conf, "queue.buffering.max.messages", std::to_string(kProducerQueueMessagesMax));
  Set(conf, "queue.buffering.max.kbytes", "1048576");
  Set(conf, "compression.codec", "none");
  Set(conf, "enable.idempotence", "false");
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  rd_kafka_conf_set_opaque(conf, state);
  return NewClient(RD_KAFKA_PRODUCER, conf);
}

// Produces `records` records of `record_bytes` round robin over the partitions and waits for every
// delivery report. Returns records/s.
double ProduceThroughput(const std::string& bootstrap, const std::string& topic,
                         const std::string& acks, int64_t records, int32_t record_bytes,
                         int32_t partitions, int64_t* failures) {
  DeliveryState state;
  KafkaHandle producer = NewProducer(bootstrap, acks, /*linger_ms=*/5, &state);
  TopicHandle rkt(rd_kafka_topic_new(producer.get(), topic.c_str(), nullptr));
  std::string value(static_cast<size_t>(record_bytes), 'v');
  const auto start = Clock::now();
  for (int64_t i = 0; i < records; ++i) {
    std::string key = absl::StrCat("k", i % 1000);
    const int32_t partition = static_cast<int32_t>(i % partitions);
    while (rd_kafka_produce(rkt.get(), partition, RD_KAFKA_MSG_F_COPY, value.data(), value.size(),
                            key.data(), key.size(), nullptr) != 0) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        Fail(absl::StrCat("produce: ", rd_kafka_err2str(rd_kafka_last_error())));
      }
      rd_kafka_poll(producer.get(), 1);
      if (Clock::now() - start > kPhaseTimeout) Fail("produce timed out (queue full)");
    }
    rd_kafka_poll(producer.get(), 0);
  }
  while (state.delivered + state.failed < records) {
    rd_kafka_poll(producer.get(), 10);
    if (Clock::now() - start > kPhaseTimeout) {
      Fail(absl::StrCat("produce timed out: ", state.delivered, " of ", records, " delivered"));
    }
  }
  const double seconds = SecondsSince(start);
  if (state.failed > 0) {
    std::fprintf(stderr, "  %lld deliveries failed (first: %s)\n",
                 static_cast<long long>(state.failed), state.first_error.c_str());
  }
  *failures += state.failed;
  return static_cast<double>(state.delivered) / seconds;
}

// Reads `records` records back from offset 0 of every partition, assigned by hand (no consumer
// group: the group APIs are a later issue), through the high-level consumer's poll loop.
double ConsumeThroughput(const std::string& bootstrap, const std::string& topic, int64_t records,
                         int32_t partitions) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", bootstrap);
  // assign() needs a group id, but nothing here commits or joins: the offsets are explicit.
  Set(conf, "group.id", "runnel-client-bench");
  Set(conf, "enable.auto.commit", "false");
  Set(conf, "fetch.max.bytes", "52428800");
  Set(conf, "max.partition.fetch.bytes", "10485760");
  // librdkafka stops fetching a partition once this many records wait in its local queue, and
  // after the application drains them it resumes only on its next periodic wake-up (up to a
  // second later). The mock cluster holds too few records to ever fill the default queue of
  // 100,000, runnel holds them all: a queue that fits the whole run keeps the comparison about
  // the brokers, not about this client-side pause.
  Set(conf, "queued.min.messages", "10000000");
  Set(conf, "queued.max.messages.kbytes", "2097151");
  KafkaHandle consumer = NewClient(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(consumer.get());
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), assignment); err != 0) {
    Fail(absl::StrCat("assign: ", rd_kafka_err2str(err)));
  }
  rd_kafka_topic_partition_list_destroy(assignment);
  // The mock cluster keeps only the newest part of each partition in memory, so the records to
  // read are what the partitions hold now, not what was produced.
  int64_t available = 0;
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(consumer.get(), topic.c_str(),
                                                                   p, &low, &high, 10'000);
        err != 0) {
      Fail(absl::StrCat("watermarks: ", rd_kafka_err2str(err)));
    }
    available += high - low;
  }
  records = std::min(records, available);
  int64_t consumed = 0;
  const auto start = Clock::now();
  // The clock starts at the first record so that start-up (metadata, offset lookup) is not
  // counted as consume time.
  auto first_record_at = start;
  while (consumed < records) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 100);
    if (message != nullptr) {
      if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (consumed++ == 0) first_record_at = Clock::now();
      } else if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "  consume error: %s\n", rd_kafka_message_errstr(message));
      }
      rd_kafka_message_destroy(message);
    }
    if (Clock::now() - start > kPhaseTimeout) {
      Fail(absl::StrCat("consume timed out: ", consumed, " of ", records));
    }
  }
  const double seconds = SecondsSince(first_record_at);
  rd_kafka_consumer_close(consumer.get());
  return static_cast<double>(consumed) / seconds;
}

// Sends records one at a time at a steady rate with linger.ms=0 and acks=all, and returns the
// delivery latencies sorted.
std::vector<double> ProduceLatencies(const std::string& bootstrap, const std::string& topic,
                                     int64_t records, int64_t rate_per_s, int32_t record_bytes,
                                     int64_t* failures) {
  DeliveryState state;
  state.sent_at.resize(static_cast<size_t>(records));
  state.latencies_ms.reserve(static_cast<size_t>(records));
  KafkaHandle producer = NewProducer(bootstrap, "all", /*linger_ms=*/0, &state);
  TopicHandle rkt(rd_kafka_topic_new(producer.get(), topic.c_str(), nullptr));
  std::string value(static_cast<size_t>(record_bytes), 'l');
  const auto start = Clock::now();
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / rate_per_s);
  for (int64_t i = 0; i < records; ++i) {
    const auto due = start + i * interval;
    while (Clock::now() < due) rd_kafka_poll(producer.get(), 0);
    state.sent_at[static_cast<size_t>(i)] = Clock::now();
    if (rd_kafka_produce(rkt.get(), RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.data(),
                         value.size(), nullptr, 0,
                         reinterpret_cast<void*>(static_cast<uintptr_t>(i))) != 0) {
      Fail(absl::StrCat("produce: ", rd_kafka_err2str(rd_kafka_last_error())));
    }
    rd_kafka_poll(producer.get(), 0);
  }
  while (state.delivered + state.failed < records) {
    rd_kafka_poll(producer.get(), 10);
    if (Clock::now() - start > kPhaseTimeout) Fail("latency phase timed out");
  }
  *failures += state.failed;
  std::sort(state.latencies_ms.begin(), state.latencies_ms.end());
  return state.latencies_ms;
}

double Percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(fraction * sorted.size()));
  return sorted[index];
}

// The median of each figure over the rounds; delivery failures are summed, since any is a fault.
Figures Median(const std::vector<Figures>& rounds) {
  Figures median;
  if (rounds.empty()) return median;
  auto middle = [&](double Figures::*field) {
    std::vector<double> values;
    for (const Figures& round : rounds) values.push_back(round.*field);
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  median.produce_acks1_records_per_s = middle(&Figures::produce_acks1_records_per_s);
  median.produce_acksall_records_per_s = middle(&Figures::produce_acksall_records_per_s);
  median.consume_records_per_s = middle(&Figures::consume_records_per_s);
  median.latency_p50_ms = middle(&Figures::latency_p50_ms);
  median.latency_p99_ms = middle(&Figures::latency_p99_ms);
  for (const Figures& round : rounds) median.delivery_failures += round.delivery_failures;
  return median;
}

// Creates `topic` through the admin API (CreateTopics) and waits for the answer.
void CreateTopicByAdmin(const std::string& bootstrap, const std::string& topic,
                        int32_t partitions, const std::map<std::string, std::string>& configs) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", bootstrap);
  KafkaHandle admin = NewClient(RD_KAFKA_PRODUCER, conf);
  char error[512];
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, error, sizeof(error));
  if (new_topic == nullptr) Fail(absl::StrCat("NewTopic: ", error));
  for (const auto& [name, value] : configs) {
    rd_kafka_NewTopic_set_config(new_topic, name.c_str(), value.c_str());
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin.get());
  rd_kafka_CreateTopics(admin.get(), &new_topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30'000);
  if (event == nullptr) Fail("CreateTopics: no answer within 30 s");
  if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Fail(absl::StrCat("CreateTopics: ", rd_kafka_event_error_string(event)));
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
  size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  for (size_t i = 0; i < count; ++i) {
    if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      Fail(absl::StrCat("CreateTopics ", topic, ": ", rd_kafka_topic_result_error_string(results[i])));
    }
  }
  rd_kafka_event_destroy(event);
  rd_kafka_NewTopic_destroy(new_topic);
  rd_kafka_queue_destroy(queue);
}

// One round of every phase against one target, on topics named for the round.
Figures RunTarget(const std::string& bootstrap, int round,
                  const std::function<void(const std::string& topic)>& create_topic) {
  const int64_t records = absl::GetFlag(FLAGS_records);
  const int32_t record_bytes = absl::GetFlag(FLAGS_record_bytes);
  const int32_t partitions = absl::GetFlag(FLAGS_partitions);
  Figures figures;
  const std::string acks1_topic = absl::StrCat("bench-acks1-r", round);
  const std::string acksall_topic = absl::StrCat("bench-acksall-r", round);
  const std::string latency_topic = absl::StrCat("bench-latency-r", round);
  create_topic(acks1_topic);
  create_topic(acksall_topic);
  create_topic(latency_topic);
  figures.produce_acks1_records_per_s = ProduceThroughput(
      bootstrap, acks1_topic, "1", records, record_bytes, partitions, &figures.delivery_failures);
  std::fprintf(stderr, "  produce acks=1: %.0f records/s\n", figures.produce_acks1_records_per_s);
  figures.produce_acksall_records_per_s =
      ProduceThroughput(bootstrap, acksall_topic, "all", records, record_bytes, partitions,
                        &figures.delivery_failures);
  std::fprintf(stderr, "  produce acks=all: %.0f records/s\n",
               figures.produce_acksall_records_per_s);
  figures.consume_records_per_s = ConsumeThroughput(bootstrap, acks1_topic, records, partitions);
  std::fprintf(stderr, "  consume: %.0f records/s\n", figures.consume_records_per_s);
  std::vector<double> latencies =
      ProduceLatencies(bootstrap, latency_topic, absl::GetFlag(FLAGS_latency_records),
                       absl::GetFlag(FLAGS_latency_rate_per_s), record_bytes,
                       &figures.delivery_failures);
  figures.latency_p50_ms = Percentile(latencies, 0.50);
  figures.latency_p99_ms = Percentile(latencies, 0.99);
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  bench::SetProgramName(argv[0]);
  absl::ParseCommandLine(argc, argv);
  std::string binary = absl::GetFlag(FLAGS_broker_binary);
  if (binary.empty()) binary = bench::DefaultBrokerBinary(argv[0]);
  const int32_t partitions = absl::GetFlag(FLAGS_partitions);
  std::vector<std::string> targets = absl::StrSplit(absl::GetFlag(FLAGS_targets), ',');
  const bool run_runnel = std::find(targets.begin(), targets.end(), "runnel") != targets.end();
  const bool run_mock = std::find(targets.begin(), targets.end(), "mock") != targets.end();

  const int32_t repetitions = std::max(absl::GetFlag(FLAGS_repetitions), 1);
  std::unique_ptr<bench::BrokerChild> broker;
  std::string runnel_bootstrap;
  if (run_runnel) {
    broker = std::make_unique<bench::BrokerChild>(binary, "");
    runnel_bootstrap = broker->bootstrap();
    std::fprintf(stderr, "runnel-broker at %s (data in %s)\n", runnel_bootstrap.c_str(),
                 broker->data_dir().c_str());
  }
  // The mock cluster lives inside a client handle of its own.
  KafkaHandle mock_host;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string mock_bootstrap;
  if (run_mock) {
    mock_host = NewClient(RD_KAFKA_PRODUCER, rd_kafka_conf_new());
    cluster = rd_kafka_mock_cluster_new(mock_host.get(), 1);
    if (cluster == nullptr) Fail("rd_kafka_mock_cluster_new");
    mock_bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);
    std::fprintf(stderr, "mock cluster at %s\n", mock_bootstrap.c_str());
  }
  const std::map<std::string, std::string> runnel_configs = {
      {"flush.policy", absl::GetFlag(FLAGS_flush_policy)}};
  std::vector<Figures> runnel_rounds;
  std::vector<Figures> mock_rounds;
  for (int round = 1; round <= repetitions; ++round) {
    if (run_runnel) {
      std::fprintf(stderr, "round %d of %d, runnel-broker\n", round, repetitions);
      runnel_rounds.push_back(RunTarget(runnel_bootstrap, round, [&](const std::string& topic) {
        CreateTopicByAdmin(runnel_bootstrap, topic, partitions, runnel_configs);
      }));
    }
    if (run_mock) {
      std::fprintf(stderr, "round %d of %d, mock cluster\n", round, repetitions);
      mock_rounds.push_back(RunTarget(mock_bootstrap, round, [&](const std::string& topic) {
        if (rd_kafka_mock_topic_create(cluster, topic.c_str(), partitions, 1) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
          Fail(absl::StrCat("mock topic create ", topic));
        }
      }));
    }
  }
  if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
  broker.reset();
  const Figures runnel = Median(runnel_rounds);
  const Figures mock = Median(mock_rounds);

  std::printf(
      "\nlibrdkafka %s, %lld records of %d bytes, %d partition(s), runnel flush.policy=%s, "
      "median of %d rounds\n",
      rd_kafka_version_str(), static_cast<long long>(absl::GetFlag(FLAGS_records)),
      absl::GetFlag(FLAGS_record_bytes), partitions, absl::GetFlag(FLAGS_flush_policy).c_str(),
      repetitions);
  bench::PrintRatioHeading();
  bench::PrintRatioRow("produce acks=1", runnel.produce_acks1_records_per_s, mock.produce_acks1_records_per_s,
           "records/s");
  bench::PrintRatioRow("produce acks=all", runnel.produce_acksall_records_per_s,
           mock.produce_acksall_records_per_s, "records/s");
  bench::PrintRatioRow("consume", runnel.consume_records_per_s, mock.consume_records_per_s, "records/s");
  bench::PrintRatioRow("produce latency p50", runnel.latency_p50_ms, mock.latency_p50_ms, "ms", /*decimals=*/2);
  bench::PrintRatioRow("produce latency p99", runnel.latency_p99_ms, mock.latency_p99_ms, "ms", /*decimals=*/2);
  std::printf("delivery failures: runnel %lld, mock %lld\n",
              static_cast<long long>(runnel.delivery_failures),
              static_cast<long long>(mock.delivery_failures));
  std::printf("goal: produce acks=1 >= 1000000 records/s on runnel: %s; ratio >= 1.0: %s\n",
              runnel.produce_acks1_records_per_s >= 1e6 ? "met" : "MISSED",
              mock.produce_acks1_records_per_s > 0 &&
                      runnel.produce_acks1_records_per_s >= mock.produce_acks1_records_per_s
                  ? "met"
                  : "MISSED");
  return 0;
}
