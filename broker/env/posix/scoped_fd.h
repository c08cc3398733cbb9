// ScopedFd: sole ownership of one file descriptor, closed when the owner goes away.
#ifndef RUNNEL_BROKER_ENV_POSIX_SCOPED_FD_H_
#define RUNNEL_BROKER_ENV_POSIX_SCOPED_FD_H_

namespace runnel {

class ScopedFd {
 public:
  ScopedFd() = default;
  // Takes ownership of `fd`; a negative value means "no descriptor".
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() { Reset(); }

  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives up ownership without closing; returns the descriptor.
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Closes the owned descriptor, if any, and takes ownership of `fd`.
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_SCOPED_FD_H_
