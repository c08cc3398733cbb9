// Consumer group benchmark: librdkafka's balanced consumer (a real client that nobody here wrote)
// against runnel-broker and, in the same run, against librdkafka's own in-process mock cluster.
//
// For each target it measures, in wall time on this machine:
//   - join: a group of --members consumers (10 by default) subscribes to a topic of --partitions
//     partitions (100 by default); the time from the return of the last member's subscribe() until
//     every partition is assigned to exactly one member and every member owns at least one, as the
//     members' own rebalance callbacks report it (the assignment the application sees);
//   - leave: one member closes (LeaveGroup); the time from the start of its close until the other
//     members again own every partition exactly once;
//   - offset commit throughput from one group member: synchronous commits (each waits for its
//     answer) and asynchronous commits (all issued at once, timed until the last result), each
//     commit carrying --commit_partitions partitions' offsets. The committed offsets are read back
//     afterwards (OffsetFetch) and must be the last ones sent.
// The members run in this process, one librdkafka handle each, all polled from one thread; they use
// librdkafka's default assignor (range) and the eager rebalance protocol.
//
// What the join figure holds: with no initial rebalance delay the first member to arrive completes
// a generation of its own, the next arrival interrupts it (its SyncGroup is answered
// REBALANCE_IN_PROGRESS), and librdkafka 2.0.2 waits about two seconds before that first member
// joins again, which the whole group then waits for. So runnel's join figure at delay 0 is
// mostly that client pause; with --runnel_group_initial_rebalance_delay_ms=100 all ten arrive
// within the delay and the figure is that delay plus the protocol's own cost (about 200 ms in all
// on this machine).
//
// The targets take turns, round by round (--repetitions, default 3), each round with fresh groups,
// and every figure printed is the median over the rounds. runnel-broker runs as a child process on
// a free loopback port with a fresh data directory (removed at exit) and a configuration file that
// sets groups.group_initial_rebalance_delay_ms to 0; its topic is created with CreateTopics. The
// mock cluster's topic is made with rd_kafka_mock_topic_create. The mock cluster has timers of its
// own that cannot be configured: a group's first join waits 3 s (its fixed initial rebalance
// delay), and a rebalance waits for the members to rejoin until the session timeout less one
// second; so its join and leave times are mostly its timers, and the ratio says more about the
// commit figures.
//
// Run: build/bench/group_bench [--broker_binary=build/broker/server/runnel-broker] [--members=10]
//      [--partitions=100] [--sync_commits=2000] [--async_commits=20000] [--commit_partitions=10]
//      [--targets=runnel,mock] [--repetitions=3]
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/rdkafka_bench_support.h"

ABSL_FLAG(std::string, broker_binary, "",
          "path of runnel-broker; defaults to broker/server/runnel-broker beside this build's "
          "bench/");
ABSL_FLAG(int32_t, members, 10, "consumers in the group");
ABSL_FLAG(int32_t, partitions, 100, "partitions of the topic the group subscribes to");
ABSL_FLAG(int32_t, session_timeout_ms, 6000, "the members' session.timeout.ms");
ABSL_FLAG(int32_t, heartbeat_interval_ms, 100,
          "the members' heartbeat.interval.ms: how soon a member hears of a rebalance");
ABSL_FLAG(int64_t, sync_commits, 2000, "synchronous commits per round");
ABSL_FLAG(int64_t, async_commits, 20000, "asynchronous commits per round");
ABSL_FLAG(int32_t, commit_partitions, 10,
          "partitions whose offsets each commit carries (10: one member's share of 100 partitions "
          "over 10 members)");
ABSL_FLAG(int64_t, runnel_group_initial_rebalance_delay_ms, 0,
          "runnel-broker's groups.group_initial_rebalance_delay_ms (Kafka's default is 3000; 0 "
          "makes the join figure measure the protocol rather than the wait for more members)");
ABSL_FLAG(std::string, client_debug, "", "librdkafka debug contexts for the clients (e.g. cgrp)");
ABSL_FLAG(std::string, targets, "runnel,mock", "which targets to run, comma separated");
ABSL_FLAG(int32_t, repetitions, 3,
          "rounds of every phase; the targets alternate round by round and each figure printed is "
          "the median over the rounds");

