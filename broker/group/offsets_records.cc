#include "broker/group/offsets_records.h"

#include <cstddef>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"

namespace runnel::group {
namespace {

void PutString(std::string& out, absl::string_view text) {
  AppendBigEndian<int32_t>(out, static_cast<int32_t>(text.size()));
  out.append(text.data(), text.size());
}

void PutNullableString(std::string& out, const std::optional<std::string>& text) {
  if (!text.has_value()) {
    AppendBigEndian<int32_t>(out, -1);
    return;
  }
  PutString(out, *text);
}

// Reads the format's fields with bounds checks; the first failure sticks and names the field.
class Reader {
 public:
  Reader(absl::string_view bytes, absl::string_view what) : bytes_(bytes), what_(what) {}

  template <typename T>
  T Int(absl::string_view field) {
    if (!error_.ok()) return T{};
    if (bytes_.size() - position_ < sizeof(T)) {
      Fail(field, "is cut short");
      return T{};
    }
    T value = LoadBigEndian<T>(bytes_.data() + position_);
    position_ += sizeof(T);
    return value;
  }

  std::optional<std::string> NullableString(absl::string_view field) {
    const int32_t length = Int<int32_t>(field);
    if (!error_.ok()) return std::nullopt;
    if (length == -1) return std::nullopt;
    if (length < 0) {
      Fail(field, absl::StrCat("has a negative length ", length));
      return std::nullopt;
    }
    if (bytes_.size() - position_ < static_cast<size_t>(length)) {
      Fail(field, absl::StrCat("claims ", length, " bytes past the end"));
      return std::nullopt;
    }
    std::string text(bytes_.substr(position_, static_cast<size_t>(length)));
    position_ += static_cast<size_t>(length);
    return text;
  }

  std::string String(absl::string_view field) {
    std::optional<std::string> text = NullableString(field);
    if (error_.ok() && !text.has_value()) Fail(field, "is null");
    return text.value_or("");
  }

  void Fail(absl::string_view field, absl::string_view why) {
    if (error_.ok()) {
      error_ = absl::DataLossError(
          absl::StrCat(what_, ": ", field, " ", why, " (at byte ", position_, ")"));
    }
  }

  // The error, or one for trailing bytes.
  absl::Status Finish() {
    if (error_.ok() && position_ != bytes_.size()) {
      Fail("end", absl::StrCat("has ", bytes_.size() - position_, " trailing bytes"));
    }
    return error_;
  }
  const absl::Status& error() const { return error_; }

