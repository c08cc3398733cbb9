// Translation of operating-system error numbers into the Status codes the Env contracts promise.
#ifndef RUNNEL_BROKER_ENV_POSIX_ERRNO_STATUS_H_
#define RUNNEL_BROKER_ENV_POSIX_ERRNO_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace runnel {

// The human-readable text of `error_number`, for example "No such file or directory". Thread-safe.
std::string ErrnoText(int error_number);

// The Status code disk.h assigns to `error_number`:
//   ENOENT, ENOTDIR                                  -> kNotFound (no such path)
//   EEXIST                                           -> kAlreadyExists
//   ENOSPC, EDQUOT, EFBIG, EMFILE, ENFILE, ENOMEM    -> kResourceExhausted
//   ENOTEMPTY, EISDIR, EBUSY                         -> kFailedPrecondition (fix the state first)
//   EINVAL, ENAMETOOLONG, ELOOP                      -> kInvalidArgument
//   anything else (EIO, EACCES, EROFS, ...)          -> kUnavailable (an I/O error)
absl::StatusCode ErrnoToStatusCode(int error_number);

// A Status with ErrnoToStatusCode(error_number) whose message is "<what>: <errno text>", where
// `what` names the operation and its subject, for example "open 'orders-0/0.log'".
absl::Status ErrnoToStatus(int error_number, absl::string_view what);

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_ERRNO_STATUS_H_
