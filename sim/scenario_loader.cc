#include "sim/scenario_loader.h"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "broker/server/topic_config.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "sim/node_pattern.h"

namespace runnel::sim {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::TextFormat;
using Limits = ScenarioLimits;

// --- Syntax errors ---------------------------------------------------------------------------
//
// Protobuf's text parser stops at its first error and reports it at the token where it noticed the
// problem, which for a bad value is often the next token, even on the next line. To name the field
// and point at it, and to report more than the first mistake, the loader scans the tokens itself to
// learn which field was written where. Unknown fields the parser skips and reports as it goes;
// after an error in a known field it stops, so the loader blanks that field out and parses again.

// A place in the text as protobuf's tokenizer counts it: 0-based line and column, a tab advancing
// the column to the next multiple of kTabColumns.
struct TextPosition {
  int line = 0;
  int column = 0;
  auto operator<=>(const TextPosition&) const = default;
};

constexpr int kTabColumns = 8;
constexpr int64_t kPartsPerMillion = 1'000'000;

// One error or warning of one parse.
struct ParserProblem {
  TextPosition position;
  std::string message;
  // With unknown fields allowed, the parser reports each one as a warning and parses on.
  bool warning = false;
};

class ProblemCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    Add(line, column, message, /*warning=*/false);
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    Add(line, column, message, /*warning=*/true);
  }
  const std::vector<ParserProblem>& problems() const { return problems_; }

 private:
  void Add(int line, int column, const std::string& message, bool warning) {
    if (problems_.size() >= Limits::kErrorsMax) return;
    problems_.push_back({TextPosition{line, column}, message, warning});
  }
  std::vector<ParserProblem> problems_;
};

// Where the tokenizer found text it cannot read (an unterminated string, a stray byte).
class TokenizerErrorPositions final : public google::protobuf::io::ErrorCollector {
 public:
  explicit TokenizerErrorPositions(std::set<TextPosition>* positions) : positions_(positions) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string&) override {
    positions_->insert(TextPosition{line, column});
  }

 private:
  std::set<TextPosition>* positions_;
};

struct TextToken {
  google::protobuf::io::Tokenizer::TokenType type;
  std::string text;
  TextPosition position;
  size_t begin_offset = 0;  // bytes into the text
  size_t end_offset = 0;
};

// The byte offset of `position`, mirroring how the tokenizer counts columns.
size_t OffsetOf(absl::string_view text, const std::vector<size_t>& line_starts,
                TextPosition position) {
  if (position.line < 0) return 0;
  if (static_cast<size_t>(position.line) >= line_starts.size()) return text.size();
  size_t offset = line_starts[position.line];
  int column = 0;
  while (offset < text.size() && text[offset] != '\n' && column < position.column) {
    column += text[offset] == '\t' ? kTabColumns - column % kTabColumns : 1;
    ++offset;
  }
  return offset;
}

// Every token of `text`, ending with the TYPE_END token. Tokenizer errors are the parser's to
// report; their positions go to `error_positions`.
std::vector<TextToken> Tokenize(absl::string_view text, std::set<TextPosition>* error_positions) {
  std::vector<size_t> line_starts = {0};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') line_starts.push_back(i + 1);
  }
  google::protobuf::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  TokenizerErrorPositions errors(error_positions);
  google::protobuf::io::Tokenizer tokenizer(&input, &errors);
  tokenizer.set_comment_style(google::protobuf::io::Tokenizer::SH_COMMENT_STYLE);
  tokenizer.set_allow_f_after_float(true);
  std::vector<TextToken> tokens;
  auto add_current = [&] {
    const google::protobuf::io::Tokenizer::Token& token = tokenizer.current();
    TextToken added{token.type, token.text, TextPosition{token.line, token.column}, 0, 0};
    added.begin_offset = OffsetOf(text, line_starts, added.position);
    added.end_offset = std::min(text.size(), added.begin_offset + token.text.size());
    tokens.push_back(std::move(added));
  };
  while (tokenizer.Next()) add_current();
  add_current();
  assert(tokens.back().type == google::protobuf::io::Tokenizer::TYPE_END);
  return tokens;
}

