#include "broker/client/client_options.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace runnel::client {

std::string TopicPartition::ToString() const { return absl::StrCat(topic, "-", partition); }

absl::Status ValidateClientOptions(const ClientOptions& options) {
  auto invalid = [](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  if (options.bootstrap_servers.empty()) return invalid("bootstrap_servers", "must not be empty");
  if (options.request_timeout_ms <= 0) return invalid("request_timeout_ms", "must be positive");
  if (options.connection_setup_timeout_ms <= 0) {
    return invalid("connection_setup_timeout_ms", "must be positive");
  }
  if (options.reconnect_backoff_ms <= 0 ||
      options.reconnect_backoff_ms > options.reconnect_backoff_ms_max) {
    return invalid("reconnect_backoff_ms", "must be positive and at most reconnect_backoff_ms_max");
  }
  if (options.retry_backoff_ms <= 0 || options.retry_backoff_ms > options.retry_backoff_ms_max) {
    return invalid("retry_backoff_ms", "must be positive and at most retry_backoff_ms_max");
  }
  if (options.metadata_max_age_ms <= 0) return invalid("metadata_max_age_ms", "must be positive");
  if (options.in_flight_requests_per_connection_max == 0) {
    return invalid("in_flight_requests_per_connection_max", "must be positive");
  }
  if (options.queued_requests_per_connection_max == 0) {
    return invalid("queued_requests_per_connection_max", "must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NetworkAddress>> ParseBootstrapServers(absl::string_view text) {
  std::vector<NetworkAddress> servers;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(part);
    absl::StatusOr<NetworkAddress> address = NetworkAddress::Parse(trimmed);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad bootstrap server '", trimmed, "': ", address.status().message()));
    }
    if (address->port == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad bootstrap server '", trimmed, "': port 0"));
    }
    servers.push_back(*std::move(address));
  }
  if (servers.empty()) return absl::InvalidArgumentError("no bootstrap server given");
  return servers;
}

int64_t BackoffMs(int attempt, int64_t base_ms, int64_t max_ms, Random& random) {
  int64_t backoff_ms = base_ms;
  for (int i = 0; i < attempt && backoff_ms < max_ms; ++i) backoff_ms *= 2;
  backoff_ms = std::min(backoff_ms, max_ms);
  const double factor = 1.0 - kBackoffJitter + 2.0 * kBackoffJitter * random.Fraction();
  return std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(backoff_ms) * factor));
}

}  // namespace runnel::client
