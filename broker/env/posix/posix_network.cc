#include "broker/env/posix/posix_network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/env/posix/errno_status.h"

namespace runnel {

using SocketAddress = PosixNetwork::SocketAddress;

struct PosixNetwork::Listener {
  ListenerId id = 0;
  ScopedFd fd;
  EventLoop::WatchId watch = EventLoop::kNoWatch;
  NetworkAddress bound;
  AcceptCallback on_accept;
  // Set while accepting is paused after running out of descriptors.
  TimerId resume_timer = kNoTimer;
  bool stopped = false;
};

struct PosixNetwork::Connection {
  ConnectionId id = kNoConnection;
  Phase phase = Phase::kConnecting;
  ScopedFd fd;
  EventLoop::WatchId watch = EventLoop::kNoWatch;
  uint32_t interest = 0;  // what `watch` currently asks for
  // The address the owner asked for, or the peer's for accepted connections; for messages.
  NetworkAddress remote;
  // Outgoing connections: resolved addresses, tried in order from address_next.
  std::vector<SocketAddress> addresses;
  size_t address_next = 0;
  // Why the last connect attempt failed: what on_connected gets if no address works.
  absl::Status connect_error;
  // A hard error that Send() got from the kernel. The kernel reports a socket error to the first
  // call that asks, so it is kept here: the end of the connection is then reported as this error
  // even if the socket only shows an end-of-file afterwards.
  absl::Status send_error;
  // Null once closed locally: nothing of the owner's runs after Close(). Shared so that a callback
  // that closes its own connection is not destroyed while it runs.
  std::shared_ptr<ConnectionCallbacks> callbacks;
  bool closed_locally = false;
  // Destroyed: socket closed, no longer in connections_. Code holding a reference checks this after
  // every callback, which may have destroyed the connection.
  bool gone = false;
  SendBacklog backlog;
  TimerId linger_timer = kNoTimer;
  // Set by SetReceivePaused(): nothing is read, so nothing is delivered. Cleared by Close(), since
  // a locally closed connection reads (and discards) until the peer closes.
  bool receive_paused = false;
};

namespace {

// Resolves `address` through getaddrinfo into at most kConnectAddressesMax socket addresses.
// Returns the getaddrinfo result code; on EAI_SYSTEM, *system_errno holds errno.
int ResolveInto(const NetworkAddress& address, int flags, std::vector<SocketAddress>* addresses,
                int* system_errno) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = flags | AI_NUMERICSERV;
  const std::string port = std::to_string(address.port);
  addrinfo* results = nullptr;
  const int code = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &results);
  if (code != 0) {
    *system_errno = errno;
    return code;
  }
  for (const addrinfo* result = results;
       result != nullptr && addresses->size() < PosixNetwork::kConnectAddressesMax;
       result = result->ai_next) {
    if (result->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SocketAddress resolved;
    std::memcpy(&resolved.storage, result->ai_addr, result->ai_addrlen);
    resolved.length = result->ai_addrlen;
    addresses->push_back(resolved);
  }
  freeaddrinfo(results);
  return addresses->empty() ? EAI_NONAME : 0;
}

absl::Status ResolveError(const NetworkAddress& address, int code, int system_errno) {
  const std::string text = code == EAI_SYSTEM ? ErrnoText(system_errno) : gai_strerror(code);
  return absl::UnavailableError(absl::StrCat("resolve '", address.ToString(), "': ", text));
}

// May block on DNS: only for Listen() and the resolver thread.
absl::StatusOr<std::vector<SocketAddress>> ResolveBlocking(const NetworkAddress& address,
                                                           int flags) {
  std::vector<SocketAddress> addresses;
  int system_errno = 0;
  const int code = ResolveInto(address, flags, &addresses, &system_errno);
  if (code != 0) return ResolveError(address, code, system_errno);
  return addresses;
}

NetworkAddress FormatAddress(const SocketAddress& address) {
  NetworkAddress formatted;
  char text[INET6_ADDRSTRLEN] = {};
  if (address.storage.ss_family == AF_INET) {
    const auto& ipv4 = reinterpret_cast<const sockaddr_in&>(address.storage);
    inet_ntop(AF_INET, &ipv4.sin_addr, text, sizeof(text));
    formatted.host = text;
    formatted.port = ntohs(ipv4.sin_port);
  } else if (address.storage.ss_family == AF_INET6) {
    const auto& ipv6 = reinterpret_cast<const sockaddr_in6&>(address.storage);
    formatted.port = ntohs(ipv6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&ipv6.sin6_addr)) {
      // An IPv4 peer of a dual-stack listener: report it as the IPv4 address it is.
      inet_ntop(AF_INET, &ipv6.sin6_addr.s6_addr[12], text, sizeof(text));
      formatted.host = text;
    } else {
      char host[NI_MAXHOST] = {};
      // getnameinfo, unlike inet_ntop, keeps the scope of link-local addresses ("fe80::1%eth0").
      if (getnameinfo(reinterpret_cast<const sockaddr*>(&address.storage), address.length, host,
                      sizeof(host), nullptr, 0, NI_NUMERICHOST) == 0) {
        formatted.host = host;
      } else {
        inet_ntop(AF_INET6, &ipv6.sin6_addr, text, sizeof(text));
        formatted.host = text;
      }
    }
  } else {
    formatted.host = absl::StrCat("<address family ", address.storage.ss_family, ">");
  }
  return formatted;
}

