// Big-endian (network order) integer encoding, as the Kafka protocol and Runnel's formats use.
#ifndef RUNNEL_BROKER_COMMON_BIG_ENDIAN_H_
#define RUNNEL_BROKER_COMMON_BIG_ENDIAN_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace runnel {

namespace big_endian_internal {

// `bits` with its bytes reversed on a little-endian machine, unchanged on a big-endian one: the
// conversion between host and network order, which compilers turn into one instruction.
template <typename U>
inline U HostToNetwork(U bits) {
  static_assert(std::is_unsigned_v<U>);
  if constexpr (std::endian::native == std::endian::big || sizeof(U) == 1) {
    return bits;
  } else if constexpr (sizeof(U) == 2) {
    return __builtin_bswap16(bits);
  } else if constexpr (sizeof(U) == 4) {
    return __builtin_bswap32(bits);
  } else {
    static_assert(sizeof(U) == 8);
    return __builtin_bswap64(bits);
  }
}

}  // namespace big_endian_internal

template <typename T>
inline void AppendBigEndian(std::string& out, T value) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  const U bits = big_endian_internal::HostToNetwork(static_cast<U>(value));
  char bytes[sizeof(T)];
  std::memcpy(bytes, &bits, sizeof(T));
  out.append(bytes, sizeof(T));
}

// Writes `value` big-endian over the sizeof(T) bytes at `destination`.
template <typename T>
inline void StoreBigEndian(char* destination, T value) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  const U bits = big_endian_internal::HostToNetwork(static_cast<U>(value));
  std::memcpy(destination, &bits, sizeof(T));
}

// Reads a T from the first sizeof(T) bytes at `data`; the caller guarantees they exist.
template <typename T>
inline T LoadBigEndian(const char* data) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U bits;
  std::memcpy(&bits, data, sizeof(T));
  return static_cast<T>(big_endian_internal::HostToNetwork(bits));
}

}  // namespace runnel

#endif  // RUNNEL_BROKER_COMMON_BIG_ENDIAN_H_
