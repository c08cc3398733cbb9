// RecordBatch v2: the codec against a batch written out byte by byte here (its CRC computed by the
// bit-at-a-time reference CRC-32C of tests/test_util.h), every validation rule, compression,
// splitting, the in-place rewrites, zigzag varints, and deterministic random properties
// (build/validate/decode agree; mutated bytes never crash the decoder and CRC damage is always
// caught).
#include "broker/storage/record_batch.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "broker/common/varint.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace runnel::storage {
namespace {

// --- Independent helpers: nothing here calls the code under test. ---

using ::runnel::testing::BitwiseCrc32c;
using ::runnel::testing::XorShift;

void PutBigEndian(std::string& bytes, size_t offset, uint64_t value, size_t width) {
  for (size_t i = 0; i < width; ++i) {
    bytes[offset + width - 1 - i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

uint64_t GetBigEndian(absl::string_view bytes, size_t offset, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

// Recomputes the CRC field (bytes 17-20) over bytes 21 to the end, as a producer would.
void FixCrc(std::string& batch) { PutBigEndian(batch, 17, BitwiseCrc32c(batch.substr(21)), 4); }

// Sets batchLength to match the bytes present, then the CRC.
void FixLengthAndCrc(std::string& batch) {
  PutBigEndian(batch, 8, batch.size() - 12, 4);
  FixCrc(batch);
}

std::string Bytes(std::initializer_list<uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

constexpr int64_t kBaseTimestampMs = 1700000000000;  // 0x0000018BCFE56800

// The batch below, as records.
std::vector<Record> HandBuiltRecords() {
  return {
      Record{.timestamp_delta = 0, .offset_delta = 0, .key = "k", .value = "v1"},
      Record{.timestamp_delta = 5,
             .offset_delta = 1,
             .key = std::nullopt,
             .value = "",
             .headers = {{"h", "x"}, {"n", std::nullopt}}},
      Record{.timestamp_delta = 300, .offset_delta = 2, .key = "k2", .value = std::nullopt},
  };
}

BatchBuildOptions HandBuiltOptions() {
  return BatchBuildOptions{.base_offset = 100,
                           .partition_leader_epoch = 7,
                           .base_timestamp = kBaseTimestampMs,
                           .producer_id = 42,
                           .producer_epoch = 3,
                           .base_sequence = 10};
}

// The CRC-32C of the batch below from attributes on, as computed once by BitwiseCrc32c and pinned
// here so that a change to the vector or to the reference is noticed.
constexpr uint32_t kHandBuiltCrc = 0xA7F707FF;

// Three records exercising a key and value, a null key with an empty value and two headers (one
// with a null value), a null value (a tombstone), and a two-byte varint (timestampDelta 300).
std::string HandBuiltBatch() {
  // clang-format off
  std::string batch = Bytes({
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64,  // baseOffset 100
      0x00, 0x00, 0x00, 0x53,                          // batchLength 83 (95 bytes in all)
      0x00, 0x00, 0x00, 0x07,                          // partitionLeaderEpoch 7
      0x02,                                            // magic 2
      0x00, 0x00, 0x00, 0x00,                          // crc, filled in below
      0x00, 0x00,                                      // attributes: none, CreateTime
      0x00, 0x00, 0x00, 0x02,                          // lastOffsetDelta 2
      0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,  // baseTimestamp 1700000000000
      0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x69, 0x2c,  // maxTimestamp baseTimestamp + 300
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,  // producerId 42
      0x00, 0x03,                                      // producerEpoch 3
      0x00, 0x00, 0x00, 0x0a,                          // baseSequence 10
      0x00, 0x00, 0x00, 0x03,                          // recordCount 3
      // Record 0 (offset 61): length 9
      0x12,
      0x00,              // attributes
      0x00,              // timestampDelta 0
      0x00,              // offsetDelta 0
      0x02, 'k',         // key "k"
      0x04, 'v', '1',    // value "v1"
      0x00,              // no headers
      // Record 1 (offset 71): length 13
      0x1a,
      0x00,              // attributes
      0x0a,              // timestampDelta 5
      0x02,              // offsetDelta 1
      0x01,              // key null (-1)
      0x00,              // value "" (length 0)
      0x04,              // 2 headers
      0x02, 'h', 0x02, 'x',  // "h": "x"
      0x02, 'n', 0x01,       // "n": null
      // Record 2 (offset 85): length 9
      0x12,
      0x00,              // attributes
      0xd8, 0x04,        // timestampDelta 300 (zigzag 600)
      0x04,              // offsetDelta 2
      0x04, 'k', '2',    // key "k2"
      0x01,              // value null
      0x00,              // no headers
  });
  // clang-format on
  FixCrc(batch);
  return batch;
}

// Byte offsets inside HandBuiltBatch().
constexpr size_t kRecord0Offset = 61;
constexpr size_t kRecord1Offset = 71;
constexpr size_t kRecord2Offset = 85;

// Expects kInvalidArgument whose message names the broken rule.
void ExpectInvalid(const absl::Status& status, absl::string_view rule) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), rule))
      << "wanted \"" << rule << "\" in " << status;
}

absl::Status Validate(absl::string_view batch, bool check_records = true) {
  return ValidateBatch(batch, BatchValidationOptions{.check_records = check_records});
}

// --- The hand-built vector ---

// Checks the vector's own CRC against the pinned value and that the vector is 95 bytes.
TEST(RecordBatchTest, HandBuiltVectorIsWhatItSays) {
  const std::string batch = HandBuiltBatch();
  ASSERT_EQ(batch.size(), 95u);
  EXPECT_EQ(GetBigEndian(batch, 17, 4), kHandBuiltCrc);
  EXPECT_EQ(ComputeBatchCrc(batch), kHandBuiltCrc);
}

// Checks that BuildBatch produces exactly the hand-built bytes.
TEST(RecordBatchTest, BuildMatchesHandBuiltBytes) {
  absl::StatusOr<std::string> built = BuildBatch(HandBuiltOptions(), HandBuiltRecords());
  ASSERT_TRUE(built.ok()) << built.status();
  const std::string expected = HandBuiltBatch();
  ASSERT_EQ(built->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(static_cast<unsigned char>((*built)[i]), static_cast<unsigned char>(expected[i]))
        << "byte " << i;
  }
}

// Checks that the header parses to the fields written out above.
TEST(RecordBatchTest, ParseHeaderOfHandBuiltBytes) {
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(HandBuiltBatch());
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->base_offset, 100);
  EXPECT_EQ(header->batch_length, 83);
  EXPECT_EQ(header->partition_leader_epoch, 7);
  EXPECT_EQ(header->magic, 2);
  EXPECT_EQ(header->crc, kHandBuiltCrc);
  EXPECT_EQ(header->attributes, 0);
  EXPECT_EQ(header->compression(), Compression::kNone);
  EXPECT_FALSE(header->log_append_time());
  EXPECT_FALSE(header->transactional());
  EXPECT_FALSE(header->control());
  EXPECT_EQ(header->last_offset_delta, 2);
  EXPECT_EQ(header->last_offset(), 102);
  EXPECT_EQ(header->base_timestamp, kBaseTimestampMs);
  EXPECT_EQ(header->max_timestamp, kBaseTimestampMs + 300);
  EXPECT_EQ(header->producer_id, 42);
  EXPECT_EQ(header->producer_epoch, 3);
  EXPECT_EQ(header->base_sequence, 10);
  EXPECT_EQ(header->record_count, 3);
  EXPECT_EQ(header->total_bytes(), 95u);
}

// Checks that the hand-built bytes validate and decode to the records written out above.
TEST(RecordBatchTest, ValidateAndDecodeHandBuiltBytes) {
  const std::string batch = HandBuiltBatch();
  EXPECT_TRUE(Validate(batch).ok()) << Validate(batch);
  EXPECT_TRUE(Validate(batch, /*check_records=*/false).ok());
  absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(*records, HandBuiltRecords());
  ASSERT_EQ(records->size(), 3u);
  EXPECT_FALSE((*records)[1].key.has_value());
  EXPECT_EQ((*records)[1].value, std::optional<std::string>(""));
  EXPECT_FALSE((*records)[1].headers[1].value.has_value());
  EXPECT_FALSE((*records)[2].value.has_value());
}

// Checks ComputeBatchCrc against the reference over bytes 21 to the end, for a batch whose CRC
// field holds garbage (the field itself is outside the covered range).
TEST(RecordBatchTest, ComputeBatchCrcCoversAttributesToEnd) {
  std::string batch = HandBuiltBatch();
  PutBigEndian(batch, 17, 0xDEADBEEF, 4);
  EXPECT_EQ(ComputeBatchCrc(batch), BitwiseCrc32c(batch.substr(21)));
  EXPECT_EQ(ComputeBatchCrc(batch), kHandBuiltCrc);
}

// Checks that the attribute bits land where KAFKA-FACTS.md says (codec bits 0-2, LogAppendTime bit
// 3, transactional bit 4, control bit 5).
TEST(RecordBatchTest, BuildSetsAttributeBits) {
  BatchBuildOptions options = HandBuiltOptions();
  options.compression = Compression::kLz4;
  options.log_append_time = true;
  options.transactional = true;
  options.control = true;
  absl::StatusOr<std::string> built = BuildBatch(options, HandBuiltRecords());
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(GetBigEndian(*built, 21, 2), 0x0003u | 0x08 | 0x10 | 0x20);
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(*built);
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->compression(), Compression::kLz4);
  EXPECT_TRUE(header->log_append_time());
  EXPECT_TRUE(header->transactional());
  EXPECT_TRUE(header->control());
  EXPECT_TRUE(Validate(*built).ok()) << Validate(*built);
}

