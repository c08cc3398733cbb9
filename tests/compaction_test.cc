// Tests of broker/storage/compaction.h: OffsetMap, AddToOffsetMap and CompactBatches.
//
// Inputs are built with BuildBatch; outputs are checked by splitting them into batches, validating
// each batch's header and CRC, and decoding the records back to (absolute offset, key, value,
// timestamp). Nothing here depends on a clock or on randomness: "now" is a parameter, and the
// pseudo-random payloads come from a fixed linear congruential sequence.
#include "broker/storage/compaction.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "broker/storage/compression.h"
#include "broker/storage/record_batch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runnel::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr int64_t kBaseTimestampMs = 1'700'000'000'000;
constexpr int64_t kDay = int64_t{24} * 3600 * 1000;
// CompactBatches' cleaned_end_offset when no earlier round completed.
constexpr int64_t kNothingCleaned = -1;

// A record at offset delta `delta` (timestamp delta `delta` as well, unless given).
Record Rec(int32_t delta, std::optional<std::string> key, std::optional<std::string> value,
           std::optional<int64_t> timestamp_delta = std::nullopt) {
  Record record;
  record.offset_delta = delta;
  record.timestamp_delta = timestamp_delta.value_or(delta);
  record.key = std::move(key);
  record.value = std::move(value);
  return record;
}

std::string Build(const BatchBuildOptions& options, const std::vector<Record>& records) {
  absl::StatusOr<std::string> batch = BuildBatch(options, records);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return batch.ok() ? *batch : std::string();
}

// A plain data batch at `base_offset` whose base timestamp is kBaseTimestampMs + base_offset, so
// that with the default timestamp deltas a record's timestamp is kBaseTimestampMs + its offset.
std::string Batch(int64_t base_offset, const std::vector<Record>& records,
                  Compression compression = Compression::kNone) {
  return Build(BatchBuildOptions{.base_offset = base_offset,
                                 .partition_leader_epoch = 3,
                                 .compression = compression,
                                 .base_timestamp = kBaseTimestampMs + base_offset},
               records);
}

// One decoded record with its absolute offset and timestamp.
struct Entry {
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  int64_t timestamp_ms = 0;
  friend bool operator==(const Entry&, const Entry&) = default;
};

std::ostream& operator<<(std::ostream& os, const Entry& e) {
  return os << "{" << e.offset << ", " << (e.key ? *e.key : "<null>") << ", "
            << (e.value ? *e.value : "<null>") << ", " << e.timestamp_ms << "}";
}

// The entry of a record built with default timestamp deltas.
Entry E(int64_t offset, std::optional<std::string> key, std::optional<std::string> value) {
  return Entry{offset, std::move(key), std::move(value), kBaseTimestampMs + offset};
}

// Splits `bytes` into batches, checking that they are whole and that each one's header and CRC are
// valid.
std::vector<absl::string_view> SplitValid(absl::string_view bytes) {
  size_t remainder_bytes = 0;
  absl::StatusOr<std::vector<absl::string_view>> split = SplitBatches(bytes, &remainder_bytes);
  EXPECT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(remainder_bytes, 0u);
  if (!split.ok()) return {};
  for (absl::string_view batch : *split) {
    EXPECT_TRUE(ValidateBatch(batch, BatchValidationOptions{.check_records = false}).ok());
  }
  return *split;
}

BatchHeader Header(absl::string_view batch) {
  absl::StatusOr<BatchHeader> header = ParseBatchHeader(batch);
  EXPECT_TRUE(header.ok()) << header.status();
  return header.ok() ? *header : BatchHeader{};
}

// Every record of `bytes`, in order, with absolute offsets and timestamps. Records of control
// batches are included.
std::vector<Entry> Decode(absl::string_view bytes) {
  std::vector<Entry> entries;
  for (absl::string_view batch : SplitValid(bytes)) {
    const BatchHeader header = Header(batch);
    absl::StatusOr<std::vector<Record>> records = DecodeRecords(batch);
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok()) continue;
    for (const Record& record : *records) {
      entries.push_back(Entry{header.base_offset + record.offset_delta, record.key, record.value,
                              header.log_append_time()
                                  ? header.max_timestamp
                                  : header.base_timestamp + record.timestamp_delta});
    }
  }
  return entries;
}

// Builds a map over all of `log`, expecting it to fit.
OffsetMap MapOf(absl::string_view log) {
  OffsetMap map;
  absl::Status added = AddToOffsetMap(log, map);
  EXPECT_TRUE(added.ok()) << added;
  EXPECT_FALSE(map.full());
  return map;
}

// Compacts, expecting success, and checks the properties every output has: whole valid batches, no
// larger than the input.
std::string Compact(absl::string_view log, const OffsetMap& map, int64_t now_ms = kBaseTimestampMs,
                    int64_t delete_retention_ms = kDay, CompactionStats* stats = nullptr) {
  absl::StatusOr<std::string> out = CompactBatches(log, map, now_ms, delete_retention_ms, kNothingCleaned, stats);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return std::string();
  EXPECT_LE(out->size(), log.size());
  SplitValid(*out);
  return *out;
}

