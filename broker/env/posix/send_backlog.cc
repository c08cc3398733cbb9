#include "broker/env/posix/send_backlog.h"

#include <cassert>

namespace runnel {

void SendBacklog::Append(absl::string_view data) {
  if (data.empty()) return;
  if (!chunks_.empty() && chunks_.back().size() + data.size() <= kChunkBytesCoalesceMax) {
    chunks_.back().append(data.data(), data.size());
  } else {
    chunks_.emplace_back(data.data(), data.size());
  }
  bytes_ += data.size();
}

size_t SendBacklog::FillIovecs(iovec* iovecs, size_t iovecs_max) const {
  size_t count = 0;
  size_t offset = front_offset_;
  for (const std::string& chunk : chunks_) {
    if (count == iovecs_max) break;
    assert(offset < chunk.size());
    iovecs[count].iov_base = const_cast<char*>(chunk.data() + offset);
    iovecs[count].iov_len = chunk.size() - offset;
    ++count;
    offset = 0;
  }
  return count;
}

void SendBacklog::Consume(size_t count) {
  assert(count <= bytes_);
  bytes_ -= count;
  while (count > 0) {
    assert(!chunks_.empty());
    const size_t available = chunks_.front().size() - front_offset_;
    if (count < available) {
      front_offset_ += count;
      return;
    }
    count -= available;
    chunks_.pop_front();
    front_offset_ = 0;
  }
}

void SendBacklog::Clear() {
  chunks_.clear();
  front_offset_ = 0;
  bytes_ = 0;
}

}  // namespace runnel