namespace {

namespace bench = runnel::bench;
using bench::Clock;
using bench::Fail;
using bench::KafkaHandle;
using bench::MillisecondsSince;
using bench::SecondsSince;
using bench::Set;

// The longest any one phase may take before the benchmark gives up on a stuck target.
constexpr auto kPhaseTimeout = std::chrono::seconds(120);
// How long a request made for setting up or checking (CreateTopics, OffsetFetch) may take.
constexpr int kRequestTimeoutMs = 30'000;
// Between two rounds of polling every member, so that the poll loop does not spin a core the
// clients' own threads need. The join and leave figures are at most this much late.
constexpr auto kPollPause = std::chrono::microseconds(200);

struct Figures {
  double join_ms = 0;
  double leave_ms = 0;
  double sync_commits_per_s = 0;
  double async_commits_per_s = 0;
  int64_t commit_failures = 0;
};

// --- librdkafka helpers -----------------------------------------------------------------------

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

KafkaHandle NewClient(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  return bench::NewClient(type, conf, absl::GetFlag(FLAGS_client_debug));
}

// One consumer of the group and what its rebalance callback last reported. librdkafka calls the
// callbacks only from within this member's poll, on the polling thread.
struct Member {
  KafkaHandle handle;
  std::set<int32_t> owned;
  // Asynchronous commit results (offset_commit_cb).
  int64_t commits_done = 0;
  int64_t commits_failed = 0;
  std::string first_commit_error;
};

void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* member = static_cast<Member*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    member->owned.clear();
    for (int i = 0; i < partitions->cnt; ++i) member->owned.insert(partitions->elems[i].partition);
    rd_kafka_assign(rk, partitions);
  } else {
    // Revocation, or a rebalance error: either way the member owns nothing now.
    member->owned.clear();
    rd_kafka_assign(rk, nullptr);
  }
}

void OnOffsetCommit(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t*,
                    void* opaque) {
  auto* member = static_cast<Member*>(opaque);
  ++member->commits_done;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && member->commits_failed++ == 0) {
    member->first_commit_error = rd_kafka_err2str(err);
  }
}

std::unique_ptr<Member> NewMember(const std::string& bootstrap, const std::string& group,
                                  const std::string& client_id) {
  auto member = std::make_unique<Member>();
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", bootstrap);
  Set(conf, "group.id", group);
  Set(conf, "client.id", client_id);
  Set(conf, "enable.auto.commit", "false");
  Set(conf, "session.timeout.ms", std::to_string(absl::GetFlag(FLAGS_session_timeout_ms)));
  Set(conf, "heartbeat.interval.ms", std::to_string(absl::GetFlag(FLAGS_heartbeat_interval_ms)));
  rd_kafka_conf_set_rebalance_cb(conf, OnRebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, OnOffsetCommit);
  rd_kafka_conf_set_opaque(conf, member.get());
  member->handle = NewClient(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(member->handle.get());
  return member;
}

void Subscribe(Member& member, const std::string& topic) {
  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(member.handle.get(), topics.get()); err != 0) {
    Fail(absl::StrCat("subscribe: ", rd_kafka_err2str(err)));
  }
}

// Serves every member's callbacks once. The topic holds no records, so no message is expected;
// errors other than end-of-partition are printed.
void PollAll(const std::vector<Member*>& members) {
  for (Member* member : members) {
    while (rd_kafka_message_t* message = rd_kafka_consumer_poll(member->handle.get(), 0)) {
      if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
          message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "  consumer error: %s\n", rd_kafka_message_errstr(message));
      }
      rd_kafka_message_destroy(message);
    }
  }
}

// Whether the members own every partition exactly once and each owns at least one.
bool Stable(const std::vector<Member*>& members, int32_t partitions) {
  std::vector<int> owners(static_cast<size_t>(partitions), 0);
  for (const Member* member : members) {
    if (member->owned.empty()) return false;
    for (int32_t p : member->owned) {
      if (p < 0 || p >= partitions) return false;
      ++owners[static_cast<size_t>(p)];
    }
  }
  return std::all_of(owners.begin(), owners.end(), [](int n) { return n == 1; });
}

// Polls the members until Stable(); returns the milliseconds since `start`.
double WaitStable(const std::vector<Member*>& members, int32_t partitions, Clock::time_point start,
                  const char* what) {
  while (!Stable(members, partitions)) {
    if (Clock::now() - start > kPhaseTimeout) {
      std::string owned;
      for (const Member* member : members) absl::StrAppend(&owned, " ", member->owned.size());
      Fail(absl::StrCat(what, ": no stable assignment within the phase timeout; partitions owned "
                              "per member:", owned));
    }
    PollAll(members);
    std::this_thread::sleep_for(kPollPause);
  }
  return MillisecondsSince(start);
}