// One field as the file writes it.
struct WrittenField {
  std::string path;  // "producers[1].keys"
  // The message type it is written in (null inside an unknown field), and the field (null when
  // that type has no such field).
  const google::protobuf::Descriptor* parent = nullptr;
  const FieldDescriptor* field = nullptr;
  bool is_message = false;
  TextPosition name;
  // The value's first token (scalars) or the opening brace (messages).
  TextPosition value;
  std::string value_text;
  // A problem at a position in (name, after] is about this field: for scalars `after` is the token
  // following the value, for messages the opening brace.
  TextPosition after;
  // The bytes of the whole field, name to value or closing brace.
  size_t begin_offset = 0;
  size_t end_offset = 0;
};

struct WrittenText {
  std::vector<WrittenField> fields;
  TextPosition end;  // where the text ends
  // The innermost message field the text leaves open, if any (an index into `fields`).
  std::optional<size_t> unclosed;
  // Closing braces that close nothing.
  std::vector<TextPosition> stray_closers;
  // Where the tokenizer could not read the text.
  std::set<TextPosition> tokenizer_errors;
};

bool IsSymbol(const TextToken& token, absl::string_view symbol) {
  return token.type == google::protobuf::io::Tokenizer::TYPE_SYMBOL && token.text == symbol;
}
bool IsOpener(const TextToken& token) { return IsSymbol(token, "{") || IsSymbol(token, "<"); }
bool IsCloser(const TextToken& token) { return IsSymbol(token, "}") || IsSymbol(token, ">"); }

// The index of the first token after the scalar value starting at `index` (`end`: the END token).
size_t SkipScalarValue(const std::vector<TextToken>& tokens, size_t index, size_t end) {
  if (index >= end || IsCloser(tokens[index])) return index;
  if (IsSymbol(tokens[index], "[")) {
    int depth = 0;
    for (; index < end; ++index) {
      if (IsSymbol(tokens[index], "[") || IsOpener(tokens[index])) ++depth;
      if (IsSymbol(tokens[index], "]") || IsCloser(tokens[index])) --depth;
      if (depth == 0) return index + 1;
    }
    return end;
  }
  if (IsSymbol(tokens[index], "-")) return std::min(index + 2, end);
  if (tokens[index].type == google::protobuf::io::Tokenizer::TYPE_STRING) {
    // Adjacent string literals form one value.
    while (index < end && tokens[index].type == google::protobuf::io::Tokenizer::TYPE_STRING) {
      ++index;
    }
    return index;
  }
  return index + 1;
}

// Finds every field the text writes, following the scenario's message types. It only has to be
// good enough to name fields in errors: the parser decides what is valid.
WrittenText ScanWrittenFields(absl::string_view text) {
  struct OpenMessage {
    const google::protobuf::Descriptor* type;
    std::string path;
    std::map<std::string, int> counts;  // occurrences of each field name so far
    size_t field;                       // its entry in `fields` (unused for the root)
  };
  WrittenText written;
  const std::vector<TextToken> tokens = Tokenize(text, &written.tokenizer_errors);
  written.end = tokens.back().position;
  std::vector<OpenMessage> open = {{scenario::Scenario::descriptor(), "", {}, 0}};
  const size_t end = tokens.size() - 1;
  size_t i = 0;
  while (i < end) {
    if (IsCloser(tokens[i])) {
      if (open.size() > 1) {
        written.fields[open.back().field].end_offset = tokens[i].end_offset;
        open.pop_back();
      } else {
        written.stray_closers.push_back(tokens[i].position);
      }
      ++i;
      continue;
    }
    if (tokens[i].type != google::protobuf::io::Tokenizer::TYPE_IDENTIFIER) {
      ++i;
      continue;
    }
    OpenMessage& scope = open.back();
    WrittenField field;
    field.parent = scope.type;
    field.field = scope.type == nullptr ? nullptr : scope.type->FindFieldByName(tokens[i].text);
    field.path =
        scope.path.empty() ? tokens[i].text : absl::StrCat(scope.path, ".", tokens[i].text);
    const int index = scope.counts[tokens[i].text]++;
    if (field.field != nullptr && field.field->is_repeated()) {
      absl::StrAppend(&field.path, "[", index, "]");
    }
    field.name = tokens[i].position;
    field.begin_offset = tokens[i].begin_offset;
    size_t j = i + 1;
    if (j < end && IsSymbol(tokens[j], ":")) ++j;
    if (j < end && IsOpener(tokens[j])) {
      field.is_message = true;
      field.value = field.after = tokens[j].position;
      field.end_offset = tokens.back().begin_offset;  // until its closing brace is found
      written.fields.push_back(field);
      const google::protobuf::Descriptor* type =
          field.field == nullptr ? nullptr : field.field->message_type();
      open.push_back({type, field.path, {}, written.fields.size() - 1});
      i = j + 1;
      continue;
    }
    field.value = tokens[j].position;
    field.value_text = tokens[j].text;
    const size_t next = SkipScalarValue(tokens, j, end);
    field.after = tokens[next].position;
    field.end_offset = tokens[next > i + 1 ? next - 1 : i].end_offset;
    written.fields.push_back(std::move(field));
    i = std::max(next, i + 1);
  }
  if (open.size() > 1) written.unclosed = open.back().field;
  return written;
}

