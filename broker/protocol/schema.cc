#include "broker/protocol/schema.h"

#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "broker/common/varint.h"

namespace runnel::protocol {

std::string FieldPath::Describe(const char* name) const {
  std::string out;
  for (size_t i = 0; i < depth_; ++i) {
    if (i > 0) out.push_back('.');
    absl::StrAppend(&out, steps_[i].name, "[", steps_[i].index, "]");
  }
  if (name != nullptr) {
    if (!out.empty()) out.push_back('.');
    out.append(name);
  }
  return out;
}

void VisitorBase::Fail(const char* name, absl::string_view problem) {
  if (!status_.ok()) return;
  status_ = absl::InvalidArgumentError(
      absl::StrCat(message_name_, " v", version_, ": ", path_.Describe(name), " ", problem));
}

bool WireReader::ReadUnsignedVarint(uint32_t* value) {
  const std::optional<uint32_t> decoded = ConsumeUnsignedVarint32(&rest_);
  if (!decoded.has_value()) return false;
  *value = *decoded;
  return true;
}

void Printer::AppendQuoted(const std::string& value) {
  const absl::string_view shown = absl::string_view(value).substr(0, kPrintStringBytesMax);
  absl::StrAppend(out_, "\"", absl::CHexEscape(shown), "\"");
  if (shown.size() < value.size()) absl::StrAppend(out_, "...(", value.size(), " bytes)");
}

}  // namespace runnel::protocol
