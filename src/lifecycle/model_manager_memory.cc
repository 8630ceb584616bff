// The memory budget: ModelManager's measure of each version and the evictions that keep the models
// within --model-memory-budget-mb.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>

#include "lifecycle/model_manager.h"

namespace ferry {
namespace {

constexpr int64_t kMiB = 1024 * 1024;

int64_t ProcResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0;
  int64_t resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

int64_t ModelManager::ResidentBytes() const {
  return options_.resident_bytes ? options_.resident_bytes() : ProcResidentBytes();
}

int64_t ModelManager::ResidentModelsLocked() const {
  int64_t total = 0;
  for (const auto& [name, model] : models_) {
    for (const auto& [version, slot] : model.versions) {
      const VersionState state = slot.harness.state();
      if (state == VersionState::kReady || state == VersionState::kLoading) total += slot.memory_bytes;
    }
  }
  return total;
}

std::string ModelManager::TooLargeReason(int64_t bytes) const {
  return fmt::format("needs {:.1f} MiB (its load's resident growth), more than the whole model memory budget of "
                     "{:.1f} MiB (--model-memory-budget-mb)",
                     static_cast<double>(bytes) / kMiB, static_cast<double>(options_.memory_budget_bytes) / kMiB);
}

bool ModelManager::MakeRoomLocked(int64_t extra, const std::string& keep_name, int64_t keep_version) {
  const int64_t budget = options_.memory_budget_bytes;
  if (budget <= 0) return true;
  int64_t total = ResidentModelsLocked();
  while (total + extra > budget) {
    std::string lru_name;
    int64_t lru_version = 0;
    VersionSlot* lru = nullptr;
    for (auto& [name, model] : models_) {
      for (auto& [version, slot] : model.versions) {
        if (name == keep_name && version == keep_version) continue;
        if (slot.harness.state() != VersionState::kReady || !slot.serving || !slot.loading_fingerprint.empty() ||
            slot.memory_bytes == 0) {
          continue;
        }
        // Idle: no request holds its handle, nothing queued or generating.
        if (slot.serving.use_count() > 1 || slot.serving->scheduler().InFlight() > 0) continue;
        if (lru == nullptr || slot.serving->last_used() < lru->serving->last_used()) {
          lru = &slot;
          lru_name = name;
          lru_version = version;
        }
      }
    }
    if (lru == nullptr) return false;
    total -= lru->memory_bytes;
    StartSleepLocked(lru_name, lru_version, *lru,
                     fmt::format("the least recently used idle model, put to sleep for the memory budget ({:.1f} of "
                                 "{:.1f} MiB in use, {:.1f} MiB more wanted)",
                                 static_cast<double>(total + lru->memory_bytes) / kMiB,
                                 static_cast<double>(budget) / kMiB, static_cast<double>(extra) / kMiB));
  }
  return true;
}

}  // namespace ferry
