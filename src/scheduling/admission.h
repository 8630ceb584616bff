#pragma once
// Admission by expected wait, not only by queue length: how long a new task would wait before its
// batch starts, from the work queued ahead of it and the recent time of one execution. Pure, so it is
// tested without a clock. Thread-compatible.
#include <cstddef>

#include "common/clock.h"

namespace ferry {

struct WaitEstimateInput {
  size_t tasks_ahead = 0;      // queued tasks that run before the new one
  size_t tasks_per_batch = 1;  // how many tasks one execution takes (the batch size with batching, else 1)
  size_t instances = 1;        // executors running in parallel
  size_t busy_instances = 0;   // executing now: each counts as half an execution still to go
  Micros service{0};           // recent time of one execution; 0: not known yet
};

// Zero when nothing is known yet or a free instance takes the task at once.
Micros ExpectedWait(const WaitEstimateInput& in);

// Exponentially weighted moving average of execution times, 1/8 weight on the newest (a few batches
// of memory, as TCP's smoothed RTT). Thread-compatible.
class ServiceTime {
 public:
  void Add(Micros sample);
  Micros value() const { return Micros(static_cast<int64_t>(ewma_us_)); }

 private:
  double ewma_us_ = 0;
};

}  // namespace ferry
