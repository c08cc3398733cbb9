// Tests of the metadata image (broker/server/metadata_image.h) and the node's metadata file
// (broker/server/metadata_file.h): deltas build new images without touching old ones, every
// validation rule refuses with the right code and leaves the delta unchanged, the single-node
// partition assignment, limits, topic ids drawn deterministically from a seeded Random, and the
// file format's round trip and detection of every single-bit flip and truncation.
#include "broker/server/metadata_image.h"

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/env/random.h"
#include "broker/server/metadata_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runnel::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TopicId IdOf(uint8_t value) {
  TopicId id;
  id.bytes.fill(value);
  return id;
}

// A topic created on a single node: leader and the only replica is that node, epoch 0; the image
// finds it by name, id and partition, and counts its partitions.
TEST(MetadataImageTest, CreateTopicSingleNode) {
  const MetadataImage empty;
  EXPECT_TRUE(empty.topics().empty());
  EXPECT_TRUE(empty.brokers().empty());
  MetadataDelta delta(empty);
  ASSERT_TRUE(delta.CreateTopic("orders", IdOf(1), 3, {{"retention.ms", "0100"}}, 7).ok());
  const MetadataImage image = delta.Build();
  const TopicInfo* topic = image.FindTopic("orders");
  ASSERT_NE(topic, nullptr);
  EXPECT_EQ(topic->id, IdOf(1));
  EXPECT_EQ(topic->partition_count(), 3);
  EXPECT_EQ(topic->configs.at("retention.ms"), "100");  // canonical
  for (int32_t p = 0; p < 3; ++p) {
    const PartitionInfo* partition = image.FindPartition("orders", p);
    ASSERT_NE(partition, nullptr);
    EXPECT_EQ(partition->partition, p);
    EXPECT_EQ(partition->leader, 7);
    EXPECT_EQ(partition->leader_epoch, 0);
    EXPECT_THAT(partition->replicas, ElementsAre(7));
    EXPECT_THAT(partition->isr, ElementsAre(7));
  }
  EXPECT_EQ(image.FindPartition("orders", 3), nullptr);
  EXPECT_EQ(image.FindPartition("orders", -1), nullptr);
  EXPECT_EQ(image.FindTopicById(IdOf(1)), topic);
  EXPECT_EQ(image.FindTopicById(IdOf(2)), nullptr);
  EXPECT_EQ(image.partition_count_total(), 3);
  // The old image is untouched.
  EXPECT_TRUE(empty.topics().empty());
}

// Images are values: a delta's later changes reach neither the base nor an image built earlier.
TEST(MetadataImageTest, ImagesNeverChange) {
  MetadataDelta first(MetadataImage{});
  ASSERT_TRUE(first.CreateTopic("a", IdOf(1), 1, {}, 0).ok());
  const MetadataImage one = first.Build();
  ASSERT_TRUE(first.CreateTopic("b", IdOf(2), 1, {}, 0).ok());
  const MetadataImage two = first.Build();
  EXPECT_EQ(one.topics().size(), 1u);
  EXPECT_EQ(two.topics().size(), 2u);
  MetadataDelta second(two);
  ASSERT_TRUE(second.DeleteTopic("a").ok());
  ASSERT_TRUE(second.AlterTopicConfigs("b", {{"segment.ms", "1000"}}).ok());
  const MetadataImage three = second.Build();
  EXPECT_NE(two.FindTopic("a"), nullptr);
  EXPECT_TRUE(two.FindTopic("b")->configs.empty());
  EXPECT_EQ(three.FindTopic("a"), nullptr);
  EXPECT_EQ(three.FindTopicById(IdOf(1)), nullptr);
  EXPECT_EQ(three.FindTopic("b")->configs.at("segment.ms"), "1000");
  EXPECT_EQ(three.partition_count_total(), 1);
  const MetadataImage copy = three;
  EXPECT_TRUE(copy == three);
  EXPECT_FALSE(copy == two);
}

