#include "sim/kafka_world.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/client/admin_client.h"
#include "broker/client/consumer.h"
#include "broker/client/kafka_error.h"
#include "broker/client/producer.h"
#include "broker/server/broker_node.h"
#include "broker/server/handler_support.h"

namespace runnel::sim {

using client::TopicPartition;

namespace {

// Violations recorded beyond this many are only counted, so a badly broken run stays readable.
constexpr size_t kViolationsMax = 200;
// How long a producer waits before asking again for its topics after a failed attempt.
constexpr int64_t kTopicSetupRetryUs = 200'000;
constexpr int64_t kUsPerMs = 1000;

// What a broker node runs: the broker, or why it did not start.
struct BrokerProgram {
  std::unique_ptr<server::BrokerNode> node;
  absl::Status status;
};

std::string FaultKindName(KafkaFaultKind kind) {
  switch (kind) {
    case KafkaFaultKind::kProcessCrash:
      return "process crash";
    case KafkaFaultKind::kPowerLoss:
      return "power loss";
    case KafkaFaultKind::kCleanRestart:
      return "clean stop";
    case KafkaFaultKind::kConnectionReset:
      return "connection reset";
    case KafkaFaultKind::kPartition:
      return "partition";
  }
  return "unknown";
}

std::string Printable(const std::optional<std::string>& bytes) {
  return bytes.has_value() ? absl::StrCat("'", *bytes, "'") : std::string("null");
}

}  // namespace

// Everything the workloads did and saw, and the checks that need no more than that.
class KafkaWorld::History {
 public:
  explicit History(bool idempotent) : idempotent_(idempotent) {}

  struct Sent {
    int producer = 0;
    std::string topic;
    std::string key;
    std::string value;
    enum class Outcome { kPending, kAcked, kFailed, kRefused } outcome = Outcome::kPending;
    int32_t partition = -1;
    int64_t offset = -1;
    std::string error;
  };
  // What one offset held when read.
  struct Observed {
    std::optional<std::string> key;
    std::optional<std::string> value;
    friend bool operator==(const Observed&, const Observed&) = default;
  };

  uint64_t AddSent(int producer, std::string topic, std::string key, std::string value) {
    const uint64_t id = sent_.size();
    by_value_[value] = id;
    sent_.push_back(Sent{producer, std::move(topic), std::move(key), std::move(value)});
    return id;
  }
  void Refused(uint64_t id) { sent_[id].outcome = Sent::Outcome::kRefused; }
  void Acked(uint64_t id, int32_t partition, int64_t offset) {
    Sent& sent = sent_[id];
    sent.outcome = Sent::Outcome::kAcked;
    sent.partition = partition;
    sent.offset = offset;
    if (offset < 0) Violation(absl::StrCat("ack-without-offset: ", sent.value, " acknowledged under acks=all without an offset"));
  }
  void Failed(uint64_t id, std::string error) {
    sent_[id].outcome = Sent::Outcome::kFailed;
    sent_[id].error = std::move(error);
  }

