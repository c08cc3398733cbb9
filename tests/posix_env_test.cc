// Tests of the real Env (broker/env/posix/) against real sockets on the loopback interface and real
// files in a temporary directory. Every wait is bounded by kTestTimeoutUs, so a bug shows up as a
// failed expectation rather than a hung test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "broker/env/disk.h"
#include "broker/env/env.h"
#include "broker/env/network.h"
#include "broker/env/posix/event_loop.h"
#include "broker/env/posix/posix_clock.h"
#include "broker/env/posix/posix_disk.h"
#include "broker/env/posix/posix_env.h"
#include "broker/env/posix/posix_network.h"
#include "broker/env/posix/send_backlog.h"
#include "broker/env/posix/sync_queue.h"
#include "broker/env/random.h"
#include "gtest/gtest.h"

namespace runnel {
namespace {

// Upper bound on every wait for something that should take milliseconds.
constexpr int64_t kTestTimeoutUs = 20'000'000;

std::unique_ptr<EventLoop> NewLoop() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(*loop);
}

// Deterministic, non-periodic bytes, so that a misplaced or duplicated chunk cannot go unnoticed.
std::string PatternBytes(uint64_t seed, size_t size) {
  Random random(seed);
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t word = random.Next64();
    for (size_t j = 0; j < 8 && i + j < size; ++j) bytes[i + j] = static_cast<char>(word >> (8 * j));
  }
  return bytes;
}

// The index of the first byte where `actual` differs from `expected`, for readable failures.
size_t FirstDifference(const std::string& actual, const std::string& expected) {
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  return i;
}

// A fresh directory under TMPDIR, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "posix_env_test.XXXXXX").string();
    const char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// EventLoop

