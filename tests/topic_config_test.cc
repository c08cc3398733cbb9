// Tests of topic names and topic configs (broker/server/topic_config.h): Kafka's name rules, every
// supported config's parsing, canonical form and LogConfig field, validation messages that name the
// config and the value, the error kinds the server maps to Kafka codes, DescribeConfigs output, and
// IncrementalAlterConfigs operations. Pure functions: no Env.
#include "broker/server/topic_config.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace runnel::server {
namespace {

using ::testing::HasSubstr;

// Valid names pass; each kind of invalid name is refused with a message naming the problem and the
// kInvalidTopicName kind.
TEST(TopicNameTest, KafkaRules) {
  for (const std::string& name :
       {std::string("a"), std::string("orders"), std::string("A.b_c-D9"),
        std::string("__consumer_offsets"), std::string("..."), std::string(kTopicNameLengthMax, 'x')}) {
    EXPECT_TRUE(ValidateTopicName(name).ok()) << name;
  }
  struct Case {
    std::string name;
    std::string message_part;
  };
  const std::vector<Case> bad = {
      {"", "empty"},
      {std::string(kTopicNameLengthMax + 1, 'x'), "250 characters"},
      {".", "not allowed"},
      {"..", "not allowed"},
      {"a b", "illegal character ' '"},
      {"a/b", "illegal character '/'"},
      {"caf\xc3\xa9", "illegal character"},
  };
  for (const Case& c : bad) {
    const absl::Status status = ValidateTopicName(c.name);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(status.message(), HasSubstr(c.message_part)) << c.name;
    EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidTopicName);
  }
}

// '.' and '_' collide; nothing else does.
TEST(TopicNameTest, DotUnderscoreCollisions) {
  EXPECT_TRUE(TopicNamesCollide("a.b", "a_b"));
  EXPECT_TRUE(TopicNamesCollide("a_b", "a.b"));
  EXPECT_TRUE(TopicNamesCollide("a.b", "a.b"));
  EXPECT_FALSE(TopicNamesCollide("a.b", "a-b"));
  EXPECT_FALSE(TopicNamesCollide("a.b", "a.bc"));
}

// The error kind travels as a payload and only on kInvalidArgument.
TEST(TopicRequestErrorTest, KindRoundTrips) {
  for (TopicRequestError kind :
       {TopicRequestError::kInvalidTopicName, TopicRequestError::kInvalidPartitions,
        TopicRequestError::kInvalidReplicationFactor, TopicRequestError::kInvalidConfig}) {
    const absl::Status status = TopicRequestErrorStatus(kind, "why");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), "why");
    EXPECT_EQ(GetTopicRequestError(status), kind);
  }
  EXPECT_EQ(GetTopicRequestError(absl::InvalidArgumentError("plain")), TopicRequestError::kNone);
  EXPECT_EQ(GetTopicRequestError(absl::NotFoundError("x")), TopicRequestError::kNone);
  EXPECT_EQ(GetTopicRequestError(absl::OkStatus()), TopicRequestError::kNone);
}

// Every supported config, set to a non-default value, reaches its LogConfig field, and its text is
// canonicalized (whitespace, '+', leading zeros, list order).
TEST(TopicConfigTest, EveryConfigReachesItsField) {
  const storage::LogConfig defaults;
  const TopicConfigOverrides overrides = {
      {"cleanup.policy", " delete , compact "},
      {"delete.retention.ms", "+0012"},
      {"flush.ms", "250"},
      {"flush.policy", "interval"},
      {"index.interval.bytes", "0"},
      {"max.message.bytes", "2000000"},
      {"message.timestamp.type", "LogAppendTime"},
      {"min.cleanable.dirty.ratio", "0.250"},
      {"retention.bytes", "-1"},
      {"retention.ms", "-1"},
      {"segment.bytes", "100000"},
      {"segment.ms", "60000"},
      {"write.buffer.bytes", "262144"},
  };
  absl::StatusOr<storage::LogConfig> config = ResolveLogConfig(defaults, overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cleanup_policy, storage::CleanupPolicy::kCompactAndDelete);
  EXPECT_EQ(config->delete_retention_ms, 12);
  EXPECT_EQ(config->flush_interval_ms, 250);
  EXPECT_EQ(config->flush_policy, storage::FlushPolicy::kInterval);
  EXPECT_EQ(config->index_interval_bytes, 0u);
  EXPECT_EQ(config->max_message_bytes, 2000000u);
  EXPECT_EQ(config->message_timestamp_type, storage::TimestampType::kLogAppendTime);
  EXPECT_EQ(config->min_cleanable_dirty_ratio, 0.25);
  EXPECT_EQ(config->retention_bytes, -1);
  EXPECT_EQ(config->retention_ms, -1);
  EXPECT_EQ(config->segment_bytes, 100000u);
  EXPECT_EQ(config->segment_ms, 60000);
  EXPECT_EQ(config->write_buffer_bytes, 262144u);

  absl::StatusOr<TopicConfigOverrides> canonical = CanonicalTopicConfigOverrides(overrides);
  ASSERT_TRUE(canonical.ok());
  EXPECT_EQ(canonical->at("cleanup.policy"), "compact,delete");
  EXPECT_EQ(canonical->at("delete.retention.ms"), "12");
  EXPECT_EQ(canonical->at("min.cleanable.dirty.ratio"), "0.25");
  EXPECT_EQ(canonical->at("flush.policy"), "interval");
}