// Writes a big-endian u32 over bytes [position, position + 4) of `bytes`.
void StoreU32(std::string& bytes, size_t position, uint32_t value) {
  for (int i = 0; i < 4; ++i) {
    bytes[position + i] = static_cast<char>((value >> (8 * (3 - i))) & 0xff);
  }
}

void Resign(std::string& batch) { StoreU32(batch, kCrcOffset, ComputeBatchCrc(batch)); }

// Deterministic payload bytes (a linear congruential sequence), so that compressed sizes track the
// number of records.
std::string Payload(uint32_t seed, size_t size_bytes) {
  std::string out;
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < size_bytes; ++i) {
    state = state * 1664525u + 1013904223u;
    out.push_back("0123456789abcdef"[(state >> 24) & 0xf]);
  }
  return out;
}

// --- OffsetMap -------------------------------------------------------------------------------

// Put keeps the larger offset for a key, Get finds only what was put, and last_offset() tracks the
// highest offset fed.
TEST(OffsetMapTest, PutKeepsLargerOffset) {
  OffsetMap map(8);
  EXPECT_EQ(map.last_offset(), -1);
  EXPECT_EQ(map.Get("a"), std::nullopt);
  map.Put("a", 5);
  map.Put("a", 3);
  map.Put("b", 7);
  map.Put("", 1);  // An empty key is a key, distinct from a null one.
  EXPECT_EQ(map.Get("a"), 5);
  EXPECT_EQ(map.Get("b"), 7);
  EXPECT_EQ(map.Get(""), 1);
  EXPECT_EQ(map.Get("c"), std::nullopt);
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.key_bytes(), 2u);
  EXPECT_EQ(map.last_offset(), 7);
  EXPECT_FALSE(map.full());
  map.Clear();
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.last_offset(), -1);
  EXPECT_EQ(map.Get("a"), std::nullopt);
}

// A map at capacity still updates keys it holds, turns a new key away (which then has no entry, so
// its records are kept), and says it is full.
TEST(OffsetMapTest, CapacityInEntriesAndKeyBytes) {
  OffsetMap by_entries(2);
  by_entries.Put("a", 1);
  EXPECT_FALSE(by_entries.full());
  by_entries.Put("b", 2);
  EXPECT_TRUE(by_entries.full());
  by_entries.Put("a", 9);
  EXPECT_EQ(by_entries.Get("a"), 9);
  by_entries.Put("c", 10);
  EXPECT_EQ(by_entries.Get("c"), std::nullopt);
  EXPECT_EQ(by_entries.size(), 2u);
  EXPECT_EQ(by_entries.last_offset(), 9);  // The turned-away offset is not covered.

  OffsetMap by_bytes(100, 5);
  by_bytes.Put("abc", 1);
  by_bytes.Put("def", 2);  // 6 bytes would exceed 5.
  EXPECT_EQ(by_bytes.Get("def"), std::nullopt);
  EXPECT_TRUE(by_bytes.full());
  EXPECT_EQ(by_bytes.key_bytes(), 3u);
}

// --- AddToOffsetMap and CompactBatches -------------------------------------------------------

// For each key only the record at its latest offset survives, across batches; older ones go, and a
// batch that loses every record is dropped.
TEST(CompactionTest, LatestValuePerKeyKeptAcrossBatches) {
  const std::string log = Batch(0, {Rec(0, "a", "a0"), Rec(1, "b", "b1"), Rec(2, "a", "a2")}) +
                          Batch(3, {Rec(0, "b", "b3"), Rec(1, "c", "c4"), Rec(2, "a", "a5")});
  OffsetMap map = MapOf(log);
  EXPECT_EQ(map.Get("a"), 5);
  EXPECT_EQ(map.Get("b"), 3);
  EXPECT_EQ(map.Get("c"), 4);
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.last_offset(), 5);

  const std::string out = Compact(log, map);
  EXPECT_THAT(Decode(out), ElementsAre(E(3, "b", "b3"), E(4, "c", "c4"), E(5, "a", "a5")));
  // The first batch lost everything and is gone; the second lost nothing and is copied.
  EXPECT_EQ(out, log.substr(Header(log).total_bytes()));
}

