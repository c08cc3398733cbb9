// Env: everything one node may use from the world. Broker code receives an Env& and reaches time,
// randomness, the network and the disk only through it. There are two implementations: the real
// one (broker/env/posix/, an epoll loop over sockets and files) and the simulator's (sim/), which
// replays everything from a seed.
//
// Contract shared by all parts:
// - All callbacks of one node run on one event loop, one at a time, each to completion. Broker
//   code never blocks, sleeps, spawns threads or calls the operating system.
// - When a node crashes, its objects are destroyed without any callback; no timer, network or disk
//   callback registered by the dead incarnation ever runs. The node is rebuilt from its disk alone.
// - The Env outlives every object of the node that uses it.
#ifndef RUNNEL_BROKER_ENV_ENV_H_
#define RUNNEL_BROKER_ENV_ENV_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "broker/env/clock.h"
#include "broker/env/disk.h"
#include "broker/env/network.h"
#include "broker/env/random.h"

namespace runnel {

using NodeId = int32_t;

// A fault-injection site in broker code, named by its source location.
struct BuggifySite {
  const char* file;
  int line;
};

// Something that happened in the broker's logic that a reader of the trace cares about, for example
// kind "leader", subject "orders-0", value 5: "this node leads orders-0 at epoch 5".
struct SemanticEvent {
  absl::string_view kind;
  absl::string_view subject;
  int64_t value = 0;
  absl::string_view detail;
};

enum class LogLevel { kDebug, kInfo, kWarning, kError };

class Env {
 public:
  virtual ~Env() = default;

  virtual NodeId node_id() const = 0;
  virtual Clock& clock() = 0;
  virtual Network& network() = 0;
  virtual Disk& disk() = 0;
  virtual Random& random() = 0;

  // Whether the fault point at `site` fires now. Always false in the real build; in the simulator
  // each site is switched on once per run with some probability and then fires with some
  // probability each time it is reached. Use through RUNNEL_BUGGIFY.
  virtual bool BuggifyFires(const BuggifySite& site) = 0;

  // Records a semantic event: into the trace in the simulator, to the log in the real build.
  virtual void RecordEvent(const SemanticEvent& event) = 0;

  // A human-readable log line. The simulator keeps these out of the trace digest.
  virtual void Log(LogLevel level, absl::string_view message) = 0;
};

}  // namespace runnel

// RUNNEL_BUGGIFY(env): true when the simulator decides to inject a rare behaviour here. Code under it
// must still be correct behaviour, only unusual (a short read, an early timeout, a split frame).
#if defined(RUNNEL_BUGGIFY_COMPILED_OUT)
#define RUNNEL_BUGGIFY(env) (static_cast<void>(env), false)
#else
#define RUNNEL_BUGGIFY(env) ((env).BuggifyFires(::runnel::BuggifySite{__FILE__, __LINE__}))
#endif

#endif  // RUNNEL_BROKER_ENV_ENV_H_
