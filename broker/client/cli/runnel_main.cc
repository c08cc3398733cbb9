// runnel: the command-line tool for a Kafka-compatible cluster (Runnel's, or any other), in the
// spirit of kafka-topics.sh and the console producer and consumer. docs/client.md has examples.
//
//   runnel [--bootstrap-server=HOST:PORT] topics create TOPIC [--partitions=N]
//          [--replication-factor=N] [--config k=v ...] [--validate-only] [--if-not-exists]
//   runnel topics list
//   runnel topics describe TOPIC [--all-configs]
//   runnel topics delete TOPIC
//   runnel produce --topic=T [--partition=P] [--key-separator=SEP] [--acks=all|1|0]
//          [--compression=none|gzip|snappy|lz4|zstd] [--header k=v ...] [--linger-ms=N]
//          [--idempotent]                                    (one record per line of stdin)
//   runnel consume --topic=T [--partition=P] [--from-beginning | --offset=N|earliest|latest]
//          [--max-messages=N] [--timeout-ms=N] [--print-key] [--print-offset]
//          [--print-partition] [--print-timestamp] [--print-headers]
//   runnel consume --topic=T --group=G [--from-beginning] [--max-messages=N] [--timeout-ms=N]
//          [--print-...]              (a member of consumer group G; commits what it printed)
//   runnel groups list
//   runnel groups describe GROUP      (members, committed offsets and lag per partition)
//
// Flags may be written with dashes or underscores, with '=' or as a separate argument. --config
// and --header may be repeated. Exit status: 0 on success, 1 when the operation failed (the error
// names the Kafka error code, e.g. TOPIC_ALREADY_EXISTS), 2 for a usage error.
//
// This file is the process's edge: it reads stdin, writes stdout and runs the event loop; the
// client library underneath runs on that loop through a PosixEnv and never blocks.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "broker/client/admin_client.h"
#include "broker/client/consumer.h"
#include "broker/client/group_consumer.h"
#include "broker/client/kafka_error.h"
#include "broker/client/producer.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_env.h"
#include "broker/storage/compression.h"

ABSL_FLAG(std::string, bootstrap_server, "127.0.0.1:9092",
          "HOST:PORT[,HOST:PORT...] of the brokers to start from");
ABSL_FLAG(int64_t, command_timeout_ms, 30'000,
          "how long a topics command may take, retries included");
ABSL_FLAG(bool, verbose, false, "log the client's connection and retry decisions to stderr");
// topics
ABSL_FLAG(int32_t, partitions, -1, "topics create: partition count (default: the broker's)");
ABSL_FLAG(int32_t, replication_factor, -1,
          "topics create: replication factor (default: the broker's)");
ABSL_FLAG(bool, validate_only, false, "topics create: check the request, create nothing");
ABSL_FLAG(bool, if_not_exists, false, "topics create: succeed if the topic exists already");
ABSL_FLAG(bool, all_configs, false, "topics describe: list every config, not only overrides");
// produce and consume
ABSL_FLAG(std::string, topic, "", "produce/consume: the topic");
ABSL_FLAG(int32_t, partition, -1, "produce/consume: one partition (default: all / partitioner)");
ABSL_FLAG(std::string, key_separator, "",
          "produce: split each line at the first SEP into key and value (default: no key)");
ABSL_FLAG(std::string, acks, "all", "produce: all (-1), 1 or 0");
ABSL_FLAG(std::string, compression, "none", "produce: none, gzip, snappy, lz4 or zstd");
ABSL_FLAG(int64_t, linger_ms, 5, "produce: how long a batch waits for more records");
ABSL_FLAG(bool, idempotent, false, "produce: idempotent producer (needs --acks=all)");
ABSL_FLAG(bool, from_beginning, false, "consume: start at the earliest offset");
ABSL_FLAG(std::string, offset, "",
          "consume: start offset (a number, earliest or latest; a number needs --partition)");
ABSL_FLAG(int64_t, max_messages, -1, "consume: exit after this many records");
ABSL_FLAG(int64_t, timeout_ms, -1, "consume: exit when no record arrived for this long");
ABSL_FLAG(bool, print_key, false, "consume: print the key before the value");
ABSL_FLAG(bool, print_offset, false, "consume: print Offset:N");
ABSL_FLAG(bool, print_partition, false, "consume: print Partition:P");
ABSL_FLAG(bool, print_timestamp, false, "consume: print CreateTime:MS or LogAppendTime:MS");
ABSL_FLAG(bool, print_headers, false, "consume: print headers as k:v,k:v (or NO_HEADERS)");
ABSL_FLAG(std::string, group, "",
          "consume: join this consumer group (partitions are shared with its other members, "
          "and what is printed is committed)");

