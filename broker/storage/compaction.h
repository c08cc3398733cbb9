// Log compaction (Kafka's cleanup.policy=compact) at the level of records: a pure library over
// RecordBatch v2 bytes. The partition log decides which segments to clean and when, and writes the
// result; this file decides which records survive and rewrites the batches that hold them.
//
// A cleaning round, as the partition log runs it:
//   1. Build an OffsetMap of the dirty part of the log: AddToOffsetMap over its batches, in offset
//      order, until it returns with map.full() or the dirty part is exhausted. The map then covers
//      every offset up to map.last_offset(), and no batch above it was fed.
//   2. Rewrite every segment from the log start up to map.last_offset() with CompactBatches and
//      the same map, oldest first, each one replacing its segment before the next is rewritten.
//      A tombstone is removed only once it is old, and only where no older record of its key can
//      survive: either the map saw it as its key's latest record (and so removes every older
//      record of the key in this round), or it lies below the cleaned end offset, which earlier
//      rounds completed (one of them saw it as the latest, and removed the older ones then).
//      Rewriting oldest first means that a crash part way through never leaves an older value
//      without its tombstone.
//   3. Batches above map.last_offset() are left for a later round (CompactBatches would keep all
//      of their records anyway: none of their offsets is below its key's entry).
//
// Guarantees (Kafka's): offsets never change and are never reused, order is kept, and for every
// key the record at the map's latest offset survives (until it is a tombstone older than
// delete.retention.ms). Keyless records always survive.
//
// Not handled here (yet): aborted transactional data is compacted like committed data, and control
// batches are always kept; Kafka removes aborted records and, eventually, their markers. An emptied
// batch is dropped even when it is an idempotent producer's last batch (Kafka keeps its header to
// preserve the producer's sequence state).
#ifndef RUNNEL_BROKER_STORAGE_COMPACTION_H_
#define RUNNEL_BROKER_STORAGE_COMPACTION_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel::storage {

// Default capacity of an OffsetMap: as many keys as one batch may hold records.
inline constexpr size_t kOffsetMapEntriesDefault = size_t{1} << 20;
// Default bound on the bytes of keys an OffsetMap stores: one largest batch's worth.
inline constexpr size_t kOffsetMapKeyBytesDefault = size_t{64} << 20;
// The largest capacities a map may be given (about 5 GiB of table and keys).
inline constexpr size_t kOffsetMapEntriesMax = size_t{1} << 26;
inline constexpr size_t kOffsetMapKeyBytesMax = size_t{1} << 32;

// Key -> the latest offset at which the key was seen. Keys are stored whole (not hashed as Kafka's
// SkimpyOffsetMap does), so two keys never share an entry: a hash collision would make compaction
// delete the latest value of a key. Lookups only; the map is never iterated.
//
// Memory is bounded at construction: at most `entries_max` keys holding at most `key_bytes_max`
// bytes together; that is 41 to 94 bytes of hash table per entry (depending on where the table is
// in its growth) plus the key bytes, keys of 16 bytes or more each in their own allocation.
class OffsetMap {
 public:
  // Requires 1 <= entries_max <= kOffsetMapEntriesMax and 1 <= key_bytes_max <=
  // kOffsetMapKeyBytesMax.
  explicit OffsetMap(size_t entries_max = kOffsetMapEntriesDefault,
                     size_t key_bytes_max = kOffsetMapKeyBytesDefault);

  // Records that `key` is at `offset` (>= 0); an existing entry keeps the larger of the two. A new
  // key that does not fit (entries_max keys, or key_bytes_max bytes, already held) is not stored and
  // makes the map full(); that is safe, because records of a key without an entry all survive
  // compaction. AddToOffsetMap checks for room first and never gets here with a key that does not fit.
  void Put(absl::string_view key, int64_t offset);
  // The latest offset recorded for `key`, if any.
  std::optional<int64_t> Get(absl::string_view key) const;

  // True once the map has turned a key or a batch away for lack of room, or has no room left for
  // another entry or another key byte.
  // AddToOffsetMap feeds nothing more to a map that has turned something away, so that what the
  // map covers stays one contiguous range of offsets.
  bool full() const;
  size_t size() const { return offsets_.size(); }
  size_t key_bytes() const { return key_bytes_; }
  size_t entries_max() const { return entries_max_; }
  size_t key_bytes_max() const { return key_bytes_max_; }
  // The highest offset fed so far, -1 before anything was. After AddToOffsetMap this is the last
  // offset of the last batch fed (keyless and control batches included), so the map covers exactly
  // the offsets up to last_offset() of what it was given.
  int64_t last_offset() const { return last_offset_; }

  // Empties the map for reuse in another round; the capacities stay.
  void Clear();

