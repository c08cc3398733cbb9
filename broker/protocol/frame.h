// Kafka's framing and message headers.
//
// On a connection each message is a frame: a 4-byte big-endian int32 size, then that many bytes.
// A request frame holds a request header and the request body; a response frame a response header
// and the response body. Responses on one connection go back in request order.
//
// Request header, all integers big-endian:
//   v0: api_key int16, api_version int16, correlation_id int32
//   v1: v0 + client_id nullable string (int16 length, -1 for null)
//   v2: v1 + tagged fields (unsigned varint count, then per field: unsigned varint tag, unsigned
//       varint size, size bytes). The client id keeps its int16 length even here, so that any
//       broker can read the header of any ApiVersions request.
// Response header v0: correlation_id int32. (v1, flexible, adds tagged fields; ApiVersions
// responses always use v0, and Runnel sends no other flexible response.)
#ifndef RUNNEL_BROKER_PROTOCOL_FRAME_H_
#define RUNNEL_BROKER_PROTOCOL_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/protocol/api_versions.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol {

// The largest frame accepted, size prefix excluded: Kafka's socket.request.max.bytes default
// (100 MiB). A peer announcing more, or a negative size, is broken or hostile, and the connection
// is closed rather than buffering toward it.
inline constexpr int32_t kFrameBytesMax = 100 * 1024 * 1024;
inline constexpr size_t kFrameSizePrefixBytes = 4;

struct RequestHeader {
  ApiKey api_key = ApiKey::kApiVersions;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string> client_id;
  friend bool operator==(const RequestHeader&, const RequestHeader&) = default;
};

struct ResponseHeader {
  int32_t correlation_id = 0;
  friend bool operator==(const ResponseHeader&, const ResponseHeader&) = default;
};

// Reads a request header of `header_version` (0, 1 or 2) from the front of `*reader`. Tagged
// fields of v2 are skipped (none is defined that Runnel needs). Fails with kInvalidArgument on a
// short or malformed header.
absl::Status DecodeRequestHeader(WireReader* reader, int16_t header_version, RequestHeader* header);

// Appends a request header of `header_version` (0, 1 or 2; v2 with no tagged fields). Fails with
// kInvalidArgument, appending nothing, when the client id is longer than kStringBytesMax.
absl::Status EncodeRequestHeader(const RequestHeader& header, int16_t header_version,
                                 std::string* out);

// The outcome of looking at the front of a byte stream for one frame.
struct FrameSplit {
  // The frame's contents after the size prefix; empty when `complete` is false.
  absl::string_view body;
  // Whether a whole frame is present; when false, more bytes are needed.
  bool complete = false;
  // Bytes the frame takes in the stream, size prefix included (0 when incomplete).
  size_t frame_bytes = 0;
};

// Looks for one whole frame at the front of `stream`. Fails with kInvalidArgument when the size
// prefix is negative or larger than `frame_bytes_max` (as soon as the 4 prefix bytes are there,
// before the body arrives): the connection must then be closed.
absl::StatusOr<FrameSplit> SplitFrame(absl::string_view stream,
                                      int32_t frame_bytes_max = kFrameBytesMax);

// Reassembles frames from a connection's bytes, which arrive in chunks of any size.
//
//   reader.Append(chunk);
//   while (true) {
//     absl::StatusOr<std::optional<absl::string_view>> body = reader.Next();
//     if (!body.ok()) { close the connection; break; }
//     if (!body->has_value()) break;            // wait for more bytes
//     handle(**body);                          // valid until the next Append or Next
//   }
//
// Buffers at most one frame plus one chunk. After an error every later Next returns the same
// error and Append discards its input.
class FrameReader {
 public:
  explicit FrameReader(int32_t frame_bytes_max = kFrameBytesMax)
      : frame_bytes_max_(frame_bytes_max) {}

  void Append(absl::string_view chunk);
  // The next complete frame's body, nullopt when none is complete yet.
  absl::StatusOr<std::optional<absl::string_view>> Next();
  // Bytes received and not yet returned as frames.
  size_t buffered_bytes() const { return buffer_.size() - consumed_bytes_; }

 private:
  int32_t frame_bytes_max_;
  std::string buffer_;
  // Bytes at the front of buffer_ already returned; dropped lazily so that a burst of small
  // frames does not shift the buffer once per frame.
  size_t consumed_bytes_ = 0;
  absl::Status error_;
};

// Completes a frame built after kFrameSizePrefixBytes placeholder bytes: writes the length of
// what follows them into them. Fails with kInvalidArgument when that length exceeds
// kFrameBytesMax, which no peer would accept.
absl::Status FinishFrame(std::string* frame);

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_FRAME_H_
