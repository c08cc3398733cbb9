#include "broker/server/metadata_image.h"

#include <cassert>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace runnel::server {

// ---------------------------------------------------------------------------------------------
// TopicId.

TopicId TopicId::Generate(Random& random) {
  TopicId id;
  for (size_t half = 0; half < 2; ++half) {
    uint64_t bits = random.Next64();
    for (size_t i = 0; i < 8; ++i) {
      id.bytes[half * 8 + 7 - i] = static_cast<uint8_t>(bits & 0xff);
      bits >>= 8;
    }
  }
  // Version 4 and the IETF variant, as java.util.UUID.randomUUID() sets them; the version bits also
  // make the id non-zero.
  id.bytes[6] = static_cast<uint8_t>((id.bytes[6] & 0x0f) | 0x40);
  id.bytes[8] = static_cast<uint8_t>((id.bytes[8] & 0x3f) | 0x80);
  // The text form starts with '-' (base64 digit 62) when the top six bits are 62; Kafka avoids
  // such ids because command-line tools read them as options. Clearing the top bit avoids it.
  if ((id.bytes[0] >> 2) == 62) id.bytes[0] = static_cast<uint8_t>(id.bytes[0] & 0x7f);
  assert(!id.IsZero());
  return id;
}

bool TopicId::IsZero() const {
  for (uint8_t byte : bytes) {
    if (byte != 0) return false;
  }
  return true;
}

std::string TopicId::ToString() const {
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// ---------------------------------------------------------------------------------------------
// MetadataImage.

struct MetadataImage::State {
  std::map<NodeId, BrokerInfo> brokers;
  std::map<std::string, TopicInfo, std::less<>> topics;
  // Topic id -> name, for FindTopicById and the uniqueness of ids.
  std::map<TopicId, std::string> names_by_id;
  int64_t partition_count_total = 0;
};

MetadataImage::MetadataImage() : state_(std::make_shared<const State>()) {}

MetadataImage::MetadataImage(std::shared_ptr<const State> state) : state_(std::move(state)) {}

const std::map<NodeId, BrokerInfo>& MetadataImage::brokers() const { return state_->brokers; }

const std::map<std::string, TopicInfo, std::less<>>& MetadataImage::topics() const {
  return state_->topics;
}

const BrokerInfo* MetadataImage::FindBroker(NodeId node) const {
  auto it = state_->brokers.find(node);
  return it == state_->brokers.end() ? nullptr : &it->second;
}

const TopicInfo* MetadataImage::FindTopic(absl::string_view name) const {
  auto it = state_->topics.find(name);
  return it == state_->topics.end() ? nullptr : &it->second;
}

const TopicInfo* MetadataImage::FindTopicById(const TopicId& id) const {
  auto it = state_->names_by_id.find(id);
  return it == state_->names_by_id.end() ? nullptr : FindTopic(it->second);
}

const PartitionInfo* MetadataImage::FindPartition(absl::string_view topic,
                                                  int32_t partition) const {
  const TopicInfo* info = FindTopic(topic);
  if (info == nullptr || partition < 0 || partition >= info->partition_count()) return nullptr;
  return &info->partitions[static_cast<size_t>(partition)];
}

int64_t MetadataImage::partition_count_total() const { return state_->partition_count_total; }

bool operator==(const MetadataImage& a, const MetadataImage& b) {
  if (a.state_ == b.state_) return true;
  return a.state_->brokers == b.state_->brokers && a.state_->topics == b.state_->topics;
}

// ---------------------------------------------------------------------------------------------
// MetadataDelta.

MetadataDelta::MetadataDelta(const MetadataImage& base)
    : state_(std::make_shared<MetadataImage::State>(*base.state_)) {}

MetadataDelta::~MetadataDelta() = default;

absl::Status MetadataDelta::RegisterBroker(BrokerInfo broker) {
  if (broker.node_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("broker node id ", broker.node_id, " is negative"));
  }
  if (broker.host.empty() || broker.host.size() > kBrokerHostLengthMax) {
    return absl::InvalidArgumentError(absl::StrCat("broker ", broker.node_id, " host '",
                                                   broker.host.substr(0, 40), "' must have 1 to ",
                                                   kBrokerHostLengthMax, " characters"));
  }
  if (broker.rack.has_value() && broker.rack->size() > kBrokerRackLengthMax) {
    return absl::InvalidArgumentError(absl::StrCat("broker ", broker.node_id, " rack is longer than ",
                                                   kBrokerRackLengthMax, " characters"));
  }
  if (state_->brokers.size() >= kBrokersMax && !state_->brokers.contains(broker.node_id)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot register broker ", broker.node_id, ": ", kBrokersMax,
                     " brokers are registered already"));
  }
  const NodeId node = broker.node_id;
  state_->brokers[node] = std::move(broker);
  return absl::OkStatus();
}

