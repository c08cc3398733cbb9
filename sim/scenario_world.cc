#include "sim/scenario_world.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/client/admin_client.h"
#include "broker/client/consumer.h"
#include "broker/client/group_consumer.h"
#include "broker/client/producer.h"
#include "broker/server/broker_node.h"
#include "broker/server/handler_support.h"
#include "model/online_checker.h"
#include "sim/broker_program.h"
#include "sim/scenario_loader.h"

namespace runnel::sim {

using client::TopicPartition;

namespace {

constexpr int64_t kUsPerMs = 1000;
// How long a client waits before asking again for its topics after a failed attempt.
constexpr int64_t kTopicSetupRetryUs = 200'000;
// How long consumers wait for data in one fetch: short, so that settling is quick.
constexpr int32_t kFetchMaxWaitMs = 100;
// Anomalies the world itself finds (beyond the checkers') kept at most.
constexpr size_t kWorldAnomaliesMax = 100;
// The most history entries reserved ahead of a run (about 90 MiB of address space, touched only as
// the run fills it).
constexpr size_t kHistoryReserveMax = size_t{1} << 18;
// The most keys a producer draws from (the zipf table holds one weight per key).
constexpr int32_t kKeyCountMax = 1'000'000;


model::TopicPartitionRef Ref(const TopicPartition& partition) {
  return model::TopicPartitionRef{partition.topic, partition.partition};
}

storage::Compression ToCompression(scenario::Compression compression) {
  switch (compression) {
    case scenario::COMPRESSION_NONE:
      return storage::Compression::kNone;
    case scenario::COMPRESSION_GZIP:
      return storage::Compression::kGzip;
    case scenario::COMPRESSION_SNAPPY:
      return storage::Compression::kSnappy;
    case scenario::COMPRESSION_LZ4:
      return storage::Compression::kLz4;
    case scenario::COMPRESSION_ZSTD:
      return storage::Compression::kZstd;
  }
  return storage::Compression::kNone;
}

client::Acks ToAcks(scenario::Acks acks) {
  switch (acks) {
    case scenario::ACKS_ALL:
      return client::Acks::kAll;
    case scenario::ACKS_LEADER:
      return client::Acks::kLeader;
    case scenario::ACKS_NONE:
      return client::Acks::kNone;
  }
  return client::Acks::kAll;
}

int64_t DrawFromRange(Random& random, const scenario::Range& range, int64_t fallback) {
  if (!range.has_min() && !range.has_max()) return fallback;
  const int64_t low = range.min();
  const int64_t high = range.has_max() ? range.max() : low;
  return high <= low ? low : random.Between(low, high);
}

std::string FaultKindWord(scenario::FaultKind kind) {
  switch (kind) {
    case scenario::FAULT_CRASH:
      return "crash";
    case scenario::FAULT_POWER_LOSS:
      return "power loss";
    case scenario::FAULT_CLEAN_RESTART:
      return "clean restart";
    case scenario::FAULT_STALL:
      return "stall";
    case scenario::FAULT_PARTITION:
      return "partition";
    case scenario::FAULT_LINK_DELAY:
      return "link delay";
    case scenario::FAULT_CONNECTION_RESET:
      return "connection reset";
    case scenario::FAULT_CLOCK_JUMP:
      return "clock jump";
    case scenario::FAULT_DISK_ERRORS:
      return "disk errors";
    case scenario::FAULT_DISK_FULL:
      return "disk full";
    case scenario::FAULT_READ_CORRUPTION:
      return "read corruption";
  }
  return "fault";
}

}  // namespace

// What the node programs share with the world: the scenario, the history, the online checks.
struct ScenarioWorld::Shared {
  const scenario::Scenario* scenario = nullptr;
  Simulator* simulator = nullptr;
  std::vector<NetworkAddress> bootstrap;
  // Partition counts by topic name.
  std::map<std::string, int32_t> partition_counts;
  model::History history;
  model::OnlineChecker online;
  // Sends invoked and not completed yet, by invocation index, with the process that made them.
  std::map<int64_t, std::string> pending_sends;

  int64_t NowUs() const { return simulator->NowUs(); }

  void CompleteSend(int64_t invocation, model::OpType outcome, int32_t partition, int64_t offset,
                    absl::string_view error) {
    if (pending_sends.erase(invocation) == 0) return;
    history.CompleteSend(NowUs(), invocation, outcome, partition, offset, error);
  }

  std::vector<TopicPartition> PartitionsOf(const std::vector<std::string>& topics) const {
    std::vector<TopicPartition> partitions;
    for (const std::string& topic : topics) {
      for (int32_t partition = 0; partition < partition_counts.at(topic); ++partition) {
        partitions.push_back(TopicPartition{topic, partition});
      }
    }
    return partitions;
  }
};

namespace {

using Shared = ScenarioWorld::Shared;

std::vector<std::string> TopicsOrAll(const google::protobuf::RepeatedPtrField<std::string>& named,
                                     const scenario::Scenario& scenario) {
  std::vector<std::string> topics(named.begin(), named.end());
  if (topics.empty()) {
    for (const scenario::Topic& topic : scenario.topics()) topics.push_back(topic.name());
  }
  return topics;
}

client::ClientOptions MakeClientOptions(const Shared& shared, const std::string& client_id,
                                        int64_t request_timeout_ms) {
  client::ClientOptions client;
  client.bootstrap_servers = shared.bootstrap;
  client.client_id = client_id;
  client.request_timeout_ms = request_timeout_ms;
  client.connection_setup_timeout_ms = request_timeout_ms;
  return client;
}

// What every client node does first: make sure its topics exist, then start its work.
class ClientProgram {
 public:
  ClientProgram(Env& env, Shared* shared, std::vector<std::string> topics,
                int64_t request_timeout_ms)
      : env_(env),
        shared_(shared),
        process_(shared->simulator->NodeName(env.node_id())),
        incarnation_(shared->simulator->Incarnation(env.node_id())),
        topics_(std::move(topics)),
        client_options_(MakeClientOptions(*shared, process_, request_timeout_ms)),
        alive_(std::make_shared<ClientProgram*>(this)) {}
  virtual ~ClientProgram() {
    alive_.reset();
    if (timer_ != kNoTimer) env_.clock().CancelTimer(timer_);
  }

  ClientProgram(const ClientProgram&) = delete;
  ClientProgram& operator=(const ClientProgram&) = delete;

 protected:
  // Creates the topics (answers of "already exists" included), retrying until every one exists,
  // then calls Begin().
  void EnsureTopics() {
    if (admin_ == nullptr) {
      client::AdminOptions admin;
      admin.client = client_options_;
      admin.api_timeout_ms = client_options_.request_timeout_ms * 2;
      admin_ = *client::AdminClient::Create(env_, admin);
    }
    std::vector<client::NewTopic> topics;
    for (const scenario::Topic& spec : shared_->scenario->topics()) {
      if (std::find(topics_.begin(), topics_.end(), spec.name()) == topics_.end()) continue;
      std::map<std::string, std::string> configs(spec.configs().begin(), spec.configs().end());
      topics.push_back(client::NewTopic{spec.name(), spec.partitions(),
                                        static_cast<int16_t>(spec.replication_factor()), configs});
    }
    std::weak_ptr<ClientProgram*> alive = alive_;
    admin_->CreateTopics(
        std::move(topics), {},
        [alive](absl::StatusOr<std::map<std::string, absl::Status>> results) {
          if (alive.expired()) return;
          ClientProgram* self = *alive.lock();
          bool ready = results.ok();
          if (results.ok()) {
            for (const auto& [name, status] : *results) {
              if (!status.ok() && status.code() != absl::StatusCode::kAlreadyExists) ready = false;
            }
          }
          if (!ready) {
            self->After(kTopicSetupRetryUs, [self] { self->EnsureTopics(); });
            return;
          }
          self->Begin();
        });
  }

  // Runs `action` after `delay_us` unless the program is gone first. One timer at a time.
  void After(int64_t delay_us, absl::AnyInvocable<void()> action) {
    std::weak_ptr<ClientProgram*> alive = alive_;
    if (timer_ != kNoTimer) env_.clock().CancelTimer(timer_);
    timer_ = env_.clock().ScheduleAfter(
        std::max<int64_t>(delay_us, 0),
        [alive, action = std::move(action)]() mutable {
          if (alive.expired()) return;
          (*alive.lock())->timer_ = kNoTimer;
          action();
        });
  }

