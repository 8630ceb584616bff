#pragma once
// Per-model-version scheduler for tensor models: bounded queues (online; jobs, which run only when no
// online request waits; bulk batch records, which run only when neither waits) in front of one executor thread per model instance. Each
// executor takes a batch planned by BatchPlanner, concatenates the tasks' inputs along the batch
// dimension, runs the instance once and splits the outputs back per task.
// Thread-safe.
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "scheduling/admission.h"
#include "scheduling/batch_planner.h"
#include "scheduling/scheduler.h"

namespace ferry {

struct DynamicBatcherOptions {
  BatchPlannerOptions planner;
  size_t max_queue_size = 64;     // tasks per queue (online, job, bulk); Submit says Unavailable beyond it
  bool model_has_batch_dim = true;  // false: inputs are passed through untouched, one task per run
  // Online tasks are refused (Unavailable) when their expected wait (scheduling/admission.h) is over
  // this bound (0: no bound) or would end past their deadline.
  Micros max_queue_wait{0};
  const Clock* clock = &Clock::Real();
};

class DynamicBatcher final : public Scheduler {
 public:
  // Takes ownership of the instances; starts one executor thread per instance. Fails on no instances.
  static Result<std::unique_ptr<DynamicBatcher>> Create(DynamicBatcherOptions options,
                                                        std::vector<std::unique_ptr<ModelInstance>> instances);
  ~DynamicBatcher() override;

  Status Submit(InferenceTask&& task) override;
  size_t QueueDepth() const override;
  size_t QueueCapacity() const override { return options_.max_queue_size; }
  void Drain() override;

 private:
  struct Queued {
    InferenceTask task;
    std::string shape_key;
  };
  DynamicBatcher(DynamicBatcherOptions options, std::vector<std::unique_ptr<ModelInstance>> instances);
  void ExecutorLoop(ModelInstance* instance);
  void RunBatch(ModelInstance* instance, std::vector<Queued>& batch);
  // Completes queued tasks whose deadline passed or whose client went away. Caller holds mu_.
  void TakeExpiredLocked(SteadyTime now, std::vector<Queued>* expired);
  // Ok, or why an online task that would wait too long is refused now. Caller holds mu_.
  Status AdmitLocked(const InferenceTask& task, SteadyTime now) const;

  const DynamicBatcherOptions options_;
  const BatchPlanner planner_;
  std::vector<std::unique_ptr<ModelInstance>> instances_;
  std::vector<std::thread> executors_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;       // Priority::kOnline
  std::deque<Queued> background_;  // Priority::kJob: runs only while queue_ is empty
  std::deque<Queued> bulk_;        // Priority::kBulk: runs only while both others are empty
  bool draining_ = false;
  size_t busy_ = 0;           // executors running a batch
  ServiceTime service_time_;  // of one execution, for admission by expected wait
};

// Concatenates tensors along dim 0 (same dtype, same trailing dims). Exposed for tests.
Result<Tensor> ConcatenateRows(const std::vector<const Tensor*>& parts);
// Splits a tensor along dim 0 into pieces with the given row counts (which must sum to dim 0).
Result<std::vector<Tensor>> SplitRows(const Tensor& whole, const std::vector<int64_t>& rows);

}  // namespace ferry
