// The schema mechanism of Runnel's Kafka codec: every message is a plain struct that lists its
// fields once, in wire order, each with its wire type and the versions it exists in, in a static
// member function
//
//   static void Fields(auto& m, auto& v) {
//     v.NullableString("transactional_id", m.transactional_id, Since(3));
//     v.Int16("acks", m.acks);
//     v.Array("topic_data", m.topic_data);
//   }
//
// and the visitors below walk that list: Decoder (bytes to struct), Encoder (struct to bytes),
// SizeCounter (exact and minimum encoded sizes) and Printer (a debug string). One visitor of each
// kind serves every message at every version; nothing is written per field per message except the
// list itself. `m` is the message (const for the encoder, size counter and printer) and `v` the
// visitor.
//
// Field kinds, with their non-flexible wire encodings (all integers big-endian):
//   Int8 / Int16 / Int32 / Int64   fixed width, two's complement
//   Bool                           one byte; 0 is false, anything else reads as true (as in Kafka)
//   String                         int16 length, then bytes; never null (length -1 is an error)
//   NullableString                 likewise, length -1 for null
//   Bytes / NullableBytes          int32 length, then bytes; -1 for null where nullable
//   Records                        like NullableBytes, holding RecordBatch data that the codec
//                                  keeps as an opaque string and never parses
//   Array / NullableArray          int32 count, then each element; -1 for null where nullable.
//                                  Elements are int32, int64, std::string (a String) or a struct
//                                  with its own Fields.
// A field outside its Versions is neither read nor written: decoding leaves the struct member at
// its default (the struct's member initializer, which follows Kafka's schema default) and
// encoding drops whatever value it holds. Nullable kinds take a second Versions saying where null
// is allowed (default: wherever the field exists); encoding null outside it is an error.
//
// Strings are kept as the bytes sent; the codec does not validate UTF-8.
#ifndef RUNNEL_BROKER_PROTOCOL_SCHEMA_H_
#define RUNNEL_BROKER_PROTOCOL_SCHEMA_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "broker/common/big_endian.h"

namespace runnel::protocol {

// --- Versions ---

inline constexpr int16_t kVersionLast = std::numeric_limits<int16_t>::max();

// An inclusive range of api versions; empty when min > max.
struct Versions {
  int16_t min = 0;
  int16_t max = kVersionLast;
  constexpr bool Contains(int16_t version) const { return min <= version && version <= max; }
};

inline constexpr Versions kAllVersions{0, kVersionLast};
constexpr Versions Since(int16_t first) { return {first, kVersionLast}; }
constexpr Versions Between(int16_t first, int16_t last) { return {first, last}; }
constexpr Versions Only(int16_t version) { return {version, version}; }

// --- Wire limits ---

// Length prefixes: a String's is an int16, a Bytes' or Records' and an Array's count an int32.
inline constexpr size_t kStringBytesMax = std::numeric_limits<int16_t>::max();
inline constexpr size_t kBytesMax = std::numeric_limits<int32_t>::max();
inline constexpr size_t kArrayElementsMax = std::numeric_limits<int32_t>::max();
// The deepest nesting of arrays any schema has is 3 (Metadata: topics, partitions, replica
// nodes). The visitors refuse to go deeper than this, so no input can drive them into deep
// recursion even if a schema were written wrongly.
inline constexpr size_t kSchemaDepthMax = 8;
// The null marker of a nullable length or count.
inline constexpr int32_t kNullLength = -1;

// --- Where in a message a visitor is, for error messages ---

class FieldPath {
 public:
  // Enters the elements of the array `name`. Returns false, changing nothing, when that would
  // exceed kSchemaDepthMax.
  bool Push(const char* name) {
    if (depth_ == kSchemaDepthMax) return false;
    steps_[depth_++] = Step{name, 0};
    return true;
  }
  void SetIndex(size_t index) { steps_[depth_ - 1].index = index; }
  void Pop() { --depth_; }
  // "topic_data[0].partition_data[2].records" for the field `name` at the current position, or
  // just the position ("replica_nodes[3]") when `name` is null (an element of a primitive array).
  std::string Describe(const char* name) const;

 private:
  struct Step {
    const char* name = nullptr;
    size_t index = 0;
  };
  std::array<Step, kSchemaDepthMax> steps_{};
  size_t depth_ = 0;
};

// What every visitor shares: the version, the position, and the first error.
class VisitorBase {
 public:
  VisitorBase(int16_t version, absl::string_view message_name)
      : version_(version), message_name_(message_name) {}