  virtual void Begin() = 0;

  Env& env_;
  Shared* shared_;
  const std::string process_;
  const uint64_t incarnation_;
  const std::vector<std::string> topics_;
  const client::ClientOptions client_options_;
  std::shared_ptr<ClientProgram*> alive_;

 private:
  std::unique_ptr<client::AdminClient> admin_;
  TimerId timer_ = kNoTimer;
};

class ProducerProgram final : public ClientProgram {
 public:
  ProducerProgram(Env& env, Shared* shared, const scenario::Producer& spec)
      : ClientProgram(env, shared, TopicsOrAll(spec.topics(), *shared->scenario),
                      spec.request_timeout_ms()),
        spec_(spec),
        interval_us_(std::max<int64_t>(1, std::llround(1e6 / spec.rate_per_s()))) {
    if (spec.keys() == scenario::KEYS_ZIPF) {
      double total = 0;
      const int32_t count = std::min(spec.key_count(), kKeyCountMax);
      for (int32_t i = 0; i < count; ++i) {
        total += 1.0 / std::pow(static_cast<double>(i + 1), spec.zipf_exponent());
        zipf_cumulative_.push_back(total);
      }
    }
    client::ProducerOptions producer;
    producer.client = client_options_;
    producer.acks = ToAcks(spec.acks());
    producer.idempotent = spec.idempotent();
    producer.compression = ToCompression(spec.compression());
    producer.linger_ms = spec.linger_ms();
    producer.delivery_timeout_ms = spec.delivery_timeout_ms();
    producer_ = *client::Producer::Create(env, producer);
    EnsureTopics();
  }

  // The sends still waiting for an outcome end indeterminate: the process is gone.
  ~ProducerProgram() override {
    for (int64_t invocation : pending_) {
      shared_->CompleteSend(invocation, model::OpType::kInfo, -1, -1,
                            "the producer process ended before the outcome was known");
    }
  }

  void Stop() { stopped_ = true; }
  bool idle() const { return pending_.empty(); }

 private:
  void Begin() override {
    const int64_t start_us = spec_.active().start_ms() * kUsPerMs;
    After(start_us - shared_->NowUs(), [this] { Tick(); });
  }

  std::optional<std::string> DrawKey() {
    const auto count = static_cast<uint64_t>(spec_.key_count());
    switch (spec_.keys()) {
      case scenario::KEYS_NONE:
        return std::nullopt;
      case scenario::KEYS_SEQUENTIAL:
        return absl::StrCat("k", sequence_ % count);
      case scenario::KEYS_ZIPF: {
        const double pick = env_.random().Fraction() * zipf_cumulative_.back();
        const auto at = std::upper_bound(zipf_cumulative_.begin(), zipf_cumulative_.end(), pick);
        const size_t index = std::min<size_t>(static_cast<size_t>(at - zipf_cumulative_.begin()),
                                              zipf_cumulative_.size() - 1);
        return absl::StrCat("k", index);
      }
      case scenario::KEYS_UNIFORM:
        break;
    }
    return absl::StrCat("k", env_.random().Below(count));
  }

  void Tick() {
    const int64_t stop_us = spec_.active().stop_ms() * kUsPerMs;
    if (stopped_ || (stop_us > 0 && shared_->NowUs() >= stop_us)) return;
    const std::string& topic = topics_[static_cast<size_t>(sequence_ % topics_.size())];
    std::optional<std::string> key = DrawKey();
    std::string value = absl::StrCat(process_, ".", incarnation_, ".", sequence_);
    value.append(static_cast<size_t>(spec_.value_padding_bytes()), '.');
    ++sequence_;
    const int64_t invocation =
        shared_->history.InvokeSend(shared_->NowUs(), process_, incarnation_, topic, key, value);
    shared_->pending_sends[invocation] = process_;
    client::ProducerRecord record;
    record.topic = topic;
    record.key = key;
    record.value = value;
    std::weak_ptr<ClientProgram*> alive = alive_;
    const bool acks_none = spec_.acks() == scenario::ACKS_NONE;
    absl::Status accepted = producer_->Send(
        std::move(record), [this, alive, invocation, acks_none](
                               absl::StatusOr<client::RecordMetadata> result) {
          if (alive.expired()) return;
          pending_.erase(invocation);
          if (!result.ok()) {
            // The batch may have been written before the error (a timeout hides the outcome).
            shared_->CompleteSend(invocation, model::OpType::kInfo, -1, -1,
                                  result.status().ToString());
          } else if (acks_none) {
            shared_->CompleteSend(invocation, model::OpType::kInfo, result->partition.partition,
                                  -1, "acks=0: the broker does not answer");
          } else {
            shared_->CompleteSend(invocation, model::OpType::kOk, result->partition.partition,
                                  result->offset, "");
            env_.RecordEvent(SemanticEvent{.kind = "produce.ack",
                                           .subject = result->partition.ToString(),
                                           .value = result->offset});
          }
        });
    if (accepted.ok()) {
      pending_.insert(invocation);
    } else {
      shared_->CompleteSend(invocation, model::OpType::kFail, -1, -1, accepted.ToString());
    }
    After(interval_us_, [this] { Tick(); });
  }

  const scenario::Producer spec_;
  const int64_t interval_us_;
  std::vector<double> zipf_cumulative_;
  std::unique_ptr<client::Producer> producer_;
  std::set<int64_t> pending_;
  uint64_t sequence_ = 0;
  bool stopped_ = false;
};

class ConsumerProgram final : public ClientProgram {
 public:
  ConsumerProgram(Env& env, Shared* shared, const scenario::Consumer& spec)
      : ClientProgram(env, shared, TopicsOrAll(spec.topics(), *shared->scenario),
                      spec.request_timeout_ms()),
        spec_(spec) {
    EnsureTopics();
  }

  ~ConsumerProgram() override {
    // Destroying the clients first: none of their callbacks runs afterwards.
    group_.reset();
    consumer_.reset();
  }

  bool is_group() const { return spec_.has_group(); }
  bool started() const { return consumer_ != nullptr || group_ != nullptr; }

  bool Owns(const TopicPartition& partition) const { return owned_.contains(partition); }
  // The partitions this consumer owns now.
  std::vector<TopicPartition> Owned() const {
    return std::vector<TopicPartition>(owned_.begin(), owned_.end());
  }
  std::optional<int64_t> Position(const TopicPartition& partition) const {
    if (group_ != nullptr) return group_->Position(partition);
    if (consumer_ != nullptr) return consumer_->Position(partition);
    return std::nullopt;
  }
  // A group member that is part of a generation (not joining, not failed).
  bool Stable() const {
    return group_ != nullptr && group_->state() == client::GroupConsumer::State::kStable;
  }

  // Assign consumers read everything again from the beginning (the final read).
  void Reread() {
    if (consumer_ == nullptr) return;
    std::vector<TopicPartition> partitions = Owned();
    absl::Status sought = consumer_->SeekToBeginning(partitions);
    assert(sought.ok());
    for (const TopicPartition& partition : partitions) {
      shared_->history.Seek(shared_->NowUs(), process_, incarnation_, Ref(partition), 0);
    }
  }

 private:
  void Begin() override {
    const int64_t start_us = spec_.active().start_ms() * kUsPerMs;
    After(start_us - shared_->NowUs(), [this] {
      if (spec_.has_group()) {
        StartGroup();
      } else {
        StartAssigned();
      }
    });
  }

  // Takes the records by value: their keys and values move into the history.
  void OnRecords(client::FetchedRecords fetched) {
    std::vector<model::PolledRecord> records;
    records.reserve(fetched.records.size());
    const model::TopicPartitionRef partition = Ref(fetched.partition);
    for (client::ConsumerRecord& record : fetched.records) {
      records.push_back(
          model::PolledRecord{record.offset, std::move(record.key), std::move(record.value)});
    }
    shared_->online.ObserveCommittedRecords(shared_->NowUs(), process_, partition, records);
    processed_[fetched.partition] = fetched.next_offset;
    shared_->history.Poll(shared_->NowUs(), process_, incarnation_, partition, std::move(records),
                          fetched.high_watermark);
    env_.RecordEvent(SemanticEvent{.kind = "consume", .subject = fetched.partition.ToString(),
                                   .value = fetched.next_offset});
  }