// The join and leave figures for one fresh group.
void MeasureRebalances(const std::string& bootstrap, const std::string& topic, int round,
                       Figures* figures) {
  const int32_t partitions = absl::GetFlag(FLAGS_partitions);
  const std::string group = absl::StrCat("bench-rebalance-r", round);
  std::vector<std::unique_ptr<Member>> owned_members;
  std::vector<Member*> members;
  for (int32_t i = 0; i < absl::GetFlag(FLAGS_members); ++i) {
    owned_members.push_back(NewMember(bootstrap, group, absl::StrCat("member-", i)));
    members.push_back(owned_members.back().get());
  }
  for (Member* member : members) Subscribe(*member, topic);
  figures->join_ms = WaitStable(members, partitions, Clock::now(), "join");
  std::fprintf(stderr, "  join: %.1f ms\n", figures->join_ms);

  // The leaving member closes on a thread of its own, so that the others keep being polled (an
  // eager rebalance waits for each member's application to give up its partitions).
  Member* leaving = members.front();
  std::vector<Member*> staying(members.begin() + 1, members.end());
  const auto leave_start = Clock::now();
  std::thread closer([leaving] { rd_kafka_consumer_close(leaving->handle.get()); });
  figures->leave_ms = WaitStable(staying, partitions, leave_start, "leave");
  closer.join();
  std::fprintf(stderr, "  leave: %.1f ms\n", figures->leave_ms);
  for (Member* member : staying) rd_kafka_consumer_close(member->handle.get());
}

PartitionList CommitOffsets(const std::string& topic, int32_t partitions, int64_t offset) {
  PartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = offset;
  }
  return list;
}

// Reads the group's committed offsets back and fails unless every one is `expected`.
void CheckCommitted(Member& member, const std::string& topic, int32_t partitions,
                    int64_t expected, const char* what) {
  PartitionList list = CommitOffsets(topic, partitions, RD_KAFKA_OFFSET_INVALID);
  if (rd_kafka_resp_err_t err = rd_kafka_committed(member.handle.get(), list.get(),
                                                   kRequestTimeoutMs);
      err != 0) {
    Fail(absl::StrCat(what, ": committed(): ", rd_kafka_err2str(err)));
  }
  for (int i = 0; i < list->cnt; ++i) {
    if (list->elems[i].offset != expected) {
      Fail(absl::StrCat(what, ": partition ", list->elems[i].partition, " has committed offset ",
                        list->elems[i].offset, ", expected ", expected));
    }
  }
}

