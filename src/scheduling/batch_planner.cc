#include "scheduling/batch_planner.h"

#include <algorithm>

namespace ferry {

BatchPlanner::BatchPlanner(BatchPlannerOptions options) : options_(std::move(options)) {
  options_.max_batch_size = std::max<int64_t>(1, options_.max_batch_size);
  std::sort(options_.preferred_batch_sizes.begin(), options_.preferred_batch_sizes.end());
}

BatchDecision BatchPlanner::Decide(const std::vector<PendingTask>& queue, SteadyTime now) const {
  BatchDecision decision;
  if (queue.empty()) return decision;
  if (!options_.batching_enabled || options_.max_batch_size <= 1) {
    decision.task_count = 1;
    return decision;
  }

  // Longest prefix that fits in max_batch_size rows and shares the first task's shapes. A first task
  // larger than the limit still runs alone (the service rejects those before they get here).
  size_t fit = 0;
  int64_t rows = 0;
  size_t largest_preferred_prefix = 0;
  bool blocked = false;  // the next task cannot join this batch
  for (const PendingTask& task : queue) {
    bool same_shape = queue.front().shape_key == task.shape_key ||
                      (queue.front().shape_key && task.shape_key && *queue.front().shape_key == *task.shape_key);
    if (fit > 0 && (!same_shape || rows + task.rows > options_.max_batch_size)) {
      blocked = true;
      break;
    }
    rows += task.rows;
    ++fit;
    if (std::binary_search(options_.preferred_batch_sizes.begin(), options_.preferred_batch_sizes.end(), rows)) {
      largest_preferred_prefix = fit;
    }
  }

  const SteadyTime oldest_deadline = queue.front().enqueue_time + options_.max_queue_delay;
  if (blocked || rows >= options_.max_batch_size || options_.max_queue_delay.count() == 0 ||
      now >= oldest_deadline) {
    decision.task_count = fit;
    return decision;
  }
  // A preferred size reached at the largest preferred size available runs at once: waiting longer could
  // only grow the batch past the size the operator said runs best.
  if (!options_.preferred_batch_sizes.empty() && rows >= options_.preferred_batch_sizes.back()) {
    decision.task_count = largest_preferred_prefix > 0 ? largest_preferred_prefix : fit;
    return decision;
  }
  decision.wait_until = oldest_deadline;
  return decision;
}

}  // namespace ferry
