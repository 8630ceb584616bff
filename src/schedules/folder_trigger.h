#pragma once
// Batches started by data arriving: each trigger watches a folder under the input root (inotify) and
// starts one batch per entry that appears complete there — renamed into the folder (complete:
// renamed; writers write elsewhere or under a hidden name, then rename), or given a `<entry>.done`
// marker (complete: marker); an entry a listing finds (not a rename) is taken once it has not changed
// for `settle`. An entry is taken once: the store records it with the batch it started
// (or why none could be made), across restarts; the batch's id derives from the trigger and the name,
// so a crash between starting the batch and recording the entry starts nothing twice. At start, after
// an inotify overflow and every `rescan_every`, the folders are listed again, so an entry that arrived
// while the server was down, or whose event was lost, is taken too. Hidden names, `*.part`, `*.tmp`
// and the markers themselves are never entries. Thread-safe.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "schedules/batch_launcher.h"
#include "schedules/sqlite_schedule_store.h"

namespace ferry {

struct FolderTriggerOptions {
  std::filesystem::path input_root;
  const WallClock* clock = &WallClock::Real();
  std::chrono::milliseconds rescan_every{30'000};
  std::chrono::milliseconds check_every{1'000};  // how often started batches are looked at for their end
  // complete: renamed, an entry found by a listing (not a rename event) is taken once unchanged this long
  std::chrono::milliseconds settle{2'000};
};

struct FolderTriggerObserver {
  // outcome: "seen", "started", "refused", "completed", "failed"
  std::function<void(const std::string& trigger, std::string_view outcome)> file;
};

struct TriggerView {
  TriggerSpec spec;
  std::filesystem::path folder;
  std::vector<std::pair<std::string, int64_t>> counts;  // files per outcome
  std::vector<TriggerFileRecord> failures;              // refused and failed, newest first
};

class FolderTriggers {
 public:
  FolderTriggers(SqliteScheduleStore* store, BatchLauncher launcher, FolderTriggerOptions options,
                 FolderTriggerObserver observer = {});
  ~FolderTriggers();  // Stop()

  // Validates a trigger definition and creates its folder if missing.
  Status Add(const DefinitionFields& fields);
  void Refuse(const std::string& name, const std::string& reason);
  std::vector<std::pair<std::string, std::string>> Refused() const;

  // Lists every folder and takes each complete entry not taken before.
  void Rescan();
  // Takes one entry of a trigger's folder, if complete and not taken before (`renamed`: it was just
  // renamed in, so complete whatever its age).
  void Offer(const std::string& trigger, const std::string& name, bool renamed);
  // Records the end of batches started from entries.
  void CheckOutcomes();

  Result<std::vector<TriggerView>> List(int64_t failures_limit);
  Result<TriggerView> Get(const std::string& name, int64_t failures_limit);

  // Starts the watching thread (after a first Rescan on it).
  Status Start();
  void Stop();

 private:
  struct Entry {
    TriggerSpec spec;
    std::filesystem::path folder;
    int watch = -1;
  };
  bool IsEntryName(const Entry& e, const std::string& name) const;
  bool IsComplete(const Entry& e, const std::string& name, bool renamed) const;
  void Take(const Entry& e, const std::string& name);
  Result<TriggerView> View(const Entry& e, int64_t failures_limit);
  void Loop();
  void HandleEvents();

  SqliteScheduleStore* store_;
  BatchLauncher launcher_;
  FolderTriggerOptions options_;
  FolderTriggerObserver observer_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::map<int, std::string> by_watch_;
  std::map<std::string, std::string> refused_;
  std::mutex take_mu_;  // one entry taken at a time (the thread, a test's Offer); guards taken_
  std::map<std::string, std::set<std::string>> taken_;  // per trigger: names in the store
  std::atomic<bool> stopping_{false};
  int inotify_fd_ = -1;
  int stop_fd_ = -1;    // an eventfd written by Stop()
  std::thread thread_;
};

}  // namespace ferry
