#pragma once
// A loaded model version ready to take tasks: its config and its scheduler. Handed out as
// shared_ptr (the ModelHandle) so that requests in flight keep it alive while it is being unloaded.
// Thread-safe.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "backend/input_transform.h"
#include "common/clock.h"
#include "repository/model_config.h"
#include "scheduling/scheduler.h"

namespace ferry {

class ServableModel {
 public:
  ServableModel(ModelConfig config, int64_t version, std::unique_ptr<Scheduler> scheduler,
                std::shared_ptr<const InputTransform> transform = nullptr)
      : config_(std::move(config)),
        version_(version),
        scheduler_(std::move(scheduler)),
        transform_(std::move(transform)) {}

  const ModelConfig& config() const { return config_; }
  int64_t version() const { return version_; }
  Scheduler& scheduler() { return *scheduler_; }
  // The pre-processing requests go through before the scheduler; null without a `preprocess` block.
  const InputTransform* transform() const { return transform_.get(); }
  const Scheduler& scheduler() const { return *scheduler_; }
  // Set by the manager before draining: a caller whose Submit was refused retries with a fresh handle.
  void Retire() { retired_.store(true); }
  bool retired() const { return retired_.load(); }
  // When a request last took this version (the manager's idle clock for scale to zero).
  void Touch(SteadyTime now) const { last_used_.store(now.time_since_epoch().count(), std::memory_order_relaxed); }
  SteadyTime last_used() const { return SteadyTime(SteadyTime::duration(last_used_.load(std::memory_order_relaxed))); }

 private:
  const ModelConfig config_;
  const int64_t version_;
  std::unique_ptr<Scheduler> scheduler_;
  std::shared_ptr<const InputTransform> transform_;
  std::atomic<bool> retired_{false};
  mutable std::atomic<SteadyTime::duration::rep> last_used_{0};
};

using ModelHandle = std::shared_ptr<ServableModel>;

// Builds a servable from a config and a version folder (backend instances + scheduler). Runs on loader
// threads and may block for a long time. Thread-safe.
class ServableFactory {
 public:
  virtual ~ServableFactory() = default;
  virtual Result<ModelHandle> Load(const ModelConfig& config, int64_t version,
                                   const std::filesystem::path& version_dir) = 0;
};

}  // namespace ferry
