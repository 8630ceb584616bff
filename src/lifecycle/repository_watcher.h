#pragma once
// Turns what the model repository holds into the manager's wanted set, on demand (explicit control)
// or every poll interval (poll mode). A failed read of the repository keeps the previous decision: it
// never unloads a model because the disk hiccuped. Thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "lifecycle/model_manager.h"
#include "repository/model_repository.h"

namespace ferry {

// The wanted state for one model as the repository shows it now (config errors included).
WantedModel WantedFromRepository(const ModelRepository& repository, const RepositoryModel& model);

class RepositoryWatcher {
 public:
  RepositoryWatcher(const ModelRepository* repository, ModelManager* manager)
      : repository_(repository), manager_(manager) {}
  ~RepositoryWatcher();

  // Reads the whole repository and applies it. Error (and no change) if the root cannot be read.
  Status PollOnce();
  // Explicit control: (re)read one model and load it / stop serving it.
  Status LoadModel(std::string_view name);
  void UnloadModel(std::string_view name);
  // Polls every `interval` on its own thread until Stop().
  void StartPolling(std::chrono::milliseconds interval);
  void Stop();

 private:
  const ModelRepository* repository_;
  ModelManager* manager_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace ferry