namespace {

using runnel::EventLoop;
using runnel::PosixEnv;
namespace client = runnel::client;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int64_t kUsPerMs = 1000;
// Bytes read from stdin at a time.
constexpr size_t kStdinChunkBytes = 64 << 10;
// The longest line the producer accepts; a longer one is an error rather than unbounded memory.
constexpr size_t kLineBytesMax = 16 << 20;
// A producer paused by a full buffer resumes reading stdin below this many buffered bytes.
constexpr size_t kResumeBufferedBytesMax = client::ProducerOptions::kBufferBytesMaxDefault / 2;
// How long the tool waits for a consumer's partitions to be found.
constexpr int64_t kTopicLookupTimeoutUs = 30'000'000;

int Fail(const std::string& message) {
  std::fprintf(stderr, "runnel: %s\n", message.c_str());
  return kExitFailure;
}
int Usage(const std::string& message) {
  std::fprintf(stderr, "runnel: %s (see runnel --help)\n", message.c_str());
  return kExitUsage;
}

// What the repeatable flags collected (absl flags keep only the last occurrence).
struct RepeatedFlags {
  std::vector<std::string> configs;
  std::vector<std::string> headers;
};

// Rewrites "--flag-name" to "--flag_name" and takes every --config and --header out of the
// arguments (in both "--x=v" and "--x v" forms).
absl::StatusOr<std::vector<std::string>> PreprocessArgs(int argc, char** argv,
                                                        RepeatedFlags* repeated) {
  std::vector<std::string> args;
  bool flags_ended = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && !flags_ended && arg == "--") flags_ended = true;
    if (i > 0 && !flags_ended && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t j = 2; j < end; ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
      const std::string name = arg.substr(2, end - 2);
      if (name == "config" || name == "header") {
        std::vector<std::string>& into = name == "config" ? repeated->configs : repeated->headers;
        if (end < arg.size()) {
          into.push_back(arg.substr(end + 1));
        } else if (i + 1 < argc) {
          into.push_back(argv[++i]);
        } else {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value k=v"));
        }
        continue;
      }
    }
    args.push_back(std::move(arg));
  }
  return args;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitKeyValue(absl::string_view text,
                                                                  absl::string_view flag) {
  const size_t equals = text.find('=');
  if (equals == absl::string_view::npos || equals == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", text, "' is not of the form key=value"));
  }
  return std::make_pair(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
}

// Everything a command needs: the loop, the Env and the client settings.
struct Context {
  EventLoop& loop;
  PosixEnv& env;
  client::ClientOptions client;
  // Runs the loop until done() or the timeout; false on timeout or a stop signal.
  bool Wait(const std::function<bool()>& done, int64_t timeout_us) {
    return loop.RunUntil(done, timeout_us);
  }
  std::string Interrupted() const {
    return loop.stop_signal() != 0 ? absl::StrCat("interrupted by signal ", loop.stop_signal())
                                   : std::string("timed out");
  }
};

std::unique_ptr<client::AdminClient> MakeAdmin(Context& context) {
  client::AdminOptions options;
  options.client = context.client;
  options.api_timeout_ms = absl::GetFlag(FLAGS_command_timeout_ms);
  absl::StatusOr<std::unique_ptr<client::AdminClient>> admin =
      client::AdminClient::Create(context.env, options);
  if (!admin.ok()) return nullptr;
  return *std::move(admin);
}

int64_t CommandTimeoutUs() {
  // A little beyond the admin timeout, so that the client reports its own error first.
  return (absl::GetFlag(FLAGS_command_timeout_ms) + 5'000) * kUsPerMs;
}

int TopicsCreate(Context& context, const std::string& topic, const RepeatedFlags& repeated) {
  client::NewTopic request;
  request.name = topic;
  request.partitions = absl::GetFlag(FLAGS_partitions);
  request.replication_factor = static_cast<int16_t>(absl::GetFlag(FLAGS_replication_factor));
  for (const std::string& config : repeated.configs) {
    absl::StatusOr<std::pair<std::string, std::string>> pair = SplitKeyValue(config, "config");
    if (!pair.ok()) return Usage(std::string(pair.status().message()));
    request.configs[pair->first] = pair->second;
  }
  std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
  if (admin == nullptr) return Fail("bad client settings");
  std::optional<absl::Status> result;
  admin->CreateTopic(std::move(request),
                     client::CreateTopicsOptions{.validate_only = absl::GetFlag(FLAGS_validate_only)},
                     [&](const absl::Status& status) { result = status; });
  if (!context.Wait([&] { return result.has_value(); }, CommandTimeoutUs())) {
    return Fail(absl::StrCat("creating topic ", topic, ": ", context.Interrupted()));
  }
  if (result->code() == absl::StatusCode::kAlreadyExists && absl::GetFlag(FLAGS_if_not_exists)) {
    return kExitOk;
  }
  if (!result->ok()) return Fail(std::string(result->message()));
  std::printf(absl::GetFlag(FLAGS_validate_only) ? "Topic %s would be created.\n"
                                                 : "Created topic %s.\n",
              topic.c_str());
  return kExitOk;
}

int TopicsList(Context& context) {
  std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
  if (admin == nullptr) return Fail("bad client settings");
  std::optional<absl::StatusOr<std::vector<std::string>>> result;
  admin->ListTopics(false, [&](absl::StatusOr<std::vector<std::string>> topics) {
    result = std::move(topics);
  });
  if (!context.Wait([&] { return result.has_value(); }, CommandTimeoutUs())) {
    return Fail(absl::StrCat("listing topics: ", context.Interrupted()));
  }
  if (!result->ok()) return Fail(absl::StrCat("listing topics: ", result->status().message()));
  for (const std::string& topic : **result) std::printf("%s\n", topic.c_str());
  return kExitOk;
}

int TopicsDescribe(Context& context, const std::string& topic) {
  std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
  if (admin == nullptr) return Fail("bad client settings");
  std::optional<absl::StatusOr<client::TopicDescription>> description;
  std::optional<absl::StatusOr<std::vector<client::ConfigEntry>>> configs;
  admin->DescribeTopic(topic, [&](absl::StatusOr<client::TopicDescription> result) {
    description = std::move(result);
  });
  admin->DescribeTopicConfigs(topic, [&](absl::StatusOr<std::vector<client::ConfigEntry>> result) {
    configs = std::move(result);
  });
  if (!context.Wait([&] { return description.has_value() && configs.has_value(); },
                    CommandTimeoutUs())) {
    return Fail(absl::StrCat("describing topic ", topic, ": ", context.Interrupted()));
  }
  if (!description->ok()) return Fail(std::string(description->status().message()));
  if (!configs->ok()) return Fail(std::string(configs->status().message()));
  std::vector<std::string> overrides;
  for (const client::ConfigEntry& entry : **configs) {
    if (entry.source == "DYNAMIC_TOPIC_CONFIG") {
      overrides.push_back(absl::StrCat(entry.name, "=", entry.value.value_or("null")));
    }
  }
  const client::TopicDescription& info = **description;
  const size_t replication = info.partitions.empty() ? 0 : info.partitions[0].replicas.size();
  std::printf("Topic: %s\tPartitionCount: %zu\tReplicationFactor: %zu\tConfigs: %s\n",
              info.name.c_str(), info.partitions.size(), replication,
              absl::StrJoin(overrides, ",").c_str());
  for (const client::PartitionDescription& partition : info.partitions) {
    std::printf("\tTopic: %s\tPartition: %d\tLeader: %s\tReplicas: %s\tIsr: %s\n",
                info.name.c_str(), partition.partition,
                partition.leader_id < 0 ? "none" : absl::StrCat(partition.leader_id).c_str(),
                absl::StrJoin(partition.replicas, ",").c_str(),
                absl::StrJoin(partition.isr, ",").c_str());
  }
  if (absl::GetFlag(FLAGS_all_configs)) {
    for (const client::ConfigEntry& entry : **configs) {
      std::printf("\tConfig: %s=%s\t(%s)\n", entry.name.c_str(),
                  entry.sensitive ? "(sensitive)" : entry.value.value_or("null").c_str(),
                  entry.source.c_str());
    }
  }
  return kExitOk;
}

int TopicsDelete(Context& context, const std::string& topic) {
  std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
  if (admin == nullptr) return Fail("bad client settings");
  std::optional<absl::Status> result;
  admin->DeleteTopic(topic, [&](const absl::Status& status) { result = status; });
  if (!context.Wait([&] { return result.has_value(); }, CommandTimeoutUs())) {
    return Fail(absl::StrCat("deleting topic ", topic, ": ", context.Interrupted()));
  }
  if (!result->ok()) return Fail(std::string(result->message()));
  std::printf("Deleted topic %s.\n", topic.c_str());
  return kExitOk;
}

// Reads stdin line by line and hands each line to the producer, pausing while its buffer is full.
class LineProducer {
 public:
  LineProducer(Context& context, client::Producer& producer, std::string topic,
               std::optional<int32_t> partition, std::string key_separator,
               std::vector<runnel::storage::RecordHeader> headers)
      : context_(context),
        producer_(producer),
        topic_(std::move(topic)),
        partition_(partition),
        key_separator_(std::move(key_separator)),
        headers_(std::move(headers)) {}

  ~LineProducer() {
    if (watch_ != EventLoop::kNoWatch) context_.loop.UnwatchFd(watch_);
  }

  // Starts reading. A pipe or a terminal is watched through the loop; a regular file (which epoll
  // cannot watch, and which is always readable) is read a chunk per loop turn.
  void Start() {
    absl::StatusOr<EventLoop::WatchId> watch =
        context_.loop.WatchFd(STDIN_FILENO, EventLoop::kReadable, [this](uint32_t) { ReadChunk(); });
    if (watch.ok()) {
      watch_ = *watch;
    } else {
      polled_ = true;
      context_.loop.Post([this] { ReadChunk(); });
    }
  }

  bool finished() const { return finished_; }
  const std::string& error() const { return error_; }
  uint64_t sent() const { return sent_; }
  uint64_t failed() const { return failed_; }

 private:
  void ReadChunk() {
    if (finished_ || paused_) return;
    char chunk[kStdinChunkBytes];
    const ssize_t read_bytes = ::read(STDIN_FILENO, chunk, sizeof(chunk));
    if (read_bytes < 0) {
      if (errno == EINTR || errno == EAGAIN) return Again();
      return Finish(absl::StrCat("reading stdin: ", std::strerror(errno)));
    }
    if (read_bytes == 0) {
      if (!pending_.empty()) lines_.push_back(std::move(pending_));
      pending_.clear();
      eof_ = true;
    } else {
      pending_.append(chunk, static_cast<size_t>(read_bytes));
      size_t start = 0;
      for (size_t newline = pending_.find('\n'); newline != std::string::npos;
           newline = pending_.find('\n', start)) {
        lines_.push_back(pending_.substr(start, newline - start));
        start = newline + 1;
      }
      pending_.erase(0, start);
      if (pending_.size() > kLineBytesMax) {
        return Finish(absl::StrCat("line ", line_number_ + lines_.size() + 1, " is longer than ",
                                   kLineBytesMax, " bytes"));
      }
    }
    SendLines();
  }

  // Sends the lines read so far; pauses reading when the producer's buffer is full.
  void SendLines() {
    while (!lines_.empty()) {
      const std::string& line = lines_.front();
      client::ProducerRecord record;
      record.topic = topic_;
      record.partition = partition_;
      record.headers = headers_;
      if (key_separator_.empty()) {
        record.value = line;
      } else {
        const size_t at = line.find(key_separator_);
        if (at == std::string::npos) {
          return Finish(absl::StrCat("line ", line_number_ + 1, " has no key separator '",
                                     key_separator_, "'"));
        }
        record.key = line.substr(0, at);
        record.value = line.substr(at + key_separator_.size());
      }
      const uint64_t number = line_number_ + 1;
      absl::Status accepted =
          producer_.Send(std::move(record), [this, number](absl::StatusOr<client::RecordMetadata> r) {
            if (!r.ok()) {
              ++failed_;
              std::fprintf(stderr, "runnel: line %llu: %s\n",
                           static_cast<unsigned long long>(number),
                           std::string(r.status().message()).c_str());
            }
            // Reading resumes once half the buffer is free again.
            if (paused_ && producer_.buffered_bytes() <= kResumeBufferedBytesMax) Resume();
          });
      if (accepted.code() == absl::StatusCode::kResourceExhausted) {
        Pause();
        return;
      }
      if (!accepted.ok()) return Finish(absl::StrCat("line ", number, ": ", accepted.message()));
      ++sent_;
      ++line_number_;
      lines_.pop_front();
    }
    if (eof_) return Finish("");
    Again();
  }

  void Again() {
    if (polled_ && !finished_ && !paused_) context_.loop.Post([this] { ReadChunk(); });
  }
  void Pause() {
    paused_ = true;
    if (watch_ != EventLoop::kNoWatch) (void)context_.loop.SetInterest(watch_, 0);
  }
  void Resume() {
    paused_ = false;
    if (watch_ != EventLoop::kNoWatch) (void)context_.loop.SetInterest(watch_, EventLoop::kReadable);
    context_.loop.Post([this] {
      if (!finished_) SendLines();
    });
  }
  void Finish(std::string error) {
    finished_ = true;
    error_ = std::move(error);
    if (watch_ != EventLoop::kNoWatch) {
      context_.loop.UnwatchFd(watch_);
      watch_ = EventLoop::kNoWatch;
    }
  }

  Context& context_;
  client::Producer& producer_;
  const std::string topic_;
  const std::optional<int32_t> partition_;
  const std::string key_separator_;
  const std::vector<runnel::storage::RecordHeader> headers_;
  EventLoop::WatchId watch_ = EventLoop::kNoWatch;
  bool polled_ = false;
  bool paused_ = false;
  bool eof_ = false;
  bool finished_ = false;
  std::string error_;
  std::string pending_;
  std::deque<std::string> lines_;
  uint64_t line_number_ = 0;
  uint64_t sent_ = 0;
  uint64_t failed_ = 0;
};

absl::StatusOr<runnel::storage::Compression> ParseCompression(const std::string& name) {
  using runnel::storage::Compression;
  for (Compression codec : {Compression::kNone, Compression::kGzip, Compression::kSnappy,
                            Compression::kLz4, Compression::kZstd}) {
    if (runnel::storage::CompressionName(codec) == name) return codec;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--compression '", name, "' is not one of none, gzip, snappy, lz4, zstd"));
}

int Produce(Context& context, const RepeatedFlags& repeated) {
  const std::string topic = absl::GetFlag(FLAGS_topic);
  if (topic.empty()) return Usage("produce needs --topic");
  client::ProducerOptions options;
  options.client = context.client;
  // As Kafka's producer does: the broker decides whether a missing topic is created.
  options.client.allow_auto_topic_creation = true;
  const std::string acks = absl::GetFlag(FLAGS_acks);
  if (acks == "all" || acks == "-1") {
    options.acks = client::Acks::kAll;
  } else if (acks == "1") {
    options.acks = client::Acks::kLeader;
  } else if (acks == "0") {
    options.acks = client::Acks::kNone;
  } else {
    return Usage(absl::StrCat("--acks '", acks, "' is not one of all, 1, 0"));
  }
  absl::StatusOr<runnel::storage::Compression> compression =
      ParseCompression(absl::GetFlag(FLAGS_compression));
  if (!compression.ok()) return Usage(std::string(compression.status().message()));
  options.compression = *compression;
  options.linger_ms = absl::GetFlag(FLAGS_linger_ms);
  options.idempotent = absl::GetFlag(FLAGS_idempotent);
  std::vector<runnel::storage::RecordHeader> headers;
  for (const std::string& header : repeated.headers) {
    absl::StatusOr<std::pair<std::string, std::string>> pair = SplitKeyValue(header, "header");
    if (!pair.ok()) return Usage(std::string(pair.status().message()));
    headers.push_back({pair->first, pair->second});
  }
  absl::StatusOr<std::unique_ptr<client::Producer>> producer =
      client::Producer::Create(context.env, options);
  if (!producer.ok()) return Usage(std::string(producer.status().message()));
  const int32_t partition_flag = absl::GetFlag(FLAGS_partition);
  std::optional<int32_t> partition;
  if (partition_flag >= 0) partition = partition_flag;

  LineProducer lines(context, **producer, topic, partition, absl::GetFlag(FLAGS_key_separator),
                     std::move(headers));
  lines.Start();
  // No overall timeout: each record's delivery timeout bounds the wait.
  constexpr int64_t kForeverUs = int64_t{1} << 62;
  if (!context.Wait([&] { return lines.finished(); }, kForeverUs)) {
    return Fail(absl::StrCat("producing: ", context.Interrupted()));
  }
  bool flushed = false;
  (*producer)->Flush([&] { flushed = true; });
  if (!context.Wait([&] { return flushed; }, kForeverUs)) {
    return Fail(absl::StrCat("producing: ", context.Interrupted(), " with ",
                             (*producer)->records_pending(), " records unacknowledged"));
  }
  if (!lines.error().empty()) return Fail(lines.error());
  if (lines.failed() > 0) {
    return Fail(absl::StrCat(lines.failed(), " of ", lines.sent(), " records were not delivered"));
  }
  return kExitOk;
}

std::string FormatRecord(const client::TopicPartition& partition,
                         const client::ConsumerRecord& record) {
  std::vector<std::string> fields;
  if (absl::GetFlag(FLAGS_print_timestamp)) {
    fields.push_back(absl::StrCat(record.log_append_time ? "LogAppendTime:" : "CreateTime:",
                                  record.timestamp_ms));
  }
  if (absl::GetFlag(FLAGS_print_partition)) {
    fields.push_back(absl::StrCat("Partition:", partition.partition));
  }
  if (absl::GetFlag(FLAGS_print_offset)) fields.push_back(absl::StrCat("Offset:", record.offset));
  if (absl::GetFlag(FLAGS_print_headers)) {
    if (record.headers.empty()) {
      fields.push_back("NO_HEADERS");
    } else {
      std::vector<std::string> pairs;
      for (const runnel::storage::RecordHeader& header : record.headers) {
        pairs.push_back(absl::StrCat(header.key, ":", header.value.value_or("null")));
      }
      fields.push_back(absl::StrJoin(pairs, ","));
    }
  }
  if (absl::GetFlag(FLAGS_print_key)) fields.push_back(record.key.value_or("null"));
  fields.push_back(record.value.value_or("null"));
  return absl::StrCat(absl::StrJoin(fields, "\t"), "\n");
}

// Keeps the loop turning for the idle timeout of `consume`: done when no record arrived for
// --timeout-ms.
class IdleTimer {
 public:
  IdleTimer(Context& context, int64_t timeout_ms, bool& done)
      : context_(context), timeout_ms_(timeout_ms), done_(done) {}
  ~IdleTimer() {
    if (timer_ != runnel::kNoTimer) context_.env.clock().CancelTimer(timer_);
  }
  void Arm() {
    if (timeout_ms_ < 0) return;
    if (timer_ != runnel::kNoTimer) context_.env.clock().CancelTimer(timer_);
    timer_ = context_.env.clock().ScheduleAfter(timeout_ms_ * kUsPerMs, [this] {
      timer_ = runnel::kNoTimer;
      done_ = true;
    });
  }

 private:
  Context& context_;
  const int64_t timeout_ms_;
  bool& done_;
  runnel::TimerId timer_ = runnel::kNoTimer;
};

// `consume --group`: one member of the group, like kafka-console-consumer --group. Auto-commit
// commits what was printed: records delivered past --max-messages are handed back with a seek, so
// the committed position is exactly after the last printed record, and Close() commits it and
// leaves the group.
int ConsumeGroup(Context& context, const std::string& topic, const std::string& group) {
  const int64_t max_messages = absl::GetFlag(FLAGS_max_messages);
  int64_t printed = 0;
  bool done = max_messages == 0;
  std::string error;
  IdleTimer idle(context, absl::GetFlag(FLAGS_timeout_ms), done);
  std::unique_ptr<client::GroupConsumer> consumer;
  client::GroupConsumerOptions options;
  options.consumer.client = context.client;
  options.group_id = group;
  options.topics = {topic};
  options.auto_offset_reset = absl::GetFlag(FLAGS_from_beginning) ? client::OffsetReset::kEarliest
                                                                  : client::OffsetReset::kLatest;
  options.on_records = [&](client::FetchedRecords fetched) {
    size_t next = 0;
    while (next < fetched.records.size() && !done) {
      const std::string line = FormatRecord(fetched.partition, fetched.records[next]);
      std::fwrite(line.data(), 1, line.size(), stdout);
      ++next;
      ++printed;
      if (max_messages >= 0 && printed >= max_messages) done = true;
    }
    if (next < fetched.records.size()) {
      // Not printed: the position goes back to the first of them, and so does the next commit.
      (void)consumer->Seek(fetched.partition, fetched.records[next].offset);
    }
    std::fflush(stdout);
    if (next > 0) idle.Arm();
  };
  options.on_error = [&](const absl::Status& status) {
    if (consumer->state() == client::GroupConsumer::State::kFailed) {
      error = std::string(status.message());
      done = true;
    } else {
      std::fprintf(stderr, "runnel: warning: %s\n", std::string(status.message()).c_str());
    }
  };
  absl::StatusOr<std::unique_ptr<client::GroupConsumer>> created =
      client::GroupConsumer::Create(context.env, std::move(options));
  if (!created.ok()) return Usage(std::string(created.status().message()));
  consumer = *std::move(created);
  idle.Arm();
  constexpr int64_t kForeverUs = int64_t{1} << 62;
  const bool finished = context.Wait([&] { return done; }, kForeverUs);
  // Close commits the printed positions and leaves the group, so the others take over at once.
  bool closed = false;
  consumer->Close([&] { closed = true; });
  const bool closed_in_time = context.Wait([&] { return closed; }, CommandTimeoutUs());
  std::fflush(stdout);
  std::fprintf(stderr, "Processed a total of %lld messages\n", static_cast<long long>(printed));
  if (!error.empty()) return Fail(error);
  if (!closed_in_time) return Fail(absl::StrCat("leaving group ", group, ": ", context.Interrupted()));
  if (!finished && context.loop.stop_signal() == 0) return Fail("consuming stopped");
  return kExitOk;
}

int GroupsList(Context& context) {
  std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
  if (admin == nullptr) return Fail("bad client settings");
  std::optional<absl::StatusOr<std::vector<client::GroupListing>>> result;
  admin->ListGroups([&](absl::StatusOr<std::vector<client::GroupListing>> groups) {
    result = std::move(groups);
  });
  if (!context.Wait([&] { return result.has_value(); }, CommandTimeoutUs())) {
    return Fail(absl::StrCat("listing groups: ", context.Interrupted()));
  }
  if (!result->ok()) return Fail(absl::StrCat("listing groups: ", result->status().message()));
  for (const client::GroupListing& group : **result) std::printf("%s\n", group.group_id.c_str());
  return kExitOk;
}

// Prints rows of cells with each column padded to its widest cell, as kafka-consumer-groups does.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const std::vector<std::string>& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const std::vector<std::string>& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

// `groups describe`: the group's state, then per partition (committed or assigned) the committed
// offset, the log end offset, the lag and the member that owns it; members without partitions get
// a row of their own.
int GroupsDescribe(Context& context, const std::string& group) {
  std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
  if (admin == nullptr) return Fail("bad client settings");
  std::optional<absl::StatusOr<client::GroupDescription>> description;
  std::optional<absl::StatusOr<std::map<client::TopicPartition, client::OffsetAndMetadata>>> offsets;
  admin->DescribeGroup(group, [&](absl::StatusOr<client::GroupDescription> result) {
    description = std::move(result);
  });
  admin->ListGroupOffsets(group, [&](auto result) { offsets = std::move(result); });
  if (!context.Wait([&] { return description.has_value() && offsets.has_value(); },
                    CommandTimeoutUs())) {
    return Fail(absl::StrCat("describing group ", group, ": ", context.Interrupted()));
  }
  if (!description->ok()) return Fail(std::string(description->status().message()));
  if (!offsets->ok()) return Fail(std::string(offsets->status().message()));
  const client::GroupDescription& info = **description;
  if (info.state == "Dead" && (*offsets)->empty()) {
    return Fail(absl::StrCat("Consumer group '", group, "' does not exist."));
  }
  std::map<client::TopicPartition, const client::GroupMemberDescription*> owners;
  for (const client::GroupMemberDescription& member : info.members) {
    for (const client::TopicPartition& partition : member.assignment) owners[partition] = &member;
  }
  std::set<client::TopicPartition> partitions;
  for (const auto& [partition, offset] : **offsets) partitions.insert(partition);
  for (const auto& [partition, member] : owners) partitions.insert(partition);

  std::map<client::TopicPartition, int64_t> ends;
  if (!partitions.empty()) {
    client::ConsumerOptions options;
    options.client = context.client;
    options.default_api_timeout_ms = absl::GetFlag(FLAGS_command_timeout_ms);
    options.on_records = [](client::FetchedRecords) {};
    absl::StatusOr<std::unique_ptr<client::Consumer>> consumer =
        client::Consumer::Create(context.env, std::move(options));
    if (!consumer.ok()) return Fail(std::string(consumer.status().message()));
    std::optional<absl::StatusOr<std::map<client::TopicPartition, int64_t>>> end_offsets;
    (*consumer)->EndOffsets(std::vector<client::TopicPartition>(partitions.begin(), partitions.end()),
                            [&](auto result) { end_offsets = std::move(result); });
    if (!context.Wait([&] { return end_offsets.has_value(); }, CommandTimeoutUs())) {
      return Fail(absl::StrCat("listing end offsets: ", context.Interrupted()));
    }
    // A deleted topic's offsets may still be committed: its end is shown as unknown.
    if (end_offsets->ok()) ends = **end_offsets;
  }

  std::printf("Group: %s\tState: %s\tAssignor: %s\tMembers: %zu\n", group.c_str(),
              info.state.c_str(), info.protocol.empty() ? "-" : info.protocol.c_str(),
              info.members.size());
  std::vector<std::vector<std::string>> rows = {{"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET",
                                                 "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST",
                                                 "CLIENT-ID"}};
  for (const client::TopicPartition& partition : partitions) {
    auto committed = (*offsets)->find(partition);
    auto end = ends.find(partition);
    auto owner = owners.find(partition);
    const bool has_committed = committed != (*offsets)->end();
    const bool has_end = end != ends.end() && end->second >= 0;
    std::vector<std::string> row = {
        group,
        partition.topic,
        absl::StrCat(partition.partition),
        has_committed ? absl::StrCat(committed->second.offset) : "-",
        has_end ? absl::StrCat(end->second) : "-",
        has_committed && has_end ? absl::StrCat(std::max<int64_t>(0, end->second -
                                                                         committed->second.offset))
                                 : "-",
    };
    if (owner != owners.end()) {
      row.push_back(owner->second->member_id);
      row.push_back(owner->second->client_host);
      row.push_back(owner->second->client_id);
    } else {
      row.insert(row.end(), {"-", "-", "-"});
    }
    rows.push_back(std::move(row));
  }
  for (const client::GroupMemberDescription& member : info.members) {
    if (!member.assignment.empty()) continue;
    rows.push_back({group, "-", "-", "-", "-", "-", member.member_id, member.client_host,
                    member.client_id});
  }
  PrintTable(rows);
  return kExitOk;
}

int Consume(Context& context) {
  const std::string topic = absl::GetFlag(FLAGS_topic);
  if (topic.empty()) return Usage("consume needs --topic");
  const std::string group = absl::GetFlag(FLAGS_group);
  if (!group.empty()) {
    if (absl::GetFlag(FLAGS_partition) >= 0 || !absl::GetFlag(FLAGS_offset).empty()) {
      return Usage("--group excludes --partition and --offset: the group assigns partitions");
    }
    return ConsumeGroup(context, topic, group);
  }
  const int32_t partition_flag = absl::GetFlag(FLAGS_partition);
  const std::string offset_flag = absl::GetFlag(FLAGS_offset);
  const int64_t max_messages = absl::GetFlag(FLAGS_max_messages);
  const int64_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  std::optional<int64_t> start_offset;
  client::OffsetReset reset =
      absl::GetFlag(FLAGS_from_beginning) ? client::OffsetReset::kEarliest : client::OffsetReset::kLatest;
  if (!offset_flag.empty()) {
    if (absl::GetFlag(FLAGS_from_beginning)) return Usage("--offset and --from-beginning exclude each other");
    if (offset_flag == "earliest") {
      reset = client::OffsetReset::kEarliest;
    } else if (offset_flag == "latest") {
      reset = client::OffsetReset::kLatest;
    } else {
      int64_t offset = 0;
      if (!absl::SimpleAtoi(offset_flag, &offset) || offset < 0) {
        return Usage(absl::StrCat("--offset '", offset_flag, "' is not an offset, earliest or latest"));
      }
      if (partition_flag < 0) return Usage("--offset with a number needs --partition");
      start_offset = offset;
    }
  }

  // Which partitions: the one asked for, or every partition of the topic.
  std::vector<client::TopicPartition> partitions;
  {
    std::unique_ptr<client::AdminClient> admin = MakeAdmin(context);
    if (admin == nullptr) return Fail("bad client settings");
    std::optional<absl::StatusOr<client::TopicDescription>> description;
    admin->DescribeTopic(topic, [&](absl::StatusOr<client::TopicDescription> result) {
      description = std::move(result);
    });
    if (!context.Wait([&] { return description.has_value(); }, kTopicLookupTimeoutUs)) {
      return Fail(absl::StrCat("looking up topic ", topic, ": ", context.Interrupted()));
    }
    if (!description->ok()) return Fail(std::string(description->status().message()));
    for (const client::PartitionDescription& partition : (*description)->partitions) {
      if (partition_flag < 0 || partition.partition == partition_flag) {
        partitions.push_back({topic, partition.partition});
      }
    }
    if (partitions.empty()) {
      return Fail(absl::StrCat("topic ", topic, " has no partition ", partition_flag));
    }
  }

  int64_t printed = 0;
  bool done = false;
  std::string error;
  IdleTimer idle(context, timeout_ms, done);
  client::ConsumerOptions options;
  options.client = context.client;
  options.auto_offset_reset = reset;
  options.on_records = [&](client::FetchedRecords fetched) {
    if (done) return;
    for (const client::ConsumerRecord& record : fetched.records) {
      const std::string line = FormatRecord(fetched.partition, record);
      std::fwrite(line.data(), 1, line.size(), stdout);
      ++printed;
      if (max_messages >= 0 && printed >= max_messages) {
        done = true;
        break;
      }
    }
    std::fflush(stdout);
    if (!fetched.records.empty()) idle.Arm();
  };
  options.on_error = [&](const client::TopicPartition&, const absl::Status& status) {
    error = std::string(status.message());
    done = true;
  };
  absl::StatusOr<std::unique_ptr<client::Consumer>> consumer =
      client::Consumer::Create(context.env, std::move(options));
  if (!consumer.ok()) return Usage(std::string(consumer.status().message()));
  if (absl::Status assigned = (*consumer)->Assign(partitions); !assigned.ok()) {
    return Fail(std::string(assigned.message()));
  }
  if (start_offset.has_value()) {
    if (absl::Status sought = (*consumer)->Seek(partitions[0], *start_offset); !sought.ok()) {
      return Fail(std::string(sought.message()));
    }
  }
  if (max_messages == 0) done = true;
  idle.Arm();
  constexpr int64_t kForeverUs = int64_t{1} << 62;
  const bool finished = context.Wait([&] { return done; }, kForeverUs);
  std::fflush(stdout);
  std::fprintf(stderr, "Processed a total of %lld messages\n", static_cast<long long>(printed));
  if (!error.empty()) return Fail(error);
  // A stop signal is how an unbounded consume ends; it is not a failure.
  if (!finished && context.loop.stop_signal() == 0) return Fail("consuming stopped");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "runnel [--bootstrap-server=HOST:PORT] COMMAND ...\n"
      "  topics create TOPIC [--partitions=N] [--replication-factor=N] [--config k=v ...]\n"
      "                [--validate-only] [--if-not-exists]\n"
      "  topics list\n"
      "  topics describe TOPIC [--all-configs]\n"
      "  topics delete TOPIC\n"
      "  produce --topic=T [--partition=P] [--key-separator=SEP] [--acks=all|1|0]\n"
      "          [--compression=none|gzip|snappy|lz4|zstd] [--header k=v ...]   (lines from stdin)\n"
      "  consume --topic=T [--partition=P] [--from-beginning | --offset=N|earliest|latest]\n"
      "          [--max-messages=N] [--timeout-ms=N] [--print-key] [--print-offset]\n"
      "          [--print-partition] [--print-timestamp] [--print-headers]\n"
      "  consume --topic=T --group=G [--from-beginning] [--max-messages=N] [--timeout-ms=N] ...\n"
      "  groups list\n"
      "  groups describe GROUP");
  RepeatedFlags repeated;
  absl::StatusOr<std::vector<std::string>> args = PreprocessArgs(argc, argv, &repeated);
  if (!args.ok()) return Usage(std::string(args.status().message()));
  std::vector<char*> arg_pointers;
  for (std::string& arg : *args) arg_pointers.push_back(arg.data());
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(arg_pointers.size()), arg_pointers.data());
  std::vector<std::string> words(positional.begin() + 1, positional.end());
  if (words.empty()) return Usage("no command given");

  absl::StatusOr<std::vector<runnel::NetworkAddress>> bootstrap =
      client::ParseBootstrapServers(absl::GetFlag(FLAGS_bootstrap_server));
  if (!bootstrap.ok()) return Usage(std::string(bootstrap.status().message()));

  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) return Fail(loop.status().ToString());
  // Before the Env starts any helper thread, which would inherit the blocked signals.
  if (absl::Status signals = (*loop)->StopOnSignals({SIGTERM, SIGINT}); !signals.ok()) {
    return Fail(signals.ToString());
  }
  // The client uses no disk; the Env's disk is rooted at the temporary directory and never used.
  std::error_code temp_error;
  const std::string temp_directory = std::filesystem::temp_directory_path(temp_error).string();
  absl::StatusOr<std::unique_ptr<PosixEnv>> env =
      PosixEnv::Create(**loop, 0, temp_error ? std::string("/tmp") : temp_directory);
  if (!env.ok()) return Fail(env.status().ToString());
  (*env)->set_log_level_min(absl::GetFlag(FLAGS_verbose) ? runnel::LogLevel::kDebug
                                                         : runnel::LogLevel::kError);
  Context context{**loop, **env, {}};
  context.client.bootstrap_servers = *bootstrap;
  context.client.client_id = "runnel-cli";

  int status = kExitUsage;
  const std::string& command = words[0];
  if (command == "topics") {
    if (words.size() < 2) return Usage("topics needs a subcommand: create, list, describe, delete");
    const std::string& sub = words[1];
    if (sub == "list") {
      status = words.size() == 2 ? TopicsList(context) : Usage("topics list takes no topic");
    } else if (sub == "create" || sub == "describe" || sub == "delete") {
      if (words.size() != 3) return Usage(absl::StrCat("topics ", sub, " needs one TOPIC"));
      if (sub == "create") status = TopicsCreate(context, words[2], repeated);
      if (sub == "describe") status = TopicsDescribe(context, words[2]);
      if (sub == "delete") status = TopicsDelete(context, words[2]);
    } else {
      return Usage(absl::StrCat("unknown topics subcommand '", sub, "'"));
    }
  } else if (command == "groups") {
    if (words.size() < 2) return Usage("groups needs a subcommand: list, describe");
    const std::string& sub = words[1];
    if (sub == "list") {
      status = words.size() == 2 ? GroupsList(context) : Usage("groups list takes no group");
    } else if (sub == "describe") {
      if (words.size() != 3) return Usage("groups describe needs one GROUP");
      status = GroupsDescribe(context, words[2]);
    } else {
      return Usage(absl::StrCat("unknown groups subcommand '", sub, "'"));
    }
  } else if (command == "produce") {
    if (words.size() != 1) return Usage("produce takes no positional arguments");
    status = Produce(context, repeated);
  } else if (command == "consume") {
    if (words.size() != 1) return Usage("consume takes no positional arguments");
    status = Consume(context);
  } else {
    return Usage(absl::StrCat("unknown command '", command, "'"));
  }
  std::fflush(stdout);
  return status;
}