// --- Compression ---

// Checks, for each codec, that a batch of many records builds with the codec's attribute bits,
// validates, decodes to its records, and that its records section is not the plain one (it really
// was compressed); also that the decompressed-size limit of DecodeRecords holds.
TEST(RecordBatchTest, CompressedBatchesBuildValidateAndDecode) {
  std::vector<Record> records;
  for (int32_t i = 0; i < 200; ++i) {
    records.push_back(Record{.timestamp_delta = i,
                             .offset_delta = i,
                             .key = "key-" + std::to_string(i % 17),
                             .value = std::string(100, static_cast<char>('a' + i % 26)),
                             .headers = {{"trace", std::to_string(i)}, {"none", std::nullopt}}});
  }
  absl::StatusOr<std::string> plain = BuildBatch(HandBuiltOptions(), records);
  ASSERT_TRUE(plain.ok());
  const std::string plain_records = plain->substr(kBatchHeaderBytes);
  for (Compression codec :
       {Compression::kGzip, Compression::kSnappy, Compression::kLz4, Compression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(codec));
    BatchBuildOptions options = HandBuiltOptions();
    options.compression = codec;
    absl::StatusOr<std::string> batch = BuildBatch(options, records);
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(GetBigEndian(*batch, 21, 2) & 0x7, static_cast<uint64_t>(codec));
    EXPECT_LT(batch->size(), plain->size());
    EXPECT_NE(batch->substr(kBatchHeaderBytes), plain_records);
    EXPECT_EQ(GetBigEndian(*batch, 17, 4), BitwiseCrc32c(batch->substr(21)));
    EXPECT_TRUE(Validate(*batch).ok()) << Validate(*batch);
    absl::StatusOr<std::vector<Record>> decoded = DecodeRecords(*batch);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, records);
    ExpectInvalid(DecodeRecords(*batch, plain_records.size() - 1).status(), "exceeds the limit");
    EXPECT_TRUE(DecodeRecords(*batch, plain_records.size()).ok());
  }
}