// cleanup.policy accepts either policy alone and both in either order.
TEST(TopicConfigTest, CleanupPolicySpellings) {
  const storage::LogConfig defaults;
  struct Case {
    std::string text;
    storage::CleanupPolicy policy;
    std::string canonical;
  };
  for (const Case& c : std::vector<Case>{
           {"delete", storage::CleanupPolicy::kDelete, "delete"},
           {"compact", storage::CleanupPolicy::kCompact, "compact"},
           {"compact,delete", storage::CleanupPolicy::kCompactAndDelete, "compact,delete"},
           {"delete,compact", storage::CleanupPolicy::kCompactAndDelete, "compact,delete"},
           {"delete,delete", storage::CleanupPolicy::kDelete, "delete"}}) {
    absl::StatusOr<storage::LogConfig> config =
        ResolveLogConfig(defaults, {{"cleanup.policy", c.text}});
    ASSERT_TRUE(config.ok()) << c.text << ": " << config.status();
    EXPECT_EQ(config->cleanup_policy, c.policy) << c.text;
    EXPECT_EQ(CanonicalTopicConfigOverrides({{"cleanup.policy", c.text}})->at("cleanup.policy"),
              c.canonical);
  }
}

// Kafka's flush.messages=1 means flush.policy=always; its "never" value has no effect; other counts
// and a conflicting flush.policy are refused.
TEST(TopicConfigTest, FlushMessagesAndFlushPolicy) {
  storage::LogConfig defaults;
  defaults.flush_policy = storage::FlushPolicy::kNever;
  absl::StatusOr<storage::LogConfig> config = ResolveLogConfig(defaults, {{"flush.messages", "1"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->flush_policy, storage::FlushPolicy::kAlways);
  config = ResolveLogConfig(defaults, {{"flush.messages", "9223372036854775807"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->flush_policy, storage::FlushPolicy::kNever);
  config = ResolveLogConfig(defaults, {{"flush.messages", "1"}, {"flush.policy", "always"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->flush_policy, storage::FlushPolicy::kAlways);
  // flush.ms alone changes only the interval.
  config = ResolveLogConfig(defaults, {{"flush.ms", "5"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->flush_policy, storage::FlushPolicy::kNever);
  EXPECT_EQ(config->flush_interval_ms, 5);

  absl::Status status = ResolveLogConfig(defaults, {{"flush.messages", "5"}}).status();
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  EXPECT_THAT(status.message(), HasSubstr("flush.messages"));
  EXPECT_THAT(status.message(), HasSubstr("'5'"));
  status = ResolveLogConfig(defaults, {{"flush.messages", "1"}, {"flush.policy", "never"}}).status();
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  EXPECT_THAT(status.message(), HasSubstr("conflicts with flush.policy=never"));
}

// Each kind of bad value is refused with a message that names the config and quotes the value.
TEST(TopicConfigTest, ValidationNamesConfigAndValue) {
  const storage::LogConfig defaults;
  struct Case {
    std::string name;
    std::string value;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"retention.ms", "abc", "not a 64-bit integer"},
      {"retention.ms", "-2", "between -1 and"},
      {"retention.bytes", "99999999999999999999", "not a 64-bit integer"},
      {"segment.bytes", "10", "between 61 and"},
      {"segment.bytes", "4294967296", "between 61 and 2147483647"},
      {"segment.ms", "0", "between 1 and"},
      {"segment.ms", absl::StrCat(kTimerMsMax + 1), "between 1 and"},
      {"flush.ms", "0", "between 1 and"},
      {"delete.retention.ms", "-1", "between 0 and"},
      {"max.message.bytes", "100000000", "between 61 and"},
      {"index.interval.bytes", "-5", "between 0 and"},
      {"write.buffer.bytes", "1048577", "between 0 and 1048576"},
      {"write.buffer.bytes", "-1", "between 0 and"},
      {"min.cleanable.dirty.ratio", "1.5", "between 0 and 1"},
      {"min.cleanable.dirty.ratio", "nan", "not a number"},
      {"min.cleanable.dirty.ratio", "half", "not a number"},
      {"message.timestamp.type", "createtime", "one of CreateTime, LogAppendTime"},
      {"flush.policy", "sometimes", "one of always, interval, never"},
      {"cleanup.policy", "compact,shred", "'shred' is not one of compact, delete"},
      {"cleanup.policy", "", "is not one of"},
      {"retention.ms", "", "not a 64-bit integer"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ResolveLogConfig(defaults, {{c.name, c.value}}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name << "=" << c.value;
    EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
    EXPECT_THAT(status.message(), HasSubstr(c.name)) << c.value;
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("'", c.value, "'"))) << c.name;
    EXPECT_THAT(status.message(), HasSubstr(c.why)) << c.name << "=" << c.value;
  }
  // Unknown names are refused, naming the name.
  absl::Status status = ResolveLogConfig(defaults, {{"min.insync.replicas", "2"}}).status();
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  EXPECT_THAT(status.message(), HasSubstr("unknown topic config 'min.insync.replicas'"));
  // Values longer than the bound are refused without echoing all of them.
  status = ResolveLogConfig(defaults, {{"retention.ms", std::string(kConfigValueBytesMax + 1, '1')}})
               .status();
  EXPECT_THAT(status.message(), HasSubstr("longer than"));
}

// DescribeConfigs: every supported config, sorted, with its source; overridden ones show the
// override, others the default; flush.messages follows the effective flush policy.
TEST(TopicConfigTest, DescribeListsEveryConfigSorted) {
  storage::LogConfig defaults;
  defaults.retention_ms = 3600000;
  absl::StatusOr<std::vector<ConfigDescription>> described =
      DescribeTopicConfig(defaults, {{"segment.bytes", "100000"}, {"flush.policy", "never"}});
  ASSERT_TRUE(described.ok()) << described.status();
  ASSERT_EQ(described->size(), SupportedTopicConfigNames().size());
  for (size_t i = 0; i < described->size(); ++i) {
    EXPECT_EQ((*described)[i].name, SupportedTopicConfigNames()[i]);
    if (i > 0) {
      EXPECT_LT((*described)[i - 1].name, (*described)[i].name);
    }
    EXPECT_FALSE((*described)[i].read_only);
    EXPECT_FALSE((*described)[i].sensitive);
  }
  auto find = [&](absl::string_view name) {
    for (const ConfigDescription& d : *described) {
      if (d.name == name) return d;
    }
    ADD_FAILURE() << name;
    return ConfigDescription{};
  };
  EXPECT_EQ(find("segment.bytes").value, "100000");
  EXPECT_EQ(find("segment.bytes").source, ConfigSource::kTopicOverride);
  EXPECT_FALSE(find("segment.bytes").is_default);
  EXPECT_EQ(find("retention.ms").value, "3600000");
  EXPECT_EQ(find("retention.ms").source, ConfigSource::kBrokerDefault);
  EXPECT_TRUE(find("retention.ms").is_default);
  EXPECT_EQ(find("cleanup.policy").value, "delete");
  EXPECT_EQ(find("message.timestamp.type").value, "CreateTime");
  EXPECT_EQ(find("min.cleanable.dirty.ratio").value, "0.5");
  EXPECT_EQ(find("flush.policy").value, "never");
  EXPECT_EQ(find("flush.messages").value, "9223372036854775807");
  EXPECT_EQ(find("max.message.bytes").value, "1048588");

  // Every described value is a valid override that leaves the effective config unchanged.
  TopicConfigOverrides all;
  for (const ConfigDescription& d : *described) all[d.name] = d.value;
  absl::StatusOr<storage::LogConfig> from_description = ResolveLogConfig(defaults, all);
  ASSERT_TRUE(from_description.ok()) << from_description.status();
  absl::StatusOr<storage::LogConfig> original =
      ResolveLogConfig(defaults, {{"segment.bytes", "100000"}, {"flush.policy", "never"}});
  ASSERT_TRUE(original.ok());
  EXPECT_EQ(from_description->segment_bytes, original->segment_bytes);
  EXPECT_EQ(from_description->flush_policy, original->flush_policy);
  EXPECT_EQ(from_description->retention_ms, original->retention_ms);
}

// IncrementalAlterConfigs: SET and DELETE on any config, APPEND and SUBTRACT on cleanup.policy
// starting from its effective value; the result is canonical and validated.
TEST(TopicConfigTest, ApplyConfigChanges) {
  const storage::LogConfig defaults;  // cleanup.policy=delete
  absl::StatusOr<TopicConfigOverrides> result = ApplyConfigChanges(
      defaults, {{"retention.ms", "1000"}},
      {{"segment.bytes", ConfigOp::kSet, "0200000"}, {"retention.ms", ConfigOp::kDelete, ""},
       {"cleanup.policy", ConfigOp::kAppend, "compact"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, (TopicConfigOverrides{{"cleanup.policy", "compact,delete"},
                                           {"segment.bytes", "200000"}}));
  result = ApplyConfigChanges(defaults, *result, {{"cleanup.policy", ConfigOp::kSubtract, "delete"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->at("cleanup.policy"), "compact");
  // Deleting what is not set is a no-op.
  result = ApplyConfigChanges(defaults, {}, {{"flush.ms", ConfigOp::kDelete, ""}});
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->empty());

  absl::Status status =
      ApplyConfigChanges(defaults, {}, {{"retention.ms", ConfigOp::kAppend, "5"}}).status();
  EXPECT_EQ(GetTopicRequestError(status), TopicRequestError::kInvalidConfig);
  EXPECT_THAT(status.message(), HasSubstr("retention.ms is not a list"));
  status = ApplyConfigChanges(defaults, {}, {{"cleanup.policy", ConfigOp::kSubtract, "delete"}})
               .status();
  EXPECT_THAT(status.message(), HasSubstr("would become empty"));
  status = ApplyConfigChanges(defaults, {}, {{"bogus.name", ConfigOp::kDelete, ""}}).status();
  EXPECT_THAT(status.message(), HasSubstr("unknown topic config 'bogus.name'"));
  status = ApplyConfigChanges(defaults, {}, {{"segment.ms", ConfigOp::kSet, "soon"}}).status();
  EXPECT_THAT(status.message(), HasSubstr("segment.ms"));
  EXPECT_THAT(status.message(), HasSubstr("'soon'"));
}

// Broker defaults are checked like topic configs, and name the bad setting.
TEST(BrokerDefaultsTest, Validation) {
  EXPECT_TRUE(ValidateBrokerDefaults(BrokerDefaults{}).ok());
  BrokerDefaults defaults;
  defaults.num_partitions = 0;
  EXPECT_THAT(ValidateBrokerDefaults(defaults).message(), HasSubstr("num.partitions = 0"));
  defaults = BrokerDefaults{};
  defaults.num_partitions = kPartitionsPerTopicMax + 1;
  EXPECT_EQ(GetTopicRequestError(ValidateBrokerDefaults(defaults)),
            TopicRequestError::kInvalidPartitions);
  defaults = BrokerDefaults{};
  defaults.default_replication_factor = 0;
  EXPECT_THAT(ValidateBrokerDefaults(defaults).message(), HasSubstr("default.replication.factor"));
  defaults = BrokerDefaults{};
  defaults.log.segment_ms = kTimerMsMax + 1;
  EXPECT_THAT(ValidateBrokerDefaults(defaults).message(), HasSubstr("segment.ms"));
  defaults = BrokerDefaults{};
  defaults.log.min_cleanable_dirty_ratio = 2.0;
  EXPECT_THAT(ValidateBrokerDefaults(defaults).message(), HasSubstr("min.cleanable.dirty.ratio"));
}

// The name list is sorted, and membership agrees with it.
TEST(TopicConfigTest, SupportedNames) {
  const absl::Span<const absl::string_view> names = SupportedTopicConfigNames();
  EXPECT_EQ(names.size(), 14u);
  for (size_t i = 1; i < names.size(); ++i) EXPECT_LT(names[i - 1], names[i]);
  for (absl::string_view name : names) EXPECT_TRUE(IsSupportedTopicConfig(name));
  EXPECT_FALSE(IsSupportedTopicConfig("compression.type"));
  EXPECT_FALSE(IsSupportedTopicConfig(""));
}

}  // namespace
}  // namespace runnel::server
