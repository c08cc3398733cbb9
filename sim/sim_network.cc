#include "sim/sim_network.h"

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"

namespace runnel::sim {

struct SimNetwork::Endpoint {
  NodeId node = -1;
  uint64_t incarnation = 0;
  ConnectionId id = kNoConnection;
  // False once the owner closed it, saw on_closed, or crashed: no callback runs after that.
  bool open = false;
  ConnectionCallbacks callbacks;
  // Set by SetReceivePaused: nothing is handed to on_receive, and the window towards it is closed.
  bool receive_paused = false;
};

struct SimNetwork::Message {
  std::string bytes;
  bool fin = false;  // the sender's orderly close, ordered after its data
};

struct SimNetwork::Direction {
  // Deliveries on one direction never overtake each other: each is scheduled no earlier than this.
  int64_t last_delivery_us = 0;
  // The sender's backlog: messages not yet on the wire (blocked link or paused receiver).
  std::deque<Message> stalled;
  size_t stalled_bytes = 0;
  // When the held bytes started waiting on a blocked link; -1 while the stall clock is stopped.
  int64_t stalled_since_us = -1;
  // The receiver's socket buffer: messages that arrived while it was paused, or behind such
  // messages. Nothing new is put on the wire towards a paused receiver, so this holds at most what
  // was in flight when the pause began.
  std::deque<Message> arrived;
  // A DeliverArrived event is pending for this direction.
  bool arrived_delivery_scheduled = false;
};

struct SimNetwork::Connection {
  uint64_t id = 0;
  bool established = false;
  bool reset = false;
  Endpoint side[2];
  Direction direction[2];  // direction[s]: bytes flowing from side s to side 1 - s
  // Bytes the connecting side sent before the connection was established.
  std::string pre_connect_backlog;
  // Whether the connecting side has been told the outcome through on_connected.
  bool connect_reported = false;
  // The SYN reached a stalled listener and waits for it to resume.
  bool accept_deferred = false;
};

// The Network one node incarnation sees: every call is checked against the incarnation, so a
// handle kept past a crash does nothing.
class SimNodeNetwork final : public Network {
 public:
  SimNodeNetwork(SimNetwork& network, NodeId node, uint64_t incarnation)
      : network_(network), node_(node), incarnation_(incarnation) {}

  absl::StatusOr<ListenerId> Listen(const NetworkAddress& address,
                                    AcceptCallback on_accept) override {
    return network_.Listen(node_, incarnation_, address, std::move(on_accept));
  }
  absl::StatusOr<NetworkAddress> ListenerAddress(ListenerId listener) const override {
    return network_.ListenerAddress(node_, listener);
  }
  void StopListening(ListenerId listener) override { network_.StopListening(node_, listener); }
  ConnectionId Connect(const NetworkAddress& address, ConnectionCallbacks callbacks) override {
    return network_.Connect(node_, incarnation_, address, std::move(callbacks));
  }
  absl::Status Send(ConnectionId connection, absl::string_view bytes) override {
    return network_.Send(node_, incarnation_, connection, bytes);
  }
  size_t SendBacklogBytes(ConnectionId connection) const override {
    return network_.SendBacklogBytes(node_, incarnation_, connection);
  }
  void SetReceivePaused(ConnectionId connection, bool paused) override {
    network_.SetReceivePaused(node_, incarnation_, connection, paused);
  }
  void Close(ConnectionId connection) override { network_.Close(node_, incarnation_, connection); }