  void RecordOwned() {
    std::vector<model::TopicPartitionRef> partitions;
    for (const TopicPartition& partition : owned_) partitions.push_back(Ref(partition));
    shared_->history.Assign(shared_->NowUs(), process_, incarnation_, std::move(partitions));
  }

  void StartAssigned() {
    client::ConsumerOptions options;
    options.client = client_options_;
    options.fetch_max_wait_ms = kFetchMaxWaitMs;
    options.auto_offset_reset =
        spec_.assign().from_end() ? client::OffsetReset::kLatest : client::OffsetReset::kEarliest;
    options.on_records = [this](client::FetchedRecords records) {
      OnRecords(std::move(records));
    };
    options.on_error = [this](const TopicPartition& partition, const absl::Status& error) {
      env_.Log(LogLevel::kInfo, absl::StrCat(process_, ": ", partition.ToString(), ": ",
                                             error.ToString()));
    };
    consumer_ = *client::Consumer::Create(env_, std::move(options));
    std::vector<TopicPartition> partitions = shared_->PartitionsOf(topics_);
    owned_ = std::set<TopicPartition>(partitions.begin(), partitions.end());
    RecordOwned();
    absl::Status assigned = consumer_->Assign(std::move(partitions));
    assert(assigned.ok());
  }

  void StartGroup() {
    const scenario::Group& spec = spec_.group();
    client::GroupConsumerOptions options;
    options.consumer.client = client_options_;
    options.consumer.fetch_max_wait_ms = kFetchMaxWaitMs;
    options.group_id = spec.group_id();
    if (spec.static_membership()) options.group_instance_id = process_;
    options.topics = topics_;
    options.session_timeout_ms = static_cast<int32_t>(spec.session_timeout_ms());
    options.heartbeat_interval_ms = static_cast<int32_t>(spec.heartbeat_interval_ms());
    options.rebalance_timeout_ms = static_cast<int32_t>(spec.session_timeout_ms());
    if (spec.has_assignor()) options.assignors = {spec.assignor()};
    options.enable_auto_commit = spec.auto_commit();
    options.auto_commit_interval_ms = spec.commit_interval_ms();
    options.auto_offset_reset = client::OffsetReset::kEarliest;
    options.on_records = [this](client::FetchedRecords records) {
      OnRecords(std::move(records));
    };
    options.on_partitions_assigned = [this](const std::vector<TopicPartition>& partitions) {
      owned_ = std::set<TopicPartition>(partitions.begin(), partitions.end());
      for (const TopicPartition& partition : partitions) processed_.erase(partition);
      RecordOwned();
      env_.RecordEvent(SemanticEvent{.kind = "group.assigned",
                                     .subject = spec_.group().group_id(),
                                     .value = group_->generation_id()});
    };
    options.on_partitions_revoked = [this](const std::vector<TopicPartition>& partitions) {
      // An orderly revocation commits what was read first, under the generation being left.
      if (!spec_.group().auto_commit()) CommitProcessed(partitions);
      Release(partitions);
    };
    options.on_partitions_lost = [this](const std::vector<TopicPartition>& partitions) {
      Release(partitions);
    };
    options.on_error = [this](const absl::Status& error) {
      env_.Log(LogLevel::kInfo, absl::StrCat(process_, ": group error: ", error.ToString()));
    };
    if (spec.auto_commit()) {
      options.on_commit_completed = [this](const client::CommitOutcome& outcome) {
        if (!outcome.automatic) return;
        std::vector<model::CommittedOffset> offsets;
        for (const auto& [partition, offset] : outcome.offsets) {
          offsets.push_back(model::CommittedOffset{Ref(partition), offset.offset});
        }
        const int64_t invocation = shared_->history.InvokeCommit(shared_->NowUs(), process_,
                                                                 incarnation_, std::move(offsets));
        shared_->history.CompleteCommit(
            shared_->NowUs(), invocation,
            outcome.status.ok() ? model::OpType::kOk : model::OpType::kFail,
            outcome.status.ok() ? "" : outcome.status.ToString());
      };
    }
    absl::StatusOr<std::unique_ptr<client::GroupConsumer>> group =
        client::GroupConsumer::Create(env_, std::move(options));
    if (!group.ok()) {
      env_.Log(LogLevel::kError, absl::StrCat(process_, ": ", group.status().ToString()));
      return;
    }
    group_ = *std::move(group);
    if (!spec.auto_commit()) ScheduleCommit();
  }

  void Release(const std::vector<TopicPartition>& partitions) {
    for (const TopicPartition& partition : partitions) {
      owned_.erase(partition);
      processed_.erase(partition);
    }
    RecordOwned();
  }

  void ScheduleCommit() {
    After(spec_.group().commit_interval_ms() * kUsPerMs, [this] {
      CommitProcessed(Owned());
      ScheduleCommit();
    });
  }

  // Commits the offset after the last record read, for those of `partitions` that have one.
  void CommitProcessed(const std::vector<TopicPartition>& partitions) {
    std::map<TopicPartition, client::OffsetAndMetadata> offsets;
    std::vector<model::CommittedOffset> recorded;
    for (const TopicPartition& partition : partitions) {
      auto processed = processed_.find(partition);
      if (processed == processed_.end()) continue;
      offsets[partition] = client::OffsetAndMetadata{processed->second, ""};
      recorded.push_back(model::CommittedOffset{Ref(partition), processed->second});
    }
    if (offsets.empty()) return;
    const int64_t invocation = shared_->history.InvokeCommit(shared_->NowUs(), process_,
                                                             incarnation_, std::move(recorded));
    std::weak_ptr<ClientProgram*> alive = alive_;
    Shared* shared = shared_;
    group_->Commit(std::move(offsets), [shared, invocation](const absl::Status& status) {
      shared->history.CompleteCommit(shared->NowUs(), invocation,
                                     status.ok() ? model::OpType::kOk : model::OpType::kFail,
                                     status.ok() ? "" : status.ToString());
    });
  }

  const scenario::Consumer spec_;
  std::unique_ptr<client::Consumer> consumer_;
  std::unique_ptr<client::GroupConsumer> group_;
  std::set<TopicPartition> owned_;
  // The position after the last record delivered, per owned partition.
  std::map<TopicPartition, int64_t> processed_;
};

}  // namespace

// Builds the nodes, injects the faults, settles the run and judges it.
class ScenarioWorld::Runner {
 public:
  Runner(const scenario::Scenario& scenario, const ScenarioRunOptions& options, Shared& shared,
         Simulator& simulator)
      : scenario_(scenario), options_(options), shared_(shared), simulator_(simulator) {
    const scenario::Cluster& cluster = scenario.cluster();
    Random& random = simulator.FaultRandom();
    for (const scenario::Topic& topic : scenario.topics()) {
      shared.partition_counts[topic.name()] = topic.partitions();
    }
    auto node_options = [&](const std::string& name) {
      NodeOptions node;
      node.name = name;
      const int64_t drift_max = cluster.clock_drift_ppm_max();
      node.clock.drift_ppm = static_cast<double>(random.Between(-drift_max, drift_max));
      const int64_t offset_max = cluster.clock_offset_ms_max();
      node.clock.wall_offset_ms = random.Between(-offset_max, offset_max);
      return node;
    };
    for (int i = 0; i < cluster.brokers(); ++i) {
      const std::string name = absl::StrCat("broker-", i);
      server::BrokerSettings settings;
      settings.listen = NetworkAddress{name, kBrokerPort};
      settings.defaults.auto_create_topics_enable = false;
      settings.groups.group_initial_rebalance_delay_ms =
          static_cast<int32_t>(cluster.group_initial_rebalance_delay_ms());
      // Low, so that scenarios may use short session timeouts (the loader's lower bound).
      settings.groups.group_min_session_timeout_ms =
          static_cast<int32_t>(ScenarioLimits::kSessionTimeoutMsMin);
      shared.bootstrap.push_back(settings.listen);
      const NodeId node =
          simulator.AddNode(node_options(name), BrokerNodeProgram(settings));
      brokers_.push_back(node);
      nodes_by_name_[name] = node;
    }
    Shared* shared_pointer = &shared;
    for (const scenario::Producer& spec : scenario.producers()) {
      for (int i = 0; i < spec.count(); ++i) {
        const std::string name = absl::StrCat(spec.name(), "-", i);
        const NodeId node = simulator.AddNode(node_options(name), [shared_pointer, &spec](Env& env) {
          return std::make_shared<ProducerProgram>(env, shared_pointer, spec);
        });
        producers_.push_back(node);
        nodes_by_name_[name] = node;
        start_us_[node] = spec.active().start_ms() * kUsPerMs;
      }
    }
    for (const scenario::Consumer& spec : scenario.consumers()) {
      for (int i = 0; i < spec.count(); ++i) {
        const std::string name = absl::StrCat(spec.name(), "-", i);
        const NodeId node = simulator.AddNode(node_options(name), [shared_pointer, &spec](Env& env) {
          return std::make_shared<ConsumerProgram>(env, shared_pointer, spec);
        });
        const std::vector<std::string> topics = TopicsOrAll(spec.topics(), scenario);
        consumers_.push_back({node, &spec, std::set<std::string>(topics.begin(), topics.end())});
        nodes_by_name_[name] = node;
        start_us_[node] = spec.active().start_ms() * kUsPerMs;
        if (spec.active().stop_ms() > 0) stop_us_[node] = spec.active().stop_ms() * kUsPerMs;
      }
    }
    ReserveHistory(scenario);
    DrawFaultMix();
  }

