// Compression: round trips for every codec, Kafka's framings (xerial snappy, independent-block LZ4
// frames, gzip), raw snappy accepted, the output limit, and rejection of malformed input.
#include "broker/storage/compression.h"

#include <snappy.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/common/big_endian.h"
#include "gtest/gtest.h"

namespace runnel::storage {
namespace {

const Compression kCodecs[] = {Compression::kNone, Compression::kGzip, Compression::kSnappy,
                               Compression::kLz4, Compression::kZstd};
const Compression kRealCodecs[] = {Compression::kGzip, Compression::kSnappy, Compression::kLz4,
                                   Compression::kZstd};

uint64_t NextRandom(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

std::string RandomBytes(uint64_t& state, size_t length) {
  std::string bytes(length, '\0');
  for (char& c : bytes) c = static_cast<char>(NextRandom(state));
  return bytes;
}

// Text-like bytes that compress well but not trivially.
std::string CompressibleBytes(uint64_t& state, size_t length) {
  static const char* const kWords[] = {"offset ", "leader ", "epoch ",
                                       "batch ",  "record ", "kafka "};
  std::string bytes;
  while (bytes.size() < length) bytes += kWords[NextRandom(state) % 6];
  bytes.resize(length);
  return bytes;
}

void ExpectRoundTrip(Compression codec, const std::string& data) {
  absl::StatusOr<std::string> compressed = Compress(codec, data);
  ASSERT_TRUE(compressed.ok()) << CompressionName(codec) << ": " << compressed.status();
  absl::StatusOr<std::string> decompressed = Decompress(codec, *compressed, data.size());
  ASSERT_TRUE(decompressed.ok()) << CompressionName(codec) << ": " << decompressed.status();
  EXPECT_TRUE(*decompressed == data) << CompressionName(codec) << " length " << data.size();
}

// Checks round trips of empty, tiny, random (incompressible) and text-like inputs in every codec,
// with the output limit set to exactly the original size.
TEST(CompressionTest, RoundTripsEveryCodec) {
  uint64_t state = 1;
  for (Compression codec : kCodecs) {
    ExpectRoundTrip(codec, "");
    ExpectRoundTrip(codec, "x");
    ExpectRoundTrip(codec, RandomBytes(state, 1000));
    ExpectRoundTrip(codec, CompressibleBytes(state, 100000));
  }
}

// Checks round trips whose output lands on, just below and just above the bounded output buffer's
// growth steps (powers of two from 4 KiB), where a decoder fills its room exactly and must be
// called once more to report that the stream has ended.
TEST(CompressionTest, RoundTripsAtBufferGrowthBoundaries) {
  uint64_t state = 11;
  for (size_t power = 12; power <= 21; ++power) {
    for (size_t length : {(size_t{1} << power) - 1, size_t{1} << power, (size_t{1} << power) + 1}) {
      const std::string zeros(length, '\0');
      const std::string text = CompressibleBytes(state, length);
      for (Compression codec : kRealCodecs) {
        ExpectRoundTrip(codec, zeros);
        ExpectRoundTrip(codec, text);
      }
    }
  }
}

// Checks round trips of 5 MiB inputs, which span many snappy blocks (32 KiB), LZ4 blocks (64 KiB)
// and many growth steps of the bounded output buffer, plus 4 MiB of zeros, snappy's best ratio.
TEST(CompressionTest, RoundTripsLargeInput) {
  uint64_t state = 2;
  const std::string text = CompressibleBytes(state, size_t{5} << 20);
  const std::string random = RandomBytes(state, size_t{5} << 20);
  const std::string zeros(size_t{4} << 20, '\0');
  for (Compression codec : kRealCodecs) {
    ExpectRoundTrip(codec, text);
    ExpectRoundTrip(codec, random);
    ExpectRoundTrip(codec, zeros);
  }
}

// Checks that output one byte over the limit is refused with kInvalidArgument, and that exactly the
// limit is accepted, for every codec including none.
TEST(CompressionTest, OutputLimitIsEnforced) {
  uint64_t state = 3;
  for (const std::string& data : {CompressibleBytes(state, 200000), std::string(200000, 'a')}) {
    for (Compression codec : kCodecs) {
      absl::StatusOr<std::string> compressed = Compress(codec, data);
      ASSERT_TRUE(compressed.ok());
      EXPECT_TRUE(Decompress(codec, *compressed, data.size()).ok()) << CompressionName(codec);
      absl::StatusOr<std::string> over = Decompress(codec, *compressed, data.size() - 1);
      EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument) << CompressionName(codec);
      absl::StatusOr<std::string> tiny = Decompress(codec, *compressed, 10);
      EXPECT_EQ(tiny.status().code(), absl::StatusCode::kInvalidArgument) << CompressionName(codec);
      absl::StatusOr<std::string> zero = Decompress(codec, *compressed, 0);
      EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument) << CompressionName(codec);
    }
  }
}

// Checks that a decompression bomb (64 MiB of zeros, compressed to a few KiB) is refused under a
// 1 MiB limit without producing the 64 MiB.
TEST(CompressionTest, BombIsRefusedUnderLimit) {
  const std::string zeros(size_t{64} << 20, '\0');
  for (Compression codec : kRealCodecs) {
    absl::StatusOr<std::string> compressed = Compress(codec, zeros);
    ASSERT_TRUE(compressed.ok());
    absl::StatusOr<std::string> result = Decompress(codec, *compressed, size_t{1} << 20);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << CompressionName(codec);
  }
}

// Checks that garbage, empty input, truncations and trailing bytes are rejected with
// kInvalidArgument for every real codec (never a crash; ASan/UBSan builds check the rest).
TEST(CompressionTest, MalformedInputIsRejected) {
  uint64_t state = 4;
  const std::string data = CompressibleBytes(state, 100000);
  for (Compression codec : kRealCodecs) {
    SCOPED_TRACE(CompressionName(codec));
    EXPECT_EQ(Decompress(codec, "", 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Decompress(codec, "this is not compressed at all, not in any codec", 1 << 20)
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
    // Random bytes of 16 or more (shorter ones could, rarely, be a valid tiny raw snappy block).
    for (int i = 0; i < 20; ++i) {
      EXPECT_FALSE(
          Decompress(codec, RandomBytes(state, 16 + NextRandom(state) % 500), 1 << 20).ok());
    }
    absl::StatusOr<std::string> compressed = Compress(codec, data);
    ASSERT_TRUE(compressed.ok());
    // Every truncation of a valid stream is refused, except that xerial snappy has no end marker:
    // cut exactly between blocks it is a valid, shorter stream (the batch CRC catches that).
    for (size_t cut = 0; cut < compressed->size(); cut += 1 + compressed->size() / 200) {
      absl::StatusOr<std::string> result = Decompress(codec, compressed->substr(0, cut), 1 << 20);
      if (codec == Compression::kSnappy && result.ok()) {
        EXPECT_LT(result->size(), data.size()) << "cut at " << cut;
        EXPECT_EQ(*result, data.substr(0, result->size())) << "cut at " << cut;
        continue;
      }
      EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << "cut at " << cut;
    }
    absl::StatusOr<std::string> trailing = Decompress(codec, *compressed + "junk", 1 << 20);
    EXPECT_EQ(trailing.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// Checks that single-byte corruptions of valid streams never crash and, when accepted, stay within
// the limit (codecs without checksums, like snappy, may decode corrupted bytes "successfully").
TEST(CompressionTest, CorruptedStreamsNeverCrash) {
  uint64_t state = 5;
  const std::string data = CompressibleBytes(state, 20000);
  for (Compression codec : kRealCodecs) {
    absl::StatusOr<std::string> compressed = Compress(codec, data);
    ASSERT_TRUE(compressed.ok());
    for (int trial = 0; trial < 300; ++trial) {
      std::string corrupted = *compressed;
      corrupted[NextRandom(state) % corrupted.size()] ^=
          static_cast<char>(1 + NextRandom(state) % 255);
      absl::StatusOr<std::string> result = Decompress(codec, corrupted, 30000);
      if (result.ok()) {
        EXPECT_LE(result->size(), 30000u);
      } else {
        EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
      }
    }
  }
}

// Checks the xerial framing Kafka's Java client writes: magic, version 1, compatible version 1,
// then [i32 big-endian length][raw snappy block] per 32 KiB of input, each block decodable alone.
TEST(CompressionTest, SnappyWritesXerialFraming) {
  uint64_t state = 6;
  const std::string data = CompressibleBytes(state, 3 * kSnappyXerialBlockBytes + 100);
  absl::StatusOr<std::string> compressed = Compress(Compression::kSnappy, data);
  ASSERT_TRUE(compressed.ok());
  ASSERT_GE(compressed->size(), kSnappyXerialHeaderBytes);
  EXPECT_EQ(compressed->substr(0, 8), std::string("\x82SNAPPY\0", 8));
  EXPECT_EQ(LoadBigEndian<int32_t>(compressed->data() + 8), 1);
  EXPECT_EQ(LoadBigEndian<int32_t>(compressed->data() + 12), 1);
  absl::string_view rest = absl::string_view(*compressed).substr(kSnappyXerialHeaderBytes);
  std::string reassembled;
  int blocks = 0;
  while (!rest.empty()) {
    ASSERT_GE(rest.size(), 4u);
    const uint32_t length = LoadBigEndian<uint32_t>(rest.data());
    rest.remove_prefix(4);
    ASSERT_LE(length, rest.size());
    std::string block;
    ASSERT_TRUE(snappy::Uncompress(rest.data(), length, &block));
    EXPECT_LE(block.size(), kSnappyXerialBlockBytes);
    reassembled += block;
    rest.remove_prefix(length);
    ++blocks;
  }
  EXPECT_EQ(blocks, 4);
  EXPECT_TRUE(reassembled == data);

  // Empty input is the header alone.
  absl::StatusOr<std::string> empty = Compress(Compression::kSnappy, "");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), kSnappyXerialHeaderBytes);
}

// Checks that a raw snappy block (no xerial framing), as some clients send, is accepted, and that a
// raw block claiming an impossible expansion is refused before anything is allocated for it.
TEST(CompressionTest, SnappyAcceptsRawBlock) {
  uint64_t state = 7;
  const std::string data = CompressibleBytes(state, 50000);
  std::string raw;
  snappy::Compress(data.data(), data.size(), &raw);
  absl::StatusOr<std::string> result = Decompress(Compression::kSnappy, raw, data.size());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(*result == data);

  // Declared length 0x7fffffff (varint ff ff ff ff 07) in a 6-byte block.
  const std::string liar("\xff\xff\xff\xff\x07\x00", 6);
  EXPECT_EQ(Decompress(Compression::kSnappy, liar, size_t{1} << 30).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Checks that xerial framing damage is caught: a truncated header, a block length past the end, and
// a zero-length block.
TEST(CompressionTest, SnappyRejectsBadXerialFraming) {
  absl::StatusOr<std::string> compressed = Compress(Compression::kSnappy, "hello, hello, hello");
  ASSERT_TRUE(compressed.ok());
  EXPECT_FALSE(Decompress(Compression::kSnappy, compressed->substr(0, 12), 100).ok());
  std::string long_block = *compressed;
  long_block[kSnappyXerialHeaderBytes] = '\x7f';
  EXPECT_EQ(Decompress(Compression::kSnappy, long_block, 100).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string empty_block = compressed->substr(0, kSnappyXerialHeaderBytes);
  empty_block.append(4, '\0');
  EXPECT_EQ(Decompress(Compression::kSnappy, empty_block, 100).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Checks that the LZ4 frame declares independent blocks (FLG bit 5), which Kafka's Java reader
// needs, and starts with the frame magic.
TEST(CompressionTest, Lz4WritesIndependentBlocks) {
  absl::StatusOr<std::string> compressed = Compress(Compression::kLz4, std::string(300000, 'k'));
  ASSERT_TRUE(compressed.ok());
  ASSERT_GE(compressed->size(), 6u);
  EXPECT_EQ(compressed->substr(0, 4), std::string("\x04\x22\x4d\x18", 4));
  const uint8_t flags = static_cast<uint8_t>((*compressed)[4]);
  EXPECT_EQ(flags >> 6, 1) << "frame version";
  EXPECT_NE(flags & 0x20, 0) << "block independence";
}

// Checks that concatenated gzip members, LZ4 frames and zstd frames decode to the concatenation,
// as Java's GZIPInputStream and librdkafka read them.
TEST(CompressionTest, ConcatenatedStreamsDecode) {
  for (Compression codec : {Compression::kGzip, Compression::kLz4, Compression::kZstd}) {
    absl::StatusOr<std::string> first = Compress(codec, "first part, ");
    absl::StatusOr<std::string> second = Compress(codec, "second part");
    ASSERT_TRUE(first.ok() && second.ok());
    absl::StatusOr<std::string> result = Decompress(codec, *first + *second, 100);
    ASSERT_TRUE(result.ok()) << CompressionName(codec) << ": " << result.status();
    EXPECT_EQ(*result, "first part, second part");
  }
}

// Checks that codec numbers 5-7 (possible in a batch's 3 attribute bits) are refused.
TEST(CompressionTest, UnknownCodecIsRejected) {
  for (int codec = 5; codec <= 7; ++codec) {
    EXPECT_EQ(Compress(static_cast<Compression>(codec), "x").status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Decompress(static_cast<Compression>(codec), "x", 10).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace runnel::storage