// Surviving records keep their offsets, their timestamps and their order, including within a
// batch that was rewritten.
TEST(CompactionTest, OffsetsTimestampsAndOrderPreserved) {
  const std::string log =
      Batch(10, {Rec(0, "k1", "v10", 7), Rec(1, "k2", "v11", 3), Rec(2, "k3", "v12", 9),
                 Rec(3, "k1", "v13", 4), Rec(4, "k4", "v14", 12)}) +
      Batch(20, {Rec(0, "k2", "v20", 1), Rec(5, "k5", "v25", 2)});  // A batch with a gap.
  const OffsetMap map = MapOf(log);
  const std::string out = Compact(log, map);
  auto at = [](int64_t offset, std::string key, std::string value, int64_t base_timestamp_ms,
               int64_t timestamp_delta) {
    return Entry{offset, key, value, base_timestamp_ms + timestamp_delta};
  };
  const int64_t base10_ms = kBaseTimestampMs + 10;
  const int64_t base20_ms = kBaseTimestampMs + 20;
  EXPECT_THAT(Decode(out), ElementsAre(at(12, "k3", "v12", base10_ms, 9),
                                       at(13, "k1", "v13", base10_ms, 4),
                                       at(14, "k4", "v14", base10_ms, 12),
                                       at(20, "k2", "v20", base20_ms, 1),
                                       at(25, "k5", "v25", base20_ms, 2)));
  const std::vector<absl::string_view> batches = SplitValid(out);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(Header(batches[0]).base_offset, 10);
  EXPECT_EQ(Header(batches[0]).base_timestamp, base10_ms);
  // maxTimestamp is recomputed from the survivors (the largest delta is still 12 here).
  EXPECT_EQ(Header(batches[0]).max_timestamp, base10_ms + 12);
  EXPECT_EQ(Header(batches[1]).base_offset, 20);
}

// Records without a key always survive, and never enter the offset map.
TEST(CompactionTest, NullKeyRecordsKept) {
  const std::string log =
      Batch(0, {Rec(0, std::nullopt, "n0"), Rec(1, "a", "a1"), Rec(2, std::nullopt, "n2")}) +
      Batch(3, {Rec(0, "a", "a3"), Rec(1, std::nullopt, std::nullopt)});
  const OffsetMap map = MapOf(log);
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(map.last_offset(), 4);
  const std::string out = Compact(log, map);
  EXPECT_THAT(Decode(out), ElementsAre(E(0, std::nullopt, "n0"), E(2, std::nullopt, "n2"),
                                       E(3, "a", "a3"), E(4, std::nullopt, std::nullopt)));
}

// A tombstone that is its key's latest record survives while younger than delete_retention_ms
// (its timestamp at or after now - retention) and is removed once older; the older value of its
// key goes either way.
TEST(CompactionTest, TombstonesKeptWhileYoungRemovedWhenOld) {
  const std::string log = Batch(0, {Rec(0, "a", "a0"), Rec(1, "b", "b1")}) +
                          Batch(2, {Rec(0, "a", std::nullopt), Rec(1, "c", "c3")});
  const OffsetMap map = MapOf(log);
  const int64_t tombstone_ms = kBaseTimestampMs + 2;
  const int64_t retention_ms = kDay;

  CompactionStats young_stats;
  const std::string young = Compact(log, map, tombstone_ms + retention_ms, retention_ms,
                                    &young_stats);  // Exactly at the horizon: kept.
  EXPECT_THAT(Decode(young),
              ElementsAre(E(1, "b", "b1"), E(2, "a", std::nullopt), E(3, "c", "c3")));
  EXPECT_EQ(young_stats.tombstones_removed, 0u);
  EXPECT_EQ(young_stats.records_removed, 1u);

  CompactionStats old_stats;
  const std::string old = Compact(log, map, tombstone_ms + retention_ms + 1, retention_ms,
                                  &old_stats);
  EXPECT_THAT(Decode(old), ElementsAre(E(1, "b", "b1"), E(3, "c", "c3")));
  EXPECT_EQ(old_stats.tombstones_removed, 1u);
  EXPECT_EQ(old_stats.records_removed, 2u);

  // Compacting the young output later removes the tombstone then.
  EXPECT_EQ(Compact(young, map, tombstone_ms + retention_ms + 1, retention_ms), old);
}

// A tombstone above what the map covers is kept however old: the map did not see it, so older
// values of its key may survive this round, and dropping the tombstone would bring the key back.
TEST(CompactionTest, TombstoneNotSeenByMapKept) {
  const std::string covered = Batch(0, {Rec(0, "a", "a0"), Rec(1, "b", "b1")});
  const std::string above = Batch(2, {Rec(0, "a", std::nullopt)});
  const OffsetMap map = MapOf(covered);
  const std::string out = Compact(covered + above, map, kBaseTimestampMs + 100 * kDay, kDay);
  EXPECT_EQ(out, covered + above);
}