 private:
  SimNetwork& network_;
  NodeId node_;
  uint64_t incarnation_;
};

SimNetwork::SimNetwork(SimContext& context, NetworkOptions options)
    : context_(context), options_(options) {}

SimNetwork::~SimNetwork() = default;

void SimNetwork::RegisterNode(NodeId node, std::string host) {
  assert(node >= 0);
  const size_t index = static_cast<size_t>(node);
  if (host_names_.size() <= index) {
    host_names_.resize(index + 1);
    incarnations_.resize(index + 1, 0);
    next_ephemeral_port_.resize(index + 1, kEphemeralPortFirst);
  }
  assert(host_names_[index].empty());
  assert(nodes_by_host_.count(host) == 0);
  host_names_[index] = host;
  nodes_by_host_[host] = node;
}

const std::string& SimNetwork::HostName(NodeId node) const {
  return host_names_.at(static_cast<size_t>(node));
}

std::unique_ptr<Network> SimNetwork::OpenView(NodeId node, uint64_t incarnation) {
  assert(incarnation > 0);
  incarnations_.at(static_cast<size_t>(node)) = incarnation;
  return std::make_unique<SimNodeNetwork>(*this, node, incarnation);
}

void SimNetwork::NodeCrashed(NodeId node) {
  incarnations_.at(static_cast<size_t>(node)) = 0;
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    it = it->second.node == node ? listeners_.erase(it) : std::next(it);
  }
  std::vector<uint64_t> affected;
  for (const auto& [id, connection] : connections_) {
    if ((connection->side[0].node == node && connection->side[0].open) ||
        (connection->side[1].node == node && connection->side[1].open)) {
      affected.push_back(id);
    }
  }
  for (uint64_t id : affected) {
    Connection* connection = FindConnection(id);
    if (connection == nullptr) continue;
    for (int side = 0; side < 2; ++side) {
      if (connection->side[side].node == node) {
        connection->side[side].open = false;
        connection->side[side].callbacks = ConnectionCallbacks();
      }
    }
    // The peer hears a reset promptly (the rebooted host answers with RST) or only after TCP's
    // retransmission timeout.
    const bool prompt = context_.FaultRandom().Chance(options_.crash_reset_probability);
    const int64_t delay_us = prompt ? options_.latency_us_max : options_.connection_timeout_us;
    if (!connection->established) {
      // A handshake in flight: if the crashed node was the target, the SYN finds no listener and
      // the connect is refused; if it was the connecting side, nobody is left to tell. A SYN that
      // waited for the target to resume from a stall is handled below.
      MaybeForget(id);
      continue;
    }
    Reset(*connection, prompt ? "connection reset by peer (peer crashed)"
                              : "connection timed out (peer crashed)",
          delay_us, delay_us);
  }
  // A SYN that waited for this node to resume from a stall had its event dropped with the
  // incarnation: the rebooted host refuses it.
  std::vector<uint64_t> deferred;
  for (const auto& [id, connection] : connections_) {
    if (connection->accept_deferred && connection->side[1].node == node &&
        connection->side[0].open) {
      deferred.push_back(id);
    }
  }
  for (uint64_t id : deferred) {
    Connection& connection = *connections_.at(id);
    connection.accept_deferred = false;
    const int64_t back_latency_us = DrawLatencyUs(node, connection.side[0].node);
    context_.Schedule(back_latency_us,
                      [this, id] { FailConnect(id, absl::UnavailableError("connection refused")); });
  }
}

void SimNetwork::NodeStopped(NodeId node) {
  const uint64_t incarnation = incarnations_.at(static_cast<size_t>(node));
  std::vector<ConnectionId> open_endpoints;
  for (const auto& [id, connection] : connections_) {
    for (const Endpoint& endpoint : connection->side) {
      if (endpoint.node == node && endpoint.open) open_endpoints.push_back(endpoint.id);
    }
  }
  for (ConnectionId endpoint : open_endpoints) Close(node, incarnation, endpoint);
  NodeCrashed(node);
}

void SimNetwork::SetLinkBlocked(NodeId from, NodeId to, bool blocked) {
  if (from == to) return;
  const auto link = std::make_pair(from, to);
  if (blocked) {
    blocked_links_[link] = true;
    // Bytes held back only by a paused receiver now also wait on a dead link: TCP's window probes
    // go unanswered, so the connection times out as if the bytes were being retransmitted.
    for (auto& [id, connection] : connections_) {
      for (int side = 0; side < 2; ++side) {
        if (connection->side[side].node == from && connection->side[1 - side].node == to &&
            !connection->reset && !connection->direction[side].stalled.empty()) {
          StartStallClock(*connection, side);
        }
      }
    }
    return;
  }
  if (blocked_links_.erase(link) == 0) return;
  for (auto& [id, connection] : connections_) {
    for (int side = 0; side < 2; ++side) {
      if (connection->side[side].node == from && connection->side[1 - side].node == to &&
          !connection->direction[side].stalled.empty()) {
        ReleaseStalled(*connection, side);
      }
    }
  }
}

bool SimNetwork::IsLinkBlocked(NodeId from, NodeId to) const {
  return blocked_links_.count(std::make_pair(from, to)) > 0;
}

void SimNetwork::Partition(const std::vector<NodeId>& group_a, const std::vector<NodeId>& group_b,
                           bool one_way) {
  for (NodeId a : group_a) {
    for (NodeId b : group_b) {
      SetLinkBlocked(a, b, true);
      if (!one_way) SetLinkBlocked(b, a, true);
    }
  }
}