// Each refused change names its reason, carries the right code (and error kind), and leaves the
// delta as it was.
TEST(MetadataImageTest, ValidationRefusesAndLeavesDeltaUnchanged) {
  MetadataDelta delta(MetadataImage{});
  ASSERT_TRUE(delta.CreateTopic("a.b", IdOf(1), 2, {}, 0).ok());
  const MetadataImage before = delta.Build();

  absl::Status status = delta.CreateTopic("a.b", IdOf(2), 1, {}, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(status.message(), HasSubstr("'a.b' already exists"));
  status = delta.CreateTopic("a_b", IdOf(2), 1, {}, 0);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidTopicName);
  EXPECT_THAT(status.message(), HasSubstr("collides with existing topic 'a.b'"));
  status = delta.CreateTopic("bad name", IdOf(2), 1, {}, 0);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidTopicName);
  for (int32_t count : {0, -1, kPartitionsPerTopicMax + 1}) {
    status = delta.CreateTopic("c", IdOf(2), count, {}, 0);
    EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidPartitions) << count;
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("partition count ", count)));
  }
  status = delta.CreateTopic("c", TopicId{}, 1, {}, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  status = delta.CreateTopic("c", IdOf(1), 1, {}, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(status.message(), HasSubstr("already used by topic 'a.b'"));
  status = delta.CreateTopic("c", IdOf(2), 1, {{"retention.ms", "forever"}}, 0);
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  status = delta.CreateTopic("c", IdOf(2), 1, {}, -1);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(delta.DeleteTopic("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(delta.AlterTopicConfigs("nope", {}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(GetTopicRequestError(delta.AlterTopicConfigs("a.b", {{"x", "1"}})),
            TopicRequestError::kInvalidConfig);
  EXPECT_TRUE(delta.Build() == before);
}

// The image holds at most kPartitionsTotalMax partitions; more is kResourceExhausted.
TEST(MetadataImageTest, PartitionLimit) {
  MetadataDelta delta(MetadataImage{});
  const int64_t topics = kPartitionsTotalMax / kPartitionsPerTopicMax;
  for (int64_t i = 0; i < topics; ++i) {
    ASSERT_TRUE(delta
                    .CreateTopic(absl::StrCat("t", i), IdOf(static_cast<uint8_t>(i + 1)),
                                 kPartitionsPerTopicMax, {}, 0)
                    .ok());
  }
  const absl::Status status = delta.CreateTopic("one-more", IdOf(200), 1, {}, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat(kPartitionsTotalMax)));
  EXPECT_EQ(delta.Build().partition_count_total(), kPartitionsTotalMax);
}

// Brokers: registration adds or replaces by node id; invalid registrations are refused.
TEST(MetadataImageTest, RegisterBroker) {
  MetadataDelta delta(MetadataImage{});
  ASSERT_TRUE(delta.RegisterBroker({.node_id = 2, .host = "b", .port = 9092}).ok());
  ASSERT_TRUE(delta.RegisterBroker({.node_id = 1, .host = "a", .port = 9092, .rack = "r1"}).ok());
  ASSERT_TRUE(delta.RegisterBroker({.node_id = 2, .host = "b2", .port = 9093}).ok());
  EXPECT_EQ(delta.RegisterBroker({.node_id = -1, .host = "x", .port = 1}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(delta.RegisterBroker({.node_id = 3, .host = "", .port = 1}).code(),
            absl::StatusCode::kInvalidArgument);
  const MetadataImage image = delta.Build();
  ASSERT_EQ(image.brokers().size(), 2u);
  EXPECT_EQ(image.brokers().begin()->first, 1);  // ordered by node id
  EXPECT_EQ(image.FindBroker(1)->rack, "r1");
  EXPECT_EQ(image.FindBroker(2)->host, "b2");
  EXPECT_EQ(image.FindBroker(2)->port, 9093);
  EXPECT_EQ(image.FindBroker(3), nullptr);
}

// Topic ids: the same seed gives the same ids; ids are distinct, UUID-v4 shaped, non-zero, and
// their 22-character text never starts with '-'.
TEST(TopicIdTest, DeterministicAndWellFormed) {
  Random a(42);
  Random b(42);
  std::set<TopicId> seen;
  for (int i = 0; i < 5000; ++i) {
    const TopicId id = TopicId::Generate(a);
    EXPECT_EQ(id, TopicId::Generate(b));
    EXPECT_FALSE(id.IsZero());
    EXPECT_EQ(id.bytes[6] >> 4, 4);
    EXPECT_EQ(id.bytes[8] >> 6, 2);
    const std::string text = id.ToString();
    EXPECT_EQ(text.size(), 22u);
    EXPECT_NE(text[0], '-');
    EXPECT_TRUE(seen.insert(id).second);
  }
  Random c(43);
  EXPECT_FALSE(TopicId::Generate(c) == TopicId::Generate(a));
}

std::vector<PersistedTopic> SampleTopics() {
  return {
      {.name = "alpha", .id = IdOf(1), .partition_count = 3, .configs = {}},
      {.name = "beta.logs",
       .id = IdOf(2),
       .partition_count = kPartitionsPerTopicMax,
       .configs = {{"cleanup.policy", "compact,delete"}, {"retention.ms", "-1"}}},
      {.name = std::string(kTopicNameLengthMax, 'z'), .id = IdOf(3), .partition_count = 1,
       .configs = {{"flush.policy", "never"}}},
  };
}

// Encoding then decoding gives back the topics; an image's topics come out by name.
TEST(MetadataFileTest, RoundTrip) {
  const std::vector<PersistedTopic> topics = SampleTopics();
  absl::StatusOr<std::vector<PersistedTopic>> decoded = DecodeMetadataFile(EncodeMetadataFile(topics));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, topics);
  decoded = DecodeMetadataFile(EncodeMetadataFile({}));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->empty());

  MetadataDelta delta(MetadataImage{});
  for (const PersistedTopic& topic : topics) {
    ASSERT_TRUE(delta.CreateTopic(topic.name, topic.id, topic.partition_count, topic.configs, 0).ok());
  }
  EXPECT_EQ(PersistedTopicsOf(delta.Build()), topics);
}

// Every single-bit flip anywhere in the file and every truncation or extension is kDataLoss.
TEST(MetadataFileTest, EveryFlipAndTruncationIsDetected) {
  const std::string bytes = EncodeMetadataFile(SampleTopics());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      const absl::Status status = DecodeMetadataFile(damaged).status();
      ASSERT_EQ(status.code(), absl::StatusCode::kDataLoss) << "byte " << i << " bit " << bit;
    }
  }
  for (size_t size = 0; size < bytes.size(); size += 7) {
    EXPECT_EQ(DecodeMetadataFile(bytes.substr(0, size)).status().code(),
              absl::StatusCode::kDataLoss)
        << size;
  }
  EXPECT_THAT(DecodeMetadataFile(bytes + "x").status().message(), HasSubstr("length field"));
  std::string bad_crc = bytes;
  bad_crc.back() = static_cast<char>(bad_crc.back() ^ 1);
  EXPECT_THAT(DecodeMetadataFile(bad_crc).status().message(), HasSubstr("checksum"));
}

}  // namespace
}  // namespace runnel::server