  // One delivery to consumer `consumer` in read pass `pass` (0: the workload, 1: the final
  // verification read).
  void Observe(int consumer, int pass, const client::FetchedRecords& fetched) {
    const TopicPartition& partition = fetched.partition;
    const std::string where = absl::StrCat("consumer ", consumer, " pass ", pass, " ",
                                           partition.ToString());
    const auto reader = std::make_tuple(consumer, pass, partition);
    for (const client::ConsumerRecord& record : fetched.records) {
      ++records_read_;
      auto last = last_offset_.find(reader);
      if (last == last_offset_.end()) {
        if (record.offset != 0) {
          Violation(absl::StrCat("poll-skip: ", where, " began at offset ", record.offset,
                                 " instead of 0"));
        }
      } else if (record.offset <= last->second) {
        Violation(absl::StrCat("nonmonotonic-poll: ", where, " read offset ", record.offset,
                               " after ", last->second));
      } else if (record.offset != last->second + 1) {
        Violation(absl::StrCat("poll-skip: ", where, " read offset ", record.offset, " after ",
                               last->second));
      }
      last_offset_[reader] = record.offset;

      Observed seen{record.key, record.value};
      auto [slot, inserted] = observed_[partition].try_emplace(record.offset, seen);
      if (!inserted && !(slot->second == seen)) {
        Violation(absl::StrCat("inconsistent-offsets: ", partition.ToString(), " offset ",
                               record.offset, " held key ", Printable(slot->second.key),
                               " value ", Printable(slot->second.value), " and later key ",
                               Printable(seen.key), " value ", Printable(seen.value), " (", where,
                               ")"));
      }
      if (pass == 1) final_[partition][record.offset] = seen;

      if (!record.value.has_value() || !by_value_.contains(*record.value)) {
        Violation(absl::StrCat("phantom-read: ", where, " offset ", record.offset,
                               " holds value ", Printable(record.value),
                               " that no producer sent"));
      } else {
        const Sent& sent = sent_[by_value_[*record.value]];
        if (!record.key.has_value() || *record.key != sent.key || sent.topic != partition.topic) {
          Violation(absl::StrCat("phantom-read: ", where, " offset ", record.offset, " holds ",
                                 *record.value, " with key ", Printable(record.key),
                                 " but it was sent to ", sent.topic, " with key ", sent.key));
        }
        if (idempotent_) {
          auto [first, fresh] =
              first_offset_of_value_.try_emplace(*record.value, partition, record.offset);
          if (!fresh && first->second != std::make_pair(partition, record.offset)) {
            Violation(absl::StrCat("duplicate: ", *record.value, " at ",
                                   first->second.first.ToString(), " offset ",
                                   first->second.second, " and ", partition.ToString(),
                                   " offset ", record.offset));
          }
        }
      }
    }
    auto [hw, fresh] = last_high_watermark_.try_emplace(reader, fetched.high_watermark);
    if (!fresh) {
      if (fetched.high_watermark < hw->second) {
        ++high_watermark_regressions_;
        Violation(absl::StrCat("hw-decreased: ", where, " high watermark went from ",
                               hw->second, " to ", fetched.high_watermark));
      }
      hw->second = fetched.high_watermark;
    }
  }

  void ConsumerError(int consumer, const TopicPartition& partition, const absl::Status& error) {
    Violation(absl::StrCat("consumer-error: consumer ", consumer, " ", partition.ToString(), ": ",
                           error.ToString()));
  }

  void Violation(std::string text) {
    ++violation_count_;
    if (violations_.size() < kViolationsMax) violations_.push_back(std::move(text));
  }

  // The final checks: every acknowledged record is in the final read at its offset.
  void CheckAcknowledged(KafkaWorldResult& result) {
    for (const Sent& sent : sent_) {
      switch (sent.outcome) {
        case Sent::Outcome::kPending:
          ++result.records_unresolved;
          break;
        case Sent::Outcome::kRefused:
          ++result.records_refused;
          break;
        case Sent::Outcome::kFailed:
          ++result.records_failed;
          break;
        case Sent::Outcome::kAcked: {
          ++result.records_acked;
          if (sent.offset < 0) break;
          ++result.acked_checked;
          const TopicPartition partition{sent.topic, sent.partition};
          auto log = final_.find(partition);
          const Observed* found = nullptr;
          if (log != final_.end()) {
            auto at = log->second.find(sent.offset);
            if (at != log->second.end()) found = &at->second;
          }
          if (found == nullptr) {
            Violation(absl::StrCat("lost-write: ", sent.value, " (key ", sent.key,
                                   ") acknowledged at ", partition.ToString(), " offset ",
                                   sent.offset, " is not in the final read"));
          } else if (found->key != sent.key || found->value != sent.value) {
            Violation(absl::StrCat("lost-write: ", sent.value, " (key ", sent.key,
                                   ") acknowledged at ", partition.ToString(), " offset ",
                                   sent.offset, " but the final read has key ",
                                   Printable(found->key), " value ", Printable(found->value)));
          }
          break;
        }
      }
    }
    result.records_sent = sent_.size();
    result.high_watermark_regressions = high_watermark_regressions_;
    result.records_read = records_read_;
    for (const auto& [partition, offsets] : observed_) result.offsets_observed += offsets.size();
    result.violations = violations_;
    if (violation_count_ > violations_.size()) {
      result.violations.push_back(absl::StrCat("... and ", violation_count_ - violations_.size(),
                                               " more violations"));
    }
  }

