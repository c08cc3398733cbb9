// CRC-32C: published vectors, the portable and hardware implementations against each other and
// against a bit-at-a-time reference, and Extend's composition.
#include "broker/storage/crc32c.h"

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace runnel::storage {
namespace {

using ::runnel::testing::BitwiseCrc32c;
using ::runnel::testing::XorShift;

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
  XorShift random(0x9E3779B97F4A7C15);
  const std::string buffer = random.Bytes(300 + 8);
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
  XorShift random(12345);
  for (size_t length : {0, 1, 7, 8, 9, 64, 257}) {
    const std::string message = random.Bytes(length);
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
  XorShift random(777);
  const std::string data = random.Bytes(size_t{1} << 20);
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
