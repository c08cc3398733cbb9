// BatchScan: the one loop step over a segment's batches that every scan of the partition log uses
// (reads, timestamp lookups, truncation, recovery, compaction), on top of BatchCursor (segment.h).
//
// Every caller used to repeat the same steps around BatchCursor::Next(): add the checks that failed
// once and passed on a re-read to LogStats::corrupt_reads, return a read error as it is, stop at
// the end of the region, and turn damage into an error naming the segment file and byte position. A
// BatchScan does them once, the same way for everyone, and leaves one decision to its caller: what
// damage means (OnDamage). Recovery treats damage after the recovery point as a torn tail, to be
// cut; everything else reports it as kDataLoss.
//
// What corrupt_reads counts (partition_log.h, LogStats): every read that returned bytes failing a
// check and passed on a re-read (transient corruption), and every damaged batch reported as
// kDataLoss (kReportDataLoss). Damage that a recovery cuts as a torn tail (kStop) is not a corrupt
// read: it is counted in recovery_truncated_bytes by the recovery itself.
#ifndef RUNNEL_BROKER_STORAGE_BATCH_SCAN_H_
#define RUNNEL_BROKER_STORAGE_BATCH_SCAN_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/storage/record_batch.h"
#include "broker/storage/segment.h"

namespace runnel::storage {

// The error for damage found at byte `position` of `segment` (of the log in `directory`): kDataLoss
// naming the log, the segment file and the byte, as partition_log.h promises.
absl::Status CorruptBatchError(absl::string_view directory, const Segment& segment,
                               uint64_t position, absl::string_view reason);

class BatchScan {
 public:
  enum class OnDamage {
    // Next() fails with CorruptBatchError(...) and counts one corrupt read.
    kReportDataLoss,
    // Next() returns false (the scan ends) with damaged() set; the caller decides.
    kStop,
  };

  // Scans the region of `segment` that `options` describe. `directory` names the log in errors;
  // `corrupt_reads` (LogStats::corrupt_reads) is added to as the scan goes, so that a caller that
  // stops early loses no count. Both must outlive the scan, as must `segment`.
  BatchScan(const Segment& segment, const CursorOptions& options, absl::string_view directory,
            uint64_t& corrupt_reads, OnDamage on_damage = OnDamage::kReportDataLoss);

  BatchScan(const BatchScan&) = delete;
  BatchScan& operator=(const BatchScan&) = delete;

  // Steps to the next batch: true when there is one (header(), bytes(), position() describe it),
  // false at the end of the region (or at damage, under kStop). Errors: a read error as the disk
  // reported it (kUnavailable), a segment file shorter than the log holds (kDataLoss), and damage
  // under kReportDataLoss (kDataLoss naming the file and byte). After false or an error, Next()
  // must not be called again.
  absl::StatusOr<bool> Next();

  // The size the next batch's header claims, unchecked (BatchCursor::PeekBatchBytes).
  uint64_t PeekBatchBytes() { return cursor_.PeekBatchBytes(); }

  // The current batch (after Next() returned true).
  const BatchHeader& header() const { return cursor_.header(); }
  absl::string_view bytes() const { return cursor_.bytes(); }
  uint64_t position() const { return cursor_.position(); }
  // Where the next batch would start.
  uint64_t next_position() const { return cursor_.next_position(); }

  // Under kStop, whether damage ended the scan, where, and why.
  bool damaged() const { return damaged_; }
  uint64_t damage_position() const { return cursor_.damage_position(); }
  const std::string& damage_reason() const { return cursor_.damage_reason(); }
  // The damage as CorruptBatchError() reports it (only when damaged()).
  absl::Status DamageError() const;

 private:
  const Segment& segment_;
  BatchCursor cursor_;
  const absl::string_view directory_;
  uint64_t& corrupt_reads_;
  const OnDamage on_damage_;
  bool damaged_ = false;
};

}  // namespace runnel::storage

#endif  // RUNNEL_BROKER_STORAGE_BATCH_SCAN_H_