 private:
  friend absl::Status AddToOffsetMap(absl::string_view batches, OffsetMap& map);

  // Marks every offset up to `offset` as fed.
  void Cover(int64_t offset);
  // Whether `new_entries` more keys of `new_key_bytes` bytes in all would fit.
  bool Fits(size_t new_entries, size_t new_key_bytes) const;

  size_t entries_max_;
  size_t key_bytes_max_;
  absl::flat_hash_map<std::string, int64_t> offsets_;  // Lookups only, never iterated.
  size_t key_bytes_ = 0;
  int64_t last_offset_ = -1;
  bool turned_away_ = false;
};

// Feeds every keyed record of `batches` (whole batches, back to back, in increasing offset order)
// to `map` at its absolute offset (base offset + offset delta), decompressing as needed. Keyless
// records are ignored and control batches skipped (both still count as fed for last_offset()).
//
// Batch by batch: a batch whose new keys do not fit is not fed at all, the map becomes full() and
// the call returns OK; so the map covers exactly the offsets below the first batch not fed, and
// map.last_offset() says where that is. A full map is fed nothing.
//
// Errors: kDataLoss for a CRC mismatch; kInvalidArgument for a malformed batch, a trailing partial
// batch, or batches out of offset order; kResourceExhausted for a batch with more distinct keys (or
// key bytes) than the map could hold even when empty, which no map of this size can ever cover. On
// error the map may have been fed the batches before the bad one (last_offset() still tells).
absl::Status AddToOffsetMap(absl::string_view batches, OffsetMap& map);

// What one CompactBatches call did. CompactBatches adds to the fields (so a caller may sum over
// several calls), and only when it succeeds.
struct CompactionStats {
  uint64_t records_read = 0;        // records_kept + records_removed; control records included
  uint64_t records_kept = 0;
  uint64_t records_removed = 0;     // superseded by a later offset of their key, or tombstones
  uint64_t tombstones_removed = 0;  // of records_removed: latest tombstones past delete retention
  uint64_t batches_read = 0;
  uint64_t batches_written = 0;     // kept byte for byte, or rewritten
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  // Of batches_written: batches that lost records but whose rewrite (recompressed) came out no
  // smaller than the original, so the original was kept whole. Rare; it keeps the output bound.
  uint64_t rewrites_discarded = 0;
};

// Compacts `batches` (whole batches, back to back, in increasing offset order) against `map` and
// returns the surviving batches, concatenated. A record survives if it has no key, or `map` has no
// entry for its key, or its absolute offset is at least the map's offset for its key. A surviving
// tombstone (keyed, null value) is removed anyway when its timestamp is below
// now_ms - delete_retention_ms (under LogAppendTime a record's timestamp is its batch's
// maxTimestamp) and either the map's entry for its key is the tombstone's own offset, or it lies
// below `cleaned_end_offset` (the end of the completed rounds, -1 for none: see step 2 above; the
// caller feeds the map from there, so the map has no entry for its key at or below it). Any other
// tombstone stays, however old: older values of its key may survive this round, and removing it
// would bring the key back. delete_retention_ms must be >= 0.
//
// Per batch:
// - Control batches, batches without records, and batches that lose nothing are copied byte for
//   byte (compacting an already compacted log copies it).
// - A batch that loses every record is dropped (the partition log keeps its own end offset).
// - Otherwise the batch is rebuilt with its survivors: same base offset, partition leader epoch,
//   attributes (codec, recompressed with it; timestamp type; transactional), baseTimestamp,
//   producer id, epoch and base sequence, and lastOffsetDelta (so the batch still ends where it
//   did and offsets are never reused); records keep their offset and timestamp deltas. maxTimestamp
//   is recomputed from the survivors, as Kafka does, except under LogAppendTime, where it is the
//   append time and is kept. If the rebuilt batch is not smaller than the original, the original
//   is kept whole instead.
// Hence the output is never larger than the input, and the same call on its own output (same map,
// same now_ms) returns it unchanged. Every output batch passes ValidateBatch's header and CRC checks;
// a rewritten batch has gaps in its offset deltas, as compacted Kafka batches do.
//
// Errors (nothing is returned and `stats` is untouched): kDataLoss for a CRC mismatch;
// kInvalidArgument for a malformed batch, a trailing partial batch, batches out of offset order,
// or a negative delete_retention_ms; kInternal if a rebuilt batch fails its own checks.
// `stats` may be null.
absl::StatusOr<std::string> CompactBatches(absl::string_view batches, const OffsetMap& map,
                                           int64_t now_ms, int64_t delete_retention_ms,
                                           int64_t cleaned_end_offset, CompactionStats* stats);

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_COMPACTION_H_
