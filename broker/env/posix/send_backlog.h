// SendBacklog: the bytes a connection has accepted from Send() but not yet handed to the kernel.
//
// Bytes are kept in chunks so that a large Send() is copied once and small ones are coalesced;
// FillIovecs() exposes the unsent bytes for one sendmsg(2) without another copy.
#ifndef RUNNEL_BROKER_ENV_POSIX_SEND_BACKLOG_H_
#define RUNNEL_BROKER_ENV_POSIX_SEND_BACKLOG_H_

#include <sys/uio.h>

#include <cstddef>
#include <deque>
#include <string>

#include "absl/strings/string_view.h"

namespace runnel {

class SendBacklog {
 public:
  // Sends smaller than this are appended to the last chunk while it has room, so that a stream of
  // small messages does not become a stream of tiny allocations and iovecs.
  static constexpr size_t kChunkBytesCoalesceMax = size_t{64} << 10;

  size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

  // Copies `data` to the end. The caller enforces the byte limit (kSendBacklogBytesMax).
  void Append(absl::string_view data);

  // Points up to `iovecs_max` entries of `iovecs` at the oldest unsent bytes, in order; returns how
  // many it filled (zero only when empty).
  size_t FillIovecs(iovec* iovecs, size_t iovecs_max) const;

  // Forgets the oldest `count` bytes, which the kernel has taken; count <= bytes().
  void Consume(size_t count);

  void Clear();

 private:
  std::deque<std::string> chunks_;
  size_t front_offset_ = 0;  // bytes of chunks_.front() already sent
  size_t bytes_ = 0;         // unsent bytes in all chunks
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_SEND_BACKLOG_H_