absl::Status SetIntOption(int fd, int level, int option, int value, absl::string_view name) {
  if (setsockopt(fd, level, option, &value, sizeof(value)) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("setsockopt(", name, ")"));
  }
  return absl::OkStatus();
}

// Options every connection socket gets, accepted or outgoing.
absl::Status ConfigureConnectionSocket(int fd) {
  // Requests and responses are framed by the broker and sent whole; Nagle would only add latency.
  if (absl::Status s = SetIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"); !s.ok()) {
    return s;
  }
  if (absl::Status s = SetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"); !s.ok()) {
    return s;
  }
  if (absl::Status s = SetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, PosixNetwork::kKeepAliveIdleS,
                                    "TCP_KEEPIDLE");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL,
                                    PosixNetwork::kKeepAliveIntervalS, "TCP_KEEPINTVL");
      !s.ok()) {
    return s;
  }
  return SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, PosixNetwork::kKeepAliveProbes, "TCP_KEEPCNT");
}

// The error pending on a socket (SO_ERROR), which reading it also clears; 0 if none.
int TakeSocketError(int fd) {
  int error = 0;
  socklen_t length = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
  return error;
}

bool IsTransientAcceptError(int error) {
  switch (error) {
    // The connection died while queued, or the call was interrupted: take the next one. Linux also
    // passes pending network errors of the new socket through accept(2).
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:  // refused by a firewall rule
      return true;
    default:
      return false;
  }
}

}  // namespace

PosixNetwork::PosixNetwork(EventLoop& loop)
    : loop_(loop), receive_buffer_(new char[kReceiveBufferBytes]) {}

PosixNetwork::~PosixNetwork() {
  // Work still posted by this network, or by the resolver, finds it gone and does nothing.
  alive_.reset();
  resolver_.reset();
  for (auto& [id, listener] : listeners_) {
    loop_.UnwatchFd(listener->watch);
    if (listener->resume_timer != kNoTimer) loop_.CancelTimer(listener->resume_timer);
  }
  listeners_.clear();
  std::vector<std::shared_ptr<Connection>> connections;
  connections.reserve(connections_.size());
  for (const auto& [id, connection] : connections_) connections.push_back(connection);
  for (const std::shared_ptr<Connection>& connection : connections) {
    // Peers see a reset, as when a node crashes, unless everything was already handed over and
    // shut down cleanly.
    Destroy(connection, /*abortive=*/connection->phase != Phase::kShuttingDown);
  }
}