// Checks that a batch claiming a codec whose payload is not that codec's (with a correct CRC, so it
// got past the checksum) is rejected as malformed, for each codec.
TEST(RecordBatchTest, GarbageCompressedPayloadIsRejected) {
  for (uint8_t codec = 1; codec <= 4; ++codec) {
    std::string batch = HandBuiltBatch();
    batch[22] = static_cast<char>(codec);
    FixCrc(batch);
    EXPECT_EQ(Validate(batch).code(), absl::StatusCode::kInvalidArgument) << int{codec};
    EXPECT_EQ(DecodeRecords(batch).status().code(), absl::StatusCode::kInvalidArgument);
    // Header-only validation does not look inside, by contract.
    EXPECT_TRUE(Validate(batch, /*check_records=*/false).ok());
  }
}

// --- Validation rules, each broken on its own ---

// Checks that a flipped bit anywhere the CRC covers is kDataLoss, for every byte from attributes to
// the end.
TEST(RecordBatchTest, BadCrcIsDataLoss) {
  const std::string good = HandBuiltBatch();
  for (size_t i = kAttributesOffset; i < good.size(); ++i) {
    std::string batch = good;
    batch[i] ^= 0x01;
    EXPECT_EQ(Validate(batch).code(), absl::StatusCode::kDataLoss) << "byte " << i;
    EXPECT_EQ(Validate(batch, /*check_records=*/false).code(), absl::StatusCode::kDataLoss);
  }
  std::string batch = good;
  batch[kCrcOffset] ^= 0x80;  // The stored CRC itself.
  const absl::Status status = Validate(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(status.message(), "CRC")) << status;
}

// Checks that every magic byte but 2 is refused, by validation and by decoding alike.
TEST(RecordBatchTest, BadMagicIsRejected) {
  for (uint8_t magic : {0, 1, 3, 0xff}) {
    std::string batch = HandBuiltBatch();
    batch[kMagicOffset] = static_cast<char>(magic);  // Outside the CRC: no fix needed.
    ExpectInvalid(Validate(batch), "magic");
    ExpectInvalid(DecodeRecords(batch).status(), "magic");
  }
}

// Checks each way the length can be wrong: too short for a header, batchLength below a header's
// worth or above kBatchBytesMax, batchLength longer than the bytes, and bytes beyond batchLength.
TEST(RecordBatchTest, BadLengthIsRejected) {
  const std::string good = HandBuiltBatch();
  ExpectInvalid(Validate(good.substr(0, kBatchHeaderBytes - 1)), "header needs 61 bytes");
  ExpectInvalid(ParseBatchHeader(good.substr(0, 12)).status(), "header needs 61 bytes");

  for (int64_t batch_length :
       {int64_t{-1}, int64_t{0}, int64_t{48}, int64_t{0x7fffffff}, int64_t{64 << 20}}) {
    std::string batch = good;
    PutBigEndian(batch, kBatchLengthOffset, static_cast<uint32_t>(batch_length), 4);
    ExpectInvalid(ParseBatchHeader(batch).status(), "batchLength");
    ExpectInvalid(Validate(batch), "batchLength");
    ExpectInvalid(DecodeRecords(batch).status(), "batchLength");
  }
  // 49 (a bare header) and kBatchBytesMax - 12 are the extremes ParseBatchHeader accepts.
  std::string bare = good.substr(0, kBatchHeaderBytes);
  PutBigEndian(bare, kBatchLengthOffset, 49, 4);
  EXPECT_TRUE(ParseBatchHeader(bare).ok());
  PutBigEndian(bare, kBatchLengthOffset, (64 << 20) - 12, 4);
  EXPECT_TRUE(ParseBatchHeader(bare).ok());

  std::string longer_than_bytes = good;
  PutBigEndian(longer_than_bytes, kBatchLengthOffset, 84, 4);
  ExpectInvalid(Validate(longer_than_bytes), "batchLength says 96");
  ExpectInvalid(DecodeRecords(longer_than_bytes).status(), "batchLength says 96");

  std::string bytes_beyond_length = good + "x";
  ExpectInvalid(Validate(bytes_beyond_length), "batch holds 96 bytes");
}

// Checks that the compression codecs 5 to 7 (no such codec) are refused, with or without the
// records checked, and by decoding.
TEST(RecordBatchTest, UnknownCodecIsRejected) {
  for (uint8_t codec = 5; codec <= 7; ++codec) {
    std::string batch = HandBuiltBatch();
    batch[22] = static_cast<char>(codec);
    FixCrc(batch);
    ExpectInvalid(Validate(batch), "unknown compression codec");
    ExpectInvalid(Validate(batch, /*check_records=*/false), "unknown compression codec");
    ExpectInvalid(DecodeRecords(batch).status(), "unknown compression codec");
  }
}

