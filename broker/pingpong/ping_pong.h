// PingPongNode: a small multi-node workload that exercises every part of the Env the way the broker
// will, and runs unchanged over the simulated and the real Env.
//
// Each node listens, keeps an outgoing connection to every peer (reconnecting with capped
// exponential backoff), sends a framed Ping to each connected peer every ping_interval_us and
// answers every Ping it receives with a Pong. Every Ping and Pong it receives is appended to its log
// file, with group commit: at most one Sync is in flight, and it covers every record appended before
// it was called, and a record counts as durable only once the log's directory entry is durable
// too (a new file's name is lost in a crash until its directory is synced). On start the node recovers its log: it keeps the longest prefix of whole records
// whose checksums verify and truncates anything after it (a torn or corrupt tail).
//
// Wire frame: u32 big-endian payload length (always kPayloadBytes), then the payload:
//   u8 type (1 = ping, 2 = pong), i32 big-endian sender node id, u64 big-endian sequence number.
// Log record: the 13-byte payload followed by a u32 big-endian FNV-1a checksum of it.
#ifndef RUNNEL_BROKER_PINGPONG_PING_PONG_H_
#define RUNNEL_BROKER_PINGPONG_PING_PONG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "broker/env/env.h"

namespace runnel {

struct PingPongOptions {
  NetworkAddress listen_address;
  std::vector<NetworkAddress> peers;
  int64_t ping_interval_us = 10'000;
  int64_t reconnect_backoff_us_min = 20'000;
  int64_t reconnect_backoff_us_max = 1'000'000;
  std::string log_path = "pingpong.log";
};

enum class PingPongMessageType : uint8_t { kPing = 1, kPong = 2 };

struct PingPongRecord {
  PingPongMessageType type;
  NodeId sender;
  uint64_t sequence;
  friend bool operator==(const PingPongRecord&, const PingPongRecord&) = default;
};

struct PingPongStats {
  uint64_t pings_sent = 0;
  uint64_t pings_received = 0;
  uint64_t pongs_received = 0;
  uint64_t connections_established = 0;
  uint64_t connections_lost = 0;
  uint64_t malformed_frames = 0;
  uint64_t records_recovered = 0;
  uint64_t records_appended = 0;  // by this incarnation
  uint64_t records_durable = 0;   // of all records in the log, how many a completed Sync covers
  uint64_t sync_failures = 0;
  uint64_t log_full_drops = 0;  // records not logged: log full, write error, or failed log
};

class PingPongNode {
 public:
  static constexpr size_t kPayloadBytes = 13;
  static constexpr size_t kFrameBytes = 4 + kPayloadBytes;
  static constexpr size_t kRecordBytes = kPayloadBytes + 4;
  // Bytes a connection may buffer while waiting for the rest of a frame.
  static constexpr size_t kReceiveBufferBytesMax = 64 * kFrameBytes;
  // The log stops growing here; records past it are counted and dropped.
  static constexpr uint64_t kLogBytesMax = uint64_t{64} << 20;
  // Records kept in memory for inspection.
  static constexpr size_t kRecordsKeptMax = size_t{1} << 20;
  static constexpr size_t kPeersMax = 64;

  PingPongNode(Env& env, PingPongOptions options);
  ~PingPongNode();
  PingPongNode(const PingPongNode&) = delete;
  PingPongNode& operator=(const PingPongNode&) = delete;

  // OK once started; otherwise why the node could not start (it then does nothing).
  const absl::Status& status() const { return status_; }
  const PingPongStats& stats() const { return stats_; }
  // The records in the log as this incarnation knows them: recovered ones, then appended ones.
  const std::vector<PingPongRecord>& records() const { return records_; }
  // The address the node listens on (with the real port when 0 was asked for).
  const NetworkAddress& listen_address() const { return listen_address_; }

  static std::string EncodeFrame(const PingPongRecord& record);
  static std::string EncodeLogRecord(const PingPongRecord& record);
  // Decodes one log record; false if its checksum or type is wrong.
  static bool DecodeLogRecord(absl::string_view bytes, PingPongRecord* record);

 private:
  struct Peer {
    NetworkAddress address;
    ConnectionId connection = kNoConnection;
    bool connected = false;
    uint64_t next_sequence = 1;
    int64_t backoff_us = 0;
    TimerId reconnect_timer = kNoTimer;
  };
  struct Inbound {
    std::string buffer;
  };

  absl::Status RecoverLog();
  void Connect(size_t peer_index);
  void ScheduleReconnect(size_t peer_index);
  void OnPingTimer();
  // Closes a connection of either kind and forgets it; a peer's connection is re-established.
  void DropConnection(ConnectionId connection);
  ConnectionCallbacks InboundCallbacks(ConnectionId connection);
  void OnBytes(ConnectionId connection, std::string& buffer, absl::string_view bytes);
  void OnFrame(ConnectionId connection, const PingPongRecord& record);
  void SendFrame(ConnectionId connection, const PingPongRecord& record);
  void Append(const PingPongRecord& record);
  void MaybeSync();

  Env& env_;
  PingPongOptions options_;
  absl::Status status_;
  PingPongStats stats_;
  NetworkAddress listen_address_;
  ListenerId listener_ = 0;
  bool listening_ = false;
  std::vector<Peer> peers_;
  // Accepted connections by id; ordered so that shutdown closes them in a reproducible order.
  std::map<ConnectionId, Inbound> inbound_;
  std::map<ConnectionId, std::string> outbound_buffers_;
  TimerId ping_timer_ = kNoTimer;
  std::unique_ptr<File> log_;
  uint64_t log_bytes_ = 0;
  uint64_t records_total_ = 0;   // records in the log, recovered plus appended
  bool sync_in_flight_ = false;
  bool log_failed_ = false;
  bool directory_durable_ = false;  // the log file's directory entry survives a crash
  std::vector<PingPongRecord> records_;
  // Disk callbacks can outlive the node in the real Env (a Sync completing after shutdown began);
  // they hold this weakly and do nothing once it is gone.
  std::shared_ptr<PingPongNode*> alive_;
};

}  // namespace runnel

#endif  // RUNNEL_BROKER_PINGPONG_PING_PONG_H_
