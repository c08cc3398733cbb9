// The broker's network: connection-oriented, reliable, in-order byte streams, like TCP.
//
// Connections are named by handles (ConnectionId), never by pointers, so a stale handle after a close
// or a crash is harmless: every call on it returns an error or does nothing.
//
// Contract:
// - Bytes passed to Send() on one connection arrive at the peer in order, without gaps or
//   duplicates, possibly split or merged into chunks of any size. Framing is the caller's job.
// - Send() copies the bytes and returns at once; it never blocks. It fails with kResourceExhausted
//   when the connection's unsent backlog would exceed kSendBacklogBytesMax, and with
//   kFailedPrecondition once the connection is closed. SendBacklogBytes() lets callers apply
//   back-pressure before that happens.
// - Bytes may be sent before the connection is established; they are queued and go out after it.
//   Closing a connection that is not yet established may abandon it and the bytes queued for it
//   (the simulator always abandons; the real build still tries to deliver them).
// - A connection ends exactly once, reported by on_closed, unless the local side called Close()
//   first, in which case no callback runs at all. After on_closed, no on_receive follows.
// - A reset (the peer crashed, the network timed the connection out, a fault injected a reset)
//   delivers a prefix of what the peer sent: every byte before the reset point exactly once, nothing
//   after. The sender cannot know how much of its backlog arrived. Anything not acknowledged at the
//   application level must be treated as possibly delivered and possibly lost.
// - When the remote side closes cleanly, all the bytes it sent before closing arrive first, then
//   on_closed runs with an OK status.
// - SetReceivePaused(connection, true) stops on_receive for that connection until
//   SetReceivePaused(connection, false): it is how an owner with too much work in progress from
//   one peer slows that peer down (Kafka "mutes" such a channel) instead of buffering without
//   bound. While paused, received bytes stay in the network (the kernel's socket buffer in the real
//   build, the simulated link in the simulator), so the peer's SendBacklogBytes() grows and its
//   Send() eventually fails with kResourceExhausted, exactly as with a slow reader. A pause takes
//   effect at once, also from inside on_receive: no on_receive of that connection runs until it is
//   resumed. Resuming delivers whatever waited, in order and exactly once, starting on a later turn
//   of the event loop, never from inside the call. Pausing does not affect sending, and the network
//   never resets a connection for not being read (a peer that closes may still give up waiting for
//   its backlog to drain and reset, as the real build's Close() does after a linger time). A
//   connection may be paused before it is established; the pause then applies from the start.
// - A paused connection still ends. A reset (or timeout) is reported through on_closed while
//   paused, as soon as it is noticed, and the bytes not yet delivered are lost, as with any reset.
//   A clean close by the peer is reported only after every byte it sent, that is, only after
//   resuming: the waiting bytes arrive first, then on_closed(OK). Close() works as usual on a
//   paused connection and discards the bytes that were waiting.
// - Callbacks run on the node's event loop; each runs to completion. The `bytes` view passed to
//   on_receive is valid only during the call.
#ifndef RUNNEL_BROKER_ENV_NETWORK_H_
#define RUNNEL_BROKER_ENV_NETWORK_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace runnel {

// A host and a port. In the simulator the host is a node's name (for example "node-2"); in the
// real build it is an IP address or a DNS name.
struct NetworkAddress {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;
  // Parses "host:port"; the port is decimal digits from 0 to 65535 (0: any free port, for Listen).
  // IPv6 hosts are written in brackets: "[::1]:9092".
  static absl::StatusOr<NetworkAddress> Parse(absl::string_view text);

  friend bool operator==(const NetworkAddress&, const NetworkAddress&) = default;
  friend auto operator<=>(const NetworkAddress&, const NetworkAddress&) = default;
};

// Identifies one connection of one node. Zero is never a valid id.
using ConnectionId = uint64_t;
inline constexpr ConnectionId kNoConnection = 0;

// Identifies one listening socket of one node. Zero is never a valid id.
using ListenerId = uint64_t;

// The most bytes one connection may hold unsent before Send() refuses more.
inline constexpr size_t kSendBacklogBytesMax = size_t{64} << 20;

// What a connection reports to its owner.
struct ConnectionCallbacks {
  // For outgoing connections: the connection was established (OK) or could not be (an error,
  // after which on_closed does not run). Never called for accepted connections.
  absl::AnyInvocable<void(const absl::Status&)> on_connected;
  // Bytes arrived, in order.
  absl::AnyInvocable<void(absl::string_view bytes)> on_receive;
  // The connection ended: OK for an orderly close by the peer, kUnavailable for a reset or timeout.
  absl::AnyInvocable<void(const absl::Status&)> on_closed;
};

// Called for each accepted connection with its id and the peer's address; returns the callbacks
// that will receive its bytes. The connection is live from the moment this returns.
using AcceptCallback =
    absl::AnyInvocable<ConnectionCallbacks(ConnectionId connection, const NetworkAddress& peer)>;

class Network {
 public:
  virtual ~Network() = default;

  // Starts accepting connections at `address` (port 0 asks for any free port; see LocalAddress).
  virtual absl::StatusOr<ListenerId> Listen(const NetworkAddress& address,
                                            AcceptCallback on_accept) = 0;
  // The address a listener is bound to, with the actual port.
  virtual absl::StatusOr<NetworkAddress> ListenerAddress(ListenerId listener) const = 0;
  // Stops accepting; established connections are unaffected.
  virtual void StopListening(ListenerId listener) = 0;

  // Starts connecting. The outcome arrives through callbacks.on_connected. The id is valid at once.
  virtual ConnectionId Connect(const NetworkAddress& address, ConnectionCallbacks callbacks) = 0;

  virtual absl::Status Send(ConnectionId connection, absl::string_view bytes) = 0;
  // Bytes accepted by Send() and not yet handed to the network.
  virtual size_t SendBacklogBytes(ConnectionId connection) const = 0;

  // Stops (paused = true) or resumes (false) delivering this connection's received bytes to
  // on_receive; see the contract above. Pausing a paused connection or resuming a running one does
  // nothing, and so does any call on an unknown or closed connection.
  virtual void SetReceivePaused(ConnectionId connection, bool paused) = 0;

  // Closes the connection: bytes already sent are still delivered, then the peer sees an orderly
  // close. No callback of this connection runs after Close() returns.
  virtual void Close(ConnectionId connection) = 0;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_NETWORK_H_
