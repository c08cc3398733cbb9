// Big-endian (network order) integer encoding, as the Kafka protocol and Runnel's formats use.
#ifndef RUNNEL_BROKER_COMMON_BIG_ENDIAN_H_
#define RUNNEL_BROKER_COMMON_BIG_ENDIAN_H_

#include <cstdint>
#include <string>
#include <type_traits>

namespace runnel {

template <typename T>
inline void AppendBigEndian(std::string& out, T value) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U bits = static_cast<U>(value);
  char bytes[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) {
    bytes[sizeof(T) - 1 - i] = static_cast<char>(bits & 0xff);
    bits = static_cast<U>(bits >> 8);
  }
  out.append(bytes, sizeof(T));
}

// Writes `value` big-endian over the sizeof(T) bytes at `destination`.
template <typename T>
inline void StoreBigEndian(char* destination, T value) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U bits = static_cast<U>(value);
  for (size_t i = 0; i < sizeof(T); ++i) {
    destination[sizeof(T) - 1 - i] = static_cast<char>(bits & 0xff);
    bits = static_cast<U>(bits >> 8);
  }
}

// Reads a T from the first sizeof(T) bytes at `data`; the caller guarantees they exist.
template <typename T>
inline T LoadBigEndian(const char* data) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U bits = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    bits = static_cast<U>((bits << 8) | static_cast<unsigned char>(data[i]));
  }
  return static_cast<T>(bits);
}

}  // namespace runnel

#endif  // RUNNEL_BROKER_COMMON_BIG_ENDIAN_H_
