// Node name patterns, as scenario files (sim/scenario.proto) and runnel-viz's --nodes use them:
// '*' matches any run of characters (possibly empty); every other character matches itself.
#ifndef RUNNEL_SIM_NODE_PATTERN_H_
#define RUNNEL_SIM_NODE_PATTERN_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace runnel::sim {

// Whether `name` matches `pattern` as a whole. Linear in practice: on a mismatch it resumes after
// the last '*' seen, which is enough for patterns with '*' as the only wildcard.
inline bool NodePatternMatches(absl::string_view pattern, absl::string_view name) {
  size_t p = 0;
  size_t n = 0;
  size_t star = absl::string_view::npos;
  size_t resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace runnel::sim

#endif  // RUNNEL_SIM_NODE_PATTERN_H_