// A tombstone that an earlier, completed round kept because it was young lies below the cleaned end
// offset, the only record of its key there; a later round, whose map is fed from the cleaned end on
// and so never sees it, removes it once it is old. Without a cleaned end, or while young, it stays.
TEST(CompactionTest, OldTombstoneBelowCleanedEndRemovedByALaterRound) {
  const int64_t tombstone_ms = kBaseTimestampMs;
  const std::string cleaned = Batch(0, {Rec(0, "a", std::nullopt), Rec(1, "b", "b1")});
  const std::string dirty = Batch(2, {Rec(0, "c", "c2"), Rec(1, "b", std::nullopt)});
  const OffsetMap map = MapOf(dirty);
  // Past delete.retention.ms for both tombstones (record timestamps are kBaseTimestampMs + offset).
  const int64_t old_ms = tombstone_ms + kDay + 10;
  const int64_t cleaned_end = 2;

  CompactionStats stats;
  absl::StatusOr<std::string> later =
      CompactBatches(cleaned + dirty, map, old_ms, kDay, cleaned_end, &stats);
  ASSERT_TRUE(later.ok()) << later.status();
  // "a" (old, below the cleaned end) goes; "b1" is superseded by the dirty part's tombstone,
  // which the map saw as latest and which is as old, so it goes too; "c2" stays.
  EXPECT_THAT(Decode(*later), ElementsAre(E(2, "c", "c2")));
  EXPECT_EQ(stats.tombstones_removed, 2u);

  absl::StatusOr<std::string> young =
      CompactBatches(cleaned + dirty, map, tombstone_ms + kDay, kDay, cleaned_end, nullptr);
  ASSERT_TRUE(young.ok()) << young.status();
  EXPECT_THAT(Decode(*young), ElementsAre(E(0, "a", std::nullopt), E(2, "c", "c2"),
                                          E(3, "b", std::nullopt)));

  absl::StatusOr<std::string> uncleaned =
      CompactBatches(cleaned + dirty, map, old_ms, kDay, kNothingCleaned, nullptr);
  ASSERT_TRUE(uncleaned.ok()) << uncleaned.status();
  EXPECT_THAT(Decode(*uncleaned), ElementsAre(E(0, "a", std::nullopt), E(2, "c", "c2")));
}

// Under LogAppendTime the rewritten batch keeps its append time (maxTimestamp), and a tombstone's
// age is measured from it.
TEST(CompactionTest, LogAppendTimeBatchKeepsAppendTime) {
  const int64_t append_ms = kBaseTimestampMs + 5000;
  std::string first = Build(BatchBuildOptions{.base_offset = 0,
                                              .log_append_time = true,
                                              .base_timestamp = kBaseTimestampMs},
                            {Rec(0, "a", "a0"), Rec(1, "b", std::nullopt), Rec(2, "c", "c2")});
  SetLogAppendTime(first, append_ms);
  const std::string log = first + Batch(3, {Rec(0, "a", "a3")});
  const OffsetMap map = MapOf(log);

  const std::string young = Compact(log, map, append_ms + kDay, kDay);
  std::vector<absl::string_view> batches = SplitValid(young);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_TRUE(Header(batches[0]).log_append_time());
  EXPECT_EQ(Header(batches[0]).max_timestamp, append_ms);
  EXPECT_EQ(Header(batches[0]).last_offset_delta, 2);
  EXPECT_THAT(Decode(young), ElementsAre(Entry{1, "b", std::nullopt, append_ms},
                                         Entry{2, "c", "c2", append_ms}, E(3, "a", "a3")));

  const std::string old = Compact(log, map, append_ms + kDay + 1, kDay);
  EXPECT_THAT(Decode(old), ElementsAre(Entry{2, "c", "c2", append_ms}, E(3, "a", "a3")));
}

// Compressed batches that lose records are recompressed with their own codec, decode to exactly
// the surviving records, and shrink; AddToOffsetMap reads compressed batches too.
class CompressedCompactionTest : public ::testing::TestWithParam<Compression> {};

TEST_P(CompressedCompactionTest, RecompressedWithSameCodec) {
  const Compression codec = GetParam();
  std::vector<Record> first;
  std::vector<Record> second;
  std::vector<Entry> expected_first;
  for (int32_t i = 0; i < 40; ++i) {
    const std::string key = absl::StrCat("key-", i);
    const std::string value = Payload(static_cast<uint32_t>(i), 96);
    first.push_back(Rec(i, key, value));
    // Every third key is written again in the second batch.
    if (i % 3 == 0) {
      second.push_back(Rec(static_cast<int32_t>(second.size()), key, "new"));
    } else {
      expected_first.push_back(E(100 + i, key, value));
    }
  }
  const std::string log = Batch(100, first, codec) + Batch(140, second, codec);
  const OffsetMap map = MapOf(log);
  EXPECT_EQ(map.size(), 40u);
  EXPECT_EQ(map.Get("key-3"), 141);

  CompactionStats stats;
  const std::string out = Compact(log, map, kBaseTimestampMs, kDay, &stats);
  const std::vector<absl::string_view> batches = SplitValid(out);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(Header(batches[0]).compression(), codec);
  EXPECT_EQ(Header(batches[0]).last_offset_delta, 39);
  EXPECT_LT(batches[0].size(), Header(log).total_bytes());
  EXPECT_EQ(batches[1], absl::string_view(log).substr(Header(log).total_bytes()));
  EXPECT_THAT(Decode(batches[0]), ElementsAreArray(expected_first));
  EXPECT_EQ(stats.records_removed, 14u);
  EXPECT_EQ(stats.rewrites_discarded, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CompressedCompactionTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kSnappy, Compression::kLz4,
                                           Compression::kZstd),
                         [](const ::testing::TestParamInfo<Compression>& info) {
                           switch (info.param) {
                             case Compression::kNone: return std::string("None");
                             case Compression::kGzip: return std::string("Gzip");
                             case Compression::kSnappy: return std::string("Snappy");
                             case Compression::kLz4: return std::string("Lz4");
                             case Compression::kZstd: return std::string("Zstd");
                           }
                           return std::string("Unknown");
                         });