  // Sizes the history for the run ahead: two entries per send, and two per poll, at most one poll
  // per record per consumer spec (a group reads each record about once; so does each assigned
  // consumer). An estimate: the history grows past it if it must.
  void ReserveHistory(const scenario::Scenario& scenario) {
    double sends_per_s = 0;
    for (const scenario::Producer& spec : scenario.producers()) {
      sends_per_s += spec.count() * spec.rate_per_s();
    }
    const double run_s = static_cast<double>(scenario.run().duration_ms()) / 1000.0;
    const double entries = run_s * sends_per_s * (2.0 + 2.0 * scenario.consumers_size());
    shared_.history.Reserve(
        static_cast<size_t>(std::clamp(entries, 0.0, static_cast<double>(kHistoryReserveMax))));
  }

  ScenarioResult Run() {
    Trace& trace = simulator_.trace();
    if (options_.trace_events_kept_max > 0) trace.KeepInMemory(options_.trace_events_kept_max);
    if (!options_.trace_path.empty()) {
      TraceHeader header;
      header.set_seed(options_.seed);
      header.set_source(options_.source.empty() ? scenario_.name() : options_.source);
      for (size_t i = 0; i < simulator_.node_count(); ++i) {
        header.add_node_names(simulator_.NodeName(static_cast<NodeId>(i)));
      }
      absl::Status opened = trace.OpenFile(options_.trace_path, header);
      if (!opened.ok()) WorldAnomaly("trace-file", std::string(opened.message()));
    }
    simulator_.SetAfterEventHook([this](NodeId event_node) { SampleHighWatermarks(event_node); });
    high_watermarks_seen_.assign(brokers_.size(), {});
    sampled_logs_.assign(brokers_.size(), {});
    for (NodeId node : brokers_) simulator_.StartNode(node);
    for (const auto& [node, start_us] : start_us_) {
      const NodeId id = node;
      if (start_us == 0) {
        simulator_.StartNode(id);
      } else {
        simulator_.Schedule(start_us, [this, id] {
          if (!settling_ && !simulator_.IsUp(id)) simulator_.StartNode(id);
        });
      }
    }
    for (const auto& [node, stop_us] : stop_us_) {
      const NodeId id = node;
      simulator_.Schedule(stop_us, [this, id] {
        stopped_for_good_.insert(id);
        if (simulator_.IsUp(id)) simulator_.StopNode(id);
      });
    }
    ScheduleFaults();
    const int64_t duration_us = scenario_.run().duration_ms() * kUsPerMs;
    simulator_.RunUntil(duration_us);

    Settle();
    const int64_t settle_timeout_us = scenario_.run().settle_timeout_ms() * kUsPerMs;
    result_.settled =
        simulator_.RunUntilCondition([this] { return Settled(); }, simulator_.NowUs() +
                                                                       settle_timeout_us);
    if (!result_.settled) {
      WorldAnomaly("stuck", absl::StrCat("the run did not settle within ",
                                         scenario_.run().settle_timeout_ms(),
                                         " ms after the workload phase: ", Unsettled()));
    } else {
      for (const ConsumerNode& consumer : consumers_) {
        if (auto* program = Program<ConsumerProgram>(consumer.node)) program->Reread();
      }
      if (!simulator_.RunUntilCondition([this] { return Settled(); },
                                        simulator_.NowUs() + settle_timeout_us)) {
        WorldAnomaly("stuck", absl::StrCat("the final read did not finish within ",
                                           scenario_.run().settle_timeout_ms(),
                                           " ms: ", Unsettled()));
      }
    }
    simulator_.SetAfterEventHook(nullptr);
    // Whatever is still pending now never got an outcome.
    while (!shared_.pending_sends.empty()) {
      shared_.CompleteSend(shared_.pending_sends.begin()->first, model::OpType::kInfo, -1, -1,
                           "no outcome by the end of the run");
    }
    Judge();

    absl::Status closed = trace.CloseFile();
    if (!closed.ok()) WorldAnomaly("trace-file", std::string(closed.message()));
    result_.simulated_us = simulator_.NowUs();
    result_.events = simulator_.events_processed();
    result_.trace_events = trace.event_count();
    result_.digest = trace.DigestHex();
    return result_;
  }

 private:
  struct ConsumerNode {
    NodeId node;
    const scenario::Consumer* spec;
    std::set<std::string> topics;  // the topics it reads (TopicsOrAll of its spec)
  };

  template <typename T>
  T* Program(NodeId node) {
    return static_cast<T*>(simulator_.NodeProgramObject(node).get());
  }

  server::BrokerNode* ServingBroker(NodeId node) {
    auto* program = Program<BrokerProgram>(node);
    if (program == nullptr || program->node == nullptr || !program->node->serving()) return nullptr;
    return program->node.get();
  }

  void WorldAnomaly(std::string name, std::string detail) {
    if (world_anomalies_.size() >= kWorldAnomaliesMax) return;
    model::Anomaly anomaly;
    anomaly.name = std::move(name);
    anomaly.detail = std::move(detail);
    anomaly.time_us = simulator_.NowUs();
    world_anomalies_.push_back(std::move(anomaly));
  }

  // The online check of the brokers' high watermarks, after every event that can move one: an
  // event of a broker node or of the simulator itself (faults, starts). A client's event changes no
  // broker state. Each broker's values are handed to the checker only when they changed since it
  // last saw them: an unchanged value was already checked when it was new. The logs themselves
  // come from SampledLogs, which looks them up only when they may have changed.
  void SampleHighWatermarks(NodeId event_node) {
    if (event_node >= 0 && !IsBroker(event_node)) return;
    for (size_t b = 0; b < brokers_.size(); ++b) {
      const NodeId node = brokers_[b];
      server::BrokerNode* broker = ServingBroker(node);
      if (broker == nullptr) continue;
      const std::vector<const storage::PartitionLog*>& logs = SampledLogs(b, *broker);
      std::vector<int64_t>& last_seen = high_watermarks_seen_[b];
      last_seen.resize(logs.size(), kNoHighWatermarkSeen);
      size_t slot = 0;
      for (const auto& [topic, count] : shared_.partition_counts) {
        for (int32_t partition = 0; partition < count; ++partition, ++slot) {
          const storage::PartitionLog* log = logs[slot];
          // A failed log is not served (ServableError), so it exposes no high watermark.
          if (log == nullptr || server::ServableError(*log).has_value()) continue;
          const int64_t high_watermark = server::HighWatermark(*log);
          if (last_seen[slot] == high_watermark) continue;
          last_seen[slot] = high_watermark;
          shared_.online.ObserveHighWatermark(simulator_.NowUs(), simulator_.NodeName(node),
                                              model::TopicPartitionRef{topic, partition},
                                              high_watermark);
        }
      }
    }
  }