absl::StatusOr<ListenerId> PosixNetwork::Listen(const NetworkAddress& address,
                                                AcceptCallback on_accept) {
  assert(on_accept);
  NetworkAddress bind_address = address;
  if (bind_address.host.empty()) bind_address.host = "0.0.0.0";
  absl::StatusOr<std::vector<SocketAddress>> resolved = ResolveBlocking(bind_address, AI_PASSIVE);
  if (!resolved.ok()) return resolved.status();
  const SocketAddress& target = resolved->front();
  const std::string what = absl::StrCat("listen on ", bind_address.ToString());

  ScopedFd fd(socket(target.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                     IPPROTO_TCP));
  if (!fd.valid()) return ErrnoToStatus(errno, what);
  // A restarted broker must be able to bind its port while connections of its previous
  // incarnation sit in TIME_WAIT.
  if (absl::Status s = SetIntOption(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
      !s.ok()) {
    return s;
  }
  if (target.storage.ss_family == AF_INET6) {
    // Dual stack regardless of the net.ipv6.bindv6only sysctl: "[::]:9092" takes IPv4 as well.
    if (absl::Status s = SetIntOption(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
        !s.ok()) {
      return s;
    }
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&target.storage), target.length) != 0) {
    return ErrnoToStatus(errno, what);
  }
  if (listen(fd.get(), kListenQueueDepth) != 0) return ErrnoToStatus(errno, what);
  SocketAddress bound;
  bound.length = sizeof(bound.storage);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) != 0) {
    return ErrnoToStatus(errno, what);
  }

  const ListenerId id = listener_next_++;
  absl::StatusOr<EventLoop::WatchId> watch =
      loop_.WatchFd(fd.get(), EventLoop::kReadable, [this, id](uint32_t) { OnListenerReady(id); });
  if (!watch.ok()) return watch.status();
  auto listener = std::make_shared<Listener>();
  listener->id = id;
  listener->fd = std::move(fd);
  listener->watch = *watch;
  listener->bound = FormatAddress(bound);
  listener->on_accept = std::move(on_accept);
  listeners_.emplace(id, std::move(listener));
  return id;
}

absl::StatusOr<NetworkAddress> PosixNetwork::ListenerAddress(ListenerId listener) const {
  auto it = listeners_.find(listener);
  if (it == listeners_.end()) {
    return absl::NotFoundError(absl::StrCat("no listener with id ", listener));
  }
  return it->second->bound;
}

void PosixNetwork::StopListening(ListenerId listener_id) {
  auto it = listeners_.find(listener_id);
  if (it == listeners_.end()) return;
  std::shared_ptr<Listener> listener = it->second;
  listeners_.erase(it);
  listener->stopped = true;
  loop_.UnwatchFd(listener->watch);
  if (listener->resume_timer != kNoTimer) loop_.CancelTimer(listener->resume_timer);
  // Close now, not when the last reference goes, so the port is free when this returns.
  listener->fd.Reset();
}

