// PosixNetwork: the real Network of one node, non-blocking TCP over IPv4 and IPv6 on an EventLoop.
//
// Beyond network.h:
// - Hosts are IP literals ("127.0.0.1", "::1", "fe80::1%eth0") or DNS names. Connect() resolves
//   names on a background thread, then tries each resolved address in turn until one accepts.
//   Listen() resolves synchronously (it runs at start-up, before the node serves anything) and
//   binds the first address. An empty listen host means every IPv4 address.
// - IPv6 listeners also accept IPv4 (dual stack); such peers are reported with their IPv4 address.
// - Sockets use TCP_NODELAY and TCP keep-alive (kKeepAlive*), so a vanished peer is reported as a
//   reset (kUnavailable) within about kKeepAliveIdleS + kKeepAliveProbes * kKeepAliveIntervalS
//   seconds even on an idle connection.
// - Close() hands the backlog to the kernel, then shuts down the sending side and reads (and
//   discards) until the peer closes too, so that the kernel never answers late peer bytes with a
//   reset that could destroy data the peer has not read yet. If that takes longer than
//   kCloseLingerUs, the socket is closed anyway: with a reset if bytes were still unsent (so the
//   peer never mistakes a truncated stream for a complete one), otherwise normally.
// - A connection the peer closes cleanly ends for both directions: unsent backlog is dropped.
// - SetReceivePaused() stops asking epoll for readability, so the kernel's receive buffer fills,
//   the advertised TCP window closes and the peer's kernel, then the peer's backlog, hold the rest.
//   The event loop is level-triggered, so asking again on resume reports what arrived meanwhile
//   (bytes or the peer's FIN) on the next iteration even if nothing new arrives. epoll reports
//   errors and hang-ups whether asked or not, which is how a reset is noticed while paused; it ends
//   the connection at once, and the unread bytes are lost.
// - Destroying the PosixNetwork runs no callback and resets every connection not yet closed
//   locally, as a crash of the node would look to its peers. It waits for a name resolution in
//   progress, if any, to return.
// - Every call must be made on the loop thread.
#ifndef RUNNEL_BROKER_ENV_POSIX_POSIX_NETWORK_H_
#define RUNNEL_BROKER_ENV_POSIX_POSIX_NETWORK_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/network.h"
#include "broker/env/posix/background_worker.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/scoped_fd.h"
#include "broker/env/posix/send_backlog.h"

namespace runnel {

class PosixNetwork final : public Network {
 public:
  // Bytes read from a socket per recv(2): the largest view one on_receive call gets.
  static constexpr size_t kReceiveBufferBytes = size_t{64} << 10;
  // recv(2) calls per connection per readiness, so one busy peer cannot starve the others.
  static constexpr int kReceivesPerReadyMax = 16;
  // accept(2) calls per listener per readiness, for the same reason.
  static constexpr int kAcceptsPerReadyMax = 64;
  // When accept(2) fails for lack of descriptors or memory, the listener pauses this long instead
  // of spinning on a connection it cannot take.
  static constexpr int64_t kAcceptPauseUs = 100'000;
  // Backlog of not-yet-accepted connections requested from listen(2) (the kernel may cap it).
  static constexpr int kListenQueueDepth = 1024;
  // Chunks of send backlog per sendmsg(2).
  static constexpr size_t kIovecsPerSendMax = 64;
  // Longest a locally closed connection waits for its backlog to drain and the peer to close.
  static constexpr int64_t kCloseLingerUs = 10'000'000;
  // Name resolutions waiting for the resolver thread; beyond this, Connect() fails.
  static constexpr size_t kResolveQueueDepthMax = 256;
  // Resolved addresses tried per Connect().
  static constexpr size_t kConnectAddressesMax = 16;
  // TCP keep-alive: probe after this much silence, this often, this many times.
  static constexpr int kKeepAliveIdleS = 30;
  static constexpr int kKeepAliveIntervalS = 5;
  static constexpr int kKeepAliveProbes = 6;

  // `loop` must outlive the network.
  explicit PosixNetwork(EventLoop& loop);
  ~PosixNetwork() override;

  PosixNetwork(const PosixNetwork&) = delete;
  PosixNetwork& operator=(const PosixNetwork&) = delete;

