#include "sim/scenario_loader.h"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "broker/server/topic_config.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace runnel::sim {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::TextFormat;
using Limits = ScenarioLimits;

// Collects the parser's errors as "FILE:LINE:COLUMN: message" (1-based).
class Collector final : public google::protobuf::io::ErrorCollector {
 public:
  Collector(std::string file, std::vector<std::string>* errors)
      : file_(std::move(file)), errors_(errors) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (errors_->size() >= Limits::kErrorsMax) return;
    if (line < 0) {
      errors_->push_back(absl::StrCat(file_, ": ", message));
    } else {
      errors_->push_back(absl::StrCat(file_, ":", line + 1, ":", column + 1, ": ", message));
    }
  }

 private:
  std::string file_;
  std::vector<std::string>* errors_;
};

// One message under validation: where it is in the file and in the scenario, so that an error
// names the line and the field path.
class Scope {
 public:
  Scope(const Message& message, const TextFormat::ParseInfoTree* tree, std::string path, int line,
        const std::string* file, std::vector<std::string>* errors)
      : message_(message), tree_(tree), path_(std::move(path)), line_(line), file_(file),
        errors_(errors) {}

  // The scope of a nested message field (index >= 0 for an element of a repeated field).
  Scope Nested(const char* field, int index = -1) const {
    const FieldDescriptor* descriptor = Descriptor(field);
    const Message& child =
        index >= 0 ? message_.GetReflection()->GetRepeatedMessage(message_, descriptor, index)
                   : message_.GetReflection()->GetMessage(message_, descriptor);
    const TextFormat::ParseInfoTree* child_tree =
        tree_ == nullptr ? nullptr : tree_->GetTreeForNested(descriptor, index);
    return Scope(child, child_tree, FieldPath(field, index), Line(field, index), file_, errors_);
  }

  void Error(const char* field, int index, const std::string& text) const {
    if (errors_->size() >= Limits::kErrorsMax) return;
    errors_->push_back(absl::StrCat(*file_, ":", Line(field, index), ": ", FieldPath(field, index),
                                    ": ", text));
  }
  void Error(const char* field, const std::string& text) const { Error(field, -1, text); }

 private:
  const FieldDescriptor* Descriptor(const char* field) const {
    const FieldDescriptor* descriptor = message_.GetDescriptor()->FindFieldByName(field);
    assert(descriptor != nullptr);
    return descriptor;
  }
  std::string FieldPath(const char* field, int index) const {
    std::string path = path_.empty() ? std::string(field) : absl::StrCat(path_, ".", field);
    if (index >= 0) absl::StrAppend(&path, "[", index, "]");
    return path;
  }
  // The 1-based line where the field was written, or the enclosing message's when it was not.
  int Line(const char* field, int index) const {
    const FieldDescriptor* descriptor = Descriptor(field);
    if (descriptor->is_repeated() && index < 0) {
      // An error about a whole repeated field points at its first element, if it has one.
      if (message_.GetReflection()->FieldSize(message_, descriptor) == 0) return line_;
      index = 0;
    }
    if (tree_ != nullptr) {
      const TextFormat::ParseLocation location = tree_->GetLocation(descriptor, index);
      if (location.line >= 0) return location.line + 1;
    }
    return line_;
  }

  const Message& message_;
  const TextFormat::ParseInfoTree* tree_;
  std::string path_;
  int line_;
  const std::string* file_;
  std::vector<std::string>* errors_;
};

bool Matches(absl::string_view pattern, absl::string_view name) {
  // Glob with '*' only: greedy matching with backtracking to the last star.
  size_t p = 0, n = 0, star = absl::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string Allowed(int64_t low, int64_t high) { return absl::StrCat(" (allowed: ", low, "..", high, ")"); }

void CheckRange(const Scope& scope, const char* field, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    scope.Error(field, absl::StrCat("is ", value, Allowed(low, high)));
  }
}

void CheckRangeMessage(const Scope& parent, const char* field, const scenario::Range& range,
                       int64_t low, int64_t high) {
  const Scope scope = parent.Nested(field);
  CheckRange(scope, "min", range.min(), low, high);
  if (range.has_max()) {
    CheckRange(scope, "max", range.max(), low, high);
    if (range.max() < range.min()) scope.Error("max", "must not be below min");
  }
}