// Checks recordCount against the records: more declared than present, fewer declared than present
// (the rest is trailing), negative, over kBatchRecordsMax, and more than the bytes could hold.
TEST(RecordBatchTest, RecordCountMismatchIsRejected) {
  const std::string good = HandBuiltBatch();
  {
    std::string batch = good;
    PutBigEndian(batch, kRecordCountOffset, 4, 4);
    PutBigEndian(batch, kLastOffsetDeltaOffset, 3, 4);
    FixCrc(batch);
    ExpectInvalid(Validate(batch), "recordCount is 4 but the records end after 3");
    ExpectInvalid(DecodeRecords(batch).status(), "recordCount is 4 but the records end after 3");
  }
  {
    std::string batch = good;
    PutBigEndian(batch, kRecordCountOffset, 2, 4);
    PutBigEndian(batch, kLastOffsetDeltaOffset, 1, 4);
    FixCrc(batch);
    ExpectInvalid(Validate(batch), "10 bytes follow the last of 2 records");
    ExpectInvalid(DecodeRecords(batch).status(), "10 bytes follow the last of 2 records");
  }
  for (int64_t count : {int64_t{-1}, int64_t{kBatchRecordsMax} + 1, int64_t{0x7fffffff}}) {
    std::string batch = good;
    PutBigEndian(batch, kRecordCountOffset, static_cast<uint32_t>(count), 4);
    FixCrc(batch);
    ExpectInvalid(Validate(batch, /*check_records=*/false), "recordCount");
    ExpectInvalid(DecodeRecords(batch).status(), "recordCount");
  }
  {
    // Within kBatchRecordsMax but impossible in 34 bytes: refused before anything is sized by it.
    std::string batch = good;
    PutBigEndian(batch, kRecordCountOffset, kBatchRecordsMax, 4);
    PutBigEndian(batch, kLastOffsetDeltaOffset, kBatchRecordsMax - 1, 4);
    FixCrc(batch);
    ExpectInvalid(Validate(batch), "cannot fit in 34 bytes");
    ExpectInvalid(DecodeRecords(batch).status(), "cannot fit in 34 bytes");
  }
}

// Checks that offset deltas must run 0, 1, 2, ... : record 1 rewritten to delta 2 (so the deltas
// are 0, 2, 2 and lastOffsetDelta still matches the count).
TEST(RecordBatchTest, OffsetDeltasMustCountFromZero) {
  std::string batch = HandBuiltBatch();
  ASSERT_EQ(batch[kRecord1Offset + 3], 0x02);
  batch[kRecord1Offset + 3] = 0x04;
  FixCrc(batch);
  ExpectInvalid(Validate(batch), "record 1 has offsetDelta 2");
  // Decoding reports what is there; the order is ValidateBatch's business.
  absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ((*records)[1].offset_delta, 2);

  std::string starts_at_one = HandBuiltBatch();
  starts_at_one[kRecord0Offset + 3] = 0x02;
  FixCrc(starts_at_one);
  ExpectInvalid(Validate(starts_at_one), "record 0 has offsetDelta 1");
}

// Checks that lastOffsetDelta must match the last record's offset delta when the records are
// checked, and is left alone when only the header is.
TEST(RecordBatchTest, LastOffsetDeltaMismatchIsRejected) {
  for (int32_t last_offset_delta : {-1, 0, 1, 3, 1000}) {
    std::string batch = HandBuiltBatch();
    PutBigEndian(batch, kLastOffsetDeltaOffset, static_cast<uint32_t>(last_offset_delta), 4);
    FixCrc(batch);
    ExpectInvalid(Validate(batch), "lastOffsetDelta");
    // Header-only validation leaves it alone: compacted batches keep their original
    // lastOffsetDelta.
    EXPECT_TRUE(Validate(batch, /*check_records=*/false).ok());
  }
}

// Checks that a record's fields may not run past its length or the batch: a record length past the
// end, a key length past the record, a truncated varint, a negative length other than -1, a null
// header key, and a negative header count.
TEST(RecordBatchTest, TruncatedRecordIsRejected) {
  const std::string good = HandBuiltBatch();
  const struct {
    size_t offset;
    uint8_t byte;
    const char* rule;
  } cases[] = {
      {kRecord2Offset, 0x14, "record 2: length 10 but 9 bytes remain"},
      {kRecord0Offset + 4, 0x20, "record 0: key length 16 but"},
      {kRecord0Offset + 6, 0x0e, "record 0: value length 7 but"},
      {kRecord2Offset + 8, 0x03, "record 2: value length -2"},
      {kRecord1Offset + 7, 0x01, "record 1: header 0 has a null key"},
      {kRecord1Offset + 6, 0x03, "record 1: headerCount -2"},
      {kRecord1Offset + 6, 0x0a, "record 1: headerCount 5 cannot fit"},
      {kRecord1Offset + 13, 0x04, "record 1: header value length 2 but 0 bytes remain"},
      // The last byte of record 2 becomes a varint continuation that never ends.
      {kRecord2Offset + 9, 0x80, "record 2: malformed headerCount"},
      {kRecord2Offset, 0x00, "record 2: truncated before attributes"},
  };
  for (const auto& c : cases) {
    std::string batch = good;
    batch[c.offset] = static_cast<char>(c.byte);
    FixCrc(batch);
    ExpectInvalid(Validate(batch), c.rule);
    ExpectInvalid(DecodeRecords(batch).status(), c.rule);
  }
}

// Checks that bytes may not hide inside the batch: after the last record (batchLength covering
// them), and inside a record's length after its headers.
TEST(RecordBatchTest, TrailingGarbageInsideBatchIsRejected) {
  std::string after_records = HandBuiltBatch() + std::string(2, '\0');
  FixLengthAndCrc(after_records);
  ExpectInvalid(Validate(after_records), "2 bytes follow the last of 3 records");
  ExpectInvalid(DecodeRecords(after_records).status(), "2 bytes follow the last of 3 records");

  std::string inside_record = HandBuiltBatch();
  inside_record.insert(kRecord1Offset, 1, '\0');  // After record 0's header count...
  inside_record[kRecord0Offset] = 0x14;           // ...and inside its length, now 10.
  FixLengthAndCrc(inside_record);
  ExpectInvalid(Validate(inside_record), "record 0: 1 bytes left over inside the record's length");
  ExpectInvalid(DecodeRecords(inside_record).status(), "left over");
}

