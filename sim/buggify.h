// Fault points in broker code (RUNNEL_BUGGIFY in broker/env/env.h), decided by the simulator.
//
// The first time a run reaches a site, the site is switched on with site_enable_probability and
// stays that way for the whole run; a switched-on site then fires with fire_probability each time it
// is reached. Different seeds therefore exercise different combinations of rare behaviours, while a
// single run is not drowned in them. Decisions draw from the registry's own random stream.
#ifndef RUNNEL_SIM_BUGGIFY_H_
#define RUNNEL_SIM_BUGGIFY_H_

#include <cstdint>
#include <map>
#include <string_view>
#include <utility>

#include "broker/env/env.h"
#include "broker/env/random.h"
#include "sim/sim_context.h"

namespace runnel::sim {

struct BuggifyOptions {
  bool enabled = false;
  double site_enable_probability = 0.25;
  double fire_probability = 0.05;
};

class BuggifyRegistry {
 public:
  BuggifyRegistry(SimContext& context, uint64_t seed, BuggifyOptions options);

  bool Fires(const BuggifySite& site, NodeId node);

  size_t site_count() const { return sites_.size(); }
  size_t enabled_site_count() const;
  uint64_t fire_count() const { return fire_count_; }

 private:
  SimContext& context_;
  BuggifyOptions options_;
  Random random_;
  // Keyed by file name contents and line, never by pointer. __FILE__ strings live for the whole run.
  std::map<std::pair<std::string_view, int>, bool> sites_;
  uint64_t fire_count_ = 0;
};

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_BUGGIFY_H_