void SimNetwork::HealAll() {
  std::vector<std::pair<NodeId, NodeId>> links;
  for (const auto& [link, blocked] : blocked_links_) links.push_back(link);
  for (const auto& [from, to] : links) SetLinkBlocked(from, to, false);
}

void SimNetwork::SetLinkExtraDelayUs(NodeId from, NodeId to, int64_t extra_delay_us) {
  if (extra_delay_us <= 0) {
    extra_delays_us_.erase({from, to});
  } else {
    extra_delays_us_[{from, to}] = extra_delay_us;
  }
}

bool SimNetwork::ResetRandomConnection() {
  std::vector<uint64_t> candidates;
  for (const auto& [id, connection] : connections_) {
    if (connection->established && !connection->reset) candidates.push_back(id);
  }
  if (candidates.empty()) return false;
  Connection& connection = *connections_.at(candidates[context_.FaultRandom().Below(candidates.size())]);
  const int64_t latency_us = options_.latency_us_min;
  Reset(connection, "connection reset (injected)", latency_us, latency_us);
  return true;
}

void SimNetwork::ResetConnectionsOf(NodeId node) {
  std::vector<uint64_t> affected;
  for (const auto& [id, connection] : connections_) {
    if ((connection->side[0].node == node || connection->side[1].node == node) &&
        connection->established && !connection->reset) {
      affected.push_back(id);
    }
  }
  for (uint64_t id : affected) {
    Reset(*connections_.at(id), "connection reset (injected)", options_.latency_us_min,
          options_.latency_us_min);
  }
}

absl::StatusOr<ListenerId> SimNetwork::Listen(NodeId node, uint64_t incarnation,
                                              const NetworkAddress& address,
                                              AcceptCallback on_accept) {
  if (incarnations_.at(static_cast<size_t>(node)) != incarnation) {
    return absl::FailedPreconditionError("listen from a crashed node incarnation");
  }
  if (address.host != HostName(node) && address.host != "0.0.0.0" && address.host != "::") {
    return absl::InvalidArgumentError(absl::StrCat("cannot listen on ", address.ToString(),
                                                   ": this node is ", HostName(node)));
  }
  uint16_t port = address.port;
  auto port_taken = [&](uint16_t candidate) {
    for (const auto& [id, listener] : listeners_) {
      if (listener.node == node && listener.port == candidate) return true;
    }
    return false;
  };
  if (port == 0) {
    uint16_t& next = next_ephemeral_port_.at(static_cast<size_t>(node));
    while (port_taken(next)) ++next;
    port = next++;
  } else if (port_taken(port)) {
    return absl::AlreadyExistsError(absl::StrCat("address in use: ", address.ToString()));
  }
  const ListenerId id = next_listener_id_++;
  listeners_[id] = Listener{node, incarnation, port,
                            std::make_shared<AcceptCallback>(std::move(on_accept))};
  return id;
}

absl::StatusOr<NetworkAddress> SimNetwork::ListenerAddress(NodeId node, ListenerId listener) const {
  auto it = listeners_.find(listener);
  if (it == listeners_.end() || it->second.node != node) {
    return absl::NotFoundError(absl::StrCat("no listener ", listener));
  }
  return NetworkAddress{HostName(node), it->second.port};
}

void SimNetwork::StopListening(NodeId node, ListenerId listener) {
  auto it = listeners_.find(listener);
  if (it != listeners_.end() && it->second.node == node) listeners_.erase(it);
}

