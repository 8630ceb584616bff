#pragma once
// When a model's instances should grow or shrink: a pure policy over what the DynamicBatcher sees,
// under whatever clock the caller reads, so it is tested without time passing. Thread-compatible.
//
//   up:   every instance busy and at least one task queued per instance, without a break, for
//         `up_after`; below `max`; `cooldown` since the last change.
//   down: some instance idle and nothing queued, without a break, for `idle_after`; above `min`;
//         `cooldown` since the last change.
#include <cstddef>
#include <optional>
#include <string>

#include "common/clock.h"

namespace ferry {

struct ScaleOptions {
  size_t min = 1;
  size_t max = 1;  // <= min: no scaling
  Micros up_after{1'000'000};
  Micros idle_after{30'000'000};
  Micros cooldown{5'000'000};
};

struct ScaleObservation {
  size_t instances = 0;
  size_t busy = 0;    // executing now
  size_t queued = 0;  // tasks waiting, of every class (online, job, bulk)
};

struct ScaleDecision {
  int delta = 0;       // +1, -1 or 0
  std::string reason;  // for the log, with a change
};

class ScalePolicy {
 public:
  explicit ScalePolicy(ScaleOptions options) : options_(options) {}
  ScaleDecision Decide(const ScaleObservation& seen, SteadyTime now);
  // A change was made (or failed) now: the cooldown starts again, and so do the streaks.
  void Changed(SteadyTime now);

 private:
  ScaleOptions options_;
  std::optional<SteadyTime> deep_since_;
  std::optional<SteadyTime> idle_since_;
  std::optional<SteadyTime> last_change_;
};

}  // namespace ferry
