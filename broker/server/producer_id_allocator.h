// Producer ids for InitProducerId, unique across every incarnation of the node.
//
// Ids are handed out from blocks of kBlockSize. Before the first id of a block is handed out, the
// end of the block is made durable in the file below; a restarted node starts after the last
// durable end. So an id is never handed out twice, even after a crash at any moment; a crash only
// skips the unused rest of a block.
//
// File "<data-dir>/__runnel_producer_ids" (the one home of its format), 20 bytes, integers
// big-endian:
//   u32 magic 0x524E5049 ("RNPI"), u16 version 1, u16 zero
//   i64 next block start          every id below it may have been handed out
//   u32 CRC-32C of the 16 bytes before it
// It is replaced atomically: written whole to "__runnel_producer_ids.tmp", synced, renamed over the
// file, and the data directory synced. A missing file means no id was ever handed out. A file that
// fails its checks is damage (reported at Open(), never repaired), since a torn write cannot occur.
//
// Everything runs on the node's event loop. Destroying the allocator runs no callback.
#ifndef RUNNEL_BROKER_SERVER_PRODUCER_ID_ALLOCATOR_H_
#define RUNNEL_BROKER_SERVER_PRODUCER_ID_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/env/env.h"

namespace runnel::server {

inline constexpr char kProducerIdFileName[] = "__runnel_producer_ids";
inline constexpr char kProducerIdTempFileName[] = "__runnel_producer_ids.tmp";
inline constexpr uint32_t kProducerIdFileMagic = 0x524E5049;
inline constexpr uint16_t kProducerIdFileVersion = 1;
inline constexpr size_t kProducerIdFileBytes = 20;

class ProducerIdAllocator {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<int64_t> producer_id)>;

  // Ids reserved per durable write.
  static constexpr int64_t kBlockSize = 1000;
  // Allocate() calls that may wait for a block at once; more fail with kResourceExhausted.
  static constexpr size_t kWaitersMax = 4096;
  // Open() reads the file up to this many times while it fails its checks (a read may return
  // flipped bits that a second read does not; the same bad bytes twice is damage).
  static constexpr int kReadAttemptsMax = 3;

  // Reads the file in `data_dir` (a Disk path, "" for the root, which must exist) and removes a
  // leftover temporary file. kDataLoss names a damaged file.
  static absl::StatusOr<std::unique_ptr<ProducerIdAllocator>> Open(Env& env, std::string data_dir);
  ~ProducerIdAllocator();

  ProducerIdAllocator(const ProducerIdAllocator&) = delete;
  ProducerIdAllocator& operator=(const ProducerIdAllocator&) = delete;

  // Hands out a fresh id: at once (inside the call) when the current block has one left, otherwise
  // once the next block is durable. Fails with kUnavailable when the block could not be made
  // durable (a later call tries again) and kResourceExhausted when too many calls wait.
  void Allocate(Callback done);

  // The first id this incarnation may hand out next, and the end of the durable reservation.
  int64_t next_id() const { return next_id_; }
  int64_t reserved_end() const { return reserved_end_; }

  // The file's encoding and decoding (exposed for tests).
  static std::string EncodeFile(int64_t next_block_start);
  static absl::StatusOr<int64_t> DecodeFile(absl::string_view bytes);

 private:
  ProducerIdAllocator(Env& env, std::string data_dir, int64_t start);

  void StartWrite();
  void FinishWrite(const absl::Status& status, int64_t block_end);

  Env& env_;
  const std::string data_dir_;
  int64_t next_id_;
  int64_t reserved_end_;
  bool write_in_flight_ = false;
  std::deque<Callback> waiters_;
  std::shared_ptr<ProducerIdAllocator*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_PRODUCER_ID_ALLOCATOR_H_
