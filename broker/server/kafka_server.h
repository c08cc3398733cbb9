// KafkaServer: the Kafka protocol front end of one node. It listens on the Env's network, splits
// each connection's bytes into request frames, decodes them, dispatches each to its handler and
// sends the responses back.
//
// Contract:
// - Responses on a connection go back strictly in request order, even when handlers finish out of
//   order (an acks=all produce waiting for a sync, a long-poll fetch, a CreateTopics waiting for
//   durability): each request takes a slot in the connection's queue when it is read, its handler
//   fills the slot whenever it finishes, and the ready prefix of the queue is sent. Produce with
//   acks=0 takes no slot and gets no response.
// - A malformed frame, a request that does not decode, an unknown api, an api this server does not
//   advertise (api_versions_handler.h) or an unsupported version closes that connection only (no
//   other connection is affected), logged at debug level with the peer. The exception is
//   ApiVersions above its maximum, answered UNSUPPORTED_VERSION with the supported ranges
//   (protocol/codec.h) so that the client retries at a version it finds there.
// - Flow control, with the bounds of KafkaServerLimits (broker_settings.h): a connection is not read
//   (Network::SetReceivePaused) while it has too many requests in progress, while too many response
//   bytes are held back, or while its send backlog exceeds the pause threshold; the backlog is
//   checked again every kSendBacklogCheckIntervalUs until it drains. Connections beyond the limit
//   are closed as soon as they are accepted.
// - Everything runs on the node's event loop. Destroying the server (a crash) answers nothing and
//   runs no callback afterwards; handler completions that arrive later are dropped.
#ifndef RUNNEL_BROKER_SERVER_KAFKA_SERVER_H_
#define RUNNEL_BROKER_SERVER_KAFKA_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "broker/env/env.h"
#include "broker/group/group_coordinator.h"
#include "broker/protocol/codec.h"
#include "broker/server/admin_handler.h"
#include "broker/server/broker_settings.h"
#include "broker/server/fetch_handler.h"
#include "broker/server/metadata_handler.h"
#include "broker/server/produce_handler.h"
#include "broker/server/producer_id_allocator.h"
#include "broker/server/producer_state.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

struct KafkaServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // beyond connections_max
  uint64_t connections_closed_for_errors = 0;
  uint64_t requests = 0;
  uint64_t responses_sent = 0;
  uint64_t receive_pauses = 0;
};

class KafkaServer {
 public:
  // How often a connection paused for its send backlog is checked again.
  static constexpr int64_t kSendBacklogCheckIntervalUs = 1000;

  // Starts listening at settings.listen. `topics`, `producer_ids` and `groups` must outlive the
  // server. Registers this broker (the advertised address, or the listen host with the bound
  // port) in the topic manager's image. The nine group APIs go to `groups`.
  static absl::StatusOr<std::unique_ptr<KafkaServer>> Start(Env& env, TopicManager& topics,
                                                            ProducerIdAllocator& producer_ids,
                                                            group::GroupCoordinator& groups,
                                                            const BrokerSettings& settings);
  ~KafkaServer();

  KafkaServer(const KafkaServer&) = delete;
  KafkaServer& operator=(const KafkaServer&) = delete;

  // The address the listener is bound to (with the actual port) and the one Metadata advertises.
  const NetworkAddress& listen_address() const { return listen_address_; }
  const NetworkAddress& advertised_address() const { return advertised_address_; }

  // The first step of a clean stop: stops accepting connections and reading requests, and answers
  // every parked fetch now. Requests in progress still complete (the caller then closes the topic
  // manager, which completes the durability waits).
  void StopAccepting();
  // The last step: sends every response that is ready and closes every connection in an orderly
  // way (responses still missing are abandoned).
  void CloseConnections();

  size_t connection_count() const { return connections_.size(); }
  const KafkaServerStats& stats() const { return stats_; }
  const FetchHandler& fetch_handler() const { return *fetches_; }
  const ProduceHandler& produce_handler() const { return *produces_; }

 private:
  struct Slot {
    bool ready = false;
    std::string frame;
  };
  struct Connection {
    ConnectionId id = kNoConnection;
    NetworkAddress peer;
    protocol::FrameReader reader;
    // Response slots in request order; slots.front() has sequence number slot_front_sequence.
    std::deque<Slot> slots;
    uint64_t slot_front_sequence = 0;
    size_t ready_bytes_held = 0;
    bool paused = false;
    bool closed = false;
    // Reading stopped for a pause with bytes still in the reader that may hold whole frames.
    bool frames_waiting = false;
    // A timer that reads buffered frames after a pause ended, or checks the send backlog.
    TimerId drain_timer = kNoTimer;
    TimerId backlog_timer = kNoTimer;
  };

  KafkaServer(Env& env, TopicManager& topics, ProducerIdAllocator& producer_ids,
              group::GroupCoordinator& groups, const BrokerSettings& settings);
  // Routes one of the nine group APIs to the coordinator.
  void DispatchGroupRequest(const std::shared_ptr<Connection>& connection,
                            protocol::Request request);

  ConnectionCallbacks Accept(ConnectionId id, const NetworkAddress& peer);
  void OnReceive(ConnectionId id, absl::string_view bytes);
  void OnClosed(ConnectionId id, const absl::Status& status);
  // Handles complete frames until none is left or the connection should pause.
  void ProcessFrames(const std::shared_ptr<Connection>& connection);
  void HandleFrame(const std::shared_ptr<Connection>& connection, absl::string_view frame);
  void Dispatch(const std::shared_ptr<Connection>& connection, protocol::Request request);
  // A Respond that fills the next slot of `connection`.
  Respond TakeSlot(Connection& connection, const protocol::RequestHeader& header);
  void FillSlot(ConnectionId id, uint64_t sequence, const protocol::RequestHeader& header,
                protocol::ResponseBody body);
  // Sends the ready prefix of the slots (as far as the send backlog allows).
  void SendReady(const std::shared_ptr<Connection>& connection);
  // Pauses or resumes reading as the limits say; schedules the follow-up timers.
  void UpdateFlowControl(const std::shared_ptr<Connection>& connection);
  bool ShouldPause(const Connection& connection) const;
  void CloseForError(const std::shared_ptr<Connection>& connection, absl::string_view why);
  // Forgets a connection the network already closed or that was just closed locally.
  void Forget(const std::shared_ptr<Connection>& connection);
  std::shared_ptr<Connection> Find(ConnectionId id) const;

  Env& env_;
  TopicManager& topics_;
  ProducerIdAllocator& producer_ids_;
  group::GroupCoordinator& groups_;
  const BrokerSettings settings_;
  NetworkAddress listen_address_;
  NetworkAddress advertised_address_;
  ListenerId listener_ = 0;
  bool listening_ = false;
  bool stopping_ = false;

  MetadataSettings metadata_settings_;
  ProducerStateTable producer_states_;
  std::unique_ptr<FetchHandler> fetches_;
  std::unique_ptr<ProduceHandler> produces_;
  std::unique_ptr<AdminHandler> admin_;

  // Ordered, so that stopping closes connections in a replayable order.
  std::map<ConnectionId, std::shared_ptr<Connection>> connections_;
  KafkaServerStats stats_;
  // Reset by the destructor; every callback holds a weak reference.
  std::shared_ptr<KafkaServer*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_KAFKA_SERVER_H_
