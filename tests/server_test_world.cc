#include "tests/server_test_world.h"

#include "broker/common/big_endian.h"

namespace runnel::server {

void TestClient::State::Receive(absl::string_view bytes) {
  reader.Append(bytes);
  while (true) {
    absl::StatusOr<std::optional<absl::string_view>> frame = reader.Next();
    if (!frame.ok()) {
      protocol_error = std::string(frame.status().message());
      return;
    }
    if (!frame->has_value()) return;
    const absl::string_view body = **frame;
    const int32_t correlation_id = LoadBigEndian<int32_t>(body.data());
    auto it = expected.find(correlation_id);
    if (it == expected.end()) {
      protocol_error = absl::StrCat("unexpected correlation id ", correlation_id);
      continue;
    }
    absl::StatusOr<protocol::Response> response =
        protocol::DecodeResponse(body, it->second.first, it->second.second);
    if (!response.ok()) {
      protocol_error = response.status().ToString();
      continue;
    }
    expected.erase(it);
    responses.emplace(correlation_id, *std::move(response));
    arrival_order.push_back(correlation_id);
  }
}

sim::SimDiskOptions QuietDisk() {
  sim::SimDiskOptions options;
  options.sync_latency_us_min = 200;
  options.sync_latency_us_max = 1000;
  return options;
}

}  // namespace runnel::server