absl::Status MetadataDelta::CreateTopic(std::string name, TopicId id, int32_t partition_count,
                                        const TopicConfigOverrides& configs, NodeId leader) {
  if (absl::Status valid = ValidateTopicName(name); !valid.ok()) return valid;
  if (state_->topics.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("topic '", name, "' already exists"));
  }
  // Names of equal length are the only candidates for a collision; the scan is linear, which is
  // fine at the rate topics are created.
  for (const auto& [existing, info] : state_->topics) {
    if (TopicNamesCollide(existing, name)) {
      return TopicRequestErrorStatus(
          TopicRequestError::kInvalidTopicName,
          absl::StrCat("topic name '", name, "' collides with existing topic '", existing,
                       "': '.' and '_' are the same character in Kafka's metric names"));
    }
  }
  if (partition_count < 1 || partition_count > kPartitionsPerTopicMax) {
    return TopicRequestErrorStatus(
        TopicRequestError::kInvalidPartitions,
        absl::StrCat("topic '", name, "': partition count ", partition_count,
                     " must be between 1 and ", kPartitionsPerTopicMax));
  }
  if (id.IsZero()) {
    return absl::InvalidArgumentError(absl::StrCat("topic '", name, "': the topic id is zero"));
  }
  if (state_->names_by_id.contains(id)) {
    return absl::AlreadyExistsError(absl::StrCat("topic '", name, "': topic id ", id.ToString(),
                                                 " is already used by topic '",
                                                 state_->names_by_id[id], "'"));
  }
  if (leader < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic '", name, "': leader node id ", leader, " is negative"));
  }
  if (static_cast<int64_t>(state_->topics.size()) >= kTopicsMax) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create topic '", name, "': ", kTopicsMax, " topics exist already"));
  }
  if (state_->partition_count_total + partition_count > kPartitionsTotalMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot create topic '", name, "' with ", partition_count, " partitions: ",
        state_->partition_count_total, " of at most ", kPartitionsTotalMax, " partitions exist"));
  }
  absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(configs);
  if (!canonical.ok()) return canonical.status();

  TopicInfo info;
  info.name = name;
  info.id = id;
  info.configs = *std::move(canonical);
  info.partitions.reserve(static_cast<size_t>(partition_count));
  for (int32_t partition = 0; partition < partition_count; ++partition) {
    info.partitions.push_back(PartitionInfo{.partition = partition,
                                            .leader = leader,
                                            .leader_epoch = 0,
                                            .replicas = {leader},
                                            .isr = {leader}});
  }
  state_->names_by_id.emplace(id, name);
  state_->partition_count_total += partition_count;
  state_->topics.emplace(std::move(name), std::move(info));
  return absl::OkStatus();
}

absl::Status MetadataDelta::DeleteTopic(absl::string_view name) {
  auto it = state_->topics.find(name);
  if (it == state_->topics.end()) {
    return absl::NotFoundError(absl::StrCat("topic '", name, "' does not exist"));
  }
  state_->partition_count_total -= it->second.partition_count();
  state_->names_by_id.erase(it->second.id);
  state_->topics.erase(it);
  assert(state_->partition_count_total >= 0);
  return absl::OkStatus();
}

absl::Status MetadataDelta::AlterTopicConfigs(absl::string_view name,
                                              const TopicConfigOverrides& configs) {
  auto it = state_->topics.find(name);
  if (it == state_->topics.end()) {
    return absl::NotFoundError(absl::StrCat("topic '", name, "' does not exist"));
  }
  absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(configs);
  if (!canonical.ok()) return canonical.status();
  it->second.configs = *std::move(canonical);
  return absl::OkStatus();
}

MetadataImage MetadataDelta::Build() const {
  return MetadataImage(std::make_shared<const MetadataImage::State>(*state_));
}

}  // namespace runnel::server
