#include "lifecycle/model_manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <set>

namespace ferry {
namespace {
constexpr size_t kMaxQueuedLoaderJobs = 4096;
}

ModelManager::ModelManager(ModelManagerOptions options, ServableFactory* factory)
    : options_(std::move(options)), factory_(factory), loaders_(std::max<size_t>(1, options_.loader_threads),
                                                                kMaxQueuedLoaderJobs) {
  if (options_.housekeeping_period.count() > 0) housekeeper_ = std::thread([this] { HousekeepingLoop(); });
}

ModelManager::~ModelManager() { Shutdown(); }

void ModelManager::ApplyAll(std::vector<WantedModel> wanted) {
  std::lock_guard lock(mu_);
  if (shut_down_) return;
  std::set<std::string, std::less<>> names;
  for (WantedModel& w : wanted) {
    names.insert(w.name);
    std::string name = w.name;
    models_[name].wanted = std::move(w);
  }
  std::vector<std::string> all;
  for (auto& [name, slot] : models_) {
    if (!names.count(name)) slot.wanted.reset();
    all.push_back(name);
  }
  for (const std::string& name : all) ReconcileLocked(name);
}

void ModelManager::Apply(WantedModel wanted) {
  std::lock_guard lock(mu_);
  if (shut_down_) return;
  std::string name = wanted.name;
  models_[name].wanted = std::move(wanted);
  ReconcileLocked(name);
}

void ModelManager::Remove(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  it->second.wanted.reset();
  ReconcileLocked(it->first);
}

void ModelManager::ReconcileLocked(const std::string& name) {
  auto model_it = models_.find(name);
  if (model_it == models_.end()) return;
  ModelSlot& model = model_it->second;

  std::set<int64_t> wanted_versions;
  if (model.wanted) {
    if (!model.wanted->config.ok()) {
      // An unreadable or invalid config is like a failed read of the disk: keep serving what we have.
      model.config_error = model.wanted->config.status().message();
      return;
    }
    model.config_error.clear();
    const ModelConfig& config = model.wanted->config.value();
    for (const WantedVersion& wv : model.wanted->versions) {
      wanted_versions.insert(wv.version);
      VersionSlot& slot = model.versions[wv.version];
      const VersionState state = slot.harness.state();
      const std::filesystem::path dir = model.wanted->path / std::to_string(wv.version);
      if (state == VersionState::kNew || state == VersionState::kUnloaded ||
          (state == VersionState::kError && slot.failed_fingerprint != wv.fingerprint)) {
        Status s = slot.harness.TransitionTo(VersionState::kLoading);
        if (s.ok()) StartLoadLocked(name, wv.version, config, dir, wv.fingerprint);
      } else if (state == VersionState::kReady && slot.serving_fingerprint != wv.fingerprint &&
                 slot.loading_fingerprint.empty() && slot.failed_fingerprint != wv.fingerprint) {
        StartLoadLocked(name, wv.version, config, dir, wv.fingerprint);  // replacement, swapped when ready
      }
    }
  }

  bool any_wanted_ready = false;
  for (int64_t v : wanted_versions) {
    if (model.versions[v].harness.state() == VersionState::kReady) any_wanted_ready = true;
  }
  const bool model_removed = !model.wanted.has_value();
  for (auto it = model.versions.begin(); it != model.versions.end();) {
    const int64_t version = it->first;
    VersionSlot& slot = it->second;
    if (wanted_versions.count(version)) {
      ++it;
      continue;
    }
    const VersionState state = slot.harness.state();
    // Load before unload: a version no longer wanted serves (or sleeps, ready to wake) until a wanted one
    // is Ready.
    const bool superseded = any_wanted_ready || model_removed || wanted_versions.empty();
    if (state == VersionState::kReady && superseded) StartUnloadLocked(name, version, slot);
    if ((state == VersionState::kError || state == VersionState::kUnloaded || state == VersionState::kNew ||
         (state == VersionState::kAsleep && superseded)) &&
        slot.loading_fingerprint.empty()) {
      FailWaitersLocked(slot, Unavailable(fmt::format("model '{}' version {} is no longer served", name, version)));
      it = model.versions.erase(it);
      continue;
    }
    ++it;
  }
  if (model_removed && model.versions.empty()) models_.erase(model_it);
}

void ModelManager::StartLoadLocked(const std::string& name, int64_t version, const ModelConfig& config,
                                   const std::filesystem::path& dir, const std::string& fingerprint) {
  VersionSlot& slot = models_[name].versions[version];
  slot.loading_fingerprint = fingerprint;
  BeginWorkLocked();
  const bool posted = loaders_.Post([this, name, version, config, dir, fingerprint] {
    const auto start = std::chrono::steady_clock::now();
    const int64_t resident_before = ResidentBytes();
    Result<ModelHandle> loaded = Internal("load did not run");
    try {
      loaded = factory_->Load(config, version, dir);
    } catch (const std::exception& e) {
      loaded = Internal(fmt::format("loading failed: {}", e.what()));
    }
    const int64_t measured = std::max<int64_t>(0, ResidentBytes() - resident_before);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options_.on_load) options_.on_load(name, version, seconds, loaded.status());
    FinishLoad(name, version, fingerprint, std::move(loaded), measured);
  });
  if (!posted) {
    slot.loading_fingerprint.clear();
    if (slot.harness.state() == VersionState::kLoading) {
      (void)slot.harness.TransitionTo(VersionState::kError, "the loader queue is full");
    }
    EndWorkLocked();
  }
}

