// Loading scenario files (sim/scenario.proto describes the format): parsing with errors that name
// the file, line and column, validating everything the scenario world relies on with errors that
// name the file, line and field, and the naming rules of nodes and anomalies.
//
// A scenario that LoadScenarioFile or ParseScenario returns is valid: ScenarioWorld may run it.
// Errors are one InvalidArgument status listing every problem found (at most kErrorsMax), one per
// line, each "FILE:LINE: field.path: what is wrong" (syntax errors "FILE:LINE:COLUMN: ...").
#ifndef RUNNEL_SIM_SCENARIO_LOADER_H_
#define RUNNEL_SIM_SCENARIO_LOADER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sim/scenario.pb.h"

namespace runnel::sim {

// Limits of what one scenario may ask for.
struct ScenarioLimits {
  static constexpr size_t kErrorsMax = 50;
  static constexpr size_t kFileBytesMax = 1 << 20;
  static constexpr int kTopicsMax = 100;
  static constexpr int kPartitionsTotalMax = 1'000;
  static constexpr int kClientNodesMax = 64;
  static constexpr double kRatePerSecondMax = 100'000;
  static constexpr int32_t kKeyCountMax = 1'000'000;
  static constexpr int32_t kValuePaddingBytesMax = 1 << 20;
  static constexpr int64_t kRunMsMax = 3'600'000;
  static constexpr int64_t kSettleMsMax = 3'600'000;
  static constexpr int64_t kFaultDurationMsMax = 3'600'000;
  static constexpr int64_t kClockJumpMsMax = int64_t{366} * 24 * 3'600'000;
  static constexpr int64_t kTimeoutMsMax = 600'000;
  static constexpr int kScheduledFaultsMax = 10'000;
};

// Reads and validates a scenario file. Scenario.name defaults to the file's base name without its
// extension.
absl::StatusOr<scenario::Scenario> LoadScenarioFile(const std::string& path);
// The same for text already read; `file_name` names it in errors.
absl::StatusOr<scenario::Scenario> ParseScenario(absl::string_view text,
                                                 absl::string_view file_name);

// Every node name of the scenario: brokers ("broker-<i>"), then each producer entry's nodes, then
// each consumer entry's ("<name>-<i>").
std::vector<std::string> ScenarioNodeNames(const scenario::Scenario& scenario);
// The node names matching `pattern` ("*" matches any run of characters; "brokers" and "clients"
// mean every broker and every client node), in ScenarioNodeNames order.
std::vector<std::string> MatchNodes(const scenario::Scenario& scenario, absl::string_view pattern);

// "lost-write" for LOST_WRITE: lower case, '_' becomes '-'.
std::string AnomalyName(scenario::Anomaly anomaly);
std::optional<scenario::Anomaly> AnomalyFromName(absl::string_view name);

// The scenario in text format, which ParseScenario reads back to an equal message.
std::string ScenarioToText(const scenario::Scenario& scenario);

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SCENARIO_LOADER_H_
