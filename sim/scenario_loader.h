// Loading scenario files (sim/scenario.proto describes the format): parsing with errors that name
// the file, line and column, validating everything the scenario world relies on with errors that
// name the file, line and field, and the naming rules of nodes and anomalies.
//
// A scenario that LoadScenarioFile or ParseScenario returns is valid: ScenarioWorld may run it.
// Errors are one InvalidArgument status listing every problem found (at most kErrorsMax), one per
// line. Lines and columns count from 1.
//   - Syntax errors, in file order, come alone (the file is not validated until it parses):
//     "FILE:LINE:COLUMN: field.path: what is wrong", pointing at the field's value (a wrong type,
//     an unknown enum value, with the allowed values) or its name (an unknown field, with the
//     allowed fields; a field given twice), or "FILE:LINE:COLUMN: what is wrong" when no field is
//     to blame (a missing or stray '}'). After an error about one field the rest of the file is
//     still read.
//   - Validation errors: "FILE:LINE: field.path: what is wrong (allowed: ...)", for example
//     "x.textproto:12: producers[1].rate_per_s: must be > 0 and at most 100000"; the line is where
//     the field was written, or where its enclosing message was when the field was left out.
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
  static constexpr size_t kClientNameBytesMax = 64;
  static constexpr double kRatePerSecondMax = 100'000;
  static constexpr int32_t kKeyCountMax = 1'000'000;
  static constexpr int32_t kValuePaddingBytesMax = 1 << 20;
  static constexpr int64_t kRunMsMax = 3'600'000;
  static constexpr int64_t kSettleMsMax = 3'600'000;
  static constexpr int64_t kFaultDurationMsMax = 3'600'000;
  static constexpr int64_t kClockJumpMsMax = int64_t{366} * 24 * 3'600'000;
  static constexpr int64_t kTimeoutMsMax = 600'000;
  static constexpr int kScheduledFaultsMax = 10'000;
  static constexpr int64_t kFaultWeightMax = 1'000'000;
  static constexpr int64_t kExtraDelayMsMax = 600'000;
  static constexpr int64_t kLatencyUsMax = 10'000'000;
  static constexpr int32_t kClockDriftPpmMax = 100'000;
  static constexpr int64_t kRebalanceDelayMsMax = 300'000;
  // A member's session timeout must lie within the broker's group.min.session.timeout.ms and
  // group.max.session.timeout.ms. The max is Kafka's default; the scenario world lowers the min
  // from Kafka's 6 s to this (scenario_world.cc uses this constant) so that scenarios can be short.
  static constexpr int64_t kSessionTimeoutMsMin = 500;
  static constexpr int64_t kSessionTimeoutMsMax = 1'800'000;
  static constexpr size_t kGroupIdBytesMax = 255;
  static constexpr double kZipfExponentMax = 10;
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
