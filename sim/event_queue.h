// The simulator's one event queue, ordered by (virtual time, insertion sequence number) and by
// nothing else: two events at the same time run in the order they were scheduled.
#ifndef RUNNEL_SIM_EVENT_QUEUE_H_
#define RUNNEL_SIM_EVENT_QUEUE_H_

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"

namespace runnel::sim {

class EventQueue {
 public:
  // The most events that may be pending at once; past this the simulation has run away.
  static constexpr size_t kPendingEventsMax = size_t{1} << 26;

  struct Event {
    int64_t time_us;
    uint64_t sequence;
    // The node incarnation the event belongs to (node -1: the simulator itself). The simulator
    // skips events of incarnations that have crashed.
    int32_t node;
    uint64_t incarnation;
    absl::AnyInvocable<void()> action;
  };

  // Schedules `action` at `time_us`; returns the event's sequence number, unique per queue.
  uint64_t Push(int64_t time_us, int32_t node, uint64_t incarnation,
                absl::AnyInvocable<void()> action) {
    assert(heap_.size() < kPendingEventsMax);
    const uint64_t sequence = next_sequence_++;
    heap_.push_back(Event{time_us, sequence, node, incarnation, std::move(action)});
    std::push_heap(heap_.begin(), heap_.end(), Later);
    return sequence;
  }

  // Marks a pending event so that it is skipped. The caller must know it is still pending.
  void Cancel(uint64_t sequence) { cancelled_.insert(sequence); }

  // Removes the earliest live (not cancelled) event into `event` if it is due at or before
  // `time_us_max`; false when there is none that early. Cancelled events met on the way are dropped.
  bool PopDue(int64_t time_us_max, Event* event) {
    while (!heap_.empty()) {
      if (!cancelled_.empty() && cancelled_.erase(heap_.front().sequence) > 0) {
        std::pop_heap(heap_.begin(), heap_.end(), Later);
        heap_.pop_back();
        continue;
      }
      if (heap_.front().time_us > time_us_max) return false;
      std::pop_heap(heap_.begin(), heap_.end(), Later);
      *event = std::move(heap_.back());
      heap_.pop_back();
      return true;
    }
    return false;
  }
  bool Pop(Event* event) { return PopDue(std::numeric_limits<int64_t>::max(), event); }

  // The time of the earliest pending event (cancelled ones included); only when !empty().
  int64_t PeekTimeUs() const { return heap_.front().time_us; }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }

 private:
  // std::*_heap keeps the greatest element first, so "greater" here means "runs later".
  static bool Later(const Event& a, const Event& b) {
    if (a.time_us != b.time_us) return a.time_us > b.time_us;
    return a.sequence > b.sequence;
  }

  std::vector<Event> heap_;
  uint64_t next_sequence_ = 1;
  // Looked up by sequence only, never iterated: its order cannot reach anything.
  absl::flat_hash_set<uint64_t> cancelled_;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_EVENT_QUEUE_H_
