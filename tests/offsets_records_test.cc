// Tests of the __consumer_offsets record format (broker/group/offsets_records.h): every key and
// value survives a round trip; every truncation, a flipped version, trailing bytes and random bytes
// are refused with kDataLoss, never a crash; the group's partition is Kafka's.
#include "broker/group/offsets_records.h"

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "broker/env/random.h"
#include "gtest/gtest.h"

namespace runnel::group {
namespace {

GroupMetadataValue SampleGroup() {
  GroupMetadataValue value;
  value.protocol_type = "consumer";
  value.generation = 7;
  value.protocol_name = "range";
  value.leader = "rdkafka-1";
  value.state_timestamp_ms = 1'700'000'000'000;
  value.members.push_back(MemberRecord{.member_id = "rdkafka-1",
                                       .group_instance_id = std::nullopt,
                                       .client_id = "rdkafka",
                                       .client_host = "10.0.0.1",
                                       .session_timeout_ms = 10'000,
                                       .rebalance_timeout_ms = 300'000,
                                       .subscription = std::string("\0\1sub", 5),
                                       .assignment = std::string("\0\0as", 4)});
  value.members.push_back(MemberRecord{.member_id = "static-2",
                                       .group_instance_id = "instance-2",
                                       .client_id = "",
                                       .client_host = "h",
                                       .session_timeout_ms = 6000,
                                       .rebalance_timeout_ms = 6000,
                                       .subscription = "",
                                       .assignment = ""});
  return value;
}

TEST(OffsetsRecordsTest, KeysAndValuesRoundTrip) {
  const OffsetCommitKey key{.group = "g", .topic = "orders", .partition = 3};
  absl::StatusOr<OffsetsRecordKey> decoded = DecodeOffsetsRecordKey(EncodeOffsetCommitKey(key));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_TRUE(decoded->offset_commit.has_value());
  EXPECT_FALSE(decoded->group_metadata.has_value());
  EXPECT_EQ(*decoded->offset_commit, key);

  decoded = DecodeOffsetsRecordKey(EncodeGroupMetadataKey("my-group"));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_TRUE(decoded->group_metadata.has_value());
  EXPECT_EQ(*decoded->group_metadata, "my-group");

  for (const std::optional<std::string>& metadata :
       {std::optional<std::string>(), std::optional<std::string>(""),
        std::optional<std::string>("meta")}) {
    const OffsetCommitValue value{.offset = 42,
                                  .leader_epoch = 5,
                                  .metadata = metadata,
                                  .commit_timestamp_ms = 123,
                                  .expire_timestamp_ms = -1};
    absl::StatusOr<OffsetCommitValue> back =
        DecodeOffsetCommitValue(EncodeOffsetCommitValue(value));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, value);
  }

  const GroupMetadataValue group = SampleGroup();
  absl::StatusOr<GroupMetadataValue> back =
      DecodeGroupMetadataValue(EncodeGroupMetadataValue(group));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, group);
  GroupMetadataValue empty;
  empty.protocol_type = "consumer";
  empty.generation = 3;
  back = DecodeGroupMetadataValue(EncodeGroupMetadataValue(empty));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, empty);
}

// Every prefix shorter than the whole, and the whole with a byte appended, is kDataLoss.
void ExpectEveryDamageRefused(const std::string& bytes,
                              const std::function<absl::Status(absl::string_view)>& decode) {
  ASSERT_TRUE(decode(bytes).ok());
  for (size_t length = 0; length < bytes.size(); ++length) {
    absl::Status status = decode(absl::string_view(bytes).substr(0, length));
    EXPECT_TRUE(absl::IsDataLoss(status)) << "prefix " << length << ": " << status;
  }
  EXPECT_TRUE(absl::IsDataLoss(decode(bytes + "x")));
  std::string unknown_version = bytes;
  unknown_version[1] = 99;
  EXPECT_TRUE(absl::IsDataLoss(decode(unknown_version)));
}