void CheckWindow(const Scope& parent, const scenario::Window& window, int64_t run_ms) {
  const Scope scope = parent.Nested("active");
  CheckRange(scope, "start_ms", window.start_ms(), 0, run_ms - 1);
  if (window.stop_ms() != 0) {
    CheckRange(scope, "stop_ms", window.stop_ms(), 1, run_ms);
    if (window.stop_ms() <= window.start_ms()) scope.Error("stop_ms", "must be after start_ms");
  }
}

class Validator {
 public:
  Validator(const scenario::Scenario& scenario, const Scope& root)
      : scenario_(scenario), root_(root), run_ms_(scenario.run().duration_ms()) {}

  void Run() {
    CheckRunAndCluster();
    CheckTopics();
    CheckClients();
    CheckFaults();
    CheckChecks();
  }

 private:
  void CheckRunAndCluster() {
    const Scope run = root_.Nested("run");
    CheckRange(run, "duration_ms", scenario_.run().duration_ms(), 1, Limits::kRunMsMax);
    CheckRange(run, "settle_timeout_ms", scenario_.run().settle_timeout_ms(), 1,
               Limits::kSettleMsMax);
    const Scope cluster = root_.Nested("cluster");
    if (scenario_.cluster().brokers() != 1) {
      cluster.Error("brokers", "must be 1: replication is not built yet");
    }
    if (scenario_.cluster().controllers() != 0) {
      cluster.Error("controllers", "must be 0: the controller quorum is not built yet");
    }
    CheckRange(cluster, "clock_offset_ms_max", scenario_.cluster().clock_offset_ms_max(), 0,
               Limits::kClockJumpMsMax);
    CheckRange(cluster, "clock_drift_ppm_max", scenario_.cluster().clock_drift_ppm_max(), 0,
               100'000);
    if (scenario_.cluster().has_latency_us()) {
      CheckRangeMessage(cluster, "latency_us", scenario_.cluster().latency_us(), 1, 10'000'000);
    }
    CheckRange(cluster, "group_initial_rebalance_delay_ms",
               scenario_.cluster().group_initial_rebalance_delay_ms(), 0, 300'000);
  }

  void CheckTopics() {
    if (scenario_.topics().empty()) root_.Error("topics", "at least one topic is needed");
    if (scenario_.topics_size() > Limits::kTopicsMax) {
      root_.Error("topics", absl::StrCat("at most ", Limits::kTopicsMax, " topics"));
    }
    int partitions_total = 0;
    for (int i = 0; i < scenario_.topics_size(); ++i) {
      const scenario::Topic& topic = scenario_.topics(i);
      const Scope scope = root_.Nested("topics", i);
      absl::Status name = server::ValidateTopicName(topic.name());
      if (!name.ok()) {
        scope.Error("name", std::string(name.message()));
      } else if (absl::StartsWith(topic.name(), "__")) {
        scope.Error("name", "names starting with \"__\" are internal topics");
      }
      for (int k = 0; k < i; ++k) {
        if (server::TopicNamesCollide(scenario_.topics(k).name(), topic.name())) {
          scope.Error("name", absl::StrCat("\"", topic.name(), "\" collides with topics[", k,
                                           "] \"", scenario_.topics(k).name(), "\""));
        }
      }
      topic_names_.insert(topic.name());
      CheckRange(scope, "partitions", topic.partitions(), 1, server::kPartitionsPerTopicMax);
      partitions_total += std::max(0, topic.partitions());
      if (topic.replication_factor() != 1) {
        scope.Error("replication_factor", "must be 1: replication is not built yet");
      }
      server::TopicConfigOverrides overrides(topic.configs().begin(), topic.configs().end());
      absl::StatusOr<server::TopicConfigOverrides> canonical =
          server::CanonicalTopicConfigOverrides(overrides);
      if (!canonical.ok()) scope.Error("configs", std::string(canonical.status().message()));
    }
    if (partitions_total > Limits::kPartitionsTotalMax) {
      root_.Error("topics", absl::StrCat(partitions_total, " partitions in all; at most ",
                                         Limits::kPartitionsTotalMax));
    }
  }

  void CheckTopicList(const Scope& scope, const google::protobuf::RepeatedPtrField<std::string>& topics) {
    for (int i = 0; i < topics.size(); ++i) {
      if (!topic_names_.contains(topics.Get(i))) {
        scope.Error("topics", i, absl::StrCat("no topic is named \"", topics.Get(i), "\""));
      }
    }
  }

  void CheckNodeNames(const Scope& scope, const std::string& name, int count) {
    if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.") !=
                            std::string::npos) {
      scope.Error("name", "must be lower-case letters, digits, '_' or '.'");
    }
    for (int i = 0; i < std::min(count, Limits::kClientNodesMax); ++i) {
      const std::string node = absl::StrCat(name, "-", i);
      if (!node_names_.insert(node).second) {
        scope.Error("name", absl::StrCat("node name \"", node,
                                         "\" is used twice: give each client entry its own name"));
        return;
      }
    }
    client_nodes_ += std::max(0, count);
  }

  void CheckClients() {
    node_names_.insert("broker-0");
    for (int i = 0; i < scenario_.producers_size(); ++i) {
      const scenario::Producer& producer = scenario_.producers(i);
      const Scope scope = root_.Nested("producers", i);
      CheckRange(scope, "count", producer.count(), 1, Limits::kClientNodesMax);
      CheckNodeNames(scope, producer.name(), producer.count());
      CheckTopicList(scope, producer.topics());
      if (!(producer.rate_per_s() > 0 && producer.rate_per_s() <= Limits::kRatePerSecondMax)) {
        scope.Error("rate_per_s", absl::StrCat("must be > 0 and at most ",
                                               Limits::kRatePerSecondMax));
      }
      CheckRange(scope, "key_count", producer.key_count(), 1, Limits::kKeyCountMax);
      if (!(producer.zipf_exponent() > 0 && producer.zipf_exponent() <= 10)) {
        scope.Error("zipf_exponent", "must be > 0 and at most 10");
      }
      if (producer.idempotent() && producer.acks() != scenario::ACKS_ALL) {
        scope.Error("idempotent", "an idempotent producer needs acks: ACKS_ALL");
      }
      CheckRange(scope, "value_padding_bytes", producer.value_padding_bytes(), 0,
                 Limits::kValuePaddingBytesMax);
      CheckRange(scope, "linger_ms", producer.linger_ms(), 0, Limits::kTimeoutMsMax);
      CheckRange(scope, "request_timeout_ms", producer.request_timeout_ms(), 1,
                 Limits::kTimeoutMsMax);
      CheckRange(scope, "delivery_timeout_ms", producer.delivery_timeout_ms(), 1,
                 Limits::kTimeoutMsMax);
      CheckWindow(scope, producer.active(), run_ms_);
    }
    for (int i = 0; i < scenario_.consumers_size(); ++i) {
      const scenario::Consumer& consumer = scenario_.consumers(i);
      const Scope scope = root_.Nested("consumers", i);
      CheckRange(scope, "count", consumer.count(), 1, Limits::kClientNodesMax);
      CheckNodeNames(scope, consumer.name(), consumer.count());
      CheckTopicList(scope, consumer.topics());
      CheckRange(scope, "request_timeout_ms", consumer.request_timeout_ms(), 1,
                 Limits::kTimeoutMsMax);
      CheckWindow(scope, consumer.active(), run_ms_);
      if (consumer.mode_case() == scenario::Consumer::MODE_NOT_SET) {
        scope.Error("assign", "say how the consumer reads: assign {} or group {}");
      }
      if (consumer.has_group()) {
        const scenario::Group& group = consumer.group();
        const Scope group_scope = scope.Nested("group");
        if (group.group_id().empty() || group.group_id().size() > 255) {
          group_scope.Error("group_id", "must be 1 to 255 characters");
        }
        if (group.has_assignor() && group.assignor() != "range" &&
            group.assignor() != "roundrobin") {
          group_scope.Error("assignor", "is \"" + group.assignor() +
                                            "\" (allowed: \"range\", \"roundrobin\")");
        }
        CheckRange(group_scope, "session_timeout_ms", group.session_timeout_ms(), 500, 1'800'000);
        CheckRange(group_scope, "heartbeat_interval_ms", group.heartbeat_interval_ms(), 1,
                   group.session_timeout_ms() - 1);
        CheckRange(group_scope, "commit_interval_ms", group.commit_interval_ms(), 1,
                   Limits::kTimeoutMsMax);
      }
    }
    if (client_nodes_ > Limits::kClientNodesMax) {
      root_.Error("producers", absl::StrCat(client_nodes_, " client nodes in all; at most ",
                                            Limits::kClientNodesMax));
    }
  }

  void CheckPattern(const Scope& scope, const char* field, int index, const std::string& pattern) {
    if (MatchNodes(scenario_, pattern).empty()) {
      scope.Error(field, index, absl::StrCat("\"", pattern, "\" matches no node (nodes: ",
                                             absl::StrJoin(ScenarioNodeNames(scenario_), ", "),
                                             "; or \"brokers\", \"clients\", patterns with '*')"));
    }
  }
  void CheckPatterns(const Scope& scope, const char* field,
                     const google::protobuf::RepeatedPtrField<std::string>& patterns) {
    for (int i = 0; i < patterns.size(); ++i) CheckPattern(scope, field, i, patterns.Get(i));
  }

  void CheckDuration(const Scope& scope, const char* field, int64_t value) {
    CheckRange(scope, field, value, 1, Limits::kFaultDurationMsMax);
  }

  void CheckProbability(const Scope& scope, double probability) {
    if (!(probability >= 0 && probability <= 1)) scope.Error("probability", "must lie in [0, 1]");
  }

  void CheckFault(const Scope& scope, const scenario::Fault& fault) {
    CheckRange(scope, "at_ms", fault.at_ms(), 0, run_ms_ - 1);
    switch (fault.kind_case()) {
      case scenario::Fault::kCrash:
      case scenario::Fault::kPowerLoss:
      case scenario::Fault::kCleanRestart: {
        const char* field = fault.has_crash()        ? "crash"
                            : fault.has_power_loss() ? "power_loss"
                                                     : "clean_restart";
        const scenario::NodeDown& down = fault.has_crash()        ? fault.crash()
                                         : fault.has_power_loss() ? fault.power_loss()
                                                                  : fault.clean_restart();
        const Scope nested = scope.Nested(field);
        CheckPattern(nested, "node", -1, down.node());
        CheckDuration(nested, "downtime_ms", down.downtime_ms());
        break;
      }
      case scenario::Fault::kStall:
      case scenario::Fault::kDiskFull: {
        const char* field = fault.has_stall() ? "stall" : "disk_full";
        const scenario::NodeSpan& span = fault.has_stall() ? fault.stall() : fault.disk_full();
        const Scope nested = scope.Nested(field);
        CheckPattern(nested, "node", -1, span.node());
        CheckDuration(nested, "duration_ms", span.duration_ms());
        break;
      }
      case scenario::Fault::kPartition: {
        const Scope nested = scope.Nested("partition");
        if (fault.partition().side_a().empty()) nested.Error("side_a", "name at least one node");
        CheckPatterns(nested, "side_a", fault.partition().side_a());
        CheckPatterns(nested, "side_b", fault.partition().side_b());
        CheckDuration(nested, "duration_ms", fault.partition().duration_ms());
        break;
      }
      case scenario::Fault::kLinkDelay: {
        const Scope nested = scope.Nested("link_delay");
        if (fault.link_delay().from().empty()) nested.Error("from", "name at least one node");
        CheckPatterns(nested, "from", fault.link_delay().from());
        CheckPatterns(nested, "to", fault.link_delay().to());
        CheckRange(nested, "extra_delay_ms", fault.link_delay().extra_delay_ms(), 1, 600'000);
        CheckDuration(nested, "duration_ms", fault.link_delay().duration_ms());
        break;
      }
      case scenario::Fault::kConnectionReset:
        if (!fault.connection_reset().node().empty()) {
          CheckPattern(scope.Nested("connection_reset"), "node", -1,
                       fault.connection_reset().node());
        }
        break;
      case scenario::Fault::kClockJump: {
        const Scope nested = scope.Nested("clock_jump");
        CheckPattern(nested, "node", -1, fault.clock_jump().node());
        CheckRange(nested, "jump_ms", fault.clock_jump().jump_ms(), -Limits::kClockJumpMsMax,
                   Limits::kClockJumpMsMax);
        break;
      }
      case scenario::Fault::kDiskErrors:
      case scenario::Fault::kReadCorruption: {
        const char* field = fault.has_disk_errors() ? "disk_errors" : "read_corruption";
        const scenario::DiskFault& disk =
            fault.has_disk_errors() ? fault.disk_errors() : fault.read_corruption();
        const Scope nested = scope.Nested(field);
        CheckPattern(nested, "node", -1, disk.node());
        CheckProbability(nested, disk.probability());
        CheckDuration(nested, "duration_ms", disk.duration_ms());
        break;
      }
      case scenario::Fault::KIND_NOT_SET:
        scope.Error("at_ms", "the fault has no kind (crash, power_loss, partition, ...)");
        break;
    }
  }

  void CheckFaults() {
    if (!scenario_.has_faults()) return;
    const Scope faults = root_.Nested("faults");
    if (scenario_.faults().at_size() > Limits::kScheduledFaultsMax) {
      faults.Error("at", absl::StrCat("at most ", Limits::kScheduledFaultsMax, " faults"));
    }
    for (int i = 0; i < scenario_.faults().at_size(); ++i) {
      CheckFault(faults.Nested("at", i), scenario_.faults().at(i));
    }
    if (!scenario_.faults().has_mix()) return;
    const scenario::FaultMix& mix = scenario_.faults().mix();
    const Scope scope = faults.Nested("mix");
    if (!mix.has_interval_ms()) scope.Error("interval_ms", "a fault mix needs interval_ms");
    CheckRangeMessage(scope, "interval_ms", mix.interval_ms(), 1, Limits::kRunMsMax);
    if (mix.kinds().empty()) scope.Error("kinds", "a fault mix needs at least one kind");
    int64_t weight_max_total = 0;
    for (int i = 0; i < mix.kinds_size(); ++i) {
      const scenario::WeightedFault& kind = mix.kinds(i);
      const Scope kind_scope = scope.Nested("kinds", i);
      CheckRangeMessage(kind_scope, "weight", kind.weight(), 0, 1'000'000);
      weight_max_total += kind.weight().has_max() ? kind.weight().max()
                          : kind.has_weight()     ? kind.weight().min()
                                                  : 1;
    }
    if (!mix.kinds().empty() && weight_max_total <= 0) {
      scope.Error("kinds", "at least one kind needs a positive weight");
    }
    CheckPatterns(scope, "nodes", mix.nodes());
    if (mix.has_duration_ms()) {
      CheckRangeMessage(scope, "duration_ms", mix.duration_ms(), 1, Limits::kFaultDurationMsMax);
    }
    if (mix.has_clock_jump_ms()) {
      CheckRangeMessage(scope, "clock_jump_ms", mix.clock_jump_ms(), -Limits::kClockJumpMsMax,
                        Limits::kClockJumpMsMax);
    }
    if (mix.has_extra_delay_ms()) {
      CheckRangeMessage(scope, "extra_delay_ms", mix.extra_delay_ms(), 1, 600'000);
    }
    if (mix.has_disk_fault_ppm()) {
      CheckRangeMessage(scope, "disk_fault_ppm", mix.disk_fault_ppm(), 0, 1'000'000);
    }
  }

  void CheckChecks() {
    const Scope checks = root_.Nested("checks");
    for (int i = 0; i < scenario_.checks().skip_size(); ++i) {
      if (scenario_.checks().skip(i) == scenario::ANOMALY_UNSPECIFIED) {
        checks.Error("skip", i, "ANOMALY_UNSPECIFIED is not an anomaly");
      }
    }
    const Scope expect = root_.Nested("expect");
    for (int i = 0; i < scenario_.expect().anomalies_size(); ++i) {
      if (scenario_.expect().anomalies(i) == scenario::ANOMALY_UNSPECIFIED) {
        expect.Error("anomalies", i, "ANOMALY_UNSPECIFIED is not an anomaly");
      }
    }
    if (!scenario_.expect().anomalies().empty() &&
        scenario_.expect().verdict() != scenario::FAIL) {
      expect.Error("anomalies", "anomalies are expected only with verdict: FAIL");
    }
  }

  const scenario::Scenario& scenario_;
  const Scope& root_;
  const int64_t run_ms_;
  std::set<std::string> topic_names_;
  std::set<std::string> node_names_;
  int client_nodes_ = 0;
};

}  // namespace

absl::StatusOr<scenario::Scenario> ParseScenario(absl::string_view text,
                                                 absl::string_view file_name) {
  const std::string file(file_name);
  if (text.size() > Limits::kFileBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": larger than ", Limits::kFileBytesMax,
                                                   " bytes"));
  }
  std::vector<std::string> errors;
  Collector collector(file, &errors);
  TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  TextFormat::ParseInfoTree tree;
  parser.WriteLocationsTo(&tree);
  scenario::Scenario scenario;
  if (!parser.ParseFromString(std::string(text), &scenario)) {
    if (errors.empty()) errors.push_back(absl::StrCat(file, ": not a valid scenario"));
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }
  if (!scenario.has_name() || scenario.name().empty()) {
    std::string stem = std::filesystem::path(file).stem().string();
    scenario.set_name(stem.empty() ? std::string("scenario") : stem);
  }
  const Scope root(scenario, &tree, "", 1, &file, &errors);
  Validator(scenario, root).Run();
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return scenario;
}

