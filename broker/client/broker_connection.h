// BrokerConnection: one client connection to one broker, fully asynchronous over the Env.
//
// What it does:
// - Connects on demand (the first request, or Connect()), then opens with ApiVersions (v2, the
//   newest Runnel's codec speaks; if the broker answers UNSUPPORTED_VERSION in the v0 layout, as
//   codec.h describes, the handshake is repeated at the highest ApiVersions version both sides
//   support) and from the answer picks, for every api, the highest version both sides support.
// - Frames requests (broker/protocol/frame.h), numbers them with correlation ids, and matches each
//   response to the oldest request in flight: Kafka answers in request order, so a response whose
//   correlation id is not the oldest one's means the stream is broken and the connection is
//   closed.
// - Keeps at most ClientOptions::in_flight_requests_per_connection_max requests in flight and at
//   most queued_requests_per_connection_max more waiting; beyond that Send fails the request at
//   once (kResourceExhausted).
// - Gives every request ClientOptions::request_timeout_ms (or its own RequestOptions::timeout_ms),
//   counted from Send. A request that runs out of time fails with REQUEST_TIMED_OUT
//   (kDeadlineExceeded); if it had been sent, the connection is closed too, since the broker may
//   still answer it and the answers behind it would be misattributed.
// - When the connection is lost (reset, refused, setup timeout, malformed response), every request
//   in flight or queued fails with NETWORK_EXCEPTION (kUnavailable, retriable). A request that was
//   in flight may or may not have been executed by the broker. The next connection attempt waits
//   for an exponential backoff with jitter (reconnect_backoff_ms .. reconnect_backoff_ms_max),
//   reset by a successful handshake; a Send during the backoff is queued and goes out after it.
//
// Callbacks: every ResponseCallback runs exactly once, on the node's event loop, never from inside
// Send() (failures detected at Send time are reported from a later turn). Destroying the connection
// closes it and runs no callback afterwards: requests still pending are dropped silently, so owners
// that must report outcomes destroy connections only after failing or finishing their work.
#ifndef RUNNEL_BROKER_CLIENT_BROKER_CONNECTION_H_
#define RUNNEL_BROKER_CLIENT_BROKER_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/client/client_options.h"
#include "broker/env/env.h"
#include "broker/protocol/codec.h"

namespace runnel::client {

// A decoded response and the version it was decoded at.
struct ApiResponse {
  int16_t api_version = 0;
  protocol::ResponseBody body;
  // False for a request sent without expecting an answer (produce with acks=0): the callback then
  // reports only that the request was handed to the network, and `body` is empty.
  bool answered = true;
};

using ResponseCallback = absl::AnyInvocable<void(absl::StatusOr<ApiResponse> response)>;

struct RequestOptions {
  // The request's timeout; 0 means ClientOptions::request_timeout_ms.
  int64_t timeout_ms = 0;
  // False for a produce with acks=0, which the broker never answers. The request then completes
  // with OK as soon as its bytes are handed to the network, and takes no place in the window.
  bool expect_response = true;
};

struct BrokerConnectionStats {
  uint64_t connect_attempts = 0;
  uint64_t handshakes_completed = 0;
  uint64_t disconnects = 0;
  uint64_t requests_sent = 0;
  uint64_t responses_received = 0;
  uint64_t requests_timed_out = 0;
  uint64_t requests_failed = 0;
};

class BrokerConnection {
 public:
  enum class State { kDisconnected, kConnecting, kHandshaking, kReady };

  // `options` must be valid (ValidateClientOptions). `label` names the connection in logs.
  BrokerConnection(Env& env, NetworkAddress address, const ClientOptions& options,
                   std::string label);
  ~BrokerConnection();

  BrokerConnection(const BrokerConnection&) = delete;
  BrokerConnection& operator=(const BrokerConnection&) = delete;

  // Queues `request` and connects if needed. The answer, or the error, reaches `callback`.
  // Errors: kResourceExhausted (queue full), UNSUPPORTED_VERSION (the broker does not speak the
  // api at any version this client knows), NETWORK_EXCEPTION, REQUEST_TIMED_OUT, kInvalidArgument
  // (the request could not be encoded, or the response could not be decoded).
  void Send(protocol::RequestBody request, ResponseCallback callback, RequestOptions options = {});