// The field a problem at `position` is about, if any.
const WrittenField* FieldAbout(const WrittenText& written, TextPosition position) {
  const WrittenField* about = nullptr;
  for (const WrittenField& field : written.fields) {
    if (field.name < position && position <= field.after) about = &field;
  }
  return about;
}

std::string FieldNames(const google::protobuf::Descriptor& type) {
  std::vector<std::string> names;
  for (int i = 0; i < type.field_count(); ++i) names.push_back(type.field(i)->name());
  return absl::StrJoin(names, ", ");
}

std::string EnumValueNames(const google::protobuf::EnumDescriptor& type) {
  std::vector<std::string> names;
  for (int i = 0; i < type.value_count(); ++i) names.push_back(type.value(i)->name());
  return absl::StrJoin(names, ", ");
}

// A parser problem in the loader's words: where it is and what is wrong, naming the field.
std::pair<TextPosition, std::string> DescribeProblem(const ParserProblem& problem,
                                                     const WrittenText& written) {
  // At the end of the text, a missing closing brace explains the problem better than the field
  // written last.
  if (problem.position >= written.end && written.unclosed.has_value()) {
    const WrittenField& open = written.fields[*written.unclosed];
    return {problem.position,
            absl::StrCat("the file ends before the '}' that closes ", open.path, " (opened at ",
                         open.name.line + 1, ":", open.name.column + 1, ")")};
  }
  const WrittenField* field = FieldAbout(written, problem.position);
  if (field == nullptr) {
    if (std::find(written.stray_closers.begin(), written.stray_closers.end(), problem.position) !=
        written.stray_closers.end()) {
      return {problem.position, "this '}' closes nothing"};
    }
    return {problem.position, problem.message};
  }
  if (field->field == nullptr && field->parent != nullptr &&
      absl::StrContains(problem.message, "has no field named")) {
    return {field->name, absl::StrCat(field->path, ": no such field in ", field->parent->name(),
                                      " (allowed: ", FieldNames(*field->parent), ")")};
  }
  if (field->field != nullptr && field->field->enum_type() != nullptr &&
      absl::StartsWith(problem.message, "Unknown enumeration value")) {
    return {field->value,
            absl::StrCat(field->path, ": unknown value \"", field->value_text,
                         "\" (allowed: ", EnumValueNames(*field->field->enum_type()), ")")};
  }
  // Problems with the value point at the value; problems with the field (given twice, or with
  // another member of its oneof) point at its name.
  const bool about_value = !field->is_message && !absl::StrContains(problem.message, "specified");
  return {about_value ? field->value : field->name,
          absl::StrCat(field->path, ": ", problem.message)};
}

// Replaces the bytes [begin, end) with spaces, keeping line breaks and tabs so that every later
// position stays where it was.
void BlankOut(std::string& text, size_t begin, size_t end) {
  for (size_t i = begin; i < end && i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\t') text[i] = ' ';
  }
}