 private:
  const bool idempotent_;
  uint64_t high_watermark_regressions_ = 0;
  std::vector<Sent> sent_;
  std::map<std::string, uint64_t> by_value_;
  std::map<TopicPartition, std::map<int64_t, Observed>> observed_;
  std::map<TopicPartition, std::map<int64_t, Observed>> final_;
  std::map<std::tuple<int, int, TopicPartition>, int64_t> last_offset_;
  std::map<std::tuple<int, int, TopicPartition>, int64_t> last_high_watermark_;
  std::map<std::string, std::pair<TopicPartition, int64_t>> first_offset_of_value_;
  uint64_t records_read_ = 0;
  std::vector<std::string> violations_;
  size_t violation_count_ = 0;
};

namespace {

client::ClientOptions MakeClientOptions(const KafkaWorldOptions& options, std::string client_id,
                                        const std::vector<NetworkAddress>& bootstrap) {
  client::ClientOptions client;
  client.bootstrap_servers = bootstrap;
  client.client_id = std::move(client_id);
  client.request_timeout_ms = options.request_timeout_ms;
  client.connection_setup_timeout_ms = options.request_timeout_ms;
  return client;
}

// A producer node: makes sure the topics exist, then sends at a steady rate.
class ProducerWorkload {
 public:
  ProducerWorkload(Env& env, const KafkaWorldOptions& options, int index,
                   const std::vector<NetworkAddress>& bootstrap, KafkaWorld::History* history)
      : env_(env),
        options_(options),
        index_(index),
        history_(history),
        alive_(std::make_shared<ProducerWorkload*>(this)) {
    client::ClientOptions client =
        MakeClientOptions(options, absl::StrCat("producer-", index), bootstrap);
    client::AdminOptions admin;
    admin.client = client;
    admin.api_timeout_ms = options.request_timeout_ms * 2;
    admin_ = *client::AdminClient::Create(env, admin);
    client::ProducerOptions producer;
    producer.client = client;
    producer.acks = client::Acks::kAll;
    producer.idempotent = options.idempotent;
    producer.compression = options.compression;
    producer.linger_ms = options.linger_ms;
    producer.delivery_timeout_ms = options.delivery_timeout_ms;
    producer_ = *client::Producer::Create(env, producer);
    EnsureTopics();
  }
  ~ProducerWorkload() {
    alive_.reset();
    if (timer_ != kNoTimer) env_.clock().CancelTimer(timer_);
  }

  void Stop() { stopped_ = true; }
  size_t records_pending() const { return producer_->records_pending(); }

 private:
  void EnsureTopics() {
    std::vector<client::NewTopic> topics;
    for (const KafkaTopicSpec& spec : options_.topics) {
      topics.push_back(client::NewTopic{spec.name, spec.partitions, 1, spec.configs});
    }
    std::weak_ptr<ProducerWorkload*> alive = alive_;
    admin_->CreateTopics(
        std::move(topics), {},
        [alive](absl::StatusOr<std::map<std::string, absl::Status>> results) {
          if (alive.expired()) return;
          ProducerWorkload* self = *alive.lock();
          bool ready = results.ok();
          if (results.ok()) {
            for (const auto& [name, status] : *results) {
              if (!status.ok() && status.code() != absl::StatusCode::kAlreadyExists) ready = false;
            }
          }
          if (!ready) {
            self->env_.Log(LogLevel::kInfo, absl::StrCat("workload: topics not ready yet: ",
                                                         results.ok() ? "per-topic errors"
                                                                      : results.status().ToString()));
            self->timer_ = self->env_.clock().ScheduleAfter(kTopicSetupRetryUs, [alive] {
              if (alive.expired()) return;
              ProducerWorkload* workload = *alive.lock();
              workload->timer_ = kNoTimer;
              workload->EnsureTopics();
            });
            return;
          }
          self->Tick();
        });
  }

