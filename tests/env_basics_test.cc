// Tests of the small value helpers under broker/env and broker/common: NetworkAddress parsing and
// printing (network.h), disk path validation and ParentDirectory (disk.h), and the big-endian
// integer codec (big_endian.h). Each is checked against literal inputs and expected outputs,
// including the error cases callers rely on to reject bad configuration.
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "broker/common/big_endian.h"
#include "broker/env/disk.h"
#include "broker/env/network.h"
#include "gtest/gtest.h"

namespace runnel {
namespace {

// "host:port" parses into host and port, and ToString prints it back unchanged, for names, IPv4
// addresses, the port range ends and a host containing dots and dashes.
TEST(NetworkAddressTest, ParsesAndPrintsHostPort) {
  for (const char* text : {"node-2:9092", "127.0.0.1:1", "broker.example.com:65535", "h:80"}) {
    absl::StatusOr<NetworkAddress> address = NetworkAddress::Parse(text);
    ASSERT_TRUE(address.ok()) << text << ": " << address.status();
    EXPECT_EQ(address->ToString(), text);
  }
  absl::StatusOr<NetworkAddress> address = NetworkAddress::Parse("node-2:9092");
  ASSERT_TRUE(address.ok());
  EXPECT_EQ(address->host, "node-2");
  EXPECT_EQ(address->port, 9092);
  EXPECT_EQ(*address, (NetworkAddress{"node-2", 9092}));
}

// IPv6 hosts are written in brackets: "[::1]:9092" parses to host "::1", and any host containing a
// colon prints with brackets, so Parse(ToString(a)) == a.
TEST(NetworkAddressTest, ParsesAndPrintsBracketedIpv6) {
  absl::StatusOr<NetworkAddress> address = NetworkAddress::Parse("[::1]:9092");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->host, "::1");
  EXPECT_EQ(address->port, 9092);
  EXPECT_EQ(address->ToString(), "[::1]:9092");

  absl::StatusOr<NetworkAddress> full = NetworkAddress::Parse("[2001:db8::42]:443");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->host, "2001:db8::42");
  EXPECT_EQ(full->port, 443);

  for (const NetworkAddress& original :
       {NetworkAddress{"fe80::1", 7000}, NetworkAddress{"node-0", 1},
        NetworkAddress{"10.0.0.1", 65535}}) {
    absl::StatusOr<NetworkAddress> again = NetworkAddress::Parse(original.ToString());
    ASSERT_TRUE(again.ok()) << original.ToString() << ": " << again.status();
    EXPECT_EQ(*again, original);
  }
}

// Malformed addresses are rejected with kInvalidArgument (never a crash or a silent default): no
// port, an empty port, a port out of range, a non-numeric or negative port, an empty host (plain or
// in brackets), unterminated or misplaced brackets, and the empty string.
TEST(NetworkAddressTest, RejectsMalformedAddresses) {
  for (const char* text :
       {"", "node-2", "node-2:", ":9092", "[]:9092", "node-2:70000", "node-2:65536",
        "node-2:4294967376", "node-2:abc", "node-2:-1", "node-2:0x50", "node-2:9092x", "[::1]",
        "[::1]9092", "[::1]:", "[::1:9092", "[a]b]:1", "junk", ":", "[]"}) {
    absl::StatusOr<NetworkAddress> address = NetworkAddress::Parse(text);
    EXPECT_FALSE(address.ok()) << "'" << text << "' parsed as " << address->ToString();
    if (!address.ok()) {
      EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << text;
    }
  }
}

// The port is plain decimal digits from 0 to 65535 (0 asks Listen for any free port): a sign or
// whitespace around the number is rejected, as is anything past 65535.
TEST(NetworkAddressTest, RejectsSignsWhitespaceAndLargePorts) {
  for (const char* text : {"node-2:+80", "node-2: 80", "node-2:80 ", "node-2:-1", "node-2:65536"}) {
    EXPECT_FALSE(NetworkAddress::Parse(text).ok()) << text;
  }
  absl::StatusOr<NetworkAddress> any_port = NetworkAddress::Parse("node-2:0");
  ASSERT_TRUE(any_port.ok());
  EXPECT_EQ(any_port->port, 0);
}

// Addresses order and compare by (host, port), so they can key ordered containers.
TEST(NetworkAddressTest, ComparesByHostThenPort) {
  EXPECT_LT((NetworkAddress{"a", 9}), (NetworkAddress{"b", 1}));
  EXPECT_LT((NetworkAddress{"a", 1}), (NetworkAddress{"a", 2}));
  EXPECT_NE((NetworkAddress{"a", 1}), (NetworkAddress{"a", 2}));
}

// ValidateDiskPath accepts relative '/'-separated paths (and "" for the root) and rejects absolute
// paths, empty components (leading, doubled or trailing slashes), "." and ".." components and NUL
// bytes, all with kInvalidArgument. Names that merely contain dots are fine.
TEST(DiskPathTest, ValidateDiskPath) {
  for (const char* path : {"", "a", "orders-0/00000000000000000000.log", "a/b/c", "...", "a/.b",
                           "a/..b", "x./y", "meta.json"}) {
    EXPECT_TRUE(ValidateDiskPath(path).ok()) << "'" << path << "'";
  }
  for (const char* path : {"/", "/a", "a/", "a//b", "./a", "a/./b", "..", "../a", "a/..", ".",
                           "a/b/", "//"}) {
    const absl::Status status = ValidateDiskPath(path);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << "'" << path << "'";
  }
  const std::string with_nul("a/b\0c", 5);
  EXPECT_EQ(ValidateDiskPath(with_nul).code(), absl::StatusCode::kInvalidArgument);
}

