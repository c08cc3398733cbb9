// Test support for the Kafka codec: a visitor that fills any message with values drawn from a
// source of randomness (a deterministic generator here, rapidcheck in property tests), only in
// the fields that exist at a version and with null only where that version allows it, so that
// encoding then decoding a filled message must give it back exactly; and the seed corpus of the
// request fuzzer, built from such messages.
#ifndef RUNNEL_TESTS_PROTOCOL_TEST_SUPPORT_H_
#define RUNNEL_TESTS_PROTOCOL_TEST_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "broker/protocol/codec.h"
#include "broker/protocol/schema.h"

namespace runnel::protocol::testing {

// Small bounds keep filled messages small; they still exercise every field and nesting level.
inline constexpr size_t kFillStringBytesMax = 12;
inline constexpr size_t kFillRecordsBytesMax = 80;
inline constexpr size_t kFillArrayElementsMax = 3;

// A deterministic source (SplitMix64), so that every failure reproduces from its seed.
class SeededSource {
 public:
  explicit SeededSource(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound).
  uint64_t Below(uint64_t bound) { return Next() % bound; }
  template <typename T>
  T Int() {
    // Mostly small values, sometimes the extremes, as real messages and edge cases have.
    switch (Below(4)) {
      case 0:
        return static_cast<T>(Below(8));
      case 1:
        return static_cast<T>(-1);
      default:
        return static_cast<T>(Next());
    }
  }
  std::string String(size_t bytes_max) {
    std::string value(Below(bytes_max + 1), '\0');
    for (char& c : value) c = static_cast<char>(Next());
    return value;
  }

 private:
  uint64_t state_;
};

template <typename Source>
class FillVisitor {
 public:
  FillVisitor(Source* source, int16_t version) : source_(source), version_(version) {}

  void Int8(const char*, int8_t& field, Versions versions = kAllVersions) { Fill(field, versions); }
  void Int16(const char*, int16_t& field, Versions versions = kAllVersions) {
    Fill(field, versions);
  }
  void Int32(const char*, int32_t& field, Versions versions = kAllVersions) {
    Fill(field, versions);
  }
  void Int64(const char*, int64_t& field, Versions versions = kAllVersions) {
    Fill(field, versions);
  }
  void Bool(const char*, bool& field, Versions versions = kAllVersions) {
    if (versions.Contains(version_)) field = source_->Below(2) == 1;
  }
  void String(const char*, std::string& field, Versions versions = kAllVersions) {
    if (versions.Contains(version_)) field = source_->String(kFillStringBytesMax);
  }
  void NullableString(const char*, std::optional<std::string>& field,
                      Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    FillNullable(field, versions, nullable, kFillStringBytesMax);
  }
  void Bytes(const char*, std::string& field, Versions versions = kAllVersions) {
    if (versions.Contains(version_)) field = source_->String(kFillStringBytesMax);
  }
  void NullableBytes(const char*, std::optional<std::string>& field,
                     Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    FillNullable(field, versions, nullable, kFillStringBytesMax);
  }
  void Records(const char*, std::optional<std::string>& field, Versions versions = kAllVersions) {
    FillNullable(field, versions, kAllVersions, kFillRecordsBytesMax);
  }
  template <typename T>
  void Array(const char*, std::vector<T>& field, Versions versions = kAllVersions) {
    if (versions.Contains(version_)) FillElements(field);
  }
  template <typename T>
  void NullableArray(const char*, std::optional<std::vector<T>>& field,
                     Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!versions.Contains(version_)) return;
    if (nullable.Contains(version_) && source_->Below(4) == 0) {
      field.reset();
      return;
    }
    FillElements(field.emplace());
  }

 private:
  template <typename T>
  void Fill(T& field, Versions versions) {
    if (versions.Contains(version_)) field = source_->template Int<T>();
  }
  void FillNullable(std::optional<std::string>& field, Versions versions, Versions nullable,
                    size_t bytes_max) {
    if (!versions.Contains(version_)) return;
    if (nullable.Contains(version_) && source_->Below(4) == 0) {
      field.reset();
    } else {
      field = source_->String(bytes_max);
    }
  }
  template <typename T>
  void FillElements(std::vector<T>& elements) {
    elements.resize(source_->Below(kFillArrayElementsMax + 1));
    for (T& element : elements) {
      if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>) {
        element = source_->template Int<T>();
      } else if constexpr (std::is_same_v<T, std::string>) {
        element = source_->String(kFillStringBytesMax);
      } else {
        T::Fields(element, *this);
      }
    }
  }

  Source* source_;
  int16_t version_;
};

template <typename Message, typename Source>
Message FillMessage(Source* source, int16_t version) {
  Message message;
  FillVisitor<Source> visitor(source, version);
  Message::Fields(message, visitor);
  return message;
}

// A filled body of the variant's alternative for `api` (which must be in kSupportedApis).
template <typename Variant, typename Source>
Variant FillBody(ApiKey api, Source* source, int16_t version) {
  std::optional<Variant> body;
  [&]<size_t... I>(std::index_sequence<I...>) {
    ((std::variant_alternative_t<I, Variant>::kApiKey == api
          ? (body.emplace(FillMessage<std::variant_alternative_t<I, Variant>>(source, version)),
             true)
          : false) ||
     ...);
  }(std::make_index_sequence<std::variant_size_v<Variant>>());
  return std::move(*body);
}

// One file of the request fuzzer's seed corpus: a request frame's contents (no size prefix).
struct CorpusFile {
  std::string name;
  std::string bytes;
};

// The seed corpus: one filled request of every supported api at every supported version, plus
// the ApiVersions v3 request librdkafka opens with. Deterministic; fuzz/corpus/request_decode
// holds exactly these files (tests check it; fuzz/make_request_corpus rewrites it).
std::vector<CorpusFile> RequestCorpus();

// ApiVersions v3 as librdkafka 2.0.2 sends it (request header v2; client software name and
// version as compact strings; empty tagged fields), frame contents without the size prefix.
std::string LibrdkafkaApiVersionsV3Request(int32_t correlation_id);

}  // namespace runnel::protocol::testing

#endif  // RUNNEL_TESTS_PROTOCOL_TEST_SUPPORT_H_