  void Tick() {
    timer_ = kNoTimer;
    if (stopped_) return;
    const KafkaTopicSpec& topic =
        options_.topics[static_cast<size_t>(sequence_ % options_.topics.size())];
    const std::string key =
        absl::StrCat("k", env_.random().Below(static_cast<uint64_t>(options_.key_count)));
    std::string value = absl::StrCat("p", index_, "-", sequence_);
    value.append(options_.value_padding_bytes, '.');
    ++sequence_;
    const uint64_t id = history_->AddSent(index_, topic.name, key, value);
    client::ProducerRecord record;
    record.topic = topic.name;
    record.key = key;
    record.value = value;
    std::weak_ptr<ProducerWorkload*> alive = alive_;
    KafkaWorld::History* history = history_;
    Env* env = &env_;
    absl::Status accepted = producer_->Send(
        std::move(record), [alive, history, env, id](absl::StatusOr<client::RecordMetadata> result) {
          if (alive.expired()) return;
          if (result.ok()) {
            history->Acked(id, result->partition.partition, result->offset);
            const std::string subject = result->partition.ToString();
            env->RecordEvent(SemanticEvent{.kind = "produce.ack", .subject = subject,
                                           .value = result->offset});
          } else {
            history->Failed(id, result.status().ToString());
          }
        });
    if (!accepted.ok()) history_->Refused(id);
    std::weak_ptr<ProducerWorkload*> self = alive_;
    timer_ = env_.clock().ScheduleAfter(options_.produce_interval_us, [self] {
      if (!self.expired()) (*self.lock())->Tick();
    });
  }

  Env& env_;
  const KafkaWorldOptions& options_;
  const int index_;
  KafkaWorld::History* history_;
  std::unique_ptr<client::AdminClient> admin_;
  std::unique_ptr<client::Producer> producer_;
  uint64_t sequence_ = 0;
  bool stopped_ = false;
  TimerId timer_ = kNoTimer;
  std::shared_ptr<ProducerWorkload*> alive_;
};

// A consumer node: reads every partition from the beginning; at the end, reads it all again.
class ConsumerWorkload {
 public:
  ConsumerWorkload(Env& env, const KafkaWorldOptions& options, int index,
                   const std::vector<NetworkAddress>& bootstrap, KafkaWorld::History* history)
      : env_(env), index_(index), history_(history) {
    client::ConsumerOptions consumer;
    consumer.client = MakeClientOptions(options, absl::StrCat("consumer-", index), bootstrap);
    consumer.auto_offset_reset = client::OffsetReset::kEarliest;
    consumer.on_records = [this](client::FetchedRecords records) {
      history_->Observe(index_, pass_, records);
      const std::string subject = records.partition.ToString();
      env_.RecordEvent(SemanticEvent{.kind = "consume", .subject = subject,
                                     .value = records.next_offset});
    };
    consumer.on_error = [this](const TopicPartition& partition, const absl::Status& error) {
      history_->ConsumerError(index_, partition, error);
    };
    consumer_ = *client::Consumer::Create(env, std::move(consumer));
    for (const KafkaTopicSpec& topic : options.topics) {
      for (int32_t partition = 0; partition < topic.partitions; ++partition) {
        partitions_.push_back(TopicPartition{topic.name, partition});
      }
    }
    absl::Status assigned = consumer_->Assign(partitions_);
    assert(assigned.ok());
  }

  // Starts the verification pass: everything is read again from the beginning.
  void Reread() {
    pass_ = 1;
    absl::Status sought = consumer_->SeekToBeginning(partitions_);
    assert(sought.ok());
  }
  int pass() const { return pass_; }
  std::optional<int64_t> Position(const TopicPartition& partition) const {
    return consumer_->Position(partition);
  }

