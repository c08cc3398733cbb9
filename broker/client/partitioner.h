// The producer's default partitioner, compatible with Kafka's Java client for keyed records: a
// record with a key goes to partition toPositive(murmur2(key)) % partition_count, so Runnel's
// producer and Kafka's place the same key in the same partition. Records without a key are spread
// round-robin (Kafka 2.4+ uses a "sticky" partitioner instead; the placement of unkeyed records is
// not a contract in either).
#ifndef RUNNEL_BROKER_CLIENT_PARTITIONER_H_
#define RUNNEL_BROKER_CLIENT_PARTITIONER_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace runnel::client {

// Kafka's Utils.murmur2: 32-bit MurmurHash2 with seed 0x9747b28c, as a signed int like Java's.
int32_t Murmur2(absl::string_view data);

// Kafka's Utils.toPositive: clears the sign bit (not abs(), so INT32_MIN maps to 0).
inline int32_t ToPositive(int32_t number) { return number & 0x7fffffff; }

// The partition of a keyed record; partition_count must be positive.
int32_t PartitionForKey(absl::string_view key, int32_t partition_count);

}  // namespace runnel::client

#endif  // RUNNEL_BROKER_CLIENT_PARTITIONER_H_
