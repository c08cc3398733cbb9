#include "broker/client/cluster_metadata.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/client/kafka_error.h"

namespace runnel::client {

namespace {
constexpr int64_t kUsPerMs = 1000;
}  // namespace

ClusterMetadata::ClusterMetadata(Env& env, ClientOptions options)
    : env_(env), options_(std::move(options)), alive_(std::make_shared<ClusterMetadata*>(this)) {}

ClusterMetadata::~ClusterMetadata() {
  alive_.reset();
  if (update_timer_ != kNoTimer) env_.clock().CancelTimer(update_timer_);
}

absl::Status ClusterMetadata::AddTopic(const std::string& topic) {
  if (tracked_topics_.contains(topic)) return absl::OkStatus();
  if (tracked_topics_.size() >= kTrackedTopicsMax) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the client already tracks ", tracked_topics_.size(),
                     " topics (kTrackedTopicsMax)"));
  }
  tracked_topics_.insert(topic);
  RequestUpdate();
  return absl::OkStatus();
}

void ClusterMetadata::RequestUpdate() {
  update_wanted_ = true;
  if (update_in_flight_) return;
  const int64_t now_us = env_.clock().MonotonicNowUs();
  int64_t at_us = now_us;
  if (last_update_start_us_ >= 0) {
    const int64_t gap_ms =
        update_failures_ > 0
            ? BackoffMs(update_failures_ - 1, options_.retry_backoff_ms,
                        options_.retry_backoff_ms_max, env_.random())
            : options_.retry_backoff_ms;
    at_us = std::max(now_us, last_update_start_us_ + gap_ms * kUsPerMs);
  }
  ScheduleUpdate(at_us);
}

void ClusterMetadata::AwaitUpdate(absl::AnyInvocable<void(const absl::Status&)> done) {
  if (waiters_.size() >= kUpdateWaitersMax) {
    std::weak_ptr<ClusterMetadata*> alive = alive_;
    env_.clock().ScheduleAfter(0, [alive, done = std::move(done)]() mutable {
      if (alive.expired()) return;
      done(absl::ResourceExhaustedError("too many callbacks wait for a metadata update"));
    });
    return;
  }
  waiters_.push_back(std::move(done));
  RequestUpdate();
}

void ClusterMetadata::ScheduleUpdate(int64_t at_us) {
  if (update_timer_ != kNoTimer) {
    if (update_timer_at_us_ <= at_us) return;
    env_.clock().CancelTimer(update_timer_);
  }
  std::weak_ptr<ClusterMetadata*> alive = alive_;
  update_timer_at_us_ = at_us;
  update_timer_ = env_.clock().ScheduleAfter(at_us - env_.clock().MonotonicNowUs(), [alive] {
    if (alive.expired()) return;
    ClusterMetadata* self = *alive.lock();
    self->update_timer_ = kNoTimer;
    self->StartUpdate();
  });
}

void ClusterMetadata::StartUpdate() {
  if (update_in_flight_) {
    update_wanted_ = true;
    return;
  }
  update_in_flight_ = true;
  update_wanted_ = false;
  last_update_start_us_ = env_.clock().MonotonicNowUs();
  ++stats_.updates_started;
  protocol::MetadataRequest request;
  request.topics.emplace();
  for (const std::string& topic : tracked_topics_) request.topics->push_back({topic});
  request.allow_auto_topic_creation = options_.allow_auto_topic_creation;
  std::weak_ptr<ClusterMetadata*> alive = alive_;
  SendToAny(std::move(request), [alive](absl::StatusOr<ApiResponse> response) {
    if (alive.expired()) return;
    ClusterMetadata* self = *alive.lock();
    absl::StatusOr<protocol::MetadataResponse> metadata =
        TakeResponse<protocol::MetadataResponse>(std::move(response));
    if (metadata.ok()) self->Apply(*metadata);
    self->FinishUpdate(metadata.status());
  });
}

void ClusterMetadata::FinishUpdate(const absl::Status& status) {
  update_in_flight_ = false;
  const int64_t now_us = env_.clock().MonotonicNowUs();
  if (status.ok()) {
    update_failures_ = 0;
    ++stats_.updates_completed;
    if (update_wanted_) {
      ScheduleUpdate(now_us + options_.retry_backoff_ms * kUsPerMs);
    } else {
      ScheduleUpdate(now_us + options_.metadata_max_age_ms * kUsPerMs);
    }
  } else {
    ++stats_.updates_failed;
    env_.Log(LogLevel::kDebug, absl::StrCat("client: metadata update failed: ", status.message()));
    ScheduleUpdate(now_us + BackoffMs(update_failures_, options_.retry_backoff_ms,
                                      options_.retry_backoff_ms_max, env_.random()) *
                                kUsPerMs);
    ++update_failures_;
    update_wanted_ = true;
  }
  std::weak_ptr<ClusterMetadata*> alive = alive_;
  if (status.ok() && on_update_) {
    on_update_();
    if (alive.expired()) return;
  }
  std::vector<absl::AnyInvocable<void(const absl::Status&)>> waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& waiter : waiters) {
    if (alive.expired()) return;
    waiter(status);
  }
}

