#pragma once
// Reconciles the versions that should be loaded with those that are, loading on its own threads and
// handing out ModelHandles. Rules:
//  - load before unload: a version that is no longer wanted is unloaded only once a wanted version of
//    the same model is Ready (or the model itself is gone), so a broken new version never takes the old
//    one down;
//  - a load that failed is not retried until the version's files or config change (its fingerprint);
//  - a model whose config became invalid keeps serving what it has, and reports the error;
//  - an unloaded version is drained: requests already queued finish, new ones go to the new version;
//  - scale to zero: a Ready version left unused for its model's `idle_unload_s` (or the server's default)
//    with nothing in flight is drained and put to sleep (Asleep). Get() on a sleeping version starts its
//    load and answers Unavailable; Acquire() waits for it, bounded by the request's deadline and the
//    model's `cold_start_timeout_s`. Index, ReadyHandles, ConfigOf and Servable never wake a model;
//  - memory budget: each load's resident-memory growth is the version's size (the largest seen). With a
//    budget, a load or wake that goes over it first puts the least recently used idle versions to sleep
//    (before a wake, whose size is known; after a first load, once it is measured); a version larger
//    than the whole budget is refused (Error, with both sizes as the reason). Versions busy with
//    requests are never evicted: the budget may be exceeded until they are idle (Tick tries again).
// Thread-safe.
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
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
  bool asleep = false;  // Ready for requests but unloaded while idle; the next request loads it
  int64_t memory_bytes = 0;  // resident now (measured at load); 0 when asleep or not loaded
};

// A handle and what it cost to get: the load a sleeping version needed first (0 when it was Ready).
struct AcquiredModel {
  ModelHandle handle;
  double cold_start_ms = 0;
};
using AcquireDone = std::function<void(Result<AcquiredModel>)>;

struct ModelManagerOptions {
  size_t loader_threads = 1;
  // Called after every load attempt (for the load-time metric); on a loader thread.
  std::function<void(const std::string& model, int64_t version, double seconds, const Status&)> on_load;
  // Called once per wake of a sleeping version (the cold-start metric and log); on a loader thread.
  std::function<void(const std::string& model, int64_t version, double seconds, const Status&)> on_cold_start;
  // Server defaults for models whose config does not set them; idle 0 = never unload.
  std::chrono::milliseconds default_idle_unload{0};
  std::chrono::milliseconds default_cold_start_timeout{60000};
  const Clock* clock = &Clock::Real();
  // How often a thread of the manager runs Tick(); 0: no thread (tests call Tick themselves).
  std::chrono::milliseconds housekeeping_period{100};
  // The models' resident memory may not exceed this (bytes; 0: no budget).
  int64_t memory_budget_bytes = 0;
  // The process's resident bytes, read before and after each load (default: /proc/self/statm).
  std::function<int64_t()> resident_bytes;
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
  // A sleeping version is woken (its load starts) and answers Unavailable until Ready.
  Result<ModelHandle> Get(std::string_view name, std::optional<int64_t> version);
  // Like Get, but waits for a sleeping (or waking) version: `done` runs on the caller's thread when the
  // version is Ready now, else on a loader thread once it is, or with Unavailable when `deadline` or
  // the model's cold-start timeout passes first (checked by Tick).
  void Acquire(std::string_view name, std::optional<int64_t> version, std::optional<SteadyTime> deadline,
               AcquireDone done);
  // Acquire for callers on worker threads: blocks until `done` would run.
  Result<AcquiredModel> AcquireBlocking(std::string_view name, std::optional<int64_t> version,
                                        std::optional<SteadyTime> deadline);
  // Ok when a request could be served: the version is Ready, or asleep or waking. Never wakes it.
  Status Servable(std::string_view name, std::optional<int64_t> version) const;
  // The config of the version a request would get (Ready, asleep or waking). Never wakes it.
  Result<ModelConfig> ConfigOf(std::string_view name, std::optional<int64_t> version) const;
  std::vector<VersionStatus> Index() const;
  std::vector<ModelHandle> ReadyHandles() const;
  // Blocks until no load or unload is running (start-up readiness, tests). False on timeout.
  bool WaitUntilIdle(std::chrono::milliseconds timeout) const;
  // Puts idle versions to sleep and fails waiters whose deadline passed, at the clock's now. Run by the
  // housekeeping thread; tests with a FakeClock call it directly.
  void Tick();
  // Drains every version and stops the loader threads. Idempotent.
  void Shutdown();

