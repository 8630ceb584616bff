#pragma once
// Reconciles the versions that should be loaded with those that are, loading on its own threads and
// handing out ModelHandles. Rules:
//  - load before unload: a version that is no longer wanted is unloaded only once a wanted version of
//    the same model is Ready (or the model itself is gone), so a broken new version never takes the old
//    one down;
//  - a load that failed is not retried until the version's files or config change (its fingerprint);
//  - a model whose config became invalid keeps serving what it has, and reports the error;
//  - an unloaded version is drained: requests already queued finish, new ones go to the new version.
// Thread-safe.
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "lifecycle/model_harness.h"
#include "lifecycle/servable_model.h"

namespace ferry {

struct WantedVersion {
  int64_t version = 0;
  std::string fingerprint;  // changes when the version's files or the model's config change
};

struct WantedModel {
  std::string name;
  Result<ModelConfig> config = Status(StatusCode::kNotFound, "no config");
  std::filesystem::path path;  // the model's folder; version v lives in path / std::to_string(v)
  std::vector<WantedVersion> versions;
};

struct VersionStatus {
  std::string model;
  int64_t version = 0;
  VersionState state = VersionState::kNew;
  std::string reason;
};

struct ModelManagerOptions {
  size_t loader_threads = 1;
  // Called after every load attempt (for the load-time metric); on a loader thread.
  std::function<void(const std::string& model, int64_t version, double seconds, const Status&)> on_load;
};

class ModelManager {
 public:
  ModelManager(ModelManagerOptions options, ServableFactory* factory);
  ~ModelManager();

  // Poll mode: the whole wanted set. Models missing from it are unloaded.
  void ApplyAll(std::vector<WantedModel> wanted);
  // Explicit mode: (re)load one model / stop serving one model.
  void Apply(WantedModel wanted);
  void Remove(std::string_view name);

  // `version` nullopt: the highest Ready version. NotFound for an unknown model or version,
  // Unavailable when it exists but is not Ready.
  Result<ModelHandle> Get(std::string_view name, std::optional<int64_t> version) const;
  std::vector<VersionStatus> Index() const;
  std::vector<ModelHandle> ReadyHandles() const;
  // Blocks until no load or unload is running (start-up readiness, tests). False on timeout.
  bool WaitUntilIdle(std::chrono::milliseconds timeout) const;
  // Drains every version and stops the loader threads. Idempotent.
  void Shutdown();

 private:
  struct VersionSlot {
    ModelHarness harness;
    ModelHandle serving;
    std::string serving_fingerprint;
    std::string loading_fingerprint;  // non-empty while a load runs
    std::string failed_fingerprint;   // the content whose load failed last
  };
  struct ModelSlot {
    std::optional<WantedModel> wanted;  // nullopt: the model is to be removed
    std::string config_error;
    std::map<int64_t, VersionSlot> versions;
  };

  void ReconcileLocked(const std::string& name);
  void StartLoadLocked(const std::string& name, int64_t version, const ModelConfig& config,
                       const std::filesystem::path& dir, const std::string& fingerprint);
  void StartUnloadLocked(const std::string& name, int64_t version, VersionSlot& slot);
  void FinishLoad(const std::string& name, int64_t version, const std::string& fingerprint,
                  Result<ModelHandle> loaded);
  void FinishUnload(const std::string& name, int64_t version);
  void BeginWorkLocked() { ++work_in_flight_; }
  void EndWorkLocked();

  const ModelManagerOptions options_;
  ServableFactory* const factory_;
  mutable std::mutex mu_;
  mutable std::condition_variable idle_cv_;
  std::map<std::string, ModelSlot, std::less<>> models_;
  size_t work_in_flight_ = 0;
  bool shut_down_ = false;
  ThreadPool loaders_;
};

}  // namespace ferry
