#pragma once
// Per-model-version scheduler for tensor models: bounded queues (online; jobs, which run only when no
// online request waits; bulk batch records, which run only when neither waits) in front of one executor thread per model instance. Each
// executor takes a batch planned by BatchPlanner, concatenates the tasks' inputs along the batch
// dimension, runs the instance once and splits the outputs back per task.
// Thread-safe.
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "scheduling/admission.h"
#include "scheduling/autoscale.h"
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
  // Autoscaling (scale.max > scale.min): instances made by make_instance (on the scaler thread, off
  // the request path) while ScalePolicy says so, and idle ones retired; each change reported to
  // on_scale. The scaler looks every `scale_every` (0: only when ScaleOnce is called, for tests).
  ScaleOptions scale;
  std::function<Result<std::unique_ptr<ModelInstance>>()> make_instance;
  std::function<void(int delta, size_t instances, const std::string& reason)> on_scale;
  Micros scale_every{100'000};
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

  // Instances serving now (not counting one being retired).
  size_t Instances() const;
  // One look of the scaler (dynamic_batcher_scaling.cc): adds or retires at most one instance.
  void ScaleOnce();

 private:
  struct Queued {
    InferenceTask task;
    std::string shape_key;
  };
  struct Executor {
    std::unique_ptr<ModelInstance> instance;
    std::thread thread;
    bool running = false;  // executing a batch
    bool retire = false;   // to stop at its next wait (autoscaling down)
    bool exited = false;
  };
  DynamicBatcher(DynamicBatcherOptions options, std::vector<std::unique_ptr<ModelInstance>> instances);
  void StartExecutorLocked(std::unique_ptr<ModelInstance> instance);
  void ScalerLoop();
  void ExecutorLoop(Executor* self);
  void RunBatch(ModelInstance* instance, std::vector<Queued>& batch);
  // Completes queued tasks whose deadline passed or whose client went away. Caller holds mu_.
  void TakeExpiredLocked(SteadyTime now, std::vector<Queued>* expired);
  // Ok, or why an online task that would wait too long is refused now. Caller holds mu_.
  Status AdmitLocked(const InferenceTask& task, SteadyTime now) const;

  const DynamicBatcherOptions options_;
  const BatchPlanner planner_;
  mutable std::mutex mu_;
  std::list<std::unique_ptr<Executor>> executors_;  // changed by the scaler only, under mu_
  size_t active_ = 0;                               // executors not retiring
  ScalePolicy policy_;
  std::thread scaler_;
  std::condition_variable scaler_cv_;  // the scaler's own: a Submit's notify_one must reach an executor
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
