#include "broker/server/metadata_file.h"

#include <cassert>
#include <cstring>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"
#include "broker/storage/crc32c.h"

namespace runnel::server {
namespace {

constexpr uint32_t kMagic = 0x524E4D44;  // "RNMD"
constexpr uint16_t kVersion = 1;
constexpr size_t kPreambleBytes = 8;
constexpr size_t kLengthBytes = 4;
constexpr size_t kCrcBytes = 4;
static_assert(kPreambleBytes + kLengthBytes + kCrcBytes == kMetadataFileOverheadBytes);

void AppendShortString(std::string& out, absl::string_view text) {
  assert(text.size() <= UINT16_MAX);
  AppendBigEndian<uint16_t>(out, static_cast<uint16_t>(text.size()));
  out.append(text.data(), text.size());
}

// Reads fields in order from a byte range, failing (kDataLoss) on a short read.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : bytes_(bytes) {}

  template <typename T>
  absl::StatusOr<T> Integer(absl::string_view what) {
    if (bytes_.size() < sizeof(T)) return Short(what);
    const T value = LoadBigEndian<T>(bytes_.data());
    bytes_.remove_prefix(sizeof(T));
    return value;
  }

  absl::StatusOr<absl::string_view> Bytes(size_t count, absl::string_view what) {
    if (bytes_.size() < count) return Short(what);
    const absl::string_view value = bytes_.substr(0, count);
    bytes_.remove_prefix(count);
    return value;
  }

  absl::StatusOr<absl::string_view> ShortString(absl::string_view what) {
    absl::StatusOr<uint16_t> length = Integer<uint16_t>(what);
    if (!length.ok()) return length.status();
    return Bytes(*length, what);
  }

  size_t remaining() const { return bytes_.size(); }

 private:
  absl::Status Short(absl::string_view what) const {
    return absl::DataLossError(absl::StrCat("metadata file: the body ends inside ", what));
  }

  absl::string_view bytes_;
};

absl::Status Damaged(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("metadata file: ", why));
}

}  // namespace

std::vector<PersistedTopic> PersistedTopicsOf(const MetadataImage& image) {
  std::vector<PersistedTopic> topics;
  topics.reserve(image.topics().size());
  for (const auto& [name, info] : image.topics()) {
    topics.push_back(PersistedTopic{
        .name = name, .id = info.id, .partition_count = info.partition_count(),
        .configs = info.configs});
  }
  return topics;
}

std::string EncodeMetadataFile(const std::vector<PersistedTopic>& topics) {
  assert(static_cast<int64_t>(topics.size()) <= kTopicsMax);
  std::string body;
  AppendBigEndian<uint32_t>(body, static_cast<uint32_t>(topics.size()));
  for (size_t i = 0; i < topics.size(); ++i) {
    const PersistedTopic& topic = topics[i];
    assert(i == 0 || topics[i - 1].name < topic.name);
    assert(ValidateTopicName(topic.name).ok());
    assert(!topic.id.IsZero());
    assert(topic.partition_count >= 1 && topic.partition_count <= kPartitionsPerTopicMax);
    AppendShortString(body, topic.name);
    body.append(reinterpret_cast<const char*>(topic.id.bytes.data()), kTopicIdBytes);
    AppendBigEndian<int32_t>(body, topic.partition_count);
    assert(topic.configs.size() <= UINT16_MAX);
    AppendBigEndian<uint16_t>(body, static_cast<uint16_t>(topic.configs.size()));
    for (const auto& [name, value] : topic.configs) {
      assert(value.size() <= kConfigValueBytesMax);
      AppendShortString(body, name);
      AppendShortString(body, value);
    }
  }
  std::string out;
  out.reserve(kMetadataFileOverheadBytes + body.size());
  AppendBigEndian<uint32_t>(out, kMagic);
  AppendBigEndian<uint16_t>(out, kVersion);
  AppendBigEndian<uint16_t>(out, 0);
  AppendBigEndian<uint32_t>(out, static_cast<uint32_t>(body.size()));
  out.append(body);
  AppendBigEndian<uint32_t>(out, storage::Crc32c(out));
  assert(out.size() <= kMetadataFileBytesMax);
  return out;
}