// Parses `text` into `scenario` (and where each field was written into `tree`). On syntax errors,
// returns them all (at most kErrorsMax), in file order, each "FILE:LINE:COLUMN: ...".
std::vector<std::string> ParseText(const std::string& file, absl::string_view text,
                                   scenario::Scenario& scenario, TextFormat::ParseInfoTree& tree) {
  std::set<std::pair<TextPosition, std::string>> found;
  std::string current(text);
  for (size_t attempt = 0; attempt < Limits::kErrorsMax && found.size() < Limits::kErrorsMax;
       ++attempt) {
    ProblemCollector collector;
    TextFormat::Parser parser;
    parser.RecordErrorsTo(&collector);
    parser.AllowUnknownField(true);
    // Locations matter only when the first parse succeeds: later attempts report errors only.
    if (attempt == 0) parser.WriteLocationsTo(&tree);
    scenario.Clear();
    const bool parsed = parser.ParseFromString(current, &scenario);
    if (collector.problems().empty()) {
      if (!parsed) found.insert({TextPosition{}, "not a valid scenario"});
      break;
    }
    const WrittenText written = ScanWrittenFields(current);
    const ParserProblem* first_error = nullptr;
    bool unreadable = false;
    for (const ParserProblem& problem : collector.problems()) {
      // After text the tokenizer could not read (say a string that swallowed a '}'), the parser's
      // complaints about unknown fields are echoes of that one mistake.
      if (unreadable && problem.warning) continue;
      found.insert(DescribeProblem(problem, written));
      if (!problem.warning && first_error == nullptr) first_error = &problem;
      if (written.tokenizer_errors.contains(problem.position)) unreadable = true;
    }
    if (parsed || first_error == nullptr || unreadable) break;
    // The parser stopped. When the error is about the value of a field it knows, parse again
    // without that field to find the errors after it; otherwise (an unknown field that is not
    // followed by a value, a missing '}') what follows cannot be read reliably.
    if (first_error->position >= written.end) break;
    const WrittenField* field = FieldAbout(written, first_error->position);
    if (field == nullptr || field->field == nullptr) break;
    BlankOut(current, field->begin_offset, field->end_offset);
  }
  std::vector<std::string> errors;
  for (const auto& [position, message] : found) {
    if (errors.size() >= Limits::kErrorsMax) break;
    errors.push_back(position.line < 0 ? absl::StrCat(file, ": ", message)
                                       : absl::StrCat(file, ":", position.line + 1, ":",
                                                      position.column + 1, ": ", message));
  }
  return errors;
}

// --- Semantic validation ---------------------------------------------------------------------

