#include "broker/env/posix/scoped_fd.h"

#include <unistd.h>

namespace runnel {

void ScopedFd::Reset(int fd) {
  if (fd_ >= 0) {
    // close() is not retried on EINTR: on Linux the descriptor is released even then, and a retry
    // could close a descriptor another thread has just been given.
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace runnel
