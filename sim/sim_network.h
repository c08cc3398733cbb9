// The simulated network: reliable in-order byte streams between simulated nodes, with latency,
// partitions (two-way and one-way), stalled links, connection resets and node crashes, behaving the
// way TCP behaves from an application's point of view (see broker/env/network.h for the contract).
//
// Model:
// - Each Send() becomes one message on the link from the sender's node to the receiver's node,
//   delivered after a latency drawn from NetworkOptions; deliveries on one direction of one
//   connection never overtake each other. A message may be delivered in two chunks
//   (delivery_split_probability) so that framing code is exercised.
// - A blocked link (partition or stall) holds messages instead of dropping them, as TCP
//   retransmission would; when the link is unblocked they are delivered in order. If a direction
//   has held undelivered bytes for connection_timeout_us, the connection is reset on both sides.
//   Held messages are merged up to kHeldMessageBytesMax, as a retransmission would merge segments,
//   so the count of held messages stays bounded by the backlog limit.
// - A receiver that pauses (SetReceivePaused) closes its TCP window at once. Messages already on
//   the wire when it paused still arrive and wait in its socket buffer; everything sent from then
//   on waits in the sender's backlog (SendBacklogBytes grows, and Send fails with
//   kResourceExhausted at kSendBacklogBytesMax). A closed window alone never times out, since
//   TCP's window probes are answered; but while the link is also blocked, held bytes count towards
//   connection_timeout_us as above. On resume, what waited in the socket buffer is delivered by an
//   event at the same virtual time, then the sender's backlog goes out with fresh latencies, all in
//   order. A reset discards both; a clean close (the FIN) waits behind the bytes like any message.
// - Connecting across a blocked link times out after connect_timeout_us; connecting to a node that
//   is down or has no listener on the port is refused after one round trip.
// - When a node crashes its connections die silently on its side; each peer sees a reset either
//   after one latency (crash_reset_probability: the rebooted host answers with RST) or after
//   connection_timeout_us (it never hears back).
// - A stalled node (Simulator::StallNode, a paused process) runs nothing: deliveries, connection
//   events and connect outcomes meant for it wait until it resumes, and its connections do not
//   time out meanwhile (its kernel still acknowledges). A connect to a stalled listener completes
//   its handshake only when the listener resumes.
#ifndef RUNNEL_SIM_SIM_NETWORK_H_
#define RUNNEL_SIM_SIM_NETWORK_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "broker/env/env.h"
#include "broker/env/network.h"
#include "sim/sim_context.h"

namespace runnel::sim {

struct NetworkOptions {
  int64_t latency_us_min = 50;
  int64_t latency_us_max = 400;
  // With this probability a message takes an extra delay of up to latency_spike_us_max.
  double latency_spike_probability = 0.0;
  int64_t latency_spike_us_max = 20'000;
  // With this probability a message is delivered as two chunks.
  double delivery_split_probability = 0.05;
  int64_t connect_timeout_us = 3'000'000;
  // How long undelivered bytes may wait on a blocked link before TCP gives up and resets.
  int64_t connection_timeout_us = 15'000'000;
  // When a node crashes: probability that each peer sees a prompt reset rather than a timeout.
  double crash_reset_probability = 0.5;
};

class SimNetwork {
 public:
  // The first port handed out for listeners that ask for port 0.
  static constexpr uint16_t kEphemeralPortFirst = 40000;
  // The most messages one direction of a connection may hold on a blocked link or for a paused
  // receiver. Merging (kHeldMessageBytesMax) keeps the count far below this: every two neighbours
  // together exceed kHeldMessageBytesMax, so kSendBacklogBytesMax allows about 2 * 64 MiB / 64 KiB.
  static constexpr size_t kStalledMessagesMax = 1 << 20;
  // Held messages are appended to the previous held message while it stays within this size.
  static constexpr size_t kHeldMessageBytesMax = size_t{64} << 10;

  SimNetwork(SimContext& context, NetworkOptions options);
  ~SimNetwork();

  NetworkOptions& options() { return options_; }

  // Nodes must be registered before they use the network. The host name is how others reach them.
  void RegisterNode(NodeId node, std::string host);
  const std::string& HostName(NodeId node) const;

  // The Network handed to `node`'s Env for one incarnation.
  std::unique_ptr<Network> OpenView(NodeId node, uint64_t incarnation);

  // The node crashed: its listeners vanish and its connections die as described above.
  void NodeCrashed(NodeId node);
  // The node's process exited cleanly: its listeners vanish and its open connections are closed in
  // an orderly way, as the kernel does at process exit.
  void NodeStopped(NodeId node);

  // Link faults. A link is one direction between two nodes.
  void SetLinkBlocked(NodeId from, NodeId to, bool blocked);
  bool IsLinkBlocked(NodeId from, NodeId to) const;
  // Blocks every link from a node of `group_a` to a node of `group_b`, and back unless one_way.
  void Partition(const std::vector<NodeId>& group_a, const std::vector<NodeId>& group_b,
                 bool one_way);
  // Unblocks every link.
  void HealAll();
  void SetLinkExtraDelayUs(NodeId from, NodeId to, int64_t extra_delay_us);

