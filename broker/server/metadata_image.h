// The metadata image: an immutable snapshot of cluster metadata (brokers, topics, partitions and
// their leaders, replicas and ISRs, topic config overrides), and MetadataDelta, the one way to make
// a new image from an old one.
//
// Today a single node builds its own image (TopicManager persists the topic part itself); later a
// Raft controller quorum will replicate the deltas and every node will apply them in the same
// order. That is why the image is a value: readers keep the image they started with while a new one
// is built, and no change is visible until a whole delta is applied.
//
// Contract:
// - A MetadataImage never changes after it is built. Copies share one immutable state, so copying
//   is cheap (one reference count) and an image may be kept as long as anyone likes.
// - Everything that is iterated is ordered: brokers by node id, topics by name, partitions by
//   number, replica and ISR lists in assignment order, configs by name. Two nodes applying the same
//   deltas hold equal images and print them identically.
// - MetadataDelta validates every change against the image as changed so far, and leaves the delta
//   unchanged when it refuses one. Building costs a copy of the base image's maps (O(topics +
//   partitions)) per delta, fine at kTopicsMax topics and the rate at which topics change.
// - Single node: CreateTopic makes `leader` the leader of every partition at leader epoch 0, with
//   replicas = ISR = {leader}. A controller will assign replicas itself.
#ifndef RUNNEL_BROKER_SERVER_METADATA_IMAGE_H_
#define RUNNEL_BROKER_SERVER_METADATA_IMAGE_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/env/random.h"
#include "broker/server/topic_config.h"

namespace runnel::server {

inline constexpr size_t kTopicIdBytes = 16;
// The most brokers an image lists.
inline constexpr size_t kBrokersMax = 1024;
// The longest broker host name and rack id accepted.
inline constexpr size_t kBrokerHostLengthMax = 255;
inline constexpr size_t kBrokerRackLengthMax = 255;

// A topic's 16-byte id (Kafka's topic UUID). Ids are never reused, so a topic deleted and created
// again under the same name is told apart from its predecessor.
struct TopicId {
  std::array<uint8_t, kTopicIdBytes> bytes{};

  // A fresh id drawn from the node's Random (never the OS or a clock), so a simulated run replays
  // it. Shaped like Java's UUID.randomUUID (version 4, IETF variant); never zero, and, as Kafka
  // requires, its text form never starts with '-'.
  static TopicId Generate(Random& random);
  bool IsZero() const;
  // Kafka's text form: URL-safe base64 without padding, 22 characters.
  std::string ToString() const;

  friend bool operator==(const TopicId&, const TopicId&) = default;
  friend auto operator<=>(const TopicId&, const TopicId&) = default;
};

struct BrokerInfo {
  NodeId node_id = 0;
  std::string host;
  uint16_t port = 0;
  std::optional<std::string> rack;

  friend bool operator==(const BrokerInfo&, const BrokerInfo&) = default;
};

struct PartitionInfo {
  int32_t partition = 0;
  NodeId leader = 0;
  int32_t leader_epoch = 0;
  std::vector<NodeId> replicas;
  std::vector<NodeId> isr;

  friend bool operator==(const PartitionInfo&, const PartitionInfo&) = default;
};

struct TopicInfo {
  std::string name;
  TopicId id;
  // partitions[i].partition == i.
  std::vector<PartitionInfo> partitions;
  // Canonical overrides (topic_config.h); the broker defaults fill in the rest.
  TopicConfigOverrides configs;

  int32_t partition_count() const { return static_cast<int32_t>(partitions.size()); }

  friend bool operator==(const TopicInfo&, const TopicInfo&) = default;
};

class MetadataImage {
 public:
  // The empty image: no brokers, no topics.
  MetadataImage();

  const std::map<NodeId, BrokerInfo>& brokers() const;
  // Ordered by name; std::less<> allows lookups by string_view.
  const std::map<std::string, TopicInfo, std::less<>>& topics() const;
  // nullptr when absent.
  const BrokerInfo* FindBroker(NodeId node) const;
  const TopicInfo* FindTopic(absl::string_view name) const;
  const TopicInfo* FindTopicById(const TopicId& id) const;
  const PartitionInfo* FindPartition(absl::string_view topic, int32_t partition) const;
  // Partitions of all topics together.
  int64_t partition_count_total() const;

  friend bool operator==(const MetadataImage& a, const MetadataImage& b);

 private:
  friend class MetadataDelta;
  struct State;
  explicit MetadataImage(std::shared_ptr<const State> state);

  std::shared_ptr<const State> state_;
};

// Changes to an image; Build() makes the new image. Every change is checked at once:
// kInvalidArgument (with a TopicRequestError: bad name or collision, partition count, config),
// kAlreadyExists (a topic of that name, or that id, exists), kNotFound (no such topic),
// kResourceExhausted (kTopicsMax, kPartitionsTotalMax or kBrokersMax would be exceeded).
class MetadataDelta {
 public:
  explicit MetadataDelta(const MetadataImage& base);
  ~MetadataDelta();

  // Adds the broker, or replaces the registration of the same node id (a restart may change its
  // address). Node ids are non-negative; the host is non-empty.
  absl::Status RegisterBroker(BrokerInfo broker);
  // Adds a topic of `partition_count` partitions (1..kPartitionsPerTopicMax) led by `leader` (see
  // the file comment). `configs` are canonicalized. `id` must be non-zero and unused.
  absl::Status CreateTopic(std::string name, TopicId id, int32_t partition_count,
                           const TopicConfigOverrides& configs, NodeId leader);
  absl::Status DeleteTopic(absl::string_view name);
  // Replaces the topic's overrides (canonicalized).
  absl::Status AlterTopicConfigs(absl::string_view name, const TopicConfigOverrides& configs);

  // The image with every accepted change. The delta may go on being used afterwards.
  MetadataImage Build() const;

 private:
  std::shared_ptr<MetadataImage::State> state_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_METADATA_IMAGE_H_
