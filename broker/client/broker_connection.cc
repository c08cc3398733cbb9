#include "broker/client/broker_connection.h"

#include <algorithm>
#include <cassert>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/client/kafka_error.h"
#include "broker/common/big_endian.h"

namespace runnel::client {

using protocol::ApiKey;
using protocol::ErrorCode;

namespace {

constexpr int64_t kUsPerMs = 1000;

const protocol::SupportedApi& OurApiVersions() {
  const protocol::SupportedApi* api =
      protocol::FindSupportedApi(static_cast<int16_t>(ApiKey::kApiVersions));
  assert(api != nullptr);
  return *api;
}

}  // namespace

BrokerConnection::BrokerConnection(Env& env, NetworkAddress address, const ClientOptions& options,
                                   std::string label)
    : env_(env),
      address_(std::move(address)),
      options_(options),
      label_(std::move(label)),
      alive_(std::make_shared<BrokerConnection*>(this)) {}

BrokerConnection::~BrokerConnection() {
  alive_.reset();
  Clock& clock = env_.clock();
  for (TimerId timer : {connect_timer_, setup_timer_, pump_timer_}) {
    if (timer != kNoTimer) clock.CancelTimer(timer);
  }
  for (auto* queue : {&queued_, &in_flight_}) {
    for (const std::unique_ptr<Pending>& pending : *queue) {
      if (pending->timer != kNoTimer) clock.CancelTimer(pending->timer);
    }
  }
  if (connection_ != kNoConnection) env_.network().Close(connection_);
}

std::optional<int16_t> BrokerConnection::ApiVersion(ApiKey api_key) const {
  auto it = versions_.find(api_key);
  if (it == versions_.end()) return std::nullopt;
  return it->second;
}

absl::Status BrokerConnection::LostStatus(absl::string_view why) const {
  return KafkaErrorStatus(ErrorCode::kNetworkException,
                          absl::StrCat("connection to ", label_, " (", address_.ToString(), ")"),
                          why);
}

void BrokerConnection::Send(protocol::RequestBody request, ResponseCallback callback,
                            RequestOptions options) {
  auto pending = std::make_unique<Pending>();
  pending->id = next_request_id_++;
  pending->api_key = protocol::ApiKeyOf(request);
  pending->body = std::move(request);
  pending->callback = std::move(callback);
  pending->expect_response = options.expect_response;
  if (queued_.size() >= options_.queued_requests_per_connection_max) {
    ++stats_.requests_failed;
    std::vector<Completion> completions;
    completions.emplace_back(
        std::move(pending->callback),
        absl::ResourceExhaustedError(absl::StrCat(
            "connection to ", label_, ": ", queued_.size(),
            " requests already wait to be sent (queued_requests_per_connection_max)")));
    std::weak_ptr<BrokerConnection*> alive = alive_;
    env_.clock().ScheduleAfter(0, [alive, completions = std::move(completions)]() mutable {
      RunCompletions(alive, std::move(completions));
    });
    return;
  }
  const int64_t timeout_ms = options.timeout_ms > 0 ? options.timeout_ms : options_.request_timeout_ms;
  std::weak_ptr<BrokerConnection*> alive = alive_;
  const uint64_t id = pending->id;
  pending->timer = env_.clock().ScheduleAfter(timeout_ms * kUsPerMs, [alive, id] {
    if (!alive.expired()) (*alive.lock())->OnRequestTimeout(id);
  });
  queued_.push_back(std::move(pending));
  if (state_ == State::kReady) {
    SchedulePump();
  } else {
    EnsureConnecting();
  }
}

void BrokerConnection::Connect() { EnsureConnecting(); }

void BrokerConnection::Close() {
  Disconnect(LostStatus("closed by the client"), 0, /*backoff=*/false);
}

void BrokerConnection::EnsureConnecting() {
  if (state_ != State::kDisconnected || connect_timer_ != kNoTimer) return;
  const int64_t now_us = env_.clock().MonotonicNowUs();
  if (now_us >= next_connect_us_) {
    StartConnect();
    return;
  }
  std::weak_ptr<BrokerConnection*> alive = alive_;
  connect_timer_ = env_.clock().ScheduleAfter(next_connect_us_ - now_us, [alive] {
    if (alive.expired()) return;
    BrokerConnection* self = *alive.lock();
    self->connect_timer_ = kNoTimer;
    if (self->state_ == State::kDisconnected) self->StartConnect();
  });
}

void BrokerConnection::StartConnect() {
  assert(state_ == State::kDisconnected);
  ++stats_.connect_attempts;
  state_ = State::kConnecting;
  reader_ = protocol::FrameReader();
  versions_.clear();
  handshake_version_ = OurApiVersions().version_max;
  const uint64_t generation = ++generation_;
  std::weak_ptr<BrokerConnection*> alive = alive_;
  ConnectionCallbacks callbacks;
  callbacks.on_connected = [alive, generation](const absl::Status& status) {
    if (!alive.expired()) (*alive.lock())->OnConnected(generation, status);
  };
  callbacks.on_receive = [alive, generation](absl::string_view bytes) {
    if (!alive.expired()) (*alive.lock())->OnReceive(generation, bytes);
  };
  callbacks.on_closed = [alive, generation](const absl::Status& status) {
    if (!alive.expired()) (*alive.lock())->OnClosed(generation, status);
  };
  env_.Log(LogLevel::kDebug, absl::StrCat("client: connecting to ", label_, " at ",
                                          address_.ToString()));
  connection_ = env_.network().Connect(address_, std::move(callbacks));
  setup_timer_ = env_.clock().ScheduleAfter(
      options_.connection_setup_timeout_ms * kUsPerMs, [alive, generation] {
        if (alive.expired()) return;
        BrokerConnection* self = *alive.lock();
        if (self->generation_ != generation) return;
        self->setup_timer_ = kNoTimer;
        if (self->state_ == State::kConnecting || self->state_ == State::kHandshaking) {
          self->Disconnect(self->LostStatus(absl::StrCat(
                               "not ready after ", self->options_.connection_setup_timeout_ms,
                               " ms (connection_setup_timeout_ms)")),
                           0, /*backoff=*/true);
        }
      });
}

void BrokerConnection::OnConnected(uint64_t generation, const absl::Status& status) {
  if (generation != generation_ || state_ != State::kConnecting) return;
  if (!status.ok()) {
    // The attempt failed; the network runs no on_closed for it.
    Disconnect(LostStatus(absl::StrCat("connecting: ", status.message())), 0, /*backoff=*/true);
    return;
  }
  state_ = State::kHandshaking;
  SendHandshake();
}

void BrokerConnection::SendHandshake() {
  auto pending = std::make_unique<Pending>();
  pending->id = next_request_id_++;
  pending->api_key = ApiKey::kApiVersions;
  pending->body = protocol::ApiVersionsRequest{};
  pending->handshake = true;
  pending->api_version = handshake_version_;
  absl::Status sent = Transmit(*pending);
  if (!sent.ok()) {
    Disconnect(LostStatus(absl::StrCat("sending ApiVersions: ", sent.message())), 0, true);
    return;
  }
  in_flight_.push_front(std::move(pending));
}

absl::Status BrokerConnection::Transmit(Pending& pending) {
  protocol::RequestHeader header;
  header.api_key = pending.api_key;
  if (!pending.handshake) {
    auto version = versions_.find(pending.api_key);
    if (version == versions_.end()) {
      return KafkaErrorStatus(ErrorCode::kUnsupportedVersion,
                              absl::StrCat(protocol::ApiName(pending.api_key), " to ", label_),
                              "the broker supports no version this client speaks");
    }
    pending.api_version = version->second;
  }
  header.api_version = pending.api_version;
  header.correlation_id = next_correlation_id_;
  // Correlation ids stay positive; wrapping is harmless since at most a window's worth are live.
  next_correlation_id_ = next_correlation_id_ == INT32_MAX ? 1 : next_correlation_id_ + 1;
  header.client_id = options_.client_id;
  absl::StatusOr<std::string> frame = protocol::EncodeRequest(header, pending.body);
  if (!frame.ok()) return frame.status();
  pending.correlation_id = header.correlation_id;
  absl::Status sent = env_.network().Send(connection_, *frame);
  if (!sent.ok()) return sent;
  ++stats_.requests_sent;
  return absl::OkStatus();
}

void BrokerConnection::SchedulePump() {
  if (pump_timer_ != kNoTimer) return;
  std::weak_ptr<BrokerConnection*> alive = alive_;
  pump_timer_ = env_.clock().ScheduleAfter(0, [alive] {
    if (alive.expired()) return;
    BrokerConnection* self = *alive.lock();
    self->pump_timer_ = kNoTimer;
    self->Pump();
  });
}

void BrokerConnection::Pump() {
  std::vector<Completion> completions;
  bool lost = false;
  absl::Status lost_status;
  while (state_ == State::kReady && !queued_.empty() &&
         in_flight_.size() < options_.in_flight_requests_per_connection_max) {
    std::unique_ptr<Pending> pending = std::move(queued_.front());
    queued_.pop_front();
    absl::Status sent = Transmit(*pending);
    if (!sent.ok()) {
      env_.clock().CancelTimer(pending->timer);
      ++stats_.requests_failed;
      if (sent.code() == absl::StatusCode::kFailedPrecondition) {
        // The network says the connection is closed: everything else fails with it.
        completions.emplace_back(std::move(pending->callback),
                                 LostStatus(absl::StrCat("sending: ", sent.message())));
        lost = true;
        lost_status = LostStatus(sent.message());
        break;
      }
      completions.emplace_back(std::move(pending->callback), sent);
      continue;
    }
    if (!pending->expect_response) {
      env_.clock().CancelTimer(pending->timer);
      ApiResponse response;
      response.api_version = pending->api_version;
      response.answered = false;
      completions.emplace_back(std::move(pending->callback), std::move(response));
      continue;
    }
    in_flight_.push_back(std::move(pending));
  }
  std::weak_ptr<BrokerConnection*> alive = alive_;
  if (lost) Disconnect(lost_status, 0, /*backoff=*/true);
  RunCompletions(alive, std::move(completions));
}

void BrokerConnection::OnReceive(uint64_t generation, absl::string_view bytes) {
  if (generation != generation_ || connection_ == kNoConnection) return;
  reader_.Append(bytes);
  std::weak_ptr<BrokerConnection*> alive = alive_;
  while (!alive.expired() && generation == generation_) {
    absl::StatusOr<std::optional<absl::string_view>> frame = reader_.Next();
    if (!frame.ok()) {
      Disconnect(LostStatus(absl::StrCat("bad frame: ", frame.status().message())), 0, true);
      return;
    }
    if (!frame->has_value()) return;
    absl::string_view body = **frame;
    if (in_flight_.empty()) {
      Disconnect(LostStatus("a response arrived with no request in flight"), 0, true);
      return;
    }
    if (body.size() < 4) {
      Disconnect(LostStatus("a response frame too short for its header"), 0, true);
      return;
    }
    const int32_t correlation_id = LoadBigEndian<int32_t>(body.data());
    Pending& oldest = *in_flight_.front();
    if (correlation_id != oldest.correlation_id) {
      Disconnect(LostStatus(absl::StrCat("response correlation id ", correlation_id,
                                         " does not match the oldest request's ",
                                         oldest.correlation_id)),
                 0, true);
      return;
    }
    absl::StatusOr<protocol::Response> response =
        protocol::DecodeResponse(body, oldest.api_key, oldest.api_version);
    if (!response.ok()) {
      Disconnect(LostStatus(absl::StrCat("undecodable ", protocol::ApiName(oldest.api_key),
                                         " response: ", response.status().message())),
                 0, true);
      return;
    }
    std::unique_ptr<Pending> pending = std::move(in_flight_.front());
    in_flight_.pop_front();
    env_.clock().CancelTimer(pending->timer);
    ++stats_.responses_received;
    if (pending->handshake) {
      auto* versions = std::get_if<protocol::ApiVersionsResponse>(&response->body);
      if (versions == nullptr || !HandleHandshake(*versions)) return;
      continue;
    }
    ApiResponse answer;
    answer.api_version = pending->api_version;
    answer.body = std::move(response->body);
    pending->callback(std::move(answer));
    if (alive.expired()) return;
    // The window has room again.
    if (state_ == State::kReady && !queued_.empty()) SchedulePump();
  }
}

bool BrokerConnection::HandleHandshake(const protocol::ApiVersionsResponse& response) {
  const protocol::SupportedApi& ours = OurApiVersions();
  if (response.error_code == protocol::ToWire(ErrorCode::kUnsupportedVersion)) {
    // The broker lists its ranges even in this answer; retry at the best common version.
    for (const auto& range : response.api_keys) {
      if (range.api_key != static_cast<int16_t>(ApiKey::kApiVersions)) continue;
      const int16_t version = std::min(range.max_version, ours.version_max);
      if (version < handshake_version_ && version >= ours.version_min &&
          version >= range.min_version) {
        handshake_version_ = version;
        SendHandshake();
        return state_ == State::kHandshaking;
      }
    }
  }
  if (response.error_code != 0) {
    Disconnect(KafkaErrorStatusFromWire(response.error_code,
                                        absl::StrCat("ApiVersions handshake with ", label_)),
               0, true);
    return false;
  }
  versions_.clear();
  for (const auto& range : response.api_keys) {
    const protocol::SupportedApi* api = protocol::FindSupportedApi(range.api_key);
    if (api == nullptr) continue;
    const int16_t low = std::max(api->version_min, range.min_version);
    const int16_t high = std::min(api->version_max, range.max_version);
    if (low <= high) versions_[api->api_key] = high;
  }
  state_ = State::kReady;
  if (setup_timer_ != kNoTimer) {
    env_.clock().CancelTimer(setup_timer_);
    setup_timer_ = kNoTimer;
  }
  reconnect_attempts_ = 0;
  ++stats_.handshakes_completed;
  env_.Log(LogLevel::kDebug, absl::StrCat("client: connected to ", label_, " at ",
                                          address_.ToString(), ", ApiVersions v",
                                          handshake_version_));
  SchedulePump();
  return true;
}

void BrokerConnection::OnClosed(uint64_t generation, const absl::Status& status) {
  if (generation != generation_ || connection_ == kNoConnection) return;
  // The network already closed it; do not close it again.
  connection_ = kNoConnection;
  Disconnect(LostStatus(status.ok() ? "closed by the broker" : std::string(status.message())), 0,
             /*backoff=*/true);
}

void BrokerConnection::OnRequestTimeout(uint64_t id) {
  for (auto it = queued_.begin(); it != queued_.end(); ++it) {
    if ((*it)->id != id) continue;
    std::unique_ptr<Pending> pending = std::move(*it);
    queued_.erase(it);
    ++stats_.requests_timed_out;
    std::vector<Completion> completions;
    completions.emplace_back(
        std::move(pending->callback),
        KafkaErrorStatus(ErrorCode::kRequestTimedOut,
                         absl::StrCat(protocol::ApiName(pending->api_key), " to ", label_),
                         "not sent within the request timeout (the broker was not reachable)"));
    RunCompletions(alive_, std::move(completions));
    return;
  }
  for (const std::unique_ptr<Pending>& pending : in_flight_) {
    if (pending->id != id) continue;
    ++stats_.requests_timed_out;
    Disconnect(LostStatus(absl::StrCat("a ", protocol::ApiName(pending->api_key),
                                       " request timed out")),
               id, /*backoff=*/true);
    return;
  }
}

void BrokerConnection::Disconnect(const absl::Status& status, uint64_t timed_out_id,
                                  bool backoff) {
  if (connection_ != kNoConnection) {
    env_.network().Close(connection_);
    connection_ = kNoConnection;
  }
  const bool was_connected = state_ != State::kDisconnected;
  state_ = State::kDisconnected;
  ++generation_;
  versions_.clear();
  reader_ = protocol::FrameReader();
  Clock& clock = env_.clock();
  for (TimerId* timer : {&setup_timer_, &pump_timer_}) {
    if (*timer != kNoTimer) clock.CancelTimer(*timer);
    *timer = kNoTimer;
  }
  if (was_connected) {
    ++stats_.disconnects;
    env_.Log(LogLevel::kDebug, absl::StrCat("client: ", status.message()));
  }
  if (backoff) {
    next_connect_us_ = clock.MonotonicNowUs() +
                       BackoffMs(reconnect_attempts_, options_.reconnect_backoff_ms,
                                 options_.reconnect_backoff_ms_max, env_.random()) *
                           kUsPerMs;
    ++reconnect_attempts_;
  } else {
    next_connect_us_ = 0;
    reconnect_attempts_ = 0;
  }
  std::vector<Completion> completions;
  for (auto* queue : {&in_flight_, &queued_}) {
    for (std::unique_ptr<Pending>& pending : *queue) {
      clock.CancelTimer(pending->timer);
      if (pending->handshake) continue;
      ++stats_.requests_failed;
      if (pending->id == timed_out_id) {
        completions.emplace_back(
            std::move(pending->callback),
            KafkaErrorStatus(ErrorCode::kRequestTimedOut,
                             absl::StrCat(protocol::ApiName(pending->api_key), " to ", label_),
                             "no response within the request timeout"));
      } else {
        completions.emplace_back(std::move(pending->callback), status);
      }
    }
    queue->clear();
  }
  RunCompletions(alive_, std::move(completions));
}

void BrokerConnection::RunCompletions(std::weak_ptr<BrokerConnection*> alive,
                                      std::vector<Completion> completions) {
  for (Completion& completion : completions) {
    if (alive.expired()) return;
    completion.first(std::move(completion.second));
  }
}

}  // namespace runnel::client