// Checks batch_bytes_max: the 95-byte batch passes at 95 and fails at 94, and a limit above
// kBatchBytesMax is capped to it.
TEST(RecordBatchTest, OversizeBatchIsRejected) {
  const std::string batch = HandBuiltBatch();
  EXPECT_TRUE(ValidateBatch(batch, {.batch_bytes_max = 95}).ok());
  ExpectInvalid(ValidateBatch(batch, {.batch_bytes_max = 94, .check_records = false}),
                "exceeds the limit of 94");
  EXPECT_TRUE(ValidateBatch(batch, {.batch_bytes_max = std::numeric_limits<size_t>::max()}).ok());
}

// Checks that a CreateTime record's timestamp may not exceed maxTimestamp, while a negative delta
// (a record older than baseTimestamp, which Kafka's producers allow) is fine, and that a delta that
// overflows int64 is rejected rather than wrapping. Under LogAppendTime the records' own
// timestamps are not what readers see, so they are not checked.
TEST(RecordBatchTest, TimestampsMayNotExceedMaxTimestamp) {
  std::string max_too_small = HandBuiltBatch();
  PutBigEndian(max_too_small, kMaxTimestampOffset, kBaseTimestampMs + 299, 8);
  FixCrc(max_too_small);
  ExpectInvalid(Validate(max_too_small), "record 2 has timestampDelta 300");

  std::vector<Record> records = HandBuiltRecords();
  records[1].timestamp_delta = -1;
  absl::StatusOr<std::string> negative_delta = BuildBatch(HandBuiltOptions(), records);
  ASSERT_TRUE(negative_delta.ok());
  EXPECT_TRUE(Validate(*negative_delta).ok()) << Validate(*negative_delta);

  std::string log_append_time = max_too_small;
  log_append_time[22] |= 0x08;
  FixCrc(log_append_time);
  EXPECT_TRUE(Validate(log_append_time).ok()) << Validate(log_append_time);

  // base + delta overflowing int64 is out of range, not wrapped (UBSan would flag a plain add).
  BatchBuildOptions from_zero = HandBuiltOptions();
  from_zero.base_timestamp = 0;
  records = HandBuiltRecords();
  records[2].timestamp_delta = std::numeric_limits<int64_t>::max();
  absl::StatusOr<std::string> built = BuildBatch(from_zero, records);
  ASSERT_TRUE(built.ok());
  EXPECT_TRUE(Validate(*built).ok()) << Validate(*built);
  std::string overflowing = *built;
  PutBigEndian(overflowing, kBaseTimestampOffset, 1000, 8);
  FixCrc(overflowing);
  ExpectInvalid(Validate(overflowing), "record 2 has timestampDelta 9223372036854775807");

  // BuildBatch refuses a maxTimestamp that would overflow.
  BatchBuildOptions near_max = HandBuiltOptions();
  near_max.base_timestamp = std::numeric_limits<int64_t>::max() - 1000;
  records[2].timestamp_delta = 1001;
  ExpectInvalid(BuildBatch(near_max, records).status(), "overflows");
  records[2].timestamp_delta = 1000;
  EXPECT_TRUE(BuildBatch(near_max, records).ok());
}

// Checks that a batch without records passes header-only validation (compaction keeps such
// batches) but not record validation, and that BuildBatch refuses to make one.
TEST(RecordBatchTest, EmptyBatch) {
  std::string batch = HandBuiltBatch().substr(0, kBatchHeaderBytes);
  PutBigEndian(batch, kRecordCountOffset, 0, 4);
  FixLengthAndCrc(batch);
  EXPECT_TRUE(Validate(batch, /*check_records=*/false).ok());
  ExpectInvalid(Validate(batch), "no records");
  absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
  ASSERT_TRUE(records.ok());
  EXPECT_TRUE(records->empty());
  ExpectInvalid(BuildBatch(HandBuiltOptions(), {}).status(), "without records");
}

// Checks BuildBatch's refusals: offset deltas that do not increase, an unknown codec, too many
// headers. Gaps in offset deltas (a compacted batch) are built, pass header validation, and fail
// record validation on lastOffsetDelta.
TEST(RecordBatchTest, BuildChecksItsInput) {
  std::vector<Record> records = HandBuiltRecords();
  records[2].offset_delta = 1;
  ExpectInvalid(BuildBatch(HandBuiltOptions(), records).status(), "offset deltas must increase");
  records = HandBuiltRecords();
  records[0].offset_delta = -1;
  ExpectInvalid(BuildBatch(HandBuiltOptions(), records).status(), "offset deltas must increase");

  BatchBuildOptions options = HandBuiltOptions();
  options.compression = static_cast<Compression>(5);
  ExpectInvalid(BuildBatch(options, HandBuiltRecords()).status(), "unknown compression codec");

  records = HandBuiltRecords();
  records[0].headers.resize(kRecordHeadersMax + 1);
  ExpectInvalid(BuildBatch(HandBuiltOptions(), records).status(), "headers, over the limit");

  records = HandBuiltRecords();
  records[1].offset_delta = 5;
  records[2].offset_delta = 9;
  absl::StatusOr<std::string> gapped = BuildBatch(HandBuiltOptions(), records);
  ASSERT_TRUE(gapped.ok());
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(*gapped);
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->last_offset_delta, 9);
  EXPECT_TRUE(Validate(*gapped, /*check_records=*/false).ok());
  ExpectInvalid(Validate(*gapped), "lastOffsetDelta 9 but recordCount 3");
  absl::StatusOr<std::vector<Record>> decoded = DecodeRecords(*gapped);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, records);
}

