// Tests of the simulator's stall primitive (Simulator::StallNode / ResumeNode): a paused process
// runs nothing while stalled (timers, deliveries, connection events and connect outcomes wait), its
// held events run on resume in their original order and stay cancellable, its peers see silence
// but no reset, it sends nothing, and a crash or stop of a stalled node drops what it held. Each
// test drives small node programs defined here through the public Simulator API and checks what
// ran, when (virtual time), and what the trace recorded; the after-event hook is checked too.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sim/simulator.h"

namespace runnel::sim {
namespace {

constexpr uint16_t kEchoPort = 7;

SimulatorOptions Options(uint64_t seed) {
  SimulatorOptions options;
  options.seed = seed;
  // Whole messages, so that logs count sends and deliveries one to one.
  options.network.delivery_split_probability = 0.0;
  return options;
}

NodeOptions Named(std::string name) {
  NodeOptions options;
  options.name = std::move(name);
  return options;
}

size_t CountKind(const Trace& trace, TraceKind kind, NodeId node) {
  size_t count = 0;
  for (const TraceEvent& event : trace.kept_events()) {
    count += event.kind() == kind && event.node() == node ? 1 : 0;
  }
  return count;
}

// Schedules the given timers at start; each logs "<name>@<virtual ms>" when it fires. A timer
// named "cancel-<other>" cancels the timer named <other> when it fires.
struct TimerProgram {
  TimerProgram(Env& env, std::vector<std::pair<std::string, int64_t>> timers,
               std::vector<std::string>* log, const Simulator* simulator)
      : env(env), log(log), simulator(simulator) {
    for (const auto& [name, delay_us] : timers) {
      const std::string timer_name = name;
      ids[timer_name] =
          env.clock().ScheduleAfter(delay_us, [this, timer_name] { Fire(timer_name); });
    }
  }
  void Fire(const std::string& name) {
    log->push_back(absl::StrCat(name, "@", simulator->NowUs() / 1000));
    if (name.rfind("cancel-", 0) == 0) {
      const std::string target = name.substr(7);
      cancelled_ok = env.clock().CancelTimer(ids.at(target));
    }
  }
  Env& env;
  std::vector<std::string>* log;
  const Simulator* simulator;
  std::map<std::string, TimerId> ids;
  bool cancelled_ok = false;
};

// Listens on kEchoPort and answers every chunk with "echo:<chunk>"; logs "<chunk>@<ms>".
struct EchoServer {
  EchoServer(Env& env, std::vector<std::string>* log, const Simulator* simulator)
      : env(env), log(log), simulator(simulator) {
    auto listener = env.network().Listen(
        NetworkAddress{"server", kEchoPort},
        [this](ConnectionId connection, const NetworkAddress&) {
          ++accepted;
          ConnectionCallbacks callbacks;
          callbacks.on_receive = [this, connection](absl::string_view bytes) {
            this->log->push_back(absl::StrCat(bytes, "@", this->simulator->NowUs() / 1000));
            (void)this->env.network().Send(connection, absl::StrCat("echo:", bytes));
          };
          callbacks.on_closed = [this](const absl::Status&) { ++closed; };
          return callbacks;
        });
    EXPECT_TRUE(listener.ok());
  }
  Env& env;
  std::vector<std::string>* log;
  const Simulator* simulator;
  int accepted = 0;
  int closed = 0;
};

// Connects to the server and sends "m<i>" every interval_us, `count` times, once connected; logs
// every answer and the connection's outcome.
struct Sender {
  Sender(Env& env, int64_t interval_us, int count, std::vector<std::string>* log,
         const Simulator* simulator, std::string host = "server")
      : env(env), interval_us(interval_us), remaining(count), log(log), simulator(simulator) {
    ConnectionCallbacks callbacks;
    callbacks.on_connected = [this](const absl::Status& status) {
      this->log->push_back(absl::StrCat("connected:", status.ok() ? "ok" : "failed", "@",
                                        this->simulator->NowUs() / 1000));
      if (status.ok()) Tick();
    };
    callbacks.on_receive = [this](absl::string_view bytes) {
      this->log->push_back(absl::StrCat(bytes, "@", this->simulator->NowUs() / 1000));
    };
    callbacks.on_closed = [this](const absl::Status& status) {
      this->log->push_back(absl::StrCat("closed:", status.ok() ? "ok" : "reset"));
    };
    connection = env.network().Connect(NetworkAddress{host, kEchoPort}, std::move(callbacks));
  }
  void Tick() {
    if (remaining == 0) return;
    --remaining;
    EXPECT_TRUE(env.network().Send(connection, absl::StrCat("m", sent++)).ok());
    env.clock().ScheduleAfter(interval_us, [this] { Tick(); });
  }
  Env& env;
  int64_t interval_us;
  int remaining;
  int sent = 0;
  std::vector<std::string>* log;
  const Simulator* simulator;
  ConnectionId connection = kNoConnection;
};

// A stalled node's timers do not fire while it is stalled, while another node's do; on resume they
// all fire at the resume time in the order they were due (not the order they were scheduled in),
// and the trace records the stall and the resume with the count of held events.
TEST(SimulatorStallTest, TimersWaitAndRunInOrderOnResume) {
  Simulator simulator(Options(3));
  simulator.trace().KeepInMemory(1000);
  std::vector<std::string> stalled_log;
  std::vector<std::string> other_log;
  // Scheduled in the order c, a, b; due in the order a (10 ms), b (20 ms), c (30 ms).
  const NodeId stalled = simulator.AddNode(Named("stalled"), [&](Env& env) {
    return std::make_shared<TimerProgram>(
        env,
        std::vector<std::pair<std::string, int64_t>>{
            {"c", 30'000}, {"a", 10'000}, {"b", 20'000}, {"late", 80'000}},
        &stalled_log, &simulator);
  });
  const NodeId other = simulator.AddNode(Named("other"), [&](Env& env) {
    return std::make_shared<TimerProgram>(
        env, std::vector<std::pair<std::string, int64_t>>{{"x", 15'000}, {"y", 45'000}}, &other_log,
        &simulator);
  });
  simulator.StartNode(stalled);
  simulator.StartNode(other);
  simulator.RunUntil(5'000);
  simulator.StallNode(stalled);
  EXPECT_TRUE(simulator.IsStalled(stalled));
  EXPECT_FALSE(simulator.IsStalled(other));
  simulator.RunUntil(50'000);
  EXPECT_TRUE(stalled_log.empty());
  EXPECT_EQ(other_log, (std::vector<std::string>{"x@15", "y@45"}));
  EXPECT_EQ(simulator.HeldEventCount(stalled), 3u);
  simulator.ResumeNode(stalled);
  EXPECT_FALSE(simulator.IsStalled(stalled));
  EXPECT_EQ(simulator.HeldEventCount(stalled), 0u);
  simulator.RunUntil(100'000);
  EXPECT_EQ(stalled_log, (std::vector<std::string>{"a@50", "b@50", "c@50", "late@80"}));
  EXPECT_EQ(CountKind(simulator.trace(), NODE_STALL, stalled), 1u);
  ASSERT_EQ(CountKind(simulator.trace(), NODE_RESUME, stalled), 1u);
  for (const TraceEvent& event : simulator.trace().kept_events()) {
    if (event.kind() == NODE_RESUME) {
      EXPECT_EQ(event.bytes(), 3u);
      EXPECT_EQ(event.time_us(), 50'000);
    }
  }
}

// Held events keep their identity: a timer that fires first on resume can cancel another held
// timer, which then never fires (CancelTimer reports success), as in a process whose pending
// timers all came due during a pause.
TEST(SimulatorStallTest, HeldTimersStayCancellable) {
  Simulator simulator(Options(4));
  std::vector<std::string> log;
  const NodeId node = simulator.AddNode(Named("node"), [&](Env& env) {
    return std::make_shared<TimerProgram>(
        env,
        std::vector<std::pair<std::string, int64_t>>{{"victim", 20'000}, {"cancel-victim", 10'000}},
        &log, &simulator);
  });
  simulator.StartNode(node);
  simulator.StallNode(node);
  simulator.RunUntil(30'000);
  EXPECT_EQ(simulator.HeldEventCount(node), 2u);
  simulator.ResumeNode(node);
  simulator.RunUntil(60'000);
  EXPECT_EQ(log, (std::vector<std::string>{"cancel-victim@30"}));
  EXPECT_TRUE(static_cast<TimerProgram*>(simulator.NodeProgramObject(node).get())->cancelled_ok);
}

// Bytes sent to a stalled node are held and handed over on resume, in order and exactly once; the
// stall outlasts the network's connection timeout and still no side sees a reset (the paused
// process's kernel acknowledges); the stalled node answers nothing while stalled (the sender gets
// no echo), and everything is answered after the resume.
TEST(SimulatorStallTest, DeliveriesWaitInOrderAndNothingIsSent) {
  SimulatorOptions options = Options(5);
  options.network.connection_timeout_us = 1'000'000;
  Simulator simulator(options);
  std::vector<std::string> server_log;
  std::vector<std::string> client_log;
  const NodeId server = simulator.AddNode(Named("server"), [&](Env& env) {
    return std::make_shared<EchoServer>(env, &server_log, &simulator);
  });
  const NodeId client = simulator.AddNode(Named("client"), [&](Env& env) {
    return std::make_shared<Sender>(env, 100'000, 20, &client_log, &simulator);
  });
  simulator.StartNode(server);
  simulator.StartNode(client);
  simulator.RunUntil(250'000);  // m0, m1, m2 answered
  ASSERT_EQ(server_log.size(), 3u);
  simulator.StallNode(server);
  const size_t answers_before = client_log.size();
  simulator.RunUntil(3'000'000);  // three connection timeouts
  EXPECT_EQ(server_log.size(), 3u);
  EXPECT_EQ(client_log.size(), answers_before);  // nothing came back
  EXPECT_GT(simulator.HeldEventCount(server), 10u);
  simulator.ResumeNode(server);
  simulator.RunUntil(5'000'000);
  ASSERT_EQ(server_log.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(
        server_log[static_cast<size_t>(i)].substr(0, server_log[static_cast<size_t>(i)].find('@')),
        absl::StrCat("m", i));
  }
  // Every held message was handed over at the resume time.
  EXPECT_EQ(server_log[3], "m3@3000");
  EXPECT_EQ(server_log[19].substr(0, 4), "m19@");
  int echoes = 0;
  for (const std::string& line : client_log) {
    EXPECT_EQ(line.find("closed"), std::string::npos) << line;
    echoes += line.rfind("echo:", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(echoes, 20);
  EXPECT_EQ(static_cast<EchoServer*>(simulator.NodeProgramObject(server).get())->closed, 0);
}

// A connect to a stalled listener completes only after the listener resumes, and the connect
// outcome of a stalled connecting node (here: an unknown host) reaches it only after its resume.
TEST(SimulatorStallTest, ConnectsWaitForTheStalledSide) {
  Simulator simulator(Options(6));
  std::vector<std::string> server_log;
  std::vector<std::string> client_log;
  std::vector<std::string> lost_log;
  const NodeId server = simulator.AddNode(Named("server"), [&](Env& env) {
    return std::make_shared<EchoServer>(env, &server_log, &simulator);
  });
  const NodeId client = simulator.AddNode(Named("client"), [&](Env& env) {
    return std::make_shared<Sender>(env, 10'000, 1, &client_log, &simulator);
  });
  const NodeId lost = simulator.AddNode(Named("lost"), [&](Env& env) {
    return std::make_shared<Sender>(env, 10'000, 1, &lost_log, &simulator, "nowhere");
  });
  simulator.StartNode(server);
  simulator.StallNode(server);
  simulator.StartNode(client);
  simulator.StartNode(lost);
  simulator.StallNode(lost);
  simulator.RunUntil(2'000'000);
  EXPECT_TRUE(client_log.empty());
  EXPECT_TRUE(lost_log.empty());
  EXPECT_EQ(static_cast<EchoServer*>(simulator.NodeProgramObject(server).get())->accepted, 0);
  simulator.ResumeNode(server);
  simulator.ResumeNode(lost);
  simulator.RunUntil(2'100'000);
  EXPECT_EQ(static_cast<EchoServer*>(simulator.NodeProgramObject(server).get())->accepted, 1);
  ASSERT_GE(client_log.size(), 2u);
  EXPECT_EQ(client_log[0].substr(0, 13), "connected:ok@");
  EXPECT_EQ(client_log[1].substr(0, 8), "echo:m0@");
  EXPECT_EQ(lost_log, (std::vector<std::string>{"connected:failed@2000"}));
}

// Crashing a stalled node ends the stall and drops what it held: none of its old timers run, a SYN
// that waited for it is refused, and the restarted incarnation is not stalled and runs its own
// events. Stopping a stalled node likewise drops its held events.
TEST(SimulatorStallTest, CrashOrStopOfAStalledNodeDropsHeldEvents) {
  Simulator simulator(Options(7));
  simulator.trace().KeepInMemory(1000);
  std::vector<std::string> log;
  std::vector<std::string> server_log;
  std::vector<std::string> client_log;
  const NodeId node = simulator.AddNode(Named("node"), [&](Env& env) {
    return std::make_shared<TimerProgram>(
        env, std::vector<std::pair<std::string, int64_t>>{{"t", 10'000}}, &log, &simulator);
  });
  const NodeId server = simulator.AddNode(Named("server"), [&](Env& env) {
    return std::make_shared<EchoServer>(env, &server_log, &simulator);
  });
  const NodeId client = simulator.AddNode(Named("client"), [&](Env& env) {
    return std::make_shared<Sender>(env, 10'000, 1, &client_log, &simulator);
  });
  simulator.StartNode(node);
  simulator.StallNode(node);
  simulator.RunUntil(20'000);
  EXPECT_EQ(simulator.HeldEventCount(node), 1u);
  simulator.CrashNode(node, CrashKind::kProcess);
  EXPECT_FALSE(simulator.IsStalled(node));
  EXPECT_EQ(simulator.HeldEventCount(node), 0u);
  simulator.RunUntil(25'000);
  EXPECT_TRUE(log.empty());
  simulator.StartNode(node);
  EXPECT_FALSE(simulator.IsStalled(node));
  simulator.RunUntil(40'000);
  EXPECT_EQ(log, (std::vector<std::string>{"t@35"}));

  simulator.StartNode(server);
  simulator.StallNode(server);
  simulator.StartNode(client);
  simulator.RunUntil(100'000);
  EXPECT_TRUE(client_log.empty());
  simulator.CrashNode(server, CrashKind::kProcess);
  simulator.RunUntil(200'000);
  ASSERT_EQ(client_log.size(), 1u);
  EXPECT_EQ(client_log[0].substr(0, 17), "connected:failed@");

  simulator.StallNode(node);
  simulator.RunUntil(300'000);
  simulator.StopNode(node);
  EXPECT_FALSE(simulator.IsStalled(node));
  EXPECT_EQ(CountKind(simulator.trace(), NODE_STALL, node), 2u);
  EXPECT_EQ(CountKind(simulator.trace(), NODE_RESUME, node), 2u);
}

// The after-event hook runs once after each processed event, never for events a stalled node
// holds back; events_processed counts the same events.
TEST(SimulatorStallTest, AfterEventHookSeesProcessedEventsOnly) {
  Simulator simulator(Options(8));
  std::vector<std::string> log;
  const NodeId node = simulator.AddNode(Named("node"), [&](Env& env) {
    return std::make_shared<TimerProgram>(
        env, std::vector<std::pair<std::string, int64_t>>{{"a", 10'000}, {"b", 20'000}}, &log,
        &simulator);
  });
  uint64_t hook_calls = 0;
  simulator.SetAfterEventHook([&](NodeId) { ++hook_calls; });
  simulator.StartNode(node);
  simulator.StallNode(node);
  simulator.Schedule(15'000, [] {});
  simulator.RunUntil(30'000);
  EXPECT_EQ(hook_calls, 1u);
  EXPECT_EQ(simulator.events_processed(), 1u);
  simulator.ResumeNode(node);
  simulator.RunUntil(40'000);
  EXPECT_EQ(hook_calls, 3u);
  EXPECT_EQ(simulator.events_processed(), 3u);
}

// EventQueue::Requeue, the queue operation under ResumeNode: requeued events run at the given time
// before every other event due then, in the order given (not by sequence number), keep their
// sequence numbers (a Cancel made while they were out, or after, still applies), and a later
// batch requeued at the same time runs before an earlier one.
TEST(SimulatorStallTest, EventQueueRequeueOrderAndCancel) {
  EventQueue queue;
  std::vector<std::string> ran;
  auto push = [&](int64_t time_us, std::string name) {
    return queue.Push(time_us, 0, 1, [&ran, name] { ran.push_back(name); });
  };
  const uint64_t late_timer = push(30, "late-timer");  // sequence 1, due last
  push(10, "early-delivery");                          // sequence 2, due first
  const uint64_t cancelled = push(20, "cancelled");    // sequence 3
  push(50, "already-due-at-resume");                   // sequence 4
  std::vector<EventQueue::Event> held;
  EventQueue::Event event;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(queue.PopDue(40, &event));
    held.push_back(std::move(event));
  }
  EXPECT_FALSE(queue.PopDue(40, &event));
  queue.Cancel(cancelled);
  queue.Requeue(50, std::move(held));
  std::vector<EventQueue::Event> second_batch;
  const uint64_t other = queue.Push(5, 1, 1, [&ran] { ran.push_back("second-batch"); });
  ASSERT_TRUE(queue.PopDue(50, &event));
  EXPECT_EQ(event.sequence, other);
  second_batch.push_back(std::move(event));
  queue.Requeue(50, std::move(second_batch));
  std::vector<uint64_t> sequences;
  while (queue.Pop(&event)) {
    EXPECT_EQ(event.time_us, 50);
    sequences.push_back(event.sequence);
    event.action();
  }
  EXPECT_EQ(ran, (std::vector<std::string>{"second-batch", "early-delivery", "late-timer",
                                           "already-due-at-resume"}));
  EXPECT_EQ(sequences, (std::vector<uint64_t>{other, 2, late_timer, 4}));
}

// The same seed and the same stall schedule give the same trace digest; another stall time gives
// another digest.
TEST(SimulatorStallTest, SameSeedSameDigest) {
  auto run = [](int64_t stall_at_us) {
    Simulator simulator(Options(9));
    std::vector<std::string> server_log;
    std::vector<std::string> client_log;
    const NodeId server = simulator.AddNode(Named("server"), [&](Env& env) {
      return std::make_shared<EchoServer>(env, &server_log, &simulator);
    });
    const NodeId client = simulator.AddNode(Named("client"), [&](Env& env) {
      return std::make_shared<Sender>(env, 7'000, 50, &client_log, &simulator);
    });
    simulator.StartNode(server);
    simulator.StartNode(client);
    simulator.ScheduleFault(stall_at_us, "stall", "server", [&] { simulator.StallNode(server); });
    simulator.ScheduleFault(stall_at_us + 123'000, "resume", "server",
                            [&] { simulator.ResumeNode(server); });
    simulator.RunUntil(1'000'000);
    EXPECT_EQ(server_log.size(), 50u);
    return simulator.trace().DigestHex();
  };
  EXPECT_EQ(run(100'000), run(100'000));
  EXPECT_NE(run(100'000), run(101'000));
}

}  // namespace
}  // namespace runnel::sim