  int16_t version() const { return version_; }
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }

 protected:
  // Whether a field in `versions` is to be visited: it exists in this version and nothing failed.
  bool Active(Versions versions) const { return status_.ok() && versions.Contains(version_); }
  // Records the first error as kInvalidArgument naming the message, version and field; later
  // calls do nothing, and every visit after the first error is skipped.
  void Fail(const char* name, absl::string_view problem);

  FieldPath path_;

 private:
  int16_t version_;
  absl::string_view message_name_;
  absl::Status status_;
};

// --- Wire reading ---

// A bounded cursor over the bytes being decoded: every read checks the bytes left first.
class WireReader {
 public:
  explicit WireReader(absl::string_view input) : rest_(input) {}

  size_t remaining() const { return rest_.size(); }
  absl::string_view rest() const { return rest_; }

  template <typename T>
  bool ReadInt(T* value) {
    if (rest_.size() < sizeof(T)) return false;
    *value = LoadBigEndian<T>(rest_.data());
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool ReadBytes(size_t count, absl::string_view* bytes) {
    if (rest_.size() < count) return false;
    *bytes = rest_.substr(0, count);
    rest_.remove_prefix(count);
    return true;
  }
  // A plain unsigned varint of at most 32 bits (flexible versions' tagged fields).
  bool ReadUnsignedVarint(uint32_t* value);

 private:
  absl::string_view rest_;
};

template <typename T>
inline constexpr bool kIsPrimitiveElement =
    std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> || std::is_same_v<T, std::string>;

// --- Sizes ---

// Counts the bytes a message encodes to at a version. In minimum mode it ignores contents and
// counts what the shortest possible value of each field takes (empty strings and arrays, null
// where nullable), which bounds how many elements a number of bytes can hold.
class SizeCounter : public VisitorBase {
 public:
  SizeCounter(int16_t version, bool minimum)
      : VisitorBase(version, "size"), minimum_(minimum) {}

  size_t bytes() const { return bytes_; }

  void Int8(const char*, int8_t, Versions versions = kAllVersions) { Add(versions, 1); }
  void Int16(const char*, int16_t, Versions versions = kAllVersions) { Add(versions, 2); }
  void Int32(const char*, int32_t, Versions versions = kAllVersions) { Add(versions, 4); }
  void Int64(const char*, int64_t, Versions versions = kAllVersions) { Add(versions, 8); }
  void Bool(const char*, bool, Versions versions = kAllVersions) { Add(versions, 1); }
  void String(const char*, const std::string& value, Versions versions = kAllVersions) {
    Add(versions, 2 + (minimum_ ? 0 : value.size()));
  }
  void NullableString(const char*, const std::optional<std::string>& value,
                      Versions versions = kAllVersions, Versions = kAllVersions) {
    Add(versions, 2 + (minimum_ || !value.has_value() ? 0 : value->size()));
  }
  void Bytes(const char*, const std::string& value, Versions versions = kAllVersions) {
    Add(versions, 4 + (minimum_ ? 0 : value.size()));
  }
  void NullableBytes(const char*, const std::optional<std::string>& value,
                     Versions versions = kAllVersions, Versions = kAllVersions) {
    Add(versions, 4 + (minimum_ || !value.has_value() ? 0 : value->size()));
  }
  void Records(const char* name, const std::optional<std::string>& value,
               Versions versions = kAllVersions) {
    NullableBytes(name, value, versions);
  }
  template <typename T>
  void Array(const char*, const std::vector<T>& value, Versions versions = kAllVersions) {
    if (!Active(versions)) return;
    bytes_ += 4;
    if (!minimum_) AddElements(value);
  }
  template <typename T>
  void NullableArray(const char*, const std::optional<std::vector<T>>& value,
                     Versions versions = kAllVersions, Versions = kAllVersions) {
    if (!Active(versions)) return;
    bytes_ += 4;
    if (!minimum_ && value.has_value()) AddElements(*value);
  }

 private:
  void Add(Versions versions, size_t bytes) {
    if (Active(versions)) bytes_ += bytes;
  }
  template <typename T>
  void AddElements(const std::vector<T>& elements) {
    if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>) {
      bytes_ += sizeof(T) * elements.size();
    } else if constexpr (std::is_same_v<T, std::string>) {
      for (const std::string& element : elements) bytes_ += 2 + element.size();
    } else {
      for (const T& element : elements) T::Fields(element, *this);
    }
  }