// --- Splitting ---

// Checks that concatenated batches split into whole batches, with a partial last batch (cut inside
// its header, and cut inside its records) reported as the remainder.
TEST(RecordBatchTest, SplitBatchesWithRemainder) {
  const std::string one = HandBuiltBatch();
  BatchBuildOptions options = HandBuiltOptions();
  options.compression = Compression::kZstd;
  absl::StatusOr<std::string> two = BuildBatch(options, HandBuiltRecords());
  ASSERT_TRUE(two.ok());
  const std::string whole = one + *two + one;
  for (size_t tail : {size_t{0}, size_t{1}, size_t{30}, size_t{60}, size_t{61}, size_t{94}}) {
    const std::string input = whole + one.substr(0, tail);  // The views point into it.
    size_t remainder = 12345;
    absl::StatusOr<std::vector<absl::string_view>> batches = SplitBatches(input, &remainder);
    ASSERT_TRUE(batches.ok()) << batches.status();
    ASSERT_EQ(batches->size(), 3u);
    EXPECT_EQ((*batches)[0], one);
    EXPECT_EQ((*batches)[1], *two);
    EXPECT_EQ((*batches)[2], one);
    EXPECT_EQ(remainder, tail);
    EXPECT_TRUE(SplitBatches(input).ok());  // remainder_bytes may be null.
  }
  size_t remainder = 1;
  absl::StatusOr<std::vector<absl::string_view>> none = SplitBatches("", &remainder);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(remainder, 0u);
}

// Checks that splitting stops with kInvalidArgument, naming the byte position and the bad field,
// at a batch whose header says a length smaller than a header.
TEST(RecordBatchTest, SplitBatchesRejectsUnreadableHeader) {
  std::string bad = HandBuiltBatch();
  PutBigEndian(bad, kBatchLengthOffset, 10, 4);
  const absl::Status status = SplitBatches(HandBuiltBatch() + bad).status();
  ExpectInvalid(status, "at byte 95");
  ExpectInvalid(status, "batchLength 10");
}

// --- In-place rewrites ---

// Checks that the base offset and leader epoch change without touching the CRC, and the batch
// still validates.
TEST(RecordBatchTest, SetBaseOffsetAndEpochKeepCrcValid) {
  std::string batch = HandBuiltBatch();
  SetBaseOffset(batch.data(), 0x0102030405060708);
  SetPartitionLeaderEpoch(batch.data(), -5);
  EXPECT_EQ(GetBigEndian(batch, 0, 8), 0x0102030405060708u);
  EXPECT_EQ(GetBigEndian(batch, 12, 4), 0xfffffffbu);
  EXPECT_EQ(GetBigEndian(batch, 17, 4), kHandBuiltCrc);
  EXPECT_EQ(batch.substr(16), HandBuiltBatch().substr(16));  // Nothing else moved.
  EXPECT_TRUE(Validate(batch).ok()) << Validate(batch);
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->base_offset, 0x0102030405060708);
  EXPECT_EQ(header->partition_leader_epoch, -5);
}

// Checks that LogAppendTime sets the attribute bit and maxTimestamp, recomputes the CRC (to the
// reference's value), and leaves the records and the other attribute bits alone.
TEST(RecordBatchTest, SetLogAppendTimeRecomputesCrc) {
  BatchBuildOptions options = HandBuiltOptions();
  options.compression = Compression::kSnappy;
  options.transactional = true;
  absl::StatusOr<std::string> built = BuildBatch(options, HandBuiltRecords());
  ASSERT_TRUE(built.ok());
  std::string batch = *built;
  const int64_t append_time_ms = kBaseTimestampMs - 5000;  // Broker clock behind the producer's.
  SetLogAppendTime(batch, append_time_ms);
  EXPECT_NE(GetBigEndian(batch, 17, 4), GetBigEndian(*built, 17, 4));
  EXPECT_EQ(GetBigEndian(batch, 17, 4), BitwiseCrc32c(batch.substr(21)));
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
  ASSERT_TRUE(header.ok());
  EXPECT_TRUE(header->log_append_time());
  EXPECT_TRUE(header->transactional());
  EXPECT_EQ(header->compression(), Compression::kSnappy);
  EXPECT_EQ(header->max_timestamp, append_time_ms);
  EXPECT_EQ(header->base_timestamp, kBaseTimestampMs);
  EXPECT_EQ(batch.substr(kBatchHeaderBytes), built->substr(kBatchHeaderBytes));
  EXPECT_TRUE(Validate(batch).ok()) << Validate(batch);
  absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(*records, HandBuiltRecords());
}

// --- Varints ---