  // The logs of broker `b` (brokers_' order), by partition in shared_.partition_counts' order
  // (null where it has none), looked up again only when the broker restarted or its metadata image
  // changed. Within one run of a broker its topic manager changes which log Find() returns only
  // along with its image: a topic's logs are made before the image names it, and are closed after
  // the image drops it.
  const std::vector<const storage::PartitionLog*>& SampledLogs(size_t b,
                                                               server::BrokerNode& broker) {
    BrokerLogs& sampled = sampled_logs_[b];
    const uint64_t incarnation = simulator_.Incarnation(brokers_[b]);
    const server::TopicManager& topics = broker.topics();
    if (sampled.incarnation == incarnation && sampled.image == topics.image()) return sampled.logs;
    sampled.incarnation = incarnation;
    sampled.image = topics.image();
    sampled.logs.clear();
    for (const auto& [topic, count] : shared_.partition_counts) {
      for (int32_t partition = 0; partition < count; ++partition) {
        sampled.logs.push_back(topics.Find(topic, partition));
      }
    }
    return sampled.logs;
  }

  std::optional<int64_t> HighWatermark(const TopicPartition& partition) {
    server::BrokerNode* broker = ServingBroker(brokers_.at(0));
    if (broker == nullptr) return std::nullopt;
    const storage::PartitionLog* log = broker->topics().Find(partition.topic, partition.partition);
    if (log == nullptr || server::ServableError(*log).has_value()) return std::nullopt;
    return server::HighWatermark(*log);
  }

  // Why the run has not settled, in words (the first reason found).
  std::string Unsettled() {
    for (NodeId node : producers_) {
      auto* producer = Program<ProducerProgram>(node);
      if (producer != nullptr && !producer->idle()) {
        return absl::StrCat(simulator_.NodeName(node), " has sends without an outcome");
      }
    }
    for (const auto& [topic, count] : shared_.partition_counts) {
      for (int32_t number = 0; number < count; ++number) {
        const TopicPartition partition{topic, number};
        std::optional<int64_t> high_watermark = HighWatermark(partition);
        if (!high_watermark.has_value()) {
          return absl::StrCat("no serving broker has ", partition.ToString());
        }
        std::string behind = Behind(partition, *high_watermark);
        if (!behind.empty()) return behind;
      }
    }
    return "";
  }

  // Which consumer (or group) has not read `partition` up to `high_watermark`; empty when every
  // one that reads it has.
  std::string Behind(const TopicPartition& partition, int64_t high_watermark) {
    std::map<std::string, bool> group_caught_up;
    for (const ConsumerNode& consumer : consumers_) {
      if (stopped_for_good_.contains(consumer.node)) continue;
      if (!consumer.topics.contains(partition.topic)) continue;
      auto* program = Program<ConsumerProgram>(consumer.node);
      const bool is_group = consumer.spec->has_group();
      const std::string& group = consumer.spec->group().group_id();
      if (is_group) group_caught_up.try_emplace(group, false);
      if (program == nullptr || !program->started()) {
        if (!is_group) return absl::StrCat(simulator_.NodeName(consumer.node), " is not running");
        continue;
      }
      std::optional<int64_t> position = program->Position(partition);
      const bool caught_up = program->Owns(partition) && position.has_value() && *position >= high_watermark;
      if (is_group) {
        if (caught_up && program->Stable()) group_caught_up[group] = true;
      } else if (!caught_up) {
        return absl::StrCat(simulator_.NodeName(consumer.node), " has not read ",
                            partition.ToString(), " up to ", high_watermark);
      }
    }
    for (const auto& [group, caught_up] : group_caught_up) {
      if (!caught_up) {
        return absl::StrCat("no stable member of group ", group, " has read ",
                            partition.ToString(), " up to ", high_watermark);
      }
    }
    return "";
  }

  bool Settled() { return Unsettled().empty(); }

  // Ends the workload phase: faults heal, nodes come back, producers stop.
  void Settle() {
    settling_ = true;
    const int64_t now_us = simulator_.NowUs();
    for (auto& [link, count] : blocked_links_) {
      if (count > 0) simulator_.network().SetLinkBlocked(link.first, link.second, false);
      count = 0;
    }
    for (auto& [link, delay_us] : link_delays_us_) {
      if (delay_us != 0) simulator_.network().SetLinkExtraDelayUs(link.first, link.second, 0);
      delay_us = 0;
    }
    for (NodeId node : brokers_) {
      SimDiskOptions& disk = simulator_.disk(node).options();
      disk.write_error_probability = 0;
      disk.sync_error_probability = 0;
      disk.read_corruption_probability = 0;
      simulator_.disk(node).SetFull(false);
    }
    std::vector<NodeId> all_nodes;
    for (size_t i = 0; i < simulator_.node_count(); ++i) all_nodes.push_back(static_cast<NodeId>(i));
    for (NodeId node : all_nodes) {
      if (simulator_.IsStalled(node)) simulator_.ResumeNode(node);
    }
    for (NodeId node : brokers_) {
      // A broker whose disk failed writes (or was full) has logs or metadata that refuse changes
      // until reopened.
      if (disk_failed_.contains(node) && simulator_.IsUp(node)) {
        simulator_.CrashNode(node, CrashKind::kProcess);
        Record(now_us, "restart", simulator_.NodeName(node), "after disk errors");
      }
    }
    for (NodeId node : all_nodes) {
      if (stopped_for_good_.contains(node) || simulator_.IsUp(node)) continue;
      // A clean stop still in progress finishes by itself; everything else starts again now.
      if (stopping_.contains(node)) continue;
      simulator_.StartNode(node);
      busy_.erase(node);
      CheckBrokerStarted(node);
    }
    for (NodeId node : producers_) {
      if (auto* producer = Program<ProducerProgram>(node)) producer->Stop();
    }
  }

  void CheckBrokerStarted(NodeId node) {
    if (std::find(brokers_.begin(), brokers_.end(), node) == brokers_.end()) return;
    auto* program = Program<BrokerProgram>(node);
    if (program == nullptr || !program->status.ok()) {
      WorldAnomaly("broker-failed",
                   absl::StrCat(simulator_.NodeName(node), " did not start: ",
                                program == nullptr ? "no program" : program->status.ToString()));
    }
  }

  // --- Faults ---

  void DrawFaultMix() {
    if (!scenario_.has_faults() || !scenario_.faults().has_mix()) return;
    const scenario::FaultMix& mix = scenario_.faults().mix();
    Random& random = simulator_.FaultRandom();
    mix_interval_us_ = DrawFromRange(random, mix.interval_ms(), 0) * kUsPerMs;
    std::vector<std::string> words;
    for (const scenario::WeightedFault& kind : mix.kinds()) {
      const int64_t weight = DrawFromRange(random, kind.weight(), 1);
      mix_weights_.push_back({kind.kind(), weight});
      mix_total_weight_ += static_cast<uint64_t>(std::max<int64_t>(weight, 0));
      words.push_back(absl::StrCat(FaultKindWord(kind.kind()), " ", weight));
    }
    if (mix_interval_us_ > 0 && mix_total_weight_ > 0) {
      result_.drawn_fault_mix = absl::StrCat("one fault every ", mix_interval_us_ / kUsPerMs,
                                             " ms on average; weights: ",
                                             absl::StrJoin(words, ", "));
    }
  }

  void ScheduleFaults() {
    const int64_t duration_us = scenario_.run().duration_ms() * kUsPerMs;
    if (!scenario_.has_faults()) return;
    int scheduled = 0;
    for (const scenario::Fault& fault : scenario_.faults().at()) {
      if (++scheduled > kFaultsMax) break;
      simulator_.Schedule(fault.at_ms() * kUsPerMs, [this, &fault] { Apply(fault); });
    }
    if (mix_interval_us_ <= 0 || mix_total_weight_ == 0) return;
    // Fault times form a Poisson process: exponential gaps drawn from the fault stream.
    Random& random = simulator_.FaultRandom();
    int64_t at_us = 0;
    while (++scheduled <= kFaultsMax) {
      const double fraction = std::max(random.Fraction(), 1e-9);
      at_us += static_cast<int64_t>(-std::log(fraction) * static_cast<double>(mix_interval_us_));
      if (at_us >= duration_us) break;
      simulator_.Schedule(at_us, [this] { Apply(DrawRandomFault()); });
    }
  }