  bool minimum_;
  size_t bytes_ = 0;
};

// The fewest bytes one array element of type T takes at `version`, at least 1, so that a count
// read off the wire can be checked against the bytes left before anything is allocated for it.
// (An element whose fields all lie outside the version would take 0 bytes; counting it as 1 keeps
// the check meaningful.)
template <typename T>
size_t ElementBytesMin(int16_t version) {
  if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>) {
    return sizeof(T);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return 2;
  } else {
    const T element{};
    SizeCounter counter(version, /*minimum=*/true);
    T::Fields(element, counter);
    return counter.bytes() == 0 ? 1 : counter.bytes();
  }
}

// --- Decoding ---

// Reads fields from `input` into a struct. Total on any input: a short or malformed field records
// an error (see VisitorBase::Fail) and leaves the rest of the struct at defaults. Nothing is
// allocated that the input does not justify: a length is checked against the bytes left before
// it is copied, and an array's count against the bytes its elements need at the least.
class Decoder : public VisitorBase {
 public:
  Decoder(absl::string_view input, int16_t version, absl::string_view message_name)
      : VisitorBase(version, message_name), reader_(input) {}

  // Bytes not yet consumed.
  size_t remaining() const { return reader_.remaining(); }

  void Int8(const char* name, int8_t& field, Versions versions = kAllVersions) {
    Fixed(name, field, versions);
  }
  void Int16(const char* name, int16_t& field, Versions versions = kAllVersions) {
    Fixed(name, field, versions);
  }
  void Int32(const char* name, int32_t& field, Versions versions = kAllVersions) {
    Fixed(name, field, versions);
  }
  void Int64(const char* name, int64_t& field, Versions versions = kAllVersions) {
    Fixed(name, field, versions);
  }
  void Bool(const char* name, bool& field, Versions versions = kAllVersions) {
    int8_t byte = 0;
    if (Fixed(name, byte, versions)) field = byte != 0;
  }
  void String(const char* name, std::string& field, Versions versions = kAllVersions) {
    if (!Active(versions)) return;
    std::optional<absl::string_view> value;
    if (ReadLengthPrefixed<int16_t>(name, /*nullable=*/false, &value)) {
      field.assign(value->data(), value->size());
    }
  }
  void NullableString(const char* name, std::optional<std::string>& field,
                      Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!Active(versions)) return;
    std::optional<absl::string_view> value;
    if (ReadLengthPrefixed<int16_t>(name, nullable.Contains(version()), &value)) Store(value, field);
  }
  void Bytes(const char* name, std::string& field, Versions versions = kAllVersions) {
    if (!Active(versions)) return;
    std::optional<absl::string_view> value;
    if (ReadLengthPrefixed<int32_t>(name, /*nullable=*/false, &value)) {
      field.assign(value->data(), value->size());
    }
  }
  void NullableBytes(const char* name, std::optional<std::string>& field,
                     Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!Active(versions)) return;
    std::optional<absl::string_view> value;
    if (ReadLengthPrefixed<int32_t>(name, nullable.Contains(version()), &value)) Store(value, field);
  }
  void Records(const char* name, std::optional<std::string>& field,
               Versions versions = kAllVersions) {
    NullableBytes(name, field, versions);
  }
  template <typename T>
  void Array(const char* name, std::vector<T>& field, Versions versions = kAllVersions) {
    if (!Active(versions)) return;
    int32_t count = 0;
    if (ReadCount(name, /*nullable=*/false, &count)) ReadElements(name, count, field);
  }
  template <typename T>
  void NullableArray(const char* name, std::optional<std::vector<T>>& field,
                     Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!Active(versions)) return;
    int32_t count = 0;
    if (!ReadCount(name, nullable.Contains(version()), &count)) return;
    if (count == kNullLength) {
      field.reset();
      return;
    }
    field.emplace();
    ReadElements(name, count, *field);
  }

 private:
  template <typename T>
  bool Fixed(const char* name, T& field, Versions versions) {
    if (!Active(versions)) return false;
    if (!reader_.ReadInt(&field)) {
      FailShort(name, sizeof(T));
      return false;
    }
    return true;
  }
  void FailShort(const char* name, size_t needed_bytes) {
    Fail(name, absl::StrCat("needs ", needed_bytes, " bytes, ", reader_.remaining(), " left"));
  }
  static void Store(const std::optional<absl::string_view>& value,
                    std::optional<std::string>& field) {
    if (value.has_value()) {
      field.emplace(value->data(), value->size());
    } else {
      field.reset();
    }
  }
  // Reads a length of type L and that many bytes; nullopt for null (only when `nullable`).
  template <typename L>
  bool ReadLengthPrefixed(const char* name, bool nullable, std::optional<absl::string_view>* value) {
    L length = 0;
    if (!reader_.ReadInt(&length)) {
      FailShort(name, sizeof(L));
      return false;
    }
    if (length == kNullLength && nullable) {
      value->reset();
      return true;
    }
    if (length < 0) {
      Fail(name, length == kNullLength ? "is null, which this version does not allow"
                                       : absl::StrCat("has negative length ", length));
      return false;
    }
    absl::string_view bytes;
    if (!reader_.ReadBytes(static_cast<size_t>(length), &bytes)) {
      Fail(name, absl::StrCat("length ", length, " exceeds the ", reader_.remaining(),
                              " bytes left"));
      return false;
    }
    *value = bytes;
    return true;
  }
  bool ReadCount(const char* name, bool nullable, int32_t* count) {
    if (!reader_.ReadInt(count)) {
      FailShort(name, sizeof(int32_t));
      return false;
    }
    if (*count == kNullLength && nullable) return true;
    if (*count < 0) {
      Fail(name, *count == kNullLength ? "is null, which this version does not allow"
                                       : absl::StrCat("has negative count ", *count));
      return false;
    }
    return true;
  }
  template <typename T>
  void ReadElements(const char* name, int32_t count, std::vector<T>& elements) {
    const size_t element_bytes_min = ElementBytesMin<T>(version());
    const size_t element_count = static_cast<size_t>(count);
    if (element_count > reader_.remaining() / element_bytes_min) {
      Fail(name, absl::StrCat("count ", count, " needs at least ",
                              element_count * element_bytes_min, " bytes, ", reader_.remaining(),
                              " left"));
      return;
    }
    if (!path_.Push(name)) {
      Fail(name, absl::StrCat("nests arrays deeper than ", kSchemaDepthMax));
      return;
    }
    elements.clear();
    elements.reserve(element_count);
    for (size_t i = 0; i < element_count && ok(); ++i) {
      path_.SetIndex(i);
      ReadElement(elements.emplace_back());
    }
    path_.Pop();
  }
  void ReadElement(int32_t& element) { Int32(nullptr, element); }
  void ReadElement(int64_t& element) { Int64(nullptr, element); }
  void ReadElement(std::string& element) { String(nullptr, element); }
  template <typename T>
  void ReadElement(T& element) {
    T::Fields(element, *this);
  }

  WireReader reader_;
};