 private:
  Env& env_;
  const int index_;
  KafkaWorld::History* history_;
  std::unique_ptr<client::Consumer> consumer_;
  std::vector<TopicPartition> partitions_;
  int pass_ = 0;
};

}  // namespace

KafkaWorld::KafkaWorld(KafkaWorldOptions options)
    : options_(std::move(options)),
      history_(std::make_unique<History>(options_.idempotent)),
      simulator_([&] {
        SimulatorOptions simulator;
        simulator.seed = options_.seed;
        simulator.buggify.enabled = options_.buggify;
        simulator.network = options_.network;
        return simulator;
      }()) {
  assert(options_.broker_count == 1 && "one broker until replication exists");
  assert(!options_.topics.empty());
  std::vector<NetworkAddress> bootstrap;
  for (int i = 0; i < options_.broker_count; ++i) {
    const std::string name = absl::StrCat("broker-", i);
    server::BrokerSettings settings;
    settings.listen = NetworkAddress{name, KafkaWorldOptions::kBrokerPort};
    // Topics come from the workload's CreateTopics, with the partition counts it asks for.
    settings.defaults.auto_create_topics_enable = false;
    bootstrap.push_back(settings.listen);
    NodeOptions node;
    node.name = name;
    node.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
    broker_nodes_.push_back(simulator_.AddNode(node, [settings](Env& env) -> std::shared_ptr<void> {
      auto program = std::make_shared<BrokerProgram>();
      absl::StatusOr<std::unique_ptr<server::BrokerNode>> broker =
          server::BrokerNode::Create(env, settings);
      if (broker.ok()) {
        program->node = *std::move(broker);
      } else {
        program->status = broker.status();
        env.Log(LogLevel::kError, absl::StrCat("broker did not start: ", broker.status().ToString()));
      }
      return program;
    }));
  }
  broker_busy_.assign(static_cast<size_t>(options_.broker_count), false);
  History* history = history_.get();
  const KafkaWorldOptions* world_options = &options_;
  for (int i = 0; i < options_.producer_count; ++i) {
    NodeOptions node;
    node.name = absl::StrCat("producer-", i);
    node.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
    producer_nodes_.push_back(
        simulator_.AddNode(node, [world_options, i, bootstrap, history](Env& env) {
          return std::make_shared<ProducerWorkload>(env, *world_options, i, bootstrap, history);
        }));
  }
  for (int i = 0; i < options_.consumer_count; ++i) {
    NodeOptions node;
    node.name = absl::StrCat("consumer-", i);
    node.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
    consumer_nodes_.push_back(
        simulator_.AddNode(node, [world_options, i, bootstrap, history](Env& env) {
          return std::make_shared<ConsumerWorkload>(env, *world_options, i, bootstrap, history);
        }));
  }
}

KafkaWorld::~KafkaWorld() = default;

KafkaWorldResult KafkaWorld::Run() {
  Trace& trace = simulator_.trace();
  if (options_.trace_events_kept_max > 0) trace.KeepInMemory(options_.trace_events_kept_max);
  if (!options_.trace_path.empty()) {
    TraceHeader header;
    header.set_seed(options_.seed);
    header.set_source("kafka world");
    for (size_t i = 0; i < simulator_.node_count(); ++i) {
      header.add_node_names(simulator_.NodeName(static_cast<NodeId>(i)));
    }
    absl::Status opened = trace.OpenFile(options_.trace_path, header);
    if (!opened.ok()) history_->Violation(std::string(opened.message()));
  }
  for (NodeId node : broker_nodes_) simulator_.StartNode(node);
  for (NodeId node : producer_nodes_) simulator_.StartNode(node);
  for (NodeId node : consumer_nodes_) simulator_.StartNode(node);
  ScheduleFaults();
  simulator_.RunUntil(options_.duration_us);

  StopProducers();
  const int64_t settle_deadline_us = simulator_.NowUs() + options_.settle_timeout_us;
  if (!simulator_.RunUntilCondition([this] { return Settled(); }, settle_deadline_us)) {
    history_->Violation(absl::StrCat("stuck: the workload did not settle within ",
                                     options_.settle_timeout_us, " us after it stopped"));
  } else {
    for (NodeId node : consumer_nodes_) {
      static_cast<ConsumerWorkload*>(simulator_.NodeProgramObject(node).get())->Reread();
    }
    const int64_t reread_deadline_us = simulator_.NowUs() + options_.settle_timeout_us;
    if (!simulator_.RunUntilCondition([this] { return Settled(); }, reread_deadline_us)) {
      history_->Violation(absl::StrCat("stuck: the final read did not finish within ",
                                       options_.settle_timeout_us, " us"));
    }
  }
  history_->CheckAcknowledged(result_);

  absl::Status closed = trace.CloseFile();
  if (!closed.ok()) result_.violations.push_back(std::string(closed.message()));
  result_.simulated_us = simulator_.NowUs();
  result_.events = simulator_.events_processed();
  result_.trace_events = trace.event_count();
  result_.digest = trace.DigestHex();
  return result_;
}

void KafkaWorld::StopProducers() {
  for (NodeId node : producer_nodes_) {
    auto* workload = static_cast<ProducerWorkload*>(simulator_.NodeProgramObject(node).get());
    if (workload != nullptr) workload->Stop();
  }
}

std::optional<int64_t> KafkaWorld::BrokerHighWatermark(const TopicPartition& partition) {
  auto* program = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(broker_nodes_[0]).get());
  if (program == nullptr || program->node == nullptr) return std::nullopt;
  const storage::PartitionLog* log =
      program->node->topics().Find(partition.topic, partition.partition);
  if (log == nullptr) return std::nullopt;
  return server::HighWatermark(*log);
}