void ModelManager::FinishLoad(const std::string& name, int64_t version, const std::string& fingerprint,
                              Result<ModelHandle> loaded, int64_t measured_bytes) {
  ModelHandle replaced;
  WakeOutcome woke;
  {
    std::lock_guard lock(mu_);
    auto model_it = models_.find(name);
    VersionSlot* slot = nullptr;
    if (model_it != models_.end()) {
      auto v = model_it->second.versions.find(version);
      if (v != model_it->second.versions.end()) slot = &v->second;
    }
    if (slot == nullptr || shut_down_) {
      replaced = loaded.ok() ? loaded.value() : nullptr;  // nobody wants it any more
    } else {
      slot->loading_fingerprint.clear();
      bool too_large = false;
      if (loaded.ok()) {
        if (options_.memory_budget_bytes > 0 && measured_bytes > options_.memory_budget_bytes) {
          replaced = std::move(loaded).value();  // drained below, like a replaced version
          loaded = FailedPrecondition(TooLargeReason(measured_bytes));
          too_large = true;
        } else {
          // The same content may measure less when woken (the allocator reuses what it freed): keep the
          // largest; new content is measured afresh.
          slot->memory_bytes = fingerprint == slot->measured_fingerprint ? std::max(slot->memory_bytes, measured_bytes)
                                                                          : measured_bytes;
          slot->measured_fingerprint = fingerprint;
        }
      }
      const bool was_wake = slot->waking;
      if (was_wake) woke = FinishWakeLocked(name, version, *slot, loaded);
      if (loaded.ok()) {
        loaded.value()->Touch(options_.clock->Now());  // idle from now, not from the epoch
        slot->failed_fingerprint.clear();
        if (slot->harness.state() == VersionState::kLoading) {
          (void)slot->harness.TransitionTo(VersionState::kReady);
        } else {
          replaced = std::move(slot->serving);  // background reload of a Ready version
        }
        slot->serving = std::move(loaded).value();
        slot->serving_fingerprint = fingerprint;
        spdlog::info("model '{}' version {} is ready ({} MiB resident)", name, version,
                     slot->memory_bytes / (1024 * 1024));
        (void)MakeRoomLocked(0, name, version);  // over the budget now: the least recently used idle sleep
      } else if (was_wake && !too_large) {
        // A model that served before it slept is not broken by one failed wake: asleep again, the next
        // request tries again.
        const std::string reason = loaded.status().message();
        spdlog::error("model '{}' version {} failed to wake: {}", name, version, reason);
        (void)slot->harness.TransitionTo(VersionState::kAsleep, "asleep: its last wake failed: " + reason);
      } else {
        slot->failed_fingerprint = fingerprint;
        slot->slept.reset();
        const std::string reason = loaded.status().message();
        spdlog::error("model '{}' version {} failed to load: {}", name, version, reason);
        if (slot->harness.state() == VersionState::kLoading) {
          (void)slot->harness.TransitionTo(VersionState::kError, reason);
        }
      }
      ReconcileLocked(name);
    }
    if (replaced) {
      replaced->Retire();
      BeginWorkLocked();
    }
  }
  woke.Deliver(options_.on_cold_start, name, version);
  if (replaced) {
    replaced->scheduler().Drain();  // on this loader thread: queued requests finish first
    std::lock_guard lock(mu_);
    EndWorkLocked();
  }
  std::lock_guard lock(mu_);
  EndWorkLocked();
}

void ModelManager::StartUnloadLocked(const std::string& name, int64_t version, VersionSlot& slot) {
  if (!slot.harness.TransitionTo(VersionState::kDraining).ok()) return;
  ModelHandle handle = std::move(slot.serving);
  slot.serving_fingerprint.clear();
  handle->Retire();
  BeginWorkLocked();
  const bool posted = loaders_.Post([this, name, version, handle]() mutable {
    handle->scheduler().Drain();
    handle.reset();  // the last reference, unless a request still holds one
    malloc_trim(0);  // give the freed model memory back to the system, not only to the allocator
    FinishUnload(name, version);
  });
  if (!posted) {
    handle->scheduler().Drain();  // shutting down: drain inline rather than leak a Draining version
    (void)slot.harness.TransitionTo(slot.slept ? VersionState::kAsleep : VersionState::kUnloaded);
    EndWorkLocked();
  }
}

