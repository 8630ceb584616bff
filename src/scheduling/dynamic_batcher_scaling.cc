// Autoscaling of a DynamicBatcher's instances (see ScalePolicy): the scaler thread's looks, adding an
// instance made off the request path and retiring an idle one.
#include <spdlog/spdlog.h>

#include "scheduling/dynamic_batcher.h"

namespace ferry {

size_t DynamicBatcher::Instances() const {
  std::lock_guard lock(mu_);
  return active_;
}

void DynamicBatcher::ScalerLoop() {
  std::unique_lock lock(mu_);
  while (!draining_) {
    scaler_cv_.wait_for(lock, options_.scale_every, [&] { return draining_; });
    if (draining_) break;
    lock.unlock();
    ScaleOnce();
    lock.lock();
  }
}

void DynamicBatcher::ScaleOnce() {
  if (options_.scale.max <= options_.scale.min || !options_.make_instance) return;
  std::vector<std::unique_ptr<Executor>> finished;
  ScaleDecision decision;
  size_t instances = 0;
  {
    std::lock_guard lock(mu_);
    if (draining_) return;
    // Executors retired earlier that have stopped: joined and their instances freed below.
    for (auto it = executors_.begin(); it != executors_.end();) {
      if ((*it)->exited) {
        finished.push_back(std::move(*it));
        it = executors_.erase(it);
      } else {
        ++it;
      }
    }
    const SteadyTime now = options_.clock->Now();
    // Every class counts: a batch over a dataset keeps a model as busy as online traffic does.
    decision = policy_.Decide({active_, busy_, queue_.size() + background_.size() + bulk_.size()}, now);
    if (decision.delta < 0) {
      for (auto& e : executors_) {
        if (!e->retire && !e->running) {
          e->retire = true;
          --active_;
          break;
        }
      }
      policy_.Changed(now);
    }
    instances = active_;
  }
  for (auto& e : finished) e->thread.join();
  finished.clear();
  if (decision.delta < 0) cv_.notify_all();  // the retired one wakes and stops
  if (decision.delta > 0) {
    Result<std::unique_ptr<ModelInstance>> made = options_.make_instance();
    std::lock_guard lock(mu_);
    policy_.Changed(options_.clock->Now());
    if (!made.ok()) {
      spdlog::error("autoscaling: a new instance could not be made: {}", made.status().message());
      return;
    }
    if (draining_) return;
    StartExecutorLocked(std::move(made).value());
    instances = active_;
  }
  if (decision.delta != 0 && options_.on_scale) options_.on_scale(decision.delta, instances, decision.reason);
}

}  // namespace ferry