bool KafkaWorld::Settled() {
  for (NodeId node : producer_nodes_) {
    auto* workload = static_cast<ProducerWorkload*>(simulator_.NodeProgramObject(node).get());
    if (workload != nullptr && workload->records_pending() > 0) return false;
  }
  for (const KafkaTopicSpec& topic : options_.topics) {
    for (int32_t partition = 0; partition < topic.partitions; ++partition) {
      const TopicPartition key{topic.name, partition};
      std::optional<int64_t> high_watermark = BrokerHighWatermark(key);
      if (!high_watermark.has_value()) return false;
      for (NodeId node : consumer_nodes_) {
        auto* workload = static_cast<ConsumerWorkload*>(simulator_.NodeProgramObject(node).get());
        std::optional<int64_t> position = workload->Position(key);
        if (!position.has_value() || *position < *high_watermark) return false;
      }
    }
  }
  return true;
}

void KafkaWorld::ScheduleFaults() {
  for (const KafkaScheduledFault& fault : options_.faults) {
    if (fault.at_us >= options_.duration_us) continue;
    simulator_.Schedule(fault.at_us - simulator_.NowUs(), [this, fault] {
      InjectFault(fault.kind, fault.broker, fault.downtime_us);
    });
  }
  const KafkaFaultMix& mix = options_.fault_mix;
  if (mix.interval_us_mean <= 0) return;
  const uint64_t total_weight = uint64_t{mix.process_crash_weight} + mix.power_loss_weight +
                                mix.clean_restart_weight + mix.connection_reset_weight +
                                mix.partition_weight;
  if (total_weight == 0) return;
  // Fault times form a Poisson process: exponential gaps drawn from the fault stream.
  Random& random = simulator_.FaultRandom();
  int64_t at_us = 0;
  for (int i = 0; i < KafkaWorldOptions::kFaultsMax; ++i) {
    const double fraction = std::max(random.Fraction(), 1e-9);
    at_us += static_cast<int64_t>(-std::log(fraction) * static_cast<double>(mix.interval_us_mean));
    if (at_us >= options_.duration_us) break;
    simulator_.Schedule(at_us, [this, total_weight] {
      Random& fault_random = simulator_.FaultRandom();
      const KafkaFaultMix& m = options_.fault_mix;
      uint64_t pick = fault_random.Below(total_weight);
      KafkaFaultKind kind = KafkaFaultKind::kConnectionReset;
      if (pick < m.process_crash_weight) {
        kind = KafkaFaultKind::kProcessCrash;
      } else if ((pick -= m.process_crash_weight) < m.power_loss_weight) {
        kind = KafkaFaultKind::kPowerLoss;
      } else if ((pick -= m.power_loss_weight) < m.clean_restart_weight) {
        kind = KafkaFaultKind::kCleanRestart;
      } else if ((pick -= m.clean_restart_weight) < m.connection_reset_weight) {
        kind = KafkaFaultKind::kConnectionReset;
      } else {
        kind = KafkaFaultKind::kPartition;
      }
      const int broker = static_cast<int>(
          fault_random.Below(static_cast<uint64_t>(options_.broker_count)));
      const int64_t downtime_us = fault_random.Between(m.downtime_us_min, m.downtime_us_max);
      InjectFault(kind, broker, downtime_us);
    });
  }
}