// --- Encoding ---

// Appends a struct's fields to `*out`. Fails (see VisitorBase::Fail) on a value the wire cannot
// carry: a string longer than kStringBytesMax, bytes or an array beyond int32, or null in a version
// where the field is not nullable. After a failure `*out` holds a partial encoding to discard.
class Encoder : public VisitorBase {
 public:
  Encoder(std::string* out, int16_t version, absl::string_view message_name)
      : VisitorBase(version, message_name), out_(out) {}

  void Int8(const char*, int8_t value, Versions versions = kAllVersions) { Put(value, versions); }
  void Int16(const char*, int16_t value, Versions versions = kAllVersions) {
    Put(value, versions);
  }
  void Int32(const char*, int32_t value, Versions versions = kAllVersions) {
    Put(value, versions);
  }
  void Int64(const char*, int64_t value, Versions versions = kAllVersions) {
    Put(value, versions);
  }
  void Bool(const char*, bool value, Versions versions = kAllVersions) {
    Put(static_cast<int8_t>(value ? 1 : 0), versions);
  }
  void String(const char* name, const std::string& value, Versions versions = kAllVersions) {
    if (Active(versions)) PutLengthPrefixed<int16_t>(name, value, kStringBytesMax);
  }
  void NullableString(const char* name, const std::optional<std::string>& value,
                      Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!Active(versions)) return;
    if (value.has_value()) {
      PutLengthPrefixed<int16_t>(name, *value, kStringBytesMax);
    } else if (NullAllowed(name, nullable)) {
      AppendBigEndian<int16_t>(*out_, kNullLength);
    }
  }
  void Bytes(const char* name, const std::string& value, Versions versions = kAllVersions) {
    if (Active(versions)) PutLengthPrefixed<int32_t>(name, value, kBytesMax);
  }
  void NullableBytes(const char* name, const std::optional<std::string>& value,
                     Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!Active(versions)) return;
    if (value.has_value()) {
      PutLengthPrefixed<int32_t>(name, *value, kBytesMax);
    } else if (NullAllowed(name, nullable)) {
      AppendBigEndian<int32_t>(*out_, kNullLength);
    }
  }
  void Records(const char* name, const std::optional<std::string>& value,
               Versions versions = kAllVersions) {
    NullableBytes(name, value, versions);
  }
  template <typename T>
  void Array(const char* name, const std::vector<T>& value, Versions versions = kAllVersions) {
    if (Active(versions)) PutElements(name, value);
  }
  template <typename T>
  void NullableArray(const char* name, const std::optional<std::vector<T>>& value,
                     Versions versions = kAllVersions, Versions nullable = kAllVersions) {
    if (!Active(versions)) return;
    if (value.has_value()) {
      PutElements(name, *value);
    } else if (NullAllowed(name, nullable)) {
      AppendBigEndian<int32_t>(*out_, kNullLength);
    }
  }

 private:
  template <typename T>
  void Put(T value, Versions versions) {
    if (Active(versions)) AppendBigEndian(*out_, value);
  }
  bool NullAllowed(const char* name, Versions nullable) {
    if (nullable.Contains(version())) return true;
    Fail(name, "is null, which this version does not allow");
    return false;
  }
  template <typename L>
  void PutLengthPrefixed(const char* name, const std::string& value, size_t bytes_max) {
    if (value.size() > bytes_max) {
      Fail(name, absl::StrCat("is ", value.size(), " bytes long, more than the ", bytes_max,
                              " its length prefix can say"));
      return;
    }
    AppendBigEndian(*out_, static_cast<L>(value.size()));
    out_->append(value);
  }
  template <typename T>
  void PutElements(const char* name, const std::vector<T>& elements) {
    if (elements.size() > kArrayElementsMax) {
      Fail(name, absl::StrCat("has ", elements.size(), " elements, more than an int32 count"));
      return;
    }
    if (!path_.Push(name)) {
      Fail(name, absl::StrCat("nests arrays deeper than ", kSchemaDepthMax));
      return;
    }
    AppendBigEndian(*out_, static_cast<int32_t>(elements.size()));
    for (size_t i = 0; i < elements.size() && ok(); ++i) {
      path_.SetIndex(i);
      PutElement(elements[i]);
    }
    path_.Pop();
  }
  void PutElement(int32_t element) { Int32(nullptr, element); }
  void PutElement(int64_t element) { Int64(nullptr, element); }
  void PutElement(const std::string& element) { String(nullptr, element); }
  template <typename T>
  void PutElement(const T& element) {
    T::Fields(element, *this);
  }

  std::string* out_;
};