// Batches that lose nothing are copied byte for byte, whatever their codec; a log without
// superseded records comes out identical.
TEST(CompactionTest, UnchangedBatchesByteIdentical) {
  const std::string b0 = Batch(0, {Rec(0, "a", "a0"), Rec(1, "b", "b1")}, Compression::kGzip);
  const std::string b1 = Batch(2, {Rec(0, "c", "c2"), Rec(1, "a", "a3")});
  const std::string b2 = Batch(4, {Rec(0, "d", "d4"), Rec(1, std::nullopt, "n5")},
                               Compression::kZstd);
  const std::string log = b0 + b1 + b2;
  const std::string out = Compact(log, MapOf(log));
  const std::vector<absl::string_view> batches = SplitValid(out);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_NE(batches[0], b0);  // Lost "a" at offset 0.
  EXPECT_EQ(batches[1], b1);
  EXPECT_EQ(batches[2], b2);

  const std::string distinct = b1 + b2;
  CompactionStats stats;
  EXPECT_EQ(Compact(distinct, MapOf(distinct), kBaseTimestampMs, kDay, &stats), distinct);
  EXPECT_EQ(stats.bytes_written, stats.bytes_read);
  EXPECT_EQ(stats.records_removed, 0u);
}

// A batch whose rewrite would come out no smaller than the original keeps the original whole: here
// a producer sent raw (unframed) snappy, which is 20 bytes shorter than the xerial framing Runnel
// writes, and compaction removes a record of fewer bytes than that. The output never outgrows
// the input, and compacting again changes nothing.
TEST(CompactionTest, RewriteNotSmallerKeepsOriginal) {
  const std::string plain = Batch(0, {Rec(0, "a", ""), Rec(1, "b", "b1"), Rec(2, "c", "c2")});
  absl::StatusOr<std::string> framed = Compress(Compression::kSnappy,
                                                absl::string_view(plain).substr(kBatchHeaderBytes));
  ASSERT_TRUE(framed.ok()) << framed.status();
  std::string raw_snappy = plain.substr(0, kBatchHeaderBytes) +
                           framed->substr(kSnappyXerialHeaderBytes + kSnappyXerialBlockLengthBytes);
  StoreU32(raw_snappy, kBatchLengthOffset,
           static_cast<uint32_t>(raw_snappy.size() - kBatchLogOverheadBytes));
  raw_snappy[kAttributesOffset + 1] =
      static_cast<char>(raw_snappy[kAttributesOffset + 1] | static_cast<int>(Compression::kSnappy));
  Resign(raw_snappy);
  ASSERT_EQ(Header(raw_snappy).compression(), Compression::kSnappy);

  const std::string log = raw_snappy + Batch(3, {Rec(0, "a", "a3")});
  const OffsetMap map = MapOf(log);
  CompactionStats stats;
  EXPECT_EQ(Compact(log, map, kBaseTimestampMs, kDay, &stats), log);
  EXPECT_EQ(stats.rewrites_discarded, 1u);
  EXPECT_EQ(stats.records_removed, 0u);
  EXPECT_EQ(stats.records_kept, 4u);
}

// When a batch's last record is removed, the rewritten batch still ends at the original last
// offset (lastOffsetDelta kept, CRC recomputed), and every other header field is kept.
TEST(CompactionTest, LastOffsetDeltaPreservedWhenLastRecordRemoved) {
  const BatchBuildOptions options{.base_offset = 50,
                                  .partition_leader_epoch = 7,
                                  .compression = Compression::kNone,
                                  .transactional = true,
                                  .base_timestamp = kBaseTimestampMs + 50,
                                  .producer_id = 4242,
                                  .producer_epoch = 3,
                                  .base_sequence = 100};
  const std::string first =
      Build(options, {Rec(0, "a", "a50"), Rec(1, "b", "b51"), Rec(2, "c", "c52"),
                      Rec(3, "d", "d53", 30)});
  const std::string log = first + Batch(54, {Rec(0, "d", "d54")});
  const std::string out = Compact(log, MapOf(log));
  const std::vector<absl::string_view> batches = SplitValid(out);
  ASSERT_EQ(batches.size(), 2u);
  const BatchHeader before = Header(first);
  const BatchHeader after = Header(batches[0]);
  EXPECT_EQ(after.last_offset_delta, 3);
  EXPECT_EQ(after.last_offset(), 53);
  EXPECT_EQ(after.record_count, 3);
  EXPECT_EQ(after.crc, ComputeBatchCrc(batches[0]));
  EXPECT_EQ(after.base_offset, before.base_offset);
  EXPECT_EQ(after.partition_leader_epoch, before.partition_leader_epoch);
  EXPECT_EQ(after.attributes, before.attributes);
  EXPECT_TRUE(after.transactional());
  EXPECT_EQ(after.base_timestamp, before.base_timestamp);
  EXPECT_EQ(after.max_timestamp, kBaseTimestampMs + 52);  // Recomputed from the survivors.
  EXPECT_EQ(after.producer_id, 4242);
  EXPECT_EQ(after.producer_epoch, 3);
  EXPECT_EQ(after.base_sequence, 100);
  EXPECT_THAT(Decode(batches[0]),
              ElementsAre(E(50, "a", "a50"), E(51, "b", "b51"), E(52, "c", "c52")));
}

