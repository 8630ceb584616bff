#include "scheduling/autoscale.h"

#include <fmt/format.h>

namespace ferry {
namespace {

double Ms(Micros d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace

ScaleDecision ScalePolicy::Decide(const ScaleObservation& seen, SteadyTime now) {
  const bool deep = seen.instances > 0 && seen.busy >= seen.instances && seen.queued >= seen.instances;
  const bool idle = seen.busy < seen.instances && seen.queued == 0;
  if (!deep) deep_since_.reset();
  if (!idle) idle_since_.reset();
  if (deep && !deep_since_) deep_since_ = now;
  if (idle && !idle_since_) idle_since_ = now;
  if (options_.max <= options_.min) return {};
  if (last_change_ && now - *last_change_ < options_.cooldown) return {};
  if (deep && seen.instances < options_.max && now - *deep_since_ >= options_.up_after) {
    return {+1, fmt::format("{} queued with all {} instances busy for {:.0f} ms", seen.queued, seen.instances,
                            Ms(std::chrono::duration_cast<Micros>(now - *deep_since_)))};
  }
  if (idle && seen.instances > options_.min && now - *idle_since_ >= options_.idle_after) {
    return {-1, fmt::format("{} of {} instances idle and nothing queued for {:.0f} ms", seen.instances - seen.busy,
                            seen.instances, Ms(std::chrono::duration_cast<Micros>(now - *idle_since_)))};
  }
  return {};
}

void ScalePolicy::Changed(SteadyTime now) {
  last_change_ = now;
  deep_since_.reset();
  idle_since_.reset();
}

}  // namespace ferry