void PosixNetwork::OnListenerReady(ListenerId listener_id) {
  auto it = listeners_.find(listener_id);
  if (it == listeners_.end()) return;
  // Keeps the listener and its accept callback alive if the callback stops listening.
  std::shared_ptr<Listener> listener = it->second;
  for (int accepts = 0; accepts < kAcceptsPerReadyMax && !listener->stopped; ++accepts) {
    SocketAddress peer;
    peer.length = sizeof(peer.storage);
    ScopedFd fd(accept4(listener->fd.get(), reinterpret_cast<sockaddr*>(&peer.storage),
                        &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (IsTransientAcceptError(error)) continue;
      // Out of descriptors or memory (or something unexpected): the pending connection stays
      // queued and the listener stays readable, so back off rather than spin.
      PauseAccepting(listener);
      return;
    }
    // A socket that cannot be configured is broken; dropping it resets that one client.
    if (!ConfigureConnectionSocket(fd.get()).ok()) continue;

    const ConnectionId id = connection_next_++;
    absl::StatusOr<EventLoop::WatchId> watch = loop_.WatchFd(
        fd.get(), 0, [this, id](uint32_t ready) { OnConnectionReady(id, ready); });
    if (!watch.ok()) continue;
    auto connection = std::make_shared<Connection>();
    connection->id = id;
    connection->phase = Phase::kOpen;
    connection->fd = std::move(fd);
    connection->watch = *watch;
    connection->remote = FormatAddress(peer);
    // Empty until on_accept returns; registered first so that on_accept may already Send or Close.
    connection->callbacks = std::make_shared<ConnectionCallbacks>();
    connections_.emplace(id, connection);

    ConnectionCallbacks callbacks = listener->on_accept(id, connection->remote);
    if (connection->gone) continue;
    // Null if on_accept closed the connection: its callbacks are then never used.
    if (connection->callbacks != nullptr) *connection->callbacks = std::move(callbacks);
    UpdateInterest(connection);
  }
}

void PosixNetwork::PauseAccepting(const std::shared_ptr<Listener>& listener) {
  if (listener->resume_timer != kNoTimer) return;
  [[maybe_unused]] const absl::Status paused = loop_.SetInterest(listener->watch, 0);
  assert(paused.ok());
  const ListenerId id = listener->id;
  listener->resume_timer = loop_.ScheduleAfter(kAcceptPauseUs, [this, id] {
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return;
    it->second->resume_timer = kNoTimer;
    [[maybe_unused]] const absl::Status resumed =
        loop_.SetInterest(it->second->watch, EventLoop::kReadable);
    assert(resumed.ok());
  });
}

ConnectionId PosixNetwork::Connect(const NetworkAddress& address, ConnectionCallbacks callbacks) {
  const ConnectionId id = connection_next_++;
  auto connection = std::make_shared<Connection>();
  connection->id = id;
  connection->remote = address;
  connection->callbacks = std::make_shared<ConnectionCallbacks>(std::move(callbacks));
  connections_.emplace(id, connection);

  if (address.port == 0) {
    DeferConnectFailure(connection, absl::InvalidArgumentError(absl::StrCat(
                                        "connect to ", address.ToString(), ": port 0")));
    return id;
  }
  // Literal addresses resolve at once without blocking; only names need the resolver thread.
  int system_errno = 0;
  const int code = ResolveInto(address, AI_NUMERICHOST, &connection->addresses, &system_errno);
  if (code == EAI_NONAME) {
    StartResolve(connection);
  } else if (code != 0) {
    DeferConnectFailure(connection, ResolveError(address, code, system_errno));
  } else {
    connection->phase = Phase::kConnecting;
    if (!StartConnect(connection)) DeferConnectFailure(connection, connection->connect_error);
  }
  return id;
}

void PosixNetwork::StartResolve(const std::shared_ptr<Connection>& connection) {
  connection->phase = Phase::kResolving;
  if (resolver_ == nullptr) {
    resolver_ = std::make_unique<BackgroundWorker>("runnel-resolve", kResolveQueueDepthMax);
  }
  const bool queued = resolver_->TrySubmit(
      [loop = &loop_, alive = std::weak_ptr<int>(alive_), self = this, id = connection->id,
       address = connection->remote]() {
        // No AI_ADDRCONFIG: it hides "localhost" on hosts with only a loopback interface. Addresses
        // of a family the host cannot reach fail fast and the next one is tried.
        absl::StatusOr<std::vector<SocketAddress>> result = ResolveBlocking(address, 0);
        loop->Post([alive, self, id, result = std::move(result)]() mutable {
          if (alive.expired()) return;
          self->OnResolved(id, std::move(result));
        });
      });
  if (!queued) {
    DeferConnectFailure(connection,
                        absl::UnavailableError(absl::StrCat(
                            "resolve '", connection->remote.ToString(), "': more than ",
                            kResolveQueueDepthMax, " resolutions are already waiting")));
  }
}

void PosixNetwork::OnResolved(ConnectionId id,
                              absl::StatusOr<std::vector<SocketAddress>> addresses) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  std::shared_ptr<Connection> connection = it->second;
  if (connection->phase != Phase::kResolving) return;
  if (!addresses.ok()) {
    connection->connect_error = addresses.status();
  } else {
    connection->addresses = std::move(*addresses);
    connection->address_next = 0;
    connection->phase = Phase::kConnecting;
    if (StartConnect(connection)) return;
  }
  if (connection->closed_locally) {
    Destroy(connection, /*abortive=*/false);
  } else {
    FailConnect(connection, connection->connect_error);
  }
}

