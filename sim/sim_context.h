// What the simulator offers the parts of the simulated world (disks, networks, clocks): virtual
// time, scheduling tied to a node's incarnation, the fault-decision random stream and the trace.
// The Simulator implements it; tests may implement it on their own to drive one part in isolation.
#ifndef RUNNEL_SIM_SIM_CONTEXT_H_
#define RUNNEL_SIM_SIM_CONTEXT_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "broker/env/env.h"
#include "broker/env/random.h"
#include "sim/trace.h"

namespace runnel::sim {

class SimContext {
 public:
  virtual ~SimContext() = default;

  // Virtual time in microseconds since the start of the run.
  virtual int64_t NowUs() const = 0;

  // Runs `action` after `delay_us`, unconditionally (simulator-level work such as fault schedules).
  // Returns the event's sequence number.
  virtual uint64_t Schedule(int64_t delay_us, absl::AnyInvocable<void()> action) = 0;

  // Runs `action` after `delay_us` only if `node` is then still up in incarnation `incarnation`:
  // callbacks belonging to a crashed incarnation never run. Returns the event's sequence number.
  virtual uint64_t ScheduleForNode(NodeId node, uint64_t incarnation, int64_t delay_us,
                                   absl::AnyInvocable<void()> action) = 0;

  // Skips a pending event scheduled by either method.
  virtual void CancelEvent(uint64_t sequence) = 0;

  // Whether `node` is stalled (Simulator::StallNode): its ScheduleForNode events are held until it
  // resumes. Parts that run a node's callbacks from a simulator-level event check this first and
  // move the work into an event of the node's own.
  virtual bool IsNodeStalled(NodeId /*node*/) const { return false; }

  // The stream the simulator's own fault decisions draw from (not the nodes' streams, so that
  // broker code consuming randomness does not shift the fault schedule, and vice versa).
  virtual Random& FaultRandom() = 0;

  virtual Trace& trace() = 0;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_SIM_CONTEXT_H_
