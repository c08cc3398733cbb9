#include "sim/buggify.h"

#include "absl/strings/str_cat.h"

namespace runnel::sim {

BuggifyRegistry::BuggifyRegistry(SimContext& context, uint64_t seed, BuggifyOptions options)
    : context_(context), options_(options), random_(seed) {}

bool BuggifyRegistry::Fires(const BuggifySite& site, NodeId node) {
  if (!options_.enabled) return false;
  const auto key = std::make_pair(std::string_view(site.file), site.line);
  auto it = sites_.find(key);
  if (it == sites_.end()) {
    const bool enabled = random_.Chance(options_.site_enable_probability);
    it = sites_.emplace(key, enabled).first;
    if (enabled) {
      const std::string where = absl::StrCat(site.file, ":", site.line);
      TraceEntry entry;
      entry.time_us = context_.NowUs();
      entry.node = node;
      entry.kind = BUGGIFY_ENABLED;
      entry.subject = where;
      context_.trace().Record(entry);
    }
  }
  if (!it->second) return false;
  const bool fires = random_.Chance(options_.fire_probability);
  fire_count_ += fires ? 1 : 0;
  return fires;
}

size_t BuggifyRegistry::enabled_site_count() const {
  size_t count = 0;
  for (const auto& [site, enabled] : sites_) count += enabled ? 1 : 0;
  return count;
}

}  // namespace runnel::sim
