// Produce, versions 3-8.
//
// - acks must be 0, 1 or -1 (else INVALID_REQUIRED_ACKS for every partition). acks=0 gets no
//   response at all; if any partition fails, the connection is closed instead (as Kafka does), so
//   the client notices and refreshes its metadata.
// - A transactional produce (transactional_id set) gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED for
//   every partition: Runnel has no transactions, and clients treat that code as a fatal, clearly
//   worded refusal rather than something to retry.
// - Each partition's records must be exactly one RecordBatch v2: other magic values, more than one
//   batch, and transactional or control batches are INVALID_RECORD; a truncated batch is
//   CORRUPT_MESSAGE. The batch is appended as sent (PartitionLog::AppendAsLeader stamps its offsets
//   and leader epoch); storage errors map as error_mapping.h says. A partition whose log failed
//   (handler_support.h's ServableError) answers KAFKA_STORAGE_ERROR before anything else is
//   looked at, duplicates of idempotent batches included, and exposes no log start offset.
// - acks=1 answers after the append; acks=-1 answers once the batch is durable under the topic's
//   flush policy (at once under flush.policy=never), or REQUEST_TIMED_OUT after timeout_ms for the
//   partitions still waiting.
// - An unknown topic is UNKNOWN_TOPIC_OR_PARTITION; when the broker allows auto-creation, the
//   topic is created meanwhile, so the client's retry after a metadata refresh finds it.
// - Idempotent producers: see producer_state.h. A duplicate answers NONE with the original base
//   offset (and, for acks=-1, once the original is durable).
// - log_append_time_ms is the stamped time under message.timestamp.type=LogAppendTime, else -1;
//   log_start_offset (v5+) the partition's.
#ifndef RUNNEL_BROKER_SERVER_PRODUCE_HANDLER_H_
#define RUNNEL_BROKER_SERVER_PRODUCE_HANDLER_H_

#include <cstdint>
#include <memory>

#include "broker/env/env.h"
#include "broker/protocol/messages.h"
#include "broker/server/fetch_handler.h"
#include "broker/server/handler_support.h"
#include "broker/server/producer_state.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

struct ProduceStats {
  uint64_t requests = 0;
  uint64_t batches_appended = 0;
  uint64_t bytes_appended = 0;
  uint64_t duplicates = 0;
  uint64_t errors = 0;
  uint64_t timeouts = 0;
};

class ProduceHandler {
 public:
  ProduceHandler(Env& env, TopicManager& topics, ProducerStateTable& producer_states,
                 FetchHandler& fetches, bool auto_create_topics_enable);
  ~ProduceHandler();

  ProduceHandler(const ProduceHandler&) = delete;
  ProduceHandler& operator=(const ProduceHandler&) = delete;

  // Handles one request. `respond` must be null exactly when request.acks == 0. Returns false when
  // some partition failed (the caller closes an acks=0 connection then).
  bool Handle(int16_t version, protocol::ProduceRequest request, Respond respond);

  const ProduceStats& stats() const { return stats_; }

 private:
  struct Pending;

  // Appends one partition's records; fills `out` (error or offsets). Returns the end offset to
  // wait for under acks=-1 (0 when there is nothing to wait for) and the log to wait on.
  storage::PartitionLog* ProducePartition(const std::string& topic, int32_t partition,
                                          const std::optional<std::string>& records,
                                          protocol::ProduceResponse::Partition& out,
                                          int64_t* wait_end_offset);

  Env& env_;
  TopicManager& topics_;
  ProducerStateTable& producer_states_;
  FetchHandler& fetches_;
  const bool auto_create_topics_enable_;
  ProduceStats stats_;
  std::shared_ptr<ProduceHandler*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_PRODUCE_HANDLER_H_