// A batch all of whose records are superseded is dropped, wherever it is in the log.
TEST(CompactionTest, EmptiedBatchesDropped) {
  const std::string b0 = Batch(0, {Rec(0, "a", "1"), Rec(1, "b", "1")});
  const std::string b1 = Batch(2, {Rec(0, "c", "1")});
  const std::string b2 = Batch(3, {Rec(0, "a", "2"), Rec(1, "b", "2")});
  const std::string b3 = Batch(5, {Rec(0, "c", "2")});
  const std::string log = b0 + b1 + b2 + b3;
  CompactionStats stats;
  const std::string out = Compact(log, MapOf(log), kBaseTimestampMs, kDay, &stats);
  EXPECT_EQ(out, b2 + b3);
  EXPECT_EQ(stats.batches_read, 4u);
  EXPECT_EQ(stats.batches_written, 2u);
  EXPECT_EQ(stats.records_read, 6u);
  EXPECT_EQ(stats.records_kept, 3u);
  EXPECT_EQ(stats.records_removed, 3u);
  EXPECT_EQ(stats.bytes_read, log.size());
  EXPECT_EQ(stats.bytes_written, out.size());
}

// Control batches (transaction markers) pass through byte for byte, and their records never enter
// the offset map, even when a control record's key equals a data key that a later record
// supersedes; they still count as fed.
TEST(CompactionTest, ControlBatchesUntouched) {
  const std::string commit_key("\x00\x00\x00\x01", 4);  // Version 0, type COMMIT.
  const std::string commit_value("\x00\x00\x00\x00\x00\x05", 6);
  const std::string data = Build(BatchBuildOptions{.base_offset = 0,
                                                   .transactional = true,
                                                   .base_timestamp = kBaseTimestampMs,
                                                   .producer_id = 9,
                                                   .producer_epoch = 0,
                                                   .base_sequence = 0},
                                 {Rec(0, commit_key, "data0"), Rec(1, "x", "x1")});
  const std::string marker = Build(BatchBuildOptions{.base_offset = 2,
                                                     .transactional = true,
                                                     .control = true,
                                                     .base_timestamp = kBaseTimestampMs + 2,
                                                     .producer_id = 9,
                                                     .producer_epoch = 0},
                                   {Rec(0, commit_key, commit_value)});
  const std::string later = Batch(3, {Rec(0, "x", "x3"), Rec(1, commit_key, "data4")});
  const std::string log = data + marker + later;
  const OffsetMap map = MapOf(log);
  EXPECT_EQ(map.Get(commit_key), 4);
  EXPECT_EQ(map.Get("x"), 3);
  EXPECT_EQ(map.size(), 2u);

  OffsetMap marker_only;
  ASSERT_TRUE(AddToOffsetMap(marker, marker_only).ok());
  EXPECT_EQ(marker_only.size(), 0u);
  EXPECT_EQ(marker_only.last_offset(), 2);

  // The data batch loses both records; the marker, whose record is older than the key's latest,
  // stays as it was.
  CompactionStats stats;
  EXPECT_EQ(Compact(log, map, kBaseTimestampMs, kDay, &stats), marker + later);
  EXPECT_EQ(stats.records_read, 5u);
  EXPECT_EQ(stats.records_kept, 3u);
}