ConnectionId SimNetwork::Connect(NodeId node, uint64_t incarnation, const NetworkAddress& address,
                                 ConnectionCallbacks callbacks) {
  const ConnectionId endpoint_id = next_endpoint_id_++;
  auto connection = std::make_unique<Connection>();
  connection->id = endpoint_id;
  connection->side[0] = Endpoint{node, incarnation, endpoint_id,
                                 incarnations_.at(static_cast<size_t>(node)) == incarnation,
                                 std::move(callbacks)};
  Connection& ref = *connection;
  connections_[endpoint_id] = std::move(connection);
  connection_of_endpoint_[endpoint_id] = endpoint_id;

  auto target = nodes_by_host_.find(address.host);
  const NodeId peer = target == nodes_by_host_.end() ? -1 : target->second;
  ref.side[1].node = peer;
  RecordConnectionEvent(CONNECT_START, ref, 0, address.ToString());
  if (!ref.side[0].open) {
    FailConnect(endpoint_id, absl::FailedPreconditionError("connect from a crashed incarnation"));
    return endpoint_id;
  }
  if (peer < 0) {
    const uint64_t id = endpoint_id;
    context_.Schedule(options_.latency_us_min, [this, id, host = address.host] {
      FailConnect(id, absl::UnavailableError(absl::StrCat("unknown host ", host)));
    });
    return endpoint_id;
  }
  if (IsLinkBlocked(node, peer) || IsLinkBlocked(peer, node)) {
    // The SYN or its answer is lost; TCP retries until the connect timeout.
    const uint64_t id = endpoint_id;
    context_.Schedule(options_.connect_timeout_us, [this, id] {
      FailConnect(id, absl::DeadlineExceededError("connect timed out"));
    });
    return endpoint_id;
  }
  const uint64_t id = endpoint_id;
  const uint16_t port = address.port;
  context_.Schedule(DrawLatencyUs(node, peer),
                    [this, id, peer, port] { ArriveSyn(id, peer, port); });
  return endpoint_id;
}

void SimNetwork::ArriveSyn(uint64_t id, NodeId peer, uint16_t port) {
  Connection* connection = FindConnection(id);
  if (connection == nullptr || !connection->side[0].open) {
    MaybeForget(id);
    return;
  }
  const uint64_t peer_incarnation = incarnations_.at(static_cast<size_t>(peer));
  if (peer_incarnation != 0 && context_.IsNodeStalled(peer)) {
    // The listening process is paused, so it cannot accept: the handshake completes when it runs
    // again (an event of its own, held until it resumes). If it crashes meanwhile, NodeCrashed
    // refuses the connect.
    connection->accept_deferred = true;
    context_.ScheduleForNode(peer, peer_incarnation, 0,
                             [this, id, peer, port] { ArriveSyn(id, peer, port); });
    return;
  }
  connection->accept_deferred = false;
  const Listener* listener = nullptr;
  if (incarnations_.at(static_cast<size_t>(peer)) != 0) {
    for (const auto& [listener_id, candidate] : listeners_) {
      if (candidate.node == peer && candidate.port == port) listener = &candidate;
    }
  }
  const int64_t back_latency_us = DrawLatencyUs(peer, connection->side[0].node);
  if (listener == nullptr) {
    context_.Schedule(back_latency_us, [this, id] {
      FailConnect(id, absl::UnavailableError("connection refused"));
    });
    return;
  }
  // Accept: the listening side's endpoint comes to life now.
  const ConnectionId accepted_id = next_endpoint_id_++;
  connection_of_endpoint_[accepted_id] = id;
  Endpoint& accepted = connection->side[1];
  accepted.node = peer;
  accepted.incarnation = listener->incarnation;
  accepted.id = accepted_id;
  accepted.open = true;
  connection->established = true;
  // Nothing from the accepting side may arrive before the connecting side hears it is connected.
  connection->direction[1].last_delivery_us = context_.NowUs() + back_latency_us;
  RecordConnectionEvent(ACCEPT, *connection, 1, "");
  // The answer to the connecting side is scheduled before on_accept runs: whatever the accepting
  // side sends or closes inside on_accept is delivered no earlier than it, and events of equal
  // time run in scheduling order, so the connecting side hears on_connected first.
  context_.ScheduleForNode(connection->side[0].node, connection->side[0].incarnation,
                           back_latency_us, [this, id] { CompleteConnect(id); });
  std::shared_ptr<AcceptCallback> on_accept = listener->on_accept;
  NetworkAddress peer_address{HostName(connection->side[0].node), 0};
  ConnectionCallbacks callbacks = (*on_accept)(accepted_id, peer_address);
  connection = FindConnection(id);
  if (connection == nullptr) return;
  if (connection->side[1].open) connection->side[1].callbacks = std::move(callbacks);
}

void SimNetwork::CompleteConnect(uint64_t connection_id) {
  Connection* connection = FindConnection(connection_id);
  // A reset before this point is reported through on_connected by NotifyReset.
  if (connection == nullptr || connection->reset) return;
  Endpoint& local = connection->side[0];
  if (!local.open) return;
  RecordConnectionEvent(CONNECT_OK, *connection, 0, "");
  connection->connect_reported = true;
  // Bytes queued before the connection was established go out now, before anything on_connected
  // sends.
  if (!connection->pre_connect_backlog.empty()) {
    std::string backlog = std::move(connection->pre_connect_backlog);
    connection->pre_connect_backlog.clear();
    Transmit(*connection, 0, std::move(backlog), false);
  }
  if (local.callbacks.on_connected) {
    auto on_connected = std::move(local.callbacks.on_connected);
    on_connected(absl::OkStatus());
  }
}