// --- Printing ---

// Appends a one-line debug rendering of the fields present at the version, such as
//   {acks=-1 timeout_ms=30000 topic_data=[{name="orders" partition_data=[{index=0
//   records=<68 bytes>}]}]}
// Strings are quoted and C-escaped, cut after kPrintStringBytesMax bytes; bytes and records
// print only their size.
class Printer : public VisitorBase {
 public:
  static constexpr size_t kPrintStringBytesMax = 64;

  Printer(std::string* out, int16_t version) : VisitorBase(version, "print"), out_(out) {}

  void Int8(const char* name, int8_t value, Versions versions = kAllVersions) {
    if (Start(name, versions)) absl::StrAppend(out_, static_cast<int>(value));
  }
  void Int16(const char* name, int16_t value, Versions versions = kAllVersions) {
    if (Start(name, versions)) absl::StrAppend(out_, value);
  }
  void Int32(const char* name, int32_t value, Versions versions = kAllVersions) {
    if (Start(name, versions)) absl::StrAppend(out_, value);
  }
  void Int64(const char* name, int64_t value, Versions versions = kAllVersions) {
    if (Start(name, versions)) absl::StrAppend(out_, value);
  }
  void Bool(const char* name, bool value, Versions versions = kAllVersions) {
    if (Start(name, versions)) out_->append(value ? "true" : "false");
  }
  void String(const char* name, const std::string& value, Versions versions = kAllVersions) {
    if (Start(name, versions)) AppendQuoted(value);
  }
  void NullableString(const char* name, const std::optional<std::string>& value,
                      Versions versions = kAllVersions, Versions = kAllVersions) {
    if (!Start(name, versions)) return;
    if (value.has_value()) {
      AppendQuoted(*value);
    } else {
      out_->append("null");
    }
  }
  void Bytes(const char* name, const std::string& value, Versions versions = kAllVersions) {
    if (Start(name, versions)) absl::StrAppend(out_, "<", value.size(), " bytes>");
  }
  void NullableBytes(const char* name, const std::optional<std::string>& value,
                     Versions versions = kAllVersions, Versions = kAllVersions) {
    if (!Start(name, versions)) return;
    if (value.has_value()) {
      absl::StrAppend(out_, "<", value->size(), " bytes>");
    } else {
      out_->append("null");
    }
  }
  void Records(const char* name, const std::optional<std::string>& value,
               Versions versions = kAllVersions) {
    NullableBytes(name, value, versions);
  }
  template <typename T>
  void Array(const char* name, const std::vector<T>& value, Versions versions = kAllVersions) {
    if (Start(name, versions)) PrintElements(value);
  }
  template <typename T>
  void NullableArray(const char* name, const std::optional<std::vector<T>>& value,
                     Versions versions = kAllVersions, Versions = kAllVersions) {
    if (!Start(name, versions)) return;
    if (value.has_value()) {
      PrintElements(*value);
    } else {
      out_->append("null");
    }
  }