// Synchronous then asynchronous commits from one member of a fresh group (subscribed, so that the
// commits go through the coordinator's generation check like an application's).
void MeasureCommits(const std::string& bootstrap, const std::string& topic, int round,
                    Figures* figures) {
  const int32_t partitions = absl::GetFlag(FLAGS_partitions);
  const int32_t commit_partitions = std::min(absl::GetFlag(FLAGS_commit_partitions), partitions);
  std::unique_ptr<Member> member =
      NewMember(bootstrap, absl::StrCat("bench-commit-r", round), "committer");
  std::vector<Member*> members = {member.get()};
  Subscribe(*member, topic);
  WaitStable(members, partitions, Clock::now(), "committer join");

  const int64_t sync_commits = absl::GetFlag(FLAGS_sync_commits);
  int64_t offset = 0;
  auto start = Clock::now();
  for (int64_t i = 0; i < sync_commits; ++i) {
    PartitionList list = CommitOffsets(topic, commit_partitions, ++offset);
    if (rd_kafka_commit(member->handle.get(), list.get(), /*async=*/0) != 0) {
      ++figures->commit_failures;
    }
    if (Clock::now() - start > kPhaseTimeout) Fail("synchronous commits timed out");
  }
  figures->sync_commits_per_s = static_cast<double>(sync_commits) / SecondsSince(start);
  std::fprintf(stderr, "  sync commits: %.0f/s\n", figures->sync_commits_per_s);
  CheckCommitted(*member, topic, commit_partitions, offset, "after synchronous commits");
  // librdkafka also queues a commit callback for each synchronous commit; they are served here,
  // so that the asynchronous phase counts only its own.
  start = Clock::now();
  while (member->commits_done < sync_commits) {
    PollAll(members);
    if (Clock::now() - start > kPhaseTimeout) Fail("synchronous commit callbacks missing");
  }
  member->commits_done = 0;
  member->commits_failed = 0;

  const int64_t async_commits = absl::GetFlag(FLAGS_async_commits);
  start = Clock::now();
  for (int64_t i = 0; i < async_commits; ++i) {
    PartitionList list = CommitOffsets(topic, commit_partitions, ++offset);
    if (rd_kafka_resp_err_t err = rd_kafka_commit(member->handle.get(), list.get(), /*async=*/1);
        err != 0) {
      Fail(absl::StrCat("async commit: ", rd_kafka_err2str(err)));
    }
  }
  while (member->commits_done < async_commits) {
    PollAll(members);
    if (Clock::now() - start > kPhaseTimeout) {
      Fail(absl::StrCat("async commits timed out: ", member->commits_done, " of ", async_commits,
                        " answered"));
    }
  }
  figures->async_commits_per_s = static_cast<double>(async_commits) / SecondsSince(start);
  std::fprintf(stderr, "  async commits: %.0f/s\n", figures->async_commits_per_s);
  if (member->commits_failed > 0) {
    std::fprintf(stderr, "  %lld async commits failed (first: %s)\n",
                 static_cast<long long>(member->commits_failed),
                 member->first_commit_error.c_str());
  }
  figures->commit_failures += member->commits_failed;
  // Commits on one connection are answered in order, so the last one sent is what stays.
  CheckCommitted(*member, topic, commit_partitions, offset, "after asynchronous commits");
  rd_kafka_consumer_close(member->handle.get());
}

Figures RunTarget(const std::string& bootstrap, const std::string& topic, int round) {
  Figures figures;
  MeasureRebalances(bootstrap, topic, round, &figures);
  MeasureCommits(bootstrap, topic, round, &figures);
  return figures;
}

// The median of each figure over the rounds; commit failures are summed, since any is a fault.
Figures Median(const std::vector<Figures>& rounds) {
  Figures median;
  if (rounds.empty()) return median;
  auto middle = [&](double Figures::*field) {
    std::vector<double> values;
    for (const Figures& round : rounds) values.push_back(round.*field);
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  median.join_ms = middle(&Figures::join_ms);
  median.leave_ms = middle(&Figures::leave_ms);
  median.sync_commits_per_s = middle(&Figures::sync_commits_per_s);
  median.async_commits_per_s = middle(&Figures::async_commits_per_s);
  for (const Figures& round : rounds) median.commit_failures += round.commit_failures;
  return median;
}

// Creates `topic` through the admin API (CreateTopics) and waits for the answer.
void CreateTopicByAdmin(const std::string& bootstrap, const std::string& topic,
                        int32_t partitions) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Set(conf, "bootstrap.servers", bootstrap);
  KafkaHandle admin = NewClient(RD_KAFKA_PRODUCER, conf);
  char error[512];
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, error, sizeof(error));
  if (new_topic == nullptr) Fail(absl::StrCat("NewTopic: ", error));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin.get());
  rd_kafka_CreateTopics(admin.get(), &new_topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, kRequestTimeoutMs);
  if (event == nullptr) Fail("CreateTopics: no answer");
  if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Fail(absl::StrCat("CreateTopics: ", rd_kafka_event_error_string(event)));
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
  size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  for (size_t i = 0; i < count; ++i) {
    if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      Fail(absl::StrCat("CreateTopics ", topic, ": ",
                        rd_kafka_topic_result_error_string(results[i])));
    }
  }
  rd_kafka_event_destroy(event);
  rd_kafka_NewTopic_destroy(new_topic);
  rd_kafka_queue_destroy(queue);
}

}  // namespace