  // Starts connecting now, or after the reconnect backoff, unless already connected or connecting.
  void Connect();

  // Closes the connection and fails every pending request with NETWORK_EXCEPTION (the callbacks
  // run before Close returns). The next Send reconnects, without backoff.
  void Close();

  State state() const { return state_; }
  bool ready() const { return state_ == State::kReady; }
  // Requests sent and not yet answered, and requests waiting to be sent.
  size_t in_flight_count() const { return in_flight_.size(); }
  size_t queued_count() const { return queued_.size(); }
  size_t pending_count() const { return in_flight_.size() + queued_.size(); }
  // The version chosen for `api_key` by the last handshake; nullopt before one completed, or when
  // the broker supports no version this client knows.
  std::optional<int16_t> ApiVersion(protocol::ApiKey api_key) const;
  const NetworkAddress& address() const { return address_; }
  const std::string& label() const { return label_; }
  const BrokerConnectionStats& stats() const { return stats_; }

 private:
  struct Pending {
    uint64_t id = 0;
    protocol::ApiKey api_key = protocol::ApiKey::kApiVersions;
    protocol::RequestBody body;
    ResponseCallback callback;
    bool expect_response = true;
    TimerId timer = kNoTimer;
    // Once sent.
    int32_t correlation_id = 0;
    int16_t api_version = 0;
    // The ApiVersions request of the handshake, which has no callback.
    bool handshake = false;
  };
  using Completion = std::pair<ResponseCallback, absl::StatusOr<ApiResponse>>;

  void EnsureConnecting();
  void StartConnect();
  void OnConnected(uint64_t generation, const absl::Status& status);
  void OnReceive(uint64_t generation, absl::string_view bytes);
  void OnClosed(uint64_t generation, const absl::Status& status);
  void SendHandshake();
  // Handles the handshake's answer; returns false if the connection was dropped.
  bool HandleHandshake(const protocol::ApiVersionsResponse& response);
  void SchedulePump();
  // Sends queued requests while the window has room; runs completions of acks=0 requests and
  // requests that could not be sent.
  void Pump();
  // Writes one frame for `pending`, which gets a correlation id and version.
  absl::Status Transmit(Pending& pending);
  void OnRequestTimeout(uint64_t id);
  // Drops the connection; fails every pending request with `status`, except the one with
  // `timed_out_id`, which fails with REQUEST_TIMED_OUT. Schedules reconnect backoff if `backoff`.
  void Disconnect(const absl::Status& status, uint64_t timed_out_id, bool backoff);
  // Runs completions one by one, stopping if a callback destroyed this connection.
  static void RunCompletions(std::weak_ptr<BrokerConnection*> alive,
                             std::vector<Completion> completions);
  absl::Status LostStatus(absl::string_view why) const;

  Env& env_;
  const NetworkAddress address_;
  const ClientOptions options_;
  const std::string label_;

  State state_ = State::kDisconnected;
  ConnectionId connection_ = kNoConnection;
  // Incremented at each connection attempt, so that callbacks of an abandoned attempt are ignored.
  uint64_t generation_ = 0;
  protocol::FrameReader reader_;
  int16_t handshake_version_ = 0;
  std::map<protocol::ApiKey, int16_t> versions_;
  int32_t next_correlation_id_ = 1;
  uint64_t next_request_id_ = 1;

  std::deque<std::unique_ptr<Pending>> queued_;
  std::deque<std::unique_ptr<Pending>> in_flight_;

  int reconnect_attempts_ = 0;
  int64_t next_connect_us_ = 0;
  TimerId connect_timer_ = kNoTimer;
  TimerId setup_timer_ = kNoTimer;
  TimerId pump_timer_ = kNoTimer;

  BrokerConnectionStats stats_;
  std::shared_ptr<BrokerConnection*> alive_;
};

// The typed body of a response, or the error. kInternal when the body is of another api (which
// the connection never produces).
template <typename Response>
absl::StatusOr<Response> TakeResponse(absl::StatusOr<ApiResponse> response) {
  if (!response.ok()) return response.status();
  Response* typed = std::get_if<Response>(&response->body);
  if (typed == nullptr) return absl::InternalError("response of an unexpected api");
  return std::move(*typed);
}

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_BROKER_CONNECTION_H_