  // Prints a whole struct as {field=value ...}.
  template <typename T>
  void PrintStruct(const T& value) {
    out_->push_back('{');
    first_ = true;
    T::Fields(value, *this);
    out_->push_back('}');
    first_ = false;
  }

 private:
  // Writes the separator and "name=" when the field exists at this version.
  bool Start(const char* name, Versions versions) {
    if (!Active(versions)) return false;
    if (name != nullptr) {
      if (!first_) out_->push_back(' ');
      absl::StrAppend(out_, name, "=");
    }
    first_ = false;
    return true;
  }
  void AppendQuoted(const std::string& value);
  template <typename T>
  void PrintElements(const std::vector<T>& elements) {
    out_->push_back('[');
    for (size_t i = 0; i < elements.size(); ++i) {
      if (i > 0) out_->append(", ");
      if constexpr (std::is_same_v<T, std::string>) {
        AppendQuoted(elements[i]);
      } else if constexpr (std::is_integral_v<T>) {
        absl::StrAppend(out_, elements[i]);
      } else {
        PrintStruct(elements[i]);
      }
    }
    out_->push_back(']');
  }

  std::string* out_;
  bool first_ = true;
};

// --- Whole messages ---

// The bytes `message` encodes to at `version`.
template <typename Message>
size_t EncodedBytes(const Message& message, int16_t version) {
  SizeCounter counter(version, /*minimum=*/false);
  Message::Fields(message, counter);
  return counter.bytes();
}

// Appends the body of `message` at `version` to `*out`; on failure `*out` is unchanged.
template <typename Message>
absl::Status EncodeMessage(const Message& message, int16_t version, std::string* out) {
  const size_t size_before = out->size();
  out->reserve(size_before + EncodedBytes(message, version));
  Encoder encoder(out, version, Message::kName);
  Message::Fields(message, encoder);
  if (!encoder.ok()) out->resize(size_before);
  return encoder.status();
}

// Decodes a body of `Message` at `version` from the front of `input` into `*message` (which
// should be default-constructed). `*trailing_bytes` receives how many bytes followed the body.
template <typename Message>
absl::Status DecodeMessage(absl::string_view input, int16_t version, Message* message,
                           size_t* trailing_bytes) {
  Decoder decoder(input, version, Message::kName);
  Message::Fields(*message, decoder);
  *trailing_bytes = decoder.remaining();
  return decoder.status();
}

// "ProduceRequest v7 {acks=-1 ...}".
template <typename Message>
std::string MessageToString(const Message& message, int16_t version) {
  std::string out = absl::StrCat(Message::kName, " v", version, " ");
  Printer printer(&out, version);
  printer.PrintStruct(message);
  return out;
}

}  // namespace runnel::protocol

#endif  // RUNNEL_BROKER_PROTOCOL_SCHEMA_H_