bool PosixNetwork::StartConnect(const std::shared_ptr<Connection>& connection) {
  assert(connection->phase == Phase::kConnecting);
  assert(!connection->fd.valid());
  if (connection->addresses.empty()) {
    connection->connect_error = absl::UnavailableError(
        absl::StrCat("connect to ", connection->remote.ToString(), ": no address"));
  }
  while (connection->address_next < connection->addresses.size()) {
    const SocketAddress& target = connection->addresses[connection->address_next++];
    const std::string what = absl::StrCat("connect to ", connection->remote.ToString(), " (",
                                          FormatAddress(target).ToString(), ")");
    ScopedFd fd(socket(target.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       IPPROTO_TCP));
    if (!fd.valid()) {
      connection->connect_error = ErrnoToStatus(errno, what);
      continue;
    }
    if (absl::Status s = ConfigureConnectionSocket(fd.get()); !s.ok()) {
      connection->connect_error = s;
      continue;
    }
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&target.storage), target.length) !=
        0) {
      const int error = errno;
      // EINTR leaves a non-blocking connect running in the background, like EINPROGRESS.
      if (error != EINPROGRESS && error != EINTR) {
        connection->connect_error = absl::UnavailableError(absl::StrCat(what, ": ", ErrnoText(error)));
        continue;
      }
    }
    // Completion, even an immediate one, is reported through writability, so on_connected always
    // runs on a later loop turn.
    const ConnectionId id = connection->id;
    absl::StatusOr<EventLoop::WatchId> watch = loop_.WatchFd(
        fd.get(), EventLoop::kWritable, [this, id](uint32_t ready) { OnConnectionReady(id, ready); });
    if (!watch.ok()) {
      connection->connect_error = watch.status();
      continue;
    }
    connection->fd = std::move(fd);
    connection->watch = *watch;
    connection->interest = EventLoop::kWritable;
    return true;
  }
  return false;
}

void PosixNetwork::FinishConnect(const std::shared_ptr<Connection>& connection) {
  const int error = TakeSocketError(connection->fd.get());
  if (error == 0) {
    connection->phase = Phase::kOpen;
    std::shared_ptr<ConnectionCallbacks> callbacks = connection->callbacks;
    if (callbacks != nullptr && callbacks->on_connected) callbacks->on_connected(absl::OkStatus());
    if (connection->gone || connection->phase != Phase::kOpen) return;
    // Sends queued while connecting go out now; a connection closed while connecting shuts down
    // once they have.
    Flush(connection);
    return;
  }
  const SocketAddress& target = connection->addresses[connection->address_next - 1];
  connection->connect_error = absl::UnavailableError(
      absl::StrCat("connect to ", connection->remote.ToString(), " (",
                   FormatAddress(target).ToString(), "): ", ErrnoText(error)));
  loop_.UnwatchFd(connection->watch);
  connection->watch = EventLoop::kNoWatch;
  connection->interest = 0;
  connection->fd.Reset();
  if (StartConnect(connection)) return;
  if (connection->closed_locally) {
    Destroy(connection, /*abortive=*/false);
  } else {
    FailConnect(connection, connection->connect_error);
  }
}

void PosixNetwork::DeferConnectFailure(const std::shared_ptr<Connection>& connection,
                                       absl::Status status) {
  assert(!connection->fd.valid());
  connection->phase = Phase::kConnectFailed;
  connection->connect_error = std::move(status);
  PostToSelf([id = connection->id](PosixNetwork& self) {
    std::shared_ptr<Connection> connection = self.FindLive(id);
    if (connection == nullptr || connection->phase != Phase::kConnectFailed) return;
    self.FailConnect(connection, connection->connect_error);
  });
}

void PosixNetwork::FailConnect(const std::shared_ptr<Connection>& connection,
                               const absl::Status& status) {
  assert(!connection->closed_locally);
  const absl::Status reported = status;  // `status` may live in the connection
  std::shared_ptr<ConnectionCallbacks> callbacks = std::move(connection->callbacks);
  Destroy(connection, /*abortive=*/false);
  if (callbacks != nullptr && callbacks->on_connected) callbacks->on_connected(reported);
}

