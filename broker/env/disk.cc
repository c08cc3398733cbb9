#include "broker/env/disk.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace runnel {

absl::Status ValidateDiskPath(absl::string_view path) {
  if (path.empty()) return absl::OkStatus();  // the root directory
  if (path.front() == '/') {
    return absl::InvalidArgumentError(absl::StrCat("disk path '", path, "' must be relative"));
  }
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (component.empty() || component == "." || component == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("disk path '", path, "' has an empty, '.' or '..' component"));
    }
    if (component.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("disk path '", path, "' has a NUL byte"));
    }
  }
  return absl::OkStatus();
}

absl::string_view ParentDirectory(absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return absl::string_view();
  return path.substr(0, slash);
}

}  // namespace runnel