absl::StatusOr<std::vector<PersistedTopic>> DecodeMetadataFile(absl::string_view bytes) {
  if (bytes.size() < kMetadataFileOverheadBytes || bytes.size() > kMetadataFileBytesMax) {
    return Damaged(absl::StrCat("holds ", bytes.size(), " bytes"));
  }
  const uint32_t body_bytes = LoadBigEndian<uint32_t>(bytes.data() + kPreambleBytes);
  if (body_bytes != bytes.size() - kMetadataFileOverheadBytes) {
    return Damaged(absl::StrCat("holds ", bytes.size(), " bytes but its length field says ",
                                uint64_t{body_bytes} + kMetadataFileOverheadBytes));
  }
  const size_t crc_at = bytes.size() - kCrcBytes;
  if (storage::Crc32c(bytes.substr(0, crc_at)) != LoadBigEndian<uint32_t>(bytes.data() + crc_at)) {
    return Damaged("fails its checksum");
  }
  if (LoadBigEndian<uint32_t>(bytes.data()) != kMagic) return Damaged("has a wrong magic number");
  if (const uint16_t version = LoadBigEndian<uint16_t>(bytes.data() + 4); version != kVersion) {
    return Damaged(absl::StrCat("has unknown version ", version));
  }

  Reader reader(bytes.substr(kPreambleBytes + kLengthBytes, body_bytes));
  absl::StatusOr<uint32_t> count = reader.Integer<uint32_t>("the topic count");
  if (!count.ok()) return count.status();
  if (*count > kTopicsMax) return Damaged(absl::StrCat("holds ", *count, " topics"));
  std::vector<PersistedTopic> topics;
  topics.reserve(*count);
  std::set<TopicId> ids;
  for (uint32_t i = 0; i < *count; ++i) {
    PersistedTopic topic;
    absl::StatusOr<absl::string_view> name = reader.ShortString("a topic name");
    if (!name.ok()) return name.status();
    topic.name = std::string(*name);
    if (absl::Status valid = ValidateTopicName(topic.name); !valid.ok()) {
      return Damaged(valid.message());
    }
    if (!topics.empty() && !(topics.back().name < topic.name)) {
      return Damaged(absl::StrCat("topic '", topic.name, "' is out of order"));
    }
    absl::StatusOr<absl::string_view> id = reader.Bytes(kTopicIdBytes, "a topic id");
    if (!id.ok()) return id.status();
    std::memcpy(topic.id.bytes.data(), id->data(), kTopicIdBytes);
    if (topic.id.IsZero() || !ids.insert(topic.id).second) {
      return Damaged(absl::StrCat("topic '", topic.name, "' has a zero or repeated id"));
    }
    absl::StatusOr<int32_t> partitions = reader.Integer<int32_t>("a partition count");
    if (!partitions.ok()) return partitions.status();
    if (*partitions < 1 || *partitions > kPartitionsPerTopicMax) {
      return Damaged(absl::StrCat("topic '", topic.name, "' has ", *partitions, " partitions"));
    }
    topic.partition_count = *partitions;
    absl::StatusOr<uint16_t> configs = reader.Integer<uint16_t>("a config count");
    if (!configs.ok()) return configs.status();
    for (uint16_t c = 0; c < *configs; ++c) {
      absl::StatusOr<absl::string_view> config_name = reader.ShortString("a config name");
      if (!config_name.ok()) return config_name.status();
      absl::StatusOr<absl::string_view> value = reader.ShortString("a config value");
      if (!value.ok()) return value.status();
      if (!topic.configs.empty() && !(topic.configs.rbegin()->first < *config_name)) {
        return Damaged(absl::StrCat("topic '", topic.name, "' has configs out of order"));
      }
      topic.configs.emplace(std::string(*config_name), std::string(*value));
    }
    // Configs are stored canonical; anything else was not written by this format's encoder.
    absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(topic.configs);
    if (!canonical.ok()) {
      return Damaged(absl::StrCat("topic '", topic.name, "': ", canonical.status().message()));
    }
    if (*canonical != topic.configs) {
      return Damaged(absl::StrCat("topic '", topic.name, "' has configs in non-canonical form"));
    }
    topics.push_back(std::move(topic));
  }
  if (reader.remaining() != 0) {
    return Damaged(absl::StrCat(reader.remaining(), " bytes follow the last topic"));
  }
  return topics;
}

}  // namespace runnel::server