// Checks zigzag varint bytes for boundary values against hand-computed encodings, sizes, and
// decoding back.
TEST(VarintTest, KnownEncodings) {
  const struct {
    int32_t value;
    std::string bytes;
  } varints[] = {
      {0, Bytes({0x00})},
      {-1, Bytes({0x01})},
      {1, Bytes({0x02})},
      {63, Bytes({0x7e})},
      {-64, Bytes({0x7f})},
      {64, Bytes({0x80, 0x01})},
      {300, Bytes({0xd8, 0x04})},
      {std::numeric_limits<int32_t>::max(), Bytes({0xfe, 0xff, 0xff, 0xff, 0x0f})},
      {std::numeric_limits<int32_t>::min(), Bytes({0xff, 0xff, 0xff, 0xff, 0x0f})},
  };
  for (const auto& v : varints) {
    std::string encoded;
    AppendVarint(encoded, v.value);
    EXPECT_EQ(encoded, v.bytes) << v.value;
    EXPECT_EQ(VarintBytes(v.value), v.bytes.size());
    absl::string_view input = v.bytes;
    EXPECT_EQ(ConsumeVarint(&input), v.value);
    EXPECT_TRUE(input.empty());
  }
  const struct {
    int64_t value;
    std::string bytes;
  } varlongs[] = {
      {0, Bytes({0x00})},
      {-1, Bytes({0x01})},
      {int64_t{1} << 32, Bytes({0x80, 0x80, 0x80, 0x80, 0x20})},
      {std::numeric_limits<int64_t>::max(),
       Bytes({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
      {std::numeric_limits<int64_t>::min(),
       Bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
  };
  for (const auto& v : varlongs) {
    std::string encoded;
    AppendVarlong(encoded, v.value);
    EXPECT_EQ(encoded, v.bytes) << v.value;
    EXPECT_EQ(VarlongBytes(v.value), v.bytes.size());
    absl::string_view input = v.bytes;
    EXPECT_EQ(ConsumeVarlong(&input), v.value);
    EXPECT_TRUE(input.empty());
  }
}

// Checks that malformed varints fail and leave the input where it was: empty, unterminated, longer
// than the maximum, and a last byte with bits beyond the value's width.
TEST(VarintTest, MalformedIsRejected) {
  for (const std::string& bytes :
       {std::string(), Bytes({0x80}), Bytes({0xff, 0xff}),
        Bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), Bytes({0xff, 0xff, 0xff, 0xff, 0x10}),
        Bytes({0xff, 0xff, 0xff, 0xff, 0x8f, 0x00})}) {
    absl::string_view input = bytes;
    EXPECT_FALSE(ConsumeVarint(&input).has_value());
    EXPECT_EQ(input.size(), bytes.size());
  }
  for (const std::string& bytes :
       {std::string(), Bytes({0x80}), std::string(10, '\x80') + Bytes({0x00}),
        std::string(9, '\xff') + Bytes({0x02}), std::string(9, '\xff') + Bytes({0x81, 0x00})}) {
    absl::string_view input = bytes;
    EXPECT_FALSE(ConsumeVarlong(&input).has_value());
    EXPECT_EQ(input.size(), bytes.size());
  }
  // An overlong but terminated encoding of a small value is accepted, as Kafka accepts it.
  const std::string overlong = Bytes({0x82, 0x80, 0x00});
  absl::string_view input = overlong;
  EXPECT_EQ(ConsumeVarint(&input), 1);
}

// Checks the round trip of random values of every magnitude.
TEST(VarintTest, RandomRoundTrips) {
  XorShift random{99};
  for (int i = 0; i < 10000; ++i) {
    const int shift = static_cast<int>(random.Below(64));
    const int64_t value = static_cast<int64_t>(random.Next() >> shift);
    const int32_t value32 = static_cast<int32_t>(value);
    std::string encoded;
    AppendVarlong(encoded, value);
    AppendVarint(encoded, value32);
    EXPECT_EQ(encoded.size(), VarlongBytes(value) + VarintBytes(value32));
    absl::string_view input = encoded;
    EXPECT_EQ(ConsumeVarlong(&input), value);
    EXPECT_EQ(ConsumeVarint(&input), value32);
    EXPECT_TRUE(input.empty());
  }
}

// --- Properties, on a deterministic generator ---

std::optional<std::string> RandomBytesOrNull(XorShift& random, size_t length_max) {
  if (random.OneIn(5)) return std::nullopt;
  return random.String(length_max);
}

std::vector<Record> RandomRecords(XorShift& random) {
  std::vector<Record> records(1 + random.Below(random.OneIn(10) ? 300 : 12));
  for (size_t i = 0; i < records.size(); ++i) {
    Record& record = records[i];
    record.offset_delta = static_cast<int32_t>(i);
    // Mostly small deltas, sometimes huge ones, to cover every varlong length.
    record.timestamp_delta = random.OneIn(4)
                                 ? static_cast<int64_t>(random.Next() >> (2 + random.Below(60)))
                                 : static_cast<int64_t>(random.Below(1000));
    record.key = RandomBytesOrNull(random, 20);
    record.value = RandomBytesOrNull(random, random.OneIn(10) ? 2000 : 100);
    record.headers.resize(random.Below(4));
    for (RecordHeader& header : record.headers) {
      header.key = random.String(10);
      header.value = RandomBytesOrNull(random, 30);
    }
  }
  return records;
}

BatchBuildOptions RandomOptions(XorShift& random) {
  return BatchBuildOptions{
      .base_offset = static_cast<int64_t>(random.Next() >> 2),
      .partition_leader_epoch = static_cast<int32_t>(random.Below(1000)) - 1,
      .compression = static_cast<Compression>(random.Below(5)),
      .log_append_time = random.OneIn(4),
      .transactional = random.OneIn(4),
      .control = random.OneIn(8),
      .base_timestamp = static_cast<int64_t>(random.Below(uint64_t{1} << 42)) - 1,
      .producer_id = random.OneIn(2) ? -1 : static_cast<int64_t>(random.Below(1 << 20)),
      .producer_epoch = static_cast<int16_t>(random.Below(100)),
      .base_sequence = static_cast<int32_t>(random.Below(1 << 30)),
  };
}

// Property: random records and options -> BuildBatch -> ValidateBatch OK, DecodeRecords gives back
// the records, and the header holds the options (the header's maxTimestamp is the base plus the
// largest delta). 500 cases, every codec.
TEST(RecordBatchPropertyTest, BuildValidateDecodeAgree) {
  XorShift random{20240601};
  for (int trial = 0; trial < 500; ++trial) {
    const BatchBuildOptions options = RandomOptions(random);
    const std::vector<Record> records = RandomRecords(random);
    absl::StatusOr<std::string> batch = BuildBatch(options, records);
    ASSERT_TRUE(batch.ok()) << "trial " << trial << ": " << batch.status();
    ASSERT_TRUE(Validate(*batch).ok()) << "trial " << trial << ": " << Validate(*batch);
    absl::StatusOr<std::vector<Record>> decoded = DecodeRecords(*batch);
    ASSERT_TRUE(decoded.ok()) << "trial " << trial << ": " << decoded.status();
    ASSERT_EQ(*decoded, records) << "trial " << trial;
    absl::StatusOr<BatchHeader> header = ParseBatchHeader(*batch);
    ASSERT_TRUE(header.ok());
    EXPECT_EQ(header->base_offset, options.base_offset);
    EXPECT_EQ(header->partition_leader_epoch, options.partition_leader_epoch);
    EXPECT_EQ(header->compression(), options.compression);
    EXPECT_EQ(header->log_append_time(), options.log_append_time);
    EXPECT_EQ(header->transactional(), options.transactional);
    EXPECT_EQ(header->control(), options.control);
    EXPECT_EQ(header->base_timestamp, options.base_timestamp);
    int64_t timestamp_delta_max = 0;
    for (const Record& record : records)
      timestamp_delta_max = std::max(timestamp_delta_max, record.timestamp_delta);
    EXPECT_EQ(header->max_timestamp, options.base_timestamp + timestamp_delta_max);
    EXPECT_EQ(header->producer_id, options.producer_id);
    EXPECT_EQ(header->producer_epoch, options.producer_epoch);
    EXPECT_EQ(header->base_sequence, options.base_sequence);
    EXPECT_EQ(header->record_count, static_cast<int32_t>(records.size()));
    EXPECT_EQ(header->last_offset_delta, static_cast<int32_t>(records.size()) - 1);
    EXPECT_EQ(header->total_bytes(), batch->size());
    EXPECT_EQ(header->crc, BitwiseCrc32c(batch->substr(21)));
  }
}

// One random damage to a batch: flip bits, overwrite a byte, cut the end, insert or delete bytes.
void Mutate(XorShift& random, std::string& batch) {
  switch (random.Below(5)) {
    case 0:
      batch[random.Below(batch.size())] ^= static_cast<char>(1 + random.Below(255));
      break;
    case 1:
      batch[random.Below(batch.size())] = static_cast<char>(random.Next());
      break;
    case 2:
      batch.resize(random.Below(batch.size()));
      break;
    case 3:
      batch.insert(random.Below(batch.size() + 1), random.String(4));
      break;
    case 4: {
      const size_t position = random.Below(batch.size());
      batch.erase(position, 1 + random.Below(4));
      break;
    }
  }
  if (batch.empty()) batch = "x";
}

// Property: random mutations of valid batches never crash ValidateBatch or DecodeRecords (run it
// under ASan/UBSan to make "never" mean something), errors are kInvalidArgument or kDataLoss, and
// any change confined to the CRC-covered bytes is caught as kDataLoss (a single changed byte always
// is: CRC-32C detects every burst of up to 32 bits). Then the same with the CRC fixed up, so the
// damage reaches the record decoder and decompressors, where ValidateBatch passing must imply
// DecodeRecords succeeding.
TEST(RecordBatchPropertyTest, MutationsNeverCrashAndCrcCatchesThem) {
  XorShift random{7};
  int data_loss_caught = 0;
  int decoded_after_fixup = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string original;
    if (trial % 10 == 0) {
      original = HandBuiltBatch();
    } else {
      absl::StatusOr<std::string> built = BuildBatch(RandomOptions(random), RandomRecords(random));
      ASSERT_TRUE(built.ok());
      original = *built;
    }
    std::string mutated = original;
    const int mutations = 1 + static_cast<int>(random.Below(3));
    for (int i = 0; i < mutations; ++i) Mutate(random, mutated);

    for (bool check_records : {true, false}) {
      const absl::Status status = Validate(mutated, check_records);
      if (!status.ok()) {
        EXPECT_TRUE(status.code() == absl::StatusCode::kInvalidArgument ||
                    status.code() == absl::StatusCode::kDataLoss)
            << status;
      }
    }
    (void)DecodeRecords(mutated);

    const bool same_length = mutated.size() == original.size();
    const bool only_covered_bytes_changed =
        same_length &&
        mutated.substr(0, kAttributesOffset) == original.substr(0, kAttributesOffset);
    if (only_covered_bytes_changed && mutated != original) {
      EXPECT_EQ(Validate(mutated).code(), absl::StatusCode::kDataLoss) << "trial " << trial;
      ++data_loss_caught;
    }

    if (mutated.size() >= kBatchHeaderBytes) {
      FixCrc(mutated);
      const absl::Status status = Validate(mutated);
      EXPECT_NE(status.code(), absl::StatusCode::kDataLoss) << status;
      absl::StatusOr<std::vector<Record>> decoded = DecodeRecords(mutated);
      if (status.ok()) {
        EXPECT_TRUE(decoded.ok()) << "trial " << trial << ": " << decoded.status();
      }
      if (decoded.ok()) ++decoded_after_fixup;
    }
  }
  // The generator must actually reach both paths, or the property says nothing.
  EXPECT_GT(data_loss_caught, 500);
  EXPECT_GT(decoded_after_fixup, 50);
}

}  // namespace
}  // namespace runnel::storage