void SimNetwork::FailConnect(uint64_t connection_id, absl::Status status) {
  Connection* connection = FindConnection(connection_id);
  if (connection == nullptr || connection->established) return;
  Endpoint& local = connection->side[0];
  if (local.open && context_.IsNodeStalled(local.node)) {
    // The connecting process is paused: it hears of the failure when it runs again.
    context_.ScheduleForNode(local.node, local.incarnation, 0,
                             [this, connection_id, status = std::move(status)]() mutable {
                               FailConnect(connection_id, std::move(status));
                             });
    return;
  }
  if (local.open) {
    RecordConnectionEvent(CONNECT_FAILED, *connection, 0, status.message());
    local.open = false;
    connection->connect_reported = true;
    auto on_connected = std::move(local.callbacks.on_connected);
    local.callbacks = ConnectionCallbacks();
    if (on_connected) on_connected(status);
  }
  connection = FindConnection(connection_id);
  if (connection != nullptr) {
    connection->reset = true;
    MaybeForget(connection_id);
  }
}

SimNetwork::Connection* SimNetwork::FindConnection(uint64_t connection_id) {
  auto it = connections_.find(connection_id);
  return it == connections_.end() ? nullptr : it->second.get();
}

SimNetwork::Endpoint* SimNetwork::FindOwnEndpoint(NodeId node, uint64_t incarnation,
                                                  ConnectionId endpoint, Connection** connection,
                                                  int* side) {
  auto it = connection_of_endpoint_.find(endpoint);
  if (it == connection_of_endpoint_.end()) return nullptr;
  Connection* found = FindConnection(it->second);
  if (found == nullptr) return nullptr;
  for (int s = 0; s < 2; ++s) {
    Endpoint& candidate = found->side[s];
    if (candidate.id == endpoint && candidate.node == node &&
        candidate.incarnation == incarnation && candidate.open) {
      *connection = found;
      *side = s;
      return &candidate;
    }
  }
  return nullptr;
}

absl::Status SimNetwork::Send(NodeId node, uint64_t incarnation, ConnectionId endpoint,
                              absl::string_view bytes) {
  Connection* connection = nullptr;
  int side = 0;
  if (FindOwnEndpoint(node, incarnation, endpoint, &connection, &side) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("connection ", endpoint, " is closed"));
  }
  if (connection->reset) {
    // The reset has not reached this side yet (its on_closed is still on the way, possibly a whole
    // TCP timeout away): like a real socket, the send is accepted and the bytes go nowhere.
    return absl::OkStatus();
  }
  if (bytes.empty()) return absl::OkStatus();
  if (SendBacklogBytes(node, incarnation, endpoint) + bytes.size() > kSendBacklogBytesMax) {
    return absl::ResourceExhaustedError(
        absl::StrCat("connection ", endpoint, ": send backlog is full"));
  }
  TraceEntry entry;
  entry.time_us = context_.NowUs();
  entry.node = node;
  entry.kind = SEND;
  entry.peer_node = connection->side[1 - side].node;
  entry.connection = endpoint;
  entry.bytes = bytes.size();
  context_.trace().Record(entry);
  if (!connection->established || (side == 0 && !connection->connect_reported)) {
    // Until the connecting side hears that it is connected (the peer may already have accepted),
    // its bytes wait in the backlog, so they leave in the order they were sent.
    assert(side == 0);
    connection->pre_connect_backlog.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  }
  if (!connection->side[1 - side].open) {
    // The peer already closed its end; TCP would answer with a reset, which the peer's own close
    // makes moot. The bytes go nowhere.
    return absl::OkStatus();
  }
  Transmit(*connection, side, std::string(bytes), false);
  return absl::OkStatus();
}

size_t SimNetwork::SendBacklogBytes(NodeId node, uint64_t incarnation,
                                    ConnectionId endpoint) const {
  auto* self = const_cast<SimNetwork*>(this);
  Connection* connection = nullptr;
  int side = 0;
  if (self->FindOwnEndpoint(node, incarnation, endpoint, &connection, &side) == nullptr) return 0;
  return connection->pre_connect_backlog.size() + connection->direction[side].stalled_bytes;
}