void PosixNetwork::OnConnectionReady(ConnectionId id, uint32_t ready) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  std::shared_ptr<Connection> connection = it->second;
  switch (connection->phase) {
    case Phase::kConnecting:
      // Writable, error or hang-up: the attempt is over either way; SO_ERROR tells which.
      FinishConnect(connection);
      return;
    case Phase::kResolving:
    case Phase::kConnectFailed:
      return;  // no socket yet or any more
    case Phase::kOpen:
    case Phase::kShuttingDown:
      break;
  }
  if (connection->receive_paused) {
    // Readiness collected before the pause, or an error or hang-up, which epoll reports whether
    // asked for or not. Only a broken connection is acted on now; bytes and a clean close wait.
    if ((ready & (EventLoop::kError | EventLoop::kHangup)) && FailIfBrokenWhilePaused(connection)) {
      return;
    }
  } else if (ready & (EventLoop::kReadable | EventLoop::kHangup | EventLoop::kError)) {
    const ReceiveOutcome outcome = Receive(connection);
    if (outcome == ReceiveOutcome::kGone) return;
    if (outcome == ReceiveOutcome::kWouldBlock &&
        (ready & (EventLoop::kError | EventLoop::kHangup))) {
      // The socket reports trouble that recv(2) did not surface; level-triggered readiness would
      // report it forever, so end the connection.
      const int error = TakeSocketError(connection->fd.get());
      if (error == 0 && !connection->send_error.ok()) {
        Fail(connection, connection->send_error);
        return;
      }
      Fail(connection,
           absl::UnavailableError(absl::StrCat(
               "connection ", id, " with ", connection->remote.ToString(), ": ",
               error != 0 ? ErrnoText(error) : std::string("hang-up"))));
      return;
    }
  }
  if (connection->gone) return;
  if ((ready & EventLoop::kWritable) && connection->phase == Phase::kOpen) Flush(connection);
}

PosixNetwork::ReceiveOutcome PosixNetwork::Receive(
    const std::shared_ptr<Connection>& connection) {
  for (int receives = 0; receives < kReceivesPerReadyMax; ++receives) {
    // Checked before every read, since on_receive may pause its own connection.
    if (connection->receive_paused) return ReceiveOutcome::kPaused;
    const ssize_t received =
        recv(connection->fd.get(), receive_buffer_.get(), kReceiveBufferBytes, 0);
    if (received > 0) {
      // A locally closed connection still reads, to see the peer's close, but discards.
      if (connection->closed_locally) continue;
      std::shared_ptr<ConnectionCallbacks> callbacks = connection->callbacks;
      if (callbacks->on_receive) {
        callbacks->on_receive(
            absl::string_view(receive_buffer_.get(), static_cast<size_t>(received)));
      }
      if (connection->gone) return ReceiveOutcome::kGone;
      continue;
    }
    if (received == 0) {
      // The peer closed: everything it sent has been delivered. It was a clean close unless a
      // send already saw the connection break.
      Fail(connection, connection->send_error);
      return ReceiveOutcome::kGone;
    }
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return ReceiveOutcome::kWouldBlock;
    Fail(connection, absl::UnavailableError(absl::StrCat("connection ", connection->id, " with ",
                                                         connection->remote.ToString(), ": ",
                                                         ErrnoText(error))));
    return ReceiveOutcome::kGone;
  }
  return ReceiveOutcome::kBudgetSpent;
}

bool PosixNetwork::FailIfBrokenWhilePaused(const std::shared_ptr<Connection>& connection) {
  assert(connection->receive_paused);
  const int error = TakeSocketError(connection->fd.get());
  if (error != 0) {
    Fail(connection, absl::UnavailableError(absl::StrCat("connection ", connection->id, " with ",
                                                         connection->remote.ToString(), ": ",
                                                         ErrnoText(error))));
    return true;
  }
  if (!connection->send_error.ok()) {
    Fail(connection, connection->send_error);
    return true;
  }
  // The loop reports the peer's FIN (EPOLLRDHUP) as a hang-up too, but only while readability is
  // asked for, so such a report was collected before the pause. poll(2) with no events asked for
  // shows only a real hang-up (both directions down) or error, which would otherwise be reported on
  // every iteration until the resume.
  pollfd probe = {};
  probe.fd = connection->fd.get();
  probe.events = 0;
  if (poll(&probe, 1, 0) == 1 && (probe.revents & (POLLHUP | POLLERR)) != 0) {
    Fail(connection, absl::UnavailableError(absl::StrCat("connection ", connection->id, " with ",
                                                         connection->remote.ToString(),
                                                         ": hang-up")));
    return true;
  }
  return false;
}

