#include "broker/pingpong/ping_pong.h"

#include <cassert>

#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"

namespace runnel {
namespace {

uint32_t Fnv1a32(absl::string_view bytes) {
  uint32_t hash = 2166136261u;
  for (char byte : bytes) {
    hash ^= static_cast<unsigned char>(byte);
    hash *= 16777619u;
  }
  return hash;
}

std::string EncodePayload(const PingPongRecord& record) {
  std::string payload;
  payload.reserve(PingPongNode::kPayloadBytes);
  payload.push_back(static_cast<char>(record.type));
  AppendBigEndian<int32_t>(payload, record.sender);
  AppendBigEndian<uint64_t>(payload, record.sequence);
  return payload;
}

bool DecodePayload(absl::string_view payload, PingPongRecord* record) {
  if (payload.size() != PingPongNode::kPayloadBytes) return false;
  const auto type = static_cast<uint8_t>(payload[0]);
  if (type != static_cast<uint8_t>(PingPongMessageType::kPing) &&
      type != static_cast<uint8_t>(PingPongMessageType::kPong)) {
    return false;
  }
  record->type = static_cast<PingPongMessageType>(type);
  record->sender = LoadBigEndian<int32_t>(payload.data() + 1);
  record->sequence = LoadBigEndian<uint64_t>(payload.data() + 5);
  return true;
}

}  // namespace

std::string PingPongNode::EncodeFrame(const PingPongRecord& record) {
  std::string frame;
  frame.reserve(kFrameBytes);
  AppendBigEndian<uint32_t>(frame, kPayloadBytes);
  frame += EncodePayload(record);
  return frame;
}

std::string PingPongNode::EncodeLogRecord(const PingPongRecord& record) {
  std::string bytes = EncodePayload(record);
  AppendBigEndian<uint32_t>(bytes, Fnv1a32(bytes));
  return bytes;
}

bool PingPongNode::DecodeLogRecord(absl::string_view bytes, PingPongRecord* record) {
  if (bytes.size() != kRecordBytes) return false;
  const absl::string_view payload = bytes.substr(0, kPayloadBytes);
  if (LoadBigEndian<uint32_t>(bytes.data() + kPayloadBytes) != Fnv1a32(payload)) return false;
  return DecodePayload(payload, record);
}

PingPongNode::PingPongNode(Env& env, PingPongOptions options)
    : env_(env),
      options_(std::move(options)),
      listen_address_(options_.listen_address),
      alive_(std::make_shared<PingPongNode*>(this)) {
  assert(options_.peers.size() <= kPeersMax);
  assert(options_.ping_interval_us > 0);
  status_ = RecoverLog();
  if (!status_.ok()) {
    env_.Log(LogLevel::kError, absl::StrCat("ping-pong: cannot start: ", status_.message()));
    return;
  }
  absl::StatusOr<ListenerId> listener = env_.network().Listen(
      options_.listen_address, [this](ConnectionId connection, const NetworkAddress&) {
        inbound_[connection] = Inbound{};
        return InboundCallbacks(connection);
      });
  if (!listener.ok()) {
    status_ = listener.status();
    env_.Log(LogLevel::kError, absl::StrCat("ping-pong: cannot listen: ", status_.message()));
    return;
  }
  listener_ = *listener;
  listening_ = true;
  absl::StatusOr<NetworkAddress> bound = env_.network().ListenerAddress(listener_);
  if (bound.ok()) listen_address_ = *bound;
  for (const NetworkAddress& address : options_.peers) {
    Peer peer;
    peer.address = address;
    // Sequence numbers continue from a random point so that two incarnations' pings differ.
    peer.next_sequence = env_.random().Below(uint64_t{1} << 32) << 16;
    peers_.push_back(peer);
  }
  for (size_t i = 0; i < peers_.size(); ++i) Connect(i);
  ping_timer_ = env_.clock().ScheduleAfter(options_.ping_interval_us, [this] { OnPingTimer(); });
}

PingPongNode::~PingPongNode() {
  alive_.reset();
  env_.clock().CancelTimer(ping_timer_);
  for (Peer& peer : peers_) {
    env_.clock().CancelTimer(peer.reconnect_timer);
    if (peer.connection != kNoConnection) env_.network().Close(peer.connection);
  }
  for (const auto& [connection, inbound] : inbound_) env_.network().Close(connection);
  if (listening_) env_.network().StopListening(listener_);
}

absl::Status PingPongNode::RecoverLog() {
  // A new file's name is not durable until its directory is synced; until then a power loss can
  // take the whole file, synced contents and all.
  directory_durable_ = env_.disk().Exists(options_.log_path);
  absl::StatusOr<std::unique_ptr<File>> file = env_.disk().Open(options_.log_path, OpenMode::kCreate);
  if (!file.ok()) return file.status();
  log_ = std::move(*file);
  absl::StatusOr<uint64_t> size = log_->Size();
  if (!size.ok()) return size.status();
  // Read whole records in chunks; stop at the first record that does not verify.
  constexpr size_t kChunkRecords = 4096;
  std::string chunk(kChunkRecords * kRecordBytes, '\0');
  uint64_t offset = 0;
  bool damaged = false;
  while (offset + kRecordBytes <= *size && !damaged) {
    absl::StatusOr<size_t> read = log_->ReadAt(offset, absl::MakeSpan(chunk));
    if (!read.ok()) return read.status();
    const size_t whole = *read / kRecordBytes;
    if (whole == 0) break;
    for (size_t i = 0; i < whole; ++i) {
      PingPongRecord record;
      if (!DecodeLogRecord(absl::string_view(chunk).substr(i * kRecordBytes, kRecordBytes),
                           &record)) {
        // A read can return flipped bits that are not on the disk; read the record once more
        // before treating it as a torn tail, or a transient fault would cut durable records.
        char again[kRecordBytes];
        absl::StatusOr<size_t> reread = log_->ReadAt(offset, absl::MakeSpan(again, kRecordBytes));
        if (!reread.ok() || *reread != kRecordBytes ||
            !DecodeLogRecord(absl::string_view(again, kRecordBytes), &record)) {
          damaged = true;
          break;
        }
      }
      if (records_.size() < kRecordsKeptMax) records_.push_back(record);
      ++records_total_;
      offset += kRecordBytes;
    }
  }
  stats_.records_recovered = records_total_;
  log_bytes_ = offset;
  if (offset != *size) {
    env_.Log(LogLevel::kWarning,
             absl::StrCat("ping-pong: truncating ", *size - offset, " bytes of torn or corrupt log "
                          "tail at offset ", offset));
    absl::Status truncated = log_->Truncate(offset);
    if (!truncated.ok()) return truncated;
  }
  env_.RecordEvent(SemanticEvent{.kind = "recovered",
                                 .subject = options_.log_path,
                                 .value = static_cast<int64_t>(records_total_),
                                 .detail = ""});
  // Everything recovered is treated as durable only once a Sync confirms it: the recovered bytes
  // may have come from the page cache of a process crash.
  MaybeSync();
  return absl::OkStatus();
}

void PingPongNode::Connect(size_t peer_index) {
  Peer& peer = peers_[peer_index];
  peer.reconnect_timer = kNoTimer;
  ConnectionCallbacks callbacks;
  callbacks.on_connected = [this, peer_index](const absl::Status& status) {
    Peer& peer = peers_[peer_index];
    if (!status.ok()) {
      peer.connection = kNoConnection;
      ScheduleReconnect(peer_index);
      return;
    }
    peer.connected = true;
    peer.backoff_us = 0;
    ++stats_.connections_established;
    const std::string subject = peer.address.ToString();
    env_.RecordEvent(SemanticEvent{.kind = "peer_up", .subject = subject, .value = 0, .detail = ""});
  };
  callbacks.on_receive = [this, peer_index](absl::string_view bytes) {
    const ConnectionId connection = peers_[peer_index].connection;
    OnBytes(connection, outbound_buffers_[connection], bytes);
  };
  callbacks.on_closed = [this, peer_index](const absl::Status& status) {
    Peer& peer = peers_[peer_index];
    outbound_buffers_.erase(peer.connection);
    peer.connection = kNoConnection;
    peer.connected = false;
    ++stats_.connections_lost;
    const std::string subject = peer.address.ToString();
    env_.RecordEvent(SemanticEvent{
        .kind = "peer_down", .subject = subject, .value = 0, .detail = status.message()});
    ScheduleReconnect(peer_index);
  };
  peer.connection = env_.network().Connect(peer.address, std::move(callbacks));
}

void PingPongNode::ScheduleReconnect(size_t peer_index) {
  Peer& peer = peers_[peer_index];
  if (peer.reconnect_timer != kNoTimer) return;
  peer.backoff_us = peer.backoff_us == 0 ? options_.reconnect_backoff_us_min
                                         : std::min(peer.backoff_us * 2,
                                                    options_.reconnect_backoff_us_max);
  // Jitter keeps reconnecting peers from moving in lockstep.
  const int64_t delay_us = peer.backoff_us / 2 + env_.random().Between(0, peer.backoff_us / 2);
  peer.reconnect_timer =
      env_.clock().ScheduleAfter(delay_us, [this, peer_index] { Connect(peer_index); });
}

void PingPongNode::DropConnection(ConnectionId connection) {
  env_.network().Close(connection);
  inbound_.erase(connection);
  outbound_buffers_.erase(connection);
  for (size_t i = 0; i < peers_.size(); ++i) {
    Peer& peer = peers_[i];
    if (peer.connection != connection) continue;
    peer.connection = kNoConnection;
    peer.connected = false;
    ++stats_.connections_lost;
    ScheduleReconnect(i);
  }
}

void PingPongNode::OnPingTimer() {
  ping_timer_ = env_.clock().ScheduleAfter(options_.ping_interval_us, [this] { OnPingTimer(); });
  for (size_t i = 0; i < peers_.size(); ++i) {
    Peer& peer = peers_[i];
    if (!peer.connected) continue;
    if (RUNNEL_BUGGIFY(env_)) {
      // A spontaneous disconnect, as a flaky NIC or an idle-connection reaper would cause.
      DropConnection(peer.connection);
      continue;
    }
    SendFrame(peer.connection, PingPongRecord{PingPongMessageType::kPing, env_.node_id(),
                                              peer.next_sequence++});
    ++stats_.pings_sent;
  }
}

ConnectionCallbacks PingPongNode::InboundCallbacks(ConnectionId connection) {
  ConnectionCallbacks callbacks;
  callbacks.on_receive = [this, connection](absl::string_view bytes) {
    auto it = inbound_.find(connection);
    if (it == inbound_.end()) return;
    OnBytes(connection, it->second.buffer, bytes);
  };
  callbacks.on_closed = [this, connection](const absl::Status&) { inbound_.erase(connection); };
  return callbacks;
}

void PingPongNode::OnBytes(ConnectionId connection, std::string& buffer, absl::string_view bytes) {
  if (buffer.size() + bytes.size() > kReceiveBufferBytesMax) {
    // More than whole frames can explain: a protocol violation.
    ++stats_.malformed_frames;
    env_.Log(LogLevel::kWarning, "ping-pong: receive buffer overflow; closing connection");
    DropConnection(connection);
    return;
  }
  buffer.append(bytes.data(), bytes.size());
  size_t consumed = 0;
  bool bad = false;
  while (buffer.size() - consumed >= 4) {
    const uint32_t length = LoadBigEndian<uint32_t>(buffer.data() + consumed);
    if (length != kPayloadBytes) {
      bad = true;
      break;
    }
    if (buffer.size() - consumed < 4 + length) break;
    PingPongRecord record;
    if (!DecodePayload(absl::string_view(buffer).substr(consumed + 4, length), &record)) {
      bad = true;
      break;
    }
    consumed += 4 + length;
    OnFrame(connection, record);
  }
  if (bad) {
    ++stats_.malformed_frames;
    env_.Log(LogLevel::kWarning, "ping-pong: malformed frame; closing connection");
    DropConnection(connection);
    return;
  }
  // OnFrame never closes this connection, so `buffer` is still valid here.
  buffer.erase(0, consumed);
}

void PingPongNode::OnFrame(ConnectionId connection, const PingPongRecord& record) {
  Append(record);
  if (record.type == PingPongMessageType::kPing) {
    ++stats_.pings_received;
    SendFrame(connection,
              PingPongRecord{PingPongMessageType::kPong, env_.node_id(), record.sequence});
  } else {
    ++stats_.pongs_received;
  }
}

void PingPongNode::SendFrame(ConnectionId connection, const PingPongRecord& record) {
  const std::string frame = EncodeFrame(record);
  absl::Status sent;
  if (RUNNEL_BUGGIFY(env_)) {
    // Split the frame across two sends so receivers must reassemble it.
    sent = env_.network().Send(connection, absl::string_view(frame).substr(0, 3));
    if (sent.ok()) sent = env_.network().Send(connection, absl::string_view(frame).substr(3));
  } else {
    sent = env_.network().Send(connection, frame);
  }
  // A failed send means the connection is closing; its on_closed callback handles the rest.
  (void)sent;
}

void PingPongNode::Append(const PingPongRecord& record) {
  if (log_failed_ || log_bytes_ + kRecordBytes > kLogBytesMax) {
    ++stats_.log_full_drops;
    return;
  }
  absl::Status written = log_->WriteAt(log_bytes_, EncodeLogRecord(record));
  if (!written.ok()) {
    // An I/O error or a full disk: the record is not in the log, and the log stays a clean prefix.
    ++stats_.log_full_drops;
    return;
  }
  log_bytes_ += kRecordBytes;
  ++records_total_;
  ++stats_.records_appended;
  if (records_.size() < kRecordsKeptMax) records_.push_back(record);
  MaybeSync();
}

void PingPongNode::MaybeSync() {
  if (log_failed_ || sync_in_flight_) return;
  if (!directory_durable_) {
    sync_in_flight_ = true;
    std::weak_ptr<PingPongNode*> alive = alive_;
    env_.disk().SyncDirectory(ParentDirectory(options_.log_path), [alive](const absl::Status& status) {
      std::shared_ptr<PingPongNode*> self_slot = alive.lock();
      if (self_slot == nullptr) return;
      PingPongNode* self = *self_slot;
      self->sync_in_flight_ = false;
      if (!status.ok()) {
        ++self->stats_.sync_failures;
        self->log_failed_ = true;
        self->env_.Log(LogLevel::kError,
                       absl::StrCat("ping-pong: directory sync failed: ", status.message()));
        return;
      }
      self->directory_durable_ = true;
      self->MaybeSync();
    });
    return;
  }
  if (stats_.records_durable == records_total_) return;
  sync_in_flight_ = true;
  const uint64_t covered = records_total_;
  std::weak_ptr<PingPongNode*> alive = alive_;
  log_->Sync([alive, covered](const absl::Status& status) {
    std::shared_ptr<PingPongNode*> self_slot = alive.lock();
    if (self_slot == nullptr) return;
    PingPongNode* self = *self_slot;
    self->sync_in_flight_ = false;
    if (status.ok()) {
      self->stats_.records_durable = covered;
    } else {
      // After a failed sync the durable state of the log is unknown; retrying would claim
      // durability that may not exist. The log stops here until the node restarts and recovers.
      ++self->stats_.sync_failures;
      self->log_failed_ = true;
      self->env_.Log(LogLevel::kError, absl::StrCat("ping-pong: sync failed: ", status.message()));
      return;
    }
    self->MaybeSync();
  });
}

}  // namespace runnel