void SimNetwork::SetReceivePaused(NodeId node, uint64_t incarnation, ConnectionId endpoint,
                                  bool paused) {
  Connection* connection = nullptr;
  int side = 0;
  Endpoint* local = FindOwnEndpoint(node, incarnation, endpoint, &connection, &side);
  if (local == nullptr || local->receive_paused == paused) return;
  local->receive_paused = paused;
  RecordConnectionEvent(paused ? RECEIVE_PAUSED : RECEIVE_RESUMED, *connection, side, "");
  if (paused || connection->reset) return;
  // What waited in the socket buffer goes first, from an event of its own (never from inside this
  // call); anything arriving before that event runs queues up behind it (see Deliver).
  Direction& incoming = connection->direction[1 - side];
  if (!incoming.arrived.empty() && !incoming.arrived_delivery_scheduled) {
    incoming.arrived_delivery_scheduled = true;
    const uint64_t id = connection->id;
    context_.ScheduleForNode(local->node, local->incarnation, 0,
                             [this, id, side] { DeliverArrived(id, side); });
  }
  // The window opens: the sender's backlog goes out behind it, with latencies of at least zero.
  ReleaseStalled(*connection, 1 - side);
}

void SimNetwork::Close(NodeId node, uint64_t incarnation, ConnectionId endpoint) {
  Connection* connection = nullptr;
  int side = 0;
  Endpoint* local = FindOwnEndpoint(node, incarnation, endpoint, &connection, &side);
  if (local == nullptr) return;
  local->open = false;
  local->callbacks = ConnectionCallbacks();
  // A closed end reads and discards until the peer closes: what waited for it is dropped, and the
  // peer's backlog held back by the pause goes out, to be discarded on arrival.
  const bool was_paused = local->receive_paused;
  local->receive_paused = false;
  Direction& incoming = connection->direction[1 - side];
  incoming.arrived.clear();
  RecordConnectionEvent(CONNECTION_CLOSED, *connection, side, "closed locally");
  const uint64_t id = connection->id;
  if (!connection->established) {
    // Closing while connecting abandons the attempt and the bytes queued for it.
    connection->pre_connect_backlog.clear();
    MaybeForget(id);
    return;
  }
  if (was_paused && !connection->reset) ReleaseStalled(*connection, 1 - side);
  if (!connection->reset && connection->side[1 - side].open) {
    Transmit(*connection, side, std::string(), true);
  }
  MaybeForget(id);
}

int64_t SimNetwork::DrawLatencyUs(NodeId from, NodeId to) {
  Random& random = context_.FaultRandom();
  int64_t latency_us = random.Between(options_.latency_us_min, options_.latency_us_max);
  if (options_.latency_spike_probability > 0 &&
      random.Chance(options_.latency_spike_probability)) {
    latency_us += random.Between(0, options_.latency_spike_us_max);
  }
  auto extra = extra_delays_us_.find({from, to});
  if (extra != extra_delays_us_.end()) latency_us += extra->second;
  return latency_us;
}

void SimNetwork::Transmit(Connection& connection, int from_side, std::string bytes, bool fin) {
  const NodeId from = connection.side[from_side].node;
  const NodeId to = connection.side[1 - from_side].node;
  Direction& direction = connection.direction[from_side];
  const bool blocked = IsLinkBlocked(from, to);
  if (blocked || !direction.stalled.empty() || connection.side[1 - from_side].receive_paused) {
    direction.stalled_bytes += bytes.size();
    Message* last = direction.stalled.empty() ? nullptr : &direction.stalled.back();
    if (!fin && last != nullptr && !last->fin &&
        last->bytes.size() + bytes.size() <= kHeldMessageBytesMax) {
      last->bytes.append(bytes);
    } else {
      assert(direction.stalled.size() < kStalledMessagesMax);
      direction.stalled.push_back(Message{std::move(bytes), fin});
    }
    if (blocked) StartStallClock(connection, from_side);
    return;
  }
  ScheduleDelivery(connection, from_side, std::move(bytes), fin);
}

void SimNetwork::StartStallClock(Connection& connection, int from_side) {
  Direction& direction = connection.direction[from_side];
  if (direction.stalled_since_us >= 0) return;
  direction.stalled_since_us = context_.NowUs();
  const uint64_t id = connection.id;
  const int64_t since_us = direction.stalled_since_us;
  context_.Schedule(options_.connection_timeout_us,
                    [this, id, from_side, since_us] { CheckStall(id, from_side, since_us); });
}

