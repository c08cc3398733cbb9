// The simulator's one event queue, ordered by (virtual time, rank) and by nothing else. An event's
// rank is its insertion sequence number, so two events at the same time run in the order they were
// scheduled; the one exception is Requeue, which puts events a stalled node held back in front of
// everything else due at the same time, keeping their sequence numbers (and so their
// cancellability).
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
    // The tie-breaker among events of equal time: the sequence number, or below every sequence
    // number for requeued events.
    int64_t rank = 0;
  };

  // Schedules `action` at `time_us`; returns the event's sequence number, unique per queue.
  uint64_t Push(int64_t time_us, int32_t node, uint64_t incarnation,
                absl::AnyInvocable<void()> action) {
    const uint64_t sequence = next_sequence_++;
    Insert(Event{time_us, sequence, node, incarnation, std::move(action),
                 static_cast<int64_t>(sequence)});
    return sequence;
  }

  // Puts events popped earlier back, all due at `time_us` (not before any event already run), in
  // front of every other event due then, in the order given. Each keeps its sequence number, so a
  // Cancel made before or after still applies. Requeued batches pushed at the same time run the
  // later batch first; each batch keeps its own order.
  void Requeue(int64_t time_us, std::vector<Event> events) {
    // Ranks below zero never collide with a sequence number (those start at 1).
    const int64_t count = static_cast<int64_t>(events.size());
    next_requeue_rank_ -= count;
    int64_t rank = next_requeue_rank_;
    for (Event& event : events) {
      assert(event.time_us <= time_us);
      event.time_us = time_us;
      event.rank = rank++;
      Insert(std::move(event));
    }
  }

  // Marks a pending event so that it is skipped. The caller must know it is still pending.
  void Cancel(uint64_t sequence) {
    cancelled_.insert(sequence);
    // A cancelled event stays in the heap until it reaches the front, and most timers are cancelled
    // long before they are due (a request's timeout, when its answer comes), so they would pile up
    // and deepen every sift. When they may make up half the heap, they are all dropped at once:
    // amortized O(1) per Cancel, since a drop needs as many Cancels after the last one as half the
    // heap. (Cancelled events a stalled node holds are not in the heap, and stay cancelled.)
    ++cancelled_since_drop_;
    if (cancelled_since_drop_ >= kDropCancelledMin && cancelled_since_drop_ * 2 >= heap_.size()) {
      DropCancelled();
    }
  }

  // Removes the earliest live (not cancelled) event into `event` if it is due at or before
  // `time_us_max`; false when there is none that early. Cancelled events met on the way are dropped.
  bool PopDue(int64_t time_us_max, Event* event) {
    while (!heap_.empty()) {
      const Entry front = heap_.front();
      Event& stored = slab_[front.slot];
      if (!cancelled_.empty() && cancelled_.erase(stored.sequence) > 0) {
        RemoveFront();
        continue;
      }
      if (front.time_us > time_us_max) return false;
      *event = std::move(stored);
      RemoveFront();
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
  // The heap holds only what orders events and where each one's body is in slab_, so that
  // sifting moves 24 plain bytes rather than an Event and its callable.
  struct Entry {
    int64_t time_us;
    int64_t rank;
    uint32_t slot;
  };
  // std::*_heap keeps the greatest element first, so "greater" here means "runs later". (time,
  // rank) is unique per pending event, so the slot never decides the order.
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.time_us != b.time_us) return a.time_us > b.time_us;
      return a.rank > b.rank;
    }
  };

  void Insert(Event event) {
    assert(heap_.size() < kPendingEventsMax);
    uint32_t slot;
    if (free_slots_.empty()) {
      slot = static_cast<uint32_t>(slab_.size());
      slab_.push_back(std::move(event));
    } else {
      slot = free_slots_.back();
      free_slots_.pop_back();
      slab_[slot] = std::move(event);
    }
    heap_.push_back(Entry{slab_[slot].time_us, slab_[slot].rank, slot});
    std::push_heap(heap_.begin(), heap_.end(), Later{});
  }

  // Removes every cancelled event from the heap and rebuilds it. The order of what remains is
  // unchanged: (time, rank) alone decides it.
  void DropCancelled() {
    size_t kept = 0;
    for (const Entry& entry : heap_) {
      Event& stored = slab_[entry.slot];
      if (cancelled_.erase(stored.sequence) > 0) {
        stored.action = nullptr;
        free_slots_.push_back(entry.slot);
        continue;
      }
      heap_[kept++] = entry;
    }
    heap_.resize(kept);
    std::make_heap(heap_.begin(), heap_.end(), Later{});
    cancelled_since_drop_ = 0;
  }

  // Drops the heap's first entry and frees its slot (whose event was moved out or is cancelled).
  void RemoveFront() {
    const uint32_t slot = heap_.front().slot;
    slab_[slot].action = nullptr;
    free_slots_.push_back(slot);
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    heap_.pop_back();
  }

  std::vector<Entry> heap_;
  // Bodies of pending events, by slot; freed slots are reused (free_slots_) so that the slab
  // stays as large as the most events ever pending at once.
  std::vector<Event> slab_;
  std::vector<uint32_t> free_slots_;
  uint64_t next_sequence_ = 1;
  // Ranks handed to requeued events count down from -1.
  int64_t next_requeue_rank_ = 0;
  // Looked up by sequence only, never iterated: its order cannot reach anything.
  absl::flat_hash_set<uint64_t> cancelled_;
  // Cancelled events are dropped from the heap in one pass once at least this many wait there.
  static constexpr size_t kDropCancelledMin = 256;
  // Cancels since the last DropCancelled.
  size_t cancelled_since_drop_ = 0;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_EVENT_QUEUE_H_
