#include "lifecycle/repository_watcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

namespace ferry {
namespace {

namespace fs = std::filesystem;

// Size and modification time of every file under `dir` (sorted), plus the config's: cheap to compute
// and changes whenever a file is replaced, which is what should trigger a reload.
std::string Fingerprint(const fs::path& dir, const fs::path& config_file) {
  std::vector<std::string> entries;
  std::error_code ec;
  auto describe = [&](const fs::path& p) {
    std::error_code e;
    const auto size = fs::file_size(p, e);
    const auto mtime = fs::last_write_time(p, e).time_since_epoch().count();
    entries.push_back(fmt::format("{}:{}:{}", p.lexically_relative(dir).string(), e ? 0 : size, mtime));
  };
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) describe(it->path());
  }
  std::sort(entries.begin(), entries.end());
  describe(config_file);
  std::string out;
  for (const auto& e : entries) out += e + '|';
  return out;
}

}  // namespace

WantedModel WantedFromRepository(const ModelRepository& repository, const RepositoryModel& model) {
  WantedModel wanted;
  wanted.name = model.name;
  wanted.path = model.path;
  wanted.config = model.config;
  if (!model.config.ok()) return wanted;
  for (int64_t v : SelectVersions(model.config->version_policy, model.versions)) {
    const fs::path dir = repository.VersionPath(model.name, v);
    wanted.versions.push_back({v, Fingerprint(dir, model.path / "config.yaml")});
  }
  return wanted;
}

RepositoryWatcher::~RepositoryWatcher() { Stop(); }

Status RepositoryWatcher::PollOnce() {
  Result<std::vector<RepositoryModel>> models = repository_->Scan();
  if (!models.ok()) {
    spdlog::warn("model repository read failed, keeping the loaded models: {}", models.status().message());
    return models.status();
  }
  std::vector<WantedModel> wanted;
  for (const RepositoryModel& m : *models) wanted.push_back(WantedFromRepository(*repository_, m));
  manager_->ApplyAll(std::move(wanted));
  return Status::Ok();
}

Status RepositoryWatcher::LoadModel(std::string_view name) {
  FERRY_ASSIGN_OR_RETURN(RepositoryModel model, repository_->ReadModel(name));
  if (!model.config.ok()) return model.config.status().WithContext(fmt::format("model '{}'", name));
  if (SelectVersions(model.config->version_policy, model.versions).empty()) {
    return NotFound(fmt::format("model '{}' has no version folder to load", name));
  }
  manager_->Apply(WantedFromRepository(*repository_, model));
  return Status::Ok();
}

void RepositoryWatcher::UnloadModel(std::string_view name) { manager_->Remove(name); }

void RepositoryWatcher::StartPolling(std::chrono::milliseconds interval) {
  poller_ = std::thread([this, interval] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (cv_.wait_for(lock, interval, [&] { return stopping_; })) break;
      lock.unlock();
      (void)PollOnce();
      lock.lock();
    }
  });
}

void RepositoryWatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

}  // namespace ferry