// Checks that timers run earliest deadline first and that equal deadlines run in the order they
// were scheduled, whatever order they were scheduled in.
TEST(EventLoopTest, TimersRunByDeadlineThenSchedulingOrder) {
  auto loop = NewLoop();
  std::string order;
  const int64_t base_us = EventLoop::NowUs() + 5'000;
  loop->ScheduleAt(base_us + 3'000, [&] { order += 'A'; });
  loop->ScheduleAt(base_us + 1'000, [&] { order += 'B'; });
  loop->ScheduleAt(base_us + 1'000, [&] { order += 'C'; });
  loop->ScheduleAt(base_us + 2'000, [&] { order += 'D'; });
  loop->ScheduleAt(base_us + 1'000, [&] { order += 'E'; });
  loop->ScheduleAt(base_us - 10'000, [&] { order += 'F'; });  // already due
  EXPECT_TRUE(loop->RunUntil([&] { return order.size() == 6; }, kTestTimeoutUs));
  EXPECT_EQ(order, "FBCEDA");
  EXPECT_EQ(loop->timers_pending(), 0u);
}

// Checks that a timer never runs before its delay has passed on the monotonic clock, and that
// negative delays count as zero.
TEST(EventLoopTest, TimerRunsNoEarlierThanItsDelay) {
  auto loop = NewLoop();
  const int64_t start_us = EventLoop::NowUs();
  int64_t fired_us = 0;
  bool negative_fired = false;
  loop->ScheduleAfter(20'000, [&] { fired_us = EventLoop::NowUs(); });
  loop->ScheduleAfter(-5, [&] { negative_fired = true; });
  EXPECT_TRUE(loop->RunUntil([&] { return fired_us != 0; }, kTestTimeoutUs));
  EXPECT_GE(fired_us - start_us, 20'000);
  EXPECT_TRUE(negative_fired);
}

// Checks cancellation: a cancelled timer never runs, even when cancelled by a timer due at the same
// moment, and cancelling a fired, cancelled or unknown timer returns false.
TEST(EventLoopTest, CancelledTimerNeverRuns) {
  auto loop = NewLoop();
  int runs_first = 0;
  int runs_cancelled = 0;
  int runs_victim = 0;
  const TimerId first = loop->ScheduleAfter(1'000, [&] { ++runs_first; });
  const TimerId cancelled = loop->ScheduleAfter(1'000, [&] { ++runs_cancelled; });
  EXPECT_TRUE(loop->CancelTimer(cancelled));
  EXPECT_FALSE(loop->CancelTimer(cancelled));
  EXPECT_FALSE(loop->CancelTimer(987654321));
  EXPECT_FALSE(loop->CancelTimer(kNoTimer));

  const int64_t deadline_us = EventLoop::NowUs() + 2'000;
  TimerId victim = kNoTimer;
  bool cancelled_from_callback = false;
  loop->ScheduleAt(deadline_us, [&] { cancelled_from_callback = loop->CancelTimer(victim); });
  victim = loop->ScheduleAt(deadline_us, [&] { ++runs_victim; });

  loop->RunFor(30'000);
  EXPECT_EQ(runs_first, 1);
  EXPECT_EQ(runs_cancelled, 0);
  EXPECT_EQ(runs_victim, 0);
  EXPECT_TRUE(cancelled_from_callback);
  EXPECT_FALSE(loop->CancelTimer(first));  // already fired
}

// Checks that a timer that re-arms itself with zero delay does not starve posted work: each
// iteration runs only timers scheduled before it started.
TEST(EventLoopTest, ZeroDelayTimerChainDoesNotStarvePostedWork) {
  auto loop = NewLoop();
  int ticks = 0;
  bool posted_ran = false;
  std::function<void()> rearm = [&] {
    ++ticks;
    if (!posted_ran) loop->ScheduleAfter(0, [&] { rearm(); });
  };
  loop->ScheduleAfter(0, [&] { rearm(); });
  loop->Post([&] { posted_ran = true; });
  EXPECT_TRUE(loop->RunUntil([&] { return posted_ran; }, kTestTimeoutUs));
  EXPECT_LE(ticks, 3);
  loop->RunFor(1'000);
}

// Checks that Post() from another thread wakes a loop that has nothing else to wake it (no timers),
// that posted work runs on the loop thread, and that posts run in posting order.
TEST(EventLoopTest, PostFromAnotherThreadWakesTheLoop) {
  auto loop = NewLoop();
  constexpr int kPosts = 1000;
  std::vector<int> seen;
  std::thread::id ran_on;
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    for (int i = 0; i < kPosts; ++i) {
      loop->Post([&, i] {
        seen.push_back(i);
        ran_on = std::this_thread::get_id();
      });
    }
  });
  const bool done = loop->RunUntil([&] { return seen.size() == kPosts; }, kTestTimeoutUs);
  poster.join();
  ASSERT_TRUE(done);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  for (int i = 0; i < kPosts; ++i) ASSERT_EQ(seen[i], i);
}

// Checks that Stop() from another thread ends Run(), and that Stop() from a callback ends it too.
TEST(EventLoopTest, StopEndsRunFromAnotherThreadAndFromACallback) {
  auto loop = NewLoop();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    loop->Stop();
  });
  const int64_t start_us = EventLoop::NowUs();
  loop->Run();
  stopper.join();
  EXPECT_LT(EventLoop::NowUs() - start_us, kTestTimeoutUs);

  bool later_timer_ran = false;
  loop->ScheduleAfter(1'000, [&] { loop->Stop(); });
  loop->ScheduleAfter(10'000'000, [&] { later_timer_ran = true; });
  loop->Run();
  EXPECT_FALSE(later_timer_ran);
}

// Checks that after StopOnSignals(), a SIGTERM stops the loop through the signalfd instead of
// killing the process, and that stop_signal() names it.
TEST(EventLoopTest, StopOnSignalsStopsOnSigterm) {
  auto loop = NewLoop();
  ASSERT_TRUE(loop->StopOnSignals({SIGTERM, SIGINT}).ok());
  EXPECT_EQ(loop->stop_signal(), 0);
  // raise() targets this thread, which now blocks SIGTERM: it stays pending for the signalfd.
  loop->ScheduleAfter(1'000, [] { raise(SIGTERM); });
  const int64_t start_us = EventLoop::NowUs();
  loop->Run();
  EXPECT_LT(EventLoop::NowUs() - start_us, kTestTimeoutUs);
  EXPECT_EQ(loop->stop_signal(), SIGTERM);
}

// Checks fd watching: readiness is reported, interest can be changed, a callback may unwatch itself,
// and once a watch is removed its callback never runs, even for readiness collected in the same
// epoll batch.
TEST(EventLoopTest, FdWatchReportsReadinessUntilUnwatched) {
  auto loop = NewLoop();
  int first_pipe[2];
  int second_pipe[2];
  ASSERT_EQ(pipe(first_pipe), 0);
  ASSERT_EQ(pipe(second_pipe), 0);
  ScopedFd first_read(first_pipe[0]), first_write(first_pipe[1]);
  ScopedFd second_read(second_pipe[0]), second_write(second_pipe[1]);

  int calls = 0;
  EventLoop::WatchId first_watch = EventLoop::kNoWatch;
  EventLoop::WatchId second_watch = EventLoop::kNoWatch;
  // Whichever runs first unwatches both; the other must then not run although it was ready.
  auto on_ready = [&](uint32_t ready) {
    EXPECT_TRUE(ready & EventLoop::kReadable);
    ++calls;
    loop->UnwatchFd(first_watch);
    loop->UnwatchFd(second_watch);
  };
  absl::StatusOr<EventLoop::WatchId> watch = loop->WatchFd(first_read.get(), EventLoop::kReadable, on_ready);
  ASSERT_TRUE(watch.ok());
  first_watch = *watch;
  watch = loop->WatchFd(second_read.get(), EventLoop::kReadable, on_ready);
  ASSERT_TRUE(watch.ok());
  second_watch = *watch;
  // Watching the same descriptor twice is refused.
  EXPECT_FALSE(loop->WatchFd(first_read.get(), EventLoop::kReadable, [](uint32_t) {}).ok());

  ASSERT_EQ(write(first_write.get(), "x", 1), 1);
  ASSERT_EQ(write(second_write.get(), "y", 1), 1);
  loop->RunFor(20'000);
  EXPECT_EQ(calls, 1);

  // Writability on a pipe's write end, switched on and off through SetInterest.
  int writable_calls = 0;
  watch = loop->WatchFd(first_write.get(), 0, [&](uint32_t ready) {
    EXPECT_TRUE(ready & EventLoop::kWritable);
    ++writable_calls;
  });
  ASSERT_TRUE(watch.ok());
  loop->RunFor(5'000);
  EXPECT_EQ(writable_calls, 0);
  ASSERT_TRUE(loop->SetInterest(*watch, EventLoop::kWritable).ok());
  EXPECT_TRUE(loop->RunUntil([&] { return writable_calls > 0; }, kTestTimeoutUs));
  ASSERT_TRUE(loop->SetInterest(*watch, 0).ok());
  const int calls_before = writable_calls;
  loop->RunFor(5'000);
  EXPECT_EQ(writable_calls, calls_before);
  loop->UnwatchFd(*watch);
  EXPECT_FALSE(loop->SetInterest(*watch, EventLoop::kReadable).ok());
}

// Checks that RunFor returns after about its duration when nothing happens.
TEST(EventLoopTest, RunForReturnsAfterItsDuration) {
  auto loop = NewLoop();
  const int64_t start_us = EventLoop::NowUs();
  loop->RunFor(15'000);
  const int64_t elapsed_us = EventLoop::NowUs() - start_us;
  EXPECT_GE(elapsed_us, 15'000);
  EXPECT_LT(elapsed_us, kTestTimeoutUs);
}

// ---------------------------------------------------------------------------------------------
// SendBacklog

// Checks that the backlog hands out exactly the appended bytes, in order, across partial
// consumption, coalesced small appends and large chunks.
TEST(SendBacklogTest, PreservesBytesAcrossPartialConsumption) {
  SendBacklog backlog;
  const std::string data = PatternBytes(7, 300'000);
  std::string expected;
  size_t offset = 0;
  Random random(11);
  std::string drained;
  while (offset < data.size() || !backlog.empty()) {
    if (offset < data.size() && random.Chance(0.6)) {
      const size_t size = std::min<size_t>(data.size() - offset, random.Between(1, 100'000));
      backlog.Append(absl::string_view(data).substr(offset, size));
      offset += size;
    } else if (!backlog.empty()) {
      iovec iovecs[4];
      const size_t count = backlog.FillIovecs(iovecs, 4);
      ASSERT_GT(count, 0u);
      size_t available = 0;
      for (size_t i = 0; i < count; ++i) available += iovecs[i].iov_len;
      size_t take = random.Between(1, static_cast<int64_t>(available));
      const size_t taken = take;
      for (size_t i = 0; i < count && take > 0; ++i) {
        const size_t part = std::min(take, iovecs[i].iov_len);
        drained.append(static_cast<const char*>(iovecs[i].iov_base), part);
        take -= part;
      }
      backlog.Consume(taken);
    }
    ASSERT_EQ(backlog.bytes(), offset - drained.size());
  }
  EXPECT_EQ(drained, data);
}

// ---------------------------------------------------------------------------------------------
// Network

// What a connection reported, and whether anything arrived after the test closed it locally.
struct Endpoint {
  ConnectionId id = kNoConnection;
  std::string received;
  std::vector<absl::Status> connected;
  std::vector<absl::Status> closed;
  size_t received_at_close = 0;
  bool closed_locally = false;
  int callbacks_after_local_close = 0;
  // Kept by tests that pause the connection: on_receive must not run while it is set.
  bool paused = false;
  int receives_while_paused = 0;
  // Runs inside on_receive, after the bytes are recorded.
  std::function<void(Endpoint&)> on_receive_hook;

  bool done() const { return !connected.empty() || !closed.empty(); }
};

ConnectionCallbacks RecordInto(std::shared_ptr<Endpoint> endpoint) {
  ConnectionCallbacks callbacks;
  callbacks.on_connected = [endpoint](const absl::Status& status) {
    if (endpoint->closed_locally) ++endpoint->callbacks_after_local_close;
    endpoint->connected.push_back(status);
  };
  callbacks.on_receive = [endpoint](absl::string_view bytes) {
    if (endpoint->closed_locally) ++endpoint->callbacks_after_local_close;
    if (endpoint->paused) ++endpoint->receives_while_paused;
    EXPECT_TRUE(endpoint->closed.empty()) << "bytes after on_closed";
    endpoint->received.append(bytes.data(), bytes.size());
    if (endpoint->on_receive_hook) endpoint->on_receive_hook(*endpoint);
  };
  callbacks.on_closed = [endpoint](const absl::Status& status) {
    if (endpoint->closed_locally) ++endpoint->callbacks_after_local_close;
    endpoint->received_at_close = endpoint->received.size();
    endpoint->closed.push_back(status);
  };
  return callbacks;
}

// Sends `data` in chunks of varying size, as a broker sends frames.
void SendInChunks(Network& network, ConnectionId connection, const std::string& data,
                  uint64_t seed) {
  Random random(seed);
  size_t offset = 0;
  while (offset < data.size()) {
    const size_t size = std::min<size_t>(data.size() - offset, random.Between(1, 256 << 10));
    ASSERT_TRUE(network.Send(connection, absl::string_view(data).substr(offset, size)).ok());
    offset += size;
  }
}

class PosixNetworkTest : public ::testing::Test {
 protected:
  PosixNetworkTest()
      : loop_(NewLoop()),
        server_(std::make_unique<PosixNetwork>(*loop_)),
        client_(std::make_unique<PosixNetwork>(*loop_)) {}

  bool RunUntil(absl::FunctionRef<bool()> done) { return loop_->RunUntil(done, kTestTimeoutUs); }

  // Listens on `host` port 0; every accepted connection records into a new Endpoint in accepted_.
  NetworkAddress ListenRecording(const std::string& host = "127.0.0.1") {
    absl::StatusOr<ListenerId> listener =
        server_->Listen(NetworkAddress{host, 0}, [this](ConnectionId id, const NetworkAddress& peer) {
          auto endpoint = std::make_shared<Endpoint>();
          endpoint->id = id;
          accepted_peers_.push_back(peer);
          accepted_.push_back(endpoint);
          if (accept_hook_) accept_hook_(*endpoint);
          return RecordInto(endpoint);
        });
    EXPECT_TRUE(listener.ok()) << listener.status();
    listener_ = *listener;
    absl::StatusOr<NetworkAddress> address = server_->ListenerAddress(listener_);
    EXPECT_TRUE(address.ok());
    return *address;
  }

  std::shared_ptr<Endpoint> ConnectRecording(const NetworkAddress& address) {
    auto endpoint = std::make_shared<Endpoint>();
    endpoint->id = client_->Connect(address, RecordInto(endpoint));
    return endpoint;
  }

  // A port on which nothing listens: bound once, then released.
  uint16_t UnusedPort() {
    PosixNetwork scratch(*loop_);
    absl::StatusOr<ListenerId> listener = scratch.Listen(
        NetworkAddress{"127.0.0.1", 0},
        [](ConnectionId, const NetworkAddress&) { return ConnectionCallbacks(); });
    EXPECT_TRUE(listener.ok());
    const uint16_t port = scratch.ListenerAddress(*listener)->port;
    scratch.StopListening(*listener);
    return port;
  }

  // A blocking IPv4 socket connected to `address`, for tests that need a peer outside PosixNetwork.
  static ScopedFd RawConnect(const NetworkAddress& address) {
    ScopedFd raw(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(raw.valid());
    sockaddr_in target = {};
    target.sin_family = AF_INET;
    target.sin_port = htons(address.port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(raw.get(), reinterpret_cast<sockaddr*>(&target), sizeof(target)), 0);
    return raw;
  }

  // Pauses an accepted connection from inside on_accept (set as accept_hook_).
  void PauseOnAccept() {
    accept_hook_ = [this](Endpoint& endpoint) {
      endpoint.paused = true;
      server_->SetReceivePaused(endpoint.id, true);
    };
  }

  void SetPaused(PosixNetwork& network, Endpoint& endpoint, bool paused) {
    endpoint.paused = paused;
    network.SetReceivePaused(endpoint.id, paused);
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<PosixNetwork> server_;
  std::unique_ptr<PosixNetwork> client_;
  ListenerId listener_ = 0;
  std::vector<std::shared_ptr<Endpoint>> accepted_;
  std::vector<NetworkAddress> accepted_peers_;
  // Runs inside on_accept for connections accepted by ListenRecording.
  std::function<void(Endpoint&)> accept_hook_;
};

// Checks that listening on port 0 binds a real free port that ListenerAddress reports, that unknown
// listener ids are errors, and that StopListening frees the port at once.
TEST_F(PosixNetworkTest, ListenOnPortZeroReportsTheRealPort) {
  const NetworkAddress address = ListenRecording();
  EXPECT_EQ(address.host, "127.0.0.1");
  EXPECT_NE(address.port, 0);
  EXPECT_EQ(server_->ListenerAddress(listener_ + 100).status().code(), absl::StatusCode::kNotFound);

  // The same port cannot be taken twice while listening...
  PosixNetwork other(*loop_);
  auto accept_nothing = [](ConnectionId, const NetworkAddress&) { return ConnectionCallbacks(); };
  EXPECT_FALSE(other.Listen(address, accept_nothing).ok());
  // ...and can be once the first listener stops.
  server_->StopListening(listener_);
  server_->StopListening(listener_);  // harmless twice
  EXPECT_TRUE(other.Listen(address, accept_nothing).ok());
}

// Checks the main data path: several MB each way, sent concurrently in both directions in chunks of
// random sizes, arrive byte-exact; then the client's Close() reaches the server as an orderly close
// (OK) after all the data, and the client hears nothing more.
TEST_F(PosixNetworkTest, ExchangesMegabytesBothWaysByteExact) {
  constexpr size_t kBytesEachWay = 6 << 20;
  const std::string upload = PatternBytes(1, kBytesEachWay);
  const std::string download = PatternBytes(2, kBytesEachWay);
  const NetworkAddress address = ListenRecording();

  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  // Sent before the connection is established: queued, then delivered.
  SendInChunks(*client_, client->id, upload, 3);
  EXPECT_GT(client_->SendBacklogBytes(client->id), 0u);
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty() && accepted_.size() == 1; }));
  ASSERT_TRUE(client->connected[0].ok()) << client->connected[0];
  std::shared_ptr<Endpoint> server = accepted_[0];
  EXPECT_EQ(accepted_peers_[0].host, "127.0.0.1");
  SendInChunks(*server_, server->id, download, 4);

  ASSERT_TRUE(RunUntil([&] {
    return server->received.size() >= upload.size() && client->received.size() >= download.size();
  }));
  ASSERT_EQ(server->received.size(), upload.size());
  ASSERT_EQ(client->received.size(), download.size());
  EXPECT_TRUE(server->received == upload) << "first difference at byte "
                                          << FirstDifference(server->received, upload);
  EXPECT_TRUE(client->received == download) << "first difference at byte "
                                            << FirstDifference(client->received, download);
  EXPECT_EQ(client_->SendBacklogBytes(client->id), 0u);
  EXPECT_EQ(server_->SendBacklogBytes(server->id), 0u);

  client->closed_locally = true;
  client_->Close(client->id);
  ASSERT_TRUE(RunUntil([&] { return !server->closed.empty(); }));
  EXPECT_TRUE(server->closed[0].ok()) << server->closed[0];
  EXPECT_EQ(server->received_at_close, upload.size());
  // The client's socket lingers until the server's side closes too, then goes.
  ASSERT_TRUE(RunUntil([&] {
    return client_->connections_tracked() == 0 && server_->connections_tracked() == 0;
  }));
  EXPECT_EQ(client->callbacks_after_local_close, 0);
  EXPECT_TRUE(client->closed.empty());
  EXPECT_EQ(client_->Send(client->id, "late").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(server_->Send(server->id, "late").code(), absl::StatusCode::kFailedPrecondition);
}

// Checks that Close() right after Connect() and a large Send(), before the connection is even
// established, still delivers every byte and then an orderly close to the peer, while the closing
// side gets no callback at all (not even on_connected).
TEST_F(PosixNetworkTest, CloseBeforeConnectedStillDeliversBacklogThenOrderlyClose) {
  const std::string upload = PatternBytes(5, 8 << 20);
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(client_->Send(client->id, upload).ok());
  client->closed_locally = true;
  client_->Close(client->id);
  EXPECT_EQ(client_->SendBacklogBytes(client->id), 0u);  // the handle is stale now

  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1 && !accepted_[0]->closed.empty(); }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  EXPECT_TRUE(server->closed[0].ok()) << server->closed[0];
  EXPECT_EQ(server->received_at_close, upload.size());
  EXPECT_TRUE(server->received == upload) << "first difference at byte "
                                          << FirstDifference(server->received, upload);
  ASSERT_TRUE(RunUntil([&] { return client_->connections_tracked() == 0; }));
  EXPECT_EQ(client->callbacks_after_local_close, 0);
  EXPECT_TRUE(client->connected.empty());
}

// Checks that the accept callback may already send and close: the client gets the greeting, then
// an orderly close, and the server side gets no callback for the connection it closed.
TEST_F(PosixNetworkTest, AcceptCallbackMaySendAndClose) {
  absl::StatusOr<ListenerId> listener = server_->Listen(
      NetworkAddress{"127.0.0.1", 0}, [this](ConnectionId id, const NetworkAddress&) {
        EXPECT_TRUE(server_->Send(id, "greeting").ok());
        server_->Close(id);
        ConnectionCallbacks callbacks;
        callbacks.on_receive = [](absl::string_view) { ADD_FAILURE() << "after Close()"; };
        callbacks.on_closed = [](const absl::Status&) { ADD_FAILURE() << "after Close()"; };
        return callbacks;
      });
  ASSERT_TRUE(listener.ok());
  std::shared_ptr<Endpoint> client = ConnectRecording(*server_->ListenerAddress(*listener));
  ASSERT_TRUE(client_->Send(client->id, "hello").ok());
  ASSERT_TRUE(RunUntil([&] { return !client->closed.empty(); }));
  EXPECT_EQ(client->received, "greeting");
  EXPECT_TRUE(client->closed[0].ok()) << client->closed[0];
  ASSERT_TRUE(RunUntil([&] { return server_->connections_tracked() == 0; }));
}

// Checks that closing a connection from inside its own on_receive is safe and final: no further
// on_receive or on_closed runs for it, although more bytes and the peer's close arrive; Send and
// SendBacklogBytes on the stale id fail or report nothing; the peer sees an orderly close.
TEST_F(PosixNetworkTest, CloseInsideOnReceiveSuppressesLaterCallbacks) {
  auto server = std::make_shared<Endpoint>();
  absl::StatusOr<ListenerId> listener = server_->Listen(
      NetworkAddress{"127.0.0.1", 0}, [&](ConnectionId id, const NetworkAddress&) {
        server->id = id;
        ConnectionCallbacks callbacks = RecordInto(server);
        callbacks.on_receive = [this, server](absl::string_view bytes) {
          if (server->closed_locally) ++server->callbacks_after_local_close;
          server->received.append(bytes.data(), bytes.size());
          server->closed_locally = true;
          server_->Close(server->id);
          server_->Close(server->id);  // twice: a no-op
          EXPECT_EQ(server_->Send(server->id, "x").code(), absl::StatusCode::kFailedPrecondition);
          EXPECT_EQ(server_->SendBacklogBytes(server->id), 0u);
        };
        return callbacks;
      });
  ASSERT_TRUE(listener.ok());
  std::shared_ptr<Endpoint> client = ConnectRecording(*server_->ListenerAddress(*listener));
  const std::string upload = PatternBytes(9, 2 << 20);
  SendInChunks(*client_, client->id, upload, 10);

  ASSERT_TRUE(RunUntil([&] { return !client->closed.empty(); }));
  // The server shut its side down cleanly; the client may or may not have been reset for sending
  // into a closed socket after that, depending on timing, but the first report is the FIN.
  EXPECT_TRUE(client->closed[0].ok() || absl::IsUnavailable(client->closed[0])) << client->closed[0];
  loop_->RunFor(20'000);
  EXPECT_FALSE(server->received.empty());
  EXPECT_EQ(server->callbacks_after_local_close, 0);
  EXPECT_TRUE(server->closed.empty());
}

// Checks that closing an outgoing connection from inside on_connected suppresses every later
// callback, and that the peer sees the orderly close.
TEST_F(PosixNetworkTest, CloseInsideOnConnectedSuppressesLaterCallbacks) {
  const NetworkAddress address = ListenRecording();
  auto client = std::make_shared<Endpoint>();
  ConnectionCallbacks callbacks = RecordInto(client);
  callbacks.on_connected = [this, client](const absl::Status& status) {
    EXPECT_TRUE(status.ok()) << status;
    client->connected.push_back(status);
    client->closed_locally = true;
    client_->Close(client->id);
  };
  client->id = client_->Connect(address, std::move(callbacks));
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1 && !accepted_[0]->closed.empty(); }));
  EXPECT_TRUE(accepted_[0]->closed[0].ok());
  ASSERT_TRUE(server_->Send(accepted_[0]->id, "too late").code() ==
              absl::StatusCode::kFailedPrecondition);
  loop_->RunFor(20'000);
  EXPECT_EQ(client->connected.size(), 1u);
  EXPECT_EQ(client->callbacks_after_local_close, 0);
  EXPECT_EQ(client_->connections_tracked(), 0u);
}

// Checks that connecting to a port nobody listens on fails through on_connected (kUnavailable),
// never synchronously and never followed by on_closed; the id is stale afterwards.
TEST_F(PosixNetworkTest, ConnectToClosedPortFailsThroughOnConnected) {
  const uint16_t port = UnusedPort();
  std::shared_ptr<Endpoint> client = ConnectRecording(NetworkAddress{"127.0.0.1", port});
  EXPECT_NE(client->id, kNoConnection);
  EXPECT_TRUE(client->connected.empty());  // not from inside Connect()
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty(); }));
  EXPECT_EQ(client->connected[0].code(), absl::StatusCode::kUnavailable) << client->connected[0];
  EXPECT_NE(client->connected[0].message().find(absl::StrCat(port)), std::string::npos);
  loop_->RunFor(20'000);
  EXPECT_TRUE(client->closed.empty());
  EXPECT_EQ(client->connected.size(), 1u);
  EXPECT_EQ(client_->Send(client->id, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client_->connections_tracked(), 0u);

  // Port 0 is not a destination: also reported through on_connected, not from inside Connect().
  std::shared_ptr<Endpoint> port_zero = ConnectRecording(NetworkAddress{"127.0.0.1", 0});
  EXPECT_TRUE(port_zero->connected.empty());
  ASSERT_TRUE(RunUntil([&] { return !port_zero->connected.empty(); }));
  EXPECT_FALSE(port_zero->connected[0].ok());
}

// Checks that connection ids are never reused and never zero.
TEST_F(PosixNetworkTest, ConnectionIdsAreNeverReused) {
  const uint16_t port = UnusedPort();
  std::vector<ConnectionId> ids;
  for (int i = 0; i < 20; ++i) {
    const ConnectionId id = client_->Connect(NetworkAddress{"127.0.0.1", port}, {});
    EXPECT_NE(id, kNoConnection);
    for (ConnectionId earlier : ids) EXPECT_NE(id, earlier);
    ids.push_back(id);
    client_->Close(id);
  }
}

// Checks that a peer's reset (a raw socket closed with SO_LINGER 0) ends the connection with
// on_closed(kUnavailable), exactly once, after the bytes that arrived before it.
TEST_F(PosixNetworkTest, PeerResetIsReportedAsUnavailable) {
  const NetworkAddress address = ListenRecording();
  ScopedFd raw(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(raw.valid());
  sockaddr_in target = {};
  target.sin_family = AF_INET;
  target.sin_port = htons(address.port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(raw.get(), reinterpret_cast<sockaddr*>(&target), sizeof(target)), 0);
  ASSERT_EQ(send(raw.get(), "ping", 4, MSG_NOSIGNAL), 4);
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1 && accepted_[0]->received == "ping"; }));
  std::shared_ptr<Endpoint> server = accepted_[0];

  const linger reset = {1, 0};
  ASSERT_EQ(setsockopt(raw.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
  raw.Reset();
  ASSERT_TRUE(RunUntil([&] { return !server->closed.empty(); }));
  EXPECT_EQ(server->closed[0].code(), absl::StatusCode::kUnavailable) << server->closed[0];
  // Sends after the reset fail as on any closed connection.
  EXPECT_EQ(server_->Send(server->id, "pong").code(), absl::StatusCode::kFailedPrecondition);
  loop_->RunFor(20'000);
  EXPECT_EQ(server->closed.size(), 1u);
}

// Checks that when Send() itself runs into a reset (the kernel hands the error to the send, not to
// a later read), Send still returns at once without a callback, and the connection then ends with
// on_closed(kUnavailable), exactly once, not with an orderly close.
TEST_F(PosixNetworkTest, SendIntoResetConnectionReportsUnavailableOnce) {
  const NetworkAddress address = ListenRecording();
  ScopedFd raw(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(raw.valid());
  sockaddr_in target = {};
  target.sin_family = AF_INET;
  target.sin_port = htons(address.port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(raw.get(), reinterpret_cast<sockaddr*>(&target), sizeof(target)), 0);
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];

  const linger reset = {1, 0};
  ASSERT_EQ(setsockopt(raw.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
  raw.Reset();
  // Loopback delivers the reset synchronously; the loop has not looked at the socket yet.
  EXPECT_TRUE(server_->Send(server->id, "into the void").ok());
  EXPECT_TRUE(server->closed.empty());
  EXPECT_TRUE(server_->Send(server->id, "again").ok());
  ASSERT_TRUE(RunUntil([&] { return !server->closed.empty(); }));
  EXPECT_EQ(server->closed[0].code(), absl::StatusCode::kUnavailable) << server->closed[0];
  loop_->RunFor(20'000);
  EXPECT_EQ(server->closed.size(), 1u);
  EXPECT_EQ(server_->connections_tracked(), 0u);
}

// Checks that the accept callback may stop its own listener: the connection it accepted still
// works, and later connections are refused.
TEST_F(PosixNetworkTest, AcceptCallbackMayStopItsListener) {
  ListenerId listener = 0;
  auto server = std::make_shared<Endpoint>();
  absl::StatusOr<ListenerId> listening = server_->Listen(
      NetworkAddress{"127.0.0.1", 0}, [&](ConnectionId id, const NetworkAddress&) {
        server_->StopListening(listener);
        server->id = id;
        return RecordInto(server);
      });
  ASSERT_TRUE(listening.ok());
  listener = *listening;
  const NetworkAddress address = *server_->ListenerAddress(listener);
  std::shared_ptr<Endpoint> first = ConnectRecording(address);
  ASSERT_TRUE(client_->Send(first->id, "first").ok());
  ASSERT_TRUE(RunUntil([&] { return server->received == "first"; }));
  EXPECT_FALSE(server_->ListenerAddress(listener).ok());
  std::shared_ptr<Endpoint> second = ConnectRecording(address);
  ASSERT_TRUE(RunUntil([&] { return !second->connected.empty(); }));
  EXPECT_EQ(second->connected[0].code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Send(server->id, "still open").ok());
  ASSERT_TRUE(RunUntil([&] { return first->received == "still open"; }));
}

// Checks that destroying a PosixNetwork (how a node stops) runs none of its callbacks and looks like
// a crash to its peers: they see kUnavailable.
TEST_F(PosixNetworkTest, DestroyedNetworkResetsItsPeers) {
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty() && accepted_.size() == 1; }));
  ASSERT_TRUE(client_->Send(client->id, "unfinished request").ok());
  ASSERT_TRUE(RunUntil([&] { return accepted_[0]->received.size() == 18; }));
  client_.reset();
  ASSERT_TRUE(RunUntil([&] { return !accepted_[0]->closed.empty(); }));
  EXPECT_EQ(accepted_[0]->closed[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client->connected.size(), 1u);
  EXPECT_TRUE(client->closed.empty());
}

// Checks that a peer's orderly close arrives after every byte it sent, with OK, and that the
// connection is then gone on this side too.
TEST_F(PosixNetworkTest, ServerResponseThenCloseArrivesInOrder) {
  const std::string response = PatternBytes(21, 3 << 20);
  absl::StatusOr<ListenerId> listener = server_->Listen(
      NetworkAddress{"127.0.0.1", 0}, [&](ConnectionId id, const NetworkAddress&) {
        ConnectionCallbacks callbacks;
        callbacks.on_receive = [this, id, &response](absl::string_view) {
          EXPECT_TRUE(server_->Send(id, response).ok());
          server_->Close(id);
        };
        return callbacks;
      });
  ASSERT_TRUE(listener.ok());
  std::shared_ptr<Endpoint> client = ConnectRecording(*server_->ListenerAddress(*listener));
  ASSERT_TRUE(client_->Send(client->id, "request").ok());
  ASSERT_TRUE(RunUntil([&] { return !client->closed.empty(); }));
  EXPECT_TRUE(client->closed[0].ok()) << client->closed[0];
  EXPECT_EQ(client->received_at_close, response.size());
  EXPECT_TRUE(client->received == response);
  EXPECT_EQ(client_->connections_tracked(), 0u);
  ASSERT_TRUE(RunUntil([&] { return server_->connections_tracked() == 0; }));
}

// Checks the send backlog limit: Send fails with kResourceExhausted when the unsent bytes would
// exceed kSendBacklogBytesMax, accepts exactly up to it, and SendBacklogBytes reports the backlog.
TEST_F(PosixNetworkTest, SendBacklogIsBounded) {
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  // Not connected yet, so everything stays in the backlog.
  ASSERT_TRUE(client_->Send(client->id, std::string(1000, 'a')).ok());
  EXPECT_EQ(client_->SendBacklogBytes(client->id), 1000u);
  const std::string big(kSendBacklogBytesMax - 999, 'b');
  EXPECT_EQ(client_->Send(client->id, big).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(client_->SendBacklogBytes(client->id), 1000u);
  ASSERT_TRUE(client_->Send(client->id, absl::string_view(big).substr(1)).ok());
  EXPECT_EQ(client_->SendBacklogBytes(client->id), kSendBacklogBytesMax);
  EXPECT_EQ(client_->Send(client->id, "c").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(client_->Send(client->id, "").ok());
  // Once connected, the backlog drains into the server.
  ASSERT_TRUE(RunUntil([&] {
    return accepted_.size() == 1 && accepted_[0]->received.size() == kSendBacklogBytesMax;
  }));
  EXPECT_EQ(client_->SendBacklogBytes(client->id), 0u);
}

// Checks that calls with ids that never existed are harmless.
TEST_F(PosixNetworkTest, UnknownIdsAreHarmless) {
  EXPECT_EQ(client_->Send(424242, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client_->SendBacklogBytes(424242), 0u);
  client_->SetReceivePaused(424242, true);
  client_->SetReceivePaused(424242, false);
  client_->Close(424242);
  client_->StopListening(424242);
  EXPECT_FALSE(client_->ListenerAddress(424242).ok());
}

// Checks that many connections at once are accepted and served independently.
TEST_F(PosixNetworkTest, ServesManyConnectionsAtOnce) {
  constexpr int kClients = 64;
  const NetworkAddress address = ListenRecording();
  std::vector<std::shared_ptr<Endpoint>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(ConnectRecording(address));
    ASSERT_TRUE(client_->Send(clients.back()->id, absl::StrCat("client ", i, ";")).ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    if (accepted_.size() != kClients) return false;
    for (const auto& server : accepted_) {
      if (server->received.empty() || server->received.back() != ';') return false;
    }
    return true;
  }));
  for (const auto& server : accepted_) {
    ASSERT_TRUE(server_->Send(server->id, absl::StrCat("echo ", server->received)).ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    for (const auto& client : clients) {
      if (client->received.empty() || client->received.back() != ';') return false;
    }
    return true;
  }));
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(clients[i]->received, absl::StrCat("echo client ", i, ";"));
  }
}

// Checks IPv6: a listener on [::1] takes a connection and data flows; skipped where the host has no
// IPv6 loopback.
TEST_F(PosixNetworkTest, WorksOverIpv6Loopback) {
  absl::StatusOr<ListenerId> listener = server_->Listen(
      NetworkAddress{"::1", 0}, [this](ConnectionId id, const NetworkAddress& peer) {
        auto endpoint = std::make_shared<Endpoint>();
        endpoint->id = id;
        accepted_peers_.push_back(peer);
        accepted_.push_back(endpoint);
        return RecordInto(endpoint);
      });
  if (!listener.ok()) GTEST_SKIP() << "no IPv6 loopback: " << listener.status();
  const NetworkAddress address = *server_->ListenerAddress(*listener);
  EXPECT_EQ(address.host, "::1");
  EXPECT_EQ(NetworkAddress::Parse(address.ToString()).value(), address);
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(client_->Send(client->id, "over six").ok());
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1 && accepted_[0]->received == "over six"; }));
  EXPECT_EQ(accepted_peers_[0].host, "::1");
}

// Checks that a listener on [::] is dual-stack: it accepts an IPv4 client and reports its plain
// IPv4 address.
TEST_F(PosixNetworkTest, DualStackListenerAcceptsIpv4) {
  absl::StatusOr<ListenerId> listener = server_->Listen(
      NetworkAddress{"::", 0}, [this](ConnectionId id, const NetworkAddress& peer) {
        auto endpoint = std::make_shared<Endpoint>();
        endpoint->id = id;
        accepted_peers_.push_back(peer);
        accepted_.push_back(endpoint);
        return RecordInto(endpoint);
      });
  if (!listener.ok()) GTEST_SKIP() << "no IPv6: " << listener.status();
  const uint16_t port = server_->ListenerAddress(*listener)->port;
  std::shared_ptr<Endpoint> client = ConnectRecording(NetworkAddress{"127.0.0.1", port});
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty() && accepted_.size() == 1; }));
  EXPECT_TRUE(client->connected[0].ok()) << client->connected[0];
  EXPECT_EQ(accepted_peers_[0].host, "127.0.0.1");
}

// Checks that a host name is resolved off the loop and connected to (trying each resolved address
// in turn, since "localhost" may also resolve to ::1 where nothing listens).
TEST_F(PosixNetworkTest, ConnectsByHostName) {
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(NetworkAddress{"localhost", address.port});
  ASSERT_TRUE(client_->Send(client->id, "by name").ok());
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1 && accepted_[0]->received == "by name"; }));
  ASSERT_EQ(client->connected.size(), 1u);
  EXPECT_TRUE(client->connected[0].ok()) << client->connected[0];
}

// Checks that a name that does not resolve fails through on_connected with kUnavailable, and that
// closing a connection while its name resolves suppresses the report.
TEST_F(PosixNetworkTest, UnresolvableNameFailsThroughOnConnected) {
  std::shared_ptr<Endpoint> client = ConnectRecording(NetworkAddress{"no-such-host.invalid", 9092});
  std::shared_ptr<Endpoint> abandoned =
      ConnectRecording(NetworkAddress{"no-such-host.invalid", 9093});
  abandoned->closed_locally = true;
  client_->Close(abandoned->id);
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty(); }));
  EXPECT_EQ(client->connected[0].code(), absl::StatusCode::kUnavailable) << client->connected[0];
  loop_->RunFor(20'000);
  EXPECT_EQ(abandoned->callbacks_after_local_close, 0);
  EXPECT_TRUE(abandoned->connected.empty());
}

// ---------------------------------------------------------------------------------------------
// Network: receive pausing

// The most bytes the two kernels of a loopback connection can hold for a reader that never reads:
// the receiver's socket buffer plus the sender's, each at most its sysctl maximum (doubled for
// slack). Falls back to 32 MiB where the sysctls cannot be read.
size_t KernelBufferBytesBound() {
  auto max_of = [](const char* path) -> size_t {
    std::ifstream file(path);
    size_t low = 0, initial = 0, high = 0;
    if (!(file >> low >> initial >> high)) return 0;
    return high;
  };
  const size_t rmem = max_of("/proc/sys/net/ipv4/tcp_rmem");
  const size_t wmem = max_of("/proc/sys/net/ipv4/tcp_wmem");
  if (rmem == 0 || wmem == 0) return size_t{32} << 20;
  return 2 * (rmem + wmem);
}

// Runs the loop until `network`'s backlog on `connection` has not changed for 100 ms: the kernels
// have taken all they will. Returns the backlog.
size_t RunUntilBacklogSettles(EventLoop& loop, PosixNetwork& network, ConnectionId connection) {
  size_t backlog = network.SendBacklogBytes(connection);
  for (int i = 0; i < 200; ++i) {
    loop.RunFor(100'000);
    const size_t now = network.SendBacklogBytes(connection);
    if (now == backlog) break;
    backlog = now;
  }
  return backlog;
}

// Checks back-pressure end to end: a server that pauses its connection in on_accept receives
// nothing while the client sends 16 MiB; the kernels take a bounded amount (at most the socket
// buffers' sysctl maxima) and the rest stays in the client's backlog, which then stops shrinking;
// the client can fill the backlog up to exactly kSendBacklogBytesMax, after which Send fails with
// kResourceExhausted. Sending the other way still works while paused. Resuming delivers nothing
// from inside the call, then every byte in order, exactly once, and the backlog drains.
TEST_F(PosixNetworkTest, PausedReceiverPushesBackOnTheSender) {
  PauseOnAccept();
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty() && accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  std::string upload = PatternBytes(7, 16 << 20);
  SendInChunks(*client_, client->id, upload, 8);
  const size_t backlog = RunUntilBacklogSettles(*loop_, *client_, client->id);
  EXPECT_EQ(server->received.size(), 0u);
  EXPECT_GT(backlog, 0u);
  EXPECT_LE(upload.size() - backlog, KernelBufferBytesBound());
  loop_->RunFor(200'000);
  EXPECT_EQ(client_->SendBacklogBytes(client->id), backlog);  // nothing drains while paused

  const std::string fill = PatternBytes(9, kSendBacklogBytesMax - backlog);
  EXPECT_EQ(client_->Send(client->id, fill + "x").code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(client_->Send(client->id, fill).ok());
  upload += fill;
  EXPECT_EQ(client_->SendBacklogBytes(client->id), kSendBacklogBytesMax);
  EXPECT_EQ(client_->Send(client->id, "x").code(), absl::StatusCode::kResourceExhausted);

  ASSERT_TRUE(server_->Send(server->id, "still talking").ok());
  ASSERT_TRUE(RunUntil([&] { return client->received == "still talking"; }));
  EXPECT_EQ(server->received.size(), 0u);

  SetPaused(*server_, *server, false);
  EXPECT_EQ(server->received.size(), 0u);  // never from inside the call
  ASSERT_TRUE(RunUntil([&] { return server->received.size() >= upload.size(); }));
  EXPECT_EQ(server->received.size(), upload.size());
  EXPECT_TRUE(server->received == upload) << "first difference at byte "
                                          << FirstDifference(server->received, upload);
  EXPECT_EQ(client_->SendBacklogBytes(client->id), 0u);
  EXPECT_EQ(server->receives_while_paused, 0);
  EXPECT_TRUE(server->closed.empty());
}

// CPU time used by the calling thread, in microseconds.
int64_t ThreadCpuUs() {
  rusage usage = {};
  getrusage(RUSAGE_THREAD, &usage);
  return static_cast<int64_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000 +
         usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

// Checks the level-triggered resume: bytes that arrived while paused are delivered after the resume
// although nothing new arrives, and pausing a paused connection or resuming a running one changes
// nothing. While paused with bytes waiting, the loop sleeps instead of being woken for them over
// and over: it uses under 10% of 300 ms in CPU time (a sleeping loop uses well under 1%, a spinning
// one all it can get).
TEST_F(PosixNetworkTest, ResumeDeliversWhatWaitedWithoutNewData) {
  PauseOnAccept();
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(client_->Send(client->id, "hello").ok());
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  loop_->RunFor(50'000);
  server_->SetReceivePaused(server->id, true);  // paused already
  const int64_t cpu_before_us = ThreadCpuUs();
  loop_->RunFor(300'000);
  EXPECT_LT(ThreadCpuUs() - cpu_before_us, 30'000);
  EXPECT_EQ(server->received, "");
  SetPaused(*server_, *server, false);
  server_->SetReceivePaused(server->id, false);  // running already
  ASSERT_TRUE(RunUntil([&] { return server->received == "hello"; }));
  ASSERT_TRUE(client_->Send(client->id, " again").ok());
  ASSERT_TRUE(RunUntil([&] { return server->received == "hello again"; }));
  EXPECT_EQ(server->receives_while_paused, 0);
}

// Checks pause and resume many times under load in both directions: each end pauses itself from
// inside on_receive at random and a timer resumes it 0 to 2 ms later, while 8 MiB go each way in
// random chunks. No on_receive runs while its end is paused, both streams arrive byte-exact, and
// each end really paused many times.
TEST_F(PosixNetworkTest, PauseAndResumeManyTimesKeepsStreamsExact) {
  constexpr size_t kBytesEachWay = 8 << 20;
  const std::string upload = PatternBytes(11, kBytesEachWay);
  const std::string download = PatternBytes(12, kBytesEachWay);
  Random random(13);
  int pauses = 0;
  auto pause_at_random = [&](PosixNetwork& network) {
    return [&, network_ptr = &network](Endpoint& endpoint) {
      if (endpoint.paused || !random.Chance(0.3)) return;
      SetPaused(*network_ptr, endpoint, true);
      ++pauses;
      loop_->ScheduleAfter(random.Between(0, 2'000), [this, network_ptr, endpoint_ptr = &endpoint] {
        SetPaused(*network_ptr, *endpoint_ptr, false);
      });
    };
  };
  accept_hook_ = [&](Endpoint& endpoint) { endpoint.on_receive_hook = pause_at_random(*server_); };
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  client->on_receive_hook = pause_at_random(*client_);
  SendInChunks(*client_, client->id, upload, 14);
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  SendInChunks(*server_, server->id, download, 15);
  ASSERT_TRUE(RunUntil([&] {
    return server->received.size() >= upload.size() && client->received.size() >= download.size();
  }));
  EXPECT_TRUE(server->received == upload) << "first difference at byte "
                                          << FirstDifference(server->received, upload);
  EXPECT_TRUE(client->received == download) << "first difference at byte "
                                            << FirstDifference(client->received, download);
  EXPECT_EQ(server->receives_while_paused, 0);
  EXPECT_EQ(client->receives_while_paused, 0);
  EXPECT_GT(pauses, 20);
  // Let the last resume timers run while the endpoints still exist.
  loop_->RunFor(5'000);
}

// Checks that a peer's orderly close while paused is reported only after the resume and after every
// byte: the client sends 1 MiB and closes; the paused server hears nothing at all for 200 ms; after
// the resume it gets every byte, then on_closed(OK), and both sides let go of their sockets.
TEST_F(PosixNetworkTest, OrderlyCloseWhilePausedArrivesAfterTheBytesOnResume) {
  PauseOnAccept();
  const NetworkAddress address = ListenRecording();
  const std::string upload = PatternBytes(16, 1 << 20);
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(client_->Send(client->id, upload).ok());
  client->closed_locally = true;
  client_->Close(client->id);
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  loop_->RunFor(200'000);
  EXPECT_EQ(server->received.size(), 0u);
  EXPECT_TRUE(server->closed.empty());
  SetPaused(*server_, *server, false);
  ASSERT_TRUE(RunUntil([&] { return !server->closed.empty(); }));
  EXPECT_TRUE(server->closed[0].ok()) << server->closed[0];
  EXPECT_EQ(server->received_at_close, upload.size());
  EXPECT_TRUE(server->received == upload);
  ASSERT_TRUE(RunUntil([&] {
    return client_->connections_tracked() == 0 && server_->connections_tracked() == 0;
  }));
  EXPECT_EQ(client->callbacks_after_local_close, 0);
}

// Checks that a peer's FIN collected by epoll in the same batch as the pause, before it, waits for
// the resume like the bytes before it (it must not be mistaken for a broken connection): two raw
// peers X and Y become ready in one loop iteration, X first; X's on_receive pauses Y, whose data
// and FIN (reported as readable plus hang-up) then arrive at a paused connection. After the resume
// Y's bytes come, then on_closed(OK).
TEST_F(PosixNetworkTest, PeerCloseReportedJustBeforeThePauseWaitsForTheResume) {
  const NetworkAddress address = ListenRecording();
  ScopedFd raw_y = RawConnect(address);
  ScopedFd raw_x = RawConnect(address);
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 2; }));
  std::shared_ptr<Endpoint> y = accepted_[0];
  std::shared_ptr<Endpoint> x = accepted_[1];
  x->on_receive_hook = [&](Endpoint&) {
    if (!y->paused && y->received.empty()) SetPaused(*server_, *y, true);
  };
  // The loop is not running, so both become ready before it next polls; X first.
  ASSERT_EQ(send(raw_x.get(), "x", 1, MSG_NOSIGNAL), 1);
  ASSERT_EQ(send(raw_y.get(), "y-data", 6, MSG_NOSIGNAL), 6);
  ASSERT_EQ(shutdown(raw_y.get(), SHUT_WR), 0);
  loop_->RunFor(100'000);
  ASSERT_EQ(x->received, "x");
  ASSERT_TRUE(y->paused) << "Y was served before X in the batch; the scenario did not happen";
  EXPECT_EQ(y->received, "");
  EXPECT_TRUE(y->closed.empty());
  SetPaused(*server_, *y, false);
  ASSERT_TRUE(RunUntil([&] { return !y->closed.empty(); }));
  EXPECT_TRUE(y->closed[0].ok()) << y->closed[0];
  EXPECT_EQ(y->received, "y-data");
  EXPECT_EQ(y->receives_while_paused, 0);
}

// Checks that a reset is reported to a paused connection at once, although nothing is read: a raw
// peer sends bytes to a connection paused since on_accept, then resets (SO_LINGER 0); on_closed
// runs with kUnavailable without any on_receive, exactly once, and the waiting bytes are lost.
TEST_F(PosixNetworkTest, ResetWhilePausedIsReportedAtOnce) {
  PauseOnAccept();
  const NetworkAddress address = ListenRecording();
  ScopedFd raw = RawConnect(address);
  ASSERT_EQ(send(raw.get(), "unread", 6, MSG_NOSIGNAL), 6);
  ASSERT_TRUE(RunUntil([&] { return accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  loop_->RunFor(50'000);
  const linger reset = {1, 0};
  ASSERT_EQ(setsockopt(raw.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
  raw.Reset();
  ASSERT_TRUE(RunUntil([&] { return !server->closed.empty(); }));
  EXPECT_EQ(server->closed[0].code(), absl::StatusCode::kUnavailable) << server->closed[0];
  EXPECT_EQ(server->received, "");
  server_->SetReceivePaused(server->id, false);  // a closed connection: nothing happens
  loop_->RunFor(20'000);
  EXPECT_EQ(server->closed.size(), 1u);
  EXPECT_EQ(server_->connections_tracked(), 0u);
}

// Checks Close() on a paused connection: the closing side discards what waited and gets no
// callback, the peer's backlog (more than the kernels hold) drains into the discarding reader, and
// the peer sees an orderly close; both sides let go of their sockets.
TEST_F(PosixNetworkTest, CloseWhilePausedDiscardsAndClosesCleanly) {
  PauseOnAccept();
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty() && accepted_.size() == 1; }));
  std::shared_ptr<Endpoint> server = accepted_[0];
  SendInChunks(*client_, client->id, PatternBytes(17, 16 << 20), 18);
  EXPECT_GT(RunUntilBacklogSettles(*loop_, *client_, client->id), 0u);
  server->closed_locally = true;
  const int64_t close_us = EventLoop::NowUs();
  server_->Close(server->id);
  ASSERT_TRUE(RunUntil([&] { return !client->closed.empty(); }));
  EXPECT_TRUE(client->closed[0].ok()) << client->closed[0];
  ASSERT_TRUE(RunUntil([&] {
    return client_->connections_tracked() == 0 && server_->connections_tracked() == 0;
  }));
  // Promptly, by draining, not by giving up after the linger time.
  EXPECT_LT(EventLoop::NowUs() - close_us, PosixNetwork::kCloseLingerUs / 2);
  EXPECT_EQ(server->callbacks_after_local_close, 0);
  EXPECT_EQ(server->received, "");
}

// Checks that a pause set right after Connect(), before the connection is established, applies from
// the start: the client hears on_connected(OK) but not the greeting the server sends in on_accept
// until it resumes.
TEST_F(PosixNetworkTest, PauseBeforeConnectedAppliesFromTheStart) {
  accept_hook_ = [this](Endpoint& endpoint) {
    EXPECT_TRUE(server_->Send(endpoint.id, "greeting").ok());
  };
  const NetworkAddress address = ListenRecording();
  std::shared_ptr<Endpoint> client = ConnectRecording(address);
  SetPaused(*client_, *client, true);
  ASSERT_TRUE(RunUntil([&] { return !client->connected.empty() && accepted_.size() == 1; }));
  ASSERT_TRUE(client->connected[0].ok());
  loop_->RunFor(100'000);
  EXPECT_EQ(client->received, "");
  SetPaused(*client_, *client, false);
  ASSERT_TRUE(RunUntil([&] { return client->received == "greeting"; }));
  EXPECT_EQ(client->receives_while_paused, 0);
}

// ---------------------------------------------------------------------------------------------
// Disk

class PosixDiskTest : public ::testing::Test {
 protected:
  PosixDiskTest() : loop_(NewLoop()) {
    absl::StatusOr<std::unique_ptr<PosixDisk>> disk = PosixDisk::Create(*loop_, directory_.path());
    EXPECT_TRUE(disk.ok()) << disk.status();
    disk_ = std::move(*disk);
  }

  std::unique_ptr<File> OpenOrDie(absl::string_view path, OpenMode mode) {
    absl::StatusOr<std::unique_ptr<File>> file = disk_->Open(path, mode);
    EXPECT_TRUE(file.ok()) << file.status();
    return file.ok() ? std::move(*file) : nullptr;
  }

  std::string ReadAll(File& file) {
    std::string contents(*file.Size(), '\0');
    absl::StatusOr<size_t> read = file.ReadAt(0, absl::MakeSpan(contents));
    EXPECT_TRUE(read.ok());
    contents.resize(*read);
    return contents;
  }

  // Runs the loop until `done` has been called; returns the status it got.
  absl::Status WaitForSync(absl::FunctionRef<void(SyncCallback)> start) {
    std::optional<absl::Status> result;
    start([&](const absl::Status& status) { result = status; });
    EXPECT_FALSE(result.has_value()) << "completed from inside the call";
    EXPECT_TRUE(loop_->RunUntil([&] { return result.has_value(); }, kTestTimeoutUs));
    return result.value_or(absl::DeadlineExceededError("sync never completed"));
  }

  TempDir directory_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<PosixDisk> disk_;
};

// Checks the file operations against each other: Append returns the old end, ReadAt reads exactly
// what was written and stops short only at the end, WriteAt overwrites and zero-fills gaps, Truncate
// cuts and extends, Size follows every change.
TEST_F(PosixDiskTest, FileOperationsAgreeWithEachOther) {
  std::unique_ptr<File> file = OpenOrDie("segment.log", OpenMode::kCreateExclusive);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->path(), "segment.log");
  EXPECT_EQ(*file->Size(), 0u);
  EXPECT_EQ(*file->Append("hello "), 0u);
  EXPECT_EQ(*file->Append("world"), 6u);
  EXPECT_EQ(*file->Size(), 11u);
  EXPECT_EQ(ReadAll(*file), "hello world");

  char buffer[8];
  EXPECT_EQ(*file->ReadAt(6, absl::MakeSpan(buffer, 8)), 5u);  // short only at the end
  EXPECT_EQ(absl::string_view(buffer, 5), "world");
  EXPECT_EQ(*file->ReadAt(11, absl::MakeSpan(buffer, 8)), 0u);
  EXPECT_EQ(*file->ReadAt(1'000'000, absl::MakeSpan(buffer, 8)), 0u);

  ASSERT_TRUE(file->WriteAt(0, "HELLO").ok());
  EXPECT_EQ(ReadAll(*file), "HELLO world");
  ASSERT_TRUE(file->WriteAt(14, "!").ok());  // past the end: zero-filled gap
  EXPECT_EQ(ReadAll(*file), std::string("HELLO world\0\0\0!", 15));
  EXPECT_EQ(*file->Append("?"), 15u);

  ASSERT_TRUE(file->Truncate(5).ok());
  EXPECT_EQ(*file->Size(), 5u);
  EXPECT_EQ(ReadAll(*file), "HELLO");
  ASSERT_TRUE(file->Truncate(8).ok());
  EXPECT_EQ(ReadAll(*file), std::string("HELLO\0\0\0", 8));
  EXPECT_EQ(*file->Append("x"), 8u);

  // A large append round-trips byte-exact.
  const std::string big = PatternBytes(31, 3 << 20);
  const uint64_t offset = *file->Append(big);
  std::string back(big.size(), '\0');
  EXPECT_EQ(*file->ReadAt(offset, absl::MakeSpan(back)), big.size());
  EXPECT_TRUE(back == big);
}

// Checks that contents survive closing and reopening, that kCreate keeps existing contents, and
// that two handles to one file see each other's appends.
TEST_F(PosixDiskTest, ContentsPersistAcrossHandles) {
  {
    std::unique_ptr<File> file = OpenOrDie("data", OpenMode::kCreate);
    ASSERT_TRUE(file->Append("abc").ok());
  }
  std::unique_ptr<File> first = OpenOrDie("data", OpenMode::kCreate);
  std::unique_ptr<File> second = OpenOrDie("data", OpenMode::kExisting);
  EXPECT_EQ(ReadAll(*first), "abc");
  EXPECT_EQ(*first->Append("def"), 3u);
  EXPECT_EQ(*second->Append("ghi"), 6u);
  EXPECT_EQ(ReadAll(*first), "abcdefghi");
}

// Checks directory operations: CreateDirectory (idempotent), List (sorted names, no "." or ".."),
// Exists, Rename (atomically replacing the target), Remove of files and empty directories, and
// that an open handle stays usable after its file is removed.
TEST_F(PosixDiskTest, DirectoryOperations) {
  ASSERT_TRUE(disk_->CreateDirectory("topic-0").ok());
  ASSERT_TRUE(disk_->CreateDirectory("topic-0").ok());
  ASSERT_TRUE(disk_->CreateDirectory("").ok());
  EXPECT_TRUE(disk_->Exists(""));
  EXPECT_TRUE(disk_->Exists("topic-0"));
  for (const char* name : {"c.log", "a.log", "b.index"}) {
    std::unique_ptr<File> file = OpenOrDie(absl::StrCat("topic-0/", name), OpenMode::kCreate);
    ASSERT_TRUE(file->Append(name).ok());
  }
  EXPECT_EQ(*disk_->List("topic-0"), (std::vector<std::string>{"a.log", "b.index", "c.log"}));
  EXPECT_EQ(*disk_->List(""), (std::vector<std::string>{"topic-0"}));

  ASSERT_TRUE(disk_->Rename("topic-0/a.log", "topic-0/c.log").ok());
  EXPECT_FALSE(disk_->Exists("topic-0/a.log"));
  std::unique_ptr<File> replaced = OpenOrDie("topic-0/c.log", OpenMode::kExisting);
  EXPECT_EQ(ReadAll(*replaced), "a.log");
  ASSERT_TRUE(disk_->Rename("topic-0/b.index", "moved.index").ok());
  EXPECT_EQ(*disk_->List(""), (std::vector<std::string>{"moved.index", "topic-0"}));

  ASSERT_TRUE(disk_->Remove("topic-0/c.log").ok());
  EXPECT_FALSE(disk_->Exists("topic-0/c.log"));
  EXPECT_EQ(ReadAll(*replaced), "a.log");  // the handle outlives the name
  EXPECT_TRUE(replaced->Append("+").ok());
  ASSERT_TRUE(disk_->Remove("topic-0").ok());
  EXPECT_FALSE(disk_->Exists("topic-0"));
  EXPECT_EQ(*disk_->List(""), (std::vector<std::string>{"moved.index"}));
}

// Checks the error codes disk.h promises, and that messages name the path.
TEST_F(PosixDiskTest, ErrorCodesFollowTheContract) {
  absl::StatusOr<std::unique_ptr<File>> missing = disk_->Open("missing", OpenMode::kExisting);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos) << missing.status();
  EXPECT_EQ(disk_->Open("no-dir/file", OpenMode::kCreate).status().code(),
            absl::StatusCode::kNotFound);

  OpenOrDie("existing", OpenMode::kCreate);
  EXPECT_EQ(disk_->Open("existing", OpenMode::kCreateExclusive).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(disk_->CreateDirectory("existing").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(disk_->Open("existing/below", OpenMode::kCreate).status().code(),
            absl::StatusCode::kNotFound);

  for (const char* bad : {"/etc/passwd", "a/../b", "./a", "a//b", "a/", ".."}) {
    EXPECT_EQ(disk_->Open(bad, OpenMode::kCreate).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(disk_->CreateDirectory(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk_->Remove(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk_->Rename("existing", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk_->List(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(disk_->Exists(bad)) << bad;
  }
  EXPECT_EQ(disk_->Open("", OpenMode::kCreate).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(disk_->Remove("").code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(disk_->CreateDirectory("full").ok());
  OpenOrDie("full/file", OpenMode::kCreate);
  EXPECT_EQ(disk_->Remove("full").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(disk_->Open("full", OpenMode::kCreate).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(disk_->Remove("gone").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(disk_->Rename("gone", "elsewhere").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(disk_->List("gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(disk_->CreateDirectory("gone/deeper").code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(disk_->Exists("gone"));
}

// Checks that Sync and SyncDirectory complete through a callback on the loop (never from inside
// the call) with OK, that errors arrive the same way, and that many syncs complete in order.
TEST_F(PosixDiskTest, SyncAndSyncDirectoryCompleteOnTheLoop) {
  ASSERT_TRUE(disk_->CreateDirectory("dir").ok());
  std::unique_ptr<File> file = OpenOrDie("dir/file", OpenMode::kCreate);
  ASSERT_TRUE(file->Append("durable").ok());
  EXPECT_TRUE(WaitForSync([&](SyncCallback done) { file->Sync(std::move(done)); }).ok());
  EXPECT_TRUE(WaitForSync([&](SyncCallback done) { disk_->SyncDirectory("dir", std::move(done)); }).ok());
  EXPECT_TRUE(WaitForSync([&](SyncCallback done) { disk_->SyncDirectory("", std::move(done)); }).ok());
  EXPECT_EQ(WaitForSync([&](SyncCallback done) { disk_->SyncDirectory("missing", std::move(done)); })
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(WaitForSync([&](SyncCallback done) { disk_->SyncDirectory("../x", std::move(done)); })
                .code(),
            absl::StatusCode::kInvalidArgument);

  constexpr int kSyncs = 50;
  std::vector<int> order;
  for (int i = 0; i < kSyncs; ++i) {
    ASSERT_TRUE(file->Append("x").ok());
    file->Sync([&order, i](const absl::Status& status) {
      EXPECT_TRUE(status.ok()) << status;
      order.push_back(i);
    });
  }
  EXPECT_TRUE(order.empty());
  ASSERT_TRUE(loop_->RunUntil([&] { return order.size() == kSyncs; }, kTestTimeoutUs));
  for (int i = 0; i < kSyncs; ++i) EXPECT_EQ(order[i], i);
  EXPECT_EQ(disk_->syncs_pending(), 0u);
}

// Checks that a file handle destroyed while its sync is queued does not break the sync (the worker
// keeps the descriptor alive), and that the callback still runs.
TEST_F(PosixDiskTest, SyncOutlivesItsFileHandle) {
  std::unique_ptr<File> file = OpenOrDie("file", OpenMode::kCreate);
  ASSERT_TRUE(file->Append(PatternBytes(3, 1 << 20)).ok());
  std::optional<absl::Status> result;
  file->Sync([&](const absl::Status& status) { result = status; });
  file.reset();
  ASSERT_TRUE(loop_->RunUntil([&] { return result.has_value(); }, kTestTimeoutUs));
  EXPECT_TRUE(result->ok()) << *result;
}

// Checks that starting write-back is only a hint: the contents stay as written, far more starts than
// the queue holds are dropped rather than blocking, a start may outlive its handle, a sync after it
// completes as usual, and a handle whose disk is gone takes a start as a no-op.
TEST_F(PosixDiskTest, StartWritebackChangesNothingAndOutlivesItsHandle) {
  const std::string bytes = PatternBytes(5, 4 << 20);
  std::unique_ptr<File> file = OpenOrDie("segment.log", OpenMode::kCreate);
  ASSERT_TRUE(file->Append(bytes).ok());
  for (size_t i = 0; i < 4 * SyncQueue::kWritebacksQueuedMax; ++i) {
    file->StartWriteback((i % 4) << 20, 1 << 20);
  }
  file->StartWriteback(0, 0);
  file->StartWriteback(bytes.size(), 1 << 20);  // past the end: nothing to write
  EXPECT_EQ(ReadAll(*file), bytes);
  EXPECT_TRUE(WaitForSync([&](SyncCallback done) { file->Sync(std::move(done)); }).ok());
  file->StartWriteback(0, bytes.size());
  file.reset();
  std::unique_ptr<File> reopened = OpenOrDie("segment.log", OpenMode::kExisting);
  EXPECT_EQ(ReadAll(*reopened), bytes);
  disk_.reset();
  reopened->StartWriteback(0, bytes.size());
  EXPECT_EQ(reopened->Size().status().code(), absl::StatusCode::kFailedPrecondition);
}

// Checks that destroying the disk (a node stopping) means no sync callback of it ever runs, and that
// file handles that outlive it fail with kFailedPrecondition.
TEST_F(PosixDiskTest, DestroyedDiskRunsNoCallbacksAndDisablesHandles) {
  std::unique_ptr<File> file = OpenOrDie("file", OpenMode::kCreate);
  int callbacks = 0;
  for (int i = 0; i < 10; ++i) file->Sync([&](const absl::Status&) { ++callbacks; });
  disk_->SyncDirectory("", [&](const absl::Status&) { ++callbacks; });
  disk_.reset();
  loop_->RunFor(50'000);
  EXPECT_EQ(callbacks, 0);
  EXPECT_EQ(file->Append("x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(file->WriteAt(0, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(file->Size().status().code(), absl::StatusCode::kFailedPrecondition);
  char byte;
  EXPECT_EQ(file->ReadAt(0, absl::MakeSpan(&byte, 1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(file->Truncate(0).code(), absl::StatusCode::kFailedPrecondition);
  file->Sync([&](const absl::Status&) { ++callbacks; });
  loop_->RunFor(10'000);
  EXPECT_EQ(callbacks, 0);
}

// Checks that the data directory is created when missing, and that a path that cannot be a
// directory is refused.
TEST(PosixDiskCreateTest, CreatesTheDataDirectoryOrFails) {
  TempDir directory;
  auto loop = NewLoop();
  const std::string nested = directory.path() + "/a/b/c";
  absl::StatusOr<std::unique_ptr<PosixDisk>> disk = PosixDisk::Create(*loop, nested);
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_TRUE(std::filesystem::is_directory(nested));
  EXPECT_EQ((*disk)->root(), nested);

  ASSERT_TRUE((*disk)->Open("plain", OpenMode::kCreate).ok());
  EXPECT_FALSE(PosixDisk::Create(*loop, nested + "/plain").ok());
  EXPECT_FALSE(PosixDisk::Create(*loop, "").ok());
}

// ---------------------------------------------------------------------------------------------
// PosixEnv

// Checks that PosixEnv wires its parts together: a given seed reproduces Random's sequence, the
// clocks are sane, BuggifyFires is false, and timers run through the loop.
TEST(PosixEnvTest, WiresClockRandomAndBuggify) {
  TempDir directory;
  auto loop = NewLoop();
  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(*loop, 7, directory.path(), 42);
  ASSERT_TRUE(env.ok()) << env.status();
  Env& e = **env;
  EXPECT_EQ(e.node_id(), 7);
  EXPECT_EQ((*env)->seed(), 42u);
  Random reference(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(e.random().Next64(), reference.Next64());
  EXPECT_FALSE(RUNNEL_BUGGIFY(e));

  const int64_t wall_ms = e.clock().WallNowMs();
  const int64_t expected_ms = static_cast<int64_t>(time(nullptr)) * 1000;
  EXPECT_LT(std::abs(wall_ms - expected_ms), 5'000);
  const int64_t before_us = e.clock().MonotonicNowUs();
  int64_t fired_us = 0;
  const TimerId timer = e.clock().ScheduleAfter(10'000, [&] { fired_us = e.clock().MonotonicNowUs(); });
  EXPECT_NE(timer, kNoTimer);
  const TimerId cancelled = e.clock().ScheduleAfter(10'000, [] { ADD_FAILURE() << "cancelled"; });
  EXPECT_TRUE(e.clock().CancelTimer(cancelled));
  EXPECT_FALSE(e.clock().CancelTimer(cancelled));
  ASSERT_TRUE(loop->RunUntil([&] { return fired_us != 0; }, kTestTimeoutUs));
  EXPECT_GE(fired_us - before_us, 10'000);
  EXPECT_FALSE(e.clock().CancelTimer(timer));
  loop->RunFor(15'000);
}

// Checks that without a seed, two Envs draw different seeds from the kernel.
TEST(PosixEnvTest, SeedsFromTheKernelWithoutASeed) {
  TempDir directory;
  auto loop = NewLoop();
  auto first = PosixEnv::Create(*loop, 1, directory.path() + "/1");
  auto second = PosixEnv::Create(*loop, 2, directory.path() + "/2");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE((*first)->seed(), (*second)->seed());
}

// Checks that Log and RecordEvent write one line each to stderr with time, node id and level, that
// newlines in messages are escaped, and that levels below the minimum are dropped.
TEST(PosixEnvTest, LogAndRecordEventWriteOneLineEach) {
  TempDir directory;
  auto loop = NewLoop();
  auto env = PosixEnv::Create(*loop, 3, directory.path(), 1);
  ASSERT_TRUE(env.ok());
  testing::internal::CaptureStderr();
  (*env)->Log(LogLevel::kInfo, "two\nlines");
  (*env)->Log(LogLevel::kDebug, "dropped");
  (*env)->RecordEvent(SemanticEvent{"leader", "orders-0", 5, "elected"});
  (*env)->set_log_level_min(LogLevel::kDebug);
  (*env)->Log(LogLevel::kDebug, "kept");
  (*env)->Log(LogLevel::kError, std::string(PosixEnv::kLogLineBytesMax * 2, 'z'));
  const std::string output = testing::internal::GetCapturedStderr();

  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = output.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(output.substr(start, end - start));
  }
  ASSERT_EQ(lines.size(), 4u) << output;
  EXPECT_NE(lines[0].find("node=3 INFO two\\nlines"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0][4], '-');  // starts with a date
  EXPECT_EQ(lines[0][10], 'T');
  EXPECT_NE(lines[1].find("node=3 EVENT leader orders-0 value=5 elected"), std::string::npos)
      << lines[1];
  EXPECT_NE(lines[2].find("node=3 DEBUG kept"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("node=3 ERROR zzz"), std::string::npos);
  EXPECT_LT(lines[3].size(), PosixEnv::kLogLineBytesMax);
  EXPECT_NE(lines[3].find("[truncated]"), std::string::npos);
}

// Checks that destroying an Env (a node stopping) cancels everything it registered: its timers and
// sync callbacks never run, and its listener and connections go away.
TEST(PosixEnvTest, DestroyingTheEnvRunsNoMoreCallbacks) {
  TempDir directory;
  auto loop = NewLoop();
  auto env = PosixEnv::Create(*loop, 4, directory.path(), 1);
  ASSERT_TRUE(env.ok());
  int callbacks = 0;
  (*env)->clock().ScheduleAfter(1'000, [&] { ++callbacks; });
  (*env)->clock().ScheduleAfter(0, [&] { ++callbacks; });
  absl::StatusOr<std::unique_ptr<File>> file = (*env)->disk().Open("f", OpenMode::kCreate);
  ASSERT_TRUE(file.ok());
  (*file)->Sync([&](const absl::Status&) { ++callbacks; });
  (*env)->disk().SyncDirectory("", [&](const absl::Status&) { ++callbacks; });
  absl::StatusOr<ListenerId> listener = (*env)->network().Listen(
      NetworkAddress{"127.0.0.1", 0}, [&](ConnectionId, const NetworkAddress&) {
        ++callbacks;
        return ConnectionCallbacks();
      });
  ASSERT_TRUE(listener.ok());
  const NetworkAddress address = *(*env)->network().ListenerAddress(*listener);
  ConnectionCallbacks outgoing;
  outgoing.on_connected = [&](const absl::Status&) { ++callbacks; };
  (*env)->network().Connect(address, std::move(outgoing));
  EXPECT_EQ(loop->timers_pending(), 2u);
  file->reset();
  env->reset();
  EXPECT_EQ(loop->timers_pending(), 0u);
  loop->RunFor(50'000);
  EXPECT_EQ(callbacks, 0);
}

// Checks that PosixEnv::Create reports a data directory it cannot use.
TEST(PosixEnvTest, CreateFailsForAnUnusableDataDirectory) {
  auto loop = NewLoop();
  EXPECT_FALSE(PosixEnv::Create(*loop, 1, "/proc/self/no-such-place/data", 1).ok());
}

}  // namespace
}  // namespace runnel