absl::StatusOr<scenario::Scenario> LoadScenarioFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the scenario file"));
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return absl::DataLossError(absl::StrCat(path, ": cannot read it"));
  return ParseScenario(text.str(), path);
}

std::vector<std::string> ScenarioNodeNames(const scenario::Scenario& scenario) {
  std::vector<std::string> names;
  for (int i = 0; i < scenario.cluster().brokers(); ++i) names.push_back(absl::StrCat("broker-", i));
  for (const scenario::Producer& producer : scenario.producers()) {
    for (int i = 0; i < std::min(producer.count(), Limits::kClientNodesMax); ++i) {
      names.push_back(absl::StrCat(producer.name(), "-", i));
    }
  }
  for (const scenario::Consumer& consumer : scenario.consumers()) {
    for (int i = 0; i < std::min(consumer.count(), Limits::kClientNodesMax); ++i) {
      names.push_back(absl::StrCat(consumer.name(), "-", i));
    }
  }
  return names;
}

std::vector<std::string> MatchNodes(const scenario::Scenario& scenario, absl::string_view pattern) {
  std::vector<std::string> matched;
  const std::vector<std::string> names = ScenarioNodeNames(scenario);
  const size_t brokers = static_cast<size_t>(std::max(0, scenario.cluster().brokers()));
  for (size_t i = 0; i < names.size(); ++i) {
    const bool is_broker = i < brokers;
    if ((pattern == "brokers" && is_broker) || (pattern == "clients" && !is_broker) ||
        Matches(pattern, names[i])) {
      matched.push_back(names[i]);
    }
  }
  return matched;
}

std::string AnomalyName(scenario::Anomaly anomaly) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(scenario::Anomaly_Name(anomaly)), {{"_", "-"}});
}

std::optional<scenario::Anomaly> AnomalyFromName(absl::string_view name) {
  scenario::Anomaly anomaly;
  const std::string enum_name = absl::StrReplaceAll(absl::AsciiStrToUpper(name), {{"-", "_"}});
  if (!scenario::Anomaly_Parse(enum_name, &anomaly) || anomaly == scenario::ANOMALY_UNSPECIFIED) {
    return std::nullopt;
  }
  return anomaly;
}

std::string ScenarioToText(const scenario::Scenario& scenario) {
  std::string text;
  TextFormat::Printer printer;
  printer.PrintToString(scenario, &text);
  return text;
}

}  // namespace runnel::sim
