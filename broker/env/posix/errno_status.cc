#include "broker/env/posix/errno_status.h"

#include <errno.h>
#include <string.h>

#include "absl/strings/str_cat.h"

namespace runnel {
namespace {

// Large enough for every glibc error message.
constexpr size_t kErrnoTextBytesMax = 256;

// strerror_r comes in two flavours: GNU (returns a pointer, possibly not into the buffer) and XSI
// (returns an int). Overloads pick whichever this libc declares.
[[maybe_unused]] const char* StrerrorResult(const char* result, const char* /*buffer*/) {
  return result;
}
[[maybe_unused]] const char* StrerrorResult(int result, const char* buffer) {
  return result == 0 ? buffer : "unknown error";
}

}  // namespace

std::string ErrnoText(int error_number) {
  char buffer[kErrnoTextBytesMax] = {};
  return std::string(StrerrorResult(strerror_r(error_number, buffer, sizeof(buffer)), buffer));
}

absl::StatusCode ErrnoToStatusCode(int error_number) {
  switch (error_number) {
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::StatusCode::kResourceExhausted;
    case ENOTEMPTY:
    case EISDIR:
    case EBUSY:
      return absl::StatusCode::kFailedPrecondition;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

absl::Status ErrnoToStatus(int error_number, absl::string_view what) {
  return absl::Status(ErrnoToStatusCode(error_number),
                      absl::StrCat(what, ": ", ErrnoText(error_number)));
}

}  // namespace runnel
