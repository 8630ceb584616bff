#pragma once
// Schedulers take tasks without blocking: Submit moves the task in only when it returns OK; when the
// queue is full it returns Unavailable and the caller still owns the task.
#include "common/status.h"
#include "scheduling/task.h"

namespace ferry {

class GenerationScheduler;

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Thread-safe. On OK the task was moved from; otherwise `task` is untouched.
  virtual Status Submit(InferenceTask&& task) = 0;
  virtual size_t QueueDepth() const = 0;
  virtual size_t QueueCapacity() const = 0;
  // Work taken and not yet answered that holds no ModelHandle (a language model's running sequences);
  // a version with any is not idle.
  virtual size_t InFlight() const { return QueueDepth(); }
  // Stops taking tasks, finishes those already queued, joins executor threads. Idempotent.
  virtual void Drain() = 0;
  // The text-generation side of a language model's scheduler; null for tensor models.
  virtual GenerationScheduler* generator() { return nullptr; }
};

}  // namespace ferry
