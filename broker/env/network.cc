#include "broker/env/network.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace runnel {

std::string NetworkAddress::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<NetworkAddress> NetworkAddress::Parse(absl::string_view text) {
  absl::string_view host;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("address '", text, "': expected [IPv6]:port"));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("address '", text, "': expected host:port"));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("address '", text, "': empty host"));
  }
  uint32_t port = 0;
  // SimpleAtoi tolerates a sign and surrounding whitespace; an address takes plain digits only.
  const bool digits_only = !port_text.empty() && port_text.size() <= 5 &&
                           port_text.find_first_not_of("0123456789") == absl::string_view::npos;
  if (!digits_only || !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", text, "': port must be a number from 0 to 65535"));
  }
  return NetworkAddress{std::string(host), static_cast<uint16_t>(port)};
}

}  // namespace runnel