void ModelManager::FinishUnload(const std::string& name, int64_t version) {
  std::lock_guard lock(mu_);
  auto model_it = models_.find(name);
  if (model_it != models_.end()) {
    auto v = model_it->second.versions.find(version);
    if (v != model_it->second.versions.end()) {
      VersionSlot& slot = v->second;
      if (slot.slept && !shut_down_) {
        (void)slot.harness.TransitionTo(VersionState::kAsleep, "asleep: unloaded while idle; the next request loads it");
        spdlog::info("model '{}' version {} is asleep", name, version);
      } else {
        (void)slot.harness.TransitionTo(VersionState::kUnloaded);
        spdlog::info("model '{}' version {} unloaded", name, version);
      }
    }
    if (!shut_down_) {
      ReconcileLocked(name);  // drops it (failing its waiters) if it was removed or superseded meanwhile
      // A request came while it drained: wake it, if it is still there.
      if (auto m = models_.find(name); m != models_.end()) {
        if (auto w = m->second.versions.find(version); w != m->second.versions.end() && !w->second.waiters.empty()) {
          WakeLocked(name, version, w->second);
        }
      }
    }
  }
  EndWorkLocked();
}

void ModelManager::EndWorkLocked() {
  if (--work_in_flight_ == 0) idle_cv_.notify_all();
}

Result<ModelHandle> ModelManager::Get(std::string_view name, std::optional<int64_t> version) {
  std::lock_guard lock(mu_);
  return GetLocked(name, version);
}

Result<ModelHandle> ModelManager::GetLocked(std::string_view name, std::optional<int64_t> version) {
  auto model_it = models_.find(name);
  if (model_it == models_.end()) return NotFound(fmt::format("unknown model '{}'", name));
  ModelSlot& model = model_it->second;
  if (model.versions.empty()) {
    return NotFound(fmt::format("model '{}' is not available: {}", name,
                                model.config_error.empty() ? "no version to serve" : model.config_error));
  }
  if (version) {
    auto v = model.versions.find(*version);
    if (v == model.versions.end()) {
      return NotFound(fmt::format("model '{}' has no version {}", name, *version));
    }
    if (v->second.harness.state() != VersionState::kReady) {
      if (v->second.slept) return WakingLocked(model_it->first, *version, v->second);
      return Unavailable(fmt::format("model '{}' version {} is not ready", name, *version));
    }
    v->second.serving->Touch(options_.clock->Now());
    return v->second.serving;
  }
  // The highest version that would answer: Ready, or asleep (woken now) or on its way to or from sleep.
  for (auto it = model.versions.rbegin(); it != model.versions.rend(); ++it) {
    if (it->second.harness.state() == VersionState::kReady) {
      it->second.serving->Touch(options_.clock->Now());
      return it->second.serving;
    }
    if (it->second.slept) return WakingLocked(model_it->first, it->first, it->second);
  }
  return Unavailable(fmt::format("model '{}' has no ready version", name));
}

std::vector<VersionStatus> ModelManager::Index() const {
  std::lock_guard lock(mu_);
  std::vector<VersionStatus> out;
  for (const auto& [name, model] : models_) {
    if (model.versions.empty()) {
      out.push_back({name, 0, VersionState::kError, model.config_error.empty() ? "no version to load" : model.config_error});
      continue;
    }
    for (const auto& [version, slot] : model.versions) {
      std::string reason = slot.harness.reason();
      if (!model.config_error.empty()) reason = "config error (still serving the last good config): " + model.config_error;
      const VersionState state = slot.harness.state();
      const bool resident = state == VersionState::kReady || state == VersionState::kLoading;
      out.push_back({name, version, state, reason, state == VersionState::kAsleep, resident ? slot.memory_bytes : 0});
    }
  }
  return out;
}

std::vector<ModelHandle> ModelManager::ReadyHandles() const {
  std::lock_guard lock(mu_);
  std::vector<ModelHandle> out;
  for (const auto& [name, model] : models_) {
    for (const auto& [version, slot] : model.versions) {
      if (slot.harness.state() == VersionState::kReady) out.push_back(slot.serving);
    }
  }
  return out;
}

bool ModelManager::WaitUntilIdle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return work_in_flight_ == 0; });
}

void ModelManager::Shutdown() {
  std::vector<ModelHandle> to_drain;
  std::vector<Waiter> waiters;
  std::vector<std::pair<AcquireDone, Status>> late;
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    housekeeping_cv_.notify_all();
    late = std::exchange(late_failures_, {});
    for (auto& [name, model] : models_) {
      for (auto& [version, slot] : model.versions) {
        for (Waiter& w : TakeWaiters(slot)) waiters.push_back(std::move(w));
        if (slot.serving) {
          slot.serving->Retire();
          to_drain.push_back(std::move(slot.serving));
          if (slot.harness.state() == VersionState::kReady) (void)slot.harness.TransitionTo(VersionState::kDraining);
        }
      }
    }
  }
  if (housekeeper_.joinable()) housekeeper_.join();
  for (Waiter& w : waiters) w.done(Unavailable("the server is shutting down"));
  for (auto& [done, status] : late) done(status);
  for (auto& handle : to_drain) handle->scheduler().Drain();
  loaders_.Stop();
}

}  // namespace ferry
