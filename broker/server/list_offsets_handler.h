// ListOffsets, versions 0-5: per partition, the log start offset (timestamp -2, "earliest"), the
// high watermark (-1, "latest"; handler_support.h says why it is not the log end), or the first
// offset whose record timestamp is at or after a given time, found below the high watermark (none:
// offset -1, timestamp -1). v0 answers with a list of offsets (old_style_offsets) holding that one
// offset when there is one. Leader epoch (v4+) is the partition's. read_committed (v2+) answers
// like read_uncommitted, since Runnel has no transactions. Errors: UNKNOWN_TOPIC_OR_PARTITION,
// FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a current_leader_epoch older / newer than ours,
// KAFKA_STORAGE_ERROR (retriable; no offset) for a partition whose log failed (handler_support.h's
// ServableError) until the broker restarts.
#ifndef RUNNEL_BROKER_SERVER_LIST_OFFSETS_HANDLER_H_
#define RUNNEL_BROKER_SERVER_LIST_OFFSETS_HANDLER_H_

#include <cstdint>

#include "broker/protocol/error_codes.h"
#include "broker/protocol/messages.h"
#include "broker/server/topic_manager.h"

namespace runnel::server {

protocol::ListOffsetsResponse HandleListOffsets(int16_t version,
                                                const protocol::ListOffsetsRequest& request,
                                                const TopicManager& topics);

// The error for a client's current_leader_epoch (-1: not given) against the partition's epoch, as
// Fetch and ListOffsets check it; NONE when it matches or is not given.
protocol::ErrorCode CheckLeaderEpoch(int32_t current_leader_epoch, int32_t leader_epoch);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_LIST_OFFSETS_HANDLER_H_
