// The node's metadata file, "__runnel_metadata" in the data directory (topic_manager.h describes
// the directory): the one home of its format.
//
// Until a controller quorum exists, a node persists the topic part of its own metadata image: each
// topic's name, id, partition count and config overrides. Leaders, replicas and ISRs are not
// stored: on a single node they follow from the node id (metadata_image.h).
//
// Format (integers big-endian):
//   u32 magic 0x524E4D44 ("RNMD"), u16 version 1, u16 zero
//   u32 body length                   bytes between this field and the CRC
//   body:
//     u32 topic count                 at most kTopicsMax; topics follow in increasing name order
//     per topic:
//       u16 name length, name bytes   a valid topic name (topic_config.h)
//       16 bytes topic id             non-zero, unique in the file
//       i32 partition count           1 .. kPartitionsPerTopicMax
//       u16 config count              then per config, in increasing name order:
//         u16 name length, name bytes, u16 value length, value bytes (canonical text)
//   u32 CRC-32C of every byte before it
//
// The file is replaced atomically: written whole to "__runnel_metadata.tmp", synced, renamed over
// "__runnel_metadata", and the directory synced. So a file that fails its checks is damaged media
// (or a bug), never a torn write, and is reported, never repaired.
#ifndef RUNNEL_BROKER_SERVER_METADATA_FILE_H_
#define RUNNEL_BROKER_SERVER_METADATA_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/server/metadata_image.h"
#include "broker/server/topic_config.h"

namespace runnel::server {

inline constexpr char kMetadataFileName[] = "__runnel_metadata";
inline constexpr char kMetadataTempFileName[] = "__runnel_metadata.tmp";
// Preamble (8), body length (4) and CRC (4).
inline constexpr size_t kMetadataFileOverheadBytes = 16;
// The largest metadata file accepted: kTopicsMax topics of the longest name with every config set
// stays far below it.
inline constexpr size_t kMetadataFileBytesMax = size_t{64} << 20;

struct PersistedTopic {
  std::string name;
  TopicId id;
  int32_t partition_count = 0;
  TopicConfigOverrides configs;

  friend bool operator==(const PersistedTopic&, const PersistedTopic&) = default;
};

// The topics of `image`, by name.
std::vector<PersistedTopic> PersistedTopicsOf(const MetadataImage& image);

// Encodes topics given in increasing name order (asserted), each valid as the format says.
std::string EncodeMetadataFile(const std::vector<PersistedTopic>& topics);

// Decodes and checks a file's contents. kDataLoss says what is wrong (size, magic, version,
// checksum, or a field out of range) without naming the file; the caller adds where it was read.
absl::StatusOr<std::vector<PersistedTopic>> DecodeMetadataFile(absl::string_view bytes);

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_METADATA_FILE_H_
