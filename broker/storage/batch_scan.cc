#include "broker/storage/batch_scan.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace runnel::storage {

absl::Status CorruptBatchError(absl::string_view directory, const Segment& segment,
                               uint64_t position, absl::string_view reason) {
  return absl::DataLossError(absl::StrCat("partition log ", directory, ": corrupt batch in ",
                                          segment.log_path, " at byte ", position, ": ", reason));
}

BatchScan::BatchScan(const Segment& segment, const CursorOptions& options,
                     absl::string_view directory, uint64_t& corrupt_reads, OnDamage on_damage)
    : segment_(segment),
      cursor_(segment, options),
      directory_(directory),
      corrupt_reads_(corrupt_reads),
      on_damage_(on_damage) {}

absl::StatusOr<bool> BatchScan::Next() {
  assert(!damaged_);
  absl::StatusOr<BatchCursor::Step> step = cursor_.Next();
  // Counted whatever the outcome: a re-read that succeeded was a corrupt read even when the scan
  // then fails or its caller stops.
  corrupt_reads_ += cursor_.TakeTransientFailures();
  if (!step.ok()) return step.status();
  switch (*step) {
    case BatchCursor::Step::kBatch:
      return true;
    case BatchCursor::Step::kEnd:
      return false;
    case BatchCursor::Step::kDamage:
      damaged_ = true;
      if (on_damage_ == OnDamage::kStop) return false;
      ++corrupt_reads_;
      return DamageError();
  }
  assert(false);
  return false;
}

absl::Status BatchScan::DamageError() const {
  assert(damaged_);
  return CorruptBatchError(directory_, segment_, cursor_.damage_position(),
                           cursor_.damage_reason());
}

}  // namespace runnel::storage
