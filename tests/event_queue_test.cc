// Tests of sim/event_queue.h, the simulator's single ordering authority: events come out by
// (time, insertion sequence) and by nothing else. Each test pushes events whose actions append a
// marker to a log, pops them all, and compares the log and the events' fields with what the order
// rule predicts.
#include "sim/event_queue.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "broker/env/random.h"
#include "gtest/gtest.h"

namespace runnel::sim {
namespace {

// Pops and runs every remaining event, returning them in order.
std::vector<EventQueue::Event> Drain(EventQueue& queue) {
  std::vector<EventQueue::Event> events;
  EventQueue::Event event;
  while (queue.Pop(&event)) {
    event.action();
    events.push_back(std::move(event));
  }
  return events;
}

// An empty queue pops nothing, and sequence numbers start at 1 and increase by one per Push.
TEST(EventQueueTest, EmptyQueueAndSequenceNumbers) {
  EventQueue queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  EventQueue::Event event;
  EXPECT_FALSE(queue.Pop(&event));
  EXPECT_EQ(queue.Push(10, -1, 0, [] {}), 1u);
  EXPECT_EQ(queue.Push(5, -1, 0, [] {}), 2u);
  EXPECT_EQ(queue.Push(5, -1, 0, [] {}), 3u);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_FALSE(queue.empty());
  EXPECT_EQ(queue.PeekTimeUs(), 5);
}

// Events pushed in scrambled time order come out sorted by time; PeekTimeUs always shows the time
// of the next event to pop.
TEST(EventQueueTest, OrdersByTime) {
  EventQueue queue;
  std::string log;
  for (int64_t time : {50, 10, 40, 20, 30, 0}) {
    queue.Push(time, -1, 0, [&log, time] { log += std::to_string(time) + " "; });
  }
  std::vector<int64_t> times;
  EventQueue::Event event;
  while (!queue.empty()) {
    const int64_t peek = queue.PeekTimeUs();
    ASSERT_TRUE(queue.Pop(&event));
    EXPECT_EQ(event.time_us, peek);
    event.action();
    times.push_back(event.time_us);
  }
  EXPECT_EQ(times, (std::vector<int64_t>{0, 10, 20, 30, 40, 50}));
  EXPECT_EQ(log, "0 10 20 30 40 50 ");
}

// Many events at one time come out exactly in insertion order, interleaved correctly with events at
// other times pushed between them.
TEST(EventQueueTest, EqualTimesPopInInsertionOrder) {
  EventQueue queue;
  std::vector<int> log;
  for (int i = 0; i < 100; ++i) {
    queue.Push(i % 2 == 0 ? 7 : 3, -1, 0, [&log, i] { log.push_back(i); });
  }
  Drain(queue);
  std::vector<int> expected;
  for (int i = 1; i < 100; i += 2) expected.push_back(i);  // time 3, in insertion order
  for (int i = 0; i < 100; i += 2) expected.push_back(i);  // time 7, in insertion order
  EXPECT_EQ(log, expected);
}

// A randomized check of the whole rule: 5,000 events with times drawn from a small range (many
// ties), popped after interleaved pushes and pops, come out sorted by (time, sequence), and no
// event pushed later ever overtakes an earlier one with the same time.
TEST(EventQueueTest, RandomizedOrderIsTimeThenSequence) {
  EventQueue queue;
  Random random(2718);
  std::vector<std::pair<int64_t, uint64_t>> popped;
  int64_t floor_us = 0;  // the simulator never schedules into the past
  EventQueue::Event event;
  for (int i = 0; i < 5000; ++i) {
    queue.Push(floor_us + random.Between(0, 20), -1, 0, [] {});
    if (random.Chance(0.4) && queue.Pop(&event)) {
      popped.emplace_back(event.time_us, event.sequence);
      floor_us = event.time_us;
    }
  }
  while (queue.Pop(&event)) popped.emplace_back(event.time_us, event.sequence);
  EXPECT_EQ(popped.size(), 5000u);
  for (size_t i = 1; i < popped.size(); ++i) {
    ASSERT_LT(popped[i - 1], popped[i]) << "at " << i;
  }
}

// A cancelled event is skipped by Pop (its action never runs) while its neighbours, including one
// at the same time, still run in order; cancelling the earliest event moves Pop on to the next.
// size() and PeekTimeUs() still count cancelled events until Pop discards them, as documented.
TEST(EventQueueTest, CancelSkipsEvent) {
  EventQueue queue;
  std::string log;
  const uint64_t a = queue.Push(10, -1, 0, [&log] { log += "a"; });
  const uint64_t b = queue.Push(10, -1, 0, [&log] { log += "b"; });
  queue.Push(10, -1, 0, [&log] { log += "c"; });
  const uint64_t d = queue.Push(5, -1, 0, [&log] { log += "d"; });
  queue.Push(20, -1, 0, [&log] { log += "e"; });
  queue.Cancel(b);
  queue.Cancel(d);
  EXPECT_EQ(queue.size(), 5u);
  EXPECT_EQ(queue.PeekTimeUs(), 5);  // the cancelled event is still at the front
  EventQueue::Event event;
  ASSERT_TRUE(queue.Pop(&event));
  EXPECT_EQ(event.sequence, a);
  event.action();
  Drain(queue);
  EXPECT_EQ(log, "ace");
  EXPECT_TRUE(queue.empty());
}

// Cancelling every pending event leaves a queue that pops nothing and reports empty afterwards.
TEST(EventQueueTest, CancelAllLeavesNothing) {
  EventQueue queue;
  bool ran = false;
  std::vector<uint64_t> sequences;
  for (int i = 0; i < 10; ++i) sequences.push_back(queue.Push(i, 0, 1, [&ran] { ran = true; }));
  for (uint64_t sequence : sequences) queue.Cancel(sequence);
  EventQueue::Event event;
  EXPECT_FALSE(queue.Pop(&event));
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(ran);
  // The queue keeps working afterwards, with fresh sequence numbers.
  const uint64_t next = queue.Push(3, -1, 0, [&ran] { ran = true; });
  EXPECT_EQ(next, 11u);
  ASSERT_TRUE(queue.Pop(&event));
  event.action();
  EXPECT_TRUE(ran);
}

// The node and incarnation given to Push come back unchanged with the event, along with its time
// and sequence, so the simulator can skip events of crashed incarnations.
TEST(EventQueueTest, KeepsNodeAndIncarnation) {
  EventQueue queue;
  const uint64_t s1 = queue.Push(30, 2, 7, [] {});
  const uint64_t s2 = queue.Push(10, -1, 0, [] {});
  const uint64_t s3 = queue.Push(20, 1023, 0xffffffffffULL, [] {});
  std::vector<EventQueue::Event> events = Drain(queue);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].time_us, 10);
  EXPECT_EQ(events[0].sequence, s2);
  EXPECT_EQ(events[0].node, -1);
  EXPECT_EQ(events[0].incarnation, 0u);
  EXPECT_EQ(events[1].time_us, 20);
  EXPECT_EQ(events[1].sequence, s3);
  EXPECT_EQ(events[1].node, 1023);
  EXPECT_EQ(events[1].incarnation, 0xffffffffffULL);
  EXPECT_EQ(events[2].time_us, 30);
  EXPECT_EQ(events[2].sequence, s1);
  EXPECT_EQ(events[2].node, 2);
  EXPECT_EQ(events[2].incarnation, 7u);
}