 private:
  absl::string_view bytes_;
  absl::string_view what_;
  size_t position_ = 0;
  absl::Status error_;
};

}  // namespace

std::string EncodeOffsetCommitKey(const OffsetCommitKey& key) {
  std::string out;
  AppendBigEndian<int16_t>(out, kOffsetCommitKeyVersion);
  PutString(out, key.group);
  PutString(out, key.topic);
  AppendBigEndian<int32_t>(out, key.partition);
  return out;
}

std::string EncodeOffsetCommitValue(const OffsetCommitValue& value) {
  std::string out;
  AppendBigEndian<int16_t>(out, kOffsetCommitValueVersion);
  AppendBigEndian<int64_t>(out, value.offset);
  AppendBigEndian<int32_t>(out, value.leader_epoch);
  PutNullableString(out, value.metadata);
  AppendBigEndian<int64_t>(out, value.commit_timestamp_ms);
  AppendBigEndian<int64_t>(out, value.expire_timestamp_ms);
  return out;
}

std::string EncodeGroupMetadataKey(absl::string_view group) {
  std::string out;
  AppendBigEndian<int16_t>(out, kGroupMetadataKeyVersion);
  PutString(out, group);
  return out;
}

std::string EncodeGroupMetadataValue(const GroupMetadataValue& value) {
  std::string out;
  AppendBigEndian<int16_t>(out, kGroupMetadataValueVersion);
  PutString(out, value.protocol_type);
  AppendBigEndian<int32_t>(out, value.generation);
  PutNullableString(out, value.protocol_name);
  PutNullableString(out, value.leader);
  AppendBigEndian<int64_t>(out, value.state_timestamp_ms);
  AppendBigEndian<int32_t>(out, static_cast<int32_t>(value.members.size()));
  for (const MemberRecord& member : value.members) {
    PutString(out, member.member_id);
    PutNullableString(out, member.group_instance_id);
    PutString(out, member.client_id);
    PutString(out, member.client_host);
    AppendBigEndian<int32_t>(out, member.session_timeout_ms);
    AppendBigEndian<int32_t>(out, member.rebalance_timeout_ms);
    PutString(out, member.subscription);
    PutString(out, member.assignment);
  }
  return out;
}

absl::StatusOr<OffsetsRecordKey> DecodeOffsetsRecordKey(absl::string_view bytes) {
  Reader reader(bytes, "__consumer_offsets key");
  const int16_t version = reader.Int<int16_t>("version");
  OffsetsRecordKey key;
  if (reader.error().ok()) {
    if (version == kOffsetCommitKeyVersion) {
      OffsetCommitKey commit;
      commit.group = reader.String("group");
      commit.topic = reader.String("topic");
      commit.partition = reader.Int<int32_t>("partition");
      key.offset_commit = std::move(commit);
    } else if (version == kGroupMetadataKeyVersion) {
      key.group_metadata = reader.String("group");
    } else {
      reader.Fail("version", absl::StrCat("is unknown: ", version));
    }
  }
  if (absl::Status status = reader.Finish(); !status.ok()) return status;
  return key;
}

absl::StatusOr<OffsetCommitValue> DecodeOffsetCommitValue(absl::string_view bytes) {
  Reader reader(bytes, "offset commit value");
  const int16_t version = reader.Int<int16_t>("version");
  if (reader.error().ok() && version != kOffsetCommitValueVersion) {
    reader.Fail("version", absl::StrCat("is unknown: ", version));
  }
  OffsetCommitValue value;
  value.offset = reader.Int<int64_t>("offset");
  value.leader_epoch = reader.Int<int32_t>("leader_epoch");
  value.metadata = reader.NullableString("metadata");
  value.commit_timestamp_ms = reader.Int<int64_t>("commit_timestamp_ms");
  value.expire_timestamp_ms = reader.Int<int64_t>("expire_timestamp_ms");
  if (absl::Status status = reader.Finish(); !status.ok()) return status;
  return value;
}

absl::StatusOr<GroupMetadataValue> DecodeGroupMetadataValue(absl::string_view bytes) {
  Reader reader(bytes, "group metadata value");
  const int16_t version = reader.Int<int16_t>("version");
  if (reader.error().ok() && version != kGroupMetadataValueVersion) {
    reader.Fail("version", absl::StrCat("is unknown: ", version));
  }
  GroupMetadataValue value;
  value.protocol_type = reader.String("protocol_type");
  value.generation = reader.Int<int32_t>("generation");
  value.protocol_name = reader.NullableString("protocol_name");
  value.leader = reader.NullableString("leader");
  value.state_timestamp_ms = reader.Int<int64_t>("state_timestamp_ms");
  const int32_t count = reader.Int<int32_t>("member count");
  if (reader.error().ok() && (count < 0 || count > kRecordMembersMax)) {
    reader.Fail("member count", absl::StrCat("is out of range: ", count));
  }
  for (int32_t i = 0; reader.error().ok() && i < count; ++i) {
    MemberRecord member;
    member.member_id = reader.String("member_id");
    member.group_instance_id = reader.NullableString("group_instance_id");
    member.client_id = reader.String("client_id");
    member.client_host = reader.String("client_host");
    member.session_timeout_ms = reader.Int<int32_t>("session_timeout_ms");
    member.rebalance_timeout_ms = reader.Int<int32_t>("rebalance_timeout_ms");
    member.subscription = reader.String("subscription");
    member.assignment = reader.String("assignment");
    value.members.push_back(std::move(member));
  }
  if (absl::Status status = reader.Finish(); !status.ok()) return status;
  return value;
}

int32_t OffsetsPartitionFor(absl::string_view group_id, int32_t partition_count) {
  // Java's int arithmetic wraps; unsigned arithmetic does the same without undefined behaviour.
  uint32_t hash = 0;
  auto add_unit = [&hash](uint32_t unit) { hash = hash * 31u + unit; };
  constexpr uint32_t kReplacement = 0xFFFD;
  const auto* bytes = reinterpret_cast<const unsigned char*>(group_id.data());
  const size_t size = group_id.size();
  size_t i = 0;
  while (i < size) {
    const unsigned char lead = bytes[i];
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t minimum = 0;
    if (lead < 0x80) {
      length = 1;
      code_point = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
      minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
      minimum = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
      minimum = 0x10000;
    }
    bool valid = length > 0 && i + length <= size;
    for (size_t k = 1; valid && k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) {
        valid = false;
      } else {
        code_point = (code_point << 6) | (bytes[i + k] & 0x3F);
      }
    }
    if (valid && (code_point < minimum || code_point > 0x10FFFF ||
                  (code_point >= 0xD800 && code_point <= 0xDFFF))) {
      valid = false;
    }
    if (!valid) {
      add_unit(kReplacement);
      ++i;
      continue;
    }
    if (code_point >= 0x10000) {
      const uint32_t offset = code_point - 0x10000;
      add_unit(0xD800 + (offset >> 10));
      add_unit(0xDC00 + (offset & 0x3FF));
    } else {
      add_unit(code_point);
    }
    i += length;
  }
  const int32_t signed_hash = static_cast<int32_t>(hash);
  const int32_t absolute = signed_hash == std::numeric_limits<int32_t>::min()
                               ? 0
                               : (signed_hash < 0 ? -signed_hash : signed_hash);
  return absolute % partition_count;
}

}  // namespace runnel::group