  // Resets one established connection, chosen by the fault stream; false if there is none.
  bool ResetRandomConnection();
  // Resets every connection that has an end on `node`.
  void ResetConnectionsOf(NodeId node);

  size_t OpenConnectionCount() const { return connections_.size(); }

 private:
  friend class SimNodeNetwork;
  struct Endpoint;
  struct Connection;
  struct Message;
  struct Direction;

  // Calls made through a node's view.
  absl::StatusOr<ListenerId> Listen(NodeId node, uint64_t incarnation,
                                    const NetworkAddress& address, AcceptCallback on_accept);
  absl::StatusOr<NetworkAddress> ListenerAddress(NodeId node, ListenerId listener) const;
  void StopListening(NodeId node, ListenerId listener);
  ConnectionId Connect(NodeId node, uint64_t incarnation, const NetworkAddress& address,
                       ConnectionCallbacks callbacks);
  absl::Status Send(NodeId node, uint64_t incarnation, ConnectionId endpoint,
                    absl::string_view bytes);
  size_t SendBacklogBytes(NodeId node, uint64_t incarnation, ConnectionId endpoint) const;
  void SetReceivePaused(NodeId node, uint64_t incarnation, ConnectionId endpoint, bool paused);
  void Close(NodeId node, uint64_t incarnation, ConnectionId endpoint);

  Connection* FindConnection(uint64_t connection_id);
  // The endpoint with this id if it belongs to this node incarnation and is open.
  Endpoint* FindOwnEndpoint(NodeId node, uint64_t incarnation, ConnectionId endpoint,
                            Connection** connection, int* side);
  int64_t DrawLatencyUs(NodeId from, NodeId to);
  // Puts bytes (or the FIN) on the wire, or holds them in the sender's backlog while the link is
  // blocked, earlier bytes are held, or the receiver is paused.
  void Transmit(Connection& connection, int from_side, std::string bytes, bool fin);
  void ScheduleDelivery(Connection& connection, int from_side, std::string bytes, bool fin);
  // A message reaches the receiver: handed over, or kept in its socket buffer while it is paused.
  void Deliver(uint64_t connection_id, int to_side, std::string bytes, bool fin);
  // Runs on_receive, or on_closed for the FIN. The connection may be gone afterwards.
  void HandOver(uint64_t connection_id, int to_side, const std::string& bytes, bool fin);
  // After a resume: hands over what waited in the receiver's socket buffer, until it pauses again.
  void DeliverArrived(uint64_t connection_id, int to_side);
  // Starts the connection timeout for bytes held on a blocked link, unless it runs already.
  void StartStallClock(Connection& connection, int from_side);
  void CheckStall(uint64_t connection_id, int from_side, int64_t stalled_since_us);
  // Puts the held bytes of one direction on the wire if the link is unblocked and the receiver is
  // not paused; stops the stall clock if the link is unblocked.
  void ReleaseStalled(Connection& connection, int from_side);
  // The connecting side's SYN reaches `peer`: accepted by a listener on `port`, refused, or (when
  // `peer` is stalled) deferred until it resumes.
  void ArriveSyn(uint64_t id, NodeId peer, uint16_t port);
  void CompleteConnect(uint64_t connection_id);
  void FailConnect(uint64_t connection_id, absl::Status status);
  // Kills the connection: both open ends get on_closed(status) after the given delays.
  void Reset(Connection& connection, const std::string& reason, int64_t delay_us_side0,
             int64_t delay_us_side1);
  void NotifyReset(uint64_t connection_id, int side, const std::string& reason);
  void MaybeForget(uint64_t connection_id);
  void RecordConnectionEvent(TraceKind kind, const Connection& connection, int side,
                             absl::string_view detail);

  SimContext& context_;
  NetworkOptions options_;
  std::vector<std::string> host_names_;            // by node id
  std::map<std::string, NodeId> nodes_by_host_;
  std::vector<uint64_t> incarnations_;             // live incarnation by node id; 0 = down
  std::vector<uint16_t> next_ephemeral_port_;      // by node id
  std::map<std::pair<NodeId, NodeId>, bool> blocked_links_;
  std::map<std::pair<NodeId, NodeId>, int64_t> extra_delays_us_;
  struct Listener {
    NodeId node;
    uint64_t incarnation;
    uint16_t port;
    std::shared_ptr<AcceptCallback> on_accept;
  };
  std::map<ListenerId, Listener> listeners_;
  ListenerId next_listener_id_ = 1;
  // Connections by id (the id of the connecting side's endpoint); ordered so that fault handling
  // visits them in a reproducible order.
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  // Endpoint id -> connection id. Looked up only, never iterated.
  absl::flat_hash_map<ConnectionId, uint64_t> connection_of_endpoint_;
  ConnectionId next_endpoint_id_ = 1;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SIM_NETWORK_H_