void ClusterMetadata::Apply(const protocol::MetadataResponse& response) {
  std::map<int32_t, BrokerMetadata> brokers;
  for (const auto& broker : response.brokers) {
    if (broker.port <= 0 || broker.port > 65535) continue;
    brokers[broker.node_id] = BrokerMetadata{
        .node_id = broker.node_id,
        .address = NetworkAddress{broker.host, static_cast<uint16_t>(broker.port)},
        .rack = broker.rack,
    };
  }
  // Connections whose broker moved are closed on a later turn, so that the requests they fail are
  // not reported from inside this update.
  for (auto it = connections_.begin(); it != connections_.end();) {
    auto broker = brokers.find(it->first);
    if (broker != brokers.end() && broker->second.address != it->second->address()) {
      std::shared_ptr<BrokerConnection> retired(std::move(it->second));
      it = connections_.erase(it);
      std::weak_ptr<ClusterMetadata*> alive = alive_;
      env_.clock().ScheduleAfter(0, [alive, retired] {
        if (!alive.expired()) retired->Close();
      });
    } else {
      ++it;
    }
  }
  if (!brokers.empty()) brokers_ = std::move(brokers);
  controller_id_ = response.controller_id;
  cluster_id_ = response.cluster_id;
  for (const auto& topic : response.topics) {
    TopicMetadata metadata;
    metadata.name = topic.name;
    metadata.error_code = topic.error_code;
    metadata.internal = topic.is_internal;
    for (const auto& partition : topic.partitions) {
      metadata.partitions.push_back(PartitionMetadata{
          .partition = partition.partition_index,
          .error_code = partition.error_code,
          .leader_id = partition.leader_id,
          .leader_epoch = partition.leader_epoch,
          .replicas = partition.replica_nodes,
          .isr = partition.isr_nodes,
          .offline_replicas = partition.offline_replicas,
      });
    }
    std::stable_sort(metadata.partitions.begin(), metadata.partitions.end(),
                     [](const PartitionMetadata& a, const PartitionMetadata& b) {
                       return a.partition < b.partition;
                     });
    topics_[topic.name] = std::move(metadata);
  }
}

const TopicMetadata* ClusterMetadata::FindTopic(const std::string& topic) const {
  auto it = topics_.find(topic);
  return it == topics_.end() ? nullptr : &it->second;
}

std::optional<int32_t> ClusterMetadata::PartitionCount(const std::string& topic) const {
  const TopicMetadata* metadata = FindTopic(topic);
  if (metadata == nullptr || metadata->error_code != 0 || metadata->partitions.empty()) {
    return std::nullopt;
  }
  return static_cast<int32_t>(metadata->partitions.size());
}

std::optional<int32_t> ClusterMetadata::LeaderFor(const TopicPartition& partition) const {
  const TopicMetadata* metadata = FindTopic(partition.topic);
  if (metadata == nullptr || metadata->error_code != 0) return std::nullopt;
  for (const PartitionMetadata& candidate : metadata->partitions) {
    if (candidate.partition != partition.partition) continue;
    if (candidate.leader_id < 0) return std::nullopt;
    if (!brokers_.contains(candidate.leader_id)) return std::nullopt;
    return candidate.leader_id;
  }
  return std::nullopt;
}

BrokerConnection* ClusterMetadata::ConnectionToNode(int32_t node_id) {
  auto existing = connections_.find(node_id);
  if (existing != connections_.end()) return existing->second.get();
  auto broker = brokers_.find(node_id);
  if (broker == brokers_.end()) return nullptr;
  auto connection = std::make_unique<BrokerConnection>(env_, broker->second.address, options_,
                                                       absl::StrCat("broker ", node_id));
  BrokerConnection* raw = connection.get();
  connections_[node_id] = std::move(connection);
  return raw;
}

BrokerConnection& ClusterMetadata::BootstrapConnection(size_t index) {
  if (bootstrap_connections_.size() < options_.bootstrap_servers.size()) {
    bootstrap_connections_.resize(options_.bootstrap_servers.size());
  }
  std::unique_ptr<BrokerConnection>& connection = bootstrap_connections_[index];
  if (connection == nullptr) {
    connection = std::make_unique<BrokerConnection>(
        env_, options_.bootstrap_servers[index], options_,
        absl::StrCat("bootstrap server ", options_.bootstrap_servers[index].ToString()));
  }
  return *connection;
}

BrokerConnection& ClusterMetadata::AnyConnection() {
  // The least loaded ready connection; known brokers first, in id order.
  BrokerConnection* best = nullptr;
  BrokerConnection* in_progress = nullptr;
  auto consider = [&](BrokerConnection* connection) {
    if (connection == nullptr) return;
    if (connection->ready()) {
      if (best == nullptr || connection->pending_count() < best->pending_count()) {
        best = connection;
      }
    } else if (connection->state() != BrokerConnection::State::kDisconnected &&
               in_progress == nullptr) {
      in_progress = connection;
    }
  };
  for (const auto& [node_id, connection] : connections_) {
    if (brokers_.contains(node_id)) consider(connection.get());
  }
  for (const std::unique_ptr<BrokerConnection>& connection : bootstrap_connections_) {
    consider(connection.get());
  }
  if (best != nullptr) return *best;
  if (in_progress != nullptr) return *in_progress;
  // Nothing is up or on its way up: take the next candidate in turn.
  const size_t candidates = brokers_.size() + options_.bootstrap_servers.size();
  const size_t pick = any_cursor_++ % candidates;
  if (pick < brokers_.size()) {
    auto broker = brokers_.begin();
    std::advance(broker, static_cast<ptrdiff_t>(pick));
    return *ConnectionToNode(broker->first);
  }
  return BootstrapConnection(pick - brokers_.size());
}

void ClusterMetadata::SendToAny(protocol::RequestBody request, ResponseCallback callback,
                                RequestOptions options) {
  AnyConnection().Send(std::move(request), std::move(callback), options);
}

}  // namespace runnel::client