// When the map fills, AddToOffsetMap stops before the first batch that does not fit, feeding none
// of it; last_offset() says where coverage ends; a full map is fed nothing more; and compaction
// with it keeps every record above the covered range.
TEST(CompactionTest, OffsetMapCapacityStopsAtBatchBoundary) {
  const std::string b0 = Batch(0, {Rec(0, "a", "a0"), Rec(1, "b", "b1"), Rec(2, "a", "a2")});
  const std::string b1 = Batch(3, {Rec(0, "c", "c3"), Rec(1, "d", "d4"), Rec(2, "b", "b5")});
  const std::string b2 = Batch(6, {Rec(0, "a", "a6"), Rec(1, "c", "c7")});
  const std::string log = b0 + b1 + b2;
  OffsetMap map(3);
  ASSERT_TRUE(AddToOffsetMap(log, map).ok());
  EXPECT_TRUE(map.full());
  EXPECT_EQ(map.size(), 2u);  // b1 would need c and d: 4 entries > 3.
  EXPECT_EQ(map.last_offset(), 2);
  EXPECT_EQ(map.Get("a"), 2);
  EXPECT_EQ(map.Get("b"), 1);
  EXPECT_EQ(map.Get("c"), std::nullopt);

  // A full map is fed nothing more, even a batch that would fit.
  ASSERT_TRUE(AddToOffsetMap(b2, map).ok());
  EXPECT_EQ(map.last_offset(), 2);
  EXPECT_EQ(map.Get("a"), 2);

  const std::string out = Compact(log, map);
  EXPECT_THAT(Decode(out), ElementsAre(E(1, "b", "b1"), E(2, "a", "a2"), E(3, "c", "c3"),
                                       E(4, "d", "d4"), E(5, "b", "b5"), E(6, "a", "a6"),
                                       E(7, "c", "c7")));
  // b1 and b2 lie wholly above the covered range: byte for byte.
  EXPECT_EQ(absl::string_view(out).substr(out.size() - b1.size() - b2.size()), b1 + b2);

  // The key-bytes bound stops a batch the same way.
  OffsetMap small_keys(100, 3);
  ASSERT_TRUE(AddToOffsetMap(b0 + Batch(3, {Rec(0, "ccc", "x")}), small_keys).ok());
  EXPECT_TRUE(small_keys.full());
  EXPECT_EQ(small_keys.last_offset(), 2);
  EXPECT_EQ(small_keys.Get("ccc"), std::nullopt);
}

// Keys already in the map need no room: a batch that only rewrites known keys (or has no keys) is
// fed to a map at capacity's edge, and keys repeated within a batch are counted once.
TEST(CompactionTest, OffsetMapCountsOnlyNewDistinctKeys) {
  const std::string log = Batch(0, {Rec(0, "a", "1"), Rec(1, "b", "1")}) +
                          Batch(2, {Rec(0, "a", "2"), Rec(1, std::nullopt, "n"),
                                    Rec(2, "b", "2")}) +
                          Batch(5, {Rec(0, "c", "1"), Rec(1, "c", "2"), Rec(2, "c", "3")});
  OffsetMap map(3);
  ASSERT_TRUE(AddToOffsetMap(log, map).ok());
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.last_offset(), 7);
  EXPECT_EQ(map.Get("c"), 7);
  EXPECT_TRUE(map.full());  // No room for another key.
}

// A batch with more distinct keys than an empty map could hold can never be covered: an error,
// rather than a map that stops without making progress.
TEST(CompactionTest, BatchLargerThanMapIsAnError) {
  OffsetMap map(2);
  const absl::Status status = AddToOffsetMap(
      Batch(0, {Rec(0, "a", "1"), Rec(1, "b", "1"), Rec(2, "c", "1")}), map);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.last_offset(), -1);
}

// Compacting the output again with the same map and time changes nothing, byte for byte.
TEST(CompactionTest, IdempotentWithSameMap) {
  std::string log;
  int64_t offset = 0;
  const Compression codecs[] = {Compression::kNone, Compression::kGzip, Compression::kSnappy,
                                Compression::kLz4, Compression::kZstd};
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<Record> records;
    for (int32_t i = 0; i < 8; ++i) {
      const int key = (batch * 8 + i) * 7 % 13;
      std::optional<std::string> value = Payload(static_cast<uint32_t>(offset + i), 40);
      if ((batch + i) % 11 == 0) value = std::nullopt;  // Some tombstones.
      std::optional<std::string> k = absl::StrCat("k", key);
      if (i == 5) k = std::nullopt;
      records.push_back(Rec(i, k, value));
    }
    log += Batch(offset, records, codecs[batch % 5]);
    offset += 8;
  }
  const OffsetMap map = MapOf(log);
  for (int64_t now_ms : {kBaseTimestampMs, kBaseTimestampMs + 2 * kDay}) {
    const std::string once = Compact(log, map, now_ms, kDay);
    EXPECT_LT(once.size(), log.size());
    CompactionStats stats;
    const std::string twice = Compact(once, map, now_ms, kDay, &stats);
    EXPECT_EQ(twice, once);
    EXPECT_EQ(stats.records_removed, 0u);
    EXPECT_EQ(Decode(twice), Decode(once));
  }
}