// An action may own move-only state and push further events while the queue is between pops; the
// new event is ordered after existing events of the same time.
TEST(EventQueueTest, ActionsCanPushMoreEvents) {
  EventQueue queue;
  std::vector<std::string> log;
  auto owned = std::make_unique<std::string>("owned");
  queue.Push(1, -1, 0, [&, owned = std::move(owned)] {
    log.push_back(*owned);
    queue.Push(1, -1, 0, [&log] { log.push_back("pushed at 1"); });
  });
  queue.Push(1, -1, 0, [&log] { log.push_back("second at 1"); });
  Drain(queue);
  EXPECT_EQ(log, (std::vector<std::string>{"owned", "second at 1", "pushed at 1"}));
}

// Timers cancelled long before they are due do not pile up: once they may make up half the
// queue they are dropped, so size() stays near the live count, and the live events (pushed and
// cancelled in a random interleaving, some at equal times) still pop in (time, sequence) order.
TEST(EventQueueTest, CancelledEventsAreDroppedAndOrderKept) {
  EventQueue queue;
  Random random(7);
  std::vector<std::pair<int64_t, uint64_t>> live;  // (time, sequence)
  std::vector<std::pair<int64_t, uint64_t>> popped;
  size_t size_max = 0;
  for (int i = 0; i < 20'000; ++i) {
    // A far-away timeout, cancelled at once, as a request's timeout is when its answer comes.
    const uint64_t timeout = queue.Push(1'000'000 + i, -1, 0, [] {});
    queue.Cancel(timeout);
    if (i % 10 == 0) {
      const int64_t time = static_cast<int64_t>(random.Below(500));
      live.emplace_back(time, queue.Push(time, -1, 0, [] {}));
    }
    size_max = std::max(size_max, queue.size());
  }
  EXPECT_LT(size_max, 2 * live.size() + 600);
  EventQueue::Event event;
  while (queue.Pop(&event)) popped.emplace_back(event.time_us, event.sequence);
  std::sort(live.begin(), live.end());
  EXPECT_EQ(popped, live);
}

}  // namespace
}  // namespace runnel::sim
