// Scale to zero: ModelManager's idle unload (sleep), wake on request, and the requests that wait for it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <future>

#include "lifecycle/model_manager.h"

namespace ferry {
namespace {

std::chrono::milliseconds SecondsToMs(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

}  // namespace

std::chrono::milliseconds ModelManager::IdleUnloadOf(const ModelConfig& config) const {
  return config.idle_unload_s ? SecondsToMs(*config.idle_unload_s) : options_.default_idle_unload;
}

std::chrono::milliseconds ModelManager::ColdStartTimeoutOf(const ModelConfig& config) const {
  return config.cold_start_timeout_s ? SecondsToMs(*config.cold_start_timeout_s) : options_.default_cold_start_timeout;
}

void ModelManager::StartSleepLocked(const std::string& name, int64_t version, VersionSlot& slot,
                                    std::string_view why) {
  const ModelSlot& model = models_[name];
  std::filesystem::path dir = model.wanted ? model.wanted->path / std::to_string(version) : std::filesystem::path();
  slot.slept = SleepingFrom{slot.serving->config(), std::move(dir), slot.serving_fingerprint};
  spdlog::info("model '{}' version {}: {}; unloading it until the next request", name, version, why);
  StartUnloadLocked(name, version, slot);
}

void ModelManager::WakeLocked(const std::string& name, int64_t version, VersionSlot& slot) {
  if (slot.harness.state() != VersionState::kAsleep || !slot.slept) return;
  SleepingFrom from = *slot.slept;
  const ModelSlot& model = models_[name];
  if (model.wanted && model.wanted->config.ok()) {  // files or config changed while asleep: load those
    for (const WantedVersion& wv : model.wanted->versions) {
      if (wv.version != version) continue;
      from.config = model.wanted->config.value();
      from.dir = model.wanted->path / std::to_string(version);
      from.fingerprint = wv.fingerprint;
    }
  }
  // Room first, while this version (Asleep) does not count: its size is known from its last load.
  if (!MakeRoomLocked(slot.memory_bytes, name, version)) {
    spdlog::warn("model '{}' version {} wakes over the memory budget: every other model is busy", name, version);
  }
  if (!slot.harness.TransitionTo(VersionState::kLoading, "waking: a request arrived while it slept").ok()) return;
  slot.waking = true;
  slot.wake_started = options_.clock->Now();
  spdlog::info("model '{}' version {} woken by a request: loading", name, version);
  StartLoadLocked(name, version, from.config, from.dir, from.fingerprint);
  if (slot.harness.state() == VersionState::kError) {  // the loader queue refused the load
    slot.waking = false;
    slot.slept.reset();
    FailWaitersLocked(slot, Unavailable(fmt::format("model '{}' cannot be loaded now: {}", name,
                                                    slot.harness.reason())));
  }
}

Status ModelManager::WakingLocked(const std::string& name, int64_t version, VersionSlot& slot) {
  WakeLocked(name, version, slot);
  return Unavailable(fmt::format("model '{}' version {} was unloaded while idle and is loading; retry shortly",
                                 name, version));
}

ModelManager::VersionSlot* ModelManager::SleeperLocked(ModelSlot& model, std::optional<int64_t> version) {
  if (version) {
    auto v = model.versions.find(*version);
    return v != model.versions.end() && v->second.slept ? &v->second : nullptr;
  }
  for (auto it = model.versions.rbegin(); it != model.versions.rend(); ++it) {
    if (it->second.harness.state() == VersionState::kReady) return nullptr;  // a Ready one answers first
    if (it->second.slept) return &it->second;
  }
  return nullptr;
}

ModelManager::WakeOutcome ModelManager::FinishWakeLocked(const std::string& name, int64_t version,
                                                         VersionSlot& slot, const Result<ModelHandle>& loaded) {
  WakeOutcome out;
  out.woke = true;
  out.seconds = std::chrono::duration<double>(options_.clock->Now() - slot.wake_started).count();
  out.status = loaded.status();
  if (loaded.ok()) {
    out.result = AcquiredModel{loaded.value(), out.seconds * 1000.0};
  } else {
    out.result = Unavailable(fmt::format("model '{}' version {} failed to load after sleeping: {}", name, version,
                                         loaded.status().message()));
  }
  out.waiters = TakeWaiters(slot);
  slot.waking = false;
  if (loaded.ok()) slot.slept.reset();  // a failed wake leaves it asleep (FinishLoad)
  return out;
}

void ModelManager::WakeOutcome::Deliver(const decltype(ModelManagerOptions::on_cold_start)& on_cold_start,
                                        const std::string& name, int64_t version) {
  if (!woke) return;
  if (on_cold_start) on_cold_start(name, version, seconds, status);
  for (Waiter& w : waiters) w.done(result);
}

void ModelManager::FailWaitersLocked(VersionSlot& slot, const Status& status) {
  std::vector<Waiter> waiters = TakeWaiters(slot);
  if (waiters.empty()) return;
  auto shared = std::make_shared<std::vector<Waiter>>(std::move(waiters));
  const bool posted = loaders_.Post([shared, status] {
    for (Waiter& w : *shared) w.done(status);
  });
  if (!posted) {
    for (Waiter& w : *shared) late_failures_.emplace_back(std::move(w.done), status);
  }
}

void ModelManager::Acquire(std::string_view name, std::optional<int64_t> version, std::optional<SteadyTime> deadline,
                           AcquireDone done) {
  Result<ModelHandle> got = Internal("not resolved");
  {
    std::lock_guard lock(mu_);
    got = GetLocked(name, version);  // wakes a sleeping version
    if (!got.ok() && !shut_down_) {
      auto it = models_.find(name);
      VersionSlot* slot = it == models_.end() ? nullptr : SleeperLocked(it->second, version);
      if (slot != nullptr) {
        SteadyTime limit = options_.clock->Now() + ColdStartTimeoutOf(slot->slept->config);
        if (deadline && *deadline < limit) limit = *deadline;
        slot->waiters.push_back({limit, std::move(done)});
        return;
      }
    }
  }
  if (got.ok()) return done(AcquiredModel{std::move(got).value(), 0});
  done(got.status());
}

Result<AcquiredModel> ModelManager::AcquireBlocking(std::string_view name, std::optional<int64_t> version,
                                                    std::optional<SteadyTime> deadline) {
  auto promise = std::make_shared<std::promise<Result<AcquiredModel>>>();
  std::future<Result<AcquiredModel>> future = promise->get_future();
  Acquire(name, version, deadline, [promise](Result<AcquiredModel> r) { promise->set_value(std::move(r)); });
  return future.get();
}

Status ModelManager::Servable(std::string_view name, std::optional<int64_t> version) const {
  return ConfigOf(name, version).status();
}

Result<ModelConfig> ModelManager::ConfigOf(std::string_view name, std::optional<int64_t> version) const {
  std::lock_guard lock(mu_);
  auto model_it = models_.find(name);
  if (model_it == models_.end()) return NotFound(fmt::format("unknown model '{}'", name));
  const ModelSlot& model = model_it->second;
  if (model.versions.empty()) {
    return NotFound(fmt::format("model '{}' is not available: {}", name,
                                model.config_error.empty() ? "no version to serve" : model.config_error));
  }
  auto answer = [](const VersionSlot& slot) -> std::optional<ModelConfig> {
    if (slot.harness.state() == VersionState::kReady) return slot.serving->config();
    if (slot.slept) return slot.slept->config;
    return std::nullopt;
  };
  if (version) {
    auto v = model.versions.find(*version);
    if (v == model.versions.end()) return NotFound(fmt::format("model '{}' has no version {}", name, *version));
    if (std::optional<ModelConfig> config = answer(v->second)) return *std::move(config);
    return Unavailable(fmt::format("model '{}' version {} is not ready", name, *version));
  }
  for (auto it = model.versions.rbegin(); it != model.versions.rend(); ++it) {
    if (std::optional<ModelConfig> config = answer(it->second)) return *std::move(config);
  }
  return Unavailable(fmt::format("model '{}' has no ready version", name));
}

void ModelManager::Tick() {
  std::vector<std::pair<AcquireDone, Status>> expired;
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    expired = std::exchange(late_failures_, {});
    const SteadyTime now = options_.clock->Now();
    for (auto& [name, model] : models_) {
      for (auto& [version, slot] : model.versions) {
        for (auto it = slot.waiters.begin(); it != slot.waiters.end();) {
          if (it->deadline > now) {
            ++it;
            continue;
          }
          expired.emplace_back(std::move(it->done),
                               Unavailable(fmt::format("model '{}' version {} is still loading after sleeping "
                                                       "(a cold start); retry shortly", name, version)));
          it = slot.waiters.erase(it);
        }
        if (slot.harness.state() != VersionState::kReady || !slot.serving || !slot.loading_fingerprint.empty()) {
          continue;
        }
        const std::chrono::milliseconds idle = IdleUnloadOf(slot.serving->config());
        // use_count 1: only this slot holds the handle, so no request is in flight on it.
        if (idle.count() <= 0 || slot.serving.use_count() > 1 || slot.serving->scheduler().InFlight() > 0 ||
            now - slot.serving->last_used() < idle) {
          continue;
        }
        StartSleepLocked(name, version, slot, fmt::format("idle for {} ms", idle.count()));
      }
    }
    (void)MakeRoomLocked(0, "", 0);  // versions busy when a load went over the budget may be idle now
  }
  for (auto& [done, status] : expired) done(status);
}

void ModelManager::HousekeepingLoop() {
  std::unique_lock lock(mu_);
  while (!shut_down_) {
    housekeeping_cv_.wait_for(lock, options_.housekeeping_period);
    if (shut_down_) break;
    lock.unlock();
    Tick();
    lock.lock();
  }
}

}  // namespace ferry
