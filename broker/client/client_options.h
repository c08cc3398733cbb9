// Settings shared by every part of the client (connections, metadata, admin, producer, consumer),
// the types that name partitions, and the backoff rule.
//
// Every duration is in milliseconds, as Kafka's client configs are, and is measured on the Env's
// monotonic clock. Every bound has a named default below.
#ifndef RUNNEL_BROKER_CLIENT_CLIENT_OPTIONS_H_
#define RUNNEL_BROKER_CLIENT_CLIENT_OPTIONS_H_

#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/network.h"
#include "broker/env/random.h"

namespace runnel::client {

// One partition of one topic. Ordered (topic, then partition) so that maps of them iterate the
// same way in every run.
struct TopicPartition {
  std::string topic;
  int32_t partition = 0;

  std::string ToString() const;
  friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
};

struct ClientOptions {
  // Kafka's defaults, where Kafka has the setting.
  static constexpr int64_t kRequestTimeoutMsDefault = 30'000;              // request.timeout.ms
  static constexpr int64_t kConnectionSetupTimeoutMsDefault = 10'000;      // socket.connection.setup.timeout.ms
  static constexpr int64_t kReconnectBackoffMsDefault = 50;                // reconnect.backoff.ms
  static constexpr int64_t kReconnectBackoffMsMaxDefault = 1'000;          // reconnect.backoff.max.ms
  static constexpr int64_t kRetryBackoffMsDefault = 100;                   // retry.backoff.ms
  static constexpr int64_t kRetryBackoffMsMaxDefault = 1'000;              // retry.backoff.max.ms
  static constexpr int64_t kMetadataMaxAgeMsDefault = 300'000;             // metadata.max.age.ms
  static constexpr size_t kInFlightRequestsPerConnectionMaxDefault = 5;    // max.in.flight.requests.per.connection
  // Requests a connection holds while it is not yet ready, or while its in-flight window is full.
  // A request beyond it fails at once with kResourceExhausted.
  static constexpr size_t kQueuedRequestsPerConnectionMaxDefault = 1024;

  // Where to find the cluster first; Metadata answers tell the rest. Must not be empty.
  std::vector<NetworkAddress> bootstrap_servers;
  std::string client_id = "runnel";
  // How long a request may wait for its answer, counted from when it was handed to the connection
  // (so time spent queued while connecting counts). A request that runs out of time fails with
  // REQUEST_TIMED_OUT; if it had been sent, the connection is closed, because later answers on it
  // would otherwise be matched to the wrong requests.
  int64_t request_timeout_ms = kRequestTimeoutMsDefault;
  // How long connecting and the ApiVersions handshake may take before the attempt is abandoned.
  int64_t connection_setup_timeout_ms = kConnectionSetupTimeoutMsDefault;
  // Reconnect attempts to one broker are spaced by an exponential backoff from the first to the
  // second value, with jitter (BackoffMs).
  int64_t reconnect_backoff_ms = kReconnectBackoffMsDefault;
  int64_t reconnect_backoff_ms_max = kReconnectBackoffMsMaxDefault;
  // Retries of failed requests (produce batches, fetches, metadata, admin operations) are spaced
  // the same way.
  int64_t retry_backoff_ms = kRetryBackoffMsDefault;
  int64_t retry_backoff_ms_max = kRetryBackoffMsMaxDefault;
  // Metadata is refreshed at least this often, and at once after errors that suggest it is stale.
  int64_t metadata_max_age_ms = kMetadataMaxAgeMsDefault;
  // Requests sent on one connection and not yet answered. The broker answers in order, so more
  // only helps to hide latency.
  size_t in_flight_requests_per_connection_max = kInFlightRequestsPerConnectionMaxDefault;
  size_t queued_requests_per_connection_max = kQueuedRequestsPerConnectionMaxDefault;
  // Whether a Metadata request may create the topics it names (Kafka's producer asks for this; the
  // broker decides with auto.create.topics.enable).
  bool allow_auto_topic_creation = false;
};

// Checks the options: at least one bootstrap server, positive timeouts and windows, backoff minima
// not above their maxima. kInvalidArgument names the field.
absl::Status ValidateClientOptions(const ClientOptions& options);

// Parses "host:port[,host:port...]" into bootstrap servers.
absl::StatusOr<std::vector<NetworkAddress>> ParseBootstrapServers(absl::string_view text);

// The wait before attempt number `attempt` (0 for the first retry): base * 2^attempt, capped at
// `max_ms`, then multiplied by a factor drawn uniformly from [1 - kBackoffJitter, 1 + kBackoffJitter]
// so that clients that failed together do not retry together (Kafka's rule). Never below 1 ms.
inline constexpr double kBackoffJitter = 0.2;
int64_t BackoffMs(int attempt, int64_t base_ms, int64_t max_ms, Random& random);

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_CLIENT_OPTIONS_H_