void PosixNetwork::Flush(const std::shared_ptr<Connection>& connection) {
  assert(connection->phase == Phase::kOpen);
  while (!connection->backlog.empty()) {
    iovec iovecs[kIovecsPerSendMax];
    msghdr message = {};
    message.msg_iov = iovecs;
    message.msg_iovlen = connection->backlog.FillIovecs(iovecs, kIovecsPerSendMax);
    // sendmsg rather than writev: only the send family takes MSG_NOSIGNAL, which turns a write to
    // a reset connection into EPIPE instead of a process-killing SIGPIPE.
    const ssize_t sent = sendmsg(connection->fd.get(), &message, MSG_NOSIGNAL);
    if (sent >= 0) {
      connection->backlog.Consume(static_cast<size_t>(sent));
      continue;
    }
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) break;
    Fail(connection, absl::UnavailableError(absl::StrCat("connection ", connection->id, " with ",
                                                         connection->remote.ToString(), ": ",
                                                         ErrnoText(error))));
    return;
  }
  if (connection->backlog.empty() && connection->closed_locally) {
    BeginShutdown(connection);
    return;
  }
  UpdateInterest(connection);
}

void PosixNetwork::BeginShutdown(const std::shared_ptr<Connection>& connection) {
  assert(connection->closed_locally);
  assert(connection->backlog.empty());
  assert(connection->phase == Phase::kOpen);
  if (shutdown(connection->fd.get(), SHUT_WR) != 0) {
    // ENOTCONN: the peer reset the connection already; there is nobody left to wait for.
    Destroy(connection, /*abortive=*/false);
    return;
  }
  connection->phase = Phase::kShuttingDown;
  StartLinger(connection);
  UpdateInterest(connection);
}

void PosixNetwork::StartLinger(const std::shared_ptr<Connection>& connection) {
  assert(connection->closed_locally);
  if (connection->linger_timer != kNoTimer) return;
  const ConnectionId id = connection->id;
  connection->linger_timer = loop_.ScheduleAfter(kCloseLingerUs, [this, id] {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    std::shared_ptr<Connection> lingering = it->second;
    lingering->linger_timer = kNoTimer;
    // A reset unless every byte was handed to the kernel and the FIN is on its way, so that the
    // peer never takes a truncated stream for a complete one.
    Destroy(lingering, /*abortive=*/lingering->phase != Phase::kShuttingDown);
  });
}

void PosixNetwork::UpdateInterest(const std::shared_ptr<Connection>& connection) {
  if (connection->gone || connection->watch == EventLoop::kNoWatch) return;
  uint32_t interest = 0;
  switch (connection->phase) {
    case Phase::kConnecting:
      interest = EventLoop::kWritable;
      break;
    case Phase::kOpen:
      if (!connection->receive_paused) interest = EventLoop::kReadable;
      if (!connection->backlog.empty()) interest |= EventLoop::kWritable;
      break;
    case Phase::kShuttingDown:
      interest = EventLoop::kReadable;
      break;
    case Phase::kResolving:
    case Phase::kConnectFailed:
      break;
  }
  if (interest == connection->interest) return;
  // EPOLL_CTL_MOD on a registered, open descriptor can only fail for lack of kernel memory.
  [[maybe_unused]] const absl::Status status = loop_.SetInterest(connection->watch, interest);
  assert(status.ok());
  connection->interest = interest;
}

void PosixNetwork::Fail(const std::shared_ptr<Connection>& connection,
                        const absl::Status& status) {
  if (connection->closed_locally) {
    Destroy(connection, /*abortive=*/false);
    return;
  }
  std::shared_ptr<ConnectionCallbacks> callbacks = std::move(connection->callbacks);
  Destroy(connection, /*abortive=*/false);
  if (callbacks != nullptr && callbacks->on_closed) callbacks->on_closed(status);
}

