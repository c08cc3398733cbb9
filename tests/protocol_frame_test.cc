// Kafka framing and request headers: SplitFrame and FrameReader against hand-built streams (whole,
// split at every byte, several frames per chunk, oversized and negative sizes), and request
// headers v0, v1 and v2 (with tagged fields) decoded from bytes written out here and encoded back.
#include "broker/protocol/frame.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "broker/common/big_endian.h"
#include "gtest/gtest.h"

namespace runnel::protocol {
namespace {

std::string Bytes(std::initializer_list<uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

// A frame written out by hand: a big-endian size, then the body.
std::string Frame(absl::string_view body) {
  const uint32_t size = static_cast<uint32_t>(body.size());
  std::string frame = Bytes({static_cast<uint8_t>(size >> 24), static_cast<uint8_t>(size >> 16),
                             static_cast<uint8_t>(size >> 8), static_cast<uint8_t>(size)});
  frame.append(body.data(), body.size());
  return frame;
}

// Network byte order for every width and sign, against hand-written bytes, unaligned too.
TEST(BigEndianTest, EncodesAndDecodesNetworkOrder) {
  std::string out;
  AppendBigEndian<int8_t>(out, -2);
  AppendBigEndian<int16_t>(out, 0x0102);
  AppendBigEndian<int32_t>(out, -2);
  AppendBigEndian<uint32_t>(out, 0x0a0b0c0du);
  AppendBigEndian<int64_t>(out, 0x0102030405060708);
  EXPECT_EQ(out, std::string("\xfe\x01\x02\xff\xff\xff\xfe\x0a\x0b\x0c\x0d"
                             "\x01\x02\x03\x04\x05\x06\x07\x08", 19));
  EXPECT_EQ(LoadBigEndian<int8_t>(out.data()), -2);
  EXPECT_EQ(LoadBigEndian<int16_t>(out.data() + 1), 0x0102);
  EXPECT_EQ(LoadBigEndian<int32_t>(out.data() + 3), -2);
  EXPECT_EQ(LoadBigEndian<uint32_t>(out.data() + 7), 0x0a0b0c0du);
  EXPECT_EQ(LoadBigEndian<int64_t>(out.data() + 11), 0x0102030405060708);
  StoreBigEndian<int16_t>(out.data() + 1, -1);
  EXPECT_EQ(LoadBigEndian<uint16_t>(out.data() + 1), 0xffff);
  EXPECT_EQ(out.substr(3, 4), std::string("\xff\xff\xff\xfe", 4));
}

TEST(SplitFrameTest, NeedsTheWholePrefixAndBody) {
  const std::string frame = Frame("hello");
  for (size_t length = 0; length < frame.size(); ++length) {
    absl::StatusOr<FrameSplit> split = SplitFrame(absl::string_view(frame).substr(0, length));
    ASSERT_TRUE(split.ok()) << length;
    EXPECT_FALSE(split->complete) << length;
  }
  absl::StatusOr<FrameSplit> split = SplitFrame(frame + "next");
  ASSERT_TRUE(split.ok());
  EXPECT_TRUE(split->complete);
  EXPECT_EQ(split->body, "hello");
  EXPECT_EQ(split->frame_bytes, 9u);
}

TEST(SplitFrameTest, EmptyBodyIsAFrame) {
  absl::StatusOr<FrameSplit> split = SplitFrame(Bytes({0, 0, 0, 0}));
  ASSERT_TRUE(split.ok());
  EXPECT_TRUE(split->complete);
  EXPECT_EQ(split->body, "");
  EXPECT_EQ(split->frame_bytes, 4u);
}

TEST(SplitFrameTest, RejectsNegativeAndOversizedSizesFromThePrefixAlone) {
  // No body follows: the size alone decides, before any buffering toward it.
  EXPECT_EQ(SplitFrame(Bytes({0xff, 0xff, 0xff, 0xff})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitFrame(Bytes({0x80, 0, 0, 0})).status().code(),
            absl::StatusCode::kInvalidArgument);
  // kFrameBytesMax is 100 MiB = 0x06400000; one more is too many.
  EXPECT_EQ(SplitFrame(Bytes({0x06, 0x40, 0x00, 0x01})).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<FrameSplit> at_max = SplitFrame(Bytes({0x06, 0x40, 0x00, 0x00}));
  ASSERT_TRUE(at_max.ok());
  EXPECT_FALSE(at_max->complete);
  // A smaller per-reader limit applies likewise.
  EXPECT_FALSE(SplitFrame(Frame("12345"), /*frame_bytes_max=*/4).ok());
  EXPECT_TRUE(SplitFrame(Frame("1234"), /*frame_bytes_max=*/4).ok());
}

TEST(FrameReaderTest, ReassemblesFramesFromChunksOfEverySize) {
  const std::vector<std::string> bodies = {"a", "", "frame three", std::string(300, 'x')};
  std::string stream;
  for (const std::string& body : bodies) stream += Frame(body);
  for (size_t chunk_bytes = 1; chunk_bytes <= stream.size(); ++chunk_bytes) {
    FrameReader reader;
    std::vector<std::string> received;
    for (size_t offset = 0; offset < stream.size(); offset += chunk_bytes) {
      reader.Append(absl::string_view(stream).substr(offset, chunk_bytes));
      while (true) {
        absl::StatusOr<std::optional<absl::string_view>> body = reader.Next();
        ASSERT_TRUE(body.ok());
        if (!body->has_value()) break;
        received.emplace_back(**body);
      }
    }
    EXPECT_EQ(received, bodies) << "chunk_bytes " << chunk_bytes;
    EXPECT_EQ(reader.buffered_bytes(), 0u);
  }
}

TEST(FrameReaderTest, AnOversizedFrameIsAStickyError) {
  FrameReader reader(/*frame_bytes_max=*/16);
  reader.Append(Frame("ok"));
  reader.Append(Bytes({0, 0, 0, 17}));
  absl::StatusOr<std::optional<absl::string_view>> first = reader.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(**first, "ok");
  EXPECT_EQ(reader.Next().status().code(), absl::StatusCode::kInvalidArgument);
  reader.Append(Frame("more"));
  EXPECT_EQ(reader.Next().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReaderTest, PartialFrameWaits) {
  FrameReader reader;
  reader.Append(Bytes({0, 0, 0, 3, 'a'}));
  absl::StatusOr<std::optional<absl::string_view>> body = reader.Next();
  ASSERT_TRUE(body.ok());
  EXPECT_FALSE(body->has_value());
  EXPECT_EQ(reader.buffered_bytes(), 5u);
  reader.Append("bc");
  body = reader.Next();
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(**body, "abc");
}

// Request header v1: api key 3 (Metadata), version 1, correlation id 0x01020304, client id "cli".
const std::string kHeaderV1 = Bytes({0, 3, 0, 1, 1, 2, 3, 4, 0, 3, 'c', 'l', 'i'});

TEST(RequestHeaderTest, DecodesV0V1AndV2) {
  {
    WireReader reader(kHeaderV1);
    RequestHeader header;
    ASSERT_TRUE(DecodeRequestHeader(&reader, 1, &header).ok());
    EXPECT_EQ(header.api_key, ApiKey::kMetadata);
    EXPECT_EQ(header.api_version, 1);
    EXPECT_EQ(header.correlation_id, 0x01020304);
    EXPECT_EQ(header.client_id, "cli");
    EXPECT_EQ(reader.remaining(), 0u);
  }
  {
    // v0 has no client id: the same bytes leave it unread.
    WireReader reader(kHeaderV1);
    RequestHeader header;
    ASSERT_TRUE(DecodeRequestHeader(&reader, 0, &header).ok());
    EXPECT_EQ(header.client_id, std::nullopt);
    EXPECT_EQ(reader.remaining(), 5u);
  }
  {
    // v2: null client id, then two tagged fields (tag 0 with 2 bytes, tag 5 with none), then
    // one body byte.
    const std::string bytes =
        Bytes({0, 18, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 2, 0, 2, 'x', 'y', 5, 0, 0x42});
    WireReader reader(bytes);
    RequestHeader header;
    ASSERT_TRUE(DecodeRequestHeader(&reader, 2, &header).ok());
    EXPECT_EQ(header.api_key, ApiKey::kApiVersions);
    EXPECT_EQ(header.api_version, 3);
    EXPECT_EQ(header.correlation_id, 9);
    EXPECT_EQ(header.client_id, std::nullopt);
    EXPECT_EQ(reader.rest(), "\x42");
  }
}

TEST(RequestHeaderTest, EveryTruncationFails) {
  const std::string v2 = Bytes({0, 18, 0, 3, 0, 0, 0, 9, 0, 1, 'r', 1, 7, 1, 'z'});
  for (size_t length = 0; length < kHeaderV1.size(); ++length) {
    WireReader reader(absl::string_view(kHeaderV1).substr(0, length));
    RequestHeader header;
    EXPECT_EQ(DecodeRequestHeader(&reader, 1, &header).code(), absl::StatusCode::kInvalidArgument)
        << length;
  }
  for (size_t length = 0; length < v2.size(); ++length) {
    WireReader reader(absl::string_view(v2).substr(0, length));
    RequestHeader header;
    EXPECT_EQ(DecodeRequestHeader(&reader, 2, &header).code(), absl::StatusCode::kInvalidArgument)
        << length;
  }
  WireReader whole(v2);
  RequestHeader header;
  EXPECT_TRUE(DecodeRequestHeader(&whole, 2, &header).ok());
}

TEST(RequestHeaderTest, RejectsMalformedLengthsAndTaggedFields) {
  RequestHeader header;
  {
    const std::string bytes = Bytes({0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xfe});  // client id -2
    WireReader reader(bytes);
    EXPECT_FALSE(DecodeRequestHeader(&reader, 1, &header).ok());
  }
  {
    // A tagged field count of 1000 with three bytes left fails before looping.
    const std::string bytes = Bytes({0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xe8, 0x07, 0, 0, 0});
    WireReader reader(bytes);
    absl::Status status = DecodeRequestHeader(&reader, 2, &header);
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(absl::StrContains(status.message(), "tagged fields")) << status;
  }
  {
    // A varint running past five bytes.
    const std::string bytes = Bytes({0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0x81, 0x81, 0x81,
                                     0x81, 0x81, 0x01});
    WireReader reader(bytes);
    EXPECT_FALSE(DecodeRequestHeader(&reader, 2, &header).ok());
  }
  {
    // A tagged field whose size runs past the input.
    const std::string bytes = Bytes({0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 1, 0, 9, 'a'});
    WireReader reader(bytes);
    EXPECT_FALSE(DecodeRequestHeader(&reader, 2, &header).ok());
  }
}

TEST(RequestHeaderTest, EncodesWhatItDecodes) {
  const RequestHeader header{.api_key = ApiKey::kMetadata,
                             .api_version = 1,
                             .correlation_id = 0x01020304,
                             .client_id = "cli"};
  std::string v1;
  ASSERT_TRUE(EncodeRequestHeader(header, 1, &v1).ok());
  EXPECT_EQ(v1, kHeaderV1);
  std::string v0;
  ASSERT_TRUE(EncodeRequestHeader(header, 0, &v0).ok());
  EXPECT_EQ(v0, kHeaderV1.substr(0, 8));
  std::string v2;
  RequestHeader null_client = header;
  null_client.client_id.reset();
  ASSERT_TRUE(EncodeRequestHeader(null_client, 2, &v2).ok());
  EXPECT_EQ(v2, Bytes({0, 3, 0, 1, 1, 2, 3, 4, 0xff, 0xff, 0}));

  RequestHeader long_client = header;
  long_client.client_id = std::string(40000, 'c');
  std::string out;
  EXPECT_FALSE(EncodeRequestHeader(long_client, 1, &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(FinishFrameTest, WritesTheSizeAndRefusesOversizedFrames) {
  std::string frame(kFrameSizePrefixBytes, '\0');
  frame += "abc";
  ASSERT_TRUE(FinishFrame(&frame).ok());
  EXPECT_EQ(frame, Frame("abc"));
  std::string huge(kFrameSizePrefixBytes + static_cast<size_t>(kFrameBytesMax) + 1, '\0');
  EXPECT_EQ(FinishFrame(&huge).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace runnel::protocol