  scenario::Fault DrawRandomFault() {
    const scenario::FaultMix& mix = scenario_.faults().mix();
    Random& random = simulator_.FaultRandom();
    uint64_t pick = random.Below(mix_total_weight_);
    scenario::FaultKind kind = mix_weights_.front().first;
    for (const auto& [candidate, weight] : mix_weights_) {
      const auto positive = static_cast<uint64_t>(std::max<int64_t>(weight, 0));
      if (pick < positive) {
        kind = candidate;
        break;
      }
      pick -= positive;
    }
    std::vector<std::string> patterns(mix.nodes().begin(), mix.nodes().end());
    if (patterns.empty()) patterns.push_back("brokers");
    const std::string node = PickNode(patterns);
    const int64_t duration_ms = std::max<int64_t>(1, DrawFromRange(random, mix.duration_ms(), 1000));
    scenario::Fault fault;
    fault.set_at_ms(simulator_.NowUs() / kUsPerMs);
    switch (kind) {
      case scenario::FAULT_CRASH:
      case scenario::FAULT_POWER_LOSS:
      case scenario::FAULT_CLEAN_RESTART: {
        scenario::NodeDown* down = kind == scenario::FAULT_CRASH ? fault.mutable_crash()
                                   : kind == scenario::FAULT_POWER_LOSS
                                       ? fault.mutable_power_loss()
                                       : fault.mutable_clean_restart();
        down->set_node(node);
        down->set_downtime_ms(duration_ms);
        break;
      }
      case scenario::FAULT_STALL:
        fault.mutable_stall()->set_node(node);
        fault.mutable_stall()->set_duration_ms(duration_ms);
        break;
      case scenario::FAULT_DISK_FULL:
        fault.mutable_disk_full()->set_node(node);
        fault.mutable_disk_full()->set_duration_ms(duration_ms);
        break;
      case scenario::FAULT_PARTITION: {
        scenario::Partition* partition = fault.mutable_partition();
        partition->add_side_a(node);
        partition->set_one_way(random.Below(2) == 0);
        partition->set_duration_ms(duration_ms);
        break;
      }
      case scenario::FAULT_LINK_DELAY: {
        scenario::LinkDelay* delay = fault.mutable_link_delay();
        delay->add_from(node);
        delay->add_to("*");
        delay->set_extra_delay_ms(std::max<int64_t>(1, DrawFromRange(random, mix.extra_delay_ms(), 100)));
        delay->set_duration_ms(duration_ms);
        break;
      }
      case scenario::FAULT_CONNECTION_RESET:
        fault.mutable_connection_reset();
        break;
      case scenario::FAULT_CLOCK_JUMP:
        fault.mutable_clock_jump()->set_node(node);
        fault.mutable_clock_jump()->set_jump_ms(DrawFromRange(random, mix.clock_jump_ms(), 60'000));
        break;
      case scenario::FAULT_DISK_ERRORS:
      case scenario::FAULT_READ_CORRUPTION: {
        scenario::DiskFault* disk = kind == scenario::FAULT_DISK_ERRORS
                                        ? fault.mutable_disk_errors()
                                        : fault.mutable_read_corruption();
        disk->set_node(node);
        disk->set_probability(static_cast<double>(DrawFromRange(random, mix.disk_fault_ppm(),
                                                                10'000)) / 1e6);
        disk->set_duration_ms(duration_ms);
        break;
      }
    }
    return fault;
  }

  // One node matching any of `patterns`, chosen with the fault stream.
  std::string PickNode(const std::vector<std::string>& patterns) {
    std::vector<NodeId> nodes = Resolve(patterns);
    if (nodes.empty()) return "";
    return simulator_.NodeName(nodes[simulator_.FaultRandom().Below(nodes.size())]);
  }

  // Every node matching any of `patterns`, in node order.
  std::vector<NodeId> Resolve(const std::vector<std::string>& patterns) {
    std::set<NodeId> nodes;
    for (const std::string& pattern : patterns) {
      for (const std::string& name : MatchNodes(scenario_, pattern)) {
        auto found = nodes_by_name_.find(name);
        if (found != nodes_by_name_.end()) nodes.insert(found->second);
      }
    }
    return std::vector<NodeId>(nodes.begin(), nodes.end());
  }

  std::optional<NodeId> PickOne(const std::string& pattern) {
    std::vector<NodeId> nodes = Resolve({pattern});
    if (nodes.empty()) return std::nullopt;
    return nodes[simulator_.FaultRandom().Below(nodes.size())];
  }

  void Record(int64_t time_us, std::string kind, std::string target, std::string detail) {
    result_.faults.push_back(InjectedFault{time_us, std::move(kind), std::move(target),
                                           std::move(detail)});
  }

  // Runs `action` now as a fault named `kind` (a FAULT trace event and a fault log entry).
  void Strike(const std::string& kind, const std::string& target, const std::string& detail,
              absl::AnyInvocable<void()> action) {
    ++result_.faults_injected;
    Record(simulator_.NowUs(), kind, target, detail);
    simulator_.ScheduleFault(simulator_.NowUs(), kind,
                             detail.empty() ? target : absl::StrCat(target, ": ", detail),
                             std::move(action));
  }

  // Runs `action` after `delay_us` as the end of a fault, unless the settle phase healed it.
  void HealLater(int64_t delay_us, const std::string& kind, const std::string& target,
                 absl::AnyInvocable<void()> action) {
    const int64_t at_us = simulator_.NowUs() + delay_us;
    simulator_.Schedule(delay_us, [this, kind, target, at_us, action = std::move(action)]() mutable {
      if (settling_) return;
      Record(at_us, kind, target, "");
      simulator_.ScheduleFault(at_us, kind, target, std::move(action));
    });
  }

  bool IsBroker(NodeId node) const {
    return std::find(brokers_.begin(), brokers_.end(), node) != brokers_.end();
  }

  void Apply(const scenario::Fault& fault) {
    if (settling_) return;
    switch (fault.kind_case()) {
      case scenario::Fault::kCrash:
        NodeDown(fault.crash(), "crash", CrashKind::kProcess, /*clean=*/false);
        break;
      case scenario::Fault::kPowerLoss:
        NodeDown(fault.power_loss(), "power loss", CrashKind::kPowerLoss, /*clean=*/false);
        break;
      case scenario::Fault::kCleanRestart:
        NodeDown(fault.clean_restart(), "clean restart", CrashKind::kProcess, /*clean=*/true);
        break;
      case scenario::Fault::kStall:
        Stall(fault.stall());
        break;
      case scenario::Fault::kPartition:
        Cut(fault.partition());
        break;
      case scenario::Fault::kLinkDelay:
        Delay(fault.link_delay());
        break;
      case scenario::Fault::kConnectionReset:
        ResetConnections(fault.connection_reset());
        break;
      case scenario::Fault::kClockJump:
        JumpClock(fault.clock_jump());
        break;
      case scenario::Fault::kDiskErrors:
        DiskErrors(fault.disk_errors(), /*corruption=*/false);
        break;
      case scenario::Fault::kDiskFull:
        DiskFull(fault.disk_full());
        break;
      case scenario::Fault::kReadCorruption:
        DiskErrors(fault.read_corruption(), /*corruption=*/true);
        break;
      case scenario::Fault::KIND_NOT_SET:
        break;
    }
  }

  // Brings a node back after a crash or stop, unless it is meant to stay down.
  void Restart(NodeId node) {
    busy_.erase(node);
    stopping_.erase(node);
    if (settling_ || stopped_for_good_.contains(node) || simulator_.IsUp(node)) return;
    // A client whose window has not opened yet starts when it opens.
    auto start = start_us_.find(node);
    if (start != start_us_.end() && start->second > simulator_.NowUs()) return;
    simulator_.StartNode(node);
    CheckBrokerStarted(node);
  }

  void NodeDown(const scenario::NodeDown& spec, const std::string& kind, CrashKind crash,
                bool clean) {
    std::optional<NodeId> picked = PickOne(spec.node());
    if (!picked.has_value()) return;
    const NodeId node = *picked;
    // One crash-restart cycle at a time per node, and only of a running node.
    if (busy_.contains(node) || !simulator_.IsUp(node)) return;
    busy_.insert(node);
    const std::string name = simulator_.NodeName(node);
    const int64_t downtime_us = spec.downtime_ms() * kUsPerMs;
    auto restart = [this, node, name] {
      Record(simulator_.NowUs(), "restart", name, "");
      simulator_.ScheduleFault(simulator_.NowUs(), "restart", name, [this, node] { Restart(node); });
    };
    if (!clean) {
      Strike(kind, name, "", [this, node, crash] {
        if (simulator_.IsUp(node)) simulator_.CrashNode(node, crash);
      });
      simulator_.Schedule(downtime_us, [this, restart] {
        if (!settling_) restart();
      });
      return;
    }
    Strike(kind, name, "", [this, node, downtime_us, restart] {
      if (!simulator_.IsUp(node)) return;
      auto* broker = IsBroker(node) ? Program<BrokerProgram>(node) : nullptr;
      if (broker == nullptr || broker->node == nullptr) {
        simulator_.StopNode(node);
        simulator_.Schedule(downtime_us, [this, restart] {
          if (!settling_) restart();
        });
        return;
      }
      stopping_.insert(node);
      // The node stops once its clean shutdown completes; the restart follows after the downtime.
      broker->node->Shutdown([this, node, downtime_us, restart](const absl::Status& status) {
        // A shutdown on a disk that was made to fail may report that failure; otherwise a
        // clean shutdown must succeed.
        if (!status.ok() && !disk_failed_.contains(node)) {
          WorldAnomaly("clean-shutdown", absl::StrCat(simulator_.NodeName(node), ": ",
                                                      status.ToString()));
        }
        simulator_.Schedule(0, [this, node, downtime_us, restart] {
          if (simulator_.IsUp(node)) simulator_.StopNode(node);
          stopping_.erase(node);
          if (settling_) {
            Restart(node);
            return;
          }
          simulator_.Schedule(downtime_us, [this, node, restart] {
            if (settling_) {
              Restart(node);
            } else {
              restart();
            }
          });
        });
      });
    });
  }

  void Stall(const scenario::NodeSpan& spec) {
    std::optional<NodeId> picked = PickOne(spec.node());
    if (!picked.has_value()) return;
    const NodeId node = *picked;
    if (busy_.contains(node) || !simulator_.IsUp(node) || simulator_.IsStalled(node)) return;
    busy_.insert(node);
    const std::string name = simulator_.NodeName(node);
    Strike("stall", name, absl::StrCat(spec.duration_ms(), " ms"),
           [this, node] { simulator_.StallNode(node); });
    HealLater(spec.duration_ms() * kUsPerMs, "resume", name, [this, node] {
      busy_.erase(node);
      if (simulator_.IsStalled(node)) simulator_.ResumeNode(node);
    });
  }

  std::string Names(const std::vector<NodeId>& nodes) {
    std::vector<std::string> names;
    for (NodeId node : nodes) names.push_back(simulator_.NodeName(node));
    return absl::StrJoin(names, ",");
  }

  // Every node not in `nodes`, in node order.
  std::vector<NodeId> Others(const std::vector<NodeId>& nodes) {
    std::vector<NodeId> others;
    for (size_t i = 0; i < simulator_.node_count(); ++i) {
      const auto node = static_cast<NodeId>(i);
      if (std::find(nodes.begin(), nodes.end(), node) == nodes.end()) others.push_back(node);
    }
    return others;
  }

  void Cut(const scenario::Partition& spec) {
    const std::vector<NodeId> side_a =
        Resolve(std::vector<std::string>(spec.side_a().begin(), spec.side_a().end()));
    std::vector<NodeId> side_b =
        Resolve(std::vector<std::string>(spec.side_b().begin(), spec.side_b().end()));
    if (side_b.empty()) side_b = Others(side_a);
    std::vector<std::pair<NodeId, NodeId>> links;
    for (NodeId a : side_a) {
      for (NodeId b : side_b) {
        if (a == b) continue;
        links.push_back({a, b});
        if (!spec.one_way()) links.push_back({b, a});
      }
    }
    if (links.empty()) return;
    const std::string target = absl::StrCat(Names(side_a), spec.one_way() ? " -/-> " : " <-/-> ",
                                            Names(side_b));
    Strike("partition", target, absl::StrCat(spec.duration_ms(), " ms"), [this, links] {
      for (const auto& link : links) {
        if (blocked_links_[link]++ == 0) {
          simulator_.network().SetLinkBlocked(link.first, link.second, true);
        }
      }
    });
    HealLater(spec.duration_ms() * kUsPerMs, "heal", target, [this, links] {
      for (const auto& link : links) {
        int& count = blocked_links_[link];
        if (count > 0 && --count == 0) {
          simulator_.network().SetLinkBlocked(link.first, link.second, false);
        }
      }
    });
  }

  void Delay(const scenario::LinkDelay& spec) {
    const std::vector<NodeId> from =
        Resolve(std::vector<std::string>(spec.from().begin(), spec.from().end()));
    std::vector<NodeId> to = Resolve(std::vector<std::string>(spec.to().begin(), spec.to().end()));
    if (to.empty()) to = Others(from);
    std::vector<std::pair<NodeId, NodeId>> links;
    for (NodeId a : from) {
      for (NodeId b : to) {
        if (a == b) continue;
        links.push_back({a, b});
        if (!spec.one_way()) links.push_back({b, a});
      }
    }
    if (links.empty()) return;
    const int64_t extra_us = spec.extra_delay_ms() * kUsPerMs;
    const std::string target =
        absl::StrCat(Names(from), spec.one_way() ? " -> " : " <-> ", Names(to));
    Strike("link delay", target, absl::StrCat("+", spec.extra_delay_ms(), " ms for ",
                                              spec.duration_ms(), " ms"),
           [this, links, extra_us] {
             for (const auto& link : links) {
               int64_t& delay_us = link_delays_us_[link];
               delay_us += extra_us;
               simulator_.network().SetLinkExtraDelayUs(link.first, link.second, delay_us);
             }
           });
    HealLater(spec.duration_ms() * kUsPerMs, "delay over", target, [this, links, extra_us] {
      for (const auto& link : links) {
        int64_t& delay_us = link_delays_us_[link];
        delay_us = std::max<int64_t>(0, delay_us - extra_us);
        simulator_.network().SetLinkExtraDelayUs(link.first, link.second, delay_us);
      }
    });
  }

  void ResetConnections(const scenario::ConnectionReset& spec) {
    if (spec.node().empty()) {
      Strike("connection reset", "a random connection", "",
             [this] { simulator_.network().ResetRandomConnection(); });
      return;
    }
    std::optional<NodeId> picked = PickOne(spec.node());
    if (!picked.has_value()) return;
    const NodeId node = *picked;
    Strike("connection reset", simulator_.NodeName(node), "every connection",
           [this, node] { simulator_.network().ResetConnectionsOf(node); });
  }

  void JumpClock(const scenario::ClockJump& spec) {
    std::optional<NodeId> picked = PickOne(spec.node());
    if (!picked.has_value()) return;
    const NodeId node = *picked;
    const int64_t jump_ms = spec.jump_ms();
    Strike("clock jump", simulator_.NodeName(node), absl::StrCat(jump_ms > 0 ? "+" : "", jump_ms,
                                                                 " ms"),
           [this, node, jump_ms] { simulator_.clock(node).JumpWallMs(jump_ms); });
  }

  void DiskErrors(const scenario::DiskFault& spec, bool corruption) {
    std::optional<NodeId> picked = PickOne(spec.node());
    if (!picked.has_value()) return;
    const NodeId node = *picked;
    const std::string name = simulator_.NodeName(node);
    const double probability = spec.probability();
    const std::string kind = corruption ? "read corruption" : "disk errors";
    Strike(kind, name, absl::StrCat("p=", probability, " for ", spec.duration_ms(), " ms"),
           [this, node, probability, corruption] {
             SimDiskOptions& disk = simulator_.disk(node).options();
             if (corruption) {
               disk.read_corruption_probability = probability;
             } else {
               disk.write_error_probability = probability;
               disk.sync_error_probability = probability;
               if (IsBroker(node)) disk_failed_.insert(node);
             }
           });
    HealLater(spec.duration_ms() * kUsPerMs, absl::StrCat(kind, " over"), name,
              [this, node, corruption] {
                SimDiskOptions& disk = simulator_.disk(node).options();
                if (corruption) {
                  disk.read_corruption_probability = 0;
                } else {
                  disk.write_error_probability = 0;
                  disk.sync_error_probability = 0;
                }
              });
  }

  void DiskFull(const scenario::NodeSpan& spec) {
    std::optional<NodeId> picked = PickOne(spec.node());
    if (!picked.has_value()) return;
    const NodeId node = *picked;
    const std::string name = simulator_.NodeName(node);
    Strike("disk full", name, absl::StrCat(spec.duration_ms(), " ms"), [this, node] {
      ++disk_full_count_[node];
      // A broker whose metadata write met a full disk accepts no topic change until restarted.
      if (IsBroker(node)) disk_failed_.insert(node);
      simulator_.disk(node).SetFull(true);
    });
    HealLater(spec.duration_ms() * kUsPerMs, "disk space freed", name, [this, node] {
      int& count = disk_full_count_[node];
      if (count > 0 && --count == 0) simulator_.disk(node).SetFull(false);
    });
  }

  // --- Judging ---

  // Whether every record of every topic is read by a consumer that runs to the end and reads it
  // all (assign consumers from the beginning, which reread everything; groups, which resume from
  // their committed offsets and read the rest).
  bool FinalReadsCoverEverything() {
    std::set<std::string> covered;
    for (const ConsumerNode& consumer : consumers_) {
      if (consumer.spec->active().stop_ms() > 0) continue;
      if (consumer.spec->has_assign() && consumer.spec->assign().from_end()) continue;
      covered.insert(consumer.topics.begin(), consumer.topics.end());
    }
    for (const scenario::Topic& topic : scenario_.topics()) {
      if (!covered.contains(topic.name())) return false;
    }
    return true;
  }

  void Judge() {
    model::CheckerOptions check;
    for (const scenario::Producer& spec : scenario_.producers()) {
      for (int i = 0; i < spec.count(); ++i) {
        const std::string name = absl::StrCat(spec.name(), "-", i);
        // The producer keeps one batch per partition in flight and retries it before any later
        // one, so every producer's sends land in order.
        check.ordered_send_processes.insert(name);
        if (spec.idempotent()) check.idempotent_processes.insert(name);
      }
    }
    check.final_reads = result_.settled && FinalReadsCoverEverything();
    std::set<std::string> skip;
    for (int anomaly : scenario_.checks().skip()) {
      skip.insert(AnomalyName(static_cast<scenario::Anomaly>(anomaly)));
    }
    check.skip = skip;
    const model::CheckReport report = model::CheckHistory(shared_.history.entries(), check);

    std::vector<model::Anomaly> anomalies = report.anomalies;
    result_.anomalies_not_kept = report.anomalies_not_kept;
    for (const model::Anomaly& anomaly : shared_.online.anomalies()) {
      if (!skip.contains(anomaly.name)) anomalies.push_back(anomaly);
    }
    for (const model::Anomaly& anomaly : world_anomalies_) {
      if (!skip.contains(anomaly.name)) anomalies.push_back(anomaly);
    }
    std::stable_sort(anomalies.begin(), anomalies.end(),
                     [](const model::Anomaly& a, const model::Anomaly& b) {
                       return a.time_us < b.time_us;
                     });
    result_.anomalies = std::move(anomalies);

    // The checker counted the operations as it read the history.
    result_.sends_ok = report.sends_ok;
    result_.sends_failed = report.sends_failed;
    result_.sends_indeterminate = report.sends_indeterminate;
    result_.sends_invoked = report.sends_ok + report.sends_failed + report.sends_indeterminate;
    result_.polls = report.polls;
    result_.records_read = report.records_read;
    result_.commits_ok = report.commits_ok;
    result_.commits_failed = report.commits_failed;

    const bool failed = !result_.anomalies.empty() || result_.anomalies_not_kept > 0;
    result_.verdict = failed ? "FAIL" : "PASS";
    const scenario::Expect& expect = scenario_.expect();
    const bool expect_fail = expect.verdict() == scenario::FAIL;
    if (failed != expect_fail) {
      result_.as_expected = false;
      result_.expectation_note = absl::StrCat("expected ", expect_fail ? "FAIL" : "PASS",
                                              ", got ", result_.verdict);
      return;
    }
    result_.as_expected = true;
    if (!expect_fail || expect.anomalies().empty()) return;
    std::set<std::string> allowed;
    for (int anomaly : expect.anomalies()) {
      allowed.insert(AnomalyName(static_cast<scenario::Anomaly>(anomaly)));
    }
    std::set<std::string> unexpected;
    for (const model::Anomaly& anomaly : result_.anomalies) {
      if (!allowed.contains(anomaly.name)) unexpected.insert(anomaly.name);
    }
    if (!unexpected.empty()) {
      result_.as_expected = false;
      result_.expectation_note = absl::StrCat("anomalies not among those expected: ",
                                              absl::StrJoin(unexpected, ", "));
    }
  }

  const scenario::Scenario& scenario_;
  const ScenarioRunOptions& options_;
  Shared& shared_;
  Simulator& simulator_;
  ScenarioResult result_;

  std::vector<NodeId> brokers_;
  std::vector<NodeId> producers_;
  std::vector<ConsumerNode> consumers_;
  std::map<std::string, NodeId> nodes_by_name_;
  // When client nodes start and when consumers stop for good (their windows).
  std::map<NodeId, int64_t> start_us_;
  std::map<NodeId, int64_t> stop_us_;
  std::set<NodeId> stopped_for_good_;
  // Nodes in a crash-restart cycle or a stall, and brokers in a clean shutdown.
  std::set<NodeId> busy_;
  std::set<NodeId> stopping_;
  // Brokers whose disk returned write or sync errors, or was full, during the run.
  std::set<NodeId> disk_failed_;
  // How many partitions block each directed link; extra delay on each link.
  std::map<std::pair<NodeId, NodeId>, int> blocked_links_;
  std::map<std::pair<NodeId, NodeId>, int64_t> link_delays_us_;
  std::map<NodeId, int> disk_full_count_;
  bool settling_ = false;

  int64_t mix_interval_us_ = 0;
  std::vector<std::pair<scenario::FaultKind, int64_t>> mix_weights_;
  uint64_t mix_total_weight_ = 0;

  std::vector<model::Anomaly> world_anomalies_;
  // By broker (brokers_' order), then by partition in shared_.partition_counts' order: the high
  // watermark last handed to the online checker (SampleHighWatermarks).
  static constexpr int64_t kNoHighWatermarkSeen = -1;
  std::vector<std::vector<int64_t>> high_watermarks_seen_;
  // By broker: its logs as SampledLogs last found them, and for which run and image. Incarnation 0
  // (a node never started) means none were looked up yet.
  struct BrokerLogs {
    uint64_t incarnation = 0;
    server::MetadataImage image;
    std::vector<const storage::PartitionLog*> logs;
  };
  std::vector<BrokerLogs> sampled_logs_;
};

ScenarioWorld::ScenarioWorld(scenario::Scenario scenario, ScenarioRunOptions options)
    : scenario_(std::move(scenario)),
      options_(std::move(options)),
      shared_(std::make_unique<Shared>()),
      simulator_([&] {
        SimulatorOptions simulator;
        simulator.seed = options_.seed;
        simulator.buggify.enabled = scenario_.run().buggify();
        simulator.echo_logs = options_.echo_logs;
        if (scenario_.cluster().has_latency_us()) {
          const scenario::Range& latency = scenario_.cluster().latency_us();
          simulator.network.latency_us_min = latency.min();
          simulator.network.latency_us_max = latency.has_max() ? latency.max() : latency.min();
        }
        return simulator;
      }()) {
  assert(scenario_.cluster().brokers() == 1 && "one broker until replication exists");
  shared_->scenario = &scenario_;
  shared_->simulator = &simulator_;
  runner_ = std::make_unique<Runner>(scenario_, options_, *shared_, simulator_);
}

ScenarioWorld::~ScenarioWorld() {
  // The runner's hooks and the node programs reach the shared state: stop them first.
  simulator_.SetAfterEventHook(nullptr);
}

ScenarioResult ScenarioWorld::Run() { return runner_->Run(); }

const model::History& ScenarioWorld::history() const { return shared_->history; }

}  // namespace runnel::sim