// ParentDirectory returns the part before the last '/', and "" for a top-level name or the root.
TEST(DiskPathTest, ParentDirectory) {
  EXPECT_EQ(ParentDirectory("a/b/c"), "a/b");
  EXPECT_EQ(ParentDirectory("a/b"), "a");
  EXPECT_EQ(ParentDirectory("c"), "");
  EXPECT_EQ(ParentDirectory(""), "");
  EXPECT_EQ(ParentDirectory("orders-0/00000000000000000000.log"), "orders-0");
}

template <typename T>
T RoundTrip(T value) {
  std::string bytes;
  AppendBigEndian(bytes, value);
  EXPECT_EQ(bytes.size(), sizeof(T));
  return LoadBigEndian<T>(bytes.data());
}

// AppendBigEndian writes the most significant byte first and appends rather than overwrites, and
// LoadBigEndian reads most significant byte first, both checked against literal byte strings,
// including negative values in two's complement.
TEST(BigEndianTest, EncodesMostSignificantByteFirst) {
  std::string bytes = "x";
  AppendBigEndian<uint32_t>(bytes, 0x01020304u);
  EXPECT_EQ(bytes, std::string("x\x01\x02\x03\x04", 5));

  bytes.clear();
  AppendBigEndian<int16_t>(bytes, -2);
  EXPECT_EQ(bytes, std::string("\xff\xfe", 2));

  bytes.clear();
  AppendBigEndian<int64_t>(bytes, -1);
  EXPECT_EQ(bytes, std::string(8, '\xff'));

  bytes.clear();
  AppendBigEndian<int32_t>(bytes, std::numeric_limits<int32_t>::min());
  EXPECT_EQ(bytes, std::string("\x80\x00\x00\x00", 4));

  bytes.clear();
  AppendBigEndian<uint8_t>(bytes, 0xab);
  AppendBigEndian<uint16_t>(bytes, 0xcdef);
  EXPECT_EQ(bytes, std::string("\xab\xcd\xef", 3));

  EXPECT_EQ(LoadBigEndian<uint16_t>("\x12\x34"), 0x1234);
  EXPECT_EQ(LoadBigEndian<int16_t>("\x80\x00"), std::numeric_limits<int16_t>::min());
  EXPECT_EQ(LoadBigEndian<int32_t>("\xff\xff\xff\xfe"), -2);
  EXPECT_EQ(LoadBigEndian<uint64_t>("\x01\x02\x03\x04\x05\x06\x07\x08"), 0x0102030405060708ULL);
}

// LoadBigEndian(AppendBigEndian(v)) == v for every width and signedness: all 8-bit values, a
// sweep of 16-bit values, the extremes and small values around zero of the wider types, rotating
// bit patterns that touch every byte, and values read from inside a larger buffer.
TEST(BigEndianTest, RoundTripsEveryWidthIncludingNegatives) {
  for (int v = -128; v <= 127; ++v) EXPECT_EQ(RoundTrip<int8_t>(static_cast<int8_t>(v)), v);
  for (int v = 0; v <= 255; ++v) EXPECT_EQ(RoundTrip<uint8_t>(static_cast<uint8_t>(v)), v);
  for (int v = -32768; v <= 32767; v += 7) {
    EXPECT_EQ(RoundTrip<int16_t>(static_cast<int16_t>(v)), v);
  }
  for (int32_t v : {std::numeric_limits<int32_t>::min(), -65536, -1, 0, 1, 255, 256,
                    std::numeric_limits<int32_t>::max()}) {
    EXPECT_EQ(RoundTrip(v), v);
  }
  for (int64_t v : {std::numeric_limits<int64_t>::min(), int64_t{-1} << 40, int64_t{-1},
                    int64_t{0}, int64_t{1}, std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(RoundTrip(v), v);
  }
  EXPECT_EQ(RoundTrip(std::numeric_limits<uint64_t>::max()), std::numeric_limits<uint64_t>::max());
  // A sweep of patterns touching every byte position, in both signednesses.
  uint64_t pattern = 0x0123456789abcdefULL;
  for (int i = 0; i < 64; ++i) {
    pattern = (pattern << 1) | (pattern >> 63);
    EXPECT_EQ(RoundTrip(pattern), pattern);
    EXPECT_EQ(RoundTrip(static_cast<int64_t>(pattern)), static_cast<int64_t>(pattern));
    EXPECT_EQ(RoundTrip(static_cast<uint32_t>(pattern)), static_cast<uint32_t>(pattern));
    EXPECT_EQ(RoundTrip(static_cast<int32_t>(pattern)), static_cast<int32_t>(pattern));
  }
  // Values read from the middle of a larger buffer.
  std::string buffer;
  AppendBigEndian<int32_t>(buffer, -12345);
  AppendBigEndian<int64_t>(buffer, -9876543210LL);
  AppendBigEndian<int16_t>(buffer, -7);
  EXPECT_EQ(LoadBigEndian<int32_t>(buffer.data()), -12345);
  EXPECT_EQ(LoadBigEndian<int64_t>(buffer.data() + 4), -9876543210LL);
  EXPECT_EQ(LoadBigEndian<int16_t>(buffer.data() + 12), -7);
}

}  // namespace
}  // namespace runnel
