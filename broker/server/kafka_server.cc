#include "broker/server/kafka_server.h"

#include <cassert>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/server/api_versions_handler.h"
#include "broker/server/error_mapping.h"
#include "broker/server/list_offsets_handler.h"

namespace runnel::server {

using protocol::ApiKey;
using protocol::ErrorCode;
using protocol::Request;
using protocol::RequestHeader;
using protocol::ResponseBody;
using protocol::ToWire;

namespace {

bool IsWildcardHost(absl::string_view host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

std::string PlaintextListener(const NetworkAddress& address) {
  return absl::StrCat("PLAINTEXT://", address.ToString());
}

}  // namespace

KafkaServer::KafkaServer(Env& env, TopicManager& topics, ProducerIdAllocator& producer_ids,
                         group::GroupCoordinator& groups, const BrokerSettings& settings)
    : env_(env),
      topics_(topics),
      producer_ids_(producer_ids),
      groups_(groups),
      settings_(settings),
      alive_(std::make_shared<KafkaServer*>(this)) {}

absl::StatusOr<std::unique_ptr<KafkaServer>> KafkaServer::Start(Env& env, TopicManager& topics,
                                                                ProducerIdAllocator& producer_ids,
                                                                group::GroupCoordinator& groups,
                                                                const BrokerSettings& settings) {
  std::unique_ptr<KafkaServer> server(
      new KafkaServer(env, topics, producer_ids, groups, settings));
  KafkaServer& self = *server;
  std::weak_ptr<KafkaServer*> alive = self.alive_;
  absl::StatusOr<ListenerId> listener = env.network().Listen(
      settings.listen, [alive](ConnectionId id, const NetworkAddress& peer) -> ConnectionCallbacks {
        if (alive.expired()) {
          return ConnectionCallbacks{.on_receive = [](absl::string_view) {},
                                     .on_closed = [](const absl::Status&) {}};
        }
        return (*alive.lock())->Accept(id, peer);
      });
  if (!listener.ok()) {
    return absl::Status(listener.status().code(),
                        absl::StrCat("listening on ", settings.listen.ToString(), ": ",
                                     listener.status().message()));
  }
  self.listener_ = *listener;
  self.listening_ = true;
  absl::StatusOr<NetworkAddress> bound = env.network().ListenerAddress(self.listener_);
  if (!bound.ok()) return bound.status();
  self.listen_address_ = *bound;
  if (settings.advertised.has_value()) {
    self.advertised_address_ = *settings.advertised;
  } else {
    if (IsWildcardHost(settings.listen.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("listening on ", settings.listen.ToString(),
                       " (every address) needs an advertised listener for clients to connect to"));
    }
    self.advertised_address_ = NetworkAddress{settings.listen.host, self.listen_address_.port};
  }
  if (absl::Status registered = topics.RegisterBroker(BrokerInfo{
          .node_id = env.node_id(),
          .host = self.advertised_address_.host,
          .port = self.advertised_address_.port,
      });
      !registered.ok()) {
    return registered;
  }

  self.metadata_settings_ = MetadataSettings{
      .node_id = env.node_id(),
      .cluster_id = settings.cluster_id,
      .auto_create_topics_enable = settings.defaults.auto_create_topics_enable,
  };
  self.fetches_ = std::make_unique<FetchHandler>(env, topics, settings.limits.parked_fetches_max);
  self.produces_ =
      std::make_unique<ProduceHandler>(env, topics, self.producer_states_, *self.fetches_,
                                       settings.defaults.auto_create_topics_enable);
  self.admin_ = std::make_unique<AdminHandler>(
      env, topics, self.settings_,
      BrokerIdentity{
          .node_id = env.node_id(),
          .listeners = PlaintextListener(self.listen_address_),
          .advertised_listeners = PlaintextListener(self.advertised_address_),
      },
      // A deleted topic's committed offsets go with it, as in Kafka.
      [groups = &self.groups_](absl::string_view topic) { groups->RemoveOffsetsOfTopic(topic); });
  env.Log(LogLevel::kInfo, absl::StrCat("kafka server: listening on ",
                                        self.listen_address_.ToString(), ", advertising ",
                                        self.advertised_address_.ToString()));
  return server;
}

KafkaServer::~KafkaServer() {
  alive_.reset();
  Network& network = env_.network();
  if (listening_) network.StopListening(listener_);
  for (auto& [id, connection] : connections_) {
    if (connection->drain_timer != kNoTimer) env_.clock().CancelTimer(connection->drain_timer);
    if (connection->backlog_timer != kNoTimer) {
      env_.clock().CancelTimer(connection->backlog_timer);
    }
    network.Close(id);
  }
}

std::shared_ptr<KafkaServer::Connection> KafkaServer::Find(ConnectionId id) const {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second;
}

ConnectionCallbacks KafkaServer::Accept(ConnectionId id, const NetworkAddress& peer) {
  std::weak_ptr<KafkaServer*> alive = alive_;
  if (stopping_ || connections_.size() >= settings_.limits.connections_max) {
    ++stats_.connections_refused;
    env_.Log(LogLevel::kWarning,
             absl::StrCat("kafka server: refusing connection from ", peer.ToString(), ": ",
                          stopping_ ? "stopping" : "connection limit reached"));
    // The connection is live only once this returns; it is closed on the next turn.
    env_.clock().ScheduleAfter(0, [alive, id] {
      if (!alive.expired()) (*alive.lock())->env_.network().Close(id);
    });
    return ConnectionCallbacks{.on_receive = [](absl::string_view) {},
                               .on_closed = [](const absl::Status&) {}};
  }
  ++stats_.connections_accepted;
  auto connection = std::make_shared<Connection>();
  connection->id = id;
  connection->peer = peer;
  connections_.emplace(id, connection);
  env_.Log(LogLevel::kDebug,
           absl::StrCat("kafka server: connection ", id, " from ", peer.ToString()));
  return ConnectionCallbacks{
      .on_receive =
          [alive, id](absl::string_view bytes) {
            if (!alive.expired()) (*alive.lock())->OnReceive(id, bytes);
          },
      .on_closed =
          [alive, id](const absl::Status& status) {
            if (!alive.expired()) (*alive.lock())->OnClosed(id, status);
          },
  };
}

void KafkaServer::OnReceive(ConnectionId id, absl::string_view bytes) {
  std::shared_ptr<Connection> connection = Find(id);
  if (connection == nullptr) return;
  connection->reader.Append(bytes);
  ProcessFrames(connection);
}

void KafkaServer::OnClosed(ConnectionId id, const absl::Status& status) {
  std::shared_ptr<Connection> connection = Find(id);
  if (connection == nullptr) return;
  env_.Log(LogLevel::kDebug, absl::StrCat("kafka server: connection ", id, " from ",
                                          connection->peer.ToString(),
                                          " ended: ", status.ToString()));
  Forget(connection);
}

void KafkaServer::ProcessFrames(const std::shared_ptr<Connection>& connection) {
  while (!connection->closed) {
    if (ShouldPause(*connection)) {
      // Complete frames may be left in the reader; they are read once the pause ends.
      connection->frames_waiting = true;
      break;
    }
    absl::StatusOr<std::optional<absl::string_view>> frame = connection->reader.Next();
    if (!frame.ok()) {
      CloseForError(connection, absl::StrCat("malformed frame: ", frame.status().message()));
      return;
    }
    if (!frame->has_value()) {
      connection->frames_waiting = false;
      break;
    }
    HandleFrame(connection, **frame);
  }
  if (!connection->closed) UpdateFlowControl(connection);
}

void KafkaServer::HandleFrame(const std::shared_ptr<Connection>& connection,
                              absl::string_view frame) {
  ++stats_.requests;
  absl::StatusOr<Request> request = protocol::DecodeRequest(frame);
  if (!request.ok()) {
    CloseForError(connection, request.status().ToString());
    return;
  }
  if (request->api_versions_unsupported) {
    TakeSlot(*connection, request->header)(AdvertisedApiVersions(ErrorCode::kUnsupportedVersion));
    return;
  }
  if (!IsHandledApi(request->header.api_key)) {
    CloseForError(connection,
                  absl::StrCat(protocol::ApiName(request->header.api_key),
                               " is not handled by this server (not advertised)"));
    return;
  }
  Dispatch(connection, *std::move(request));
}

void KafkaServer::Dispatch(const std::shared_ptr<Connection>& connection, Request request) {
  const RequestHeader& header = request.header;
  const int16_t version = header.api_version;
  switch (header.api_key) {
    case ApiKey::kProduce: {
      auto& body = std::get<protocol::ProduceRequest>(request.body);
      if (body.acks == 0) {
        if (!produces_->Handle(version, std::move(body), nullptr) && !connection->closed) {
          // Kafka's answer to a failed acks=0 produce: the client has no other way to learn it.
          CloseForError(connection, "an acks=0 produce failed");
        }
      } else {
        Respond respond = TakeSlot(*connection, header);
        produces_->Handle(version, std::move(body), std::move(respond));
      }
      return;
    }
    case ApiKey::kFetch: {
      Respond respond = TakeSlot(*connection, header);
      fetches_->Handle(connection->id, version,
                       std::get<protocol::FetchRequest>(std::move(request.body)),
                       std::move(respond));
      return;
    }
    case ApiKey::kListOffsets:
      TakeSlot(*connection, header)(HandleListOffsets(
          version, std::get<protocol::ListOffsetsRequest>(request.body), topics_));
      return;
    case ApiKey::kMetadata:
      TakeSlot(*connection, header)(HandleMetadata(
          version, std::get<protocol::MetadataRequest>(request.body), metadata_settings_,
          topics_));
      return;
    case ApiKey::kApiVersions:
      TakeSlot(*connection, header)(AdvertisedApiVersions(ErrorCode::kNone));
      return;
    case ApiKey::kCreateTopics:
      admin_->HandleCreateTopics(version, std::get<protocol::CreateTopicsRequest>(request.body),
                                 TakeSlot(*connection, header));
      return;
    case ApiKey::kDeleteTopics:
      admin_->HandleDeleteTopics(version, std::get<protocol::DeleteTopicsRequest>(request.body),
                                 TakeSlot(*connection, header));
      return;
    case ApiKey::kDescribeConfigs:
      TakeSlot(*connection, header)(admin_->HandleDescribeConfigs(
          version, std::get<protocol::DescribeConfigsRequest>(request.body)));
      return;
    case ApiKey::kInitProducerId: {
      Respond respond = TakeSlot(*connection, header);
      if (std::get<protocol::InitProducerIdRequest>(request.body).transactional_id.has_value()) {
        // No transactions; clients report this code as a fatal, clearly worded refusal.
        protocol::InitProducerIdResponse response;
        response.error_code = ToWire(ErrorCode::kTransactionalIdAuthorizationFailed);
        respond(std::move(response));
        return;
      }
      producer_ids_.Allocate(
          [respond = std::move(respond)](absl::StatusOr<int64_t> producer_id) mutable {
            protocol::InitProducerIdResponse response;
            if (producer_id.ok()) {
              response.producer_id = *producer_id;
              response.producer_epoch = 0;
            } else {
              response.error_code =
                  ToKafkaErrorWire(producer_id.status(), StatusOrigin::kProducerIds);
            }
            respond(std::move(response));
          });
      return;
    }
    case ApiKey::kOffsetCommit:
    case ApiKey::kOffsetFetch:
    case ApiKey::kFindCoordinator:
    case ApiKey::kJoinGroup:
    case ApiKey::kHeartbeat:
    case ApiKey::kLeaveGroup:
    case ApiKey::kSyncGroup:
    case ApiKey::kDescribeGroups:
    case ApiKey::kListGroups:
      DispatchGroupRequest(connection, std::move(request));
      return;
    default:
      // IsHandledApi() let it through, so kHandledApis and this switch disagree.
      assert(false && "a handled api without a case in Dispatch");
      CloseForError(connection, "internal error: no handler");
      return;
  }
}

void KafkaServer::DispatchGroupRequest(const std::shared_ptr<Connection>& connection,
                                       Request request) {
  const RequestHeader& header = request.header;
  const group::RequestContext context{
      .api_version = header.api_version,
      .client_id = header.client_id.value_or(""),
      .client_host = connection->peer.host,
  };
  Respond respond = TakeSlot(*connection, header);
  switch (header.api_key) {
    case ApiKey::kFindCoordinator:
      respond(groups_.FindCoordinator(header.api_version,
                                      std::get<protocol::FindCoordinatorRequest>(request.body),
                                      env_.node_id(), advertised_address_));
      return;
    case ApiKey::kJoinGroup:
      groups_.JoinGroup(context, std::get<protocol::JoinGroupRequest>(std::move(request.body)),
                        [respond = std::move(respond)](protocol::JoinGroupResponse response) mutable {
                          respond(std::move(response));
                        });
      return;
    case ApiKey::kSyncGroup:
      groups_.SyncGroup(context, std::get<protocol::SyncGroupRequest>(std::move(request.body)),
                        [respond = std::move(respond)](protocol::SyncGroupResponse response) mutable {
                          respond(std::move(response));
                        });
      return;
    case ApiKey::kHeartbeat:
      respond(groups_.Heartbeat(context, std::get<protocol::HeartbeatRequest>(request.body)));
      return;
    case ApiKey::kLeaveGroup:
      respond(groups_.LeaveGroup(context, std::get<protocol::LeaveGroupRequest>(request.body)));
      return;
    case ApiKey::kOffsetCommit:
      groups_.OffsetCommit(
          context, std::get<protocol::OffsetCommitRequest>(std::move(request.body)),
          [respond = std::move(respond)](protocol::OffsetCommitResponse response) mutable {
            respond(std::move(response));
          });
      return;
    case ApiKey::kOffsetFetch:
      respond(groups_.OffsetFetch(context, std::get<protocol::OffsetFetchRequest>(request.body)));
      return;
    case ApiKey::kListGroups:
      respond(groups_.ListGroups(context));
      return;
    case ApiKey::kDescribeGroups:
      respond(groups_.DescribeGroups(context,
                                     std::get<protocol::DescribeGroupsRequest>(request.body)));
      return;
    default:
      assert(false && "not a group api");
      return;
  }
}

Respond KafkaServer::TakeSlot(Connection& connection, const RequestHeader& header) {
  const uint64_t sequence = connection.slot_front_sequence + connection.slots.size();
  connection.slots.emplace_back();
  // The client id is not needed to encode the response.
  RequestHeader response_header{.api_key = header.api_key,
                                .api_version = header.api_version,
                                .correlation_id = header.correlation_id};
  std::weak_ptr<KafkaServer*> alive = alive_;
  return [alive, id = connection.id, sequence,
          response_header = std::move(response_header)](ResponseBody body) mutable {
    if (alive.expired()) return;
    (*alive.lock())->FillSlot(id, sequence, response_header, std::move(body));
  };
}

void KafkaServer::FillSlot(ConnectionId id, uint64_t sequence, const RequestHeader& header,
                           ResponseBody body) {
  std::shared_ptr<Connection> connection = Find(id);
  if (connection == nullptr || connection->closed) return;
  assert(sequence >= connection->slot_front_sequence);
  const uint64_t index = sequence - connection->slot_front_sequence;
  assert(index < connection->slots.size());
  absl::StatusOr<std::string> frame = protocol::EncodeResponse(header, body);
  if (!frame.ok()) {
    // A handler built a response the codec cannot carry: a bug, reported loudly; the client
    // cannot be told anything sensible on this connection.
    env_.Log(LogLevel::kError, absl::StrCat("kafka server: cannot encode the response to ",
                                            protocol::ApiName(header.api_key), " v",
                                            header.api_version, ": ", frame.status().ToString()));
    CloseForError(connection, "response encoding failed");
    return;
  }
  Slot& slot = connection->slots[index];
  assert(!slot.ready);
  slot.ready = true;
  slot.frame = *std::move(frame);
  connection->ready_bytes_held += slot.frame.size();
  SendReady(connection);
  if (!connection->closed) UpdateFlowControl(connection);
}

void KafkaServer::SendReady(const std::shared_ptr<Connection>& connection) {
  Network& network = env_.network();
  while (!connection->closed && !connection->slots.empty() && connection->slots.front().ready) {
    if (network.SendBacklogBytes(connection->id) >= settings_.limits.send_backlog_pause_bytes) {
      return;  // UpdateFlowControl arms the backlog check
    }
    Slot& slot = connection->slots.front();
    if (absl::Status sent = network.Send(connection->id, slot.frame); !sent.ok()) {
      CloseForError(connection, absl::StrCat("sending a response: ", sent.message()));
      return;
    }
    connection->ready_bytes_held -= slot.frame.size();
    connection->slots.pop_front();
    ++connection->slot_front_sequence;
    ++stats_.responses_sent;
  }
}

bool KafkaServer::ShouldPause(const Connection& connection) const {
  const KafkaServerLimits& limits = settings_.limits;
  return stopping_ || connection.slots.size() >= limits.requests_in_progress_per_connection_max ||
         connection.ready_bytes_held >= limits.response_bytes_held_per_connection_max ||
         env_.network().SendBacklogBytes(connection.id) >= limits.send_backlog_pause_bytes;
}

void KafkaServer::UpdateFlowControl(const std::shared_ptr<Connection>& connection) {
  if (connection->closed) return;
  std::weak_ptr<KafkaServer*> alive = alive_;
  const ConnectionId id = connection->id;
  const bool backlog_full =
      env_.network().SendBacklogBytes(id) >= settings_.limits.send_backlog_pause_bytes;
  if (backlog_full && connection->backlog_timer == kNoTimer) {
    connection->backlog_timer = env_.clock().ScheduleAfter(kSendBacklogCheckIntervalUs, [alive, id] {
      if (alive.expired()) return;
      KafkaServer* self = *alive.lock();
      std::shared_ptr<Connection> held = self->Find(id);
      if (held == nullptr) return;
      held->backlog_timer = kNoTimer;
      self->SendReady(held);
      self->UpdateFlowControl(held);
    });
  }
  const bool pause = ShouldPause(*connection);
  if (pause != connection->paused) {
    connection->paused = pause;
    if (pause) ++stats_.receive_pauses;
    env_.network().SetReceivePaused(id, pause);
  }
  // Frames already buffered are not delivered again by the network: read them on the next turn
  // (never from here, which may run inside a handler of this very connection).
  if (!pause && connection->frames_waiting && connection->drain_timer == kNoTimer) {
    connection->drain_timer = env_.clock().ScheduleAfter(0, [alive, id] {
      if (alive.expired()) return;
      KafkaServer* self = *alive.lock();
      std::shared_ptr<Connection> held = self->Find(id);
      if (held == nullptr) return;
      held->drain_timer = kNoTimer;
      self->ProcessFrames(held);
    });
  }
}

void KafkaServer::CloseForError(const std::shared_ptr<Connection>& connection,
                                absl::string_view why) {
  if (connection->closed) return;
  ++stats_.connections_closed_for_errors;
  env_.Log(LogLevel::kDebug, absl::StrCat("kafka server: closing connection ", connection->id,
                                          " from ", connection->peer.ToString(), ": ", why));
  env_.network().Close(connection->id);
  Forget(connection);
}

void KafkaServer::Forget(const std::shared_ptr<Connection>& connection) {
  if (connection->closed && !connections_.contains(connection->id)) return;
  connection->closed = true;
  if (connection->drain_timer != kNoTimer) env_.clock().CancelTimer(connection->drain_timer);
  if (connection->backlog_timer != kNoTimer) env_.clock().CancelTimer(connection->backlog_timer);
  connection->drain_timer = kNoTimer;
  connection->backlog_timer = kNoTimer;
  connections_.erase(connection->id);
  if (fetches_ != nullptr) fetches_->ForgetConnection(connection->id);
}

void KafkaServer::StopAccepting() {
  if (listening_) {
    env_.network().StopListening(listener_);
    listening_ = false;
  }
  stopping_ = true;
  std::vector<std::shared_ptr<Connection>> connections;
  for (const auto& [id, connection] : connections_) connections.push_back(connection);
  for (const std::shared_ptr<Connection>& connection : connections) {
    UpdateFlowControl(connection);
  }
  fetches_->CompleteAll();
}

void KafkaServer::CloseConnections() {
  std::vector<std::shared_ptr<Connection>> connections;
  for (const auto& [id, connection] : connections_) connections.push_back(connection);
  Network& network = env_.network();
  for (const std::shared_ptr<Connection>& connection : connections) {
    if (connection->closed) continue;
    // Whatever is ready goes out now, whatever the backlog, as far as the network takes it.
    while (!connection->slots.empty() && connection->slots.front().ready) {
      if (!network.Send(connection->id, connection->slots.front().frame).ok()) break;
      connection->slots.pop_front();
      ++connection->slot_front_sequence;
      ++stats_.responses_sent;
    }
    network.Close(connection->id);
    Forget(connection);
  }
}

}  // namespace runnel::server
