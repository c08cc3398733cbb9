// Zigzag varints, as Kafka's record format (RecordBatch v2) writes its lengths and deltas: the same
// encoding as protobuf's sint32/sint64. A signed value is first zigzag-mapped (0, -1, 1, -2, ... to
// 0, 1, 2, 3, ...) so that small magnitudes of either sign stay short, then written 7 bits at a
// time, least significant group first, with the high bit of each byte set when another byte
// follows.
//
// Decoding is bounded and strict: a varint (32-bit) takes at most kVarintBytesMax bytes and a
// varlong (64-bit) at most kVarlongBytesMax; an encoding that runs out of input, runs longer, or
// carries bits beyond the value's width in its last byte is malformed. (Kafka's Java reader ignores
// such excess bits; no encoder produces them, and accepting them would give one value two
// meanings.) Overlong encodings of small values (0x80 0x00 for 0) are accepted, as Kafka accepts
// them.
#ifndef RUNNEL_BROKER_COMMON_VARINT_H_
#define RUNNEL_BROKER_COMMON_VARINT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace runnel {

inline constexpr size_t kVarintBytesMax = 5;    // ceil(32 / 7)
inline constexpr size_t kVarlongBytesMax = 10;  // ceil(64 / 7)

// Each byte carries 7 value bits; its high bit says another byte follows.
inline constexpr unsigned kVarintGroupBits = 7;
inline constexpr uint8_t kVarintContinuation = 0x80;
inline constexpr uint8_t kVarintGroupMask = 0x7f;

inline constexpr uint32_t ZigzagEncode32(int32_t value) {
  // value >> 31 is all ones for a negative value (arithmetic shift, defined since C++20).
  return (static_cast<uint32_t>(value) << 1) ^ static_cast<uint32_t>(value >> 31);
}
inline constexpr uint64_t ZigzagEncode64(int64_t value) {
  return (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
}
inline constexpr int32_t ZigzagDecode32(uint32_t bits) {
  return static_cast<int32_t>((bits >> 1) ^ (0u - (bits & 1u)));
}
inline constexpr int64_t ZigzagDecode64(uint64_t bits) {
  return static_cast<int64_t>((bits >> 1) ^ (uint64_t{0} - (bits & 1u)));
}

// Bytes an unsigned value takes in base-128 groups: at least one.
inline constexpr size_t UnsignedVarintBytes(uint64_t bits) {
  size_t bytes = 1;
  while (bits > kVarintGroupMask) {
    bits >>= kVarintGroupBits;
    ++bytes;
  }
  return bytes;
}
inline constexpr size_t VarintBytes(int32_t value) {
  return UnsignedVarintBytes(ZigzagEncode32(value));
}
inline constexpr size_t VarlongBytes(int64_t value) {
  return UnsignedVarintBytes(ZigzagEncode64(value));
}

inline void AppendUnsignedVarint(std::string& out, uint64_t bits) {
  char bytes[kVarlongBytesMax];
  size_t length = 0;
  while (bits > kVarintGroupMask) {
    bytes[length++] = static_cast<char>((bits & kVarintGroupMask) | kVarintContinuation);
    bits >>= kVarintGroupBits;
  }
  bytes[length++] = static_cast<char>(bits);
  out.append(bytes, length);
}
inline void AppendVarint(std::string& out, int32_t value) {
  AppendUnsignedVarint(out, ZigzagEncode32(value));
}
inline void AppendVarlong(std::string& out, int64_t value) {
  AppendUnsignedVarint(out, ZigzagEncode64(value));
}

namespace varint_internal {

// Reads base-128 groups of a `value_bits`-wide unsigned value from the front of `*input`, at most
// `bytes_max` of them. Advances `*input` only on success.
inline std::optional<uint64_t> ConsumeUnsigned(absl::string_view* input, size_t bytes_max,
                                               unsigned value_bits) {
  uint64_t bits = 0;
  for (size_t i = 0; i < bytes_max; ++i) {
    if (i >= input->size()) return std::nullopt;  // Ran out of input mid-varint.
    const uint8_t byte = static_cast<uint8_t>((*input)[i]);
    const unsigned shift = static_cast<unsigned>(i) * kVarintGroupBits;
    if (i + 1 == bytes_max) {
      // The last permitted byte holds only the value's remaining bits, and so no continuation bit.
      const unsigned bits_left = value_bits - shift;
      if ((byte >> bits_left) != 0) return std::nullopt;
    }
    bits |= static_cast<uint64_t>(byte & kVarintGroupMask) << shift;
    if ((byte & kVarintContinuation) == 0) {
      input->remove_prefix(i + 1);
      return bits;
    }
  }
  return std::nullopt;  // Unreachable: the last byte's check above rejects a continuation bit.
}

}  // namespace varint_internal

// Reads a zigzag varint (at most kVarintBytesMax bytes) from the front of `*input` and advances
// past it. Returns nullopt, leaving `*input` unchanged, if the encoding is malformed (see above).
inline std::optional<int32_t> ConsumeVarint(absl::string_view* input) {
  const std::optional<uint64_t> bits =
      varint_internal::ConsumeUnsigned(input, kVarintBytesMax, /*value_bits=*/32);
  if (!bits.has_value()) return std::nullopt;
  return ZigzagDecode32(static_cast<uint32_t>(*bits));
}

// Reads a zigzag varlong (at most kVarlongBytesMax bytes) likewise.
inline std::optional<int64_t> ConsumeVarlong(absl::string_view* input) {
  const std::optional<uint64_t> bits =
      varint_internal::ConsumeUnsigned(input, kVarlongBytesMax, /*value_bits=*/64);
  if (!bits.has_value()) return std::nullopt;
  return ZigzagDecode64(*bits);
}

// Reads a plain (not zigzag) unsigned 32-bit varint, as Kafka's flexible protocol versions write
// tagged-field counts, tags and sizes, with the same bounds and strictness as ConsumeVarint.
inline std::optional<uint32_t> ConsumeUnsignedVarint32(absl::string_view* input) {
  const std::optional<uint64_t> bits =
      varint_internal::ConsumeUnsigned(input, kVarintBytesMax, /*value_bits=*/32);
  if (!bits.has_value()) return std::nullopt;
  return static_cast<uint32_t>(*bits);
}

}  // namespace runnel

#endif  // RUNNEL_BROKER_COMMON_VARINT_H_
