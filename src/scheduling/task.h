#pragma once
// A unit of inference work and where its result goes. Move-only value.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/cancel_token.h"
#include "common/clock.h"
#include "common/result.h"
#include "tensor/tensor.h"

namespace ferry {

struct TaskTimings {
  int64_t queue_us = 0;    // submit -> batch start
  int64_t compute_us = 0;  // Execute() of the batch this task ran in
  int64_t batch_size = 0;  // rows in that batch
  int64_t charged_us = 0;  // this task's share of compute_us, by its rows: a batch's shares sum to it
};

// The unary response sink: called exactly once, on an executor thread, with the task's own outputs
// (already split out of the batch) or the reason it did not run.
using UnaryCompletion = std::function<void(Result<std::vector<Tensor>>, const TaskTimings&)>;

enum class Priority { kOnline = 0, kJob = 1, kBulk = 2 };

struct InferenceTask {
  std::vector<Tensor> inputs;           // config order, already validated
  int64_t batch_size = 1;               // rows along the batch dimension (1 for unbatched models)
  Priority priority = Priority::kOnline;
  SteadyTime enqueue_time{};            // set by the scheduler on Submit
  std::optional<SteadyTime> deadline;   // still queued past it -> DeadlineExceeded
  std::shared_ptr<CancelToken> cancel;  // may be null
  UnaryCompletion on_complete;
};

}  // namespace ferry
