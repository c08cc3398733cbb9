#include "sim/group_world.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/client/admin_client.h"
#include "broker/client/group_consumer.h"
#include "broker/client/kafka_error.h"
#include "broker/client/producer.h"
#include "broker/server/broker_node.h"
#include "sim/broker_program.h"
#include "broker/server/handler_support.h"

namespace runnel::sim {

using client::TopicPartition;

namespace {

// How long the producer waits before asking again for its topic after a failed attempt.
constexpr int64_t kTopicSetupRetryUs = 200'000;
// A back-to-back committer with nothing to commit looks again after this long.
constexpr int64_t kBackToBackIdlePollUs = 1'000;
// The commit of GroupWorldOptions::rewinding_member that rewinds.
constexpr int kRewindingCommit = 5;
// A static member stopped by FENCED_INSTANCE_ID is restarted by its supervisor after this long.
constexpr int64_t kFencedRestartDelayUs = 200'000;
// A member restart due while the member is still closing is tried again after this long.
constexpr int64_t kRestartRetryUs = 100'000;

std::string PartitionList(const std::vector<int32_t>& partitions) {
  return absl::StrCat("[", absl::StrJoin(partitions, ","), "]");
}

}  // namespace

const char* GroupFaultKindName(GroupFaultKind kind) {
  switch (kind) {
    case GroupFaultKind::kMemberCrash:
      return "member crash";
    case GroupFaultKind::kMemberStall:
      return "member stall";
    case GroupFaultKind::kMemberPartition:
      return "member partition";
    case GroupFaultKind::kMemberLeave:
      return "member leave";
    case GroupFaultKind::kBrokerCrash:
      return "broker crash";
    case GroupFaultKind::kBrokerPowerLoss:
      return "broker power loss";
    case GroupFaultKind::kBrokerStall:
      return "broker stall";
    case GroupFaultKind::kConnectionReset:
      return "connection reset";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// GroupHistory

void GroupHistory::Violation(std::string text) {
  ++violation_count_;
  if (violations_.size() < kViolationsMax) violations_.push_back(std::move(text));
}

void GroupHistory::MemberStarted(int member, uint64_t incarnation) {
  MemberState& state = members_[member];
  assert(!state.live);
  state = MemberState{};
  state.live = true;
  state.incarnation = incarnation;
}

void GroupHistory::MemberGone(int member, uint64_t incarnation) {
  MemberState& state = members_[member];
  if (state.incarnation != incarnation) return;
  state.live = false;
  state.owned.clear();
  state.generation = -1;
  ownership_changed_ = true;
}

void GroupHistory::Assigned(int member, int32_t generation, const std::string& member_id,
                            const std::vector<int32_t>& partitions, int64_t now_us) {
  MemberState& state = members_[member];
  assert(state.live);
  // The guarantee of group_consumer.h: every partition handed out is taken back before the next
  // assignment, so a member owns nothing when it is assigned again.
  if (!state.owned.empty()) {
    Violation(absl::StrCat(
        "reassigned-without-release: member ", member, " was assigned ", PartitionList(partitions),
        " in generation ", generation, " while still owning ",
        PartitionList(std::vector<int32_t>(state.owned.begin(), state.owned.end()))));
  }
  state.generation = generation;
  state.member_id = member_id;
  state.owned.clear();
  for (int32_t partition : partitions) {
    if (partition < 0 || partition >= partitions_) {
      Violation(absl::StrCat("unknown-partition: member ", member, " was assigned partition ",
                             partition));
    }
    state.owned.insert(partition);
  }
  first_assigned_us_.try_emplace(generation, now_us);
  generation_last_ = std::max(generation_last_, generation);
  ownership_changed_ = true;
}

void GroupHistory::Released(int member, const std::vector<int32_t>& partitions) {
  MemberState& state = members_[member];
  for (int32_t partition : partitions) {
    if (state.owned.erase(partition) == 0) {
      Violation(absl::StrCat("release-without-ownership: member ", member, " gave up partition ",
                             partition, " it did not own"));
    }
  }
  ownership_changed_ = true;
}

void GroupHistory::Delivered(int member, int32_t partition, int64_t offset,
                             const std::string& value) {
  ++records_delivered_;
  const MemberState& state = members_[member];
  if (!state.owned.contains(partition)) {
    Violation(absl::StrCat("delivery-without-ownership: member ", member, " received partition ",
                           partition, " offset ", offset, " without owning the partition"));
  }
  auto [slot, fresh] = delivered_.try_emplace({partition, offset}, value);
  if (!fresh) {
    ++records_redelivered_;
    if (slot->second != value) {
      Violation(absl::StrCat("inconsistent-offsets: partition ", partition, " offset ", offset,
                             " held '", slot->second, "' and later '", value, "'"));
    }
  }
}

std::optional<int64_t> GroupHistory::SupersededAtUs(int32_t generation) const {
  std::optional<int64_t> earliest;
  for (auto it = first_assigned_us_.upper_bound(generation); it != first_assigned_us_.end(); ++it) {
    if (!earliest.has_value() || it->second < *earliest) earliest = it->second;
  }
  return earliest;
}

uint64_t GroupHistory::CommitMade(int member, int32_t generation,
                                  std::map<int32_t, int64_t> offsets, int64_t now_us) {
  const uint64_t id = next_commit_++;
  commits_[id] = Commit{member, generation, std::move(offsets), now_us, false};
  return id;
}

std::optional<std::pair<int64_t, int64_t>> GroupHistory::AckedMaxBefore(int32_t partition,
                                                                        int64_t time_us) const {
  auto found = acked_running_max_.find(partition);
  if (found == acked_running_max_.end()) return std::nullopt;
  const auto& entries = found->second;
  // The last entry acknowledged strictly before time_us.
  auto it = std::lower_bound(
      entries.begin(), entries.end(), time_us,
      [](const std::pair<int64_t, int64_t>& entry, int64_t t) { return entry.first < t; });
  if (it == entries.begin()) return std::nullopt;
  --it;
  return *it;
}

void GroupHistory::CommitCompleted(uint64_t id, const absl::Status& status, int64_t now_us) {
  auto found = commits_.find(id);
  assert(found != commits_.end());
  const Commit commit = std::move(found->second);
  commits_.erase(found);
  const std::optional<int64_t> superseded_us =
      commit.generation >= 0 ? SupersededAtUs(commit.generation) : std::nullopt;
  const bool fenced = superseded_us.has_value() && *superseded_us < commit.made_us;
  if (!status.ok()) {
    ++commits_failed_;
    if (fenced) ++fenced_commits_refused_;
    return;
  }
  ++commits_ok_;
  if (fenced) {
    Violation(absl::StrCat("fenced-commit-accepted: member ", commit.member,
                           " committed with generation ", commit.generation, " at ", commit.made_us,
                           " us, after a later generation was assigned at ", *superseded_us,
                           " us, and the coordinator answered OK"));
  }
  for (const auto& [partition, offset] : commit.offsets) {
    if (std::optional<std::pair<int64_t, int64_t>> before =
            AckedMaxBefore(partition, commit.made_us);
        before.has_value() && offset < before->second) {
      Violation(absl::StrCat("commit-regressed: partition ", partition, " committed offset ",
                             offset, " by member ", commit.member, " (generation ",
                             commit.generation, ", made at ", commit.made_us, " us) after offset ",
                             before->second, " had been acknowledged at ", before->first, " us"));
    }
    // A new highest offset is recorded with the time it was first acknowledged.
    auto& entries = acked_running_max_[partition];
    assert(entries.empty() || entries.back().first <= now_us);
    if (entries.empty() || offset > entries.back().second) entries.emplace_back(now_us, offset);
  }
}

void GroupHistory::CoordinatorOffsets(const std::map<int32_t, int64_t>& offsets) {
  for (const auto& [partition, offset] : offsets) {
    auto [slot, fresh] = coordinator_offsets_.try_emplace(partition, offset);
    if (fresh) continue;
    if (offset < slot->second) {
      Violation(
          absl::StrCat("committed-offset-decreased: the coordinator's committed offset of "
                       "partition ",
                       partition, " went from ", slot->second, " to ", offset));
    }
    slot->second = offset;
  }
  for (const auto& [partition, offset] : coordinator_offsets_) {
    if (!offsets.contains(partition)) {
      Violation(
          absl::StrCat("committed-offset-decreased: the coordinator forgot the committed "
                       "offset ",
                       offset, " of partition ", partition));
    }
  }
}

void GroupHistory::RecordAcked(int32_t partition, int64_t offset, std::string value) {
  acked_[{partition, offset}] = std::move(value);
}

void GroupHistory::CheckOnline() {
  if (!ownership_changed_) return;
  ownership_changed_ = false;
  // generation -> partition -> the member owning it.
  std::map<int32_t, std::map<int32_t, int>> owners;
  for (const auto& [member, state] : members_) {
    if (!state.live) continue;
    for (int32_t partition : state.owned) {
      auto [slot, fresh] = owners[state.generation].try_emplace(partition, member);
      // Each conflict is reported once, however long it lasts.
      if (!fresh && double_owners_reported_
                        .insert(std::make_tuple(state.generation, partition, slot->second, member))
                        .second) {
        Violation(absl::StrCat("double-ownership: members ", slot->second, " and ", member,
                               " both own partition ", partition, " in generation ",
                               state.generation));
      }
    }
  }
}

void GroupHistory::CheckFinal() {
  for (const auto& [where, value] : acked_) {
    auto found = delivered_.find(where);
    if (found == delivered_.end()) {
      Violation(absl::StrCat("lost-record: ", value, " acknowledged at partition ", where.first,
                             " offset ", where.second, " was never delivered to a member"));
    } else if (found->second != value) {
      Violation(absl::StrCat("lost-record: ", value, " acknowledged at partition ", where.first,
                             " offset ", where.second, " but '", found->second,
                             "' was delivered there"));
    }
  }
}

std::optional<int32_t> GroupHistory::FullyAssignedGeneration(int32_t generation_min,
                                                             size_t members_min) const {
  struct Tally {
    std::set<int32_t> owned;
    size_t owned_count = 0;
    size_t members = 0;
  };
  std::map<int32_t, Tally> by_generation;
  for (const auto& [member, state] : members_) {
    if (!state.live || state.generation < 0 || state.generation < generation_min) continue;
    Tally& tally = by_generation[state.generation];
    tally.owned.insert(state.owned.begin(), state.owned.end());
    tally.owned_count += state.owned.size();
    ++tally.members;
  }
  for (const auto& [generation, tally] : by_generation) {
    if (tally.members >= members_min && tally.owned.size() == static_cast<size_t>(partitions_) &&
        tally.owned_count == tally.owned.size()) {
      return generation;
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Node programs

struct GroupWorld::Shared {
  const GroupWorldOptions* options = nullptr;
  GroupHistory* history = nullptr;
  Simulator* simulator = nullptr;
  std::vector<NetworkAddress> bootstrap;
  uint64_t member_rebalances = 0;
  uint64_t generations_lost = 0;
  bool topic_ready = false;
  // A member stopped with a fatal error (called from inside its on_error).
  std::function<void(int member, uint64_t incarnation, const absl::Status& error)> on_member_failed;
};

namespace {

client::ClientOptions MakeClientOptions(const GroupWorld::Shared& shared, std::string client_id) {
  client::ClientOptions client;
  client.bootstrap_servers = shared.bootstrap;
  client.client_id = std::move(client_id);
  client.request_timeout_ms = shared.options->request_timeout_ms;
  client.connection_setup_timeout_ms = shared.options->request_timeout_ms;
  return client;
}

// The producer node: creates the topic, then sends keyed records with acks=all.
class ProducerProgram {
 public:
  ProducerProgram(Env& env, GroupWorld::Shared* shared)
      : env_(env), shared_(shared), alive_(std::make_shared<ProducerProgram*>(this)) {
    client::ClientOptions client = MakeClientOptions(*shared, "producer-0");
    client::AdminOptions admin;
    admin.client = client;
    admin.api_timeout_ms = shared->options->request_timeout_ms * 2;
    admin_ = *client::AdminClient::Create(env, admin);
    client::ProducerOptions producer;
    producer.client = client;
    producer.acks = client::Acks::kAll;
    producer.linger_ms = 2;
    producer_ = *client::Producer::Create(env, producer);
    EnsureTopic();
  }
  ~ProducerProgram() {
    alive_.reset();
    if (timer_ != kNoTimer) env_.clock().CancelTimer(timer_);
  }

  void Stop() { stopped_ = true; }
  size_t records_pending() const { return producer_->records_pending(); }
  uint64_t records_sent() const { return sequence_; }

 private:
  void EnsureTopic() {
    const GroupWorldOptions& options = *shared_->options;
    std::weak_ptr<ProducerProgram*> alive = alive_;
    admin_->CreateTopic(client::NewTopic{options.topic, options.partitions, 1, {}}, {},
                        [alive](const absl::Status& status) {
                          if (alive.expired()) return;
                          ProducerProgram* self = *alive.lock();
                          if (!status.ok() && status.code() != absl::StatusCode::kAlreadyExists) {
                            self->timer_ =
                                self->env_.clock().ScheduleAfter(kTopicSetupRetryUs, [alive] {
                                  if (alive.expired()) return;
                                  ProducerProgram* program = *alive.lock();
                                  program->timer_ = kNoTimer;
                                  program->EnsureTopic();
                                });
                            return;
                          }
                          self->shared_->topic_ready = true;
                          if (self->shared_->options->produce_interval_us > 0) self->Tick();
                        });
  }

  void Tick() {
    timer_ = kNoTimer;
    if (stopped_) return;
    const GroupWorldOptions& options = *shared_->options;
    client::ProducerRecord record;
    record.topic = options.topic;
    record.key = absl::StrCat("k", env_.random().Below(static_cast<uint64_t>(options.key_count)));
    const std::string value = absl::StrCat("v", sequence_++);
    record.value = value;
    std::weak_ptr<ProducerProgram*> alive = alive_;
    GroupHistory* history = shared_->history;
    (void)producer_->Send(
        std::move(record), [alive, history, value](absl::StatusOr<client::RecordMetadata> result) {
          if (alive.expired() || !result.ok()) return;
          history->RecordAcked(result->partition.partition, result->offset, value);
        });
    timer_ = env_.clock().ScheduleAfter(options.produce_interval_us, [alive] {
      if (!alive.expired()) (*alive.lock())->Tick();
    });
  }

  Env& env_;
  GroupWorld::Shared* shared_;
  std::unique_ptr<client::AdminClient> admin_;
  std::unique_ptr<client::Producer> producer_;
  uint64_t sequence_ = 0;
  bool stopped_ = false;
  TimerId timer_ = kNoTimer;
  std::shared_ptr<ProducerProgram*> alive_;
};

}  // namespace

// A member node: one GroupConsumer, committing explicitly (see the file comment of the header).
class MemberProgram {
 public:
  // `index` is the member's slot in the history; `instance` names its group_instance_id
  // ("member-<instance>") when members are static, and differs from `index` only for an impostor.
  MemberProgram(Env& env, GroupWorld::Shared* shared, int index, int instance)
      : env_(env),
        shared_(shared),
        index_(index),
        incarnation_(shared->simulator->Incarnation(env.node_id())),
        alive_(std::make_shared<MemberProgram*>(this)) {
    const GroupWorldOptions& options = *shared->options;
    shared_->history->MemberStarted(index_, incarnation_);
    client::GroupConsumerOptions group;
    group.consumer.client = MakeClientOptions(*shared, absl::StrCat("member-", index));
    group.consumer.fetch_max_wait_ms = 100;
    group.group_id = options.group_id;
    if (options.static_members) group.group_instance_id = absl::StrCat("member-", instance);
    group.topics = {options.topic};
    group.session_timeout_ms = options.session_timeout_ms;
    group.heartbeat_interval_ms = options.heartbeat_interval_ms;
    group.rebalance_timeout_ms = options.rebalance_timeout_ms;
    group.assignors = options.assignors;
    group.enable_auto_commit = false;
    group.auto_offset_reset = client::OffsetReset::kEarliest;
    group.on_records = [this](client::FetchedRecords records) { OnRecords(records); };
    group.on_partitions_assigned = [this](const std::vector<TopicPartition>& partitions) {
      OnAssigned(partitions);
    };
    group.on_partitions_revoked = [this](const std::vector<TopicPartition>& partitions) {
      OnReleased(partitions, /*lost=*/false);
    };
    group.on_partitions_lost = [this](const std::vector<TopicPartition>& partitions) {
      OnReleased(partitions, /*lost=*/true);
    };
    group.on_error = [this](const absl::Status& error) {
      env_.Log(LogLevel::kInfo, absl::StrCat("member-", index_, " error: ", error.ToString()));
      last_error_ = error.ToString();
      if (consumer_ != nullptr && consumer_->state() == client::GroupConsumer::State::kFailed &&
          shared_->on_member_failed) {
        shared_->on_member_failed(index_, incarnation_, error);
      }
    };
    absl::StatusOr<std::unique_ptr<client::GroupConsumer>> consumer =
        client::GroupConsumer::Create(env, std::move(group));
    if (!consumer.ok()) {
      shared_->history->Violation(
          absl::StrCat("member-start: member ", index_, ": ", consumer.status().ToString()));
      return;
    }
    consumer_ = *std::move(consumer);
    ScheduleCommitTick(options.commit_interval_us > 0 ? options.commit_interval_us
                                                      : kBackToBackIdlePollUs);
  }

  ~MemberProgram() {
    alive_.reset();
    if (commit_timer_ != kNoTimer) env_.clock().CancelTimer(commit_timer_);
    if (consumer_ != nullptr && !stats_collected_) CollectStats();
    // Destroying the consumer first: no callback of it runs afterwards.
    consumer_.reset();
    shared_->history->MemberGone(index_, incarnation_);
  }

  void CollectStats() {
    if (consumer_ == nullptr || stats_collected_) return;
    stats_collected_ = true;
    shared_->member_rebalances += consumer_->stats().rebalances;
    shared_->generations_lost += consumer_->stats().generations_lost;
  }

  void Close(absl::AnyInvocable<void()> done) {
    closing_ = true;
    if (consumer_ == nullptr) {
      done();
      return;
    }
    consumer_->Close(std::move(done));
  }

  client::GroupConsumer* consumer() { return consumer_.get(); }
  bool closing() const { return closing_; }
  // The last error on_error reported, or empty.
  const std::string& last_error() const { return last_error_; }

 private:
  void OnRecords(const client::FetchedRecords& records) {
    const int32_t partition = records.partition.partition;
    for (const client::ConsumerRecord& record : records.records) {
      shared_->history->Delivered(index_, partition, record.offset, record.value.value_or(""));
    }
    processed_[partition] = records.next_offset;
  }

  void OnAssigned(const std::vector<TopicPartition>& partitions) {
    std::vector<int32_t> numbers;
    for (const TopicPartition& partition : partitions) {
      numbers.push_back(partition.partition);
      processed_.erase(partition.partition);
    }
    shared_->history->Assigned(index_, consumer_->generation_id(), consumer_->member_id(), numbers,
                               shared_->simulator->NowUs());
    env_.RecordEvent(SemanticEvent{.kind = "group.assigned",
                                   .subject = PartitionList(numbers),
                                   .value = consumer_->generation_id()});
  }

  void OnReleased(const std::vector<TopicPartition>& partitions, bool lost) {
    std::vector<int32_t> numbers;
    for (const TopicPartition& partition : partitions) numbers.push_back(partition.partition);
    // An orderly revocation commits what was processed first (with the generation being left);
    // a loss cannot, as the generation is gone.
    if (!lost) CommitProcessed(numbers, /*continue_chain=*/false);
    for (int32_t partition : numbers) processed_.erase(partition);
    shared_->history->Released(index_, numbers);
    env_.RecordEvent(SemanticEvent{.kind = lost ? "group.lost" : "group.revoked",
                                   .subject = PartitionList(numbers),
                                   .value = 0});
  }

  // Commits the offset after the last record processed, for those of `partitions` that have one;
  // returns whether a commit was made. With `continue_chain` (back-to-back committing), the next
  // commit tick follows as soon as this commit completes.
  bool CommitProcessed(const std::vector<int32_t>& partitions, bool continue_chain) {
    // The deliberate misbehaviour of GroupWorldOptions::rewinding_member.
    const bool rewind_now =
        shared_->options->rewinding_member == index_ && ++commits_made_ == kRewindingCommit;
    std::map<TopicPartition, client::OffsetAndMetadata> offsets;
    std::map<int32_t, int64_t> plain;
    for (int32_t partition : partitions) {
      const TopicPartition key{shared_->options->topic, partition};
      std::optional<int64_t> position;
      auto processed = processed_.find(partition);
      if (processed != processed_.end()) {
        position = processed->second;
      } else {
        position = consumer_->Position(key);
      }
      if (!position.has_value()) continue;
      if (rewind_now) position = 0;
      offsets[key] = client::OffsetAndMetadata{*position, ""};
      plain[partition] = *position;
    }
    if (offsets.empty()) return false;
    const uint64_t commit = shared_->history->CommitMade(
        index_, consumer_->generation_id(), std::move(plain), shared_->simulator->NowUs());
    std::weak_ptr<MemberProgram*> alive = alive_;
    GroupWorld::Shared* shared = shared_;
    consumer_->Commit(
        std::move(offsets), [alive, shared, commit, continue_chain](const absl::Status& status) {
          shared->history->CommitCompleted(commit, status, shared->simulator->NowUs());
          if (continue_chain && !alive.expired()) {
            (*alive.lock())->ScheduleCommitTick(0);
          }
        });
    return true;
  }

  void ScheduleCommitTick(int64_t delay_us) {
    if (commit_timer_ != kNoTimer) return;
    std::weak_ptr<MemberProgram*> alive = alive_;
    commit_timer_ = env_.clock().ScheduleAfter(delay_us, [alive] {
      if (alive.expired()) return;
      MemberProgram* self = *alive.lock();
      self->commit_timer_ = kNoTimer;
      self->CommitTick();
    });
  }

  void CommitTick() {
    if (closing_ || consumer_ == nullptr) return;
    const int64_t interval_us = shared_->options->commit_interval_us;
    const bool back_to_back = interval_us == 0;
    bool committed = false;
    if (consumer_->state() == client::GroupConsumer::State::kStable) {
      std::vector<int32_t> owned;
      for (const TopicPartition& partition : consumer_->assignment()) {
        owned.push_back(partition.partition);
      }
      committed = CommitProcessed(owned, /*continue_chain=*/back_to_back);
    }
    if (!back_to_back) {
      ScheduleCommitTick(interval_us);
    } else if (!committed) {
      ScheduleCommitTick(kBackToBackIdlePollUs);
    }
  }

  Env& env_;
  GroupWorld::Shared* shared_;
  const int index_;
  const uint64_t incarnation_;
  std::map<int32_t, int64_t> processed_;
  int commits_made_ = 0;
  std::string last_error_;
  bool closing_ = false;
  bool stats_collected_ = false;
  TimerId commit_timer_ = kNoTimer;
  std::shared_ptr<MemberProgram*> alive_;
  // Last: destroyed first.
  std::unique_ptr<client::GroupConsumer> consumer_;
};

// ---------------------------------------------------------------------------------------------
// GroupWorld

GroupWorld::GroupWorld(GroupWorldOptions options)
    : options_(std::move(options)),
      history_(std::make_unique<GroupHistory>(options_.partitions)),
      shared_(std::make_unique<Shared>()),
      simulator_([&] {
        SimulatorOptions simulator;
        simulator.seed = options_.seed;
        simulator.network = options_.network;
        simulator.echo_logs = options_.echo_logs;
        return simulator;
      }()) {
  assert(options_.member_count >= 1 && options_.member_count <= GroupWorldOptions::kMembersMax);
  assert(options_.partitions >= 1 && options_.partitions <= GroupWorldOptions::kPartitionsMax);
  shared_->options = &options_;
  shared_->history = history_.get();
  shared_->simulator = &simulator_;
  const std::string broker_name = "broker-0";
  server::BrokerSettings settings;
  settings.listen = NetworkAddress{broker_name, GroupWorldOptions::kBrokerPort};
  settings.defaults.auto_create_topics_enable = false;
  settings.groups.group_initial_rebalance_delay_ms = 0;
  settings.groups.group_min_session_timeout_ms = options_.group_min_session_timeout_ms;
  settings.groups.offsets_topic_num_partitions = options_.offsets_topic_partitions;
  shared_->bootstrap.push_back(settings.listen);
  NodeOptions broker;
  broker.name = broker_name;
  broker.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
  broker_node_ = simulator_.AddNode(broker, BrokerNodeProgram(settings));
  Shared* shared = shared_.get();
  NodeOptions producer;
  producer.name = "producer-0";
  producer.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
  producer_node_ = simulator_.AddNode(
      producer, [shared](Env& env) { return std::make_shared<ProducerProgram>(env, shared); });
  for (int i = 0; i < options_.member_count; ++i) {
    NodeOptions member;
    member.name = absl::StrCat("member-", i);
    member.clock.drift_ppm = static_cast<double>(simulator_.FaultRandom().Between(-200, 200));
    member_nodes_.push_back(simulator_.AddNode(member, [shared, i](Env& env) {
      return std::make_shared<MemberProgram>(env, shared, i, i);
    }));
  }
  if (options_.impostor_of_member >= 0) {
    assert(options_.static_members);
    assert(options_.impostor_of_member < options_.member_count);
    NodeOptions impostor;
    impostor.name = "impostor";
    const int slot = options_.member_count;
    const int instance = options_.impostor_of_member;
    impostor_node_ = simulator_.AddNode(impostor, [shared, slot, instance](Env& env) {
      return std::make_shared<MemberProgram>(env, shared, slot, instance);
    });
  }
  member_busy_.assign(static_cast<size_t>(options_.member_count), false);
  shared_->on_member_failed = [this](int member, uint64_t incarnation, const absl::Status& error) {
    OnMemberFailed(member, incarnation, error);
  };
  simulator_.SetAfterEventHook([this](NodeId) {
    history_->CheckOnline();
    CheckCoordinator();
  });
}

GroupWorld::~GroupWorld() = default;

bool GroupWorld::StartBroker() {
  Trace& trace = simulator_.trace();
  if (options_.trace_events_kept_max > 0) trace.KeepInMemory(options_.trace_events_kept_max);
  if (!options_.trace_path.empty()) {
    TraceHeader header;
    header.set_seed(options_.seed);
    header.set_source("group world");
    for (size_t i = 0; i < simulator_.node_count(); ++i) {
      header.add_node_names(simulator_.NodeName(static_cast<NodeId>(i)));
    }
    absl::Status opened = trace.OpenFile(options_.trace_path, header);
    if (!opened.ok()) history_->Violation(absl::StrCat("trace: ", opened.message()));
  }
  simulator_.StartNode(broker_node_);
  simulator_.StartNode(producer_node_);
  return simulator_.RunUntilCondition([this] { return shared_->topic_ready; },
                                      simulator_.NowUs() + options_.settle_timeout_us);
}

void GroupWorld::StartMember(int member) {
  const NodeId node = member_node(member);
  if (!simulator_.IsUp(node)) simulator_.StartNode(node);
}

void GroupWorld::LeaveMember(int member) {
  const NodeId node = member_node(member);
  auto* program = static_cast<MemberProgram*>(simulator_.NodeProgramObject(node).get());
  if (program == nullptr) return;
  const uint64_t incarnation = simulator_.Incarnation(node);
  program->CollectStats();
  program->Close([this, node, incarnation] {
    // Stop from a turn of its own, never from inside the member's callback.
    simulator_.Schedule(0, [this, node, incarnation] {
      if (simulator_.IsUp(node) && simulator_.Incarnation(node) == incarnation) {
        simulator_.StopNode(node);
        // In the settle phase every member must come back.
        if (settling_) simulator_.StartNode(node);
      }
    });
  });
}

void GroupWorld::OnMemberFailed(int member, uint64_t incarnation, const absl::Status& error) {
  const std::optional<protocol::ErrorCode> code = client::KafkaErrorCodeOf(error);
  // The impostor (the slot after the members) is fenced by design once the original comes back.
  if (member >= options_.member_count) return;
  if (!options_.static_members || code != protocol::ErrorCode::kFencedInstanceId) {
    history_->Violation(
        absl::StrCat("member-failed: member ", member, " stopped: ", error.ToString()));
    return;
  }
  // A static member whose replacement of its instance's old member id was not yet stored when
  // the coordinator crashed is fenced after the reload, as in Kafka: FENCED_INSTANCE_ID is fatal
  // and the application's supervisor restarts the process, which then takes the instance's place.
  ++result_.static_members_restarted;
  const NodeId node = member_node(member);
  simulator_.ScheduleFault(
      simulator_.NowUs() + kFencedRestartDelayUs, "member restart",
      absl::StrCat(simulator_.NodeName(node), " (fenced instance)"), [this, node, incarnation] {
        if (!simulator_.IsUp(node) || simulator_.Incarnation(node) != incarnation) {
          return;
        }
        simulator_.RestartNode(node, CrashKind::kProcess);
      });
}

void GroupWorld::CheckCoordinator() {
  auto* program = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(broker_node_).get());
  if (program == nullptr || program->node == nullptr) return;
  const group::GroupCoordinator& coordinator = program->node->groups();
  const auto seen =
      std::make_tuple(simulator_.Incarnation(broker_node_), coordinator.stats().offsets_committed,
                      coordinator.stats().records_loaded);
  if (seen == coordinator_seen_) return;
  // A partly loaded partition shows older offsets than it holds: look only when none is loading.
  for (int32_t partition = 0; partition < coordinator.offsets_topic_partitions(); ++partition) {
    if (coordinator.IsLoading(partition)) return;
  }
  coordinator_seen_ = seen;
  std::optional<group::GroupCoordinator::GroupView> view = coordinator.ViewGroup(options_.group_id);
  if (!view.has_value()) return;
  std::map<int32_t, int64_t> offsets;
  for (const auto& [key, offset] : view->offsets) {
    if (key.first == options_.topic) offsets[key.second] = offset;
  }
  history_->CoordinatorOffsets(offsets);
}

void GroupWorld::ScheduleFaults() {
  for (const GroupScheduledFault& fault : options_.faults) {
    if (fault.at_us >= options_.duration_us) continue;
    simulator_.Schedule(fault.at_us - simulator_.NowUs(), [this, fault] {
      InjectFault(fault.kind, fault.member, fault.downtime_us);
    });
  }
  const GroupFaultMix& mix = options_.fault_mix;
  if (mix.interval_us_mean <= 0) return;
  const uint64_t total_weight = uint64_t{mix.member_crash_weight} + mix.member_stall_weight +
                                mix.member_partition_weight + mix.member_leave_weight +
                                mix.broker_crash_weight + mix.broker_power_loss_weight +
                                mix.broker_stall_weight + mix.connection_reset_weight;
  if (total_weight == 0) return;
  // Fault times form a Poisson process: exponential gaps drawn from the fault stream.
  Random& random = simulator_.FaultRandom();
  int64_t at_us = simulator_.NowUs();
  for (int i = 0; i < GroupWorldOptions::kFaultsMax; ++i) {
    const double fraction = std::max(random.Fraction(), 1e-9);
    at_us += static_cast<int64_t>(-std::log(fraction) * static_cast<double>(mix.interval_us_mean));
    if (at_us >= options_.duration_us) break;
    simulator_.Schedule(at_us - simulator_.NowUs(), [this, total_weight] {
      Random& fault_random = simulator_.FaultRandom();
      const GroupFaultMix& m = options_.fault_mix;
      const uint32_t weights[] = {m.member_crash_weight,     m.member_stall_weight,
                                  m.member_partition_weight, m.member_leave_weight,
                                  m.broker_crash_weight,     m.broker_power_loss_weight,
                                  m.broker_stall_weight,     m.connection_reset_weight};
      const GroupFaultKind kinds[] = {
          GroupFaultKind::kMemberCrash,     GroupFaultKind::kMemberStall,
          GroupFaultKind::kMemberPartition, GroupFaultKind::kMemberLeave,
          GroupFaultKind::kBrokerCrash,     GroupFaultKind::kBrokerPowerLoss,
          GroupFaultKind::kBrokerStall,     GroupFaultKind::kConnectionReset};
      uint64_t pick = fault_random.Below(total_weight);
      GroupFaultKind kind = kinds[0];
      for (size_t k = 0; k < std::size(weights); ++k) {
        if (pick < weights[k]) {
          kind = kinds[k];
          break;
        }
        pick -= weights[k];
      }
      const int member =
          static_cast<int>(fault_random.Below(static_cast<uint64_t>(options_.member_count)));
      const int64_t downtime_us =
          kind == GroupFaultKind::kMemberStall || kind == GroupFaultKind::kBrokerStall
              ? fault_random.Between(m.stall_us_min, m.stall_us_max)
              : fault_random.Between(m.downtime_us_min, m.downtime_us_max);
      InjectFault(kind, member, downtime_us);
    });
  }
}

void GroupWorld::RestartMemberLater(int member, int64_t downtime_us) {
  const NodeId node = member_node(member);
  simulator_.ScheduleFault(simulator_.NowUs() + downtime_us, "member restart",
                           simulator_.NodeName(node), [this, member, node] {
                             if (settling_) return;  // the settle phase restarts every member
                             if (simulator_.IsUp(node)) {
                               // A clean leave still under way: the node stops once it is done.
                               RestartMemberLater(member, kRestartRetryUs);
                               return;
                             }
                             simulator_.StartNode(node);
                             member_busy_[static_cast<size_t>(member)] = false;
                           });
}

void GroupWorld::InjectFault(GroupFaultKind kind, int member, int64_t downtime_us) {
  const int64_t now_us = simulator_.NowUs();
  const std::string kind_name = GroupFaultKindName(kind);
  if (kind == GroupFaultKind::kConnectionReset) {
    ++result_.connection_resets;
    simulator_.ScheduleFault(now_us, kind_name, "one connection",
                             [this] { simulator_.network().ResetRandomConnection(); });
    return;
  }
  if (kind == GroupFaultKind::kBrokerStall) {
    if (broker_busy_) return;
    broker_busy_ = true;
    ++result_.broker_stalls;
    simulator_.ScheduleFault(now_us, kind_name, "broker-0", [this] {
      if (simulator_.IsUp(broker_node_)) simulator_.StallNode(broker_node_);
    });
    simulator_.ScheduleFault(now_us + downtime_us, "broker resume", "broker-0", [this] {
      if (simulator_.IsUp(broker_node_) && simulator_.IsStalled(broker_node_)) {
        simulator_.ResumeNode(broker_node_);
      }
      broker_busy_ = false;
    });
    return;
  }
  if (kind == GroupFaultKind::kBrokerCrash || kind == GroupFaultKind::kBrokerPowerLoss) {
    if (broker_busy_) return;
    broker_busy_ = true;
    ++result_.broker_crashes;
    const CrashKind crash =
        kind == GroupFaultKind::kBrokerPowerLoss ? CrashKind::kPowerLoss : CrashKind::kProcess;
    simulator_.ScheduleFault(now_us, kind_name, "broker-0",
                             [this, crash] { simulator_.CrashNode(broker_node_, crash); });
    simulator_.ScheduleFault(now_us + downtime_us, "broker restart", "broker-0", [this] {
      if (simulator_.IsUp(broker_node_)) return;  // the settle phase restarted it already
      simulator_.StartNode(broker_node_);
      broker_busy_ = false;
      auto* program = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(broker_node_).get());
      if (program == nullptr || !program->status.ok()) {
        history_->Violation(
            absl::StrCat("broker-restart: the broker did not restart: ",
                         program == nullptr ? "no program" : program->status.ToString()));
      }
    });
    return;
  }
  assert(member >= 0 && member < options_.member_count);
  if (member_busy_[static_cast<size_t>(member)]) return;
  const NodeId node = member_node(member);
  if (!simulator_.IsUp(node)) return;
  member_busy_[static_cast<size_t>(member)] = true;
  const std::string name = simulator_.NodeName(node);
  switch (kind) {
    case GroupFaultKind::kMemberCrash:
      ++result_.member_crashes;
      simulator_.ScheduleFault(now_us, kind_name, name, [this, member, node, downtime_us] {
        if (auto* program = static_cast<MemberProgram*>(simulator_.NodeProgramObject(node).get())) {
          program->CollectStats();
        }
        simulator_.CrashNode(node, CrashKind::kProcess);
        RestartMemberLater(member, downtime_us);
      });
      return;
    case GroupFaultKind::kMemberStall:
      ++result_.member_stalls;
      simulator_.ScheduleFault(now_us, kind_name, name,
                               [this, node] { simulator_.StallNode(node); });
      simulator_.ScheduleFault(now_us + downtime_us, "member resume", name, [this, member, node] {
        if (simulator_.IsUp(node) && simulator_.IsStalled(node)) simulator_.ResumeNode(node);
        member_busy_[static_cast<size_t>(member)] = false;
      });
      return;
    case GroupFaultKind::kMemberPartition:
      ++result_.member_partitions;
      simulator_.ScheduleFault(now_us, kind_name, absl::StrCat(name, " <-/-> broker-0"),
                               [this, node] {
                                 simulator_.network().Partition({node}, {broker_node_},
                                                                /*one_way=*/false);
                               });
      simulator_.ScheduleFault(now_us + downtime_us, "heal", absl::StrCat(name, " <-> broker-0"),
                               [this, member, node] {
                                 simulator_.network().SetLinkBlocked(node, broker_node_, false);
                                 simulator_.network().SetLinkBlocked(broker_node_, node, false);
                                 member_busy_[static_cast<size_t>(member)] = false;
                               });
      return;
    case GroupFaultKind::kMemberLeave:
      ++result_.member_leaves;
      simulator_.ScheduleFault(now_us, kind_name, name, [this, member, downtime_us] {
        LeaveMember(member);
        RestartMemberLater(member, downtime_us);
      });
      return;
    case GroupFaultKind::kBrokerCrash:
    case GroupFaultKind::kBrokerPowerLoss:
    case GroupFaultKind::kBrokerStall:
    case GroupFaultKind::kConnectionReset:
      break;
  }
}

bool GroupWorld::Settled() {
  auto* producer =
      static_cast<ProducerProgram*>(simulator_.NodeProgramObject(producer_node_).get());
  if (producer != nullptr && producer->records_pending() > 0) return false;
  auto* broker = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(broker_node_).get());
  if (broker == nullptr || broker->node == nullptr) return false;
  const group::GroupCoordinator& coordinator = broker->node->groups();
  std::optional<group::GroupCoordinator::GroupView> view = coordinator.ViewGroup(options_.group_id);
  if (!view.has_value() || view->state != group::GroupState::kStable) return false;
  for (int i = 0; i < options_.member_count; ++i) {
    const NodeId node = member_node(i);
    if (!simulator_.IsUp(node) || simulator_.IsStalled(node)) return false;
    auto* program = static_cast<MemberProgram*>(simulator_.NodeProgramObject(node).get());
    if (program == nullptr || program->consumer() == nullptr || program->closing()) return false;
    const client::GroupConsumer& consumer = *program->consumer();
    if (consumer.state() != client::GroupConsumer::State::kStable ||
        consumer.generation_id() != view->generation) {
      return false;
    }
  }
  for (int32_t partition = 0; partition < options_.partitions; ++partition) {
    const storage::PartitionLog* log = broker->node->topics().Find(options_.topic, partition);
    // A failed log is offline (ServableError): its group cannot catch up until a restart.
    if (log == nullptr || server::ServableError(*log).has_value()) return false;
    const int64_t high_watermark = server::HighWatermark(*log);
    auto committed = view->offsets.find({options_.topic, partition});
    const int64_t committed_offset = committed == view->offsets.end() ? 0 : committed->second;
    if (committed_offset != high_watermark) return false;
  }
  return true;
}

std::string GroupWorld::DescribeState() {
  std::string text;
  auto* broker = static_cast<BrokerProgram*>(simulator_.NodeProgramObject(broker_node_).get());
  std::optional<group::GroupCoordinator::GroupView> view;
  if (broker == nullptr || broker->node == nullptr) {
    absl::StrAppend(&text, "broker down");
  } else {
    view = broker->node->groups().ViewGroup(options_.group_id);
    if (!view.has_value()) {
      absl::StrAppend(&text, "group unknown to the coordinator");
    } else {
      absl::StrAppend(&text, "group ", group::GroupStateName(view->state), " generation ",
                      view->generation, " members [", absl::StrJoin(view->member_ids, ","), "]");
      std::vector<std::string> behind;
      for (int32_t partition = 0; partition < options_.partitions; ++partition) {
        const storage::PartitionLog* log = broker->node->topics().Find(options_.topic, partition);
        if (log == nullptr) continue;
        if (server::ServableError(*log).has_value()) {
          behind.push_back(absl::StrCat(partition, ":offline"));
          continue;
        }
        auto committed = view->offsets.find({options_.topic, partition});
        const int64_t offset = committed == view->offsets.end() ? 0 : committed->second;
        if (offset != server::HighWatermark(*log)) {
          behind.push_back(absl::StrCat(partition, ":", offset, "/", server::HighWatermark(*log)));
        }
      }
      absl::StrAppend(&text, "; committed behind the end: [", absl::StrJoin(behind, " "), "]");
    }
  }
  for (int i = 0; i < options_.member_count; ++i) {
    const NodeId node = member_node(i);
    auto* program = static_cast<MemberProgram*>(simulator_.NodeProgramObject(node).get());
    absl::StrAppend(&text, "; member-", i, ": ");
    if (program == nullptr || program->consumer() == nullptr) {
      absl::StrAppend(&text, simulator_.IsUp(node) ? "no consumer" : "down");
      continue;
    }
    const client::GroupConsumer& consumer = *program->consumer();
    static constexpr const char* kStateNames[] = {"joining", "stable", "closing", "closed",
                                                  "failed"};
    absl::StrAppend(&text, kStateNames[static_cast<int>(consumer.state())], " generation ",
                    consumer.generation_id(), " id ", consumer.member_id(), " owns ",
                    consumer.assignment().size(), program->closing() ? " (closing)" : "");
    if (!program->last_error().empty())
      absl::StrAppend(&text, " after error ", program->last_error());
  }
  return text;
}

GroupWorldResult GroupWorld::Run() {
  if (!StartBroker()) {
    history_->Violation("stuck: the topic was not created");
    return Finish();
  }
  for (int i = 0; i < options_.member_count; ++i) {
    if (options_.member_start_interval_us > 0 && i > 0) {
      simulator_.ScheduleFault(simulator_.NowUs() + i * options_.member_start_interval_us,
                               "member start", simulator_.NodeName(member_node(i)),
                               [this, i] { StartMember(i); });
    } else {
      StartMember(i);
    }
  }
  if (impostor_node_ >= 0) {
    simulator_.ScheduleFault(options_.impostor_start_us, "impostor start",
                             absl::StrCat("instance member-", options_.impostor_of_member),
                             [this] { simulator_.StartNode(impostor_node_); });
  }
  ScheduleFaults();
  simulator_.RunUntil(options_.duration_us);
  return Finish();
}

GroupWorldResult GroupWorld::Finish() {
  // Stop the producer, end every fault: heal, resume, restart.
  if (auto* producer =
          static_cast<ProducerProgram*>(simulator_.NodeProgramObject(producer_node_).get())) {
    producer->Stop();
    result_.records_sent = producer->records_sent();
  }
  simulator_.network().HealAll();
  if (!simulator_.IsUp(broker_node_)) simulator_.StartNode(broker_node_);
  if (simulator_.IsStalled(broker_node_)) simulator_.ResumeNode(broker_node_);
  for (int i = 0; i < options_.member_count; ++i) {
    const NodeId node = member_node(i);
    if (simulator_.IsUp(node) && simulator_.IsStalled(node)) simulator_.ResumeNode(node);
    if (!simulator_.IsUp(node)) simulator_.StartNode(node);
  }
  // Faults still scheduled must not fire during the settle phase.
  for (size_t i = 0; i < member_busy_.size(); ++i) member_busy_[i] = true;
  broker_busy_ = true;
  settling_ = true;
  result_.settled = simulator_.RunUntilCondition([this] { return Settled(); },
                                                 simulator_.NowUs() + options_.settle_timeout_us);
  if (!result_.settled) {
    history_->Violation(absl::StrCat("stuck: the group did not settle within ",
                                     options_.settle_timeout_us,
                                     " us after the faults ended: ", DescribeState()));
  }
  history_->CheckOnline();
  history_->CheckFinal();
  for (int i = 0; i < options_.member_count; ++i) CollectMemberStats(i);

  Trace& trace = simulator_.trace();
  absl::Status closed = trace.CloseFile();
  if (!closed.ok()) history_->Violation(absl::StrCat("trace: ", closed.message()));
  result_.simulated_us = simulator_.NowUs();
  result_.events = simulator_.events_processed();
  result_.trace_events = trace.event_count();
  result_.digest = trace.DigestHex();
  result_.generations = history_->generations();
  result_.generation_last = history_->generation_last();
  result_.member_rebalances = shared_->member_rebalances;
  result_.generations_lost = shared_->generations_lost;
  result_.commits_ok = history_->commits_ok();
  result_.commits_failed = history_->commits_failed();
  result_.fenced_commits_refused = history_->fenced_commits_refused();
  result_.records_acked = history_->records_acked();
  result_.records_delivered = history_->records_delivered();
  result_.records_redelivered = history_->records_redelivered();
  result_.violations = history_->violations();
  if (history_->violation_count() > history_->violations().size()) {
    result_.violations.push_back(
        absl::StrCat("... and ", history_->violation_count() - history_->violations().size(),
                     " more violations"));
  }
  return result_;
}

void GroupWorld::CollectMemberStats(int member) {
  auto* program =
      static_cast<MemberProgram*>(simulator_.NodeProgramObject(member_node(member)).get());
  if (program != nullptr) program->CollectStats();
}

}  // namespace runnel::sim