void SimNetwork::ScheduleDelivery(Connection& connection, int from_side, std::string bytes,
                                  bool fin) {
  const int to_side = 1 - from_side;
  const NodeId from = connection.side[from_side].node;
  const Endpoint& receiver = connection.side[to_side];
  Direction& direction = connection.direction[from_side];
  int64_t at_us = context_.NowUs() + DrawLatencyUs(from, receiver.node);
  if (at_us < direction.last_delivery_us) at_us = direction.last_delivery_us;
  direction.last_delivery_us = at_us;
  const uint64_t id = connection.id;
  const int64_t delay_us = at_us - context_.NowUs();
  if (!fin && bytes.size() > 1 &&
      context_.FaultRandom().Chance(options_.delivery_split_probability)) {
    const size_t cut = 1 + context_.FaultRandom().Below(bytes.size() - 1);
    std::string tail = bytes.substr(cut);
    bytes.resize(cut);
    context_.ScheduleForNode(receiver.node, receiver.incarnation, delay_us,
                             [this, id, to_side, head = std::move(bytes)]() mutable {
                               Deliver(id, to_side, std::move(head), false);
                             });
    context_.ScheduleForNode(receiver.node, receiver.incarnation, delay_us,
                             [this, id, to_side, tail = std::move(tail)]() mutable {
                               Deliver(id, to_side, std::move(tail), false);
                             });
    return;
  }
  context_.ScheduleForNode(receiver.node, receiver.incarnation, delay_us,
                           [this, id, to_side, bytes = std::move(bytes), fin]() mutable {
                             Deliver(id, to_side, std::move(bytes), fin);
                           });
}

void SimNetwork::Deliver(uint64_t connection_id, int to_side, std::string bytes, bool fin) {
  Connection* connection = FindConnection(connection_id);
  if (connection == nullptr || connection->reset) return;
  Endpoint& receiver = connection->side[to_side];
  if (!receiver.open) {
    MaybeForget(connection_id);
    return;
  }
  Direction& direction = connection->direction[1 - to_side];
  if (receiver.receive_paused || !direction.arrived.empty()) {
    // Kept in the receiver's socket buffer until it reads again; a message behind ones already
    // kept waits too, so that the stream stays in order.
    direction.arrived.push_back(Message{std::move(bytes), fin});
    return;
  }
  HandOver(connection_id, to_side, bytes, fin);
}

void SimNetwork::HandOver(uint64_t connection_id, int to_side, const std::string& bytes,
                          bool fin) {
  Connection* connection = FindConnection(connection_id);
  assert(connection != nullptr);
  assert(!connection->reset);
  Endpoint& receiver = connection->side[to_side];
  assert(receiver.open);
  TraceEntry entry;
  entry.time_us = context_.NowUs();
  entry.node = receiver.node;
  entry.kind = fin ? CONNECTION_CLOSED : DELIVER;
  entry.peer_node = connection->side[1 - to_side].node;
  entry.connection = receiver.id;
  entry.bytes = bytes.size();
  if (fin) entry.detail = "closed by peer";
  context_.trace().Record(entry);
  if (fin) {
    receiver.open = false;
    auto on_closed = std::move(receiver.callbacks.on_closed);
    receiver.callbacks = ConnectionCallbacks();
    if (on_closed) on_closed(absl::OkStatus());
    MaybeForget(connection_id);
    return;
  }
  if (!receiver.callbacks.on_receive) return;
  // The callback may close the connection (or others); hold it locally and look everything up again
  // afterwards instead of keeping references across the call.
  auto on_receive = std::move(receiver.callbacks.on_receive);
  const ConnectionId receiver_id = receiver.id;
  on_receive(bytes);
  connection = FindConnection(connection_id);
  if (connection != nullptr && connection->side[to_side].open &&
      connection->side[to_side].id == receiver_id) {
    connection->side[to_side].callbacks.on_receive = std::move(on_receive);
  }
}

void SimNetwork::DeliverArrived(uint64_t connection_id, int to_side) {
  Connection* connection = FindConnection(connection_id);
  if (connection == nullptr) return;
  connection->direction[1 - to_side].arrived_delivery_scheduled = false;
  // Like a read loop: hand over until the buffer is empty or the owner pauses or closes (a reset or
  // the FIN may also end the connection on the way).
  while (connection != nullptr && !connection->reset) {
    const Endpoint& receiver = connection->side[to_side];
    Direction& direction = connection->direction[1 - to_side];
    if (!receiver.open || receiver.receive_paused || direction.arrived.empty()) return;
    Message message = std::move(direction.arrived.front());
    direction.arrived.pop_front();
    HandOver(connection_id, to_side, message.bytes, message.fin);
    connection = FindConnection(connection_id);
  }
}