 private:
  struct Waiter {
    SteadyTime deadline;
    AcquireDone done;
  };
  // What a sleeping version is loaded from when woken while its model's config is unreadable.
  struct SleepingFrom {
    ModelConfig config;
    std::filesystem::path dir;
    std::string fingerprint;
  };
  struct VersionSlot {
    ModelHarness harness;
    ModelHandle serving;
    std::string serving_fingerprint;
    std::string loading_fingerprint;  // non-empty while a load runs
    std::string failed_fingerprint;   // the content whose load failed last
    std::optional<SleepingFrom> slept;  // set while going to sleep, asleep or waking
    bool waking = false;                // the running load is a wake (its time is a cold start)
    SteadyTime wake_started{};
    std::vector<Waiter> waiters;        // requests waiting for this version to wake
    int64_t memory_bytes = 0;           // the largest resident growth a load of this content caused
    std::string measured_fingerprint;   // the content memory_bytes was measured on
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
                  Result<ModelHandle> loaded, int64_t measured_bytes);
  void FinishUnload(const std::string& name, int64_t version);
  // Sleep and wake (model_manager_sleep.cc).
  std::chrono::milliseconds IdleUnloadOf(const ModelConfig& config) const;
  std::chrono::milliseconds ColdStartTimeoutOf(const ModelConfig& config) const;
  void StartSleepLocked(const std::string& name, int64_t version, VersionSlot& slot, std::string_view why);
  void WakeLocked(const std::string& name, int64_t version, VersionSlot& slot);
  Result<ModelHandle> GetLocked(std::string_view name, std::optional<int64_t> version);
  // The version Acquire waits for when none is Ready: the highest asleep or waking one.
  static VersionSlot* SleeperLocked(ModelSlot& model, std::optional<int64_t> version);
  // Unavailable naming the wake; starts the load of an Asleep version.
  Status WakingLocked(const std::string& name, int64_t version, VersionSlot& slot);
  // What a finished wake owes: the cold-start callback and the waiters, run once the lock is released.
  struct WakeOutcome {
    bool woke = false;
    double seconds = 0;
    Status status;
    Result<AcquiredModel> result = Status(StatusCode::kInternal, "no wake");
    std::vector<Waiter> waiters;
    void Deliver(const decltype(ModelManagerOptions::on_cold_start)& on_cold_start, const std::string& name,
                 int64_t version);
  };
  WakeOutcome FinishWakeLocked(const std::string& name, int64_t version, VersionSlot& slot,
                               const Result<ModelHandle>& loaded);
  // Answers the waiters with `status` on a loader thread (never under the lock).
  void FailWaitersLocked(VersionSlot& slot, const Status& status);
  static std::vector<Waiter> TakeWaiters(VersionSlot& slot) { return std::exchange(slot.waiters, {}); }
  void HousekeepingLoop();
  // Memory budget (model_manager_memory.cc).
  int64_t ResidentBytes() const;
  int64_t ResidentModelsLocked() const;
  // Puts least recently used idle versions to sleep until `extra` more bytes fit the budget; never the
  // version `keep`. False when what is left is busy and it still does not fit.
  bool MakeRoomLocked(int64_t extra, const std::string& keep_name, int64_t keep_version);
  std::string TooLargeReason(int64_t bytes) const;
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
  std::vector<std::pair<AcquireDone, Status>> late_failures_;  // the loader queue refused them
  std::condition_variable housekeeping_cv_;
  std::thread housekeeper_;
};

}  // namespace ferry
