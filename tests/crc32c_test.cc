// CRC-32C: published vectors, the portable and hardware implementations against each other and
// against a bit-at-a-time reference, and Extend's composition.
#include "broker/storage/crc32c.h"

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace runnel::storage {
namespace {

// The definition of CRC-32C, one bit at a time: slow, and too simple to share a bug with the
// table-driven or hardware code.
uint32_t BitwiseCrc32c(absl::string_view data) {
  uint32_t crc = 0xFFFFFFFF;
  for (char c : data) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
  }
  return ~crc;
}

// A small deterministic generator, so failures reproduce.
uint64_t NextRandom(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

std::string RandomBytes(uint64_t& state, size_t length) {
  std::string bytes(length, '\0');
  for (char& c : bytes) c = static_cast<char>(NextRandom(state));
  return bytes;
}

// Each implementation, so that every vector test covers each one the CPU can run.
struct Implementation {
  const char* name;
  uint32_t (*extend)(uint32_t, absl::string_view);
};

std::vector<Implementation> Implementations() {
  std::vector<Implementation> implementations = {{"portable", &Crc32cPortable},
                                                 {"dispatching", &Crc32cExtend}};
  if (Crc32cHardwareAvailable()) implementations.push_back({"hardware", &Crc32cHardware});
  return implementations;
}

// Checks the check value from the CRC catalogue and the iSCSI vectors of RFC 3720 B.4, for every
// implementation and for the bitwise reference.
TEST(Crc32cTest, KnownVectors) {
  std::string zeros(32, '\0');
  std::string ones(32, '\xff');
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  const struct {
    std::string data;
    uint32_t crc;
  } vectors[] = {
      {"", 0x00000000},   {"123456789", 0xE3069283}, {zeros, 0x8A9136AA},
      {ones, 0x62A8AB43}, {ascending, 0x46DD794E},   {descending, 0x113FDB5C},
  };
  for (const auto& vector : vectors) {
    EXPECT_EQ(BitwiseCrc32c(vector.data), vector.crc);
    EXPECT_EQ(Crc32c(vector.data), vector.crc);
    for (const Implementation& implementation : Implementations()) {
      EXPECT_EQ(implementation.extend(0, vector.data), vector.crc) << implementation.name;
    }
  }
}

// Checks that the implementations agree with the reference on random data of every length from 0
// to 300 (covering every tail length of the 8-byte loops, several times over) at every start
// alignment 0..7, by CRCing substrings of one buffer.
TEST(Crc32cTest, ImplementationsAgreeOnEveryLengthAndAlignment) {
  uint64_t state = 0x9E3779B97F4A7C15;
  const std::string buffer = RandomBytes(state, 300 + 8);
  for (size_t start = 0; start < 8; ++start) {
    for (size_t length = 0; length <= 300; ++length) {
      const absl::string_view data = absl::string_view(buffer).substr(start, length);
      const uint32_t expected = BitwiseCrc32c(data);
      ASSERT_EQ(Crc32cPortable(0, data), expected) << "start " << start << " length " << length;
      ASSERT_EQ(Crc32c(data), expected) << "start " << start << " length " << length;
      if (Crc32cHardwareAvailable()) {
        ASSERT_EQ(Crc32cHardware(0, data), expected) << "start " << start << " length " << length;
      }
    }
  }
}

// Checks that Extend composes: the CRC of a + b equals Extend(CRC(a), b) for every split point of
// random messages, in every implementation, including splits at 0 and at the end.
TEST(Crc32cTest, ExtendComposes) {
  uint64_t state = 12345;
  for (size_t length : {0, 1, 7, 8, 9, 64, 257}) {
    const std::string message = RandomBytes(state, length);
    const uint32_t whole = Crc32c(message);
    for (size_t split = 0; split <= length; ++split) {
      const absl::string_view first = absl::string_view(message).substr(0, split);
      const absl::string_view second = absl::string_view(message).substr(split);
      for (const Implementation& implementation : Implementations()) {
        EXPECT_EQ(implementation.extend(implementation.extend(0, first), second), whole)
            << implementation.name << " length " << length << " split " << split;
      }
    }
  }
}

// Checks a large buffer (1 MiB) the same way, so that long runs of the word loop are covered.
TEST(Crc32cTest, LargeBufferMatchesReference) {
  uint64_t state = 777;
  const std::string data = RandomBytes(state, size_t{1} << 20);
  const uint32_t expected = BitwiseCrc32c(data);
  EXPECT_EQ(Crc32cPortable(0, data), expected);
  EXPECT_EQ(Crc32c(data), expected);
}

// Checks that the CPU check is stable and that this machine (x86-64 CI) reports what CPUID says;
// on a CPU without SSE4.2 the dispatching function must still work (covered above).
TEST(Crc32cTest, HardwareCheckIsStable) {
  EXPECT_EQ(Crc32cHardwareAvailable(), Crc32cHardwareAvailable());
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(Crc32cHardwareAvailable(), __builtin_cpu_supports("sse4.2") != 0);
#endif
}

}  // namespace
}  // namespace runnel::storage
