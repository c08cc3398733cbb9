#include "broker/protocol/error_codes.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace runnel::protocol {

std::optional<ErrorCode> ErrorCodeFromWire(int16_t number) {
  switch (number) {
#define RUNNEL_ERROR_CASE(enumerator, wire, name, retriable) \
  case wire:                                                 \
    return ErrorCode::enumerator;
    RUNNEL_KAFKA_ERROR_CODES(RUNNEL_ERROR_CASE)
#undef RUNNEL_ERROR_CASE
  }
  return std::nullopt;
}

absl::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
#define RUNNEL_ERROR_CASE(enumerator, wire, name, retriable) \
  case ErrorCode::enumerator:                                \
    return name;
    RUNNEL_KAFKA_ERROR_CODES(RUNNEL_ERROR_CASE)
#undef RUNNEL_ERROR_CASE
  }
  // Only a value cast from an unknown number gets here.
  return "UNKNOWN_ERROR_CODE";
}

std::string ErrorCodeNameFromWire(int16_t number) {
  const std::optional<ErrorCode> code = ErrorCodeFromWire(number);
  if (!code.has_value()) return absl::StrCat("UNKNOWN_ERROR_CODE(", number, ")");
  return std::string(ErrorCodeName(*code));
}

bool IsRetriable(ErrorCode code) {
  switch (code) {
#define RUNNEL_ERROR_CASE(enumerator, wire, name, retriable) \
  case ErrorCode::enumerator:                                \
    return retriable;
    RUNNEL_KAFKA_ERROR_CODES(RUNNEL_ERROR_CASE)
#undef RUNNEL_ERROR_CASE
  }
  return false;
}

}  // namespace runnel::protocol
