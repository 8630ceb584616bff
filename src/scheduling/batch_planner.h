#pragma once
// Decides, from the head of a model's queue and the time, whether to run a batch now and how many
// tasks it takes, or how long to wait. Pure and clock-free so it is tested with a fake clock.
// Thread-compatible value type.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace ferry {

struct BatchPlannerOptions {
  int64_t max_batch_size = 1;   // rows; 1 (or 0 from a config) disables concatenation
  bool batching_enabled = false;
  Micros max_queue_delay{0};
  std::vector<int64_t> preferred_batch_sizes;  // ascending, each within 1..max_batch_size
};

// What the planner needs to know of a queued task.
struct PendingTask {
  int64_t rows = 1;
  SteadyTime enqueue_time{};
  // Tasks batch together only with equal shape keys (the non-batch dims of all inputs).
  const std::string* shape_key = nullptr;
};

struct BatchDecision {
  size_t task_count = 0;               // > 0: run the first task_count tasks now
  std::optional<SteadyTime> wait_until;  // task_count == 0: wake up then (nullopt: wait for a task)
};

class BatchPlanner {
 public:
  explicit BatchPlanner(BatchPlannerOptions options);
  BatchDecision Decide(const std::vector<PendingTask>& queue_head, SteadyTime now) const;
  const BatchPlannerOptions& options() const { return options_; }

 private:
  BatchPlannerOptions options_;
};

}  // namespace ferry