  absl::StatusOr<ListenerId> Listen(const NetworkAddress& address,
                                    AcceptCallback on_accept) override;
  absl::StatusOr<NetworkAddress> ListenerAddress(ListenerId listener) const override;
  void StopListening(ListenerId listener) override;
  ConnectionId Connect(const NetworkAddress& address, ConnectionCallbacks callbacks) override;
  absl::Status Send(ConnectionId connection, absl::string_view bytes) override;
  size_t SendBacklogBytes(ConnectionId connection) const override;
  void SetReceivePaused(ConnectionId connection, bool paused) override;
  void Close(ConnectionId connection) override;

  // Connections that still hold a socket or wait for one: open ones and locally closed ones still
  // draining. For tests and metrics.
  size_t connections_tracked() const { return connections_.size(); }

  // One resolved socket address.
  struct SocketAddress {
    sockaddr_storage storage = {};
    socklen_t length = 0;
  };

 private:
  struct Listener;
  struct Connection;

  // What a connection is doing; closed_locally is tracked separately.
  enum class Phase {
    kResolving,     // waiting for the resolver thread
    kConnecting,    // non-blocking connect(2) in progress
    kConnectFailed, // every address failed; the report to on_connected is posted
    kOpen,          // established
    kShuttingDown,  // closed locally, backlog handed over, FIN sent; waiting for the peer's FIN
  };

  // The connection if it exists and was not closed locally, else null.
  std::shared_ptr<Connection> FindLive(ConnectionId connection) const;

  void OnListenerReady(ListenerId listener);
  void PauseAccepting(const std::shared_ptr<Listener>& listener);

  void StartResolve(const std::shared_ptr<Connection>& connection);
  void OnResolved(ConnectionId connection, absl::StatusOr<std::vector<SocketAddress>> addresses);
  // Tries the connection's remaining addresses until a connect(2) is under way. Returns false when
  // none is left; the connection then has no socket, its connect_error says why, and the caller
  // reports it.
  bool StartConnect(const std::shared_ptr<Connection>& connection);
  void FinishConnect(const std::shared_ptr<Connection>& connection);
  // Reports the failure of an outgoing connection on a later loop turn, never from inside the API
  // call that discovered it.
  void DeferConnectFailure(const std::shared_ptr<Connection>& connection, absl::Status status);
  void FailConnect(const std::shared_ptr<Connection>& connection, const absl::Status& status);

  void OnConnectionReady(ConnectionId connection, uint32_t ready);
  enum class ReceiveOutcome { kWouldBlock, kBudgetSpent, kPaused, kGone };
  ReceiveOutcome Receive(const std::shared_ptr<Connection>& connection);
  // For a paused connection whose socket reported an error or hang-up: ends the connection if it is
  // really broken and returns true; returns false if the report was only the peer's clean close,
  // which waits for the resume like the bytes before it.
  bool FailIfBrokenWhilePaused(const std::shared_ptr<Connection>& connection);
  // Hands backlog to the kernel; then, for a locally closed connection with nothing left, starts
  // the shutdown.
  void Flush(const std::shared_ptr<Connection>& connection);
  void BeginShutdown(const std::shared_ptr<Connection>& connection);
  // Bounds how long a locally closed connection may keep its socket (kCloseLingerUs).
  void StartLinger(const std::shared_ptr<Connection>& connection);
  void UpdateInterest(const std::shared_ptr<Connection>& connection);
  // Ends a connection that was not closed locally: on_closed(status) runs once (if the connection
  // is still live), after the connection is gone.
  void Fail(const std::shared_ptr<Connection>& connection, const absl::Status& status);
  // Forgets a connection and closes its socket, with a reset if `abortive`. Runs no callback. Takes
  // its own reference, since it erases the map entry a caller's reference might point into.
  void Destroy(std::shared_ptr<Connection> connection, bool abortive);

  // Runs `work` on a later loop turn unless this network is gone by then.
  void PostToSelf(absl::AnyInvocable<void(PosixNetwork&)> work);

  EventLoop& loop_;
  // Expires with this network; posted work checks it first.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);

  ListenerId listener_next_ = 1;
  absl::flat_hash_map<ListenerId, std::shared_ptr<Listener>> listeners_;

  ConnectionId connection_next_ = 1;
  // Shared so that a connection being served stays valid even if a callback closes it.
  absl::flat_hash_map<ConnectionId, std::shared_ptr<Connection>> connections_;

  // One buffer for every connection: reads happen one at a time on the loop thread.
  std::unique_ptr<char[]> receive_buffer_;

  // Started on the first Connect() to a DNS name.
  std::unique_ptr<BackgroundWorker> resolver_;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_ENV_POSIX_POSIX_NETWORK_H_