void SimNetwork::CheckStall(uint64_t connection_id, int from_side, int64_t stalled_since_us) {
  Connection* connection = FindConnection(connection_id);
  if (connection == nullptr || connection->reset) return;
  if (connection->direction[from_side].stalled_since_us != stalled_since_us) return;
  Reset(*connection, "connection timed out (undelivered data)", 0, 0);
}

void SimNetwork::ReleaseStalled(Connection& connection, int from_side) {
  Direction& direction = connection.direction[from_side];
  const Endpoint& receiver = connection.side[1 - from_side];
  if (direction.stalled.empty()) return;
  // Still held by the link: the stall clock keeps running.
  if (IsLinkBlocked(connection.side[from_side].node, receiver.node)) return;
  direction.stalled_since_us = -1;
  // The link carries again, but a paused receiver's window stays closed, which alone never times
  // out.
  if (receiver.receive_paused) return;
  std::deque<Message> stalled = std::move(direction.stalled);
  direction.stalled.clear();
  direction.stalled_bytes = 0;
  direction.stalled_since_us = -1;
  for (Message& message : stalled) {
    ScheduleDelivery(connection, from_side, std::move(message.bytes), message.fin);
  }
}

void SimNetwork::Reset(Connection& connection, const std::string& reason, int64_t delay_us_side0,
                       int64_t delay_us_side1) {
  if (connection.reset) return;
  connection.reset = true;
  for (Direction& direction : connection.direction) {
    direction.stalled.clear();
    direction.stalled_bytes = 0;
    // A reset discards what waited in a paused receiver's socket buffer too.
    direction.arrived.clear();
  }
  const uint64_t id = connection.id;
  const int64_t delays_us[2] = {delay_us_side0, delay_us_side1};
  bool notify_pending = false;
  for (int side = 0; side < 2; ++side) {
    const Endpoint& endpoint = connection.side[side];
    if (!endpoint.open) continue;
    notify_pending = true;
    context_.ScheduleForNode(endpoint.node, endpoint.incarnation, delays_us[side],
                             [this, id, side, reason] { NotifyReset(id, side, reason); });
  }
  if (!notify_pending) MaybeForget(id);
}

void SimNetwork::NotifyReset(uint64_t connection_id, int side, const std::string& reason) {
  Connection* connection = FindConnection(connection_id);
  if (connection == nullptr) return;
  Endpoint& endpoint = connection->side[side];
  if (endpoint.open) {
    endpoint.open = false;
    ConnectionCallbacks callbacks = std::move(endpoint.callbacks);
    endpoint.callbacks = ConnectionCallbacks();
    if (side == 0 && !connection->connect_reported) {
      // The connecting side never heard it was connected: the reset is a failed connect.
      connection->connect_reported = true;
      RecordConnectionEvent(CONNECT_FAILED, *connection, side, reason);
      if (callbacks.on_connected) callbacks.on_connected(absl::UnavailableError(reason));
    } else {
      RecordConnectionEvent(CONNECTION_RESET, *connection, side, reason);
      if (callbacks.on_closed) callbacks.on_closed(absl::UnavailableError(reason));
    }
  }
  MaybeForget(connection_id);
}

void SimNetwork::MaybeForget(uint64_t connection_id) {
  Connection* connection = FindConnection(connection_id);
  if (connection == nullptr) return;
  if (connection->side[0].open || connection->side[1].open) return;
  // Both ends closed: nothing can reach this connection again except scheduled events, which look
  // it up by id and find nothing.
  for (const Endpoint& endpoint : connection->side) {
    if (endpoint.id != kNoConnection) connection_of_endpoint_.erase(endpoint.id);
  }
  connections_.erase(connection_id);
}

void SimNetwork::RecordConnectionEvent(TraceKind kind, const Connection& connection, int side,
                                       absl::string_view detail) {
  TraceEntry entry;
  entry.time_us = context_.NowUs();
  entry.node = connection.side[side].node;
  entry.kind = kind;
  entry.peer_node = connection.side[1 - side].node;
  entry.connection = connection.side[side].id;
  entry.detail = detail;
  context_.trace().Record(entry);
}

}  // namespace runnel::sim