int main(int argc, char** argv) {
  bench::SetProgramName(argv[0]);
  absl::ParseCommandLine(argc, argv);
  std::string binary = absl::GetFlag(FLAGS_broker_binary);
  if (binary.empty()) binary = bench::DefaultBrokerBinary(argv[0]);
  const int32_t partitions = absl::GetFlag(FLAGS_partitions);
  const int32_t members = absl::GetFlag(FLAGS_members);
  if (members < 2 || partitions < members) {
    Fail("--members must be at least 2 and --partitions at least --members");
  }
  std::vector<std::string> targets = absl::StrSplit(absl::GetFlag(FLAGS_targets), ',');
  const bool run_runnel = std::find(targets.begin(), targets.end(), "runnel") != targets.end();
  const bool run_mock = std::find(targets.begin(), targets.end(), "mock") != targets.end();
  const int32_t repetitions = std::max(absl::GetFlag(FLAGS_repetitions), 1);
  const std::string topic = "bench-group";

  std::unique_ptr<bench::BrokerChild> broker;
  std::string runnel_bootstrap;
  if (run_runnel) {
    broker = std::make_unique<bench::BrokerChild>(
        binary, absl::StrCat("groups { group_initial_rebalance_delay_ms: ",
                             absl::GetFlag(FLAGS_runnel_group_initial_rebalance_delay_ms), " }\n"));
    runnel_bootstrap = broker->bootstrap();
    std::fprintf(stderr, "runnel-broker at %s (data in %s)\n", runnel_bootstrap.c_str(),
                 broker->data_dir().c_str());
    CreateTopicByAdmin(runnel_bootstrap, topic, partitions);
  }
  // The mock cluster lives inside a client handle of its own.
  KafkaHandle mock_host;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string mock_bootstrap;
  if (run_mock) {
    mock_host = NewClient(RD_KAFKA_PRODUCER, rd_kafka_conf_new());
    cluster = rd_kafka_mock_cluster_new(mock_host.get(), 1);
    if (cluster == nullptr) Fail("rd_kafka_mock_cluster_new");
    mock_bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);
    std::fprintf(stderr, "mock cluster at %s\n", mock_bootstrap.c_str());
    if (rd_kafka_mock_topic_create(cluster, topic.c_str(), partitions, 1) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      Fail("mock topic create");
    }
  }
  std::vector<Figures> runnel_rounds;
  std::vector<Figures> mock_rounds;
  for (int round = 1; round <= repetitions; ++round) {
    if (run_runnel) {
      std::fprintf(stderr, "round %d of %d, runnel-broker\n", round, repetitions);
      runnel_rounds.push_back(RunTarget(runnel_bootstrap, topic, round));
    }
    if (run_mock) {
      std::fprintf(stderr, "round %d of %d, mock cluster\n", round, repetitions);
      mock_rounds.push_back(RunTarget(mock_bootstrap, topic, round));
    }
  }
  if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
  broker.reset();
  const Figures runnel = Median(runnel_rounds);
  const Figures mock = Median(mock_rounds);

  std::printf(
      "\nlibrdkafka %s: a group of %d consumers over a topic of %d partitions (range assignor, "
      "eager rebalancing, session.timeout.ms=%d, heartbeat.interval.ms=%d); commits of %d "
      "partitions' offsets from one member (%lld synchronous, %lld asynchronous); median of %d "
      "rounds\n"
      "runnel-broker: groups { group_initial_rebalance_delay_ms: %lld }, default flush policy. "
      "mock cluster: fixed 3000 ms initial rebalance delay, rejoin wait up to session timeout "
      "- 1000 ms\n",
      rd_kafka_version_str(), members, partitions, absl::GetFlag(FLAGS_session_timeout_ms),
      absl::GetFlag(FLAGS_heartbeat_interval_ms),
      std::min(absl::GetFlag(FLAGS_commit_partitions), partitions),
      static_cast<long long>(absl::GetFlag(FLAGS_sync_commits)),
      static_cast<long long>(absl::GetFlag(FLAGS_async_commits)), repetitions,
      static_cast<long long>(absl::GetFlag(FLAGS_runnel_group_initial_rebalance_delay_ms)));
  bench::PrintRatioHeading();
  bench::PrintRatioRow("join: subscribe to stable", runnel.join_ms, mock.join_ms, "ms (wall)");
  bench::PrintRatioRow("one member leaves: stable again", runnel.leave_ms, mock.leave_ms, "ms (wall)");
  bench::PrintRatioRow("synchronous offset commits", runnel.sync_commits_per_s, mock.sync_commits_per_s,
           "commits/s");
  bench::PrintRatioRow("asynchronous offset commits", runnel.async_commits_per_s, mock.async_commits_per_s,
           "commits/s");
  std::printf("commit failures: runnel %lld, mock %lld\n",
              static_cast<long long>(runnel.commit_failures),
              static_cast<long long>(mock.commit_failures));
  return 0;
}
