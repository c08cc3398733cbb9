#include "broker/protocol/frame.h"

#include <cassert>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"

namespace runnel::protocol {
namespace {

// A tagged field takes at least two bytes (a one-byte tag and a one-byte size), so a count above
// half the bytes left is impossible and rejected before the loop.
constexpr size_t kTaggedFieldBytesMin = 2;

absl::Status HeaderError(absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("request header: ", problem));
}

absl::Status SkipTaggedFields(WireReader* reader) {
  uint32_t count = 0;
  if (!reader->ReadUnsignedVarint(&count)) return HeaderError("malformed tagged field count");
  if (count > reader->remaining() / kTaggedFieldBytesMin) {
    return HeaderError(absl::StrCat(count, " tagged fields cannot fit in ", reader->remaining(),
                                    " bytes"));
  }
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t tag = 0;
    uint32_t size_bytes = 0;
    absl::string_view skipped;
    if (!reader->ReadUnsignedVarint(&tag) || !reader->ReadUnsignedVarint(&size_bytes) ||
        !reader->ReadBytes(size_bytes, &skipped)) {
      return HeaderError(absl::StrCat("tagged field ", i, " is truncated or malformed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeRequestHeader(WireReader* reader, int16_t header_version,
                                 RequestHeader* header) {
  int16_t api_key = 0;
  if (!reader->ReadInt(&api_key) || !reader->ReadInt(&header->api_version) ||
      !reader->ReadInt(&header->correlation_id)) {
    return HeaderError("shorter than the 8 bytes of api key, version and correlation id");
  }
  header->api_key = static_cast<ApiKey>(api_key);
  header->client_id.reset();
  if (header_version >= 1) {
    int16_t length = 0;
    if (!reader->ReadInt(&length)) return HeaderError("client_id length is missing");
    if (length < kNullLength) return HeaderError(absl::StrCat("client_id length ", length));
    if (length >= 0) {
      absl::string_view client_id;
      if (!reader->ReadBytes(static_cast<size_t>(length), &client_id)) {
        return HeaderError(absl::StrCat("client_id length ", length, " exceeds the ",
                                        reader->remaining(), " bytes left"));
      }
      header->client_id.emplace(client_id);
    }
  }
  if (header_version >= 2) return SkipTaggedFields(reader);
  return absl::OkStatus();
}

absl::Status EncodeRequestHeader(const RequestHeader& header, int16_t header_version,
                                 std::string* out) {
  if (header_version >= 1 && header.client_id.has_value() &&
      header.client_id->size() > kStringBytesMax) {
    return HeaderError(absl::StrCat("client_id of ", header.client_id->size(),
                                    " bytes is longer than a string can be"));
  }
  AppendBigEndian(*out, static_cast<int16_t>(header.api_key));
  AppendBigEndian(*out, header.api_version);
  AppendBigEndian(*out, header.correlation_id);
  if (header_version >= 1) {
    if (header.client_id.has_value()) {
      AppendBigEndian(*out, static_cast<int16_t>(header.client_id->size()));
      out->append(*header.client_id);
    } else {
      AppendBigEndian<int16_t>(*out, kNullLength);
    }
  }
  if (header_version >= 2) out->push_back('\0');  // No tagged fields.
  return absl::OkStatus();
}

absl::StatusOr<FrameSplit> SplitFrame(absl::string_view stream, int32_t frame_bytes_max) {
  FrameSplit split;
  if (stream.size() < kFrameSizePrefixBytes) return split;
  const int32_t body_bytes = LoadBigEndian<int32_t>(stream.data());
  if (body_bytes < 0 || body_bytes > frame_bytes_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame size ", body_bytes, " is outside 0..", frame_bytes_max, "; closing the connection"));
  }
  const size_t frame_bytes = kFrameSizePrefixBytes + static_cast<size_t>(body_bytes);
  if (stream.size() < frame_bytes) return split;
  split.complete = true;
  split.frame_bytes = frame_bytes;
  split.body = stream.substr(kFrameSizePrefixBytes, static_cast<size_t>(body_bytes));
  return split;
}

void FrameReader::Append(absl::string_view chunk) {
  if (!error_.ok()) return;
  // Drop what was already returned before growing, so the buffer holds at most the unfinished
  // frame and this chunk.
  if (consumed_bytes_ > 0) {
    buffer_.erase(0, consumed_bytes_);
    consumed_bytes_ = 0;
  }
  buffer_.append(chunk.data(), chunk.size());
}

absl::StatusOr<std::optional<absl::string_view>> FrameReader::Next() {
  if (!error_.ok()) return error_;
  const absl::string_view pending = absl::string_view(buffer_).substr(consumed_bytes_);
  absl::StatusOr<FrameSplit> split = SplitFrame(pending, frame_bytes_max_);
  if (!split.ok()) {
    error_ = split.status();
    buffer_.clear();
    consumed_bytes_ = 0;
    return error_;
  }
  if (!split->complete) return std::optional<absl::string_view>();
  consumed_bytes_ += split->frame_bytes;
  return std::optional<absl::string_view>(split->body);
}

absl::Status FinishFrame(std::string* frame) {
  assert(frame->size() >= kFrameSizePrefixBytes);
  const size_t body_bytes = frame->size() - kFrameSizePrefixBytes;
  if (body_bytes > static_cast<size_t>(kFrameBytesMax)) {
    return absl::InvalidArgumentError(absl::StrCat("frame of ", body_bytes,
                                                   " bytes exceeds kFrameBytesMax (",
                                                   kFrameBytesMax, ")"));
  }
  StoreBigEndian(frame->data(), static_cast<int32_t>(body_bytes));
  return absl::OkStatus();
}

}  // namespace runnel::protocol
