#include "broker/env/posix/posix_env.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/env/posix/errno_status.h"

namespace runnel {
namespace {

constexpr absl::string_view kTruncatedMarker = " [truncated]";

absl::StatusOr<uint64_t> SeedFromKernel() {
  uint64_t seed = 0;
  size_t filled = 0;
  while (filled < sizeof(seed)) {
    const ssize_t count =
        getrandom(reinterpret_cast<char*>(&seed) + filled, sizeof(seed) - filled, 0);
    if (count < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "getrandom");
    }
    filled += static_cast<size_t>(count);
  }
  return seed;
}

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

// "2024-05-01T12:34:56.789Z"
std::string UtcTimestamp() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc;
  gmtime_r(&now.tv_sec, &utc);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                         utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                         static_cast<int>(now.tv_nsec / 1'000'000));
}

// Escapes line breaks and backslashes so that one entry is one line.
void AppendEscaped(std::string& line, absl::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '\n':
        line += "\\n";
        break;
      case '\r':
        line += "\\r";
        break;
      case '\\':
        line += "\\\\";
        break;
      default:
        line += c;
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PosixEnv>> PosixEnv::Create(EventLoop& loop, NodeId node_id,
                                                           std::string data_directory,
                                                           std::optional<uint64_t> seed) {
  if (!seed.has_value()) {
    absl::StatusOr<uint64_t> kernel_seed = SeedFromKernel();
    if (!kernel_seed.ok()) return kernel_seed.status();
    seed = *kernel_seed;
  }
  absl::StatusOr<std::unique_ptr<PosixDisk>> disk =
      PosixDisk::Create(loop, std::move(data_directory));
  if (!disk.ok()) return disk.status();
  return std::unique_ptr<PosixEnv>(new PosixEnv(loop, node_id, std::move(*disk), *seed));
}

PosixEnv::PosixEnv(EventLoop& loop, NodeId node_id, std::unique_ptr<PosixDisk> disk,
                   uint64_t seed)
    : loop_(loop),
      node_id_(node_id),
      seed_(seed),
      random_(seed),
      clock_(loop),
      disk_(std::move(disk)),
      network_(loop) {}

PosixEnv::~PosixEnv() = default;

bool PosixEnv::BuggifyFires(const BuggifySite& /*site*/) { return false; }

void PosixEnv::RecordEvent(const SemanticEvent& event) {
  std::string text;
  AppendEscaped(text, event.kind);
  text += ' ';
  AppendEscaped(text, event.subject);
  absl::StrAppend(&text, " value=", event.value);
  if (!event.detail.empty()) {
    text += ' ';
    AppendEscaped(text, event.detail);
  }
  WriteLine("EVENT", text);
}

void PosixEnv::Log(LogLevel level, absl::string_view message) {
  if (level < log_level_min_) return;
  std::string text;
  AppendEscaped(text, message);
  WriteLine(LevelName(level), text);
}

void PosixEnv::WriteLine(absl::string_view tag, absl::string_view text) {
  std::string line = absl::StrCat(UtcTimestamp(), " node=", node_id_, " ", tag, " ");
  const size_t text_bytes_max = kLogLineBytesMax - kTruncatedMarker.size() - 1;
  if (line.size() + text.size() > text_bytes_max) {
    const size_t kept = line.size() < text_bytes_max ? text_bytes_max - line.size() : 0;
    absl::StrAppend(&line, text.substr(0, kept), kTruncatedMarker);
  } else {
    absl::StrAppend(&line, text);
  }
  line += '\n';
  absl::string_view remaining = line;
  while (!remaining.empty()) {
    const ssize_t written = write(STDERR_FILENO, remaining.data(), remaining.size());
    if (written < 0 && errno == EINTR) continue;
    // Nothing sensible is left to do when stderr itself fails.
    if (written <= 0) return;
    remaining.remove_prefix(static_cast<size_t>(written));
  }
}

}  // namespace runnel