void KafkaWorld::InjectFault(KafkaFaultKind kind, int broker, int64_t downtime_us) {
  const NodeId node = broker_nodes_.at(static_cast<size_t>(broker));
  const std::string name = simulator_.NodeName(node);
  const int64_t now_us = simulator_.NowUs();
  if (kind == KafkaFaultKind::kConnectionReset) {
    ++result_.faults_injected;
    simulator_.ScheduleFault(now_us, FaultKindName(kind), "random connection",
                             [this] { simulator_.network().ResetRandomConnection(); });
    return;
  }
  if (kind == KafkaFaultKind::kPartition) {
    if (partitioned_) return;
    partitioned_ = true;
    ++result_.faults_injected;
    std::vector<NodeId> clients = producer_nodes_;
    clients.insert(clients.end(), consumer_nodes_.begin(), consumer_nodes_.end());
    simulator_.ScheduleFault(now_us, FaultKindName(kind), absl::StrCat(name, " <-/-> clients"),
                             [this, node, clients] {
                               simulator_.network().Partition({node}, clients, /*one_way=*/false);
                             });
    simulator_.ScheduleFault(now_us + downtime_us, "heal", "all links", [this] {
      simulator_.network().HealAll();
      partitioned_ = false;
    });
    return;
  }
  // One crash-restart cycle at a time per broker.
  if (broker_busy_[static_cast<size_t>(broker)]) return;
  broker_busy_[static_cast<size_t>(broker)] = true;
  ++result_.faults_injected;
  auto restart = [this, node, broker, name] {
    simulator_.StartNode(node);
    ++result_.broker_restarts;
    broker_busy_[static_cast<size_t>(broker)] = false;
    auto* program = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(node).get());
    if (program == nullptr || !program->status.ok()) {
      history_->Violation(absl::StrCat("broker-restart: ", name, " did not restart: ",
                                       program == nullptr ? "no program"
                                                          : program->status.ToString()));
    }
  };
  if (kind == KafkaFaultKind::kCleanRestart) {
    simulator_.ScheduleFault(now_us, FaultKindName(kind), name, [this, node, downtime_us, name,
                                                                 restart] {
      auto* program = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(node).get());
      if (program == nullptr || program->node == nullptr) {
        simulator_.ScheduleFault(simulator_.NowUs() + downtime_us, "restart", name, restart);
        return;
      }
      // The node stops once its clean shutdown completes; the restart follows after the downtime.
      program->node->Shutdown([this, node, downtime_us, name, restart](const absl::Status& status) {
        if (!status.ok()) {
          history_->Violation(absl::StrCat("clean-shutdown: ", name, ": ", status.ToString()));
        }
        simulator_.Schedule(0, [this, node, downtime_us, name, restart] {
          simulator_.StopNode(node);
          simulator_.ScheduleFault(simulator_.NowUs() + downtime_us, "restart", name, restart);
        });
      });
    });
    return;
  }
  const CrashKind crash =
      kind == KafkaFaultKind::kPowerLoss ? CrashKind::kPowerLoss : CrashKind::kProcess;
  simulator_.ScheduleFault(now_us, FaultKindName(kind), name, [this, node, crash] {
    ++result_.broker_crashes;
    simulator_.CrashNode(node, crash);
  });
  simulator_.ScheduleFault(now_us + downtime_us, "restart", name, restart);
}

}  // namespace runnel::sim