void PosixNetwork::Destroy(std::shared_ptr<Connection> connection, bool abortive) {
  if (connection->gone) return;
  connection->gone = true;
  if (connection->linger_timer != kNoTimer) {
    loop_.CancelTimer(connection->linger_timer);
    connection->linger_timer = kNoTimer;
  }
  if (connection->watch != EventLoop::kNoWatch) {
    loop_.UnwatchFd(connection->watch);
    connection->watch = EventLoop::kNoWatch;
  }
  if (abortive && connection->fd.valid()) {
    // A zero linger time makes close(2) send a reset and drop unsent data.
    const linger reset = {1, 0};
    setsockopt(connection->fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  }
  connection->fd.Reset();
  connection->backlog.Clear();
  connections_.erase(connection->id);
}

std::shared_ptr<PosixNetwork::Connection> PosixNetwork::FindLive(ConnectionId id) const {
  auto it = connections_.find(id);
  if (it == connections_.end() || it->second->closed_locally) return nullptr;
  return it->second;
}

absl::Status PosixNetwork::Send(ConnectionId id, absl::string_view bytes) {
  std::shared_ptr<Connection> connection = FindLive(id);
  if (connection == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("connection ", id, " is closed"));
  }
  if (bytes.size() > kSendBacklogBytesMax - connection->backlog.bytes()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "connection ", id, ": sending ", bytes.size(), " bytes on top of ",
        connection->backlog.bytes(), " unsent would exceed the limit of ", kSendBacklogBytesMax));
  }
  // The connection broke and its end is about to be reported: the bytes are as lost as any
  // backlog at a reset.
  if (!connection->send_error.ok()) return absl::OkStatus();
  if (connection->phase == Phase::kOpen && connection->backlog.empty()) {
    // The common case: the kernel takes everything now and nothing is copied.
    while (!bytes.empty()) {
      const ssize_t sent = send(connection->fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent > 0) {
        bytes.remove_prefix(static_cast<size_t>(sent));
        continue;
      }
      const int error = sent < 0 ? errno : EAGAIN;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) break;  // the rest waits for writability
      // Broken (EPIPE, ECONNRESET, ...). on_closed must not run from inside Send(): report it on
      // a later loop turn.
      connection->send_error = absl::UnavailableError(absl::StrCat(
          "connection ", id, " with ", connection->remote.ToString(), ": ", ErrnoText(error)));
      PostToSelf([id](PosixNetwork& self) {
        std::shared_ptr<Connection> broken = self.FindLive(id);
        if (broken != nullptr) self.Fail(broken, broken->send_error);
      });
      return absl::OkStatus();
    }
  }
  if (!bytes.empty()) {
    connection->backlog.Append(bytes);
    UpdateInterest(connection);
  }
  return absl::OkStatus();
}

size_t PosixNetwork::SendBacklogBytes(ConnectionId id) const {
  std::shared_ptr<Connection> connection = FindLive(id);
  return connection == nullptr ? 0 : connection->backlog.bytes();
}

void PosixNetwork::SetReceivePaused(ConnectionId id, bool paused) {
  std::shared_ptr<Connection> connection = FindLive(id);
  if (connection == nullptr || connection->receive_paused == paused) return;
  connection->receive_paused = paused;
  // Only the interest changes. On resume the level-triggered loop reports the bytes (or FIN) that
  // waited on its next iteration, so nothing is read here, and nothing may be delivered from inside
  // this call anyway. Before the connection is open, UpdateInterest leaves the interest alone and
  // the flag takes effect when it opens.
  UpdateInterest(connection);
}

void PosixNetwork::Close(ConnectionId id) {
  std::shared_ptr<Connection> connection = FindLive(id);
  if (connection == nullptr) return;
  connection->closed_locally = true;
  // A closed connection reads and discards until the peer closes, paused or not.
  connection->receive_paused = false;
  // Dropping our reference is enough: a callback of this connection running right now holds its
  // own until it returns.
  connection->callbacks.reset();
  switch (connection->phase) {
    case Phase::kResolving:
    case Phase::kConnecting:
      if (connection->backlog.empty()) {
        Destroy(connection, /*abortive=*/false);
      } else {
        // Keep connecting so that the queued bytes are delivered, within the linger time.
        StartLinger(connection);
      }
      return;
    case Phase::kConnectFailed:
      Destroy(connection, /*abortive=*/false);
      return;
    case Phase::kOpen:
      if (connection->backlog.empty()) {
        BeginShutdown(connection);
      } else {
        StartLinger(connection);
        // It may have been paused: read (and discard) again while the backlog drains.
        UpdateInterest(connection);
      }
      return;
    case Phase::kShuttingDown:
      assert(false && "a shutting-down connection is closed locally already");
      return;
  }
}

void PosixNetwork::PostToSelf(absl::AnyInvocable<void(PosixNetwork&)> work) {
  loop_.Post([alive = std::weak_ptr<int>(alive_), this, work = std::move(work)]() mutable {
    if (alive.expired()) return;
    work(*this);
  });
}

}  // namespace runnel