TEST(OffsetsRecordsTest, DamagedBytesAreErrors) {
  auto key = [](absl::string_view b) { return DecodeOffsetsRecordKey(b).status(); };
  auto commit = [](absl::string_view b) { return DecodeOffsetCommitValue(b).status(); };
  auto group = [](absl::string_view b) { return DecodeGroupMetadataValue(b).status(); };
  ExpectEveryDamageRefused(EncodeOffsetCommitKey({.group = "g", .topic = "t", .partition = 1}),
                           key);
  ExpectEveryDamageRefused(EncodeGroupMetadataKey("g"), key);
  ExpectEveryDamageRefused(EncodeOffsetCommitValue({.offset = 1,
                                                    .leader_epoch = -1,
                                                    .metadata = "m",
                                                    .commit_timestamp_ms = 2,
                                                    .expire_timestamp_ms = -1}),
                           commit);
  ExpectEveryDamageRefused(EncodeGroupMetadataValue(SampleGroup()), group);

  // A string length far past the end, a negative length, and a huge member count.
  std::string bad_length = EncodeGroupMetadataKey("g");
  bad_length[5] = 0x7f;
  EXPECT_TRUE(absl::IsDataLoss(key(bad_length)));
  std::string negative = EncodeGroupMetadataKey("g");
  negative[2] = static_cast<char>(0xff);
  negative[3] = static_cast<char>(0xff);
  negative[4] = static_cast<char>(0xff);
  negative[5] = static_cast<char>(0xfe);
  EXPECT_TRUE(absl::IsDataLoss(key(negative)));
  GroupMetadataValue no_members;
  std::string many = EncodeGroupMetadataValue(no_members);
  for (size_t i = many.size() - 4; i < many.size(); ++i) many[i] = 0x7f;
  EXPECT_TRUE(absl::IsDataLoss(group(many)));

  // Random bytes never crash the decoders.
  Random random(11);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(random.Below(64), '\0');
    for (char& c : bytes) c = static_cast<char>(random.Below(256));
    if (round % 2 == 0 && bytes.size() >= 2) {
      bytes[0] = 0;
      bytes[1] = static_cast<char>(1 + random.Below(2));
    }
    static_cast<void>(DecodeOffsetsRecordKey(bytes));
    static_cast<void>(DecodeOffsetCommitValue(bytes));
    static_cast<void>(DecodeGroupMetadataValue(bytes));
  }
}

// Java's String.hashCode: "" is 0; "a" is 97; "consumer-group" and a non-ASCII id computed by hand
// with Java's rule (UTF-16 units, int overflow), abs with INT_MIN mapped to 0.
TEST(OffsetsRecordsTest, PartitionIsKafkas) {
  EXPECT_EQ(OffsetsPartitionFor("", 50), 0);
  EXPECT_EQ(OffsetsPartitionFor("a", 50), 97 % 50);
  // "ab" = 97 * 31 + 98 = 3105.
  EXPECT_EQ(OffsetsPartitionFor("ab", 50), 3105 % 50);
  // "polygenelubricants" hashes to Integer.MIN_VALUE in Java; Kafka's abs maps it to 0.
  EXPECT_EQ(OffsetsPartitionFor("polygenelubricants", 50), 0);
  // "é" is one UTF-16 unit 0xE9 = 233.
  EXPECT_EQ(OffsetsPartitionFor("\xc3\xa9", 50), 233 % 50);
  // U+1F600 is the surrogate pair D83D DE00: 0xD83D * 31 + 0xDE00 = 1772899.
  EXPECT_EQ(OffsetsPartitionFor("\xf0\x9f\x98\x80", 1000), 1772899 % 1000);
  // A negative hash: Java's "abcdefghij".hashCode() is -634317659.
  EXPECT_EQ(OffsetsPartitionFor("abcdefghij", 50), 634317659 % 50);
  // "mygroup" is 1516409939.
  EXPECT_EQ(OffsetsPartitionFor("mygroup", 50), 1516409939 % 50);
  for (int32_t partitions : {1, 7, 50}) {
    const int32_t partition = OffsetsPartitionFor("my-consumer-group", partitions);
    EXPECT_GE(partition, 0);
    EXPECT_LT(partition, partitions);
  }
}

}  // namespace
}  // namespace runnel::group