// One message under validation: where it is in the file and in the scenario, so that an error
// names the line and the field path.
class Scope {
 public:
  Scope(const Message& message, const TextFormat::ParseInfoTree* tree, std::string path, int line,
        const std::string* file, std::vector<std::string>* errors)
      : message_(message),
        tree_(tree),
        path_(std::move(path)),
        line_(line),
        file_(file),
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
    errors_->push_back(
        absl::StrCat(*file_, ":", Line(field, index), ": ", FieldPath(field, index), ": ", text));
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

std::string Allowed(int64_t low, int64_t high) {
  return absl::StrCat(" (allowed: ", low, "..", high, ")");
}

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
      : scenario_(scenario),
        root_(root),
        run_ms_(scenario.run().duration_ms()),
        run_ms_valid_(run_ms_ >= 1 && run_ms_ <= Limits::kRunMsMax) {}

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
               Limits::kClockDriftPpmMax);
    if (scenario_.cluster().has_latency_us()) {
      CheckRangeMessage(cluster, "latency_us", scenario_.cluster().latency_us(), 1,
                        Limits::kLatencyUsMax);
    }
    CheckRange(cluster, "group_initial_rebalance_delay_ms",
               scenario_.cluster().group_initial_rebalance_delay_ms(), 0,
               Limits::kRebalanceDelayMsMax);
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

  void CheckTopicList(const Scope& scope,
                      const google::protobuf::RepeatedPtrField<std::string>& topics) {
    for (int i = 0; i < topics.size(); ++i) {
      if (!topic_names_.contains(topics.Get(i))) {
        scope.Error("topics", i, absl::StrCat("no topic is named \"", topics.Get(i), "\""));
      }
    }
  }

  // The proto's naming rule: entry `index` of its kind creates nodes "<name>-0" ..
  // "<name>-<count-1>"; entries after the first must name themselves, and every node name must be
  // unique.
  void CheckNodeNames(const Scope& scope, int index, bool has_name, const std::string& name,
                      int count) {
    if (index > 0 && !has_name) {
      scope.Error("name", "entries after the first must name themselves (name: \"...\")");
      return;
    }
    if (name.empty() || name.size() > Limits::kClientNameBytesMax ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.-") != std::string::npos) {
      scope.Error("name",
                  absl::StrCat("is \"", name, "\" (allowed: 1 to ", Limits::kClientNameBytesMax,
                               " lower-case letters, digits, '_', '.' or '-')"));
      return;
    }
    for (int i = 0; i < std::min(count, Limits::kClientNodesMax); ++i) {
      const std::string node = absl::StrCat(name, "-", i);
      if (!node_names_.insert(node).second) {
        scope.Error("name", absl::StrCat("node name \"", node,
                                         "\" is used twice: give each client entry its own name"));
        return;
      }
    }
  }

  void CheckClients() {
    for (int i = 0; i < scenario_.cluster().brokers(); ++i) {
      node_names_.insert(absl::StrCat("broker-", i));
    }
    int client_nodes = 0;
    for (int i = 0; i < scenario_.producers_size(); ++i) {
      const scenario::Producer& producer = scenario_.producers(i);
      const Scope scope = root_.Nested("producers", i);
      CheckRange(scope, "count", producer.count(), 1, Limits::kClientNodesMax);
      CheckNodeNames(scope, i, producer.has_name(), producer.name(), producer.count());
      client_nodes += std::max(0, producer.count());
      CheckTopicList(scope, producer.topics());
      if (!(producer.rate_per_s() > 0 && producer.rate_per_s() <= Limits::kRatePerSecondMax)) {
        scope.Error("rate_per_s",
                    absl::StrCat("must be > 0 and at most ", Limits::kRatePerSecondMax));
      }
      CheckRange(scope, "key_count", producer.key_count(), 1, Limits::kKeyCountMax);
      if (!(producer.zipf_exponent() > 0 && producer.zipf_exponent() <= Limits::kZipfExponentMax)) {
        scope.Error("zipf_exponent",
                    absl::StrCat("must be > 0 and at most ", Limits::kZipfExponentMax));
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
      // Kafka's producer refuses a delivery timeout that cannot cover one linger and one request.
      if (producer.delivery_timeout_ms() < producer.linger_ms() + producer.request_timeout_ms()) {
        scope.Error("delivery_timeout_ms",
                    absl::StrCat("is ", producer.delivery_timeout_ms(),
                                 ": must be at least linger_ms + request_timeout_ms (",
                                 producer.linger_ms() + producer.request_timeout_ms(), ")"));
      }
      if (run_ms_valid_) CheckWindow(scope, producer.active(), run_ms_);
    }
    for (int i = 0; i < scenario_.consumers_size(); ++i) {
      const scenario::Consumer& consumer = scenario_.consumers(i);
      const Scope scope = root_.Nested("consumers", i);
      CheckRange(scope, "count", consumer.count(), 1, Limits::kClientNodesMax);
      CheckNodeNames(scope, i, consumer.has_name(), consumer.name(), consumer.count());
      client_nodes += std::max(0, consumer.count());
      CheckTopicList(scope, consumer.topics());
      CheckRange(scope, "request_timeout_ms", consumer.request_timeout_ms(), 1,
                 Limits::kTimeoutMsMax);
      if (run_ms_valid_) CheckWindow(scope, consumer.active(), run_ms_);
      if (consumer.mode_case() == scenario::Consumer::MODE_NOT_SET) {
        scope.Error("assign", "say how the consumer reads: assign {} or group {}");
      }
      if (consumer.has_group()) {
        const scenario::Group& group = consumer.group();
        const Scope group_scope = scope.Nested("group");
        if (group.group_id().empty() || group.group_id().size() > Limits::kGroupIdBytesMax) {
          group_scope.Error("group_id",
                            absl::StrCat("must be 1 to ", Limits::kGroupIdBytesMax, " characters"));
        }
        if (group.has_assignor() && group.assignor() != "range" &&
            group.assignor() != "roundrobin") {
          group_scope.Error("assignor",
                            "is \"" + group.assignor() + "\" (allowed: \"range\", \"roundrobin\")");
        }
        CheckRange(group_scope, "session_timeout_ms", group.session_timeout_ms(),
                   Limits::kSessionTimeoutMsMin, Limits::kSessionTimeoutMsMax);
        CheckRange(group_scope, "heartbeat_interval_ms", group.heartbeat_interval_ms(), 1,
                   group.session_timeout_ms() - 1);
        CheckRange(group_scope, "commit_interval_ms", group.commit_interval_ms(), 1,
                   Limits::kTimeoutMsMax);
      }
    }
    if (client_nodes > Limits::kClientNodesMax) {
      root_.Error("producers", absl::StrCat(client_nodes, " client nodes in all; at most ",
                                            Limits::kClientNodesMax));
    }
  }

  void CheckPattern(const Scope& scope, const char* field, int index, const std::string& pattern) {
    if (MatchNodes(scenario_, pattern).empty()) {
      scope.Error(field, index,
                  absl::StrCat("\"", pattern, "\" matches no node (nodes: ",
                               absl::StrJoin(ScenarioNodeNames(scenario_), ", "),
                               "; or \"brokers\", \"clients\", patterns with '*')"));
    }
  }
  void CheckPatterns(const Scope& scope, const char* field,
                     const google::protobuf::RepeatedPtrField<std::string>& patterns) {
    for (int i = 0; i < patterns.size(); ++i) CheckPattern(scope, field, i, patterns.Get(i));
  }

  // A partition or link delay acts on every link from a node of `from` to a different node of `to`
  // (empty: every other node); one that names no such link would do nothing.
  void CheckCutsSomething(const Scope& scope, const char* field,
                          const google::protobuf::RepeatedPtrField<std::string>& from,
                          const google::protobuf::RepeatedPtrField<std::string>& to) {
    std::set<std::string> from_nodes, to_nodes;
    for (const auto* patterns : {&from, &to}) {
      for (const std::string& pattern : *patterns) {
        std::vector<std::string> matched = MatchNodes(scenario_, pattern);
        // A pattern that matches nothing, or an empty side_a or from, is reported already.
        if (matched.empty()) return;
        (patterns == &from ? from_nodes : to_nodes).insert(matched.begin(), matched.end());
      }
    }
    if (from_nodes.empty()) return;
    if (to.empty()) {
      for (std::string& node : ScenarioNodeNames(scenario_)) {
        if (!from_nodes.contains(node)) to_nodes.insert(std::move(node));
      }
    }
    const bool some_link = std::any_of(to_nodes.begin(), to_nodes.end(), [&](const std::string& b) {
      return from_nodes.size() > 1 || !from_nodes.contains(b);
    });
    if (!some_link) scope.Error(field, "the two sides leave no link between different nodes");
  }

  void CheckDuration(const Scope& scope, const char* field, int64_t value) {
    CheckRange(scope, field, value, 1, Limits::kFaultDurationMsMax);
  }

  void CheckProbability(const Scope& scope, double probability) {
    if (!(probability >= 0 && probability <= 1)) scope.Error("probability", "must lie in [0, 1]");
  }

  void CheckFault(const Scope& scope, const scenario::Fault& fault) {
    if (run_ms_valid_) CheckRange(scope, "at_ms", fault.at_ms(), 0, run_ms_ - 1);
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
        CheckCutsSomething(nested, "side_a", fault.partition().side_a(),
                           fault.partition().side_b());
        CheckDuration(nested, "duration_ms", fault.partition().duration_ms());
        break;
      }
      case scenario::Fault::kLinkDelay: {
        const Scope nested = scope.Nested("link_delay");
        if (fault.link_delay().from().empty()) nested.Error("from", "name at least one node");
        CheckPatterns(nested, "from", fault.link_delay().from());
        CheckPatterns(nested, "to", fault.link_delay().to());
        CheckCutsSomething(nested, "from", fault.link_delay().from(), fault.link_delay().to());
        CheckRange(nested, "extra_delay_ms", fault.link_delay().extra_delay_ms(), 1,
                   Limits::kExtraDelayMsMax);
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
    if (mix.has_interval_ms()) {
      CheckRangeMessage(scope, "interval_ms", mix.interval_ms(), 1, Limits::kRunMsMax);
    } else {
      scope.Error("interval_ms", "a fault mix needs interval_ms, the mean time between faults");
    }
    if (mix.kinds().empty()) scope.Error("kinds", "a fault mix needs at least one kind");
    int64_t weight_max_total = 0;
    std::map<int, int> first_of_kind;
    for (int i = 0; i < mix.kinds_size(); ++i) {
      const scenario::WeightedFault& kind = mix.kinds(i);
      const Scope kind_scope = scope.Nested("kinds", i);
      auto [first, inserted] = first_of_kind.insert({kind.kind(), i});
      if (!inserted) {
        kind_scope.Error("kind", absl::StrCat(scenario::FaultKind_Name(kind.kind()),
                                              " is listed already (kinds[", first->second, "])"));
      }
      CheckRangeMessage(kind_scope, "weight", kind.weight(), 0, Limits::kFaultWeightMax);
      // As the world draws it: a weight that gives neither min nor max is 1.
      const bool weight_given = kind.weight().has_min() || kind.weight().has_max();
      weight_max_total += !weight_given             ? 1
                          : kind.weight().has_max() ? kind.weight().max()
                                                    : kind.weight().min();
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
      CheckRangeMessage(scope, "extra_delay_ms", mix.extra_delay_ms(), 1, Limits::kExtraDelayMsMax);
    }
    if (mix.has_disk_fault_ppm()) {
      CheckRangeMessage(scope, "disk_fault_ppm", mix.disk_fault_ppm(), 0, kPartsPerMillion);
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
    if (!scenario_.expect().anomalies().empty() && scenario_.expect().verdict() != scenario::FAIL) {
      expect.Error("anomalies", "anomalies are expected only with verdict: FAIL");
    }
    const auto& skipped = scenario_.checks().skip();
    for (int i = 0; i < scenario_.expect().anomalies_size(); ++i) {
      const int anomaly = scenario_.expect().anomalies(i);
      if (std::find(skipped.begin(), skipped.end(), anomaly) != skipped.end()) {
        expect.Error("anomalies", i,
                     absl::StrCat(scenario::Anomaly_Name(static_cast<scenario::Anomaly>(anomaly)),
                                  " is in checks.skip, so it is never reported"));
      }
    }
  }

  const scenario::Scenario& scenario_;
  const Scope& root_;
  const int64_t run_ms_;
  // Windows and fault times are checked against the run only when its duration is itself valid
  // (an invalid one is reported once, not again for every window and fault).
  const bool run_ms_valid_;
  std::set<std::string> topic_names_;
  std::set<std::string> node_names_;
};

}  // namespace

absl::StatusOr<scenario::Scenario> ParseScenario(absl::string_view text,
                                                 absl::string_view file_name) {
  const std::string file(file_name);
  if (text.size() > Limits::kFileBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": larger than ", Limits::kFileBytesMax, " bytes"));
  }
  TextFormat::ParseInfoTree tree;
  scenario::Scenario scenario;
  std::vector<std::string> errors = ParseText(file, text, scenario, tree);
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
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
  // Read one byte more than a scenario may have, so that ParseScenario sees a file is too large
  // without the loader reading all of it.
  std::string text(Limits::kFileBytesMax + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": cannot read the scenario file"));
  text.resize(static_cast<size_t>(in.gcount()));
  return ParseScenario(text, path);
}

std::vector<std::string> ScenarioNodeNames(const scenario::Scenario& scenario) {
  std::vector<std::string> names;
  for (int i = 0; i < scenario.cluster().brokers(); ++i)
    names.push_back(absl::StrCat("broker-", i));
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
        NodePatternMatches(pattern, names[i])) {
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