// Malformed input yields an error and nothing else, from both functions: corrupt bytes (CRC),
// a truncated batch, an unreadable header, batches out of offset order, a bad argument.
TEST(CompactionTest, MalformedInputYieldsError) {
  const std::string b0 = Batch(0, {Rec(0, "a", "a0"), Rec(1, "b", "b1")});
  const std::string b1 = Batch(2, {Rec(0, "a", "a2")});
  const std::string log = b0 + b1;
  const OffsetMap map = MapOf(log);

  auto expect_error = [&](const std::string& input, absl::StatusCode code) {
    CompactionStats stats;
    absl::StatusOr<std::string> out = CompactBatches(input, map, kBaseTimestampMs, kDay, kNothingCleaned, &stats);
    EXPECT_EQ(out.status().code(), code) << out.status();
    EXPECT_EQ(stats.batches_read, 0u);  // Untouched on error.
    OffsetMap fresh;
    EXPECT_EQ(AddToOffsetMap(input, fresh).code(), code);
  };

  std::string flipped = log;
  flipped[b0.size() + kBatchHeaderBytes + 2] ^= 0x10;  // Inside b1's records.
  expect_error(flipped, absl::StatusCode::kDataLoss);

  expect_error(log.substr(0, log.size() - 1), absl::StatusCode::kInvalidArgument);
  expect_error(log + std::string(20, '\0'), absl::StatusCode::kInvalidArgument);

  std::string short_length = log;
  short_length[kBatchLengthOffset + 3] = 5;  // batchLength smaller than the header.
  short_length[kBatchLengthOffset + 2] = 0;
  expect_error(short_length, absl::StatusCode::kInvalidArgument);

  expect_error(b1 + b0, absl::StatusCode::kInvalidArgument);  // Out of offset order.
  expect_error(b0 + b0, absl::StatusCode::kInvalidArgument);  // Offsets repeated.

  EXPECT_EQ(CompactBatches(log, map, kBaseTimestampMs, -1, kNothingCleaned, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CompactBatches("", map, kBaseTimestampMs, kDay, kNothingCleaned, nullptr)->empty());
}

// Records that contradict their header (count, offset deltas beyond lastOffsetDelta or out of
// order) are rejected even with a valid CRC.
TEST(CompactionTest, InconsistentRecordsRejected) {
  // Records whose offset deltas go backwards, then a header whose lastOffsetDelta is below a
  // record's delta; both re-signed so that only the records' content is wrong.
  // BuildBatch refuses backwards deltas, so swap the two records' offsetDelta bytes in place:
  // each record is [length][attributes][timestampDelta][offsetDelta]..., all one byte here.
  std::string backwards = Batch(0, {Rec(0, "a", "1"), Rec(1, "b", "1")});
  const size_t first_delta = kBatchHeaderBytes + 3;
  const size_t second_record = kBatchHeaderBytes + 1 + static_cast<size_t>(backwards[kBatchHeaderBytes] / 2);
  const size_t second_delta = second_record + 3;
  ASSERT_EQ(backwards[first_delta], 0x00);   // zigzag(0)
  ASSERT_EQ(backwards[second_delta], 0x02);  // zigzag(1)
  std::swap(backwards[first_delta], backwards[second_delta]);
  Resign(backwards);
  std::string low_last = Batch(0, {Rec(0, "a", "1"), Rec(1, "b", "1")});
  low_last[kLastOffsetDeltaOffset + 3] = 0;
  Resign(low_last);
  const OffsetMap map;
  for (const std::string& input : {backwards, low_last}) {
    absl::StatusOr<std::string> out = CompactBatches(input, map, kBaseTimestampMs, kDay, kNothingCleaned, nullptr);
    EXPECT_FALSE(out.ok());
    OffsetMap fresh;
    EXPECT_FALSE(AddToOffsetMap(input, fresh).ok());
  }
}

// Totality: every single-byte corruption of a small log, with the CRC left stale and with it
// recomputed (so that record decoding is reached), returns an error or a bounded, valid output;
// it never crashes (run under ASan/UBSan).
TEST(CompactionTest, ByteCorruptionNeverCrashes) {
  const std::string log =
      Batch(0, {Rec(0, "a", "a0"), Rec(1, std::nullopt, "n"), Rec(2, "b", std::nullopt)}) +
      Batch(3, {Rec(0, "a", "a3"), Rec(1, "b", "b4")}, Compression::kGzip) +
      Batch(5, {Rec(0, "c", "c5")}, Compression::kLz4);
  const OffsetMap map = MapOf(log);
  const std::vector<absl::string_view> batches = SplitValid(log);
  int accepted = 0;
  for (size_t position = 0; position < log.size(); ++position) {
    for (bool resign : {false, true}) {
      std::string damaged = log;
      damaged[position] = static_cast<char>(damaged[position] ^ 0x41);
      if (resign) {
        // Recompute the CRC of the batch holding `position`, if its header still parses.
        size_t start = 0;
        for (absl::string_view batch : batches) {
          if (position < start + batch.size()) break;
          start += batch.size();
        }
        absl::StatusOr<BatchHeader> header =
            ParseBatchHeader(absl::string_view(damaged).substr(start));
        if (header.ok() && start + header->total_bytes() <= damaged.size()) {
          StoreU32(damaged, start + kCrcOffset,
                   ComputeBatchCrc(absl::string_view(damaged).substr(start,
                                                                     header->total_bytes())));
        }
      }
      absl::StatusOr<std::string> out = CompactBatches(damaged, map, kBaseTimestampMs, kDay, kNothingCleaned,
                                                       nullptr);
      if (out.ok()) {
        ++accepted;
        EXPECT_LE(out->size(), damaged.size());
        SplitValid(*out);
      }
      OffsetMap fresh(4);
      (void)AddToOffsetMap(damaged, fresh);
    }
  }
  // Some corruptions (a changed value byte, re-signed) are indistinguishable from valid data.
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace runnel::storage
